//! The demo kernels of `kernels/` on the SG1, through the runtime and the driver,
//! against host references: bit-exact where the kernel's order of operations can be
//! written down on the host (vadd, saxpy, row_sum, gemm), within a tolerance where it
//! uses the cores' own `exp` (softmax). Shapes include the tails the kernels mask.

mod common;

use common::{Rng, download_f32, f32_tensor, machine, same_bits, upload_f32};
use sagrada::accel::Device;
use sagrada::kernel::{Args, ElemKind, Kernel, Tensor};

const VADD: &str = include_str!("../../../kernels/vadd.s");
const SAXPY: &str = include_str!("../../../kernels/saxpy.s");
const ROW_SUM: &str = include_str!("../../../kernels/row_sum.s");
const SOFTMAX: &str = include_str!("../../../kernels/softmax.s");
const GEMM: &str = include_str!("../../../kernels/gemm.s");

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
