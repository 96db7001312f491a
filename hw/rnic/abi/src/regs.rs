//! BAR0: the NIC's registers. Every register below `UAR_BASE` is 32 bits, little
//! endian, dword aligned, except the counters and the doorbells, which are 64-bit
//! registers written or read with one 8-byte access. Unknown offsets read 0 and ignore
//! writes; a misaligned or oddly sized access is dropped (and a read returns all-ones).
//!
//! Ownership: the driver owns everything below `UAR_BASE`. A UAR page belongs to the
//! process it was mapped into; the NIC accepts a doorbell on it only for queues created
//! with that UAR index, so one process cannot ring another's queues.

/// Identification, RO: [`crate::ID_VALUE`].
pub const ID: u32 = 0x000;
/// ABI version, RO: [`crate::ABI_VERSION`].
pub const VERSION: u32 = 0x004;
/// Capabilities, RO: `CAP_*` bits.
pub const CAPS: u32 = 0x008;
/// `CAPS`: memory keys can be invalidated and fault on access (on-demand paging): a
/// dma-buf can be attached dynamically and follow `move_notify`.
pub const CAP_ODP: u32 = 1 << 0;
/// `CAPS`: RDMA atomics (compare-and-swap, fetch-and-add) as responder and requester.
pub const CAP_ATOMIC: u32 = 1 << 1;
/// State of the port, RO: an [`crate::verbs::PortState`] value (DOWN until a link is
/// connected, then ACTIVE).
pub const PORT_STATE: u32 = 0x00c;

/// DMA address of the command input (low half), RW. The input is a
/// [`crate::cmd::CmdIn`] in host memory.
pub const CMD_IN_LO: u32 = 0x010;
/// DMA address of the command input (high half), RW.
pub const CMD_IN_HI: u32 = 0x014;
/// DMA address of the command output (low half), RW: a [`crate::cmd::CmdOut`].
pub const CMD_OUT_LO: u32 = 0x018;
/// DMA address of the command output (high half), RW.
pub const CMD_OUT_HI: u32 = 0x01c;
/// Command doorbell, WO: writing [`CMD_GO`] runs the command; it has completed (and
/// `CMD_STATUS` holds its outcome) when the write has.
pub const CMD_DOORBELL: u32 = 0x020;
/// The value that runs a command.
pub const CMD_GO: u32 = 1;
/// Outcome of the last command, RO: a [`crate::cmd::CmdStatus`] value.
pub const CMD_STATUS: u32 = 0x024;

/// Event queue base, a DMA address (low half), RW. Written while the EQ is disabled.
pub const EQ_BASE_LO: u32 = 0x030;
/// Event queue base (high half), RW.
pub const EQ_BASE_HI: u32 = 0x034;
/// log2 of the event queue's entries, RW (1 to 16).
pub const EQ_LOG_SIZE: u32 = 0x038;
/// The driver's consumer index (a free-running count of entries consumed), RW. The NIC
/// never overwrites an entry the driver has not consumed: events beyond that are
/// counted in `EQ_OVERRUNS` and dropped.
pub const EQ_CI: u32 = 0x03c;
/// MSI address for event interrupts (low half), RW.
pub const EQ_MSI_ADDR_LO: u32 = 0x040;
/// MSI address (high half), RW.
pub const EQ_MSI_ADDR_HI: u32 = 0x044;
/// MSI data, RW.
pub const EQ_MSI_DATA: u32 = 0x048;
/// Event queue control, RW: bit 0 enables the EQ (and interrupts).
pub const EQ_CTRL: u32 = 0x04c;
/// `EQ_CTRL` enable bit.
pub const EQ_CTRL_ENABLE: u32 = 1;
/// Events dropped because the EQ was full, RO.
pub const EQ_OVERRUNS: u32 = 0x050;

/// The port's GID, 16 bytes at `GID0`..`GID3` (big-endian order of bytes), RO.
pub const GID0: u32 = 0x060;

/// Counters: 64-bit, RO, read with one 8-byte access at `COUNTERS + 8 * index`.
pub const COUNTERS: u32 = 0x100;

macro_rules! counters {
    ($($(#[$m:meta])* $name:ident = $i:expr => $s:expr,)*) => {
        /// A NIC counter.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Counter { $($(#[$m])* $name = $i,)* }

        impl Counter {
            /// Every counter, in register order.
            pub const ALL: &[Counter] = &[$(Counter::$name,)*];

            /// Its register offset.
            pub fn offset(self) -> u32 {
                COUNTERS + 8 * self as u32
            }

            /// Its name, as `sagrada info` prints it.
            pub fn name(self) -> &'static str {
                match self { $(Counter::$name => $s,)* }
            }
        }
    };
}

counters! {
    /// Packets sent on the port.
    TxPackets = 0 => "tx_packets",
    /// Bytes sent on the port (whole packets).
    TxBytes = 1 => "tx_bytes",
    /// Packets received.
    RxPackets = 2 => "rx_packets",
    /// Bytes received.
    RxBytes = 3 => "rx_bytes",
    /// Payload bytes the NIC wrote to memory by DMA.
    DmaWriteBytes = 4 => "dma_write_bytes",
    /// Payload bytes the NIC read from memory by DMA.
    DmaReadBytes = 5 => "dma_read_bytes",
    /// Packets sent again after a timeout or a sequence NAK.
    Retransmits = 6 => "retransmits",
    /// Local ACK timeouts.
    Timeouts = 7 => "local_ack_timeout_err",
    /// RNR NAKs received.
    RnrNaksRcvd = 8 => "rnr_nak_retry_err",
    /// RNR NAKs sent.
    RnrNaksSent = 9 => "rnr_naks_sent",
    /// PSN sequence NAKs received.
    SeqNaksRcvd = 10 => "packet_seq_err",
    /// PSN sequence NAKs sent.
    SeqNaksSent = 11 => "out_of_sequence",
    /// Duplicate requests answered.
    Duplicates = 12 => "duplicate_request",
    /// Packets dropped: bad ICRC.
    IcrcErrors = 13 => "rx_icrc_encapsulated",
    /// Packets dropped: malformed, for no QP, or for a QP that cannot take them.
    Dropped = 14 => "rx_dropped",
    /// Memory-key faults raised (on-demand paging).
    PageFaults = 15 => "page_faults",
    /// Doorbells refused: wrong UAR for the queue, or no such queue.
    BadDoorbells = 16 => "bad_doorbells",
    /// Modelled device time of the NIC's payload DMA, ns: what the
    /// fabric says its transfers would take on the links.
    DmaTimeNs = 17 => "dma_time_ns",
    /// Modelled time on the wire, ns: bytes sent at the port's 100 Gb/s.
    WireTimeNs = 18 => "wire_time_ns",
}

/// The first doorbell page (UAR 0).
pub const UAR_BASE: u32 = 0x1000;
/// Each UAR is one 4 KiB page.
pub const UAR_SIZE: u32 = 0x1000;
/// In a UAR: send doorbell, 64-bit WO: QPN in bits 23:0, the new send producer index
/// (a free-running count of posted WQEs) in bits 63:32.
pub const UAR_SQ_DB: u32 = 0x00;
/// In a UAR: receive doorbell, 64-bit WO: QPN in bits 23:0, the new receive producer
/// index in bits 63:32.
pub const UAR_RQ_DB: u32 = 0x08;
/// In a UAR: arm a CQ, 64-bit WO: CQN in bits 23:0, bit 31 "solicited only", the
/// consumer index in bits 63:32. The NIC raises one completion event at the next CQE
/// (or the next solicited one), or at once if entries past the consumer index exist.
pub const UAR_CQ_ARM: u32 = 0x10;
/// `UAR_CQ_ARM`: only solicited completions (and errors) raise the event.
pub const CQ_ARM_SOLICITED: u64 = 1 << 31;

/// BAR0 offset of UAR `index`.
pub const fn uar(index: u32) -> u32 {
    UAR_BASE + index * UAR_SIZE
}
