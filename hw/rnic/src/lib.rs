//! The emulated RDMA NIC: a RoCEv2 RNIC behind a PCIe function of the fabric.
//!
//! What it models:
//! - **BAR0** ([`sagrada_hw_rnic_abi::regs`]): identification and capabilities, a
//!   command mailbox through which the driver creates and changes objects, an event
//!   queue in host memory with an MSI, the port's state and GID, counters, and 255
//!   doorbell pages (UARs) that the driver maps into processes.
//! - **Objects in the device**: protection domains, memory keys with page lists (and,
//!   on a NIC with on-demand paging, keys whose translation the driver can invalidate
//!   and reload: an access then faults, raises an event, and waits), completion queues
//!   and RC queue pairs with their whole transport state.
//! - **The data path without the kernel**: a process writes work requests into rings
//!   in its memory and rings a doorbell; the NIC reads them by DMA, moves payload by
//!   DMA between memory and packets (straight to or from the address a key translates
//!   to: host pages through the IOMMU, or a peer's BAR through a switch), and writes
//!   completions by DMA.
//! - **The wire**: RoCEv2 packets ([`wire`]) on a [`link::Carrier`]; two NICs of one
//!   machine are cabled by [`Rnic::connect`]; a packet for the NIC's own GID loops
//!   back inside it (two QPs of one port, as rdma-core's tests use one device). RC
//!   reliability as rxe does it (`transport.rs`).
//! - **An engine thread** per NIC runs the transport: doorbells, received packets and
//!   timers. Commands run on the caller's thread when `CMD_GO` is written; everything
//!   the engine does with a key happens under the same lock, so when
//!   `CMD_INVALIDATE_MKEY` or `CMD_DESTROY_MKEY` returns, no DMA through the old
//!   translation is in flight or will start.
//!
//! What it leaves out: UC and UD queue pairs, SRQs, memory windows, multiple ports,
//! P_Key tables, congestion control, and contention between QPs beyond round-robin.
//! Retransmission timers run on host time (a transport has no other clock); outcomes
//! do not depend on it, only how soon they arrive.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod link;
mod objects;
mod pkt;
mod transport;
pub mod wire;

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::thread::JoinHandle;
use std::time::Instant;

use sagrada_hw_fabric::{DeviceId, EndpointKind, Fabric, FunctionKind, Iova, MmioHandler};
use sagrada_hw_rnic_abi::cmd::{self, CmdIn, CmdOut, CmdStatus};
use sagrada_hw_rnic_abi::regs;
use sagrada_hw_rnic_abi::verbs::{PortState, QpState, QpType, access, attr_mask};
use zerocopy::{FromBytes, Immutable, IntoBytes};

pub use regs::Counter;

use link::{Carrier, Frame, InMemoryLink, LinkFaults, Receiver};
use objects::{Cq, EventQueue, Mkey, Table, Translation};
use transport::{Cx, Qp};

/// How a NIC is built.
#[derive(Clone, Debug)]
pub struct RnicConfig {
    /// On-demand paging (`CAP_ODP`): keys can be invalidated and fault on access, so a
    /// dma-buf can be attached dynamically and follow `move_notify` (mlx5's kind). A
    /// NIC without it pins (EFA's kind).
    pub odp: bool,
    /// The port's GID (IPv4-mapped for RoCEv2).
    pub gid: [u8; 16],
    /// Firmware version reported by QUERY_DEVICE.
    pub fw_ver: (u16, u16, u16),
}

impl Default for RnicConfig {
    fn default() -> Self {
        Self {
            odp: true,
            gid: ipv4_gid([10, 0, 0, 1]),
            fw_ver: (1, 0, 0),
        }
    }
}

/// The GID of an IPv4 address: `::ffff:a.b.c.d`.
pub fn ipv4_gid(ip: [u8; 4]) -> [u8; 16] {
    let mut gid = [0u8; 16];
    gid[10] = 0xff;
    gid[11] = 0xff;
    gid[12..].copy_from_slice(&ip);
    gid
}

/// Why a NIC model cannot be attached.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RnicError {
    /// The device is not an RDMA NIC endpoint of the fabric.
    #[error("{0:?} is not an RDMA NIC endpoint of this fabric")]
    NotARnic(DeviceId),
    /// BAR0 already has a device model.
    #[error("cannot attach the RDMA NIC model: {0}")]
    Bar0Taken(String),
}

/// The NIC's counters.
#[derive(Clone, Debug, Default)]
pub(crate) struct Counters([u64; 19]);

impl Counters {
    pub(crate) fn add(&mut self, c: Counter, n: u64) {
        self.0[c as usize] = self.0[c as usize].wrapping_add(n);
    }

    fn get(&self, c: Counter) -> u64 {
        self.0[c as usize]
    }
}

const _: () = assert!(Counter::ALL.len() == 19);

/// How long an engine that just finished a round watches for more work before it
/// sleeps, in spin-loop hints (some tens of microseconds: about one burst of a peer).
const IDLE_WATCH_SPINS: u32 = 2000;

#[derive(Debug)]
struct Pd;

/// What the engine is asked to do.
#[derive(Default)]
struct Pending {
    rx: VecDeque<Frame>,
    doorbells: Vec<u32>,
    /// Events from commands and doorbells, raised on the engine thread (never on the
    /// caller's: a driver issuing a command must not find its interrupt handler run
    /// inside that call).
    events: Vec<(u8, u32, u32)>,
    fire: Vec<u32>,
    kick: bool,
    shutdown: bool,
    /// The engine is waiting on the condition variable: only then does new work need a
    /// wake-up (a futex call), not while it is busy and will look again anyway.
    asleep: bool,
}

/// The device's tables and transport state.
struct Inner {
    pds: Table<Pd>,
    mkeys: Table<Mkey>,
    cqs: Table<Cq>,
    qps: HashMap<u32, Qp>,
    next_qpn: u32,
    counters: Counters,
    cmd_in: u64,
    cmd_out: u64,
    cmd_status: u32,
    /// QPs with send work to look at.
    ready: Vec<u32>,
}

struct Shared {
    fabric: Weak<Fabric>,
    dev: DeviceId,
    config: RnicConfig,
    inner: Mutex<Inner>,
    eq: Mutex<EventQueue>,
    pending: Mutex<Pending>,
    wake: Condvar,
    /// Bumped whenever work goes into `pending`: an engine that just went idle watches
    /// it for a moment before it sleeps (see [`Shared::run`]).
    posted: AtomicU64,
    port: Mutex<Option<Arc<dyn Carrier>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One RDMA NIC. Dropping the handle does not stop it: [`Rnic::shutdown`] does (the
/// machine calls it), and the fabric keeps serving its registers until then.
pub struct Rnic {
    shared: Arc<Shared>,
    engine: Mutex<Option<JoinHandle<()>>>,
}

impl fmt::Debug for Rnic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rnic")
            .field("dev", &self.shared.dev)
            .field("odp", &self.shared.config.odp)
            .finish_non_exhaustive()
    }
}

impl Rnic {
    /// Builds the model of RDMA NIC endpoint `dev` of `fabric` and starts its engine.
    ///
    /// # Errors
    ///
    /// [`RnicError::NotARnic`] if `dev` is not an RDMA NIC endpoint,
    /// [`RnicError::Bar0Taken`] if BAR0 already has a model.
    pub fn attach(
        fabric: &Arc<Fabric>,
        dev: DeviceId,
        config: RnicConfig,
    ) -> Result<Arc<Rnic>, RnicError> {
        match fabric.try_function(dev).map(|f| f.kind) {
            Some(FunctionKind::Endpoint(EndpointKind::Rnic)) => {}
            _ => return Err(RnicError::NotARnic(dev)),
        }
        let shared = Arc::new(Shared {
            fabric: Arc::downgrade(fabric),
            dev,
            config,
            inner: Mutex::new(Inner {
                pds: Table::new(sagrada_hw_rnic_abi::MAX_PD),
                mkeys: Table::new(sagrada_hw_rnic_abi::MAX_MR),
                cqs: Table::new(sagrada_hw_rnic_abi::MAX_CQ),
                qps: HashMap::new(),
                next_qpn: 0x12,
                counters: Counters::default(),
                cmd_in: 0,
                cmd_out: 0,
                cmd_status: 0,
                ready: Vec::new(),
            }),
            eq: Mutex::new(EventQueue::default()),
            pending: Mutex::new(Pending::default()),
            wake: Condvar::new(),
            posted: AtomicU64::new(0),
            port: Mutex::new(None),
        });
        fabric
            .set_mmio_handler(dev, sagrada_hw_rnic_abi::REG_BAR, shared.clone())
            .map_err(RnicError::Bar0Taken)?;
        let engine_shared = shared.clone();
        let name = format!("rnic-{}", fabric.function(dev).name);
        let engine = std::thread::Builder::new()
            .name(name)
            .spawn(move || engine_shared.run())
            .map_err(|e| RnicError::Bar0Taken(format!("cannot start the engine thread: {e}")))?;
        Ok(Arc::new(Rnic {
            shared,
            engine: Mutex::new(Some(engine)),
        }))
    }

    /// The NIC's PCI function.
    pub fn device(&self) -> DeviceId {
        self.shared.dev
    }

    /// The port's GID.
    pub fn gid(&self) -> [u8; 16] {
        self.shared.config.gid
    }

    /// Cables two NICs' ports together with an in-memory link. Returns the fault
    /// injection of each direction (`a → b`, `b → a`).
    pub fn connect(a: &Rnic, b: &Rnic) -> (Arc<LinkFaults>, Arc<LinkFaults>) {
        let to_b = Arc::new(InMemoryLink::new(
            Arc::downgrade(&b.shared) as Weak<dyn Receiver>
        ));
        let to_a = Arc::new(InMemoryLink::new(
            Arc::downgrade(&a.shared) as Weak<dyn Receiver>
        ));
        let faults = (to_b.faults().clone(), to_a.faults().clone());
        a.shared.plug(to_b);
        b.shared.plug(to_a);
        faults
    }

    /// Plugs the port into any carrier.
    pub fn plug(&self, carrier: Arc<dyn Carrier>) {
        self.shared.plug(carrier);
    }

    /// A counter's value.
    pub fn counter(&self, c: Counter) -> u64 {
        lock(&self.shared.inner).counters.get(c)
    }

    /// Stops the engine (in-flight work is abandoned). Idempotent.
    pub fn shutdown(&self) {
        lock(&self.shared.pending).shutdown = true;
        self.shared.wake.notify_all();
        if let Some(engine) = lock(&self.engine).take() {
            let _ = engine.join();
        }
        *lock(&self.shared.port) = None;
    }
}

impl Drop for Rnic {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Receiver for Shared {
    fn receive(&self, frames: Vec<Frame>) {
        let mut p = lock(&self.pending);
        if p.shutdown {
            return;
        }
        p.rx.extend(frames);
        self.wake_engine(p);
    }
}

/// A command's answer.
type CmdResult = Result<Vec<u8>, CmdStatus>;

fn answer<T: IntoBytes + Immutable>(v: &T) -> CmdResult {
    Ok(v.as_bytes().to_vec())
}

fn parse<T: FromBytes>(body: &[u8]) -> Result<T, CmdStatus> {
    T::read_from_prefix(body)
        .map(|(v, _)| v)
        .map_err(|_| CmdStatus::BadParam)
}

impl Shared {
    fn plug(&self, carrier: Arc<dyn Carrier>) {
        *lock(&self.port) = Some(carrier);
        let mut p = lock(&self.pending);
        p.events.push((cmd::EVENT_PORT_CHANGE, 1, 1));
        self.wake_engine(p);
    }

    fn kick(&self, f: impl FnOnce(&mut Pending)) {
        let mut p = lock(&self.pending);
        f(&mut p);
        p.kick = true;
        self.wake_engine(p);
    }

    /// Releases `p` (after new work went into it) and wakes the engine if it sleeps.
    fn wake_engine(&self, p: MutexGuard<'_, Pending>) {
        let asleep = p.asleep;
        self.posted.fetch_add(1, Ordering::Relaxed);
        drop(p);
        if asleep {
            self.wake.notify_one();
        }
    }

    // ------------------------------------------------------------------ registers

    fn read_reg(&self, off: u32, data: &mut [u8]) {
        let put32 = |data: &mut [u8], v: u32| {
            if data.len() == 4 {
                data.copy_from_slice(&v.to_le_bytes());
            } else {
                data.fill(0xff);
            }
        };
        if (regs::COUNTERS..regs::COUNTERS + 8 * Counter::ALL.len() as u32).contains(&off) {
            let i = ((off - regs::COUNTERS) / 8) as usize;
            if data.len() == 8 && off.is_multiple_of(8) {
                let v = lock(&self.inner).counters.get(Counter::ALL[i]);
                data.copy_from_slice(&v.to_le_bytes());
            } else {
                data.fill(0xff);
            }
            return;
        }
        let v = match off {
            regs::ID => sagrada_hw_rnic_abi::ID_VALUE,
            regs::VERSION => sagrada_hw_rnic_abi::ABI_VERSION,
            regs::CAPS => regs::CAP_ATOMIC | if self.config.odp { regs::CAP_ODP } else { 0 },
            regs::PORT_STATE => self.port_state() as u32,
            regs::CMD_IN_LO => lock(&self.inner).cmd_in as u32,
            regs::CMD_IN_HI => (lock(&self.inner).cmd_in >> 32) as u32,
            regs::CMD_OUT_LO => lock(&self.inner).cmd_out as u32,
            regs::CMD_OUT_HI => (lock(&self.inner).cmd_out >> 32) as u32,
            regs::CMD_STATUS => lock(&self.inner).cmd_status,
            regs::EQ_BASE_LO => lock(&self.eq).base as u32,
            regs::EQ_BASE_HI => (lock(&self.eq).base >> 32) as u32,
            regs::EQ_LOG_SIZE => lock(&self.eq).log_size,
            regs::EQ_CI => lock(&self.eq).ci,
            regs::EQ_MSI_ADDR_LO => lock(&self.eq).msi_addr as u32,
            regs::EQ_MSI_ADDR_HI => (lock(&self.eq).msi_addr >> 32) as u32,
            regs::EQ_MSI_DATA => lock(&self.eq).msi_data,
            regs::EQ_CTRL => u32::from(lock(&self.eq).enabled),
            regs::EQ_OVERRUNS => lock(&self.eq).overruns,
            o if (regs::GID0..regs::GID0 + 16).contains(&o) && o.is_multiple_of(4) => {
                let i = (o - regs::GID0) as usize;
                let g = &self.config.gid;
                u32::from_be_bytes([g[i], g[i + 1], g[i + 2], g[i + 3]])
            }
            _ => 0,
        };
        put32(data, v);
    }

    fn port_state(&self) -> PortState {
        if lock(&self.port).is_some() {
            PortState::Active
        } else {
            PortState::Down
        }
    }

    fn write_reg(&self, off: u32, data: &[u8]) {
        if off >= regs::UAR_BASE {
            if data.len() == 8 {
                let v = u64::from_le_bytes(data.try_into().unwrap_or([0; 8]));
                let uar = (off - regs::UAR_BASE) / regs::UAR_SIZE;
                self.doorbell(uar, off % regs::UAR_SIZE, v);
            }
            return;
        }
        let Ok(bytes) = <[u8; 4]>::try_from(data) else {
            return;
        };
        let v = u32::from_le_bytes(bytes);
        let set_lo = |r: &mut u64| *r = (*r & !0xffff_ffff) | u64::from(v);
        let set_hi = |r: &mut u64| *r = (*r & 0xffff_ffff) | u64::from(v) << 32;
        match off {
            regs::CMD_IN_LO => set_lo(&mut lock(&self.inner).cmd_in),
            regs::CMD_IN_HI => set_hi(&mut lock(&self.inner).cmd_in),
            regs::CMD_OUT_LO => set_lo(&mut lock(&self.inner).cmd_out),
            regs::CMD_OUT_HI => set_hi(&mut lock(&self.inner).cmd_out),
            regs::CMD_DOORBELL if v == regs::CMD_GO => self.command(),
            regs::EQ_BASE_LO => set_lo(&mut lock(&self.eq).base),
            regs::EQ_BASE_HI => set_hi(&mut lock(&self.eq).base),
            regs::EQ_LOG_SIZE => lock(&self.eq).log_size = v,
            regs::EQ_CI => lock(&self.eq).ci = v,
            regs::EQ_MSI_ADDR_LO => set_lo(&mut lock(&self.eq).msi_addr),
            regs::EQ_MSI_ADDR_HI => set_hi(&mut lock(&self.eq).msi_addr),
            regs::EQ_MSI_DATA => lock(&self.eq).msi_data = v,
            regs::EQ_CTRL => {
                let mut eq = lock(&self.eq);
                let enable = v & regs::EQ_CTRL_ENABLE != 0;
                if enable && !eq.enabled {
                    eq.pi = 0;
                    eq.ci = 0;
                }
                eq.enabled = enable;
            }
            _ => {}
        }
    }

    /// A doorbell on UAR `uar`.
    fn doorbell(&self, uar: u32, reg: u32, v: u64) {
        let id = (v & 0x00ff_ffff) as u32;
        let index = (v >> 32) as u32;
        let mut inner = lock(&self.inner);
        let ok = match reg {
            regs::UAR_SQ_DB | regs::UAR_RQ_DB => match inner.qps.get_mut(&id) {
                Some(qp) if qp.uar == uar => {
                    if reg == regs::UAR_SQ_DB {
                        qp.sq_pi = index;
                    } else {
                        qp.rq_pi = index;
                    }
                    true
                }
                _ => false,
            },
            regs::UAR_CQ_ARM => match inner.cqs.get_mut(id) {
                Some(cq) if cq.uar == uar => {
                    let solicited = v & regs::CQ_ARM_SOLICITED != 0;
                    if cq.pi != index {
                        // Entries are already there: the event fires at once.
                        cq.armed = None;
                        drop(inner);
                        self.kick(|p| p.fire.push(id));
                        return;
                    }
                    cq.armed = Some(solicited);
                    true
                }
                _ => false,
            },
            _ => false,
        };
        if !ok {
            inner.counters.add(Counter::BadDoorbells, 1);
            return;
        }
        drop(inner);
        if reg != regs::UAR_CQ_ARM {
            self.kick(|p| p.doorbells.push(id));
        }
    }

    // ------------------------------------------------------------------ commands

    fn command(&self) {
        let Some(fabric) = self.fabric.upgrade() else {
            return;
        };
        let mut inner = lock(&self.inner);
        let (cmd_in, cmd_out) = (inner.cmd_in, inner.cmd_out);
        let mut input = [0u8; cmd::MAILBOX_SIZE];
        let result = match fabric.dma_read(self.dev, Iova(cmd_in), &mut input) {
            Err(_) => Err(CmdStatus::DmaError),
            Ok(_) => {
                let hdr = CmdIn::read_from_prefix(&input)
                    .map(|(h, _)| h)
                    .unwrap_or_default();
                let len = (hdr.len as usize).min(cmd::MAILBOX_SIZE - 8);
                self.execute(&fabric, &mut inner, hdr.opcode, &input[8..8 + len])
            }
        };
        let (status, body) = match result {
            Ok(body) => (CmdStatus::Ok, body),
            Err(s) => (s, Vec::new()),
        };
        let mut out = CmdOut {
            status: status as u32,
            len: body.len() as u32,
        }
        .as_bytes()
        .to_vec();
        out.extend_from_slice(&body);
        let status = if fabric.dma_write(self.dev, Iova(cmd_out), &out).is_err() {
            CmdStatus::DmaError
        } else {
            status
        };
        inner.cmd_status = status as u32;
    }

    fn execute(&self, fabric: &Fabric, inner: &mut Inner, opcode: u32, body: &[u8]) -> CmdResult {
        match opcode {
            cmd::CMD_QUERY_DEVICE => answer(&self.caps()),
            cmd::CMD_QUERY_PORT => answer(&self.port_attr()),
            cmd::CMD_ALLOC_PD => {
                let _req: cmd::AllocPd = parse(body)?;
                let pdn = inner.pds.insert(Pd).ok_or(CmdStatus::NoResources)?;
                answer(&cmd::PdOut { pdn, pad: 0 })
            }
            cmd::CMD_DEALLOC_PD => {
                let h: cmd::Handle = parse(body)?;
                if !inner.pds.contains(h.id) {
                    return Err(CmdStatus::BadResource);
                }
                let used = inner.mkeys.values().any(|m| m.pdn == h.id)
                    || inner.qps.values().any(|q| q.pdn == h.id);
                if used {
                    return Err(CmdStatus::Busy);
                }
                inner.pds.remove(h.id);
                Ok(Vec::new())
            }
            cmd::CMD_CREATE_MKEY => self.create_mkey(fabric, inner, parse(body)?),
            cmd::CMD_DESTROY_MKEY => {
                let h: cmd::Handle = parse(body)?;
                match inner.mkeys.get(h.id >> 8) {
                    Some(m) if m.key == h.id => {}
                    _ => return Err(CmdStatus::BadResource),
                }
                inner.mkeys.remove(h.id >> 8);
                // Work stalled on a fault of this key finds it gone and fails.
                for qp in inner.qps.values_mut() {
                    qp.resume(h.id);
                }
                let qpns: Vec<u32> = inner.qps.keys().copied().collect();
                inner.ready.extend(qpns);
                self.kick(|_| {});
                Ok(Vec::new())
            }
            cmd::CMD_INVALIDATE_MKEY => {
                let h: cmd::Handle = parse(body)?;
                let m = inner
                    .mkeys
                    .get_mut(h.id >> 8)
                    .filter(|m| m.key == h.id)
                    .ok_or(CmdStatus::BadResource)?;
                if !m.odp {
                    return Err(CmdStatus::BadParam);
                }
                if m.state != Translation::Revoked {
                    m.pages = Vec::new();
                    m.state = Translation::Invalid {
                        fault_raised: false,
                    };
                }
                Ok(Vec::new())
            }
            cmd::CMD_UPDATE_MKEY => self.update_mkey(fabric, inner, parse(body)?),
            cmd::CMD_CREATE_CQ => {
                let c: cmd::CreateCq = parse(body)?;
                if !(1..=16).contains(&c.log_size) || c.uar >= sagrada_hw_rnic_abi::NUM_UARS {
                    return Err(CmdStatus::BadParam);
                }
                let cqn = inner
                    .cqs
                    .insert(Cq {
                        ring: c.ring,
                        dbrec: c.dbrec,
                        log_size: c.log_size,
                        uar: c.uar,
                        pi: 0,
                        armed: None,
                        error: false,
                    })
                    .ok_or(CmdStatus::NoResources)?;
                answer(&cmd::Handle { id: cqn, pad: 0 })
            }
            cmd::CMD_DESTROY_CQ => {
                let h: cmd::Handle = parse(body)?;
                if !inner.cqs.contains(h.id) {
                    return Err(CmdStatus::BadResource);
                }
                if inner
                    .qps
                    .values()
                    .any(|q| q.send_cqn == h.id || q.recv_cqn == h.id)
                {
                    return Err(CmdStatus::Busy);
                }
                inner.cqs.remove(h.id);
                Ok(Vec::new())
            }
            cmd::CMD_CREATE_QP => self.create_qp(inner, parse(body)?),
            cmd::CMD_MODIFY_QP => self.modify_qp(fabric, inner, parse(body)?),
            cmd::CMD_QUERY_QP => {
                let h: cmd::Handle = parse(body)?;
                let qp = inner.qps.get(&h.id).ok_or(CmdStatus::BadResource)?;
                let mut attr = qp.attr;
                attr.qp_state = qp.state as u8;
                attr.cur_qp_state = qp.state as u8;
                answer(&attr)
            }
            cmd::CMD_DESTROY_QP => {
                let h: cmd::Handle = parse(body)?;
                inner.qps.remove(&h.id).ok_or(CmdStatus::BadResource)?;
                Ok(Vec::new())
            }
            _ => Err(CmdStatus::BadOpcode),
        }
    }

    fn caps(&self) -> cmd::DeviceCaps {
        use sagrada_hw_rnic_abi as abi;
        let (ma, mi, pa) = self.config.fw_ver;
        let g = &self.config.gid;
        // EUI-64 from a MAC derived from the GID's last bytes.
        let guid = u64::from_be_bytes([0x02, 0x53, 0x47, 0xff, 0xfe, g[13], g[14], g[15]]);
        cmd::DeviceCaps {
            fw_ver: u64::from(ma) << 32 | u64::from(mi) << 16 | u64::from(pa),
            node_guid: guid,
            max_mr_size: u64::MAX,
            page_size_cap: (1 << 12) | (1 << 16) | (1 << 21) | (1 << 30),
            vendor_id: 0x5347,
            vendor_part_id: 0x0101,
            hw_ver: 1,
            max_qp: abi::MAX_QP,
            max_qp_wr: abi::MAX_QP_WR,
            max_sge: abi::MAX_SGE,
            max_cq: abi::MAX_CQ,
            max_cqe: abi::MAX_CQE,
            max_mr: abi::MAX_MR,
            max_pd: abi::MAX_PD,
            max_qp_rd_atom: abi::MAX_RD_ATOMIC,
            max_qp_init_rd_atom: abi::MAX_RD_ATOMIC,
            max_inline_data: abi::MAX_INLINE,
            max_msg_sz: abi::MAX_MSG_SIZE,
            caps: regs::CAP_ATOMIC | if self.config.odp { regs::CAP_ODP } else { 0 },
            phys_port_cnt: 1,
        }
    }

    fn port_attr(&self) -> cmd::PortAttr {
        cmd::PortAttr {
            gid: self.config.gid,
            state: self.port_state() as u8,
            max_mtu: sagrada_hw_rnic_abi::verbs::Mtu::Mtu4096 as u8,
            active_mtu: sagrada_hw_rnic_abi::verbs::Mtu::Mtu4096 as u8,
            link_layer: 2,
            gid_tbl_len: 1,
            speed_mbps: 100_000,
            pad: 0,
        }
    }

    /// Reads a page list by DMA.
    fn read_pages(&self, fabric: &Fabric, pas: u64, npages: u32) -> Result<Vec<u64>, CmdStatus> {
        let mut raw = vec![0u8; npages as usize * 8];
        fabric
            .dma_read(self.dev, Iova(pas), &mut raw)
            .map_err(|_| CmdStatus::DmaError)?;
        Ok(raw
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
            .collect())
    }

    fn check_layout(
        length: u64,
        page_shift: u32,
        page_offset: u64,
        npages: u32,
    ) -> Result<(), CmdStatus> {
        if !(12..=30).contains(&page_shift) || npages > (1 << 22) {
            return Err(CmdStatus::BadParam);
        }
        let page = 1u64 << page_shift;
        let covered = u64::from(npages) * page;
        if page_offset >= page || length > covered.saturating_sub(page_offset) {
            return Err(CmdStatus::BadParam);
        }
        Ok(())
    }

    fn create_mkey(&self, fabric: &Fabric, inner: &mut Inner, c: cmd::CreateMkey) -> CmdResult {
        if !inner.pds.contains(c.pdn) {
            return Err(CmdStatus::BadResource);
        }
        let known = access::LOCAL_WRITE
            | access::REMOTE
            | access::RELAXED_ORDERING
            | access::ZERO_BASED
            | access::ON_DEMAND;
        if c.access & !known != 0 || c.flags & !(cmd::MKEY_ODP | cmd::MKEY_EMPTY) != 0 {
            return Err(CmdStatus::BadParam);
        }
        let empty = c.flags & cmd::MKEY_EMPTY != 0;
        let odp = empty || c.flags & cmd::MKEY_ODP != 0;
        if odp && !self.config.odp {
            return Err(CmdStatus::BadParam);
        }
        let (pages, state) = if empty {
            if c.npages != 0 {
                return Err(CmdStatus::BadParam);
            }
            (
                Vec::new(),
                Translation::Invalid {
                    fault_raised: false,
                },
            )
        } else {
            Self::check_layout(c.length, c.page_shift, c.page_offset, c.npages)?;
            (
                self.read_pages(fabric, c.pas, c.npages)?,
                Translation::Valid,
            )
        };
        let mkey = Mkey {
            key: 0,
            pdn: c.pdn,
            access: c.access,
            iova: c.iova,
            length: c.length,
            page_shift: c.page_shift.clamp(12, 30),
            page_offset: c.page_offset,
            pages,
            odp,
            state,
        };
        if c.iova.checked_add(c.length).is_none() {
            return Err(CmdStatus::BadParam);
        }
        let index = inner.mkeys.insert(mkey).ok_or(CmdStatus::NoResources)?;
        let key = index << 8 | u32::from(c.variant);
        if let Some(m) = inner.mkeys.get_mut(index) {
            m.key = key;
        }
        answer(&cmd::MkeyOut { key, pad: 0 })
    }

    fn update_mkey(&self, fabric: &Fabric, inner: &mut Inner, u: cmd::UpdateMkey) -> CmdResult {
        let (length, odp) = match inner.mkeys.get(u.key >> 8) {
            Some(m) if m.key == u.key => (m.length, m.odp),
            _ => return Err(CmdStatus::BadResource),
        };
        if !odp {
            return Err(CmdStatus::BadParam);
        }
        let (pages, state) = if u.flags & cmd::UPDATE_MKEY_FAIL != 0 {
            (Vec::new(), Translation::Revoked)
        } else {
            Self::check_layout(length, u.page_shift, u.page_offset, u.npages)?;
            (
                self.read_pages(fabric, u.pas, u.npages)?,
                Translation::Valid,
            )
        };
        if let Some(m) = inner.mkeys.get_mut(u.key >> 8) {
            m.pages = pages;
            m.page_shift = u.page_shift.clamp(12, 30);
            m.page_offset = u.page_offset;
            m.state = state;
        }
        for qp in inner.qps.values_mut() {
            qp.resume(u.key);
        }
        let qpns: Vec<u32> = inner.qps.keys().copied().collect();
        inner.ready.extend(qpns);
        self.kick(|_| {});
        Ok(Vec::new())
    }

    fn create_qp(&self, inner: &mut Inner, c: cmd::CreateQp) -> CmdResult {
        use sagrada_hw_rnic_abi as abi;
        if QpType::from_raw(c.qp_type) != Some(QpType::Rc) {
            return Err(CmdStatus::BadParam);
        }
        let max_log = abi::MAX_QP_WR.trailing_zeros();
        if c.log_sq_size > max_log || c.log_rq_size > max_log || c.uar >= abi::NUM_UARS {
            return Err(CmdStatus::BadParam);
        }
        if !inner.pds.contains(c.pdn)
            || !inner.cqs.contains(c.send_cqn)
            || !inner.cqs.contains(c.recv_cqn)
        {
            return Err(CmdStatus::BadResource);
        }
        if inner.qps.len() as u32 >= abi::MAX_QP - 2 {
            return Err(CmdStatus::NoResources);
        }
        let mut qpn = inner.next_qpn;
        while inner.qps.contains_key(&qpn) || qpn < 2 {
            qpn = (qpn + 1) & 0x00ff_ffff;
        }
        inner.next_qpn = (qpn + 1) & 0x00ff_ffff;
        let qp = Qp::new(qpn, &c);
        inner.qps.insert(qpn, qp);
        answer(&cmd::Handle { id: qpn, pad: 0 })
    }

    fn modify_qp(&self, fabric: &Fabric, inner: &mut Inner, m: cmd::ModifyQp) -> CmdResult {
        let Some(qp) = inner.qps.get(&m.qpn) else {
            return Err(CmdStatus::BadResource);
        };
        let cur = qp.state;
        if m.attr_mask & attr_mask::CUR_STATE != 0 && m.attr.cur_qp_state != cur as u8 {
            return Err(CmdStatus::BadState);
        }
        let target = if m.attr_mask & attr_mask::STATE != 0 {
            QpState::from_raw(m.attr.qp_state).ok_or(CmdStatus::BadParam)?
        } else {
            cur
        };
        use QpState as S;
        let allowed = matches!(
            (cur, target),
            (_, S::Reset)
                | (_, S::Err)
                | (S::Reset, S::Init)
                | (S::Init, S::Init)
                | (S::Init, S::Rtr)
                | (S::Rtr, S::Rts)
                | (S::Rts, S::Rts)
        );
        if !allowed {
            return Err(CmdStatus::BadState);
        }
        let Some(qp) = inner.qps.get_mut(&m.qpn) else {
            return Err(CmdStatus::BadResource);
        };
        let a = &m.attr;
        let mask = m.attr_mask;
        let mut attr = qp.attr;
        macro_rules! take {
            ($bit:expr, $($f:ident),+) => {
                if mask & $bit != 0 { $(attr.$f = a.$f;)+ }
            };
        }
        take!(attr_mask::ACCESS_FLAGS, qp_access_flags);
        take!(attr_mask::PKEY_INDEX, pkey_index);
        take!(attr_mask::PORT, port_num);
        take!(attr_mask::QKEY, qkey);
        take!(attr_mask::AV, dgid, sgid_index, hop_limit);
        take!(attr_mask::PATH_MTU, path_mtu);
        take!(attr_mask::TIMEOUT, timeout);
        take!(attr_mask::RETRY_CNT, retry_cnt);
        take!(attr_mask::RNR_RETRY, rnr_retry);
        take!(attr_mask::RQ_PSN, rq_psn);
        take!(attr_mask::MAX_QP_RD_ATOMIC, max_rd_atomic);
        take!(attr_mask::MIN_RNR_TIMER, min_rnr_timer);
        take!(attr_mask::SQ_PSN, sq_psn);
        take!(attr_mask::MAX_DEST_RD_ATOMIC, max_dest_rd_atomic);
        take!(attr_mask::DEST_QPN, dest_qp_num);
        if sagrada_hw_rnic_abi::verbs::Mtu::from_raw(attr.path_mtu).is_none()
            || attr.rq_psn > 0x00ff_ffff
            || attr.sq_psn > 0x00ff_ffff
            || attr.dest_qp_num > 0x00ff_ffff
            || attr.retry_cnt > 7
            || attr.rnr_retry > 7
            || attr.min_rnr_timer > 31
            || attr.timeout > 31
        {
            return Err(CmdStatus::BadParam);
        }
        qp.attr = attr;
        let Inner {
            qps,
            mkeys,
            cqs,
            counters,
            ..
        } = inner;
        let Some(qp) = qps.get_mut(&m.qpn) else {
            return Err(CmdStatus::BadResource);
        };
        let mut out = Vec::new();
        let mut events = Vec::new();
        let mut fire = Vec::new();
        let mut scratch = Vec::new();
        let mut cx = Cx {
            fabric,
            dev: self.dev,
            gid: self.config.gid,
            mkeys,
            cqs,
            counters,
            out: &mut out,
            // Entering a state sends nothing (a flush only completes WQEs).
            transmit: &|_| {},
            events: &mut events,
            fire: &mut fire,
            now: Instant::now(),
            scratch: &mut scratch,
        };
        if target != cur || target == S::Err {
            qp.enter(target, &mut cx);
        } else if target == S::Rts {
            qp.reload_retry();
        }
        inner.ready.push(m.qpn);
        self.kick(|p| {
            p.events.extend(events);
            p.fire.extend(fire);
        });
        Ok(Vec::new())
    }

    // ------------------------------------------------------------------ engine

    fn run(self: Arc<Self>) {
        let mut scratch = Vec::new();
        let mut next_deadline: Option<Instant> = None;
        loop {
            // Whether to watch for new work a little before sleeping: yes right after a
            // round (traffic comes in bursts, and a futex sleep and wake-up per burst
            // costs both ends more than the watch), no once the engine has been idle.
            let mut watch = true;
            let (frames, doorbells, events, fire) = {
                let mut p = lock(&self.pending);
                loop {
                    if p.shutdown {
                        return;
                    }
                    let due = next_deadline.is_some_and(|d| Instant::now() >= d);
                    if !p.rx.is_empty()
                        || !p.doorbells.is_empty()
                        || p.kick
                        || due
                        || !p.events.is_empty()
                        || !p.fire.is_empty()
                    {
                        break;
                    }
                    if watch {
                        watch = false;
                        let seen = self.posted.load(Ordering::Relaxed);
                        drop(p);
                        for _ in 0..IDLE_WATCH_SPINS {
                            if self.posted.load(Ordering::Relaxed) != seen {
                                break;
                            }
                            std::hint::spin_loop();
                        }
                        p = lock(&self.pending);
                        continue;
                    }
                    p.asleep = true;
                    p = match next_deadline {
                        Some(d) => {
                            let wait = d.saturating_duration_since(Instant::now());
                            self.wake
                                .wait_timeout(p, wait)
                                .unwrap_or_else(PoisonError::into_inner)
                                .0
                        }
                        None => self.wake.wait(p).unwrap_or_else(PoisonError::into_inner),
                    };
                    p.asleep = false;
                }
                p.kick = false;
                (
                    std::mem::take(&mut p.rx),
                    std::mem::take(&mut p.doorbells),
                    std::mem::take(&mut p.events),
                    std::mem::take(&mut p.fire),
                )
            };
            let Some(fabric) = self.fabric.upgrade() else {
                return;
            };
            let (again, deadline) =
                self.step(&fabric, frames, doorbells, events, fire, &mut scratch);
            next_deadline = deadline;
            if again {
                lock(&self.pending).kick = true;
            }
        }
    }

    /// One round of the engine. Returns whether to run again at once, and the next
    /// timer deadline.
    fn step(
        &self,
        fabric: &Fabric,
        frames: VecDeque<Frame>,
        doorbells: Vec<u32>,
        mut events: Vec<(u8, u32, u32)>,
        mut fire: Vec<u32>,
        scratch: &mut Vec<(u64, u64)>,
    ) -> (bool, Option<Instant>) {
        // Decode (and check the ICRC) outside the lock.
        let mut packets = Vec::with_capacity(frames.len());
        let mut rx_bytes = 0;
        let mut bad = 0;
        let mut icrc = 0;
        for frame in &frames {
            rx_bytes += frame.bytes.len() as u64;
            if frame.dgid != self.config.gid {
                bad += 1;
                continue;
            }
            match pkt::decode(&frame.bytes, frame.sgid, frame.dgid, frame.udp_sport) {
                Ok((pkt, range)) => packets.push((pkt, frame, range)),
                Err(wire::WireError::Icrc { .. }) => icrc += 1,
                Err(e) => {
                    tracing::debug!("rnic: dropping a malformed packet: {e}");
                    bad += 1;
                }
            }
        }
        let mut out = Vec::new();
        let now = Instant::now();
        let transmit = |frames: Vec<Frame>| self.transmit(frames);
        let mut inner = lock(&self.inner);
        inner.counters.add(Counter::RxPackets, frames.len() as u64);
        inner.counters.add(Counter::RxBytes, rx_bytes);
        inner.counters.add(Counter::Dropped, bad);
        inner.counters.add(Counter::IcrcErrors, icrc);
        let mut ready = std::mem::take(&mut inner.ready);
        ready.extend(doorbells);
        let Inner {
            qps,
            mkeys,
            cqs,
            counters,
            ..
        } = &mut *inner;
        let mut cx = Cx {
            fabric,
            dev: self.dev,
            gid: self.config.gid,
            mkeys,
            cqs,
            counters,
            out: &mut out,
            transmit: &transmit,
            events: &mut events,
            fire: &mut fire,
            now,
            scratch,
        };
        for (pkt, frame, range) in &packets {
            let Some(qp) = qps.get_mut(&pkt.dest_qp) else {
                cx.counters.add(Counter::Dropped, 1);
                continue;
            };
            let payload = &frame.bytes[range.clone()];
            if is_response(pkt.opcode) {
                qp.on_response(&mut cx, pkt, payload);
            } else {
                qp.on_request(&mut cx, pkt, payload);
            }
            ready.push(pkt.dest_qp);
        }
        // Timers of every QP (a timeout rewinds: send again in this round), then the
        // requesters with work.
        let mut deadline: Option<Instant> = None;
        for qp in qps.values_mut() {
            qp.on_timer(&mut cx);
            if qp.wants_to_send(now) {
                ready.push(qp.qpn);
            }
        }
        ready.sort_unstable();
        ready.dedup();
        let mut again = false;
        for qpn in ready {
            if let Some(qp) = qps.get_mut(&qpn) {
                if qp.state == QpState::Err {
                    qp.flush(&mut cx);
                    continue;
                }
                qp.send_some(&mut cx, 64);
                if qp.wants_to_send(now) {
                    again = true;
                }
            }
        }
        for qp in qps.values() {
            if let Some(d) = qp.deadline() {
                deadline = Some(deadline.map_or(d, |x: Instant| x.min(d)));
            }
        }
        cx.flush();
        // Keep the QPs that still want to send in the ready list.
        let still: Vec<u32> = qps
            .values()
            .filter(|q| q.wants_to_send(now))
            .map(|q| q.qpn)
            .collect();
        inner.ready.extend(still);
        // Completion events of armed CQs.
        let mut msis = Vec::new();
        {
            let mut eq = lock(&self.eq);
            for cqn in fire {
                if inner.cqs.contains(cqn)
                    && let Some(m) = eq.push(fabric, self.dev, cmd::EVENT_COMPLETION, cqn, 0)
                {
                    msis.push(m);
                }
            }
            for (kind, obj, data) in events {
                if let Some(m) = eq.push(fabric, self.dev, kind, obj, data) {
                    msis.push(m);
                }
            }
        }
        drop(inner);
        // One interrupt per round is enough: the handler drains the whole EQ.
        if let Some(&(addr, data)) = msis.last() {
            let _ = fabric.dma_write(self.dev, Iova(addr), &data.to_le_bytes());
        }
        (again, deadline)
    }
}

impl Shared {
    /// Puts frames on the wire: those for the port's own GID loop back inside the NIC
    /// (two QPs of the same port), the rest go to the carrier.
    fn transmit(&self, frames: Vec<Frame>) {
        let (local, remote): (Vec<Frame>, Vec<Frame>) =
            frames.into_iter().partition(|f| f.dgid == self.config.gid);
        if !local.is_empty() {
            self.receive(local);
        }
        let port = lock(&self.port).clone();
        if let Some(port) = port
            && !remote.is_empty()
        {
            port.transmit_all(remote);
        }
    }
}

fn is_response(opcode: u8) -> bool {
    (pkt::op::READ_RESPONSE_FIRST..=pkt::op::ATOMIC_ACK).contains(&(opcode & 0x1f))
}

impl MmioHandler for Shared {
    fn read(&self, offset: u64, data: &mut [u8]) {
        if offset >= sagrada_hw_rnic_abi::BAR0_SIZE || !offset.is_multiple_of(4) {
            data.fill(0xff);
            return;
        }
        self.read_reg(offset as u32, data);
    }

    fn write(&self, offset: u64, data: &[u8]) {
        if offset >= sagrada_hw_rnic_abi::BAR0_SIZE || !offset.is_multiple_of(4) {
            return;
        }
        self.write_reg(offset as u32, data);
    }
}
