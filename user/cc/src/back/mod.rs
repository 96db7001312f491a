//! The back end: instruction selection, register allocation and emission.
//!
//! - [`isel`]: the IR to machine IR ([`mir`]) over virtual registers, built from the
//!   ISA's own `Opcode`s and their operand lists (there is no second description of
//!   the instructions), with immediates, broadcasts, multiply-adds, `vmadl` and
//!   compare-and-branch folded in.
//! - [`sink`] (at `-O1`): an operation whose result only feeds a copy writes the copy's
//!   destination itself (an `int4` component updated in place).
//! - [`regalloc`]: copy coalescing and linear-scan allocation with spilling
//!   to the scratchpad after the kernel's own bytes (masks as vectors of -1 and 0).
//! - [`emit`]: moves for the parallel copies, block layout, branch offsets, the
//!   [`KernelBinary`] and its listing (`sagrada_isa::disasm`, which reassembles to the
//!   identical binary).
//!
//! Copies are coalesced at every level (unoptimised code would otherwise spill). At
//! `-O0` every jump is emitted; `-O1` adds the threading of empty blocks and the
//! removal of jumps to the next instruction.
//! Left out: scheduling, rematerialisation, interval splitting.

pub mod emit;
pub mod isel;
pub mod mir;
pub mod regalloc;
pub mod sink;

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
pub fn compile(f: &Function, level: OptLevel) -> Result<Output, BackError> {
    if f.scratch_bytes as usize > sagrada_isa::SCRATCH_BYTES {
        return Err(BackError {
            message: format!(
                "kernel {}: its local arrays take {} bytes of scratchpad; a core has {}",
                f.name,
                f.scratch_bytes,
                sagrada_isa::SCRATCH_BYTES
            ),
            span: None,
        });
    }
    let mut mf = isel::select(f)?;
    if level == OptLevel::O1 {
        sink::run(&mut mf);
    }
    let asg = regalloc::allocate(&mut mf, f.scratch_bytes, true, &f.name)?;
    let binary = emit::emit(f, &mf, &asg, level)?;
    let asm = sagrada_isa::disasm::disassemble(&binary);
    Ok(Output { binary, asm })
}
