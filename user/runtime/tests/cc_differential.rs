//! Differential tests of the kernel compiler: random SGC programs
//! (`sagrada_cc::random_program`) run four ways, which must all agree. The reference is
//! the language's semantics: the HIR interpreter (`front::interp`) on the checked
//! program, which shares nothing with lowering. Against it: the IR interpreter on the
//! program as lowered (before any optimisation and without the back end), so a wrong
//! lowering shows; and the program compiled at -O0 and at -O1 and run on an SG1 through
//! the runtime, so a wrong pass, instruction selection or register allocation shows.
//! Every generated program is valid, cannot fault and never reads an unspecified lane,
//! so all must agree bit for bit (NaN as NaN: the ISA leaves payloads unspecified).

mod common;

use common::machine;
use sagrada::accel::{Device, DeviceMemory};
use sagrada::kernel::{Args, ElemKind, Kernel, Tensor};
use sagrada_cc::OptLevel;
use sagrada_cc::front::interp as hir_interp;
use sagrada_cc::ir::interp::{self as ir_interp, HostTensor};
use sagrada_cc::random_program::{self, IN_COLS, OUTS, POINTS};

/// Programs per run: enough to cover the generator's constructs, few enough for CI.
/// `SAGRADA_CC_SEEDS=N` runs more (and `SAGRADA_CC_SEED0` moves the first).
const SEEDS: u64 = 60;

/// Steps either interpreter may take on one program.
const LIMIT: u64 = 50_000_000;

fn seeds() -> std::ops::Range<u64> {
    let var = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    let first = var("SAGRADA_CC_SEED0").unwrap_or(0);
    first..first + var("SAGRADA_CC_SEEDS").unwrap_or(SEEDS)
}

/// The shapes of the generated kernel's six tensors, in argument order.
fn shapes() -> [[u32; 4]; 6] {
    [
        [IN_COLS, POINTS, 1, 1],
        [IN_COLS, POINTS, 1, 1],
        [64, OUTS, POINTS, 1],
        [64, OUTS, POINTS, 1],
        [OUTS, POINTS, 1, 1],
        [OUTS, POINTS, 1, 1],
    ]
}

/// The inputs of one seed: words of the six tensors and the two scalars.
fn inputs(seed: u64) -> (Vec<Vec<u32>>, f32, i32) {
    let mut rng = random_program::Rng::new(seed ^ 0x5eed);
    let tensors = shapes()
        .iter()
        .enumerate()
        .map(|(k, d)| {
            let n = d.iter().product::<u32>() as usize;
            (0..n)
                .map(|_| match k {
                    // f32 inputs in a range where arithmetic stays mostly finite.
                    0 => ((rng.below(20_001) as f32 - 10_000.0) / 1000.0).to_bits(),
                    1 => rng.next_u64() as u32,
                    // Outputs start as a pattern the kernel must overwrite.
                    _ => 0x7fc0_1234,
                })
                .collect()
        })
        .collect();
    let fa = (rng.below(2001) as f32 - 1000.0) / 100.0;
    let ia = rng.next_u64() as i32;
    (tensors, fa, ia)
}

fn host_tensors(words: &[Vec<u32>]) -> Vec<HostTensor> {
    let elems = [
        ElemKind::F32,
        ElemKind::I32,
        ElemKind::F32,
        ElemKind::I32,
        ElemKind::F32,
        ElemKind::I32,
    ];
    shapes()
        .iter()
        .zip(words)
        .zip(elems)
        .map(|((d, w), e)| match e {
            ElemKind::F32 => HostTensor::f32(
                *d,
                &w.iter().map(|&x| f32::from_bits(x)).collect::<Vec<_>>(),
            ),
            _ => HostTensor::u32(*d, w),
        })
        .collect()
}

/// Runs `binary` on the device with `words` as the tensors; returns the output words.
fn run_on_device(
    dev: &Device<'_>,
    kernel: &Kernel,
    words: &[Vec<u32>],
    fa: f32,
    ia: i32,
) -> Result<Vec<Vec<u32>>, String> {
    let elems = [
        ElemKind::F32,
        ElemKind::I32,
        ElemKind::F32,
        ElemKind::I32,
        ElemKind::F32,
        ElemKind::I32,
    ];
    let mut mems: Vec<DeviceMemory> = Vec::new();
    let mut args = Args::new();
    for ((d, w), e) in shapes().iter().zip(words).zip(elems) {
        let bytes: Vec<u8> = w.iter().flat_map(|x| x.to_le_bytes()).collect();
        let mem = dev
            .alloc(bytes.len() as u64, false)
            .map_err(|e| e.to_string())?;
        dev.upload(mem.va, &bytes).map_err(|e| e.to_string())?;
        let t = Tensor::new(&mem, e, d).map_err(|e| e.to_string())?;
        args = args.arg(t);
        mems.push(mem);
    }
    args = args.arg(fa).arg(ia);
    let result = dev
        .run_kernel(kernel, &[POINTS], &args)
        .map(|_| ())
        .map_err(|e| e.to_string());
    let mut out = Vec::new();
    for (mem, w) in mems.iter().zip(words) {
        let mut bytes = vec![0u8; w.len() * 4];
        dev.download(mem.va, &mut bytes)
            .map_err(|e| e.to_string())?;
        out.push(
            bytes
                .chunks_exact(4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
        );
    }
    for mem in mems {
        let _ = dev.free(mem);
    }
    result.map(|()| out)
}

/// The first output word where `got` differs from `want` (NaN equal to NaN).
fn difference(got: &[Vec<u32>], want: &[Vec<u32>]) -> Option<String> {
    const NAMES: [&str; 6] = ["fin", "iin", "fout", "iout", "fsout", "isout"];
    for (t, (g, w)) in got.iter().zip(want).enumerate().skip(2) {
        for (i, (&a, &b)) in g.iter().zip(w).enumerate() {
            let float = t % 2 == 0;
            let same =
                a == b || (float && f32::from_bits(a).is_nan() && f32::from_bits(b).is_nan());
            if !same {
                return Some(format!(
                    "{}[{i}]: {a:#010x} ({}) where the reference has {b:#010x} ({})",
                    NAMES[t],
                    f32::from_bits(a),
                    f32::from_bits(b)
                ));
            }
        }
    }
    None
}

#[test]
fn random_programs_agree_with_the_reference_at_o0_and_o1() {
    let m = machine();
    let p = m.process("cc-differential");
    let dev = Device::open(&p, 0).unwrap();
    let mut failures = Vec::new();
    let seeds = seeds();
    // Per seed: the lowered IR, -O0 and -O1.
    let runs = 3 * (seeds.end - seeds.start);
    for seed in seeds {
        let source = random_program::program(seed);
        let file = format!("random-{seed}.sgc");
        let (words, fa, ia) = inputs(seed);
        // The reference: the language's semantics, on the checked program.
        let checked = match sagrada_cc::front::check(&source) {
            Ok(c) => c,
            Err(d) => {
                failures.push(format!(
                    "seed {seed}: the front end refused a generated program:\n{}\n{source}",
                    d.render(&source, &file)
                ));
                continue;
            }
        };
        let scalars = [fa.to_bits(), ia as u32];
        let dims = [POINTS, 1, 1, 1];
        let tensors = host_tensors(&words);
        let want = match hir_interp::run_tensors(&checked, dims, 1, &tensors, &scalars, LIMIT) {
            Ok((tensors, _)) => tensors.iter().map(|t| t.words()).collect::<Vec<_>>(),
            Err(e) => {
                failures.push(format!("seed {seed}: the reference stopped: {e}\n{source}"));
                continue;
            }
        };
        // The program as lowered, interpreted: a difference here is lowering's.
        let lowered = sagrada_cc::lower::lower(&checked);
        match ir_interp::run_tensors(&lowered, dims, 1, &tensors, &scalars, LIMIT) {
            Ok((tensors, _)) => {
                let got: Vec<Vec<u32>> = tensors.iter().map(|t| t.words()).collect();
                if let Some(d) = difference(&got, &want) {
                    failures.push(format!("seed {seed} lowered IR: {d}\n{source}"));
                }
            }
            Err(e) => failures.push(format!(
                "seed {seed} lowered IR: stopped where the reference did not: {e}\n{source}"
            )),
        }
        for level in [OptLevel::O0, OptLevel::O1] {
            let compiled = match sagrada_cc::compile(&source, &file, level) {
                Ok(c) => c,
                Err(e) => {
                    failures.push(format!("seed {seed} {level:?}: {e}\n{source}"));
                    continue;
                }
            };
            let kernel = Kernel::load(&dev, &compiled.binary).unwrap();
            match run_on_device(&dev, &kernel, &words, fa, ia) {
                Ok(got) => {
                    if let Some(d) = difference(&got, &want) {
                        failures.push(format!(
                            "seed {seed} {level:?}: {d}\n{source}\n{}",
                            compiled.asm
                        ));
                    }
                }
                Err(e) => failures.push(format!("seed {seed} {level:?}: {e}\n{source}")),
            }
            kernel.free(&dev).unwrap();
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} runs failed; the first:\n{}",
        failures.len(),
        runs,
        failures[0]
    );
}
