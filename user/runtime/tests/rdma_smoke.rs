//! First light: two RC QPs on nic0 and nic1, SEND/RECV and RDMA WRITE between host
//! buffers, over the in-memory cable.

use std::time::Duration;

use sagrada::Machine;
use sagrada::verbs::{
    ConnectAttr, Context, HostBuffer, QpInitAttr, RecvWr, SendWr, WcOpcode, WcStatus, access,
    qp_cap, rc_connect,
};

const T: Duration = Duration::from_secs(20);

#[test]
fn send_recv_and_write_between_the_two_nics() {
    let m = Machine::default_machine().unwrap();
    let p = m.process("smoke");
    let c0 = Context::open(&p, 0u32).unwrap();
    let c1 = Context::open(&p, 1u32).unwrap();
    let (pd0, pd1) = (c0.alloc_pd().unwrap(), c1.alloc_pd().unwrap());
    let (cq0, cq1) = (
        c0.create_cq(64, None, 0).unwrap(),
        c1.create_cq(64, None, 0).unwrap(),
    );
    let cap = qp_cap(16, 16, 1, 1, 0);
    let q0 = pd0.create_qp(&QpInitAttr::rc(&cq0, &cq0, cap)).unwrap();
    let q1 = pd1.create_qp(&QpInitAttr::rc(&cq1, &cq1, cap)).unwrap();
    rc_connect(&q0, &q1, &ConnectAttr::default()).unwrap();

    let len = 10_000u64;
    let b0 = HostBuffer::new(&p, len).unwrap();
    let b1 = HostBuffer::new(&p, len).unwrap();
    let all = access::LOCAL_WRITE | access::REMOTE_WRITE | access::REMOTE_READ;
    let mr0 = pd0.reg_mr(b0.ptr(), len, all).unwrap();
    let mr1 = pd1.reg_mr(b1.ptr(), len, all).unwrap();
    let data: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
    b0.write(0, &data).unwrap();

    q1.post_recv(&[RecvWr::new(7, &[mr1.sge(0, len as u32)])])
        .unwrap();
    q0.post_send(&[SendWr::send(1, &[mr0.sge(0, len as u32)]).signaled()])
        .unwrap();
    let wc = cq0.poll_until(1, T).unwrap();
    assert_eq!(wc.len(), 1);
    assert_eq!(
        (wc[0].status, wc[0].opcode),
        (WcStatus::Success, WcOpcode::Send)
    );
    let wc = cq1.poll_until(1, T).unwrap();
    assert_eq!((wc[0].wr_id, wc[0].status), (7, WcStatus::Success));
    assert_eq!(wc[0].byte_len, len as u32);
    assert_eq!(b1.read(0, len as usize).unwrap(), data);

    b0.fill(0x5a).unwrap();
    q0.post_send(&[SendWr::write(2, &[mr0.sge(0, 4096)], mr1.iova() + 100, mr1.rkey()).signaled()])
        .unwrap();
    let wc = cq0.poll_until(1, T).unwrap();
    assert_eq!(
        (wc[0].status, wc[0].opcode),
        (WcStatus::Success, WcOpcode::RdmaWrite)
    );
    let got = b1.read(0, len as usize).unwrap();
    assert_eq!(&got[100..4196], &[0x5a; 4096][..]);
    assert_eq!(&got[..100], &data[..100]);
}
