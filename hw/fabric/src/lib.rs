//! The emulated PCIe fabric of a sagrada machine.
//!
//! What it models:
//! - **Topology**: host bridges (root complexes) with root ports, PCIe switches (an
//!   upstream port and downstream ports), and endpoints (the SG1 accelerator, the RDMA
//!   NIC, or a generic endpoint). Bus numbers and BARs are assigned the way firmware
//!   does it, in a 64-bit bus address space above host DRAM. The machine is described
//!   in a small TOML file ([`TopologyConfig`]); a built-in default exists.
//! - **Host DRAM** as a memory region at physical address 0.
//! - **Memory BARs** backed by sparse, memfd-backed [`Memory`] (a device's HBM is the
//!   memory behind its BAR), and **MMIO BARs** served by a device model through
//!   [`MmioHandler`].
//! - **Routing as PCIe does it**: a request travels up from its initiator; a switch
//!   sends it straight down to a sibling whose window claims the address (peer-to-peer
//!   without translation) unless ACS P2P Request Redirect is set on the ingress port;
//!   anything else reaches the root complex, where the initiator's IOMMU domain
//!   translates the address, and the result goes to host DRAM or back down to a BAR
//!   (peer-to-peer through the root complex).
//! - **IOMMU** domains per device (translating or passthrough), `dma_map_resource`-style
//!   mapping of BARs and host pages with a direction, and faults that are recorded and
//!   refused, never silently served.
//! - **The kernel's pci_p2pdma rules** ([`Fabric::p2pdma_distance`]).
//! - **Per-link byte counters** and **link timing** (generation, width, latency), so a
//!   transfer reports the device time it would take; functional results never depend on
//!   timing.
//!
//! What it leaves out: configuration-space writes and BAR sizing (BARs are assigned at
//! build time and read-only), 32-bit and I/O BAR windows, hot plug, credits, ordering
//! rules between TLPs, and interrupts (the device issues add them as they need).

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
mod topology;

pub use config::{ConfigError, TopologyConfig};
pub use dma::{Counters, DmaError, DmaReport, LinkCounters, MmioHandler};
pub use iommu::{Fault, FaultReason, IommuError};
pub use p2pdma::{P2pDistance, P2pMapType};
pub use topology::{
    Bar, BarKind, BridgeWindow, EndpointKind, Fabric, FunctionKind, HostBridge, Link, LinkSpec,
    PciFunction,
};
