//! The machine description: a small TOML file, and the built-in default machine.
//!
//! Format (flat tables that name their parent):
//!
//! ```toml
//! [host]
//! dram = "4 GiB"
//! dram_bandwidth = "51.2 GB/s"
//!
//! [[host_bridge]]
//! name = "hb0"
//! p2p_whitelist = false      # the kernel's pci_p2pdma host bridge whitelist
//! iommu = "translate"        # or "passthrough"
//!
//! [[switch]]
//! name = "sw0"
//! parent = "hb0"             # a host bridge (gets its own root port) or a switch
//! link = "gen4 x16"
//! acs_redirect = false
//!
//! [[device]]
//! name = "accel0"
//! kind = "sg1"               # "sg1", "rnic" or "endpoint" (with explicit bars)
//! parent = "sw0"
//! link = "gen4 x16"
//! hbm = "1 GiB"              # sg1 only
//! ```

/// A parsed machine description. Fields are the implementation's.
#[derive(Clone, Debug)]
pub struct TopologyConfig {
    _private: (),
}

/// A description that cannot be parsed or built, with the place and the offending value.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ConfigError {
    message: String,
}

impl TopologyConfig {
    /// Parses a TOML description.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        let _ = text;
        todo!()
    }

    /// The default machine: one host bridge; a switch under root port 1 with two SG1s
    /// and one NIC; one more SG1 and one more NIC each on a root port of their own.
    pub fn default_machine() -> Self {
        todo!()
    }
}
