//! Natural loops and their preheaders.
//!
//! A back edge is an edge `t → h` whose target dominates its source; the natural loop
//! of `h` is `h` and every block that reaches a back edge's source without passing
//! through `h` (back edges to one header make one loop). Loops are listed innermost
//! first (fewer blocks first), so a pass that walks the list treats an inner loop
//! before the loop around it.
//!
//! A preheader is a block outside the loop whose only successor is the header and
//! which is the header's only predecessor outside the loop: code placed at its end runs
//! once before the loop, only if the loop is entered. [`ensure_preheader`] makes one
//! when the loop has none. Left out: irreducible control flow (a cycle without a
//! dominating header is not a loop here, and nothing is moved out of it).

use crate::ir::{Block, Function, Target, Terminator};

use super::dom::{DomTree, predecessors};

/// A natural loop.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Loop {
    /// The header, which dominates every block of the loop.
    pub header: Block,
    /// The blocks of the loop, the header included, by block index.
    pub blocks: Vec<bool>,
    /// The sources of the back edges.
    pub latches: Vec<Block>,
}

impl Loop {
    /// Whether `b` is in the loop.
    pub fn contains(&self, b: Block) -> bool {
        self.blocks.get(b.0 as usize).copied().unwrap_or(false)
    }

    /// The number of blocks in the loop.
    pub fn size(&self) -> usize {
        self.blocks.iter().filter(|&&x| x).count()
    }
}

/// The natural loops of `f`, innermost first.
pub fn find_loops(f: &Function, dom: &DomTree) -> Vec<Loop> {
    let preds = predecessors(f, dom);
    let mut loops: Vec<Loop> = Vec::new();
    for &t in &dom.rpo {
        for h in f.successors(t) {
            if !dom.dominates(h, t) {
                continue;
            }
            let k = match loops.iter().position(|l| l.header == h) {
                Some(k) => k,
                None => {
                    let mut blocks = vec![false; f.blocks.len()];
                    blocks[h.0 as usize] = true;
                    loops.push(Loop {
                        header: h,
                        blocks,
                        latches: Vec::new(),
                    });
                    loops.len() - 1
                }
            };
            let l = &mut loops[k];
            if !l.latches.contains(&t) {
                l.latches.push(t);
            }
            let mut work = vec![t];
            while let Some(b) = work.pop() {
                if l.blocks[b.0 as usize] {
                    continue;
                }
                l.blocks[b.0 as usize] = true;
                work.extend(preds[b.0 as usize].iter().copied());
            }
        }
    }
    loops.sort_by_key(|l| l.size());
    loops
}

/// The loop's preheader, if it has one.
pub fn preheader(f: &Function, l: &Loop, dom: &DomTree) -> Option<Block> {
    let preds = predecessors(f, dom);
    let outside: Vec<Block> = preds[l.header.0 as usize]
        .iter()
        .copied()
        .filter(|&p| !l.contains(p))
        .collect();
    match outside[..] {
        [p] if matches!(&f.block(p).term, Terminator::Jump(t) if t.block == l.header) => Some(p),
        _ => None,
    }
}

/// Gives every loop of `f` a preheader; says whether it made any.
pub fn ensure_preheaders(f: &mut Function) -> bool {
    let mut changed = false;
    // Each round makes at most one (the others' analyses are then stale); a round that
    // makes none ends it.
    for _ in 0..2 * f.blocks.len() + 2 {
        let dom = DomTree::new(f);
        let mut made = false;
        for l in find_loops(f, &dom) {
            if ensure_preheader(f, &l, &dom).1 {
                made = true;
                break;
            }
        }
        changed |= made;
        if !made {
            break;
        }
    }
    changed
}

/// The loop's preheader, made if it has none (a new block with the header's parameter
/// types, which the edges from outside the loop now enter and which jumps to the
/// header). Gives the preheader and whether the function changed; a new preheader
/// changes the control-flow graph, so dominators and loops must be recomputed.
pub fn ensure_preheader(f: &mut Function, l: &Loop, dom: &DomTree) -> (Block, bool) {
    if let Some(p) = preheader(f, l, dom) {
        return (p, false);
    }
    let outside: Vec<Block> = predecessors(f, dom)[l.header.0 as usize]
        .iter()
        .copied()
        .filter(|&p| !l.contains(p))
        .collect();
    let ph = f.add_block();
    let tys: Vec<_> = f.block(l.header).params.iter().map(|&p| f.ty(p)).collect();
    let args: Vec<_> = tys.into_iter().map(|t| f.add_block_param(ph, t)).collect();
    f.block_mut(ph).term = Terminator::Jump(Target::new(l.header, args));
    for p in outside {
        let retarget = |t: &mut Target| {
            if t.block == l.header {
                t.block = ph;
            }
        };
        match &mut f.block_mut(p).term {
            Terminator::Jump(t) => retarget(t),
            Terminator::Branch {
                then, otherwise, ..
            } => {
                retarget(then);
                retarget(otherwise);
            }
            Terminator::Halt => {}
        }
    }
    if f.entry == l.header {
        f.entry = ph;
    }
    (ph, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::parse::parse;
    use crate::ir::verify::verify;

    const NESTED: &str = "kernel k() scratch 0 {
b0:
  %0:i32 = const 0
  %9:i32 = idx 0
  br %9, b1(%0), b4
b1(%1:i32):
  jump b2(%0)
b2(%2:i32):
  %3:i32 = const 1
  %4:i32 = add %2, %3
  %5:i32 = icmp.lt %4, %9
  br %5, b2(%4), b3
b3:
  %6:i32 = add %1, %3
  %7:i32 = icmp.lt %6, %9
  br %7, b1(%6), b4
b4:
  halt
}
";

    #[test]
    fn nested_loops_innermost_first() {
        let f = parse(NESTED).unwrap();
        let d = DomTree::new(&f);
        let loops = find_loops(&f, &d);
        assert_eq!(loops.len(), 2);
        assert_eq!(loops[0].header, Block(2));
        assert_eq!(loops[0].size(), 1);
        assert_eq!(loops[1].header, Block(1));
        assert_eq!(loops[1].size(), 3);
        assert_eq!(loops[1].latches, vec![Block(3)]);
    }

    #[test]
    fn preheader_is_found_or_made() {
        let mut f = parse(NESTED).unwrap();
        let d = DomTree::new(&f);
        let loops = find_loops(&f, &d);
        // The inner loop is entered by b1's jump: b1 is its preheader.
        assert_eq!(ensure_preheader(&mut f, &loops[0], &d), (Block(1), false));
        // The outer one is entered by a branch: a new block.
        let (ph, made) = ensure_preheader(&mut f, &loops[1], &d);
        assert!(made);
        verify(&f).unwrap();
        let d = DomTree::new(&f);
        assert_eq!(d.idom(Block(1)), Some(ph));
    }

    #[test]
    fn loop_at_the_entry_gets_a_new_entry() {
        let mut f = parse(
            "kernel k() scratch 0 {\nb0:\n  %0:i32 = idx 0\n  br %0, b0, b1\nb1:\n  halt\n}\n",
        )
        .unwrap();
        verify(&f).unwrap();
        let d = DomTree::new(&f);
        let loops = find_loops(&f, &d);
        assert_eq!(loops.len(), 1);
        let (ph, made) = ensure_preheader(&mut f, &loops[0], &d);
        assert!(made);
        assert_eq!(f.entry, ph);
        verify(&f).unwrap();
    }
}
