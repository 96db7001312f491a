//! The dma-buf core: export, references and release, static and dynamic attachments,
//! the locking convention, pinning, move_notify, CPU access and vmap, and the rules of
//! the dma-buf fd uAPI (SYNC, SET_NAME, EXPORT/IMPORT_SYNC_FILE, poll, llseek, mmap,
//! fdinfo, bufinfo).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sagrada_hw_fabric::{DeviceId, DmaDirection, Fabric, Iova, PAGE_SIZE, PhysRange};
use sagrada_kernel_core::{Errno, KResult, Kernel, MapFlags, OpenFlags, PollFd, PollMask, Prot};
use sagrada_kernel_dmabuf::uapi::*;
use sagrada_kernel_dmabuf::{
    Attachment, DmaBuf, DmaBufOps, DmaBufRegistry, DmaFence, ExportInfo, ImporterOps, NamedOps,
    PinOps, ResvGuard, SgEntry, SgTable, SyncFile, Usage, VMap, VmapOps, context_alloc,
};
use sagrada_sys::Process;

fn machine() -> (Arc<Kernel>, Arc<DmaBufRegistry>) {
    let kernel = Kernel::new(Fabric::default_machine().expect("default machine"));
    let registry = sagrada_kernel_dmabuf::install(&kernel).expect("install dma-buf");
    (kernel, registry)
}

fn dev(kernel: &Kernel, name: &str) -> DeviceId {
    kernel
        .fabric()
        .find(name)
        .expect("device in the default machine")
}

/// What the mock exporter saw.
#[derive(Default, Debug)]
struct Calls {
    attach: AtomicUsize,
    detach: AtomicUsize,
    map: AtomicUsize,
    unmap: AtomicUsize,
    pin: AtomicUsize,
    unpin: AtomicUsize,
    release: AtomicUsize,
    vmap: AtomicUsize,
    vunmap: AtomicUsize,
}

/// A mock exporter: dynamic when `dynamic`, refuses peer-to-peer when `no_p2p`.
struct Mock {
    calls: Arc<Calls>,
    dynamic: bool,
    no_p2p: bool,
}

impl DmaBufOps for Mock {
    fn map_dma_buf(&self, attach: &Attachment, _dir: DmaDirection) -> KResult<SgTable> {
        self.calls.map.fetch_add(1, Ordering::SeqCst);
        Ok(SgTable::new(vec![SgEntry {
            dma_addr: Iova(0x1000_0000),
            len: attach.buffer_size(),
        }]))
    }
    fn unmap_dma_buf(&self, _attach: &Attachment, _sgt: SgTable, _dir: DmaDirection) {
        self.calls.unmap.fetch_add(1, Ordering::SeqCst);
    }
    fn release(&self) {
        self.calls.release.fetch_add(1, Ordering::SeqCst);
    }
    fn attach(&self, attach: &Attachment) -> KResult<()> {
        self.calls.attach.fetch_add(1, Ordering::SeqCst);
        if self.no_p2p {
            attach.set_peer2peer(false);
        }
        Ok(())
    }
    fn detach(&self, _attach: &Attachment) {
        self.calls.detach.fetch_add(1, Ordering::SeqCst);
    }
    fn pin_ops(&self) -> Option<&dyn PinOps> {
        self.dynamic.then_some(self as &dyn PinOps)
    }
    fn vmap_ops(&self) -> Option<&dyn VmapOps> {
        Some(self)
    }
}

impl PinOps for Mock {
    fn pin(&self, _attach: &Attachment) -> KResult<()> {
        self.calls.pin.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    fn unpin(&self, _attach: &Attachment) {
        self.calls.unpin.fetch_add(1, Ordering::SeqCst);
    }
}

impl VmapOps for Mock {
    fn vmap(&self) -> KResult<VMap> {
        self.calls.vmap.fetch_add(1, Ordering::SeqCst);
        Ok(VMap {
            extents: vec![PhysRange {
                start: sagrada_hw_fabric::PhysAddr(0x20_0000),
                len: PAGE_SIZE,
            }],
        })
    }
    fn vunmap(&self, _map: &VMap) {
        self.calls.vunmap.fetch_add(1, Ordering::SeqCst);
    }
}

fn export_mock(
    registry: &Arc<DmaBufRegistry>,
    dynamic: bool,
    no_p2p: bool,
) -> (DmaBuf, Arc<Calls>) {
    let calls = Arc::new(Calls::default());
    let buf = registry
        .export(ExportInfo {
            exp_name: "mock".into(),
            ops: Box::new(Mock {
                calls: calls.clone(),
                dynamic,
                no_p2p,
            }),
            size: 4 * PAGE_SIZE,
            flags: OpenFlags::RDWR,
            resv: None,
        })
        .unwrap();
    (buf, calls)
}

/// A dynamic importer that records move notifications.
struct Importer {
    p2p: bool,
    moves: AtomicUsize,
}

impl ImporterOps for Importer {
    fn allow_peer2peer(&self) -> bool {
        self.p2p
    }
    fn move_notify(&self, _attach: &Attachment, guard: &ResvGuard<'_>) {
        assert!(guard.resv().is_held_by_current_thread());
        self.moves.fetch_add(1, Ordering::SeqCst);
    }
}

fn add_fence(buf: &DmaBuf, usage: Usage) -> DmaFence {
    let f = DmaFence::new(NamedOps::new("test", "test"), context_alloc(1), 1);
    let guard = buf.resv().lock(None).unwrap();
    guard.reserve_fences(1).unwrap();
    guard.add_fence(f.clone(), usage);
    f
}

#[test]
fn export_refuses_an_empty_name_or_size() {
    let (_k, registry) = machine();
    let calls = Arc::new(Calls::default());
    let info = |name: &str, size| ExportInfo {
        exp_name: name.into(),
        ops: Box::new(Mock {
            calls: calls.clone(),
            dynamic: false,
            no_p2p: false,
        }),
        size,
        flags: OpenFlags::RDWR,
        resv: None,
    };
    assert_eq!(registry.export(info("", 4096)).unwrap_err(), Errno::EINVAL);
    assert_eq!(registry.export(info("x", 0)).unwrap_err(), Errno::EINVAL);
}

#[test]
fn release_runs_once_after_the_last_fd_and_reference() {
    let (kernel, registry) = machine();
    let p = Process::spawn(&kernel, "t");
    let (buf, calls) = export_mock(&registry, false, false);
    let fd = kernel
        .with_task(p.pid(), |t| buf.fd(t, OpenFlags::CLOEXEC))
        .unwrap();
    let fd2 = p.dup(fd).unwrap();
    drop(buf);
    p.close(fd).unwrap();
    assert_eq!(
        calls.release.load(Ordering::SeqCst),
        0,
        "a dup still holds the buffer"
    );
    let got = kernel.with_task(p.pid(), |t| DmaBuf::get(t, fd2)).unwrap();
    p.close(fd2).unwrap();
    assert_eq!(
        calls.release.load(Ordering::SeqCst),
        0,
        "dma_buf_get holds a reference"
    );
    drop(got);
    assert_eq!(calls.release.load(Ordering::SeqCst), 1);
    assert!(registry.buffers().is_empty());
}

#[test]
fn dma_buf_get_refuses_bad_and_foreign_fds() {
    let (kernel, _registry) = machine();
    let p = Process::spawn(&kernel, "t");
    assert_eq!(
        kernel
            .with_task(p.pid(), |t| DmaBuf::get(t, -1))
            .unwrap_err(),
        Errno::EBADF
    );
    let tl = p.open(SW_SYNC_PATH, OpenFlags::RDWR).unwrap();
    assert_eq!(
        kernel
            .with_task(p.pid(), |t| DmaBuf::get(t, tl))
            .unwrap_err(),
        Errno::EINVAL
    );
}

#[test]
fn static_importers_never_get_peer2peer_and_the_exporter_can_refuse_it() {
    let (kernel, registry) = machine();
    let nic = dev(&kernel, "nic0");
    let (buf, calls) = export_mock(&registry, false, false);
    let s = buf.attach(nic).unwrap();
    assert!(!s.is_dynamic() && !s.peer2peer());
    let d = buf
        .dynamic_attach(
            nic,
            Arc::new(Importer {
                p2p: true,
                moves: AtomicUsize::new(0),
            }),
        )
        .unwrap();
    assert!(d.is_dynamic() && d.peer2peer());
    let (refusing, _) = export_mock(&registry, false, true);
    let r = refusing
        .dynamic_attach(
            nic,
            Arc::new(Importer {
                p2p: true,
                moves: AtomicUsize::new(0),
            }),
        )
        .unwrap();
    assert!(!r.peer2peer(), "the exporter cleared peer2peer in attach");
    assert_eq!(buf.attached_devices(), vec![nic, nic]);
    buf.detach(s).unwrap();
    buf.detach(d).unwrap();
    assert_eq!(calls.attach.load(Ordering::SeqCst), 2);
    assert_eq!(calls.detach.load(Ordering::SeqCst), 2);
    assert!(buf.attached_devices().is_empty());
}

#[test]
fn map_needs_this_buffers_lock_and_attach_must_not_hold_it() {
    let (kernel, registry) = machine();
    let nic = dev(&kernel, "nic0");
    let (buf, _) = export_mock(&registry, false, false);
    let (other, _) = export_mock(&registry, false, false);
    let attach = buf.attach(nic).unwrap();
    {
        let wrong = other.resv().lock(None).unwrap();
        assert_eq!(
            buf.map_attachment(&wrong, &attach, DmaDirection::Bidirectional)
                .unwrap_err(),
            Errno::EINVAL
        );
    }
    let guard = buf.resv().lock(None).unwrap();
    assert_eq!(buf.attach(nic).unwrap_err(), Errno::EDEADLK);
    assert_eq!(
        buf.map_attachment_unlocked(&attach, DmaDirection::Bidirectional)
            .unwrap_err(),
        Errno::EDEADLK
    );
    assert_eq!(
        buf.begin_cpu_access(DmaDirection::FromDevice).unwrap_err(),
        Errno::EDEADLK
    );
    let sgt = buf
        .map_attachment(&guard, &attach, DmaDirection::Bidirectional)
        .unwrap();
    assert_eq!(sgt.len(), buf.size());
    buf.unmap_attachment(&guard, &attach, sgt, DmaDirection::Bidirectional)
        .unwrap();
    drop(guard);
    let foreign = other.attach(nic).unwrap();
    let guard = buf.resv().lock(None).unwrap();
    assert_eq!(
        buf.map_attachment(&guard, &foreign, DmaDirection::Bidirectional)
            .unwrap_err(),
        Errno::EINVAL
    );
}

#[test]
fn a_static_importer_of_a_dynamic_exporter_pins_for_the_mapping() {
    let (kernel, registry) = machine();
    let nic = dev(&kernel, "nic0");
    let (buf, calls) = export_mock(&registry, true, false);
    assert!(buf.is_dynamic());
    let attach = buf.attach(nic).unwrap();
    let sgt = buf
        .map_attachment_unlocked(&attach, DmaDirection::ToDevice)
        .unwrap();
    assert_eq!(
        (
            calls.pin.load(Ordering::SeqCst),
            calls.unpin.load(Ordering::SeqCst)
        ),
        (1, 0)
    );
    buf.unmap_attachment_unlocked(&attach, sgt, DmaDirection::ToDevice)
        .unwrap();
    assert_eq!(
        (
            calls.pin.load(Ordering::SeqCst),
            calls.unpin.load(Ordering::SeqCst)
        ),
        (1, 1)
    );

    let dynamic = buf
        .dynamic_attach(
            nic,
            Arc::new(Importer {
                p2p: false,
                moves: AtomicUsize::new(0),
            }),
        )
        .unwrap();
    let sgt = buf
        .map_attachment_unlocked(&dynamic, DmaDirection::ToDevice)
        .unwrap();
    assert_eq!(
        calls.pin.load(Ordering::SeqCst),
        1,
        "a dynamic importer is not pinned by map"
    );
    buf.unmap_attachment_unlocked(&dynamic, sgt, DmaDirection::ToDevice)
        .unwrap();
}

#[test]
fn pin_is_for_dynamic_importers_only() {
    let (kernel, registry) = machine();
    let nic = dev(&kernel, "nic0");
    let (buf, calls) = export_mock(&registry, true, false);
    let s = buf.attach(nic).unwrap();
    let d = buf
        .dynamic_attach(
            nic,
            Arc::new(Importer {
                p2p: false,
                moves: AtomicUsize::new(0),
            }),
        )
        .unwrap();
    let guard = buf.resv().lock(None).unwrap();
    assert_eq!(buf.pin(&guard, &s).unwrap_err(), Errno::EINVAL);
    buf.pin(&guard, &d).unwrap();
    buf.unpin(&guard, &d).unwrap();
    assert_eq!(
        (
            calls.pin.load(Ordering::SeqCst),
            calls.unpin.load(Ordering::SeqCst)
        ),
        (1, 1)
    );
}

#[test]
fn move_notify_reaches_dynamic_importers_under_the_lock() {
    let (kernel, registry) = machine();
    let nic = dev(&kernel, "nic0");
    let (buf, _) = export_mock(&registry, true, false);
    let importer = Arc::new(Importer {
        p2p: true,
        moves: AtomicUsize::new(0),
    });
    let _d = buf.dynamic_attach(nic, importer.clone()).unwrap();
    let _s = buf.attach(nic).unwrap();
    let (other, _) = export_mock(&registry, true, false);
    let wrong = other.resv().lock(None).unwrap();
    assert_eq!(buf.move_notify(&wrong).unwrap_err(), Errno::EINVAL);
    drop(wrong);
    let guard = buf.resv().lock(None).unwrap();
    buf.move_notify(&guard).unwrap();
    assert_eq!(importer.moves.load(Ordering::SeqCst), 1);
}

#[test]
fn a_static_importer_map_waits_for_kernel_fences() {
    let (kernel, registry) = machine();
    let nic = dev(&kernel, "nic0");
    let (buf, _) = export_mock(&registry, false, false);
    let attach = buf.attach(nic).unwrap();
    let fence = add_fence(&buf, Usage::Kernel);
    let signaller = {
        let fence = fence.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            fence.signal();
        })
    };
    let sgt = buf
        .map_attachment_unlocked(&attach, DmaDirection::FromDevice)
        .unwrap();
    assert!(
        fence.is_signaled(),
        "map returned before the kernel fence signalled"
    );
    buf.unmap_attachment_unlocked(&attach, sgt, DmaDirection::FromDevice)
        .unwrap();
    signaller.join().unwrap();
}

#[test]
fn vmap_is_counted_and_shared() {
    let (_kernel, registry) = machine();
    let (buf, calls) = export_mock(&registry, false, false);
    let guard = buf.resv().lock(None).unwrap();
    let a = buf.vmap(&guard).unwrap();
    let b = buf.vmap(&guard).unwrap();
    assert_eq!(a, b);
    assert_eq!(calls.vmap.load(Ordering::SeqCst), 1);
    buf.vunmap(&guard, &a).unwrap();
    assert_eq!(calls.vunmap.load(Ordering::SeqCst), 0);
    buf.vunmap(&guard, &b).unwrap();
    assert_eq!(calls.vunmap.load(Ordering::SeqCst), 1);
    assert_eq!(buf.vunmap(&guard, &a).unwrap_err(), Errno::EINVAL);
}

#[test]
fn begin_cpu_access_waits_for_conflicting_fences_only() {
    let (_kernel, registry) = machine();
    let (buf, _) = export_mock(&registry, false, false);
    let read = add_fence(&buf, Usage::Read);
    // A CPU read does not conflict with a device read.
    buf.begin_cpu_access(DmaDirection::FromDevice).unwrap();
    let signaller = {
        let read = read.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            read.signal();
        })
    };
    // A CPU write waits for it.
    buf.begin_cpu_access(DmaDirection::ToDevice).unwrap();
    assert!(read.is_signaled());
    signaller.join().unwrap();
}

/// A process with a system-heap buffer of `pages` pages.
fn heap_buffer(kernel: &Arc<Kernel>, pages: u64) -> (Process, i32) {
    let p = Process::spawn(kernel, "heap-user");
    let heap = p.open(DMA_HEAP_SYSTEM_PATH, OpenFlags::RDWR).unwrap();
    let mut req = DmaHeapAllocationData {
        len: pages * PAGE_SIZE,
        fd_flags: (OpenFlags::RDWR.0 | OpenFlags::CLOEXEC.0),
        ..Default::default()
    };
    p.ioctl_with(heap, DMA_HEAP_IOCTL_ALLOC, &mut req).unwrap();
    p.close(heap).unwrap();
    (p, req.fd as i32)
}

#[test]
fn sync_ioctl_flag_rules() {
    let (kernel, _) = machine();
    let (p, fd) = heap_buffer(&kernel, 1);
    let sync = |flags| p.ioctl_with(fd, DMA_BUF_IOCTL_SYNC, &mut DmaBufSync { flags });
    assert_eq!(sync(DMA_BUF_SYNC_START | DMA_BUF_SYNC_RW), Ok(0));
    assert_eq!(sync(DMA_BUF_SYNC_END | DMA_BUF_SYNC_RW), Ok(0));
    assert_eq!(sync(DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ), Ok(0));
    assert_eq!(sync(DMA_BUF_SYNC_END | DMA_BUF_SYNC_WRITE), Ok(0));
    assert_eq!(sync(DMA_BUF_SYNC_START), Err(Errno::EINVAL), "no direction");
    assert_eq!(
        sync(DMA_BUF_SYNC_RW | 8),
        Err(Errno::EINVAL),
        "undefined bit"
    );
    assert_eq!(p.ioctl(fd, DMA_BUF_IOCTL_SYNC, 0), Err(Errno::EFAULT));
    assert_eq!(p.ioctl(fd, 0x6299, 0), Err(Errno::ENOTTY));
}

#[test]
fn set_name_takes_up_to_31_characters() {
    let (kernel, _) = machine();
    let (p, fd) = heap_buffer(&kernel, 1);
    let ok = "a".repeat(31);
    assert_eq!(
        p.ioctl(fd, DMA_BUF_SET_NAME, p.alloc_cstr(&ok).unwrap().0),
        Ok(0)
    );
    assert_eq!(p.fd_name(fd).unwrap(), format!("/dmabuf:{ok}"));
    assert!(p.fdinfo(fd).unwrap().contains(&format!("name:\t{ok}\n")));
    let long = "b".repeat(32);
    assert_eq!(
        p.ioctl(fd, DMA_BUF_SET_NAME_A, p.alloc_cstr(&long).unwrap().0),
        Err(Errno::EINVAL)
    );
    assert_eq!(p.ioctl(fd, DMA_BUF_SET_NAME, 8), Err(Errno::EFAULT));
    assert!(
        p.fdinfo(fd).unwrap().contains(&format!("name:\t{ok}\n")),
        "a failed SET_NAME keeps the old name"
    );
}

#[test]
fn fdinfo_and_llseek_report_the_size() {
    let (kernel, _) = machine();
    let (p, fd) = heap_buffer(&kernel, 3);
    let info = p.fdinfo(fd).unwrap();
    assert!(
        info.contains("size:\t12288\n")
            && info.contains("count:\t1\n")
            && info.contains("exp_name:\tsystem\n"),
        "{info}"
    );
    assert_eq!(p.lseek(fd, 0, 2), Ok(3 * PAGE_SIZE));
    assert_eq!(p.lseek(fd, 0, 0), Ok(0));
    assert_eq!(p.lseek(fd, 0, 1), Err(Errno::EINVAL));
    assert_eq!(p.lseek(fd, 1, 2), Err(Errno::EINVAL));
}

#[test]
fn mmap_is_bounded_by_the_buffer() {
    let (kernel, _) = machine();
    let (p, fd) = heap_buffer(&kernel, 2);
    let rw = Prot::READ_WRITE;
    let map = p.mmap(fd, 2 * PAGE_SIZE, rw, MapFlags::SHARED, 0).unwrap();
    p.write_mem(map, b"through the mapping").unwrap();
    assert_eq!(
        p.mmap(fd, 2 * PAGE_SIZE, rw, MapFlags::SHARED, PAGE_SIZE)
            .unwrap_err(),
        Errno::EINVAL
    );
    let second = p
        .mmap(fd, PAGE_SIZE, rw, MapFlags::SHARED, PAGE_SIZE)
        .unwrap();
    p.write_mem(second, b"page two").unwrap();
    let mut out = [0u8; 8];
    p.read_mem(map.checked_add(PAGE_SIZE).unwrap(), &mut out)
        .unwrap();
    assert_eq!(&out, b"page two");
}

#[test]
fn export_sync_file_snapshots_the_conflicting_fences() {
    let (kernel, _) = machine();
    let (p, fd) = heap_buffer(&kernel, 1);
    let buf = kernel.with_task(p.pid(), |t| DmaBuf::get(t, fd)).unwrap();
    let export = |flags: u64| {
        let mut req = DmaBufExportSyncFile {
            flags: flags as u32,
            fd: -1,
        };
        p.ioctl_with(fd, DMA_BUF_IOCTL_EXPORT_SYNC_FILE, &mut req)
            .map(|_| req.fd)
    };
    assert_eq!(export(0), Err(Errno::EINVAL));
    assert_eq!(
        export(DMA_BUF_SYNC_RW | DMA_BUF_SYNC_END),
        Err(Errno::EINVAL)
    );
    // No fences: the signalled stub.
    let idle = export(DMA_BUF_SYNC_WRITE).unwrap();
    assert!(
        SyncFile::fence_of(&kernel.fget(p.pid(), idle).unwrap())
            .unwrap()
            .is_signaled()
    );
    let reading = add_fence(&buf, Usage::Read);
    let for_read = export(DMA_BUF_SYNC_READ).unwrap();
    let for_write = export(DMA_BUF_SYNC_WRITE).unwrap();
    let fence_of = |fd| SyncFile::fence_of(&kernel.fget(p.pid(), fd).unwrap()).unwrap();
    assert!(
        fence_of(for_read).is_signaled(),
        "a read does not wait for readers"
    );
    assert!(
        DmaFence::ptr_eq(&fence_of(for_write), &reading),
        "a write waits for the reader"
    );
    // Fences added later are not in an exported snapshot.
    let later = add_fence(&buf, Usage::Write);
    reading.signal();
    assert!(fence_of(for_write).is_signaled());
    assert!(!later.is_signaled());
}

#[test]
fn import_sync_file_adds_each_leaf_with_the_requested_usage() {
    let (kernel, _) = machine();
    let (p, fd) = heap_buffer(&kernel, 1);
    let buf = kernel.with_task(p.pid(), |t| DmaBuf::get(t, fd)).unwrap();
    let tl = p.open(SW_SYNC_PATH, OpenFlags::RDWR).unwrap();
    let fence_fd = |value| {
        let mut d = SwSyncCreateFenceData {
            value,
            ..Default::default()
        };
        p.ioctl_with(tl, SW_SYNC_IOC_CREATE_FENCE, &mut d).unwrap();
        d.fence
    };
    let (a, b) = (fence_fd(1), fence_fd(2));
    let tl2 = p.open(SW_SYNC_PATH, OpenFlags::RDWR).unwrap();
    let mut d = SwSyncCreateFenceData {
        value: 1,
        ..Default::default()
    };
    p.ioctl_with(tl2, SW_SYNC_IOC_CREATE_FENCE, &mut d).unwrap();
    let mut merge = SyncMergeData {
        fd2: d.fence,
        ..Default::default()
    };
    p.ioctl_with(b, SYNC_IOC_MERGE, &mut merge).unwrap();

    let import = |flags: u64, sync_fd| {
        let mut req = DmaBufImportSyncFile {
            flags: flags as u32,
            fd: sync_fd,
        };
        p.ioctl_with(fd, DMA_BUF_IOCTL_IMPORT_SYNC_FILE, &mut req)
    };
    assert_eq!(import(0, a), Err(Errno::EINVAL));
    assert_eq!(
        import(DMA_BUF_SYNC_READ, tl),
        Err(Errno::EINVAL),
        "not a sync_file"
    );
    import(DMA_BUF_SYNC_READ, a).unwrap();
    assert_eq!(buf.resv().get_fences(Usage::Write).len(), 0);
    assert_eq!(buf.resv().get_fences(Usage::Read).len(), 1);
    import(DMA_BUF_SYNC_WRITE, merge.fence).unwrap();
    assert_eq!(
        buf.resv().get_fences(Usage::Write).len(),
        2,
        "the merged file's two leaves, as writes"
    );
}

fn poll_now(p: &Process, fd: i32, events: PollMask) -> PollMask {
    let mut fds = [PollFd::new(fd, events)];
    p.poll(&mut fds, 0).unwrap();
    fds[0].revents
}

#[test]
fn poll_reports_when_reads_and_writes_may_start() {
    let (kernel, _) = machine();
    let (p, fd) = heap_buffer(&kernel, 1);
    let buf = kernel.with_task(p.pid(), |t| DmaBuf::get(t, fd)).unwrap();
    let both = PollMask::IN | PollMask::OUT;
    assert_eq!(poll_now(&p, fd, both), both);
    assert_eq!(poll_now(&p, fd, PollMask::PRI), PollMask::empty());

    let bookkeep = add_fence(&buf, Usage::Bookkeep);
    assert_eq!(
        poll_now(&p, fd, both),
        both,
        "bookkeeping fences never block poll"
    );

    let reader = add_fence(&buf, Usage::Read);
    assert_eq!(
        poll_now(&p, fd, both),
        PollMask::IN,
        "a read may start, a write must wait"
    );
    let writer = add_fence(&buf, Usage::Write);
    assert_eq!(poll_now(&p, fd, both), PollMask::empty());

    let waiter = {
        let kernel = kernel.clone();
        let pid = p.pid();
        std::thread::spawn(move || {
            let mut fds = [PollFd::new(fd, PollMask::OUT)];
            kernel.poll(pid, &mut fds, -1).unwrap();
            fds[0].revents
        })
    };
    writer.signal();
    reader.signal();
    assert_eq!(waiter.join().unwrap(), PollMask::OUT);
    assert_eq!(poll_now(&p, fd, both), both);
    bookkeep.signal();
}

#[test]
fn heap_alloc_rejects_bad_arguments_and_accepts_other_struct_sizes() {
    let (kernel, _) = machine();
    let p = Process::spawn(&kernel, "t");
    let heap = p.open(DMA_HEAP_SYSTEM_PATH, OpenFlags::RDWR).unwrap();
    let alloc =
        |req: DmaHeapAllocationData| p.ioctl_with(heap, DMA_HEAP_IOCTL_ALLOC, &mut req.clone());
    let good = DmaHeapAllocationData {
        len: PAGE_SIZE,
        fd_flags: OpenFlags::RDWR.0,
        ..Default::default()
    };
    assert_eq!(
        alloc(DmaHeapAllocationData { len: 0, ..good }),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        alloc(DmaHeapAllocationData { fd: 3, ..good }),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        alloc(DmaHeapAllocationData {
            heap_flags: 0x111111,
            ..good
        }),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        alloc(DmaHeapAllocationData {
            fd_flags: !(OpenFlags::RDWR.0 | OpenFlags::CLOEXEC.0),
            ..good
        }),
        Err(Errno::EINVAL)
    );
    assert_eq!(alloc(good), Ok(0));
    // An older struct without heap_flags (16 bytes), and a newer one with trailing data.
    let old_cmd = sagrada_kernel_core::ioctl::iowr::<[u8; 16]>(b'H', 0);
    let mut old = [0u8; 16];
    old[..8].copy_from_slice(&PAGE_SIZE.to_le_bytes());
    assert_eq!(p.ioctl_with(heap, old_cmd, &mut old), Ok(0));
    assert_ne!(
        u32::from_le_bytes(old[8..12].try_into().unwrap()),
        0,
        "fd returned"
    );
    let new_cmd = sagrada_kernel_core::ioctl::iowr::<[u8; 40]>(b'H', 0);
    let mut new = [0xabu8; 40];
    new[..24].copy_from_slice(zerocopy::IntoBytes::as_bytes(&good));
    assert_eq!(p.ioctl_with(heap, new_cmd, &mut new), Ok(0));
}

#[test]
fn a_heap_buffer_is_shared_between_processes_and_devices() {
    let (kernel, registry) = machine();
    let (p, fd) = heap_buffer(&kernel, 4);
    let other = Process::spawn(&kernel, "peer");
    let their_fd = p.send_fd(fd, &other).unwrap();
    let len = 4 * PAGE_SIZE;
    let mine = p
        .mmap(fd, len, Prot::READ_WRITE, MapFlags::SHARED, 0)
        .unwrap();
    let theirs = other
        .mmap(their_fd, len, Prot::READ, MapFlags::SHARED, 0)
        .unwrap();
    let message = b"written by one process, read by another and by a NIC";
    p.write_mem(mine.checked_add(PAGE_SIZE - 10).unwrap(), message)
        .unwrap();
    let mut seen = vec![0u8; message.len()];
    other
        .read_mem(theirs.checked_add(PAGE_SIZE - 10).unwrap(), &mut seen)
        .unwrap();
    assert_eq!(&seen, message);

    // The NIC imports it: its sg table holds an IOVA of the NIC's IOMMU domain, and a
    // DMA read through it sees the data.
    let nic = dev(&kernel, "nic0");
    let buf = kernel
        .with_task(other.pid(), |t| DmaBuf::get(t, their_fd))
        .unwrap();
    let attach = buf.attach(nic).unwrap();
    let sgt = buf
        .map_attachment_unlocked(&attach, DmaDirection::ToDevice)
        .unwrap();
    assert_eq!(sgt.len(), len);
    let iova = sgt.entries()[0].dma_addr;
    let mut dma = vec![0u8; message.len()];
    kernel
        .fabric()
        .dma_read(nic, Iova(iova.raw() + PAGE_SIZE - 10), &mut dma)
        .unwrap();
    assert_eq!(&dma, message);
    assert!(
        kernel.fabric().dma_write(nic, iova, b"x").is_err(),
        "a to-device mapping refuses writes"
    );
    buf.unmap_attachment_unlocked(&attach, sgt, DmaDirection::ToDevice)
        .unwrap();
    assert!(
        kernel.fabric().dma_read(nic, iova, &mut dma).is_err(),
        "unmapped: the IOVA is gone"
    );
    buf.detach(attach).unwrap();

    // bufinfo lists it with its importers, then without.
    let text = registry.bufinfo();
    assert!(
        text.contains("\tsystem\t") && text.contains("Total 0 devices attached"),
        "{text}"
    );
    drop(buf);
    p.close(fd).unwrap();
    other.close(their_fd).unwrap();
    assert_eq!(
        registry.buffers().len(),
        1,
        "the mappings still hold the buffer"
    );
    p.munmap(mine, len).unwrap();
    other.munmap(theirs, len).unwrap();
    assert!(registry.buffers().is_empty());
}

#[test]
fn bufinfo_lists_buffers_fences_and_attached_devices() {
    let (kernel, _registry) = machine();
    let (p, fd) = heap_buffer(&kernel, 1);
    p.ioctl(fd, DMA_BUF_SET_NAME, p.alloc_cstr("frames").unwrap().0)
        .unwrap();
    let buf = kernel.with_task(p.pid(), |t| DmaBuf::get(t, fd)).unwrap();
    let nic = dev(&kernel, "nic0");
    let attach = buf.attach(nic).unwrap();
    let fence = add_fence(&buf, Usage::Write);
    let reader = p.open(BUFINFO_PATH, OpenFlags::RDONLY).unwrap();
    let text = String::from_utf8(p.read_to_end(reader).unwrap()).unwrap();
    let bdf = kernel.fabric().function(nic).bdf.to_string();
    assert!(
        text.starts_with(
            "\nDma-buf Objects:\nsize    \tflags   \tmode    \tcount   \texp_name\tino     \tname\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("00004096\t00000002\t00000003\t00000002\tsystem\t"),
        "{text}"
    );
    assert!(text.contains("\tframes\n"), "{text}");
    assert!(
        text.contains(&format!(
            "\twrite fence: {}:1 test test unsignalled\n",
            fence.context()
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "\tAttached Devices:\n\t{bdf}\nTotal 1 devices attached\n"
        )),
        "{text}"
    );
    assert!(text.ends_with("\nTotal 1 objects, 4096 bytes\n"), "{text}");
    assert_eq!(p.open(BUFINFO_PATH, OpenFlags::RDWR), Err(Errno::EACCES));
    buf.detach(attach).unwrap();
    fence.signal();
}
