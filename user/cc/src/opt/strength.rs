//! Strength reduction of address arithmetic in loops.
//!
//! A basic induction variable is a parameter `i` of a loop's header that every back
//! edge passes as `i + s` (`s` a constant, one per back edge). In the loop, an
//! unguarded `i32` expression built from `i` by multiplying or shifting by constants
//! and adding constants or one loop-invariant value is affine: `i·a + inv + c`. Each
//! such expression with a multiply in it that something other than another such
//! expression uses (a "root") is replaced by a new induction variable `j`: a header
//! parameter starting at `init·a + inv + c` (computed in the preheader) and advanced
//! by `s·a` on each back edge. Roots that differ only in `c` share one `j` and become
//! `j + (c − c0)`. Wrapping arithmetic is a ring, so the results are exact.
//!
//! The root instruction is rewritten in place (to a copy of `j`, or an add), so its
//! users need not change; [`super::fold`] and [`super::dce`] clean up after. Loops
//! need a preheader ([`super::licm`] makes them). Left out: replacing the loop's exit
//! test so that `i` itself can die (linear-function test replacement), and
//! non-constant steps.

use crate::fxhash::HashMap;

use crate::ir::{Block, Function, Inst, Op, Terminator, Type, Value, ValueDef};

use super::dom::DomTree;
use super::loops::{Loop, find_loops, preheader};

/// `iv·a + inv + c`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Form {
    iv: Value,
    a: u32,
    inv: Option<Value>,
    c: u32,
    scaled: bool,
}

/// Reduces the strength of affine address arithmetic in the loops of `f`.
pub fn run(f: &mut Function) -> bool {
    let dom = DomTree::new(f);
    let mut changed = false;
    for l in find_loops(f, &dom) {
        if let Some(ph) = preheader(f, &l, &dom) {
            changed |= reduce(f, &l, ph, &dom);
        }
    }
    changed
}

/// The block each placed instruction is in.
fn blocks_of(f: &Function) -> Vec<Option<Block>> {
    let mut at = vec![None; f.insts.len()];
    for (b, bd) in f.blocks.iter().enumerate() {
        for &i in &bd.insts {
            at[i.0 as usize] = Some(Block(b as u32));
        }
    }
    at
}

/// The edges from `latch` to `header`: the argument lists, or `None` if there is not
/// exactly one.
fn back_edge_args(f: &Function, latch: Block, header: Block) -> Option<Vec<Value>> {
    match &f.block(latch).term {
        Terminator::Jump(t) if t.block == header => Some(t.args.clone()),
        Terminator::Branch {
            then, otherwise, ..
        } => match (then.block == header, otherwise.block == header) {
            (true, false) => Some(then.args.clone()),
            (false, true) => Some(otherwise.args.clone()),
            _ => None,
        },
        _ => None,
    }
}

fn push_back_edge_arg(f: &mut Function, latch: Block, header: Block, v: Value) {
    match &mut f.block_mut(latch).term {
        Terminator::Jump(t) => t.args.push(v),
        Terminator::Branch {
            then, otherwise, ..
        } => {
            if then.block == header {
                then.args.push(v);
            } else {
                otherwise.args.push(v);
            }
        }
        Terminator::Halt => {}
    }
}

fn reduce(f: &mut Function, l: &Loop, ph: Block, dom: &DomTree) -> bool {
    let h = l.header;
    let at = blocks_of(f);
    let in_loop = |f: &Function, v: Value| match f.def(v) {
        ValueDef::Param(b, _) => l.contains(b),
        ValueDef::Inst(i) => at[i.0 as usize].is_some_and(|b| l.contains(b)),
    };
    let Terminator::Jump(entry) = &f.block(ph).term else {
        return false;
    };
    let inits = entry.args.clone();
    let mut latch_args = Vec::new();
    for &t in &l.latches {
        match back_edge_args(f, t, h) {
            Some(args) => latch_args.push(args),
            None => return false,
        }
    }

    // Basic induction variables and their step on each back edge.
    let mut steps: HashMap<Value, Vec<u32>> = HashMap::default();
    for (k, &p) in f.block(h).params.iter().enumerate() {
        if f.ty(p) != Type::I32 {
            continue;
        }
        let step = |args: &Vec<Value>| -> Option<u32> {
            let d = f.inst(f.def_inst(*args.get(k)?)?);
            if d.op != Op::Add || d.guard.is_some() {
                return None;
            }
            match d.args[..] {
                [x, c] | [c, x] if x == p => f.as_const(c),
                _ => None,
            }
        };
        if let Some(s) = latch_args.iter().map(step).collect::<Option<Vec<u32>>>() {
            steps.insert(p, s);
        }
    }
    if steps.is_empty() {
        return false;
    }

    // Affine forms of the loop's instructions, in an order where definitions come
    // first.
    let mut forms: HashMap<Value, (Form, Inst)> = HashMap::default();
    let form_of = |forms: &HashMap<Value, (Form, Inst)>, v: Value| -> Option<Form> {
        if steps.contains_key(&v) {
            return Some(Form {
                iv: v,
                a: 1,
                inv: None,
                c: 0,
                scaled: false,
            });
        }
        forms.get(&v).map(|x| x.0)
    };
    for &b in dom.rpo.iter().filter(|&&b| l.contains(b)) {
        for &i in &f.block(b).insts {
            let d = f.inst(i);
            let Some(r) = d.result else { continue };
            if d.guard.is_some() || f.ty(r) != Type::I32 || d.args.len() != 2 {
                continue;
            }
            let (x, y) = (d.args[0], d.args[1]);
            let konst = |v: Value| f.as_const(v);
            let form = match d.op {
                Op::Add => {
                    let one = |x: Value, y: Value| -> Option<Form> {
                        let mut g = form_of(&forms, x)?;
                        if let Some(c) = konst(y) {
                            g.c = g.c.wrapping_add(c);
                        } else if !in_loop(f, y) && g.inv.is_none() {
                            g.inv = Some(y);
                        } else {
                            return None;
                        }
                        Some(g)
                    };
                    one(x, y).or_else(|| one(y, x))
                }
                Op::Sub => form_of(&forms, x).zip(konst(y)).map(|(mut g, c)| {
                    g.c = g.c.wrapping_sub(c);
                    g
                }),
                Op::Mul | Op::Shl => {
                    let one = |x: Value, y: Value| -> Option<Form> {
                        let g = form_of(&forms, x)?;
                        let k = konst(y)?;
                        let k = if d.op == Op::Shl { 1u32 << (k & 31) } else { k };
                        g.inv.is_none().then_some(Form {
                            a: g.a.wrapping_mul(k),
                            c: g.c.wrapping_mul(k),
                            scaled: true,
                            ..g
                        })
                    };
                    one(x, y).or_else(|| if d.op == Op::Mul { one(y, x) } else { None })
                }
                _ => None,
            };
            if let Some(g) = form {
                forms.insert(r, (g, i));
            }
        }
    }

    // Roots: scaled forms used by something that is not itself a form.
    let mut used_outside_forms: HashMap<Value, bool> = HashMap::default();
    for (b, bd) in f.blocks.iter().enumerate() {
        for &i in &bd.insts {
            let feeds_form = f.inst(i).result.is_some_and(|r| forms.contains_key(&r));
            for v in f.inst_uses(i) {
                if !feeds_form {
                    used_outside_forms.insert(v, true);
                }
            }
        }
        for v in f.term_uses(Block(b as u32)) {
            used_outside_forms.insert(v, true);
        }
    }
    let mut roots: Vec<(Value, Form, Inst)> = forms
        .iter()
        .filter(|(v, (g, _))| g.scaled && used_outside_forms.contains_key(v))
        .map(|(&v, &(g, i))| (v, g, i))
        .collect();
    roots.sort_by_key(|r| r.0);
    if roots.is_empty() {
        return false;
    }

    // One new induction variable per (iv, a, inv).
    let mut made: HashMap<(Value, u32, Option<Value>), (Value, u32)> = HashMap::default();
    for (_, g, i) in roots {
        let key = (g.iv, g.a, g.inv);
        let (j, c0) = match made.get(&key) {
            Some(&x) => x,
            None => {
                let k = f
                    .block(h)
                    .params
                    .iter()
                    .position(|&p| p == g.iv)
                    .unwrap_or(0);
                let Some(&init) = inits.get(k) else { continue };
                let span = f.inst(i).span;
                let emit = |f: &mut Function, b: Block, op: Op, args: Vec<Value>| {
                    let n = f.create_inst(op, args, Some(Type::I32), None, None, span);
                    f.block_mut(b).insts.push(n);
                    f.inst(n).result.unwrap_or(Value(0))
                };
                let a = emit(f, ph, Op::Const(g.a), vec![]);
                let mut start = emit(f, ph, Op::Mul, vec![init, a]);
                if let Some(inv) = g.inv {
                    start = emit(f, ph, Op::Add, vec![start, inv]);
                }
                let c = emit(f, ph, Op::Const(g.c), vec![]);
                start = emit(f, ph, Op::Add, vec![start, c]);
                let j = f.add_block_param(h, Type::I32);
                if let Terminator::Jump(t) = &mut f.block_mut(ph).term {
                    t.args.push(start);
                }
                let latches = l.latches.clone();
                for (t, s) in latches.into_iter().zip(steps[&g.iv].clone()) {
                    let sa = emit(f, t, Op::Const(s.wrapping_mul(g.a)), vec![]);
                    let next = emit(f, t, Op::Add, vec![j, sa]);
                    push_back_edge_arg(f, t, h, next);
                }
                made.insert(key, (j, g.c));
                (j, g.c)
            }
        };
        // The root becomes j, or j plus the difference of the constants.
        let diff = g.c.wrapping_sub(c0);
        if diff == 0 {
            let d = f.inst_mut(i);
            d.op = Op::Copy;
            d.args = vec![j];
        } else {
            let span = f.inst(i).span;
            let c = f.create_inst(Op::Const(diff), vec![], Some(Type::I32), None, None, span);
            let Some(b) = at[i.0 as usize] else { continue };
            let Some(pos) = f.block(b).insts.iter().position(|&x| x == i) else {
                continue;
            };
            f.insert(b, pos, c);
            let cv = f.inst(c).result.unwrap_or(j);
            let d = f.inst_mut(i);
            d.op = Op::Add;
            d.args = vec![j, cv];
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::parse::parse;
    use crate::ir::print::print;
    use crate::ir::verify::verify;

    #[test]
    fn scaled_index_plus_invariant_becomes_an_induction_variable() {
        let mut f = parse(
            "kernel k(tensor<f32> a, i32 n) scratch 4096 {
b0:
  %0:i32 = const 0
  %1:i32 = arg 0
  %2:i32 = const 256
  %3:i32 = const 1
  %4:i32 = idx 0
  jump b1(%0)
b1(%5:i32):
  %6:i32 = mul %5, %2
  %7:i32 = add %6, %4
  %8:f32x64 = load_scratch_vec 0, %7
  store_scratch_vec 0, %7, %8
  %9:i32 = add %5, %3
  %10:i32 = icmp.lt %9, %1
  br %10, b1(%9), b2
b2:
  halt
}
",
        )
        .unwrap();
        verify(&f).unwrap();
        assert!(run(&mut f));
        verify(&f).unwrap();
        super::super::fold::run(&mut f);
        super::super::dce::run(&mut f);
        verify(&f).unwrap();
        let want = "kernel k(tensor<f32> a, i32 n) scratch 4096 {
b0:
  %0:i32 = const 0
  %1:i32 = arg 0
  %3:i32 = const 1
  %4:i32 = idx 0
  jump b1(%0, %4)
b1(%5:i32, %30:i32):
  %8:f32x64 = load_scratch_vec 0, %30
  store_scratch_vec 0, %30, %8
  %9:i32 = add %5, %3
  %10:i32 = icmp.lt %9, %1
  %31:i32 = const 256
  %32:i32 = add %30, %31
  br %10, b1(%9, %32), b2
b2:
  halt
}
";
        assert_eq!(print(&f), print(&parse(want).unwrap()));
    }
}
