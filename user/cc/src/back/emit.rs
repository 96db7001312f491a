//! Emission: allocated machine IR to instruction words and the kernel binary.
//!
//! Each instruction's word is packed from its opcode, guard and operands in the order
//! `Opcode::operands()` gives (register operands in the 5-bit slots, the immediate in
//! bits 63:32, as the ISA manual's encoding table says) and checked by decoding it
//! with `sagrada_isa::Inst::decode`, so an operand out of range is an error here and
//! never an illegal word in a binary. Parallel copies become moves (`mov`, `vmov`, and
//! `pand pd, pa, p0` for masks), ordered so that no source is overwritten before it is
//! read; a cycle is broken by swapping two registers with three exclusive-ors, which
//! needs no free register. Moves of a register to itself vanish.
//!
//! Blocks are laid out greedily so that a block is followed by the target of its jump
//! or the "else" of its branch; a branch whose "then" comes next is inverted. At `-O1`
//! a block left empty (its copies coalesced away) that only jumps is skipped by
//! redirecting the branches to it, and a jump to the next instruction is not emitted.
//!
//! At `-O1`, the straight-line code at the entry also drops the writes of zero to
//! registers that still hold the zero every invocation starts with (the ISA zeroes
//! every register but `p0` before an invocation): the zero components of the first
//! `int4` coordinates cost nothing, as in hand-written code.
//!
//! Left out: moving code between blocks, and branch relaxation (every offset fits the
//! 32-bit immediate).

use sagrada_isa::binary::{ArgDecl, ArgKind, ElemKind, KernelBinary};
use sagrada_isa::{Field, Inst, Opcode, OperandKind};

use super::BackError;
use super::mir::{Arg, Class, MFunc, MInst, Term};
use super::regalloc::Assignment;
use crate::OptLevel;
use crate::ir::{Function, ParamKind};

/// The most instructions a launch runs: `sagrada_hw_accel_abi::MAX_CODE_INSTS`
/// (`hw/accel/abi/src/lib.rs`, `1 << 16`), copied because sagrada-cc does not depend on
/// that crate.
pub const MAX_CODE_INSTS: usize = 1 << 16;

fn err(message: String) -> BackError {
    BackError {
        message,
        span: None,
    }
}

/// One instruction with physical operands (raw field values), before encoding.
struct Raw {
    opc: Opcode,
    guard: u32,
    fields: Vec<u32>,
}

/// Packs and checks one instruction word.
fn encode(r: &Raw, name: &str) -> Result<u64, BackError> {
    let ops = r.opc.operands();
    if ops.len() != r.fields.len() {
        return Err(err(format!(
            "kernel {name}: {} got {} operands instead of {}",
            r.opc.mnemonic(),
            r.fields.len(),
            ops.len()
        )));
    }
    let mut word = u64::from(r.opc as u8) | (u64::from(r.guard) << 8);
    let mut slot = 0;
    for (info, &v) in ops.iter().zip(&r.fields) {
        match info.kind.field() {
            Field::Slot => {
                if slot >= 4 || v > 31 {
                    return Err(err(format!(
                        "kernel {name}: {} operand {} is out of range ({v})",
                        r.opc.mnemonic(),
                        info.name
                    )));
                }
                word |= u64::from(v) << (12 + 5 * slot);
                slot += 1;
            }
            Field::Imm => word |= u64::from(v) << 32,
        }
    }
    match Inst::decode(word) {
        Ok(_) => Ok(word),
        Err(e) => Err(err(format!(
            "kernel {name}: instruction selection made an illegal {}: {e}",
            r.opc.mnemonic()
        ))),
    }
}

struct Emitter<'a> {
    mf: &'a MFunc,
    phys: &'a [Option<u8>],
    name: &'a str,
}

/// A physical location a copy moves between.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Loc {
    S(u8),
    V(u8),
    P(u8),
}

impl Emitter<'_> {
    fn phys(&self, r: super::mir::VReg) -> Result<u32, BackError> {
        self.phys
            .get(r.0 as usize)
            .copied()
            .flatten()
            .map(u32::from)
            .ok_or_else(|| {
                err(format!(
                    "kernel {}: virtual register {} has no register",
                    self.name, r.0
                ))
            })
    }

    fn field(&self, a: Arg, kind: OperandKind) -> Result<u32, BackError> {
        let ok = match (a, kind) {
            (Arg::Zero, OperandKind::SReg | OperandKind::PReg) => Some(0),
            (Arg::Reg(r), OperandKind::SReg) if self.mf.class(r) == Class::S => Some(self.phys(r)?),
            (Arg::Reg(r), OperandKind::VReg) if self.mf.class(r) == Class::V => Some(self.phys(r)?),
            (Arg::Reg(r), OperandKind::PReg) if self.mf.class(r) == Class::P => Some(self.phys(r)?),
            (Arg::Reg(r), OperandKind::CReg) if self.mf.class(r) == Class::Q => Some(self.phys(r)?),
            (Arg::Part(r, k), OperandKind::SReg) if self.mf.class(r) == Class::Q && k < 4 => {
                Some(self.phys(r)? + u32::from(k))
            }
            (Arg::Slot(t), OperandKind::TReg) => Some(u32::from(t)),
            (
                Arg::Imm(x),
                OperandKind::Imm | OperandKind::Bits | OperandKind::Lane | OperandKind::Dim,
            ) => Some(x),
            _ => None,
        };
        ok.ok_or_else(|| {
            err(format!(
                "kernel {}: operand {a:?} does not fit a {kind:?} operand",
                self.name
            ))
        })
    }

    fn inst(&self, i: &MInst, out: &mut Vec<Raw>) -> Result<(), BackError> {
        match i {
            MInst::Def(_) => Ok(()),
            MInst::Op {
                opc, args, guard, ..
            } => {
                let mut fields = Vec::with_capacity(args.len());
                for (a, info) in args.iter().zip(opc.operands()) {
                    fields.push(self.field(*a, info.kind)?);
                }
                let guard = match guard {
                    None => 0,
                    Some(g) if opc.predicable() => {
                        self.field(g.pred, OperandKind::PReg)? | (u32::from(g.negate) << 3)
                    }
                    Some(_) => {
                        return Err(err(format!(
                            "kernel {}: {} takes no guard",
                            self.name,
                            opc.mnemonic()
                        )));
                    }
                };
                out.push(Raw {
                    opc: *opc,
                    guard,
                    fields,
                });
                Ok(())
            }
            MInst::Copy(moves) => self.copies(moves, out),
        }
    }

    fn loc(&self, a: Arg) -> Result<Vec<Loc>, BackError> {
        Ok(match a {
            Arg::Reg(r) => {
                let p = self.phys(r)? as u8;
                match self.mf.class(r) {
                    Class::S => vec![Loc::S(p)],
                    Class::V => vec![Loc::V(p)],
                    Class::P => vec![Loc::P(p)],
                    Class::Q => (0..4).map(|k| Loc::S(p + k)).collect(),
                }
            }
            Arg::Part(r, k) => vec![Loc::S(self.phys(r)? as u8 + k)],
            _ => {
                return Err(err(format!(
                    "kernel {}: {a:?} cannot be the destination of a copy",
                    self.name
                )));
            }
        })
    }

    /// Sequentialises a parallel copy.
    fn copies(&self, moves: &[(Arg, Arg)], out: &mut Vec<Raw>) -> Result<(), BackError> {
        let mut pending: Vec<(Loc, Loc)> = Vec::new();
        let mut consts: Vec<(Loc, u32)> = Vec::new();
        for &(d, s) in moves {
            let dl = self.loc(d)?;
            match s {
                Arg::Imm(_) | Arg::Zero if dl.len() == 1 => {
                    let x = if let Arg::Imm(x) = s { x } else { 0 };
                    consts.push((dl[0], x));
                }
                _ => {
                    let sl = self.loc(s)?;
                    if sl.len() != dl.len() {
                        return Err(err(format!(
                            "kernel {}: a copy between registers of different sizes",
                            self.name
                        )));
                    }
                    for (d, s) in dl.into_iter().zip(sl) {
                        pending.push((d, s));
                    }
                }
            }
        }
        pending.retain(|(d, s)| d != s);
        while !pending.is_empty() {
            let ready =
                (0..pending.len()).find(|&k| !pending.iter().any(|(_, s)| *s == pending[k].0));
            match ready {
                Some(k) => {
                    let (d, s) = pending.remove(k);
                    out.push(self.mov(d, s)?);
                }
                None => {
                    // Every destination is still to be read: a cycle. Swap one pair.
                    let (d, s) = pending.remove(0);
                    out.extend(self.swap(d, s)?);
                    for m in &mut pending {
                        if m.1 == d {
                            m.1 = s;
                        } else if m.1 == s {
                            m.1 = d;
                        }
                    }
                    pending.retain(|(d, s)| d != s);
                }
            }
        }
        for (d, x) in consts {
            out.push(match d {
                Loc::S(r) => Raw {
                    opc: Opcode::Li,
                    guard: 0,
                    fields: vec![u32::from(r), x],
                },
                Loc::P(r) => Raw {
                    opc: Opcode::Pand,
                    guard: 0,
                    fields: vec![u32::from(r), 0, 0],
                },
                Loc::V(_) => {
                    return Err(err(format!(
                        "kernel {}: a vector register cannot take a constant",
                        self.name
                    )));
                }
            });
        }
        Ok(())
    }

    fn mov(&self, d: Loc, s: Loc) -> Result<Raw, BackError> {
        let (opc, fields) = match (d, s) {
            (Loc::S(d), Loc::S(s)) => (Opcode::Mov, vec![d, s]),
            (Loc::V(d), Loc::V(s)) => (Opcode::Vmov, vec![d, s]),
            // There is no mask move: `pand pd, pa, p0`.
            (Loc::P(d), Loc::P(s)) => (Opcode::Pand, vec![d, s, 0]),
            _ => {
                return Err(err(format!(
                    "kernel {}: a copy between register files",
                    self.name
                )));
            }
        };
        Ok(Raw {
            opc,
            guard: 0,
            fields: fields.into_iter().map(u32::from).collect(),
        })
    }

    fn swap(&self, a: Loc, b: Loc) -> Result<Vec<Raw>, BackError> {
        let (opc, x, y) = match (a, b) {
            (Loc::S(x), Loc::S(y)) => (Opcode::Xor, x, y),
            (Loc::V(x), Loc::V(y)) => (Opcode::Vxor, x, y),
            (Loc::P(x), Loc::P(y)) => (Opcode::Pxor, x, y),
            _ => {
                return Err(err(format!(
                    "kernel {}: a copy between register files",
                    self.name
                )));
            }
        };
        let (x, y) = (u32::from(x), u32::from(y));
        let raw = |fields| Raw {
            opc,
            guard: 0,
            fields,
        };
        Ok(vec![
            raw(vec![x, x, y]),
            raw(vec![y, x, y]),
            raw(vec![x, x, y]),
        ])
    }
}

/// The inverse of a compare-and-branch.
/// A register: its file (`SReg`, `VReg` or `PReg`) and number.
type PhysReg = (OperandKind, u32);

/// Removes from `code`, straight-line code that starts an invocation, every write of
/// zero to a register that holds zero already. Every register but `p0` is zero when an
/// invocation starts; a register stops being known zero when something else is
/// written to it.
fn drop_zero_writes(code: &mut Vec<Raw>) {
    use std::collections::HashSet;
    let mut zero: HashSet<PhysReg> = (1..32)
        .map(|r| (OperandKind::SReg, r))
        .chain((0..32).map(|r| (OperandKind::VReg, r)))
        .chain((1..8).map(|r| (OperandKind::PReg, r)))
        .collect();
    let is_zero = |zero: &HashSet<PhysReg>, r: PhysReg| {
        (r.0 == OperandKind::SReg && r.1 == 0) || zero.contains(&r)
    };
    code.retain(|raw| {
        let ops = raw.opc.operands();
        let reg = |k: usize| {
            ops.get(k)
                .zip(raw.fields.get(k))
                .map(|(info, &v)| (info.kind, v))
        };
        // The zero this instruction writes, if it writes one for sure: `li r, 0`,
        // `mov`/`vmov r, <zero>`, `vbcast v, <zero>`, all unguarded.
        let writes_zero = raw.guard == 0
            && match raw.opc {
                Opcode::Li => raw.fields.get(1) == Some(&0),
                Opcode::Mov | Opcode::Vmov | Opcode::Vbcast => {
                    reg(1).is_some_and(|r| is_zero(&zero, r))
                }
                _ => false,
            };
        let dest = reg(0);
        if writes_zero && dest.is_some_and(|d| zero.contains(&d)) {
            return false;
        }
        for (k, info) in ops.iter().enumerate() {
            if info.is_written()
                && matches!(
                    info.kind,
                    OperandKind::SReg | OperandKind::VReg | OperandKind::PReg
                )
                && let Some(&v) = raw.fields.get(k)
            {
                if writes_zero {
                    zero.insert((info.kind, v));
                } else {
                    zero.remove(&(info.kind, v));
                }
            }
        }
        true
    });
}

fn invert(opc: Opcode) -> Opcode {
    match opc {
        Opcode::Beq => Opcode::Bne,
        Opcode::Bne => Opcode::Beq,
        Opcode::Blt => Opcode::Bge,
        Opcode::Bge => Opcode::Blt,
        Opcode::Bltu => Opcode::Bgeu,
        _ => Opcode::Bltu,
    }
}

/// The binary of `f`, allocated as `asg` says.
pub fn emit(
    f: &Function,
    mf: &MFunc,
    asg: &Assignment,
    level: OptLevel,
) -> Result<KernelBinary, BackError> {
    let e = Emitter {
        mf,
        phys: &asg.phys,
        name: &f.name,
    };
    let rpo = mf.rpo();
    let nb = mf.blocks.len();
    let mut body: Vec<Vec<Raw>> = (0..nb).map(|_| Vec::new()).collect();
    for &b in &rpo {
        for i in &mf.blocks[b].insts {
            e.inst(i, &mut body[b])?;
        }
    }
    if level == OptLevel::O1 {
        let entry = mf.entry;
        let jumped_to = mf.blocks.iter().any(|b| b.term.succs().contains(&entry));
        if !jumped_to && let Some(code) = body.get_mut(entry) {
            drop_zero_writes(code);
        }
    }
    // Where a jump to `b` may go instead: past empty blocks that only jump (at -O1).
    let resolve = |mut b: usize| {
        if level == OptLevel::O1 {
            for _ in 0..nb {
                match mf.blocks[b].term {
                    Term::Jump(t) if body[b].is_empty() && t != b => b = t,
                    _ => break,
                }
            }
        }
        b
    };
    let mut terms: Vec<Term> = mf.blocks.iter().map(|b| b.term.clone()).collect();
    for t in &mut terms {
        match t {
            Term::Jump(x) => *x = resolve(*x),
            Term::Branch { then, other, .. } => {
                *then = resolve(*then);
                *other = resolve(*other);
                if then == other {
                    *t = Term::Jump(*then);
                }
            }
            Term::Halt => {}
        }
    }
    // The blocks still reached, in reverse post-order, and a greedy layout.
    let start = resolve(mf.entry);
    let mut reached = vec![false; nb];
    let mut stack = vec![start];
    reached[start] = true;
    while let Some(b) = stack.pop() {
        for s in terms[b].succs() {
            if !reached[s] {
                reached[s] = true;
                stack.push(s);
            }
        }
    }
    let mut order = Vec::new();
    let mut placed = vec![false; nb];
    let mut next = Some(start);
    while let Some(b) = next {
        placed[b] = true;
        order.push(b);
        let prefer = match terms[b] {
            Term::Jump(t) => Some(t),
            Term::Branch { then, other, .. } => Some(if placed[other] { then } else { other }),
            Term::Halt => None,
        };
        next = prefer
            .filter(|&p| !placed[p])
            .or_else(|| rpo.iter().copied().find(|&x| reached[x] && !placed[x]));
    }
    // Code, with branch targets patched once every block has its position.
    let mut code: Vec<Raw> = Vec::new();
    let mut pos = vec![0usize; nb];
    let mut fixups: Vec<(usize, usize)> = Vec::new();
    for (k, &b) in order.iter().enumerate() {
        pos[b] = code.len();
        code.append(&mut body[b]);
        let next = order.get(k + 1).copied();
        let branch = |opc: Opcode, fields: Vec<u32>| Raw {
            opc,
            guard: 0,
            fields,
        };
        let jump_needed = |t: usize| level == OptLevel::O0 || next != Some(t);
        match terms[b] {
            Term::Halt => code.push(branch(Opcode::Halt, vec![])),
            Term::Jump(t) => {
                if jump_needed(t) {
                    fixups.push((code.len(), t));
                    code.push(branch(Opcode::J, vec![0]));
                }
            }
            Term::Branch {
                opc,
                a,
                b: bb,
                then,
                other,
            } => {
                let fa = e.field(a, OperandKind::SReg)?;
                let fb = e.field(bb, OperandKind::SReg)?;
                let (opc, target, rest) = if next == Some(then) && next != Some(other) {
                    (invert(opc), other, then)
                } else {
                    (opc, then, other)
                };
                fixups.push((code.len(), target));
                code.push(branch(opc, vec![fa, fb, 0]));
                if jump_needed(rest) {
                    fixups.push((code.len(), rest));
                    code.push(branch(Opcode::J, vec![0]));
                }
            }
        }
    }
    if code.len() > MAX_CODE_INSTS {
        return Err(err(format!(
            "kernel {} compiles to {} instructions; a launch runs at most {MAX_CODE_INSTS}",
            f.name,
            code.len()
        )));
    }
    for (at, target) in fixups {
        let off = pos[target] as i64 - at as i64;
        if let Some(last) = code[at].fields.last_mut() {
            *last = off as i32 as u32;
        }
    }
    let mut words = Vec::with_capacity(code.len());
    for r in &code {
        words.push(encode(r, &f.name)?);
    }
    let args = f
        .params
        .iter()
        .map(|p| match p.kind {
            ParamKind::TensorF32 => ArgDecl::tensor(&p.name, ElemKind::F32),
            ParamKind::TensorI32 => ArgDecl::tensor(&p.name, ElemKind::I32),
            ParamKind::TensorU32 => ArgDecl::tensor(&p.name, ElemKind::U32),
            ParamKind::TensorBf16 => ArgDecl::tensor(&p.name, ElemKind::Bf16),
            ParamKind::I32 => ArgDecl::scalar(&p.name, ArgKind::I32),
            ParamKind::U32 => ArgDecl::scalar(&p.name, ArgKind::U32),
            ParamKind::F32 => ArgDecl::scalar(&p.name, ArgKind::F32),
        })
        .collect();
    let binary = KernelBinary {
        name: f.name.clone(),
        entry: 0,
        code: words,
        args,
        scratch_bytes: asg.scratch_bytes,
    };
    binary
        .validate()
        .map_err(|e| err(format!("kernel {}: {e}", f.name)))?;
    Ok(binary)
}
