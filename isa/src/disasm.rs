//! The disassembler: a [`KernelBinary`] back to assembly source that
//! [`assemble`](crate::asm::assemble) turns into the identical binary.
//!
//! The output is a complete file: `.kernel`, `.arg`, `.scratch` and `.entry` lines,
//! then one instruction per line. Branch targets inside the program (up to one
//! past its last instruction) become labels `L<index>`, others stay `pc+N` /
//! `pc-N`; tensor slots and `ldarg` indexes that name a declared argument are
//! written by its name; `li` constants that look like floats carry the float as a
//! comment; a word that is not an instruction is written as `.word 0x...` with the
//! decoder's complaint as a comment.
//!
//! Left out: recovering anything the binary does not hold (the source's labels,
//! `.equ` names, `.rept` blocks, comments). The exact round trip holds for binaries
//! that [`KernelBinary::validate`] accepts.

use std::fmt::Write;

use crate::asm::{Value, values};
use crate::binary::{ArgKind, ElemKind, KernelBinary};
use crate::inst::{Inst, Opcode};

/// The assembly source of `binary`.
pub fn disassemble(binary: &KernelBinary) -> String {
    let n = binary.code.len();
    let decoded: Vec<_> = binary.code.iter().map(|&w| Inst::decode(w)).collect();
    let target = |pc: usize, off: i32| -> Option<usize> {
        usize::try_from(pc as i64 + i64::from(off))
            .ok()
            .filter(|&t| t <= n)
    };

    let mut labelled = vec![false; n + 1];
    let entry = binary.entry as usize;
    if entry < n {
        labelled[entry] = true;
    }
    for (pc, inst) in decoded.iter().enumerate() {
        if let Ok(inst) = inst {
            for v in values(&inst.op) {
                if let Value::Off(off) = v
                    && let Some(t) = target(pc, off.0)
                {
                    labelled[t] = true;
                }
            }
        }
    }

    let tensors: Vec<&str> = binary.tensor_args().map(|a| a.name.as_str()).collect();
    let scalars: Vec<&str> = binary.scalar_args().map(|a| a.name.as_str()).collect();

    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(out, ".kernel {}", binary.name);
    for a in &binary.args {
        let _ = match a.kind {
            ArgKind::Tensor(ElemKind::Any) => writeln!(out, ".arg tensor {}", a.name),
            ArgKind::Tensor(e) => writeln!(out, ".arg tensor {} {}", a.name, e.name()),
            ArgKind::I32 => writeln!(out, ".arg i32 {}", a.name),
            ArgKind::U32 => writeln!(out, ".arg u32 {}", a.name),
            ArgKind::F32 => writeln!(out, ".arg f32 {}", a.name),
        };
    }
    let _ = writeln!(out, ".scratch {}", binary.scratch_bytes);
    if entry < n {
        let _ = writeln!(out, ".entry L{entry}");
    }
    out.push('\n');

    for (pc, (word, inst)) in binary.code.iter().zip(&decoded).enumerate() {
        if labelled[pc] {
            let _ = writeln!(out, "L{pc}:");
        }
        let (text, comment) = match inst {
            Ok(inst) => {
                let mut text = String::new();
                if !inst.guard.is_always() {
                    let _ = write!(text, "{} ", inst.guard);
                }
                let opcode = inst.op.opcode();
                text.push_str(opcode.mnemonic());
                let mut comment = None;
                for (i, v) in values(&inst.op).into_iter().enumerate() {
                    text.push_str(if i == 0 { " " } else { ", " });
                    match v {
                        Value::Off(off) => match target(pc, off.0) {
                            Some(t) => {
                                let _ = write!(text, "L{t}");
                            }
                            None => {
                                let _ = write!(text, "{off}");
                            }
                        },
                        Value::TReg(t) if usize::from(t.0) < tensors.len() => {
                            text.push_str(tensors[usize::from(t.0)]);
                        }
                        Value::Imm(imm)
                            if opcode == Opcode::Ldarg
                                && usize::try_from(imm.0).is_ok_and(|i| i < scalars.len()) =>
                        {
                            text.push_str(scalars[imm.0 as usize]);
                        }
                        Value::Bits(bits) => {
                            let _ = write!(text, "{bits}");
                            if bits.0 >= 0x1_0000 {
                                comment = Some(format!("{:?}", f32::from_bits(bits.0)));
                            }
                        }
                        v => {
                            let _ = write!(text, "{v}");
                        }
                    }
                }
                (text, comment)
            }
            Err(e) => (format!(".word {word:#018x}"), Some(e.to_string())),
        };
        match comment {
            Some(c) => {
                let _ = writeln!(out, "    {text:<32} # {c}");
            }
            None => {
                let _ = writeln!(out, "    {text}");
            }
        }
    }
    if labelled[n] {
        let _ = writeln!(out, "L{n}:");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asm::assemble;

    #[test]
    fn round_trips_with_labels_and_names() {
        let src = "\
.kernel k
.arg tensor x f32
.arg i32 n
.arg tensor y
.scratch 64
.entry start
    nop
start:
    ldarg s1, n
    li s2, 1.5
    ldt.b32 v0, y, s4
loop:
    @!p2 vadd.f32 v1, v1, v0
    bne s1, s0, loop
    j end
    j pc-100
    .word 0xff
end:
";
        let k = assemble(src, "k.s").unwrap_or_else(|e| panic!("{e}"));
        let text = disassemble(&k);
        assert_eq!(
            text,
            "\
.kernel k
.arg tensor x f32
.arg i32 n
.arg tensor y
.scratch 64
.entry L1

    nop
L1:
    ldarg s1, n
    li s2, 0x3fc00000                # 1.5
    ldt.b32 v0, y, s4
L4:
    @!p2 vadd.f32 v1, v1, v0
    bne s1, s0, L4
    j L9
    j pc-100
    .word 0x00000000000000ff         # unknown opcode 0xff in 0x00000000000000ff
L9:
"
        );
        assert_eq!(assemble(&text, "k.s"), Ok(k));
    }
}
