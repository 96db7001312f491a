//! A bare-metal driver for the tests: registers through the CPU's BAR0 accesses, host
//! memory taken straight from DRAM above 1 MiB and mapped for the SG1 through its
//! IOMMU domain, interrupts observed by the test's own interrupt controller.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use sagrada_hw_accel::{Sg1, Sg1Config};
use sagrada_hw_accel_abi::entry::{CQ_ENTRY_SIZE, CqEntry, RING_ENTRY_SIZE, RingEntry};
use sagrada_hw_accel_abi::firmware::{MAILBOX_DWORDS, Message};
use sagrada_hw_accel_abi::mmu::{self, host_phys};
use sagrada_hw_accel_abi::packet::Packet;
use sagrada_hw_accel_abi::regs::{cq, mbox, mbox_req, mbox_resp, msix, queue};
use sagrada_hw_accel_abi::{NUM_MSIX, VECTOR_CQ, VECTOR_FIRMWARE};
use sagrada_hw_fabric::{
    DeviceId, DmaDirection, Fabric, InterruptSink, Iova, MSI_BASE, Memory, PhysAddr, PhysRange,
};
use zerocopy::{FromBytes, IntoBytes};

/// How long a test waits for the device before it gives up (a hang, not a timing
/// assertion).
pub const PATIENCE: Duration = Duration::from_secs(30);

/// The test's interrupt controller: counts messages by (address, data).
#[derive(Default)]
pub struct Irqs {
    counts: Mutex<HashMap<(u64, u32), u64>>,
    cv: Condvar,
}

impl InterruptSink for Irqs {
    fn msi(&self, addr: u64, data: u32) {
        *self.counts.lock().unwrap().entry((addr, data)).or_default() += 1;
        self.cv.notify_all();
    }
}

impl Irqs {
    pub fn count(&self, addr: u64, data: u32) -> u64 {
        self.counts
            .lock()
            .unwrap()
            .get(&(addr, data))
            .copied()
            .unwrap_or(0)
    }

    /// Waits until message (addr, data) has arrived at least `n` times.
    pub fn wait(&self, addr: u64, data: u32, n: u64) {
        let deadline = Instant::now() + PATIENCE;
        let mut counts = self.counts.lock().unwrap();
        while counts.get(&(addr, data)).copied().unwrap_or(0) < n {
            let left = deadline
                .checked_duration_since(Instant::now())
                .unwrap_or_else(|| panic!("interrupt {addr:#x}/{data:#x} #{n} never came"));
            counts = self.cv.wait_timeout(counts, left).unwrap().0;
        }
    }
}

/// A host buffer: physical pages of DRAM and the SG1's DMA address of them.
#[derive(Clone, Copy, Debug)]
pub struct HostBuf {
    pub phys: u64,
    pub len: u64,
    pub iova: u64,
}

impl HostBuf {
    /// The device physical address (ASID 0) of byte `off`.
    pub fn dev(&self, off: u64) -> u64 {
        host_phys(self.iova + off)
    }
}

/// Host DRAM handed out by the tests, shared by every machine of a fabric.
pub struct HostAlloc {
    next: AtomicU64,
}

/// One SG1 of a machine, with the test as its driver.
pub struct Dev {
    pub fabric: Arc<Fabric>,
    pub dev: DeviceId,
    pub sg1: Arc<Sg1>,
    pub irqs: Arc<Irqs>,
    pub alloc: Arc<HostAlloc>,
    pub bar0: u64,
    pub bar2: u64,
    /// Completion-queue entries consumed so far.
    pub cq_read: Mutex<u32>,
    pub cq_buf: Mutex<Option<(HostBuf, u32)>>,
    pub rings: Mutex<[Option<(HostBuf, u32)>; 3]>,
    fw_seen: Mutex<u64>,
}

/// A fabric with an interrupt controller; devices are attached with [`Bench::sg1`].
pub struct Bench {
    pub fabric: Arc<Fabric>,
    pub irqs: Arc<Irqs>,
    pub alloc: Arc<HostAlloc>,
}

impl Bench {
    pub fn new() -> Self {
        let fabric = Fabric::default_machine().unwrap();
        let irqs = Arc::new(Irqs::default());
        fabric.set_interrupt_sink(irqs.clone()).unwrap();
        Self {
            fabric,
            irqs,
            alloc: Arc::new(HostAlloc {
                next: AtomicU64::new(16 << 20),
            }),
        }
    }

    pub fn sg1(&self, name: &str) -> Dev {
        self.sg1_with(name, Sg1Config::default())
    }

    pub fn sg1_with(&self, name: &str, config: Sg1Config) -> Dev {
        let dev = self.fabric.find(name).unwrap();
        let sg1 = Sg1::attach(&self.fabric, dev, config).unwrap();
        let d = Dev {
            fabric: self.fabric.clone(),
            dev,
            sg1,
            irqs: self.irqs.clone(),
            alloc: self.alloc.clone(),
            bar0: self.fabric.bar(dev, 0).unwrap().phys.raw(),
            bar2: self.fabric.bar(dev, 2).unwrap().phys.raw(),
            cq_read: Mutex::new(0),
            cq_buf: Mutex::new(None),
            rings: Mutex::new([None; 3]),
            fw_seen: Mutex::new(0),
        };
        d.setup_msix();
        d
    }
}

/// One SG1 on the default machine, MSI-X programmed and unmasked.
pub fn machine() -> Dev {
    Bench::new().sg1("accel0")
}

impl Dev {
    // ---- registers ----

    pub fn rd(&self, off: u32) -> u32 {
        let mut b = [0u8; 4];
        self.fabric
            .cpu_read(PhysAddr(self.bar0 + u64::from(off)), &mut b)
            .unwrap();
        u32::from_le_bytes(b)
    }

    pub fn wr(&self, off: u32, v: u32) {
        self.fabric
            .cpu_write(PhysAddr(self.bar0 + u64::from(off)), &v.to_le_bytes())
            .unwrap();
    }

    /// A LO/HI pair written as one 8-byte access.
    pub fn wr64(&self, off: u32, v: u64) {
        self.fabric
            .cpu_write(PhysAddr(self.bar0 + u64::from(off)), &v.to_le_bytes())
            .unwrap();
    }

    pub fn rd64(&self, off: u32) -> u64 {
        u64::from(self.rd(off)) | u64::from(self.rd(off + 4)) << 32
    }

    // ---- interrupts ----

    /// The message data of vector `v` of this device.
    pub fn msi_data(&self, v: u32) -> u32 {
        self.dev.0 << 8 | v
    }

    pub fn setup_msix(&self) {
        for v in 0..NUM_MSIX {
            let base = msix::instance(v);
            self.wr64(base + msix::ADDR_LO, MSI_BASE);
            self.wr(base + msix::DATA, self.msi_data(v));
            self.wr(base + msix::CTRL, 0);
        }
    }

    pub fn irq_count(&self, v: u32) -> u64 {
        self.irqs.count(MSI_BASE, self.msi_data(v))
    }

    pub fn wait_irq(&self, v: u32, n: u64) {
        self.irqs.wait(MSI_BASE, self.msi_data(v), n);
    }

    /// Polls `cond` until it holds (the device runs on its own threads meanwhile).
    pub fn wait_until(&self, what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !cond() {
            assert!(Instant::now() < deadline, "gave up waiting until {what}");
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    // ---- memory ----

    /// Host DRAM pages, not mapped for the device.
    pub fn host_pages(&self, len: u64) -> u64 {
        let len = len.div_ceil(4096).max(1) * 4096;
        self.alloc.next.fetch_add(len, Ordering::Relaxed)
    }

    /// Host DRAM mapped bidirectionally for the SG1.
    pub fn host(&self, len: u64) -> HostBuf {
        self.host_dir(len, DmaDirection::Bidirectional)
    }

    pub fn host_dir(&self, len: u64, dir: DmaDirection) -> HostBuf {
        let phys = self.host_pages(len);
        let iova = self
            .fabric
            .dma_map_extents(
                self.dev,
                &[PhysRange {
                    start: PhysAddr(phys),
                    len,
                }],
                dir,
            )
            .unwrap();
        HostBuf {
            phys,
            len,
            iova: iova.raw(),
        }
    }

    pub fn host_mem(&self) -> &Arc<Memory> {
        self.fabric.host_memory()
    }

    pub fn host_write(&self, phys: u64, data: &[u8]) {
        self.host_mem().write(phys, data).unwrap();
    }

    pub fn host_read(&self, phys: u64, len: usize) -> Vec<u8> {
        let mut v = vec![0; len];
        self.host_mem().read(phys, &mut v).unwrap();
        v
    }

    /// HBM through BAR2, as the CPU sees it.
    pub fn hbm_write(&self, off: u64, data: &[u8]) {
        self.fabric
            .cpu_write(PhysAddr(self.bar2 + off), data)
            .unwrap();
    }

    pub fn hbm_read(&self, off: u64, len: usize) -> Vec<u8> {
        let mut v = vec![0; len];
        self.fabric
            .cpu_read(PhysAddr(self.bar2 + off), &mut v)
            .unwrap();
        v
    }

    pub fn hbm(&self) -> Arc<Memory> {
        self.fabric.bar_memory(self.dev, 2).unwrap().clone()
    }

    // ---- queues ----

    /// Sets up the completion queue with 2^log2 entries and enables it.
    pub fn setup_cq(&self, log2: u32) {
        let buf = self.host((1 << log2) * CQ_ENTRY_SIZE);
        self.wr64(cq::BASE + cq::BASE_LO, buf.iova);
        self.wr(cq::BASE + cq::SIZE_LOG2, log2);
        self.wr(cq::BASE + cq::CTRL, 1);
        *self.cq_buf.lock().unwrap() = Some((buf, 1 << log2));
        *self.cq_read.lock().unwrap() = self.rd(cq::BASE + cq::CI);
    }

    /// Sets up queue `q` with 2^log2 entries and enables it.
    pub fn setup_queue(&self, q: u32, log2: u32) {
        let buf = self.host((1 << log2) * RING_ENTRY_SIZE);
        let base = queue::instance(q);
        self.wr64(base + queue::BASE_LO, buf.iova);
        self.wr(base + queue::SIZE_LOG2, log2);
        self.wr(base + queue::CTRL, 1);
        self.rings.lock().unwrap()[q as usize] = Some((buf, 1 << log2));
    }

    /// The standard set-up: a 64-entry completion queue and the three queues.
    pub fn setup(&self) {
        self.setup_cq(6);
        for q in 0..3 {
            self.setup_queue(q, 4);
        }
    }

    /// A command buffer in host memory: its device physical address and size.
    pub fn cb(&self, packets: &[Packet]) -> (u64, u32) {
        let mut bytes = Vec::new();
        for p in packets {
            p.encode_into(&mut bytes);
        }
        self.cb_bytes(&bytes)
    }

    pub fn cb_bytes(&self, bytes: &[u8]) -> (u64, u32) {
        let buf = self.host(bytes.len().max(4) as u64);
        self.host_write(buf.phys, bytes);
        (buf.dev(0), bytes.len() as u32)
    }

    /// Writes entries into queue `q`'s ring and rings the doorbell.
    pub fn submit(&self, q: u32, entries: &[RingEntry]) {
        let (ring, size) = self.rings.lock().unwrap()[q as usize].expect("queue set up");
        let base = queue::instance(q);
        let mut pi = self.rd(base + queue::PI);
        for e in entries {
            let slot = u64::from(pi % size);
            self.host_write(ring.phys + slot * RING_ENTRY_SIZE, e.as_bytes());
            pi = pi.wrapping_add(1);
        }
        self.wr(base + queue::PI, pi);
    }

    /// Submits one entry running `packets` in `asid`, with `tag`.
    pub fn job(&self, q: u32, asid: u16, tag: u64, packets: &[Packet]) {
        let (cb_addr, cb_size) = self.cb(packets);
        self.submit(
            q,
            &[RingEntry {
                cb_addr,
                cb_size,
                asid,
                tag,
                ..Default::default()
            }],
        );
    }

    /// Waits until queue `q` has consumed every entry.
    pub fn wait_idle(&self, q: u32) {
        let base = queue::instance(q);
        self.wait_until("the queue is idle", || {
            self.rd(base + queue::CI) == self.rd(base + queue::PI)
        });
    }

    /// Waits for `n` more completion entries, reads them and hands them back (CI).
    pub fn completions(&self, n: u32) -> Vec<CqEntry> {
        let (buf, size) = self
            .cq_buf
            .lock()
            .unwrap()
            .expect("completion queue set up");
        let mut read = self.cq_read.lock().unwrap();
        let want = read.wrapping_add(n);
        self.wait_until("completions arrive", || {
            self.rd(cq::BASE + cq::PI).wrapping_sub(*read) >= n
        });
        let mut out = Vec::new();
        while *read != want {
            let slot = u64::from(*read % size);
            let bytes = self.host_read(buf.phys + slot * CQ_ENTRY_SIZE, CQ_ENTRY_SIZE as usize);
            out.push(CqEntry::read_from_bytes(&bytes).unwrap());
            *read = read.wrapping_add(1);
        }
        self.wr(cq::BASE + cq::CI, *read);
        out
    }

    /// Runs one job and returns the completions it produced (`n` of them), after the
    /// completion interrupt.
    pub fn run(&self, q: u32, asid: u16, tag: u64, packets: &[Packet], n: u32) -> Vec<CqEntry> {
        self.job(q, asid, tag, packets);
        let out = self.completions(n);
        self.wait_idle(q);
        out
    }

    pub fn cq_irqs(&self) -> u64 {
        self.irq_count(VECTOR_CQ)
    }

    // ---- firmware ----

    /// One mailbox request, answered after the firmware interrupt.
    pub fn fw_raw(&self, request: [u32; MAILBOX_DWORDS]) -> [u32; MAILBOX_DWORDS] {
        for (i, d) in request.iter().enumerate() {
            self.wr(mbox_req::instance(i as u32), *d);
        }
        let mut seen = self.fw_seen.lock().unwrap();
        self.wr(mbox::BASE + mbox::DOORBELL, 1);
        *seen += 1;
        self.wait_irq(VECTOR_FIRMWARE, *seen);
        let status = self.rd(mbox::BASE + mbox::STATUS);
        assert_eq!(
            status & 0b10,
            0b10,
            "RESP_VALID after the firmware interrupt"
        );
        let mut resp = [0u32; MAILBOX_DWORDS];
        for (i, d) in resp.iter_mut().enumerate() {
            *d = self.rd(mbox_resp::instance(i as u32));
        }
        self.wr(mbox::BASE + mbox::STATUS, 0b10);
        resp
    }

    pub fn fw(&self, code: u16, seq: u32, payload: &[u32]) -> Message {
        let resp = self.fw_raw(
            Message {
                code,
                seq,
                payload: payload.to_vec(),
            }
            .to_dwords(),
        );
        Message::from_dwords(&resp).expect("a well-formed response")
    }
}

/// Page tables for one address space, built by the test in HBM through BAR2.
pub struct PageTables<'a> {
    dev: &'a Dev,
    pub root: u64,
    next: u64,
}

impl<'a> PageTables<'a> {
    /// Tables allocated from HBM at `pool` upwards.
    pub fn new(dev: &'a Dev, pool: u64) -> Self {
        let mut pt = Self {
            dev,
            root: 0,
            next: pool,
        };
        pt.root = pt.table();
        pt
    }

    fn table(&mut self) -> u64 {
        let t = self.next;
        self.next += mmu::TABLE_SIZE;
        self.dev.hbm_write(t, &[0; mmu::TABLE_SIZE as usize]);
        t
    }

    fn entry(&self, table: u64, index: u64) -> u64 {
        u64::from_le_bytes(self.dev.hbm_read(table + index * 8, 8).try_into().unwrap())
    }

    fn set(&self, table: u64, index: u64, pte: u64) {
        self.dev.hbm_write(table + index * 8, &pte.to_le_bytes());
    }

    /// The table at `hop` (1 to 3) for `va`, created as needed.
    fn table_for(&mut self, va: u64, hop: u32) -> u64 {
        let mut t = self.root;
        for h in 0..hop {
            let i = mmu::index(va, h);
            let e = self.entry(t, i);
            t = if e & mmu::PTE_PRESENT != 0 {
                e & mmu::PTE_ADDR_MASK
            } else {
                let n = self.table();
                self.set(t, i, mmu::pte(n, 0));
                n
            };
        }
        t
    }

    /// Maps one 4 KiB page.
    pub fn map_4k(&mut self, va: u64, addr: u64, flags: u64) {
        let t = self.table_for(va, 3);
        self.set(t, mmu::index(va, 3), mmu::pte(addr, flags));
    }

    /// Maps one 2 MiB page.
    pub fn map_2m(&mut self, va: u64, addr: u64, flags: u64) {
        let t = self.table_for(va, 2);
        self.set(t, mmu::index(va, 2), mmu::pte(addr, flags | mmu::PTE_LARGE));
    }

    /// Maps `len` bytes of HBM at `pa` in 4 KiB pages.
    pub fn map_hbm_4k(&mut self, va: u64, pa: u64, len: u64, flags: u64) {
        for off in (0..len).step_by(4096) {
            self.map_4k(va + off, pa + off, flags);
        }
    }

    /// Maps a host buffer in 4 KiB host leaves.
    pub fn map_host(&mut self, va: u64, buf: &HostBuf, flags: u64) {
        for off in (0..buf.len).step_by(4096) {
            self.map_4k(va + off, buf.iova + off, flags | mmu::PTE_HOST);
        }
    }

    /// Installs the tables as `asid`'s.
    pub fn install(&self, asid: u32) {
        use sagrada_hw_accel_abi::regs::mmu_hop0;
        self.dev
            .wr64(mmu_hop0::instance(asid) + mmu_hop0::LO, self.root);
        use sagrada_hw_accel_abi::regs::mmu as mmu_regs;
        self.dev.wr(mmu_regs::BASE + mmu_regs::INVALIDATE, asid);
    }
}

impl Dev {
    /// Puts `packets` in a host buffer mapped read-only at `va` of the address space
    /// of `pt`: a command buffer for an unprivileged entry.
    pub fn user_cb(&self, pt: &mut PageTables<'_>, va: u64, packets: &[Packet]) -> (u64, u32) {
        let mut bytes = Vec::new();
        for p in packets {
            p.encode_into(&mut bytes);
        }
        let buf = self.host(bytes.len().max(4) as u64);
        self.host_write(buf.phys, &bytes);
        pt.map_host(va, &buf, 0);
        (va, bytes.len() as u32)
    }

    /// Submits one unprivileged entry whose command buffer is mapped at `va`.
    pub fn user_job(
        &self,
        q: u32,
        asid: u16,
        tag: u64,
        pt: &mut PageTables<'_>,
        va: u64,
        packets: &[Packet],
    ) {
        let (cb_addr, cb_size) = self.user_cb(pt, va, packets);
        self.submit(
            q,
            &[RingEntry {
                cb_addr,
                cb_size,
                asid,
                tag,
                ..Default::default()
            }],
        );
    }
}

/// A deterministic pattern of `len` bytes.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).rotate_left(7) as u8 ^ seed)
        .collect()
}

pub fn iova(a: u64) -> Iova {
    Iova(a)
}
