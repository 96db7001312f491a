//! The kernel's peer-to-peer DMA rules (`drivers/pci/p2pdma.c`) over this topology.
//!
//! [`Fabric::p2pdma_distance`] follows `calc_map_type_and_dist`: walk up from the
//! provider; for each bridge on the way, walk up from the client looking for it. The
//! first common bridge gives the distance (ports from each side to it). ACS P2P
//! Request Redirect on the provider's way up, or on the client's way up below the
//! common bridge, sends the traffic to the root complex even though a switch is
//! shared. Without a usable common switch, traffic goes through the host bridge,
//! which the kernel allows only for host bridges on its whitelist (this model has no
//! "CPU supports p2pdma" exception and never allows crossing host bridges).

use crate::{DeviceId, Fabric, FunctionKind};

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
    /// The switch (or other bridge) a function belongs to, for messages: "sw0" for
    /// "sw0.up" and "sw0.dp2".
    fn bridge_label(&self, id: DeviceId) -> String {
        let f = self.function(id);
        match f.kind {
            FunctionKind::SwitchUpstream | FunctionKind::SwitchDownstream => f
                .name
                .rsplit_once('.')
                .map_or(f.name.clone(), |(switch, _)| switch.to_owned()),
            _ => f.name.clone(),
        }
    }

    /// `pci_p2pdma_distance(provider, client)`: same function → 0; a common upstream
    /// switch with no ACS redirect on the path → `BusAddr` with the port count (4 for
    /// two devices under one switch); otherwise through the host bridge, allowed only
    /// when both sit under the same whitelisted host bridge.
    ///
    /// # Panics
    ///
    /// On an id this fabric did not hand out (as [`Fabric::function`]).
    pub fn p2pdma_distance(&self, provider: DeviceId, client: DeviceId) -> P2pDistance {
        let up = |id: DeviceId| self.function(id).upstream_bridge;
        let p = &self.function(provider).name;
        let c = &self.function(client).name;

        let mut acs: Vec<DeviceId> = Vec::new();
        let mut dist_a = 0u32;
        let mut dist_b = 0u32;
        let mut common = None;
        let mut a = Some(provider);
        'provider: while let Some(at) = a {
            dist_b = 0;
            if self.function(at).acs_redirect {
                acs.push(at);
            }
            let mut bb = Some(client);
            while let Some(b) = bb {
                if b == at {
                    common = Some(at);
                    break 'provider;
                }
                bb = up(b);
                dist_b += 1;
            }
            a = up(at);
            dist_a += 1;
        }
        let distance = dist_a + dist_b;

        if let Some(common) = common {
            let mut bb = Some(client);
            while let Some(b) = bb {
                if b == common {
                    break;
                }
                if self.function(b).acs_redirect {
                    acs.push(b);
                }
                bb = up(b);
            }
            if provider == client {
                return P2pDistance {
                    map_type: P2pMapType::BusAddr,
                    distance: Some(0),
                    reason: format!("{p} is both provider and client (distance 0)"),
                };
            }
            if acs.is_empty() {
                return P2pDistance {
                    map_type: P2pMapType::BusAddr,
                    distance: Some(distance),
                    reason: format!(
                        "{p} and {c} share switch {} ({distance} hops, bus addresses)",
                        self.bridge_label(common)
                    ),
                };
            }
        }

        let shared = match common {
            Some(common) => {
                let ports: Vec<&str> = acs
                    .iter()
                    .map(|&id| self.function(id).name.as_str())
                    .collect();
                format!(
                    "{p} and {c} share switch {}, but ACS redirect on {} sends their traffic up to the \
                     root complex",
                    self.bridge_label(common),
                    join_and(&ports)
                )
            }
            None => format!("{p} and {c} share no switch"),
        };
        let hb_p = self.function(provider).host_bridge;
        let hb_c = self.function(client).host_bridge;
        let hb = &self.host_bridges[hb_p.0 as usize];
        if hb_p != hb_c {
            let other = &self.host_bridges[hb_c.0 as usize];
            return P2pDistance {
                map_type: P2pMapType::NotSupported,
                distance: None,
                reason: format!(
                    "{p} is under host bridge {} and {c} under {}; p2pdma does not cross host bridges",
                    hb.name, other.name
                ),
            };
        }
        if hb.p2p_whitelisted {
            P2pDistance {
                map_type: P2pMapType::ThruHostBridge,
                distance: Some(distance),
                reason: format!(
                    "{shared}; host bridge {} is on the p2pdma whitelist, so they go through it \
                     ({distance} hops, IOMMU mappings)",
                    hb.name
                ),
            }
        } else {
            P2pDistance {
                map_type: P2pMapType::NotSupported,
                distance: None,
                reason: format!(
                    "{shared}; host bridge {} is not on the p2pdma whitelist",
                    hb.name
                ),
            }
        }
    }

    /// [`Fabric::p2pdma_distance`] for every pair: row = provider, column = client.
    pub fn p2pdma_matrix(&self, devices: &[DeviceId]) -> Vec<Vec<P2pDistance>> {
        devices
            .iter()
            .map(|&provider| {
                devices
                    .iter()
                    .map(|&client| self.p2pdma_distance(provider, client))
                    .collect()
            })
            .collect()
    }
}

/// "a", "a and b", "a, b and c".
fn join_and(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_read_as_sentences() {
        assert_eq!(join_and(&["a"]), "a");
        assert_eq!(join_and(&["a", "b"]), "a and b");
        assert_eq!(join_and(&["a", "b", "c"]), "a, b and c");
    }
}
