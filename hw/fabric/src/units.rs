//! Parsing and printing the quantities a machine description is written in: sizes
//! ("4 GiB"), bandwidths ("51.2 GB/s"), latencies ("90 ns") and link speeds
//! ("gen4 x16").
//!
//! Parsers return a sentence naming the offending text; the caller adds the place.
//! Sizes are parsed exactly (a decimal fraction is allowed only when the product is a
//! whole number of bytes), because a BAR size that is off by one byte is a different
//! machine.

use crate::topology::LinkSpec;

/// Latency of one link traversal when the description does not say otherwise.
pub(crate) const DEFAULT_LINK_LATENCY_NS: u64 = 20;

/// Splits "51.2 GB/s" into ("51.2", "GB/s"); the space is optional.
fn split_number(text: &str) -> (&str, &str) {
    let text = text.trim();
    let end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
        .unwrap_or(text.len());
    (&text[..end], text[end..].trim())
}

/// A decimal number as an exact fraction `mantissa / 10^scale`.
fn parse_decimal(number: &str) -> Option<(u128, u32)> {
    let digits: String = number.chars().filter(|&c| c != '_').collect();
    let (int, frac) = match digits.split_once('.') {
        Some((i, f)) => (i, f),
        None => (digits.as_str(), ""),
    };
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if !int.chars().chain(frac.chars()).all(|c| c.is_ascii_digit()) || frac.len() > 18 {
        return None;
    }
    let mut mantissa: u128 = 0;
    for c in int.chars().chain(frac.chars()) {
        mantissa = mantissa
            .checked_mul(10)?
            .checked_add(u128::from(c as u8 - b'0'))?;
    }
    Some((mantissa, frac.len() as u32))
}

/// Parses a size: a whole number of bytes, or a number with a unit (`B`, `KiB`, `MiB`,
/// `GiB`, `TiB`, or the decimal `KB`, `MB`, `GB`, `TB`).
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let (number, unit) = split_number(text);
    let multiplier: u128 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" | "k" => 1 << 10,
        "mib" | "m" => 1 << 20,
        "gib" | "g" => 1 << 30,
        "tib" | "t" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => {
            return Err(format!(
                "\"{text}\" has an unknown size unit \"{unit}\" (use B, KiB, MiB, GiB or TiB)"
            ));
        }
    };
    let Some((mantissa, scale)) = parse_decimal(number) else {
        return Err(format!(
            "\"{text}\" is not a size such as \"4 GiB\" or \"4096\""
        ));
    };
    let divisor = 10u128.pow(scale);
    let Some(scaled) = mantissa.checked_mul(multiplier) else {
        return Err(format!("size \"{text}\" is too large"));
    };
    if scaled % divisor != 0 {
        return Err(format!("size \"{text}\" is not a whole number of bytes"));
    }
    u64::try_from(scaled / divisor).map_err(|_| format!("size \"{text}\" is too large"))
}

/// Parses a bandwidth in bytes per second: "51.2 GB/s", "800 MB/s", "25 GiB/s".
pub(crate) fn parse_bandwidth(text: &str) -> Result<f64, String> {
    let (number, unit) = split_number(text);
    let multiplier = match unit.to_ascii_lowercase().as_str() {
        "b/s" => 1.0,
        "kb/s" => 1e3,
        "mb/s" => 1e6,
        "gb/s" => 1e9,
        "tb/s" => 1e12,
        "kib/s" => 1024.0,
        "mib/s" => 1024.0 * 1024.0,
        "gib/s" => 1024.0 * 1024.0 * 1024.0,
        _ => {
            return Err(format!(
                "\"{text}\" is not a bandwidth such as \"51.2 GB/s\" (units B/s, KB/s, MB/s, \
                 GB/s, TB/s, KiB/s, MiB/s, GiB/s)"
            ));
        }
    };
    let Some((mantissa, scale)) = parse_decimal(number) else {
        return Err(format!(
            "\"{text}\" is not a bandwidth such as \"51.2 GB/s\""
        ));
    };
    let value = mantissa as f64 / 10f64.powi(scale as i32) * multiplier;
    if !(value.is_finite() && value > 0.0) {
        return Err(format!("bandwidth \"{text}\" must be greater than zero"));
    }
    Ok(value)
}

/// Parses a latency into nanoseconds: "90 ns", "1.5 us", "2 µs", "1 ms".
pub(crate) fn parse_latency(text: &str) -> Result<u64, String> {
    let (number, unit) = split_number(text);
    let multiplier: u128 = match unit.to_ascii_lowercase().as_str() {
        "ns" => 1,
        "us" | "µs" => 1_000,
        "ms" => 1_000_000,
        _ => {
            return Err(format!(
                "\"{text}\" is not a latency such as \"90 ns\" (units ns, us, ms)"
            ));
        }
    };
    let Some((mantissa, scale)) = parse_decimal(number) else {
        return Err(format!("\"{text}\" is not a latency such as \"90 ns\""));
    };
    let ns = mantissa.saturating_mul(multiplier) / 10u128.pow(scale);
    u64::try_from(ns)
        .ok()
        .filter(|&ns| ns <= 1_000_000_000)
        .ok_or_else(|| format!("latency \"{text}\" is longer than a second"))
}

/// Parses a link description, "gen4 x16" (case and the space do not matter).
pub(crate) fn parse_link(text: &str) -> Result<LinkSpec, String> {
    let malformed = || format!("link \"{text}\" is not of the form \"gen4 x16\"");
    let lower = text.trim().to_ascii_lowercase();
    let rest = lower.strip_prefix("gen").ok_or_else(malformed)?;
    let gen_end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let (generation, rest) = rest.split_at(gen_end);
    let width = rest.trim_start().strip_prefix('x').ok_or_else(malformed)?;
    if generation.is_empty() || generation.len() > 3 || width.is_empty() || width.len() > 3 {
        return Err(malformed());
    }
    if !width.chars().all(|c| c.is_ascii_digit()) {
        return Err(malformed());
    }
    let generation: u8 = generation.parse().map_err(|_| malformed())?;
    let width: u8 = width.parse().map_err(|_| malformed())?;
    if !(1..=6).contains(&generation) {
        return Err(format!(
            "link \"{text}\" names PCIe generation {generation}; generations are 1 to 6"
        ));
    }
    if !matches!(width, 1 | 2 | 4 | 8 | 16) {
        return Err(format!(
            "link \"{text}\" has {width} lanes; a link has 1, 2, 4, 8 or 16"
        ));
    }
    Ok(LinkSpec {
        generation,
        width,
        latency_ns: DEFAULT_LINK_LATENCY_NS,
    })
}

/// Prints a size with the largest binary unit that divides it ("1 GiB", "3074 MiB").
pub(crate) fn format_size(bytes: u64) -> String {
    const UNITS: [(u64, &str); 4] = [
        (1 << 40, "TiB"),
        (1 << 30, "GiB"),
        (1 << 20, "MiB"),
        (1 << 10, "KiB"),
    ];
    for (unit, name) in UNITS {
        if bytes >= unit && bytes.is_multiple_of(unit) {
            return format!("{} {name}", bytes / unit);
        }
    }
    format!("{bytes} B")
}

/// Prints a bandwidth in GB/s with two decimals.
pub(crate) fn format_bandwidth(bytes_per_sec: f64) -> String {
    format!("{:.2} GB/s", bytes_per_sec / 1e9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_exactly() {
        assert_eq!(parse_size("4 GiB"), Ok(4 << 30));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("512 KiB"), Ok(512 << 10));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("0.5 GiB"), Ok(512 << 20));
        assert_eq!(parse_size("2 GB"), Ok(2_000_000_000));
        assert!(parse_size("1.1 KiB").unwrap_err().contains("whole number"));
        assert!(parse_size("4 GiBs").unwrap_err().contains("\"GiBs\""));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size(".").is_err());
        assert!(parse_size("99999999999999999999999 TiB").is_err());
    }

    #[test]
    fn bandwidths_and_latencies_parse() {
        assert_eq!(parse_bandwidth("51.2 GB/s"), Ok(51.2e9));
        assert_eq!(parse_bandwidth("12GB/s"), Ok(12e9));
        assert!(parse_bandwidth("0 GB/s").is_err());
        assert!(parse_bandwidth("fast").is_err());
        assert_eq!(parse_latency("90 ns"), Ok(90));
        assert_eq!(parse_latency("1.5 us"), Ok(1500));
        assert!(parse_latency("5 s").is_err());
        assert!(parse_latency("5000 ms").is_err());
    }

    #[test]
    fn links_parse_and_name_the_bad_part() {
        let l = parse_link("gen4 x16").unwrap();
        assert_eq!((l.generation, l.width), (4, 16));
        assert_eq!(parse_link("Gen3x8").unwrap().width, 8);
        assert!(parse_link("gen7 x16").unwrap_err().contains("generation 7"));
        assert!(parse_link("gen0 x16").unwrap_err().contains("generation 0"));
        assert!(parse_link("gen4 x3").unwrap_err().contains("3 lanes"));
        assert!(parse_link("fast").unwrap_err().contains("\"fast\""));
        assert!(parse_link("gen4 x").is_err());
        assert!(parse_link("gen99999 x16").is_err());
        assert!(parse_link("gen4 x16 extra").is_err());
    }

    #[test]
    fn sizes_print_in_the_largest_exact_unit() {
        assert_eq!(format_size(1 << 30), "1 GiB");
        assert_eq!(format_size((3 << 30) + (2 << 20)), "3074 MiB");
        assert_eq!(format_size(100), "100 B");
    }
}
