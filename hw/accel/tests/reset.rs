//! Soft and hard resets, and the scrubber.

mod common;

use common::{machine, pattern};
use sagrada_hw_accel_abi::entry::CqStatus;
use sagrada_hw_accel_abi::packet::{MsgOp, Packet};
use sagrada_hw_accel_abi::regs::{
    cq, global, mmu, mmu_hop0, monitor, msix, queue, scrub, sob, sob_owner,
};
use sagrada_hw_accel_abi::{QUEUE_DMA0, QUEUE_DMA1, VECTOR_CQ};

const SOFT: u32 = 1;
const HARD: u32 = 2;

#[test]
fn a_soft_reset_aborts_a_waiting_queue_clears_sync_state_and_keeps_hbm() {
    let d = machine();
    d.setup();
    d.hbm_write(0x1000, b"kept across a soft reset");
    d.wr(global::SCRATCH, 0x55);
    d.wr(sob::instance(3), 1);
    d.wr(sob_owner::instance(3), 7);
    d.wr(monitor::instance(4) + monitor::SOB, 3);
    d.wr(monitor::instance(4) + monitor::TARGET, 100);
    d.wr(monitor::instance(4) + monitor::ARM, 1);
    d.wr64(mmu_hop0::instance(5) + mmu_hop0::LO, 0x1234_5000);
    // A fault to be cleared.
    d.run(
        QUEUE_DMA0,
        0,
        1,
        &[Packet::LinDma {
            src: 1 << 40,
            dst: 0,
            size: 4,
            dir: sagrada_hw_accel_abi::packet::DmaDir::DeviceToDevice,
        }],
        1,
    );
    assert_eq!(d.rd(mmu::BASE + mmu::FAULT_COUNT), 1);
    d.job(
        QUEUE_DMA1,
        0,
        2,
        &[Packet::Wait { sob: 3, target: 2 }, Packet::Fence { tag: 2 }],
    );
    let q1 = queue::instance(QUEUE_DMA1);
    d.wait_until("queue 1 waits", || d.rd(q1 + queue::STATUS) & 2 != 0);
    let cq_irqs = d.cq_irqs();

    d.wr(global::RESET, SOFT);
    // Complete when the write is.
    assert_eq!(d.rd(global::STATUS), 1, "FW_READY, not IN_RESET");
    assert_eq!(d.rd(global::SOFT_RESETS), 1);
    for r in [
        queue::BASE_LO,
        queue::SIZE_LOG2,
        queue::PI,
        queue::CI,
        queue::CTRL,
        queue::ERRORS,
        queue::BUSY_NS_LO,
    ] {
        assert_eq!(d.rd(q1 + r), 0, "queue register {r:#x}");
    }
    assert_eq!(d.rd(q1 + queue::STATUS), 1, "idle");
    assert_eq!(d.rd(queue::instance(QUEUE_DMA0) + queue::CI), 0);
    for r in [cq::BASE_LO, cq::SIZE_LOG2, cq::PI, cq::CI, cq::CTRL] {
        assert_eq!(d.rd(cq::BASE + r), 0, "CQ register {r:#x}");
    }
    assert_eq!(d.rd(sob::instance(3)), 0);
    assert_eq!(d.rd(sob_owner::instance(3)), 0);
    assert_eq!(d.rd(monitor::instance(4) + monitor::STATUS), 0);
    assert_eq!(d.rd(monitor::instance(4) + monitor::TARGET), 0);
    assert_eq!(d.rd(mmu::BASE + mmu::FAULT_COUNT), 0);
    assert_eq!(d.rd(mmu::BASE + mmu::FAULT_STATUS), 0);
    assert_eq!(
        d.rd64(mmu_hop0::instance(5) + mmu_hop0::LO),
        0x1234_5000,
        "kept"
    );
    assert_eq!(d.rd(global::SCRATCH), 0x55, "kept");
    assert_eq!(
        d.rd(msix::instance(VECTOR_CQ) + msix::CTRL),
        0,
        "the vector table is kept"
    );
    assert_eq!(d.hbm_read(0x1000, 24), b"kept across a soft reset");
    assert_eq!(
        d.cq_irqs(),
        cq_irqs,
        "the aborted entry wrote no completion"
    );

    // The device works again once set up again; the waiting engine was freed.
    d.setup();
    let out = d.run(QUEUE_DMA1, 0, 3, &[Packet::Fence { tag: 3 }], 1);
    assert_eq!((out[0].tag, out[0].status), (3, CqStatus::Fence as u16));
    assert!(out[0].device_time_ns > 0);
}

#[test]
fn a_job_may_reset_the_device_it_runs_on() {
    let d = machine();
    d.setup();
    d.job(
        QUEUE_DMA0,
        0,
        0,
        &[
            Packet::Msg {
                sob: 1,
                op: MsgOp::Set,
                value: 5,
            },
            Packet::Wreg32 {
                reg: global::RESET,
                value: SOFT,
            },
            Packet::Fence { tag: 1 },
        ],
    );
    d.wait_until("the reset happened", || d.rd(global::SOFT_RESETS) == 1);
    assert_eq!(d.rd(sob::instance(1)), 0);
    assert_eq!(d.rd(queue::instance(QUEUE_DMA0) + queue::CI), 0);
    assert_eq!(d.cq_irqs(), 0, "the fence after the reset never ran");
    d.setup();
    assert_eq!(
        d.run(QUEUE_DMA0, 0, 0, &[Packet::Fence { tag: 2 }], 1)[0].tag,
        2
    );
}

#[test]
fn a_hard_reset_zeroes_hbm_masks_msix_and_reboots_the_firmware() {
    let d = machine();
    d.setup();
    let data = pattern(64 << 10, 9);
    d.hbm_write(512 << 20, &data);
    d.wr(global::SCRATCH, 0x55);
    d.wr64(mmu_hop0::instance(1) + mmu_hop0::LO, 0x20_0000);
    d.wr(msix::instance(VECTOR_CQ) + msix::CTRL, 1);
    d.run(QUEUE_DMA0, 0, 0, &[Packet::Fence { tag: 1 }], 1);
    assert_eq!(d.rd(global::MSIX_PENDING), 1);
    d.wr(global::RESET, HARD);
    assert_eq!(d.rd(global::HARD_RESETS), 1);
    assert_eq!(d.rd(global::SOFT_RESETS), 0);
    assert_eq!(d.rd(global::STATUS), 1, "FW_READY again");
    assert_eq!(d.hbm_read(512 << 20, 64 << 10), vec![0; 64 << 10]);
    assert_eq!(d.rd(global::SCRATCH), 0);
    assert_eq!(d.rd64(mmu_hop0::instance(1) + mmu_hop0::LO), 0);
    assert_eq!(d.rd(global::MSIX_PENDING), 0);
    for v in 0..8 {
        let base = msix::instance(v);
        assert_eq!(d.rd(base + msix::CTRL), 1, "vector {v} masked");
        assert_eq!(d.rd64(base + msix::ADDR_LO), 0);
        assert_eq!(d.rd(base + msix::DATA), 0);
    }
    assert!(
        d.hbm().allocated_bytes().unwrap() < 1 << 20,
        "the HBM was given back"
    );
    // The firmware answers after the reboot.
    d.setup_msix();
    let r = d.fw(sagrada_hw_accel_abi::firmware::OP_GET_STATUS, 1, &[]);
    assert_eq!(r.payload[..3], [1, 0, 1]);
}

#[test]
fn the_scrubber_zeroes_aligned_ranges_inside_hbm_only() {
    let d = machine();
    let data = pattern(3 * 4096, 4);
    d.hbm_write(0x10_0000, &data);
    let go = |addr: u64, size: u64| {
        d.wr64(scrub::BASE + scrub::ADDR_LO, addr);
        d.wr64(scrub::BASE + scrub::SIZE_LO, size);
        d.wr(scrub::BASE + scrub::CTRL, 1);
        d.rd(scrub::BASE + scrub::STATUS)
    };
    assert_eq!(go(0x10_1000, 4096), 1, "DONE");
    let now = d.hbm_read(0x10_0000, 3 * 4096);
    assert_eq!(now[..4096], data[..4096]);
    assert_eq!(now[4096..8192], [0; 4096]);
    assert_eq!(now[8192..], data[8192..]);
    for (addr, size) in [
        (0x10_0800, 4096),
        (0x10_0000, 100),
        ((1 << 30) - 4096, 8192),
        (u64::MAX - 4095, 4096),
    ] {
        assert_eq!(go(addr, size), 2, "ERROR for {addr:#x}+{size:#x}");
    }
    let now = d.hbm_read(0x10_0000, 3 * 4096);
    assert_eq!(now[..4096], data[..4096], "nothing changed");
    assert_eq!(go(0, 1 << 30), 1, "the whole HBM");
    assert_eq!(d.hbm_read(0x10_0000, 3 * 4096), vec![0; 3 * 4096]);
}

#[test]
fn resets_racing_with_busy_engines_never_hang_and_leave_a_working_device() {
    use sagrada_hw_accel_abi::packet::DmaDir;
    let d = machine();
    let host = d.host(1 << 20);
    for round in 0..20u32 {
        d.setup();
        for q in [QUEUE_DMA0, QUEUE_DMA1] {
            let other = 1 - q;
            for i in 0..6 {
                d.job(
                    q,
                    0,
                    u64::from(i),
                    &[
                        Packet::LinDma {
                            src: host.dev(0),
                            dst: u64::from(q) << 20,
                            size: 1 << 20,
                            dir: DmaDir::HostToDevice,
                        },
                        Packet::Msg {
                            sob: q,
                            op: MsgOp::Add,
                            value: 1,
                        },
                        Packet::Wait {
                            sob: other,
                            target: i,
                        },
                        Packet::Fence { tag: u64::from(i) },
                    ],
                );
            }
        }
        // Let the engines get going for a varying while, then reset under them.
        if round % 2 == 1 {
            let ci = queue::instance(QUEUE_DMA0) + queue::CI;
            d.wait_until("queue 0 is under way", || d.rd(ci) >= 1);
        } else {
            for _ in 0..round * 50 {
                std::hint::spin_loop();
            }
        }
        d.wr(global::RESET, if round % 5 == 4 { HARD } else { SOFT });
        for q in [QUEUE_DMA0, QUEUE_DMA1] {
            assert_eq!(d.rd(queue::instance(q) + queue::CI), 0);
            assert_eq!(d.rd(queue::instance(q) + queue::STATUS), 1);
        }
        if round % 5 == 4 {
            d.setup_msix();
        }
    }
    d.setup();
    let out = d.run(QUEUE_DMA0, 0, 0, &[Packet::Fence { tag: 77 }], 1);
    assert_eq!(out[0].tag, 77);
    d.sg1.shutdown();
    assert_eq!(d.sg1.running_threads(), 0);
}
