//! The reference semantics: one core executing decoded instructions. This is the
//! oracle of every test (and of the compiler's); the SG1 model's compute cores run
//! exactly this code.
//!
//! [`Core::run`] executes one invocation of a [`Program`] at one point of a launch's
//! index space, from the entry to `halt`, against a [`GlobalMemory`] (the device's
//! MMU in the SG1 model, a [`FlatMemory`] in tests). Each instruction does what its
//! entry in [`crate::table`] says, exactly; where the table leaves a choice, this
//! module makes it and says so below. Faults are precise: the instruction at the
//! fault's `pc` did not retire and wrote no register (a faulting tensor store may have
//! written the active lanes below the one that faulted; the launch fails anyway).
//!
//! What it leaves out:
//! - Time. Instructions have no latency here; the SG1 model's clock is elsewhere.
//! - NaN payloads: an operation on NaN gives a NaN, whose payload is whatever the
//!   host produced. Tests compare NaN-ness, never NaN bits.
//!
//! Choices the table does not spell out:
//! - `fmin`/`fmax`/`vmin.f32`/`vmax.f32` and the f32 reductions order `-0` below `+0`
//!   (IEEE 754-2019 `minimumNumber`/`maximumNumber`), so they are deterministic and
//!   the reductions do not depend on lane order.
//! - Scratchpad addresses are `sa` (unsigned) plus the signed `imm`, computed without
//!   wrapping: `sa = 0, imm = -4` is address -4, outside. `Misaligned` is checked
//!   before `ScratchRange`; both report the first active lane's address (for
//!   `ScratchRange`, the first active lane outside), and a vector access with no
//!   active lane checks nothing.
//! - Tensor accesses check the slot and the element size even when no lane is active.
//!   A tensor element whose address does not fit in 64 bits faults `Mmu` with `va`
//!   saturated at `u64::MAX` (or its own address if only its end does not fit),
//!   without reaching the memory.
//! - Falling off the end of the program faults `PcRange` at the last instruction,
//!   which has retired; a branch out of the program faults at the branch, which has
//!   not. An entry outside the program faults at the entry, before anything runs.
//! - `lane_ops` counts the active lanes of every predicable (vector) instruction,
//!   and one for `vext` and `vins`.
//!
//! `exp` (`vexp.f32`, `fexp`) is [`float::exp`]: measured against f64 `exp` over
//! every one of the 2,237,667,740 f32 inputs in `[-87.33, 88.72]`, its largest error
//! is 0.9903 ulp (at x = 70.4031), so every result is one of the two f32 around the
//! exact value. The test suite checks every 257th input against the 1-ulp bound; the
//! ignored test `exp_exhaustive` checks them all.

pub mod float;
mod interp;
mod mem;
pub mod workloads;

use std::fmt;
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

impl FaultKind {
    /// The fault's cause code in the hardware ABI (per-core fault registers, the
    /// completion's info word).
    pub fn code(&self) -> u8 {
        match self {
            FaultKind::IllegalInstruction(_) => 1,
            FaultKind::PcRange { .. } => 2,
            FaultKind::Misaligned { .. } => 3,
            FaultKind::ScratchRange { .. } => 4,
            FaultKind::ArgRange { .. } => 5,
            FaultKind::TensorSlot { .. } => 6,
            FaultKind::TensorType { .. } => 7,
            FaultKind::TensorRange { .. } => 8,
            FaultKind::Mmu { .. } => 9,
            FaultKind::DivideByZero => 10,
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            FaultKind::IllegalInstruction(e) => write!(f, "illegal instruction: {e}"),
            FaultKind::PcRange { target } => write!(
                f,
                "execution left the program: there is no instruction {target}"
            ),
            FaultKind::Misaligned { addr } => {
                write!(f, "scratchpad address {addr} is not 4-byte aligned")
            }
            FaultKind::ScratchRange { addr } => write!(
                f,
                "scratchpad address {addr} is outside the {SCRATCH_BYTES}-byte scratchpad"
            ),
            FaultKind::ArgRange { index } => write!(
                f,
                "ldarg {index} is beyond the scalar arguments of the launch"
            ),
            FaultKind::TensorSlot { slot } => {
                write!(f, "the launch has no tensor in slot t{slot}")
            }
            FaultKind::TensorType { slot, elem_size } => write!(
                f,
                "tensor t{slot} has {elem_size}-byte elements, which the instruction cannot access"
            ),
            FaultKind::TensorRange { slot, dim, coord } => write!(
                f,
                "coordinate {coord} along dimension {dim} is outside tensor t{slot}"
            ),
            FaultKind::Mmu { va, write } => write!(
                f,
                "the MMU refused a {} at device address {va:#x}",
                if write { "write" } else { "read" }
            ),
            FaultKind::DivideByZero => f.write_str("integer division by zero"),
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "fault at pc {}: {}", self.pc, self.kind)
    }
}

impl std::error::Error for Fault {}

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stop::Fault(fault) => fault.fmt(f),
            Stop::Aborted => f.write_str("the launch was abandoned"),
        }
    }
}

impl std::error::Error for Stop {}

impl From<Fault> for Stop {
    fn from(f: Fault) -> Stop {
        Stop::Fault(f)
    }
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
        self.scratch.fill(0);
        self.counters = Counters::default();
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
        self.s = [0; NUM_SREGS];
        self.v = [[0; LANES]; NUM_VREGS];
        self.p = [0; NUM_PREGS];
        self.p[0] = u64::MAX;
        let mut retired = 0;
        let result = interp::run(self, program, launch, point, mem, &mut retired);
        self.counters.instructions += retired;
        if result.is_ok() {
            self.counters.invocations += 1;
        }
        result
    }

    /// Runs the invocations at positions `points` of the launch's row-major order (a
    /// [`partition`] block, say), stopping at the first that does not reach `halt`.
    /// Asks [`GlobalMemory::should_stop`] between invocations too, so that many short
    /// invocations are abandoned as promptly as one long one.
    pub fn run_points(
        &mut self,
        program: &Program,
        launch: &Launch<'_>,
        points: Range<u64>,
        mem: &mut dyn GlobalMemory,
    ) -> Result<(), Stop> {
        let mut next_poll = self.counters.instructions + interp::POLL;
        for linear in points {
            if self.counters.instructions >= next_poll {
                if mem.should_stop() {
                    return Err(Stop::Aborted);
                }
                next_poll = self.counters.instructions + interp::POLL;
            }
            self.run(program, launch, point_of(launch.dims, linear), mem)?;
        }
        Ok(())
    }
}

/// The points of the index space `dims` that core `core` of `cores` runs: a block of
/// the row-major order (dimension 0 fastest), the first `total % cores` cores taking
/// one point more.
pub fn partition(dims: [u32; DIMS], cores: u32, core: u32) -> Range<u64> {
    let total =
        u64::try_from(dims.iter().map(|&d| u128::from(d)).product::<u128>()).unwrap_or(u64::MAX);
    if core >= cores {
        return total..total;
    }
    let (cores, core) = (u64::from(cores), u64::from(core));
    let (block, extra) = (total / cores, total % cores);
    // Cannot overflow: start + len <= total.
    let start = core * block + core.min(extra);
    start..start + block + u64::from(core < extra)
}

/// The point at position `linear` of the row-major order of `dims` (dimension 0
/// fastest). Positions beyond the index space wrap around; an empty index space (a
/// dimension of 0) has only the point 0.
pub fn point_of(dims: [u32; DIMS], linear: u64) -> [u32; DIMS] {
    let mut rest = linear;
    let mut point = [0; DIMS];
    for (c, &d) in point.iter_mut().zip(&dims) {
        if d == 0 {
            return [0; DIMS];
        }
        let d = u64::from(d);
        *c = (rest % d) as u32;
        rest /= d;
    }
    point
}

/// Global memory as one flat byte array at `base`: the memory of tests, benchmarks and
/// tools that run kernels without the SG1 model. Every access outside it is refused.
#[derive(Clone, Debug, Default)]
pub struct FlatMemory {
    /// The device address of `bytes[0]`.
    pub base: u64,
    /// The contents.
    pub bytes: Vec<u8>,
}

impl FlatMemory {
    /// `len` zero bytes at `base`.
    pub fn new(base: u64, len: usize) -> FlatMemory {
        FlatMemory {
            base,
            bytes: vec![0; len],
        }
    }

    /// The index range of `len` bytes at `va`, or the first address outside.
    fn span(&self, va: u64, len: usize) -> Result<Range<usize>, MemFault> {
        let end = self.base.saturating_add(self.bytes.len() as u64);
        if va < self.base || va >= end {
            return Err(MemFault { va });
        }
        let start = (va - self.base) as usize;
        if len > self.bytes.len() - start {
            return Err(MemFault { va: end });
        }
        Ok(start..start + len)
    }
}

impl GlobalMemory for FlatMemory {
    fn read(&mut self, va: u64, buf: &mut [u8]) -> Result<(), MemFault> {
        if buf.is_empty() {
            return Ok(());
        }
        let r = self.span(va, buf.len())?;
        buf.copy_from_slice(&self.bytes[r]);
        Ok(())
    }

    fn write(&mut self, va: u64, data: &[u8]) -> Result<(), MemFault> {
        if data.is_empty() {
            return Ok(());
        }
        let r = self.span(va, data.len())?;
        self.bytes[r].copy_from_slice(data);
        Ok(())
    }
}
