//! The reference semantics: one core executing decoded instructions. This is the
//! oracle of every test (and of the compiler's); the SG1 model's compute cores run
//! exactly this code.
//!
//! (API fixed by the ISA design; the bodies are being written.)

use std::ops::Range;

use crate::inst::{DecodeError, Inst};
use crate::{DIMS, LANES, NUM_PREGS, NUM_SREGS, NUM_VREGS, SCRATCH_BYTES};

/// A tensor argument, as a launch's argument buffer describes it.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct TensorDesc {
    /// Device virtual address of element `(0, 0, 0, 0)`.
    pub base: u64,
    /// Bytes per element: 2 or 4.
    pub elem_size: u32,
    /// Elements along each dimension, dimension 0 first; unused dimensions are 1.
    pub dims: [u32; DIMS],
    /// Distance in elements between neighbours along each dimension.
    pub strides: [u32; DIMS],
}

/// What a launch gives every invocation.
#[derive(Clone, Copy, Debug)]
pub struct Launch<'a> {
    /// The index space's size along each dimension (each ≥ 1).
    pub dims: [u32; DIMS],
    /// The tensor arguments, slot by slot.
    pub tensors: &'a [TensorDesc],
    /// The scalar arguments, word by word.
    pub scalars: &'a [u32],
}

/// A global-memory access the memory refused: the MMU's fault at `va`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct MemFault {
    /// The first address refused.
    pub va: u64,
}

/// Global memory as a core sees it: device virtual addresses of the launch's address
/// space.
pub trait GlobalMemory {
    /// Reads `buf.len()` bytes at `va`.
    fn read(&mut self, va: u64, buf: &mut [u8]) -> Result<(), MemFault>;
    /// Writes `data` at `va`.
    fn write(&mut self, va: u64, data: &[u8]) -> Result<(), MemFault>;
    /// Asked every few thousand instructions: whether to abandon the launch (a reset).
    fn should_stop(&mut self) -> bool {
        false
    }
}

/// Why an invocation did not reach `halt`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Stop {
    /// A fault.
    Fault(Fault),
    /// [`GlobalMemory::should_stop`] said so.
    Aborted,
}

/// A precise fault: the instruction and what was wrong.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Fault {
    /// Index of the faulting instruction.
    pub pc: u32,
    /// What was wrong.
    pub kind: FaultKind,
}

/// What was wrong.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FaultKind {
    /// The word at `pc` is not an instruction.
    IllegalInstruction(DecodeError),
    /// Execution left the program: a branch target, or running past the last
    /// instruction (`target` the instruction index it would have run).
    PcRange {
        /// The index outside the program.
        target: i64,
    },
    /// A scratchpad address not 4-byte aligned.
    Misaligned {
        /// The address.
        addr: i64,
    },
    /// A scratchpad access outside the scratchpad.
    ScratchRange {
        /// The first byte address outside.
        addr: i64,
    },
    /// `ldarg` beyond the scalar arguments.
    ArgRange {
        /// The argument index.
        index: i32,
    },
    /// A tensor slot the launch has no tensor for.
    TensorSlot {
        /// The slot.
        slot: u8,
    },
    /// A tensor whose element size the instruction cannot access.
    TensorType {
        /// The slot.
        slot: u8,
        /// The tensor's element size.
        elem_size: u32,
    },
    /// A coordinate outside the tensor.
    TensorRange {
        /// The slot.
        slot: u8,
        /// The dimension.
        dim: u8,
        /// The coordinate.
        coord: u64,
    },
    /// The memory refused the access.
    Mmu {
        /// The address.
        va: u64,
        /// Whether it was a write.
        write: bool,
    },
    /// Integer division or remainder by zero.
    DivideByZero,
}

/// Per-core performance counters.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Counters {
    /// Instructions retired (a faulting instruction does not retire).
    pub instructions: u64,
    /// Vector lane-operations: the active lanes of each vector instruction retired.
    pub lane_ops: u64,
    /// Bytes of global memory read and written.
    pub global_bytes: u64,
    /// Bytes of scratchpad read and written.
    pub scratch_bytes: u64,
    /// Invocations run to `halt`.
    pub invocations: u64,
}

/// A program decoded once: what the cores execute.
#[derive(Clone, Debug)]
pub struct Program {
    insts: Vec<Result<Inst, DecodeError>>,
    entry: u32,
}

impl Program {
    /// Decodes `words`; a word that is not an instruction faults only if executed.
    pub fn decode(words: &[u64], entry: u32) -> Program {
        Program {
            insts: words.iter().map(|&w| Inst::decode(w)).collect(),
            entry,
        }
    }

    /// Instructions.
    pub fn len(&self) -> usize {
        self.insts.len()
    }

    /// Whether it has no instructions.
    pub fn is_empty(&self) -> bool {
        self.insts.is_empty()
    }

    /// The index of the first instruction an invocation runs.
    pub fn entry(&self) -> u32 {
        self.entry
    }
}

/// The architectural state of one core.
#[derive(Clone, Debug)]
pub struct Core {
    /// The core's number.
    pub id: u32,
    /// Scalar registers (`s[0]` is kept 0).
    pub s: [u32; NUM_SREGS],
    /// Vector registers.
    pub v: [[u32; LANES]; NUM_VREGS],
    /// Predicate registers (`p[0]` is kept all ones).
    pub p: [u64; NUM_PREGS],
    /// The scratchpad, [`SCRATCH_BYTES`] long.
    pub scratch: Box<[u8]>,
    /// Counters since the last [`Core::start_launch`].
    pub counters: Counters,
}

impl Core {
    /// A core in its reset state.
    pub fn new(id: u32) -> Core {
        Core {
            id,
            s: [0; NUM_SREGS],
            v: [[0; LANES]; NUM_VREGS],
            p: [0; NUM_PREGS],
            scratch: vec![0; SCRATCH_BYTES].into_boxed_slice(),
            counters: Counters::default(),
        }
        .with_fixed_registers()
    }

    fn with_fixed_registers(mut self) -> Core {
        self.p[0] = u64::MAX;
        self
    }

    /// Prepares for a launch: zeroes the scratchpad and the counters.
    pub fn start_launch(&mut self) {
        todo!()
    }

    /// Runs one invocation, at index-space point `point`, from the program's entry to
    /// `halt`. Registers start at zero (`p0` all ones); the scratchpad keeps what
    /// earlier invocations of the launch on this core left.
    pub fn run(
        &mut self,
        program: &Program,
        launch: &Launch<'_>,
        point: [u32; DIMS],
        mem: &mut dyn GlobalMemory,
    ) -> Result<(), Stop> {
        let _ = (program, launch, point, mem);
        todo!()
    }
}

/// The points of the index space `dims` that core `core` of `cores` runs: a block of
/// the row-major order (dimension 0 fastest), the first `total % cores` cores taking
/// one point more.
pub fn partition(dims: [u32; DIMS], cores: u32, core: u32) -> Range<u64> {
    let _ = (dims, cores, core);
    todo!()
}

/// The point at position `linear` of the row-major order of `dims`.
pub fn point_of(dims: [u32; DIMS], linear: u64) -> [u32; DIMS] {
    let _ = (dims, linear);
    todo!()
}
