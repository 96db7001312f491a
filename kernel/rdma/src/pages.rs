//! A memory key's translation built from DMA-mapped memory: the trim of a dma-buf
//! mapping to the registered window (`ib_umem_dmabuf_map_pages`), the choice of the
//! page size (`ib_umem_find_best_pgsz`), and the page list (PAS) the NIC reads.
//!
//! The NIC's translation is: byte `iova + x` of the key is byte `page_offset + x` of the
//! concatenated pages. So the pages must cover the region without holes: every entry
//! but the first must start on a page boundary and every entry but the last must end
//! on one. The first page may start before the region and the last may end after it;
//! the key's length keeps accesses inside.

use sagrada_hw_fabric::{Iova, PAGE_SIZE};
use sagrada_kernel_core::{Errno, KResult};
use sagrada_kernel_dmabuf::SgEntry;

/// A key's translation: `pages.len()` pages of `1 << shift` bytes, the region starting
/// `page_offset` bytes into the first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PageList {
    pub shift: u32,
    pub page_offset: u64,
    pub pages: Vec<u64>,
}

const fn align_down(x: u64, a: u64) -> u64 {
    x & !(a - 1)
}

/// The entries of a mapping of a whole buffer that cover bytes
/// `[ALIGN_DOWN(offset, 4K), ALIGN(offset + length, 4K))` of it, the first advanced and
/// the last shortened to that window (`ib_umem_dmabuf_map_pages`' in-place trim; the
/// mapping itself is left as the exporter gave it, to be given back whole). `EINVAL` if
/// the mapping is shorter than the window.
pub(crate) fn trim(entries: &[SgEntry], offset: u64, length: u64) -> KResult<Vec<SgEntry>> {
    let end = offset.checked_add(length).ok_or(Errno::EINVAL)?;
    let start = align_down(offset, PAGE_SIZE);
    let end = end
        .checked_next_multiple_of(PAGE_SIZE)
        .ok_or(Errno::EINVAL)?;
    let mut out = Vec::new();
    let mut cur = 0u64;
    for e in entries {
        let e_end = cur + e.len;
        let from = start.max(cur);
        let to = end.min(e_end);
        if from < to {
            out.push(SgEntry {
                dma_addr: Iova(e.dma_addr.raw() + (from - cur)),
                len: to - from,
            });
        }
        cur = e_end;
        if cur >= end {
            return Ok(out);
        }
    }
    Err(Errno::EINVAL)
}

/// The entries holding exactly `length` bytes from byte `skip` of `entries`.
fn exact(entries: &[SgEntry], skip: u64, length: u64) -> KResult<Vec<SgEntry>> {
    let mut out = Vec::new();
    let (mut skip, mut left) = (skip, length);
    for e in entries {
        if left == 0 {
            break;
        }
        if skip >= e.len {
            skip -= e.len;
            continue;
        }
        let take = (e.len - skip).min(left);
        out.push(SgEntry {
            dma_addr: Iova(e.dma_addr.raw() + skip),
            len: take,
        });
        left -= take;
        skip = 0;
    }
    if left != 0 || out.is_empty() {
        return Err(Errno::EINVAL);
    }
    Ok(out)
}

/// The largest page size of `sizes` (bit n: 2^n bytes) that can describe `region` (the
/// exact entries of a region), as `ib_umem_find_best_pgsz`: every boundary between
/// entries must fall on a page boundary, and no page is larger than the smallest
/// supported size that holds the whole region in one page. Returns the shift.
fn best_shift(region: &[SgEntry], sizes: u64) -> Option<u32> {
    let first = region.first()?.dma_addr.raw();
    let length: u64 = region.iter().map(|e| e.len).sum();
    let last = first.checked_add(length.checked_sub(1)?)?;
    let span_bits = 64 - (first ^ last).leading_zeros();
    let mut mask = if span_bits >= 64 {
        0
    } else {
        sizes & !((1u64 << span_bits) - 1)
    };
    let n = region.len();
    for (i, e) in region.iter().enumerate() {
        if i > 0 {
            mask |= e.dma_addr.raw();
        }
        if i + 1 < n {
            mask |= e.dma_addr.raw() + e.len;
        }
    }
    let mut sizes = sizes;
    if mask != 0 {
        let limit = mask.trailing_zeros();
        if limit < 63 {
            sizes &= (2u64 << limit) - 1;
        }
    }
    (sizes != 0).then(|| 63 - sizes.leading_zeros())
}

impl PageList {
    /// The translation of `length` bytes starting `skip` bytes into `entries` (DMA
    /// addresses for the NIC), with the largest page size of `sizes` that fits.
    /// `EINVAL` if the entries do not hold the region, no page size fits, or the list
    /// would be too long.
    pub fn build(entries: &[SgEntry], skip: u64, length: u64, sizes: u64) -> KResult<Self> {
        let region = exact(entries, skip, length)?;
        let shift = best_shift(&region, sizes).ok_or(Errno::EINVAL)?;
        let size = 1u64 << shift;
        let mut pages = Vec::new();
        for e in &region {
            let mut page = align_down(e.dma_addr.raw(), size);
            let end = e.dma_addr.raw() + e.len;
            while page < end {
                pages.push(page);
                page = page.checked_add(size).ok_or(Errno::EINVAL)?;
            }
        }
        if u32::try_from(pages.len()).is_err() {
            return Err(Errno::EINVAL);
        }
        Ok(Self {
            shift,
            page_offset: region[0].dma_addr.raw() & (size - 1),
            pages,
        })
    }

    /// The list as the NIC reads it: little-endian u64s.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.pages.iter().flat_map(|p| p.to_le_bytes()).collect()
    }

    /// Pages in the list.
    pub fn npages(&self) -> u32 {
        self.pages.len() as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(addr: u64, len: u64) -> SgEntry {
        SgEntry {
            dma_addr: Iova(addr),
            len,
        }
    }

    const K4: u64 = 1 << 12;
    const M2: u64 = 1 << 21;
    const G1: u64 = 1 << 30;
    const ALL: u64 = K4 | (K4 << 1) | (K4 << 4) | M2 | G1;

    #[test]
    fn trimming_keeps_the_page_aligned_window_of_the_region() {
        let table = [
            e(0x10_0000, 0x3000),
            e(0x50_0000, 0x2000),
            e(0x90_0000, 0x1000),
        ];
        // Bytes 0x1800..0x3800 of the buffer: window 0x1000..0x4000.
        assert_eq!(
            trim(&table, 0x1800, 0x2000).unwrap(),
            vec![e(0x10_1000, 0x2000), e(0x50_0000, 0x1000)]
        );
        // A window ending exactly at an entry boundary does not take the next one.
        assert_eq!(trim(&table, 0, 0x3000).unwrap(), vec![e(0x10_0000, 0x3000)]);
        // The whole buffer.
        assert_eq!(trim(&table, 0, 0x6000).unwrap(), table.to_vec());
        // A window inside the last entry.
        assert_eq!(trim(&table, 0x5004, 4).unwrap(), vec![e(0x90_0000, 0x1000)]);
        // Beyond the mapping, or wrapping.
        assert_eq!(trim(&table, 0x5000, 0x1001), Err(Errno::EINVAL));
        assert_eq!(trim(&table, u64::MAX - 4, 8), Err(Errno::EINVAL));
    }

    #[test]
    fn scattered_pages_need_4k_pages_with_the_offset_in_the_first() {
        let window = trim(
            &[e(0x10_0000, 0x3000), e(0x50_0000, 0x2000)],
            0x1800,
            0x2000,
        )
        .unwrap();
        let list = PageList::build(&window, 0x800, 0x2000, ALL).unwrap();
        assert_eq!(list.shift, 12);
        assert_eq!(list.page_offset, 0x800);
        assert_eq!(list.pages, vec![0x10_1000, 0x10_2000, 0x50_0000]);
        assert_eq!(list.npages(), 3);
        assert_eq!(list.to_bytes().len(), 24);
    }

    #[test]
    fn aligned_boundaries_allow_large_pages() {
        // Two 2 MiB-aligned chunks of 4 MiB each: 2 MiB pages (a boundary at an odd
        // multiple of 2 MiB rules out 4 MiB and larger).
        let table = [e(0x4020_0000, 2 * M2), e(0x8060_0000, 2 * M2)];
        let list = PageList::build(&table, 0, 4 * M2, ALL).unwrap();
        assert_eq!(list.shift, 21);
        assert_eq!(list.page_offset, 0);
        assert_eq!(
            list.pages,
            vec![0x4020_0000, 0x4040_0000, 0x8060_0000, 0x8080_0000]
        );
        // Without 2 MiB support the next smaller supported size is taken.
        let list = PageList::build(&table, 0, 4 * M2, K4 | (K4 << 4) | G1).unwrap();
        assert_eq!(list.shift, 16);
        assert_eq!(list.pages.len(), 128);
    }

    #[test]
    fn the_first_start_and_the_last_end_are_free() {
        // Starts 0x3000 into a 2 MiB page and ends 0x1000 into one: still 2 MiB pages.
        let table = [e(0x20_3000, M2 - 0x3000), e(0x60_0000, 0x1000)];
        let list = PageList::build(&table, 0x10, M2 - 0x3000 + 0x1000 - 0x10, ALL).unwrap();
        assert_eq!(list.shift, 21);
        assert_eq!(list.page_offset, 0x3010);
        assert_eq!(list.pages, vec![0x20_0000, 0x60_0000]);
    }

    #[test]
    fn a_middle_entry_off_the_page_size_limits_it() {
        let table = [e(0x20_0000, M2), e(0x60_1000, 0x1000), e(0xa0_0000, M2)];
        let list = PageList::build(&table, 0, 2 * M2 + 0x1000, ALL).unwrap();
        assert_eq!(list.shift, 12);
        assert_eq!(list.pages.len(), 512 + 1 + 512);
    }

    #[test]
    fn a_contiguous_region_takes_one_page_that_holds_it() {
        // 8 KiB at 0x1000 into an IOVA range: 16 KiB would hold it, 64 KiB is the
        // smallest supported size at least that large.
        let list = PageList::build(&[e(0x7000_0000, 0x10_0000)], 0x1000, 0x2000, ALL).unwrap();
        assert_eq!(list.shift, 16);
        assert_eq!(list.page_offset, 0x1000);
        assert_eq!(list.pages, vec![0x7000_0000]);
        // Only 4 KiB pages: two.
        let list = PageList::build(&[e(0x7000_0000, 0x10_0000)], 0x1000, 0x2000, K4).unwrap();
        assert_eq!(list.pages, vec![0x7000_1000, 0x7000_2000]);
        assert_eq!(list.page_offset, 0);
    }

    #[test]
    fn a_region_the_entries_do_not_hold_is_refused() {
        let table = [e(0x1000, 0x1000)];
        assert_eq!(PageList::build(&table, 0, 0x1001, ALL), Err(Errno::EINVAL));
        assert_eq!(PageList::build(&table, 0x1000, 1, ALL), Err(Errno::EINVAL));
        assert_eq!(PageList::build(&table, 0, 0, ALL), Err(Errno::EINVAL));
        assert_eq!(PageList::build(&[], 0, 1, ALL), Err(Errno::EINVAL));
        // A sub-page hole in the middle fits no page size.
        let holes = [e(0x1000, 0x800), e(0x3000, 0x1000)];
        assert_eq!(PageList::build(&holes, 0, 0x1800, ALL), Err(Errno::EINVAL));
    }
}
