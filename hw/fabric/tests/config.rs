//! Machine descriptions: the default machine, and one test per class of error, each
//! checking that the message names the table, the key, the line:column and the value.

use proptest::prelude::*;
use sagrada_hw_fabric::{ConfigError, DEFAULT_MACHINE_TOML, Fabric, TopologyConfig};

/// A host and one host bridge: lines 1 to 6.
const HEAD: &str = "[host]\ndram = \"1 GiB\"\n\n[[host_bridge]]\nname = \"hb0\"\n\n";

/// 1-based line and column of the first occurrence of `needle` in `text`.
fn position(text: &str, needle: &str) -> (usize, usize) {
    let offset = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in the text"));
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, col)
}

/// Line and column of a byte offset.
fn position_at(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset];
    (
        before.matches('\n').count() + 1,
        before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1,
    )
}

/// Line and column of the value in `key = value`, found by its first occurrence.
fn value_at(text: &str, needle: &str) -> (usize, usize) {
    let (line, col) = position(text, needle);
    (line, col + needle.find("= ").expect("needle has `= `") + 2)
}

/// Parses and builds, returning the error of whichever step fails.
fn error(text: &str) -> ConfigError {
    match TopologyConfig::from_toml_str(text) {
        Ok(config) => match Fabric::build(&config) {
            Ok(_) => panic!("the description was accepted:\n{text}"),
            Err(e) => e,
        },
        Err(e) => e,
    }
}

/// Checks the error's place and that its message carries every `mentions`.
#[track_caller]
fn check(
    err: &ConfigError,
    table: Option<&str>,
    key: Option<&str>,
    at: (usize, usize),
    mentions: &[&str],
) {
    let message = err.to_string();
    assert_eq!(err.table(), table, "table of: {message}");
    assert_eq!(err.key(), key, "key of: {message}");
    assert_eq!(err.line_column(), Some(at), "place of: {message}");
    if let Some(table) = table {
        assert!(message.contains(table), "{message:?} does not name {table}");
    }
    if let Some(key) = key {
        assert!(
            message.contains(&format!("key \"{key}\"")),
            "{message:?} does not name key {key}"
        );
    }
    assert!(
        message.contains(&format!("line {}:{}", at.0, at.1)),
        "{message:?} has no line {at:?}"
    );
    for m in mentions {
        assert!(message.contains(m), "{message:?} does not mention {m:?}");
    }
}

fn device(name: &str, kind: &str, parent: &str, extra: &str) -> String {
    format!(
        "[[device]]\nname = \"{name}\"\nkind = \"{kind}\"\nparent = \"{parent}\"\nlink = \"gen4 x16\"\n{extra}\n"
    )
}

#[test]
fn the_default_machine_builds_from_its_published_text() {
    let config = TopologyConfig::from_toml_str(DEFAULT_MACHINE_TOML).unwrap();
    let fabric = Fabric::build(&config).unwrap();
    assert_eq!(fabric.endpoints().count(), 8);
    assert_eq!(fabric.host_dram().len, 4 << 30);
    assert_eq!(config.host_dram_size(), 4 << 30);
    Fabric::default_machine().unwrap();
}

#[test]
fn an_unknown_parent_is_named() {
    let text = format!("{HEAD}{}", device("accel3", "sg1", "sw9", ""));
    check(
        &error(&text),
        Some("device \"accel3\""),
        Some("parent"),
        position(&text, "\"sw9\""),
        &["\"sw9\""],
    );
}

#[test]
fn a_device_cannot_be_a_parent() {
    let text = format!(
        "{HEAD}{}{}",
        device("a", "rnic", "hb0", ""),
        device("b", "rnic", "a", "")
    );
    let err = error(&text);
    check(
        &err,
        Some("device \"b\""),
        Some("parent"),
        value_at(&text, "parent = \"a\""),
        &["\"a\" is a device"],
    );
}

#[test]
fn a_duplicate_name_is_refused_with_both_places() {
    let text = format!(
        "{HEAD}{}{}",
        device("accel0", "sg1", "hb0", ""),
        device("accel0", "rnic", "hb0", "")
    );
    let second = text.rfind("\"accel0\"").unwrap();
    let first = position(&text, "\"accel0\"");
    let err = error(&text);
    check(
        &err,
        Some("device \"accel0\""),
        Some("name"),
        position_at(&text, second),
        &["\"accel0\"", &format!("line {}:{}", first.0, first.1)],
    );
    // A host bridge and a device may not share a name either.
    let text = format!("{HEAD}{}", device("hb0", "rnic", "hb0", ""));
    assert!(error(&text).to_string().contains("already used"));
}

#[test]
fn a_cycle_of_switches_is_refused() {
    let text = format!(
        "{HEAD}[[switch]]\nname = \"swa\"\nparent = \"swb\"\n\n[[switch]]\nname = \"swb\"\nparent = \"swa\"\n"
    );
    check(
        &error(&text),
        Some("switch \"swa\""),
        Some("parent"),
        position(&text, "\"swb\""),
        &["swa → swb → swa"],
    );
    let text = format!("{HEAD}[[switch]]\nname = \"sw\"\nparent = \"sw\"\n");
    check(
        &error(&text),
        Some("switch \"sw\""),
        Some("parent"),
        value_at(&text, "parent = "),
        &["sw → sw"],
    );
}

#[test]
fn bad_link_strings_are_refused() {
    for (link, mention) in [
        ("gen7 x16", "generation 7"),
        ("gen0 x4", "generation 0"),
        ("gen4 x3", "3 lanes"),
        ("fast", "\"fast\""),
    ] {
        let text =
            format!("{HEAD}[[switch]]\nname = \"sw0\"\nparent = \"hb0\"\nlink = \"{link}\"\n");
        check(
            &error(&text),
            Some("switch \"sw0\""),
            Some("link"),
            position(&text, &format!("\"{link}\"")),
            &[mention],
        );
    }
}

#[test]
fn zero_and_unaligned_sizes_are_refused() {
    let text = "[host]\ndram = \"0\"\n[[host_bridge]]\nname = \"hb0\"\n";
    check(
        &error(text),
        Some("[host]"),
        Some("dram"),
        (2, 8),
        &["\"0\"", "multiple of 4096"],
    );
    let text = "[host]\ndram = 1000\n[[host_bridge]]\nname = \"hb0\"\n";
    check(
        &error(text),
        Some("[host]"),
        Some("dram"),
        (2, 8),
        &["1000"],
    );
    let text = "[host]\ndram = \"300 GiB\"\n[[host_bridge]]\nname = \"hb0\"\n";
    check(
        &error(text),
        Some("[host]"),
        Some("dram"),
        (2, 8),
        &["\"300 GiB\"", "MMIO"],
    );

    let text = format!(
        "{HEAD}{}",
        device("accel0", "sg1", "hb0", "hbm = \"3 GiB\"")
    );
    check(
        &error(&text),
        Some("device \"accel0\""),
        Some("hbm"),
        position(&text, "\"3 GiB\""),
        &["\"3 GiB\"", "power of two"],
    );
    let text = format!("{HEAD}{}", device("accel0", "sg1", "hb0", "hbm = \"0\""));
    check(
        &error(&text),
        Some("device \"accel0\""),
        Some("hbm"),
        position(&text, "\"0\""),
        &["zero"],
    );
    let text = format!("{HEAD}{}", device("accel0", "sg1", "hb0", "hbm = \"1 GB\""));
    check(
        &error(&text),
        Some("device \"accel0\""),
        Some("hbm"),
        position(&text, "\"1 GB\""),
        &["power of two"],
    );
    let text = format!(
        "{HEAD}{}",
        device("accel0", "sg1", "hb0", "hbm = \"4 furlongs\"")
    );
    check(
        &error(&text),
        Some("device \"accel0\""),
        Some("hbm"),
        position(&text, "\"4 furlongs\""),
        &["furlongs"],
    );
    let text = format!(
        "{HEAD}{}",
        device(
            "e",
            "endpoint",
            "hb0",
            "bars = [{ index = 0, size = \"1000\" }]"
        )
    );
    check(
        &error(&text),
        Some("device \"e\""),
        Some("bars"),
        position(&text, "\"1000\""),
        &["BAR0 size", "power of two"],
    );
}

#[test]
fn bar_indexes_out_of_range_or_colliding_are_refused() {
    let text = format!(
        "{HEAD}{}",
        device(
            "e",
            "endpoint",
            "hb0",
            "bars = [{ index = 5, size = \"1 MiB\" }]"
        )
    );
    check(
        &error(&text),
        Some("device \"e\""),
        Some("bars"),
        position(&text, "5,"),
        &["index 5", "0 to 4"],
    );
    let text = format!(
        "{HEAD}{}",
        device(
            "e",
            "endpoint",
            "hb0",
            "bars = [{ index = -1, size = \"1 MiB\" }]"
        )
    );
    check(
        &error(&text),
        Some("device \"e\""),
        Some("bars"),
        position(&text, "-1"),
        &["index -1"],
    );
    let text = format!(
        "{HEAD}{}",
        device(
            "e",
            "endpoint",
            "hb0",
            "bars = [{ index = 0, size = \"1 MiB\" }, { index = 1, size = \"1 MiB\" }]"
        )
    );
    check(
        &error(&text),
        Some("device \"e\""),
        Some("bars"),
        position(&text, "1, size"),
        &["index 1", "BAR0"],
    );
    let text = format!(
        "{HEAD}{}",
        device(
            "e",
            "endpoint",
            "hb0",
            "bars = [{ index = 0, size = \"1 MiB\", kind = \"io\" }]"
        )
    );
    check(
        &error(&text),
        Some("device \"e\""),
        Some("bars"),
        position(&text, "\"io\""),
        &["\"io\""],
    );
}

#[test]
fn unknown_keys_are_refused_where_they_are() {
    let text = format!(
        "{HEAD}{}",
        device("accel0", "sg1", "hb0", "colour = \"red\"")
    );
    check(
        &error(&text),
        Some("device \"accel0\""),
        Some("colour"),
        position(&text, "colour"),
        &["`colour`"],
    );

    let text = "[host]\ndram = \"1 GiB\"\nswap = \"1 GiB\"\n[[host_bridge]]\nname = \"hb0\"\n";
    check(
        &error(text),
        Some("[host]"),
        Some("swap"),
        (3, 1),
        &["`swap`"],
    );

    let text = format!(
        "{HEAD}{}",
        device(
            "e",
            "endpoint",
            "hb0",
            "bars = [{ index = 0, size = \"1 MiB\", cache = true }]"
        )
    );
    check(
        &error(&text),
        Some("device \"e\""),
        Some("bars"),
        position(&text, "cache"),
        &["`cache`"],
    );

    let text = format!("{HEAD}[[bridge]]\nname = \"x\"\n");
    let err = error(&text);
    let header = position(&text, "[[bridge]]");
    assert_eq!(err.line_column(), Some((header.0, header.1 + 2)), "{err}");
    assert!(err.to_string().contains("`bridge`"), "{err}");
}

#[test]
fn wrong_types_and_choices_are_placed() {
    let text =
        format!("{HEAD}[[switch]]\nname = \"sw0\"\nparent = \"hb0\"\nacs_redirect = \"yes\"\n");
    check(
        &error(&text),
        Some("switch \"sw0\""),
        Some("acs_redirect"),
        position(&text, "\"yes\""),
        &["\"yes\""],
    );

    let text = format!("{HEAD}{}", device("x", "gpu", "hb0", ""));
    check(
        &error(&text),
        Some("device \"x\""),
        Some("kind"),
        position(&text, "\"gpu\""),
        &["\"gpu\""],
    );

    let text = format!("{HEAD}{}", device("nic", "rnic", "hb0", "hbm = \"1 GiB\""));
    check(
        &error(&text),
        Some("device \"nic\""),
        Some("hbm"),
        value_at(&text, "hbm = "),
        &["\"rnic\""],
    );

    let text = format!("{HEAD}{}", device("acc", "sg1", "hb0", "bars = []"));
    check(
        &error(&text),
        Some("device \"acc\""),
        Some("bars"),
        position(&text, "[]"),
        &["\"sg1\""],
    );

    let text = "[host]\ndram = \"1 GiB\"\n[[host_bridge]]\nname = \"hb0\"\niommu = \"maybe\"\n";
    check(
        &error(text),
        Some("host_bridge \"hb0\""),
        Some("iommu"),
        (5, 9),
        &["\"maybe\""],
    );

    let text =
        "[host]\ndram = \"1 GiB\"\ndram_bandwidth = \"fast\"\n[[host_bridge]]\nname = \"hb0\"\n";
    check(
        &error(text),
        Some("[host]"),
        Some("dram_bandwidth"),
        (3, 18),
        &["\"fast\""],
    );

    let text = format!("{HEAD}[[device]]\nname = \"x\"\nkind = \"rnic\"\n");
    let err = error(&text);
    assert!(err.to_string().contains("`parent`"), "{err}");
    assert_eq!(err.table(), Some("device \"x\""), "{err}");

    let text = format!("{HEAD}{}", device("bad.name", "rnic", "hb0", ""));
    check(
        &error(&text),
        Some("device \"bad.name\""),
        Some("name"),
        position(&text, "\"bad.name\""),
        &["\"bad.name\""],
    );
}

#[test]
fn missing_tables_and_syntax_errors_are_placed() {
    let err = error("[[host_bridge]]\nname = \"hb0\"\n");
    assert_eq!(err.table(), Some("[host]"), "{err}");
    assert_eq!(err.line_column(), Some((1, 1)));

    let err = error("[host]\ndram = \"1 GiB\"\n");
    assert!(err.to_string().contains("host_bridge"), "{err}");

    let text = format!("{HEAD}[[device]\nname = \"x\"\n");
    let err = error(&text);
    assert_eq!(err.line_column().map(|p| p.0), Some(7), "{err}");
}

#[test]
fn a_switch_has_at_most_32_downstream_ports() {
    let mut text = format!("{HEAD}[[switch]]\nname = \"sw0\"\nparent = \"hb0\"\n\n");
    for i in 0..33 {
        text.push_str(&device(&format!("d{i}"), "endpoint", "sw0", ""));
    }
    let at = position(&text, "name = \"d32\"");
    let err = error(&text);
    check(
        &err,
        Some("device \"d32\""),
        Some("parent"),
        (at.0 + 2, 10),
        &["sw0", "32 downstream ports"],
    );
}

#[test]
fn a_host_bridge_has_at_most_31_root_ports() {
    let mut text = HEAD.to_owned();
    for i in 0..32 {
        text.push_str(&device(&format!("d{i}"), "endpoint", "hb0", ""));
    }
    let at = position(&text, "name = \"d31\"");
    check(
        &error(&text),
        Some("device \"d31\""),
        Some("parent"),
        (at.0 + 2, 10),
        &["hb0", "31 root ports"],
    );
}

#[test]
fn bus_numbers_run_out() {
    // Each switch takes its root port's bus, an internal bus and one bus per device:
    // 8 × 33 buses do not fit in 255.
    let mut text = HEAD.to_owned();
    for s in 0..8 {
        text.push_str(&format!(
            "[[switch]]\nname = \"sw{s}\"\nparent = \"hb0\"\n\n"
        ));
        for d in 0..31 {
            text.push_str(&device(
                &format!("s{s}d{d}"),
                "endpoint",
                &format!("sw{s}"),
                "",
            ));
        }
    }
    let config = TopologyConfig::from_toml_str(&text).unwrap();
    let err = Fabric::build(&config).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("bus numbers"), "{message}");
    assert!(message.contains("hb0"), "{message}");
    assert!(message.contains("device \"s7d"), "{message}");
    assert!(err.line_column().is_some());
}

#[test]
fn a_small_machine_with_every_option_builds() {
    let text = r#"
[host]
dram = "256 MiB"
dram_bandwidth = "25 GB/s"
dram_latency = "100 ns"

[[host_bridge]]
name = "hb0"
p2p_whitelist = true
iommu = "passthrough"
p2p_bandwidth = "8 GB/s"
latency = "0.3 us"

[[host_bridge]]
name = "hb1"

[[switch]]
name = "top"
parent = "hb0"
link = "Gen5 x16"
latency = "150 ns"

[[switch]]
name = "leaf"
parent = "top"
link = "gen5 x8"
acs_redirect = true

[[device]]
name = "probe"
kind = "endpoint"
parent = "leaf"
link = "gen3 x4"
bars = [{ index = 0, size = "64 KiB", kind = "mmio" },
        { index = 2, size = 16777216, kind = "memory", prefetchable = true }]

[[device]]
name = "acc"
kind = "sg1"
parent = "hb1"
link = "gen6 x16"
hbm = "512 MiB"
"#;
    let config = TopologyConfig::from_toml_str(text).unwrap();
    let fabric = Fabric::build(&config).unwrap();
    let probe = fabric.find("probe").unwrap();
    assert_eq!(fabric.function(probe).bars.len(), 2);
    assert!(fabric.bar_memory(probe, 2).is_some());
    assert!(fabric.bar_memory(probe, 0).is_none());
    assert!(!fabric.iommu_translates(probe));
    assert!(fabric.iommu_translates(fabric.find("acc").unwrap()));
    assert_eq!(fabric.host_bridges()[1].segment, 1);
    assert_eq!(
        fabric.function(fabric.find("acc").unwrap()).bdf.to_string(),
        "0001:01:00.0"
    );
}

#[test]
fn setters_change_a_parsed_description() {
    let mut config = TopologyConfig::default_machine();
    config.set_p2p_whitelist("hb0", true).unwrap();
    config.set_acs_redirect("sw0", true).unwrap();
    config.set_iommu_translates("hb0", false).unwrap();
    let fabric = Fabric::build(&config).unwrap();
    assert!(fabric.host_bridges()[0].p2p_whitelisted);
    assert!(!fabric.host_bridges()[0].iommu_translates);
    assert!(
        fabric
            .function(fabric.find("sw0.dp1").unwrap())
            .acs_redirect
    );
    assert!(
        config
            .set_p2p_whitelist("hb9", true)
            .unwrap_err()
            .to_string()
            .contains("\"hb9\"")
    );
    assert!(config.set_acs_redirect("sw9", true).is_err());
}

/// Fragments of plausible descriptions, shuffled into odd combinations.
const FRAGMENTS: &[&str] = &[
    "[host]",
    "dram = \"4 GiB\"",
    "dram = 4096",
    "dram = -1",
    "dram = 1.5",
    "dram_bandwidth = \"0.0 GB/s\"",
    "dram_latency = \"9999999999999 ms\"",
    "[[host_bridge]]",
    "name = \"hb0\"",
    "name = \"sw0\"",
    "name = \"d0\"",
    "name = \"\"",
    "iommu = \"passthrough\"",
    "p2p_whitelist = true",
    "[[switch]]",
    "parent = \"hb0\"",
    "parent = \"sw0\"",
    "parent = \"d0\"",
    "link = \"gen4 x16\"",
    "link = \"gen9 x99999999999\"",
    "acs_redirect = true",
    "[[device]]",
    "kind = \"sg1\"",
    "kind = \"rnic\"",
    "kind = \"endpoint\"",
    "hbm = \"1 TiB\"",
    "hbm = \"0.5 KiB\"",
    "bars = [{ index = 0, size = \"1 MiB\" }]",
    "bars = [{ index = 4, size = \"1 TiB\", kind = \"mmio\" }]",
    "bars = [{ index = 9223372036854775807, size = 18446744073709551615 }]",
    "[host.nested]",
    "x = [1, [2, {a = 3}]]",
    "\"µ\" = \"é\"",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_text_never_panics(text in "\\PC{0,200}") {
        let _ = TopologyConfig::from_toml_str(&text);
    }

    #[test]
    fn random_toml_like_text_never_panics(text in "[\\[\\]a-z_=\"0-9 .\n{},#-]{0,300}") {
        let _ = TopologyConfig::from_toml_str(&text);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn shuffled_fragments_never_panic(picks in proptest::collection::vec(0..FRAGMENTS.len(), 0..40)) {
        let text: String = picks.iter().map(|&i| format!("{}\n", FRAGMENTS[i])).collect();
        if let Ok(config) = TopologyConfig::from_toml_str(&text) {
            let _ = Fabric::build(&config);
        }
    }
}
