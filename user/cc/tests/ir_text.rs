//! The IR's textual form, verifier and interpreter.

use sagrada_cc::ir::interp::{HostTensor, InterpError, POISON_LANE, run_tensors};
use sagrada_cc::ir::parse::parse;
use sagrada_cc::ir::print::print;
use sagrada_cc::ir::verify::verify;
use sagrada_cc::ir::{Function, Op, Param, ParamKind, Terminator, Type, Value};
use sagrada_cc::span::Span;
use sagrada_isa::exec::FaultKind;

const SAXPY: &str = "\
kernel saxpy(f32 alpha, tensor<f32> x, tensor<f32> y) scratch 0 {
b0:
  %0:f32 = arg 0
  %1:i32 = idx 0
  %2:i32 = const 6
  %3:i32 = shl %1, %2
  %4:i32 = const 0
  %5:int4 = make_int4 %3, %4, %4, %4
  %6:i32 = tdim t1, 0
  %7:i32 = sub %6, %3
  %8:mask = lanes %7
  %9:f32x64 = load_tensor t0, %5 @%8
  %10:f32x64 = load_tensor t1, %5 @%8
  %11:f32x64 = broadcast %0
  %12:f32x64 = fmad %9, %11, %10 @%8
  store_tensor t1, %5, %12 @%8
  halt
}
";

const LOOP: &str = "\
kernel row_sum(tensor<f32> x, tensor<f32> out) scratch 0 {
b0:
  %0:i32 = idx 0
  %1:i32 = tdim t0, 0
  %2:i32 = const 0
  %3:f32 = const 0x00000000 (0.0)
  %4:f32x64 = broadcast %3
  jump b1(%2, %4)
b1(%5:i32, %6:f32x64):
  %7:int4 = make_int4 %5, %0, %2, %2
  %8:i32 = sub %1, %5
  %9:mask = lanes %8
  %10:f32x64 = load_tensor t0, %7 @%9
  %11:f32x64 = fadd %6, %10 @%9 else %6
  %12:i32 = const 64
  %13:i32 = add %5, %12
  %14:i32 = icmp.lt %13, %1
  br %14, b1(%13, %11), b2
b2:
  %15:f32 = red_add %11
  %16:int4 = make_int4 %0, %2, %2, %2
  store_tensor_scalar t1, %16, %15
  halt
}
";

fn f32s(t: &HostTensor) -> Vec<f32> {
    t.words().into_iter().map(f32::from_bits).collect()
}

#[test]
fn saxpy_text_parses_verifies_and_prints_back_identically() {
    let f = parse(SAXPY).unwrap();
    verify(&f).unwrap();
    assert_eq!(print(&f), SAXPY);
}

#[test]
fn loop_text_round_trips_and_renumbers_sparse_names() {
    let f = parse(LOOP).unwrap();
    verify(&f).unwrap();
    assert_eq!(print(&f), LOOP);
    // The same function with other numbers prints the same.
    let renamed = LOOP.replace("%1", "%91").replace("b2", "b7");
    assert_eq!(print(&parse(&renamed).unwrap()), LOOP);
}

#[test]
fn float_constants_print_bits_and_value_and_parse_either() {
    let text = "kernel k() scratch 16 {\nb0:\n  %0:f32 = const 1.5\n  %1:f32 = const -inf\n  %2:mask = const all\n  %3:i32 = const -7\n  halt\n}\n";
    let f = parse(text).unwrap();
    let p = print(&f);
    assert!(p.contains("%0:f32 = const 0x3fc00000 (1.5)"), "{p}");
    assert!(p.contains("%1:f32 = const 0xff800000 (-inf)"), "{p}");
    assert!(p.contains("%2:mask = const all"), "{p}");
    assert!(p.contains("%3:i32 = const -7"), "{p}");
    assert_eq!(print(&parse(&p).unwrap()), p);
    let bad = p.replace("(1.5)", "(2.5)");
    assert!(parse(&bad).unwrap_err().message.contains("not the value"));
}

#[test]
fn guards_negation_and_passthru_round_trip() {
    let text = "kernel k(tensor<f32> a) scratch 0 {\nb0:\n  %0:i32 = const 5\n  %1:mask = lanes %0\n  %2:f32x64 = iota\n  %3:f32x64 = copy %2 @!%1 else %2\n  %4:i32 = const 0\n  %5:int4 = make_int4 %4, %4, %4, %4\n  store_tensor t0, %5, %3 @!%1\n  halt\n}\n";
    // iota gives an i32x64: the verifier catches the wrong type, the parser does not.
    let f = parse(text).unwrap();
    assert!(
        verify(&f).unwrap_err().0.contains("Iota"),
        "{}",
        verify(&f).unwrap_err()
    );
    let fixed = text
        .replace("%2:f32x64 = iota", "%2:i32x64 = iota")
        .replace("%3:f32x64", "%3:i32x64");
    let g = parse(&fixed).unwrap();
    verify(&g).unwrap();
    assert_eq!(print(&g), fixed);
}

#[test]
fn parse_errors_name_the_line() {
    let e = parse("kernel k() scratch 0 {\nb0:\n  %0:i32 = frob %1\n  halt\n}\n").unwrap_err();
    assert_eq!(e.line, 3);
    assert!(e.message.contains("frob"), "{e}");
    let e = parse("kernel k() scratch 0 {\nb0:\n  %0:i32 = add %1, %1\n  halt\n}\n").unwrap_err();
    assert!(e.message.contains("%1 is not defined"), "{e}");
    let e = parse("kernel k() scratch 0 {\nb0:\n  halt\n").unwrap_err();
    assert!(e.message.contains("`}`"), "{e}");
}

#[test]
fn parser_survives_garbage() {
    let inputs = [
        "",
        "}",
        "kernel",
        "kernel k(",
        "kernel k() scratch x {",
        "kernel k() scratch 0 {\n}\n",
        "kernel k() scratch 0 {\nb0:\n  br %0, b1, b2\n}\n",
        "kernel k() scratch 0 {\nb0:\n  %0:i32 = idx 300\n  halt\n}\n",
        "kernel k() scratch 0 {\nb0:\n  %0:i32 = const 0x\n  halt\n}\n",
        "kernel k() scratch 0 {\nb0:\n  %0:f32 = const 0x1 (\n  halt\n}\n",
        "kernel k() scratch 0 {\nb0(:\n  halt\n}\n",
        "kernel k() scratch 0 {\nb0:\n  %0:i32 = load_tensor\n  halt\n}\n",
    ];
    for text in inputs {
        if let Ok(f) = parse(text) {
            let _ = verify(&f);
            let _ = print(&f);
        }
    }
}

fn verify_err(text: &str) -> String {
    verify(&parse(text).unwrap()).unwrap_err().0
}

#[test]
fn verifier_rejects_wrong_operand_types() {
    let e = verify_err(
        "kernel k() scratch 0 {\nb0:\n  %0:i32 = const 1\n  %1:f32 = const 1.0\n  %2:i32 = add %0, %1\n  halt\n}\n",
    );
    assert!(e.contains("one type"), "{e}");
}

#[test]
fn verifier_rejects_guard_on_scalar_op_and_passthru_without_guard() {
    let e = verify_err(
        "kernel k() scratch 0 {\nb0:\n  %0:i32 = const 1\n  %1:mask = lanes %0\n  %2:i32 = add %0, %0 @%1\n  halt\n}\n",
    );
    assert!(e.contains("takes no guard"), "{e}");
    let e = verify_err(
        "kernel k() scratch 0 {\nb0:\n  %0:i32x64 = iota\n  %1:i32x64 = add %0, %0 else %0\n  halt\n}\n",
    );
    assert!(e.contains("without a guard"), "{e}");
    let e = verify_err(
        "kernel k() scratch 0 {\nb0:\n  %0:i32x64 = iota\n  %1:i32 = const 1\n  %2:i32x64 = add %0, %0 @%1\n  halt\n}\n",
    );
    assert!(e.contains("not a mask"), "{e}");
}

#[test]
fn verifier_rejects_bad_targets_and_conditions() {
    let e = verify_err(
        "kernel k() scratch 0 {\nb0:\n  %0:i32 = const 1\n  jump b1\nb1(%1:i32):\n  halt\n}\n",
    );
    assert!(e.contains("passes 0 values"), "{e}");
    let e = verify_err(
        "kernel k() scratch 0 {\nb0:\n  %0:f32 = const 1.0\n  br %0, b1, b1\nb1:\n  halt\n}\n",
    );
    assert!(e.contains("not an i32"), "{e}");
    let e = verify_err(
        "kernel k() scratch 0 {\nb0:\n  %0:f32 = const 1.0\n  jump b1(%0)\nb1(%1:i32):\n  halt\n}\n",
    );
    assert!(e.contains("a f32") || e.contains("f32"), "{e}");
}

#[test]
fn verifier_rejects_use_not_dominated() {
    let e = verify_err(
        "kernel k() scratch 0 {\nb0:\n  %0:i32 = idx 0\n  br %0, b1, b2\nb1:\n  %1:i32 = add %0, %0\n  jump b2\nb2:\n  %2:i32 = add %1, %0\n  halt\n}\n",
    );
    assert!(e.contains("does not dominate"), "{e}");
    let e = verify_err(
        "kernel k() scratch 0 {\nb0:\n  %1:i32 = add %0, %0\n  %0:i32 = idx 0\n  halt\n}\n",
    );
    assert!(e.contains("does not dominate"), "{e}");
}

#[test]
fn verifier_rejects_slot_and_argument_out_of_range() {
    let e =
        verify_err("kernel k(tensor<f32> a) scratch 0 {\nb0:\n  %0:i32 = tdim t1, 0\n  halt\n}\n");
    assert!(e.contains("no tensor t1"), "{e}");
    let e = verify_err("kernel k(tensor<f32> a) scratch 0 {\nb0:\n  %0:i32 = arg 0\n  halt\n}\n");
    assert!(e.contains("scalar argument 0"), "{e}");
}

#[test]
fn verifier_rejects_structural_damage_without_panicking() {
    let mut f = parse(SAXPY).unwrap();
    let i = f.block(f.entry).insts[3];
    f.block_mut(f.entry).insts.push(i);
    assert!(verify(&f).unwrap_err().0.contains("placed twice"));

    let mut f = parse(SAXPY).unwrap();
    let i = f.block(f.entry).insts[3];
    f.inst_mut(i).args[0] = Value(9999);
    assert!(verify(&f).unwrap_err().0.contains("does not exist"));
    let _ = print(&f);

    let mut f = parse(SAXPY).unwrap();
    f.block_mut(f.entry).term = Terminator::Jump(sagrada_cc::ir::Target::new(
        sagrada_cc::ir::Block(42),
        vec![],
    ));
    assert!(verify(&f).unwrap_err().0.contains("does not exist"));
    let _ = print(&f);

    let mut f = Function::new("k", vec![]);
    let e = f.entry;
    f.add_block_param(e, Type::I32);
    assert!(verify(&f).unwrap_err().0.contains("entry"));

    let mut f = Function::new("k", vec![]);
    let e = f.entry;
    let i = f.create_inst(
        Op::Iota,
        vec![],
        Some(Type::VI32),
        None,
        None,
        Span::default(),
    );
    let r = f.inst(i).result.unwrap();
    f.append(e, Op::Copy, vec![r], Some(Type::VI32), Span::default());
    assert!(
        verify(&f)
            .unwrap_err()
            .0
            .contains("no block parameter or placed")
    );
}

fn params_saxpy() -> Vec<Param> {
    vec![
        Param {
            name: "alpha".into(),
            kind: ParamKind::F32,
        },
        Param {
            name: "x".into(),
            kind: ParamKind::TensorF32,
        },
        Param {
            name: "y".into(),
            kind: ParamKind::TensorF32,
        },
    ]
}

#[test]
fn interpreter_runs_saxpy_with_a_masked_tail() {
    let f = parse(SAXPY).unwrap();
    assert_eq!(f.params, params_saxpy());
    let n = 100u32;
    let x: Vec<f32> = (0..n).map(|i| i as f32 * 0.5).collect();
    let y: Vec<f32> = (0..n).map(|i| 1.0 - i as f32).collect();
    let t = [
        HostTensor::f32([n, 1, 1, 1], &x),
        HostTensor::f32([n, 1, 1, 1], &y),
    ];
    let (out, stats) = run_tensors(
        &f,
        [n.div_ceil(64), 1, 1, 1],
        3,
        &t,
        &[3.0f32.to_bits()],
        10_000,
    )
    .unwrap();
    let want: Vec<f32> = x.iter().zip(&y).map(|(a, b)| a * 3.0 + b).collect();
    assert_eq!(f32s(&out[1]), want);
    assert_eq!(stats.invocations, 2);
}

#[test]
fn interpreter_sums_rows_in_tree_order() {
    let f = parse(LOOP).unwrap();
    let (cols, rows) = (150u32, 3u32);
    let x: Vec<f32> = (0..cols * rows)
        .map(|i| ((i * 7919) % 1000) as f32 * 1e-3 + 1e4)
        .collect();
    let t = [
        HostTensor::f32([cols, rows, 1, 1], &x),
        HostTensor::f32([rows, 1, 1, 1], &[0.0; 3]),
    ];
    let (out, _) = run_tensors(&f, [rows, 1, 1, 1], 2, &t, &[], 100_000).unwrap();
    for r in 0..rows as usize {
        // The partial sums per lane, then the ISA's tree.
        let mut lanes = [0.0f32; 64];
        for c in 0..cols as usize {
            lanes[c % 64] += x[r * cols as usize + c];
        }
        let mut h = 32;
        while h > 0 {
            for i in 0..h {
                lanes[i] += lanes[i + h];
            }
            h /= 2;
        }
        assert_eq!(f32s(&out[1])[r].to_bits(), lanes[0].to_bits(), "row {r}");
    }
}

#[test]
fn interpreter_reports_tensor_range_fault_of_an_active_lane() {
    // No tail mask: the second vector runs past the 100 elements.
    let text = SAXPY.replace(" @%8", "");
    let f = parse(&text).unwrap();
    verify(&f).unwrap();
    let t = [
        HostTensor::f32([100, 1, 1, 1], &[0.0; 100]),
        HostTensor::f32([100, 1, 1, 1], &[0.0; 100]),
    ];
    let e = run_tensors(&f, [2, 1, 1, 1], 1, &t, &[0], 10_000).unwrap_err();
    match e {
        InterpError::Fault {
            kind:
                FaultKind::TensorRange {
                    slot: 0,
                    dim: 0,
                    coord: 100,
                },
            point,
            ..
        } => {
            assert_eq!(point, [1, 0, 0, 0]);
        }
        e => panic!("{e}"),
    }
}

#[test]
fn interpreter_faults_on_division_by_zero_and_bad_scratch() {
    let text = "kernel k(i32 n) scratch 0 {\nb0:\n  %0:i32 = arg 0\n  %1:i32 = const 7\n  %2:i32 = div %1, %0\n  halt\n}\n";
    let f = parse(text).unwrap();
    verify(&f).unwrap();
    assert!(run_tensors(&f, [1, 1, 1, 1], 1, &[], &[1], 100).is_ok());
    let e = run_tensors(&f, [1, 1, 1, 1], 1, &[], &[0], 100).unwrap_err();
    assert!(
        matches!(
            e,
            InterpError::Fault {
                kind: FaultKind::DivideByZero,
                ..
            }
        ),
        "{e}"
    );

    let text = "kernel k(i32 a) scratch 0 {\nb0:\n  %0:i32 = arg 0\n  %1:i32 = load_scratch 4, %0\n  halt\n}\n";
    let f = parse(text).unwrap();
    let e = run_tensors(&f, [1, 1, 1, 1], 1, &[], &[2], 100).unwrap_err();
    assert!(
        matches!(
            e,
            InterpError::Fault {
                kind: FaultKind::Misaligned { addr: 6 },
                ..
            }
        ),
        "{e}"
    );
    let e = run_tensors(&f, [1, 1, 1, 1], 1, &[], &[256 * 1024 - 4], 100).unwrap_err();
    assert!(
        matches!(
            e,
            InterpError::Fault {
                kind: FaultKind::ScratchRange { .. },
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn interpreter_stops_at_the_step_limit() {
    let text = "kernel k() scratch 0 {\nb0:\n  jump b1\nb1:\n  jump b1\n}\n";
    let f = parse(text).unwrap();
    verify(&f).unwrap();
    assert_eq!(
        run_tensors(&f, [1, 1, 1, 1], 1, &[], &[], 1000).unwrap_err(),
        InterpError::StepLimit(1000)
    );
}

#[test]
fn interpreter_fills_unspecified_lanes_with_poison() {
    let text = "kernel k(tensor<i32> o) scratch 0 {\nb0:\n  %0:i32 = const 3\n  %1:mask = lanes %0\n  %2:i32x64 = iota\n  %3:i32x64 = add %2, %2 @%1\n  %4:i32 = const 0\n  %5:int4 = make_int4 %4, %4, %4, %4\n  store_tensor t0, %5, %3\n  halt\n}\n";
    let f = parse(text).unwrap();
    verify(&f).unwrap();
    let t = [HostTensor::u32([64, 1, 1, 1], &[0; 64])];
    let (out, _) = run_tensors(&f, [1, 1, 1, 1], 1, &t, &[], 100).unwrap();
    let w = out[0].words();
    assert_eq!(&w[..3], &[0, 2, 4]);
    assert!(w[3..].iter().all(|&x| x == POISON_LANE));
}

#[test]
fn interpreter_keeps_scratch_across_invocations_of_a_core() {
    // Each invocation adds its index to scratch word 0 and stores the running sum.
    let text = "kernel k(tensor<i32> o) scratch 4 {\nb0:\n  %0:i32 = const 0\n  %1:i32 = load_scratch 0, %0\n  %2:i32 = idx 0\n  %3:i32 = add %1, %2\n  store_scratch 0, %0, %3\n  %4:int4 = make_int4 %2, %0, %0, %0\n  store_tensor_scalar t0, %4, %3\n  halt\n}\n";
    let f = parse(text).unwrap();
    verify(&f).unwrap();
    let t = [HostTensor::u32([6, 1, 1, 1], &[0; 6])];
    let (out, _) = run_tensors(&f, [6, 1, 1, 1], 2, &t, &[], 1000).unwrap();
    // Core 0 runs 0, 1, 2; core 1 runs 3, 4, 5 with a fresh scratchpad.
    assert_eq!(out[0].words(), vec![0, 1, 3, 3, 7, 12]);
}
