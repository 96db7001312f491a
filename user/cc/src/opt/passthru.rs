//! Passthru folding: `y = copy x @g else p`, where `x` is made by an instruction guarded
//! by the same `g` without a passthru and nothing else uses `x`, becomes that
//! instruction with passthru `p` (and `y` is replaced by `x`). The SG1 keeps the old
//! lanes of a guarded destination, so the merge then costs nothing: the register
//! allocator puts `x` in `p`'s register.
//!
//! `p` must be available where `x` is made (its definition dominates it); otherwise
//! the merge stays. Left out: merges whose guard differs from the instruction's (a
//! subset of lanes would need a second guard).

use crate::fxhash::HashMap;

use crate::ir::{Block, Function, Inst, Value, ValueDef};

use super::dom::DomTree;
use super::{substitute, use_counts};

/// Folds masked merges into the guarded instructions they merge.
pub fn run(f: &mut Function) -> bool {
    let dom = DomTree::new(f);
    let uses = use_counts(f);
    let mut at: Vec<Option<(Block, usize)>> = vec![None; f.insts.len()];
    for &b in &dom.rpo {
        for (k, &i) in f.block(b).insts.iter().enumerate() {
            at[i.0 as usize] = Some((b, k));
        }
    }
    let available = |v: Value, at_inst: Inst, at: &[Option<(Block, usize)>]| -> bool {
        let Some((b, k)) = at[at_inst.0 as usize] else {
            return false;
        };
        match f.def(v) {
            ValueDef::Param(d, _) => dom.dominates(d, b),
            ValueDef::Inst(i) => match at[i.0 as usize] {
                Some((d, j)) if d == b => j < k,
                Some((d, _)) => dom.dominates(d, b),
                None => false,
            },
        }
    };
    let mut map: HashMap<Value, Value> = HashMap::default();
    let mut folds: Vec<(Inst, Value)> = Vec::new();
    for &b in &dom.rpo {
        for &i in &f.block(b).insts {
            let d = f.inst(i);
            let (Some(g), Some(p), Some(y)) = (d.guard, d.passthru, d.result) else {
                continue;
            };
            if d.op != crate::ir::Op::Copy {
                continue;
            }
            let Some(&x) = d.args.first() else { continue };
            let Some(xi) = f.def_inst(x) else { continue };
            let xd = f.inst(xi);
            if xd.guard != Some(g)
                || xd.passthru.is_some()
                || uses[x.0 as usize] != 1
                || f.ty(x) != f.ty(p)
                || !available(p, xi, &at)
            {
                continue;
            }
            folds.push((xi, p));
            map.insert(y, x);
        }
    }
    for &(xi, p) in &folds {
        f.inst_mut(xi).passthru = Some(p);
    }
    substitute(f, &map);
    // The copies are now unused; remove them here so the pass stands alone.
    let dead: std::collections::HashSet<Value> = map.keys().copied().collect();
    for b in 0..f.blocks.len() {
        let keep: Vec<Inst> = f.blocks[b]
            .insts
            .iter()
            .copied()
            .filter(|&i| !f.inst(i).result.is_some_and(|r| dead.contains(&r)))
            .collect();
        f.blocks[b].insts = keep;
    }
    !folds.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::parse::parse;
    use crate::ir::print::print;
    use crate::ir::verify::verify;

    #[test]
    fn merge_folds_into_the_guarded_instruction() {
        let mut f = parse(
            "kernel k(tensor<f32> a) scratch 0 {
b0:
  %0:i32 = const 0
  %1:int4 = make_int4 %0, %0, %0, %0
  %2:i32 = idx 0
  %3:mask = lanes %2
  %4:f32x64 = load_tensor t0, %1
  %5:f32x64 = fadd %4, %4 @%3
  %6:f32x64 = copy %5 @%3 else %4
  %7:f32x64 = fmul %4, %4 @!%3
  %8:f32x64 = copy %7 @%3 else %4
  store_tensor t0, %1, %6
  store_tensor t0, %1, %8
  halt
}
",
        )
        .unwrap();
        verify(&f).unwrap();
        assert!(run(&mut f));
        verify(&f).unwrap();
        let want = "kernel k(tensor<f32> a) scratch 0 {
b0:
  %0:i32 = const 0
  %1:int4 = make_int4 %0, %0, %0, %0
  %2:i32 = idx 0
  %3:mask = lanes %2
  %4:f32x64 = load_tensor t0, %1
  %5:f32x64 = fadd %4, %4 @%3 else %4
  %7:f32x64 = fmul %4, %4 @!%3
  %8:f32x64 = copy %7 @%3 else %4
  store_tensor t0, %1, %5
  store_tensor t0, %1, %8
  halt
}
";
        assert_eq!(print(&f), print(&parse(want).unwrap()));
    }

    #[test]
    fn passthru_defined_later_blocks_the_fold() {
        let text = "kernel k(tensor<f32> a) scratch 0 {
b0:
  %0:i32 = const 0
  %1:int4 = make_int4 %0, %0, %0, %0
  %2:i32 = idx 0
  %3:mask = lanes %2
  %4:f32x64 = load_tensor t0, %1 @%3
  %9:f32x64 = load_tensor t0, %1
  %6:f32x64 = copy %4 @%3 else %9
  store_tensor t0, %1, %6
  halt
}
";
        let mut f = parse(text).unwrap();
        assert!(!run(&mut f));
        assert_eq!(print(&f), print(&parse(text).unwrap()));
    }
}
