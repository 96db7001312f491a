//! Instruction selection: the IR to machine IR over virtual registers.
//!
//! Each IR value gets an [`Arg`]: a virtual register of its class, `s0`/`p0` for the
//! zero and all-lanes constants, or a component of an `Int4` register (`Int4Get` reads
//! the component in place). Constants are loaded (`li`) where they are defined and
//! folded into immediate forms (`addi`, `muli`, `shli`, ..., scratchpad offsets) where
//! they are used; [`dce`] then drops the loads nothing reads, and likewise the
//! `vbcast`, `vext` and multiplies that a use folded into `vadds`, `vmuls`, `vmads`,
//! `vmadl` or `vmad`. A compare read only by a branch becomes a compare-and-branch.
//!
//! A guarded result with a passthru is written into a copy of the passthru (a tie the
//! allocator coalesces when the passthru dies there). Block parameters are set by
//! parallel copies at the end of the predecessor, or on a block of their own for the
//! edges of a two-way branch.
//!
//! Left out: selecting across blocks (patterns see a value's definition anywhere, but
//! nothing is moved), and vector integer immediates (the SG1 has none).

use crate::fxhash::HashMap;

use sagrada_isa::Opcode;

use super::BackError;
use super::mir::{Arg, Class, MBlock, MFunc, MGuard, MInst, Term, VReg};
use crate::ir::{self, Cond, Function, Op, Terminator, Type, Value, ValueDef};

/// The sign bit of an f32.
const SIGN: u32 = 0x8000_0000;

/// Selects instructions for `f`.
pub fn select(f: &Function) -> Result<MFunc, BackError> {
    let mut s = Isel {
        f,
        mf: MFunc {
            blocks: vec![
                MBlock {
                    insts: Vec::new(),
                    term: Term::Halt,
                };
                f.blocks.len()
            ],
            classes: Vec::new(),
            entry: f.entry.0 as usize,
        },
        vals: HashMap::default(),
        uses: HashMap::default(),
        cur: 0,
    };
    if f.entry.0 as usize >= f.blocks.len() {
        return Err(err(format!(
            "kernel {}: the entry block {} does not exist",
            f.name, f.entry
        )));
    }
    let order = f.reverse_postorder();
    for &b in &order {
        for &i in &f.block(b).insts {
            for v in f.inst_uses(i) {
                *s.uses.entry(v).or_default() += 1;
            }
        }
        for v in f.term_uses(b) {
            *s.uses.entry(v).or_default() += 1;
        }
    }
    for &b in &order {
        s.cur = b.0 as usize;
        for &i in &f.block(b).insts {
            // Point the diagnostic at the instruction it is about.
            s.inst(i).map_err(|mut e| {
                e.span = e.span.or(f.insts.get(i.0 as usize).map(|d| d.span));
                e
            })?;
        }
        s.term(b)?;
    }
    dce(&mut s.mf);
    Ok(s.mf)
}

fn err(message: String) -> BackError {
    BackError {
        message,
        span: None,
    }
}

struct Isel<'a> {
    f: &'a Function,
    mf: MFunc,
    vals: HashMap<Value, Arg>,
    uses: HashMap<Value, u32>,
    cur: usize,
}

fn class_of(ty: Type) -> Class {
    match ty {
        Type::I32 | Type::F32 => Class::S,
        Type::VF32 | Type::VI32 | Type::VBF16 => Class::V,
        Type::Mask => Class::P,
        Type::Int4 => Class::Q,
    }
}

impl Isel<'_> {
    fn push(&mut self, i: MInst) {
        self.mf.blocks[self.cur].insts.push(i);
    }

    fn op(&mut self, opc: Opcode, args: Vec<Arg>) {
        self.push(MInst::Op {
            opc,
            args,
            guard: None,
            tied: false,
        });
    }

    fn new_reg(&mut self, c: Class) -> VReg {
        self.mf.new_reg(c)
    }

    /// The operand holding `v`.
    fn arg(&mut self, v: Value) -> Result<Arg, BackError> {
        if let Some(&a) = self.vals.get(&v) {
            return Ok(a);
        }
        let Some(data) = self.f.values.get(v.0 as usize) else {
            return Err(err(format!(
                "kernel {}: value {v} does not exist",
                self.f.name
            )));
        };
        match data.def {
            ValueDef::Param(..) => {
                let r = self.new_reg(class_of(data.ty));
                self.vals.insert(v, Arg::Reg(r));
                Ok(Arg::Reg(r))
            }
            ValueDef::Inst(_) => Err(err(format!(
                "kernel {}: value {v} is used where its definition does not reach",
                self.f.name
            ))),
        }
    }

    /// `v` as the source of a copy: constants as immediates.
    fn src(&mut self, v: Value) -> Result<Arg, BackError> {
        match (self.konst(v), self.ty(v)) {
            (Some(0), Type::I32 | Type::F32) | (Some(_), Type::Mask) => Ok(Arg::Zero),
            (Some(bits), Type::I32 | Type::F32) => Ok(Arg::Imm(bits)),
            _ => self.arg(v),
        }
    }

    fn ty(&self, v: Value) -> Type {
        self.f.values.get(v.0 as usize).map_or(Type::I32, |d| d.ty)
    }

    fn konst(&self, v: Value) -> Option<u32> {
        if v.0 as usize >= self.f.values.len() {
            return None;
        }
        let i = self.f.def_inst(v)?;
        match self.f.insts.get(i.0 as usize)?.op {
            Op::Const(bits) => Some(bits),
            _ => None,
        }
    }

    fn def_of(&self, v: Value) -> Option<&ir::InstData> {
        if v.0 as usize >= self.f.values.len() {
            return None;
        }
        self.f.insts.get(self.f.def_inst(v)?.0 as usize)
    }

    fn single_use(&self, v: Value) -> bool {
        self.uses.get(&v).copied().unwrap_or(0) == 1
    }

    fn guard(&mut self, g: Option<ir::Guard>) -> Result<Option<MGuard>, BackError> {
        match g {
            None => Ok(None),
            Some(g) => Ok(Some(MGuard {
                pred: self.arg(g.mask)?,
                negate: g.negated,
            })),
        }
    }

    /// Whether a value made by `producer` may be folded into `consumer`: the lanes the
    /// consumer reads are the ones the producer computed.
    fn compatible(producer: &ir::InstData, consumer: &ir::InstData) -> bool {
        producer.guard.is_none()
            || (producer.guard == consumer.guard && producer.passthru.is_none())
    }

    /// The scalar `v` broadcasts, if `v` is a broadcast `consumer` can fold.
    fn bcast(&self, v: Value, consumer: &ir::InstData) -> Option<Value> {
        let d = self.def_of(v)?;
        (d.op == Op::Broadcast && d.args.len() == 1 && Self::compatible(d, consumer))
            .then(|| d.args[0])
    }

    /// `(a, b)` if `v` is a product only `consumer` reads and it can fold.
    fn product(&self, v: Value, consumer: &ir::InstData) -> Option<(Value, Value)> {
        let d = self.def_of(v)?;
        (d.op == Op::Fmul
            && d.args.len() == 2
            && self.single_use(v)
            && Self::compatible(d, consumer))
        .then(|| (d.args[0], d.args[1]))
    }

    /// The new register of `i`'s result.
    fn result(&mut self, i: &ir::InstData) -> Result<VReg, BackError> {
        let Some(v) = i.result else {
            return Err(err(format!(
                "kernel {}: a {:?} has no result",
                self.f.name, i.op
            )));
        };
        let r = self.new_reg(class_of(self.ty(v)));
        self.vals.insert(v, Arg::Reg(r));
        Ok(r)
    }

    /// Emits `opc` computing `i`'s result from `srcs` (the operands after the
    /// destination), under `i`'s guard: tied to the passthru if there is one; on a
    /// copy merged under the guard if `opc` takes none.
    fn def(&mut self, i: &ir::InstData, opc: Opcode, srcs: Vec<Arg>) -> Result<(), BackError> {
        let d = self.result(i)?;
        self.def_into(i, d, opc, srcs)
    }

    fn def_into(
        &mut self,
        i: &ir::InstData,
        d: VReg,
        opc: Opcode,
        srcs: Vec<Arg>,
    ) -> Result<(), BackError> {
        let guard = self.guard(i.guard)?;
        let mut args = vec![Arg::Reg(d)];
        args.extend(srcs);
        let vectorish = matches!(self.mf.class(d), Class::V | Class::P);
        match guard {
            None => self.op(opc, args),
            Some(g) if opc.predicable() => {
                let tied = match i.passthru {
                    Some(p) if vectorish => {
                        let src = self.arg(p)?;
                        self.push(MInst::Copy(vec![(Arg::Reg(d), src)]));
                        true
                    }
                    _ => false,
                };
                self.push(MInst::Op {
                    opc,
                    args,
                    guard: Some(g),
                    tied,
                });
            }
            Some(g) => {
                // Unguarded into a temporary (only non-faulting operations take this
                // path), then merged under the guard.
                let t = self.new_reg(self.mf.class(d));
                args[0] = Arg::Reg(t);
                self.op(opc, args);
                self.merge(i, d, Arg::Reg(t), g)?;
            }
        }
        Ok(())
    }

    /// `d` = `t` on the guard's lanes, the passthru's elsewhere.
    fn merge(&mut self, i: &ir::InstData, d: VReg, t: Arg, g: MGuard) -> Result<(), BackError> {
        let pass = match i.passthru {
            Some(p) => Some(self.src(p)?),
            None => None,
        };
        match (self.mf.class(d), pass) {
            (_, None) => self.push(MInst::Copy(vec![(Arg::Reg(d), t)])),
            (Class::V, Some(p)) => {
                self.push(MInst::Copy(vec![(Arg::Reg(d), p)]));
                self.push(MInst::Op {
                    opc: Opcode::Vmov,
                    args: vec![Arg::Reg(d), t],
                    guard: Some(g),
                    tied: true,
                });
            }
            (Class::P, Some(p)) => {
                // d = (t & g) | (p & !g), with g negated swapping the roles.
                let (on, off) = if g.negate { (p, t) } else { (t, p) };
                let a = self.new_reg(Class::P);
                let n = self.new_reg(Class::P);
                let b = self.new_reg(Class::P);
                self.op(Opcode::Pand, vec![Arg::Reg(a), on, g.pred]);
                self.op(Opcode::Pnot, vec![Arg::Reg(n), g.pred]);
                self.op(Opcode::Pand, vec![Arg::Reg(b), off, Arg::Reg(n)]);
                self.op(Opcode::Por, vec![Arg::Reg(d), Arg::Reg(a), Arg::Reg(b)]);
            }
            _ => {
                return Err(err(format!(
                    "kernel {}: a guarded {:?} has a scalar result",
                    self.f.name, i.op
                )));
            }
        }
        Ok(())
    }

    /// Emits the tied `opc d, srcs...` with `d` starting as `acc` (an accumulator).
    fn def_tied(
        &mut self,
        i: &ir::InstData,
        opc: Opcode,
        acc: Value,
        srcs: Vec<Arg>,
    ) -> Result<(), BackError> {
        let d = self.result(i)?;
        let a = self.src(acc)?;
        self.push(MInst::Copy(vec![(Arg::Reg(d), a)]));
        let guard = self.guard(i.guard)?;
        let mut args = vec![Arg::Reg(d)];
        args.extend(srcs);
        self.push(MInst::Op {
            opc,
            args,
            guard,
            tied: true,
        });
        Ok(())
    }

    fn unsupported(&self, i: &ir::InstData) -> BackError {
        let tys: Vec<String> = i.args.iter().map(|&a| self.ty(a).to_string()).collect();
        err(format!(
            "kernel {}: the SG1 has no instruction for {:?} on ({})",
            self.f.name,
            i.op,
            tys.join(", ")
        ))
    }

    fn need(&self, i: &ir::InstData, n: usize) -> Result<(), BackError> {
        if i.args.len() == n {
            Ok(())
        } else {
            Err(err(format!(
                "kernel {}: {:?} takes {n} operands, not {}",
                self.f.name,
                i.op,
                i.args.len()
            )))
        }
    }

    /// A scratchpad address `a + offset` as base register and immediate.
    fn address(&mut self, a: Value, offset: i32) -> Result<(Arg, u32), BackError> {
        if let Some(c) = self.konst(a)
            && let Some(addr) = (c as i32).checked_add(offset)
        {
            return Ok((Arg::Zero, addr as u32));
        }
        if let Some(d) = self.def_of(a)
            && d.op == Op::Add
            && d.args.len() == 2
            && self.ty(a) == Type::I32
        {
            let (x, y) = (d.args[0], d.args[1]);
            for (base, k) in [(x, y), (y, x)] {
                if let Some(c) = self.konst(k)
                    && let Some(imm) = (c as i32).checked_add(offset)
                {
                    return Ok((self.arg(base)?, imm as u32));
                }
            }
        }
        Ok((self.arg(a)?, offset as u32))
    }

    fn inst(&mut self, id: ir::Inst) -> Result<(), BackError> {
        let Some(i) = self.f.insts.get(id.0 as usize) else {
            return Err(err(format!(
                "kernel {}: instruction {} does not exist",
                self.f.name, id.0
            )));
        };
        let i = i.clone();
        let rty = i.result.map(|r| self.ty(r));
        let aty = i.args.first().map(|&a| self.ty(a));
        let scalar = aty.is_some_and(Type::is_scalar);
        match i.op {
            Op::Const(bits) => {
                let Some(v) = i.result else {
                    return Err(self.unsupported(&i));
                };
                let a = match rty {
                    Some(Type::Mask) => Arg::Zero,
                    Some(Type::I32 | Type::F32) if bits == 0 => Arg::Zero,
                    Some(Type::I32 | Type::F32) => {
                        let r = self.new_reg(Class::S);
                        self.op(Opcode::Li, vec![Arg::Reg(r), Arg::Imm(bits)]);
                        Arg::Reg(r)
                    }
                    _ => return Err(self.unsupported(&i)),
                };
                self.vals.insert(v, a);
            }
            Op::Copy | Op::Bitcast => {
                self.need(&i, 1)?;
                let src = self.arg(i.args[0])?;
                match (i.guard, rty) {
                    (Some(_), Some(t)) if t.is_vector() => self.def(&i, Opcode::Vmov, vec![src])?,
                    (Some(g), Some(Type::Mask)) => {
                        let d = self.result(&i)?;
                        let g = MGuard {
                            pred: self.arg(g.mask)?,
                            negate: g.negated,
                        };
                        self.merge(&i, d, src, g)?;
                    }
                    _ => {
                        // SSA values never change, so the result can be the operand.
                        if let Some(v) = i.result {
                            if rty.map(class_of) != aty.map(class_of) {
                                return Err(self.unsupported(&i));
                            }
                            self.vals.insert(v, src);
                        }
                    }
                }
            }
            Op::Add
            | Op::Sub
            | Op::Mul
            | Op::Div
            | Op::Divu
            | Op::Rem
            | Op::Remu
            | Op::And
            | Op::Or
            | Op::Xor
            | Op::Shl
            | Op::Shr
            | Op::Sra
            | Op::Min
            | Op::Max
            | Op::Minu
            | Op::Maxu => {
                self.need(&i, 2)?;
                if scalar {
                    self.int_scalar(&i)?;
                } else {
                    self.int_vector(&i)?;
                }
            }
            Op::Fadd | Op::Fsub | Op::Fmul | Op::Fdiv | Op::Fmin | Op::Fmax | Op::Fmad => {
                self.need(&i, if i.op == Op::Fmad { 3 } else { 2 })?;
                if scalar {
                    self.float_scalar(&i)?;
                } else {
                    self.float_vector(&i)?;
                }
            }
            Op::Fneg
            | Op::Fabs
            | Op::Fsqrt
            | Op::Fexp
            | Op::Frsqrt
            | Op::Frcp
            | Op::CvtF32I32
            | Op::CvtI32F32
            | Op::CvtF32U32
            | Op::CvtU32F32
            | Op::UnpackLo
            | Op::UnpackHi => {
                self.need(&i, 1)?;
                let a = self.arg(i.args[0])?;
                if scalar {
                    let (opc, args) = match i.op {
                        Op::Fneg => (Opcode::Xori, vec![a, Arg::Imm(SIGN)]),
                        Op::Fabs => (Opcode::Andi, vec![a, Arg::Imm(!SIGN)]),
                        Op::Fsqrt => (Opcode::Fsqrt, vec![a]),
                        Op::Fexp => (Opcode::Fexp, vec![a]),
                        Op::Frsqrt => (Opcode::Frsqrt, vec![a]),
                        Op::Frcp => (Opcode::Frcp, vec![a]),
                        Op::CvtF32I32 => (Opcode::CvtF32I32, vec![a]),
                        Op::CvtI32F32 => (Opcode::CvtI32F32, vec![a]),
                        _ => return Err(self.unsupported(&i)),
                    };
                    self.def(&i, opc, args)?;
                } else {
                    let opc = match i.op {
                        Op::Fneg => Opcode::VnegF32,
                        Op::Fabs => Opcode::VabsF32,
                        Op::Fsqrt => Opcode::VsqrtF32,
                        Op::Fexp => Opcode::VexpF32,
                        Op::Frsqrt => Opcode::VrsqrtF32,
                        Op::Frcp => Opcode::VrcpF32,
                        Op::CvtF32I32 => Opcode::VcvtF32I32,
                        Op::CvtI32F32 => Opcode::VcvtI32F32,
                        Op::CvtF32U32 => Opcode::VcvtF32U32,
                        Op::CvtU32F32 => Opcode::VcvtU32F32,
                        Op::UnpackLo => Opcode::VunpkLoBf16,
                        _ => Opcode::VunpkHiBf16,
                    };
                    self.def(&i, opc, vec![a])?;
                }
            }
            Op::Pack => {
                self.need(&i, 2)?;
                let (a, b) = (self.arg(i.args[0])?, self.arg(i.args[1])?);
                self.def(&i, Opcode::VpackBf16, vec![a, b])?;
            }
            Op::Icmp(c) | Op::Fcmp(c) => {
                self.need(&i, 2)?;
                self.compare(&i, c)?;
            }
            Op::Select => {
                self.need(&i, 3)?;
                self.select(&i)?;
            }
            Op::Broadcast => {
                self.need(&i, 1)?;
                let a = self.arg(i.args[0])?;
                self.def(&i, Opcode::Vbcast, vec![a])?;
            }
            Op::Iota => self.def(&i, Opcode::Viota, vec![])?,
            Op::Extract => {
                self.need(&i, 2)?;
                let (a, b) = (self.arg(i.args[0])?, self.arg(i.args[1])?);
                self.def(&i, Opcode::Vext, vec![a, b])?;
            }
            Op::Insert => {
                self.need(&i, 3)?;
                let (b, c) = (self.arg(i.args[1])?, self.arg(i.args[2])?);
                self.def_tied(&i, Opcode::Vins, i.args[0], vec![b, c])?;
            }
            Op::Rotate | Op::Permute => {
                self.need(&i, 2)?;
                let (a, b) = (self.arg(i.args[0])?, self.arg(i.args[1])?);
                let opc = if i.op == Op::Rotate {
                    Opcode::Vrot
                } else {
                    Opcode::Vperm
                };
                self.def(&i, opc, vec![a, b])?;
            }
            Op::RedAdd | Op::RedMax | Op::RedMin => {
                self.need(&i, 1)?;
                let a = self.arg(i.args[0])?;
                let float = aty == Some(Type::VF32);
                let opc = match (i.op, float) {
                    (Op::RedAdd, true) => Opcode::VredsumF32,
                    (Op::RedMax, true) => Opcode::VredmaxF32,
                    (Op::RedMin, true) => Opcode::VredminF32,
                    (Op::RedAdd, false) => Opcode::VredsumI32,
                    (Op::RedMax, false) => Opcode::VredmaxI32,
                    _ => Opcode::VredminI32,
                };
                self.def(&i, opc, vec![a])?;
            }
            Op::Lanes => {
                self.need(&i, 1)?;
                let a = self.arg(i.args[0])?;
                self.def(&i, Opcode::Pfirst, vec![a])?;
            }
            Op::MaskAnd | Op::MaskOr | Op::MaskXor => {
                self.need(&i, 2)?;
                let (a, b) = (self.arg(i.args[0])?, self.arg(i.args[1])?);
                let opc = match i.op {
                    Op::MaskAnd => Opcode::Pand,
                    Op::MaskOr => Opcode::Por,
                    _ => Opcode::Pxor,
                };
                self.def(&i, opc, vec![a, b])?;
            }
            Op::MaskNot | Op::MaskCount => {
                self.need(&i, 1)?;
                let a = self.arg(i.args[0])?;
                let opc = if i.op == Op::MaskNot {
                    Opcode::Pnot
                } else {
                    Opcode::Pcnt
                };
                self.def(&i, opc, vec![a])?;
            }
            Op::MakeInt4 => {
                self.need(&i, 4)?;
                let q = self.result(&i)?;
                let mut moves = Vec::new();
                for k in 0..4 {
                    moves.push((Arg::Part(q, k as u8), self.src(i.args[k])?));
                }
                self.push(MInst::Copy(moves));
            }
            Op::Int4Get(k) => {
                self.need(&i, 1)?;
                let (Arg::Reg(q), Some(v), true) = (self.arg(i.args[0])?, i.result, k < 4) else {
                    return Err(self.unsupported(&i));
                };
                self.vals.insert(v, Arg::Part(q, k));
            }
            Op::Int4Set(k) => {
                self.need(&i, 2)?;
                let (Arg::Reg(old), true) = (self.arg(i.args[0])?, k < 4) else {
                    return Err(self.unsupported(&i));
                };
                let b = self.src(i.args[1])?;
                let q = self.result(&i)?;
                // A copy of the tuple, then one component written: the copy is
                // coalesced away when the old tuple dies here.
                self.push(MInst::Copy(vec![(Arg::Reg(q), Arg::Reg(old))]));
                self.push(MInst::Copy(vec![(Arg::Part(q, k), b)]));
            }
            Op::Idx(d) => self.def(&i, Opcode::Idx, vec![Arg::Imm(u32::from(d))])?,
            Op::Idxn(d) => self.def(&i, Opcode::Idxn, vec![Arg::Imm(u32::from(d))])?,
            Op::CoreId => self.def(&i, Opcode::Coreid, vec![])?,
            Op::Arg(n) => self.def(&i, Opcode::Ldarg, vec![Arg::Imm(n)])?,
            Op::Tdim { slot, dim } => self.def(
                &i,
                Opcode::Tdim,
                vec![Arg::Slot(slot), Arg::Imm(u32::from(dim))],
            )?,
            Op::LoadTensor { slot } => {
                self.need(&i, 1)?;
                let c = self.arg(i.args[0])?;
                let opc = if rty == Some(Type::VBF16) {
                    Opcode::LdtB16
                } else {
                    Opcode::LdtB32
                };
                self.def(&i, opc, vec![Arg::Slot(slot), c])?;
            }
            Op::LoadTensorScalar { slot } => {
                self.need(&i, 1)?;
                let c = self.arg(i.args[0])?;
                self.def(&i, Opcode::LdtsB32, vec![Arg::Slot(slot), c])?;
            }
            Op::StoreTensor { slot } | Op::StoreTensorScalar { slot } => {
                self.need(&i, 2)?;
                let (c, v) = (self.arg(i.args[0])?, self.arg(i.args[1])?);
                let opc = match (i.op, self.ty(i.args[1])) {
                    (Op::StoreTensorScalar { .. }, _) => Opcode::SttsB32,
                    (_, Type::VBF16) => Opcode::SttB16,
                    _ => Opcode::SttB32,
                };
                let guard = self.guard(i.guard)?;
                self.push(MInst::Op {
                    opc,
                    args: vec![v, Arg::Slot(slot), c],
                    guard: guard.filter(|_| opc.predicable()),
                    tied: false,
                });
            }
            Op::LoadScratch { offset } | Op::LoadScratchVec { offset } => {
                self.need(&i, 1)?;
                let (base, imm) = self.address(i.args[0], offset)?;
                let opc = if matches!(i.op, Op::LoadScratch { .. }) {
                    Opcode::Lds
                } else {
                    Opcode::Ldv
                };
                self.def(&i, opc, vec![base, Arg::Imm(imm)])?;
            }
            Op::StoreScratch { offset } | Op::StoreScratchVec { offset } => {
                self.need(&i, 2)?;
                let (base, imm) = self.address(i.args[0], offset)?;
                let v = self.arg(i.args[1])?;
                let opc = if matches!(i.op, Op::StoreScratch { .. }) {
                    Opcode::Sts
                } else {
                    Opcode::Stv
                };
                let guard = self.guard(i.guard)?;
                self.push(MInst::Op {
                    opc,
                    args: vec![v, base, Arg::Imm(imm)],
                    guard: guard.filter(|_| opc.predicable()),
                    tied: false,
                });
            }
        }
        Ok(())
    }

    fn int_scalar(&mut self, i: &ir::InstData) -> Result<(), BackError> {
        let (x, y) = (i.args[0], i.args[1]);
        let imm_form = match i.op {
            Op::Add => Some(Opcode::Addi),
            Op::Sub => Some(Opcode::Addi),
            Op::Mul => Some(Opcode::Muli),
            Op::And => Some(Opcode::Andi),
            Op::Or => Some(Opcode::Ori),
            Op::Xor => Some(Opcode::Xori),
            Op::Shl => Some(Opcode::Shli),
            Op::Shr => Some(Opcode::Shri),
            Op::Sra => Some(Opcode::Srai),
            _ => None,
        };
        let commutes = matches!(i.op, Op::Add | Op::Mul | Op::And | Op::Or | Op::Xor);
        if let Some(opc) = imm_form {
            let mut pick = None;
            if let Some(c) = self.konst(y) {
                pick = Some((x, if i.op == Op::Sub { c.wrapping_neg() } else { c }));
            } else if commutes && let Some(c) = self.konst(x) {
                pick = Some((y, c));
            }
            if let Some((r, c)) = pick {
                let a = self.arg(r)?;
                return self.def(i, opc, vec![a, Arg::Imm(c)]);
            }
        }
        let opc = match i.op {
            Op::Add => Opcode::Add,
            Op::Sub => Opcode::Sub,
            Op::Mul => Opcode::Mul,
            Op::Div => Opcode::Div,
            Op::Divu => Opcode::Divu,
            Op::Rem => Opcode::Rem,
            Op::Remu => Opcode::Remu,
            Op::And => Opcode::And,
            Op::Or => Opcode::Or,
            Op::Xor => Opcode::Xor,
            Op::Shl => Opcode::Shl,
            Op::Shr => Opcode::Shr,
            Op::Sra => Opcode::Sra,
            Op::Min => Opcode::Min,
            Op::Max => Opcode::Max,
            _ => return Err(self.unsupported(i)),
        };
        let (a, b) = (self.arg(x)?, self.arg(y)?);
        self.def(i, opc, vec![a, b])
    }

    fn int_vector(&mut self, i: &ir::InstData) -> Result<(), BackError> {
        let (x, y) = (i.args[0], i.args[1]);
        if i.op == Op::Add {
            for (v, s) in [(x, y), (y, x)] {
                if let Some(s) = self.bcast(s, i) {
                    let (a, b) = (self.arg(v)?, self.arg(s)?);
                    return self.def(i, Opcode::VaddsI32, vec![a, b]);
                }
            }
        }
        let opc = match i.op {
            Op::Add => Opcode::VaddI32,
            Op::Sub => Opcode::VsubI32,
            Op::Mul => Opcode::VmulI32,
            Op::And => Opcode::Vand,
            Op::Or => Opcode::Vor,
            Op::Xor => Opcode::Vxor,
            Op::Shl => Opcode::Vshl,
            Op::Shr => Opcode::Vshr,
            Op::Sra => Opcode::Vsra,
            Op::Min => Opcode::VminI32,
            Op::Max => Opcode::VmaxI32,
            Op::Minu => Opcode::VminU32,
            Op::Maxu => Opcode::VmaxU32,
            _ => return Err(self.unsupported(i)),
        };
        let (a, b) = (self.arg(x)?, self.arg(y)?);
        self.def(i, opc, vec![a, b])
    }

    fn float_scalar(&mut self, i: &ir::InstData) -> Result<(), BackError> {
        if i.op == Op::Fmad {
            let (a, b, c) = (
                self.arg(i.args[0])?,
                self.arg(i.args[1])?,
                self.arg(i.args[2])?,
            );
            return self.def(i, Opcode::Mad, vec![a, b, c]);
        }
        let (x, y) = (i.args[0], i.args[1]);
        if i.op == Op::Fadd {
            for (m, acc) in [(x, y), (y, x)] {
                if let Some((p, q)) = self.product(m, i) {
                    let (a, b, c) = (self.arg(p)?, self.arg(q)?, self.arg(acc)?);
                    return self.def(i, Opcode::Mad, vec![a, b, c]);
                }
            }
        }
        let opc = match i.op {
            Op::Fadd => Opcode::Fadd,
            Op::Fsub => Opcode::Fsub,
            Op::Fmul => Opcode::Fmul,
            Op::Fdiv => Opcode::Fdiv,
            Op::Fmin => Opcode::Fmin,
            _ => Opcode::Fmax,
        };
        let (a, b) = (self.arg(x)?, self.arg(y)?);
        self.def(i, opc, vec![a, b])
    }

    /// `a * b + acc` on vectors: `vmadl` when `b` broadcasts lane `k` of a vector,
    /// `vmads` when it broadcasts a scalar (both accumulate in place), else `vmad`.
    fn vector_mad(
        &mut self,
        i: &ir::InstData,
        a: Value,
        b: Value,
        acc: Value,
    ) -> Result<(), BackError> {
        // The accumulating forms keep the inactive lanes of the accumulator.
        let tie_ok = i.guard.is_none() || i.passthru.is_none() || i.passthru == Some(acc);
        if tie_ok {
            for (v, s) in [(a, b), (b, a)] {
                let Some(s) = self.bcast(s, i) else {
                    continue;
                };
                let lane = self
                    .def_of(s)
                    .filter(|e| e.op == Op::Extract && e.args.len() == 2)
                    .map(|e| (e.args[0], e.args[1]));
                if let Some((vec, k)) = lane
                    && let Some(k) = self.konst(k)
                {
                    let (va, vb) = (self.arg(v)?, self.arg(vec)?);
                    return self.def_tied(i, Opcode::VmadlF32, acc, vec![va, vb, Arg::Imm(k & 63)]);
                }
                let (va, sb) = (self.arg(v)?, self.arg(s)?);
                return self.def_tied(i, Opcode::VmadsF32, acc, vec![va, sb]);
            }
        }
        let (va, vb, vc) = (self.arg(a)?, self.arg(b)?, self.arg(acc)?);
        self.def(i, Opcode::VmadF32, vec![va, vb, vc])
    }

    fn float_vector(&mut self, i: &ir::InstData) -> Result<(), BackError> {
        if i.op == Op::Fmad {
            return self.vector_mad(i, i.args[0], i.args[1], i.args[2]);
        }
        let (x, y) = (i.args[0], i.args[1]);
        if i.op == Op::Fadd {
            for (m, acc) in [(x, y), (y, x)] {
                if let Some((p, q)) = self.product(m, i) {
                    return self.vector_mad(i, p, q, acc);
                }
            }
        }
        if matches!(i.op, Op::Fadd | Op::Fmul) {
            for (v, s) in [(x, y), (y, x)] {
                if let Some(s) = self.bcast(s, i) {
                    let opc = if i.op == Op::Fadd {
                        Opcode::VaddsF32
                    } else {
                        Opcode::VmulsF32
                    };
                    let (a, b) = (self.arg(v)?, self.arg(s)?);
                    return self.def(i, opc, vec![a, b]);
                }
            }
        }
        let opc = match i.op {
            Op::Fadd => Opcode::VaddF32,
            Op::Fsub => Opcode::VsubF32,
            Op::Fmul => Opcode::VmulF32,
            Op::Fdiv => Opcode::VdivF32,
            Op::Fmin => Opcode::VminF32,
            _ => Opcode::VmaxF32,
        };
        let (a, b) = (self.arg(x)?, self.arg(y)?);
        self.def(i, opc, vec![a, b])
    }

    fn compare(&mut self, i: &ir::InstData, c: Cond) -> Result<(), BackError> {
        let float = matches!(i.op, Op::Fcmp(_));
        let (x, y) = (i.args[0], i.args[1]);
        if float && c.is_unsigned() {
            return Err(err(format!(
                "kernel {}: a float compare cannot be unsigned ({})",
                self.f.name,
                c.name()
            )));
        }
        // (opcode, swap operands, negate the result)
        let scalar = self.ty(x).is_scalar();
        let (opc, swap, negate) = if scalar {
            let (lt, le, eq) = if float {
                (Opcode::Flt, Some(Opcode::Fle), Opcode::Feq)
            } else if c.is_unsigned() {
                (Opcode::Sltu, None, Opcode::Seq)
            } else {
                (Opcode::Slt, None, Opcode::Seq)
            };
            match (c, le) {
                (Cond::Eq, _) => (eq, false, false),
                (Cond::Ne, _) => (eq, false, true),
                (Cond::Lt | Cond::Ltu, _) => (lt, false, false),
                (Cond::Gt | Cond::Gtu, _) => (lt, true, false),
                (Cond::Le, Some(le)) => (le, false, false),
                (Cond::Ge, Some(le)) => (le, true, false),
                (Cond::Le | Cond::Leu, None) => (lt, true, true),
                (Cond::Ge | Cond::Geu, None) => (lt, false, true),
                _ => return Err(self.unsupported(i)),
            }
        } else if float {
            match c {
                Cond::Eq => (Opcode::VcmpEqF32, false, false),
                Cond::Ne => (Opcode::VcmpNeF32, false, false),
                Cond::Lt => (Opcode::VcmpLtF32, false, false),
                Cond::Le => (Opcode::VcmpLeF32, false, false),
                Cond::Gt => (Opcode::VcmpLtF32, true, false),
                Cond::Ge => (Opcode::VcmpLeF32, true, false),
                _ => return Err(self.unsupported(i)),
            }
        } else {
            match c {
                Cond::Eq => (Opcode::VcmpEqI32, false, false),
                Cond::Ne => (Opcode::VcmpEqI32, false, true),
                Cond::Lt => (Opcode::VcmpLtI32, false, false),
                Cond::Le => (Opcode::VcmpLeI32, false, false),
                Cond::Gt => (Opcode::VcmpLtI32, true, false),
                Cond::Ge => (Opcode::VcmpLeI32, true, false),
                Cond::Ltu => (Opcode::VcmpLtU32, false, false),
                Cond::Gtu => (Opcode::VcmpLtU32, true, false),
                Cond::Leu => (Opcode::VcmpLtU32, true, true),
                Cond::Geu => (Opcode::VcmpLtU32, false, true),
            }
        };
        let (a, b) = if swap { (y, x) } else { (x, y) };
        // `slt` against a constant has an immediate form.
        if opc == Opcode::Slt
            && let Some(k) = self.konst(b)
            && !negate
        {
            let a = self.arg(a)?;
            return self.def(i, Opcode::Slti, vec![a, Arg::Imm(k)]);
        }
        let (a, b) = (self.arg(a)?, self.arg(b)?);
        if !negate {
            return self.def(i, opc, vec![a, b]);
        }
        if scalar {
            let t = self.new_reg(Class::S);
            self.op(opc, vec![Arg::Reg(t), a, b]);
            self.def(i, Opcode::Xori, vec![Arg::Reg(t), Arg::Imm(1)])
        } else {
            // Compares do not fault: computed on every lane, then negated (and
            // merged under the guard by `def`, as `pnot` takes none).
            let t = self.new_reg(Class::P);
            self.op(opc, vec![Arg::Reg(t), a, b]);
            self.def(i, Opcode::Pnot, vec![Arg::Reg(t)])
        }
    }

    fn select(&mut self, i: &ir::InstData) -> Result<(), BackError> {
        let (c, x, y) = (i.args[0], i.args[1], i.args[2]);
        if self.ty(c) == Type::Mask {
            let (p, a, b) = (self.arg(c)?, self.arg(x)?, self.arg(y)?);
            return self.def(i, Opcode::Vsel, vec![p, a, b]);
        }
        let (a, b) = (self.arg(x)?, self.arg(y)?);
        if a == b {
            if let Some(v) = i.result {
                self.vals.insert(v, a);
            }
            return Ok(());
        }
        // Without a branch: b ^ ((a ^ b) & -c), with c made 0 or 1 first unless a
        // compare made it.
        let bool_ = self
            .def_of(c)
            .is_some_and(|d| matches!(d.op, Op::Icmp(_) | Op::Fcmp(_)));
        let mut cond = self.arg(c)?;
        if !bool_ {
            let t = self.new_reg(Class::S);
            self.op(Opcode::Sltu, vec![Arg::Reg(t), Arg::Zero, cond]);
            cond = Arg::Reg(t);
        }
        let neg = self.new_reg(Class::S);
        self.op(Opcode::Sub, vec![Arg::Reg(neg), Arg::Zero, cond]);
        let diff = self.new_reg(Class::S);
        self.op(Opcode::Xor, vec![Arg::Reg(diff), a, b]);
        let masked = self.new_reg(Class::S);
        self.op(
            Opcode::And,
            vec![Arg::Reg(masked), Arg::Reg(diff), Arg::Reg(neg)],
        );
        self.def(i, Opcode::Xor, vec![b, Arg::Reg(masked)])
    }

    /// Parallel copies into `target`'s parameters.
    fn edge_copies(&mut self, t: &ir::Target) -> Result<Vec<(Arg, Arg)>, BackError> {
        let params = self
            .f
            .blocks
            .get(t.block.0 as usize)
            .map(|b| b.params.clone())
            .unwrap_or_default();
        if params.len() != t.args.len() {
            return Err(err(format!(
                "kernel {}: a jump to {} passes {} values for {} parameters",
                self.f.name,
                t.block,
                t.args.len(),
                params.len()
            )));
        }
        let mut moves = Vec::new();
        for (&p, &a) in params.iter().zip(&t.args) {
            let (d, s) = (self.arg(p)?, self.src(a)?);
            if d != s {
                moves.push((d, s));
            }
        }
        Ok(moves)
    }

    fn term(&mut self, b: ir::Block) -> Result<(), BackError> {
        let term = self.f.block(b).term.clone();
        let check = |blk: ir::Block| -> Result<usize, BackError> {
            if (blk.0 as usize) < self.f.blocks.len() {
                Ok(blk.0 as usize)
            } else {
                Err(err(format!(
                    "kernel {}: block {blk} does not exist",
                    self.f.name
                )))
            }
        };
        let t = match term {
            Terminator::Halt => Term::Halt,
            Terminator::Jump(t) => {
                let moves = self.edge_copies(&t)?;
                if !moves.is_empty() {
                    self.push(MInst::Copy(moves));
                }
                Term::Jump(check(t.block)?)
            }
            Terminator::Branch {
                cond,
                then,
                otherwise,
            } => {
                let (opc, a, b) = self.branch_cond(cond)?;
                let mut dest = [0; 2];
                for (k, t) in [then, otherwise].iter().enumerate() {
                    let blk = check(t.block)?;
                    let moves = self.edge_copies(t)?;
                    dest[k] = if moves.is_empty() {
                        blk
                    } else {
                        // The copies go on a block of their own on the edge.
                        self.mf.blocks.push(MBlock {
                            insts: vec![MInst::Copy(moves)],
                            term: Term::Jump(blk),
                        });
                        self.mf.blocks.len() - 1
                    };
                }
                Term::Branch {
                    opc,
                    a,
                    b,
                    then: dest[0],
                    other: dest[1],
                }
            }
        };
        self.mf.blocks[self.cur].term = t;
        Ok(())
    }

    /// The compare-and-branch testing `cond`.
    fn branch_cond(&mut self, cond: Value) -> Result<(Opcode, Arg, Arg), BackError> {
        if self.single_use(cond)
            && let Some(d) = self.def_of(cond)
            && let Op::Icmp(c) = d.op
            && d.args.len() == 2
            && self.ty(d.args[0]) == Type::I32
        {
            let (x, y) = (d.args[0], d.args[1]);
            let (opc, swap) = match c {
                Cond::Eq => (Opcode::Beq, false),
                Cond::Ne => (Opcode::Bne, false),
                Cond::Lt => (Opcode::Blt, false),
                Cond::Ge => (Opcode::Bge, false),
                Cond::Gt => (Opcode::Blt, true),
                Cond::Le => (Opcode::Bge, true),
                Cond::Ltu => (Opcode::Bltu, false),
                Cond::Geu => (Opcode::Bgeu, false),
                Cond::Gtu => (Opcode::Bltu, true),
                Cond::Leu => (Opcode::Bgeu, true),
            };
            let (a, b) = if swap { (y, x) } else { (x, y) };
            return Ok((opc, self.arg(a)?, self.arg(b)?));
        }
        Ok((Opcode::Bne, self.arg(cond)?, Arg::Zero))
    }
}

/// Removes instructions that neither store nor fault and whose results nothing
/// reads (constants, broadcasts and products folded into their uses).
pub fn dce(mf: &mut MFunc) {
    loop {
        let mut uses = vec![0u32; mf.classes.len()];
        for b in &mf.blocks {
            for i in &b.insts {
                for u in i.uses_defs().0 {
                    uses[u.0 as usize] += 1;
                }
            }
            for u in b.term.uses() {
                uses[u.0 as usize] += 1;
            }
        }
        let mut changed = false;
        for b in &mut mf.blocks {
            b.insts.retain_mut(|i| {
                if let MInst::Copy(moves) = i {
                    // Drop the moves into registers nothing reads.
                    let before = moves.len();
                    moves.retain(|(d, _)| match d {
                        Arg::Reg(r) => uses[r.0 as usize] > 0,
                        Arg::Part(r, _) => uses[r.0 as usize] > 0,
                        _ => true,
                    });
                    changed |= moves.len() != before;
                    if moves.is_empty() {
                        return false;
                    }
                }
                if !i.is_pure() {
                    return true;
                }
                let (u, d) = i.uses_defs();
                let dead = !d.is_empty()
                    && d.iter().all(|r| {
                        let own = u.iter().filter(|x| *x == r).count() as u32;
                        uses[r.0 as usize] <= own
                    });
                changed |= dead;
                !dead
            });
        }
        if !changed {
            break;
        }
    }
}
