//! The back end: instruction selection, register allocation and emission. (Being
//! written.)

use sagrada_isa::binary::KernelBinary;

use crate::OptLevel;
use crate::ir::Function;
use crate::span::Span;

/// What the back end produces.
#[derive(Debug, Clone)]
pub struct Output {
    /// The kernel binary.
    pub binary: KernelBinary,
    /// Its assembly listing (assembles to the same binary).
    pub asm: String,
}

/// Why the back end could not compile a function.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct BackError {
    /// What went wrong, in a sentence.
    pub message: String,
    /// The source it is about, if any.
    pub span: Option<Span>,
}

/// Compiles `f` to a kernel binary.
pub fn compile(f: &Function, _level: OptLevel) -> Result<Output, BackError> {
    Err(BackError {
        message: format!("kernel {}: the back end is not written yet", f.name),
        span: None,
    })
}
