//! `docs/uapi.md` against the SG1 driver's uAPI: every ioctl is documented with its
//! exact number, on one table row, and the SG1 section names no ioctl number the driver
//! does not have (a stale one left behind after a structure changed size).

use sagrada_kernel_accel::uapi::*;
use sagrada_kernel_core::ioctl::{ioc_size, ioc_type};

const IOCTLS: [(&str, u32); 5] = [
    ("SG1_IOCTL_INFO", SG1_IOCTL_INFO),
    ("SG1_IOCTL_CS", SG1_IOCTL_CS),
    ("SG1_IOCTL_WAIT_CS", SG1_IOCTL_WAIT_CS),
    ("SG1_IOCTL_MEMORY", SG1_IOCTL_MEMORY),
    ("SG1_IOCTL_RESET", SG1_IOCTL_RESET),
];

const HEADING: &str = "## SG1 (`/dev/accel/accelN`)";

fn doc() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/uapi.md");
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// The text from `heading` to the next second-level heading.
fn section<'a>(doc: &'a str, heading: &str) -> &'a str {
    let start = doc
        .find(heading)
        .unwrap_or_else(|| panic!("docs/uapi.md has no {heading:?}"));
    let body = &doc[start + heading.len()..];
    let end = body.find("\n## ").unwrap_or(body.len());
    &body[..end]
}

/// Every `0x` followed by exactly eight hex digits, as numbers.
fn hex_words(text: &str) -> Vec<u32> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(at) = text[i..].find("0x") {
        let start = i + at + 2;
        let digits = bytes[start..]
            .iter()
            .take_while(|b| b.is_ascii_hexdigit())
            .count();
        if digits == 8 {
            out.push(u32::from_str_radix(&text[start..start + 8], 16).unwrap());
        }
        i = start + digits;
    }
    out
}

#[test]
fn every_sg1_ioctl_is_documented_with_its_number() {
    let doc = doc();
    let sg1 = section(&doc, HEADING);
    for (name, number) in IOCTLS {
        let hex = format!("`{number:#010x}`");
        assert!(
            sg1.lines()
                .any(|l| l.contains(&format!("`{name}`")) && l.contains(&hex)),
            "docs/uapi.md: no line of the SG1 section gives `{name}` as {hex}"
        );
    }
}

#[test]
fn the_sg1_section_names_no_other_sg1_ioctl_number() {
    let doc = doc();
    for n in hex_words(section(&doc, HEADING)) {
        if ioc_type(n) == SG1_IOC_MAGIC && ioc_size(n) != 0 {
            assert!(
                IOCTLS.iter().any(|&(_, number)| number == n),
                "docs/uapi.md names {n:#010x}, an 'S' ioctl the driver does not have"
            );
        }
    }
}
