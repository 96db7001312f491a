//! The device MMU: from an address space's virtual addresses to runs of device
//! physical memory (HBM or host DMA addresses).
//!
//! ASID 0 is physical. The others walk the 4-level tables of `abi::mmu` in HBM from
//! their `MMU_HOP0` root, on every access: the SG1 has no TLB. A translation returns
//! the longest run of pages that are contiguous in one kind of memory, so a transfer
//! over a contiguous mapping is one fabric transfer or one HBM copy, whatever its
//! page size.

use sagrada_hw_accel_abi::NUM_ASIDS;
use sagrada_hw_accel_abi::mmu::{
    self as abi, FaultCause, HOST_BIT, PAGE_2M, PAGE_4K, PTE_ADDR_MASK, PTE_HOST, PTE_LARGE,
    PTE_PRESENT, PTE_WRITABLE, PhysTarget, VA_BITS,
};

use crate::device::Core;

/// The scrubber's and page tables' granule.
pub(crate) const HBM_PAGE: u64 = PAGE_4K;

/// The longest run one translation returns in a translated address space: bounds the
/// walk done before any data moves, so a reset or shutdown is noticed between runs.
const MAX_RUN: u64 = 256 << 20;

/// Where a run of bytes lives.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Target {
    /// HBM at this address.
    Hbm(u64),
    /// Host memory at this DMA address of the SG1.
    Host(u64),
}

impl Target {
    pub(crate) fn is_host(self) -> bool {
        matches!(self, Target::Host(_))
    }

    fn offset(self, n: u64) -> Target {
        match self {
            Target::Hbm(a) => Target::Hbm(a + n),
            Target::Host(a) => Target::Host(a.wrapping_add(n)),
        }
    }
}

/// `len` bytes at virtual address `va`, contiguous at `target`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Run {
    pub(crate) va: u64,
    pub(crate) len: u64,
    pub(crate) target: Target,
}

impl Run {
    /// The run without its first `n` bytes, or `None` if nothing is left.
    pub(crate) fn advance(self, n: u64) -> Option<Run> {
        (n < self.len).then(|| Run {
            va: self.va.wrapping_add(n),
            len: self.len - n,
            target: self.target.offset(n),
        })
    }
}

/// A page-table leaf.
struct Leaf {
    /// Device physical target of the page's first byte.
    base: Target,
    size: u64,
    writable: bool,
}

impl Core {
    fn read_pte(&self, addr: u64) -> Option<u64> {
        let mut b = [0u8; 8];
        self.hbm.read(addr, &mut b).ok()?;
        Some(u64::from_le_bytes(b))
    }

    /// Walks the tables rooted at `root` for `va`.
    fn walk(&self, root: u64, va: u64) -> Result<Leaf, FaultCause> {
        let mut table = root & PTE_ADDR_MASK;
        for hop in 0..4 {
            let pte = self
                .read_pte(table + abi::index(va, hop) * 8)
                .ok_or(FaultCause::NotPresent)?;
            if pte & PTE_PRESENT == 0 {
                return Err(FaultCause::NotPresent);
            }
            let addr = pte & PTE_ADDR_MASK;
            let leaf = match hop {
                3 => Some(PAGE_4K),
                2 if pte & PTE_LARGE != 0 => Some(PAGE_2M),
                _ => None,
            };
            if let Some(size) = leaf {
                let addr = addr & !(size - 1);
                return Ok(Leaf {
                    base: if pte & PTE_HOST != 0 {
                        Target::Host(addr)
                    } else {
                        Target::Hbm(addr)
                    },
                    size,
                    writable: pte & PTE_WRITABLE != 0,
                });
            }
            if pte & PTE_HOST != 0 {
                // Tables live in HBM; a table "in host memory" maps nothing.
                return Err(FaultCause::NotPresent);
            }
            table = addr;
        }
        unreachable!("hop 3 always ends the walk")
    }

    /// Translates the start of `len` (> 0) bytes at `va` in address space `asid`:
    /// the longest contiguous run there, or the fault at `va` itself.
    pub(crate) fn translate(
        &self,
        asid: u16,
        va: u64,
        len: u64,
        write: bool,
    ) -> Result<Run, FaultCause> {
        debug_assert!(len > 0);
        if asid == 0 {
            return match abi::decode_phys(va) {
                PhysTarget::Host(iova) => Ok(Run {
                    va,
                    // Host addresses end at 2^63, where the HOST bit would carry.
                    len: len.min(HOST_BIT - iova),
                    target: Target::Host(iova),
                }),
                PhysTarget::Hbm(pa) if pa < self.hbm_size() => Ok(Run {
                    va,
                    len: len.min(self.hbm_size() - pa),
                    target: Target::Hbm(pa),
                }),
                PhysTarget::Hbm(_) => Err(FaultCause::BadAddress),
            };
        }
        if va >> VA_BITS != 0 {
            return Err(FaultCause::BadAddress);
        }
        let root = if u32::from(asid) < NUM_ASIDS {
            self.lock().hop0[asid as usize]
        } else {
            0
        };
        if root == 0 {
            return Err(FaultCause::NoPageTable);
        }
        let len = len.min(MAX_RUN).min((1 << VA_BITS) - va);
        let mut run: Option<Run> = None;
        let mut at = va;
        while at - va < len {
            let page = self.walk(root, at).and_then(|leaf| {
                if write && !leaf.writable {
                    return Err(FaultCause::ReadOnly);
                }
                let offset = at & (leaf.size - 1);
                let n = (leaf.size - offset).min(len - (at - va));
                let target = leaf.base.offset(offset);
                match target {
                    Target::Hbm(pa) if pa.checked_add(n).is_none_or(|e| e > self.hbm_size()) => {
                        Err(FaultCause::BadAddress)
                    }
                    _ => Ok((target, n)),
                }
            });
            let (target, n) = match (page, run) {
                (Ok(p), _) => p,
                // The run so far is good; the fault is reported when it is reached.
                (Err(_), Some(_)) => break,
                (Err(cause), None) => return Err(cause),
            };
            match &mut run {
                None => run = Some(Run { va, len: n, target }),
                Some(r) if r.target.offset(r.len) == target => r.len += n,
                Some(_) => break,
            }
            at += n;
        }
        Ok(run.expect("the first page either faulted or started the run"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_advances_in_both_address_spaces() {
        let r = Run {
            va: 0x1000,
            len: 0x3000,
            target: Target::Hbm(0x8000),
        };
        assert_eq!(
            r.advance(0x1000),
            Some(Run {
                va: 0x2000,
                len: 0x2000,
                target: Target::Hbm(0x9000)
            })
        );
        assert_eq!(r.advance(0x3000), None);
        assert!(Target::Host(1).is_host() && !Target::Hbm(1).is_host());
    }
}
