//! Launching kernels through the runtime: faults surface as `KernelFault`s with the
//! faulting core, instruction and cause, and harm no other context; arguments are
//! checked against the kernel's declarations; the per-core counters are the reference
//! semantics' counts; and a kernel cannot reach another context's memory.

mod common;

use std::time::Duration;

use common::{Rng, download_f32, f32_tensor, machine, same_bits, upload_f32};
use sagrada::Machine;
use sagrada::accel::{COMPUTE, CoreCounters, CsOutcome, DMA0, Device};
use sagrada::kernel::{
    Args, ElemKind, FaultCode, Kernel, KernelBinary, KernelError, KernelFault, Tensor,
};
use sagrada_hw_accel_abi::launch::CoreFault;
use sagrada_hw_fabric::TopologyConfig;
use sagrada_isa::exec::{self, FlatMemory, Launch, Program, TensorDesc};
use sagrada_kernel_accel::uapi::{CORE_FAULT_WRITE, INFO_HW_IP};
use sagrada_sys::Errno;

const VADD: &str = include_str!("../../../kernels/vadd.s");
const SAXPY: &str = include_str!("../../../kernels/saxpy.s");

/// Point 5 of the index space reads coordinate 1000 of its tensor: with 16 points over
/// 8 cores (two each) that is core 2, at pc 4.
const OUT_OF_RANGE: &str = "\
.kernel out_of_range
.arg tensor data f32
        idx     s1, 0
        li      s2, 5
        bne     s1, s2, done
        li      s4, 1000
        ldt.b32 v0, data, s4
done:
        halt
";

/// Stores 64 ones at the start of its tensor, which may be any address.
const STORE: &str = "\
.kernel store
.arg tensor dst f32
        li      s1, 1.0
        vbcast  v0, s1
        stt.b32 v0, dst, s4
        halt
";

fn expect_fault(r: Result<impl std::fmt::Debug, KernelError>) -> KernelFault {
    match r {
        Err(KernelError::Fault(f)) => f,
        other => panic!("expected a kernel fault, got {other:?}"),
    }
}

#[test]
fn a_fault_names_its_core_pc_and_cause_and_another_contexts_work_goes_on() {
    let m = machine();
    let (pa, pb) = (m.process("faulty"), m.process("bystander"));
    let a = Device::open(&pa, 0).unwrap();
    let b = Device::open(&pb, 0).unwrap();
    let bad = Kernel::assemble(&a, OUT_OF_RANGE, "out_of_range.s").unwrap();
    let (_, t) = f32_tensor(&a, &[0.0; 100], &[100]);
    let vadd = Kernel::assemble(&b, VADD, "vadd.s").unwrap();
    let n = 3000;
    let mut rng = Rng::new(9);
    let (x, y) = (rng.f32s(n, -1.0, 1.0), rng.f32s(n, -1.0, 1.0));
    let (_, tx) = f32_tensor(&b, &x, &[n as u32]);
    let (_, ty) = f32_tensor(&b, &y, &[n as u32]);
    let (zm, tz) = f32_tensor(&b, &vec![0.0; n], &[n as u32]);
    let vadd_args = Args::new().arg(tx).arg(ty).arg(tz);
    // The bystander's launch is queued behind the faulting one on the compute queue.
    let seq_a = a.launch(&bad, &[16], &Args::new().arg(t)).unwrap();
    let seq_b = b
        .launch(&vadd, &[n.div_ceil(64) as u32], &vadd_args)
        .unwrap();

    let f = expect_fault(a.wait_launch(&bad, seq_a));
    assert_eq!((f.core, f.pc, f.cause), (2, 4, FaultCode::TensorRange));
    assert_eq!((f.kernel.as_str(), f.seq), ("out_of_range", seq_a));
    assert_eq!(
        f.info,
        Some(1000 << 16),
        "slot 0, dimension 0, coordinate 1000"
    );
    assert_eq!(f.slot(), Some(0));
    assert_eq!(
        f.to_string(),
        "kernel out_of_range: core 2 faulted at pc 4: coordinate 1000 along dimension 0 is \
         outside tensor t0 (data)"
    );
    // The detail is the faulting context's: the bystander's INFO_CORES has none.
    assert!(b.cores_info().unwrap().iter().all(|c| c.fault_seq == 0));
    assert_eq!(a.cores_info().unwrap()[2].fault_seq, seq_a);
    // At the uAPI: WAIT_CS says -EIO, with the core fault in error_info.
    let info = CoreFault {
        code: FaultCode::TensorRange as u8,
        core: 2,
        pc: 4,
    }
    .to_info();
    assert_eq!(
        a.wait(seq_a, Duration::ZERO).unwrap(),
        CsOutcome::Aborted {
            error: -Errno::EIO.raw(),
            info
        }
    );

    b.wait_launch(&vadd, seq_b).unwrap();
    let want: Vec<f32> = x.iter().zip(&y).map(|(p, q)| p + q).collect();
    assert!(same_bits(&download_f32(&b, &zm, n), &want));
    // And the faulting context goes on working too.
    let ok = a.run_kernel(&bad, &[5], &Args::new().arg(t)).unwrap();
    assert!(ok.device_time_ns > 0);
}

#[test]
fn every_fault_of_a_core_is_reported_with_its_own_detail() {
    // The driver clears the core's fault record each time, so a second fault on the
    // same core has its own detail rather than the first one's.
    let m = machine();
    let p = m.process("twice");
    let dev = Device::open(&p, 0).unwrap();
    let k = Kernel::assemble(&dev, OUT_OF_RANGE, "out_of_range.s").unwrap();
    let (_, t) = f32_tensor(&dev, &[0.0; 100], &[100]);
    let first = expect_fault(dev.run_kernel(&k, &[16], &Args::new().arg(t)));
    let second = expect_fault(dev.run_kernel(&k, &[8], &Args::new().arg(t)));
    assert_eq!((first.core, second.core), (2, 5), "8 points: one per core");
    assert_eq!(second.info, Some(1000 << 16));
    let third = expect_fault(dev.run_kernel(&k, &[16], &Args::new().arg(t)));
    assert_eq!((third.core, third.info), (2, Some(1000 << 16)));
    assert_ne!(first.seq, third.seq);
}

#[test]
fn a_kernel_cannot_reach_another_processes_memory() {
    let m = machine();
    let (pa, pb) = (m.process("owner"), m.process("intruder"));
    let owner = Device::open(&pa, 0).unwrap();
    let intruder = Device::open(&pb, 0).unwrap();
    // The owner's data lies above anything the intruder maps.
    let _pad: Vec<_> = (0..4)
        .map(|_| owner.alloc(2 << 20, false).unwrap())
        .collect();
    let secret = upload_f32(&owner, &[42.0; 64]);
    let k = Kernel::assemble(&intruder, STORE, "store.s").unwrap();
    let mine = intruder.alloc(2 << 20, false).unwrap();
    assert!(
        secret.va >= mine.va + mine.size,
        "the owner's VA is not mapped in the intruder's address space"
    );
    let target = Tensor::at(secret.va, ElemKind::F32, &[64]).unwrap();
    let f = expect_fault(intruder.run_kernel(&k, &[1], &Args::new().arg(target)));
    assert_eq!((f.core, f.pc, f.cause), (0, 2, FaultCode::Mmu));
    assert_eq!((f.info, f.write), (Some(secret.va), true));
    assert!(f.to_string().contains("refused a write"), "{f}");
    let rec = intruder.cores_info().unwrap()[0];
    assert_eq!(rec.fault_flags, CORE_FAULT_WRITE);
    assert_eq!(download_f32(&owner, &secret, 64), vec![42.0; 64]);
    // Its own memory it reaches.
    let own = Tensor::new(&mine, ElemKind::F32, &[64]).unwrap();
    intruder
        .run_kernel(&k, &[1], &Args::new().arg(own))
        .unwrap();
    assert_eq!(download_f32(&intruder, &mine, 64), vec![1.0; 64]);
}

#[test]
fn arguments_are_checked_against_the_declarations() {
    let m = machine();
    let p = m.process("args");
    let dev = Device::open(&p, 0).unwrap();
    let k = Kernel::assemble(&dev, SAXPY, "saxpy.s").unwrap();
    let mem = dev.alloc(4096, false).unwrap();
    let x = Tensor::new(&mem, ElemKind::F32, &[64]).unwrap();
    let ints = Tensor::new(&mem, ElemKind::I32, &[64]).unwrap();
    let err = |args: Args| {
        let e = dev.launch(&k, &[1], &args).unwrap_err();
        (e.to_string(), e)
    };

    let (msg, e) = err(Args::new().arg(2.0f32).arg(x));
    assert!(
        matches!(
            e,
            KernelError::Count {
                expected: 3,
                found: 2,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(
        msg.contains("takes 3 arguments (alpha: f32, x: tensor f32, y: tensor f32), 2 given"),
        "{msg}"
    );
    let (msg, e) = err(Args::new().arg(2.0f32).arg(x).arg(x).arg(1.0f32));
    assert!(matches!(e, KernelError::Count { found: 4, .. }), "{msg}");

    let (msg, e) = err(Args::new().arg(2.0f32).arg(x).named("z", x));
    assert!(matches!(e, KernelError::UnknownName { .. }), "{e:?}");
    assert!(
        msg.contains("no argument named \"z\"") && msg.contains("y: tensor f32"),
        "{msg}"
    );

    let (msg, e) = err(Args::new().arg(2i32).arg(x).arg(x));
    assert!(
        matches!(&e, KernelError::Kind { index: 0, name, .. } if name == "alpha"),
        "{e:?}"
    );
    assert!(
        msg.contains("must be an f32 scalar, not an i32 scalar"),
        "{msg}"
    );
    let (msg, _) = err(Args::new().arg(x).arg(x).arg(x));
    assert!(
        msg.contains("alpha) must be an f32 scalar, not a tensor of f32"),
        "{msg}"
    );
    let (msg, _) = err(Args::new().arg(1.0f32).arg(1.0f32).arg(x));
    assert!(
        msg.contains("(x) must be a tensor of f32, not an f32 scalar"),
        "{msg}"
    );

    let (msg, e) = err(Args::new().arg(2.0f32).arg(ints).arg(x));
    assert!(matches!(e, KernelError::ElemType { index: 1, .. }), "{e:?}");
    assert!(
        msg.contains("(x) must be a tensor of f32 elements, not of i32"),
        "{msg}"
    );

    let (msg, e) = err(Args::new().arg(2.0f32).arg(x).named("alpha", 1.0f32));
    assert!(
        matches!(e, KernelError::Duplicate { index: 0, .. }),
        "{msg}"
    );

    // Named and positional mix; nothing above was submitted.
    let ok = Args::new().named("y", x).arg(2.0f32).arg(x);
    let bound = k.bind(&ok).unwrap();
    assert_eq!(bound.scalars, vec![2.0f32.to_bits()]);
    assert_eq!(bound.tensors.len(), 2);
    let seq = dev.launch(&k, &[1], &ok).unwrap();
    assert_eq!(
        seq, 2,
        "the one after the code's upload: nothing above was submitted"
    );
    dev.wait_launch(&k, seq).unwrap();
}

#[test]
fn launches_refuse_bad_index_spaces_masks_and_other_contexts_kernels() {
    let m = machine();
    let p = m.process("launch");
    let dev = Device::open(&p, 0).unwrap();
    let other = Device::open(&p, 0).unwrap();
    let k = Kernel::assemble(&dev, STORE, "store.s").unwrap();
    let mem = dev.alloc(4096, false).unwrap();
    let args = Args::new().arg(Tensor::new(&mem, ElemKind::F32, &[64]).unwrap());
    let e = dev.launch(&k, &[4, 0], &args).unwrap_err();
    assert!(matches!(e, KernelError::IndexSpace { .. }), "{e}");
    let e = dev.launch(&k, &[], &args).unwrap_err();
    assert!(matches!(e, KernelError::IndexSpace { .. }), "{e}");
    let e = dev.launch_on(&k, &[1], &args, 1 << 8).unwrap_err();
    assert!(e.to_string().contains("0x100"), "{e}");
    let e = other.launch(&k, &[1], &args).unwrap_err();
    assert!(matches!(e, KernelError::OtherContext { .. }), "{e}");
    let e = Kernel::load(&dev, &KernelBinary::default()).unwrap_err();
    assert!(matches!(e, KernelError::CodeSize { count: 0, .. }), "{e}");
    // Core 3 alone runs every point.
    dev.launch_on(&k, &[4], &args, 1 << 3)
        .and_then(|seq| dev.wait_launch(&k, seq))
        .unwrap();
    let cores = dev.core_counters().unwrap();
    assert_eq!(cores[3].invocations, 4);
    assert!(
        cores
            .iter()
            .enumerate()
            .all(|(i, c)| i == 3 || c.invocations == 0)
    );
}

#[test]
fn hw_ip_reports_the_compute_cores() {
    let m = Machine::builder(&TopologyConfig::default_machine())
        .cores(4)
        .core_threads(1)
        .build()
        .unwrap();
    let p = m.process("hw_ip");
    let dev = Device::open(&p, 0).unwrap();
    let hw: sagrada_kernel_accel::uapi::HwIpInfo = dev.query(INFO_HW_IP).unwrap();
    assert_eq!(
        (hw.num_cores, hw.core_clock_mhz, hw.isa_major, hw.isa_minor),
        (
            4,
            1500,
            u32::from(sagrada_isa::ISA_VERSION_MAJOR),
            u32::from(sagrada_isa::ISA_VERSION_MINOR)
        )
    );
    assert_eq!(dev.cores_info().unwrap().len(), 4);
}

/// What the reference semantics counts for `program` over `dims`, core by core.
fn reference_counters(
    program: &Program,
    dims: [u32; 4],
    tensors: &[TensorDesc],
    scalars: &[u32],
    mem: &mut FlatMemory,
    cores: u32,
) -> Vec<exec::Counters> {
    let launch = Launch {
        dims,
        tensors,
        scalars,
    };
    (0..cores)
        .map(|c| {
            let mut core = exec::Core::new(c);
            core.start_launch();
            core.run_points(program, &launch, exec::partition(dims, cores, c), mem)
                .unwrap();
            core.counters
        })
        .collect()
}

#[test]
fn per_core_counters_are_the_reference_semantics_counts() {
    let m = machine();
    let p = m.process("counters");
    let dev = Device::open(&p, 0).unwrap();
    let k = Kernel::assemble(&dev, VADD, "vadd.s").unwrap();
    assert!(
        dev.core_counters()
            .unwrap()
            .iter()
            .all(|c| *c == CoreCounters::default())
    );
    let n = 1000usize; // 16 points over 8 cores, the last masked.
    let (_, ta) = f32_tensor(&dev, &vec![1.0; n], &[n as u32]);
    let (_, tb) = f32_tensor(&dev, &vec![2.0; n], &[n as u32]);
    let (_, tc) = f32_tensor(&dev, &vec![0.0; n], &[n as u32]);
    let args = Args::new().arg(ta).arg(tb).arg(tc);
    let before = dev.core_counters().unwrap();
    dev.run_kernel(&k, &[16], &args).unwrap();
    let after = dev.core_counters().unwrap();

    // The same launch on the reference semantics, over flat memory at the same VAs.
    let base = ta.va.min(tb.va).min(tc.va);
    let top = ta.va.max(tb.va).max(tc.va) + 4096;
    let mut flat = FlatMemory::new(base, (top - base) as usize);
    let bound = k.bind(&args).unwrap();
    let program = Program::decode(&k.binary().code, k.binary().entry);
    let want = reference_counters(&program, [16, 1, 1, 1], &bound.tensors, &[], &mut flat, 8);
    for (c, (a, b)) in after.iter().zip(&before).enumerate() {
        let got = a.since(b);
        let w = want[c];
        assert_eq!(
            (
                got.instructions,
                got.lane_ops,
                got.global_bytes,
                got.scratch_bytes,
                got.invocations
            ),
            (
                w.instructions,
                w.lane_ops,
                w.global_bytes,
                w.scratch_bytes,
                w.invocations
            ),
            "core {c}"
        );
        assert_eq!(got.invocations, 2);
        assert!(got.busy_ns > 0, "core {c}");
    }
    // Core 7 ran the masked tail: fewer lanes.
    assert!(after[7].since(&before[7]).lane_ops < after[0].since(&before[0]).lane_ops);
}

#[test]
fn a_compute_stream_orders_launches_after_copies() {
    let m = machine();
    let p = m.process("stream");
    let dev = Device::open(&p, 0).unwrap();
    let k = Kernel::assemble(&dev, SAXPY, "saxpy.s").unwrap();
    let n = 256usize;
    let (xm, tx) = f32_tensor(&dev, &vec![1.0; n], &[n as u32]);
    let (ym, ty) = f32_tensor(&dev, &vec![0.0; n], &[n as u32]);
    let compute = dev.stream(COMPUTE);
    let args = Args::new().arg(2.0f32).arg(tx).arg(ty);
    for _ in 0..3 {
        compute.launch(&k, &[4], &args).unwrap();
    }
    compute.synchronize().unwrap();
    assert_eq!(download_f32(&dev, &ym, n), vec![6.0; n]);
    let e = dev.stream(DMA0).launch(&k, &[4], &args).unwrap_err();
    assert!(e.to_string().contains("only the compute queue"), "{e}");
    let _ = xm;
}

/// Stores an ever-growing count to the start of its tensor, for ever.
const SPIN_STORE: &str = "\
.kernel spin_store
.arg tensor dst u32
        li      s10, 0
again:
        addi    s10, s10, 1
        vbcast  v0, s10
        stt.b32 v0, dst, s4         # at coordinates (s4, s5, s6, s7) = 0
        beq     s0, s0, again
";

#[test]
fn memory_freed_under_a_running_launch_is_out_of_its_reach_at_once() {
    // The cores cache translations; the unmap's MMU invalidation must reach them
    // before the pages can go to another context.
    // (Without that, this launch would store for ever, into whoever's page it became.)
    let m = machine();
    let pa = m.process("freer");
    let a = Device::open(&pa, 0).unwrap();
    let k = Kernel::assemble(&a, SPIN_STORE, "spin_store.s").unwrap();
    let mem = a.alloc(2 << 20, false).unwrap();
    let va = mem.va;
    let t = Tensor::new(&mem, ElemKind::U32, &[64]).unwrap();
    let seq = a.launch(&k, &[1], &Args::new().arg(t)).unwrap();
    // Running, with the page in its translation cache, once the count shows.
    let mut word = [0u8; 4];
    while word == [0; 4] {
        std::thread::sleep(Duration::from_millis(1));
        a.download(va, &mut word).unwrap();
        let outcome = a.wait(seq, Duration::ZERO).unwrap();
        assert_eq!(
            outcome,
            CsOutcome::Busy,
            "the launch ended before it stored"
        );
    }
    a.free(mem).unwrap();
    // The launch's next store faults instead of landing in the freed page.
    let f = expect_fault(a.wait_launch(&k, seq));
    assert_eq!(
        (f.pc, f.cause, f.info, f.write),
        (3, FaultCode::Mmu, Some(va), true)
    );
}
