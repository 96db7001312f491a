//! Commands: how the driver creates and changes the NIC's objects. The driver writes a
//! [`CmdIn`] (a header, then the command's structure) to host memory, points
//! `CMD_IN`/`CMD_OUT` at it and at an output buffer, and writes `CMD_GO`; the NIC reads
//! the input by DMA, runs the command, writes a [`CmdOut`] header and the answer by DMA,
//! and sets `CMD_STATUS`. All structures are `#[repr(C)]`, little endian.
//!
//! The NIC checks what hardware checks (object numbers exist, the PD of a QP or a key
//! exists, a state transition is one the QP state machine allows, sizes are within its
//! limits); which attributes a transition requires is the verbs layer's rule and is
//! checked by the driver, as `ib_modify_qp_is_ok` does in Linux.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Largest command input or output, header included.
pub const MAILBOX_SIZE: usize = 512;

/// The header of a command input; the command's structure follows at byte 8.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct CmdIn {
    /// A `CMD_*` opcode.
    pub opcode: u32,
    /// Bytes of the structure that follows.
    pub len: u32,
}

/// The header of a command output; the answer follows at byte 8.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct CmdOut {
    /// A [`CmdStatus`] value (also in `CMD_STATUS`).
    pub status: u32,
    /// Bytes of the answer that follows.
    pub len: u32,
}

/// The outcome of a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum CmdStatus {
    /// Done.
    Ok = 0,
    /// No such opcode.
    BadOpcode = 1,
    /// A field is out of range, or the input's length is wrong.
    BadParam = 2,
    /// An object number names nothing.
    BadResource = 3,
    /// The NIC has no free object of that kind.
    NoResources = 4,
    /// The QP state machine does not allow this transition.
    BadState = 5,
    /// The object is still used by another (a PD by keys or QPs, a CQ by QPs).
    Busy = 6,
    /// The NIC could not read the input, its tables, or write the output.
    DmaError = 7,
}

impl CmdStatus {
    /// The status for a raw value.
    pub fn from_raw(v: u32) -> Option<Self> {
        Some(match v {
            0 => Self::Ok,
            1 => Self::BadOpcode,
            2 => Self::BadParam,
            3 => Self::BadResource,
            4 => Self::NoResources,
            5 => Self::BadState,
            6 => Self::Busy,
            7 => Self::DmaError,
            _ => return None,
        })
    }
}

/// [`DeviceCaps`] of the NIC. No input.
pub const CMD_QUERY_DEVICE: u32 = 0x01;
/// [`PortAttr`] of the port. No input.
pub const CMD_QUERY_PORT: u32 = 0x02;
/// [`AllocPd`] → [`PdOut`].
pub const CMD_ALLOC_PD: u32 = 0x10;
/// [`Handle`] (a PDN); `Busy` while keys or QPs use it.
pub const CMD_DEALLOC_PD: u32 = 0x11;
/// [`CreateMkey`] → [`MkeyOut`].
pub const CMD_CREATE_MKEY: u32 = 0x20;
/// [`Handle`] (an lkey): the key stops translating once accesses in flight are done.
pub const CMD_DESTROY_MKEY: u32 = 0x21;
/// [`Handle`] (an lkey): zap the translation (on-demand paging keys). Accesses in
/// flight finish first; later accesses fault ([`EVENT_PAGE_FAULT`]) and wait.
pub const CMD_INVALIDATE_MKEY: u32 = 0x22;
/// [`UpdateMkey`]: load a new translation into a key and resume the work waiting on it,
/// or (with [`UPDATE_MKEY_FAIL`]) fail that work and every later access.
pub const CMD_UPDATE_MKEY: u32 = 0x23;
/// [`CreateCq`] → [`Handle`] (the CQN).
pub const CMD_CREATE_CQ: u32 = 0x30;
/// [`Handle`] (a CQN); `Busy` while QPs use it.
pub const CMD_DESTROY_CQ: u32 = 0x31;
/// [`CreateQp`] → [`Handle`] (the QPN), in RESET.
pub const CMD_CREATE_QP: u32 = 0x40;
/// [`ModifyQp`].
pub const CMD_MODIFY_QP: u32 = 0x41;
/// [`Handle`] (a QPN) → [`QpAttr`] with the current state.
pub const CMD_QUERY_QP: u32 = 0x42;
/// [`Handle`] (a QPN). Its work requests are dropped without completions.
pub const CMD_DESTROY_QP: u32 = 0x43;

/// One object number: the input of destroy commands and the answer of some creates.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct Handle {
    /// PDN, lkey, CQN or QPN.
    pub id: u32,
    /// Reserved, 0.
    pub pad: u32,
}

/// The NIC's properties (`ibv_device_attr`'s hardware part).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct DeviceCaps {
    /// Firmware version: major << 32 | minor << 16 | patch.
    pub fw_ver: u64,
    /// Node GUID (EUI-64 from the port's MAC).
    pub node_guid: u64,
    /// Largest MR, bytes.
    pub max_mr_size: u64,
    /// Page sizes memory keys support (bit n: 2^n bytes).
    pub page_size_cap: u64,
    /// PCI vendor id.
    pub vendor_id: u32,
    /// PCI device id.
    pub vendor_part_id: u32,
    /// Hardware revision.
    pub hw_ver: u32,
    /// QPs.
    pub max_qp: u32,
    /// Work requests per queue.
    pub max_qp_wr: u32,
    /// SGEs per work request.
    pub max_sge: u32,
    /// CQs.
    pub max_cq: u32,
    /// Entries per CQ.
    pub max_cqe: u32,
    /// Memory keys.
    pub max_mr: u32,
    /// PDs.
    pub max_pd: u32,
    /// READ/atomic requests a QP may have outstanding as target.
    pub max_qp_rd_atom: u32,
    /// ... and as initiator.
    pub max_qp_init_rd_atom: u32,
    /// Inline bytes per send work request.
    pub max_inline_data: u32,
    /// Largest message.
    pub max_msg_sz: u32,
    /// `CAPS` register bits.
    pub caps: u32,
    /// Ports (1).
    pub phys_port_cnt: u32,
}

/// The port's properties (`ibv_port_attr`'s hardware part).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct PortAttr {
    /// The port's GID (index 0): an IPv4-mapped IPv6 address, RoCEv2.
    pub gid: [u8; 16],
    /// [`crate::verbs::PortState`].
    pub state: u8,
    /// Largest MTU, [`crate::verbs::Mtu`].
    pub max_mtu: u8,
    /// Active MTU.
    pub active_mtu: u8,
    /// Link layer: 2 (Ethernet).
    pub link_layer: u8,
    /// GID table entries.
    pub gid_tbl_len: u32,
    /// Link speed, Mb/s (the in-memory link reports a nominal 100 Gb/s).
    pub speed_mbps: u32,
    /// Reserved.
    pub pad: u32,
}

/// `CMD_ALLOC_PD`: a new protection domain for the context using UAR `uar`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct AllocPd {
    /// UAR of the owning context (recorded for the NIC's accounting).
    pub uar: u32,
    /// Reserved, 0.
    pub pad: u32,
}

/// The answer of `CMD_ALLOC_PD`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct PdOut {
    /// The PD number.
    pub pdn: u32,
    /// Reserved.
    pub pad: u32,
}

/// `CMD_CREATE_MKEY`: a memory key over a list of pages.
///
/// The key covers `length` bytes from `iova`; byte `iova + x` is at offset
/// `page_offset + x` of the concatenated pages of the page list, each page `1 <<
/// page_shift` bytes at the DMA address in the list (in the NIC's IOMMU domain, or a
/// peer's bus address). The page list is an array of `npages` little-endian u64 at
/// DMA address `pas`, read once by the command.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct CreateMkey {
    /// The address the key answers to (what SGEs and `remote_addr` use).
    pub iova: u64,
    /// Bytes.
    pub length: u64,
    /// DMA address of the page list.
    pub pas: u64,
    /// Offset of `iova` in the first page.
    pub page_offset: u64,
    /// Entries in the page list.
    pub npages: u32,
    /// log2 of the page size (12 to 30).
    pub page_shift: u32,
    /// The PD.
    pub pdn: u32,
    /// [`crate::verbs::access`] flags.
    pub access: u32,
    /// The low 8 bits of the key (the variant; the NIC picks the index above them).
    pub variant: u8,
    /// `MKEY_*` flags.
    pub flags: u8,
    /// Reserved.
    pub pad: [u8; 6],
}

/// `CreateMkey::flags`: an on-demand-paging key: its translation may be invalidated
/// (`CMD_INVALIDATE_MKEY`) and an access to it then faults and waits for
/// `CMD_UPDATE_MKEY` instead of failing. Refused by a NIC without `CAP_ODP`.
pub const MKEY_ODP: u8 = 1 << 0;
/// `CreateMkey::flags`: create the key without a translation (its first access faults);
/// `npages` must be 0. Implies [`MKEY_ODP`].
pub const MKEY_EMPTY: u8 = 1 << 1;

/// The answer of `CMD_CREATE_MKEY`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct MkeyOut {
    /// The key: index << 8 | variant. The lkey; the driver gives it as the rkey too
    /// when the key has remote access.
    pub key: u32,
    /// Reserved.
    pub pad: u32,
}

/// `CMD_UPDATE_MKEY`: new pages for a key (same `iova`, `length`, PD and access).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct UpdateMkey {
    /// DMA address of the page list.
    pub pas: u64,
    /// Offset of `iova` in the first page.
    pub page_offset: u64,
    /// The key.
    pub key: u32,
    /// Entries in the page list.
    pub npages: u32,
    /// log2 of the page size.
    pub page_shift: u32,
    /// [`UPDATE_MKEY_FAIL`] or 0.
    pub flags: u32,
}

/// `UpdateMkey::flags`: the translation cannot be restored (the buffer was revoked):
/// work waiting on the key fails, and so does every later access.
pub const UPDATE_MKEY_FAIL: u32 = 1 << 0;

/// `CMD_CREATE_CQ`: a completion queue in host memory.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct CreateCq {
    /// DMA address of the ring of [`crate::queue::Cqe`].
    pub ring: u64,
    /// DMA address of the CQ's doorbell record: a u32 consumer index the consumer keeps
    /// current; the NIC reads it when the ring looks full.
    pub dbrec: u64,
    /// log2 of the entries.
    pub log_size: u32,
    /// UAR whose `CQ_ARM` doorbell may arm it.
    pub uar: u32,
}

/// `CMD_CREATE_QP`: a queue pair in RESET.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct CreateQp {
    /// DMA address of the send ring of [`crate::queue::SendWqe`].
    pub sq: u64,
    /// DMA address of the receive ring of [`crate::queue::RecvWqe`].
    pub rq: u64,
    /// log2 of the send ring's entries.
    pub log_sq_size: u32,
    /// log2 of the receive ring's entries.
    pub log_rq_size: u32,
    /// The PD.
    pub pdn: u32,
    /// CQ of send completions.
    pub send_cqn: u32,
    /// CQ of receive completions.
    pub recv_cqn: u32,
    /// UAR whose doorbells may ring it.
    pub uar: u32,
    /// [`crate::verbs::QpType`].
    pub qp_type: u8,
    /// 1: every send work request completes (`sq_sig_all`).
    pub sq_sig_all: u8,
    /// Reserved.
    pub pad: [u8; 6],
}

/// A QP's attributes (`ibv_qp_attr`, the fields this NIC has), for `CMD_MODIFY_QP`
/// with a mask and as `CMD_QUERY_QP`'s answer.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct QpAttr {
    /// Destination GID (the address vector; RoCEv2 needs a GRH).
    pub dgid: [u8; 16],
    /// Q_Key (UD).
    pub qkey: u32,
    /// Receive PSN (24 bits).
    pub rq_psn: u32,
    /// Send PSN (24 bits).
    pub sq_psn: u32,
    /// Remote QPN.
    pub dest_qp_num: u32,
    /// [`crate::verbs::access`] flags for incoming remote operations.
    pub qp_access_flags: u32,
    /// P_Key index.
    pub pkey_index: u16,
    /// [`crate::verbs::QpState`].
    pub qp_state: u8,
    /// Current state (asserted by a modify with `CUR_STATE`).
    pub cur_qp_state: u8,
    /// [`crate::verbs::Mtu`].
    pub path_mtu: u8,
    /// Port (1).
    pub port_num: u8,
    /// READ/atomic requests outstanding as initiator.
    pub max_rd_atomic: u8,
    /// ... as target.
    pub max_dest_rd_atomic: u8,
    /// RNR NAK timer code (see [`crate::verbs::RNR_TIMER_US`]).
    pub min_rnr_timer: u8,
    /// Local ACK timeout code (see [`crate::verbs::ack_timeout_ns`]).
    pub timeout: u8,
    /// Retries after a timeout (7: no limit).
    pub retry_cnt: u8,
    /// Retries after an RNR NAK (7: no limit).
    pub rnr_retry: u8,
    /// Source GID index.
    pub sgid_index: u8,
    /// Hop limit.
    pub hop_limit: u8,
    /// Reserved.
    pub pad: [u8; 2],
}

/// `CMD_MODIFY_QP`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct ModifyQp {
    /// The QP.
    pub qpn: u32,
    /// [`crate::verbs::attr_mask`] bits: which fields of `attr` to apply.
    pub attr_mask: u32,
    /// The attributes.
    pub attr: QpAttr,
}

/// An event entry type: a CQ armed for notification got a completion. `obj` is the CQN.
pub const EVENT_COMPLETION: u8 = 1;
/// A QP went to ERR on its own (a fatal transport error). `obj` is the QPN.
pub const EVENT_QP_FATAL: u8 = 2;
/// A CQ overflowed; its QPs went to ERR. `obj` is the CQN.
pub const EVENT_CQ_ERR: u8 = 3;
/// An access found an on-demand-paging key without translation. `obj` is the key,
/// `data` the QPN waiting on it.
pub const EVENT_PAGE_FAULT: u8 = 4;
/// The port went ACTIVE (`data` 1) or DOWN (`data` 0).
pub const EVENT_PORT_CHANGE: u8 = 5;
