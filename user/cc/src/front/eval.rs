//! Compile-time evaluation of checked scalar expressions: `const` values, array
//! lengths, and indices that must be constant once `unroll` loops are unrolled (the
//! counters' values come from `vars`).
//!
//! It computes what the SG1 computes (wrapping integers, IEEE f32 rounded to nearest
//! even, saturating conversions) and declines everything else: vectors, memory, the
//! launch, and the functions whose SG1 results are approximations (`exp`, `rsqrt`).

use super::hir::{Expr, ExprKind, Ty, VarId};
use crate::ir::{Cond, Op};
use crate::span::Span;

/// Why an expression has no compile-time value.
#[derive(Debug, Clone, PartialEq)]
pub enum EvalError {
    /// This part of it is not a compile-time constant.
    NotConst(Span),
    /// It divides by zero.
    DivZero(Span),
}

/// The bits of `e`'s value (`I32`/`U32`/`Bool` as integers, `F32` as its bits).
pub fn eval(e: &Expr, vars: &dyn Fn(VarId) -> Option<i32>) -> Result<u32, EvalError> {
    let not = Err(EvalError::NotConst(e.span));
    if !matches!(e.ty, Ty::I32 | Ty::U32 | Ty::Bool | Ty::F32) {
        return not;
    }
    let f = f32::from_bits;
    match &e.kind {
        ExprKind::Const(bits) => Ok(*bits),
        ExprKind::Var(v) => vars(*v)
            .map(|x| x as u32)
            .ok_or(EvalError::NotConst(e.span)),
        ExprKind::LogAnd(a, b) => Ok(u32::from(eval(a, vars)? != 0 && eval(b, vars)? != 0)),
        ExprKind::LogOr(a, b) => Ok(u32::from(eval(a, vars)? != 0 || eval(b, vars)? != 0)),
        ExprKind::Cond(c, a, b) => {
            if eval(c, vars)? != 0 {
                eval(a, vars)
            } else {
                eval(b, vars)
            }
        }
        ExprKind::U32ToF32(a) => Ok((eval(a, vars)? as f32).to_bits()),
        ExprKind::F32ToU32(a) => Ok(f(eval(a, vars)?) as u32),
        ExprKind::UMinMax(max, a, b) => {
            let (x, y) = (eval(a, vars)?, eval(b, vars)?);
            Ok(if *max { x.max(y) } else { x.min(y) })
        }
        ExprKind::Op(op, args) => {
            let mut v = [0u32; 3];
            if args.len() > 3 {
                return not;
            }
            for (slot, a) in v.iter_mut().zip(args) {
                *slot = eval(a, vars)?;
            }
            let [a, b, c] = v;
            let (ia, ib) = (a as i32, b as i32);
            let zero = || Err(EvalError::DivZero(e.span));
            let float = args.first().is_some_and(|x| x.ty == Ty::F32);
            Ok(match op {
                Op::Copy | Op::Bitcast => a,
                Op::Add => a.wrapping_add(b),
                Op::Sub => a.wrapping_sub(b),
                Op::Mul => a.wrapping_mul(b),
                Op::Div if b == 0 => return zero(),
                Op::Div => ia.wrapping_div(ib) as u32,
                Op::Divu => a.checked_div(b).map_or_else(zero, Ok)?,
                Op::Rem if b == 0 => return zero(),
                Op::Rem => ia.wrapping_rem(ib) as u32,
                Op::Remu => a.checked_rem(b).map_or_else(zero, Ok)?,
                Op::And => a & b,
                Op::Or => a | b,
                Op::Xor => a ^ b,
                Op::Shl => a << (b & 31),
                Op::Shr => a >> (b & 31),
                Op::Sra => (ia >> (b & 31)) as u32,
                Op::Min => ia.min(ib) as u32,
                Op::Max => ia.max(ib) as u32,
                Op::Icmp(cond) => u32::from(int_cond(*cond, a, b)),
                Op::Fadd => (f(a) + f(b)).to_bits(),
                Op::Fsub => (f(a) - f(b)).to_bits(),
                Op::Fmul => (f(a) * f(b)).to_bits(),
                Op::Fdiv => (f(a) / f(b)).to_bits(),
                Op::Fmin => fminmax(f(a), f(b), false).to_bits(),
                Op::Fmax => fminmax(f(a), f(b), true).to_bits(),
                Op::Fneg => a ^ 0x8000_0000,
                Op::Fabs => a & 0x7fff_ffff,
                Op::Fsqrt => f(a).sqrt().to_bits(),
                Op::Frcp => (1.0 / f(a)).to_bits(),
                Op::Fcmp(cond) => u32::from(float_cond(*cond, f(a), f(b))),
                Op::CvtF32I32 => (ia as f32).to_bits(),
                Op::CvtI32F32 => f(a) as i32 as u32,
                Op::Select if !float => {
                    if a != 0 {
                        b
                    } else {
                        c
                    }
                }
                _ => return not,
            })
        }
        _ => not,
    }
}

fn int_cond(c: Cond, a: u32, b: u32) -> bool {
    let (x, y) = (a as i32, b as i32);
    match c {
        Cond::Eq => a == b,
        Cond::Ne => a != b,
        Cond::Lt => x < y,
        Cond::Le => x <= y,
        Cond::Gt => x > y,
        Cond::Ge => x >= y,
        Cond::Ltu => a < b,
        Cond::Leu => a <= b,
        Cond::Gtu => a > b,
        Cond::Geu => a >= b,
    }
}

fn float_cond(c: Cond, a: f32, b: f32) -> bool {
    match c {
        Cond::Eq => a == b,
        Cond::Ne => a != b,
        Cond::Lt | Cond::Ltu => a < b,
        Cond::Le | Cond::Leu => a <= b,
        Cond::Gt | Cond::Gtu => a > b,
        Cond::Ge | Cond::Geu => a >= b,
    }
}

/// The SG1's `fmin`/`fmax`: a NaN operand is ignored, and `-0 < +0`.
fn fminmax(a: f32, b: f32, max: bool) -> f32 {
    if a.is_nan() {
        return b;
    }
    if b.is_nan() {
        return a;
    }
    let a_first = if a == b {
        a.is_sign_negative() != max
    } else {
        (a < b) != max
    };
    if a_first { a } else { b }
}
