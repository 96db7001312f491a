//! The IOMMU at each root complex: one domain per device, DMA-API style mapping.
//!
//! A translating domain maps IOVA pages to bus addresses with a direction; a request
//! from the device that reaches the root complex with an address no mapping covers, or
//! against the mapping's direction, is refused and recorded as a [`Fault`]. A
//! passthrough domain translates identically and checks nothing (like `iommu=pt`).
//! IOVAs are allocated top-down below 2^48 and never overlap a bridge window, so an
//! IOVA can never be mistaken by a switch for a peer's BAR (Linux reserves the PCI
//! windows in every DMA domain for the same reason). Host DRAM is not reserved: an IOVA
//! may equal a DRAM address numerically, and means nothing until translated.
//!
//! Mappings are kept as ranges in a `BTreeMap` keyed by IOVA, so translating a 64 MiB
//! transfer costs a lookup per mapping it crosses, not one per page. The IOVA allocator
//! keeps free ranges the same way and allocates first-fit from the top.

use std::collections::BTreeMap;
use std::sync::{PoisonError, RwLock};

use crate::{
    Access, BusAddr, DeviceId, DmaDirection, Fabric, Iova, PAGE_SIZE, PhysAddr, PhysRange,
};

/// IOVAs are allocated below this address (a 48-bit IOVA space).
pub const IOVA_END: u64 = 1 << 48;
/// How many faults a device's log keeps.
const FAULT_LOG_LEN: usize = 256;

/// Why a mapping request failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IommuError {
    /// Zero length, or a range that wraps the address space.
    #[error("cannot map {len:#x} bytes at {addr}: empty or wrapping range")]
    BadRange {
        /// The start of the range.
        addr: u64,
        /// Its length.
        len: u64,
    },
    /// The physical range is neither host DRAM nor inside one BAR.
    #[error("physical range {addr}+{len:#x} is not host DRAM or inside a single BAR")]
    NotMappable {
        /// The start of the range.
        addr: PhysAddr,
        /// Its length.
        len: u64,
    },
    /// The domain's IOVA space is exhausted.
    #[error("IOVA space of {device:?} exhausted mapping {len:#x} bytes")]
    NoSpace {
        /// The device.
        device: DeviceId,
        /// The size requested.
        len: u64,
    },
    /// `dma_unmap` of a range that is not exactly one live mapping.
    #[error("{device:?} has no mapping of {len:#x} bytes at IOVA {iova}")]
    NotMapped {
        /// The device.
        device: DeviceId,
        /// The IOVA given.
        iova: Iova,
        /// The length given.
        len: u64,
    },
    /// The device is a bridge, not a DMA master.
    #[error("{0:?} is not an endpoint and cannot master DMA")]
    NotAnEndpoint(DeviceId),
    /// An extent in the middle of a list does not start or end on a page boundary, so
    /// the extents cannot be joined into one contiguous IOVA range.
    #[error(
        "extent {index} ({addr}+{len:#x}) must start on a page boundary (unless it is the first) \
         and end on one (unless it is the last)"
    )]
    Misaligned {
        /// Position of the extent in the list.
        index: usize,
        /// Its start.
        addr: PhysAddr,
        /// Its length.
        len: u64,
    },
    /// A passthrough domain uses bus addresses as they are, so it cannot join extents
    /// that are not contiguous on the bus into one range.
    #[error(
        "{device:?} has a passthrough IOMMU domain and extent {index} at {addr} does not follow the one before it"
    )]
    Discontiguous {
        /// The device.
        device: DeviceId,
        /// Position of the extent that breaks contiguity.
        index: usize,
        /// Its start.
        addr: PhysAddr,
    },
}

/// Why a request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FaultReason {
    /// No mapping covers the address in a translating domain.
    Unmapped,
    /// A mapping exists but its direction forbids this access.
    Permission,
    /// No device and no memory claims the (translated) bus address: Unsupported
    /// Request, the PCIe master abort.
    Unclaimed,
}

impl std::fmt::Display for FaultReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Unmapped => "no IOMMU mapping covers it (unmapped)",
            Self::Permission => "the mapping's direction forbids it (permission)",
            Self::Unclaimed => "no memory or device claims it (unclaimed: Unsupported Request)",
        })
    }
}

/// A refused request, recorded in the initiator's fault log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{access} of {len:#x} bytes by {device:?} at DMA address {addr} refused: {reason}")]
pub struct Fault {
    /// The initiator.
    pub device: DeviceId,
    /// The address it emitted.
    pub addr: Iova,
    /// The bus address after translation, when translation succeeded.
    pub bus: Option<BusAddr>,
    /// Read or write.
    pub access: Access,
    /// Bytes of the refused chunk.
    pub len: u64,
    /// Why.
    pub reason: FaultReason,
}

/// One translation: `len` bytes from an IOVA page to a bus page, with a direction.
#[derive(Clone, Copy, Debug)]
struct Entry {
    len: u64,
    bus: u64,
    dir: DmaDirection,
}

/// One mapping handed out, keyed by the (IOVA, length) its caller got.
#[derive(Clone, Copy, Debug)]
struct MapRecord {
    /// The IOVA pages it occupies (translating domains).
    alloc_start: u64,
    alloc_len: u64,
    /// How many times the same range is mapped (passthrough domains hand out the same
    /// bus address for the same range).
    count: u32,
}

/// One device's IOMMU domain.
#[derive(Debug)]
pub(crate) struct Domain {
    translating: bool,
    /// Translations by IOVA start (translating domains only).
    entries: BTreeMap<u64, Entry>,
    /// Live mappings, so unmaps can be checked against them.
    maps: BTreeMap<(u64, u64), MapRecord>,
    /// Free IOVA ranges, start → end (translating domains only).
    free: BTreeMap<u64, u64>,
}

impl Domain {
    /// A domain with nothing mapped. `reserved` are the bridge windows, sorted and
    /// disjoint; the IOVA allocator never hands out addresses inside them.
    pub(crate) fn new(translating: bool, reserved: &[(u64, u64)]) -> Self {
        let mut free = BTreeMap::new();
        if translating {
            // Page 0 stays unmapped so a zero DMA address is always a fault.
            let mut cursor = PAGE_SIZE;
            for &(start, end) in reserved {
                let start = start / PAGE_SIZE * PAGE_SIZE;
                if start > cursor && cursor < IOVA_END {
                    free.insert(cursor, start.min(IOVA_END));
                }
                cursor = cursor.max(end.div_ceil(PAGE_SIZE) * PAGE_SIZE);
            }
            if cursor < IOVA_END {
                free.insert(cursor, IOVA_END);
            }
        }
        Self {
            translating,
            entries: BTreeMap::new(),
            maps: BTreeMap::new(),
            free,
        }
    }

    /// Takes `size` bytes of IOVA space, from the top.
    fn alloc(&mut self, size: u64) -> Option<u64> {
        let (&start, &end) = self.free.iter().rev().find(|&(&s, &e)| e - s >= size)?;
        let at = end - size;
        if at == start {
            self.free.remove(&start);
        } else {
            self.free.insert(start, at);
        }
        Some(at)
    }

    /// Returns IOVA space, merging it with free neighbours.
    fn release(&mut self, start: u64, len: u64) {
        let mut start = start;
        let mut end = start + len;
        if let Some((&prev_start, &prev_end)) = self.free.range(..start).next_back()
            && prev_end == start
        {
            self.free.remove(&prev_start);
            start = prev_start;
        }
        if let Some(next_end) = self.free.remove(&end) {
            end = next_end;
        }
        self.free.insert(start, end);
    }

    /// Maps bus extents (checked by the caller) into one IOVA range.
    fn map(
        &mut self,
        dev: DeviceId,
        extents: &[(u64, u64)],
        dir: DmaDirection,
    ) -> Result<u64, IommuError> {
        let total: u64 = extents.iter().map(|e| e.1).sum();
        let first = extents.first().map_or(0, |e| e.0);
        if !self.translating {
            for (index, pair) in extents.windows(2).enumerate() {
                if pair[0].0 + pair[0].1 != pair[1].0 {
                    return Err(IommuError::Discontiguous {
                        device: dev,
                        index: index + 1,
                        addr: PhysAddr(pair[1].0),
                    });
                }
            }
            self.maps
                .entry((first, total))
                .or_insert(MapRecord {
                    alloc_start: first,
                    alloc_len: total,
                    count: 0,
                })
                .count += 1;
            return Ok(first);
        }
        let pages = |&(bus, len): &(u64, u64)| {
            let start = bus / PAGE_SIZE * PAGE_SIZE;
            (start, (bus + len).div_ceil(PAGE_SIZE) * PAGE_SIZE - start)
        };
        let alloc_len = extents
            .iter()
            .map(pages)
            .try_fold(0u64, |acc, (_, len)| acc.checked_add(len));
        let alloc_len = alloc_len.ok_or(IommuError::NoSpace {
            device: dev,
            len: total,
        })?;
        let alloc_start = self.alloc(alloc_len).ok_or(IommuError::NoSpace {
            device: dev,
            len: total,
        })?;
        let mut cursor = alloc_start;
        let mut last: Option<u64> = None;
        for extent in extents {
            let (bus, len) = pages(extent);
            // Extents that continue each other on the bus share one entry, so a large
            // physically contiguous buffer translates in one lookup.
            let merged = last
                .and_then(|key| self.entries.get_mut(&key))
                .is_some_and(|e| {
                    if e.bus + e.len == bus {
                        e.len += len;
                        true
                    } else {
                        false
                    }
                });
            if !merged {
                self.entries.insert(cursor, Entry { len, bus, dir });
                last = Some(cursor);
            }
            cursor += len;
        }
        let iova = alloc_start + first % PAGE_SIZE;
        self.maps.insert(
            (iova, total),
            MapRecord {
                alloc_start,
                alloc_len,
                count: 1,
            },
        );
        Ok(iova)
    }

    fn unmap(&mut self, dev: DeviceId, iova: u64, len: u64) -> Result<(), IommuError> {
        let not_mapped = IommuError::NotMapped {
            device: dev,
            iova: Iova(iova),
            len,
        };
        let record = self.maps.get_mut(&(iova, len)).ok_or(not_mapped)?;
        record.count -= 1;
        let record = *record;
        if record.count > 0 {
            return Ok(());
        }
        self.maps.remove(&(iova, len));
        if self.translating {
            let end = record.alloc_start + record.alloc_len;
            let keys: Vec<u64> = self
                .entries
                .range(record.alloc_start..end)
                .map(|(&k, _)| k)
                .collect();
            for key in keys {
                self.entries.remove(&key);
            }
            self.release(record.alloc_start, record.alloc_len);
        }
        Ok(())
    }

    /// Translates `iova` for an access: the bus address and how many bytes from it the
    /// same translation covers; or why not, and how many bytes the refusal covers
    /// (up to the next mapping, at most `len`).
    pub(crate) fn translate(
        &self,
        iova: u64,
        len: u64,
        access: Access,
    ) -> Result<(u64, u64), (FaultReason, u64)> {
        if !self.translating {
            return Ok((iova, (u64::MAX - iova).saturating_add(1)));
        }
        match self.entries.range(..=iova).next_back() {
            Some((&start, e)) if iova - start < e.len => {
                let allowed = match access {
                    Access::Read => e.dir.allows_device_read(),
                    Access::Write => e.dir.allows_device_write(),
                };
                let covered = start + e.len - iova;
                if allowed {
                    Ok((e.bus + (iova - start), covered))
                } else {
                    Err((FaultReason::Permission, covered.min(len)))
                }
            }
            _ => {
                let gap = self
                    .entries
                    .range(iova..)
                    .next()
                    .map_or(u64::MAX, |(&next, _)| next - iova);
                Err((FaultReason::Unmapped, gap.min(len)))
            }
        }
    }

    fn lookup(&self, iova: u64) -> Option<(u64, DmaDirection)> {
        if !self.translating {
            return Some((iova, DmaDirection::Bidirectional));
        }
        let (&start, e) = self.entries.range(..=iova).next_back()?;
        (iova - start < e.len).then_some((e.bus + (iova - start), e.dir))
    }
}

impl Fabric {
    /// The domain of a DMA master.
    fn domain(&self, dev: DeviceId) -> Result<&RwLock<Domain>, IommuError> {
        self.domains
            .get(dev.0 as usize)
            .and_then(Option::as_ref)
            .ok_or(IommuError::NotAnEndpoint(dev))
    }

    /// The bus address of a physical range that is host DRAM or inside one BAR.
    fn mappable(&self, phys: PhysAddr, len: u64) -> Result<u64, IommuError> {
        let bad = IommuError::BadRange {
            addr: phys.raw(),
            len,
        };
        let end = phys.raw().checked_add(len).filter(|_| len > 0).ok_or(bad)?;
        let dram_end = self.dram.start.raw() + self.dram.len;
        let in_bar = || {
            self.functions
                .iter()
                .flat_map(|f| &f.bars)
                .any(|b| b.phys <= phys && end - b.phys.raw() <= b.size)
        };
        if (phys >= self.dram.start && end <= dram_end) || in_bar() {
            Ok(self.phys_to_bus(phys).raw())
        } else {
            Err(IommuError::NotMappable { addr: phys, len })
        }
    }

    /// Adds a fault to the initiator's log, dropping the oldest beyond 256.
    pub(crate) fn record_fault(&self, fault: Fault) {
        if let Some(log) = self.fault_logs.get(fault.device.0 as usize) {
            let mut log = log.lock().unwrap_or_else(PoisonError::into_inner);
            if log.len() == FAULT_LOG_LEN {
                log.pop_front();
            }
            log.push_back(fault);
        }
    }

    /// Translates a DMA address of `dev` (see [`Domain::translate`]).
    pub(crate) fn translate(
        &self,
        dev: DeviceId,
        iova: u64,
        len: u64,
        access: Access,
    ) -> Result<(u64, u64), (FaultReason, u64)> {
        match self.domains.get(dev.0 as usize).and_then(Option::as_ref) {
            Some(domain) => domain
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .translate(iova, len, access),
            None => Err((FaultReason::Unmapped, len)),
        }
    }

    /// Whether the device's domain translates (false: passthrough).
    pub fn iommu_translates(&self, dev: DeviceId) -> bool {
        self.try_function(dev)
            .and_then(|f| self.host_bridges.get(f.host_bridge.0 as usize))
            .is_some_and(|hb| hb.iommu_translates)
    }

    /// Maps a physical range (a BAR or host DRAM) for DMA by `dev`
    /// (Linux `dma_map_resource`). The IOVA keeps the page offset of `phys`.
    ///
    /// In a passthrough domain the result is the bus address itself; the mapping is
    /// still recorded so an unbalanced [`Fabric::dma_unmap`] is reported.
    pub fn dma_map_resource(
        &self,
        dev: DeviceId,
        phys: PhysAddr,
        len: u64,
        dir: DmaDirection,
    ) -> Result<Iova, IommuError> {
        let domain = self.domain(dev)?;
        let bus = self.mappable(phys, len)?;
        let mut domain = domain.write().unwrap_or_else(PoisonError::into_inner);
        domain.map(dev, &[(bus, len)], dir).map(Iova)
    }

    /// Maps physical extents (host pages) into one contiguous IOVA range, in order
    /// (Linux `dma_map_sg` through an IOMMU). Every extent but the first must start on a
    /// page boundary and every extent but the last must end on one. Each extent must
    /// be host DRAM or inside one BAR. Unmap with the sum of the extents' lengths.
    ///
    /// A passthrough domain can only join extents that follow each other on the bus
    /// ([`IommuError::Discontiguous`]).
    pub fn dma_map_extents(
        &self,
        dev: DeviceId,
        extents: &[PhysRange],
        dir: DmaDirection,
    ) -> Result<Iova, IommuError> {
        let domain = self.domain(dev)?;
        if extents.is_empty() {
            return Err(IommuError::BadRange { addr: 0, len: 0 });
        }
        let last = extents.len() - 1;
        let mut bus = Vec::with_capacity(extents.len());
        let mut total = 0u64;
        for (index, extent) in extents.iter().enumerate() {
            let addr = self.mappable(extent.start, extent.len)?;
            let starts_ok = index == 0 || extent.start.is_page_aligned();
            let ends_ok = index == last || (extent.start.raw() + extent.len) % PAGE_SIZE == 0;
            if !(starts_ok && ends_ok) {
                return Err(IommuError::Misaligned {
                    index,
                    addr: extent.start,
                    len: extent.len,
                });
            }
            total = total.checked_add(extent.len).ok_or(IommuError::BadRange {
                addr: extent.start.raw(),
                len: extent.len,
            })?;
            bus.push((addr, extent.len));
        }
        let mut domain = domain.write().unwrap_or_else(PoisonError::into_inner);
        domain.map(dev, &bus, dir).map(Iova)
    }

    /// Removes the mapping created at `iova` with length `len`: exactly the IOVA and
    /// length the map call returned and was given. The IOVA range becomes free for reuse.
    pub fn dma_unmap(&self, dev: DeviceId, iova: Iova, len: u64) -> Result<(), IommuError> {
        let domain = self.domain(dev)?;
        let mut domain = domain.write().unwrap_or_else(PoisonError::into_inner);
        domain.unmap(dev, iova.raw(), len)
    }

    /// What the IOMMU would make of `iova` for `dev`: the bus address and the direction
    /// of the mapping (passthrough: the address itself, bidirectional); `None` when
    /// unmapped or `dev` is not an endpoint.
    pub fn iommu_lookup(&self, dev: DeviceId, iova: Iova) -> Option<(BusAddr, DmaDirection)> {
        let domain = self.domain(dev).ok()?;
        let domain = domain.read().unwrap_or_else(PoisonError::into_inner);
        domain
            .lookup(iova.raw())
            .map(|(bus, dir)| (BusAddr(bus), dir))
    }

    /// The live mappings of `dev` as the (IOVA, length) pairs their map calls returned,
    /// in IOVA order (a passthrough range mapped twice is listed twice).
    pub fn iommu_mappings(&self, dev: DeviceId) -> Vec<(Iova, u64)> {
        let Ok(domain) = self.domain(dev) else {
            return Vec::new();
        };
        let domain = domain.read().unwrap_or_else(PoisonError::into_inner);
        domain
            .maps
            .iter()
            .flat_map(|(&(iova, len), r)| std::iter::repeat_n((Iova(iova), len), r.count as usize))
            .collect()
    }

    /// The faults recorded for `dev`, oldest first (the log keeps the latest 256).
    pub fn faults(&self, dev: DeviceId) -> Vec<Fault> {
        self.fault_logs
            .get(dev.0 as usize)
            .map(|log| {
                log.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .iter()
                    .copied()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Empties the fault log of `dev`.
    pub fn clear_faults(&self, dev: DeviceId) {
        if let Some(log) = self.fault_logs.get(dev.0 as usize) {
            log.lock().unwrap_or_else(PoisonError::into_inner).clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allocator_skips_reserved_windows_and_reuses_freed_space() {
        let top = IOVA_END - (1 << 30);
        let mut d = Domain::new(true, &[(top, IOVA_END)]);
        let a = d
            .map(DeviceId(0), &[(0x1234, 0x10)], DmaDirection::ToDevice)
            .unwrap();
        assert_eq!(a, top - PAGE_SIZE + 0x234);
        assert_eq!(
            d.translate(a, 0x10, Access::Read),
            Ok((0x1234, 0x1000 - 0x234))
        );
        assert_eq!(
            d.translate(a, 0x10, Access::Write).unwrap_err().0,
            FaultReason::Permission
        );
        d.unmap(DeviceId(0), a, 0x10).unwrap();
        assert_eq!(
            d.translate(a, 0x10, Access::Read).unwrap_err().0,
            FaultReason::Unmapped
        );
        let b = d
            .map(
                DeviceId(0),
                &[(0x5000, 0x1000)],
                DmaDirection::Bidirectional,
            )
            .unwrap();
        assert_eq!(b, top - PAGE_SIZE);
        assert_eq!(d.free.len(), 1);
    }

    #[test]
    fn contiguous_extents_share_one_entry() {
        let mut d = Domain::new(true, &[]);
        let iova = d
            .map(
                DeviceId(0),
                &[(0x1800, 0x800), (0x2000, 0x1000), (0x9000, 0x1000)],
                DmaDirection::Bidirectional,
            )
            .unwrap();
        assert_eq!(d.entries.len(), 2);
        assert_eq!(iova % PAGE_SIZE, 0x800);
        assert_eq!(d.translate(iova, 1, Access::Read), Ok((0x1800, 0x1800)));
        assert_eq!(
            d.translate(iova + 0x1800, 1, Access::Read),
            Ok((0x9000, 0x1000))
        );
    }
}
