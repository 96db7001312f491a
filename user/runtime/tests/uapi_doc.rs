//! `docs/uapi.md` against the drivers' uAPIs: each driver's ioctls are documented in its
//! section with their exact numbers, one table row each, and the section names no ioctl
//! number of the driver's magic that the driver does not have (a stale one left behind
//! after a structure changed size).

use sagrada_kernel_accel::uapi::{
    SG1_IOC_MAGIC, SG1_IOCTL_CS, SG1_IOCTL_INFO, SG1_IOCTL_MEMORY, SG1_IOCTL_RESET,
    SG1_IOCTL_WAIT_CS,
};
use sagrada_kernel_core::ioctl::{ioc_size, ioc_type};
use sagrada_kernel_importer::uapi::{
    IMP_IOC_MAGIC, IMP_IOCTL_DEREG_MR, IMP_IOCTL_READ_FROM_MR, IMP_IOCTL_REG_DMABUF_MR,
    IMP_IOCTL_WRITE_TO_MR,
};
use sagrada_kernel_rdma::uapi::{
    RDMA_ALLOC_PD, RDMA_CREATE_COMP_CHANNEL, RDMA_CREATE_CQ, RDMA_CREATE_QP, RDMA_DEALLOC_PD,
    RDMA_DEREG_MR, RDMA_DESTROY_CQ, RDMA_DESTROY_QP, RDMA_IOC_MAGIC, RDMA_MODIFY_QP,
    RDMA_QUERY_DEVICE, RDMA_QUERY_PORT, RDMA_QUERY_QP, RDMA_REG_DMABUF_MR, RDMA_REG_MR,
};

/// One driver's part of `docs/uapi.md`.
struct Driver {
    /// What the messages call its section.
    name: &'static str,
    /// The second-level heading its section starts with.
    heading: &'static str,
    /// The ioctl type all its numbers carry.
    magic: u8,
    /// Every ioctl it has, by name.
    ioctls: &'static [(&'static str, u32)],
}

const SG1: Driver = Driver {
    name: "SG1",
    heading: "## SG1 (`/dev/accel/accelN`)",
    magic: SG1_IOC_MAGIC,
    ioctls: &[
        ("SG1_IOCTL_INFO", SG1_IOCTL_INFO),
        ("SG1_IOCTL_CS", SG1_IOCTL_CS),
        ("SG1_IOCTL_WAIT_CS", SG1_IOCTL_WAIT_CS),
        ("SG1_IOCTL_MEMORY", SG1_IOCTL_MEMORY),
        ("SG1_IOCTL_RESET", SG1_IOCTL_RESET),
    ],
};

const IMPORTER: Driver = Driver {
    name: "importer",
    heading: "## DMA test importer (`/dev/hliN`)",
    magic: IMP_IOC_MAGIC,
    ioctls: &[
        ("IMP_IOCTL_REG_DMABUF_MR", IMP_IOCTL_REG_DMABUF_MR),
        ("IMP_IOCTL_DEREG_MR", IMP_IOCTL_DEREG_MR),
        ("IMP_IOCTL_WRITE_TO_MR", IMP_IOCTL_WRITE_TO_MR),
        ("IMP_IOCTL_READ_FROM_MR", IMP_IOCTL_READ_FROM_MR),
    ],
};

const RDMA: Driver = Driver {
    name: "RDMA",
    heading: "## RDMA verbs (`/dev/infiniband/uverbsN`)",
    magic: RDMA_IOC_MAGIC,
    ioctls: &[
        ("RDMA_QUERY_DEVICE", RDMA_QUERY_DEVICE),
        ("RDMA_QUERY_PORT", RDMA_QUERY_PORT),
        ("RDMA_ALLOC_PD", RDMA_ALLOC_PD),
        ("RDMA_DEALLOC_PD", RDMA_DEALLOC_PD),
        ("RDMA_REG_MR", RDMA_REG_MR),
        ("RDMA_REG_DMABUF_MR", RDMA_REG_DMABUF_MR),
        ("RDMA_DEREG_MR", RDMA_DEREG_MR),
        ("RDMA_CREATE_COMP_CHANNEL", RDMA_CREATE_COMP_CHANNEL),
        ("RDMA_CREATE_CQ", RDMA_CREATE_CQ),
        ("RDMA_DESTROY_CQ", RDMA_DESTROY_CQ),
        ("RDMA_CREATE_QP", RDMA_CREATE_QP),
        ("RDMA_MODIFY_QP", RDMA_MODIFY_QP),
        ("RDMA_QUERY_QP", RDMA_QUERY_QP),
        ("RDMA_DESTROY_QP", RDMA_DESTROY_QP),
    ],
};

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

/// Each of the driver's ioctls stands with its number on one line of its section.
fn assert_every_ioctl_documented(driver: &Driver) {
    let doc = doc();
    let text = section(&doc, driver.heading);
    for &(name, number) in driver.ioctls {
        let hex = format!("`{number:#010x}`");
        assert!(
            text.lines()
                .any(|l| l.contains(&format!("`{name}`")) && l.contains(&hex)),
            "docs/uapi.md: no line of the {} section gives `{name}` as {hex}",
            driver.name
        );
    }
}

/// Every ioctl number of the driver's magic in its section is one the driver has.
fn assert_no_stale_ioctl_number(driver: &Driver) {
    let doc = doc();
    for n in hex_words(section(&doc, driver.heading)) {
        if ioc_type(n) == driver.magic && ioc_size(n) != 0 {
            assert!(
                driver.ioctls.iter().any(|&(_, number)| number == n),
                "docs/uapi.md names {n:#010x}, an {:?} ioctl the {} driver does not have",
                char::from(driver.magic),
                driver.name
            );
        }
    }
}

#[test]
fn every_sg1_ioctl_is_documented_with_its_number() {
    assert_every_ioctl_documented(&SG1);
}

#[test]
fn the_sg1_section_names_no_other_sg1_ioctl_number() {
    assert_no_stale_ioctl_number(&SG1);
}

#[test]
fn every_importer_ioctl_is_documented_with_its_number() {
    assert_every_ioctl_documented(&IMPORTER);
}

#[test]
fn the_importer_section_names_no_other_importer_ioctl_number() {
    assert_no_stale_ioctl_number(&IMPORTER);
}

#[test]
fn every_rdma_ioctl_is_documented_with_its_number() {
    assert_every_ioctl_documented(&RDMA);
}

#[test]
fn the_rdma_section_names_no_other_rdma_ioctl_number() {
    assert_no_stale_ioctl_number(&RDMA);
}
