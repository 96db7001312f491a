//! Lowering a checked program to the IR.
//!
//! - SSA construction keeps, for every variable in scope (each register-array element
//!   is a variable of its own), its current SSA value. Every join point of statements
//!   (after an `if`, a loop's header, `continue` target and exit) gets one block
//!   parameter per variable in scope, and every jump there passes the current values:
//!   simple and correct rather than minimal; the optimiser removes the parameters
//!   that only ever receive one value. Expressions cannot assign variables, so the
//!   joins inside expressions (`&&`, `||`, `?:`, inlined calls) carry only their
//!   result.
//! - `&&`, `||` and `?:` always branch (they evaluate only the side they need, which
//!   may fault or store through an inlined call); the optimiser may turn pure ones
//!   into selects.
//! - Kernel parameters: tensors become slots in order, scalars `Op::Arg(i)` read once
//!   at entry. Functions are inlined at each call; `return` jumps to a continuation
//!   block whose parameter is the result.
//! - `unroll for` is unrolled completely, the counter a constant in each copy; a copy
//!   gets its own continuation block only if it uses `continue`, so the unrolled body
//!   stays one basic block.
//! - `local` arrays: element address `base + index * size` with `Mul`/`Add` (left for
//!   strength reduction), accessed by `LoadScratch{offset: 0}` and friends.
//! - `where`: the active mask is the `MaskAnd` of the nested masks (`MaskNot` for the
//!   `else` part). Inside it every guardable operation with a vector or mask result,
//!   every vector load and store and every reduction is guarded; an assignment to a
//!   vector or mask variable declared outside becomes a guarded `Copy` whose passthru
//!   is the old value. Scalar code is unguarded.
//! - Scalar `f32(u32)` is expanded exactly: `f32(u >> 16) * 65536 + f32(u & 0xffff)`
//!   (both parts exact, one rounding in the add). Scalar `u32(f32)` selects between
//!   `max(i32(f), 0)` and `i32(f - 2^31) + 2^31`; scalar unsigned `min`/`max` compare
//!   with `Icmp(Ltu)` and select.
//!
//! It does not check anything: the front end has (every register-array index is in
//! range in every copy, no call is recursive, the expansion is bounded); where a
//! broken invariant could still show, it falls back to a zero value instead of
//! panicking.

use crate::fxhash::HashMap;

use crate::front::Program;
use crate::front::eval::eval;
use crate::front::hir::{
    Expr, ExprKind, Place, PlaceRoot, PlaceSub, Stmt, StmtKind, Ty, VarId, VarKind,
};
use crate::ir::{Block, Cond, Function, Guard, Op, Param, Target, Terminator, Type, Value};
use crate::span::Span;

/// The IR of `p`'s kernel.
pub fn lower(p: &Program) -> Function {
    let params = p
        .params
        .iter()
        .map(|(v, kind)| Param {
            name: p
                .vars
                .get(v.0 as usize)
                .map_or_else(String::new, |x| x.name.clone()),
            kind: *kind,
        })
        .collect();
    let mut l = Lower {
        p,
        f: Function::new(p.kernel.name.clone(), params),
        cur: None,
        env: Vec::new(),
        masks: Vec::new(),
        loops: Vec::new(),
        conts: Vec::new(),
        tensors: HashMap::default(),
        unroll: HashMap::default(),
        place_cur: None,
        preds: HashMap::default(),
    };
    l.f.scratch_bytes = p.scratch_bytes;
    l.cur = Some(l.f.entry);
    let (mut slot, mut arg) = (0u32, 0u32);
    for (v, kind) in &p.params {
        if kind.is_tensor() {
            l.tensors.insert(*v, slot.min(255) as u8);
            slot += 1;
        } else {
            let ty = p.vars.get(v.0 as usize).map_or(Ty::I32, |x| x.ty);
            let span = p
                .vars
                .get(v.0 as usize)
                .map_or_else(Span::default, |x| x.span);
            let val = l.emit(Op::Arg(arg), vec![], ty.ir(), span);
            l.push(*v, 0, val);
            arg += 1;
        }
    }
    l.stmts(&p.kernel.body);
    let mut f = l.f;
    drop_unreachable(&mut f);
    f
}

/// Empties the blocks the entry cannot reach. Lowering makes some (a join nothing jumps
/// to, the code after a `return` in an inlined function), and their instructions may
/// use values whose definitions do not dominate them, which the IR's rules forbid.
fn drop_unreachable(f: &mut Function) {
    let mut live = vec![false; f.blocks.len()];
    for b in f.reverse_postorder() {
        live[b.0 as usize] = true;
    }
    for (b, data) in f.blocks.iter_mut().enumerate() {
        if !live[b] {
            data.insts.clear();
            data.params.clear();
            data.term = crate::ir::Terminator::Halt;
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    key: (VarId, u32),
    val: Value,
    /// How many `where`s enclose its declaration.
    depth: usize,
}

#[derive(Debug)]
struct LoopCtx {
    brk: Option<Block>,
    cont: Option<Block>,
    /// The variables in scope at the loop (what its joins carry).
    base: usize,
}

#[derive(Debug)]
struct Lower<'a> {
    p: &'a Program,
    f: Function,
    /// The block being filled; `None` after a jump (the code that follows is dead).
    cur: Option<Block>,
    env: Vec<Slot>,
    /// The active mask of each enclosing `where`.
    masks: Vec<Value>,
    loops: Vec<LoopCtx>,
    /// The continuation block of each function being inlined.
    conts: Vec<Block>,
    tensors: HashMap<VarId, u8>,
    unroll: HashMap<VarId, i32>,
    place_cur: Option<Value>,
    preds: HashMap<Block, u32>,
}

impl Lower<'_> {
    /// The current block (a fresh, unreachable one after a jump).
    fn blk(&mut self) -> Block {
        match self.cur {
            Some(b) => b,
            None => {
                let b = self.f.add_block();
                self.cur = Some(b);
                b
            }
        }
    }

    fn guard_for(&self, op: Op, ty: Option<Type>) -> Option<Guard> {
        let mask = *self.masks.last()?;
        crate::ir::verify::guard_allowed(op, ty).then_some(Guard {
            mask,
            negated: false,
        })
    }

    /// Appends `op` (guarded as `where` requires) and returns its result.
    fn emit(&mut self, op: Op, args: Vec<Value>, ty: Type, span: Span) -> Value {
        let b = self.blk();
        let guard = self.guard_for(op, Some(ty));
        self.f
            .append_guarded(b, op, args, Some(ty), guard, None, span)
            .unwrap_or(Value(0))
    }

    /// Appends a store.
    fn emit_store(&mut self, op: Op, args: Vec<Value>, span: Span) {
        let b = self.blk();
        let guard = self.guard_for(op, None);
        self.f.append_guarded(b, op, args, None, guard, None, span);
    }

    fn konst(&mut self, bits: u32, ty: Type, span: Span) -> Value {
        self.emit(Op::Const(bits), vec![], ty, span)
    }

    fn zero(&mut self, ty: Ty, span: Span) -> Value {
        match ty.ir() {
            t @ (Type::I32 | Type::F32) => self.konst(0, t, span),
            t @ (Type::VF32 | Type::VI32) => {
                let lane = t.lane().unwrap_or(Type::I32);
                let z = self.konst(0, lane, span);
                self.emit(Op::Broadcast, vec![z], t, span)
            }
            Type::VBF16 => {
                let z = self.zero(Ty::VI32, span);
                self.emit(Op::Bitcast, vec![z], Type::VBF16, span)
            }
            Type::Mask => {
                let z = self.konst(0, Type::I32, span);
                self.emit(Op::Lanes, vec![z], Type::Mask, span)
            }
            Type::Int4 => {
                let z = self.konst(0, Type::I32, span);
                self.emit(Op::MakeInt4, vec![z, z, z, z], Type::Int4, span)
            }
        }
    }

    fn push(&mut self, var: VarId, elem: u32, val: Value) {
        self.env.push(Slot {
            key: (var, elem),
            val,
            depth: self.masks.len(),
        });
    }

    fn find(&self, key: (VarId, u32)) -> Option<usize> {
        self.env.iter().rposition(|s| s.key == key)
    }

    fn read(&mut self, key: (VarId, u32), span: Span) -> Value {
        match self.find(key).and_then(|i| self.env.get(i)) {
            Some(s) => s.val,
            None => {
                let ty = self.p.vars.get(key.0.0 as usize).map_or(Ty::I32, |v| v.ty);
                self.zero(ty, span)
            }
        }
    }

    fn index(&self, k: &Expr) -> u32 {
        eval(k, &|v| self.unroll.get(&v).copied()).unwrap_or(0)
    }

    fn vals(&self, base: usize) -> Vec<Value> {
        self.env.iter().take(base).map(|s| s.val).collect()
    }

    /// A join block with one parameter per variable of `env[..base]`.
    fn join(&mut self, base: usize) -> Block {
        let b = self.f.add_block();
        let tys: Vec<Type> = self
            .env
            .iter()
            .take(base)
            .map(|s| self.f.ty(s.val))
            .collect();
        for t in tys {
            self.f.add_block_param(b, t);
        }
        b
    }

    fn set_term(&mut self, t: Terminator) {
        for target in match &t {
            Terminator::Jump(a) => vec![a.block],
            Terminator::Branch {
                then, otherwise, ..
            } => vec![then.block, otherwise.block],
            Terminator::Halt => vec![],
        } {
            *self.preds.entry(target).or_insert(0) += 1;
        }
        let b = self.blk();
        self.f.block_mut(b).term = t;
        self.cur = None;
    }

    /// Evaluates a loop's condition (none: always true) and goes to `body` or `exit`,
    /// both joins over `env[..base]`.
    fn test(&mut self, cond: Option<&Expr>, body: Block, exit: Block, base: usize) {
        match cond {
            Some(c) => {
                let c = self.expr(c);
                if self.cur.is_none() {
                    return;
                }
                let v = self.vals(base);
                self.set_term(Terminator::Branch {
                    cond: c,
                    then: Target::new(body, v.clone()),
                    otherwise: Target::new(exit, v),
                });
            }
            None => {
                let v = self.vals(base);
                self.jump(body, v);
            }
        }
    }

    fn jump(&mut self, to: Block, args: Vec<Value>) {
        self.set_term(Terminator::Jump(Target::new(to, args)));
    }

    /// Continues at join `b`: the variables of `env[..base]` take its parameters.
    fn enter(&mut self, b: Block, base: usize) {
        self.env.truncate(base);
        let params = self.f.block(b).params.clone();
        for (slot, p) in self.env.iter_mut().zip(params) {
            slot.val = p;
        }
        self.cur = (self.preds.get(&b).copied().unwrap_or(0) > 0).then_some(b);
    }

    // ---- statements ----

    fn stmts(&mut self, ss: &[Stmt]) {
        let base = self.env.len();
        for s in ss {
            if self.cur.is_none() {
                break;
            }
            self.stmt(s);
        }
        self.env.truncate(base);
    }

    fn stmt(&mut self, s: &Stmt) {
        let span = s.span;
        match &s.kind {
            StmtKind::Decl { var, init } => {
                let v = match init {
                    Some(e) => self.expr(e),
                    None => {
                        let ty = self.p.vars.get(var.0 as usize).map_or(Ty::I32, |v| v.ty);
                        self.zero(ty, span)
                    }
                };
                self.push(*var, 0, v);
            }
            StmtKind::RegArray { var } => {
                let Some(v) = self.p.vars.get(var.0 as usize) else {
                    return;
                };
                let (ty, len) = match v.kind {
                    VarKind::RegArray { len } => (v.ty, len),
                    _ => return,
                };
                for i in 0..len {
                    let z = self.zero(ty, span);
                    self.push(*var, i, z);
                }
            }
            StmtKind::Assign { place, value } => self.assign(place, value, span),
            StmtKind::Expr(e) => {
                self.expr(e);
            }
            StmtKind::Block(b) => self.stmts(b),
            StmtKind::If {
                cond,
                then,
                otherwise,
            } => {
                let c = self.expr(cond);
                let base = self.env.len();
                let join = self.join(base);
                let then_b = self.f.add_block();
                let else_target = if otherwise.is_empty() {
                    Target::new(join, self.vals(base))
                } else {
                    Target::new(self.f.add_block(), vec![])
                };
                let else_b = else_target.block;
                self.set_term(Terminator::Branch {
                    cond: c,
                    then: Target::new(then_b, vec![]),
                    otherwise: else_target,
                });
                // The `else` part starts from the variables as they were at the branch,
                // not as the `then` part left them.
                let at_branch = self.vals(base);
                self.cur = Some(then_b);
                self.stmts(then);
                if self.cur.is_some() {
                    let v = self.vals(base);
                    self.jump(join, v);
                }
                if !otherwise.is_empty() {
                    self.env.truncate(base);
                    for (slot, v) in self.env.iter_mut().zip(at_branch) {
                        slot.val = v;
                    }
                    self.cur = Some(else_b);
                    self.stmts(otherwise);
                    if self.cur.is_some() {
                        let v = self.vals(base);
                        self.jump(join, v);
                    }
                }
                self.enter(join, base);
            }
            StmtKind::Loop { cond, body, step } => {
                // Rotated: the condition is tested before the first trip and again after
                // each step, so a trip ends in one conditional branch back to the body
                // rather than a jump to a test at the top. It is evaluated exactly as
                // often, and at the same moments, as in the loop as written.
                let base = self.env.len();
                let body_b = self.join(base);
                let exit = self.join(base);
                let next = self.join(base);
                self.test(cond.as_ref(), body_b, exit, base);
                self.enter(body_b, base);
                self.loops.push(LoopCtx {
                    brk: Some(exit),
                    cont: Some(next),
                    base,
                });
                self.stmts(body);
                self.loops.pop();
                if self.cur.is_some() {
                    let v = self.vals(base);
                    self.jump(next, v);
                }
                self.enter(next, base);
                if self.cur.is_some() {
                    self.stmts(step);
                    if self.cur.is_some() {
                        self.test(cond.as_ref(), body_b, exit, base);
                    }
                }
                self.enter(exit, base);
            }
            StmtKind::Unroll { var, body } => {
                let values = match self.p.vars.get(var.0 as usize).map(|v| &v.kind) {
                    Some(VarKind::Unroll { values }) => values.clone(),
                    _ => Vec::new(),
                };
                let base = self.env.len();
                self.loops.push(LoopCtx {
                    brk: None,
                    cont: None,
                    base,
                });
                for k in values {
                    if self.cur.is_none() {
                        break;
                    }
                    self.unroll.insert(*var, k);
                    let c = self.konst(k as u32, Type::I32, span);
                    self.push(*var, 0, c);
                    if let Some(l) = self.loops.last_mut() {
                        l.cont = None;
                    }
                    self.stmts(body);
                    let cont = self.loops.last().and_then(|l| l.cont);
                    if let Some(next) = cont {
                        if self.cur.is_some() {
                            let v = self.vals(base);
                            self.jump(next, v);
                        }
                        self.enter(next, base);
                    }
                    self.env.truncate(base);
                }
                self.unroll.remove(var);
                let brk = self.loops.pop().and_then(|l| l.brk);
                if let Some(exit) = brk {
                    if self.cur.is_some() {
                        let v = self.vals(base);
                        self.jump(exit, v);
                    }
                    self.enter(exit, base);
                }
                self.env.truncate(base);
            }
            StmtKind::Where {
                mask,
                then,
                otherwise,
            } => {
                let m = self.expr(mask);
                let outer = self.masks.last().copied();
                let active = match outer {
                    Some(o) => self.emit(Op::MaskAnd, vec![o, m], Type::Mask, span),
                    None => m,
                };
                self.masks.push(active);
                self.stmts(then);
                self.masks.pop();
                if let Some(otherwise) = otherwise
                    && self.cur.is_some()
                {
                    let not = self.emit(Op::MaskNot, vec![m], Type::Mask, span);
                    let inactive = match outer {
                        Some(o) => self.emit(Op::MaskAnd, vec![o, not], Type::Mask, span),
                        None => not,
                    };
                    self.masks.push(inactive);
                    self.stmts(otherwise);
                    self.masks.pop();
                }
            }
            StmtKind::Break | StmtKind::Continue => {
                let brk = matches!(s.kind, StmtKind::Break);
                let Some(l) = self.loops.last() else {
                    return;
                };
                let (existing, base) = (if brk { l.brk } else { l.cont }, l.base);
                let target = match existing {
                    Some(b) => b,
                    None => {
                        let b = self.join(base);
                        if let Some(l) = self.loops.last_mut() {
                            if brk {
                                l.brk = Some(b);
                            } else {
                                l.cont = Some(b);
                            }
                        }
                        b
                    }
                };
                let v = self.vals(base);
                self.jump(target, v);
            }
            StmtKind::Return(value) => {
                let v = value.as_ref().map(|e| self.expr(e));
                match self.conts.last().copied() {
                    Some(cont) => self.jump(cont, v.into_iter().collect()),
                    None => self.set_term(Terminator::Halt),
                }
            }
        }
    }

    fn local_addr(&mut self, var: VarId, index: Value, span: Span) -> (Value, Type) {
        let (offset, ty) = match self.p.vars.get(var.0 as usize) {
            Some(v) => match v.kind {
                VarKind::LocalArray { offset, .. } => (offset, v.ty.ir()),
                _ => (0, v.ty.ir()),
            },
            None => (0, Type::I32),
        };
        let size = if ty.is_vector() { 256 } else { 4 };
        let base = self.konst(offset, Type::I32, span);
        let size = self.konst(size, Type::I32, span);
        let scaled = self.emit(Op::Mul, vec![index, size], Type::I32, span);
        (self.emit(Op::Add, vec![base, scaled], Type::I32, span), ty)
    }

    fn slot_of(&self, tensor: VarId) -> u8 {
        self.tensors.get(&tensor).copied().unwrap_or(0)
    }

    fn assign(&mut self, place: &Place, value: &Expr, span: Span) {
        enum Root {
            Env((VarId, u32)),
            Local(Value, Type),
            Tensor(u8, Value),
        }
        let root = match &place.root {
            PlaceRoot::Var(v) => Root::Env((*v, 0)),
            PlaceRoot::RegElem(v, k) => Root::Env((*v, self.index(k))),
            PlaceRoot::LocalElem(v, i) => {
                let i = self.expr(i);
                let (a, t) = self.local_addr(*v, i, span);
                Root::Local(a, t)
            }
            PlaceRoot::TensorElem(v, c) => {
                let c = self.expr(c);
                Root::Tensor(self.slot_of(*v), c)
            }
        };
        let sub = match &place.sub {
            None => None,
            Some(PlaceSub::Component(k)) => Some((true, self.index(k), None)),
            Some(PlaceSub::Lane(i)) => {
                let i = self.expr(i);
                Some((false, 0, Some(i)))
            }
        };
        let needs_old = sub.is_some() || reads_place(value);
        let root_ty = place.root_ty.ir();
        let old_root = if needs_old {
            Some(match &root {
                Root::Env(key) => self.read(*key, span),
                Root::Local(a, t) => {
                    let op = if t.is_vector() {
                        Op::LoadScratchVec { offset: 0 }
                    } else {
                        Op::LoadScratch { offset: 0 }
                    };
                    self.emit(op, vec![*a], *t, span)
                }
                Root::Tensor(slot, c) => self.emit(
                    Op::LoadTensorScalar { slot: *slot },
                    vec![*c],
                    root_ty,
                    span,
                ),
            })
        } else {
            None
        };
        self.place_cur = match (&sub, old_root) {
            (Some((true, k, _)), Some(r)) => {
                Some(self.emit(Op::Int4Get((*k).min(3) as u8), vec![r], Type::I32, span))
            }
            (Some((false, _, Some(i))), Some(r)) => {
                let lane = root_ty.lane().unwrap_or(Type::I32);
                Some(self.emit(Op::Extract, vec![r, *i], lane, span))
            }
            (_, r) => r,
        };
        let nv = self.expr(value);
        self.place_cur = None;
        let new_root = match (&sub, old_root) {
            (Some((true, k, _)), Some(r)) => self.emit(
                Op::Int4Set((*k).min(3) as u8),
                vec![r, nv],
                Type::Int4,
                span,
            ),
            (Some((false, _, Some(i))), Some(r)) => {
                self.emit(Op::Insert, vec![r, nv, *i], root_ty, span)
            }
            _ => nv,
        };
        match root {
            Root::Env(key) => {
                let Some(i) = self.find(key) else { return };
                let Some(slot) = self.env.get(i).copied() else {
                    return;
                };
                let mut v = new_root;
                let lanes = root_ty.is_vector() || root_ty == Type::Mask;
                if lanes
                    && slot.depth < self.masks.len()
                    && let Some(&mask) = self.masks.last()
                {
                    let b = self.blk();
                    v = self
                        .f
                        .append_guarded(
                            b,
                            Op::Copy,
                            vec![v],
                            Some(root_ty),
                            Some(Guard {
                                mask,
                                negated: false,
                            }),
                            Some(slot.val),
                            span,
                        )
                        .unwrap_or(v);
                }
                if let Some(s) = self.env.get_mut(i) {
                    s.val = v;
                }
            }
            Root::Local(a, t) => {
                let op = if t.is_vector() {
                    Op::StoreScratchVec { offset: 0 }
                } else {
                    Op::StoreScratch { offset: 0 }
                };
                self.emit_store(op, vec![a, new_root], span);
            }
            Root::Tensor(slot, c) => {
                self.emit_store(Op::StoreTensorScalar { slot }, vec![c, new_root], span);
            }
        }
    }

    // ---- expressions ----

    fn expr(&mut self, e: &Expr) -> Value {
        let span = e.span;
        let ty = e.ty.ir();
        match &e.kind {
            ExprKind::Const(bits) => self.konst(*bits, ty, span),
            ExprKind::Var(v) => self.read((*v, 0), span),
            ExprKind::RegElem(v, k) => {
                let k = self.index(k);
                self.read((*v, k), span)
            }
            ExprKind::LocalElem(v, i) => {
                let i = self.expr(i);
                let (a, t) = self.local_addr(*v, i, span);
                let op = if t.is_vector() {
                    Op::LoadScratchVec { offset: 0 }
                } else {
                    Op::LoadScratch { offset: 0 }
                };
                self.emit(op, vec![a], t, span)
            }
            ExprKind::TensorElem(t, c) => {
                let c = self.expr(c);
                let slot = self.slot_of(*t);
                self.emit(Op::LoadTensorScalar { slot }, vec![c], ty, span)
            }
            ExprKind::Component(x, k) => {
                let x = self.expr(x);
                let k = self.index(k).min(3) as u8;
                self.emit(Op::Int4Get(k), vec![x], Type::I32, span)
            }
            ExprKind::Lane(x, i) => {
                let x = self.expr(x);
                let i = self.expr(i);
                self.emit(Op::Extract, vec![x, i], ty, span)
            }
            ExprKind::Op(op, args) => {
                let vals: Vec<Value> = args.iter().map(|a| self.expr(a)).collect();
                self.emit(*op, vals, ty, span)
            }
            ExprKind::LogAnd(a, b) | ExprKind::LogOr(a, b) => {
                let and = matches!(e.kind, ExprKind::LogAnd(..));
                let va = self.expr(a);
                let rhs = self.f.add_block();
                let join = self.f.add_block();
                let r = self.f.add_block_param(join, Type::I32);
                let (then, otherwise) = if and {
                    (Target::new(rhs, vec![]), Target::new(join, vec![va]))
                } else {
                    (Target::new(join, vec![va]), Target::new(rhs, vec![]))
                };
                self.set_term(Terminator::Branch {
                    cond: va,
                    then,
                    otherwise,
                });
                self.cur = Some(rhs);
                let vb = self.expr(b);
                self.jump(join, vec![vb]);
                self.cur = Some(join);
                r
            }
            ExprKind::Cond(c, a, b) => {
                let vc = self.expr(c);
                let (tb, eb, join) = (self.f.add_block(), self.f.add_block(), self.f.add_block());
                let r = self.f.add_block_param(join, ty);
                self.set_term(Terminator::Branch {
                    cond: vc,
                    then: Target::new(tb, vec![]),
                    otherwise: Target::new(eb, vec![]),
                });
                self.cur = Some(tb);
                let va = self.expr(a);
                self.jump(join, vec![va]);
                self.cur = Some(eb);
                let vb = self.expr(b);
                self.jump(join, vec![vb]);
                self.cur = Some(join);
                r
            }
            ExprKind::Launch { size, dim } => {
                let d = self.index(dim).min(3) as u8;
                let op = if *size { Op::Idxn(d) } else { Op::Idx(d) };
                self.emit(op, vec![], Type::I32, span)
            }
            ExprKind::Dim(t, d) => {
                let dim = self.index(d).min(3) as u8;
                let slot = self.slot_of(*t);
                self.emit(Op::Tdim { slot, dim }, vec![], Type::I32, span)
            }
            ExprKind::Load(t, c) => {
                let c = self.expr(c);
                let slot = self.slot_of(*t);
                self.emit(Op::LoadTensor { slot }, vec![c], ty, span)
            }
            ExprKind::Store(t, c, v) => {
                let c = self.expr(c);
                let v = self.expr(v);
                let slot = self.slot_of(*t);
                self.emit_store(Op::StoreTensor { slot }, vec![c, v], span);
                self.konst(0, Type::I32, span)
            }
            ExprKind::U32ToF32(x) => {
                let u = self.expr(x);
                let sixteen = self.konst(16, Type::I32, span);
                let low_bits = self.konst(0xffff, Type::I32, span);
                let hi = self.emit(Op::Shr, vec![u, sixteen], Type::I32, span);
                let lo = self.emit(Op::And, vec![u, low_bits], Type::I32, span);
                let fhi = self.emit(Op::CvtF32I32, vec![hi], Type::F32, span);
                let flo = self.emit(Op::CvtF32I32, vec![lo], Type::F32, span);
                let scale = self.konst(65536f32.to_bits(), Type::F32, span);
                let high = self.emit(Op::Fmul, vec![fhi, scale], Type::F32, span);
                self.emit(Op::Fadd, vec![high, flo], Type::F32, span)
            }
            ExprKind::F32ToU32(x) => {
                let f = self.expr(x);
                let two31 = self.konst(2147483648f32.to_bits(), Type::F32, span);
                let big = self.emit(Op::Fcmp(Cond::Ge), vec![f, two31], Type::I32, span);
                let shifted = self.emit(Op::Fsub, vec![f, two31], Type::F32, span);
                let hi_i = self.emit(Op::CvtI32F32, vec![shifted], Type::I32, span);
                let top = self.konst(0x8000_0000, Type::I32, span);
                let hi = self.emit(Op::Add, vec![hi_i, top], Type::I32, span);
                let lo_i = self.emit(Op::CvtI32F32, vec![f], Type::I32, span);
                let zero = self.konst(0, Type::I32, span);
                let lo = self.emit(Op::Max, vec![lo_i, zero], Type::I32, span);
                self.emit(Op::Select, vec![big, hi, lo], Type::I32, span)
            }
            ExprKind::UMinMax(max, a, b) => {
                let va = self.expr(a);
                let vb = self.expr(b);
                let lt = self.emit(Op::Icmp(Cond::Ltu), vec![va, vb], Type::I32, span);
                let (x, y) = if *max { (vb, va) } else { (va, vb) };
                self.emit(Op::Select, vec![lt, x, y], Type::I32, span)
            }
            ExprKind::Call(fid, args) => self.call(fid.0 as usize, args, e.ty, span),
            ExprKind::PlaceValue => match self.place_cur {
                Some(v) => v,
                None => self.zero(e.ty, span),
            },
        }
    }

    fn call(&mut self, fid: usize, args: &[Expr], ret: Ty, span: Span) -> Value {
        let Some(fun) = self.p.fns.get(fid) else {
            return self.zero(ret, span);
        };
        let mut vals = Vec::new();
        for (param, a) in fun.params.iter().zip(args) {
            if let (Ty::Tensor(_), ExprKind::Var(t)) = (a.ty, &a.kind) {
                let slot = self.slot_of(*t);
                self.tensors.insert(*param, slot);
            } else {
                vals.push((*param, self.expr(a)));
            }
        }
        let cont = self.f.add_block();
        let result = (ret != Ty::Void).then(|| self.f.add_block_param(cont, ret.ir()));
        // The callee sees only its own variables: its joins must not rebind the
        // caller's, whose values dominate the whole inlined body anyway.
        let caller_env = std::mem::take(&mut self.env);
        for (p, v) in vals {
            self.push(p, 0, v);
        }
        let loops = std::mem::take(&mut self.loops);
        self.conts.push(cont);
        self.stmts(&fun.body);
        if self.cur.is_some() {
            let v = match ret {
                Ty::Void => vec![],
                t => vec![self.zero(t, span)],
            };
            self.jump(cont, v);
        }
        self.conts.pop();
        self.loops = loops;
        self.env = caller_env;
        // Reachable or not, the caller goes on from the continuation.
        self.cur = Some(cont);
        match result {
            Some(r) => r,
            None => self.konst(0, Type::I32, span),
        }
    }
}

/// Whether `e` reads the value of the place being assigned.
fn reads_place(e: &Expr) -> bool {
    let mut stack = vec![e];
    while let Some(e) = stack.pop() {
        match &e.kind {
            ExprKind::PlaceValue => return true,
            ExprKind::Op(_, args) => stack.extend(args),
            _ => {}
        }
    }
    false
}
