//! The built machine: PCI functions, BARs, bridge windows, links, and the [`Fabric`]
//! object through which everything else reaches the hardware.

use std::sync::Arc;

use crate::config::{ConfigError, TopologyConfig};
use crate::{Bdf, BusAddr, DeviceId, HostBridgeId, LinkId, Memory, PhysAddr, PhysRange};

/// What kind of endpoint a PCI function is.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum EndpointKind {
    /// The SG1 accelerator (BAR0 registers, BAR2 the HBM window).
    Sg1,
    /// The RDMA NIC (BAR0 registers and doorbells).
    Rnic,
    /// An endpoint with the BARs its configuration lists.
    Generic,
}

/// The role of a PCI function in the tree.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum FunctionKind {
    /// A root port of a host bridge (a PCI-to-PCI bridge on the root bus).
    RootPort,
    /// The upstream port of a switch.
    SwitchUpstream,
    /// A downstream port of a switch.
    SwitchDownstream,
    /// A device at the end of a link.
    Endpoint(EndpointKind),
}

/// Whether a BAR is plain memory or registers served by a device model.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum BarKind {
    /// Backed by a [`Memory`]; DMA to it is a copy into that memory.
    Memory,
    /// Served by the device's [`crate::MmioHandler`].
    Mmio,
}

/// An assigned Base Address Register.
#[derive(Clone, Debug)]
pub struct Bar {
    /// BAR index (0..6; a 64-bit BAR uses two slots and is named by the first).
    pub index: u8,
    /// Where the CPU sees it.
    pub phys: PhysAddr,
    /// Where it sits on the PCI bus (what a peer's DMA must target).
    pub bus: BusAddr,
    /// Size in bytes (a power of two; the BAR is naturally aligned).
    pub size: u64,
    /// Memory or registers.
    pub kind: BarKind,
    /// The prefetchable bit of the BAR.
    pub prefetchable: bool,
    /// Whether it is a 64-bit BAR.
    pub is_64bit: bool,
}

/// The bus numbers and memory window a bridge (root port or switch port) forwards.
#[derive(Clone, Debug)]
pub struct BridgeWindow {
    /// First bus number below the bridge.
    pub secondary_bus: u8,
    /// Last bus number below the bridge.
    pub subordinate_bus: u8,
    /// Bus addresses forwarded downstream, or `None` if nothing below has a BAR.
    pub memory: Option<(BusAddr, u64)>,
}

/// One PCI function of the machine.
#[derive(Clone, Debug)]
pub struct PciFunction {
    /// Its id in this fabric.
    pub id: DeviceId,
    /// Its name in the topology ("accel0", "nic1", "sw0.up", "sw0.dp1", "hb0.rp2").
    pub name: String,
    /// Its PCI address.
    pub bdf: Bdf,
    /// Its role.
    pub kind: FunctionKind,
    /// Vendor ID from configuration space.
    pub vendor_id: u16,
    /// Device ID from configuration space.
    pub device_id: u16,
    /// 24-bit class code (base class, subclass, programming interface).
    pub class_code: u32,
    /// Assigned BARs, by index.
    pub bars: Vec<Bar>,
    /// The bridge directly above (Linux `pci_upstream_bridge`), `None` for root ports.
    pub upstream_bridge: Option<DeviceId>,
    /// The host bridge this function lives under.
    pub host_bridge: HostBridgeId,
    /// The link above this function (endpoints and switch upstream ports).
    pub link: Option<LinkId>,
    /// Bridges only: what they forward.
    pub window: Option<BridgeWindow>,
    /// Switch downstream ports only: ACS P2P Request Redirect is enabled.
    pub acs_redirect: bool,
}

/// PCIe link speed and width, with the latency this model charges per traversal.
#[derive(Clone, Copy, PartialEq, Debug)]
pub struct LinkSpec {
    /// PCIe generation, 1 to 6.
    pub generation: u8,
    /// Lane count: 1, 2, 4, 8 or 16.
    pub width: u8,
    /// Latency of one traversal in nanoseconds.
    pub latency_ns: u64,
}

/// A link between a bridge's downstream side and an endpoint or switch upstream port.
#[derive(Clone, Debug)]
pub struct Link {
    /// Its id.
    pub id: LinkId,
    /// The root port or switch downstream port above.
    pub upstream: DeviceId,
    /// The endpoint or switch upstream port below.
    pub downstream: DeviceId,
    /// Speed, width and latency.
    pub spec: LinkSpec,
}

/// A host bridge (root complex) and the platform facts the kernel knows about it.
#[derive(Clone, Debug)]
pub struct HostBridge {
    /// Its id.
    pub id: HostBridgeId,
    /// Its name ("hb0").
    pub name: String,
    /// PCI segment (domain) number.
    pub segment: u16,
    /// Its root ports.
    pub root_ports: Vec<DeviceId>,
    /// On the kernel's pci_p2pdma whitelist: peer-to-peer through this root complex is
    /// known to work.
    pub p2p_whitelisted: bool,
    /// Whether devices get a translating IOMMU domain (else passthrough).
    pub iommu_translates: bool,
}

/// The emulated PCIe fabric (see the crate documentation).
///
/// `Fabric` is `Send + Sync`; the topology is immutable after [`Fabric::build`], while
/// counters, IOMMU domains and fault logs use interior synchronisation.
pub struct Fabric {
    // Private fields are the implementation's.
    _private: (),
}

impl std::fmt::Debug for Fabric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fabric").finish_non_exhaustive()
    }
}

impl Fabric {
    /// Builds a machine from its description: assigns bus numbers depth first, BARs
    /// naturally aligned in the 64-bit MMIO space above host DRAM, bridge windows that
    /// cover their children, creates the memory behind memory BARs and host DRAM.
    pub fn build(config: &TopologyConfig) -> Result<Arc<Self>, ConfigError> {
        let _ = config;
        todo!()
    }

    /// The built-in default machine ([`TopologyConfig::default_machine`]).
    pub fn default_machine() -> Result<Arc<Self>, ConfigError> {
        Self::build(&TopologyConfig::default_machine())
    }

    /// Host DRAM, at CPU physical (and bus) address 0.
    pub fn host_memory(&self) -> &Arc<Memory> {
        todo!()
    }

    /// The physical range of host DRAM.
    pub fn host_dram(&self) -> PhysRange {
        todo!()
    }

    /// Every PCI function, in BDF order.
    pub fn functions(&self) -> &[PciFunction] {
        todo!()
    }

    /// One PCI function. Ids come from this fabric, so a foreign id is a caller bug.
    pub fn function(&self, id: DeviceId) -> &PciFunction {
        let _ = id;
        todo!()
    }

    /// The endpoints, in BDF order.
    pub fn endpoints(&self) -> impl Iterator<Item = &PciFunction> {
        self.functions().iter().filter(|f| matches!(f.kind, FunctionKind::Endpoint(_)))
    }

    /// Finds a function by name ("accel0") or by BDF ("0000:03:00.0").
    pub fn find(&self, name_or_bdf: &str) -> Option<DeviceId> {
        let _ = name_or_bdf;
        todo!()
    }

    /// The host bridges.
    pub fn host_bridges(&self) -> &[HostBridge] {
        todo!()
    }

    /// Every link.
    pub fn links(&self) -> &[Link] {
        todo!()
    }

    /// The memory behind a memory BAR (for the device model that owns it).
    pub fn bar_memory(&self, dev: DeviceId, bar: u8) -> Option<&Arc<Memory>> {
        let _ = (dev, bar);
        todo!()
    }

    /// Converts a CPU physical address to the bus address a peer would use.
    pub fn phys_to_bus(&self, phys: PhysAddr) -> BusAddr {
        BusAddr(phys.raw())
    }
}
