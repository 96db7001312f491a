//! Work-completion error statuses, one trigger each: what the requester's completion
//! says and what the responder sees (`reference/rdma-verbs-and-roce.md` §1.7, after
//! rxe's `rxe_req.c`, `rxe_resp.c` and `rxe_comp.c`), between an RC QP on nic0 (the
//! requester) and one on nic1 (the responder).
//!
//! Most failing work requests are posted unsignaled, followed by a signaled one:
//! errors always complete, and a QP in error flushes what follows.

use std::time::{Duration, Instant};

use sagrada::Machine;
use sagrada::verbs::{
    CompletionQueue, ConnectAttr, Context, EVENT_QP_FATAL, HostBuffer, MemoryRegion,
    ProtectionDomain, QpState, QueuePair, RecvWr, SendWr, Sge, WcOpcode, WcStatus, access, qp_cap,
    rc_connect,
};
use sagrada_hw_rnic::Counter;
use sagrada_sys::Process;

const T: Duration = Duration::from_secs(20);
const LEN: u64 = 16 * 1024;
const ALL: u32 = access::LOCAL_WRITE | access::REMOTE_WRITE | access::REMOTE_READ;

/// One end: a context on a NIC, a PD, a CQ for both queues, a QP and a registered
/// buffer. Fields drop in order: the QP before its CQ and PD.
struct End<'p> {
    qp: QueuePair<'p>,
    mr: MemoryRegion<'p>,
    buf: HostBuffer<'p>,
    cq: CompletionQueue<'p>,
    _pd: ProtectionDomain<'p>,
    ctx: Context<'p>,
}

fn end(p: &Process, nic: u32, mr_access: u32) -> End<'_> {
    let ctx = Context::open(p, nic).unwrap();
    let pd = ctx.alloc_pd().unwrap();
    let cq = ctx.create_cq(64, None, 0).unwrap();
    let qp = pd
        .create_qp(&sagrada::verbs::QpInitAttr::rc(
            &cq,
            &cq,
            qp_cap(16, 16, 4, 4, 64),
        ))
        .unwrap();
    let buf = HostBuffer::new(p, LEN).unwrap();
    let mr = pd.reg_mr(buf.ptr(), LEN, mr_access).unwrap();
    End {
        qp,
        mr,
        buf,
        cq,
        _pd: pd,
        ctx,
    }
}

/// The requester on nic0 and the responder on nic1, connected with `attr`; the
/// responder's buffer registered with `mr_access`.
fn pair<'p>(p: &'p Process, attr: &ConnectAttr, mr_access: u32) -> (End<'p>, End<'p>) {
    let a = end(p, 0, ALL);
    let b = end(p, 1, mr_access);
    rc_connect(&a.qp, &b.qp, attr).unwrap();
    (a, b)
}

/// Completions as (wr_id, status).
fn st(wc: &[sagrada::verbs::WorkCompletion]) -> Vec<(u64, WcStatus)> {
    wc.iter().map(|w| (w.wr_id, w.status)).collect()
}

fn qp_state(qp: &QueuePair<'_>) -> QpState {
    QpState::from_raw(qp.query().unwrap().0.qp_state).unwrap()
}

/// Waits for the asynchronous QP_FATAL event of QP handle `qp` on `ctx`.
fn qp_fatal_event(ctx: &Context<'_>, qp: u32) -> bool {
    let deadline = Instant::now() + T;
    while Instant::now() < deadline {
        match ctx.get_async_event(true).unwrap() {
            Some(e) if e.element == qp && e.event_type == EVENT_QP_FATAL => return true,
            Some(_) => {}
            None => std::thread::sleep(Duration::from_millis(1)),
        }
    }
    false
}

/// Receives 10 and 11 posted on the responder, 64 bytes each.
fn post_two_receives(b: &End<'_>) {
    b.qp.post_recv(&[
        RecvWr::new(10, &[b.mr.sge(0, 64)]),
        RecvWr::new(11, &[b.mr.sge(64, 64)]),
    ])
    .unwrap();
}

/// Posts `bad` (wr_id 1, unsignaled) and a signaled SEND (wr_id 2) after it; the
/// requester's completions are `status` for the first and a flush for the second, and
/// its QP is in ERR.
fn requester_fails(a: &End<'_>, bad: SendWr, status: WcStatus, opcode: WcOpcode) {
    assert_eq!(bad.wr_id, 1);
    let follow = SendWr::send(2, &[a.mr.sge(0, 8)]).signaled();
    a.qp.post_send(&[bad, follow]).unwrap();
    let wc = a.cq.poll_until(2, T).unwrap();
    assert_eq!(st(&wc), [(1, status), (2, WcStatus::WrFlushErr)]);
    assert_eq!(wc[0].opcode, opcode);
    assert_eq!(wc[0].qp_num, a.qp.qp_num());
    assert_eq!(qp_state(&a.qp), QpState::Err);
}

/// The responder went to ERR: its receives (10 and 11, less those in `consumed`)
/// flushed, after `first` if given, and QP_FATAL was reported on its context.
fn responder_failed(b: &End<'_>, first: Option<(u64, WcStatus)>) {
    let mut want: Vec<(u64, WcStatus)> = first.into_iter().collect();
    for id in [10, 11] {
        if first.is_none_or(|(f, _)| f != id) {
            want.push((id, WcStatus::WrFlushErr));
        }
    }
    let wc = b.cq.poll_until(want.len(), T).unwrap();
    assert_eq!(st(&wc), want);
    assert!(wc.iter().all(|w| w.qp_num == b.qp.qp_num()));
    assert_eq!(qp_state(&b.qp), QpState::Err);
    assert!(
        qp_fatal_event(&b.ctx, b.qp.handle()),
        "no QP_FATAL event for the responder's QP"
    );
}

/// The requester's QP, which failed before anything reached the wire, reset and
/// connected again from the same PSNs: a SEND lands in the responder's first receive
/// (10), which the failure did not touch.
fn responder_untouched(a: &End<'_>, b: &End<'_>, attr: &ConnectAttr) {
    assert_eq!(qp_state(&b.qp), QpState::Rts);
    let reset = sagrada::verbs::QpAttr {
        qp_state: QpState::Reset as u8,
        ..Default::default()
    };
    a.qp.modify(&reset, sagrada::verbs::attr_mask::STATE)
        .unwrap();
    let (psn_a, psn_b) = attr.psns();
    // The same PSNs, and the conventional timers: a timeout of a few µs that a test
    // used to provoke an error could expire on a loaded machine before the ACK comes.
    let attr = ConnectAttr {
        timeout: 14,
        retry_cnt: 7,
        rnr_retry: 7,
        ..*attr
    };
    a.qp.connect(&attr, psn_a, &b.qp.endpoint(1, psn_b).unwrap())
        .unwrap();
    a.buf.write(0, b"first message").unwrap();
    a.qp.post_send(&[SendWr::send(3, &[a.mr.sge(0, 13)]).signaled()])
        .unwrap();
    assert_eq!(
        st(&a.cq.poll_until(1, T).unwrap()),
        [(3, WcStatus::Success)]
    );
    let wc = b.cq.poll_until(1, T).unwrap();
    assert_eq!(st(&wc), [(10, WcStatus::Success)]);
    assert_eq!(wc[0].byte_len, 13);
    assert_eq!(b.buf.read(0, 13).unwrap(), b"first message");
}

#[test]
fn loc_prot_err_for_an_sge_with_a_bad_lkey() {
    let m = Machine::default_machine().unwrap();
    let p = m.process("wc");
    let attr = ConnectAttr::default();
    let (a, b) = pair(&p, &attr, ALL);
    post_two_receives(&b);
    let mut sge = a.mr.sge(0, 64);
    sge.lkey ^= 0x80;
    requester_fails(
        &a,
        SendWr::send(1, &[sge]),
        WcStatus::LocProtErr,
        WcOpcode::Send,
    );
    // Nothing went on the wire.
    assert_eq!(m.rnics()[0].counter(Counter::TxPackets), 0);
    responder_untouched(&a, &b, &attr);
}

#[test]
fn loc_prot_err_for_an_mr_of_another_pd() {
    let m = Machine::default_machine().unwrap();
    let p = m.process("wc");
    let attr = ConnectAttr::default();
    let (a, b) = pair(&p, &attr, ALL);
    post_two_receives(&b);
    let other_pd = a.ctx.alloc_pd().unwrap();
    let other = other_pd.reg_mr(a.buf.ptr(), LEN, ALL).unwrap();
    requester_fails(
        &a,
        SendWr::write(1, &[other.sge(0, 64)], b.mr.iova(), b.mr.rkey()),
        WcStatus::LocProtErr,
        WcOpcode::RdmaWrite,
    );
    assert_eq!(m.rnics()[0].counter(Counter::TxPackets), 0);
    responder_untouched(&a, &b, &attr);
}

#[test]
fn rem_access_err_for_a_write_with_a_bad_rkey() {
    let m = Machine::default_machine().unwrap();
    let p = m.process("wc");
    let (a, b) = pair(&p, &ConnectAttr::default(), ALL);
    post_two_receives(&b);
    b.buf.fill(0xee).unwrap();
    a.buf.fill(0x11).unwrap();
    requester_fails(
        &a,
        SendWr::write(1, &[a.mr.sge(0, 64)], b.mr.iova(), b.mr.rkey() ^ 0x80),
        WcStatus::RemAccessErr,
        WcOpcode::RdmaWrite,
    );
    responder_failed(&b, None);
    assert_eq!(b.buf.read(0, 64).unwrap(), [0xee; 64], "nothing written");
}

#[test]
fn rem_access_err_for_a_write_to_an_mr_without_remote_write() {
    let m = Machine::default_machine().unwrap();
    let p = m.process("wc");
    let read_only = access::LOCAL_WRITE | access::REMOTE_READ;
    let (a, b) = pair(&p, &ConnectAttr::default(), read_only);
    assert_ne!(b.mr.rkey(), 0, "remote read gives the region an rkey");
    post_two_receives(&b);
    b.buf.fill(0xee).unwrap();
    requester_fails(
        &a,
        SendWr::write(1, &[a.mr.sge(0, 64)], b.mr.iova(), b.mr.rkey()),
        WcStatus::RemAccessErr,
        WcOpcode::RdmaWrite,
    );
    responder_failed(&b, None);
    assert_eq!(b.buf.read(0, 64).unwrap(), [0xee; 64], "nothing written");
}

#[test]
fn rem_access_err_for_a_read_beyond_the_mr() {
    let m = Machine::default_machine().unwrap();
    let p = m.process("wc");
    let (a, b) = pair(&p, &ConnectAttr::default(), ALL);
    post_two_receives(&b);
    a.buf.fill(0x33).unwrap();
    // 4 KiB from 100 bytes before the end of the responder's region.
    let raddr = b.mr.iova() + LEN - 100;
    requester_fails(
        &a,
        SendWr::read(1, &[a.mr.sge(0, 4096)], raddr, b.mr.rkey()),
        WcStatus::RemAccessErr,
        WcOpcode::RdmaRead,
    );
    responder_failed(&b, None);
    assert_eq!(a.buf.read(0, 4096).unwrap(), [0x33; 4096], "nothing landed");
}

#[test]
fn rem_inv_req_err_for_a_write_to_a_qp_without_remote_write() {
    let m = Machine::default_machine().unwrap();
    let p = m.process("wc");
    let attr = ConnectAttr {
        access: access::LOCAL_WRITE | access::REMOTE_READ,
        ..ConnectAttr::default()
    };
    let (a, b) = pair(&p, &attr, ALL);
    post_two_receives(&b);
    b.buf.fill(0xee).unwrap();
    requester_fails(
        &a,
        SendWr::write(1, &[a.mr.sge(0, 64)], b.mr.iova() + 1024, b.mr.rkey()),
        WcStatus::RemInvReqErr,
        WcOpcode::RdmaWrite,
    );
    responder_failed(&b, None);
    assert_eq!(b.buf.read(1024, 64).unwrap(), [0xee; 64], "nothing written");
}

#[test]
fn rem_inv_req_err_for_a_send_longer_than_the_receive() {
    let m = Machine::default_machine().unwrap();
    let p = m.process("wc");
    let (a, b) = pair(&p, &ConnectAttr::default(), ALL);
    post_two_receives(&b);
    // 65 bytes into a 64-byte receive: the receive completes with a local length
    // error.
    requester_fails(
        &a,
        SendWr::send(1, &[a.mr.sge(0, 65)]),
        WcStatus::RemInvReqErr,
        WcOpcode::Send,
    );
    responder_failed(&b, Some((10, WcStatus::LocLenErr)));
}

#[test]
fn rem_inv_req_err_for_a_multi_packet_send_overflowing_the_receive() {
    // 3000 bytes at MTU 1024 into 2048 bytes: the first two packets land, the third
    // does not fit.
    let m = Machine::default_machine().unwrap();
    let p = m.process("wc");
    let (a, b) = pair(&p, &ConnectAttr::default(), ALL);
    b.qp.post_recv(&[
        RecvWr::new(10, &[b.mr.sge(0, 2048)]),
        RecvWr::new(11, &[b.mr.sge(4096, 64)]),
    ])
    .unwrap();
    requester_fails(
        &a,
        SendWr::send(1, &[a.mr.sge(0, 3000)]),
        WcStatus::RemInvReqErr,
        WcOpcode::Send,
    );
    responder_failed(&b, Some((10, WcStatus::LocLenErr)));
}

#[test]
fn rem_op_err_for_a_receive_with_a_bad_lkey() {
    let m = Machine::default_machine().unwrap();
    let p = m.process("wc");
    let (a, b) = pair(&p, &ConnectAttr::default(), ALL);
    let mut sge = b.mr.sge(0, 64);
    sge.lkey ^= 0x80;
    b.qp.post_recv(&[
        RecvWr::new(10, &[sge]),
        RecvWr::new(11, &[b.mr.sge(64, 64)]),
    ])
    .unwrap();
    requester_fails(
        &a,
        SendWr::send(1, &[a.mr.sge(0, 64)]),
        WcStatus::RemOpErr,
        WcOpcode::Send,
    );
    responder_failed(&b, Some((10, WcStatus::LocQpOpErr)));
}

#[test]
fn rem_op_err_for_a_receive_in_an_mr_of_another_pd() {
    // pyverbs' test_mr_rereg_pd: a receive whose region moved to another PD.
    let m = Machine::default_machine().unwrap();
    let p = m.process("wc");
    let (a, b) = pair(&p, &ConnectAttr::default(), ALL);
    let other_pd = b.ctx.alloc_pd().unwrap();
    let other = other_pd.reg_mr(b.buf.ptr(), LEN, ALL).unwrap();
    b.qp.post_recv(&[
        RecvWr::new(10, &[other.sge(0, 64)]),
        RecvWr::new(11, &[b.mr.sge(64, 64)]),
    ])
    .unwrap();
    requester_fails(
        &a,
        SendWr::send(1, &[a.mr.sge(0, 64)]),
        WcStatus::RemOpErr,
        WcOpcode::Send,
    );
    responder_failed(&b, Some((10, WcStatus::LocQpOpErr)));
}

#[test]
fn loc_prot_err_for_a_read_landing_in_a_bad_lkey() {
    // The local SGE of a READ is only used when the answer lands (rxe_comp.c
    // `do_read`): the responder answers, and has done nothing wrong.
    let m = Machine::default_machine().unwrap();
    let p = m.process("wc");
    let (a, b) = pair(&p, &ConnectAttr::default(), ALL);
    let mut sge = a.mr.sge(0, 3000);
    sge.lkey ^= 0x80;
    requester_fails(
        &a,
        SendWr::read(1, &[sge], b.mr.iova(), b.mr.rkey()),
        WcStatus::LocProtErr,
        WcOpcode::RdmaRead,
    );
    assert!(m.rnics()[1].counter(Counter::TxPackets) >= 1, "it answered");
    assert_eq!(qp_state(&b.qp), QpState::Rts);
}

/// rdma-core tests/test_atomic.py, the cases that must fail: a QP without
/// REMOTE_ATOMIC, a region without it, a bad rkey, a bad lkey, a misaligned target.
#[test]
fn test_atomic_negative_cases() {
    let m = Machine::default_machine().unwrap();
    let p = m.process("wc");
    let atomic = ALL | access::REMOTE_ATOMIC;
    let fa = |sge: Sge, raddr: u64, rkey: u32| SendWr::fetch_add(1, sge, raddr, rkey, 1);
    // QP access flags without REMOTE_ATOMIC: an invalid request.
    let no_atomic_qp = ConnectAttr {
        access: ALL,
        ..ConnectAttr::default()
    };
    let (a, b) = pair(&p, &no_atomic_qp, atomic);
    post_two_receives(&b);
    let wr = fa(a.mr.sge(0, 8), b.mr.iova(), b.mr.rkey());
    requester_fails(&a, wr, WcStatus::RemInvReqErr, WcOpcode::FetchAdd);
    responder_failed(&b, None);
    assert_eq!(b.buf.read_u64(0).unwrap(), 0, "not executed");

    // The region without REMOTE_ATOMIC, and a bad rkey: remote access errors.
    for bad_rkey in [false, true] {
        let access = if bad_rkey { atomic } else { ALL };
        let (a, b) = pair(&p, &ConnectAttr::default(), access);
        post_two_receives(&b);
        let rkey = if bad_rkey {
            b.mr.rkey() ^ 0x80
        } else {
            b.mr.rkey()
        };
        let wr = fa(a.mr.sge(0, 8), b.mr.iova(), rkey);
        requester_fails(&a, wr, WcStatus::RemAccessErr, WcOpcode::FetchAdd);
        responder_failed(&b, None);
        assert_eq!(b.buf.read_u64(0).unwrap(), 0, "not executed");
    }

    // A bad lkey for the result: a local protection error when the answer lands.
    let (a, b) = pair(&p, &ConnectAttr::default(), atomic);
    let mut sge = a.mr.sge(0, 8);
    sge.lkey ^= 0x80;
    let wr = fa(sge, b.mr.iova(), b.mr.rkey());
    requester_fails(&a, wr, WcStatus::LocProtErr, WcOpcode::FetchAdd);
    assert_eq!(qp_state(&b.qp), QpState::Rts);

    // A misaligned target never gets posted.
    let (a, b) = pair(&p, &ConnectAttr::default(), atomic);
    let e =
        a.qp.post_send(&[fa(a.mr.sge(0, 8), b.mr.iova() + 1, b.mr.rkey())])
            .unwrap_err();
    assert_eq!((e.index, e.errno), (0, sagrada_sys::Errno::EINVAL));
    assert_eq!(qp_state(&a.qp), QpState::Rts);
}

#[test]
fn rnr_retry_exc_err_when_no_receive_is_posted() {
    // rnr_retry 1: one retry, so two RNR NAKs, then the error. One SEND alone (a
    // second would draw sequence NAKs whose rewinds could send the first again), and
    // the ACK timer off (timeout 0), so that nothing else sends it again.
    let m = Machine::default_machine().unwrap();
    let p = m.process("wc");
    let attr = ConnectAttr {
        rnr_retry: 1,
        min_rnr_timer: 1,
        timeout: 0,
        ..ConnectAttr::default()
    };
    let (a, b) = pair(&p, &attr, ALL);
    a.qp.post_send(&[SendWr::send(1, &[a.mr.sge(0, 64)])])
        .unwrap();
    let wc = a.cq.poll_until(1, T).unwrap();
    assert_eq!(st(&wc), [(1, WcStatus::RnrRetryExcErr)]);
    assert_eq!(wc[0].opcode, WcOpcode::Send);
    assert_eq!(qp_state(&a.qp), QpState::Err);
    assert_eq!(m.rnics()[1].counter(Counter::RnrNaksSent), 2);
    assert_eq!(m.rnics()[0].counter(Counter::RnrNaksRcvd), 2);
    // Not an error for the responder: still RTS, and it takes a SEND once a receive
    // is there.
    b.qp.post_recv(&[RecvWr::new(10, &[b.mr.sge(0, 64)])])
        .unwrap();
    responder_untouched(&a, &b, &attr);
}

fn retry_attr() -> ConnectAttr {
    // timeout 1 (8 µs), retry_cnt 1: one retransmission after the first timeout, the
    // error at the second.
    ConnectAttr {
        timeout: 1,
        retry_cnt: 1,
        ..ConnectAttr::default()
    }
}

#[test]
fn retry_exc_err_when_the_cable_is_down() {
    let m = Machine::default_machine().unwrap();
    let p = m.process("wc");
    let attr = retry_attr();
    let (a, b) = pair(&p, &attr, ALL);
    post_two_receives(&b);
    let (to_1, to_0) = m.link_faults(0).unwrap();
    to_1.set_down(true);
    to_0.set_down(true);
    requester_fails(
        &a,
        SendWr::send(1, &[a.mr.sge(0, 64)]),
        WcStatus::RetryExcErr,
        WcOpcode::Send,
    );
    assert_eq!(m.rnics()[0].counter(Counter::Timeouts), 2);
    assert_eq!(m.rnics()[1].counter(Counter::RxPackets), 0);
    // The responder never heard of it.
    to_1.set_down(false);
    to_0.set_down(false);
    responder_untouched(&a, &b, &attr);
}

#[test]
fn retry_cnt_1_sends_the_request_once_more_before_retry_exc_err() {
    // rxe (`rxe_comp.c`): on the ACK timeout the requester rewinds and sends again at
    // once; retry_cnt counts those retries. So with retry_cnt 1 the SEND crosses the
    // (dead) cable twice.
    let m = Machine::default_machine().unwrap();
    let p = m.process("wc");
    let (a, _b) = pair(&p, &retry_attr(), ALL);
    let (to_1, to_0) = m.link_faults(0).unwrap();
    to_1.set_down(true);
    to_0.set_down(true);
    a.qp.post_send(&[SendWr::send(1, &[a.mr.sge(0, 64)]).signaled()])
        .unwrap();
    assert_eq!(
        st(&a.cq.poll_until(1, T).unwrap()),
        [(1, WcStatus::RetryExcErr)]
    );
    let nic0 = &m.rnics()[0];
    assert_eq!(nic0.counter(Counter::Timeouts), 2);
    assert_eq!(nic0.counter(Counter::Retransmits), 1);
    assert_eq!(
        to_1.dropped(),
        2,
        "the SEND and its retransmission reach the cable"
    );
}

#[test]
fn wr_flush_err_for_the_requests_after_an_error_and_errors_complete_unsignaled() {
    let m = Machine::default_machine().unwrap();
    let p = m.process("wc");
    let (a, b) = pair(&p, &ConnectAttr::default(), ALL);
    a.qp.post_recv(&[RecvWr::new(5, &[a.mr.sge(8192, 64)])])
        .unwrap();
    a.buf.fill(0x44).unwrap();
    let mut bad = a.mr.sge(0, 64);
    bad.lkey ^= 0x80;
    let write = |id, off| SendWr::write(id, &[a.mr.sge(0, 256)], b.mr.iova() + off, b.mr.rkey());
    a.qp.post_send(&[
        write(1, 0),                                   // succeeds, unsignaled: no completion
        SendWr::send(2, &[bad]),                       // fails, unsignaled: completes
        write(3, 1024),                                // flushed, unsignaled: completes
        SendWr::send(4, &[a.mr.sge(0, 8)]).signaled(), // flushed
    ])
    .unwrap();
    let wc = a.cq.poll_until(4, T).unwrap();
    let flush = WcStatus::WrFlushErr;
    assert_eq!(
        st(&wc),
        [
            (2, WcStatus::LocProtErr),
            (3, flush),
            (4, flush),
            (5, flush)
        ]
    );
    assert_eq!(
        wc.iter().map(|w| w.opcode).collect::<Vec<_>>()[..3],
        [WcOpcode::Send, WcOpcode::RdmaWrite, WcOpcode::Send]
    );
    assert_eq!(a.qp.outstanding(), (0, 0));
    // The first WRITE was sent before the error: it lands; the flushed one does not.
    let deadline = Instant::now() + T;
    while b.buf.read(0, 256).unwrap() != [0x44; 256] && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(b.buf.read(0, 256).unwrap(), [0x44; 256]);
    assert_eq!(b.buf.read(1024, 256).unwrap(), [0; 256]);
    assert_eq!(qp_state(&b.qp), QpState::Rts);
}

#[test]
fn an_rnr_nak_is_retried_until_the_receive_is_posted() {
    // rnr_retry 7 never runs out: the SEND waits for the receive.
    let m = Machine::default_machine().unwrap();
    let p = m.process("wc");
    let attr = ConnectAttr {
        rnr_retry: 7,
        min_rnr_timer: 3,
        ..ConnectAttr::default()
    };
    let (a, b) = pair(&p, &attr, ALL);
    let data: Vec<u8> = (0..3000u32).map(|i| (i * 13 + 7) as u8).collect();
    a.buf.write(0, &data).unwrap();
    a.qp.post_send(&[SendWr::send(1, &[a.mr.sge(0, 3000)]).signaled()])
        .unwrap();
    let deadline = Instant::now() + T;
    while m.rnics()[1].counter(Counter::RnrNaksSent) < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(m.rnics()[1].counter(Counter::RnrNaksSent) >= 3);
    let mut wc = [sagrada::verbs::WorkCompletion::default(); 1];
    assert_eq!(a.cq.poll(&mut wc).unwrap(), 0, "the SEND is still waiting");
    b.qp.post_recv(&[RecvWr::new(10, &[b.mr.sge(0, 4096)])])
        .unwrap();
    assert_eq!(
        st(&a.cq.poll_until(1, T).unwrap()),
        [(1, WcStatus::Success)]
    );
    let wc = b.cq.poll_until(1, T).unwrap();
    assert_eq!(st(&wc), [(10, WcStatus::Success)]);
    assert_eq!(wc[0].byte_len, 3000);
    assert_eq!(b.buf.read(0, 3000).unwrap(), data);
    assert!(m.rnics()[0].counter(Counter::RnrNaksRcvd) >= 3);
    assert_eq!(qp_state(&a.qp), QpState::Rts);
}
