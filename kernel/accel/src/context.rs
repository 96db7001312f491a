//! Contexts: what one open of `/dev/accel/accelN` owns. A context has its own address
//! space (ASID and page tables), its own sync objects, its device memory allocations
//! and mappings, and its command submissions. It can reach nothing else: the MMU
//! translates only its own mappings, and the device refuses its packets on other
//! contexts' sync objects.
//!
//! Closing the fd frees everything of the context except device memory that live
//! dma-bufs export: each export holds a reference on the context (habanalabs' context
//! reference), and the rest is freed when the last export is released. Freed device
//! memory is scrubbed before anyone can allocate it again.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sagrada_hw_accel_abi::mmu::{PAGE_2M, PAGE_4K};
use sagrada_hw_fabric::{DmaDirection, Iova};
use sagrada_kernel_core::{Errno, KResult, PinnedPages, Task, UserPtr, lock};
use sagrada_kernel_dmabuf::{DmaFence, NamedOps, Wait, context_alloc};

use crate::cs::{CoreFaults, Cs, CsError};
use crate::device::DeviceInner;
use crate::memory::{DRAM_VA_BASE, DRAM_VA_END, HOST_VA_BASE, HOST_VA_END, PageTable, VaAllocator};
use crate::uapi::{
    CS_STATUS_ABORTED, CS_STATUS_BUSY, CS_STATUS_COMPLETED, CS_STATUS_GONE, CsChunk, RETAINED_CS,
};

/// A device memory allocation.
#[derive(Debug)]
pub(crate) struct Allocation {
    /// HBM addresses of its 2 MiB pages, in order.
    pub pages: Vec<u64>,
    /// Bytes (a multiple of the page size).
    pub size: u64,
    /// The device generation (hard resets) it was allocated in.
    pub generation: u64,
    /// Live dma-buf exports of it.
    pub exports: AtomicU32,
    /// Mappings of it.
    pub mappings: AtomicU32,
}

#[derive(Debug)]
enum Mapping {
    Dram {
        alloc: Arc<Allocation>,
    },
    Host {
        len: u64,
        offset: u64,
        iova: Iova,
        _pinned: PinnedPages,
    },
}

#[derive(Debug)]
struct Mm {
    allocations: HashMap<u64, Arc<Allocation>>,
    next_handle: u64,
    /// By page-aligned start VA.
    mappings: BTreeMap<u64, Mapping>,
    dram_va: VaAllocator,
    host_va: VaAllocator,
    pt: PageTable,
    pt_generation: u64,
    released: bool,
}

#[derive(Debug)]
struct CsState {
    next_seq: u64,
    submitted: BTreeMap<u64, Arc<Cs>>,
}

/// What WAIT_CS reports.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct CsOutcome {
    pub status: u32,
    pub error: i32,
    pub info: u64,
    pub device_time_ns: u64,
}

/// One context.
#[derive(Debug)]
pub(crate) struct ContextInner {
    dev: Arc<DeviceInner>,
    asid: u16,
    fence_context: u64,
    timeline: String,
    mm: Mutex<Mm>,
    cs: Mutex<CsState>,
    defunct: AtomicBool,
    core_faults: Arc<CoreFaults>,
}

impl ContextInner {
    /// A new context with a fresh address space; `EBUSY` when every ASID is taken.
    pub fn create(dev: &Arc<DeviceInner>) -> KResult<Arc<Self>> {
        dev.check_operational()?;
        let asid = dev.alloc_asid()?;
        let pt = match PageTable::new(&mut lock(&dev.pt_pool)) {
            Ok(pt) => pt,
            Err(e) => {
                dev.release_asid(asid);
                return Err(e);
            }
        };
        let ctx = Arc::new(ContextInner {
            dev: dev.clone(),
            asid,
            fence_context: context_alloc(1),
            timeline: format!("{}-ctx{asid}", dev.name),
            mm: Mutex::new(Mm {
                allocations: HashMap::new(),
                next_handle: 1,
                mappings: BTreeMap::new(),
                dram_va: VaAllocator::new(DRAM_VA_BASE, DRAM_VA_END, PAGE_2M),
                host_va: VaAllocator::new(HOST_VA_BASE, HOST_VA_END, PAGE_4K),
                pt_generation: dev.generation.load(Ordering::Acquire),
                pt,
                released: false,
            }),
            cs: Mutex::new(CsState {
                next_seq: 1,
                submitted: BTreeMap::new(),
            }),
            defunct: AtomicBool::new(false),
            core_faults: Arc::default(),
        });
        let hop0 = lock(&ctx.mm).pt.hop0();
        dev.set_hop0(asid, hop0)?;
        dev.set_sob_owner(asid, asid)?;
        lock(&dev.contexts).push(Arc::downgrade(&ctx));
        Ok(ctx)
    }

    /// The device.
    pub fn dev(&self) -> &Arc<DeviceInner> {
        &self.dev
    }

    /// The address space.
    pub fn asid(&self) -> u16 {
        self.asid
    }

    /// Marks the context unusable (after a hard reset wiped its memory).
    pub fn mark_defunct(&self) {
        self.defunct.store(true, Ordering::Release);
    }

    /// Whether a hard reset wiped the context.
    pub fn is_defunct(&self) -> bool {
        self.defunct.load(Ordering::Acquire)
    }

    /// `ENODEV` for a context a hard reset wiped (habanalabs: "please close FD").
    pub fn check_usable(&self) -> KResult<()> {
        if self.is_defunct() {
            Err(Errno::ENODEV)
        } else {
            Ok(())
        }
    }

    /// The last fault of the context's launches on each compute core.
    pub fn core_faults(&self) -> &CoreFaults {
        &self.core_faults
    }

    /// Bytes of device memory the context holds.
    pub fn used_bytes(&self) -> u64 {
        lock(&self.mm).allocations.values().map(|a| a.size).sum()
    }

    /// ALLOC: `size` rounded up to 2 MiB pages; `EINVAL` for 0, `ENOMEM` if HBM is
    /// short.
    pub fn alloc(&self, size: u64, contiguous: bool) -> KResult<u64> {
        if size == 0 {
            return Err(Errno::EINVAL);
        }
        let pages = lock(&self.dev.hbm_alloc).alloc(size, contiguous)?;
        let mut mm = lock(&self.mm);
        let handle = mm.next_handle;
        mm.next_handle += 1;
        let alloc = Allocation {
            size: pages.len() as u64 * PAGE_2M,
            pages,
            generation: self.dev.generation.load(Ordering::Acquire),
            exports: AtomicU32::new(0),
            mappings: AtomicU32::new(0),
        };
        mm.allocations.insert(handle, Arc::new(alloc));
        Ok(handle)
    }

    /// Scrubs and returns an allocation's pages (unless a hard reset already did).
    fn release_pages(&self, alloc: &Allocation) {
        if alloc.generation != self.dev.generation.load(Ordering::Acquire) {
            return;
        }
        for &pa in &alloc.pages {
            if self.dev.scrub(pa, PAGE_2M).is_err() {
                // Never hand out memory that may still hold another owner's data.
                tracing::error!(
                    "{}: HBM page {pa:#x} not scrubbed, leaking it",
                    self.dev.name
                );
                return;
            }
        }
        lock(&self.dev.hbm_alloc).release(&alloc.pages);
    }

    /// FREE: `EINVAL` for an unknown handle, or one that is mapped or exported.
    pub fn free(&self, handle: u64) -> KResult<()> {
        let alloc = {
            let mut mm = lock(&self.mm);
            let alloc = mm.allocations.get(&handle).ok_or(Errno::EINVAL)?;
            if alloc.exports.load(Ordering::Acquire) > 0
                || alloc.mappings.load(Ordering::Acquire) > 0
            {
                return Err(Errno::EINVAL);
            }
            mm.allocations.remove(&handle).ok_or(Errno::EINVAL)?
        };
        self.release_pages(&alloc);
        Ok(())
    }

    /// MAP: maps an allocation (2 MiB pages) and returns its device VA.
    pub fn map(&self, handle: u64) -> KResult<u64> {
        let mut mm = lock(&self.mm);
        let alloc = mm.allocations.get(&handle).cloned().ok_or(Errno::EINVAL)?;
        let va = mm.dram_va.alloc(alloc.size)?;
        let mapped = mm.pt.map_dram(
            va,
            &alloc.pages,
            &mut lock(&self.dev.pt_pool),
            &self.dev.hbm,
        );
        if let Err(e) = mapped {
            mm.dram_va.release(va, alloc.size);
            return Err(e);
        }
        alloc.mappings.fetch_add(1, Ordering::AcqRel);
        mm.mappings.insert(va, Mapping::Dram { alloc });
        drop(mm);
        self.dev.set_hop0(self.asid, self.hop0())?;
        Ok(va)
    }

    fn hop0(&self) -> u64 {
        lock(&self.mm).pt.hop0()
    }

    /// MAP_USERPTR: pins the caller's memory `addr..addr + size` (which must be mapped
    /// read-write), maps it in the SG1's IOMMU domain and in the context's address
    /// space, and returns the device VA of `addr`.
    pub fn map_userptr(&self, task: &Task<'_>, addr: u64, size: u64) -> KResult<u64> {
        // A range that wraps around the address space is refused like an empty one.
        if size == 0 || addr.checked_add(size).is_none() {
            return Err(Errno::EINVAL);
        }
        let offset = addr % PAGE_4K;
        let start = addr - offset;
        let len = (offset + size)
            .div_ceil(PAGE_4K)
            .checked_mul(PAGE_4K)
            .ok_or(Errno::EINVAL)?;
        let pinned = task.pin_user_pages(UserPtr(start), len, true)?;
        let fabric = &self.dev.fabric;
        let iova = fabric
            .dma_map_extents(self.dev.dev, pinned.extents(), DmaDirection::Bidirectional)
            .map_err(|e| {
                tracing::debug!("{}: userptr map: {e}", self.dev.name);
                Errno::ENOMEM
            })?;
        let mut mm = lock(&self.mm);
        let va = match mm.host_va.alloc(len) {
            Ok(va) => va,
            Err(e) => {
                let _ = fabric.dma_unmap(self.dev.dev, iova, len);
                return Err(e);
            }
        };
        if let Err(e) = mm.pt.map_host(
            va,
            iova.raw(),
            len,
            &mut lock(&self.dev.pt_pool),
            &self.dev.hbm,
        ) {
            mm.host_va.release(va, len);
            let _ = fabric.dma_unmap(self.dev.dev, iova, len);
            return Err(e);
        }
        mm.mappings.insert(
            va,
            Mapping::Host {
                len,
                offset,
                iova,
                _pinned: pinned,
            },
        );
        Ok(va + offset)
    }

    /// UNMAP: `EINVAL` if `va` is not a mapping this context returned, or if it maps
    /// exported device memory.
    pub fn unmap(&self, va: u64) -> KResult<()> {
        let mut mm = lock(&self.mm);
        let base = va - va % PAGE_4K;
        let ok = match mm.mappings.get(&base) {
            Some(Mapping::Dram { alloc }) => {
                va == base && alloc.exports.load(Ordering::Acquire) == 0
            }
            Some(Mapping::Host { offset, .. }) => va == base + offset,
            None => false,
        };
        if !ok {
            return Err(Errno::EINVAL);
        }
        let mapping = mm.mappings.remove(&base).ok_or(Errno::EINVAL)?;
        self.unmap_locked(&mut mm, base, mapping)
    }

    fn unmap_locked(&self, mm: &mut Mm, va: u64, mapping: Mapping) -> KResult<()> {
        let current = mm.pt_generation == self.dev.generation.load(Ordering::Acquire);
        match mapping {
            Mapping::Dram { alloc } => {
                if current {
                    mm.pt.unmap(va, alloc.size, PAGE_2M, &self.dev.hbm)?;
                }
                mm.dram_va.release(va, alloc.size);
                alloc.mappings.fetch_sub(1, Ordering::AcqRel);
            }
            Mapping::Host {
                len, iova, _pinned, ..
            } => {
                if current {
                    mm.pt.unmap(va, len, PAGE_4K, &self.dev.hbm)?;
                }
                mm.host_va.release(va, len);
                if let Err(e) = self.dev.fabric.dma_unmap(self.dev.dev, iova, len) {
                    tracing::error!("{}: userptr unmap: {e}", self.dev.name);
                }
            }
        }
        if current {
            self.dev.mmio.write(
                sagrada_hw_accel_abi::regs::mmu::BASE + sagrada_hw_accel_abi::regs::mmu::INVALIDATE,
                u32::from(self.asid),
            )?;
        }
        Ok(())
    }

    /// The allocation mapped at exactly `va`, for export; `EINVAL` otherwise (host
    /// memory, not a mapping start, another context's address).
    pub fn dram_mapping(&self, va: u64) -> KResult<Arc<Allocation>> {
        match lock(&self.mm).mappings.get(&va) {
            Some(Mapping::Dram { alloc }) => Ok(alloc.clone()),
            _ => Err(Errno::EINVAL),
        }
    }

    /// CS: queues the chunks; returns the sequence number and the completion fence.
    pub fn submit(&self, chunks: &[CsChunk]) -> KResult<(u64, DmaFence)> {
        self.check_usable()?;
        let mut cs_state = lock(&self.cs);
        let seq = cs_state.next_seq;
        let fence = DmaFence::new(
            NamedOps::new("sg1", &self.timeline),
            self.fence_context,
            seq,
        );
        let cs = Arc::new(Cs::new(
            fence.clone(),
            seq,
            chunks.len() as u32,
            self.core_faults.clone(),
        ));
        self.dev.submit(self.asid, chunks, &cs)?;
        cs_state.next_seq += 1;
        cs_state.submitted.insert(seq, cs);
        while cs_state.submitted.len() > RETAINED_CS {
            match cs_state.submitted.first_key_value() {
                Some((_, oldest)) if oldest.fence().test_signaled_flag() => {
                    cs_state.submitted.pop_first();
                }
                _ => break,
            }
        }
        Ok((seq, fence))
    }

    /// WAIT_CS.
    pub fn wait(&self, seq: u64, timeout: Duration) -> KResult<CsOutcome> {
        let cs = {
            let cs_state = lock(&self.cs);
            if seq == 0 || seq >= cs_state.next_seq {
                return Err(Errno::EINVAL);
            }
            cs_state.submitted.get(&seq).cloned()
        };
        let Some(cs) = cs else {
            // Older than what the context remembers: it ended, but how is forgotten.
            return Ok(CsOutcome {
                status: CS_STATUS_GONE,
                error: 0,
                info: 0,
                device_time_ns: 0,
            });
        };
        // Completions usually arrive within microseconds: poll briefly before sleeping.
        // The poll yields now and then: on a host with fewer cores than busy threads
        // the engine this waits for may be queued behind it on the same core.
        let spin_until = Instant::now() + Duration::from_micros(20).min(timeout);
        let mut spins = 0u32;
        while !cs.fence().test_signaled_flag() {
            std::hint::spin_loop();
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(32) {
                if Instant::now() >= spin_until {
                    break;
                }
                std::thread::yield_now();
            }
        }
        if cs.fence().wait_timeout(timeout) == Wait::TimedOut {
            return Ok(CsOutcome {
                status: CS_STATUS_BUSY,
                error: 0,
                info: 0,
                device_time_ns: 0,
            });
        }
        Ok(match cs.error() {
            Some(CsError { errno, info }) => CsOutcome {
                status: CS_STATUS_ABORTED,
                error: errno.negated(),
                info,
                device_time_ns: cs.done_time_ns(),
            },
            None => CsOutcome {
                status: CS_STATUS_COMPLETED,
                error: 0,
                info: 0,
                device_time_ns: cs.done_time_ns(),
            },
        })
    }

    /// The fd was closed: wait for the context's submissions, then free every mapping
    /// and allocation that no dma-buf exports. A submission that hangs is ended by the
    /// lockup watchdog within `timeout_locked` of its queueing; with the watchdog
    /// disabled, the close waits for as long as it takes.
    pub fn close(&self) {
        let pending: Vec<Arc<Cs>> = lock(&self.cs).submitted.values().cloned().collect();
        for cs in pending {
            cs.fence().wait_timeout(Duration::MAX);
        }
        self.teardown(false);
    }

    /// Frees mappings and allocations (all of them, or those not exported), and the
    /// address space once nothing is left.
    fn teardown(&self, everything: bool) {
        let mut mm = lock(&self.mm);
        let exported = |a: &Allocation| !everything && a.exports.load(Ordering::Acquire) > 0;
        let doomed: Vec<u64> = mm
            .mappings
            .iter()
            .filter(|(_, m)| match m {
                Mapping::Dram { alloc } => !exported(alloc),
                Mapping::Host { .. } => true,
            })
            .map(|(&va, _)| va)
            .collect();
        for va in doomed {
            if let Some(mapping) = mm.mappings.remove(&va)
                && let Err(e) = self.unmap_locked(&mut mm, va, mapping)
            {
                tracing::error!("{}: unmapping {va:#x} at close: {e}", self.dev.name);
            }
        }
        let freed: Vec<u64> = mm
            .allocations
            .iter()
            .filter(|(_, a)| !exported(a))
            .map(|(&h, _)| h)
            .collect();
        for handle in freed {
            if let Some(alloc) = mm.allocations.remove(&handle) {
                self.release_pages(&alloc);
            }
        }
        if mm.allocations.is_empty() && !mm.released {
            mm.released = true;
            if mm.pt_generation == self.dev.generation.load(Ordering::Acquire) {
                let _ = self.dev.set_hop0(self.asid, 0);
                let _ = self.dev.set_sob_owner(self.asid, 0);
                let mut pool = lock(&self.dev.pt_pool);
                for page in mm.pt.table_pages() {
                    if self.dev.scrub(page, PAGE_4K).is_ok() {
                        pool.release(page);
                    }
                }
            }
            self.dev.release_asid(self.asid);
            lock(&self.dev.contexts)
                .retain(|c| c.strong_count() > 0 && !std::ptr::eq(c.as_ptr(), self));
        }
    }
}

impl Drop for ContextInner {
    /// The last reference (the fd and every export) is gone.
    fn drop(&mut self) {
        self.teardown(true);
    }
}
