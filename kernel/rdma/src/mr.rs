//! Memory regions: the access rules, `REG_MR` over pinned user pages and
//! `REG_DMABUF_MR` over a dma-buf, and their release.
//!
//! A user region follows `ib_umem_get`: whole pages are pinned (writable if the region
//! is), mapped for the NIC, and described to the NIC by a page list with the largest
//! page size that fits.
//!
//! A dma-buf region follows `ib_umem_dmabuf_get` and its two flavours:
//! - With an ODP-capable NIC (`CAP_ODP`), the import is dynamic, as mlx5's: the
//!   attachment's `move_notify` (called by the exporter with the reservation lock held)
//!   invalidates the key (`CMD_INVALIDATE_MKEY`: the NIC finishes accesses in flight,
//!   later ones fault) and gives the mapping back. A later access raises
//!   `EVENT_PAGE_FAULT`, and the device's fault worker maps the buffer again under the
//!   reservation lock and loads the new pages (`CMD_UPDATE_MKEY`), or fails the key
//!   (`UPDATE_MKEY_FAIL`) if the exporter refuses.
//! - Without it, the import is pinned, as EFA's (`ib_umem_dmabuf_get_pinned`): the
//!   buffer is pinned and mapped once, and `move_notify` only warns.
//!
//! Either way the first mapping is made at registration, under the reservation lock,
//! so an exporter that refuses peer-to-peer fails the registration with `EPERM`.
//! Release follows `ib_umem_dmabuf_release`: the NIC drops the key first, then under
//! the reservation lock the mapping is given back and the buffer unpinned, then the
//! attachment goes.
//!
//! Lock order: a buffer's reservation lock, then a region's state, then the command
//! mailbox. Nothing takes them the other way round.

use std::sync::{Arc, Mutex, OnceLock, Weak};

use sagrada_hw_fabric::{DeviceId, DmaDirection, Fabric, Iova, PAGE_SIZE, PhysRange};
use sagrada_hw_rnic_abi::cmd::{CreateMkey, MKEY_ODP, UPDATE_MKEY_FAIL, UpdateMkey};
use sagrada_hw_rnic_abi::verbs::access;
use sagrada_kernel_core::{Errno, KResult, PinnedPages, Task, UserPtr, lock};
use sagrada_kernel_dmabuf::{
    Attachment, DmaBuf, ImporterOps, MAX_SCHEDULE_TIMEOUT, ResvGuard, SgEntry, SgTable, Usage,
};

use crate::device::Device;
use crate::pages::{PageList, trim};

/// `IB_ACCESS_FLUSH_GLOBAL`: this NIC has no FLUSH.
const ACCESS_FLUSH_GLOBAL: u32 = 1 << 8;
/// `IB_ACCESS_FLUSH_PERSISTENT`.
const ACCESS_FLUSH_PERSISTENT: u32 = 1 << 9;
/// `IB_UVERBS_ACCESS_OPTIONAL_RANGE`: flags a device may ignore (relaxed ordering...).
const ACCESS_OPTIONAL: u32 = ((1 << 30) - 1) & !((1 << 20) - 1);
/// `IB_ACCESS_SUPPORTED`: every flag the core knows.
const ACCESS_SUPPORTED: u32 = ((ACCESS_FLUSH_PERSISTENT << 1) - 1) | ACCESS_OPTIONAL;
/// The flags the NIC's keys carry.
const HW_ACCESS: u32 = access::LOCAL_WRITE | access::REMOTE;

/// `ib_check_mr_access`: remote write or atomic need local write, unknown flags are
/// `EINVAL`, on-demand paging without an ODP-capable NIC and FLUSH are `EOPNOTSUPP`.
pub(crate) fn check_mr_access(flags: u32, odp: bool) -> KResult<()> {
    if flags & (access::REMOTE_ATOMIC | access::REMOTE_WRITE) != 0
        && flags & access::LOCAL_WRITE == 0
    {
        return Err(Errno::EINVAL);
    }
    if flags & !ACCESS_SUPPORTED != 0 {
        return Err(Errno::EINVAL);
    }
    if flags & access::ON_DEMAND != 0 && !odp {
        return Err(Errno::EOPNOTSUPP);
    }
    if flags & (ACCESS_FLUSH_GLOBAL | ACCESS_FLUSH_PERSISTENT) != 0 {
        return Err(Errno::EOPNOTSUPP);
    }
    Ok(())
}

/// `ib_access_writable`: the NIC may write the region.
fn writable(flags: u32) -> bool {
    flags & (access::LOCAL_WRITE | access::REMOTE_WRITE | access::REMOTE_ATOMIC) != 0
}

/// The rkey a region gets: its key if it allows any remote access, else 0.
pub(crate) fn rkey(key: u32, flags: u32) -> u32 {
    if flags & access::REMOTE != 0 { key } else { 0 }
}

/// The checks `UVERBS_METHOD_REG_DMABUF_MR` and `ib_umem_dmabuf_get` make before
/// looking at the fd, in their order: the driver offers it (`EOPNOTSUPP`), same page
/// offset of `offset` and `iova`, only the dma-buf access flags, `ib_check_mr_access`,
/// no overflow of `offset + length` (all `EINVAL`). Returns `offset + length`.
pub(crate) fn check_dmabuf_args(
    enabled: bool,
    offset: u64,
    length: u64,
    iova: u64,
    flags: u32,
) -> KResult<u64> {
    if !enabled {
        return Err(Errno::EOPNOTSUPP);
    }
    if offset % PAGE_SIZE != iova % PAGE_SIZE {
        return Err(Errno::EINVAL);
    }
    if flags & !access::DMABUF_ALLOWED != 0 {
        return Err(Errno::EINVAL);
    }
    check_mr_access(flags, false)?;
    offset.checked_add(length).ok_or(Errno::EINVAL)
}

/// `dma_buf_get(fd)` (`EBADF` for no open fd, `EINVAL` for a file that is no dma-buf),
/// then `ib_umem_dmabuf_get`'s checks of the buffer: `EINVAL` if it is smaller than
/// `end`, then if the region has no pages.
pub(crate) fn get_dmabuf(task: &Task<'_>, fd: i32, end: u64, length: u64) -> KResult<DmaBuf> {
    let buf = DmaBuf::get(task, fd)?;
    if buf.size() < end || length == 0 {
        return Err(Errno::EINVAL);
    }
    Ok(buf)
}

/// What a registration asks for.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RegArgs {
    /// The PD's handle in the context.
    pub pd_handle: u32,
    /// The PD's number.
    pub pdn: u32,
    /// The user address (`REG_MR`) or the offset in the dma-buf (`REG_DMABUF_MR`).
    pub start: u64,
    /// Bytes.
    pub length: u64,
    /// The address the key answers to.
    pub iova: u64,
    /// Access flags.
    pub flags: u32,
}

/// A registered region, as its context owns it.
#[derive(Debug)]
pub(crate) struct Mr {
    /// The key (lkey).
    pub key: u32,
    /// The PD's handle in the context.
    pub pd_handle: u32,
    kind: MrKind,
}

#[derive(Debug)]
enum MrKind {
    User(UserMem),
    Dmabuf {
        mr: Arc<DmabufMr>,
        attach: Attachment,
    },
}

/// Pinned user pages and their mappings for the NIC, given back when dropped.
struct UserMem {
    fabric: Arc<Fabric>,
    dev: DeviceId,
    maps: Vec<(Iova, u64)>,
    _pinned: PinnedPages,
}

impl std::fmt::Debug for UserMem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserMem").field("maps", &self.maps).finish()
    }
}

impl Drop for UserMem {
    fn drop(&mut self) {
        for &(iova, len) in &self.maps {
            if let Err(e) = self.fabric.dma_unmap(self.dev, iova, len) {
                tracing::error!("rdma: unmapping a user region: {e}");
            }
        }
    }
}

/// Physically contiguous runs of `extents`.
fn runs(extents: &[PhysRange]) -> Vec<PhysRange> {
    let mut out: Vec<PhysRange> = Vec::new();
    for e in extents {
        match out.last_mut() {
            Some(last) if last.start.raw() + last.len == e.start.raw() => last.len += e.len,
            _ => out.push(*e),
        }
    }
    out
}

/// Maps pinned pages for the NIC: one IOVA range when the IOMMU translates, one
/// mapping per physically contiguous run otherwise (a passthrough domain cannot join
/// discontiguous memory).
fn map_user(dev: &Device, extents: &[PhysRange]) -> KResult<Vec<(Iova, u64)>> {
    let dir = DmaDirection::Bidirectional;
    let total = extents.iter().map(|e| e.len).sum();
    if let Ok(iova) = dev.fabric.dma_map_extents(dev.dev, extents, dir) {
        return Ok(vec![(iova, total)]);
    }
    let mut maps = Vec::new();
    for run in runs(extents) {
        match dev.fabric.dma_map_extents(dev.dev, &[run], dir) {
            Ok(iova) => maps.push((iova, run.len)),
            Err(e) => {
                tracing::debug!("{}: mapping user pages: {e}", dev.name);
                for &(iova, len) in &maps {
                    let _ = dev.fabric.dma_unmap(dev.dev, iova, len);
                }
                return Err(Errno::ENOMEM);
            }
        }
    }
    Ok(maps)
}

/// Creates a key over `list` (the page list goes to the NIC in coherent memory, read
/// once by the command).
fn create_key(
    dev: &Device,
    pdn: u32,
    iova: u64,
    length: u64,
    flags: u32,
    list: &PageList,
    mkey_flags: u8,
) -> KResult<u32> {
    let bytes = list.to_bytes();
    let pas = dev
        .kernel()?
        .dma_alloc_coherent(dev.dev, bytes.len() as u64)?;
    pas.write(0, &bytes)?;
    dev.cmd().create_mkey(&CreateMkey {
        iova,
        length,
        pas: pas.iova().raw(),
        page_offset: list.page_offset,
        npages: list.npages(),
        page_shift: list.shift,
        pdn,
        access: flags & HW_ACCESS,
        variant: dev.next_variant(),
        flags: mkey_flags,
        pad: [0; 6],
    })
}

/// Loads new pages into a key (`list`), or fails it for good (`None`).
fn update_key(dev: &Device, key: u32, list: Option<&PageList>) -> KResult<()> {
    let Some(list) = list else {
        return dev.cmd().update_mkey(&UpdateMkey {
            pas: 0,
            page_offset: 0,
            key,
            npages: 0,
            page_shift: 12,
            flags: UPDATE_MKEY_FAIL,
        });
    };
    let bytes = list.to_bytes();
    let pas = dev
        .kernel()?
        .dma_alloc_coherent(dev.dev, bytes.len() as u64)?;
    pas.write(0, &bytes)?;
    dev.cmd().update_mkey(&UpdateMkey {
        pas: pas.iova().raw(),
        page_offset: list.page_offset,
        key,
        npages: list.npages(),
        page_shift: list.shift,
        flags: 0,
    })
}

impl Mr {
    /// `REG_MR`'s work once the uverbs checks (page offsets, access flags, PD) passed:
    /// `ib_umem_get`'s checks (`EINVAL` for a wrapping range or no pages), the NIC's
    /// limit (`EINVAL` beyond `max_mr_size`), pinning (`EFAULT` if the memory is not
    /// mapped, or not writable for a writable region), mapping (`ENOMEM`) and the key.
    pub fn reg_user(dev: &Device, task: &Task<'_>, args: RegArgs) -> KResult<Mr> {
        let RegArgs {
            pd_handle,
            pdn,
            start: addr,
            length,
            iova,
            flags,
        } = args;
        let end = addr.checked_add(length).ok_or(Errno::EINVAL)?;
        let end = end
            .checked_next_multiple_of(PAGE_SIZE)
            .ok_or(Errno::EINVAL)?;
        if length == 0 || iova.checked_add(length).is_none() {
            return Err(Errno::EINVAL);
        }
        if dev.caps.max_mr_size != 0 && length > dev.caps.max_mr_size {
            return Err(Errno::EINVAL);
        }
        let start = addr - addr % PAGE_SIZE;
        let pinned = task.pin_user_pages(UserPtr(start), end - start, writable(flags))?;
        let maps = map_user(dev, pinned.extents())?;
        let mem = UserMem {
            fabric: dev.fabric.clone(),
            dev: dev.dev,
            maps,
            _pinned: pinned,
        };
        let entries: Vec<SgEntry> = mem
            .maps
            .iter()
            .map(|&(dma_addr, len)| SgEntry { dma_addr, len })
            .collect();
        let list = PageList::build(&entries, addr - start, length, dev.page_sizes())?;
        let key = create_key(dev, pdn, iova, length, flags, &list, 0)?;
        Ok(Mr {
            key,
            pd_handle,
            kind: MrKind::User(mem),
        })
    }

    /// `REG_DMABUF_MR`'s work once the checks of [`check_dmabuf_args`] and
    /// [`get_dmabuf`] passed: attach (dynamic, accepting peer memory), the first mapping
    /// under the reservation lock (`EPERM` if the exporter refuses peer-to-peer), the
    /// page list and the key. On failure everything is undone and the attachment goes.
    pub fn reg_dmabuf(dev: &Arc<Device>, buf: DmaBuf, args: RegArgs) -> KResult<Mr> {
        let RegArgs {
            pd_handle,
            pdn,
            start: offset,
            length,
            iova,
            flags,
        } = args;
        if iova.checked_add(length).is_none() {
            return Err(Errno::EINVAL);
        }
        let odp = dev.odp();
        let mr = Arc::new(DmabufMr {
            buf: buf.clone(),
            attach: OnceLock::new(),
            offset,
            length,
            iova,
            flags,
            pdn,
            odp,
            state: Mutex::new(DmabufState::default()),
        });
        let ops: Arc<dyn ImporterOps> = if odp {
            Arc::new(Invalidate {
                mr: Arc::downgrade(&mr),
                dev: Arc::downgrade(dev),
            })
        } else {
            Arc::new(PinnedWarn {
                name: dev.name.clone(),
            })
        };
        let attach = buf.dynamic_attach(dev.dev, ops)?;
        let _ = mr.attach.set(attach.clone());
        match mr.first_map(dev, &attach) {
            Ok(key) => Ok(Mr {
                key,
                pd_handle,
                kind: MrKind::Dmabuf { mr, attach },
            }),
            Err(e) => {
                if let Err(d) = buf.detach(attach) {
                    tracing::error!("{}: detaching a failed registration: {d}", dev.name);
                }
                Err(e)
            }
        }
    }

    /// Deregisters: the NIC drops the key, then the memory is given back. If the NIC
    /// fails to drop the key (`EIO`), the memory is never given back (the NIC might
    /// still reach it).
    pub fn dereg(self, dev: &Device) -> KResult<()> {
        match self.kind {
            MrKind::User(mem) => {
                if let Err(e) = dev.cmd().destroy_mkey(self.key) {
                    tracing::error!("{}: destroying key {:#x}: {e}", dev.name, self.key);
                    dev.quarantine(Box::new(mem));
                    return Err(Errno::EIO);
                }
                drop(mem);
                Ok(())
            }
            MrKind::Dmabuf { mr, attach } => mr.release(dev, attach),
        }
    }
}

/// The mutable part of a dma-buf region, changed under the buffer's reservation lock
/// (except that deregistration drops the key without it).
#[derive(Debug, Default)]
struct DmabufState {
    /// The key while the NIC has it.
    key: Option<u32>,
    /// The exporter's mapping, while the region holds one.
    sgt: Option<SgTable>,
    /// `dma_buf_pin` was called (pinned import).
    pinned: bool,
}

/// A dma-buf region: what the importer callbacks and the fault worker share with the
/// context that registered it.
#[derive(Debug)]
pub(crate) struct DmabufMr {
    buf: DmaBuf,
    attach: OnceLock<Attachment>,
    offset: u64,
    length: u64,
    iova: u64,
    flags: u32,
    pdn: u32,
    odp: bool,
    state: Mutex<DmabufState>,
}

impl DmabufMr {
    /// The mapping (made now if the region has none; then, as
    /// `ib_umem_dmabuf_map_pages`, the exporter's kernel fences are waited for) and the
    /// page list of the registered window.
    fn map(
        &self,
        dev: &Device,
        guard: &ResvGuard<'_>,
        attach: &Attachment,
        st: &mut DmabufState,
    ) -> KResult<PageList> {
        if st.sgt.is_none() {
            let sgt = self
                .buf
                .map_attachment(guard, attach, DmaDirection::Bidirectional)?;
            st.sgt = Some(sgt);
            self.buf
                .resv()
                .wait_timeout(Usage::Kernel, MAX_SCHEDULE_TIMEOUT);
        }
        let sgt = st.sgt.as_ref().ok_or(Errno::EIO)?;
        let window = trim(sgt.entries(), self.offset, self.length)?;
        PageList::build(
            &window,
            self.offset % PAGE_SIZE,
            self.length,
            dev.page_sizes(),
        )
    }

    /// Gives the mapping back (reservation lock held).
    fn unmap(&self, guard: &ResvGuard<'_>, attach: &Attachment, st: &mut DmabufState) {
        if let Some(sgt) = st.sgt.take()
            && let Err(e) =
                self.buf
                    .unmap_attachment(guard, attach, sgt, DmaDirection::Bidirectional)
        {
            tracing::error!("rdma: unmapping a dma-buf region: {e}");
        }
    }

    /// Registration: pin (pinned import), map, create the key, all under the
    /// reservation lock. An on-demand key is findable by the fault worker before the
    /// lock is dropped (an invalidation could follow at once).
    fn first_map(self: &Arc<Self>, dev: &Device, attach: &Attachment) -> KResult<u32> {
        let guard = self.buf.resv().lock(None)?;
        let mut st = lock(&self.state);
        if !self.odp {
            self.buf.pin(&guard, attach)?;
            st.pinned = true;
        }
        let created = self.map(dev, &guard, attach, &mut st).and_then(|list| {
            let mkey_flags = if self.odp { MKEY_ODP } else { 0 };
            create_key(
                dev,
                self.pdn,
                self.iova,
                self.length,
                self.flags,
                &list,
                mkey_flags,
            )
        });
        match created {
            Ok(key) => {
                st.key = Some(key);
                if self.odp {
                    lock(&dev.odp_mrs).insert(key, self.clone());
                }
                Ok(key)
            }
            Err(e) => {
                self.unmap(&guard, attach, &mut st);
                if st.pinned {
                    let _ = self.buf.unpin(&guard, attach);
                    st.pinned = false;
                }
                Err(e)
            }
        }
    }

    /// `move_notify` of an on-demand region (reservation lock held by the exporter):
    /// the NIC stops translating, then the mapping goes back to the exporter. The next
    /// access faults.
    fn invalidate(&self, dev: &Device, attach: &Attachment, guard: &ResvGuard<'_>) {
        let mut st = lock(&self.state);
        if st.sgt.is_none() {
            return;
        }
        if let Some(key) = st.key
            && let Err(e) = dev.cmd().invalidate_mkey(key)
        {
            // The IOMMU still refuses the NIC once the mapping is gone.
            tracing::error!("{}: invalidating key {key:#x}: {e}", dev.name);
        }
        self.unmap(guard, attach, &mut st);
    }

    /// An access faulted on this region's key (fault worker): map the buffer again and
    /// load the pages, or fail the key if that is impossible.
    pub fn page_fault(&self, dev: &Device) {
        let Some(attach) = self.attach.get() else {
            return;
        };
        let guard = match self.buf.resv().lock(None) {
            Ok(guard) => guard,
            Err(e) => {
                // Never leave the NIC waiting.
                tracing::error!("{}: locking a faulting buffer: {e}", dev.name);
                if let Some(key) = lock(&self.state).key {
                    let _ = update_key(dev, key, None);
                }
                return;
            }
        };
        let mut st = lock(&self.state);
        let Some(key) = st.key else {
            return;
        };
        let list = match self.map(dev, &guard, attach, &mut st) {
            Ok(list) => Some(list),
            Err(e) => {
                tracing::debug!("{}: key {key:#x} cannot be mapped again: {e}", dev.name);
                self.unmap(&guard, attach, &mut st);
                None
            }
        };
        if let Err(e) = update_key(dev, key, list.as_ref()) {
            tracing::error!("{}: updating key {key:#x}: {e}", dev.name);
        }
    }

    /// `ib_umem_dmabuf_release` after the driver's dereg.
    fn release(self: Arc<Self>, dev: &Device, attach: Attachment) -> KResult<()> {
        {
            let mut st = lock(&self.state);
            if let Some(key) = st.key {
                if let Err(e) = dev.cmd().destroy_mkey(key) {
                    tracing::error!("{}: destroying key {key:#x}: {e}", dev.name);
                    drop(st);
                    dev.quarantine(Box::new((self, attach)));
                    return Err(Errno::EIO);
                }
                st.key = None;
                lock(&dev.odp_mrs).remove(&key);
            }
        }
        match self.buf.resv().lock(None) {
            Ok(guard) => {
                let mut st = lock(&self.state);
                self.unmap(&guard, &attach, &mut st);
                if st.pinned {
                    let _ = self.buf.unpin(&guard, &attach);
                    st.pinned = false;
                }
            }
            Err(e) => tracing::error!("{}: locking a released buffer: {e}", dev.name),
        }
        self.buf.detach(attach)
    }
}

/// The importer callbacks of an on-demand dma-buf region.
struct Invalidate {
    mr: Weak<DmabufMr>,
    dev: Weak<Device>,
}

impl ImporterOps for Invalidate {
    fn allow_peer2peer(&self) -> bool {
        true
    }

    fn move_notify(&self, attach: &Attachment, guard: &ResvGuard<'_>) {
        if let (Some(mr), Some(dev)) = (self.mr.upgrade(), self.dev.upgrade()) {
            mr.invalidate(&dev, attach, guard);
        }
    }
}

/// The importer callbacks of a pinned dma-buf region
/// (`ib_umem_dmabuf_attach_pinned_ops`).
struct PinnedWarn {
    name: String,
}

impl ImporterOps for PinnedWarn {
    fn allow_peer2peer(&self) -> bool {
        true
    }

    fn move_notify(&self, _attach: &Attachment, _guard: &ResvGuard<'_>) {
        tracing::warn!(
            "{}: invalidate callback should not be called when memory is pinned",
            self.name
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sagrada_hw_fabric::{Fabric, PhysAddr};
    use sagrada_kernel_core::{Kernel, OpenFlags};
    use sagrada_kernel_dmabuf::{DmaBufOps, ExportInfo};

    const LW: u32 = access::LOCAL_WRITE;
    const RW: u32 = access::REMOTE_WRITE;
    const RR: u32 = access::REMOTE_READ;
    const RA: u32 = access::REMOTE_ATOMIC;

    #[test]
    fn remote_write_or_atomic_needs_local_write() {
        assert_eq!(check_mr_access(RW, false), Err(Errno::EINVAL));
        assert_eq!(check_mr_access(RA, false), Err(Errno::EINVAL));
        assert_eq!(check_mr_access(RW | RA | RR, false), Err(Errno::EINVAL));
        assert_eq!(check_mr_access(LW | RW | RA | RR, false), Ok(()));
        assert_eq!(check_mr_access(RR, false), Ok(()));
        assert_eq!(check_mr_access(0, false), Ok(()));
    }

    #[test]
    fn unknown_flags_are_einval_and_unsupported_ones_eopnotsupp() {
        assert_eq!(check_mr_access(1 << 10, false), Err(Errno::EINVAL));
        assert_eq!(check_mr_access(1 << 30, false), Err(Errno::EINVAL));
        assert_eq!(check_mr_access(1 << 31, false), Err(Errno::EINVAL));
        // The optional range is accepted (and ignored).
        assert_eq!(check_mr_access(access::RELAXED_ORDERING, false), Ok(()));
        assert_eq!(check_mr_access(1 << 29, false), Ok(()));
        assert_eq!(
            check_mr_access(access::ON_DEMAND, false),
            Err(Errno::EOPNOTSUPP)
        );
        assert_eq!(check_mr_access(access::ON_DEMAND | LW, true), Ok(()));
        assert_eq!(
            check_mr_access(ACCESS_FLUSH_GLOBAL | LW, true),
            Err(Errno::EOPNOTSUPP)
        );
        // Missing local write is found before the unsupported flag.
        assert_eq!(
            check_mr_access(access::ON_DEMAND | RW, false),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            check_mr_access(
                access::MW_BIND | access::ZERO_BASED | access::HUGETLB,
                false
            ),
            Ok(())
        );
    }

    #[test]
    fn rkey_only_with_remote_access() {
        assert_eq!(rkey(0x1234, LW), 0);
        assert_eq!(rkey(0x1234, RR), 0x1234);
        assert_eq!(rkey(0x1234, LW | RW), 0x1234);
    }

    #[test]
    fn dmabuf_argument_checks_come_in_the_kernels_order() {
        // Not offered: before anything else.
        assert_eq!(
            check_dmabuf_args(false, 1, 0, 0, 1 << 31),
            Err(Errno::EOPNOTSUPP)
        );
        // Page offsets differ: before the flags.
        assert_eq!(
            check_dmabuf_args(true, 0x1010, 4096, 0x2020, 1 << 31),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            check_dmabuf_args(true, 0x1010, 4096, 0x7_0010, LW),
            Ok(0x2010)
        );
        // Flags outside LW|RW|RR|RA|RO, ON_DEMAND and MW_BIND included.
        for bad in [
            access::ON_DEMAND,
            access::MW_BIND,
            access::ZERO_BASED,
            1 << 21,
        ] {
            assert_eq!(
                check_dmabuf_args(true, 0, 4096, 0, LW | bad),
                Err(Errno::EINVAL),
                "{bad:#x}"
            );
        }
        assert_eq!(
            check_dmabuf_args(
                true,
                0,
                4096,
                0,
                LW | RW | RR | RA | access::RELAXED_ORDERING
            ),
            Ok(4096)
        );
        // Remote write or atomic without local write.
        assert_eq!(check_dmabuf_args(true, 0, 4096, 0, RW), Err(Errno::EINVAL));
        assert_eq!(check_dmabuf_args(true, 0, 4096, 0, RA), Err(Errno::EINVAL));
        // offset + length wraps.
        assert_eq!(
            check_dmabuf_args(true, !0xfff, 0x1000, 0, LW),
            Err(Errno::EINVAL)
        );
        // NCCL's probe: reg_dmabuf_mr(pd, 0, 0, 0, -1, 0) passes these, so that the fd
        // decides (EBADF).
        assert_eq!(check_dmabuf_args(true, 0, 0, 0, 0), Ok(0));
    }

    /// An exporter of `size` bytes at a fixed address.
    struct Flat;

    impl DmaBufOps for Flat {
        fn map_dma_buf(&self, attach: &Attachment, _dir: DmaDirection) -> KResult<SgTable> {
            Ok(SgTable::new(vec![SgEntry {
                dma_addr: Iova(0x1000_0000),
                len: attach.buffer_size(),
            }]))
        }
        fn unmap_dma_buf(&self, _attach: &Attachment, _sgt: SgTable, _dir: DmaDirection) {}
        fn release(&self) {}
    }

    #[test]
    fn the_fd_is_checked_then_the_size_then_the_length() {
        let kernel = Kernel::new(Fabric::default_machine().unwrap());
        let registry = sagrada_kernel_dmabuf::install(&kernel).unwrap();
        let pid = kernel.spawn("test");
        let buf = registry
            .export(ExportInfo {
                exp_name: "flat".to_owned(),
                ops: Box::new(Flat),
                size: 0x4000,
                flags: OpenFlags::RDWR,
                resv: None,
            })
            .unwrap();
        let not_a_dmabuf = kernel
            .open(
                pid,
                sagrada_kernel_dmabuf::uapi::SW_SYNC_DEV_PATH,
                OpenFlags::RDWR,
            )
            .unwrap();
        kernel
            .with_task(pid, |task| {
                let fd = buf.fd(task, OpenFlags::CLOEXEC)?;
                // NCCL's probe: length 0 and fd -1 is EBADF, not EINVAL.
                assert_eq!(get_dmabuf(task, -1, 0, 0).err(), Some(Errno::EBADF));
                assert_eq!(get_dmabuf(task, 1000, 0, 0).err(), Some(Errno::EBADF));
                assert_eq!(
                    get_dmabuf(task, not_a_dmabuf, 0x1000, 0x1000).err(),
                    Some(Errno::EINVAL)
                );
                // Too small for offset + length, before the zero length.
                assert_eq!(get_dmabuf(task, fd, 0x4001, 0).err(), Some(Errno::EINVAL));
                assert_eq!(get_dmabuf(task, fd, 0x1000, 0).err(), Some(Errno::EINVAL));
                let got = get_dmabuf(task, fd, 0x4000, 0x1000)?;
                assert_eq!(got.size(), 0x4000);
                Ok(())
            })
            .unwrap();
    }

    fn r(start: u64, len: u64) -> PhysRange {
        PhysRange {
            start: PhysAddr(start),
            len,
        }
    }

    #[test]
    fn contiguous_pinned_extents_merge_into_runs() {
        let pages = [
            r(0x1000, 0x1000),
            r(0x2000, 0x1000),
            r(0x9000, 0x1000),
            r(0xa000, 0x800),
        ];
        assert_eq!(runs(&pages), vec![r(0x1000, 0x2000), r(0x9000, 0x1800)]);
        assert!(runs(&[]).is_empty());
    }
}
