//! The page allocator over host DRAM.
//!
//! Free memory is kept as a map of free extents. Pages are zeroed when freed (the
//! memory is discarded, which also gives the host RAM back), so every allocation
//! returns zeroed pages and no data survives from one owner to the next. The first
//! megabyte is never handed out, as on a PC, which also keeps physical address 0 out of
//! circulation.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use sagrada_hw_fabric::{Memory, PAGE_SIZE, PhysAddr, PhysRange};

use crate::errno::{Errno, KResult};
use crate::wait::lock;

/// Memory below this address is reserved.
pub const RESERVED_LOW: u64 = 1 << 20;

/// Allocates and frees page-aligned host DRAM.
#[derive(Debug)]
pub struct FrameAllocator {
    memory: Arc<Memory>,
    range: PhysRange,
    /// start → length of each free extent; extents never touch (they are merged).
    free: Mutex<BTreeMap<u64, u64>>,
    /// Pinned pages (page address → pin count), and the pinned pages whose owner has
    /// freed them: they are freed when the last pin goes.
    pins: Mutex<Pins>,
}

#[derive(Debug, Default)]
struct Pins {
    count: HashMap<u64, u32>,
    orphaned: HashSet<u64>,
}

/// The page-aligned pages an extent touches.
fn pages(e: &PhysRange) -> impl Iterator<Item = u64> {
    let first = e.start.raw() / PAGE_SIZE * PAGE_SIZE;
    let end = e.start.raw() + e.len;
    (first..end).step_by(PAGE_SIZE as usize)
}

/// Rounds `bytes` up to whole pages, or `None` on overflow.
pub const fn page_align(bytes: u64) -> Option<u64> {
    match bytes.checked_add(PAGE_SIZE - 1) {
        Some(v) => Some(v / PAGE_SIZE * PAGE_SIZE),
        None => None,
    }
}

impl FrameAllocator {
    /// An allocator over `range` of host DRAM, backed by `memory` (which holds DRAM from
    /// physical address 0).
    pub fn new(memory: Arc<Memory>, range: PhysRange) -> Self {
        let start = range.start.raw().max(RESERVED_LOW).div_ceil(PAGE_SIZE) * PAGE_SIZE;
        let end = (range.start.raw() + range.len) / PAGE_SIZE * PAGE_SIZE;
        let mut free = BTreeMap::new();
        if end > start {
            free.insert(start, end - start);
        }
        Self {
            memory,
            range,
            free: Mutex::new(free),
            pins: Mutex::new(Pins::default()),
        }
    }

    /// Bytes currently free.
    pub fn free_bytes(&self) -> u64 {
        lock(&self.free).values().sum()
    }

    /// Allocates `bytes` (rounded up to pages) of zeroed memory in as few extents as
    /// possible: one if a large enough hole exists, else first fit across holes.
    /// `contiguous` demands a single extent.
    pub fn alloc(&self, bytes: u64, contiguous: bool) -> KResult<Vec<PhysRange>> {
        let want = page_align(bytes).filter(|&b| b > 0).ok_or(Errno::EINVAL)?;
        let mut free = lock(&self.free);
        if let Some((&start, &len)) = free.iter().find(|&(_, &len)| len >= want) {
            free.remove(&start);
            if len > want {
                free.insert(start + want, len - want);
            }
            return Ok(vec![PhysRange {
                start: PhysAddr(start),
                len: want,
            }]);
        }
        if contiguous || free.values().sum::<u64>() < want {
            return Err(Errno::ENOMEM);
        }
        let mut extents = Vec::new();
        let mut left = want;
        while left > 0 {
            let (&start, &len) = free.iter().next().ok_or(Errno::ENOMEM)?;
            free.remove(&start);
            let take = len.min(left);
            if len > take {
                free.insert(start + take, len - take);
            }
            extents.push(PhysRange {
                start: PhysAddr(start),
                len: take,
            });
            left -= take;
        }
        Ok(extents)
    }

    /// Pins the pages behind `extents`: a later [`FrameAllocator::free`] of them is
    /// deferred until they are unpinned.
    pub fn pin(&self, extents: &[PhysRange]) {
        let mut pins = lock(&self.pins);
        for page in extents.iter().flat_map(pages) {
            *pins.count.entry(page).or_insert(0) += 1;
        }
    }

    /// Drops pins taken by [`FrameAllocator::pin`], freeing pages whose owner already
    /// freed them.
    pub fn unpin(&self, extents: &[PhysRange]) {
        let mut release = Vec::new();
        {
            let mut pins = lock(&self.pins);
            for page in extents.iter().flat_map(pages) {
                let Some(n) = pins.count.get_mut(&page) else {
                    continue;
                };
                *n -= 1;
                if *n == 0 {
                    pins.count.remove(&page);
                    if pins.orphaned.remove(&page) {
                        release.push(PhysRange {
                            start: PhysAddr(page),
                            len: PAGE_SIZE,
                        });
                    }
                }
            }
        }
        self.release(&release);
    }

    /// Pages currently pinned.
    pub fn pinned_pages(&self) -> usize {
        lock(&self.pins).count.len()
    }

    /// Returns extents obtained from [`FrameAllocator::alloc`]; their contents are
    /// discarded first. Pinned pages stay allocated until their last pin goes.
    pub fn free(&self, extents: &[PhysRange]) {
        let mut now = Vec::new();
        {
            let mut pins = lock(&self.pins);
            if pins.count.is_empty() {
                now.extend_from_slice(extents);
            } else {
                for e in extents {
                    for page in pages(e) {
                        if pins.count.contains_key(&page) {
                            pins.orphaned.insert(page);
                        } else {
                            now.push(PhysRange {
                                start: PhysAddr(page),
                                len: PAGE_SIZE,
                            });
                        }
                    }
                }
            }
        }
        self.release(&now);
    }

    fn release(&self, extents: &[PhysRange]) {
        for e in extents {
            let offset = e.start.raw() - self.range.start.raw();
            if let Err(err) = self.memory.discard(offset, e.len) {
                // Only a caller passing memory it never got here could reach this.
                tracing::error!("freeing {e:?}: {err}");
                continue;
            }
            self.insert_free(e.start.raw(), e.len);
        }
    }

    fn insert_free(&self, mut start: u64, mut len: u64) {
        let mut free = lock(&self.free);
        if let Some((&prev, &plen)) = free.range(..start).next_back() {
            debug_assert!(prev + plen <= start, "double free of {start:#x}");
            if prev + plen == start {
                free.remove(&prev);
                start = prev;
                len += plen;
            }
        }
        if let Some(&nlen) = free.get(&(start + len)) {
            free.remove(&(start + len));
            len += nlen;
        }
        free.insert(start, len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allocator(bytes: u64) -> FrameAllocator {
        let mem = Arc::new(Memory::new("dram", bytes).unwrap());
        FrameAllocator::new(
            mem,
            PhysRange {
                start: PhysAddr(0),
                len: bytes,
            },
        )
    }

    #[test]
    fn the_first_megabyte_is_reserved() {
        let a = allocator(4 << 20);
        assert_eq!(a.free_bytes(), 3 << 20);
        let e = a.alloc(1, false).unwrap();
        assert_eq!(
            e,
            vec![PhysRange {
                start: PhysAddr(RESERVED_LOW),
                len: PAGE_SIZE
            }]
        );
    }

    #[test]
    fn freed_memory_is_zero_when_reallocated() {
        let a = allocator(4 << 20);
        let e = a.alloc(PAGE_SIZE, true).unwrap();
        a.memory.fill(e[0].start.raw(), PAGE_SIZE, 0x5a).unwrap();
        a.free(&e);
        let again = a.alloc(PAGE_SIZE, true).unwrap();
        assert_eq!(again, e);
        let mut page = vec![1u8; PAGE_SIZE as usize];
        a.memory.read(again[0].start.raw(), &mut page).unwrap();
        assert!(page.iter().all(|&b| b == 0));
    }

    #[test]
    fn fragmented_memory_gives_several_extents_unless_contiguous() {
        let a = allocator(RESERVED_LOW + 4 * PAGE_SIZE);
        let pages: Vec<_> = (0..4).map(|_| a.alloc(PAGE_SIZE, true).unwrap()).collect();
        a.free(&pages[0]);
        a.free(&pages[2]);
        assert_eq!(a.alloc(2 * PAGE_SIZE, true), Err(Errno::ENOMEM));
        let two = a.alloc(2 * PAGE_SIZE, false).unwrap();
        assert_eq!(two.len(), 2);
        assert_eq!(a.alloc(PAGE_SIZE, false), Err(Errno::ENOMEM));
    }

    #[test]
    fn freeing_merges_neighbours() {
        let a = allocator(RESERVED_LOW + 3 * PAGE_SIZE);
        let p: Vec<_> = (0..3).map(|_| a.alloc(PAGE_SIZE, true).unwrap()).collect();
        a.free(&p[0]);
        a.free(&p[2]);
        a.free(&p[1]);
        assert_eq!(a.alloc(3 * PAGE_SIZE, true).unwrap().len(), 1);
    }

    #[test]
    fn pinned_pages_outlive_their_free() {
        let a = allocator(RESERVED_LOW + 2 * PAGE_SIZE);
        let e = a.alloc(2 * PAGE_SIZE, true).unwrap();
        a.memory
            .fill(e[0].start.raw(), 2 * PAGE_SIZE, 0x11)
            .unwrap();
        let second = PhysRange {
            start: PhysAddr(e[0].start.raw() + PAGE_SIZE + 100),
            len: 8,
        };
        a.pin(&[second]);
        a.free(&e);
        assert_eq!(a.free_bytes(), PAGE_SIZE, "the pinned page is not free yet");
        let mut byte = [0u8];
        a.memory.read(second.start.raw(), &mut byte).unwrap();
        assert_eq!(byte, [0x11], "and keeps its data for the device");
        a.unpin(&[second]);
        assert_eq!(a.free_bytes(), 2 * PAGE_SIZE);
        assert_eq!(a.pinned_pages(), 0);
    }

    #[test]
    fn zero_and_huge_requests_are_refused() {
        let a = allocator(4 << 20);
        assert_eq!(a.alloc(0, false), Err(Errno::EINVAL));
        assert_eq!(a.alloc(u64::MAX, false), Err(Errno::EINVAL));
        assert_eq!(a.alloc(1 << 30, false), Err(Errno::ENOMEM));
    }
}
