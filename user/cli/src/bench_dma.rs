//! `sagrada bench dma`: the SG1's DMA engines driven through the whole stack (command
//! buffer, `CS` ioctl, queue, engine, completion queue, interrupt, `WAIT_CS`), beside
//! host references measured in the same run.
//!
//! Bandwidth is one `LIN_DMA` of the whole size per submission, timed from before
//! `CS` to after `WAIT_CS` returns; rounds interleave the memcpy reference with every
//! direction. Latency is a submission holding one `NOP` (the driver adds its `FENCE`),
//! timed the same way, beside a one-byte ping-pong over TCP loopback with an echo
//! thread: handing a message to another thread and hearing back, which is what a
//! submission does (to the engine, and back through the completion interrupt), unless
//! both sides are polling. Both depend on how fast a sleeping thread wakes on the host,
//! which varies a lot between machines and with how idle their cores are.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use sagrada::Machine;
use sagrada::accel::{DMA0, Device};
use sagrada_hw_accel_abi::packet::{DmaDir, Packet};

use crate::bench::{gib_per_s, median};

/// Timed one-`NOP` submissions per latency run (and as many TCP round trips).
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
        "reference: TCP loopback round trip, 1 byte              median {:>6.2} us   p99 {:>7.2} us   min {:>6.2} us",
        us(thread_rt.0),
        us(thread_rt.1),
        us(thread_rt.2)
    );
    println!(
        "ratio (CS / TCP round trip, medians): {:.2}",
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

/// One-`NOP` submissions and TCP round trips, in alternating blocks: an engine spins
/// a while after its last entry, so a round trip right after a submission would share
/// the cores with it, and a submission right after a round trip would find the engine
/// asleep; blocks measure each in its steady state while still spreading the machine's
/// load over both.
fn latency(dev: &Device<'_>) -> Result<(Spread, Spread)> {
    const BLOCK: usize = 100;
    let listener = TcpListener::bind(("127.0.0.1", 0)).context("TCP loopback: bind")?;
    let addr = listener.local_addr()?;
    let echo = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut s, _) = listener.accept()?;
        s.set_nodelay(true)?;
        let mut b = [0u8; 1];
        // Until the client closes (a read of 0 bytes).
        while s.read(&mut b)? == 1 {
            s.write_all(&b)?;
        }
        Ok(())
    });
    let mut client = TcpStream::connect(addr).context("TCP loopback: connect")?;
    client.set_nodelay(true)?;
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
        for i in 0..BLOCK {
            let sent = [i as u8];
            let mut got = [0u8; 1];
            let start = Instant::now();
            client.write_all(&sent)?;
            client.read_exact(&mut got)?;
            let t = start.elapsed();
            if got != sent {
                bail!("the TCP echo returned {got:?} for {sent:?}");
            }
            if keep {
                rt.push(t);
            }
        }
    }
    drop(client);
    echo.join()
        .map_err(|_| anyhow::anyhow!("the TCP echo thread panicked"))?
        .context("TCP loopback: echo")?;
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
