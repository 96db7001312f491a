//! The RDMA NIC's hardware interface, defined once: what the device model (`hw/rnic`),
//! its driver (`kernel/rdma`) and the user-space provider (the verbs library of the
//! runtime, which writes work requests straight into rings it has mapped, as an
//! rdma-core provider does) agree on, and nothing else.
//!
//! - [`regs`]: the BAR0 registers: identification, the command mailbox, the event
//!   queue, the port, counters, and the doorbell pages (UARs) mapped into processes.
//! - [`cmd`]: the commands the driver gives through the mailbox (PDs, memory keys, CQs,
//!   QPs and their state changes) and the answers.
//! - [`queue`]: send and receive work-queue entries, completion entries and event
//!   entries, as they sit in host memory.
//! - [`verbs`]: the verbs enumerations with libibverbs' values (access flags, work
//!   request and completion opcodes, completion statuses, QP states, attribute masks),
//!   used unchanged in the entries above.
//!
//! The driver depends on this crate and never on the device model.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cmd;
pub mod queue;
pub mod regs;
pub mod verbs;

/// Size of BAR0.
pub const BAR0_SIZE: u64 = 1 << 20;
/// The register BAR.
pub const REG_BAR: u8 = 0;
/// The value of [`regs::ID`]: vendor "SG" (0x5347), device 0x0101.
pub const ID_VALUE: u32 = 0x5347_0101;
/// ABI version in [`regs::VERSION`]: major in bits 31:16, minor in 15:0. A driver
/// refuses a different major.
pub const ABI_VERSION: u32 = 1 << 16;
/// Page size of the NIC's translation (memory keys map whole pages of at least this).
pub const NIC_PAGE_SIZE: u64 = 4096;

/// Queue pairs the NIC has contexts for (QPN 0 and 1 are reserved, as in IB).
pub const MAX_QP: u32 = 1024;
/// Completion queues.
pub const MAX_CQ: u32 = 1024;
/// Memory keys.
pub const MAX_MR: u32 = 1 << 16;
/// Protection domains.
pub const MAX_PD: u32 = 1024;
/// Work requests per queue (a power of two).
pub const MAX_QP_WR: u32 = 1 << 14;
/// Entries per completion queue (a power of two).
pub const MAX_CQE: u32 = 1 << 16;
/// Scatter/gather entries per work request.
pub const MAX_SGE: u32 = 8;
/// Bytes of inline data a send work request can carry.
pub const MAX_INLINE: u32 = 192;
/// Largest message, bytes.
pub const MAX_MSG_SIZE: u32 = 1 << 31;
/// RDMA READ and atomic requests a QP may have outstanding, as initiator or target.
pub const MAX_RD_ATOMIC: u32 = 16;
/// Doorbell pages (UARs) in BAR0; each open device context gets one.
pub const NUM_UARS: u32 = 255;
/// Largest number of packets a requester sends before it has their acknowledgements
/// (rxe's `RXE_MAX_UNACKED_PSNS` is 128; four times that keeps a burst in flight while
/// the previous bursts' acknowledgements come back).
pub const MAX_UNACKED_PSNS: u32 = 512;
/// The NIC asks for an acknowledgement at least every this many packets.
pub const MAX_PKT_PER_ACK: u32 = 64;
