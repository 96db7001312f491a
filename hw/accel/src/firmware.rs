//! The firmware: the embedded controller behind the mailbox (`abi::firmware`).
//!
//! It runs on its own thread, started by the first doorbell. For each doorbell it
//! takes the request in `MBOX_REQ`, answers in `MBOX_RESP`, sets `RESP_VALID`, clears
//! `BUSY` and raises the firmware vector. A `RESET` request is answered first and then
//! performed. A hard reset reboots the firmware: a request in flight is dropped.

use std::sync::{Arc, PoisonError};

use sagrada_hw_accel_abi::firmware::{
    BOOT_READY, FwStatus, MAILBOX_DWORDS, Message, OP_GET_INFO, OP_GET_STATUS, OP_GET_VERSION,
    OP_HEARTBEAT, OP_RESET,
};
use sagrada_hw_accel_abi::{NUM_ASIDS, NUM_MONITORS, NUM_QUEUES, NUM_SOBS, VECTOR_FIRMWARE};

use crate::device::Core;

/// What `GET_STATUS` reports as the die temperature, m°C.
const TEMPERATURE_MC: u32 = 45_000;
/// The build number `GET_VERSION` reports.
const BUILD: u32 = 0;

pub(crate) fn firmware_main(core: &Arc<Core>) {
    loop {
        let (request, epoch) = {
            let mut st = core.lock();
            while !core.is_shut() && !st.mbox.pending {
                st = core.fw_cv.wait(st).unwrap_or_else(PoisonError::into_inner);
            }
            if core.is_shut() {
                return;
            }
            st.mbox.pending = false;
            (st.mbox.req, st.mbox.epoch)
        };
        let (response, reset) = answer(core, &request);
        {
            let mut st = core.lock();
            if st.mbox.epoch != epoch {
                // Rebooted while answering: the request is gone with the old firmware.
                continue;
            }
            st.mbox.resp = response;
            st.mbox.resp_valid = true;
            // Another doorbell may have come in meanwhile; the mailbox stays busy.
            st.mbox.busy = st.mbox.pending;
        }
        core.raise(VECTOR_FIRMWARE);
        if let Some(hard) = reset {
            core.reset(hard);
        }
    }
}

/// The response to a request, and the reset it asks for (`Some(true)`: hard).
fn answer(core: &Core, request: &[u32; MAILBOX_DWORDS]) -> ([u32; MAILBOX_DWORDS], Option<bool>) {
    let reply = |status: FwStatus, seq: u32, payload: Vec<u32>| {
        Message {
            code: status as u16,
            seq,
            payload,
        }
        .to_dwords()
    };
    let Some(msg) = Message::from_dwords(request) else {
        return (reply(FwStatus::BadLength, request[1], vec![]), None);
    };
    let expected = match msg.code {
        OP_GET_VERSION | OP_GET_INFO | OP_GET_STATUS => 0,
        OP_HEARTBEAT | OP_RESET => 1,
        _ => return (reply(FwStatus::UnknownOpcode, msg.seq, vec![]), None),
    };
    if msg.payload.len() != expected {
        return (reply(FwStatus::BadLength, msg.seq, vec![]), None);
    }
    let ok = |payload| (reply(FwStatus::Ok, msg.seq, payload), None);
    match msg.code {
        OP_GET_VERSION => {
            let (major, minor, patch) = core.config.firmware_version;
            ok(vec![major, minor, patch, BUILD])
        }
        OP_GET_INFO => {
            let hbm = core.hbm_size();
            ok(vec![
                hbm as u32,
                (hbm >> 32) as u32,
                NUM_QUEUES,
                NUM_ASIDS,
                NUM_SOBS,
                NUM_MONITORS,
                core.config.serial,
            ])
        }
        OP_HEARTBEAT => {
            let uptime_ms = core.lock().mbox.booted.elapsed().as_millis() as u64;
            ok(vec![
                msg.payload[0].wrapping_add(1),
                uptime_ms as u32,
                (uptime_ms >> 32) as u32,
            ])
        }
        OP_GET_STATUS => {
            let st = core.lock();
            ok(vec![
                BOOT_READY,
                st.soft_resets,
                st.hard_resets,
                TEMPERATURE_MC,
            ])
        }
        OP_RESET => match msg.payload[0] {
            1 => (reply(FwStatus::Ok, msg.seq, vec![]), Some(false)),
            2 => (reply(FwStatus::Ok, msg.seq, vec![]), Some(true)),
            _ => (reply(FwStatus::BadArgument, msg.seq, vec![]), None),
        },
        _ => unreachable!("unknown opcodes were answered above"),
    }
}
