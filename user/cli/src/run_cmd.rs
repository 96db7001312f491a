//! `sagrada run`: runs one kernel on an SG1 of an emulated machine, with arguments
//! made up on the command line, and prints its tensors and the cores' counters.
//!
//! ```text
//! sagrada run kernels/vadd.s --index-space 4 \
//!     --arg a=200:iota --arg b=200:fill=2 --arg c=200:zeros --print c
//! ```
//!
//! The kernel is a binary (`.sgb`) or assembly (`.s`), which is assembled in memory;
//! assembly errors are printed as `sagrada asm` prints them (file:line:column, the line,
//! a caret). Every argument the kernel declares needs one `--arg NAME=SPEC`:
//!
//! - a scalar: a number of the declared kind (`f32`: `2.5`, `-1e3`, `inf`; `i32`,
//!   `u32`: decimal or `0x` hexadecimal);
//! - a tensor: `[KIND:]SHAPE:INIT`. SHAPE is `D0xD1x...`, 1 to 4 sizes in elements,
//!   **dimension 0 first**: dimension 0 is the contiguous one (a row of a matrix), so
//!   `64x4` is 4 rows of 64 elements. The tensor is dense (dimension 0 contiguous, each
//!   next dimension after the last), as `sagrada::kernel::Tensor::new` lays it out.
//!   KIND (`f32`, `i32`, `u32`, `bf16`, `f16`) may be left out: it is the declared
//!   element kind, or `f32` for a tensor declared without one. INIT is `zeros`,
//!   `ones`, `fill=V`, `iota` (0, 1, 2, ... in memory order), `random[=SEED]`
//!   (a deterministic generator: uniform in [-1, 1) for floats, -8 to 7 for i32, 0 to
//!   15 for u32; the default seed is the argument's position, so two `random` tensors
//!   differ) or `file=PATH` (raw little-endian elements, exactly as many bytes as the
//!   shape takes). bf16 and f16 values are rounded to nearest even from f32, and
//!   printed as f32.
//!
//! The machine is the built-in one (or `--config`), its SG1s with `--cores` compute
//! cores run on `--threads` host threads, and the kernel runs once on SG1 `--device`
//! over `--index-space`. A launch that fails (a bad index space, a core's fault) fails
//! the command with the runtime's error: for a fault, the core, the instruction (pc)
//! and the cause.
//!
//! Then, for each tensor named by `--print` (every tensor argument if none is), its
//! shape and values, row by row along dimension 0: at most 16 elements of a row and
//! 8 rows, the rest elided with "...". `--out NAME=FILE` writes a tensor's raw bytes.
//! Last come the per-core counters of the launch (invocations, instructions, lane
//! operations, global and scratchpad bytes, device time), their total, and the device
//! time of the launch. All of it is computed by the model, not measured, so the output
//! of a run is the same every time and on every host.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use sagrada::Machine;
use sagrada::accel::{CoreCounters, Device, DeviceMemory};
use sagrada::kernel::{
    ArgDecl, ArgKind, ArgValue, Args, ElemKind, Kernel, KernelBinary, Tensor, signature,
};
use sagrada_hw_accel_abi::NUM_CORES;
use sagrada_isa::DIMS;
use sagrada_isa::asm::assemble_all_errors;
use sagrada_isa::exec::float::{bf16_to_f32, f16_to_f32, f32_to_bf16, f32_to_f16};

/// Elements of a row printed, at most.
const PRINT_COLS: usize = 16;
/// Rows of a tensor printed, at most.
const PRINT_ROWS: usize = 8;

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The kernel: a binary (.sgb) or SG1 assembly (.s, assembled in memory).
    #[arg(value_name = "KERNEL")]
    kernel: PathBuf,
    /// The index space: 1 to 4 sizes, dimension 0 first (e.g. `4` or `2,8`).
    #[arg(long, value_name = "D0[,D1[,D2[,D3]]]")]
    index_space: String,
    /// An argument of the kernel, NAME=SPEC; one for each it declares (repeatable).
    ///
    /// A scalar: a number of its kind (f32, i32 or u32; integers also in 0x hex).
    /// A tensor: [KIND:]SHAPE:INIT. SHAPE is D0xD1x..., 1 to 4 sizes in elements,
    /// dimension 0 first (the contiguous one: 64x4 is 4 rows of 64). KIND (f32, i32,
    /// u32, bf16, f16) defaults to the declared one. INIT is zeros, ones, fill=V, iota,
    /// random[=SEED] (floats uniform in [-1, 1)) or file=PATH (raw little-endian
    /// elements).
    #[arg(long = "arg", value_name = "NAME=SPEC")]
    args: Vec<String>,
    /// A tensor to print after the run (repeatable; default: every tensor argument).
    #[arg(long, value_name = "NAME")]
    print: Vec<String>,
    /// Write a tensor's raw bytes (little-endian elements) to FILE after the run
    /// (repeatable).
    #[arg(long, value_name = "NAME=FILE")]
    out: Vec<String>,
    /// Compute cores of each SG1 (default: the SG1's, 8).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=i64::from(NUM_CORES)))]
    cores: Option<u32>,
    /// Host threads that run an SG1's cores (default: as many as the host has).
    #[arg(long, value_name = "N", value_parser = parse_threads)]
    threads: Option<usize>,
    /// The SG1 to run on.
    #[arg(long, value_name = "N", default_value_t = 0)]
    device: u32,
    #[command(flatten)]
    machine: crate::MachineArgs,
}

fn parse_threads(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("{s:?} is not a number of threads (at least 1)")),
    }
}

/// How a tensor's elements start out.
#[derive(Debug, Clone, PartialEq)]
enum Init {
    Zeros,
    Ones,
    Fill(Value),
    Iota,
    /// The seed, if given.
    Random(Option<u64>),
    File(PathBuf),
}

/// One element's value, in the kind it is computed in.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Value {
    /// f32, bf16 and f16 elements.
    F(f32),
    I(i32),
    U(u32),
}

/// A tensor argument as the command line gives it.
#[derive(Debug, Clone, PartialEq)]
struct TensorSpec {
    elem: ElemKind,
    shape: Vec<u32>,
    init: Init,
}

impl TensorSpec {
    fn len(&self) -> u64 {
        self.shape.iter().map(|&d| u64::from(d)).product()
    }

    fn bytes(&self) -> u64 {
        self.len() * u64::from(elem_size(self.elem))
    }
}

/// An argument's value, before the machine exists.
#[derive(Debug, Clone, PartialEq)]
enum Spec {
    Tensor(TensorSpec),
    Scalar(ArgValue),
}

pub fn run(args: &RunArgs) -> Result<()> {
    // Everything the command line says is checked before the machine is built.
    let binary = load_binary(&args.kernel)?;
    let dims = parse_index_space(&args.index_space)
        .with_context(|| format!("--index-space {}", args.index_space))?;
    let specs = bind_args(&binary, &args.args)?;
    let tensor_names: Vec<&str> = binary
        .args
        .iter()
        .filter(|d| d.kind.is_tensor())
        .map(|d| d.name.as_str())
        .collect();
    let print: Vec<&str> = if args.print.is_empty() {
        tensor_names.clone()
    } else {
        let mut names = Vec::new();
        for name in &args.print {
            check_tensor_name(&binary, &tensor_names, name)
                .with_context(|| format!("--print {name}"))?;
            if !names.contains(&name.as_str()) {
                names.push(name.as_str());
            }
        }
        names
    };
    let mut outs: Vec<(&str, PathBuf)> = Vec::new();
    for text in &args.out {
        let (name, file) = text
            .split_once('=')
            .filter(|(n, f)| !n.is_empty() && !f.is_empty())
            .ok_or_else(|| anyhow!("--out {text}: expected NAME=FILE"))?;
        check_tensor_name(&binary, &tensor_names, name).with_context(|| format!("--out {text}"))?;
        outs.push((name, PathBuf::from(file)));
    }
    // Each tensor's first bytes beside it.
    let mut values = Vec::with_capacity(specs.len());
    for (i, (decl, spec)) in binary.args.iter().zip(specs).enumerate() {
        values.push(match spec {
            Spec::Tensor(t) => {
                let bytes = initial_bytes(&t, i as u64)
                    .with_context(|| format!("--arg {}", arg_text(&args.args, &decl.name)))?;
                (decl, Spec::Tensor(t), bytes)
            }
            scalar => (decl, scalar, Vec::new()),
        });
    }

    // The machine, the device, the kernel and its tensors.
    let config = args.machine.config()?;
    let mut builder = Machine::builder(&config);
    if let Some(cores) = args.cores {
        builder = builder.cores(cores);
    }
    if let Some(threads) = args.threads {
        builder = builder.core_threads(threads);
    }
    let machine = builder.build().context("cannot build the machine")?;
    let process = machine.process("sagrada-run");
    let dev = Device::open(&process, args.device).map_err(|e| {
        let n = machine.accels().len();
        anyhow!(
            "--device {}: cannot open SG1 {} (the machine has {n}, 0 to {}): {e}",
            args.device,
            args.device,
            n.saturating_sub(1)
        )
    })?;
    let kernel = Kernel::load(&dev, &binary)?;
    let mut launch_args = Args::new();
    let mut tensors: Vec<(&str, &[u32], Tensor, DeviceMemory)> = Vec::new();
    for (decl, spec, bytes) in &values {
        match spec {
            Spec::Tensor(t) => {
                let mem = dev.alloc(t.bytes(), false).map_err(|e| {
                    anyhow!("allocating {} bytes for {}: {e}", t.bytes(), decl.name)
                })?;
                dev.upload(mem.va, bytes)
                    .map_err(|e| anyhow!("copying {} to the device: {e}", decl.name))?;
                let tensor = Tensor::new(&mem, t.elem, &t.shape)
                    .with_context(|| format!("--arg {}", arg_text(&args.args, &decl.name)))?;
                launch_args = launch_args.named(&decl.name, tensor);
                tensors.push((&decl.name, &t.shape, tensor, mem));
            }
            Spec::Scalar(v) => launch_args = launch_args.named(&decl.name, *v),
        }
    }

    // The launch.
    let before = dev
        .core_counters()
        .map_err(|e| anyhow!("reading the cores' counters: {e}"))?;
    let report = dev.run_kernel(&kernel, &dims, &launch_args)?;
    let after = dev
        .core_counters()
        .map_err(|e| anyhow!("reading the cores' counters: {e}"))?;
    let counters: Vec<CoreCounters> = after
        .iter()
        .zip(
            before
                .iter()
                .chain(std::iter::repeat(&CoreCounters::default())),
        )
        .map(|(a, b)| a.since(b))
        .collect();

    // What it did, written at once (a closed pipe ends the output, not in a panic).
    let points: u64 = dims.iter().map(|&d| u64::from(d)).product();
    let mut text = format!(
        "kernel {} on SG1 {}: index space {} ({points} point{}), {} compute cores\n",
        binary.name,
        args.device,
        join(&dims, ","),
        if points == 1 { "" } else { "s" },
        counters.len()
    );
    for (name, shape, tensor, mem) in &tensors {
        let printed = print.contains(name);
        let written: Vec<&PathBuf> = outs
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, f)| f)
            .collect();
        if !printed && written.is_empty() {
            continue;
        }
        let mut bytes = vec![0u8; tensor.bytes() as usize];
        dev.download(mem.va, &mut bytes)
            .map_err(|e| anyhow!("copying {name} from the device: {e}"))?;
        if printed {
            text.push('\n');
            text.push_str(&render_tensor(name, tensor.elem, shape, &bytes));
        }
        for file in written {
            std::fs::write(file, &bytes)
                .with_context(|| format!("--out {name}={}: cannot write", file.display()))?;
        }
    }
    text.push('\n');
    text.push_str(&render_counters(&counters));
    text.push_str(&format!(
        "launch: {} µs of device time (the compute queue's clock at its completion: the \
         argument copy, then the cores)\n",
        micros(report.device_time_ns)
    ));
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).context("cannot write to standard output")
        }
        _ => Ok(()),
    }
}

/// The kernel binary of `path`: assembled from a `.s` file, read from any other
/// (assembled after all if it is not a binary and not named `.sgb`).
fn load_binary(path: &Path) -> Result<KernelBinary> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let is_source = ext.eq_ignore_ascii_case("s") || (ext != "sgb" && !bytes.starts_with(b"SGKB"));
    let name = path.display().to_string();
    if !is_source {
        return KernelBinary::from_bytes(&bytes).with_context(|| name.clone());
    }
    let source = String::from_utf8(bytes)
        .map_err(|_| anyhow!("{name}: neither a kernel binary nor UTF-8 assembly"))?;
    match assemble_all_errors(&source, &name) {
        Ok(b) => Ok(b),
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}\n");
            }
            bail!(
                "{name}: {} error{}; nothing run",
                errors.len(),
                if errors.len() == 1 { "" } else { "s" }
            )
        }
    }
}

/// `D0[,D1[,D2[,D3]]]`; sizes of zero and the count of dimensions are the runtime's to
/// judge.
fn parse_index_space(text: &str) -> Result<Vec<u32>> {
    text.split(',')
        .map(|d| {
            parse_u32(d.trim()).ok_or_else(|| {
                anyhow!("{d:?} is not a size: the index space is D0[,D1[,D2[,D3]]], e.g. 4 or 2,8")
            })
        })
        .collect()
}

/// The specs of `given` (`NAME=SPEC` each) in the order `binary` declares its
/// arguments; each declared once, none unknown.
fn bind_args(binary: &KernelBinary, given: &[String]) -> Result<Vec<Spec>> {
    let decls = &binary.args;
    let mut texts: Vec<Option<&str>> = vec![None; decls.len()];
    for text in given {
        let Some((name, spec)) = text.split_once('=').filter(|(n, _)| !n.is_empty()) else {
            bail!("--arg {text}: expected NAME=SPEC, e.g. a=64x4:zeros or alpha=2.5");
        };
        let Some(i) = decls.iter().position(|d| d.name == name) else {
            bail!(
                "--arg {text}: kernel {} has no argument named {name:?}; its arguments are {}",
                binary.name,
                signature(decls)
            );
        };
        if texts[i].replace(spec).is_some() {
            bail!("--arg {text}: argument {name} is given twice");
        }
    }
    let missing: Vec<&str> = decls
        .iter()
        .zip(&texts)
        .filter(|(_, t)| t.is_none())
        .map(|(d, _)| d.name.as_str())
        .collect();
    if !missing.is_empty() {
        bail!(
            "kernel {} needs --arg for {}; its arguments are {}",
            binary.name,
            missing.join(", "),
            signature(decls)
        );
    }
    decls
        .iter()
        .zip(texts)
        .map(|(decl, text)| {
            let text = text.unwrap_or_default();
            parse_spec(decl, text).with_context(|| format!("--arg {}={text}", decl.name))
        })
        .collect()
}

/// The whole `--arg` text given for `name` (for messages).
fn arg_text(given: &[String], name: &str) -> String {
    given
        .iter()
        .rev()
        .find(|t| t.split_once('=').is_some_and(|(n, _)| n == name))
        .cloned()
        .unwrap_or_else(|| name.to_owned())
}

fn check_tensor_name(binary: &KernelBinary, tensors: &[&str], name: &str) -> Result<()> {
    if tensors.contains(&name) {
        return Ok(());
    }
    let what = if binary.args.iter().any(|d| d.name == name) {
        format!("{name} is a scalar argument of kernel {}", binary.name)
    } else {
        format!("kernel {} has no argument named {name:?}", binary.name)
    };
    if tensors.is_empty() {
        bail!("{what}; it has no tensor arguments")
    }
    bail!("{what}; its tensors are {}", tensors.join(", "))
}

/// One argument's SPEC, as its declaration reads it.
fn parse_spec(decl: &ArgDecl, text: &str) -> Result<Spec> {
    let scalar = |kind: &str, v: Option<ArgValue>| {
        v.map(Spec::Scalar)
            .ok_or_else(|| anyhow!("{} is {kind} scalar, and {text:?} is not {kind}", decl.name))
    };
    match decl.kind {
        ArgKind::F32 => scalar("an f32", parse_f32(text).map(ArgValue::F32)),
        ArgKind::I32 => scalar("an i32", parse_i32(text).map(ArgValue::I32)),
        ArgKind::U32 => scalar("a u32", parse_u32(text).map(ArgValue::U32)),
        ArgKind::Tensor(declared) => {
            parse_tensor_spec(&decl.name, declared, text).map(Spec::Tensor)
        }
    }
}

fn elem_kind(name: &str) -> Option<ElemKind> {
    ElemKind::ALL
        .into_iter()
        .find(|e| e.elem_size().is_some() && e.name() == name)
}

fn elem_size(elem: ElemKind) -> u32 {
    elem.elem_size().unwrap_or(4)
}

/// `[KIND:]SHAPE:INIT` for tensor `name` declared of `declared` elements.
fn parse_tensor_spec(name: &str, declared: ElemKind, text: &str) -> Result<TensorSpec> {
    let what = match declared {
        ElemKind::Any => "a tensor".to_owned(),
        e => format!("a tensor of {}", e.name()),
    };
    let usage = || {
        anyhow!(
            "{name} is {what}: expected [KIND:]SHAPE:INIT, e.g. 64x4:zeros, 200:iota or \
             16:random=7, not {text:?}"
        )
    };
    let Some((first, rest)) = text.split_once(':') else {
        // No INIT: a shape that is wrong too is the first thing to say.
        if text.contains('x') {
            parse_shape(text).with_context(|| format!("bad shape {text:?}"))?;
        }
        return Err(usage());
    };
    let (elem, shape, init) = match elem_kind(first) {
        Some(given) => {
            let (shape, init) = rest.split_once(':').ok_or_else(usage)?;
            if declared != ElemKind::Any && given != declared {
                bail!("{name} is {what}, not of {}", given.name());
            }
            (given, shape, init)
        }
        None => {
            let elem = if declared == ElemKind::Any {
                ElemKind::F32
            } else {
                declared
            };
            (elem, first, rest)
        }
    };
    let shape = parse_shape(shape).with_context(|| format!("bad shape {shape:?}"))?;
    let init = parse_init(elem, init).with_context(|| format!("bad initial value {init:?}"))?;
    Ok(TensorSpec { elem, shape, init })
}

/// `D0xD1x...`: 1 to 4 sizes of at least 1, at most `u32::MAX` elements in all.
fn parse_shape(text: &str) -> Result<Vec<u32>> {
    let shape = text
        .split('x')
        .map(|d| {
            parse_u32(d).ok_or_else(|| {
                anyhow!("{d:?} is not a size; a shape is D0xD1x... in elements, dimension 0 first")
            })
        })
        .collect::<Result<Vec<u32>>>()?;
    if shape.len() > DIMS {
        bail!("a tensor has 1 to {DIMS} dimensions, not {}", shape.len());
    }
    if let Some(d) = shape.iter().position(|&n| n == 0) {
        bail!("dimension {d} is 0; every dimension has at least 1 element");
    }
    let len: u64 = shape.iter().map(|&d| u64::from(d)).product();
    if len > u64::from(u32::MAX) {
        bail!("{len} elements; a tensor has at most {}", u32::MAX);
    }
    Ok(shape)
}

fn parse_init(elem: ElemKind, text: &str) -> Result<Init> {
    let (word, value) = match text.split_once('=') {
        Some((w, v)) => (w, Some(v)),
        None => (text, None),
    };
    Ok(match (word, value) {
        ("zeros", None) => Init::Zeros,
        ("ones", None) => Init::Ones,
        ("iota", None) => Init::Iota,
        ("random", None) => Init::Random(None),
        ("random", Some(seed)) => Init::Random(Some(
            parse_u64(seed).ok_or_else(|| anyhow!("seed {seed:?} is not a whole number"))?,
        )),
        ("fill", Some(v)) => Init::Fill(
            parse_value(elem, v)
                .ok_or_else(|| anyhow!("{v:?} is not {} {}", article(elem), elem.name()))?,
        ),
        ("file", Some(path)) if !path.is_empty() => Init::File(PathBuf::from(path)),
        _ => bail!("expected zeros, ones, fill=V, iota, random[=SEED] or file=PATH"),
    })
}

fn article(elem: ElemKind) -> &'static str {
    match elem {
        ElemKind::F32 | ElemKind::F16 => "an",
        _ => "a",
    }
}

fn parse_value(elem: ElemKind, text: &str) -> Option<Value> {
    match elem {
        ElemKind::I32 => parse_i32(text).map(Value::I),
        ElemKind::U32 => parse_u32(text).map(Value::U),
        _ => parse_f32(text).map(Value::F),
    }
}

fn parse_f32(text: &str) -> Option<f32> {
    text.trim().parse().ok()
}

fn parse_u64(text: &str) -> Option<u64> {
    let t = text.trim();
    match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => t.parse().ok(),
    }
}

fn parse_u32(text: &str) -> Option<u32> {
    parse_u64(text).and_then(|v| u32::try_from(v).ok())
}

/// Decimal, or `0x` hexadecimal (the bits, so `0xffffffff` is -1).
fn parse_i32(text: &str) -> Option<i32> {
    let t = text.trim();
    if t.starts_with("0x") || t.starts_with("0X") {
        return parse_u32(t).map(|v| v as i32);
    }
    t.parse().ok()
}

/// The bytes a tensor starts with; `position` is its argument's (the default seed).
fn initial_bytes(t: &TensorSpec, position: u64) -> Result<Vec<u8>> {
    let n = t.len();
    let size = t.bytes();
    if let Init::File(path) = &t.init {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        if bytes.len() as u64 != size {
            bail!(
                "{} holds {} bytes; shape {} of {} takes {size} bytes ({n} elements of {})",
                path.display(),
                bytes.len(),
                join(&t.shape, "x"),
                t.elem.name(),
                elem_size(t.elem)
            );
        }
        return Ok(bytes);
    }
    let size = usize::try_from(size).context("the tensor does not fit in host memory")?;
    let mut out = Vec::with_capacity(size);
    let mut rng = SplitMix(match t.init {
        Init::Random(seed) => seed.unwrap_or(position),
        _ => 0,
    });
    for i in 0..n {
        let v = match (&t.init, t.elem) {
            (Init::Zeros, ElemKind::I32) => Value::I(0),
            (Init::Zeros, ElemKind::U32) => Value::U(0),
            (Init::Zeros, _) => Value::F(0.0),
            (Init::Ones, ElemKind::I32) => Value::I(1),
            (Init::Ones, ElemKind::U32) => Value::U(1),
            (Init::Ones, _) => Value::F(1.0),
            (Init::Fill(v), _) => *v,
            (Init::Iota, ElemKind::I32) => Value::I(i as i32),
            (Init::Iota, ElemKind::U32) => Value::U(i as u32),
            (Init::Iota, _) => Value::F(i as f32),
            (Init::Random(_), ElemKind::I32) => Value::I((rng.next() >> 60) as i32 - 8),
            (Init::Random(_), ElemKind::U32) => Value::U((rng.next() >> 60) as u32),
            (Init::Random(_), _) => {
                // 24 random bits: every value a multiple of 2^-23 in [-1, 1).
                let unit = (rng.next() >> 40) as f32 / (1u32 << 24) as f32;
                Value::F(unit * 2.0 - 1.0)
            }
            (Init::File(_), _) => unreachable!("read above"),
        };
        encode(&mut out, t.elem, v);
    }
    Ok(out)
}

/// The SplitMix64 generator: small, and good enough for test data.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Appends `v` as an element of `elem`, little-endian.
fn encode(out: &mut Vec<u8>, elem: ElemKind, v: Value) {
    match (elem, v) {
        (ElemKind::Bf16, Value::F(x)) => out.extend(f32_to_bf16(x).to_le_bytes()),
        (ElemKind::F16, Value::F(x)) => out.extend(f32_to_f16(x).to_le_bytes()),
        (_, Value::F(x)) => out.extend(x.to_le_bytes()),
        (_, Value::I(x)) => out.extend(x.to_le_bytes()),
        (_, Value::U(x)) => out.extend(x.to_le_bytes()),
    }
}

/// Element `i` of `bytes`, as printed.
fn element_text(elem: ElemKind, bytes: &[u8], i: usize) -> String {
    let size = elem_size(elem) as usize;
    let b = &bytes[i * size..(i + 1) * size];
    match elem {
        ElemKind::Bf16 => format!("{:?}", bf16_to_f32(u16::from_le_bytes([b[0], b[1]]))),
        ElemKind::F16 => format!("{:?}", f16_to_f32(u16::from_le_bytes([b[0], b[1]]))),
        ElemKind::I32 => i32::from_le_bytes([b[0], b[1], b[2], b[3]]).to_string(),
        ElemKind::U32 => u32::from_le_bytes([b[0], b[1], b[2], b[3]]).to_string(),
        _ => format!("{:?}", f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
    }
}

/// A tensor's shape and its first rows along dimension 0:
///
/// ```text
/// c: f32 64x4 (256 elements)
///   [*,0]  0.0  1.0 ... 15.0 ... (64 per row)
/// ```
fn render_tensor(name: &str, elem: ElemKind, shape: &[u32], bytes: &[u8]) -> String {
    let len: usize = shape.iter().map(|&d| d as usize).product();
    let row_len = shape[0] as usize;
    let rows = len / row_len;
    let mut out = format!(
        "{name}: {} {} ({len} element{})\n",
        elem.name(),
        join(shape, "x"),
        if len == 1 { "" } else { "s" }
    );
    let shown_rows = rows.min(PRINT_ROWS);
    let shown_cols = row_len.min(PRINT_COLS);
    let mut labels = Vec::new();
    let mut cells = Vec::new();
    for r in 0..shown_rows {
        // The row's coordinates along dimensions 1 and up.
        let mut coords = Vec::new();
        let mut rest = r;
        for &d in &shape[1..] {
            coords.push((rest % d as usize).to_string());
            rest /= d as usize;
        }
        labels.push(if coords.is_empty() {
            "[*]".to_owned()
        } else {
            format!("[*,{}]", coords.join(","))
        });
        cells.push(
            (0..shown_cols)
                .map(|c| element_text(elem, bytes, r * row_len + c))
                .collect::<Vec<_>>(),
        );
    }
    let label_width = labels.iter().map(String::len).max().unwrap_or(0);
    let width = cells.iter().flatten().map(String::len).max().unwrap_or(0);
    for (label, row) in labels.iter().zip(&cells) {
        out.push_str(&format!("  {label:<label_width$}"));
        for cell in row {
            out.push_str(&format!(" {cell:>width$}"));
        }
        if row_len > shown_cols {
            out.push_str(&format!(" ... ({row_len} per row)"));
        }
        out.push('\n');
    }
    if rows > shown_rows {
        out.push_str(&format!(
            "  ... ({} more row{})\n",
            rows - shown_rows,
            if rows - shown_rows == 1 { "" } else { "s" }
        ));
    }
    out
}

/// The per-core counter table with its total.
pub(crate) fn render_counters(counters: &[CoreCounters]) -> String {
    let header = [
        "core",
        "invocations",
        "instructions",
        "lane-ops",
        "global bytes",
        "scratch bytes",
        "device µs",
    ];
    let row = |label: String, c: &CoreCounters| {
        vec![
            label,
            c.invocations.to_string(),
            c.instructions.to_string(),
            c.lane_ops.to_string(),
            c.global_bytes.to_string(),
            c.scratch_bytes.to_string(),
            micros(c.busy_ns),
        ]
    };
    let mut rows: Vec<Vec<String>> = counters
        .iter()
        .enumerate()
        .map(|(i, c)| row(i.to_string(), c))
        .collect();
    let total: CoreCounters = counters.iter().copied().sum();
    rows.push(row("total".into(), &total));
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([header[i].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[&str]| {
        let mut s = format!("{:<w$}", cells[0], w = widths[0]);
        for (cell, w) in cells.iter().zip(&widths).skip(1) {
            let pad = w - cell.chars().count();
            s.push_str(&format!("  {}{cell}", " ".repeat(pad)));
        }
        s.push('\n');
        s
    };
    let mut out = line(&header);
    for r in &rows {
        let cells: Vec<&str> = r.iter().map(String::as_str).collect();
        out.push_str(&line(&cells));
    }
    out
}

/// `ns` as microseconds with three decimals (exact: integer arithmetic).
fn micros(ns: u64) -> String {
    format!("{}.{:03}", ns / 1000, ns % 1000)
}

fn join(values: &[u32], sep: &str) -> String {
    values
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(sep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_parse_dimension_0_first_and_say_what_is_wrong() {
        assert_eq!(parse_shape("64x4").unwrap(), [64, 4]);
        assert_eq!(parse_shape("7").unwrap(), [7]);
        for (text, want) in [
            ("64x", "\"\" is not a size"),
            ("1x2x3x4x5", "not 5"),
            ("4x0", "dimension 1 is 0"),
            ("65536x65536x2", "at most"),
        ] {
            let e = format!("{:#}", parse_shape(text).unwrap_err());
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn initial_values_are_the_kind_of_the_elements() {
        let spec = |elem, init| TensorSpec {
            elem,
            shape: vec![4],
            init,
        };
        let iota = initial_bytes(&spec(ElemKind::I32, Init::Iota), 0).unwrap();
        assert_eq!(iota, [0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0]);
        let bf = initial_bytes(&spec(ElemKind::Bf16, Init::Fill(Value::F(1.0))), 0).unwrap();
        assert_eq!(bf, [0x80, 0x3f].repeat(4));
        let r1 = initial_bytes(&spec(ElemKind::F32, Init::Random(Some(5))), 0).unwrap();
        let r2 = initial_bytes(&spec(ElemKind::F32, Init::Random(Some(5))), 1).unwrap();
        assert_eq!(r1, r2, "a seed given is the seed");
        for c in r1.chunks_exact(4) {
            let v = f32::from_le_bytes(c.try_into().unwrap());
            assert!((-1.0..1.0).contains(&v), "{v}");
        }
        let d0 = initial_bytes(&spec(ElemKind::F32, Init::Random(None)), 0).unwrap();
        let d1 = initial_bytes(&spec(ElemKind::F32, Init::Random(None)), 1).unwrap();
        assert_ne!(d0, d1, "the default seed is the position");
        let ints = initial_bytes(&spec(ElemKind::I32, Init::Random(Some(3))), 0).unwrap();
        for c in ints.chunks_exact(4) {
            assert!((-8..8).contains(&i32::from_le_bytes(c.try_into().unwrap())));
        }
    }

    #[test]
    fn long_tensors_print_elided() {
        let bytes: Vec<u8> = (0..40 * 10)
            .flat_map(|i| (i as f32).to_le_bytes())
            .collect();
        let text = render_tensor("x", ElemKind::F32, &[40, 10], &bytes);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "x: f32 40x10 (400 elements)");
        assert!(lines[1].starts_with("  [*,0]   0.0   1.0"), "{text}");
        assert!(lines[1].ends_with(" 15.0 ... (40 per row)"), "{text}");
        assert!(lines[8].starts_with("  [*,7] 280.0"), "{text}");
        assert_eq!(lines[9], "  ... (2 more rows)");
        assert_eq!(lines.len(), 10);
    }
}
