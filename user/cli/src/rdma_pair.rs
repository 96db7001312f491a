//! Two connected RC queue pairs, nic0 → nic1, with their memory regions: the setup the
//! RDMA demo and benchmark share. The "peer-to-peer" pair registers dma-bufs of accel0's
//! and accel3's HBM (each SG1 shares a switch with its NIC); the "host" pair registers
//! pinned host buffers, for the bounce path.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use sagrada::Process;
use sagrada::accel::{Device, DeviceMemory, HostMemory};
use sagrada::verbs::{
    CompChannel, CompletionQueue, ConnectAttr, Context, MemoryRegion, Mtu, QpInitAttr, QueuePair,
    SendWr, WcStatus, WorkCompletion, access, qp_cap, rc_connect,
};

/// The accelerators beside nic0 and nic1 in the default machine.
pub const SRC_ACCEL: u32 = 0;
pub const DST_ACCEL: u32 = 3;

/// Send queue depth (perftest's `tx_depth`).
pub const TX_DEPTH: u32 = 128;

const ALL: u32 = access::LOCAL_WRITE | access::REMOTE_WRITE | access::REMOTE_READ;

/// One side's memory: HBM exported as a dma-buf, or pinned host memory.
pub enum Memory {
    Hbm(DeviceMemory),
    Host(HostMemory),
}

/// nic0 and nic1 with one connected QP each and a region on each side.
pub struct Pair<'p> {
    pub qp0: QueuePair<'p>,
    pub qp1: QueuePair<'p>,
    pub cq0: CompletionQueue<'p>,
    pub cq1: CompletionQueue<'p>,
    /// The completion channel of `cq0` (waiting sleeps on it); `cq1` has its own.
    pub ch0: CompChannel<'p>,
    _ch1: CompChannel<'p>,
    pub mr0: MemoryRegion<'p>,
    pub mr1: MemoryRegion<'p>,
    // Kept for their lifetime: the regions and QPs hold references through the fds.
    _ctx: (Context<'p>, Context<'p>),
}

/// A region of `size` bytes on one NIC over `mem`.
fn region<'p>(
    p: &'p Process,
    ctx: &Context<'p>,
    pd: &sagrada::verbs::ProtectionDomain<'p>,
    dev: &Device<'p>,
    mem: &Memory,
    size: u64,
) -> Result<MemoryRegion<'p>> {
    match mem {
        Memory::Hbm(m) => {
            let fd = dev
                .export_dmabuf(m, 0, size)
                .context("EXPORT_DMABUF_FD failed")?;
            let mr = pd
                .reg_dmabuf_mr(0, size, 0, fd, ALL)
                .with_context(|| format!("{}: reg_dmabuf_mr failed", ctx.path()))?;
            // The region holds the dma-buf; the fd is not needed any more.
            p.close(fd)?;
            Ok(mr)
        }
        Memory::Host(h) => pd
            .reg_mr(h.ptr, size, ALL)
            .with_context(|| format!("{}: reg_mr failed", ctx.path())),
    }
}

impl<'p> Pair<'p> {
    /// Connects nic0 and nic1 over `mem0` (on accel `dev0`'s side) and `mem1`.
    pub fn new(
        p: &'p Process,
        (dev0, mem0): (&Device<'p>, &Memory),
        (dev1, mem1): (&Device<'p>, &Memory),
        size: u64,
    ) -> Result<Self> {
        let c0 = Context::open(p, 0u32).context("cannot open uverbs0 (nic0)")?;
        let c1 = Context::open(p, 1u32).context("cannot open uverbs1 (nic1)")?;
        let (pd0, pd1) = (c0.alloc_pd()?, c1.alloc_pd()?);
        let mr0 = region(p, &c0, &pd0, dev0, mem0, size)?;
        let mr1 = region(p, &c1, &pd1, dev1, mem1, size)?;
        let (ch0, ch1) = (c0.create_comp_channel()?, c1.create_comp_channel()?);
        let cq0 = c0.create_cq(4 * TX_DEPTH, Some(&ch0), 0)?;
        let cq1 = c1.create_cq(4 * TX_DEPTH, Some(&ch1), 0)?;
        let cap = qp_cap(TX_DEPTH, TX_DEPTH, 1, 1, 0);
        let qp0 = pd0.create_qp(&QpInitAttr::rc(&cq0, &cq0, cap))?;
        let qp1 = pd1.create_qp(&QpInitAttr::rc(&cq1, &cq1, cap))?;
        let attr = ConnectAttr {
            path_mtu: Mtu::Mtu4096,
            max_rd_atomic: 16,
            max_dest_rd_atomic: 16,
            ..ConnectAttr::default()
        };
        rc_connect(&qp0, &qp1, &attr)?;
        Ok(Pair {
            qp0,
            qp1,
            cq0,
            cq1,
            ch0,
            _ch1: ch1,
            mr0,
            mr1,
            _ctx: (c0, c1),
        })
    }
}

/// Waits for `n` completions on `cq`, sleeping on its channel when none is there (a
/// spinning poller would take a core from the NICs' engines on a small machine).
/// Fails on an error completion or after `timeout`.
pub fn wait(
    cq: &CompletionQueue<'_>,
    channel: &CompChannel<'_>,
    n: usize,
    timeout: Duration,
) -> Result<Vec<Instant>> {
    let mut wc = vec![WorkCompletion::default(); 64];
    let mut times = Vec::with_capacity(n);
    let deadline = Instant::now() + timeout;
    while times.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        let got = cq.poll_blocking(&mut wc, channel, Some(left))?;
        if got == 0 {
            bail!(
                "{} of {n} completions after {timeout:?}: the transfer is stuck",
                times.len()
            );
        }
        let now = Instant::now();
        for c in &wc[..got] {
            if c.status != WcStatus::Success {
                bail!(
                    "work request {} completed with {} (vendor error {:#x})",
                    c.wr_id,
                    c.status,
                    c.vendor_err
                );
            }
            times.push(now);
        }
    }
    Ok(times)
}

/// One RDMA WRITE of `size` bytes from `mr0` to `mr1`, waited for.
pub fn write_once(pair: &Pair<'_>, size: u64) -> Result<()> {
    let mut offset = 0;
    let mut posted = 0;
    // Messages of at most 1 GiB (a work request's length is 32 bits).
    while offset < size {
        let n = (size - offset).min(1 << 30);
        pair.qp0
            .post_send(&[SendWr::write(
                posted,
                &[pair.mr0.sge(offset, n as u32)],
                pair.mr1.iova() + offset,
                pair.mr1.rkey(),
            )
            .signaled()])
            .map_err(|e| anyhow::anyhow!("post_send failed: {e}"))?;
        offset += n;
        posted += 1;
    }
    wait(
        &pair.cq0,
        &pair.ch0,
        posted as usize,
        Duration::from_secs(60),
    )?;
    Ok(())
}
