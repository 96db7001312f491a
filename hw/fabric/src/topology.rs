//! The built machine: PCI functions, BARs, bridge windows, links, and the [`Fabric`]
//! object through which everything else reaches the hardware.
//!
//! Building does what firmware does at boot. Each host bridge is a PCI segment whose
//! root ports sit on bus 0 as devices 1, 2, 3…; bus numbers are handed out depth first;
//! a switch's upstream port is device 0 on its root port's (or downstream port's)
//! secondary bus and its downstream ports are devices 0, 1, 2… on the next bus; an
//! endpoint is device 0 function 0 on its port's secondary bus. BARs are sized and
//! packed bottom-up (largest alignment first, as Linux's `pbus_size_mem` does) and
//! placed top-down in a 64-bit MMIO space from [`MMIO_BASE`], each naturally aligned,
//! each bridge window covering its children at 1 MiB granularity.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use crate::config::{BarConfig, ConfigError, ParentRef, Place, TopologyConfig};
use crate::dma::MmioHandler;
use crate::iommu::{self, Domain};
use crate::units;
use crate::{Bdf, BusAddr, DeviceId, HostBridgeId, LinkId, Memory, PhysAddr, PhysRange};

/// Where the 64-bit MMIO space (all BARs and bridge windows) starts: 256 GiB, above
/// any host DRAM this model accepts.
pub const MMIO_BASE: u64 = 0x40_0000_0000;
/// Where the MMIO space ends (exclusive): a 48-bit physical address space.
pub const MMIO_END: u64 = 1 << 48;
/// Bridge memory windows are aligned and sized in 1 MiB units, as PCI bridges decode.
const WINDOW_GRANULE: u64 = 1 << 20;
/// Largest payload of a TLP in this model (Max_Payload_Size).
const MAX_PAYLOAD: f64 = 256.0;
/// Bytes of TLP header, sequence number, LCRC, framing and the amortised DLLPs (acks,
/// flow control) that go with each maximum-size TLP.
const TLP_OVERHEAD: f64 = 24.0;

/// Configuration-space identities of sagrada's functions.
///
/// The vendor ID 0x5347 ("SG") is **not** registered with the PCI-SIG; it only has to be
/// unique inside the emulated machine. Drivers match on these values.
pub mod ids {
    /// Vendor ID of every sagrada function (not a PCI-SIG registered ID).
    pub const SAGRADA_VENDOR_ID: u16 = 0x5347;
    /// Device ID of the SG1 accelerator.
    pub const SG1_DEVICE_ID: u16 = 0x0001;
    /// Device ID of the RDMA NIC.
    pub const RNIC_DEVICE_ID: u16 = 0x0101;
    /// Device ID of a generic endpoint.
    pub const GENERIC_DEVICE_ID: u16 = 0x0f00;
    /// Device ID of the DMA test importer.
    pub const IMPORTER_DEVICE_ID: u16 = 0x0f01;
    /// Device ID of a root port.
    pub const ROOT_PORT_DEVICE_ID: u16 = 0x0a01;
    /// Device ID of a switch upstream port.
    pub const SWITCH_UPSTREAM_DEVICE_ID: u16 = 0x0a02;
    /// Device ID of a switch downstream port.
    pub const SWITCH_DOWNSTREAM_DEVICE_ID: u16 = 0x0a03;
    /// Class code: processing accelerator (base class 0x12).
    pub const CLASS_PROCESSING_ACCELERATOR: u32 = 0x12_00_00;
    /// Class code: Ethernet controller (the RoCE NIC).
    pub const CLASS_ETHERNET: u32 = 0x02_00_00;
    /// Class code: PCI-to-PCI bridge (root and switch ports).
    pub const CLASS_PCI_BRIDGE: u32 = 0x06_04_00;
    /// Class code: device that fits no defined class.
    pub const CLASS_UNCLASSIFIED: u32 = 0xff_00_00;
    /// Class code: other system peripheral (the DMA test importer).
    pub const CLASS_SYSTEM_PERIPHERAL: u32 = 0x08_80_00;
}

/// What kind of endpoint a PCI function is.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum EndpointKind {
    /// The SG1 accelerator (BAR0 registers, BAR2 the HBM window).
    Sg1,
    /// The RDMA NIC (BAR0 registers and doorbells).
    Rnic,
    /// An endpoint with the BARs its configuration lists.
    Generic,
    /// The DMA test importer (BAR0 registers): a device that imports dma-bufs and DMAs
    /// to them, standing in for a NIC the way Habana's tests use a fake importer.
    Importer,
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

impl LinkSpec {
    /// Raw signalling rate of one lane in GT/s.
    pub fn transfer_rate_gt(&self) -> f64 {
        match self.generation {
            1 => 2.5,
            2 => 5.0,
            3 => 8.0,
            4 => 16.0,
            5 => 32.0,
            _ => 64.0,
        }
    }

    /// Fraction of the raw bits that carry data after line encoding: 8b/10b up to gen2,
    /// 128b/130b for gen3 to gen5, and for gen6's FLIT mode the 242 TLP bytes of a
    /// 256-byte FLIT.
    pub fn encoding_efficiency(&self) -> f64 {
        match self.generation {
            1 | 2 => 8.0 / 10.0,
            3..=5 => 128.0 / 130.0,
            _ => 242.0 / 256.0,
        }
    }

    /// Payload bandwidth per direction in bytes per second: rate × lanes × encoding ÷ 8,
    /// times the share of a 256-byte-payload TLP that is payload.
    pub fn bandwidth(&self) -> f64 {
        self.transfer_rate_gt() * 1e9 * f64::from(self.width) * self.encoding_efficiency() / 8.0
            * (MAX_PAYLOAD / (MAX_PAYLOAD + TLP_OVERHEAD))
    }
}

impl std::fmt::Display for LinkSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "gen{} x{}", self.generation, self.width)
    }
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

/// What backs one BAR: a memory, or the device model attached later.
pub(crate) struct BarBacking {
    pub(crate) memory: Option<Arc<Memory>>,
    pub(crate) handler: OnceLock<Arc<dyn MmioHandler>>,
}

/// Platform timing of one root complex.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RcTiming {
    pub(crate) latency_ns: u64,
    pub(crate) p2p_bandwidth: f64,
}

/// A counter on a cache line of its own: devices on several host threads add to it on
/// every DMA chunk, and the fabric's read-mostly fields must not share its line.
#[derive(Default)]
#[repr(align(64))]
pub(crate) struct Padded(pub(crate) AtomicU64);

impl std::ops::Deref for Padded {
    type Target = AtomicU64;

    fn deref(&self) -> &AtomicU64 {
        &self.0
    }
}

/// Byte counters of one link, on a cache line of their own: devices on different host
/// threads count on different links, and sharing a line would make every DMA chunk
/// wait for it.
#[derive(Default)]
#[repr(align(64))]
pub(crate) struct LinkTraffic {
    pub(crate) up: AtomicU64,
    pub(crate) down: AtomicU64,
}

/// The emulated PCIe fabric (see the crate documentation).
///
/// `Fabric` is `Send + Sync`; the topology is immutable after [`Fabric::build`], while
/// counters, IOMMU domains and fault logs use interior synchronisation.
pub struct Fabric {
    pub(crate) functions: Vec<PciFunction>,
    /// Per function: the functions directly below (a port's one child, a switch
    /// upstream port's downstream ports).
    pub(crate) children: Vec<Vec<DeviceId>>,
    /// Per function: what backs each BAR, parallel to `PciFunction::bars`.
    pub(crate) backings: Vec<Vec<BarBacking>>,
    /// Per function: the links from it up to its root port, nearest first.
    pub(crate) up_links: Vec<Vec<LinkId>>,
    /// Per function: crossing latency of the switch it belongs to (switch ports only).
    pub(crate) switch_latency_ns: Vec<u64>,
    pub(crate) host_bridges: Vec<HostBridge>,
    pub(crate) rc_timing: Vec<RcTiming>,
    /// Every root port's memory window as (start, end, port), sorted: what a root
    /// complex (or the CPU) can send down the tree.
    pub(crate) rc_windows: Vec<(u64, u64, DeviceId)>,
    pub(crate) links: Vec<Link>,
    pub(crate) link_names: Vec<String>,
    pub(crate) link_bandwidth: Vec<f64>,
    pub(crate) link_traffic: Vec<LinkTraffic>,
    pub(crate) host: Arc<Memory>,
    pub(crate) dram: PhysRange,
    pub(crate) dram_bandwidth: f64,
    pub(crate) dram_latency_ns: u64,
    pub(crate) dram_read: Padded,
    pub(crate) dram_write: Padded,
    pub(crate) rc_p2p: Padded,
    /// Per function: its IOMMU domain (endpoints only).
    pub(crate) domains: Vec<Option<RwLock<Domain>>>,
    /// Per function: the latest faults, oldest first.
    pub(crate) fault_logs: Vec<Mutex<std::collections::VecDeque<crate::Fault>>>,
    names: HashMap<String, DeviceId>,
    /// The root complexes' interrupt window.
    pub(crate) msi: crate::dma::MsiPort,
}

impl std::fmt::Debug for Fabric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fabric")
            .field("host_bridges", &self.host_bridges.len())
            .field("functions", &self.functions.len())
            .field("links", &self.links.len())
            .field(
                "dram",
                &format_args!("{}", units::format_size(self.dram.len)),
            )
            .finish_non_exhaustive()
    }
}

impl Fabric {
    /// Builds a machine from its description: assigns bus numbers depth first, BARs
    /// naturally aligned in the 64-bit MMIO space above host DRAM, bridge windows that
    /// cover their children, creates the memory behind memory BARs and host DRAM.
    pub fn build(config: &TopologyConfig) -> Result<Arc<Self>, ConfigError> {
        let mut b = Builder {
            config,
            nodes: Vec::new(),
            next_bus: 0,
        };
        for (h, hb) in config.host_bridges.iter().enumerate() {
            b.host_bridge(h, hb)?;
        }
        b.assign_addresses()?;
        b.finish().map(Arc::new)
    }

    /// The built-in default machine ([`TopologyConfig::default_machine`]).
    pub fn default_machine() -> Result<Arc<Self>, ConfigError> {
        Self::build(&TopologyConfig::default_machine())
    }

    /// Host DRAM, at CPU physical (and bus) address 0.
    pub fn host_memory(&self) -> &Arc<Memory> {
        &self.host
    }

    /// The physical range of host DRAM.
    pub fn host_dram(&self) -> PhysRange {
        self.dram
    }

    /// Host DRAM bandwidth in bytes per second, as the timing model charges it.
    pub fn host_dram_bandwidth(&self) -> f64 {
        self.dram_bandwidth
    }

    /// Every PCI function, in BDF order.
    pub fn functions(&self) -> &[PciFunction] {
        &self.functions
    }

    /// One PCI function. Ids come from this fabric, so a foreign id is a caller bug.
    ///
    /// # Panics
    ///
    /// On an id this fabric did not hand out.
    pub fn function(&self, id: DeviceId) -> &PciFunction {
        &self.functions[id.0 as usize]
    }

    /// One PCI function, or `None` for an id this fabric did not hand out.
    pub fn try_function(&self, id: DeviceId) -> Option<&PciFunction> {
        self.functions.get(id.0 as usize)
    }

    /// The endpoints, in BDF order.
    pub fn endpoints(&self) -> impl Iterator<Item = &PciFunction> {
        self.functions()
            .iter()
            .filter(|f| matches!(f.kind, FunctionKind::Endpoint(_)))
    }

    /// The functions directly below a bridge (a port's one child, a switch upstream
    /// port's downstream ports); empty for endpoints and foreign ids.
    pub fn children(&self, id: DeviceId) -> &[DeviceId] {
        self.children.get(id.0 as usize).map_or(&[], Vec::as_slice)
    }

    /// Finds a function by name ("accel0") or by BDF ("0000:03:00.0", or "03:00.0" in
    /// segment 0).
    pub fn find(&self, name_or_bdf: &str) -> Option<DeviceId> {
        if let Some(&id) = self.names.get(name_or_bdf) {
            return Some(id);
        }
        let full = if name_or_bdf.matches(':').count() == 1 {
            format!("0000:{name_or_bdf}")
        } else {
            name_or_bdf.to_owned()
        };
        self.functions
            .iter()
            .find(|f| f.bdf.to_string().eq_ignore_ascii_case(&full))
            .map(|f| f.id)
    }

    /// The host bridges.
    pub fn host_bridges(&self) -> &[HostBridge] {
        &self.host_bridges
    }

    /// Every link.
    pub fn links(&self) -> &[Link] {
        &self.links
    }

    /// One link, or `None` for a foreign id.
    pub fn link(&self, id: LinkId) -> Option<&Link> {
        self.links.get(id.0 as usize)
    }

    /// A readable name of a link: its two ends, "hb0.rp1 — sw0.up".
    pub fn link_name(&self, id: LinkId) -> &str {
        self.link_names
            .get(id.0 as usize)
            .map_or("(no such link)", String::as_str)
    }

    /// The link directly above an endpoint or switch upstream port (`None` for root
    /// ports, downstream ports and foreign ids).
    pub fn link_above(&self, dev: DeviceId) -> Option<LinkId> {
        self.try_function(dev).and_then(|f| f.link)
    }

    /// The links from `dev` up to its root port, nearest first.
    pub fn links_to_root(&self, dev: DeviceId) -> &[LinkId] {
        self.up_links.get(dev.0 as usize).map_or(&[], Vec::as_slice)
    }

    /// One BAR of a function, by BAR index.
    pub fn bar(&self, dev: DeviceId, index: u8) -> Option<&Bar> {
        self.try_function(dev)?
            .bars
            .iter()
            .find(|b| b.index == index)
    }

    /// The memory behind a memory BAR (for the device model that owns it).
    pub fn bar_memory(&self, dev: DeviceId, bar: u8) -> Option<&Arc<Memory>> {
        let f = self.try_function(dev)?;
        let slot = f.bars.iter().position(|b| b.index == bar)?;
        self.backings[dev.0 as usize][slot].memory.as_ref()
    }

    /// Converts a CPU physical address to the bus address a peer would use.
    pub fn phys_to_bus(&self, phys: PhysAddr) -> BusAddr {
        // The modelled host bridges apply no offset; the conversion stays explicit so
        // code that mixes the two spaces does not compile.
        BusAddr(phys.raw())
    }

    /// Converts a bus address to the CPU physical address of the same byte.
    pub fn bus_to_phys(&self, bus: BusAddr) -> PhysAddr {
        PhysAddr(bus.raw())
    }
}

/// A function under construction, before ids are assigned in BDF order.
struct Node {
    name: String,
    kind: FunctionKind,
    bdf: Bdf,
    parent: Option<usize>,
    children: Vec<usize>,
    host_bridge: usize,
    link: Option<LinkSpec>,
    bars: Vec<BarConfig>,
    acs_redirect: bool,
    switch_latency_ns: u64,
    place: Place,
    buses: Option<(u8, u8)>,
    /// Space needed below (size, alignment), `None` when nothing below has a BAR.
    need: Option<(u64, u64)>,
    /// Offsets of the BARs (endpoints) or children (switch upstream ports) in `need`.
    offsets: Vec<u64>,
    window: Option<(u64, u64)>,
    bar_addrs: Vec<u64>,
}

/// One thing that hangs from a host bridge or switch in the description.
#[derive(Clone, Copy)]
enum Child {
    Switch(usize),
    Device(usize),
}

struct Builder<'a> {
    config: &'a TopologyConfig,
    nodes: Vec<Node>,
    next_bus: u16,
}

fn align_up(value: u64, align: u64) -> u64 {
    value.div_ceil(align).saturating_mul(align)
}

/// Packs items of (size, alignment) largest alignment first; returns each item's
/// offset (in input order), the total rounded to the window granule, and the alignment.
fn pack(items: &[(u64, u64)]) -> (Vec<u64>, u64, u64) {
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(items[i].1));
    let mut offsets = vec![0; items.len()];
    let mut cursor = 0u64;
    let mut align = WINDOW_GRANULE;
    for i in order {
        let (size, a) = items[i];
        let at = align_up(cursor, a);
        offsets[i] = at;
        cursor = at.saturating_add(size);
        align = align.max(a);
    }
    (offsets, align_up(cursor, WINDOW_GRANULE), align)
}

impl Builder<'_> {
    fn children_of(&self, parent: ParentRef) -> Vec<Child> {
        let mut out: Vec<(usize, Child)> = Vec::new();
        for (i, s) in self.config.switches.iter().enumerate() {
            if s.parent == parent {
                out.push((s.order, Child::Switch(i)));
            }
        }
        for (i, d) in self.config.devices.iter().enumerate() {
            if d.parent == parent {
                out.push((d.order, Child::Device(i)));
            }
        }
        out.sort_by_key(|c| c.0);
        out.into_iter().map(|c| c.1).collect()
    }

    #[allow(clippy::too_many_arguments)]
    fn node(
        &mut self,
        name: String,
        kind: FunctionKind,
        bdf: Bdf,
        parent: Option<usize>,
        host_bridge: usize,
        place: Place,
    ) -> usize {
        let id = self.nodes.len();
        self.nodes.push(Node {
            name,
            kind,
            bdf,
            parent,
            children: Vec::new(),
            host_bridge,
            link: None,
            bars: Vec::new(),
            acs_redirect: false,
            switch_latency_ns: 0,
            place,
            buses: None,
            need: None,
            offsets: Vec::new(),
            window: None,
            bar_addrs: Vec::new(),
        });
        if let Some(p) = parent {
            self.nodes[p].children.push(id);
        }
        id
    }

    fn take_bus(&mut self, h: usize, place: &Place) -> Result<u8, ConfigError> {
        let bus = u8::try_from(self.next_bus).map_err(|_| {
            ConfigError::placed(
                place,
                None,
                format!(
                    "bus numbers of segment {h:04x} (host bridge \"{}\") run out here; a segment \
                     has buses 0 to 255",
                    self.config.host_bridges[h].name
                ),
            )
        })?;
        self.next_bus += 1;
        Ok(bus)
    }

    fn host_bridge(
        &mut self,
        h: usize,
        hb: &crate::config::HostBridgeConfig,
    ) -> Result<(), ConfigError> {
        self.next_bus = 1;
        let segment = u16::try_from(h).unwrap_or(u16::MAX);
        let children = self.children_of(ParentRef::HostBridge(h));
        for (i, child) in children.into_iter().enumerate() {
            let device = u8::try_from(i + 1)
                .ok()
                .filter(|&d| d < 32)
                .ok_or_else(|| {
                    ConfigError::placed(
                        &hb.place,
                        None,
                        "more root ports than the 31 device numbers of bus 0",
                    )
                })?;
            let bdf = Bdf {
                segment,
                bus: 0,
                device,
                function: 0,
            };
            let rp = self.node(
                format!("{}.rp{device}", hb.name),
                FunctionKind::RootPort,
                bdf,
                None,
                h,
                hb.place.clone(),
            );
            let place = self.child_place(child);
            let secondary = self.take_bus(h, &place)?;
            self.attach(child, secondary, rp, h)?;
            self.nodes[rp].buses = Some((secondary, self.last_bus()));
        }
        Ok(())
    }

    fn last_bus(&self) -> u8 {
        u8::try_from(self.next_bus.saturating_sub(1)).unwrap_or(u8::MAX)
    }

    fn child_place(&self, child: Child) -> Place {
        match child {
            Child::Switch(s) => self.config.switches[s].place.clone(),
            Child::Device(d) => self.config.devices[d].place.clone(),
        }
    }

    /// Hangs `child` below the port `port`, whose secondary bus is `bus`.
    fn attach(&mut self, child: Child, bus: u8, port: usize, h: usize) -> Result<(), ConfigError> {
        let config = self.config;
        let segment = self.nodes[port].bdf.segment;
        let bdf = Bdf {
            segment,
            bus,
            device: 0,
            function: 0,
        };
        match child {
            Child::Device(d) => {
                let dev = &config.devices[d];
                let n = self.node(
                    dev.name.clone(),
                    FunctionKind::Endpoint(dev.kind),
                    bdf,
                    Some(port),
                    h,
                    dev.place.clone(),
                );
                self.nodes[n].link = Some(dev.link);
                self.nodes[n].bars = dev.bars.clone();
            }
            Child::Switch(s) => {
                let sw = &config.switches[s];
                let up = self.node(
                    format!("{}.up", sw.name),
                    FunctionKind::SwitchUpstream,
                    bdf,
                    Some(port),
                    h,
                    sw.place.clone(),
                );
                self.nodes[up].link = Some(sw.link);
                self.nodes[up].switch_latency_ns = sw.latency_ns;
                let internal = self.take_bus(h, &sw.place)?;
                let children = self.children_of(ParentRef::Switch(s));
                for (j, grandchild) in children.into_iter().enumerate() {
                    let device = u8::try_from(j).ok().filter(|&d| d < 32).ok_or_else(|| {
                        ConfigError::placed(
                            &sw.place,
                            None,
                            "more downstream ports than the 32 device numbers of a bus",
                        )
                    })?;
                    let dp_bdf = Bdf {
                        segment,
                        bus: internal,
                        device,
                        function: 0,
                    };
                    let dp = self.node(
                        format!("{}.dp{device}", sw.name),
                        FunctionKind::SwitchDownstream,
                        dp_bdf,
                        Some(up),
                        h,
                        sw.place.clone(),
                    );
                    self.nodes[dp].acs_redirect = sw.acs_redirect;
                    self.nodes[dp].switch_latency_ns = sw.latency_ns;
                    let place = self.child_place(grandchild);
                    let secondary = self.take_bus(h, &place)?;
                    self.attach(grandchild, secondary, dp, h)?;
                    self.nodes[dp].buses = Some((secondary, self.last_bus()));
                }
                self.nodes[up].buses = Some((internal, self.last_bus()));
            }
        }
        Ok(())
    }

    /// Sizes every window bottom-up, then places every host bridge's root ports in
    /// turn from [`MMIO_BASE`].
    fn assign_addresses(&mut self) -> Result<(), ConfigError> {
        for n in 0..self.nodes.len() {
            if self.nodes[n].parent.is_none() {
                self.size(n);
            }
        }
        let mut cursor = MMIO_BASE;
        for (h, hb) in self.config.host_bridges.iter().enumerate() {
            let ports: Vec<usize> = (0..self.nodes.len())
                .filter(|&n| self.nodes[n].parent.is_none() && self.nodes[n].host_bridge == h)
                .collect();
            let items: Vec<(usize, (u64, u64))> = ports
                .iter()
                .filter_map(|&p| self.nodes[p].need.map(|need| (p, need)))
                .collect();
            if items.is_empty() {
                continue;
            }
            let needs: Vec<(u64, u64)> = items.iter().map(|i| i.1).collect();
            let (offsets, total, align) = pack(&needs);
            let base = align_up(cursor, align);
            let end = base.checked_add(total).filter(|&e| e <= MMIO_END).ok_or_else(|| {
                ConfigError::placed(
                    &hb.place,
                    None,
                    format!(
                        "the BARs below host bridge \"{}\" need {} of MMIO space, more than is left \
                         below {MMIO_END:#x}",
                        hb.name,
                        units::format_size(total)
                    ),
                )
            })?;
            for ((port, _), offset) in items.iter().zip(offsets) {
                self.place(*port, base + offset);
            }
            cursor = end;
        }
        Ok(())
    }

    fn size(&mut self, n: usize) -> Option<(u64, u64)> {
        let children = self.nodes[n].children.clone();
        let need = match self.nodes[n].kind {
            FunctionKind::Endpoint(_) => {
                let items: Vec<(u64, u64)> = self.nodes[n]
                    .bars
                    .iter()
                    .map(|b| (b.size, b.size))
                    .collect();
                if items.is_empty() {
                    None
                } else {
                    let (offsets, total, align) = pack(&items);
                    self.nodes[n].offsets = offsets;
                    Some((total, align))
                }
            }
            FunctionKind::RootPort | FunctionKind::SwitchDownstream => {
                children.first().and_then(|&c| self.size(c))
            }
            FunctionKind::SwitchUpstream => {
                let needs: Vec<Option<(u64, u64)>> =
                    children.iter().map(|&c| self.size(c)).collect();
                let present: Vec<(u64, u64)> = needs.iter().flatten().copied().collect();
                if present.is_empty() {
                    None
                } else {
                    let (packed, total, align) = pack(&present);
                    let mut it = packed.into_iter();
                    self.nodes[n].offsets = needs
                        .iter()
                        .map(|need| {
                            if need.is_some() {
                                it.next().unwrap_or(0)
                            } else {
                                0
                            }
                        })
                        .collect();
                    Some((total, align))
                }
            }
        };
        self.nodes[n].need = need;
        need
    }

    fn place(&mut self, n: usize, base: u64) {
        let Some((size, _)) = self.nodes[n].need else {
            return;
        };
        let children = self.nodes[n].children.clone();
        match self.nodes[n].kind {
            FunctionKind::Endpoint(_) => {
                self.nodes[n].bar_addrs = self.nodes[n].offsets.iter().map(|o| base + o).collect();
            }
            FunctionKind::RootPort | FunctionKind::SwitchDownstream => {
                self.nodes[n].window = Some((base, size));
                if let Some(&c) = children.first() {
                    self.place(c, base);
                }
            }
            FunctionKind::SwitchUpstream => {
                self.nodes[n].window = Some((base, size));
                let offsets = self.nodes[n].offsets.clone();
                for (c, offset) in children.into_iter().zip(offsets) {
                    self.place(c, base + offset);
                }
            }
        }
    }

    fn finish(self) -> Result<Fabric, ConfigError> {
        let config = self.config;
        let nodes = self.nodes;
        let mut order: Vec<usize> = (0..nodes.len()).collect();
        order.sort_by_key(|&n| nodes[n].bdf);
        let mut id_of = vec![DeviceId(0); nodes.len()];
        for (pos, &n) in order.iter().enumerate() {
            id_of[n] = DeviceId(pos as u32);
        }

        let mut functions = Vec::with_capacity(nodes.len());
        let mut children = Vec::with_capacity(nodes.len());
        let mut backings = Vec::with_capacity(nodes.len());
        let mut switch_latency_ns = Vec::with_capacity(nodes.len());
        let mut links = Vec::new();
        let mut link_names = Vec::new();
        for &n in &order {
            let node = &nodes[n];
            let id = id_of[n];
            let (vendor_id, device_id, class_code) = identity(node.kind);
            let mut bars = Vec::new();
            let mut backing = Vec::new();
            for (bar, &addr) in node.bars.iter().zip(&node.bar_addrs) {
                let kind = bar.kind;
                let memory = match kind {
                    BarKind::Memory => {
                        let name = format!("{}.bar{}", node.name, bar.index);
                        let mem = Memory::new(&name, bar.size).map_err(|e| {
                            ConfigError::placed(
                                &node.place,
                                None,
                                format!(
                                    "cannot create the {} memory of BAR{}: {e}",
                                    units::format_size(bar.size),
                                    bar.index
                                ),
                            )
                        })?;
                        Some(Arc::new(mem))
                    }
                    BarKind::Mmio => None,
                };
                bars.push(Bar {
                    index: bar.index,
                    phys: PhysAddr(addr),
                    bus: BusAddr(addr),
                    size: bar.size,
                    kind,
                    prefetchable: bar.prefetchable,
                    is_64bit: true,
                });
                backing.push(BarBacking {
                    memory,
                    handler: OnceLock::new(),
                });
            }
            let link = node.link.map(|spec| {
                let link_id = LinkId(links.len() as u32);
                let upstream = node.parent.map_or(id, |p| id_of[p]);
                let upstream_name = node.parent.map_or("?", |p| nodes[p].name.as_str());
                link_names.push(format!("{upstream_name} — {}", node.name));
                links.push(Link {
                    id: link_id,
                    upstream,
                    downstream: id,
                    spec,
                });
                link_id
            });
            let is_bridge = !matches!(node.kind, FunctionKind::Endpoint(_));
            functions.push(PciFunction {
                id,
                name: node.name.clone(),
                bdf: node.bdf,
                kind: node.kind,
                vendor_id,
                device_id,
                class_code,
                bars,
                upstream_bridge: node.parent.map(|p| id_of[p]),
                host_bridge: HostBridgeId(node.host_bridge as u32),
                link,
                window: is_bridge.then(|| {
                    let (secondary_bus, subordinate_bus) = node.buses.unwrap_or((0, 0));
                    BridgeWindow {
                        secondary_bus,
                        subordinate_bus,
                        memory: node.window.map(|(base, size)| (BusAddr(base), size)),
                    }
                }),
                acs_redirect: node.acs_redirect,
            });
            children.push(node.children.iter().map(|&c| id_of[c]).collect());
            backings.push(backing);
            switch_latency_ns.push(node.switch_latency_ns);
        }

        let up_links = functions
            .iter()
            .map(|f| {
                let mut chain = Vec::new();
                let mut at = Some(f.id);
                while let Some(id) = at {
                    let g: &PciFunction = &functions[id.0 as usize];
                    chain.extend(g.link);
                    at = g.upstream_bridge;
                }
                chain
            })
            .collect();

        let host_bridges: Vec<HostBridge> = config
            .host_bridges
            .iter()
            .enumerate()
            .map(|(h, hb)| HostBridge {
                id: HostBridgeId(h as u32),
                name: hb.name.clone(),
                segment: u16::try_from(h).unwrap_or(u16::MAX),
                root_ports: functions
                    .iter()
                    .filter(|f| f.kind == FunctionKind::RootPort && f.host_bridge.0 as usize == h)
                    .map(|f| f.id)
                    .collect(),
                p2p_whitelisted: hb.p2p_whitelist,
                iommu_translates: hb.iommu_translates,
            })
            .collect();
        let rc_timing = config
            .host_bridges
            .iter()
            .map(|hb| RcTiming {
                latency_ns: hb.latency_ns,
                p2p_bandwidth: hb.p2p_bandwidth,
            })
            .collect();

        let mut rc_windows: Vec<(u64, u64, DeviceId)> = functions
            .iter()
            .filter(|f| f.kind == FunctionKind::RootPort)
            .filter_map(|f| {
                f.window
                    .as_ref()?
                    .memory
                    .map(|(base, size)| (base.raw(), base.raw() + size, f.id))
            })
            .collect();
        rc_windows.sort_unstable();

        let reserved: Vec<(u64, u64)> = rc_windows.iter().map(|&(s, e, _)| (s, e)).collect();
        let domains = functions
            .iter()
            .map(|f| {
                matches!(f.kind, FunctionKind::Endpoint(_)).then(|| {
                    let translating = host_bridges[f.host_bridge.0 as usize].iommu_translates;
                    RwLock::new(iommu::Domain::new(translating, &reserved))
                })
            })
            .collect();
        let fault_logs = functions.iter().map(|_| Mutex::default()).collect();

        let dram_len = config.host.dram;
        let host = Memory::new("dram", dram_len).map_err(|e| {
            ConfigError::general(format!(
                "cannot create {} of host DRAM: {e}",
                units::format_size(dram_len)
            ))
        })?;
        let names = functions.iter().map(|f| (f.name.clone(), f.id)).collect();
        let link_bandwidth = links.iter().map(|l| l.spec.bandwidth()).collect();
        let link_traffic = links.iter().map(|_| LinkTraffic::default()).collect();
        Ok(Fabric {
            functions,
            children,
            backings,
            up_links,
            switch_latency_ns,
            host_bridges,
            rc_timing,
            rc_windows,
            links,
            link_names,
            link_bandwidth,
            link_traffic,
            host: Arc::new(host),
            dram: PhysRange {
                start: PhysAddr(0),
                len: dram_len,
            },
            dram_bandwidth: config.host.dram_bandwidth,
            dram_latency_ns: config.host.dram_latency_ns,
            dram_read: Padded::default(),
            dram_write: Padded::default(),
            rc_p2p: Padded::default(),
            domains,
            fault_logs,
            names,
            msi: crate::dma::MsiPort::default(),
        })
    }
}

/// Vendor ID, device ID and class code of a function of this kind.
fn identity(kind: FunctionKind) -> (u16, u16, u32) {
    use ids::*;
    match kind {
        FunctionKind::RootPort => (SAGRADA_VENDOR_ID, ROOT_PORT_DEVICE_ID, CLASS_PCI_BRIDGE),
        FunctionKind::SwitchUpstream => (
            SAGRADA_VENDOR_ID,
            SWITCH_UPSTREAM_DEVICE_ID,
            CLASS_PCI_BRIDGE,
        ),
        FunctionKind::SwitchDownstream => (
            SAGRADA_VENDOR_ID,
            SWITCH_DOWNSTREAM_DEVICE_ID,
            CLASS_PCI_BRIDGE,
        ),
        FunctionKind::Endpoint(EndpointKind::Sg1) => (
            SAGRADA_VENDOR_ID,
            SG1_DEVICE_ID,
            CLASS_PROCESSING_ACCELERATOR,
        ),
        FunctionKind::Endpoint(EndpointKind::Rnic) => {
            (SAGRADA_VENDOR_ID, RNIC_DEVICE_ID, CLASS_ETHERNET)
        }
        FunctionKind::Endpoint(EndpointKind::Generic) => {
            (SAGRADA_VENDOR_ID, GENERIC_DEVICE_ID, CLASS_UNCLASSIFIED)
        }
        FunctionKind::Endpoint(EndpointKind::Importer) => (
            SAGRADA_VENDOR_ID,
            IMPORTER_DEVICE_ID,
            CLASS_SYSTEM_PERIPHERAL,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_aligns_naturally_largest_first() {
        let (offsets, total, align) = pack(&[(1 << 20, 1 << 20), (1 << 30, 1 << 30)]);
        assert_eq!(offsets, vec![1 << 30, 0]);
        assert_eq!(total, (1 << 30) + (1 << 20));
        assert_eq!(align, 1 << 30);
        let (offsets, total, _) = pack(&[(4096, 4096)]);
        assert_eq!((offsets[0], total), (0, 1 << 20));
    }

    #[test]
    fn gen4_x16_bandwidth_follows_the_formula() {
        let spec = LinkSpec {
            generation: 4,
            width: 16,
            latency_ns: 20,
        };
        let expected = 16e9 * 16.0 * (128.0 / 130.0) / 8.0 * (256.0 / 280.0);
        assert!((spec.bandwidth() - expected).abs() < 1.0);
        let gen1 = LinkSpec {
            generation: 1,
            width: 1,
            latency_ns: 20,
        };
        assert!((gen1.bandwidth() - 2.5e9 * 0.8 / 8.0 * (256.0 / 280.0)).abs() < 1.0);
    }
}
