//! The interpreter loop: one `match` over [`Op`], so an instruction added to the table
//! without semantics does not compile.
//!
//! Speed comes from keeping the loop lean: scalar instructions are a few host
//! instructions each, the instruction count is a local, the memory's
//! [`GlobalMemory::should_stop`] is asked only on backward branches once every
//! [`POLL`] instructions, and vector instructions call out-of-line lane loops over
//! `[u32; 64]` that LLVM vectorises.

use super::float;
use super::mem;
use super::{Core, Fault, FaultKind, GlobalMemory, Launch, Program, Stop};
use crate::inst::Op;
use crate::operand::{PReg, VReg};
use crate::{DIMS, LANES, NUM_VREGS};

/// Instructions between two calls of [`GlobalMemory::should_stop`] (at most, counted at
/// backward branches).
pub(super) const POLL: u64 = 1 << 16;

type Vregs = [[u32; LANES]; NUM_VREGS];
type Lanes = [u32; LANES];

#[inline(always)]
fn vi(r: VReg) -> usize {
    usize::from(r.0 & 31)
}

#[inline(always)]
fn pi(r: PReg) -> usize {
    usize::from(r.0 & 7)
}

/// The number of set lanes (`popcnt` is not in the baseline x86-64 the workspace builds
/// for, and the all-lanes case is the common one).
#[inline(always)]
fn count(m: u64) -> u64 {
    if m == u64::MAX {
        LANES as u64
    } else {
        u64::from(m.count_ones())
    }
}

/// Writes the lanes of `r` selected by `m` into `d`.
#[inline(always)]
fn put(d: &mut Lanes, r: &Lanes, m: u64) {
    if m == u64::MAX {
        *d = *r;
    } else {
        for i in 0..LANES {
            if m >> i & 1 != 0 {
                d[i] = r[i];
            }
        }
    }
}

/// Lanes a lane-wise operation computes at a time: few enough to stay in host vector
/// registers, so no 256-byte temporary is copied (which costs more than the arithmetic).
const CHUNK: usize = 16;

/// Writes `r`, lanes `k..k + CHUNK` of a result, into `d` under `m`.
#[inline(always)]
fn put_chunk(d: &mut Lanes, k: usize, r: &[u32; CHUNK], m: u64) {
    let bits = (m >> k) as u16;
    let d = &mut d[k..k + CHUNK];
    if bits == u16::MAX {
        d.copy_from_slice(r);
    } else {
        for (j, (d, &r)) in d.iter_mut().zip(r).enumerate() {
            if bits >> j & 1 != 0 {
                *d = r;
            }
        }
    }
}

/// `d = f(a)` per lane, under `m`. Lane-wise: each chunk of lanes is read before the
/// same lanes of `d` are written, so `d` may be `a`.
#[inline(never)]
fn v1(v: &mut Vregs, m: u64, d: VReg, a: VReg, f: impl Fn(u32) -> u32) {
    for k in (0..LANES).step_by(CHUNK) {
        let x = &v[vi(a)];
        let r: [u32; CHUNK] = std::array::from_fn(|j| f(x[k + j]));
        put_chunk(&mut v[vi(d)], k, &r, m);
    }
}

/// `d = f(a, b)` per lane, under `m` (lane-wise, as [`v1`]).
#[inline(never)]
fn v2(v: &mut Vregs, m: u64, d: VReg, a: VReg, b: VReg, f: impl Fn(u32, u32) -> u32) {
    for k in (0..LANES).step_by(CHUNK) {
        let (x, y) = (&v[vi(a)], &v[vi(b)]);
        let r: [u32; CHUNK] = std::array::from_fn(|j| f(x[k + j], y[k + j]));
        put_chunk(&mut v[vi(d)], k, &r, m);
    }
}

/// `d = f(a, b, c)` per lane, under `m` (lane-wise, as [`v1`]).
#[inline(never)]
fn v3(v: &mut Vregs, m: u64, d: VReg, [a, b, c]: [VReg; 3], f: impl Fn(u32, u32, u32) -> u32) {
    for k in (0..LANES).step_by(CHUNK) {
        let (x, y, z) = (&v[vi(a)], &v[vi(b)], &v[vi(c)]);
        let r: [u32; CHUNK] = std::array::from_fn(|j| f(x[k + j], y[k + j], z[k + j]));
        put_chunk(&mut v[vi(d)], k, &r, m);
    }
}

/// `d = f(lane index)` per lane, under `m`.
#[inline(never)]
fn v0(v: &mut Vregs, m: u64, d: VReg, f: impl Fn(usize) -> u32) {
    let r: Lanes = std::array::from_fn(f);
    put(&mut v[vi(d)], &r, m);
}

/// Lanes where `f(a, b)` holds, as a mask.
#[inline(never)]
fn cmp(v: &Vregs, a: VReg, b: VReg, f: impl Fn(u32, u32) -> bool) -> u64 {
    let (x, y) = (&v[vi(a)], &v[vi(b)]);
    let mut bits = 0u64;
    for i in 0..LANES {
        bits |= u64::from(f(x[i], y[i])) << i;
    }
    bits
}

/// The f32 view of a two-operand lane function.
#[inline(always)]
fn f1(f: impl Fn(f32) -> f32) -> impl Fn(u32) -> u32 {
    move |a| f(f32::from_bits(a)).to_bits()
}

#[inline(always)]
fn f2(f: impl Fn(f32, f32) -> f32) -> impl Fn(u32, u32) -> u32 {
    move |a, b| f(f32::from_bits(a), f32::from_bits(b)).to_bits()
}

#[inline(always)]
fn f3(f: impl Fn(f32, f32, f32) -> f32) -> impl Fn(u32, u32, u32) -> u32 {
    move |a, b, c| f(f32::from_bits(a), f32::from_bits(b), f32::from_bits(c)).to_bits()
}

#[inline(always)]
fn fcmp(f: impl Fn(f32, f32) -> bool) -> impl Fn(u32, u32) -> bool {
    move |a, b| f(f32::from_bits(a), f32::from_bits(b))
}

/// An integer reduction with `identity` for the inactive lanes.
#[inline(never)]
fn red_i32(x: &Lanes, m: u64, identity: u32, f: impl Fn(u32, u32) -> u32) -> u32 {
    let mut acc = identity;
    for (i, &xi) in x.iter().enumerate() {
        acc = f(acc, if m >> i & 1 != 0 { xi } else { identity });
    }
    acc
}

/// The packed 16-bit vector of `a` (elements 0..=63) and `b` (64..=127).
#[inline(never)]
fn pack(v: &mut Vregs, m: u64, d: VReg, a: VReg, b: VReg, f: impl Fn(f32) -> u16) {
    let (x, y) = (&v[vi(a)], &v[vi(b)]);
    let r: Lanes = std::array::from_fn(|i| {
        let src = if i < LANES / 2 { x } else { y };
        let j = 2 * (i % (LANES / 2));
        u32::from(f(f32::from_bits(src[j]))) | u32::from(f(f32::from_bits(src[j + 1]))) << 16
    });
    put(&mut v[vi(d)], &r, m);
}

/// Elements `first..first + 64` of the packed `a`, widened.
#[inline(never)]
fn unpack(v: &mut Vregs, m: u64, d: VReg, a: VReg, first: usize, f: impl Fn(u16) -> f32) {
    let x = &v[vi(a)];
    let r: Lanes = std::array::from_fn(|i| {
        let e = first + i;
        f((x[e / 2] >> (16 * (e % 2))) as u16).to_bits()
    });
    put(&mut v[vi(d)], &r, m);
}

/// Runs one invocation; the registers have been reset. Returns with the instructions
/// retired counted in `retired`.
pub(super) fn run(
    core: &mut Core,
    program: &Program,
    launch: &Launch<'_>,
    point: [u32; DIMS],
    memory: &mut dyn GlobalMemory,
    retired: &mut u64,
) -> Result<(), Stop> {
    let Core {
        id,
        s,
        v,
        p,
        scratch,
        counters,
    } = core;
    let id = *id;
    let scratch: &mut [u8] = scratch;
    let scratch_len = scratch.len();
    let insts = &program.insts[..];
    let len = insts.len();
    let mut pc = program.entry as usize;
    let mut n = 0u64;
    let mut next_poll = POLL;

    if pc >= len {
        return Err(Stop::Fault(Fault {
            pc: pc as u32,
            kind: FaultKind::PcRange { target: pc as i64 },
        }));
    }

    macro_rules! fault {
        ($kind:expr) => {
            break Err(Stop::Fault(Fault {
                pc: pc as u32,
                kind: $kind,
            }))
        };
    }
    macro_rules! tri {
        ($e:expr) => {
            match $e {
                Ok(x) => x,
                Err(kind) => fault!(kind),
            }
        };
    }
    macro_rules! sr {
        ($r:expr) => {
            s[usize::from($r.0 & 31)]
        };
    }
    macro_rules! sw {
        ($r:expr, $x:expr) => {{
            let x: u32 = $x;
            s[usize::from($r.0 & 31)] = x;
            s[0] = 0;
        }};
    }
    macro_rules! pw {
        ($r:expr, $x:expr) => {{
            let x: u64 = $x;
            p[pi($r)] = x;
            p[0] = u64::MAX;
        }};
    }
    macro_rules! coords {
        ($c:expr) => {{
            let c = usize::from($c.0 & 31);
            [s[c], s[(c + 1) & 31], s[(c + 2) & 31], s[(c + 3) & 31]]
        }};
    }

    let result = loop {
        let inst = match insts.get(pc) {
            Some(Ok(inst)) => inst,
            Some(Err(e)) => fault!(FaultKind::IllegalInstruction(*e)),
            None => {
                // Only a fall-through gets here (branch targets are checked, and so
                // was the entry): the fault is the last instruction's, which retired.
                break Err(Stop::Fault(Fault {
                    pc: (pc - 1) as u32,
                    kind: FaultKind::PcRange { target: pc as i64 },
                }));
            }
        };
        let mut next = pc + 1;
        // The guard's lanes, read only by the instructions that take one.
        macro_rules! mask {
            () => {{
                let g = inst.guard;
                let m = p[pi(g.p)];
                if g.negate { !m } else { m }
            }};
        }
        macro_rules! branch {
            ($cond:expr, $off:expr) => {
                if $cond {
                    let off = $off.0;
                    let target = pc as i64 + i64::from(off);
                    if target as u64 >= len as u64 {
                        fault!(FaultKind::PcRange { target });
                    }
                    if off <= 0 && n >= next_poll {
                        if memory.should_stop() {
                            break Err(Stop::Aborted);
                        }
                        next_poll = n + POLL;
                    }
                    next = target as usize;
                }
            };
        }
        macro_rules! lanes {
            ($m:expr) => {
                counters.lane_ops += count($m)
            };
        }
        macro_rules! fsr {
            ($r:expr) => {
                f32::from_bits(sr!($r))
            };
        }

        match inst.op {
            // ---- control ----
            Op::Nop {} => {}
            Op::Halt {} => {
                n += 1;
                break Ok(());
            }
            Op::J { target } => branch!(true, target),
            Op::Beq { sa, sb, target } => branch!(sr!(sa) == sr!(sb), target),
            Op::Bne { sa, sb, target } => branch!(sr!(sa) != sr!(sb), target),
            Op::Blt { sa, sb, target } => branch!((sr!(sa) as i32) < sr!(sb) as i32, target),
            Op::Bge { sa, sb, target } => branch!(sr!(sa) as i32 >= sr!(sb) as i32, target),
            Op::Bltu { sa, sb, target } => branch!(sr!(sa) < sr!(sb), target),
            Op::Bgeu { sa, sb, target } => branch!(sr!(sa) >= sr!(sb), target),

            // ---- scalar integer ----
            Op::Li { sd, imm } => sw!(sd, imm.0),
            Op::Mov { sd, sa } => sw!(sd, sr!(sa)),
            Op::Add { sd, sa, sb } => sw!(sd, sr!(sa).wrapping_add(sr!(sb))),
            Op::Sub { sd, sa, sb } => sw!(sd, sr!(sa).wrapping_sub(sr!(sb))),
            Op::Mul { sd, sa, sb } => sw!(sd, sr!(sa).wrapping_mul(sr!(sb))),
            Op::Div { sd, sa, sb } => {
                let b = sr!(sb) as i32;
                if b == 0 {
                    fault!(FaultKind::DivideByZero);
                }
                sw!(sd, (sr!(sa) as i32).wrapping_div(b) as u32)
            }
            Op::Divu { sd, sa, sb } => {
                let b = sr!(sb);
                if b == 0 {
                    fault!(FaultKind::DivideByZero);
                }
                sw!(sd, sr!(sa) / b)
            }
            Op::Rem { sd, sa, sb } => {
                let b = sr!(sb) as i32;
                if b == 0 {
                    fault!(FaultKind::DivideByZero);
                }
                sw!(sd, (sr!(sa) as i32).wrapping_rem(b) as u32)
            }
            Op::Remu { sd, sa, sb } => {
                let b = sr!(sb);
                if b == 0 {
                    fault!(FaultKind::DivideByZero);
                }
                sw!(sd, sr!(sa) % b)
            }
            Op::And { sd, sa, sb } => sw!(sd, sr!(sa) & sr!(sb)),
            Op::Or { sd, sa, sb } => sw!(sd, sr!(sa) | sr!(sb)),
            Op::Xor { sd, sa, sb } => sw!(sd, sr!(sa) ^ sr!(sb)),
            Op::Shl { sd, sa, sb } => sw!(sd, sr!(sa) << (sr!(sb) & 31)),
            Op::Shr { sd, sa, sb } => sw!(sd, sr!(sa) >> (sr!(sb) & 31)),
            Op::Sra { sd, sa, sb } => sw!(sd, ((sr!(sa) as i32) >> (sr!(sb) & 31)) as u32),
            Op::Slt { sd, sa, sb } => sw!(sd, u32::from((sr!(sa) as i32) < sr!(sb) as i32)),
            Op::Sltu { sd, sa, sb } => sw!(sd, u32::from(sr!(sa) < sr!(sb))),
            Op::Seq { sd, sa, sb } => sw!(sd, u32::from(sr!(sa) == sr!(sb))),
            Op::Min { sd, sa, sb } => sw!(sd, (sr!(sa) as i32).min(sr!(sb) as i32) as u32),
            Op::Max { sd, sa, sb } => sw!(sd, (sr!(sa) as i32).max(sr!(sb) as i32) as u32),
            Op::Addi { sd, sa, imm } => sw!(sd, sr!(sa).wrapping_add(imm.0 as u32)),
            Op::Muli { sd, sa, imm } => sw!(sd, sr!(sa).wrapping_mul(imm.0 as u32)),
            Op::Andi { sd, sa, imm } => sw!(sd, sr!(sa) & imm.0 as u32),
            Op::Ori { sd, sa, imm } => sw!(sd, sr!(sa) | imm.0 as u32),
            Op::Xori { sd, sa, imm } => sw!(sd, sr!(sa) ^ imm.0 as u32),
            Op::Shli { sd, sa, imm } => sw!(sd, sr!(sa) << (imm.0 & 31)),
            Op::Shri { sd, sa, imm } => sw!(sd, sr!(sa) >> (imm.0 & 31)),
            Op::Srai { sd, sa, imm } => sw!(sd, ((sr!(sa) as i32) >> (imm.0 & 31)) as u32),
            Op::Slti { sd, sa, imm } => sw!(sd, u32::from((sr!(sa) as i32) < imm.0)),

            // ---- the launch ----
            Op::Idx { sd, dim } => sw!(sd, point[usize::from(dim.0 & 3)]),
            Op::Idxn { sd, dim } => sw!(sd, launch.dims[usize::from(dim.0 & 3)]),
            Op::Coreid { sd } => sw!(sd, id),
            Op::Ldarg { sd, imm } => {
                let x = usize::try_from(imm.0)
                    .ok()
                    .and_then(|i| launch.scalars.get(i).copied());
                match x {
                    Some(x) => sw!(sd, x),
                    None => fault!(FaultKind::ArgRange { index: imm.0 }),
                }
            }
            Op::Tdim { sd, t, dim } => match launch.tensors.get(usize::from(t.0)) {
                Some(desc) => sw!(sd, desc.dims[usize::from(dim.0 & 3)]),
                None => fault!(FaultKind::TensorSlot { slot: t.0 }),
            },

            // ---- scalar memory ----
            Op::Lds { sd, sa, imm } => {
                let at = tri!(mem::scratch_word(scratch_len, sr!(sa), imm.0));
                sw!(sd, mem::read_word(scratch, at));
                counters.scratch_bytes += 4;
            }
            Op::Sts { sv, sa, imm } => {
                let at = tri!(mem::scratch_word(scratch_len, sr!(sa), imm.0));
                mem::write_word(scratch, at, sr!(sv));
                counters.scratch_bytes += 4;
            }
            Op::LdtsB32 { sd, t, c } => {
                let a = tri!(mem::tensor_access(launch.tensors, t.0, 4, 1, coords!(c), 1));
                sw!(sd, tri!(mem::load_element(memory, &a)));
                counters.global_bytes += 4;
            }
            Op::SttsB32 { sv, t, c } => {
                let a = tri!(mem::tensor_access(launch.tensors, t.0, 4, 1, coords!(c), 1));
                tri!(mem::store_element(memory, &a, sr!(sv)));
                counters.global_bytes += 4;
            }

            // ---- scalar f32 ----
            Op::Fadd { sd, sa, sb } => sw!(sd, (fsr!(sa) + fsr!(sb)).to_bits()),
            Op::Fsub { sd, sa, sb } => sw!(sd, (fsr!(sa) - fsr!(sb)).to_bits()),
            Op::Fmul { sd, sa, sb } => sw!(sd, (fsr!(sa) * fsr!(sb)).to_bits()),
            Op::Fdiv { sd, sa, sb } => sw!(sd, (fsr!(sa) / fsr!(sb)).to_bits()),
            Op::Fmin { sd, sa, sb } => sw!(sd, float::min(fsr!(sa), fsr!(sb)).to_bits()),
            Op::Fmax { sd, sa, sb } => sw!(sd, float::max(fsr!(sa), fsr!(sb)).to_bits()),
            Op::Mad { sd, sa, sb, sc } => {
                sw!(sd, (fsr!(sa) * fsr!(sb) + fsr!(sc)).to_bits())
            }
            Op::Fsqrt { sd, sa } => sw!(sd, fsr!(sa).sqrt().to_bits()),
            Op::Fexp { sd, sa } => sw!(sd, float::exp(fsr!(sa)).to_bits()),
            Op::Frsqrt { sd, sa } => sw!(sd, (1.0 / fsr!(sa).sqrt()).to_bits()),
            Op::Frcp { sd, sa } => sw!(sd, (1.0 / fsr!(sa)).to_bits()),
            Op::Flt { sd, sa, sb } => sw!(sd, u32::from(fsr!(sa) < fsr!(sb))),
            Op::Fle { sd, sa, sb } => sw!(sd, u32::from(fsr!(sa) <= fsr!(sb))),
            Op::Feq { sd, sa, sb } => sw!(sd, u32::from(fsr!(sa) == fsr!(sb))),
            Op::CvtF32I32 { sd, sa } => sw!(sd, (sr!(sa) as i32 as f32).to_bits()),
            Op::CvtI32F32 { sd, sa } => sw!(sd, fsr!(sa) as i32 as u32),

            // ---- vector f32 ----
            Op::VaddF32 { vd, va, vb } => {
                let m = mask!();
                v2(v, m, vd, va, vb, f2(|a, b| a + b));
                lanes!(m);
            }
            Op::VsubF32 { vd, va, vb } => {
                let m = mask!();
                v2(v, m, vd, va, vb, f2(|a, b| a - b));
                lanes!(m);
            }
            Op::VmulF32 { vd, va, vb } => {
                let m = mask!();
                v2(v, m, vd, va, vb, f2(|a, b| a * b));
                lanes!(m);
            }
            Op::VdivF32 { vd, va, vb } => {
                let m = mask!();
                v2(v, m, vd, va, vb, f2(|a, b| a / b));
                lanes!(m);
            }
            Op::VminF32 { vd, va, vb } => {
                let m = mask!();
                v2(v, m, vd, va, vb, f2(float::min));
                lanes!(m);
            }
            Op::VmaxF32 { vd, va, vb } => {
                let m = mask!();
                v2(v, m, vd, va, vb, f2(float::max));
                lanes!(m);
            }
            Op::VmadF32 { vd, va, vb, vc } => {
                let m = mask!();
                v3(v, m, vd, [va, vb, vc], f3(|a, b, c| a * b + c));
                lanes!(m);
            }
            Op::VabsF32 { vd, va } => {
                let m = mask!();
                v1(v, m, vd, va, |a| a & 0x7fff_ffff);
                lanes!(m);
            }
            Op::VnegF32 { vd, va } => {
                let m = mask!();
                v1(v, m, vd, va, |a| a ^ 0x8000_0000);
                lanes!(m);
            }
            Op::VsqrtF32 { vd, va } => {
                let m = mask!();
                v1(v, m, vd, va, f1(f32::sqrt));
                lanes!(m);
            }
            Op::VexpF32 { vd, va } => {
                let m = mask!();
                v1(v, m, vd, va, f1(float::exp));
                lanes!(m);
            }
            Op::VrsqrtF32 { vd, va } => {
                let m = mask!();
                v1(v, m, vd, va, f1(|a| 1.0 / a.sqrt()));
                lanes!(m);
            }
            Op::VrcpF32 { vd, va } => {
                let m = mask!();
                v1(v, m, vd, va, f1(|a| 1.0 / a));
                lanes!(m);
            }
            Op::VaddsF32 { vd, va, sb } => {
                let m = mask!();
                let b = fsr!(sb);
                v1(v, m, vd, va, f1(move |a| a + b));
                lanes!(m);
            }
            Op::VmulsF32 { vd, va, sb } => {
                let m = mask!();
                let b = fsr!(sb);
                v1(v, m, vd, va, f1(move |a| a * b));
                lanes!(m);
            }
            Op::VmadsF32 { vd, va, sb } => {
                let m = mask!();
                let b = fsr!(sb);
                v2(v, m, vd, va, vd, f2(move |a, acc| a * b + acc));
                lanes!(m);
            }
            Op::VmadlF32 { vd, va, vb, lane } => {
                let m = mask!();
                let b = f32::from_bits(v[vi(vb)][usize::from(lane.0 & 63)]);
                v2(v, m, vd, va, vd, f2(move |a, acc| a * b + acc));
                lanes!(m);
            }

            // ---- f32 reductions and compares ----
            Op::VredsumF32 { sd, va } => {
                let m = mask!();
                sw!(sd, super::float::redsum_f32(&v[vi(va)], m));
                lanes!(m);
            }
            Op::VredmaxF32 { sd, va } => {
                let m = mask!();
                sw!(sd, float::redext_f32(&v[vi(va)], m, true));
                lanes!(m);
            }
            Op::VredminF32 { sd, va } => {
                let m = mask!();
                sw!(sd, float::redext_f32(&v[vi(va)], m, false));
                lanes!(m);
            }
            Op::VcmpEqF32 { pd, va, vb } => {
                let m = mask!();
                let r = cmp(v, va, vb, fcmp(|a, b| a == b));
                pw!(pd, (p[pi(pd)] & !m) | (r & m));
                lanes!(m);
            }
            Op::VcmpNeF32 { pd, va, vb } => {
                let m = mask!();
                let r = cmp(v, va, vb, fcmp(|a, b| a != b));
                pw!(pd, (p[pi(pd)] & !m) | (r & m));
                lanes!(m);
            }
            Op::VcmpLtF32 { pd, va, vb } => {
                let m = mask!();
                let r = cmp(v, va, vb, fcmp(|a, b| a < b));
                pw!(pd, (p[pi(pd)] & !m) | (r & m));
                lanes!(m);
            }
            Op::VcmpLeF32 { pd, va, vb } => {
                let m = mask!();
                let r = cmp(v, va, vb, fcmp(|a, b| a <= b));
                pw!(pd, (p[pi(pd)] & !m) | (r & m));
                lanes!(m);
            }

            // ---- conversions ----
            Op::VcvtF32I32 { vd, va } => {
                let m = mask!();
                v1(v, m, vd, va, |a| (a as i32 as f32).to_bits());
                lanes!(m);
            }
            Op::VcvtI32F32 { vd, va } => {
                let m = mask!();
                v1(v, m, vd, va, |a| f32::from_bits(a) as i32 as u32);
                lanes!(m);
            }
            Op::VcvtF32U32 { vd, va } => {
                let m = mask!();
                v1(v, m, vd, va, |a| (a as f32).to_bits());
                lanes!(m);
            }
            Op::VcvtU32F32 { vd, va } => {
                let m = mask!();
                v1(v, m, vd, va, |a| f32::from_bits(a) as u32);
                lanes!(m);
            }
            Op::VunpkLoBf16 { vd, va } => {
                let m = mask!();
                unpack(v, m, vd, va, 0, float::bf16_to_f32);
                lanes!(m);
            }
            Op::VunpkHiBf16 { vd, va } => {
                let m = mask!();
                unpack(v, m, vd, va, LANES, float::bf16_to_f32);
                lanes!(m);
            }
            Op::VpackBf16 { vd, va, vb } => {
                let m = mask!();
                pack(v, m, vd, va, vb, float::f32_to_bf16);
                lanes!(m);
            }
            Op::VunpkLoF16 { vd, va } => {
                let m = mask!();
                unpack(v, m, vd, va, 0, float::f16_to_f32);
                lanes!(m);
            }
            Op::VunpkHiF16 { vd, va } => {
                let m = mask!();
                unpack(v, m, vd, va, LANES, float::f16_to_f32);
                lanes!(m);
            }
            Op::VpackF16 { vd, va, vb } => {
                let m = mask!();
                pack(v, m, vd, va, vb, float::f32_to_f16);
                lanes!(m);
            }

            // ---- vector integer ----
            Op::VaddI32 { vd, va, vb } => {
                let m = mask!();
                v2(v, m, vd, va, vb, u32::wrapping_add);
                lanes!(m);
            }
            Op::VsubI32 { vd, va, vb } => {
                let m = mask!();
                v2(v, m, vd, va, vb, u32::wrapping_sub);
                lanes!(m);
            }
            Op::VmulI32 { vd, va, vb } => {
                let m = mask!();
                v2(v, m, vd, va, vb, u32::wrapping_mul);
                lanes!(m);
            }
            Op::VminI32 { vd, va, vb } => {
                let m = mask!();
                v2(v, m, vd, va, vb, |a, b| (a as i32).min(b as i32) as u32);
                lanes!(m);
            }
            Op::VmaxI32 { vd, va, vb } => {
                let m = mask!();
                v2(v, m, vd, va, vb, |a, b| (a as i32).max(b as i32) as u32);
                lanes!(m);
            }
            Op::VminU32 { vd, va, vb } => {
                let m = mask!();
                v2(v, m, vd, va, vb, u32::min);
                lanes!(m);
            }
            Op::VmaxU32 { vd, va, vb } => {
                let m = mask!();
                v2(v, m, vd, va, vb, u32::max);
                lanes!(m);
            }
            Op::Vand { vd, va, vb } => {
                let m = mask!();
                v2(v, m, vd, va, vb, |a, b| a & b);
                lanes!(m);
            }
            Op::Vor { vd, va, vb } => {
                let m = mask!();
                v2(v, m, vd, va, vb, |a, b| a | b);
                lanes!(m);
            }
            Op::Vxor { vd, va, vb } => {
                let m = mask!();
                v2(v, m, vd, va, vb, |a, b| a ^ b);
                lanes!(m);
            }
            Op::Vshl { vd, va, vb } => {
                let m = mask!();
                v2(v, m, vd, va, vb, |a, b| a << (b & 31));
                lanes!(m);
            }
            Op::Vshr { vd, va, vb } => {
                let m = mask!();
                v2(v, m, vd, va, vb, |a, b| a >> (b & 31));
                lanes!(m);
            }
            Op::Vsra { vd, va, vb } => {
                let m = mask!();
                v2(v, m, vd, va, vb, |a, b| ((a as i32) >> (b & 31)) as u32);
                lanes!(m);
            }
            Op::VaddsI32 { vd, va, sb } => {
                let m = mask!();
                let b = sr!(sb);
                v1(v, m, vd, va, move |a| a.wrapping_add(b));
                lanes!(m);
            }
            Op::VredsumI32 { sd, va } => {
                let m = mask!();
                sw!(sd, red_i32(&v[vi(va)], m, 0, u32::wrapping_add));
                lanes!(m);
            }
            Op::VredmaxI32 { sd, va } => {
                let m = mask!();
                let r = red_i32(&v[vi(va)], m, i32::MIN as u32, |a, b| {
                    (a as i32).max(b as i32) as u32
                });
                sw!(sd, r);
                lanes!(m);
            }
            Op::VredminI32 { sd, va } => {
                let m = mask!();
                let r = red_i32(&v[vi(va)], m, i32::MAX as u32, |a, b| {
                    (a as i32).min(b as i32) as u32
                });
                sw!(sd, r);
                lanes!(m);
            }
            Op::VcmpEqI32 { pd, va, vb } => {
                let m = mask!();
                let r = cmp(v, va, vb, |a, b| a == b);
                pw!(pd, (p[pi(pd)] & !m) | (r & m));
                lanes!(m);
            }
            Op::VcmpLtI32 { pd, va, vb } => {
                let m = mask!();
                let r = cmp(v, va, vb, |a, b| (a as i32) < b as i32);
                pw!(pd, (p[pi(pd)] & !m) | (r & m));
                lanes!(m);
            }
            Op::VcmpLeI32 { pd, va, vb } => {
                let m = mask!();
                let r = cmp(v, va, vb, |a, b| a as i32 <= b as i32);
                pw!(pd, (p[pi(pd)] & !m) | (r & m));
                lanes!(m);
            }
            Op::VcmpLtU32 { pd, va, vb } => {
                let m = mask!();
                let r = cmp(v, va, vb, |a, b| a < b);
                pw!(pd, (p[pi(pd)] & !m) | (r & m));
                lanes!(m);
            }

            // ---- lane movement ----
            Op::Vmov { vd, va } => {
                let m = mask!();
                v1(v, m, vd, va, |a| a);
                lanes!(m);
            }
            Op::Vbcast { vd, sa } => {
                let m = mask!();
                let a = sr!(sa);
                v0(v, m, vd, move |_| a);
                lanes!(m);
            }
            Op::Vext { sd, va, sb } => {
                sw!(sd, v[vi(va)][(sr!(sb) & 63) as usize]);
                counters.lane_ops += 1;
            }
            Op::Vins { vd, sa, sb } => {
                v[vi(vd)][(sr!(sb) & 63) as usize] = sr!(sa);
                counters.lane_ops += 1;
            }
            Op::Vperm { vd, va, vb } => {
                let m = mask!();
                let x = v[vi(va)];
                v1(v, m, vd, vb, move |b| x[(b & 63) as usize]);
                lanes!(m);
            }
            Op::Vrot { vd, va, sb } => {
                let m = mask!();
                let x = v[vi(va)];
                let b = sr!(sb) as usize;
                v0(v, m, vd, move |i| x[(i + b) & 63]);
                lanes!(m);
            }
            Op::Viota { vd } => {
                let m = mask!();
                v0(v, m, vd, |i| i as u32);
                lanes!(m);
            }
            Op::Vsel { vd, pa, va, vb } => {
                let m = mask!();
                let sel = p[pi(pa)];
                let (x, y) = (v[vi(va)], v[vi(vb)]);
                v0(
                    v,
                    m,
                    vd,
                    move |i| if sel >> i & 1 != 0 { x[i] } else { y[i] },
                );
                lanes!(m);
            }

            // ---- predicates ----
            Op::Pfirst { pd, sa } => {
                let k = sr!(sa);
                pw!(pd, if k >= 64 { u64::MAX } else { (1u64 << k) - 1 })
            }
            Op::Pand { pd, pa, pb } => pw!(pd, p[pi(pa)] & p[pi(pb)]),
            Op::Por { pd, pa, pb } => pw!(pd, p[pi(pa)] | p[pi(pb)]),
            Op::Pxor { pd, pa, pb } => pw!(pd, p[pi(pa)] ^ p[pi(pb)]),
            Op::Pnot { pd, pa } => pw!(pd, !p[pi(pa)]),
            Op::Pcnt { sd, pa } => sw!(sd, p[pi(pa)].count_ones()),

            // ---- vector memory ----
            Op::Ldv { vd, sa, imm } => {
                let m = mask!();
                let base = tri!(mem::scratch_vector(scratch_len, sr!(sa), imm.0, m));
                mem::load_vector(scratch, base, m, &mut v[vi(vd)]);
                counters.scratch_bytes += 4 * count(m);
                lanes!(m);
            }
            Op::Stv { vv, sa, imm } => {
                let m = mask!();
                let base = tri!(mem::scratch_vector(scratch_len, sr!(sa), imm.0, m));
                mem::store_vector(scratch, base, m, &v[vi(vv)]);
                counters.scratch_bytes += 4 * count(m);
                lanes!(m);
            }
            Op::LdtB32 { vd, t, c } => {
                let m = mask!();
                let a = tri!(mem::tensor_access(launch.tensors, t.0, 4, 1, coords!(c), m));
                let mut r = v[vi(vd)];
                tri!(mem::load_tensor(memory, &a, m, &mut r));
                v[vi(vd)] = r;
                counters.global_bytes += 4 * count(m);
                lanes!(m);
            }
            Op::SttB32 { vv, t, c } => {
                let m = mask!();
                let a = tri!(mem::tensor_access(launch.tensors, t.0, 4, 1, coords!(c), m));
                tri!(mem::store_tensor(memory, &a, m, &v[vi(vv)]));
                counters.global_bytes += 4 * count(m);
                lanes!(m);
            }
            Op::LdtB16 { vd, t, c } => {
                let m = mask!();
                let a = tri!(mem::tensor_access(launch.tensors, t.0, 2, 2, coords!(c), m));
                let mut r = v[vi(vd)];
                tri!(mem::load_tensor(memory, &a, m, &mut r));
                v[vi(vd)] = r;
                counters.global_bytes += 4 * count(m);
                lanes!(m);
            }
            Op::SttB16 { vv, t, c } => {
                let m = mask!();
                let a = tri!(mem::tensor_access(launch.tensors, t.0, 2, 2, coords!(c), m));
                tri!(mem::store_tensor(memory, &a, m, &v[vi(vv)]));
                counters.global_bytes += 4 * count(m);
                lanes!(m);
            }
        }
        n += 1;
        pc = next;
    };
    *retired = n;
    result
}
