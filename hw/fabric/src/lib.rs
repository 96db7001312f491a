//! The emulated PCIe fabric of a sagrada machine.
//!
//! What it models:
//! - **Topology**: host bridges (root complexes) with root ports, PCIe switches (an
//!   upstream port and downstream ports), and endpoints (the SG1 accelerator, the RDMA
//!   NIC, or a generic endpoint). Bus numbers are assigned depth first and BARs packed
//!   the way firmware does it, naturally aligned, in a 64-bit MMIO space from
//!   [`MMIO_BASE`] (256 GiB) up, with bridge windows at 1 MiB granularity that cover
//!   their children. The machine is described in a small TOML file
//!   ([`TopologyConfig`]); a built-in default exists ([`DEFAULT_MACHINE_TOML`]).
//! - **Host DRAM** as one memory region at physical address 0. CPU physical addresses
//!   equal bus addresses (no host bridge offset), but the conversion is explicit.
//! - **Memory BARs** backed by sparse, memfd-backed [`Memory`] (a device's HBM is the
//!   memory behind its BAR), and **MMIO BARs** served by a device model through
//!   [`MmioHandler`].
//! - **Routing as PCIe does it**: a request travels up from its initiator; a switch
//!   sends it straight down to a sibling whose window claims the address (peer-to-peer
//!   without translation) unless ACS P2P Request Redirect is set on the ingress port;
//!   anything else reaches the root complex, where the initiator's IOMMU domain
//!   translates the address, and the result goes to host DRAM or back down to a BAR
//!   (peer-to-peer through the root complex, to any root port's window, also one of
//!   another host bridge). Whatever nothing claims is refused.
//! - **IOMMU** domains per device (translating or passthrough), `dma_map_resource`- and
//!   `dma_map_sg`-style mapping of BARs and host pages with a direction, IOVAs that
//!   never fall inside a bridge window, and faults that are recorded and refused, never
//!   silently served.
//! - **The kernel's pci_p2pdma rules** ([`Fabric::p2pdma_distance`]).
//! - **Per-link byte counters** and **link timing** (generation, width and encoding,
//!   TLP overhead, latency per link, switch, root complex and DRAM; root-complex
//!   peer-to-peer forwarding and DRAM bandwidth limits), so a transfer reports the
//!   device time it would take; functional results never depend on timing.
//! - **Interrupts as messages**: a device raises an MSI by writing a dword into the
//!   window at [`MSI_BASE`], which the root complex claims before any DMA remapping and
//!   hands to the host's [`InterruptSink`].
//! - Text views of the tree and the p2pdma matrix ([`render_tree`],
//!   [`render_p2p_matrix`]).
//!
//! Data is copied once: a DMA resolves each chunk of a transfer to a source and a
//! destination and copies memory to memory, with no lock held across the copy.
//!
//! What it leaves out: configuration-space reads and writes and BAR sizing (BARs are
//! assigned at build time and read-only), 32-bit and I/O BAR windows, multi-function
//! devices, SR-IOV, hot plug, link training and power states, flow-control credits,
//! ordering rules between TLPs, contention between concurrent transfers (each transfer
//! is timed as if alone), ATS and the IOTLB, the kernel's p2pdma exception for CPUs
//! that forward between any root ports, and interrupt remapping.

#![deny(unsafe_code)]
#![warn(missing_docs)]

mod addr;
#[allow(unsafe_code)]
mod mem;

pub use addr::{
    Access, Bdf, BusAddr, DeviceId, DmaDirection, HostBridgeId, Iova, LinkId, PAGE_SIZE, PhysAddr,
    PhysRange,
};
pub use mem::{Memory, OutOfBounds};
mod config;
mod dma;
mod iommu;
mod p2pdma;
mod render;
mod topology;
mod units;

pub use config::{ConfigError, DEFAULT_MACHINE_TOML, TopologyConfig};
pub use dma::{
    Counters, DmaError, DmaReport, InterruptSink, LinkCounters, MSI_BASE, MSI_SIZE, MmioHandler,
};
pub use iommu::{Fault, FaultReason, IOVA_END, IommuError};
pub use p2pdma::{P2pDistance, P2pMapType};
pub use render::{render_p2p_matrix, render_tree};
pub use topology::{
    Bar, BarKind, BridgeWindow, EndpointKind, Fabric, FunctionKind, HostBridge, Link, LinkSpec,
    MMIO_BASE, MMIO_END, PciFunction, ids,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fabric_can_be_shared_between_threads() {
        fn check<T: Send + Sync>() {}
        check::<Fabric>();
        check::<std::sync::Arc<Fabric>>();
    }
}
