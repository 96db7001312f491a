//! The firmware mailbox protocol: a stable ABI between the SG1's embedded controller
//! and the driver (`docs/hw/firmware.md`).
//!
//! A request is up to 16 dwords in `MBOX_REQ`: dword 0 holds the opcode (bits 15:0) and
//! the number of payload dwords (bits 23:16), dword 1 a sequence number the driver
//! chooses, then the payload. Ringing `MBOX.DOORBELL` submits it. The response appears
//! in `MBOX_RESP` in the same shape, with a status code in place of the opcode and the
//! request's sequence number echoed, then `MBOX.STATUS.RESP_VALID` is set and MSI-X
//! vector 2 raised.
//!
//! Compatibility: the protocol's version is the firmware's major version. A minor
//! version adds opcodes or appends payload dwords; it never changes what exists. A
//! driver must refuse a major version it does not know, and must ignore payload dwords
//! beyond the ones it knows.

/// The major protocol version this ABI describes.
pub const PROTOCOL_MAJOR: u32 = 1;

/// Dwords in a request or a response.
pub const MAILBOX_DWORDS: usize = 16;
/// Payload dwords a message can carry.
pub const MAX_PAYLOAD: usize = MAILBOX_DWORDS - 2;

/// `GET_VERSION` → `[major, minor, patch, build]`.
pub const OP_GET_VERSION: u16 = 0x01;
/// `GET_INFO` → `[hbm_lo, hbm_hi, queues, asids, sobs, monitors, serial]`.
pub const OP_GET_INFO: u16 = 0x02;
/// `HEARTBEAT [n]` → `[n + 1, uptime_ms_lo, uptime_ms_hi]`.
pub const OP_HEARTBEAT: u16 = 0x03;
/// `RESET [kind]` (1 soft, 2 hard) → `[]`; the reset follows the response.
pub const OP_RESET: u16 = 0x04;
/// `GET_STATUS` → `[boot_status, soft_resets, hard_resets, temperature_mC]`.
pub const OP_GET_STATUS: u16 = 0x05;

/// `boot_status` value: running.
pub const BOOT_READY: u32 = 1;

/// Response status codes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum FwStatus {
    /// Done.
    Ok = 0,
    /// The opcode is not known to this firmware.
    UnknownOpcode = 1,
    /// The payload length is wrong for the opcode.
    BadLength = 2,
    /// An argument is out of range.
    BadArgument = 3,
}

impl FwStatus {
    /// Decodes a status code.
    pub fn from_raw(v: u16) -> Option<Self> {
        Some(match v {
            0 => Self::Ok,
            1 => Self::UnknownOpcode,
            2 => Self::BadLength,
            3 => Self::BadArgument,
            _ => return None,
        })
    }
}

/// A request or response as dwords.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Message {
    /// Opcode (request) or status (response).
    pub code: u16,
    /// Sequence number.
    pub seq: u32,
    /// Payload.
    pub payload: Vec<u32>,
}

impl Message {
    /// The mailbox dwords (payload truncated to [`MAX_PAYLOAD`]).
    pub fn to_dwords(&self) -> [u32; MAILBOX_DWORDS] {
        let n = self.payload.len().min(MAX_PAYLOAD);
        let mut out = [0u32; MAILBOX_DWORDS];
        out[0] = u32::from(self.code) | (n as u32) << 16;
        out[1] = self.seq;
        out[2..2 + n].copy_from_slice(&self.payload[..n]);
        out
    }

    /// Parses mailbox dwords; `None` if the claimed payload does not fit.
    pub fn from_dwords(d: &[u32; MAILBOX_DWORDS]) -> Option<Self> {
        let n = ((d[0] >> 16) & 0xff) as usize;
        if n > MAX_PAYLOAD {
            return None;
        }
        Some(Self {
            code: d[0] as u16,
            seq: d[1],
            payload: d[2..2 + n].to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_through_the_mailbox() {
        let m = Message {
            code: OP_HEARTBEAT,
            seq: 77,
            payload: vec![41],
        };
        let d = m.to_dwords();
        assert_eq!(d[0], 0x0001_0003);
        assert_eq!(Message::from_dwords(&d), Some(m));
        let mut bad = d;
        bad[0] = 0x00ff_0003;
        assert_eq!(Message::from_dwords(&bad), None);
    }
}
