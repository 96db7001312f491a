//! Kernels on the SG1's compute cores: a kernel binary loaded into device memory, its
//! arguments bound by position or by name and checked against what the kernel
//! declares, launches on the compute queue, and what a fault tells.
//!
//! ```text
//! let k = Kernel::assemble(&dev, include_str!("vadd.s"), "vadd.s")?;
//! let k = Kernel::compile(&dev, include_str!("vadd.sgc"), "vadd.sgc")?;   // SGC
//! let args = Args::new().arg(a).arg(b).named("c", c);      // Tensors
//! let report = dev.run_kernel(&k, &[n.div_ceil(64)], &args)?;
//! ```
//!
//! A loaded kernel is one device-memory allocation of its context: the code, and after
//! it the argument buffer of its launches. A launch is one command buffer on the
//! compute queue: a `LIN_DMA` that copies the argument buffer (carried in the command
//! buffer's own slot of host memory) into the kernel's, then the `LAUNCH`. The compute
//! queue runs its jobs one after the other, so the next launch's copy cannot overwrite
//! the arguments of a launch still running.
//!
//! A launch that faults fails with [`KernelError::Fault`]: a [`KernelFault`] with the
//! core, the instruction and the cause from the completion, and the cause's detail
//! (the coordinate, the address...) from the driver's INFO_CORES, which keeps the
//! last fault of each core for the context whose launch it ended.
//!
//! [`Kernel::compile`] compiles SGC source (`docs/language.md`) with `sagrada-cc`
//! first. Compiled binaries are kept in a process-wide cache keyed by the source, the
//! optimisation level and the compiler's version, so a program that compiles the same
//! kernel for each device, or each run of a loop, compiles it once
//! ([`compile_binary`], [`cache_stats`]). Failures are not cached: their
//! diagnostics name the file the caller gave, and a source that fails is usually
//! about to be edited.
//!
//! Left out: kernels shared between contexts, a cache on disk, eviction from the
//! in-memory cache (a binary is at most a few hundred KiB, and a process compiles a
//! handful of kernels), and launch parameters beyond the index space and the core
//! mask.

use std::collections::HashMap;
use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex, PoisonError};
use std::time::Duration;

pub use sagrada_cc::{CompileError, OptLevel};
use sagrada_hw_accel_abi::launch::{CoreFault, LaunchArgs, MAX_ARGS_SIZE};
use sagrada_hw_accel_abi::packet::{DmaDir, Packet};
use sagrada_hw_accel_abi::{MAX_CODE_INSTS, NUM_CORES};
use sagrada_isa::binary::BinaryError;
use sagrada_isa::exec::{FaultKind, TensorDesc};
use sagrada_isa::{DIMS, ISA_VERSION_MAJOR, ISA_VERSION_MINOR, Inst};
use sagrada_kernel_accel::uapi::CORE_FAULT_WRITE;
use sagrada_sys::{Errno, Fd};

use crate::accel::{COMPUTE, CsOutcome, Device, DeviceMemory, Stream};

pub use sagrada_hw_accel_abi::launch::FaultCode;
pub use sagrada_isa::binary::{ArgDecl, ArgKind, ElemKind, KernelBinary};

/// Where a kernel's argument buffer starts in its allocation: after the largest code.
const ARGS_OFFSET: u64 = MAX_CODE_INSTS as u64 * 8;

/// Why a kernel could not be loaded or launched, or how its launch failed.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// The assembly source has an error.
    #[error("{0}")]
    Asm(#[from] sagrada_isa::asm::AsmError),
    /// The SGC source does not compile: the compiler's diagnostics, rendered against
    /// the source (`file:line:column`, the line, a marker under the offending text).
    #[error("{0}")]
    Compile(#[from] CompileError),
    /// The bytes are not a kernel binary.
    #[error("not a valid kernel binary: {0}")]
    Binary(#[from] BinaryError),
    /// The kernel has no instructions, or more than a launch can run.
    #[error("kernel {kernel} has {count} instructions; a launch runs 1 to {MAX_CODE_INSTS}")]
    CodeSize {
        /// The kernel.
        kernel: String,
        /// Its instructions.
        count: usize,
    },
    /// Its entry point is outside its code.
    #[error("kernel {kernel}: entry {entry} is not one of its {count} instructions")]
    Entry {
        /// The kernel.
        kernel: String,
        /// The entry.
        entry: u32,
        /// Its instructions.
        count: usize,
    },
    /// The device's cores run another major version of the ISA.
    #[error(
        "the device runs ISA {}.{}, and this runtime builds kernels for ISA \
         {ISA_VERSION_MAJOR}.{ISA_VERSION_MINOR}: another major version cannot run them",
        .device.0, .device.1
    )]
    IsaVersion {
        /// The device's (major, minor).
        device: (u32, u32),
    },
    /// The kernel was loaded through another device file (another context).
    #[error("kernel {kernel} was loaded into another context; load it into this one")]
    OtherContext {
        /// The kernel.
        kernel: String,
    },
    /// Not as many arguments as the kernel declares.
    #[error("kernel {kernel} takes {expected} arguments ({signature}), {found} given")]
    Count {
        /// The kernel.
        kernel: String,
        /// What it declares.
        expected: usize,
        /// What was given.
        found: usize,
        /// Its declarations, `name: kind` each.
        signature: String,
    },
    /// A named argument the kernel does not declare.
    #[error("kernel {kernel} has no argument named {name:?}; its arguments are {signature}")]
    UnknownName {
        /// The kernel.
        kernel: String,
        /// The name given.
        name: String,
        /// Its declarations.
        signature: String,
    },
    /// An argument given twice (by position and by name, or by name twice).
    #[error("kernel {kernel}: argument {index} ({name}) is given twice")]
    Duplicate {
        /// The kernel.
        kernel: String,
        /// The argument's position.
        index: usize,
        /// Its name.
        name: String,
    },
    /// An argument the call does not give (with as many given as declared, some other
    /// was given twice or unknown).
    #[error("kernel {kernel}: argument {index} ({name}: {expected}) is not given")]
    Missing {
        /// The kernel.
        kernel: String,
        /// The argument's position.
        index: usize,
        /// Its name.
        name: String,
        /// Its declared kind.
        expected: String,
    },
    /// A tensor for a scalar, a scalar for a tensor, or a scalar of another kind.
    #[error("kernel {kernel}: argument {index} ({name}) must be {expected}, not {found}")]
    Kind {
        /// The kernel.
        kernel: String,
        /// The argument's position.
        index: usize,
        /// Its name.
        name: String,
        /// What it declares.
        expected: String,
        /// What was given.
        found: String,
    },
    /// A tensor whose elements are not the declared kind.
    #[error(
        "kernel {kernel}: argument {index} ({name}) must be a tensor of {expected} elements, \
         not of {found}"
    )]
    ElemType {
        /// The kernel.
        kernel: String,
        /// The argument's position.
        index: usize,
        /// Its name.
        name: String,
        /// The declared element kind.
        expected: String,
        /// The tensor's.
        found: String,
    },
    /// A tensor that cannot be described (an empty or too long shape, a zero
    /// dimension, an element kind without a size, more than its memory holds).
    #[error("tensor: {0}")]
    Shape(String),
    /// An index space with a zero or missing dimension.
    #[error("index space {dims:?}: {reason}")]
    IndexSpace {
        /// The dimensions given.
        dims: Vec<u32>,
        /// What is wrong.
        reason: &'static str,
    },
    /// A core mask naming a core the device does not have.
    #[error("core mask {mask:#x} names cores the device does not have (it has {cores})")]
    CoreMask {
        /// The mask.
        mask: u32,
        /// The device's cores.
        cores: u32,
    },
    /// A core faulted.
    #[error(transparent)]
    Fault(#[from] KernelFault),
    /// The submission failed otherwise (an MMU fault reading the code or the
    /// arguments, a reset, a lockup).
    #[error("the launch of {kernel} was aborted: {errno}{}", info_text(*.errno, *.info))]
    Aborted {
        /// The kernel.
        kernel: String,
        /// The cause.
        errno: Errno,
        /// The faulting VA or packet offset.
        info: u64,
    },
    /// A uAPI call failed.
    #[error("{what}: {errno}")]
    Os {
        /// What was being done.
        what: String,
        /// The error.
        errno: Errno,
    },
}

fn info_text(errno: Errno, info: u64) -> String {
    match errno {
        Errno::EFAULT => format!(" at device address {info:#x}"),
        Errno::EINVAL | Errno::EPERM => format!(" (packet at byte {info})"),
        _ => String::new(),
    }
}

fn os(what: impl Into<String>) -> impl FnOnce(Errno) -> KernelError {
    let what = what.into();
    move |errno| KernelError::Os { what, errno }
}

/// A core's fault, as a launch reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelFault {
    /// The kernel.
    pub kernel: String,
    /// The submission.
    pub seq: u64,
    /// The core (the lowest-numbered one, if several faulted).
    pub core: u32,
    /// The faulting instruction's index.
    pub pc: u32,
    /// What was wrong.
    pub cause: FaultCode,
    /// The cause's detail word (`CORE.FAULT_INFO`), when the driver had it.
    pub info: Option<u64>,
    /// An MMU fault of a store.
    pub write: bool,
    /// The kernel's tensor arguments' names, slot by slot (for the message).
    tensor_names: Vec<String>,
}

impl KernelFault {
    /// The fault as the reference semantics names it, when the detail is known.
    pub fn kind(&self) -> Option<FaultKind> {
        let info = self.info?;
        let slot = info as u8;
        Some(match self.cause {
            FaultCode::IllegalInstruction => {
                FaultKind::IllegalInstruction(Inst::decode(info).err()?)
            }
            FaultCode::PcRange => FaultKind::PcRange {
                target: info as i64,
            },
            FaultCode::Misaligned => FaultKind::Misaligned { addr: info as i64 },
            FaultCode::ScratchRange => FaultKind::ScratchRange { addr: info as i64 },
            FaultCode::ArgRange => FaultKind::ArgRange {
                index: info as i64 as i32,
            },
            FaultCode::TensorSlot => FaultKind::TensorSlot { slot },
            FaultCode::TensorType => FaultKind::TensorType {
                slot,
                elem_size: (info >> 16) as u32,
            },
            FaultCode::TensorRange => FaultKind::TensorRange {
                slot,
                dim: (info >> 8) as u8,
                coord: info >> 16,
            },
            FaultCode::Mmu => FaultKind::Mmu {
                va: info,
                write: self.write,
            },
            FaultCode::DivideByZero => FaultKind::DivideByZero,
        })
    }

    /// The tensor slot the fault is about, if any.
    pub fn slot(&self) -> Option<u8> {
        match self.kind()? {
            FaultKind::TensorSlot { slot }
            | FaultKind::TensorType { slot, .. }
            | FaultKind::TensorRange { slot, .. } => Some(slot),
            _ => None,
        }
    }
}

fn cause_summary(code: FaultCode) -> &'static str {
    match code {
        FaultCode::IllegalInstruction => "illegal instruction",
        FaultCode::PcRange => "execution left the program",
        FaultCode::Misaligned => "misaligned scratchpad address",
        FaultCode::ScratchRange => "scratchpad address out of range",
        FaultCode::ArgRange => "ldarg beyond the scalar arguments",
        FaultCode::TensorSlot => "a tensor slot without a tensor",
        FaultCode::TensorType => "a tensor element size the instruction cannot access",
        FaultCode::TensorRange => "a coordinate outside a tensor",
        FaultCode::Mmu => "the MMU refused a global-memory access",
        FaultCode::DivideByZero => "integer division by zero",
    }
}

impl fmt::Display for KernelFault {
    /// `kernel vadd: core 3 faulted at pc 12: coordinate 1088 along dimension 0 is
    /// outside tensor t1 (b)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "kernel {}: core {} faulted at pc {}: ",
            self.kernel, self.core, self.pc
        )?;
        match self.kind() {
            Some(kind) => write!(f, "{kind}")?,
            None => write!(f, "{}", cause_summary(self.cause))?,
        }
        if let Some(name) = self
            .slot()
            .and_then(|s| self.tensor_names.get(usize::from(s)))
        {
            write!(f, " ({name})")?;
        }
        Ok(())
    }
}

impl std::error::Error for KernelFault {}

/// A tensor argument: where its elements are and how they are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tensor {
    /// Device VA of element `(0, 0, 0, 0)`.
    pub va: u64,
    /// What its elements are (never [`ElemKind::Any`]).
    pub elem: ElemKind,
    /// Elements along each dimension, dimension 0 first.
    pub dims: [u32; DIMS],
    /// Distance in elements between neighbours along each dimension.
    pub strides: [u32; DIMS],
}

impl Tensor {
    /// A dense tensor of `shape` (dimension 0 first, 1 to 4 dimensions, the others 1)
    /// at device VA `va`: dimension 0 contiguous, each next dimension after the last.
    pub fn at(va: u64, elem: ElemKind, shape: &[u32]) -> Result<Tensor, KernelError> {
        if elem.elem_size().is_none() {
            return Err(KernelError::Shape(
                "a tensor's element kind must have a size (f32, i32, u32, bf16 or f16), not any"
                    .into(),
            ));
        }
        if shape.is_empty() || shape.len() > DIMS {
            return Err(KernelError::Shape(format!(
                "shape {shape:?} has {} dimensions; a tensor has 1 to {DIMS}",
                shape.len()
            )));
        }
        if let Some(d) = shape.iter().position(|&n| n == 0) {
            return Err(KernelError::Shape(format!(
                "shape {shape:?} is empty along dimension {d}"
            )));
        }
        let mut dims = [1; DIMS];
        dims[..shape.len()].copy_from_slice(shape);
        let mut strides = [0u32; DIMS];
        let mut next: u64 = 1;
        for (s, &d) in strides.iter_mut().zip(&dims) {
            *s = u32::try_from(next).map_err(|_| {
                KernelError::Shape(format!(
                    "shape {shape:?} is too large: a stride does not fit in 32 bits"
                ))
            })?;
            next *= u64::from(d);
        }
        Ok(Tensor {
            va,
            elem,
            dims,
            strides,
        })
    }

    /// A dense tensor of `shape` at the start of `mem`, which must hold it.
    pub fn new(mem: &DeviceMemory, elem: ElemKind, shape: &[u32]) -> Result<Tensor, KernelError> {
        let t = Tensor::at(mem.va, elem, shape)?;
        if t.bytes() > mem.size {
            return Err(KernelError::Shape(format!(
                "shape {shape:?} of {} takes {} bytes; the memory at {:#x} has {}",
                elem.name(),
                t.bytes(),
                mem.va,
                mem.size
            )));
        }
        Ok(t)
    }

    /// The same elements with other strides.
    pub fn with_strides(self, strides: [u32; DIMS]) -> Tensor {
        Tensor { strides, ..self }
    }

    /// Bytes per element.
    pub fn elem_size(&self) -> u32 {
        self.elem.elem_size().unwrap_or(4)
    }

    /// Elements.
    pub fn len(&self) -> u64 {
        self.dims.iter().map(|&d| u64::from(d)).product()
    }

    /// Whether it has no elements (never, for a tensor built here).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes from the first element to one past the last.
    pub fn bytes(&self) -> u64 {
        let last: u64 = self
            .dims
            .iter()
            .zip(&self.strides)
            .map(|(&d, &s)| u64::from(d - 1) * u64::from(s))
            .sum();
        (last + 1) * u64::from(self.elem_size())
    }

    /// Its descriptor in the argument buffer.
    pub fn desc(&self) -> TensorDesc {
        TensorDesc {
            base: self.va,
            elem_size: self.elem_size(),
            dims: self.dims,
            strides: self.strides,
        }
    }
}

/// One argument's value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ArgValue {
    /// A tensor.
    Tensor(Tensor),
    /// An f32 scalar.
    F32(f32),
    /// An i32 scalar.
    I32(i32),
    /// A u32 scalar.
    U32(u32),
}

impl ArgValue {
    fn describe(&self) -> String {
        match self {
            ArgValue::Tensor(t) => format!("a tensor of {}", t.elem.name()),
            ArgValue::F32(_) => "an f32 scalar".into(),
            ArgValue::I32(_) => "an i32 scalar".into(),
            ArgValue::U32(_) => "a u32 scalar".into(),
        }
    }
}

impl From<Tensor> for ArgValue {
    fn from(t: Tensor) -> Self {
        ArgValue::Tensor(t)
    }
}

impl From<&Tensor> for ArgValue {
    fn from(t: &Tensor) -> Self {
        ArgValue::Tensor(*t)
    }
}

impl From<f32> for ArgValue {
    fn from(v: f32) -> Self {
        ArgValue::F32(v)
    }
}

impl From<i32> for ArgValue {
    fn from(v: i32) -> Self {
        ArgValue::I32(v)
    }
}

impl From<u32> for ArgValue {
    fn from(v: u32) -> Self {
        ArgValue::U32(v)
    }
}

/// A launch's arguments, by position ([`Args::arg`]) and by name ([`Args::named`]).
/// Positional ones take the declared arguments from the first on; named ones the
/// argument of that name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Args {
    items: Vec<(Option<String>, ArgValue)>,
}

impl Args {
    /// No arguments.
    pub fn new() -> Self {
        Self::default()
    }

    /// The next positional argument.
    pub fn arg(mut self, value: impl Into<ArgValue>) -> Self {
        self.items.push((None, value.into()));
        self
    }

    /// The argument named `name`.
    pub fn named(mut self, name: &str, value: impl Into<ArgValue>) -> Self {
        self.items.push((Some(name.to_owned()), value.into()));
        self
    }

    /// Arguments given.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether none is given.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// How a declared argument reads in messages: `tensor f32`, `f32 scalar`.
pub fn kind_name(kind: ArgKind) -> String {
    match kind {
        ArgKind::Tensor(ElemKind::Any) => "a tensor".into(),
        ArgKind::Tensor(e) => format!("a tensor of {}", e.name()),
        ArgKind::I32 => "an i32 scalar".into(),
        ArgKind::U32 => "a u32 scalar".into(),
        ArgKind::F32 => "an f32 scalar".into(),
    }
}

/// A kernel's arguments as `name: kind, ...` (`none` if it takes none), for messages.
pub fn signature(decls: &[ArgDecl]) -> String {
    let parts: Vec<String> = decls
        .iter()
        .map(|d| match d.kind {
            ArgKind::Tensor(ElemKind::Any) => format!("{}: tensor", d.name),
            ArgKind::Tensor(e) => format!("{}: tensor {}", d.name, e.name()),
            ArgKind::I32 => format!("{}: i32", d.name),
            ArgKind::U32 => format!("{}: u32", d.name),
            ArgKind::F32 => format!("{}: f32", d.name),
        })
        .collect();
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

/// What a launch that completed reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaunchReport {
    /// The submission.
    pub seq: u64,
    /// Device time at which it completed (the compute engine's clock), ns.
    pub device_time_ns: u64,
}

/// A kernel loaded into a context's device memory.
#[derive(Debug)]
pub struct Kernel {
    binary: KernelBinary,
    mem: DeviceMemory,
    /// The device file and address space it was loaded through.
    owner: (Fd, u32),
}

impl Kernel {
    /// Copies `binary`'s code into device memory of `dev`'s context.
    pub fn load(dev: &Device<'_>, binary: &KernelBinary) -> Result<Kernel, KernelError> {
        let count = binary.code.len();
        if count == 0 || count > MAX_CODE_INSTS as usize {
            return Err(KernelError::CodeSize {
                kernel: binary.name.clone(),
                count,
            });
        }
        if binary.entry as usize >= count {
            return Err(KernelError::Entry {
                kernel: binary.name.clone(),
                entry: binary.entry,
                count,
            });
        }
        let info = dev.info();
        if info.isa_major != u32::from(ISA_VERSION_MAJOR) {
            return Err(KernelError::IsaVersion {
                device: (info.isa_major, info.isa_minor),
            });
        }
        let mem = dev
            .alloc(ARGS_OFFSET + u64::from(MAX_ARGS_SIZE), false)
            .map_err(os(format!(
                "allocating device memory for kernel {}",
                binary.name
            )))?;
        let code: Vec<u8> = binary.code.iter().flat_map(|w| w.to_le_bytes()).collect();
        if let Err(e) = dev.upload(mem.va, &code) {
            let _ = dev.free(mem);
            return Err(os(format!("copying kernel {} to the device", binary.name))(
                e,
            ));
        }
        Ok(Kernel {
            binary: binary.clone(),
            mem,
            owner: (dev.fd(), dev.context().asid),
        })
    }

    /// Loads a kernel binary file's bytes (`.sgb`).
    pub fn from_bytes(dev: &Device<'_>, bytes: &[u8]) -> Result<Kernel, KernelError> {
        Kernel::load(dev, &KernelBinary::from_bytes(bytes)?)
    }

    /// Assembles `source` (`file_name` names it in errors) and loads it.
    pub fn assemble(
        dev: &Device<'_>,
        source: &str,
        file_name: &str,
    ) -> Result<Kernel, KernelError> {
        Kernel::load(dev, &sagrada_isa::asm::assemble(source, file_name)?)
    }

    /// Compiles the SGC `source` (`file_name` names it in diagnostics) at `-O1` and
    /// loads it; a source compiled before in this process is not compiled again.
    pub fn compile(dev: &Device<'_>, source: &str, file_name: &str) -> Result<Kernel, KernelError> {
        Kernel::compile_with(dev, source, file_name, OptLevel::O1)
    }

    /// [`Kernel::compile`] at optimisation level `level`.
    pub fn compile_with(
        dev: &Device<'_>,
        source: &str,
        file_name: &str,
        level: OptLevel,
    ) -> Result<Kernel, KernelError> {
        let (binary, _) = compile_binary(source, file_name, level)?;
        Kernel::load(dev, &binary)
    }

    /// The kernel's name.
    pub fn name(&self) -> &str {
        &self.binary.name
    }

    /// Its declared arguments, in order.
    pub fn args(&self) -> &[ArgDecl] {
        &self.binary.args
    }

    /// The binary it was loaded from.
    pub fn binary(&self) -> &KernelBinary {
        &self.binary
    }

    /// Device VA of its code.
    pub fn code_va(&self) -> u64 {
        self.mem.va
    }

    /// Frees its device memory (closing the device frees it too).
    pub fn free(self, dev: &Device<'_>) -> Result<(), Errno> {
        dev.free(self.mem)
    }

    /// Checks `args` against the declarations and lays them out as the argument
    /// buffer holds them.
    pub fn bind(&self, args: &Args) -> Result<LaunchArgs, KernelError> {
        let decls = &self.binary.args;
        let kernel = || self.binary.name.clone();
        if args.items.len() != decls.len() {
            return Err(KernelError::Count {
                kernel: kernel(),
                expected: decls.len(),
                found: args.items.len(),
                signature: signature(decls),
            });
        }
        let mut slots: Vec<Option<ArgValue>> = vec![None; decls.len()];
        let mut next = 0;
        for (name, value) in &args.items {
            let index = match name {
                None => {
                    next += 1;
                    next - 1
                }
                Some(name) => decls.iter().position(|d| &d.name == name).ok_or_else(|| {
                    KernelError::UnknownName {
                        kernel: kernel(),
                        name: name.clone(),
                        signature: signature(decls),
                    }
                })?,
            };
            if slots[index].replace(*value).is_some() {
                return Err(KernelError::Duplicate {
                    kernel: kernel(),
                    index,
                    name: decls[index].name.clone(),
                });
            }
        }
        let mut out = LaunchArgs::default();
        for (index, (decl, value)) in decls.iter().zip(slots).enumerate() {
            let Some(value) = value else {
                return Err(KernelError::Missing {
                    kernel: kernel(),
                    index,
                    name: decl.name.clone(),
                    expected: kind_name(decl.kind),
                });
            };
            let kind_error = || KernelError::Kind {
                kernel: kernel(),
                index,
                name: decl.name.clone(),
                expected: kind_name(decl.kind),
                found: value.describe(),
            };
            match (decl.kind, value) {
                (ArgKind::Tensor(want), ArgValue::Tensor(t)) => {
                    if want != ElemKind::Any && want != t.elem {
                        return Err(KernelError::ElemType {
                            kernel: kernel(),
                            index,
                            name: decl.name.clone(),
                            expected: want.name().into(),
                            found: t.elem.name().into(),
                        });
                    }
                    out.tensors.push(t.desc());
                }
                (ArgKind::F32, ArgValue::F32(v)) => out.scalars.push(v.to_bits()),
                (ArgKind::I32, ArgValue::I32(v)) => out.scalars.push(v as u32),
                (ArgKind::U32, ArgValue::U32(v)) => out.scalars.push(v),
                _ => return Err(kind_error()),
            }
        }
        Ok(out)
    }

    fn tensor_names(&self) -> Vec<String> {
        self.binary
            .args
            .iter()
            .filter(|d| d.kind.is_tensor())
            .map(|d| d.name.clone())
            .collect()
    }

    /// The `LAUNCH` packet and the argument buffer of a launch.
    fn prepare(
        &self,
        dev: &Device<'_>,
        dims: &[u32],
        args: &Args,
        core_mask: u32,
    ) -> Result<PreparedLaunch, KernelError> {
        if self.owner != (dev.fd(), dev.context().asid) {
            return Err(KernelError::OtherContext {
                kernel: self.binary.name.clone(),
            });
        }
        let space = index_space(dims)?;
        let cores = dev.info().num_cores.min(NUM_CORES);
        let present = if cores >= 32 {
            u32::MAX
        } else {
            (1u32 << cores) - 1
        };
        if core_mask & !present != 0 {
            return Err(KernelError::CoreMask {
                mask: core_mask,
                cores,
            });
        }
        let bytes = self.bind(args)?.encode();
        let args_va = self.mem.va + ARGS_OFFSET;
        let launch = Packet::Launch {
            code_va: self.mem.va,
            code_count: self.binary.code.len() as u32,
            entry: self.binary.entry,
            args_va,
            args_size: bytes.len() as u32,
            dims: space,
            core_mask,
        };
        Ok(PreparedLaunch {
            args: bytes,
            args_va,
            launch,
        })
    }
}

/// The version of the compiler whose binaries the cache holds. Within one process the
/// compiler cannot change; the version is in the key so that the key stays right if
/// the cache ever outlives the process.
pub const COMPILER_VERSION: &str = sagrada_cc::VERSION;

/// Where a binary from [`compile_binary`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// The compiler ran.
    Compiled,
    /// An earlier compilation of the same source at the same level.
    Hit,
}

/// The compile cache's counters since the process started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheStats {
    /// Times the compiler ran (successfully or not).
    pub compilations: u64,
    /// Compilations the cache saved.
    pub hits: u64,
    /// Binaries it holds.
    pub entries: usize,
}

/// Compiled binaries by content, with counters. One process-wide instance serves
/// [`compile_binary`]; tests make their own.
#[derive(Default)]
struct CompileCache {
    /// By [`cache_key`]; the entry keeps what the key hashes, so that a collision of
    /// the 64-bit hash is a miss and never another kernel's binary.
    entries: Mutex<HashMap<u64, CacheEntry>>,
    compilations: AtomicU64,
    hits: AtomicU64,
}

struct CacheEntry {
    source: Box<str>,
    level: OptLevel,
    binary: KernelBinary,
}

/// The content hash of a compilation's inputs. The file name is left out: it appears
/// only in diagnostics, and failures are not cached.
fn cache_key(source: &str, level: OptLevel) -> u64 {
    let mut h = DefaultHasher::new();
    (COMPILER_VERSION, level, source).hash(&mut h);
    h.finish()
}

impl CompileCache {
    /// The binary of `source` at `level`: the cached one, else `compile`'s (cached if
    /// it succeeds).
    fn get_or_compile(
        &self,
        source: &str,
        level: OptLevel,
        compile: impl FnOnce() -> Result<KernelBinary, CompileError>,
    ) -> Result<(KernelBinary, CacheOutcome), CompileError> {
        let key = cache_key(source, level);
        // A panic elsewhere while the lock was held leaves the map consistent (every
        // update is one insert), so a poisoned lock is still usable.
        let lock = || self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(e) = lock().get(&key)
            && e.level == level
            && *e.source == *source
        {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok((e.binary.clone(), CacheOutcome::Hit));
        }
        // The lock is not held while compiling: compilations of different sources
        // run in parallel, and two threads racing on one source both compile it,
        // which costs time but gives the same binary.
        self.compilations.fetch_add(1, Ordering::Relaxed);
        let binary = compile()?;
        lock().insert(
            key,
            CacheEntry {
                source: source.into(),
                level,
                binary: binary.clone(),
            },
        );
        Ok((binary, CacheOutcome::Compiled))
    }

    fn stats(&self) -> CacheStats {
        CacheStats {
            compilations: self.compilations.load(Ordering::Relaxed),
            hits: self.hits.load(Ordering::Relaxed),
            entries: self
                .entries
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .len(),
        }
    }
}

static CACHE: LazyLock<CompileCache> = LazyLock::new(CompileCache::default);

/// Compiles the SGC `source` (`file_name` names it in diagnostics) at `level`, or
/// takes the binary of an earlier compilation of the same source and level from the
/// process-wide cache; says which.
pub fn compile_binary(
    source: &str,
    file_name: &str,
    level: OptLevel,
) -> Result<(KernelBinary, CacheOutcome), KernelError> {
    Ok(CACHE.get_or_compile(source, level, || {
        sagrada_cc::compile(source, file_name, level).map(|c| c.binary)
    })?)
}

/// The process-wide compile cache's counters.
pub fn cache_stats() -> CacheStats {
    CACHE.stats()
}

/// A launch ready to submit: its argument buffer, and the packets that copy it to the
/// device and launch.
struct PreparedLaunch {
    args: Vec<u8>,
    args_va: u64,
    launch: Packet,
}

impl PreparedLaunch {
    /// The command buffer, given where the submission put the argument bytes.
    fn packets(&self, data_va: u64) -> Vec<Packet> {
        vec![
            Packet::LinDma {
                src: data_va,
                dst: self.args_va,
                size: self.args.len() as u64,
                dir: DmaDir::HostToDevice,
            },
            self.launch,
        ]
    }
}

/// The index space of `dims` (1 to 4 sizes, the rest 1).
fn index_space(dims: &[u32]) -> Result<[u32; DIMS], KernelError> {
    let bad = |reason| KernelError::IndexSpace {
        dims: dims.to_vec(),
        reason,
    };
    if dims.is_empty() || dims.len() > DIMS {
        return Err(bad("an index space has 1 to 4 dimensions"));
    }
    if dims.contains(&0) {
        return Err(bad("every dimension must be at least 1"));
    }
    let mut out = [1; DIMS];
    out[..dims.len()].copy_from_slice(dims);
    Ok(out)
}

impl Device<'_> {
    /// Launches `kernel` over the index space `dims` (1 to 4 sizes, dimension 0
    /// first) on every core; returns the submission's sequence number.
    pub fn launch(&self, kernel: &Kernel, dims: &[u32], args: &Args) -> Result<u64, KernelError> {
        self.launch_on(kernel, dims, args, 0)
    }

    /// Launches `kernel` on the cores of `core_mask` (bit `i`: core `i`; 0: all).
    pub fn launch_on(
        &self,
        kernel: &Kernel,
        dims: &[u32],
        args: &Args,
        core_mask: u32,
    ) -> Result<u64, KernelError> {
        let prepared = kernel.prepare(self, dims, args, core_mask)?;
        self.submit_with_data(COMPUTE, &prepared.args, |va| prepared.packets(va))
            .map_err(os(format!("submitting a launch of {}", kernel.name())))
    }

    /// Waits for launch `seq` of `kernel`, and tells how it ended: a core's fault is a
    /// [`KernelError::Fault`], with its detail when the driver has it.
    pub fn wait_launch(&self, kernel: &Kernel, seq: u64) -> Result<LaunchReport, KernelError> {
        let outcome = self
            .wait(seq, Duration::MAX)
            .map_err(os(format!("waiting for a launch of {}", kernel.name())))?;
        match outcome {
            CsOutcome::Completed { device_time_ns } => Ok(LaunchReport {
                seq,
                device_time_ns,
            }),
            CsOutcome::Gone | CsOutcome::Busy => Ok(LaunchReport {
                seq,
                device_time_ns: 0,
            }),
            CsOutcome::Aborted { error, info } => {
                let errno = Errno::new(-error).unwrap_or(Errno::EIO);
                let fault = CoreFault::from_info(info);
                match (errno, fault.fault_code()) {
                    (Errno::EIO, Some(cause)) => Err(self.kernel_fault(kernel, seq, fault, cause)),
                    _ => Err(KernelError::Aborted {
                        kernel: kernel.name().to_owned(),
                        errno,
                        info,
                    }),
                }
            }
        }
    }

    fn kernel_fault(
        &self,
        kernel: &Kernel,
        seq: u64,
        fault: CoreFault,
        cause: FaultCode,
    ) -> KernelError {
        // The detail, if the driver kept it for this very launch.
        let record = self
            .cores_info()
            .ok()
            .and_then(|cores| cores.get(usize::from(fault.core)).copied())
            .filter(|r| {
                r.fault_seq == seq && r.fault_pc == fault.pc && r.fault_code == cause as u32
            });
        KernelError::Fault(KernelFault {
            kernel: kernel.name().to_owned(),
            seq,
            core: u32::from(fault.core),
            pc: fault.pc,
            cause,
            info: record.map(|r| r.fault_info),
            write: record.is_some_and(|r| r.fault_flags & CORE_FAULT_WRITE != 0),
            tensor_names: kernel.tensor_names(),
        })
    }

    /// Launches `kernel` and waits for it.
    pub fn run_kernel(
        &self,
        kernel: &Kernel,
        dims: &[u32],
        args: &Args,
    ) -> Result<LaunchReport, KernelError> {
        let seq = self.launch(kernel, dims, args)?;
        self.wait_launch(kernel, seq)
    }
}

impl Stream<'_, '_> {
    /// Queues a launch of `kernel` on the stream, which must be the compute queue's
    /// ([`Device::stream`]`(COMPUTE)`); [`Device::wait_launch`] tells how it ended.
    pub fn launch(&self, kernel: &Kernel, dims: &[u32], args: &Args) -> Result<u64, KernelError> {
        if self.queue() != COMPUTE {
            return Err(KernelError::Os {
                what: format!(
                    "launching {} on a stream of queue {}: only the compute queue ({COMPUTE}) runs kernels",
                    kernel.name(),
                    self.queue()
                ),
                errno: Errno::EINVAL,
            });
        }
        let seq = self.device().launch(kernel, dims, args)?;
        self.note(seq);
        Ok(seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A binary to stand in for the compiler's output: the cache does not look inside.
    fn binary(name: &str) -> KernelBinary {
        sagrada_isa::asm::assemble(&format!(".kernel {name}\n        halt\n"), "t.s").unwrap()
    }

    /// A compile error as the compiler gives one.
    fn failure() -> CompileError {
        CompileError {
            diagnostics: sagrada_cc::diag::Diagnostics(vec![sagrada_cc::diag::Diagnostic {
                span: Default::default(),
                message: "expected `)` after the parameters, found `{`".into(),
            }]),
            rendered: "bad.sgc:1:11: expected `)` after the parameters, found `{`\n".into(),
        }
    }

    #[test]
    fn the_cache_compiles_a_source_once_per_level() {
        let cache = CompileCache::default();
        let mut runs = 0;
        let mut compile = |name: &str| {
            runs += 1;
            Ok(binary(name))
        };
        let (first, how) = cache
            .get_or_compile("kernel k() {}", OptLevel::O1, || compile("k1"))
            .unwrap();
        assert_eq!((first.name.as_str(), how), ("k1", CacheOutcome::Compiled));
        let (again, how) = cache
            .get_or_compile("kernel k() {}", OptLevel::O1, || compile("other"))
            .unwrap();
        // The cached binary, not the closure's.
        assert_eq!((again.name.as_str(), how), ("k1", CacheOutcome::Hit));
        let (o0, how) = cache
            .get_or_compile("kernel k() {}", OptLevel::O0, || compile("k0"))
            .unwrap();
        assert_eq!((o0.name.as_str(), how), ("k0", CacheOutcome::Compiled));
        let (_, how) = cache
            .get_or_compile("kernel k() { }", OptLevel::O1, || compile("k2"))
            .unwrap();
        assert_eq!(how, CacheOutcome::Compiled, "a changed source is compiled");
        assert_eq!(runs, 3);
        assert_eq!(
            cache.stats(),
            CacheStats {
                compilations: 3,
                hits: 1,
                entries: 3
            }
        );
    }

    #[test]
    fn the_cache_keeps_no_failures() {
        let cache = CompileCache::default();
        let source = "kernel k( {";
        let error = failure();
        for _ in 0..2 {
            let e = cache
                .get_or_compile(source, OptLevel::O1, || Err(error.clone()))
                .unwrap_err();
            assert_eq!(e, error);
        }
        // Once fixed, the same text compiles: nothing stale was kept.
        let (_, how) = cache
            .get_or_compile(source, OptLevel::O1, || Ok(binary("k")))
            .unwrap();
        assert_eq!(how, CacheOutcome::Compiled);
        assert_eq!(
            cache.stats(),
            CacheStats {
                compilations: 3,
                hits: 0,
                entries: 1
            }
        );
    }

    #[test]
    fn cache_keys_differ_by_level_and_by_any_byte_of_the_source() {
        let k = cache_key("kernel k() {}", OptLevel::O1);
        assert_eq!(k, cache_key("kernel k() {}", OptLevel::O1));
        assert_ne!(k, cache_key("kernel k() {}", OptLevel::O0));
        assert_ne!(k, cache_key("kernel k() {} ", OptLevel::O1));
    }

    #[test]
    fn dense_tensors_get_row_major_strides_and_sizes() {
        let t = Tensor::at(0x1000, ElemKind::F32, &[100, 3]).unwrap();
        assert_eq!(t.dims, [100, 3, 1, 1]);
        assert_eq!(t.strides, [1, 100, 300, 300]);
        assert_eq!((t.len(), t.bytes()), (300, 1200));
        let h = Tensor::at(0, ElemKind::Bf16, &[8]).unwrap();
        assert_eq!((h.elem_size(), h.bytes()), (2, 16));
        for (shape, what) in [
            (&[][..], "0 dimensions"),
            (&[1, 2, 3, 4, 5][..], "5 dimensions"),
            (&[4, 0][..], "empty along dimension 1"),
        ] {
            let e = Tensor::at(0, ElemKind::F32, shape).unwrap_err().to_string();
            assert!(e.contains(what), "{e}");
        }
        assert!(
            Tensor::at(0, ElemKind::Any, &[4])
                .unwrap_err()
                .to_string()
                .contains("not any")
        );
        let mem = DeviceMemory {
            handle: 1,
            va: 0x2000,
            size: 1024,
        };
        let e = Tensor::new(&mem, ElemKind::F32, &[257])
            .unwrap_err()
            .to_string();
        assert!(e.contains("1028 bytes") && e.contains("has 1024"), "{e}");
    }

    #[test]
    fn index_spaces_have_one_to_four_nonzero_sizes() {
        assert_eq!(index_space(&[5]).unwrap(), [5, 1, 1, 1]);
        assert_eq!(index_space(&[5, 2, 3, 4]).unwrap(), [5, 2, 3, 4]);
        assert!(index_space(&[]).is_err());
        assert!(index_space(&[1, 1, 1, 1, 1]).is_err());
        let e = index_space(&[4, 0]).unwrap_err().to_string();
        assert!(e.contains("[4, 0]") && e.contains("at least 1"), "{e}");
    }

    #[test]
    fn faults_read_as_the_reference_semantics_words_them() {
        let f = KernelFault {
            kernel: "vadd".into(),
            seq: 3,
            core: 2,
            pc: 7,
            cause: FaultCode::TensorRange,
            // Slot 1, dimension 0, coordinate 1088.
            info: Some(1 | 1088 << 16),
            write: false,
            tensor_names: vec!["a".into(), "b".into()],
        };
        assert_eq!(
            f.to_string(),
            "kernel vadd: core 2 faulted at pc 7: coordinate 1088 along dimension 0 is outside tensor t1 (b)"
        );
        let bare = KernelFault { info: None, ..f };
        assert_eq!(
            bare.to_string(),
            "kernel vadd: core 2 faulted at pc 7: a coordinate outside a tensor"
        );
    }
}
