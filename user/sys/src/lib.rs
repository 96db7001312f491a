//! The system-call layer of sagrada user space: what libc is to a C program.
//!
//! A [`Process`] is a user process's handle on the kernel. Its methods are the system
//! calls, taking and returning only data (integers, fds, user pointers) and failing with
//! an [`Errno`]. ioctl arguments live in the process's own memory, as they do for a C
//! program that passes a pointer to a struct on its stack; [`Process::ioctl_with`] does
//! that marshalling: it copies the argument into a scratch buffer of the process, makes
//! the call, and copies the result back.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::sync::{Arc, Mutex};

pub use sagrada_kernel_core::{
    Errno, Fd, KResult, MapFlags, OpenFlags, Pid, PollFd, PollMask, Prot, UserPtr,
};
use sagrada_kernel_core::{Kernel, lock};
use zerocopy::{FromBytes, Immutable, IntoBytes};

/// Size of the scratch buffers used to pass ioctl arguments.
const SCRATCH: u64 = 4096;

/// A user process (see the crate documentation). Threads of the process may share one
/// `Process` and call it concurrently.
#[derive(Debug)]
pub struct Process {
    kernel: Arc<Kernel>,
    pid: Pid,
    scratch: Mutex<Vec<UserPtr>>,
}

impl Process {
    /// Starts a new process named `name`.
    pub fn spawn(kernel: &Arc<Kernel>, name: &str) -> Self {
        Self::attach(kernel, kernel.spawn(name))
    }

    /// A handle on an existing process.
    pub fn attach(kernel: &Arc<Kernel>, pid: Pid) -> Self {
        Self {
            kernel: kernel.clone(),
            pid,
            scratch: Mutex::new(Vec::new()),
        }
    }

    /// Its pid.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// The kernel it runs on.
    pub fn kernel(&self) -> &Arc<Kernel> {
        &self.kernel
    }

    /// `open(path, flags)`.
    pub fn open(&self, path: &str, flags: OpenFlags) -> KResult<Fd> {
        self.kernel.open(self.pid, path, flags)
    }

    /// `close(fd)`.
    pub fn close(&self, fd: Fd) -> KResult<()> {
        self.kernel.close(self.pid, fd)
    }

    /// `dup(fd)`.
    pub fn dup(&self, fd: Fd) -> KResult<Fd> {
        self.kernel.dup(self.pid, fd)
    }

    /// `ioctl(fd, cmd, arg)` with a raw argument (a value or a pointer).
    pub fn ioctl(&self, fd: Fd, cmd: u32, arg: u64) -> KResult<i64> {
        self.kernel.ioctl(self.pid, fd, cmd, arg)
    }

    /// `ioctl(fd, cmd, &arg)`: passes `arg` through the process's memory and copies the
    /// kernel's answer back into it (also when the call fails, as a C caller would see).
    pub fn ioctl_with<T: IntoBytes + FromBytes + Immutable>(
        &self,
        fd: Fd,
        cmd: u32,
        arg: &mut T,
    ) -> KResult<i64> {
        let bytes = arg.as_bytes().len() as u64;
        assert!(
            bytes <= SCRATCH,
            "ioctl argument larger than the scratch buffer"
        );
        let buf = self.take_scratch()?;
        let result = (|| {
            self.write_mem(buf, arg.as_bytes())?;
            let ret = self.ioctl(fd, cmd, buf.0);
            self.read_mem(buf, arg.as_mut_bytes())?;
            ret
        })();
        lock(&self.scratch).push(buf);
        result
    }

    fn take_scratch(&self) -> KResult<UserPtr> {
        if let Some(buf) = lock(&self.scratch).pop() {
            return Ok(buf);
        }
        self.mmap_anon(SCRATCH)
    }

    /// `mmap(NULL, len, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0)`.
    pub fn mmap_anon(&self, len: u64) -> KResult<UserPtr> {
        self.kernel.mmap(
            self.pid,
            len,
            Prot::READ_WRITE,
            MapFlags::PRIVATE | MapFlags::ANONYMOUS,
            -1,
            0,
        )
    }

    /// `mmap(NULL, len, prot, flags, fd, offset)`.
    pub fn mmap(
        &self,
        fd: Fd,
        len: u64,
        prot: Prot,
        flags: MapFlags,
        offset: u64,
    ) -> KResult<UserPtr> {
        self.kernel.mmap(self.pid, len, prot, flags, fd, offset)
    }

    /// `munmap(addr, len)`.
    pub fn munmap(&self, addr: UserPtr, len: u64) -> KResult<()> {
        self.kernel.munmap(self.pid, addr, len)
    }

    /// Stores bytes into the process's memory.
    pub fn write_mem(&self, dst: UserPtr, src: &[u8]) -> KResult<()> {
        self.kernel.mem_write(self.pid, dst, src)
    }

    /// Loads bytes from the process's memory.
    pub fn read_mem(&self, src: UserPtr, dst: &mut [u8]) -> KResult<()> {
        self.kernel.mem_read(self.pid, src, dst)
    }

    /// Places a NUL-terminated string in fresh memory and returns its address (for
    /// ioctls that take a `const char *`).
    pub fn alloc_cstr(&self, s: &str) -> KResult<UserPtr> {
        let ptr = self.mmap_anon(s.len() as u64 + 1)?;
        self.write_mem(ptr, s.as_bytes())?;
        Ok(ptr)
    }

    /// `read(fd, buf, len)` into fresh memory, returning the bytes read.
    pub fn read(&self, fd: Fd, len: usize) -> KResult<Vec<u8>> {
        let buf = self.mmap_anon(len.max(1) as u64)?;
        let result = self.kernel.read(self.pid, fd, buf, len).and_then(|n| {
            let mut out = vec![0u8; n];
            self.read_mem(buf, &mut out)?;
            Ok(out)
        });
        self.munmap(buf, len.max(1) as u64)?;
        result
    }

    /// Reads a file to its end.
    pub fn read_to_end(&self, fd: Fd) -> KResult<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            let chunk = self.read(fd, 4096)?;
            if chunk.is_empty() {
                return Ok(out);
            }
            out.extend(chunk);
        }
    }

    /// `lseek(fd, offset, whence)`.
    pub fn lseek(&self, fd: Fd, offset: i64, whence: u32) -> KResult<u64> {
        self.kernel.lseek(self.pid, fd, offset, whence)
    }

    /// `poll(fds, timeout_ms)`.
    pub fn poll(&self, fds: &mut [PollFd], timeout_ms: i32) -> KResult<usize> {
        self.kernel.poll(self.pid, fds, timeout_ms)
    }

    /// `fork()`: the child as a new handle.
    pub fn fork(&self) -> KResult<Process> {
        Ok(Self::attach(&self.kernel, self.kernel.fork(self.pid)?))
    }

    /// Sends `fd` to `to` (`SCM_RIGHTS`), returning its number there.
    pub fn send_fd(&self, fd: Fd, to: &Process) -> KResult<Fd> {
        self.kernel.send_fd(self.pid, fd, to.pid, false)
    }

    /// `/proc/self/fdinfo/<fd>`.
    pub fn fdinfo(&self, fd: Fd) -> KResult<String> {
        self.kernel.fdinfo(self.pid, fd)
    }

    /// `readlink /proc/self/fd/<fd>`.
    pub fn fd_name(&self, fd: Fd) -> KResult<String> {
        self.kernel.fd_name(self.pid, fd)
    }

    /// `exit()`.
    pub fn exit(self) -> KResult<()> {
        self.kernel.exit(self.pid)
    }
}
