//! Device memory management: the HBM page allocator, the pool of page-table pages, the
//! per-context virtual address allocators, and page tables written into HBM.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use sagrada_hw_accel_abi::mmu::{
    ENTRIES, PAGE_2M, PAGE_4K, PTE_ADDR_MASK, PTE_HOST, PTE_LARGE, PTE_PRESENT, PTE_WRITABLE,
    TABLE_SIZE, index, pte,
};
use sagrada_hw_fabric::{Fabric, PhysAddr};
use sagrada_kernel_core::{Errno, KResult};

/// Granularity of device memory allocations (the SG1's "DRAM page").
pub const DRAM_PAGE_SIZE: u64 = PAGE_2M;
/// First device VA of device-memory mappings.
pub const DRAM_VA_BASE: u64 = 0x1000_0000_0000;
/// End of device-memory mappings.
pub const DRAM_VA_END: u64 = 0x2000_0000_0000;
/// First device VA of host-memory mappings.
pub const HOST_VA_BASE: u64 = 0x0000_1000_0000;
/// End of host-memory mappings.
pub const HOST_VA_END: u64 = 0x0800_0000_0000;

/// HBM pages handed out to contexts. A free clears the pages (through the device's
/// scrubber) before they return to the pool.
#[derive(Debug)]
pub(crate) struct HbmAllocator {
    page_size: u64,
    pages: u64,
    free: BTreeSet<u64>,
}

impl HbmAllocator {
    /// An allocator over the first `bytes` of HBM.
    pub fn new(bytes: u64) -> Self {
        let pages = bytes / DRAM_PAGE_SIZE;
        Self {
            page_size: DRAM_PAGE_SIZE,
            pages,
            free: (0..pages).collect(),
        }
    }

    /// Bytes free.
    pub fn free_bytes(&self) -> u64 {
        self.free.len() as u64 * self.page_size
    }

    /// Bytes managed.
    pub fn total_bytes(&self) -> u64 {
        self.pages * self.page_size
    }

    /// `bytes` rounded up to pages, as HBM addresses; contiguous if asked. `ENOMEM` if
    /// there is not enough (contiguous) memory.
    pub fn alloc(&mut self, bytes: u64, contiguous: bool) -> KResult<Vec<u64>> {
        let n = bytes.div_ceil(self.page_size);
        if n == 0 || n > self.free.len() as u64 {
            return Err(Errno::ENOMEM);
        }
        let chosen: Vec<u64> = if contiguous {
            let mut run_start = None;
            let mut found = None;
            let mut prev = None;
            for &p in &self.free {
                if prev.is_none_or(|q| q + 1 != p) {
                    run_start = Some(p);
                }
                prev = Some(p);
                if let Some(s) = run_start
                    && p + 1 - s == n
                {
                    found = Some(s);
                    break;
                }
            }
            let start = found.ok_or(Errno::ENOMEM)?;
            (start..start + n).collect()
        } else {
            self.free.iter().copied().take(n as usize).collect()
        };
        for p in &chosen {
            self.free.remove(p);
        }
        Ok(chosen.into_iter().map(|p| p * self.page_size).collect())
    }

    /// Returns pages (already scrubbed by the caller).
    pub fn release(&mut self, pages: &[u64]) {
        for &pa in pages {
            self.free.insert(pa / self.page_size);
        }
    }

    /// After a hard reset every page is free (and zero) again.
    pub fn reset(&mut self) {
        self.free = (0..self.pages).collect();
    }
}

/// 4 KiB pages of HBM for page tables, at the top of HBM.
#[derive(Debug)]
pub(crate) struct PtPool {
    base: u64,
    end: u64,
    free: Vec<u64>,
}

impl PtPool {
    pub fn new(base: u64, end: u64) -> Self {
        let mut free: Vec<u64> = (base..end).step_by(TABLE_SIZE as usize).collect();
        // Hand out the lowest pages first.
        free.reverse();
        Self { base, end, free }
    }

    /// A zeroed table page.
    pub fn alloc(&mut self) -> KResult<u64> {
        self.free.pop().ok_or(Errno::ENOMEM)
    }

    /// Returns a table page (already zeroed by the caller).
    pub fn release(&mut self, pa: u64) {
        self.free.push(pa);
    }

    /// After a hard reset every table page is free again.
    pub fn reset(&mut self) {
        *self = Self::new(self.base, self.end);
    }
}

/// A first-fit allocator of virtual address ranges.
#[derive(Debug)]
pub(crate) struct VaAllocator {
    align: u64,
    free: BTreeMap<u64, u64>,
}

impl VaAllocator {
    pub fn new(start: u64, end: u64, align: u64) -> Self {
        Self {
            align,
            free: BTreeMap::from([(start, end - start)]),
        }
    }

    /// A range of `len` bytes (rounded up to the alignment).
    pub fn alloc(&mut self, len: u64) -> KResult<u64> {
        let len = len
            .div_ceil(self.align)
            .checked_mul(self.align)
            .ok_or(Errno::ENOMEM)?;
        let (&start, &size) = self
            .free
            .iter()
            .find(|&(_, &size)| size >= len)
            .ok_or(Errno::ENOMEM)?;
        self.free.remove(&start);
        if size > len {
            self.free.insert(start + len, size - len);
        }
        Ok(start)
    }

    /// Returns a range from [`VaAllocator::alloc`] with the length asked then.
    pub fn release(&mut self, start: u64, len: u64) {
        let mut start = start;
        let mut len = len.div_ceil(self.align) * self.align;
        if let Some((&p, &plen)) = self.free.range(..start).next_back()
            && p + plen == start
        {
            self.free.remove(&p);
            start = p;
            len += plen;
        }
        if let Some(&nlen) = self.free.get(&(start + len)) {
            self.free.remove(&(start + len));
            len += nlen;
        }
        self.free.insert(start, len);
    }
}

/// Writes into HBM through BAR2, as the CPU does.
#[derive(Debug, Clone)]
pub(crate) struct HbmWindow {
    pub fabric: Arc<Fabric>,
    pub bar: PhysAddr,
}

impl HbmWindow {
    pub fn write(&self, hbm_pa: u64, bytes: &[u8]) -> KResult<()> {
        self.fabric
            .cpu_write(PhysAddr(self.bar.raw() + hbm_pa), bytes)
            .map_err(|_| Errno::EIO)
    }
}

/// One address space's page tables: the tables live in HBM; the driver keeps a copy of
/// each to know what is mapped without reading the device.
#[derive(Debug)]
pub(crate) struct PageTable {
    hop0: u64,
    tables: HashMap<u64, Box<[u64]>>,
}

/// A page-table update to write: the table, the first entry and the new entries.
type Patch = (u64, u64, Vec<u64>);

/// The changes of one map operation: the writes for HBM, and how to undo them in the
/// driver's copy should the operation fail part-way (nothing reaches HBM then).
#[derive(Default)]
struct Edit {
    patches: Vec<Patch>,
    /// `(table, entry, old value)`, in the order of the changes.
    undo: Vec<(u64, u64, u64)>,
    /// Table pages taken from the pool.
    created: Vec<u64>,
}

impl PageTable {
    /// A new address space with an empty hop-0 table.
    pub fn new(pool: &mut PtPool) -> KResult<Self> {
        let hop0 = pool.alloc()?;
        Ok(Self {
            hop0,
            tables: HashMap::from([(hop0, vec![0u64; ENTRIES as usize].into_boxed_slice())]),
        })
    }

    /// HBM address of the hop-0 table.
    pub fn hop0(&self) -> u64 {
        self.hop0
    }

    /// The table below entry `idx` of `table`, created if absent.
    fn next_table(
        &mut self,
        table: u64,
        idx: u64,
        pool: &mut PtPool,
        edit: &mut Edit,
    ) -> KResult<u64> {
        let entry = self.tables[&table][idx as usize];
        if entry & PTE_PRESENT != 0 {
            return Ok(entry & PTE_ADDR_MASK);
        }
        let next = pool.alloc()?;
        edit.created.push(next);
        self.tables
            .insert(next, vec![0u64; ENTRIES as usize].into_boxed_slice());
        self.set(table, idx, pte(next, 0), edit);
        Ok(next)
    }

    fn set(&mut self, table: u64, idx: u64, value: u64, edit: &mut Edit) {
        let slot = &mut self.tables.get_mut(&table).expect("table exists")[idx as usize];
        edit.undo.push((table, idx, *slot));
        *slot = value;
        match edit.patches.last_mut() {
            Some((t, first, values)) if *t == table && *first + values.len() as u64 == idx => {
                values.push(value)
            }
            _ => edit.patches.push((table, idx, vec![value])),
        }
    }

    /// Runs `f`'s changes: written to HBM if it succeeds, undone in the driver's copy
    /// (and the table pages it took given back) if it fails, so that the copy never
    /// claims a link HBM does not have.
    fn apply(
        &mut self,
        pool: &mut PtPool,
        hbm: &HbmWindow,
        f: impl FnOnce(&mut Self, &mut PtPool, &mut Edit) -> KResult<()>,
    ) -> KResult<()> {
        let mut edit = Edit::default();
        if let Err(e) = f(self, pool, &mut edit) {
            for (table, idx, old) in edit.undo.into_iter().rev() {
                if let Some(t) = self.tables.get_mut(&table) {
                    t[idx as usize] = old;
                }
            }
            for table in edit.created {
                self.tables.remove(&table);
                // Never written: still zero in HBM.
                pool.release(table);
            }
            return Err(e);
        }
        write_patches(hbm, edit.patches)
    }

    /// Maps `pages` (HBM addresses of 2 MiB pages) at `va`, writable.
    pub fn map_dram(
        &mut self,
        va: u64,
        pages: &[u64],
        pool: &mut PtPool,
        hbm: &HbmWindow,
    ) -> KResult<()> {
        self.apply(pool, hbm, |pt, pool, edit| {
            for (i, &pa) in pages.iter().enumerate() {
                let v = va + i as u64 * PAGE_2M;
                let hop1 = pt.next_table(pt.hop0, index(v, 0), pool, edit)?;
                let hop2 = pt.next_table(hop1, index(v, 1), pool, edit)?;
                pt.set(hop2, index(v, 2), pte(pa, PTE_WRITABLE | PTE_LARGE), edit);
            }
            Ok(())
        })
    }

    /// Maps host DMA addresses `iova..iova + len` (page aligned) at `va`, writable.
    pub fn map_host(
        &mut self,
        va: u64,
        iova: u64,
        len: u64,
        pool: &mut PtPool,
        hbm: &HbmWindow,
    ) -> KResult<()> {
        self.apply(pool, hbm, |pt, pool, edit| {
            for off in (0..len).step_by(PAGE_4K as usize) {
                let v = va + off;
                let hop1 = pt.next_table(pt.hop0, index(v, 0), pool, edit)?;
                let hop2 = pt.next_table(hop1, index(v, 1), pool, edit)?;
                let hop3 = pt.next_table(hop2, index(v, 2), pool, edit)?;
                pt.set(
                    hop3,
                    index(v, 3),
                    pte(iova + off, PTE_WRITABLE | PTE_HOST),
                    edit,
                );
            }
            Ok(())
        })
    }

    /// Removes the leaves of `va..va + len` mapped with pages of `page` bytes.
    pub fn unmap(&mut self, va: u64, len: u64, page: u64, hbm: &HbmWindow) -> KResult<()> {
        let mut edit = Edit::default();
        let leaf_hop = if page == PAGE_2M { 2 } else { 3 };
        for off in (0..len).step_by(page as usize) {
            let v = va + off;
            let mut table = self.hop0;
            let mut found = true;
            for hop in 0..leaf_hop {
                let e = self.tables[&table][index(v, hop) as usize];
                if e & PTE_PRESENT == 0 {
                    found = false;
                    break;
                }
                table = e & PTE_ADDR_MASK;
            }
            if found {
                self.set(table, index(v, leaf_hop), 0, &mut edit);
            }
        }
        write_patches(hbm, edit.patches)
    }

    /// Every table page (for freeing the address space).
    pub fn table_pages(&self) -> Vec<u64> {
        self.tables.keys().copied().collect()
    }
}

fn write_patches(hbm: &HbmWindow, patches: Vec<Patch>) -> KResult<()> {
    for (table, first, values) in patches {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        hbm.write(table + first * 8, &bytes)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contiguous_allocations_find_a_run() {
        let mut a = HbmAllocator::new(8 * DRAM_PAGE_SIZE);
        let first = a.alloc(DRAM_PAGE_SIZE, false).unwrap();
        let _second = a.alloc(DRAM_PAGE_SIZE, false).unwrap();
        a.release(&first);
        let run = a.alloc(3 * DRAM_PAGE_SIZE, true).unwrap();
        assert_eq!(
            run,
            vec![2 * DRAM_PAGE_SIZE, 3 * DRAM_PAGE_SIZE, 4 * DRAM_PAGE_SIZE]
        );
        assert_eq!(a.alloc(4 * DRAM_PAGE_SIZE, true), Err(Errno::ENOMEM));
        assert_eq!(a.alloc(4 * DRAM_PAGE_SIZE, false).unwrap().len(), 4);
        assert_eq!(a.free_bytes(), 0);
        assert_eq!(a.alloc(1, false), Err(Errno::ENOMEM));
    }

    #[test]
    fn a_map_that_runs_out_of_table_pages_leaves_no_trace() {
        let fabric = Fabric::default_machine().unwrap();
        let bar = fabric.bar(fabric.find("accel0").unwrap(), 2).unwrap().phys;
        let hbm = HbmWindow { fabric, bar };
        // Room for hop 0 and two more tables: a host page needs three.
        let mut pool = PtPool::new(0, 3 * TABLE_SIZE);
        let mut pt = PageTable::new(&mut pool).unwrap();
        assert_eq!(
            pt.map_host(0x1000_0000, 0x4000, PAGE_4K, &mut pool, &hbm),
            Err(Errno::ENOMEM)
        );
        assert_eq!(pool.free.len(), 2, "the tables taken went back");
        assert_eq!(pt.table_pages(), vec![pt.hop0()]);
        assert!(pt.tables[&pt.hop0()].iter().all(|&e| e == 0));

        // A 2 MiB page needs only two: it fits, and the links are real.
        pt.map_dram(0x1000_0000_0000, &[0], &mut pool, &hbm)
            .unwrap();
        assert!(pool.free.is_empty());
        let link = pt.tables[&pt.hop0()][index(0x1000_0000_0000, 0) as usize];
        assert_ne!(link & PTE_PRESENT, 0);
        let mut raw = [0u8; 8];
        let at = pt.hop0() + index(0x1000_0000_0000, 0) * 8;
        hbm.fabric
            .cpu_read(PhysAddr(hbm.bar.raw() + at), &mut raw)
            .unwrap();
        assert_eq!(
            u64::from_le_bytes(raw),
            link,
            "HBM holds what the copy says"
        );
    }

    #[test]
    fn va_ranges_are_aligned_and_merge_when_freed() {
        let mut va = VaAllocator::new(0x1000, 0x9000, 0x1000);
        let a = va.alloc(1).unwrap();
        let b = va.alloc(0x2000).unwrap();
        assert_eq!((a, b), (0x1000, 0x2000));
        va.release(a, 1);
        va.release(b, 0x2000);
        assert_eq!(va.alloc(0x8000).unwrap(), 0x1000);
        assert_eq!(va.alloc(1), Err(Errno::ENOMEM));
    }
}
