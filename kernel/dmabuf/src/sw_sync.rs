//! sw_sync: software timelines for testing explicit synchronisation (the
//! `<debugfs>/sync/sw_sync` driver). Opening the device creates a timeline at value 0;
//! `CREATE_FENCE` makes a sync_file whose fence signals when the timeline reaches a
//! point; `INC` advances the timeline. Baseline: newest behaviour (closing the timeline
//! signals its pending fences with `-ENOENT`; `GET_DEADLINE` exists).

use std::sync::{Arc, Mutex};

use sagrada_kernel_core::{
    CharDevice, Errno, File, FileOps, KResult, OpenFlags, Task, UserPtr, lock,
};

use crate::fence::{DmaFence, Fence, FenceOps, WeakFence, context_alloc, seqno_is_later};
use crate::sync_file::SyncFile;
use crate::uapi::*;

#[derive(Debug)]
struct TimelineState {
    value: u32,
    /// Pending points in signal order, as (value, fence).
    pending: Vec<(u32, WeakFence)>,
}

/// A sw_sync timeline (the object behind the fd).
#[derive(Debug)]
pub struct Timeline {
    name: String,
    context: u64,
    state: Mutex<TimelineState>,
}

/// The ops of a timeline point.
#[derive(Debug)]
struct SyncPt {
    timeline: Arc<Timeline>,
    deadline_ns: Mutex<Option<u64>>,
}

impl FenceOps for SyncPt {
    fn driver_name(&self) -> &str {
        "sw_sync"
    }

    fn timeline_name(&self) -> &str {
        &self.timeline.name
    }

    fn signaled(&self, fence: &Fence) -> bool {
        !seqno_is_later(
            false,
            fence.seqno(),
            u64::from(lock(&self.timeline.state).value),
        )
    }

    fn set_deadline(&self, _fence: &Fence, deadline_ns: u64) {
        let mut d = lock(&self.deadline_ns);
        *d = Some(d.map_or(deadline_ns, |old| old.min(deadline_ns)));
    }
}

impl Timeline {
    fn new(name: &str) -> Arc<Self> {
        Arc::new(Self {
            name: name.to_owned(),
            context: context_alloc(1),
            state: Mutex::new(TimelineState {
                value: 0,
                pending: Vec::new(),
            }),
        })
    }

    /// The current value.
    pub fn value(&self) -> u32 {
        lock(&self.state).value
    }

    /// `sync_pt_create`: the fence for point `value`, shared with an existing pending
    /// fence of the same value; already signalled if the timeline has passed it.
    fn create_fence(self: &Arc<Self>, value: u32) -> DmaFence {
        let make = || {
            DmaFence::new(
                SyncPt {
                    timeline: self.clone(),
                    deadline_ns: Mutex::new(None),
                },
                self.context,
                u64::from(value),
            )
        };
        let mut state = lock(&self.state);
        if !seqno_is_later(false, u64::from(value), u64::from(state.value)) {
            drop(state);
            let fence = make();
            fence.signal();
            return fence;
        }
        state.pending.retain(|(_, f)| f.upgrade().is_some());
        if let Some(existing) = state
            .pending
            .iter()
            .find(|(v, _)| *v == value)
            .and_then(|(_, f)| f.upgrade())
        {
            return existing;
        }
        let fence = make();
        let base = state.value;
        let distance = |v: u32| v.wrapping_sub(base);
        let at = state
            .pending
            .partition_point(|(v, _)| distance(*v) <= distance(value));
        state.pending.insert(at, (value, fence.downgrade()));
        fence
    }

    /// `sync_timeline_signal`: advances by `inc` and signals, in order, every point now
    /// reached.
    fn signal(&self, inc: u32) {
        let reached: Vec<WeakFence> = {
            let mut state = lock(&self.state);
            state.value = state.value.wrapping_add(inc);
            let value = u64::from(state.value);
            let n = state
                .pending
                .iter()
                .take_while(|(v, _)| !seqno_is_later(false, u64::from(*v), value))
                .count();
            state.pending.drain(..n).map(|(_, f)| f).collect()
        };
        for f in reached.iter().filter_map(WeakFence::upgrade) {
            f.signal();
        }
    }

    /// `SW_SYNC_IOC_INC`: in steps of at most `INT_MAX`, as Linux does.
    pub fn inc(&self, mut inc: u32) {
        let max = i32::MAX as u32;
        while inc > max {
            self.signal(max);
            inc -= max;
        }
        self.signal(inc);
    }
}

impl FileOps for Timeline {
    fn name(&self, _file: &File) -> String {
        "/sys/kernel/debug/sync/sw_sync".to_owned()
    }

    fn ioctl(&self, task: &Task<'_>, file: &Arc<File>, cmd: u32, arg: u64) -> KResult<i64> {
        let me = file.ops_arc::<Timeline>().ok_or(Errno::EINVAL)?;
        let arg = UserPtr(arg);
        match cmd {
            SW_SYNC_IOC_CREATE_FENCE => {
                let mut data: SwSyncCreateFenceData = task.read_obj(arg)?;
                let fence = me.create_fence(data.value);
                let fd = task.fd_install(SyncFile::create(fence, None), true)?;
                data.fence = fd;
                task.write_obj(arg, &data).inspect_err(|_| {
                    let _ = task.kernel().close(task.pid(), fd);
                })?;
                Ok(0)
            }
            SW_SYNC_IOC_INC => {
                let inc: u32 = task.read_obj(arg)?;
                self.inc(inc);
                Ok(0)
            }
            SW_SYNC_GET_DEADLINE => {
                let mut data: SwSyncGetDeadline = task.read_obj(arg)?;
                if data.deadline_ns != 0 || data.pad != 0 {
                    return Err(Errno::EINVAL);
                }
                let fence = task
                    .fget(data.fence_fd)
                    .ok()
                    .and_then(|f| SyncFile::fence_of(&f))
                    .ok_or(Errno::EINVAL)?;
                let pt = fence.ops_as::<SyncPt>().ok_or(Errno::EINVAL)?;
                data.deadline_ns = lock(&pt.deadline_ns).ok_or(Errno::ENOENT)?;
                task.write_obj(arg, &data)?;
                Ok(0)
            }
            _ => Err(Errno::ENOTTY),
        }
    }

    /// Closing the timeline fails every pending point with `-ENOENT`.
    fn release(&self, _file: &File) {
        let pending: Vec<WeakFence> = lock(&self.state)
            .pending
            .drain(..)
            .map(|(_, f)| f)
            .collect();
        for f in pending.iter().filter_map(WeakFence::upgrade) {
            // Pending points have not signalled, so the error is accepted.
            let _ = f.set_error(Errno::ENOENT);
            f.signal();
        }
    }
}

/// The sw_sync device: each open creates a timeline named after the process.
#[derive(Debug, Default)]
pub struct SwSyncDevice;

impl CharDevice for SwSyncDevice {
    fn open(&self, task: &Task<'_>, flags: OpenFlags) -> KResult<Arc<File>> {
        Ok(File::new(Timeline::new(task.comm()), flags))
    }
}
