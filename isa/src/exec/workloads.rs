//! The interpreter's speed probes: two loops, each with the same work written natively
//! so that a benchmark can print the interpreter beside a reference measured in the
//! same run. The criterion bench (`isa/benches/exec.rs`) and `sagrada bench core` both
//! use them.

use std::hint::black_box;

use super::{Core, FlatMemory, Launch, Program, Stop};
use crate::{Bits, Imm, Inst, LANES, Off, Op, SReg, VReg};

/// A program, with what it should retire.
#[derive(Debug)]
pub struct Workload {
    /// The decoded program.
    pub program: Program,
    /// Instructions one run retires.
    pub instructions: u64,
    /// Vector lane-operations of the work being measured (the `vmad.f32`s), not counting
    /// set-up.
    pub lane_ops: u64,
}

fn program(ops: &[Op]) -> Program {
    let words: Vec<u64> = ops.iter().map(|&op| Inst::from(op).encode()).collect();
    Program::decode(&words, 0)
}

/// `iters` trips of five integer instructions, the last a taken branch: an add, a xor
/// and an add on a chain, and the loop counter.
pub fn scalar_loop(iters: u32) -> Workload {
    let s = SReg;
    let program = program(&[
        Op::Li {
            sd: s(1),
            imm: Bits(iters),
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
    Workload {
        program,
        instructions: 2 + 5 * u64::from(iters),
        lane_ops: 0,
    }
}

/// The native version of [`scalar_loop`]: the same chain of operations, the counter
/// kept opaque so the loop is not folded away.
pub fn scalar_loop_native(iters: u32) -> u32 {
    let (mut n, mut a, mut x, mut y) = (black_box(iters), 0u32, 0u32, 0u32);
    while n != 0 {
        a = black_box(a.wrapping_add(3));
        x ^= a;
        y = y.wrapping_add(x);
        n -= 1;
    }
    black_box(y)
}

/// `iters` trips of eight `vmad.f32` over four independent accumulators, plus the loop.
pub fn vmad_loop(iters: u32) -> Workload {
    let (s, v) = (SReg, VReg);
    let mut ops = vec![
        Op::Li {
            sd: s(1),
            imm: Bits(iters),
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
    Workload {
        program: program(&ops),
        instructions: 5 + 10 * u64::from(iters),
        lane_ops: 8 * LANES as u64 * u64::from(iters),
    }
}

/// The native version of [`vmad_loop`]: the same multiply-adds (rounded product, then
/// rounded sum) on four 64-lane accumulators.
pub fn vmad_loop_native(iters: u32) -> f32 {
    let mut acc = [[0f32; LANES]; 4];
    let (a, b) = (black_box([1.0001f32; LANES]), black_box([1.0001f32; LANES]));
    for _ in 0..black_box(iters) {
        for k in 0..8 {
            for ((d, &a), &b) in acc[k % 4].iter_mut().zip(&a).zip(&b) {
                *d += a * b;
            }
        }
        black_box(&mut acc);
    }
    acc.iter().flatten().sum()
}

/// Runs `w` once on `core`, as one invocation with no tensors.
pub fn run(core: &mut Core, w: &Workload) -> Result<(), Stop> {
    let launch = Launch {
        dims: [1; crate::DIMS],
        tensors: &[],
        scalars: &[],
    };
    let mut mem = FlatMemory::default();
    core.run(&w.program, &launch, [0; crate::DIMS], &mut mem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loops_retire_what_they_claim() {
        for (w, extra_lane_ops) in [(scalar_loop(10), 0), (vmad_loop(10), 128)] {
            let mut core = Core::new(0);
            run(&mut core, &w).unwrap();
            assert_eq!(core.counters.instructions, w.instructions);
            // The two vbcasts of the vector loop's set-up are not part of the work.
            assert_eq!(core.counters.lane_ops, w.lane_ops + extra_lane_ops);
        }
    }

    #[test]
    fn the_native_vmad_loop_computes_what_the_core_does() {
        let w = vmad_loop(3);
        let mut core = Core::new(0);
        run(&mut core, &w).unwrap();
        let lanes: f32 = (0..4).flat_map(|r| core.v[r]).map(f32::from_bits).sum();
        assert_eq!(lanes.to_bits(), vmad_loop_native(3).to_bits());
    }
}
