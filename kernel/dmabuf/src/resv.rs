//! dma-resv: the reservation object of a buffer, holding the fences of the work that
//! uses it, each with a usage class.
//!
//! Usage classes are ordered `Kernel < Write < Read < Bookkeep`; a query for a usage
//! includes every fence of that class *and the lower ones*. The lock (a wound/wait
//! mutex) serialises writers; readers use [`DmaResv::iter_unlocked`], which, like the
//! kernel's RCU walk, restarts when the fence list is replaced under it.
//!
//! Mutation goes through [`ResvGuard`], the proof of holding the lock: reserve slots
//! first ([`ResvGuard::reserve_fences`]), then add. As with `CONFIG_DEBUG_MUTEXES`,
//! reservations do not survive an unlock, so a missing reserve is caught at once.

use std::fmt::{self, Write as _};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sagrada_kernel_core::{Errno, lock};

use crate::fence::{DmaFence, Wait, context_alloc};
use crate::fence_array::{FenceArray, is_container};
use crate::ww_mutex::{WwAcquireCtx, WwMutex};

/// How a fence uses the buffer (`enum dma_resv_usage`), ordered: a query for one class
/// also returns every lower class.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum Usage {
    /// Kernel memory management (moves, clears); everyone waits for these.
    Kernel = 0,
    /// Implicit synchronisation: a write.
    Write = 1,
    /// Implicit synchronisation: a read.
    Read = 2,
    /// No implicit synchronisation (explicitly synced work, page-table updates).
    Bookkeep = 3,
}

impl Usage {
    /// Every class, lowest first.
    pub const ALL: [Usage; 4] = [Usage::Kernel, Usage::Write, Usage::Read, Usage::Bookkeep];

    /// `dma_resv_usage_rw(write)`: what a new access must wait for: a write waits for
    /// readers and writers (`Read`), a read only for writers (`Write`).
    pub const fn rw(write: bool) -> Usage {
        if write { Usage::Read } else { Usage::Write }
    }

    /// The name `dma_resv_describe` prints.
    pub const fn name(self) -> &'static str {
        match self {
            Usage::Kernel => "kernel",
            Usage::Write => "write",
            Usage::Read => "read",
            Usage::Bookkeep => "bookkeep",
        }
    }
}

/// One published fence list. Entries change in place under the lock; growing the list
/// replaces it, which is what makes unlocked readers restart.
#[derive(Debug, Default)]
struct FenceList {
    entries: Mutex<Vec<(DmaFence, Usage)>>,
    max: Mutex<usize>,
}

/// A reservation object.
#[derive(Debug, Default)]
pub struct DmaResv {
    lock: WwMutex,
    list: Mutex<Arc<FenceList>>,
}

impl DmaResv {
    /// `dma_resv_init`.
    pub fn new() -> Self {
        Self::default()
    }

    fn current(&self) -> Arc<FenceList> {
        lock(&self.list).clone()
    }

    /// `dma_resv_lock(obj, ctx)`: without a context, a plain lock; with one, may fail
    /// with `EDEADLK` (drop every lock of the context, [`DmaResv::lock_slow`] this one,
    /// retry) or `EALREADY`.
    pub fn lock(&self, ctx: Option<&WwAcquireCtx>) -> Result<ResvGuard<'_>, Errno> {
        self.lock.lock(ctx)?;
        Ok(ResvGuard { resv: self })
    }

    /// `dma_resv_lock_slow`: takes the contended lock after backing off.
    pub fn lock_slow(&self, ctx: &WwAcquireCtx) -> Result<ResvGuard<'_>, Errno> {
        self.lock.lock_slow(ctx)?;
        Ok(ResvGuard { resv: self })
    }

    /// `dma_resv_trylock`.
    pub fn try_lock(&self) -> Option<ResvGuard<'_>> {
        self.lock.try_lock().then_some(ResvGuard { resv: self })
    }

    /// `dma_resv_is_locked`.
    pub fn is_locked(&self) -> bool {
        self.lock.is_locked()
    }

    /// Whether the calling thread holds the lock (`dma_resv_assert_held`).
    pub fn is_held_by_current_thread(&self) -> bool {
        self.lock.is_held_by_current_thread()
    }

    /// Stamp of the acquire context holding the lock (`dma_resv_locking_ctx`).
    pub fn locking_ctx_stamp(&self) -> Option<u64> {
        self.lock.locking_ctx_stamp()
    }

    /// `dma_resv_iter_begin` + `dma_resv_for_each_fence_unlocked`: the unsignalled
    /// fences of class `usage` or lower, without the lock.
    pub fn iter_unlocked(&self, usage: Usage) -> ResvIter<'_> {
        ResvIter {
            resv: self,
            usage,
            list: None,
            index: 0,
            count: 0,
            restarted: false,
            current_usage: None,
        }
    }

    /// `dma_resv_get_fences`: references to the unsignalled fences of class `usage` or
    /// lower.
    pub fn get_fences(&self, usage: Usage) -> Vec<DmaFence> {
        let mut out = Vec::new();
        let mut it = self.iter_unlocked(usage);
        while let Some(f) = it.next() {
            if it.is_restarted() {
                out.clear();
            }
            out.push(f);
        }
        out
    }

    /// `dma_resv_get_singleton`: one fence standing for the unsignalled fences of class
    /// `usage` or lower: none, the single one, or an array on a fresh context.
    pub fn get_singleton(&self, usage: Usage) -> Result<Option<DmaFence>, Errno> {
        let mut fences = self.get_fences(usage);
        match fences.len() {
            0 => Ok(None),
            1 => Ok(fences.pop()),
            _ => FenceArray::create(fences, context_alloc(1), 1, false).map(Some),
        }
    }

    /// `dma_resv_wait_timeout`: waits for every unsignalled fence of class `usage` or
    /// lower, within one overall timeout. A zero timeout only tests (Linux gives each
    /// pending fence one jiffy; the model has no jiffies).
    pub fn wait_timeout(&self, usage: Usage, timeout: Duration) -> Wait {
        let deadline = Instant::now().checked_add(timeout);
        for f in self.iter_unlocked(usage) {
            let left = deadline.map_or(timeout, |d| d.saturating_duration_since(Instant::now()));
            if f.wait_timeout(left) == Wait::TimedOut {
                return Wait::TimedOut;
            }
        }
        let left = deadline.map_or(timeout, |d| d.saturating_duration_since(Instant::now()));
        Wait::Signaled(left.max(Duration::from_nanos(1)))
    }

    /// `dma_resv_test_signaled`: whether no fence of class `usage` or lower is pending.
    pub fn test_signaled(&self, usage: Usage) -> bool {
        self.iter_unlocked(usage).next().is_none()
    }

    /// `dma_resv_set_deadline`.
    pub fn set_deadline(&self, usage: Usage, deadline_ns: u64) {
        for f in self.iter_unlocked(usage) {
            f.set_deadline(deadline_ns);
        }
    }

    /// `dma_resv_describe` (for `bufinfo`): every fence of class `Read` or lower.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        let list = self.current();
        for (f, usage) in lock(&list.entries)
            .iter()
            .filter(|(_, u)| *u <= Usage::Read)
        {
            let signaled = f.is_signaled();
            let _ = writeln!(
                out,
                "\t{} fence: {}:{} {} {} {}signalled",
                usage.name(),
                f.context(),
                f.seqno(),
                if signaled { "" } else { f.timeline_name() },
                if signaled { "" } else { f.driver_name() },
                if signaled { "" } else { "un" }
            );
        }
        out
    }
}

/// Proof that the reservation lock is held; unlocks on drop.
pub struct ResvGuard<'a> {
    resv: &'a DmaResv,
}

impl fmt::Debug for ResvGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResvGuard").finish_non_exhaustive()
    }
}

impl<'a> ResvGuard<'a> {
    /// The locked object.
    pub fn resv(&self) -> &'a DmaResv {
        self.resv
    }

    /// Whether this guard holds `resv`'s lock.
    pub fn guards(&self, resv: &DmaResv) -> bool {
        std::ptr::eq(self.resv, resv)
    }

    /// `dma_resv_reserve_fences(obj, n)`: makes room for `n` more fences. Growing
    /// replaces the list (dropping signalled fences on the way): at least double, and
    /// at least 4 slots for a new list.
    pub fn reserve_fences(&self, n: usize) -> Result<(), Errno> {
        let old = self.resv.current();
        let entries = lock(&old.entries);
        let max = *lock(&old.max);
        let num = entries.len();
        let need = num.checked_add(n).ok_or(Errno::ENOMEM)?;
        if need <= max {
            return Ok(());
        }
        let new_max = if max == 0 {
            n.next_power_of_two().max(4)
        } else {
            need.max(max.saturating_mul(2))
        };
        let kept: Vec<_> = entries
            .iter()
            .filter(|(f, _)| !f.is_signaled())
            .cloned()
            .collect();
        drop(entries);
        let list = Arc::new(FenceList {
            entries: Mutex::new(kept),
            max: Mutex::new(new_max),
        });
        *lock(&self.resv.list) = list;
        Ok(())
    }

    /// `dma_resv_add_fence(obj, fence, usage)`: replaces a signalled entry, or an entry
    /// of the same context with an equal or weaker class that `fence` is later than or
    /// equal to; otherwise takes a reserved slot.
    ///
    /// # Panics
    ///
    /// If no slot was reserved (Linux `BUG_ON`): a driver bug, never user input.
    pub fn add_fence(&self, fence: DmaFence, usage: Usage) {
        if is_container(&fence) {
            tracing::warn!("container fence added to a reservation; add its leaves instead");
        }
        let list = self.resv.current();
        let mut entries = lock(&list.entries);
        for slot in entries.iter_mut() {
            let (old, old_usage) = slot;
            if (old.context() == fence.context()
                && *old_usage >= usage
                && fence.is_later_or_same(old))
                || old.is_signaled()
            {
                *slot = (fence, usage);
                return;
            }
        }
        let max = *lock(&list.max);
        assert!(
            entries.len() < max,
            "dma_resv_add_fence without a reserved slot ({} of {max} used)",
            entries.len()
        );
        entries.push((fence, usage));
    }

    /// `dma_resv_replace_fences`: every fence of `context` becomes `replacement` with
    /// `usage`.
    pub fn replace_fences(&self, context: u64, replacement: &DmaFence, usage: Usage) {
        let list = self.resv.current();
        for slot in lock(&list.entries)
            .iter_mut()
            .filter(|(f, _)| f.context() == context)
        {
            *slot = (replacement.clone(), usage);
        }
    }

    /// `dma_resv_copy_fences(dst, src)`: this object's fences become the unsignalled
    /// fences of `src`, every class.
    pub fn copy_fences(&self, src: &DmaResv) {
        let mut copied = Vec::new();
        let mut it = src.iter_unlocked(Usage::Bookkeep);
        while let Some(f) = it.next() {
            if it.is_restarted() {
                copied.clear();
            }
            copied.push((f, it.usage().unwrap_or(Usage::Bookkeep)));
        }
        let max = copied.len();
        *lock(&self.resv.list) = Arc::new(FenceList {
            entries: Mutex::new(copied),
            max: Mutex::new(max),
        });
    }

    /// `dma_resv_for_each_fence` with the lock held: every fence of class `usage` or
    /// lower, *including* signalled ones, with its class.
    pub fn fences(&self, usage: Usage) -> Vec<(DmaFence, Usage)> {
        let list = self.resv.current();
        let entries = lock(&list.entries);
        entries
            .iter()
            .filter(|(_, u)| *u <= usage)
            .cloned()
            .collect()
    }
}

impl Drop for ResvGuard<'_> {
    fn drop(&mut self) {
        // CONFIG_DEBUG_MUTEXES: reservations are not kept across an unlock.
        let list = self.resv.current();
        let num = lock(&list.entries).len();
        *lock(&list.max) = num;
        self.resv.lock.unlock();
    }
}

/// The unlocked fence iterator (`struct dma_resv_iter`).
#[derive(Debug)]
pub struct ResvIter<'a> {
    resv: &'a DmaResv,
    usage: Usage,
    list: Option<Arc<FenceList>>,
    index: usize,
    count: usize,
    restarted: bool,
    current_usage: Option<Usage>,
}

impl ResvIter<'_> {
    /// `dma_resv_iter_is_restarted`: whether the fence just returned is the first after
    /// a (re)start; code that accumulates results must discard them when it is.
    pub fn is_restarted(&self) -> bool {
        self.restarted
    }

    /// `dma_resv_iter_usage`: the class of the fence just returned.
    pub fn usage(&self) -> Option<Usage> {
        self.current_usage
    }

    fn restart(&mut self, list: Arc<FenceList>) {
        self.count = lock(&list.entries).len();
        self.list = Some(list);
        self.index = 0;
        self.restarted = true;
    }

    fn walk(&mut self) -> Option<DmaFence> {
        let list = self.list.clone()?;
        loop {
            if self.index >= self.count {
                return None;
            }
            let entry = lock(&list.entries).get(self.index).cloned();
            self.index += 1;
            let (fence, usage) = entry?;
            if !fence.is_signaled() && usage <= self.usage {
                self.current_usage = Some(usage);
                return Some(fence);
            }
        }
    }
}

impl Iterator for ResvIter<'_> {
    type Item = DmaFence;

    /// The next unsignalled fence (`dma_resv_iter_next_unlocked`).
    fn next(&mut self) -> Option<DmaFence> {
        self.restarted = false;
        let mut restart = self
            .list
            .as_ref()
            .is_none_or(|l| !Arc::ptr_eq(l, &self.resv.current()));
        loop {
            if restart {
                self.restart(self.resv.current());
            }
            let fence = self.walk();
            if self
                .list
                .as_ref()
                .is_some_and(|l| Arc::ptr_eq(l, &self.resv.current()))
            {
                return fence;
            }
            restart = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fence::NamedOps;

    fn fence(ctx: u64, seqno: u64) -> DmaFence {
        DmaFence::new(NamedOps::new("mock", "tl"), ctx, seqno)
    }

    fn add(resv: &DmaResv, f: &DmaFence, usage: Usage) {
        let g = resv.lock(None).unwrap();
        g.reserve_fences(1).unwrap();
        g.add_fence(f.clone(), usage);
    }

    #[test]
    fn a_query_includes_the_lower_classes() {
        let resv = DmaResv::new();
        for (i, usage) in Usage::ALL.into_iter().enumerate() {
            add(&resv, &fence(context_alloc(1), i as u64), usage);
        }
        for (i, usage) in Usage::ALL.into_iter().enumerate() {
            assert_eq!(resv.get_fences(usage).len(), i + 1, "{usage:?}");
        }
        assert_eq!(Usage::rw(true), Usage::Read);
        assert_eq!(Usage::rw(false), Usage::Write);
    }

    #[test]
    fn a_later_fence_of_a_context_replaces_an_equal_or_weaker_entry() {
        let resv = DmaResv::new();
        let ctx = context_alloc(1);
        let (f1, f2, f3) = (fence(ctx, 1), fence(ctx, 2), fence(ctx, 3));
        add(&resv, &f1, Usage::Read);
        add(&resv, &f2, Usage::Write); // Write < Read: replaces the read entry.
        assert_eq!(resv.get_fences(Usage::Bookkeep).len(), 1);
        add(&resv, &f3, Usage::Read); // Read is weaker than the Write entry: appended.
        let g = resv.lock(None).unwrap();
        let entries = g.fences(Usage::Bookkeep);
        assert_eq!(entries.len(), 2);
        assert!(DmaFence::ptr_eq(&entries[0].0, &f2) && entries[0].1 == Usage::Write);
    }

    #[test]
    fn a_signalled_entry_is_reused() {
        let resv = DmaResv::new();
        let old = fence(context_alloc(1), 1);
        add(&resv, &old, Usage::Write);
        old.signal();
        add(&resv, &fence(context_alloc(1), 1), Usage::Read);
        assert_eq!(resv.lock(None).unwrap().fences(Usage::Bookkeep).len(), 1);
    }

    #[test]
    #[should_panic(expected = "without a reserved slot")]
    fn reservations_do_not_survive_an_unlock() {
        let resv = DmaResv::new();
        resv.lock(None).unwrap().reserve_fences(1).unwrap();
        resv.lock(None)
            .unwrap()
            .add_fence(fence(context_alloc(1), 1), Usage::Write);
    }

    #[test]
    fn get_singleton_builds_an_array_for_several_fences() {
        let resv = DmaResv::new();
        assert!(resv.get_singleton(Usage::Read).unwrap().is_none());
        let a = fence(context_alloc(1), 1);
        add(&resv, &a, Usage::Write);
        assert!(DmaFence::ptr_eq(
            &resv.get_singleton(Usage::Read).unwrap().unwrap(),
            &a
        ));
        let b = fence(context_alloc(1), 1);
        add(&resv, &b, Usage::Read);
        let single = resv.get_singleton(Usage::Read).unwrap().unwrap();
        assert!(crate::fence_array::is_array(&single));
        a.signal();
        assert!(!single.is_signaled());
        b.signal();
        assert!(single.is_signaled());
    }

    #[test]
    fn wait_times_out_on_a_pending_fence_and_ignores_higher_classes() {
        let resv = DmaResv::new();
        let w = fence(context_alloc(1), 1);
        let bk = fence(context_alloc(1), 1);
        add(&resv, &w, Usage::Write);
        add(&resv, &bk, Usage::Bookkeep);
        assert_eq!(
            resv.wait_timeout(Usage::Read, Duration::ZERO),
            Wait::TimedOut
        );
        assert_eq!(
            resv.wait_timeout(Usage::Kernel, Duration::ZERO),
            Wait::Signaled(Duration::from_nanos(1))
        );
        w.signal();
        assert!(
            resv.wait_timeout(Usage::Read, Duration::from_secs(10))
                .is_signaled()
        );
        assert!(!resv.test_signaled(Usage::Bookkeep));
    }

    #[test]
    fn describe_lists_classes_up_to_read() {
        let resv = DmaResv::new();
        let f = fence(context_alloc(1), 7);
        add(&resv, &f, Usage::Write);
        add(&resv, &fence(context_alloc(1), 1), Usage::Bookkeep);
        let text = resv.describe();
        assert_eq!(
            text,
            format!("\twrite fence: {}:7 tl mock unsignalled\n", f.context())
        );
    }

    #[test]
    fn copy_fences_takes_every_pending_fence() {
        let (src, dst) = (DmaResv::new(), DmaResv::new());
        add(&src, &fence(context_alloc(1), 1), Usage::Kernel);
        add(&src, &fence(context_alloc(1), 1), Usage::Bookkeep);
        dst.lock(None).unwrap().copy_fences(&src);
        assert_eq!(dst.get_fences(Usage::Bookkeep).len(), 2);
        assert_eq!(dst.get_fences(Usage::Kernel).len(), 1);
    }
}
