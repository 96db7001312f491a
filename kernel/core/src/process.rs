//! Processes and their fd tables.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use crate::errno::{Errno, KResult};
use crate::file::File;
use crate::vm::AddressSpace;
use crate::wait::lock;

/// A file descriptor number.
pub type Fd = i32;

/// A process id.
pub type Pid = u32;

/// `RLIMIT_NOFILE`: fds per process.
pub const NOFILE: usize = 1024;

#[derive(Clone, Debug)]
struct FdEntry {
    file: Arc<File>,
    cloexec: bool,
}

/// The fd table. Files removed from it are handed back to the caller so that their
/// release (which may call into drivers) runs after the table lock is dropped.
#[derive(Debug, Default)]
pub(crate) struct FdTable {
    slots: Vec<Option<FdEntry>>,
    /// Numbers handed out for files still being set up ([`FdReservation`]): free
    /// slots that neither `install` nor `dup3` may take.
    reserved: BTreeSet<usize>,
}

impl FdTable {
    fn index(fd: Fd) -> KResult<usize> {
        usize::try_from(fd)
            .ok()
            .filter(|&i| i < NOFILE)
            .ok_or(Errno::EBADF)
    }

    pub fn get(&self, fd: Fd) -> KResult<Arc<File>> {
        let i = Self::index(fd)?;
        self.slots
            .get(i)
            .and_then(Option::as_ref)
            .map(|e| e.file.clone())
            .ok_or(Errno::EBADF)
    }

    pub fn cloexec(&self, fd: Fd) -> KResult<bool> {
        let i = Self::index(fd)?;
        self.slots
            .get(i)
            .and_then(Option::as_ref)
            .map(|e| e.cloexec)
            .ok_or(Errno::EBADF)
    }

    /// The lowest free, unreserved fd not below `min`.
    fn lowest_free(&self, min: usize) -> KResult<usize> {
        (min..NOFILE)
            .find(|&i| self.slots.get(i).is_none_or(Option::is_none) && !self.reserved.contains(&i))
            .ok_or(Errno::EMFILE)
    }

    /// Installs `file` at the lowest free fd not below `min`.
    pub fn install(&mut self, file: Arc<File>, cloexec: bool, min: usize) -> KResult<Fd> {
        let free = self.lowest_free(min)?;
        self.put(free, file, cloexec);
        Ok(free as Fd)
    }

    fn put(&mut self, i: usize, file: Arc<File>, cloexec: bool) {
        if i >= self.slots.len() {
            self.slots.resize(i + 1, None);
        }
        self.slots[i] = Some(FdEntry { file, cloexec });
    }

    /// Reserves the lowest free fd (Linux `get_unused_fd_flags`).
    pub fn reserve(&mut self) -> KResult<Fd> {
        let free = self.lowest_free(0)?;
        self.reserved.insert(free);
        Ok(free as Fd)
    }

    /// Fills a reserved fd (`fd_install`), or gives it back (`put_unused_fd`).
    fn fill_reserved(&mut self, fd: Fd, file: Option<(Arc<File>, bool)>) {
        let i = fd as usize;
        if self.reserved.remove(&i)
            && let Some((file, cloexec)) = file
        {
            self.put(i, file, cloexec);
        }
    }

    /// Installs `file` at exactly `fd`, returning what was there.
    pub fn install_at(
        &mut self,
        fd: Fd,
        file: Arc<File>,
        cloexec: bool,
    ) -> KResult<Option<Arc<File>>> {
        let i = Self::index(fd)?;
        // Linux's dup2 onto a number another thread has reserved but not yet filled.
        if self.reserved.contains(&i) {
            return Err(Errno::EBUSY);
        }
        if i >= self.slots.len() {
            self.slots.resize(i + 1, None);
        }
        Ok(self.slots[i]
            .replace(FdEntry { file, cloexec })
            .map(|e| e.file))
    }

    pub fn remove(&mut self, fd: Fd) -> KResult<Arc<File>> {
        let i = Self::index(fd)?;
        self.slots
            .get_mut(i)
            .and_then(Option::take)
            .map(|e| e.file)
            .ok_or(Errno::EBADF)
    }

    pub fn fds(&self) -> Vec<Fd> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, e)| e.is_some())
            .map(|(i, _)| i as Fd)
            .collect()
    }

    pub fn take_all(&mut self) -> Vec<Arc<File>> {
        std::mem::take(&mut self.slots)
            .into_iter()
            .flatten()
            .map(|e| e.file)
            .collect()
    }

    /// The table a forked child starts with: the open files, not the reservations
    /// (they belong to a call of the parent still in progress).
    pub fn clone_table(&self) -> FdTable {
        FdTable {
            slots: self.slots.clone(),
            reserved: BTreeSet::new(),
        }
    }
}

/// A process: a name, an fd table and an address space. Threads of a process are the
/// host threads that call the kernel with its pid.
#[derive(Debug)]
pub struct Process {
    pid: Pid,
    name: String,
    pub(crate) fds: Mutex<FdTable>,
    pub(crate) mm: AddressSpace,
}

impl Process {
    pub(crate) fn new(pid: Pid, name: String, fds: FdTable, mm: AddressSpace) -> Self {
        Self {
            pid,
            name,
            fds: Mutex::new(fds),
            mm,
        }
    }

    /// Its pid.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// Its name (Linux `comm`, at most 15 bytes).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file behind `fd` (Linux `fget`).
    pub fn fget(&self, fd: Fd) -> KResult<Arc<File>> {
        lock(&self.fds).get(fd)
    }

    /// Installs `file` at the lowest free fd (Linux `fd_install` after
    /// `get_unused_fd_flags`); the caller must have finished setting the file up.
    pub fn fd_install(&self, file: Arc<File>, cloexec: bool) -> KResult<Fd> {
        lock(&self.fds).install(file, cloexec, 0)
    }

    /// Reserves the lowest free fd for a file still to be created, so that a call
    /// that creates an fd can fail with `EMFILE` before it does anything it could not
    /// undo (Linux `get_unused_fd_flags`).
    pub fn reserve_fd(&self, cloexec: bool) -> KResult<FdReservation<'_>> {
        let fd = lock(&self.fds).reserve()?;
        Ok(FdReservation {
            process: self,
            fd,
            cloexec,
        })
    }

    /// The open fds, ascending.
    pub fn fds(&self) -> Vec<Fd> {
        lock(&self.fds).fds()
    }
}

/// An fd number reserved by [`Process::reserve_fd`]: [`install`](Self::install) puts
/// the finished file there (`fd_install`); dropping it unused frees the number again
/// (`put_unused_fd`).
#[derive(Debug)]
#[must_use = "an unused reservation only frees its fd again"]
pub struct FdReservation<'a> {
    process: &'a Process,
    fd: Fd,
    cloexec: bool,
}

impl FdReservation<'_> {
    /// The reserved number.
    pub fn fd(&self) -> Fd {
        self.fd
    }

    /// Installs `file` at the reserved number and returns it.
    pub fn install(self, file: Arc<File>) -> Fd {
        let fd = self.fd;
        lock(&self.process.fds).fill_reserved(fd, Some((file, self.cloexec)));
        std::mem::forget(self);
        fd
    }
}

impl Drop for FdReservation<'_> {
    fn drop(&mut self) {
        lock(&self.process.fds).fill_reserved(self.fd, None);
    }
}
