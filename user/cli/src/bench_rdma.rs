//! `sagrada bench rdma write|read|send`: perftest's `ib_write_bw`, `ib_read_bw` and
//! `ib_send_bw` on the emulated NICs, nic0 → nic1 over their cable, with the memory
//! the seed is about: dma-buf regions of HBM (accel0's beside nic0, accel3's beside
//! nic1), mapped by bus address as the p2pdma API does, so every payload byte goes NIC
//! ↔ HBM inside a switch.
//!
//! The columns are perftest's (`#bytes #iterations BW peak[MiB/sec] BW
//! average[MiB/sec] MsgRate[Mpps]`, plus Gb/s): the average is the bytes over the time
//! from the first post to the last completion, the message rate the iterations over the
//! whole time, and the peak is perftest's: the best, over every run of consecutive
//! messages `i..=j`, of their bytes over the time from posting `i` to completing `j`. Beside them, host memcpy of the same size, measured in the same run, and
//! the ratio. Then the largest size once more along the path p2p replaces (accel0 →
//! host buffer → RDMA between host buffers → accel3), with host time, the modelled
//! device time and the bytes through host DRAM.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use clap::ValueEnum;
use sagrada::Machine;
use sagrada::accel::Device;
use sagrada::verbs::{RecvWr, SendWr};
use sagrada_hw_fabric::TopologyConfig;

use crate::bench::median;
use crate::rdma_pair::{
    DST_ACCEL, Memory, Pair, SRC_ACCEL, TX_DEPTH, compare_paths, print_paths, wait,
};

/// The operation measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Op {
    /// RDMA WRITE (`ib_write_bw`).
    Write,
    /// RDMA READ (`ib_read_bw`): nic0 reads accel3's HBM into accel0's.
    Read,
    /// SEND/RECV (`ib_send_bw`).
    Send,
}

/// `sagrada bench rdma` options.
#[derive(clap::Args, Debug, Clone)]
pub struct RdmaArgs {
    /// What to measure.
    #[arg(value_enum)]
    pub op: Op,
    /// Message size (with K, M, G suffixes).
    #[arg(long, default_value = "64M", value_parser = crate::bench::parse_size)]
    pub size: u64,
    /// Messages per size.
    #[arg(long, default_value_t = 100)]
    pub iterations: usize,
    /// Sweep sizes from 4 KiB up to --size, doubling (perftest's -a).
    #[arg(long, short = 'a')]
    pub all: bool,
}

struct Result1 {
    bytes: u64,
    iterations: usize,
    total: Duration,
    /// The shortest time per message over any run of consecutive messages.
    best_per_message: Duration,
}

/// perftest's peak: the least `(completed[j] - posted[i]) / (j - i + 1)` over `i <= j`
/// (completions of one QP arrive in posting order). perftest tries every pair; this
/// bisects on the answer `t` instead, which takes a linear pass per step: some `i <= j`
/// reaches `t` exactly when `completed[j] - t*j - max(posted[i] - t*i) <= t`.
fn best_per_message(posted: &[Instant], completed: &[Instant]) -> Duration {
    let Some(&origin) = posted.first() else {
        return Duration::from_nanos(1);
    };
    let ns = |t: Instant| t.saturating_duration_since(origin).as_nanos() as f64;
    let p: Vec<f64> = posted.iter().map(|&t| ns(t)).collect();
    let c: Vec<f64> = completed.iter().map(|&t| ns(t)).collect();
    let reaches = |t: f64| {
        let mut best_start = f64::NEG_INFINITY;
        p.iter().zip(&c).enumerate().any(|(k, (&pk, &ck))| {
            let k = k as f64;
            best_start = best_start.max(pk - t * k);
            ck - t * k - best_start <= t
        })
    };
    // The whole run, one message per its share of the time, is always reached.
    let (mut lo, mut hi) = (0.0, c.last().copied().unwrap_or(1.0).max(1.0));
    for _ in 0..64 {
        let mid = (lo + hi) / 2.0;
        if reaches(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Duration::from_nanos(hi.ceil().max(1.0) as u64)
}

/// Runs `iterations` messages of `size` bytes with at most `TX_DEPTH` outstanding.
fn run(pair: &Pair<'_>, op: Op, size: u64, iterations: usize) -> Result<Result1> {
    let window = TX_DEPTH as usize;
    let sge0 = pair.mr0.sge(0, size as u32);
    let (raddr, rkey) = (pair.mr1.iova(), pair.mr1.rkey());
    if op == Op::Send {
        let recvs: Vec<RecvWr> = (0..window.min(iterations))
            .map(|i| RecvWr::new(i as u64, &[pair.mr1.sge(0, size as u32)]))
            .collect();
        pair.qp1
            .post_recv(&recvs)
            .map_err(|e| anyhow::anyhow!("post_recv: {e}"))?;
    }
    let wr = |i: usize| {
        let id = i as u64;
        match op {
            Op::Write => SendWr::write(id, &[sge0], raddr, rkey),
            Op::Read => SendWr::read(id, &[sge0], raddr, rkey),
            Op::Send => SendWr::send(id, &[sge0]),
        }
        .signaled()
    };
    let start = Instant::now();
    let (mut posted, mut done, mut recvs_posted) = (0usize, 0usize, window.min(iterations));
    let mut posted_at = Vec::with_capacity(iterations);
    let mut completed_at = Vec::with_capacity(iterations);
    while done < iterations {
        let n = (iterations - posted).min(window - (posted - done));
        if n > 0 {
            let wrs: Vec<SendWr> = (posted..posted + n).map(wr).collect();
            let t = Instant::now();
            pair.qp0
                .post_send(&wrs)
                .map_err(|e| anyhow::anyhow!("post_send: {e}"))?;
            posted_at.extend(std::iter::repeat_n(t, n));
            posted += n;
        }
        let times = wait(&pair.cq0, &pair.ch0, 1, Duration::from_secs(60))?;
        done += times.len();
        completed_at.extend(times);
        if op == Op::Send {
            // Keep the receiver's queue full: take its completions and post again.
            let mut wc = vec![sagrada::verbs::WorkCompletion::default(); 64];
            let got = pair.cq1.poll(&mut wc)?;
            let more = got.min(iterations - recvs_posted);
            if more > 0 {
                let recvs: Vec<RecvWr> = (0..more)
                    .map(|i| {
                        RecvWr::new((recvs_posted + i) as u64, &[pair.mr1.sge(0, size as u32)])
                    })
                    .collect();
                pair.qp1
                    .post_recv(&recvs)
                    .map_err(|e| anyhow::anyhow!("post_recv: {e}"))?;
                recvs_posted += more;
            }
        }
    }
    let total = completed_at.last().map_or(Duration::ZERO, |&t| t - start);
    if op == Op::Send {
        // Drain the receiver's remaining completions.
        let mut wc = vec![sagrada::verbs::WorkCompletion::default(); 256];
        while pair.cq1.poll(&mut wc)? > 0 {}
    }
    Ok(Result1 {
        bytes: size,
        iterations,
        total,
        best_per_message: best_per_message(&posted_at, &completed_at),
    })
}

fn memcpy_time(size: u64) -> Duration {
    let src: Vec<u8> = (0..size).map(|i| (i as u8) ^ (i >> 12) as u8).collect();
    let mut dst = vec![0u8; size as usize];
    let samples = (0..5)
        .map(|_| {
            let t = Instant::now();
            dst.copy_from_slice(std::hint::black_box(&src));
            std::hint::black_box(&mut dst);
            t.elapsed()
        })
        .collect();
    median(samples)
}

const MIB: f64 = (1u64 << 20) as f64;

pub fn rdma(args: &RdmaArgs) -> Result<()> {
    if args.iterations == 0 {
        bail!("--iterations must be at least 1");
    }
    if args.size == 0 || args.size > 1 << 30 {
        bail!("--size {} is out of range: 1 byte to 1 GiB", args.size);
    }
    let machine = Machine::builder(&TopologyConfig::default_machine())
        .p2p_bus_addr(true)
        .build()?;
    let p = machine.process("sagrada-bench");
    let dev0 = Device::open(&p, SRC_ACCEL).context("cannot open accel0")?;
    let dev1 = Device::open(&p, DST_ACCEL).context("cannot open accel3")?;
    let size = args.size.next_multiple_of(4096);
    let hbm0 = dev0.alloc(size, false)?;
    let hbm1 = dev1.alloc(size, false)?;
    let pattern: Vec<u8> = (0..size).map(|i| (i as u8) ^ (i >> 10) as u8).collect();
    let (from, to) = match args.op {
        Op::Read => (&dev1, &dev0),
        _ => (&dev0, &dev1),
    };
    let (from_mem, to_mem) = match args.op {
        Op::Read => (&hbm1, &hbm0),
        _ => (&hbm0, &hbm1),
    };
    from.upload(from_mem.va, &pattern)?;
    let pair = Pair::new(
        &p,
        (&dev0, &Memory::Hbm(hbm0)),
        (&dev1, &Memory::Hbm(hbm1)),
        size,
    )?;
    let sizes: Vec<u64> = if args.all {
        std::iter::successors(Some(4096u64), |s| Some(s * 2))
            .take_while(|&s| s <= args.size)
            .collect()
    } else {
        vec![args.size]
    };
    let name = match args.op {
        Op::Write => "RDMA WRITE",
        Op::Read => "RDMA READ",
        Op::Send => "SEND",
    };
    println!(
        "sagrada bench rdma {}: {name}, nic0 -> nic1 over the in-memory cable; accel0 HBM and accel3 HBM as dma-buf MRs (p2p through sw0 and sw1); MTU 4096, tx depth {TX_DEPTH}",
        format!("{:?}", args.op).to_lowercase()
    );
    println!(
        " {:>10} {:>12} {:>18} {:>20} {:>14} {:>16} {:>12} {:>10}",
        "#bytes",
        "#iterations",
        "BW peak[MiB/sec]",
        "BW average[MiB/sec]",
        "MsgRate[Mpps]",
        "BW average[Gb/s]",
        "memcpy MiB/s",
        "vs memcpy"
    );
    for &s in &sizes {
        // Small messages are fast: keep each size's run long enough to measure.
        let iterations = if args.all {
            (args.iterations as u64 * args.size / s).clamp(args.iterations as u64, 20_000) as usize
        } else {
            args.iterations
        };
        let r = run(&pair, args.op, s, iterations)?;
        let memcpy = memcpy_time(s);
        let avg = (r.bytes * r.iterations as u64) as f64 / r.total.as_secs_f64();
        let peak = r.bytes as f64 / r.best_per_message.as_secs_f64();
        let memcpy_bw = s as f64 / memcpy.as_secs_f64();
        println!(
            " {:>10} {:>12} {:>18.2} {:>20.2} {:>14.6} {:>16.2} {:>12.2} {:>10.2}",
            r.bytes,
            r.iterations,
            peak / MIB,
            avg / MIB,
            r.iterations as f64 / r.total.as_secs_f64() / 1e6,
            avg * 8.0 / 1e9,
            memcpy_bw / MIB,
            avg / memcpy_bw
        );
    }
    // The data arrived intact.
    let mut back = vec![0u8; size as usize];
    to.download(to_mem.va, &mut back)?;
    let last = *sizes.last().unwrap_or(&size) as usize;
    if back[..last] != pattern[..last] {
        bail!("the destination does not hold what the source held");
    }
    drop(pair);
    if args.op == Op::Write {
        let rows = compare_paths(&machine, &p, &dev0, &dev1, &pattern)?;
        println!();
        print_paths(size, &rows);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peak_is_the_best_run_of_consecutive_messages() {
        let t0 = Instant::now();
        let at = |us: u64| t0 + Duration::from_micros(us);
        // Four messages posted at once; completions at 10, 12, 14 and 40 µs.
        let posted = [at(0); 4];
        let completed = [at(10), at(12), at(14), at(40)];
        // Best: messages 0..=2 in 14 µs, 4.67 µs each (every pair checked by hand:
        // 10, 6, 4.67, 10, 12, 7, 13.3, 14, 13.3, 40).
        let best = best_per_message(&posted, &completed);
        assert!(
            best.abs_diff(Duration::from_nanos(14_000 / 3)) <= Duration::from_nanos(2),
            "{best:?}"
        );
        // A later start can give the best: 1..=1 posted at 11 µs, done at 12.
        let posted = [at(0), at(11), at(11), at(11)];
        let best = best_per_message(&posted, &completed);
        assert!(
            best.abs_diff(Duration::from_micros(1)) <= Duration::from_nanos(2),
            "{best:?}"
        );
    }

    #[test]
    fn a_small_rdma_benchmark_runs_and_checks_its_data() {
        for op in [Op::Write, Op::Read, Op::Send] {
            rdma(&RdmaArgs {
                op,
                size: 64 << 10,
                iterations: 8,
                all: false,
            })
            .unwrap();
        }
    }
}
