//! Port of the KUnit suite `dma-buf-fence-unwrap` (`drivers/dma-buf/st-dma-fence-unwrap.c`,
//! v7.x KUnit text).
//!
//! Differences from the kernel version:
//! - Nothing here waits, so jiffies and signals do not come up.
//! - `dma_fence_array_create` has lost its `signal_on_any` argument upstream; the
//!   model keeps it and the mock array passes `false` (wait for all), which is what the
//!   kernel's arrays do.
//! - The kernel checks "exactly these leaves" by clearing its pointer to each fence
//!   as it is seen, so a duplicate or a stranger fails; [`assert_leaves`] does the
//!   same, and [`assert_leaves_in_order`] also checks the order where the kernel does.

use sagrada_kernel_dmabuf::fence_unwrap::{leaves, merge};
use sagrada_kernel_dmabuf::{DmaFence, context_alloc};

use crate::common::{mock_array, mock_chain, mock_fence_fresh, mock_fence_on};

/// `dma_fence_unwrap_for_each` yields each of `expected` exactly once, in any order,
/// and nothing else.
fn assert_leaves(head: &DmaFence, expected: &[&DmaFence]) {
    let mut unseen: Vec<&DmaFence> = expected.to_vec();
    for fence in leaves(head) {
        let pos = unseen
            .iter()
            .position(|e| DmaFence::ptr_eq(e, &fence))
            .unwrap_or_else(|| panic!("Unexpected fence! {fence:?}"));
        unseen.swap_remove(pos);
    }
    assert!(unseen.is_empty(), "Not all fences seen! {unseen:?}");
}

/// `dma_fence_unwrap_for_each` yields exactly `expected`, in this order.
fn assert_leaves_in_order(head: &DmaFence, expected: &[&DmaFence]) {
    let got: Vec<DmaFence> = leaves(head).collect();
    for (i, fence) in got.iter().enumerate() {
        let want = expected
            .get(i)
            .unwrap_or_else(|| panic!("Unexpected fence! {fence:?}"));
        assert!(
            DmaFence::ptr_eq(want, fence),
            "Unexpected fence or order at {i}: got {fence:?}, want {want:?}"
        );
    }
    assert_eq!(got.len(), expected.len(), "Not all fences seen!");
}

#[test]
fn sanitycheck() {
    let f = mock_fence_fresh();
    f.enable_sw_signaling();
    let array = mock_array(vec![f]);
    let chain = mock_chain(None, array, 1);
    drop(chain);
}

#[test]
fn unwrap_array() {
    let f1 = mock_fence_fresh();
    f1.enable_sw_signaling();
    let f2 = mock_fence_fresh();
    f2.enable_sw_signaling();

    let array = mock_array(vec![f1.clone(), f2.clone()]);
    assert_leaves(&array, &[&f1, &f2]);
}

#[test]
fn unwrap_chain() {
    let f1 = mock_fence_fresh();
    f1.enable_sw_signaling();
    let f2 = mock_fence_fresh();
    f2.enable_sw_signaling();

    let chain = mock_chain(Some(f1.clone()), f2.clone(), 1);
    assert_leaves(&chain, &[&f1, &f2]);
}

#[test]
fn unwrap_chain_array() {
    let f1 = mock_fence_fresh();
    f1.enable_sw_signaling();
    let f2 = mock_fence_fresh();
    f2.enable_sw_signaling();

    let array = mock_array(vec![f1.clone(), f2.clone()]);
    let chain = mock_chain(None, array, 1);
    assert_leaves(&chain, &[&f1, &f2]);
}

#[test]
fn unwrap_merge() {
    let f1 = mock_fence_fresh();
    f1.enable_sw_signaling();
    let f2 = mock_fence_fresh();
    f2.enable_sw_signaling();

    let f3 = merge(&[f1.clone(), f2.clone()]).expect("Failed to merge fences");
    assert_leaves(&f3, &[&f1, &f2]);
}

#[test]
fn unwrap_merge_duplicate() {
    let f1 = mock_fence_fresh();
    f1.enable_sw_signaling();

    let f2 = merge(&[f1.clone(), f1.clone()]).expect("Failed to merge fences");
    assert_leaves(&f2, &[&f1]);
}

#[test]
fn unwrap_merge_seqno() {
    let ctx = [context_alloc(1), context_alloc(1)];

    let f1 = mock_fence_on(ctx[1], 1);
    f1.enable_sw_signaling();
    let f2 = mock_fence_on(ctx[1], 2);
    f2.enable_sw_signaling();
    let f3 = mock_fence_on(ctx[0], 1);
    f3.enable_sw_signaling();

    let f4 = merge(&[f1.clone(), f2.clone(), f3.clone()]).expect("Failed to merge fences");
    // f1 is superseded by f2 on its context; the rest come in context order.
    assert_leaves_in_order(&f4, &[&f3, &f2]);
}

#[test]
fn unwrap_merge_order() {
    let f1 = mock_fence_fresh();
    f1.enable_sw_signaling();
    let f2 = mock_fence_fresh();
    f2.enable_sw_signaling();

    let a1 = mock_array(vec![f1.clone(), f2.clone()]);
    let c1 = mock_chain(None, f1.clone(), 1);
    let c2 = mock_chain(Some(c1), f2.clone(), 1);

    // The fences in the chain are the same as in a1 but in opposite order; merging
    // must handle that.
    let a2 = merge(&[a1, c2]).expect("Failed to merge fences");
    assert_leaves_in_order(&a2, &[&f1, &f2]);
}

#[test]
fn unwrap_merge_complex() {
    let f1 = mock_fence_fresh();
    f1.enable_sw_signaling();
    let f2 = mock_fence_fresh();
    f2.enable_sw_signaling();

    let f3 = merge(&[f1.clone(), f2.clone()]).expect("Failed to merge fences");

    // The array has the fences in reverse.
    let f4 = mock_array(vec![f2.clone(), f1.clone()]);

    // Signalled fences are filtered out, the two arrays merged.
    let f5 = merge(&[f3, f4, DmaFence::get_stub()]).expect("Failed to merge fences");
    assert_leaves(&f5, &[&f1, &f2]);
}

#[test]
fn unwrap_merge_complex_seqno() {
    let ctx = [context_alloc(1), context_alloc(1)];

    let f1 = mock_fence_on(ctx[0], 2);
    f1.enable_sw_signaling();
    let f2 = mock_fence_on(ctx[1], 1);
    f2.enable_sw_signaling();
    let f3 = mock_fence_on(ctx[0], 1);
    f3.enable_sw_signaling();
    let f4 = mock_fence_on(ctx[1], 2);
    f4.enable_sw_signaling();

    let f5 = mock_array(vec![f1.clone(), f2.clone()]);
    let f6 = mock_array(vec![f3.clone(), f4.clone()]);

    let f7 = merge(&[f5, f6]).expect("Failed to merge fences");
    assert_leaves_in_order(&f7, &[&f1, &f4]);
}
