//! Two connected RC queue pairs, nic0 → nic1, with their memory regions: the setup the
//! RDMA demo and benchmark share. The "peer-to-peer" pair registers dma-bufs of accel0's
//! and accel3's HBM (each SG1 shares a switch with its NIC); the "host" pair registers
//! pinned host buffers, for the bounce path.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use sagrada::accel::{Device, DeviceMemory, HostMemory};
use sagrada::verbs::{
    CompChannel, CompletionQueue, ConnectAttr, Context, MemoryRegion, Mtu, QpInitAttr, QueuePair,
    SendWr, WcStatus, WorkCompletion, access, qp_cap, rc_connect,
};
use sagrada::{Machine, Process};
use sagrada_hw_accel_abi::packet::DmaDir;
use sagrada_hw_rnic::Counter;

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

/// One way of moving a buffer from accel0's HBM to accel3's.
pub struct PathRow {
    pub path: &'static str,
    pub dram_bytes: u64,
    pub device_ns: u64,
    pub host: Duration,
}

/// Moves `pattern` from accel0's HBM to accel3's twice: by one RDMA WRITE between
/// dma-buf regions (p2p), and along the path it replaces (accel0 → host buffer, RDMA
/// WRITE between host buffers, host buffer → accel3). Checks the data each time and
/// measures the bytes through host DRAM, the modelled device time (the SG1 DMA engines,
/// the NICs' DMA and the wire) and the host time.
pub fn compare_paths(
    machine: &Machine,
    p: &Process,
    dev0: &Device<'_>,
    dev1: &Device<'_>,
    pattern: &[u8],
) -> Result<Vec<PathRow>> {
    let size = pattern.len() as u64;
    let fabric = machine.fabric();
    let nic_time = || -> u64 {
        machine
            .rnics()
            .iter()
            .map(|n| n.counter(Counter::DmaTimeNs) + n.counter(Counter::WireTimeNs))
            .sum()
    };
    let mut rows = Vec::new();
    for bounce in [false, true] {
        let a = dev0.alloc(size, false)?;
        let b = dev1.alloc(size, false)?;
        dev0.upload(a.va, pattern)?;
        let (h0, h1) = (dev0.host_alloc(size)?, dev1.host_alloc(size)?);
        let pair = if bounce {
            Pair::new(
                p,
                (dev0, &Memory::Host(h0)),
                (dev1, &Memory::Host(h1)),
                size,
            )?
        } else {
            Pair::new(p, (dev0, &Memory::Hbm(a)), (dev1, &Memory::Hbm(b)), size)?
        };
        let before = fabric.counters();
        let nic0 = nic_time();
        let start = Instant::now();
        let mut sg1_ns = 0;
        if bounce {
            sg1_ns += dev0.copy(h0.va, a.va, size, DmaDir::DeviceToHost)?;
        }
        write_once(&pair, size)?;
        if bounce {
            sg1_ns += dev1.copy(b.va, h1.va, size, DmaDir::HostToDevice)?;
        }
        let host = start.elapsed();
        let delta = fabric.counters().since(&before);
        let device_ns = sg1_ns + nic_time() - nic0;
        let mut back = vec![0u8; size as usize];
        dev1.download(b.va, &mut back)?;
        if back != pattern {
            bail!(
                "the {} path delivered wrong data",
                if bounce { "bounce" } else { "p2p" }
            );
        }
        rows.push(PathRow {
            path: if bounce {
                "bounce: accel0 -> host, RDMA host -> host, host -> accel3"
            } else {
                "p2p: RDMA WRITE accel0 HBM -> accel3 HBM"
            },
            dram_bytes: delta.host_dram_read_bytes + delta.host_dram_write_bytes,
            device_ns,
            host,
        });
        drop(pair);
        dev0.free(a)?;
        dev1.free(b)?;
        dev0.host_free(h0)?;
        dev1.host_free(h1)?;
    }
    Ok(rows)
}

/// Prints the rows of [`compare_paths`].
pub fn print_paths(size: u64, rows: &[PathRow]) {
    println!(
        "{} MiB from accel0's HBM to accel3's, both ways (device time: SG1 DMA engines, NIC DMA and wire, modelled):",
        size >> 20
    );
    println!(
        "  {:<58} {:>16} {:>14} {:>12} {:>10}",
        "path", "host DRAM bytes", "device time", "host time", "GiB/s"
    );
    for r in rows {
        println!(
            "  {:<58} {:>16} {:>11.1} us {:>9.2} ms {:>10.2}",
            r.path,
            r.dram_bytes,
            r.device_ns as f64 / 1e3,
            r.host.as_secs_f64() * 1e3,
            crate::bench::gib_per_s(size, r.host)
        );
    }
    println!("  (p2p's host DRAM bytes are the work request and its completion, not payload)");
}
