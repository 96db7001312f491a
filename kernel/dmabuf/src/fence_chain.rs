//! dma-fence-chain: timeline semantics. A chain node joins a fence to the node before
//! it; it signals when its own fence and every earlier node's fence have signalled, and
//! its seqno is a point on the chain's timeline that [`find_seqno`] can look up.
//! Walking a chain drops nodes whose fences have signalled (garbage collection), as
//! Linux does with `cmpxchg` on the `prev` pointer.

use std::sync::Mutex;

use sagrada_kernel_core::{Errno, lock};

use crate::fence::{DmaFence, Fence, FenceOps, context_alloc, seqno_is_later};

/// The ops (and state) of a chain node.
#[derive(Debug)]
pub struct FenceChain {
    prev: Mutex<Option<DmaFence>>,
    prev_seqno: u64,
    fence: DmaFence,
}

impl FenceChain {
    /// `dma_fence_chain_init`: a node after `prev` holding `fence` at `seqno`. It reuses
    /// `prev`'s context when `prev` is a chain node and `seqno` is later than it;
    /// otherwise it starts a new context (with `seqno` raised to `prev`'s if needed).
    pub fn create(prev: Option<DmaFence>, fence: DmaFence, seqno: u64) -> DmaFence {
        let prev_chain = prev.as_ref().filter(|p| is_chain(p));
        let (context, seqno, prev_seqno) = match prev_chain {
            Some(p) if seqno_is_later(p.has_seqno64(), seqno, p.seqno()) => {
                (p.context(), seqno, p.seqno())
            }
            Some(p) => (context_alloc(1), seqno.max(p.seqno()), 0),
            None => (context_alloc(1), seqno, 0),
        };
        DmaFence::new64(
            FenceChain {
                prev: Mutex::new(prev),
                prev_seqno,
                fence,
            },
            context,
            seqno,
        )
    }

    /// The fence this node holds.
    pub fn fence(&self) -> &DmaFence {
        &self.fence
    }

    /// The seqno of the node this one was created after, if on the same context.
    pub fn prev_seqno(&self) -> u64 {
        self.prev_seqno
    }

    /// The current `prev` link.
    pub fn prev(&self) -> Option<DmaFence> {
        lock(&self.prev).clone()
    }

    /// The body of `dma_fence_chain_walk` for this node: collects signalled
    /// predecessors by splicing them out and returns the first one still pending.
    fn walk(&self) -> Option<DmaFence> {
        loop {
            let prev = self.prev()?;
            let replacement = match prev.ops_as::<FenceChain>() {
                Some(pc) if pc.fence.is_signaled() => pc.prev(),
                Some(_) => return Some(prev),
                None if prev.is_signaled() => None,
                None => return Some(prev),
            };
            let mut link = lock(&self.prev);
            // Only splice if nobody changed the link meanwhile (the cmpxchg).
            if link.as_ref().is_some_and(|p| DmaFence::ptr_eq(p, &prev)) {
                *link = replacement;
            }
        }
    }
}

/// `dma_fence_is_chain`.
pub fn is_chain(fence: &Fence) -> bool {
    fence.ops_as::<FenceChain>().is_some()
}

/// `dma_fence_chain_contained`: the fence a chain node holds, or `fence` itself.
pub fn contained(fence: &DmaFence) -> DmaFence {
    match fence.ops_as::<FenceChain>() {
        Some(c) => c.fence.clone(),
        None => fence.clone(),
    }
}

/// `dma_fence_chain_walk`: the next pending node after `fence` (collecting signalled
/// ones on the way), or `None` at the end or if `fence` is not a chain node.
pub fn walk(fence: &DmaFence) -> Option<DmaFence> {
    fence.ops_as::<FenceChain>()?.walk()
}

/// `dma_fence_chain_for_each`: `head`, then each pending predecessor.
pub fn iter(head: &DmaFence) -> impl Iterator<Item = DmaFence> {
    std::iter::successors(Some(head.clone()), walk)
}

/// `dma_fence_chain_find_seqno`: the node of `head`'s timeline that must signal for
/// point `seqno` to be reached. `seqno` 0 returns `head` unchanged; `EINVAL` if `head`
/// is not a chain node or the point lies beyond it. `Ok(None)` means everything up to
/// the point has already signalled and been collected.
pub fn find_seqno(head: &DmaFence, seqno: u64) -> Result<Option<DmaFence>, Errno> {
    if seqno == 0 {
        return Ok(Some(head.clone()));
    }
    if !is_chain(head) || head.seqno() < seqno {
        return Err(Errno::EINVAL);
    }
    for node in iter(head) {
        let before = node
            .ops_as::<FenceChain>()
            .is_none_or(|c| c.prev_seqno < seqno);
        if node.context() != head.context() || before {
            return Ok(Some(node));
        }
    }
    Ok(None)
}

/// Arms a callback on the first pending fence of the chain starting at `head`; `false`
/// if every fence has signalled.
fn arm(head: &DmaFence) -> bool {
    for node in iter(head) {
        let f = contained(&node);
        let h = head.clone();
        let armed = f.add_callback(move |_| {
            if !arm(&h) {
                h.signal();
            }
        });
        if armed.is_ok() {
            return true;
        }
    }
    false
}

impl FenceOps for FenceChain {
    fn driver_name(&self) -> &str {
        "dma_fence_chain"
    }

    fn timeline_name(&self) -> &str {
        "unbound"
    }

    fn enable_signaling(&self, fence: &DmaFence) -> bool {
        arm(fence)
    }

    fn signaled(&self, _fence: &Fence) -> bool {
        if !self.fence.is_signaled() {
            return false;
        }
        let Some(first) = self.walk() else {
            return true;
        };
        iter(&first).all(|node| contained(&node).is_signaled())
    }

    fn set_deadline(&self, _fence: &Fence, deadline_ns: u64) {
        self.fence.set_deadline(deadline_ns);
        let mut node = self.prev();
        while let Some(n) = node {
            contained(&n).set_deadline(deadline_ns);
            node = walk(&n);
        }
    }
}

impl Drop for FenceChain {
    /// Releases long chains iteratively: dropping a node that holds the last reference
    /// to its predecessor would otherwise recurse once per node.
    fn drop(&mut self) {
        let mut next = self
            .prev
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        while let Some(node) = next {
            next = match node.ops_as::<FenceChain>() {
                Some(chain) if node.is_sole_reference() => lock(&chain.prev).take(),
                _ => None,
            };
            drop(node);
        }
    }
}
