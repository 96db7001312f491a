//! What the runtime's tests share: machines, test data, and short ways to run, wait
//! for and judge submissions, query the device and reach the CS ioctl raw, and to put
//! f32 tensors on the device and read them back.
// Each test file is its own crate and uses only some of these.
#![allow(dead_code)]

use std::time::Duration;

use sagrada::Machine;
use sagrada::accel::{CsOutcome, DMA1, Device, DeviceMemory, HostMemory};
use sagrada::kernel::{ElemKind, Tensor};
use sagrada_hw_accel_abi::packet::{MsgOp, Packet};
use sagrada_hw_fabric::{DEFAULT_MACHINE_TOML, TopologyConfig};
use sagrada_kernel_accel::uapi::{
    Counters, CsArgs, CsChunk, DramUsage, INFO_COUNTERS, INFO_DRAM_USAGE, SG1_IOCTL_CS,
};
use sagrada_sys::{Errno, Process, UserPtr};
use zerocopy::IntoBytes;

pub const MB: u64 = 1 << 20;
pub const GB: u64 = 1 << 30;

/// The default machine.
pub fn machine() -> Machine {
    Machine::default_machine().unwrap()
}

/// The default machine with 64 MiB of HBM on `accel0` (48 MiB for contexts, the rest
/// holds page tables): small enough to read all of it back.
pub fn small_hbm_machine() -> Machine {
    let toml = DEFAULT_MACHINE_TOML.replacen("hbm = \"1 GiB\"", "hbm = \"64 MiB\"", 1);
    Machine::new(&TopologyConfig::from_toml_str(&toml).unwrap()).unwrap()
}

/// The default machine with the driver's lockup check (`timeout_locked`) at `timeout`.
pub fn machine_with_timeout_locked(timeout: Duration) -> Machine {
    Machine::builder(&TopologyConfig::default_machine())
        .timeout_locked(timeout)
        .build()
        .unwrap()
}

/// `len` bytes of test data from `seed`: none of them zero (so a byte left zeroed
/// shows), each seed's different, and differing from one 4 KiB page to the next (so a
/// page copied to the wrong place shows).
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 12) as u8).max(1))
        .collect()
}

/// `len` bytes of `p`'s memory at `ptr`.
pub fn read_host(p: &Process, ptr: UserPtr, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    p.read_mem(ptr, &mut out).unwrap();
    out
}

pub fn completed(outcome: CsOutcome) -> bool {
    matches!(outcome, CsOutcome::Completed { .. })
}

/// The outcome of a submission that failed with `errno`, `info` telling where.
pub fn aborted(errno: Errno, info: u64) -> CsOutcome {
    CsOutcome::Aborted {
        error: -errno.raw(),
        info,
    }
}

/// Waits for `seq` as long as it takes.
pub fn wait(dev: &Device<'_>, seq: u64) -> CsOutcome {
    dev.wait(seq, Duration::MAX).unwrap()
}

/// Still running: a wait that does not block reports it busy.
pub fn is_busy(dev: &Device<'_>, seq: u64) -> bool {
    dev.wait(seq, Duration::ZERO).unwrap() == CsOutcome::Busy
}

pub fn counters(dev: &Device<'_>) -> Counters {
    dev.query(INFO_COUNTERS).unwrap()
}

pub fn dram_usage(dev: &Device<'_>) -> DramUsage {
    dev.query(INFO_DRAM_USAGE).unwrap()
}

/// A sync object of the context that the runtime's events do not hand out first.
pub fn spare_sob(dev: &Device<'_>) -> u32 {
    let ctx = dev.context();
    ctx.sob_base + ctx.sob_count - 1
}

/// Adds 1 to `sob` from DMA1, which releases a `WAIT` for it on DMA0, and checks the
/// `MSG` completed.
pub fn signal(dev: &Device<'_>, sob: u32) {
    let outcome = dev
        .run(
            DMA1,
            &[Packet::Msg {
                sob,
                op: MsgOp::Add,
                value: 1,
            }],
        )
        .unwrap();
    assert!(completed(outcome), "MSG to sob {sob}: {outcome:?}");
}

/// The bytes of `packets`, encoded one after the other.
pub fn encode(packets: &[Packet]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for p in packets {
        p.encode_into(&mut bytes);
    }
    bytes
}

/// A host buffer mapped for the device holding the command buffer `bytes`, and a
/// chunk that submits it on `queue`.
pub fn chunk(dev: &Device<'_>, queue: u32, bytes: &[u8]) -> (HostMemory, CsChunk) {
    let mem = dev.host_alloc(bytes.len() as u64).unwrap();
    dev.process().write_mem(mem.ptr, bytes).unwrap();
    (
        mem,
        CsChunk {
            queue,
            cb_size: bytes.len() as u32,
            cb_addr: mem.va,
        },
    )
}

/// The CS ioctl itself (the runtime's `submit` builds only valid arguments), with
/// `chunks` placed in the process's memory; returns the result and the arguments as
/// the kernel left them.
pub fn cs_raw(
    dev: &Device<'_>,
    chunks: &[CsChunk],
    num_chunks: u32,
    flags: u32,
) -> (Result<i64, Errno>, CsArgs) {
    let p = dev.process();
    let len = size_of_val(chunks).max(1) as u64;
    let mem = p.mmap_anon(len).unwrap();
    p.write_mem(mem, chunks.as_bytes()).unwrap();
    let mut args = CsArgs {
        chunks: mem.0,
        num_chunks,
        flags,
        ..Default::default()
    };
    let r = p.ioctl_with(dev.fd(), SG1_IOCTL_CS, &mut args);
    p.munmap(mem, len).unwrap();
    (r, args)
}

/// A small deterministic generator of test data (xorshift64*).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `[lo, hi)`.
    pub fn f32_in(&mut self, lo: f32, hi: f32) -> f32 {
        let unit = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        lo + (hi - lo) * unit
    }

    pub fn f32s(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.f32_in(lo, hi)).collect()
    }
}

/// Device memory holding `data`.
pub fn upload_f32(dev: &Device<'_>, data: &[f32]) -> DeviceMemory {
    let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    let mem = dev.alloc(bytes.len().max(4) as u64, false).unwrap();
    dev.upload(mem.va, &bytes).unwrap();
    mem
}

/// `n` f32 values at the start of `mem`.
pub fn download_f32(dev: &Device<'_>, mem: &DeviceMemory, n: usize) -> Vec<f32> {
    let mut bytes = vec![0u8; n * 4];
    dev.download(mem.va, &mut bytes).unwrap();
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

/// A dense f32 tensor of `shape` over `data`, on the device.
pub fn f32_tensor(dev: &Device<'_>, data: &[f32], shape: &[u32]) -> (DeviceMemory, Tensor) {
    let mem = upload_f32(dev, data);
    let t = Tensor::new(&mem, ElemKind::F32, shape).unwrap();
    (mem, t)
}

/// Whether two f32 slices hold the same bits.
pub fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}
