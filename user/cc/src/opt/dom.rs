//! Dominators: the dominator tree of the blocks reachable from the entry, and
//! predecessor lists.
//!
//! Computed by the Cooper–Harvey–Kennedy iteration (shared with the verifier). Blocks
//! the entry cannot reach have no dominator and dominate nothing. The tree is a
//! snapshot: a pass that changes the control-flow graph computes a new one.

use crate::ir::verify::idoms;
use crate::ir::{Block, Function};

/// The dominator tree of a function.
#[derive(Clone, Debug)]
pub struct DomTree {
    /// The reachable blocks in reverse post-order.
    pub rpo: Vec<Block>,
    idom: Vec<Option<Block>>,
    children: Vec<Vec<Block>>,
    entry: Block,
}

impl DomTree {
    /// The dominator tree of `f` (whose terminators must name existing blocks).
    pub fn new(f: &Function) -> DomTree {
        let rpo = f.reverse_postorder();
        let idom = idoms(f, &rpo);
        let mut children = vec![Vec::new(); f.blocks.len()];
        for &b in &rpo {
            if let Some(d) = idom[b.0 as usize]
                && d != b
            {
                children[d.0 as usize].push(b);
            }
        }
        DomTree {
            rpo,
            idom,
            children,
            entry: f.entry,
        }
    }

    /// Whether `b` is reachable from the entry.
    pub fn reachable(&self, b: Block) -> bool {
        self.idom.get(b.0 as usize).is_some_and(|d| d.is_some())
    }

    /// The immediate dominator of `b` (none for the entry and unreachable blocks).
    pub fn idom(&self, b: Block) -> Option<Block> {
        self.idom
            .get(b.0 as usize)
            .copied()
            .flatten()
            .filter(|&d| d != b)
    }

    /// The blocks `b` immediately dominates.
    pub fn children(&self, b: Block) -> &[Block] {
        self.children
            .get(b.0 as usize)
            .map_or(&[], |c| c.as_slice())
    }

    /// Whether `a` dominates `b` (every block dominates itself).
    pub fn dominates(&self, a: Block, b: Block) -> bool {
        if !self.reachable(a) || !self.reachable(b) {
            return false;
        }
        let mut x = b;
        loop {
            if x == a {
                return true;
            }
            if x == self.entry {
                return false;
            }
            match self.idom(x) {
                Some(d) => x = d,
                None => return false,
            }
        }
    }
}

/// The predecessors of every block among the reachable ones, one entry per edge (a
/// branch with both targets the same block counts twice).
pub fn predecessors(f: &Function, dom: &DomTree) -> Vec<Vec<Block>> {
    let mut preds = vec![Vec::new(); f.blocks.len()];
    for &b in &dom.rpo {
        for s in f.successors(b) {
            preds[s.0 as usize].push(b);
        }
    }
    preds
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::parse::parse;

    #[test]
    fn diamond_dominators() {
        let f = parse(
            "kernel k() scratch 0 {\nb0:\n  %0:i32 = idx 0\n  br %0, b1, b2\nb1:\n  jump b3\nb2:\n  jump b3\nb3:\n  halt\nb4:\n  jump b3\n}\n",
        )
        .unwrap();
        let d = DomTree::new(&f);
        let (b0, b1, b2, b3, b4) = (Block(0), Block(1), Block(2), Block(3), Block(4));
        assert!(d.dominates(b0, b3));
        assert!(!d.dominates(b1, b3));
        assert!(!d.dominates(b2, b3));
        assert_eq!(d.idom(b3), Some(b0));
        assert!(!d.reachable(b4));
        assert!(!d.dominates(b4, b3));
        assert_eq!(predecessors(&f, &d)[3].len(), 2);
    }
}
