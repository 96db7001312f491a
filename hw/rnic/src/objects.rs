//! The NIC's objects, as its on-chip tables hold them: protection domains, memory
//! keys with their page lists, completion queues, and the event queue. Queue pairs
//! live in [`crate::transport`].

use std::collections::HashMap;

use sagrada_hw_fabric::{DmaError, Fabric, Iova};
use sagrada_hw_rnic_abi::queue::{self, Cqe, Eqe, owner_for};
use zerocopy::IntoBytes;

/// A memory key's translation state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Translation {
    /// Pages are loaded.
    Valid,
    /// Invalidated (on-demand paging): an access faults and waits.
    Invalid {
        /// A page-fault event is outstanding for it.
        fault_raised: bool,
    },
    /// The translation cannot come back: accesses fail.
    Revoked,
}

/// A memory key (an MR's lkey/rkey).
#[derive(Debug)]
pub(crate) struct Mkey {
    pub key: u32,
    pub pdn: u32,
    pub access: u32,
    pub iova: u64,
    pub length: u64,
    pub page_shift: u32,
    pub page_offset: u64,
    pub pages: Vec<u64>,
    pub odp: bool,
    pub state: Translation,
}

/// Why a memory access was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MemError {
    /// No such key, a stale variant, or a key of another PD.
    BadKey,
    /// The range is outside the key.
    Range,
    /// The key lacks the access.
    Access,
    /// An on-demand-paging key without translation: the access must wait for the
    /// driver (the key is given).
    Fault(u32),
    /// The key's memory was revoked.
    Revoked,
    /// The fabric refused the DMA.
    Dma,
}

impl MemError {
    /// The CQE vendor error for it.
    pub fn vendor(self) -> u32 {
        match self {
            MemError::BadKey => queue::VENDOR_BAD_LKEY,
            MemError::Range => queue::VENDOR_BAD_RANGE,
            MemError::Access => queue::VENDOR_ACCESS,
            MemError::Fault(_) | MemError::Revoked => queue::VENDOR_REVOKED,
            MemError::Dma => queue::VENDOR_DMA,
        }
    }
}

impl Mkey {
    /// Checks an access of `len` bytes at `addr` needing `need` (0 for a local read),
    /// and returns the DMA pieces `(address, bytes)` it covers, merged where pages are
    /// contiguous.
    pub fn translate(
        &self,
        pdn: u32,
        need: u32,
        addr: u64,
        len: u64,
        out: &mut Vec<(u64, u64)>,
    ) -> Result<(), MemError> {
        out.clear();
        self.check(pdn, need, addr, len)?;
        if len == 0 {
            return Ok(());
        }
        let size = 1u64 << self.page_shift;
        let mut off = addr - self.iova + self.page_offset;
        let mut left = len;
        while left > 0 {
            let page = (off >> self.page_shift) as usize;
            let within = off & (size - 1);
            let n = left.min(size - within);
            let dma = *self.pages.get(page).ok_or(MemError::Range)? + within;
            match out.last_mut() {
                Some((a, l)) if *a + *l == dma => *l += n,
                _ => out.push((dma, n)),
            }
            off += n;
            left -= n;
        }
        Ok(())
    }

    /// Checks an access as [`Mkey::translate`] does, without translating it.
    pub fn check(&self, pdn: u32, need: u32, addr: u64, len: u64) -> Result<(), MemError> {
        if self.pdn != pdn {
            return Err(MemError::BadKey);
        }
        if need & !self.access != 0 {
            return Err(MemError::Access);
        }
        let in_range =
            addr >= self.iova && len <= self.length && addr - self.iova <= self.length - len;
        if !in_range {
            return Err(MemError::Range);
        }
        match self.state {
            Translation::Valid => Ok(()),
            Translation::Invalid { .. } => Err(MemError::Fault(self.key)),
            Translation::Revoked => Err(MemError::Revoked),
        }
    }
}

/// A completion queue.
#[derive(Debug)]
pub(crate) struct Cq {
    pub ring: u64,
    pub dbrec: u64,
    pub log_size: u32,
    pub uar: u32,
    /// Free-running producer index.
    pub pi: u32,
    /// Armed for an event: `Some(solicited_only)`.
    pub armed: Option<bool>,
    /// Overflowed: no more entries.
    pub error: bool,
}

/// What writing a CQE did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum CqPush {
    /// Written; `true` if an armed CQ must raise its event.
    Written(bool),
    /// The CQ is full (or was already in error): nothing written.
    Overflow,
}

impl Cq {
    /// Writes `cqe` (body first, owner byte last).
    pub fn push(
        &mut self,
        fabric: &Fabric,
        dev: sagrada_hw_fabric::DeviceId,
        mut cqe: Cqe,
        solicited: bool,
    ) -> CqPush {
        if self.error {
            return CqPush::Overflow;
        }
        let size = 1u32 << self.log_size;
        let mut ci = [0u8; 4];
        if fabric.dma_read(dev, Iova(self.dbrec), &mut ci).is_err() {
            self.error = true;
            return CqPush::Overflow;
        }
        let ci = u32::from_le_bytes(ci);
        if self.pi.wrapping_sub(ci) >= size {
            self.error = true;
            return CqPush::Overflow;
        }
        let slot = self.ring + u64::from(self.pi & (size - 1)) * queue::CQE_SIZE as u64;
        cqe.owner = owner_for(self.pi, self.log_size);
        let bytes = cqe.as_bytes();
        let body = &bytes[..queue::CQE_SIZE - 1];
        let ok = fabric.dma_write(dev, Iova(slot), body).is_ok() && {
            std::sync::atomic::fence(std::sync::atomic::Ordering::Release);
            fabric
                .dma_write(dev, Iova(slot + queue::CQE_SIZE as u64 - 1), &[cqe.owner])
                .is_ok()
        };
        if !ok {
            self.error = true;
            return CqPush::Overflow;
        }
        self.pi = self.pi.wrapping_add(1);
        let fire = match self.armed {
            Some(only_solicited) => !only_solicited || solicited || cqe.status != 0,
            None => false,
        };
        if fire {
            self.armed = None;
        }
        CqPush::Written(fire)
    }
}

/// The event queue's registers and producer state.
#[derive(Debug, Default)]
pub(crate) struct EventQueue {
    pub base: u64,
    pub log_size: u32,
    pub ci: u32,
    pub pi: u32,
    pub msi_addr: u64,
    pub msi_data: u32,
    pub enabled: bool,
    pub overruns: u32,
}

impl EventQueue {
    /// Writes an event; returns the MSI to raise `(address, data)` if written.
    pub fn push(
        &mut self,
        fabric: &Fabric,
        dev: sagrada_hw_fabric::DeviceId,
        kind: u8,
        obj: u32,
        data: u32,
    ) -> Option<(u64, u32)> {
        if !self.enabled || !(1..=16).contains(&self.log_size) {
            return None;
        }
        let size = 1u32 << self.log_size;
        if self.pi.wrapping_sub(self.ci) >= size {
            self.overruns = self.overruns.wrapping_add(1);
            return None;
        }
        let eqe = Eqe {
            obj,
            data,
            pad: [0; 6],
            kind,
            owner: owner_for(self.pi, self.log_size),
        };
        let slot = self.base + u64::from(self.pi & (size - 1)) * queue::EQE_SIZE as u64;
        let bytes = eqe.as_bytes();
        let written: Result<(), DmaError> = (|| {
            fabric.dma_write(dev, Iova(slot), &bytes[..queue::EQE_SIZE - 1])?;
            std::sync::atomic::fence(std::sync::atomic::Ordering::Release);
            fabric.dma_write(dev, Iova(slot + queue::EQE_SIZE as u64 - 1), &[eqe.owner])?;
            Ok(())
        })();
        if written.is_err() {
            self.overruns = self.overruns.wrapping_add(1);
            return None;
        }
        self.pi = self.pi.wrapping_add(1);
        Some((self.msi_addr, self.msi_data))
    }
}

/// A small table of objects numbered from 1 (0 is never a valid number).
#[derive(Debug)]
pub(crate) struct Table<T> {
    slots: HashMap<u32, T>,
    next: u32,
    max: u32,
}

impl<T> Table<T> {
    pub fn new(max: u32) -> Self {
        Self {
            slots: HashMap::new(),
            next: 1,
            max,
        }
    }

    /// Inserts at a free number (numbers are reused only after wrapping around).
    pub fn insert(&mut self, value: T) -> Option<u32> {
        if self.slots.len() as u32 >= self.max - 1 {
            return None;
        }
        loop {
            let n = self.next;
            self.next = if self.next + 1 >= self.max {
                1
            } else {
                self.next + 1
            };
            if let std::collections::hash_map::Entry::Vacant(slot) = self.slots.entry(n) {
                slot.insert(value);
                return Some(n);
            }
        }
    }

    pub fn get(&self, n: u32) -> Option<&T> {
        self.slots.get(&n)
    }

    pub fn get_mut(&mut self, n: u32) -> Option<&mut T> {
        self.slots.get_mut(&n)
    }

    pub fn remove(&mut self, n: u32) -> Option<T> {
        self.slots.remove(&n)
    }

    pub fn contains(&self, n: u32) -> bool {
        self.slots.contains_key(&n)
    }

    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.slots.values()
    }
}
