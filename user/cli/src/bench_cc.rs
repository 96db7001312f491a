//! `sagrada bench cc`: the SGC compiler's code beside the hand-written assembly, and
//! its speed.
//!
//! For each of the seven demo kernels (`kernels/NAME.sgc` and `kernels/NAME.s`, the
//! same computation written twice), the source is compiled at `-O1` and `-O0`, and
//! the three binaries run through the runtime on one SG1 on the same inputs. The
//! figure is the instructions the cores retired (their counters, summed over the
//! cores), beside the assembly's, and the ratio (the target is at most 1.5 at `-O1`).
//! The compiled kernels must write the same bits as the assembly, or the benchmark
//! fails: a faster wrong kernel is not a result.
//!
//! The compile time is that of a cold compile at `-O1` (`sagrada_cc::compile` called
//! afresh, not the runtime's cache), the median of several, beside the target of
//! 10 ms. Instruction counts do not depend on the host; compile times do.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use sagrada::Machine;
use sagrada::accel::{Device, DeviceMemory};
use sagrada::kernel::{Args, ElemKind, Kernel, KernelBinary, Tensor};
use sagrada_cc::OptLevel;
use sagrada_isa::exec::float::f32_to_bf16;

use crate::bench::median;

/// The instruction ratio `-O1` should stay within.
const TARGET_RATIO: f64 = 1.5;
/// The cold compile time a kernel should stay within.
const TARGET_COMPILE: Duration = Duration::from_millis(10);

#[derive(clap::Args, Debug)]
pub struct CcBenchArgs {
    /// Cold compiles per kernel for the compile time (the median is reported).
    #[arg(long, default_value_t = 5)]
    iterations: usize,
}

/// A tensor's contents.
enum Data {
    F32(Vec<f32>),
    Bf16(Vec<u16>),
}

/// One argument of a launch.
enum Arg {
    Tensor(Data, Vec<u32>),
    F32(f32),
}

/// A launch of a demo kernel: its arguments in declaration order, its index space,
/// and which argument (an f32 tensor) holds the result.
struct Workload {
    args: Vec<Arg>,
    dims: Vec<u32>,
    output: usize,
}

struct Demo {
    name: &'static str,
    sgc: &'static str,
    asm: &'static str,
    workload: fn() -> Workload,
}

const DEMOS: [Demo; 7] = [
    Demo {
        name: "vadd",
        sgc: include_str!("../../../kernels/vadd.sgc"),
        asm: include_str!("../../../kernels/vadd.s"),
        workload: vadd,
    },
    Demo {
        name: "saxpy",
        sgc: include_str!("../../../kernels/saxpy.sgc"),
        asm: include_str!("../../../kernels/saxpy.s"),
        workload: saxpy,
    },
    Demo {
        name: "row_sum",
        sgc: include_str!("../../../kernels/row_sum.sgc"),
        asm: include_str!("../../../kernels/row_sum.s"),
        workload: row_sum,
    },
    Demo {
        name: "softmax",
        sgc: include_str!("../../../kernels/softmax.sgc"),
        asm: include_str!("../../../kernels/softmax.s"),
        workload: softmax,
    },
    Demo {
        name: "gemm",
        sgc: include_str!("../../../kernels/gemm.sgc"),
        asm: include_str!("../../../kernels/gemm.s"),
        workload: gemm,
    },
    Demo {
        name: "layernorm",
        sgc: include_str!("../../../kernels/layernorm.sgc"),
        asm: include_str!("../../../kernels/layernorm.s"),
        workload: layernorm,
    },
    Demo {
        name: "gemm_bf16",
        sgc: include_str!("../../../kernels/gemm_bf16.sgc"),
        asm: include_str!("../../../kernels/gemm_bf16.s"),
        workload: gemm_bf16,
    },
];

/// `n` deterministic values in [lo, hi) from `seed`.
fn fill(n: usize, seed: u64, lo: f32, hi: f32) -> Vec<f32> {
    // `bench_compute::fill` gives [-1, 1).
    crate::bench_compute::fill(n, seed)
        .into_iter()
        .map(|u| lo + (hi - lo) * (u + 1.0) / 2.0)
        .collect()
}

fn f32s(n: usize, seed: u64, lo: f32, hi: f32, shape: &[u32]) -> Arg {
    Arg::Tensor(Data::F32(fill(n, seed, lo, hi)), shape.to_vec())
}

fn zeros(n: usize, shape: &[u32]) -> Arg {
    Arg::Tensor(Data::F32(vec![0.0; n]), shape.to_vec())
}

// The shapes have tails (sizes that are not multiples of the vector or the tile), so
// the masked steps are counted too.

fn vadd() -> Workload {
    let n = 65_536 + 17;
    let s = [n as u32];
    Workload {
        args: vec![
            f32s(n, 1, -1.0, 1.0, &s),
            f32s(n, 2, -1.0, 1.0, &s),
            zeros(n, &s),
        ],
        dims: vec![n.div_ceil(64) as u32],
        output: 2,
    }
}

fn saxpy() -> Workload {
    let n = 65_536 + 17;
    let s = [n as u32];
    Workload {
        args: vec![
            Arg::F32(1.1),
            f32s(n, 3, -1.0, 1.0, &s),
            f32s(n, 4, -1.0, 1.0, &s),
        ],
        dims: vec![n.div_ceil(64) as u32],
        output: 2,
    }
}

fn row_sum() -> Workload {
    let (cols, rows) = (1000, 64);
    Workload {
        args: vec![
            f32s(cols * rows, 5, -1.0, 1.0, &[cols as u32, rows as u32]),
            zeros(rows, &[rows as u32]),
        ],
        dims: vec![rows as u32],
        output: 1,
    }
}

fn softmax() -> Workload {
    let (cols, rows) = (1000, 64);
    let s = [cols as u32, rows as u32];
    Workload {
        args: vec![
            f32s(cols * rows, 6, -10.0, 10.0, &s),
            zeros(cols * rows, &s),
        ],
        dims: vec![rows as u32],
        output: 1,
    }
}

fn layernorm() -> Workload {
    let (cols, rows) = (1000, 64);
    let s = [cols as u32, rows as u32];
    let c = [cols as u32];
    Workload {
        args: vec![
            f32s(cols * rows, 7, -1.0, 1.0, &s),
            f32s(cols, 8, 0.5, 1.5, &c),
            f32s(cols, 9, -1.0, 1.0, &c),
            zeros(cols * rows, &s),
            Arg::F32(1e-5),
        ],
        dims: vec![rows as u32],
        output: 3,
    }
}

/// M = 256 rows, N = 200 columns (a masked last tile), K = 256: A is (K, M), B is
/// (N, K), C is (N, M).
const GEMM_M: usize = 256;
const GEMM_N: usize = 200;
const GEMM_K: usize = 256;

fn gemm() -> Workload {
    let (m, n, k) = (GEMM_M, GEMM_N, GEMM_K);
    Workload {
        args: vec![
            f32s(m * k, 10, -1.0, 1.0, &[k as u32, m as u32]),
            f32s(k * n, 11, -1.0, 1.0, &[n as u32, k as u32]),
            zeros(m * n, &[n as u32, m as u32]),
        ],
        dims: vec![n.div_ceil(64) as u32, m.div_ceil(64) as u32],
        output: 2,
    }
}

fn gemm_bf16() -> Workload {
    let (m, n, k) = (GEMM_M, GEMM_N, GEMM_K);
    let bf16 = |len, seed, shape: [u32; 2]| {
        let v = fill(len, seed, -1.0, 1.0);
        Arg::Tensor(
            Data::Bf16(v.into_iter().map(f32_to_bf16).collect()),
            shape.to_vec(),
        )
    };
    Workload {
        args: vec![
            bf16(m * k, 12, [k as u32, m as u32]),
            bf16(k * n, 13, [n as u32, k as u32]),
            zeros(m * n, &[n as u32, m as u32]),
        ],
        dims: vec![n.div_ceil(128) as u32, m.div_ceil(64) as u32],
        output: 2,
    }
}

/// Runs `kernel` on a fresh copy of `w`'s inputs: the instructions the cores retired,
/// and the output tensor's contents.
fn measure(dev: &Device<'_>, kernel: &Kernel, w: &Workload) -> Result<(u64, Vec<f32>)> {
    let mut mems: Vec<DeviceMemory> = Vec::new();
    let mut args = Args::new();
    let mut output = None;
    for (i, a) in w.args.iter().enumerate() {
        match a {
            Arg::F32(v) => args = args.arg(*v),
            Arg::Tensor(data, shape) => {
                let (bytes, elem): (Vec<u8>, _) = match data {
                    Data::F32(v) => (
                        v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                        ElemKind::F32,
                    ),
                    Data::Bf16(v) => (
                        v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                        ElemKind::Bf16,
                    ),
                };
                let mem = dev.alloc(bytes.len() as u64, false)?;
                dev.upload(mem.va, &bytes)?;
                args = args.arg(Tensor::new(&mem, elem, shape)?);
                if i == w.output {
                    output = Some((mem, bytes.len()));
                }
                mems.push(mem);
            }
        }
    }
    let (out, len) = output.context("the workload's output is not a tensor")?;
    let before = dev.core_counters()?;
    dev.run_kernel(kernel, &w.dims, &args)?;
    let after = dev.core_counters()?;
    let instructions = after
        .iter()
        .zip(&before)
        .map(|(a, b)| a.since(b).instructions)
        .sum();
    let mut bytes = vec![0u8; len];
    dev.download(out.va, &mut bytes)?;
    for mem in mems {
        dev.free(mem)?;
    }
    let values = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Ok((instructions, values))
}

fn compile(demo: &Demo, level: OptLevel) -> Result<KernelBinary> {
    let file = format!("kernels/{}.sgc", demo.name);
    match sagrada_cc::compile(demo.sgc, &file, level) {
        Ok(c) => Ok(c.binary),
        Err(e) => bail!("{file} does not compile at {level:?}:\n{}", e.rendered),
    }
}

/// The median time of `iterations` cold compiles of `demo` at `-O1`.
fn compile_time(demo: &Demo, iterations: usize) -> Result<Duration> {
    let mut samples = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let start = Instant::now();
        let binary = compile(demo, OptLevel::O1)?;
        samples.push(start.elapsed());
        // Keeps the compile from being optimised away.
        std::hint::black_box(binary);
    }
    Ok(median(samples))
}

pub fn cc(args: &CcBenchArgs) -> Result<()> {
    if args.iterations == 0 {
        bail!("--iterations must be at least 1");
    }
    let machine = Machine::default_machine()?;
    let p = machine.process("sagrada-bench-cc");
    let dev = Device::open(&p, 0).context("cannot open /dev/accel/accel0")?;
    println!(
        "retired instructions per launch (all cores), compiled SGC beside kernels/*.s; \
         target -O1 <= {TARGET_RATIO}x; cold compile at -O1, median of {}, target {} ms",
        args.iterations,
        TARGET_COMPILE.as_millis()
    );
    println!(
        "{:<10} {:>12} {:>12} {:>7} {:>12} {:>7} {:>11}",
        "kernel", "asm", "-O1", "ratio", "-O0", "ratio", "compile ms"
    );
    let mut over = Vec::new();
    for demo in &DEMOS {
        let w = (demo.workload)();
        let asm = Kernel::assemble(&dev, demo.asm, &format!("kernels/{}.s", demo.name))?;
        let (asm_insts, want) = measure(&dev, &asm, &w)?;
        let mut counts = Vec::new();
        for level in [OptLevel::O1, OptLevel::O0] {
            let kernel = Kernel::load(&dev, &compile(demo, level)?)?;
            let (insts, got) = measure(&dev, &kernel, &w)?;
            if let Some(i) = got
                .iter()
                .zip(&want)
                .position(|(a, b)| a.to_bits() != b.to_bits())
            {
                bail!(
                    "kernels/{}.sgc at {level:?} writes {} at element {i} where kernels/{}.s writes {}",
                    demo.name,
                    got[i],
                    demo.name,
                    want[i]
                );
            }
            kernel.free(&dev)?;
            counts.push(insts);
        }
        asm.free(&dev)?;
        let ratio = |n: u64| n as f64 / asm_insts.max(1) as f64;
        let t = compile_time(demo, args.iterations)?;
        println!(
            "{:<10} {:>12} {:>12} {:>6.2}x {:>12} {:>6.2}x {:>11.2}",
            demo.name,
            asm_insts,
            counts[0],
            ratio(counts[0]),
            counts[1],
            ratio(counts[1]),
            t.as_secs_f64() * 1e3
        );
        if ratio(counts[0]) > TARGET_RATIO {
            over.push(format!("{} ({:.2}x)", demo.name, ratio(counts[0])));
        }
        if t > TARGET_COMPILE {
            over.push(format!(
                "{} compiles in {:.1} ms",
                demo.name,
                t.as_secs_f64() * 1e3
            ));
        }
    }
    if over.is_empty() {
        println!("every kernel within its targets");
    } else {
        println!("over target: {}", over.join(", "));
    }
    Ok(())
}
