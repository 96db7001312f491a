//! SGC through the runtime: [`Kernel::compile`] and its cache, and the seven demo
//! kernels of `kernels/*.sgc` compiled at `-O0` and `-O1`, each run on the SG1 beside
//! its hand-written assembly version on the same inputs. The SGC versions are written
//! to the same order of operations, so their results must be the same bits (the
//! assembly versions are checked against host references in `kernels.rs`).
//!
//! Every test here needs a working compiler (`sagrada-cc`).

mod common;

use common::{Rng, download_f32, f32_tensor, machine, same_bits};
use sagrada::accel::Device;
use sagrada::kernel::{
    Args, CacheOutcome, ElemKind, Kernel, KernelError, OptLevel, Tensor, cache_stats,
    compile_binary,
};

use sagrada_isa::exec::float::f32_to_bf16;

/// One demo kernel: its two sources, and a run on fixed inputs that returns what it
/// wrote.
struct Demo {
    name: &'static str,
    sgc: &'static str,
    asm: &'static str,
    run: fn(&Device<'_>, &Kernel) -> Vec<f32>,
}

const DEMOS: [Demo; 7] = [
    Demo {
        name: "vadd",
        sgc: include_str!("../../../kernels/vadd.sgc"),
        asm: include_str!("../../../kernels/vadd.s"),
        run: run_vadd,
    },
    Demo {
        name: "saxpy",
        sgc: include_str!("../../../kernels/saxpy.sgc"),
        asm: include_str!("../../../kernels/saxpy.s"),
        run: run_saxpy,
    },
    Demo {
        name: "row_sum",
        sgc: include_str!("../../../kernels/row_sum.sgc"),
        asm: include_str!("../../../kernels/row_sum.s"),
        run: run_row_sum,
    },
    Demo {
        name: "softmax",
        sgc: include_str!("../../../kernels/softmax.sgc"),
        asm: include_str!("../../../kernels/softmax.s"),
        run: run_softmax,
    },
    Demo {
        name: "gemm",
        sgc: include_str!("../../../kernels/gemm.sgc"),
        asm: include_str!("../../../kernels/gemm.s"),
        run: run_gemm,
    },
    Demo {
        name: "layernorm",
        sgc: include_str!("../../../kernels/layernorm.sgc"),
        asm: include_str!("../../../kernels/layernorm.s"),
        run: run_layernorm,
    },
    Demo {
        name: "gemm_bf16",
        sgc: include_str!("../../../kernels/gemm_bf16.sgc"),
        asm: include_str!("../../../kernels/gemm_bf16.s"),
        run: run_gemm_bf16,
    },
];

// Each run draws its inputs from a fixed seed, so two runs see the same data. Shapes
// have tails: lengths and widths that are not multiples of the vector or tile size.

fn run_vadd(dev: &Device<'_>, k: &Kernel) -> Vec<f32> {
    let n = 4096 + 17;
    let mut rng = Rng::new(11);
    let (_, a) = f32_tensor(dev, &rng.f32s(n, -100.0, 100.0), &[n as u32]);
    let (_, b) = f32_tensor(dev, &rng.f32s(n, -100.0, 100.0), &[n as u32]);
    let (cm, c) = f32_tensor(dev, &vec![f32::NAN; n], &[n as u32]);
    dev.run_kernel(
        k,
        &[n.div_ceil(64) as u32],
        &Args::new().arg(a).arg(b).arg(c),
    )
    .unwrap();
    download_f32(dev, &cm, n)
}

fn run_saxpy(dev: &Device<'_>, k: &Kernel) -> Vec<f32> {
    let n = 2000;
    let mut rng = Rng::new(12);
    let (_, x) = f32_tensor(dev, &rng.f32s(n, -10.0, 10.0), &[n as u32]);
    let (ym, y) = f32_tensor(dev, &rng.f32s(n, -10.0, 10.0), &[n as u32]);
    let args = Args::new().arg(1.1f32).arg(x).arg(y);
    dev.run_kernel(k, &[n.div_ceil(64) as u32], &args).unwrap();
    download_f32(dev, &ym, n)
}

fn run_row_sum(dev: &Device<'_>, k: &Kernel) -> Vec<f32> {
    let (cols, rows) = (1000, 9);
    let mut rng = Rng::new(13);
    let x = rng.f32s(cols * rows, -1000.0, 1000.0);
    let (_, tx) = f32_tensor(dev, &x, &[cols as u32, rows as u32]);
    let (om, to) = f32_tensor(dev, &vec![f32::NAN; rows], &[rows as u32]);
    dev.run_kernel(k, &[rows as u32], &Args::new().arg(tx).arg(to))
        .unwrap();
    download_f32(dev, &om, rows)
}

fn run_softmax(dev: &Device<'_>, k: &Kernel) -> Vec<f32> {
    let (cols, rows) = (300, 5);
    let mut rng = Rng::new(14);
    let shape = [cols as u32, rows as u32];
    let (_, tx) = f32_tensor(dev, &rng.f32s(cols * rows, -20.0, 20.0), &shape);
    let (ym, ty) = f32_tensor(dev, &vec![f32::NAN; cols * rows], &shape);
    dev.run_kernel(k, &[rows as u32], &Args::new().arg(tx).arg(ty))
        .unwrap();
    download_f32(dev, &ym, cols * rows)
}

fn run_gemm(dev: &Device<'_>, k: &Kernel) -> Vec<f32> {
    let (m, n, kk) = (24, 130, 192);
    let mut rng = Rng::new(15);
    let (_, ta) = f32_tensor(dev, &rng.f32s(m * kk, -1.0, 1.0), &[kk as u32, m as u32]);
    let (_, tb) = f32_tensor(dev, &rng.f32s(kk * n, -1.0, 1.0), &[n as u32, kk as u32]);
    let (cm, tc) = f32_tensor(dev, &vec![f32::NAN; m * n], &[n as u32, m as u32]);
    let dims = [n.div_ceil(64) as u32, m.div_ceil(64) as u32];
    dev.run_kernel(k, &dims, &Args::new().arg(ta).arg(tb).arg(tc))
        .unwrap();
    download_f32(dev, &cm, m * n)
}

fn run_layernorm(dev: &Device<'_>, k: &Kernel) -> Vec<f32> {
    let (cols, rows) = (300, 5);
    let mut rng = Rng::new(16);
    let shape = [cols as u32, rows as u32];
    let (_, tx) = f32_tensor(dev, &rng.f32s(cols * rows, 40.0, 60.0), &shape);
    let (_, tg) = f32_tensor(dev, &rng.f32s(cols, 0.5, 1.5), &[cols as u32]);
    let (_, tb) = f32_tensor(dev, &rng.f32s(cols, -1.0, 1.0), &[cols as u32]);
    let (ym, ty) = f32_tensor(dev, &vec![f32::NAN; cols * rows], &shape);
    let args = Args::new().arg(tx).arg(tg).arg(tb).arg(ty).arg(1e-5f32);
    dev.run_kernel(k, &[rows as u32], &args).unwrap();
    download_f32(dev, &ym, cols * rows)
}

fn run_gemm_bf16(dev: &Device<'_>, k: &Kernel) -> Vec<f32> {
    let (m, n, kk) = (16, 200, 128);
    let mut rng = Rng::new(17);
    let bf16_tensor = |n: usize, shape: [u32; 2], rng: &mut Rng| {
        let bytes: Vec<u8> = rng
            .f32s(n, -1.0, 1.0)
            .into_iter()
            .flat_map(|v| f32_to_bf16(v).to_le_bytes())
            .collect();
        let mem = dev.alloc(bytes.len() as u64, false).unwrap();
        dev.upload(mem.va, &bytes).unwrap();
        Tensor::new(&mem, ElemKind::Bf16, &shape).unwrap()
    };
    let ta = bf16_tensor(m * kk, [kk as u32, m as u32], &mut rng);
    let tb = bf16_tensor(kk * n, [n as u32, kk as u32], &mut rng);
    let (cm, tc) = f32_tensor(dev, &vec![f32::NAN; m * n], &[n as u32, m as u32]);
    let dims = [n.div_ceil(128) as u32, m.div_ceil(64) as u32];
    dev.run_kernel(k, &dims, &Args::new().arg(ta).arg(tb).arg(tc))
        .unwrap();
    download_f32(dev, &cm, m * n)
}

#[test]
fn every_demo_kernel_in_sgc_gives_the_bits_of_its_assembly_version() {
    let m = machine();
    let p = m.process("cc_demos");
    let dev = Device::open(&p, 0).unwrap();
    for demo in &DEMOS {
        let asm = Kernel::assemble(&dev, demo.asm, &format!("{}.s", demo.name)).unwrap();
        let want = (demo.run)(&dev, &asm);
        for level in [OptLevel::O0, OptLevel::O1] {
            let file = format!("{}.sgc", demo.name);
            let k = Kernel::compile_with(&dev, demo.sgc, &file, level)
                .unwrap_or_else(|e| panic!("{file} at {level:?}:\n{e}"));
            assert_eq!(k.name(), demo.name, "{file}: the kernel's name");
            assert_eq!(
                k.args(),
                asm.args(),
                "{file} at {level:?}: the arguments, in order, as the assembly declares them"
            );
            let got = (demo.run)(&dev, &k);
            let diff = got
                .iter()
                .zip(&want)
                .position(|(a, b)| a.to_bits() != b.to_bits());
            assert!(
                same_bits(&got, &want),
                "{file} at {level:?}: element {diff:?} differs from {}.s",
                demo.name
            );
        }
    }
}

#[test]
fn a_second_compile_of_the_same_source_comes_from_the_cache() {
    // A source no other test compiles, so that this test's outcomes are its own even
    // with the other tests running alongside.
    let source = format!(
        "// the cache test's own copy\n{}",
        include_str!("../../../kernels/vadd.sgc")
    );
    let before = cache_stats();
    let (first, how) = compile_binary(&source, "cached.sgc", OptLevel::O1).unwrap();
    assert_eq!(how, CacheOutcome::Compiled);
    let (again, how) = compile_binary(&source, "cached.sgc", OptLevel::O1).unwrap();
    assert_eq!(how, CacheOutcome::Hit);
    assert_eq!(again, first);
    let (_, how) = compile_binary(&source, "cached.sgc", OptLevel::O0).unwrap();
    assert_eq!(
        how,
        CacheOutcome::Compiled,
        "another level is another binary"
    );
    let after = cache_stats();
    assert!(after.hits > before.hits && after.compilations >= before.compilations + 2);

    // Kernel::compile goes through the same cache: loading it compiles nothing.
    let m = machine();
    let p = m.process("cc_cache");
    let dev = Device::open(&p, 0).unwrap();
    let hits = cache_stats().hits;
    let k = Kernel::compile(&dev, &source, "cached.sgc").unwrap();
    assert_eq!(k.binary(), &first);
    assert!(cache_stats().hits > hits);
}

#[test]
fn a_syntax_error_is_a_compile_error_with_the_rendered_diagnostic() {
    let m = machine();
    let p = m.process("cc_error");
    let dev = Device::open(&p, 0).unwrap();
    let source = "kernel k(tensor<f32> a) {\n    f32x64 x = load(a, int4(0);\n}\n";
    let e = match Kernel::compile(&dev, source, "bad.sgc") {
        Err(e) => e,
        Ok(k) => panic!("bad.sgc compiled to kernel {}", k.name()),
    };
    let KernelError::Compile(c) = &e else {
        panic!("expected a compile error, got {e:?}");
    };
    assert!(!c.diagnostics.0.is_empty(), "no diagnostic: {e}");
    let text = e.to_string();
    assert!(text.starts_with("bad.sgc:2:"), "{text}");
    assert!(
        text.contains("load(a, int4(0);"),
        "the line is shown: {text}"
    );
    // A failure is not cached: compiling it again runs the compiler again.
    let before = cache_stats().compilations;
    assert!(compile_binary(source, "bad.sgc", OptLevel::O1).is_err());
    assert!(cache_stats().compilations > before);
}
