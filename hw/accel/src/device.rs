//! The device's shared state: the register file, the MSI-X table, the sync manager,
//! resets, and the threads.
//!
//! One mutex guards all register state. It is held only for register-sized work:
//! never across a DMA, a large copy or an interrupt (the driver's handler runs inside
//! the MSI write and may read registers, or even reset the device). Work that must
//! happen outside the lock is collected in an [`After`] and done once it is released.
//!
//! Engines wait (idle, on `WAIT`, on a full completion queue) on a condition variable
//! per engine; anything that could end such a wait notifies the engines that sleep.
//! A reset bumps the epoch: an engine running an entry of an older epoch abandons it
//! without a completion, and the reset waits until every engine (but the one whose
//! thread is resetting, if any) has left its entry.

use std::sync::atomic::Ordering::{Acquire, Release};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock, Weak};
use std::thread::{self, JoinHandle, ThreadId};
use std::time::{Duration, Instant};

use sagrada_hw_accel_abi::launch::FaultRecord;
use sagrada_hw_accel_abi::reg::BlockInfo;
use sagrada_hw_accel_abi::regs::{
    cores, cq, global, mbox, mbox_req, mbox_resp, mmu, mmu_hop0, monitor, msix, queue, scrub, sob,
    sob_owner,
};
use sagrada_hw_accel_abi::{
    NUM_ASIDS, NUM_MONITORS, NUM_MSIX, NUM_QUEUES, NUM_SOBS, QUEUE_COMPUTE, VECTOR_MMU,
    VECTOR_MONITOR, mmu as abi_mmu,
};
use sagrada_hw_fabric::{DeviceId, Fabric, Iova, Memory, MmioHandler};
use sagrada_isa::exec::Counters;

use crate::Sg1Config;
use crate::compute::Pool;
use crate::mmu::HBM_PAGE;

/// How long an engine out of work spins before it parks.
const SPIN: Duration = Duration::from_micros(50);
/// Queue count as an index type.
pub(crate) const QUEUES: usize = NUM_QUEUES as usize;

/// The reset value of a register, from the ABI's one declaration.
fn reset_value(block: &BlockInfo, offset: u32) -> u32 {
    block
        .regs
        .iter()
        .find(|r| r.offset == offset)
        .map_or(0, |r| r.reset)
}

/// Finds `off` in `block`: the instance and the register's offset in it, if it names a
/// declared register.
fn locate(block: &BlockInfo, off: u32) -> Option<(usize, u32)> {
    let rel = off.checked_sub(block.base)?;
    let (i, r) = if block.count > 1 {
        (rel / block.stride, rel % block.stride)
    } else {
        (0, rel)
    };
    (i < block.count && block.regs.iter().any(|reg| reg.offset == r)).then_some((i as usize, r))
}

fn lo(v: u64) -> u32 {
    v as u32
}

fn hi(v: u64) -> u32 {
    (v >> 32) as u32
}

fn set_lo(v: &mut u64, x: u32) {
    *v = (*v & !0xffff_ffff) | u64::from(x);
}

fn set_hi(v: &mut u64, x: u32) {
    *v = (*v & 0xffff_ffff) | u64::from(x) << 32;
}

/// The number of entries of a ring, if `SIZE_LOG2` is valid (1 to 16).
pub(crate) fn ring_size(size_log2: u32) -> Option<u32> {
    (1..=16).contains(&size_log2).then(|| 1 << size_log2)
}

#[derive(Clone, Copy)]
pub(crate) struct MsixEntry {
    addr: u64,
    data: u32,
    masked: bool,
}

impl MsixEntry {
    fn reset() -> Self {
        Self {
            addr: 0,
            data: 0,
            masked: msix::fields::CTRL::MASKED.is_set(reset_value(&msix::BLOCK, msix::CTRL)),
        }
    }
}

/// A queue's registers.
#[derive(Clone, Copy, Default)]
pub(crate) struct QueueRegs {
    pub(crate) base: u64,
    pub(crate) size_log2: u32,
    pub(crate) pi: u32,
    pub(crate) ci: u32,
    pub(crate) enable: bool,
    pub(crate) waiting: bool,
    /// The engine's clock: device time spent busy, ns.
    pub(crate) busy_ns: u64,
    pub(crate) errors: u32,
}

/// What the device knows of an engine thread (not registers: kept across resets).
#[derive(Clone, Copy, Default)]
pub(crate) struct EngineSlot {
    pub(crate) thread: Option<ThreadId>,
    /// Running an entry.
    pub(crate) running: bool,
    /// Idle, parked until a doorbell (`next_job`).
    pub(crate) parked: u32,
    /// In an entry, waiting for a condition (`engine_wait`): room in the completion
    /// queue, a sync object's value.
    pub(crate) waiting: u32,
}

#[derive(Clone, Copy, Default)]
pub(crate) struct CqRegs {
    pub(crate) base: u64,
    pub(crate) size_log2: u32,
    pub(crate) pi: u32,
    pub(crate) ci: u32,
    pub(crate) enable: bool,
}

#[derive(Clone, Copy, Default)]
struct Monitor {
    sob: u32,
    target: u32,
    payload_addr: u64,
    payload_data: u32,
    armed: bool,
    write: bool,
    irq: bool,
    fired: bool,
}

#[derive(Clone, Copy, Default)]
struct MmuRegs {
    status: u32,
    asid: u32,
    va: u64,
    cause: u32,
    count: u32,
}

/// A compute core's registers.
#[derive(Clone, Copy, Default)]
pub(crate) struct CoreRegs {
    counters: Counters,
    busy_ns: u64,
    fault_cause: u32,
    fault_pc: u32,
    fault_info: u64,
}

impl CoreRegs {
    /// Adds one launch's work.
    pub(crate) fn add(&mut self, c: &Counters, busy_ns: u64) {
        let t = &mut self.counters;
        t.instructions = t.instructions.wrapping_add(c.instructions);
        t.lane_ops = t.lane_ops.wrapping_add(c.lane_ops);
        t.global_bytes = t.global_bytes.wrapping_add(c.global_bytes);
        t.scratch_bytes = t.scratch_bytes.wrapping_add(c.scratch_bytes);
        t.invocations = t.invocations.wrapping_add(c.invocations);
        self.busy_ns = self.busy_ns.wrapping_add(busy_ns);
    }

    /// Records a fault, unless one is held (then only `OVERFLOW`).
    pub(crate) fn record(&mut self, f: &FaultRecord) {
        use cores::fields::FAULT_CAUSE;
        if FAULT_CAUSE::CODE.get(self.fault_cause) != 0 {
            self.fault_cause = FAULT_CAUSE::OVERFLOW.set(self.fault_cause, 1);
            return;
        }
        let cause = FAULT_CAUSE::CODE.set(self.fault_cause, f.code as u32);
        self.fault_cause = FAULT_CAUSE::WRITE.set(cause, f.write.into());
        self.fault_pc = f.pc;
        self.fault_info = f.info;
    }
}

#[derive(Clone, Copy, Default)]
struct ScrubRegs {
    addr: u64,
    size: u64,
    status: u32,
}

/// The mailbox and the firmware's state.
pub(crate) struct Mailbox {
    pub(crate) req: [u32; 16],
    pub(crate) resp: [u32; 16],
    pub(crate) busy: bool,
    pub(crate) resp_valid: bool,
    /// A doorbell the firmware has not taken yet.
    pub(crate) pending: bool,
    /// Bumped when the firmware reboots: a response computed before is dropped.
    pub(crate) epoch: u64,
    pub(crate) booted: Instant,
}

/// All register state.
pub(crate) struct State {
    scratch: u32,
    pub(crate) soft_resets: u32,
    pub(crate) hard_resets: u32,
    resets_in_progress: u32,
    fw_ready: bool,
    msix: [MsixEntry; NUM_MSIX as usize],
    msix_pending: u32,
    pub(crate) mbox: Mailbox,
    mmu: MmuRegs,
    pub(crate) hop0: [u64; NUM_ASIDS as usize],
    pub(crate) queues: [QueueRegs; QUEUES],
    pub(crate) engines: [EngineSlot; QUEUES],
    pub(crate) cq: CqRegs,
    /// An engine is writing a completion entry (they take turns).
    pub(crate) cq_writing: bool,
    scrub: ScrubRegs,
    pub(crate) sobs: Vec<u32>,
    pub(crate) sob_owners: Vec<u32>,
    monitors: Vec<Monitor>,
    /// One per compute core of the device.
    pub(crate) cores: Vec<CoreRegs>,
}

impl State {
    fn new(cores: u32) -> Self {
        Self {
            scratch: 0,
            soft_resets: 0,
            hard_resets: 0,
            resets_in_progress: 0,
            fw_ready: true,
            msix: [MsixEntry::reset(); NUM_MSIX as usize],
            msix_pending: 0,
            mbox: Mailbox {
                req: [0; 16],
                resp: [0; 16],
                busy: false,
                resp_valid: false,
                pending: false,
                epoch: 0,
                booted: Instant::now(),
            },
            mmu: MmuRegs::default(),
            hop0: [0; NUM_ASIDS as usize],
            queues: [QueueRegs::default(); QUEUES],
            engines: [EngineSlot::default(); QUEUES],
            cq: CqRegs::default(),
            cq_writing: false,
            scrub: ScrubRegs::default(),
            sobs: vec![0; NUM_SOBS as usize],
            sob_owners: vec![0; NUM_SOBS as usize],
            monitors: vec![Monitor::default(); NUM_MONITORS as usize],
            cores: vec![CoreRegs::default(); cores as usize],
        }
    }
}

/// Work to do once the state lock is released, in this order.
#[derive(Default)]
pub(crate) struct After {
    /// Monitor payloads: (device physical address, dword).
    payloads: Vec<(u64, u32)>,
    /// Vectors to raise.
    irqs: Vec<u32>,
    /// MSI messages to send as they are (a pending vector unmasked).
    messages: Vec<(u64, u32)>,
    spawn_engine: Option<usize>,
    spawn_firmware: bool,
    /// A reset to perform: `Some(true)` for a hard one.
    reset: Option<bool>,
    scrub: bool,
    /// `MMU.INVALIDATE` was written: drop the cores' translations.
    invalidate: bool,
}

/// An MMU fault, as the `MMU.FAULT_*` registers record it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct MmuFault {
    pub(crate) asid: u32,
    pub(crate) va: u64,
    pub(crate) cause: abi_mmu::FaultCause,
    pub(crate) write: bool,
}

#[derive(Default)]
struct Threads {
    handles: Vec<JoinHandle<()>>,
    engines: [bool; QUEUES],
    firmware: bool,
    compute: bool,
}

/// What a device thread does.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum ThreadKind {
    Engine(usize),
    Firmware,
    /// A compute worker (thread 1 and up; thread 0 is the COMPUTE engine).
    Compute(usize),
}

/// The device: what the register handler, the engines and the firmware share.
pub(crate) struct Core {
    pub(crate) fabric: Arc<Fabric>,
    pub(crate) dev: DeviceId,
    pub(crate) hbm: Arc<Memory>,
    pub(crate) config: Sg1Config,
    /// The compute cores.
    pub(crate) compute: Pool,
    state: Mutex<State>,
    /// Bumped (under the state lock) by every reset.
    epoch: AtomicU64,
    shut: AtomicBool,
    /// Per engine: bumped by whatever may give it work, so a spinning engine sees it
    /// without taking the lock.
    kicks: [AtomicU32; QUEUES],
    pub(crate) engine_cv: [Condvar; QUEUES],
    reset_cv: Condvar,
    pub(crate) fw_cv: Condvar,
    threads: Mutex<Threads>,
    live_threads: AtomicUsize,
    /// The compute cores' translation caches are valid while this is unchanged:
    /// `MMU.INVALIDATE` bumps it.
    pub(crate) tlb_epoch: AtomicU64,
    /// Held shared by a core for each global-memory access (translation and data);
    /// `MMU.INVALIDATE` takes it exclusively once, after bumping `tlb_epoch`, so that
    /// when the write returns no access with a stale translation is still going on.
    pub(crate) core_access: RwLock<()>,
}

/// Serves BAR0. It holds the device weakly: the fabric keeps its handlers forever,
/// and the device must be able to go away with its model.
struct Bar0 {
    core: Weak<Core>,
}

pub(crate) fn bar0_handler(core: &Arc<Core>) -> Arc<dyn MmioHandler> {
    Arc::new(Bar0 {
        core: Arc::downgrade(core),
    })
}

/// Splits an access into aligned dwords: (index into the data, BAR0 offset).
fn dwords(offset: u64, len: usize) -> Option<impl Iterator<Item = (usize, u32)>> {
    let aligned = offset.is_multiple_of(4) && len.is_multiple_of(4) && len > 0;
    let inside = offset
        .checked_add(len as u64)
        .is_some_and(|end| end <= sagrada_hw_accel_abi::BAR0_SIZE);
    (aligned && inside).then(|| (0..len / 4).map(move |i| (4 * i, (offset as u32) + 4 * i as u32)))
}

impl MmioHandler for Bar0 {
    fn read(&self, offset: u64, data: &mut [u8]) {
        let core = self.core.upgrade().filter(|c| !c.is_shut());
        let (Some(core), Some(parts)) = (core, dwords(offset, data.len())) else {
            data.fill(0xff);
            return;
        };
        for (at, off) in parts {
            data[at..at + 4].copy_from_slice(&core.read_reg(off).to_le_bytes());
        }
    }

    fn write(&self, offset: u64, data: &[u8]) {
        let core = self.core.upgrade().filter(|c| !c.is_shut());
        let (Some(core), Some(parts)) = (core, dwords(offset, data.len())) else {
            return;
        };
        for (at, off) in parts {
            let d = &data[at..at + 4];
            core.write_reg(off, u32::from_le_bytes([d[0], d[1], d[2], d[3]]));
        }
    }
}

/// Decrements the live-thread count when a device thread ends, however it ends.
pub(crate) struct LiveGuard<'a>(&'a AtomicUsize);

impl Drop for LiveGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Release);
    }
}

/// A job an engine has taken: the ring slot to fetch.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Job {
    pub(crate) epoch: u64,
    /// DMA address of the ring entry.
    pub(crate) entry_addr: u64,
    /// The engine's clock when it took the job.
    pub(crate) clock: u64,
}

/// The engine's entry was abandoned (reset or shutdown).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Aborted;

impl Core {
    pub(crate) fn new(
        fabric: Arc<Fabric>,
        dev: DeviceId,
        hbm: Arc<Memory>,
        config: Sg1Config,
    ) -> Arc<Self> {
        Arc::new(Self {
            fabric,
            dev,
            hbm,
            compute: Pool::new(config.cores, config.core_threads),
            state: Mutex::new(State::new(config.cores)),
            config,
            epoch: AtomicU64::new(0),
            shut: AtomicBool::new(false),
            kicks: Default::default(),
            engine_cv: Default::default(),
            reset_cv: Condvar::new(),
            fw_cv: Condvar::new(),
            threads: Mutex::new(Threads::default()),
            live_threads: AtomicUsize::new(0),
            tlb_epoch: AtomicU64::new(0),
            core_access: RwLock::new(()),
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn is_shut(&self) -> bool {
        self.shut.load(Acquire)
    }

    /// Whether an entry started in `epoch` must be abandoned.
    pub(crate) fn aborted(&self, epoch: u64) -> bool {
        self.is_shut() || self.epoch.load(Acquire) != epoch
    }

    pub(crate) fn running_threads(&self) -> usize {
        self.live_threads.load(Acquire)
    }

    pub(crate) fn hbm_size(&self) -> u64 {
        self.hbm.len()
    }

    /// Wakes the engines that wait for a condition, so they re-check it. Idle engines
    /// sleep on: only a doorbell (`kick`) concerns them, and waking every parked engine
    /// at every completion would cost each submission a few futex wake-ups.
    pub(crate) fn wake_engines(&self, st: &State) {
        for (q, e) in st.engines.iter().enumerate() {
            if e.waiting > 0 {
                self.engine_cv[q].notify_all();
            }
        }
    }

    /// Tells engine `q` there may be work.
    fn kick(&self, st: &State, q: usize) {
        self.kicks[q].fetch_add(1, Release);
        let e = &st.engines[q];
        if e.parked + e.waiting > 0 {
            self.engine_cv[q].notify_all();
        }
    }

    // ---- registers ----

    pub(crate) fn read_reg(&self, off: u32) -> u32 {
        let st = self.lock();
        if let Some((_, r)) = locate(&global::BLOCK, off) {
            use global::fields::STATUS;
            return match r {
                global::STATUS => {
                    let v = STATUS::FW_READY.set(0, st.fw_ready.into());
                    STATUS::IN_RESET.set(v, (st.resets_in_progress > 0).into())
                }
                global::SCRATCH => st.scratch,
                global::SOFT_RESETS => st.soft_resets,
                global::HARD_RESETS => st.hard_resets,
                global::HBM_SIZE_LO => lo(self.hbm_size()),
                global::HBM_SIZE_HI => hi(self.hbm_size()),
                global::MSIX_PENDING => st.msix_pending,
                global::RESET => 0,
                global::NUM_CORES => self.config.cores,
                // ID, REVISION, CAPS, NUM_SOBS, NUM_MONITORS, CORE_CLOCK_MHZ,
                // ISA_VERSION: constants.
                _ => reset_value(&global::BLOCK, r),
            };
        }
        if let Some((i, r)) = locate(&msix::BLOCK, off) {
            let e = &st.msix[i];
            return match r {
                msix::ADDR_LO => lo(e.addr),
                msix::ADDR_HI => hi(e.addr),
                msix::DATA => e.data,
                _ => msix::fields::CTRL::MASKED.set(0, e.masked.into()),
            };
        }
        if let Some((_, r)) = locate(&mbox::BLOCK, off) {
            use mbox::fields::STATUS;
            return match r {
                mbox::STATUS => {
                    let v = STATUS::BUSY.set(0, st.mbox.busy.into());
                    STATUS::RESP_VALID.set(v, st.mbox.resp_valid.into())
                }
                _ => 0,
            };
        }
        if let Some((i, _)) = locate(&mbox_req::BLOCK, off) {
            return st.mbox.req[i];
        }
        if let Some((i, _)) = locate(&mbox_resp::BLOCK, off) {
            return st.mbox.resp[i];
        }
        if let Some((_, r)) = locate(&mmu::BLOCK, off) {
            let m = &st.mmu;
            return match r {
                mmu::FAULT_STATUS => m.status,
                mmu::FAULT_ASID => m.asid,
                mmu::FAULT_VA_LO => lo(m.va),
                mmu::FAULT_VA_HI => hi(m.va),
                mmu::FAULT_CAUSE => m.cause,
                mmu::FAULT_COUNT => m.count,
                _ => 0,
            };
        }
        if let Some((i, r)) = locate(&mmu_hop0::BLOCK, off) {
            return if r == mmu_hop0::LO {
                lo(st.hop0[i])
            } else {
                hi(st.hop0[i])
            };
        }
        if let Some((q, r)) = locate(&queue::BLOCK, off) {
            let qr = &st.queues[q];
            use queue::fields::STATUS;
            return match r {
                queue::BASE_LO => lo(qr.base),
                queue::BASE_HI => hi(qr.base),
                queue::SIZE_LOG2 => qr.size_log2,
                queue::PI => qr.pi,
                queue::CI => qr.ci,
                queue::CTRL => queue::fields::CTRL::ENABLE.set(0, qr.enable.into()),
                queue::STATUS => {
                    let v = STATUS::IDLE.set(0, (qr.ci == qr.pi).into());
                    STATUS::WAITING.set(v, qr.waiting.into())
                }
                queue::BUSY_NS_LO => lo(qr.busy_ns),
                queue::BUSY_NS_HI => hi(qr.busy_ns),
                queue::ERRORS => qr.errors,
                _ => 0,
            };
        }
        if let Some((_, r)) = locate(&cq::BLOCK, off) {
            let c = &st.cq;
            return match r {
                cq::BASE_LO => lo(c.base),
                cq::BASE_HI => hi(c.base),
                cq::SIZE_LOG2 => c.size_log2,
                cq::PI => c.pi,
                cq::CI => c.ci,
                cq::CTRL => cq::fields::CTRL::ENABLE.set(0, c.enable.into()),
                _ => 0,
            };
        }
        if let Some((_, r)) = locate(&scrub::BLOCK, off) {
            let s = &st.scrub;
            return match r {
                scrub::ADDR_LO => lo(s.addr),
                scrub::ADDR_HI => hi(s.addr),
                scrub::SIZE_LO => lo(s.size),
                scrub::SIZE_HI => hi(s.size),
                scrub::STATUS => s.status,
                _ => 0,
            };
        }
        if let Some((i, r)) = locate(&cores::BLOCK, off) {
            let Some(c) = st.cores.get(i) else {
                return 0;
            };
            let n = &c.counters;
            return match r {
                cores::INSTRUCTIONS_LO => lo(n.instructions),
                cores::INSTRUCTIONS_HI => hi(n.instructions),
                cores::LANE_OPS_LO => lo(n.lane_ops),
                cores::LANE_OPS_HI => hi(n.lane_ops),
                cores::GLOBAL_BYTES_LO => lo(n.global_bytes),
                cores::GLOBAL_BYTES_HI => hi(n.global_bytes),
                cores::INVOCATIONS_LO => lo(n.invocations),
                cores::INVOCATIONS_HI => hi(n.invocations),
                cores::SCRATCH_BYTES_LO => lo(n.scratch_bytes),
                cores::SCRATCH_BYTES_HI => hi(n.scratch_bytes),
                cores::BUSY_NS_LO => lo(c.busy_ns),
                cores::BUSY_NS_HI => hi(c.busy_ns),
                cores::FAULT_CAUSE => c.fault_cause,
                cores::FAULT_PC => c.fault_pc,
                cores::FAULT_INFO_LO => lo(c.fault_info),
                cores::FAULT_INFO_HI => hi(c.fault_info),
                _ => 0,
            };
        }
        if let Some((i, _)) = locate(&sob::BLOCK, off) {
            return st.sobs[i];
        }
        if let Some((i, _)) = locate(&sob_owner::BLOCK, off) {
            return st.sob_owners[i];
        }
        if let Some((i, r)) = locate(&monitor::BLOCK, off) {
            let m = &st.monitors[i];
            use monitor::fields::STATUS;
            return match r {
                monitor::SOB => m.sob,
                monitor::TARGET => m.target,
                monitor::PAYLOAD_ADDR_LO => lo(m.payload_addr),
                monitor::PAYLOAD_ADDR_HI => hi(m.payload_addr),
                monitor::PAYLOAD_DATA => m.payload_data,
                monitor::STATUS => {
                    let v = STATUS::ARMED.set(0, m.armed.into());
                    STATUS::FIRED.set(v, m.fired.into())
                }
                _ => 0,
            };
        }
        0
    }

    /// A register write, from the bus or from a `WREG32` packet.
    pub(crate) fn write_reg(self: &Arc<Self>, off: u32, value: u32) {
        let mut after = After::default();
        {
            let mut st = self.lock();
            self.write_locked(&mut st, off, value, &mut after);
        }
        self.run_after(after);
    }

    fn write_locked(&self, st: &mut State, off: u32, value: u32, after: &mut After) {
        if let Some((_, r)) = locate(&global::BLOCK, off) {
            use global::fields::RESET;
            match r {
                global::SCRATCH => st.scratch = value,
                global::RESET if RESET::HARD.is_set(value) => after.reset = Some(true),
                global::RESET if RESET::SOFT.is_set(value) => after.reset = Some(false),
                _ => {}
            }
        } else if let Some((i, r)) = locate(&msix::BLOCK, off) {
            let e = &mut st.msix[i];
            match r {
                msix::ADDR_LO => set_lo(&mut e.addr, value),
                msix::ADDR_HI => set_hi(&mut e.addr, value),
                msix::DATA => e.data = value,
                _ => {
                    e.masked = msix::fields::CTRL::MASKED.is_set(value);
                    let bit = 1 << i;
                    if !e.masked && st.msix_pending & bit != 0 {
                        st.msix_pending &= !bit;
                        after.messages.push((e.addr, e.data));
                    }
                }
            }
        } else if let Some((_, r)) = locate(&mbox::BLOCK, off) {
            use mbox::fields::STATUS;
            match r {
                mbox::DOORBELL => {
                    // BUSY from the doorbell on, so a driver that reads STATUS right
                    // after ringing never sees an idle mailbox without a response.
                    st.mbox.pending = true;
                    st.mbox.busy = true;
                    self.fw_cv.notify_all();
                    after.spawn_firmware = true;
                }
                _ => {
                    if STATUS::RESP_VALID.is_set(value) {
                        st.mbox.resp_valid = false;
                    }
                }
            }
        } else if let Some((i, _)) = locate(&mbox_req::BLOCK, off) {
            st.mbox.req[i] = value;
        } else if let Some((_, r)) = locate(&mmu::BLOCK, off) {
            match r {
                mmu::FAULT_STATUS => st.mmu.status &= !value,
                // The engines walk the tables on every access; the cores' caches are
                // dropped after the state lock is released (a core's access may need it).
                mmu::INVALIDATE => after.invalidate = true,
                _ => {}
            }
        } else if let Some((i, r)) = locate(&mmu_hop0::BLOCK, off) {
            if r == mmu_hop0::LO {
                set_lo(&mut st.hop0[i], value);
            } else {
                set_hi(&mut st.hop0[i], value);
            }
        } else if let Some((q, r)) = locate(&queue::BLOCK, off) {
            let qr = &mut st.queues[q];
            match r {
                queue::BASE_LO => set_lo(&mut qr.base, value),
                queue::BASE_HI => set_hi(&mut qr.base, value),
                queue::SIZE_LOG2 => qr.size_log2 = value,
                queue::PI => {
                    qr.pi = value;
                    after.spawn_engine = Some(q);
                    self.kick(st, q);
                }
                queue::CTRL => {
                    qr.enable = queue::fields::CTRL::ENABLE.is_set(value);
                    self.kick(st, q);
                }
                _ => {}
            }
        } else if let Some((_, r)) = locate(&cq::BLOCK, off) {
            let c = &mut st.cq;
            match r {
                cq::BASE_LO => set_lo(&mut c.base, value),
                cq::BASE_HI => set_hi(&mut c.base, value),
                cq::SIZE_LOG2 => c.size_log2 = value,
                cq::CI => c.ci = value,
                cq::CTRL => c.enable = cq::fields::CTRL::ENABLE.is_set(value),
                _ => return,
            }
            // An engine may be waiting for room (CI) or for the queue to change.
            self.wake_engines(st);
        } else if let Some((_, r)) = locate(&scrub::BLOCK, off) {
            let s = &mut st.scrub;
            match r {
                scrub::ADDR_LO => set_lo(&mut s.addr, value),
                scrub::ADDR_HI => set_hi(&mut s.addr, value),
                scrub::SIZE_LO => set_lo(&mut s.size, value),
                scrub::SIZE_HI => set_hi(&mut s.size, value),
                scrub::CTRL if scrub::fields::CTRL::GO.is_set(value) => after.scrub = true,
                _ => {}
            }
        } else if let Some((i, r)) = locate(&cores::BLOCK, off) {
            use cores::fields::FAULT_CAUSE;
            if let (Some(c), cores::FAULT_CAUSE) = (st.cores.get_mut(i), r) {
                if FAULT_CAUSE::CODE.get(value) != 0 {
                    let overflow = c.fault_cause & FAULT_CAUSE::OVERFLOW.mask();
                    c.fault_cause = overflow;
                    c.fault_pc = 0;
                    c.fault_info = 0;
                }
                if FAULT_CAUSE::OVERFLOW.is_set(value) {
                    c.fault_cause &= !FAULT_CAUSE::OVERFLOW.mask();
                }
            }
        } else if let Some((i, _)) = locate(&sob::BLOCK, off) {
            st.sobs[i] = value;
            self.sob_changed(st, i as u32, after);
        } else if let Some((i, _)) = locate(&sob_owner::BLOCK, off) {
            st.sob_owners[i] = value;
        } else if let Some((i, r)) = locate(&monitor::BLOCK, off) {
            let m = &mut st.monitors[i];
            match r {
                monitor::SOB => m.sob = value,
                monitor::TARGET => m.target = value,
                monitor::PAYLOAD_ADDR_LO => set_lo(&mut m.payload_addr, value),
                monitor::PAYLOAD_ADDR_HI => set_hi(&mut m.payload_addr, value),
                monitor::PAYLOAD_DATA => m.payload_data = value,
                monitor::ARM => {
                    use monitor::fields::ARM;
                    if ARM::ARM.is_set(value) {
                        m.armed = true;
                        m.write = ARM::WRITE.is_set(value);
                        m.irq = ARM::IRQ.is_set(value);
                        let sob = m.sob;
                        self.sob_changed(st, sob, after);
                    }
                }
                _ => {
                    use monitor::fields::STATUS;
                    if STATUS::ARMED.is_set(value) {
                        m.armed = false;
                    }
                    if STATUS::FIRED.is_set(value) {
                        m.fired = false;
                    }
                }
            }
        }
    }

    /// Does what a register write left to do outside the lock.
    pub(crate) fn run_after(self: &Arc<Self>, after: After) {
        if after.invalidate {
            // Every core's next access re-walks the tables; waiting for the accesses
            // in progress makes the invalidation complete when the write returns.
            self.tlb_epoch.fetch_add(1, Release);
            drop(
                self.core_access
                    .write()
                    .unwrap_or_else(PoisonError::into_inner),
            );
        }
        for (addr, data) in after.payloads {
            self.write_payload(addr, data);
        }
        for v in after.irqs {
            self.raise(v);
        }
        for (addr, data) in after.messages {
            self.send_msi(addr, data);
        }
        if let Some(q) = after.spawn_engine {
            self.ensure_thread(Some(q));
        }
        if after.spawn_firmware {
            self.ensure_thread(None);
        }
        if after.scrub {
            self.scrub();
        }
        if let Some(hard) = after.reset {
            self.reset(hard);
        }
    }

    // ---- interrupts ----

    fn send_msi(&self, addr: u64, data: u32) {
        if let Err(e) = self
            .fabric
            .dma_write(self.dev, Iova(addr), &data.to_le_bytes())
        {
            tracing::warn!(
                "SG1 {:?}: interrupt message to {addr:#x} refused: {e}",
                self.dev
            );
        }
    }

    /// Raises MSI-X vector `v`: sent now, or left pending while the vector is masked.
    pub(crate) fn raise(&self, v: u32) {
        let message = {
            let mut st = self.lock();
            let e = st.msix[v as usize];
            if e.masked {
                st.msix_pending |= 1 << v;
                None
            } else {
                Some((e.addr, e.data))
            }
        };
        if let Some((addr, data)) = message {
            self.send_msi(addr, data);
        }
    }

    // ---- MMU faults ----

    /// Records a fault in the `MMU.FAULT_*` registers and raises the MMU vector.
    pub(crate) fn mmu_fault(&self, f: MmuFault) {
        tracing::debug!("SG1 {:?}: MMU fault {f:?}", self.dev);
        {
            let mut st = self.lock();
            use mmu::fields::{FAULT_CAUSE, FAULT_STATUS};
            let m = &mut st.mmu;
            if FAULT_STATUS::VALID.is_set(m.status) {
                m.status = FAULT_STATUS::OVERFLOW.set(m.status, 1);
            } else {
                m.status = FAULT_STATUS::VALID.set(m.status, 1);
                m.asid = f.asid;
                m.va = f.va;
                m.cause = FAULT_CAUSE::WRITE.set(f.cause as u32, f.write.into());
            }
            m.count = m.count.wrapping_add(1);
        }
        self.raise(VECTOR_MMU);
    }

    /// A transfer of the device itself (not of a job) that the fabric or the HBM
    /// refused: reported as a fault of the physical address space.
    pub(crate) fn bus_fault(&self, phys: u64, cause: abi_mmu::FaultCause, write: bool) {
        self.mmu_fault(MmuFault {
            asid: 0,
            va: phys,
            cause,
            write,
        });
    }

    // ---- sync manager ----

    /// A sync object changed: fire the monitors whose condition now holds, wake the
    /// engines blocked on `WAIT`.
    pub(crate) fn sob_changed(&self, st: &mut State, sob: u32, after: &mut After) {
        let Some(&value) = st.sobs.get(sob as usize) else {
            return;
        };
        for m in st.monitors.iter_mut() {
            if m.armed && m.sob == sob && value >= m.target {
                m.armed = false;
                m.fired = true;
                if m.write {
                    after.payloads.push((m.payload_addr, m.payload_data));
                }
                if m.irq {
                    after.irqs.push(VECTOR_MONITOR);
                }
            }
        }
        self.wake_engines(st);
    }

    fn write_payload(&self, addr: u64, data: u32) {
        let bytes = data.to_le_bytes();
        match abi_mmu::decode_phys(addr) {
            abi_mmu::PhysTarget::Host(iova) => {
                if self.fabric.dma_write(self.dev, Iova(iova), &bytes).is_err() {
                    self.bus_fault(addr, abi_mmu::FaultCause::HostRefused, true);
                }
            }
            abi_mmu::PhysTarget::Hbm(pa) => {
                if self.hbm.write(pa, &bytes).is_err() {
                    self.bus_fault(addr, abi_mmu::FaultCause::BadAddress, true);
                }
            }
        }
    }

    // ---- scrubber ----

    fn scrub(&self) {
        let (addr, size) = {
            let mut st = self.lock();
            st.scrub.status = 0;
            (st.scrub.addr, st.scrub.size)
        };
        let ok = addr % HBM_PAGE == 0
            && size % HBM_PAGE == 0
            && addr
                .checked_add(size)
                .is_some_and(|end| end <= self.hbm_size());
        // The discard runs without the lock: it may be the whole HBM.
        let ok = ok && self.hbm.discard(addr, size).is_ok();
        use scrub::fields::STATUS;
        let status = if ok {
            STATUS::DONE.set(0, 1)
        } else {
            STATUS::ERROR.set(0, 1)
        };
        self.lock().scrub.status = status;
    }

    // ---- resets ----

    /// Performs a reset; returns when it has completed. Safe to call from a device
    /// thread (a `WREG32` to `RESET`, the firmware, a handler run inside an
    /// interrupt the device raised): the calling engine is not waited for.
    pub(crate) fn reset(&self, hard: bool) {
        tracing::debug!(
            "SG1 {:?}: {} reset",
            self.dev,
            if hard { "hard" } else { "soft" }
        );
        let me = thread::current().id();
        let mut st = self.lock();
        st.resets_in_progress += 1;
        self.epoch.fetch_add(1, Release);
        for q in st.queues.iter_mut() {
            *q = QueueRegs::default();
        }
        st.cq = CqRegs::default();
        st.sobs.fill(0);
        st.sob_owners.fill(0);
        st.monitors.fill(Monitor::default());
        st.mmu = MmuRegs::default();
        st.cores.fill(CoreRegs::default());
        if hard {
            st.hard_resets = st.hard_resets.wrapping_add(1);
            st.msix = [MsixEntry::reset(); NUM_MSIX as usize];
            st.msix_pending = 0;
            st.hop0 = [0; NUM_ASIDS as usize];
            st.scratch = 0;
            st.scrub = ScrubRegs::default();
            // The firmware goes down with the chip: a request in flight is dropped.
            st.fw_ready = false;
            st.mbox.epoch += 1;
            st.mbox.pending = false;
            st.mbox.busy = false;
        } else {
            st.soft_resets = st.soft_resets.wrapping_add(1);
        }
        for q in 0..QUEUES {
            self.kick(&st, q);
        }
        // Every engine but this thread's leaves its entry (a WAIT or a full completion
        // queue is woken above; a copy in progress ends first, a launch's cores stop at
        // their next check). A compute worker resetting (from an interrupt handler) does
        // not wait for the COMPUTE engine, which waits for it.
        let worker = crate::compute::on_worker_thread();
        let waits_for = |q: usize, e: &EngineSlot| {
            e.running && e.thread != Some(me) && !(worker && q == QUEUE_COMPUTE as usize)
        };
        while !self.is_shut() && st.engines.iter().enumerate().any(|(q, e)| waits_for(q, e)) {
            st = self
                .reset_cv
                .wait(st)
                .unwrap_or_else(PoisonError::into_inner);
        }
        drop(st);
        if hard {
            // Outside the lock: this gives back up to the whole HBM.
            if let Err(e) = self.hbm.discard(0, self.hbm_size()) {
                tracing::error!("SG1 {:?}: discarding the HBM: {e}", self.dev);
            }
        }
        let mut st = self.lock();
        if hard {
            st.fw_ready = true;
            st.mbox.booted = Instant::now();
        }
        st.resets_in_progress -= 1;
        for q in 0..QUEUES {
            self.kick(&st, q);
        }
    }

    // ---- engines' side ----

    /// Registers the calling thread as engine `q`'s.
    pub(crate) fn engine_started(&self, q: usize) {
        self.lock().engines[q].thread = Some(thread::current().id());
    }

    fn try_take(&self, st: &mut State, q: usize) -> Option<Job> {
        let qr = st.queues[q];
        let size = ring_size(qr.size_log2)?;
        if st.resets_in_progress > 0 || !qr.enable || qr.ci == qr.pi {
            return None;
        }
        st.engines[q].running = true;
        Some(Job {
            epoch: self.epoch.load(Acquire),
            entry_addr: qr.base.wrapping_add(
                u64::from(qr.ci & (size - 1)) * sagrada_hw_accel_abi::entry::RING_ENTRY_SIZE,
            ),
            clock: qr.busy_ns,
        })
    }

    /// The next entry for engine `q`: spins for a while when there is none, then
    /// parks until a doorbell. `None` when the device shuts down.
    pub(crate) fn next_job(&self, q: usize) -> Option<Job> {
        let start = Instant::now();
        let mut spins = 0u32;
        loop {
            let seen = self.kicks[q].load(Acquire);
            {
                let mut st = self.lock();
                loop {
                    if self.is_shut() {
                        return None;
                    }
                    if let Some(job) = self.try_take(&mut st, q) {
                        return Some(job);
                    }
                    if start.elapsed() < SPIN {
                        break;
                    }
                    st.engines[q].parked += 1;
                    st = self.engine_cv[q]
                        .wait(st)
                        .unwrap_or_else(PoisonError::into_inner);
                    st.engines[q].parked -= 1;
                }
            }
            while self.kicks[q].load(Acquire) == seen && !self.is_shut() && start.elapsed() < SPIN {
                std::hint::spin_loop();
                spins = spins.wrapping_add(1);
                if spins.is_multiple_of(32) {
                    thread::yield_now();
                }
            }
        }
    }

    /// Engine `q` is done with `job`: the entry is consumed unless a reset abandoned it.
    pub(crate) fn finish_job(&self, q: usize, job: &Job, clock: u64, failed: bool) {
        let mut st = self.lock();
        st.engines[q].running = false;
        if !self.aborted(job.epoch) {
            let qr = &mut st.queues[q];
            qr.ci = qr.ci.wrapping_add(1);
            qr.busy_ns = clock;
            if failed {
                qr.errors = qr.errors.wrapping_add(1);
            }
        }
        self.reset_cv.notify_all();
    }

    pub(crate) fn engine_exited(&self, q: usize) {
        let mut st = self.lock();
        st.engines[q].running = false;
        st.engines[q].thread = None;
        self.reset_cv.notify_all();
    }

    /// Waits until `cond` holds for engine `q`, or the entry is abandoned.
    pub(crate) fn engine_wait<'a>(
        &'a self,
        mut st: MutexGuard<'a, State>,
        q: usize,
        epoch: u64,
        mut cond: impl FnMut(&mut State) -> bool,
    ) -> Result<MutexGuard<'a, State>, Aborted> {
        loop {
            if self.aborted(epoch) {
                return Err(Aborted);
            }
            if cond(&mut st) {
                return Ok(st);
            }
            st.engines[q].waiting += 1;
            st = self.engine_cv[q]
                .wait(st)
                .unwrap_or_else(PoisonError::into_inner);
            st.engines[q].waiting -= 1;
        }
    }

    // ---- threads ----

    /// Starts engine `q`'s thread (`None`: the firmware's) unless it runs already.
    fn ensure_thread(self: &Arc<Self>, engine: Option<usize>) {
        let mut t = self.threads.lock().unwrap_or_else(PoisonError::into_inner);
        let started = match engine {
            Some(q) => &mut t.engines[q],
            None => &mut t.firmware,
        };
        if *started || self.is_shut() {
            return;
        }
        *started = true;
        self.spawn(
            &mut t,
            match engine {
                Some(q) => ThreadKind::Engine(q),
                None => ThreadKind::Firmware,
            },
        );
    }

    /// Starts the compute workers (threads 1 and up) unless they run already; the
    /// COMPUTE engine calls it at each launch. A worker that cannot start leaves its
    /// cores to the engine's thread.
    pub(crate) fn ensure_compute_threads(self: &Arc<Self>) {
        let mut t = self.threads.lock().unwrap_or_else(PoisonError::into_inner);
        if t.compute || self.is_shut() {
            return;
        }
        t.compute = true;
        for i in 1..self.compute.threads {
            self.spawn(&mut t, ThreadKind::Compute(i));
        }
    }

    /// Starts a device thread. Under the threads lock: shutdown sets its flag and then
    /// takes the handles under that lock, so either it joins the new thread or no
    /// thread starts.
    fn spawn(self: &Arc<Self>, t: &mut Threads, kind: ThreadKind) {
        let name = match kind {
            ThreadKind::Engine(q) => format!("sg1-{}-q{q}", self.dev.0),
            ThreadKind::Firmware => format!("sg1-{}-fw", self.dev.0),
            ThreadKind::Compute(i) => format!("sg1-{}-c{i}", self.dev.0),
        };
        let core = self.clone();
        self.live_threads.fetch_add(1, Release);
        let spawned = thread::Builder::new().name(name).spawn(move || {
            let _live = LiveGuard(&core.live_threads);
            match kind {
                ThreadKind::Engine(q) => crate::engine::engine_main(&core, q),
                ThreadKind::Firmware => crate::firmware::firmware_main(&core),
                ThreadKind::Compute(i) => crate::compute::worker_main(&core, i),
            }
        });
        match spawned {
            Ok(h) => {
                t.handles.push(h);
                if let ThreadKind::Compute(i) = kind {
                    self.compute.started(i);
                }
            }
            Err(e) => {
                self.live_threads.fetch_sub(1, Release);
                tracing::error!("SG1 {:?}: cannot start a device thread: {e}", self.dev);
            }
        }
    }

    pub(crate) fn shutdown(&self) {
        self.shut.store(true, Release);
        {
            let _st = self.lock();
            for cv in &self.engine_cv {
                cv.notify_all();
            }
            self.fw_cv.notify_all();
            self.reset_cv.notify_all();
        }
        self.compute.wake_all();
        for k in &self.kicks {
            k.fetch_add(1, Release);
        }
        let handles = std::mem::take(
            &mut self
                .threads
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .handles,
        );
        let me = thread::current().id();
        for h in handles {
            if h.thread().id() == me {
                // Shut down from one of its own threads (inside an interrupt handler):
                // that thread ends when it returns here.
                continue;
            }
            if h.join().is_err() {
                tracing::error!("SG1 {:?}: a device thread panicked", self.dev);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_are_found_by_block_instance_and_offset() {
        assert_eq!(
            locate(&queue::BLOCK, queue::instance(2) + queue::CI),
            Some((2, queue::CI))
        );
        assert_eq!(
            locate(&queue::BLOCK, queue::instance(1) + 0x1c),
            None,
            "a gap"
        );
        assert_eq!(
            locate(&queue::BLOCK, queue::instance(3)),
            None,
            "past the last instance"
        );
        assert_eq!(locate(&sob::BLOCK, sob::instance(2047)), Some((2047, 0)));
        assert_eq!(locate(&cq::BLOCK, cq::BASE + cq::CTRL), Some((0, cq::CTRL)));
        assert_eq!(locate(&cq::BLOCK, cq::BASE + 0x40), None);
        assert_eq!(reset_value(&global::BLOCK, global::ID), 0x5347_0001);
        assert_eq!(reset_value(&queue::BLOCK, queue::STATUS), 1);
    }

    #[test]
    fn accesses_split_into_aligned_dwords_inside_bar0() {
        let parts: Vec<_> = dwords(0x1000, 8).unwrap().collect();
        assert_eq!(parts, vec![(0, 0x1000), (4, 0x1004)]);
        assert!(dwords(0x1002, 4).is_none());
        assert!(dwords(0x1000, 2).is_none());
        assert!(dwords(0x1000, 0).is_none());
        assert!(dwords(sagrada_hw_accel_abi::BAR0_SIZE - 4, 8).is_none());
    }

    #[test]
    fn ring_sizes_are_one_to_sixteen_log2() {
        assert_eq!(ring_size(0), None);
        assert_eq!(ring_size(1), Some(2));
        assert_eq!(ring_size(16), Some(1 << 16));
        assert_eq!(ring_size(17), None);
    }

    #[test]
    fn the_device_can_be_shared_between_threads() {
        fn check<T: Send + Sync>() {}
        check::<crate::Sg1>();
        check::<Core>();
    }
}
