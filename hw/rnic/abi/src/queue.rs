//! Entries in host memory: work-queue entries the provider writes and the NIC reads,
//! completion entries and event entries the NIC writes.
//!
//! Rings, and who owns which index:
//! - A send or receive ring has `2^log_size` entries. The provider owns the producer
//!   index (a free-running u32 count of entries posted): it writes entry `pi % size`,
//!   then rings the queue's doorbell with the new `pi`. The NIC owns the consumer
//!   index and never tells it: a WQE's slot is free again once its completion has been
//!   polled (the provider counts completions, as libibverbs' providers do).
//! - A CQ ring: the NIC owns the producer index. It writes an entry's body, then its
//!   `owner` byte last; the entry at free-running index `i` is valid when `owner`
//!   equals `((i >> log_size) & 1) ^ 1` (so a zeroed ring is empty on the first pass).
//!   The consumer owns the consumer index and keeps it current in the CQ's doorbell
//!   record. The NIC never writes over an unconsumed entry: a CQ that would overflow
//!   goes to error (an `EVENT_CQ_ERR`) and so do its QPs.
//! - The event queue works like a CQ, with the driver as consumer and `EQ_CI` as its
//!   consumer index.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Bytes per send WQE.
pub const SEND_WQE_SIZE: usize = 256;
/// Bytes per receive WQE.
pub const RECV_WQE_SIZE: usize = 256;
/// Bytes per CQE.
pub const CQE_SIZE: usize = 64;
/// Bytes per event entry.
pub const EQE_SIZE: usize = 16;
/// Offset of a send WQE's data area (SGEs or inline data).
pub const SEND_WQE_DATA: usize = 64;

/// A scatter/gather entry (`struct ibv_sge`).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct Sge {
    /// Address in the key's address space.
    pub addr: u64,
    /// Bytes.
    pub length: u32,
    /// The lkey.
    pub lkey: u32,
}

/// A send WQE: a 64-byte header, then the data area: `num_sge` [`Sge`]s, or with
/// `INLINE` the payload itself (`inline_len` bytes, at most [`crate::MAX_INLINE`]).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct SendWqe {
    /// The caller's id, returned in the completion.
    pub wr_id: u64,
    /// RDMA and atomic target address (in the remote key's address space).
    pub remote_addr: u64,
    /// Compare value (CMP_SWAP) or addend (FETCH_ADD).
    pub compare_add: u64,
    /// Swap value (CMP_SWAP).
    pub swap: u64,
    /// RDMA and atomic target key.
    pub rkey: u32,
    /// Immediate data, as given (network byte order).
    pub imm_data: u32,
    /// Bytes of inline payload.
    pub inline_len: u32,
    /// [`crate::verbs::WrOpcode`].
    pub opcode: u8,
    /// [`crate::verbs::send_flags`].
    pub send_flags: u8,
    /// SGEs in the data area.
    pub num_sge: u8,
    /// Reserved.
    pub pad0: u8,
    /// Reserved.
    pub pad: [u8; 16],
}

/// A receive WQE: a 16-byte header, then `num_sge` [`Sge`]s.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct RecvWqe {
    /// The caller's id.
    pub wr_id: u64,
    /// SGEs that follow.
    pub num_sge: u32,
    /// Reserved.
    pub pad: u32,
}

/// Offset of a receive WQE's SGEs.
pub const RECV_WQE_DATA: usize = 16;

/// A completion entry (the hardware form of `struct ibv_wc`).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct Cqe {
    /// The work request's id.
    pub wr_id: u64,
    /// Bytes received (receives) or transferred (READ, atomics).
    pub byte_len: u32,
    /// Immediate data, network byte order, with `WC_WITH_IMM`.
    pub imm_data: u32,
    /// The local QP.
    pub qp_num: u32,
    /// The remote QP (receives).
    pub src_qp: u32,
    /// Vendor error: a `VENDOR_*` code saying which check failed.
    pub vendor_err: u32,
    /// [`crate::verbs::WcOpcode`].
    pub opcode: u8,
    /// [`crate::verbs::WcStatus`].
    pub status: u8,
    /// `WC_*` flags.
    pub wc_flags: u8,
    /// Reserved.
    pub pad0: u8,
    /// The free-running index of the WQE this entry completes. A send completion also
    /// frees the slots of the unsignaled WQEs before it.
    pub wqe_counter: u32,
    /// Reserved.
    pub pad: [u8; 27],
    /// Ownership: written last (see the module doc).
    pub owner: u8,
}

/// `Cqe::wc_flags`: a GRH is present (UD).
pub const WC_GRH: u8 = 1 << 0;
/// `Cqe::wc_flags`: `imm_data` is valid.
pub const WC_WITH_IMM: u8 = 1 << 1;

/// An event entry.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct Eqe {
    /// The object (see the `EVENT_*` types in [`crate::cmd`]).
    pub obj: u32,
    /// Extra data.
    pub data: u32,
    /// Reserved.
    pub pad: [u8; 6],
    /// `EVENT_*` type.
    pub kind: u8,
    /// Ownership, as for CQEs, written last.
    pub owner: u8,
}

/// The owner byte that marks the entry at free-running index `i` of a ring of
/// `2^log_size` entries valid.
pub const fn owner_for(i: u32, log_size: u32) -> u8 {
    (((i >> log_size) & 1) ^ 1) as u8
}

/// `Cqe::vendor_err`: no detail.
pub const VENDOR_NONE: u32 = 0;
/// An lkey names no key, or a key of another PD.
pub const VENDOR_BAD_LKEY: u32 = 0x01;
/// A range is outside its key.
pub const VENDOR_BAD_RANGE: u32 = 0x02;
/// The key lacks the access the operation needs.
pub const VENDOR_ACCESS: u32 = 0x03;
/// The key's translation was revoked.
pub const VENDOR_REVOKED: u32 = 0x04;
/// The fabric refused the DMA (IOMMU fault or unclaimed address).
pub const VENDOR_DMA: u32 = 0x05;
/// A malformed work request (opcode, SGE count, inline length, atomic alignment).
pub const VENDOR_BAD_WQE: u32 = 0x06;
/// The peer answered with a NAK (the syndrome is in bits 15:8).
pub const VENDOR_NAK: u32 = 0x07;

const _: () = assert!(size_of::<SendWqe>() == SEND_WQE_DATA);
const _: () = assert!(size_of::<Cqe>() == CQE_SIZE);
const _: () = assert!(size_of::<Eqe>() == EQE_SIZE);
const _: () = assert!(size_of::<RecvWqe>() == RECV_WQE_DATA);
const _: () = assert!(SEND_WQE_DATA + crate::MAX_SGE as usize * size_of::<Sge>() <= SEND_WQE_SIZE);
const _: () = assert!(SEND_WQE_DATA + crate::MAX_INLINE as usize <= SEND_WQE_SIZE);
const _: () = assert!(RECV_WQE_DATA + crate::MAX_SGE as usize * size_of::<Sge>() <= RECV_WQE_SIZE);
