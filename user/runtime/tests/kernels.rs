//! The demo kernels of `kernels/` on the SG1, through the runtime and the driver,
//! against host references: bit-exact where the kernel's order of operations can be
//! written down on the host (vadd, saxpy, row_sum, gemm, layernorm, gemm_bf16), within
//! a tolerance where it uses the cores' own `exp` (softmax). Shapes include the tails
//! the kernels mask.

mod common;

use common::{Rng, download_f32, f32_tensor, machine, same_bits, upload_f32};
use sagrada::accel::Device;
use sagrada::kernel::{Args, ElemKind, FaultCode, Kernel, KernelError, Tensor};
use sagrada_isa::exec::float::{bf16_to_f32, f32_to_bf16};

const VADD: &str = include_str!("../../../kernels/vadd.s");
const SAXPY: &str = include_str!("../../../kernels/saxpy.s");
const ROW_SUM: &str = include_str!("../../../kernels/row_sum.s");
const SOFTMAX: &str = include_str!("../../../kernels/softmax.s");
const GEMM: &str = include_str!("../../../kernels/gemm.s");
const LAYERNORM: &str = include_str!("../../../kernels/layernorm.s");
const GEMM_BF16: &str = include_str!("../../../kernels/gemm_bf16.s");

fn load(dev: &Device<'_>, source: &str, name: &str) -> Kernel {
    Kernel::assemble(dev, source, name).unwrap_or_else(|e| panic!("{name}:\n{e}"))
}

/// The first index where `got` and `want` differ in bits, for the message.
fn first_difference(got: &[f32], want: &[f32]) -> String {
    match got
        .iter()
        .zip(want)
        .position(|(a, b)| a.to_bits() != b.to_bits())
    {
        Some(i) => format!("element {i}: device {} host {}", got[i], want[i]),
        None => format!("lengths {} and {}", got.len(), want.len()),
    }
}

#[test]
fn vadd_is_bit_exact_with_tails() {
    let m = machine();
    let p = m.process("vadd");
    let dev = Device::open(&p, 0).unwrap();
    let k = load(&dev, VADD, "vadd.s");
    let mut rng = Rng::new(1);
    for n in [1usize, 63, 64, 65, 1000, 4096 + 17] {
        let a = rng.f32s(n, -100.0, 100.0);
        let b = rng.f32s(n, -100.0, 100.0);
        let (_, ta) = f32_tensor(&dev, &a, &[n as u32]);
        let (_, tb) = f32_tensor(&dev, &b, &[n as u32]);
        let (cm, tc) = f32_tensor(&dev, &vec![f32::NAN; n], &[n as u32]);
        dev.run_kernel(
            &k,
            &[n.div_ceil(64) as u32],
            &Args::new().arg(ta).arg(tb).arg(tc),
        )
        .unwrap();
        let got = download_f32(&dev, &cm, n);
        let want: Vec<f32> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
        assert!(
            same_bits(&got, &want),
            "n = {n}: {}",
            first_difference(&got, &want)
        );
    }
}

#[test]
fn saxpy_rounds_the_product_before_the_add() {
    let m = machine();
    let p = m.process("saxpy");
    let dev = Device::open(&p, 0).unwrap();
    let k = load(&dev, SAXPY, "saxpy.s");
    let mut rng = Rng::new(2);
    for (n, alpha) in [(1usize, 3.0f32), (64, -0.75), (129, 1.0 / 3.0), (2000, 1.1)] {
        let x = rng.f32s(n, -10.0, 10.0);
        let y = rng.f32s(n, -10.0, 10.0);
        let (_, tx) = f32_tensor(&dev, &x, &[n as u32]);
        let (ym, ty) = f32_tensor(&dev, &y, &[n as u32]);
        dev.run_kernel(
            &k,
            &[n.div_ceil(64) as u32],
            &Args::new()
                .named("x", tx)
                .named("y", ty)
                .named("alpha", alpha),
        )
        .unwrap();
        let got = download_f32(&dev, &ym, n);
        // Two roundings: Rust never contracts `a * b + c` into a fused multiply-add.
        let want: Vec<f32> = x.iter().zip(&y).map(|(x, y)| x * alpha + y).collect();
        assert!(
            same_bits(&got, &want),
            "n = {n}: {}",
            first_difference(&got, &want)
        );
    }
}

/// `vredsum.f32` over all 64 lanes: `a[i] += a[i + h]` for `h` = 32, 16, ..., 1.
fn lane_tree(mut lanes: [f32; 64]) -> f32 {
    let mut h = 32;
    while h > 0 {
        for i in 0..h {
            lanes[i] += lanes[i + h];
        }
        h /= 2;
    }
    lanes[0]
}

/// The kernel's order: per-lane partial sums over 64-column steps (registers start at
/// +0.0), then the lane tree.
fn row_sum_reference(x: &[f32], cols: usize, rows: usize) -> Vec<f32> {
    (0..rows)
        .map(|r| {
            let row = &x[r * cols..(r + 1) * cols];
            let mut lanes = [0.0f32; 64];
            for step in row.chunks(64) {
                for (lane, v) in lanes.iter_mut().zip(step) {
                    *lane += v;
                }
            }
            lane_tree(lanes)
        })
        .collect()
}

#[test]
fn row_sum_matches_the_lane_order_of_the_kernel_bit_for_bit() {
    let m = machine();
    let p = m.process("row_sum");
    let dev = Device::open(&p, 0).unwrap();
    let k = load(&dev, ROW_SUM, "row_sum.s");
    let mut rng = Rng::new(3);
    for (cols, rows) in [(1usize, 1usize), (64, 3), (100, 5), (129, 2), (1000, 9)] {
        let x = rng.f32s(cols * rows, -1000.0, 1000.0);
        let (_, tx) = f32_tensor(&dev, &x, &[cols as u32, rows as u32]);
        let (om, to) = f32_tensor(&dev, &vec![f32::NAN; rows], &[rows as u32]);
        dev.run_kernel(&k, &[rows as u32], &Args::new().arg(tx).arg(to))
            .unwrap();
        let got = download_f32(&dev, &om, rows);
        let want = row_sum_reference(&x, cols, rows);
        assert!(
            same_bits(&got, &want),
            "{cols} x {rows}: {}",
            first_difference(&got, &want)
        );
    }
}

#[test]
fn softmax_is_within_1e5_of_f64_and_rows_sum_to_one() {
    let m = machine();
    let p = m.process("softmax");
    let dev = Device::open(&p, 0).unwrap();
    let k = load(&dev, SOFTMAX, "softmax.s");
    let mut rng = Rng::new(4);
    for (cols, rows) in [(1usize, 1usize), (10, 3), (64, 2), (300, 5)] {
        let x = rng.f32s(cols * rows, -20.0, 20.0);
        let (_, tx) = f32_tensor(&dev, &x, &[cols as u32, rows as u32]);
        let (ym, ty) = f32_tensor(&dev, &vec![0.0; cols * rows], &[cols as u32, rows as u32]);
        dev.run_kernel(&k, &[rows as u32], &Args::new().arg(tx).arg(ty))
            .unwrap();
        let got = download_f32(&dev, &ym, cols * rows);
        for r in 0..rows {
            let row = &x[r * cols..(r + 1) * cols];
            let max = row
                .iter()
                .fold(f64::NEG_INFINITY, |m, &v| m.max(f64::from(v)));
            let e: Vec<f64> = row.iter().map(|&v| (f64::from(v) - max).exp()).collect();
            let sum: f64 = e.iter().sum();
            let out = &got[r * cols..(r + 1) * cols];
            for (i, (&g, &e)) in out.iter().zip(&e).enumerate() {
                let want = e / sum;
                let rel = (f64::from(g) - want).abs() / want.max(f64::MIN_POSITIVE);
                // Tiny probabilities are judged absolutely: their relative error is
                // the exp approximation's far in its tail.
                assert!(
                    rel <= 1e-5 || (f64::from(g) - want).abs() <= 1e-12,
                    "{cols} x {rows}, row {r} column {i}: device {g}, f64 {want}, relative error {rel:e}"
                );
            }
            let total: f64 = out.iter().map(|&v| f64::from(v)).sum();
            assert!(
                (total - 1.0).abs() <= 1e-5,
                "{cols} x {rows}, row {r} sums to {total}"
            );
        }
    }
}

/// C = A * B with A (M rows of K), B (K rows of N), row-major, each element summed in
/// k order with a rounded product and a rounded add, as `vmadl.f32` does.
fn gemm_reference(a: &[f32], b: &[f32], m: usize, n: usize, k: usize) -> Vec<f32> {
    let mut c = vec![0.0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut acc = 0.0f32;
            for p in 0..k {
                acc += a[i * k + p] * b[p * n + j];
            }
            c[i * n + j] = acc;
        }
    }
    c
}

#[test]
fn gemm_is_bit_exact_with_a_masked_column_tile() {
    let mm = machine();
    let p = mm.process("gemm");
    let dev = Device::open(&p, 0).unwrap();
    let kernel = load(&dev, GEMM, "gemm.s");
    let mut rng = Rng::new(5);
    // M a multiple of 8, K of 64 (the kernel's limits); N free.
    for (m, n, k) in [
        (8usize, 64usize, 64usize),
        (64, 72, 128),
        (16, 1, 64),
        (24, 130, 192),
    ] {
        let a = rng.f32s(m * k, -1.0, 1.0);
        let b = rng.f32s(k * n, -1.0, 1.0);
        let (_, ta) = f32_tensor(&dev, &a, &[k as u32, m as u32]);
        let (_, tb) = f32_tensor(&dev, &b, &[n as u32, k as u32]);
        let cm = upload_f32(&dev, &vec![f32::NAN; m * n]);
        let tc = Tensor::new(&cm, ElemKind::F32, &[n as u32, m as u32]).unwrap();
        dev.run_kernel(
            &kernel,
            &[n.div_ceil(64) as u32, m.div_ceil(64) as u32],
            &Args::new().arg(ta).arg(tb).arg(tc),
        )
        .unwrap();
        let got = download_f32(&dev, &cm, m * n);
        let want = gemm_reference(&a, &b, m, n, k);
        assert!(
            same_bits(&got, &want),
            "{m} x {n} x {k}: {}",
            first_difference(&got, &want)
        );
    }
}

/// The per-lane partial sums of `row` over 64-column steps (registers start at +0.0),
/// each lane's terms mapped by `f` first, combined in the lane tree: the order of
/// layernorm's two reductions.
fn lane_sum(row: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut lanes = [0.0f32; 64];
    for step in row.chunks(64) {
        for (lane, &v) in lanes.iter_mut().zip(step) {
            *lane += f(v);
        }
    }
    lane_tree(lanes)
}

/// Layernorm in the kernel's order of operations. `frsqrt` is the correctly rounded
/// square root, then the correctly rounded reciprocal (`sagrada_isa`'s semantics), and
/// IEEE `sqrt` and `/` are correctly rounded on every host, so the reference is
/// bit-exact without a tolerance.
fn layernorm_reference(
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
    cols: usize,
    rows: usize,
) -> Vec<f32> {
    let n = cols as f32;
    let mut y = Vec::with_capacity(cols * rows);
    for r in 0..rows {
        let row = &x[r * cols..(r + 1) * cols];
        let mean = lane_sum(row, |v| v) / n;
        let var = lane_sum(row, |v| (v - mean) * (v - mean)) / n;
        let rstd = 1.0 / (var + eps).sqrt();
        for ((&v, &g), &b) in row.iter().zip(gamma).zip(beta) {
            y.push((v - mean) * rstd * g + b);
        }
    }
    y
}

#[test]
fn layernorm_is_bit_exact_with_tails() {
    let m = machine();
    let p = m.process("layernorm");
    let dev = Device::open(&p, 0).unwrap();
    let k = load(&dev, LAYERNORM, "layernorm.s");
    let mut rng = Rng::new(6);
    for (cols, rows) in [
        (1usize, 1usize),
        (10, 3),
        (64, 2),
        (65, 2),
        (300, 5),
        (1000, 3),
    ] {
        // Rows off zero, so that the mean matters.
        let x = rng.f32s(cols * rows, 40.0, 60.0);
        let gamma = rng.f32s(cols, 0.5, 1.5);
        let beta = rng.f32s(cols, -1.0, 1.0);
        let eps = 1e-5f32;
        let shape = [cols as u32, rows as u32];
        let (_, tx) = f32_tensor(&dev, &x, &shape);
        let (_, tg) = f32_tensor(&dev, &gamma, &[cols as u32]);
        let (_, tb) = f32_tensor(&dev, &beta, &[cols as u32]);
        let (ym, ty) = f32_tensor(&dev, &vec![f32::NAN; cols * rows], &shape);
        dev.run_kernel(
            &k,
            &[rows as u32],
            &Args::new()
                .named("x", tx)
                .named("gamma", tg)
                .named("beta", tb)
                .named("y", ty)
                .named("eps", eps),
        )
        .unwrap();
        let got = download_f32(&dev, &ym, cols * rows);
        let want = layernorm_reference(&x, &gamma, &beta, eps, cols, rows);
        assert!(
            same_bits(&got, &want),
            "{cols} x {rows}: {}",
            first_difference(&got, &want)
        );
        if cols > 1 {
            // The normalised rows before gamma and beta have mean 0 and variance 1:
            // a check of the reference itself, independent of the kernel's order.
            for r in 0..rows {
                let z: Vec<f64> = (0..cols)
                    .map(|i| {
                        (f64::from(got[r * cols + i]) - f64::from(beta[i])) / f64::from(gamma[i])
                    })
                    .collect();
                let mean = z.iter().sum::<f64>() / cols as f64;
                let var = z.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / cols as f64;
                assert!(
                    mean.abs() < 1e-3 && (var - 1.0).abs() < 1e-2,
                    "{cols} x {rows}, row {r}: mean {mean}, variance {var}"
                );
            }
        }
    }
}

/// Device memory holding `data`, bf16 bits.
fn upload_bf16(dev: &Device<'_>, data: &[u16]) -> sagrada::accel::DeviceMemory {
    let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    let mem = dev.alloc(bytes.len().max(4) as u64, false).unwrap();
    dev.upload(mem.va, &bytes).unwrap();
    mem
}

/// `n` random bf16 values in `[lo, hi)`, rounded from f32 as the cores round.
fn bf16s(rng: &mut Rng, n: usize, lo: f32, hi: f32) -> Vec<u16> {
    rng.f32s(n, lo, hi).into_iter().map(f32_to_bf16).collect()
}

/// C = A * B in f32 from bf16 A (M rows of K) and B (K rows of N), each element
/// summed in k order from +0.0 with a rounded product and a rounded add.
fn gemm_bf16_reference(a: &[u16], b: &[u16], m: usize, n: usize, k: usize) -> Vec<f32> {
    let a: Vec<f32> = a.iter().map(|&h| bf16_to_f32(h)).collect();
    let b: Vec<f32> = b.iter().map(|&h| bf16_to_f32(h)).collect();
    gemm_reference(&a, &b, m, n, k)
}

/// Launches gemm_bf16 on A (M rows of K) and B (K rows of N); C starts as NaN so that
/// an element the kernel does not write shows.
fn run_gemm_bf16(
    dev: &Device<'_>,
    kernel: &Kernel,
    a: &[u16],
    b: &[u16],
    (m, n, k): (usize, usize, usize),
) -> Result<Vec<f32>, KernelError> {
    let am = upload_bf16(dev, a);
    let ta = Tensor::new(&am, ElemKind::Bf16, &[k as u32, m as u32]).unwrap();
    let bm = upload_bf16(dev, b);
    let tb = Tensor::new(&bm, ElemKind::Bf16, &[n as u32, k as u32]).unwrap();
    let (cm, tc) = f32_tensor(dev, &vec![f32::NAN; m * n], &[n as u32, m as u32]);
    dev.run_kernel(
        kernel,
        &[n.div_ceil(128) as u32, m.div_ceil(64) as u32],
        &Args::new().arg(ta).arg(tb).arg(tc),
    )?;
    Ok(download_f32(dev, &cm, m * n))
}

#[test]
fn gemm_bf16_is_bit_exact_with_masked_column_halves() {
    let mm = machine();
    let p = mm.process("gemm_bf16");
    let dev = Device::open(&p, 0).unwrap();
    let kernel = load(&dev, GEMM_BF16, "gemm_bf16.s");
    let mut rng = Rng::new(7);
    // M a multiple of 8, K of 64, N even (the kernel's limits). 200 columns leave a
    // tile of 72 (a high half of 8), 100 a tile whose high half is empty, 258 a last
    // tile of one lane; 72 rows take two row tiles.
    for (m, n, k) in [
        (8usize, 128usize, 64usize),
        (16, 200, 128),
        (72, 100, 64),
        (8, 2, 192),
        (24, 258, 64),
    ] {
        let a = bf16s(&mut rng, m * k, -1.0, 1.0);
        let b = bf16s(&mut rng, k * n, -1.0, 1.0);
        let got = run_gemm_bf16(&dev, &kernel, &a, &b, (m, n, k)).unwrap();
        let want = gemm_bf16_reference(&a, &b, m, n, k);
        assert!(
            same_bits(&got, &want),
            "{m} x {n} x {k}: {}",
            first_difference(&got, &want)
        );
    }
}

#[test]
fn gemm_bf16_faults_on_an_odd_column_count_rather_than_drop_the_last_column() {
    let mm = machine();
    let p = mm.process("gemm_bf16_odd");
    let dev = Device::open(&p, 0).unwrap();
    let kernel = load(&dev, GEMM_BF16, "gemm_bf16.s");
    let mut rng = Rng::new(8);
    let (m, n, k) = (8, 3, 64);
    let a = bf16s(&mut rng, m * k, -1.0, 1.0);
    let b = bf16s(&mut rng, k * n, -1.0, 1.0);
    match run_gemm_bf16(&dev, &kernel, &a, &b, (m, n, k)) {
        Err(KernelError::Fault(f)) => assert_eq!(f.cause, FaultCode::TensorRange, "{f}"),
        other => panic!("{m} x {n} x {k}: expected a TensorRange fault, got {other:?}"),
    }
}
