//! The core of the modelled Linux kernel: processes, fd tables, files, ioctl dispatch,
//! `poll`, user memory and errno.
//!
//! This crate is the uAPI boundary of sagrada. User space reaches the kernel only
//! through the system calls of [`Kernel`] (open, close, dup, ioctl, read, lseek, poll,
//! mmap, munmap), made on behalf of a process by its pid, with plain data: integers,
//! fds and user pointers. ioctl arguments are user pointers into the process's address
//! space, exactly as on Linux, so drivers use [`Task::copy_from_user`] and friends and
//! a bad pointer yields `EFAULT`. User memory is host DRAM of the fabric, allocated by
//! the kernel's page allocator, so a device can DMA to a user buffer and the link
//! counters see it.
//!
//! Drivers get the DMA API (coherent buffers, pinned user pages, per-device DMA
//! parameters) and interrupts: the kernel is the fabric's interrupt controller, and a
//! handler requested with [`Kernel::request_irq`] runs when its device writes the MSI
//! message it was given.
//!
//! Files are reference counted (`Arc<File>`); an fd, a mapping or a kernel object may
//! hold one, and the file is released when the last goes (Linux's last `fput`).
//!
//! Deliberately left out: credentials and permissions, signals (so interruptible waits
//! are never interrupted and `ERESTARTSYS` does not occur), `exec` (close-on-exec is
//! recorded but has no trigger), copy-on-write (fork copies private memory eagerly),
//! shared anonymous mappings, paths other than registered device nodes, and `read`/
//! `write` of regular files.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod dma;
mod errno;
mod file;
pub mod ioctl;
mod irq;
mod kernel;
mod mm;
mod process;
mod task;
mod time;
mod vm;
mod wait;

pub use dma::{DEFAULT_MAX_SEG_SIZE, DmaCoherent, PinnedPages};
pub use errno::{Errno, KResult};
pub use file::{File, FileOps, OpenFlags, Prot, Whence};
pub use irq::{IrqHandler, IrqStat, MsiMessage};
pub use kernel::{CharDevice, Kernel, MapFlags, PollFd};
pub use mm::{FrameAllocator, page_align};
pub use process::{Fd, FdReservation, NOFILE, Pid, Process};
pub use task::Task;
pub use time::{ktime_get_ns, ktime_to_instant};
pub use vm::{UserPtr, slice_extents};
pub use wait::{PollMask, PollTable, Poller, WaitQueue, lock};
