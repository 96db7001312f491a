//! Dead-code elimination: instructions whose results nothing live uses, block
//! parameters nothing live uses (with the jump arguments that feed them), and
//! everything in blocks the entry cannot reach.
//!
//! Liveness starts from the stores and the branch conditions and flows backwards
//! through operands, guards, passthrus and, for a live block parameter, the arguments
//! every jump passes to it; so a value that only circulates around a loop (an unused
//! induction variable) is dead. Loads and operations that can fault are removed when
//! unused, as the language allows. Stores are never removed.
//!
//! Left out: stores that are overwritten before being read (that needs alias
//! analysis), and branches both of whose sides do nothing (simplify-CFG's).

use crate::fxhash::HashMap;

use crate::ir::{Block, Function, Terminator, Value, ValueDef};

use super::dom::DomTree;

/// Removes dead code from `f`.
pub fn run(f: &mut Function) -> bool {
    let dom = DomTree::new(f);
    let mut changed = false;
    for b in 0..f.blocks.len() {
        let block = Block(b as u32);
        if !dom.reachable(block) {
            let bd = f.block_mut(block);
            if !bd.insts.is_empty() || bd.term != Terminator::Halt {
                bd.insts.clear();
                bd.term = Terminator::Halt;
                changed = true;
            }
        }
    }

    // Which jump arguments feed each block parameter.
    let mut feeds: HashMap<Value, Vec<Value>> = HashMap::default();
    let mut live = vec![false; f.values.len()];
    let mut work: Vec<Value> = Vec::new();
    for &b in &dom.rpo {
        for &i in &f.block(b).insts {
            if f.inst(i).op.is_store() {
                work.extend(f.inst_uses(i));
            }
        }
        let mut edge = |t: &crate::ir::Target| {
            for (&p, &a) in f.block(t.block).params.iter().zip(&t.args) {
                feeds.entry(p).or_default().push(a);
            }
        };
        match &f.block(b).term {
            Terminator::Jump(t) => edge(t),
            Terminator::Branch {
                cond,
                then,
                otherwise,
            } => {
                work.push(*cond);
                edge(then);
                edge(otherwise);
            }
            Terminator::Halt => {}
        }
    }
    while let Some(v) = work.pop() {
        if std::mem::replace(&mut live[v.0 as usize], true) {
            continue;
        }
        match f.def(v) {
            ValueDef::Inst(i) => work.extend(f.inst_uses(i)),
            ValueDef::Param(..) => work.extend(feeds.get(&v).into_iter().flatten()),
        }
    }

    // Instructions.
    for &b in &dom.rpo {
        let keep: Vec<_> = f
            .block(b)
            .insts
            .iter()
            .copied()
            .filter(|&i| {
                let d = f.inst(i);
                d.op.is_store() || d.result.is_some_and(|r| live[r.0 as usize])
            })
            .collect();
        if keep.len() != f.block(b).insts.len() {
            f.block_mut(b).insts = keep;
            changed = true;
        }
    }

    // Block parameters, and the arguments passed to them.
    let dead_params: Vec<Vec<bool>> = f
        .blocks
        .iter()
        .map(|bd| bd.params.iter().map(|p| !live[p.0 as usize]).collect())
        .collect();
    if dead_params.iter().flatten().any(|&d| d) {
        changed = true;
        for &b in &dom.rpo {
            let drop = |t: &mut crate::ir::Target| {
                let dead = &dead_params[t.block.0 as usize];
                let mut k = 0;
                t.args.retain(|_| {
                    k += 1;
                    !dead.get(k - 1).copied().unwrap_or(false)
                });
            };
            match &mut f.block_mut(b).term {
                Terminator::Jump(t) => drop(t),
                Terminator::Branch {
                    then, otherwise, ..
                } => {
                    drop(then);
                    drop(otherwise);
                }
                Terminator::Halt => {}
            }
        }
        for (b, dead) in dead_params.iter().enumerate() {
            let kept: Vec<Value> = f.blocks[b]
                .params
                .iter()
                .zip(dead)
                .filter(|&(_, &dead)| !dead)
                .map(|(&p, _)| p)
                .collect();
            for (k, &p) in kept.iter().enumerate() {
                f.values[p.0 as usize].def = ValueDef::Param(Block(b as u32), k as u32);
            }
            f.blocks[b].params = kept;
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::parse::parse;
    use crate::ir::print::print;
    use crate::ir::verify::verify;

    #[test]
    fn unused_loads_and_circulating_values_go_stores_stay() {
        let mut f = parse(
            "kernel k(tensor<f32> a) scratch 0 {
b0:
  %0:i32 = const 0
  %1:int4 = make_int4 %0, %0, %0, %0
  %2:f32x64 = load_tensor t0, %1
  %3:i32 = idx 0
  jump b1(%0, %0)
b1(%4:i32, %5:i32):
  %6:i32 = const 1
  %7:i32 = add %4, %6
  %8:i32 = add %5, %7
  %9:i32 = icmp.lt %7, %3
  br %9, b1(%7, %8), b2
b2:
  %10:f32x64 = load_tensor t0, %1
  store_tensor t0, %1, %10
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
  %3:i32 = idx 0
  jump b1(%0)
b1(%4:i32):
  %6:i32 = const 1
  %7:i32 = add %4, %6
  %9:i32 = icmp.lt %7, %3
  br %9, b1(%7), b2
b2:
  %10:f32x64 = load_tensor t0, %1
  store_tensor t0, %1, %10
  halt
}
";
        assert_eq!(print(&f), print(&parse(want).unwrap()));
        assert!(!run(&mut f));
    }
}
