//! loom model check of the fence core's signal / callback / wait races.
//!
//! Built only with `--cfg loom`, when `src/sync.rs` swaps the fence's mutex, condvar,
//! flag word and thread ids for loom's, so loom explores every interleaving of the two
//! threads in each model:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
//!     cargo test -p sagrada-kernel-dmabuf --release --test loom_fence
//! ```
//!
//! The `DmaFence` handle itself is a std `Arc` (loom need not track it); what the
//! tests share besides the fence is loom's. The stub fence lives in a static and is
//! not used here.

#![cfg(loom)]

use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;

use sagrada_kernel_core::Errno;
use sagrada_kernel_dmabuf::{DmaFence, Fence, FenceOps, MAX_SCHEDULE_TIMEOUT, NamedOps};

fn mock_fence() -> DmaFence {
    DmaFence::new(NamedOps::new("mock", "mock"), 0, 0)
}

/// Mock ops that count `enable_signaling` calls.
#[derive(Debug)]
struct CountingOps(Arc<AtomicUsize>);

impl FenceOps for CountingOps {
    fn driver_name(&self) -> &str {
        "mock"
    }

    fn timeline_name(&self) -> &str {
        "mock"
    }

    fn enable_signaling(&self, _fence: &DmaFence) -> bool {
        self.0.fetch_add(1, Ordering::SeqCst);
        true
    }
}

/// A callback that counts its runs.
fn counting_cb(runs: &Arc<AtomicUsize>) -> impl FnOnce(&Fence) + Send + 'static {
    let runs = runs.clone();
    move |_: &Fence| {
        runs.fetch_add(1, Ordering::SeqCst);
    }
}

/// (a) One thread signals while another adds a callback: either the callback runs
/// exactly once, or `add_callback` fails with `ENOENT` and it never runs.
#[test]
fn signal_vs_add_callback() {
    loom::model(|| {
        let f = mock_fence();
        let runs = Arc::new(AtomicUsize::new(0));

        let signaller = {
            let f = f.clone();
            thread::spawn(move || f.signal())
        };
        let added = f.add_callback(counting_cb(&runs));
        signaller.join().unwrap();

        // The signaller has returned, so any callback it took has finished.
        match added {
            Ok(_) => assert_eq!(runs.load(Ordering::SeqCst), 1, "added but not run once"),
            Err(e) => {
                assert_eq!(e, Errno::ENOENT);
                assert_eq!(runs.load(Ordering::SeqCst), 0, "refused but run");
            }
        }
        assert!(f.test_signaled_flag());
    });
}

/// (b) One thread signals while another waits without a time limit through
/// `wait_timeout(MAX_SCHEDULE_TIMEOUT)`: the wait returns, reporting the signal.
#[test]
fn signal_vs_wait_timeout() {
    loom::model(|| {
        let f = mock_fence();
        let signaller = {
            let f = f.clone();
            thread::spawn(move || f.signal())
        };
        let waited = f.wait_timeout(MAX_SCHEDULE_TIMEOUT);
        assert!(waited.is_signaled(), "{waited:?}");
        assert!(f.test_signaled_flag());
        signaller.join().unwrap();
    });
}

/// (b') The same race through `wait()`.
#[test]
fn signal_vs_wait() {
    loom::model(|| {
        let f = mock_fence();
        let signaller = {
            let f = f.clone();
            thread::spawn(move || f.signal())
        };
        f.wait();
        assert!(f.test_signaled_flag());
        signaller.join().unwrap();
    });
}

/// (c) One thread signals while another adds and then removes a callback: if
/// `remove_callback` returns `false` the callback has already finished; if `true` it
/// never runs.
#[test]
fn signal_vs_add_remove_callback() {
    loom::model(|| {
        let f = mock_fence();
        let runs = Arc::new(AtomicUsize::new(0));

        let signaller = {
            let f = f.clone();
            thread::spawn(move || f.signal())
        };
        let removed = match f.add_callback(counting_cb(&runs)) {
            Ok(id) => {
                let removed = f.remove_callback(id);
                if !removed {
                    // Checked before joining: `false` must mean "has run", not "will".
                    assert_eq!(
                        runs.load(Ordering::SeqCst),
                        1,
                        "remove_callback returned false before the callback finished"
                    );
                }
                removed
            }
            Err(e) => {
                assert_eq!(e, Errno::ENOENT);
                true
            }
        };
        signaller.join().unwrap();

        let expected = if removed { 0 } else { 1 };
        assert_eq!(runs.load(Ordering::SeqCst), expected);
    });
}

/// (d) Two threads signal at once: the callbacks run once each, in order, and
/// `check_and_signal` reports "not yet signalled" in exactly one thread.
#[test]
fn signal_vs_signal() {
    loom::model(|| {
        let f = mock_fence();
        // Each callback advances the step only from the value it expects, so a
        // second run or a reordering shows.
        let step = Arc::new(AtomicUsize::new(0));
        for expect in 0..2 {
            let step = step.clone();
            f.add_callback(move |_| {
                step.compare_exchange(expect, expect + 1, Ordering::SeqCst, Ordering::SeqCst)
                    .expect("callback ran twice or out of order");
            })
            .unwrap();
        }

        // The thread that signals has run every callback by the time its call returns.
        // The other may return earlier (the model's callbacks run without the fence
        // lock, so it does not queue behind them as Linux's does; see the module
        // documentation of `fence.rs`), so only the winner checks at once.
        let signal = |f: &DmaFence, step: &AtomicUsize| {
            let already = f.check_and_signal();
            if !already {
                assert_eq!(step.load(Ordering::SeqCst), 2, "signal returned early");
            }
            already
        };
        let other = {
            let f = f.clone();
            let step = step.clone();
            thread::spawn(move || signal(&f, &step))
        };
        let mine = signal(&f, &step);
        let theirs = other.join().unwrap();

        assert!(
            mine != theirs,
            "exactly one thread signals (mine already signalled: {mine}, theirs: {theirs})"
        );
        assert_eq!(step.load(Ordering::SeqCst), 2, "both callbacks ran once");
    });
}

/// (e) Two threads add callbacks while a third signals: `enable_signaling` runs at
/// most once, and each callback runs exactly once or is refused with `ENOENT`.
#[test]
fn signal_vs_two_add_callbacks() {
    loom::model(|| {
        let enabled = Arc::new(AtomicUsize::new(0));
        let f = DmaFence::new(CountingOps(enabled.clone()), 0, 0);

        let adders: Vec<_> = (0..2)
            .map(|_| {
                let f = f.clone();
                thread::spawn(move || {
                    let runs = Arc::new(AtomicUsize::new(0));
                    let added = f.add_callback(counting_cb(&runs)).is_ok();
                    (added, runs)
                })
            })
            .collect();
        f.signal();
        for adder in adders {
            let (added, runs) = adder.join().unwrap();
            // Joined after our signal returned: an accepted callback has run.
            assert_eq!(runs.load(Ordering::SeqCst), usize::from(added));
        }
        assert!(
            enabled.load(Ordering::SeqCst) <= 1,
            "enable_signaling ran twice"
        );
    });
}
