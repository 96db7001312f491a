//! `sagrada bench gemm` and `sagrada bench core`: the compute cores' speed, beside
//! native references measured in the same run.
//!
//! - `gemm` runs `kernels/gemm.s` through the whole stack (runtime, `CS` ioctl, compute
//!   queue, cores) with the cores on one host thread and on every host thread, and
//!   times a native single-thread sgemm (ndarray, which uses matrixmultiply's
//!   hand-vectorised kernels) on the same matrices in the same rounds. The device's
//!   result must equal a host computation in the kernel's order of operations, bit for
//!   bit, or the benchmark fails.
//! - `core` runs the interpreter's two speed probes
//!   ([`sagrada_isa::exec::workloads`]) on one core: a scalar loop (instructions/s) and
//!   a `vmad.f32` loop (lane-ops/s), each beside the same work written natively.
//!
//! Rounds interleave the reference with what is measured, so a shared machine's load
//! falls on both alike; medians are reported.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use ndarray::Array2;
use sagrada::Machine;
use sagrada::accel::{CoreCounters, Device, DeviceMemory};
use sagrada::kernel::{Args, ElemKind, Kernel, Tensor};
use sagrada_hw_fabric::TopologyConfig;
use sagrada_isa::exec::Core;
use sagrada_isa::exec::workloads::{
    Workload, run, scalar_loop, scalar_loop_native, vmad_loop, vmad_loop_native,
};

use crate::bench::median;

const GEMM: &str = include_str!("../../../kernels/gemm.s");

#[derive(clap::Args, Debug)]
pub struct GemmArgs {
    /// M = N = K: a multiple of 64, at most 1024 (the kernel stages all K rows of a
    /// 64-column panel of B in the 256 KiB scratchpad).
    #[arg(long, default_value_t = 512)]
    size: u32,
    /// Timed rounds (each times the reference and every configuration).
    #[arg(long, default_value_t = 3)]
    iterations: usize,
    /// Compute cores of the SG1.
    #[arg(long, default_value_t = 8)]
    cores: u32,
}

#[derive(clap::Args, Debug)]
pub struct CoreArgs {
    /// Loop trips per run.
    #[arg(long, default_value_t = 200_000)]
    trips: u32,
    /// Timed rounds (each times the interpreter and the native loop).
    #[arg(long, default_value_t = 9)]
    iterations: usize,
}

/// A deterministic fill in [-1, 1).
pub(crate) fn fill(n: usize, seed: u64) -> Vec<f32> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            // splitmix64
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            (z >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// C = A·B (row-major: A is m×k, B is k×n) with each element summed in k order from
/// rounded products, as the kernel's `vmadl.f32` chain does.
fn ordered_gemm(a: &[f32], b: &[f32], m: usize, n: usize, k: usize) -> Vec<f32> {
    let mut c = vec![0.0f32; m * n];
    for (i, row) in c.chunks_exact_mut(n).enumerate() {
        for p in 0..k {
            let x = a[i * k + p];
            for (cij, &bpj) in row.iter_mut().zip(&b[p * n..(p + 1) * n]) {
                *cij += x * bpj;
            }
        }
    }
    c
}

fn to_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// One SG1 set up for the benchmark: the kernel loaded and the matrices in HBM.
struct GemmDevice<'p> {
    dev: Device<'p>,
    kernel: Kernel,
    c: DeviceMemory,
    args: Args,
}

impl<'p> GemmDevice<'p> {
    fn new(p: &'p sagrada::Process, a: &[f32], b: &[f32], n: u32) -> Result<Self> {
        let dev = Device::open(p, 0).context("cannot open /dev/accel/accel0")?;
        let kernel = Kernel::assemble(&dev, GEMM, "kernels/gemm.s")?;
        let upload = |v: &[f32]| -> Result<DeviceMemory> {
            let bytes = to_bytes(v);
            let mem = dev.alloc(bytes.len() as u64, false)?;
            dev.upload(mem.va, &bytes)?;
            Ok(mem)
        };
        let (am, bm) = (upload(a)?, upload(b)?);
        let c = upload(&vec![f32::NAN; (n * n) as usize])?;
        // The kernel's layout: dimension 0 runs along a row (K for A, N for B and C).
        let shape = [n, n];
        let args = Args::new()
            .arg(Tensor::new(&am, ElemKind::F32, &shape)?)
            .arg(Tensor::new(&bm, ElemKind::F32, &shape)?)
            .arg(Tensor::new(&c, ElemKind::F32, &shape)?);
        Ok(Self {
            dev,
            kernel,
            c,
            args,
        })
    }

    /// One launch: host time, device time and the counters' sum over the cores.
    fn launch(&self, n: u32) -> Result<(Duration, u64, CoreCounters)> {
        let before = self.dev.core_counters()?;
        let start = Instant::now();
        let report =
            self.dev
                .run_kernel(&self.kernel, &[n.div_ceil(64), n.div_ceil(64)], &self.args)?;
        let t = start.elapsed();
        let after = self.dev.core_counters()?;
        let sum = after.iter().zip(&before).map(|(x, y)| x.since(y)).sum();
        Ok((t, report.device_time_ns, sum))
    }

    fn result(&self, len: usize) -> Result<Vec<f32>> {
        let mut bytes = vec![0u8; len * 4];
        self.dev.download(self.c.va, &mut bytes)?;
        Ok(bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }
}

pub fn gemm(args: &GemmArgs) -> Result<()> {
    let n = args.size;
    if n == 0 || !n.is_multiple_of(64) || n > 1024 {
        bail!(
            "--size {n}: kernels/gemm.s needs M, N and K to be multiples of 64 (M of 8, K of 64) and K at most 1024"
        );
    }
    if args.iterations == 0 {
        bail!("--iterations must be at least 1");
    }
    let nu = n as usize;
    let a = fill(nu * nu, 1);
    let b = fill(nu * nu, 2);
    let want = ordered_gemm(&a, &b, nu, nu, nu);
    let (aa, bb) = (
        Array2::from_shape_vec((nu, nu), a.clone())?,
        Array2::from_shape_vec((nu, nu), b.clone())?,
    );
    // The reference computes the same product (in another order).
    let native = aa.dot(&bb);
    let worst = native
        .iter()
        .zip(&want)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    if worst > 1e-3 {
        bail!("the native sgemm differs from the ordered host product by {worst}");
    }

    let all = std::thread::available_parallelism().map_or(1, |t| t.get());
    let mut threads = vec![1];
    if all > 1 {
        threads.push(all.min(args.cores as usize));
    }
    let config = TopologyConfig::default_machine();
    let machines = threads
        .iter()
        .map(|&t| {
            Machine::builder(&config)
                .cores(args.cores)
                .core_threads(t)
                .build()
                .with_context(|| format!("building a machine with {} cores", args.cores))
        })
        .collect::<Result<Vec<_>>>()?;
    let processes: Vec<_> = machines
        .iter()
        .map(|m| m.process("sagrada-bench"))
        .collect();
    let devices = processes
        .iter()
        .map(|p| GemmDevice::new(p, &a, &b, n))
        .collect::<Result<Vec<_>>>()?;

    let mut reference = Vec::with_capacity(args.iterations);
    let mut samples = vec![Vec::with_capacity(args.iterations); devices.len()];
    let mut model = (0, CoreCounters::default());
    // Round 0 warms up (page tables, the cores' threads) and is not timed.
    for round in 0..=args.iterations {
        let start = Instant::now();
        std::hint::black_box(std::hint::black_box(&aa).dot(std::hint::black_box(&bb)));
        let t = start.elapsed();
        if round > 0 {
            reference.push(t);
        }
        for (d, s) in devices.iter().zip(&mut samples) {
            let (t, device_ns, counters) = d.launch(n)?;
            if round > 0 {
                s.push(t);
            }
            model = (device_ns, counters);
        }
    }
    for (d, &t) in devices.iter().zip(&threads) {
        let got = d.result(nu * nu)?;
        if let Some(i) = got
            .iter()
            .zip(&want)
            .position(|(x, y)| x.to_bits() != y.to_bits())
        {
            bail!(
                "with {t} host thread(s), C[{}][{}] is {} on the device and {} on the host",
                i / nu,
                i % nu,
                got[i],
                want[i]
            );
        }
    }

    let flop = 2.0 * f64::from(n).powi(3);
    let gflops = |t: Duration| flop / t.as_secs_f64() / 1e9;
    let reference = median(reference);
    println!(
        "sagrada bench gemm: C = A·B in f32, M = N = K = {n} (kernels/gemm.s), {} cores, median of {} interleaved rounds",
        args.cores, args.iterations
    );
    println!(
        "reference: native sgemm, 1 thread (ndarray/matrixmultiply)  {:>8.2} ms  {:>7.2} GFLOP/s\n",
        reference.as_secs_f64() * 1e3,
        gflops(reference)
    );
    println!(
        "{:<34} {:>8} {:>9} {:>10}",
        "SG1 launch, submit to completion", "ms", "GFLOP/s", "vs sgemm"
    );
    for (s, t) in samples.into_iter().zip(&threads) {
        let m = median(s);
        println!(
            "{:<34} {:>8.2} {:>9.2} {:>9.1}%",
            format!("cores on {t} host thread(s)"),
            m.as_secs_f64() * 1e3,
            gflops(m),
            100.0 * reference.as_secs_f64() / m.as_secs_f64()
        );
    }
    let (device_ns, c) = model;
    println!(
        "\nthe model: {:.3} ms of device time at 1.5 GHz ({:.1} GFLOP/s); per launch {} instructions, {} lane-ops ({:.2} per flop), {} MiB global, {} MiB scratchpad",
        device_ns as f64 / 1e6,
        flop / device_ns.max(1) as f64,
        c.instructions,
        c.lane_ops,
        c.lane_ops as f64 / flop,
        c.global_bytes >> 20,
        c.scratch_bytes >> 20
    );
    println!("result: bit-exact with the host product in the kernel's order (k ascending)");
    Ok(())
}

/// Median time of `iterations` interleaved rounds of the interpreter and the native
/// loop, after one warm-up round.
fn time_pair(
    iterations: usize,
    w: &Workload,
    native: impl Fn() -> f32,
) -> Result<(Duration, Duration)> {
    let mut core = Core::new(0);
    let (mut interp, mut host) = (Vec::new(), Vec::new());
    for round in 0..=iterations {
        let start = Instant::now();
        run(&mut core, w).map_err(|e| anyhow::anyhow!("the probe loop stopped: {e:?}"))?;
        let t = start.elapsed();
        let start = Instant::now();
        std::hint::black_box(native());
        let h = start.elapsed();
        if round > 0 {
            interp.push(t);
            host.push(h);
        }
    }
    if core.counters.instructions != w.instructions * (iterations as u64 + 1) {
        bail!(
            "the probe retired {} instructions, not {}",
            core.counters.instructions,
            w.instructions * (iterations as u64 + 1)
        );
    }
    Ok((median(interp), median(host)))
}

pub fn core(args: &CoreArgs) -> Result<()> {
    if args.iterations == 0 || args.trips == 0 {
        bail!("--iterations and --trips must be at least 1");
    }
    let scalar = scalar_loop(args.trips);
    let vector = vmad_loop(args.trips);
    let (si, sn) = time_pair(args.iterations, &scalar, || {
        scalar_loop_native(args.trips) as f32
    })?;
    let (vi, vn) = time_pair(args.iterations, &vector, || vmad_loop_native(args.trips))?;
    let rate = |n: u64, t: Duration| n as f64 / t.as_secs_f64() / 1e6;

    println!(
        "sagrada bench core: one SG1 core's interpreter, {} loop trips, median of {} interleaved rounds\n",
        args.trips, args.iterations
    );
    println!(
        "{:<44} {:>14} {:>14} {:>8}",
        "", "interpreter", "native", "ratio"
    );
    let (sr, snr) = (rate(scalar.instructions, si), rate(scalar.instructions, sn));
    println!(
        "{:<44} {:>10.0} M/s {:>10.0} M/s {:>8.3}",
        "scalar loop (add, xor, add, addi, bne): instr",
        sr,
        snr,
        sr / snr
    );
    let (vr, vnr) = (rate(vector.lane_ops, vi), rate(vector.lane_ops, vn));
    println!(
        "{:<44} {:>10.0} M/s {:>10.0} M/s {:>8.3}",
        "vmad.f32 loop, 64 lanes: lane-ops",
        vr,
        vnr,
        vr / vnr
    );
    println!(
        "\nthe vmad loop also retires {:.0} M instructions/s; the SG1 model's cores run at 1500 MHz, one instruction a cycle",
        rate(vector.instructions, vi)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ordered_product_is_the_textbook_one() {
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]; // 2×3
        let b = [7.0, 8.0, 9.0, 10.0, 11.0, 12.0]; // 3×2
        assert_eq!(ordered_gemm(&a, &b, 2, 2, 3), [58.0, 64.0, 139.0, 154.0]);
    }

    #[test]
    fn a_small_gemm_benchmark_runs_and_checks_its_result() {
        gemm(&GemmArgs {
            size: 64,
            iterations: 1,
            cores: 2,
        })
        .unwrap();
    }

    #[test]
    fn sizes_the_kernel_cannot_run_are_refused() {
        for size in [0, 100, 2048] {
            let e = gemm(&GemmArgs {
                size,
                iterations: 1,
                cores: 2,
            })
            .unwrap_err()
            .to_string();
            assert!(e.contains(&format!("--size {size}")), "{e}");
        }
    }

    #[test]
    fn the_core_benchmark_checks_what_its_loops_retire() {
        core(&CoreArgs {
            trips: 100,
            iterations: 1,
        })
        .unwrap();
    }
}
