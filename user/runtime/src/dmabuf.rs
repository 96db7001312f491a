//! dma-buf from user space: allocate from a dma-heap, map, name, bracket CPU access,
//! and move implicit fences in and out as sync_files.

use sagrada_kernel_dmabuf::uapi::*;
use sagrada_sys::{Errno, Fd, MapFlags, OpenFlags, PollFd, PollMask, Process, Prot, UserPtr};

use crate::sync::SyncFile;

/// Allocates `len` bytes (rounded up to pages) from the system dma-heap.
pub fn alloc_system(p: &Process, len: u64) -> Result<DmaBufFd<'_>, Errno> {
    let heap = p.open(
        DMA_HEAP_SYSTEM_PATH,
        OpenFlags::RDWR.union(OpenFlags::CLOEXEC),
    )?;
    let mut req = DmaHeapAllocationData {
        len,
        fd_flags: OpenFlags::RDWR.union(OpenFlags::CLOEXEC).0,
        ..Default::default()
    };
    let result = p.ioctl_with(heap, DMA_HEAP_IOCTL_ALLOC, &mut req);
    p.close(heap)?;
    result?;
    Ok(DmaBufFd {
        p,
        fd: req.fd as Fd,
    })
}

/// A dma-buf fd of a process. Closing is explicit ([`DmaBufFd::close`]), like the fd
/// it wraps.
#[derive(Debug)]
pub struct DmaBufFd<'p> {
    p: &'p Process,
    fd: Fd,
}

/// Which access a sync bracket or fence exchange is about.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Access {
    /// Reading.
    Read,
    /// Writing.
    Write,
    /// Both.
    ReadWrite,
}

impl Access {
    fn flags(self) -> u64 {
        match self {
            Access::Read => DMA_BUF_SYNC_READ,
            Access::Write => DMA_BUF_SYNC_WRITE,
            Access::ReadWrite => DMA_BUF_SYNC_RW,
        }
    }
}

impl<'p> DmaBufFd<'p> {
    /// Wraps an fd the process already holds (received from another process, say).
    pub fn from_fd(p: &'p Process, fd: Fd) -> Self {
        Self { p, fd }
    }

    /// The fd.
    pub fn fd(&self) -> Fd {
        self.fd
    }

    /// Size of the buffer (`lseek(SEEK_END)`).
    pub fn size(&self) -> Result<u64, Errno> {
        self.p.lseek(self.fd, 0, 2)
    }

    /// `DMA_BUF_SET_NAME`.
    pub fn set_name(&self, name: &str) -> Result<(), Errno> {
        let ptr = self.p.alloc_cstr(name)?;
        let result = self.p.ioctl(self.fd, DMA_BUF_SET_NAME, ptr.0);
        self.p.munmap(ptr, name.len() as u64 + 1)?;
        result.map(drop)
    }

    /// `mmap` of the whole buffer, shared.
    pub fn mmap(&self, prot: Prot) -> Result<UserPtr, Errno> {
        self.p
            .mmap(self.fd, self.size()?, prot, MapFlags::SHARED, 0)
    }

    /// `DMA_BUF_IOCTL_SYNC` with `START`: waits until the CPU may access the buffer.
    pub fn begin_cpu_access(&self, access: Access) -> Result<(), Errno> {
        self.sync(DMA_BUF_SYNC_START | access.flags())
    }

    /// `DMA_BUF_IOCTL_SYNC` with `END`.
    pub fn end_cpu_access(&self, access: Access) -> Result<(), Errno> {
        self.sync(DMA_BUF_SYNC_END | access.flags())
    }

    fn sync(&self, flags: u64) -> Result<(), Errno> {
        self.p
            .ioctl_with(self.fd, DMA_BUF_IOCTL_SYNC, &mut DmaBufSync { flags })
            .map(drop)
    }

    /// `DMA_BUF_IOCTL_EXPORT_SYNC_FILE`: a sync_file that signals when `access` may
    /// begin (a snapshot of the buffer's fences now).
    pub fn export_sync_file(&self, access: Access) -> Result<SyncFile<'p>, Errno> {
        let mut req = DmaBufExportSyncFile {
            flags: access.flags() as u32,
            fd: -1,
        };
        self.p
            .ioctl_with(self.fd, DMA_BUF_IOCTL_EXPORT_SYNC_FILE, &mut req)?;
        Ok(SyncFile::from_fd(self.p, req.fd))
    }

    /// `DMA_BUF_IOCTL_IMPORT_SYNC_FILE`: adds the sync_file's fences to the buffer as a
    /// read or a write.
    pub fn import_sync_file(&self, file: &SyncFile<'_>, access: Access) -> Result<(), Errno> {
        let mut req = DmaBufImportSyncFile {
            flags: access.flags() as u32,
            fd: file.fd(),
        };
        self.p
            .ioctl_with(self.fd, DMA_BUF_IOCTL_IMPORT_SYNC_FILE, &mut req)
            .map(drop)
    }

    /// Polls without blocking: which of `POLLIN` (a read may start) and `POLLOUT` (a
    /// write may start) are ready.
    pub fn ready(&self) -> Result<PollMask, Errno> {
        let mut fds = [PollFd::new(self.fd, PollMask::IN | PollMask::OUT)];
        self.p.poll(&mut fds, 0)?;
        Ok(fds[0].revents)
    }

    /// `close(fd)`.
    pub fn close(self) -> Result<(), Errno> {
        self.p.close(self.fd)
    }
}
