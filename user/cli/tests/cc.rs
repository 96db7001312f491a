//! `sagrada cc`, run as a user runs it: its arguments, its outputs, and its errors.
//!
//! The tests of a successful compile, and of the diagnostic's text, need a working
//! compiler (`sagrada-cc`); the argument and file errors do not.

use std::path::Path;

mod common;

use common::{Scratch, fails, ok, sagrada};

const VADD: &str = include_str!("../../../kernels/vadd.sgc");

/// `load(` is not closed on line 2.
const BAD: &str = "kernel k(tensor<f32> a) {\n    f32x64 x = load(a, int4(0);\n}\n";

#[test]
fn a_missing_source_is_an_error_that_names_its_path() {
    let dir = Scratch::new("cc-missing");
    let missing = dir.path("nowhere.sgc");
    let err = fails(&[Path::new("cc"), &missing]);
    assert!(err.contains("cannot read"), "{err}");
    assert!(err.contains(&*missing.to_string_lossy()), "{err}");
}

#[test]
fn only_levels_0_and_1_and_the_three_emits_are_accepted() {
    let dir = Scratch::new("cc-args");
    let src = dir.path("vadd.sgc");
    std::fs::write(&src, VADD).unwrap();
    let err = fails(&[Path::new("cc"), &src, Path::new("-O2")]);
    assert!(err.contains("-O2") && err.contains("-O0 and -O1"), "{err}");
    let err = fails(&[Path::new("cc"), &src, Path::new("--emit"), Path::new("obj")]);
    assert!(err.contains("obj") && err.contains("bin"), "{err}");
    let err = fails(&["cc"]);
    assert!(err.contains("FILE"), "{err}");
}

#[test]
fn a_syntax_error_exits_nonzero_and_writes_nothing() {
    let dir = Scratch::new("cc-error-exit");
    let src = dir.path("bad.sgc");
    std::fs::write(&src, BAD).unwrap();
    let out = sagrada(&[Path::new("cc"), &src]);
    assert!(!out.status.success());
    assert!(!dir.path("bad.sgb").exists(), "a binary was written");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nothing written"), "{err}");
}

#[test]
fn bench_cc_refuses_zero_iterations() {
    let err = fails(&["bench", "cc", "--iterations", "0"]);
    assert!(err.contains("--iterations"), "{err}");
}

// From here on, the compiler must work.

#[test]
fn a_syntax_error_prints_the_rendered_diagnostic() {
    let dir = Scratch::new("cc-error-text");
    let src = dir.path("bad.sgc");
    std::fs::write(&src, BAD).unwrap();
    let err = fails(&[Path::new("cc"), &src]);
    let at = format!("{}:2:", src.display());
    assert!(err.contains(&at), "no {at} in: {err}");
    assert!(err.contains("load(a, int4(0);"), "the line is shown: {err}");
    assert!(err.contains('^'), "the marker is shown: {err}");
}

#[test]
fn the_binary_goes_next_to_the_source_by_default_and_to_o_when_given() {
    let dir = Scratch::new("cc-bin");
    let src = dir.path("vadd.sgc");
    std::fs::write(&src, VADD).unwrap();
    assert_eq!(
        ok(&[Path::new("cc"), &src]),
        "",
        "--emit bin prints nothing"
    );
    let default = std::fs::read(dir.path("vadd.sgb")).unwrap();
    assert_eq!(&default[..4], b"SGKB");
    // The runtime's disassembler reads it back as the kernel the source declares.
    let text = ok(&[Path::new("disasm"), &dir.path("vadd.sgb")]);
    assert!(
        text.starts_with(".kernel vadd\n.arg tensor a f32\n"),
        "{text}"
    );

    let out = dir.path("o1.sgb");
    ok(&[
        Path::new("cc"),
        &src,
        Path::new("-O1"),
        Path::new("-o"),
        &out,
    ]);
    assert_eq!(std::fs::read(&out).unwrap(), default, "-O1 is the default");
    let o0 = dir.path("o0.sgb");
    ok(&[
        Path::new("cc"),
        &src,
        Path::new("-O0"),
        Path::new("--output"),
        &o0,
    ]);
    assert_eq!(&std::fs::read(&o0).unwrap()[..4], b"SGKB");
}

#[test]
fn emit_ir_and_asm_print_to_stdout_unless_o_is_given() {
    let dir = Scratch::new("cc-emit");
    let src = dir.path("vadd.sgc");
    std::fs::write(&src, VADD).unwrap();
    let asm = ok(&[Path::new("cc"), &src, Path::new("--emit"), Path::new("asm")]);
    assert!(asm.contains("ldt.b32") && asm.contains("halt"), "{asm}");
    assert!(!dir.path("vadd.sgb").exists(), "--emit asm wrote a binary");
    let ir = ok(&[Path::new("cc"), &src, Path::new("--emit"), Path::new("ir")]);
    assert!(!ir.is_empty() && ir != asm, "{ir}");

    let out = dir.path("vadd.lst");
    let printed = ok(&[
        Path::new("cc"),
        &src,
        Path::new("--emit"),
        Path::new("asm"),
        Path::new("-o"),
        &out,
    ]);
    assert_eq!(printed, "");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), asm);
}
