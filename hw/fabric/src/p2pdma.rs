//! The kernel's peer-to-peer DMA rules (`drivers/pci/p2pdma.c`) over this topology.

use crate::{DeviceId, Fabric};

/// How a client would reach a provider's memory (Linux `enum pci_p2pdma_map_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum P2pMapType {
    /// Through a common switch, using the provider's bus address.
    BusAddr,
    /// Up through a whitelisted root complex, using IOMMU mappings.
    ThruHostBridge,
    /// Not supported.
    NotSupported,
}

/// The verdict for one provider/client pair.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct P2pDistance {
    /// How the path would be mapped.
    pub map_type: P2pMapType,
    /// Number of ports traversed (`pci_p2pdma_distance`), `None` when not supported.
    pub distance: Option<u32>,
    /// Why, in one sentence naming the devices and ports involved.
    pub reason: String,
}

impl Fabric {
    /// `pci_p2pdma_distance(provider, client)`: same function → 0; a common upstream
    /// switch with no ACS redirect on the path → `BusAddr` with the port count (4 for
    /// two devices under one switch); otherwise through the host bridge, allowed only
    /// when both sit under the same whitelisted host bridge.
    pub fn p2pdma_distance(&self, provider: DeviceId, client: DeviceId) -> P2pDistance {
        let _ = (provider, client);
        todo!()
    }
}
