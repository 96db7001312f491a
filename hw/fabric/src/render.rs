//! Text views of a fabric for a terminal (`sagrada topo`): the PCI tree, like
//! `lspci -tv` with the addresses a driver developer needs, and the p2pdma matrix.
//!
//! Output is deterministic: the same machine prints the same text.

use std::fmt::Write as _;

use crate::topology::{BarKind, EndpointKind, FunctionKind};
use crate::units::{format_bandwidth, format_size};
use crate::{DeviceId, Fabric, P2pMapType, PciFunction};

/// A short description of a function's role.
fn role(f: &PciFunction) -> &'static str {
    match f.kind {
        FunctionKind::RootPort => "root port",
        FunctionKind::SwitchUpstream => "switch upstream port",
        FunctionKind::SwitchDownstream => "switch downstream port",
        FunctionKind::Endpoint(EndpointKind::Sg1) => "SG1 accelerator",
        FunctionKind::Endpoint(EndpointKind::Rnic) => "RDMA NIC",
        FunctionKind::Endpoint(EndpointKind::Generic) => "endpoint",
        FunctionKind::Endpoint(EndpointKind::Importer) => "DMA test importer",
    }
}

fn address_range(base: u64, size: u64) -> String {
    format!("0x{base:012x}-0x{:012x}", base + size - 1)
}

fn describe(fabric: &Fabric, f: &PciFunction) -> String {
    let mut line = format!(
        "{} {} — {} [{:04x}:{:04x}]",
        f.bdf,
        f.name,
        role(f),
        f.vendor_id,
        f.device_id
    );
    if matches!(f.kind, FunctionKind::Endpoint(_)) {
        let _ = write!(line, " class {:06x}", f.class_code);
    }
    if let Some(link) = f.link.and_then(|l| fabric.link(l)) {
        let _ = write!(
            line,
            ", {} ({})",
            link.spec,
            format_bandwidth(link.spec.bandwidth())
        );
    }
    if let Some(w) = &f.window {
        let _ = write!(
            line,
            ", buses {:02x}-{:02x}",
            w.secondary_bus, w.subordinate_bus
        );
    }
    if f.acs_redirect {
        line.push_str(", ACS redirect");
    }
    line
}

fn render_node(fabric: &Fabric, out: &mut String, id: DeviceId, prefix: &str, last: bool) {
    let f = fabric.function(id);
    let branch = if last { "└── " } else { "├── " };
    let _ = writeln!(out, "{prefix}{branch}{}", describe(fabric, f));
    let below = format!("{prefix}{}", if last { "    " } else { "│   " });
    let children = fabric.children(id);
    let detail = if children.is_empty() {
        format!("{below}    ")
    } else {
        format!("{below}│   ")
    };
    if let Some(w) = &f.window {
        match w.memory {
            Some((base, size)) => {
                let _ = writeln!(
                    out,
                    "{detail}window {}  {}",
                    address_range(base.raw(), size),
                    format_size(size)
                );
            }
            None => {
                let _ = writeln!(out, "{detail}no memory window");
            }
        }
    }
    for bar in &f.bars {
        let _ = writeln!(
            out,
            "{detail}BAR{}   {}  {:<8} {:<6}  {} {}",
            bar.index,
            address_range(bar.bus.raw(), bar.size),
            format_size(bar.size),
            match bar.kind {
                BarKind::Memory => "memory",
                BarKind::Mmio => "mmio",
            },
            if bar.is_64bit { "64-bit" } else { "32-bit" },
            if bar.prefetchable {
                "prefetchable"
            } else {
                "non-prefetchable"
            },
        );
    }
    for (i, &child) in children.iter().enumerate() {
        render_node(fabric, out, child, &below, i + 1 == children.len());
    }
}

/// The PCI tree: host bridges, root ports, switch ports and endpoints with BDF, name,
/// role, vendor:device, class, link speed and width, bus ranges and windows of
/// bridges, and every BAR with its bus address range, size and attributes.
pub fn render_tree(fabric: &Fabric) -> String {
    let mut out = String::new();
    let dram = fabric.host_dram();
    let _ = writeln!(
        out,
        "host DRAM {} at {} ({})",
        format_size(dram.len),
        address_range(dram.start.raw(), dram.len),
        format_bandwidth(fabric.host_dram_bandwidth())
    );
    for hb in fabric.host_bridges() {
        let _ = writeln!(
            out,
            "{} — host bridge, segment {:04x}, IOMMU {}, {} the p2pdma whitelist",
            hb.name,
            hb.segment,
            if hb.iommu_translates {
                "translating"
            } else {
                "passthrough"
            },
            if hb.p2p_whitelisted { "on" } else { "not on" },
        );
        for (i, &rp) in hb.root_ports.iter().enumerate() {
            render_node(fabric, &mut out, rp, "", i + 1 == hb.root_ports.len());
        }
    }
    out
}

/// The p2pdma distance matrix over all endpoints (row: provider, column: client),
/// followed by one line per pair that is refused or goes through a host bridge,
/// saying why.
pub fn render_p2p_matrix(fabric: &Fabric) -> String {
    let devices: Vec<DeviceId> = fabric.endpoints().map(|f| f.id).collect();
    let names: Vec<&str> = devices
        .iter()
        .map(|&d| fabric.function(d).name.as_str())
        .collect();
    let matrix = fabric.p2pdma_matrix(&devices);
    let cell = |i: usize, j: usize| {
        let d = &matrix[i][j];
        match (d.map_type, d.distance) {
            (P2pMapType::BusAddr, Some(n)) => n.to_string(),
            (P2pMapType::ThruHostBridge, Some(n)) => format!("{n} hb"),
            _ => "-".to_owned(),
        }
    };
    let first = names
        .iter()
        .map(|n| n.len())
        .max()
        .unwrap_or(0)
        .max("provider".len());
    let widths: Vec<usize> = (0..devices.len())
        .map(|j| {
            (0..devices.len())
                .map(|i| cell(i, j).len())
                .max()
                .unwrap_or(0)
                .max(names[j].len())
        })
        .collect();

    let mut out = String::new();
    out.push_str("p2pdma distance from provider (row) to client (column):\n");
    out.push_str("  n = through a switch with bus addresses, n hops; n hb = through the host bridge; - = refused\n\n");
    let _ = write!(out, "{:<first$}", "provider");
    for (j, name) in names.iter().enumerate() {
        let _ = write!(out, "  {:>w$}", name, w = widths[j]);
    }
    out.push('\n');
    for (i, name) in names.iter().enumerate() {
        let _ = write!(out, "{name:<first$}");
        for (j, width) in widths.iter().enumerate() {
            let _ = write!(out, "  {:>width$}", cell(i, j));
        }
        out.push('\n');
    }

    let mut notes = Vec::new();
    for i in 0..devices.len() {
        for j in 0..devices.len() {
            let d = &matrix[i][j];
            // The rules are symmetric on these trees; print a pair once unless its two
            // directions disagree.
            if j < i && matrix[j][i].map_type == d.map_type {
                continue;
            }
            let verdict = match d.map_type {
                P2pMapType::BusAddr => continue,
                P2pMapType::ThruHostBridge => "through the host bridge",
                P2pMapType::NotSupported => "refused",
            };
            let arrow = if matrix[j][i].map_type == d.map_type {
                "↔"
            } else {
                "→"
            };
            notes.push(format!(
                "  {} {arrow} {}: {verdict}: {}",
                names[i], names[j], d.reason
            ));
        }
    }
    if !notes.is_empty() {
        out.push_str("\nNot through a switch:\n");
        for note in notes {
            out.push_str(&note);
            out.push('\n');
        }
    }
    out
}
