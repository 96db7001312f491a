//! Modelled device time: the formula from link generation and width, and the
//! bottlenecks of host DRAM and root-complex forwarding. No wall-clock is involved.

use std::sync::Arc;

use sagrada_hw_fabric::{DmaDirection, Fabric, Iova, Memory, TopologyConfig};

const LEN: u64 = 64 << 20;

/// gen4 x16 per direction: 16 GT/s × 16 lanes × 128/130 ÷ 8, times 256/(256+24).
fn gen4_x16() -> f64 {
    16e9 * 16.0 * (128.0 / 130.0) / 8.0 * (256.0 / 280.0)
}

fn ns(bytes: u64, bandwidth: f64) -> f64 {
    bytes as f64 / bandwidth * 1e9
}

#[track_caller]
fn assert_near(got: u64, want: f64, tolerance: f64) {
    let error = (got as f64 - want).abs() / want;
    assert!(
        error < tolerance,
        "device time {got} ns, expected {want:.0} ns ({:.2}% off)",
        error * 100.0
    );
}

fn source() -> Arc<Memory> {
    Arc::new(Memory::new("source", LEN).unwrap())
}

#[test]
fn a_64_mib_switch_transfer_takes_bytes_over_gen4_x16_plus_latency() {
    let fabric = Fabric::default_machine().unwrap();
    let nic0 = fabric.find("nic0").unwrap();
    let bar2 = fabric.bar(fabric.find("accel0").unwrap(), 2).unwrap().bus;
    let report = fabric
        .dma_write_from(nic0, Iova(bar2.raw()), &source(), 0, LEN)
        .unwrap();
    // Two links of 20 ns and one switch crossing of 100 ns.
    let want = 140.0 + ns(LEN, gen4_x16());
    assert_near(report.device_time_ns, want, 0.001);
    assert_near(report.device_time_ns, ns(LEN, 28.8e9), 0.02);

    // A read pays the latency twice (request and completion), the bytes once.
    let hbm = fabric
        .bar_memory(fabric.find("accel1").unwrap(), 2)
        .unwrap()
        .clone();
    let report = fabric
        .dma_read_into(nic0, Iova(bar2.raw()), &hbm, 0, LEN)
        .unwrap();
    assert_near(report.device_time_ns, 280.0 + ns(LEN, gen4_x16()), 0.001);
}

#[test]
fn a_path_through_dram_is_bounded_by_the_slower_of_link_and_dram() {
    let fabric = Fabric::default_machine().unwrap();
    let nic1 = fabric.find("nic1").unwrap();
    let iova = fabric
        .dma_map_resource(
            nic1,
            sagrada_hw_fabric::PhysAddr(0),
            LEN,
            DmaDirection::ToDevice,
        )
        .unwrap();
    let report = fabric.dma_read_into(nic1, iova, &source(), 0, LEN).unwrap();
    assert!(report.host_dram);
    // DRAM at 51.2 GB/s is faster than the link: the link bounds it.
    let latency = 2.0 * (20.0 + 200.0 + 90.0);
    assert_near(report.device_time_ns, latency + ns(LEN, gen4_x16()), 0.001);

    let text = sagrada_hw_fabric::DEFAULT_MACHINE_TOML.replace(
        "dram_bandwidth = \"51.2 GB/s\"",
        "dram_bandwidth = \"10 GB/s\"",
    );
    let fabric = Fabric::build(&TopologyConfig::from_toml_str(&text).unwrap()).unwrap();
    let nic1 = fabric.find("nic1").unwrap();
    let iova = fabric
        .dma_map_resource(
            nic1,
            sagrada_hw_fabric::PhysAddr(0),
            LEN,
            DmaDirection::ToDevice,
        )
        .unwrap();
    let report = fabric.dma_read_into(nic1, iova, &source(), 0, LEN).unwrap();
    assert_near(report.device_time_ns, latency + ns(LEN, 10e9), 0.001);
}

#[test]
fn root_complex_peer_to_peer_is_bounded_by_its_forwarding_bandwidth() {
    let fabric = Fabric::default_machine().unwrap();
    let accel2 = fabric.find("accel2").unwrap();
    let bar2 = fabric.bar(fabric.find("accel0").unwrap(), 2).unwrap().phys;
    let iova = fabric
        .dma_map_resource(accel2, bar2, LEN, DmaDirection::FromDevice)
        .unwrap();
    let report = fabric
        .dma_write_from(accel2, iova, &source(), 0, LEN)
        .unwrap();
    assert!(report.through_root_complex && !report.host_dram);
    // accel2 link, root complex, rp1 link, switch, accel0 link.
    let latency = 20.0 + 200.0 + 20.0 + 100.0 + 20.0;
    assert_near(report.device_time_ns, latency + ns(LEN, 12e9), 0.001);
    assert_eq!(fabric.counters().root_complex_p2p_bytes, LEN);

    // The same bytes through the switch are more than twice as fast.
    let nic0 = fabric.find("nic0").unwrap();
    let direct = fabric
        .dma_write_from(nic0, Iova(bar2.raw()), &source(), 0, LEN)
        .unwrap();
    assert!(direct.device_time_ns * 2 < report.device_time_ns);
}

#[test]
fn the_slowest_link_on_the_path_sets_the_pace() {
    let text = sagrada_hw_fabric::DEFAULT_MACHINE_TOML.replacen(
        "name = \"nic0\"\nkind = \"rnic\"\nparent = \"sw0\"\nlink = \"gen4 x16\"",
        "name = \"nic0\"\nkind = \"rnic\"\nparent = \"sw0\"\nlink = \"gen3 x4\"",
        1,
    );
    assert_ne!(text, sagrada_hw_fabric::DEFAULT_MACHINE_TOML);
    let fabric = Fabric::build(&TopologyConfig::from_toml_str(&text).unwrap()).unwrap();
    let nic0 = fabric.find("nic0").unwrap();
    let bar2 = fabric.bar(fabric.find("accel0").unwrap(), 2).unwrap().bus;
    let report = fabric
        .dma_write_from(nic0, Iova(bar2.raw()), &source(), 0, 16 << 20)
        .unwrap();
    let gen3_x4 = 8e9 * 4.0 * (128.0 / 130.0) / 8.0 * (256.0 / 280.0);
    assert_near(report.device_time_ns, 140.0 + ns(16 << 20, gen3_x4), 0.001);
}
