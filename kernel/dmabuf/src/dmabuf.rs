//! dma-buf: a buffer shared between drivers (and processes) through an fd.
//!
//! The *exporter* owns the memory and implements [`DmaBufOps`]; *importers* attach a
//! device ([`DmaBuf::attach`], [`DmaBuf::dynamic_attach`]) and map the attachment to
//! get an [`SgTable`] of DMA addresses for that device. A [`DmaBuf`] is a counted
//! reference to the buffer's file (Linux `get_dma_buf`/`dma_buf_put`), so the buffer
//! lives as long as any fd, mapping or importer holds it, and is released (the
//! exporter's `release`) when the last goes.
//!
//! Locking convention (Linux 6.2+): map/unmap, pin/unpin, vmap/vunmap and
//! `move_notify` require the reservation lock, which the caller proves by passing the
//! [`ResvGuard`]; attach/detach, CPU access, mmap and the `_unlocked` variants must be
//! called *without* it (they fail with `EDEADLK` if the calling thread holds it, where
//! Linux would deadlock).
//!
//! Version choices (baseline 7.0): no sg-table caching (v6.15+); a static importer of a
//! dynamic exporter is pinned at *map* time; `move_notify` is the name of the importer
//! callback (it became `invalidate_mappings` in v7.1) and it is mandatory for dynamic
//! importers; `SET_NAME` works while attached; no sysfs statistics.
//!
//! An [`SgTable`] carries DMA addresses and lengths only: an importer can never reach
//! the CPU pages behind a buffer through it, which is what `CONFIG_DMABUF_DEBUG`
//! enforces on Linux and what I/O memory (a device BAR) requires.

use std::any::Any;
use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use sagrada_hw_fabric::{DeviceId, DmaDirection, Iova, PAGE_SIZE, PhysRange};
use sagrada_kernel_core::{
    Errno, Fd, File, FileOps, KResult, Kernel, OpenFlags, PollMask, PollTable, Prot, Task, UserPtr,
    WaitQueue, Whence, lock,
};

use crate::fence::{DmaFence, MAX_SCHEDULE_TIMEOUT, Wait};
use crate::fence_unwrap::leaves;
use crate::resv::{DmaResv, ResvGuard, Usage};
use crate::sync_file::SyncFile;
use crate::uapi::*;

/// One contiguous range of a mapping, as the importing device addresses it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SgEntry {
    /// `sg_dma_address`.
    pub dma_addr: Iova,
    /// `sg_dma_len`.
    pub len: u64,
}

/// A mapped scatter list: DMA addresses only, no CPU pages.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct SgTable {
    entries: Vec<SgEntry>,
}

impl SgTable {
    /// A table of `entries`.
    pub fn new(entries: Vec<SgEntry>) -> Self {
        Self { entries }
    }

    /// The entries (`for_each_sgtable_dma_sg`).
    pub fn entries(&self) -> &[SgEntry] {
        &self.entries
    }

    /// Total bytes mapped.
    pub fn len(&self) -> u64 {
        self.entries.iter().map(|e| e.len).sum()
    }

    /// Whether the table maps nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// What an exporter provides (Linux `struct dma_buf_ops`). `map_dma_buf`,
/// `unmap_dma_buf` and `release` are mandatory; the optional groups are reached through
/// the `*_ops` methods and are absent unless the exporter returns them. An exporter
/// with pin ops is *dynamic* (its memory may move while unpinned).
pub trait DmaBufOps: Any + Send + Sync {
    /// Maps the buffer for the attachment's device (resv lock held). Returns DMA
    /// addresses for that device, page aligned; a new table each call.
    fn map_dma_buf(&self, attach: &Attachment, dir: DmaDirection) -> KResult<SgTable>;

    /// Undoes a mapping (resv lock held).
    fn unmap_dma_buf(&self, attach: &Attachment, sgt: SgTable, dir: DmaDirection);

    /// Called once after the last reference is gone.
    fn release(&self);

    /// Checks that the device can use the buffer and records exporter data; may clear
    /// [`Attachment::peer2peer`]. Called without the resv lock.
    fn attach(&self, attach: &Attachment) -> KResult<()> {
        let _ = attach;
        Ok(())
    }

    /// Housekeeping at detach, without the resv lock.
    fn detach(&self, attach: &Attachment) {
        let _ = attach;
    }

    /// Pinning, which makes the exporter dynamic.
    fn pin_ops(&self) -> Option<&dyn PinOps> {
        None
    }

    /// CPU-access bracketing.
    fn cpu_access_ops(&self) -> Option<&dyn CpuAccessOps> {
        None
    }

    /// User-space mmap.
    fn mmap_ops(&self) -> Option<&dyn MmapOps> {
        None
    }

    /// Kernel virtual mapping.
    fn vmap_ops(&self) -> Option<&dyn VmapOps> {
        None
    }
}

/// `pin`/`unpin`, always together (resv lock held).
pub trait PinOps: Send + Sync {
    /// The buffer must not move until unpinned; its memory is ready on return.
    fn pin(&self, attach: &Attachment) -> KResult<()>;
    /// The buffer may move again.
    fn unpin(&self, attach: &Attachment);
}

/// `begin_cpu_access`/`end_cpu_access` (no resv lock).
pub trait CpuAccessOps: Send + Sync {
    /// Makes the memory coherent for CPU access in `dir`.
    fn begin_cpu_access(&self, dir: DmaDirection) -> KResult<()>;
    /// Flushes CPU access.
    fn end_cpu_access(&self, dir: DmaDirection) -> KResult<()>;
}

/// `mmap` (no resv lock). The core has already checked the range.
pub trait MmapOps: Send + Sync {
    /// The physical memory behind `len` bytes at page `pgoff`, in order.
    fn mmap(&self, pgoff: u64, len: u64, prot: Prot) -> KResult<Vec<PhysRange>>;
}

/// `vmap`/`vunmap` (resv lock held).
pub trait VmapOps: Send + Sync {
    /// A CPU mapping of the whole buffer.
    fn vmap(&self) -> KResult<VMap>;
    /// Drops it.
    fn vunmap(&self, map: &VMap);
}

/// A kernel CPU mapping of a buffer (Linux `struct iosys_map`): the physical memory
/// behind it, read and written through the fabric as CPU accesses.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct VMap {
    /// The memory, in buffer order.
    pub extents: Vec<PhysRange>,
}

/// An importer that follows the buffer when it moves (Linux `struct
/// dma_buf_attach_ops`).
pub trait ImporterOps: Send + Sync {
    /// Whether the importer can handle peer memory without struct pages (device BARs).
    fn allow_peer2peer(&self) -> bool;

    /// The buffer is moving (resv lock held): existing mappings stay valid until their
    /// fences signal but must be dropped and re-created before further use.
    fn move_notify(&self, attach: &Attachment, guard: &ResvGuard<'_>);
}

/// Export parameters (Linux `struct dma_buf_export_info`).
pub struct ExportInfo {
    /// The exporter's name (`exp_name`), non-empty.
    pub exp_name: String,
    /// The exporter.
    pub ops: Box<dyn DmaBufOps>,
    /// Size in bytes, non-zero and invariant.
    pub size: u64,
    /// File flags: the access mode and `O_NONBLOCK` are kept.
    pub flags: OpenFlags,
    /// A reservation object to share, or `None` for a fresh one.
    pub resv: Option<Arc<DmaResv>>,
}

impl fmt::Debug for ExportInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExportInfo")
            .field("exp_name", &self.exp_name)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

static NEXT_ATTACHMENT: AtomicU64 = AtomicU64::new(1);

struct AttachmentInner {
    id: u64,
    buf: Weak<DmaBufObject>,
    dev: DeviceId,
    peer2peer: AtomicBool,
    importer: Option<Arc<dyn ImporterOps>>,
    exporter_priv: Mutex<Option<Box<dyn Any + Send>>>,
    mappings: AtomicUsize,
}

/// An attachment of a device to a buffer (`struct dma_buf_attachment`). Cloning gives
/// another handle to the same attachment.
#[derive(Clone)]
pub struct Attachment(Arc<AttachmentInner>);

impl fmt::Debug for Attachment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attachment")
            .field("id", &self.0.id)
            .field("dev", &self.0.dev)
            .field("dynamic", &self.is_dynamic())
            .field("peer2peer", &self.peer2peer())
            .finish()
    }
}

impl Attachment {
    /// The importing device (whose IOMMU domain the mapping is for).
    pub fn dev(&self) -> DeviceId {
        self.0.dev
    }

    /// Whether the importer accepts peer memory; the exporter may clear it in `attach`.
    pub fn peer2peer(&self) -> bool {
        self.0.peer2peer.load(Ordering::Acquire)
    }

    /// Lets the exporter refuse peer-to-peer for this attachment.
    pub fn set_peer2peer(&self, allowed: bool) {
        self.0.peer2peer.store(allowed, Ordering::Release);
    }

    /// `dma_buf_attachment_is_dynamic`: the importer follows moves.
    pub fn is_dynamic(&self) -> bool {
        self.0.importer.is_some()
    }

    /// Stores exporter data (`attach->priv`).
    pub fn set_exporter_priv(&self, data: Box<dyn Any + Send>) {
        *lock(&self.0.exporter_priv) = Some(data);
    }

    /// Runs `f` on the exporter data.
    pub fn with_exporter_priv<R>(&self, f: impl FnOnce(Option<&mut (dyn Any + Send)>) -> R) -> R {
        let mut data = lock(&self.0.exporter_priv);
        f(data.as_deref_mut())
    }

    /// Mappings currently outstanding.
    pub fn mappings(&self) -> usize {
        self.0.mappings.load(Ordering::Acquire)
    }

    /// The size of the buffer attached to (0 once it is gone).
    pub fn buffer_size(&self) -> u64 {
        self.0.buf.upgrade().map_or(0, |b| b.size)
    }

    fn same(&self, other: &Attachment) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// The buffer object behind a dma-buf file.
pub(crate) struct DmaBufObject {
    size: u64,
    exp_name: String,
    name: Mutex<Option<String>>,
    ops: Box<dyn DmaBufOps>,
    resv: Arc<DmaResv>,
    attachments: Mutex<Vec<Attachment>>,
    vmap: Mutex<(usize, Option<VMap>)>,
    poll: Arc<WaitQueue>,
    cb_in: Arc<AtomicBool>,
    cb_out: Arc<AtomicBool>,
    registry: Weak<DmaBufRegistry>,
}

/// A counted reference to a dma-buf.
#[derive(Clone)]
pub struct DmaBuf {
    file: Arc<File>,
    obj: Arc<DmaBufObject>,
}

impl fmt::Debug for DmaBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DmaBuf")
            .field("ino", &self.file.ino())
            .field("exp_name", &self.obj.exp_name)
            .field("size", &self.obj.size)
            .finish()
    }
}

fn direction(flags: u64) -> DmaDirection {
    match flags & DMA_BUF_SYNC_RW {
        DMA_BUF_SYNC_READ => DmaDirection::FromDevice,
        DMA_BUF_SYNC_WRITE => DmaDirection::ToDevice,
        _ => DmaDirection::Bidirectional,
    }
}

impl DmaBuf {
    /// `dma_buf_get(fd)`: `EBADF` for a bad fd, `EINVAL` if it is not a dma-buf.
    pub fn get(task: &Task<'_>, fd: Fd) -> KResult<DmaBuf> {
        Self::from_file(task.fget(fd)?)
    }

    /// The dma-buf behind an open file, `EINVAL` if it is not one.
    pub fn from_file(file: Arc<File>) -> KResult<DmaBuf> {
        let obj = file.ops_arc::<DmaBufObject>().ok_or(Errno::EINVAL)?;
        Ok(DmaBuf { file, obj })
    }

    /// `dma_buf_fd(dmabuf, flags)`: a new fd of the caller for this buffer;
    /// `O_CLOEXEC` is the only flag that matters.
    pub fn fd(&self, task: &Task<'_>, flags: OpenFlags) -> KResult<Fd> {
        task.fd_install(self.file.clone(), flags.contains(OpenFlags::CLOEXEC))
    }

    /// The buffer's file.
    pub fn file(&self) -> &Arc<File> {
        &self.file
    }

    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.obj.size
    }

    /// The exporter's name.
    pub fn exp_name(&self) -> &str {
        &self.obj.exp_name
    }

    /// The user-given name, if any.
    pub fn name(&self) -> Option<String> {
        lock(&self.obj.name).clone()
    }

    /// The reservation object.
    pub fn resv(&self) -> &Arc<DmaResv> {
        &self.obj.resv
    }

    /// The exporter, as its concrete type if it is a `T`.
    pub fn exporter<T: DmaBufOps>(&self) -> Option<&T> {
        (self.obj.ops.as_ref() as &dyn Any).downcast_ref::<T>()
    }

    /// `dma_buf_is_dynamic`: the exporter can pin (its memory may move otherwise).
    pub fn is_dynamic(&self) -> bool {
        self.obj.ops.pin_ops().is_some()
    }

    /// The devices attached, in attach order.
    pub fn attached_devices(&self) -> Vec<DeviceId> {
        lock(&self.obj.attachments)
            .iter()
            .map(Attachment::dev)
            .collect()
    }

    fn must_not_hold_lock(&self, what: &str) -> KResult<()> {
        if self.obj.resv.is_held_by_current_thread() {
            tracing::error!("{what} called with the reservation lock held");
            return Err(Errno::EDEADLK);
        }
        Ok(())
    }

    fn must_hold_lock(&self, guard: &ResvGuard<'_>, what: &str) -> KResult<()> {
        if !guard.guards(&self.obj.resv) {
            tracing::error!("{what} called without this buffer's reservation lock");
            return Err(Errno::EINVAL);
        }
        Ok(())
    }

    fn owns(&self, attach: &Attachment) -> KResult<()> {
        if attach.0.buf.as_ptr() != Arc::as_ptr(&self.obj) {
            tracing::error!("attachment {} does not belong to this buffer", attach.0.id);
            return Err(Errno::EINVAL);
        }
        Ok(())
    }

    /// `dma_buf_attach`: a static importer (no move notification, no peer memory).
    pub fn attach(&self, dev: DeviceId) -> KResult<Attachment> {
        self.attach_with(dev, None)
    }

    /// `dma_buf_dynamic_attach`: an importer that follows moves through `importer`.
    pub fn dynamic_attach(
        &self,
        dev: DeviceId,
        importer: Arc<dyn ImporterOps>,
    ) -> KResult<Attachment> {
        self.attach_with(dev, Some(importer))
    }

    fn attach_with(
        &self,
        dev: DeviceId,
        importer: Option<Arc<dyn ImporterOps>>,
    ) -> KResult<Attachment> {
        self.must_not_hold_lock("dma_buf_attach")?;
        let attach = Attachment(Arc::new(AttachmentInner {
            id: NEXT_ATTACHMENT.fetch_add(1, Ordering::Relaxed),
            buf: Arc::downgrade(&self.obj),
            dev,
            peer2peer: AtomicBool::new(importer.as_ref().is_some_and(|i| i.allow_peer2peer())),
            importer,
            exporter_priv: Mutex::new(None),
            mappings: AtomicUsize::new(0),
        }));
        self.obj.ops.attach(&attach)?;
        let _guard = self.obj.resv.lock(None)?;
        lock(&self.obj.attachments).push(attach.clone());
        Ok(attach)
    }

    /// `dma_buf_detach`. Mappings still outstanding are reported (the importer leaked
    /// them).
    pub fn detach(&self, attach: Attachment) -> KResult<()> {
        self.must_not_hold_lock("dma_buf_detach")?;
        self.owns(&attach)?;
        {
            let _guard = self.obj.resv.lock(None)?;
            lock(&self.obj.attachments).retain(|a| !a.same(&attach));
        }
        if attach.mappings() != 0 {
            tracing::warn!(
                "detach of attachment {} with {} live mappings",
                attach.0.id,
                attach.mappings()
            );
        }
        self.obj.ops.detach(&attach);
        Ok(())
    }

    /// `dma_buf_pin` (dynamic importers only, resv lock held).
    pub fn pin(&self, guard: &ResvGuard<'_>, attach: &Attachment) -> KResult<()> {
        self.must_hold_lock(guard, "dma_buf_pin")?;
        self.owns(attach)?;
        if !attach.is_dynamic() {
            tracing::warn!("dma_buf_pin by a static importer");
            return Err(Errno::EINVAL);
        }
        self.obj.ops.pin_ops().map_or(Ok(()), |p| p.pin(attach))
    }

    /// `dma_buf_unpin` (dynamic importers only, resv lock held).
    pub fn unpin(&self, guard: &ResvGuard<'_>, attach: &Attachment) -> KResult<()> {
        self.must_hold_lock(guard, "dma_buf_unpin")?;
        self.owns(attach)?;
        if !attach.is_dynamic() {
            tracing::warn!("dma_buf_unpin by a static importer");
            return Err(Errno::EINVAL);
        }
        if let Some(p) = self.obj.ops.pin_ops() {
            p.unpin(attach);
        }
        Ok(())
    }

    fn pin_on_map(&self, attach: &Attachment) -> bool {
        self.is_dynamic() && !attach.is_dynamic()
    }

    /// `dma_buf_map_attachment` (resv lock held). A static importer of a dynamic
    /// exporter pins the buffer for the life of the mapping, and waits for the buffer's
    /// kernel fences (a dynamic importer must wait for fences itself).
    pub fn map_attachment(
        &self,
        guard: &ResvGuard<'_>,
        attach: &Attachment,
        dir: DmaDirection,
    ) -> KResult<SgTable> {
        self.must_hold_lock(guard, "dma_buf_map_attachment")?;
        self.owns(attach)?;
        let pin = self.pin_on_map(attach);
        if pin && let Some(p) = self.obj.ops.pin_ops() {
            p.pin(attach)?;
        }
        let undo_pin = || {
            if pin && let Some(p) = self.obj.ops.pin_ops() {
                p.unpin(attach);
            }
        };
        let sgt = match self.obj.ops.map_dma_buf(attach, dir) {
            Ok(sgt) => sgt,
            Err(e) => {
                undo_pin();
                return Err(e);
            }
        };
        if !attach.is_dynamic()
            && let Wait::TimedOut = self
                .obj
                .resv
                .wait_timeout(Usage::Kernel, MAX_SCHEDULE_TIMEOUT)
        {
            self.obj.ops.unmap_dma_buf(attach, sgt, dir);
            undo_pin();
            return Err(Errno::ETIME);
        }
        if sgt.entries().iter().any(|e| {
            !e.dma_addr.raw().is_multiple_of(PAGE_SIZE) || !e.len.is_multiple_of(PAGE_SIZE)
        }) {
            tracing::debug!(
                "{}: mapping with entries that are not page aligned",
                self.obj.exp_name
            );
        }
        attach.0.mappings.fetch_add(1, Ordering::AcqRel);
        Ok(sgt)
    }

    /// `dma_buf_unmap_attachment` (resv lock held).
    pub fn unmap_attachment(
        &self,
        guard: &ResvGuard<'_>,
        attach: &Attachment,
        sgt: SgTable,
        dir: DmaDirection,
    ) -> KResult<()> {
        self.must_hold_lock(guard, "dma_buf_unmap_attachment")?;
        self.owns(attach)?;
        self.obj.ops.unmap_dma_buf(attach, sgt, dir);
        if self.pin_on_map(attach)
            && let Some(p) = self.obj.ops.pin_ops()
        {
            p.unpin(attach);
        }
        attach.0.mappings.fetch_sub(1, Ordering::AcqRel);
        Ok(())
    }

    /// `dma_buf_map_attachment_unlocked`: takes the resv lock around the map.
    pub fn map_attachment_unlocked(
        &self,
        attach: &Attachment,
        dir: DmaDirection,
    ) -> KResult<SgTable> {
        self.must_not_hold_lock("dma_buf_map_attachment_unlocked")?;
        let guard = self.obj.resv.lock(None)?;
        self.map_attachment(&guard, attach, dir)
    }

    /// `dma_buf_unmap_attachment_unlocked`.
    pub fn unmap_attachment_unlocked(
        &self,
        attach: &Attachment,
        sgt: SgTable,
        dir: DmaDirection,
    ) -> KResult<()> {
        self.must_not_hold_lock("dma_buf_unmap_attachment_unlocked")?;
        let guard = self.obj.resv.lock(None)?;
        self.unmap_attachment(&guard, attach, sgt, dir)
    }

    /// `dma_buf_move_notify` (exporter, resv lock held): tells every dynamic importer
    /// that the buffer is moving.
    pub fn move_notify(&self, guard: &ResvGuard<'_>) -> KResult<()> {
        self.must_hold_lock(guard, "dma_buf_move_notify")?;
        let attachments = lock(&self.obj.attachments).clone();
        for a in attachments {
            if let Some(importer) = &a.0.importer {
                importer.move_notify(&a, guard);
            }
        }
        Ok(())
    }

    /// `dma_buf_begin_cpu_access` (no resv lock): the exporter's hook, then a wait for
    /// the fences the access conflicts with (all of them up to `Read` for a write, up
    /// to `Write` for a read).
    pub fn begin_cpu_access(&self, dir: DmaDirection) -> KResult<()> {
        self.must_not_hold_lock("dma_buf_begin_cpu_access")?;
        if let Some(ops) = self.obj.ops.cpu_access_ops() {
            ops.begin_cpu_access(dir)?;
        }
        let write = matches!(dir, DmaDirection::Bidirectional | DmaDirection::ToDevice);
        self.obj
            .resv
            .wait_timeout(Usage::rw(write), MAX_SCHEDULE_TIMEOUT);
        Ok(())
    }

    /// `dma_buf_end_cpu_access` (no resv lock, no waiting).
    pub fn end_cpu_access(&self, dir: DmaDirection) -> KResult<()> {
        self.must_not_hold_lock("dma_buf_end_cpu_access")?;
        self.obj
            .ops
            .cpu_access_ops()
            .map_or(Ok(()), |ops| ops.end_cpu_access(dir))
    }

    /// `dma_buf_vmap` (resv lock held): the same mapping for every caller until the
    /// last `vunmap`. `EINVAL` if the exporter cannot vmap.
    pub fn vmap(&self, guard: &ResvGuard<'_>) -> KResult<VMap> {
        self.must_hold_lock(guard, "dma_buf_vmap")?;
        let ops = self.obj.ops.vmap_ops().ok_or(Errno::EINVAL)?;
        let mut state = lock(&self.obj.vmap);
        if let Some(map) = state.1.clone() {
            state.0 += 1;
            return Ok(map);
        }
        let map = ops.vmap()?;
        *state = (1, Some(map.clone()));
        Ok(map)
    }

    /// `dma_buf_vunmap` (resv lock held). `EINVAL` for a mapping that is not the
    /// current one (Linux `BUG_ON`).
    pub fn vunmap(&self, guard: &ResvGuard<'_>, map: &VMap) -> KResult<()> {
        self.must_hold_lock(guard, "dma_buf_vunmap")?;
        let mut state = lock(&self.obj.vmap);
        if state.1.as_ref() != Some(map) || state.0 == 0 {
            tracing::error!("vunmap of a mapping that is not the buffer's");
            return Err(Errno::EINVAL);
        }
        state.0 -= 1;
        if state.0 == 0
            && let Some(m) = state.1.take()
            && let Some(ops) = self.obj.ops.vmap_ops()
        {
            ops.vunmap(&m);
        }
        Ok(())
    }

    /// `dma_buf_mmap` for kernel users: `EINVAL` without an mmap op or beyond the
    /// buffer, `EOVERFLOW` if the range wraps.
    pub fn mmap(&self, pgoff: u64, len: u64, prot: Prot) -> KResult<Vec<PhysRange>> {
        self.must_not_hold_lock("dma_buf_mmap")?;
        self.obj.mmap(pgoff, len, prot)
    }
}

impl DmaBufObject {
    fn mmap(&self, pgoff: u64, len: u64, prot: Prot) -> KResult<Vec<PhysRange>> {
        let ops = self.ops.mmap_ops().ok_or(Errno::EINVAL)?;
        let pages = len.div_ceil(PAGE_SIZE);
        let end = pgoff.checked_add(pages).ok_or(Errno::EOVERFLOW)?;
        if end > self.size / PAGE_SIZE {
            return Err(Errno::EINVAL);
        }
        ops.mmap(pgoff, len, prot)
    }

    fn ioctl_sync(&self, buf: &DmaBuf, task: &Task<'_>, arg: UserPtr) -> KResult<i64> {
        let sync: DmaBufSync = task.read_obj(arg)?;
        if sync.flags & !DMA_BUF_SYNC_VALID_FLAGS_MASK != 0 || sync.flags & DMA_BUF_SYNC_RW == 0 {
            return Err(Errno::EINVAL);
        }
        let dir = direction(sync.flags);
        if sync.flags & DMA_BUF_SYNC_END != 0 {
            buf.end_cpu_access(dir)
        } else {
            buf.begin_cpu_access(dir)
        }?;
        Ok(0)
    }

    fn ioctl_set_name(&self, task: &Task<'_>, arg: UserPtr) -> KResult<i64> {
        let name = task.strndup_user(arg, DMA_BUF_NAME_LEN)?;
        *lock(&self.name) = Some(String::from_utf8_lossy(&name).into_owned());
        Ok(0)
    }

    fn ioctl_export_sync_file(&self, task: &Task<'_>, arg: UserPtr) -> KResult<i64> {
        let mut req: DmaBufExportSyncFile = task.read_obj(arg)?;
        let flags = u64::from(req.flags);
        if flags & !DMA_BUF_SYNC_RW != 0 || flags & DMA_BUF_SYNC_RW == 0 {
            return Err(Errno::EINVAL);
        }
        let usage = Usage::rw(flags & DMA_BUF_SYNC_WRITE != 0);
        let fence = self
            .resv
            .get_singleton(usage)?
            .unwrap_or_else(DmaFence::get_stub);
        let fd = task.fd_install(SyncFile::create(fence, None), true)?;
        req.fd = fd;
        task.write_obj(arg, &req).inspect_err(|_| {
            let _ = task.kernel().close(task.pid(), fd);
        })?;
        Ok(0)
    }

    fn ioctl_import_sync_file(&self, task: &Task<'_>, arg: UserPtr) -> KResult<i64> {
        let req: DmaBufImportSyncFile = task.read_obj(arg)?;
        let flags = u64::from(req.flags);
        if flags & !DMA_BUF_SYNC_RW != 0 || flags & DMA_BUF_SYNC_RW == 0 {
            return Err(Errno::EINVAL);
        }
        let fence = task
            .fget(req.fd)
            .ok()
            .and_then(|f| SyncFile::fence_of(&f))
            .ok_or(Errno::EINVAL)?;
        let usage = if flags & DMA_BUF_SYNC_WRITE != 0 {
            Usage::Write
        } else {
            Usage::Read
        };
        let leaves: Vec<DmaFence> = leaves(&fence).collect();
        let guard = self.resv.lock(None)?;
        guard.reserve_fences(leaves.len())?;
        for leaf in leaves {
            guard.add_fence(leaf, usage);
        }
        Ok(0)
    }

    /// `dma_buf_poll_add_cb`: hooks `active` to the first pending fence the access
    /// would wait for; false if there is none.
    fn poll_add_cb(
        &self,
        file: &Arc<File>,
        guard: &ResvGuard<'_>,
        write: bool,
        active: &Arc<AtomicBool>,
    ) -> bool {
        for (fence, _) in guard.fences(Usage::rw(write)) {
            let (file, active, queue) = (file.clone(), active.clone(), self.poll.clone());
            let added = fence.add_callback(move |_| {
                active.store(false, Ordering::Release);
                queue.wake_up_all();
                drop(file);
            });
            if added.is_ok() {
                return true;
            }
        }
        false
    }
}

impl FileOps for DmaBufObject {
    fn name(&self, _file: &File) -> String {
        format!("/dmabuf:{}", lock(&self.name).as_deref().unwrap_or(""))
    }

    fn ioctl(&self, task: &Task<'_>, file: &Arc<File>, cmd: u32, arg: u64) -> KResult<i64> {
        let buf = DmaBuf::from_file(file.clone())?;
        let arg = UserPtr(arg);
        match cmd {
            DMA_BUF_IOCTL_SYNC => self.ioctl_sync(&buf, task, arg),
            DMA_BUF_SET_NAME_A | DMA_BUF_SET_NAME_B => self.ioctl_set_name(task, arg),
            DMA_BUF_IOCTL_EXPORT_SYNC_FILE => self.ioctl_export_sync_file(task, arg),
            DMA_BUF_IOCTL_IMPORT_SYNC_FILE => self.ioctl_import_sync_file(task, arg),
            _ => Err(Errno::ENOTTY),
        }
    }

    /// `EPOLLOUT` is ready when no fence up to `Read` is pending (a write may start),
    /// `EPOLLIN` when none up to `Write` is (a read may start). One callback slot per
    /// direction: while it is armed the direction reports not ready.
    fn poll(&self, file: &Arc<File>, table: Option<&PollTable<'_>>, events: PollMask) -> PollMask {
        if let Some(t) = table {
            t.wait(&self.poll);
        }
        let mut ready = events & (PollMask::IN | PollMask::OUT);
        if ready.is_empty() {
            return ready;
        }
        let Ok(guard) = self.resv.lock(None) else {
            return PollMask::ERR;
        };
        for (bit, write, slot) in [
            (PollMask::OUT, true, &self.cb_out),
            (PollMask::IN, false, &self.cb_in),
        ] {
            if !ready.contains(bit) {
                continue;
            }
            // A busy slot, or a callback now armed on a pending fence: not ready yet.
            let busy = slot.swap(true, Ordering::AcqRel);
            if busy || self.poll_add_cb(file, &guard, write, slot) {
                ready = PollMask(ready.0 & !bit.0);
            } else {
                slot.store(false, Ordering::Release);
                self.poll.wake_up_all();
            }
        }
        ready
    }

    /// Only `SEEK_END` (the size) and `SEEK_SET` to 0, with offset 0.
    fn llseek(
        &self,
        _file: &Arc<File>,
        offset: i64,
        whence: Whence,
        pos: &mut u64,
    ) -> KResult<u64> {
        let at = match (whence, offset) {
            (Whence::End, 0) => self.size,
            (Whence::Set, 0) => 0,
            _ => return Err(Errno::EINVAL),
        };
        *pos = at;
        Ok(at)
    }

    fn mmap(&self, _file: &Arc<File>, pgoff: u64, len: u64, prot: Prot) -> KResult<Vec<PhysRange>> {
        self.mmap(pgoff, len, prot)
    }

    fn fdinfo(&self, file: &Arc<File>) -> String {
        // The reference of the caller reading fdinfo is not counted, as in Linux.
        let mut out = format!(
            "size:\t{}\ncount:\t{}\nexp_name:\t{}\n",
            self.size,
            file.ref_count() - 1,
            self.exp_name
        );
        if let Some(name) = lock(&self.name).as_deref() {
            let _ = writeln!(out, "name:\t{name}");
        }
        out
    }

    fn release(&self, file: &File) {
        let vmaps = lock(&self.vmap).0;
        if vmaps != 0 {
            tracing::error!("dma-buf {} released with {vmaps} vmaps", self.exp_name);
        }
        let attached = lock(&self.attachments).len();
        if attached != 0 {
            tracing::warn!(
                "dma-buf {} released with {attached} attachments",
                self.exp_name
            );
        }
        self.ops.release();
        if let Some(registry) = self.registry.upgrade() {
            lock(&registry.buffers).retain(|(ino, _)| *ino != file.ino());
        }
    }
}

/// The dma-buf subsystem of one kernel: exports buffers and keeps the list that
/// `bufinfo` shows.
pub struct DmaBufRegistry {
    kernel: Weak<Kernel>,
    buffers: Mutex<Vec<(u64, Weak<File>)>>,
}

impl fmt::Debug for DmaBufRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DmaBufRegistry")
            .field("buffers", &lock(&self.buffers).len())
            .finish()
    }
}

impl DmaBufRegistry {
    pub(crate) fn new(kernel: &Kernel) -> Arc<Self> {
        Arc::new(Self {
            kernel: kernel.downgrade(),
            buffers: Mutex::new(Vec::new()),
        })
    }

    /// `dma_buf_export`: `EINVAL` for an empty exporter name or a zero size.
    pub fn export(self: &Arc<Self>, info: ExportInfo) -> KResult<DmaBuf> {
        if info.exp_name.is_empty() || info.size == 0 {
            return Err(Errno::EINVAL);
        }
        let obj = Arc::new(DmaBufObject {
            size: info.size,
            exp_name: info.exp_name,
            name: Mutex::new(None),
            ops: info.ops,
            resv: info.resv.unwrap_or_default(),
            attachments: Mutex::new(Vec::new()),
            vmap: Mutex::new((0, None)),
            poll: Arc::new(WaitQueue::new()),
            cb_in: Arc::new(AtomicBool::new(false)),
            cb_out: Arc::new(AtomicBool::new(false)),
            registry: Arc::downgrade(self),
        });
        let file = File::new(obj.clone(), info.flags);
        lock(&self.buffers).push((file.ino(), Arc::downgrade(&file)));
        Ok(DmaBuf { file, obj })
    }

    /// The live buffers (`dma_buf_iter_begin`/`next`), each with a reference.
    pub fn buffers(&self) -> Vec<DmaBuf> {
        let files: Vec<Arc<File>> = lock(&self.buffers)
            .iter()
            .filter_map(|(_, f)| f.upgrade())
            .collect();
        files
            .into_iter()
            .filter_map(|f| DmaBuf::from_file(f).ok())
            .collect()
    }

    /// The text of `<debugfs>/dma_buf/bufinfo`.
    pub fn bufinfo(&self) -> String {
        let fabric = self.kernel.upgrade().map(|k| k.fabric().clone());
        let mut out = String::from("\nDma-buf Objects:\n");
        let _ = writeln!(
            out,
            "{:<8}\t{:<8}\t{:<8}\t{:<8}\texp_name\t{:<8}\tname",
            "size", "flags", "mode", "count", "ino"
        );
        let buffers = self.buffers();
        let mut total = 0u64;
        for buf in &buffers {
            let file = buf.file();
            let mode = match file.flags().access_mode() {
                OpenFlags::RDONLY => 0o1,
                OpenFlags::WRONLY => 0o2,
                _ => 0o3,
            };
            // `buffers` holds one reference of ours.
            let count = file.ref_count().saturating_sub(1);
            let _ = writeln!(
                out,
                "{:08}\t{:08x}\t{:08x}\t{:08}\t{}\t{:08}\t{}",
                buf.size(),
                file.flags().0,
                mode,
                count,
                buf.exp_name(),
                file.ino(),
                buf.name().unwrap_or_else(|| "<none>".to_owned())
            );
            out.push_str(&buf.resv().describe());
            out.push_str("\tAttached Devices:\n");
            let devices = buf.attached_devices();
            for dev in &devices {
                let name = fabric
                    .as_ref()
                    .map_or_else(|| format!("{dev:?}"), |f| f.function(*dev).bdf.to_string());
                let _ = writeln!(out, "\t{name}");
            }
            let _ = writeln!(out, "Total {} devices attached\n", devices.len());
            total += buf.size();
        }
        let _ = writeln!(out, "\nTotal {} objects, {} bytes", buffers.len(), total);
        out
    }
}
