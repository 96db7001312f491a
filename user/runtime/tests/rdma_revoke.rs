//! An exporter moves or revokes a buffer while RDMA traffic runs on a dma-buf region
//! of it (the dynamic, on-demand-paging import: mlx5's kind of NIC).
//!
//! No exporter of the stack moves its buffers (the SG1's HBM never moves), so the test
//! plays one: host memory that relocates, and can be revoked. The rules it checks are
//! the dma-buf contract's: the exporter calls `move_notify` under the buffer's lock
//! before it touches the old pages; from then on the NIC must not write them (no stale
//! DMA); the region faults and maps the new place at its next use, so traffic resumes;
//! a buffer that cannot be mapped again fails the traffic with errors, and nothing
//! hangs.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sagrada::Machine;
use sagrada::verbs::{
    ConnectAttr, Context, HostBuffer, QpInitAttr, SendWr, WcStatus, WorkCompletion, access, qp_cap,
    rc_connect,
};
use sagrada_hw_fabric::{DmaDirection, Fabric, PhysRange};
use sagrada_hw_rnic::Counter;
use sagrada_kernel_core::{Errno, KResult, OpenFlags, lock};
use sagrada_kernel_dmabuf::{Attachment, DmaBuf, DmaBufOps, ExportInfo, PinOps, SgEntry, SgTable};

const SIZE: u64 = 256 << 10;
const MSG: u64 = 16 << 10;
const SLOTS: u64 = SIZE / MSG;
const WRITES: u64 = 96;
const T: Duration = Duration::from_secs(30);

/// Host memory the test can move to other pages, or revoke.
struct Mover {
    fabric: Arc<Fabric>,
    at: Arc<Mutex<PhysRange>>,
    revoked: Arc<AtomicBool>,
    maps: Arc<AtomicUsize>,
}

impl DmaBufOps for Mover {
    fn map_dma_buf(&self, attach: &Attachment, dir: DmaDirection) -> KResult<SgTable> {
        if self.revoked.load(Ordering::SeqCst) {
            return Err(Errno::ENODEV);
        }
        let at = *lock(&self.at);
        let iova = self
            .fabric
            .dma_map_extents(attach.dev(), &[at], dir)
            .map_err(|_| Errno::ENOMEM)?;
        self.maps.fetch_add(1, Ordering::SeqCst);
        Ok(SgTable::new(vec![SgEntry {
            dma_addr: iova,
            len: SIZE,
        }]))
    }

    fn unmap_dma_buf(&self, attach: &Attachment, sgt: SgTable, _dir: DmaDirection) {
        for e in sgt.entries() {
            let _ = self.fabric.dma_unmap(attach.dev(), e.dma_addr, e.len);
        }
    }

    fn release(&self) {}

    fn pin_ops(&self) -> Option<&dyn PinOps> {
        Some(self)
    }
}

impl PinOps for Mover {
    fn pin(&self, _attach: &Attachment) -> KResult<()> {
        Ok(())
    }
    fn unpin(&self, _attach: &Attachment) {}
}

/// A movable buffer exported as a dma-buf, with the two places it may live.
struct Movable {
    buf: DmaBuf,
    first: PhysRange,
    second: PhysRange,
    at: Arc<Mutex<PhysRange>>,
    revoked: Arc<AtomicBool>,
    maps: Arc<AtomicUsize>,
}

impl Movable {
    fn new(machine: &Machine) -> Self {
        let (kernel, fabric) = (machine.kernel(), machine.fabric());
        let first = kernel.frames().alloc(SIZE, true).unwrap()[0];
        let second = kernel.frames().alloc(SIZE, true).unwrap()[0];
        let at = Arc::new(Mutex::new(first));
        let revoked = Arc::new(AtomicBool::new(false));
        let maps = Arc::new(AtomicUsize::new(0));
        let buf = machine
            .dmabuf()
            .export(ExportInfo {
                exp_name: "mover".to_owned(),
                ops: Box::new(Mover {
                    fabric: fabric.clone(),
                    at: at.clone(),
                    revoked: revoked.clone(),
                    maps: maps.clone(),
                }),
                size: SIZE,
                flags: OpenFlags::RDWR,
                resv: None,
            })
            .unwrap();
        Movable {
            buf,
            first,
            second,
            at,
            revoked,
            maps,
        }
    }

    /// The exporter's move, in the contract's order: under the lock, tell the
    /// importers first, then copy to the new pages, and poison the old ones (so a
    /// stale write would show).
    fn move_to_second(&self, fabric: &Fabric) {
        let host = fabric.host_memory();
        let guard = self.buf.resv().lock(None).unwrap();
        self.buf.move_notify(&guard).unwrap();
        let mut bytes = vec![0u8; SIZE as usize];
        host.read(self.first.start.raw(), &mut bytes).unwrap();
        host.write(self.second.start.raw(), &bytes).unwrap();
        *lock(&self.at) = self.second;
        host.fill(self.first.start.raw(), SIZE, 0xee).unwrap();
        drop(guard);
    }

    /// The exporter takes the memory away for good (a device reset, a hot unplug).
    fn revoke(&self, fabric: &Fabric) {
        let guard = self.buf.resv().lock(None).unwrap();
        self.revoked.store(true, Ordering::SeqCst);
        self.buf.move_notify(&guard).unwrap();
        fabric
            .host_memory()
            .fill(self.first.start.raw(), SIZE, 0xee)
            .unwrap();
        drop(guard);
    }

    fn read(&self, fabric: &Fabric, at: PhysRange) -> Vec<u8> {
        let mut bytes = vec![0u8; SIZE as usize];
        fabric
            .host_memory()
            .read(at.start.raw(), &mut bytes)
            .unwrap();
        bytes
    }
}

fn message(i: u64) -> Vec<u8> {
    (0..MSG)
        .map(|b| (i as u8) ^ (b >> 4) as u8 ^ 0x5a)
        .collect()
}

/// Polls until `n` completions came (or the safety timeout).
fn poll(cq: &sagrada::verbs::CompletionQueue<'_>, n: usize) -> Vec<WorkCompletion> {
    let wc = cq.poll_until(n, T).unwrap();
    assert_eq!(wc.len(), n, "completions missing: the traffic hung");
    wc
}

/// nic0 RDMA-WRITEs message `i` into slot `i % SLOTS` of a dma-buf region on nic1
/// (responder side), or from a dma-buf region on nic0 (requester side). The exporter
/// acts after the first completions, while the rest are in flight: the cable is down
/// meanwhile, so they are certainly still in flight (sent, lost, to be sent again) when
/// it does, whatever the speed of the host.
fn traffic(revoke: bool, requester_side: bool) {
    let machine = Machine::default_machine().unwrap();
    let fabric = machine.fabric().clone();
    let movable = Movable::new(&machine);
    let p = machine.process("revoke");
    let fd = machine
        .kernel()
        .with_task(p.pid(), |t| movable.buf.fd(t, OpenFlags::RDWR))
        .unwrap();
    let c0 = Context::open(&p, 0u32).unwrap();
    let c1 = Context::open(&p, 1u32).unwrap();
    let (pd0, pd1) = (c0.alloc_pd().unwrap(), c1.alloc_pd().unwrap());
    let (cq0, cq1) = (
        c0.create_cq(256, None, 0).unwrap(),
        c1.create_cq(256, None, 0).unwrap(),
    );
    let cap = qp_cap(WRITES as u32, 4, 1, 1, 0);
    let q0 = pd0.create_qp(&QpInitAttr::rc(&cq0, &cq0, cap)).unwrap();
    let q1 = pd1.create_qp(&QpInitAttr::rc(&cq1, &cq1, cap)).unwrap();
    let attr = ConnectAttr {
        // An ODP fault at the responder answers RNR NAK: come back soon, for ever.
        min_rnr_timer: 1,
        rnr_retry: 7,
        // Lost packets are sent again after 4.096 µs × 2^4, for ever.
        timeout: 4,
        retry_cnt: 7,
        ..ConnectAttr::default()
    };
    rc_connect(&q0, &q1, &attr).unwrap();
    let all = access::LOCAL_WRITE | access::REMOTE_WRITE | access::REMOTE_READ;
    let host = HostBuffer::new(&p, WRITES * MSG).unwrap();
    // The dma-buf region on one side, host memory on the other.
    let (src, dst);
    if requester_side {
        src = pd0.reg_dmabuf_mr(0, SIZE, 0, fd, all).unwrap();
        dst = pd1.reg_mr(host.ptr(), WRITES * MSG, all).unwrap();
        // The source holds one message per slot.
        for i in 0..SLOTS {
            fabric
                .host_memory()
                .write(movable.first.start.raw() + i * MSG, &message(i))
                .unwrap();
        }
    } else {
        for i in 0..WRITES {
            host.write(i * MSG, &message(i)).unwrap();
        }
        src = pd0.reg_mr(host.ptr(), WRITES * MSG, all).unwrap();
        dst = pd1.reg_dmabuf_mr(0, SIZE, 0, fd, all).unwrap();
    }
    assert_eq!(
        movable.maps.load(Ordering::SeqCst),
        1,
        "mapped at registration"
    );

    let wrs: Vec<SendWr> = (0..WRITES)
        .map(|i| {
            let (from, to) = if requester_side {
                ((i % SLOTS) * MSG, i * MSG)
            } else {
                (i * MSG, (i % SLOTS) * MSG)
            };
            SendWr::write(i, &[src.sge(from, MSG as u32)], dst.iova() + to, dst.rkey()).signaled()
        })
        .collect();
    q0.post_send(&wrs[..8]).unwrap();
    let mut wcs = poll(&cq0, 8);
    let (there, back) = machine.link_faults(0).unwrap().clone();
    there.set_down(true);
    back.set_down(true);
    q0.post_send(&wrs[8..]).unwrap();
    // Until the NIC has filled its window of 128 packets and sent it again after a
    // timeout: every later write is then in flight or queued behind them.
    let sent = || machine.rnics()[0].counter(Counter::TxPackets);
    let before = sent();
    while sent() < before + 2 * 128 {
        std::thread::yield_now();
    }
    if revoke {
        movable.revoke(&fabric);
    } else {
        movable.move_to_second(&fabric);
    }
    there.set_down(false);
    back.set_down(false);
    wcs.extend(poll(&cq0, (WRITES - 8) as usize));
    assert_eq!(
        wcs.iter().map(|w| w.wr_id).collect::<Vec<_>>(),
        (0..WRITES).collect::<Vec<_>>(),
        "every write completed, in order"
    );

    // No write reached the old pages after the exporter's move_notify.
    assert!(
        movable
            .read(&fabric, movable.first)
            .iter()
            .all(|&b| b == 0xee),
        "a stale DMA landed in the pages the exporter took back"
    );
    let nic = &machine.rnics()[if requester_side { 0 } else { 1 }];
    if revoke {
        // The traffic fails cleanly: the region could not be mapped again, the write
        // that needed it fails, the rest are flushed; the QP is in error.
        let first_bad = wcs
            .iter()
            .position(|w| w.status != WcStatus::Success)
            .expect("a write must fail after the revoke");
        let want = if requester_side {
            WcStatus::LocProtErr
        } else {
            WcStatus::RemAccessErr
        };
        assert_eq!(wcs[first_bad].status, want, "{:?}", wcs[first_bad]);
        assert!(
            wcs[first_bad + 1..]
                .iter()
                .all(|w| w.status == WcStatus::WrFlushErr),
            "after the failure every write is flushed"
        );
        assert_eq!(q0.query().unwrap().0.qp_state, 6, "the requester is in ERR");
        assert_eq!(movable.maps.load(Ordering::SeqCst), 1, "never mapped again");
    } else {
        // The traffic resumed after the fault mapped the new place.
        assert!(
            wcs.iter().all(|w| w.status == WcStatus::Success),
            "{:?}",
            wcs.iter().find(|w| w.status != WcStatus::Success)
        );
        assert_eq!(movable.maps.load(Ordering::SeqCst), 2, "mapped again once");
        assert!(nic.counter(Counter::PageFaults) >= 1);
        if requester_side {
            for i in 0..WRITES {
                assert_eq!(
                    host.read(i * MSG, MSG as usize).unwrap(),
                    message(i % SLOTS)
                );
            }
        } else {
            let now = movable.read(&fabric, movable.second);
            for slot in 0..SLOTS {
                // The last write of each slot is what the buffer holds.
                let last = (0..WRITES).filter(|i| i % SLOTS == slot).max().unwrap();
                let at = (slot * MSG) as usize;
                assert_eq!(
                    &now[at..at + MSG as usize],
                    &message(last)[..],
                    "slot {slot}"
                );
            }
        }
    }
    drop((src, dst));
    assert!(
        movable.buf.attached_devices().is_empty(),
        "detached at dereg"
    );
}

#[test]
fn a_move_mid_traffic_at_the_responder_remaps_and_no_stale_write_lands() {
    traffic(false, false);
}

#[test]
fn a_move_mid_traffic_at_the_requester_remaps_and_no_stale_read_is_sent() {
    traffic(false, true);
}

#[test]
fn a_revoke_mid_traffic_at_the_responder_fails_the_writes_and_nothing_hangs() {
    traffic(true, false);
}

#[test]
fn a_revoke_mid_traffic_at_the_requester_fails_the_writes_and_nothing_hangs() {
    traffic(true, true);
}
