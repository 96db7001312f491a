//! The SG1 driver (`kernel/accel`), modelled on habanalabs/accel.
//!
//! It binds to every SG1 on the fabric: checks the chip, programs MSI-X, asks the
//! firmware its version through the mailbox (refusing a major version it does not
//! speak), sets up the queue rings and the completion queue in DMA-coherent host
//! memory, and creates `/dev/accel/accelN`. It reaches the device only through BAR0
//! registers, DMA-able memory and interrupts, using the register, packet and entry
//! layouts of `sagrada-hw-accel-abi`; it never depends on the device model.
//!
//! Each open of the device node is a context with its own address space (ASID), page
//! tables in HBM, sync objects, memory, and command submissions (`context`). Device
//! memory can be exported as a dma-buf for peer-to-peer DMA with the semantics of the
//! merged habanalabs exporter (`export`). The uAPI is in [`uapi`] and `docs/uapi.md`.
//!
//! A watchdog (`tdr`) fails a submission still running after
//! [`DriverParams::timeout_locked`] with `ETIMEDOUT` and soft-resets the device.
//!
//! The compute queue runs kernels (`LAUNCH` packets) on the compute cores; a core's
//! fault aborts its submission with `EIO`, and the fault's detail goes to the
//! submission's context (INFO_CORES, with the cores' counters).
//!
//! Left out: power management, and debug and profiling interfaces beyond the counters.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod context;
mod cs;
mod device;
mod export;
mod file;
mod firmware;
mod memory;
mod mmio;
mod tdr;
pub mod uapi;

use std::sync::Arc;

pub use device::{DriverParams, ProbeError};
use sagrada_hw_fabric::{EndpointKind, FunctionKind};
use sagrada_kernel_core::Kernel;
use sagrada_kernel_dmabuf::DmaBufRegistry;

/// A bound SG1.
#[derive(Debug, Clone)]
pub struct Sg1Device(Arc<device::DeviceInner>);

impl Sg1Device {
    /// "accel0".
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// The device node path.
    pub fn path(&self) -> String {
        format!("/dev/accel/{}", self.0.name)
    }
}

/// Probes every SG1 of the kernel's fabric, in PCI order (the N of `accelN`), creating
/// a device node for each one that binds. Returns one result per device.
pub fn probe(
    kernel: &Arc<Kernel>,
    registry: &Arc<DmaBufRegistry>,
    params: DriverParams,
) -> Vec<Result<Sg1Device, ProbeError>> {
    let sg1s: Vec<_> = kernel
        .fabric()
        .endpoints()
        .filter(|f| f.kind == FunctionKind::Endpoint(EndpointKind::Sg1))
        .map(|f| f.id)
        .collect();
    sg1s.into_iter()
        .enumerate()
        .map(|(index, dev)| {
            let inner = device::DeviceInner::probe(kernel, registry, dev, index as u32, params)?;
            let path = format!("/dev/accel/{}", inner.name);
            kernel
                .register_device(&path, Arc::new(file::AccelNode(inner.clone())))
                .map_err(|e| ProbeError {
                    device: inner.name.clone(),
                    bdf: kernel.fabric().function(dev).bdf.to_string(),
                    reason: format!("registering {path}: {e}"),
                })?;
            Ok(Sg1Device(inner))
        })
        .collect()
}
