//! Command submissions: one or more jobs, each a command buffer on a queue, completed
//! together and signalled through a dma-fence.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use sagrada_hw_accel_abi::entry::CqStatus;
use sagrada_kernel_core::{Errno, lock};
use sagrada_kernel_dmabuf::DmaFence;

/// Why a submission was aborted.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct CsError {
    /// The errno the fence and WAIT_CS report: `EFAULT` MMU fault, `EINVAL` bad packet,
    /// `EPERM` privilege violation, `ECANCELED` reset.
    pub errno: Errno,
    /// Faulting address or packet offset.
    pub info: u64,
}

impl CsError {
    /// The error a failed job's completion entry reports.
    pub fn from_status(status: CqStatus, info: u64) -> Option<Self> {
        let errno = match status {
            CqStatus::Fence => return None,
            CqStatus::MmuFault => Errno::EFAULT,
            CqStatus::BadPacket => Errno::EINVAL,
            CqStatus::PrivilegeViolation => Errno::EPERM,
        };
        Some(Self { errno, info })
    }

    /// Aborted by a reset.
    pub const RESET: CsError = CsError {
        errno: Errno::ECANCELED,
        info: 0,
    };
}

/// A submission in flight or done.
#[derive(Debug)]
pub struct Cs {
    fence: DmaFence,
    jobs_left: AtomicU32,
    error: Mutex<Option<CsError>>,
    done_time_ns: AtomicU64,
}

impl Cs {
    pub(crate) fn new(fence: DmaFence, jobs: u32) -> Self {
        Self {
            fence,
            jobs_left: AtomicU32::new(jobs),
            error: Mutex::new(None),
            done_time_ns: AtomicU64::new(0),
        }
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
