//! `sagrada-cc`: the compiler of SGC, the SG1's kernel language (`docs/language.md`),
//! to kernel binaries (`.sgb`) the runtime loads.
//!
//! The pipeline, one module each:
//!
//! - [`front`]: lexer, recursive-descent parser, name resolution and type checking, with
//!   a [`diag::Diagnostic`] (file:line:column, the text underlined, what was expected)
//!   for every error. It never panics, whatever the input.
//! - [`lower`]: the checked program to the [`ir`]: functions inlined, `unroll` loops
//!   unrolled, `where` blocks to guarded instructions, variables to SSA values.
//! - [`ir`]: the SSA IR, its textual form and its verifier.
//! - [`opt`]: the passes at `-O1`: constant folding, dead-code elimination, common
//!   subexpressions, loop-invariant code motion, strength reduction of address
//!   arithmetic.
//! - [`back`]: instruction selection from the ISA table (`sagrada_isa::Op`; there is no
//!   second description of the instructions), linear-scan register allocation with
//!   spilling to the scratchpad, and emission of the binary and its assembly listing.
//!
//! Left out: more than one kernel per source file, separate compilation, and any
//! optimisation that needs alias analysis between tensors (loads are never moved across
//! stores).

#![forbid(unsafe_code)]

pub mod back;
pub mod diag;
pub mod front;
mod fxhash;
pub mod ir;
pub mod lower;
pub mod opt;
pub mod random_program;
pub mod span;

use sagrada_isa::binary::KernelBinary;

/// The compiler's version: a cache of compiled kernels keys on it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// How much the compiler optimises.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub enum OptLevel {
    /// No IR passes: the IR as lowered. The back end still coalesces copies, so that
    /// unoptimised code fits the registers without needless spills.
    O0,
    /// The passes of [`opt`] and the back end's peepholes.
    #[default]
    O1,
}

/// What a compilation produces.
#[derive(Debug, Clone)]
pub struct Compiled {
    /// The kernel binary.
    pub binary: KernelBinary,
    /// The IR after optimisation ([`Compiled::ir`] prints it).
    pub function: ir::Function,
    /// The assembly listing.
    pub asm: String,
}

/// Why a compilation failed: the diagnostics, rendered against the source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{rendered}")]
pub struct CompileError {
    /// Every error, in source order.
    pub diagnostics: diag::Diagnostics,
    /// Them as text: `file:line:column: message`, the line, a marker.
    pub rendered: String,
}

/// Compiles `source` (named `file` in messages) at `level`.
pub fn compile(source: &str, file: &str, level: OptLevel) -> Result<Compiled, CompileError> {
    let fail = |diagnostics: diag::Diagnostics| CompileError {
        rendered: diagnostics.render(source, file),
        diagnostics,
    };
    let program = front::check(source).map_err(fail)?;
    let mut f = lower::lower(&program);
    debug_assert_eq!(ir::verify::verify(&f), Ok(()));
    opt::optimize(&mut f, level);
    debug_assert_eq!(ir::verify::verify(&f), Ok(()));
    let out = back::compile(&f, level).map_err(|e| {
        fail(diag::Diagnostics(vec![diag::Diagnostic {
            span: e.span.unwrap_or_default(),
            message: e.message,
        }]))
    })?;
    Ok(Compiled {
        binary: out.binary,
        function: f,
        asm: out.asm,
    })
}

impl Compiled {
    /// The IR after optimisation, in its textual form (printed on demand: most callers
    /// want only the binary, and printing a large kernel takes as long as optimising
    /// it).
    pub fn ir(&self) -> String {
        ir::print::print(&self.function)
    }
}
