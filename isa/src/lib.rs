//! The SG1 core instruction set, defined once.
//!
//! The SG1's compute cores are vector processors in the family of Habana's TPC: 32
//! scalar registers of 32 bits, 32 vector registers of 64 lanes of 32 bits (bf16 and
//! f16 packed two per lane), 8 predicate registers of one bit per lane for masked
//! execution, a core-local scratchpad, and global memory reached through tensor
//! descriptors over a 4-dimensional index space. `docs/isa/` describes the machine;
//! its instruction pages are generated from [`table`].
//!
//! - [`table`]: the instruction table, [`for_each_op!`].
//! - [`inst`]: the instruction enum and the fixed 64-bit encoding.
//! - [`operand`]: operand kinds and guards.
//! - [`asm`] and [`disasm`]: the assembly language, both ways; a disassembly
//!   reassembles to the identical binary.
//! - [`binary`]: the kernel binary format (`.sgb`) the runtime loads.
//! - [`exec`]: the reference semantics, which the SG1 model's cores run and every test
//!   uses as its oracle.
//! - [`doc`]: the generator of `docs/isa/instructions.md`.
//!
//! Left out on purpose: timing (the device model adds it), atomics, and any way for
//! the cores of a launch to communicate with each other.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod asm;
pub mod binary;
pub mod disasm;
pub mod doc;
pub mod exec;
pub mod inst;
pub mod operand;
pub mod table;

pub use inst::{DecodeError, Inst, Op, Opcode, OperandInfo};
pub use operand::{
    Bits, CReg, Dim, Field, Guard, Imm, Lane, Off, Operand, OperandKind, PReg, SReg, TReg, VReg,
};

/// The ISA's version: a kernel binary built for another major version is refused.
pub const ISA_VERSION_MAJOR: u8 = 1;
/// The ISA's minor version: instructions added compatibly.
pub const ISA_VERSION_MINOR: u8 = 0;

/// Lanes of a vector register.
pub const LANES: usize = 64;
/// Dimensions of the index space and of tensors.
pub const DIMS: usize = 4;
/// Scalar registers.
pub const NUM_SREGS: usize = 32;
/// Vector registers.
pub const NUM_VREGS: usize = 32;
/// Predicate registers.
pub const NUM_PREGS: usize = 8;
/// Tensor slots.
pub const NUM_TENSORS: usize = 16;
/// Bytes of each core's scratchpad.
pub const SCRATCH_BYTES: usize = 256 << 10;
