//! The IR's textual form: what `sagrada cc --emit ir` shows, what the golden tests
//! compare, and what [`super::parse`] reads back.
//!
//! ```text
//! kernel saxpy(f32 alpha, tensor<f32> x, tensor<f32> y) scratch 0 {
//! b0:
//!   %0:f32 = arg 0
//!   %1:i32 = idx 0
//!   %2:i32 = const 6
//!   %3:i32 = shl %1, %2
//!   %4:f32 = const 0x3f800000 (1.0)
//!   %5:mask = lanes %3
//!   %6:f32x64 = load_tensor t0, %7 @%5
//!   %8:f32x64 = copy %6 @!%5 else %9
//!   store_tensor t1, %7, %8 @%5
//!   br %10, b1(%3), b2
//! b1(%11:i32):
//!   halt
//! }
//! ```
//!
//! One instruction a line: the result and its type, the mnemonic, the immediates
//! (tensor slots as `tN`, then numbers) and the operands, comma-separated, then the
//! guard (`@%m`, or `@!%m` for the clear lanes) and the passthru (`else %p`). An f32
//! constant shows its bits and, in parentheses, its value; a mask constant (every lane)
//! is `const all`.
//!
//! The form is normalised so that it is stable: blocks are printed in reverse
//! post-order from the entry (which is `b0`), then the blocks the entry cannot reach in
//! index order (but not those that are empty and halt), and blocks and values are renumbered densely in that order. Spans are
//! not printed. Nothing here panics on a malformed function: a value that nothing
//! defines prints as `%?N` (its index) and a block out of range as `b?N`.

use std::collections::HashMap;
use std::fmt::Write;

use super::{Block, Cond, Function, Guard, Op, ParamKind, Target, Terminator, Value};

/// An immediate operand of an operation in the textual form.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Imm {
    /// A tensor slot, `tN`.
    Slot(u8),
    /// A number.
    Num(i64),
}

/// The mnemonic and the immediates of `op` (not [`Op::Const`], printed on its own).
pub(crate) fn mnemonic(op: Op) -> (String, Vec<Imm>) {
    let plain = |s: &str| (s.to_string(), Vec::new());
    let n = |x: i64| Imm::Num(x);
    match op {
        Op::Const(bits) => ("const".to_string(), vec![n(i64::from(bits))]),
        Op::Icmp(c) => (format!("icmp.{}", c.name()), Vec::new()),
        Op::Fcmp(c) => (format!("fcmp.{}", c.name()), Vec::new()),
        Op::Int4Get(k) => ("int4_get".into(), vec![n(k.into())]),
        Op::Int4Set(k) => ("int4_set".into(), vec![n(k.into())]),
        Op::Idx(d) => ("idx".into(), vec![n(d.into())]),
        Op::Idxn(d) => ("idxn".into(), vec![n(d.into())]),
        Op::Arg(i) => ("arg".into(), vec![n(i.into())]),
        Op::Tdim { slot, dim } => ("tdim".into(), vec![Imm::Slot(slot), n(dim.into())]),
        Op::LoadTensor { slot } => ("load_tensor".into(), vec![Imm::Slot(slot)]),
        Op::StoreTensor { slot } => ("store_tensor".into(), vec![Imm::Slot(slot)]),
        Op::LoadTensorScalar { slot } => ("load_tensor_scalar".into(), vec![Imm::Slot(slot)]),
        Op::StoreTensorScalar { slot } => ("store_tensor_scalar".into(), vec![Imm::Slot(slot)]),
        Op::LoadScratch { offset } => ("load_scratch".into(), vec![n(offset.into())]),
        Op::StoreScratch { offset } => ("store_scratch".into(), vec![n(offset.into())]),
        Op::LoadScratchVec { offset } => ("load_scratch_vec".into(), vec![n(offset.into())]),
        Op::StoreScratchVec { offset } => ("store_scratch_vec".into(), vec![n(offset.into())]),
        _ => plain(simple_name(op).unwrap_or("?")),
    }
}

/// The operations without immediates, by name: the one list both directions use.
pub(crate) const SIMPLE: &[(&str, Op)] = &[
    ("copy", Op::Copy),
    ("add", Op::Add),
    ("sub", Op::Sub),
    ("mul", Op::Mul),
    ("div", Op::Div),
    ("divu", Op::Divu),
    ("rem", Op::Rem),
    ("remu", Op::Remu),
    ("and", Op::And),
    ("or", Op::Or),
    ("xor", Op::Xor),
    ("shl", Op::Shl),
    ("shr", Op::Shr),
    ("sra", Op::Sra),
    ("min", Op::Min),
    ("max", Op::Max),
    ("minu", Op::Minu),
    ("maxu", Op::Maxu),
    ("fadd", Op::Fadd),
    ("fsub", Op::Fsub),
    ("fmul", Op::Fmul),
    ("fdiv", Op::Fdiv),
    ("fmin", Op::Fmin),
    ("fmax", Op::Fmax),
    ("fmad", Op::Fmad),
    ("fneg", Op::Fneg),
    ("fabs", Op::Fabs),
    ("fsqrt", Op::Fsqrt),
    ("fexp", Op::Fexp),
    ("frsqrt", Op::Frsqrt),
    ("frcp", Op::Frcp),
    ("cvt.f32.i32", Op::CvtF32I32),
    ("cvt.i32.f32", Op::CvtI32F32),
    ("cvt.f32.u32", Op::CvtF32U32),
    ("cvt.u32.f32", Op::CvtU32F32),
    ("bitcast", Op::Bitcast),
    ("select", Op::Select),
    ("broadcast", Op::Broadcast),
    ("iota", Op::Iota),
    ("extract", Op::Extract),
    ("insert", Op::Insert),
    ("rotate", Op::Rotate),
    ("permute", Op::Permute),
    ("red_add", Op::RedAdd),
    ("red_max", Op::RedMax),
    ("red_min", Op::RedMin),
    ("lanes", Op::Lanes),
    ("mask_and", Op::MaskAnd),
    ("mask_or", Op::MaskOr),
    ("mask_xor", Op::MaskXor),
    ("mask_not", Op::MaskNot),
    ("mask_count", Op::MaskCount),
    ("unpack_lo", Op::UnpackLo),
    ("unpack_hi", Op::UnpackHi),
    ("pack", Op::Pack),
    ("make_int4", Op::MakeInt4),
    ("core_id", Op::CoreId),
];

/// Every comparison, for the `icmp.*` and `fcmp.*` mnemonics.
pub(crate) const CONDS: [Cond; 10] = [
    Cond::Eq,
    Cond::Ne,
    Cond::Lt,
    Cond::Le,
    Cond::Gt,
    Cond::Ge,
    Cond::Ltu,
    Cond::Leu,
    Cond::Gtu,
    Cond::Geu,
];

fn simple_name(op: Op) -> Option<&'static str> {
    SIMPLE.iter().find(|(_, o)| *o == op).map(|(n, _)| *n)
}

/// The name of a parameter kind in the header.
pub(crate) fn kind_name(k: ParamKind) -> &'static str {
    match k {
        ParamKind::TensorF32 => "tensor<f32>",
        ParamKind::TensorI32 => "tensor<i32>",
        ParamKind::TensorU32 => "tensor<u32>",
        ParamKind::TensorBf16 => "tensor<bf16>",
        ParamKind::I32 => "i32",
        ParamKind::U32 => "u32",
        ParamKind::F32 => "f32",
    }
}

/// The order blocks are printed in: reverse post-order from the entry, then the rest.
/// Safe on targets out of range (they are not followed).
pub(crate) fn print_order(f: &Function) -> Vec<Block> {
    let nb = f.blocks.len();
    let succs = |b: Block| -> Vec<Block> {
        f.blocks
            .get(b.0 as usize)
            .map(|_| f.successors(b))
            .unwrap_or_default()
            .into_iter()
            .filter(|s| (s.0 as usize) < nb)
            .collect()
    };
    let mut seen = vec![false; nb];
    let mut post = Vec::with_capacity(nb);
    if (f.entry.0 as usize) < nb {
        let mut stack = vec![(f.entry, succs(f.entry), 0usize)];
        seen[f.entry.0 as usize] = true;
        while let Some((b, ss, next)) = stack.last_mut() {
            if let Some(&s) = ss.get(*next) {
                *next += 1;
                if !seen[s.0 as usize] {
                    seen[s.0 as usize] = true;
                    let ss = succs(s);
                    stack.push((s, ss, 0));
                }
            } else {
                post.push(*b);
                stack.pop();
            }
        }
    }
    post.reverse();
    // Unreachable blocks that do nothing (what the passes leave) are not worth a line.
    post.extend(
        (0..nb)
            .filter(|&b| !seen[b])
            .filter(|&b| !f.blocks[b].insts.is_empty() || f.blocks[b].term != Terminator::Halt)
            .map(|b| Block(b as u32)),
    );
    post
}

struct Names {
    values: HashMap<Value, usize>,
    blocks: HashMap<Block, usize>,
}

impl Names {
    fn v(&self, v: Value) -> String {
        match self.values.get(&v) {
            Some(n) => format!("%{n}"),
            None => format!("%?{}", v.0),
        }
    }

    fn b(&self, b: Block) -> String {
        match self.blocks.get(&b) {
            Some(n) => format!("b{n}"),
            None => format!("b?{}", b.0),
        }
    }

    fn target(&self, t: &Target) -> String {
        if t.args.is_empty() {
            self.b(t.block)
        } else {
            let args: Vec<String> = t.args.iter().map(|&a| self.v(a)).collect();
            format!("{}({})", self.b(t.block), args.join(", "))
        }
    }
}

fn ty_name(f: &Function, v: Value) -> &'static str {
    f.values.get(v.0 as usize).map_or("?", |d| d.ty.name())
}

/// The function in the textual form.
pub fn print(f: &Function) -> String {
    let order = print_order(f);
    let mut names = Names {
        values: HashMap::new(),
        blocks: HashMap::new(),
    };
    for (k, &b) in order.iter().enumerate() {
        names.blocks.insert(b, k);
    }
    for &b in &order {
        let bd = &f.blocks[b.0 as usize];
        let defs = bd.params.iter().copied().chain(
            bd.insts
                .iter()
                .filter_map(|&i| f.insts.get(i.0 as usize).and_then(|d| d.result)),
        );
        for v in defs {
            let n = names.values.len();
            names.values.entry(v).or_insert(n);
        }
    }

    let mut out = String::new();
    let params: Vec<String> = f
        .params
        .iter()
        .map(|p| format!("{} {}", kind_name(p.kind), p.name))
        .collect();
    let _ = writeln!(
        out,
        "kernel {}({}) scratch {} {{",
        f.name,
        params.join(", "),
        f.scratch_bytes
    );
    for &b in &order {
        let bd = &f.blocks[b.0 as usize];
        let label = names.b(b);
        if bd.params.is_empty() {
            let _ = writeln!(out, "{label}:");
        } else {
            let ps: Vec<String> = bd
                .params
                .iter()
                .map(|&p| format!("{}:{}", names.v(p), ty_name(f, p)))
                .collect();
            let _ = writeln!(out, "{label}({}):", ps.join(", "));
        }
        for &i in &bd.insts {
            let Some(d) = f.insts.get(i.0 as usize) else {
                let _ = writeln!(out, "  ; missing instruction {}", i.0);
                continue;
            };
            out.push_str("  ");
            if let Some(r) = d.result {
                let _ = write!(out, "{}:{} = ", names.v(r), ty_name(f, r));
            }
            if let Op::Const(bits) = d.op {
                let ty = d
                    .result
                    .and_then(|r| f.values.get(r.0 as usize))
                    .map(|v| v.ty);
                match ty {
                    Some(super::Type::F32) => {
                        let _ = write!(out, "const {bits:#010x} ({:?})", f32::from_bits(bits));
                    }
                    Some(super::Type::Mask) => out.push_str("const all"),
                    _ => {
                        let _ = write!(out, "const {}", bits as i32);
                    }
                }
            } else {
                let (name, imms) = mnemonic(d.op);
                out.push_str(&name);
                let mut ops: Vec<String> = imms
                    .iter()
                    .map(|imm| match imm {
                        Imm::Slot(s) => format!("t{s}"),
                        Imm::Num(n) => n.to_string(),
                    })
                    .collect();
                ops.extend(d.args.iter().map(|&a| names.v(a)));
                if !ops.is_empty() {
                    out.push(' ');
                    out.push_str(&ops.join(", "));
                }
            }
            if let Some(Guard { mask, negated }) = d.guard {
                let _ = write!(out, " @{}{}", if negated { "!" } else { "" }, names.v(mask));
            }
            if let Some(p) = d.passthru {
                let _ = write!(out, " else {}", names.v(p));
            }
            out.push('\n');
        }
        match &bd.term {
            Terminator::Halt => out.push_str("  halt\n"),
            Terminator::Jump(t) => {
                let _ = writeln!(out, "  jump {}", names.target(t));
            }
            Terminator::Branch {
                cond,
                then,
                otherwise,
            } => {
                let _ = writeln!(
                    out,
                    "  br {}, {}, {}",
                    names.v(*cond),
                    names.target(then),
                    names.target(otherwise)
                );
            }
        }
    }
    out.push_str("}\n");
    out
}
