//! The interpreter's speed: a scalar loop (instructions/s) and a `vmad.f32` loop
//! (lane-ops/s), each beside the same work done natively in the same run, so the
//! ratio means something on a shared machine.
//!
//! `cargo bench -p sagrada-isa --bench exec`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sagrada_isa::exec::{Core, FlatMemory, Launch, Program};
use sagrada_isa::{Bits, Imm, Inst, Off, Op, SReg, VReg};

const ITERS: u32 = 100_000;

fn program(ops: &[Op]) -> Program {
    let words: Vec<u64> = ops.iter().map(|&op| Inst::from(op).encode()).collect();
    Program::decode(&words, 0)
}

fn run(core: &mut Core, p: &Program) {
    let launch = Launch {
        dims: [1; 4],
        tensors: &[],
        scalars: &[],
    };
    let mut mem = FlatMemory::default();
    core.run(p, &launch, [0; 4], &mut mem).unwrap();
}

/// Five integer instructions a trip, the last a taken branch.
fn scalar_loop() -> (Program, u64) {
    let s = SReg;
    let p = program(&[
        Op::Li {
            sd: s(1),
            imm: Bits(ITERS),
        },
        Op::Addi {
            sd: s(2),
            sa: s(2),
            imm: Imm(3),
        },
        Op::Xor {
            sd: s(3),
            sa: s(3),
            sb: s(2),
        },
        Op::Add {
            sd: s(4),
            sa: s(4),
            sb: s(3),
        },
        Op::Addi {
            sd: s(1),
            sa: s(1),
            imm: Imm(-1),
        },
        Op::Bne {
            sa: s(1),
            sb: s(0),
            target: Off(-4),
        },
        Op::Halt {},
    ]);
    (p, 2 + 5 * u64::from(ITERS))
}

/// Eight `vmad.f32` a trip on four independent accumulators, plus the loop; the
/// instructions and the `vmad.f32` lane-ops.
fn vector_loop() -> (Program, u64, u64) {
    let (s, v) = (SReg, VReg);
    let mut ops = vec![
        Op::Li {
            sd: s(1),
            imm: Bits(ITERS),
        },
        Op::Li {
            sd: s(2),
            imm: Bits(1.0001f32.to_bits()),
        },
        Op::Vbcast { vd: v(8), sa: s(2) },
        Op::Vbcast { vd: v(9), sa: s(2) },
    ];
    let top = ops.len();
    for i in 0..8 {
        ops.push(Op::VmadF32 {
            vd: v(i % 4),
            va: v(8),
            vb: v(9),
            vc: v(i % 4),
        });
    }
    ops.push(Op::Addi {
        sd: s(1),
        sa: s(1),
        imm: Imm(-1),
    });
    let back = -((ops.len() - top) as i32);
    ops.push(Op::Bne {
        sa: s(1),
        sb: s(0),
        target: Off(back),
    });
    ops.push(Op::Halt {});
    let per_trip = 10 * u64::from(ITERS);
    (program(&ops), 5 + per_trip, 8 * 64 * u64::from(ITERS))
}

fn scalar(c: &mut Criterion) {
    let (p, insts) = scalar_loop();
    let mut core = Core::new(0);
    run(&mut core, &p);
    assert_eq!(core.counters.instructions, insts);

    let mut g = c.benchmark_group("scalar loop");
    g.throughput(Throughput::Elements(insts));
    g.bench_function("interpreted (elements = instructions)", |b| {
        b.iter(|| run(&mut core, black_box(&p)))
    });
    g.bench_function("native (elements = the same instructions)", |b| {
        b.iter(|| {
            let (mut n, mut a, mut x, mut y) = (black_box(ITERS), 0u32, 0u32, 0u32);
            while n != 0 {
                a = black_box(a.wrapping_add(3));
                x ^= a;
                y = y.wrapping_add(x);
                n -= 1;
            }
            black_box(y)
        })
    });
    g.finish();
}

fn vector(c: &mut Criterion) {
    let (p, insts, lane_ops) = vector_loop();
    let mut core = Core::new(0);
    run(&mut core, &p);
    assert_eq!(core.counters.instructions, insts);
    // The two vbcasts are the other 128.
    assert_eq!(core.counters.lane_ops, lane_ops + 128);

    let mut g = c.benchmark_group("vmad.f32 loop");
    g.throughput(Throughput::Elements(lane_ops));
    g.bench_function("interpreted (elements = lane-ops)", |b| {
        b.iter(|| run(&mut core, black_box(&p)))
    });
    g.bench_function("native (elements = the same lane-ops)", |b| {
        b.iter(|| {
            let mut acc = [[0f32; 64]; 4];
            let (a, bb) = (black_box([1.0001f32; 64]), black_box([1.0001f32; 64]));
            for _ in 0..black_box(ITERS) {
                for k in 0..8 {
                    let d = &mut acc[k % 4];
                    for ((d, &a), &b) in d.iter_mut().zip(&a).zip(&bb) {
                        *d += a * b;
                    }
                }
                black_box(&mut acc);
            }
            black_box(acc)
        })
    });
    g.finish();
}

criterion_group!(benches, scalar, vector);
criterion_main!(benches);
