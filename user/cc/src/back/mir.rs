//! The machine IR: SG1 instructions over virtual registers.
//!
//! An [`MInst::Op`] is one SG1 instruction: a [`sagrada_isa::Opcode`] and one [`Arg`]
//! per operand of `Opcode::operands()`, in that order. Which operands are read and which
//! written comes from the table (`OperandInfo::is_written`), never from a list of our
//! own; the only extra fact instruction selection adds is `tied`, for destinations the
//! instruction also reads (accumulators such as `vmads`, lanes a guard leaves alone,
//! `vins`). Besides the instructions there are two pseudo-instructions: a parallel
//! [`MInst::Copy`] (block parameters, `Int4` tuples, ties) and [`MInst::Def`], which
//! only starts a register's life. Blocks end in a [`Term`].
//!
//! Liveness is computed here; allocation and emission are elsewhere. Left out: any
//! instruction scheduling (the SG1 defines no latencies).

use crate::fxhash::HashMap;

use sagrada_isa::{Field, Opcode, OperandKind};

/// A register class.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Class {
    /// A scalar register, `s1..s31`.
    S,
    /// A vector register, `v0..v31`.
    V,
    /// A predicate register, `p1..p7`.
    P,
    /// Four consecutive scalar registers `sN..sN+3`, `N` in `1..=28` (an `Int4`).
    Q,
}

/// A virtual register.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct VReg(pub u32);

/// One operand.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Arg {
    /// A virtual register.
    Reg(VReg),
    /// Component `k` of a [`Class::Q`] register, as one scalar register.
    Part(VReg, u8),
    /// A physical register that is never allocated: `s0` (zero) or `p0` (all lanes),
    /// by the operand's kind.
    Zero,
    /// An immediate-field value (integer, bits, lane, dimension).
    Imm(u32),
    /// A tensor slot.
    Slot(u8),
}

impl Arg {
    /// The virtual register it names, if any.
    pub fn vreg(self) -> Option<VReg> {
        match self {
            Arg::Reg(r) | Arg::Part(r, _) => Some(r),
            _ => None,
        }
    }
}

/// A guard: the lanes an instruction acts on.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct MGuard {
    /// A [`Class::P`] register or [`Arg::Zero`] (`p0`).
    pub pred: Arg,
    /// Act where the predicate is clear.
    pub negate: bool,
}

/// A machine instruction.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum MInst {
    /// One SG1 instruction.
    Op {
        /// Which.
        opc: Opcode,
        /// One per operand of `opc.operands()`.
        args: Vec<Arg>,
        /// Its guard, for predicable instructions.
        guard: Option<MGuard>,
        /// The written operand is also read (its old contents survive in part).
        tied: bool,
    },
    /// A parallel copy: every source is read before any destination is written.
    /// `(destination, source)`; sources may be [`Arg::Imm`] (scalars) or
    /// [`Arg::Zero`].
    Copy(Vec<(Arg, Arg)>),
    /// Starts the life of a register whose parts are written one by one next.
    Def(VReg),
}

/// How a block ends.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Term {
    /// Go to the block.
    Jump(usize),
    /// A compare-and-branch (`beq`, `bne`, `blt`, `bge`, `bltu`, `bgeu`) to `then`,
    /// else to `other`.
    Branch {
        opc: Opcode,
        a: Arg,
        b: Arg,
        then: usize,
        other: usize,
    },
    /// End the invocation.
    Halt,
}

impl Term {
    /// The blocks it can go to.
    pub fn succs(&self) -> Vec<usize> {
        match *self {
            Term::Jump(t) => vec![t],
            Term::Branch { then, other, .. } => vec![then, other],
            Term::Halt => Vec::new(),
        }
    }
}

/// A block.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct MBlock {
    /// Its instructions.
    pub insts: Vec<MInst>,
    /// Its end.
    pub term: Term,
}

/// A function in machine IR.
#[derive(Clone, Debug)]
pub struct MFunc {
    /// Blocks; the entry is `entry`.
    pub blocks: Vec<MBlock>,
    /// The class of every virtual register.
    pub classes: Vec<Class>,
    /// Where invocations start.
    pub entry: usize,
}

/// How an instruction touches one of its operands.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Access {
    /// The register's old contents are read.
    pub read: bool,
    /// The register is written.
    pub write: bool,
}

/// Whether an operand kind is a register the allocator places.
pub fn is_reg_kind(kind: OperandKind) -> bool {
    kind.field() == Field::Slot && kind != OperandKind::TReg
}

impl MInst {
    /// Calls `visit` on every operand naming a virtual register with how the
    /// instruction accesses it. A written [`Arg::Part`] also reads its register: the
    /// other three components survive; a [`MInst::Copy`] that writes all four parts of
    /// one register defines it anew.
    pub fn for_each_reg(&mut self, mut visit: impl FnMut(&mut Arg, Access)) {
        match self {
            MInst::Op {
                opc,
                args,
                guard,
                tied,
            } => {
                for (arg, info) in args.iter_mut().zip(opc.operands()) {
                    if arg.vreg().is_none() || !is_reg_kind(info.kind) {
                        continue;
                    }
                    let write = info.is_written();
                    let read = !write || *tied || matches!(arg, Arg::Part(..));
                    visit(arg, Access { read, write });
                }
                if let Some(g) = guard
                    && g.pred.vreg().is_some()
                {
                    visit(
                        &mut g.pred,
                        Access {
                            read: true,
                            write: false,
                        },
                    );
                }
            }
            MInst::Copy(moves) => {
                let mut parts: HashMap<VReg, u8> = HashMap::default();
                for (d, _) in moves.iter() {
                    if let Arg::Part(r, k) = d {
                        *parts.entry(*r).or_default() |= 1 << k;
                    }
                }
                for (d, s) in moves.iter_mut() {
                    if s.vreg().is_some() {
                        visit(
                            s,
                            Access {
                                read: true,
                                write: false,
                            },
                        );
                    }
                    let read = match d {
                        Arg::Part(r, _) => parts.get(r) != Some(&0xf),
                        _ => false,
                    };
                    if d.vreg().is_some() {
                        visit(d, Access { read, write: true });
                    }
                }
            }
            MInst::Def(r) => {
                let mut a = Arg::Reg(*r);
                visit(
                    &mut a,
                    Access {
                        read: false,
                        write: true,
                    },
                );
                if let Arg::Reg(n) = a {
                    *r = n;
                }
            }
        }
    }

    /// The registers it reads and those it writes.
    pub fn uses_defs(&self) -> (Vec<VReg>, Vec<VReg>) {
        let mut me = self.clone();
        let (mut uses, mut defs) = (Vec::new(), Vec::new());
        me.for_each_reg(|a, acc| {
            if let Some(r) = a.vreg() {
                if acc.read {
                    uses.push(r);
                }
                if acc.write {
                    defs.push(r);
                }
            }
        });
        (uses, defs)
    }

    /// Whether removing it when nothing reads what it writes changes nothing: it
    /// neither stores nor can fault.
    pub fn is_pure(&self) -> bool {
        match self {
            MInst::Op { opc, .. } => !matches!(
                opc,
                Opcode::Sts
                    | Opcode::Stv
                    | Opcode::SttB32
                    | Opcode::SttB16
                    | Opcode::SttsB32
                    | Opcode::Lds
                    | Opcode::Ldv
                    | Opcode::LdtB32
                    | Opcode::LdtB16
                    | Opcode::LdtsB32
                    | Opcode::Div
                    | Opcode::Divu
                    | Opcode::Rem
                    | Opcode::Remu
                    | Opcode::Ldarg
                    | Opcode::Tdim
            ),
            MInst::Copy(_) | MInst::Def(_) => true,
        }
    }
}

impl Term {
    /// The registers it reads.
    pub fn uses(&self) -> Vec<VReg> {
        match self {
            Term::Branch { a, b, .. } => [a, b].iter().filter_map(|a| a.vreg()).collect(),
            _ => Vec::new(),
        }
    }

    /// Calls `visit` on its register operands.
    pub fn for_each_reg(&mut self, mut visit: impl FnMut(&mut Arg)) {
        if let Term::Branch { a, b, .. } = self {
            for x in [a, b] {
                if x.vreg().is_some() {
                    visit(x);
                }
            }
        }
    }
}

/// A set of virtual registers.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RegSet(Vec<u64>);

impl RegSet {
    /// An empty set for `n` registers.
    pub fn new(n: usize) -> RegSet {
        RegSet(vec![0; n.div_ceil(64)])
    }

    /// Adds `r`; whether it was new.
    pub fn insert(&mut self, r: VReg) -> bool {
        let (w, b) = (r.0 as usize / 64, r.0 % 64);
        let new = self.0[w] & (1 << b) == 0;
        self.0[w] |= 1 << b;
        new
    }

    /// Removes `r`.
    pub fn remove(&mut self, r: VReg) {
        self.0[r.0 as usize / 64] &= !(1 << (r.0 % 64));
    }

    /// Whether `r` is in.
    pub fn contains(&self, r: VReg) -> bool {
        self.0[r.0 as usize / 64] & (1 << (r.0 % 64)) != 0
    }

    /// Adds every member of `o`; whether anything was new.
    pub fn union(&mut self, o: &RegSet) -> bool {
        let mut changed = false;
        for (a, b) in self.0.iter_mut().zip(&o.0) {
            changed |= *b & !*a != 0;
            *a |= b;
        }
        changed
    }

    /// The members, in order.
    pub fn iter(&self) -> impl Iterator<Item = VReg> + '_ {
        self.0.iter().enumerate().flat_map(|(w, &bits)| {
            (0..64)
                .filter(move |b| bits & (1 << b) != 0)
                .map(move |b| VReg((w * 64 + b) as u32))
        })
    }
}

impl MFunc {
    /// A new virtual register of class `c`.
    pub fn new_reg(&mut self, c: Class) -> VReg {
        self.classes.push(c);
        VReg(self.classes.len() as u32 - 1)
    }

    /// The class of `r`.
    pub fn class(&self, r: VReg) -> Class {
        self.classes[r.0 as usize]
    }

    /// The blocks reachable from the entry, in reverse post-order.
    pub fn rpo(&self) -> Vec<usize> {
        let mut seen = vec![false; self.blocks.len()];
        let mut post = Vec::new();
        let mut stack = vec![(self.entry, 0usize)];
        seen[self.entry] = true;
        while let Some(&mut (b, ref mut next)) = stack.last_mut() {
            let succs = self.blocks[b].term.succs();
            if let Some(&s) = succs.get(*next) {
                *next += 1;
                if !seen[s] {
                    seen[s] = true;
                    stack.push((s, 0));
                }
            } else {
                post.push(b);
                stack.pop();
            }
        }
        post.reverse();
        post
    }

    /// The registers live into each block (indexed by block; unreachable blocks have
    /// empty sets).
    pub fn live_in(&self) -> Vec<RegSet> {
        let n = self.classes.len();
        let order = self.rpo();
        // Per block: registers read before written (gen) and written (kill).
        let mut gen_ = vec![RegSet::new(n); self.blocks.len()];
        let mut kill = vec![RegSet::new(n); self.blocks.len()];
        for &b in &order {
            let blk = &self.blocks[b];
            let (g, k) = (&mut gen_[b], &mut kill[b]);
            for i in &blk.insts {
                let (uses, defs) = i.uses_defs();
                for u in uses {
                    if !k.contains(u) {
                        g.insert(u);
                    }
                }
                for d in defs {
                    k.insert(d);
                }
            }
            for u in blk.term.uses() {
                if !k.contains(u) {
                    g.insert(u);
                }
            }
        }
        let mut live_in = vec![RegSet::new(n); self.blocks.len()];
        let mut changed = true;
        while changed {
            changed = false;
            for &b in order.iter().rev() {
                let mut out = RegSet::new(n);
                for s in self.blocks[b].term.succs() {
                    out.union(&live_in[s]);
                }
                for (w, (g, k)) in out.0.iter_mut().zip(gen_[b].0.iter().zip(&kill[b].0)) {
                    *w = (*w & !k) | g;
                }
                if out != live_in[b] {
                    live_in[b] = out;
                    changed = true;
                }
            }
        }
        live_in
    }

    /// The registers live out of block `b`.
    pub fn live_out(&self, b: usize, live_in: &[RegSet]) -> RegSet {
        let mut out = RegSet::new(self.classes.len());
        for s in self.blocks[b].term.succs() {
            out.union(&live_in[s]);
        }
        out
    }
}
