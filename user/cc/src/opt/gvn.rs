//! Common subexpressions: an instruction equal to one that dominates it (same
//! operation, operands, guard, passthru and result type) is replaced by it, walking the
//! dominator tree with a scoped table. Operands of commutative operations are put in
//! a fixed order first, so `a + b` and `b + a` meet.
//!
//! Only pure operations take part ([`super::is_pure`]): a division may (if the first
//! did not fault, neither does the second); loads never do, since a store may come
//! between them and there is no alias analysis. Left out: values equal through block
//! parameters (full GVN with phis).

use crate::fxhash::HashMap;

use crate::ir::{Cond, Function, Guard, Op, Type, Value};

use super::dom::DomTree;
use super::{is_pure, resolve, substitute};

#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    op: Op,
    args: Vec<Value>,
    guard: Option<Guard>,
    passthru: Option<Value>,
    ty: Type,
}

fn commutative(op: Op) -> bool {
    matches!(
        op,
        Op::Add
            | Op::Mul
            | Op::And
            | Op::Or
            | Op::Xor
            | Op::Min
            | Op::Max
            | Op::Minu
            | Op::Maxu
            | Op::Fadd
            | Op::Fmul
            | Op::Fmin
            | Op::Fmax
            | Op::MaskAnd
            | Op::MaskOr
            | Op::MaskXor
            | Op::Icmp(Cond::Eq | Cond::Ne)
            | Op::Fcmp(Cond::Eq | Cond::Ne)
    )
}

/// Replaces each redundant pure instruction of `f` by the equal one dominating it.
pub fn run(f: &mut Function) -> bool {
    let dom = DomTree::new(f);
    let Some(&entry) = dom.rpo.first() else {
        return false;
    };
    let mut map: HashMap<Value, Value> = HashMap::default();
    let mut table: HashMap<Key, Value> = HashMap::default();
    // Keys added in each open scope, removed when the walk leaves the block.
    let mut undo: Vec<Key> = Vec::new();
    let mut stack: Vec<(crate::ir::Block, Option<usize>)> = vec![(entry, None)];
    while let Some((b, mark)) = stack.pop() {
        if let Some(mark) = mark {
            for k in undo.drain(mark..) {
                table.remove(&k);
            }
            continue;
        }
        stack.push((b, Some(undo.len())));
        for &i in &f.block(b).insts {
            let d = f.inst(i);
            let Some(r) = d.result else { continue };
            if !is_pure(d.op) {
                continue;
            }
            let mut args: Vec<Value> = d.args.iter().map(|&v| resolve(&map, v)).collect();
            if commutative(d.op) && args.len() == 2 && args[1] < args[0] {
                args.swap(0, 1);
            }
            let key = Key {
                op: d.op,
                args,
                guard: d.guard.map(|g| Guard {
                    mask: resolve(&map, g.mask),
                    negated: g.negated,
                }),
                passthru: d.passthru.map(|p| resolve(&map, p)),
                ty: f.ty(r),
            };
            match table.entry(key) {
                std::collections::hash_map::Entry::Occupied(e) => {
                    map.insert(r, *e.get());
                }
                std::collections::hash_map::Entry::Vacant(e) => {
                    undo.push(e.key().clone());
                    e.insert(r);
                }
            }
        }
        for &c in dom.children(b).iter().rev() {
            stack.push((c, None));
        }
    }
    let changed = !map.is_empty();
    substitute(f, &map);
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::parse::parse;
    use crate::ir::print::print;
    use crate::ir::verify::verify;

    #[test]
    fn dominated_duplicates_merge_siblings_and_loads_do_not() {
        let mut f = parse(
            "kernel k(tensor<i32> a) scratch 0 {
b0:
  %0:i32 = idx 0
  %1:i32 = idx 1
  %2:i32 = add %0, %1
  %3:int4 = make_int4 %2, %2, %2, %2
  %4:i32x64 = load_tensor t0, %3
  br %0, b1, b2
b1:
  %5:i32 = add %1, %0
  %6:int4 = make_int4 %5, %5, %5, %5
  %7:i32x64 = load_tensor t0, %6
  %8:i32 = mul %0, %0
  store_tensor t0, %6, %7
  jump b3
b2:
  %9:i32 = mul %0, %0
  %10:int4 = make_int4 %9, %9, %9, %9
  store_tensor t0, %10, %4
  jump b3
b3:
  halt
}
",
        )
        .unwrap();
        verify(&f).unwrap();
        assert!(run(&mut f));
        verify(&f).unwrap();
        super::super::dce::run(&mut f);
        let want = "kernel k(tensor<i32> a) scratch 0 {
b0:
  %0:i32 = idx 0
  %1:i32 = idx 1
  %2:i32 = add %0, %1
  %3:int4 = make_int4 %2, %2, %2, %2
  %4:i32x64 = load_tensor t0, %3
  br %0, b1, b2
b1:
  %7:i32x64 = load_tensor t0, %3
  store_tensor t0, %3, %7
  jump b3
b2:
  %9:i32 = mul %0, %0
  %10:int4 = make_int4 %9, %9, %9, %9
  store_tensor t0, %10, %4
  jump b3
b3:
  halt
}
";
        assert_eq!(print(&f), print(&parse(want).unwrap()));
    }
}
