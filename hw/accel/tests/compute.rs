//! The compute cores: `LAUNCH` on the COMPUTE queue, the partition of the index space,
//! the per-core counters and fault records, faults and their isolation, resets that
//! stop running kernels, and validation of the packet and its argument buffer.
//!
//! Programs are built from `sagrada_isa` instruction values (no assembler), and the
//! reference semantics is the oracle for results and counters.

mod common;

use common::{Bench, Dev, HostBuf, PageTables, machine};
use sagrada_hw_accel::Sg1Config;
use sagrada_hw_accel_abi::entry::{CqEntry, CqStatus, RingEntry};
use sagrada_hw_accel_abi::launch::{CoreFault, FaultCode, LaunchArgs};
use sagrada_hw_accel_abi::mmu::{FaultCause, PTE_HOST, PTE_WRITABLE};
use sagrada_hw_accel_abi::packet::{DmaDir, MsgOp, Packet};
use sagrada_hw_accel_abi::regs::{cores, global, mmu, queue, sob};
use sagrada_hw_accel_abi::{CORE_CLOCK_MHZ, QUEUE_COMPUTE, QUEUE_DMA0, QUEUE_DMA1, VECTOR_MMU};
use sagrada_isa::exec::{self, Counters, GlobalMemory, Launch, MemFault, Program, TensorDesc};
use sagrada_isa::{CReg, Dim, Guard, Imm, Inst, Off, Op, PReg, SReg, TReg, VReg};

const MIB: u64 = 1 << 20;
/// Where command buffers are mapped in each address space.
const CB_VA: u64 = 0x7fff_0000_0000;
/// Where each address space's HBM allocations are mapped.
const DATA_VA: u64 = 0x10_0000_0000;

fn s(n: u8) -> SReg {
    SReg(n)
}

fn v(n: u8) -> VReg {
    VReg(n)
}

fn words(insts: &[Inst]) -> Vec<u64> {
    insts.iter().map(Inst::encode).collect()
}

fn on(p: u8, op: Op) -> Inst {
    Inst::guarded(
        Guard {
            p: PReg(p),
            negate: false,
        },
        op,
    )
}

fn halt() -> Inst {
    Op::Halt {}.into()
}

/// `c[i] = a[i] + b[i]` over `n` f32 elements, 64 per invocation along dimension 0,
/// the last one masked with `pfirst`.
fn vector_add() -> Vec<Inst> {
    vec![
        Op::Idx {
            sd: s(1),
            dim: Dim(0),
        }
        .into(),
        Op::Shli {
            sd: s(1),
            sa: s(1),
            imm: Imm(6),
        }
        .into(),
        Op::Tdim {
            sd: s(5),
            t: TReg(0),
            dim: Dim(0),
        }
        .into(),
        Op::Sub {
            sd: s(6),
            sa: s(5),
            sb: s(1),
        }
        .into(),
        Op::Pfirst {
            pd: PReg(1),
            sa: s(6),
        }
        .into(),
        on(
            1,
            Op::LdtB32 {
                vd: v(0),
                t: TReg(0),
                c: CReg(1),
            },
        ),
        on(
            1,
            Op::LdtB32 {
                vd: v(1),
                t: TReg(1),
                c: CReg(1),
            },
        ),
        on(
            1,
            Op::VaddF32 {
                vd: v(2),
                va: v(0),
                vb: v(1),
            },
        ),
        on(
            1,
            Op::SttB32 {
                vv: v(2),
                t: TReg(2),
                c: CReg(1),
            },
        ),
        halt(),
    ]
}

/// `out[linear point] = the core that ran it`, over a 2-d index space.
fn who_ran() -> Vec<Inst> {
    vec![
        Op::Idx {
            sd: s(1),
            dim: Dim(0),
        }
        .into(),
        Op::Idx {
            sd: s(2),
            dim: Dim(1),
        }
        .into(),
        Op::Idxn {
            sd: s(3),
            dim: Dim(0),
        }
        .into(),
        Op::Mul {
            sd: s(10),
            sa: s(2),
            sb: s(3),
        }
        .into(),
        Op::Add {
            sd: s(10),
            sa: s(10),
            sb: s(1),
        }
        .into(),
        Op::Coreid { sd: s(5) }.into(),
        Op::SttsB32 {
            sv: s(5),
            t: TReg(0),
            c: CReg(10),
        }
        .into(),
        halt(),
    ]
}

fn f32_tensor(base: u64, n: u32) -> TensorDesc {
    TensorDesc {
        base,
        elem_size: 4,
        dims: [n, 1, 1, 1],
        strides: [1, n, n, n],
    }
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

fn u32s(bytes: &[u8]) -> Vec<u32> {
    bytes
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

fn le<T: Copy>(xs: &[T], f: impl Fn(T) -> [u8; 4]) -> Vec<u8> {
    xs.iter().flat_map(|&x| f(x)).collect()
}

/// One address space: page tables, HBM handed out and mapped at `DATA_VA` upwards.
struct Space<'a> {
    d: &'a Dev,
    pt: PageTables<'a>,
    asid: u16,
    next_va: u64,
    next_pa: u64,
    next_cb: u64,
    tag: u64,
}

impl<'a> Space<'a> {
    /// Address space `asid`: tables at HBM `900 MiB + 8 MiB * asid`, data at HBM
    /// `64 MiB * asid`.
    fn new(d: &'a Dev, asid: u16) -> Self {
        let pt = PageTables::new(d, 900 * MIB + 8 * MIB * u64::from(asid));
        pt.install(u32::from(asid));
        Self {
            d,
            pt,
            asid,
            next_va: DATA_VA,
            next_pa: 64 * MIB * u64::from(asid),
            next_cb: CB_VA,
            tag: 0x100,
        }
    }

    /// `data` in fresh HBM pages mapped writable: (virtual, physical) address.
    fn put(&mut self, data: &[u8]) -> (u64, u64) {
        self.put_with(data, PTE_WRITABLE)
    }

    fn put_with(&mut self, data: &[u8], flags: u64) -> (u64, u64) {
        let len = (data.len() as u64).div_ceil(4096).max(1) * 4096;
        let (va, pa) = (self.next_va, self.next_pa);
        self.pt.map_hbm_4k(va, pa, len, flags);
        self.d.hbm_write(pa, data);
        // A guard page between allocations.
        self.next_va += len + 4096;
        self.next_pa += len;
        (va, pa)
    }

    /// A host buffer mapped writable.
    fn host(&mut self, data: &[u8]) -> (u64, HostBuf) {
        let buf = self.d.host(data.len().max(4096) as u64);
        self.d.host_write(buf.phys, data);
        let va = self.next_va;
        self.pt.map_host(va, &buf, PTE_WRITABLE);
        self.next_va += buf.len.div_ceil(4096) * 4096 + 4096;
        (va, buf)
    }

    fn code(&mut self, insts: &[Inst]) -> (u64, u32) {
        let bytes: Vec<u8> = words(insts).iter().flat_map(|w| w.to_le_bytes()).collect();
        (self.put_with(&bytes, 0).0, insts.len() as u32)
    }

    fn args(&mut self, args: &LaunchArgs) -> (u64, u32) {
        let bytes = args.encode();
        (self.put_with(&bytes, 0).0, bytes.len() as u32)
    }

    /// A `LAUNCH` of `insts` with `args` over `dims` on the cores of `mask`.
    fn launch(&mut self, insts: &[Inst], args: &LaunchArgs, dims: [u32; 4], mask: u32) -> Packet {
        let (code_va, code_count) = self.code(insts);
        let (args_va, args_size) = self.args(args);
        Packet::Launch {
            code_va,
            code_count,
            entry: 0,
            args_va,
            args_size,
            dims,
            core_mask: mask,
        }
    }

    /// Submits `packets` as an unprivileged entry of queue `q`, without waiting.
    fn submit(&mut self, q: u32, packets: &[Packet]) -> u64 {
        self.tag += 1;
        let va = self.next_cb;
        self.next_cb += 0x10_0000;
        self.d
            .user_job(q, self.asid, self.tag, &mut self.pt, va, packets);
        self.tag
    }

    /// Runs `packets` on queue `q` and then a kernel fence on the same queue; returns
    /// the entry's error completion, if any.
    fn run(&mut self, q: u32, packets: &[Packet]) -> Option<CqEntry> {
        let tag = self.submit(q, packets);
        finish(self.d, q, tag)
    }
}

/// Queues a kernel fence behind what queue `q` has and returns the error completion of
/// entry `tag`, if it had one, once the fence arrived.
fn finish(d: &Dev, q: u32, tag: u64) -> Option<CqEntry> {
    let fence_tag = 0xfe00 | tag;
    let (cb_addr, cb_size) = d.cb(&[Packet::Fence { tag: fence_tag }]);
    d.submit(
        q,
        &[RingEntry {
            cb_addr,
            cb_size,
            ..Default::default()
        }],
    );
    let mut error = None;
    loop {
        let e = d.completions(1)[0];
        if e.status == CqStatus::Fence as u16 && e.tag == fence_tag {
            return error;
        }
        assert_eq!(e.tag, tag, "an unexpected completion {e:?}");
        assert!(error.is_none(), "two error completions for one entry");
        error = Some(e);
    }
}

fn core_reg(d: &Dev, c: u32, r: u32) -> u32 {
    d.rd(cores::instance(c) + r)
}

fn core_reg64(d: &Dev, c: u32, lo: u32) -> u64 {
    d.rd64(cores::instance(c) + lo)
}

fn core_counters(d: &Dev, c: u32) -> Counters {
    Counters {
        instructions: core_reg64(d, c, cores::INSTRUCTIONS_LO),
        lane_ops: core_reg64(d, c, cores::LANE_OPS_LO),
        global_bytes: core_reg64(d, c, cores::GLOBAL_BYTES_LO),
        scratch_bytes: core_reg64(d, c, cores::SCRATCH_BYTES_LO),
        invocations: core_reg64(d, c, cores::INVOCATIONS_LO),
    }
}

fn sum(a: Counters, b: Counters) -> Counters {
    Counters {
        instructions: a.instructions + b.instructions,
        lane_ops: a.lane_ops + b.lane_ops,
        global_bytes: a.global_bytes + b.global_bytes,
        scratch_bytes: a.scratch_bytes + b.scratch_bytes,
        invocations: a.invocations + b.invocations,
    }
}

/// Global memory for the oracle: a flat byte array at virtual address 0.
struct Flat(Vec<u8>);

impl GlobalMemory for Flat {
    fn read(&mut self, va: u64, buf: &mut [u8]) -> Result<(), MemFault> {
        let at = va as usize;
        let src = self.0.get(at..at + buf.len()).ok_or(MemFault { va })?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn write(&mut self, va: u64, data: &[u8]) -> Result<(), MemFault> {
        let at = va as usize;
        let dst = self.0.get_mut(at..at + data.len()).ok_or(MemFault { va })?;
        dst.copy_from_slice(data);
        Ok(())
    }
}

/// The vector add's inputs: `n` elements each.
fn add_inputs(n: usize) -> (Vec<f32>, Vec<f32>) {
    let a = (0..n).map(|i| i as f32 * 0.5 - 100.0).collect();
    let b = (0..n).map(|i| 1.0 / (i as f32 + 1.0)).collect();
    (a, b)
}

/// Runs the vector add over `n` elements in `sp` (output in HBM, or in host memory):
/// returns the output with 64 elements of sentinel after it.
fn run_vector_add(sp: &mut Space<'_>, n: u32, mask: u32, out_in_host: bool) -> Vec<f32> {
    let (a, b) = add_inputs(n as usize);
    let (a_va, _) = sp.put(&le(&a, f32::to_le_bytes));
    let (b_va, _) = sp.put(&le(&b, f32::to_le_bytes));
    let sentinel = vec![0xa5u8; (n as usize + 64) * 4];
    // The output's virtual address, and whether it is in host memory at `at` (else
    // in HBM at `at`).
    let (c_va, host, at) = if out_in_host {
        let (va, buf) = sp.host(&sentinel);
        (va, true, buf.phys)
    } else {
        let (va, pa) = sp.put(&sentinel);
        (va, false, pa)
    };
    let args = LaunchArgs {
        tensors: vec![
            f32_tensor(a_va, n),
            f32_tensor(b_va, n),
            f32_tensor(c_va, n),
        ],
        scalars: vec![],
    };
    let p = sp.launch(&vector_add(), &args, [n.div_ceil(64), 1, 1, 1], mask);
    assert_eq!(sp.run(QUEUE_COMPUTE, &[p]), None);
    let bytes = if host {
        sp.d.host_read(at, sentinel.len())
    } else {
        sp.d.hbm_read(at, sentinel.len())
    };
    assert!(
        bytes[n as usize * 4..].iter().all(|&x| x == 0xa5),
        "nothing written past the tensor"
    );
    f32s(&bytes[..n as usize * 4])
}

#[test]
fn a_vector_add_with_a_tail_computes_in_hbm_and_in_host_memory() {
    let d = machine();
    d.setup();
    let mut sp = Space::new(&d, 1);
    let n = 1000;
    let (a, b) = add_inputs(n as usize);
    let want: Vec<f32> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
    let busy = queue::instance(QUEUE_COMPUTE) + queue::BUSY_NS_LO;
    let before = d.rd64(busy);
    assert_eq!(run_vector_add(&mut sp, n, 0, false), want);
    assert!(d.rd64(busy) > before, "the launch took device time");
    assert_eq!(
        run_vector_add(&mut sp, n, 0, true),
        want,
        "output in host memory"
    );
    // Fewer points than cores, and a single core.
    assert_eq!(run_vector_add(&mut sp, 100, 0, false), want[..100]);
    assert_eq!(run_vector_add(&mut sp, 1000, 1 << 5, false), want);
    assert_eq!(d.rd(mmu::BASE + mmu::FAULT_COUNT), 0);
}

#[test]
fn the_index_space_is_split_in_blocks_over_the_cores_of_the_mask() {
    let d = machine();
    d.setup();
    assert_eq!(d.rd(global::NUM_CORES), 8);
    let mut sp = Space::new(&d, 1);
    let (out_va, out_pa) = sp.put(&[0xff; 30 * 4]);
    let args = LaunchArgs {
        tensors: vec![f32_tensor(out_va, 30)],
        scalars: vec![],
    };
    // 30 points over 8 cores: the first 6 take 4, the last 2 take 3.
    let p = sp.launch(&who_ran(), &args, [10, 3, 1, 1], 0);
    assert_eq!(sp.run(QUEUE_COMPUTE, &[p]), None);
    let mut want = Vec::new();
    for c in 0..8u32 {
        want.extend(std::iter::repeat_n(c, if c < 6 { 4 } else { 3 }));
        assert_eq!(
            core_reg64(&d, c, cores::INVOCATIONS_LO),
            if c < 6 { 4 } else { 3 },
            "core {c}"
        );
    }
    assert_eq!(u32s(&d.hbm_read(out_pa, 30 * 4)), want);
    // Cores 2, 5 and 7 only: 10 points each, the others idle.
    let p = sp.launch(&who_ran(), &args, [10, 3, 1, 1], 0b1010_0100);
    assert_eq!(sp.run(QUEUE_COMPUTE, &[p]), None);
    let want: Vec<u32> = [2, 5, 7].iter().flat_map(|&c| [c; 10]).collect();
    assert_eq!(u32s(&d.hbm_read(out_pa, 30 * 4)), want);
    for c in 0..8u32 {
        let extra = match c {
            2 | 5 | 7 => 10,
            _ => 0,
        };
        let first = if c < 6 { 4 } else { 3 };
        assert_eq!(
            core_reg64(&d, c, cores::INVOCATIONS_LO),
            first + extra,
            "core {c}"
        );
    }
    // Registers of cores the device does not have read 0.
    assert_eq!(core_reg64(&d, 8, cores::INVOCATIONS_LO), 0);
}

#[test]
fn the_counters_match_the_reference_semantics_and_resets_clear_them() {
    let d = machine();
    d.setup();
    let mut sp = Space::new(&d, 1);
    let n = 1000u32;
    run_vector_add(&mut sp, n, 0, false);
    // The oracle: every point on one reference core, tensors in a flat memory.
    let (a, b) = add_inputs(n as usize);
    let mut flat = Vec::new();
    flat.extend(le(&a, f32::to_le_bytes));
    flat.extend(le(&b, f32::to_le_bytes));
    flat.extend(vec![0; n as usize * 4]);
    let tensors = [
        f32_tensor(0, n),
        f32_tensor(u64::from(n) * 4, n),
        f32_tensor(u64::from(n) * 8, n),
    ];
    let launch = Launch {
        dims: [n.div_ceil(64), 1, 1, 1],
        tensors: &tensors,
        scalars: &[],
    };
    let program = Program::decode(&words(&vector_add()), 0);
    let mut core = exec::Core::new(0);
    core.start_launch();
    let mut mem = Flat(flat);
    for x in 0..n.div_ceil(64) {
        core.run(&program, &launch, [x, 0, 0, 0], &mut mem).unwrap();
    }
    let total = (0..8).fold(Counters::default(), |t, c| sum(t, core_counters(&d, c)));
    assert_eq!(total, core.counters);
    assert_eq!(total.invocations, 16);
    assert_eq!(total.lane_ops % 1000, 0, "only the tensor's lanes count");
    for c in 0..8 {
        let busy = core_reg64(&d, c, cores::BUSY_NS_LO);
        let insts = core_reg64(&d, c, cores::INSTRUCTIONS_LO);
        assert!(
            busy >= insts * 1000 / u64::from(CORE_CLOCK_MHZ),
            "core {c}: {busy} ns for {insts} instructions"
        );
    }
    d.wr(global::RESET, 1);
    for c in 0..8 {
        assert_eq!(core_counters(&d, c), Counters::default());
        assert_eq!(core_reg64(&d, c, cores::BUSY_NS_LO), 0);
    }
}

#[test]
fn device_time_counts_the_instructions_at_the_core_clock() {
    let d = machine();
    d.setup();
    assert_eq!(d.rd(global::CORE_CLOCK_MHZ), CORE_CLOCK_MHZ);
    assert_eq!(
        d.rd(global::ISA_VERSION),
        u32::from(sagrada_isa::ISA_VERSION_MAJOR) << 8 | u32::from(sagrada_isa::ISA_VERSION_MINOR)
    );
    let mut sp = Space::new(&d, 1);
    // 300 000 iterations of two instructions: at least 400 µs at 1.5 GHz.
    let count_down = [
        Op::Li {
            sd: s(1),
            imm: sagrada_isa::Bits(300_000),
        }
        .into(),
        Op::Addi {
            sd: s(1),
            sa: s(1),
            imm: Imm(-1),
        }
        .into(),
        Op::Bne {
            sa: s(1),
            sb: s(0),
            target: Off(-1),
        }
        .into(),
        halt(),
    ];
    let p = sp.launch(&count_down, &LaunchArgs::default(), [1, 1, 1, 1], 1);
    let busy = queue::instance(QUEUE_COMPUTE) + queue::BUSY_NS_LO;
    let before = d.rd64(busy);
    assert_eq!(sp.run(QUEUE_COMPUTE, &[p]), None);
    let took = d.rd64(busy) - before;
    let insts = core_reg64(&d, 0, cores::INSTRUCTIONS_LO);
    assert!(insts >= 600_000, "{insts} instructions");
    let core_ns = insts * 1000 / u64::from(CORE_CLOCK_MHZ);
    assert!(took >= core_ns, "{took} ns for {insts} instructions");
    assert!(
        took < core_ns + 100_000,
        "{took} ns: little more than the core's time"
    );
    assert_eq!(
        core_reg64(&d, 1, cores::BUSY_NS_LO),
        0,
        "core 1 did nothing"
    );
}

#[test]
fn the_scratchpad_lives_for_one_launch_on_one_core() {
    let d = machine();
    d.setup();
    let mut sp = Space::new(&d, 1);
    let (out_va, out_pa) = sp.put(&[0; 5 * 4]);
    // out[x] = ++scratch[0]
    let counter = [
        Op::Lds {
            sd: s(1),
            sa: s(0),
            imm: Imm(0),
        }
        .into(),
        Op::Addi {
            sd: s(1),
            sa: s(1),
            imm: Imm(1),
        }
        .into(),
        Op::Sts {
            sv: s(1),
            sa: s(0),
            imm: Imm(0),
        }
        .into(),
        Op::Idx {
            sd: s(10),
            dim: Dim(0),
        }
        .into(),
        Op::SttsB32 {
            sv: s(1),
            t: TReg(0),
            c: CReg(10),
        }
        .into(),
        halt(),
    ];
    let args = LaunchArgs {
        tensors: vec![f32_tensor(out_va, 5)],
        scalars: vec![],
    };
    for _ in 0..2 {
        let p = sp.launch(&counter, &args, [5, 1, 1, 1], 1 << 4);
        assert_eq!(sp.run(QUEUE_COMPUTE, &[p]), None);
        assert_eq!(u32s(&d.hbm_read(out_pa, 20)), [1, 2, 3, 4, 5]);
    }
}

/// A one-point launch of `insts` on core 3 that must fault with `code` at `pc`; returns
/// the fault detail (`FAULT_INFO`) after checking the completion and the registers,
/// and clears the record.
fn expect_fault(
    sp: &mut Space<'_>,
    insts: &[Inst],
    args: &LaunchArgs,
    code: FaultCode,
    pc: u32,
) -> u64 {
    let d = sp.d;
    let p = sp.launch(insts, args, [1, 1, 1, 1], 1 << 3);
    let e = sp
        .run(QUEUE_COMPUTE, &[p])
        .unwrap_or_else(|| panic!("{code:?}: no fault"));
    assert_eq!(e.status, CqStatus::CoreFault as u16, "{code:?}");
    let f = CoreFault::from_info(e.info);
    assert_eq!(f.fault_code(), Some(code));
    assert_eq!((f.core, f.pc), (3, pc), "{code:?}");
    let cause = core_reg(d, 3, cores::FAULT_CAUSE);
    assert_eq!(cores::fields::FAULT_CAUSE::CODE.get(cause), code as u32);
    assert_eq!(core_reg(d, 3, cores::FAULT_PC), pc);
    let info = core_reg64(d, 3, cores::FAULT_INFO_LO);
    for c in (0..8).filter(|&c| c != 3) {
        assert_eq!(
            core_reg(d, c, cores::FAULT_CAUSE),
            0,
            "core {c} has no fault"
        );
    }
    d.wr(cores::instance(3) + cores::FAULT_CAUSE, cause);
    assert_eq!(core_reg(d, 3, cores::FAULT_CAUSE), 0);
    assert_eq!(core_reg(d, 3, cores::FAULT_PC), 0);
    assert_eq!(core_reg64(d, 3, cores::FAULT_INFO_LO), 0);
    info
}

#[test]
fn every_fault_kind_is_a_core_fault_with_its_code_pc_core_and_detail() {
    let d = machine();
    d.setup();
    let mut sp = Space::new(&d, 1);
    let (t_va, _) = sp.put(&[0; 400]);
    let (ro_va, _) = sp.put_with(&[0; 400], 0);
    let none = LaunchArgs::default();
    let one = |base| LaunchArgs {
        tensors: vec![f32_tensor(base, 100)],
        scalars: vec![],
    };
    let nop: Inst = Op::Nop {}.into();
    let li = |r, x| -> Inst {
        Op::Li {
            sd: s(r),
            imm: sagrada_isa::Bits(x),
        }
        .into()
    };

    // An illegal word at pc 1.
    let p = {
        let bytes: Vec<u8> = [nop.encode(), 0xffu64]
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect();
        let (code_va, _) = sp.put_with(&bytes, 0);
        Packet::Launch {
            code_va,
            code_count: 2,
            entry: 0,
            args_va: 0,
            args_size: 0,
            dims: [1, 1, 1, 1],
            core_mask: 1 << 3,
        }
    };
    let e = sp.run(QUEUE_COMPUTE, &[p]).unwrap();
    let f = CoreFault::from_info(e.info);
    assert_eq!(
        (f.fault_code(), f.core, f.pc),
        (Some(FaultCode::IllegalInstruction), 3, 1)
    );
    assert_eq!(core_reg64(&d, 3, cores::FAULT_INFO_LO), 0xff, "the word");
    d.wr(cores::instance(3) + cores::FAULT_CAUSE, 0xff);

    let j = [nop, Op::J { target: Off(100) }.into()];
    assert_eq!(expect_fault(&mut sp, &j, &none, FaultCode::PcRange, 1), 101);
    // Running off the end faults at the last instruction (which retired).
    let run_off = [nop, nop];
    assert_eq!(
        expect_fault(&mut sp, &run_off, &none, FaultCode::PcRange, 1),
        2
    );
    let mis = [Op::Lds {
        sd: s(1),
        sa: s(0),
        imm: Imm(2),
    }
    .into()];
    assert_eq!(
        expect_fault(&mut sp, &mis, &none, FaultCode::Misaligned, 0),
        2
    );
    let out = [Op::Lds {
        sd: s(1),
        sa: s(0),
        imm: Imm(256 << 10),
    }
    .into()];
    assert_eq!(
        expect_fault(&mut sp, &out, &none, FaultCode::ScratchRange, 0),
        256 << 10
    );
    let arg = [
        nop,
        Op::Ldarg {
            sd: s(1),
            imm: Imm(5),
        }
        .into(),
    ];
    let two = LaunchArgs {
        tensors: vec![],
        scalars: vec![1, 2],
    };
    assert_eq!(expect_fault(&mut sp, &arg, &two, FaultCode::ArgRange, 1), 5);
    let slot = [Op::Tdim {
        sd: s(1),
        t: TReg(3),
        dim: Dim(0),
    }
    .into()];
    assert_eq!(
        expect_fault(&mut sp, &slot, &one(t_va), FaultCode::TensorSlot, 0),
        3
    );
    let half = LaunchArgs {
        tensors: vec![TensorDesc {
            elem_size: 2,
            ..f32_tensor(t_va, 100)
        }],
        scalars: vec![],
    };
    let ty = [Op::LdtB32 {
        vd: v(0),
        t: TReg(0),
        c: CReg(1),
    }
    .into()];
    assert_eq!(
        expect_fault(&mut sp, &ty, &half, FaultCode::TensorType, 0),
        2 << 16
    );
    let range = [
        li(10, 1000),
        Op::SttsB32 {
            sv: s(1),
            t: TReg(0),
            c: CReg(10),
        }
        .into(),
    ];
    assert_eq!(
        expect_fault(&mut sp, &range, &one(t_va), FaultCode::TensorRange, 1),
        1000 << 16
    );
    let div = [
        nop,
        nop,
        Op::Div {
            sd: s(1),
            sa: s(2),
            sb: s(0),
        }
        .into(),
    ];
    assert_eq!(
        expect_fault(&mut sp, &div, &none, FaultCode::DivideByZero, 2),
        0
    );

    // MMU faults: also in the MMU's record, with its interrupt.
    let mmu_irqs = d.irq_count(VECTOR_MMU);
    let load = [
        li(10, 7),
        Op::LdtsB32 {
            sd: s(1),
            t: TReg(0),
            c: CReg(10),
        }
        .into(),
    ];
    let unmapped = DATA_VA + 0x8000_0000;
    assert_eq!(
        expect_fault(&mut sp, &load, &one(unmapped), FaultCode::Mmu, 1),
        unmapped + 28
    );
    d.wait_irq(VECTOR_MMU, mmu_irqs + 1);
    assert_eq!(d.rd(mmu::BASE + mmu::FAULT_STATUS) & 1, 1);
    assert_eq!(d.rd(mmu::BASE + mmu::FAULT_ASID), 1);
    assert_eq!(d.rd64(mmu::BASE + mmu::FAULT_VA_LO), unmapped + 28);
    assert_eq!(
        d.rd(mmu::BASE + mmu::FAULT_CAUSE),
        FaultCause::NotPresent as u32
    );
    d.wr(mmu::BASE + mmu::FAULT_STATUS, 3);
    // A store to a read-only page: the WRITE bits.
    let store = [
        li(10, 7),
        Op::SttsB32 {
            sv: s(1),
            t: TReg(0),
            c: CReg(10),
        }
        .into(),
    ];
    let p = sp.launch(&store, &one(ro_va), [1, 1, 1, 1], 1 << 3);
    let e = sp.run(QUEUE_COMPUTE, &[p]).unwrap();
    assert_eq!(
        CoreFault::from_info(e.info).fault_code(),
        Some(FaultCode::Mmu)
    );
    let cause = core_reg(&d, 3, cores::FAULT_CAUSE);
    assert!(cores::fields::FAULT_CAUSE::WRITE.is_set(cause));
    assert_eq!(core_reg64(&d, 3, cores::FAULT_INFO_LO), ro_va + 28);
    assert_eq!(
        d.rd(mmu::BASE + mmu::FAULT_CAUSE),
        FaultCause::ReadOnly as u32 | 1 << 8
    );
    d.wait_irq(VECTOR_MMU, mmu_irqs + 2);
    // A record is kept until cleared: another fault only sets OVERFLOW.
    let e = sp.run(QUEUE_COMPUTE, &[p]).unwrap();
    assert_eq!(e.status, CqStatus::CoreFault as u16);
    let again = core_reg(&d, 3, cores::FAULT_CAUSE);
    assert_eq!(again, cause | 1 << 9, "OVERFLOW");
    d.wr(cores::instance(3) + cores::FAULT_CAUSE, again);
    assert_eq!(core_reg(&d, 3, cores::FAULT_CAUSE), 0);
    // The host side refusing (a DMA address the IOMMU does not map), and an element
    // beyond the 64-bit address space: MMU faults with those causes.
    d.wr(mmu::BASE + mmu::FAULT_STATUS, 3);
    let host_va = DATA_VA + 0x4000_0000;
    sp.pt
        .map_4k(host_va, 0x7_0000_0000, PTE_HOST | PTE_WRITABLE);
    assert_eq!(
        expect_fault(&mut sp, &load, &one(host_va), FaultCode::Mmu, 1),
        host_va + 28
    );
    assert_eq!(
        d.rd(mmu::BASE + mmu::FAULT_CAUSE),
        FaultCause::HostRefused as u32
    );
    d.wr(mmu::BASE + mmu::FAULT_STATUS, 3);
    assert_eq!(
        expect_fault(&mut sp, &load, &one(u64::MAX - 15), FaultCode::Mmu, 1),
        u64::MAX
    );
    assert_eq!(
        d.rd(mmu::BASE + mmu::FAULT_CAUSE),
        FaultCause::BadAddress as u32
    );
    assert_eq!(
        d.rd(queue::instance(QUEUE_COMPUTE) + queue::ERRORS),
        15,
        "every faulting entry counted"
    );
}

#[test]
fn the_lowest_faulting_core_is_reported_whatever_the_timing() {
    for threads in [1, 3] {
        let bench = Bench::new();
        let d = accel0_on_threads(&bench, threads);
        d.setup();
        let mut sp = Space::new(&d, 1);
        // Points 5 (core 2) and 13 (core 6) of 16 divide by zero; core 6 gets there
        // first when it starts at the same time (it skips a long loop core 2 runs).
        let li = |r, x| -> Inst {
            Op::Li {
                sd: s(r),
                imm: sagrada_isa::Bits(x),
            }
            .into()
        };
        let insts = [
            Op::Idx {
                sd: s(1),
                dim: Dim(0),
            }
            .into(),
            li(2, 13),
            Op::Beq {
                sa: s(1),
                sb: s(2),
                target: Off(6),
            }
            .into(),
            li(2, 5),
            Op::Bne {
                sa: s(1),
                sb: s(2),
                target: Off(5),
            }
            .into(),
            li(3, 100_000),
            Op::Addi {
                sd: s(3),
                sa: s(3),
                imm: Imm(-1),
            }
            .into(),
            Op::Bne {
                sa: s(3),
                sb: s(0),
                target: Off(-1),
            }
            .into(),
            Op::Div {
                sd: s(4),
                sa: s(4),
                sb: s(0),
            }
            .into(),
            halt(),
        ];
        for _ in 0..3 {
            let p = sp.launch(&insts, &LaunchArgs::default(), [16, 1, 1, 1], 0);
            let e = sp.run(QUEUE_COMPUTE, &[p]).expect("a fault");
            let f = CoreFault::from_info(e.info);
            assert_eq!(
                (f.fault_code(), f.core, f.pc),
                (Some(FaultCode::DivideByZero), 2, 8),
                "{threads} threads"
            );
            assert_eq!(core_reg(&d, 6, cores::FAULT_CAUSE), 0, "only one record");
            let cause = core_reg(&d, 2, cores::FAULT_CAUSE);
            d.wr(cores::instance(2) + cores::FAULT_CAUSE, cause);
        }
    }
}

#[test]
fn a_faulting_launch_leaves_other_contexts_work_and_memory_alone() {
    let d = machine();
    d.setup();
    let mut a = Space::new(&d, 1);
    let mut b = Space::new(&d, 2);
    // B's data, at a virtual address where A maps nothing.
    b.next_va = DATA_VA + (1 << 32);
    let secret = common::pattern(8192, 3);
    let (b_va, b_pa) = b.put(&secret);
    // A's kernel writes everywhere around the same virtual address in its own space,
    // which maps nothing there: MMU faults, nothing written.
    let store = [
        Op::Idx {
            sd: s(10),
            dim: Dim(0),
        }
        .into(),
        Op::Muli {
            sd: s(10),
            sa: s(10),
            imm: Imm(64),
        }
        .into(),
        Op::Vbcast { vd: v(1), sa: s(0) }.into(),
        Op::SttB32 {
            vv: v(1),
            t: TReg(0),
            c: CReg(10),
        }
        .into(),
        halt(),
    ];
    let args = LaunchArgs {
        tensors: vec![f32_tensor(b_va, 2048)],
        scalars: vec![],
    };
    let p = a.launch(&store, &args, [32, 1, 1, 1], 0);
    // B copies on a DMA queue while A's launch runs.
    let (dst_va, dst_pa) = b.put(&[0; 8192]);
    let copy = Packet::LinDma {
        src: b_va,
        dst: dst_va,
        size: 8192,
        dir: DmaDir::DeviceToDevice,
    };
    let a_tag = a.submit(QUEUE_COMPUTE, &[p]);
    let b_tag = b.submit(QUEUE_DMA1, &[copy]);
    let e = finish(&d, QUEUE_COMPUTE, a_tag).expect("A faults");
    assert_eq!(e.status, CqStatus::CoreFault as u16);
    assert_eq!(
        CoreFault::from_info(e.info).fault_code(),
        Some(FaultCode::Mmu)
    );
    assert_eq!(d.rd(mmu::BASE + mmu::FAULT_ASID), 1);
    assert_eq!(finish(&d, QUEUE_DMA1, b_tag), None, "B's copy went through");
    assert_eq!(d.hbm_read(b_pa, 8192), secret, "B's memory untouched");
    assert_eq!(d.hbm_read(dst_pa, 8192), secret);
    // B's own launch runs fine after A's fault.
    let (a2, b2) = add_inputs(1000);
    let want: Vec<f32> = a2.iter().zip(&b2).map(|(x, y)| x + y).collect();
    assert_eq!(run_vector_add(&mut b, 1000, 0, false), want);
}

#[test]
fn a_kernel_that_never_halts_is_stopped_by_a_soft_reset() {
    let d = machine();
    d.setup();
    let mut sp = Space::new(&d, 1);
    let forever = [Op::J { target: Off(0) }.into()];
    let p = sp.launch(&forever, &LaunchArgs::default(), [64, 1, 1, 1], 0);
    sp.submit(QUEUE_COMPUTE, &[p]);
    let status = queue::instance(QUEUE_COMPUTE) + queue::STATUS;
    d.wait_until("the kernel runs", || d.rd(status) & 1 == 0);
    std::thread::sleep(std::time::Duration::from_millis(20));
    let irqs = d.cq_irqs();
    d.wr(global::RESET, 1);
    assert_eq!(d.rd(status), 1, "idle once the reset write completed");
    assert_eq!(d.rd(queue::instance(QUEUE_COMPUTE) + queue::CI), 0);
    assert_eq!(d.cq_irqs(), irqs, "no completion for the abandoned launch");
    assert_eq!(core_counters(&d, 0), Counters::default());
    // The device works again.
    d.setup();
    let mut sp = Space::new(&d, 1);
    let (a, b) = add_inputs(200);
    let want: Vec<f32> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
    assert_eq!(run_vector_add(&mut sp, 200, 0, false), want);
    // And shutdown stops a kernel that never halts too.
    let p = sp.launch(&forever, &LaunchArgs::default(), [64, 1, 1, 1], 0);
    sp.submit(QUEUE_COMPUTE, &[p]);
    d.wait_until("the kernel runs", || d.rd(status) & 1 == 0);
    d.sg1.shutdown();
    assert_eq!(d.sg1.running_threads(), 0);
}

#[test]
fn a_hard_reset_stops_every_core_before_it_scrubs_the_hbm() {
    let bench = Bench::new();
    // A thread per core: cores sharing a thread run one after the other, and these
    // never end.
    let d = accel0_on_threads(&bench, 8);
    d.setup();
    let mut sp = Space::new(&d, 1);
    let (out_va, out_pa) = sp.put(&[0; 512 * 4]);
    // Every core stores its block of the tensor, forever.
    let store_forever = [
        Op::Idx {
            sd: s(10),
            dim: Dim(0),
        }
        .into(),
        Op::Shli {
            sd: s(10),
            sa: s(10),
            imm: Imm(6),
        }
        .into(),
        Op::Li {
            sd: s(1),
            imm: sagrada_isa::Bits(0x1234_5678),
        }
        .into(),
        Op::Vbcast { vd: v(1), sa: s(1) }.into(),
        Op::SttB32 {
            vv: v(1),
            t: TReg(0),
            c: CReg(10),
        }
        .into(),
        Op::J { target: Off(-1) }.into(),
    ];
    let args = LaunchArgs {
        tensors: vec![f32_tensor(out_va, 512)],
        scalars: vec![],
    };
    let p = sp.launch(&store_forever, &args, [8, 1, 1, 1], 0);
    sp.submit(QUEUE_COMPUTE, &[p]);
    d.wait_until("every core stores", || {
        u32s(&d.hbm_read(out_pa, 512 * 4))
            .iter()
            .all(|&x| x == 0x1234_5678)
    });
    d.wr(global::RESET, 2);
    assert_eq!(d.hbm_read(out_pa, 512 * 4), vec![0; 512 * 4]);
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_eq!(
        d.hbm_read(out_pa, 512 * 4),
        vec![0; 512 * 4],
        "no core stored after the reset"
    );
    d.sg1.shutdown();
    assert_eq!(d.sg1.running_threads(), 0);
}

#[test]
fn bad_launch_fields_and_bad_argument_buffers_are_bad_packets() {
    let d = machine();
    d.setup();
    let mut sp = Space::new(&d, 1);
    let good = sp.launch(&[halt()], &LaunchArgs::default(), [1, 1, 1, 1], 0);
    let Packet::Launch {
        code_va,
        code_count,
        args_va,
        args_size,
        ..
    } = good
    else {
        unreachable!()
    };
    // `good` with other code, arguments or core mask.
    let with = |code_va, args_va, args_size, core_mask| Packet::Launch {
        code_va,
        code_count,
        entry: 0,
        args_va,
        args_size,
        dims: [1, 1, 1, 1],
        core_mask,
    };
    let bad_packet_at = |e: Option<CqEntry>, at: u64| {
        let e = e.expect("an error");
        assert_eq!((e.status, e.info), (CqStatus::BadPacket as u16, at));
    };
    // Fields the decoder refuses: entry past the code, after a NOP.
    let mut raw = Packet::Nop.encode();
    let mut l = good.encode();
    l[16..20].copy_from_slice(&1u32.to_le_bytes());
    raw.extend(&l);
    let tag = sp.tag + 1;
    sp.tag = tag;
    let (cb_addr, cb_size) = {
        let buf = d.host(raw.len() as u64);
        d.host_write(buf.phys, &raw);
        sp.pt.map_host(CB_VA + 0x4000_0000, &buf, 0);
        (CB_VA + 0x4000_0000, raw.len() as u32)
    };
    d.submit(
        QUEUE_COMPUTE,
        &[RingEntry {
            cb_addr,
            cb_size,
            asid: 1,
            tag,
            ..Default::default()
        }],
    );
    bad_packet_at(finish(&d, QUEUE_COMPUTE, tag), 4);
    // A core the device does not have (it has 8).
    let ninth = with(code_va, args_va, args_size, 1 << 8);
    bad_packet_at(sp.run(QUEUE_COMPUTE, &[Packet::Nop, ninth]), 4);
    // Argument buffers: a bad element size, a size that does not match the counts.
    let bad_elem = LaunchArgs {
        tensors: vec![TensorDesc {
            elem_size: 3,
            ..f32_tensor(0, 4)
        }],
        scalars: vec![],
    };
    let (va, size) = sp.args(&bad_elem);
    let p = with(code_va, va, size, 0);
    bad_packet_at(sp.run(QUEUE_COMPUTE, &[p]), 0);
    let (va, size) = sp.args(&LaunchArgs {
        tensors: vec![],
        scalars: vec![1, 2, 3],
    });
    let p = with(code_va, va, size - 4, 0);
    bad_packet_at(sp.run(QUEUE_COMPUTE, &[Packet::Nop, Packet::Nop, p]), 8);
    // Code or arguments at unmapped addresses: MMU faults at them.
    let p = with(code_va + 0x1000_0000, args_va, args_size, 0);
    let e = sp.run(QUEUE_COMPUTE, &[p]).unwrap();
    assert_eq!(
        (e.status, e.info),
        (CqStatus::MmuFault as u16, code_va + 0x1000_0000)
    );
    let p = with(code_va, args_va + 0x1000_0000, 16, 0);
    let e = sp.run(QUEUE_COMPUTE, &[p]).unwrap();
    assert_eq!(
        (e.status, e.info),
        (CqStatus::MmuFault as u16, args_va + 0x1000_0000)
    );
    // The good one runs, with its 16-byte empty buffer or without any.
    assert_eq!(sp.run(QUEUE_COMPUTE, &[good]), None);
    let none = with(code_va, 0, 0, 0);
    assert_eq!(sp.run(QUEUE_COMPUTE, &[none]), None);
    assert_eq!(core_reg64(&d, 0, cores::INVOCATIONS_LO), 2);
}

#[test]
fn launch_on_a_dma_queue_is_a_bad_packet_and_the_compute_queue_runs_every_packet() {
    let d = machine();
    d.setup();
    let mut sp = Space::new(&d, 1);
    let l = sp.launch(&[halt()], &LaunchArgs::default(), [4, 1, 1, 1], 0);
    for q in [QUEUE_DMA0, QUEUE_DMA1] {
        let e = sp.run(q, &[Packet::Nop, l]).expect("refused");
        assert_eq!((e.status, e.info), (CqStatus::BadPacket as u16, 4));
    }
    assert_eq!(core_reg64(&d, 0, cores::INVOCATIONS_LO), 0, "nothing ran");
    // MSG, WAIT, LIN_DMA and LAUNCH together on the compute queue.
    d.wr(sagrada_hw_accel_abi::regs::sob_owner::instance(5), 1);
    let (src, src_pa) = sp.put(&common::pattern(4096, 1));
    let (dst, dst_pa) = sp.put(&[0; 4096]);
    let packets = [
        Packet::Msg {
            sob: 5,
            op: MsgOp::Add,
            value: 2,
        },
        Packet::Wait { sob: 5, target: 2 },
        Packet::LinDma {
            src,
            dst,
            size: 4096,
            dir: DmaDir::DeviceToDevice,
        },
        l,
        Packet::Msg {
            sob: 5,
            op: MsgOp::Add,
            value: 1,
        },
    ];
    assert_eq!(sp.run(QUEUE_COMPUTE, &packets), None);
    assert_eq!(d.rd(sob::instance(5)), 3);
    assert_eq!(d.hbm_read(dst_pa, 4096), d.hbm_read(src_pa, 4096));
    let total: u64 = (0..8)
        .map(|c| core_reg64(&d, c, cores::INVOCATIONS_LO))
        .sum();
    assert_eq!(total, 4);
}

/// Runs the same launches on a device whose cores run on `threads` host threads and
/// returns everything they produced: the outputs and every core's counters.
fn outputs_with_threads(threads: usize) -> (Vec<u8>, Vec<Counters>) {
    let bench = Bench::new();
    let d = accel0_on_threads(&bench, threads);
    d.setup();
    let mut sp = Space::new(&d, 1);
    let mut out = Vec::new();
    for n in [1000, 4000, 77] {
        out.extend(le(&run_vector_add(&mut sp, n, 0, false), f32::to_le_bytes));
    }
    let (who, who_pa) = sp.put(&[0; 300 * 4]);
    let args = LaunchArgs {
        tensors: vec![f32_tensor(who, 300)],
        scalars: vec![],
    };
    let p = sp.launch(&who_ran(), &args, [30, 10, 1, 1], 0b0110_1101);
    assert_eq!(sp.run(QUEUE_COMPUTE, &[p]), None);
    out.extend(d.hbm_read(who_pa, 300 * 4));
    (out, (0..8).map(|c| core_counters(&d, c)).collect())
}

#[test]
fn results_do_not_depend_on_the_number_of_host_threads() {
    let one = outputs_with_threads(1);
    assert_eq!(outputs_with_threads(3), one);
    assert_eq!(outputs_with_threads(8), one);
}

#[test]
fn the_core_count_is_configurable_and_checked() {
    let bench = Bench::new();
    let d = bench.sg1_with(
        "accel0",
        Sg1Config {
            cores: 3,
            core_threads: 2,
            ..Sg1Config::default()
        },
    );
    d.setup();
    assert_eq!(d.rd(global::NUM_CORES), 3);
    let mut sp = Space::new(&d, 1);
    let p = sp.launch(&[halt()], &LaunchArgs::default(), [10, 1, 1, 1], 0);
    assert_eq!(sp.run(QUEUE_COMPUTE, &[p]), None);
    let counts: Vec<u64> = (0..4)
        .map(|c| core_reg64(&d, c, cores::INVOCATIONS_LO))
        .collect();
    assert_eq!(counts, [4, 3, 3, 0]);
    let p = sp.launch(&[halt()], &LaunchArgs::default(), [10, 1, 1, 1], 1 << 3);
    let e = sp.run(QUEUE_COMPUTE, &[p]).unwrap();
    assert_eq!(
        e.status,
        CqStatus::BadPacket as u16,
        "core 3 does not exist"
    );
    for (cores, threads) in [(0, 1), (17, 1), (8, 0)] {
        let bench = Bench::new();
        let dev = bench.fabric.find("accel0").unwrap();
        let err = sagrada_hw_accel::Sg1::attach(
            &bench.fabric,
            dev,
            Sg1Config {
                cores,
                core_threads: threads,
                ..Sg1Config::default()
            },
        )
        .unwrap_err();
        assert!(
            err.to_string().starts_with("invalid SG1 configuration"),
            "{err}"
        );
    }
}

/// `accel0` with its cores on `threads` host threads, otherwise the default SG1.
fn accel0_on_threads(bench: &Bench, threads: usize) -> Dev {
    bench.sg1_with(
        "accel0",
        Sg1Config {
            core_threads: threads,
            ..Sg1Config::default()
        },
    )
}
