//! `sagrada bench fabric`: DMA bandwidth through the fabric, beside host memcpy
//! measured in the same run.
//!
//! Each round times the reference memcpy and then every transfer, so the load of a
//! shared machine falls on both alike; medians over the rounds are reported.
//!
//! Host time is what the emulator took (the figure compared with memcpy: a DMA of the
//! model should cost one memcpy of its payload); model time is what the hardware
//! described by the topology would take.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use sagrada::Machine;
use sagrada_hw_fabric::{DmaDirection, DmaReport, Fabric, Iova, Memory};

/// Parses "64M", "1G", "4096", "512K" (binary units).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (digits, shift) = match s.char_indices().last() {
        Some((i, 'K' | 'k')) => (&s[..i], 10),
        Some((i, 'M' | 'm')) => (&s[..i], 20),
        Some((i, 'G' | 'g')) => (&s[..i], 30),
        _ => (s, 0),
    };
    let n: u64 = digits
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a size like 4096, 512K, 64M or 1G"))?;
    n.checked_mul(1 << shift)
        .filter(|&v| v > 0)
        .ok_or_else(|| format!("{s:?} is zero or too large"))
}

pub(crate) fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

pub(crate) fn gib_per_s(bytes: u64, t: Duration) -> f64 {
    bytes as f64 / t.as_secs_f64() / (1u64 << 30) as f64
}

struct Row {
    name: String,
    host: Duration,
    report: DmaReport,
}

fn route(fabric: &Fabric, r: &DmaReport) -> String {
    let links: Vec<&str> = r.links.iter().map(|&l| fabric.link_name(l)).collect();
    let mut s = links.join(", ");
    if r.through_root_complex {
        s.push_str(" + root complex");
    }
    if r.host_dram {
        s.push_str(" + host DRAM");
    }
    s
}

pub fn fabric(size: u64, iterations: usize) -> Result<()> {
    if iterations == 0 {
        bail!("--iterations must be at least 1");
    }
    let machine = Machine::default_machine()?;
    let fabric = machine.fabric().clone();
    let find = |name: &str| {
        fabric
            .find(name)
            .with_context(|| format!("no {name} in the default machine"))
    };
    let (accel0, accel1, accel2) = (find("accel0")?, find("accel1")?, find("accel2")?);
    let hbm = |dev| {
        fabric
            .bar_memory(dev, 2)
            .cloned()
            .context("device without an HBM BAR")
    };
    let (hbm0, hbm1) = (hbm(accel0)?, hbm(accel1)?);
    if size > hbm0.len() {
        bail!(
            "--size {size} is larger than an SG1's HBM ({} bytes)",
            hbm0.len()
        );
    }
    let bar = |dev| {
        fabric
            .bar(dev, 2)
            .cloned()
            .context("device without an HBM BAR")
    };
    let (bar1, bar2) = (bar(accel1)?, bar(accel2)?);

    // The reference: a host memcpy of the same size between two buffers. The source is
    // not a constant fill, which the compiler could turn into a memset.
    let src: Vec<u8> = (0..size).map(|i| (i as u8) ^ (i >> 12) as u8).collect();
    let mut dst = vec![0u8; size as usize];

    hbm0.fill(0, size, 0x3c)?;
    let host = machine
        .kernel()
        .frames()
        .alloc(size, true)
        .map_err(|e| anyhow::anyhow!("cannot allocate {size} bytes of host DRAM: {e}"))?;
    fabric.host_memory().fill(host[0].start.raw(), size, 0x77)?;
    let host_iova = fabric.dma_map_extents(accel0, &host, DmaDirection::ToDevice)?;
    let peer_iova = fabric.dma_map_resource(accel0, bar2.phys, size, DmaDirection::FromDevice)?;

    type Transfer<'a> = (&'static str, Box<dyn Fn() -> Result<DmaReport> + 'a>);
    let transfers: Vec<Transfer<'_>> = vec![
        (
            "host DRAM -> accel0 HBM (accel0 reads via IOMMU)",
            Box::new(|| Ok(fabric.dma_read_into(accel0, host_iova, &hbm0, 0, size)?)),
        ),
        (
            "accel0 HBM -> accel1 HBM (p2p, switch, bus address)",
            Box::new(|| Ok(fabric.dma_write_from(accel0, Iova(bar1.bus.raw()), &hbm0, 0, size)?)),
        ),
        (
            "accel0 HBM -> accel2 HBM (p2p, root complex, IOMMU)",
            Box::new(|| Ok(fabric.dma_write_from(accel0, peer_iova, &hbm0, 0, size)?)),
        ),
    ];

    // Rounds interleave the reference and every transfer, so that whatever else the
    // machine is doing affects them alike. Round 0 only warms up (it faults the memory
    // in) and is not timed.
    let mut memcpy_samples = Vec::with_capacity(iterations);
    let mut samples: Vec<Vec<Duration>> = vec![Vec::with_capacity(iterations); transfers.len()];
    let mut reports = vec![DmaReport::default(); transfers.len()];
    for round in 0..=iterations {
        let start = Instant::now();
        dst.copy_from_slice(std::hint::black_box(&src));
        std::hint::black_box(&mut dst);
        let t = start.elapsed();
        if round > 0 {
            memcpy_samples.push(t);
        }
        for (i, (_, run)) in transfers.iter().enumerate() {
            let start = Instant::now();
            reports[i] = run()?;
            let t = start.elapsed();
            if round > 0 {
                samples[i].push(t);
            }
        }
    }
    drop((src, dst));
    let memcpy = median(memcpy_samples);
    let rows: Vec<Row> = transfers
        .iter()
        .zip(samples)
        .zip(reports)
        .map(|(((name, _), s), report)| Row {
            name: (*name).to_owned(),
            host: median(s),
            report,
        })
        .collect();
    drop(transfers);

    let check = |mem: &Memory, byte: u8| -> Result<()> {
        let mut probe = [0u8; 64];
        mem.read(size - 64, &mut probe)?;
        if probe.iter().any(|&b| b != byte) {
            bail!("{}: the transferred data is wrong", mem.name());
        }
        Ok(())
    };
    check(&hbm1, 0x77)?;
    check(fabric.bar_memory(accel2, 2).context("accel2 HBM")?, 0x77)?;

    println!(
        "sagrada bench fabric: {} MiB per transfer, median of {iterations} interleaved rounds",
        size >> 20
    );
    println!(
        "reference: host memcpy {:.2} GiB/s ({:.2} ms)\n",
        gib_per_s(size, memcpy),
        memcpy.as_secs_f64() * 1e3
    );
    println!(
        "{:<52} {:>10} {:>10} {:>11} {:>11}  route",
        "transfer", "host GiB/s", "vs memcpy", "model GB/s", "model time"
    );
    for row in &rows {
        let model = Duration::from_nanos(row.report.device_time_ns);
        println!(
            "{:<52} {:>10.2} {:>9.0}% {:>11.2} {:>9.2}ms  {}",
            row.name,
            gib_per_s(size, row.host),
            100.0 * memcpy.as_secs_f64() / row.host.as_secs_f64(),
            size as f64 / model.as_secs_f64() / 1e9,
            model.as_secs_f64() * 1e3,
            route(&fabric, &row.report)
        );
    }
    fabric.dma_unmap(accel0, host_iova, size)?;
    fabric.dma_unmap(accel0, peer_iova, size)?;
    machine.kernel().frames().free(&host);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_suffixes() {
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("0").is_err());
        assert!(parse_size("12X").unwrap_err().contains("12X"));
        assert!(parse_size("99999999999G").is_err());
    }

    #[test]
    fn a_small_benchmark_runs_and_checks_its_data() {
        fabric(1 << 20, 1).unwrap();
    }
}
