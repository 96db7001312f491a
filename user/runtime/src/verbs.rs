//! RDMA verbs from user space: what libibverbs and an rdma-core provider (mlx5, rxe) do
//! together, over the verbs uAPI of `/dev/infiniband/uverbsN`
//! ([`sagrada_kernel_rdma::uapi`]).
//!
//! The control path goes through the kernel: opening a device, protection domains,
//! memory registration (of process memory, or of a dma-buf: the peer-to-peer path),
//! completion queues and channels, queue pairs and their state changes, asynchronous
//! events. The data path does not: as an rdma-core provider does, this library writes
//! work-queue entries into the send and receive rings it has mapped, rings the
//! doorbell on the context's doorbell page (UAR) with one 8-byte store, and polls
//! completion entries from the mapped CQ ring, in the formats of
//! [`sagrada_kernel_rdma::uapi::queue`].
//!
//! ```text
//! let ctx = Context::open(&p, 0)?;
//! let pd = ctx.alloc_pd()?;
//! let cq = ctx.create_cq(64, None, 0)?;
//! let buf = HostBuffer::new(&p, 4096)?;
//! let mr = pd.reg_mr(buf.ptr(), 4096, access::LOCAL_WRITE | access::REMOTE_WRITE)?;
//! let qp = pd.create_qp(&QpInitAttr::rc(&cq, &cq, cap))?;
//! rc_connect(&qp, &peer, &ConnectAttr::default())?;
//! qp.post_send(&[SendWr::write(1, &[mr.sge(0, 64)], raddr, rkey).signaled()])?;
//! let wcs = cq.poll_until(1, Duration::from_secs(5))?;
//! ```
//!
//! Rings, and who owns which index (the provider's half of the rules in
//! [`sagrada_kernel_rdma::uapi::queue`]):
//! - Send ring: this library owns the producer index `pi` (a free-running count of
//!   WQEs written) and the tail, the oldest slot not yet known to be free. A send
//!   completion names the WQE it completes (`wqe_counter`); polling it moves the
//!   owning QP's tail to `wqe_counter + 1`, which also frees the unsignaled WQEs before
//!   it. Occupancy is `pi - tail`; a post that would exceed the ring (or the
//!   `max_send_wr` the driver granted, if smaller) fails with `ENOMEM`. As with every
//!   verbs provider, a QP that only ever posts unsignaled work fills up: signal one
//!   work request every so often.
//! - Receive ring: every receive completes (successfully or flushed), in order, so
//!   occupancy is `pi` minus the receive completions polled.
//! - CQ ring: the NIC owns the producer side; an entry at free-running index `i` is
//!   valid when its owner byte is `owner_for(i, log_size)`. The owner byte is read
//!   first, then (after an acquire fence) the whole entry, whose owner byte is checked
//!   again. After a poll that consumed entries the consumer index is stored into the
//!   CQ's doorbell record, so the NIC sees the slots free.
//! - Completions find their QP by `qp_num` in a registry per context (a CQ may serve
//!   several QPs); a QP destroyed or reset has its entries still in the CQ dropped, as
//!   mlx5's `__mlx5_cq_clean` does.
//!
//! Objects hold their context, so a context's fd closes (and the kernel releases what
//! is left) when the last object of it is gone. Each object can be destroyed
//! explicitly (errors such as `EBUSY` returned, the object staying usable to retry)
//! or by dropping it (errors ignored; destroy QPs before their CQs and PD, as in C).
//!
//! Left out: UD sends (the send WQE has no address vector), shared receive queues,
//! memory windows, the extended CQ and work-request APIs, resizing CQs, and
//! `ibv_ack_cq_events` (the kernel model does not count unacknowledged events).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{Ordering, fence};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sagrada_kernel_core::lock;
use sagrada_kernel_rdma::uapi::queue::{
    CQE_SIZE, Cqe, RECV_WQE_DATA, RECV_WQE_SIZE, RecvWqe, SEND_WQE_DATA, SEND_WQE_SIZE, SendWqe,
    owner_for,
};
use sagrada_kernel_rdma::uapi::regs::{
    CQ_ARM_SOLICITED, UAR_CQ_ARM, UAR_RQ_DB, UAR_SIZE, UAR_SQ_DB,
};
use sagrada_kernel_rdma::uapi::{
    AllocPd, CreateCompChannel, CreateCq, CreateQp, Destroy, ModifyQp, QueryDevice, QueryPort,
    QueryQp, RDMA_ALLOC_PD, RDMA_CREATE_COMP_CHANNEL, RDMA_CREATE_CQ, RDMA_CREATE_QP,
    RDMA_DEALLOC_PD, RDMA_DEREG_MR, RDMA_DESTROY_CQ, RDMA_DESTROY_QP, RDMA_MODIFY_QP,
    RDMA_QUERY_DEVICE, RDMA_QUERY_PORT, RDMA_QUERY_QP, RDMA_REG_DMABUF_MR, RDMA_REG_MR,
    RegDmabufMr, RegMr, UAR_MMAP_OFFSET,
};
use sagrada_sys::{Errno, Fd, MapFlags, OpenFlags, PollFd, PollMask, Process, Prot, UserPtr};
use zerocopy::{FromBytes, Immutable, IntoBytes};

pub use sagrada_kernel_rdma::uapi::queue::{Sge, WC_GRH, WC_WITH_IMM};
pub use sagrada_kernel_rdma::uapi::verbs::{
    Mtu, PortState, QpState, QpType, WcOpcode, WcStatus, WrOpcode, access, attr_mask, send_flags,
};
pub use sagrada_kernel_rdma::uapi::{
    AsyncEvent, CqEvent, DeviceAttr, EVENT_CQ_ERR, EVENT_PORT_ACTIVE, EVENT_PORT_ERR,
    EVENT_QP_FATAL, PortAttr, QpAttr, QpCap,
};

/// Where the uverbs device nodes live.
const UVERBS_PREFIX: &str = "/dev/infiniband/uverbs";

/// SGEs that fit in a send WQE's data area.
const SEND_SLOT_SGES: usize = (SEND_WQE_SIZE - SEND_WQE_DATA) / size_of::<Sge>();
/// Inline bytes that fit in a send WQE's data area.
const SEND_SLOT_INLINE: usize = SEND_WQE_SIZE - SEND_WQE_DATA;
/// SGEs that fit in a receive WQE.
const RECV_SLOT_SGES: usize = (RECV_WQE_SIZE - RECV_WQE_DATA) / size_of::<Sge>();
/// Offset of the owner byte in a CQE.
const CQE_OWNER: usize = std::mem::offset_of!(Cqe, owner);
/// Largest log2 of ring entries this library accepts from the kernel (the NIC's
/// limits are far below; this only keeps the arithmetic in range).
const MAX_LOG_RING: u32 = 24;

const _: () = assert!(CQE_OWNER == CQE_SIZE - 1);

/// A verbs call failed: which one, and the errno.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{op}: {errno}")]
pub struct VerbsError {
    /// The libibverbs name of the call (`ibv_reg_dmabuf_mr`).
    pub op: &'static str,
    /// Why.
    pub errno: Errno,
}

/// The result of a verbs call.
pub type Result<T> = std::result::Result<T, VerbsError>;

/// A post was refused: the work requests before `index` were posted, the one at
/// `index` and those after it were not (`*bad_wr` of `ibv_post_send`). If the
/// doorbell store itself fails, none of the call's requests is posted: `index` is 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("work request {index} was not posted: {errno}")]
pub struct PostError {
    /// The first work request not posted.
    pub index: usize,
    /// Why.
    pub errno: Errno,
}

fn fail(op: &'static str) -> impl Fn(Errno) -> VerbsError {
    move |errno| VerbsError { op, errno }
}

/// The uverbs device nodes of the machine (`/dev/infiniband/uverbsN`), by number:
/// what `ibv_get_device_list` finds (from the kernel's device table, as libibverbs
/// reads sysfs; nothing is opened).
pub fn devices(process: &Process) -> Vec<String> {
    let mut found: Vec<(u32, String)> = process
        .kernel()
        .device_paths()
        .into_iter()
        .filter_map(|path| {
            let n = path.strip_prefix(UVERBS_PREFIX)?.parse().ok()?;
            Some((n, path))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, path)| path).collect()
}

/// Which device to open: `/dev/infiniband/uverbs{index}`, or a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceRef<'a> {
    /// `/dev/infiniband/uverbs{n}`.
    Index(u32),
    /// A device node path.
    Path(&'a str),
}

impl From<u32> for DeviceRef<'_> {
    fn from(n: u32) -> Self {
        DeviceRef::Index(n)
    }
}

impl<'a> From<&'a str> for DeviceRef<'a> {
    fn from(path: &'a str) -> Self {
        DeviceRef::Path(path)
    }
}

impl<'a> From<&'a String> for DeviceRef<'a> {
    fn from(path: &'a String) -> Self {
        DeviceRef::Path(path)
    }
}

/// What every object of a context shares: the process, the uverbs fd, the doorbell
/// page, and the registry of QPs by number that completions are matched against.
#[derive(Debug)]
struct Ctx<'p> {
    p: &'p Process,
    fd: Fd,
    path: String,
    uar: UserPtr,
    qps: Mutex<HashMap<u32, Arc<QpShared>>>,
}

impl Ctx<'_> {
    fn call<T: IntoBytes + FromBytes + Immutable>(
        &self,
        op: &'static str,
        cmd: u32,
        arg: &mut T,
    ) -> Result<()> {
        self.p
            .ioctl_with(self.fd, cmd, arg)
            .map(drop)
            .map_err(fail(op))
    }

    fn destroy(&self, op: &'static str, cmd: u32, handle: u32) -> Result<()> {
        self.call(op, cmd, &mut Destroy { handle, pad: 0 })
    }

    /// Destroys an object once: a no-op when `live` is already false. Returns whether
    /// it was destroyed now (so the caller releases what it held); on an error (EBUSY)
    /// the object stays live and usable.
    fn destroy_once(
        &self,
        live: &mut bool,
        op: &'static str,
        cmd: u32,
        handle: u32,
    ) -> Result<bool> {
        if !*live {
            return Ok(false);
        }
        self.destroy(op, cmd, handle)?;
        *live = false;
        Ok(true)
    }

    /// One 8-byte store to a doorbell of the UAR: the NIC takes the queue number and
    /// the index from a single MMIO write, so it must never be split.
    fn ring_doorbell(&self, offset: u32, value: u64) -> std::result::Result<(), Errno> {
        let ptr = self
            .uar
            .checked_add(u64::from(offset))
            .ok_or(Errno::EFAULT)?;
        self.p.write_mem(ptr, &value.to_le_bytes())
    }

    fn query_port(&self, port_num: u8) -> Result<PortAttr> {
        let mut q = QueryPort {
            port_num: u32::from(port_num),
            ..Default::default()
        };
        self.call("ibv_query_port", RDMA_QUERY_PORT, &mut q)?;
        Ok(q.attr)
    }
}

impl Drop for Ctx<'_> {
    fn drop(&mut self) {
        // The process may be gone (ESRCH); nothing is left to release then.
        let _ = self.p.munmap(self.uar, u64::from(UAR_SIZE));
        let _ = self.p.close(self.fd);
    }
}

/// An open RDMA device (`struct ibv_context`): its uverbs fd and doorbell page.
/// Clones share the context.
#[derive(Debug, Clone)]
pub struct Context<'p> {
    ctx: Arc<Ctx<'p>>,
}

impl<'p> Context<'p> {
    /// `ibv_open_device`: opens the device node and maps its doorbell page.
    pub fn open<'a>(process: &'p Process, device: impl Into<DeviceRef<'a>>) -> Result<Self> {
        let op = "ibv_open_device";
        let path = match device.into() {
            DeviceRef::Index(n) => format!("{UVERBS_PREFIX}{n}"),
            DeviceRef::Path(path) => path.to_owned(),
        };
        let fd = process
            .open(&path, OpenFlags::RDWR.union(OpenFlags::CLOEXEC))
            .map_err(fail(op))?;
        // Write-only, as mlx5 maps its UARs: doorbells are stores.
        let uar = match process.mmap(
            fd,
            u64::from(UAR_SIZE),
            Prot::WRITE,
            MapFlags::SHARED,
            UAR_MMAP_OFFSET,
        ) {
            Ok(uar) => uar,
            Err(errno) => {
                let _ = process.close(fd);
                return Err(VerbsError { op, errno });
            }
        };
        Ok(Self {
            ctx: Arc::new(Ctx {
                p: process,
                fd,
                path,
                uar,
                qps: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The uverbs fd.
    pub fn fd(&self) -> Fd {
        self.ctx.fd
    }

    /// The device node it was opened from.
    pub fn path(&self) -> &str {
        &self.ctx.path
    }

    /// The process.
    pub fn process(&self) -> &'p Process {
        self.ctx.p
    }

    /// Where the doorbell page is mapped.
    pub fn uar(&self) -> UserPtr {
        self.ctx.uar
    }

    /// `ibv_query_device`.
    pub fn query_device(&self) -> Result<DeviceAttr> {
        let mut q = QueryDevice::default();
        self.ctx
            .call("ibv_query_device", RDMA_QUERY_DEVICE, &mut q)?;
        Ok(q.attr)
    }

    /// `ibv_query_port` (the NIC has port 1).
    pub fn query_port(&self, port_num: u8) -> Result<PortAttr> {
        self.ctx.query_port(port_num)
    }

    /// `ibv_alloc_pd`.
    pub fn alloc_pd(&self) -> Result<ProtectionDomain<'p>> {
        let mut a = AllocPd::default();
        self.ctx.call("ibv_alloc_pd", RDMA_ALLOC_PD, &mut a)?;
        Ok(ProtectionDomain {
            ctx: self.ctx.clone(),
            handle: a.pd_handle,
            live: true,
        })
    }

    /// `ibv_create_comp_channel`.
    pub fn create_comp_channel(&self) -> Result<CompChannel<'p>> {
        let mut c = CreateCompChannel { fd: -1, pad: 0 };
        self.ctx
            .call("ibv_create_comp_channel", RDMA_CREATE_COMP_CHANNEL, &mut c)?;
        Ok(CompChannel {
            ctx: self.ctx.clone(),
            fd: c.fd,
            live: true,
        })
    }

    /// `ibv_create_cq`: a CQ of at least `cqe` entries, reporting its completion events
    /// on `channel` (if any) with `cq_context`.
    pub fn create_cq(
        &self,
        cqe: u32,
        channel: Option<&CompChannel<'_>>,
        cq_context: u64,
    ) -> Result<CompletionQueue<'p>> {
        let op = "ibv_create_cq";
        let mut c = CreateCq {
            cq_context,
            cqe,
            comp_channel: channel.map_or(-1, |ch| ch.fd),
            ..Default::default()
        };
        self.ctx.call(op, RDMA_CREATE_CQ, &mut c)?;
        let p = self.ctx.p;
        let mapped = cq_dbrec_offset(&c).and_then(|dbrec| {
            let ring = p.mmap(
                self.ctx.fd,
                c.mmap_len,
                Prot::READ_WRITE,
                MapFlags::SHARED,
                c.mmap_offset,
            )?;
            match ring.checked_add(dbrec) {
                Some(dbrec) => Ok((ring, dbrec)),
                None => {
                    let _ = p.munmap(ring, c.mmap_len);
                    Err(Errno::EFAULT)
                }
            }
        });
        let (ring, dbrec) = match mapped {
            Ok(m) => m,
            Err(errno) => {
                let _ = self
                    .ctx
                    .destroy("ibv_destroy_cq", RDMA_DESTROY_CQ, c.cq_handle);
                return Err(VerbsError { op, errno });
            }
        };
        Ok(CompletionQueue {
            ctx: self.ctx.clone(),
            handle: c.cq_handle,
            cqe: c.cqe_out,
            cq_context,
            map_len: c.mmap_len,
            dbrec,
            shared: Arc::new(CqShared {
                cqn: c.cqn,
                ring,
                log_size: c.log_size,
                state: Mutex::new(CqState::default()),
            }),
            live: true,
        })
    }

    /// `ibv_get_async_event`: the next asynchronous event (a QP or CQ error, a port
    /// change), read from the uverbs fd. With `nonblocking`, `None` when there is none;
    /// otherwise waits for one.
    pub fn get_async_event(&self, nonblocking: bool) -> Result<Option<AsyncEvent>> {
        let timeout = if nonblocking {
            Some(Duration::ZERO)
        } else {
            None
        };
        read_record(self.ctx.p, self.ctx.fd, timeout).map_err(fail("ibv_get_async_event"))
    }
}

/// The doorbell record's offset in the mapping of a CQ the kernel created, or
/// `EPROTO` if the kernel's answer does not describe a usable mapping (a ring of
/// `2^log_size` entries, then the record, within `mmap_len`).
fn cq_dbrec_offset(c: &CreateCq) -> std::result::Result<u64, Errno> {
    if c.log_size > MAX_LOG_RING || c.cqe_out > 1 << c.log_size {
        return Err(Errno::EPROTO);
    }
    let ring_bytes = (1u64 << c.log_size) * CQE_SIZE as u64;
    let dbrec_end = c.dbrec_offset.checked_add(4).ok_or(Errno::EPROTO)?;
    if c.dbrec_offset < ring_bytes || dbrec_end > c.mmap_len || !c.dbrec_offset.is_multiple_of(4) {
        return Err(Errno::EPROTO);
    }
    Ok(c.dbrec_offset)
}

/// `poll` for `timeout` (`None`: for ever), in the milliseconds `poll(2)` takes,
/// rounded up so that a short wait is not a non-blocking one.
fn poll_timeout_ms(timeout: Option<Duration>) -> i32 {
    match timeout {
        None => -1,
        Some(t) => {
            let ms = t.as_nanos().div_ceil(1_000_000);
            i32::try_from(ms).unwrap_or(i32::MAX)
        }
    }
}

/// Waits up to `timeout` for `fd` to be readable, then reads one record of `T` (an
/// event). `None` when the wait timed out or the read found nothing.
fn read_record<T: FromBytes>(
    p: &Process,
    fd: Fd,
    timeout: Option<Duration>,
) -> std::result::Result<Option<T>, Errno> {
    let mut fds = [PollFd::new(fd, PollMask::IN)];
    if p.poll(&mut fds, poll_timeout_ms(timeout))? == 0 {
        return Ok(None);
    }
    let revents = fds[0].revents;
    if revents.intersects(PollMask::NVAL) {
        return Err(Errno::EBADF);
    }
    if !revents.intersects(PollMask::IN) {
        // ERR or HUP without data: a read would wait for ever.
        return Err(Errno::EIO);
    }
    let bytes = match p.read(fd, size_of::<T>()) {
        Ok(bytes) => bytes,
        // Another reader took it between the poll and the read.
        Err(Errno::EAGAIN) => return Ok(None),
        Err(e) => return Err(e),
    };
    if bytes.is_empty() {
        return Ok(None);
    }
    T::read_from_bytes(&bytes)
        .map(Some)
        .map_err(|_| Errno::EPROTO)
}

/// A protection domain (`struct ibv_pd`).
#[derive(Debug)]
pub struct ProtectionDomain<'p> {
    ctx: Arc<Ctx<'p>>,
    handle: u32,
    live: bool,
}

impl<'p> ProtectionDomain<'p> {
    /// Its handle in the context.
    pub fn handle(&self) -> u32 {
        self.handle
    }

    fn check(&self, op: &'static str) -> Result<()> {
        if self.live {
            Ok(())
        } else {
            Err(VerbsError {
                op,
                errno: Errno::EINVAL,
            })
        }
    }

    /// `ibv_reg_mr`: registers `len` bytes of the process's memory at `addr`; the
    /// region answers to its own addresses.
    pub fn reg_mr(&self, addr: UserPtr, len: u64, access: u32) -> Result<MemoryRegion<'p>> {
        self.register("ibv_reg_mr", addr, len, addr.0, access)
    }

    /// `ibv_reg_mr_iova`: as [`ProtectionDomain::reg_mr`], the region answering to
    /// addresses from `iova`.
    pub fn reg_mr_iova(
        &self,
        addr: UserPtr,
        len: u64,
        iova: u64,
        access: u32,
    ) -> Result<MemoryRegion<'p>> {
        self.register("ibv_reg_mr_iova", addr, len, iova, access)
    }

    fn register(
        &self,
        op: &'static str,
        addr: UserPtr,
        length: u64,
        iova: u64,
        access: u32,
    ) -> Result<MemoryRegion<'p>> {
        self.check(op)?;
        let mut r = RegMr {
            addr: addr.0,
            length,
            iova,
            pd_handle: self.handle,
            access,
            ..Default::default()
        };
        self.ctx.call(op, RDMA_REG_MR, &mut r)?;
        Ok(MemoryRegion {
            ctx: self.ctx.clone(),
            handle: r.mr_handle,
            lkey: r.lkey,
            rkey: r.rkey,
            addr: addr.0,
            iova,
            length,
            live: true,
        })
    }

    /// `ibv_reg_dmabuf_mr`: registers `length` bytes at `offset` of the dma-buf `fd`,
    /// answering to addresses from `iova` (same page offset as `offset`). As in
    /// libibverbs, the region's [`MemoryRegion::addr`] is `offset`.
    pub fn reg_dmabuf_mr(
        &self,
        offset: u64,
        length: u64,
        iova: u64,
        fd: Fd,
        access: u32,
    ) -> Result<MemoryRegion<'p>> {
        let op = "ibv_reg_dmabuf_mr";
        self.check(op)?;
        let mut r = RegDmabufMr {
            offset,
            length,
            iova,
            fd,
            access,
            pd_handle: self.handle,
            ..Default::default()
        };
        self.ctx.call(op, RDMA_REG_DMABUF_MR, &mut r)?;
        Ok(MemoryRegion {
            ctx: self.ctx.clone(),
            handle: r.mr_handle,
            lkey: r.lkey,
            rkey: r.rkey,
            addr: offset,
            iova,
            length,
            live: true,
        })
    }

    /// `ibv_create_qp`: a QP in RESET. Its CQs must belong to this context.
    pub fn create_qp(&self, init: &QpInitAttr<'_, 'p>) -> Result<QueuePair<'p>> {
        let op = "ibv_create_qp";
        self.check(op)?;
        let einval = VerbsError {
            op,
            errno: Errno::EINVAL,
        };
        for cq in [init.send_cq, init.recv_cq] {
            if !cq.live || !Arc::ptr_eq(&cq.ctx, &self.ctx) {
                return Err(einval);
            }
        }
        let mut c = CreateQp {
            cap: init.cap,
            pd_handle: self.handle,
            send_cq_handle: init.send_cq.handle,
            recv_cq_handle: init.recv_cq.handle,
            qp_type: init.qp_type as u8,
            sq_sig_all: u8::from(init.sq_sig_all),
            ..Default::default()
        };
        self.ctx.call(op, RDMA_CREATE_QP, &mut c)?;
        match self.map_qp(&c) {
            Ok((sq, rq)) => {
                let shared = Arc::new(QpShared {
                    send_cqn: init.send_cq.shared.cqn,
                    recv_cqn: init.recv_cq.shared.cqn,
                    rings: Mutex::new(QpRings {
                        state: QpState::Reset,
                        sq: Ring::new(c.log_sq_size, c.cap.max_send_wr),
                        rq: Ring::new(c.log_rq_size, c.cap.max_recv_wr),
                    }),
                });
                lock(&self.ctx.qps).insert(c.qpn, shared.clone());
                Ok(QueuePair {
                    ctx: self.ctx.clone(),
                    handle: c.qp_handle,
                    qpn: c.qpn,
                    qp_type: init.qp_type,
                    cap: c.cap,
                    sq_sig_all: init.sq_sig_all,
                    limits: Limits::new(&c.cap),
                    shared,
                    send_cq: init.send_cq.shared.clone(),
                    recv_cq: init.recv_cq.shared.clone(),
                    sq,
                    rq,
                    live: true,
                })
            }
            Err(errno) => {
                let _ = self
                    .ctx
                    .destroy("ibv_destroy_qp", RDMA_DESTROY_QP, c.qp_handle);
                Err(VerbsError { op, errno })
            }
        }
    }

    /// Maps the rings of a QP just created (a queue the driver gave no work requests
    /// is not mapped: nothing can be posted to it).
    fn map_qp(
        &self,
        c: &CreateQp,
    ) -> std::result::Result<(Option<Mapping>, Option<Mapping>), Errno> {
        if c.log_sq_size > MAX_LOG_RING || c.log_rq_size > MAX_LOG_RING {
            return Err(Errno::EPROTO);
        }
        let p = self.ctx.p;
        let map = |wrs: u32, log: u32, wqe: usize, offset: u64| {
            if wrs == 0 {
                return Ok(None);
            }
            let len = (1u64 << log) * wqe as u64;
            let ptr = p.mmap(self.ctx.fd, len, Prot::READ_WRITE, MapFlags::SHARED, offset)?;
            Ok(Some(Mapping { ptr, len }))
        };
        let sq = map(
            c.cap.max_send_wr,
            c.log_sq_size,
            SEND_WQE_SIZE,
            c.sq_mmap_offset,
        )?;
        match map(
            c.cap.max_recv_wr,
            c.log_rq_size,
            RECV_WQE_SIZE,
            c.rq_mmap_offset,
        ) {
            Ok(rq) => Ok((sq, rq)),
            Err(e) => {
                if let Some(m) = sq {
                    let _ = p.munmap(m.ptr, m.len);
                }
                Err(e)
            }
        }
    }

    /// `ibv_dealloc_pd`, `pyverbs`' `close`: `EBUSY` while regions or QPs use it (the PD
    /// stays usable); a no-op once done.
    pub fn close(&mut self) -> Result<()> {
        self.ctx
            .destroy_once(
                &mut self.live,
                "ibv_dealloc_pd",
                RDMA_DEALLOC_PD,
                self.handle,
            )
            .map(drop)
    }

    /// `ibv_dealloc_pd`.
    pub fn dealloc(mut self) -> Result<()> {
        self.close()
    }
}

impl Drop for ProtectionDomain<'_> {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

/// What a QP is created with (`struct ibv_qp_init_attr`).
#[derive(Debug, Clone, Copy)]
pub struct QpInitAttr<'a, 'p> {
    /// CQ of send completions.
    pub send_cq: &'a CompletionQueue<'p>,
    /// CQ of receive completions.
    pub recv_cq: &'a CompletionQueue<'p>,
    /// Wanted sizes (the QP gets at least these).
    pub cap: QpCap,
    /// RC, UC or UD.
    pub qp_type: QpType,
    /// Every send completes, signaled or not.
    pub sq_sig_all: bool,
}

impl<'a, 'p> QpInitAttr<'a, 'p> {
    /// An RC QP with these CQs and sizes, signaling only what asks to be.
    pub fn rc(
        send_cq: &'a CompletionQueue<'p>,
        recv_cq: &'a CompletionQueue<'p>,
        cap: QpCap,
    ) -> Self {
        Self {
            send_cq,
            recv_cq,
            cap,
            qp_type: QpType::Rc,
            sq_sig_all: false,
        }
    }
}

/// Queue sizes: `max_send_wr`, `max_recv_wr`, SGEs per send and per receive, inline
/// bytes (a [`QpCap`] without its padding).
pub fn qp_cap(
    max_send_wr: u32,
    max_recv_wr: u32,
    max_send_sge: u32,
    max_recv_sge: u32,
    max_inline_data: u32,
) -> QpCap {
    QpCap {
        max_send_wr,
        max_recv_wr,
        max_send_sge,
        max_recv_sge,
        max_inline_data,
        pad: 0,
    }
}

/// A registered memory region (`struct ibv_mr`).
#[derive(Debug)]
pub struct MemoryRegion<'p> {
    ctx: Arc<Ctx<'p>>,
    handle: u32,
    lkey: u32,
    rkey: u32,
    addr: u64,
    iova: u64,
    length: u64,
    live: bool,
}

impl MemoryRegion<'_> {
    /// Its handle in the context.
    pub fn handle(&self) -> u32 {
        self.handle
    }

    /// The local key (what SGEs carry).
    pub fn lkey(&self) -> u32 {
        self.lkey
    }

    /// The remote key (0 without remote access).
    pub fn rkey(&self) -> u32 {
        self.rkey
    }

    /// `mr->addr`: the registered process address, or for a dma-buf region its offset
    /// in the dma-buf.
    pub fn addr(&self) -> u64 {
        self.addr
    }

    /// The address the region answers to: what SGEs and a peer's `remote_addr` use
    /// (`addr` for [`ProtectionDomain::reg_mr`]).
    pub fn iova(&self) -> u64 {
        self.iova
    }

    /// Bytes.
    pub fn length(&self) -> u64 {
        self.length
    }

    /// An SGE of `len` bytes at `offset` into the region (not checked: the NIC checks
    /// SGEs, and tests build bad ones on purpose).
    pub fn sge(&self, offset: u64, len: u32) -> Sge {
        Sge {
            addr: self.iova.wrapping_add(offset),
            length: len,
            lkey: self.lkey,
        }
    }

    /// `ibv_dereg_mr`, `pyverbs`' `close`: a no-op once done.
    pub fn close(&mut self) -> Result<()> {
        self.ctx
            .destroy_once(&mut self.live, "ibv_dereg_mr", RDMA_DEREG_MR, self.handle)
            .map(drop)
    }

    /// `ibv_dereg_mr`.
    pub fn dereg(mut self) -> Result<()> {
        self.close()
    }
}

impl Drop for MemoryRegion<'_> {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

/// A completion channel (`struct ibv_comp_channel`): an fd that reports the events of
/// the CQs created with it.
#[derive(Debug)]
pub struct CompChannel<'p> {
    ctx: Arc<Ctx<'p>>,
    fd: Fd,
    live: bool,
}

impl CompChannel<'_> {
    /// The channel's fd.
    pub fn fd(&self) -> Fd {
        self.fd
    }

    /// `ibv_get_cq_event`: waits up to `timeout` (`None`: for ever) for a completion
    /// event, polling the fd and reading it; `None` if none came in time.
    pub fn get_cq_event(&self, timeout: Option<Duration>) -> Result<Option<CqEvent>> {
        let op = "ibv_get_cq_event";
        if !self.live {
            return Err(VerbsError {
                op,
                errno: Errno::EBADF,
            });
        }
        read_record(self.ctx.p, self.fd, timeout).map_err(fail(op))
    }

    /// `ibv_destroy_comp_channel`: closes the fd (the kernel keeps the channel while
    /// CQs use it); a no-op once done.
    pub fn close(&mut self) -> Result<()> {
        if self.live {
            self.live = false;
            self.ctx
                .p
                .close(self.fd)
                .map_err(fail("ibv_destroy_comp_channel"))?;
        }
        Ok(())
    }

    /// `ibv_destroy_comp_channel`.
    pub fn destroy(mut self) -> Result<()> {
        self.close()
    }
}

impl Drop for CompChannel<'_> {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

/// A work completion (`struct ibv_wc`). For a status other than success only
/// `wr_id`, `status`, `qp_num` and `vendor_err` are meaningful.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkCompletion {
    /// The work request's id.
    pub wr_id: u64,
    /// The outcome.
    pub status: WcStatus,
    /// What completed.
    pub opcode: WcOpcode,
    /// The NIC's detail of a failure (a `VENDOR_*` code of
    /// [`sagrada_kernel_rdma::uapi::queue`]).
    pub vendor_err: u32,
    /// Bytes received (receives) or transferred (READ, atomics).
    pub byte_len: u32,
    /// Immediate data in network byte order, as posted (`u32::from_be` gives the
    /// number), with [`WC_WITH_IMM`].
    pub imm_data: Option<u32>,
    /// The local QP.
    pub qp_num: u32,
    /// The remote QP (receives).
    pub src_qp: u32,
    /// [`WC_GRH`], [`WC_WITH_IMM`].
    pub wc_flags: u8,
}

impl Default for WorkCompletion {
    fn default() -> Self {
        Self {
            wr_id: 0,
            status: WcStatus::Success,
            opcode: WcOpcode::Send,
            vendor_err: 0,
            byte_len: 0,
            imm_data: None,
            qp_num: 0,
            src_qp: 0,
            wc_flags: 0,
        }
    }
}

impl WorkCompletion {
    /// Whether it completed successfully.
    pub fn is_success(&self) -> bool {
        self.status == WcStatus::Success
    }
}

/// One of a QP's two work queues (and which one a completion is from).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Queue {
    Send,
    Recv,
}

impl Queue {
    /// By the opcode: receive completions have bit 7 set (`IBV_WC_RECV` = 128).
    fn of_opcode(opcode: u8) -> Self {
        if opcode & 0x80 != 0 {
            Queue::Recv
        } else {
            Queue::Send
        }
    }
}

/// The work completion for a CQE from `queue`. Values outside the enumerations (which
/// a correct NIC does not write) read as a general error and the queue's usual
/// opcode, rather than failing the poll.
fn cqe_to_wc(cqe: &Cqe, queue: Queue) -> WorkCompletion {
    WorkCompletion {
        wr_id: cqe.wr_id,
        status: WcStatus::from_raw(cqe.status).unwrap_or(WcStatus::GeneralErr),
        opcode: WcOpcode::from_raw(cqe.opcode).unwrap_or(match queue {
            Queue::Send => WcOpcode::Send,
            Queue::Recv => WcOpcode::Recv,
        }),
        vendor_err: cqe.vendor_err,
        byte_len: cqe.byte_len,
        imm_data: (cqe.wc_flags & WC_WITH_IMM != 0).then_some(cqe.imm_data),
        qp_num: cqe.qp_num,
        src_qp: cqe.src_qp,
        wc_flags: cqe.wc_flags,
    }
}

/// The arm doorbell's value: CQN, "solicited only", and the consumer index.
fn cq_arm_value(cqn: u32, solicited_only: bool, ci: u32) -> u64 {
    let sol = if solicited_only { CQ_ARM_SOLICITED } else { 0 };
    u64::from(cqn & 0xff_ffff) | sol | u64::from(ci) << 32
}

/// A send or receive doorbell's value: QPN and the new producer index.
fn qp_doorbell_value(qpn: u32, pi: u32) -> u64 {
    u64::from(qpn & 0xff_ffff) | u64::from(pi) << 32
}

/// The CQ state shared with the QPs that complete into it (which drop their entries
/// when destroyed or reset).
#[derive(Debug)]
struct CqShared {
    cqn: u32,
    ring: UserPtr,
    log_size: u32,
    state: Mutex<CqState>,
}

#[derive(Debug, Default)]
struct CqState {
    /// The consumer index: free-running count of entries consumed.
    ci: u32,
    /// Entries at these indices belong to a QP destroyed or reset since: consumed
    /// without being returned.
    skip: HashSet<u32>,
}

impl CqShared {
    /// The entry at free-running index `i` if the NIC has written it: the owner byte
    /// first, then (ordered after it) the whole entry, whose owner byte must still say
    /// valid.
    fn read_cqe(&self, p: &Process, i: u32) -> std::result::Result<Option<Cqe>, Errno> {
        let mask = (1u32 << self.log_size) - 1;
        let slot = self
            .ring
            .checked_add(u64::from(i & mask) * CQE_SIZE as u64)
            .ok_or(Errno::EFAULT)?;
        let valid = owner_for(i, self.log_size);
        let mut owner = [0u8; 1];
        p.read_mem(
            slot.checked_add(CQE_OWNER as u64).ok_or(Errno::EFAULT)?,
            &mut owner,
        )?;
        if owner[0] != valid {
            return Ok(None);
        }
        fence(Ordering::Acquire);
        let mut bytes = [0u8; CQE_SIZE];
        p.read_mem(slot, &mut bytes)?;
        if bytes[CQE_OWNER] != valid {
            return Ok(None);
        }
        Ok(Cqe::read_from_bytes(&bytes).ok())
    }

    /// Marks the entries of QP `qpn` written so far as not to be returned.
    fn clean(&self, p: &Process, qpn: u32) {
        let mut st = lock(&self.state);
        let mut i = st.ci;
        for _ in 0..1u32 << self.log_size {
            match self.read_cqe(p, i) {
                Ok(Some(cqe)) => {
                    if cqe.qp_num == qpn {
                        st.skip.insert(i);
                    }
                    i = i.wrapping_add(1);
                }
                _ => break,
            }
        }
    }
}

/// A completion queue (`struct ibv_cq`).
#[derive(Debug)]
pub struct CompletionQueue<'p> {
    ctx: Arc<Ctx<'p>>,
    handle: u32,
    cqe: u32,
    cq_context: u64,
    map_len: u64,
    dbrec: UserPtr,
    shared: Arc<CqShared>,
    live: bool,
}

impl CompletionQueue<'_> {
    /// Its handle in the context.
    pub fn handle(&self) -> u32 {
        self.handle
    }

    /// The hardware CQ number.
    pub fn cqn(&self) -> u32 {
        self.shared.cqn
    }

    /// Entries (`cq->cqe`: at least as many as asked for).
    pub fn cqe(&self) -> u32 {
        self.cqe
    }

    /// The `cq_context` it was created with.
    pub fn cq_context(&self) -> u64 {
        self.cq_context
    }

    /// The consumer index (a free-running count of entries consumed).
    pub fn consumer_index(&self) -> u32 {
        lock(&self.shared.state).ci
    }

    fn check(&self, op: &'static str) -> Result<()> {
        if self.live {
            Ok(())
        } else {
            Err(VerbsError {
                op,
                errno: Errno::EINVAL,
            })
        }
    }

    /// `ibv_poll_cq`: up to `wc.len()` completions, oldest first; returns how many.
    /// Send completions free their QP's send-ring slots; the doorbell record is updated
    /// with the new consumer index.
    pub fn poll(&self, wc: &mut [WorkCompletion]) -> Result<usize> {
        let op = "ibv_poll_cq";
        self.check(op)?;
        let p = self.ctx.p;
        let mut st = lock(&self.shared.state);
        let start = st.ci;
        let mut n = 0;
        let mut error = None;
        while n < wc.len() {
            let cqe = match self.shared.read_cqe(p, st.ci) {
                Ok(Some(cqe)) => cqe,
                Ok(None) => break,
                Err(e) => {
                    error = Some(e);
                    break;
                }
            };
            let i = st.ci;
            st.ci = i.wrapping_add(1);
            if st.skip.remove(&i) {
                continue;
            }
            wc[n] = cqe_to_wc(&cqe, self.retire(&cqe));
            n += 1;
        }
        if st.ci != start
            && let Err(e) = p.write_mem(self.dbrec, &st.ci.to_le_bytes())
        {
            error.get_or_insert(e);
        }
        match error {
            // What was consumed is returned; the failure comes back at the next poll.
            Some(errno) if n == 0 => Err(VerbsError { op, errno }),
            _ => Ok(n),
        }
    }

    /// Frees the ring slots that `cqe` completes in its QP; returns which queue it is
    /// from.
    fn retire(&self, cqe: &Cqe) -> Queue {
        let qp = lock(&self.ctx.qps).get(&cqe.qp_num).cloned();
        let Some(qp) = qp else {
            return Queue::of_opcode(cqe.opcode);
        };
        let cqn = self.shared.cqn;
        let queue = if cqn == qp.send_cqn && cqn != qp.recv_cqn {
            Queue::Send
        } else if cqn == qp.recv_cqn && cqn != qp.send_cqn {
            Queue::Recv
        } else {
            Queue::of_opcode(cqe.opcode)
        };
        let mut rings = lock(&qp.rings);
        match queue {
            Queue::Send => {
                rings.sq.retire_to(cqe.wqe_counter);
            }
            Queue::Recv => {
                rings.rq.retire_one();
            }
        }
        queue
    }

    /// `ibv_req_notify_cq`: the next completion (with `solicited_only`, the next
    /// solicited or failed one) raises an event on the CQ's channel; at once if
    /// entries are waiting past the consumer index.
    pub fn req_notify(&self, solicited_only: bool) -> Result<()> {
        let op = "ibv_req_notify_cq";
        self.check(op)?;
        let st = lock(&self.shared.state);
        self.ctx
            .ring_doorbell(
                UAR_CQ_ARM,
                cq_arm_value(self.shared.cqn, solicited_only, st.ci),
            )
            .map_err(fail(op))
    }

    /// Polls; if nothing is there, arms the CQ, polls again, and waits on `channel`
    /// (the CQ's) for an event, until completions come or `timeout` (`None`: for ever)
    /// expires (then 0). Events on the channel are consumed, also those of other CQs:
    /// give a CQ polled this way a channel of its own.
    pub fn poll_blocking(
        &self,
        wc: &mut [WorkCompletion],
        channel: &CompChannel<'_>,
        timeout: Option<Duration>,
    ) -> Result<usize> {
        if wc.is_empty() {
            return Ok(0);
        }
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        loop {
            let n = self.poll(wc)?;
            if n > 0 {
                return Ok(n);
            }
            self.req_notify(false)?;
            let n = self.poll(wc)?;
            if n > 0 {
                return Ok(n);
            }
            let remaining = match (timeout, deadline) {
                (Some(_), Some(d)) => Some(d.saturating_duration_since(Instant::now())),
                // No timeout, or one too long to reach.
                _ => None,
            };
            if remaining == Some(Duration::ZERO) {
                return Ok(0);
            }
            if channel.get_cq_event(remaining)?.is_none() {
                return Ok(0);
            }
        }
    }

    /// Polls until `n` completions have come or `timeout` has passed, yielding the CPU
    /// between empty polls (the NIC runs on threads of its own, which a busy spin
    /// would starve) and sleeping a little once the wait grows long. Returns the
    /// completions, oldest first: fewer than `n` when the time ran out.
    pub fn poll_until(&self, n: usize, timeout: Duration) -> Result<Vec<WorkCompletion>> {
        let deadline = Instant::now().checked_add(timeout);
        let mut out = Vec::with_capacity(n.min(1024));
        let mut buf = [WorkCompletion::default(); 16];
        let mut idle = 0u32;
        while out.len() < n {
            let want = (n - out.len()).min(buf.len());
            let got = self.poll(&mut buf[..want])?;
            if got > 0 {
                out.extend_from_slice(&buf[..got]);
                idle = 0;
                continue;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
            idle = idle.saturating_add(1);
            if idle < 256 {
                std::thread::yield_now();
            } else {
                // The NIC may be waiting out a timer (an ACK timeout, an RNR delay):
                // leave the shared cores to it.
                std::thread::sleep(Duration::from_micros(20));
            }
        }
        Ok(out)
    }

    /// `ibv_destroy_cq`: `EBUSY` while QPs use it (the CQ stays usable); a no-op once
    /// done.
    pub fn close(&mut self) -> Result<()> {
        if self.ctx.destroy_once(
            &mut self.live,
            "ibv_destroy_cq",
            RDMA_DESTROY_CQ,
            self.handle,
        )? {
            let _ = self.ctx.p.munmap(self.shared.ring, self.map_len);
        }
        Ok(())
    }

    /// `ibv_destroy_cq`.
    pub fn destroy(mut self) -> Result<()> {
        self.close()
    }
}

impl Drop for CompletionQueue<'_> {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

/// A mapped ring.
#[derive(Debug, Clone, Copy)]
struct Mapping {
    ptr: UserPtr,
    len: u64,
}

/// One work queue's indices, all free-running u32 counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ring {
    /// WQEs written (the producer index the doorbell carries).
    pi: u32,
    /// WQEs known to be done: their slots are free.
    tail: u32,
    /// Outstanding WQEs allowed: the ring's entries, or fewer if the driver granted
    /// fewer work requests.
    limit: u32,
    log_size: u32,
}

impl Ring {
    fn new(log_size: u32, max_wr: u32) -> Self {
        let entries = 1u32.checked_shl(log_size).unwrap_or(0);
        Self {
            pi: 0,
            tail: 0,
            limit: max_wr.min(entries),
            log_size,
        }
    }

    fn outstanding(&self) -> u32 {
        self.pi.wrapping_sub(self.tail)
    }

    fn has_room(&self) -> bool {
        self.outstanding() < self.limit
    }

    /// Byte offset of the slot of WQE `index` in a ring of `wqe_size`-byte entries.
    fn slot_offset(&self, index: u32, wqe_size: usize) -> u64 {
        let mask = 1u32.checked_shl(self.log_size).unwrap_or(0).wrapping_sub(1);
        u64::from(index & mask) * wqe_size as u64
    }

    /// A completion of WQE `wqe_counter`: it and every WQE before it are done. A
    /// counter outside the outstanding WQEs (stale, or from before a reset) is ignored.
    fn retire_to(&mut self, wqe_counter: u32) -> bool {
        let advance = wqe_counter.wrapping_add(1).wrapping_sub(self.tail);
        if advance == 0 || advance > self.outstanding() {
            return false;
        }
        self.tail = wqe_counter.wrapping_add(1);
        true
    }

    /// One more WQE done, in order.
    fn retire_one(&mut self) -> bool {
        if self.outstanding() == 0 {
            return false;
        }
        self.tail = self.tail.wrapping_add(1);
        true
    }

    fn reset(&mut self) {
        self.pi = 0;
        self.tail = 0;
    }
}

/// A QP's state as its CQs see it too: the ring indices and the state that gates
/// posting.
#[derive(Debug)]
struct QpShared {
    send_cqn: u32,
    recv_cqn: u32,
    rings: Mutex<QpRings>,
}

#[derive(Debug)]
struct QpRings {
    state: QpState,
    sq: Ring,
    rq: Ring,
}

/// What a WQE may carry, from the sizes granted and what fits in a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Limits {
    send_sge: usize,
    recv_sge: usize,
    inline: usize,
}

impl Limits {
    fn new(cap: &QpCap) -> Self {
        let n = |v: u32| usize::try_from(v).unwrap_or(usize::MAX);
        Self {
            send_sge: n(cap.max_send_sge).min(SEND_SLOT_SGES),
            recv_sge: n(cap.max_recv_sge).min(RECV_SLOT_SGES),
            inline: n(cap.max_inline_data).min(SEND_SLOT_INLINE),
        }
    }
}

/// A send work request (`struct ibv_send_wr`), built with [`SendWr::send`] and its
/// siblings; the fields are public so that tests can build malformed ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendWr {
    /// Returned in the completion.
    pub wr_id: u64,
    /// The operation.
    pub opcode: WrOpcode,
    /// Where the data is (for READ and atomics: where the answer goes).
    pub sges: Vec<Sge>,
    /// [`send_flags`] bits.
    pub send_flags: u8,
    /// Immediate data, network byte order (`*_WITH_IMM`).
    pub imm_data: u32,
    /// RDMA or atomic target address.
    pub remote_addr: u64,
    /// RDMA or atomic target key.
    pub rkey: u32,
    /// Compare value (CMP_SWAP) or addend (FETCH_ADD).
    pub compare_add: u64,
    /// Swap value (CMP_SWAP).
    pub swap: u64,
    /// Inline payload carried in the request itself (with [`send_flags::INLINE`]);
    /// without it an inline request copies its SGEs' bytes from the process's memory
    /// at post time, taking their addresses as process addresses, as libibverbs does.
    pub inline_data: Option<Vec<u8>>,
}

impl SendWr {
    fn new(wr_id: u64, opcode: WrOpcode, sges: &[Sge]) -> Self {
        Self {
            wr_id,
            opcode,
            sges: sges.to_vec(),
            send_flags: 0,
            imm_data: 0,
            remote_addr: 0,
            rkey: 0,
            compare_add: 0,
            swap: 0,
            inline_data: None,
        }
    }

    /// SEND.
    pub fn send(wr_id: u64, sges: &[Sge]) -> Self {
        Self::new(wr_id, WrOpcode::Send, sges)
    }

    /// SEND with immediate data (network byte order: `1234u32.to_be()`).
    pub fn send_with_imm(wr_id: u64, sges: &[Sge], imm_data: u32) -> Self {
        Self {
            imm_data,
            ..Self::new(wr_id, WrOpcode::SendWithImm, sges)
        }
    }

    /// RDMA WRITE to `remote_addr` under `rkey`.
    pub fn write(wr_id: u64, sges: &[Sge], remote_addr: u64, rkey: u32) -> Self {
        Self {
            remote_addr,
            rkey,
            ..Self::new(wr_id, WrOpcode::RdmaWrite, sges)
        }
    }

    /// RDMA WRITE with immediate data (consumes a receive at the target).
    pub fn write_with_imm(
        wr_id: u64,
        sges: &[Sge],
        remote_addr: u64,
        rkey: u32,
        imm_data: u32,
    ) -> Self {
        Self {
            remote_addr,
            rkey,
            imm_data,
            ..Self::new(wr_id, WrOpcode::RdmaWriteWithImm, sges)
        }
    }

    /// RDMA READ from `remote_addr` under `rkey` into the SGEs.
    pub fn read(wr_id: u64, sges: &[Sge], remote_addr: u64, rkey: u32) -> Self {
        Self {
            remote_addr,
            rkey,
            ..Self::new(wr_id, WrOpcode::RdmaRead, sges)
        }
    }

    /// 64-bit compare and swap at `remote_addr`; the old value lands in `sge`.
    pub fn cmp_swap(
        wr_id: u64,
        sge: Sge,
        remote_addr: u64,
        rkey: u32,
        compare: u64,
        swap: u64,
    ) -> Self {
        Self {
            remote_addr,
            rkey,
            compare_add: compare,
            swap,
            ..Self::new(wr_id, WrOpcode::AtomicCmpAndSwp, &[sge])
        }
    }

    /// 64-bit fetch and add at `remote_addr`; the old value lands in `sge`.
    pub fn fetch_add(wr_id: u64, sge: Sge, remote_addr: u64, rkey: u32, add: u64) -> Self {
        Self {
            remote_addr,
            rkey,
            compare_add: add,
            ..Self::new(wr_id, WrOpcode::AtomicFetchAndAdd, &[sge])
        }
    }

    /// Asks for a completion on success too.
    #[must_use]
    pub fn signaled(mut self) -> Self {
        self.send_flags |= send_flags::SIGNALED;
        self
    }

    /// Sets the solicited-event bit.
    #[must_use]
    pub fn solicited(mut self) -> Self {
        self.send_flags |= send_flags::SOLICITED;
        self
    }

    /// Waits for earlier READs and atomics first.
    #[must_use]
    pub fn fence(mut self) -> Self {
        self.send_flags |= send_flags::FENCE;
        self
    }

    /// Carries the SGEs' bytes in the WQE (copied from the process's memory when
    /// posted; their keys are not used).
    #[must_use]
    pub fn inline(mut self) -> Self {
        self.send_flags |= send_flags::INLINE;
        self
    }

    /// Carries `payload` in the WQE instead of the SGEs.
    #[must_use]
    pub fn inline_data(mut self, payload: &[u8]) -> Self {
        self.send_flags |= send_flags::INLINE;
        self.inline_data = Some(payload.to_vec());
        self
    }

    fn is_inline(&self) -> bool {
        self.send_flags & send_flags::INLINE != 0
    }
}

/// A receive work request (`struct ibv_recv_wr`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecvWr {
    /// Returned in the completion.
    pub wr_id: u64,
    /// Where the message lands.
    pub sges: Vec<Sge>,
}

impl RecvWr {
    /// A receive into `sges`.
    pub fn new(wr_id: u64, sges: &[Sge]) -> Self {
        Self {
            wr_id,
            sges: sges.to_vec(),
        }
    }
}

/// The checks of `ibv_post_send` that need no memory (rxe's `validate_send_wr` and
/// `rxe_post_send`): the QP must be ready to send, the opcode valid for its type, the
/// SGEs and inline bytes within the QP's sizes, atomics 8 bytes and aligned.
fn validate_send(
    wr: &SendWr,
    qp_type: QpType,
    state: QpState,
    limits: &Limits,
) -> std::result::Result<(), Errno> {
    // An errored QP takes work requests and flushes them.
    if matches!(state, QpState::Reset | QpState::Init | QpState::Rtr) {
        return Err(Errno::EINVAL);
    }
    use WrOpcode::*;
    match (qp_type, wr.opcode) {
        // The send WQE carries no address vector (remote QPN, Q_Key, GID).
        (QpType::Ud, _) => return Err(Errno::EOPNOTSUPP),
        (QpType::Uc, RdmaRead | AtomicCmpAndSwp | AtomicFetchAndAdd) => {
            return Err(Errno::EINVAL);
        }
        _ => {}
    }
    let atomic = matches!(wr.opcode, AtomicCmpAndSwp | AtomicFetchAndAdd);
    if wr.is_inline() {
        if matches!(wr.opcode, RdmaRead) || atomic {
            return Err(Errno::EINVAL);
        }
        let len = match &wr.inline_data {
            Some(data) => data.len() as u64,
            None => {
                if wr.sges.len() > limits.send_sge {
                    return Err(Errno::EINVAL);
                }
                wr.sges.iter().map(|s| u64::from(s.length)).sum()
            }
        };
        if len > limits.inline as u64 {
            return Err(Errno::EINVAL);
        }
        return Ok(());
    }
    if wr.sges.len() > limits.send_sge {
        return Err(Errno::EINVAL);
    }
    if atomic {
        let len: u64 = wr.sges.iter().map(|s| u64::from(s.length)).sum();
        if len < 8 || wr.remote_addr & 7 != 0 {
            return Err(Errno::EINVAL);
        }
    }
    Ok(())
}

/// The checks of `ibv_post_recv`: not in RESET, SGEs within the QP's size.
fn validate_recv(wr: &RecvWr, state: QpState, limits: &Limits) -> std::result::Result<(), Errno> {
    if state == QpState::Reset || wr.sges.len() > limits.recv_sge {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

/// The 256-byte send slot for `wr`: the header, then its SGEs, or the inline payload
/// (`inline`, already gathered). `sig_all` marks every WQE signaled.
fn encode_send_wqe(
    wr: &SendWr,
    inline: Option<&[u8]>,
    sig_all: bool,
) -> std::result::Result<[u8; SEND_WQE_SIZE], Errno> {
    let mut slot = [0u8; SEND_WQE_SIZE];
    let mut flags = wr.send_flags;
    if sig_all {
        flags |= send_flags::SIGNALED;
    }
    let mut hdr = SendWqe {
        wr_id: wr.wr_id,
        remote_addr: wr.remote_addr,
        compare_add: wr.compare_add,
        swap: wr.swap,
        rkey: wr.rkey,
        imm_data: wr.imm_data,
        opcode: wr.opcode as u8,
        send_flags: flags,
        ..Default::default()
    };
    let data = slot.get_mut(SEND_WQE_DATA..).ok_or(Errno::EINVAL)?;
    match inline {
        Some(payload) => {
            hdr.send_flags |= send_flags::INLINE;
            hdr.inline_len = u32::try_from(payload.len()).map_err(|_| Errno::EINVAL)?;
            data.get_mut(..payload.len())
                .ok_or(Errno::EINVAL)?
                .copy_from_slice(payload);
        }
        None => {
            hdr.send_flags &= !send_flags::INLINE;
            hdr.num_sge = u8::try_from(wr.sges.len()).map_err(|_| Errno::EINVAL)?;
            write_sges(data, &wr.sges)?;
        }
    }
    slot[..SEND_WQE_DATA].copy_from_slice(hdr.as_bytes());
    Ok(slot)
}

/// The 256-byte receive slot for `wr`.
fn encode_recv_wqe(wr: &RecvWr) -> std::result::Result<[u8; RECV_WQE_SIZE], Errno> {
    let mut slot = [0u8; RECV_WQE_SIZE];
    let hdr = RecvWqe {
        wr_id: wr.wr_id,
        num_sge: u32::try_from(wr.sges.len()).map_err(|_| Errno::EINVAL)?,
        pad: 0,
    };
    write_sges(
        slot.get_mut(RECV_WQE_DATA..).ok_or(Errno::EINVAL)?,
        &wr.sges,
    )?;
    slot[..RECV_WQE_DATA].copy_from_slice(hdr.as_bytes());
    Ok(slot)
}

fn write_sges(data: &mut [u8], sges: &[Sge]) -> std::result::Result<(), Errno> {
    let size = size_of::<Sge>();
    for (i, sge) in sges.iter().enumerate() {
        data.get_mut(i * size..(i + 1) * size)
            .ok_or(Errno::EINVAL)?
            .copy_from_slice(sge.as_bytes());
    }
    Ok(())
}

/// A queue pair (`struct ibv_qp`).
#[derive(Debug)]
pub struct QueuePair<'p> {
    ctx: Arc<Ctx<'p>>,
    handle: u32,
    qpn: u32,
    qp_type: QpType,
    cap: QpCap,
    sq_sig_all: bool,
    limits: Limits,
    shared: Arc<QpShared>,
    send_cq: Arc<CqShared>,
    recv_cq: Arc<CqShared>,
    sq: Option<Mapping>,
    rq: Option<Mapping>,
    live: bool,
}

impl QueuePair<'_> {
    /// The QP number.
    pub fn qp_num(&self) -> u32 {
        self.qpn
    }

    /// Its handle in the context.
    pub fn handle(&self) -> u32 {
        self.handle
    }

    /// Its type.
    pub fn qp_type(&self) -> QpType {
        self.qp_type
    }

    /// The sizes the driver granted.
    pub fn cap(&self) -> QpCap {
        self.cap
    }

    /// The state as this library last set or queried it (the NIC may have moved the
    /// QP to ERR since: [`QueuePair::query`] tells).
    pub fn state(&self) -> QpState {
        lock(&self.shared.rings).state
    }

    /// Work requests posted and not yet completed: (send, receive).
    pub fn outstanding(&self) -> (u32, u32) {
        let rings = lock(&self.shared.rings);
        (rings.sq.outstanding(), rings.rq.outstanding())
    }

    fn check(&self, op: &'static str) -> Result<()> {
        if self.live {
            Ok(())
        } else {
            Err(VerbsError {
                op,
                errno: Errno::EINVAL,
            })
        }
    }

    /// `ibv_modify_qp`: applies the attributes `mask` names. A move to RESET empties
    /// the rings (and drops the QP's completions still in its CQs, as mlx5 does).
    pub fn modify(&self, attr: &QpAttr, mask: u32) -> Result<()> {
        let op = "ibv_modify_qp";
        self.check(op)?;
        let mut m = ModifyQp {
            attr: *attr,
            qp_handle: self.handle,
            attr_mask: mask,
        };
        self.ctx.call(op, RDMA_MODIFY_QP, &mut m)?;
        if mask & attr_mask::STATE != 0
            && let Some(state) = QpState::from_raw(attr.qp_state)
        {
            let mut rings = lock(&self.shared.rings);
            rings.state = state;
            if state == QpState::Reset {
                rings.sq.reset();
                rings.rq.reset();
                drop(rings);
                self.clean_cqs();
            }
        }
        Ok(())
    }

    fn clean_cqs(&self) {
        self.send_cq.clean(self.ctx.p, self.qpn);
        if !Arc::ptr_eq(&self.send_cq, &self.recv_cq) {
            self.recv_cq.clean(self.ctx.p, self.qpn);
        }
    }

    /// `ibv_query_qp`: the attributes (with the current state) and sizes.
    pub fn query(&self) -> Result<(QpAttr, QpCap)> {
        let op = "ibv_query_qp";
        self.check(op)?;
        let mut q = QueryQp {
            qp_handle: self.handle,
            ..Default::default()
        };
        self.ctx.call(op, RDMA_QUERY_QP, &mut q)?;
        // As libibverbs does: the state read back is the QP's state from now on.
        if let Some(state) = QpState::from_raw(q.attr.qp_state) {
            lock(&self.shared.rings).state = state;
        }
        Ok((q.attr, q.cap))
    }

    /// `ibv_post_send`: writes one WQE per work request into the send ring, then
    /// rings the send doorbell once with the new producer index. Stops at the first
    /// request refused (the ones before it are posted): `EINVAL` before RTS or for a
    /// malformed request, `EOPNOTSUPP` on UD, `ENOMEM` when the ring is full, `EFAULT`
    /// if an inline request's bytes cannot be read.
    pub fn post_send(&self, wrs: &[SendWr]) -> std::result::Result<(), PostError> {
        let p = self.ctx.p;
        self.post(
            wrs,
            Queue::Send,
            |wr, state| validate_send(wr, self.qp_type, state, &self.limits),
            |wr| {
                let gathered;
                let inline = match (&wr.inline_data, wr.is_inline()) {
                    (_, false) => None,
                    (Some(data), true) => Some(data.as_slice()),
                    (None, true) => {
                        gathered = gather(p, &wr.sges)?;
                        Some(gathered.as_slice())
                    }
                };
                Ok(encode_send_wqe(wr, inline, self.sq_sig_all)?.to_vec())
            },
        )
    }

    /// `ibv_post_recv`: as [`QueuePair::post_send`] for the receive ring (`EINVAL` in
    /// RESET or with too many SGEs, `ENOMEM` when full).
    pub fn post_recv(&self, wrs: &[RecvWr]) -> std::result::Result<(), PostError> {
        self.post(
            wrs,
            Queue::Recv,
            |wr, state| validate_recv(wr, state, &self.limits),
            |wr| Ok(encode_recv_wqe(wr)?.to_vec()),
        )
    }

    /// Posts `wrs` to one of the QP's rings: each is checked (`validate`), then needs a
    /// free slot, then is encoded and written to its slot; one doorbell with the final
    /// producer index follows. Processing stops at the first failure, whose index is
    /// returned; the requests before it stay posted. If the doorbell store fails,
    /// none of the call's requests is posted.
    fn post<W>(
        &self,
        wrs: &[W],
        queue: Queue,
        validate: impl Fn(&W, QpState) -> std::result::Result<(), Errno>,
        encode: impl Fn(&W) -> std::result::Result<Vec<u8>, Errno>,
    ) -> std::result::Result<(), PostError> {
        if !self.live {
            return Err(PostError {
                index: 0,
                errno: Errno::EINVAL,
            });
        }
        let p = self.ctx.p;
        let mut guard = lock(&self.shared.rings);
        let rings = &mut *guard;
        let (mapping, ring, stride, doorbell) = match queue {
            Queue::Send => (self.sq, &mut rings.sq, SEND_WQE_SIZE, UAR_SQ_DB),
            Queue::Recv => (self.rq, &mut rings.rq, RECV_WQE_SIZE, UAR_RQ_DB),
        };
        let start = ring.pi;
        let mut result = Ok(());
        for (index, wr) in wrs.iter().enumerate() {
            let posted = (|| {
                validate(wr, rings.state)?;
                let mapping = mapping.ok_or(Errno::ENOMEM)?;
                if !ring.has_room() {
                    return Err(Errno::ENOMEM);
                }
                let slot = encode(wr)?;
                let at = mapping
                    .ptr
                    .checked_add(ring.slot_offset(ring.pi, stride))
                    .ok_or(Errno::EFAULT)?;
                p.write_mem(at, &slot)?;
                ring.pi = ring.pi.wrapping_add(1);
                Ok(())
            })();
            if let Err(errno) = posted {
                result = Err(PostError { index, errno });
                break;
            }
        }
        let pi = ring.pi;
        if pi != start {
            // The WQEs are in memory before the NIC hears of them.
            fence(Ordering::Release);
            if let Err(errno) = self
                .ctx
                .ring_doorbell(doorbell, qp_doorbell_value(self.qpn, pi))
            {
                // The NIC never heard of these: none of them is posted.
                ring.pi = start;
                return Err(PostError { index: 0, errno });
            }
        }
        result
    }

    /// What a peer needs to connect to this QP: its number, the first PSN it will
    /// send, and the GID of `port_num`.
    pub fn endpoint(&self, port_num: u8, psn: u32) -> Result<QpEndpoint> {
        let port = self.ctx.query_port(port_num)?;
        Ok(QpEndpoint {
            qpn: self.qpn,
            psn: psn & PSN_MASK,
            gid: port.gid,
        })
    }

    /// RESET → INIT with `attr`'s port, P_Key index and access (Q_Key for UD).
    pub fn to_init(&self, attr: &ConnectAttr) -> Result<()> {
        let (a, mask) = init_attr(attr, self.qp_type);
        self.modify(&a, mask)
    }

    /// INIT → RTR towards `remote`.
    pub fn to_rtr(&self, attr: &ConnectAttr, remote: &QpEndpoint) -> Result<()> {
        let (a, mask) = rtr_attr(attr, self.qp_type, remote);
        self.modify(&a, mask)
    }

    /// RTR → RTS, sending from `sq_psn`.
    pub fn to_rts(&self, attr: &ConnectAttr, sq_psn: u32) -> Result<()> {
        let (a, mask) = rts_attr(attr, self.qp_type, sq_psn);
        self.modify(&a, mask)
    }

    /// RESET → INIT → RTR → RTS towards `remote`, sending from `local_psn` (what the
    /// peer got in this QP's [`QueuePair::endpoint`]).
    pub fn connect(&self, attr: &ConnectAttr, local_psn: u32, remote: &QpEndpoint) -> Result<()> {
        self.to_init(attr)?;
        self.to_rtr(attr, remote)?;
        self.to_rts(attr, local_psn)
    }

    /// `ibv_destroy_qp`: its work requests are dropped without completions, and its
    /// completions still in the CQs are dropped too; a no-op once done.
    pub fn close(&mut self) -> Result<()> {
        if !self.ctx.destroy_once(
            &mut self.live,
            "ibv_destroy_qp",
            RDMA_DESTROY_QP,
            self.handle,
        )? {
            return Ok(());
        }
        {
            let mut qps = lock(&self.ctx.qps);
            if qps
                .get(&self.qpn)
                .is_some_and(|s| Arc::ptr_eq(s, &self.shared))
            {
                qps.remove(&self.qpn);
            }
        }
        self.clean_cqs();
        for m in [self.sq.take(), self.rq.take()].into_iter().flatten() {
            let _ = self.ctx.p.munmap(m.ptr, m.len);
        }
        Ok(())
    }

    /// `ibv_destroy_qp`.
    pub fn destroy(mut self) -> Result<()> {
        self.close()
    }
}

impl Drop for QueuePair<'_> {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

/// Reads the bytes of an inline request's SGEs from the process's memory.
fn gather(p: &Process, sges: &[Sge]) -> std::result::Result<Vec<u8>, Errno> {
    let mut out = Vec::new();
    for sge in sges {
        let start = out.len();
        out.resize(start + sge.length as usize, 0);
        p.read_mem(UserPtr(sge.addr), &mut out[start..])?;
    }
    Ok(out)
}

/// PSNs are 24 bits.
const PSN_MASK: u32 = 0xff_ffff;

/// What one side tells the other to connect (`ibverbs`' `QueuePairEndpoint`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QpEndpoint {
    /// The QP number.
    pub qpn: u32,
    /// The first PSN it sends (the peer's `rq_psn`).
    pub psn: u32,
    /// Its port's GID (the peer's `dgid`).
    pub gid: [u8; 16],
}

/// The attributes of a connection, with the conventional values of rdma-core's tests,
/// `rc_pingpong` and perftest as defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectAttr {
    /// Port (1).
    pub port_num: u8,
    /// P_Key index (0).
    pub pkey_index: u16,
    /// Path MTU (1024).
    pub path_mtu: Mtu,
    /// Local ACK timeout code (14: about 67 ms).
    pub timeout: u8,
    /// Retries after a timeout (7: no limit).
    pub retry_cnt: u8,
    /// Retries after an RNR NAK (7: no limit).
    pub rnr_retry: u8,
    /// RNR NAK timer code (12: 640 µs).
    pub min_rnr_timer: u8,
    /// READs and atomics outstanding as initiator (1).
    pub max_rd_atomic: u8,
    /// ... and as target (1).
    pub max_dest_rd_atomic: u8,
    /// Remote access the QP accepts (all of write, read and atomics).
    pub access: u32,
    /// Q_Key (UD).
    pub qkey: u32,
    /// Source GID index (0).
    pub sgid_index: u8,
    /// Hop limit of the GRH (64).
    pub hop_limit: u8,
    /// Seed of the PSNs [`rc_connect`] picks.
    pub psn_seed: u64,
}

impl Default for ConnectAttr {
    fn default() -> Self {
        Self {
            port_num: 1,
            pkey_index: 0,
            path_mtu: Mtu::Mtu1024,
            timeout: 14,
            retry_cnt: 7,
            rnr_retry: 7,
            min_rnr_timer: 12,
            max_rd_atomic: 1,
            max_dest_rd_atomic: 1,
            access: access::LOCAL_WRITE | access::REMOTE,
            qkey: 0x1111_1111,
            sgid_index: 0,
            hop_limit: 64,
            psn_seed: 0,
        }
    }
}

impl ConnectAttr {
    /// The two 24-bit PSNs [`rc_connect`] gives its QPs, random from `psn_seed`.
    pub fn psns(&self) -> (u32, u32) {
        let a = splitmix64(self.psn_seed);
        let b = splitmix64(a);
        (a as u32 & PSN_MASK, b as u32 & PSN_MASK)
    }
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn state_attr(state: QpState) -> QpAttr {
    QpAttr {
        qp_state: state as u8,
        ..Default::default()
    }
}

/// RESET → INIT: the attributes `ibv_modify_qp(3)` requires for the type.
fn init_attr(c: &ConnectAttr, qp_type: QpType) -> (QpAttr, u32) {
    use attr_mask::*;
    let mut a = state_attr(QpState::Init);
    a.pkey_index = c.pkey_index;
    a.port_num = c.port_num;
    let mask = STATE | PKEY_INDEX | PORT;
    if qp_type == QpType::Ud {
        a.qkey = c.qkey;
        (a, mask | QKEY)
    } else {
        a.qp_access_flags = c.access;
        (a, mask | ACCESS_FLAGS)
    }
}

/// INIT → RTR towards `remote`.
fn rtr_attr(c: &ConnectAttr, qp_type: QpType, remote: &QpEndpoint) -> (QpAttr, u32) {
    use attr_mask::*;
    let mut a = state_attr(QpState::Rtr);
    if qp_type == QpType::Ud {
        return (a, STATE);
    }
    a.dgid = remote.gid;
    a.sgid_index = c.sgid_index;
    a.hop_limit = c.hop_limit;
    a.port_num = c.port_num;
    a.path_mtu = c.path_mtu as u8;
    a.dest_qp_num = remote.qpn;
    a.rq_psn = remote.psn & PSN_MASK;
    let mask = STATE | AV | PATH_MTU | DEST_QPN | RQ_PSN;
    if qp_type == QpType::Uc {
        return (a, mask);
    }
    a.max_dest_rd_atomic = c.max_dest_rd_atomic;
    a.min_rnr_timer = c.min_rnr_timer;
    (a, mask | MAX_DEST_RD_ATOMIC | MIN_RNR_TIMER)
}

/// RTR → RTS, sending from `sq_psn`.
fn rts_attr(c: &ConnectAttr, qp_type: QpType, sq_psn: u32) -> (QpAttr, u32) {
    use attr_mask::*;
    let mut a = state_attr(QpState::Rts);
    a.sq_psn = sq_psn & PSN_MASK;
    if qp_type != QpType::Rc {
        return (a, STATE | SQ_PSN);
    }
    a.max_rd_atomic = c.max_rd_atomic;
    a.retry_cnt = c.retry_cnt;
    a.rnr_retry = c.rnr_retry;
    a.timeout = c.timeout;
    (
        a,
        STATE | SQ_PSN | MAX_QP_RD_ATOMIC | RETRY_CNT | RNR_RETRY | TIMEOUT,
    )
}

/// Connects two QPs (RC or UC, of one context or two) to each other: both to INIT,
/// both to RTR towards the other (its QPN, its port's GID, its PSN), both to RTS, with
/// the PSNs of [`ConnectAttr::psns`].
pub fn rc_connect(a: &QueuePair<'_>, b: &QueuePair<'_>, attr: &ConnectAttr) -> Result<()> {
    let (psn_a, psn_b) = attr.psns();
    let ep_a = a.endpoint(attr.port_num, psn_a)?;
    let ep_b = b.endpoint(attr.port_num, psn_b)?;
    a.to_init(attr)?;
    b.to_init(attr)?;
    a.to_rtr(attr, &ep_b)?;
    b.to_rtr(attr, &ep_a)?;
    a.to_rts(attr, psn_a)?;
    b.to_rts(attr, psn_b)
}

/// Memory of the process for tests and demonstrations: anonymous pages, with
/// helpers to fill and read them. Unmapped when dropped.
#[derive(Debug)]
pub struct HostBuffer<'p> {
    p: &'p Process,
    ptr: UserPtr,
    len: u64,
}

impl<'p> HostBuffer<'p> {
    /// Maps `len` bytes (zeroed).
    pub fn new(p: &'p Process, len: u64) -> Result<Self> {
        let ptr = p.mmap_anon(len).map_err(fail("mmap"))?;
        Ok(Self { p, ptr, len })
    }

    /// Where it is.
    pub fn ptr(&self) -> UserPtr {
        self.ptr
    }

    /// Its address as a number (for SGEs of inline requests, `reg_mr_iova`...).
    pub fn addr(&self) -> u64 {
        self.ptr.0
    }

    /// Bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether it has no bytes (never: mapping nothing fails).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn at(&self, op: &'static str, offset: u64, len: u64) -> Result<UserPtr> {
        let einval = VerbsError {
            op,
            errno: Errno::EINVAL,
        };
        match offset.checked_add(len) {
            Some(end) if end <= self.len => self.ptr.checked_add(offset).ok_or(einval),
            _ => Err(einval),
        }
    }

    /// Stores `bytes` at `offset`.
    pub fn write(&self, offset: u64, bytes: &[u8]) -> Result<()> {
        let op = "HostBuffer::write";
        let at = self.at(op, offset, bytes.len() as u64)?;
        self.p.write_mem(at, bytes).map_err(fail(op))
    }

    /// Loads `buf.len()` bytes at `offset`.
    pub fn read_into(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let op = "HostBuffer::read";
        let at = self.at(op, offset, buf.len() as u64)?;
        self.p.read_mem(at, buf).map_err(fail(op))
    }

    /// Loads `len` bytes at `offset`.
    pub fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        let mut out = vec![0u8; len];
        self.read_into(offset, &mut out)?;
        Ok(out)
    }

    /// Stores a little-endian u64 at `offset` (an atomic's target).
    pub fn write_u64(&self, offset: u64, value: u64) -> Result<()> {
        self.write(offset, &value.to_le_bytes())
    }

    /// Loads a little-endian u64 at `offset`.
    pub fn read_u64(&self, offset: u64) -> Result<u64> {
        let mut b = [0u8; 8];
        self.read_into(offset, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Sets every byte to `value`.
    pub fn fill(&self, value: u8) -> Result<()> {
        const CHUNK: u64 = 1 << 20;
        let chunk = vec![value; CHUNK.min(self.len) as usize];
        let mut offset = 0;
        while offset < self.len {
            let n = CHUNK.min(self.len - offset) as usize;
            self.write(offset, &chunk[..n])?;
            offset += n as u64;
        }
        Ok(())
    }

    /// Unmaps it.
    pub fn free(self) {}
}

impl Drop for HostBuffer<'_> {
    fn drop(&mut self) {
        let _ = self.p.munmap(self.ptr, self.len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits::new(&qp_cap(16, 16, 4, 4, 64))
    }

    fn sge(addr: u64, length: u32) -> Sge {
        Sge {
            addr,
            length,
            lkey: 0x1234,
        }
    }

    #[test]
    fn objects_can_be_shared_between_threads() {
        fn shared<T: Send + Sync>() {}
        shared::<Context<'static>>();
        shared::<ProtectionDomain<'static>>();
        shared::<MemoryRegion<'static>>();
        shared::<CompChannel<'static>>();
        shared::<CompletionQueue<'static>>();
        shared::<QueuePair<'static>>();
        shared::<HostBuffer<'static>>();
    }

    #[test]
    fn error_display_names_the_call_and_the_errno() {
        let e = VerbsError {
            op: "ibv_reg_dmabuf_mr",
            errno: Errno::EINVAL,
        };
        assert_eq!(
            e.to_string(),
            "ibv_reg_dmabuf_mr: EINVAL (Invalid argument)"
        );
        let p = PostError {
            index: 3,
            errno: Errno::ENOMEM,
        };
        assert_eq!(
            p.to_string(),
            "work request 3 was not posted: ENOMEM (Cannot allocate memory)"
        );
    }

    #[test]
    fn send_wqe_has_header_then_sges() {
        let wr = SendWr::write(7, &[sge(0x1000, 64), sge(0x2000, 8)], 0xdead_0000, 0x55)
            .signaled()
            .fence();
        let slot = encode_send_wqe(&wr, None, false).unwrap();
        let hdr = SendWqe::read_from_bytes(&slot[..SEND_WQE_DATA]).unwrap();
        assert_eq!(hdr.wr_id, 7);
        assert_eq!(hdr.opcode, WrOpcode::RdmaWrite as u8);
        assert_eq!(hdr.remote_addr, 0xdead_0000);
        assert_eq!(hdr.rkey, 0x55);
        assert_eq!(hdr.num_sge, 2);
        assert_eq!(hdr.inline_len, 0);
        assert_eq!(hdr.send_flags, send_flags::SIGNALED | send_flags::FENCE);
        let s0 = Sge::read_from_bytes(&slot[64..80]).unwrap();
        let s1 = Sge::read_from_bytes(&slot[80..96]).unwrap();
        assert_eq!((s0, s1), (sge(0x1000, 64), sge(0x2000, 8)));
        assert!(slot[96..].iter().all(|&b| b == 0));
    }

    #[test]
    fn send_wqe_carries_inline_payload_and_sig_all() {
        let wr = SendWr::send_with_imm(9, &[], 1234u32.to_be()).inline_data(b"hello");
        let slot = encode_send_wqe(&wr, Some(b"hello"), true).unwrap();
        let hdr = SendWqe::read_from_bytes(&slot[..SEND_WQE_DATA]).unwrap();
        assert_eq!(hdr.opcode, WrOpcode::SendWithImm as u8);
        assert_eq!(hdr.imm_data, 1234u32.to_be());
        assert_eq!(hdr.inline_len, 5);
        assert_eq!(hdr.num_sge, 0);
        assert_eq!(hdr.send_flags, send_flags::INLINE | send_flags::SIGNALED);
        assert_eq!(&slot[64..69], b"hello");
        // The largest payload fits; a larger one is refused, not a panic.
        let big = vec![0xa5; SEND_SLOT_INLINE];
        assert!(encode_send_wqe(&wr, Some(&big), false).is_ok());
        let bigger = vec![0xa5; SEND_SLOT_INLINE + 1];
        assert_eq!(
            encode_send_wqe(&wr, Some(&bigger), false),
            Err(Errno::EINVAL)
        );
        let many = SendWr::send(1, &vec![sge(0, 1); SEND_SLOT_SGES + 1]);
        assert_eq!(encode_send_wqe(&many, None, false), Err(Errno::EINVAL));
    }

    #[test]
    fn atomic_wqes_carry_their_operands() {
        let wr = SendWr::cmp_swap(1, sge(0x10, 8), 0x800, 9, 5, 6);
        let slot = encode_send_wqe(&wr, None, false).unwrap();
        let hdr = SendWqe::read_from_bytes(&slot[..SEND_WQE_DATA]).unwrap();
        assert_eq!(hdr.opcode, WrOpcode::AtomicCmpAndSwp as u8);
        assert_eq!((hdr.compare_add, hdr.swap), (5, 6));
        let wr = SendWr::fetch_add(2, sge(0x10, 8), 0x800, 9, 3);
        let slot = encode_send_wqe(&wr, None, false).unwrap();
        let hdr = SendWqe::read_from_bytes(&slot[..SEND_WQE_DATA]).unwrap();
        assert_eq!(hdr.opcode, WrOpcode::AtomicFetchAndAdd as u8);
        assert_eq!(hdr.compare_add, 3);
    }

    #[test]
    fn recv_wqe_has_header_then_sges() {
        let wr = RecvWr::new(42, &[sge(0x3000, 128)]);
        let slot = encode_recv_wqe(&wr).unwrap();
        let hdr = RecvWqe::read_from_bytes(&slot[..RECV_WQE_DATA]).unwrap();
        assert_eq!((hdr.wr_id, hdr.num_sge), (42, 1));
        assert_eq!(
            Sge::read_from_bytes(&slot[16..32]).unwrap(),
            sge(0x3000, 128)
        );
        let many = RecvWr::new(1, &vec![sge(0, 1); RECV_SLOT_SGES + 1]);
        assert_eq!(encode_recv_wqe(&many), Err(Errno::EINVAL));
    }

    #[test]
    fn posting_rules_follow_rxe() {
        let l = limits();
        let send = SendWr::send(1, &[sge(0, 4)]);
        for state in [QpState::Reset, QpState::Init, QpState::Rtr] {
            assert_eq!(
                validate_send(&send, QpType::Rc, state, &l),
                Err(Errno::EINVAL)
            );
        }
        for state in [QpState::Rts, QpState::Sqd, QpState::Err] {
            assert_eq!(validate_send(&send, QpType::Rc, state, &l), Ok(()));
        }
        let rts = |wr: &SendWr, t| validate_send(wr, t, QpState::Rts, &l);
        // SGEs beyond the QP's.
        assert_eq!(
            rts(&SendWr::send(1, &[sge(0, 1); 5]), QpType::Rc),
            Err(Errno::EINVAL)
        );
        assert_eq!(rts(&SendWr::send(1, &[sge(0, 1); 4]), QpType::Rc), Ok(()));
        // Inline beyond max_inline_data, by payload or by SGEs.
        let inl = SendWr::send(1, &[]).inline_data(&[0; 65]);
        assert_eq!(rts(&inl, QpType::Rc), Err(Errno::EINVAL));
        let inl = SendWr::send(1, &[sge(0, 32), sge(0, 33)]).inline();
        assert_eq!(rts(&inl, QpType::Rc), Err(Errno::EINVAL));
        let inl = SendWr::write(1, &[sge(0, 64)], 0, 1).inline();
        assert_eq!(rts(&inl, QpType::Rc), Ok(()));
        // Inline READ makes no sense.
        let inl = SendWr::read(1, &[sge(0, 8)], 0, 1).inline();
        assert_eq!(rts(&inl, QpType::Rc), Err(Errno::EINVAL));
        // Atomics: 8 bytes, aligned.
        assert_eq!(
            rts(&SendWr::fetch_add(1, sge(0, 8), 8, 1, 1), QpType::Rc),
            Ok(())
        );
        assert_eq!(
            rts(&SendWr::fetch_add(1, sge(0, 4), 8, 1, 1), QpType::Rc),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            rts(&SendWr::cmp_swap(1, sge(0, 8), 12, 1, 0, 1), QpType::Rc),
            Err(Errno::EINVAL)
        );
        // UC has no READ or atomics; UD sends need an address vector the WQE lacks.
        assert_eq!(
            rts(&SendWr::read(1, &[], 0, 1), QpType::Uc),
            Err(Errno::EINVAL)
        );
        assert_eq!(rts(&SendWr::write(1, &[], 0, 1), QpType::Uc), Ok(()));
        assert_eq!(rts(&send, QpType::Ud), Err(Errno::EOPNOTSUPP));

        let recv = RecvWr::new(1, &[sge(0, 1)]);
        assert_eq!(validate_recv(&recv, QpState::Reset, &l), Err(Errno::EINVAL));
        for state in [QpState::Init, QpState::Rtr, QpState::Rts, QpState::Err] {
            assert_eq!(validate_recv(&recv, state, &l), Ok(()));
        }
        let recv = RecvWr::new(1, &[sge(0, 1); 5]);
        assert_eq!(validate_recv(&recv, QpState::Rts, &l), Err(Errno::EINVAL));
    }

    #[test]
    fn limits_are_the_cap_within_the_slot() {
        let l = Limits::new(&qp_cap(1, 1, 100, 100, 1000));
        assert_eq!(l.send_sge, SEND_SLOT_SGES);
        assert_eq!(l.recv_sge, RECV_SLOT_SGES);
        assert_eq!(l.inline, SEND_SLOT_INLINE);
        assert_eq!(
            (SEND_SLOT_SGES, RECV_SLOT_SGES, SEND_SLOT_INLINE),
            (12, 15, 192)
        );
    }

    #[test]
    fn cqe_owner_bit_alternates_per_pass() {
        // Log size 2: indices 0..3 valid with owner 1 on the first pass, 4..7 with 0.
        let owners: Vec<u8> = (0..12).map(|i| owner_for(i, 2)).collect();
        assert_eq!(owners, [1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1]);
        // A zeroed ring is empty at index 0.
        assert_ne!(owner_for(0, 2), 0);
        // Across the u32 wrap the passes still alternate.
        assert_ne!(owner_for(u32::MAX, 2), owner_for(0, 2));
        assert_eq!(CQE_OWNER, 63);
    }

    #[test]
    fn cqe_decodes_into_a_work_completion() {
        let cqe = Cqe {
            wr_id: 77,
            byte_len: 4096,
            imm_data: 1234u32.to_be(),
            qp_num: 17,
            src_qp: 18,
            vendor_err: 0,
            opcode: WcOpcode::RecvRdmaWithImm as u8,
            status: WcStatus::Success as u8,
            wc_flags: WC_WITH_IMM,
            wqe_counter: 3,
            owner: 1,
            ..Default::default()
        };
        let wc = cqe_to_wc(&cqe, Queue::Recv);
        assert_eq!(wc.wr_id, 77);
        assert_eq!(wc.opcode, WcOpcode::RecvRdmaWithImm);
        assert_eq!(wc.status, WcStatus::Success);
        assert_eq!(wc.imm_data.map(u32::from_be), Some(1234));
        assert_eq!((wc.qp_num, wc.src_qp, wc.byte_len), (17, 18, 4096));
        // Without the flag the immediate is not there.
        let plain = Cqe { wc_flags: 0, ..cqe };
        assert_eq!(cqe_to_wc(&plain, Queue::Recv).imm_data, None);
        // Values outside the enumerations do not fail the poll.
        let odd = Cqe {
            opcode: 77,
            status: 200,
            vendor_err: 6,
            ..cqe
        };
        let wc = cqe_to_wc(&odd, Queue::Send);
        assert_eq!(
            (wc.status, wc.opcode, wc.vendor_err),
            (WcStatus::GeneralErr, WcOpcode::Send, 6)
        );
        let wc = cqe_to_wc(&odd, Queue::Recv);
        assert_eq!(wc.opcode, WcOpcode::Recv);
        assert_eq!(Queue::of_opcode(WcOpcode::Recv as u8), Queue::Recv);
        assert_eq!(Queue::of_opcode(WcOpcode::RdmaRead as u8), Queue::Send);
    }

    #[test]
    fn send_ring_frees_up_to_the_completed_wqe() {
        let mut r = Ring::new(2, 4);
        assert_eq!(r.limit, 4);
        for _ in 0..4 {
            assert!(r.has_room());
            r.pi += 1;
        }
        assert!(!r.has_room());
        // A signaled completion of WQE 2 frees 0, 1 (unsignaled) and 2.
        assert!(r.retire_to(2));
        assert_eq!((r.tail, r.outstanding()), (3, 1));
        // Stale or future counters change nothing.
        assert!(!r.retire_to(1));
        assert!(!r.retire_to(2));
        assert!(!r.retire_to(9));
        assert!(r.retire_to(3));
        assert_eq!(r.outstanding(), 0);
        assert!(!r.retire_to(3));
        // Slots wrap in the ring.
        assert_eq!(r.slot_offset(5, SEND_WQE_SIZE), 256);
        assert_eq!(r.slot_offset(4, SEND_WQE_SIZE), 0);
    }

    #[test]
    fn ring_indices_wrap_around_u32() {
        let mut r = Ring::new(3, 8);
        r.pi = u32::MAX - 1;
        r.tail = u32::MAX - 1;
        for _ in 0..5 {
            r.pi = r.pi.wrapping_add(1);
        }
        assert_eq!(r.outstanding(), 5);
        assert!(r.retire_to(1)); // the WQE after u32::MAX, 0
        assert_eq!((r.tail, r.outstanding()), (2, 1));
        assert_eq!(r.slot_offset(u32::MAX, RECV_WQE_SIZE), 7 * 256);
    }

    #[test]
    fn receive_ring_counts_completions() {
        let mut r = Ring::new(1, 8);
        // The driver granted more than the ring holds: the ring bounds it.
        assert_eq!(r.limit, 2);
        r.pi = 2;
        assert!(!r.has_room());
        assert!(r.retire_one());
        assert!(r.has_room());
        assert!(r.retire_one());
        assert!(!r.retire_one());
        r.reset();
        assert_eq!((r.pi, r.tail), (0, 0));
        // Fewer granted than entries: the grant bounds it; none granted, nothing fits.
        assert_eq!(Ring::new(4, 3).limit, 3);
        assert!(!Ring::new(0, 0).has_room());
        // A log size past u32 does not overflow.
        assert_eq!(Ring::new(40, 5).limit, 0);
    }

    #[test]
    fn doorbells_pack_into_one_word() {
        assert_eq!(qp_doorbell_value(0x12, 7), 0x0000_0007_0000_0012);
        assert_eq!(
            qp_doorbell_value(0xff12_3456, u32::MAX),
            0xffff_ffff_0012_3456
        );
        assert_eq!(cq_arm_value(5, false, 9), 0x0000_0009_0000_0005);
        assert_eq!(cq_arm_value(5, true, 9), 0x0000_0009_8000_0005);
    }

    #[test]
    fn cq_mapping_checks_the_kernels_answer() {
        let ok = CreateCq {
            cqe_out: 64,
            log_size: 6,
            mmap_len: 8192,
            dbrec_offset: 4096,
            ..Default::default()
        };
        assert_eq!(cq_dbrec_offset(&ok), Ok(4096));
        for bad in [
            CreateCq { log_size: 40, ..ok },
            CreateCq { cqe_out: 65, ..ok },
            CreateCq {
                dbrec_offset: 100,
                ..ok
            },
            CreateCq {
                dbrec_offset: 8190,
                ..ok
            },
            CreateCq {
                dbrec_offset: u64::MAX,
                ..ok
            },
            CreateCq {
                dbrec_offset: 4098,
                ..ok
            },
        ] {
            assert_eq!(cq_dbrec_offset(&bad), Err(Errno::EPROTO), "{bad:?}");
        }
    }

    #[test]
    fn poll_timeouts_round_up() {
        assert_eq!(poll_timeout_ms(None), -1);
        assert_eq!(poll_timeout_ms(Some(Duration::ZERO)), 0);
        assert_eq!(poll_timeout_ms(Some(Duration::from_micros(1))), 1);
        assert_eq!(poll_timeout_ms(Some(Duration::from_millis(1500))), 1500);
        assert_eq!(poll_timeout_ms(Some(Duration::MAX)), i32::MAX);
    }

    #[test]
    fn connect_attributes_are_the_conventional_ones() {
        let c = ConnectAttr::default();
        let remote = QpEndpoint {
            qpn: 0x42,
            psn: 0x1ab_cdef,
            gid: [7; 16],
        };
        let (a, m) = init_attr(&c, QpType::Rc);
        assert_eq!(
            m,
            attr_mask::STATE | attr_mask::PKEY_INDEX | attr_mask::PORT | attr_mask::ACCESS_FLAGS
        );
        assert_eq!(
            (a.qp_state, a.port_num, a.qp_access_flags),
            (QpState::Init as u8, 1, access::LOCAL_WRITE | access::REMOTE)
        );
        let (a, m) = rtr_attr(&c, QpType::Rc, &remote);
        assert_eq!(
            m,
            attr_mask::STATE
                | attr_mask::AV
                | attr_mask::PATH_MTU
                | attr_mask::DEST_QPN
                | attr_mask::RQ_PSN
                | attr_mask::MAX_DEST_RD_ATOMIC
                | attr_mask::MIN_RNR_TIMER
        );
        assert_eq!(a.dgid, [7; 16]);
        assert_eq!((a.dest_qp_num, a.rq_psn), (0x42, 0xab_cdef));
        assert_eq!(
            (a.path_mtu, a.min_rnr_timer, a.max_dest_rd_atomic),
            (Mtu::Mtu1024 as u8, 12, 1)
        );
        let (a, m) = rts_attr(&c, QpType::Rc, 0x100_0005);
        assert_eq!(
            m,
            attr_mask::STATE
                | attr_mask::SQ_PSN
                | attr_mask::MAX_QP_RD_ATOMIC
                | attr_mask::RETRY_CNT
                | attr_mask::RNR_RETRY
                | attr_mask::TIMEOUT
        );
        assert_eq!(
            (
                a.sq_psn,
                a.timeout,
                a.retry_cnt,
                a.rnr_retry,
                a.max_rd_atomic
            ),
            (5, 14, 7, 7, 1)
        );
        // UC and UD ask for less (ib_modify_qp_is_ok refuses attributes not allowed).
        assert_eq!(
            rtr_attr(&c, QpType::Uc, &remote).1 & attr_mask::MIN_RNR_TIMER,
            0
        );
        assert_eq!(
            rts_attr(&c, QpType::Uc, 1).1,
            attr_mask::STATE | attr_mask::SQ_PSN
        );
        assert_eq!(
            init_attr(&c, QpType::Ud).1 & attr_mask::QKEY,
            attr_mask::QKEY
        );
        assert_eq!(rtr_attr(&c, QpType::Ud, &remote).1, attr_mask::STATE);
    }

    /// The provider's side of the data path against memory standing in for the NIC's
    /// mappings: anonymous pages of a process of a bare kernel as the UAR and the
    /// rings, and this test writing CQEs as the NIC would. The uverbs fd is -1, so
    /// the objects' destroy calls fail (EBADF) and are ignored on drop.
    mod data_path {
        use super::*;
        use sagrada_hw_fabric::Fabric;
        use sagrada_kernel_core::Kernel;

        fn process() -> Process {
            let fabric = Fabric::default_machine().expect("the default topology builds");
            Process::spawn(&Kernel::new(fabric), "verbs-test")
        }

        fn ctx(p: &Process) -> Arc<Ctx<'_>> {
            Arc::new(Ctx {
                p,
                fd: -1,
                path: "test".into(),
                uar: p.mmap_anon(u64::from(UAR_SIZE)).unwrap(),
                qps: Mutex::new(HashMap::new()),
            })
        }

        fn cq<'p>(ctx: &Arc<Ctx<'p>>, cqn: u32, log_size: u32) -> CompletionQueue<'p> {
            let ring = ctx.p.mmap_anon(8192).unwrap();
            CompletionQueue {
                ctx: ctx.clone(),
                handle: cqn,
                cqe: 1 << log_size,
                cq_context: 0,
                map_len: 8192,
                dbrec: ring.checked_add(4096).unwrap(),
                shared: Arc::new(CqShared {
                    cqn,
                    ring,
                    log_size,
                    state: Mutex::new(CqState::default()),
                }),
                live: true,
            }
        }

        fn qp<'p>(
            ctx: &Arc<Ctx<'p>>,
            qpn: u32,
            scq: &CompletionQueue<'p>,
            rcq: &CompletionQueue<'p>,
            cap: QpCap,
        ) -> QueuePair<'p> {
            let p = ctx.p;
            let sq = p.mmap_anon(4 * SEND_WQE_SIZE as u64).unwrap();
            let rq = p.mmap_anon(4 * RECV_WQE_SIZE as u64).unwrap();
            let shared = Arc::new(QpShared {
                send_cqn: scq.shared.cqn,
                recv_cqn: rcq.shared.cqn,
                rings: Mutex::new(QpRings {
                    state: QpState::Rts,
                    sq: Ring::new(2, cap.max_send_wr),
                    rq: Ring::new(2, cap.max_recv_wr),
                }),
            });
            lock(&ctx.qps).insert(qpn, shared.clone());
            QueuePair {
                ctx: ctx.clone(),
                handle: qpn,
                qpn,
                qp_type: QpType::Rc,
                cap,
                sq_sig_all: false,
                limits: Limits::new(&cap),
                shared,
                send_cq: scq.shared.clone(),
                recv_cq: rcq.shared.clone(),
                sq: Some(Mapping {
                    ptr: sq,
                    len: 4 * SEND_WQE_SIZE as u64,
                }),
                rq: Some(Mapping {
                    ptr: rq,
                    len: 4 * RECV_WQE_SIZE as u64,
                }),
                live: true,
            }
        }

        /// Writes the CQE at free-running index `i` as the NIC does: the body, then the
        /// owner byte for that index.
        fn nic_complete(cq: &CompletionQueue<'_>, i: u32, cqe: Cqe) {
            let p = cq.ctx.p;
            let log = cq.shared.log_size;
            let slot = cq
                .shared
                .ring
                .checked_add(u64::from(i & ((1 << log) - 1)) * 64)
                .unwrap();
            let cqe = Cqe {
                owner: owner_for(i, log),
                ..cqe
            };
            p.write_mem(slot, &cqe.as_bytes()[..CQE_OWNER]).unwrap();
            p.write_mem(slot.checked_add(CQE_OWNER as u64).unwrap(), &[cqe.owner])
                .unwrap();
        }

        fn send_cqe(qpn: u32, wr_id: u64, wqe_counter: u32) -> Cqe {
            Cqe {
                wr_id,
                qp_num: qpn,
                opcode: WcOpcode::RdmaWrite as u8,
                wqe_counter,
                ..Default::default()
            }
        }

        fn recv_cqe(qpn: u32, wr_id: u64, wqe_counter: u32) -> Cqe {
            Cqe {
                wr_id,
                qp_num: qpn,
                opcode: WcOpcode::Recv as u8,
                byte_len: 10,
                wqe_counter,
                ..Default::default()
            }
        }

        fn doorbell(ctx: &Ctx<'_>, offset: u32) -> u64 {
            let mut b = [0u8; 8];
            ctx.p
                .read_mem(ctx.uar.checked_add(u64::from(offset)).unwrap(), &mut b)
                .unwrap();
            u64::from_le_bytes(b)
        }

        fn dbrec(cq: &CompletionQueue<'_>) -> u32 {
            let mut b = [0u8; 4];
            cq.ctx.p.read_mem(cq.dbrec, &mut b).unwrap();
            u32::from_le_bytes(b)
        }

        #[test]
        fn posts_fill_the_send_ring_and_completions_free_it() {
            let p = process();
            let ctx = ctx(&p);
            let cq = cq(&ctx, 3, 2);
            let qp = qp(&ctx, 0x11, &cq, &cq, qp_cap(4, 4, 2, 2, 32));
            let w = |id| SendWr::write(id, &[sge(0x1000, 8)], 0x2000, 7);

            qp.post_send(&[w(1), w(2), w(3).signaled()]).unwrap();
            assert_eq!(qp.outstanding(), (3, 0));
            assert_eq!(doorbell(&ctx, UAR_SQ_DB), qp_doorbell_value(0x11, 3));
            // The third WQE is in slot 2, as encoded.
            let mut slot = [0u8; SEND_WQE_SIZE];
            p.read_mem(qp.sq.unwrap().ptr.checked_add(512).unwrap(), &mut slot)
                .unwrap();
            assert_eq!(
                slot,
                encode_send_wqe(&w(3).signaled(), None, false).unwrap()
            );

            // One slot left: the second request of the next post is refused, the first
            // posted, and one doorbell carries it.
            let err = qp.post_send(&[w(4), w(5)]).unwrap_err();
            assert_eq!((err.index, err.errno), (1, Errno::ENOMEM));
            assert_eq!(qp.outstanding(), (4, 0));
            assert_eq!(doorbell(&ctx, UAR_SQ_DB), qp_doorbell_value(0x11, 4));

            // Nothing written yet: nothing polled, the doorbell record untouched.
            let mut wc = [WorkCompletion::default(); 4];
            assert_eq!(cq.poll(&mut wc).unwrap(), 0);
            assert_eq!(dbrec(&cq), 0);

            // The signaled WQE 2 completes: it frees 0 and 1 (unsignaled) too.
            nic_complete(&cq, 0, send_cqe(0x11, 3, 2));
            assert_eq!(cq.poll(&mut wc).unwrap(), 1);
            assert_eq!(
                (wc[0].wr_id, wc[0].opcode, wc[0].qp_num),
                (3, WcOpcode::RdmaWrite, 0x11)
            );
            assert_eq!(qp.outstanding(), (1, 0));
            assert_eq!(dbrec(&cq), 1);

            // Room again; WQE 4 wraps to slot 0.
            qp.post_send(&[w(6), w(7), w(8).signaled()]).unwrap();
            assert_eq!(qp.outstanding(), (4, 0));
            assert_eq!(doorbell(&ctx, UAR_SQ_DB), qp_doorbell_value(0x11, 7));
            p.read_mem(qp.sq.unwrap().ptr, &mut slot).unwrap();
            assert_eq!(slot, encode_send_wqe(&w(6), None, false).unwrap());

            // A failed unsignaled WQE still completes, naming itself.
            nic_complete(
                &cq,
                1,
                Cqe {
                    status: WcStatus::RemAccessErr as u8,
                    vendor_err: 7,
                    ..send_cqe(0x11, 4, 3)
                },
            );
            nic_complete(&cq, 2, send_cqe(0x11, 8, 6));
            assert_eq!(cq.poll(&mut wc).unwrap(), 2);
            assert_eq!(wc[0].status, WcStatus::RemAccessErr);
            assert_eq!(wc[1].wr_id, 8);
            assert_eq!(qp.outstanding(), (0, 0));
            assert_eq!(dbrec(&cq), 3);
            assert_eq!(cq.consumer_index(), 3);
        }

        #[test]
        fn the_cq_follows_the_owner_bit_around_the_ring() {
            let p = process();
            let ctx = ctx(&p);
            let cq = cq(&ctx, 3, 2);
            let qp = qp(&ctx, 0x12, &cq, &cq, qp_cap(4, 4, 2, 2, 32));
            let mut wc = [WorkCompletion::default(); 8];
            let mut next = 0u32;
            for round in 0..5u64 {
                let wrs: Vec<_> = (0..3)
                    .map(|i| SendWr::send(round * 10 + i, &[sge(0, 1)]).signaled())
                    .collect();
                qp.post_send(&wrs).unwrap();
                for i in 0..3 {
                    let counter = (round * 3 + i) as u32;
                    nic_complete(&cq, next, send_cqe(0x12, round * 10 + i, counter));
                    next += 1;
                }
                // Entries of the last pass in the next slot do not look valid.
                assert_eq!(cq.poll(&mut wc).unwrap(), 3);
                let ids: Vec<u64> = wc[..3].iter().map(|w| w.wr_id).collect();
                assert_eq!(ids, [round * 10, round * 10 + 1, round * 10 + 2]);
                assert_eq!(cq.poll(&mut wc).unwrap(), 0);
                assert_eq!(qp.outstanding(), (0, 0));
            }
            assert_eq!(dbrec(&cq), 15);
            // A poll asks for at most as many as fit.
            qp.post_send(&[
                SendWr::send(1, &[]).signaled(),
                SendWr::send(2, &[]).signaled(),
            ])
            .unwrap();
            nic_complete(&cq, 15, send_cqe(0x12, 1, 15));
            nic_complete(&cq, 16, send_cqe(0x12, 2, 16));
            assert_eq!(cq.poll(&mut wc[..1]).unwrap(), 1);
            assert_eq!(cq.poll(&mut wc[..0]).unwrap(), 0);
            assert_eq!(
                cq.poll_until(5, Duration::from_millis(10)).unwrap().len(),
                1
            );
        }

        #[test]
        fn receives_complete_one_by_one_on_a_cq_of_their_own() {
            let p = process();
            let ctx = ctx(&p);
            let scq = cq(&ctx, 3, 2);
            let rcq = cq(&ctx, 4, 2);
            let qp = qp(&ctx, 0x13, &scq, &rcq, qp_cap(4, 2, 2, 2, 32));
            let r = |id| RecvWr::new(id, &[sge(0x4000, 64)]);
            let err = qp.post_recv(&[r(1), r(2), r(3)]).unwrap_err();
            assert_eq!((err.index, err.errno), (2, Errno::ENOMEM));
            assert_eq!(doorbell(&ctx, UAR_RQ_DB), qp_doorbell_value(0x13, 2));
            let mut slot = [0u8; RECV_WQE_SIZE];
            p.read_mem(qp.rq.unwrap().ptr.checked_add(256).unwrap(), &mut slot)
                .unwrap();
            assert_eq!(slot, encode_recv_wqe(&r(2)).unwrap());
            // A flushed receive has no meaningful opcode; its CQ tells the queue.
            nic_complete(
                &rcq,
                0,
                Cqe {
                    opcode: 0,
                    status: WcStatus::WrFlushErr as u8,
                    ..recv_cqe(0x13, 1, 0)
                },
            );
            let wcs = rcq.poll_until(1, Duration::from_secs(1)).unwrap();
            assert_eq!((wcs[0].wr_id, wcs[0].status), (1, WcStatus::WrFlushErr));
            assert_eq!(qp.outstanding(), (0, 1));
            qp.post_recv(&[r(3)]).unwrap();
            assert_eq!(doorbell(&ctx, UAR_RQ_DB), qp_doorbell_value(0x13, 3));
        }

        #[test]
        fn a_shared_cq_tells_sends_from_receives_by_opcode() {
            let p = process();
            let ctx = ctx(&p);
            let cq = cq(&ctx, 3, 3);
            let a = qp(&ctx, 0x21, &cq, &cq, qp_cap(4, 4, 2, 2, 32));
            let b = qp(&ctx, 0x22, &cq, &cq, qp_cap(4, 4, 2, 2, 32));
            a.post_send(&[SendWr::send(1, &[]).signaled()]).unwrap();
            b.post_recv(&[RecvWr::new(2, &[])]).unwrap();
            nic_complete(&cq, 0, recv_cqe(0x22, 2, 0));
            nic_complete(
                &cq,
                1,
                Cqe {
                    opcode: WcOpcode::Send as u8,
                    ..send_cqe(0x21, 1, 0)
                },
            );
            let wcs = cq.poll_until(2, Duration::from_secs(1)).unwrap();
            assert_eq!(
                wcs.iter().map(|w| w.qp_num).collect::<Vec<_>>(),
                [0x22, 0x21]
            );
            assert_eq!((a.outstanding(), b.outstanding()), ((0, 0), (0, 0)));
            // A completion for a QP this context does not know is returned as it is.
            nic_complete(&cq, 2, send_cqe(0x99, 5, 0));
            assert_eq!(
                cq.poll_until(1, Duration::from_secs(1)).unwrap()[0].qp_num,
                0x99
            );
        }

        #[test]
        fn a_cleaned_qps_completions_are_dropped() {
            let p = process();
            let ctx = ctx(&p);
            let cq = cq(&ctx, 3, 3);
            let a = qp(&ctx, 0x31, &cq, &cq, qp_cap(4, 4, 2, 2, 32));
            let b = qp(&ctx, 0x32, &cq, &cq, qp_cap(4, 4, 2, 2, 32));
            a.post_send(&[SendWr::send(1, &[]).signaled()]).unwrap();
            b.post_send(&[SendWr::send(2, &[]).signaled()]).unwrap();
            nic_complete(&cq, 0, send_cqe(0x31, 1, 0));
            nic_complete(&cq, 1, send_cqe(0x32, 2, 0));
            nic_complete(&cq, 2, send_cqe(0x31, 3, 1));
            // What a destroy or a reset of A does once the kernel has answered.
            lock(&a.shared.rings).sq.reset();
            a.clean_cqs();
            let wcs = cq.poll_until(3, Duration::from_millis(20)).unwrap();
            assert_eq!(wcs.iter().map(|w| w.wr_id).collect::<Vec<_>>(), [2]);
            assert_eq!(dbrec(&cq), 3);
            assert_eq!(a.outstanding(), (0, 0));
            assert!(lock(&cq.shared.state).skip.is_empty());
        }

        #[test]
        fn posting_checks_the_state_and_reads_inline_bytes() {
            let p = process();
            let ctx = ctx(&p);
            let cq = cq(&ctx, 3, 2);
            let qp = qp(&ctx, 0x41, &cq, &cq, qp_cap(4, 4, 2, 2, 32));
            lock(&qp.shared.rings).state = QpState::Init;
            let err = qp.post_send(&[SendWr::send(1, &[])]).unwrap_err();
            assert_eq!((err.index, err.errno), (0, Errno::EINVAL));
            lock(&qp.shared.rings).state = QpState::Reset;
            let err = qp.post_recv(&[RecvWr::new(1, &[])]).unwrap_err();
            assert_eq!((err.index, err.errno), (0, Errno::EINVAL));
            assert_eq!(qp.outstanding(), (0, 0));
            // In ERR work is still taken (the NIC flushes it).
            lock(&qp.shared.rings).state = QpState::Err;
            let buf = HostBuffer::new(&p, 4096).unwrap();
            buf.write(100, b"inline!").unwrap();
            let wr = SendWr::send(
                9,
                &[Sge {
                    addr: buf.addr() + 100,
                    length: 7,
                    lkey: 0,
                }],
            )
            .inline();
            qp.post_send(std::slice::from_ref(&wr)).unwrap();
            let mut slot = [0u8; SEND_WQE_SIZE];
            p.read_mem(qp.sq.unwrap().ptr, &mut slot).unwrap();
            assert_eq!(slot, encode_send_wqe(&wr, Some(b"inline!"), false).unwrap());
            // Inline bytes from unmapped memory: EFAULT, and nothing posted.
            let bad = SendWr::send(
                10,
                &[Sge {
                    addr: 8,
                    length: 7,
                    lkey: 0,
                }],
            )
            .inline();
            let err = qp.post_send(&[SendWr::send(11, &[]), bad]).unwrap_err();
            assert_eq!((err.index, err.errno), (1, Errno::EFAULT));
            assert_eq!(qp.outstanding(), (2, 0));
        }

        #[test]
        fn arming_rings_the_cq_doorbell_with_the_consumer_index() {
            let p = process();
            let ctx = ctx(&p);
            let cq = cq(&ctx, 5, 2);
            cq.req_notify(true).unwrap();
            assert_eq!(doorbell(&ctx, UAR_CQ_ARM), cq_arm_value(5, true, 0));
            nic_complete(&cq, 0, send_cqe(0x99, 1, 0));
            assert_eq!(cq.poll(&mut [WorkCompletion::default(); 2]).unwrap(), 1);
            cq.req_notify(false).unwrap();
            assert_eq!(doorbell(&ctx, UAR_CQ_ARM), cq_arm_value(5, false, 1));
        }

        #[test]
        fn host_buffers_check_their_bounds() {
            let p = process();
            let buf = HostBuffer::new(&p, 100).unwrap();
            buf.fill(0xab).unwrap();
            assert_eq!(buf.read(96, 4).unwrap(), [0xab; 4]);
            buf.write_u64(8, 0x0102_0304_0506_0708).unwrap();
            assert_eq!(buf.read_u64(8).unwrap(), 0x0102_0304_0506_0708);
            assert_eq!(buf.write(97, &[0; 4]).unwrap_err().errno, Errno::EINVAL);
            assert_eq!(buf.read(u64::MAX, 2).unwrap_err().errno, Errno::EINVAL);
        }

        #[test]
        fn objects_of_a_dead_context_fail_cleanly() {
            let p = process();
            let ctx = ctx(&p);
            let mut cq = cq(&ctx, 3, 2);
            // The destroy ioctl on fd -1 fails; the CQ stays usable.
            assert_eq!(cq.close().unwrap_err().errno, Errno::EBADF);
            assert_eq!(cq.poll(&mut [WorkCompletion::default()]).unwrap(), 0);
            assert!(devices(&p).is_empty());
            let err = Context::open(&p, 0).unwrap_err();
            assert_eq!(
                err.to_string(),
                "ibv_open_device: ENOENT (No such file or directory)"
            );
        }
    }

    #[test]
    fn psns_are_24_bit_and_follow_the_seed() {
        let c = ConnectAttr::default();
        let (a, b) = c.psns();
        assert!(a <= PSN_MASK && b <= PSN_MASK);
        assert_ne!(a, b);
        assert_eq!(c.psns(), (a, b));
        let other = ConnectAttr { psn_seed: 1, ..c };
        assert_ne!(other.psns(), (a, b));
    }
}
