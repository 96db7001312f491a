//! Explicit synchronisation from user space: sync_file fds and sw_sync timelines
//! (the role of Android's libsync).

use sagrada_kernel_dmabuf::uapi::*;
use sagrada_sys::{Errno, Fd, OpenFlags, PollFd, PollMask, Process};

/// The state of one fence inside a sync_file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FenceInfo {
    /// Timeline name.
    pub timeline: String,
    /// Driver name.
    pub driver: String,
    /// 1 signalled, 0 active, negative errno on error.
    pub status: i32,
    /// Signal time in ns of monotonic time, 0 while active.
    pub timestamp_ns: u64,
}

/// A sync_file fd of a process.
#[derive(Debug)]
pub struct SyncFile<'p> {
    p: &'p Process,
    fd: Fd,
}

impl<'p> SyncFile<'p> {
    /// Wraps an fd the process already holds.
    pub fn from_fd(p: &'p Process, fd: Fd) -> Self {
        Self { p, fd }
    }

    /// The fd.
    pub fn fd(&self) -> Fd {
        self.fd
    }

    /// Waits up to `timeout_ms` (negative: forever) for the fence; true if signalled.
    pub fn wait(&self, timeout_ms: i32) -> Result<bool, Errno> {
        let mut fds = [PollFd::new(self.fd, PollMask::IN)];
        Ok(self.p.poll(&mut fds, timeout_ms)? > 0)
    }

    /// `SYNC_IOC_MERGE`: a new sync_file that signals when both have.
    pub fn merge(&self, other: &SyncFile<'_>, name: &str) -> Result<SyncFile<'p>, Errno> {
        let mut data = SyncMergeData {
            name: name_field(name),
            fd2: other.fd,
            ..Default::default()
        };
        self.p.ioctl_with(self.fd, SYNC_IOC_MERGE, &mut data)?;
        Ok(SyncFile {
            p: self.p,
            fd: data.fence,
        })
    }

    /// `SYNC_IOC_FILE_INFO`: the name, overall status and each fence's state.
    pub fn info(&self) -> Result<(String, i32, Vec<FenceInfo>), Errno> {
        let mut info = SyncFileInfo::default();
        self.p.ioctl_with(self.fd, SYNC_IOC_FILE_INFO, &mut info)?;
        let n = info.num_fences as usize;
        let bytes = (n * size_of::<SyncFenceInfo>()).max(1) as u64;
        let array = self.p.mmap_anon(bytes)?;
        info.sync_fence_info = array.0;
        let result = self
            .p
            .ioctl_with(self.fd, SYNC_IOC_FILE_INFO, &mut info)
            .and_then(|_| {
                let mut raw = vec![0u8; n * size_of::<SyncFenceInfo>()];
                self.p.read_mem(array, &mut raw)?;
                Ok(raw
                    .chunks_exact(size_of::<SyncFenceInfo>())
                    .filter_map(|c| <SyncFenceInfo as zerocopy::FromBytes>::read_from_bytes(c).ok())
                    .map(|f| FenceInfo {
                        timeline: field_str(&f.obj_name),
                        driver: field_str(&f.driver_name),
                        status: f.status,
                        timestamp_ns: f.timestamp_ns,
                    })
                    .collect())
            });
        self.p.munmap(array, bytes)?;
        Ok((field_str(&info.name), info.status, result?))
    }

    /// `close(fd)`.
    pub fn close(self) -> Result<(), Errno> {
        self.p.close(self.fd)
    }
}

/// A sw_sync timeline: a software clock whose points are fences.
#[derive(Debug)]
pub struct Timeline<'p> {
    p: &'p Process,
    fd: Fd,
}

impl<'p> Timeline<'p> {
    /// Opens a new timeline at 0.
    pub fn create(p: &'p Process) -> Result<Self, Errno> {
        Ok(Self {
            p,
            fd: p.open(SW_SYNC_PATH, OpenFlags::RDWR)?,
        })
    }

    /// A sync_file whose fence signals when the timeline reaches `value`.
    pub fn fence(&self, value: u32) -> Result<SyncFile<'p>, Errno> {
        let mut data = SwSyncCreateFenceData {
            value,
            ..Default::default()
        };
        self.p
            .ioctl_with(self.fd, SW_SYNC_IOC_CREATE_FENCE, &mut data)?;
        Ok(SyncFile {
            p: self.p,
            fd: data.fence,
        })
    }

    /// Advances the timeline by `count`.
    pub fn inc(&self, count: u32) -> Result<(), Errno> {
        let mut count = count;
        self.p
            .ioctl_with(self.fd, SW_SYNC_IOC_INC, &mut count)
            .map(drop)
    }

    /// Closes the timeline: its pending fences signal with `-ENOENT`.
    pub fn close(self) -> Result<(), Errno> {
        self.p.close(self.fd)
    }
}
