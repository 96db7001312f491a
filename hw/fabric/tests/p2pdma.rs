//! The kernel's pci_p2pdma rules on the default machine and variants of it, as
//! `drivers/pci/p2pdma.c` (`calc_map_type_and_dist`) decides them.

use sagrada_hw_fabric::{Fabric, P2pMapType, TopologyConfig, render_p2p_matrix};
use std::sync::Arc;

fn machine(whitelist: bool, acs: bool) -> Arc<Fabric> {
    let mut config = TopologyConfig::default_machine();
    config.set_p2p_whitelist("hb0", whitelist).unwrap();
    config.set_acs_redirect("sw0", acs).unwrap();
    Fabric::build(&config).unwrap()
}

fn verdict(fabric: &Fabric, provider: &str, client: &str) -> (P2pMapType, Option<u32>, String) {
    let d = fabric.p2pdma_distance(fabric.find(provider).unwrap(), fabric.find(client).unwrap());
    (d.map_type, d.distance, d.reason)
}

#[test]
fn two_endpoints_under_one_switch_use_bus_addresses_at_distance_4() {
    let fabric = machine(false, false);
    let (map, dist, reason) = verdict(&fabric, "accel0", "nic0");
    assert_eq!((map, dist), (P2pMapType::BusAddr, Some(4)));
    assert_eq!(
        reason,
        "accel0 and nic0 share switch sw0 (4 hops, bus addresses)"
    );
    assert_eq!(verdict(&fabric, "nic0", "accel1").0, P2pMapType::BusAddr);
}

#[test]
fn the_same_function_is_at_distance_0() {
    let fabric = machine(false, false);
    let (map, dist, _) = verdict(&fabric, "accel2", "accel2");
    assert_eq!((map, dist), (P2pMapType::BusAddr, Some(0)));
}

#[test]
fn a_non_whitelisted_host_bridge_refuses() {
    let fabric = machine(false, false);
    let (map, dist, reason) = verdict(&fabric, "accel2", "nic1");
    assert_eq!((map, dist), (P2pMapType::NotSupported, None));
    assert_eq!(
        reason,
        "accel2 and nic1 share no switch; host bridge hb0 is not on the p2pdma whitelist"
    );
    assert_eq!(
        verdict(&fabric, "accel0", "nic1").0,
        P2pMapType::NotSupported
    );
}

#[test]
fn a_whitelisted_host_bridge_allows_through_it() {
    let fabric = machine(true, false);
    let (map, dist, reason) = verdict(&fabric, "accel2", "nic1");
    // accel2, rp2 (2) + nic1, dp1, up, rp3 (4).
    assert_eq!((map, dist), (P2pMapType::ThruHostBridge, Some(6)));
    assert!(reason.contains("is on the p2pdma whitelist"), "{reason}");
    // accel0 is as deep as nic1: accel0, dp0, up, rp1 (4) + nic1, dp1, up, rp3 (4).
    assert_eq!(verdict(&fabric, "accel0", "nic1").1, Some(8));
    // A shared switch still wins.
    assert_eq!(verdict(&fabric, "accel0", "nic0").0, P2pMapType::BusAddr);
}

#[test]
fn acs_redirect_on_the_switch_sends_peers_to_the_host_bridge() {
    let fabric = machine(false, true);
    let (map, dist, reason) = verdict(&fabric, "accel0", "nic0");
    assert_eq!((map, dist), (P2pMapType::NotSupported, None));
    assert!(
        reason.contains("ACS redirect on sw0.dp0 and sw0.dp2"),
        "{reason}"
    );
    assert!(reason.contains("not on the p2pdma whitelist"), "{reason}");

    let fabric = machine(true, true);
    let (map, dist, _) = verdict(&fabric, "accel0", "nic0");
    assert_eq!((map, dist), (P2pMapType::ThruHostBridge, Some(4)));
    assert_eq!(verdict(&fabric, "accel0", "accel0").1, Some(0));
}

#[test]
fn different_host_bridges_never_peer() {
    let text = "[host]\ndram = \"1 GiB\"\n[[host_bridge]]\nname = \"hb0\"\np2p_whitelist = true\n\
                [[host_bridge]]\nname = \"hb1\"\np2p_whitelist = true\n\
                [[device]]\nname = \"a\"\nkind = \"sg1\"\nparent = \"hb0\"\n\
                [[device]]\nname = \"b\"\nkind = \"rnic\"\nparent = \"hb1\"\n";
    let fabric = Fabric::build(&TopologyConfig::from_toml_str(text).unwrap()).unwrap();
    let (map, dist, reason) = verdict(&fabric, "a", "b");
    assert_eq!((map, dist), (P2pMapType::NotSupported, None));
    assert!(reason.contains("hb0") && reason.contains("hb1"), "{reason}");
}

#[test]
fn the_matrix_covers_every_pair_and_explains_refusals() {
    let fabric = machine(false, false);
    let endpoints: Vec<_> = fabric.endpoints().map(|f| f.id).collect();
    let matrix = fabric.p2pdma_matrix(&endpoints);
    assert_eq!(matrix.len(), 8);
    for (i, row) in matrix.iter().enumerate() {
        assert_eq!(row.len(), 8);
        assert_eq!(row[i].distance, Some(0));
        for (j, d) in row.iter().enumerate() {
            assert_eq!(
                d.map_type, matrix[j][i].map_type,
                "the rules are symmetric here"
            );
        }
    }
    let text = render_p2p_matrix(&fabric);
    assert!(
        text.contains("accel2 ↔ nic1: refused: accel2 and nic1 share no switch"),
        "{text}"
    );
    assert!(!text.contains("accel0 ↔ nic0"), "{text}");
    // 28 pairs; the 6 within sw0 and the one within sw1 are allowed.
    assert_eq!(text.matches(": refused: ").count(), 21, "{text}");

    let text = render_p2p_matrix(&machine(true, false));
    assert!(text.contains("4 hb"), "{text}");
    assert!(
        text.contains("accel2 ↔ nic1: through the host bridge"),
        "{text}"
    );
}
