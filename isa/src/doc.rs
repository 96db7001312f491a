//! The instruction reference, `docs/isa/instructions.md`, generated from the table.
//!
//! Everything the reference says about an instruction comes from [`Opcode`]: its
//! mnemonic, its operands with their kinds and roles, whether it takes a guard, and
//! its documentation. The only knowledge kept here is how the categories divide the
//! opcode space and where each field sits in the word; the unit tests check the
//! latter against the decoder. `tests/docs.rs` fails when the file on disk differs
//! from [`instruction_reference`]. The machine itself is described by hand in
//! `docs/isa/README.md`.

use std::fmt::Write;

use crate::inst::{Opcode, OperandInfo};
use crate::operand::Field;
use crate::{ISA_VERSION_MAJOR, ISA_VERSION_MINOR};

/// A bit range of the instruction word: high bit, low bit.
type Bits = (u32, u32);

const OPCODE_BITS: Bits = (7, 0);
const GUARD_BITS: Bits = (11, 8);
const GUARD_REG_BITS: Bits = (10, 8);
const GUARD_NEG_BIT: u32 = 11;
const SLOT_BITS: [Bits; 4] = [(16, 12), (21, 17), (26, 22), (31, 27)];
const IMM_BITS: Bits = (63, 32);

/// A category of the reference: a title and the opcode ranges it covers.
struct Group {
    title: &'static str,
    ranges: &'static [(u8, u8)],
}

/// The categories, in the order the reference lists them. The scalar range is split
/// along the table's comment groups; the scalar tensor accesses sit in the memory
/// range but belong with the other scalar memory instructions.
const GROUPS: &[Group] = &[
    Group {
        title: "Scalar: control",
        ranges: &[(0x00, 0x01), (0x20, 0x27)],
    },
    Group {
        title: "Scalar: integer",
        ranges: &[(0x02, 0x1f)],
    },
    Group {
        title: "Scalar: the launch",
        ranges: &[(0x28, 0x2c)],
    },
    Group {
        title: "Scalar: memory",
        ranges: &[(0x2d, 0x2f), (0xa6, 0xa7)],
    },
    Group {
        title: "Scalar: f32",
        ranges: &[(0x30, 0x3f)],
    },
    Group {
        title: "Vector: f32 arithmetic",
        ranges: &[(0x40, 0x50)],
    },
    Group {
        title: "Vector: f32 reductions and compares",
        ranges: &[(0x51, 0x57)],
    },
    Group {
        title: "Vector: conversions",
        ranges: &[(0x58, 0x67)],
    },
    Group {
        title: "Vector: integer",
        ranges: &[(0x68, 0x7f)],
    },
    Group {
        title: "Vector: lane movement",
        ranges: &[(0x80, 0x8f)],
    },
    Group {
        title: "Predicates",
        ranges: &[(0x90, 0x9f)],
    },
    Group {
        title: "Vector: memory",
        ranges: &[(0xa0, 0xa5), (0xa8, 0xaf)],
    },
];

/// The index in [`GROUPS`] of the category an opcode byte belongs to.
fn group_of(opcode: u8) -> Option<usize> {
    GROUPS
        .iter()
        .position(|g| g.ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&opcode)))
}

/// The opcodes of a category, by opcode byte.
fn members(group: usize) -> Vec<Opcode> {
    let mut ops: Vec<Opcode> = Opcode::ALL
        .iter()
        .copied()
        .filter(|&op| group_of(op as u8) == Some(group))
        .collect();
    ops.sort();
    ops
}

/// The assembly form with the operands' table names: `[@p] vadd.f32 vd, va, vb`.
fn syntax(op: Opcode) -> String {
    let mut s = String::new();
    if op.predicable() {
        s.push_str("[@p] ");
    }
    s.push_str(op.mnemonic());
    for (i, o) in op.operands().iter().enumerate() {
        s.push_str(if i == 0 { " " } else { ", " });
        s.push_str(o.name);
    }
    s
}

/// The HTML anchor of an instruction's section.
fn anchor(op: Opcode) -> String {
    op.mnemonic().replace('.', "-")
}

/// The documentation's paragraphs, each joined onto one line.
fn paragraphs(doc: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    for line in doc.lines().map(str::trim) {
        if line.is_empty() {
            if !current.is_empty() {
                out.push(current.join(" "));
                current.clear();
            }
        } else {
            current.push(line);
        }
    }
    if !current.is_empty() {
        out.push(current.join(" "));
    }
    out
}

/// The summary: the documentation's first paragraph.
fn summary(op: Opcode) -> String {
    paragraphs(op.doc()).into_iter().next().unwrap_or_default()
}

/// Text made safe for a table cell (a `|`, even inside code, ends the cell).
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

fn bits(b: Bits) -> String {
    if b.0 == b.1 {
        b.0.to_string()
    } else {
        format!("{}:{}", b.0, b.1)
    }
}

fn mask(b: Bits) -> u64 {
    let width = b.0 - b.1 + 1;
    (u64::MAX >> (64 - width)) << b.1
}

/// Where each operand sits, in operand order, as the encoder packs them: register-like
/// kinds take the next slot, immediate-like kinds the immediate field.
fn layout(op: Opcode) -> Vec<(&'static OperandInfo, Bits, Option<usize>)> {
    let mut slot = 0;
    op.operands()
        .iter()
        .map(|o| match o.kind.field() {
            Field::Slot => {
                slot += 1;
                (o, SLOT_BITS[slot - 1], Some(slot - 1))
            }
            Field::Imm => (o, IMM_BITS, None),
        })
        .collect()
}

/// The bits an instruction does not use, which must be zero.
fn unused_bits(op: Opcode) -> u64 {
    let mut used = mask(OPCODE_BITS);
    if op.predicable() {
        used |= mask(GUARD_BITS);
    }
    for (_, b, _) in layout(op) {
        used |= mask(b);
    }
    !used
}

/// A 64-bit value in hex, with `_` between groups of four digits.
fn hex64(v: u64) -> String {
    let digits = format!("{v:016x}");
    let groups: Vec<&str> = (0..4).map(|i| &digits[i * 4..i * 4 + 4]).collect();
    format!("0x{}", groups.join("_"))
}

/// The markdown instruction reference, as `docs/isa/instructions.md` holds it.
pub fn instruction_reference() -> String {
    let mut out = String::new();
    // Writing to a String cannot fail: the `let _ =` below drop `Ok(())`.
    let _ = write!(
        out,
        "# SG1 instruction reference\n\n\
         ISA version {ISA_VERSION_MAJOR}.{ISA_VERSION_MINOR}, {n} instructions. \
         Generated from the instruction table (`isa/src/table.rs`) by `isa/src/doc.rs`; \
         do not edit by hand: regenerate it with \
         `SAGRADA_BLESS=1 cargo test -p sagrada-isa --test docs`. The machine these \
         instructions run on (registers, data types, memory, the index space, faults, \
         the binary format and the assembly language) is described in \
         [README.md](README.md).\n\n",
        n = Opcode::ALL.len(),
    );
    let _ = write!(
        out,
        "## Conventions\n\n\
         - Operands are named as in the table. An operand whose name ends in `d` (`sd`, \
         `vd`, `pd`) is written by the instruction; every other register operand is read.\n\
         - `[@p]` marks an instruction that takes a guard: `@pN` or `@!pN` written before \
         the mnemonic makes it act only on the lanes where predicate register `pN` is \
         set (`@pN`) or clear (`@!pN`). Without a guard (the same as `@p0`) every lane \
         is active. Lanes outside the guard of a vector or predicate destination keep \
         their values; reductions count them as the identity; loads and stores neither \
         access nor check them.\n\
         - Every instruction is one little-endian 64-bit word: the opcode in bits {opc}, \
         the guard in bits {guard} (the predicate register in {greg}, negation in bit \
         {gneg}), register-like operands in 5-bit slots at bits {s0}, {s1}, {s2} and \
         {s3} in operand order, and the immediate-like operand in bits {imm}. The bits \
         an instruction does not use must be zero; a word that breaks this, or an \
         operand field out of its range, is an illegal instruction.\n\
         - A coordinate operand (`c`) names the first of four consecutive scalar \
         registers `sN`..`sN+3`, which hold a tensor coordinate along dimensions 0 to 3. \
         In the semantics, `c`, `c+1`, `c+2` and `c+3` stand for the values of those \
         registers, and `c + i` for the value of the first plus `i`.\n\
         - A branch target is written as a label (or `pc+N`, `pc-N`) and encoded as the \
         signed distance in instructions from the branch to its target.\n\n",
        opc = bits(OPCODE_BITS),
        guard = bits(GUARD_BITS),
        greg = bits(GUARD_REG_BITS),
        gneg = GUARD_NEG_BIT,
        s0 = bits(SLOT_BITS[0]),
        s1 = bits(SLOT_BITS[1]),
        s2 = bits(SLOT_BITS[2]),
        s3 = bits(SLOT_BITS[3]),
        imm = bits(IMM_BITS),
    );

    let _ = write!(out, "## Summary\n\n");
    for (g, group) in GROUPS.iter().enumerate() {
        let ops = members(g);
        if ops.is_empty() {
            continue;
        }
        let _ = write!(
            out,
            "### {}\n\n| Opcode | Syntax | Summary |\n|---|---|---|\n",
            group.title
        );
        for op in ops {
            let _ = writeln!(
                out,
                "| `{:#04x}` | [`{}`](#{}) | {} |",
                op as u8,
                syntax(op),
                anchor(op),
                cell(&summary(op)),
            );
        }
        out.push('\n');
    }

    for (g, group) in GROUPS.iter().enumerate() {
        let ops = members(g);
        if ops.is_empty() {
            continue;
        }
        let _ = write!(out, "## {}\n\n", group.title);
        for op in ops {
            section(&mut out, op);
        }
    }
    // One newline at the end of the file.
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}

/// One instruction's section.
fn section(out: &mut String, op: Opcode) {
    let _ = write!(
        out,
        "<a id=\"{}\"></a>\n\n### {}\n\n```text\n{}\n```\n\n",
        anchor(op),
        op.mnemonic(),
        syntax(op),
    );
    for p in paragraphs(op.doc()) {
        let _ = write!(out, "{p}\n\n");
    }
    let _ = write!(
        out,
        "| Operand | Kind | Access | Bits |\n|---|---|---|---|\n"
    );
    if op.predicable() {
        let _ = writeln!(
            out,
            "| `@p` | guard: `@pN` or `@!pN`, optional (`p0`–`p7`) | read | {} |",
            bits(GUARD_BITS)
        );
    }
    for (o, b, slot) in layout(op) {
        let place = match slot {
            Some(n) => format!("{} (slot {n})", bits(b)),
            None => format!("{} (immediate)", bits(b)),
        };
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} |",
            o.name,
            cell(o.kind.describe()),
            match (o.kind.field(), o.is_written()) {
                (Field::Imm, _) => "—",
                (Field::Slot, true) => "written",
                (Field::Slot, false) => "read",
            },
            place,
        );
    }
    let _ = write!(
        out,
        "\nEncoding: opcode `{:#04x}` in bits {}, the fields above, and zero in every \
         other bit (mask `{}`).\n\n",
        op as u8,
        bits(OPCODE_BITS),
        hex64(unused_bits(op)),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inst::{DecodeError, Inst};

    #[test]
    fn every_opcode_has_one_category() {
        for &op in Opcode::ALL {
            assert!(group_of(op as u8).is_some(), "{}", op.mnemonic());
        }
        let total: usize = (0..GROUPS.len()).map(|g| members(g).len()).sum();
        assert_eq!(total, Opcode::ALL.len());
    }

    /// The layout written here is the decoder's: a field the reference calls unused
    /// is refused, every other bit is accepted as part of a field, and a 1 in an
    /// operand's lowest bit shows up in that operand.
    #[test]
    fn the_layout_is_the_decoders() {
        for &op in Opcode::ALL {
            let base = u64::from(op as u8);
            let name = op.mnemonic();
            let plain = Inst::decode(base).unwrap_or_else(|e| panic!("{name}: {e}"));
            let unused = unused_bits(op);
            for bit in 8..64 {
                let refused = matches!(
                    Inst::decode(base | 1 << bit),
                    Err(DecodeError::UnusedBits { .. })
                );
                assert_eq!(refused, unused & 1 << bit != 0, "{name} bit {bit}");
            }
            for (i, (o, b, _)) in layout(op).into_iter().enumerate() {
                let inst = Inst::decode(base | 1 << b.1).unwrap_or_else(|e| panic!("{e}"));
                let before = plain.op.operand_texts();
                let after = inst.op.operand_texts();
                for (j, (x, y)) in before.iter().zip(&after).enumerate() {
                    assert_eq!(x != y, i == j, "{name} operand {} at {}", o.name, bits(b));
                }
            }
            if op.predicable() {
                let g = Inst::decode(base | 1 << GUARD_REG_BITS.1 | 1 << GUARD_NEG_BIT)
                    .unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(g.guard.to_string(), "@!p1", "{name}");
            }
        }
    }

    #[test]
    fn anchors_are_unique() {
        let mut anchors: Vec<String> = Opcode::ALL.iter().map(|&op| anchor(op)).collect();
        anchors.sort();
        anchors.dedup();
        assert_eq!(anchors.len(), Opcode::ALL.len());
    }

    #[test]
    fn summaries_are_single_lines_without_raw_pipes() {
        assert_eq!(cell("`vd = |va|`"), "`vd = \\|va\\|`");
        for &op in Opcode::ALL {
            let s = summary(op);
            assert!(!s.is_empty() && !s.contains('\n'), "{}", op.mnemonic());
        }
        assert_eq!(
            paragraphs(" a\n b\n\n c\n"),
            vec!["a b".to_string(), "c".to_string()]
        );
    }

    #[test]
    fn hex_is_grouped() {
        assert_eq!(hex64(0xffff_ffff_f800_0000), "0xffff_ffff_f800_0000");
        assert_eq!(mask((16, 12)), 0x1f000);
        assert_eq!(mask(IMM_BITS), 0xffff_ffff_0000_0000);
    }
}
