//! The interpreter's speed: a scalar loop (instructions/s) and a `vmad.f32` loop
//! (lane-ops/s), each beside the same work done natively in the same run, so the
//! ratio means something on a shared machine. The loops are
//! [`sagrada_isa::exec::workloads`], which `sagrada bench core` runs too.
//!
//! `cargo bench -p sagrada-isa --bench exec`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sagrada_isa::exec::Core;
use sagrada_isa::exec::workloads::{
    run, scalar_loop, scalar_loop_native, vmad_loop, vmad_loop_native,
};

const ITERS: u32 = 100_000;

fn scalar(c: &mut Criterion) {
    let w = scalar_loop(ITERS);
    let mut core = Core::new(0);
    let mut g = c.benchmark_group("scalar loop");
    g.throughput(Throughput::Elements(w.instructions));
    g.bench_function("interpreted (elements = instructions)", |b| {
        b.iter(|| run(&mut core, black_box(&w)).unwrap())
    });
    g.bench_function("native (elements = the same instructions)", |b| {
        b.iter(|| scalar_loop_native(ITERS))
    });
    g.finish();
}

fn vector(c: &mut Criterion) {
    let w = vmad_loop(ITERS);
    let mut core = Core::new(0);
    let mut g = c.benchmark_group("vmad.f32 loop");
    g.throughput(Throughput::Elements(w.lane_ops));
    g.bench_function("interpreted (elements = lane-ops)", |b| {
        b.iter(|| run(&mut core, black_box(&w)).unwrap())
    });
    g.bench_function("native (elements = the same lane-ops)", |b| {
        b.iter(|| vmad_loop_native(ITERS))
    });
    g.finish();
}

criterion_group!(benches, scalar, vector);
criterion_main!(benches);
