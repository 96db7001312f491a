//! The optimisation passes of `-O1`, over the SSA IR in place.
//!
//! Each pass is a module with a `run(&mut Function) -> bool` (whether it changed
//! anything) that keeps every rule of the verifier; [`optimize`] runs them in a fixed
//! order:
//!
//! - [`cfg`]: simplify the control-flow graph (branches on constants, empty jumps,
//!   blocks merged into their single predecessor, unreachable blocks emptied);
//! - [`fold`]: constant folding (with the interpreter's arithmetic, so bit for bit the
//!   SG1's), algebraic identities and copy propagation;
//! - [`gvn`]: common subexpressions of pure operations over the dominator tree;
//! - [`dce`]: unused results, unused block parameters, unreachable code;
//! - [`licm`]: loop-invariant code motion into a preheader;
//! - [`strength`]: strength reduction of `i*c (+ inv)` in loops to induction variables;
//! - [`passthru`]: a masked merge folded into the guarded instruction it merges.
//!
//! The passes expect a function the verifier accepts (the driver verifies before and
//! after); on anything else they may panic.
//!
//! [`dom`] and [`loops`] are the analyses they share. Left out: anything that needs
//! alias analysis (loads are never moved, merged or hoisted), speculation of
//! operations that can fault, and loop transformations beyond the above (no
//! unrolling, no induction-variable elimination).

use crate::fxhash::HashMap;

use crate::OptLevel;
use crate::ir::{Function, Op, Value};

pub mod cfg;
pub mod dce;
pub mod dom;
pub mod fold;
pub mod gvn;
pub mod licm;
pub mod loops;
pub mod passthru;
pub mod strength;

/// A pass: changes `f` in place and says whether it changed anything.
pub type Pass = fn(&mut Function) -> bool;

/// The passes of `-O1` in the order [`optimize`] runs them, by name (tests run them
/// one at a time and verify after each).
pub const PIPELINE: &[(&str, Pass)] = &[
    ("cfg", cfg::run),
    ("fold", fold::run),
    ("gvn", gvn::run),
    ("dce", dce::run),
    ("cfg", cfg::run),
    ("fold", fold::run),
    ("gvn", gvn::run),
    ("dce", dce::run),
    ("licm", licm::run),
    ("strength", strength::run),
    ("fold", fold::run),
    ("gvn", gvn::run),
    ("licm", licm::run),
    ("dce", dce::run),
    ("passthru", passthru::run),
    ("cfg", cfg::run),
    ("dce", dce::run),
];

/// Runs the passes of `level` over `f`: none at `O0`, [`PIPELINE`] at `O1`.
pub fn optimize(f: &mut Function, level: OptLevel) {
    if level == OptLevel::O0 {
        return;
    }
    for (_, pass) in PIPELINE {
        pass(f);
    }
}

/// Whether an operation only computes its result (it may fault, as a division does,
/// but writes nothing and reads no memory): such an instruction can be merged with an
/// equal one it is dominated by, and removed when unused.
pub(crate) fn is_pure(op: Op) -> bool {
    !op.is_store() && !op.is_load()
}

/// The final value of `v` under a substitution whose chains are followed.
pub(crate) fn resolve(map: &HashMap<Value, Value>, mut v: Value) -> Value {
    // Bounded so that a cycle (a bug) cannot hang the compiler.
    for _ in 0..64 {
        match map.get(&v) {
            Some(&w) if w != v => v = w,
            _ => break,
        }
    }
    v
}

/// Replaces every use (in every block) by its image under `map`.
pub(crate) fn substitute(f: &mut Function, map: &HashMap<Value, Value>) {
    if !map.is_empty() {
        f.map_uses(|v| *v = resolve(map, *v));
    }
}

/// How many times each value is used, over the placed instructions and terminators of
/// every block.
pub(crate) fn use_counts(f: &Function) -> Vec<u32> {
    let mut n = vec![0u32; f.values.len()];
    for (b, bd) in f.blocks.iter().enumerate() {
        for &i in &bd.insts {
            for v in f.inst_uses(i) {
                n[v.0 as usize] += 1;
            }
        }
        for v in f.term_uses(crate::ir::Block(b as u32)) {
            n[v.0 as usize] += 1;
        }
    }
    n
}
