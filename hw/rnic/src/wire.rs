//! The RoCEv2 packet layer: InfiniBand transport packets as they travel in the payload
//! of a UDP datagram (destination port [`ROCE_V2_UDP_DPORT`]), with their ICRC.
//!
//! This module knows no carrier. [`encode`] writes a packet into a byte buffer and
//! [`decode`] reads one from a byte slice; whatever moves the bytes (an in-memory link,
//! UDP sockets) is someone else's business.
//!
//! # Layout
//!
//! A packet, i.e. the UDP payload, is
//!
//! ```text
//! BTH (12) | extension headers | payload | pad (0-3 bytes) | ICRC (4)
//! ```
//!
//! The pad makes payload + pad a multiple of 4 bytes, and the BTH says how long it is
//! (its PadCnt field). Header fields are big-endian. Which extension headers a packet
//! carries, and in which order, follows from its [`Opcode`] alone; the layouts and the
//! opcode table are those of the Linux soft-RoCE driver (rxe: `rxe_hdr.h`,
//! `rxe_opcode.c`) and `include/rdma/ib_pack.h`.
//!
//! # The ICRC
//!
//! The invariant CRC is the CRC-32 of the Ethernet polynomial (as [`crc32fast`]
//! computes it) over, in order: the IP header with the fields a router may change set to
//! all ones (IPv4: TOS, TTL, header checksum; IPv6: traffic class, flow label, hop
//! limit), the UDP header with its checksum set to all ones, the BTH with its byte 4
//! (FECN, BECN and the 6 reserved bits, `resv8a`) set to all ones, and then the rest of
//! the packet up to the ICRC. rxe starts its raw register (`crc32_le`, which neither
//! inverts on entry nor on exit) at `0xdebb20e3`, which is the register after 8 bytes of
//! `0xff` (the masked LRH of native InfiniBand) processed from the usual `0xffffffff`;
//! it sends the bitwise NOT of the final register. So the ICRC is exactly the standard
//! CRC-32 of `[0xff; 8]` followed by the bytes above. See [`icrc`] for how that maps
//! onto `crc32fast` and for the byte order.
//!
//! The network layer is not part of a packet here, so [`encode`] and [`decode`]
//! synthesize the IP and UDP headers the ICRC covers from an [`Endpoints`]: IPv4 when
//! both GIDs are IPv4-mapped (`::ffff:a.b.c.d`), IPv6 otherwise. Because of that, the
//! receiver must describe the packet with the same [`Endpoints`] as the sender (source
//! GID and UDP source port of the sender). [`icrc_of_datagram`] computes the ICRC over
//! a real IP datagram instead, for carriers that see IP headers (and for captures).
//! The synthesized IPv4 header has ID 0 and DF set; a Linux sender picks a new ID per
//! packet and the ICRC covers it, so packets from a real rxe over IPv4 can only be
//! verified with their IP header at hand ([`icrc_of_datagram`]), not from the UDP
//! payload alone.
//!
//! # Not covered
//!
//! The opcodes are those of the RC, UC, RD and UD transports that rxe knows. The RoCEv2
//! congestion notification packet (opcode `0x81`), the FLUSH and ATOMIC_WRITE opcodes
//! (`0x1c`, `0x1d`), XRC and manufacturer-specific opcodes decode as
//! [`WireError::UnknownOpcode`].

use std::fmt;

/// UDP destination port of RoCEv2 (`ROCE_V2_UDP_DPORT` in the kernel).
pub const ROCE_V2_UDP_DPORT: u16 = 4791;

/// The 24 bits of a packet sequence number.
pub const PSN_MASK: u32 = 0x00ff_ffff;

/// The 24 bits of a queue-pair number (BTH DestQP, DETH source QP).
pub const QPN_MASK: u32 = 0x00ff_ffff;

/// Bytes of the base transport header.
pub const BTH_LEN: usize = 12;

/// Bytes of the ICRC at the end of every packet.
pub const ICRC_LEN: usize = 4;

/// Bytes of the longest header stack an opcode has (BTH, RDETH, DETH and AtomicETH of
/// an RD atomic).
pub const MAX_HEADER_LEN: usize = 52;

/// The raw `crc32_le` register rxe starts the ICRC from: the register after 8 bytes of
/// `0xff` (the masked LRH) processed from `0xffffffff`.
const RXE_ICRC_SEED: u32 = 0xdebb_20e3;

/// `crc32fast` keeps the finalized CRC value, not the raw register: its internal
/// register is the bitwise NOT of the value it was given, and `finalize` returns the
/// NOT of the register. rxe's register starts at [`RXE_ICRC_SEED`] and rxe sends the NOT
/// of its final register, so starting `crc32fast` from `!RXE_ICRC_SEED` makes
/// `finalize` return exactly the value rxe sends.
const CRC32FAST_INIT: u32 = !RXE_ICRC_SEED;

/// IPv4 protocol / IPv6 next header of UDP.
const IPPROTO_UDP: u8 = 17;
const IPV4_HEADER_LEN: usize = 20;
const IPV6_HEADER_LEN: usize = 40;
const UDP_HEADER_LEN: usize = 8;
/// Longest packet (UDP payload) whose UDP length and IPv4 total length fit in 16 bits.
const MAX_PACKET_LEN_IPV4: usize = 0xffff - IPV4_HEADER_LEN - UDP_HEADER_LEN;
/// Longest packet whose UDP length (= IPv6 payload length) fits in 16 bits.
const MAX_PACKET_LEN_IPV6: usize = 0xffff - UDP_HEADER_LEN;

// BTH bits.
const BTH_SE: u8 = 0x80;
const BTH_MIG: u8 = 0x40;
const BTH_PAD_SHIFT: u32 = 4;
const BTH_PAD_MASK: u8 = 0x30;
const BTH_TVER_MASK: u8 = 0x0f;
const BTH_FECN: u32 = 0x8000_0000;
const BTH_BECN: u32 = 0x4000_0000;
const BTH_ACK_REQ: u32 = 0x8000_0000;
/// Index of `resv8a` (FECN, BECN, resv6) in the BTH, the byte the ICRC excludes.
const BTH_RESV8A: usize = 4;

/// Adds `n` to a PSN, modulo 2^24.
pub fn psn_add(psn: u32, n: u32) -> u32 {
    psn.wrapping_add(n) & PSN_MASK
}

/// The signed distance from PSN `b` to PSN `a` in the 24-bit circular space, in
/// `-2^23..2^23`: positive when `a` is after `b`. This is rxe's `psn_compare` scaled back
/// to PSN units (rxe returns the difference shifted left by 8). Bits above the 24 of a
/// PSN are ignored.
pub fn psn_diff(a: u32, b: u32) -> i32 {
    // Shift the 24-bit difference into the top of an i32, then shift it back
    // arithmetically so that bit 23 becomes the sign.
    (a.wrapping_sub(b) << 8).cast_signed() >> 8
}

/// The UDP source port rxe uses for a QP: `0xc000 | (hash_32(qpn, 14) & 0x3fff)`, so
/// that each QP is one flow and keeps its packets in order on multipath networks.
/// `hash_32` is the kernel's multiplicative hash, `(val * 0x61c88647) >> (32 - bits)`.
pub fn udp_sport_for_qpn(qpn: u32) -> u16 {
    const GOLDEN_RATIO_32: u32 = 0x61c8_8647;
    const BITS: u32 = 14;
    let hash = qpn.wrapping_mul(GOLDEN_RATIO_32) >> (32 - BITS);
    // `hash` has 14 bits, so the cast keeps all of them.
    0xc000 | (hash & 0x3fff) as u16
}

/// What the ICRC covers beyond the packet: the two GIDs and the UDP source port of the
/// datagram that carries it, as seen by the sender.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Endpoints {
    /// Source GID (the sender's). IPv4-mapped (`::ffff:a.b.c.d`) for an IPv4 address.
    pub sgid: [u8; 16],
    /// Destination GID (the receiver's).
    pub dgid: [u8; 16],
    /// UDP source port (see [`udp_sport_for_qpn`]); the destination port is always
    /// [`ROCE_V2_UDP_DPORT`].
    pub udp_sport: u16,
}

impl Endpoints {
    /// Whether the packet travels over IPv4, i.e. both GIDs are IPv4-mapped.
    pub fn is_ipv4(&self) -> bool {
        is_ipv4_mapped(&self.sgid) && is_ipv4_mapped(&self.dgid)
    }

    /// The longest packet (UDP payload, ICRC included) these endpoints can carry: the
    /// UDP length, and over IPv4 the IP total length, must fit in 16 bits.
    pub fn max_packet_len(&self) -> usize {
        if self.is_ipv4() {
            MAX_PACKET_LEN_IPV4
        } else {
            MAX_PACKET_LEN_IPV6
        }
    }
}

fn is_ipv4_mapped(gid: &[u8; 16]) -> bool {
    gid[..10].iter().all(|&b| b == 0) && gid[10] == 0xff && gid[11] == 0xff
}

/// The transport service an opcode belongs to (its top 3 bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Transport {
    /// Reliable connection.
    Rc = 0x00,
    /// Unreliable connection.
    Uc = 0x20,
    /// Reliable datagram.
    Rd = 0x40,
    /// Unreliable datagram.
    Ud = 0x60,
}

impl Transport {
    /// The IB abbreviation: "RC", "UC", "RD" or "UD".
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Rc => "RC",
            Transport::Uc => "UC",
            Transport::Rd => "RD",
            Transport::Ud => "UD",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The operation of an opcode (its low 5 bits), independent of the transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Op {
    /// First packet of a multi-packet SEND.
    SendFirst = 0x00,
    /// Middle packet of a SEND.
    SendMiddle = 0x01,
    /// Last packet of a SEND.
    SendLast = 0x02,
    /// Last packet of a SEND with immediate data.
    SendLastWithImmediate = 0x03,
    /// A SEND of one packet.
    SendOnly = 0x04,
    /// A SEND of one packet with immediate data.
    SendOnlyWithImmediate = 0x05,
    /// First packet of a multi-packet RDMA WRITE (carries the RETH).
    RdmaWriteFirst = 0x06,
    /// Middle packet of an RDMA WRITE.
    RdmaWriteMiddle = 0x07,
    /// Last packet of an RDMA WRITE.
    RdmaWriteLast = 0x08,
    /// Last packet of an RDMA WRITE with immediate data.
    RdmaWriteLastWithImmediate = 0x09,
    /// An RDMA WRITE of one packet.
    RdmaWriteOnly = 0x0a,
    /// An RDMA WRITE of one packet with immediate data.
    RdmaWriteOnlyWithImmediate = 0x0b,
    /// An RDMA READ request.
    RdmaReadRequest = 0x0c,
    /// First packet of a multi-packet READ response.
    RdmaReadResponseFirst = 0x0d,
    /// Middle packet of a READ response (no AETH).
    RdmaReadResponseMiddle = 0x0e,
    /// Last packet of a READ response.
    RdmaReadResponseLast = 0x0f,
    /// A READ response of one packet.
    RdmaReadResponseOnly = 0x10,
    /// An ACK or NAK.
    Acknowledge = 0x11,
    /// The response to an atomic, with the original value.
    AtomicAcknowledge = 0x12,
    /// Atomic compare and swap.
    CompareSwap = 0x13,
    /// Atomic fetch and add.
    FetchAdd = 0x14,
    /// Last packet of a SEND that invalidates an rkey.
    SendLastWithInvalidate = 0x16,
    /// A SEND of one packet that invalidates an rkey.
    SendOnlyWithInvalidate = 0x17,
}

impl Op {
    /// The operation for the low 5 bits of an opcode, if one has them.
    pub const fn from_bits(bits: u8) -> Option<Op> {
        Some(match bits {
            0x00 => Op::SendFirst,
            0x01 => Op::SendMiddle,
            0x02 => Op::SendLast,
            0x03 => Op::SendLastWithImmediate,
            0x04 => Op::SendOnly,
            0x05 => Op::SendOnlyWithImmediate,
            0x06 => Op::RdmaWriteFirst,
            0x07 => Op::RdmaWriteMiddle,
            0x08 => Op::RdmaWriteLast,
            0x09 => Op::RdmaWriteLastWithImmediate,
            0x0a => Op::RdmaWriteOnly,
            0x0b => Op::RdmaWriteOnlyWithImmediate,
            0x0c => Op::RdmaReadRequest,
            0x0d => Op::RdmaReadResponseFirst,
            0x0e => Op::RdmaReadResponseMiddle,
            0x0f => Op::RdmaReadResponseLast,
            0x10 => Op::RdmaReadResponseOnly,
            0x11 => Op::Acknowledge,
            0x12 => Op::AtomicAcknowledge,
            0x13 => Op::CompareSwap,
            0x14 => Op::FetchAdd,
            0x16 => Op::SendLastWithInvalidate,
            0x17 => Op::SendOnlyWithInvalidate,
            _ => return None,
        })
    }

    /// The IB name, e.g. "RDMA_WRITE_FIRST".
    pub fn as_str(self) -> &'static str {
        match self {
            Op::SendFirst => "SEND_FIRST",
            Op::SendMiddle => "SEND_MIDDLE",
            Op::SendLast => "SEND_LAST",
            Op::SendLastWithImmediate => "SEND_LAST_WITH_IMMEDIATE",
            Op::SendOnly => "SEND_ONLY",
            Op::SendOnlyWithImmediate => "SEND_ONLY_WITH_IMMEDIATE",
            Op::RdmaWriteFirst => "RDMA_WRITE_FIRST",
            Op::RdmaWriteMiddle => "RDMA_WRITE_MIDDLE",
            Op::RdmaWriteLast => "RDMA_WRITE_LAST",
            Op::RdmaWriteLastWithImmediate => "RDMA_WRITE_LAST_WITH_IMMEDIATE",
            Op::RdmaWriteOnly => "RDMA_WRITE_ONLY",
            Op::RdmaWriteOnlyWithImmediate => "RDMA_WRITE_ONLY_WITH_IMMEDIATE",
            Op::RdmaReadRequest => "RDMA_READ_REQUEST",
            Op::RdmaReadResponseFirst => "RDMA_READ_RESPONSE_FIRST",
            Op::RdmaReadResponseMiddle => "RDMA_READ_RESPONSE_MIDDLE",
            Op::RdmaReadResponseLast => "RDMA_READ_RESPONSE_LAST",
            Op::RdmaReadResponseOnly => "RDMA_READ_RESPONSE_ONLY",
            Op::Acknowledge => "ACKNOWLEDGE",
            Op::AtomicAcknowledge => "ATOMIC_ACKNOWLEDGE",
            Op::CompareSwap => "COMPARE_SWAP",
            Op::FetchAdd => "FETCH_ADD",
            Op::SendLastWithInvalidate => "SEND_LAST_WITH_INVALIDATE",
            Op::SendOnlyWithInvalidate => "SEND_ONLY_WITH_INVALIDATE",
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An extension header (every packet has a BTH; these follow it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Header {
    /// Reliable datagram ETH (4 bytes: EE context), RD only.
    Rdeth = 1 << 0,
    /// Datagram ETH (8 bytes: Q_Key, source QP), UD and RD requests.
    Deth = 1 << 1,
    /// RDMA ETH (16 bytes: VA, rkey, DMA length).
    Reth = 1 << 2,
    /// Atomic ETH (28 bytes: VA, rkey, swap/add, compare).
    AtomicEth = 1 << 3,
    /// ACK ETH (4 bytes: syndrome, MSN).
    Aeth = 1 << 4,
    /// Atomic ACK ETH (8 bytes: original value).
    AtomicAckEth = 1 << 5,
    /// Immediate data (4 bytes).
    ImmDt = 1 << 6,
    /// Invalidate ETH (4 bytes: rkey).
    Ieth = 1 << 7,
}

impl Header {
    /// Every extension header, in the order they appear on the wire.
    pub const ALL: [Header; 8] = [
        Header::Rdeth,
        Header::Deth,
        Header::Reth,
        Header::AtomicEth,
        Header::Aeth,
        Header::AtomicAckEth,
        Header::ImmDt,
        Header::Ieth,
    ];

    /// Its length in bytes.
    pub const fn size(self) -> usize {
        match self {
            Header::Rdeth => 4,
            Header::Deth => 8,
            Header::Reth => 16,
            Header::AtomicEth => 28,
            Header::Aeth => 4,
            Header::AtomicAckEth => 8,
            Header::ImmDt => 4,
            Header::Ieth => 4,
        }
    }

    /// The IB name, e.g. "RETH".
    pub fn as_str(self) -> &'static str {
        match self {
            Header::Rdeth => "RDETH",
            Header::Deth => "DETH",
            Header::Reth => "RETH",
            Header::AtomicEth => "AtomicETH",
            Header::Aeth => "AETH",
            Header::AtomicAckEth => "AtomicAckETH",
            Header::ImmDt => "ImmDt",
            Header::Ieth => "IETH",
        }
    }
}

impl fmt::Display for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of extension headers: those an opcode carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct HeaderSet(u8);

impl HeaderSet {
    /// Whether `h` is in the set.
    pub const fn contains(self, h: Header) -> bool {
        self.0 & h as u8 != 0
    }

    /// Whether the set is empty (only a BTH).
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The headers in the set, in wire order.
    pub fn iter(self) -> impl Iterator<Item = Header> {
        Header::ALL.into_iter().filter(move |&h| self.contains(h))
    }

    /// Total bytes of the headers in the set.
    pub const fn len_bytes(self) -> usize {
        let mut n = 0;
        let mut i = 0;
        while i < Header::ALL.len() {
            if self.contains(Header::ALL[i]) {
                n += Header::ALL[i].size();
            }
            i += 1;
        }
        n
    }
}

// Properties of each of the 256 opcode values, computed once at compile time. The low 8
// bits are the `HeaderSet`.
const F_VALID: u16 = 1 << 8;
const F_START: u16 = 1 << 9;
const F_END: u16 = 1 << 10;
const F_PAYLOAD: u16 = 1 << 11;
const F_RESPONSE: u16 = 1 << 12;

/// What an operation carries, regardless of its transport (0: no such operation).
const fn op_props(op: u8) -> u16 {
    const RETH: u16 = Header::Reth as u16;
    const IMM: u16 = Header::ImmDt as u16;
    const AETH: u16 = Header::Aeth as u16;
    const ATMACK: u16 = Header::AtomicAckEth as u16;
    const ATMETH: u16 = Header::AtomicEth as u16;
    const IETH: u16 = Header::Ieth as u16;
    const P: u16 = F_PAYLOAD;
    const S: u16 = F_START;
    const E: u16 = F_END;
    const R: u16 = F_RESPONSE;
    match op {
        0x00 => P | S,
        0x01 => P,
        0x02 => P | E,
        0x03 => IMM | P | E,
        0x04 => P | S | E,
        0x05 => IMM | P | S | E,
        0x06 => RETH | P | S,
        0x07 => P,
        0x08 => P | E,
        0x09 => IMM | P | E,
        0x0a => RETH | P | S | E,
        0x0b => RETH | IMM | P | S | E,
        0x0c => RETH | S | E,
        0x0d => AETH | P | S | R,
        0x0e => P | R,
        0x0f => AETH | P | E | R,
        0x10 => AETH | P | S | E | R,
        0x11 => AETH | S | E | R,
        0x12 => AETH | ATMACK | S | E | R,
        0x13 => ATMETH | S | E,
        0x14 => ATMETH | S | E,
        0x16 => IETH | P | E,
        0x17 => IETH | P | S | E,
        _ => 0,
    }
}

/// Properties of an opcode byte (0: not an opcode rxe knows). The transports allow
/// these operations (`ib_pack.h`, `rxe_opcode.c`): RC all; UC SEND and RDMA WRITE; RD
/// all but the invalidating SENDs, with an RDETH in every packet and a DETH in every
/// request; UD SEND_ONLY and SEND_ONLY_WITH_IMMEDIATE, with a DETH.
const fn opcode_props(byte: u8) -> u16 {
    let op = byte & 0x1f;
    let props = op_props(op);
    if props == 0 {
        return 0;
    }
    let extra = match byte >> 5 {
        0 => 0,
        1 if op <= 0x0b => 0,
        2 if op <= 0x14 => {
            if props & F_RESPONSE == 0 {
                Header::Rdeth as u16 | Header::Deth as u16
            } else {
                Header::Rdeth as u16
            }
        }
        3 if op == 0x04 || op == 0x05 => Header::Deth as u16,
        _ => return 0,
    };
    props | extra | F_VALID
}

static OPCODE_PROPS: [u16; 256] = {
    let mut table = [0; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = opcode_props(i as u8);
        i += 1;
    }
    table
};

/// A BTH opcode that rxe knows: a [`Transport`] and an [`Op`] it allows.
///
/// Build one with [`Opcode::new`], one of the constants (`Opcode::RC_SEND_FIRST`, …)
/// or `Opcode::try_from(byte)`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Opcode(u8);

macro_rules! opcode_consts {
    ($($name:ident = $byte:literal;)*) => {
        impl Opcode {
            $(
                #[doc = concat!("`", stringify!($name), "` (", stringify!($byte), ").")]
                pub const $name: Opcode = Opcode::known($byte);
            )*
        }
    };
}

opcode_consts! {
    RC_SEND_FIRST = 0x00;
    RC_SEND_MIDDLE = 0x01;
    RC_SEND_LAST = 0x02;
    RC_SEND_LAST_WITH_IMMEDIATE = 0x03;
    RC_SEND_ONLY = 0x04;
    RC_SEND_ONLY_WITH_IMMEDIATE = 0x05;
    RC_RDMA_WRITE_FIRST = 0x06;
    RC_RDMA_WRITE_MIDDLE = 0x07;
    RC_RDMA_WRITE_LAST = 0x08;
    RC_RDMA_WRITE_LAST_WITH_IMMEDIATE = 0x09;
    RC_RDMA_WRITE_ONLY = 0x0a;
    RC_RDMA_WRITE_ONLY_WITH_IMMEDIATE = 0x0b;
    RC_RDMA_READ_REQUEST = 0x0c;
    RC_RDMA_READ_RESPONSE_FIRST = 0x0d;
    RC_RDMA_READ_RESPONSE_MIDDLE = 0x0e;
    RC_RDMA_READ_RESPONSE_LAST = 0x0f;
    RC_RDMA_READ_RESPONSE_ONLY = 0x10;
    RC_ACKNOWLEDGE = 0x11;
    RC_ATOMIC_ACKNOWLEDGE = 0x12;
    RC_COMPARE_SWAP = 0x13;
    RC_FETCH_ADD = 0x14;
    RC_SEND_LAST_WITH_INVALIDATE = 0x16;
    RC_SEND_ONLY_WITH_INVALIDATE = 0x17;
    UC_SEND_FIRST = 0x20;
    UC_SEND_MIDDLE = 0x21;
    UC_SEND_LAST = 0x22;
    UC_SEND_LAST_WITH_IMMEDIATE = 0x23;
    UC_SEND_ONLY = 0x24;
    UC_SEND_ONLY_WITH_IMMEDIATE = 0x25;
    UC_RDMA_WRITE_FIRST = 0x26;
    UC_RDMA_WRITE_MIDDLE = 0x27;
    UC_RDMA_WRITE_LAST = 0x28;
    UC_RDMA_WRITE_LAST_WITH_IMMEDIATE = 0x29;
    UC_RDMA_WRITE_ONLY = 0x2a;
    UC_RDMA_WRITE_ONLY_WITH_IMMEDIATE = 0x2b;
    UD_SEND_ONLY = 0x64;
    UD_SEND_ONLY_WITH_IMMEDIATE = 0x65;
}

impl Opcode {
    /// The opcode for a transport and an operation, if the transport has it.
    pub const fn new(transport: Transport, op: Op) -> Option<Opcode> {
        let byte = transport as u8 | op as u8;
        if OPCODE_PROPS[byte as usize] & F_VALID != 0 {
            Some(Opcode(byte))
        } else {
            None
        }
    }

    /// For the constants: fails the build if `byte` is not an opcode.
    const fn known(byte: u8) -> Opcode {
        assert!(OPCODE_PROPS[byte as usize] & F_VALID != 0);
        Opcode(byte)
    }

    /// Every opcode, in increasing byte order.
    pub fn all() -> impl Iterator<Item = Opcode> {
        (0..=u8::MAX).filter_map(|b| Opcode::try_from(b).ok())
    }

    /// The byte in the BTH.
    pub const fn to_u8(self) -> u8 {
        self.0
    }

    const fn props(self) -> u16 {
        OPCODE_PROPS[self.0 as usize]
    }

    /// The transport service (top 3 bits).
    pub const fn transport(self) -> Transport {
        match self.0 >> 5 {
            0 => Transport::Rc,
            1 => Transport::Uc,
            2 => Transport::Rd,
            _ => Transport::Ud,
        }
    }

    /// The operation (low 5 bits).
    pub const fn op(self) -> Op {
        match Op::from_bits(self.0 & 0x1f) {
            Some(op) => op,
            // Every `Opcode` holds a valid operation; this arm is never taken.
            None => Op::SendFirst,
        }
    }

    /// The extension headers it carries after the BTH.
    pub const fn headers(self) -> HeaderSet {
        // The low 8 bits of the properties are the header set.
        HeaderSet(self.props() as u8)
    }

    /// Bytes of the BTH and the extension headers.
    pub const fn header_len(self) -> usize {
        BTH_LEN + self.headers().len_bytes()
    }

    /// Whether it may carry payload (SENDs, WRITEs, READ responses). READ requests,
    /// ACKs and atomics carry none.
    pub const fn has_payload(self) -> bool {
        self.props() & F_PAYLOAD != 0
    }

    /// First packet of a message of several (`*_FIRST`).
    pub const fn is_first(self) -> bool {
        self.props() & (F_START | F_END) == F_START
    }

    /// Neither first nor last packet of a message (`*_MIDDLE`).
    pub const fn is_middle(self) -> bool {
        self.props() & (F_START | F_END) == 0
    }

    /// Last packet of a message of several (`*_LAST*`).
    pub const fn is_last(self) -> bool {
        self.props() & (F_START | F_END) == F_END
    }

    /// A message of one packet: `*_ONLY*`, READ requests, ACKs and atomics.
    pub const fn is_only(self) -> bool {
        self.props() & (F_START | F_END) == F_START | F_END
    }

    /// Whether a message starts with it (first or only).
    pub const fn starts_message(self) -> bool {
        self.props() & F_START != 0
    }

    /// Whether a message ends with it (last or only).
    pub const fn ends_message(self) -> bool {
        self.props() & F_END != 0
    }

    /// Sent by a requester: SENDs, WRITEs, READ requests, atomics.
    pub const fn is_request(self) -> bool {
        !self.is_response()
    }

    /// Sent by a responder: READ responses, ACKs, atomic ACKs.
    pub const fn is_response(self) -> bool {
        self.props() & F_RESPONSE != 0
    }
}

impl TryFrom<u8> for Opcode {
    type Error = WireError;

    fn try_from(byte: u8) -> Result<Opcode, WireError> {
        if OPCODE_PROPS[usize::from(byte)] & F_VALID != 0 {
            Ok(Opcode(byte))
        } else {
            Err(WireError::UnknownOpcode(byte))
        }
    }
}

impl From<Opcode> for u8 {
    fn from(op: Opcode) -> u8 {
        op.0
    }
}

impl fmt::Display for Opcode {
    /// The IB name, e.g. "RC RDMA_WRITE_FIRST".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.transport(), self.op())
    }
}

impl fmt::Debug for Opcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({:#04x})", self, self.0)
    }
}

/// The NAK codes of an AETH syndrome `0x60 | code`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum NakCode {
    /// PSN sequence error (0x60): the responder expected another PSN.
    PsnSequenceError = 0,
    /// Invalid request (0x61).
    InvalidRequest = 1,
    /// Remote access error (0x62): rkey, bounds or rights.
    RemoteAccessError = 2,
    /// Remote operational error (0x63).
    RemoteOperationalError = 3,
    /// Invalid RD request (0x64).
    InvalidRdRequest = 4,
}

/// The syndrome byte of an AETH.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Syndrome {
    /// ACK (`0x00 | credits`). `credits` is the 5-bit end-to-end credit count; rxe
    /// always sends 0x1f ("unlimited", [`Syndrome::ACK_UNLIMITED`]).
    Ack {
        /// Credit count, 0..=31.
        credits: u8,
    },
    /// Receiver not ready NAK (`0x20 | timer`): retry after the time the 5-bit
    /// `timer` encodes.
    RnrNak {
        /// The RNR timer code, 0..=31.
        timer: u8,
    },
    /// NAK (`0x60 | code`).
    Nak(NakCode),
}

impl Syndrome {
    /// The ACK rxe sends: unlimited credits (0x1f).
    pub const ACK_UNLIMITED: Syndrome = Syndrome::Ack { credits: 0x1f };

    /// The syndrome a byte encodes. Bit 7 set, the reserved type `0x40..=0x5f` and the
    /// reserved NAK codes `0x65..=0x7f` are errors.
    pub fn decode(byte: u8) -> Result<Syndrome, WireError> {
        let low = byte & 0x1f;
        match byte >> 5 {
            0 => Ok(Syndrome::Ack { credits: low }),
            1 => Ok(Syndrome::RnrNak { timer: low }),
            3 => Ok(Syndrome::Nak(match low {
                0 => NakCode::PsnSequenceError,
                1 => NakCode::InvalidRequest,
                2 => NakCode::RemoteAccessError,
                3 => NakCode::RemoteOperationalError,
                4 => NakCode::InvalidRdRequest,
                _ => return Err(WireError::ReservedSyndrome(byte)),
            })),
            _ => Err(WireError::ReservedSyndrome(byte)),
        }
    }

    /// The syndrome byte; an error when the credit count or RNR timer does not fit in 5
    /// bits.
    pub fn encode(self) -> Result<u8, WireError> {
        match self {
            Syndrome::Ack { credits } => {
                Ok(check_bits("AETH ACK credit count", credits.into(), 5)? as u8)
            }
            Syndrome::RnrNak { timer } => {
                Ok(0x20 | check_bits("AETH RNR NAK timer", timer.into(), 5)? as u8)
            }
            Syndrome::Nak(code) => Ok(0x60 | code as u8),
        }
    }
}

impl fmt::Display for Syndrome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Syndrome::Ack { credits } => write!(f, "ACK (credits {credits})"),
            Syndrome::RnrNak { timer } => write!(f, "RNR NAK (timer {timer})"),
            Syndrome::Nak(NakCode::PsnSequenceError) => f.write_str("NAK PSN sequence error"),
            Syndrome::Nak(NakCode::InvalidRequest) => f.write_str("NAK invalid request"),
            Syndrome::Nak(NakCode::RemoteAccessError) => f.write_str("NAK remote access error"),
            Syndrome::Nak(NakCode::RemoteOperationalError) => {
                f.write_str("NAK remote operational error")
            }
            Syndrome::Nak(NakCode::InvalidRdRequest) => f.write_str("NAK invalid RD request"),
        }
    }
}

/// The base transport header, present in every packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Bth {
    /// What the packet is.
    pub opcode: Opcode,
    /// SE: the receiver should raise a solicited event.
    pub solicited: bool,
    /// MigReq: path migration state.
    pub mig_req: bool,
    /// PadCnt: bytes of pad before the ICRC, 0..=3. [`encode`] ignores it and writes the
    /// pad the payload needs; [`decode`] returns what the packet says.
    pub pad_count: u8,
    /// Partition key (rxe uses the default, 0xffff).
    pub pkey: u16,
    /// FECN: forward congestion notification. The ICRC does not cover it.
    pub fecn: bool,
    /// BECN: backward congestion notification. The ICRC does not cover it.
    pub becn: bool,
    /// Destination QP, 24 bits.
    pub dest_qp: u32,
    /// AckReq: the responder should acknowledge this packet.
    pub ack_req: bool,
    /// Packet sequence number, 24 bits.
    pub psn: u32,
}

impl Bth {
    /// A BTH with the default P_Key (0xffff) and every flag clear.
    pub fn new(opcode: Opcode, dest_qp: u32, psn: u32) -> Bth {
        Bth {
            opcode,
            solicited: false,
            mig_req: false,
            pad_count: 0,
            pkey: 0xffff,
            fecn: false,
            becn: false,
            dest_qp,
            ack_req: false,
            psn,
        }
    }
}

/// RDMA extended transport header: the remote buffer of a WRITE or READ.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Reth {
    /// Remote virtual address.
    pub va: u64,
    /// Remote key.
    pub rkey: u32,
    /// Length of the whole message in bytes.
    pub dma_len: u32,
}

/// Atomic extended transport header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AtomicEth {
    /// Remote virtual address (8-byte aligned for the operation to be valid).
    pub va: u64,
    /// Remote key.
    pub rkey: u32,
    /// Swap value (compare and swap) or addend (fetch and add).
    pub swap_add: u64,
    /// Compare value (compare and swap).
    pub compare: u64,
}

/// ACK extended transport header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Aeth {
    /// ACK, RNR NAK or NAK.
    pub syndrome: Syndrome,
    /// Message sequence number, 24 bits.
    pub msn: u32,
}

/// Datagram extended transport header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Deth {
    /// Queue key.
    pub qkey: u32,
    /// Source QP, 24 bits.
    pub src_qp: u32,
}

/// The headers of a packet: the BTH and each extension header, present exactly when the
/// opcode carries it ([`Opcode::headers`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Headers {
    /// Base transport header.
    pub bth: Bth,
    /// RDETH: the EE context (24 bits), RD only.
    pub rdeth: Option<u32>,
    /// DETH: UD and RD requests.
    pub deth: Option<Deth>,
    /// RETH: WRITE_FIRST, WRITE_ONLY*, READ_REQUEST.
    pub reth: Option<Reth>,
    /// AtomicETH: COMPARE_SWAP, FETCH_ADD.
    pub atomic: Option<AtomicEth>,
    /// AETH: READ_RESPONSE_FIRST/LAST/ONLY, ACKNOWLEDGE, ATOMIC_ACKNOWLEDGE.
    pub aeth: Option<Aeth>,
    /// AtomicAckETH: the original value, ATOMIC_ACKNOWLEDGE.
    pub atomic_ack: Option<u64>,
    /// Immediate data (`*_WITH_IMMEDIATE`). It is opaque bytes, a `__be32` in C: the
    /// wire bytes are `imm.to_ne_bytes()`, the same convention as `imm_data` in the
    /// NIC's work-queue and completion entries, so the value passes through unchanged.
    pub imm: Option<u32>,
    /// IETH: the rkey to invalidate (`SEND_*_WITH_INVALIDATE`).
    pub ieth: Option<u32>,
}

impl Headers {
    /// Headers with only a BTH.
    pub fn new(bth: Bth) -> Headers {
        Headers {
            bth,
            rdeth: None,
            deth: None,
            reth: None,
            atomic: None,
            aeth: None,
            atomic_ack: None,
            imm: None,
            ieth: None,
        }
    }

    /// Whether extension header `h` is present.
    pub fn has(&self, h: Header) -> bool {
        match h {
            Header::Rdeth => self.rdeth.is_some(),
            Header::Deth => self.deth.is_some(),
            Header::Reth => self.reth.is_some(),
            Header::AtomicEth => self.atomic.is_some(),
            Header::Aeth => self.aeth.is_some(),
            Header::AtomicAckEth => self.atomic_ack.is_some(),
            Header::ImmDt => self.imm.is_some(),
            Header::Ieth => self.ieth.is_some(),
        }
    }
}

/// A decoded packet: its headers and its payload (without the pad).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet<'a> {
    /// The headers.
    pub headers: Headers,
    /// The payload, borrowed from the packet.
    pub payload: &'a [u8],
}

/// Why headers cannot be encoded, or bytes are not a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// A field holds a value wider than its bits on the wire.
    #[error("{field} {value:#x} does not fit in {bits} bits")]
    FieldOverflow {
        /// Which field.
        field: &'static str,
        /// Its value.
        value: u64,
        /// Its width on the wire.
        bits: u32,
    },
    /// The computed ICRC is not the one at the end of the packet.
    #[error("ICRC mismatch: computed {expected:#010x}, the packet carries {found:#010x}")]
    Icrc {
        /// The ICRC of the packet's contents.
        expected: u32,
        /// The ICRC in the packet.
        found: u32,
    },
    /// An IP datagram that [`icrc_of_datagram`] cannot read.
    #[error("not a RoCEv2 IP datagram: {0}")]
    MalformedDatagram(&'static str),
    /// The headers lack an extension header that the opcode carries.
    #[error("{opcode} carries a {header}, but the headers have none")]
    MissingHeader {
        /// The opcode.
        opcode: Opcode,
        /// The missing header.
        header: Header,
    },
    /// The pad count is larger than the bytes between the headers and the ICRC.
    #[error("BTH pad count {pad} is more than the {room} bytes between the headers and the ICRC")]
    PadTooLong {
        /// The BTH pad count.
        pad: u8,
        /// Bytes between the headers and the ICRC.
        room: usize,
    },
    /// Payload for an opcode that carries none.
    #[error("{opcode} carries no payload, but there are {len} bytes of it")]
    PayloadNotAllowed {
        /// The opcode.
        opcode: Opcode,
        /// Bytes of payload (and pad, when decoding).
        len: usize,
    },
    /// An AETH syndrome the IB specification reserves.
    #[error("AETH syndrome {0:#04x} is reserved")]
    ReservedSyndrome(u8),
    /// Fewer bytes than a BTH.
    #[error("packet of {len} bytes is shorter than its 12-byte BTH")]
    ShorterThanBth {
        /// Bytes of the packet.
        len: usize,
    },
    /// Fewer bytes than the opcode's headers and the ICRC.
    #[error(
        "packet of {len} bytes is shorter than the {needed} bytes of the headers and ICRC of {opcode}"
    )]
    ShorterThanHeaders {
        /// Bytes of the packet.
        len: usize,
        /// The opcode.
        opcode: Opcode,
        /// Bytes of its headers and the ICRC.
        needed: usize,
    },
    /// A packet too long for the UDP length (and the IPv4 total length) to hold.
    #[error("packet of {len} bytes does not fit in a UDP datagram, which holds at most {max}")]
    TooLong {
        /// Bytes of the packet.
        len: usize,
        /// The most the endpoints' datagram holds.
        max: usize,
    },
    /// A BTH transport header version other than 0.
    #[error("BTH transport header version {0} is not 0")]
    TransportVersion(u8),
    /// The headers have an extension header that the opcode does not carry.
    #[error("{opcode} carries no {header}, but the headers have one")]
    UnexpectedHeader {
        /// The opcode.
        opcode: Opcode,
        /// The extra header.
        header: Header,
    },
    /// A packet whose length is not a multiple of 4 bytes (headers, payload with its pad,
    /// and the ICRC all are).
    #[error("packet of {0} bytes is not a multiple of 4 bytes long")]
    Unaligned(usize),
    /// An opcode byte that is not one of the known opcodes.
    #[error("unknown BTH opcode {0:#04x}")]
    UnknownOpcode(u8),
}

/// `value` if it fits in `bits` bits, else [`WireError::FieldOverflow`].
fn check_bits(field: &'static str, value: u64, bits: u32) -> Result<u64, WireError> {
    if value >> bits == 0 {
        Ok(value)
    } else {
        Err(WireError::FieldOverflow { field, value, bits })
    }
}

fn check_24(field: &'static str, value: u32) -> Result<u32, WireError> {
    if value & !0x00ff_ffff == 0 {
        Ok(value)
    } else {
        Err(WireError::FieldOverflow {
            field,
            value: value.into(),
            bits: 24,
        })
    }
}

/// Writes the packet of `h` and `payload` into `out`, which it clears first: the
/// headers, the payload, the pad (zeros) and the ICRC for `ep`.
///
/// The BTH's pad count is the one the payload needs, whatever `h.bth.pad_count` says.
/// It fails, leaving `out` empty, when the extension headers present are not exactly
/// those of the opcode, a field is too wide (PSN, QPNs, MSN, EE context: 24 bits; ACK
/// credits and RNR timer: 5 bits), the opcode carries no payload but `payload` is not
/// empty, or the packet is too long for a UDP datagram. It allocates only when `out`
/// has less capacity than the packet needs.
pub fn encode(
    h: &Headers,
    payload: &[u8],
    ep: &Endpoints,
    out: &mut Vec<u8>,
) -> Result<(), WireError> {
    encode_with(h, payload.len(), ep, out, |dst| {
        dst.copy_from_slice(payload);
        Ok(())
    })
}

/// [`encode`] with the payload written in place: `fill` gets the packet's payload
/// bytes (`payload_len` of them, zeroed) to write, so a NIC can DMA a payload straight
/// into the frame. An error of `fill` leaves `out` empty and is returned.
pub fn encode_with<E: From<WireError>>(
    h: &Headers,
    payload_len: usize,
    ep: &Endpoints,
    out: &mut Vec<u8>,
    fill: impl FnOnce(&mut [u8]) -> Result<(), E>,
) -> Result<(), E> {
    out.clear();
    let opcode = h.bth.opcode;
    let required = opcode.headers();
    for header in Header::ALL {
        match (required.contains(header), h.has(header)) {
            (true, false) => return Err(WireError::MissingHeader { opcode, header }.into()),
            (false, true) => return Err(WireError::UnexpectedHeader { opcode, header }.into()),
            _ => {}
        }
    }
    if !opcode.has_payload() && payload_len != 0 {
        return Err(WireError::PayloadNotAllowed {
            opcode,
            len: payload_len,
        }
        .into());
    }
    let dest_qp = check_24("BTH DestQP", h.bth.dest_qp)?;
    let psn = check_24("BTH PSN", h.bth.psn)?;
    let aeth = match h.aeth {
        Some(a) => Some(u32::from(a.syndrome.encode()?) << 24 | check_24("AETH MSN", a.msn)?),
        None => None,
    };
    if let Some(d) = h.deth {
        check_24("DETH source QP", d.src_qp)?;
    }
    if let Some(ee) = h.rdeth {
        check_24("RDETH EE context", ee)?;
    }
    let pad = payload_len.wrapping_neg() & 3;
    let len = opcode.header_len() + payload_len + pad + ICRC_LEN;
    if len > ep.max_packet_len() {
        return Err(WireError::TooLong {
            len,
            max: ep.max_packet_len(),
        }
        .into());
    }

    out.reserve(len);
    let b = &h.bth;
    let mut flags = (pad as u8) << BTH_PAD_SHIFT;
    if b.solicited {
        flags |= BTH_SE;
    }
    if b.mig_req {
        flags |= BTH_MIG;
    }
    let mut qp_word = dest_qp;
    if b.fecn {
        qp_word |= BTH_FECN;
    }
    if b.becn {
        qp_word |= BTH_BECN;
    }
    let psn_word = if b.ack_req { psn | BTH_ACK_REQ } else { psn };
    out.push(opcode.0);
    out.push(flags);
    out.extend_from_slice(&b.pkey.to_be_bytes());
    out.extend_from_slice(&qp_word.to_be_bytes());
    out.extend_from_slice(&psn_word.to_be_bytes());
    // Extension headers in wire order; exactly the opcode's are present (checked above).
    if let Some(ee) = h.rdeth {
        out.extend_from_slice(&ee.to_be_bytes());
    }
    if let Some(d) = h.deth {
        out.extend_from_slice(&d.qkey.to_be_bytes());
        out.extend_from_slice(&d.src_qp.to_be_bytes());
    }
    if let Some(r) = h.reth {
        out.extend_from_slice(&r.va.to_be_bytes());
        out.extend_from_slice(&r.rkey.to_be_bytes());
        out.extend_from_slice(&r.dma_len.to_be_bytes());
    }
    if let Some(a) = h.atomic {
        out.extend_from_slice(&a.va.to_be_bytes());
        out.extend_from_slice(&a.rkey.to_be_bytes());
        out.extend_from_slice(&a.swap_add.to_be_bytes());
        out.extend_from_slice(&a.compare.to_be_bytes());
    }
    if let Some(word) = aeth {
        out.extend_from_slice(&word.to_be_bytes());
    }
    if let Some(orig) = h.atomic_ack {
        out.extend_from_slice(&orig.to_be_bytes());
    }
    if let Some(imm) = h.imm {
        out.extend_from_slice(&imm.to_ne_bytes());
    }
    if let Some(rkey) = h.ieth {
        out.extend_from_slice(&rkey.to_be_bytes());
    }
    let at = out.len();
    out.resize(at + payload_len + pad, 0);
    if let Err(e) = fill(&mut out[at..at + payload_len]) {
        out.clear();
        return Err(e);
    }
    let crc = icrc_unchecked(out, ep);
    out.extend_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// Reads fixed-size fields from the front of a byte slice.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    /// The next `N` bytes, or zeros past the end. [`decode`] has checked the length
    /// before it reads, so it never reads past the end.
    fn take<const N: usize>(&mut self) -> [u8; N] {
        match self.0.split_first_chunk::<N>() {
            Some((head, rest)) => {
                self.0 = rest;
                *head
            }
            None => [0; N],
        }
    }

    fn u32(&mut self) -> u32 {
        u32::from_be_bytes(self.take())
    }

    fn u64(&mut self) -> u64 {
        u64::from_be_bytes(self.take())
    }
}

/// Reads a packet: its headers, which are those of its opcode, and its payload.
///
/// It checks, in order: that the packet holds a BTH, a known opcode and transport header
/// version 0, that it holds the opcode's headers and the ICRC, that its length is a
/// multiple of 4 and fits a UDP datagram, that the pad count fits and that an opcode
/// without payload has none; then the ICRC for `ep` (the sender's view, as given to
/// [`encode`]); then the AETH syndrome. Reserved BTH and DETH bits are ignored.
pub fn decode<'a>(pkt: &'a [u8], ep: &Endpoints) -> Result<Packet<'a>, WireError> {
    let len = pkt.len();
    let Some((bth, _)) = pkt.split_first_chunk::<BTH_LEN>() else {
        return Err(WireError::ShorterThanBth { len });
    };
    let opcode = Opcode::try_from(bth[0])?;
    let flags = bth[1];
    let tver = flags & BTH_TVER_MASK;
    if tver != 0 {
        return Err(WireError::TransportVersion(tver));
    }
    let header_len = opcode.header_len();
    let needed = header_len + ICRC_LEN;
    if len < needed {
        return Err(WireError::ShorterThanHeaders {
            len,
            opcode,
            needed,
        });
    }
    if !len.is_multiple_of(4) {
        return Err(WireError::Unaligned(len));
    }
    if len > ep.max_packet_len() {
        return Err(WireError::TooLong {
            len,
            max: ep.max_packet_len(),
        });
    }
    let pad = (flags & BTH_PAD_MASK) >> BTH_PAD_SHIFT;
    let room = len - needed;
    if usize::from(pad) > room {
        return Err(WireError::PadTooLong { pad, room });
    }
    if !opcode.has_payload() && room != 0 {
        return Err(WireError::PayloadNotAllowed { opcode, len: room });
    }
    let (body, icrc_bytes) = pkt.split_at(len - ICRC_LEN);
    let mut found = [0; ICRC_LEN];
    found.copy_from_slice(icrc_bytes);
    let found = u32::from_le_bytes(found);
    let expected = icrc_unchecked(body, ep);
    if expected != found {
        return Err(WireError::Icrc { expected, found });
    }

    let mut r = Reader(pkt);
    let _ = r.take::<2>();
    let pkey = u16::from_be_bytes(r.take());
    let qp_word = r.u32();
    let psn_word = r.u32();
    let mut h = Headers::new(Bth {
        opcode,
        solicited: flags & BTH_SE != 0,
        mig_req: flags & BTH_MIG != 0,
        pad_count: pad,
        pkey,
        fecn: qp_word & BTH_FECN != 0,
        becn: qp_word & BTH_BECN != 0,
        dest_qp: qp_word & QPN_MASK,
        ack_req: psn_word & BTH_ACK_REQ != 0,
        psn: psn_word & PSN_MASK,
    });
    let headers = opcode.headers();
    if headers.contains(Header::Rdeth) {
        h.rdeth = Some(r.u32() & 0x00ff_ffff);
    }
    if headers.contains(Header::Deth) {
        h.deth = Some(Deth {
            qkey: r.u32(),
            src_qp: r.u32() & QPN_MASK,
        });
    }
    if headers.contains(Header::Reth) {
        h.reth = Some(Reth {
            va: r.u64(),
            rkey: r.u32(),
            dma_len: r.u32(),
        });
    }
    if headers.contains(Header::AtomicEth) {
        h.atomic = Some(AtomicEth {
            va: r.u64(),
            rkey: r.u32(),
            swap_add: r.u64(),
            compare: r.u64(),
        });
    }
    if headers.contains(Header::Aeth) {
        let word = r.u32();
        h.aeth = Some(Aeth {
            syndrome: Syndrome::decode(word.to_be_bytes()[0])?,
            msn: word & 0x00ff_ffff,
        });
    }
    if headers.contains(Header::AtomicAckEth) {
        h.atomic_ack = Some(r.u64());
    }
    if headers.contains(Header::ImmDt) {
        h.imm = Some(u32::from_ne_bytes(r.take()));
    }
    if headers.contains(Header::Ieth) {
        h.ieth = Some(r.u32());
    }
    let payload_end = len - ICRC_LEN - usize::from(pad);
    Ok(Packet {
        headers: h,
        payload: pkt.get(header_len..payload_end).unwrap_or_default(),
    })
}

/// The ICRC of a packet whose bytes up to (not including) the ICRC are `body`, carried
/// between `ep`'s endpoints.
///
/// The value is the one rxe computes and stores (`rxe_icrc.c`: `*icrcp = ~icrc`, a
/// `u32` written in CPU byte order through a `__be32` pointer). On the little-endian
/// hosts rxe runs on, the 4 wire bytes are therefore `value.to_le_bytes()`, which is
/// what [`encode`] writes and [`decode`] reads; it is also the byte order of the
/// Ethernet FCS for the same CRC, and the order a ConnectX-4 Lx uses (see the
/// known-answer test with its capture in `tests/wire.rs`).
///
/// In `crc32fast` terms: the value is `crc32fast::hash` of `[0xff; 8]` followed by the
/// masked IP, UDP and BTH headers and the rest of `body`; or, without the 8 bytes, a
/// `Hasher::new_with_initial(!0xdebb20e3)` over the same bytes, since `crc32fast` holds
/// the NOT of its register and rxe's register starts at `0xdebb20e3`.
///
/// Fails when `body` is shorter than a BTH or the packet would not fit in a UDP
/// datagram.
pub fn icrc(body: &[u8], ep: &Endpoints) -> Result<u32, WireError> {
    if body.len() < BTH_LEN {
        return Err(WireError::ShorterThanBth { len: body.len() });
    }
    let len = body.len() + ICRC_LEN;
    if len > ep.max_packet_len() {
        return Err(WireError::TooLong {
            len,
            max: ep.max_packet_len(),
        });
    }
    Ok(icrc_unchecked(body, ep))
}

/// [`icrc`], for a `body` of at least [`BTH_LEN`] bytes and a length that fits.
fn icrc_unchecked(body: &[u8], ep: &Endpoints) -> u32 {
    // The masked IP header, UDP header and BTH; at most 40 + 8 + 12 bytes.
    let mut pseudo = [0xff_u8; IPV6_HEADER_LEN + UDP_HEADER_LEN + BTH_LEN];
    // Both fit in 16 bits: the callers have checked `max_packet_len`.
    let udp_len = (UDP_HEADER_LEN + body.len() + ICRC_LEN) as u16;
    let ip_len = if ep.is_ipv4() {
        // Version 4, IHL 5; TOS masked; total length; ID 0 (Linux picks one per packet;
        // the synthesized header fixes it); DF, as rxe sets it; TTL masked; UDP;
        // checksum masked; the addresses.
        pseudo[0] = 0x45;
        pseudo[2..4].copy_from_slice(&(udp_len + IPV4_HEADER_LEN as u16).to_be_bytes());
        pseudo[4..8].copy_from_slice(&[0x00, 0x00, 0x40, 0x00]);
        pseudo[9] = IPPROTO_UDP;
        pseudo[12..16].copy_from_slice(&ep.sgid[12..]);
        pseudo[16..20].copy_from_slice(&ep.dgid[12..]);
        IPV4_HEADER_LEN
    } else {
        // Version 6 with traffic class and flow label masked; payload length; UDP; hop
        // limit masked; the addresses.
        pseudo[0] = 0x6f;
        pseudo[4..6].copy_from_slice(&udp_len.to_be_bytes());
        pseudo[6] = IPPROTO_UDP;
        pseudo[8..24].copy_from_slice(&ep.sgid);
        pseudo[24..40].copy_from_slice(&ep.dgid);
        IPV6_HEADER_LEN
    };
    let udp = &mut pseudo[ip_len..ip_len + UDP_HEADER_LEN];
    udp[0..2].copy_from_slice(&ep.udp_sport.to_be_bytes());
    udp[2..4].copy_from_slice(&ROCE_V2_UDP_DPORT.to_be_bytes());
    udp[4..6].copy_from_slice(&udp_len.to_be_bytes());
    // udp[6..8], the checksum, stays 0xffff.
    crc_over(&mut pseudo, ip_len + UDP_HEADER_LEN, body)
}

/// Copies the BTH of `body` after the `at` bytes of network headers in `pseudo`, masks
/// its `resv8a`, and returns the ICRC over `pseudo[..at + 12]` and the rest of `body`.
fn crc_over(
    pseudo: &mut [u8; IPV6_HEADER_LEN + UDP_HEADER_LEN + BTH_LEN],
    at: usize,
    body: &[u8],
) -> u32 {
    let (bth, rest) = body.split_at(BTH_LEN.min(body.len()));
    let end = at + bth.len();
    pseudo[at..end].copy_from_slice(bth);
    if let Some(resv8a) = pseudo.get_mut(at + BTH_RESV8A) {
        *resv8a = 0xff;
    }
    let mut hasher = crc32fast::Hasher::new_with_initial(CRC32FAST_INIT);
    hasher.update(&pseudo[..end]);
    hasher.update(rest);
    hasher.finalize()
}

/// The ICRC of the RoCEv2 packet in an IP datagram as it was on the network: an IPv4
/// header of 20 bytes (no options) or an IPv6 header of 40 (no extension headers), a
/// UDP header, and the packet with its ICRC (whose value is ignored). Compare the
/// result with the last 4 bytes read as little-endian (see [`icrc`]).
///
/// The IP and UDP headers are taken as they are, with only the fields the ICRC masks
/// replaced, so this verifies packets of real stacks (whose IPv4 ID the synthesized
/// headers of [`encode`] cannot know).
pub fn icrc_of_datagram(datagram: &[u8]) -> Result<u32, WireError> {
    let mut pseudo = [0xff_u8; IPV6_HEADER_LEN + UDP_HEADER_LEN + BTH_LEN];
    let ip_len = match datagram.first().map(|b| b >> 4) {
        Some(4) => {
            if datagram[0] & 0x0f != 5 {
                return Err(WireError::MalformedDatagram(
                    "the IPv4 header has options (IHL is not 5)",
                ));
            }
            IPV4_HEADER_LEN
        }
        Some(6) => IPV6_HEADER_LEN,
        _ => {
            return Err(WireError::MalformedDatagram(
                "the IP version is neither 4 nor 6",
            ));
        }
    };
    let at = ip_len + UDP_HEADER_LEN;
    if datagram.len() < at + BTH_LEN + ICRC_LEN {
        return Err(WireError::MalformedDatagram(
            "it is too short for IP, UDP, BTH and ICRC",
        ));
    }
    pseudo[..at].copy_from_slice(&datagram[..at]);
    if ip_len == IPV4_HEADER_LEN {
        pseudo[1] = 0xff; // TOS
        pseudo[8] = 0xff; // TTL
        pseudo[10..12].fill(0xff); // header checksum
        if pseudo[9] != IPPROTO_UDP {
            return Err(WireError::MalformedDatagram("the IPv4 protocol is not UDP"));
        }
    } else {
        pseudo[0] |= 0x0f; // traffic class, high nibble
        pseudo[1..4].fill(0xff); // traffic class, low nibble, and flow label
        pseudo[7] = 0xff; // hop limit
        if pseudo[6] != IPPROTO_UDP {
            return Err(WireError::MalformedDatagram(
                "the IPv6 next header is not UDP",
            ));
        }
    }
    pseudo[at - 2..at].fill(0xff); // UDP checksum
    let body = &datagram[at..datagram.len() - ICRC_LEN];
    Ok(crc_over(&mut pseudo, at, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opcode_table_matches_rxe_counts() {
        let count = |t: Transport| Opcode::all().filter(|o| o.transport() == t).count();
        assert_eq!(count(Transport::Rc), 23);
        assert_eq!(count(Transport::Uc), 12);
        assert_eq!(count(Transport::Rd), 21);
        assert_eq!(count(Transport::Ud), 2);
    }

    #[test]
    fn max_header_len_is_the_longest_opcode() {
        let longest = Opcode::all().map(Opcode::header_len).max();
        assert_eq!(longest, Some(MAX_HEADER_LEN));
    }

    #[test]
    fn crc32fast_init_is_the_not_of_the_rxe_seed() {
        // rxe's register after the 8 bytes of 0xff, continued over nothing, is what rxe
        // would send for an empty rest: the NOT of the seed.
        let h = crc32fast::Hasher::new_with_initial(CRC32FAST_INIT);
        assert_eq!(h.finalize(), !RXE_ICRC_SEED);
        assert_eq!(crc32fast::hash(&[0xff; 8]), !RXE_ICRC_SEED);
    }
}
