//! The driver side of the firmware mailbox (`docs/hw/firmware.md`): one request at a
//! time, answered through the firmware interrupt.

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use sagrada_hw_accel_abi::firmware::{FwStatus, MAILBOX_DWORDS, Message};
use sagrada_hw_accel_abi::regs::{mbox, mbox_req, mbox_resp};
use sagrada_kernel_core::{Errno, KResult, lock};

use crate::mmio::Mmio;

/// How long the firmware has to answer.
const TIMEOUT: Duration = Duration::from_secs(5);

/// The mailbox client.
#[derive(Debug, Default)]
pub(crate) struct Mailbox {
    /// Serialises requests; holds the next sequence number.
    request: Mutex<u32>,
    /// Set by the firmware interrupt.
    answered: Mutex<bool>,
    cv: Condvar,
}

impl Mailbox {
    /// The firmware interrupt handler.
    pub fn on_interrupt(&self) {
        *lock(&self.answered) = true;
        self.cv.notify_all();
    }

    /// Sends a request and waits for its response; `EIO` for a response that is not
    /// `Ok` or does not echo the sequence number, `ETIMEDOUT` if none comes.
    pub fn call(&self, mmio: &Mmio, opcode: u16, payload: &[u32]) -> KResult<Vec<u32>> {
        let mut seq = lock(&self.request);
        *seq = seq.wrapping_add(1);
        let req = Message {
            code: opcode,
            seq: *seq,
            payload: payload.to_vec(),
        };
        for (i, d) in req.to_dwords().iter().enumerate() {
            mmio.write(mbox_req::instance(i as u32) + mbox_req::DATA, *d)?;
        }
        *lock(&self.answered) = false;
        mmio.write(mbox::BASE + mbox::DOORBELL, 1)?;
        let deadline = Instant::now() + TIMEOUT;
        let mut answered = lock(&self.answered);
        while !*answered {
            let now = Instant::now();
            if now >= deadline {
                tracing::error!("firmware did not answer opcode {opcode:#x}");
                return Err(Errno::ETIMEDOUT);
            }
            answered = self
                .cv
                .wait_timeout(answered, deadline - now)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
        drop(answered);
        let mut dwords = [0u32; MAILBOX_DWORDS];
        for (i, d) in dwords.iter_mut().enumerate() {
            *d = mmio.read(mbox_resp::instance(i as u32) + mbox_resp::DATA)?;
        }
        let valid = mbox::fields::STATUS::RESP_VALID;
        mmio.write(mbox::BASE + mbox::STATUS, valid.mask())?;
        let resp = Message::from_dwords(&dwords).ok_or(Errno::EIO)?;
        if resp.seq != *seq || FwStatus::from_raw(resp.code) != Some(FwStatus::Ok) {
            tracing::error!(
                "firmware answered opcode {opcode:#x} with status {} (seq {} for {})",
                resp.code,
                resp.seq,
                *seq
            );
            return Err(Errno::EIO);
        }
        Ok(resp.payload)
    }
}
