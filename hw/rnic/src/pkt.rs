//! The transport's view of a packet: the fields it reads and writes, independent of
//! how [`crate::wire`] spells them.

/// Opcode numbers (RC class: the top three bits are 0).
pub(crate) mod op {
    pub const SEND_FIRST: u8 = 0x00;
    pub const SEND_MIDDLE: u8 = 0x01;
    pub const SEND_LAST: u8 = 0x02;
    pub const SEND_LAST_IMM: u8 = 0x03;
    pub const SEND_ONLY: u8 = 0x04;
    pub const SEND_ONLY_IMM: u8 = 0x05;
    pub const WRITE_FIRST: u8 = 0x06;
    pub const WRITE_MIDDLE: u8 = 0x07;
    pub const WRITE_LAST: u8 = 0x08;
    pub const WRITE_LAST_IMM: u8 = 0x09;
    pub const WRITE_ONLY: u8 = 0x0a;
    pub const WRITE_ONLY_IMM: u8 = 0x0b;
    pub const READ_REQUEST: u8 = 0x0c;
    pub const READ_RESPONSE_FIRST: u8 = 0x0d;
    pub const READ_RESPONSE_MIDDLE: u8 = 0x0e;
    pub const READ_RESPONSE_LAST: u8 = 0x0f;
    pub const READ_RESPONSE_ONLY: u8 = 0x10;
    pub const ACK: u8 = 0x11;
    pub const ATOMIC_ACK: u8 = 0x12;
    pub const CMP_SWAP: u8 = 0x13;
    pub const FETCH_ADD: u8 = 0x14;
}

/// AETH syndromes.
pub(crate) mod syn {
    /// ACK with "unlimited" credits, as rxe sends it.
    pub const ACK: u8 = 0x1f;
    pub const RNR_NAK: u8 = 0x20;
    pub const NAK_SEQ: u8 = 0x60;
    pub const NAK_INV_REQ: u8 = 0x61;
    pub const NAK_REM_ACCESS: u8 = 0x62;
    pub const NAK_REM_OP: u8 = 0x63;
}

/// A packet's fields (RC).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Pkt {
    pub opcode: u8,
    pub solicited: bool,
    pub ack_req: bool,
    pub dest_qp: u32,
    pub psn: u32,
    /// RETH: (va, rkey, dma_len).
    pub reth: Option<(u64, u32, u32)>,
    /// AtomicETH: (va, rkey, swap_add, compare).
    pub atomic: Option<(u64, u32, u64, u64)>,
    /// AETH: (syndrome, msn).
    pub aeth: Option<(u8, u32)>,
    /// AtomicAckETH.
    pub atomic_ack: Option<u64>,
    /// Immediate data as on the wire.
    pub imm: Option<u32>,
}

use std::ops::Range;

use crate::wire::{
    self, Aeth, AtomicEth, Bth, Endpoints, Headers, Opcode, Reth, Syndrome, WireError,
};

/// Encodes an RC packet for the wire (with its ICRC) into `out`, its `len`-byte
/// payload written in place by `fill`.
pub(crate) fn encode_with<E: From<WireError>>(
    p: &Pkt,
    len: usize,
    sgid: [u8; 16],
    dgid: [u8; 16],
    src_qpn: u32,
    out: &mut Vec<u8>,
    fill: impl FnOnce(&mut [u8]) -> Result<(), E>,
) -> Result<(), E> {
    let opcode = Opcode::try_from(p.opcode)?;
    let mut bth = Bth::new(opcode, p.dest_qp, p.psn);
    bth.solicited = p.solicited;
    bth.ack_req = p.ack_req;
    let mut h = Headers::new(bth);
    h.reth = p.reth.map(|(va, rkey, dma_len)| Reth { va, rkey, dma_len });
    h.atomic = p.atomic.map(|(va, rkey, swap_add, compare)| AtomicEth {
        va,
        rkey,
        swap_add,
        compare,
    });
    h.aeth = match p.aeth {
        Some((s, msn)) => Some(Aeth {
            syndrome: Syndrome::decode(s)?,
            msn,
        }),
        None => None,
    };
    h.atomic_ack = p.atomic_ack;
    h.imm = p.imm;
    let ep = Endpoints {
        sgid,
        dgid,
        udp_sport: wire::udp_sport_for_qpn(src_qpn),
    };
    wire::encode_with(&h, len, &ep, out, fill)
}

/// Decodes a received frame; the payload is `bytes[range]`.
pub(crate) fn decode(
    bytes: &[u8],
    sgid: [u8; 16],
    dgid: [u8; 16],
    udp_sport: u16,
) -> Result<(Pkt, Range<usize>), WireError> {
    let ep = Endpoints {
        sgid,
        dgid,
        udp_sport,
    };
    let packet = wire::decode(bytes, &ep)?;
    let h = packet.headers;
    let start = packet.payload.as_ptr() as usize - bytes.as_ptr() as usize;
    let range = start..start + packet.payload.len();
    let pkt = Pkt {
        opcode: u8::from(h.bth.opcode),
        solicited: h.bth.solicited,
        ack_req: h.bth.ack_req,
        dest_qp: h.bth.dest_qp,
        psn: h.bth.psn,
        reth: h.reth.map(|r| (r.va, r.rkey, r.dma_len)),
        atomic: h.atomic.map(|a| (a.va, a.rkey, a.swap_add, a.compare)),
        aeth: match h.aeth {
            Some(a) => Some((a.syndrome.encode()?, a.msn)),
            None => None,
        },
        atomic_ack: h.atomic_ack,
        imm: h.imm,
    };
    Ok((pkt, range))
}
