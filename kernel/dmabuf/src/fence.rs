//! dma-fence: a one-shot completion signal with a context and a sequence number.
//!
//! A [`DmaFence`] is a counted reference (Linux `dma_fence_get`/`dma_fence_put` are
//! `clone` and `drop`). A fence belongs to a *context* (a timeline); fences of one
//! context signal in seqno order, so the later of two can stand for both. A fence
//! signals exactly once, optionally with an error set before signalling; callbacks
//! added before the signal run exactly once, in order, when it happens.
//!
//! Differences from Linux, chosen so the model needs neither IRQ-off spinlocks nor
//! `irq_work`:
//! - The fence has its own lock (the v7.1 inline lock); there are no shared timeline
//!   locks.
//! - Callbacks and the `enable_signaling` op run *without* the fence lock held. Linux
//!   runs them under the lock and defers nested signalling (fence arrays, chains) to
//!   `irq_work` to avoid lock inversion; running them unlocked removes the inversion
//!   instead. The visible guarantees are kept: a callback runs once, in order, before
//!   the `signal` that signals returns; [`DmaFence::remove_callback`] returning `false`
//!   means the callback has *finished* running (it waits for a concurrent signaller, as
//!   the Linux version waits on the spinlock); `enable_signaling` runs at most once.
//!   One consequence: a concurrent `signal` that finds the fence already signalled
//!   returns at once, where Linux's would wait on the lock until the callbacks ran
//!   (making it wait would bring the inversion back); wait for a callback with
//!   `remove_callback`.
//! - Names: after signalling, [`Fence::driver_name`] and [`Fence::timeline_name`]
//!   return `"detached-driver"` and `"signaled-timeline"` as v7.0 does, because the
//!   name data of a signalled fence may be gone.
//! - `dma_fence_signal` returns nothing (v7.0); [`Fence::check_and_signal`] reports
//!   whether the fence had already signalled.

use std::any::Any;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use sagrada_kernel_core::{Errno, ktime_get_ns};

use crate::sync::{AtomicU32, Condvar, Mutex, Ordering, ThreadId, current_thread, lock};

/// `MAX_SCHEDULE_TIMEOUT`: wait without a time limit.
pub const MAX_SCHEDULE_TIMEOUT: Duration = Duration::MAX;

const SIGNALED: u32 = 1 << 0;
const ENABLE_SIGNAL: u32 = 1 << 1;
const SEQNO64: u32 = 1 << 2;

static NEXT_CONTEXT: AtomicU64 = AtomicU64::new(1);

/// `dma_fence_context_alloc(num)`: the first of `num` fresh, consecutive contexts.
/// Context 0 is never returned; it belongs to the stub fences.
pub fn context_alloc(num: u64) -> u64 {
    NEXT_CONTEXT.fetch_add(num, std::sync::atomic::Ordering::Relaxed)
}

/// `__dma_fence_is_later(seqno1, seqno2)`: with 64-bit seqnos a plain compare,
/// otherwise a compare of the low 32 bits that survives wrap-around.
pub fn seqno_is_later(seqno64: bool, f1: u64, f2: u64) -> bool {
    if seqno64 {
        f1 > f2
    } else {
        (f1 as u32).wrapping_sub(f2 as u32) as i32 > 0
    }
}

/// What a kind of fence provides (Linux `struct dma_fence_ops`). Only the names are
/// mandatory.
pub trait FenceOps: Any + Send + Sync {
    /// Name of the driver that created the fence.
    fn driver_name(&self) -> &str;

    /// Name of the fence's timeline.
    fn timeline_name(&self) -> &str;

    /// Called once, the first time someone needs the fence to signal (a callback, a
    /// wait). Return `false` if the fence has already passed; the core then signals
    /// it. The fence lock is not held (see the module documentation).
    fn enable_signaling(&self, fence: &DmaFence) -> bool {
        let _ = fence;
        true
    }

    /// A fast peek at completion. Returning `true` makes the core signal the fence.
    fn signaled(&self, fence: &Fence) -> bool {
        let _ = fence;
        false
    }

    /// A hint that the fence should complete by `deadline_ns` (monotonic time).
    fn set_deadline(&self, fence: &Fence, deadline_ns: u64) {
        let _ = (fence, deadline_ns);
    }
}

/// A callback registration, for [`DmaFence::remove_callback`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct CallbackId(u64);

type Callback = Box<dyn FnOnce(&Fence) + Send>;

struct State {
    /// 0, or a negative errno set before signalling.
    error: i32,
    /// Signal time, valid once signalled.
    timestamp_ns: u64,
    callbacks: Vec<(u64, Callback)>,
    next_callback: u64,
    /// The thread running this fence's callbacks right now, if any.
    running_callbacks: Option<ThreadId>,
}

/// The fence itself; reached through [`DmaFence`] (and handed to callbacks).
pub struct Fence {
    context: u64,
    seqno: u64,
    flags: AtomicU32,
    ops: Box<dyn FenceOps>,
    state: Mutex<State>,
    cv: Condvar,
}

/// A counted reference to a fence.
#[derive(Clone)]
pub struct DmaFence(Arc<Fence>);

impl Deref for DmaFence {
    type Target = Fence;
    fn deref(&self) -> &Fence {
        &self.0
    }
}

impl fmt::Debug for Fence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Fence({}:{} {} {} {})",
            self.context,
            self.seqno,
            self.ops.driver_name(),
            self.ops.timeline_name(),
            match self.get_status() {
                0 => "unsignaled".to_owned(),
                1 => "signaled".to_owned(),
                e => format!("error {e}"),
            }
        )
    }
}

impl fmt::Debug for DmaFence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// A reference that does not keep the fence alive (for lists of pending fences).
#[derive(Clone, Debug)]
pub struct WeakFence(std::sync::Weak<Fence>);

impl WeakFence {
    /// The fence, if it is still alive.
    pub fn upgrade(&self) -> Option<DmaFence> {
        self.0.upgrade().map(DmaFence)
    }
}

/// How a bounded wait ended (the kernel's `long` return value, made explicit).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Wait {
    /// The fence signalled with this much of the timeout left.
    Signaled(Duration),
    /// The timeout expired first.
    TimedOut,
}

impl Wait {
    /// Whether the fence signalled.
    pub fn is_signaled(self) -> bool {
        matches!(self, Self::Signaled(_))
    }
}

/// The signalled fence's status for user space: 1 when signalled without error, 0
/// while pending, or the negative errno.
pub type Status = i32;

impl DmaFence {
    /// `dma_fence_init`: a new unsignaled fence on `context` with `seqno` (compared
    /// with 32-bit wrap-around).
    pub fn new(ops: impl FenceOps, context: u64, seqno: u64) -> Self {
        Self::with_flags(Box::new(ops), context, seqno, 0)
    }

    /// `dma_fence_init64`: like [`DmaFence::new`] with 64-bit seqno comparison.
    pub fn new64(ops: impl FenceOps, context: u64, seqno: u64) -> Self {
        Self::with_flags(Box::new(ops), context, seqno, SEQNO64)
    }

    fn with_flags(ops: Box<dyn FenceOps>, context: u64, seqno: u64, flags: u32) -> Self {
        Self(Arc::new(Fence {
            context,
            seqno,
            flags: AtomicU32::new(flags),
            ops,
            state: Mutex::new(State {
                error: 0,
                timestamp_ns: 0,
                callbacks: Vec::new(),
                next_callback: 0,
                running_callbacks: None,
            }),
            cv: Condvar::new(),
        }))
    }

    /// `dma_fence_get_stub`: the global, always-signalled fence (context 0, seqno 0).
    pub fn get_stub() -> Self {
        static STUB: OnceLock<DmaFence> = OnceLock::new();
        STUB.get_or_init(|| Self::allocate_private_stub(ktime_get_ns()))
            .clone()
    }

    /// `dma_fence_allocate_private_stub`: a new signalled fence (context 0, seqno 0)
    /// with the given signal time.
    pub fn allocate_private_stub(timestamp_ns: u64) -> Self {
        let fence = Self::new(NamedOps::new("stub", "stub"), 0, 0);
        fence.signal_timestamp(timestamp_ns);
        fence
    }

    /// Whether two references name the same fence.
    pub fn ptr_eq(a: &Self, b: &Self) -> bool {
        Arc::ptr_eq(&a.0, &b.0)
    }

    /// A weak reference.
    pub fn downgrade(&self) -> WeakFence {
        WeakFence(Arc::downgrade(&self.0))
    }

    /// Whether this is the only reference to the fence.
    pub fn is_sole_reference(&self) -> bool {
        Arc::strong_count(&self.0) == 1
    }

    /// A stable identity for the fence (its address), for maps and sets.
    pub fn id(&self) -> usize {
        Arc::as_ptr(&self.0) as usize
    }

    /// `dma_fence_enable_sw_signaling`: asks the fence to signal when it completes.
    pub fn enable_sw_signaling(&self) {
        let was = self.flags.fetch_or(ENABLE_SIGNAL, Ordering::AcqRel);
        if was & (ENABLE_SIGNAL | SIGNALED) == 0 && !self.ops.enable_signaling(self) {
            self.signal();
        }
    }

    /// `dma_fence_add_callback`: runs `func` once when the fence signals. Fails with
    /// `ENOENT`, without calling `func`, if the fence has already signalled (including
    /// when enabling signalling signals it).
    pub fn add_callback(
        &self,
        func: impl FnOnce(&Fence) + Send + 'static,
    ) -> Result<CallbackId, Errno> {
        if self.test_signaled_flag() {
            return Err(Errno::ENOENT);
        }
        self.enable_sw_signaling();
        let mut state = lock(&self.state);
        if self.test_signaled_flag() {
            return Err(Errno::ENOENT);
        }
        let id = state.next_callback;
        state.next_callback += 1;
        state.callbacks.push((id, Box::new(func)));
        Ok(CallbackId(id))
    }

    /// `dma_fence_remove_callback`: `true` if the callback was still pending and will
    /// now never run; `false` if it has already run (this waits until a concurrent
    /// signaller has finished running it). Must not be called from one of this fence's
    /// own callbacks for a callback that has not run yet.
    pub fn remove_callback(&self, id: CallbackId) -> bool {
        let me = current_thread().id();
        let mut state = lock(&self.state);
        if let Some(pos) = state.callbacks.iter().position(|(i, _)| *i == id.0) {
            drop(state.callbacks.remove(pos));
            return true;
        }
        while state.running_callbacks.is_some_and(|t| t != me) {
            state = self
                .cv
                .wait(state)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        false
    }

    /// `dma_fence_wait_timeout` (non-interruptible: the model has no signals): waits
    /// for the fence to signal. A zero timeout only tests.
    pub fn wait_timeout(&self, timeout: Duration) -> Wait {
        let deadline = Instant::now().checked_add(timeout);
        self.wait_deadline(deadline, timeout)
    }

    /// `dma_fence_wait`: waits without a time limit.
    pub fn wait(&self) {
        self.wait_deadline(None, MAX_SCHEDULE_TIMEOUT);
    }

    fn wait_deadline(&self, deadline: Option<Instant>, timeout: Duration) -> Wait {
        if self.is_signaled() {
            // Never "signalled with nothing left": Linux returns 1 for a signalled
            // fence even with a zero timeout (`ret = timeout ? timeout : 1`), and the
            // slow path below keeps the same floor.
            return Wait::Signaled(timeout.max(Duration::from_nanos(1)));
        }
        if timeout.is_zero() {
            return Wait::TimedOut;
        }
        self.enable_sw_signaling();
        let mut state = lock(&self.state);
        loop {
            if self.test_signaled_flag() {
                let left = deadline.map_or(MAX_SCHEDULE_TIMEOUT, |d| {
                    d.saturating_duration_since(Instant::now())
                });
                return Wait::Signaled(left.max(Duration::from_nanos(1)));
            }
            let now = Instant::now();
            state = match deadline {
                None => self
                    .cv
                    .wait(state)
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
                Some(d) if d <= now => return Wait::TimedOut,
                Some(d) => {
                    self.cv
                        .wait_timeout(state, d - now)
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .0
                }
            };
        }
    }
}

impl Fence {
    /// The context (timeline) id.
    pub fn context(&self) -> u64 {
        self.context
    }

    /// The sequence number on the context.
    pub fn seqno(&self) -> u64 {
        self.seqno
    }

    /// Whether seqnos are compared as 64-bit values.
    pub fn has_seqno64(&self) -> bool {
        self.flags.load(Ordering::Acquire) & SEQNO64 != 0
    }

    /// The fence's ops as their concrete type, if they are a `T` (how containers such as
    /// arrays and chains recognise themselves).
    pub fn ops_as<T: FenceOps>(&self) -> Option<&T> {
        (self.ops.as_ref() as &dyn Any).downcast_ref::<T>()
    }

    /// Whether signalling has been enabled (`DMA_FENCE_FLAG_ENABLE_SIGNAL_BIT`).
    pub fn is_signaling_enabled(&self) -> bool {
        self.flags.load(Ordering::Acquire) & ENABLE_SIGNAL != 0
    }

    /// `dma_fence_test_signaled_flag`: only the flag, no peeking.
    pub fn test_signaled_flag(&self) -> bool {
        self.flags.load(Ordering::Acquire) & SIGNALED != 0
    }

    /// `dma_fence_is_signaled`: the flag, or the ops' peek (which signals the fence).
    pub fn is_signaled(&self) -> bool {
        if self.test_signaled_flag() {
            return true;
        }
        if self.ops.signaled(self) {
            self.signal();
            return true;
        }
        false
    }

    /// `dma_fence_signal`: signals the fence, running its callbacks; a second signal
    /// has no effect.
    pub fn signal(&self) {
        self.check_and_signal();
    }

    /// `dma_fence_check_and_signal`: like [`Fence::signal`], returning `true` if the
    /// fence had already signalled (and nothing happened).
    pub fn check_and_signal(&self) -> bool {
        self.signal_at(ktime_get_ns())
    }

    /// `dma_fence_signal_timestamp`: signals with an explicit signal time.
    pub fn signal_timestamp(&self, timestamp_ns: u64) {
        self.signal_at(timestamp_ns);
    }

    fn signal_at(&self, timestamp_ns: u64) -> bool {
        let callbacks = {
            let mut state = lock(&self.state);
            if self.flags.fetch_or(SIGNALED, Ordering::AcqRel) & SIGNALED != 0 {
                return true;
            }
            state.timestamp_ns = timestamp_ns;
            state.running_callbacks = Some(current_thread().id());
            std::mem::take(&mut state.callbacks)
        };
        self.cv.notify_all();
        for (_, callback) in callbacks {
            callback(self);
        }
        lock(&self.state).running_callbacks = None;
        self.cv.notify_all();
        false
    }

    /// `dma_fence_set_error`: records an error that the fence will carry when it
    /// signals. Refused with `EBUSY` once signalled, and with `EINVAL` for a value that
    /// is not an errno.
    pub fn set_error(&self, error: Errno) -> Result<(), Errno> {
        let mut state = lock(&self.state);
        if self.test_signaled_flag() {
            tracing::warn!(
                "set_error({error:?}) on signaled fence {}:{}",
                self.context,
                self.seqno
            );
            return Err(Errno::EBUSY);
        }
        state.error = error.negated();
        Ok(())
    }

    /// The error, if one was set.
    pub fn error(&self) -> Option<Errno> {
        let e = lock(&self.state).error;
        Errno::new(-e)
    }

    /// `dma_fence_get_status`: 0 while pending, 1 when signalled, the negative errno
    /// when signalled with an error.
    pub fn get_status(&self) -> Status {
        if !self.is_signaled() {
            return 0;
        }
        let e = lock(&self.state).error;
        if e < 0 { e } else { 1 }
    }

    /// The signal time in nanoseconds of monotonic time, once signalled.
    pub fn timestamp_ns(&self) -> Option<u64> {
        if !self.test_signaled_flag() {
            return None;
        }
        Some(lock(&self.state).timestamp_ns)
    }

    /// `dma_fence_driver_name`.
    pub fn driver_name(&self) -> &str {
        if self.test_signaled_flag() {
            "detached-driver"
        } else {
            self.ops.driver_name()
        }
    }

    /// `dma_fence_timeline_name`.
    pub fn timeline_name(&self) -> &str {
        if self.test_signaled_flag() {
            "signaled-timeline"
        } else {
            self.ops.timeline_name()
        }
    }

    /// `dma_fence_is_later(self, other)`: whether `self` comes after `other` on their
    /// shared context; `false` (with a warning) for different contexts.
    pub fn is_later(&self, other: &Fence) -> bool {
        if self.context != other.context {
            tracing::warn!(
                "is_later across contexts {} and {}",
                self.context,
                other.context
            );
            return false;
        }
        seqno_is_later(self.has_seqno64(), self.seqno, other.seqno)
    }

    /// `dma_fence_is_later_or_same`.
    pub fn is_later_or_same(&self, other: &Fence) -> bool {
        std::ptr::eq(self, other) || (self.context == other.context && !other.is_later(self))
    }

    /// `dma_fence_set_deadline`: forwards the hint to an unsignalled fence's ops.
    pub fn set_deadline(&self, deadline_ns: u64) {
        if !self.test_signaled_flag() {
            self.ops.set_deadline(self, deadline_ns);
        }
    }
}

/// `dma_fence_later(f1, f2)`: the later of two fences of one context, or `None` if that
/// one has already signalled.
pub fn later(f1: &DmaFence, f2: &DmaFence) -> Option<DmaFence> {
    let l = if f1.is_later(f2) { f1 } else { f2 };
    (!l.is_signaled()).then(|| l.clone())
}

impl Drop for Fence {
    fn drop(&mut self) {
        // A fence released with callbacks pending would leave them waiting forever;
        // Linux warns and signals it with -EDEADLK.
        let pending = !self.test_signaled_flag() && !lock(&self.state).callbacks.is_empty();
        if pending {
            tracing::warn!(
                "fence {}:{} released with pending callbacks",
                self.context,
                self.seqno
            );
            lock(&self.state).error = Errno::EDEADLK.negated();
            self.signal();
        }
    }
}

/// Fence ops with names and nothing else: a fence that something signals explicitly
/// (the stub fences, a driver's completion fences, test fences).
#[derive(Clone, Debug)]
pub struct NamedOps {
    driver: String,
    timeline: String,
}

impl NamedOps {
    /// Ops naming the driver and the timeline.
    pub fn new(driver: &str, timeline: &str) -> Self {
        Self {
            driver: driver.to_owned(),
            timeline: timeline.to_owned(),
        }
    }
}

impl FenceOps for NamedOps {
    fn driver_name(&self) -> &str {
        &self.driver
    }

    fn timeline_name(&self) -> &str {
        &self.timeline
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn mock(context: u64, seqno: u64) -> DmaFence {
        DmaFence::new(NamedOps::new("mock", "mock"), context, seqno)
    }

    #[test]
    fn contexts_are_fresh_and_never_zero() {
        let a = context_alloc(2);
        let b = context_alloc(1);
        assert!(a > 0);
        assert_eq!(b, a + 2);
    }

    #[test]
    fn seqno_compare_wraps_at_32_bits_unless_64() {
        assert!(seqno_is_later(false, 1, u32::MAX as u64));
        assert!(!seqno_is_later(false, u32::MAX as u64, 1));
        assert!(seqno_is_later(true, u32::MAX as u64, 1));
        assert!(
            seqno_is_later(false, 0x1_0000_0002, 1),
            "only the low 32 bits count"
        );
    }

    #[test]
    fn callbacks_run_in_order_exactly_once() {
        let f = mock(context_alloc(1), 1);
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        for i in 0..3 {
            let order = order.clone();
            f.add_callback(move |_| order.lock().unwrap().push(i))
                .unwrap();
        }
        f.signal();
        f.signal();
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2]);
    }

    #[test]
    fn enable_signaling_returning_false_signals_at_once() {
        struct Done;
        impl FenceOps for Done {
            fn driver_name(&self) -> &str {
                "done"
            }
            fn timeline_name(&self) -> &str {
                "done"
            }
            fn enable_signaling(&self, _: &DmaFence) -> bool {
                false
            }
        }
        let f = DmaFence::new(Done, context_alloc(1), 1);
        assert_eq!(f.add_callback(|_| {}), Err(Errno::ENOENT));
        assert!(f.test_signaled_flag());
    }

    #[test]
    fn enable_signaling_runs_once() {
        struct Count(Arc<AtomicUsize>);
        impl FenceOps for Count {
            fn driver_name(&self) -> &str {
                "count"
            }
            fn timeline_name(&self) -> &str {
                "count"
            }
            fn enable_signaling(&self, _: &DmaFence) -> bool {
                self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                true
            }
        }
        let n = Arc::new(AtomicUsize::new(0));
        let f = DmaFence::new(Count(n.clone()), context_alloc(1), 1);
        f.enable_sw_signaling();
        f.add_callback(|_| {}).unwrap();
        assert_eq!(f.wait_timeout(Duration::from_millis(1)), Wait::TimedOut);
        assert_eq!(n.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[test]
    fn signaled_peek_signals_the_fence() {
        struct Peek;
        impl FenceOps for Peek {
            fn driver_name(&self) -> &str {
                "peek"
            }
            fn timeline_name(&self) -> &str {
                "peek"
            }
            fn signaled(&self, _: &Fence) -> bool {
                true
            }
        }
        let f = DmaFence::new(Peek, context_alloc(1), 1);
        assert!(!f.test_signaled_flag());
        assert!(f.is_signaled());
        assert!(f.test_signaled_flag());
    }

    #[test]
    fn set_error_is_refused_after_signal() {
        let f = mock(context_alloc(1), 1);
        f.signal();
        assert_eq!(f.set_error(Errno::EIO), Err(Errno::EBUSY));
        assert_eq!(f.get_status(), 1);
    }

    #[test]
    fn names_are_detached_after_signal() {
        let f = mock(context_alloc(1), 1);
        assert_eq!((f.driver_name(), f.timeline_name()), ("mock", "mock"));
        f.signal();
        assert_eq!(
            (f.driver_name(), f.timeline_name()),
            ("detached-driver", "signaled-timeline")
        );
    }

    #[test]
    fn dropping_a_fence_with_pending_callbacks_signals_them_with_edeadlk() {
        let f = mock(context_alloc(1), 1);
        let seen = Arc::new(std::sync::Mutex::new(None));
        let s = seen.clone();
        f.add_callback(move |fence| *s.lock().unwrap() = Some(fence.get_status()))
            .unwrap();
        drop(f);
        assert_eq!(*seen.lock().unwrap(), Some(Errno::EDEADLK.negated()));
    }

    #[test]
    fn later_picks_the_later_unsignaled_fence() {
        let ctx = context_alloc(1);
        let a = mock(ctx, 1);
        let b = mock(ctx, 2);
        assert!(DmaFence::ptr_eq(&later(&a, &b).unwrap(), &b));
        b.signal();
        assert!(later(&a, &b).is_none());
        assert!(b.is_later_or_same(&b));
        assert!(!a.is_later_or_same(&b));
    }

    #[test]
    fn a_waiter_on_another_thread_is_woken() {
        let f = mock(context_alloc(1), 1);
        let g = f.clone();
        let waiter = std::thread::spawn(move || g.wait_timeout(MAX_SCHEDULE_TIMEOUT));
        f.signal();
        assert!(waiter.join().unwrap().is_signaled());
    }
}
