//! Process address spaces: the mappings of user memory and `copy_{from,to}_user`.
//!
//! User memory is host DRAM (anonymous mappings get pages from the frame allocator) or
//! whatever a file's mmap provides (a dma-buf's pages, later a device BAR). Every user
//! pointer the kernel dereferences goes through here and fails with `EFAULT` when any
//! byte of the range is unmapped or lacks the needed permission; nothing is copied in
//! that case.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use sagrada_hw_fabric::{Fabric, PAGE_SIZE, PhysAddr, PhysRange};

use crate::errno::{Errno, KResult};
use crate::file::{File, Prot};
use crate::mm::page_align;
use crate::wait::lock;

/// A pointer into a process's address space.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct UserPtr(pub u64);

impl UserPtr {
    /// The null pointer.
    pub const NULL: Self = Self(0);

    /// `self + offset`, or `None` on overflow.
    pub const fn checked_add(self, offset: u64) -> Option<Self> {
        match self.0.checked_add(offset) {
            Some(v) => Some(Self(v)),
            None => None,
        }
    }
}

impl fmt::Debug for UserPtr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserPtr({:#x})", self.0)
    }
}

impl fmt::Display for UserPtr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// Lowest address handed out by `mmap`.
const MMAP_MIN: u64 = 0x1_0000;
/// Mappings are placed top-down below this address.
const MMAP_TOP: u64 = 0x7fff_f000_0000;

/// What backs a mapping.
#[derive(Clone, Debug)]
pub(crate) enum Backing {
    /// Private pages owned by the mapping, freed on unmap.
    Anon,
    /// Pages provided by a file's mmap; the mapping holds the file open.
    File(Arc<File>),
}

#[derive(Clone, Debug)]
struct Vma {
    len: u64,
    prot: Prot,
    backing: Backing,
    /// Physical memory behind the mapping, in order, covering exactly `len` bytes.
    extents: Vec<PhysRange>,
}

/// The sub-list of `extents` covering bytes `offset..offset + len` of their
/// concatenation.
pub fn slice_extents(extents: &[PhysRange], offset: u64, len: u64) -> Vec<PhysRange> {
    let mut out = Vec::new();
    let (mut skip, mut left) = (offset, len);
    for e in extents {
        if left == 0 {
            break;
        }
        if skip >= e.len {
            skip -= e.len;
            continue;
        }
        let take = (e.len - skip).min(left);
        out.push(PhysRange {
            start: PhysAddr(e.start.raw() + skip),
            len: take,
        });
        left -= take;
        skip = 0;
    }
    out
}

/// Memory released by an unmap, for the kernel to give back.
#[derive(Debug, Default)]
pub(crate) struct Unmapped {
    pub anon: Vec<PhysRange>,
    pub files: Vec<Arc<File>>,
}

/// The mappings of one process.
#[derive(Debug, Default)]
pub(crate) struct AddressSpace {
    vmas: Mutex<BTreeMap<u64, Vma>>,
}

impl AddressSpace {
    /// Places a mapping of `len` bytes (a multiple of the page size) at the highest free
    /// address.
    pub fn map(
        &self,
        len: u64,
        prot: Prot,
        backing: Backing,
        extents: Vec<PhysRange>,
    ) -> KResult<UserPtr> {
        debug_assert_eq!(extents.iter().map(|e| e.len).sum::<u64>(), len);
        let mut vmas = lock(&self.vmas);
        let mut top = MMAP_TOP;
        for (&start, vma) in vmas.iter().rev() {
            let end = start + vma.len;
            if end <= top && top - end >= len {
                break;
            }
            top = top.min(start);
        }
        let start = top
            .checked_sub(len)
            .filter(|&s| s >= MMAP_MIN)
            .ok_or(Errno::ENOMEM)?;
        vmas.insert(
            start,
            Vma {
                len,
                prot,
                backing,
                extents,
            },
        );
        Ok(UserPtr(start))
    }

    /// Removes every mapping in `addr..addr + len`, splitting mappings that straddle the
    /// edges (like `munmap`).
    pub fn unmap(&self, addr: UserPtr, len: u64) -> KResult<Unmapped> {
        if !addr.0.is_multiple_of(PAGE_SIZE) || len == 0 {
            return Err(Errno::EINVAL);
        }
        let len = page_align(len).ok_or(Errno::EINVAL)?;
        let end = addr.0.checked_add(len).ok_or(Errno::EINVAL)?;
        let mut vmas = lock(&self.vmas);
        let mut out = Unmapped::default();
        let hit: Vec<u64> = vmas
            .range(..end)
            .filter(|&(&start, vma)| start + vma.len > addr.0)
            .map(|(&start, _)| start)
            .collect();
        for start in hit {
            let Some(vma) = vmas.remove(&start) else {
                continue;
            };
            let vend = start + vma.len;
            let cut_from = addr.0.max(start);
            let cut_to = end.min(vend);
            let piece = |from: u64, to: u64| Vma {
                len: to - from,
                prot: vma.prot,
                backing: vma.backing.clone(),
                extents: slice_extents(&vma.extents, from - start, to - from),
            };
            if start < cut_from {
                vmas.insert(start, piece(start, cut_from));
            }
            if cut_to < vend {
                vmas.insert(cut_to, piece(cut_to, vend));
            }
            let removed = slice_extents(&vma.extents, cut_from - start, cut_to - cut_from);
            match vma.backing {
                Backing::Anon => out.anon.extend(removed),
                Backing::File(file) => out.files.push(file),
            }
        }
        Ok(out)
    }

    /// Removes every mapping (process exit).
    pub fn unmap_all(&self) -> Unmapped {
        let vmas = std::mem::take(&mut *lock(&self.vmas));
        let mut out = Unmapped::default();
        for vma in vmas.into_values() {
            match vma.backing {
                Backing::Anon => out.anon.extend(vma.extents),
                Backing::File(file) => out.files.push(file),
            }
        }
        out
    }

    /// The physical memory behind `ptr..ptr + len`, in order, if every byte is mapped
    /// with at least `need`.
    pub fn resolve(&self, ptr: UserPtr, len: u64, need: Prot) -> KResult<Vec<PhysRange>> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let end = ptr.0.checked_add(len).ok_or(Errno::EFAULT)?;
        let vmas = lock(&self.vmas);
        let mut out = Vec::new();
        let mut at = ptr.0;
        while at < end {
            let (&start, vma) = vmas.range(..=at).next_back().ok_or(Errno::EFAULT)?;
            if start + vma.len <= at || !vma.prot.contains(need) {
                return Err(Errno::EFAULT);
            }
            let take = (start + vma.len).min(end) - at;
            out.extend(slice_extents(&vma.extents, at - start, take));
            at += take;
        }
        Ok(out)
    }

    /// A copy of this address space for a forked child: private anonymous memory is
    /// copied into pages from `alloc`, file mappings are shared.
    pub fn fork(
        &self,
        fabric: &Fabric,
        alloc: impl Fn(u64) -> KResult<Vec<PhysRange>>,
    ) -> KResult<AddressSpace> {
        let vmas = lock(&self.vmas);
        let mut copy = BTreeMap::new();
        for (&start, vma) in vmas.iter() {
            let extents = match vma.backing {
                Backing::File(_) => vma.extents.clone(),
                Backing::Anon => {
                    let fresh = alloc(vma.len)?;
                    copy_extents(fabric, &vma.extents, &fresh)?;
                    fresh
                }
            };
            copy.insert(
                start,
                Vma {
                    extents,
                    ..vma.clone()
                },
            );
        }
        Ok(AddressSpace {
            vmas: Mutex::new(copy),
        })
    }
}

/// Copies the bytes of `from` into `to` (equal total lengths) through the CPU.
fn copy_extents(fabric: &Fabric, from: &[PhysRange], to: &[PhysRange]) -> KResult<()> {
    let mut buf = vec![0u8; PAGE_SIZE as usize * 16];
    let mut offset = 0;
    let total: u64 = from.iter().map(|e| e.len).sum();
    while offset < total {
        let n = (total - offset).min(buf.len() as u64);
        let chunk = &mut buf[..n as usize];
        read_extents(fabric, &slice_extents(from, offset, n), chunk)?;
        write_extents(fabric, &slice_extents(to, offset, n), chunk)?;
        offset += n;
    }
    Ok(())
}

/// Reads physical extents into `dst` (whose length equals their total) as the CPU.
pub(crate) fn read_extents(fabric: &Fabric, extents: &[PhysRange], dst: &mut [u8]) -> KResult<()> {
    let mut at = 0usize;
    for e in extents {
        let n = e.len as usize;
        fabric
            .cpu_read(e.start, &mut dst[at..at + n])
            .map_err(|_| Errno::EFAULT)?;
        at += n;
    }
    Ok(())
}

/// Writes `src` (whose length equals the extents' total) to physical extents as the CPU.
pub(crate) fn write_extents(fabric: &Fabric, extents: &[PhysRange], src: &[u8]) -> KResult<()> {
    let mut at = 0usize;
    for e in extents {
        let n = e.len as usize;
        fabric
            .cpu_write(e.start, &src[at..at + n])
            .map_err(|_| Errno::EFAULT)?;
        at += n;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(start: u64, len: u64) -> PhysRange {
        PhysRange {
            start: PhysAddr(start),
            len,
        }
    }

    #[test]
    fn slicing_extents_crosses_boundaries() {
        let e = [r(0x1000, 0x1000), r(0x5000, 0x2000)];
        assert_eq!(
            slice_extents(&e, 0x800, 0x1000),
            vec![r(0x1800, 0x800), r(0x5000, 0x800)]
        );
        assert_eq!(slice_extents(&e, 0x1000, 0x2000), vec![r(0x5000, 0x2000)]);
        assert!(slice_extents(&e, 0x3000, 0).is_empty());
    }

    #[test]
    fn mappings_are_placed_top_down_without_overlap() {
        let mm = AddressSpace::default();
        let a = mm
            .map(
                0x2000,
                Prot::READ_WRITE,
                Backing::Anon,
                vec![r(0x10_0000, 0x2000)],
            )
            .unwrap();
        let b = mm
            .map(
                0x1000,
                Prot::READ,
                Backing::Anon,
                vec![r(0x20_0000, 0x1000)],
            )
            .unwrap();
        assert_eq!(a.0, MMAP_TOP - 0x2000);
        assert_eq!(b.0, a.0 - 0x1000);
    }

    #[test]
    fn resolve_checks_every_byte_and_the_permission() {
        let mm = AddressSpace::default();
        let a = mm
            .map(
                0x2000,
                Prot::READ,
                Backing::Anon,
                vec![r(0x10_0000, 0x1000), r(0x30_0000, 0x1000)],
            )
            .unwrap();
        assert_eq!(
            mm.resolve(UserPtr(a.0 + 0xff0), 0x20, Prot::READ).unwrap(),
            vec![r(0x10_0ff0, 0x10), r(0x30_0000, 0x10)]
        );
        assert_eq!(
            mm.resolve(UserPtr(a.0), 0x10, Prot::WRITE),
            Err(Errno::EFAULT)
        );
        assert_eq!(
            mm.resolve(UserPtr(a.0 + 0x1ff0), 0x20, Prot::READ),
            Err(Errno::EFAULT)
        );
        assert_eq!(
            mm.resolve(UserPtr(u64::MAX), 2, Prot::READ),
            Err(Errno::EFAULT)
        );
        assert_eq!(mm.resolve(UserPtr::NULL, 1, Prot::READ), Err(Errno::EFAULT));
    }

    #[test]
    fn partial_unmap_splits_the_mapping() {
        let mm = AddressSpace::default();
        let a = mm
            .map(
                0x3000,
                Prot::READ_WRITE,
                Backing::Anon,
                vec![r(0x10_0000, 0x3000)],
            )
            .unwrap();
        let gone = mm.unmap(UserPtr(a.0 + 0x1000), 0x1000).unwrap();
        assert_eq!(gone.anon, vec![r(0x10_1000, 0x1000)]);
        assert!(mm.resolve(UserPtr(a.0), 0x1000, Prot::READ).is_ok());
        assert_eq!(
            mm.resolve(UserPtr(a.0 + 0x1000), 1, Prot::READ),
            Err(Errno::EFAULT)
        );
        assert_eq!(
            mm.resolve(UserPtr(a.0 + 0x2000), 0x1000, Prot::READ)
                .unwrap(),
            vec![r(0x10_2000, 0x1000)]
        );
        assert_eq!(
            mm.unmap(UserPtr(a.0 + 1), 0x1000).unwrap_err(),
            Errno::EINVAL
        );
        assert_eq!(mm.unmap(UserPtr(a.0), 0).unwrap_err(), Errno::EINVAL);
    }
}
