//! Constant folding, algebraic simplification and copy propagation.
//!
//! Scalar operations on constants are computed with [`crate::ir::interp::lanewise`],
//! the interpreter's own arithmetic, so a folded constant is bit for bit what the SG1
//! would compute (f32 included, `exp` included: it is the ISA's function). A division
//! by a zero constant is left to fault at run time. The identities are the exact ones
//! (`x + 0`, `x * 1`, `x * 0`, `x * 2^k → x << k`, `x & -1`, `x - x`, `x * 1.0`,
//! `x + -0.0`, `x / 1.0`, `--x`, int4 components of a `make_int4`, ...), on scalars
//! and on vectors whose constant operand is a broadcast constant. Copies and
//! guarded results that equal one of their operands are replaced by it. An instruction
//! whose result is replaced stays in place, unused, for [`super::dce`].
//!
//! A guarded instruction without a passthru may be replaced by an operand (its inactive
//! lanes are unspecified, so the operand's lanes do); one with a passthru is left
//! alone unless its guard is the constant mask of every lane. Left out: folding vector
//! operations on constants, reassociation, and float identities that are not exact
//! (`x + 0.0` is not: `-0 + 0 = +0`).

use crate::fxhash::HashMap;

use crate::ir::interp::lanewise;
use crate::ir::{Function, Inst, Op, Type, Value};

use super::dom::DomTree;
use super::{resolve, substitute};

/// What an instruction simplifies to.
enum Simpler {
    /// An existing value.
    Value(Value),
    /// A scalar constant (the instruction is rewritten in place).
    Const(u32),
    /// `shl x, k` with a new constant `k`.
    Shl(Value, u32),
    /// The same instruction without its guard (the guard is every lane).
    Unguard,
}

/// Folds and simplifies `f`.
pub fn run(f: &mut Function) -> bool {
    let dom = DomTree::new(f);
    let mut map: HashMap<Value, Value> = HashMap::default();
    let mut changed = false;
    for &b in &dom.rpo {
        let mut k = 0;
        while k < f.block(b).insts.len() {
            let i = f.block(b).insts[k];
            {
                let d = f.inst_mut(i);
                d.args.iter_mut().for_each(|v| *v = resolve(&map, *v));
                if let Some(g) = &mut d.guard {
                    g.mask = resolve(&map, g.mask);
                }
                if let Some(p) = &mut d.passthru {
                    *p = resolve(&map, *p);
                }
            }
            match simplify(f, i) {
                None => {}
                Some(Simpler::Value(v)) => {
                    if let Some(r) = f.inst(i).result {
                        map.insert(r, v);
                        changed = true;
                    }
                }
                Some(Simpler::Const(bits)) => {
                    let d = f.inst_mut(i);
                    d.op = Op::Const(bits);
                    d.args.clear();
                    d.guard = None;
                    d.passthru = None;
                    changed = true;
                }
                Some(Simpler::Shl(x, sh)) => {
                    let span = f.inst(i).span;
                    let c = f.create_inst(Op::Const(sh), vec![], Some(Type::I32), None, None, span);
                    f.insert(b, k, c);
                    k += 1;
                    let cv = f.inst(c).result;
                    let d = f.inst_mut(i);
                    d.op = Op::Shl;
                    d.args = vec![x];
                    d.args.extend(cv);
                    changed = true;
                }
                Some(Simpler::Unguard) => {
                    let d = f.inst_mut(i);
                    d.guard = None;
                    d.passthru = None;
                    changed = true;
                    // Look again: the unguarded form may simplify further.
                    continue;
                }
            }
            k += 1;
        }
    }
    substitute(f, &map);
    changed
}

/// The splat constant a value holds: a scalar constant, or an unguarded broadcast of
/// one.
fn splat(f: &Function, v: Value) -> Option<u32> {
    if let Some(c) = f.as_const(v)
        && f.ty(v).is_scalar()
    {
        return Some(c);
    }
    let d = f.inst(f.def_inst(v)?);
    if d.op == Op::Broadcast && d.guard.is_none() {
        return f.as_const(*d.args.first()?);
    }
    None
}

fn is_mask_all(f: &Function, v: Value) -> bool {
    f.ty(v) == Type::Mask && f.as_const(v).is_some()
}

fn simplify(f: &Function, i: Inst) -> Option<Simpler> {
    let d = f.inst(i);
    let r = d.result?;
    let rt = f.ty(r);
    if let Some(g) = d.guard {
        if is_mask_all(f, g.mask) && !g.negated {
            return Some(Simpler::Unguard);
        }
        if d.passthru.is_some() {
            // A merge of a value with itself.
            if d.op == Op::Copy && d.passthru == d.args.first().copied() {
                return Some(Simpler::Value(d.args[0]));
            }
            return None;
        }
    }
    let a = d.args.first().copied();
    let b = d.args.get(1).copied();
    let ca = a.and_then(|v| splat(f, v));
    let cb = b.and_then(|v| splat(f, v));
    let scalar = rt.is_scalar();
    let val = |v: Value| Some(Simpler::Value(v));

    // Every operand constant: compute it as the machine does.
    if scalar && d.guard.is_none() && !matches!(d.op, Op::Const(_)) {
        let consts: Option<Vec<u32>> = d
            .args
            .iter()
            .map(|&v| f.as_const(v).filter(|_| f.ty(v).is_scalar()))
            .collect();
        if let Some(cs) = consts
            && !cs.is_empty()
            && let Some(x) = lanewise(
                d.op,
                cs[0],
                cs.get(1).copied().unwrap_or(0),
                cs.get(2).copied().unwrap_or(0),
            )
        {
            return Some(Simpler::Const(x));
        }
    }

    let (a, b) = match (a, b) {
        (Some(a), b) => (a, b),
        (None, _) => return None,
    };
    let int = matches!(rt, Type::I32 | Type::VI32);
    match d.op {
        Op::Copy => val(a),
        Op::Add | Op::Or | Op::Xor if int && cb == Some(0) => val(a),
        Op::Add | Op::Or | Op::Xor if int && ca == Some(0) => val(b?),
        Op::Sub | Op::Shl | Op::Shr | Op::Sra
            if int && cb.is_some_and(|c| if d.op == Op::Sub { c == 0 } else { c & 31 == 0 }) =>
        {
            val(a)
        }
        Op::Sub | Op::Xor if scalar && Some(a) == b => Some(Simpler::Const(0)),
        Op::Mul | Op::And if int && cb == Some(0) => val(b?),
        Op::Mul | Op::And if int && ca == Some(0) => val(a),
        Op::Mul if int && cb == Some(1) => val(a),
        Op::Mul if int && ca == Some(1) => val(b?),
        Op::Mul if scalar && cb.is_some_and(|c| c.is_power_of_two()) => {
            Some(Simpler::Shl(a, cb?.trailing_zeros()))
        }
        Op::Mul if scalar && ca.is_some_and(|c| c.is_power_of_two()) => {
            Some(Simpler::Shl(b?, ca?.trailing_zeros()))
        }
        Op::And if int && cb == Some(u32::MAX) => val(a),
        Op::And if int && ca == Some(u32::MAX) => val(b?),
        Op::Or if int && cb == Some(u32::MAX) => val(b?),
        Op::Or if int && ca == Some(u32::MAX) => val(a),
        Op::And | Op::Or | Op::Min | Op::Max | Op::Minu | Op::Maxu if Some(a) == b => val(a),
        Op::Div | Op::Divu if cb == Some(1) => val(a),
        Op::Rem | Op::Remu if cb == Some(1) => Some(Simpler::Const(0)),
        // x * 1.0, x / 1.0, x - (+0.0), x + (-0.0): exact.
        Op::Fmul if cb == Some(0x3f80_0000) => val(a),
        Op::Fmul if ca == Some(0x3f80_0000) => val(b?),
        Op::Fdiv if cb == Some(0x3f80_0000) => val(a),
        Op::Fsub if cb == Some(0) => val(a),
        Op::Fadd if cb == Some(0x8000_0000) => val(a),
        Op::Fadd if ca == Some(0x8000_0000) => val(b?),
        Op::Fneg => {
            let x = f.inst(f.def_inst(a)?);
            (x.op == Op::Fneg && x.guard.is_none()).then(|| Simpler::Value(x.args[0]))
        }
        Op::Select if d.args.len() == 3 => {
            let (t, e) = (d.args[1], d.args[2]);
            if t == e {
                val(t)
            } else if f.ty(a) == Type::I32 {
                f.as_const(a)
                    .map(|c| Simpler::Value(if c != 0 { t } else { e }))
            } else if is_mask_all(f, a) {
                val(t)
            } else {
                None
            }
        }
        Op::Int4Get(k) => int4_component(f, a, k).map(Simpler::Value),
        Op::Extract => {
            let x = f.inst(f.def_inst(a)?);
            (x.op == Op::Broadcast && x.guard.is_none()).then(|| Simpler::Value(x.args[0]))
        }
        Op::MaskAnd if is_mask_all(f, b?) || Some(a) == b => val(a),
        Op::MaskAnd if is_mask_all(f, a) => val(b?),
        Op::MaskOr if is_mask_all(f, a) || Some(a) == b => val(a),
        Op::MaskOr if is_mask_all(f, b?) => val(b?),
        Op::MaskCount if is_mask_all(f, a) => Some(Simpler::Const(64)),
        _ => None,
    }
}

/// The value of component `k` of the int4 `v`, if the instructions that make it say.
fn int4_component(f: &Function, mut v: Value, k: u8) -> Option<Value> {
    for _ in 0..16 {
        let d = f.inst(f.def_inst(v)?);
        match d.op {
            Op::MakeInt4 => return d.args.get(usize::from(k)).copied(),
            Op::Int4Set(j) if j == k => return d.args.get(1).copied(),
            Op::Int4Set(_) => v = *d.args.first()?,
            Op::Copy if d.guard.is_none() => v = *d.args.first()?,
            _ => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::parse::parse;
    use crate::ir::print::print;
    use crate::ir::verify::verify;

    /// Runs fold then drops unused results, and compares with `after`.
    fn check(before: &str, after: &str) {
        let mut f = parse(before).unwrap();
        verify(&f).unwrap();
        run(&mut f);
        verify(&f).unwrap();
        super::super::dce::run(&mut f);
        verify(&f).unwrap();
        assert_eq!(print(&f), print(&parse(after).unwrap()));
    }

    #[test]
    fn integer_constants_fold_and_wrap() {
        check(
            "kernel k(tensor<i32> o) scratch 0 {
b0:
  %0:i32 = const 2147483647
  %1:i32 = const 1
  %2:i32 = add %0, %1
  %3:i32 = const 0
  %4:int4 = make_int4 %2, %3, %3, %3
  %5:i32 = int4_get 0, %4
  store_tensor_scalar t0, %4, %5
  halt
}
",
            "kernel k(tensor<i32> o) scratch 0 {
b0:
  %2:i32 = const -2147483648
  %3:i32 = const 0
  %4:int4 = make_int4 %2, %3, %3, %3
  store_tensor_scalar t0, %4, %2
  halt
}
",
        );
    }

    #[test]
    fn division_by_zero_constant_is_not_folded() {
        let text = "kernel k(tensor<i32> o) scratch 0 {
b0:
  %0:i32 = const 7
  %1:i32 = const 0
  %2:i32 = div %0, %1
  %4:int4 = make_int4 %1, %1, %1, %1
  store_tensor_scalar t0, %4, %2
  halt
}
";
        check(text, text);
    }

    #[test]
    fn f32_folding_is_the_machines_arithmetic() {
        check(
            "kernel k(tensor<f32> o) scratch 0 {
b0:
  %0:f32 = const 1.5
  %1:f32 = fexp %0
  %2:f32 = frsqrt %1
  %3:i32 = const 0
  %4:int4 = make_int4 %3, %3, %3, %3
  store_tensor_scalar t0, %4, %2
  halt
}
",
            &format!(
                "kernel k(tensor<f32> o) scratch 0 {{
b0:
  %2:f32 = const {:#010x}
  %3:i32 = const 0
  %4:int4 = make_int4 %3, %3, %3, %3
  store_tensor_scalar t0, %4, %2
  halt
}}
",
                (1.0 / sagrada_isa::exec::float::exp(1.5).sqrt()).to_bits()
            ),
        );
    }

    #[test]
    fn identities_and_power_of_two_multiply() {
        check(
            "kernel k(tensor<i32> o) scratch 0 {
b0:
  %0:i32 = idx 0
  %1:i32 = const 0
  %2:i32 = const 1
  %3:i32 = const 8
  %4:i32 = add %0, %1
  %5:i32 = mul %4, %2
  %6:i32 = mul %5, %3
  %7:i32 = sub %6, %6
  %8:int4 = make_int4 %6, %7, %1, %1
  store_tensor_scalar t0, %8, %0
  halt
}
",
            "kernel k(tensor<i32> o) scratch 0 {
b0:
  %0:i32 = idx 0
  %1:i32 = const 0
  %9:i32 = const 3
  %6:i32 = shl %0, %9
  %7:i32 = const 0
  %8:int4 = make_int4 %6, %7, %1, %1
  store_tensor_scalar t0, %8, %0
  halt
}
",
        );
    }

    #[test]
    fn float_identities_are_only_the_exact_ones() {
        check(
            "kernel k(tensor<f32> o) scratch 0 {
b0:
  %0:i32 = const 0
  %1:int4 = make_int4 %0, %0, %0, %0
  %2:f32x64 = load_tensor t0, %1
  %3:f32 = const 1.0
  %4:f32x64 = broadcast %3
  %5:f32x64 = fmul %2, %4
  %6:f32 = const 0.0
  %7:f32x64 = broadcast %6
  %8:f32x64 = fadd %5, %7
  store_tensor t0, %1, %8
  halt
}
",
            "kernel k(tensor<f32> o) scratch 0 {
b0:
  %0:i32 = const 0
  %1:int4 = make_int4 %0, %0, %0, %0
  %2:f32x64 = load_tensor t0, %1
  %6:f32 = const 0.0
  %7:f32x64 = broadcast %6
  %8:f32x64 = fadd %2, %7
  store_tensor t0, %1, %8
  halt
}
",
        );
    }

    #[test]
    fn copies_propagate_but_merges_stay() {
        check(
            "kernel k(tensor<i32> o) scratch 0 {
b0:
  %0:i32 = const 0
  %1:int4 = make_int4 %0, %0, %0, %0
  %2:i32x64 = iota
  %3:i32x64 = copy %2
  %4:i32 = idx 0
  %5:mask = lanes %4
  %6:i32x64 = copy %3 @%5 else %2
  %7:i32x64 = add %6, %3 @%5 else %3
  store_tensor t0, %1, %7
  halt
}
",
            "kernel k(tensor<i32> o) scratch 0 {
b0:
  %0:i32 = const 0
  %1:int4 = make_int4 %0, %0, %0, %0
  %2:i32x64 = iota
  %4:i32 = idx 0
  %5:mask = lanes %4
  %7:i32x64 = add %2, %2 @%5 else %2
  store_tensor t0, %1, %7
  halt
}
",
        );
    }
}
