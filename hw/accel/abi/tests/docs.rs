//! `docs/hw/sg1-registers.md` is generated from the register declarations; this test
//! fails when the two disagree. Run with `SAGRADA_BLESS=1` to regenerate the file.

use std::path::PathBuf;

#[test]
fn the_register_reference_matches_the_declarations() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../docs/hw/sg1-registers.md");
    let generated = sagrada_hw_accel_abi::register_reference();
    if std::env::var_os("SAGRADA_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("write the register reference");
        return;
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == generated,
        "{} is out of date with hw/accel/abi/src/regs.rs; regenerate it with \
         SAGRADA_BLESS=1 cargo test -p sagrada-hw-accel-abi --test docs",
        path.display()
    );
}
