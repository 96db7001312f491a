//! Wound/wait mutexes: locking several buffers without deadlock (Linux `ww_mutex`,
//! the `reservation_ww_class`).
//!
//! A task that must lock several reservation objects takes them under one
//! [`WwAcquireCtx`], whose stamp orders it against other tasks: the older one wins.
//! When an older context wants a lock held by a younger one, it *wounds* the younger,
//! whose next lock attempt (or current wait) fails with `EDEADLK`; the younger must then
//! drop every lock it holds, take the contended one with `lock_slow`, and retry. A
//! younger context that wants a lock held by an older one simply waits. Taking a lock
//! the context already holds fails with `EALREADY`.
//!
//! All mutexes of the class share one internal lock and condition variable: the model
//! has few of them, and one shared wait queue makes wounding a waiter trivially free of
//! lost wake-ups.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::thread::ThreadId;

use sagrada_kernel_core::Errno;

struct Class {
    lock: Mutex<()>,
    cv: Condvar,
}

static RESERVATION_CLASS: Class = Class {
    lock: Mutex::new(()),
    cv: Condvar::new(),
};
static NEXT_STAMP: AtomicU64 = AtomicU64::new(1);

fn class_lock() -> MutexGuard<'static, ()> {
    RESERVATION_CLASS
        .lock
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

#[derive(Debug)]
struct CtxInner {
    stamp: u64,
    /// Set by an older context that wants one of our locks.
    wounded: AtomicBool,
    /// Locks held under this context.
    acquired: AtomicUsize,
}

/// An acquire context (Linux `struct ww_acquire_ctx`): one per multi-lock operation.
#[derive(Debug)]
pub struct WwAcquireCtx {
    inner: Arc<CtxInner>,
}

impl Default for WwAcquireCtx {
    fn default() -> Self {
        Self::new()
    }
}

impl WwAcquireCtx {
    /// `ww_acquire_init`: a context younger than every earlier one.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(CtxInner {
                stamp: NEXT_STAMP.fetch_add(1, Ordering::Relaxed),
                wounded: AtomicBool::new(false),
                acquired: AtomicUsize::new(0),
            }),
        }
    }

    /// The stamp (smaller is older).
    pub fn stamp(&self) -> u64 {
        self.inner.stamp
    }

    /// Locks currently held under the context.
    pub fn acquired(&self) -> usize {
        self.inner.acquired.load(Ordering::Relaxed)
    }
}

impl Drop for WwAcquireCtx {
    fn drop(&mut self) {
        if self.acquired() != 0 {
            tracing::warn!("ww_acquire_fini with {} locks still held", self.acquired());
        }
    }
}

/// Who holds a [`WwMutex`].
#[derive(Debug, Default)]
struct Owner {
    held: bool,
    thread: Option<ThreadId>,
    ctx: Option<Weak<CtxInner>>,
}

/// A wound/wait mutex. Its owner state is only touched under the class lock.
#[derive(Debug, Default)]
pub struct WwMutex {
    owner: Mutex<Owner>,
}

impl WwMutex {
    /// An unlocked mutex.
    pub fn new() -> Self {
        Self::default()
    }

    fn owner(&self) -> MutexGuard<'_, Owner> {
        self.owner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `ww_mutex_lock`. Without a context this is a plain blocking lock (taking it
    /// twice from one thread would hang forever in Linux; here it fails with
    /// `EDEADLK`). With a context it can fail with `EDEADLK` (back off) or `EALREADY`.
    pub fn lock(&self, ctx: Option<&WwAcquireCtx>) -> Result<(), Errno> {
        let me = std::thread::current().id();
        let mut class = class_lock();
        if let Some(ctx) = ctx {
            if self
                .owner()
                .ctx
                .as_ref()
                .is_some_and(|c| std::ptr::eq(c.as_ptr(), Arc::as_ptr(&ctx.inner)))
            {
                return Err(Errno::EALREADY);
            }
            if ctx.acquired() == 0 {
                // Nobody can wound a context that holds nothing.
                ctx.inner.wounded.store(false, Ordering::Relaxed);
            }
        } else if self.owner().held && self.owner().thread == Some(me) && self.owner().ctx.is_none()
        {
            tracing::error!("recursive reservation lock by one thread");
            return Err(Errno::EDEADLK);
        }
        loop {
            {
                let mut owner = self.owner();
                if !owner.held {
                    owner.held = true;
                    owner.thread = Some(me);
                    owner.ctx = ctx.map(|c| Arc::downgrade(&c.inner));
                    if let Some(c) = ctx {
                        c.inner.acquired.fetch_add(1, Ordering::Relaxed);
                    }
                    return Ok(());
                }
                if let Some(ctx) = ctx {
                    if ctx.inner.wounded.load(Ordering::Relaxed) && ctx.acquired() > 0 {
                        return Err(Errno::EDEADLK);
                    }
                    let holder = owner.ctx.as_ref().and_then(Weak::upgrade);
                    if let Some(holder) = holder
                        && holder.stamp > ctx.inner.stamp
                        && holder.acquired.load(Ordering::Relaxed) > 0
                        && !holder.wounded.swap(true, Ordering::Relaxed)
                    {
                        RESERVATION_CLASS.cv.notify_all();
                    }
                }
            }
            class = RESERVATION_CLASS
                .cv
                .wait(class)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// `ww_mutex_lock_slow`: after backing off (holding nothing under `ctx`), waits for
    /// the contended lock; cannot fail with `EDEADLK`.
    pub fn lock_slow(&self, ctx: &WwAcquireCtx) -> Result<(), Errno> {
        debug_assert_eq!(ctx.acquired(), 0, "lock_slow while holding locks");
        self.lock(Some(ctx))
    }

    /// `ww_mutex_trylock` without a context.
    pub fn try_lock(&self) -> bool {
        let _class = class_lock();
        let mut owner = self.owner();
        if owner.held {
            return false;
        }
        owner.held = true;
        owner.thread = Some(std::thread::current().id());
        owner.ctx = None;
        true
    }

    /// `ww_mutex_unlock`.
    pub fn unlock(&self) {
        let _class = class_lock();
        let mut owner = self.owner();
        if let Some(ctx) = owner.ctx.take().and_then(|c| c.upgrade()) {
            ctx.acquired.fetch_sub(1, Ordering::Relaxed);
        }
        owner.held = false;
        owner.thread = None;
        drop(owner);
        RESERVATION_CLASS.cv.notify_all();
    }

    /// `ww_mutex_is_locked`.
    pub fn is_locked(&self) -> bool {
        let _class = class_lock();
        self.owner().held
    }

    /// Whether the calling thread holds the lock (what `lockdep_assert_held` checks).
    pub fn is_held_by_current_thread(&self) -> bool {
        let _class = class_lock();
        let owner = self.owner();
        owner.held && owner.thread == Some(std::thread::current().id())
    }

    /// The stamp of the context holding the lock, if it was taken with one.
    pub fn locking_ctx_stamp(&self) -> Option<u64> {
        let _class = class_lock();
        self.owner()
            .ctx
            .as_ref()
            .and_then(Weak::upgrade)
            .map(|c| c.stamp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Barrier;

    #[test]
    fn relocking_with_the_same_context_is_ealready() {
        let m = WwMutex::new();
        let ctx = WwAcquireCtx::new();
        m.lock(Some(&ctx)).unwrap();
        assert_eq!(m.lock(Some(&ctx)), Err(Errno::EALREADY));
        m.unlock();
        assert_eq!(ctx.acquired(), 0);
    }

    #[test]
    fn recursive_plain_lock_is_reported_not_hung() {
        let m = WwMutex::new();
        m.lock(None).unwrap();
        assert_eq!(m.lock(None), Err(Errno::EDEADLK));
        assert!(!m.try_lock());
        m.unlock();
        assert!(m.try_lock());
        m.unlock();
    }

    /// Two tasks lock A and B in opposite orders; the younger is wounded and backs off,
    /// and both finish.
    #[test]
    fn opposite_lock_orders_resolve_by_wounding_the_younger() {
        let a = Arc::new(WwMutex::new());
        let b = Arc::new(WwMutex::new());
        let barrier = Arc::new(Barrier::new(2));
        let backoffs = Arc::new(AtomicUsize::new(0));
        let run = |first: Arc<WwMutex>,
                   second: Arc<WwMutex>,
                   barrier: Arc<Barrier>,
                   backoffs: Arc<AtomicUsize>| {
            move || {
                let ctx = WwAcquireCtx::new();
                first.lock(Some(&ctx)).unwrap();
                barrier.wait();
                let (mut held, mut want) = (first, second);
                loop {
                    match want.lock(Some(&ctx)) {
                        Ok(()) => break,
                        Err(e) => {
                            assert_eq!(e, Errno::EDEADLK);
                            backoffs.fetch_add(1, Ordering::SeqCst);
                            held.unlock();
                            want.lock_slow(&ctx).unwrap();
                            std::mem::swap(&mut held, &mut want);
                        }
                    }
                }
                held.unlock();
                want.unlock();
            }
        };
        let t1 = std::thread::spawn(run(a.clone(), b.clone(), barrier.clone(), backoffs.clone()));
        let t2 = std::thread::spawn(run(b.clone(), a.clone(), barrier, backoffs.clone()));
        t1.join().unwrap();
        t2.join().unwrap();
        assert!(backoffs.load(Ordering::SeqCst) >= 1);
        assert!(!a.is_locked() && !b.is_locked());
    }
}
