//! The sagrada runtime library.
//!
//! [`Machine`] is the embedded default of the system: one host process holding the
//! emulated hardware (the PCIe fabric and its devices) and the kernel model with its
//! drivers. Applications run as processes of that kernel ([`Machine::process`]) and
//! reach it only through the uAPI; the modules here are the user-space libraries over
//! it: [`dmabuf`] (dma-heap allocation and dma-buf fds) and [`sync`] (sync_file and
//! sw_sync, libsync's role).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod dmabuf;
pub mod sync;

use std::sync::Arc;

pub use sagrada_hw_fabric as fabric;
use sagrada_hw_fabric::{ConfigError, Fabric, TopologyConfig};
use sagrada_kernel_core::{Errno, Kernel};
use sagrada_kernel_dmabuf::DmaBufRegistry;
pub use sagrada_sys::Process;

/// Why a machine could not be built.
#[derive(Debug, thiserror::Error)]
pub enum MachineError {
    /// The topology description is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
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
#[derive(Debug)]
pub struct Machine {
    kernel: Arc<Kernel>,
    dmabuf: Arc<DmaBufRegistry>,
}

impl Machine {
    /// Builds a machine from a topology description.
    pub fn new(config: &TopologyConfig) -> Result<Self, MachineError> {
        Self::on(Fabric::build(config)?)
    }

    /// The built-in default machine (three SG1s and two NICs; see
    /// [`TopologyConfig::default_machine`]).
    pub fn default_machine() -> Result<Self, MachineError> {
        Self::new(&TopologyConfig::default_machine())
    }

    fn on(fabric: Arc<Fabric>) -> Result<Self, MachineError> {
        let kernel = Kernel::new(fabric);
        let dmabuf =
            sagrada_kernel_dmabuf::install(&kernel).map_err(|errno| MachineError::Kernel {
                subsystem: "dma-buf",
                errno,
            })?;
        Ok(Self { kernel, dmabuf })
    }

    /// Starts a user process.
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
}
