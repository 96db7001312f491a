//! sync_file: a fence as an fd, for explicit synchronisation between drivers and
//! processes. Poll it for `POLLIN`, merge two into one, and ask for the status of each
//! fence inside (baseline 7.0: merge through `dma_fence_unwrap_merge`, `num_fences ==
//! 0` reports `dma_fence_get_status`).

use std::sync::{Arc, Mutex};

use sagrada_kernel_core::{
    Errno, File, FileOps, KResult, OpenFlags, PollMask, PollTable, Task, UserPtr, WaitQueue, lock,
};

use crate::fence::{CallbackId, DmaFence};
use crate::fence_unwrap::{leaves, merge};
use crate::uapi::*;

/// The object behind a sync_file fd.
pub struct SyncFile {
    fence: DmaFence,
    user_name: Option<String>,
    queue: Arc<WaitQueue>,
    poll_cb: Mutex<Option<CallbackId>>,
    poll_enabled: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for SyncFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncFile")
            .field("fence", &self.fence)
            .finish_non_exhaustive()
    }
}

impl SyncFile {
    /// `sync_file_create`: a new sync_file file holding `fence`, optionally named.
    pub fn create(fence: DmaFence, user_name: Option<String>) -> Arc<File> {
        let ops = SyncFile {
            fence,
            user_name,
            queue: Arc::new(WaitQueue::new()),
            poll_cb: Mutex::new(None),
            poll_enabled: std::sync::atomic::AtomicBool::new(false),
        };
        File::new(Arc::new(ops), OpenFlags::RDONLY)
    }

    /// `sync_file_get_fence`: the fence of a sync_file, `None` for any other file.
    pub fn fence_of(file: &File) -> Option<DmaFence> {
        file.ops_as::<SyncFile>().map(|s| s.fence.clone())
    }

    /// The fence.
    pub fn fence(&self) -> &DmaFence {
        &self.fence
    }

    /// `sync_file_get_name`: the user's name, else "driver-timelineCONTEXT-SEQNO".
    pub fn get_name(&self) -> String {
        match &self.user_name {
            Some(name) if !name.is_empty() => name.clone(),
            _ => format!(
                "{}-{}{}-{}",
                self.fence.driver_name(),
                self.fence.timeline_name(),
                self.fence.context(),
                self.fence.seqno() as i64
            ),
        }
    }

    fn ioctl_merge(&self, task: &Task<'_>, arg: UserPtr) -> KResult<i64> {
        let mut data: SyncMergeData = task.read_obj(arg)?;
        if data.flags != 0 || data.pad != 0 {
            return Err(Errno::EINVAL);
        }
        let other = task
            .fget(data.fd2)
            .ok()
            .and_then(|f| SyncFile::fence_of(&f))
            .ok_or(Errno::ENOENT)?;
        data.name[31] = 0;
        let fence = merge(&[self.fence.clone(), other]).map_err(|_| Errno::ENOMEM)?;
        let file = SyncFile::create(fence, Some(field_str(&data.name)));
        let fd = task.fd_install(file, true)?;
        data.fence = fd;
        task.write_obj(arg, &data).inspect_err(|_| {
            let _ = task.kernel().close(task.pid(), fd);
        })?;
        Ok(0)
    }

    fn fill_info(fence: &DmaFence) -> SyncFenceInfo {
        let status = fence.get_status();
        SyncFenceInfo {
            obj_name: name_field(fence.timeline_name()),
            driver_name: name_field(fence.driver_name()),
            status,
            flags: 0,
            timestamp_ns: if fence.is_signaled() {
                fence.timestamp_ns().unwrap_or(0)
            } else {
                0
            },
        }
    }

    fn ioctl_file_info(&self, task: &Task<'_>, arg: UserPtr) -> KResult<i64> {
        let mut info: SyncFileInfo = task.read_obj(arg)?;
        if info.flags != 0 || info.pad != 0 {
            return Err(Errno::EINVAL);
        }
        let fences: Vec<DmaFence> = leaves(&self.fence).collect();
        let count = u32::try_from(fences.len()).map_err(|_| Errno::ENOMEM)?;
        if info.num_fences == 0 {
            info.status = self.fence.get_status();
        } else {
            if info.num_fences < count {
                return Err(Errno::EINVAL);
            }
            info.status = 1;
            let mut array = Vec::with_capacity(fences.len() * size_of::<SyncFenceInfo>());
            for f in &fences {
                let entry = Self::fill_info(f);
                if info.status > 0 {
                    info.status = entry.status;
                }
                array.extend_from_slice(zerocopy::IntoBytes::as_bytes(&entry));
            }
            task.copy_to_user(UserPtr(info.sync_fence_info), &array)?;
        }
        info.name = name_field(&self.get_name());
        info.num_fences = count;
        task.write_obj(arg, &info)?;
        Ok(0)
    }

    fn ioctl_set_deadline(&self, task: &Task<'_>, arg: UserPtr) -> KResult<i64> {
        let req: SyncSetDeadline = task.read_obj(arg)?;
        if req.pad != 0 {
            return Err(Errno::EINVAL);
        }
        self.fence.set_deadline(req.deadline_ns);
        Ok(0)
    }
}

impl FileOps for SyncFile {
    fn name(&self, _file: &File) -> String {
        "anon_inode:sync_file".to_owned()
    }

    fn ioctl(&self, task: &Task<'_>, _file: &Arc<File>, cmd: u32, arg: u64) -> KResult<i64> {
        let arg = UserPtr(arg);
        match cmd {
            SYNC_IOC_MERGE => self.ioctl_merge(task, arg),
            SYNC_IOC_FILE_INFO => self.ioctl_file_info(task, arg),
            SYNC_IOC_SET_DEADLINE => self.ioctl_set_deadline(task, arg),
            _ => Err(Errno::ENOTTY),
        }
    }

    /// `POLLIN` once the fence has signalled (with or without an error). The first poll
    /// arms a callback that wakes the pollers.
    fn poll(
        &self,
        _file: &Arc<File>,
        table: Option<&PollTable<'_>>,
        _events: PollMask,
    ) -> PollMask {
        if let Some(t) = table {
            t.wait(&self.queue);
        }
        if !self
            .poll_enabled
            .swap(true, std::sync::atomic::Ordering::AcqRel)
        {
            let queue = self.queue.clone();
            match self.fence.add_callback(move |_| queue.wake_up_all()) {
                Ok(id) => *lock(&self.poll_cb) = Some(id),
                Err(_) => self.queue.wake_up_all(),
            }
        }
        if self.fence.is_signaled() {
            PollMask::IN
        } else {
            PollMask::empty()
        }
    }

    fn release(&self, _file: &File) {
        if let Some(id) = lock(&self.poll_cb).take() {
            self.fence.remove_callback(id);
        }
    }
}
