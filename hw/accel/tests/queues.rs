//! Queues, engines and the completion queue.

mod common;

use common::machine;
use sagrada_hw_accel_abi::entry::{CqStatus, RingEntry};
use sagrada_hw_accel_abi::packet::Packet;
use sagrada_hw_accel_abi::regs::{cq, queue};
use sagrada_hw_accel_abi::{QUEUE_COMPUTE, QUEUE_DMA0, QUEUE_DMA1};

#[test]
fn a_nop_and_fence_job_completes_with_an_entry_and_an_interrupt() {
    let d = machine();
    d.setup();
    let base = queue::instance(QUEUE_DMA0);
    assert_eq!(d.rd(base + queue::STATUS), 1, "idle");
    let entries = d.run(
        QUEUE_DMA0,
        0,
        0x77,
        &[
            Packet::Nop,
            Packet::Nop,
            Packet::Fence {
                tag: 0xfeed_f00d_0000_0001,
            },
        ],
        1,
    );
    let e = entries[0];
    assert_eq!(e.tag, 0xfeed_f00d_0000_0001);
    assert_eq!(e.queue, QUEUE_DMA0 as u16);
    assert_eq!(e.status, CqStatus::Fence as u16);
    assert_eq!(e.info, 0);
    assert!(
        e.device_time_ns > 0,
        "fetch and command buffer reads take time"
    );
    d.wait_irq(sagrada_hw_accel_abi::VECTOR_CQ, 1);
    assert_eq!(d.rd(base + queue::CI), 1);
    assert_eq!(d.rd(base + queue::ERRORS), 0);
    assert_eq!(d.rd(base + queue::STATUS), 1);
    let busy = d.rd64(base + queue::BUSY_NS_LO);
    assert!(busy >= e.device_time_ns, "{busy} < {}", e.device_time_ns);
    assert_eq!(d.rd(cq::BASE + cq::PI), 1);
}

#[test]
fn every_queue_runs_jobs_and_clocks_only_advance() {
    let d = machine();
    d.setup();
    for q in [QUEUE_DMA0, QUEUE_DMA1, QUEUE_COMPUTE] {
        let mut last = 0;
        for i in 0..20u64 {
            let e = d.run(q, 0, i, &[Packet::Fence { tag: i }], 1)[0];
            assert_eq!((e.tag, e.queue), (i, q as u16));
            assert!(e.device_time_ns > last);
            last = e.device_time_ns;
        }
        assert_eq!(d.rd(queue::instance(q) + queue::CI), 20);
    }
}

#[test]
fn several_entries_in_one_doorbell_run_in_order_and_wrap_the_ring() {
    let d = machine();
    d.setup_cq(6);
    d.setup_queue(QUEUE_DMA1, 2);
    for round in 0..3u64 {
        let entries: Vec<RingEntry> = (0..4)
            .map(|i| {
                let (cb_addr, cb_size) = d.cb(&[Packet::Fence {
                    tag: round * 10 + i,
                }]);
                RingEntry {
                    cb_addr,
                    cb_size,
                    tag: i,
                    ..Default::default()
                }
            })
            .collect();
        d.submit(QUEUE_DMA1, &entries);
        let tags: Vec<u64> = d.completions(4).iter().map(|e| e.tag).collect();
        assert_eq!(tags, (0..4).map(|i| round * 10 + i).collect::<Vec<_>>());
    }
    d.wait_idle(QUEUE_DMA1);
    assert_eq!(d.rd(queue::instance(QUEUE_DMA1) + queue::CI), 12);
}

#[test]
fn an_empty_command_buffer_completes_silently() {
    let d = machine();
    d.setup();
    d.submit(
        QUEUE_DMA0,
        &[RingEntry {
            cb_addr: 0,
            cb_size: 0,
            ..Default::default()
        }],
    );
    d.wait_idle(QUEUE_DMA0);
    let e = d.run(QUEUE_DMA0, 0, 1, &[Packet::Fence { tag: 2 }], 1);
    assert_eq!(e[0].tag, 2, "the only completion is the fence's");
}

#[test]
fn a_full_completion_queue_blocks_the_engine_until_ci_advances() {
    let d = machine();
    d.setup_cq(1); // 2 entries
    d.setup_queue(QUEUE_DMA0, 4);
    let fences: Vec<Packet> = (0..5).map(|tag| Packet::Fence { tag }).collect();
    d.job(QUEUE_DMA0, 0, 0, &fences);
    d.wait_until("the completion queue fills", || {
        d.rd(cq::BASE + cq::PI) == 2
    });
    // The engine is blocked: the entry is not consumed, and no third entry appears.
    for _ in 0..20 {
        std::thread::sleep(std::time::Duration::from_millis(1));
        assert_eq!(d.rd(cq::BASE + cq::PI), 2);
        assert_eq!(d.rd(queue::instance(QUEUE_DMA0) + queue::CI), 0);
    }
    let mut tags = Vec::new();
    for n in [2, 2, 1] {
        tags.extend(d.completions(n).iter().map(|e| e.tag));
    }
    assert_eq!(tags, vec![0, 1, 2, 3, 4]);
    d.wait_idle(QUEUE_DMA0);
    assert_eq!(d.rd(cq::BASE + cq::PI), 5);
}

#[test]
fn a_disabled_completion_queue_drops_completions() {
    let d = machine();
    d.setup();
    d.wr(cq::BASE + cq::CTRL, 0);
    d.job(QUEUE_DMA0, 0, 0, &[Packet::Fence { tag: 1 }]);
    d.wait_idle(QUEUE_DMA0);
    assert_eq!(d.rd(cq::BASE + cq::PI), 0);
    assert_eq!(d.cq_irqs(), 0);
    d.wr(cq::BASE + cq::CTRL, 1);
    assert_eq!(
        d.run(QUEUE_DMA0, 0, 0, &[Packet::Fence { tag: 2 }], 1)[0].tag,
        2
    );
}

#[test]
fn a_disabled_queue_does_not_fetch() {
    let d = machine();
    d.setup();
    let base = queue::instance(QUEUE_DMA1);
    d.wr(base + queue::CTRL, 0);
    d.job(QUEUE_DMA1, 0, 0, &[Packet::Fence { tag: 1 }]);
    std::thread::sleep(std::time::Duration::from_millis(5));
    assert_eq!(d.rd(base + queue::CI), 0);
    assert_eq!(
        d.rd(base + queue::STATUS) & 1,
        0,
        "not idle: work is waiting"
    );
    d.wr(base + queue::CTRL, 1);
    assert_eq!(d.completions(1)[0].tag, 1);
}

#[test]
fn wreg32_writes_registers_as_the_bus_does() {
    use sagrada_hw_accel_abi::regs::global;
    let d = machine();
    d.setup();
    d.run(
        QUEUE_DMA0,
        0,
        0,
        &[
            Packet::Wreg32 {
                reg: global::SCRATCH,
                value: 0x5a5a,
            },
            Packet::Fence { tag: 1 },
        ],
        1,
    );
    assert_eq!(d.rd(global::SCRATCH), 0x5a5a);
}
