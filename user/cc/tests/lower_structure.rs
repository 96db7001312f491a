//! The lowering's IR, checked structurally: every use dominated by its definition,
//! jump arguments matching parameters, operand types, guard and passthru rules; and
//! what specific constructs lower to.

use std::collections::{HashMap, HashSet};

use sagrada_cc::ir::{Block, Function, Op, Terminator, Type, Value, ValueDef};

fn lower(src: &str) -> Function {
    match sagrada_cc::front::check(src) {
        Ok(p) => sagrada_cc::lower::lower(&p),
        Err(d) => panic!("{}", d.render(src, "test.sgc")),
    }
}

/// Dominators of the reachable blocks, by the simple iterative algorithm.
fn dominators(f: &Function) -> HashMap<Block, HashSet<Block>> {
    let rpo = f.reverse_postorder();
    let all: HashSet<Block> = rpo.iter().copied().collect();
    let mut preds: HashMap<Block, Vec<Block>> = HashMap::new();
    for &b in &rpo {
        for s in f.successors(b) {
            preds.entry(s).or_default().push(b);
        }
    }
    let mut dom: HashMap<Block, HashSet<Block>> = rpo.iter().map(|&b| (b, all.clone())).collect();
    dom.insert(f.entry, HashSet::from([f.entry]));
    let mut changed = true;
    while changed {
        changed = false;
        for &b in rpo.iter().skip(1) {
            let mut new: Option<HashSet<Block>> = None;
            for p in preds.get(&b).into_iter().flatten() {
                let d = &dom[p];
                new = Some(match new {
                    None => d.clone(),
                    Some(n) => n.intersection(d).copied().collect(),
                });
            }
            let mut new = new.unwrap_or_default();
            new.insert(b);
            if new != dom[&b] {
                dom.insert(b, new);
                changed = true;
            }
        }
    }
    dom
}

/// The IR rules the rest of the compiler relies on, for the reachable blocks.
fn check_structure(f: &Function) {
    let dom = dominators(f);
    let rpo = f.reverse_postorder();
    let mut def_pos: HashMap<Value, (Block, usize)> = HashMap::new();
    for &b in &rpo {
        for &p in &f.block(b).params {
            def_pos.insert(p, (b, 0));
        }
        for (k, &i) in f.block(b).insts.iter().enumerate() {
            if let Some(r) = f.inst(i).result {
                def_pos.insert(r, (b, k + 1));
            }
        }
    }
    let dominated = |v: Value, b: Block, at: usize| -> bool {
        let Some(&(db, dk)) = def_pos.get(&v) else {
            return false;
        };
        if db == b {
            dk <= at
        } else {
            dom[&b].contains(&db)
        }
    };
    for &b in &rpo {
        let bd = f.block(b);
        for (k, &i) in bd.insts.iter().enumerate() {
            let d = f.inst(i);
            for u in f.inst_uses(i) {
                assert!(
                    dominated(u, b, k),
                    "{u} used in {b} by {:?} before it is defined",
                    d.op
                );
            }
            if let Some(g) = d.guard {
                assert!(d.op.is_guardable(), "{:?} is guarded", d.op);
                assert_eq!(f.ty(g.mask), Type::Mask);
            }
            if let Some(p) = d.passthru {
                assert!(d.guard.is_some(), "passthru without a guard");
                let r = d.result.expect("passthru on a store");
                assert!(f.ty(r).is_vector() || f.ty(r) == Type::Mask);
                assert_eq!(f.ty(p), f.ty(r));
            }
            let ty = |n: usize| f.ty(d.args[n]);
            match d.op {
                Op::Add
                | Op::Sub
                | Op::Mul
                | Op::And
                | Op::Or
                | Op::Xor
                | Op::Fadd
                | Op::Fsub
                | Op::Fmul
                | Op::Fdiv
                | Op::Fmin
                | Op::Fmax
                | Op::Min
                | Op::Max => {
                    assert_eq!(d.args.len(), 2);
                    let r = f.ty(d.result.expect("a result"));
                    assert_eq!((ty(0), ty(1)), (r, r), "{:?}", d.op);
                    let float = matches!(
                        d.op,
                        Op::Fadd | Op::Fsub | Op::Fmul | Op::Fdiv | Op::Fmin | Op::Fmax
                    );
                    assert_eq!(
                        float,
                        matches!(r, Type::F32 | Type::VF32),
                        "{:?} on {r}",
                        d.op
                    );
                }
                Op::Broadcast => {
                    let r = f.ty(d.result.expect("a result"));
                    assert_eq!(r.lane(), Some(ty(0)));
                }
                Op::LoadTensor { .. } | Op::LoadTensorScalar { .. } => {
                    assert_eq!(ty(0), Type::Int4)
                }
                Op::StoreTensor { .. } => {
                    assert_eq!(ty(0), Type::Int4);
                    assert!(ty(1).is_vector());
                }
                Op::MaskAnd | Op::MaskOr | Op::MaskNot => {
                    assert!(d.args.iter().all(|&a| f.ty(a) == Type::Mask));
                }
                Op::Extract => assert!(ty(0).is_vector() && ty(1) == Type::I32),
                _ => {}
            }
        }
        let targets = match &bd.term {
            Terminator::Jump(t) => vec![t],
            Terminator::Branch {
                cond,
                then,
                otherwise,
            } => {
                assert_eq!(f.ty(*cond), Type::I32);
                assert!(dominated(*cond, b, bd.insts.len()));
                vec![then, otherwise]
            }
            Terminator::Halt => vec![],
        };
        for t in targets {
            let params = &f.block(t.block).params;
            assert_eq!(t.args.len(), params.len(), "jump {b} -> {}", t.block);
            for (a, p) in t.args.iter().zip(params) {
                assert_eq!(f.ty(*a), f.ty(*p));
                assert!(dominated(*a, b, bd.insts.len()), "{a} passed from {b}");
            }
        }
    }
    assert!(matches!(
        f.def(Value(0)),
        ValueDef::Inst(_) | ValueDef::Param(..)
    ));
}

/// The reachable instructions with this op.
fn count(f: &Function, pred: impl Fn(&sagrada_cc::ir::InstData) -> bool) -> usize {
    f.reverse_postorder()
        .iter()
        .flat_map(|&b| f.block(b).insts.clone())
        .filter(|&i| pred(f.inst(i)))
        .count()
}

macro_rules! demo {
    ($test:ident, $file:literal) => {
        #[test]
        fn $test() {
            check_structure(&lower(include_str!(concat!("../../../kernels/", $file))));
        }
    };
}

demo!(vadd_lowers_to_well_formed_ir, "vadd.sgc");
demo!(saxpy_lowers_to_well_formed_ir, "saxpy.sgc");
demo!(row_sum_lowers_to_well_formed_ir, "row_sum.sgc");
demo!(softmax_lowers_to_well_formed_ir, "softmax.sgc");
demo!(gemm_lowers_to_well_formed_ir, "gemm.sgc");
demo!(layernorm_lowers_to_well_formed_ir, "layernorm.sgc");
demo!(bf16_gemm_lowers_to_well_formed_ir, "gemm_bf16.sgc");

#[test]
fn saxpy_reads_scalar_arg_and_guards_memory() {
    let f = lower(include_str!("../../../kernels/saxpy.sgc"));
    assert_eq!(f.params.len(), 3);
    assert_eq!(count(&f, |d| d.op == Op::Arg(0)), 1);
    assert_eq!(
        count(&f, |d| matches!(d.op, Op::LoadTensor { slot: 0 })
            && d.guard.is_some()),
        1
    );
    assert_eq!(
        count(&f, |d| matches!(d.op, Op::StoreTensor { slot: 1 })
            && d.guard.is_some()),
        1
    );
    // alpha is broadcast explicitly, under the guard.
    assert_eq!(count(&f, |d| d.op == Op::Broadcast && d.guard.is_some()), 1);
}

#[test]
fn where_assignment_to_outer_vector_merges_with_passthru() {
    let f = lower(include_str!("../../../kernels/row_sum.sgc"));
    assert_eq!(
        count(&f, |d| d.op == Op::Copy
            && d.guard.is_some()
            && d.passthru.is_some()),
        1
    );
    // The reduction outside the `where` is unguarded.
    assert_eq!(count(&f, |d| d.op == Op::RedAdd && d.guard.is_none()), 1);
}

#[test]
fn gemm_unrolls_into_straight_line_code() {
    let f = lower(include_str!("../../../kernels/gemm.sgc"));
    assert_eq!(f.scratch_bytes, 1024 * 256);
    // 64 k by 8 rows: one lane extraction and one multiply each.
    assert_eq!(count(&f, |d| d.op == Op::Extract), 512);
    assert_eq!(count(&f, |d| d.op == Op::Fmul), 512);
    assert_eq!(
        count(&f, |d| matches!(d.op, Op::LoadScratchVec { offset: 0 })),
        64
    );
    // Three `for` loops make 3 * 4 blocks at most, plus the entry and the `min`.
    assert!(
        f.reverse_postorder().len() < 20,
        "{}",
        f.reverse_postorder().len()
    );
}

#[test]
fn nested_where_ands_masks_and_else_negates() {
    let f = lower(
        "kernel k(tensor<f32> a) {
            f32x64 v = load(a, int4(0));
            where (v > 0.0) { where (v < 1.0) { v = v * 2.0; } else { v = v + 1.0; } }
            store(a, int4(0), v);
        }",
    );
    check_structure(&f);
    assert_eq!(count(&f, |d| d.op == Op::MaskAnd), 2);
    assert_eq!(count(&f, |d| d.op == Op::MaskNot), 1);
    assert_eq!(count(&f, |d| d.op == Op::Copy && d.passthru.is_some()), 2);
}

#[test]
fn functions_are_inlined_with_return_continuations() {
    let f = lower(
        "fn pick(i32 x) -> i32 { if (x > 3) { return x; } return 3; }
         kernel k(tensor<i32> t, i32 n) { t[int4(0)] = pick(n) + pick(n + 1); }",
    );
    check_structure(&f);
    assert_eq!(count(&f, |d| matches!(d.op, Op::Icmp(_))), 2);
    assert_eq!(
        count(&f, |d| matches!(d.op, Op::StoreTensorScalar { slot: 0 })),
        1
    );
}

#[test]
fn loops_with_break_and_continue_are_well_formed() {
    let f = lower(
        "kernel k(tensor<i32> t, i32 n) {
            int s = 0;
            for (int i = 0; i < n; i++) {
                if (i == 5) { continue; }
                if (s > 100) { break; }
                s += i;
                unroll for (int j = 0; j < 4; j++) { if (j == 2) { continue; } s += j; }
            }
            while (s > 0 && n > 0 || s == 7) { s = s / 2; }
            t[int4(0)] = s > 3 ? s : -s;
        }",
    );
    check_structure(&f);
}

#[test]
fn local_scalar_arrays_compute_addresses_in_the_ir() {
    let f = lower(
        "kernel k(tensor<f32> t) {
            local f32 row[16];
            local f32x64 v[2];
            row[3] = 1.5;
            v[1] = f32x64(row[3]);
            t[int4(0)] = row[2];
        }",
    );
    check_structure(&f);
    assert_eq!(f.scratch_bytes, 16 * 4 + 2 * 256);
    assert_eq!(
        count(&f, |d| matches!(d.op, Op::StoreScratch { offset: 0 })),
        1
    );
    assert_eq!(
        count(&f, |d| matches!(d.op, Op::StoreScratchVec { offset: 0 })),
        1
    );
    assert_eq!(count(&f, |d| d.op == Op::Mul), 4);
}

#[test]
fn unsigned_conversions_expand_without_unsigned_scalar_ops() {
    let f = lower(
        "kernel k(tensor<u32> t, u32 u, f32 x) {
            t[int4(0)] = u32(f32(u) + x) / 3u + max(u, 7u);
        }",
    );
    check_structure(&f);
    assert_eq!(count(&f, |d| d.op == Op::CvtF32I32), 2);
    assert_eq!(count(&f, |d| d.op == Op::CvtF32U32), 0);
    assert_eq!(count(&f, |d| d.op == Op::Divu), 1);
    assert_eq!(
        count(&f, |d| d.op == Op::Icmp(sagrada_cc::ir::Cond::Ltu)),
        1
    );
}
