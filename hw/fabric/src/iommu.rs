//! The IOMMU at each root complex: one domain per device, DMA-API style mapping.
//!
//! A translating domain maps IOVA pages to bus addresses with a direction; a request
//! from the device that reaches the root complex with an address no mapping covers, or
//! against the mapping's direction, is refused and recorded as a [`Fault`]. A
//! passthrough domain translates identically and checks nothing (like `iommu=pt`).
//! IOVAs are allocated top-down below 2^48 and never overlap a bridge window, so an
//! IOVA can never be mistaken by a switch for a peer's BAR (Linux reserves the PCI
//! windows in every DMA domain for the same reason).

use crate::{Access, BusAddr, DeviceId, DmaDirection, Fabric, Iova, PhysAddr, PhysRange};

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
}

/// Why a request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultReason {
    /// No mapping covers the address in a translating domain.
    Unmapped,
    /// A mapping exists but its direction forbids this access.
    Permission,
    /// No device and no memory claims the (translated) bus address: Unsupported
    /// Request, the PCIe master abort.
    Unclaimed,
}

/// A refused request, recorded in the initiator's fault log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{access} of {len:#x} bytes by {device:?} at {addr} refused: {reason:?}")]
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

impl Fabric {
    /// Whether the device's domain translates (false: passthrough).
    pub fn iommu_translates(&self, dev: DeviceId) -> bool {
        let _ = dev;
        todo!()
    }

    /// Maps a physical range (a BAR or host DRAM) for DMA by `dev`
    /// (Linux `dma_map_resource`). The IOVA keeps the page offset of `phys`.
    pub fn dma_map_resource(
        &self,
        dev: DeviceId,
        phys: PhysAddr,
        len: u64,
        dir: DmaDirection,
    ) -> Result<Iova, IommuError> {
        let _ = (dev, phys, len, dir);
        todo!()
    }

    /// Maps physical extents (host pages) into one contiguous IOVA range, in order
    /// (Linux `dma_map_sg` through an IOMMU). Every extent but the first must start on a
    /// page boundary and every extent but the last must end on one.
    pub fn dma_map_extents(
        &self,
        dev: DeviceId,
        extents: &[PhysRange],
        dir: DmaDirection,
    ) -> Result<Iova, IommuError> {
        let _ = (dev, extents, dir);
        todo!()
    }

    /// Removes the mapping created at `iova` with length `len`.
    pub fn dma_unmap(&self, dev: DeviceId, iova: Iova, len: u64) -> Result<(), IommuError> {
        let _ = (dev, iova, len);
        todo!()
    }

    /// The faults recorded for `dev`, oldest first (the log keeps the latest 256).
    pub fn faults(&self, dev: DeviceId) -> Vec<Fault> {
        let _ = dev;
        todo!()
    }
}
