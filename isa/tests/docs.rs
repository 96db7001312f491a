//! `docs/isa/instructions.md` is generated from the instruction table; this test fails
//! when the two disagree. Run with `SAGRADA_BLESS=1` to regenerate the file.

use std::path::PathBuf;

use sagrada_isa::Opcode;

fn path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/isa/instructions.md")
}

#[test]
fn the_instruction_reference_matches_the_table() {
    let path = path();
    let generated = sagrada_isa::doc::instruction_reference();
    if std::env::var_os("SAGRADA_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("write the instruction reference");
        return;
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == generated,
        "{} is out of date with isa/src/table.rs; regenerate it with \
         SAGRADA_BLESS=1 cargo test -p sagrada-isa --test docs",
        path.display()
    );
}

#[test]
fn every_instruction_has_a_section() {
    // While blessing, the other test is rewriting the file.
    let text = if std::env::var_os("SAGRADA_BLESS").is_some() {
        sagrada_isa::doc::instruction_reference()
    } else {
        std::fs::read_to_string(path()).expect("read the instruction reference")
    };
    let headings: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("### "))
        .collect();
    for &op in Opcode::ALL {
        assert!(
            headings.contains(&op.mnemonic()),
            "docs/isa/instructions.md has no section for {}",
            op.mnemonic()
        );
    }
}
