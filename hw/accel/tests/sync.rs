//! The sync manager: MSG and WAIT between queues, monitors.

mod common;

use common::{PageTables, machine};
use sagrada_hw_accel_abi::mmu::host_phys;
use sagrada_hw_accel_abi::packet::{MsgOp, Packet};
use sagrada_hw_accel_abi::regs::{cq, monitor, queue, sob, sob_owner};
use sagrada_hw_accel_abi::{QUEUE_DMA0, QUEUE_DMA1, VECTOR_CQ, VECTOR_MONITOR};

fn waiting(d: &common::Dev, q: u32) -> bool {
    queue::fields::STATUS::WAITING.is_set(d.rd(queue::instance(q) + queue::STATUS))
}

#[test]
fn queue_one_waits_until_queue_zero_releases_it() {
    let d = machine();
    d.setup();
    d.job(
        QUEUE_DMA1,
        0,
        1,
        &[Packet::Wait { sob: 5, target: 2 }, Packet::Fence { tag: 1 }],
    );
    d.wait_until("queue 1 waits", || waiting(&d, QUEUE_DMA1));
    assert_eq!(
        d.rd(queue::instance(QUEUE_DMA1) + queue::STATUS) & 1,
        0,
        "busy, not idle"
    );
    d.run(
        QUEUE_DMA0,
        0,
        0,
        &[
            Packet::Msg {
                sob: 5,
                op: MsgOp::Add,
                value: 1,
            },
            Packet::Fence { tag: 0 },
        ],
        1,
    );
    assert!(waiting(&d, QUEUE_DMA1), "1 < 2: still waiting");
    let out = d.run(
        QUEUE_DMA0,
        0,
        0,
        &[
            Packet::Msg {
                sob: 5,
                op: MsgOp::Add,
                value: 1,
            },
            Packet::Fence { tag: 2 },
        ],
        2,
    );
    let mut tags: Vec<u64> = out.iter().map(|e| e.tag).collect();
    tags.sort();
    assert_eq!(tags, vec![1, 2]);
    d.wait_idle(QUEUE_DMA1);
    assert!(!waiting(&d, QUEUE_DMA1));
    assert_eq!(d.rd(sob::instance(5)), 2);
}

#[test]
fn unprivileged_queues_synchronise_on_their_own_sync_objects() {
    let d = machine();
    d.setup();
    let mut pt = PageTables::new(&d, 900 << 20);
    pt.install(3);
    d.wr(sob_owner::instance(100), 3);
    d.wr(sob::instance(100), u32::MAX);
    let va = 0x1000_0000;
    // Wraps to 0, then waits for 1 (unsigned compare: u32::MAX would satisfy it).
    d.user_job(
        QUEUE_DMA1,
        3,
        1,
        &mut pt,
        va,
        &[
            Packet::Msg {
                sob: 100,
                op: MsgOp::Add,
                value: 1,
            },
            Packet::Wait {
                sob: 100,
                target: 1,
            },
        ],
    );
    d.wait_until("queue 1 waits", || waiting(&d, QUEUE_DMA1));
    assert_eq!(d.rd(sob::instance(100)), 0);
    d.user_job(
        QUEUE_DMA0,
        3,
        2,
        &mut pt,
        va + 4096,
        &[Packet::Msg {
            sob: 100,
            op: MsgOp::Set,
            value: 1,
        }],
    );
    d.wait_idle(QUEUE_DMA0);
    d.wait_idle(QUEUE_DMA1);
    assert_eq!(d.rd(queue::instance(QUEUE_DMA1) + queue::ERRORS), 0);
    assert_eq!(d.rd(cq::BASE + cq::PI), 0, "no errors, no fences");
}

#[test]
fn a_register_write_to_a_sync_object_releases_a_waiter() {
    let d = machine();
    d.setup();
    d.job(
        QUEUE_DMA0,
        0,
        0,
        &[Packet::Wait { sob: 9, target: 3 }, Packet::Fence { tag: 3 }],
    );
    d.wait_until("queue 0 waits", || waiting(&d, QUEUE_DMA0));
    d.wr(sob::instance(9), 3);
    assert_eq!(d.completions(1)[0].tag, 3);
    d.wait_irq(VECTOR_CQ, 1);
}

#[test]
fn a_monitor_writes_its_payload_and_interrupts_once() {
    let d = machine();
    d.setup();
    let host = d.host(4096);
    let m = monitor::instance(17);
    d.wr(m + monitor::SOB, 20);
    d.wr(m + monitor::TARGET, 3);
    d.wr64(m + monitor::PAYLOAD_ADDR_LO, host.dev(16));
    d.wr(m + monitor::PAYLOAD_DATA, 0xcafe_f00d);
    use monitor::fields::{ARM, STATUS};
    d.wr(
        m + monitor::ARM,
        ARM::ARM.mask() | ARM::WRITE.mask() | ARM::IRQ.mask(),
    );
    assert_eq!(d.rd(m + monitor::STATUS), STATUS::ARMED.mask());
    for i in 1..=2u64 {
        d.run(
            QUEUE_DMA0,
            0,
            0,
            &[
                Packet::Msg {
                    sob: 20,
                    op: MsgOp::Add,
                    value: 1,
                },
                Packet::Fence { tag: i },
            ],
            1,
        );
    }
    assert_eq!(d.host_read(host.phys + 16, 4), [0; 4], "2 < 3");
    assert_eq!(d.irq_count(VECTOR_MONITOR), 0);
    d.run(
        QUEUE_DMA0,
        0,
        0,
        &[
            Packet::Msg {
                sob: 20,
                op: MsgOp::Add,
                value: 1,
            },
            Packet::Fence { tag: 3 },
        ],
        1,
    );
    d.wait_irq(VECTOR_MONITOR, 1);
    assert_eq!(d.host_read(host.phys + 16, 4), 0xcafe_f00du32.to_le_bytes());
    assert_eq!(
        d.rd(m + monitor::STATUS),
        STATUS::FIRED.mask(),
        "fired and disarmed"
    );
    d.wr(sob::instance(20), 100);
    assert_eq!(d.irq_count(VECTOR_MONITOR), 1, "once");
    d.wr(m + monitor::STATUS, STATUS::FIRED.mask());
    assert_eq!(d.rd(m + monitor::STATUS), 0, "W1C");
}

#[test]
fn a_monitor_armed_on_a_condition_that_holds_fires_at_once() {
    let d = machine();
    let m = monitor::instance(0);
    d.wr(sob::instance(2047), 10);
    d.wr(m + monitor::SOB, 2047);
    d.wr(m + monitor::TARGET, 10);
    d.wr64(m + monitor::PAYLOAD_ADDR_LO, 0x1000);
    d.wr(m + monitor::PAYLOAD_DATA, 0x1234_5678);
    use monitor::fields::ARM;
    d.wr(m + monitor::ARM, ARM::ARM.mask() | ARM::WRITE.mask());
    // Synchronously, in the arming write: the HBM payload is there, no interrupt asked.
    assert_eq!(d.hbm_read(0x1000, 4), 0x1234_5678u32.to_le_bytes());
    assert_eq!(d.irq_count(VECTOR_MONITOR), 0);
    // IRQ only.
    let m1 = monitor::instance(1);
    d.wr(m1 + monitor::SOB, 2047);
    d.wr(m1 + monitor::TARGET, 11);
    d.wr(m1 + monitor::ARM, ARM::ARM.mask() | ARM::IRQ.mask());
    assert_eq!(d.irq_count(VECTOR_MONITOR), 0);
    d.wr(sob::instance(2047), 11);
    assert_eq!(
        d.irq_count(VECTOR_MONITOR),
        1,
        "raised inside the SOB write"
    );
    // Writing 1 to ARMED disarms.
    let m2 = monitor::instance(2);
    d.wr(m2 + monitor::SOB, 2047);
    d.wr(m2 + monitor::TARGET, 50);
    d.wr(m2 + monitor::ARM, ARM::ARM.mask() | ARM::IRQ.mask());
    d.wr(m2 + monitor::STATUS, monitor::fields::STATUS::ARMED.mask());
    d.wr(sob::instance(2047), 60);
    assert_eq!(d.irq_count(VECTOR_MONITOR), 1);
}

#[test]
fn a_refused_monitor_payload_is_a_bus_fault() {
    use sagrada_hw_accel_abi::regs::mmu;
    let d = machine();
    let m = monitor::instance(3);
    d.wr(m + monitor::SOB, 1);
    d.wr(m + monitor::TARGET, 1);
    let payload = host_phys(0x5_0000_0000);
    d.wr64(m + monitor::PAYLOAD_ADDR_LO, payload);
    d.wr(
        m + monitor::ARM,
        monitor::fields::ARM::ARM.mask() | monitor::fields::ARM::WRITE.mask(),
    );
    d.wr(sob::instance(1), 1);
    d.wait_irq(sagrada_hw_accel_abi::VECTOR_MMU, 1);
    assert_eq!(d.rd(mmu::BASE + mmu::FAULT_ASID), 0);
    assert_eq!(d.rd64(mmu::BASE + mmu::FAULT_VA_LO), payload);
}
