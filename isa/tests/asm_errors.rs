//! The assembler's errors, one class at a time: the message and where it points.

use sagrada_isa::asm::{AsmError, assemble, assemble_all_errors};

fn err(src: &str) -> AsmError {
    match assemble(src, "e.s") {
        Ok(k) => panic!("assembled: {k:?}"),
        Err(e) => e,
    }
}

/// Asserts the first error's line, column and message.
#[track_caller]
fn check(src: &str, line: usize, column: usize, message: &str) {
    let e = err(src);
    assert_eq!(
        (e.line, e.column, e.message.as_str()),
        (line, column, message),
        "\n{e}"
    );
}

#[test]
fn the_display_has_the_location_the_line_and_a_caret() {
    let e = err("nop\n\tvadd.f32 v1, s3, v2 # comment\n");
    assert_eq!(
        e.to_string(),
        "e.s:2:15: error: expected a vector register (v0-v31), found `s3`\n\
         2 | \tvadd.f32 v1, s3, v2 # comment\n  | \t             ^^"
    );
    assert_eq!(e.file, "e.s");
    assert_eq!(e.width, 2);
}

#[test]
fn operand_kinds() {
    check(
        "add s1, v2, s3",
        1,
        9,
        "expected a scalar register (s0-s31), found `v2`",
    );
    check(
        "vcmp.eq.f32 v1, v2, v3",
        1,
        13,
        "expected a predicate register (p0-p7), found `v1`",
    );
    check(
        "add s1, s32, s3",
        1,
        9,
        "expected a scalar register (s0-s31), found `s32`",
    );
    check(
        "add s1, s01, s3",
        1,
        9,
        "expected a scalar register (s0-s31), found `s01`",
    );
    check(
        "tdim s1, t16, 0",
        1,
        10,
        "expected a tensor slot (t0-t15) or a tensor argument's name, found `t16`",
    );
    check(
        "ldt.b32 v0, t0, s29",
        1,
        17,
        "expected a coordinate register (s0-s28, standing for sN..sN+3), found `s29`: \
         s29..s32 would run past s31",
    );
    check(
        "j 5",
        1,
        3,
        "expected a branch target (a label, or pc+N / pc-N), found `5`",
    );
    check("j pc*2", 1, 5, "expected `+` or `-` after `pc`, found `*2`");
    check(
        "addi s1, s2, s3",
        1,
        14,
        "expected a signed 32-bit immediate (-2147483648 to 4294967295), found `s3`",
    );
}

#[test]
fn arguments_by_name() {
    let src = ".arg tensor x\n.arg u32 n\n";
    check(
        &format!("{src}ldt.b32 v0, n, s4"),
        3,
        13,
        "expected a tensor slot (t0-t15) or a tensor argument, found `n`, a scalar argument",
    );
    check(
        &format!("{src}ldarg s1, x"),
        3,
        11,
        "`x` is a tensor argument; ldarg takes a scalar argument (its name or index)",
    );
    check(
        &format!("{src}addi s1, s1, n"),
        3,
        14,
        "expected a signed 32-bit immediate (-2147483648 to 4294967295), found `n`, a scalar \
         argument (only ldarg takes its name)",
    );
    let k = assemble(&format!("{src}ldarg s1, n\ntdim s2, x, 1"), "e.s").unwrap();
    assert_eq!(k.code.len(), 2);
}

#[test]
fn guards() {
    check(
        "@p1 add s1, s2, s3",
        1,
        1,
        "`add` takes no guard: only predicable (vector) instructions do",
    );
    check(
        "@p8 vmov v1, v2",
        1,
        1,
        "expected a predicate register (p0-p7) after `@`, found `p8`",
    );
    check(
        "@!v1 vmov v1, v2",
        1,
        1,
        "expected a predicate register (p0-p7) after `@!`, found `v1`",
    );
    check(
        "@p1",
        1,
        4,
        "expected an instruction after the guard, found the end of the line",
    );
}

#[test]
fn unknown_instructions_suggest_close_ones() {
    check(
        "  vadd v1, v2, v3",
        1,
        3,
        "unknown instruction `vadd`; did you mean `vadd.f32`, `vadd.i32`, `add` or `fadd`?",
    );
    check("frobnicate", 1, 1, "unknown instruction `frobnicate`");
    check(
        "1 + 2",
        1,
        1,
        "expected an instruction, a directive or a label, found `1`",
    );
}

#[test]
fn operand_counts() {
    check(
        "add s1, s2",
        1,
        11,
        "`add` takes 3 operands (sd, sa, sb), found 2",
    );
    check(
        "add s1, s2, s3, s4",
        1,
        17,
        "`add` takes 3 operands (sd, sa, sb), found 4",
    );
    check("halt s1", 1, 6, "`halt` takes no operands, found 1");
    check("coreid", 1, 7, "`coreid` takes 1 operand (sd), found 0");
    check(
        "add s1, , s3",
        1,
        7,
        "expected a scalar register (s0-s31) for `sa`, found nothing",
    );
}

#[test]
fn values_out_of_range_show_the_value() {
    check(
        "vmadl.f32 v1, v2, v3, 64",
        1,
        23,
        "value out of range: expected a lane number (0-63), found 64",
    );
    check(
        ".equ K, 3\nidx s1, K + 1",
        2,
        9,
        "value out of range: expected a dimension (0-3), found `K + 1` = 4",
    );
    check(
        "addi s1, s2, 0x100000000",
        1,
        14,
        "value out of range: expected a signed 32-bit immediate (-2147483648 to 4294967295), \
         found `0x100000000` = 4294967296",
    );
    check(
        "li s1, -2147483649",
        1,
        8,
        "value out of range: expected a 32-bit immediate (an integer, or a float literal), \
         found -2147483649",
    );
    check(
        "j pc+0x80000000",
        1,
        3,
        "branch offset 2147483648 (`pc+0x80000000`) does not fit in 32 bits",
    );
    check(
        ".word 0x10000000000000000",
        1,
        7,
        "value out of range: expected a 64-bit word, found `0x10000000000000000` = \
         18446744073709551616",
    );
    check(
        ".scratch 262145\nnop",
        1,
        10,
        "value out of range: expected a scratchpad size (0-262144), found 262145",
    );
}

#[test]
fn expressions() {
    check(
        "addi s1, s2, 1 / (2 - 2)",
        1,
        16,
        "division by zero in the expression",
    );
    check(
        "addi s1, s2, 5 % 0",
        1,
        16,
        "division by zero in the expression",
    );
    check(
        "addi s1, s2, 0x7fffffffffffffffffffffffffffffff + 1",
        1,
        49,
        "arithmetic overflow in the expression",
    );
    check(
        "addi s1, s2, 1 << 200",
        1,
        16,
        "arithmetic overflow in the expression",
    );
    check("addi s1, s2, 1 << -1", 1, 16, "negative shift amount -1");
    check(
        "addi s1, s2, foo",
        1,
        14,
        "undefined symbol `foo` in a signed 32-bit immediate (-2147483648 to 4294967295)",
    );
    check(
        "addi s1, s2, (1 + 2",
        1,
        20,
        "expected `)` to close the `(`",
    );
    check(
        "addi s1, s2, 1 2",
        1,
        16,
        "expected an operator or the end of the operand, found `2`",
    );
    check(
        "addi s1, s2, 1.5",
        1,
        14,
        "expected a signed 32-bit immediate (-2147483648 to 4294967295), found the float \
         literal `1.5`: only `li` takes float literals",
    );
    check(
        "li s1, 1.5 * 2",
        1,
        8,
        "expected a 32-bit immediate (an integer, or a float literal), found the float literal \
         `1.5`: a float literal must be the whole operand",
    );
    let deep = format!("addi s1, s2, {}1{}", "(".repeat(100), ")".repeat(100));
    check(&deep, 1, 78, "expression nested more than 64 deep");
    let negs = format!("addi s1, s2, {}1", "-".repeat(100));
    assert_eq!(err(&negs).message, "expression nested more than 64 deep");
    // Exact arithmetic, then the range check.
    let k = assemble(
        "addi s1, s2, (1 << 100) >> 99\naddi s1, s2, -0x80000000\nli s1, ~0",
        "e.s",
    )
    .unwrap();
    assert_eq!(k.code.len(), 3);
}

#[test]
fn lexical_errors() {
    check("add s1, s2, $3", 1, 13, "unexpected character `$`");
    check(
        "addi s1, s2, 0xg",
        1,
        14,
        "invalid hexadecimal integer `0xg`",
    );
    check("addi s1, s2, 12ab", 1, 14, "invalid decimal integer `12ab`");
    check(
        "li s1, 1e39",
        1,
        8,
        "float literal `1e39` is out of the f32 range (write `inf` for infinity)",
    );
    check("li s1, 1.2.3", 1, 8, "invalid float literal `1.2.3`");
    check(
        "addi s1, s2, 999999999999999999999999999999999999999999",
        1,
        14,
        "integer `999999999999999999999999999999999999999999` is too large",
    );
    check("é", 1, 1, "unexpected character `é`");
}

#[test]
fn labels() {
    check("j nowhere\nhalt", 1, 3, "undefined label `nowhere`");
    check(
        "a: nop\na: nop",
        2,
        1,
        "label `a` is already defined at line 1",
    );
    check(
        "pc: nop",
        1,
        1,
        "`pc` cannot be a label: `pc+N` is a branch target",
    );
    check(".entry start\nnop", 1, 8, "undefined label `start`");
    check(
        ".entry end\nnop\nend:",
        1,
        8,
        "entry label `end` is after the last instruction",
    );
}

#[test]
fn directives() {
    check(
        ".bogus 1\nnop",
        1,
        1,
        "unknown directive `.bogus`; the directives are .kernel, .arg, .scratch, .equ, \
         .entry, .rept, .endr and .word",
    );
    check(
        ".kernel a\n.kernel b\nnop",
        2,
        1,
        "`.kernel` given twice (first at line 1)",
    );
    check(
        ".kernel s3\nnop",
        1,
        9,
        "`s3` cannot name a kernel: names are identifiers (letters, digits, `_`), not \
         register names or `pc`",
    );
    check(".kernel\nnop", 1, 8, "`.kernel` needs the kernel's name");
    check(
        ".kernel a b\nnop",
        1,
        11,
        "unexpected `b` after the kernel's name",
    );
    check(
        ".arg matrix m\nnop",
        1,
        6,
        "expected an argument kind (tensor, i32, u32, f32), found `matrix`",
    );
    check(
        ".arg tensor m f64\nnop",
        1,
        15,
        "expected an element kind (f32, b32, i32, u32, bf16, f16), found `f64`",
    );
    check(
        ".arg i32 n\n.arg f32 n\nnop",
        2,
        10,
        "`n` is already defined as a scalar argument at line 1",
    );
    check(
        ".arg i32 v3\nnop",
        1,
        10,
        "`v3` cannot name an argument: names are identifiers (letters, digits, `_`), not \
         register names or `pc`",
    );
    check(
        ".equ nan, 1\nnop",
        1,
        6,
        "`nan` cannot name an .equ: names are identifiers (letters, digits, `_`), not \
         register names or `pc`, `inf` or `nan`",
    );
    check(
        ".equ K 1\nnop",
        1,
        6,
        "`.equ` takes a name and a value: `.equ NAME, EXPR`",
    );
    check(
        ".equ K, 1\n.equ K, 2\nnop",
        2,
        6,
        "`K` is already defined as an .equ at line 1",
    );
    check(".word\nnop", 1, 6, "`.word` needs a value");
    check(
        ".scratch 4\n.scratch 8\nnop",
        2,
        1,
        "`.scratch` given twice (first at line 1)",
    );
    let tensors: String = (0..17).map(|i| format!(".arg tensor x{i}\n")).collect();
    check(
        &format!("{tensors}nop"),
        17,
        1,
        "too many tensor arguments: at most 16 (t0-t15)",
    );
    let scalars: String = (0..65).map(|i| format!(".arg u32 n{i}\n")).collect();
    check(
        &format!("{scalars}nop"),
        65,
        1,
        "too many scalar arguments: at most 64",
    );
}

#[test]
fn rept_blocks() {
    check(".rept 2\nnop", 1, 1, "`.rept` without a matching `.endr`");
    check("nop\n.endr", 2, 1, "`.endr` without a `.rept`");
    check(
        ".rept 70000\nnop\n.endr",
        1,
        7,
        "`.rept 70000` of 1 line would expand to 70000 lines, over the limit of 65536 \
         expanded lines",
    );
    check(
        ".rept 256\n.rept 256\nnop\n.endr\n.endr",
        2,
        7,
        "`.rept 256` of 1 line would expand to 256 lines, over the limit of 65536 expanded \
         lines in all (65534 so far) (with iteration 254 of the .rept at line 1)",
    );
    check(
        ".rept -1\nnop\n.endr",
        1,
        7,
        "the `.rept` count is -1; it cannot be negative",
    );
    check(
        ".rept\nnop\n.endr",
        1,
        1,
        "`.rept` needs a count: `.rept COUNT [VARIABLE]`",
    );
    check(
        ".rept 2 i\n.rept 2 i\nnop\n.endr\n.endr",
        2,
        9,
        "`i` is already the variable of the .rept at line 1 (with `i` = 0 in the .rept at \
         line 1)",
    );
    let deep = format!("{}nop\n{}", ".rept 1\n".repeat(17), ".endr\n".repeat(17));
    check(&deep, 17, 1, "`.rept` nested more than 16 deep");
    // Found by fuzzing: a mistake repeated 60000 times is reported, and its
    // suggestions worked out, once.
    let errors = assemble_all_errors(".rept 60000\n  nkp\n.endr", "e.s").unwrap_err();
    assert_eq!(errors.len(), 1);
    assert_eq!(
        errors[0].message,
        "unknown instruction `nkp`; did you mean `nop`? (with iteration 0 of the .rept at \
         line 1)"
    );
    // An error inside a block is reported once, with the iteration it happened in.
    let errors = assemble_all_errors(".rept 4 i\nidx s1, i + 1\n.endr", "e.s").unwrap_err();
    assert_eq!(errors.len(), 1);
    assert_eq!(
        errors[0].message,
        "value out of range: expected a dimension (0-3), found `i + 1` = 4 (with `i` = 3 in \
         the .rept at line 1)",
    );
}

#[test]
fn the_whole_file() {
    let e = err("# nothing\n");
    assert_eq!(e.line, 0);
    assert_eq!(
        e.to_string(),
        "e.s: error: no instructions: a kernel needs at least one"
    );
}

#[test]
fn every_error_is_reported_in_line_order() {
    let errors =
        assemble_all_errors("j nowhere\nadd s1\n@p1 nop\nvmov v1, v99\n$", "e.s").unwrap_err();
    let at: Vec<(usize, usize)> = errors.iter().map(|e| (e.line, e.column)).collect();
    assert_eq!(at, [(1, 3), (2, 7), (3, 1), (4, 10), (5, 1)]);
}
