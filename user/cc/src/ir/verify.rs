//! The IR verifier: checks every rule `ir/mod.rs` states, on any [`Function`] whatever
//! its contents (indices out of range included), without panicking.
//!
//! It checks, in this order: that every block, instruction and value index is in
//! range; that each value is defined exactly once, by the block parameter or the
//! placed instruction its [`ValueData::def`] names; that no instruction is placed
//! twice; the operand and result types of every instruction (the typing table is
//! [`signature`], the one description of the operations' types); guards and
//! passthrus; terminators (targets, argument counts and types, an `I32` branch
//! condition); that the entry block has no parameters; and that every use in a block
//! reachable from the entry is dominated by its definition.
//!
//! Left out: blocks the entry cannot reach get every check but dominance (nothing
//! there ever runs); nothing is said about whether a program faults or terminates.

use std::collections::HashSet;

use super::{
    Block, Function, Guard, Inst, Op, ParamKind, Terminator, Type, Value, ValueData, ValueDef,
};

/// What is wrong with a function: the first broken rule, in a sentence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct VerifyError(pub String);

fn err<T>(msg: String) -> Result<T, VerifyError> {
    Err(VerifyError(msg))
}

/// Checks the operand types `args` and the result type `result` of `op`: the typing
/// table of the IR. The error says what was expected.
pub fn signature(op: Op, args: &[Type], result: Option<Type>) -> Result<(), String> {
    use Type::*;
    let n = args.len();
    let want_args = |k: usize| -> Result<(), String> {
        if n == k {
            Ok(())
        } else {
            Err(format!("takes {k} operands, not {n}"))
        }
    };
    let want_result = |t: Type| -> Result<(), String> {
        match result {
            Some(r) if r == t => Ok(()),
            Some(r) => Err(format!("gives a {t}, not a {r}")),
            None => Err(format!("gives a {t} but has no result")),
        }
    };
    let no_result = || -> Result<(), String> {
        match result {
            None => Ok(()),
            Some(r) => Err(format!("has no result, but one of type {r} is given")),
        }
    };
    let one_of = |ts: &[Type]| -> Result<Type, String> {
        match result {
            Some(r) if ts.contains(&r) => Ok(r),
            Some(r) => Err(format!("cannot give a {r}")),
            None => Err("needs a result".to_string()),
        }
    };
    let same = |t: Type| -> Result<(), String> {
        match args.iter().find(|&&a| a != t) {
            None => Ok(()),
            Some(a) => Err(format!("takes operands of one type, {t}, but one is a {a}")),
        }
    };
    let arg = |k: usize, t: Type| -> Result<(), String> {
        match args.get(k) {
            Some(&a) if a == t => Ok(()),
            Some(&a) => Err(format!("takes a {t} as operand {k}, not a {a}")),
            None => Err(format!("takes a {t} as operand {k}")),
        }
    };
    match op {
        Op::Const(_) => {
            want_args(0)?;
            one_of(&[I32, F32, Mask])?;
        }
        Op::Copy => {
            want_args(1)?;
            want_result(args[0])?;
        }
        Op::Add
        | Op::Sub
        | Op::Mul
        | Op::And
        | Op::Or
        | Op::Xor
        | Op::Shl
        | Op::Shr
        | Op::Sra
        | Op::Min
        | Op::Max => {
            want_args(2)?;
            let t = one_of(&[I32, VI32])?;
            same(t)?;
        }
        Op::Div | Op::Divu | Op::Rem | Op::Remu => {
            want_args(2)?;
            want_result(I32)?;
            same(I32)?;
        }
        Op::Minu | Op::Maxu => {
            want_args(2)?;
            want_result(VI32)?;
            same(VI32)?;
        }
        Op::Icmp(_) => {
            want_args(2)?;
            match args[0] {
                I32 => want_result(I32)?,
                VI32 => want_result(Mask)?,
                t => return Err(format!("compares integers, not a {t}")),
            }
            same(args[0])?;
        }
        Op::Fadd | Op::Fsub | Op::Fmul | Op::Fdiv | Op::Fmin | Op::Fmax => {
            want_args(2)?;
            let t = one_of(&[F32, VF32])?;
            same(t)?;
        }
        Op::Fmad => {
            want_args(3)?;
            let t = one_of(&[F32, VF32])?;
            same(t)?;
        }
        Op::Fneg | Op::Fabs | Op::Fsqrt | Op::Fexp | Op::Frsqrt | Op::Frcp => {
            want_args(1)?;
            let t = one_of(&[F32, VF32])?;
            same(t)?;
        }
        Op::Fcmp(c) => {
            want_args(2)?;
            if c.is_unsigned() {
                return Err(format!("has no unsigned form `{}` for floats", c.name()));
            }
            match args[0] {
                F32 => want_result(I32)?,
                VF32 => want_result(Mask)?,
                t => return Err(format!("compares floats, not a {t}")),
            }
            same(args[0])?;
        }
        Op::CvtF32I32 | Op::CvtI32F32 | Op::CvtF32U32 | Op::CvtU32F32 => {
            want_args(1)?;
            let (from, to): (&[Type], &[Type]) = match op {
                Op::CvtF32I32 => (&[I32, VI32], &[F32, VF32]),
                Op::CvtI32F32 => (&[F32, VF32], &[I32, VI32]),
                Op::CvtF32U32 => (&[VI32], &[VF32]),
                _ => (&[VF32], &[VI32]),
            };
            match from.iter().position(|&t| t == args[0]) {
                Some(k) => want_result(to[k])?,
                None => return Err(format!("cannot convert a {}", args[0])),
            }
        }
        Op::Bitcast => {
            want_args(1)?;
            let r = one_of(&[I32, F32, VI32, VF32, VBF16])?;
            if args[0].is_scalar() != r.is_scalar() || !(args[0].is_scalar() || args[0].is_vector())
            {
                return Err(format!(
                    "cannot reinterpret a {} as a {r}: the register classes differ",
                    args[0]
                ));
            }
        }
        Op::Select => {
            want_args(3)?;
            match args[0] {
                I32 => {
                    let t = one_of(&[I32, F32])?;
                    arg(1, t)?;
                    arg(2, t)?;
                }
                Mask => {
                    let t = one_of(&[VF32, VI32, VBF16])?;
                    arg(1, t)?;
                    arg(2, t)?;
                }
                t => return Err(format!("takes an i32 or a mask as condition, not a {t}")),
            }
        }
        Op::Broadcast => {
            want_args(1)?;
            match args[0].splat() {
                Some(t) => want_result(t)?,
                None => return Err(format!("cannot broadcast a {}", args[0])),
            }
        }
        Op::Iota => {
            want_args(0)?;
            want_result(VI32)?;
        }
        Op::Extract => {
            want_args(2)?;
            match args[0].lane() {
                Some(t) => want_result(t)?,
                None => return Err(format!("cannot take a lane of a {}", args[0])),
            }
            arg(1, I32)?;
        }
        Op::Insert => {
            want_args(3)?;
            match args[0].lane() {
                Some(t) => {
                    want_result(args[0])?;
                    arg(1, t)?;
                }
                None => return Err(format!("cannot set a lane of a {}", args[0])),
            }
            arg(2, I32)?;
        }
        Op::Rotate => {
            want_args(2)?;
            let t = one_of(&[VF32, VI32, VBF16])?;
            arg(0, t)?;
            arg(1, I32)?;
        }
        Op::Permute => {
            want_args(2)?;
            let t = one_of(&[VF32, VI32, VBF16])?;
            arg(0, t)?;
            arg(1, VI32)?;
        }
        Op::RedAdd | Op::RedMax | Op::RedMin => {
            want_args(1)?;
            match args[0].lane() {
                Some(t) => want_result(t)?,
                None => return Err(format!("cannot reduce a {}", args[0])),
            }
        }
        Op::Lanes => {
            want_args(1)?;
            want_result(Mask)?;
            arg(0, I32)?;
        }
        Op::MaskAnd | Op::MaskOr | Op::MaskXor => {
            want_args(2)?;
            want_result(Mask)?;
            same(Mask)?;
        }
        Op::MaskNot => {
            want_args(1)?;
            want_result(Mask)?;
            same(Mask)?;
        }
        Op::MaskCount => {
            want_args(1)?;
            want_result(I32)?;
            same(Mask)?;
        }
        Op::UnpackLo | Op::UnpackHi => {
            want_args(1)?;
            want_result(VF32)?;
            same(VBF16)?;
        }
        Op::Pack => {
            want_args(2)?;
            want_result(VBF16)?;
            same(VF32)?;
        }
        Op::MakeInt4 => {
            want_args(4)?;
            want_result(Int4)?;
            same(I32)?;
        }
        Op::Int4Get(k) | Op::Int4Set(k) if k >= 4 => {
            return Err(format!("names component {k} of an int4, which has 4"));
        }
        Op::Int4Get(_) => {
            want_args(1)?;
            want_result(I32)?;
            arg(0, Int4)?;
        }
        Op::Int4Set(_) => {
            want_args(2)?;
            want_result(Int4)?;
            arg(0, Int4)?;
            arg(1, I32)?;
        }
        Op::Idx(d) | Op::Idxn(d) | Op::Tdim { dim: d, .. } if d >= 4 => {
            return Err(format!("names dimension {d}; there are 4"));
        }
        Op::Idx(_) | Op::Idxn(_) | Op::CoreId | Op::Tdim { .. } => {
            want_args(0)?;
            want_result(I32)?;
        }
        Op::Arg(_) => {
            want_args(0)?;
            one_of(&[I32, F32])?;
        }
        Op::LoadTensor { .. } => {
            want_args(1)?;
            one_of(&[VF32, VI32, VBF16])?;
            arg(0, Int4)?;
        }
        Op::StoreTensor { .. } => {
            want_args(2)?;
            no_result()?;
            arg(0, Int4)?;
            if !args[1].is_vector() {
                return Err(format!("stores a vector, not a {}", args[1]));
            }
        }
        Op::LoadTensorScalar { .. } => {
            want_args(1)?;
            one_of(&[I32, F32])?;
            arg(0, Int4)?;
        }
        Op::StoreTensorScalar { .. } => {
            want_args(2)?;
            no_result()?;
            arg(0, Int4)?;
            if !args[1].is_scalar() {
                return Err(format!("stores a scalar, not a {}", args[1]));
            }
        }
        Op::LoadScratch { .. } => {
            want_args(1)?;
            one_of(&[I32, F32])?;
            arg(0, I32)?;
        }
        Op::StoreScratch { .. } => {
            want_args(2)?;
            no_result()?;
            arg(0, I32)?;
            if !args[1].is_scalar() {
                return Err(format!("stores a scalar, not a {}", args[1]));
            }
        }
        Op::LoadScratchVec { .. } => {
            want_args(1)?;
            one_of(&[VF32, VI32, VBF16])?;
            arg(0, I32)?;
        }
        Op::StoreScratchVec { .. } => {
            want_args(2)?;
            no_result()?;
            arg(0, I32)?;
            if !args[1].is_vector() {
                return Err(format!("stores a vector, not a {}", args[1]));
            }
        }
    }
    Ok(())
}

/// Whether an instruction of `op` with result type `result` may carry a guard: a
/// guardable operation acting on lanes (a lane-wise one only with a vector or mask
/// result; a scalar `add` has no lanes to guard).
pub fn guard_allowed(op: Op, result: Option<Type>) -> bool {
    if !op.is_guardable() {
        return false;
    }
    match op {
        Op::LoadTensor { .. }
        | Op::StoreTensor { .. }
        | Op::LoadScratchVec { .. }
        | Op::StoreScratchVec { .. }
        | Op::RedAdd
        | Op::RedMax
        | Op::RedMin => true,
        _ => matches!(result, Some(t) if t.is_vector() || t == Type::Mask),
    }
}

/// Where each placed instruction is: `(block, position)`, or an error if one is placed
/// twice or is out of range.
fn placement(f: &Function) -> Result<Vec<Option<(Block, usize)>>, VerifyError> {
    let mut at = vec![None; f.insts.len()];
    for (b, bd) in f.blocks.iter().enumerate() {
        for (k, &i) in bd.insts.iter().enumerate() {
            match at.get_mut(i.0 as usize) {
                None => {
                    return err(format!(
                        "block b{b} lists instruction {} but there are only {}",
                        i.0,
                        f.insts.len()
                    ));
                }
                Some(Some((ob, _))) => {
                    return err(format!(
                        "instruction {} is placed twice (in {ob} and b{b})",
                        i.0
                    ));
                }
                Some(slot) => *slot = Some((Block(b as u32), k)),
            }
        }
    }
    Ok(at)
}

/// The immediate dominator of every block reachable from the entry (the entry's is
/// itself), by the Cooper–Harvey–Kennedy iteration over the reverse post-order.
/// Needs every terminator's targets in range.
pub(crate) fn idoms(f: &Function, rpo: &[Block]) -> Vec<Option<Block>> {
    let mut order = vec![usize::MAX; f.blocks.len()];
    for (k, b) in rpo.iter().enumerate() {
        order[b.0 as usize] = k;
    }
    let mut preds: Vec<Vec<Block>> = vec![Vec::new(); f.blocks.len()];
    for &b in rpo {
        for s in f.successors(b) {
            preds[s.0 as usize].push(b);
        }
    }
    let mut idom: Vec<Option<Block>> = vec![None; f.blocks.len()];
    let Some(&entry) = rpo.first() else {
        return idom;
    };
    idom[entry.0 as usize] = Some(entry);
    let intersect = |idom: &[Option<Block>], mut a: Block, mut b: Block| -> Block {
        while a != b {
            while order[a.0 as usize] > order[b.0 as usize] {
                a = idom[a.0 as usize].unwrap_or(entry);
            }
            while order[b.0 as usize] > order[a.0 as usize] {
                b = idom[b.0 as usize].unwrap_or(entry);
            }
        }
        a
    };
    let mut changed = true;
    while changed {
        changed = false;
        for &b in &rpo[1..] {
            let mut new: Option<Block> = None;
            for &p in &preds[b.0 as usize] {
                if idom[p.0 as usize].is_some() {
                    new = Some(match new {
                        None => p,
                        Some(n) => intersect(&idom, p, n),
                    });
                }
            }
            if new.is_some() && idom[b.0 as usize] != new {
                idom[b.0 as usize] = new;
                changed = true;
            }
        }
    }
    idom
}

/// Whether `a` dominates `b` (both reachable), walking `b`'s dominator chain.
fn dominates(idom: &[Option<Block>], entry: Block, a: Block, mut b: Block) -> bool {
    loop {
        if a == b {
            return true;
        }
        if b == entry {
            return false;
        }
        match idom[b.0 as usize] {
            Some(d) if d != b => b = d,
            _ => return false,
        }
    }
}

/// Checks the IR's rules; the error names the block, instruction or value at fault.
pub fn verify(f: &Function) -> Result<(), VerifyError> {
    let nv = f.values.len();
    let nb = f.blocks.len();
    if f.entry.0 as usize >= nb {
        return err(format!(
            "the entry b{} is not a block ({nb} blocks)",
            f.entry.0
        ));
    }
    let at = placement(f)?;
    let value = |v: Value, what: &dyn Fn() -> String| -> Result<ValueData, VerifyError> {
        match f.values.get(v.0 as usize) {
            Some(d) => Ok(*d),
            None => err(format!(
                "{} uses {v}, which does not exist ({nv} values)",
                what()
            )),
        }
    };

    // Definitions: each value by the one place its `def` names.
    let mut defined = vec![false; nv];
    for (b, bd) in f.blocks.iter().enumerate() {
        let block = Block(b as u32);
        for (k, &p) in bd.params.iter().enumerate() {
            let d = value(p, &|| format!("parameter {k} of {block}"))?;
            if d.def != ValueDef::Param(block, k as u32) || defined[p.0 as usize] {
                return err(format!(
                    "{p} is listed as parameter {k} of {block} but is defined as {:?}",
                    d.def
                ));
            }
            defined[p.0 as usize] = true;
        }
    }
    for (i, slot) in at.iter().enumerate() {
        let Some((b, _)) = *slot else { continue };
        let inst = Inst(i as u32);
        if let Some(r) = f.insts[i].result {
            let d = value(r, &|| format!("the result of instruction {i} in {b}"))?;
            if d.def != ValueDef::Inst(inst) || defined[r.0 as usize] {
                return err(format!(
                    "{r}, the result of instruction {i} in {b}, is defined as {:?}",
                    d.def
                ));
            }
            defined[r.0 as usize] = true;
        }
    }
    let use_of = |v: Value, what: &dyn Fn() -> String| -> Result<Type, VerifyError> {
        let d = value(v, what)?;
        if !defined[v.0 as usize] {
            return err(format!(
                "{} uses {v}, which no block parameter or placed instruction defines",
                what()
            ));
        }
        Ok(d.ty)
    };

    // Instructions: types, guards, passthrus.
    for (i, slot) in at.iter().enumerate() {
        let Some((b, _)) = *slot else { continue };
        let d = &f.insts[i];
        let here = || format!("instruction {i} ({:?}) in {b}", d.op);
        let mut args = Vec::with_capacity(d.args.len());
        for &a in &d.args {
            args.push(use_of(a, &here)?);
        }
        let result = match d.result {
            Some(r) => Some(value(r, &here)?.ty),
            None => None,
        };
        if let Err(e) = signature(d.op, &args, result) {
            return err(format!("{}: {:?} {e}", here(), d.op));
        }
        match d.op {
            Op::Arg(k) => {
                let scalars = f.params.iter().filter(|p| !p.kind.is_tensor()).count();
                if k as usize >= scalars {
                    return err(format!(
                        "{}: scalar argument {k} does not exist (the kernel has {scalars})",
                        here()
                    ));
                }
            }
            Op::Tdim { slot, .. }
            | Op::LoadTensor { slot }
            | Op::StoreTensor { slot }
            | Op::LoadTensorScalar { slot }
            | Op::StoreTensorScalar { slot } => {
                let Some(p) = f
                    .params
                    .iter()
                    .filter(|p| p.kind.is_tensor())
                    .nth(slot.into())
                else {
                    return err(format!("{}: the kernel has no tensor t{slot}", here()));
                };
                let two = p.kind == ParamKind::TensorBf16;
                let bad = match d.op {
                    Op::LoadTensor { .. } => two != (result == Some(Type::VBF16)),
                    Op::StoreTensor { .. } => two != (args.get(1) == Some(&Type::VBF16)),
                    Op::LoadTensorScalar { .. } | Op::StoreTensorScalar { .. } => two,
                    _ => false,
                };
                if bad {
                    return err(format!(
                        "{}: tensor t{slot} ({}) has the wrong element size for this access",
                        here(),
                        p.name
                    ));
                }
            }
            _ => {}
        }
        if let Some(Guard { mask, .. }) = d.guard {
            if !guard_allowed(d.op, result) {
                return err(format!("{}: this operation takes no guard", here()));
            }
            let t = use_of(mask, &here)?;
            if t != Type::Mask {
                return err(format!("{}: the guard {mask} is a {t}, not a mask", here()));
            }
        }
        if let Some(p) = d.passthru {
            let t = use_of(p, &here)?;
            if d.guard.is_none() {
                return err(format!("{}: a passthru {p} without a guard", here()));
            }
            match result {
                Some(r) if r == t && (r.is_vector() || r == Type::Mask) => {}
                _ => {
                    return err(format!(
                        "{}: the passthru {p} is a {t}, which does not match the result",
                        here()
                    ));
                }
            }
        }
    }

    // Terminators.
    let bd_entry = &f.blocks[f.entry.0 as usize];
    if !bd_entry.params.is_empty() {
        return err(format!("the entry {} has parameters", f.entry));
    }
    for (b, bd) in f.blocks.iter().enumerate() {
        let block = Block(b as u32);
        let here = || format!("the terminator of {block}");
        let mut targets = Vec::new();
        match &bd.term {
            Terminator::Halt => {}
            Terminator::Jump(t) => targets.push(t),
            Terminator::Branch {
                cond,
                then,
                otherwise,
            } => {
                let t = use_of(*cond, &here)?;
                if t != Type::I32 {
                    return err(format!(
                        "{}: the condition {cond} is a {t}, not an i32",
                        here()
                    ));
                }
                targets.push(then);
                targets.push(otherwise);
            }
        }
        for t in targets {
            let Some(td) = f.blocks.get(t.block.0 as usize) else {
                return err(format!(
                    "{} jumps to {}, which does not exist",
                    here(),
                    t.block
                ));
            };
            if td.params.len() != t.args.len() {
                return err(format!(
                    "{} passes {} values to {}, which has {} parameters",
                    here(),
                    t.args.len(),
                    t.block,
                    td.params.len()
                ));
            }
            for (k, (&a, &p)) in t.args.iter().zip(&td.params).enumerate() {
                let ta = use_of(a, &here)?;
                let tp = f.values[p.0 as usize].ty;
                if ta != tp {
                    return err(format!(
                        "{} passes {a}, a {ta}, to parameter {k} of {}, a {tp}",
                        here(),
                        t.block
                    ));
                }
            }
        }
    }

    // Dominance, in the blocks that run.
    let rpo = f.reverse_postorder();
    let idom = idoms(f, &rpo);
    let reachable: HashSet<Block> = rpo.iter().copied().collect();
    let dominated = |v: Value, b: Block, pos: usize| -> bool {
        match f.values[v.0 as usize].def {
            ValueDef::Param(d, _) => reachable.contains(&d) && dominates(&idom, f.entry, d, b),
            ValueDef::Inst(i) => match at[i.0 as usize] {
                Some((d, k)) if d == b => k < pos,
                Some((d, _)) => reachable.contains(&d) && dominates(&idom, f.entry, d, b),
                None => false,
            },
        }
    };
    for &b in &rpo {
        let bd = &f.blocks[b.0 as usize];
        for (k, &i) in bd.insts.iter().enumerate() {
            for v in f.inst_uses(i) {
                if !dominated(v, b, k) {
                    return err(format!(
                        "instruction {} ({:?}) in {b} uses {v}, whose definition does not dominate it",
                        i.0, f.insts[i.0 as usize].op
                    ));
                }
            }
        }
        for v in f.term_uses(b) {
            if !dominated(v, b, bd.insts.len()) {
                return err(format!(
                    "the terminator of {b} uses {v}, whose definition does not dominate it"
                ));
            }
        }
    }
    Ok(())
}
