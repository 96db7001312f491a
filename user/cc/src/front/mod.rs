//! The front end: lexer ([`lex`]), parser ([`parse`]) to the syntax tree ([`ast`]),
//! and name resolution and type checking ([`sema`]) to the typed tree ([`hir`]) that
//! `lower` turns into the IR.
//!
//! [`check`] runs them in turn and stops after the first stage that finds errors, so
//! that a lexical or syntax error never cascades into type errors. Every error is a
//! [`Diagnostic`] with the span of the offending text; none of the stages panics or
//! recurses without bound, whatever the input.

pub mod ast;
pub mod eval;
pub mod hir;
pub mod interp;
pub mod lex;
pub mod parse;
pub mod sema;

use crate::diag::{Diagnostic, Diagnostics};
use crate::ir::ParamKind;

/// A checked program, ready to lower: the kernel, the functions it may call (inlined
/// by `lower`), every variable, and the scratchpad bytes the `local` arrays take.
#[derive(Debug, Clone)]
pub struct Program {
    /// The kernel.
    pub kernel: hir::Function,
    /// The functions, by [`hir::FnId`].
    pub fns: Vec<hir::Function>,
    /// Every variable, by [`hir::VarId`].
    pub vars: Vec<hir::Var>,
    /// The kernel's parameters in order, with their kinds.
    pub params: Vec<(hir::VarId, ParamKind)>,
    /// Bytes of the scratchpad the `local` arrays take, from address 0.
    pub scratch_bytes: u32,
}

fn sorted(mut errs: Vec<Diagnostic>) -> Diagnostics {
    errs.sort_by_key(|d| (d.span.start, d.span.end));
    errs.dedup();
    Diagnostics(errs)
}

/// Parses and checks `source`.
pub fn check(source: &str) -> Result<Program, Diagnostics> {
    let (toks, errs) = lex::lex(source);
    if !errs.is_empty() {
        return Err(sorted(errs));
    }
    let (items, errs) = parse::parse(source, toks);
    if !errs.is_empty() {
        return Err(sorted(errs));
    }
    let c = sema::check(source, &items).map_err(sorted)?;
    Ok(Program {
        kernel: c.kernel,
        fns: c.fns,
        vars: c.vars,
        params: c.params,
        scratch_bytes: c.scratch_bytes,
    })
}
