//! Lockup detection, after habanalabs' `timeout_locked`: a submission still running
//! when the timeout has passed since it was queued fails with `ETIMEDOUT`, and the
//! device is soft-reset to get its queues moving again (which cancels every other
//! submission in flight, of every context).
//!
//! One thread per device, started with the first submission, sleeps until the oldest
//! watched submission's deadline. Submissions are queued in order and all get the
//! same timeout, so deadlines are in order too and a queue suffices; finished entries
//! are dropped from its front as new ones come in.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError, Weak};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use sagrada_kernel_core::{Errno, lock};

use crate::cs::{Cs, CsError};
use crate::device::DeviceInner;

#[derive(Default)]
struct Watched {
    pending: VecDeque<(Instant, Weak<Cs>)>,
    /// The thread sleeps with no deadline (it found nothing to watch): the next
    /// submission must wake it. Otherwise it sleeps until a deadline no later than any
    /// new one, and a submission need not wake it (a wake-up per submission would
    /// cost more than the submission).
    idle: bool,
    stop: bool,
}

impl Watched {
    fn drop_finished(&mut self) {
        while let Some((_, cs)) = self.pending.front()
            && finished(cs)
        {
            self.pending.pop_front();
        }
    }
}

fn finished(cs: &Weak<Cs>) -> bool {
    cs.upgrade()
        .is_none_or(|cs| cs.fence().test_signaled_flag())
}

#[derive(Default)]
struct Shared {
    watched: Mutex<Watched>,
    changed: Condvar,
}

/// The watchdog of one device.
pub(crate) struct Watchdog {
    timeout: Duration,
    name: String,
    dev: Arc<OnceLock<Weak<DeviceInner>>>,
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Watchdog {
    /// A watchdog for the device `dev` will hold; a zero `timeout` disables it.
    pub fn new(name: &str, timeout: Duration, dev: Arc<OnceLock<Weak<DeviceInner>>>) -> Self {
        Self {
            timeout,
            name: name.to_owned(),
            dev,
            shared: Arc::default(),
            thread: Mutex::new(None),
        }
    }

    /// Watches a submission just queued.
    pub fn watch(&self, cs: &Arc<Cs>) {
        if self.timeout.is_zero() {
            return;
        }
        let Some(deadline) = Instant::now().checked_add(self.timeout) else {
            return;
        };
        {
            let mut w = lock(&self.shared.watched);
            w.drop_finished();
            w.pending.push_back((deadline, Arc::downgrade(cs)));
            if w.idle {
                w.idle = false;
                self.shared.changed.notify_one();
            }
        }
        let mut thread = lock(&self.thread);
        if thread.is_none() {
            let (shared, dev) = (self.shared.clone(), self.dev.clone());
            let spawned = thread::Builder::new()
                .name(format!("{}-tdr", self.name))
                .spawn(move || run(&shared, &dev));
            match spawned {
                Ok(handle) => *thread = Some(handle),
                Err(e) => tracing::error!("{}: cannot start the lockup watchdog: {e}", self.name),
            }
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        lock(&self.shared.watched).stop = true;
        self.shared.changed.notify_all();
        if let Some(handle) = lock(&self.thread).take()
            && handle.thread().id() != thread::current().id()
        {
            let _ = handle.join();
        }
    }
}

fn run(shared: &Shared, dev: &OnceLock<Weak<DeviceInner>>) {
    let mut w = lock(&shared.watched);
    loop {
        if w.stop {
            return;
        }
        w.drop_finished();
        let Some(&(deadline, ref cs)) = w.pending.front() else {
            w.idle = true;
            w = shared
                .changed
                .wait(w)
                .unwrap_or_else(PoisonError::into_inner);
            continue;
        };
        let now = Instant::now();
        if now < deadline {
            w = shared
                .changed
                .wait_timeout(w, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            continue;
        }
        let cs = cs.upgrade();
        w.pending.pop_front();
        drop(w);
        if let (Some(cs), Some(dev)) = (cs, dev.get().and_then(Weak::upgrade))
            && !cs.fence().test_signaled_flag()
        {
            dev.on_lockup(&cs);
        }
        w = lock(&shared.watched);
    }
}

impl CsError {
    /// Still running when the lockup timeout expired.
    pub const TIMED_OUT: CsError = CsError {
        errno: Errno::ETIMEDOUT,
        info: 0,
    };
}
