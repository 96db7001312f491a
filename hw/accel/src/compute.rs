//! The compute cores: how a `LAUNCH` runs on host threads.
//!
//! Each core is the reference semantics of `sagrada-isa` ([`exec::Core`]), whose
//! state it keeps across launches. The cores of a launch split its index space with
//! [`exec::partition`] over the cores of the core mask; each runs its points in
//! order. Core `i` runs on host thread `i % threads`: thread 0 is the COMPUTE
//! engine's own thread, the others are workers started at the first launch and kept
//! (parked on a condition variable) until shutdown.
//!
//! A core's global-memory accesses go through [`CoreMem`]: the MMU with a small
//! translation cache that lives for one launch, HBM directly, host memory through the
//! fabric with the SG1 as initiator. A core stops at its first fault, and a core stops
//! early (at its next check) once a lower-numbered core has faulted, so the fault
//! reported, the lowest-numbered core's, does not depend on timing. A reset or
//! shutdown stops every core at its next check ([`GlobalMemory::should_stop`], which
//! the reference semantics asks every 64 Ki instructions or so).
//!
//! Nothing here raises an interrupt or writes a register: the engine does that once
//! every core has finished, from its own thread.

use std::cell::Cell;
use std::ops::Range;
use std::sync::atomic::AtomicU32;
use std::sync::atomic::Ordering::{Acquire, Relaxed};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use sagrada_hw_accel_abi::CORE_CLOCK_MHZ;
use sagrada_hw_accel_abi::mmu::{FaultCause, PAGE_4K};
use sagrada_hw_fabric::{DmaError, Iova};
use sagrada_isa::DIMS;
use sagrada_isa::exec::{
    self, Counters, Fault, GlobalMemory, Launch, MemFault, Program, Stop, TensorDesc,
};

use crate::device::{Aborted, Core};
use crate::mmu::Target;

/// Entries of a core's translation cache (direct mapped by 4 KiB page).
const TLB_ENTRIES: usize = 64;

thread_local! {
    /// Set on the compute worker threads: a reset started from one of them (by an
    /// interrupt handler run inside a write to the MSI window) must not wait for the
    /// COMPUTE engine, which is waiting for this very thread.
    static ON_WORKER: Cell<bool> = const { Cell::new(false) };
}

/// Whether the calling thread is a compute worker.
pub(crate) fn on_worker_thread() -> bool {
    ON_WORKER.with(Cell::get)
}

/// One launch, as the cores see it.
pub(crate) struct LaunchJob {
    pub(crate) epoch: u64,
    pub(crate) asid: u16,
    pub(crate) program: Program,
    pub(crate) dims: [u32; DIMS],
    pub(crate) tensors: Vec<TensorDesc>,
    pub(crate) scalars: Vec<u32>,
    /// The cores taking part, ascending, each with its points (linear indices).
    pub(crate) parts: Vec<(u32, Range<u64>)>,
    /// The lowest-numbered core that has faulted (`u32::MAX`: none yet).
    first_fault: AtomicU32,
    /// One per part, filled in by whichever thread ran it.
    results: Vec<Mutex<Option<CoreResult>>>,
}

/// How a core's part of a launch ended.
#[derive(Clone, Copy, Debug)]
pub(crate) enum CoreEnd {
    /// Every point ran to `halt`.
    Done,
    /// A fault; for an MMU fault, the MMU's cause.
    Fault(Fault, Option<FaultCause>),
    /// Stopped early: a lower-numbered core faulted.
    Stopped,
    /// A reset or shutdown.
    Aborted,
}

/// What one core did in a launch.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CoreResult {
    pub(crate) counters: Counters,
    /// The core's device time, ns.
    pub(crate) busy_ns: u64,
    pub(crate) end: CoreEnd,
}

impl LaunchJob {
    pub(crate) fn new(
        epoch: u64,
        asid: u16,
        program: Program,
        dims: [u32; DIMS],
        tensors: Vec<TensorDesc>,
        scalars: Vec<u32>,
        cores: &[u32],
    ) -> Self {
        let k = cores.len() as u32;
        let parts: Vec<_> = cores
            .iter()
            .enumerate()
            .map(|(i, &c)| (c, exec::partition(dims, k, i as u32)))
            .collect();
        let results = parts.iter().map(|_| Mutex::new(None)).collect();
        Self {
            epoch,
            asid,
            program,
            dims,
            tensors,
            scalars,
            parts,
            first_fault: AtomicU32::new(u32::MAX),
            results,
        }
    }

    /// Each part's result, in part order (after [`Pool::launch`] returned `Ok`).
    pub(crate) fn results(&self) -> impl Iterator<Item = (u32, Option<CoreResult>)> + '_ {
        self.parts.iter().zip(&self.results).map(|((c, _), r)| {
            let r = *r.lock().unwrap_or_else(PoisonError::into_inner);
            (*c, r)
        })
    }
}

struct PoolState {
    /// Bumped for every launch posted to the workers.
    generation: u64,
    job: Option<Arc<LaunchJob>>,
    /// Workers still running the posted launch.
    pending: usize,
    /// Which workers are running (index = thread number; 0 is the engine's).
    alive: Vec<bool>,
    /// Which workers were started (they are alive once they have registered).
    started: Vec<bool>,
}

/// The cores and the threads that run them.
pub(crate) struct Pool {
    /// Host threads, the engine's included (at least 1, at most the number of cores).
    pub(crate) threads: usize,
    /// Each core's architectural state, created at its first launch.
    cores: Vec<Mutex<Option<exec::Core>>>,
    state: Mutex<PoolState>,
    work_cv: Condvar,
    done_cv: Condvar,
}

impl Pool {
    pub(crate) fn new(cores: u32, threads: usize) -> Self {
        let threads = threads.clamp(1, cores.max(1) as usize);
        Self {
            threads,
            cores: (0..cores).map(|_| Mutex::new(None)).collect(),
            state: Mutex::new(PoolState {
                generation: 0,
                job: None,
                pending: 0,
                alive: vec![false; threads],
                started: vec![false; threads],
            }),
            work_cv: Condvar::new(),
            done_cv: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Worker `t`'s thread has been started.
    pub(crate) fn started(&self, t: usize) {
        self.lock().started[t] = true;
    }

    /// Wakes every thread waiting on the pool (shutdown).
    pub(crate) fn wake_all(&self) {
        let _st = self.lock();
        self.work_cv.notify_all();
        self.done_cv.notify_all();
    }

    /// Runs `job` on the cores: the calling engine runs thread 0's cores (and those of
    /// any worker that is not running), the workers theirs. Returns when every core
    /// has finished, or at once on shutdown (`Aborted`: the results are incomplete).
    pub(crate) fn launch(&self, dev: &Arc<Core>, job: &Arc<LaunchJob>) -> Result<(), Aborted> {
        dev.ensure_compute_threads();
        let mine = {
            let mut st = self.lock();
            // Workers just started register first: their cores run on their threads.
            while !dev.is_shut() && (1..self.threads).any(|t| st.started[t] && !st.alive[t]) {
                st = self
                    .done_cv
                    .wait(st)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            let mut mine = vec![0];
            let mut pending = 0;
            for t in 1..self.threads {
                if st.alive[t] {
                    pending += 1;
                } else {
                    mine.push(t);
                }
            }
            st.pending = pending;
            st.generation += 1;
            st.job = Some(job.clone());
            self.work_cv.notify_all();
            mine
        };
        for t in mine {
            self.run_share(dev, job, t);
        }
        let mut st = self.lock();
        while st.pending > 0 {
            if dev.is_shut() {
                return Err(Aborted);
            }
            st = self
                .done_cv
                .wait(st)
                .unwrap_or_else(PoisonError::into_inner);
        }
        st.job = None;
        Ok(())
    }

    /// Runs the cores of `job` that belong to thread `t`, in ascending order.
    fn run_share(&self, dev: &Core, job: &LaunchJob, t: usize) {
        for (i, (c, points)) in job.parts.iter().enumerate() {
            if *c as usize % self.threads != t {
                continue;
            }
            let result = if job.first_fault.load(Relaxed) < *c {
                CoreResult {
                    counters: Counters::default(),
                    busy_ns: 0,
                    end: CoreEnd::Stopped,
                }
            } else {
                self.run_core(dev, job, *c, points.clone())
            };
            *job.results[i]
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(result);
        }
    }

    fn run_core(&self, dev: &Core, job: &LaunchJob, c: u32, points: Range<u64>) -> CoreResult {
        let mut slot = self.cores[c as usize]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let core = slot.get_or_insert_with(|| exec::Core::new(c));
        core.start_launch();
        let launch = Launch {
            dims: job.dims,
            tensors: &job.tensors,
            scalars: &job.scalars,
        };
        let mut mem = CoreMem::new(dev, job, c);
        let end = match core.run_points(&job.program, &launch, points, &mut mem) {
            Ok(()) => CoreEnd::Done,
            Err(Stop::Fault(f)) => {
                job.first_fault.fetch_min(c, Relaxed);
                let cause = match f.kind {
                    exec::FaultKind::Mmu { va, .. } => Some(mem.cause_at(va)),
                    _ => None,
                };
                CoreEnd::Fault(f, cause)
            }
            Err(Stop::Aborted) => mem.stopped(),
        };
        let counters = core.counters;
        CoreResult {
            counters,
            busy_ns: mem.busy_ns(counters.instructions),
            end,
        }
    }
}

/// A compute worker: runs its share of each launch posted until shutdown.
pub(crate) fn worker_main(dev: &Arc<Core>, t: usize) {
    ON_WORKER.with(|w| w.set(true));
    let pool = &dev.compute;
    let mut seen = {
        let mut st = pool.lock();
        st.alive[t] = true;
        pool.done_cv.notify_all();
        st.generation
    };
    loop {
        let job = {
            let mut st = pool.lock();
            loop {
                if dev.is_shut() {
                    st.alive[t] = false;
                    return;
                }
                if st.generation != seen {
                    seen = st.generation;
                    break st.job.clone();
                }
                st = pool
                    .work_cv
                    .wait(st)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        };
        // Counted as done however the share ends, so the engine never waits forever.
        let _done = Done(pool);
        if let Some(job) = job {
            pool.run_share(dev, &job, t);
        }
    }
}

/// Tells the engine a worker has finished its share of the posted launch.
struct Done<'a>(&'a Pool);

impl Drop for Done<'_> {
    fn drop(&mut self) {
        let mut st = self.0.lock();
        st.pending = st.pending.saturating_sub(1);
        if st.pending == 0 {
            self.0.done_cv.notify_all();
        }
    }
}

/// A translation-cache entry: the 4 KiB page `vpn` starts at `target`.
#[derive(Clone, Copy)]
struct TlbEntry {
    vpn: u64,
    target: Target,
    /// Translated for a write (so writes to the page are allowed).
    writable: bool,
}

const NO_ENTRY: TlbEntry = TlbEntry {
    vpn: u64::MAX,
    target: Target::Hbm(0),
    writable: false,
};

fn at_offset(target: Target, n: u64) -> Target {
    match target {
        Target::Hbm(a) => Target::Hbm(a + n),
        Target::Host(a) => Target::Host(a.wrapping_add(n)),
    }
}

/// Global memory as one core sees it during one launch.
///
/// Translations are cached per 4 KiB page for the launch (and dropped with it, or at
/// an `MMU.INVALIDATE`, which waits for the accesses in progress).
struct CoreMem<'a> {
    dev: &'a Core,
    job: &'a LaunchJob,
    core: u32,
    tlb: [TlbEntry; TLB_ENTRIES],
    /// The device's `tlb_epoch` the cached translations were made under.
    tlb_epoch: u64,
    /// Bytes moved to or from HBM.
    hbm_bytes: u64,
    /// Device time of host accesses, as the fabric reports it.
    host_ns: u64,
    /// The last access refused: the address and the MMU's cause.
    refused: Option<(u64, FaultCause)>,
}

impl<'a> CoreMem<'a> {
    fn new(dev: &'a Core, job: &'a LaunchJob, core: u32) -> Self {
        Self {
            dev,
            job,
            core,
            tlb: [NO_ENTRY; TLB_ENTRIES],
            tlb_epoch: dev.tlb_epoch.load(Acquire),
            hbm_bytes: 0,
            host_ns: 0,
            refused: None,
        }
    }

    /// The MMU's cause of a fault at `va`: an address the core computed but could not
    /// even present to the MMU (beyond 64 bits) is a bad address.
    fn cause_at(&self, va: u64) -> FaultCause {
        match self.refused {
            Some((at, cause)) if at == va => cause,
            _ => FaultCause::BadAddress,
        }
    }

    fn stopped(&self) -> CoreEnd {
        if self.dev.aborted(self.job.epoch) {
            CoreEnd::Aborted
        } else {
            CoreEnd::Stopped
        }
    }

    /// The device time of the core's part: one instruction per cycle, plus its HBM
    /// bytes at the HBM bandwidth, plus the fabric's time for its host accesses.
    fn busy_ns(&self, instructions: u64) -> u64 {
        let compute = instructions as f64 * 1e3 / f64::from(CORE_CLOCK_MHZ);
        let hbm = self.hbm_bytes as f64 / self.dev.config.hbm_bandwidth * 1e9;
        (compute + hbm).round() as u64 + self.host_ns
    }

    fn refuse(&mut self, va: u64, cause: FaultCause) -> MemFault {
        self.refused = Some((va, cause));
        MemFault { va }
    }

    /// Where `va` lives and how many bytes from it are contiguous there (at least 1).
    fn translate(&mut self, va: u64, len: u64, write: bool) -> Result<(Target, u64), MemFault> {
        let vpn = va / PAGE_4K;
        let off = va % PAGE_4K;
        let slot = (vpn % TLB_ENTRIES as u64) as usize;
        let e = self.tlb[slot];
        if e.vpn == vpn && (e.writable || !write) {
            return Ok((at_offset(e.target, off), PAGE_4K - off));
        }
        let page = va - off;
        match self.dev.translate(self.job.asid, page, PAGE_4K, write) {
            Ok(run) if run.len == PAGE_4K => {
                self.tlb[slot] = TlbEntry {
                    vpn,
                    target: run.target,
                    writable: write,
                };
                Ok((at_offset(run.target, off), PAGE_4K - off))
            }
            // A page cut short (the end of an address range): translated as it comes.
            _ => match self.dev.translate(self.job.asid, va, len, write) {
                Ok(run) => Ok((run.target, run.len)),
                Err(cause) => Err(self.refuse(va, cause)),
            },
        }
    }

    /// Drops the cached translations if the MMU was invalidated since they were made.
    /// Called with `core_access` held, so no invalidation completes until the access
    /// that follows has.
    fn check_tlb(&mut self) {
        let epoch = self.dev.tlb_epoch.load(Acquire);
        if epoch != self.tlb_epoch {
            self.tlb = [NO_ENTRY; TLB_ENTRIES];
            self.tlb_epoch = epoch;
        }
    }

    /// The address of the fabric's refusal inside a host run at `va`.
    fn refused_at(va: u64, iova: u64, len: u64, err: &DmaError) -> u64 {
        match err {
            DmaError::Fault(f) => va.wrapping_add(f.addr.raw().wrapping_sub(iova).min(len - 1)),
            _ => va,
        }
    }
}

impl GlobalMemory for CoreMem<'_> {
    fn read(&mut self, va: u64, buf: &mut [u8]) -> Result<(), MemFault> {
        let dev = self.dev;
        let _access = dev
            .core_access
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        self.check_tlb();
        let mut done = 0usize;
        while done < buf.len() {
            let left = (buf.len() - done) as u64;
            let Some(at) = va.checked_add(done as u64) else {
                return Err(self.refuse(va.wrapping_add(done as u64), FaultCause::BadAddress));
            };
            let (target, avail) = self.translate(at, left, false)?;
            let n = avail.min(left) as usize;
            let chunk = &mut buf[done..done + n];
            match target {
                Target::Hbm(pa) => {
                    if self.dev.hbm.read(pa, chunk).is_err() {
                        return Err(self.refuse(at, FaultCause::BadAddress));
                    }
                    self.hbm_bytes += n as u64;
                }
                Target::Host(iova) => {
                    match self.dev.fabric.dma_read(self.dev.dev, Iova(iova), chunk) {
                        Ok(r) => self.host_ns += r.device_time_ns,
                        Err(e) => {
                            let refused = Self::refused_at(at, iova, n as u64, &e);
                            return Err(self.refuse(refused, FaultCause::HostRefused));
                        }
                    }
                }
            }
            done += n;
        }
        Ok(())
    }

    fn write(&mut self, va: u64, data: &[u8]) -> Result<(), MemFault> {
        let dev = self.dev;
        let _access = dev
            .core_access
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        self.check_tlb();
        let mut done = 0usize;
        while done < data.len() {
            let left = (data.len() - done) as u64;
            let Some(at) = va.checked_add(done as u64) else {
                return Err(self.refuse(va.wrapping_add(done as u64), FaultCause::BadAddress));
            };
            let (target, avail) = self.translate(at, left, true)?;
            let n = avail.min(left) as usize;
            let chunk = &data[done..done + n];
            match target {
                Target::Hbm(pa) => {
                    if self.dev.hbm.write(pa, chunk).is_err() {
                        return Err(self.refuse(at, FaultCause::BadAddress));
                    }
                    self.hbm_bytes += n as u64;
                }
                Target::Host(iova) => {
                    match self.dev.fabric.dma_write(self.dev.dev, Iova(iova), chunk) {
                        Ok(r) => self.host_ns += r.device_time_ns,
                        Err(e) => {
                            let refused = Self::refused_at(at, iova, n as u64, &e);
                            return Err(self.refuse(refused, FaultCause::HostRefused));
                        }
                    }
                }
            }
            done += n;
        }
        Ok(())
    }

    fn should_stop(&mut self) -> bool {
        self.dev.aborted(self.job.epoch) || self.job.first_fault.load(Relaxed) < self.core
    }
}
