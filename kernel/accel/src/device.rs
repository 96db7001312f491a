//! One SG1: probe, interrupts, queues, the completion path and reset.
//!
//! Everything here reaches the device through [`Mmio`] (BAR0), DMA-coherent host memory
//! the device reads and writes (rings, completion queue, the kernel's completion command
//! buffers) and the interrupts it raises.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use sagrada_hw_accel_abi::entry::{CqEntry, CqStatus, RING_ENTRY_SIZE, RingEntry};
use sagrada_hw_accel_abi::firmware::{OP_GET_INFO, OP_GET_VERSION, PROTOCOL_MAJOR};
use sagrada_hw_accel_abi::launch::CoreFault;
use sagrada_hw_accel_abi::mmu::host_phys;
use sagrada_hw_accel_abi::packet::Packet;
use sagrada_hw_accel_abi::regs::{cores, cq, global, mmu, msix, queue, sob, sob_owner};
use sagrada_hw_accel_abi::{
    HBM_BAR, NUM_ASIDS, NUM_QUEUES, REG_BAR, VECTOR_CQ, VECTOR_FIRMWARE, VECTOR_MMU, VECTOR_MONITOR,
};
use sagrada_hw_fabric::{DeviceId, Fabric};
use sagrada_kernel_core::{DmaCoherent, Errno, IrqHandler, KResult, Kernel, MsiMessage, lock};
use sagrada_kernel_dmabuf::DmaBufRegistry;
use zerocopy::{FromBytes, IntoBytes};

use crate::context::ContextInner;
use crate::cs::{CoreFaultRecord, Cs, CsError};
use crate::firmware::Mailbox;
use crate::memory::{DRAM_PAGE_SIZE, HbmAllocator, HbmWindow, PtPool};
use crate::mmio::Mmio;
use crate::tdr::Watchdog;
use crate::uapi::{CsChunk, MAX_CORES, STATUS_IN_RESET, STATUS_MALFUNCTION, STATUS_OPERATIONAL};

/// Entries of each queue ring.
const QUEUE_ENTRIES: u32 = 1024;
/// Entries of the completion queue.
const CQ_ENTRIES: u32 = 4096;
/// Bytes reserved per ring slot for the kernel's completion command buffer.
const FENCE_CB_STRIDE: u64 = 16;
/// DMA engines (queues DMA0 and DMA1; the third queue is COMPUTE).
pub const DMA_QUEUES: u32 = 2;
/// Sync objects reserved for the kernel; contexts own blocks above.
pub const KERNEL_SOBS: u32 = 1024;
/// Sync objects each context owns.
pub const SOBS_PER_CONTEXT: u32 = 16;

/// Driver options (module parameters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DriverParams {
    /// Map a peer that shares a switch with the SG1 by the HBM BAR's bus address (what
    /// the kernel's p2pdma API does) instead of through the importer's IOMMU domain
    /// with `dma_map_resource` (what the merged habanalabs exporter does, sending
    /// switch-local traffic up to the root complex). Off by default: habanalabs
    /// behaviour.
    pub p2p_bus_addr: bool,
    /// habanalabs' `timeout_locked`: a submission still running this long after it was
    /// queued fails with `ETIMEDOUT` and the device is soft-reset (which also ends the
    /// wait of a context closing with it). Zero disables lockup detection. 30 s by
    /// default, as in habanalabs.
    pub timeout_locked: Duration,
}

impl Default for DriverParams {
    fn default() -> Self {
        Self {
            p2p_bus_addr: false,
            timeout_locked: Duration::from_secs(30),
        }
    }
}

/// Why a device was not bound.
#[derive(Debug, thiserror::Error)]
#[error("{device} ({bdf}): {reason}")]
pub struct ProbeError {
    /// The device's name ("accel0").
    pub device: String,
    /// Its PCI address.
    pub bdf: String,
    /// What went wrong.
    pub reason: String,
}

struct Queue {
    ring: DmaCoherent,
    fence_cbs: DmaCoherent,
    pi: u32,
}

struct Cq {
    ring: DmaCoherent,
    ci: u32,
}

struct Job {
    cs: Arc<Cs>,
}

/// Device-wide counters the driver keeps.
#[derive(Debug, Default)]
pub(crate) struct DriverCounters {
    pub cs_completed: AtomicU64,
    pub cs_aborted: AtomicU64,
    /// Submissions the watchdog found locked up.
    pub lockups: AtomicU64,
}

/// The driver's state for one SG1.
pub(crate) struct DeviceInner {
    pub kernel: Weak<Kernel>,
    pub fabric: Arc<Fabric>,
    pub dev: DeviceId,
    pub name: String,
    pub params: DriverParams,
    pub registry: Arc<DmaBufRegistry>,
    pub mmio: Mmio,
    pub hbm: HbmWindow,
    pub hbm_size: u64,
    pub fw_version: (u32, u32, u32),
    pub serial: u32,
    /// The compute cores: `GLOBAL.NUM_CORES`, `CORE_CLOCK_MHZ`, `ISA_VERSION`.
    pub compute: ComputeInfo,
    vectors: Vec<MsiMessage>,
    mailbox: Arc<Mailbox>,
    queues: [Mutex<Queue>; NUM_QUEUES as usize],
    cq: Mutex<Cq>,
    jobs: Mutex<HashMap<u64, Job>>,
    next_tag: AtomicU64,
    pub hbm_alloc: Mutex<HbmAllocator>,
    pub pt_pool: Mutex<PtPool>,
    asids: Mutex<[bool; NUM_ASIDS as usize]>,
    state: AtomicU32,
    /// Hard resets so far: memory from an earlier generation is gone with the reset.
    pub generation: AtomicU64,
    /// Live dma-buf exports of this device's memory.
    pub exports: AtomicU32,
    pub contexts: Mutex<Vec<Weak<ContextInner>>>,
    pub counters: DriverCounters,
    watchdog: Watchdog,
}

impl std::fmt::Debug for DeviceInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sg1Device")
            .field("name", &self.name)
            .field("dev", &self.dev)
            .finish_non_exhaustive()
    }
}

/// What the device says about its compute cores, read at probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ComputeInfo {
    /// Cores 0 to `cores - 1` exist.
    pub cores: u32,
    /// Their clock, MHz.
    pub clock_mhz: u32,
    /// The ISA they run: major, minor.
    pub isa: (u32, u32),
}

/// Frees interrupt vectors on a failed probe.
struct IrqGuard {
    kernel: Arc<Kernel>,
    vectors: Vec<MsiMessage>,
}

impl Drop for IrqGuard {
    fn drop(&mut self) {
        for v in &self.vectors {
            let _ = self.kernel.free_irq(v.vector);
        }
    }
}

/// Writes an MSI-X table entry and unmasks it.
fn program_msix(mmio: &Mmio, vector: u32, msg: &MsiMessage) -> KResult<()> {
    let base = msix::instance(vector);
    mmio.write64(base + msix::ADDR_LO, msg.address)?;
    mmio.write(base + msix::DATA, msg.data)?;
    mmio.write(base + msix::CTRL, 0)
}

fn ring_entry(cb_addr: u64, cb_size: u32, asid: u16, tag: u64) -> RingEntry {
    RingEntry {
        cb_addr,
        cb_size,
        asid,
        flags: 0,
        tag,
        reserved: 0,
    }
}

impl DeviceInner {
    /// Binds the driver to SG1 endpoint `dev`.
    pub fn probe(
        kernel: &Arc<Kernel>,
        registry: &Arc<DmaBufRegistry>,
        dev: DeviceId,
        index: u32,
        params: DriverParams,
    ) -> Result<Arc<Self>, ProbeError> {
        let fabric = kernel.fabric().clone();
        let function = fabric.function(dev).clone();
        let name = format!("accel{index}");
        let fail = |reason: String| ProbeError {
            device: name.clone(),
            bdf: function.bdf.to_string(),
            reason,
        };
        let io = |what: &str, e: Errno| fail(format!("{what}: {e}"));
        let bar = |i| function.bars.iter().find(|b| b.index == i).cloned();
        let (Some(bar0), Some(bar2)) = (bar(REG_BAR), bar(HBM_BAR)) else {
            return Err(fail("BAR0 or BAR2 is missing".into()));
        };
        let mmio = Mmio::new(fabric.clone(), bar0.phys);
        let id = mmio
            .read(global::ID)
            .map_err(|e| io("reading the chip id", e))?;
        if id != 0x5347_0001 {
            return Err(fail(format!("unexpected chip id {id:#010x}")));
        }
        let status = mmio
            .read(global::STATUS)
            .map_err(|e| io("reading the status", e))?;
        if !global::fields::STATUS::FW_READY.is_set(status) {
            return Err(fail("the firmware has not booted".into()));
        }
        let hbm_size = mmio
            .read64(global::HBM_SIZE_LO)
            .map_err(|e| io("reading the HBM size", e))?;
        if hbm_size == 0 || hbm_size > bar2.size || hbm_size % DRAM_PAGE_SIZE != 0 {
            return Err(fail(format!(
                "HBM of {hbm_size:#x} bytes does not fit its BAR of {:#x}",
                bar2.size
            )));
        }

        // Interrupts first: the firmware answers through one.
        let slot: Arc<OnceLock<Weak<DeviceInner>>> = Arc::new(OnceLock::new());
        let mailbox = Arc::new(Mailbox::default());
        let mut vectors = IrqGuard {
            kernel: kernel.clone(),
            vectors: Vec::new(),
        };
        let handlers: [(u32, &str, IrqHandler); 4] = [
            (
                VECTOR_CQ,
                "cq",
                Self::handler(&slot, |d| d.on_cq_interrupt()),
            ),
            (
                VECTOR_MMU,
                "mmu",
                Self::handler(&slot, |d| d.on_mmu_interrupt()),
            ),
            (VECTOR_FIRMWARE, "fw", {
                let mb = mailbox.clone();
                Arc::new(move || mb.on_interrupt())
            }),
            (VECTOR_MONITOR, "monitor", Arc::new(|| {})),
        ];
        for (v, what, handler) in handlers {
            let msg = kernel
                .request_irq(&format!("{name}-{what}"), handler)
                .map_err(|e| io("requesting an interrupt vector", e))?;
            vectors.vectors.push(msg);
            program_msix(&mmio, v, &msg).map_err(|e| io("programming MSI-X", e))?;
        }

        let version = mailbox
            .call(&mmio, OP_GET_VERSION, &[])
            .map_err(|e| io("asking the firmware its version", e))?;
        let [major, minor, patch, ..] = version[..] else {
            return Err(fail(
                "the firmware's GET_VERSION answer is too short".into(),
            ));
        };
        if major != PROTOCOL_MAJOR {
            return Err(fail(format!(
                "firmware {major}.{minor}.{patch} speaks mailbox protocol {major}, this driver speaks protocol {PROTOCOL_MAJOR}; refusing the device"
            )));
        }
        let info = mailbox
            .call(&mmio, OP_GET_INFO, &[])
            .map_err(|e| io("asking the firmware for device information", e))?;
        let fw_version = (major, minor, patch);
        let serial = info.get(6).copied().unwrap_or(0);

        let read = |reg, what: &str| mmio.read(reg).map_err(|e| io(what, e));
        let cores = read(global::NUM_CORES, "reading the number of compute cores")?;
        if cores as usize > MAX_CORES {
            return Err(fail(format!(
                "the device reports {cores} compute cores; this driver knows at most {MAX_CORES}"
            )));
        }
        let isa = read(global::ISA_VERSION, "reading the ISA version")?;
        let compute = ComputeInfo {
            cores,
            clock_mhz: read(global::CORE_CLOCK_MHZ, "reading the core clock")?,
            isa: (
                global::fields::ISA_VERSION::MAJOR.get(isa),
                global::fields::ISA_VERSION::MINOR.get(isa),
            ),
        };

        let alloc = |bytes| {
            kernel
                .dma_alloc_coherent(dev, bytes)
                .map_err(|e| io("allocating DMA memory", e))
        };
        let mut queues = Vec::new();
        for _ in 0..NUM_QUEUES {
            let ring = alloc(u64::from(QUEUE_ENTRIES) * RING_ENTRY_SIZE)?;
            let fence_cbs = alloc(u64::from(QUEUE_ENTRIES) * FENCE_CB_STRIDE)?;
            queues.push(Mutex::new(Queue {
                ring,
                fence_cbs,
                pi: 0,
            }));
        }
        let cq_ring = alloc(u64::from(CQ_ENTRIES) * size_of::<CqEntry>() as u64)?;
        let queues: [Mutex<Queue>; NUM_QUEUES as usize] = queues
            .try_into()
            .map_err(|_| fail("internal: queue count".into()))?;

        // Page tables take the top of HBM; contexts allocate below.
        let pt_bytes = (hbm_size / 32).max(16 << 20).div_ceil(DRAM_PAGE_SIZE) * DRAM_PAGE_SIZE;
        let dram_user = hbm_size.saturating_sub(pt_bytes);
        let mut asids = [false; NUM_ASIDS as usize];
        asids[0] = true;
        let inner = Arc::new(DeviceInner {
            kernel: kernel.downgrade(),
            fabric: fabric.clone(),
            dev,
            name: name.clone(),
            params,
            registry: registry.clone(),
            mmio,
            hbm: HbmWindow {
                fabric: fabric.clone(),
                bar: bar2.phys,
            },
            hbm_size,
            fw_version,
            serial,
            compute,
            vectors: std::mem::take(&mut vectors.vectors),
            mailbox,
            queues,
            cq: Mutex::new(Cq {
                ring: cq_ring,
                ci: 0,
            }),
            jobs: Mutex::new(HashMap::new()),
            next_tag: AtomicU64::new(1),
            hbm_alloc: Mutex::new(HbmAllocator::new(dram_user)),
            pt_pool: Mutex::new(PtPool::new(dram_user, hbm_size)),
            asids: Mutex::new(asids),
            state: AtomicU32::new(STATUS_OPERATIONAL),
            generation: AtomicU64::new(0),
            exports: AtomicU32::new(0),
            contexts: Mutex::new(Vec::new()),
            counters: DriverCounters::default(),
            watchdog: Watchdog::new(&name, params.timeout_locked, slot.clone()),
        });
        let _ = slot.set(Arc::downgrade(&inner));
        inner
            .program_queues()
            .map_err(|e| io("programming the queues", e))?;
        Ok(inner)
    }

    fn handler(
        slot: &Arc<OnceLock<Weak<DeviceInner>>>,
        f: fn(&DeviceInner),
    ) -> Arc<dyn Fn() + Send + Sync> {
        let slot = slot.clone();
        Arc::new(move || {
            if let Some(d) = slot.get().and_then(Weak::upgrade) {
                f(&d);
            }
        })
    }

    /// Points the device at the rings and enables them (after probe and resets).
    fn program_queues(&self) -> KResult<()> {
        for (q, queue) in self.queues.iter().enumerate() {
            let qb = queue::instance(q as u32);
            let mut queue = lock(queue);
            queue.pi = 0;
            self.mmio
                .write64(qb + queue::BASE_LO, queue.ring.iova().raw())?;
            self.mmio
                .write(qb + queue::SIZE_LOG2, QUEUE_ENTRIES.trailing_zeros())?;
            self.mmio.write(qb + queue::PI, 0)?;
            self.mmio
                .write(qb + queue::CTRL, queue::fields::CTRL::ENABLE.mask())?;
        }
        let mut cqs = lock(&self.cq);
        cqs.ci = 0;
        self.mmio
            .write64(cq::BASE + cq::BASE_LO, cqs.ring.iova().raw())?;
        self.mmio
            .write(cq::BASE + cq::SIZE_LOG2, CQ_ENTRIES.trailing_zeros())?;
        self.mmio.write(cq::BASE + cq::CI, 0)?;
        self.mmio
            .write(cq::BASE + cq::CTRL, cq::fields::CTRL::ENABLE.mask())
    }

    /// [`crate::uapi::STATUS_OPERATIONAL`] and friends.
    pub fn status(&self) -> u32 {
        self.state.load(Ordering::Acquire)
    }

    /// `EBUSY` unless the device is operational (habanalabs' `hl_device_operational`).
    pub fn check_operational(&self) -> KResult<()> {
        match self.status() {
            STATUS_OPERATIONAL => Ok(()),
            STATUS_MALFUNCTION => Err(Errno::EIO),
            _ => Err(Errno::EBUSY),
        }
    }

    /// A free ASID, or `EBUSY` when every address space is in use.
    pub fn alloc_asid(&self) -> KResult<u16> {
        let mut asids = lock(&self.asids);
        let free = asids.iter().position(|used| !used).ok_or(Errno::EBUSY)?;
        asids[free] = true;
        Ok(free as u16)
    }

    /// Gives an ASID back.
    pub fn release_asid(&self, asid: u16) {
        lock(&self.asids)[asid as usize] = false;
    }

    /// The sync objects an ASID owns.
    pub fn sob_range(asid: u16) -> (u32, u32) {
        (
            KERNEL_SOBS + (u32::from(asid) - 1) * SOBS_PER_CONTEXT,
            SOBS_PER_CONTEXT,
        )
    }

    /// Gives (or takes back, with `owner` 0) an ASID's sync objects, zeroed.
    pub fn set_sob_owner(&self, asid: u16, owner: u16) -> KResult<()> {
        let (base, count) = Self::sob_range(asid);
        for s in base..base + count {
            self.mmio.write(sob::instance(s) + sob::VALUE, 0)?;
            self.mmio
                .write(sob_owner::instance(s) + sob_owner::ASID, u32::from(owner))?;
        }
        Ok(())
    }

    /// Points the MMU at an ASID's page table (0: none).
    pub fn set_hop0(&self, asid: u16, hop0: u64) -> KResult<()> {
        self.mmio.write64(
            sagrada_hw_accel_abi::regs::mmu_hop0::instance(u32::from(asid)),
            hop0,
        )?;
        self.mmio
            .write(mmu::BASE + mmu::INVALIDATE, u32::from(asid))
    }

    /// Scrubs HBM with the device's scrubber (synchronous).
    pub fn scrub(&self, hbm_pa: u64, len: u64) -> KResult<()> {
        use sagrada_hw_accel_abi::regs::scrub;
        self.mmio.write64(scrub::BASE + scrub::ADDR_LO, hbm_pa)?;
        self.mmio.write64(scrub::BASE + scrub::SIZE_LO, len)?;
        self.mmio
            .write(scrub::BASE + scrub::CTRL, scrub::fields::CTRL::GO.mask())?;
        let status = self.mmio.read(scrub::BASE + scrub::STATUS)?;
        if scrub::fields::STATUS::ERROR.is_set(status) {
            tracing::error!(
                "{}: scrubbing {len:#x} bytes at {hbm_pa:#x} failed",
                self.name
            );
            return Err(Errno::EIO);
        }
        Ok(())
    }

    /// Queues the jobs of a submission: for each chunk, the user's command buffer in
    /// the context's address space, then the kernel's `FENCE` that completes it.
    /// `EAGAIN` when a queue has no room (nothing is queued then).
    pub fn submit(&self, asid: u16, chunks: &[CsChunk], cs: &Arc<Cs>) -> KResult<()> {
        let mut guards: Vec<_> = self.queues.iter().map(lock).collect();
        // Under the queue locks: a reset marks the state before it takes them and
        // reprograms the rings (PI back to 0) only after it has released them, so a
        // submission that checked earlier could fill the rings in between and be lost.
        self.check_operational()?;
        for (q, guard) in guards.iter().enumerate() {
            let need = 2 * chunks.iter().filter(|c| c.queue == q as u32).count() as u32;
            if need == 0 {
                continue;
            }
            let ci = self.mmio.read(queue::instance(q as u32) + queue::CI)?;
            if QUEUE_ENTRIES - guard.pi.wrapping_sub(ci) < need {
                return Err(Errno::EAGAIN);
            }
        }
        let mut jobs = lock(&self.jobs);
        for chunk in chunks {
            let tag = self.next_tag.fetch_add(1, Ordering::Relaxed);
            jobs.insert(tag, Job { cs: cs.clone() });
            let queue = &mut guards[chunk.queue as usize];
            let user = queue.pi % QUEUE_ENTRIES;
            let kernel = (queue.pi + 1) % QUEUE_ENTRIES;
            let fence_at = u64::from(kernel) * FENCE_CB_STRIDE;
            let fence = Packet::Fence { tag }.encode();
            queue.fence_cbs.write(fence_at, &fence)?;
            let entries = [
                ring_entry(chunk.cb_addr, chunk.cb_size, asid, tag),
                ring_entry(
                    host_phys(queue.fence_cbs.iova().raw() + fence_at),
                    fence.len() as u32,
                    0,
                    tag,
                ),
            ];
            queue
                .ring
                .write(u64::from(user) * RING_ENTRY_SIZE, entries[0].as_bytes())?;
            queue
                .ring
                .write(u64::from(kernel) * RING_ENTRY_SIZE, entries[1].as_bytes())?;
            queue.pi = queue.pi.wrapping_add(2);
        }
        drop(jobs);
        self.watchdog.watch(cs);
        for (q, guard) in guards.iter().enumerate() {
            if chunks.iter().any(|c| c.queue == q as u32) {
                self.mmio
                    .write(queue::instance(q as u32) + queue::PI, guard.pi)?;
            }
        }
        Ok(())
    }

    /// The completion interrupt: drains the completion queue, failing jobs on error
    /// entries and completing submissions on their last `FENCE`.
    ///
    /// It runs on the thread of the engine that raised it, and a reset waits for that
    /// engine: so a reset never holds the completion-queue lock while resetting the
    /// device, and the handler stops draining once a reset has begun (the reset zeroes
    /// `CQ.PI` and aborts every job itself; entries read against the zeroed `PI` would
    /// be garbage).
    fn on_cq_interrupt(&self) {
        let mut finished = Vec::new();
        {
            let mut cqs = lock(&self.cq);
            // The state is checked after reading `PI`: a reset marks it before it
            // writes `GLOBAL.RESET`, so a `PI` the reset zeroed is never drained.
            while let Ok(pi) = self.mmio.read(cq::BASE + cq::PI)
                && pi != cqs.ci
                && self.status() == STATUS_OPERATIONAL
            {
                while cqs.ci != pi {
                    let mut raw = [0u8; size_of::<CqEntry>()];
                    let slot = u64::from(cqs.ci % CQ_ENTRIES) * size_of::<CqEntry>() as u64;
                    cqs.ci = cqs.ci.wrapping_add(1);
                    if cqs.ring.read(slot, &mut raw).is_err() {
                        continue;
                    }
                    let Ok(entry) = CqEntry::read_from_bytes(&raw) else {
                        continue;
                    };
                    self.on_completion(&entry, &mut finished);
                }
                let _ = self.mmio.write(cq::BASE + cq::CI, cqs.ci);
            }
        }
        for cs in finished {
            let counter = if cs.error().is_some() {
                &self.counters.cs_aborted
            } else {
                &self.counters.cs_completed
            };
            counter.fetch_add(1, Ordering::Relaxed);
            cs.complete();
        }
    }

    fn on_completion(&self, entry: &CqEntry, finished: &mut Vec<Arc<Cs>>) {
        let mut jobs = lock(&self.jobs);
        match CqStatus::from_raw(entry.status) {
            Some(CqStatus::Fence) => {
                if let Some(job) = jobs.remove(&entry.tag)
                    && job.cs.job_done(entry.device_time_ns)
                {
                    finished.push(job.cs);
                }
            }
            Some(status) => {
                if let (Some(job), Some(error)) = (
                    jobs.get(&entry.tag),
                    CsError::from_status(status, entry.info),
                ) {
                    if status == CqStatus::CoreFault {
                        self.take_core_fault(&job.cs, entry.info);
                    }
                    job.cs.fail(error);
                }
            }
            None => tracing::error!(
                "{}: completion entry with unknown status {}",
                self.name,
                entry.status
            ),
        }
    }

    /// A launch of `cs` failed with the core fault `info`: the faulting core's
    /// `CORE.FAULT_*` registers hold the detail. It goes to the submission's context
    /// (INFO_CORES shows it to that context only: an MMU fault's address is one of its
    /// own), and the record is cleared so that the core's next fault is recorded too.
    fn take_core_fault(&self, cs: &Cs, info: u64) {
        let f = CoreFault::from_info(info);
        let core = u32::from(f.core);
        if core >= self.compute.cores {
            return;
        }
        let base = cores::instance(core);
        let read = |r| self.mmio.read(base + r).unwrap_or(0);
        let cause = read(cores::FAULT_CAUSE);
        let code = cores::fields::FAULT_CAUSE::CODE.get(cause);
        let mut record = CoreFaultRecord {
            seq: cs.seq(),
            code: u32::from(f.code),
            pc: f.pc,
            info: 0,
            write: false,
        };
        // The record is this fault's unless something cleared it meanwhile (a reset):
        // then only the completion's code and pc are known.
        if code == u32::from(f.code) && read(cores::FAULT_PC) == f.pc {
            record.info = self.mmio.read64(base + cores::FAULT_INFO_LO).unwrap_or(0);
            record.write = cores::fields::FAULT_CAUSE::WRITE.is_set(cause);
        }
        if cause != 0 {
            // Writing back what was read clears the record and its overflow bit.
            let _ = self.mmio.write(base + cores::FAULT_CAUSE, cause);
        }
        cs.core_faults().set(core as usize, record);
    }

    /// The MMU-fault interrupt: the job's error arrives through the completion queue;
    /// here the fault record is read (for the log) and cleared.
    fn on_mmu_interrupt(&self) {
        let read = |r| self.mmio.read(mmu::BASE + r).unwrap_or(0);
        let va = u64::from(read(mmu::FAULT_VA_LO)) | u64::from(read(mmu::FAULT_VA_HI)) << 32;
        // User-caused: debug level, never the kernel log (a user could flood it).
        tracing::debug!(
            "{}: MMU fault: ASID {}, VA {va:#x}, cause {:#x}",
            self.name,
            read(mmu::FAULT_ASID),
            read(mmu::FAULT_CAUSE)
        );
        let clear =
            mmu::fields::FAULT_STATUS::VALID.mask() | mmu::fields::FAULT_STATUS::OVERFLOW.mask();
        let _ = self.mmio.write(mmu::BASE + mmu::FAULT_STATUS, clear);
    }

    /// Resets the device. Submissions in flight (of every context) are aborted with
    /// `ECANCELED`. A hard reset is refused with `EBUSY` while device memory is
    /// exported, and leaves every open context unusable (`ENODEV`).
    pub fn reset(&self, hard: bool) -> KResult<()> {
        if hard && self.exports.load(Ordering::Acquire) > 0 {
            return Err(Errno::EBUSY);
        }
        // A hard reset is also how a device out of order is given another chance.
        let may_start = |s| s == STATUS_OPERATIONAL || (hard && s == STATUS_MALFUNCTION);
        if self
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                may_start(s).then_some(STATUS_IN_RESET)
            })
            .is_err()
        {
            return Err(Errno::EBUSY);
        }
        let aborted: Vec<Arc<Cs>> = {
            // Not the completion-queue lock: the completion handler takes it on an
            // engine's thread, and the device waits for its engines to leave their
            // entries before the reset write completes (holding it deadlocked).
            let _queues: Vec<_> = self.queues.iter().map(lock).collect();
            let bit = if hard {
                global::fields::RESET::HARD
            } else {
                global::fields::RESET::SOFT
            };
            let done = self.mmio.write(global::RESET, bit.mask());
            let aborted = self.take_jobs();
            if let Err(e) = done {
                // The jobs will never complete: their submissions end here.
                self.state.store(STATUS_MALFUNCTION, Ordering::Release);
                self.abort(aborted);
                return Err(e);
            }
            aborted
        };
        let restored = self.after_reset(hard);
        self.state.store(
            if restored.is_ok() {
                STATUS_OPERATIONAL
            } else {
                STATUS_MALFUNCTION
            },
            Ordering::Release,
        );
        self.abort(aborted);
        restored
    }

    /// Every submission with a job on the device, each once.
    fn take_jobs(&self) -> Vec<Arc<Cs>> {
        let mut seen = std::collections::HashSet::new();
        lock(&self.jobs)
            .drain()
            .map(|(_, j)| j.cs)
            .filter(|cs| seen.insert(Arc::as_ptr(cs)))
            .collect()
    }

    /// Ends submissions whose jobs a reset (or a dead device) took away.
    fn abort(&self, aborted: Vec<Arc<Cs>>) {
        for cs in aborted {
            cs.fail(CsError::RESET);
            self.counters.cs_aborted.fetch_add(1, Ordering::Relaxed);
            cs.complete();
        }
    }

    /// The watchdog found `cs` still running after `timeout_locked`.
    pub(crate) fn on_lockup(&self, cs: &Arc<Cs>) {
        // A reset already under way ends it (as cancelled, not timed out): let it.
        while self.status() == STATUS_IN_RESET {
            std::thread::sleep(Duration::from_micros(100));
        }
        if cs.fence().test_signaled_flag() {
            return;
        }
        tracing::error!(
            "{}: a submission is still running after {:?}; soft reset",
            self.name,
            self.params.timeout_locked
        );
        cs.fail(CsError::TIMED_OUT);
        self.counters.lockups.fetch_add(1, Ordering::Relaxed);
        match self.reset(false) {
            Ok(()) => {}
            // A reset in progress aborts it too.
            Err(_) if self.status() == STATUS_IN_RESET => {}
            // Out of order: nothing will ever complete its jobs.
            Err(e) => {
                tracing::error!("{}: the reset failed ({e}); aborting every job", self.name);
                let jobs = self.take_jobs();
                self.abort(jobs);
            }
        }
    }

    fn after_reset(&self, hard: bool) -> KResult<()> {
        if hard {
            for (v, msg) in [VECTOR_CQ, VECTOR_MMU, VECTOR_FIRMWARE, VECTOR_MONITOR]
                .into_iter()
                .zip(&self.vectors)
            {
                program_msix(&self.mmio, v, msg)?;
            }
            self.generation.fetch_add(1, Ordering::AcqRel);
            lock(&self.hbm_alloc).reset();
            lock(&self.pt_pool).reset();
        }
        self.program_queues()?;
        let contexts: Vec<_> = lock(&self.contexts)
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        for ctx in contexts {
            if hard {
                ctx.mark_defunct();
            } else if !ctx.is_defunct() {
                self.set_sob_owner(ctx.asid(), ctx.asid())?;
            }
        }
        Ok(())
    }

    /// INFO_FIRMWARE: asks the firmware for its status and a heartbeat.
    pub fn firmware_status(&self) -> KResult<crate::uapi::FirmwareInfo> {
        use sagrada_hw_accel_abi::firmware::{OP_GET_STATUS, OP_HEARTBEAT};
        let status = self.mailbox.call(&self.mmio, OP_GET_STATUS, &[])?;
        let beat = self.mailbox.call(&self.mmio, OP_HEARTBEAT, &[0x5347])?;
        let at = |v: &[u32], i: usize| v.get(i).copied().unwrap_or(0);
        Ok(crate::uapi::FirmwareInfo {
            boot_status: at(&status, 0),
            temperature_mc: at(&status, 3),
            heartbeat_ok: u32::from(at(&beat, 0) == 0x5348),
            pad: 0,
            uptime_ms: u64::from(at(&beat, 1)) | u64::from(at(&beat, 2)) << 32,
        })
    }

    /// Registers of the engines, for INFO.
    pub fn queue_counter(&self, q: u32, lo: u32) -> u64 {
        self.mmio.read64(queue::instance(q) + lo).unwrap_or(0)
    }
}

impl Drop for DeviceInner {
    fn drop(&mut self) {
        if let Some(kernel) = self.kernel.upgrade() {
            for v in &self.vectors {
                let _ = kernel.free_irq(v.vector);
            }
        }
    }
}
