//! The SG1 driver's user-space interface (`/dev/accel/accelN`), modelled on the
//! habanalabs/accel uAPI: INFO, MEMORY (with `EXPORT_DMABUF_FD`), CS and WAIT_CS, plus
//! a device reset. Structures are `#[repr(C)]`, little endian; `docs/uapi.md`
//! documents them.

use sagrada_kernel_core::ioctl::iowr;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// ioctl type of SG1 device files.
pub const SG1_IOC_MAGIC: u8 = b'S';

/// `SG1_IOCTL_INFO`: read device or context information.
pub const SG1_IOCTL_INFO: u32 = iowr::<InfoArgs>(SG1_IOC_MAGIC, 0x01);
/// `SG1_IOCTL_CS`: submit a command submission.
pub const SG1_IOCTL_CS: u32 = iowr::<CsArgs>(SG1_IOC_MAGIC, 0x03);
/// `SG1_IOCTL_WAIT_CS`: wait for a command submission.
pub const SG1_IOCTL_WAIT_CS: u32 = iowr::<WaitCsArgs>(SG1_IOC_MAGIC, 0x04);
/// `SG1_IOCTL_MEMORY`: allocate, map and export device memory.
pub const SG1_IOCTL_MEMORY: u32 = iowr::<MemArgs>(SG1_IOC_MAGIC, 0x05);
/// `SG1_IOCTL_RESET`: reset the device.
pub const SG1_IOCTL_RESET: u32 = iowr::<ResetArgs>(SG1_IOC_MAGIC, 0x07);

/// `struct sg1_info_args`: the kernel copies at most `return_size` bytes of the answer
/// for `op` to `return_pointer`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct InfoArgs {
    /// User pointer to the answer buffer.
    pub return_pointer: u64,
    /// Size of that buffer.
    pub return_size: u32,
    /// One of the `INFO_*` operations.
    pub op: u32,
}

/// INFO: [`HwIpInfo`].
pub const INFO_HW_IP: u32 = 0;
/// INFO: [`DramUsage`].
pub const INFO_DRAM_USAGE: u32 = 1;
/// INFO: [`DeviceStatus`].
pub const INFO_DEVICE_STATUS: u32 = 2;
/// INFO: [`Counters`].
pub const INFO_COUNTERS: u32 = 3;
/// INFO: [`ContextInfo`].
pub const INFO_CONTEXT: u32 = 4;
/// INFO: [`FirmwareInfo`] (a round trip through the firmware mailbox).
pub const INFO_FIRMWARE: u32 = 5;
/// INFO: [`CoresInfo`], the compute cores' counters and this context's last fault on
/// each.
pub const INFO_CORES: u32 = 6;

/// Compute cores the INFO_CORES answer has room for (the device has
/// [`HwIpInfo::num_cores`] of them).
pub const MAX_CORES: usize = 16;

/// The firmware's view, asked through its mailbox.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct FirmwareInfo {
    /// 1 when booted.
    pub boot_status: u32,
    /// Die temperature, milli-degrees Celsius.
    pub temperature_mc: u32,
    /// 1 if the heartbeat came back incremented.
    pub heartbeat_ok: u32,
    /// Reserved.
    pub pad: u32,
    /// Time since the firmware booted, ms.
    pub uptime_ms: u64,
}

/// The device's properties.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct HwIpInfo {
    /// PCI device ID.
    pub device_id: u32,
    /// Silicon revision.
    pub revision: u32,
    /// HBM size.
    pub hbm_size: u64,
    /// HBM available to contexts (the rest holds page tables).
    pub dram_user_size: u64,
    /// Granularity of device memory allocations.
    pub dram_page_size: u64,
    /// First device VA of device memory mappings.
    pub dram_va_base: u64,
    /// First device VA of host memory mappings.
    pub host_va_base: u64,
    /// Queues.
    pub num_queues: u32,
    /// DMA engines (queues 0 and 1).
    pub num_dma_engines: u32,
    /// Firmware version, major.
    pub fw_major: u32,
    /// Firmware version, minor.
    pub fw_minor: u32,
    /// Firmware version, patch.
    pub fw_patch: u32,
    /// Serial number.
    pub serial: u32,
    /// PCI address, e.g. "0000:03:00.0", NUL terminated.
    pub bus_id: [u8; 16],
    /// PCIe generation of the device's link.
    pub link_gen: u32,
    /// PCIe width of the device's link.
    pub link_width: u32,
    /// Compute cores (cores 0 to `num_cores - 1`).
    pub num_cores: u32,
    /// The compute cores' clock, MHz (one instruction per cycle).
    pub core_clock_mhz: u32,
    /// The instruction set the cores run, major version: kernels built for another
    /// major version must not be launched.
    pub isa_major: u32,
    /// The instruction set's minor version.
    pub isa_minor: u32,
}

/// One compute core in the INFO_CORES answer: its counters since the device's last
/// reset (every context's work), and the last fault of one of the calling context's
/// launches on it.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct CoreInfo {
    /// Instructions retired.
    pub instructions: u64,
    /// Vector lane operations (the active lanes of each vector instruction).
    pub lane_ops: u64,
    /// Bytes of global memory read and written.
    pub global_bytes: u64,
    /// Bytes of scratchpad read and written.
    pub scratch_bytes: u64,
    /// Invocations run to `halt`.
    pub invocations: u64,
    /// Device time the core was busy, ns.
    pub busy_ns: u64,
    /// The submission (of the calling context) whose launch last faulted on this core,
    /// 0 if none has since the context was opened.
    pub fault_seq: u64,
    /// That fault's code (`sagrada_hw_accel_abi::launch::FaultCode`), 0 if none.
    pub fault_code: u32,
    /// The faulting instruction's index.
    pub fault_pc: u32,
    /// The fault's detail word (`CORE.FAULT_INFO`; its meaning depends on the code).
    pub fault_info: u64,
    /// [`CORE_FAULT_WRITE`] for an MMU fault of a store.
    pub fault_flags: u32,
    /// Reserved.
    pub pad: u32,
}

/// [`CoreInfo::fault_flags`]: the MMU fault was a store's.
pub const CORE_FAULT_WRITE: u32 = 1;

/// The INFO_CORES answer.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct CoresInfo {
    /// Cores of the device: the first `num_cores` records are filled, the others zero.
    pub num_cores: u32,
    /// Bytes of one record (`size_of::<CoreInfo>()`, 80): records may grow at their end.
    pub record_size: u32,
    /// One record per core.
    pub cores: [CoreInfo; MAX_CORES],
}

/// Device memory usage.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct DramUsage {
    /// Bytes free for allocation.
    pub free: u64,
    /// Bytes allocatable in total.
    pub total: u64,
    /// Bytes this context holds.
    pub ctx_used: u64,
}

/// Device operating state.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct DeviceStatus {
    /// [`STATUS_OPERATIONAL`], [`STATUS_IN_RESET`] or [`STATUS_MALFUNCTION`].
    pub status: u32,
    /// Reserved.
    pub pad: u32,
}

/// Working normally.
pub const STATUS_OPERATIONAL: u32 = 0;
/// A reset is in progress.
pub const STATUS_IN_RESET: u32 = 1;
/// The device stopped answering.
pub const STATUS_MALFUNCTION: u32 = 2;

/// Activity counters.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct Counters {
    /// Device time each queue's engine was busy, ns.
    pub busy_ns: [u64; 3],
    /// Entries that ended with an error, per queue.
    pub errors: [u32; 3],
    /// MMU faults.
    pub mmu_faults: u32,
    /// Command submissions completed (all contexts).
    pub cs_completed: u64,
    /// Command submissions aborted (all contexts).
    pub cs_aborted: u64,
    /// Soft resets.
    pub soft_resets: u32,
    /// Hard resets.
    pub hard_resets: u32,
    /// Submissions found still running after the lockup timeout (each followed by a
    /// soft reset).
    pub lockups: u32,
    /// Reserved.
    pub pad: u32,
}

/// The calling context.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct ContextInfo {
    /// Its address space.
    pub asid: u32,
    /// First sync object it owns (usable in MSG and WAIT packets).
    pub sob_base: u32,
    /// Sync objects it owns.
    pub sob_count: u32,
    /// Reserved.
    pub pad: u32,
}

/// `struct sg1_mem_args`: one structure for every MEMORY operation; unused fields must
/// be 0.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct MemArgs {
    /// One of the `MEM_OP_*` operations.
    pub op: u32,
    /// `MEM_CONTIGUOUS` for ALLOC; file flags (`O_RDWR|O_CLOEXEC`) for EXPORT.
    pub flags: u32,
    /// FREE, MAP: the allocation handle.
    pub handle: u64,
    /// ALLOC, MAP_USERPTR, EXPORT: bytes.
    pub size: u64,
    /// MAP_USERPTR: host address; UNMAP, EXPORT: device VA.
    pub addr: u64,
    /// EXPORT: offset into the mapping.
    pub offset: u64,
    /// Out (ALLOC): the handle.
    pub out_handle: u64,
    /// Out (MAP, MAP_USERPTR): the device VA.
    pub out_addr: u64,
    /// Out (EXPORT): the dma-buf fd, or `-EBADF` on failure.
    pub out_fd: i32,
    /// Reserved, 0.
    pub pad: u32,
}

/// Allocate device memory.
pub const MEM_OP_ALLOC: u32 = 0;
/// Free an allocation.
pub const MEM_OP_FREE: u32 = 1;
/// Map an allocation into the context's address space.
pub const MEM_OP_MAP: u32 = 2;
/// Unmap a device VA (device or host memory).
pub const MEM_OP_UNMAP: u32 = 3;
/// Map host memory (pinned) into the context's address space.
pub const MEM_OP_MAP_USERPTR: u32 = 4;
/// Export device memory as a dma-buf (habanalabs `HL_MEM_OP_EXPORT_DMABUF_FD`).
pub const MEM_OP_EXPORT_DMABUF_FD: u32 = 5;

/// ALLOC: physically contiguous HBM.
pub const MEM_CONTIGUOUS: u32 = 1;

/// A job: a command buffer for one queue.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct CsChunk {
    /// Queue: 0 (DMA0), 1 (DMA1) or 2 (COMPUTE, the only one that runs `LAUNCH`).
    pub queue: u32,
    /// Bytes of packets (a multiple of 4).
    pub cb_size: u32,
    /// Device VA of the command buffer in the context's address space.
    pub cb_addr: u64,
}

/// `struct sg1_cs_args`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct CsArgs {
    /// User pointer to `num_chunks` [`CsChunk`]s.
    pub chunks: u64,
    /// Chunks, 1 to [`MAX_CS_CHUNKS`].
    pub num_chunks: u32,
    /// `CS_FLAG_OUT_FENCE` to get a sync_file.
    pub flags: u32,
    /// Out: the submission's sequence number (per context, from 1).
    pub seq: u64,
    /// Out: a sync_file fd signalled at completion, or -1.
    pub fence_fd: i32,
    /// Reserved, 0.
    pub pad: u32,
}

/// Most chunks in one submission.
pub const MAX_CS_CHUNKS: u32 = 16;
/// CS: return a sync_file fd.
pub const CS_FLAG_OUT_FENCE: u32 = 1;

/// `struct sg1_wait_cs_args`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct WaitCsArgs {
    /// The submission.
    pub seq: u64,
    /// How long to wait, µs (0 only tests).
    pub timeout_us: u64,
    /// Out: `CS_STATUS_*`.
    pub status: u32,
    /// Out: for an aborted submission, the negative errno of the cause (`-EFAULT` MMU
    /// fault, `-EINVAL` bad packet, `-EPERM` privilege violation, `-EIO` a compute
    /// core's fault, `-ECANCELED` reset, `-ETIMEDOUT` lockup).
    pub error: i32,
    /// Out: the faulting VA of an MMU fault, the packet offset of a packet error, or
    /// for a core fault `code << 40 | core << 32 | pc`
    /// (`sagrada_hw_accel_abi::launch::CoreFault`).
    pub error_info: u64,
    /// Out: device time of completion, ns.
    pub device_time_ns: u64,
}

/// The submission completed.
pub const CS_STATUS_COMPLETED: u32 = 0;
/// The timeout expired first.
pub const CS_STATUS_BUSY: u32 = 1;
/// The submission was aborted (see `error`).
pub const CS_STATUS_ABORTED: u32 = 2;
/// The submission ended long ago and its outcome is no longer kept (the context
/// remembers its last [`RETAINED_CS`] submissions).
pub const CS_STATUS_GONE: u32 = 3;

/// Submissions whose outcome a context keeps for `WAIT_CS` (besides those running).
pub const RETAINED_CS: usize = 4096;

/// `struct sg1_reset_args`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct ResetArgs {
    /// [`RESET_SOFT`] or [`RESET_HARD`].
    pub kind: u32,
    /// Reserved, 0.
    pub pad: u32,
}

/// Soft reset: queues restart; submissions in flight are aborted; memory is kept.
pub const RESET_SOFT: u32 = 1;
/// Hard reset: everything, HBM scrubbed; every open context becomes unusable
/// (`ENODEV`). Refused with `EBUSY` while device memory is exported.
pub const RESET_HARD: u32 = 2;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structures_have_stable_sizes() {
        assert_eq!(size_of::<InfoArgs>(), 16);
        assert_eq!(size_of::<MemArgs>(), 64);
        assert_eq!(size_of::<CsChunk>(), 16);
        assert_eq!(size_of::<CsArgs>(), 32);
        assert_eq!(size_of::<WaitCsArgs>(), 40);
        assert_eq!(size_of::<HwIpInfo>(), 112);
        assert_eq!(size_of::<CoreInfo>(), 80);
        assert_eq!(size_of::<CoresInfo>(), 8 + 16 * 80);
        assert_eq!(size_of::<FirmwareInfo>(), 24);
        assert_eq!(size_of::<Counters>(), 72);
    }
}
