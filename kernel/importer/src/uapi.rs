//! The importer's user-space interface (`/dev/hliN`), after the `HL_IMPORTER_IOCTL_*`
//! interface of Habana's test importer (`hl-thunk: include/specs/common/importer_drv.h`).

use sagrada_kernel_core::ioctl::{iow, iowr};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// ioctl type.
pub const IMP_IOC_MAGIC: u8 = b'I';

/// Registers a memory region over a dma-buf.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct RegDmabufMr {
    /// Offset of the region in the dma-buf.
    pub offset: u64,
    /// Bytes of the region.
    pub length: u64,
    /// The address the region answers to; its page offset must equal `offset`'s.
    pub iova: u64,
    /// The dma-buf fd.
    pub fd: i32,
    /// `ACCESS_*` flags.
    pub access: u32,
    /// Out: the region's handle.
    pub mr_handle: u64,
}

/// Removes a region.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct DeregMr {
    /// The handle.
    pub mr_handle: u64,
}

/// Moves data between the caller's memory and a region, by the importer's DMA engine.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct MrAccess {
    /// The region.
    pub mr_handle: u64,
    /// The caller's buffer.
    pub userptr: u64,
    /// Bytes.
    pub size: u64,
    /// Offset in the region.
    pub offset: u64,
    /// Out: device time the importer's DMA engine took, ns.
    pub device_time_ns: u64,
}

/// `HL_IMPORTER_IOCTL_REG_DMABUF_MR`.
pub const IMP_IOCTL_REG_DMABUF_MR: u32 = iowr::<RegDmabufMr>(IMP_IOC_MAGIC, 1);
/// `HL_IMPORTER_IOCTL_DEREG_MR`.
pub const IMP_IOCTL_DEREG_MR: u32 = iow::<DeregMr>(IMP_IOC_MAGIC, 2);
/// `HL_IMPORTER_IOCTL_WRITE_TO_MR`: caller's memory → region.
pub const IMP_IOCTL_WRITE_TO_MR: u32 = iowr::<MrAccess>(IMP_IOC_MAGIC, 3);
/// `HL_IMPORTER_IOCTL_READ_FROM_MR`: region → caller's memory.
pub const IMP_IOCTL_READ_FROM_MR: u32 = iowr::<MrAccess>(IMP_IOC_MAGIC, 4);

/// Attach as a static importer (no move notification, hence no peer memory).
pub const ACCESS_STATIC: u32 = 1 << 0;
/// Attach dynamically but without `allow_peer2peer`.
pub const ACCESS_NO_P2P: u32 = 1 << 1;
