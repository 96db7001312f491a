//! Loop-invariant code motion: an instruction of a loop whose operands (guard and
//! passthru included) are all defined outside the loop, or by instructions already
//! moved, is moved to the end of the loop's preheader, which every loop gets
//! ([`super::loops::ensure_preheaders`]). Loops are treated innermost first, so an
//! instruction can leave a nest one level at a time.
//!
//! Only pure operations that cannot fault move: never a store, a load (no alias
//! analysis) or a division (the preheader runs even when the loop body would not, and
//! there is no speculation). A guarded instruction moves only with its mask, which
//! must then be invariant too. Left out: moving code out of loops that are not natural
//! (irreducible) and sinking code below loops.

use crate::fxhash::HashSet;

use crate::ir::{Function, Value};

use super::dom::DomTree;
use super::is_pure;
use super::loops::{ensure_preheaders, find_loops, preheader};

/// Moves loop-invariant instructions of `f` to their loops' preheaders.
pub fn run(f: &mut Function) -> bool {
    let mut changed = ensure_preheaders(f);
    let dom = DomTree::new(f);
    for l in find_loops(f, &dom) {
        let Some(ph) = preheader(f, &l, &dom) else {
            continue;
        };
        let blocks: Vec<_> = dom.rpo.iter().copied().filter(|&b| l.contains(b)).collect();
        // Values defined in the loop (an instruction leaving it leaves this set).
        let mut inside: HashSet<Value> = HashSet::default();
        for &b in &blocks {
            inside.extend(f.block(b).params.iter().copied());
            inside.extend(f.block(b).insts.iter().filter_map(|&i| f.inst(i).result));
        }
        for &b in &blocks {
            let mut k = 0;
            while k < f.block(b).insts.len() {
                let i = f.block(b).insts[k];
                let d = f.inst(i);
                let movable = is_pure(d.op)
                    && !d.op.can_fault()
                    && d.result.is_some()
                    && f.inst_uses(i).iter().all(|v| !inside.contains(v));
                if movable {
                    f.block_mut(b).insts.remove(k);
                    f.block_mut(ph).insts.push(i);
                    if let Some(r) = f.inst(i).result {
                        inside.remove(&r);
                    }
                    changed = true;
                } else {
                    k += 1;
                }
            }
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
    fn invariants_leave_nested_loops_loads_and_divisions_stay() {
        let mut f = parse(
            "kernel k(tensor<f32> a, i32 n) scratch 0 {
b0:
  %0:i32 = const 0
  %1:i32 = arg 0
  jump b1(%0)
b1(%2:i32):
  jump b2(%0)
b2(%3:i32):
  %4:i32 = const 64
  %5:i32 = mul %1, %4
  %6:i32 = div %5, %1
  %7:int4 = make_int4 %3, %5, %0, %0
  %8:f32x64 = load_tensor t0, %7
  %9:mask = lanes %5
  %10:f32x64 = fadd %8, %8 @%9
  store_tensor t0, %7, %10 @%9
  %11:i32 = add %3, %4
  %12:i32 = icmp.lt %11, %6
  br %12, b2(%11), b3
b3:
  %13:i32 = const 1
  %14:i32 = add %2, %13
  %15:i32 = icmp.lt %14, %1
  br %15, b1(%14), b4
b4:
  halt
}
",
        )
        .unwrap();
        verify(&f).unwrap();
        assert!(run(&mut f));
        verify(&f).unwrap();
        let want = "kernel k(tensor<f32> a, i32 n) scratch 0 {
b0:
  %0:i32 = const 0
  %1:i32 = arg 0
  %4:i32 = const 64
  %5:i32 = mul %1, %4
  %9:mask = lanes %5
  %13:i32 = const 1
  jump b1(%0)
b1(%2:i32):
  jump b2(%0)
b2(%3:i32):
  %6:i32 = div %5, %1
  %7:int4 = make_int4 %3, %5, %0, %0
  %8:f32x64 = load_tensor t0, %7
  %10:f32x64 = fadd %8, %8 @%9
  store_tensor t0, %7, %10 @%9
  %11:i32 = add %3, %4
  %12:i32 = icmp.lt %11, %6
  br %12, b2(%11), b3
b3:
  %14:i32 = add %2, %13
  %15:i32 = icmp.lt %14, %1
  br %15, b1(%14), b4
b4:
  halt
}
";
        assert_eq!(print(&f), print(&parse(want).unwrap()));
    }
}
