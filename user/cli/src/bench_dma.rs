//! `sagrada bench dma`: the SG1's DMA engines driven through the whole stack (command
//! buffer, `CS` ioctl, queue, engine, completion queue, interrupt, `WAIT_CS`), beside
//! host references measured in the same run.
//!
//! Bandwidth is one `LIN_DMA` of the whole size per submission, timed from before
//! `CS` to after `WAIT_CS` returns; rounds interleave the memcpy reference with every
//! direction. Latency is a submission holding one `NOP` (the driver adds its `FENCE`),
//! timed the same way, beside a round trip to another thread through channels: the
//! least it costs to hand work to a thread and hear back that it is done, which is
//! what a submission does twice (to the engine, and back through the completion
//! interrupt) unless the engine is already polling its queue.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use sagrada::Machine;
use sagrada::accel::{DMA0, Device};
use sagrada_hw_accel_abi::packet::{DmaDir, Packet};

use crate::bench::{gib_per_s, median};

/// Timed one-`NOP` submissions per latency run (and as many thread round trips).
const LATENCY_ROUNDS: usize = 2000;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn us(t: Duration) -> f64 {
    t.as_secs_f64() * 1e6
}

pub fn dma(size: u64, iterations: usize) -> Result<()> {
    if iterations == 0 {
        bail!("--iterations must be at least 1");
    }
    let machine = Machine::default_machine()?;
    let process = machine.process("sagrada-bench");
    let dev = Device::open(&process, 0).context("cannot open /dev/accel/accel0")?;
    let hbm = dev.info().dram_user_size;
    if size.checked_mul(2).is_none_or(|two| two > hbm) {
        bail!(
            "--size {size} is too large: D2D needs two buffers in the {hbm} bytes of accel0's HBM open to users"
        );
    }
    let alloc = |what: &str| {
        dev.alloc(size, true)
            .with_context(|| format!("cannot allocate {size} bytes of HBM for the {what} buffer"))
    };
    let (hbm_a, hbm_b) = (alloc("first")?, alloc("second")?);
    let pin = |what: &str| {
        dev.host_alloc(size).with_context(|| {
            format!("cannot pin {size} bytes of host memory for the {what} buffer")
        })
    };
    let (host_src, host_dst) = (pin("source")?, pin("destination")?);

    // The source is not a constant fill, which the compiler could turn into a memset.
    let pattern: Vec<u8> = (0..size).map(|i| (i as u8) ^ (i >> 12) as u8).collect();
    process.write_mem(host_src.ptr, &pattern)?;
    let mut reference_dst = vec![0u8; size as usize];

    let transfers: [(&str, u64, u64, DmaDir); 3] = [
        (
            "H2D  host memory -> HBM",
            hbm_a.va,
            host_src.va,
            DmaDir::HostToDevice,
        ),
        (
            "D2D  HBM -> HBM",
            hbm_b.va,
            hbm_a.va,
            DmaDir::DeviceToDevice,
        ),
        (
            "D2H  HBM -> host memory",
            host_dst.va,
            hbm_b.va,
            DmaDir::DeviceToHost,
        ),
    ];
    // Round 0 warms up (faults in the reference buffers, pages in the device's page
    // table walks) and is not timed.
    let mut memcpy_samples = Vec::with_capacity(iterations);
    let mut samples = vec![Vec::with_capacity(iterations); transfers.len()];
    for round in 0..=iterations {
        let start = Instant::now();
        reference_dst.copy_from_slice(std::hint::black_box(&pattern));
        std::hint::black_box(&mut reference_dst);
        let t = start.elapsed();
        if round > 0 {
            memcpy_samples.push(t);
        }
        for (i, &(name, dst, src, dir)) in transfers.iter().enumerate() {
            let start = Instant::now();
            dev.copy(dst, src, size, dir)
                .with_context(|| format!("{name}: the copy failed"))?;
            let t = start.elapsed();
            if round > 0 {
                samples[i].push(t);
            }
        }
    }
    // The chain H2D, D2D, D2H ends where it began: the bytes must have survived it.
    let mut back = vec![0u8; size as usize];
    process.read_mem(host_dst.ptr, &mut back)?;
    if back != pattern {
        let at = back
            .iter()
            .zip(&pattern)
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        bail!("the data came back wrong at byte {at} after H2D, D2D and D2H");
    }
    drop((back, reference_dst, pattern));

    let (nop, thread_rt) = latency(&dev)?;

    dev.host_free(host_src)?;
    dev.host_free(host_dst)?;
    dev.free(hbm_a)?;
    dev.free(hbm_b)?;
    dev.close()?;

    let memcpy = median(memcpy_samples);
    println!(
        "sagrada bench dma: accel0, {} MiB per copy (one LIN_DMA per CS), median of {iterations} interleaved rounds",
        size >> 20
    );
    println!(
        "reference: host memcpy {:.2} GiB/s ({:.2} ms)\n",
        gib_per_s(size, memcpy),
        memcpy.as_secs_f64() * 1e3
    );
    println!(
        "{:<28} {:>10} {:>10} {:>10}",
        "copy", "GiB/s", "ms", "vs memcpy"
    );
    for ((name, ..), s) in transfers.iter().zip(samples) {
        let t = median(s);
        println!(
            "{:<28} {:>10.2} {:>10.2} {:>9.0}%",
            name,
            gib_per_s(size, t),
            t.as_secs_f64() * 1e3,
            100.0 * memcpy.as_secs_f64() / t.as_secs_f64()
        );
    }
    println!(
        "\none-NOP CS, submit to completion ({LATENCY_ROUNDS} timed)        median {:>6.2} us   p99 {:>7.2} us   min {:>6.2} us",
        us(nop.0),
        us(nop.1),
        us(nop.2)
    );
    println!(
        "reference: round trip to another thread via channels    median {:>6.2} us   p99 {:>7.2} us   min {:>6.2} us",
        us(thread_rt.0),
        us(thread_rt.1),
        us(thread_rt.2)
    );
    println!(
        "ratio (CS / thread round trip, medians): {:.1}",
        nop.0.as_secs_f64() / thread_rt.0.as_secs_f64()
    );
    Ok(())
}

/// Median, p99 and minimum.
type Spread = (Duration, Duration, Duration);

fn spread(mut samples: Vec<Duration>) -> Spread {
    samples.sort();
    (
        percentile(&samples, 0.5),
        percentile(&samples, 0.99),
        samples[0],
    )
}

/// One-`NOP` submissions and thread round trips, in alternating blocks: an engine
/// spins a while after its last entry, so a round trip right after a submission would
/// share the cores with it, and a submission right after a round trip would find the
/// engine asleep; blocks measure each in its steady state while still spreading the
/// machine's load over both.
fn latency(dev: &Device<'_>) -> Result<(Spread, Spread)> {
    const BLOCK: usize = 100;
    let (to_worker, worker_rx) = mpsc::channel::<u64>();
    let (worker_tx, from_worker) = mpsc::channel::<u64>();
    let worker = std::thread::spawn(move || {
        while let Ok(v) = worker_rx.recv() {
            if worker_tx.send(v).is_err() {
                break;
            }
        }
    });
    let mut cs = Vec::with_capacity(LATENCY_ROUNDS);
    let mut rt = Vec::with_capacity(LATENCY_ROUNDS);
    // The first block of each is a warm-up and is not kept.
    for block in 0..=LATENCY_ROUNDS / BLOCK {
        let keep = block > 0;
        for _ in 0..BLOCK {
            let start = Instant::now();
            dev.run(DMA0, &[Packet::Nop])?
                .ok()
                .context("a one-NOP submission failed")?;
            let t = start.elapsed();
            if keep {
                cs.push(t);
            }
        }
        for i in 0..BLOCK as u64 {
            let start = Instant::now();
            to_worker.send(i)?;
            let echoed = from_worker.recv()?;
            let t = start.elapsed();
            if echoed != i {
                bail!("the reference thread echoed {echoed} for {i}");
            }
            if keep {
                rt.push(t);
            }
        }
    }
    drop(to_worker);
    worker
        .join()
        .map_err(|_| anyhow::anyhow!("the reference thread panicked"))?;
    Ok((spread(cs), spread(rt)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_dma_benchmark_runs_and_checks_its_data() {
        dma(1 << 20, 1).unwrap();
    }

    #[test]
    fn sizes_that_do_not_fit_twice_in_hbm_are_refused() {
        let e = dma(1 << 30, 1).unwrap_err().to_string();
        assert!(e.contains("--size 1073741824"), "{e}");
    }
}
