//! `sagrada info`: a table of the SG1s, like hl-smi, read through the driver's uAPI.

use std::fmt::Write as _;

use anyhow::{Context, Result};
use sagrada::accel::Device;
use sagrada::{Machine, Process};
use sagrada_hw_fabric::TopologyConfig;
use sagrada_kernel_accel::uapi::{
    Counters, DramUsage, FirmwareInfo, INFO_COUNTERS, INFO_DRAM_USAGE, INFO_FIRMWARE,
};

const MIB: u64 = 1 << 20;

pub fn run(config: &TopologyConfig) -> Result<()> {
    let machine = Machine::new(config)?;
    let p = machine.process("sagrada-info");
    print!("{}", render(&machine, &p)?);
    Ok(())
}

/// The table for every bound SG1, then the devices the driver refused.
pub fn render(machine: &Machine, p: &Process) -> Result<String> {
    let mut out = String::new();
    let rule = "+----+--------------+-------------------+--------------------+----------+----------+--------+----------+\n";
    out.push_str(rule);
    out.push_str("| id | bus          | HBM used / total  | engines            | firmware | link     | temp   | busy     |\n");
    out.push_str(rule);
    for (i, _) in machine.accels().iter().enumerate() {
        let dev =
            Device::open(p, i as u32).with_context(|| format!("opening /dev/accel/accel{i}"))?;
        let info = dev.info();
        let usage: DramUsage = dev.query(INFO_DRAM_USAGE)?;
        let fw: FirmwareInfo = dev.query(INFO_FIRMWARE)?;
        let counters: Counters = dev.query(INFO_COUNTERS)?;
        let bus = String::from_utf8_lossy(&info.bus_id)
            .trim_end_matches('\0')
            .to_owned();
        let _ = writeln!(
            out,
            "| {:<2} | {:<12} | {:>5} / {:>5} MiB | {:<18} | {:<8} | {:<8} | {:>4} C | {:>5} us |",
            i,
            bus,
            (usage.total - usage.free) / MIB,
            usage.total / MIB,
            format!("{} DMA, {} cores", info.num_dma_engines, info.num_cores),
            format!("{}.{}.{}", info.fw_major, info.fw_minor, info.fw_patch),
            format!("gen{} x{}", info.link_gen, info.link_width),
            fw.temperature_mc / 1000,
            counters.busy_ns.iter().sum::<u64>() / 1000,
        );
        dev.close()?;
    }
    out.push_str(rule);
    for e in machine.probe_errors() {
        let _ = writeln!(out, "not bound: {e}");
    }
    Ok(out)
}
