//! The DMA test importer driven through its registers, as its kernel driver will.

use std::sync::Arc;

use sagrada_hw_fabric::{DmaDirection, Fabric, FaultReason, Iova, PhysAddr, PhysRange};
use sagrada_hw_importer::{Importer, ImporterError, regs};

struct Bench {
    fabric: Arc<Fabric>,
    dev: sagrada_hw_fabric::DeviceId,
    bar0: u64,
    _imp: Arc<Importer>,
}

impl Bench {
    fn new(name: &str) -> Self {
        let fabric = Fabric::default_machine().unwrap();
        let dev = fabric.find(name).unwrap();
        let imp = Importer::attach(&fabric, dev).unwrap();
        let bar0 = fabric.bar(dev, 0).unwrap().phys.raw();
        Self {
            fabric,
            dev,
            bar0,
            _imp: imp,
        }
    }

    fn rd(&self, off: u32) -> u32 {
        let mut b = [0u8; 4];
        self.fabric
            .cpu_read(PhysAddr(self.bar0 + u64::from(off)), &mut b)
            .unwrap();
        u32::from_le_bytes(b)
    }

    fn rd64(&self, off: u32) -> u64 {
        u64::from(self.rd(off)) | u64::from(self.rd(off + 4)) << 32
    }

    fn wr(&self, off: u32, v: u32) {
        self.fabric
            .cpu_write(PhysAddr(self.bar0 + u64::from(off)), &v.to_le_bytes())
            .unwrap();
    }

    fn wr64(&self, off: u32, v: u64) {
        self.fabric
            .cpu_write(PhysAddr(self.bar0 + u64::from(off)), &v.to_le_bytes())
            .unwrap();
    }

    fn map(&self, phys: u64, len: u64, dir: DmaDirection) -> Iova {
        self.fabric
            .dma_map_extents(
                self.dev,
                &[PhysRange {
                    start: PhysAddr(phys),
                    len,
                }],
                dir,
            )
            .unwrap()
    }

    /// Programs and starts a copy; returns STATUS.
    fn copy(&self, src: u64, dst: u64, len: u64) -> u32 {
        self.wr64(regs::SRC_LO, src);
        self.wr64(regs::DST_LO, dst);
        self.wr64(regs::LEN_LO, len);
        self.wr(regs::CTRL, regs::CTRL_GO);
        self.rd(regs::STATUS)
    }
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + 3) as u8).collect()
}

#[test]
fn identification() {
    let b = Bench::new("imp0");
    assert_eq!(b.rd(regs::ID), regs::ID_VALUE);
    assert_eq!(b.rd(regs::STATUS), 0);
    assert_eq!(b.rd(regs::CTRL), 0, "write-only");
    assert_eq!(b.rd(0x40), 0, "unknown offsets read 0");
    b.wr64(regs::SRC_LO, 0x1122_3344_5566_7788);
    assert_eq!(b.rd(regs::SRC_HI), 0x1122_3344);
    assert_eq!(b.rd64(regs::SRC_LO), 0x1122_3344_5566_7788);
}

#[test]
fn attach_refuses_other_devices_and_a_second_model() {
    let fabric = Fabric::default_machine().unwrap();
    let accel = fabric.find("accel0").unwrap();
    assert_eq!(
        Importer::attach(&fabric, accel).unwrap_err(),
        ImporterError::NotAnImporter(accel)
    );
    let imp = fabric.find("imp1").unwrap();
    let _first = Importer::attach(&fabric, imp).unwrap();
    assert!(matches!(
        Importer::attach(&fabric, imp),
        Err(ImporterError::Bar0Taken(_))
    ));
}

#[test]
fn a_host_to_host_copy_through_iommu_mappings() {
    for name in ["imp0", "imp1"] {
        let b = Bench::new(name);
        let len = 3 * 4096 + 17;
        let (src_phys, dst_phys) = (16u64 << 20, 32u64 << 20);
        let data = pattern(len);
        b.fabric.host_memory().write(src_phys, &data).unwrap();
        let src = b.map(src_phys, len as u64, DmaDirection::ToDevice);
        let dst = b.map(dst_phys, len as u64, DmaDirection::FromDevice);
        let before = b.fabric.counters();
        assert_eq!(
            b.copy(src.raw(), dst.raw(), len as u64),
            regs::STATUS_DONE,
            "{name}"
        );
        let mut out = vec![0; len];
        b.fabric.host_memory().read(dst_phys, &mut out).unwrap();
        assert_eq!(out, data, "{name}");
        let delta = b.fabric.counters().since(&before);
        assert_eq!(delta.host_dram_read_bytes, len as u64);
        assert_eq!(delta.host_dram_write_bytes, len as u64);
        let link = b.fabric.link_above(b.dev).unwrap();
        assert!(
            delta.link(link).up_bytes >= len as u64 && delta.link(link).down_bytes >= len as u64
        );
        assert_eq!(b.rd64(regs::BYTES_LO), len as u64);
    }
}

#[test]
fn a_refused_copy_sets_error_and_the_refused_address() {
    let b = Bench::new("imp0");
    let len = 2 * 4096u64;
    let src = b.map(16 << 20, len, DmaDirection::ToDevice);
    // The destination is mapped for one page only, and to-device: unwritable.
    let ro = b.map(32 << 20, 4096, DmaDirection::ToDevice);
    assert_eq!(b.copy(src.raw(), ro.raw(), len), regs::STATUS_ERROR);
    assert_eq!(b.rd64(regs::ERR_ADDR_LO), ro.raw());
    assert_eq!(b.rd64(regs::BYTES_LO), 0);
    assert_eq!(b.rd64(regs::LAST_TIME_NS_LO), 0);
    let fault = *b.fabric.faults(b.dev).last().unwrap();
    assert_eq!(fault.reason, FaultReason::Permission);
    assert_eq!(fault.addr, ro);
    // A source that runs off its mapping: the first page is copied.
    let dst = b.map(48 << 20, len, DmaDirection::FromDevice);
    let short = b.map(64 << 20, 4096, DmaDirection::ToDevice);
    assert_eq!(b.copy(short.raw(), dst.raw(), len), regs::STATUS_ERROR);
    assert_eq!(b.rd64(regs::ERR_ADDR_LO), short.raw() + 4096);
    assert_eq!(
        b.rd64(regs::BYTES_LO),
        4096,
        "the bytes before the refusal moved"
    );
    assert_eq!(
        b.fabric.faults(b.dev).last().unwrap().addr.raw(),
        short.raw() + 4096
    );
    // A good copy clears ERROR.
    assert_eq!(b.copy(src.raw(), dst.raw(), len), regs::STATUS_DONE);
}

#[test]
fn bytes_and_time_counters() {
    let b = Bench::new("imp1");
    let len = 1u64 << 20;
    let src = b.map(16 << 20, len, DmaDirection::ToDevice);
    let dst = b.map(32 << 20, len, DmaDirection::FromDevice);
    assert_eq!(b.copy(src.raw(), dst.raw(), len), regs::STATUS_DONE);
    let t1 = b.rd64(regs::LAST_TIME_NS_LO);
    // imp1 is a gen4 x8 link (about 14.4 GB/s): 1 MiB takes about 73 µs.
    assert!(t1 > 60_000 && t1 < 90_000, "{t1} ns");
    assert_eq!(b.copy(src.raw(), dst.raw(), len / 2), regs::STATUS_DONE);
    let t2 = b.rd64(regs::LAST_TIME_NS_LO);
    assert!(t2 < t1, "the time is the last copy's");
    assert_eq!(b.rd64(regs::BYTES_LO), len + len / 2);
    assert_eq!(
        b.copy(src.raw(), dst.raw(), 0),
        regs::STATUS_DONE,
        "an empty copy"
    );
    assert_eq!(b.rd64(regs::BYTES_LO), len + len / 2);
}
