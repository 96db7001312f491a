//! Wait queues and the machinery behind `poll(2)`.
//!
//! A [`WaitQueue`] belongs to an object that something may wait for (a fence, a
//! dma-buf). Pollers register with it through a [`PollTable`] while asking a file for
//! its state, and are woken when the object changes; the register-then-check order
//! means no wake-up is lost between the check and the sleep.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Instant;

/// Locks a mutex, ignoring poisoning: every critical section of this crate leaves its
/// data consistent before it can panic, so the data of a poisoned lock is still valid.
pub fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `poll(2)` event bits, with Linux values.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PollMask(pub u32);

impl PollMask {
    /// There is data to read.
    pub const IN: Self = Self(0x0001);
    /// Urgent data.
    pub const PRI: Self = Self(0x0002);
    /// Writing will not block.
    pub const OUT: Self = Self(0x0004);
    /// Error condition (always reported).
    pub const ERR: Self = Self(0x0008);
    /// Hang up (always reported).
    pub const HUP: Self = Self(0x0010);
    /// Invalid file descriptor (always reported).
    pub const NVAL: Self = Self(0x0020);
    /// Normal data may be read.
    pub const RDNORM: Self = Self(0x0040);
    /// Writing normal data will not block.
    pub const WRNORM: Self = Self(0x0100);
    /// What a file without a poll method reports (`DEFAULT_POLLMASK`).
    pub const DEFAULT: Self = Self(0x0001 | 0x0004 | 0x0040 | 0x0100);

    /// No bits.
    pub const fn empty() -> Self {
        Self(0)
    }

    /// Whether any bit of `other` is set in `self`.
    pub const fn intersects(self, other: Self) -> bool {
        self.0 & other.0 != 0
    }

    /// Whether every bit of `other` is set in `self`.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether no bit is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl std::ops::BitOr for PollMask {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for PollMask {
    fn bitor_assign(&mut self, rhs: Self) {
        self.0 |= rhs.0;
    }
}

impl std::ops::BitAnd for PollMask {
    type Output = Self;
    fn bitand(self, rhs: Self) -> Self {
        Self(self.0 & rhs.0)
    }
}

impl std::fmt::Debug for PollMask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const NAMES: [(PollMask, &str); 8] = [
            (PollMask::IN, "IN"),
            (PollMask::PRI, "PRI"),
            (PollMask::OUT, "OUT"),
            (PollMask::ERR, "ERR"),
            (PollMask::HUP, "HUP"),
            (PollMask::NVAL, "NVAL"),
            (PollMask::RDNORM, "RDNORM"),
            (PollMask::WRNORM, "WRNORM"),
        ];
        let names: Vec<&str> = NAMES
            .iter()
            .filter(|(bit, _)| self.contains(*bit))
            .map(|(_, n)| *n)
            .collect();
        write!(
            f,
            "PollMask({})",
            if names.is_empty() {
                "0".to_owned()
            } else {
                names.join("|")
            }
        )
    }
}

/// One sleeper (a `poll` call or a blocking wait), woken by any queue it joined.
#[derive(Debug, Default)]
pub struct Poller {
    woken: Mutex<bool>,
    cv: Condvar,
}

impl Poller {
    /// A new poller.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Marks the poller woken and wakes its sleeper.
    pub fn wake(&self) {
        *lock(&self.woken) = true;
        self.cv.notify_all();
    }

    /// Forgets earlier wake-ups; call before re-checking the condition.
    pub fn reset(&self) {
        *lock(&self.woken) = false;
    }

    /// Sleeps until woken (since the last [`Poller::reset`]) or until `deadline`.
    /// Returns whether it was woken.
    pub fn sleep(&self, deadline: Option<Instant>) -> bool {
        let mut woken = lock(&self.woken);
        while !*woken {
            match deadline {
                None => woken = self.cv.wait(woken).unwrap_or_else(PoisonError::into_inner),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return false;
                    }
                    woken = self
                        .cv
                        .wait_timeout(woken, d - now)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
            }
        }
        true
    }
}

/// The sleepers interested in one object.
#[derive(Debug, Default)]
pub struct WaitQueue {
    pollers: Mutex<Vec<Weak<Poller>>>,
}

impl WaitQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a sleeper (a dropped sleeper is forgotten at the next wake-up).
    pub fn add(&self, poller: &Arc<Poller>) {
        let mut pollers = lock(&self.pollers);
        pollers.retain(|p| p.strong_count() > 0);
        if !pollers.iter().any(|p| p.as_ptr() == Arc::as_ptr(poller)) {
            pollers.push(Arc::downgrade(poller));
        }
    }

    /// Wakes every sleeper.
    pub fn wake_up_all(&self) {
        let pollers: Vec<Arc<Poller>> = {
            let mut pollers = lock(&self.pollers);
            pollers.retain(|p| p.strong_count() > 0);
            pollers.iter().filter_map(Weak::upgrade).collect()
        };
        for p in pollers {
            p.wake();
        }
    }

    /// Blocks until `ready()` is true or `deadline` passes; returns the last value of
    /// `ready()`. `ready` must become true only together with a wake-up of this queue.
    pub fn wait_until(&self, deadline: Option<Instant>, mut ready: impl FnMut() -> bool) -> bool {
        let poller = Poller::new();
        self.add(&poller);
        loop {
            poller.reset();
            if ready() {
                return true;
            }
            if !poller.sleep(deadline) {
                return ready();
            }
        }
    }
}

/// Passed to a file's poll method on the first pass of `poll(2)`: the file adds the
/// caller to the wait queues that will signal a change.
#[derive(Debug)]
pub struct PollTable<'a> {
    poller: &'a Arc<Poller>,
}

impl<'a> PollTable<'a> {
    /// A table that registers `poller`.
    pub fn new(poller: &'a Arc<Poller>) -> Self {
        Self { poller }
    }

    /// `poll_wait`: be woken when `queue` is.
    pub fn wait(&self, queue: &WaitQueue) {
        queue.add(self.poller);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    #[test]
    fn a_wake_before_sleep_is_not_lost() {
        let queue = WaitQueue::new();
        let poller = Poller::new();
        queue.add(&poller);
        poller.reset();
        queue.wake_up_all();
        assert!(poller.sleep(Some(Instant::now())));
    }

    #[test]
    fn sleep_times_out_without_a_wake() {
        let poller = Poller::new();
        assert!(!poller.sleep(Some(Instant::now() + Duration::from_millis(1))));
    }

    #[test]
    fn wait_until_returns_when_another_thread_makes_it_true() {
        let queue = Arc::new(WaitQueue::new());
        let flag = Arc::new(AtomicBool::new(false));
        let (q, f) = (queue.clone(), flag.clone());
        let waiter = std::thread::spawn(move || q.wait_until(None, || f.load(Ordering::SeqCst)));
        flag.store(true, Ordering::SeqCst);
        queue.wake_up_all();
        assert!(waiter.join().unwrap());
    }

    #[test]
    fn dropped_pollers_are_forgotten() {
        let queue = WaitQueue::new();
        queue.add(&Poller::new());
        queue.wake_up_all();
        assert!(lock(&queue.pollers).is_empty());
    }

    #[test]
    fn mask_debug_names_bits() {
        assert_eq!(
            format!("{:?}", PollMask::IN | PollMask::ERR),
            "PollMask(IN|ERR)"
        );
        assert_eq!(format!("{:?}", PollMask::empty()), "PollMask(0)");
    }
}
