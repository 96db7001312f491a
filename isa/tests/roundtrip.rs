//! Round trips and robustness of the encoding, the kernel binary format, the
//! assembler and the disassembler, over instructions generated from the table.
//!
//! The same properties as the fuzz targets in `isa/fuzz/` (which need nightly), run
//! here in CI on proptest's inputs.

use proptest::collection::vec;
use proptest::prelude::*;
use sagrada_isa::asm::assemble;
use sagrada_isa::binary::{ArgDecl, ArgKind, ElemKind, KernelBinary, is_valid_name};
use sagrada_isa::disasm::disassemble;
#[allow(unused_imports)] // the table names all of them
use sagrada_isa::{
    Bits, CReg, Dim, Guard, Imm, Inst, Lane, Off, Op, Opcode, Operand, OperandKind, PReg, SReg,
    TReg, VReg,
};

/// `op_from_fields(opcode, raw)`: the operation with one raw field value per operand,
/// in table order, generated from the table like the assembler's builder.
macro_rules! define_op_from_fields {
    ($(
        $(#[doc = $doc:literal])*
        $code:literal $name:ident $mnemonic:literal $pred:literal { $($field:ident : $kind:ident),* };
    )*) => {
        fn op_from_fields(opcode: Opcode, raw: &[u32]) -> Op {
            #[allow(unused_mut, unused_variables)]
            let mut it = raw.iter().copied();
            match opcode {
                $(Opcode::$name => Op::$name {
                    $($field: <$kind as Operand>::from_field(it.next().expect("a value per operand"))
                        .expect("a value in range")),*
                },)*
            }
        }
    };
}

sagrada_isa::for_each_op!(define_op_from_fields);

/// Legal raw values of an operand kind.
fn field(kind: OperandKind) -> BoxedStrategy<u32> {
    let wide = || {
        prop_oneof![
            any::<u32>(),
            0u32..16,
            (-16i32..0).prop_map(|v| v as u32),
            Just(0x8000_0000u32),
            Just(u32::MAX),
        ]
        .boxed()
    };
    match kind {
        OperandKind::SReg | OperandKind::VReg => (0u32..=31).boxed(),
        OperandKind::PReg => (0u32..=7).boxed(),
        OperandKind::TReg => (0u32..=15).boxed(),
        OperandKind::CReg => (0u32..=28).boxed(),
        OperandKind::Lane => (0u32..64).boxed(),
        OperandKind::Dim => (0u32..4).boxed(),
        OperandKind::Imm | OperandKind::Bits | OperandKind::Off => wide(),
    }
}

/// An instruction's parts: opcode, raw operand fields, guard.
fn inst_parts() -> impl Strategy<Value = (Opcode, Vec<u32>, Guard)> {
    (0..Opcode::ALL.len()).prop_flat_map(|i| {
        let opcode = Opcode::ALL[i];
        let fields: Vec<_> = opcode.operands().iter().map(|o| field(o.kind)).collect();
        let guard = if opcode.predicable() {
            (0u32..16).prop_map(Guard::from_field).boxed()
        } else {
            Just(Guard::ALWAYS).boxed()
        };
        (Just(opcode), fields, guard)
    })
}

/// Any legal instruction.
fn inst() -> impl Strategy<Value = Inst> {
    inst_parts().prop_map(|(opcode, raw, guard)| Inst::guarded(guard, op_from_fields(opcode, &raw)))
}

fn name() -> impl Strategy<Value = String> {
    "[a-zA-Z_][a-zA-Z0-9_]{0,10}".prop_filter("a valid name", |s| is_valid_name(s))
}

fn args() -> impl Strategy<Value = Vec<ArgDecl>> {
    let arg = (0u8..4, 0u8..6, name()).prop_map(|(kind, elem, name)| match kind {
        0 => ArgDecl::tensor(name, ElemKind::from_code(elem).unwrap()),
        1 => ArgDecl::scalar(name, ArgKind::I32),
        2 => ArgDecl::scalar(name, ArgKind::U32),
        _ => ArgDecl::scalar(name, ArgKind::F32),
    });
    vec(arg, 0..24).prop_map(|mut args| {
        let mut seen = std::collections::HashSet::new();
        args.retain(|a| seen.insert(a.name.clone()));
        let mut tensors = 0;
        args.retain(|a| {
            tensors += usize::from(a.kind.is_tensor());
            !a.kind.is_tensor() || tensors <= 16
        });
        args
    })
}

#[derive(Clone, Debug)]
enum Slot {
    /// An instruction; its branch target, if any, retargeted inside the program when
    /// the seed is given.
    Inst(Opcode, Vec<u32>, Guard, Option<u32>),
    /// A raw word (almost never an instruction).
    Word(u64),
}

/// A valid kernel binary with random code: instructions, branches inside and
/// outside the program, words that do not decode, random arguments.
fn program() -> impl Strategy<Value = KernelBinary> {
    let slot = prop_oneof![
        8 => (inst_parts(), proptest::option::of(any::<u32>()))
            .prop_map(|((o, raw, g), t)| Slot::Inst(o, raw, g, t)),
        1 => any::<u64>().prop_map(Slot::Word),
    ];
    (
        vec(slot, 1..40),
        args(),
        any::<u32>(),
        prop_oneof![Just(0u32), 0u32..=sagrada_isa::SCRATCH_BYTES as u32],
        name(),
    )
        .prop_map(|(slots, args, entry, scratch_bytes, name)| {
            let n = slots.len();
            let code = slots
                .into_iter()
                .enumerate()
                .map(|(pc, slot)| match slot {
                    Slot::Word(w) => w,
                    Slot::Inst(opcode, mut raw, guard, retarget) => {
                        for (k, o) in opcode.operands().iter().enumerate() {
                            if let (OperandKind::Off, Some(seed)) = (o.kind, retarget) {
                                let target = seed as usize % (n + 1);
                                raw[k] = (target as i64 - pc as i64) as i32 as u32;
                            }
                        }
                        Inst::guarded(guard, op_from_fields(opcode, &raw)).encode()
                    }
                })
                .collect();
            KernelBinary {
                name,
                entry: entry % n as u32,
                code,
                args,
                scratch_bytes,
            }
        })
}

/// Tokens to make assembler input from: real syntax, broken syntax, edge values.
const SOUP: &[&str] = &[
    "s0",
    "s1",
    "s28",
    "s29",
    "s31",
    "s32",
    "v0",
    "v31",
    "v32",
    "p0",
    "p7",
    "p8",
    "t0",
    "t15",
    "t16",
    "x",
    "n",
    "i",
    "j",
    "L0",
    "L1",
    "pc",
    "pc+1",
    "pc-1",
    "pc+2147483648",
    "0",
    "1",
    "-1",
    "63",
    "64",
    "0x7fffffff",
    "0xffffffff",
    "0x100000000",
    "0b101",
    "0x",
    "08",
    "1_000",
    "340282366920938463463374607431768211455",
    "340282366920938463463374607431768211456",
    "170141183460469231731687303715884105727",
    "1.5",
    "-2.5e-3",
    "1e99",
    "1.2.3",
    "inf",
    "nan",
    ",",
    ",",
    ",",
    ":",
    "(",
    ")",
    "+",
    "-",
    "*",
    "/",
    "%",
    "<<",
    ">>",
    "&",
    "|",
    "^",
    "~",
    "@",
    "!",
    "@p1",
    "@!p2",
    "@p9",
    ".kernel",
    ".arg",
    "tensor",
    "f32",
    "i32",
    "u32",
    "bf16",
    ".scratch",
    ".equ",
    ".entry",
    ".rept",
    ".endr",
    ".word",
    ".bogus",
    "#",
    ";",
    "//",
    "é",
    "$",
    "\t",
    "\n",
    "\n",
    "\n",
    "\n",
    "\n",
    "\n",
    "\r\n",
];

fn soup() -> impl Strategy<Value = String> {
    let mnemonic = (0..Opcode::ALL.len()).prop_map(|i| Opcode::ALL[i].mnemonic().to_owned());
    let token = prop_oneof![
        3 => (0..SOUP.len()).prop_map(|i| SOUP[i].to_owned()),
        1 => mnemonic,
    ];
    vec(token, 0..60).prop_map(|t| t.join(" "))
}

/// Operand texts for each kind (`ldarg` also gets the scalar argument `n`, tensor
/// slots the tensor arguments `x` and `y`), then some wrong for every kind.
fn operand_texts(kind: OperandKind) -> &'static [&'static str] {
    match kind {
        OperandKind::SReg => &["s0", "s3", "s31"],
        OperandKind::VReg => &["v0", "v1", "v31"],
        OperandKind::PReg => &["p0", "p3", "p7"],
        OperandKind::TReg => &["t0", "t15", "x", "y"],
        OperandKind::CReg => &["s0", "s4", "s28"],
        OperandKind::Imm => &[
            "0",
            "-7",
            "K",
            "n",
            "i * 4 + 1",
            "(K << 2) | 1",
            "0xffffffff",
        ],
        OperandKind::Bits => &["1.5", "-inf", "nan", "3", "-2147483648", "0xffffffff", "K"],
        OperandKind::Lane => &["0", "63", "i", "K * 2"],
        OperandKind::Dim => &["0", "3", "i"],
        OperandKind::Off => &["L0", "L1", "end", "pc", "pc+2", "pc-1", "pc+1000"],
    }
}
const WRONG: &[&str] = &[
    "s29",
    "v32",
    "p8",
    "t16",
    "64",
    "4",
    "1.5",
    "undefined",
    "",
    "pc+",
];

/// One instruction line, its operands mostly of the right count and kinds.
fn inst_line() -> impl Strategy<Value = String> {
    (
        0..Opcode::ALL.len(),
        0u8..8,
        vec((0u8..40, any::<usize>()), 5),
        0u8..30,
    )
        .prop_map(|(i, guard, picks, count)| {
            let opcode = Opcode::ALL[i];
            let infos = opcode.operands();
            let n = match count {
                0 => infos.len().saturating_sub(1),
                1 => infos.len() + 1,
                _ => infos.len(),
            };
            let ops: Vec<&str> = (0..n.min(5))
                .map(|k| {
                    let (p, seed) = picks[k];
                    match infos.get(k) {
                        Some(o) if p > 0 => {
                            let texts = operand_texts(o.kind);
                            texts[seed % texts.len()]
                        }
                        _ => WRONG[seed % WRONG.len()],
                    }
                })
                .collect();
            let guard = match (guard, opcode.predicable()) {
                (0, true) => "@p1 ",
                (1, true) => "@!p7 ",
                (2, _) if count == 3 => "@p2 ",
                _ => "",
            };
            format!("{guard}{} {}", opcode.mnemonic(), ops.join(", "))
        })
}

/// Lines of mostly well-formed assembly: labels, guards, instructions, the
/// directives and `.rept` blocks (some nested, a few broken).
fn lines() -> impl Strategy<Value = String> {
    let directive = prop_oneof![
        Just(".rept 2".to_owned()),
        Just(".endr".to_owned()),
        Just(".equ K, 5".to_owned()),
        Just(".arg tensor x f32".to_owned()),
        Just(".arg tensor y".to_owned()),
        Just(".arg i32 n".to_owned()),
        Just(".entry L1".to_owned()),
        Just(".scratch 256".to_owned()),
        Just(".word 0x1, -1".to_owned()),
        Just(".kernel k".to_owned()),
        Just("L0:".to_owned()),
        Just("L1: nop".to_owned()),
        Just("end:".to_owned()),
    ];
    let block = (
        0u8..4,
        vec(inst_line(), 1..3),
        vec(inst_line(), 0..2),
        any::<bool>(),
    )
        .prop_map(|(count, body, inner, nest)| {
            let mut b = format!(".rept {count} i\n{}\n", body.join("\n"));
            if nest {
                b.push_str(&format!(".rept 2 j\n{}\n.endr\n", inner.join("\n")));
            }
            b + ".endr"
        });
    let line = prop_oneof![12 => inst_line(), 1 => directive, 2 => block];
    (vec(line, 0..12), any::<bool>()).prop_map(|(l, header)| {
        let body = l.join("\n");
        if header {
            format!(".equ K, 5\n.arg tensor x f32\n.arg tensor y\n.arg i32 n\nL0:\n{body}\nL1: nop\nend:\n")
        } else {
            body
        }
    })
}

/// What the `asm` fuzz target checks: assembling never panics, and what assembles
/// disassembles to source that assembles to the same binary.
fn check_asm(src: &str) -> Result<(), TestCaseError> {
    if let Ok(k) = assemble(src, "soup.s") {
        let text = disassemble(&k);
        let again = assemble(&text, "soup.s");
        prop_assert_eq!(again, Ok(k), "{}", text);
    }
    Ok(())
}

/// What the `binary` fuzz target checks: reading never panics, and what reads
/// writes back to bytes that read the same.
fn check_binary(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(k) = KernelBinary::from_bytes(bytes) {
        prop_assert_eq!(KernelBinary::from_bytes(&k.to_bytes()), Ok(k));
    }
    Ok(())
}

proptest! {
    #[test]
    fn decode_inverts_encode(i in inst()) {
        prop_assert!(i.is_legal());
        prop_assert_eq!(Inst::decode(i.encode()), Ok(i));
    }

    /// What the `decode` fuzz target checks.
    #[test]
    fn words_that_decode_encode_back(w in any::<u64>()) {
        if let Ok(i) = Inst::decode(w) {
            prop_assert_eq!(i.encode(), w);
        }
    }

    #[test]
    fn disassembly_reassembles_to_the_same_bytes(k in program()) {
        prop_assert_eq!(k.validate(), Ok(()));
        let bytes = k.to_bytes();
        let read = KernelBinary::from_bytes(&bytes);
        prop_assert_eq!(read.as_ref(), Ok(&k));
        let text = disassemble(&k);
        let again = assemble(&text, "prog.s").map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(again.to_bytes(), bytes, "{}", text);
    }

    #[test]
    fn binary_reader_survives_random_bytes(bytes in vec(any::<u8>(), 0..300)) {
        check_binary(&bytes)?;
    }

    #[test]
    fn binary_reader_survives_corrupted_binaries(
        k in program(),
        edits in vec((any::<usize>(), any::<u8>()), 1..4),
        cut in any::<usize>(),
    ) {
        let mut bytes = k.to_bytes();
        for (at, v) in edits {
            let at = at % bytes.len();
            bytes[at] = v;
        }
        if cut % 4 == 0 {
            bytes.truncate(cut % (bytes.len() + 1));
        }
        check_binary(&bytes)?;
    }

    #[test]
    fn assembler_survives_token_soup(src in soup()) {
        check_asm(&src)?;
    }

    #[test]
    fn assembler_survives_line_soup(src in lines()) {
        check_asm(&src)?;
    }

    #[test]
    fn assembler_survives_random_text(src in any::<String>()) {
        check_asm(&src)?;
    }

    #[test]
    fn assembler_survives_edited_disassembly(
        k in program(),
        edits in vec((any::<usize>(), 0..SOUP.len()), 1..4),
    ) {
        let mut text = disassemble(&k);
        for (at, t) in edits {
            let mut at = at % (text.len() + 1);
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            text.insert_str(at, SOUP[t]);
        }
        check_asm(&text)?;
    }
}

/// Sample raw values of each kind: the smallest, the largest, and one between.
fn samples(kind: OperandKind) -> [u32; 3] {
    match kind {
        OperandKind::SReg | OperandKind::VReg => [0, 31, 17],
        OperandKind::PReg => [0, 7, 3],
        OperandKind::TReg => [0, 15, 9],
        OperandKind::CReg => [0, 28, 4],
        OperandKind::Lane => [0, 63, 21],
        OperandKind::Dim => [0, 3, 2],
        OperandKind::Imm | OperandKind::Off => [0x8000_0000, 0x7fff_ffff, (-5i32) as u32],
        OperandKind::Bits => [0, u32::MAX, 0x3fc0_0000],
    }
}

#[test]
fn every_opcode_assembles_from_its_display_text() {
    for &opcode in Opcode::ALL {
        for variant in 0..3 {
            let raw: Vec<u32> = opcode
                .operands()
                .iter()
                .map(|o| samples(o.kind)[variant])
                .collect();
            let guard = if opcode.predicable() && variant > 0 {
                Guard::from_field(variant as u32 * 5)
            } else {
                Guard::ALWAYS
            };
            let inst = Inst::guarded(guard, op_from_fields(opcode, &raw));
            let text = inst.to_string();
            let k = assemble(&text, "one.s").unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(k.code, [inst.encode()], "{text}");
        }
    }
}

#[test]
fn a_kernel_round_trips_through_every_layer() {
    let src = "\
# y = a * x + y over rows of 64
.kernel saxpy
.arg tensor x f32
.arg tensor y f32
.arg f32 a
.arg u32 rows
.equ LANES, 64
.scratch 0
    idx s4, 0
    muli s4, s4, LANES
    idx s5, 1
    li s6, 0
    li s7, 0
    ldarg s1, a
    ldt.b32 v0, x, s4
    ldt.b32 v1, y, s4
    vmads.f32 v1, v0, s1
    stt.b32 v1, y, s4
.rept 2 i
    addi s8, s8, i
.endr
    halt
";
    let k = assemble(src, "saxpy.s").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(k.name, "saxpy");
    assert_eq!(k.code.len(), 13);
    assert_eq!(k.tensor_slot(1), Some(TReg(1)));
    assert_eq!(k.scalar_index(3), Some(1));
    let again = KernelBinary::from_bytes(&k.to_bytes()).unwrap();
    assert_eq!(again, k);
    assert_eq!(assemble(&disassemble(&k), "saxpy.s"), Ok(k));
}
