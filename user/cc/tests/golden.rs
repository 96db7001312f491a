//! Golden files of the compiler's output for the demo kernels (`kernels/*.sgc`): the
//! IR as lowered (-O0), the IR after optimisation (-O1) and the -O1 assembly, in
//! `tests/golden/`. A change in the compiler's output shows up as a diff to review;
//! when it is intended, re-bless them with
//!
//! ```text
//! SAGRADA_BLESS=1 cargo test -p sagrada-cc --test golden
//! ```

use std::path::PathBuf;

use sagrada_cc::{OptLevel, compile};

const KERNELS: &[(&str, &str)] = &[
    ("vadd", include_str!("../../../kernels/vadd.sgc")),
    ("saxpy", include_str!("../../../kernels/saxpy.sgc")),
    ("row_sum", include_str!("../../../kernels/row_sum.sgc")),
    ("softmax", include_str!("../../../kernels/softmax.sgc")),
    ("gemm", include_str!("../../../kernels/gemm.sgc")),
    ("layernorm", include_str!("../../../kernels/layernorm.sgc")),
    ("gemm_bf16", include_str!("../../../kernels/gemm_bf16.sgc")),
];

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// Compares `got` with the golden file `name`, or writes it when blessing. Returns a
/// description of the difference, if any.
fn check(name: &str, got: &str) -> Option<String> {
    let path = golden_dir().join(name);
    if std::env::var_os("SAGRADA_BLESS").is_some() {
        std::fs::create_dir_all(golden_dir()).unwrap();
        std::fs::write(&path, got).unwrap();
        return None;
    }
    let want = match std::fs::read_to_string(&path) {
        Ok(w) => w,
        Err(e) => return Some(format!("{}: {e}", path.display())),
    };
    if want == got {
        return None;
    }
    let line = want
        .lines()
        .zip(got.lines())
        .position(|(a, b)| a != b)
        .unwrap_or_else(|| want.lines().count().min(got.lines().count()));
    Some(format!(
        "{name} differs from line {}:\n  golden: {}\n  now:    {}",
        line + 1,
        want.lines().nth(line).unwrap_or("(end of file)"),
        got.lines().nth(line).unwrap_or("(end of file)")
    ))
}

#[test]
fn the_demo_kernels_compile_to_their_golden_ir_and_assembly() {
    let mut diffs = Vec::new();
    for (name, src) in KERNELS {
        let file = format!("{name}.sgc");
        let o0 = compile(src, &file, OptLevel::O0).unwrap_or_else(|e| panic!("{e}"));
        let o1 = compile(src, &file, OptLevel::O1).unwrap_or_else(|e| panic!("{e}"));
        diffs.extend(check(&format!("{name}.O0.ir"), &o0.ir()));
        diffs.extend(check(&format!("{name}.O1.ir"), &o1.ir()));
        diffs.extend(check(&format!("{name}.O1.s"), &o1.asm));
    }
    assert!(
        diffs.is_empty(),
        "{}\n\nIf the change is intended, re-bless: SAGRADA_BLESS=1 cargo test -p sagrada-cc --test golden",
        diffs.join("\n")
    );
}
