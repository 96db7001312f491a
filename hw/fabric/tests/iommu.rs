//! The IOVA allocator and translation under random map/unmap sequences: translations
//! always return what was mapped, live mappings never overlap, and no IOVA ever falls
//! inside a bridge window (where a switch would take it for a peer's BAR).

use proptest::prelude::*;
use sagrada_hw_fabric::{
    DeviceId, DmaDirection, Fabric, IOVA_END, Iova, PAGE_SIZE, PhysAddr, PhysRange,
};

#[derive(Clone, Debug)]
enum Op {
    /// Map `len` bytes of DRAM at `page * 4096 + offset`.
    Map { page: u64, offset: u64, len: u64 },
    /// Map the start of a BAR.
    MapBar { which: usize, len: u64 },
    /// Map a few scattered pages as extents.
    MapExtents {
        pages: Vec<u64>,
        head: u64,
        tail: u64,
    },
    /// Unmap the n-th live mapping (modulo the count).
    Unmap { pick: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..4096u64, 0..PAGE_SIZE, 1..(256u64 << 10)).prop_map(|(page, offset, len)| Op::Map { page, offset, len }),
        1 => (0..3usize, 1..(4u64 << 20)).prop_map(|(which, len)| Op::MapBar { which, len }),
        1 => (proptest::collection::vec(0..4096u64, 1..6), 0..PAGE_SIZE, 1..=PAGE_SIZE)
            .prop_map(|(pages, head, tail)| Op::MapExtents { pages, head, tail }),
        3 => any::<usize>().prop_map(|pick| Op::Unmap { pick }),
    ]
}

/// A live mapping: its IOVA and length, and the physical bytes it covers, in order.
struct Live {
    iova: Iova,
    len: u64,
    pieces: Vec<(u64, u64)>,
}

fn windows(fabric: &Fabric) -> Vec<(u64, u64)> {
    fabric
        .functions()
        .iter()
        .filter_map(|f| f.window.as_ref()?.memory)
        .map(|(base, size)| (base.raw(), base.raw() + size))
        .collect()
}

fn check(fabric: &Fabric, dev: DeviceId, live: &[Live]) {
    let windows = windows(fabric);
    let mut spans: Vec<(u64, u64)> = Vec::new();
    for m in live {
        let start = m.iova.raw() / PAGE_SIZE * PAGE_SIZE;
        let end = (m.iova.raw() + m.len).div_ceil(PAGE_SIZE) * PAGE_SIZE;
        assert!(
            start >= PAGE_SIZE && end <= IOVA_END,
            "{:?} outside the IOVA space",
            m.iova
        );
        for &(ws, we) in &windows {
            assert!(
                end <= ws || start >= we,
                "IOVA {:?}+{:#x} inside window {ws:#x}..{we:#x}",
                m.iova,
                m.len
            );
        }
        spans.push((start, end));
        // Every piece translates at its first and last byte.
        let mut at = m.iova.raw();
        for &(phys, len) in &m.pieces {
            for (delta, what) in [(0, "first"), (len - 1, "last")] {
                let (bus, dir) = fabric
                    .iommu_lookup(dev, Iova(at + delta))
                    .unwrap_or_else(|| panic!("{what} byte unmapped"));
                assert_eq!(bus.raw(), phys + delta, "{what} byte of {:?}", m.iova);
                assert_eq!(dir, DmaDirection::Bidirectional);
            }
            at += len;
        }
    }
    spans.sort_unstable();
    for pair in spans.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "mappings overlap: {pair:?}");
    }
    let mut listed = fabric.iommu_mappings(dev);
    let mut expect: Vec<(Iova, u64)> = live.iter().map(|m| (m.iova, m.len)).collect();
    listed.sort_unstable();
    expect.sort_unstable();
    assert_eq!(listed, expect);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_map_unmap_sequences_keep_translations_exact(ops in proptest::collection::vec(op(), 1..60)) {
        let fabric = Fabric::default_machine().unwrap();
        let dev = fabric.find("nic0").unwrap();
        let bars: Vec<_> = ["accel0", "accel1", "accel2"]
            .iter()
            .map(|n| fabric.bar(fabric.find(n).unwrap(), 2).unwrap().phys)
            .collect();
        let mut live: Vec<Live> = Vec::new();
        for op in ops {
            match op {
                Op::Map { page, offset, len } => {
                    let phys = page * PAGE_SIZE + offset;
                    let iova = fabric.dma_map_resource(dev, PhysAddr(phys), len, DmaDirection::Bidirectional).unwrap();
                    prop_assert_eq!(iova.raw() % PAGE_SIZE, offset);
                    live.push(Live { iova, len, pieces: vec![(phys, len)] });
                }
                Op::MapBar { which, len } => {
                    let phys = bars[which].raw();
                    let iova = fabric.dma_map_resource(dev, PhysAddr(phys), len, DmaDirection::Bidirectional).unwrap();
                    live.push(Live { iova, len, pieces: vec![(phys, len)] });
                }
                Op::MapExtents { pages, head, tail } => {
                    let last = pages.len() - 1;
                    let extents: Vec<PhysRange> = pages
                        .iter()
                        .enumerate()
                        .map(|(i, &p)| {
                            let start = p * PAGE_SIZE + if i == 0 { head } else { 0 };
                            let end = if i == last { p * PAGE_SIZE + tail.max(if i == 0 { head + 1 } else { 1 }) } else { (p + 1) * PAGE_SIZE };
                            PhysRange { start: PhysAddr(start), len: end - start }
                        })
                        .collect();
                    let iova = fabric.dma_map_extents(dev, &extents, DmaDirection::Bidirectional).unwrap();
                    let len = extents.iter().map(|e| e.len).sum();
                    live.push(Live { iova, len, pieces: extents.iter().map(|e| (e.start.raw(), e.len)).collect() });
                }
                Op::Unmap { pick } => {
                    if !live.is_empty() {
                        let m = live.swap_remove(pick % live.len());
                        fabric.dma_unmap(dev, m.iova, m.len).unwrap();
                        prop_assert!(fabric.dma_unmap(dev, m.iova, m.len).is_err());
                    }
                }
            }
            check(&fabric, dev, &live);
        }
        // The bytes really go where the translation says.
        if let Some(m) = live.iter().find(|m| m.pieces[0].0 < fabric.host_dram().len) {
            let (phys, len) = m.pieces[0];
            let n = len.min(64) as usize;
            let data: Vec<u8> = (0..n as u8).collect();
            fabric.dma_write(dev, m.iova, &data).unwrap();
            let mut back = vec![0; n];
            fabric.host_memory().read(phys, &mut back).unwrap();
            prop_assert_eq!(back, data);
        }
        for m in live {
            fabric.dma_unmap(dev, m.iova, m.len).unwrap();
        }
        prop_assert!(fabric.iommu_mappings(dev).is_empty());
    }
}

#[test]
fn freed_iova_space_is_reused() {
    let fabric = Fabric::default_machine().unwrap();
    let dev = fabric.find("accel0").unwrap();
    let first = fabric
        .dma_map_resource(dev, PhysAddr(0), 1 << 20, DmaDirection::ToDevice)
        .unwrap();
    fabric.dma_unmap(dev, first, 1 << 20).unwrap();
    let again = fabric
        .dma_map_resource(dev, PhysAddr(0x10_0000), 1 << 20, DmaDirection::ToDevice)
        .unwrap();
    assert_eq!(first, again);
    assert_eq!(first.raw() + (1 << 20), IOVA_END, "allocation is top-down");
}

/// With 1 TiB BARs the IOVA allocator works its way down from 2^48 until it meets the
/// bridge windows, and must step over them.
#[test]
fn the_allocator_steps_over_bridge_windows_and_reports_exhaustion() {
    let text = r#"
[host]
dram = "1 GiB"
[[host_bridge]]
name = "hb0"
[[device]]
name = "big"
kind = "endpoint"
parent = "hb0"
bars = [{ index = 0, size = "1 TiB" }]
"#;
    let fabric =
        Fabric::build(&sagrada_hw_fabric::TopologyConfig::from_toml_str(text).unwrap()).unwrap();
    let dev = fabric.find("big").unwrap();
    let bar = fabric.bar(dev, 0).unwrap().phys;
    let windows = windows(&fabric);
    let outside = |iova: Iova, len: u64| {
        windows
            .iter()
            .all(|&(s, e)| iova.raw() + len <= s || iova.raw() >= e)
    };
    let mut maps = Vec::new();
    loop {
        match fabric.dma_map_resource(dev, bar, 1 << 40, DmaDirection::Bidirectional) {
            Ok(iova) => {
                assert!(outside(iova, 1 << 40), "{iova:?} in a window");
                maps.push((iova, 1u64 << 40));
            }
            Err(e) => {
                assert!(
                    matches!(e, sagrada_hw_fabric::IommuError::NoSpace { .. }),
                    "{e}"
                );
                break;
            }
        }
        assert!(maps.len() < 300, "the IOVA space is only 256 TiB");
    }
    assert_eq!(maps.len(), 254);
    // Smaller mappings still fit in the gap above the windows and the space below.
    for _ in 0..1000 {
        let iova = fabric
            .dma_map_resource(dev, bar, 1 << 30, DmaDirection::ToDevice)
            .unwrap();
        assert!(outside(iova, 1 << 30), "{iova:?} in a window");
        maps.push((iova, 1 << 30));
    }
    assert!(
        maps.iter().any(|(iova, _)| iova.raw() < windows[0].0),
        "allocation reached below the windows"
    );
    for (iova, len) in maps {
        fabric.dma_unmap(dev, iova, len).unwrap();
    }
    let again = fabric
        .dma_map_resource(dev, bar, 1 << 40, DmaDirection::Bidirectional)
        .unwrap();
    assert_eq!(again.raw() + (1 << 40), IOVA_END, "freed space coalesced");
}
