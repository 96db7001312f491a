//! The demo's compute section: a kernel written in SG1 assembly (`kernels/saxpy.s`),
//! assembled, loaded and launched through the runtime and the driver, checked against
//! the host, with the cores' counters.

use anyhow::{Context, Result, bail};
use sagrada::Machine;
use sagrada::accel::Device;
use sagrada::kernel::{Args, ElemKind, Kernel, Tensor};

const SAXPY: &str = include_str!("../../../kernels/saxpy.s");

/// Elements of x and y: not a multiple of 64, so the last vector is masked.
const N: usize = 100_000;

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub fn run(machine: &Machine) -> Result<()> {
    let p = machine.process("saxpy");
    let dev = Device::open(&p, 0).context("cannot open /dev/accel/accel0")?;
    let kernel = Kernel::assemble(&dev, SAXPY, "kernels/saxpy.s")?;
    let info = dev.info();
    println!(
        "[user]   kernels/saxpy.s assembled: {} instructions, arguments ({}), ISA {}.{}",
        kernel.binary().code.len(),
        kernel
            .args()
            .iter()
            .map(|a| format!("{} {}", sagrada::kernel::kind_name(a.kind), a.name))
            .collect::<Vec<_>>()
            .join(", "),
        info.isa_major,
        info.isa_minor
    );

    let alpha = 2.5f32;
    let x: Vec<f32> = (0..N).map(|i| (i % 1000) as f32 * 0.001).collect();
    let y: Vec<f32> = (0..N).map(|i| 1.0 - (i % 77) as f32 * 0.01).collect();
    let upload = |v: &[f32]| -> Result<Tensor> {
        let mem = dev.alloc((v.len() * 4) as u64, false)?;
        dev.upload(mem.va, &f32_bytes(v))?;
        Ok(Tensor::new(&mem, ElemKind::F32, &[v.len() as u32])?)
    };
    let (tx, ty) = (upload(&x)?, upload(&y)?);
    let points = N.div_ceil(64) as u32;
    let before = dev.core_counters()?;
    let report = dev.run_kernel(&kernel, &[points], &Args::new().arg(alpha).arg(tx).arg(ty))?;
    let after = dev.core_counters()?;
    println!(
        "[kernel] one CS on the COMPUTE queue: LIN_DMA of the argument buffer, then LAUNCH over {points} points on {} cores",
        info.num_cores
    );

    let mut bytes = vec![0u8; N * 4];
    dev.download(ty.va, &mut bytes)?;
    for (i, b) in bytes.chunks_exact(4).enumerate() {
        let got = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let want = alpha * x[i] + y[i];
        if got.to_bits() != want.to_bits() {
            bail!("saxpy: y[{i}] is {got} on the SG1 and {want} on the host");
        }
    }
    println!(
        "[user]   y = {alpha} * x + y over {N} elements: equal to the host's, bit for bit (the last vector masked to {} lanes)",
        N % 64
    );
    let per_core: Vec<_> = after.iter().zip(&before).map(|(a, b)| a.since(b)).collect();
    println!("[hw]     the cores' counters for this launch (CORE registers, through INFO_CORES):");
    for line in crate::run_cmd::render_counters(&per_core).lines() {
        println!("         {line}");
    }
    println!(
        "[hw]     the CS completed at device time {:.3} us",
        report.device_time_ns as f64 / 1e3
    );
    dev.close()?;
    Ok(())
}
