//! The device MMU's page-table format and the device physical address encoding.
//!
//! Virtual addresses are 48 bits, translated by 4 levels ("hops") of 512 8-byte entries
//! each, like x86-64: hop 0 indexes VA bits 47:39, hop 1 bits 38:30, hop 2 bits 29:21,
//! hop 3 bits 20:12. Tables live in HBM and are 4 KiB aligned. A hop-2 entry with
//! `LARGE` maps a 2 MiB page directly. A leaf maps either HBM or, with `HOST`, a host
//! DMA address (an IOVA in the SG1's IOMMU domain) reached through the fabric.
//!
//! ASID 0 is not translated: its addresses are *device physical*: below the HBM size an
//! HBM address, with bit 63 set a host DMA address.

/// The entry maps something.
pub const PTE_PRESENT: u64 = 1 << 0;
/// Writes are allowed.
pub const PTE_WRITABLE: u64 = 1 << 1;
/// The leaf's address is a host DMA address, not HBM.
pub const PTE_HOST: u64 = 1 << 2;
/// A hop-2 entry that maps a 2 MiB page.
pub const PTE_LARGE: u64 = 1 << 7;
/// Where the address sits in an entry (4 KiB aligned, bits 62:12).
pub const PTE_ADDR_MASK: u64 = 0x7fff_ffff_ffff_f000;

/// Bits of virtual address the MMU translates.
pub const VA_BITS: u32 = 48;
/// Entries per table.
pub const ENTRIES: u64 = 512;
/// Bytes of a table.
pub const TABLE_SIZE: u64 = ENTRIES * 8;
/// A small page.
pub const PAGE_4K: u64 = 4096;
/// A large page.
pub const PAGE_2M: u64 = 2 << 20;

/// Bit 63 of a device physical address: the rest is a host DMA address.
pub const HOST_BIT: u64 = 1 << 63;

/// The device physical address of host DMA address `iova`.
pub const fn host_phys(iova: u64) -> u64 {
    iova | HOST_BIT
}

/// Where a device physical address points.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PhysTarget {
    /// An HBM address.
    Hbm(u64),
    /// A host DMA address.
    Host(u64),
}

/// Decodes a device physical address.
pub const fn decode_phys(addr: u64) -> PhysTarget {
    if addr & HOST_BIT != 0 {
        PhysTarget::Host(addr & !HOST_BIT)
    } else {
        PhysTarget::Hbm(addr)
    }
}

/// The table index of `va` at `hop` (0 to 3).
pub const fn index(va: u64, hop: u32) -> u64 {
    (va >> (39 - 9 * hop)) & (ENTRIES - 1)
}

/// An entry pointing to the next table or mapping a page.
pub const fn pte(addr: u64, flags: u64) -> u64 {
    (addr & PTE_ADDR_MASK) | flags | PTE_PRESENT
}

/// Fault cause codes (`MMU.FAULT_CAUSE.CODE`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum FaultCause {
    /// No entry maps the address.
    NotPresent = 1,
    /// A write to a page mapped without `WRITABLE`.
    ReadOnly = 2,
    /// The ASID has no page table.
    NoPageTable = 3,
    /// The address has bits above 47 set.
    BadAddress = 4,
    /// The page maps host memory and the host side (the IOMMU or the fabric) refused
    /// the access.
    HostRefused = 5,
}

impl FaultCause {
    /// Decodes a cause code.
    pub fn from_raw(v: u32) -> Option<Self> {
        Some(match v {
            1 => Self::NotPresent,
            2 => Self::ReadOnly,
            3 => Self::NoPageTable,
            4 => Self::BadAddress,
            5 => Self::HostRefused,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_split_the_address_like_x86_64() {
        let va = (3 << 39) | (5 << 30) | (7 << 21) | (9 << 12) | 0x123;
        assert_eq!(
            [index(va, 0), index(va, 1), index(va, 2), index(va, 3)],
            [3, 5, 7, 9]
        );
    }

    #[test]
    fn physical_addresses_encode_host_memory_in_bit_63() {
        assert_eq!(
            decode_phys(host_phys(0xffff_0000)),
            PhysTarget::Host(0xffff_0000)
        );
        assert_eq!(decode_phys(0x20_0000), PhysTarget::Hbm(0x20_0000));
    }

    #[test]
    fn entries_keep_address_and_flags_apart() {
        let e = pte(0x1234_5678_9000, PTE_WRITABLE | PTE_HOST);
        assert_eq!(e & PTE_ADDR_MASK, 0x1234_5678_9000);
        assert_eq!(e & 0xfff, PTE_PRESENT | PTE_WRITABLE | PTE_HOST);
        assert_eq!(
            FaultCause::from_raw(FaultCause::HostRefused as u32),
            Some(FaultCause::HostRefused)
        );
    }
}
