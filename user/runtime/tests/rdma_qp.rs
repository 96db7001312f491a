//! Queue-pair state transitions and the create/destroy rules of the verbs objects:
//! rdma-core's `tests/test_qp.py` (RC cases) and the rules of `ibv_modify_qp(3)`,
//! `ibv_create_qp(3)`, `ibv_destroy_cq(3)` and `ibv_alloc_pd(3)`, against the NIC
//! driver through the runtime's verbs library.
//!
//! The modify rules are Linux's `ib_modify_qp_is_ok`: every transition takes exactly
//! its required attributes plus the optional ones of its row, and "if any of the
//! modify attributes or the modify mask are invalid, none of the attributes will be
//! modified", which each failing case checks by querying the QP before and after.

use std::time::Duration;

use sagrada::Machine;
use sagrada::verbs::{
    ConnectAttr, Context, HostBuffer, Mtu, QpAttr, QpCap, QpInitAttr, QpState, QueuePair, RecvWr,
    SendWr, WcOpcode, WcStatus, WorkCompletion, access, attr_mask as m, qp_cap, rc_connect,
};
use sagrada_sys::{Errno, Process};

const T: Duration = Duration::from_secs(20);

const INIT_MASK: u32 = m::STATE | m::PKEY_INDEX | m::PORT | m::ACCESS_FLAGS;
const RTR_MASK: u32 = m::STATE
    | m::AV
    | m::PATH_MTU
    | m::DEST_QPN
    | m::RQ_PSN
    | m::MAX_DEST_RD_ATOMIC
    | m::MIN_RNR_TIMER;
const RTS_MASK: u32 =
    m::STATE | m::SQ_PSN | m::MAX_QP_RD_ATOMIC | m::RETRY_CNT | m::RNR_RETRY | m::TIMEOUT;

/// A full set of attributes, none equal to what a new QP reports, aimed at `dgid` /
/// `dest_qpn`, for a modify to `state`.
fn attrs(state: QpState, dgid: [u8; 16], dest_qpn: u32) -> QpAttr {
    QpAttr {
        dgid,
        rq_psn: 0x12_3456,
        sq_psn: 0x65_4321,
        dest_qp_num: dest_qpn,
        qp_access_flags: access::LOCAL_WRITE | access::REMOTE_WRITE | access::REMOTE_READ,
        pkey_index: 0,
        qp_state: state as u8,
        path_mtu: Mtu::Mtu2048 as u8,
        port_num: 1,
        max_rd_atomic: 2,
        max_dest_rd_atomic: 4,
        min_rnr_timer: 9,
        timeout: 17,
        retry_cnt: 5,
        rnr_retry: 3,
        sgid_index: 0,
        hop_limit: 32,
        ..QpAttr::default()
    }
}

/// One context on `nic` with a PD and a CQ, to create QPs from.
struct Dev<'p> {
    cq: sagrada::verbs::CompletionQueue<'p>,
    pd: sagrada::verbs::ProtectionDomain<'p>,
    ctx: Context<'p>,
}

fn dev(p: &Process, nic: u32) -> Dev<'_> {
    let ctx = Context::open(p, nic).unwrap();
    let pd = ctx.alloc_pd().unwrap();
    let cq = ctx.create_cq(256, None, 0).unwrap();
    Dev { cq, pd, ctx }
}

impl<'p> Dev<'p> {
    fn qp(&self, cap: QpCap) -> QueuePair<'p> {
        self.pd
            .create_qp(&QpInitAttr::rc(&self.cq, &self.cq, cap))
            .unwrap()
    }

    fn gid(&self) -> [u8; 16] {
        self.ctx.query_port(1).unwrap().gid
    }
}

fn cap() -> QpCap {
    qp_cap(16, 16, 2, 2, 64)
}

fn query(qp: &QueuePair<'_>) -> QpAttr {
    qp.query().unwrap().0
}

fn state(qp: &QueuePair<'_>) -> QpState {
    QpState::from_raw(query(qp).qp_state).unwrap()
}

/// One step of the bring-up, to `next` (INIT, RTR or RTS) with its required
/// attributes from `a`.
fn step(qp: &QueuePair<'_>, next: QpState, a: &QpAttr) {
    let mask = match next {
        QpState::Init => INIT_MASK,
        QpState::Rtr => RTR_MASK,
        QpState::Rts => RTS_MASK,
        _ => unreachable!("{next}"),
    };
    let a = QpAttr {
        qp_state: next as u8,
        ..*a
    };
    qp.modify(&a, mask).unwrap();
    assert_eq!(state(qp), next);
}

/// `qp` (in RESET) moved with the attributes `a` through every step up to `to`.
fn bring_to(qp: &QueuePair<'_>, to: QpState, a: &QpAttr) {
    for next in [QpState::Init, QpState::Rtr, QpState::Rts] {
        if (to as u8) < (next as u8) {
            break;
        }
        step(qp, next, a);
    }
}

/// A modify that must fail with `EINVAL` and change nothing the QP reports.
fn refused_unchanged(qp: &QueuePair<'_>, a: &QpAttr, mask: u32, what: &str) {
    let before = qp.query().unwrap();
    let r = qp.modify(a, mask);
    assert_eq!(
        r.map_err(|e| e.errno),
        Err(Errno::EINVAL),
        "{what}: mask {mask:#x}"
    );
    assert_eq!(qp.query().unwrap(), before, "{what}: the QP changed");
}

fn each_bit(mask: u32) -> impl Iterator<Item = u32> {
    (0..32).map(|b| 1u32 << b).filter(move |b| mask & b != 0)
}

#[test]
fn a_new_rc_qp_is_in_reset_with_at_least_the_requested_caps() {
    let m = Machine::default_machine().unwrap();
    let p = m.process("qp");
    let d = dev(&p, 0);
    let want = qp_cap(10, 20, 3, 2, 64);
    let qp = d.qp(want);
    let (attr, cap) = qp.query().unwrap();
    assert_eq!(QpState::from_raw(attr.qp_state), Some(QpState::Reset));
    assert!(cap.max_send_wr >= want.max_send_wr, "{cap:?}");
    assert!(cap.max_recv_wr >= want.max_recv_wr, "{cap:?}");
    assert!(cap.max_send_sge >= want.max_send_sge, "{cap:?}");
    assert!(cap.max_recv_sge >= want.max_recv_sge, "{cap:?}");
    assert!(cap.max_inline_data >= want.max_inline_data, "{cap:?}");
    assert_eq!(qp.cap(), cap, "the library reports what the driver granted");
}

#[test]
fn each_rc_transition_needs_every_required_attribute_and_a_refusal_changes_nothing() {
    let m = Machine::default_machine().unwrap();
    let p = m.process("qp");
    let d = dev(&p, 0);
    let qp = d.qp(cap());
    let full = attrs(QpState::Init, d.gid(), 0x77);
    for (next, mask) in [
        (QpState::Init, INIT_MASK),
        (QpState::Rtr, RTR_MASK),
        (QpState::Rts, RTS_MASK),
    ] {
        let a = QpAttr {
            qp_state: next as u8,
            ..full
        };
        for bit in each_bit(mask) {
            refused_unchanged(&qp, &a, mask & !bit, &format!("to {next} without {bit:#x}"));
        }
        qp.modify(&a, mask).unwrap();
        assert_eq!(state(&qp), next);
    }
}

#[test]
fn transitions_that_skip_a_state_or_go_back_are_einval() {
    let m = Machine::default_machine().unwrap();
    let p = m.process("qp");
    let d = dev(&p, 0);
    let qp = d.qp(cap());
    let full = attrs(QpState::Rtr, d.gid(), 0x77);
    let rtr = QpAttr {
        qp_state: QpState::Rtr as u8,
        ..full
    };
    let rts = QpAttr {
        qp_state: QpState::Rts as u8,
        ..full
    };
    refused_unchanged(&qp, &rtr, RTR_MASK, "RESET->RTR");
    refused_unchanged(&qp, &rts, RTS_MASK, "RESET->RTS");
    refused_unchanged(
        &qp,
        &rts,
        RTR_MASK | RTS_MASK,
        "RESET->RTS, every attribute",
    );
    bring_to(&qp, QpState::Init, &full);
    refused_unchanged(&qp, &rts, RTS_MASK, "INIT->RTS");
    refused_unchanged(&qp, &rts, RTR_MASK | RTS_MASK, "INIT->RTS, every attribute");
    step(&qp, QpState::Rtr, &full);
    // Backwards.
    let init = QpAttr {
        qp_state: QpState::Init as u8,
        ..full
    };
    refused_unchanged(&qp, &init, INIT_MASK, "RTR->INIT");
    qp.modify(&rts, RTS_MASK).unwrap();
    refused_unchanged(&qp, &rtr, RTR_MASK, "RTS->RTR");
    assert_eq!(state(&qp), QpState::Rts);
}

#[test]
fn an_attribute_the_transition_does_not_take_is_einval() {
    let m = Machine::default_machine().unwrap();
    let p = m.process("qp");
    let d = dev(&p, 0);
    let qp = d.qp(cap());
    let full = attrs(QpState::Init, d.gid(), 0x77);
    // Per step: attributes of a later step, and CAP, which no RC transition takes.
    let cases = [
        (
            QpState::Init,
            INIT_MASK,
            [m::SQ_PSN, m::RQ_PSN, m::TIMEOUT, m::AV, m::CAP],
        ),
        (
            QpState::Rtr,
            RTR_MASK,
            [
                m::SQ_PSN,
                m::TIMEOUT,
                m::RETRY_CNT,
                m::MAX_QP_RD_ATOMIC,
                m::CAP,
            ],
        ),
        (
            QpState::Rts,
            RTS_MASK,
            [m::AV, m::DEST_QPN, m::RQ_PSN, m::PATH_MTU, m::CAP],
        ),
    ];
    for (next, mask, extras) in cases {
        let a = QpAttr {
            qp_state: next as u8,
            ..full
        };
        for extra in extras {
            refused_unchanged(&qp, &a, mask | extra, &format!("to {next} with {extra:#x}"));
        }
        qp.modify(&a, mask).unwrap();
    }
    // The optional attributes of a row are taken: RTS->RTS with MIN_RNR_TIMER and
    // ACCESS_FLAGS, and the query shows them.
    let a = QpAttr {
        qp_state: QpState::Rts as u8,
        min_rnr_timer: 3,
        qp_access_flags: access::LOCAL_WRITE,
        ..full
    };
    qp.modify(&a, m::STATE | m::MIN_RNR_TIMER | m::ACCESS_FLAGS)
        .unwrap();
    let q = query(&qp);
    assert_eq!(
        (q.min_rnr_timer, q.qp_access_flags),
        (3, access::LOCAL_WRITE)
    );
    refused_unchanged(&qp, &a, m::STATE | m::SQ_PSN, "RTS->RTS with SQ_PSN");
}

#[test]
fn out_of_range_values_are_einval() {
    let m = Machine::default_machine().unwrap();
    let p = m.process("qp");
    let d = dev(&p, 0);
    let port = d.ctx.query_port(1).unwrap();
    let dev_attr = d.ctx.query_device().unwrap();
    let qp = d.qp(cap());
    let full = attrs(QpState::Init, port.gid, 0x77);
    type Bad = (&'static str, fn(&mut QpAttr, u8, u8));
    let init_bad: [Bad; 3] = [
        ("port 2", |a, _, _| a.port_num = 2),
        ("P_Key index 1", |a, _, _| a.pkey_index = 1),
        ("MW_BIND access", |a, _, _| {
            a.qp_access_flags = access::MW_BIND
        }),
    ];
    let rtr_bad: [Bad; 7] = [
        ("path MTU above the port's", |a, max_mtu, _| {
            a.path_mtu = max_mtu + 1
        }),
        ("path MTU 0", |a, _, _| a.path_mtu = 0),
        ("all-zero dgid", |a, _, _| a.dgid = [0; 16]),
        ("sgid index past the table", |a, _, _| a.sgid_index = 1),
        ("dest QPN of 25 bits", |a, _, _| a.dest_qp_num = 1 << 24),
        ("min_rnr_timer 32", |a, _, _| a.min_rnr_timer = 32),
        ("max_dest_rd_atomic above the device's", |a, _, max_rd| {
            a.max_dest_rd_atomic = max_rd + 1
        }),
    ];
    let rts_bad: [Bad; 4] = [
        ("retry_cnt 8", |a, _, _| a.retry_cnt = 8),
        ("rnr_retry 8", |a, _, _| a.rnr_retry = 8),
        ("timeout 32", |a, _, _| a.timeout = 32),
        ("max_rd_atomic above the device's", |a, _, max_rd| {
            a.max_rd_atomic = max_rd + 1
        }),
    ];
    let max_rd = u8::try_from(dev_attr.max_qp_rd_atom.min(dev_attr.max_qp_init_rd_atom)).unwrap();
    let steps: [(QpState, u32, &[Bad]); 3] = [
        (QpState::Init, INIT_MASK, &init_bad),
        (QpState::Rtr, RTR_MASK, &rtr_bad),
        (QpState::Rts, RTS_MASK, &rts_bad),
    ];
    for (next, mask, bad) in steps {
        for (what, f) in bad {
            let mut a = QpAttr {
                qp_state: next as u8,
                ..full
            };
            f(&mut a, port.max_mtu, max_rd);
            refused_unchanged(&qp, &a, mask, what);
        }
        let a = QpAttr {
            qp_state: next as u8,
            ..full
        };
        qp.modify(&a, mask).unwrap();
    }
}

#[test]
fn psns_wider_than_24_bits_are_masked_as_the_linux_core_does() {
    // `_ib_modify_qp` warns and masks rq_psn and sq_psn to 24 bits; it does not
    // refuse them. The driver does the same.
    let m = Machine::default_machine().unwrap();
    let p = m.process("qp");
    let d = dev(&p, 0);
    let qp = d.qp(cap());
    let mut a = attrs(QpState::Init, d.gid(), 0x77);
    a.rq_psn = 0x0100_0042;
    a.sq_psn = 0xff00_0043;
    bring_to(&qp, QpState::Rts, &a);
    let q = query(&qp);
    assert_eq!((q.rq_psn, q.sq_psn), (0x42, 0x43));
}

#[test]
fn cur_state_must_match_and_is_only_taken_from_rtr_on() {
    let m = Machine::default_machine().unwrap();
    let p = m.process("qp");
    let d = dev(&p, 0);
    let qp = d.qp(cap());
    let full = attrs(QpState::Init, d.gid(), 0x77);
    // RESET->INIT: CUR_STATE is not in the row, even when it is right.
    let a = QpAttr {
        cur_qp_state: QpState::Reset as u8,
        ..full
    };
    refused_unchanged(
        &qp,
        &a,
        INIT_MASK | m::CUR_STATE,
        "RESET->INIT with CUR_STATE",
    );
    bring_to(&qp, QpState::Rtr, &full);
    let mut a = QpAttr {
        qp_state: QpState::Rts as u8,
        ..full
    };
    for wrong in [QpState::Reset, QpState::Init, QpState::Rts, QpState::Err] {
        a.cur_qp_state = wrong as u8;
        refused_unchanged(
            &qp,
            &a,
            RTS_MASK | m::CUR_STATE,
            &format!("CUR_STATE {wrong}"),
        );
    }
    a.cur_qp_state = QpState::Rtr as u8;
    qp.modify(&a, RTS_MASK | m::CUR_STATE).unwrap();
    assert_eq!(state(&qp), QpState::Rts);
}

#[test]
fn query_returns_what_was_set() {
    let m = Machine::default_machine().unwrap();
    let p = m.process("qp");
    let d = dev(&p, 0);
    let qp = d.qp(cap());
    let peer = d.qp(cap());
    let a = attrs(QpState::Init, d.gid(), peer.qp_num());
    bring_to(&qp, QpState::Rts, &a);
    let q = query(&qp);
    assert_eq!(QpState::from_raw(q.qp_state), Some(QpState::Rts));
    assert_eq!(q.cur_qp_state, QpState::Rts as u8);
    assert_eq!(q.dgid, a.dgid);
    assert_eq!(q.sgid_index, a.sgid_index);
    assert_eq!(q.hop_limit, a.hop_limit);
    assert_eq!(q.port_num, 1);
    assert_eq!(q.pkey_index, 0);
    assert_eq!(q.qp_access_flags, a.qp_access_flags);
    assert_eq!(q.path_mtu, Mtu::Mtu2048 as u8);
    assert_eq!(q.dest_qp_num, peer.qp_num());
    assert_eq!(q.rq_psn, a.rq_psn);
    assert_eq!(q.sq_psn, a.sq_psn);
    assert_eq!(q.min_rnr_timer, a.min_rnr_timer);
    assert_eq!(q.timeout, a.timeout);
    assert_eq!(q.retry_cnt, a.retry_cnt);
    assert_eq!(q.rnr_retry, a.rnr_retry);
    // Powers of two already: kept as they are.
    assert_eq!(q.max_rd_atomic, a.max_rd_atomic);
    assert_eq!(q.max_dest_rd_atomic, a.max_dest_rd_atomic);
}

#[test]
fn test_modify_rc_qp_rd_atomic() {
    // rdma-core tests/test_qp.py RCQPTest.test_modify_rc_qp_rd_atomic: ask for 12 of
    // each; the query returns at least 12 (rxe rounds up to a power of two).
    let m = Machine::default_machine().unwrap();
    let p = m.process("qp");
    let d = dev(&p, 0);
    let dev_attr = d.ctx.query_device().unwrap();
    let qp = d.qp(cap());
    let mut a = attrs(QpState::Init, d.gid(), 0x77);
    a.max_rd_atomic = 12;
    a.max_dest_rd_atomic = 12;
    bring_to(&qp, QpState::Rts, &a);
    let q = query(&qp);
    assert!(q.max_rd_atomic >= 12, "{}", q.max_rd_atomic);
    assert!(q.max_dest_rd_atomic >= 12, "{}", q.max_dest_rd_atomic);
    assert!(u32::from(q.max_rd_atomic) <= dev_attr.max_qp_init_rd_atom);
    assert!(u32::from(q.max_dest_rd_atomic) <= dev_attr.max_qp_rd_atom);
}

#[test]
fn every_state_goes_to_err_and_to_reset() {
    let m = Machine::default_machine().unwrap();
    let p = m.process("qp");
    let d = dev(&p, 0);
    let full = attrs(QpState::Init, d.gid(), 0x77);
    let to = |s: QpState| QpAttr {
        qp_state: s as u8,
        ..QpAttr::default()
    };
    for from in [QpState::Init, QpState::Rtr, QpState::Rts] {
        let qp = d.qp(cap());
        bring_to(&qp, from, &full);
        qp.modify(&to(QpState::Err), m::STATE).unwrap();
        assert_eq!(state(&qp), QpState::Err, "{from}->ERR");
        // ERR->ERR, then ERR->RESET.
        qp.modify(&to(QpState::Err), m::STATE).unwrap();
        assert_eq!(state(&qp), QpState::Err);
        qp.modify(&to(QpState::Reset), m::STATE).unwrap();
        assert_eq!(state(&qp), QpState::Reset, "ERR->RESET");
        // The same state without passing through ERR.
        bring_to(&qp, from, &full);
        qp.modify(&to(QpState::Reset), m::STATE).unwrap();
        assert_eq!(state(&qp), QpState::Reset, "{from}->RESET");
        // RESET clears what the QP was given.
        let q = query(&qp);
        assert_eq!((q.rq_psn, q.sq_psn, q.dest_qp_num), (0, 0, 0));
        // To RESET or ERR takes nothing but the state.
        bring_to(&qp, from, &full);
        let a = QpAttr {
            qp_state: QpState::Err as u8,
            ..full
        };
        refused_unchanged(&qp, &a, m::STATE | m::PORT, "to ERR with PORT");
    }
    let qp = d.qp(cap());
    qp.modify(&to(QpState::Reset), m::STATE).unwrap();
    assert_eq!(state(&qp), QpState::Reset, "RESET->RESET");
    // RESET->ERR is not in Linux's table (`qp_state_table`) either.
    refused_unchanged(&qp, &to(QpState::Err), m::STATE, "RESET->ERR");
}

#[test]
fn posting_before_the_state_allows_it_is_einval() {
    let m = Machine::default_machine().unwrap();
    let p = m.process("qp");
    let d = dev(&p, 0);
    let buf = HostBuffer::new(&p, 4096).unwrap();
    let mr = d.pd.reg_mr(buf.ptr(), 4096, access::LOCAL_WRITE).unwrap();
    let qp = d.qp(cap());
    let full = attrs(QpState::Init, d.gid(), 0x77);
    let send = || qp.post_send(&[SendWr::send(1, &[mr.sge(0, 64)]).signaled()]);
    let recv = || qp.post_recv(&[RecvWr::new(2, &[mr.sge(0, 64)])]);
    let refused = |r: Result<(), sagrada::verbs::PostError>| {
        let e = r.unwrap_err();
        assert_eq!((e.index, e.errno), (0, Errno::EINVAL));
    };
    refused(send());
    refused(recv());
    bring_to(&qp, QpState::Init, &full);
    refused(send());
    recv().unwrap();
    step(&qp, QpState::Rtr, &full);
    refused(send());
    recv().unwrap();
    assert_eq!(qp.outstanding(), (0, 2));
    // Nothing was sent, nothing completed.
    let mut wc = [WorkCompletion::default(); 4];
    assert_eq!(d.cq.poll(&mut wc).unwrap(), 0);
}

/// Two connected QPs, on nic0 and nic1, with a registered buffer each.
struct Pair<'p> {
    q0: QueuePair<'p>,
    q1: QueuePair<'p>,
    mr0: sagrada::verbs::MemoryRegion<'p>,
    mr1: sagrada::verbs::MemoryRegion<'p>,
    b0: HostBuffer<'p>,
    b1: HostBuffer<'p>,
    d0: Dev<'p>,
    d1: Dev<'p>,
}

const LEN: u64 = 8192;

fn pair(p: &Process) -> Pair<'_> {
    let d0 = dev(p, 0);
    let d1 = dev(p, 1);
    let q0 = d0.qp(cap());
    let q1 = d1.qp(cap());
    let all = access::LOCAL_WRITE | access::REMOTE_WRITE | access::REMOTE_READ;
    let b0 = HostBuffer::new(p, LEN).unwrap();
    let b1 = HostBuffer::new(p, LEN).unwrap();
    let mr0 = d0.pd.reg_mr(b0.ptr(), LEN, all).unwrap();
    let mr1 = d1.pd.reg_mr(b1.ptr(), LEN, all).unwrap();
    rc_connect(&q0, &q1, &ConnectAttr::default()).unwrap();
    Pair {
        q0,
        q1,
        mr0,
        mr1,
        b0,
        b1,
        d0,
        d1,
    }
}

impl Pair<'_> {
    /// A SEND of `len` bytes of `fill` from q0 into a receive on q1, both completing.
    fn send_recv_works(&self, fill: u8, len: u32) {
        self.b0.fill(fill).unwrap();
        self.q1
            .post_recv(&[RecvWr::new(100, &[self.mr1.sge(0, len)])])
            .unwrap();
        self.q0
            .post_send(&[SendWr::send(101, &[self.mr0.sge(0, len)]).signaled()])
            .unwrap();
        let wc = self.d0.cq.poll_until(1, T).unwrap();
        assert_eq!(
            wc.iter()
                .map(|w| (w.wr_id, w.status, w.opcode))
                .collect::<Vec<_>>(),
            [(101, WcStatus::Success, WcOpcode::Send)]
        );
        let wc = self.d1.cq.poll_until(1, T).unwrap();
        assert_eq!(
            wc.iter()
                .map(|w| (w.wr_id, w.status, w.opcode, w.byte_len))
                .collect::<Vec<_>>(),
            [(100, WcStatus::Success, WcOpcode::Recv, len)]
        );
        assert_eq!(
            self.b1.read(0, len as usize).unwrap(),
            vec![fill; len as usize]
        );
    }
}

fn flushed(wc: &[WorkCompletion]) -> Vec<(u64, WcStatus, u32)> {
    wc.iter().map(|w| (w.wr_id, w.status, w.qp_num)).collect()
}

#[test]
fn in_err_every_posted_request_flushes_and_reset_brings_the_qp_back() {
    let m = Machine::default_machine().unwrap();
    let p = m.process("qp");
    let pr = pair(&p);
    pr.send_recv_works(0x11, 512);

    // Sends stuck on a dead cable, receives waiting for messages.
    let (to_1, to_0) = m.link_faults(0).unwrap();
    to_1.set_down(true);
    to_0.set_down(true);
    pr.q0
        .post_send(&[
            SendWr::send(1, &[pr.mr0.sge(0, 64)]).signaled(),
            SendWr::write(2, &[pr.mr0.sge(0, 64)], pr.mr1.iova(), pr.mr1.rkey()),
            SendWr::send(3, &[pr.mr0.sge(0, 64)]),
        ])
        .unwrap();
    pr.q0
        .post_recv(&[
            RecvWr::new(4, &[pr.mr0.sge(0, 64)]),
            RecvWr::new(5, &[pr.mr0.sge(64, 64)]),
        ])
        .unwrap();
    let qpn = pr.q0.qp_num();
    pr.q0
        .modify(
            &QpAttr {
                qp_state: QpState::Err as u8,
                ..QpAttr::default()
            },
            m::STATE,
        )
        .unwrap();
    // Every one completes, signaled or not: sends first, then receives, in order.
    let wc = pr.d0.cq.poll_until(5, T).unwrap();
    let flush = WcStatus::WrFlushErr;
    assert_eq!(
        flushed(&wc),
        [
            (1, flush, qpn),
            (2, flush, qpn),
            (3, flush, qpn),
            (4, flush, qpn),
            (5, flush, qpn)
        ]
    );
    assert_eq!(pr.q0.outstanding(), (0, 0));

    // Posting in ERR is allowed, and what is posted flushes.
    pr.q0
        .post_send(&[SendWr::write(
            6,
            &[pr.mr0.sge(0, 64)],
            pr.mr1.iova(),
            pr.mr1.rkey(),
        )])
        .unwrap();
    pr.q0
        .post_recv(&[RecvWr::new(7, &[pr.mr0.sge(0, 64)])])
        .unwrap();
    let wc = pr.d0.cq.poll_until(2, T).unwrap();
    let mut got = flushed(&wc);
    got.sort_by_key(|w| w.0);
    assert_eq!(got, [(6, flush, qpn), (7, flush, qpn)]);
    assert_eq!(state(&pr.q0), QpState::Err);
    assert_eq!(state(&pr.q1), QpState::Rts, "the peer does not know");

    // RESET -> INIT -> RTR -> RTS (both ends, from fresh PSNs): traffic again.
    to_1.set_down(false);
    to_0.set_down(false);
    let reset = QpAttr {
        qp_state: QpState::Reset as u8,
        ..QpAttr::default()
    };
    pr.q0.modify(&reset, m::STATE).unwrap();
    pr.q1.modify(&reset, m::STATE).unwrap();
    assert_eq!(state(&pr.q0), QpState::Reset);
    let attr = ConnectAttr {
        psn_seed: 99,
        ..ConnectAttr::default()
    };
    rc_connect(&pr.q0, &pr.q1, &attr).unwrap();
    assert_eq!(state(&pr.q0), QpState::Rts);
    pr.send_recv_works(0x22, 3000);
    let mut wc = [WorkCompletion::default(); 4];
    assert_eq!(pr.d0.cq.poll(&mut wc).unwrap(), 0, "nothing left over");
}

#[test]
fn destroy_cq_is_ebusy_while_a_qp_uses_it() {
    let m = Machine::default_machine().unwrap();
    let p = m.process("qp");
    let ctx = Context::open(&p, 0u32).unwrap();
    let pd = ctx.alloc_pd().unwrap();
    let mut send_cq = ctx.create_cq(16, None, 0).unwrap();
    let mut recv_cq = ctx.create_cq(16, None, 0).unwrap();
    let qp = pd
        .create_qp(&QpInitAttr::rc(&send_cq, &recv_cq, cap()))
        .unwrap();
    for cq in [&mut send_cq, &mut recv_cq] {
        assert_eq!(cq.close().map_err(|e| e.errno), Err(Errno::EBUSY));
        // Still there and usable.
        let mut wc = [WorkCompletion::default(); 1];
        assert_eq!(cq.poll(&mut wc).unwrap(), 0);
    }
    qp.destroy().unwrap();
    send_cq.destroy().unwrap();
    recv_cq.destroy().unwrap();
}

#[test]
fn dealloc_pd_is_ebusy_while_an_mr_or_a_qp_uses_it() {
    let m = Machine::default_machine().unwrap();
    let p = m.process("qp");
    let ctx = Context::open(&p, 0u32).unwrap();
    let cq = ctx.create_cq(16, None, 0).unwrap();
    let buf = HostBuffer::new(&p, 4096).unwrap();

    let mut pd = ctx.alloc_pd().unwrap();
    let mr = pd.reg_mr(buf.ptr(), 4096, access::LOCAL_WRITE).unwrap();
    assert_eq!(pd.close().map_err(|e| e.errno), Err(Errno::EBUSY));
    // The PD still works.
    let mr2 = pd.reg_mr(buf.ptr(), 4096, access::LOCAL_WRITE).unwrap();
    mr.dereg().unwrap();
    assert_eq!(pd.close().map_err(|e| e.errno), Err(Errno::EBUSY));
    mr2.dereg().unwrap();
    pd.dealloc().unwrap();

    let mut pd = ctx.alloc_pd().unwrap();
    let qp = pd.create_qp(&QpInitAttr::rc(&cq, &cq, cap())).unwrap();
    assert_eq!(pd.close().map_err(|e| e.errno), Err(Errno::EBUSY));
    qp.destroy().unwrap();
    pd.dealloc().unwrap();
}

#[test]
fn qp_caps_above_the_device_limits_are_einval() {
    let m = Machine::default_machine().unwrap();
    let p = m.process("qp");
    let d = dev(&p, 0);
    let a = d.ctx.query_device().unwrap();
    let at_max = qp_cap(
        a.max_qp_wr,
        a.max_qp_wr,
        a.max_sge,
        a.max_sge,
        a.max_inline_data,
    );
    let qp = d.qp(at_max);
    let got = qp.cap();
    assert!(got.max_send_wr >= a.max_qp_wr && got.max_send_sge >= a.max_sge);
    qp.destroy().unwrap();
    type Overflow = (&'static str, fn(&mut QpCap));
    let over: [Overflow; 5] = [
        ("max_send_wr", |c| c.max_send_wr += 1),
        ("max_recv_wr", |c| c.max_recv_wr += 1),
        ("max_send_sge", |c| c.max_send_sge += 1),
        ("max_recv_sge", |c| c.max_recv_sge += 1),
        ("max_inline_data", |c| c.max_inline_data += 1),
    ];
    for (what, f) in over {
        let mut c = at_max;
        f(&mut c);
        let r = d.pd.create_qp(&QpInitAttr::rc(&d.cq, &d.cq, c));
        assert_eq!(
            r.map(drop).map_err(|e| e.errno),
            Err(Errno::EINVAL),
            "{what}"
        );
    }
    // Nothing leaked: the PD and CQ are free once the QPs are gone.
    let Dev { mut cq, mut pd, .. } = d;
    cq.close().unwrap();
    pd.close().unwrap();
}

#[test]
fn a_full_work_queue_is_enomem_at_the_first_request_that_does_not_fit() {
    let m = Machine::default_machine().unwrap();
    let p = m.process("qp");
    let d = dev(&p, 0);
    let buf = HostBuffer::new(&p, 4096).unwrap();
    let mr = d.pd.reg_mr(buf.ptr(), 4096, access::LOCAL_WRITE).unwrap();
    let qp = d.qp(qp_cap(4, 4, 1, 1, 0));
    let (sq, rq) = (qp.cap().max_send_wr as u64, qp.cap().max_recv_wr as u64);
    bring_to(&qp, QpState::Init, &attrs(QpState::Init, d.gid(), 0x77));
    let recvs: Vec<RecvWr> = (0..rq + 2)
        .map(|i| RecvWr::new(i, &[mr.sge(0, 64)]))
        .collect();
    let e = qp.post_recv(&recvs).unwrap_err();
    assert_eq!((e.index as u64, e.errno), (rq, Errno::ENOMEM));
    // In ERR (where sends may be posted without a peer) the slots stay taken until
    // their completions are polled.
    qp.modify(
        &QpAttr {
            qp_state: QpState::Err as u8,
            ..QpAttr::default()
        },
        m::STATE,
    )
    .unwrap();
    let sends: Vec<SendWr> = (0..sq + 1)
        .map(|i| SendWr::send(100 + i, &[mr.sge(0, 64)]))
        .collect();
    let e = qp.post_send(&sends).unwrap_err();
    assert_eq!((e.index as u64, e.errno), (sq, Errno::ENOMEM));
    assert_eq!(qp.outstanding(), (sq as u32, rq as u32));
    let wc = d.cq.poll_until((sq + rq) as usize, T).unwrap();
    assert_eq!(wc.len() as u64, sq + rq);
    assert!(wc.iter().all(|w| w.status == WcStatus::WrFlushErr));
    assert_eq!(qp.outstanding(), (0, 0));
    // Room again.
    qp.post_send(&sends[..sq as usize]).unwrap();
    qp.post_recv(&recvs[..rq as usize]).unwrap();
    assert_eq!(
        d.cq.poll_until((sq + rq) as usize, T).unwrap().len() as u64,
        sq + rq
    );
}

/// Two QPs on one CQ, each with flushed receives waiting in it: `a` with ids 1 and 2,
/// `b` with id 3.
fn two_qps_with_flushed_receives<'p>(
    d: &Dev<'p>,
    mr: &sagrada::verbs::MemoryRegion<'_>,
) -> (QueuePair<'p>, QueuePair<'p>) {
    let init = attrs(QpState::Init, d.gid(), 0x77);
    let err = QpAttr {
        qp_state: QpState::Err as u8,
        ..QpAttr::default()
    };
    let a = d.qp(cap());
    let b = d.qp(cap());
    bring_to(&a, QpState::Init, &init);
    bring_to(&b, QpState::Init, &init);
    a.post_recv(&[RecvWr::new(1, &[mr.sge(0, 64)])]).unwrap();
    b.post_recv(&[RecvWr::new(3, &[mr.sge(0, 64)])]).unwrap();
    a.post_recv(&[RecvWr::new(2, &[mr.sge(0, 64)])]).unwrap();
    a.modify(&err, m::STATE).unwrap();
    b.modify(&err, m::STATE).unwrap();
    (a, b)
}

#[test]
fn destroying_or_resetting_a_qp_drops_its_completions_still_in_the_cq() {
    // As mlx5's `__mlx5_cq_clean`: a QP gone or reset leaves nothing of its own in a
    // CQ it shares.
    let m = Machine::default_machine().unwrap();
    let p = m.process("qp");
    let d = dev(&p, 0);
    let buf = HostBuffer::new(&p, 4096).unwrap();
    let mr = d.pd.reg_mr(buf.ptr(), 4096, access::LOCAL_WRITE).unwrap();

    let (a, b) = two_qps_with_flushed_receives(&d, &mr);
    let bqpn = b.qp_num();
    a.destroy().unwrap();
    let wc = d.cq.poll_until(1, T).unwrap();
    assert_eq!(flushed(&wc), [(3, WcStatus::WrFlushErr, bqpn)]);
    let mut rest = [WorkCompletion::default(); 4];
    assert_eq!(d.cq.poll(&mut rest).unwrap(), 0);
    drop(b);

    let (a, b) = two_qps_with_flushed_receives(&d, &mr);
    a.modify(
        &QpAttr {
            qp_state: QpState::Reset as u8,
            ..QpAttr::default()
        },
        m::STATE,
    )
    .unwrap();
    let wc = d.cq.poll_until(1, T).unwrap();
    assert_eq!(flushed(&wc), [(3, WcStatus::WrFlushErr, b.qp_num())]);
    assert_eq!(d.cq.poll(&mut rest).unwrap(), 0);
    assert_eq!(a.outstanding(), (0, 0));
    // The reset QP starts over: a receive posted in INIT and flushed is its only
    // completion.
    bring_to(&a, QpState::Init, &attrs(QpState::Init, d.gid(), 0x77));
    a.post_recv(&[RecvWr::new(9, &[mr.sge(0, 64)])]).unwrap();
    a.modify(
        &QpAttr {
            qp_state: QpState::Err as u8,
            ..QpAttr::default()
        },
        m::STATE,
    )
    .unwrap();
    let wc = d.cq.poll_until(1, T).unwrap();
    assert_eq!(flushed(&wc), [(9, WcStatus::WrFlushErr, a.qp_num())]);
    assert_eq!(a.outstanding(), (0, 0));
}
