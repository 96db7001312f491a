//! Command submissions: one or more jobs, each a command buffer on a queue, completed
//! together and signalled through a dma-fence.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sagrada_hw_accel_abi::entry::CqStatus;
use sagrada_kernel_core::{Errno, lock};
use sagrada_kernel_dmabuf::DmaFence;

use crate::uapi::MAX_CORES;

/// Why a submission was aborted.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct CsError {
    /// The errno the fence and WAIT_CS report: `EFAULT` MMU fault, `EINVAL` bad packet,
    /// `EPERM` privilege violation, `EIO` compute-core fault, `ECANCELED` reset.
    pub errno: Errno,
    /// Faulting address, packet offset, or the core fault's completion `info`.
    pub info: u64,
}

impl CsError {
    /// The error a failed job's completion entry reports.
    ///
    /// A compute core's fault is `EIO` whatever its cause, even an MMU fault of the
    /// core: each errno then has one meaning of `info` (for `EFAULT` the faulting VA
    /// of an engine's access; for `EIO` the `CoreFault` word, `code << 40 | core << 32
    /// | pc`, whose code says when the MMU refused the core, and whose detail, the VA
    /// included, INFO_CORES gives the context).
    pub fn from_status(status: CqStatus, info: u64) -> Option<Self> {
        let errno = match status {
            CqStatus::Fence => return None,
            CqStatus::MmuFault => Errno::EFAULT,
            CqStatus::BadPacket => Errno::EINVAL,
            CqStatus::PrivilegeViolation => Errno::EPERM,
            CqStatus::CoreFault => Errno::EIO,
        };
        Some(Self { errno, info })
    }

    /// Aborted by a reset.
    pub const RESET: CsError = CsError {
        errno: Errno::ECANCELED,
        info: 0,
    };
}

/// A compute core's fault, as its `CORE.FAULT_*` registers held it, kept for the
/// context whose launch it ended.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct CoreFaultRecord {
    /// The submission.
    pub seq: u64,
    /// `FAULT_CAUSE.CODE`.
    pub code: u32,
    /// `FAULT_PC`.
    pub pc: u32,
    /// `FAULT_INFO`.
    pub info: u64,
    /// `FAULT_CAUSE.WRITE`.
    pub write: bool,
}

/// The last fault of a context's launches on each core (the driver reads and clears the
/// device's record at the fault's completion, so the next fault finds it free).
#[derive(Debug, Default)]
pub struct CoreFaults(Mutex<[Option<CoreFaultRecord>; MAX_CORES]>);

impl CoreFaults {
    /// Keeps `record` as core `core`'s last fault.
    pub fn set(&self, core: usize, record: CoreFaultRecord) {
        if let Some(slot) = lock(&self.0).get_mut(core) {
            *slot = Some(record);
        }
    }

    /// Each core's last fault.
    pub fn get(&self) -> [Option<CoreFaultRecord>; MAX_CORES] {
        *lock(&self.0)
    }
}

/// A submission in flight or done.
#[derive(Debug)]
pub struct Cs {
    fence: DmaFence,
    seq: u64,
    jobs_left: AtomicU32,
    error: Mutex<Option<CsError>>,
    done_time_ns: AtomicU64,
    core_faults: Arc<CoreFaults>,
}

impl Cs {
    pub(crate) fn new(fence: DmaFence, seq: u64, jobs: u32, core_faults: Arc<CoreFaults>) -> Self {
        Self {
            fence,
            seq,
            jobs_left: AtomicU32::new(jobs),
            error: Mutex::new(None),
            done_time_ns: AtomicU64::new(0),
            core_faults,
        }
    }

    /// The submission's sequence number in its context.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Where the context keeps the details of its launches' core faults.
    pub fn core_faults(&self) -> &CoreFaults {
        &self.core_faults
    }

    /// The completion fence.
    pub fn fence(&self) -> &DmaFence {
        &self.fence
    }

    /// Records the first error of the submission.
    pub(crate) fn fail(&self, error: CsError) {
        lock(&self.error).get_or_insert(error);
    }

    /// The abort cause, if any.
    pub fn error(&self) -> Option<CsError> {
        *lock(&self.error)
    }

    /// Device time of the last job's completion.
    pub fn done_time_ns(&self) -> u64 {
        self.done_time_ns.load(Ordering::Acquire)
    }

    /// One job finished; returns true when it was the last one.
    pub(crate) fn job_done(&self, device_time_ns: u64) -> bool {
        self.done_time_ns
            .fetch_max(device_time_ns, Ordering::AcqRel);
        self.jobs_left.fetch_sub(1, Ordering::AcqRel) == 1
    }

    /// Signals the fence, carrying the error if any.
    pub(crate) fn complete(&self) {
        if let Some(e) = self.error() {
            // The fence cannot have signalled yet: only the last job completes it.
            let _ = self.fence.set_error(e.errno);
        }
        self.fence.signal();
    }
}
