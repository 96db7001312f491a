//! The kernel object and its system calls.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, Instant};

use sagrada_hw_fabric::{Fabric, PAGE_SIZE};

use crate::errno::{Errno, KResult};
use crate::file::{File, OpenFlags, Prot, Whence};
use crate::mm::{FrameAllocator, page_align};
use crate::process::{Fd, FdTable, Pid, Process};
use crate::task::Task;
use crate::vm::{AddressSpace, Backing, UserPtr, read_extents, write_extents};
use crate::wait::{PollMask, PollTable, Poller, lock};

/// Something that can be opened by path (a device node, a debugfs file).
pub trait CharDevice: Send + Sync {
    /// Opens it for `task`; returns the new file.
    fn open(&self, task: &Task<'_>, flags: OpenFlags) -> KResult<Arc<File>>;
}

/// `mmap` flags (Linux values).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct MapFlags(pub u32);

impl MapFlags {
    /// Share the mapping (file mappings).
    pub const SHARED: Self = Self(0x01);
    /// Private mapping.
    pub const PRIVATE: Self = Self(0x02);
    /// Not backed by a file.
    pub const ANONYMOUS: Self = Self(0x20);

    /// Whether every bit of `other` is set.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for MapFlags {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

/// One entry of a `poll(2)` call.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PollFd {
    /// The fd; negative entries are ignored.
    pub fd: Fd,
    /// Requested events.
    pub events: PollMask,
    /// Returned events.
    pub revents: PollMask,
}

impl PollFd {
    /// An entry asking for `events` on `fd`.
    pub fn new(fd: Fd, events: PollMask) -> Self {
        Self {
            fd,
            events,
            revents: PollMask::empty(),
        }
    }
}

/// The modelled kernel: processes, device nodes and the page allocator over the
/// fabric's host DRAM. Every method taking a pid is a system call made by a thread of
/// that process.
pub struct Kernel {
    me: Weak<Kernel>,
    fabric: Arc<Fabric>,
    frames: FrameAllocator,
    processes: Mutex<BTreeMap<Pid, Arc<Process>>>,
    next_pid: AtomicU32,
    devices: RwLock<BTreeMap<String, Arc<dyn CharDevice>>>,
    pub(crate) irqs: crate::irq::Irqs,
    pub(crate) dma_params: crate::dma::DmaParams,
}

impl fmt::Debug for Kernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kernel")
            .field("processes", &lock(&self.processes).len())
            .finish_non_exhaustive()
    }
}

impl Kernel {
    /// Boots a kernel on `fabric`, owning its host DRAM and its interrupt window.
    ///
    /// # Panics
    ///
    /// If the fabric already has an interrupt controller (one kernel per machine).
    pub fn new(fabric: Arc<Fabric>) -> Arc<Self> {
        let frames = FrameAllocator::new(fabric.host_memory().clone(), fabric.host_dram());
        let kernel = Arc::new_cyclic(|me| Self {
            me: me.clone(),
            fabric,
            frames,
            processes: Mutex::new(BTreeMap::new()),
            next_pid: AtomicU32::new(1),
            devices: RwLock::new(BTreeMap::new()),
            irqs: crate::irq::Irqs::default(),
            dma_params: crate::dma::DmaParams::default(),
        });
        let controller = Arc::new(crate::irq::Controller(kernel.downgrade()));
        if let Err(e) = kernel.fabric.set_interrupt_sink(controller) {
            panic!("booting a second kernel on one machine: {e}");
        }
        kernel
    }

    /// A weak reference to this kernel, for objects that outlive a syscall (a buffer
    /// that must give its pages back when released).
    pub fn downgrade(&self) -> Weak<Kernel> {
        self.me.clone()
    }

    /// The hardware.
    pub fn fabric(&self) -> &Arc<Fabric> {
        &self.fabric
    }

    /// The page allocator.
    pub fn frames(&self) -> &FrameAllocator {
        &self.frames
    }

    /// Makes `device` openable at `path`.
    pub fn register_device(&self, path: &str, device: Arc<dyn CharDevice>) -> KResult<()> {
        let mut devices = self
            .devices
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if devices.contains_key(path) {
            return Err(Errno::EEXIST);
        }
        devices.insert(path.to_owned(), device);
        Ok(())
    }

    /// The registered paths, sorted.
    pub fn device_paths(&self) -> Vec<String> {
        self.devices
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .keys()
            .cloned()
            .collect()
    }

    fn process(&self, pid: Pid) -> KResult<Arc<Process>> {
        lock(&self.processes).get(&pid).cloned().ok_or(Errno::ESRCH)
    }

    /// Runs `f` as a syscall of `pid`.
    pub fn with_task<R>(&self, pid: Pid, f: impl FnOnce(&Task<'_>) -> KResult<R>) -> KResult<R> {
        let process = self.process(pid)?;
        f(&Task::new(self, &process))
    }

    /// Creates a process with an empty fd table and address space. The name is cut to
    /// 15 bytes like `comm`.
    pub fn spawn(&self, name: &str) -> Pid {
        let pid = self.next_pid.fetch_add(1, Ordering::Relaxed);
        let comm: String = name
            .chars()
            .scan(0, |n, c| {
                *n += c.len_utf8();
                (*n <= 15).then_some(c)
            })
            .collect();
        let process = Process::new(pid, comm, FdTable::default(), AddressSpace::default());
        lock(&self.processes).insert(pid, Arc::new(process));
        pid
    }

    /// `fork`: a child sharing the parent's open files and holding a copy of its
    /// private memory.
    pub fn fork(&self, parent: Pid) -> KResult<Pid> {
        let parent = self.process(parent)?;
        let fds = lock(&parent.fds).clone_table();
        let mm = parent
            .mm
            .fork(&self.fabric, |len| self.frames.alloc(len, false))?;
        let pid = self.next_pid.fetch_add(1, Ordering::Relaxed);
        lock(&self.processes).insert(
            pid,
            Arc::new(Process::new(pid, parent.name().to_owned(), fds, mm)),
        );
        Ok(pid)
    }

    /// `exit`: closes every fd and frees the address space.
    pub fn exit(&self, pid: Pid) -> KResult<()> {
        let process = lock(&self.processes).remove(&pid).ok_or(Errno::ESRCH)?;
        let files = lock(&process.fds).take_all();
        drop(files);
        let unmapped = process.mm.unmap_all();
        self.frames.free(&unmapped.anon);
        Ok(())
    }

    /// The live pids.
    pub fn pids(&self) -> Vec<Pid> {
        lock(&self.processes).keys().copied().collect()
    }

    /// `open(path, flags)`.
    pub fn open(&self, pid: Pid, path: &str, flags: OpenFlags) -> KResult<Fd> {
        let device = self
            .devices
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(path)
            .cloned()
            .ok_or(Errno::ENOENT)?;
        self.with_task(pid, |task| {
            let file = device.open(task, flags)?;
            task.fd_install(file, flags.contains(OpenFlags::CLOEXEC))
        })
    }

    /// `close(fd)`. The file is released here if this was its last reference.
    pub fn close(&self, pid: Pid, fd: Fd) -> KResult<()> {
        let process = self.process(pid)?;
        let file = lock(&process.fds).remove(fd)?;
        drop(file);
        Ok(())
    }

    /// `dup(fd)`: the lowest free fd, sharing the file, without close-on-exec.
    pub fn dup(&self, pid: Pid, fd: Fd) -> KResult<Fd> {
        let process = self.process(pid)?;
        let mut fds = lock(&process.fds);
        let file = fds.get(fd)?;
        fds.install(file, false, 0)
    }

    /// `dup3(old, new, flags)`: `EINVAL` if they are equal or flags other than
    /// `O_CLOEXEC` are given; a file already at `new` is closed.
    pub fn dup3(&self, pid: Pid, old: Fd, new: Fd, flags: OpenFlags) -> KResult<Fd> {
        if old == new || flags.has_bits_outside(OpenFlags::CLOEXEC) {
            return Err(Errno::EINVAL);
        }
        let process = self.process(pid)?;
        let replaced = {
            let mut fds = lock(&process.fds);
            let file = fds.get(old)?;
            fds.install_at(new, file, flags.contains(OpenFlags::CLOEXEC))?
        };
        drop(replaced);
        Ok(new)
    }

    /// Passes an open file to another process (what `SCM_RIGHTS` does over a Unix
    /// socket): a new fd in `to` refers to the same file.
    pub fn send_fd(&self, from: Pid, fd: Fd, to: Pid, cloexec: bool) -> KResult<Fd> {
        let file = self.process(from)?.fget(fd)?;
        self.process(to)?.fd_install(file, cloexec)
    }

    /// The file behind `fd` of `pid` (for kernel code that takes an fd, like
    /// `dma_buf_get`).
    pub fn fget(&self, pid: Pid, fd: Fd) -> KResult<Arc<File>> {
        self.process(pid)?.fget(fd)
    }

    /// The open fds of `pid` (`ls /proc/<pid>/fd`).
    pub fn fds(&self, pid: Pid) -> KResult<Vec<Fd>> {
        Ok(self.process(pid)?.fds())
    }

    /// `readlink /proc/<pid>/fd/<fd>`.
    pub fn fd_name(&self, pid: Pid, fd: Fd) -> KResult<String> {
        Ok(self.fget(pid, fd)?.name())
    }

    /// `/proc/<pid>/fdinfo/<fd>`.
    pub fn fdinfo(&self, pid: Pid, fd: Fd) -> KResult<String> {
        let process = self.process(pid)?;
        let (file, cloexec) = {
            let fds = lock(&process.fds);
            (fds.get(fd)?, fds.cloexec(fd)?)
        };
        let flags = file.flags().0 | if cloexec { OpenFlags::CLOEXEC.0 } else { 0 };
        let extra = file.ops().fdinfo(&file);
        Ok(format!(
            "pos:\t{}\nflags:\t0{:o}\nmnt_id:\t0\nino:\t{}\n{extra}",
            file.pos(),
            flags,
            file.ino()
        ))
    }

    /// `ioctl(fd, cmd, arg)`.
    pub fn ioctl(&self, pid: Pid, fd: Fd, cmd: u32, arg: u64) -> KResult<i64> {
        let process = self.process(pid)?;
        let file = process.fget(fd)?;
        let task = Task::new(self, &process);
        file.ops().clone().ioctl(&task, &file, cmd, arg)
    }

    /// `read(fd, buf, len)`.
    pub fn read(&self, pid: Pid, fd: Fd, buf: UserPtr, len: usize) -> KResult<usize> {
        let process = self.process(pid)?;
        let file = process.fget(fd)?;
        let task = Task::new(self, &process);
        // Check the buffer first so a bad pointer does not consume data.
        process.mm.resolve(buf, len as u64, Prot::WRITE)?;
        let data = file.with_pos(|pos| file.ops().read(&task, &file, len, pos))?;
        task.copy_to_user(buf, &data)?;
        Ok(data.len())
    }

    /// `lseek(fd, offset, whence)`.
    pub fn lseek(&self, pid: Pid, fd: Fd, offset: i64, whence: u32) -> KResult<u64> {
        let file = self.fget(pid, fd)?;
        let whence = Whence::from_raw(whence).ok_or(Errno::EINVAL)?;
        file.with_pos(|pos| file.ops().llseek(&file, offset, whence, pos))
    }

    /// `poll(fds, timeout_ms)`: a negative timeout waits forever. Returns how many
    /// entries have events; an fd that is not open reports `POLLNVAL`.
    pub fn poll(&self, pid: Pid, fds: &mut [PollFd], timeout_ms: i32) -> KResult<usize> {
        let process = self.process(pid)?;
        let deadline = u64::try_from(timeout_ms)
            .ok()
            .map(|ms| Instant::now() + Duration::from_millis(ms));
        let always = PollMask::ERR | PollMask::HUP | PollMask::NVAL;
        let files: Vec<Option<Arc<File>>> = fds
            .iter()
            .map(|p| {
                if p.fd < 0 {
                    None
                } else {
                    process.fget(p.fd).ok()
                }
            })
            .collect();
        let poller = Poller::new();
        let mut first = true;
        loop {
            poller.reset();
            let table = PollTable::new(&poller);
            let mut ready = 0;
            for (entry, file) in fds.iter_mut().zip(&files) {
                entry.revents = if entry.fd < 0 {
                    PollMask::empty()
                } else {
                    match file {
                        None => PollMask::NVAL,
                        Some(file) => {
                            let events = entry.events | always;
                            file.ops().poll(file, first.then_some(&table), events) & events
                        }
                    }
                };
                if !entry.revents.is_empty() {
                    ready += 1;
                }
            }
            first = false;
            if ready > 0 || deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(ready);
            }
            poller.sleep(deadline);
        }
    }

    /// `mmap(NULL, len, prot, flags, fd, offset)`. Anonymous mappings must be private;
    /// file mappings are always shared (no copy-on-write in this model).
    pub fn mmap(
        &self,
        pid: Pid,
        len: u64,
        prot: Prot,
        flags: MapFlags,
        fd: Fd,
        offset: u64,
    ) -> KResult<UserPtr> {
        let process = self.process(pid)?;
        let len = page_align(len).filter(|&l| l > 0).ok_or(Errno::EINVAL)?;
        if !offset.is_multiple_of(PAGE_SIZE) || prot.0 & !Prot::READ_WRITE.0 != 0 {
            return Err(Errno::EINVAL);
        }
        let shared = flags.contains(MapFlags::SHARED);
        if shared == flags.contains(MapFlags::PRIVATE) {
            return Err(Errno::EINVAL);
        }
        if flags.contains(MapFlags::ANONYMOUS) {
            if shared {
                return Err(Errno::EINVAL);
            }
            let extents = self.frames.alloc(len, false)?;
            return process
                .mm
                .map(len, prot, Backing::Anon, extents.clone())
                .inspect_err(|_| self.frames.free(&extents));
        }
        let file = process.fget(fd)?;
        let mode = file.flags().access_mode();
        if mode == OpenFlags::WRONLY
            || (shared && prot.contains(Prot::WRITE) && mode != OpenFlags::RDWR)
        {
            return Err(Errno::EACCES);
        }
        let extents = file.ops().mmap(&file, offset / PAGE_SIZE, len, prot)?;
        if extents.iter().map(|e| e.len).sum::<u64>() != len {
            tracing::error!("{}: mmap returned memory of the wrong size", file.name());
            return Err(Errno::EINVAL);
        }
        process.mm.map(len, prot, Backing::File(file), extents)
    }

    /// `munmap(addr, len)`.
    pub fn munmap(&self, pid: Pid, addr: UserPtr, len: u64) -> KResult<()> {
        let unmapped = self.process(pid)?.mm.unmap(addr, len)?;
        self.frames.free(&unmapped.anon);
        drop(unmapped.files);
        Ok(())
    }

    /// The process reads its own memory (a CPU load): `EFAULT` if unmapped or not
    /// readable.
    pub fn mem_read(&self, pid: Pid, src: UserPtr, dst: &mut [u8]) -> KResult<()> {
        let extents = self
            .process(pid)?
            .mm
            .resolve(src, dst.len() as u64, Prot::READ)?;
        read_extents(&self.fabric, &extents, dst)
    }

    /// The process writes its own memory (a CPU store): `EFAULT` if unmapped or not
    /// writable.
    pub fn mem_write(&self, pid: Pid, dst: UserPtr, src: &[u8]) -> KResult<()> {
        let extents = self
            .process(pid)?
            .mm
            .resolve(dst, src.len() as u64, Prot::WRITE)?;
        write_extents(&self.fabric, &extents, src)
    }
}
