//! Processes and their fd tables.

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

    /// Installs `file` at the lowest free fd not below `min`.
    pub fn install(&mut self, file: Arc<File>, cloexec: bool, min: usize) -> KResult<Fd> {
        let free = (min..NOFILE)
            .find(|&i| self.slots.get(i).is_none_or(Option::is_none))
            .ok_or(Errno::EMFILE)?;
        if free >= self.slots.len() {
            self.slots.resize(free + 1, None);
        }
        self.slots[free] = Some(FdEntry { file, cloexec });
        Ok(free as Fd)
    }

    /// Installs `file` at exactly `fd`, returning what was there.
    pub fn install_at(
        &mut self,
        fd: Fd,
        file: Arc<File>,
        cloexec: bool,
    ) -> KResult<Option<Arc<File>>> {
        let i = Self::index(fd)?;
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

    pub fn clone_table(&self) -> FdTable {
        FdTable {
            slots: self.slots.clone(),
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

    /// The open fds, ascending.
    pub fn fds(&self) -> Vec<Fd> {
        lock(&self.fds).fds()
    }
}
