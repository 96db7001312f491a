//! Malformed command buffers and privilege violations: each ends its entry with an
//! error completion naming the packet, and the engine goes on.

mod common;

use common::{Dev, PageTables, machine};
use sagrada_hw_accel_abi::entry::{CqEntry, CqStatus, RingEntry};
use sagrada_hw_accel_abi::packet::{DmaDir, MsgOp, OP_LAUNCH, OP_NOP, Packet};
use sagrada_hw_accel_abi::regs::{global, queue, sob, sob_owner};
use sagrada_hw_accel_abi::{MAX_CB_SIZE, NUM_SOBS, QUEUE_DMA0, VECTOR_CQ};

const CB_VA: u64 = 0x10_0000_0000;

fn encode(packets: &[Packet]) -> Vec<u8> {
    let mut v = Vec::new();
    for p in packets {
        p.encode_into(&mut v);
    }
    v
}

/// Runs a kernel entry with these command-buffer bytes and a fence entry after it.
fn run_bytes(d: &Dev, bytes: &[u8], cb_size: u32) -> CqEntry {
    let (cb_addr, _) = d.cb_bytes(bytes);
    let (fence, fence_size) = d.cb(&[Packet::Fence { tag: 99 }]);
    d.submit(
        QUEUE_DMA0,
        &[
            RingEntry {
                cb_addr,
                cb_size,
                tag: 0xe,
                ..Default::default()
            },
            RingEntry {
                cb_addr: fence,
                cb_size: fence_size,
                ..Default::default()
            },
        ],
    );
    let out = d.completions(2);
    assert_eq!(
        (out[1].tag, out[1].status),
        (99, CqStatus::Fence as u16),
        "the engine went on"
    );
    assert_eq!(out[0].tag, 0xe);
    out[0]
}

fn bad_packet_at(e: CqEntry, offset: u64) {
    assert_eq!((e.status, e.info), (CqStatus::BadPacket as u16, offset));
}

#[test]
fn malformed_packets_are_bad_packets_at_their_offset() {
    let d = machine();
    d.setup();
    let nop = encode(&[Packet::Nop]);
    // A header whose length does not match the opcode.
    let mut cb = nop.clone();
    cb.extend_from_slice(&(u32::from(OP_NOP) | 2 << 16).to_le_bytes());
    bad_packet_at(run_bytes(&d, &cb, cb.len() as u32), 4);
    // Reserved header bits.
    let mut cb = nop.repeat(2);
    cb.extend_from_slice(&(u32::from(OP_NOP) | 1 << 16 | 1 << 8).to_le_bytes());
    bad_packet_at(run_bytes(&d, &cb, cb.len() as u32), 8);
    // A LAUNCH header whose length is not LAUNCH's.
    let mut cb = nop.repeat(3);
    cb.extend_from_slice(&(u32::from(OP_LAUNCH) | 1 << 16).to_le_bytes());
    bad_packet_at(run_bytes(&d, &cb, cb.len() as u32), 12);
    // A LIN_DMA direction that does not exist.
    let mut cb = encode(&[Packet::LinDma {
        src: 0,
        dst: 4096,
        size: 4,
        dir: DmaDir::DeviceToDevice,
    }]);
    cb[28] = 9;
    bad_packet_at(run_bytes(&d, &cb, cb.len() as u32), 0);
    // A truncated packet at the end.
    let cb = encode(&[Packet::Nop, Packet::Fence { tag: 1 }]);
    bad_packet_at(run_bytes(&d, &cb, 8), 4);
    // Sizes.
    bad_packet_at(run_bytes(&d, &nop.repeat(2), 6), 0);
    bad_packet_at(run_bytes(&d, &nop, MAX_CB_SIZE + 4), 0);
    // WREG32 outside BAR0 or misaligned.
    let cb = encode(&[Packet::Wreg32 {
        reg: 1 << 20,
        value: 0,
    }]);
    bad_packet_at(run_bytes(&d, &cb, cb.len() as u32), 0);
    let cb = encode(&[
        Packet::Nop,
        Packet::Wreg32 {
            reg: global::SCRATCH + 2,
            value: 0,
        },
    ]);
    bad_packet_at(run_bytes(&d, &cb, cb.len() as u32), 4);
    // A sync object that does not exist.
    let cb = encode(&[Packet::Wait {
        sob: NUM_SOBS,
        target: 0,
    }]);
    bad_packet_at(run_bytes(&d, &cb, cb.len() as u32), 0);
    assert_eq!(d.rd(queue::instance(QUEUE_DMA0) + queue::ERRORS), 10);
    d.wait_irq(VECTOR_CQ, 20);
}

#[test]
fn a_lin_dma_whose_addresses_contradict_its_direction_is_a_bad_packet() {
    let d = machine();
    d.setup();
    let host = d.host(4096);
    for (src, dst, dir) in [
        (0, 4096, DmaDir::HostToDevice),
        (host.dev(0), 4096, DmaDir::DeviceToDevice),
        (0, host.dev(0), DmaDir::HostToHost),
        (host.dev(0), host.dev(8), DmaDir::DeviceToHost),
    ] {
        let cb = encode(&[
            Packet::Nop,
            Packet::LinDma {
                src,
                dst,
                size: 8,
                dir,
            },
        ]);
        bad_packet_at(run_bytes(&d, &cb, cb.len() as u32), 4);
    }
}

#[test]
fn packets_before_an_error_took_effect() {
    let d = machine();
    d.setup();
    let cb = encode(&[
        Packet::Msg {
            sob: 7,
            op: MsgOp::Set,
            value: 70,
        },
        Packet::Wreg32 {
            reg: global::SCRATCH,
            value: 0x77,
        },
    ]);
    let mut cb = cb;
    cb.extend_from_slice(&[0xff; 4]);
    bad_packet_at(run_bytes(&d, &cb, cb.len() as u32), 28);
    assert_eq!(d.rd(sob::instance(7)), 70);
    assert_eq!(d.rd(global::SCRATCH), 0x77);
}

#[test]
fn unprivileged_entries_may_not_write_registers_fence_or_use_foreign_sync_objects() {
    let d = machine();
    d.setup();
    let mut pt = PageTables::new(&d, 900 << 20);
    pt.install(1);
    d.wr(sob_owner::instance(10), 1);
    d.wr(sob_owner::instance(11), 2);
    d.wr(sob::instance(11), 5);
    let cases: [(&[Packet], u64); 5] = [
        (
            &[
                Packet::Nop,
                Packet::Wreg32 {
                    reg: global::SCRATCH,
                    value: 1,
                },
            ],
            4,
        ),
        (&[Packet::Fence { tag: 1 }], 0),
        (
            &[
                Packet::Msg {
                    sob: 10,
                    op: MsgOp::Add,
                    value: 1,
                },
                Packet::Msg {
                    sob: 11,
                    op: MsgOp::Add,
                    value: 1,
                },
            ],
            16,
        ),
        (
            &[
                Packet::Wait { sob: 10, target: 1 },
                Packet::Wait { sob: 11, target: 0 },
            ],
            12,
        ),
        (
            &[Packet::Msg {
                sob: 0,
                op: MsgOp::Set,
                value: 1,
            }],
            0,
        ),
    ];
    for (i, (packets, offset)) in cases.iter().enumerate() {
        d.user_job(
            QUEUE_DMA0,
            1,
            i as u64,
            &mut pt,
            CB_VA + i as u64 * 4096,
            packets,
        );
        let (cb_addr, cb_size) = d.cb(&[Packet::Fence { tag: 99 }]);
        d.submit(
            QUEUE_DMA0,
            &[RingEntry {
                cb_addr,
                cb_size,
                ..Default::default()
            }],
        );
        let out = d.completions(2);
        assert_eq!(out[0].tag, i as u64);
        assert_eq!(
            (out[0].status, out[0].info),
            (CqStatus::PrivilegeViolation as u16, *offset),
            "case {i}"
        );
        assert_eq!(out[1].tag, 99);
    }
    assert_eq!(d.rd(global::SCRATCH), 0);
    assert_eq!(d.rd(sob::instance(10)), 1, "its own sync object: allowed");
    assert_eq!(d.rd(sob::instance(11)), 5, "another's: untouched");
    assert_eq!(d.rd(sob::instance(0)), 0, "the kernel's: untouched");
}
