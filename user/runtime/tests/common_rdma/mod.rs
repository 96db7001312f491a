//! What the RDMA tests share: the machines (the NIC flavours), a connected pair of RC
//! QPs on one NIC (pyverbs' client and server: our NIC loops packets for its own GID
//! back), dma-bufs exported from SG1 HBM with their contents reached through the SG1's
//! DMA, the dma-buf attachment count from debugfs, and polling one completion.
// Each test file is its own crate and uses only some of these.
#![allow(dead_code)]

use std::time::Duration;

use sagrada::accel::{Device, DeviceMemory};
use sagrada::fabric::TopologyConfig;
use sagrada::verbs::{
    CompletionQueue, ConnectAttr, Context, ProtectionDomain, QpInitAttr, QueuePair, WorkCompletion,
    qp_cap, rc_connect,
};
use sagrada::{Machine, MachineBuilder};
use sagrada_kernel_accel::uapi::{DramUsage, INFO_DRAM_USAGE};
use sagrada_kernel_dmabuf::uapi::BUFINFO_PATH;
use sagrada_kernel_rdma::uapi::regs::CAP_ODP;
use sagrada_sys::{Errno, Fd, OpenFlags, Process};

/// The safety net of every wait for a completion (never a measurement).
pub const T: Duration = Duration::from_secs(20);

/// The two kinds of NIC a dma-buf region behaves differently on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavour {
    /// On-demand paging (the default): dma-bufs are attached dynamically.
    Odp,
    /// No on-demand paging: dma-bufs are pinned at registration.
    Pinned,
}

/// The default machine, both its NICs of `flavour`.
pub fn machine(flavour: Flavour) -> Machine {
    machine_builder(flavour).build().unwrap()
}

/// A builder of the default machine, both its NICs of `flavour`.
pub fn machine_builder(flavour: Flavour) -> MachineBuilder {
    let odp = flavour == Flavour::Odp;
    Machine::builder(&TopologyConfig::default_machine())
        .rnic_odp("nic0", odp)
        .rnic_odp("nic1", odp)
}

/// Asserts that the NIC of `ctx` is of `flavour` (its `CAP_ODP` bit).
pub fn assert_flavour(ctx: &Context<'_>, flavour: Flavour) {
    let odp = ctx.query_device().unwrap().caps & CAP_ODP != 0;
    assert_eq!(odp, flavour == Flavour::Odp, "{}", ctx.path());
}

/// xorshift64: the tests' deterministic pseudo-random numbers.
#[derive(Debug)]
pub struct Rand(pub u64);

impl Rand {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `[lo, hi)`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
}

/// One end of a connection: its own context, PD, CQ and RC QP (fields in drop order).
#[derive(Debug)]
pub struct Side<'p> {
    pub qp: QueuePair<'p>,
    pub cq: CompletionQueue<'p>,
    pub pd: ProtectionDomain<'p>,
    pub ctx: Context<'p>,
}

impl<'p> Side<'p> {
    fn open(p: &'p Process, nic: u32) -> Self {
        let ctx = Context::open(p, nic).unwrap();
        let pd = ctx.alloc_pd().unwrap();
        let cq = ctx.create_cq(64, None, 0).unwrap();
        let qp = pd
            .create_qp(&QpInitAttr::rc(&cq, &cq, qp_cap(16, 16, 1, 1, 0)))
            .unwrap();
        Side { qp, cq, pd, ctx }
    }

    /// The next completion of this side's CQ (there must be one within [`T`]).
    pub fn poll_one(&self) -> WorkCompletion {
        poll_one(&self.cq)
    }
}

/// pyverbs' `create_players`: a client and a server on `/dev/infiniband/uverbs{nic}`,
/// each with its own context, connected to each other with `attr`.
pub fn rc_pair<'p>(p: &'p Process, nic: u32, attr: &ConnectAttr) -> (Side<'p>, Side<'p>) {
    let client = Side::open(p, nic);
    let server = Side::open(p, nic);
    rc_connect(&client.qp, &server.qp, attr).unwrap();
    (client, server)
}

/// The next completion of `cq`; fails the test if none comes within [`T`].
pub fn poll_one(cq: &CompletionQueue<'_>) -> WorkCompletion {
    let wc = cq.poll_until(1, T).unwrap();
    assert_eq!(wc.len(), 1, "no completion within {T:?}");
    wc[0]
}

/// Asserts that `cq` holds no completion now.
pub fn assert_cq_empty(cq: &CompletionQueue<'_>) {
    let mut wc = [WorkCompletion::default(); 1];
    assert_eq!(cq.poll(&mut wc).unwrap(), 0, "unexpected {:?}", wc[0]);
}

/// A dma-buf over SG1 HBM: device memory and an export of its first `size` bytes
/// (exports are whole 4 KiB pages, so `size` is rounded up, as DRM rounds a GEM
/// object). Exported HBM is not CPU-mappable: its bytes are read and written by the
/// SG1's DMA through pinned host memory.
#[derive(Debug)]
pub struct HbmDmaBuf<'d, 'p> {
    pub dev: &'d Device<'p>,
    pub mem: DeviceMemory,
    pub fd: Fd,
    pub size: u64,
}

impl<'d, 'p> HbmDmaBuf<'d, 'p> {
    pub fn new(dev: &'d Device<'p>, size: u64) -> Self {
        let size = size.next_multiple_of(4096);
        let mem = dev.alloc(size, false).unwrap();
        let fd = dev.export_dmabuf(&mem, 0, size).unwrap();
        HbmDmaBuf { dev, mem, fd, size }
    }

    pub fn write(&self, offset: u64, bytes: &[u8]) {
        assert!(offset + bytes.len() as u64 <= self.size);
        self.dev.upload(self.mem.va + offset, bytes).unwrap();
    }

    pub fn read(&self, offset: u64, len: usize) -> Vec<u8> {
        assert!(offset + len as u64 <= self.size);
        let mut out = vec![0u8; len];
        self.dev.download(self.mem.va + offset, &mut out).unwrap();
        out
    }

    pub fn write_u64(&self, offset: u64, value: u64) {
        self.write(offset, &value.to_le_bytes());
    }

    pub fn read_u64(&self, offset: u64) -> u64 {
        u64::from_le_bytes(self.read(offset, 8).try_into().unwrap())
    }

    /// How many devices are attached to the dma-buf now.
    pub fn attachments(&self) -> usize {
        attached_devices(self.dev.process(), self.fd)
    }

    /// Closes the export and frees the memory: both fail if an importer still holds
    /// the buffer (the export keeps the memory; `FREE` of exported memory is
    /// `EINVAL`).
    pub fn release(self) -> Result<(), Errno> {
        self.dev.process().close(self.fd)?;
        self.dev.free(self.mem)
    }
}

/// Asserts that `dev` has every byte of its HBM free again.
pub fn assert_hbm_all_free(dev: &Device<'_>) {
    let usage: DramUsage = dev.query(INFO_DRAM_USAGE).unwrap();
    assert_eq!(usage.free, usage.total, "HBM still allocated: {usage:?}");
}

/// The number of devices attached to the dma-buf `fd`, from debugfs `bufinfo` (the
/// buffer found by the inode its fdinfo gives).
pub fn attached_devices(p: &Process, fd: Fd) -> usize {
    let fdinfo = p.fdinfo(fd).unwrap();
    let ino: u64 = fdinfo
        .lines()
        .find_map(|l| l.strip_prefix("ino:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no inode in fdinfo:\n{fdinfo}"));
    let reader = p.open(BUFINFO_PATH, OpenFlags::RDONLY).unwrap();
    let text = String::from_utf8(p.read_to_end(reader).unwrap()).unwrap();
    p.close(reader).unwrap();
    // A buffer's line has the inode in its sixth column; its "Total N devices
    // attached" line follows its attached devices.
    let mut lines = text.lines();
    lines
        .find(|l| l.split('\t').nth(5).and_then(|f| f.trim().parse().ok()) == Some(ino))
        .unwrap_or_else(|| panic!("inode {ino} is not in bufinfo:\n{text}"));
    lines
        .find_map(|l| {
            l.strip_prefix("Total ")?
                .strip_suffix(" devices attached")?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no attachment count for inode {ino} in bufinfo:\n{text}"))
}
