//! Threads: started on first use, all joined by shutdown, none left behind by a drop
//! whatever the engines are doing.

mod common;

use std::sync::Arc;

use common::{Bench, Dev, machine};
use sagrada_hw_accel_abi::firmware::OP_GET_VERSION;
use sagrada_hw_accel_abi::packet::Packet;
use sagrada_hw_accel_abi::regs::{global, queue};
use sagrada_hw_accel_abi::{QUEUE_DMA0, QUEUE_DMA1};

#[test]
fn threads_start_on_first_use_and_shutdown_joins_them() {
    let d = machine();
    assert_eq!(
        d.sg1.running_threads(),
        0,
        "an unused device costs no threads"
    );
    d.setup();
    assert_eq!(d.sg1.running_threads(), 0, "set-up rings no doorbell");
    d.run(QUEUE_DMA0, 0, 0, &[Packet::Fence { tag: 0 }], 1);
    assert_eq!(d.sg1.running_threads(), 1);
    d.run(QUEUE_DMA0, 0, 0, &[Packet::Fence { tag: 0 }], 1);
    assert_eq!(d.sg1.running_threads(), 1, "one engine per queue");
    d.fw(OP_GET_VERSION, 0, &[]);
    assert_eq!(d.sg1.running_threads(), 2);
    d.run(QUEUE_DMA1, 0, 0, &[Packet::Fence { tag: 0 }], 1);
    assert_eq!(d.sg1.running_threads(), 3);
    d.sg1.shutdown();
    assert_eq!(d.sg1.running_threads(), 0);
    d.sg1.shutdown();
    // The registers are gone: all-ones, and writes change nothing.
    assert_eq!(d.rd(global::ID), u32::MAX);
    d.wr(queue::instance(QUEUE_DMA0) + queue::PI, 5);
    assert_eq!(
        d.sg1.running_threads(),
        0,
        "a doorbell after shutdown starts nothing"
    );
}

/// Drops everything the test holds and checks that nothing of the device is left:
/// the device's threads hold the fabric, so a leaked thread keeps it alive.
fn drop_and_check(bench: Bench, d: Dev) {
    let fabric = Arc::downgrade(&bench.fabric);
    let sg1 = Arc::downgrade(&d.sg1);
    drop(d);
    drop(bench);
    assert!(sg1.upgrade().is_none());
    assert!(
        fabric.upgrade().is_none(),
        "a device thread outlived the device"
    );
}

#[test]
fn a_machine_with_a_parked_engine_can_be_dropped() {
    let bench = Bench::new();
    let d = bench.sg1("accel0");
    d.setup();
    d.run(QUEUE_DMA0, 0, 0, &[Packet::Fence { tag: 0 }], 1);
    // Long past the spin: the engine has parked.
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_eq!(d.sg1.running_threads(), 1);
    drop_and_check(bench, d);
}

#[test]
fn a_machine_with_an_engine_blocked_on_wait_can_be_dropped() {
    let bench = Bench::new();
    let d = bench.sg1("accel1");
    d.setup();
    d.job(QUEUE_DMA1, 0, 0, &[Packet::Wait { sob: 1, target: 1 }]);
    let q = queue::instance(QUEUE_DMA1);
    d.wait_until("the engine waits", || d.rd(q + queue::STATUS) & 2 != 0);
    drop_and_check(bench, d);
}

#[test]
fn a_machine_with_an_engine_blocked_on_a_full_completion_queue_can_be_dropped() {
    let bench = Bench::new();
    let d = bench.sg1("accel2");
    d.setup_cq(1);
    d.setup_queue(QUEUE_DMA0, 2);
    let fences: Vec<Packet> = (0..4).map(|tag| Packet::Fence { tag }).collect();
    d.job(QUEUE_DMA0, 0, 0, &fences);
    d.wait_until("the completion queue is full", || {
        d.rd(sagrada_hw_accel_abi::regs::cq::BASE + sagrada_hw_accel_abi::regs::cq::PI) == 2
    });
    drop_and_check(bench, d);
}

#[test]
fn many_machines_come_and_go() {
    for _ in 0..20 {
        let bench = Bench::new();
        let d = bench.sg1("accel0");
        d.setup();
        d.run(QUEUE_DMA0, 0, 0, &[Packet::Fence { tag: 0 }], 1);
        d.fw(OP_GET_VERSION, 0, &[]);
        drop_and_check(bench, d);
    }
}
