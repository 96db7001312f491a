//! dma-fence-array: one fence standing for several, signalled when all (or any) of its
//! members have signalled. It carries the first error any member signalled with.

use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

use sagrada_kernel_core::{Errno, lock};

use crate::fence::{DmaFence, Fence, FenceOps};

/// The ops (and state) of an array fence.
#[derive(Debug)]
pub struct FenceArray {
    fences: Vec<DmaFence>,
    num_pending: AtomicI64,
    first_error: Mutex<Option<Errno>>,
}

impl FenceArray {
    /// `dma_fence_array_create`: a fence on `context`/`seqno` that signals when every
    /// member has (or the first one, with `signal_on_any`). `EINVAL` for no members.
    /// Members should be leaves; a container member is accepted with a warning, as
    /// Linux does.
    pub fn create(
        fences: Vec<DmaFence>,
        context: u64,
        seqno: u64,
        signal_on_any: bool,
    ) -> Result<DmaFence, Errno> {
        if fences.is_empty() {
            return Err(Errno::EINVAL);
        }
        if fences.iter().any(is_container) {
            tracing::warn!("fence array built from a container fence; arrays should be flat");
        }
        let pending = if signal_on_any {
            1
        } else {
            fences.len() as i64
        };
        Ok(DmaFence::new(
            FenceArray {
                fences,
                num_pending: AtomicI64::new(pending),
                first_error: Mutex::new(None),
            },
            context,
            seqno,
        ))
    }

    /// The members.
    pub fn fences(&self) -> &[DmaFence] {
        &self.fences
    }

    fn note_error(&self, member: &Fence) {
        if let Some(e) = member.error() {
            lock(&self.first_error).get_or_insert(e);
        }
    }

    /// Counts one member done; true when that completes the array.
    fn member_done(&self, member: &Fence) -> bool {
        self.note_error(member);
        self.num_pending.fetch_sub(1, Ordering::AcqRel) == 1
    }

    fn carry_error(&self, array: &Fence) {
        if let Some(e) = *lock(&self.first_error) {
            // The array has not signalled yet, so this cannot fail.
            let _ = array.set_error(e);
        }
    }
}

impl FenceOps for FenceArray {
    fn driver_name(&self) -> &str {
        "dma_fence_array"
    }

    fn timeline_name(&self) -> &str {
        "unbound"
    }

    fn enable_signaling(&self, fence: &DmaFence) -> bool {
        for member in &self.fences {
            let array = fence.clone();
            let added = member.add_callback(move |m| {
                let ops = array
                    .ops_as::<FenceArray>()
                    .expect("array callback on an array");
                if ops.member_done(m) {
                    ops.carry_error(&array);
                    array.signal();
                }
            });
            if added.is_err() && self.member_done(member) {
                self.carry_error(fence);
                return false;
            }
        }
        true
    }

    fn signaled(&self, fence: &Fence) -> bool {
        let pending = self.num_pending.load(Ordering::Acquire);
        let done = if pending <= 0 {
            true
        } else {
            // Signalling is not enabled (or still being enabled): count signalled members.
            let mut left = pending;
            let mut hit = false;
            for m in &self.fences {
                if m.is_signaled() {
                    self.note_error(m);
                    left -= 1;
                    if left == 0 {
                        hit = true;
                        break;
                    }
                }
            }
            hit
        };
        if done {
            self.carry_error(fence);
        }
        done
    }

    fn set_deadline(&self, _fence: &Fence, deadline_ns: u64) {
        for m in &self.fences {
            m.set_deadline(deadline_ns);
        }
    }
}

/// `dma_fence_is_array`.
pub fn is_array(fence: &Fence) -> bool {
    fence.ops_as::<FenceArray>().is_some()
}

/// `dma_fence_is_container`: an array or a chain node.
pub fn is_container(fence: &DmaFence) -> bool {
    is_array(fence) || crate::fence_chain::is_chain(fence)
}

/// `dma_fence_array_first`/`next` as a list: an array's members, or the fence itself.
pub fn members(fence: &DmaFence) -> Vec<DmaFence> {
    match fence.ops_as::<FenceArray>() {
        Some(a) => a.fences.clone(),
        None => vec![fence.clone()],
    }
}

/// `dma_fence_match_context`: whether every member of `fence` is on `context`.
pub fn match_context(fence: &DmaFence, context: u64) -> bool {
    members(fence).iter().all(|f| f.context() == context)
}
