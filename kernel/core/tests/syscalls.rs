//! The system calls of the kernel core: fd tables, file lifetime, fork/exit/fd passing,
//! ioctl dispatch and user pointers, user memory, poll and mmap.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use sagrada_hw_fabric::Fabric;
use sagrada_kernel_core::ioctl::iowr;
use sagrada_kernel_core::{
    CharDevice, Errno, File, FileOps, KResult, Kernel, MapFlags, NOFILE, OpenFlags, PollFd,
    PollMask, PollTable, Prot, Task, UserPtr, WaitQueue,
};
use sagrada_sys::Process;

/// `_IOWR('t', 1, u32)`: adds one to the argument and returns the caller's pid.
const TEST_IOC_INC: u32 = iowr::<u32>(b't', 1);

#[derive(Default)]
struct Shared {
    releases: AtomicUsize,
    ready: AtomicBool,
    queue: WaitQueue,
}

struct TestDevice(Arc<Shared>);

struct TestFile(Arc<Shared>);

impl CharDevice for TestDevice {
    fn open(&self, _task: &Task<'_>, flags: OpenFlags) -> KResult<Arc<File>> {
        Ok(File::new(Arc::new(TestFile(self.0.clone())), flags))
    }
}

impl FileOps for TestFile {
    fn name(&self, _file: &File) -> String {
        "/dev/test".to_owned()
    }
    fn ioctl(&self, task: &Task<'_>, _file: &Arc<File>, cmd: u32, arg: u64) -> KResult<i64> {
        if cmd != TEST_IOC_INC {
            return Err(Errno::ENOTTY);
        }
        let v: u32 = task.read_obj(UserPtr(arg))?;
        task.write_obj(UserPtr(arg), &(v + 1))?;
        Ok(i64::from(task.pid()))
    }
    fn poll(
        &self,
        _file: &Arc<File>,
        table: Option<&PollTable<'_>>,
        _events: PollMask,
    ) -> PollMask {
        if let Some(t) = table {
            t.wait(&self.0.queue);
        }
        if self.0.ready.load(Ordering::SeqCst) {
            PollMask::IN
        } else {
            PollMask::empty()
        }
    }
    fn release(&self, _file: &File) {
        self.0.releases.fetch_add(1, Ordering::SeqCst);
    }
}

/// A file type that implements nothing optional.
struct Bare;
impl FileOps for Bare {
    fn name(&self, _file: &File) -> String {
        "bare".to_owned()
    }
}
impl CharDevice for Bare {
    fn open(&self, _task: &Task<'_>, flags: OpenFlags) -> KResult<Arc<File>> {
        Ok(File::new(Arc::new(Bare), flags))
    }
}

fn setup() -> (Arc<Kernel>, Arc<Shared>) {
    let kernel = Kernel::new(Fabric::default_machine().unwrap());
    let shared = Arc::new(Shared::default());
    kernel
        .register_device("/dev/test", Arc::new(TestDevice(shared.clone())))
        .unwrap();
    kernel.register_device("/dev/bare", Arc::new(Bare)).unwrap();
    (kernel, shared)
}

#[test]
fn fds_are_allocated_lowest_first() {
    let (kernel, _) = setup();
    let p = Process::spawn(&kernel, "t");
    let a = p.open("/dev/test", OpenFlags::RDWR).unwrap();
    let b = p.open("/dev/test", OpenFlags::RDWR).unwrap();
    let c = p.open("/dev/test", OpenFlags::RDWR).unwrap();
    assert_eq!((a, b, c), (0, 1, 2));
    p.close(b).unwrap();
    assert_eq!(p.open("/dev/test", OpenFlags::RDWR).unwrap(), 1);
}

#[test]
fn bad_fds_are_ebadf() {
    let (kernel, _) = setup();
    let p = Process::spawn(&kernel, "t");
    let fd = p.open("/dev/test", OpenFlags::RDWR).unwrap();
    p.close(fd).unwrap();
    assert_eq!(p.close(fd), Err(Errno::EBADF));
    assert_eq!(p.close(-1), Err(Errno::EBADF));
    assert_eq!(p.close(NOFILE as i32), Err(Errno::EBADF));
    assert_eq!(p.ioctl(fd, TEST_IOC_INC, 0), Err(Errno::EBADF));
    assert_eq!(p.dup(fd), Err(Errno::EBADF));
}

#[test]
fn the_fd_table_is_limited_to_nofile() {
    let (kernel, _) = setup();
    let p = Process::spawn(&kernel, "t");
    let first = p.open("/dev/bare", OpenFlags::RDONLY).unwrap();
    for _ in 1..NOFILE {
        p.dup(first).unwrap();
    }
    assert_eq!(p.dup(first), Err(Errno::EMFILE));
    assert_eq!(p.open("/dev/bare", OpenFlags::RDONLY), Err(Errno::EMFILE));
}

#[test]
fn a_file_is_released_when_its_last_fd_closes() {
    let (kernel, shared) = setup();
    let p = Process::spawn(&kernel, "t");
    let fd = p.open("/dev/test", OpenFlags::RDWR).unwrap();
    let copy = p.dup(fd).unwrap();
    p.close(fd).unwrap();
    assert_eq!(shared.releases.load(Ordering::SeqCst), 0);
    p.close(copy).unwrap();
    assert_eq!(shared.releases.load(Ordering::SeqCst), 1);
}

#[test]
fn dup3_replaces_and_refuses_bad_arguments() {
    let (kernel, shared) = setup();
    let p = Process::spawn(&kernel, "t");
    let a = p.open("/dev/test", OpenFlags::RDWR).unwrap();
    let b = p.open("/dev/test", OpenFlags::RDWR).unwrap();
    assert_eq!(
        kernel.dup3(p.pid(), a, a, OpenFlags::CLOEXEC),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        kernel.dup3(p.pid(), a, b, OpenFlags::NONBLOCK),
        Err(Errno::EINVAL)
    );
    assert_eq!(kernel.dup3(p.pid(), a, b, OpenFlags::CLOEXEC), Ok(b));
    assert_eq!(
        shared.releases.load(Ordering::SeqCst),
        1,
        "the file at b was closed"
    );
    assert!(
        p.fdinfo(b).unwrap().contains("flags:\t02000002\n"),
        "{}",
        p.fdinfo(b).unwrap()
    );
    assert_eq!(
        kernel.dup3(p.pid(), a, NOFILE as i32, OpenFlags::default()),
        Err(Errno::EBADF)
    );
}

#[test]
fn fork_shares_files_and_copies_private_memory() {
    let (kernel, shared) = setup();
    let parent = Process::spawn(&kernel, "parent");
    let fd = parent.open("/dev/test", OpenFlags::RDWR).unwrap();
    let mem = parent.mmap_anon(8192).unwrap();
    parent.write_mem(mem, b"before fork").unwrap();
    let child = parent.fork().unwrap();
    child.write_mem(mem, b"child wrote").unwrap();
    let mut seen = [0u8; 11];
    parent.read_mem(mem, &mut seen).unwrap();
    assert_eq!(&seen, b"before fork");
    child.read_mem(mem, &mut seen).unwrap();
    assert_eq!(&seen, b"child wrote");
    parent.close(fd).unwrap();
    assert_eq!(
        shared.releases.load(Ordering::SeqCst),
        0,
        "the child still holds the file"
    );
    child.exit().unwrap();
    assert_eq!(shared.releases.load(Ordering::SeqCst), 1);
}

#[test]
fn a_passed_fd_refers_to_the_same_file() {
    let (kernel, shared) = setup();
    let a = Process::spawn(&kernel, "a");
    let b = Process::spawn(&kernel, "b");
    let fd = a.open("/dev/test", OpenFlags::RDWR).unwrap();
    let theirs = a.send_fd(fd, &b).unwrap();
    let a_pid = a.pid();
    a.exit().unwrap();
    assert_eq!(shared.releases.load(Ordering::SeqCst), 0);
    let mut v = 41u32;
    assert_eq!(
        b.ioctl_with(theirs, TEST_IOC_INC, &mut v),
        Ok(i64::from(b.pid()))
    );
    assert_eq!(v, 42);
    assert_eq!(
        kernel.send_fd(a_pid, 0, b.pid(), false),
        Err(Errno::ESRCH),
        "a has exited"
    );
}

#[test]
fn ioctl_pointers_are_checked() {
    let (kernel, _) = setup();
    let p = Process::spawn(&kernel, "t");
    let fd = p.open("/dev/test", OpenFlags::RDWR).unwrap();
    assert_eq!(p.ioctl(fd, TEST_IOC_INC, 0), Err(Errno::EFAULT));
    let ro = p.mmap_anon(4096).unwrap();
    p.munmap(ro, 4096).unwrap();
    assert_eq!(
        p.ioctl(fd, TEST_IOC_INC, ro.0),
        Err(Errno::EFAULT),
        "unmapped memory"
    );
    let bare = p.open("/dev/bare", OpenFlags::RDONLY).unwrap();
    assert_eq!(p.ioctl(bare, TEST_IOC_INC, 0), Err(Errno::ENOTTY));
}

#[test]
fn user_memory_obeys_protection_and_is_freed() {
    let (kernel, _) = setup();
    let free = kernel.frames().free_bytes();
    let p = Process::spawn(&kernel, "t");
    let rw = p.mmap_anon(3 * 4096).unwrap();
    assert_eq!(kernel.frames().free_bytes(), free - 3 * 4096);
    p.write_mem(rw.checked_add(4090).unwrap(), b"straddles a page")
        .unwrap();
    let ro = kernel
        .mmap(
            p.pid(),
            4096,
            Prot::READ,
            MapFlags::PRIVATE | MapFlags::ANONYMOUS,
            -1,
            0,
        )
        .unwrap();
    assert_eq!(p.write_mem(ro, b"x"), Err(Errno::EFAULT));
    let mut fresh = [1u8; 8];
    p.read_mem(ro, &mut fresh).unwrap();
    assert_eq!(fresh, [0; 8], "new memory is zeroed");
    assert_eq!(p.read_mem(UserPtr::NULL, &mut fresh), Err(Errno::EFAULT));
    p.exit().unwrap();
    assert_eq!(kernel.frames().free_bytes(), free);
}

#[test]
fn mmap_refuses_bad_requests() {
    let (kernel, _) = setup();
    let p = Process::spawn(&kernel, "t");
    let fd = p.open("/dev/test", OpenFlags::RDONLY).unwrap();
    let anon = MapFlags::PRIVATE | MapFlags::ANONYMOUS;
    assert_eq!(
        kernel.mmap(p.pid(), 0, Prot::READ, anon, -1, 0),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        kernel.mmap(p.pid(), 4096, Prot::READ, anon, -1, 1),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        kernel.mmap(p.pid(), 4096, Prot(8), anon, -1, 0),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        kernel.mmap(
            p.pid(),
            4096,
            Prot::READ,
            MapFlags::SHARED | MapFlags::ANONYMOUS,
            -1,
            0
        ),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        kernel.mmap(p.pid(), 4096, Prot::READ, MapFlags::ANONYMOUS, -1, 0),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        p.mmap(fd, 4096, Prot::READ, MapFlags::SHARED, 0),
        Err(Errno::ENODEV)
    );
    assert_eq!(
        p.mmap(fd, 4096, Prot::READ_WRITE, MapFlags::SHARED, 0),
        Err(Errno::EACCES)
    );
    assert_eq!(
        p.mmap(99, 4096, Prot::READ, MapFlags::SHARED, 0),
        Err(Errno::EBADF)
    );
}

#[test]
fn read_with_a_bad_buffer_is_efault() {
    let (kernel, _) = setup();
    let p = Process::spawn(&kernel, "t");
    let fd = p.open("/dev/bare", OpenFlags::RDONLY).unwrap();
    assert_eq!(
        kernel.read(p.pid(), fd, UserPtr::NULL, 16),
        Err(Errno::EFAULT)
    );
    assert_eq!(p.read(fd, 16), Err(Errno::EINVAL), "a file without read");
    assert_eq!(p.lseek(fd, 0, 0), Err(Errno::ESPIPE));
    assert_eq!(p.lseek(fd, 0, 7), Err(Errno::EINVAL));
}

#[test]
fn poll_reports_nval_ignores_negative_fds_and_times_out() {
    let (kernel, _) = setup();
    let p = Process::spawn(&kernel, "t");
    let fd = p.open("/dev/test", OpenFlags::RDWR).unwrap();
    let mut fds = [
        PollFd::new(fd, PollMask::IN),
        PollFd::new(-1, PollMask::IN),
        PollFd::new(77, PollMask::IN),
    ];
    assert_eq!(p.poll(&mut fds, 0), Ok(1));
    assert_eq!(
        fds.map(|f| f.revents),
        [PollMask::empty(), PollMask::empty(), PollMask::NVAL]
    );
    let mut one = [PollFd::new(fd, PollMask::IN)];
    assert_eq!(p.poll(&mut one, 1), Ok(0));
    let bare = p.open("/dev/bare", OpenFlags::RDONLY).unwrap();
    let mut default = [PollFd::new(bare, PollMask::IN | PollMask::OUT)];
    assert_eq!(p.poll(&mut default, 0), Ok(1));
    assert_eq!(default[0].revents, PollMask::IN | PollMask::OUT);
}

#[test]
fn poll_wakes_when_the_file_becomes_ready() {
    let (kernel, shared) = setup();
    let p = Arc::new(Process::spawn(&kernel, "t"));
    let fd = p.open("/dev/test", OpenFlags::RDWR).unwrap();
    let waiter = {
        let p = p.clone();
        std::thread::spawn(move || {
            let mut fds = [PollFd::new(fd, PollMask::IN)];
            p.poll(&mut fds, -1).map(|n| (n, fds[0].revents))
        })
    };
    shared.ready.store(true, Ordering::SeqCst);
    shared.queue.wake_up_all();
    assert_eq!(waiter.join().unwrap(), Ok((1, PollMask::IN)));
}

#[test]
fn paths_and_processes_must_exist() {
    let (kernel, _) = setup();
    let p = Process::spawn(&kernel, "a-process-name-longer-than-comm");
    assert_eq!(
        p.open("/dev/nothing", OpenFlags::RDONLY),
        Err(Errno::ENOENT)
    );
    assert_eq!(
        kernel.register_device("/dev/test", Arc::new(Bare)),
        Err(Errno::EEXIST)
    );
    assert_eq!(
        kernel.open(9999, "/dev/test", OpenFlags::RDONLY),
        Err(Errno::ESRCH)
    );
    assert_eq!(
        kernel.with_task(p.pid(), |t| Ok(t.comm().to_owned())),
        Ok("a-process-name-".to_owned())
    );
    assert_eq!(kernel.fork(9999).unwrap_err(), Errno::ESRCH);
}

#[test]
fn a_reserved_fd_is_skipped_until_installed_or_given_back() {
    let (kernel, _) = setup();
    let p = Process::spawn(&kernel, "t");
    let first = p.open("/dev/bare", OpenFlags::RDONLY).unwrap();
    kernel
        .with_task(p.pid(), |t| {
            let reserved = t.reserve_fd(true)?;
            assert_eq!(reserved.fd(), 1);
            assert_eq!(p.open("/dev/bare", OpenFlags::RDONLY), Ok(2));
            assert_eq!(
                kernel.dup3(p.pid(), first, 1, OpenFlags::RDONLY),
                Err(Errno::EBUSY),
                "dup3 onto a reserved number"
            );
            assert_eq!(p.close(1), Err(Errno::EBADF));
            let forked = p.fork()?;
            assert_eq!(
                kernel.fds(forked.pid())?,
                vec![0, 2],
                "a child gets no reservation"
            );
            assert_eq!(reserved.install(t.fget(first)?), 1);

            let given_back = t.reserve_fd(false)?;
            assert_eq!(given_back.fd(), 3);
            drop(given_back);
            Ok(())
        })
        .unwrap();
    assert_eq!(p.open("/dev/bare", OpenFlags::RDONLY), Ok(3));
    assert!(
        p.fdinfo(1).unwrap().contains("flags:\t02000000\n"),
        "installed close-on-exec, as reserved"
    );

    for _ in 4..NOFILE {
        p.dup(first).unwrap();
    }
    let full = kernel.with_task(p.pid(), |t| t.reserve_fd(false).map(|r| r.fd()));
    assert_eq!(full, Err(Errno::EMFILE));
}
