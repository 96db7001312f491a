//! The RC transport, as the NIC runs it per queue pair: the requester (segments work
//! requests into packets, PSNs, the window of unacknowledged packets, go-back-N
//! retransmission on timeout or sequence NAK, RNR back-off), the responder (in-order
//! execution of requests, RNR NAK when no receive is posted, duplicate replay of READs
//! and atomics, NAKs for invalid requests and access errors) and the completer
//! (acknowledgements and responses retire work requests in order).
//!
//! It follows Linux's rxe (`rxe_req.c`, `rxe_resp.c`, `rxe_comp.c`) in behaviour,
//! summarised in `reference/rdma-verbs-and-roce.md` §1.7 and §2.2. Payload moves by
//! DMA straight between the packet and the memory a key translates to (host pages or
//! a peer's BAR): there is no staging buffer on either side.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sagrada_hw_fabric::{DeviceId, Fabric, Iova};
use sagrada_hw_rnic_abi::cmd::{CreateQp, EVENT_PAGE_FAULT, EVENT_QP_FATAL, QpAttr};
use sagrada_hw_rnic_abi::queue::{
    self, Cqe, RECV_WQE_DATA, RecvWqe, SEND_WQE_DATA, SendWqe, Sge, VENDOR_BAD_WQE, VENDOR_NAK,
    VENDOR_NONE,
};
use sagrada_hw_rnic_abi::verbs::{
    Mtu, QpState, RETRY_INFINITE, RNR_TIMER_US, WcOpcode, WcStatus, WrOpcode, access,
    ack_timeout_ns, send_flags,
};
use sagrada_hw_rnic_abi::{MAX_INLINE, MAX_PKT_PER_ACK, MAX_SGE, MAX_UNACKED_PSNS};
use zerocopy::FromBytes;

use crate::link::Frame;
use crate::objects::{Cq, CqPush, MemError, Mkey, Table, Translation};
use crate::pkt::{Pkt, op, syn};
use crate::wire::{PSN_MASK, psn_add, psn_diff};
use crate::{Counter, Counters};

/// Atomics of every NIC are executed under one lock, as rxe does, so two NICs'
/// compare-and-swaps on the same word cannot interleave their read and write.
static ATOMIC_LOCK: Mutex<()> = Mutex::new(());

/// A ring in host memory.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ring {
    pub base: u64,
    pub log_size: u32,
}

impl Ring {
    fn slot(&self, index: u32, stride: usize) -> u64 {
        self.base + u64::from(index & ((1 << self.log_size) - 1)) * stride as u64
    }
}

/// A send work request the requester has started.
#[derive(Debug)]
struct SendOp {
    index: u32,
    opcode: WrOpcode,
    wqe: SendWqe,
    sges: Vec<Sge>,
    inline: Vec<u8>,
    len: u64,
    first_psn: u32,
    npkts: u32,
    /// Sent at least once (READs and atomics count towards `max_rd_atomic` from then).
    issued: bool,
    /// Retired: acknowledged, or answered.
    done: bool,
    /// The error it completes with.
    error: Option<(WcStatus, u32)>,
    /// READ: bytes of the answer landed.
    got: u64,
}

impl SendOp {
    fn last_psn(&self) -> u32 {
        psn_add(self.first_psn, self.npkts - 1)
    }

    fn is_rd_atomic(&self) -> bool {
        matches!(
            self.opcode,
            WrOpcode::RdmaRead | WrOpcode::AtomicCmpAndSwp | WrOpcode::AtomicFetchAndAdd
        )
    }

    fn contains(&self, psn: u32) -> bool {
        let d = psn_diff(psn, self.first_psn);
        d >= 0 && (d as u32) < self.npkts
    }
}

/// A message the responder is in the middle of.
#[derive(Debug)]
enum InMsg {
    Send {
        wqe_index: u32,
        wr_id: u64,
        sges: Vec<Sge>,
        offset: u64,
    },
    Write {
        key: u32,
        va: u64,
        left: u64,
        total: u64,
    },
}

/// A READ or atomic the responder answered, kept to replay duplicates.
#[derive(Debug)]
enum Resource {
    Read {
        first_psn: u32,
        npkts: u32,
        va: u64,
        rkey: u32,
        len: u64,
    },
    Atomic {
        psn: u32,
        orig: u64,
    },
}

/// A queue pair's context in the NIC.
#[derive(Debug)]
pub(crate) struct Qp {
    pub qpn: u32,
    pub pdn: u32,
    pub send_cqn: u32,
    pub recv_cqn: u32,
    pub uar: u32,
    pub sq_sig_all: bool,
    pub sq: Ring,
    pub rq: Ring,
    init: CreateQp,
    pub attr: QpAttr,
    pub state: QpState,
    // Requester.
    pub sq_pi: u32,
    sq_next: u32,
    ops: VecDeque<SendOp>,
    cursor: usize,
    cursor_pkt: u32,
    next_psn: u32,
    una: u32,
    noack: u32,
    retry_left: u8,
    rnr_left: u8,
    timer: Option<Instant>,
    rnr_until: Option<Instant>,
    /// Waiting for the driver to resolve a fault on this key.
    pub stalled: Option<u32>,
    /// Go back to `una` once unstalled.
    rewind_on_resume: bool,
    // Responder.
    pub rq_pi: u32,
    rq_ci: u32,
    epsn: u32,
    msn: u32,
    nak_sent: bool,
    msg: Option<InMsg>,
    resources: VecDeque<Resource>,
}

/// What the transport needs from the rest of the NIC while it runs a step.
pub(crate) struct Cx<'a> {
    pub fabric: &'a Fabric,
    pub dev: DeviceId,
    pub mkeys: &'a mut Table<Mkey>,
    pub cqs: &'a mut Table<Cq>,
    pub counters: &'a mut Counters,
    /// The port's GID.
    pub gid: [u8; 16],
    /// Frames to send, in order; every [`BURST`] of them goes to `transmit` at once, so
    /// a long message streams to the peer while the rest is being built.
    pub out: &'a mut Vec<Frame>,
    /// Sends a burst (to the port, or back into the NIC for its own GID).
    pub transmit: &'a dyn Fn(Vec<Frame>),
    /// Events to raise: (type, object, data).
    pub events: &'a mut Vec<(u8, u32, u32)>,
    /// CQs whose event must fire.
    pub fire: &'a mut Vec<u32>,
    pub now: Instant,
    pub scratch: &'a mut Vec<(u64, u64)>,
}

/// Frames a step builds before it hands them to the carrier.
pub(crate) const BURST: usize = 64;

impl Cx<'_> {
    /// Counts and sends the frames built so far.
    pub fn flush(&mut self) {
        if self.out.is_empty() {
            return;
        }
        let frames = std::mem::take(self.out);
        let bytes: u64 = frames.iter().map(|f| f.bytes.len() as u64).sum();
        self.counters.add(Counter::TxPackets, frames.len() as u64);
        self.counters.add(Counter::TxBytes, bytes);
        // 100 Gb/s: 12.5 bytes per ns.
        self.counters.add(Counter::WireTimeNs, bytes * 2 / 25);
        (self.transmit)(frames);
    }

    /// Encodes a packet for `dgid` from QP `qpn` with a payload of `len` bytes that
    /// `fill` writes straight into the frame, and queues it. A packet the wire layer
    /// refuses (impossible for the fields the transport sets) is dropped and logged.
    fn emit(
        &mut self,
        pkt: &Pkt,
        dgid: [u8; 16],
        qpn: u32,
        len: usize,
        fill: impl FnOnce(&mut Self, &mut [u8]) -> Result<(), MemError>,
    ) -> Result<(), MemError> {
        let mut bytes = Vec::with_capacity(len + 64);
        let sgid = self.gid;
        match crate::pkt::encode_with(pkt, len, sgid, dgid, qpn, &mut bytes, |dst| {
            fill(self, dst).map_err(Built::Mem)
        }) {
            Ok(()) => {
                self.out.push(Frame {
                    sgid,
                    dgid,
                    udp_sport: crate::wire::udp_sport_for_qpn(qpn),
                    bytes,
                });
                if self.out.len() >= BURST {
                    self.flush();
                }
                Ok(())
            }
            Err(Built::Mem(e)) => Err(e),
            Err(Built::Wire(e)) => {
                tracing::error!("rnic: QP {qpn:#x} built a packet the wire refuses: {e}");
                Ok(())
            }
        }
    }

    /// Looks a key up and checks an access through it (no translation).
    fn check(
        &mut self,
        key: u32,
        pdn: u32,
        need: u32,
        addr: u64,
        len: u64,
    ) -> Result<(), MemError> {
        match self.mkeys.get(key >> 8) {
            Some(mkey) if mkey.key == key => mkey.check(pdn, need, addr, len),
            _ => Err(MemError::BadKey),
        }
    }

    /// Looks a key up and translates an access through it.
    fn translate(
        &mut self,
        key: u32,
        pdn: u32,
        need: u32,
        addr: u64,
        len: u64,
    ) -> Result<(), MemError> {
        let Some(mkey) = self.mkeys.get(key >> 8) else {
            return Err(MemError::BadKey);
        };
        if mkey.key != key {
            return Err(MemError::BadKey);
        }
        mkey.translate(pdn, need, addr, len, self.scratch)
    }

    /// Records a fault on an on-demand-paging key (one event per fault).
    fn fault(&mut self, key: u32, qpn: u32) {
        if let Some(mkey) = self.mkeys.get_mut(key >> 8)
            && let Translation::Invalid { fault_raised } = &mut mkey.state
            && !*fault_raised
        {
            *fault_raised = true;
            self.counters.add(Counter::PageFaults, 1);
            self.events.push((EVENT_PAGE_FAULT, key, qpn));
        }
    }

    /// DMA-reads what the last translation covered into `dst`.
    fn read_pieces(&mut self, dst: &mut [u8]) -> Result<(), MemError> {
        let mut at = 0;
        for &(addr, n) in self.scratch.iter() {
            let n = n as usize;
            let report = self
                .fabric
                .dma_read(self.dev, Iova(addr), &mut dst[at..at + n])
                .map_err(|_| MemError::Dma)?;
            self.counters.add(Counter::DmaTimeNs, report.device_time_ns);
            at += n;
        }
        self.counters.add(Counter::DmaReadBytes, at as u64);
        Ok(())
    }

    /// DMA-writes `src` to what the last translation covered.
    fn write_pieces(&mut self, src: &[u8]) -> Result<(), MemError> {
        let mut at = 0;
        for &(addr, n) in self.scratch.iter() {
            let n = n as usize;
            let report = self
                .fabric
                .dma_write(self.dev, Iova(addr), &src[at..at + n])
                .map_err(|_| MemError::Dma)?;
            self.counters.add(Counter::DmaTimeNs, report.device_time_ns);
            at += n;
        }
        self.counters.add(Counter::DmaWriteBytes, at as u64);
        Ok(())
    }

    /// Gathers `dst.len()` bytes at `offset` of an SGE list (local reads).
    fn gather(
        &mut self,
        pdn: u32,
        sges: &[Sge],
        offset: u64,
        dst: &mut [u8],
    ) -> Result<(), MemError> {
        self.sg_walk(pdn, sges, offset, dst.len() as u64, 0, |cx, at, n| {
            cx.read_pieces(&mut dst[at..at + n])
        })
    }

    /// Scatters `src` at `offset` of an SGE list (local writes: LOCAL_WRITE needed).
    fn scatter(&mut self, pdn: u32, sges: &[Sge], offset: u64, src: &[u8]) -> Result<(), MemError> {
        self.sg_walk(
            pdn,
            sges,
            offset,
            src.len() as u64,
            access::LOCAL_WRITE,
            |cx, at, n| cx.write_pieces(&src[at..at + n]),
        )
    }

    fn sg_walk(
        &mut self,
        pdn: u32,
        sges: &[Sge],
        offset: u64,
        len: u64,
        need: u32,
        mut io: impl FnMut(&mut Self, usize, usize) -> Result<(), MemError>,
    ) -> Result<(), MemError> {
        let (mut skip, mut left, mut at) = (offset, len, 0usize);
        for sge in sges {
            if left == 0 {
                break;
            }
            let sl = u64::from(sge.length);
            if skip >= sl {
                skip -= sl;
                continue;
            }
            let n = (sl - skip).min(left);
            self.translate(sge.lkey, pdn, need, sge.addr + skip, n)?;
            io(self, at, n as usize)?;
            at += n as usize;
            left -= n;
            skip = 0;
        }
        if left != 0 {
            return Err(MemError::Range);
        }
        Ok(())
    }

    /// Writes a completion; a CQ that overflows goes to error (the caller moves its
    /// QPs to ERR).
    fn complete(&mut self, cqn: u32, cqe: Cqe, solicited: bool) -> bool {
        let Some(cq) = self.cqs.get_mut(cqn) else {
            return false;
        };
        match cq.push(self.fabric, self.dev, cqe, solicited) {
            CqPush::Written(fire) => {
                if fire {
                    self.fire.push(cqn);
                }
                true
            }
            CqPush::Overflow => {
                self.events
                    .push((sagrada_hw_rnic_abi::cmd::EVENT_CQ_ERR, cqn, 0));
                false
            }
        }
    }
}

/// Why building a packet failed.
pub(crate) enum Built {
    Mem(MemError),
    Wire(crate::wire::WireError),
}

impl From<crate::wire::WireError> for Built {
    fn from(e: crate::wire::WireError) -> Self {
        Built::Wire(e)
    }
}

fn sge_total(sges: &[Sge]) -> u64 {
    sges.iter().map(|s| u64::from(s.length)).sum()
}

impl Qp {
    /// A QP in RESET, as `CMD_CREATE_QP` describes it.
    pub fn new(qpn: u32, c: &CreateQp) -> Self {
        Qp {
            qpn,
            pdn: c.pdn,
            send_cqn: c.send_cqn,
            recv_cqn: c.recv_cqn,
            uar: c.uar,
            sq_sig_all: c.sq_sig_all != 0,
            sq: Ring {
                base: c.sq,
                log_size: c.log_sq_size,
            },
            rq: Ring {
                base: c.rq,
                log_size: c.log_rq_size,
            },
            init: *c,
            attr: QpAttr {
                port_num: 1,
                path_mtu: Mtu::Mtu1024 as u8,
                ..QpAttr::default()
            },
            state: QpState::Reset,
            sq_pi: 0,
            sq_next: 0,
            ops: VecDeque::new(),
            cursor: 0,
            cursor_pkt: 0,
            next_psn: 0,
            una: 0,
            noack: 0,
            retry_left: 0,
            rnr_left: 0,
            timer: None,
            rnr_until: None,
            stalled: None,
            rewind_on_resume: false,
            rq_pi: 0,
            rq_ci: 0,
            epsn: 0,
            msn: 0,
            nak_sent: false,
            msg: None,
            resources: VecDeque::new(),
        }
    }

    /// Back to RESET: every index and PSN to zero, nothing in flight.
    pub fn reset(&mut self) {
        *self = Qp::new(self.qpn, &self.init);
    }

    fn mtu(&self) -> u64 {
        Mtu::from_raw(self.attr.path_mtu).map_or(1024, |m| u64::from(m.bytes()))
    }

    fn npkts(&self, len: u64) -> u32 {
        len.div_ceil(self.mtu()).max(1) as u32
    }

    /// Applies a state change the command layer validated. Entering RTR loads the
    /// receive PSN, RTS the send PSN and retry counts; ERR flushes.
    pub fn enter(&mut self, state: QpState, cx: &mut Cx<'_>) {
        let from = self.state;
        self.state = state;
        match state {
            QpState::Reset => self.reset(),
            QpState::Rtr if from != QpState::Rtr => {
                self.epsn = self.attr.rq_psn & PSN_MASK;
            }
            QpState::Rts if from != QpState::Rts => {
                self.next_psn = self.attr.sq_psn & PSN_MASK;
                self.una = self.next_psn;
                self.retry_left = self.attr.retry_cnt;
                self.rnr_left = self.attr.rnr_retry;
            }
            QpState::Err => self.flush(cx),
            _ => {}
        }
    }

    /// Retry counts changed by an RTS→RTS modify.
    pub fn reload_retry(&mut self) {
        self.retry_left = self.attr.retry_cnt;
        self.rnr_left = self.attr.rnr_retry;
    }

    /// Goes to ERR on its own. `notify`: a responder's error, which the consumer learns
    /// of only through an asynchronous event (`EVENT_QP_FATAL`); a requester's error is
    /// reported by its error completion alone, as IB specifies.
    fn fail(&mut self, cx: &mut Cx<'_>, notify: bool) {
        if self.state != QpState::Err {
            self.state = QpState::Err;
            if notify {
                cx.events.push((EVENT_QP_FATAL, self.qpn, 0));
            }
        }
        self.flush(cx);
    }

    /// In ERR: every outstanding and posted work request completes with
    /// WR_FLUSH_ERR, sends first, then receives.
    pub fn flush(&mut self, cx: &mut Cx<'_>) {
        if self.state != QpState::Err {
            return;
        }
        self.timer = None;
        self.rnr_until = None;
        self.msg = None;
        while let Some(op) = self.ops.pop_front() {
            let status = op.error.map_or(WcStatus::WrFlushErr, |e| e.0);
            let vendor = op.error.map_or(VENDOR_NONE, |e| e.1);
            let wc = op_to_wc(op.opcode);
            self.send_cqe(cx, op.wqe.wr_id, op.index, wc, status, vendor, 0);
        }
        self.cursor = 0;
        while self.sq_next != self.sq_pi {
            let index = self.sq_next;
            self.sq_next = self.sq_next.wrapping_add(1);
            let (wr_id, opcode) = match self.read_send_wqe(cx, index) {
                Some(w) => (w.wr_id, w.opcode),
                None => (0, 0),
            };
            let wc = WrOpcode::from_raw(opcode).map_or(WcOpcode::Send, op_to_wc);
            self.send_cqe(cx, wr_id, index, wc, WcStatus::WrFlushErr, VENDOR_NONE, 0);
        }
        while self.rq_ci != self.rq_pi {
            let index = self.rq_ci;
            self.rq_ci = self.rq_ci.wrapping_add(1);
            let wr_id = self.read_recv_wqe(cx, index).map_or(0, |(w, _)| w.wr_id);
            self.recv_cqe(
                cx,
                wr_id,
                index,
                WcOpcode::Recv,
                WcStatus::WrFlushErr,
                0,
                None,
                false,
            );
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn send_cqe(
        &mut self,
        cx: &mut Cx<'_>,
        wr_id: u64,
        index: u32,
        opcode: WcOpcode,
        status: WcStatus,
        vendor: u32,
        byte_len: u32,
    ) {
        let cqe = Cqe {
            wr_id,
            byte_len,
            qp_num: self.qpn,
            vendor_err: vendor,
            opcode: opcode as u8,
            status: status as u8,
            wqe_counter: index,
            ..Cqe::default()
        };
        if !cx.complete(self.send_cqn, cqe, false) && self.state != QpState::Err {
            self.state = QpState::Err;
            cx.events.push((EVENT_QP_FATAL, self.qpn, 0));
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn recv_cqe(
        &mut self,
        cx: &mut Cx<'_>,
        wr_id: u64,
        index: u32,
        opcode: WcOpcode,
        status: WcStatus,
        byte_len: u32,
        imm: Option<u32>,
        solicited: bool,
    ) {
        let cqe = Cqe {
            wr_id,
            byte_len,
            imm_data: imm.unwrap_or(0),
            qp_num: self.qpn,
            src_qp: self.attr.dest_qp_num,
            opcode: opcode as u8,
            status: status as u8,
            wc_flags: if imm.is_some() { queue::WC_WITH_IMM } else { 0 },
            wqe_counter: index,
            ..Cqe::default()
        };
        if !cx.complete(self.recv_cqn, cqe, solicited) && self.state != QpState::Err {
            self.state = QpState::Err;
            cx.events.push((EVENT_QP_FATAL, self.qpn, 0));
        }
    }

    fn read_send_wqe(&self, cx: &mut Cx<'_>, index: u32) -> Option<SendWqe> {
        let mut bytes = [0u8; SEND_WQE_DATA];
        cx.fabric
            .dma_read(
                cx.dev,
                Iova(self.sq.slot(index, queue::SEND_WQE_SIZE)),
                &mut bytes,
            )
            .ok()?;
        SendWqe::read_from_bytes(&bytes).ok()
    }

    fn read_recv_wqe(&self, cx: &mut Cx<'_>, index: u32) -> Option<(RecvWqe, Vec<Sge>)> {
        let mut bytes = [0u8; queue::RECV_WQE_SIZE];
        cx.fabric
            .dma_read(
                cx.dev,
                Iova(self.rq.slot(index, queue::RECV_WQE_SIZE)),
                &mut bytes,
            )
            .ok()?;
        let wqe = RecvWqe::read_from_bytes(&bytes[..RECV_WQE_DATA]).ok()?;
        if wqe.num_sge > MAX_SGE {
            return Some((wqe, Vec::new()));
        }
        let sges = (0..wqe.num_sge as usize)
            .filter_map(|i| {
                let at = RECV_WQE_DATA + i * size_of::<Sge>();
                Sge::read_from_bytes(&bytes[at..at + size_of::<Sge>()]).ok()
            })
            .collect();
        Some((wqe, sges))
    }

    // ---------------------------------------------------------------- requester

    /// Whether the requester could send now (used to decide whether to run again
    /// without waiting).
    pub fn wants_to_send(&self, now: Instant) -> bool {
        self.state == QpState::Rts
            && self.stalled.is_none()
            && self.rnr_until.is_none_or(|t| now >= t)
            && (self.cursor < self.ops.len() || self.sq_next != self.sq_pi)
            && psn_diff(self.cursor_psn(), self.una) < MAX_UNACKED_PSNS as i32
    }

    fn cursor_psn(&self) -> u32 {
        match self.ops.get(self.cursor) {
            Some(op) => psn_add(op.first_psn, self.cursor_pkt),
            None => self.next_psn,
        }
    }

    /// Fetches and checks the next posted send WQE.
    fn fetch(&mut self, cx: &mut Cx<'_>) -> bool {
        if self.sq_next == self.sq_pi {
            return false;
        }
        let index = self.sq_next;
        self.sq_next = self.sq_next.wrapping_add(1);
        let mut raw = [0u8; queue::SEND_WQE_SIZE];
        let read = cx.fabric.dma_read(
            cx.dev,
            Iova(self.sq.slot(index, queue::SEND_WQE_SIZE)),
            &mut raw,
        );
        let read_ok = read.is_ok();
        let wqe = read_ok
            .then_some(())
            .and_then(|_| SendWqe::read_from_bytes(&raw[..SEND_WQE_DATA]).ok())
            .unwrap_or_default();
        let opcode = WrOpcode::from_raw(wqe.opcode);
        let inline = wqe.send_flags & send_flags::INLINE != 0;
        let mut op = SendOp {
            index,
            opcode: opcode.unwrap_or(WrOpcode::Send),
            wqe,
            sges: Vec::new(),
            inline: Vec::new(),
            len: 0,
            first_psn: self.next_psn,
            npkts: 1,
            issued: false,
            done: false,
            error: None,
            got: 0,
        };
        let mut bad = !read_ok || opcode.is_none();
        if inline && !bad {
            let n = wqe.inline_len as usize;
            if n > MAX_INLINE as usize
                || !matches!(
                    op.opcode,
                    WrOpcode::Send
                        | WrOpcode::SendWithImm
                        | WrOpcode::RdmaWrite
                        | WrOpcode::RdmaWriteWithImm
                )
            {
                bad = true;
            } else {
                op.inline = raw[SEND_WQE_DATA..SEND_WQE_DATA + n].to_vec();
                op.len = n as u64;
            }
        } else if !bad {
            if u32::from(wqe.num_sge) > MAX_SGE {
                bad = true;
            } else {
                op.sges = (0..wqe.num_sge as usize)
                    .filter_map(|i| {
                        let at = SEND_WQE_DATA + i * size_of::<Sge>();
                        Sge::read_from_bytes(&raw[at..at + size_of::<Sge>()]).ok()
                    })
                    .collect();
                op.len = sge_total(&op.sges);
            }
        }
        if !bad
            && matches!(
                op.opcode,
                WrOpcode::AtomicCmpAndSwp | WrOpcode::AtomicFetchAndAdd
            )
        {
            bad = op.len < 8 || wqe.remote_addr & 7 != 0;
        }
        if !bad && op.len > u64::from(sagrada_hw_rnic_abi::MAX_MSG_SIZE) {
            op.error = Some((WcStatus::LocLenErr, VENDOR_BAD_WQE));
        }
        if bad {
            op.error = Some((WcStatus::LocQpOpErr, VENDOR_BAD_WQE));
        }
        op.npkts = match op.opcode {
            WrOpcode::AtomicCmpAndSwp | WrOpcode::AtomicFetchAndAdd => 1,
            _ => self.npkts(op.len),
        };
        if op.error.is_some() {
            op.npkts = 0;
            op.done = true;
        } else {
            self.next_psn = psn_add(self.next_psn, op.npkts);
        }
        self.ops.push_back(op);
        true
    }

    /// Sends what the window allows (at most `budget` packets). Returns packets sent.
    pub fn send_some(&mut self, cx: &mut Cx<'_>, budget: usize) -> usize {
        let mut sent = 0;
        while sent < budget && self.state == QpState::Rts && self.stalled.is_none() {
            if self.rnr_until.is_some_and(|t| cx.now < t) {
                break;
            }
            self.rnr_until = None;
            if self.cursor >= self.ops.len() && !self.fetch(cx) {
                break;
            }
            let op = &self.ops[self.cursor];
            let rd_out = if !op.issued
                && (op.is_rd_atomic() || op.wqe.send_flags & send_flags::FENCE != 0)
            {
                self.ops
                    .iter()
                    .filter(|o| o.is_rd_atomic() && o.issued && !o.done)
                    .count() as u32
            } else {
                0
            };
            if op.error.is_some() {
                // A bad WQE: it completes in order with its error.
                self.cursor += 1;
                self.cursor_pkt = 0;
                self.retire(cx);
                continue;
            }
            let psn = psn_add(op.first_psn, self.cursor_pkt);
            if psn_diff(psn, self.una) >= MAX_UNACKED_PSNS as i32 {
                break;
            }
            if op.is_rd_atomic()
                && !op.issued
                && rd_out >= u32::from(self.attr.max_rd_atomic.max(1))
            {
                break;
            }
            if op.wqe.send_flags & send_flags::FENCE != 0 && !op.issued && rd_out > 0 {
                break;
            }
            match self.build(cx, psn) {
                Ok(()) => sent += 1,
                Err(MemError::Fault(key)) => {
                    cx.fault(key, self.qpn);
                    self.stalled = Some(key);
                    break;
                }
                Err(e) => {
                    let op = &mut self.ops[self.cursor];
                    op.error = Some((WcStatus::LocProtErr, e.vendor()));
                    op.done = true;
                    self.cursor += 1;
                    self.cursor_pkt = 0;
                    self.retire(cx);
                }
            }
        }
        sent
    }

    /// Builds and queues the packet at `psn` of the op at the cursor, and advances.
    fn build(&mut self, cx: &mut Cx<'_>, psn: u32) -> Result<(), MemError> {
        let mtu = self.mtu();
        let (pdn, dest_qp, dgid) = (self.pdn, self.attr.dest_qp_num, self.attr.dgid);
        let k = self.cursor_pkt;
        let op = &self.ops[self.cursor];
        let mut pkt = Pkt {
            dest_qp,
            psn,
            ..Pkt::default()
        };
        // The payload: (offset in the message, bytes).
        let mut payload = (0u64, 0usize);
        let mut whole_op = false;
        match op.opcode {
            WrOpcode::RdmaRead => {
                let off = u64::from(k) * mtu;
                pkt.opcode = op::READ_REQUEST;
                pkt.reth = Some((
                    op.wqe.remote_addr + off,
                    op.wqe.rkey,
                    (op.len - off.min(op.len)) as u32,
                ));
                pkt.ack_req = true;
                whole_op = true;
            }
            WrOpcode::AtomicCmpAndSwp | WrOpcode::AtomicFetchAndAdd => {
                pkt.opcode = if op.opcode == WrOpcode::AtomicCmpAndSwp {
                    op::CMP_SWAP
                } else {
                    op::FETCH_ADD
                };
                pkt.atomic = Some((
                    op.wqe.remote_addr,
                    op.wqe.rkey,
                    if op.opcode == WrOpcode::AtomicCmpAndSwp {
                        op.wqe.swap
                    } else {
                        op.wqe.compare_add
                    },
                    op.wqe.compare_add,
                ));
                pkt.ack_req = true;
                whole_op = true;
            }
            _ => {
                let off = u64::from(k) * mtu;
                let n = (op.len - off).min(mtu) as usize;
                let first = k == 0;
                let last = k + 1 == op.npkts;
                let write = matches!(op.opcode, WrOpcode::RdmaWrite | WrOpcode::RdmaWriteWithImm);
                let imm = matches!(
                    op.opcode,
                    WrOpcode::SendWithImm | WrOpcode::RdmaWriteWithImm
                );
                let base = if write {
                    op::WRITE_FIRST
                } else {
                    op::SEND_FIRST
                };
                pkt.opcode = base
                    + match (first, last, imm) {
                        (true, true, false) => 4,
                        (true, true, true) => 5,
                        (true, false, _) => 0,
                        (false, false, _) => 1,
                        (false, true, false) => 2,
                        (false, true, true) => 3,
                    };
                if write && first {
                    pkt.reth = Some((op.wqe.remote_addr, op.wqe.rkey, op.len as u32));
                }
                if imm && last {
                    pkt.imm = Some(op.wqe.imm_data);
                }
                pkt.solicited = last && op.wqe.send_flags & send_flags::SOLICITED != 0;
                payload = (off, n);
                pkt.ack_req = last || self.noack + 1 >= MAX_PKT_PER_ACK;
                if last {
                    whole_op = true;
                }
            }
        }
        let (off, n) = payload;
        let op = &self.ops[self.cursor];
        cx.emit(&pkt, dgid, self.qpn, n, |cx, dst| {
            if !op.inline.is_empty() {
                dst.copy_from_slice(&op.inline[off as usize..off as usize + n]);
                Ok(())
            } else if n > 0 {
                cx.gather(pdn, &op.sges, off, dst)
            } else {
                Ok(())
            }
        })?;
        self.noack = if pkt.ack_req { 0 } else { self.noack + 1 };
        let op = &mut self.ops[self.cursor];
        op.issued = true;
        if whole_op {
            self.cursor += 1;
            self.cursor_pkt = 0;
        } else {
            self.cursor_pkt += 1;
        }
        if self.timer.is_none() {
            self.arm_timer(cx.now);
        }
        Ok(())
    }

    fn arm_timer(&mut self, now: Instant) {
        self.timer = ack_timeout_ns(self.attr.timeout).map(|ns| now + Duration::from_nanos(ns));
    }

    /// Go-back-N: send again from `psn`.
    fn rewind(&mut self, psn: u32) {
        if let Some(i) = self.ops.iter().position(|o| !o.done && o.contains(psn)) {
            let op = &self.ops[i];
            self.cursor = i;
            self.cursor_pkt = psn_diff(psn, op.first_psn) as u32;
            if op.opcode == WrOpcode::RdmaRead {
                // A READ resumes where its answer stopped.
                self.cursor_pkt = (op.got / self.mtu()) as u32;
            }
        } else if let Some(i) = self.ops.iter().position(|o| !o.done) {
            self.cursor = i;
            self.cursor_pkt = 0;
        } else {
            self.cursor = self.ops.len();
            self.cursor_pkt = 0;
        }
    }

    /// Timers: the ACK timeout (retransmit or give up).
    pub fn on_timer(&mut self, cx: &mut Cx<'_>) {
        if self.state != QpState::Rts {
            self.timer = None;
            return;
        }
        let Some(t) = self.timer else { return };
        if cx.now < t {
            return;
        }
        if !self.ops.iter().any(|o| o.issued && !o.done) {
            self.timer = None;
            return;
        }
        cx.counters.add(Counter::Timeouts, 1);
        if self.retry_left == 0 {
            self.fail_front(cx, WcStatus::RetryExcErr, VENDOR_NONE);
            return;
        }
        if self.retry_left != RETRY_INFINITE {
            self.retry_left -= 1;
        }
        let una = self.una;
        let before = self.cursor_psn();
        self.rewind(una);
        cx.counters.add(
            Counter::Retransmits,
            psn_diff(before, self.cursor_psn()).max(0) as u64,
        );
        self.arm_timer(cx.now);
    }

    /// The next deadline of this QP's timers.
    pub fn deadline(&self) -> Option<Instant> {
        if self.state != QpState::Rts {
            return None;
        }
        match (self.timer, self.rnr_until) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The first unfinished op fails with `status`; the QP goes to ERR.
    fn fail_front(&mut self, cx: &mut Cx<'_>, status: WcStatus, vendor: u32) {
        if let Some(op) = self.ops.iter_mut().find(|o| !o.done) {
            op.error = Some((status, vendor));
            op.done = true;
        }
        self.retire(cx);
        self.fail(cx, false);
    }

    /// Completes finished ops from the front, in order.
    fn retire(&mut self, cx: &mut Cx<'_>) {
        while self.ops.front().is_some_and(|o| o.done) {
            let Some(op) = self.ops.pop_front() else {
                break;
            };
            self.cursor = self.cursor.saturating_sub(1);
            let signaled = self.sq_sig_all || op.wqe.send_flags & send_flags::SIGNALED != 0;
            let wc = op_to_wc(op.opcode);
            match op.error {
                Some((status, vendor)) => {
                    self.send_cqe(cx, op.wqe.wr_id, op.index, wc, status, vendor, 0);
                    self.fail(cx, false);
                    return;
                }
                None if signaled => {
                    let len = match op.opcode {
                        WrOpcode::RdmaRead => op.got as u32,
                        WrOpcode::AtomicCmpAndSwp | WrOpcode::AtomicFetchAndAdd => 8,
                        _ => op.len as u32,
                    };
                    self.send_cqe(
                        cx,
                        op.wqe.wr_id,
                        op.index,
                        wc,
                        WcStatus::Success,
                        VENDOR_NONE,
                        len,
                    );
                }
                None => {}
            }
        }
        if !self.ops.iter().any(|o| o.issued && !o.done) {
            self.timer = None;
        }
    }

    /// SEND and WRITE ops whose last PSN is before `psn` are acknowledged.
    fn ack_before(&mut self, psn: u32) {
        for op in self.ops.iter_mut() {
            if op.done {
                continue;
            }
            if op.is_rd_atomic() || psn_diff(op.last_psn(), psn) >= 0 || !op.issued {
                break;
            }
            op.done = true;
        }
    }

    /// The oldest unacknowledged PSN moves to `psn_next`, but never past a READ or
    /// atomic still waiting for its answer (whose lost response only it can ask for
    /// again, as rxe restarts from the oldest unfinished request).
    fn progress(&mut self, psn_next: u32, now: Instant) {
        let mut psn_next = psn_next;
        if let Some(op) = self
            .ops
            .iter()
            .find(|o| !o.done && o.issued && o.is_rd_atomic())
        {
            let waiting = psn_add(op.first_psn, (op.got / self.mtu()) as u32);
            if psn_diff(psn_next, waiting) > 0 {
                psn_next = waiting;
            }
        }
        if psn_diff(psn_next, self.una) > 0 {
            self.una = psn_next;
            self.retry_left = self.attr.retry_cnt;
            self.arm_timer(now);
        }
    }

    /// The completer: an acknowledgement or a response for this QP.
    pub fn on_response(&mut self, cx: &mut Cx<'_>, pkt: &Pkt, payload: &[u8]) {
        if self.state != QpState::Rts {
            cx.counters.add(Counter::Dropped, 1);
            return;
        }
        let psn = pkt.psn;
        if let Some((syndrome, _msn)) = pkt.aeth {
            match syndrome {
                s if s & 0xe0 == 0x00 => {}
                s if s & 0xe0 == syn::RNR_NAK => {
                    cx.counters.add(Counter::RnrNaksRcvd, 1);
                    self.ack_before(psn);
                    self.progress(psn, cx.now);
                    self.retire(cx);
                    if self.state == QpState::Err {
                        return;
                    }
                    if self.rnr_left == 0 {
                        self.fail_front(
                            cx,
                            WcStatus::RnrRetryExcErr,
                            VENDOR_NAK | u32::from(s) << 8,
                        );
                        return;
                    }
                    if self.rnr_left != RETRY_INFINITE {
                        self.rnr_left -= 1;
                    }
                    let us = RNR_TIMER_US[(s & 0x1f) as usize];
                    self.rnr_until = Some(cx.now + Duration::from_micros(u64::from(us)));
                    self.rewind(psn);
                    return;
                }
                syn::NAK_SEQ => {
                    cx.counters.add(Counter::SeqNaksRcvd, 1);
                    self.ack_before(psn);
                    self.progress(psn, cx.now);
                    self.retire(cx);
                    let before = self.cursor_psn();
                    let from = if psn_diff(self.una, psn) < 0 {
                        self.una
                    } else {
                        psn
                    };
                    self.rewind(from);
                    cx.counters.add(
                        Counter::Retransmits,
                        psn_diff(before, self.cursor_psn()).max(0) as u64,
                    );
                    return;
                }
                s => {
                    let status = match s {
                        syn::NAK_INV_REQ => WcStatus::RemInvReqErr,
                        syn::NAK_REM_ACCESS => WcStatus::RemAccessErr,
                        syn::NAK_REM_OP => WcStatus::RemOpErr,
                        _ => WcStatus::BadRespErr,
                    };
                    self.ack_before(psn);
                    self.retire(cx);
                    self.fail_front(cx, status, VENDOR_NAK | u32::from(s) << 8);
                    return;
                }
            }
        }
        match pkt.opcode {
            op::ACK => {
                // Everything up to `psn` was executed; a READ or atomic still
                // unanswered before it lost its response: ask again.
                self.ack_before(psn_add(psn, 1));
                if let Some(op) = self.ops.iter().find(|o| !o.done)
                    && op.is_rd_atomic()
                    && psn_diff(op.first_psn, psn) <= 0
                {
                    let first = op.first_psn;
                    self.progress(first, cx.now);
                    self.rewind(first);
                } else {
                    self.progress(psn_add(psn, 1), cx.now);
                }
                self.retire(cx);
            }
            op::READ_RESPONSE_FIRST
            | op::READ_RESPONSE_MIDDLE
            | op::READ_RESPONSE_LAST
            | op::READ_RESPONSE_ONLY => self.on_read_response(cx, pkt, payload),
            op::ATOMIC_ACK => self.on_atomic_ack(cx, pkt),
            _ => cx.counters.add(Counter::Dropped, 1),
        }
    }

    fn on_read_response(&mut self, cx: &mut Cx<'_>, pkt: &Pkt, payload: &[u8]) {
        let mtu = self.mtu();
        let Some(i) = self
            .ops
            .iter()
            .position(|o| !o.done && o.opcode == WrOpcode::RdmaRead && o.issued)
        else {
            cx.counters.add(Counter::Duplicates, 1);
            return;
        };
        let op = &self.ops[i];
        let expect = psn_add(op.first_psn, (op.got / mtu) as u32);
        if pkt.psn != expect {
            // A duplicate, or a gap: the timer sends the request again.
            cx.counters.add(Counter::Duplicates, 1);
            return;
        }
        // A response also acknowledges the SENDs and WRITEs before it.
        let first = op.first_psn;
        self.ack_before(first);
        let op = &self.ops[i];
        let left = op.len - op.got;
        let last = matches!(pkt.opcode, op::READ_RESPONSE_LAST | op::READ_RESPONSE_ONLY);
        let bad_len = payload.len() as u64 > left
            || (!last && payload.len() as u64 != mtu)
            || (last && payload.len() as u64 != left);
        if bad_len {
            self.ops[i].error = Some((WcStatus::BadRespErr, VENDOR_NONE));
            self.ops[i].done = true;
            self.retire(cx);
            return;
        }
        let (pdn, got) = (self.pdn, op.got);
        let sges = op.sges.clone();
        match cx.scatter(pdn, &sges, got, payload) {
            Ok(()) => {}
            Err(MemError::Fault(key)) => {
                cx.fault(key, self.qpn);
                self.stalled = Some(key);
                self.rewind_on_resume = true;
                return;
            }
            Err(e) => {
                self.ops[i].error = Some((WcStatus::LocProtErr, e.vendor()));
                self.ops[i].done = true;
                self.retire(cx);
                return;
            }
        }
        let op = &mut self.ops[i];
        op.got += payload.len() as u64;
        if last {
            op.done = true;
        }
        let next = psn_add(pkt.psn, 1);
        self.progress(next, cx.now);
        self.retire(cx);
    }

    fn on_atomic_ack(&mut self, cx: &mut Cx<'_>, pkt: &Pkt) {
        let Some(i) = self.ops.iter().position(|o| {
            !o.done
                && o.issued
                && o.first_psn == pkt.psn
                && matches!(
                    o.opcode,
                    WrOpcode::AtomicCmpAndSwp | WrOpcode::AtomicFetchAndAdd
                )
        }) else {
            cx.counters.add(Counter::Duplicates, 1);
            return;
        };
        self.ack_before(pkt.psn);
        let orig = pkt.atomic_ack.unwrap_or(0);
        let (pdn, sges) = (self.pdn, self.ops[i].sges.clone());
        match cx.scatter(pdn, &sges, 0, &orig.to_le_bytes()) {
            Ok(()) => self.ops[i].done = true,
            Err(MemError::Fault(key)) => {
                cx.fault(key, self.qpn);
                self.stalled = Some(key);
                self.rewind_on_resume = true;
                return;
            }
            Err(e) => {
                self.ops[i].error = Some((WcStatus::LocProtErr, e.vendor()));
                self.ops[i].done = true;
            }
        }
        self.progress(psn_add(pkt.psn, 1), cx.now);
        self.retire(cx);
    }

    /// The driver resolved the fault this QP waited on.
    pub fn resume(&mut self, key: u32) {
        if self.stalled == Some(key) {
            self.stalled = None;
            if self.rewind_on_resume {
                self.rewind_on_resume = false;
                let una = self.una;
                self.rewind(una);
            }
        }
    }

    // ---------------------------------------------------------------- responder

    fn reply(&self, cx: &mut Cx<'_>, opcode: u8, psn: u32, syndrome: u8, atomic_ack: Option<u64>) {
        let pkt = Pkt {
            opcode,
            dest_qp: self.attr.dest_qp_num,
            psn,
            aeth: Some((syndrome, self.msn & PSN_MASK)),
            atomic_ack,
            ..Pkt::default()
        };
        // A reply has no payload and cannot fail to fill.
        let _ = cx.emit(&pkt, self.attr.dgid, self.qpn, 0, |_, _| Ok(()));
    }

    /// The receive WQE at `index` cannot take the message: it completes with `status`
    /// and the request is NAKed with `syndrome` (the QP goes to ERR).
    fn fail_recv(
        &mut self,
        cx: &mut Cx<'_>,
        wr_id: u64,
        index: u32,
        status: WcStatus,
        psn: u32,
        syndrome: u8,
    ) {
        self.rq_ci = self.rq_ci.wrapping_add(1);
        self.recv_cqe(cx, wr_id, index, WcOpcode::Recv, status, 0, None, false);
        self.nak(cx, psn, syndrome);
    }

    /// Receiver not ready (no receive posted, or memory being paged in): the
    /// requester comes back after `min_rnr_timer`.
    fn rnr_nak(&self, cx: &mut Cx<'_>, psn: u32) {
        cx.counters.add(Counter::RnrNaksSent, 1);
        let timer = self.attr.min_rnr_timer & 0x1f;
        self.reply(cx, op::ACK, psn, syn::RNR_NAK | timer, None);
    }

    fn nak(&mut self, cx: &mut Cx<'_>, psn: u32, syndrome: u8) {
        self.reply(cx, op::ACK, psn, syndrome, None);
        if syndrome != syn::NAK_SEQ && syndrome & 0xe0 != syn::RNR_NAK {
            // Class J/I errors: the responder's QP goes to ERR too.
            self.fail(cx, true);
        }
    }

    /// A request for this QP, in the responder's hands.
    pub fn on_request(&mut self, cx: &mut Cx<'_>, pkt: &Pkt, payload: &[u8]) {
        if !matches!(self.state, QpState::Rtr | QpState::Rts) {
            cx.counters.add(Counter::Dropped, 1);
            return;
        }
        let d = psn_diff(pkt.psn, self.epsn);
        if d > 0 {
            if !self.nak_sent {
                self.nak_sent = true;
                cx.counters.add(Counter::SeqNaksSent, 1);
                let epsn = self.epsn;
                self.nak(cx, epsn, syn::NAK_SEQ);
            }
            return;
        }
        if d < 0 {
            cx.counters.add(Counter::Duplicates, 1);
            self.duplicate(cx, pkt);
            return;
        }
        self.nak_sent = false;
        let code = pkt.opcode & 0x1f;
        // MIDDLE and LAST packets continue a message; FIRST and MIDDLE carry exactly
        // one MTU.
        let continues = matches!(
            code,
            op::SEND_MIDDLE
                | op::SEND_LAST
                | op::SEND_LAST_IMM
                | op::WRITE_MIDDLE
                | op::WRITE_LAST
                | op::WRITE_LAST_IMM
        );
        let full = matches!(
            code,
            op::SEND_FIRST | op::SEND_MIDDLE | op::WRITE_FIRST | op::WRITE_MIDDLE
        );
        let seq_ok = match (&self.msg, continues) {
            (None, false) => true,
            (Some(InMsg::Send { .. }), true) => code <= op::SEND_LAST_IMM,
            (Some(InMsg::Write { .. }), true) => {
                (op::WRITE_MIDDLE..=op::WRITE_LAST_IMM).contains(&code)
            }
            _ => false,
        };
        if !seq_ok {
            self.nak(cx, pkt.psn, syn::NAK_INV_REQ);
            return;
        }
        let qp_access = self.attr.qp_access_flags;
        let allowed = match code {
            op::WRITE_FIRST..=op::WRITE_ONLY_IMM => qp_access & access::REMOTE_WRITE != 0,
            op::READ_REQUEST => qp_access & access::REMOTE_READ != 0,
            op::CMP_SWAP | op::FETCH_ADD => qp_access & access::REMOTE_ATOMIC != 0,
            op::SEND_FIRST..=op::SEND_ONLY_IMM => true,
            _ => false,
        };
        if !allowed {
            self.nak(cx, pkt.psn, syn::NAK_INV_REQ);
            return;
        }
        let len = payload.len() as u64;
        if (full && len != self.mtu()) || len > self.mtu() {
            self.nak(cx, pkt.psn, syn::NAK_INV_REQ);
            return;
        }
        match code {
            op::SEND_FIRST..=op::SEND_ONLY_IMM => self.do_send(cx, pkt, payload),
            op::WRITE_FIRST..=op::WRITE_ONLY_IMM => self.do_write(cx, pkt, payload),
            op::READ_REQUEST => self.do_read(cx, pkt),
            op::CMP_SWAP | op::FETCH_ADD => self.do_atomic(cx, pkt),
            _ => self.nak(cx, pkt.psn, syn::NAK_INV_REQ),
        }
    }

    /// Takes the next receive WQE, or answers RNR NAK.
    fn take_recv(&mut self, cx: &mut Cx<'_>, psn: u32) -> Option<(u32, u64, Vec<Sge>)> {
        if self.rq_ci == self.rq_pi {
            self.rnr_nak(cx, psn);
            return None;
        }
        let index = self.rq_ci;
        let Some((wqe, sges)) = self.read_recv_wqe(cx, index) else {
            self.fail_recv(cx, 0, index, WcStatus::LocQpOpErr, psn, syn::NAK_REM_OP);
            return None;
        };
        if wqe.num_sge > MAX_SGE {
            self.fail_recv(
                cx,
                wqe.wr_id,
                index,
                WcStatus::LocQpOpErr,
                psn,
                syn::NAK_REM_OP,
            );
            return None;
        }
        Some((index, wqe.wr_id, sges))
    }

    fn ack_if_asked(&mut self, cx: &mut Cx<'_>, pkt: &Pkt) {
        if pkt.ack_req {
            self.reply(cx, op::ACK, pkt.psn, syn::ACK, None);
        }
    }

    fn do_send(&mut self, cx: &mut Cx<'_>, pkt: &Pkt, payload: &[u8]) {
        let code = pkt.opcode & 0x1f;
        if self.msg.is_none() {
            let Some((wqe_index, wr_id, sges)) = self.take_recv(cx, pkt.psn) else {
                return;
            };
            self.msg = Some(InMsg::Send {
                wqe_index,
                wr_id,
                sges,
                offset: 0,
            });
        }
        let Some(InMsg::Send {
            wqe_index,
            wr_id,
            sges,
            offset,
        }) = &self.msg
        else {
            return;
        };
        let (wqe_index, wr_id, offset) = (*wqe_index, *wr_id, *offset);
        let sges = sges.clone();
        if offset + payload.len() as u64 > sge_total(&sges) {
            self.msg = None;
            self.fail_recv(
                cx,
                wr_id,
                wqe_index,
                WcStatus::LocLenErr,
                pkt.psn,
                syn::NAK_INV_REQ,
            );
            return;
        }
        match cx.scatter(self.pdn, &sges, offset, payload) {
            Ok(()) => {}
            Err(MemError::Fault(key)) => {
                // On-demand paging: not ready yet; the requester comes back after
                // the RNR timer, by which time the driver has mapped the pages.
                cx.fault(key, self.qpn);
                if offset == 0 {
                    self.msg = None;
                }
                self.rnr_nak(cx, pkt.psn);
                return;
            }
            Err(_) => {
                self.msg = None;
                self.fail_recv(
                    cx,
                    wr_id,
                    wqe_index,
                    WcStatus::LocQpOpErr,
                    pkt.psn,
                    syn::NAK_REM_OP,
                );
                return;
            }
        }
        let total = offset + payload.len() as u64;
        self.epsn = psn_add(self.epsn, 1);
        if matches!(
            code,
            op::SEND_LAST | op::SEND_LAST_IMM | op::SEND_ONLY | op::SEND_ONLY_IMM
        ) {
            self.msg = None;
            self.rq_ci = self.rq_ci.wrapping_add(1);
            self.msn = self.msn.wrapping_add(1);
            self.recv_cqe(
                cx,
                wr_id,
                wqe_index,
                WcOpcode::Recv,
                WcStatus::Success,
                total as u32,
                pkt.imm,
                pkt.solicited,
            );
        } else if let Some(InMsg::Send { offset, .. }) = &mut self.msg {
            *offset = total;
        }
        self.ack_if_asked(cx, pkt);
    }

    fn do_write(&mut self, cx: &mut Cx<'_>, pkt: &Pkt, payload: &[u8]) {
        let code = pkt.opcode & 0x1f;
        let last = matches!(
            code,
            op::WRITE_LAST | op::WRITE_LAST_IMM | op::WRITE_ONLY | op::WRITE_ONLY_IMM
        );
        let with_imm = matches!(code, op::WRITE_LAST_IMM | op::WRITE_ONLY_IMM);
        // WRITE with immediate consumes a receive: check one is there before anything
        // lands, so an RNR retry does not write twice into a half-done state.
        if with_imm && self.rq_ci == self.rq_pi {
            self.rnr_nak(cx, pkt.psn);
            return;
        }
        let (key, va, left, total) = match &self.msg {
            Some(InMsg::Write {
                key,
                va,
                left,
                total,
            }) => (*key, *va, *left, *total),
            _ => {
                let Some((va, rkey, len)) = pkt.reth else {
                    self.nak(cx, pkt.psn, syn::NAK_INV_REQ);
                    return;
                };
                (rkey, va, u64::from(len), u64::from(len))
            }
        };
        if payload.len() as u64 > left || (last && payload.len() as u64 != left) {
            self.nak(cx, pkt.psn, syn::NAK_INV_REQ);
            return;
        }
        if total > 0 {
            // The whole message's range is checked on every packet: a key that was
            // invalidated or revoked mid-message stops the rest.
            let start = va - (total - left);
            match cx.check(key, self.pdn, access::REMOTE_WRITE, start, total) {
                Ok(()) => {}
                Err(MemError::Fault(k)) => {
                    cx.fault(k, self.qpn);
                    self.rnr_nak(cx, pkt.psn);
                    return;
                }
                Err(_) => {
                    self.msg = None;
                    self.nak(cx, pkt.psn, syn::NAK_REM_ACCESS);
                    return;
                }
            }
            if !payload.is_empty()
                && (cx
                    .translate(
                        key,
                        self.pdn,
                        access::REMOTE_WRITE,
                        va,
                        payload.len() as u64,
                    )
                    .is_err()
                    || cx.write_pieces(payload).is_err())
            {
                self.msg = None;
                self.nak(cx, pkt.psn, syn::NAK_REM_ACCESS);
                return;
            }
        }
        self.epsn = psn_add(self.epsn, 1);
        if last {
            self.msg = None;
            self.msn = self.msn.wrapping_add(1);
            if with_imm {
                let index = self.rq_ci;
                let wr_id = self.read_recv_wqe(cx, index).map_or(0, |(w, _)| w.wr_id);
                self.rq_ci = self.rq_ci.wrapping_add(1);
                self.recv_cqe(
                    cx,
                    wr_id,
                    index,
                    WcOpcode::RecvRdmaWithImm,
                    WcStatus::Success,
                    total as u32,
                    pkt.imm,
                    pkt.solicited,
                );
            }
        } else {
            self.msg = Some(InMsg::Write {
                key,
                va: va + payload.len() as u64,
                left: left - payload.len() as u64,
                total,
            });
        }
        self.ack_if_asked(cx, pkt);
    }

    fn do_read(&mut self, cx: &mut Cx<'_>, pkt: &Pkt) {
        let Some((va, rkey, len)) = pkt.reth else {
            self.nak(cx, pkt.psn, syn::NAK_INV_REQ);
            return;
        };
        let len = u64::from(len);
        if len > 0 {
            match cx.check(rkey, self.pdn, access::REMOTE_READ, va, len) {
                Ok(()) => {}
                Err(MemError::Fault(k)) => {
                    cx.fault(k, self.qpn);
                    self.rnr_nak(cx, pkt.psn);
                    return;
                }
                Err(_) => {
                    self.nak(cx, pkt.psn, syn::NAK_REM_ACCESS);
                    return;
                }
            }
        }
        let npkts = self.npkts(len);
        let limit = usize::from(self.attr.max_dest_rd_atomic.max(1));
        self.remember(
            Resource::Read {
                first_psn: pkt.psn,
                npkts,
                va,
                rkey,
                len,
            },
            limit,
        );
        self.epsn = psn_add(self.epsn, npkts);
        self.msn = self.msn.wrapping_add(1);
        if self
            .send_read(cx, pkt.psn, npkts, va, rkey, len, pkt.psn)
            .is_err()
        {
            self.nak(cx, pkt.psn, syn::NAK_REM_ACCESS);
        }
    }

    fn remember(&mut self, r: Resource, limit: usize) {
        while self.resources.len() >= limit.max(16) {
            self.resources.pop_front();
        }
        self.resources.push_back(r);
    }

    /// Sends the READ responses of a request from `from` on.
    #[allow(clippy::too_many_arguments)]
    fn send_read(
        &mut self,
        cx: &mut Cx<'_>,
        first_psn: u32,
        npkts: u32,
        va: u64,
        rkey: u32,
        len: u64,
        from: u32,
    ) -> Result<(), MemError> {
        let mtu = self.mtu();
        let start = psn_diff(from, first_psn).max(0) as u32;
        for k in start..npkts {
            let off = u64::from(k) * mtu;
            let n = (len - off).min(mtu) as usize;
            let opcode = match (k == 0, k + 1 == npkts) {
                (true, true) => op::READ_RESPONSE_ONLY,
                (true, false) => op::READ_RESPONSE_FIRST,
                (false, true) => op::READ_RESPONSE_LAST,
                (false, false) => op::READ_RESPONSE_MIDDLE,
            };
            let psn = psn_add(first_psn, k);
            let pkt = Pkt {
                opcode,
                dest_qp: self.attr.dest_qp_num,
                psn,
                aeth: (opcode != op::READ_RESPONSE_MIDDLE)
                    .then_some((syn::ACK, self.msn & PSN_MASK)),
                ..Pkt::default()
            };
            let pdn = self.pdn;
            cx.emit(&pkt, self.attr.dgid, self.qpn, n, |cx, dst| {
                if n > 0 {
                    cx.translate(rkey, pdn, access::REMOTE_READ, va + off, n as u64)?;
                    cx.read_pieces(dst)?;
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    fn do_atomic(&mut self, cx: &mut Cx<'_>, pkt: &Pkt) {
        let Some((va, rkey, swap_add, compare)) = pkt.atomic else {
            self.nak(cx, pkt.psn, syn::NAK_INV_REQ);
            return;
        };
        if va & 7 != 0 {
            self.nak(cx, pkt.psn, syn::NAK_INV_REQ);
            return;
        }
        match cx.translate(rkey, self.pdn, access::REMOTE_ATOMIC, va, 8) {
            Ok(()) => {}
            Err(MemError::Fault(k)) => {
                cx.fault(k, self.qpn);
                self.rnr_nak(cx, pkt.psn);
                return;
            }
            Err(_) => {
                self.nak(cx, pkt.psn, syn::NAK_REM_ACCESS);
                return;
            }
        }
        let orig = {
            let _atomic = ATOMIC_LOCK
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut word = [0u8; 8];
            if cx.read_pieces(&mut word).is_err() {
                drop(_atomic);
                self.nak(cx, pkt.psn, syn::NAK_REM_ACCESS);
                return;
            }
            let orig = u64::from_le_bytes(word);
            let new = if pkt.opcode & 0x1f == op::CMP_SWAP {
                if orig == compare { swap_add } else { orig }
            } else {
                orig.wrapping_add(swap_add)
            };
            if cx.write_pieces(&new.to_le_bytes()).is_err() {
                drop(_atomic);
                self.nak(cx, pkt.psn, syn::NAK_REM_ACCESS);
                return;
            }
            orig
        };
        let limit = usize::from(self.attr.max_dest_rd_atomic.max(1));
        self.remember(Resource::Atomic { psn: pkt.psn, orig }, limit);
        self.epsn = psn_add(self.epsn, 1);
        self.msn = self.msn.wrapping_add(1);
        self.reply(cx, op::ATOMIC_ACK, pkt.psn, syn::ACK, Some(orig));
    }

    /// A request already executed: acknowledge again, replay a READ's responses, or
    /// resend an atomic's saved result (never execute it twice).
    fn duplicate(&mut self, cx: &mut Cx<'_>, pkt: &Pkt) {
        let code = pkt.opcode & 0x1f;
        match code {
            op::READ_REQUEST => {
                let found = self.resources.iter().find_map(|r| match r {
                    Resource::Read {
                        first_psn,
                        npkts,
                        va,
                        rkey,
                        len,
                    } => {
                        let d = psn_diff(pkt.psn, *first_psn);
                        (d >= 0 && (d as u32) < *npkts)
                            .then_some((*first_psn, *npkts, *va, *rkey, *len))
                    }
                    Resource::Atomic { .. } => None,
                });
                if let Some((first, npkts, va, rkey, len)) = found {
                    let _ = self.send_read(cx, first, npkts, va, rkey, len, pkt.psn);
                }
            }
            op::CMP_SWAP | op::FETCH_ADD => {
                let found = self.resources.iter().find_map(|r| match r {
                    Resource::Atomic { psn, orig } if *psn == pkt.psn => Some(*orig),
                    _ => None,
                });
                if let Some(orig) = found {
                    self.reply(cx, op::ATOMIC_ACK, pkt.psn, syn::ACK, Some(orig));
                }
            }
            _ => {
                let last = psn_add(self.epsn, PSN_MASK);
                self.reply(cx, op::ACK, last, syn::ACK, None);
            }
        }
    }
}

fn op_to_wc(op: WrOpcode) -> WcOpcode {
    match op {
        WrOpcode::RdmaWrite | WrOpcode::RdmaWriteWithImm => WcOpcode::RdmaWrite,
        WrOpcode::Send | WrOpcode::SendWithImm => WcOpcode::Send,
        WrOpcode::RdmaRead => WcOpcode::RdmaRead,
        WrOpcode::AtomicCmpAndSwp => WcOpcode::CompSwap,
        WrOpcode::AtomicFetchAndAdd => WcOpcode::FetchAdd,
    }
}
