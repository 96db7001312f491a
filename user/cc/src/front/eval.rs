//! Compile-time evaluation of checked scalar expressions: `const` values, array
//! lengths, and indices that must be constant once `unroll` loops are unrolled (the
//! counters' values come from `vars`).
//!
//! It computes what the SG1 computes, with the IR interpreter's arithmetic
//! (`ir::interp::lanewise`), and declines everything else: vectors, memory, the
//! launch, and the functions whose SG1 results are approximations (`exp`, `rsqrt`).

use super::hir::{Expr, ExprKind, Ty, VarId};
use crate::ir::Op;
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
            if args.len() > 3 || matches!(op, Op::Fexp | Op::Frsqrt) {
                return not;
            }
            for (slot, a) in v.iter_mut().zip(args) {
                *slot = eval(a, vars)?;
            }
            let [a, b, c] = v;
            // The interpreter's arithmetic, so that a constant is what the cores compute.
            match crate::ir::interp::lanewise(*op, a, b, c) {
                Some(x) => Ok(x),
                None if matches!(op, Op::Div | Op::Divu | Op::Rem | Op::Remu) && b == 0 => {
                    Err(EvalError::DivZero(e.span))
                }
                None => not,
            }
        }
        _ => not,
    }
}
