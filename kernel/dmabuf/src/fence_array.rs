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
        // Read the count before the flag: enable_signaling may be decrementing it, and
        // once signalling is enabled the count alone is authoritative (counting
        // signalled members as well would count them twice).
        let pending = self.num_pending.load(Ordering::Acquire);
        let done = if fence.is_signaling_enabled() {
            pending <= 0
        } else {
            let mut left = pending;
            self.fences.iter().any(|m| {
                if m.is_signaled() {
                    self.note_error(m);
                    left -= 1;
                }
                left <= 0
            })
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

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::fence::{NamedOps, context_alloc};

    fn leaf() -> DmaFence {
        DmaFence::new(NamedOps::new("leaf", "leaf"), context_alloc(1), 1)
    }

    /// Regression: once signalling was enabled, the peek counted signalled members
    /// against a count the callbacks had already decremented.
    #[test]
    fn a_member_is_not_counted_twice_after_enable_signaling() {
        let (a, b) = (leaf(), leaf());
        let array =
            FenceArray::create(vec![a.clone(), b.clone()], context_alloc(1), 1, false).unwrap();
        array.enable_sw_signaling();
        a.signal();
        assert!(!array.is_signaled());
        b.signal();
        assert!(array.is_signaled());
    }

    #[test]
    fn the_peek_counts_members_before_signalling_is_enabled() {
        let (a, b) = (leaf(), leaf());
        let array =
            FenceArray::create(vec![a.clone(), b.clone()], context_alloc(1), 1, false).unwrap();
        a.signal();
        assert!(!array.is_signaled());
        b.signal();
        assert!(array.is_signaled());
    }

    #[test]
    fn signal_on_any_and_the_first_error() {
        let (a, b) = (leaf(), leaf());
        let any =
            FenceArray::create(vec![a.clone(), b.clone()], context_alloc(1), 1, true).unwrap();
        let all =
            FenceArray::create(vec![a.clone(), b.clone()], context_alloc(1), 1, false).unwrap();
        all.enable_sw_signaling();
        b.set_error(Errno::EIO).unwrap();
        b.signal();
        assert!(any.is_signaled());
        a.set_error(Errno::ENODATA).unwrap();
        a.signal();
        assert_eq!(
            all.get_status(),
            Errno::EIO.negated(),
            "the array carries the first member error"
        );
        assert_eq!(
            FenceArray::create(Vec::new(), 1, 1, false).unwrap_err(),
            Errno::EINVAL
        );
    }
}
