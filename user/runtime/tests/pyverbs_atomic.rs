//! Port of rdma-core's `tests/test_atomic.py` (RC only: the NIC has no XRC): 64-bit
//! compare-and-swap and fetch-and-add between a client and a server on `nic0` (two
//! contexts, as pyverbs runs them; the NIC loops packets for its own GID back), with
//! pyverbs' `atomic_traffic` and `validate_atomic`, and the negative cases, each
//! expecting the exact completion status the responder's or requester's check gives.
//!
//! As in `RCAtomic`, each side has an 8-byte region and QP access LOCAL_WRITE |
//! REMOTE_ATOMIC; the sender's region is filled with bytes of `sender_val` (2), the
//! receiver's with bytes of `receiver_val` (1), and the work request carries
//! `int8b(sender_val)` as compare/add value and 0 as swap value. Values made of one
//! repeated byte read the same in either byte order (the NIC's memory is little
//! endian, pyverbs reads big endian). Beyond the original, each case checks both
//! regions after a failure too, and the atomics also run on dma-buf regions in SG1
//! HBM (`accel0` for the client, `accel1` for the server).

mod common_rdma;

use common_rdma::{Flavour, HbmDmaBuf, Side, assert_cq_empty, assert_flavour, machine, rc_pair};

use sagrada::accel::Device;
use sagrada::verbs::{
    ConnectAttr, HostBuffer, MemoryRegion, PostError, QpState, SendWr, WcOpcode, WcStatus,
    WorkCompletion, access,
};
use sagrada_sys::{Errno, Process};

const LW: u32 = access::LOCAL_WRITE;
const RA: u32 = access::REMOTE_ATOMIC;

/// pyverbs' `AtomicTest.iters`.
const ITERS: usize = 10;

/// pyverbs' `int8b_from_int`: the byte `v` eight times.
fn int8b(v: u8) -> u64 {
    u64::from_ne_bytes([v; 8])
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    CmpAndSwp,
    FetchAndAdd,
}

/// Where a player's region lives.
#[derive(Debug)]
enum Mem<'d, 'p> {
    Host(HostBuffer<'p>),
    Hbm(HbmDmaBuf<'d, 'p>),
}

impl Mem<'_, '_> {
    fn write_u64(&self, v: u64) {
        match self {
            Mem::Host(b) => b.write_u64(0, v).unwrap(),
            Mem::Hbm(b) => b.write_u64(0, v),
        }
    }

    fn read_u64(&self) -> u64 {
        match self {
            Mem::Host(b) => b.read_u64(0).unwrap(),
            Mem::Hbm(b) => b.read_u64(0),
        }
    }
}

/// One side of pyverbs' `RCAtomic`: its QP and its region, plus the peer's region
/// as the side knows it (`raddr`, `rkey`) and the lkey it puts in its SGE, which the
/// negative cases spoil.
#[derive(Debug)]
struct Player<'d, 'p> {
    side: Side<'p>,
    mem: Mem<'d, 'p>,
    mr: MemoryRegion<'p>,
    raddr: u64,
    rkey: u32,
    lkey: u32,
}

/// What `RCAtomic` is made with.
#[derive(Clone, Copy, Debug)]
struct Setup {
    msg_size: u64,
    qp_access: u32,
    mr_access: u32,
    /// Regions on dma-bufs in SG1 HBM (of a NIC of this flavour), else host memory.
    hbm: Option<Flavour>,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            msg_size: 8,
            qp_access: LW | RA,
            mr_access: LW | RA,
            hbm: None,
        }
    }
}

/// `create_players(RCAtomic, ...)` and `sync_remote_attr`: a client and a server, each
/// knowing the other's region.
fn players<'d, 'p>(
    p: &'p Process,
    accels: &'d [Device<'p>],
    setup: Setup,
) -> (Player<'d, 'p>, Player<'d, 'p>) {
    let attr = ConnectAttr {
        access: setup.qp_access,
        ..ConnectAttr::default()
    };
    let (client, server) = rc_pair(p, 0, &attr);
    if let Some(flavour) = setup.hbm {
        assert_flavour(&client.ctx, flavour);
    }
    let player = |side: Side<'p>, index: usize| {
        let (mem, mr) = match setup.hbm {
            None => {
                let buf = HostBuffer::new(p, setup.msg_size).unwrap();
                let mr = side
                    .pd
                    .reg_mr(buf.ptr(), setup.msg_size, setup.mr_access)
                    .unwrap();
                (Mem::Host(buf), mr)
            }
            Some(_) => {
                let buf = HbmDmaBuf::new(&accels[index], setup.msg_size);
                let mr = side
                    .pd
                    .reg_dmabuf_mr(0, setup.msg_size, 0, buf.fd, setup.mr_access)
                    .unwrap();
                (Mem::Hbm(buf), mr)
            }
        };
        let lkey = mr.lkey();
        Player {
            side,
            mem,
            mr,
            raddr: 0,
            rkey: 0,
            lkey,
        }
    };
    let (mut client, mut server) = (player(client, 0), player(server, 1));
    (client.raddr, client.rkey) = (server.mr.iova(), server.mr.rkey());
    (server.raddr, server.rkey) = (client.mr.iova(), client.mr.rkey());
    (client, server)
}

/// `get_atomic_send_elements` and `send`: one signaled atomic from `from` to its
/// peer's region, with compare/add `int8b(cmp_add)` and swap 0.
fn post_atomic(from: &Player<'_, '_>, op: Op, cmp_add: u8) -> Result<(), PostError> {
    let mut sge = from.mr.sge(0, 8);
    sge.lkey = from.lkey;
    let wr = match op {
        Op::CmpAndSwp => SendWr::cmp_swap(1, sge, from.raddr, from.rkey, int8b(cmp_add), 0),
        Op::FetchAndAdd => SendWr::fetch_add(1, sge, from.raddr, from.rkey, int8b(cmp_add)),
    };
    from.side.qp.post_send(&[wr.signaled()])
}

/// `validate_atomic`: the sender got the receiver's old value; the receiver holds the
/// swapped or added one.
fn validate_atomic(
    op: Op,
    receiver: &Player<'_, '_>,
    sender: &Player<'_, '_>,
    receiver_val: u8,
    sender_val: u8,
) {
    let recv_expected = match op {
        Op::CmpAndSwp if receiver_val == sender_val => 0,
        Op::CmpAndSwp => int8b(receiver_val),
        Op::FetchAndAdd => int8b(receiver_val).wrapping_add(int8b(sender_val)),
    };
    assert_eq!(
        sender.mem.read_u64(),
        int8b(receiver_val),
        "{op:?}: the sender's region holds the original value"
    );
    assert_eq!(
        receiver.mem.read_u64(),
        recv_expected,
        "{op:?}: the receiver's region"
    );
}

fn expect_success(wc: WorkCompletion, op: Op) {
    let opcode = match op {
        Op::CmpAndSwp => WcOpcode::CompSwap,
        Op::FetchAndAdd => WcOpcode::FetchAdd,
    };
    assert_eq!(
        (wc.wr_id, wc.status, wc.opcode, wc.byte_len),
        (1, WcStatus::Success, opcode, 8),
        "{wc:?}"
    );
}

/// pyverbs' `atomic_traffic`: `ITERS` times, the client runs `op` on the server's
/// region, then the server on the client's, each checked.
fn atomic_traffic(
    client: &Player<'_, '_>,
    server: &Player<'_, '_>,
    op: Op,
    receiver_val: u8,
    sender_val: u8,
) {
    for _ in 0..ITERS {
        for (sender, receiver) in [(client, server), (server, client)] {
            sender.mem.write_u64(int8b(sender_val));
            receiver.mem.write_u64(int8b(receiver_val));
            post_atomic(sender, op, sender_val).unwrap();
            expect_success(sender.side.poll_one(), op);
            validate_atomic(op, receiver, sender, receiver_val, sender_val);
        }
    }
    // The responder of an atomic writes no completion.
    assert_cq_empty(&client.side.cq);
    assert_cq_empty(&server.side.cq);
}

fn run_cmp_and_swap(setup: Setup) {
    let m = machine(setup.hbm.unwrap_or(Flavour::Odp));
    let p = m.process("pyverbs");
    let accels = accels(&p, setup);
    let (client, server) = players(&p, &accels, setup);
    atomic_traffic(&client, &server, Op::CmpAndSwp, 1, 2);
    // Equal compare value: the swap happens.
    atomic_traffic(&client, &server, Op::CmpAndSwp, 1, 1);
}

fn run_fetch_and_add(setup: Setup) {
    let m = machine(setup.hbm.unwrap_or(Flavour::Odp));
    let p = m.process("pyverbs");
    let accels = accels(&p, setup);
    let (client, server) = players(&p, &accels, setup);
    atomic_traffic(&client, &server, Op::FetchAndAdd, 1, 2);
}

/// `accel0` and `accel1` if the regions are in HBM.
fn accels(p: &Process, setup: Setup) -> Vec<Device<'_>> {
    match setup.hbm {
        Some(_) => vec![Device::open(p, 0).unwrap(), Device::open(p, 1).unwrap()],
        None => Vec::new(),
    }
}

#[test]
fn test_atomic_cmp_and_swap() {
    run_cmp_and_swap(Setup::default());
}

#[test]
fn test_atomic_fetch_and_add() {
    run_fetch_and_add(Setup::default());
}

#[test]
fn test_atomic_cmp_and_swap_on_dmabuf_mr() {
    run_cmp_and_swap(Setup {
        hbm: Some(Flavour::Odp),
        ..Setup::default()
    });
}

#[test]
fn test_atomic_cmp_and_swap_on_dmabuf_mr_pinned() {
    run_cmp_and_swap(Setup {
        hbm: Some(Flavour::Pinned),
        ..Setup::default()
    });
}

#[test]
fn test_atomic_fetch_and_add_on_dmabuf_mr() {
    run_fetch_and_add(Setup {
        hbm: Some(Flavour::Odp),
        ..Setup::default()
    });
}

#[test]
fn test_atomic_fetch_and_add_on_dmabuf_mr_pinned() {
    run_fetch_and_add(Setup {
        hbm: Some(Flavour::Pinned),
        ..Setup::default()
    });
}

// ---------------------------------------------------------------- negative cases

/// The first iteration of `atomic_traffic` with FETCH_AND_ADD, expected to fail: the
/// client's completion has `status`; afterwards the client's region holds
/// `client_after` and the server's `server_after`; the client's QP is in error, and so
/// is the server's if it refused the request (a NAK for an error moves the responder to
/// ERR, as rxe's does).
fn expect_fetch_and_add_error(
    client: &Player<'_, '_>,
    server: &Player<'_, '_>,
    status: WcStatus,
    client_after: u64,
    server_after: u64,
) {
    client.mem.write_u64(int8b(2));
    server.mem.write_u64(int8b(1));
    post_atomic(client, Op::FetchAndAdd, 2).unwrap();
    let wc = client.side.poll_one();
    assert_eq!((wc.wr_id, wc.status), (1, status), "{wc:?}");
    assert_eq!(wc.qp_num, client.side.qp.qp_num());
    assert_eq!(client.mem.read_u64(), client_after, "the client's region");
    assert_eq!(server.mem.read_u64(), server_after, "the server's region");
    assert_eq!(
        client.side.qp.query().unwrap().0.qp_state,
        QpState::Err as u8
    );
    assert_cq_empty(&client.side.cq);
    assert_cq_empty(&server.side.cq);
}

/// Runs `case` on players of `setup`, host regions, on the default NIC.
fn negative(setup: Setup, case: impl FnOnce(&mut Player<'_, '_>, &mut Player<'_, '_>)) {
    let m = machine(Flavour::Odp);
    let p = m.process("pyverbs");
    let (mut client, mut server) = players(&p, &[], setup);
    case(&mut client, &mut server);
}

/// Both QPs allow local write only: the responder's QP refuses atomics (invalid
/// request NAK).
#[test]
fn test_atomic_invalid_qp_access() {
    let setup = Setup {
        qp_access: LW,
        ..Setup::default()
    };
    negative(setup, |client, server| {
        expect_fetch_and_add_error(client, server, WcStatus::RemInvReqErr, int8b(2), int8b(1));
    });
}

/// Both regions allow local write only, so they have no rkey (0), which is what the
/// client targets: a remote access error.
#[test]
fn test_atomic_invalid_mr_access() {
    let setup = Setup {
        mr_access: LW,
        ..Setup::default()
    };
    negative(setup, |client, server| {
        assert_eq!(client.rkey, 0);
        expect_fetch_and_add_error(client, server, WcStatus::RemAccessErr, int8b(2), int8b(1));
    });
}

/// The same with a valid rkey that lacks REMOTE_ATOMIC (its region allows remote read
/// and write): the key's access check refuses it.
#[test]
fn test_atomic_invalid_mr_access_of_a_key_without_remote_atomic() {
    let setup = Setup {
        mr_access: LW | access::REMOTE_READ | access::REMOTE_WRITE,
        ..Setup::default()
    };
    negative(setup, |client, server| {
        assert_ne!(client.rkey, 0);
        expect_fetch_and_add_error(client, server, WcStatus::RemAccessErr, int8b(2), int8b(1));
    });
}

/// A misaligned target (`raddr + 1` in a 9-byte region): refused at post with
/// `EINVAL`, as rxe's `validate_send_wr` does; nothing is sent and the QP stays
/// usable.
#[test]
fn test_atomic_non_aligned_addr() {
    let setup = Setup {
        msg_size: 9,
        ..Setup::default()
    };
    negative(setup, |client, server| {
        client.raddr += 1;
        client.mem.write_u64(int8b(2));
        server.mem.write_u64(int8b(1));
        assert_eq!(
            post_atomic(client, Op::FetchAndAdd, 2),
            Err(PostError {
                index: 0,
                errno: Errno::EINVAL
            })
        );
        assert_cq_empty(&client.side.cq);
        assert_eq!(server.mem.read_u64(), int8b(1));
        client.raddr -= 1;
        post_atomic(client, Op::FetchAndAdd, 2).unwrap();
        expect_success(client.side.poll_one(), Op::FetchAndAdd);
        validate_atomic(Op::FetchAndAdd, server, client, 1, 2);
    });
}

/// The client's SGE carries `lkey + 1`: the atomic runs at the responder (as with
/// rxe, the local key is checked when the result comes back), and the result cannot
/// be written back: a local protection error, the client's region untouched.
#[test]
fn test_atomic_invalid_lkey() {
    negative(Setup::default(), |client, server| {
        client.lkey += 1;
        expect_fetch_and_add_error(client, server, WcStatus::LocProtErr, int8b(2), int8b(3));
    });
}

/// The client targets `rkey + 1`: a remote access error, the server's region untouched.
#[test]
fn test_atomic_invalid_rkey() {
    negative(Setup::default(), |client, server| {
        client.rkey += 1;
        expect_fetch_and_add_error(client, server, WcStatus::RemAccessErr, int8b(2), int8b(1));
    });
}
