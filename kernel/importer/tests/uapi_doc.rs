//! `docs/uapi.md` against the importer's uAPI: every ioctl is documented with its exact
//! number, on one table row, and the importer's section names no ioctl number the
//! driver does not have.

use sagrada_kernel_core::ioctl::{ioc_size, ioc_type};
use sagrada_kernel_importer::uapi::*;

const IOCTLS: [(&str, u32); 4] = [
    ("IMP_IOCTL_REG_DMABUF_MR", IMP_IOCTL_REG_DMABUF_MR),
    ("IMP_IOCTL_DEREG_MR", IMP_IOCTL_DEREG_MR),
    ("IMP_IOCTL_WRITE_TO_MR", IMP_IOCTL_WRITE_TO_MR),
    ("IMP_IOCTL_READ_FROM_MR", IMP_IOCTL_READ_FROM_MR),
];

const HEADING: &str = "## DMA test importer (`/dev/hliN`)";

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
fn every_importer_ioctl_is_documented_with_its_number() {
    let doc = doc();
    let importer = section(&doc, HEADING);
    for (name, number) in IOCTLS {
        let hex = format!("`{number:#010x}`");
        assert!(
            importer
                .lines()
                .any(|l| l.contains(&format!("`{name}`")) && l.contains(&hex)),
            "docs/uapi.md: no line of the importer section gives `{name}` as {hex}"
        );
    }
}

#[test]
fn the_importer_section_names_no_other_importer_ioctl_number() {
    let doc = doc();
    for n in hex_words(section(&doc, HEADING)) {
        if ioc_type(n) == IMP_IOC_MAGIC && ioc_size(n) != 0 {
            assert!(
                IOCTLS.iter().any(|&(_, number)| number == n),
                "docs/uapi.md names {n:#010x}, an 'I' ioctl the driver does not have"
            );
        }
    }
}
