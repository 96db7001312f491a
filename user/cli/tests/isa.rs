//! `sagrada asm` and `sagrada disasm`, run as a user runs them.

use std::path::Path;

mod common;

use common::{Scratch, ok, sagrada};

const SAXPY: &str = "\
# y = a * x + y, one row of 64 per invocation
.kernel saxpy
.arg tensor x f32
.arg tensor y f32
.arg f32 a
.scratch 0
.equ ROW, 64
    idx s4, 0
    muli s4, s4, ROW
    ldarg s1, a
    ldt.b32 v0, x, s4
    ldt.b32 v1, y, s4
.rept 2 i
    vmads.f32 v1, v0, s1
.endr
    stt.b32 v1, y, s4
    bne s1, s0, done
    @!p1 vadd.f32 v1, v1, v1
done:
    halt
";

#[test]
fn asm_disasm_asm_gives_the_same_bytes() {
    let dir = Scratch::new("isa-roundtrip");
    let src = dir.path("saxpy.s");
    std::fs::write(&src, SAXPY).unwrap();

    // The default output is the source with .sgb.
    ok(&[Path::new("asm"), &src]);
    let first = std::fs::read(dir.path("saxpy.sgb")).unwrap();
    assert_eq!(&first[..4], b"SGKB");

    let text = ok(&[Path::new("disasm"), &dir.path("saxpy.sgb")]);
    assert!(
        text.starts_with(".kernel saxpy\n.arg tensor x f32\n"),
        "{text}"
    );
    assert!(text.contains("    ldt.b32 v0, x, s4\n"), "{text}");
    assert!(text.contains("    bne s1, s0, L"), "{text}");
    let again = dir.path("again.s");
    std::fs::write(&again, &text).unwrap();
    let second = dir.path("again.sgb");
    ok(&[Path::new("asm"), &again, Path::new("-o"), &second]);
    assert_eq!(std::fs::read(&second).unwrap(), first);

    // And to a file, the same text.
    let out = dir.path("out.s");
    ok(&[Path::new("disasm"), &second, Path::new("--output"), &out]);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), text);
}

#[test]
fn asm_errors_name_the_place_and_fail() {
    let dir = Scratch::new("isa-error");
    let src = dir.path("bad.s");
    std::fs::write(
        &src,
        ".kernel bad\nnop\n    vadd.f32 v1, s3, v2\n    j nowhere\n",
    )
    .unwrap();
    let out = sagrada(&[Path::new("asm"), &src]);
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    let name = src.display();
    assert!(
        stderr.contains(&format!(
            "{name}:3:18: error: expected a vector register (v0-v31), found `s3`\n\
             3 |     vadd.f32 v1, s3, v2\n  |                  ^^\n"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{name}:4:7: error: undefined label `nowhere`")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("sagrada: {name}: 2 errors; no binary written")),
        "{stderr}"
    );
    assert!(!dir.path("bad.sgb").exists());
}

#[test]
fn disasm_refuses_a_broken_binary() {
    let dir = Scratch::new("isa-broken");
    let src = dir.path("k.s");
    std::fs::write(&src, "halt\n").unwrap();
    ok(&[Path::new("asm"), &src]);
    let bin = dir.path("k.sgb");
    let mut bytes = std::fs::read(&bin).unwrap();
    bytes[6] = 9; // ISA major version
    std::fs::write(&bin, bytes).unwrap();
    let out = sagrada(&[Path::new("disasm"), &bin]);
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("ISA major version at byte 6 is 9"),
        "{stderr}"
    );
}
