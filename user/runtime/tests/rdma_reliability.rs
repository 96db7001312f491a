//! The RC transport recovers from lost packets (`reference/rdma-verbs-and-roce.md`
//! §2.2, rxe's go-back-N): with the nic0↔nic1 cable losing every n-th frame in one
//! direction or both, multi-packet RDMA WRITEs, SENDs and RDMA READs complete with
//! the right data, and the NICs' counters show the sequence NAKs and retransmissions
//! it took. Duplicate READs and atomics are answered without executing twice, and
//! PSNs wrap past 2^24.
//!
//! A small ACK timeout (code 4: 65 µs) makes timeout retransmissions quick; spurious
//! ones on a loaded machine only add duplicates, which the responder absorbs. What is
//! asserted is the outcome (data, completions) and counters that the loss forces, not
//! how many retransmissions it took.
//!
//! The loss is periodic (every n-th frame of a direction), and go-back-N resends a
//! whole window: if n divided the frames of a retransmission round, the same frame
//! would be lost in every round, for ever (a real link's loss is not periodic). So a
//! direction that carries requests loses one frame in more than a window (128 PSNs:
//! [`REQ_LOSS`]), one that carries READ responses one in more than the responses in
//! flight (4 READs of 64 packets from up to 127 PSNs past the oldest unacknowledged
//! one: [`RESP_LOSS`]); only a direction that carries nothing but cumulative ACKs may
//! lose every other frame.

use std::time::{Duration, Instant};

use sagrada::Machine;
use sagrada::verbs::{
    CompletionQueue, ConnectAttr, Context, HostBuffer, MemoryRegion, Mtu, ProtectionDomain,
    QpInitAttr, QueuePair, RecvWr, SendWr, WcOpcode, WcStatus, WorkCompletion, access, qp_cap,
    rc_connect,
};
use sagrada_hw_rnic::Counter;
use sagrada_sys::Process;

const T: Duration = Duration::from_secs(20);
const MSG: u64 = 64 * 1024;
const BUF: u64 = 4 * MSG;
/// Loss on a direction carrying requests: one frame in a prime above the window.
const REQ_LOSS: u64 = 131;
/// Loss on a direction carrying READ responses: a prime above 127 + 64.
const RESP_LOSS: u64 = 197;
const ALL: u32 =
    access::LOCAL_WRITE | access::REMOTE_WRITE | access::REMOTE_READ | access::REMOTE_ATOMIC;

struct End<'p> {
    qp: QueuePair<'p>,
    mr: MemoryRegion<'p>,
    buf: HostBuffer<'p>,
    cq: CompletionQueue<'p>,
    _pd: ProtectionDomain<'p>,
    _ctx: Context<'p>,
}

fn end(p: &Process, nic: u32) -> End<'_> {
    let ctx = Context::open(p, nic).unwrap();
    let pd = ctx.alloc_pd().unwrap();
    let cq = ctx.create_cq(256, None, 0).unwrap();
    let qp = pd
        .create_qp(&QpInitAttr::rc(&cq, &cq, qp_cap(64, 64, 4, 4, 0)))
        .unwrap();
    let buf = HostBuffer::new(p, BUF).unwrap();
    let mr = pd.reg_mr(buf.ptr(), BUF, ALL).unwrap();
    End {
        qp,
        mr,
        buf,
        cq,
        _pd: pd,
        _ctx: ctx,
    }
}

fn attr() -> ConnectAttr {
    ConnectAttr {
        path_mtu: Mtu::Mtu1024,
        timeout: 4,
        retry_cnt: 7,
        rnr_retry: 7,
        max_rd_atomic: 4,
        max_dest_rd_atomic: 4,
        ..ConnectAttr::default()
    }
}

/// QPs on nic0 (`a`) and nic1 (`b`), connected with [`attr`].
fn pair(p: &Process) -> (End<'_>, End<'_>) {
    let a = end(p, 0);
    let b = end(p, 1);
    rc_connect(&a.qp, &b.qp, &attr()).unwrap();
    (a, b)
}

/// QPs connected as [`pair`] but sending from the given first PSNs.
fn pair_from_psns(p: &Process, psn_a: u32, psn_b: u32) -> (End<'_>, End<'_>) {
    let a = end(p, 0);
    let b = end(p, 1);
    let ea = a.qp.endpoint(1, psn_a).unwrap();
    let eb = b.qp.endpoint(1, psn_b).unwrap();
    let c = attr();
    a.qp.to_init(&c).unwrap();
    b.qp.to_init(&c).unwrap();
    a.qp.to_rtr(&c, &eb).unwrap();
    b.qp.to_rtr(&c, &ea).unwrap();
    a.qp.to_rts(&c, psn_a).unwrap();
    b.qp.to_rts(&c, psn_b).unwrap();
    (a, b)
}

fn pattern(len: u64, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 10) as u8)
        .collect()
}

fn st(wc: &[WorkCompletion]) -> Vec<(u64, WcStatus, WcOpcode)> {
    wc.iter().map(|w| (w.wr_id, w.status, w.opcode)).collect()
}

fn counter(m: &Machine, nic: usize, c: Counter) -> u64 {
    m.rnics()[nic].counter(c)
}

/// Waits until `f` holds (the safety net: 20 s), then returns whether it does.
fn eventually(mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + T;
    while !f() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    true
}

/// Four 64 KiB RDMA WRITEs from `a` into `b`, each of a different pattern, every one
/// signaled; checks the completions and the data.
fn writes(a: &End<'_>, b: &End<'_>, seed: u8) {
    let mut wrs = Vec::new();
    let mut want = Vec::new();
    for i in 0..4u64 {
        let data = pattern(MSG, seed.wrapping_add(i as u8));
        a.buf.write(i * MSG, &data).unwrap();
        want.push(data);
        wrs.push(
            SendWr::write(
                i,
                &[a.mr.sge(i * MSG, MSG as u32)],
                b.mr.iova() + (3 - i) * MSG,
                b.mr.rkey(),
            )
            .signaled(),
        );
    }
    a.qp.post_send(&wrs).unwrap();
    let wc = a.cq.poll_until(4, T).unwrap();
    let ok = |i| (i, WcStatus::Success, WcOpcode::RdmaWrite);
    assert_eq!(st(&wc), [ok(0), ok(1), ok(2), ok(3)]);
    for (i, data) in want.iter().enumerate() {
        let at = (3 - i as u64) * MSG;
        assert!(
            b.buf.read(at, MSG as usize).unwrap() == *data,
            "WRITE {i} landed wrong"
        );
    }
}

/// Four 64 KiB SENDs from `a` into four receives on `b`.
fn sends(a: &End<'_>, b: &End<'_>, seed: u8) {
    let recvs: Vec<RecvWr> = (0..4u64)
        .map(|i| RecvWr::new(100 + i, &[b.mr.sge(i * MSG, MSG as u32)]))
        .collect();
    b.qp.post_recv(&recvs).unwrap();
    let mut wrs = Vec::new();
    let mut want = Vec::new();
    for i in 0..4u64 {
        let data = pattern(MSG, seed.wrapping_add(i as u8));
        a.buf.write(i * MSG, &data).unwrap();
        want.push(data);
        wrs.push(SendWr::send(i, &[a.mr.sge(i * MSG, MSG as u32)]).signaled());
    }
    a.qp.post_send(&wrs).unwrap();
    let wc = a.cq.poll_until(4, T).unwrap();
    let ok = |i| (i, WcStatus::Success, WcOpcode::Send);
    assert_eq!(st(&wc), [ok(0), ok(1), ok(2), ok(3)]);
    let wc = b.cq.poll_until(4, T).unwrap();
    let ok = |i: u64| (100 + i, WcStatus::Success, WcOpcode::Recv);
    assert_eq!(st(&wc), [ok(0), ok(1), ok(2), ok(3)]);
    assert!(wc.iter().all(|w| w.byte_len == MSG as u32));
    for (i, data) in want.iter().enumerate() {
        assert!(
            b.buf.read(i as u64 * MSG, MSG as usize).unwrap() == *data,
            "SEND {i} landed wrong"
        );
    }
}

/// Four 64 KiB RDMA READs by `a` from `b`.
fn reads(a: &End<'_>, b: &End<'_>, seed: u8) {
    let mut wrs = Vec::new();
    let mut want = Vec::new();
    a.buf.fill(0).unwrap();
    for i in 0..4u64 {
        let data = pattern(MSG, seed.wrapping_add(i as u8));
        b.buf.write(i * MSG, &data).unwrap();
        want.push(data);
        wrs.push(
            SendWr::read(
                i,
                &[a.mr.sge((3 - i) * MSG, MSG as u32)],
                b.mr.iova() + i * MSG,
                b.mr.rkey(),
            )
            .signaled(),
        );
    }
    a.qp.post_send(&wrs).unwrap();
    let wc = a.cq.poll_until(4, T).unwrap();
    let ok = |i| (i, WcStatus::Success, WcOpcode::RdmaRead);
    assert_eq!(st(&wc), [ok(0), ok(1), ok(2), ok(3)]);
    assert!(wc.iter().all(|w| w.byte_len == MSG as u32));
    for (i, data) in want.iter().enumerate() {
        let at = (3 - i as u64) * MSG;
        assert!(
            a.buf.read(at, MSG as usize).unwrap() == *data,
            "READ {i} landed wrong"
        );
    }
}

#[test]
fn writes_recover_from_lost_requests_by_sequence_naks() {
    // With an ACK timer far longer than the test (code 18: 1 s) nothing is sent twice
    // but for the loss: the first frame lost (the 131st) is a first transmission in the
    // middle of a burst, and the packet after it arrives out of sequence.
    let m = Machine::default_machine().unwrap();
    let p = m.process("rel");
    let a = end(&p, 0);
    let b = end(&p, 1);
    let c = ConnectAttr {
        timeout: 18,
        ..attr()
    };
    rc_connect(&a.qp, &b.qp, &c).unwrap();
    let (to_1, _) = m.link_faults(0).unwrap();
    to_1.drop_every(REQ_LOSS);
    writes(&a, &b, 1);
    assert!(to_1.dropped() >= 1);
    assert!(counter(&m, 1, Counter::SeqNaksSent) >= 1);
    assert!(counter(&m, 0, Counter::SeqNaksRcvd) >= 1);
    assert!(counter(&m, 0, Counter::Retransmits) >= 1);
}

#[test]
fn writes_recover_from_lost_requests_with_a_short_timer() {
    let m = Machine::default_machine().unwrap();
    let p = m.process("rel");
    let (a, b) = pair(&p);
    let (to_1, _) = m.link_faults(0).unwrap();
    to_1.drop_every(REQ_LOSS);
    writes(&a, &b, 1);
    writes(&a, &b, 2);
    assert!(to_1.dropped() >= 2);
    assert!(counter(&m, 0, Counter::Retransmits) >= 1);
}

#[test]
fn writes_recover_from_lost_acknowledgements() {
    // Losing every ACK until the responder has seen a retransmission: the data is
    // there once, the requester's timer sends again, the responder acknowledges the
    // duplicate.
    let m = Machine::default_machine().unwrap();
    let p = m.process("rel");
    let (a, b) = pair(&p);
    let (_, to_0) = m.link_faults(0).unwrap();
    to_0.set_down(true);
    let data = pattern(MSG, 9);
    a.buf.write(0, &data).unwrap();
    a.qp.post_send(&[
        SendWr::write(1, &[a.mr.sge(0, MSG as u32)], b.mr.iova(), b.mr.rkey()).signaled(),
    ])
    .unwrap();
    assert!(eventually(|| counter(&m, 1, Counter::Duplicates) >= 1));
    assert!(b.buf.read(0, MSG as usize).unwrap() == data);
    to_0.set_down(false);
    let wc = a.cq.poll_until(1, T).unwrap();
    assert_eq!(st(&wc), [(1, WcStatus::Success, WcOpcode::RdmaWrite)]);
    assert!(counter(&m, 0, Counter::Timeouts) >= 1);
    assert!(counter(&m, 0, Counter::Retransmits) >= 1);
    // Every other ACK lost: any later one acknowledges what the lost one did. Each of
    // the 8 messages asks for at least one ACK.
    let before = to_0.dropped();
    to_0.drop_every(2);
    writes(&a, &b, 2);
    sends(&a, &b, 3);
    assert!(to_0.dropped() >= before + 4);
}

#[test]
fn sends_recover_from_losses_in_both_directions() {
    let m = Machine::default_machine().unwrap();
    let p = m.process("rel");
    let (a, b) = pair(&p);
    let (to_1, to_0) = m.link_faults(0).unwrap();
    to_1.drop_every(REQ_LOSS);
    to_0.drop_every(REQ_LOSS + 6);
    sends(&a, &b, 3);
    sends(&b, &a, 4);
    assert!(to_1.dropped() >= 1 && to_0.dropped() >= 1);
    assert!(counter(&m, 0, Counter::Retransmits) >= 1);
    assert!(counter(&m, 1, Counter::Retransmits) >= 1);
}

#[test]
fn reads_recover_from_lost_responses() {
    let m = Machine::default_machine().unwrap();
    let p = m.process("rel");
    let (a, b) = pair(&p);
    let (_, to_0) = m.link_faults(0).unwrap();
    to_0.drop_every(RESP_LOSS);
    reads(&a, &b, 5);
    reads(&a, &b, 6);
    assert!(to_0.dropped() >= 2);
    // The responses after a lost one are out of sequence: dropped by the requester,
    // whose timer asks again from the gap; the responder replays from memory.
    assert!(counter(&m, 0, Counter::Duplicates) >= 1);
    assert!(counter(&m, 0, Counter::Retransmits) >= 1);
    assert!(counter(&m, 1, Counter::Duplicates) >= 1);
}

#[test]
fn a_lost_read_request_is_sent_again() {
    let m = Machine::default_machine().unwrap();
    let p = m.process("rel");
    let (a, b) = pair(&p);
    let data = pattern(MSG, 7);
    b.buf.write(0, &data).unwrap();
    let (to_1, _) = m.link_faults(0).unwrap();
    to_1.set_down(true);
    a.qp.post_send(&[
        SendWr::read(1, &[a.mr.sge(0, MSG as u32)], b.mr.iova(), b.mr.rkey()).signaled(),
    ])
    .unwrap();
    assert!(eventually(|| to_1.dropped() >= 2), "sent, and sent again");
    to_1.set_down(false);
    let wc = a.cq.poll_until(1, T).unwrap();
    assert_eq!(st(&wc), [(1, WcStatus::Success, WcOpcode::RdmaRead)]);
    assert_eq!(wc[0].byte_len, MSG as u32);
    assert!(a.buf.read(0, MSG as usize).unwrap() == data);
    assert!(counter(&m, 0, Counter::Timeouts) >= 1);
}

#[test]
fn mixed_traffic_recovers_from_losses_in_both_directions() {
    let m = Machine::default_machine().unwrap();
    let p = m.process("rel");
    let (a, b) = pair(&p);
    let (to_1, to_0) = m.link_faults(0).unwrap();
    to_1.drop_every(REQ_LOSS);
    to_0.drop_every(RESP_LOSS);
    for round in 0..3u8 {
        writes(&a, &b, 10 + round);
        sends(&a, &b, 20 + round);
        reads(&a, &b, 30 + round);
        writes(&b, &a, 40 + round);
    }
    assert!(to_1.dropped() >= 1 && to_0.dropped() >= 1);
}

#[test]
fn a_fetch_add_whose_ack_is_lost_is_executed_once() {
    let m = Machine::default_machine().unwrap();
    let p = m.process("rel");
    let (a, b) = pair(&p);
    b.buf.write_u64(64, 1000).unwrap();
    a.buf.write_u64(0, 0xdead).unwrap();
    let (_, to_0) = m.link_faults(0).unwrap();
    to_0.set_down(true);
    a.qp.post_send(&[
        SendWr::fetch_add(1, a.mr.sge(0, 8), b.mr.iova() + 64, b.mr.rkey(), 5).signaled(),
    ])
    .unwrap();
    // The responder has executed it and seen it again (the requester's timer).
    assert!(eventually(|| counter(&m, 1, Counter::Duplicates) >= 2));
    assert_eq!(b.buf.read_u64(64).unwrap(), 1005);
    to_0.set_down(false);
    let wc = a.cq.poll_until(1, T).unwrap();
    assert_eq!(st(&wc), [(1, WcStatus::Success, WcOpcode::FetchAdd)]);
    assert_eq!(wc[0].byte_len, 8);
    assert_eq!(a.buf.read_u64(0).unwrap(), 1000, "the original value");
    assert_eq!(b.buf.read_u64(64).unwrap(), 1005, "added once");
}

#[test]
fn a_compare_and_swap_whose_ack_is_lost_answers_with_its_first_result() {
    // Executed twice, the second compare would fail and return the swapped value.
    let m = Machine::default_machine().unwrap();
    let p = m.process("rel");
    let (a, b) = pair(&p);
    b.buf.write_u64(0, 7).unwrap();
    let (_, to_0) = m.link_faults(0).unwrap();
    to_0.set_down(true);
    a.qp.post_send(&[
        SendWr::cmp_swap(1, a.mr.sge(8, 8), b.mr.iova(), b.mr.rkey(), 7, 99).signaled(),
    ])
    .unwrap();
    assert!(eventually(|| counter(&m, 1, Counter::Duplicates) >= 2));
    assert_eq!(b.buf.read_u64(0).unwrap(), 99);
    to_0.set_down(false);
    let wc = a.cq.poll_until(1, T).unwrap();
    assert_eq!(st(&wc), [(1, WcStatus::Success, WcOpcode::CompSwap)]);
    assert_eq!(a.buf.read_u64(8).unwrap(), 7, "the value it swapped");
    assert_eq!(b.buf.read_u64(0).unwrap(), 99);
}

#[test]
fn atomics_under_loss_each_execute_exactly_once() {
    // 64 FETCH_ADDs of 1, up to 4 in flight (so at most 4 frames a round each way),
    // on a cable losing requests and answers.
    let m = Machine::default_machine().unwrap();
    let p = m.process("rel");
    let (a, b) = pair(&p);
    let (to_1, to_0) = m.link_faults(0).unwrap();
    to_1.drop_every(5);
    to_0.drop_every(7);
    let n = 64u64;
    for batch in 0..n / 16 {
        let wrs: Vec<SendWr> = (0..16)
            .map(|i| {
                let id = batch * 16 + i;
                SendWr::fetch_add(id, a.mr.sge(id * 8, 8), b.mr.iova(), b.mr.rkey(), 1).signaled()
            })
            .collect();
        a.qp.post_send(&wrs).unwrap();
        let wc = a.cq.poll_until(16, T).unwrap();
        assert_eq!(wc.len(), 16);
        for (i, w) in wc.iter().enumerate() {
            assert_eq!(
                (w.wr_id, w.status),
                (batch * 16 + i as u64, WcStatus::Success)
            );
        }
    }
    assert_eq!(b.buf.read_u64(0).unwrap(), n);
    // Each saw a different original value: 0..n in posting order.
    let olds: Vec<u64> = (0..n).map(|i| a.buf.read_u64(i * 8).unwrap()).collect();
    assert_eq!(olds, (0..n).collect::<Vec<_>>());
    assert!(to_1.dropped() >= 1 && to_0.dropped() >= 1);
}

#[test]
fn a_read_whose_response_is_lost_is_replayed() {
    let m = Machine::default_machine().unwrap();
    let p = m.process("rel");
    let (a, b) = pair(&p);
    let data = pattern(4096, 77);
    b.buf.write(0, &data).unwrap();
    let (_, to_0) = m.link_faults(0).unwrap();
    to_0.set_down(true);
    a.qp.post_send(&[SendWr::read(1, &[a.mr.sge(0, 4096)], b.mr.iova(), b.mr.rkey()).signaled()])
        .unwrap();
    assert!(eventually(|| counter(&m, 1, Counter::Duplicates) >= 1));
    to_0.set_down(false);
    let wc = a.cq.poll_until(1, T).unwrap();
    assert_eq!(st(&wc), [(1, WcStatus::Success, WcOpcode::RdmaRead)]);
    assert_eq!(wc[0].byte_len, 4096);
    assert_eq!(a.buf.read(0, 4096).unwrap(), data);
}

#[test]
fn psns_wrap_past_2_to_the_24() {
    // Each side starts 16 to 48 PSNs before the wrap; every message below is 64
    // packets, so the very first ones cross it.
    let m = Machine::default_machine().unwrap();
    let p = m.process("rel");
    let (a, b) = pair_from_psns(&p, 0xff_fff0, 0xff_ffd0);
    writes(&a, &b, 50);
    sends(&a, &b, 51);
    reads(&a, &b, 52);
    sends(&b, &a, 53);
    let fa = SendWr::fetch_add(9, a.mr.sge(0, 8), b.mr.iova() + 8, b.mr.rkey(), 3).signaled();
    b.buf.write_u64(8, 10).unwrap();
    a.qp.post_send(&[fa]).unwrap();
    let wc = a.cq.poll_until(1, T).unwrap();
    assert_eq!(st(&wc), [(9, WcStatus::Success, WcOpcode::FetchAdd)]);
    assert_eq!(
        (a.buf.read_u64(0).unwrap(), b.buf.read_u64(8).unwrap()),
        (10, 13)
    );
}

#[test]
fn psns_wrap_past_2_to_the_24_under_loss() {
    let m = Machine::default_machine().unwrap();
    let p = m.process("rel");
    let (a, b) = pair_from_psns(&p, 0xff_ffe0, 0xff_fff8);
    let (to_1, to_0) = m.link_faults(0).unwrap();
    to_1.drop_every(REQ_LOSS);
    to_0.drop_every(RESP_LOSS);
    writes(&a, &b, 60);
    sends(&a, &b, 61);
    reads(&a, &b, 62);
    sends(&b, &a, 63);
    assert!(to_1.dropped() >= 1 && to_0.dropped() >= 1);
    assert!(counter(&m, 0, Counter::Retransmits) >= 1);
}

#[test]
fn a_sequence_nak_after_a_read_with_lost_responses_still_completes_the_read() {
    // READ 0 is executed but its response lost; READ 1's request is lost; READ 2's
    // arrives out of sequence and the responder NAKs (sequence error) at READ 1. The
    // NAK acknowledges the SENDs and WRITEs before READ 1, not READ 0, which has no
    // data yet: the requester must still ask for READ 0 again (rxe's `req_retry`
    // restarts from the oldest unfinished work request). The ACK timer is off the
    // scale of the test (code 24: 69 s) so that only the NAK drives the recovery.
    let m = Machine::default_machine().unwrap();
    let p = m.process("rel");
    let a = end(&p, 0);
    let b = end(&p, 1);
    let c = ConnectAttr {
        timeout: 24,
        ..attr()
    };
    rc_connect(&a.qp, &b.qp, &c).unwrap();
    let data = pattern(3 * 1024, 11);
    b.buf.write(0, &data).unwrap();
    let read = |i: u64| {
        SendWr::read(
            i,
            &[a.mr.sge(i * 1024, 1024)],
            b.mr.iova() + i * 1024,
            b.mr.rkey(),
        )
        .signaled()
    };
    let (to_1, to_0) = m.link_faults(0).unwrap();
    to_0.set_down(true);
    a.qp.post_send(&[read(0)]).unwrap();
    assert!(eventually(|| to_0.dropped() >= 1), "READ 0 answered");
    to_1.set_down(true);
    a.qp.post_send(&[read(1)]).unwrap();
    assert!(eventually(|| to_1.dropped() >= 1), "READ 1 lost");
    to_1.set_down(false);
    to_0.set_down(false);
    a.qp.post_send(&[read(2)]).unwrap();
    let wc = a.cq.poll_until(3, T).unwrap();
    let ok = |i| (i, WcStatus::Success, WcOpcode::RdmaRead);
    assert_eq!(st(&wc), [ok(0), ok(1), ok(2)]);
    assert!(a.buf.read(0, 3 * 1024).unwrap() == data);
    assert_eq!(counter(&m, 1, Counter::SeqNaksSent), 1);
}

#[test]
fn a_sequence_nak_after_an_atomic_with_a_lost_answer_still_completes_the_atomic() {
    // As above with a FETCH_ADD in READ 0's place: it must be asked for again (and
    // answered from the responder's saved result, not executed twice).
    let m = Machine::default_machine().unwrap();
    let p = m.process("rel");
    let a = end(&p, 0);
    let b = end(&p, 1);
    let c = ConnectAttr {
        timeout: 24,
        ..attr()
    };
    rc_connect(&a.qp, &b.qp, &c).unwrap();
    let data = pattern(2048, 12);
    b.buf.write(1024, &data).unwrap();
    b.buf.write_u64(0, 40).unwrap();
    let read = |i: u64| {
        SendWr::read(
            i,
            &[a.mr.sge(i * 1024, 1024)],
            b.mr.iova() + i * 1024,
            b.mr.rkey(),
        )
        .signaled()
    };
    let (to_1, to_0) = m.link_faults(0).unwrap();
    to_0.set_down(true);
    a.qp.post_send(&[SendWr::fetch_add(0, a.mr.sge(0, 8), b.mr.iova(), b.mr.rkey(), 2).signaled()])
        .unwrap();
    assert!(eventually(|| to_0.dropped() >= 1), "the FETCH_ADD answered");
    to_1.set_down(true);
    a.qp.post_send(&[read(1)]).unwrap();
    assert!(eventually(|| to_1.dropped() >= 1), "READ 1 lost");
    to_1.set_down(false);
    to_0.set_down(false);
    a.qp.post_send(&[read(2)]).unwrap();
    let wc = a.cq.poll_until(3, T).unwrap();
    assert_eq!(
        st(&wc),
        [
            (0, WcStatus::Success, WcOpcode::FetchAdd),
            (1, WcStatus::Success, WcOpcode::RdmaRead),
            (2, WcStatus::Success, WcOpcode::RdmaRead)
        ]
    );
    assert_eq!(a.buf.read_u64(0).unwrap(), 40);
    assert_eq!(b.buf.read_u64(0).unwrap(), 42, "added once");
    assert!(a.buf.read(1024, 2048).unwrap() == data);
}
