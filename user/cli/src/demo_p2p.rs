//! The demo's peer-to-peer section: the system of the seed thread, with the SG1 as the
//! exporter and the DMA test importer standing in for the RDMA NIC.

use anyhow::{Context, Result, bail};
use sagrada::accel::Device;
use sagrada::dmabuf::alloc_system;
use sagrada::importer::{Attach, Importer};
use sagrada::{Machine, Process};
use sagrada_hw_accel_abi::packet::DmaDir;
use sagrada_hw_fabric::{Counters, Fabric, TopologyConfig};
use sagrada_kernel_accel::uapi::{Counters as DevCounters, INFO_COUNTERS};
use sagrada_kernel_core::Prot;

/// Bytes moved in the demo.
const SIZE: u64 = 4 << 20;

/// What one path cost.
struct Row {
    path: &'static str,
    dram: u64,
    root_port: u64,
    rc_p2p: u64,
    device_ns: u64,
}

fn pattern() -> Vec<u8> {
    (0..SIZE).map(|i| (i as u8) ^ (i >> 9) as u8).collect()
}

fn busy_ns(dev: &Device<'_>) -> Result<u64> {
    let c: DevCounters = dev.query(INFO_COUNTERS)?;
    Ok(c.busy_ns.iter().sum())
}

fn root_port_bytes(fabric: &Fabric, delta: &Counters) -> u64 {
    // Links whose upstream end is a root port.
    fabric
        .links()
        .iter()
        .filter(|l| fabric.function(l.upstream).upstream_bridge.is_none())
        .map(|l| {
            let c = delta.link(l.id);
            c.up_bytes + c.down_bytes
        })
        .sum()
}

/// accel0 fills device memory and exports it; imp0 reads it into host memory.
fn p2p(machine: &Machine, p: &Process, path: &'static str, narrate: bool) -> Result<Row> {
    let fabric = machine.fabric();
    let dev = Device::open(p, 0)?;
    let data = pattern();
    let src = dev.host_alloc(SIZE)?;
    p.write_mem(src.ptr, &data)?;
    let mem = dev.alloc(SIZE, false)?;
    dev.copy(mem.va, src.va, SIZE, DmaDir::HostToDevice)?;
    let fd = dev.export_dmabuf(&mem, 0, SIZE)?;
    let imp = Importer::open(p, 0)?;
    let mr = imp.reg_dmabuf_mr(fd, 0, SIZE, 0, Attach::PeerToPeer)?;
    if narrate {
        println!(
            "[user]   accel0: ALLOC + MAP 4 MiB of HBM at VA {:#x}, filled by a host-to-device DMA",
            mem.va
        );
        println!(
            "[user]   accel0: MEMORY EXPORT_DMABUF_FD {{addr {:#x}, size 4 MiB, offset 0}} -> dma-buf fd {fd}",
            mem.va
        );
        println!(
            "[user]   hli0 (imp0, on the switch with accel0): REG_DMABUF_MR(fd {fd}) -> region {mr}"
        );
        let verdict = fabric.p2pdma_distance(
            fabric.find("accel0").context("accel0")?,
            fabric.find("imp0").context("imp0")?,
        );
        println!(
            "[kernel] the SG1 exporter's attach: pci_p2pdma_distance(accel0, imp0) = {:?}: {}",
            verdict.map_type, verdict.reason
        );
        println!(
            "[kernel] its map: the 4 MiB as BAR addresses, split at imp0's 64 KiB maximum segment, mapped for imp0"
        );
    }
    let dst = dev.host_alloc(SIZE)?;
    let before = fabric.counters();
    let device_ns = imp.read_from_mr(mr, dst.ptr, SIZE, 0)?;
    let delta = fabric.counters().since(&before);
    let mut back = vec![0u8; SIZE as usize];
    p.read_mem(dst.ptr, &mut back)?;
    if back != data {
        bail!("{path}: the importer read back something else than accel0 holds");
    }
    if narrate {
        println!(
            "[user]   hli0: READ_FROM_MR 4 MiB -> host buffer; compared with what accel0 holds: identical"
        );
    }
    imp.dereg_mr(mr)?;
    p.close(fd)?;
    Ok(Row {
        path,
        dram: delta.host_dram_read_bytes + delta.host_dram_write_bytes,
        root_port: root_port_bytes(fabric, &delta),
        rc_p2p: delta.root_complex_p2p_bytes,
        device_ns,
    })
}

/// The path p2p replaces: accel0 copies to a host bounce buffer (a dma-heap buffer both
/// devices can reach), and the importer reads the bounce buffer.
fn bounce(machine: &Machine, p: &Process) -> Result<Row> {
    let fabric = machine.fabric();
    let dev = Device::open(p, 0)?;
    let data = pattern();
    let src = dev.host_alloc(SIZE)?;
    p.write_mem(src.ptr, &data)?;
    let mem = dev.alloc(SIZE, false)?;
    dev.copy(mem.va, src.va, SIZE, DmaDir::HostToDevice)?;
    let heap = alloc_system(p, SIZE)?;
    let bounce = heap.mmap(Prot::READ_WRITE)?;
    let bounce_va = dev.map_host(bounce, SIZE)?;
    let imp = Importer::open(p, 0)?;
    let mr = imp.reg_dmabuf_mr(heap.fd(), 0, SIZE, 0, Attach::PeerToPeer)?;
    let dst = dev.host_alloc(SIZE)?;
    let before = fabric.counters();
    let busy = busy_ns(&dev)?;
    dev.copy(bounce_va, mem.va, SIZE, DmaDir::DeviceToHost)?;
    let sg1_ns = busy_ns(&dev)? - busy;
    let imp_ns = imp.read_from_mr(mr, dst.ptr, SIZE, 0)?;
    let delta = fabric.counters().since(&before);
    let mut back = vec![0u8; SIZE as usize];
    p.read_mem(dst.ptr, &mut back)?;
    if back != data {
        bail!("bounce: the importer read back something else than accel0 holds");
    }
    imp.dereg_mr(mr)?;
    Ok(Row {
        path: "bounce through a host DRAM buffer",
        dram: delta.host_dram_read_bytes + delta.host_dram_write_bytes,
        root_port: root_port_bytes(fabric, &delta),
        rc_p2p: delta.root_complex_p2p_bytes,
        device_ns: sg1_ns + imp_ns,
    })
}

pub fn run(config: &TopologyConfig) -> Result<()> {
    let habana = Machine::new(config)?;
    let p = habana.process("p2p-demo");
    let mut rows = vec![p2p(
        &habana,
        &p,
        "p2p, dma_map_resource (habanalabs)",
        true,
    )?];
    let bus_addr = Machine::builder(config).p2p_bus_addr(true).build()?;
    let q = bus_addr.process("p2p-demo");
    rows.push(p2p(&bus_addr, &q, "p2p, bus address (p2pdma)", false)?);
    rows.push(bounce(&habana, &p)?);

    println!("\nThe same 4 MiB from accel0's HBM to a host buffer through imp0, three ways:");
    println!(
        "  {:<38} {:>16} {:>16} {:>14} {:>12}",
        "path", "host DRAM bytes", "root-port bytes", "RC p2p bytes", "device time"
    );
    for r in &rows {
        println!(
            "  {:<38} {:>16} {:>16} {:>14} {:>9.1} us",
            r.path,
            r.dram,
            r.root_port,
            r.rc_p2p,
            r.device_ns as f64 / 1e3
        );
    }
    println!(
        "  (the p2p rows' host DRAM bytes are the destination buffer itself; the bounce row writes,"
    );
    println!(
        "   reads and writes host DRAM. dma_map_resource sends switch-local traffic through the"
    );
    println!("   root complex's IOMMU; the bus address keeps it in the switch.)");

    let dev = Device::open(&p, 0)?;
    let mem = dev.alloc(SIZE, false)?;
    let fd = dev.export_dmabuf(&mem, 0, SIZE)?;
    let far = Importer::open(&p, 1)?;
    let fabric = habana.fabric();
    let verdict = fabric.p2pdma_distance(
        fabric.find("accel0").context("accel0")?,
        fabric.find("imp1").context("imp1")?,
    );
    match far.reg_dmabuf_mr(fd, 0, SIZE, 0, Attach::PeerToPeer) {
        Err(e) => println!(
            "\n[user]   hli1 (imp1, behind the root complex): REG_DMABUF_MR -> {e}\n         pci_p2pdma: {} (try --whitelist hb0)",
            verdict.reason
        ),
        Ok(_) => println!(
            "\n[user]   hli1 (imp1, behind the root complex): REG_DMABUF_MR accepted: {}",
            verdict.reason
        ),
    }
    Ok(())
}
