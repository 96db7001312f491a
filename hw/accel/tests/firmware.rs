//! The firmware mailbox: every opcode, every error status, the firmware interrupt.

mod common;

use common::{Bench, machine};
use sagrada_hw_accel::Sg1Config;
use sagrada_hw_accel_abi::firmware::{
    BOOT_READY, FwStatus, OP_GET_INFO, OP_GET_STATUS, OP_GET_VERSION, OP_HEARTBEAT, OP_RESET,
    PROTOCOL_MAJOR,
};
use sagrada_hw_accel_abi::regs::{global, mbox};
use sagrada_hw_accel_abi::{NUM_ASIDS, NUM_MONITORS, NUM_QUEUES, NUM_SOBS, VECTOR_FIRMWARE};

#[test]
fn get_version_reports_the_configured_firmware() {
    let bench = Bench::new();
    let d = bench.sg1_with(
        "accel1",
        Sg1Config {
            firmware_version: (1, 7, 3),
            ..Default::default()
        },
    );
    let r = d.fw(OP_GET_VERSION, 41, &[]);
    assert_eq!(r.code, FwStatus::Ok as u16);
    assert_eq!(r.seq, 41, "the sequence number is echoed");
    assert_eq!(r.payload, vec![1, 7, 3, 0]);
    assert_eq!(d.irq_count(VECTOR_FIRMWARE), 1);
    assert_eq!(
        d.rd(mbox::BASE + mbox::STATUS),
        0,
        "RESP_VALID cleared by writing 1"
    );

    let d = machine();
    let r = d.fw(OP_GET_VERSION, 1, &[]);
    assert_eq!(
        r.payload[..3],
        [PROTOCOL_MAJOR, 2, 0],
        "the default is 1.2.0"
    );
}

#[test]
fn get_info_describes_the_device() {
    let bench = Bench::new();
    let d = bench.sg1_with(
        "accel0",
        Sg1Config {
            serial: 0xabcd,
            ..Default::default()
        },
    );
    let r = d.fw(OP_GET_INFO, 2, &[]);
    assert_eq!(r.code, FwStatus::Ok as u16);
    assert_eq!(
        r.payload,
        vec![
            1 << 30,
            0,
            NUM_QUEUES,
            NUM_ASIDS,
            NUM_SOBS,
            NUM_MONITORS,
            0xabcd
        ],
        "1 GiB of HBM"
    );
}

#[test]
fn heartbeat_and_status() {
    let d = machine();
    let r = d.fw(OP_HEARTBEAT, 3, &[41]);
    assert_eq!(r.code, FwStatus::Ok as u16);
    assert_eq!(r.payload.len(), 3);
    assert_eq!(r.payload[0], 42);
    let r = d.fw(OP_HEARTBEAT, 4, &[u32::MAX]);
    assert_eq!(r.payload[0], 0, "wrapping");
    let r = d.fw(OP_GET_STATUS, 5, &[]);
    assert_eq!(r.payload, vec![BOOT_READY, 0, 0, 45_000]);
    assert_eq!(d.irq_count(VECTOR_FIRMWARE), 3);
}

#[test]
fn errors_have_their_status_codes() {
    let d = machine();
    let r = d.fw(0x77, 9, &[]);
    assert_eq!(r.code, FwStatus::UnknownOpcode as u16);
    assert_eq!(r.seq, 9);
    assert!(r.payload.is_empty());
    assert_eq!(
        d.fw(OP_GET_VERSION, 10, &[1]).code,
        FwStatus::BadLength as u16
    );
    assert_eq!(d.fw(OP_HEARTBEAT, 11, &[]).code, FwStatus::BadLength as u16);
    assert_eq!(d.fw(OP_RESET, 12, &[3]).code, FwStatus::BadArgument as u16);
    assert_eq!(d.fw(OP_RESET, 13, &[0]).code, FwStatus::BadArgument as u16);
    // A payload count beyond the mailbox.
    let mut raw = [0u32; 16];
    raw[0] = u32::from(OP_GET_INFO) | 15 << 16;
    raw[1] = 14;
    let resp = d.fw_raw(raw);
    assert_eq!(resp[0] & 0xffff, FwStatus::BadLength as u32);
    assert_eq!(resp[1], 14);
    assert_eq!(d.rd(global::SOFT_RESETS), 0, "no reset happened");
    assert_eq!(d.irq_count(VECTOR_FIRMWARE), 6);
}

#[test]
fn reset_requests_are_answered_then_performed() {
    let d = machine();
    d.wr(global::SCRATCH, 7);
    let r = d.fw(OP_RESET, 20, &[1]);
    assert_eq!(r.code, FwStatus::Ok as u16);
    d.wait_until("the soft reset is counted", || {
        d.rd(global::SOFT_RESETS) == 1
    });
    assert_eq!(d.rd(global::SCRATCH), 7, "a soft reset keeps SCRATCH");
    let r = d.fw(OP_GET_STATUS, 21, &[]);
    assert_eq!(r.payload[1..3], [1, 0]);

    d.hbm_write(4096, &[9; 16]);
    let r = d.fw(OP_RESET, 22, &[2]);
    assert_eq!(r.code, FwStatus::Ok as u16);
    d.wait_until("the hard reset is counted", || {
        d.rd(global::HARD_RESETS) == 1
    });
    d.wait_until("the firmware is back", || {
        d.rd(global::STATUS) & global::fields::STATUS::FW_READY.mask() != 0
    });
    assert_eq!(d.rd(global::SCRATCH), 0);
    assert_eq!(d.hbm_read(4096, 16), vec![0; 16]);
    // The hard reset masked the vectors: program them again, as a driver would.
    d.setup_msix();
    let r = d.fw(OP_GET_STATUS, 23, &[]);
    assert_eq!(r.payload, vec![BOOT_READY, 1, 1, 45_000]);
}
