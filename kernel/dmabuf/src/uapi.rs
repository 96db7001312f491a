//! The user-space interface of the dma-buf framework: ioctl numbers and argument
//! structures, laid out byte for byte as in Linux `include/uapi/linux/{dma-buf.h,
//! sync_file.h, dma-heap.h}` and the sw_sync debugfs interface. This module is the
//! contract; `docs/uapi.md` documents it for users.

use sagrada_kernel_core::ioctl::{iow, iowr};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Longest user name of a dma-buf, including the terminating NUL.
pub const DMA_BUF_NAME_LEN: usize = 32;

/// The ioctl type of dma-buf fds.
pub const DMA_BUF_BASE: u8 = b'b';

/// `struct dma_buf_sync`: brackets CPU access to an mmap of the buffer.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct DmaBufSync {
    /// `DMA_BUF_SYNC_*` flags.
    pub flags: u64,
}

/// CPU reads.
pub const DMA_BUF_SYNC_READ: u64 = 1;
/// CPU writes.
pub const DMA_BUF_SYNC_WRITE: u64 = 2;
/// CPU reads and writes.
pub const DMA_BUF_SYNC_RW: u64 = DMA_BUF_SYNC_READ | DMA_BUF_SYNC_WRITE;
/// Begin of access.
pub const DMA_BUF_SYNC_START: u64 = 0;
/// End of access.
pub const DMA_BUF_SYNC_END: u64 = 1 << 2;
/// Every defined bit.
pub const DMA_BUF_SYNC_VALID_FLAGS_MASK: u64 = DMA_BUF_SYNC_RW | DMA_BUF_SYNC_END;

/// `struct dma_buf_export_sync_file`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct DmaBufExportSyncFile {
    /// `DMA_BUF_SYNC_READ` and/or `DMA_BUF_SYNC_WRITE`: the access to wait for.
    pub flags: u32,
    /// Out: the new sync_file fd.
    pub fd: i32,
}

/// `struct dma_buf_import_sync_file`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct DmaBufImportSyncFile {
    /// `DMA_BUF_SYNC_READ` and/or `DMA_BUF_SYNC_WRITE`: the usage to add the fences as.
    pub flags: u32,
    /// The sync_file fd whose fences to add.
    pub fd: i32,
}

/// `DMA_BUF_IOCTL_SYNC`.
pub const DMA_BUF_IOCTL_SYNC: u32 = iow::<DmaBufSync>(DMA_BUF_BASE, 0);
/// `DMA_BUF_SET_NAME` with a 32-bit pointer argument size (`DMA_BUF_SET_NAME_A`).
pub const DMA_BUF_SET_NAME_A: u32 = iow::<u32>(DMA_BUF_BASE, 1);
/// `DMA_BUF_SET_NAME` with a 64-bit pointer argument size (`DMA_BUF_SET_NAME_B`, what
/// `DMA_BUF_SET_NAME` is on 64-bit machines).
pub const DMA_BUF_SET_NAME_B: u32 = iow::<u64>(DMA_BUF_BASE, 1);
/// `DMA_BUF_SET_NAME` on this (64-bit) model.
pub const DMA_BUF_SET_NAME: u32 = DMA_BUF_SET_NAME_B;
/// `DMA_BUF_IOCTL_EXPORT_SYNC_FILE`.
pub const DMA_BUF_IOCTL_EXPORT_SYNC_FILE: u32 = iowr::<DmaBufExportSyncFile>(DMA_BUF_BASE, 2);
/// `DMA_BUF_IOCTL_IMPORT_SYNC_FILE`.
pub const DMA_BUF_IOCTL_IMPORT_SYNC_FILE: u32 = iow::<DmaBufImportSyncFile>(DMA_BUF_BASE, 3);

/// The ioctl type of sync_file fds.
pub const SYNC_IOC_MAGIC: u8 = b'>';

/// `struct sync_merge_data`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct SyncMergeData {
    /// Name of the new sync_file.
    pub name: [u8; 32],
    /// The sync_file to merge with the one the ioctl is called on.
    pub fd2: i32,
    /// Out: the new sync_file fd.
    pub fence: i32,
    /// Must be 0.
    pub flags: u32,
    /// Must be 0.
    pub pad: u32,
}

/// `struct sync_fence_info`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct SyncFenceInfo {
    /// Timeline name.
    pub obj_name: [u8; 32],
    /// Driver name.
    pub driver_name: [u8; 32],
    /// 1 signalled, 0 active, negative errno on error.
    pub status: i32,
    /// Reserved, 0.
    pub flags: u32,
    /// Signal time (`CLOCK_MONOTONIC` ns), 0 while active.
    pub timestamp_ns: u64,
}

/// `struct sync_file_info`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct SyncFileInfo {
    /// Out: the sync_file's name.
    pub name: [u8; 32],
    /// Out: overall status.
    pub status: i32,
    /// Must be 0.
    pub flags: u32,
    /// In: room in the array (0 asks only for the count); out: the number of fences.
    pub num_fences: u32,
    /// Must be 0.
    pub pad: u32,
    /// User pointer to an array of `num_fences` [`SyncFenceInfo`].
    pub sync_fence_info: u64,
}

/// `struct sync_set_deadline`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct SyncSetDeadline {
    /// Deadline, `CLOCK_MONOTONIC` ns.
    pub deadline_ns: u64,
    /// Must be 0.
    pub pad: u64,
}

/// `SYNC_IOC_MERGE`.
pub const SYNC_IOC_MERGE: u32 = iowr::<SyncMergeData>(SYNC_IOC_MAGIC, 3);
/// `SYNC_IOC_FILE_INFO`.
pub const SYNC_IOC_FILE_INFO: u32 = iowr::<SyncFileInfo>(SYNC_IOC_MAGIC, 4);
/// `SYNC_IOC_SET_DEADLINE`.
pub const SYNC_IOC_SET_DEADLINE: u32 = iow::<SyncSetDeadline>(SYNC_IOC_MAGIC, 5);

/// The ioctl type of sw_sync timeline fds.
pub const SW_SYNC_IOC_MAGIC: u8 = b'W';

/// `struct sw_sync_create_fence_data`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct SwSyncCreateFenceData {
    /// The timeline point the fence signals at.
    pub value: u32,
    /// Unused by the kernel (kept for compatibility).
    pub name: [u8; 32],
    /// Out: the sync_file fd.
    pub fence: i32,
}

/// `struct sw_sync_get_deadline`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct SwSyncGetDeadline {
    /// Out: the earliest deadline set on the fence. Must be 0 on input.
    pub deadline_ns: u64,
    /// Must be 0.
    pub pad: u32,
    /// A sync_file fd holding a sw_sync fence.
    pub fence_fd: i32,
}

/// `SW_SYNC_IOC_CREATE_FENCE`.
pub const SW_SYNC_IOC_CREATE_FENCE: u32 = iowr::<SwSyncCreateFenceData>(SW_SYNC_IOC_MAGIC, 0);
/// `SW_SYNC_IOC_INC` (argument: pointer to a `u32` increment).
pub const SW_SYNC_IOC_INC: u32 = iow::<u32>(SW_SYNC_IOC_MAGIC, 1);
/// `SW_SYNC_GET_DEADLINE`.
pub const SW_SYNC_GET_DEADLINE: u32 = iowr::<SwSyncGetDeadline>(SW_SYNC_IOC_MAGIC, 2);

/// The ioctl type of dma-heap fds.
pub const DMA_HEAP_IOC_MAGIC: u8 = b'H';

/// `struct dma_heap_allocation_data`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct DmaHeapAllocationData {
    /// Bytes to allocate.
    pub len: u64,
    /// Out: the dma-buf fd. Must be 0 on input.
    pub fd: u32,
    /// `O_RDWR`/`O_RDONLY`/`O_WRONLY` and `O_CLOEXEC` for the new fd.
    pub fd_flags: u32,
    /// Heap-specific flags; none are defined (must be 0).
    pub heap_flags: u64,
}

/// `DMA_HEAP_IOCTL_ALLOC`.
pub const DMA_HEAP_IOCTL_ALLOC: u32 = iowr::<DmaHeapAllocationData>(DMA_HEAP_IOC_MAGIC, 0);

/// Path of the system heap.
pub const DMA_HEAP_SYSTEM_PATH: &str = "/dev/dma_heap/system";
/// Path of the sw_sync timeline device (debugfs, as kselftest opens it).
pub const SW_SYNC_PATH: &str = "/sys/kernel/debug/sync/sw_sync";
/// The alternative sw_sync path IGT tries.
pub const SW_SYNC_DEV_PATH: &str = "/dev/sw_sync";
/// Path of the dma-buf debugfs listing.
pub const BUFINFO_PATH: &str = "/sys/kernel/debug/dma_buf/bufinfo";

/// Copies `s` into a fixed NUL-terminated name field, truncating like `strscpy`.
pub fn name_field<const N: usize>(s: &str) -> [u8; N] {
    let mut out = [0u8; N];
    let n = s.len().min(N.saturating_sub(1));
    out[..n].copy_from_slice(&s.as_bytes()[..n]);
    out
}

/// The text of a NUL-terminated name field.
pub fn field_str(field: &[u8]) -> String {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structure_sizes_match_the_linux_abi() {
        assert_eq!(size_of::<DmaBufSync>(), 8);
        assert_eq!(size_of::<DmaBufExportSyncFile>(), 8);
        assert_eq!(size_of::<SyncMergeData>(), 48);
        assert_eq!(size_of::<SyncFenceInfo>(), 80);
        assert_eq!(size_of::<SyncFileInfo>(), 56);
        assert_eq!(size_of::<SwSyncCreateFenceData>(), 40);
        assert_eq!(size_of::<SwSyncGetDeadline>(), 16);
        assert_eq!(size_of::<DmaHeapAllocationData>(), 24);
    }

    #[test]
    fn ioctl_numbers_match_the_linux_headers() {
        assert_eq!(DMA_BUF_IOCTL_SYNC, 0x4008_6200);
        assert_eq!(DMA_BUF_SET_NAME_A, 0x4004_6201);
        assert_eq!(DMA_BUF_SET_NAME_B, 0x4008_6201);
        assert_eq!(DMA_BUF_IOCTL_EXPORT_SYNC_FILE, 0xc008_6202);
        assert_eq!(DMA_BUF_IOCTL_IMPORT_SYNC_FILE, 0x4008_6203);
        assert_eq!(SYNC_IOC_MERGE, 0xc030_3e03);
        assert_eq!(SYNC_IOC_FILE_INFO, 0xc038_3e04);
        assert_eq!(SW_SYNC_IOC_CREATE_FENCE, 0xc028_5700);
        assert_eq!(SW_SYNC_IOC_INC, 0x4004_5701);
        assert_eq!(DMA_HEAP_IOCTL_ALLOC, 0xc018_4800);
    }

    #[test]
    fn names_are_truncated_and_terminated() {
        let f: [u8; 4] = name_field("abcdef");
        assert_eq!(&f, b"abc\0");
        assert_eq!(field_str(&f), "abc");
    }
}
