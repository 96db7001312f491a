//! The machine description: a small TOML file, and the built-in default machine.
//!
//! Format (flat tables that name their parent):
//!
//! ```toml
//! [host]
//! dram = "4 GiB"
//! dram_bandwidth = "51.2 GB/s"
//! dram_latency = "90 ns"        # optional
//!
//! [[host_bridge]]
//! name = "hb0"
//! p2p_whitelist = false      # the kernel's pci_p2pdma host bridge whitelist
//! iommu = "translate"        # or "passthrough"
//! p2p_bandwidth = "12 GB/s"  # optional: how fast the root complex forwards peer-to-peer
//! latency = "200 ns"         # optional: one traversal of the root complex
//!
//! [[switch]]
//! name = "sw0"
//! parent = "hb0"             # a host bridge (gets its own root port) or a switch
//! link = "gen4 x16"
//! acs_redirect = false
//! latency = "100 ns"         # optional: one crossing of the switch
//!
//! [[device]]
//! name = "accel0"
//! kind = "sg1"               # "sg1", "rnic" or "endpoint" (with explicit bars)
//! parent = "sw0"
//! link = "gen4 x16"
//! hbm = "1 GiB"              # sg1 only
//!
//! [[device]]
//! name = "probe0"
//! kind = "endpoint"
//! parent = "hb0"
//! link = "gen3 x4"
//! bars = [{ index = 0, size = "64 KiB", kind = "mmio" },
//!         { index = 2, size = "16 MiB", kind = "memory", prefetchable = true }]
//! ```
//!
//! Sizes are strings such as `"4 GiB"`, `"512 KiB"` or `"4096"` (or plain integers);
//! bandwidths are `"51.2 GB/s"`; latencies `"90 ns"`. Every child of a host bridge gets
//! a root port of its own, every child of a switch a downstream port, in the order the
//! entries appear in the file. All BARs are 64-bit (they live above 4 GiB), so a BAR
//! takes two of the six BAR slots and its index is 0 to 4.
//!
//! Every error names the table (`device "accel3"`), the key, the line and column in the
//! text, and the offending value. A description is checked completely before anything
//! is built; parsing never panics, whatever the input.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;

use serde::Deserialize;
use serde::de::{self, Visitor};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::PAGE_SIZE;
use crate::topology::{BarKind, EndpointKind, LinkSpec};
use crate::units;

/// The default machine as TOML: copy it and edit it to describe another machine.
///
/// One host bridge `hb0` (not on the p2pdma whitelist, IOMMU translating). Root port 1
/// leads to switch `sw0` with `accel0`, `accel1` (SG1s), `nic0` (RDMA NIC) and `imp0`
/// (DMA test importer) below it; root port 2 to `accel2`; root port 3 to switch `sw1`
/// with `accel3` and `nic1` (an accelerator beside each NIC, as in GPU servers, so an
/// RDMA transfer nic0 → nic1 lands in accel3's HBM through sw1); root port 4 to `imp1`.
/// So peer-to-peer through a switch and peer-to-peer through the root complex both
/// exist, for the NICs and for the test importers that stand in for them.
pub const DEFAULT_MACHINE_TOML: &str = r#"# The default sagrada machine.
#
# hb0 ─┬─ rp1 ── sw0 ─┬─ accel0 (SG1)
#      │              ├─ accel1 (SG1)
#      │              ├─ nic0   (RDMA NIC)
#      │              └─ imp0   (DMA test importer)
#      ├─ rp2 ── accel2 (SG1)
#      ├─ rp3 ── sw1 ─┬─ accel3 (SG1)
#      │              └─ nic1   (RDMA NIC)
#      └─ rp4 ── imp1   (DMA test importer)

[host]
dram = "4 GiB"
dram_bandwidth = "51.2 GB/s"
dram_latency = "90 ns"

[[host_bridge]]
name = "hb0"
p2p_whitelist = false
iommu = "translate"
p2p_bandwidth = "12 GB/s"
latency = "200 ns"

[[switch]]
name = "sw0"
parent = "hb0"
link = "gen4 x16"
acs_redirect = false
latency = "100 ns"

[[device]]
name = "accel0"
kind = "sg1"
parent = "sw0"
link = "gen4 x16"
hbm = "1 GiB"

[[device]]
name = "accel1"
kind = "sg1"
parent = "sw0"
link = "gen4 x16"
hbm = "1 GiB"

[[device]]
name = "nic0"
kind = "rnic"
parent = "sw0"
link = "gen4 x16"

[[device]]
name = "imp0"
kind = "importer"
parent = "sw0"
link = "gen4 x8"

[[device]]
name = "accel2"
kind = "sg1"
parent = "hb0"
link = "gen4 x16"
hbm = "1 GiB"

[[switch]]
name = "sw1"
parent = "hb0"
link = "gen4 x16"
acs_redirect = false
latency = "100 ns"

[[device]]
name = "accel3"
kind = "sg1"
parent = "sw1"
link = "gen4 x16"
hbm = "1 GiB"

[[device]]
name = "nic1"
kind = "rnic"
parent = "sw1"
link = "gen4 x16"

[[device]]
name = "imp1"
kind = "importer"
parent = "hb0"
link = "gen4 x8"
"#;

/// Host DRAM bandwidth when the description does not give one.
const DEFAULT_DRAM_BANDWIDTH: f64 = 51.2e9;
/// Host DRAM access latency when the description does not give one.
const DEFAULT_DRAM_LATENCY_NS: u64 = 90;
/// Root complex forwarding bandwidth for peer-to-peer when not given: root-complex p2p
/// is often much slower than switch p2p, which is why `pci_p2pdma_distance` matters.
const DEFAULT_RC_P2P_BANDWIDTH: f64 = 12e9;
/// One traversal of a root complex (IOMMU lookup and forwarding).
const DEFAULT_RC_LATENCY_NS: u64 = 200;
/// One crossing of a switch.
const DEFAULT_SWITCH_LATENCY_NS: u64 = 100;
/// The SG1's HBM when the description does not size it.
const DEFAULT_HBM: u64 = 1 << 30;
/// Register BARs of the SG1 and the NIC.
const REGISTER_BAR_SIZE: u64 = 1 << 20;
/// BAR0 of the DMA test importer: a page of registers.
const IMPORTER_BAR_SIZE: u64 = 4096;
/// Largest BAR this model accepts; keeps every sum of BARs far from overflow.
const MAX_BAR_SIZE: u64 = 1 << 40;
/// Root ports are devices 1 to 31 on bus 0 (device 0 is the host bridge itself).
pub(crate) const MAX_ROOT_PORTS: usize = 31;
/// Switch downstream ports are devices 0 to 31 on the switch's internal bus.
pub(crate) const MAX_SWITCH_PORTS: usize = 32;

/// Where an entry of the description is, for errors found after parsing.
#[derive(Clone, Debug)]
pub(crate) struct Place {
    /// `device "accel0"`, `switch "sw0"`, `host_bridge "hb0"`.
    pub(crate) table: String,
    /// Line and column (1-based) of the entry's name.
    pub(crate) line_column: (usize, usize),
}

/// The host: DRAM size and speed.
#[derive(Clone, Debug)]
pub(crate) struct HostConfig {
    pub(crate) dram: u64,
    pub(crate) dram_bandwidth: f64,
    pub(crate) dram_latency_ns: u64,
}

/// One host bridge.
#[derive(Clone, Debug)]
pub(crate) struct HostBridgeConfig {
    pub(crate) name: String,
    pub(crate) place: Place,
    pub(crate) p2p_whitelist: bool,
    pub(crate) iommu_translates: bool,
    pub(crate) p2p_bandwidth: f64,
    pub(crate) latency_ns: u64,
}

/// What a switch or device hangs from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum ParentRef {
    /// Index into `host_bridges`: the child gets a root port.
    HostBridge(usize),
    /// Index into `switches`: the child gets a downstream port.
    Switch(usize),
}

/// One switch.
#[derive(Clone, Debug)]
pub(crate) struct SwitchConfig {
    pub(crate) name: String,
    pub(crate) place: Place,
    pub(crate) parent: ParentRef,
    pub(crate) link: LinkSpec,
    pub(crate) acs_redirect: bool,
    pub(crate) latency_ns: u64,
    /// Position in the file: siblings get ports in this order.
    pub(crate) order: usize,
}

/// One BAR of an endpoint.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BarConfig {
    pub(crate) index: u8,
    pub(crate) size: u64,
    pub(crate) kind: BarKind,
    pub(crate) prefetchable: bool,
}

/// One endpoint.
#[derive(Clone, Debug)]
pub(crate) struct DeviceConfig {
    pub(crate) name: String,
    pub(crate) place: Place,
    pub(crate) kind: EndpointKind,
    pub(crate) parent: ParentRef,
    pub(crate) link: LinkSpec,
    pub(crate) bars: Vec<BarConfig>,
    pub(crate) order: usize,
}

/// A parsed and checked machine description (see the module documentation).
///
/// A description that parses has names that resolve, no cycles, legal links and BAR
/// sizes; [`crate::Fabric::build`] can still refuse it when the machine does not fit
/// (bus numbers or the MMIO space run out).
#[derive(Clone, Debug)]
pub struct TopologyConfig {
    pub(crate) host: HostConfig,
    pub(crate) host_bridges: Vec<HostBridgeConfig>,
    pub(crate) switches: Vec<SwitchConfig>,
    pub(crate) devices: Vec<DeviceConfig>,
}

/// A description that cannot be parsed or built, with the place and the offending value.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ConfigError {
    message: String,
    table: Option<String>,
    key: Option<String>,
    line_column: Option<(usize, usize)>,
}

impl ConfigError {
    /// An error with as much of its place as is known.
    pub(crate) fn new(
        table: Option<String>,
        key: Option<&str>,
        line_column: Option<(usize, usize)>,
        problem: impl fmt::Display,
    ) -> Self {
        let mut message = String::new();
        if let Some(table) = &table {
            message.push_str(table);
        }
        if let Some(key) = key {
            if !message.is_empty() {
                message.push_str(", ");
            }
            message.push_str(&format!("key \"{key}\""));
        }
        if let Some((line, column)) = line_column {
            if message.is_empty() {
                message.push_str(&format!("line {line}:{column}"));
            } else {
                message.push_str(&format!(" (line {line}:{column})"));
            }
        }
        if message.is_empty() {
            message = problem.to_string();
        } else {
            message.push_str(&format!(": {problem}"));
        }
        Self {
            message,
            table,
            key: key.map(str::to_owned),
            line_column,
        }
    }

    /// An error at a span of the TOML text.
    fn at(
        text: &str,
        span: Range<usize>,
        table: &str,
        key: Option<&str>,
        problem: impl fmt::Display,
    ) -> Self {
        Self::new(
            Some(table.to_owned()),
            key,
            Some(line_column(text, span.start)),
            problem,
        )
    }

    /// An error about an entry found after parsing (while building).
    pub(crate) fn placed(place: &Place, key: Option<&str>, problem: impl fmt::Display) -> Self {
        Self::new(
            Some(place.table.clone()),
            key,
            Some(place.line_column),
            problem,
        )
    }

    /// An error that belongs to no entry.
    pub(crate) fn general(problem: impl fmt::Display) -> Self {
        Self::new(None, None, None, problem)
    }

    /// The table the error is in, as the message names it (`device "accel3"`, `[host]`).
    pub fn table(&self) -> Option<&str> {
        self.table.as_deref()
    }

    /// The key the error is about.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// Line and column (both from 1) in the TOML text.
    pub fn line_column(&self) -> Option<(usize, usize)> {
        self.line_column
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

// ---------------------------------------------------------------------------------
// The TOML shape, as serde sees it. Values that need a unit or a choice are kept as
// spanned text and checked afterwards, so every message can carry the place.

/// A size, bandwidth or latency: text with a unit, or a bare number.
#[derive(Clone, Debug)]
enum Quantity {
    Int(i64),
    Float(f64),
    Text(String),
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct QuantityVisitor;
        impl Visitor<'_> for QuantityVisitor {
            type Value = Quantity;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a quantity such as \"4 GiB\", \"51.2 GB/s\", \"90 ns\" or a number")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Quantity, E> {
                Ok(Quantity::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Quantity, E> {
                i64::try_from(v)
                    .map(Quantity::Int)
                    .map_err(|_| E::custom(format!("{v} is too large")))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Quantity, E> {
                Ok(Quantity::Float(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Quantity, E> {
                Ok(Quantity::Text(v.to_owned()))
            }
        }
        deserializer.deserialize_any(QuantityVisitor)
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Int(v) => write!(f, "{v}"),
            Self::Float(v) => write!(f, "{v}"),
            Self::Text(t) => write!(f, "\"{t}\""),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMachine {
    host: Option<Spanned<RawHost>>,
    #[serde(default)]
    host_bridge: Vec<Spanned<RawHostBridge>>,
    #[serde(default)]
    switch: Vec<Spanned<RawSwitch>>,
    #[serde(default)]
    device: Vec<Spanned<RawDevice>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHost {
    dram: Spanned<Quantity>,
    dram_bandwidth: Option<Spanned<Quantity>>,
    dram_latency: Option<Spanned<Quantity>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHostBridge {
    name: Spanned<String>,
    p2p_whitelist: Option<bool>,
    iommu: Option<Spanned<String>>,
    p2p_bandwidth: Option<Spanned<Quantity>>,
    latency: Option<Spanned<Quantity>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSwitch {
    name: Spanned<String>,
    parent: Spanned<String>,
    link: Option<Spanned<String>>,
    acs_redirect: Option<bool>,
    latency: Option<Spanned<Quantity>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDevice {
    name: Spanned<String>,
    kind: Spanned<String>,
    parent: Spanned<String>,
    link: Option<Spanned<String>>,
    hbm: Option<Spanned<Quantity>>,
    bars: Option<Spanned<Vec<Spanned<RawBar>>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBar {
    index: Spanned<i64>,
    size: Spanned<Quantity>,
    kind: Option<Spanned<String>>,
    prefetchable: Option<bool>,
}

// ---------------------------------------------------------------------------------
// Placing serde's errors: serde knows the span but not which entry it is in.

/// Finds the table and key around a byte offset, using toml's spanned document tree.
fn locate(text: &str, offset: usize) -> (Option<String>, Option<String>) {
    let Ok(doc) = DeTable::parse(text) else {
        return (header_before(text, offset), None);
    };
    for (section, value) in doc.get_ref().iter() {
        let section_name = section.get_ref().as_ref();
        match value.get_ref() {
            DeValue::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let Some(table) = item.get_ref().as_table() else {
                        continue;
                    };
                    if let Some(found) = locate_in_table(table, item.span(), offset) {
                        return (Some(describe_entry(section_name, table, i)), found);
                    }
                }
                if contains(section.span().start..value.span().end, offset) {
                    return (None, Some(section_name.to_owned()));
                }
            }
            DeValue::Table(table) => {
                if let Some(found) = locate_in_table(table, section.span(), offset) {
                    return (Some(format!("[{section_name}]")), found);
                }
            }
            _ => {
                if contains(section.span().start..value.span().end, offset) {
                    return (None, Some(section_name.to_owned()));
                }
            }
        }
    }
    (header_before(text, offset), None)
}

fn contains(range: Range<usize>, offset: usize) -> bool {
    range.start <= offset && offset < range.end.max(range.start + 1)
}

/// `Some(key)` when `offset` lies in the table that starts at `header`.
fn locate_in_table(
    table: &DeTable<'_>,
    header: Range<usize>,
    offset: usize,
) -> Option<Option<String>> {
    let mut start = header.start;
    let mut end = header.end;
    let mut key_at = None;
    for (key, value) in table.iter() {
        start = start.min(key.span().start);
        end = end.max(value.span().end);
        if contains(key.span().start..value.span().end, offset) {
            key_at = Some(key.get_ref().to_string());
        }
    }
    contains(start..end, offset).then_some(key_at)
}

/// `device "accel0"`, or `device #2` for an entry without a usable name.
fn describe_entry(section: &str, table: &DeTable<'_>, index: usize) -> String {
    match table.get("name").and_then(|n| n.get_ref().as_str()) {
        Some(name) => format!("{section} \"{name}\""),
        None => format!("{section} #{}", index + 1),
    }
}

/// The last `[table]` header above an offset, for syntax errors.
fn header_before(text: &str, offset: usize) -> Option<String> {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    text[..offset]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.split('#').next().unwrap_or(l).trim().to_owned())
}

fn serde_error(text: &str, err: &toml::de::Error) -> ConfigError {
    let message = err.message().trim_end().to_owned();
    match err.span() {
        Some(span) => {
            let (table, key) = locate(text, span.start);
            ConfigError::new(
                table,
                key.as_deref(),
                Some(line_column(text, span.start)),
                message,
            )
        }
        None => ConfigError::general(message),
    }
}

// ---------------------------------------------------------------------------------
// Checking values.

/// Checks values with the text at hand, so every error gets its line and column.
struct Checker<'a> {
    text: &'a str,
}

impl Checker<'_> {
    fn err(
        &self,
        span: Range<usize>,
        table: &str,
        key: &str,
        problem: impl fmt::Display,
    ) -> ConfigError {
        ConfigError::at(self.text, span, table, Some(key), problem)
    }

    fn place(&self, table: &str, span: Range<usize>) -> Place {
        Place {
            table: table.to_owned(),
            line_column: line_column(self.text, span.start),
        }
    }

    fn size(&self, q: &Spanned<Quantity>, table: &str, key: &str) -> Result<u64, ConfigError> {
        match q.get_ref() {
            Quantity::Int(v) => u64::try_from(*v)
                .map_err(|_| self.err(q.span(), table, key, format!("size {v} is negative"))),
            Quantity::Float(v) => Err(self.err(
                q.span(),
                table,
                key,
                format!("size {v} is not a whole number of bytes; write it as \"4 GiB\" or 4096"),
            )),
            Quantity::Text(t) => {
                units::parse_size(t).map_err(|e| self.err(q.span(), table, key, e))
            }
        }
    }

    fn bandwidth(&self, q: &Spanned<Quantity>, table: &str, key: &str) -> Result<f64, ConfigError> {
        let value = match q.get_ref() {
            Quantity::Int(v) => *v as f64,
            Quantity::Float(v) => *v,
            Quantity::Text(t) => {
                return units::parse_bandwidth(t).map_err(|e| self.err(q.span(), table, key, e));
            }
        };
        if value.is_finite() && value > 0.0 {
            Ok(value)
        } else {
            Err(self.err(
                q.span(),
                table,
                key,
                format!("bandwidth {} must be greater than zero", q.get_ref()),
            ))
        }
    }

    fn latency(&self, q: &Spanned<Quantity>, table: &str, key: &str) -> Result<u64, ConfigError> {
        match q.get_ref() {
            Quantity::Int(v) if (0..=1_000_000_000).contains(v) => Ok(*v as u64),
            Quantity::Text(t) => {
                units::parse_latency(t).map_err(|e| self.err(q.span(), table, key, e))
            }
            other => Err(self.err(
                q.span(),
                table,
                key,
                format!("latency {other} is not a whole number of nanoseconds up to a second"),
            )),
        }
    }

    fn link(&self, link: Option<&Spanned<String>>, table: &str) -> Result<LinkSpec, ConfigError> {
        match link {
            Some(l) => {
                units::parse_link(l.get_ref()).map_err(|e| self.err(l.span(), table, "link", e))
            }
            None => units::parse_link("gen4 x16").map_err(ConfigError::general),
        }
    }

    /// The BARs of a generic endpoint, sorted by index.
    fn bars(
        &self,
        bars: Option<&Spanned<Vec<Spanned<RawBar>>>>,
        table: &str,
    ) -> Result<Vec<BarConfig>, ConfigError> {
        let Some(bars) = bars else {
            return Ok(Vec::new());
        };
        let mut out: Vec<BarConfig> = Vec::new();
        for bar in bars.get_ref() {
            let b = bar.get_ref();
            let index = *b.index.get_ref();
            if !(0..=4).contains(&index) {
                return Err(self.err(
                    b.index.span(),
                    table,
                    "bars",
                    format!(
                        "BAR index {index} is out of range: BARs are 64-bit and take two of the six \
                         slots, so an index is 0 to 4"
                    ),
                ));
            }
            let index = index as u8;
            if let Some(other) = out.iter().find(|o| o.index.abs_diff(index) < 2) {
                return Err(self.err(
                    b.index.span(),
                    table,
                    "bars",
                    format!(
                        "BAR index {index} collides with BAR{}, which takes slots {} and {}",
                        other.index,
                        other.index,
                        other.index + 1
                    ),
                ));
            }
            let size = self.bar_size(
                &b.size,
                table,
                "bars",
                &format!("BAR{index} size"),
                "a BAR's size must be a power of two",
            )?;
            let kind = match b.kind.as_ref().map(|k| (k.get_ref().as_str(), k.span())) {
                None | Some(("memory", _)) => BarKind::Memory,
                Some(("mmio", _)) => BarKind::Mmio,
                Some((other, span)) => {
                    return Err(self.err(
                        span,
                        table,
                        "bars",
                        format!("\"{other}\" is not a BAR kind; use \"memory\" or \"mmio\""),
                    ));
                }
            };
            out.push(BarConfig {
                index,
                size,
                kind,
                prefetchable: b.prefetchable.unwrap_or(false),
            });
        }
        out.sort_by_key(|b| b.index);
        Ok(out)
    }

    /// A BAR size: a power of two from a page to [`MAX_BAR_SIZE`]. `what` names the
    /// size in messages ("HBM", "BAR0 size"), `why` says why it must be a power of two.
    fn bar_size(
        &self,
        q: &Spanned<Quantity>,
        table: &str,
        key: &str,
        what: &str,
        why: &str,
    ) -> Result<u64, ConfigError> {
        let size = self.size(q, table, key)?;
        let value = q.get_ref();
        let problem = if size == 0 {
            Some(format!("{what} {value} must not be zero"))
        } else if !size.is_power_of_two() {
            Some(format!(
                "{what} {value} ({size} bytes) is not a power of two; {why}"
            ))
        } else if size < PAGE_SIZE {
            Some(format!(
                "{what} {value} is smaller than a page ({PAGE_SIZE} bytes)"
            ))
        } else if size > MAX_BAR_SIZE {
            Some(format!(
                "{what} {value} is larger than the 1 TiB this model allows for a BAR"
            ))
        } else {
            None
        };
        match problem {
            Some(p) => Err(self.err(q.span(), table, key, p)),
            None => Ok(size),
        }
    }
}

/// Names become parts of port names ("sw0.dp1") and are looked up by `Fabric::find`,
/// so they are kept plain.
fn name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("a name must not be empty".to_owned());
    }
    if name.len() > 32 {
        return Some(format!("name \"{name}\" is longer than 32 characters"));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Some(format!("name \"{name}\" must start with a letter"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Some(format!(
            "name \"{name}\" may contain only letters, digits, '_' and '-'"
        ));
    }
    None
}

#[derive(Clone, Copy)]
enum NameKind {
    HostBridge(usize),
    Switch(usize),
    Device,
}

impl TopologyConfig {
    /// Parses a TOML description.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        let raw: RawMachine = toml::from_str(text).map_err(|e| serde_error(text, &e))?;
        let c = Checker { text };

        // [host]
        let Some(host) = raw.host else {
            return Err(ConfigError::new(
                Some("[host]".to_owned()),
                None,
                Some((1, 1)),
                "the description has no [host] table (it needs at least `dram = \"4 GiB\"`)",
            ));
        };
        let host_span = host.span();
        let host = host.into_inner();
        let t = "[host]";
        let dram = c.size(&host.dram, t, "dram")?;
        if dram == 0 || dram % PAGE_SIZE != 0 {
            return Err(c.err(
                host.dram.span(),
                t,
                "dram",
                format!(
                    "host DRAM of {} must be a non-zero multiple of {PAGE_SIZE} bytes",
                    host.dram.get_ref()
                ),
            ));
        }
        if dram > crate::MSI_BASE {
            return Err(c.err(
                host.dram.span(),
                t,
                "dram",
                format!(
                    "host DRAM of {} does not fit below the interrupt window and MMIO space at {:#x} ({})",
                    host.dram.get_ref(),
                    crate::MSI_BASE,
                    units::format_size(crate::MSI_BASE)
                ),
            ));
        }
        let host = HostConfig {
            dram,
            dram_bandwidth: match &host.dram_bandwidth {
                Some(q) => c.bandwidth(q, t, "dram_bandwidth")?,
                None => DEFAULT_DRAM_BANDWIDTH,
            },
            dram_latency_ns: match &host.dram_latency {
                Some(q) => c.latency(q, t, "dram_latency")?,
                None => DEFAULT_DRAM_LATENCY_NS,
            },
        };

        let mut names: HashMap<String, (NameKind, Range<usize>)> = HashMap::new();
        let mut claim =
            |name: &Spanned<String>, table: &str, kind: NameKind| -> Result<(), ConfigError> {
                if let Some(problem) = name_problem(name.get_ref()) {
                    return Err(c.err(name.span(), table, "name", problem));
                }
                if let Some((_, earlier)) = names.get(name.get_ref()) {
                    let (line, column) = line_column(text, earlier.start);
                    return Err(c.err(
                        name.span(),
                        table,
                        "name",
                        format!(
                            "the name \"{}\" is already used at line {line}:{column}",
                            name.get_ref()
                        ),
                    ));
                }
                names.insert(name.get_ref().clone(), (kind, name.span()));
                Ok(())
            };

        // [[host_bridge]]
        if raw.host_bridge.is_empty() {
            return Err(ConfigError::new(
                None,
                Some("host_bridge"),
                Some(line_column(text, host_span.start)),
                "the description has no [[host_bridge]]; a machine needs at least one",
            ));
        }
        let mut host_bridges = Vec::new();
        for (i, hb) in raw.host_bridge.into_iter().enumerate() {
            let hb = hb.into_inner();
            let t = format!("host_bridge \"{}\"", hb.name.get_ref());
            claim(&hb.name, &t, NameKind::HostBridge(i))?;
            let iommu_translates = match hb.iommu.as_ref().map(|s| (s.get_ref().as_str(), s.span()))
            {
                None | Some(("translate", _)) => true,
                Some(("passthrough", _)) => false,
                Some((other, span)) => {
                    return Err(c.err(
                        span,
                        &t,
                        "iommu",
                        format!(
                            "\"{other}\" is not an IOMMU mode; use \"translate\" or \"passthrough\""
                        ),
                    ));
                }
            };
            host_bridges.push(HostBridgeConfig {
                place: c.place(&t, hb.name.span()),
                name: hb.name.into_inner(),
                p2p_whitelist: hb.p2p_whitelist.unwrap_or(false),
                iommu_translates,
                p2p_bandwidth: match &hb.p2p_bandwidth {
                    Some(q) => c.bandwidth(q, &t, "p2p_bandwidth")?,
                    None => DEFAULT_RC_P2P_BANDWIDTH,
                },
                latency_ns: match &hb.latency {
                    Some(q) => c.latency(q, &t, "latency")?,
                    None => DEFAULT_RC_LATENCY_NS,
                },
            });
        }

        // [[switch]] and [[device]] names first: parents may be named before they appear.
        for (i, sw) in raw.switch.iter().enumerate() {
            let sw = sw.get_ref();
            claim(
                &sw.name,
                &format!("switch \"{}\"", sw.name.get_ref()),
                NameKind::Switch(i),
            )?;
        }
        for dev in &raw.device {
            let dev = dev.get_ref();
            claim(
                &dev.name,
                &format!("device \"{}\"", dev.name.get_ref()),
                NameKind::Device,
            )?;
        }
        let resolve = |parent: &Spanned<String>, table: &str| -> Result<ParentRef, ConfigError> {
            match names.get(parent.get_ref()) {
                Some((NameKind::HostBridge(i), _)) => Ok(ParentRef::HostBridge(*i)),
                Some((NameKind::Switch(i), _)) => Ok(ParentRef::Switch(*i)),
                Some((NameKind::Device, _)) => Err(c.err(
                    parent.span(),
                    table,
                    "parent",
                    format!(
                        "\"{}\" is a device; a parent must be a host bridge or a switch",
                        parent.get_ref()
                    ),
                )),
                None => Err(c.err(
                    parent.span(),
                    table,
                    "parent",
                    format!("\"{}\" names no host bridge or switch", parent.get_ref()),
                )),
            }
        };

        let mut switches = Vec::new();
        for sw in &raw.switch {
            let order = sw.span().start;
            let sw = sw.get_ref();
            let t = format!("switch \"{}\"", sw.name.get_ref());
            switches.push(SwitchConfig {
                name: sw.name.get_ref().clone(),
                place: c.place(&t, sw.name.span()),
                parent: resolve(&sw.parent, &t)?,
                link: c.link(sw.link.as_ref(), &t)?,
                acs_redirect: sw.acs_redirect.unwrap_or(false),
                latency_ns: match &sw.latency {
                    Some(q) => c.latency(q, &t, "latency")?,
                    None => DEFAULT_SWITCH_LATENCY_NS,
                },
                order,
            });
        }

        let mut devices = Vec::new();
        for dev in &raw.device {
            let order = dev.span().start;
            let dev = dev.get_ref();
            let t = format!("device \"{}\"", dev.name.get_ref());
            let kind = match dev.kind.get_ref().as_str() {
                "sg1" => EndpointKind::Sg1,
                "rnic" => EndpointKind::Rnic,
                "endpoint" => EndpointKind::Generic,
                "importer" => EndpointKind::Importer,
                other => {
                    return Err(c.err(
                        dev.kind.span(),
                        &t,
                        "kind",
                        format!(
                            "\"{other}\" is not a device kind; use \"sg1\", \"rnic\", \"importer\" or \"endpoint\""
                        ),
                    ));
                }
            };
            if let (Some(hbm), false) = (&dev.hbm, kind == EndpointKind::Sg1) {
                return Err(c.err(
                    hbm.span(),
                    &t,
                    "hbm",
                    format!(
                        "only an SG1 has HBM, and this device is of kind \"{}\"",
                        dev.kind.get_ref()
                    ),
                ));
            }
            if let (Some(bars), false) = (&dev.bars, kind == EndpointKind::Generic) {
                return Err(c.err(
                    bars.span(),
                    &t,
                    "bars",
                    format!(
                        "a device of kind \"{}\" has fixed BARs; only kind \"endpoint\" lists its own",
                        dev.kind.get_ref()
                    ),
                ));
            }
            let bars = match kind {
                EndpointKind::Sg1 => {
                    let hbm = match &dev.hbm {
                        Some(q) => c.bar_size(
                            q,
                            &t,
                            "hbm",
                            "HBM",
                            "BAR2 exposes the whole HBM, and a BAR's size must be a power of two",
                        )?,
                        None => DEFAULT_HBM,
                    };
                    vec![
                        BarConfig {
                            index: 0,
                            size: REGISTER_BAR_SIZE,
                            kind: BarKind::Mmio,
                            prefetchable: false,
                        },
                        BarConfig {
                            index: 2,
                            size: hbm,
                            kind: BarKind::Memory,
                            prefetchable: true,
                        },
                    ]
                }
                EndpointKind::Rnic => {
                    vec![BarConfig {
                        index: 0,
                        size: REGISTER_BAR_SIZE,
                        kind: BarKind::Mmio,
                        prefetchable: false,
                    }]
                }
                EndpointKind::Importer => {
                    vec![BarConfig {
                        index: 0,
                        size: IMPORTER_BAR_SIZE,
                        kind: BarKind::Mmio,
                        prefetchable: false,
                    }]
                }
                EndpointKind::Generic => c.bars(dev.bars.as_ref(), &t)?,
            };
            devices.push(DeviceConfig {
                name: dev.name.get_ref().clone(),
                place: c.place(&t, dev.name.span()),
                kind,
                parent: resolve(&dev.parent, &t)?,
                link: c.link(dev.link.as_ref(), &t)?,
                bars,
                order,
            });
        }

        let config = TopologyConfig {
            host,
            host_bridges,
            switches,
            devices,
        };
        config.check_cycles(&raw.switch, &c)?;
        config.check_port_counts(&raw.switch, &raw.device, &c)?;
        Ok(config)
    }

    /// The default machine: one host bridge; a switch under root port 1 with two SG1s,
    /// a NIC and a test importer; one more of each but the second SG1 on root ports of
    /// their own ([`DEFAULT_MACHINE_TOML`]).
    pub fn default_machine() -> Self {
        // The text is a constant checked by the unit tests; it cannot fail to parse.
        Self::from_toml_str(DEFAULT_MACHINE_TOML).expect("the built-in default machine parses")
    }

    /// Puts a host bridge on (or off) the kernel's p2pdma whitelist.
    pub fn set_p2p_whitelist(
        &mut self,
        host_bridge: &str,
        whitelisted: bool,
    ) -> Result<(), ConfigError> {
        self.host_bridge_mut(host_bridge)?.p2p_whitelist = whitelisted;
        Ok(())
    }

    /// Makes a host bridge give its devices translating (true) or passthrough IOMMU
    /// domains.
    pub fn set_iommu_translates(
        &mut self,
        host_bridge: &str,
        translates: bool,
    ) -> Result<(), ConfigError> {
        self.host_bridge_mut(host_bridge)?.iommu_translates = translates;
        Ok(())
    }

    /// Sets ACS P2P Request Redirect on every downstream port of a switch.
    pub fn set_acs_redirect(&mut self, switch: &str, redirect: bool) -> Result<(), ConfigError> {
        let sw = self
            .switches
            .iter_mut()
            .find(|s| s.name == switch)
            .ok_or_else(|| {
                ConfigError::general(format!("the description has no switch \"{switch}\""))
            })?;
        sw.acs_redirect = redirect;
        Ok(())
    }

    /// Size of host DRAM in bytes.
    pub fn host_dram_size(&self) -> u64 {
        self.host.dram
    }

    fn host_bridge_mut(&mut self, name: &str) -> Result<&mut HostBridgeConfig, ConfigError> {
        self.host_bridges
            .iter_mut()
            .find(|h| h.name == name)
            .ok_or_else(|| {
                ConfigError::general(format!("the description has no host bridge \"{name}\""))
            })
    }

    /// Switches may only hang from switches above them.
    fn check_cycles(&self, raw: &[Spanned<RawSwitch>], c: &Checker<'_>) -> Result<(), ConfigError> {
        for (start, sw) in self.switches.iter().enumerate() {
            let mut chain = vec![start];
            let mut parent = sw.parent;
            while let ParentRef::Switch(p) = parent {
                if let Some(pos) = chain.iter().position(|&s| s == p) {
                    let mut names: Vec<&str> = chain[pos..]
                        .iter()
                        .map(|&s| self.switches[s].name.as_str())
                        .collect();
                    names.push(&self.switches[p].name);
                    let at = &raw[chain[pos]];
                    let at_ref = at.get_ref();
                    return Err(c.err(
                        at_ref.parent.span(),
                        &format!("switch \"{}\"", at_ref.name.get_ref()),
                        "parent",
                        format!(
                            "\"{}\" makes a cycle of switches ({}); a switch hangs from a host \
                             bridge or a switch above it",
                            at_ref.parent.get_ref(),
                            names.join(" → ")
                        ),
                    ));
                }
                chain.push(p);
                parent = self.switches[p].parent;
            }
        }
        Ok(())
    }

    /// A host bridge has at most 31 root ports and a switch at most 32 downstream ports.
    fn check_port_counts(
        &self,
        raw_switches: &[Spanned<RawSwitch>],
        raw_devices: &[Spanned<RawDevice>],
        c: &Checker<'_>,
    ) -> Result<(), ConfigError> {
        let mut children: Vec<(usize, ParentRef, Range<usize>, String)> = Vec::new();
        for (sw, raw) in self.switches.iter().zip(raw_switches) {
            let r = raw.get_ref();
            children.push((
                sw.order,
                sw.parent,
                r.parent.span(),
                format!("switch \"{}\"", sw.name),
            ));
        }
        for (dev, raw) in self.devices.iter().zip(raw_devices) {
            let r = raw.get_ref();
            children.push((
                dev.order,
                dev.parent,
                r.parent.span(),
                format!("device \"{}\"", dev.name),
            ));
        }
        children.sort_by_key(|c| c.0);
        let mut counts: HashMap<ParentRef, usize> = HashMap::new();
        for (_, parent, span, table) in children {
            let n = counts.entry(parent).or_default();
            *n += 1;
            let (limit, what) = match parent {
                ParentRef::HostBridge(h) => (
                    MAX_ROOT_PORTS,
                    format!(
                        "host bridge \"{}\" already has {MAX_ROOT_PORTS} root ports, the most it can \
                         have (devices 1 to 31 on bus 0)",
                        self.host_bridges[h].name
                    ),
                ),
                ParentRef::Switch(s) => (
                    MAX_SWITCH_PORTS,
                    format!(
                        "switch \"{}\" already has {MAX_SWITCH_PORTS} downstream ports, the most it \
                         can have (devices 0 to 31)",
                        self.switches[s].name
                    ),
                ),
            };
            if *n > limit {
                return Err(c.err(span, &table, "parent", what));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_machine_parses() {
        let c = TopologyConfig::default_machine();
        assert_eq!(c.host.dram, 4 << 30);
        assert_eq!(c.host_bridges.len(), 1);
        assert_eq!(c.switches.len(), 2);
        assert_eq!(c.devices.len(), 8);
        assert!(!c.host_bridges[0].p2p_whitelist);
        assert!(c.host_bridges[0].iommu_translates);
    }

    #[test]
    fn line_and_column_count_characters() {
        assert_eq!(line_column("ab\ncd", 0), (1, 1));
        assert_eq!(line_column("ab\ncd", 4), (2, 2));
        assert_eq!(line_column("é\nx", 3), (2, 1));
        assert_eq!(line_column("é", 1), (1, 1));
        assert_eq!(line_column("", 10), (1, 1));
    }

    #[test]
    fn names_are_plain() {
        assert!(name_problem("accel0").is_none());
        assert!(name_problem("sw0.up").is_some());
        assert!(name_problem("0000:03:00.0").is_some());
        assert!(name_problem("").is_some());
        assert!(name_problem("9lives").is_some());
    }
}
