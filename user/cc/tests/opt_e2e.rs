//! The passes against the interpreter: every pass, alone and in the pipeline, keeps
//! the verifier's rules and the results of kernels on random inputs; and -O1 makes
//! the loops of the reference kernels cheaper.

use sagrada_cc::OptLevel;
use sagrada_cc::ir::Function;
use sagrada_cc::ir::interp::{HostTensor, InterpError, Stats, run_tensors};
use sagrada_cc::ir::parse::parse;
use sagrada_cc::ir::print::print;
use sagrada_cc::ir::verify::verify;
use sagrada_cc::opt::{self, PIPELINE, Pass};

const SAXPY: &str = "kernel saxpy(f32 alpha, tensor<f32> x, tensor<f32> y) scratch 0 {
b0:
  %0:f32 = arg 0
  %1:i32 = idx 0
  %2:i32 = const 64
  %3:i32 = mul %1, %2
  %4:i32 = const 0
  %5:int4 = make_int4 %3, %4, %4, %4
  %6:i32 = tdim t1, 0
  %7:i32 = sub %6, %3
  %8:mask = lanes %7
  %9:f32x64 = load_tensor t0, %5 @%8
  %10:f32x64 = load_tensor t1, %5 @%8
  %11:f32x64 = broadcast %0
  %12:f32x64 = fmul %9, %11 @%8
  %13:f32x64 = fadd %12, %10 @%8
  %14:f32x64 = copy %13
  store_tensor t1, %5, %14 @%8
  halt
}
";

const ROW_SUM: &str = "kernel row_sum(tensor<f32> x, tensor<f32> out) scratch 0 {
b0:
  %0:i32 = idx 0
  %2:i32 = const 0
  %3:f32 = const 0.0
  %4:f32x64 = broadcast %3
  jump b1(%2, %4)
b1(%5:i32, %6:f32x64):
  %1:i32 = tdim t0, 0
  %20:i32 = const 1
  %21:i32 = mul %5, %20
  %7:int4 = make_int4 %21, %0, %2, %2
  %8:i32 = sub %1, %5
  %9:mask = lanes %8
  %10:f32x64 = load_tensor t0, %7 @%9
  %22:f32x64 = fadd %6, %10 @%9
  %11:f32x64 = copy %22 @%9 else %6
  %12:i32 = const 64
  %13:i32 = add %5, %12
  %14:i32 = icmp.lt %13, %1
  br %14, b2, b3
b2:
  jump b1(%13, %11)
b3:
  %15:f32 = red_add %11
  %16:int4 = make_int4 %0, %2, %2, %2
  store_tensor_scalar t1, %16, %15
  halt
}
";

const GEMM: &str = "kernel gemm(tensor<f32> a, tensor<f32> b, tensor<f32> c) scratch 262144 {
b0:
  %0:i32 = idx 0
  %1:i32 = idx 1
  %2:i32 = const 6
  %3:i32 = shl %0, %2
  %4:i32 = tdim t0, 0
  %5:i32 = tdim t1, 0
  %6:i32 = sub %5, %3
  %7:mask = lanes %6
  %8:i32 = const 0
  jump b1(%8)
b1(%9:i32):
  %10:i32 = const 0
  %11:int4 = make_int4 %3, %9, %10, %10
  %12:f32x64 = load_tensor t1, %11 @%7
  %13:i32 = const 256
  %14:i32 = mul %9, %13
  store_scratch_vec 0, %14, %12 @%7
  %15:i32 = const 1
  %16:i32 = add %9, %15
  %17:i32 = icmp.lt %16, %4
  br %17, b1(%16), b2
b2:
  %18:f32 = const 0.0
  %19:f32x64 = broadcast %18
  jump b3(%8, %19)
b3(%20:i32, %21:f32x64):
  %22:i32 = const 256
  %23:i32 = mul %20, %22
  %24:f32x64 = load_scratch_vec 0, %23 @%7
  %25:i32 = const 0
  %26:int4 = make_int4 %20, %1, %25, %25
  %27:f32 = load_tensor_scalar t0, %26
  %28:f32x64 = broadcast %27
  %29:f32x64 = fmad %24, %28, %21 @%7
  %30:i32 = const 1
  %31:i32 = add %20, %30
  %32:i32 = icmp.lt %31, %4
  br %32, b3(%31, %29), b4
b4:
  %33:int4 = make_int4 %3, %1, %8, %8
  store_tensor t2, %33, %29 @%7
  halt
}
";

const SOFTMAX: &str = "kernel softmax(tensor<f32> x, tensor<f32> y) scratch 0 {
b0:
  %0:i32 = idx 0
  %1:i32 = tdim t0, 0
  %2:i32 = const 0
  %3:f32 = const -inf
  jump b1(%2, %3)
b1(%4:i32, %5:f32):
  %6:int4 = make_int4 %4, %0, %2, %2
  %7:i32 = sub %1, %4
  %8:mask = lanes %7
  %9:f32x64 = load_tensor t0, %6 @%8
  %10:f32 = red_max %9 @%8
  %11:f32 = fmax %5, %10
  %12:i32 = const 64
  %13:i32 = add %4, %12
  %14:i32 = icmp.lt %13, %1
  br %14, b1(%13, %11), b2
b2:
  %15:f32 = const 0.0
  jump b3(%2, %15)
b3(%16:i32, %17:f32):
  %18:int4 = make_int4 %16, %0, %2, %2
  %19:i32 = sub %1, %16
  %20:mask = lanes %19
  %21:f32x64 = load_tensor t0, %18 @%20
  %22:f32x64 = broadcast %11
  %23:f32x64 = fsub %21, %22 @%20
  %24:f32x64 = fexp %23 @%20
  %25:f32 = red_add %24 @%20
  %26:f32 = fadd %17, %25
  %27:i32 = const 64
  %28:i32 = add %16, %27
  %29:i32 = icmp.lt %28, %1
  br %29, b3(%28, %26), b4
b4:
  %30:f32 = frcp %26
  jump b5(%2)
b5(%31:i32):
  %32:int4 = make_int4 %31, %0, %2, %2
  %33:i32 = sub %1, %31
  %34:mask = lanes %33
  %35:f32x64 = load_tensor t0, %32 @%34
  %36:f32x64 = broadcast %11
  %37:f32x64 = fsub %35, %36 @%34
  %38:f32x64 = fexp %37 @%34
  %39:f32x64 = broadcast %30
  %40:f32x64 = fmul %38, %39 @%34
  %41:f32x64 = copy %40 @%34 else %35
  store_tensor t1, %32, %41 @%34
  %42:i32 = const 64
  %43:i32 = add %31, %42
  %44:i32 = icmp.lt %43, %1
  br %44, b5(%43), b6
b6:
  halt
}
";

const SCALAR: &str = "kernel scalar(tensor<i32> o, i32 n, i32 d) scratch 64 {
b0:
  %0:i32 = idx 0
  %1:i32 = arg 0
  %2:i32 = arg 1
  %3:i32 = const 1
  br %3, b1, b2
b1:
  %4:i32 = div %1, %2
  %5:i32 = rem %0, %3
  %6:i32 = add %4, %5
  jump b3(%6)
b2:
  %7:i32 = const 99
  jump b3(%7)
b3(%8:i32):
  %9:i32 = const 4
  %10:i32 = mul %0, %9
  store_scratch 0, %10, %8
  %11:i32 = load_scratch 0, %10
  %12:i32 = icmp.gt %11, %0
  %13:i32 = select %12, %11, %0
  %14:i32 = const 0
  %15:int4 = make_int4 %0, %14, %14, %14
  %16:i32 = sub %13, %13
  %17:i32 = xor %16, %13
  %19:i32 = const 3
  %20:i32 = const 5
  %21:i32 = mul %19, %20
  %22:i32 = sub %17, %21
  %23:i32 = mul %22, %1
  store_tensor_scalar t0, %15, %23
  %18:i32 = div %0, %2
  halt
}
";

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u32) -> u32 {
        (self.next() % u64::from(n)) as u32
    }

    fn f32s(&mut self, n: usize) -> Vec<f32> {
        (0..n)
            .map(|_| (self.below(20001) as f32 - 10000.0) / 1000.0)
            .collect()
    }
}

type Launch = ([u32; 4], u32, Vec<HostTensor>, Vec<u32>);

/// A random launch of the kernel named `name`.
fn launch(name: &str, rng: &mut Rng) -> Launch {
    let v = |d: [u32; 4], rng: &mut Rng| {
        HostTensor::f32(d, &rng.f32s(d.iter().product::<u32>() as usize))
    };
    let cores = 1 + rng.below(3);
    match name {
        "saxpy" => {
            let n = 1 + rng.below(300);
            let alpha = rng.f32s(1)[0].to_bits();
            let t = vec![v([n, 1, 1, 1], rng), v([n, 1, 1, 1], rng)];
            ([n.div_ceil(64), 1, 1, 1], cores, t, vec![alpha])
        }
        "row_sum" | "softmax" => {
            let (cols, rows) = (1 + rng.below(200), 1 + rng.below(4));
            let out = if name == "row_sum" {
                [rows, 1, 1, 1]
            } else {
                [cols, rows, 1, 1]
            };
            let t = vec![v([cols, rows, 1, 1], rng), v(out, rng)];
            ([rows, 1, 1, 1], cores, t, vec![])
        }
        "gemm" => {
            let (k, m, n) = (1 + rng.below(40), 1 + rng.below(5), 1 + rng.below(100));
            let t = vec![
                v([k, m, 1, 1], rng),
                v([n, k, 1, 1], rng),
                v([n, m, 1, 1], rng),
            ];
            ([n.div_ceil(64), m, 1, 1], cores, t, vec![])
        }
        _ => {
            let n = 1 + rng.below(8);
            let d = if rng.below(4) == 0 { 0 } else { rng.below(9) };
            let t = vec![HostTensor::u32([n, 1, 1, 1], &vec![0; n as usize])];
            ([n, 1, 1, 1], cores, t, vec![rng.next() as u32, d])
        }
    }
}

const KERNELS: &[(&str, &str)] = &[
    ("saxpy", SAXPY),
    ("row_sum", ROW_SUM),
    ("gemm", GEMM),
    ("softmax", SOFTMAX),
    ("scalar", SCALAR),
];

type Outcome = Result<(Vec<HostTensor>, Stats), InterpError>;

fn exec(f: &Function, l: &Launch) -> Outcome {
    run_tensors(f, l.0, l.1, &l.2, &l.3, 10_000_000)
}

/// Whether two runs agree: the same tensors (NaN-ness, not payloads) or the same fault
/// at the same point (the faulting instruction may differ).
fn agree(a: &Outcome, b: &Outcome) -> bool {
    match (a, b) {
        (Ok((ta, _)), Ok((tb, _))) => ta.iter().zip(tb).all(|(x, y)| {
            x.words()
                .iter()
                .zip(y.words())
                .all(|(&p, q)| p == q || (f32::from_bits(p).is_nan() && f32::from_bits(q).is_nan()))
        }),
        (
            Err(InterpError::Fault {
                kind: ka,
                point: pa,
                core: ca,
                ..
            }),
            Err(InterpError::Fault {
                kind: kb,
                point: pb,
                core: cb,
                ..
            }),
        ) => ka == kb && pa == pb && ca == cb,
        _ => false,
    }
}

/// Runs `passes` one after the other over every kernel, verifying after each, and
/// compares the final function with the original on random launches.
fn check_passes(passes: &[(&str, Pass)], seeds: u64) {
    for (name, text) in KERNELS {
        let original = parse(text).unwrap();
        verify(&original).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut f = original.clone();
        for (pass, run) in passes {
            run(&mut f);
            if let Err(e) = verify(&f) {
                panic!("{name} after {pass}: {e}\n{}", print(&f));
            }
        }
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ name.len() as u64);
        for seed in 0..seeds {
            let l = launch(name, &mut rng);
            let (before, after) = (exec(&original, &l), exec(&f, &l));
            assert!(
                agree(&before, &after),
                "{name} (launch {seed}) differs after {:?}:\nbefore: {:?}\nafter: {:?}\n{}",
                passes.iter().map(|p| p.0).collect::<Vec<_>>(),
                before.as_ref().map(|r| r.1),
                after.as_ref().map(|r| r.1),
                print(&f)
            );
        }
    }
}

fn pass(name: &str) -> (&'static str, Pass) {
    *PIPELINE.iter().find(|p| p.0 == name).unwrap()
}

#[test]
fn cfg_alone_keeps_results() {
    check_passes(&[pass("cfg")], 6);
}

#[test]
fn fold_alone_keeps_results() {
    check_passes(&[pass("fold")], 6);
}

#[test]
fn gvn_alone_keeps_results() {
    check_passes(&[pass("gvn")], 6);
}

#[test]
fn dce_alone_keeps_results() {
    check_passes(&[pass("dce")], 6);
}

#[test]
fn licm_alone_keeps_results() {
    check_passes(&[pass("licm")], 6);
}

#[test]
fn strength_after_licm_keeps_results() {
    check_passes(&[pass("licm"), pass("strength")], 6);
}

#[test]
fn passthru_alone_keeps_results() {
    check_passes(&[pass("passthru")], 6);
}

#[test]
fn pipeline_verifies_after_every_pass_and_keeps_results() {
    check_passes(PIPELINE, 12);
}

#[test]
fn pipeline_is_stable_when_run_twice() {
    for (name, text) in KERNELS {
        let mut f = parse(text).unwrap();
        opt::optimize(&mut f, OptLevel::O1);
        let once = print(&f);
        opt::optimize(&mut f, OptLevel::O1);
        verify(&f).unwrap();
        // A second run may only tidy up, never grow the function.
        assert!(print(&f).lines().count() <= once.lines().count(), "{name}");
    }
}

#[test]
fn o0_changes_nothing() {
    for (_, text) in KERNELS {
        let mut f = parse(text).unwrap();
        let before = print(&f);
        opt::optimize(&mut f, OptLevel::O0);
        assert_eq!(print(&f), before);
    }
}

/// The instructions each kernel executes on one launch, before and after -O1.
fn executed(name: &str, text: &str) -> (u64, u64, String) {
    let original = parse(text).unwrap();
    let mut f = original.clone();
    opt::optimize(&mut f, OptLevel::O1);
    let mut rng = Rng(7);
    let mut l = launch(name, &mut rng);
    while exec(&original, &l).is_err() {
        l = launch(name, &mut rng);
    }
    let count = |f: &Function| {
        let s = exec(f, &l).unwrap().1;
        s.insts + s.terms
    };
    (count(&original), count(&f), print(&f))
}

#[test]
fn o1_makes_loops_cheaper() {
    for (name, text) in KERNELS {
        let (before, after, ir) = executed(name, text);
        assert!(after < before, "{name}: {before} -> {after}\n{ir}");
    }
}

#[test]
fn o1_row_sum_loop_is_tight() {
    let mut f = parse(ROW_SUM).unwrap();
    opt::optimize(&mut f, OptLevel::O1);
    let text = print(&f);
    // The loop: int4, sub, lanes, load, guarded add, add, compare, branch. The
    // constants, the tensor size and the merge have left it.
    let body: Vec<&str> = text
        .split("\nb1(")
        .nth(1)
        .unwrap()
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .collect();
    assert_eq!(body.len(), 8, "{text}");
    assert!(
        !body
            .iter()
            .any(|l| l.contains("const") || l.contains("tdim") || l.contains("copy")),
        "{text}"
    );
}

#[test]
fn o1_gemm_inner_loop_has_no_multiply() {
    let mut f = parse(GEMM).unwrap();
    opt::optimize(&mut f, OptLevel::O1);
    let text = print(&f);
    let loops = text.split("\nb1(").nth(1).unwrap();
    assert!(!loops.contains("mul"), "{text}");
    assert!(!loops.contains(" shl "), "{text}");
}

#[test]
fn optimised_kernels_print_parse_and_print_identically() {
    for (name, text) in KERNELS {
        let mut f = parse(text).unwrap();
        opt::optimize(&mut f, OptLevel::O1);
        let once = print(&f);
        let again = parse(&once).unwrap_or_else(|e| panic!("{name}: {e}\n{once}"));
        verify(&again).unwrap();
        assert_eq!(print(&again), once, "{name}");
    }
}

#[test]
fn damaged_functions_never_panic_verify_print_or_interp() {
    use sagrada_cc::ir::{Block, Value};
    let mut rng = Rng(12345);
    for (name, text) in KERNELS {
        let original = parse(text).unwrap();
        for _ in 0..200 {
            let mut f = original.clone();
            let ni = f.insts.len() as u32;
            let nv = f.values.len() as u32 + 3;
            let nb = f.blocks.len() as u32 + 1;
            for _ in 0..1 + rng.below(3) {
                let i = rng.below(ni) as usize;
                match rng.below(5) {
                    0 if !f.insts[i].args.is_empty() => {
                        let k = rng.below(f.insts[i].args.len() as u32) as usize;
                        f.insts[i].args[k] = Value(rng.below(nv));
                    }
                    1 => f.insts[i].args.push(Value(rng.below(nv))),
                    2 => {
                        let b = rng.below(f.blocks.len() as u32) as usize;
                        f.blocks[b].insts.reverse();
                    }
                    3 => {
                        let b = rng.below(f.blocks.len() as u32) as usize;
                        f.blocks[b].term = sagrada_cc::ir::Terminator::Jump(
                            sagrada_cc::ir::Target::new(Block(rng.below(nb)), vec![]),
                        );
                    }
                    _ => f.insts[i].result = Some(Value(rng.below(nv))),
                }
            }
            let verified = verify(&f).is_ok();
            let _ = print(&f);
            let l = launch(name, &mut rng);
            let r = run_tensors(&f, l.0, l.1, &l.2, &l.3, 100_000);
            if verified {
                // A function that passes the verifier runs without a malformed-IR stop.
                assert!(
                    !matches!(r, Err(InterpError::Malformed(_))),
                    "{name}: {r:?}\n{}",
                    print(&f)
                );
            }
        }
    }
}
