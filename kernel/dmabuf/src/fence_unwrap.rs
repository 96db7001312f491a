//! dma-fence-unwrap: the leaf fences inside chains and arrays, and merging fences
//! into the smallest fence that waits for all of them.

use std::cmp::Ordering;

use sagrada_kernel_core::Errno;

use crate::fence::{DmaFence, context_alloc};
use crate::fence_array::{FenceArray, members};
use crate::fence_chain::{contained, walk};

/// `dma_fence_unwrap_for_each`: the leaves of `head`, flattening chain nodes (newest
/// first, collecting signalled ones as the walk does) and array members (in order).
pub fn leaves(head: &DmaFence) -> impl Iterator<Item = DmaFence> {
    let mut chain = Some(head.clone());
    std::iter::from_fn(move || {
        let node = chain.take()?;
        chain = walk(&node);
        Some(members(&contained(&node)))
    })
    .flatten()
}

/// `dma_fence_dedup_array`: sorts by context and keeps only the latest fence of each.
pub fn dedup(fences: &mut Vec<DmaFence>) {
    fences.sort_by(|a, b| {
        a.context().cmp(&b.context()).then_with(|| {
            if b.is_later(a) {
                Ordering::Greater
            } else if a.is_later(b) {
                Ordering::Less
            } else {
                Ordering::Equal
            }
        })
    });
    fences.dedup_by(|later_in_list, kept| later_in_list.context() == kept.context());
}

/// `dma_fence_unwrap_merge`: a fence that signals when every unsignalled leaf of
/// `fences` has. With none pending it is a private stub carrying the latest signal
/// time; with one, that fence; otherwise a new array (fresh context, seqno 1) of the
/// latest pending leaf per context, ordered by context.
pub fn merge(fences: &[DmaFence]) -> Result<DmaFence, Errno> {
    let mut pending = Vec::new();
    let mut latest_ns = 0;
    for f in fences {
        for leaf in leaves(f) {
            if leaf.is_signaled() {
                latest_ns = latest_ns.max(leaf.timestamp_ns().unwrap_or(0));
            } else {
                pending.push(leaf);
            }
        }
    }
    if pending.len() > 1 {
        dedup(&mut pending);
    }
    match pending.len() {
        0 => Ok(DmaFence::allocate_private_stub(latest_ns)),
        1 => Ok(pending.swap_remove(0)),
        _ => FenceArray::create(pending, context_alloc(1), 1, false),
    }
}
