//! An interpreter of the IR: runs a [`Function`] over a launch with the ISA's
//! semantics, as the oracle of the optimiser's tests (a function and its optimised
//! form must agree) and of differential tests of the whole compiler against the SG1.
//!
//! A launch is the ISA's own [`Launch`] (index space, tensor descriptors, scalar
//! arguments) against a [`GlobalMemory`] (a [`sagrada_isa::exec::FlatMemory`] in
//! tests). The points are divided among `cores` cores as [`partition`] divides them,
//! each core with its own 256 KiB scratchpad, zeroed at the start and kept across the
//! invocations the core runs; the cores run one after the other.
//!
//! Arithmetic is the ISA's exactly: `exp`, f32 min/max and bf16 conversions are
//! [`sagrada_isa::exec::float`]'s, `rsqrt` is `1 / sqrt` rounded twice, f32 sums
//! reduce in the fixed tree order, integers wrap. Faults are the ISA's
//! [`FaultKind`]s, checked in the ISA's order (tensor slot, element size, then the
//! coordinates of the lowest active lane first; scratchpad alignment, then range).
//! The lanes a guarded result leaves unspecified (no passthru) are filled with
//! [`POISON_LANE`] / [`POISON_MASK`] bits, so that a test notices if they leak.
//!
//! Left out: anything about time or registers; the function is not verified first, so
//! a malformed one stops with [`InterpError::Malformed`] (never a panic) when it reaches
//! the broken part. A step limit stops runaway loops.

use sagrada_isa::exec::float;
use sagrada_isa::exec::{FaultKind, GlobalMemory, Launch, partition, point_of};
use sagrada_isa::{LANES, SCRATCH_BYTES};

use super::{Function, Inst, Op, Terminator, Type, Value};

/// What the unspecified lanes of a guarded vector result hold.
pub const POISON_LANE: u32 = 0xdead_beef;
/// What the unspecified lanes of a guarded mask result hold.
pub const POISON_MASK: u64 = 0xa5a5_a5a5_a5a5_a5a5;

/// A run value.
// Values live in one Vec per invocation; boxing the vectors would cost an allocation
// per vector instruction for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Val {
    /// An `I32` or `F32` (its bits).
    S(u32),
    /// A vector's lanes.
    V([u32; LANES]),
    /// A mask's bits.
    M(u64),
    /// An `Int4`.
    C([u32; 4]),
}

/// Why a run stopped before every invocation halted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InterpError {
    /// The ISA's fault, at an instruction of an invocation.
    #[error("fault at instruction {} (point {point:?}, core {core}): {kind}", inst.0)]
    Fault {
        /// What was wrong.
        kind: FaultKind,
        /// The instruction that faulted.
        inst: Inst,
        /// The invocation's point.
        point: [u32; 4],
        /// Its core.
        core: u32,
    },
    /// More than the step limit of instructions and terminators ran.
    #[error("the run took more than {0} steps")]
    StepLimit(u64),
    /// The function broke a rule of the IR in a way the run met.
    #[error("malformed IR: {0}")]
    Malformed(String),
}

/// What a run did.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Stats {
    /// Instructions executed (terminators not counted).
    pub insts: u64,
    /// Terminators executed.
    pub terms: u64,
    /// Invocations run to `halt`.
    pub invocations: u64,
}

fn malformed<T>(msg: String) -> Result<T, InterpError> {
    Err(InterpError::Malformed(msg))
}

/// Runs every invocation of `launch` on `cores` cores (at least one), stopping at the
/// first fault, or when more than `limit` steps have run.
pub fn run(
    f: &Function,
    launch: &Launch<'_>,
    cores: u32,
    memory: &mut dyn GlobalMemory,
    limit: u64,
) -> Result<Stats, InterpError> {
    let cores = cores.max(1);
    let mut m = Machine {
        f,
        launch,
        memory,
        limit,
        stats: Stats::default(),
        vals: vec![None; f.values.len()],
        scratch: vec![0; SCRATCH_BYTES],
        core: 0,
        point: [0; 4],
    };
    for core in 0..cores {
        m.scratch.iter_mut().for_each(|b| *b = 0);
        m.core = core;
        for linear in partition(launch.dims, cores, core) {
            m.point = point_of(launch.dims, linear);
            m.invocation()?;
        }
    }
    Ok(m.stats)
}

struct Machine<'a, 'l> {
    f: &'a Function,
    launch: &'a Launch<'l>,
    memory: &'a mut dyn GlobalMemory,
    limit: u64,
    stats: Stats,
    vals: Vec<Option<Val>>,
    scratch: Vec<u8>,
    core: u32,
    point: [u32; 4],
}

/// The result of a lane-wise operation on lane values `a`, `b`, `c` (scalar or one
/// lane of a vector); compares give 0 or 1. `None` for an operation that is not
/// lane-wise, or a division by zero. Shared with constant folding, so that a folded
/// constant is bit for bit what the machine computes.
pub fn lanewise(op: Op, a: u32, b: u32, c: u32) -> Option<u32> {
    use super::Cond::*;
    let fa = f32::from_bits(a);
    let fb = f32::from_bits(b);
    let fc = f32::from_bits(c);
    let (ia, ib) = (a as i32, b as i32);
    let fl = |x: f32| Some(x.to_bits());
    Some(match op {
        Op::Copy | Op::Bitcast | Op::Broadcast => a,
        Op::Add => a.wrapping_add(b),
        Op::Sub => a.wrapping_sub(b),
        Op::Mul => a.wrapping_mul(b),
        Op::Div => return (b != 0).then(|| ia.wrapping_div(ib) as u32),
        Op::Divu => return a.checked_div(b),
        Op::Rem => return (b != 0).then(|| ia.wrapping_rem(ib) as u32),
        Op::Remu => return a.checked_rem(b),
        Op::And => a & b,
        Op::Or => a | b,
        Op::Xor => a ^ b,
        Op::Shl => a << (b & 31),
        Op::Shr => a >> (b & 31),
        Op::Sra => (ia >> (b & 31)) as u32,
        Op::Min => ia.min(ib) as u32,
        Op::Max => ia.max(ib) as u32,
        Op::Minu => a.min(b),
        Op::Maxu => a.max(b),
        Op::Icmp(cond) => u32::from(match cond {
            Eq => a == b,
            Ne => a != b,
            Lt => ia < ib,
            Le => ia <= ib,
            Gt => ia > ib,
            Ge => ia >= ib,
            Ltu => a < b,
            Leu => a <= b,
            Gtu => a > b,
            Geu => a >= b,
        }),
        Op::Fadd => return fl(fa + fb),
        Op::Fsub => return fl(fa - fb),
        Op::Fmul => return fl(fa * fb),
        Op::Fdiv => return fl(fa / fb),
        Op::Fmin => return fl(float::min(fa, fb)),
        Op::Fmax => return fl(float::max(fa, fb)),
        Op::Fmad => return fl(fa * fb + fc),
        Op::Fneg => a ^ 0x8000_0000,
        Op::Fabs => a & 0x7fff_ffff,
        Op::Fsqrt => return fl(fa.sqrt()),
        Op::Fexp => return fl(float::exp(fa)),
        Op::Frsqrt => return fl(1.0 / fa.sqrt()),
        Op::Frcp => return fl(1.0 / fa),
        Op::Fcmp(cond) => u32::from(match cond {
            Eq => fa == fb,
            Ne => fa != fb,
            Lt => fa < fb,
            Le => fa <= fb,
            Gt => fa > fb,
            Ge => fa >= fb,
            _ => return None,
        }),
        Op::CvtF32I32 => return fl(ia as f32),
        Op::CvtI32F32 => fa as i32 as u32,
        Op::CvtF32U32 => return fl(a as f32),
        Op::CvtU32F32 => fa as u32,
        Op::Select => {
            if a != 0 {
                b
            } else {
                c
            }
        }
        _ => return None,
    })
}

/// The f32 sum of the lanes of `m` of `x` in the SG1's tree order (the others -0).
pub use sagrada_isa::exec::float::redsum_f32 as red_add_f32;

/// `vredmax.f32` / `vredmin.f32` over the lanes of `m`.
pub use sagrada_isa::exec::float::redext_f32 as red_ext_f32;

/// The integer reductions over the lanes of `m` (`op` is the reduction), wrapping.
pub(crate) fn red_i32(x: &[u32; LANES], m: u64, op: Op) -> u32 {
    let (identity, f): (u32, fn(u32, u32) -> u32) = match op {
        Op::RedAdd => (0, u32::wrapping_add),
        Op::RedMax => (i32::MIN as u32, |a, b| (a as i32).max(b as i32) as u32),
        _ => (i32::MAX as u32, |a, b| (a as i32).min(b as i32) as u32),
    };
    x.iter().enumerate().fold(identity, |acc, (i, &xi)| {
        f(acc, if m >> i & 1 != 0 { xi } else { identity })
    })
}

/// The device address of an element of `elem` bytes at `at`, or the address the MMU
/// fault names when it does not fit in the 64-bit address space (as the ISA does).
fn element_address(at: u128, elem: usize) -> Result<u64, u64> {
    match u64::try_from(at) {
        Ok(a) if a.checked_add(elem as u64 - 1).is_some() => Ok(a),
        Ok(a) => Err(a),
        Err(_) => Err(u64::MAX),
    }
}

/// The checks of a tensor access in the ISA's order (the slot, the element size, then
/// the coordinates of the lowest active lane, the other dimensions and the other
/// lanes) and, if they pass, the address of the first active lane's element and the
/// distance between lanes' first elements, in bytes (before the MMU's checks). The
/// language's interpreter shares it: it is the machine's rule, not the language's.
pub(crate) fn tensor_access(
    launch: &Launch<'_>,
    slot: u8,
    elem: u32,
    per_lane: u64,
    c: [u32; 4],
    m: u64,
) -> Result<(u128, u128), FaultKind> {
    let Some(t) = launch.tensors.get(usize::from(slot)) else {
        return Err(FaultKind::TensorSlot { slot });
    };
    if t.elem_size != elem {
        return Err(FaultKind::TensorType {
            slot,
            elem_size: t.elem_size,
        });
    }
    if m != 0 {
        let range = |dim: u8, coord: u64| FaultKind::TensorRange { slot, dim, coord };
        let c0 = u64::from(c[0]);
        let d0 = u64::from(t.dims[0]);
        let first = c0 + per_lane * u64::from(m.trailing_zeros());
        if first >= d0 {
            return Err(range(0, first));
        }
        for (dim, (&cd, &size)) in c.iter().zip(&t.dims).enumerate().skip(1) {
            if cd >= size {
                return Err(range(dim as u8, u64::from(cd)));
            }
        }
        for j in lanes(m) {
            // The lane's first element is in range, so the first one out of range is
            // the tensor's end.
            let lo = c0 + per_lane * j as u64;
            if lo + per_lane > d0 {
                return Err(range(0, lo.max(d0)));
            }
        }
    }
    let offset: u128 = c
        .iter()
        .zip(&t.strides)
        .map(|(&cd, &stride)| u128::from(cd) * u128::from(stride))
        .sum();
    let e = u128::from(elem);
    Ok((
        u128::from(t.base) + e * offset,
        e * u128::from(t.strides[0]),
    ))
}

/// The active lanes of mask `m`, lowest first.
fn lanes(m: u64) -> impl Iterator<Item = usize> {
    (0..LANES).filter(move |&i| m >> i & 1 != 0)
}

impl Machine<'_, '_> {
    fn fault<T>(&self, kind: FaultKind, inst: Inst) -> Result<T, InterpError> {
        Err(InterpError::Fault {
            kind,
            inst,
            point: self.point,
            core: self.core,
        })
    }

    fn get(&self, v: Value) -> Result<Val, InterpError> {
        match self.vals.get(v.0 as usize) {
            Some(Some(x)) => Ok(*x),
            Some(None) => malformed(format!("{v} is used before it is defined")),
            None => malformed(format!("{v} does not exist")),
        }
    }

    fn ty(&self, v: Value) -> Option<Type> {
        self.f.values.get(v.0 as usize).map(|d| d.ty)
    }

    fn invocation(&mut self) -> Result<(), InterpError> {
        self.vals.iter_mut().for_each(|v| *v = None);
        let f = self.f;
        let mut b = f.entry;
        loop {
            let Some(bd) = f.blocks.get(b.0 as usize) else {
                return malformed(format!("block {b} does not exist"));
            };
            for &i in &bd.insts {
                self.step()?;
                self.stats.insts += 1;
                self.exec(i)?;
            }
            self.step()?;
            self.stats.terms += 1;
            let target = match &bd.term {
                Terminator::Halt => {
                    self.stats.invocations += 1;
                    return Ok(());
                }
                Terminator::Jump(t) => t,
                Terminator::Branch {
                    cond,
                    then,
                    otherwise,
                } => match self.get(*cond)? {
                    Val::S(0) => otherwise,
                    Val::S(_) => then,
                    _ => return malformed(format!("the branch condition {cond} is not an i32")),
                },
            };
            let args = target
                .args
                .iter()
                .map(|&a| self.get(a))
                .collect::<Result<Vec<_>, _>>()?;
            let Some(td) = f.blocks.get(target.block.0 as usize) else {
                return malformed(format!("block {} does not exist", target.block));
            };
            if td.params.len() != args.len() {
                return malformed(format!(
                    "{} gets {} values for {} parameters",
                    target.block,
                    args.len(),
                    td.params.len()
                ));
            }
            for (&p, a) in td.params.iter().zip(args) {
                self.set(p, a)?;
            }
            b = target.block;
        }
    }

    fn step(&mut self) -> Result<(), InterpError> {
        if self.stats.insts + self.stats.terms >= self.limit {
            return Err(InterpError::StepLimit(self.limit));
        }
        Ok(())
    }

    fn set(&mut self, v: Value, x: Val) -> Result<(), InterpError> {
        match self.vals.get_mut(v.0 as usize) {
            Some(slot) => {
                *slot = Some(x);
                Ok(())
            }
            None => malformed(format!("{v} does not exist")),
        }
    }

    fn exec(&mut self, i: Inst) -> Result<(), InterpError> {
        let Some(d) = self.f.insts.get(i.0 as usize) else {
            return malformed(format!("instruction {} does not exist", i.0));
        };
        let args = d
            .args
            .iter()
            .map(|&a| self.get(a))
            .collect::<Result<Vec<_>, _>>()?;
        let m = match d.guard {
            None => u64::MAX,
            Some(g) => match self.get(g.mask)? {
                Val::M(bits) if g.negated => !bits,
                Val::M(bits) => bits,
                _ => return malformed(format!("the guard {} is not a mask", g.mask)),
            },
        };
        let bad = || {
            InterpError::Malformed(format!(
                "instruction {} ({:?}) has operands of the wrong kinds",
                i.0, d.op
            ))
        };
        let rty = d.result.and_then(|r| self.ty(r));
        let s = |k: usize| match args.get(k) {
            Some(Val::S(x)) => Ok(*x),
            _ => Err(bad()),
        };
        let v = |k: usize| match args.get(k) {
            Some(Val::V(x)) => Ok(*x),
            _ => Err(bad()),
        };
        let mk = |k: usize| match args.get(k) {
            Some(Val::M(x)) => Ok(*x),
            _ => Err(bad()),
        };
        let c4 = |k: usize| match args.get(k) {
            Some(Val::C(x)) => Ok(*x),
            _ => Err(bad()),
        };
        let lane = |x: &Val, j: usize| match x {
            Val::S(s) => *s,
            Val::V(v) => v[j],
            _ => 0,
        };
        let result: Option<Val> = match d.op {
            Op::Const(bits) => Some(if rty == Some(Type::Mask) {
                Val::M(u64::MAX)
            } else {
                Val::S(bits)
            }),
            Op::Copy => Some(*args.first().ok_or_else(bad)?),
            Op::Div | Op::Divu | Op::Rem | Op::Remu => match lanewise(d.op, s(0)?, s(1)?, 0) {
                Some(x) => Some(Val::S(x)),
                None => return self.fault(FaultKind::DivideByZero, i),
            },
            Op::Broadcast => Some(Val::V([s(0)?; LANES])),
            Op::Iota => Some(Val::V(std::array::from_fn(|j| j as u32))),
            Op::Select if matches!(args.first(), Some(Val::M(_))) => {
                let (c, a, b) = (mk(0)?, v(1)?, v(2)?);
                Some(Val::V(std::array::from_fn(|j| {
                    if c >> j & 1 != 0 { a[j] } else { b[j] }
                })))
            }
            Op::Extract => Some(Val::S(v(0)?[(s(1)? & 63) as usize])),
            Op::Insert => {
                let mut x = v(0)?;
                x[(s(2)? & 63) as usize] = s(1)?;
                Some(Val::V(x))
            }
            Op::Rotate => {
                let (x, k) = (v(0)?, s(1)?);
                Some(Val::V(std::array::from_fn(|j| {
                    x[((j as u32).wrapping_add(k) & 63) as usize]
                })))
            }
            Op::Permute => {
                let (x, idx) = (v(0)?, v(1)?);
                Some(Val::V(std::array::from_fn(|j| x[(idx[j] & 63) as usize])))
            }
            Op::RedAdd | Op::RedMax | Op::RedMin => {
                let x = v(0)?;
                let float = d.args.first().and_then(|&a| self.ty(a)) == Some(Type::VF32);
                Some(Val::S(match (float, d.op) {
                    (true, Op::RedAdd) => red_add_f32(&x, m),
                    (true, op) => red_ext_f32(&x, m, op == Op::RedMax),
                    (false, op) => red_i32(&x, m, op),
                }))
            }
            Op::Lanes => {
                let k = s(0)?;
                Some(Val::M(if k >= 64 { u64::MAX } else { (1u64 << k) - 1 }))
            }
            Op::MaskAnd => Some(Val::M(mk(0)? & mk(1)?)),
            Op::MaskOr => Some(Val::M(mk(0)? | mk(1)?)),
            Op::MaskXor => Some(Val::M(mk(0)? ^ mk(1)?)),
            Op::MaskNot => Some(Val::M(!mk(0)?)),
            Op::MaskCount => Some(Val::S(mk(0)?.count_ones())),
            Op::UnpackLo | Op::UnpackHi => {
                let x = v(0)?;
                let first = if d.op == Op::UnpackLo { 0 } else { LANES };
                Some(Val::V(std::array::from_fn(|j| {
                    let e = first + j;
                    float::bf16_to_f32((x[e / 2] >> (16 * (e % 2))) as u16).to_bits()
                })))
            }
            Op::Pack => {
                let (x, y) = (v(0)?, v(1)?);
                Some(Val::V(std::array::from_fn(|j| {
                    let src = if j < LANES / 2 { &x } else { &y };
                    let e = 2 * (j % (LANES / 2));
                    let lo = float::f32_to_bf16(f32::from_bits(src[e]));
                    let hi = float::f32_to_bf16(f32::from_bits(src[e + 1]));
                    u32::from(lo) | u32::from(hi) << 16
                })))
            }
            Op::MakeInt4 => Some(Val::C([s(0)?, s(1)?, s(2)?, s(3)?])),
            Op::Int4Get(k) => Some(Val::S(*c4(0)?.get(usize::from(k)).ok_or_else(bad)?)),
            Op::Int4Set(k) => {
                let mut c = c4(0)?;
                *c.get_mut(usize::from(k)).ok_or_else(bad)? = s(1)?;
                Some(Val::C(c))
            }
            Op::Idx(dim) => Some(Val::S(self.point[usize::from(dim & 3)])),
            Op::Idxn(dim) => Some(Val::S(self.launch.dims[usize::from(dim & 3)])),
            Op::CoreId => Some(Val::S(self.core)),
            Op::Arg(k) => match self.launch.scalars.get(k as usize) {
                Some(&x) => Some(Val::S(x)),
                None => {
                    let index = i32::try_from(k).unwrap_or(i32::MAX);
                    return self.fault(FaultKind::ArgRange { index }, i);
                }
            },
            Op::Tdim { slot, dim } => match self.launch.tensors.get(usize::from(slot)) {
                Some(t) => Some(Val::S(t.dims[usize::from(dim & 3)])),
                None => return self.fault(FaultKind::TensorSlot { slot }, i),
            },
            Op::LoadTensor { slot } | Op::LoadTensorScalar { slot } => {
                let scalar = matches!(d.op, Op::LoadTensorScalar { .. });
                let (elem, per_lane, m) = if scalar {
                    (4, 1, 1)
                } else if rty == Some(Type::VBF16) {
                    (2, 2, m)
                } else {
                    (4, 1, m)
                };
                let (first, step) = self.tensor_access(slot, elem, per_lane, c4(0)?, m, i)?;
                let mut out = [0u32; LANES];
                for j in lanes(m) {
                    let mut word = [0u8; 4];
                    for e in 0..per_lane {
                        let k = (per_lane * j + e) as u128;
                        let at = first + step * k;
                        let bytes = &mut word[e * elem..(e + 1) * elem];
                        let r = element_address(at, elem);
                        let res = match r {
                            Ok(a) => self.memory.read(a, bytes).map_err(|e| e.va),
                            Err(va) => Err(va),
                        };
                        if let Err(va) = res {
                            return self.fault(FaultKind::Mmu { va, write: false }, i);
                        }
                    }
                    out[j] = u32::from_le_bytes(word);
                }
                Some(if scalar { Val::S(out[0]) } else { Val::V(out) })
            }
            Op::StoreTensor { slot } | Op::StoreTensorScalar { slot } => {
                let scalar = matches!(d.op, Op::StoreTensorScalar { .. });
                let bf16 = d.args.get(1).and_then(|&a| self.ty(a)) == Some(Type::VBF16);
                let (elem, per_lane, m, x) = if scalar {
                    let mut x = [0; LANES];
                    x[0] = s(1)?;
                    (4, 1, 1, x)
                } else if bf16 {
                    (2, 2, m, v(1)?)
                } else {
                    (4, 1, m, v(1)?)
                };
                let (first, step) = self.tensor_access(slot, elem, per_lane, c4(0)?, m, i)?;
                for j in lanes(m) {
                    let word = x[j].to_le_bytes();
                    for e in 0..per_lane {
                        let k = (per_lane * j + e) as u128;
                        let at = first + step * k;
                        let bytes = &word[e * elem..(e + 1) * elem];
                        let r = element_address(at, elem);
                        let res = match r {
                            Ok(a) => self.memory.write(a, bytes).map_err(|e| e.va),
                            Err(va) => Err(va),
                        };
                        if let Err(va) = res {
                            return self.fault(FaultKind::Mmu { va, write: true }, i);
                        }
                    }
                }
                None
            }
            Op::LoadScratch { offset } => {
                let at = self.scratch_check(s(0)?, offset, 1, i)?;
                Some(Val::S(self.read_word(at)))
            }
            Op::StoreScratch { offset } => {
                let at = self.scratch_check(s(0)?, offset, 1, i)?;
                self.write_word(at, s(1)?);
                None
            }
            Op::LoadScratchVec { offset } => {
                let base = self.scratch_check(s(0)?, offset, m, i)?;
                let mut out = [0u32; LANES];
                for j in lanes(m) {
                    out[j] = self.read_word(base + 4 * j as i64);
                }
                Some(Val::V(out))
            }
            Op::StoreScratchVec { offset } => {
                let base = self.scratch_check(s(0)?, offset, m, i)?;
                let x = v(1)?;
                for j in lanes(m) {
                    self.write_word(base + 4 * j as i64, x[j]);
                }
                None
            }
            op => {
                // The lane-wise operations, on scalars or lane by lane.
                let a = args.first().copied().unwrap_or(Val::S(0));
                let b = args.get(1).copied().unwrap_or(Val::S(0));
                let c = args.get(2).copied().unwrap_or(Val::S(0));
                match a {
                    Val::S(x) => Some(Val::S(
                        lanewise(op, x, lane(&b, 0), lane(&c, 0)).ok_or_else(bad)?,
                    )),
                    Val::V(_) => {
                        let mut out = [0u32; LANES];
                        for (j, o) in out.iter_mut().enumerate() {
                            *o = lanewise(op, lane(&a, j), lane(&b, j), lane(&c, j))
                                .ok_or_else(bad)?;
                        }
                        if matches!(op, Op::Icmp(_) | Op::Fcmp(_)) {
                            Some(Val::M(
                                out.iter()
                                    .enumerate()
                                    .fold(0u64, |acc, (j, &x)| acc | (u64::from(x & 1) << j)),
                            ))
                        } else {
                            Some(Val::V(out))
                        }
                    }
                    _ => return Err(bad()),
                }
            }
        };
        let (Some(r), Some(mut x)) = (d.result, result) else {
            if d.result.is_some() {
                return malformed(format!("instruction {} gives no value", i.0));
            }
            return Ok(());
        };
        // The lanes outside the guard: the passthru's, or poison.
        if d.guard.is_some()
            && m != u64::MAX
            && !matches!(d.op, Op::RedAdd | Op::RedMax | Op::RedMin)
        {
            let pt = match d.passthru {
                Some(p) => Some(self.get(p)?),
                None => None,
            };
            match (&mut x, pt) {
                (Val::V(out), pt) => {
                    for j in (0..LANES).filter(|&j| m >> j & 1 == 0) {
                        out[j] = match pt {
                            Some(Val::V(p)) => p[j],
                            None => POISON_LANE,
                            _ => return Err(bad()),
                        };
                    }
                }
                (Val::M(bits), pt) => {
                    let other = match pt {
                        Some(Val::M(p)) => p,
                        None => POISON_MASK,
                        _ => return Err(bad()),
                    };
                    *bits = (*bits & m) | (other & !m);
                }
                _ => {}
            }
        }
        self.set(r, x)
    }

    /// The ISA's tensor checks; gives the byte address of lane 0's first element and
    /// the distance between elements along dimension 0.
    fn tensor_access(
        &self,
        slot: u8,
        elem: usize,
        per_lane: usize,
        c: [u32; 4],
        m: u64,
        i: Inst,
    ) -> Result<(u128, u128), InterpError> {
        tensor_access(self.launch, slot, elem as u32, per_lane as u64, c, m)
            .or_else(|kind| self.fault(kind, i))
    }

    /// The ISA's scratchpad checks for the words of lanes `m` at `sa + imm + 4j`;
    /// gives the address of lane 0.
    fn scratch_check(&self, sa: u32, imm: i32, m: u64, i: Inst) -> Result<i64, InterpError> {
        let base = i64::from(sa) + i64::from(imm);
        let len = self.scratch.len() as i64;
        if m == 0 {
            return Ok(base);
        }
        let first = base + 4 * i64::from(m.trailing_zeros());
        if first & 3 != 0 {
            return self.fault(FaultKind::Misaligned { addr: first }, i);
        }
        for j in lanes(m) {
            let addr = base + 4 * j as i64;
            if addr < 0 || addr + 4 > len {
                return self.fault(FaultKind::ScratchRange { addr }, i);
            }
        }
        Ok(base)
    }

    fn read_word(&self, at: i64) -> u32 {
        let at = at as usize;
        let mut w = [0u8; 4];
        if let Some(b) = self.scratch.get(at..at + 4) {
            w.copy_from_slice(b);
        }
        u32::from_le_bytes(w)
    }

    fn write_word(&mut self, at: i64, x: u32) {
        let at = at as usize;
        if let Some(b) = self.scratch.get_mut(at..at + 4) {
            b.copy_from_slice(&x.to_le_bytes());
        }
    }
}

/// A tensor of a [`run_tensors`] launch: its element size, dimensions and contents,
/// laid out densely (dimension 0 fastest).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct HostTensor {
    /// Bytes per element: 4 or 2.
    pub elem_size: u32,
    /// Elements along each dimension (each ≥ 1).
    pub dims: [u32; 4],
    /// The elements, little-endian: `elem_size · dims[0]·dims[1]·dims[2]·dims[3]` bytes.
    pub data: Vec<u8>,
}

impl HostTensor {
    /// A tensor of f32 `values` shaped `dims`.
    pub fn f32(dims: [u32; 4], values: &[f32]) -> HostTensor {
        HostTensor {
            elem_size: 4,
            dims,
            data: values.iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    }

    /// A tensor of 32-bit integer `values` shaped `dims`.
    pub fn u32(dims: [u32; 4], values: &[u32]) -> HostTensor {
        HostTensor {
            elem_size: 4,
            dims,
            data: values.iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    }

    /// The contents as 32-bit words.
    pub fn words(&self) -> Vec<u32> {
        self.data
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }
}

/// Runs `f` over the index space `dims` on `cores` cores with `tensors` (dense, each
/// in its own part of a flat memory) and `scalars`; gives the tensors' contents after
/// the run, or the error that stopped it.
pub fn run_tensors(
    f: &Function,
    dims: [u32; 4],
    cores: u32,
    tensors: &[HostTensor],
    scalars: &[u32],
    limit: u64,
) -> Result<(Vec<HostTensor>, Stats), InterpError> {
    with_host_tensors(dims, tensors, scalars, |launch, mem| {
        run(f, launch, cores, mem, limit)
    })
}

/// Lays `tensors` out densely in a flat device memory (with a gap after each, so that
/// an access past one is not silently another's), runs `body` on the launch over them,
/// and gives back the tensors as the run left them. Both interpreters use it, so that
/// their fault addresses agree.
pub fn with_host_tensors<S, E>(
    dims: [u32; 4],
    tensors: &[HostTensor],
    scalars: &[u32],
    body: impl FnOnce(&Launch<'_>, &mut sagrada_isa::exec::FlatMemory) -> Result<S, E>,
) -> Result<(Vec<HostTensor>, S), E> {
    const BASE: u64 = 0x1_0000;
    const GAP: usize = 256;
    let mut descs = Vec::new();
    let mut at = 0usize;
    for t in tensors {
        let mut strides = [1u32; 4];
        for d in 1..4 {
            strides[d] = strides[d - 1].wrapping_mul(t.dims[d - 1]);
        }
        descs.push(sagrada_isa::exec::TensorDesc {
            base: BASE + at as u64,
            elem_size: t.elem_size,
            dims: t.dims,
            strides,
        });
        at += t.data.len() + GAP;
    }
    let mut mem = sagrada_isa::exec::FlatMemory::new(BASE, at);
    let mut off = 0usize;
    for t in tensors {
        if let Some(dst) = mem.bytes.get_mut(off..off + t.data.len()) {
            dst.copy_from_slice(&t.data);
        }
        off += t.data.len() + GAP;
    }
    let launch = Launch {
        dims,
        tensors: &descs,
        scalars,
    };
    let stats = body(&launch, &mut mem)?;
    let mut out = Vec::new();
    let mut off = 0usize;
    for t in tensors {
        let mut t = t.clone();
        let n = t.data.len();
        if let Some(src) = mem.bytes.get(off..off + n) {
            t.data.copy_from_slice(src);
        }
        off += n + GAP;
        out.push(t);
    }
    Ok((out, stats))
}
