//! Address and identifier newtypes.
//!
//! A PCIe system has several address spaces that carry the same `u64` and that real
//! drivers mix up: the CPU's physical addresses, PCI bus addresses, and the DMA
//! addresses a device emits (IOVAs when an IOMMU translates). Each gets its own type so
//! the compiler rejects the mixing (the rust-vmm `GuestAddress` practice).

use std::fmt;

/// Size of a page for the IOMMU and the host memory allocator.
pub const PAGE_SIZE: u64 = 4096;

macro_rules! address_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name(pub u64);

        impl $name {
            /// The raw value.
            pub const fn raw(self) -> u64 {
                self.0
            }

            /// `self + offset`, or `None` if that overflows the 64-bit space.
            pub const fn checked_add(self, offset: u64) -> Option<Self> {
                match self.0.checked_add(offset) {
                    Some(v) => Some(Self(v)),
                    None => None,
                }
            }

            /// The distance from `base` to `self`, or `None` if `self` lies below `base`.
            pub const fn offset_from(self, base: Self) -> Option<u64> {
                self.0.checked_sub(base.0)
            }

            /// Whether the address is a multiple of [`PAGE_SIZE`].
            pub const fn is_page_aligned(self) -> bool {
                self.0 % PAGE_SIZE == 0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({:#x})"), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:#x}", self.0)
            }
        }

        impl fmt::LowerHex for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::LowerHex::fmt(&self.0, f)
            }
        }
    };
}

address_type!(
    /// A CPU physical address: host DRAM and the BAR apertures as the CPU sees them
    /// (Linux `phys_addr_t`).
    PhysAddr
);
address_type!(
    /// An address on the PCIe bus, as a TLP carries it after any IOMMU translation
    /// (Linux `pci_bus_addr_t`). The default machine has no CPU-to-bus offset, so the
    /// numbers equal [`PhysAddr`]s, but the conversion is always explicit.
    BusAddr
);
address_type!(
    /// The address a device puts in its DMA requests (Linux `dma_addr_t`). In a
    /// translating IOMMU domain it is an IOVA that the IOMMU at the root complex maps to
    /// a bus address; in a passthrough domain, or for a switch-local peer-to-peer
    /// mapping, it is the bus address itself.
    Iova
);

/// A PCI function in the fabric: an endpoint, a root port or a switch port.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct DeviceId(pub u32);

/// A host bridge (root complex).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct HostBridgeId(pub u32);

/// A PCIe link, named by the function at its downstream end (an endpoint or a switch
/// upstream port); its upstream end is a root port or a switch downstream port.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct LinkId(pub u32);

/// A PCI bus/device/function address within a segment (domain).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Bdf {
    /// PCI segment (domain), one per host bridge.
    pub segment: u16,
    /// Bus number.
    pub bus: u8,
    /// Device number, 0..32.
    pub device: u8,
    /// Function number, 0..8.
    pub function: u8,
}

impl fmt::Display for Bdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.segment, self.bus, self.device, self.function
        )
    }
}

/// A contiguous range of CPU physical addresses.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct PhysRange {
    /// First address.
    pub start: PhysAddr,
    /// Length in bytes.
    pub len: u64,
}

impl PhysRange {
    /// One past the last address, or `None` if the range wraps the address space.
    pub const fn end(&self) -> Option<PhysAddr> {
        self.start.checked_add(self.len)
    }
}

/// The direction of a DMA mapping, as Linux `enum dma_data_direction` names it from the
/// CPU's point of view: `ToDevice` memory is read by the device, `FromDevice` memory is
/// written by the device.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum DmaDirection {
    /// The device may read and write.
    Bidirectional,
    /// The device may only read (memory flows to the device).
    ToDevice,
    /// The device may only write (memory flows from the device).
    FromDevice,
}

impl DmaDirection {
    /// Whether a device may read memory mapped with this direction.
    pub const fn allows_device_read(self) -> bool {
        matches!(self, Self::Bidirectional | Self::ToDevice)
    }

    /// Whether a device may write memory mapped with this direction.
    pub const fn allows_device_write(self) -> bool {
        matches!(self, Self::Bidirectional | Self::FromDevice)
    }
}

impl fmt::Display for DmaDirection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Bidirectional => "bidirectional",
            Self::ToDevice => "to-device",
            Self::FromDevice => "from-device",
        })
    }
}

/// Whether a memory transaction reads or writes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Access {
    /// A memory read request (data flows back to the requester).
    Read,
    /// A memory write request (data flows to the target).
    Write,
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Read => "read",
            Self::Write => "write",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checked_add_reports_overflow() {
        assert_eq!(PhysAddr(u64::MAX).checked_add(1), None);
        assert_eq!(Iova(0x1000).checked_add(0x10), Some(Iova(0x1010)));
    }

    #[test]
    fn bdf_prints_like_lspci() {
        let bdf = Bdf {
            segment: 0,
            bus: 3,
            device: 0x1f,
            function: 2,
        };
        assert_eq!(bdf.to_string(), "0000:03:1f.2");
    }

    #[test]
    fn direction_permissions_match_the_dma_api() {
        assert!(DmaDirection::ToDevice.allows_device_read());
        assert!(!DmaDirection::ToDevice.allows_device_write());
        assert!(DmaDirection::FromDevice.allows_device_write());
        assert!(!DmaDirection::FromDevice.allows_device_read());
    }
}
