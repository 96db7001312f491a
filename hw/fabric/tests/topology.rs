//! The built default machine: BDFs as firmware assigns them, identities, BARs and
//! windows, links, lookups and the rendered tree.

use sagrada_hw_fabric::{
    BarKind, DeviceId, EndpointKind, Fabric, FunctionKind, MMIO_BASE, TopologyConfig, ids,
    render_tree,
};

fn id(fabric: &Fabric, name: &str) -> DeviceId {
    fabric
        .find(name)
        .unwrap_or_else(|| panic!("no function {name}"))
}

#[test]
fn bdfs_follow_depth_first_bus_numbering() {
    let fabric = Fabric::default_machine().unwrap();
    let expected = [
        ("0000:00:01.0", "hb0.rp1"),
        ("0000:00:02.0", "hb0.rp2"),
        ("0000:00:03.0", "hb0.rp3"),
        ("0000:00:04.0", "hb0.rp4"),
        ("0000:01:00.0", "sw0.up"),
        ("0000:02:00.0", "sw0.dp0"),
        ("0000:02:01.0", "sw0.dp1"),
        ("0000:02:02.0", "sw0.dp2"),
        ("0000:02:03.0", "sw0.dp3"),
        ("0000:03:00.0", "accel0"),
        ("0000:04:00.0", "accel1"),
        ("0000:05:00.0", "nic0"),
        ("0000:06:00.0", "imp0"),
        ("0000:07:00.0", "accel2"),
        ("0000:08:00.0", "sw1.up"),
        ("0000:09:00.0", "sw1.dp0"),
        ("0000:09:01.0", "sw1.dp1"),
        ("0000:0a:00.0", "accel3"),
        ("0000:0b:00.0", "nic1"),
        ("0000:0c:00.0", "imp1"),
    ];
    let got: Vec<(String, &str)> = fabric
        .functions()
        .iter()
        .map(|f| (f.bdf.to_string(), f.name.as_str()))
        .collect();
    let want: Vec<(String, &str)> = expected.iter().map(|&(b, n)| (b.to_owned(), n)).collect();
    assert_eq!(got, want);
    for (i, f) in fabric.functions().iter().enumerate() {
        assert_eq!(f.id, DeviceId(i as u32), "ids follow BDF order");
    }
    let buses = |name: &str| {
        let w = fabric.function(id(&fabric, name)).window.clone().unwrap();
        (w.secondary_bus, w.subordinate_bus)
    };
    assert_eq!(buses("hb0.rp1"), (1, 6));
    assert_eq!(buses("sw0.up"), (2, 6));
    assert_eq!(buses("sw0.dp1"), (4, 4));
    assert_eq!(buses("hb0.rp3"), (8, 11));
    assert_eq!(buses("sw1.dp1"), (11, 11));
}

#[test]
fn functions_carry_their_identity_and_place_in_the_tree() {
    let fabric = Fabric::default_machine().unwrap();
    let accel0 = fabric.function(id(&fabric, "accel0"));
    assert_eq!(accel0.kind, FunctionKind::Endpoint(EndpointKind::Sg1));
    assert_eq!(
        (accel0.vendor_id, accel0.device_id, accel0.class_code),
        (0x5347, 0x0001, 0x120000)
    );
    assert_eq!(accel0.upstream_bridge, Some(id(&fabric, "sw0.dp0")));
    let nic1 = fabric.function(id(&fabric, "nic1"));
    assert_eq!(
        (nic1.vendor_id, nic1.device_id, nic1.class_code),
        (ids::SAGRADA_VENDOR_ID, ids::RNIC_DEVICE_ID, 0x020000)
    );
    assert_eq!(nic1.upstream_bridge, Some(id(&fabric, "sw1.dp1")));
    let up = fabric.function(id(&fabric, "sw0.up"));
    assert_eq!(up.class_code, ids::CLASS_PCI_BRIDGE);
    assert_eq!(up.upstream_bridge, Some(id(&fabric, "hb0.rp1")));
    let rp1 = fabric.function(id(&fabric, "hb0.rp1"));
    assert_eq!(rp1.upstream_bridge, None);
    assert_eq!(fabric.host_bridges()[0].root_ports.len(), 4);
    let imp0 = fabric.function(id(&fabric, "imp0"));
    assert_eq!(imp0.kind, FunctionKind::Endpoint(EndpointKind::Importer));
    assert_eq!(
        (imp0.device_id, imp0.class_code, imp0.bars.len()),
        (ids::IMPORTER_DEVICE_ID, ids::CLASS_SYSTEM_PERIPHERAL, 1)
    );
    assert_eq!(
        fabric
            .endpoints()
            .map(|f| f.name.as_str())
            .collect::<Vec<_>>(),
        [
            "accel0", "accel1", "nic0", "imp0", "accel2", "accel3", "nic1", "imp1"
        ]
    );
    assert_eq!(fabric.children(id(&fabric, "sw0.up")).len(), 4);
}

#[test]
fn sg1_and_nic_bars_have_their_fixed_layout() {
    let fabric = Fabric::default_machine().unwrap();
    let accel0 = id(&fabric, "accel0");
    let bar0 = fabric.bar(accel0, 0).unwrap();
    assert_eq!(
        (bar0.size, bar0.kind, bar0.prefetchable, bar0.is_64bit),
        (1 << 20, BarKind::Mmio, false, true)
    );
    let bar2 = fabric.bar(accel0, 2).unwrap();
    assert_eq!(
        (bar2.size, bar2.kind, bar2.prefetchable, bar2.is_64bit),
        (1 << 30, BarKind::Memory, true, true)
    );
    assert_eq!(bar2.phys.raw(), bar2.bus.raw(), "no CPU-to-bus offset");
    assert_eq!(fabric.phys_to_bus(bar2.phys), bar2.bus);
    let hbm = fabric.bar_memory(accel0, 2).unwrap();
    assert_eq!((hbm.name(), hbm.len()), ("accel0.bar2", 1 << 30));
    assert!(fabric.bar_memory(accel0, 0).is_none());
    let nic0 = id(&fabric, "nic0");
    assert_eq!(fabric.function(nic0).bars.len(), 1);
    assert_eq!(fabric.bar(nic0, 0).unwrap().kind, BarKind::Mmio);
}

/// Every BAR is aligned and inside every window above it; sibling windows are
/// disjoint; every window is inside its parent's.
#[test]
fn bars_and_windows_nest() {
    let fabric = Fabric::default_machine().unwrap();
    let window = |id: DeviceId| {
        fabric
            .function(id)
            .window
            .as_ref()
            .and_then(|w| w.memory)
            .map(|(b, s)| (b.raw(), b.raw() + s))
    };
    for f in fabric.functions() {
        for bar in &f.bars {
            assert!(bar.size.is_power_of_two());
            assert_eq!(
                bar.bus.raw() % bar.size,
                0,
                "{} BAR{} is not naturally aligned",
                f.name,
                bar.index
            );
            assert!(bar.bus.raw() >= MMIO_BASE);
            let mut above = f.upstream_bridge;
            while let Some(bridge) = above {
                let (start, end) = window(bridge).unwrap();
                assert!(
                    bar.bus.raw() >= start && bar.bus.raw() + bar.size <= end,
                    "{} BAR{} outside {}",
                    f.name,
                    bar.index,
                    fabric.function(bridge).name
                );
                above = fabric.function(bridge).upstream_bridge;
            }
        }
        if let Some((start, end)) = window(f.id) {
            assert_eq!(start % (1 << 20), 0);
            assert_eq!(end % (1 << 20), 0);
            if let Some(parent) = f.upstream_bridge {
                let (ps, pe) = window(parent).unwrap();
                assert!(
                    start >= ps && end <= pe,
                    "{} window escapes its parent",
                    f.name
                );
            }
        }
        let kids: Vec<(u64, u64)> = fabric
            .children(f.id)
            .iter()
            .filter_map(|&c| window(c))
            .collect();
        for (i, a) in kids.iter().enumerate() {
            for b in &kids[i + 1..] {
                assert!(
                    a.1 <= b.0 || b.1 <= a.0,
                    "sibling windows below {} overlap",
                    f.name
                );
            }
        }
    }
    let roots: Vec<(u64, u64)> = fabric.host_bridges()[0]
        .root_ports
        .iter()
        .filter_map(|&r| window(r))
        .collect();
    for (i, a) in roots.iter().enumerate() {
        for b in &roots[i + 1..] {
            assert!(a.1 <= b.0 || b.1 <= a.0);
        }
    }
    // Host DRAM lies below all of it.
    assert!(fabric.host_dram().len <= MMIO_BASE);
}

#[test]
fn links_are_named_by_their_ends() {
    let fabric = Fabric::default_machine().unwrap();
    let names: Vec<&str> = fabric
        .links()
        .iter()
        .map(|l| fabric.link_name(l.id))
        .collect();
    assert_eq!(
        names,
        [
            "hb0.rp1 — sw0.up",
            "sw0.dp0 — accel0",
            "sw0.dp1 — accel1",
            "sw0.dp2 — nic0",
            "sw0.dp3 — imp0",
            "hb0.rp2 — accel2",
            "hb0.rp3 — sw1.up",
            "sw1.dp0 — accel3",
            "sw1.dp1 — nic1",
            "hb0.rp4 — imp1"
        ]
    );
    let accel0 = id(&fabric, "accel0");
    let link = fabric.link_above(accel0).unwrap();
    assert_eq!(fabric.link(link).unwrap().upstream, id(&fabric, "sw0.dp0"));
    assert_eq!(fabric.link(link).unwrap().spec.to_string(), "gen4 x16");
    assert_eq!(
        fabric.links_to_root(accel0),
        &[link, fabric.link_above(id(&fabric, "sw0.up")).unwrap()]
    );
    assert_eq!(fabric.link_above(id(&fabric, "hb0.rp1")), None);
    assert_eq!(fabric.link_above(id(&fabric, "sw0.dp0")), None);
}

#[test]
fn functions_are_found_by_name_or_bdf() {
    let fabric = Fabric::default_machine().unwrap();
    assert_eq!(fabric.find("0000:03:00.0"), fabric.find("accel0"));
    assert_eq!(fabric.find("05:00.0"), fabric.find("nic0"));
    assert_eq!(fabric.find("sw0.dp2"), Some(id(&fabric, "sw0.dp2")));
    assert_eq!(fabric.find("accel9"), None);
    assert_eq!(fabric.find(""), None);
    assert!(fabric.try_function(DeviceId(999)).is_none());
}

#[test]
fn nested_switches_and_two_host_bridges_get_separate_segments_and_disjoint_windows() {
    let text = r#"
[host]
dram = "1 GiB"
[[host_bridge]]
name = "hb0"
[[host_bridge]]
name = "hb1"
[[switch]]
name = "top"
parent = "hb0"
[[switch]]
name = "mid"
parent = "top"
[[device]]
name = "a"
kind = "sg1"
parent = "mid"
hbm = "2 GiB"
[[device]]
name = "b"
kind = "rnic"
parent = "top"
[[device]]
name = "c"
kind = "sg1"
parent = "hb1"
"#;
    let fabric = Fabric::build(&TopologyConfig::from_toml_str(text).unwrap()).unwrap();
    let bdf = |n: &str| fabric.function(id(&fabric, n)).bdf.to_string();
    assert_eq!(bdf("hb0.rp1"), "0000:00:01.0");
    assert_eq!(bdf("top.up"), "0000:01:00.0");
    assert_eq!(bdf("top.dp0"), "0000:02:00.0");
    assert_eq!(bdf("mid.up"), "0000:03:00.0");
    assert_eq!(bdf("mid.dp0"), "0000:04:00.0");
    assert_eq!(bdf("a"), "0000:05:00.0");
    assert_eq!(bdf("top.dp1"), "0000:02:01.0");
    assert_eq!(bdf("b"), "0000:06:00.0");
    assert_eq!(bdf("hb1.rp1"), "0001:00:01.0");
    assert_eq!(bdf("c"), "0001:01:00.0");
    let a = fabric.bar(id(&fabric, "a"), 2).unwrap();
    let c = fabric.bar(id(&fabric, "c"), 2).unwrap();
    assert_eq!(a.bus.raw() % (2 << 30), 0);
    assert!(a.bus.raw() + a.size <= c.bus.raw() || c.bus.raw() + c.size <= a.bus.raw());
}

#[test]
fn the_tree_renders_every_function_and_bar_deterministically() {
    let fabric = Fabric::default_machine().unwrap();
    let tree = render_tree(&fabric);
    assert_eq!(tree, render_tree(&Fabric::default_machine().unwrap()));
    for needle in [
        "hb0 — host bridge, segment 0000, IOMMU translating, not on the p2pdma whitelist",
        "0000:00:01.0 hb0.rp1 — root port [5347:0a01]",
        "0000:03:00.0 accel0 — SG1 accelerator [5347:0001] class 120000, gen4 x16",
        "0000:0b:00.0 nic1 — RDMA NIC [5347:0101] class 020000",
        "0000:06:00.0 imp0 — DMA test importer [5347:0f01] class 088000, gen4 x8",
        "BAR2   0x004000000000-0x00403fffffff  1 GiB    memory  64-bit prefetchable",
        "mmio    64-bit non-prefetchable",
        "window 0x004000000000-",
    ] {
        assert!(tree.contains(needle), "{needle:?} missing from\n{tree}");
    }
    assert_eq!(tree.matches("BAR").count(), 12);
}
