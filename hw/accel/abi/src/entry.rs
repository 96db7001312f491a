//! The structures the SG1 and its driver share in host memory: queue ring entries and
//! completion entries. Both are 32 bytes, little endian.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// One job of a queue: a command buffer to run in an address space.
///
/// Ownership: the driver writes entries at `PI` and then `PI` itself; the engine reads
/// entries between `CI` and `PI` and never writes the ring.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct RingEntry {
    /// Address of the command buffer in the entry's address space (physical for ASID 0:
    /// see [`crate::mmu::host_phys`]).
    pub cb_addr: u64,
    /// Bytes of packets (a multiple of 4, at most [`crate::MAX_CB_SIZE`]).
    pub cb_size: u32,
    /// Address space; 0 is the kernel's and runs privileged packets.
    pub asid: u16,
    /// Reserved, 0.
    pub flags: u16,
    /// The driver's tag for the job, echoed in completion entries.
    pub tag: u64,
    /// Reserved, 0.
    pub reserved: u64,
}

/// Outcome codes of a completion entry.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[repr(u16)]
pub enum CqStatus {
    /// A `FENCE` packet completed.
    Fence = 0,
    /// The entry's command buffer hit an MMU fault (`info`: the faulting address).
    MmuFault = 1,
    /// A packet could not be decoded or had an invalid field (`info`: its byte offset).
    BadPacket = 2,
    /// An unprivileged entry used a privileged packet or a sync object it does not own
    /// (`info`: the packet's byte offset).
    PrivilegeViolation = 3,
    /// A compute core faulted while running a `LAUNCH` (`info`: a
    /// [`CoreFault`](crate::launch::CoreFault): `(code << 40) | (core << 32) | pc` of the
    /// lowest-numbered core that faulted; its `CORE.FAULT_*` registers hold the detail).
    CoreFault = 4,
}

impl CqStatus {
    /// Decodes a status code.
    pub fn from_raw(v: u16) -> Option<Self> {
        Some(match v {
            0 => Self::Fence,
            1 => Self::MmuFault,
            2 => Self::BadPacket,
            3 => Self::PrivilegeViolation,
            4 => Self::CoreFault,
            _ => return None,
        })
    }
}

/// One completion: a `FENCE`, or an error that ended an entry's command buffer (the
/// engine then goes on with the next entry).
///
/// Ownership: the engine writes entries at `CQ.PI` and then advances it; the driver
/// reads entries between `CQ.CI` and `CQ.PI` and then writes `CQ.CI`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct CqEntry {
    /// The `FENCE` tag, or the tag of the entry that failed.
    pub tag: u64,
    /// The queue.
    pub queue: u16,
    /// A [`CqStatus`] code.
    pub status: u16,
    /// Reserved, 0.
    pub reserved: u32,
    /// For errors: the faulting address, the packet offset, or the core fault (see
    /// [`CqStatus`]).
    pub info: u64,
    /// The engine's device time when it wrote the entry, ns.
    pub device_time_ns: u64,
}

/// Size of a ring entry.
pub const RING_ENTRY_SIZE: u64 = size_of::<RingEntry>() as u64;
/// Size of a completion entry.
pub const CQ_ENTRY_SIZE: u64 = size_of::<CqEntry>() as u64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_32_bytes() {
        assert_eq!(RING_ENTRY_SIZE, 32);
        assert_eq!(CQ_ENTRY_SIZE, 32);
    }

    #[test]
    fn status_codes_round_trip() {
        for s in [
            CqStatus::Fence,
            CqStatus::MmuFault,
            CqStatus::BadPacket,
            CqStatus::PrivilegeViolation,
            CqStatus::CoreFault,
        ] {
            assert_eq!(CqStatus::from_raw(s as u16), Some(s));
        }
        assert_eq!(CqStatus::from_raw(9), None);
    }
}
