//! The reference semantics of SGC: an interpreter of the checked program (the HIR),
//! straight from `docs/language.md`, sharing nothing with `lower`.
//!
//! It exists so that the compiler as a whole (lowering included) can be tested against
//! the language rather than against itself: the differential test runs a program here,
//! through `ir::interp` on its lowered IR, and on the SG1 at each optimisation level,
//! and all must agree. So everything the language defines is interpreted here from the
//! tree: control flow, scoping (by the checker's variable ids), calls (a fresh binding
//! of the callee's parameters; no recursion means no two activations of one function
//! overlap, so a flat store of variables is enough), `unroll`, `where` masking,
//! assignments to places, short-circuit evaluation, register and scratchpad arrays,
//! tensor and scratchpad addressing and their faults, `int4`, and the unsigned
//! conversions. Only the arithmetic of an operation the checker has already chosen
//! (an [`ir::Op`] of an [`ExprKind::Op`]) is [`ir::interp::lanewise`]'s, so that one
//! SG1 arithmetic is not written twice; `lanes`, masks, reductions, packing and lane
//! movement are written here from the language and ISA manuals.
//!
//! A launch is as on the SG1: the points of the index space divided among `cores`
//! cores as [`partition`] divides them, each core with its own scratchpad, zero at the
//! start of the launch and kept across the invocations that core runs; the cores run
//! one after the other. Memory is the ISA's [`GlobalMemory`] and tensors its
//! [`TensorDesc`]s; a fault is the ISA's [`FaultKind`] (checked in the ISA's order),
//! raised where it happens, with the span of the source that raised it.
//!
//! Unspecified values are poisoned so that a difference shows if one leaks: inside a
//! `where`, every vector or mask an operation computes (a load, an arithmetic
//! operation, a constant, the zero of a declaration) has its inactive lanes set to
//! [`POISON_LANE`] / [`POISON_MASK`] bits. An assignment to a vector or mask variable
//! declared outside the `where` keeps the variable's inactive lanes, as the language
//! says; one declared inside it is replaced whole.
//!
//! Left out: time, registers, spills (so an out-of-array scratchpad index that stays
//! inside the scratchpad is not detected, as the language allows, but its effect on
//! the compiler's spill slots is not modelled), and the optimiser's licence to drop a
//! faulting operation whose result is unused: here every operation the program
//! reaches runs. A step limit (one step per statement and per expression node)
//! stops runaway loops.

use sagrada_isa::exec::float;
use sagrada_isa::exec::{FaultKind, GlobalMemory, Launch, partition, point_of};
use sagrada_isa::{LANES, SCRATCH_BYTES};

use super::Program;
use super::ast::Elem;
use super::hir::{
    Expr, ExprKind, FnId, Place, PlaceRoot, PlaceSub, Stmt, StmtKind, Ty, VarId, VarKind,
};
use crate::ir::Op;
use crate::ir::interp::{HostTensor, POISON_LANE, POISON_MASK, Val, lanewise};
use crate::ir::interp::{red_add_f32, red_ext_f32, red_i32};
use crate::span::Span;

/// Why a run stopped before every invocation ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InterpError {
    /// The ISA's fault, raised by the source at `span`.
    #[error("fault at bytes {}..{} of the source (point {point:?}, core {core}): {kind}", span.start, span.end)]
    Fault {
        /// What was wrong.
        kind: FaultKind,
        /// The statement or expression that faulted.
        span: Span,
        /// The invocation's point.
        point: [u32; 4],
        /// Its core.
        core: u32,
    },
    /// More than the step limit of statements and expressions ran.
    #[error("the run took more than {0} steps")]
    StepLimit(u64),
    /// The tree has a form the checker never produces (a bug in the checker, or a
    /// program built by hand).
    #[error("malformed checked program: {0}")]
    Malformed(String),
}

/// What a run did.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Stats {
    /// Statements and expressions evaluated.
    pub steps: u64,
    /// Invocations run to their end.
    pub invocations: u64,
}

/// What a variable holds during an invocation.
// The slots are one Vec for the launch; boxing the values would cost an allocation per
// assignment for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
enum Slot {
    /// Not declared yet this invocation.
    Unset,
    /// A value, declared inside `depth` `where`s.
    Value { val: Val, depth: u32 },
    /// A register array's elements, declared inside `depth` `where`s.
    Array { elems: Vec<Val>, depth: u32 },
    /// A tensor (a kernel parameter, or a function's parameter bound to one): its slot.
    Tensor(u8),
    /// An `unroll` counter in the current copy.
    Counter(i32),
}

/// How a statement ended.
// Returned by value up a few frames; a box would cost an allocation per `return`.
#[allow(clippy::large_enum_variant)]
enum Flow {
    Next,
    Break,
    Continue,
    Return(Option<Val>),
}

/// The part of a place an assignment writes.
enum Root {
    /// A variable, or element `k` of a register array.
    Var(VarId, Option<usize>),
    /// A scratchpad element at this 32-bit address.
    Local { addr: u32, vector: bool },
    /// A tensor element.
    Tensor { slot: u8, c: [u32; 4] },
}

enum Sub {
    Component(usize),
    Lane(usize),
}

fn malformed<T>(msg: impl Into<String>) -> Result<T, InterpError> {
    Err(InterpError::Malformed(msg.into()))
}

/// The zero of a type: what a variable starts as.
fn zero(ty: Ty) -> Val {
    match ty {
        Ty::VF32 | Ty::VI32 | Ty::VBF16 => Val::V([0; LANES]),
        Ty::Mask => Val::M(0),
        Ty::Int4 => Val::C([0; 4]),
        _ => Val::S(0),
    }
}

/// The lanes set in `m`, lowest first.
fn lanes_of(m: u64) -> impl Iterator<Item = usize> {
    (0..LANES).filter(move |&j| m >> j & 1 != 0)
}

/// `new` in the lanes of `m`, `old` in the others.
fn merge(old: Val, new: Val, m: u64) -> Val {
    match (old, new) {
        (Val::V(o), Val::V(n)) => Val::V(std::array::from_fn(|j| {
            if m >> j & 1 != 0 { n[j] } else { o[j] }
        })),
        (Val::M(o), Val::M(n)) => Val::M((n & m) | (o & !m)),
        (_, n) => n,
    }
}

/// Whether `e` reads the value of the place being assigned (a compound assignment).
fn reads_place(e: &Expr) -> bool {
    let mut stack = vec![e];
    while let Some(e) = stack.pop() {
        match &e.kind {
            ExprKind::PlaceValue => return true,
            ExprKind::Op(_, args) | ExprKind::Call(_, args) => stack.extend(args),
            ExprKind::LogAnd(a, b)
            | ExprKind::LogOr(a, b)
            | ExprKind::UMinMax(_, a, b)
            | ExprKind::Lane(a, b)
            | ExprKind::Store(_, a, b) => stack.extend([&**a, &**b]),
            ExprKind::Cond(a, b, c) => stack.extend([&**a, &**b, &**c]),
            ExprKind::U32ToF32(a)
            | ExprKind::F32ToU32(a)
            | ExprKind::LocalElem(_, a)
            | ExprKind::TensorElem(_, a)
            | ExprKind::Load(_, a)
            | ExprKind::Component(a, _) => stack.push(a),
            _ => {}
        }
    }
    false
}

struct Machine<'a, 'l> {
    p: &'a Program,
    launch: &'a Launch<'l>,
    memory: &'a mut dyn GlobalMemory,
    limit: u64,
    stats: Stats,
    slots: Vec<Slot>,
    scratch: Vec<u8>,
    core: u32,
    point: [u32; 4],
    /// The lanes the enclosing `where`s leave active.
    mask: u64,
    /// How many `where`s enclose the code running (through calls).
    depth: u32,
    /// The place's value before a compound assignment.
    place: Option<Val>,
}

/// Runs every invocation of `launch` on `cores` cores (at least one), stopping at the
/// first fault, or when more than `limit` steps have run.
pub fn run(
    p: &Program,
    launch: &Launch<'_>,
    cores: u32,
    memory: &mut dyn GlobalMemory,
    limit: u64,
) -> Result<Stats, InterpError> {
    let cores = cores.max(1);
    let mut m = Machine {
        p,
        launch,
        memory,
        limit,
        stats: Stats::default(),
        slots: vec![Slot::Unset; p.vars.len()],
        scratch: vec![0; SCRATCH_BYTES],
        core: 0,
        point: [0; 4],
        mask: u64::MAX,
        depth: 0,
        place: None,
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

/// Runs `p` over the index space `dims` on `cores` cores with `tensors` and `scalars`,
/// laid out in memory as [`ir::interp::run_tensors`](crate::ir::interp::run_tensors)
/// lays them out (so that a fault names the same addresses); gives the tensors'
/// contents after the run, or the error that stopped it.
pub fn run_tensors(
    p: &Program,
    dims: [u32; 4],
    cores: u32,
    tensors: &[HostTensor],
    scalars: &[u32],
    limit: u64,
) -> Result<(Vec<HostTensor>, Stats), InterpError> {
    crate::ir::interp::with_host_tensors(dims, tensors, scalars, |launch, mem| {
        run(p, launch, cores, mem, limit)
    })
}

impl Machine<'_, '_> {
    fn fault<T>(&self, kind: FaultKind, span: Span) -> Result<T, InterpError> {
        Err(InterpError::Fault {
            kind,
            span,
            point: self.point,
            core: self.core,
        })
    }

    fn step(&mut self) -> Result<(), InterpError> {
        if self.stats.steps >= self.limit {
            return Err(InterpError::StepLimit(self.limit));
        }
        self.stats.steps += 1;
        Ok(())
    }

    /// `v` as computed under the current `where`: its inactive lanes unspecified.
    fn made(&self, v: Val) -> Val {
        if self.mask == u64::MAX {
            return v;
        }
        match v {
            Val::V(x) => Val::V(std::array::from_fn(|j| {
                if self.mask >> j & 1 != 0 {
                    x[j]
                } else {
                    POISON_LANE
                }
            })),
            Val::M(b) => Val::M((b & self.mask) | (POISON_MASK & !self.mask)),
            other => other,
        }
    }

    fn var_ty(&self, v: VarId) -> Ty {
        self.p.vars.get(v.0 as usize).map_or(Ty::Error, |x| x.ty)
    }

    fn set(&mut self, v: VarId, s: Slot) -> Result<(), InterpError> {
        match self.slots.get_mut(v.0 as usize) {
            Some(slot) => {
                *slot = s;
                Ok(())
            }
            None => malformed(format!("variable {} does not exist", v.0)),
        }
    }

    fn invocation(&mut self) -> Result<(), InterpError> {
        self.slots.iter_mut().for_each(|s| *s = Slot::Unset);
        self.mask = u64::MAX;
        self.depth = 0;
        self.place = None;
        let p = self.p;
        let (mut slot, mut arg) = (0usize, 0usize);
        for (v, kind) in &p.params {
            if kind.is_tensor() {
                let Ok(s) = u8::try_from(slot) else {
                    return malformed("more than 256 tensor parameters");
                };
                self.set(*v, Slot::Tensor(s))?;
                slot += 1;
            } else {
                let Some(&x) = self.launch.scalars.get(arg) else {
                    let index = i32::try_from(arg).unwrap_or(i32::MAX);
                    return self.fault(FaultKind::ArgRange { index }, p.kernel.span);
                };
                self.set(
                    *v,
                    Slot::Value {
                        val: Val::S(x),
                        depth: 0,
                    },
                )?;
                arg += 1;
            }
        }
        // A kernel's `return` ends the invocation; any other way out is its end too.
        self.block(&p.kernel.body)?;
        self.stats.invocations += 1;
        Ok(())
    }

    // ---- statements ----

    fn block(&mut self, ss: &[Stmt]) -> Result<Flow, InterpError> {
        for s in ss {
            match self.stmt(s)? {
                Flow::Next => {}
                other => return Ok(other),
            }
        }
        Ok(Flow::Next)
    }

    fn stmt(&mut self, s: &Stmt) -> Result<Flow, InterpError> {
        self.step()?;
        match &s.kind {
            StmtKind::Decl { var, init } => {
                let val = match init {
                    Some(e) => self.expr(e)?,
                    None => self.made(zero(self.var_ty(*var))),
                };
                let depth = self.depth;
                self.set(*var, Slot::Value { val, depth })?;
            }
            StmtKind::RegArray { var } => {
                let p = self.p;
                let Some(x) = p.vars.get(var.0 as usize) else {
                    return malformed(format!("variable {} does not exist", var.0));
                };
                let VarKind::RegArray { len } = x.kind else {
                    return malformed(format!("`{}` is not a register array", x.name));
                };
                let z = self.made(zero(x.ty));
                let depth = self.depth;
                self.set(
                    *var,
                    Slot::Array {
                        elems: vec![z; len as usize],
                        depth,
                    },
                )?;
            }
            StmtKind::Assign { place, value } => self.assign(place, value, s.span)?,
            StmtKind::Expr(e) => {
                self.expr(e)?;
            }
            StmtKind::If {
                cond,
                then,
                otherwise,
            } => {
                let c = self.scalar(cond)?;
                return self.block(if c != 0 { then } else { otherwise });
            }
            StmtKind::Loop { cond, body, step } => loop {
                if let Some(c) = cond
                    && self.scalar(c)? == 0
                {
                    break;
                }
                match self.block(body)? {
                    Flow::Break => break,
                    Flow::Return(v) => return Ok(Flow::Return(v)),
                    Flow::Next | Flow::Continue => {}
                }
                if let Flow::Return(v) = self.block(step)? {
                    return Ok(Flow::Return(v));
                }
            },
            StmtKind::Unroll { var, body } => {
                let p = self.p;
                let values = match p.vars.get(var.0 as usize).map(|x| &x.kind) {
                    Some(VarKind::Unroll { values }) => values,
                    _ => return malformed(format!("variable {} is not an unroll counter", var.0)),
                };
                for &k in values {
                    self.set(*var, Slot::Counter(k))?;
                    match self.block(body)? {
                        Flow::Break => break,
                        Flow::Return(v) => return Ok(Flow::Return(v)),
                        Flow::Next | Flow::Continue => {}
                    }
                }
            }
            StmtKind::Where {
                mask,
                then,
                otherwise,
            } => {
                let m = match self.expr(mask)? {
                    Val::M(m) => m,
                    _ => return malformed("the mask of `where` is not a mask"),
                };
                let outer = self.mask;
                self.depth += 1;
                self.mask = outer & m;
                let mut flow = self.block(then);
                if let (Ok(Flow::Next), Some(otherwise)) = (&flow, otherwise) {
                    self.mask = outer & !m;
                    flow = self.block(otherwise);
                }
                self.mask = outer;
                self.depth -= 1;
                return flow;
            }
            StmtKind::Break => return Ok(Flow::Break),
            StmtKind::Continue => return Ok(Flow::Continue),
            StmtKind::Return(e) => {
                let v = match e {
                    Some(e) => Some(self.expr(e)?),
                    None => None,
                };
                return Ok(Flow::Return(v));
            }
            StmtKind::Block(b) => return self.block(b),
        }
        Ok(Flow::Next)
    }

    fn assign(&mut self, place: &Place, value: &Expr, span: Span) -> Result<(), InterpError> {
        // Left to right: the place's indices, the place's value if the assignment
        // reads it (a compound assignment, or a part of the place), then the value.
        let vector = place.root_ty.is_vector();
        let root = match &place.root {
            PlaceRoot::Var(v) => Root::Var(*v, None),
            PlaceRoot::RegElem(v, k) => Root::Var(*v, Some(self.index(k)?)),
            PlaceRoot::LocalElem(v, i) => {
                let i = self.scalar(i)?;
                Root::Local {
                    addr: self.local_addr(*v, i)?,
                    vector,
                }
            }
            PlaceRoot::TensorElem(t, c) => {
                let c = self.coords(c)?;
                Root::Tensor {
                    slot: self.slot_of(*t)?,
                    c,
                }
            }
        };
        let sub = match &place.sub {
            None => None,
            Some(PlaceSub::Component(k)) => Some(Sub::Component(self.index(k)? & 3)),
            Some(PlaceSub::Lane(i)) => Some(Sub::Lane((self.scalar(i)? & 63) as usize)),
        };
        let old = if sub.is_some() || reads_place(value) {
            Some(self.read_root(&root, place.root_ty, span)?)
        } else {
            None
        };
        let current = match (&sub, old) {
            (None, old) => old,
            (Some(Sub::Component(k)), Some(Val::C(c))) => Some(Val::S(c[*k])),
            (Some(Sub::Lane(j)), Some(Val::V(x))) => Some(Val::S(x[*j])),
            _ => return malformed("a part of a place that is not an int4 or a vector"),
        };
        let saved = std::mem::replace(&mut self.place, current);
        let new = self.expr(value);
        self.place = saved;
        let new = new?;
        let whole = match (sub, old, new) {
            (None, _, new) => new,
            (Some(Sub::Component(k)), Some(Val::C(mut c)), Val::S(x)) => {
                c[k] = x;
                Val::C(c)
            }
            (Some(Sub::Lane(j)), Some(Val::V(mut v)), Val::S(x)) => {
                v[j] = x;
                Val::V(v)
            }
            _ => return malformed("an assignment of the wrong kind of value to a part"),
        };
        self.write_root(root, whole, span)
    }

    fn read_root(&mut self, root: &Root, ty: Ty, span: Span) -> Result<Val, InterpError> {
        match *root {
            Root::Var(v, None) => Ok(self.read_var(v, ty)),
            Root::Var(v, Some(k)) => Ok(self.read_elem(v, k, ty)),
            Root::Local { addr, vector } => self.scratch_load(addr, vector, span),
            Root::Tensor { slot, c } => self.tensor_scalar_load(slot, c, span),
        }
    }

    fn write_root(&mut self, root: Root, new: Val, span: Span) -> Result<(), InterpError> {
        let (mask, depth) = (self.mask, self.depth);
        match root {
            Root::Var(v, elem) => {
                let Some(slot) = self.slots.get_mut(v.0 as usize) else {
                    return malformed(format!("variable {} does not exist", v.0));
                };
                // A vector or mask declared outside the `where` keeps its inactive
                // lanes (for scalars `merge` is the new value).
                match (slot, elem) {
                    (Slot::Value { val, depth: d }, None) => {
                        *val = if *d < depth {
                            merge(*val, new, mask)
                        } else {
                            new
                        };
                    }
                    (Slot::Array { elems, depth: d }, Some(k)) => {
                        let d = *d;
                        let Some(e) = elems.get_mut(k) else {
                            return malformed("a register array index out of range");
                        };
                        *e = if d < depth { merge(*e, new, mask) } else { new };
                    }
                    (slot @ Slot::Unset, None) => {
                        *slot = Slot::Value { val: new, depth };
                    }
                    _ => return malformed("an assignment to a variable of another kind"),
                }
                Ok(())
            }
            Root::Local { addr, vector } => self.scratch_store(addr, vector, new, span),
            Root::Tensor { slot, c } => {
                let Val::S(x) = new else {
                    return malformed("a tensor element assigned a non-scalar");
                };
                let mut lanes = [0u32; LANES];
                lanes[0] = x;
                self.tensor_store(slot, c, 4, 1, 1, &lanes, span)
            }
        }
    }

    // ---- expressions ----

    fn scalar(&mut self, e: &Expr) -> Result<u32, InterpError> {
        match self.expr(e)? {
            Val::S(x) => Ok(x),
            _ => malformed("a scalar operand is not a scalar"),
        }
    }

    fn coords(&mut self, e: &Expr) -> Result<[u32; 4], InterpError> {
        match self.expr(e)? {
            Val::C(c) => Ok(c),
            _ => malformed("coordinates that are not an int4"),
        }
    }

    /// A compile-time index (constant once unrolled): evaluated like any expression,
    /// the unroll counters holding their copy's values.
    fn index(&mut self, e: &Expr) -> Result<usize, InterpError> {
        Ok(self.scalar(e)? as usize)
    }

    fn read_var(&self, v: VarId, ty: Ty) -> Val {
        match self.slots.get(v.0 as usize) {
            Some(Slot::Value { val, .. }) => *val,
            Some(Slot::Counter(k)) => Val::S(*k as u32),
            _ => zero(ty),
        }
    }

    fn read_elem(&self, v: VarId, k: usize, ty: Ty) -> Val {
        match self.slots.get(v.0 as usize) {
            Some(Slot::Array { elems, .. }) => elems.get(k).copied().unwrap_or(zero(ty)),
            _ => zero(ty),
        }
    }

    fn slot_of(&self, t: VarId) -> Result<u8, InterpError> {
        match self.slots.get(t.0 as usize) {
            Some(Slot::Tensor(s)) => Ok(*s),
            _ => malformed(format!("variable {} is not a bound tensor", t.0)),
        }
    }

    fn expr(&mut self, e: &Expr) -> Result<Val, InterpError> {
        self.step()?;
        let span = e.span;
        Ok(match &e.kind {
            ExprKind::Const(bits) => {
                if e.ty == Ty::Mask {
                    self.made(Val::M(u64::MAX))
                } else {
                    Val::S(*bits)
                }
            }
            ExprKind::Var(v) => self.read_var(*v, e.ty),
            ExprKind::RegElem(v, k) => {
                let k = self.index(k)?;
                self.read_elem(*v, k, e.ty)
            }
            ExprKind::LocalElem(v, i) => {
                let i = self.scalar(i)?;
                let addr = self.local_addr(*v, i)?;
                self.scratch_load(addr, e.ty.is_vector(), span)?
            }
            ExprKind::TensorElem(t, c) => {
                let c = self.coords(c)?;
                let slot = self.slot_of(*t)?;
                self.tensor_scalar_load(slot, c, span)?
            }
            ExprKind::Component(x, k) => {
                let x = self.expr(x)?;
                let k = self.index(k)? & 3;
                match x {
                    Val::C(c) => Val::S(c[k]),
                    _ => return malformed("a component of a non-int4"),
                }
            }
            ExprKind::Lane(x, i) => {
                let x = self.expr(x)?;
                let i = self.scalar(i)?;
                match x {
                    Val::V(v) => Val::S(v[(i & 63) as usize]),
                    _ => return malformed("a lane of a non-vector"),
                }
            }
            ExprKind::Op(op, args) => {
                let mut vals = Vec::with_capacity(args.len());
                for a in args {
                    vals.push(self.expr(a)?);
                }
                let float = args.first().is_some_and(|a| a.ty == Ty::VF32);
                self.op(*op, &vals, float, e.ty, span)?
            }
            ExprKind::LogAnd(a, b) => {
                if self.scalar(a)? == 0 {
                    Val::S(0)
                } else {
                    Val::S(u32::from(self.scalar(b)? != 0))
                }
            }
            ExprKind::LogOr(a, b) => {
                if self.scalar(a)? != 0 {
                    Val::S(1)
                } else {
                    Val::S(u32::from(self.scalar(b)? != 0))
                }
            }
            ExprKind::Cond(c, a, b) => {
                if self.scalar(c)? != 0 {
                    self.expr(a)?
                } else {
                    self.expr(b)?
                }
            }
            ExprKind::Launch { size, dim } => {
                let d = self.index(dim)? & 3;
                Val::S(if *size {
                    self.launch.dims[d]
                } else {
                    self.point[d]
                })
            }
            ExprKind::Dim(t, d) => {
                let d = self.index(d)? & 3;
                let slot = self.slot_of(*t)?;
                match self.launch.tensors.get(usize::from(slot)) {
                    Some(desc) => Val::S(desc.dims[d]),
                    None => return self.fault(FaultKind::TensorSlot { slot }, span),
                }
            }
            ExprKind::Load(t, c) => {
                let c = self.coords(c)?;
                let slot = self.slot_of(*t)?;
                let bf16 = self.var_ty(*t) == Ty::Tensor(Elem::Bf16);
                let (elem, per_lane) = if bf16 { (2, 2) } else { (4, 1) };
                let mask = self.mask;
                let lanes = self.tensor_load(slot, c, elem, per_lane, mask, span)?;
                self.made(Val::V(lanes))
            }
            ExprKind::Store(t, c, v) => {
                let c = self.coords(c)?;
                let v = self.expr(v)?;
                let slot = self.slot_of(*t)?;
                let bf16 = self.var_ty(*t) == Ty::Tensor(Elem::Bf16);
                let (elem, per_lane) = if bf16 { (2, 2) } else { (4, 1) };
                let Val::V(x) = v else {
                    return malformed("`store` of a non-vector");
                };
                let mask = self.mask;
                self.tensor_store(slot, c, elem, per_lane, mask, &x, span)?;
                Val::S(0)
            }
            // The language's conversions, exact (Rust's `as` rounds to nearest even,
            // and truncates and saturates with NaN giving 0).
            ExprKind::U32ToF32(x) => Val::S((self.scalar(x)? as f32).to_bits()),
            ExprKind::F32ToU32(x) => Val::S(f32::from_bits(self.scalar(x)?) as u32),
            ExprKind::UMinMax(max, a, b) => {
                let (a, b) = (self.scalar(a)?, self.scalar(b)?);
                Val::S(if *max { a.max(b) } else { a.min(b) })
            }
            ExprKind::Call(f, args) => self.call(*f, args, e.ty)?,
            ExprKind::PlaceValue => self.place.unwrap_or(zero(e.ty)),
        })
    }

    fn call(&mut self, f: FnId, args: &[Expr], ret: Ty) -> Result<Val, InterpError> {
        let p = self.p;
        let Some(fun) = p.fns.get(f.0 as usize) else {
            return malformed(format!("function {} does not exist", f.0));
        };
        // The arguments left to right, then the parameters bound: the callee's
        // variables are its own (no recursion, so no activation of it is live).
        let mut binds = Vec::with_capacity(args.len());
        for (param, a) in fun.params.iter().zip(args) {
            let slot = match (a.ty, &a.kind) {
                (Ty::Tensor(_), ExprKind::Var(t)) => Slot::Tensor(self.slot_of(*t)?),
                _ => Slot::Value {
                    val: self.expr(a)?,
                    depth: self.depth,
                },
            };
            binds.push((*param, slot));
        }
        for (param, slot) in binds {
            self.set(param, slot)?;
        }
        Ok(match self.block(&fun.body)? {
            Flow::Return(Some(v)) => v,
            _ => zero(ret),
        })
    }

    /// An operation the checker chose, on evaluated operands. `float` says whether
    /// the first operand is an `f32x64` (for the reductions).
    fn op(
        &mut self,
        op: Op,
        args: &[Val],
        float: bool,
        ty: Ty,
        span: Span,
    ) -> Result<Val, InterpError> {
        let bad =
            || InterpError::Malformed(format!("operation {op:?} on operands of the wrong kinds"));
        let v = |k: usize| match args.get(k) {
            Some(Val::V(x)) => Ok(*x),
            _ => Err(bad()),
        };
        let s = |k: usize| match args.get(k) {
            Some(Val::S(x)) => Ok(*x),
            _ => Err(bad()),
        };
        let mk = |k: usize| match args.get(k) {
            Some(Val::M(x)) => Ok(*x),
            _ => Err(bad()),
        };
        let out = match op {
            // `lanes(n)`: none if n <= 0, all from 64 on (n is an i32).
            Op::Lanes => {
                let n = s(0)? as i32;
                Val::M(if n <= 0 {
                    0
                } else if n >= 64 {
                    u64::MAX
                } else {
                    (1u64 << n) - 1
                })
            }
            Op::Iota => Val::V(std::array::from_fn(|j| j as u32)),
            Op::CoreId => Val::S(self.core),
            Op::Broadcast => Val::V([s(0)?; LANES]),
            Op::Bitcast => *args.first().ok_or_else(bad)?,
            Op::MakeInt4 => Val::C([s(0)?, s(1)?, s(2)?, s(3)?]),
            Op::MaskAnd => Val::M(mk(0)? & mk(1)?),
            Op::MaskOr => Val::M(mk(0)? | mk(1)?),
            Op::MaskXor => Val::M(mk(0)? ^ mk(1)?),
            Op::MaskNot => Val::M(!mk(0)?),
            Op::MaskCount => Val::S(mk(0)?.count_ones()),
            Op::Select if matches!(args.first(), Some(Val::M(_))) => {
                let (m, a, b) = (mk(0)?, v(1)?, v(2)?);
                Val::V(std::array::from_fn(|j| {
                    if m >> j & 1 != 0 { a[j] } else { b[j] }
                }))
            }
            // Reductions count only the active lanes.
            Op::RedAdd | Op::RedMax | Op::RedMin => {
                let (x, m) = (v(0)?, self.mask);
                Val::S(match (float, op) {
                    (true, Op::RedAdd) => red_add_f32(&x, m),
                    (true, op) => red_ext_f32(&x, m, op == Op::RedMax),
                    (false, op) => red_i32(&x, m, op),
                })
            }
            Op::Rotate => {
                let (x, k) = (v(0)?, s(1)?);
                Val::V(std::array::from_fn(|j| {
                    x[((j as u32).wrapping_add(k) & 63) as usize]
                }))
            }
            Op::Permute => {
                let (x, idx) = (v(0)?, v(1)?);
                Val::V(std::array::from_fn(|j| x[(idx[j] & 63) as usize]))
            }
            // bf16 element `e` is the low (even `e`) or high half of lane `e / 2`.
            Op::UnpackLo | Op::UnpackHi => {
                let x = v(0)?;
                let first = if op == Op::UnpackLo { 0 } else { LANES };
                Val::V(std::array::from_fn(|j| {
                    let e = first + j;
                    let half = (x[e / 2] >> (16 * (e % 2))) as u16;
                    float::bf16_to_f32(half).to_bits()
                }))
            }
            Op::Pack => {
                let (a, b) = (v(0)?, v(1)?);
                let element = |e: usize| {
                    let src = if e < LANES { a[e] } else { b[e - LANES] };
                    u32::from(float::f32_to_bf16(f32::from_bits(src)))
                };
                Val::V(std::array::from_fn(|j| {
                    element(2 * j) | element(2 * j + 1) << 16
                }))
            }
            Op::Div | Op::Divu | Op::Rem | Op::Remu => match lanewise(op, s(0)?, s(1)?, 0) {
                Some(x) => Val::S(x),
                None => return self.fault(FaultKind::DivideByZero, span),
            },
            op => {
                // The remaining operations act lane by lane: their arithmetic is the
                // SG1's, from `lanewise`; a vector compare gives a mask.
                let lane = |x: Option<&Val>, j: usize| match x {
                    Some(Val::S(s)) => Some(*s),
                    Some(Val::V(v)) => Some(v[j]),
                    None => Some(0),
                    _ => None,
                };
                match args.first() {
                    Some(Val::S(a)) => {
                        let b = lane(args.get(1), 0).ok_or_else(bad)?;
                        let c = lane(args.get(2), 0).ok_or_else(bad)?;
                        Val::S(lanewise(op, *a, b, c).ok_or_else(bad)?)
                    }
                    Some(Val::V(_)) => {
                        let mut out = [0u32; LANES];
                        for (j, o) in out.iter_mut().enumerate() {
                            let a = lane(args.first(), j).ok_or_else(bad)?;
                            let b = lane(args.get(1), j).ok_or_else(bad)?;
                            let c = lane(args.get(2), j).ok_or_else(bad)?;
                            *o = lanewise(op, a, b, c).ok_or_else(bad)?;
                        }
                        if ty == Ty::Mask {
                            Val::M(
                                out.iter()
                                    .enumerate()
                                    .fold(0, |m, (j, &x)| m | u64::from(x & 1) << j),
                            )
                        } else {
                            Val::V(out)
                        }
                    }
                    _ => return Err(bad()),
                }
            }
        };
        Ok(self.made(out))
    }

    // ---- the scratchpad ----

    /// The 32-bit scratchpad address of element `i` of a `local` array: the array's
    /// offset plus `i` times the element size, in the machine's wrapping arithmetic.
    fn local_addr(&self, v: VarId, i: u32) -> Result<u32, InterpError> {
        let Some(x) = self.p.vars.get(v.0 as usize) else {
            return malformed(format!("variable {} does not exist", v.0));
        };
        let VarKind::LocalArray { offset, .. } = x.kind else {
            return malformed(format!("`{}` is not a local array", x.name));
        };
        let size: u32 = if x.ty.is_vector() { 256 } else { 4 };
        Ok(offset.wrapping_add(i.wrapping_mul(size)))
    }

    /// The ISA's checks of the words at `addr + 4j` for the lanes `j` of `m`.
    fn scratch_check(&self, addr: u32, m: u64, span: Span) -> Result<(), InterpError> {
        let len = self.scratch.len() as i64;
        for j in lanes_of(m) {
            let at = i64::from(addr) + 4 * j as i64;
            if at & 3 != 0 {
                return self.fault(FaultKind::Misaligned { addr: at }, span);
            }
            if at < 0 || at + 4 > len {
                return self.fault(FaultKind::ScratchRange { addr: at }, span);
            }
        }
        Ok(())
    }

    fn word(&self, at: i64) -> u32 {
        let mut w = [0u8; 4];
        if let Some(b) = usize::try_from(at)
            .ok()
            .and_then(|a| self.scratch.get(a..a + 4))
        {
            w.copy_from_slice(b);
        }
        u32::from_le_bytes(w)
    }

    fn scratch_load(&mut self, addr: u32, vector: bool, span: Span) -> Result<Val, InterpError> {
        if !vector {
            self.scratch_check(addr, 1, span)?;
            return Ok(Val::S(self.word(i64::from(addr))));
        }
        let m = self.mask;
        self.scratch_check(addr, m, span)?;
        let mut out = [POISON_LANE; LANES];
        for j in lanes_of(m) {
            out[j] = self.word(i64::from(addr) + 4 * j as i64);
        }
        Ok(Val::V(out))
    }

    fn scratch_store(
        &mut self,
        addr: u32,
        vector: bool,
        x: Val,
        span: Span,
    ) -> Result<(), InterpError> {
        let (m, lanes) = match (vector, x) {
            (false, Val::S(s)) => (1, {
                let mut l = [0u32; LANES];
                l[0] = s;
                l
            }),
            (true, Val::V(v)) => (self.mask, v),
            _ => return malformed("a scratchpad element assigned a value of another kind"),
        };
        self.scratch_check(addr, m, span)?;
        for j in lanes_of(m) {
            let at = u64::from(addr) + 4 * j as u64;
            if let Some(b) = usize::try_from(at)
                .ok()
                .and_then(|a| self.scratch.get_mut(a..a + 4))
            {
                b.copy_from_slice(&lanes[j].to_le_bytes());
            }
        }
        Ok(())
    }

    // ---- tensors ----

    /// The ISA's tensor checks, in its order: the slot, the element size, then the
    /// first element of the lowest active lane (dimension 0, then the others), then
    /// dimension 0 of every active lane's elements. Gives the byte address of lane
    /// 0's first element and the bytes between elements along dimension 0.
    #[allow(clippy::too_many_arguments)]
    fn tensor_check(
        &self,
        slot: u8,
        c: [u32; 4],
        elem: u32,
        per_lane: u64,
        m: u64,
        span: Span,
    ) -> Result<(u128, u128), InterpError> {
        crate::ir::interp::tensor_access(self.launch, slot, elem, per_lane, c, m)
            .or_else(|kind| self.fault(kind, span))
    }

    /// The elements of the active lanes of `m` (the others poisoned).
    fn tensor_load(
        &mut self,
        slot: u8,
        c: [u32; 4],
        elem: u32,
        per_lane: u64,
        m: u64,
        span: Span,
    ) -> Result<[u32; LANES], InterpError> {
        let (first, step) = self.tensor_check(slot, c, elem, per_lane, m, span)?;
        let mut out = [POISON_LANE; LANES];
        for j in lanes_of(m) {
            let mut word = [0u8; 4];
            for (e, bytes) in word.chunks_exact_mut(elem as usize).enumerate() {
                let at = first + step * u128::from(per_lane * j as u64 + e as u64);
                let res = match u64::try_from(at) {
                    Ok(va) => self.memory.read(va, bytes).map_err(|f| f.va),
                    Err(_) => Err(u64::MAX),
                };
                if let Err(va) = res {
                    return self.fault(FaultKind::Mmu { va, write: false }, span);
                }
            }
            out[j] = u32::from_le_bytes(word);
        }
        Ok(out)
    }

    fn tensor_scalar_load(
        &mut self,
        slot: u8,
        c: [u32; 4],
        span: Span,
    ) -> Result<Val, InterpError> {
        let lanes = self.tensor_load(slot, c, 4, 1, 1, span)?;
        Ok(Val::S(lanes[0]))
    }

    #[allow(clippy::too_many_arguments)]
    fn tensor_store(
        &mut self,
        slot: u8,
        c: [u32; 4],
        elem: u32,
        per_lane: u64,
        m: u64,
        x: &[u32; LANES],
        span: Span,
    ) -> Result<(), InterpError> {
        let (first, step) = self.tensor_check(slot, c, elem, per_lane, m, span)?;
        for j in lanes_of(m) {
            let word = x[j].to_le_bytes();
            for (e, bytes) in word.chunks_exact(elem as usize).enumerate() {
                let at = first + step * u128::from(per_lane * j as u64 + e as u64);
                let res = match u64::try_from(at) {
                    Ok(va) => self.memory.write(va, bytes).map_err(|f| f.va),
                    Err(_) => Err(u64::MAX),
                };
                if let Err(va) = res {
                    return self.fault(FaultKind::Mmu { va, write: true }, span);
                }
            }
        }
        Ok(())
    }
}
