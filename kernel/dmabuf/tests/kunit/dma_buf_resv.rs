//! Port of the KUnit suite `dma-buf-resv` (`drivers/dma-buf/st-dma-resv.c`), whose cases
//! (but `sanitycheck`) run once per usage class: `dma_buf_resv::<case>::<usage>`.
//!
//! Difference from the kernel: `test_for_each_unlocked` forces the iterator to restart
//! by corrupting its list pointer; the model's iterator has no such field to corrupt,
//! so the test makes the list really change under the iterator (growing it under the
//! lock replaces it), which is the situation the restart exists for.

use sagrada_kernel_dmabuf::{DmaFence, DmaResv, NamedOps, Usage};

fn alloc_fence() -> DmaFence {
    DmaFence::new(NamedOps::new("dma-resv-test", "mock"), 0, 0)
}

#[test]
fn sanitycheck() {
    let f = alloc_fence();
    f.enable_sw_signaling();
    f.signal();
    drop(f);

    let resv = DmaResv::new();
    let guard = resv.lock(None).expect("Resv locking failed");
    drop(guard);
}

/// A locked reservation holding one fresh fence of class `usage`.
fn resv_with_fence(usage: Usage) -> (DmaResv, DmaFence) {
    let f = alloc_fence();
    f.enable_sw_signaling();
    let resv = DmaResv::new();
    {
        let guard = resv.lock(None).unwrap();
        guard
            .reserve_fences(1)
            .expect("Resv shared slot allocation failed");
        guard.add_fence(f.clone(), usage);
    }
    (resv, f)
}

fn test_signaling(usage: Usage) {
    let (resv, f) = resv_with_fence(usage);
    let _guard = resv.lock(None).unwrap();
    assert!(!resv.test_signaled(usage), "Resv unexpectedly signaled");
    f.signal();
    assert!(resv.test_signaled(usage), "Resv not reporting signaled");
}

fn test_for_each(usage: Usage) {
    let (resv, f) = resv_with_fence(usage);
    let guard = resv.lock(None).unwrap();
    let found = guard.fences(usage);
    assert_eq!(found.len(), 1, "expected exactly one fence");
    let (fence, fence_usage) = &found[0];
    assert!(DmaFence::ptr_eq(fence, &f), "Unexpected fence");
    assert_eq!(*fence_usage, usage, "Unexpected fence usage");
    f.signal();
}

fn test_for_each_unlocked(usage: Usage) {
    let (resv, f) = resv_with_fence(usage);
    let mut cursor = resv.iter_unlocked(usage);
    let mut yields = 0;
    while let Some(fence) = cursor.next() {
        yields += 1;
        assert!(
            yields <= 2,
            "More than one fence found (after the forced restart)"
        );
        assert!(cursor.is_restarted(), "No restart flag");
        assert!(DmaFence::ptr_eq(&fence, &f), "Unexpected fence");
        assert_eq!(cursor.usage(), Some(usage), "Unexpected fence usage");
        if yields == 1 {
            // That should trigger a restart: growing the list publishes a new one.
            let guard = resv.lock(None).unwrap();
            guard.reserve_fences(1).unwrap();
        }
    }
    assert_eq!(yields, 2, "No fence found after the restart");
    f.signal();
}

fn test_get_fences(usage: Usage) {
    let (resv, f) = resv_with_fence(usage);
    let fences = resv.get_fences(usage);
    assert_eq!(fences.len(), 1, "get_fences returned unexpected fences");
    assert!(
        DmaFence::ptr_eq(&fences[0], &f),
        "get_fences returned unexpected fence"
    );
    f.signal();
}

macro_rules! per_usage {
    ($($case:ident),*) => {
        $(
            mod $case {
                use super::Usage;

                #[test]
                fn kernel() {
                    super::$case(Usage::Kernel);
                }

                #[test]
                fn write() {
                    super::$case(Usage::Write);
                }

                #[test]
                fn read() {
                    super::$case(Usage::Read);
                }

                #[test]
                fn bookkeep() {
                    super::$case(Usage::Bookkeep);
                }
            }
        )*
    };
}

per_usage!(
    test_signaling,
    test_for_each,
    test_for_each_unlocked,
    test_get_fences
);
