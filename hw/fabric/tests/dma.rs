//! DMA routing on the default machine: peer-to-peer through the switch, through the
//! root complex with IOMMU mappings, host DRAM, faults, MMIO device models, CPU
//! access and the counters that show which way the bytes went.

use std::sync::{Arc, Mutex};

use sagrada_hw_fabric::{
    Access, DeviceId, DmaDirection, DmaError, Fabric, FaultReason, IommuError, Iova, LinkId,
    Memory, MmioHandler, PAGE_SIZE, PhysAddr, PhysRange, TopologyConfig,
};

struct Machine {
    fabric: Arc<Fabric>,
}

impl Machine {
    fn new() -> Self {
        Self {
            fabric: Fabric::default_machine().unwrap(),
        }
    }

    fn from(config: &TopologyConfig) -> Self {
        Self {
            fabric: Fabric::build(config).unwrap(),
        }
    }

    fn id(&self, name: &str) -> DeviceId {
        self.fabric.find(name).unwrap()
    }

    fn link(&self, name: &str) -> LinkId {
        self.fabric.link_above(self.id(name)).unwrap()
    }

    fn bar(&self, name: &str, index: u8) -> sagrada_hw_fabric::Bar {
        self.fabric.bar(self.id(name), index).unwrap().clone()
    }

    fn hbm(&self, name: &str) -> &Arc<Memory> {
        self.fabric.bar_memory(self.id(name), 2).unwrap()
    }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn read(mem: &Memory, offset: u64, len: usize) -> Vec<u8> {
    let mut buf = vec![0; len];
    mem.read(offset, &mut buf).unwrap();
    buf
}

fn passthrough() -> TopologyConfig {
    let mut config = TopologyConfig::default_machine();
    config.set_iommu_translates("hb0", false).unwrap();
    config
}

#[test]
fn a_nic_writes_to_hbm_through_the_switch_with_no_host_traffic() {
    let m = Machine::new();
    let (nic0, bar2) = (m.id("nic0"), m.bar("accel0", 2));
    let data = pattern(1 << 20, 7);
    let before = m.fabric.counters();
    let report = m
        .fabric
        .dma_write(nic0, Iova(bar2.bus.raw() + 0x3000), &data)
        .unwrap();
    assert_eq!(read(m.hbm("accel0"), 0x3000, data.len()), data);

    let delta = m.fabric.counters().since(&before);
    assert_eq!(delta.host_dram_read_bytes + delta.host_dram_write_bytes, 0);
    assert_eq!(delta.root_complex_p2p_bytes, 0);
    let root_link = m.link("sw0.up");
    assert_eq!(m.fabric.link_name(root_link), "hb0.rp1 — sw0.up");
    assert_eq!(
        delta.link(root_link),
        sagrada_hw_fabric::LinkCounters {
            link: root_link,
            up_bytes: 0,
            down_bytes: 0
        }
    );
    assert_eq!(delta.link(m.link("nic0")).up_bytes, 1 << 20);
    assert_eq!(delta.link(m.link("accel0")).down_bytes, 1 << 20);
    assert_eq!(
        delta.total_link_bytes(),
        2 << 20,
        "only the two endpoint links carry the bytes"
    );

    assert_eq!(report.bytes, 1 << 20);
    assert_eq!(report.links, [m.link("nic0"), m.link("accel0")]);
    assert!(!report.through_root_complex && !report.host_dram);
}

#[test]
fn the_same_write_through_an_iommu_mapping_goes_via_the_root_complex() {
    let m = Machine::new();
    let (nic0, bar2) = (m.id("nic0"), m.bar("accel0", 2));
    let len = 256 << 10;
    let iova = m
        .fabric
        .dma_map_resource(nic0, bar2.phys, 1 << 20, DmaDirection::FromDevice)
        .unwrap();
    assert_ne!(iova.raw(), bar2.bus.raw());
    let data = pattern(len, 3);
    let before = m.fabric.counters();
    let report = m.fabric.dma_write(nic0, iova, &data).unwrap();
    assert_eq!(read(m.hbm("accel0"), 0, len), data);

    let delta = m.fabric.counters().since(&before);
    let root_link = m.link("sw0.up");
    assert_eq!(delta.link(root_link).up_bytes, len as u64);
    assert_eq!(delta.link(root_link).down_bytes, len as u64);
    assert_eq!(delta.root_complex_p2p_bytes, len as u64);
    assert_eq!(delta.host_dram_write_bytes, 0);
    assert!(report.through_root_complex);
    assert_eq!(report.links, [m.link("nic0"), root_link, m.link("accel0")]);
    m.fabric.dma_unmap(nic0, iova, 1 << 20).unwrap();
}

#[test]
fn an_unmapped_iova_faults_is_logged_and_touches_nothing() {
    let m = Machine::new();
    let nic1 = m.id("nic1");
    let before = m.fabric.counters();
    let err = m
        .fabric
        .dma_write(nic1, Iova(0x10_0000), &[0xaa; 4096])
        .unwrap_err();
    let DmaError::Fault(fault) = err else {
        panic!("{err:?}")
    };
    assert_eq!(
        (fault.device, fault.addr, fault.reason, fault.access),
        (nic1, Iova(0x10_0000), FaultReason::Unmapped, Access::Write)
    );
    assert_eq!(m.fabric.faults(nic1), [fault]);
    assert!(m.fabric.faults(m.id("nic0")).is_empty());
    // IOVA 0x100000 is also a DRAM address; nothing may have been written there.
    assert_eq!(read(m.fabric.host_memory(), 0x10_0000, 4096), vec![0; 4096]);
    assert_eq!(m.fabric.counters().since(&before).total_link_bytes(), 0);
    assert!(
        fault
            .to_string()
            .contains("at DMA address 0x100000 refused: no IOMMU mapping"),
        "{fault}"
    );
}

#[test]
fn a_write_through_a_to_device_mapping_faults_with_permission() {
    let m = Machine::new();
    let nic1 = m.id("nic1");
    let iova = m
        .fabric
        .dma_map_resource(nic1, PhysAddr(0x20_0000), 8192, DmaDirection::ToDevice)
        .unwrap();
    let mut buf = [0u8; 64];
    m.fabric.dma_read(nic1, iova, &mut buf).unwrap();
    let err = m.fabric.dma_write(nic1, iova, &[1; 64]).unwrap_err();
    let DmaError::Fault(fault) = err else {
        panic!("{err:?}")
    };
    assert_eq!(fault.reason, FaultReason::Permission);
    assert_eq!(fault.bus, None);
    assert_eq!(read(m.fabric.host_memory(), 0x20_0000, 64), vec![0; 64]);
    let iova = m
        .fabric
        .dma_map_resource(nic1, PhysAddr(0x30_0000), 4096, DmaDirection::FromDevice)
        .unwrap();
    let err = m.fabric.dma_read(nic1, iova, &mut buf).unwrap_err();
    assert!(
        matches!(err, DmaError::Fault(f) if f.reason == FaultReason::Permission && f.access == Access::Read)
    );
    assert_eq!(m.fabric.faults(nic1).len(), 2);
}

#[test]
fn a_transfer_straddling_the_end_of_a_mapping_writes_the_mapped_part() {
    let m = Machine::new();
    let nic1 = m.id("nic1");
    let iova = m
        .fabric
        .dma_map_resource(nic1, PhysAddr(0x40_0000), 8192, DmaDirection::Bidirectional)
        .unwrap();
    let data = pattern(12288, 9);
    let err = m.fabric.dma_write(nic1, iova, &data).unwrap_err();
    let DmaError::Fault(fault) = err else {
        panic!("{err:?}")
    };
    assert_eq!(fault.addr, Iova(iova.raw() + 8192));
    assert_eq!(fault.reason, FaultReason::Unmapped);
    assert_eq!(fault.len, 4096);
    assert_eq!(read(m.fabric.host_memory(), 0x40_0000, 8192), data[..8192]);
    assert_eq!(read(m.fabric.host_memory(), 0x40_2000, 4096), vec![0; 4096]);
    assert_eq!(m.fabric.counters().host_dram_write_bytes, 8192);
}

#[test]
fn scattered_host_pages_mapped_as_extents_land_in_place() {
    let m = Machine::new();
    let accel2 = m.id("accel2");
    let extents = [
        PhysRange {
            start: PhysAddr(0x9_0800),
            len: 0x800,
        },
        PhysRange {
            start: PhysAddr(0x5_0000),
            len: 0x2000,
        },
        PhysRange {
            start: PhysAddr(0x7_0000),
            len: 0x300,
        },
    ];
    let total = 0x800 + 0x2000 + 0x300;
    let iova = m
        .fabric
        .dma_map_extents(accel2, &extents, DmaDirection::Bidirectional)
        .unwrap();
    assert_eq!(iova.raw() % PAGE_SIZE, 0x800);
    let data = pattern(total, 1);
    let report = m.fabric.dma_write(accel2, iova, &data).unwrap();
    assert!(report.host_dram && report.through_root_complex);
    let host = m.fabric.host_memory();
    assert_eq!(read(host, 0x9_0800, 0x800), data[..0x800]);
    assert_eq!(read(host, 0x5_0000, 0x2000), data[0x800..0x2800]);
    assert_eq!(read(host, 0x7_0000, 0x300), data[0x2800..]);
    assert_eq!(read(host, 0x7_0300, 16), vec![0; 16]);

    let mut back = vec![0; total];
    m.fabric.dma_read(accel2, iova, &mut back).unwrap();
    assert_eq!(back, data);
    let counters = m.fabric.counters();
    assert_eq!(
        (
            counters.host_dram_write_bytes,
            counters.host_dram_read_bytes
        ),
        (total as u64, total as u64)
    );
    assert_eq!(
        m.fabric.counters().link(m.link("accel2")).down_bytes,
        total as u64,
        "read completions flow down"
    );

    // The middle extents must be page aligned at both ends.
    let bad = [
        PhysRange {
            start: PhysAddr(0x1000),
            len: 0x800,
        },
        PhysRange {
            start: PhysAddr(0x3000),
            len: 0x1000,
        },
    ];
    assert!(matches!(
        m.fabric
            .dma_map_extents(accel2, &bad, DmaDirection::ToDevice),
        Err(IommuError::Misaligned { index: 0, .. })
    ));
    m.fabric.dma_unmap(accel2, iova, total as u64).unwrap();
    assert!(m.fabric.iommu_lookup(accel2, iova).is_none());
}

#[test]
fn a_passthrough_domain_uses_bus_addresses_as_they_are() {
    let m = Machine::from(&passthrough());
    let nic1 = m.id("nic1");
    assert!(!m.fabric.iommu_translates(nic1));
    let iova = m
        .fabric
        .dma_map_resource(nic1, PhysAddr(0x1234), 100, DmaDirection::ToDevice)
        .unwrap();
    assert_eq!(iova, Iova(0x1234));
    // Passthrough checks nothing: unmapped DRAM and the direction are not enforced.
    m.fabric.dma_write(nic1, Iova(0x8000), b"direct").unwrap();
    assert_eq!(read(m.fabric.host_memory(), 0x8000, 6), b"direct");
    m.fabric.dma_write(nic1, iova, b"x").unwrap();
    // A BAR bus address goes through the root complex to the BAR.
    let bar2 = m.bar("accel0", 2);
    m.fabric
        .dma_write(nic1, Iova(bar2.bus.raw() + 16), b"p2p")
        .unwrap();
    assert_eq!(read(m.hbm("accel0"), 16, 3), b"p2p");
    assert_eq!(m.fabric.counters().root_complex_p2p_bytes, 3);
    // Mappings are still tracked, so unbalanced unmaps are reported.
    m.fabric.dma_unmap(nic1, iova, 100).unwrap();
    assert_eq!(
        m.fabric.dma_unmap(nic1, iova, 100),
        Err(IommuError::NotMapped {
            device: nic1,
            iova,
            len: 100
        })
    );
    // Extents must follow each other on the bus to become one range.
    let joined = [
        PhysRange {
            start: PhysAddr(0x1800),
            len: 0x800,
        },
        PhysRange {
            start: PhysAddr(0x2000),
            len: 0x10,
        },
    ];
    assert_eq!(
        m.fabric
            .dma_map_extents(nic1, &joined, DmaDirection::ToDevice),
        Ok(Iova(0x1800))
    );
    let apart = [
        PhysRange {
            start: PhysAddr(0x1800),
            len: 0x800,
        },
        PhysRange {
            start: PhysAddr(0x5000),
            len: 0x10,
        },
    ];
    assert!(matches!(
        m.fabric
            .dma_map_extents(nic1, &apart, DmaDirection::ToDevice),
        Err(IommuError::Discontiguous { index: 1, .. })
    ));
}

#[test]
fn an_address_nobody_claims_is_unsupported() {
    let m = Machine::from(&passthrough());
    let nic1 = m.id("nic1");
    // Above DRAM, below the MMIO space: nothing decodes it.
    let err = m
        .fabric
        .dma_write(nic1, Iova(0x20_0000_0000), &[0; 8])
        .unwrap_err();
    let DmaError::Fault(fault) = err else {
        panic!("{err:?}")
    };
    assert_eq!(fault.reason, FaultReason::Unclaimed);
    assert_eq!(fault.bus.map(|b| b.raw()), Some(0x20_0000_0000));
    // A gap inside the switch's window, between two downstream ports' windows.
    let nic0 = m.id("nic0");
    let dp0 = m
        .fabric
        .function(m.id("sw0.dp0"))
        .window
        .as_ref()
        .unwrap()
        .memory
        .unwrap();
    let gap = dp0.0.raw() + dp0.1;
    assert!(m.fabric.dma_write(nic0, Iova(gap), &[0; 8]).is_err());
    // A device addressing its own BAR through its own port.
    let own = m.bar("accel0", 2);
    let err = m
        .fabric
        .dma_write(m.id("accel0"), Iova(own.bus.raw()), &[0; 8])
        .unwrap_err();
    assert!(matches!(err, DmaError::Fault(f) if f.reason == FaultReason::Unclaimed));
    // The DRAM end: the part inside DRAM lands, the rest is refused.
    let end = m.fabric.host_dram().len;
    let err = m
        .fabric
        .dma_write(nic1, Iova(end - 4), &[7; 8])
        .unwrap_err();
    assert!(
        matches!(err, DmaError::Fault(f) if f.addr == Iova(end) && f.reason == FaultReason::Unclaimed)
    );
    assert_eq!(read(m.fabric.host_memory(), end - 4, 4), [7; 4]);
}

#[test]
fn dma_copy_moves_between_two_bars_once_per_chunk() {
    let m = Machine::new();
    let nic0 = m.id("nic0");
    let (src, dst) = (m.bar("accel0", 2), m.bar("accel1", 2));
    let data = pattern(3 << 20, 5);
    m.hbm("accel0").write(0x10_0000, &data).unwrap();
    let before = m.fabric.counters();
    let report = m
        .fabric
        .dma_copy(
            nic0,
            Iova(src.bus.raw() + 0x10_0000),
            Iova(dst.bus.raw() + 0x2000),
            data.len() as u64,
        )
        .unwrap();
    assert_eq!(read(m.hbm("accel1"), 0x2000, data.len()), data);
    let delta = m.fabric.counters().since(&before);
    let len = data.len() as u64;
    assert_eq!(delta.link(m.link("accel0")).up_bytes, len);
    assert_eq!(delta.link(m.link("nic0")).down_bytes, len);
    assert_eq!(delta.link(m.link("nic0")).up_bytes, len);
    assert_eq!(delta.link(m.link("accel1")).down_bytes, len);
    assert_eq!(delta.link(m.link("sw0.up")).up_bytes, 0);
    assert_eq!(report.bytes, len);
    assert!(!report.through_root_complex);

    // Through the IOMMU from a device on another root port.
    let accel2 = m.id("accel2");
    let s = m
        .fabric
        .dma_map_resource(accel2, src.phys, 1 << 20, DmaDirection::ToDevice)
        .unwrap();
    let d = m
        .fabric
        .dma_map_resource(
            accel2,
            PhysAddr(0x100_0000),
            1 << 20,
            DmaDirection::FromDevice,
        )
        .unwrap();
    let report = m.fabric.dma_copy(accel2, s, d, 1 << 20).unwrap();
    assert!(report.through_root_complex && report.host_dram);
    let mut expect = vec![0; 1 << 20];
    m.hbm("accel0").read(0, &mut expect).unwrap();
    assert_eq!(read(m.fabric.host_memory(), 0x100_0000, 1 << 20), expect);
    // The wrong way round faults on the write side.
    let err = m.fabric.dma_copy(accel2, d, s, 64).unwrap_err();
    assert!(matches!(err, DmaError::Fault(f) if f.reason == FaultReason::Permission));
}

#[test]
fn device_local_memory_moves_with_write_from_and_read_into() {
    let m = Machine::new();
    let accel0 = m.id("accel0");
    let hbm = m.hbm("accel0").clone();
    hbm.write(0, &pattern(8192, 2)).unwrap();
    let iova = m
        .fabric
        .dma_map_resource(
            accel0,
            PhysAddr(0x60_0000),
            8192,
            DmaDirection::Bidirectional,
        )
        .unwrap();
    let report = m
        .fabric
        .dma_write_from(accel0, iova, &hbm, 0, 8192)
        .unwrap();
    assert!(report.host_dram);
    assert_eq!(
        read(m.fabric.host_memory(), 0x60_0000, 8192),
        pattern(8192, 2)
    );
    m.fabric
        .dma_read_into(accel0, iova, &hbm, 0x10000, 8192)
        .unwrap();
    assert_eq!(read(&hbm, 0x10000, 8192), pattern(8192, 2));
    assert!(matches!(
        m.fabric
            .dma_write_from(accel0, iova, &hbm, (1 << 30) - 10, 20),
        Err(DmaError::Local(_))
    ));
    assert!(matches!(
        m.fabric.dma_write(accel0, Iova(u64::MAX - 2), &[0; 8]),
        Err(DmaError::Wraps { .. })
    ));
    let bridge = m.id("sw0.dp0");
    assert_eq!(
        m.fabric.dma_write(bridge, iova, &[0; 8]),
        Err(DmaError::NotAnEndpoint(bridge))
    );
    assert_eq!(
        m.fabric
            .dma_map_resource(bridge, PhysAddr(0), 8, DmaDirection::ToDevice),
        Err(IommuError::NotAnEndpoint(bridge))
    );
}

#[test]
fn cpu_access_to_a_bar_crosses_the_links_down_and_back_up() {
    let m = Machine::new();
    let bar2 = m.bar("accel0", 2);
    let before = m.fabric.counters();
    m.fabric.cpu_write(bar2.phys, &pattern(4096, 4)).unwrap();
    assert_eq!(read(m.hbm("accel0"), 0, 4096), pattern(4096, 4));
    let delta = m.fabric.counters().since(&before);
    assert_eq!(delta.link(m.link("sw0.up")).down_bytes, 4096);
    assert_eq!(delta.link(m.link("accel0")).down_bytes, 4096);
    assert_eq!(delta.root_complex_p2p_bytes, 0);
    let mut buf = vec![0; 4096];
    m.fabric.cpu_read(bar2.phys, &mut buf).unwrap();
    assert_eq!(buf, pattern(4096, 4));
    assert_eq!(
        m.fabric
            .counters()
            .since(&before)
            .link(m.link("accel0"))
            .up_bytes,
        4096
    );

    // Host DRAM is not on the fabric: no counter moves.
    let before = m.fabric.counters();
    m.fabric.cpu_write(PhysAddr(0x1000), b"dram").unwrap();
    assert_eq!(m.fabric.counters(), before);
    assert!(matches!(
        m.fabric.cpu_read(PhysAddr(0x20_0000_0000), &mut buf),
        Err(DmaError::CpuUnclaimed { .. })
    ));
    m.fabric.reset_counters();
    assert_eq!(m.fabric.counters().total_link_bytes(), 0);
}

/// Registers that remember writes and serve reads, like a device model.
#[derive(Default)]
struct Registers {
    bytes: Mutex<Vec<u8>>,
    writes: Mutex<Vec<(u64, Vec<u8>)>>,
}

impl MmioHandler for Registers {
    fn read(&self, offset: u64, data: &mut [u8]) {
        let bytes = self.bytes.lock().unwrap();
        for (i, b) in data.iter_mut().enumerate() {
            *b = bytes.get(offset as usize + i).copied().unwrap_or(0xff);
        }
    }

    fn write(&self, offset: u64, data: &[u8]) {
        let mut bytes = self.bytes.lock().unwrap();
        let end = offset as usize + data.len();
        if bytes.len() < end {
            bytes.resize(end, 0);
        }
        bytes[offset as usize..end].copy_from_slice(data);
        self.writes.lock().unwrap().push((offset, data.to_vec()));
    }
}

#[test]
fn an_mmio_bar_is_served_by_its_device_model() {
    let m = Machine::new();
    let accel0 = m.id("accel0");
    let regs = Arc::new(Registers::default());
    m.fabric.set_mmio_handler(accel0, 0, regs.clone()).unwrap();
    assert!(
        m.fabric
            .set_mmio_handler(accel0, 0, regs.clone())
            .unwrap_err()
            .contains("already")
    );
    assert!(
        m.fabric
            .set_mmio_handler(accel0, 2, regs.clone())
            .unwrap_err()
            .contains("memory")
    );
    assert!(
        m.fabric
            .set_mmio_handler(accel0, 4, regs.clone())
            .unwrap_err()
            .contains("no BAR4")
    );

    let bar0 = m.bar("accel0", 0);
    m.fabric
        .cpu_write(PhysAddr(bar0.phys.raw() + 0x10), &7u32.to_le_bytes())
        .unwrap();
    let mut word = [0u8; 4];
    m.fabric
        .cpu_read(PhysAddr(bar0.phys.raw() + 0x10), &mut word)
        .unwrap();
    assert_eq!(u32::from_le_bytes(word), 7);

    // A doorbell rung by the NIC peer-to-peer through the switch.
    let nic0 = m.id("nic0");
    m.fabric
        .dma_write(nic0, Iova(bar0.bus.raw() + 0x40), &[1, 2, 3, 4])
        .unwrap();
    assert_eq!(
        regs.writes.lock().unwrap().last().unwrap(),
        &(0x40, vec![1, 2, 3, 4])
    );
    let mut back = [0u8; 4];
    m.fabric
        .dma_read(nic0, Iova(bar0.bus.raw() + 0x40), &mut back)
        .unwrap();
    assert_eq!(back, [1, 2, 3, 4]);
    // Memory to registers goes through the device model too.
    m.hbm("accel1").write(0, &[9; 16]).unwrap();
    m.fabric
        .dma_copy(
            nic0,
            Iova(m.bar("accel1", 2).bus.raw()),
            Iova(bar0.bus.raw() + 0x100),
            16,
        )
        .unwrap();
    assert_eq!(
        regs.writes.lock().unwrap().last().unwrap(),
        &(0x100, vec![9; 16])
    );

    // No model attached to nic1's registers: nobody claims the access.
    let nic1_bar0 = m.bar("nic1", 0);
    let err = m.fabric.cpu_write(nic1_bar0.phys, &[0; 4]).unwrap_err();
    assert!(matches!(err, DmaError::CpuUnclaimed { .. }));
    let p = passthrough();
    let m = Machine::from(&p);
    let err = m
        .fabric
        .dma_write(m.id("accel2"), Iova(nic1_bar0.bus.raw()), &[0; 4])
        .unwrap_err();
    assert!(matches!(err, DmaError::Fault(f) if f.reason == FaultReason::Unclaimed));
}

#[test]
fn unmaps_must_match_their_maps_exactly() {
    let m = Machine::new();
    let nic0 = m.id("nic0");
    let iova = m
        .fabric
        .dma_map_resource(nic0, PhysAddr(0x1_0010), 0x2000, DmaDirection::ToDevice)
        .unwrap();
    assert_eq!(iova.raw() % PAGE_SIZE, 0x10);
    for (at, len) in [
        (iova, 0x1fff),
        (Iova(iova.raw() - 0x10), 0x2000),
        (Iova(iova.raw() + 1), 0x2000),
    ] {
        assert_eq!(
            m.fabric.dma_unmap(nic0, at, len),
            Err(IommuError::NotMapped {
                device: nic0,
                iova: at,
                len
            })
        );
    }
    assert_eq!(m.fabric.iommu_mappings(nic0), [(iova, 0x2000)]);
    m.fabric.dma_unmap(nic0, iova, 0x2000).unwrap();
    assert!(m.fabric.dma_unmap(nic0, iova, 0x2000).is_err());
    assert!(m.fabric.iommu_mappings(nic0).is_empty());

    assert!(matches!(
        m.fabric
            .dma_map_resource(nic0, PhysAddr(0x20_0000_0000), 16, DmaDirection::ToDevice),
        Err(IommuError::NotMappable { .. })
    ));
    // A range running from one BAR into the next is not inside one BAR.
    let bar0 = m.bar("accel0", 0);
    assert!(matches!(
        m.fabric.dma_map_resource(
            nic0,
            PhysAddr(bar0.phys.raw() + bar0.size - 8),
            16,
            DmaDirection::ToDevice
        ),
        Err(IommuError::NotMappable { .. })
    ));
    assert!(matches!(
        m.fabric
            .dma_map_resource(nic0, PhysAddr(0), 0, DmaDirection::ToDevice),
        Err(IommuError::BadRange { .. })
    ));
}

#[test]
fn the_fault_log_keeps_the_latest_256() {
    let m = Machine::new();
    let nic1 = m.id("nic1");
    for i in 0..300u64 {
        assert!(
            m.fabric
                .dma_write(nic1, Iova(0x1000 * (i + 1)), &[0])
                .is_err()
        );
    }
    let faults = m.fabric.faults(nic1);
    assert_eq!(faults.len(), 256);
    assert_eq!(faults[0].addr, Iova(0x1000 * 45));
    assert_eq!(faults[255].addr, Iova(0x1000 * 300));
    m.fabric.clear_faults(nic1);
    assert!(m.fabric.faults(nic1).is_empty());
}

#[test]
fn concurrent_transfers_and_mappings_do_not_interfere() {
    let m = Machine::new();
    let fabric = m.fabric.clone();
    let threads: Vec<_> = ["nic0", "nic1", "accel2"]
        .into_iter()
        .enumerate()
        .map(|(t, name)| {
            let fabric = fabric.clone();
            let dev = fabric.find(name).unwrap();
            std::thread::spawn(move || {
                for round in 0..50u64 {
                    let phys = PhysAddr(0x100_0000 * (t as u64 + 1) + round * 0x1000);
                    let iova = fabric
                        .dma_map_resource(dev, phys, 0x1000, DmaDirection::Bidirectional)
                        .unwrap();
                    let data = pattern(0x1000, round as u8);
                    fabric.dma_write(dev, iova, &data).unwrap();
                    let mut back = vec![0; 0x1000];
                    fabric.dma_read(dev, iova, &mut back).unwrap();
                    assert_eq!(back, data);
                    fabric.dma_unmap(dev, iova, 0x1000).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(fabric.counters().host_dram_write_bytes, 3 * 50 * 0x1000);
}

#[test]
fn acs_redirect_sends_peer_traffic_up_to_the_root_complex() {
    let mut config = TopologyConfig::default_machine();
    config.set_acs_redirect("sw0", true).unwrap();
    let m = Machine::from(&config);
    let (nic0, bar2) = (m.id("nic0"), m.bar("accel0", 2));
    // The bus address is now an IOVA the root complex must translate; nothing maps it.
    let err = m
        .fabric
        .dma_write(nic0, Iova(bar2.bus.raw()), &[1; 16])
        .unwrap_err();
    assert!(matches!(err, DmaError::Fault(f) if f.reason == FaultReason::Unmapped));
    assert_eq!(read(m.hbm("accel0"), 0, 16), vec![0; 16]);
    // Mapped, it goes up the root port link and back down.
    let iova = m
        .fabric
        .dma_map_resource(nic0, bar2.phys, 4096, DmaDirection::FromDevice)
        .unwrap();
    let report = m.fabric.dma_write(nic0, iova, &[1; 16]).unwrap();
    assert!(report.through_root_complex);
    assert_eq!(read(m.hbm("accel0"), 0, 16), vec![1; 16]);
    let counters = m.fabric.counters();
    assert_eq!(counters.link(m.link("sw0.up")).up_bytes, 16);
    assert_eq!(counters.link(m.link("sw0.up")).down_bytes, 16);
    assert_eq!(counters.root_complex_p2p_bytes, 16);

    // Passthrough and ACS: the bus address works, but only by way of the root complex.
    config.set_iommu_translates("hb0", false).unwrap();
    let m = Machine::from(&config);
    let report = m
        .fabric
        .dma_write(m.id("nic0"), Iova(bar2.bus.raw()), &[2; 16])
        .unwrap();
    assert!(report.through_root_complex);
    assert_eq!(m.fabric.counters().root_complex_p2p_bytes, 16);
}

#[test]
fn nested_switches_route_peer_to_peer_at_the_lowest_common_switch() {
    let text = r#"
[host]
dram = "1 GiB"
[[host_bridge]]
name = "hb0"
[[switch]]
name = "top"
parent = "hb0"
[[switch]]
name = "mid"
parent = "top"
[[device]]
name = "a"
kind = "rnic"
parent = "mid"
[[device]]
name = "b"
kind = "sg1"
parent = "top"
hbm = "64 MiB"
[[device]]
name = "c"
kind = "sg1"
parent = "mid"
hbm = "64 MiB"
"#;
    let m = Machine::from(&TopologyConfig::from_toml_str(text).unwrap());
    let a = m.id("a");
    let report = m
        .fabric
        .dma_write(a, Iova(m.bar("b", 2).bus.raw() + 8), b"up one, down one")
        .unwrap();
    assert_eq!(read(m.hbm("b"), 8, 16), b"up one, down one");
    assert_eq!(report.links, [m.link("a"), m.link("mid.up"), m.link("b")]);
    assert!(!report.through_root_complex);
    let report = m
        .fabric
        .dma_write(a, Iova(m.bar("c", 2).bus.raw()), b"sibling")
        .unwrap();
    assert_eq!(report.links, [m.link("a"), m.link("c")]);
    let counters = m.fabric.counters();
    assert_eq!(counters.link(m.link("top.up")).up_bytes, 0);
    assert_eq!(counters.link(m.link("mid.up")).up_bytes, 16);
    let p2p = m.fabric.p2pdma_distance(m.id("b"), a);
    assert_eq!(p2p.distance, Some(6));
    assert!(p2p.reason.contains("share switch top"), "{}", p2p.reason);
    // A transfer that runs off the end of c's BAR2 (into BAR0, which has no device
    // model attached) lands up to the BAR's end and is refused after it.
    let c2 = m.bar("c", 2);
    let err = m
        .fabric
        .dma_write(a, Iova(c2.bus.raw() + c2.size - 4), &[5; 8])
        .unwrap_err();
    assert!(matches!(err, DmaError::Fault(f) if f.addr.raw() == c2.bus.raw() + c2.size));
    assert_eq!(read(m.hbm("c"), c2.size - 4, 4), [5; 4]);
}

mod interrupts {
    use std::sync::{Arc, Mutex};

    use sagrada_hw_fabric::{DmaError, Fabric, FaultReason, InterruptSink, Iova, MSI_BASE};

    #[derive(Default)]
    struct Recorder(Mutex<Vec<(u64, u32)>>);

    impl InterruptSink for Recorder {
        fn msi(&self, addr: u64, data: u32) {
            self.0.lock().unwrap().push((addr, data));
        }
    }

    #[test]
    fn a_write_to_the_msi_window_is_delivered_as_an_interrupt() {
        let fabric = Fabric::default_machine().unwrap();
        let recorder = Arc::new(Recorder::default());
        fabric.set_interrupt_sink(recorder.clone()).unwrap();
        assert!(
            fabric.set_interrupt_sink(recorder.clone()).is_err(),
            "connected once"
        );
        let accel0 = fabric.find("accel0").unwrap();
        let before = fabric.counters();
        let report = fabric
            .dma_write(accel0, Iova(MSI_BASE + 0x40), &0x1234_5678u32.to_le_bytes())
            .unwrap();
        assert_eq!(
            *recorder.0.lock().unwrap(),
            vec![(MSI_BASE + 0x40, 0x1234_5678)]
        );
        assert!(report.through_root_complex && !report.host_dram);
        let delta = fabric.counters().since(&before);
        assert_eq!(
            delta.total_link_bytes(),
            8,
            "4 bytes up each of the two links to the root"
        );
        assert_eq!(delta.host_dram_write_bytes, 0);
    }

    #[test]
    fn msi_reads_and_messages_without_a_controller_are_refused() {
        let fabric = Fabric::default_machine().unwrap();
        let nic1 = fabric.find("nic1").unwrap();
        let refused = |r: Result<_, DmaError>| match r {
            Err(DmaError::Fault(f)) => f.reason,
            other => panic!("expected a fault, got {other:?}"),
        };
        assert_eq!(
            refused(fabric.dma_write(nic1, Iova(MSI_BASE), &[0; 4])),
            FaultReason::Unclaimed
        );
        fabric
            .set_interrupt_sink(Arc::new(Recorder::default()))
            .unwrap();
        assert_eq!(
            refused(fabric.dma_read(nic1, Iova(MSI_BASE), &mut [0; 4])),
            FaultReason::Unclaimed
        );
        assert_eq!(fabric.faults(nic1).len(), 2);
    }
}
