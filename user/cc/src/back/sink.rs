//! Sinking a computation into the copy that consumes it: `t = op ...; ...; d <- t`
//! becomes `...; d = op ...`, and the reads of `t` after the copy read `d`.
//! Instruction selection writes a new `int4` component with such a copy (`c[0] += 64`
//! is an add into a temporary, then a copy into the component; the loop test then
//! reads the temporary), and so does every other write into a register that is not
//! the operation's own result. Without this, a loop over coordinates pays a `mov` per
//! trip that hand-written code does not.
//!
//! The operation moves down to the copy, so it must still compute the same value
//! there: it reads no register written in between, and it is pure (no memory access,
//! no fault: moving a load past a store, or a division past a fault, would change what
//! happens). `t` must be written once, read nowhere between the operation and the
//! copy nor in another block, and `d` must not be written after the copy in the block
//! (its later reads of `t` then read `d` instead). Left out: copies of more than one
//! register at once, and operations in another block.

use super::mir::{Arg, MBlock, MFunc, MInst, RegSet, VReg};
use crate::fxhash::HashMap;

/// Sinks every qualifying operation of `mf` into its copy.
pub fn run(mf: &mut MFunc) {
    let n = mf.classes.len();
    let mut writes = vec![0u32; n];
    for b in &mf.blocks {
        for i in &b.insts {
            i.uses_defs()
                .1
                .iter()
                .for_each(|r| writes[r.0 as usize] += 1);
        }
    }
    let live_in = mf.live_in();
    let live_out: Vec<RegSet> = (0..mf.blocks.len())
        .map(|b| mf.live_out(b, &live_in))
        .collect();
    for (b, out) in mf.blocks.iter_mut().zip(&live_out) {
        sink_block(b, out, &writes);
    }
}

fn sink_block(b: &mut MBlock, live_out: &RegSet, writes: &[u32]) {
    // Where each register is last written in the block. Positions stay valid: a sunk
    // operation leaves an empty copy in its place, removed at the end.
    let mut last_write: HashMap<VReg, usize> = HashMap::default();
    for (k, i) in b.insts.iter().enumerate() {
        for d in i.uses_defs().1 {
            last_write.insert(d, k);
        }
    }
    let mut changed = false;
    for c in 0..b.insts.len() {
        let Some((at, t, dest)) = sinkable(b, c, &last_write, live_out, writes) else {
            continue;
        };
        let rename = |a: &mut Arg| {
            if *a == Arg::Reg(t) {
                *a = dest;
            }
        };
        for i in &mut b.insts[c + 1..] {
            i.for_each_reg(|a, acc| {
                if acc.read {
                    rename(a);
                }
            });
        }
        b.term.for_each_reg(rename);
        let mut op = std::mem::replace(&mut b.insts[at], MInst::Copy(Vec::new()));
        op.for_each_reg(|a, acc| {
            if acc.write {
                *a = dest;
            }
        });
        b.insts[c] = op;
        changed = true;
    }
    if changed {
        b.insts
            .retain(|i| !matches!(i, MInst::Copy(moves) if moves.is_empty()));
    }
}

/// For the copy at `c`: the index of the operation it can absorb, its temporary and
/// the copy's destination.
fn sinkable(
    b: &MBlock,
    c: usize,
    last_write: &HashMap<VReg, usize>,
    live_out: &RegSet,
    writes: &[u32],
) -> Option<(usize, VReg, Arg)> {
    let insts = &b.insts;
    let MInst::Copy(moves) = &insts[c] else {
        return None;
    };
    let [(dest, Arg::Reg(t))] = moves.as_slice() else {
        return None;
    };
    let (dest, t) = (*dest, *t);
    if !matches!(dest, Arg::Reg(_) | Arg::Part(..))
        || writes[t.0 as usize] != 1
        || live_out.contains(t)
    {
        return None;
    }
    let dest_reg = dest.vreg()?;
    if last_write.get(&dest_reg).is_some_and(|&k| k > c) {
        return None;
    }
    let at = *last_write.get(&t).filter(|&&k| k < c)?;
    let MInst::Op { tied: false, .. } = &insts[at] else {
        return None;
    };
    let (sources, defs) = insts[at].uses_defs();
    if !insts[at].is_pure() || defs != [t] {
        return None;
    }
    // Between the operation and the copy: nothing reads `t` or writes a source.
    let clean = insts[at + 1..c].iter().all(|i| {
        let (uses, defs) = i.uses_defs();
        !uses.contains(&t) && !defs.iter().any(|d| sources.contains(d))
    });
    clean.then_some((at, t, dest))
}
