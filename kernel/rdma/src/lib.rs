//! The RDMA core and the driver of the emulated RDMA NIC: `/dev/infiniband/uverbsN`.
//!
//! [`probe`] binds every NIC of the fabric. The driver reaches the NIC only the way a
//! Linux driver reaches a PCIe card: BAR0 registers (`sagrada_hw_rnic_abi::regs`), a
//! command mailbox in DMA-coherent memory (`cmd`), an event queue the NIC writes by DMA
//! and signals with an MSI, and the memory it registers for the NIC (pinned user pages,
//! or a dma-buf mapped for the NIC's IOMMU domain). It never depends on the device
//! model.
//!
//! Each open of a device node is a verbs context ([`uapi`]): it owns a doorbell page
//! (UAR) that the process maps, and the PDs, MRs, CQs and QPs it creates, named by
//! small per-file handles. The data path (posting work requests, ringing doorbells,
//! polling completions) never enters the kernel; the ioctls create and change objects,
//! and `read`/`poll` deliver asynchronous events (on the uverbs fd) and completion
//! events (on completion-channel fds).
//!
//! What is modelled, after Linux:
//! - memory registration with `ib_check_mr_access`, `ib_umem_get`-style pinning and
//!   page-size selection (`ib_umem_find_best_pgsz`);
//! - dma-buf registration exactly as `UVERBS_METHOD_REG_DMABUF_MR` and
//!   `ib_umem_dmabuf_get` check and order it; with an ODP-capable NIC the import is
//!   dynamic (a `move_notify` that invalidates the key, page faults served by a worker
//!   thread under the reservation lock, as mlx5 does), without it the import is pinned
//!   (`ib_umem_dmabuf_get_pinned`, as EFA does); release follows
//!   `ib_umem_dmabuf_release`;
//! - `ib_modify_qp_is_ok`'s state table and attribute masks, with the value checks of
//!   rxe and the RoCE rules of the core (a GID in every address vector, no alternate
//!   path);
//! - completion channels and the asynchronous event queue of `ib_uverbs_event_read`
//!   (one event per `read`, `EAGAIN` with `O_NONBLOCK`, `POLLIN` when one is queued),
//!   with pending events of a destroyed object dropped.
//!
//! Left out: memory windows, SRQs, address handles and UD address vectors beyond what
//! `CREATE_QP` passes to the NIC, `rereg_mr`, resizing CQs, SQD/SQE and alternate
//! paths, port and GID management beyond querying, RDMA netlink and sysfs, device
//! removal and reset (a context is never disassociated), and accounting (`RLIMIT_MEMLOCK`,
//! cgroups). A region registered with `ON_DEMAND` on an ODP-capable NIC is pinned like
//! any other.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod channel;
mod cmd;
mod device;
mod file;
mod mr;
mod pages;
mod qp;
pub mod uapi;

use std::sync::Arc;

use sagrada_hw_fabric::{DeviceId, EndpointKind, FunctionKind};
use sagrada_kernel_core::{KResult, Kernel};

/// Driver options (module parameters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RdmaParams {
    /// Offer `REG_DMABUF_MR`. `false` models a driver without `reg_user_mr_dmabuf`: the
    /// ioctl then fails with `EOPNOTSUPP`, which is how rdma-core's tests and NCCL see
    /// that dma-buf registration is unsupported. On by default.
    pub reg_dmabuf_mr: bool,
}

impl Default for RdmaParams {
    fn default() -> Self {
        Self {
            reg_dmabuf_mr: true,
        }
    }
}

/// A NIC the driver bound.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RdmaDevice {
    /// Its device node, `/dev/infiniband/uverbsN`.
    pub path: String,
    /// The fabric endpoint behind it.
    pub dev: DeviceId,
}

/// Binds every RDMA NIC of the kernel's fabric, in PCI order, as
/// `/dev/infiniband/uverbs0`, `uverbs1`, ... (numbered over the NICs that bind, as
/// Linux numbers the devices it registers). A NIC that answers with a wrong ID or an
/// ABI major version this driver does not speak, or that fails to come up, is logged
/// and skipped. Fails only if a device node cannot be registered (the path is taken).
///
/// The machine calls this once, after the NIC device models are attached to their
/// BARs (the driver talks to them during probe) and after
/// `sagrada_kernel_dmabuf::install` if dma-buf registration is to be used.
pub fn probe(kernel: &Arc<Kernel>, params: RdmaParams) -> KResult<Vec<RdmaDevice>> {
    let nics: Vec<DeviceId> = kernel
        .fabric()
        .endpoints()
        .filter(|f| f.kind == FunctionKind::Endpoint(EndpointKind::Rnic))
        .map(|f| f.id)
        .collect();
    let mut bound = Vec::new();
    for dev in nics {
        let name = format!("uverbs{}", bound.len());
        let device = match device::Device::probe(kernel, dev, &name, params) {
            Ok(device) => device,
            Err(e) => {
                let bdf = kernel.fabric().function(dev).bdf.to_string();
                tracing::error!("rdma: {bdf}: not bound: {e}");
                continue;
            }
        };
        let path = format!("/dev/infiniband/{name}");
        kernel.register_device(&path, Arc::new(file::UverbsNode(device)))?;
        bound.push(RdmaDevice { path, dev });
    }
    Ok(bound)
}
