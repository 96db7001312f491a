//! Tests of the RoCEv2 packet layer: round trips, corruption, every error, the ICRC
//! against a bitwise CRC-32 and against captured packets, PSN arithmetic.

use proptest::prelude::*;
use sagrada_hw_rnic::wire::{
    Aeth, AtomicEth, BTH_LEN, Bth, Deth, Endpoints, Header, Headers, ICRC_LEN, NakCode, Op, Opcode,
    PSN_MASK, ROCE_V2_UDP_DPORT, Reth, Syndrome, Transport, WireError, decode, encode, icrc,
    icrc_of_datagram, psn_add, psn_diff, udp_sport_for_qpn,
};

// ---------------------------------------------------------------------------------------
// Helpers

fn v4(a: [u8; 4]) -> [u8; 16] {
    let mut gid = [0; 16];
    gid[10] = 0xff;
    gid[11] = 0xff;
    gid[12..].copy_from_slice(&a);
    gid
}

fn ep_v4() -> Endpoints {
    Endpoints {
        sgid: v4([10, 0, 0, 1]),
        dgid: v4([10, 0, 0, 2]),
        udp_sport: udp_sport_for_qpn(0x11),
    }
}

fn ep_v6() -> Endpoints {
    let mut sgid = [0; 16];
    sgid[0] = 0xfe;
    sgid[1] = 0x80;
    sgid[15] = 1;
    let mut dgid = sgid;
    dgid[15] = 2;
    Endpoints {
        sgid,
        dgid,
        udp_sport: 0xc123,
    }
}

/// Headers for `opcode` with every header it needs, filled with fixed values.
fn headers_for(opcode: Opcode) -> Headers {
    let mut h = Headers::new(Bth::new(opcode, 0x12, 0x345));
    let need = opcode.headers();
    if need.contains(Header::Rdeth) {
        h.rdeth = Some(7);
    }
    if need.contains(Header::Deth) {
        h.deth = Some(Deth {
            qkey: 0x1111_1111,
            src_qp: 0x22,
        });
    }
    if need.contains(Header::Reth) {
        h.reth = Some(Reth {
            va: 0x1000,
            rkey: 0x33,
            dma_len: 64,
        });
    }
    if need.contains(Header::AtomicEth) {
        h.atomic = Some(AtomicEth {
            va: 0x2000,
            rkey: 0x44,
            swap_add: 1,
            compare: 2,
        });
    }
    if need.contains(Header::Aeth) {
        h.aeth = Some(Aeth {
            syndrome: Syndrome::ACK_UNLIMITED,
            msn: 5,
        });
    }
    if need.contains(Header::AtomicAckEth) {
        h.atomic_ack = Some(9);
    }
    if need.contains(Header::ImmDt) {
        h.imm = Some(0xdead_beef);
    }
    if need.contains(Header::Ieth) {
        h.ieth = Some(0x55);
    }
    h
}

fn pad_for(len: usize) -> u8 {
    (len.wrapping_neg() & 3) as u8
}

fn encoded(h: &Headers, payload: &[u8], ep: &Endpoints) -> Vec<u8> {
    let mut out = Vec::new();
    encode(h, payload, ep, &mut out).expect("encode");
    out
}

/// Replaces the last 4 bytes of `pkt` with the ICRC of the rest, for crafting packets
/// that get past the ICRC check to a later one.
fn reseal(pkt: &mut [u8], ep: &Endpoints) {
    let n = pkt.len() - ICRC_LEN;
    let crc = icrc(&pkt[..n], ep).expect("icrc");
    pkt[n..].copy_from_slice(&crc.to_le_bytes());
}

/// Linux `crc32_le` done one bit at a time: the reflected CRC-32 of the Ethernet
/// polynomial (0x04c11db7, reflected 0xedb88320), without inverting the register on
/// entry or on exit. This is the reference the ICRC is checked against.
fn crc32_le_bitwise(mut crc: u32, data: &[u8]) -> u32 {
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    crc
}

/// The ICRC as rxe computes it (`rxe_icrc.c`), from the bitwise reference: register
/// seeded with 0xdebb20e3, the masked headers and the rest, then NOT.
fn rxe_icrc_reference(masked_ip_udp: &[u8], body: &[u8]) -> u32 {
    let mut bth = [0; BTH_LEN];
    bth.copy_from_slice(&body[..BTH_LEN]);
    bth[4] = 0xff; // resv8a
    let mut crc = crc32_le_bitwise(0xdebb_20e3, masked_ip_udp);
    crc = crc32_le_bitwise(crc, &bth);
    crc = crc32_le_bitwise(crc, &body[BTH_LEN..]);
    !crc
}

// ---------------------------------------------------------------------------------------
// Strategies

fn arb_syndrome() -> impl Strategy<Value = Syndrome> {
    prop_oneof![
        (0..=31u8).prop_map(|credits| Syndrome::Ack { credits }),
        (0..=31u8).prop_map(|timer| Syndrome::RnrNak { timer }),
        prop::sample::select(vec![
            NakCode::PsnSequenceError,
            NakCode::InvalidRequest,
            NakCode::RemoteAccessError,
            NakCode::RemoteOperationalError,
            NakCode::InvalidRdRequest,
        ])
        .prop_map(Syndrome::Nak),
    ]
}

fn arb_bth(opcode: Opcode) -> impl Strategy<Value = Bth> {
    (
        any::<[bool; 6]>(),
        0..=3u8,
        any::<u16>(),
        0..=PSN_MASK,
        0..=PSN_MASK,
    )
        .prop_map(move |(f, pad_count, pkey, dest_qp, psn)| Bth {
            opcode,
            solicited: f[0],
            mig_req: f[1],
            pad_count,
            pkey,
            fecn: f[2],
            becn: f[3],
            dest_qp,
            ack_req: f[4],
            psn,
        })
}

/// Headers for `opcode` with random values in every header it carries (and in none
/// other).
fn arb_headers(opcode: Opcode) -> impl Strategy<Value = Headers> {
    let need = opcode.headers();
    let opt = move |h: Header| need.contains(h);
    (
        arb_bth(opcode),
        (0..=0x00ff_ffffu32, any::<u32>(), 0..=0x00ff_ffffu32),
        (any::<u64>(), any::<u32>(), any::<u32>()),
        (any::<u64>(), any::<u32>(), any::<u64>(), any::<u64>()),
        (arb_syndrome(), 0..=0x00ff_ffffu32),
        (any::<u64>(), any::<u32>(), any::<u32>()),
    )
        .prop_map(move |(bth, rd, reth, atomic, aeth, rest)| Headers {
            bth,
            rdeth: opt(Header::Rdeth).then_some(rd.0),
            deth: opt(Header::Deth).then_some(Deth {
                qkey: rd.1,
                src_qp: rd.2,
            }),
            reth: opt(Header::Reth).then_some(Reth {
                va: reth.0,
                rkey: reth.1,
                dma_len: reth.2,
            }),
            atomic: opt(Header::AtomicEth).then_some(AtomicEth {
                va: atomic.0,
                rkey: atomic.1,
                swap_add: atomic.2,
                compare: atomic.3,
            }),
            aeth: opt(Header::Aeth).then_some(Aeth {
                syndrome: aeth.0,
                msn: aeth.1,
            }),
            atomic_ack: opt(Header::AtomicAckEth).then_some(rest.0),
            imm: opt(Header::ImmDt).then_some(rest.1),
            ieth: opt(Header::Ieth).then_some(rest.2),
        })
}

/// Deterministic pseudo-random bytes (xorshift), cheaper to generate than a
/// `Vec<u8>` strategy of 4096 elements.
fn bytes(len: usize, mut seed: u64) -> Vec<u8> {
    seed |= 1;
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect()
}

fn arb_packet(max_payload: usize) -> impl Strategy<Value = (Headers, Vec<u8>)> {
    prop::sample::select(Opcode::all().collect::<Vec<_>>()).prop_flat_map(move |opcode| {
        let max = if opcode.has_payload() { max_payload } else { 0 };
        (arb_headers(opcode), 0..=max, any::<u64>())
            .prop_map(|(h, len, seed)| (h, bytes(len, seed)))
    })
}

fn arb_endpoints() -> impl Strategy<Value = Endpoints> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<[u8; 4]>(), any::<u16>()).prop_map(|(s, d, udp_sport)| {
            Endpoints {
                sgid: v4(s),
                dgid: v4(d),
                udp_sport,
            }
        }),
        (any::<[u8; 16]>(), any::<[u8; 16]>(), any::<u16>()).prop_map(|(sgid, dgid, udp_sport)| {
            Endpoints {
                sgid,
                dgid,
                udp_sport,
            }
        }),
    ]
}

// ---------------------------------------------------------------------------------------
// Round trips and robustness

proptest! {
    #[test]
    fn decode_inverts_encode_for_every_opcode(
        (h, payload) in arb_packet(4096),
        ep in arb_endpoints(),
    ) {
        let mut out = Vec::new();
        encode(&h, &payload, &ep, &mut out).unwrap();
        prop_assert_eq!(out.len() % 4, 0);
        prop_assert_eq!(
            out.len(),
            h.bth.opcode.header_len() + payload.len() + usize::from(pad_for(payload.len())) + ICRC_LEN
        );

        let p = decode(&out, &ep).unwrap();

        let mut expected = h;
        expected.bth.pad_count = pad_for(payload.len());
        prop_assert_eq!(p.headers, expected);
        prop_assert_eq!(p.payload, &payload[..]);
    }

    #[test]
    fn decode_of_random_bytes_returns_without_panicking(
        pkt in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        let _ = decode(&pkt, &ep_v4());
    }

    #[test]
    fn decode_of_random_bytes_with_a_valid_icrc_returns_without_panicking(
        opcode in prop::sample::select(Opcode::all().collect::<Vec<_>>()),
        flags in prop_oneof![Just(0u8), 0..=3u8, any::<u8>()],
        words in 4..40usize,
        seed in any::<u64>(),
    ) {
        // Headers of the right opcode and version get past the first checks, so the
        // random rest reaches the length, pad, payload and syndrome checks.
        let mut pkt = bytes(words * 4, seed);
        pkt[0] = opcode.to_u8();
        pkt[1] = flags << 4;
        let ep = ep_v6();
        reseal(&mut pkt, &ep);
        if let Ok(p) = decode(&pkt, &ep) {
            prop_assert_eq!(p.headers.bth.opcode, opcode);
            prop_assert!(p.payload.len() <= pkt.len());
        }
    }

    #[test]
    fn every_flipped_bit_is_caught_except_those_of_the_congestion_byte(
        (h, payload) in arb_packet(64),
        ep in arb_endpoints(),
    ) {
        let pkt = encoded(&h, &payload, &ep);
        let good = decode(&pkt, &ep).unwrap();
        for byte in 0..pkt.len() {
            for bit in 0..8 {
                let mut bad = pkt.clone();
                bad[byte] ^= 1 << bit;
                let got = decode(&bad, &ep);
                if byte != 4 {
                    prop_assert!(got.is_err(), "flip of byte {} bit {} decoded as {:?}", byte, bit, got);
                    continue;
                }
                // BTH byte 4 (FECN, BECN, resv6) is outside the ICRC by design: the
                // network may mark congestion. FECN and BECN read back flipped; the
                // reserved bits are ignored.
                let p = got.unwrap();
                let mut expected = good.headers;
                match bit {
                    7 => expected.bth.fecn = !expected.bth.fecn,
                    6 => expected.bth.becn = !expected.bth.becn,
                    _ => {}
                }
                prop_assert_eq!(p.headers, expected);
                prop_assert_eq!(p.payload, good.payload);
            }
        }
    }
}

#[test]
fn encode_ignores_the_given_pad_count_and_writes_the_needed_one() {
    let mut h = headers_for(Opcode::RC_SEND_ONLY);
    h.bth.pad_count = 3;
    let pkt = encoded(&h, &[1, 2, 3, 4, 5], &ep_v4());
    assert_eq!((pkt[1] >> 4) & 3, 3);
    let pkt = encoded(&h, &[1, 2, 3, 4], &ep_v4());
    assert_eq!((pkt[1] >> 4) & 3, 0);
    assert_eq!(pkt.len(), BTH_LEN + 4 + ICRC_LEN);
}

#[test]
fn encode_reuses_the_buffer_without_reallocating() {
    let h = headers_for(Opcode::RC_RDMA_WRITE_MIDDLE);
    let payload = vec![7; 4096];
    let mut out = Vec::with_capacity(8192);
    out.extend_from_slice(b"stale");
    let ptr = out.as_ptr();
    for _ in 0..3 {
        encode(&h, &payload, &ep_v4(), &mut out).unwrap();
        assert_eq!(out.as_ptr(), ptr);
        assert_eq!(out.len(), BTH_LEN + 4096 + ICRC_LEN);
    }
}

#[test]
fn bth_fields_sit_where_the_specification_puts_them() {
    let mut h = headers_for(Opcode::RC_RDMA_WRITE_FIRST);
    h.bth = Bth {
        opcode: Opcode::RC_RDMA_WRITE_FIRST,
        solicited: true,
        mig_req: true,
        pad_count: 0,
        pkey: 0xabcd,
        fecn: true,
        becn: false,
        dest_qp: 0x123456,
        ack_req: true,
        psn: 0xfedcba,
    };
    h.reth = Some(Reth {
        va: 0x0102_0304_0506_0708,
        rkey: 0x1122_3344,
        dma_len: 0x5566_7788,
    });
    let pkt = encoded(&h, &[0xaa], &ep_v4());
    assert_eq!(
        &pkt[..BTH_LEN],
        &[
            0x06, 0xf0, 0xab, 0xcd, 0x80, 0x12, 0x34, 0x56, 0x80, 0xfe, 0xdc, 0xba
        ]
    );
    assert_eq!(
        &pkt[BTH_LEN..BTH_LEN + 16],
        &[
            1, 2, 3, 4, 5, 6, 7, 8, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88
        ]
    );
    assert_eq!(&pkt[BTH_LEN + 16..BTH_LEN + 20], &[0xaa, 0, 0, 0]);
}

#[test]
fn extension_headers_follow_the_rxe_order() {
    // RC WRITE_ONLY_WITH_IMMEDIATE: RETH then ImmDt.
    let h = headers_for(Opcode::RC_RDMA_WRITE_ONLY_WITH_IMMEDIATE);
    let pkt = encoded(&h, &[], &ep_v4());
    assert_eq!(&pkt[BTH_LEN + 12..BTH_LEN + 16], &64u32.to_be_bytes());
    assert_eq!(
        &pkt[BTH_LEN + 16..BTH_LEN + 20],
        &0xdead_beefu32.to_ne_bytes()
    );

    // RC ATOMIC_ACKNOWLEDGE: AETH then AtomicAckETH.
    let h = headers_for(Opcode::RC_ATOMIC_ACKNOWLEDGE);
    let pkt = encoded(&h, &[], &ep_v4());
    assert_eq!(&pkt[BTH_LEN..BTH_LEN + 4], &[0x1f, 0, 0, 5]);
    assert_eq!(&pkt[BTH_LEN + 4..BTH_LEN + 12], &9u64.to_be_bytes());

    // UD SEND_ONLY_WITH_IMMEDIATE: DETH then ImmDt.
    let h = headers_for(Opcode::UD_SEND_ONLY_WITH_IMMEDIATE);
    let pkt = encoded(&h, &[], &ep_v4());
    assert_eq!(
        &pkt[BTH_LEN..BTH_LEN + 8],
        &[0x11, 0x11, 0x11, 0x11, 0, 0, 0, 0x22]
    );
    assert_eq!(
        &pkt[BTH_LEN + 8..BTH_LEN + 12],
        &0xdead_beefu32.to_ne_bytes()
    );

    // RD COMPARE_SWAP: RDETH, DETH, AtomicETH.
    let op = Opcode::new(Transport::Rd, Op::CompareSwap).unwrap();
    let pkt = encoded(&headers_for(op), &[], &ep_v4());
    assert_eq!(pkt.len(), 52 + ICRC_LEN);
    assert_eq!(&pkt[BTH_LEN..BTH_LEN + 4], &[0, 0, 0, 7]);
    assert_eq!(&pkt[BTH_LEN + 12..BTH_LEN + 20], &0x2000u64.to_be_bytes());
}

// ---------------------------------------------------------------------------------------
// Opcodes and syndromes

#[test]
fn opcodes_display_their_ib_names() {
    assert_eq!(
        Opcode::RC_RDMA_WRITE_FIRST.to_string(),
        "RC RDMA_WRITE_FIRST"
    );
    assert_eq!(
        Opcode::UD_SEND_ONLY_WITH_IMMEDIATE.to_string(),
        "UD SEND_ONLY_WITH_IMMEDIATE"
    );
    assert_eq!(
        Opcode::try_from(0x52).unwrap().to_string(),
        "RD ATOMIC_ACKNOWLEDGE"
    );
    assert_eq!(
        format!("{:?}", Opcode::RC_ACKNOWLEDGE),
        "RC ACKNOWLEDGE (0x11)"
    );
}

#[test]
fn opcodes_are_the_known_ones_and_every_byte_decodes_without_panicking() {
    let known: Vec<u8> = Opcode::all().map(u8::from).collect();
    assert_eq!(known.len(), 23 + 12 + 21 + 2);
    for byte in 0..=u8::MAX {
        match Opcode::try_from(byte) {
            Ok(op) => {
                assert_eq!(op.to_u8(), byte);
                assert_eq!(Opcode::new(op.transport(), op.op()), Some(op));
                assert_eq!(op.transport() as u8 | op.op() as u8, byte);
            }
            Err(e) => assert_eq!(e, WireError::UnknownOpcode(byte)),
        }
    }
    for unknown in [
        0x15, 0x18, 0x1c, 0x1d, 0x2c, 0x36, 0x56, 0x57, 0x60, 0x66, 0x81, 0xe0,
    ] {
        assert!(Opcode::try_from(unknown).is_err(), "{unknown:#x}");
    }
    assert_eq!(Opcode::new(Transport::Uc, Op::RdmaReadRequest), None);
    assert_eq!(Opcode::new(Transport::Ud, Op::SendFirst), None);
}

#[test]
fn opcode_properties_follow_the_rxe_table() {
    let w = Opcode::RC_RDMA_WRITE_FIRST;
    assert!(w.is_first() && !w.is_middle() && !w.is_last() && !w.is_only());
    assert!(w.is_request() && !w.is_response() && w.has_payload());
    assert_eq!(w.headers().iter().collect::<Vec<_>>(), [Header::Reth]);

    let m = Opcode::RC_RDMA_READ_RESPONSE_MIDDLE;
    assert!(m.is_middle() && m.is_response() && m.headers().is_empty() && m.has_payload());

    let l = Opcode::UC_SEND_LAST_WITH_IMMEDIATE;
    assert!(l.is_last() && l.ends_message() && !l.starts_message());
    assert_eq!(l.headers().iter().collect::<Vec<_>>(), [Header::ImmDt]);

    let ack = Opcode::RC_ACKNOWLEDGE;
    assert!(ack.is_only() && ack.is_response() && !ack.has_payload());
    assert_eq!(ack.header_len(), 16);

    let aack = Opcode::RC_ATOMIC_ACKNOWLEDGE;
    assert_eq!(
        aack.headers().iter().collect::<Vec<_>>(),
        [Header::Aeth, Header::AtomicAckEth]
    );
    let cas = Opcode::RC_COMPARE_SWAP;
    assert!(cas.is_request() && cas.is_only() && !cas.has_payload());
    assert_eq!(cas.header_len(), 40);
    assert!(!Opcode::RC_RDMA_READ_REQUEST.has_payload());
    assert_eq!(
        Opcode::RC_SEND_ONLY_WITH_INVALIDATE
            .headers()
            .iter()
            .collect::<Vec<_>>(),
        [Header::Ieth]
    );
    assert_eq!(
        Opcode::UD_SEND_ONLY.headers().iter().collect::<Vec<_>>(),
        [Header::Deth]
    );
    let rd_resp = Opcode::new(Transport::Rd, Op::RdmaReadResponseFirst).unwrap();
    assert_eq!(
        rd_resp.headers().iter().collect::<Vec<_>>(),
        [Header::Rdeth, Header::Aeth]
    );
    let rd_write = Opcode::new(Transport::Rd, Op::RdmaWriteOnlyWithImmediate).unwrap();
    assert_eq!(
        rd_write.headers().iter().collect::<Vec<_>>(),
        [Header::Rdeth, Header::Deth, Header::Reth, Header::ImmDt]
    );
}

#[test]
fn syndromes_round_trip_and_reserved_ones_are_errors() {
    let mut valid = 0;
    for byte in 0..=u8::MAX {
        match Syndrome::decode(byte) {
            Ok(s) => {
                valid += 1;
                assert_eq!(s.encode(), Ok(byte));
            }
            Err(e) => {
                assert_eq!(e, WireError::ReservedSyndrome(byte));
                assert_eq!(
                    e.to_string(),
                    format!("AETH syndrome {byte:#04x} is reserved")
                );
            }
        }
    }
    assert_eq!(valid, 32 + 32 + 5);
    assert_eq!(Syndrome::decode(0x1f), Ok(Syndrome::ACK_UNLIMITED));
    assert_eq!(Syndrome::decode(0x2e), Ok(Syndrome::RnrNak { timer: 14 }));
    assert_eq!(
        Syndrome::decode(0x62),
        Ok(Syndrome::Nak(NakCode::RemoteAccessError))
    );
    assert_eq!(
        Syndrome::decode(0x64),
        Ok(Syndrome::Nak(NakCode::InvalidRdRequest))
    );
    assert_eq!(
        Syndrome::Nak(NakCode::PsnSequenceError).to_string(),
        "NAK PSN sequence error"
    );
}

#[test]
fn syndrome_encode_rejects_wide_credits_and_timers() {
    let e = Syndrome::Ack { credits: 32 }.encode().unwrap_err();
    assert_eq!(
        e.to_string(),
        "AETH ACK credit count 0x20 does not fit in 5 bits"
    );
    let e = Syndrome::RnrNak { timer: 0xff }.encode().unwrap_err();
    assert_eq!(
        e.to_string(),
        "AETH RNR NAK timer 0xff does not fit in 5 bits"
    );
}

// ---------------------------------------------------------------------------------------
// Encode errors

#[test]
fn encode_rejects_a_missing_header() {
    let mut h = headers_for(Opcode::RC_RDMA_WRITE_FIRST);
    h.reth = None;
    let mut out = vec![1, 2, 3];
    let e = encode(&h, &[], &ep_v4(), &mut out).unwrap_err();
    assert_eq!(
        e,
        WireError::MissingHeader {
            opcode: Opcode::RC_RDMA_WRITE_FIRST,
            header: Header::Reth
        }
    );
    assert_eq!(
        e.to_string(),
        "RC RDMA_WRITE_FIRST carries a RETH, but the headers have none"
    );
    assert!(out.is_empty());
}

#[test]
fn encode_rejects_an_extra_header() {
    let mut h = headers_for(Opcode::RC_RDMA_WRITE_MIDDLE);
    h.aeth = Some(Aeth {
        syndrome: Syndrome::ACK_UNLIMITED,
        msn: 0,
    });
    let e = encode(&h, &[], &ep_v4(), &mut Vec::new()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "RC RDMA_WRITE_MIDDLE carries no AETH, but the headers have one"
    );
}

#[test]
fn encode_rejects_payload_on_an_opcode_without_payload() {
    let h = headers_for(Opcode::RC_ACKNOWLEDGE);
    let e = encode(&h, &[0; 8], &ep_v4(), &mut Vec::new()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "RC ACKNOWLEDGE carries no payload, but there are 8 bytes of it"
    );
}

#[test]
fn encode_rejects_fields_wider_than_their_bits() {
    type Break = fn(&mut Headers);
    let cases: [(Break, &str); 5] = [
        (
            |h| h.bth.psn = 1 << 24,
            "BTH PSN 0x1000000 does not fit in 24 bits",
        ),
        (
            |h| h.bth.dest_qp = 0xffff_ffff,
            "BTH DestQP 0xffffffff does not fit in 24 bits",
        ),
        (
            |h| h.aeth.as_mut().unwrap().msn = 0x0100_0000,
            "AETH MSN 0x1000000 does not fit in 24 bits",
        ),
        (
            |h| h.aeth.as_mut().unwrap().syndrome = Syndrome::Ack { credits: 40 },
            "AETH ACK credit count 0x28 does not fit in 5 bits",
        ),
        (
            |h| h.aeth.as_mut().unwrap().syndrome = Syndrome::RnrNak { timer: 32 },
            "AETH RNR NAK timer 0x20 does not fit in 5 bits",
        ),
    ];
    for (break_it, message) in cases {
        let mut h = headers_for(Opcode::RC_ACKNOWLEDGE);
        break_it(&mut h);
        let e = encode(&h, &[], &ep_v4(), &mut Vec::new()).unwrap_err();
        assert_eq!(e.to_string(), message);
    }
    let mut h = headers_for(Opcode::UD_SEND_ONLY);
    h.deth.as_mut().unwrap().src_qp = 1 << 24;
    let e = encode(&h, &[], &ep_v4(), &mut Vec::new()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "DETH source QP 0x1000000 does not fit in 24 bits"
    );
    let mut h = headers_for(Opcode::new(Transport::Rd, Op::SendOnly).unwrap());
    h.rdeth = Some(1 << 24);
    let e = encode(&h, &[], &ep_v4(), &mut Vec::new()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "RDETH EE context 0x1000000 does not fit in 24 bits"
    );
}

#[test]
fn encode_rejects_a_packet_too_long_for_a_udp_datagram() {
    let h = headers_for(Opcode::RC_SEND_MIDDLE);
    // IPv4: 65535 - 20 (IP) - 8 (UDP) = 65507 bytes of packet at most.
    let fits = vec![0; 65507 - BTH_LEN - ICRC_LEN - 3];
    encode(&h, &fits, &ep_v4(), &mut Vec::new()).unwrap();
    let e = encode(
        &h,
        &[0; 65507 - BTH_LEN - ICRC_LEN],
        &ep_v4(),
        &mut Vec::new(),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "packet of 65508 bytes does not fit in a UDP datagram, which holds at most 65507"
    );
    // IPv6 has no IP total length to fill: 65535 - 8.
    encode(
        &h,
        &[0; 65527 - BTH_LEN - ICRC_LEN - 3],
        &ep_v6(),
        &mut Vec::new(),
    )
    .unwrap();
    let e = encode(
        &h,
        &[0; 65527 - BTH_LEN - ICRC_LEN],
        &ep_v6(),
        &mut Vec::new(),
    );
    assert_eq!(
        e,
        Err(WireError::TooLong {
            len: 65528,
            max: 65527
        })
    );
}

// ---------------------------------------------------------------------------------------
// Decode errors

#[test]
fn decode_rejects_fewer_bytes_than_a_bth() {
    let e = decode(&[0; 10], &ep_v4()).unwrap_err();
    assert_eq!(e, WireError::ShorterThanBth { len: 10 });
    assert_eq!(
        e.to_string(),
        "packet of 10 bytes is shorter than its 12-byte BTH"
    );
}

#[test]
fn decode_rejects_an_unknown_opcode() {
    let mut pkt = encoded(&headers_for(Opcode::RC_SEND_ONLY), &[], &ep_v4());
    pkt[0] = 0x15;
    let e = decode(&pkt, &ep_v4()).unwrap_err();
    assert_eq!(e.to_string(), "unknown BTH opcode 0x15");
}

#[test]
fn decode_rejects_a_transport_version_other_than_0() {
    let mut pkt = encoded(&headers_for(Opcode::RC_SEND_ONLY), &[], &ep_v4());
    pkt[1] |= 0x01;
    let e = decode(&pkt, &ep_v4()).unwrap_err();
    assert_eq!(e.to_string(), "BTH transport header version 1 is not 0");
}

#[test]
fn decode_rejects_fewer_bytes_than_the_opcode_headers_and_icrc() {
    let pkt = encoded(&headers_for(Opcode::RC_RDMA_WRITE_FIRST), &[], &ep_v4());
    let e = decode(&pkt[..16], &ep_v4()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "packet of 16 bytes is shorter than the 32 bytes of the headers and ICRC of RC RDMA_WRITE_FIRST"
    );
    // The BTH alone, without the ICRC.
    let e = decode(&pkt[..12], &ep_v4()).unwrap_err();
    assert!(matches!(
        e,
        WireError::ShorterThanHeaders {
            len: 12,
            needed: 32,
            ..
        }
    ));
}

#[test]
fn decode_rejects_a_length_that_is_not_a_multiple_of_4() {
    let mut pkt = encoded(&headers_for(Opcode::RC_SEND_ONLY), &[1, 2, 3, 4], &ep_v4());
    pkt.push(0);
    let e = decode(&pkt, &ep_v4()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "packet of 21 bytes is not a multiple of 4 bytes long"
    );
}

#[test]
fn decode_rejects_a_packet_too_long_for_a_udp_datagram() {
    let mut pkt = vec![0; 65508];
    pkt[0] = Opcode::RC_SEND_MIDDLE.to_u8();
    let e = decode(&pkt, &ep_v4()).unwrap_err();
    assert_eq!(
        e,
        WireError::TooLong {
            len: 65508,
            max: 65507
        }
    );
}

#[test]
fn decode_rejects_a_pad_longer_than_the_room_for_it() {
    let ep = ep_v4();
    let mut pkt = encoded(&headers_for(Opcode::RC_SEND_ONLY), &[], &ep);
    pkt[1] |= 2 << 4;
    reseal(&mut pkt, &ep);
    let e = decode(&pkt, &ep).unwrap_err();
    assert_eq!(
        e.to_string(),
        "BTH pad count 2 is more than the 0 bytes between the headers and the ICRC"
    );
}

#[test]
fn decode_rejects_payload_on_an_opcode_without_payload() {
    let ep = ep_v4();
    let mut pkt = encoded(&headers_for(Opcode::RC_ACKNOWLEDGE), &[], &ep);
    pkt.splice(16..16, [0xaa; 8]);
    reseal(&mut pkt, &ep);
    let e = decode(&pkt, &ep).unwrap_err();
    assert_eq!(
        e.to_string(),
        "RC ACKNOWLEDGE carries no payload, but there are 8 bytes of it"
    );
}

#[test]
fn decode_rejects_a_wrong_icrc_and_says_both_values() {
    let ep = ep_v4();
    let mut pkt = encoded(&headers_for(Opcode::RC_SEND_ONLY), &[1, 2, 3, 4], &ep);
    let n = pkt.len();
    let good = u32::from_le_bytes(pkt[n - 4..].try_into().unwrap());
    pkt[n - 4..].copy_from_slice(&0x1234_5678u32.to_le_bytes());
    let e = decode(&pkt, &ep).unwrap_err();
    assert_eq!(
        e,
        WireError::Icrc {
            expected: good,
            found: 0x1234_5678
        }
    );
    assert_eq!(
        e.to_string(),
        format!("ICRC mismatch: computed {good:#010x}, the packet carries 0x12345678")
    );
}

#[test]
fn decode_checks_the_icrc_against_the_endpoints() {
    let pkt = encoded(&headers_for(Opcode::RC_SEND_ONLY), &[1, 2, 3, 4], &ep_v4());
    let mut other = ep_v4();
    other.udp_sport ^= 1;
    assert!(matches!(decode(&pkt, &other), Err(WireError::Icrc { .. })));
    other = ep_v4();
    other.dgid[15] ^= 1;
    assert!(matches!(decode(&pkt, &other), Err(WireError::Icrc { .. })));
    assert!(matches!(
        decode(&pkt, &ep_v6()),
        Err(WireError::Icrc { .. })
    ));
}

#[test]
fn decode_rejects_a_reserved_aeth_syndrome() {
    let ep = ep_v4();
    let mut pkt = encoded(&headers_for(Opcode::RC_ACKNOWLEDGE), &[], &ep);
    pkt[BTH_LEN] = 0x40;
    reseal(&mut pkt, &ep);
    let e = decode(&pkt, &ep).unwrap_err();
    assert_eq!(e.to_string(), "AETH syndrome 0x40 is reserved");
}

#[test]
fn decode_ignores_reserved_bits() {
    let ep = ep_v4();
    let h = headers_for(Opcode::UD_SEND_ONLY);
    let mut pkt = encoded(&h, &[], &ep);
    pkt[8] |= 0x7f; // resv7, next to AckReq
    pkt[BTH_LEN + 4] = 0xff; // DETH reserved byte before the source QP
    reseal(&mut pkt, &ep);
    assert_eq!(decode(&pkt, &ep).unwrap().headers, h);
}

// ---------------------------------------------------------------------------------------
// The ICRC

#[test]
fn rxe_seed_is_the_crc_register_after_eight_bytes_of_ones() {
    assert_eq!(crc32_le_bitwise(0xffff_ffff, &[0xff; 8]), 0xdebb_20e3);
}

#[test]
fn icrc_over_ipv4_matches_the_bitwise_reference() {
    let ep = Endpoints {
        sgid: v4([192, 168, 1, 10]),
        dgid: v4([192, 168, 1, 20]),
        udp_sport: 0xd872,
    };
    let mut h = headers_for(Opcode::RC_RDMA_WRITE_ONLY_WITH_IMMEDIATE);
    h.bth.fecn = true;
    h.bth.becn = true;
    let payload: Vec<u8> = (0..=254).collect();
    let pkt = encoded(&h, &payload, &ep);
    let n = pkt.len();
    let udp_len = (8 + n) as u16;
    let mut masked = Vec::new();
    masked.extend_from_slice(&[0x45, 0xff]); // version, IHL; TOS masked
    masked.extend_from_slice(&(20 + udp_len).to_be_bytes());
    masked.extend_from_slice(&[0, 0, 0x40, 0]); // ID 0, DF
    masked.extend_from_slice(&[0xff, 17, 0xff, 0xff]); // TTL masked, UDP, checksum masked
    masked.extend_from_slice(&[192, 168, 1, 10, 192, 168, 1, 20]);
    masked.extend_from_slice(&0xd872u16.to_be_bytes());
    masked.extend_from_slice(&ROCE_V2_UDP_DPORT.to_be_bytes());
    masked.extend_from_slice(&udp_len.to_be_bytes());
    masked.extend_from_slice(&[0xff, 0xff]); // UDP checksum masked

    let reference = rxe_icrc_reference(&masked, &pkt[..n - 4]);

    assert_eq!(&pkt[n - 4..], &reference.to_le_bytes());
    assert_eq!(icrc(&pkt[..n - 4], &ep), Ok(reference));
}

#[test]
fn icrc_over_ipv6_matches_the_bitwise_reference() {
    let ep = ep_v6();
    let h = headers_for(Opcode::RC_RDMA_READ_RESPONSE_FIRST);
    let payload = bytes(1024, 42);
    let pkt = encoded(&h, &payload, &ep);
    let n = pkt.len();
    let udp_len = (8 + n) as u16;
    let mut masked = Vec::new();
    masked.extend_from_slice(&[0x6f, 0xff, 0xff, 0xff]); // version; TC, flow label masked
    masked.extend_from_slice(&udp_len.to_be_bytes()); // payload length
    masked.extend_from_slice(&[17, 0xff]); // next header UDP; hop limit masked
    masked.extend_from_slice(&ep.sgid);
    masked.extend_from_slice(&ep.dgid);
    masked.extend_from_slice(&ep.udp_sport.to_be_bytes());
    masked.extend_from_slice(&ROCE_V2_UDP_DPORT.to_be_bytes());
    masked.extend_from_slice(&udp_len.to_be_bytes());
    masked.extend_from_slice(&[0xff, 0xff]);

    let reference = rxe_icrc_reference(&masked, &pkt[..n - 4]);

    assert_eq!(&pkt[n - 4..], &reference.to_le_bytes());
}

/// A RoCEv2 CNP captured on a Mellanox ConnectX-4 Lx, from scapy's RoCE tests
/// (`test/contrib/roce.uts`, "RoCE CNP captured on ConnectX-4 Lx"): the IPv4 header
/// onwards, with the ICRC bytes the NIC sent. A hardware-made ICRC, so this pins the
/// algorithm and the byte order (little-endian) to what real RoCEv2 NICs do.
#[test]
fn icrc_matches_a_connectx4_lx_capture() {
    let datagram: [u8; 60] = [
        0x45, 0xc2, 0x00, 0x3c, 0x71, 0x8c, 0x40, 0x00, 0x40, 0x11, 0x91, 0x61, 0x0a, 0x00, 0x11,
        0x01, 0x0a, 0x00, 0x12, 0x01, // IPv4 10.0.17.1 -> 10.0.18.1, TOS 0xc2
        0x00, 0x00, 0x12, 0xb7, 0x00, 0x28, 0x00, 0x00, // UDP 0 -> 4791, length 40
        0x81, 0x00, 0xff, 0xff, 0x40, 0x00, 0x01, 0x18, 0x00, 0x00, 0x00, 0x00, // BTH, BECN
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, // CNP reserved
        0x82, 0xfd, 0x00, 0x2a, // ICRC
    ];
    let crc = icrc_of_datagram(&datagram).unwrap();
    assert_eq!(crc, 0x2a00_fd82);
    assert_eq!(crc.to_le_bytes(), [0x82, 0xfd, 0x00, 0x2a]);
    assert_eq!(crc, rxe_icrc_reference_of_datagram(&datagram));
}

/// The UC SEND_ONLY example of scapy's RoCE tests (`test/contrib/roce.uts`, "RoCE
/// layer"), whose ICRC scapy computes as 0x78f353f3 read big-endian from the wire, i.e.
/// wire bytes 78 f3 53 f3.
#[test]
fn icrc_matches_the_scapy_uc_send_only_example() {
    let mut datagram = Vec::new();
    datagram.extend_from_slice(&[0x45, 0x01, 0x00, 0x40, 0x04, 0x78, 0x40, 0x00]);
    datagram.extend_from_slice(&[0x40, 0x11, 0xb4, 0xd5, 192, 168, 0, 7, 192, 168, 0, 7]);
    datagram.extend_from_slice(&[0xc0, 0x00, 0x12, 0xb7, 0x00, 0x2c, 0xac, 0xa2]);
    datagram.extend_from_slice(&[0x24, 0x60, 0xff, 0xff, 0, 0, 0, 211]);
    datagram.extend_from_slice(&13_571_856u32.to_be_bytes());
    datagram.extend_from_slice(b"F0\x81\x8b\xe2\x895\xd9\x0e\x9a\x95PT\x01\xbe\x88^P\x00\x00");
    datagram.extend_from_slice(&[0; 4]);
    assert_eq!(datagram.len(), 64);

    let crc = icrc_of_datagram(&datagram).unwrap();

    assert_eq!(crc.to_le_bytes(), [0x78, 0xf3, 0x53, 0xf3]);
    assert_eq!(crc, rxe_icrc_reference_of_datagram(&datagram));
}

/// The bitwise reference over an IPv4 datagram, masking as rxe does.
fn rxe_icrc_reference_of_datagram(datagram: &[u8]) -> u32 {
    let mut masked = datagram[..28].to_vec();
    masked[1] = 0xff;
    masked[8] = 0xff;
    masked[10] = 0xff;
    masked[11] = 0xff;
    masked[26] = 0xff;
    masked[27] = 0xff;
    rxe_icrc_reference(&masked, &datagram[28..datagram.len() - 4])
}

#[test]
fn icrc_of_a_datagram_agrees_with_the_synthesized_headers() {
    for ep in [ep_v4(), ep_v6()] {
        let pkt = encoded(&headers_for(Opcode::RC_SEND_FIRST), &[9; 256], &ep);
        let udp_len = (8 + pkt.len()) as u16;
        let mut datagram = Vec::new();
        if ep.is_ipv4() {
            datagram.extend_from_slice(&[0x45, 0x12]);
            datagram.extend_from_slice(&(20 + udp_len).to_be_bytes());
            datagram.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0x12, 0x34]);
            datagram.extend_from_slice(&ep.sgid[12..]);
            datagram.extend_from_slice(&ep.dgid[12..]);
        } else {
            datagram.extend_from_slice(&[0x61, 0x23, 0x45, 0x67]);
            datagram.extend_from_slice(&udp_len.to_be_bytes());
            datagram.extend_from_slice(&[17, 64]);
            datagram.extend_from_slice(&ep.sgid);
            datagram.extend_from_slice(&ep.dgid);
        }
        datagram.extend_from_slice(&ep.udp_sport.to_be_bytes());
        datagram.extend_from_slice(&ROCE_V2_UDP_DPORT.to_be_bytes());
        datagram.extend_from_slice(&udp_len.to_be_bytes());
        datagram.extend_from_slice(&[0xab, 0xcd]);
        datagram.extend_from_slice(&pkt);

        let crc = icrc_of_datagram(&datagram).unwrap();

        assert_eq!(&crc.to_le_bytes()[..], &pkt[pkt.len() - 4..]);
    }
}

#[test]
fn icrc_of_datagram_rejects_what_it_cannot_read() {
    let msg = |d: &[u8]| icrc_of_datagram(d).unwrap_err().to_string();
    assert_eq!(
        msg(&[]),
        "not a RoCEv2 IP datagram: the IP version is neither 4 nor 6"
    );
    assert_eq!(
        msg(&[0x46; 64]),
        "not a RoCEv2 IP datagram: the IPv4 header has options (IHL is not 5)"
    );
    assert_eq!(
        msg(&[0x45; 40]),
        "not a RoCEv2 IP datagram: it is too short for IP, UDP, BTH and ICRC"
    );
    let mut tcp = [0u8; 60];
    tcp[0] = 0x45;
    tcp[9] = 6;
    assert_eq!(
        msg(&tcp),
        "not a RoCEv2 IP datagram: the IPv4 protocol is not UDP"
    );
    let mut v6 = [0u8; 80];
    v6[0] = 0x60;
    v6[6] = 6;
    assert_eq!(
        msg(&v6),
        "not a RoCEv2 IP datagram: the IPv6 next header is not UDP"
    );
}

#[test]
fn icrc_rejects_a_body_shorter_than_a_bth() {
    assert_eq!(
        icrc(&[0; 11], &ep_v4()),
        Err(WireError::ShorterThanBth { len: 11 })
    );
}

// ---------------------------------------------------------------------------------------
// PSNs and ports

#[test]
fn psn_add_wraps_at_24_bits() {
    assert_eq!(psn_add(0xff_fffe, 1), 0xff_ffff);
    assert_eq!(psn_add(0xff_ffff, 1), 0);
    assert_eq!(psn_add(0xff_ffff, 5), 4);
    assert_eq!(psn_add(0, PSN_MASK), PSN_MASK);
    assert_eq!(psn_add(0x10, u32::MAX), 0x0f);
}

#[test]
fn psn_diff_is_the_signed_24_bit_distance() {
    assert_eq!(psn_diff(5, 3), 2);
    assert_eq!(psn_diff(3, 5), -2);
    assert_eq!(psn_diff(0, 0xff_ffff), 1);
    assert_eq!(psn_diff(0xff_ffff, 0), -1);
    assert_eq!(psn_diff(2, 0xff_fffe), 4);
    assert_eq!(psn_diff(0x7f_ffff, 0), 0x7f_ffff);
    assert_eq!(psn_diff(0x80_0000, 0), -0x80_0000);
    assert_eq!(psn_diff(0x100_0005, 5), 0, "bits above 24 are ignored");
    for (a, n) in [(0xff_fff0, 0x20), (0x12_3456, 0x7f_ffff), (0, 1)] {
        assert_eq!(psn_diff(psn_add(a, n), a), n as i32);
    }
}

#[test]
fn udp_sport_is_rxes_hash_of_the_qpn() {
    // Values of 0xc000 | (hash_32(qpn, 14) & 0x3fff), computed independently.
    assert_eq!(udp_sport_for_qpn(0), 0xc000);
    assert_eq!(udp_sport_for_qpn(1), 0xd872);
    assert_eq!(udp_sport_for_qpn(0x11), 0xdf94);
    assert_eq!(udp_sport_for_qpn(0x12_3456), 0xc168);
    assert_eq!(udp_sport_for_qpn(0xff_ffff), 0xf94d);
    assert!((0..5000).all(|q| udp_sport_for_qpn(q) >= 0xc000));
}
