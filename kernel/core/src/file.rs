//! Open files: the objects fds point at, and the operations a file type provides.

use std::any::Any;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sagrada_hw_fabric::PhysRange;

use crate::errno::{Errno, KResult};
use crate::task::Task;
use crate::wait::{PollMask, PollTable, lock};

/// `open(2)` flags with Linux values (only those the model uses).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct OpenFlags(pub u32);

impl OpenFlags {
    /// Read only.
    pub const RDONLY: Self = Self(0);
    /// Write only.
    pub const WRONLY: Self = Self(0o1);
    /// Read and write.
    pub const RDWR: Self = Self(0o2);
    /// Mask of the access mode.
    pub const ACCMODE: Self = Self(0o3);
    /// Non-blocking I/O.
    pub const NONBLOCK: Self = Self(0o4000);
    /// Close on exec (a property of the fd, not of the file).
    pub const CLOEXEC: Self = Self(0o2000000);

    /// Whether every bit of `other` is set.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// The access mode bits.
    pub const fn access_mode(self) -> Self {
        Self(self.0 & Self::ACCMODE.0)
    }

    /// `self` with `other`'s bits added.
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// `self` restricted to `mask`.
    pub const fn intersection(self, mask: Self) -> Self {
        Self(self.0 & mask.0)
    }

    /// Whether bits outside `mask` are set.
    pub const fn has_bits_outside(self, mask: Self) -> bool {
        self.0 & !mask.0 != 0
    }
}

impl fmt::Debug for OpenFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OpenFlags({:#o})", self.0)
    }
}

/// `lseek` origins.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Whence {
    /// `SEEK_SET`.
    Set,
    /// `SEEK_CUR`.
    Cur,
    /// `SEEK_END`.
    End,
}

impl Whence {
    /// Decodes the Linux value; `None` for anything else.
    pub const fn from_raw(raw: u32) -> Option<Self> {
        match raw {
            0 => Some(Self::Set),
            1 => Some(Self::Cur),
            2 => Some(Self::End),
            _ => None,
        }
    }
}

/// Memory protection of a mapping (`PROT_*`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, Debug)]
pub struct Prot(pub u32);

impl Prot {
    /// No access.
    pub const NONE: Self = Self(0);
    /// Readable.
    pub const READ: Self = Self(1);
    /// Writable.
    pub const WRITE: Self = Self(2);
    /// Readable and writable.
    pub const READ_WRITE: Self = Self(3);

    /// Whether every bit of `other` is set.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }
}

/// The operations of one kind of file (Linux `struct file_operations`), implemented by
/// the object behind it. Every method but [`FileOps::name`] is optional and defaults to
/// what Linux does for a file type that lacks it.
pub trait FileOps: Any + Send + Sync {
    /// The name `/proc/<pid>/fd` shows for it ("anon_inode:sync_file", "/dmabuf:name").
    fn name(&self, file: &File) -> String;

    /// `ioctl(fd, cmd, arg)`; `arg` is a user pointer or a plain value, as `cmd` says.
    fn ioctl(&self, task: &Task<'_>, file: &Arc<File>, cmd: u32, arg: u64) -> KResult<i64> {
        let _ = (task, file, cmd, arg);
        Err(Errno::ENOTTY)
    }

    /// Reports readiness for `events` (what the caller asked for, plus the bits poll
    /// always reports) and, when `table` is given, registers for wake-ups.
    fn poll(&self, file: &Arc<File>, table: Option<&PollTable<'_>>, events: PollMask) -> PollMask {
        let _ = (file, table, events);
        PollMask::DEFAULT
    }

    /// `read(2)` of up to `len` bytes at `*pos`, advancing it.
    fn read(
        &self,
        task: &Task<'_>,
        file: &Arc<File>,
        len: usize,
        pos: &mut u64,
    ) -> KResult<Vec<u8>> {
        let _ = (task, file, len, pos);
        Err(Errno::EINVAL)
    }

    /// `lseek(2)`; returns the new position.
    fn llseek(&self, file: &Arc<File>, offset: i64, whence: Whence, pos: &mut u64) -> KResult<u64> {
        let _ = (file, offset, whence, pos);
        Err(Errno::ESPIPE)
    }

    /// `mmap(2)` of `len` bytes at page offset `pgoff`: the physical memory to map, in
    /// order (the model's `remap_pfn_range`).
    fn mmap(&self, file: &Arc<File>, pgoff: u64, len: u64, prot: Prot) -> KResult<Vec<PhysRange>> {
        let _ = (file, pgoff, len, prot);
        Err(Errno::ENODEV)
    }

    /// Extra lines for `/proc/<pid>/fdinfo/<fd>`. `file` is the caller's reference,
    /// so the reference count includes it.
    fn fdinfo(&self, file: &Arc<File>) -> String {
        let _ = file;
        String::new()
    }

    /// Called once when the last reference to the file goes away.
    fn release(&self, file: &File) {
        let _ = file;
    }
}

static NEXT_INO: AtomicU64 = AtomicU64::new(1);

/// An open file. fds, mappings and kernel objects hold `Arc<File>`; dropping the last
/// one releases the file (Linux's last `fput`).
pub struct File {
    ino: u64,
    flags: OpenFlags,
    ops: Arc<dyn FileOps>,
    pos: Mutex<u64>,
}

impl fmt::Debug for File {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("File")
            .field("ino", &self.ino)
            .field("name", &self.ops.name(self))
            .finish()
    }
}

impl File {
    /// Opens a new file on `ops`. Only the access mode and `O_NONBLOCK` are kept, as on
    /// an anonymous-inode file.
    pub fn new(ops: Arc<dyn FileOps>, flags: OpenFlags) -> Arc<Self> {
        Arc::new(Self {
            ino: NEXT_INO.fetch_add(1, Ordering::Relaxed),
            flags: flags.intersection(OpenFlags::ACCMODE.union(OpenFlags::NONBLOCK)),
            ops,
            pos: Mutex::new(0),
        })
    }

    /// The inode number (unique in this model).
    pub fn ino(&self) -> u64 {
        self.ino
    }

    /// Access mode and status flags.
    pub fn flags(&self) -> OpenFlags {
        self.flags
    }

    /// The file's operations object.
    pub fn ops(&self) -> &Arc<dyn FileOps> {
        &self.ops
    }

    /// The operations object as its concrete type, if it is a `T`.
    pub fn ops_as<T: FileOps>(&self) -> Option<&T> {
        (self.ops.as_ref() as &dyn Any).downcast_ref::<T>()
    }

    /// A counted reference to the operations object as a `T`, if it is one.
    pub fn ops_arc<T: FileOps>(&self) -> Option<Arc<T>> {
        let any: Arc<dyn Any + Send + Sync> = self.ops.clone();
        any.downcast::<T>().ok()
    }

    /// The `/proc/<pid>/fd` name.
    pub fn name(&self) -> String {
        self.ops.name(self)
    }

    /// The current file position.
    pub fn pos(&self) -> u64 {
        *lock(&self.pos)
    }

    pub(crate) fn with_pos<R>(&self, f: impl FnOnce(&mut u64) -> R) -> R {
        f(&mut lock(&self.pos))
    }

    /// The references held on this file.
    pub fn ref_count(self: &Arc<Self>) -> usize {
        Arc::strong_count(self)
    }
}

impl Drop for File {
    fn drop(&mut self) {
        self.ops.release(self);
    }
}
