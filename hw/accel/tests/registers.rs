//! Identification, sizes, scratch, access rules, attach errors and MSI-X masking.

mod common;

use common::{Bench, machine};
use sagrada_hw_accel::{Sg1, Sg1Config, Sg1Error};
use sagrada_hw_accel_abi::packet::Packet;
use sagrada_hw_accel_abi::regs::{global, msix};
use sagrada_hw_accel_abi::{NUM_ASIDS, NUM_MONITORS, NUM_MSIX, NUM_QUEUES, NUM_SOBS, VECTOR_CQ};
use sagrada_hw_fabric::PhysAddr;

#[test]
fn identification_caps_and_sizes() {
    let d = machine();
    assert_eq!(d.rd(global::ID), 0x5347_0001);
    assert_eq!(d.rd(global::REVISION), 1);
    let caps = d.rd(global::CAPS);
    use global::fields::CAPS;
    assert_eq!(CAPS::QUEUES.get(caps), NUM_QUEUES);
    assert_eq!(CAPS::MSIX.get(caps), NUM_MSIX);
    assert_eq!(CAPS::ASIDS.get(caps), NUM_ASIDS);
    assert_eq!(d.rd(global::NUM_SOBS), NUM_SOBS);
    assert_eq!(d.rd(global::NUM_MONITORS), NUM_MONITORS);
    assert_eq!(d.rd64(global::HBM_SIZE_LO), 1 << 30);
    assert_eq!(
        d.rd(global::STATUS) & global::fields::STATUS::FW_READY.mask(),
        1,
        "the firmware boots at attach"
    );
    assert_eq!(d.rd(global::SOFT_RESETS), 0);
    assert_eq!(d.rd(global::HARD_RESETS), 0);
}

#[test]
fn scratch_holds_a_value_and_unknown_offsets_read_zero() {
    let d = machine();
    d.wr(global::SCRATCH, 0xdead_beef);
    assert_eq!(d.rd(global::SCRATCH), 0xdead_beef);
    for off in [0x1c, 0x800, 0x7_0000, 0xf_fffc] {
        d.wr(off, 0x1234);
        assert_eq!(d.rd(off), 0, "offset {off:#x}");
    }
    // RO registers ignore writes; WO registers read 0.
    d.wr(global::ID, 0);
    assert_eq!(d.rd(global::ID), 0x5347_0001);
    assert_eq!(d.rd(global::RESET), 0);
}

#[test]
fn eight_byte_accesses_split_into_dwords_and_misaligned_ones_are_dropped() {
    let d = machine();
    let base = msix::instance(3);
    d.wr64(base + msix::ADDR_LO, 0x1122_3344_5566_7788);
    assert_eq!(d.rd(base + msix::ADDR_LO), 0x5566_7788);
    assert_eq!(d.rd(base + msix::ADDR_HI), 0x1122_3344);
    let mut b = [0u8; 8];
    d.fabric
        .cpu_read(PhysAddr(d.bar0 + u64::from(base)), &mut b)
        .unwrap();
    assert_eq!(u64::from_le_bytes(b), 0x1122_3344_5566_7788);
    // Misaligned: ignored, reads all-ones.
    d.fabric
        .cpu_write(
            PhysAddr(d.bar0 + u64::from(global::SCRATCH) + 1),
            &[1, 2, 3, 4],
        )
        .unwrap();
    assert_eq!(d.rd(global::SCRATCH), 0);
    let mut b = [0u8; 2];
    d.fabric
        .cpu_read(PhysAddr(d.bar0 + u64::from(global::SCRATCH)), &mut b)
        .unwrap();
    assert_eq!(b, [0xff; 2]);
}

#[test]
fn attach_refuses_other_devices_a_taken_bar0_and_a_bad_bandwidth() {
    let bench = Bench::new();
    let nic = bench.fabric.find("nic0").unwrap();
    assert_eq!(
        Sg1::attach(&bench.fabric, nic, Sg1Config::default()).unwrap_err(),
        Sg1Error::NotAnSg1(nic)
    );
    let accel1 = bench.fabric.find("accel1").unwrap();
    let bad = Sg1Config {
        hbm_bandwidth: 0.0,
        ..Default::default()
    };
    assert!(matches!(
        Sg1::attach(&bench.fabric, accel1, bad),
        Err(Sg1Error::BadBandwidth(_))
    ));
    let _first = Sg1::attach(&bench.fabric, accel1, Sg1Config::default()).unwrap();
    let err = Sg1::attach(&bench.fabric, accel1, Sg1Config::default()).unwrap_err();
    assert!(matches!(err, Sg1Error::Bar0Taken(_)), "{err}");
    assert!(err.to_string().contains("already"), "{err}");
}

#[test]
fn a_masked_vector_goes_pending_and_fires_on_unmask() {
    let d = machine();
    d.setup();
    let ctrl = msix::instance(VECTOR_CQ) + msix::CTRL;
    d.wr(ctrl, 1);
    assert_eq!(d.rd(ctrl), 1);
    let entries = d.run(0, 0, 1, &[Packet::Fence { tag: 5 }], 1);
    assert_eq!(entries[0].tag, 5);
    assert_eq!(d.cq_irqs(), 0, "masked");
    assert_eq!(d.rd(global::MSIX_PENDING), 1 << VECTOR_CQ);
    d.wr(ctrl, 0);
    assert_eq!(d.cq_irqs(), 1, "sent by the unmasking write");
    assert_eq!(d.rd(global::MSIX_PENDING), 0);
    d.wr(ctrl, 1);
    d.wr(ctrl, 0);
    assert_eq!(d.cq_irqs(), 1, "sent once");
}

#[test]
fn a_reset_vector_table_is_masked() {
    let bench = Bench::new();
    let dev = bench.fabric.find("accel2").unwrap();
    let _sg1 = Sg1::attach(&bench.fabric, dev, Sg1Config::default()).unwrap();
    let bar0 = bench.fabric.bar(dev, 0).unwrap().phys.raw();
    for v in 0..NUM_MSIX {
        let mut b = [0u8; 4];
        bench
            .fabric
            .cpu_read(
                PhysAddr(bar0 + u64::from(msix::instance(v) + msix::CTRL)),
                &mut b,
            )
            .unwrap();
        assert_eq!(u32::from_le_bytes(b), 1, "vector {v}");
    }
}
