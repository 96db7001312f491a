//! Helpers shared by the ported suites: the kernel tests' mock fence ops, their
//! `mock_fence`/`mock_array`/`mock_chain` constructors, the chain suite's
//! `fence_chains_init`/`fence_chains_fini`, and a seeded PRNG standing in for
//! `get_random_u32_*` so the stress cases replay the same way on every run.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sagrada_kernel_dmabuf::fence::Fence;
use sagrada_kernel_dmabuf::{DmaFence, FenceArray, FenceChain, NamedOps, context_alloc};

/// `mock_ops`: names only, like the kernel's.
fn mock_ops() -> NamedOps {
    NamedOps::new("mock", "mock")
}

/// `mock_fence()` of the fence and chain suites: context 0, seqno 0.
pub fn mock_fence() -> DmaFence {
    DmaFence::new(mock_ops(), 0, 0)
}

/// `__mock_fence(context, seqno)` of the unwrap suite.
pub fn mock_fence_on(context: u64, seqno: u64) -> DmaFence {
    DmaFence::new(mock_ops(), context, seqno)
}

/// `mock_fence()` of the unwrap suite: a fresh context, seqno 1.
pub fn mock_fence_fresh() -> DmaFence {
    mock_fence_on(context_alloc(1), 1)
}

/// `mock_array(n, ...)`: an array on a fresh context, seqno 1, signalling when all
/// members have.
pub fn mock_array(fences: Vec<DmaFence>) -> DmaFence {
    FenceArray::create(fences, context_alloc(1), 1, false).expect("Failed to create array")
}

/// `mock_chain(prev, fence, seqno)`.
pub fn mock_chain(prev: Option<DmaFence>, fence: DmaFence, seqno: u64) -> DmaFence {
    FenceChain::create(prev, fence, seqno)
}

/// `struct simple_cb` and `simple_callback`: a flag the callback sets.
pub fn simple_cb() -> (Arc<AtomicBool>, impl FnOnce(&Fence) + Send + 'static) {
    let seen = Arc::new(AtomicBool::new(false));
    let flag = seen.clone();
    (seen, move |_: &Fence| flag.store(true, Ordering::SeqCst))
}

/// `struct fence_chains`: `fences[i]` is held by `chains[i]`, which follows
/// `chains[i - 1]`; `tail` is the newest node. Dropping it is `fence_chains_fini`
/// (every fence is signalled, so no callback is left pending).
#[derive(Debug)]
pub struct FenceChains {
    pub fences: Vec<DmaFence>,
    pub chains: Vec<DmaFence>,
    pub tail: DmaFence,
}

/// `seqno_inc`: node `i` is point `i + 1`.
pub fn seqno_inc(i: u64) -> u64 {
    i + 1
}

/// `seqno_inc2`: node `i` is point `2i + 2`, leaving a gap before each.
pub fn seqno_inc2(i: u64) -> u64 {
    2 * i + 2
}

/// `fence_chains_init(count, seqno_fn)`: `count` mock fences (context 0, seqno 0)
/// chained in order, signalling enabled on every node.
pub fn fence_chains_init(count: u64, seqno_fn: fn(u64) -> u64) -> FenceChains {
    assert!(count > 0);
    let mut fences = Vec::with_capacity(count as usize);
    let mut chains: Vec<DmaFence> = Vec::with_capacity(count as usize);
    for i in 0..count {
        let fence = mock_fence();
        let chain = mock_chain(chains.last().cloned(), fence.clone(), seqno_fn(i));
        chain.enable_sw_signaling();
        fences.push(fence);
        chains.push(chain);
    }
    let tail = chains.last().expect("count > 0").clone();
    FenceChains {
        fences,
        chains,
        tail,
    }
}

impl Drop for FenceChains {
    fn drop(&mut self) {
        for f in &self.fences {
            f.signal();
        }
    }
}

/// xorshift64: a tiny seeded generator for `get_random_u32_below` and friends.
#[derive(Debug)]
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// `get_random_u32_below(n)`: uniform enough in `[0, n)`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// `get_random_u32_inclusive(lo, hi)`.
    pub fn inclusive(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
}
