//! `sagrada demo`: a narrated walk through the machine.
//!
//! Each step says who acts: `[user]` is an application using only the uAPI, `[kernel]`
//! is what a driver does inside the kernel (the importing NIC driver arrives with the
//! RDMA issue; here the demo plays its part through the same kernel API), `[hw]` is a
//! device acting on the bus.

use anyhow::{Context, Result, bail};
use sagrada::Machine;
use sagrada::dmabuf::{Access, DmaBufFd, alloc_system};
use sagrada::sync::Timeline;
use sagrada_hw_fabric::{
    Counters, DeviceId, DmaDirection, Fabric, Iova, TopologyConfig, render_p2p_matrix, render_tree,
};
use sagrada_kernel_core::{PollMask, Prot};
use sagrada_kernel_dmabuf::DmaBuf;
use sagrada_kernel_dmabuf::uapi::BUFINFO_PATH;

fn heading(n: u32, title: &str) {
    println!("\n== {n}. {title} ==\n");
}

fn show_mask(m: PollMask) -> String {
    let mut parts = Vec::new();
    if m.contains(PollMask::IN) {
        parts.push("POLLIN (a read may start)");
    }
    if m.contains(PollMask::OUT) {
        parts.push("POLLOUT (a write may start)");
    }
    if parts.is_empty() {
        "nothing ready".to_owned()
    } else {
        parts.join(", ")
    }
}

/// Prints what moved where between two counter snapshots.
fn show_traffic(fabric: &Fabric, before: &Counters) {
    let delta = fabric.counters().since(before);
    for l in delta.links.iter().filter(|l| l.up_bytes + l.down_bytes > 0) {
        println!(
            "           link {:<28} {:>9} B up, {:>9} B down",
            fabric.link_name(l.link),
            l.up_bytes,
            l.down_bytes
        );
    }
    println!(
        "           host DRAM: {} B read, {} B written by devices; root complex p2p: {} B",
        delta.host_dram_read_bytes, delta.host_dram_write_bytes, delta.root_complex_p2p_bytes
    );
}

fn device(fabric: &Fabric, name: &str) -> Result<DeviceId> {
    fabric
        .find(name)
        .with_context(|| format!("the machine has no device named {name}"))
}

pub fn run(config: &TopologyConfig) -> Result<()> {
    let machine = Machine::new(config)?;
    let fabric = machine.fabric().clone();

    heading(1, "The machine");
    print!("{}", render_tree(&fabric));
    println!();
    print!("{}", render_p2p_matrix(&fabric));

    heading(2, "A dma-buf shared by two processes");
    let producer = machine.process("producer");
    let consumer = machine.process("consumer");
    let buf = alloc_system(&producer, 64 * 1024)?;
    buf.set_name("demo-frames")?;
    println!(
        "[user]   producer: 64 KiB from /dev/dma_heap/system -> dma-buf fd {}",
        buf.fd()
    );
    let map = buf.mmap(Prot::READ_WRITE)?;
    let message = b"hello from the producer, through host DRAM";
    buf.begin_cpu_access(Access::Write)?;
    producer.write_mem(map, message)?;
    buf.end_cpu_access(Access::Write)?;
    println!(
        "[user]   producer: mmap, SYNC_START|WRITE, wrote {} bytes, SYNC_END",
        message.len()
    );
    let their_fd = producer.send_fd(buf.fd(), &consumer)?;
    println!(
        "[kernel] the fd is passed to the consumer, as SCM_RIGHTS over a Unix socket does: consumer fd {their_fd}"
    );
    let theirs = DmaBufFd::from_fd(&consumer, their_fd);
    let their_map = theirs.mmap(Prot::READ)?;
    let mut seen = vec![0u8; message.len()];
    consumer.read_mem(their_map, &mut seen)?;
    println!(
        "[user]   consumer: mmap and read {:?}",
        String::from_utf8_lossy(&seen)
    );

    let timeline = Timeline::create(&consumer)?;
    let job = timeline.fence(1)?;
    theirs.import_sync_file(&job, Access::Write)?;
    println!(
        "[user]   consumer: a job that will write the buffer (sw_sync point 1) is added as its WRITE fence"
    );
    println!(
        "           poll on the dma-buf: {}",
        show_mask(theirs.ready()?)
    );
    let until_readable = theirs.export_sync_file(Access::Read)?;
    let (name, status, fences) = until_readable.info()?;
    println!(
        "[user]   consumer: EXPORT_SYNC_FILE(READ) -> sync_file {name:?}: status {status}, {} fence(s) on {:?}",
        fences.len(),
        fences
            .iter()
            .map(|f| f.timeline.as_str())
            .collect::<Vec<_>>()
    );
    timeline.inc(1)?;
    println!("[user]   consumer: the timeline reaches 1 (the job completes)");
    println!(
        "           poll on the dma-buf: {}",
        show_mask(theirs.ready()?)
    );
    println!(
        "           the exported sync_file signalled: {}",
        until_readable.wait(0)?
    );

    heading(3, "A device imports the buffer");
    let nic = device(&fabric, "nic0")?;
    let nic_fn = fabric.function(nic);
    let dmabuf = machine
        .kernel()
        .with_task(consumer.pid(), |t| DmaBuf::get(t, their_fd))?;
    let attach = dmabuf.attach(nic)?;
    let sgt = dmabuf.map_attachment_unlocked(&attach, DmaDirection::ToDevice)?;
    println!(
        "[kernel] NIC driver: dma_buf_get(fd {their_fd}), dma_buf_attach({} {}), map_attachment:",
        nic_fn.name, nic_fn.bdf
    );
    for e in sgt.entries() {
        println!(
            "           sg entry: DMA address {} (an IOVA in {}'s IOMMU domain), {} bytes",
            e.dma_addr, nic_fn.name, e.len
        );
    }
    let before = fabric.counters();
    let mut dma = vec![0u8; message.len()];
    let report = fabric.dma_read(nic, sgt.entries()[0].dma_addr, &mut dma)?;
    println!(
        "[hw]     {} DMA-reads {} bytes: {:?}",
        nic_fn.name,
        report.bytes,
        String::from_utf8_lossy(&dma)
    );
    show_traffic(&fabric, &before);
    let reader = consumer.open(BUFINFO_PATH, sagrada_kernel_core::OpenFlags::RDONLY)?;
    let bufinfo = String::from_utf8_lossy(&consumer.read_to_end(reader)?).into_owned();
    consumer.close(reader)?;
    println!("[kernel] {BUFINFO_PATH}:");
    for line in bufinfo.lines() {
        println!("           {line}");
    }
    dmabuf.unmap_attachment_unlocked(&attach, sgt, DmaDirection::ToDevice)?;
    dmabuf.detach(attach)?;

    heading(4, "Peer-to-peer on the fabric");
    let (accel0, accel1, accel2) = (
        device(&fabric, "accel0")?,
        device(&fabric, "accel1")?,
        device(&fabric, "accel2")?,
    );
    let hbm0 = fabric
        .bar_memory(accel0, 2)
        .context("accel0 has no HBM BAR")?;
    let len = 1 << 20;
    hbm0.fill(0, len, 0x5a)?;
    let hbm1_bar = fabric
        .bar(accel1, 2)
        .context("accel1 has no HBM BAR")?
        .clone();
    let p2p = fabric.p2pdma_distance(accel1, accel0);
    println!(
        "[kernel] pci_p2pdma_distance(accel1, accel0): {:?}, {}",
        p2p.map_type, p2p.reason
    );
    let before = fabric.counters();
    let r = fabric.dma_write_from(accel0, Iova(hbm1_bar.bus.raw()), hbm0, 0, len)?;
    println!(
        "[hw]     accel0 writes 1 MiB of its HBM to accel1's BAR at bus address {}: {:.1} us of device time",
        hbm1_bar.bus,
        r.device_time_ns as f64 / 1e3
    );
    show_traffic(&fabric, &before);

    let iova = fabric.dma_map_resource(accel0, hbm1_bar.phys, len, DmaDirection::FromDevice)?;
    let before = fabric.counters();
    let r = fabric.dma_write_from(accel0, iova, hbm0, 0, len)?;
    println!(
        "[hw]     the same through an IOMMU mapping (dma_map_resource -> IOVA {iova}): {:.1} us; the request leaves the switch:",
        r.device_time_ns as f64 / 1e3
    );
    show_traffic(&fabric, &before);
    fabric.dma_unmap(accel0, iova, len)?;

    let nic1 = device(&fabric, "nic1")?;
    let verdict = fabric.p2pdma_distance(accel2, nic1);
    println!(
        "[kernel] pci_p2pdma_distance(accel2, nic1): {:?}, {}",
        verdict.map_type, verdict.reason
    );
    if fabric.dma_write(nic, iova, b"stale").is_ok() {
        bail!("a DMA to an unmapped IOVA was served");
    }
    for fault in fabric.faults(nic) {
        println!(
            "[hw]     {} {} of {} bytes at IOVA {} refused by the IOMMU: {}; recorded in {}'s fault log",
            nic_fn.name, fault.access, fault.len, fault.addr, fault.reason, nic_fn.name
        );
    }

    theirs.close()?;
    buf.close()?;

    heading(
        5,
        "The SG1 exports device memory; an importer reads it peer to peer",
    );
    crate::demo_p2p::run(config)?;

    heading(6, "A kernel in SG1 assembly on the compute cores");
    crate::demo_compute::run(&machine)?;

    heading(
        7,
        "Compute on accel0, RDMA WRITE into accel3's HBM: dma-buf regions on both NICs",
    );
    crate::demo_rdma::run(config)?;

    heading(8, "The SG1s");
    print!(
        "{}",
        crate::info::render(&machine, &machine.process("sagrada-info"))?
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_demo_runs_on_the_default_machine() {
        super::run(&sagrada_hw_fabric::TopologyConfig::default_machine()).unwrap();
    }

    #[test]
    fn the_demo_reports_a_missing_device_by_name() {
        let fabric = sagrada_hw_fabric::Fabric::default_machine().unwrap();
        let err = super::device(&fabric, "accel9").unwrap_err();
        assert_eq!(err.to_string(), "the machine has no device named accel9");
    }
}
