//! The verbs uAPI (`/dev/infiniband/uverbsN`): what user space (the verbs library of
//! the runtime, an rdma-core provider's role) asks the RDMA core. It follows the uverbs
//! methods of Linux (`ib_user_ioctl_cmds.h`), one ioctl per method with a flat
//! structure. Structures are `#[repr(C)]`, little endian; `docs/uapi.md` documents them.
//!
//! The data path does not go through the kernel: CREATE_CQ and CREATE_QP return mmap
//! offsets for the rings, and the file's UAR page (the doorbells) is mapped at
//! [`UAR_MMAP_OFFSET`], so the provider writes work requests and rings doorbells
//! itself and polls completions from memory, in the formats of
//! [`sagrada_hw_rnic_abi::queue`] (re-exported as [`queue`]).

use sagrada_kernel_core::ioctl::{ior, iow, iowr};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

pub use sagrada_hw_rnic_abi::cmd::{DeviceCaps as DeviceAttr, PortAttr, QpAttr};
pub use sagrada_hw_rnic_abi::{queue, regs, verbs};

/// ioctl type of uverbs files (`RDMA_IOCTL_MAGIC`).
pub const RDMA_IOC_MAGIC: u8 = 0x1b;

/// mmap offset of the file's doorbell page (one page).
pub const UAR_MMAP_OFFSET: u64 = 0;

/// `QUERY_DEVICE`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct QueryDevice {
    /// Out.
    pub attr: DeviceAttr,
}

/// `QUERY_PORT`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct QueryPort {
    /// In: the port (1).
    pub port_num: u32,
    /// Reserved.
    pub pad: u32,
    /// Out.
    pub attr: PortAttr,
}

/// `ALLOC_PD`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct AllocPd {
    /// Out: the PD's handle in this file.
    pub pd_handle: u32,
    /// Reserved.
    pub pad: u32,
}

/// `DEALLOC_PD`, `DEREG_MR`, `DESTROY_CQ`, `DESTROY_QP`: one handle.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct Destroy {
    /// In: the handle.
    pub handle: u32,
    /// Reserved.
    pub pad: u32,
}

/// `REG_MR`: register the caller's memory (`ibv_reg_mr_iova`).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct RegMr {
    /// In: the buffer.
    pub addr: u64,
    /// In: bytes.
    pub length: u64,
    /// In: the address the region answers to (`hca_va`; `addr` for `ibv_reg_mr`).
    pub iova: u64,
    /// In: the PD.
    pub pd_handle: u32,
    /// In: [`verbs::access`] flags.
    pub access: u32,
    /// Out: the region's handle.
    pub mr_handle: u32,
    /// Out: lkey.
    pub lkey: u32,
    /// Out: rkey (0 without remote access).
    pub rkey: u32,
    /// Reserved.
    pub pad: u32,
}

/// `REG_DMABUF_MR` (`UVERBS_METHOD_REG_DMABUF_MR`).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct RegDmabufMr {
    /// In: offset of the region in the dma-buf.
    pub offset: u64,
    /// In: bytes.
    pub length: u64,
    /// In: the address the region answers to; same page offset as `offset`.
    pub iova: u64,
    /// In: the dma-buf fd.
    pub fd: i32,
    /// In: [`verbs::access`] flags (only [`verbs::access::DMABUF_ALLOWED`]).
    pub access: u32,
    /// In: the PD.
    pub pd_handle: u32,
    /// Out: the region's handle.
    pub mr_handle: u32,
    /// Out: lkey.
    pub lkey: u32,
    /// Out: rkey (0 without remote access).
    pub rkey: u32,
}

/// `CREATE_COMP_CHANNEL`: a new completion-event fd (`ibv_create_comp_channel`).
/// `read` on it returns [`CqEvent`]s (blocking unless `O_NONBLOCK`), `poll` says
/// when one is there.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct CreateCompChannel {
    /// Out: the fd.
    pub fd: i32,
    /// Reserved.
    pub pad: u32,
}

/// A completion event, as `read` from a completion channel returns it.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct CqEvent {
    /// The `cq_context` given at CREATE_CQ.
    pub cq_context: u64,
    /// The CQ's handle.
    pub cq_handle: u32,
    /// Reserved.
    pub pad: u32,
}

/// `CREATE_CQ`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct CreateCq {
    /// In: a value returned with this CQ's events.
    pub cq_context: u64,
    /// In: entries wanted (1 to `max_cqe`).
    pub cqe: u32,
    /// In: the completion channel fd, or -1.
    pub comp_channel: i32,
    /// Out: the CQ's handle.
    pub cq_handle: u32,
    /// Out: the hardware CQ number.
    pub cqn: u32,
    /// Out: entries (a power of two ≥ `cqe`).
    pub cqe_out: u32,
    /// Out: log2 of `cqe_out`.
    pub log_size: u32,
    /// Out: mmap offset of the ring (`cqe_out` × 64 bytes), followed at
    /// `dbrec_offset` by the doorbell record (u32 consumer index).
    pub mmap_offset: u64,
    /// Out: bytes to map.
    pub mmap_len: u64,
    /// Out: offset of the doorbell record in the mapping.
    pub dbrec_offset: u64,
}

/// Queue sizes (`struct ibv_qp_cap`).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct QpCap {
    /// Send work requests.
    pub max_send_wr: u32,
    /// Receive work requests.
    pub max_recv_wr: u32,
    /// SGEs per send.
    pub max_send_sge: u32,
    /// SGEs per receive.
    pub max_recv_sge: u32,
    /// Inline bytes per send.
    pub max_inline_data: u32,
    /// Reserved.
    pub pad: u32,
}

/// `CREATE_QP`: a QP in RESET.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct CreateQp {
    /// In: wanted sizes; out: the sizes given (≥ wanted).
    pub cap: QpCap,
    /// In: the PD.
    pub pd_handle: u32,
    /// In: CQ of send completions.
    pub send_cq_handle: u32,
    /// In: CQ of receive completions.
    pub recv_cq_handle: u32,
    /// In: [`verbs::QpType`].
    pub qp_type: u8,
    /// In: 1 if every send completes.
    pub sq_sig_all: u8,
    /// Reserved.
    pub pad: [u8; 2],
    /// Out: the QP's handle.
    pub qp_handle: u32,
    /// Out: the QP number.
    pub qpn: u32,
    /// Out: log2 of the send ring's entries.
    pub log_sq_size: u32,
    /// Out: log2 of the receive ring's entries.
    pub log_rq_size: u32,
    /// Out: mmap offset of the send ring.
    pub sq_mmap_offset: u64,
    /// Out: mmap offset of the receive ring.
    pub rq_mmap_offset: u64,
}

/// `MODIFY_QP` (`ibv_modify_qp`).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct ModifyQp {
    /// In: the attributes named by the mask.
    pub attr: QpAttr,
    /// In: the QP.
    pub qp_handle: u32,
    /// In: [`verbs::attr_mask`] bits.
    pub attr_mask: u32,
}

/// `QUERY_QP` (`ibv_query_qp`).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct QueryQp {
    /// Out: the attributes.
    pub attr: QpAttr,
    /// Out: the sizes.
    pub cap: QpCap,
    /// In: the QP.
    pub qp_handle: u32,
    /// Reserved.
    pub pad: u32,
}

/// An asynchronous event, as `read` from the uverbs file returns it.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct AsyncEvent {
    /// The handle of the QP or CQ concerned (the port number for port events).
    pub element: u32,
    /// An `EVENT_*` value.
    pub event_type: u32,
}

/// `IBV_EVENT_CQ_ERR`.
pub const EVENT_CQ_ERR: u32 = 0;
/// `IBV_EVENT_QP_FATAL`.
pub const EVENT_QP_FATAL: u32 = 1;
/// `IBV_EVENT_PORT_ACTIVE`.
pub const EVENT_PORT_ACTIVE: u32 = 9;
/// `IBV_EVENT_PORT_ERR`.
pub const EVENT_PORT_ERR: u32 = 10;

/// `ibv_query_device`.
pub const RDMA_QUERY_DEVICE: u32 = ior::<QueryDevice>(RDMA_IOC_MAGIC, 0x01);
/// `ibv_query_port`.
pub const RDMA_QUERY_PORT: u32 = iowr::<QueryPort>(RDMA_IOC_MAGIC, 0x02);
/// `ibv_alloc_pd`.
pub const RDMA_ALLOC_PD: u32 = ior::<AllocPd>(RDMA_IOC_MAGIC, 0x03);
/// `ibv_dealloc_pd`: `EBUSY` while regions or QPs use the PD.
pub const RDMA_DEALLOC_PD: u32 = iow::<Destroy>(RDMA_IOC_MAGIC, 0x04);
/// `ibv_reg_mr` / `ibv_reg_mr_iova`.
pub const RDMA_REG_MR: u32 = iowr::<RegMr>(RDMA_IOC_MAGIC, 0x05);
/// `ibv_reg_dmabuf_mr`.
pub const RDMA_REG_DMABUF_MR: u32 = iowr::<RegDmabufMr>(RDMA_IOC_MAGIC, 0x06);
/// `ibv_dereg_mr`.
pub const RDMA_DEREG_MR: u32 = iow::<Destroy>(RDMA_IOC_MAGIC, 0x07);
/// `ibv_create_comp_channel`.
pub const RDMA_CREATE_COMP_CHANNEL: u32 = ior::<CreateCompChannel>(RDMA_IOC_MAGIC, 0x08);
/// `ibv_create_cq`.
pub const RDMA_CREATE_CQ: u32 = iowr::<CreateCq>(RDMA_IOC_MAGIC, 0x09);
/// `ibv_destroy_cq`: `EBUSY` while QPs use the CQ.
pub const RDMA_DESTROY_CQ: u32 = iow::<Destroy>(RDMA_IOC_MAGIC, 0x0a);
/// `ibv_create_qp`.
pub const RDMA_CREATE_QP: u32 = iowr::<CreateQp>(RDMA_IOC_MAGIC, 0x0b);
/// `ibv_modify_qp`.
pub const RDMA_MODIFY_QP: u32 = iow::<ModifyQp>(RDMA_IOC_MAGIC, 0x0c);
/// `ibv_query_qp`.
pub const RDMA_QUERY_QP: u32 = iowr::<QueryQp>(RDMA_IOC_MAGIC, 0x0d);
/// `ibv_destroy_qp`.
pub const RDMA_DESTROY_QP: u32 = iow::<Destroy>(RDMA_IOC_MAGIC, 0x0e);
