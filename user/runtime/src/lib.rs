//! The sagrada runtime library.
//!
//! [`Machine`] is the embedded default of the system: one host process holding the
//! emulated hardware (the PCIe fabric and its devices: the SG1 accelerators and the DMA
//! test importers) and the kernel model with its drivers. Applications run as processes
//! of that kernel ([`Machine::process`]) and reach it only through the uAPI; the
//! modules here are the user-space libraries over it: [`accel`] (the SG1: memory,
//! copies, streams, events, dma-buf export, the compute cores' counters), [`kernel`]
//! (kernels on the SG1's compute cores: loading, arguments, launches, faults),
//! [`importer`] (the test importer), [`dmabuf`] (dma-heap allocation and dma-buf fds),
//! [`sync`] (sync_file and sw_sync, libsync's role) and [`verbs`] (RDMA verbs on the
//! NIC: libibverbs and its provider's role, rings and doorbells in user space).
//!
//! [`MachineBuilder`] also sets the SG1s' compute cores ([`MachineBuilder::cores`]) and
//! the host threads that run them ([`MachineBuilder::core_threads`]).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod accel;
pub mod dmabuf;
pub mod importer;
pub mod kernel;
pub mod sync;
pub mod verbs;

use std::sync::Arc;

pub use sagrada_hw_fabric as fabric;
pub use sagrada_isa as isa;
use std::collections::HashMap;

use sagrada_hw_accel::{Sg1, Sg1Config};
use sagrada_hw_fabric::{ConfigError, EndpointKind, Fabric, FunctionKind, TopologyConfig};
use sagrada_hw_importer::Importer;
use sagrada_hw_rnic::link::LinkFaults;
use sagrada_hw_rnic::{Rnic, RnicConfig};
use sagrada_kernel_accel::{DriverParams, ProbeError, Sg1Device};
use sagrada_kernel_core::{Errno, Kernel};
use sagrada_kernel_dmabuf::DmaBufRegistry;
pub use sagrada_sys::Process;

/// Why a machine could not be built.
#[derive(Debug, thiserror::Error)]
pub enum MachineError {
    /// The topology description is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A device model could not be attached.
    #[error("device {0}: {1}")]
    Device(String, String),
    /// A kernel subsystem refused to start.
    #[error("the kernel failed to start {subsystem}: {errno}")]
    Kernel {
        /// What was starting.
        subsystem: &'static str,
        /// Why.
        errno: Errno,
    },
}

/// A whole emulated machine: hardware and kernel.
///
/// Dropping it shuts it down: every process of its kernel exits (its files are
/// closed, and the drivers wait for the work they were given), then the devices stop.
/// A [`Process`] handle that outlives the machine refers to an exited process: its
/// system calls fail with `ESRCH`.
#[derive(Debug)]
pub struct Machine {
    kernel: Arc<Kernel>,
    dmabuf: Arc<DmaBufRegistry>,
    sg1s: Vec<Arc<Sg1>>,
    rnics: Vec<Arc<Rnic>>,
    links: Vec<(Arc<LinkFaults>, Arc<LinkFaults>)>,
    accels: Vec<Sg1Device>,
    probe_errors: Vec<ProbeError>,
}

/// Options for building a machine beyond its topology.
#[derive(Debug, Clone)]
pub struct MachineBuilder {
    config: TopologyConfig,
    firmware: HashMap<String, (u32, u32, u32)>,
    params: DriverParams,
    cores: Option<u32>,
    core_threads: Option<usize>,
    rnic_odp: HashMap<String, bool>,
    rdma: sagrada_kernel_rdma::RdmaParams,
}

impl MachineBuilder {
    /// Gives one SG1 ("accel1") a different firmware version.
    pub fn firmware(mut self, device: &str, version: (u32, u32, u32)) -> Self {
        self.firmware.insert(device.to_owned(), version);
        self
    }

    /// SG1 driver option: map peers under the same switch by bus address.
    pub fn p2p_bus_addr(mut self, on: bool) -> Self {
        self.params.p2p_bus_addr = on;
        self
    }

    /// SG1 driver option `timeout_locked`: how long a submission may run before the
    /// driver calls it a lockup and resets the device (zero: never).
    pub fn timeout_locked(mut self, timeout: std::time::Duration) -> Self {
        self.params.timeout_locked = timeout;
        self
    }

    /// Every SG1 gets `cores` compute cores (1 to 16; 8 by default).
    pub fn cores(mut self, cores: u32) -> Self {
        self.cores = Some(cores);
        self
    }

    /// Every SG1 runs its compute cores on `threads` host threads (at least 1; by
    /// default as many as the host has). Results do not depend on it; speed does.
    pub fn core_threads(mut self, threads: usize) -> Self {
        self.core_threads = Some(threads);
        self
    }

    /// Gives one RDMA NIC on-demand paging (`true`, the default: its memory keys can be
    /// invalidated and fault, so dma-bufs are attached dynamically) or not (`false`:
    /// dma-bufs are pinned).
    pub fn rnic_odp(mut self, device: &str, odp: bool) -> Self {
        self.rnic_odp.insert(device.to_owned(), odp);
        self
    }

    /// RDMA driver option: whether it implements dma-buf memory registration (`false`
    /// models a driver without `reg_user_mr_dmabuf`: `REG_DMABUF_MR` fails with
    /// `EOPNOTSUPP`).
    pub fn rdma_dmabuf_mr(mut self, on: bool) -> Self {
        self.rdma.reg_dmabuf_mr = on;
        self
    }

    /// Builds the hardware, boots the kernel and binds the drivers. A device whose
    /// driver refuses it stays unbound (see [`Machine::probe_errors`]).
    pub fn build(self) -> Result<Machine, MachineError> {
        let fabric = Fabric::build(&self.config)?;
        let mut sg1s = Vec::new();
        let mut rnics: Vec<Arc<Rnic>> = Vec::new();
        let endpoints: Vec<_> = fabric
            .endpoints()
            .map(|f| (f.id, f.kind, f.name.clone()))
            .collect();
        for (id, kind, name) in endpoints {
            match kind {
                FunctionKind::Endpoint(EndpointKind::Sg1) => {
                    let mut config = Sg1Config::default();
                    if let Some(&v) = self.firmware.get(&name) {
                        config.firmware_version = v;
                    }
                    if let Some(cores) = self.cores {
                        config.cores = cores;
                    }
                    if let Some(threads) = self.core_threads {
                        config.core_threads = threads;
                    }
                    let sg1 = Sg1::attach(&fabric, id, config)
                        .map_err(|e| MachineError::Device(name, e.to_string()))?;
                    sg1s.push(sg1);
                }
                FunctionKind::Endpoint(EndpointKind::Importer) => {
                    Importer::attach(&fabric, id)
                        .map_err(|e| MachineError::Device(name, e.to_string()))?;
                }
                FunctionKind::Endpoint(EndpointKind::Rnic) => {
                    let index = rnics.len() as u8;
                    let config = RnicConfig {
                        odp: self.rnic_odp.get(&name).copied().unwrap_or(true),
                        gid: sagrada_hw_rnic::ipv4_gid([10, 0, 0, index + 1]),
                        ..RnicConfig::default()
                    };
                    let rnic = Rnic::attach(&fabric, id, config)
                        .map_err(|e| MachineError::Device(name, e.to_string()))?;
                    rnics.push(rnic);
                }
                _ => {}
            }
        }
        let kernel = Kernel::new(fabric);
        let started = |subsystem| move |errno| MachineError::Kernel { subsystem, errno };
        let dmabuf = sagrada_kernel_dmabuf::install(&kernel).map_err(started("dma-buf"))?;
        let mut accels = Vec::new();
        let mut probe_errors = Vec::new();
        for result in sagrada_kernel_accel::probe(&kernel, &dmabuf, self.params) {
            match result {
                Ok(dev) => accels.push(dev),
                Err(e) => probe_errors.push(e),
            }
        }
        sagrada_kernel_importer::probe(&kernel).map_err(started("the test importer driver"))?;
        // The NICs are cabled in pairs, in PCI order: nic0 with nic1, and so on.
        let links = rnics
            .chunks_exact(2)
            .map(|pair| Rnic::connect(&pair[0], &pair[1]))
            .collect();
        sagrada_kernel_rdma::probe(&kernel, self.rdma).map_err(started("the RDMA driver"))?;
        Ok(Machine {
            kernel,
            dmabuf,
            sg1s,
            rnics,
            links,
            accels,
            probe_errors,
        })
    }
}

impl Machine {
    /// A builder for a machine of this topology.
    pub fn builder(config: &TopologyConfig) -> MachineBuilder {
        MachineBuilder {
            config: config.clone(),
            firmware: HashMap::new(),
            params: DriverParams::default(),
            cores: None,
            core_threads: None,
            rnic_odp: HashMap::new(),
            rdma: sagrada_kernel_rdma::RdmaParams::default(),
        }
    }

    /// Builds a machine from a topology description.
    pub fn new(config: &TopologyConfig) -> Result<Self, MachineError> {
        Self::builder(config).build()
    }

    /// The built-in default machine (see [`TopologyConfig::default_machine`]).
    pub fn default_machine() -> Result<Self, MachineError> {
        Self::new(&TopologyConfig::default_machine())
    }

    /// Starts a user process. It runs until it exits ([`Process::exit`]) or the
    /// machine is dropped; dropping the handle alone does not end it.
    pub fn process(&self, name: &str) -> Process {
        Process::spawn(&self.kernel, name)
    }

    /// The hardware, for tools that show or measure it (`sagrada topo`, benchmarks).
    pub fn fabric(&self) -> &Arc<Fabric> {
        self.kernel.fabric()
    }

    /// The kernel, for tools that play a driver's part in a demonstration.
    pub fn kernel(&self) -> &Arc<Kernel> {
        &self.kernel
    }

    /// The dma-buf subsystem (what exporting drivers use).
    pub fn dmabuf(&self) -> &Arc<DmaBufRegistry> {
        &self.dmabuf
    }

    /// The SG1s the driver bound, in order (`accel0`, ...).
    pub fn accels(&self) -> &[Sg1Device] {
        &self.accels
    }

    /// The RDMA NICs, in PCI order (`nic0`, ...).
    pub fn rnics(&self) -> &[Arc<Rnic>] {
        &self.rnics
    }

    /// Fault injection on the cable of NIC pair `pair` (nic0–nic1 is pair 0): the
    /// directions first → second and second → first.
    pub fn link_faults(&self, pair: usize) -> Option<&(Arc<LinkFaults>, Arc<LinkFaults>)> {
        self.links.get(pair)
    }

    /// The SG1s the driver refused, with why.
    pub fn probe_errors(&self) -> &[ProbeError] {
        &self.probe_errors
    }
}

impl Drop for Machine {
    /// Shuts down as an operating system does: every process exits first, so the
    /// drivers release their files (an SG1 context waits for its submissions) while the
    /// devices still run; only then do the device models stop. In the other order a
    /// context would close on a stopped device, wait its whole close timeout for a
    /// completion that cannot come, and reset a dead device.
    fn drop(&mut self) {
        for pid in self.kernel.pids() {
            // ESRCH: it exited meanwhile, on a thread of its own.
            let _ = self.kernel.exit(pid);
        }
        for sg1 in &self.sg1s {
            sg1.shutdown();
        }
        for rnic in &self.rnics {
            rnic.shutdown();
        }
    }
}
