//! The calling context of a syscall: which process, and its user memory.

use std::sync::Arc;

use sagrada_hw_fabric::PhysRange;
use zerocopy::{FromBytes, Immutable, IntoBytes};

use crate::errno::{Errno, KResult};
use crate::file::{File, Prot};
use crate::kernel::Kernel;
use crate::process::{Fd, FdReservation, Pid, Process};
use crate::vm::{UserPtr, read_extents, write_extents};

/// The current task as a driver sees it during a syscall (Linux `current`).
#[derive(Debug, Clone, Copy)]
pub struct Task<'a> {
    kernel: &'a Kernel,
    process: &'a Arc<Process>,
}

impl<'a> Task<'a> {
    pub(crate) fn new(kernel: &'a Kernel, process: &'a Arc<Process>) -> Self {
        Self { kernel, process }
    }

    /// The kernel.
    pub fn kernel(&self) -> &'a Kernel {
        self.kernel
    }

    /// The calling process.
    pub fn process(&self) -> &'a Arc<Process> {
        self.process
    }

    /// Its pid.
    pub fn pid(&self) -> Pid {
        self.process.pid()
    }

    /// Its name (`current->comm`).
    pub fn comm(&self) -> &'a str {
        self.process.name()
    }

    /// The file behind one of the caller's fds.
    pub fn fget(&self, fd: Fd) -> KResult<Arc<File>> {
        self.process.fget(fd)
    }

    /// Installs a fully set-up file in a new fd of the caller; this is the last step of
    /// any ioctl that creates an fd, so a racing `close` cannot see a half-built file.
    pub fn fd_install(&self, file: Arc<File>, cloexec: bool) -> KResult<Fd> {
        self.process.fd_install(file, cloexec)
    }

    /// Reserves an fd of the caller for a file the call will create: the call fails
    /// with `EMFILE` before doing anything, and installs the file once it is set up.
    pub fn reserve_fd(&self, cloexec: bool) -> KResult<FdReservation<'a>> {
        self.process.reserve_fd(cloexec)
    }

    /// `copy_from_user`: all of `dst` or `EFAULT` (and nothing copied).
    pub fn copy_from_user(&self, src: UserPtr, dst: &mut [u8]) -> KResult<()> {
        let extents = self.process.mm.resolve(src, dst.len() as u64, Prot::READ)?;
        read_extents(self.kernel.fabric(), &extents, dst)
    }

    /// `copy_to_user`: all of `src` or `EFAULT` (and nothing copied).
    pub fn copy_to_user(&self, dst: UserPtr, src: &[u8]) -> KResult<()> {
        let extents = self
            .process
            .mm
            .resolve(dst, src.len() as u64, Prot::WRITE)?;
        write_extents(self.kernel.fabric(), &extents, src)
    }

    /// Reads a uAPI structure from user memory.
    pub fn read_obj<T: FromBytes + IntoBytes>(&self, src: UserPtr) -> KResult<T> {
        let mut value = T::new_zeroed();
        self.copy_from_user(src, value.as_mut_bytes())?;
        Ok(value)
    }

    /// Writes a uAPI structure to user memory.
    pub fn write_obj<T: IntoBytes + Immutable>(&self, dst: UserPtr, value: &T) -> KResult<()> {
        self.copy_to_user(dst, value.as_bytes())
    }

    /// `strndup_user(src, max)`: a NUL-terminated string of fewer than `max` bytes.
    /// `EFAULT` if the memory ends first, `EINVAL` if no NUL is found within `max`
    /// bytes.
    pub fn strndup_user(&self, src: UserPtr, max: usize) -> KResult<Vec<u8>> {
        let mut out = Vec::with_capacity(max);
        let mut at = src;
        while out.len() < max {
            let mut byte = [0u8];
            self.copy_from_user(at, &mut byte)?;
            if byte[0] == 0 {
                return Ok(out);
            }
            out.push(byte[0]);
            at = at.checked_add(1).ok_or(Errno::EFAULT)?;
        }
        Err(Errno::EINVAL)
    }

    /// The physical memory behind a user range (for pinning user pages for DMA).
    pub fn user_extents(&self, ptr: UserPtr, len: u64, need: Prot) -> KResult<Vec<PhysRange>> {
        self.process.mm.resolve(ptr, len, need)
    }
}
