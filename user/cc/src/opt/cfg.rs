//! Simplification of the control-flow graph.
//!
//! - A branch on a constant becomes a jump; a branch whose two targets are the same
//!   block with the same arguments too.
//! - An edge to an empty block that only jumps on is threaded to where it jumps (the
//!   empty block's parameters replaced by the edge's arguments).
//! - A block whose single predecessor jumps only to it is merged into that predecessor
//!   (its parameters replaced by the jump's arguments).
//! - Blocks the entry no longer reaches are emptied (they then halt), so that nothing
//!   in them holds values alive.
//!
//! Left out: merging identical blocks, and switching the targets of a branch on a
//! negated condition.

use crate::fxhash::HashMap;

use crate::ir::{Block, Function, Target, Terminator, Value};

use super::dom::{DomTree, predecessors};
use super::substitute;

/// Simplifies the control-flow graph of `f`.
pub fn run(f: &mut Function) -> bool {
    let mut changed = false;
    // Each round removes at least one edge or block, so this bound is never the limit
    // on a sane function; it keeps a cycle of empty blocks from looping forever.
    for _ in 0..f.blocks.len() + 2 {
        let round = fold_branches(f) | thread(f) | merge(f);
        changed |= round;
        if !round {
            break;
        }
    }
    changed | clear_unreachable(f)
}

fn fold_branches(f: &mut Function) -> bool {
    let mut changed = false;
    for b in 0..f.blocks.len() {
        let Terminator::Branch {
            cond,
            then,
            otherwise,
        } = &f.blocks[b].term
        else {
            continue;
        };
        let t = if then == otherwise {
            Some(then.clone())
        } else {
            match f.as_const(*cond) {
                Some(0) => Some(otherwise.clone()),
                Some(_) => Some(then.clone()),
                None => None,
            }
        };
        if let Some(t) = t {
            f.blocks[b].term = Terminator::Jump(t);
            changed = true;
        }
    }
    changed
}

/// The target an edge to `t` can go to instead, when `t` is empty and jumps on.
fn threaded(f: &Function, t: &Target) -> Option<Target> {
    let bd = f.block(t.block);
    let Terminator::Jump(next) = &bd.term else {
        return None;
    };
    if !bd.insts.is_empty() || next.block == t.block || params_used_beyond_jump(f, t.block) {
        return None;
    }
    let map: HashMap<Value, Value> = bd
        .params
        .iter()
        .copied()
        .zip(t.args.iter().copied())
        .collect();
    Some(Target::new(
        next.block,
        next.args.iter().map(|a| *map.get(a).unwrap_or(a)).collect(),
    ))
}

/// Whether a parameter of `b` is used anywhere but in `b`'s own jump: the blocks `b`
/// dominates may use it directly, and threading an edge past `b` would leave those
/// uses without a definition.
fn params_used_beyond_jump(f: &Function, b: Block) -> bool {
    let params = &f.block(b).params;
    if params.is_empty() {
        return false;
    }
    (0..f.blocks.len()).any(|k| {
        let other = Block(k as u32);
        let in_insts = f
            .block(other)
            .insts
            .iter()
            .any(|&i| f.inst_uses(i).iter().any(|v| params.contains(v)));
        in_insts || (other != b && f.term_uses(other).iter().any(|v| params.contains(v)))
    })
}

fn thread(f: &mut Function) -> bool {
    let mut changed = false;
    let dom = DomTree::new(f);
    for &b in &dom.rpo {
        let mut term = f.block(b).term.clone();
        let edit = |t: &mut Target| {
            if let Some(n) = threaded(f, t) {
                *t = n;
                true
            } else {
                false
            }
        };
        let c = match &mut term {
            Terminator::Jump(t) => edit(t),
            Terminator::Branch {
                then, otherwise, ..
            } => edit(then) | edit(otherwise),
            Terminator::Halt => false,
        };
        if c {
            f.block_mut(b).term = term;
            changed = true;
        }
    }
    changed
}

fn merge(f: &mut Function) -> bool {
    let dom = DomTree::new(f);
    let preds = predecessors(f, &dom);
    let mut changed = false;
    let mut map = HashMap::default();
    let mut gone = vec![false; f.blocks.len()];
    for &p in &dom.rpo {
        if gone[p.0 as usize] {
            continue;
        }
        // Merge successors into p for as long as they qualify.
        while let Terminator::Jump(t) = &f.block(p).term {
            let s = t.block;
            if s == p || s == f.entry || preds[s.0 as usize].len() != 1 || gone[s.0 as usize] {
                break;
            }
            let args = t.args.clone();
            let sd = std::mem::replace(
                f.block_mut(s),
                crate::ir::BlockData {
                    params: Vec::new(),
                    insts: Vec::new(),
                    term: Terminator::Halt,
                },
            );
            for (&param, &a) in sd.params.iter().zip(&args) {
                map.insert(param, a);
            }
            // The parameters stay listed where they were defined, now unused.
            f.block_mut(s).params = sd.params;
            let pd = f.block_mut(p);
            pd.insts.extend(sd.insts);
            pd.term = sd.term;
            gone[s.0 as usize] = true;
            changed = true;
        }
    }
    substitute(f, &map);
    changed
}

fn clear_unreachable(f: &mut Function) -> bool {
    let dom = DomTree::new(f);
    let mut changed = false;
    for b in 0..f.blocks.len() {
        let block = Block(b as u32);
        if dom.reachable(block) {
            continue;
        }
        let bd = f.block_mut(block);
        if !bd.insts.is_empty() || bd.term != Terminator::Halt {
            bd.insts.clear();
            bd.term = Terminator::Halt;
            changed = true;
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

    fn check(before: &str, after: &str) {
        let mut f = parse(before).unwrap();
        verify(&f).unwrap();
        run(&mut f);
        verify(&f).unwrap();
        let want = print(&parse(after).unwrap());
        // Emptied blocks are printed after the live ones; compare the live part.
        let got = print(&f);
        assert!(
            got.starts_with(want.trim_end_matches("}\n")),
            "got:\n{got}\nwant:\n{want}"
        );
    }

    #[test]
    fn branch_on_constant_becomes_jump_and_blocks_merge() {
        check(
            "kernel k() scratch 0 {
b0:
  %0:i32 = const 1
  %1:i32 = idx 0
  br %0, b1(%1), b2
b1(%2:i32):
  %3:i32 = add %2, %2
  jump b2
b2:
  halt
}
",
            "kernel k() scratch 0 {
b0:
  %0:i32 = const 1
  %1:i32 = idx 0
  %3:i32 = add %1, %1
  halt
}
",
        );
    }

    #[test]
    fn empty_jump_blocks_are_threaded() {
        check(
            "kernel k() scratch 0 {
b0:
  %0:i32 = idx 0
  br %0, b1(%0), b3
b1(%1:i32):
  jump b2(%1)
b3:
  %5:i32 = const 3
  jump b2(%5)
b2(%2:i32):
  %3:i32 = add %2, %2
  halt
}
",
            "kernel k() scratch 0 {
b0:
  %0:i32 = idx 0
  br %0, b2(%0), b3
b3:
  %5:i32 = const 3
  jump b2(%5)
b2(%2:i32):
  %3:i32 = add %2, %2
  halt
}
",
        );
    }

    #[test]
    fn cycle_of_empty_blocks_terminates() {
        let mut f =
            parse("kernel k() scratch 0 {\nb0:\n  jump b1\nb1:\n  jump b2\nb2:\n  jump b1\n}\n")
                .unwrap();
        run(&mut f);
        verify(&f).unwrap();
    }
}
