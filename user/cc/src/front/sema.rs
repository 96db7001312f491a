//! Name resolution and type checking: the syntax tree to the typed, resolved HIR.
//!
//! Checks every rule of `docs/language.md`: one kernel; parameter kinds; the operand
//! types of every operator and built-in; places; `break`/`continue` in loops; a value
//! on every path of a function with a result; no recursion; the shape, constant bounds
//! and size of `unroll for`; constant register-array and component indices (for every
//! unrolled copy); the restrictions inside `where` (including through calls); names
//! (duplicates, unknown names with a suggestion); and `const` values. It also bounds
//! what lowering will do: the kernel's size after inlining and unrolling, and the
//! nesting depth through inlined calls.
//!
//! An expression with an error gets [`Ty::Error`], which silences every error that
//! would follow from it, so one mistake gives one message.

use std::collections::HashMap;

use super::ast::{self, BinOp, Elem, TypeName, UnOp};
use super::eval::{EvalError, eval};
use super::hir::*;
use crate::diag::{Diagnostic, line_col};
use crate::ir::{Cond, Op, ParamKind};
use crate::span::Span;

/// The most copies one `unroll for` makes.
pub const MAX_UNROLL: usize = 1024;
/// The most elements of a register array.
pub const MAX_REG_ARRAY: u64 = 1024;
/// The scratchpad's size in bytes.
pub const SCRATCH_BYTES: u64 = 256 * 1024;
/// The most expression and statement nodes the kernel may have once every call is
/// inlined and every `unroll for` unrolled.
pub const MAX_EXPANDED: u64 = 200_000;
/// The deepest nesting through inlined calls.
pub const MAX_INLINE_DEPTH: u32 = 200;
/// The most unroll-counter combinations a constant index is checked for.
const MAX_INDEX_CASES: u64 = 1 << 16;

/// The built-in functions.
pub const BUILTINS: &[&str] = &[
    "index",
    "size",
    "core",
    "dim",
    "load",
    "store",
    "lanes",
    "all",
    "iota",
    "select",
    "count",
    "reduce_add",
    "reduce_max",
    "reduce_min",
    "exp",
    "sqrt",
    "rsqrt",
    "rcp",
    "abs",
    "min",
    "max",
    "unpack_lo",
    "unpack_hi",
    "pack_bf16",
    "rotate",
    "shuffle",
    "bits",
    "as_f32",
];

/// The checked program.
#[derive(Debug, Clone)]
pub struct Checked {
    pub kernel: Function,
    pub fns: Vec<Function>,
    pub vars: Vec<Var>,
    pub params: Vec<(VarId, ParamKind)>,
    pub scratch_bytes: u32,
}

#[derive(Debug, Clone)]
struct ConstDef {
    ty: Ty,
    bits: u32,
    /// A plain integer literal keeps its value, to take the type its uses need.
    flex: Option<i64>,
}

#[derive(Debug, Clone)]
struct Sig {
    name: String,
    params: Vec<(Ty, String)>,
    ret: Ty,
    span: Span,
}

/// What the post-checks need to know of one body.
#[derive(Debug, Clone, Default)]
struct BodyInfo {
    /// (callee, call span, inside `where`, unroll multiplicity, depth at the call).
    calls: Vec<(FnId, Span, bool, u64, u32)>,
    /// The first operation that reads lanes across the mask: lane extraction, `rotate`,
    /// `shuffle`, `count`, `pack_bf16`, `unpack_lo` or `unpack_hi`.
    lane_use: Option<Span>,
    size: u64,
    depth: u32,
}

#[derive(Debug)]
struct Checker<'a> {
    src: &'a str,
    errs: Vec<Diagnostic>,
    vars: Vec<Var>,
    sigs: Vec<Sig>,
    fn_by_name: HashMap<String, FnId>,
    consts: HashMap<String, ConstDef>,
    scopes: Vec<HashMap<String, VarId>>,
    scratch: u64,
    // The body being checked.
    ret: Ty,
    fn_name: String,
    in_kernel: bool,
    loops: u32,
    wheres: u32,
    mult: u64,
    depth: u32,
    info: BodyInfo,
    out: Option<(Function, Vec<Function>)>,
    params: Vec<(VarId, ParamKind)>,
}

/// Checks a parsed program.
pub fn check(src: &str, items: &[ast::Item]) -> Result<Checked, Vec<Diagnostic>> {
    let mut c = Checker {
        src,
        errs: Vec::new(),
        vars: Vec::new(),
        sigs: Vec::new(),
        fn_by_name: HashMap::new(),
        consts: HashMap::new(),
        scopes: Vec::new(),
        scratch: 0,
        ret: Ty::Void,
        fn_name: String::new(),
        in_kernel: false,
        loops: 0,
        wheres: 0,
        mult: 1,
        depth: 0,
        info: BodyInfo::default(),
        out: None,
        params: Vec::new(),
    };
    for (name, v) in [("inf", f32::INFINITY), ("nan", f32::NAN)] {
        c.consts.insert(
            name.to_string(),
            ConstDef {
                ty: Ty::F32,
                bits: v.to_bits(),
                flex: None,
            },
        );
    }
    c.program(items);
    if c.errs.is_empty() {
        c.finish()
    } else {
        Err(c.errs)
    }
}

/// The optimal-string-alignment distance: insertions, deletions, substitutions and
/// swaps of neighbours each cost one (so `cuont` is one away from `count`).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    for i in 0..=a.len() {
        for j in 0..=b.len() {
            let v = if i == 0 || j == 0 {
                i + j
            } else {
                let cost = usize::from(a[i - 1] != b[j - 1]);
                let mut v = (d[(i - 1) * w + j] + 1)
                    .min(d[i * w + j - 1] + 1)
                    .min(d[(i - 1) * w + j - 1] + cost);
                if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                    v = v.min(d[(i - 2) * w + j - 2] + 1);
                }
                v
            };
            d[i * w + j] = v;
        }
    }
    d.last().copied().unwrap_or(0)
}

/// `; did you mean `x`?` for the closest candidate, if one is close.
fn suggest<'n>(name: &str, candidates: impl Iterator<Item = &'n str>) -> String {
    let limit = (name.chars().count() / 3).max(1);
    let best = candidates
        .filter(|c| *c != name)
        .map(|c| (edit_distance(name, c), c))
        .filter(|(d, _)| *d <= limit)
        .min();
    best.map_or(String::new(), |(_, c)| format!("; did you mean `{c}`?"))
}

fn type_of(t: TypeName) -> Ty {
    match t {
        TypeName::Bool => Ty::Bool,
        TypeName::I32 => Ty::I32,
        TypeName::U32 => Ty::U32,
        TypeName::F32 => Ty::F32,
        TypeName::F32x64 => Ty::VF32,
        TypeName::I32x64 => Ty::VI32,
        TypeName::Bf16x128 => Ty::VBF16,
        TypeName::Mask => Ty::Mask,
        TypeName::Int4 => Ty::Int4,
        TypeName::Tensor(e) => Ty::Tensor(e),
    }
}

fn ordinal(i: usize) -> String {
    match i {
        0 => "1st".into(),
        1 => "2nd".into(),
        2 => "3rd".into(),
        n => format!("{}th", n + 1),
    }
}

fn konst(bits: u32, ty: Ty, span: Span) -> Expr {
    Expr {
        kind: ExprKind::Const(bits),
        ty,
        span,
    }
}

fn op(o: Op, args: Vec<Expr>, ty: Ty, span: Span) -> Expr {
    Expr {
        kind: ExprKind::Op(o, args),
        ty,
        span,
    }
}

/// Whether every path through `stmts` ends in `return` (loops count as finishing).
fn returns(stmts: &[Stmt]) -> bool {
    stmts.iter().any(|s| match &s.kind {
        StmtKind::Return(_) => true,
        StmtKind::Block(b) => returns(b),
        StmtKind::If {
            then, otherwise, ..
        } => returns(then) && returns(otherwise),
        StmtKind::Where {
            then, otherwise, ..
        } => returns(then) || otherwise.as_deref().is_some_and(returns),
        _ => false,
    })
}

/// The unroll counters `e` reads.
fn counters(e: &Expr, vars: &[Var], out: &mut Vec<VarId>) {
    let mut stack = vec![e];
    while let Some(e) = stack.pop() {
        match &e.kind {
            ExprKind::Var(v)
                if vars
                    .get(v.0 as usize)
                    .is_some_and(|x| matches!(x.kind, VarKind::Unroll { .. }))
                    && !out.contains(v) =>
            {
                out.push(*v);
            }
            ExprKind::Op(_, args) | ExprKind::Call(_, args) => stack.extend(args),
            ExprKind::LogAnd(a, b) | ExprKind::LogOr(a, b) | ExprKind::UMinMax(_, a, b) => {
                stack.push(a);
                stack.push(b);
            }
            ExprKind::Cond(a, b, c) => stack.extend([&**a, &**b, &**c]),
            ExprKind::U32ToF32(a) | ExprKind::F32ToU32(a) => stack.push(a),
            _ => {}
        }
    }
}

impl Checker<'_> {
    fn err(&mut self, span: Span, msg: impl Into<String>) {
        self.errs.push(Diagnostic::new(span, msg));
    }

    fn at(&self, span: Span) -> String {
        let (l, c, _) = line_col(self.src, span.start);
        format!("{l}:{c}")
    }

    fn count(&mut self) {
        self.info.size = self.info.size.saturating_add(self.mult);
    }

    // ---- items ----

    fn program(&mut self, items: &[ast::Item]) {
        let mut kernel: Option<&ast::FnDecl> = None;
        let mut fns: Vec<&ast::FnDecl> = Vec::new();
        let mut globals: HashMap<String, Span> = HashMap::new();
        for item in items {
            let (name, span) = match item {
                ast::Item::Kernel(f) | ast::Item::Fn(f) => (&f.name, f.name_span),
                ast::Item::Const {
                    name, name_span, ..
                } => (name, *name_span),
            };
            if let Some(prev) = globals.get(name) {
                let at = self.at(*prev);
                self.err(span, format!("`{name}` is already declared, at {at}"));
                continue;
            }
            if matches!(name.as_str(), "inf" | "nan") || BUILTINS.contains(&name.as_str()) {
                self.err(
                    span,
                    format!("`{name}` is predeclared by the language; choose another name"),
                );
                continue;
            }
            globals.insert(name.clone(), span);
            match item {
                ast::Item::Kernel(f) => {
                    if let Some(k) = kernel {
                        let at = self.at(k.name_span);
                        self.err(
                            f.name_span,
                            format!(
                                "a second kernel `{}`: a source file holds exactly one kernel, and `{}` is declared at {at}",
                                f.name, k.name
                            ),
                        );
                    } else {
                        kernel = Some(f);
                    }
                }
                ast::Item::Fn(f) => {
                    let id = FnId(self.sigs.len() as u32);
                    let params = f
                        .params
                        .iter()
                        .map(|p| (type_of(p.ty), p.name.clone()))
                        .collect();
                    let ret = f.ret.map_or(Ty::Void, |(t, _)| type_of(t));
                    if let Some((TypeName::Tensor(_), s)) = f.ret {
                        self.err(s, format!("`{}` cannot return a tensor", f.name));
                    }
                    self.sigs.push(Sig {
                        name: f.name.clone(),
                        params,
                        ret,
                        span: f.name_span,
                    });
                    self.fn_by_name.insert(f.name.clone(), id);
                    fns.push(f);
                }
                ast::Item::Const { name, value, .. } => self.const_item(name, value),
            }
        }
        let Some(kernel) = kernel else {
            let end = self.src.len();
            self.err(
                Span::new(end, end),
                "no kernel: a source file must declare exactly one `kernel`",
            );
            return;
        };
        let mut bodies = Vec::new();
        let mut infos = Vec::new();
        for (i, f) in fns.iter().enumerate() {
            let ret = self.sigs.get(i).map_or(Ty::Void, |s| s.ret);
            let (body, info) = self.body(f, false, ret);
            bodies.push(body);
            infos.push(info);
        }
        let (kbody, kinfo) = self.body(kernel, true, Ty::Void);
        self.post_checks(kernel, &infos, &kinfo);
        self.out = Some((kbody, bodies));
    }
}

impl Checker<'_> {
    fn finish(mut self) -> Result<Checked, Vec<Diagnostic>> {
        match self.out.take() {
            Some((kernel, fns)) if self.errs.is_empty() => Ok(Checked {
                kernel,
                fns,
                vars: self.vars,
                params: self.params,
                scratch_bytes: self.scratch as u32,
            }),
            _ => Err(self.errs),
        }
    }

    fn const_item(&mut self, name: &str, value: &ast::Expr) {
        let flex = match &value.kind {
            ast::ExprKind::Int {
                value,
                unsigned: false,
            } => Some(*value as i64),
            ast::ExprKind::Unary(UnOp::Neg, x) => match x.kind {
                ast::ExprKind::Int {
                    value,
                    unsigned: false,
                } => Some(-(value as i64)),
                _ => None,
            },
            _ => None,
        };
        let e = self.expr(value, None);
        if e.ty == Ty::Error {
            return;
        }
        if !matches!(e.ty, Ty::I32 | Ty::U32 | Ty::F32 | Ty::Bool) {
            self.err(
                value.span,
                format!(
                    "a constant is an integer, float or bool; `{name}` is a `{}`",
                    e.ty.name()
                ),
            );
            return;
        }
        match eval(&e, &|_| None) {
            Ok(bits) => {
                self.consts.insert(
                    name.to_string(),
                    ConstDef {
                        ty: e.ty,
                        bits,
                        flex,
                    },
                );
            }
            Err(err) => self.eval_error(err, &format!("the value of `{name}`")),
        }
    }

    fn eval_error(&mut self, err: EvalError, what: &str) {
        match err {
            EvalError::NotConst(span) => {
                let text = self
                    .src
                    .get(span.start as usize..span.end as usize)
                    .unwrap_or("?")
                    .to_string();
                self.err(
                    span,
                    format!("{what} must be a compile-time constant, and `{text}` is not"),
                );
            }
            EvalError::DivZero(span) => {
                self.err(span, format!("{what} divides by zero"));
            }
        }
    }

    fn new_var(&mut self, name: &str, ty: Ty, kind: VarKind, span: Span) -> VarId {
        let id = VarId(self.vars.len() as u32);
        self.vars.push(Var {
            name: name.to_string(),
            ty,
            kind,
            span,
        });
        id
    }

    /// Declares a name in the innermost scope (an error if it is already there).
    fn declare(&mut self, name: &str, ty: Ty, kind: VarKind, span: Span) -> VarId {
        let prev = self
            .scopes
            .last()
            .and_then(|s| s.get(name))
            .and_then(|v| self.vars.get(v.0 as usize))
            .map(|v| v.span);
        if let Some(prev) = prev {
            let at = self.at(prev);
            self.err(
                span,
                format!("`{name}` is already declared in this block, at {at}"),
            );
        }
        let id = self.new_var(name, ty, kind, span);
        if let Some(s) = self.scopes.last_mut() {
            s.insert(name.to_string(), id);
        }
        id
    }

    fn lookup(&self, name: &str) -> Option<VarId> {
        self.scopes.iter().rev().find_map(|s| s.get(name).copied())
    }

    fn var(&self, v: VarId) -> Option<&Var> {
        self.vars.get(v.0 as usize)
    }

    fn body(&mut self, f: &ast::FnDecl, kernel: bool, ret: Ty) -> (Function, BodyInfo) {
        self.scopes = vec![HashMap::new()];
        self.ret = ret;
        self.fn_name = f.name.clone();
        self.in_kernel = kernel;
        self.loops = 0;
        self.wheres = 0;
        self.mult = 1;
        self.depth = 0;
        self.info = BodyInfo::default();
        let mut params = Vec::new();
        for p in &f.params {
            let ty = type_of(p.ty);
            let kind = if let Ty::Tensor(_) = ty {
                VarKind::Tensor
            } else {
                VarKind::Value
            };
            let v = self.declare(&p.name, ty, kind, p.name_span);
            params.push(v);
            if kernel {
                let pk = match ty {
                    Ty::Tensor(Elem::F32) => Some(ParamKind::TensorF32),
                    Ty::Tensor(Elem::I32) => Some(ParamKind::TensorI32),
                    Ty::Tensor(Elem::U32) => Some(ParamKind::TensorU32),
                    Ty::Tensor(Elem::Bf16) => Some(ParamKind::TensorBf16),
                    Ty::I32 => Some(ParamKind::I32),
                    Ty::U32 => Some(ParamKind::U32),
                    Ty::F32 => Some(ParamKind::F32),
                    _ => None,
                };
                match pk {
                    Some(pk) => self.params.push((v, pk)),
                    None => self.err(
                        p.ty_span,
                        format!(
                            "a kernel parameter is a tensor or an `i32`, `u32` or `f32` scalar, and `{}` is a `{}`",
                            p.name,
                            ty.name()
                        ),
                    ),
                }
            }
        }
        let tensors = params
            .iter()
            .filter(|v| matches!(self.var(**v).map(|x| x.ty), Some(Ty::Tensor(_))))
            .count();
        if kernel && tensors > 256 {
            self.err(f.name_span, "a kernel takes at most 256 tensors");
        }
        let body = self.stmts(&f.body);
        if ret != Ty::Void && !returns(&body) {
            self.err(
                f.end,
                format!(
                    "`{}` returns `{}`, but this path reaches the end of its body without `return` (loops are taken to finish)",
                    f.name,
                    ret.name()
                ),
            );
        }
        self.scopes.clear();
        let info = std::mem::take(&mut self.info);
        (
            Function {
                name: f.name.clone(),
                params,
                ret,
                body,
                span: f.name_span,
            },
            info,
        )
    }

    /// Recursion, calls inside `where` of functions that look at lanes, and the size
    /// and depth of the kernel once everything is inlined.
    fn post_checks(&mut self, kernel: &ast::FnDecl, infos: &[BodyInfo], kinfo: &BodyInfo) {
        let n = infos.len();
        let name = |c: &Self, f: FnId| {
            c.sigs
                .get(f.0 as usize)
                .map_or("?", |s| s.name.as_str())
                .to_string()
        };
        // Depth-first search from every function, iteratively: 0 new, 1 on the stack,
        // 2 done. A call to a function on the stack closes a cycle.
        let mut state = vec![0u8; n];
        let mut order = Vec::new();
        let mut cyclic = false;
        for root in 0..n {
            if state[root] != 0 {
                continue;
            }
            let mut stack = vec![(root, 0usize)];
            state[root] = 1;
            while let Some(&mut (f, ref mut next)) = stack.last_mut() {
                let calls = infos.get(f).map_or(&[][..], |i| &i.calls[..]);
                if let Some(&(callee, span, ..)) = calls.get(*next) {
                    *next += 1;
                    let c = callee.0 as usize;
                    match state.get(c) {
                        Some(0) => {
                            state[c] = 1;
                            stack.push((c, 0));
                        }
                        Some(1) => {
                            cyclic = true;
                            let (callee_name, caller) =
                                (name(self, callee), name(self, FnId(f as u32)));
                            let how = if c == f {
                                "calls itself".to_string()
                            } else {
                                format!("calls `{callee_name}`, which calls `{caller}` back")
                            };
                            self.err(
                                span,
                                format!("recursion: `{caller}` {how}; calls are inlined, so no function may call itself, directly or through others"),
                            );
                        }
                        _ => {}
                    }
                } else {
                    state[f] = 2;
                    order.push(f);
                    stack.pop();
                }
            }
        }
        if cyclic {
            return;
        }
        // Callees come before callers in `order`.
        let mut size = vec![0u64; n];
        let mut depth = vec![0u32; n];
        let mut lanes: Vec<Option<Span>> = vec![None; n];
        for &f in &order {
            let Some(info) = infos.get(f) else { continue };
            let mut s = info.size;
            let mut d = info.depth;
            let mut l = info.lane_use;
            for &(callee, span, _, mult, at) in &info.calls {
                let c = callee.0 as usize;
                s = s.saturating_add(mult.saturating_mul(size.get(c).copied().unwrap_or(0)));
                d = d.max(at.saturating_add(depth.get(c).copied().unwrap_or(0)));
                if l.is_none() && lanes.get(c).copied().flatten().is_some() {
                    l = Some(span);
                }
            }
            size[f] = s;
            depth[f] = d;
            lanes[f] = l;
        }
        let mut ks = kinfo.size;
        let mut kd = kinfo.depth;
        let all: Vec<&BodyInfo> = infos.iter().chain(std::iter::once(kinfo)).collect();
        for info in &all {
            for &(callee, span, in_where, _, _) in &info.calls {
                if !in_where {
                    continue;
                }
                if let Some(use_span) = lanes.get(callee.0 as usize).copied().flatten() {
                    let at = self.at(use_span);
                    self.err(
                        span,
                        format!(
                            "`{}` cannot be called inside `where`: it reads a vector lane or moves or counts lanes (at {at}), and inside `where` the inactive lanes are unspecified",
                            name(self, callee)
                        ),
                    );
                }
            }
        }
        for &(callee, _, _, mult, at) in &kinfo.calls {
            let c = callee.0 as usize;
            ks = ks.saturating_add(mult.saturating_mul(size.get(c).copied().unwrap_or(0)));
            kd = kd.max(at.saturating_add(depth.get(c).copied().unwrap_or(0)));
        }
        if ks > MAX_EXPANDED {
            self.err(
                kernel.name_span,
                format!(
                    "kernel `{}` is too large once its calls are inlined and its `unroll` loops unrolled: {ks} operations, more than {MAX_EXPANDED}",
                    kernel.name
                ),
            );
        }
        if kd > MAX_INLINE_DEPTH {
            self.err(
                kernel.name_span,
                format!(
                    "kernel `{}` nests too deeply once its calls are inlined: {kd} levels, more than {MAX_INLINE_DEPTH}",
                    kernel.name
                ),
            );
        }
    }

    // ---- statements ----

    fn stmts(&mut self, stmts: &[ast::Stmt]) -> Vec<Stmt> {
        let mut out = Vec::new();
        for s in stmts {
            self.stmt(s, &mut out);
        }
        out
    }

    /// `s` in a scope of its own.
    fn scoped(&mut self, s: &ast::Stmt) -> Vec<Stmt> {
        self.scopes.push(HashMap::new());
        let mut out = Vec::new();
        match &s.kind {
            ast::StmtKind::Block(b) => {
                for s in b {
                    self.stmt(s, &mut out);
                }
            }
            _ => self.stmt(s, &mut out),
        }
        self.scopes.pop();
        out
    }

    fn cond(&mut self, e: &ast::Expr, what: &str) -> Expr {
        let c = self.expr(e, Some(Ty::Bool));
        if c.ty != Ty::Bool && c.ty != Ty::Error {
            let hint = match c.ty {
                Ty::I32 | Ty::U32 => "; compare it with 0",
                Ty::Mask => "; a `mask` selects lanes with `where`",
                _ => "",
            };
            self.err(
                e.span,
                format!("{what} must be a `bool`, found `{}`{hint}", c.ty.name()),
            );
        }
        c
    }

    fn stmt(&mut self, s: &ast::Stmt, out: &mut Vec<Stmt>) {
        self.depth += 1;
        self.info.depth = self.info.depth.max(self.depth);
        self.count();
        let span = s.span;
        let kind = match &s.kind {
            ast::StmtKind::Empty => None,
            ast::StmtKind::Block(b) => {
                self.scopes.push(HashMap::new());
                let inner = self.stmts(b);
                self.scopes.pop();
                Some(StmtKind::Block(inner))
            }
            ast::StmtKind::Decl {
                local,
                ty,
                ty_span,
                name,
                name_span,
                len,
                init,
            } => self.decl(
                *local,
                type_of(*ty),
                *ty_span,
                name,
                *name_span,
                len.as_ref(),
                init.as_ref(),
            ),
            ast::StmtKind::Assign {
                place,
                op,
                op_span,
                value,
            } => self.assign(place, *op, *op_span, value),
            ast::StmtKind::IncDec { place, inc } => self.inc_dec(place, *inc),
            ast::StmtKind::If {
                cond,
                then,
                otherwise,
            } => {
                let cond = self.cond(cond, "the condition of `if`");
                let then = self.scoped(then);
                let otherwise = otherwise.as_ref().map_or(Vec::new(), |o| self.scoped(o));
                Some(StmtKind::If {
                    cond,
                    then,
                    otherwise,
                })
            }
            ast::StmtKind::While { cond, body } => {
                let cond = self.cond(cond, "the condition of `while`");
                self.loops += 1;
                let body = self.scoped(body);
                self.loops -= 1;
                Some(StmtKind::Loop {
                    cond: Some(cond),
                    body,
                    step: Vec::new(),
                })
            }
            ast::StmtKind::For {
                unroll: false,
                init,
                cond,
                step,
                body,
            } => {
                self.scopes.push(HashMap::new());
                let mut inner = Vec::new();
                if let Some(i) = init {
                    self.stmt(i, &mut inner);
                }
                let cond = cond
                    .as_ref()
                    .map(|c| self.cond(c, "the condition of `for`"));
                let mut st = Vec::new();
                if let Some(st_ast) = step {
                    self.stmt(st_ast, &mut st);
                }
                self.loops += 1;
                let body = self.scoped(body);
                self.loops -= 1;
                self.scopes.pop();
                inner.push(Stmt {
                    kind: StmtKind::Loop {
                        cond,
                        body,
                        step: st,
                    },
                    span,
                });
                Some(StmtKind::Block(inner))
            }
            ast::StmtKind::For {
                unroll: true,
                init,
                cond,
                step,
                body,
            } => self.unroll(span, init.as_deref(), cond.as_ref(), step.as_deref(), body),
            ast::StmtKind::Where {
                mask,
                then,
                otherwise,
            } => {
                let m = self.expr(mask, None);
                if m.ty != Ty::Mask && m.ty != Ty::Error {
                    self.err(
                        mask.span,
                        format!(
                            "the mask of `where` must be a `mask` (a vector comparison, `lanes(n)`, ...), found `{}`",
                            m.ty.name()
                        ),
                    );
                }
                self.wheres += 1;
                let then = self.scoped(then);
                let otherwise = otherwise.as_ref().map(|o| self.scoped(o));
                self.wheres -= 1;
                Some(StmtKind::Where {
                    mask: m,
                    then,
                    otherwise,
                })
            }
            ast::StmtKind::Break | ast::StmtKind::Continue => {
                let brk = matches!(s.kind, ast::StmtKind::Break);
                if self.loops == 0 {
                    let kw = if brk { "break" } else { "continue" };
                    self.err(span, format!("`{kw}` outside of a loop"));
                }
                Some(if brk {
                    StmtKind::Break
                } else {
                    StmtKind::Continue
                })
            }
            ast::StmtKind::Return(value) => self.ret_stmt(span, value.as_ref()),
            ast::StmtKind::Expr(e) => {
                if !matches!(
                    e.kind,
                    ast::ExprKind::Call { .. } | ast::ExprKind::TypeCall { .. }
                ) {
                    self.err(
                        e.span,
                        "this expression's value is unused: only calls can stand alone as statements",
                    );
                }
                let e = self.expr(e, None);
                Some(StmtKind::Expr(e))
            }
        };
        self.depth -= 1;
        if let Some(kind) = kind {
            out.push(Stmt { kind, span });
        }
    }

    fn ret_stmt(&mut self, span: Span, value: Option<&ast::Expr>) -> Option<StmtKind> {
        let ret = self.ret;
        match (value, ret) {
            (Some(v), Ty::Void) => {
                let who = if self.in_kernel {
                    "a kernel"
                } else {
                    "this function"
                };
                self.err(
                    v.span,
                    format!(
                        "`{}` is {who} that returns nothing: `return` takes no value here",
                        self.fn_name
                    ),
                );
                None
            }
            (None, Ty::Void) => Some(StmtKind::Return(None)),
            (None, t) => {
                self.err(
                    span,
                    format!(
                        "`{}` returns `{}`: this `return` needs a value",
                        self.fn_name,
                        t.name()
                    ),
                );
                None
            }
            (Some(_), t) if self.wheres > 0 && (t.is_vector() || t == Ty::Mask) => {
                self.err(
                    span,
                    format!(
                        "`{}` cannot return its `{}` from inside `where`: the lanes outside the mask would leave it unspecified",
                        self.fn_name,
                        t.name()
                    ),
                );
                None
            }
            (Some(v), t) => {
                let e = self.expr(v, Some(t));
                self.expect(&e, t, &format!("for the value `{}` returns", self.fn_name));
                Some(StmtKind::Return(Some(e)))
            }
        }
    }

    /// An error unless `e` has type `want`.
    fn expect(&mut self, e: &Expr, want: Ty, what: &str) -> bool {
        if e.ty == want || e.ty == Ty::Error || want == Ty::Error {
            return e.ty == want;
        }
        self.err(
            e.span,
            format!("expected `{}` {what}, found `{}`", want.name(), e.ty.name()),
        );
        false
    }

    #[allow(clippy::too_many_arguments)]
    fn decl(
        &mut self,
        local: bool,
        ty: Ty,
        ty_span: Span,
        name: &str,
        name_span: Span,
        len: Option<&ast::Expr>,
        init: Option<&ast::Expr>,
    ) -> Option<StmtKind> {
        if let Ty::Tensor(_) = ty {
            self.err(
                ty_span,
                format!("`{name}` cannot be a tensor variable: tensors are parameters of kernels and functions"),
            );
            return None;
        }
        let Some(len_ast) = len else {
            if local {
                self.err(
                    name_span,
                    format!(
                        "`local` declares scratchpad arrays: write `local {} {name}[N];`",
                        ty.name()
                    ),
                );
                return None;
            }
            let init = init.map(|i| {
                let e = self.expr(i, Some(ty));
                self.expect(&e, ty, &format!("for the value of `{name}`"));
                e
            });
            let var = self.declare(name, ty, VarKind::Value, name_span);
            return Some(StmtKind::Decl { var, init });
        };
        if let Some(i) = init {
            self.err(i.span, format!("array `{name}` cannot have an initial value (it starts at zero or, in the scratchpad, unspecified)"));
        }
        let n = self.expr(len_ast, Some(Ty::I32));
        if n.ty == Ty::Error || !self.expect(&n, Ty::I32, &format!("for the length of `{name}`")) {
            return None;
        }
        let n = match eval(&n, &|_| None) {
            Ok(v) => i64::from(v as i32),
            Err(e) => {
                self.eval_error(e, &format!("the length of `{name}`"));
                return None;
            }
        };
        if local {
            let size: u64 = match ty {
                Ty::I32 | Ty::U32 | Ty::F32 => 4,
                Ty::VF32 | Ty::VI32 | Ty::VBF16 => 256,
                _ => {
                    self.err(
                        ty_span,
                        format!(
                            "a `local` array holds 32-bit scalars or vectors, not `{}`",
                            ty.name()
                        ),
                    );
                    return None;
                }
            };
            if n <= 0 {
                self.err(
                    len_ast.span,
                    format!("the length of `{name}` must be positive, found {n}"),
                );
                return None;
            }
            let offset = self.scratch;
            let end = offset.saturating_add(size.saturating_mul(n as u64));
            if end > SCRATCH_BYTES {
                self.err(
                    len_ast.span,
                    format!("`local` array `{name}` does not fit: the `local` arrays would take {end} bytes of the scratchpad's {SCRATCH_BYTES}"),
                );
                return None;
            }
            self.scratch = end;
            self.declare(
                name,
                ty,
                VarKind::LocalArray {
                    len: n as u32,
                    offset: offset as u32,
                },
                name_span,
            );
            return None;
        }
        if n <= 0 || n as u64 > MAX_REG_ARRAY {
            self.err(
                len_ast.span,
                format!(
                    "register array `{name}` must have 1 to {MAX_REG_ARRAY} elements, found {n}"
                ),
            );
            return None;
        }
        let var = self.declare(name, ty, VarKind::RegArray { len: n as u32 }, name_span);
        Some(StmtKind::RegArray { var })
    }

    fn unroll(
        &mut self,
        span: Span,
        init: Option<&ast::Stmt>,
        cond: Option<&ast::Expr>,
        step: Option<&ast::Stmt>,
        body: &ast::Stmt,
    ) -> Option<StmtKind> {
        const SHAPE: &str = "`unroll for` must have the shape `unroll for (int k = A; k < B; k++)`, with constants A and B, any comparison, and a step `k++`, `k--`, `k += 1` or `k -= 1`";
        let Some(ast::Stmt {
            kind:
                ast::StmtKind::Decl {
                    local: false,
                    ty: TypeName::I32,
                    name,
                    name_span,
                    len: None,
                    init: Some(start),
                    ..
                },
            ..
        }) = init
        else {
            self.err(
                init.map_or(span, |s| s.span),
                format!("{SHAPE}; this initialisation is not `int k = A`"),
            );
            return None;
        };
        let start_e = self.expr(start, Some(Ty::I32));
        if !self.expect(&start_e, Ty::I32, "for the start of `unroll for`") {
            return None;
        }
        let first = match eval(&start_e, &|_| None) {
            Ok(v) => v as i32,
            Err(e) => {
                self.eval_error(e, "the start of `unroll for`");
                return None;
            }
        };
        let is_k = |e: &ast::Expr| matches!(&e.kind, ast::ExprKind::Name(n) if n == name);
        let Some((cmp, bound, flipped)) = cond.and_then(|c| match &c.kind {
            ast::ExprKind::Binary(op, a, b) if op.is_comparison() && is_k(a) => {
                Some((*op, &**b, false))
            }
            ast::ExprKind::Binary(op, a, b) if op.is_comparison() && is_k(b) => {
                Some((*op, &**a, true))
            }
            _ => None,
        }) else {
            self.err(
                cond.map_or(span, |c| c.span),
                format!("{SHAPE}; this condition does not compare `{name}` with a constant"),
            );
            return None;
        };
        let bound_e = self.expr(bound, Some(Ty::I32));
        if !self.expect(&bound_e, Ty::I32, "for the bound of `unroll for`") {
            return None;
        }
        let limit = match eval(&bound_e, &|_| None) {
            Ok(v) => v as i32,
            Err(e) => {
                self.eval_error(e, "the bound of `unroll for`");
                return None;
            }
        };
        let delta = match step.map(|s| &s.kind) {
            Some(ast::StmtKind::IncDec { place, inc }) if is_k(place) => {
                if *inc {
                    1
                } else {
                    -1
                }
            }
            Some(ast::StmtKind::Assign {
                place,
                op: Some(op @ (BinOp::Add | BinOp::Sub)),
                value,
                ..
            }) if is_k(place) && matches!(value.kind, ast::ExprKind::Int { value: 1, .. }) => {
                if *op == BinOp::Add { 1 } else { -1 }
            }
            _ => {
                self.err(
                    step.map_or(span, |s| s.span),
                    format!("{SHAPE}; this step does not add or subtract one"),
                );
                return None;
            }
        };
        let holds = |k: i32| {
            let (a, b) = if flipped { (limit, k) } else { (k, limit) };
            match cmp {
                BinOp::Lt => a < b,
                BinOp::Le => a <= b,
                BinOp::Gt => a > b,
                BinOp::Ge => a >= b,
                BinOp::Eq => a == b,
                _ => a != b,
            }
        };
        let mut values = Vec::new();
        let mut k = first;
        while holds(k) {
            if values.len() >= MAX_UNROLL {
                self.err(
                    span,
                    format!("`unroll for` would make more than {MAX_UNROLL} copies of its body"),
                );
                return None;
            }
            values.push(k);
            let Some(next) = k.checked_add(delta) else {
                break;
            };
            k = next;
        }
        let count = values.len() as u64;
        self.scopes.push(HashMap::new());
        let var = self.declare(name, Ty::I32, VarKind::Unroll { values }, *name_span);
        self.loops += 1;
        let saved = self.mult;
        self.mult = self.mult.saturating_mul(count);
        let body = self.scoped(body);
        self.mult = saved;
        self.loops -= 1;
        self.scopes.pop();
        Some(StmtKind::Unroll { var, body })
    }

    /// Checks a place; returns it and the type of what it writes.
    fn place(&mut self, e: &ast::Expr) -> Option<(Place, Ty)> {
        match &e.kind {
            ast::ExprKind::Name(n) => {
                let Some(v) = self.lookup(n) else {
                    if self.consts.contains_key(n) {
                        self.err(e.span, format!("cannot assign to constant `{n}`"));
                    } else {
                        self.unknown_name(n, e.span);
                    }
                    return None;
                };
                let var = self.var(v)?.clone();
                match var.kind {
                    VarKind::Value => Some((
                        Place {
                            root: PlaceRoot::Var(v),
                            root_ty: var.ty,
                            sub: None,
                        },
                        var.ty,
                    )),
                    VarKind::Unroll { .. } => {
                        self.err(e.span, format!("cannot assign to `{n}`: the counter of an `unroll for` is a constant in each copy"));
                        None
                    }
                    VarKind::Tensor => {
                        self.err(e.span, format!("cannot assign to tensor `{n}`; assign its elements `{n}[c]` or `store` to it"));
                        None
                    }
                    _ => {
                        self.err(
                            e.span,
                            format!("cannot assign to array `{n}` as a whole; assign its elements"),
                        );
                        None
                    }
                }
            }
            ast::ExprKind::Index(base, idx) => {
                if let Some(root) = self.element_root(base, idx) {
                    let (root, ty) = root?;
                    return Some((
                        Place {
                            root,
                            root_ty: ty,
                            sub: None,
                        },
                        ty,
                    ));
                }
                let (mut place, ty) = self.place(base)?;
                if place.sub.is_some() {
                    self.err(
                        e.span,
                        "cannot assign to this expression: it indexes a scalar",
                    );
                    return None;
                }
                match ty {
                    Ty::Int4 => {
                        let k = self.const_index(idx, 4, "the component index of an `int4`")?;
                        place.sub = Some(PlaceSub::Component(k));
                        Some((place, Ty::I32))
                    }
                    Ty::VF32 | Ty::VI32 => {
                        if self.wheres > 0 {
                            self.err(e.span, "a vector lane cannot be assigned inside `where`: lane access ignores the mask");
                            return None;
                        }
                        let k = self.expr(idx, Some(Ty::I32));
                        if !self.expect(&k, Ty::I32, "for a lane index") {
                            return None;
                        }
                        self.info.lane_use.get_or_insert(e.span);
                        place.sub = Some(PlaceSub::Lane(Box::new(k)));
                        Some((place, ty.lane().unwrap_or(Ty::Error)))
                    }
                    t => {
                        self.err(base.span, format!("a `{}` cannot be indexed", t.name()));
                        None
                    }
                }
            }
            _ => {
                self.err(e.span, "cannot assign to this expression: a place is a variable, an array or tensor element, an `int4` component or a vector lane");
                None
            }
        }
    }

    /// If `base` names an array or tensor: the element `base[idx]` (None inside when
    /// it had an error) and its type.
    #[allow(clippy::type_complexity)]
    fn element_root(
        &mut self,
        base: &ast::Expr,
        idx: &ast::Expr,
    ) -> Option<Option<(PlaceRoot, Ty)>> {
        let ast::ExprKind::Name(n) = &base.kind else {
            return None;
        };
        let v = self.lookup(n)?;
        let var = self.var(v)?.clone();
        match var.kind {
            VarKind::RegArray { len } => {
                let what = format!("the index of register array `{n}`");
                Some(
                    self.const_index(idx, len, &what)
                        .map(|k| (PlaceRoot::RegElem(v, k), var.ty)),
                )
            }
            VarKind::LocalArray { .. } => {
                let i = self.expr(idx, Some(Ty::I32));
                if !self.expect(&i, Ty::I32, &format!("for the index of `{n}`")) {
                    return Some(None);
                }
                Some(Some((PlaceRoot::LocalElem(v, Box::new(i)), var.ty)))
            }
            VarKind::Tensor => {
                let c = self.expr(idx, Some(Ty::Int4));
                if !self.expect(
                    &c,
                    Ty::Int4,
                    &format!("for the coordinates of an element of `{n}`"),
                ) {
                    return Some(None);
                }
                let ty = match var.ty {
                    Ty::Tensor(Elem::F32) => Ty::F32,
                    Ty::Tensor(Elem::I32) => Ty::I32,
                    Ty::Tensor(Elem::U32) => Ty::U32,
                    _ => {
                        self.err(base.span, format!("the elements of bf16 tensor `{n}` cannot be accessed one by one; `load` and `store` vectors"));
                        return Some(None);
                    }
                };
                Some(Some((PlaceRoot::TensorElem(v, Box::new(c)), ty)))
            }
            _ => None,
        }
    }

    /// An index that must be constant once unrolled, in `0..bound` for every copy.
    fn const_index(&mut self, idx: &ast::Expr, bound: u32, what: &str) -> Option<ConstIndex> {
        let e = self.expr(idx, Some(Ty::I32));
        if !self.expect(&e, Ty::I32, &format!("for {what}")) {
            return None;
        }
        let mut ids = Vec::new();
        counters(&e, &self.vars, &mut ids);
        let lists: Vec<(VarId, Vec<i32>)> = ids
            .iter()
            .filter_map(|v| match &self.var(*v)?.kind {
                VarKind::Unroll { values } => Some((*v, values.clone())),
                _ => None,
            })
            .collect();
        let cases = lists
            .iter()
            .fold(1u64, |n, (_, l)| n.saturating_mul(l.len() as u64));
        if cases > MAX_INDEX_CASES {
            self.err(idx.span, format!("{what} depends on {cases} combinations of `unroll` counters, more than {MAX_INDEX_CASES}"));
            return None;
        }
        let mut pick = vec![0usize; lists.len()];
        for _ in 0..cases {
            let value = |v: VarId| {
                lists
                    .iter()
                    .zip(&pick)
                    .find(|((id, _), _)| *id == v)
                    .and_then(|((_, l), &i)| l.get(i).copied())
            };
            match eval(&e, &value) {
                Ok(k) if k < bound => {}
                Ok(k) => {
                    let when: Vec<String> = lists
                        .iter()
                        .zip(&pick)
                        .filter_map(|((id, l), &i)| {
                            Some(format!("{} = {}", self.var(*id)?.name, l.get(i)?))
                        })
                        .collect();
                    let when = if when.is_empty() {
                        String::new()
                    } else {
                        format!(" (when {})", when.join(", "))
                    };
                    self.err(
                        idx.span,
                        format!("{what} is {}{when}, outside 0..{bound}", k as i32),
                    );
                    return None;
                }
                Err(EvalError::NotConst(s)) => {
                    let text = self
                        .src
                        .get(s.start as usize..s.end as usize)
                        .unwrap_or("?")
                        .to_string();
                    self.err(
                        s,
                        format!("{what} must be a compile-time constant (after unrolling), and `{text}` is not"),
                    );
                    return None;
                }
                Err(err) => {
                    self.eval_error(err, what);
                    return None;
                }
            }
            // The next combination, like an odometer.
            for (i, p) in pick.iter_mut().enumerate() {
                *p += 1;
                if *p < lists.get(i).map_or(0, |l| l.1.len()) {
                    break;
                }
                *p = 0;
            }
        }
        Some(Box::new(e))
    }

    fn assign(
        &mut self,
        place: &ast::Expr,
        op: ast::AssignOp,
        op_span: Span,
        value: &ast::Expr,
    ) -> Option<StmtKind> {
        let (p, ty) = self.place(place)?;
        let v = match op {
            None => {
                let v = self.expr(value, Some(ty));
                self.expect(&v, ty, "for the assigned value");
                v
            }
            Some(bop) => {
                let cur = Expr {
                    kind: ExprKind::PlaceValue,
                    ty,
                    span: place.span,
                };
                let rhs = self.expr(value, Some(ty.lane().unwrap_or(ty)));
                let e = self.binary_typed(bop, cur, rhs, place.span.to(value.span), op_span);
                if e.ty != ty && e.ty != Ty::Error {
                    self.err(
                        op_span,
                        format!(
                            "`{}=` gives a `{}`, which cannot be stored in a `{}`",
                            bop.text(),
                            e.ty.name(),
                            ty.name()
                        ),
                    );
                }
                e
            }
        };
        if v.ty == Ty::Error {
            return None;
        }
        Some(StmtKind::Assign { place: p, value: v })
    }

    fn inc_dec(&mut self, place: &ast::Expr, inc: bool) -> Option<StmtKind> {
        let (p, ty) = self.place(place)?;
        let (o, one) = match (ty, inc) {
            (Ty::I32 | Ty::U32, true) => (Op::Add, 1),
            (Ty::I32 | Ty::U32, false) => (Op::Sub, 1),
            (Ty::F32, true) => (Op::Fadd, 1f32.to_bits()),
            (Ty::F32, false) => (Op::Fsub, 1f32.to_bits()),
            _ => {
                self.err(
                    place.span,
                    format!(
                        "`++` and `--` need an `i32`, `u32` or `f32`, found `{}`",
                        ty.name()
                    ),
                );
                return None;
            }
        };
        let cur = Expr {
            kind: ExprKind::PlaceValue,
            ty,
            span: place.span,
        };
        let value = op(o, vec![cur, konst(one, ty, place.span)], ty, place.span);
        Some(StmtKind::Assign { place: p, value })
    }
}

impl Checker<'_> {
    fn unknown_name(&mut self, n: &str, span: Span) {
        let mut names: Vec<String> = self.scopes.iter().flat_map(|s| s.keys().cloned()).collect();
        names.extend(self.consts.keys().cloned());
        let hint = suggest(n, names.iter().map(String::as_str));
        let extra = if self.fn_by_name.contains_key(n) || BUILTINS.contains(&n) {
            format!("; `{n}` is a function: call it")
        } else {
            hint
        };
        self.err(span, format!("unknown name `{n}`{extra}"));
    }

    /// Whether `e` is an integer literal (or a sum, negation, ... of them, or a
    /// `const` declared as one): it takes the type its context needs.
    fn flexible(&self, e: &ast::Expr) -> bool {
        match &e.kind {
            ast::ExprKind::Int { unsigned, .. } => !unsigned,
            ast::ExprKind::Name(n) => {
                self.lookup(n).is_none() && self.consts.get(n).is_some_and(|c| c.flex.is_some())
            }
            ast::ExprKind::Unary(UnOp::Neg | UnOp::BitNot, x) => self.flexible(x),
            ast::ExprKind::Binary(op, a, b) => {
                !op.is_comparison()
                    && !matches!(op, BinOp::LogAnd | BinOp::LogOr)
                    && self.flexible(a)
                    && self.flexible(b)
            }
            ast::ExprKind::Cond(_, a, b) => self.flexible(a) && self.flexible(b),
            _ => false,
        }
    }

    fn int_lit(&mut self, v: i64, want: Option<Ty>, span: Span) -> Expr {
        match want {
            Some(Ty::U32) if (-(1i64 << 31)..1i64 << 32).contains(&v) => {
                konst(v as u32, Ty::U32, span)
            }
            Some(Ty::F32) => {
                let f = v as f32;
                if f as i64 == v && f.is_finite() {
                    konst(f.to_bits(), Ty::F32, span)
                } else {
                    self.err(
                        span,
                        format!("integer {v} is not exactly an `f32`; write it as a float literal"),
                    );
                    konst(0, Ty::Error, span)
                }
            }
            _ if (-(1i64 << 31)..1i64 << 32).contains(&v) => konst(v as u32, Ty::I32, span),
            _ => {
                self.err(span, format!("integer {v} does not fit in 32 bits"));
                konst(0, Ty::Error, span)
            }
        }
    }

    /// The two operands of a binary operation: a flexible literal side takes the
    /// other side's (lane) type.
    fn pair(&mut self, a: &ast::Expr, b: &ast::Expr, want: Option<Ty>) -> (Expr, Expr) {
        if self.flexible(a) && !self.flexible(b) {
            let y = self.expr(b, want);
            let x = self.expr(a, Some(y.ty.lane().unwrap_or(y.ty)));
            (x, y)
        } else {
            let x = self.expr(a, want);
            let y = self.expr(b, Some(x.ty.lane().unwrap_or(x.ty)));
            (x, y)
        }
    }

    /// `a` and `b` with a scalar broadcast to the other's vector type.
    fn broadcast_pair(a: Expr, b: Expr) -> (Expr, Expr) {
        let bc = |s: Expr, v: Ty| {
            let span = s.span;
            op(Op::Broadcast, vec![s], v, span)
        };
        if a.ty.lane() == Some(b.ty) {
            let t = a.ty;
            (a, bc(b, t))
        } else if b.ty.lane() == Some(a.ty) {
            let t = b.ty;
            (bc(a, t), b)
        } else {
            (a, b)
        }
    }

    /// The typed form of `a OP b`, with the operands already checked.
    fn binary_typed(&mut self, bop: BinOp, a: Expr, b: Expr, span: Span, op_span: Span) -> Expr {
        if a.ty == Ty::Error || b.ty == Ty::Error {
            return konst(0, Ty::Error, span);
        }
        if matches!(bop, BinOp::LogAnd | BinOp::LogOr) {
            for x in [&a, &b] {
                if x.ty != Ty::Bool {
                    let hint = if x.ty == Ty::Mask {
                        "; combine masks with `&` and `|`"
                    } else {
                        ""
                    };
                    self.err(
                        x.span,
                        format!(
                            "`{}` needs `bool` operands, found `{}`{hint}",
                            bop.text(),
                            x.ty.name()
                        ),
                    );
                    return konst(0, Ty::Error, span);
                }
            }
            let kind = if bop == BinOp::LogAnd {
                ExprKind::LogAnd(Box::new(a), Box::new(b))
            } else {
                ExprKind::LogOr(Box::new(a), Box::new(b))
            };
            return Expr {
                kind,
                ty: Ty::Bool,
                span,
            };
        }
        let (a, b) = Self::broadcast_pair(a, b);
        if a.ty != b.ty {
            self.err(
                op_span,
                format!(
                    "`{}` needs operands of one type, found `{}` and `{}`",
                    bop.text(),
                    a.ty.name(),
                    b.ty.name()
                ),
            );
            return konst(0, Ty::Error, span);
        }
        let t = a.ty;
        let cmp = |signed: Cond, unsigned: Cond| match t {
            Ty::U32 => Some(Op::Icmp(unsigned)),
            Ty::I32 | Ty::VI32 | Ty::Bool if matches!(signed, Cond::Eq | Cond::Ne) => {
                Some(Op::Icmp(signed))
            }
            Ty::I32 | Ty::VI32 => Some(Op::Icmp(signed)),
            Ty::F32 | Ty::VF32 => Some(Op::Fcmp(signed)),
            _ => None,
        };
        let int = matches!(t, Ty::I32 | Ty::U32 | Ty::VI32);
        let float = matches!(t, Ty::F32 | Ty::VF32);
        let o = match bop {
            BinOp::Add if int => Some(Op::Add),
            BinOp::Add if float => Some(Op::Fadd),
            BinOp::Sub if int => Some(Op::Sub),
            BinOp::Sub if float => Some(Op::Fsub),
            BinOp::Mul if int => Some(Op::Mul),
            BinOp::Mul if float => Some(Op::Fmul),
            BinOp::Div if t == Ty::I32 => Some(Op::Div),
            BinOp::Div if t == Ty::U32 => Some(Op::Divu),
            BinOp::Div if float => Some(Op::Fdiv),
            BinOp::Rem if t == Ty::I32 => Some(Op::Rem),
            BinOp::Rem if t == Ty::U32 => Some(Op::Remu),
            BinOp::And if int || t == Ty::Bool => Some(Op::And),
            BinOp::Or if int || t == Ty::Bool => Some(Op::Or),
            BinOp::Xor if int || t == Ty::Bool => Some(Op::Xor),
            BinOp::And if t == Ty::Mask => Some(Op::MaskAnd),
            BinOp::Or if t == Ty::Mask => Some(Op::MaskOr),
            BinOp::Xor if t == Ty::Mask => Some(Op::MaskXor),
            BinOp::Shl if int => Some(Op::Shl),
            BinOp::Shr if t == Ty::U32 => Some(Op::Shr),
            BinOp::Shr if int => Some(Op::Sra),
            BinOp::Eq => cmp(Cond::Eq, Cond::Eq),
            BinOp::Ne => cmp(Cond::Ne, Cond::Ne),
            BinOp::Lt if t != Ty::Bool => cmp(Cond::Lt, Cond::Ltu),
            BinOp::Le if t != Ty::Bool => cmp(Cond::Le, Cond::Leu),
            BinOp::Gt if t != Ty::Bool => cmp(Cond::Gt, Cond::Gtu),
            BinOp::Ge if t != Ty::Bool => cmp(Cond::Ge, Cond::Geu),
            _ => None,
        };
        let Some(o) = o else {
            self.err(
                op_span,
                format!("`{}` does not apply to `{}` operands", bop.text(), t.name()),
            );
            return konst(0, Ty::Error, span);
        };
        let ty = if bop.is_comparison() {
            if t.is_vector() { Ty::Mask } else { Ty::Bool }
        } else {
            t
        };
        op(o, vec![a, b], ty, span)
    }

    /// Checks an expression; `want` is the type the context would like (it types
    /// literals; the caller checks the result).
    fn expr(&mut self, e: &ast::Expr, want: Option<Ty>) -> Expr {
        self.depth += 1;
        self.info.depth = self.info.depth.max(self.depth);
        self.count();
        let r = self.expr_inner(e, want);
        self.depth -= 1;
        r
    }

    fn expr_inner(&mut self, e: &ast::Expr, want: Option<Ty>) -> Expr {
        let span = e.span;
        let error = konst(0, Ty::Error, span);
        match &e.kind {
            ast::ExprKind::Int {
                value,
                unsigned: true,
            } => konst(*value as u32, Ty::U32, span),
            ast::ExprKind::Int {
                value,
                unsigned: false,
            } => self.int_lit(*value as i64, want, span),
            ast::ExprKind::Float(f) => konst(f.to_bits(), Ty::F32, span),
            ast::ExprKind::Bool(b) => konst(u32::from(*b), Ty::Bool, span),
            ast::ExprKind::Name(n) => {
                if let Some(v) = self.lookup(n) {
                    let Some(var) = self.var(v).cloned() else {
                        return error;
                    };
                    return match var.kind {
                        VarKind::Value => Expr {
                            kind: ExprKind::Var(v),
                            ty: var.ty,
                            span,
                        },
                        VarKind::Unroll { .. } => Expr {
                            kind: ExprKind::Var(v),
                            ty: Ty::I32,
                            span,
                        },
                        VarKind::Tensor => {
                            self.err(span, format!("tensor `{n}` is not a value: read it with `load({n}, c)` or `{n}[c]`"));
                            error
                        }
                        _ => {
                            self.err(span, format!("array `{n}` is not a value: index it"));
                            error
                        }
                    };
                }
                if let Some(c) = self.consts.get(n).cloned() {
                    return match c.flex {
                        Some(v) => self.int_lit(v, want, span),
                        None => konst(c.bits, c.ty, span),
                    };
                }
                self.unknown_name(n, span);
                error
            }
            ast::ExprKind::Unary(uop, x) => {
                let x = self.expr(x, want);
                let t = x.ty;
                let zero_vec = |bits: u32| {
                    op(
                        Op::Broadcast,
                        vec![konst(bits, Ty::I32, span)],
                        Ty::VI32,
                        span,
                    )
                };
                match (uop, t) {
                    (_, Ty::Error) => error,
                    (UnOp::Neg, Ty::I32 | Ty::U32) => {
                        op(Op::Sub, vec![konst(0, t, span), x], t, span)
                    }
                    (UnOp::Neg, Ty::VI32) => op(Op::Sub, vec![zero_vec(0), x], t, span),
                    (UnOp::Neg, Ty::F32 | Ty::VF32) => op(Op::Fneg, vec![x], t, span),
                    (UnOp::Not, Ty::Bool) => op(Op::Xor, vec![x, konst(1, t, span)], t, span),
                    (UnOp::BitNot, Ty::I32 | Ty::U32) => {
                        op(Op::Xor, vec![x, konst(u32::MAX, t, span)], t, span)
                    }
                    (UnOp::BitNot, Ty::VI32) => op(Op::Xor, vec![x, zero_vec(u32::MAX)], t, span),
                    (UnOp::BitNot, Ty::Mask) => op(Op::MaskNot, vec![x], t, span),
                    _ => {
                        let (sym, hint) = match uop {
                            UnOp::Neg => ("-", ""),
                            UnOp::Not => (
                                "!",
                                if t == Ty::Mask {
                                    "; use `~` on masks"
                                } else {
                                    ""
                                },
                            ),
                            UnOp::BitNot => (
                                "~",
                                if t == Ty::Bool {
                                    "; use `!` on bools"
                                } else {
                                    ""
                                },
                            ),
                        };
                        self.err(
                            span,
                            format!("`{sym}` does not apply to a `{}`{hint}", t.name()),
                        );
                        error
                    }
                }
            }
            ast::ExprKind::Binary(bop, a, b) => {
                let operand_want =
                    if bop.is_comparison() || matches!(bop, BinOp::LogAnd | BinOp::LogOr) {
                        None
                    } else {
                        want
                    };
                let (x, y) = self.pair(a, b, operand_want);
                // The operator's own span: between the operands.
                let op_span = Span {
                    start: a.span.end,
                    end: b.span.start,
                };
                let op_span = self.trim(op_span);
                self.binary_typed(*bop, x, y, span, op_span)
            }
            ast::ExprKind::Cond(c, a, b) => {
                let c = self.cond(c, "the condition of `?:`");
                let (x, y) = self.pair(a, b, want);
                if c.ty == Ty::Error || x.ty == Ty::Error || y.ty == Ty::Error {
                    return error;
                }
                if x.ty != y.ty || !x.ty.is_value() {
                    self.err(
                        span,
                        format!(
                            "the alternatives of `?:` must have one type, found `{}` and `{}`",
                            x.ty.name(),
                            y.ty.name()
                        ),
                    );
                    return error;
                }
                let ty = x.ty;
                Expr {
                    kind: ExprKind::Cond(Box::new(c), Box::new(x), Box::new(y)),
                    ty,
                    span,
                }
            }
            ast::ExprKind::Index(base, idx) => self.index(e, base, idx),
            ast::ExprKind::TypeCall { ty, args } => self.type_call(*ty, args, span, want),
            ast::ExprKind::Call {
                name,
                name_span,
                args,
            } => self.call(name, *name_span, args, span, want),
        }
    }

    /// The span shrunk to its text without surrounding blanks or parentheses.
    fn trim(&self, s: Span) -> Span {
        let text = self.src.get(s.start as usize..s.end as usize).unwrap_or("");
        let t = text.trim_start_matches(|c: char| c.is_whitespace() || c == ')');
        let start = s.start as usize + (text.len() - t.len());
        let t2 = t.trim_end_matches(|c: char| c.is_whitespace() || c == '(');
        Span::new(start, start + t2.len())
    }

    fn index(&mut self, e: &ast::Expr, base: &ast::Expr, idx: &ast::Expr) -> Expr {
        let span = e.span;
        let error = konst(0, Ty::Error, span);
        if let Some(root) = self.element_root(base, idx) {
            let Some((root, ty)) = root else { return error };
            let kind = match root {
                PlaceRoot::RegElem(v, k) => ExprKind::RegElem(v, k),
                PlaceRoot::LocalElem(v, i) => ExprKind::LocalElem(v, i),
                PlaceRoot::TensorElem(v, c) => ExprKind::TensorElem(v, c),
                PlaceRoot::Var(v) => ExprKind::Var(v),
            };
            return Expr { kind, ty, span };
        }
        let b = self.expr(base, None);
        match b.ty {
            Ty::Error => error,
            Ty::Int4 => match self.const_index(idx, 4, "the component index of an `int4`") {
                Some(k) => Expr {
                    kind: ExprKind::Component(Box::new(b), k),
                    ty: Ty::I32,
                    span,
                },
                None => error,
            },
            Ty::VF32 | Ty::VI32 => {
                self.info.lane_use.get_or_insert(span);
                if self.wheres > 0 {
                    self.err(span, "a vector lane cannot be read inside `where`: the lanes outside the mask are unspecified");
                    return error;
                }
                let k = self.expr(idx, Some(Ty::I32));
                if !self.expect(&k, Ty::I32, "for a lane index") {
                    return error;
                }
                let ty = b.ty.lane().unwrap_or(Ty::Error);
                Expr {
                    kind: ExprKind::Lane(Box::new(b), Box::new(k)),
                    ty,
                    span,
                }
            }
            t => {
                self.err(base.span, format!("a `{}` cannot be indexed", t.name()));
                error
            }
        }
    }

    fn arity(
        &mut self,
        name: &str,
        args: &[ast::Expr],
        n: std::ops::RangeInclusive<usize>,
        span: Span,
    ) -> bool {
        if n.contains(&args.len()) {
            return true;
        }
        let want = if n.start() == n.end() {
            format!("{}", n.start())
        } else {
            format!("{} to {}", n.start(), n.end())
        };
        let s = if *n.end() == 1 { "" } else { "s" };
        self.err(
            span,
            format!("`{name}` takes {want} argument{s}, found {}", args.len()),
        );
        false
    }

    fn tensor_arg(&mut self, name: &str, a: &ast::Expr) -> Option<(VarId, Elem)> {
        if let ast::ExprKind::Name(n) = &a.kind
            && let Some(v) = self.lookup(n)
            && let Some(Var {
                ty: Ty::Tensor(e), ..
            }) = self.var(v)
        {
            return Some((v, *e));
        }
        let x = self.expr(a, None);
        if x.ty != Ty::Error {
            self.err(
                a.span,
                format!(
                    "expected a tensor for the 1st argument of `{name}`, found `{}`",
                    x.ty.name()
                ),
            );
        }
        None
    }

    /// Checks argument `i` of `name` against `want`.
    fn arg(&mut self, name: &str, args: &[ast::Expr], i: usize, want: Ty) -> Option<Expr> {
        let a = args.get(i)?;
        let e = self.expr(a, Some(want));
        self.expect(
            &e,
            want,
            &format!("for the {} argument of `{name}`", ordinal(i)),
        )
        .then_some(e)
    }

    fn type_call(
        &mut self,
        ty: TypeName,
        args: &[ast::Expr],
        span: Span,
        _want: Option<Ty>,
    ) -> Expr {
        let error = konst(0, Ty::Error, span);
        let target = type_of(ty);
        if target == Ty::Int4 {
            if !self.arity("int4", args, 1..=4, span) {
                return error;
            }
            let mut parts = Vec::new();
            for i in 0..4 {
                if i < args.len() {
                    match self.arg("int4", args, i, Ty::I32) {
                        Some(e) => parts.push(e),
                        None => return error,
                    }
                } else {
                    parts.push(konst(0, Ty::I32, span));
                }
            }
            return op(Op::MakeInt4, parts, Ty::Int4, span);
        }
        let name = target.name();
        if !self.arity(&name, args, 1..=1, span) {
            return error;
        }
        let Some(a) = args.first() else { return error };
        // A literal converted to a scalar type is just a literal of it.
        let hint = match target {
            Ty::VF32 => Some(Ty::F32),
            Ty::VI32 => Some(Ty::I32),
            t if self.flexible(a) => Some(t),
            _ => None,
        };
        let x = self.expr(a, hint);
        let from = x.ty;
        let relabel = |x: Expr, ty: Ty| Expr { ty, span, ..x };
        match (target, from) {
            (_, Ty::Error) => error,
            (t, f) if t == f => relabel(x, t),
            (Ty::F32, Ty::I32 | Ty::Bool) => op(Op::CvtF32I32, vec![x], Ty::F32, span),
            (Ty::F32, Ty::U32) => Expr {
                kind: ExprKind::U32ToF32(Box::new(x)),
                ty: Ty::F32,
                span,
            },
            (Ty::I32, Ty::F32) => op(Op::CvtI32F32, vec![x], Ty::I32, span),
            (Ty::U32, Ty::F32) => Expr {
                kind: ExprKind::F32ToU32(Box::new(x)),
                ty: Ty::U32,
                span,
            },
            (Ty::I32 | Ty::U32, Ty::I32 | Ty::U32 | Ty::Bool) => relabel(x, target),
            (Ty::VF32, Ty::VI32) => op(Op::CvtF32I32, vec![x], Ty::VF32, span),
            (Ty::VI32, Ty::VF32) => op(Op::CvtI32F32, vec![x], Ty::VI32, span),
            (Ty::VF32, Ty::F32) | (Ty::VI32, Ty::I32) => op(Op::Broadcast, vec![x], target, span),
            (Ty::VI32, Ty::U32) => op(Op::Broadcast, vec![relabel(x, Ty::I32)], target, span),
            _ => {
                self.err(
                    span,
                    format!("there is no conversion from `{}` to `{name}`", from.name()),
                );
                error
            }
        }
    }

    fn call(
        &mut self,
        name: &str,
        name_span: Span,
        args: &[ast::Expr],
        span: Span,
        want: Option<Ty>,
    ) -> Expr {
        let error = konst(0, Ty::Error, span);
        if let Some(&f) = self.fn_by_name.get(name) {
            let Some(sig) = self.sigs.get(f.0 as usize).cloned() else {
                return error;
            };
            if !self.arity(name, args, sig.params.len()..=sig.params.len(), span) {
                return error;
            }
            let mut out = Vec::new();
            let mut ok = true;
            for (i, (pty, _)) in sig.params.iter().enumerate() {
                if let Ty::Tensor(pe) = pty {
                    match args.get(i).and_then(|a| self.tensor_arg(name, a)) {
                        Some((v, e)) if e == *pe => out.push(Expr {
                            kind: ExprKind::Var(v),
                            ty: *pty,
                            span,
                        }),
                        Some((_, e)) => {
                            ok = false;
                            let s = args.get(i).map_or(span, |a| a.span);
                            self.err(
                                s,
                                format!(
                                    "expected `{}` for the {} argument of `{name}`, found `{}`",
                                    pty.name(),
                                    ordinal(i),
                                    Ty::Tensor(e).name()
                                ),
                            );
                        }
                        None => ok = false,
                    }
                } else {
                    match self.arg(name, args, i, *pty) {
                        Some(e) => out.push(e),
                        None => ok = false,
                    }
                }
            }
            if !ok {
                return error;
            }
            self.info
                .calls
                .push((f, name_span, self.wheres > 0, self.mult, self.depth));
            let _ = sig.span;
            return Expr {
                kind: ExprKind::Call(f, out),
                ty: sig.ret,
                span,
            };
        }
        if !BUILTINS.contains(&name) {
            let mut names: Vec<&str> = BUILTINS.to_vec();
            names.extend(self.fn_by_name.keys().map(String::as_str));
            let hint = suggest(name, names.into_iter());
            self.err(name_span, format!("unknown function `{name}`{hint}"));
            return error;
        }
        self.builtin(name, name_span, args, span, want)
            .unwrap_or(error)
    }

    /// A one-argument built-in on `f32`/`f32x64` (or on `types`).
    fn unary_builtin(
        &mut self,
        name: &str,
        args: &[ast::Expr],
        _span: Span,
        want: Option<Ty>,
        types: &[Ty],
    ) -> Option<Expr> {
        let a = args.first()?;
        let hint = if self.flexible(a) {
            want.map(|t| t.lane().unwrap_or(t)).or(Some(Ty::F32))
        } else {
            None
        };
        let x = self.expr(a, hint);
        if x.ty == Ty::Error {
            return None;
        }
        if !types.contains(&x.ty) {
            let list: Vec<String> = types.iter().map(|t| format!("`{}`", t.name())).collect();
            self.err(
                a.span,
                format!(
                    "`{name}` takes {}, found `{}`",
                    list.join(" or "),
                    x.ty.name()
                ),
            );
            return None;
        }
        Some(x)
    }

    fn builtin(
        &mut self,
        name: &str,
        name_span: Span,
        args: &[ast::Expr],
        span: Span,
        want: Option<Ty>,
    ) -> Option<Expr> {
        let n = match name {
            "core" | "all" | "iota" => 0..=0,
            "store" | "select" => 3..=3,
            "dim" | "load" | "min" | "max" | "pack_bf16" | "rotate" | "shuffle" => 2..=2,
            _ => 1..=1,
        };
        if !self.arity(name, args, n, span) {
            return None;
        }
        let in_where = self.wheres > 0;
        Some(match name {
            "index" | "size" => {
                let d =
                    self.const_index(args.first()?, 4, &format!("the dimension of `{name}`"))?;
                Expr {
                    kind: ExprKind::Launch {
                        size: name == "size",
                        dim: d,
                    },
                    ty: Ty::I32,
                    span,
                }
            }
            "core" => op(Op::CoreId, vec![], Ty::I32, span),
            "all" => konst(u32::MAX, Ty::Mask, span),
            "iota" => op(Op::Iota, vec![], Ty::VI32, span),
            "dim" => {
                let (t, _) = self.tensor_arg(name, args.first()?)?;
                let d = self.const_index(args.get(1)?, 4, "the dimension of `dim`")?;
                Expr {
                    kind: ExprKind::Dim(t, d),
                    ty: Ty::I32,
                    span,
                }
            }
            "load" | "store" => {
                let (t, e) = self.tensor_arg(name, args.first()?)?;
                let c = self.arg(name, args, 1, Ty::Int4)?;
                let vty = match e {
                    Elem::F32 => Ty::VF32,
                    Elem::I32 | Elem::U32 => Ty::VI32,
                    Elem::Bf16 => Ty::VBF16,
                };
                if name == "load" {
                    Expr {
                        kind: ExprKind::Load(t, Box::new(c)),
                        ty: vty,
                        span,
                    }
                } else {
                    let v = self.arg(name, args, 2, vty)?;
                    Expr {
                        kind: ExprKind::Store(t, Box::new(c), Box::new(v)),
                        ty: Ty::Void,
                        span,
                    }
                }
            }
            // `lanes(n)` is none for n <= 0, but `Op::Lanes` (`pfirst`) reads its
            // operand as unsigned, which would make a negative n every lane.
            "lanes" => {
                let n = self.arg(name, args, 0, Ty::I32)?;
                let at = n.span;
                let n = op(Op::Max, vec![n, konst(0, Ty::I32, at)], Ty::I32, at);
                op(Op::Lanes, vec![n], Ty::Mask, span)
            }
            "count" | "unpack_lo" | "unpack_hi" | "pack_bf16" if in_where => {
                self.info.lane_use.get_or_insert(span);
                let why = if name == "count" {
                    "it counts every lane"
                } else {
                    "it moves elements between lanes"
                };
                self.err(name_span, format!("`{name}` cannot be used inside `where`: {why}, and the lanes outside the mask are unspecified"));
                return None;
            }
            "count" => {
                self.info.lane_use.get_or_insert(span);
                op(
                    Op::MaskCount,
                    vec![self.arg(name, args, 0, Ty::Mask)?],
                    Ty::I32,
                    span,
                )
            }
            "select" => {
                let m = self.expr(args.first()?, None);
                let (a, b) = self.pair(args.get(1)?, args.get(2)?, want);
                if m.ty == Ty::Error || a.ty == Ty::Error || b.ty == Ty::Error {
                    return None;
                }
                let (a, b) = Self::broadcast_pair(a, b);
                let ok = a.ty == b.ty
                    && ((m.ty == Ty::Mask && a.ty.is_vector())
                        || (m.ty == Ty::Bool
                            && a.ty.is_value()
                            && !a.ty.is_vector()
                            && a.ty != Ty::Mask
                            && a.ty != Ty::Int4));
                if !ok {
                    self.err(span, format!("`select` takes a `mask` and two vectors of one type (or a `bool` and two scalars), found `{}`, `{}` and `{}`", m.ty.name(), a.ty.name(), b.ty.name()));
                    return None;
                }
                let ty = a.ty;
                op(Op::Select, vec![m, a, b], ty, span)
            }
            "reduce_add" | "reduce_max" | "reduce_min" => {
                let x = self.unary_builtin(name, args, span, None, &[Ty::VF32, Ty::VI32])?;
                let o = match name {
                    "reduce_add" => Op::RedAdd,
                    "reduce_max" => Op::RedMax,
                    _ => Op::RedMin,
                };
                let ty = x.ty.lane().unwrap_or(Ty::Error);
                op(o, vec![x], ty, span)
            }
            "exp" | "sqrt" | "rsqrt" | "rcp" | "abs" => {
                let x = self.unary_builtin(name, args, span, want, &[Ty::F32, Ty::VF32])?;
                let o = match name {
                    "exp" => Op::Fexp,
                    "sqrt" => Op::Fsqrt,
                    "rsqrt" => Op::Frsqrt,
                    "rcp" => Op::Frcp,
                    _ => Op::Fabs,
                };
                let ty = x.ty;
                op(o, vec![x], ty, span)
            }
            "min" | "max" => {
                let (a, b) = self.pair(args.first()?, args.get(1)?, want);
                if a.ty == Ty::Error || b.ty == Ty::Error {
                    return None;
                }
                let (a, b) = Self::broadcast_pair(a, b);
                let max = name == "max";
                let ty = a.ty;
                if a.ty != b.ty {
                    self.err(
                        span,
                        format!(
                            "`{name}` needs operands of one type, found `{}` and `{}`",
                            a.ty.name(),
                            b.ty.name()
                        ),
                    );
                    return None;
                }
                match ty {
                    Ty::F32 | Ty::VF32 => {
                        op(if max { Op::Fmax } else { Op::Fmin }, vec![a, b], ty, span)
                    }
                    Ty::I32 | Ty::VI32 => {
                        op(if max { Op::Max } else { Op::Min }, vec![a, b], ty, span)
                    }
                    Ty::U32 => Expr {
                        kind: ExprKind::UMinMax(max, Box::new(a), Box::new(b)),
                        ty,
                        span,
                    },
                    _ => {
                        self.err(
                            span,
                            format!(
                                "`{name}` takes numbers or numeric vectors, found `{}`",
                                ty.name()
                            ),
                        );
                        return None;
                    }
                }
            }
            "unpack_lo" | "unpack_hi" => {
                self.info.lane_use.get_or_insert(span);
                let x = self.arg(name, args, 0, Ty::VBF16)?;
                op(
                    if name == "unpack_lo" {
                        Op::UnpackLo
                    } else {
                        Op::UnpackHi
                    },
                    vec![x],
                    Ty::VF32,
                    span,
                )
            }
            "pack_bf16" => {
                self.info.lane_use.get_or_insert(span);
                let a = self.arg(name, args, 0, Ty::VF32)?;
                let b = self.arg(name, args, 1, Ty::VF32)?;
                op(Op::Pack, vec![a, b], Ty::VBF16, span)
            }
            "rotate" | "shuffle" => {
                self.info.lane_use.get_or_insert(span);
                if in_where {
                    self.err(name_span, format!("`{name}` cannot be used inside `where`: it moves the lanes outside the mask, which are unspecified"));
                    return None;
                }
                let v =
                    self.unary_builtin(name, args, span, None, &[Ty::VF32, Ty::VI32, Ty::VBF16])?;
                let (o, idx_ty) = if name == "rotate" {
                    (Op::Rotate, Ty::I32)
                } else {
                    (Op::Permute, Ty::VI32)
                };
                let k = self.arg(name, args, 1, idx_ty)?;
                let ty = v.ty;
                op(o, vec![v, k], ty, span)
            }
            "bits" => {
                let x = self.unary_builtin(name, args, span, None, &[Ty::F32, Ty::VF32])?;
                let ty = if x.ty == Ty::F32 { Ty::I32 } else { Ty::VI32 };
                op(Op::Bitcast, vec![x], ty, span)
            }
            "as_f32" => {
                let x = self.unary_builtin(
                    name,
                    args,
                    span,
                    Some(Ty::I32),
                    &[Ty::I32, Ty::U32, Ty::VI32],
                )?;
                let ty = if x.ty == Ty::VI32 { Ty::VF32 } else { Ty::F32 };
                op(Op::Bitcast, vec![x], ty, span)
            }
            _ => return None,
        })
    }
}
