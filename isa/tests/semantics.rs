//! The reference semantics against independently computed values.
//!
//! Every instruction has a test named `op_<mnemonic>` (dots become underscores), and
//! [`every_opcode_has_a_test`] checks that against [`Opcode::ALL`], so a new table
//! entry without a test fails here. Expected values are plain host arithmetic written
//! in the test (or an independent algorithm, for the 16-bit formats and `exp`), never
//! the implementation's own helpers. Lane-wise instructions are property tests that
//! also check the guard (`@p1`, `@!p1`) and an in-place destination; every fault kind
//! has a test that checks its exact `pc`.

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use sagrada_isa::exec::{
    Core, Counters, Fault, FaultKind, FlatMemory, GlobalMemory, Launch, MemFault, Program, Stop,
    TensorDesc, partition, point_of,
};
use sagrada_isa::{
    Bits, CReg, DecodeError, Dim, Guard, Imm, Inst, LANES, Lane, Off, Op, Opcode, PReg,
    SCRATCH_BYTES, SReg, TReg, VReg,
};

type Lanes = [u32; LANES];

// ---- the machine under test ----

/// Where the preamble keeps the values it loads into vector and predicate registers.
const PRE: usize = SCRATCH_BYTES - 16 * 1024;
/// The global memory of the tests.
const MEM_BASE: u64 = 0x1_0000_0000;
const MEM_LEN: usize = 64 * 1024;

/// A machine state to start from, set up by a preamble of instructions (registers are
/// zeroed at every invocation) and by the scratchpad and memory contents.
#[derive(Clone)]
struct Setup {
    s: Vec<(u8, u32)>,
    v: Vec<(u8, Lanes)>,
    p: Vec<(u8, u64)>,
    scratch: Vec<(usize, Vec<u8>)>,
    tensors: Vec<TensorDesc>,
    scalars: Vec<u32>,
    dims: [u32; 4],
    point: [u32; 4],
    core_id: u32,
    mem: FlatMemory,
}

struct Outcome {
    core: Core,
    result: Result<(), Stop>,
    mem: FlatMemory,
    /// The pc of the first instruction of the body.
    start: u32,
}

impl Outcome {
    fn ok(self) -> Outcome {
        if let Err(e) = &self.result {
            panic!("the program stopped: {e}");
        }
        self
    }

    fn fault(&self) -> Fault {
        match self.result {
            Err(Stop::Fault(f)) => f,
            ref other => panic!("expected a fault, got {other:?}"),
        }
    }

    fn s(&self, r: u8) -> u32 {
        self.core.s[usize::from(r)]
    }

    fn v(&self, r: u8) -> Lanes {
        self.core.v[usize::from(r)]
    }

    fn f(&self, r: u8) -> f32 {
        f32::from_bits(self.s(r))
    }
}

impl Setup {
    fn new() -> Setup {
        Setup {
            s: vec![],
            v: vec![],
            p: vec![],
            scratch: vec![],
            tensors: vec![],
            scalars: vec![],
            dims: [1; 4],
            point: [0; 4],
            core_id: 0,
            mem: FlatMemory::new(MEM_BASE, MEM_LEN),
        }
    }

    fn s(mut self, r: u8, x: u32) -> Setup {
        self.s.push((r, x));
        self
    }

    fn v(mut self, r: u8, x: Lanes) -> Setup {
        self.v.push((r, x));
        self
    }

    fn p(mut self, r: u8, x: u64) -> Setup {
        self.p.push((r, x));
        self
    }

    fn scratch(mut self, at: usize, bytes: &[u8]) -> Setup {
        self.scratch.push((at, bytes.to_vec()));
        self
    }

    fn tensor(mut self, t: TensorDesc) -> Setup {
        self.tensors.push(t);
        self
    }

    /// The instructions that load the registers: predicates first (through v30, v31
    /// and s31, cleared afterwards), then vectors, then scalars.
    fn preamble(&self) -> Vec<Inst> {
        let mut out: Vec<Inst> = vec![];
        for (k, &(r, _)) in self.p.iter().enumerate() {
            out.extend(
                [
                    Op::Ldv {
                        vd: VReg(31),
                        sa: SReg(0),
                        imm: Imm((PRE + 8192 + 256 * k) as i32),
                    },
                    Op::Li {
                        sd: SReg(31),
                        imm: Bits(1),
                    },
                    Op::Vbcast {
                        vd: VReg(30),
                        sa: SReg(31),
                    },
                    Op::VcmpEqI32 {
                        pd: PReg(r),
                        va: VReg(31),
                        vb: VReg(30),
                    },
                ]
                .map(Inst::from),
            );
        }
        if !self.p.is_empty() {
            out.extend(
                [
                    Op::Vxor {
                        vd: VReg(30),
                        va: VReg(30),
                        vb: VReg(30),
                    },
                    Op::Vxor {
                        vd: VReg(31),
                        va: VReg(31),
                        vb: VReg(31),
                    },
                    Op::Li {
                        sd: SReg(31),
                        imm: Bits(0),
                    },
                ]
                .map(Inst::from),
            );
        }
        for (k, &(r, _)) in self.v.iter().enumerate() {
            out.push(
                Op::Ldv {
                    vd: VReg(r),
                    sa: SReg(0),
                    imm: Imm((PRE + 256 * k) as i32),
                }
                .into(),
            );
        }
        for &(r, x) in &self.s {
            out.push(
                Op::Li {
                    sd: SReg(r),
                    imm: Bits(x),
                }
                .into(),
            );
        }
        out
    }

    /// Runs the preamble, `body` and a `halt`.
    fn run(&self, body: &[Inst]) -> Outcome {
        let mut insts = self.preamble();
        let start = insts.len() as u32;
        insts.extend_from_slice(body);
        insts.push(Op::Halt {}.into());
        let words: Vec<u64> = insts.iter().map(Inst::encode).collect();
        let mut out = self.run_words(&words, 0);
        out.start = start;
        out
    }

    fn run_ops(&self, body: &[Op]) -> Outcome {
        let insts: Vec<Inst> = body.iter().map(|&op| op.into()).collect();
        self.run(&insts)
    }

    /// Runs `words` as they are, from `entry`, with the scratchpad set up.
    fn run_words(&self, words: &[u64], entry: u32) -> Outcome {
        let mut core = Core::new(self.core_id);
        core.start_launch();
        for (k, &(_, x)) in self.v.iter().enumerate() {
            write_lanes(&mut core.scratch, PRE + 256 * k, &x);
        }
        for (k, &(_, m)) in self.p.iter().enumerate() {
            let lanes: Lanes = std::array::from_fn(|i| (m >> i & 1) as u32);
            write_lanes(&mut core.scratch, PRE + 8192 + 256 * k, &lanes);
        }
        for (at, bytes) in &self.scratch {
            core.scratch[*at..*at + bytes.len()].copy_from_slice(bytes);
        }
        let program = Program::decode(words, entry);
        let launch = Launch {
            dims: self.dims,
            tensors: &self.tensors,
            scalars: &self.scalars,
        };
        let mut mem = self.mem.clone();
        let result = core.run(&program, &launch, self.point, &mut mem);
        Outcome {
            core,
            result,
            mem,
            start: 0,
        }
    }
}

fn write_lanes(bytes: &mut [u8], at: usize, x: &Lanes) {
    for (i, w) in x.iter().enumerate() {
        bytes[at + 4 * i..at + 4 * i + 4].copy_from_slice(&w.to_le_bytes());
    }
}

fn f(bits: u32) -> f32 {
    f32::from_bits(bits)
}

fn fb(x: f32) -> u32 {
    x.to_bits()
}

fn g(p: u8, negate: bool) -> Guard {
    Guard { p: PReg(p), negate }
}

/// How a result lane is compared with the expected one.
type Cmp = fn(u32, u32) -> bool;

/// Equal bits.
const BITS: Cmp = |got, want| got == want;
/// Equal bits, or both NaN: NaN payloads are unspecified.
const F32: Cmp = |got, want| got == want || (f(got).is_nan() && f(want).is_nan());
/// Two bf16 halves: equal bits, or both a quiet NaN of the same sign.
const BF16X2: Cmp = |got, want| {
    let nan = |h: u32| h & 0x7f80 == 0x7f80 && h & 0x7f != 0;
    (0..2).all(|k| {
        let (x, y) = ((got >> (16 * k)) & 0xffff, (want >> (16 * k)) & 0xffff);
        x == y || (nan(x) && nan(y) && x & 0x40 != 0 && x & 0x8000 == y & 0x8000)
    })
};
/// Two f16 halves: equal bits, or both a quiet NaN of the same sign.
const F16X2: Cmp = |got, want| {
    let nan = |h: u32| h & 0x7c00 == 0x7c00 && h & 0x3ff != 0;
    (0..2).all(|k| {
        let (x, y) = ((got >> (16 * k)) & 0xffff, (want >> (16 * k)) & 0xffff);
        x == y || (nan(x) && nan(y) && x & 0x200 != 0 && x & 0x8000 == y & 0x8000)
    })
};

// ---- the coverage check ----

#[test]
fn every_opcode_has_a_test() {
    // Whitespace removed, so that rustfmt's layout of the macro calls does not matter:
    // a test is `fn op_x(` or a macro call `name!(op_x, ...`.
    let src: String = include_str!("semantics.rs")
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let missing: Vec<_> = Opcode::ALL
        .iter()
        .map(|op| format!("op_{}", op.mnemonic().replace('.', "_")))
        .filter(|name| !src.contains(&format!("fn{name}(")) && !src.contains(&format!("!({name},")))
        .collect();
    assert!(
        missing.is_empty(),
        "instructions without a test: {missing:?}"
    );
}

// ---- property-test inputs ----

/// f32 values worth hitting on purpose.
const SPECIAL: &[u32] = &[
    0x0000_0000, // +0
    0x8000_0000, // -0
    0x3f80_0000, // 1
    0xbf80_0000, // -1
    0x7f80_0000, // +inf
    0xff80_0000, // -inf
    0x7fc0_0000, // quiet NaN
    0xffc0_0001, // negative quiet NaN with a payload
    0x7f80_0001, // signalling NaN
    0x0000_0001, // smallest subnormal
    0x807f_ffff, // largest negative subnormal
    0x0080_0000, // smallest normal
    0x7f7f_ffff, // largest finite
    0xff7f_ffff,
    0x4f00_0000, // 2^31
    0xcf00_0000, // -2^31
    0x4f80_0000, // 2^32
    0x477f_f000, // 65520: the f16 overflow tie
    0x477f_e000, // 65504: the largest f16
    0x3380_0000, // 2^-24: the smallest f16 subnormal
    0x3300_0000, // 2^-25: the tie below it
    0x3f80_8000, // 1 + 2^-8: a bf16 tie to even (down)
    0x3f81_8000, // 1 + 3·2^-8: a bf16 tie to even (up)
    0x42b1_70a4, // 88.72
    0xc2ae_a8f6, // -87.33
    0x7fff_ffff,
    0x8000_0001,
    0xffff_ffff,
];

fn word() -> impl Strategy<Value = u32> {
    prop_oneof![
        3 => any::<u32>(),
        2 => (-1.0e4f32..1.0e4).prop_map(f32::to_bits),
        1 => (-1.0f32..1.0).prop_map(f32::to_bits),
        2 => prop::sample::select(SPECIAL),
        2 => (-300i32..300).prop_map(|x| x as u32),
    ]
}

fn lanes() -> impl Strategy<Value = Lanes> {
    prop::collection::vec(word(), LANES).prop_map(|v| v.try_into().unwrap())
}

fn mask() -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => any::<u64>(),
        1 => Just(0u64),
        1 => Just(u64::MAX),
        1 => (0u32..64).prop_map(|n| (1u64 << n) - 1),
        1 => (0u32..64, 0u32..64).prop_map(|(a, b)| (u64::MAX >> a) << b),
    ]
}

/// The inputs of a lane-wise test: sources `a`, `b`, `c`, the destination's old
/// value, a scalar, the guard's predicate and a second predicate.
#[derive(Clone, Debug)]
struct Lw {
    a: Lanes,
    b: Lanes,
    c: Lanes,
    old: Lanes,
    s: u32,
    mask: u64,
    neg: bool,
    sel: u64,
}

fn lw() -> impl Strategy<Value = Lw> {
    (
        lanes(),
        lanes(),
        lanes(),
        lanes(),
        word(),
        mask(),
        any::<bool>(),
        mask(),
    )
        .prop_map(|(a, b, c, old, s, mask, neg, sel)| Lw {
            a,
            b,
            c,
            old,
            s,
            mask,
            neg,
            sel,
        })
}

fn cfg() -> ProptestConfig {
    ProptestConfig::with_cases(48)
}

/// The registers lane-wise tests use: sources v1, v2, v4, scalar s5, the guard p1,
/// a second predicate p2, the destination v3 (or v1, in place).
const VA: VReg = VReg(1);
const VB: VReg = VReg(2);
const VD: VReg = VReg(3);
const VC: VReg = VReg(4);
const SB: SReg = SReg(5);
const PA: PReg = PReg(2);

impl Lw {
    fn setup(&self) -> Setup {
        Setup::new()
            .v(1, self.a)
            .v(2, self.b)
            .v(3, self.old)
            .v(4, self.c)
            .s(5, self.s)
            .p(1, self.mask)
            .p(2, self.sel)
    }

    /// The guards to try, with their lanes.
    fn guards(&self) -> [(Guard, u64); 3] {
        [
            (Guard::ALWAYS, u64::MAX),
            (
                g(1, self.neg),
                if self.neg { !self.mask } else { self.mask },
            ),
            (g(0, true), 0),
        ]
    }
}

/// `make(vd)` writes `want(case, lane)` to the active lanes of `vd`, leaves the others,
/// counts the active lanes as lane-ops; also with `vd` = `va` (the old value then
/// being `a`).
fn check_lanewise(
    make: impl Fn(VReg) -> Op,
    want: impl Fn(&Lw, usize) -> u32,
    cmp: Cmp,
    case: &Lw,
) -> Result<(), TestCaseError> {
    let setup = case.setup();
    let base = setup.run(&[]).ok().core.counters.lane_ops;
    for vd in [VD, VA] {
        let mut c = case.clone();
        if vd == VA {
            c.old = c.a;
        }
        for (guard, active) in case.guards() {
            let out = setup.run(&[Inst::guarded(guard, make(vd))]).ok();
            let got = out.v(vd.0);
            for (i, &got) in got.iter().enumerate() {
                let want = if active >> i & 1 != 0 {
                    want(&c, i)
                } else {
                    c.old[i]
                };
                prop_assert!(
                    cmp(got, want),
                    "{guard} {vd}: lane {i}: got {got:#010x}, want {want:#010x}"
                );
            }
            prop_assert_eq!(
                out.core.counters.lane_ops - base,
                u64::from(active.count_ones())
            );
        }
    }
    Ok(())
}

/// `make(pd)` sets the active lanes of `pd` where `want(case, lane)`, leaves the others.
fn check_compare(
    make: impl Fn(PReg) -> Op,
    want: impl Fn(&Lw, usize) -> bool,
    case: &Lw,
) -> Result<(), TestCaseError> {
    let old = u64::from(case.c[0]) | u64::from(case.c[1]) << 32;
    let setup = case.setup().p(3, old);
    for (guard, active) in case.guards() {
        let out = setup.run(&[Inst::guarded(guard, make(PReg(3)))]).ok();
        let mut expect = old & !active;
        for i in 0..LANES {
            if active >> i & 1 != 0 && want(case, i) {
                expect |= 1 << i;
            }
        }
        prop_assert_eq!(out.core.p[3], expect, "{}", guard);
        prop_assert_eq!(out.core.p[0], u64::MAX);
    }
    Ok(())
}

/// `make(sd)` writes `want(a, active lanes)` to `sd`.
fn check_reduction(
    make: impl Fn(SReg) -> Op,
    want: impl Fn(&Lanes, u64) -> u32,
    cmp: Cmp,
    case: &Lw,
) -> Result<(), TestCaseError> {
    for (guard, active) in case.guards() {
        let out = case
            .setup()
            .run(&[Inst::guarded(guard, make(SReg(6)))])
            .ok();
        let want = want(&case.a, active);
        prop_assert!(
            cmp(out.s(6), want),
            "{guard}: got {:#010x}, want {want:#010x}",
            out.s(6)
        );
    }
    Ok(())
}

/// A lane-wise instruction against `want`, as a property test.
macro_rules! lanewise {
    ($name:ident, $cmp:expr, |$vd:ident| $op:expr, |$c:ident, $i:ident| $want:expr) => {
        proptest! {
            #![proptest_config(cfg())]
            #[test]
            #[allow(unused_variables)]
            fn $name(case in lw()) {
                check_lanewise(|$vd| $op, |$c: &Lw, $i: usize| $want, $cmp, &case)?;
            }
        }
    };
}

macro_rules! compare {
    ($name:ident, |$pd:ident| $op:expr, |$c:ident, $i:ident| $want:expr) => {
        proptest! {
            #![proptest_config(cfg())]
            #[test]
            #[allow(unused_variables)]
            fn $name(case in lw()) {
                check_compare(|$pd| $op, |$c: &Lw, $i: usize| $want, &case)?;
            }
        }
    };
}

macro_rules! reduction {
    ($name:ident, $cmp:expr, |$sd:ident| $op:expr, |$a:ident, $m:ident| $want:expr) => {
        proptest! {
            #![proptest_config(cfg())]
            #[test]
            #[allow(unused_variables)]
            fn $name(case in lw()) {
                check_reduction(|$sd| $op, |$a: &Lanes, $m: u64| $want, $cmp, &case)?;
            }
        }
    };
}

// ---- scalar instructions ----

/// Scalar tests read s1, s2, s3 and write s4.
const S1: SReg = SReg(1);
const S2: SReg = SReg(2);
const S3: SReg = SReg(3);

/// `make(sd, b)` (`b` the second operand, for instructions that take it as an
/// immediate) with s1..s3 = a, b, c writes `want` to `sd`, or faults
/// `DivideByZero` when `want` is `None`; with `sd` = s0 nothing changes.
fn check_scalar(
    make: impl Fn(SReg, u32) -> Op,
    [a, b, c]: [u32; 3],
    want: Option<u32>,
    cmp: Cmp,
) -> Result<(), TestCaseError> {
    let setup = Setup::new().s(1, a).s(2, b).s(3, c);
    let out = setup.run_ops(&[make(SReg(4), b)]);
    match want {
        Some(want) => {
            prop_assert!(out.result.is_ok(), "{:?}", out.result);
            prop_assert!(
                cmp(out.s(4), want),
                "a {a:#x} b {b:#x} c {c:#x}: got {:#x}, want {want:#x}",
                out.s(4)
            );
            let out = setup.run_ops(&[make(SReg(0), b)]).ok();
            prop_assert_eq!(out.s(0), 0);
            prop_assert_eq!(&out.core.s[1..5], &[a, b, c, 0]);
        }
        None => {
            prop_assert_eq!(
                out.fault(),
                Fault {
                    pc: out.start,
                    kind: FaultKind::DivideByZero
                }
            );
            prop_assert_eq!(out.s(4), 0);
        }
    }
    Ok(())
}

macro_rules! scalar {
    ($name:ident, $cmp:expr, |$sd:ident, $imm:ident| $op:expr, |$a:ident, $b:ident, $c:ident| $want:expr) => {
        proptest! {
            #![proptest_config(ProptestConfig::with_cases(128))]
            #[test]
            fn $name($a in word(), $b in word(), $c in word()) {
                #[allow(unused_variables)]
                let want: Option<u32> = $want;
                check_scalar(|$sd, $imm| $op, [$a, $b, $c], want, $cmp)?;
            }
        }
    };
}

fn si(x: u32) -> i32 {
    x as i32
}

scalar!(op_mov, BITS, |sd, _b| Op::Mov { sd, sa: S1 }, |a, b, c| {
    Some(a)
});
scalar!(
    op_add,
    BITS,
    |sd, _b| Op::Add { sd, sa: S1, sb: S2 },
    |a, b, c| Some(a.wrapping_add(b))
);
scalar!(
    op_sub,
    BITS,
    |sd, _b| Op::Sub { sd, sa: S1, sb: S2 },
    |a, b, c| Some(a.wrapping_sub(b))
);
scalar!(
    op_mul,
    BITS,
    |sd, _b| Op::Mul { sd, sa: S1, sb: S2 },
    |a, b, c| { Some((u64::from(a) * u64::from(b)) as u32) }
);
scalar!(
    op_div,
    BITS,
    |sd, _b| Op::Div { sd, sa: S1, sb: S2 },
    |a, b, c| match si(b) {
        0 => None,
        -1 if si(a) == i32::MIN => Some(a),
        _ => Some((i64::from(si(a)) / i64::from(si(b))) as u32),
    }
);
scalar!(
    op_divu,
    BITS,
    |sd, _b| Op::Divu { sd, sa: S1, sb: S2 },
    |a, b, c| { (b != 0).then(|| a / b) }
);
scalar!(
    op_rem,
    BITS,
    |sd, _b| Op::Rem { sd, sa: S1, sb: S2 },
    |a, b, c| match si(b) {
        0 => None,
        // The sign of the dividend, |result| < |divisor|.
        _ => Some((i64::from(si(a)) % i64::from(si(b))) as u32),
    }
);
scalar!(
    op_remu,
    BITS,
    |sd, _b| Op::Remu { sd, sa: S1, sb: S2 },
    |a, b, c| { (b != 0).then(|| a % b) }
);
scalar!(
    op_and,
    BITS,
    |sd, _b| Op::And { sd, sa: S1, sb: S2 },
    |a, b, c| Some(a & b)
);
scalar!(
    op_or,
    BITS,
    |sd, _b| Op::Or { sd, sa: S1, sb: S2 },
    |a, b, c| Some(a | b)
);
scalar!(
    op_xor,
    BITS,
    |sd, _b| Op::Xor { sd, sa: S1, sb: S2 },
    |a, b, c| Some(a ^ b)
);
scalar!(
    op_shl,
    BITS,
    |sd, _b| Op::Shl { sd, sa: S1, sb: S2 },
    |a, b, c| { Some((u64::from(a) << (b % 32)) as u32) }
);
scalar!(
    op_shr,
    BITS,
    |sd, _b| Op::Shr { sd, sa: S1, sb: S2 },
    |a, b, c| Some(a >> (b % 32))
);
scalar!(
    op_sra,
    BITS,
    |sd, _b| Op::Sra { sd, sa: S1, sb: S2 },
    |a, b, c| { Some((i64::from(si(a)) >> (b % 32)) as u32) }
);
scalar!(
    op_slt,
    BITS,
    |sd, _b| Op::Slt { sd, sa: S1, sb: S2 },
    |a, b, c| { Some(if si(a) < si(b) { 1 } else { 0 }) }
);
scalar!(
    op_sltu,
    BITS,
    |sd, _b| Op::Sltu { sd, sa: S1, sb: S2 },
    |a, b, c| { Some(if a < b { 1 } else { 0 }) }
);
scalar!(
    op_seq,
    BITS,
    |sd, _b| Op::Seq { sd, sa: S1, sb: S2 },
    |a, b, c| { Some(if a == b { 1 } else { 0 }) }
);
scalar!(
    op_min,
    BITS,
    |sd, _b| Op::Min { sd, sa: S1, sb: S2 },
    |a, b, c| { Some(if si(a) <= si(b) { a } else { b }) }
);
scalar!(
    op_max,
    BITS,
    |sd, _b| Op::Max { sd, sa: S1, sb: S2 },
    |a, b, c| { Some(if si(a) >= si(b) { a } else { b }) }
);
scalar!(
    op_addi,
    BITS,
    |sd, b| Op::Addi {
        sd,
        sa: S1,
        imm: Imm(b as i32)
    },
    |a, b, c| { Some((i64::from(a) + i64::from(si(b))) as u32) }
);
scalar!(
    op_muli,
    BITS,
    |sd, b| Op::Muli {
        sd,
        sa: S1,
        imm: Imm(b as i32)
    },
    |a, b, c| { Some((i64::from(a) * i64::from(si(b))) as u32) }
);
scalar!(
    op_andi,
    BITS,
    |sd, b| Op::Andi {
        sd,
        sa: S1,
        imm: Imm(b as i32)
    },
    |a, b, c| Some(a & b)
);
scalar!(
    op_ori,
    BITS,
    |sd, b| Op::Ori {
        sd,
        sa: S1,
        imm: Imm(b as i32)
    },
    |a, b, c| Some(a | b)
);
scalar!(
    op_xori,
    BITS,
    |sd, b| Op::Xori {
        sd,
        sa: S1,
        imm: Imm(b as i32)
    },
    |a, b, c| Some(a ^ b)
);
scalar!(
    op_shli,
    BITS,
    |sd, b| Op::Shli {
        sd,
        sa: S1,
        imm: Imm(b as i32)
    },
    |a, b, c| { Some((u64::from(a) << (b % 32)) as u32) }
);
scalar!(
    op_shri,
    BITS,
    |sd, b| Op::Shri {
        sd,
        sa: S1,
        imm: Imm(b as i32)
    },
    |a, b, c| { Some(a >> (b % 32)) }
);
scalar!(
    op_srai,
    BITS,
    |sd, b| Op::Srai {
        sd,
        sa: S1,
        imm: Imm(b as i32)
    },
    |a, b, c| { Some((i64::from(si(a)) >> (b % 32)) as u32) }
);
scalar!(
    op_slti,
    BITS,
    |sd, b| Op::Slti {
        sd,
        sa: S1,
        imm: Imm(b as i32)
    },
    |a, b, c| { Some(if si(a) < si(b) { 1 } else { 0 }) }
);

#[test]
fn op_li() {
    for x in [0, 1, 0x8000_0000, u32::MAX, fb(-2.5)] {
        let out = Setup::new()
            .run_ops(&[Op::Li {
                sd: SReg(7),
                imm: Bits(x),
            }])
            .ok();
        assert_eq!(out.s(7), x);
    }
    let out = Setup::new()
        .run_ops(&[Op::Li {
            sd: SReg(0),
            imm: Bits(5),
        }])
        .ok();
    assert_eq!(out.s(0), 0);
}

#[test]
fn s0_reads_zero_and_discards_writes() {
    let out = Setup::new()
        .s(1, 41)
        .run_ops(&[
            Op::Addi {
                sd: SReg(0),
                sa: S1,
                imm: Imm(1),
            },
            Op::Add {
                sd: SReg(2),
                sa: SReg(0),
                sb: S1,
            },
            Op::Mov {
                sd: SReg(3),
                sa: SReg(0),
            },
        ])
        .ok();
    assert_eq!((out.s(0), out.s(2), out.s(3)), (0, 41, 0));
}

/// The f32 reference: min with NaN yielding the other operand and -0 < +0.
fn ref_min(x: f32, y: f32) -> f32 {
    if x.is_nan() {
        y
    } else if y.is_nan() || x.total_cmp(&y).is_le() {
        x
    } else {
        y
    }
}

fn ref_max(x: f32, y: f32) -> f32 {
    if x.is_nan() {
        y
    } else if y.is_nan() || x.total_cmp(&y).is_ge() {
        x
    } else {
        y
    }
}

scalar!(
    op_fadd,
    F32,
    |sd, _b| Op::Fadd { sd, sa: S1, sb: S2 },
    |a, b, c| Some(fb(f(a) + f(b)))
);
scalar!(
    op_fsub,
    F32,
    |sd, _b| Op::Fsub { sd, sa: S1, sb: S2 },
    |a, b, c| Some(fb(f(a) - f(b)))
);
scalar!(
    op_fmul,
    F32,
    |sd, _b| Op::Fmul { sd, sa: S1, sb: S2 },
    |a, b, c| Some(fb(f(a) * f(b)))
);
scalar!(
    op_fdiv,
    F32,
    |sd, _b| Op::Fdiv { sd, sa: S1, sb: S2 },
    |a, b, c| Some(fb(f(a) / f(b)))
);
scalar!(
    op_fmin,
    F32,
    |sd, _b| Op::Fmin { sd, sa: S1, sb: S2 },
    |a, b, c| { Some(fb(ref_min(f(a), f(b)))) }
);
scalar!(
    op_fmax,
    F32,
    |sd, _b| Op::Fmax { sd, sa: S1, sb: S2 },
    |a, b, c| { Some(fb(ref_max(f(a), f(b)))) }
);
scalar!(
    op_mad,
    F32,
    |sd, _b| Op::Mad {
        sd,
        sa: S1,
        sb: S2,
        sc: S3
    },
    |a, b, c| {
        let product = f(a) * f(b);
        Some(fb(product + f(c)))
    }
);
scalar!(
    op_fsqrt,
    F32,
    |sd, _b| Op::Fsqrt { sd, sa: S1 },
    |a, b, c| Some(fb(ref_sqrt(f(a))))
);
scalar!(
    op_frsqrt,
    F32,
    |sd, _b| Op::Frsqrt { sd, sa: S1 },
    |a, b, c| { Some(fb(1.0 / ref_sqrt(f(a)))) }
);
scalar!(op_frcp, F32, |sd, _b| Op::Frcp { sd, sa: S1 }, |a, b, c| {
    Some(fb((1.0 / f64::from(f(a))) as f32))
});
scalar!(
    op_flt,
    BITS,
    |sd, _b| Op::Flt { sd, sa: S1, sb: S2 },
    |a, b, c| {
        Some(u32::from(
            f(a).partial_cmp(&f(b)) == Some(std::cmp::Ordering::Less),
        ))
    }
);
scalar!(
    op_fle,
    BITS,
    |sd, _b| Op::Fle { sd, sa: S1, sb: S2 },
    |a, b, c| {
        Some(u32::from(matches!(
            f(a).partial_cmp(&f(b)),
            Some(std::cmp::Ordering::Less | std::cmp::Ordering::Equal)
        )))
    }
);
scalar!(
    op_feq,
    BITS,
    |sd, _b| Op::Feq { sd, sa: S1, sb: S2 },
    |a, b, c| {
        Some(u32::from(
            f(a).partial_cmp(&f(b)) == Some(std::cmp::Ordering::Equal),
        ))
    }
);
scalar!(
    op_cvt_f32_i32,
    F32,
    |sd, _b| Op::CvtF32I32 { sd, sa: S1 },
    |a, b, c| {
        // i32 → f64 is exact; f64 → f32 then rounds once, to nearest even.
        Some(fb(f64::from(si(a)) as f32))
    }
);
scalar!(
    op_cvt_i32_f32,
    BITS,
    |sd, _b| Op::CvtI32F32 { sd, sa: S1 },
    |a, b, c| { Some(ref_f32_to_i32(f(a)) as u32) }
);

/// `sqrt` through f64: the f64 square root of an f32 rounds correctly to f32.
fn ref_sqrt(x: f32) -> f32 {
    f64::from(x).sqrt() as f32
}

fn ref_f32_to_i32(x: f32) -> i32 {
    if x.is_nan() {
        0
    } else if f64::from(x) >= 2_147_483_647.0 {
        i32::MAX
    } else if f64::from(x) <= -2_147_483_648.0 {
        i32::MIN
    } else {
        f64::from(x).trunc() as i64 as i32
    }
}

fn ref_f32_to_u32(x: f32) -> u32 {
    if x.is_nan() || x <= 0.0 {
        0
    } else if f64::from(x) >= 4_294_967_295.0 {
        u32::MAX
    } else {
        f64::from(x).trunc() as u64 as u32
    }
}

// ---- vector f32 ----

lanewise!(
    op_vadd_f32,
    F32,
    |vd| Op::VaddF32 { vd, va: VA, vb: VB },
    |c, i| { fb(f(c.a[i]) + f(c.b[i])) }
);
lanewise!(
    op_vsub_f32,
    F32,
    |vd| Op::VsubF32 { vd, va: VA, vb: VB },
    |c, i| { fb(f(c.a[i]) - f(c.b[i])) }
);
lanewise!(
    op_vmul_f32,
    F32,
    |vd| Op::VmulF32 { vd, va: VA, vb: VB },
    |c, i| { fb(f(c.a[i]) * f(c.b[i])) }
);
lanewise!(
    op_vdiv_f32,
    F32,
    |vd| Op::VdivF32 { vd, va: VA, vb: VB },
    |c, i| { fb(f(c.a[i]) / f(c.b[i])) }
);
lanewise!(
    op_vmin_f32,
    F32,
    |vd| Op::VminF32 { vd, va: VA, vb: VB },
    |c, i| { fb(ref_min(f(c.a[i]), f(c.b[i]))) }
);
lanewise!(
    op_vmax_f32,
    F32,
    |vd| Op::VmaxF32 { vd, va: VA, vb: VB },
    |c, i| { fb(ref_max(f(c.a[i]), f(c.b[i]))) }
);
lanewise!(
    op_vmad_f32,
    F32,
    |vd| Op::VmadF32 {
        vd,
        va: VA,
        vb: VB,
        vc: VC
    },
    |c, i| {
        let product = f(c.a[i]) * f(c.b[i]);
        fb(product + f(c.c[i]))
    }
);
lanewise!(
    op_vabs_f32,
    BITS,
    |vd| Op::VabsF32 { vd, va: VA },
    |c, i| c.a[i] & !(1 << 31)
);
lanewise!(
    op_vneg_f32,
    BITS,
    |vd| Op::VnegF32 { vd, va: VA },
    |c, i| c.a[i] ^ 1 << 31
);
lanewise!(
    op_vsqrt_f32,
    F32,
    |vd| Op::VsqrtF32 { vd, va: VA },
    |c, i| fb(ref_sqrt(f(c.a[i])))
);
lanewise!(
    op_vrsqrt_f32,
    F32,
    |vd| Op::VrsqrtF32 { vd, va: VA },
    |c, i| { fb(1.0 / ref_sqrt(f(c.a[i]))) }
);
lanewise!(op_vrcp_f32, F32, |vd| Op::VrcpF32 { vd, va: VA }, |c, i| {
    fb((1.0 / f64::from(f(c.a[i]))) as f32)
});
lanewise!(
    op_vadds_f32,
    F32,
    |vd| Op::VaddsF32 { vd, va: VA, sb: SB },
    |c, i| { fb(f(c.a[i]) + f(c.s)) }
);
lanewise!(
    op_vmuls_f32,
    F32,
    |vd| Op::VmulsF32 { vd, va: VA, sb: SB },
    |c, i| { fb(f(c.a[i]) * f(c.s)) }
);
lanewise!(
    op_vmads_f32,
    F32,
    |vd| Op::VmadsF32 { vd, va: VA, sb: SB },
    |c, i| {
        let product = f(c.a[i]) * f(c.s);
        fb(product + f(c.old[i]))
    }
);
lanewise!(
    op_vmadl_f32,
    F32,
    |vd| Op::VmadlF32 {
        vd,
        va: VA,
        vb: VB,
        lane: Lane(37)
    },
    |c, i| {
        let product = f(c.a[i]) * f(c.b[37]);
        fb(product + f(c.old[i]))
    }
);

#[test]
fn f32_min_and_max_order_signed_zeros_and_skip_nan() {
    let (p0, n0, nan, one) = (fb(0.0), fb(-0.0), fb(f32::NAN), fb(1.0));
    let pairs = [
        (p0, n0),
        (n0, p0),
        (nan, one),
        (one, nan),
        (nan, nan),
        (p0, p0),
        (n0, n0),
    ];
    // (min, max) of each pair.
    let want = [
        (n0, p0),
        (n0, p0),
        (one, one),
        (one, one),
        (nan, nan),
        (p0, p0),
        (n0, n0),
    ];
    let a: Lanes = std::array::from_fn(|i| pairs.get(i).map_or(0, |p| p.0));
    let b: Lanes = std::array::from_fn(|i| pairs.get(i).map_or(0, |p| p.1));
    for (k, &(x, y)) in pairs.iter().enumerate() {
        let out = Setup::new()
            .s(1, x)
            .s(2, y)
            .v(1, a)
            .v(2, b)
            .run_ops(&[
                Op::Fmin {
                    sd: SReg(4),
                    sa: S1,
                    sb: S2,
                },
                Op::Fmax {
                    sd: SReg(5),
                    sa: S1,
                    sb: S2,
                },
                Op::VminF32 {
                    vd: VReg(3),
                    va: VA,
                    vb: VB,
                },
                Op::VmaxF32 {
                    vd: VReg(4),
                    va: VA,
                    vb: VB,
                },
            ])
            .ok();
        let (lo, hi) = want[k];
        assert!(
            F32(out.s(4), lo) && F32(out.s(5), hi),
            "fmin/fmax of {x:#x}, {y:#x}"
        );
        assert!(
            F32(out.v(3)[k], lo) && F32(out.v(4)[k], hi),
            "vmin/vmax of {x:#x}, {y:#x}"
        );
    }
}

#[test]
fn mad_is_not_fused() {
    // (1 + 2^-12)^2 - (1 + 2^-11) = 2^-24 exactly, which a fused multiply-add keeps;
    // rounding the product first loses it.
    let x = 1.0 + 2f32.powi(-12);
    let y = -(1.0 + 2f32.powi(-11));
    let out = Setup::new()
        .s(1, fb(x))
        .s(2, fb(y))
        .run_ops(&[
            Op::Mad {
                sd: SReg(4),
                sa: S1,
                sb: S1,
                sc: S2,
            },
            Op::Vbcast {
                vd: VReg(1),
                sa: S1,
            },
            Op::Vbcast {
                vd: VReg(2),
                sa: S2,
            },
            Op::VmadF32 {
                vd: VReg(3),
                va: VReg(1),
                vb: VReg(1),
                vc: VReg(2),
            },
        ])
        .ok();
    assert_eq!(out.f(4), 0.0);
    assert_eq!(out.v(3), [0; LANES]);
}

/// The ulp of the f32 nearest to `exact`, subnormals included.
fn ulp(exact: f64) -> f64 {
    let e = (((exact.to_bits() >> 52) & 0x7ff) as i32 - 1023).max(-126);
    2f64.powi(e - 23)
}

fn exp_error(x: f32, y: f32) -> f64 {
    let exact = f64::from(x).exp();
    (f64::from(y) - exact).abs() / ulp(exact)
}

/// The bound the module documentation states (measured exhaustively: 0.990 ulp).
const EXP_MAX_ULP: f64 = 1.0;

#[test]
fn op_vexp_f32() {
    let lo = -87.33f32;
    let hi = 88.72f32;
    let inputs: Lanes = std::array::from_fn(|i| fb(lo + (hi - lo) * i as f32 / 63.0));
    let specials: Lanes = std::array::from_fn(|i| match i {
        0 => fb(f32::NAN),
        1 => fb(f32::INFINITY),
        2 => fb(f32::NEG_INFINITY),
        3 => fb(88.72),
        4 => fb(88.72) + 1,
        5 => fb(-87.33),
        6 => fb(-87.33) + 1,
        7 => fb(0.0),
        8 => fb(-0.0),
        9 => fb(1.0),
        10 => 1,
        _ => fb(-1000.0 + 31.0 * i as f32),
    });
    let out = Setup::new()
        .v(1, inputs)
        .v(2, specials)
        .v(5, [7; LANES])
        .p(1, 0x5555_5555_5555_5555)
        .run(&[
            Op::VexpF32 {
                vd: VReg(3),
                va: VReg(1),
            }
            .into(),
            Op::VexpF32 {
                vd: VReg(4),
                va: VReg(2),
            }
            .into(),
            Inst::guarded(
                g(1, false),
                Op::VexpF32 {
                    vd: VReg(5),
                    va: VReg(1),
                },
            ),
        ])
        .ok();
    for (i, &input) in inputs.iter().enumerate() {
        let (x, y) = (f(input), f(out.v(3)[i]));
        assert!(exp_error(x, y) <= EXP_MAX_ULP, "exp({x}) = {y}");
        assert_eq!(out.v(5)[i], if i % 2 == 0 { out.v(3)[i] } else { 7 });
    }
    let s = out.v(4);
    assert!(f(s[0]).is_nan());
    assert_eq!(f(s[1]), f32::INFINITY);
    assert_eq!(s[2], 0);
    assert!(f(s[3]).is_finite() && exp_error(88.72, f(s[3])) <= EXP_MAX_ULP);
    assert_eq!(f(s[4]), f32::INFINITY, "above 88.72");
    assert!(f(s[5]) > 0.0 && exp_error(-87.33, f(s[5])) <= EXP_MAX_ULP);
    assert_eq!(s[6], 0, "below -87.33");
    assert_eq!((f(s[7]), f(s[8]), f(s[9])), (1.0, 1.0, std::f32::consts::E));
    assert_eq!(f(s[10]), 1.0);
    for (i, &y) in s.iter().enumerate().skip(11) {
        let x = -1000.0 + 31.0 * i as f32;
        let want = if x > 88.72 {
            f32::INFINITY
        } else if x < -87.33 {
            0.0
        } else {
            f(y)
        };
        assert_eq!(f(y), want, "exp({x})");
        assert!(!(-87.33..=88.72).contains(&x) || exp_error(x, f(y)) <= EXP_MAX_ULP);
    }
}

#[test]
fn op_fexp() {
    // The same function as vexp.f32, lane for lane.
    let xs: Lanes = std::array::from_fn(|i| fb(-80.0 + 2.6 * i as f32));
    for (i, &x) in xs.iter().enumerate() {
        let out = Setup::new()
            .v(1, xs)
            .s(1, x)
            .run_ops(&[
                Op::Fexp {
                    sd: SReg(4),
                    sa: S1,
                },
                Op::VexpF32 {
                    vd: VReg(2),
                    va: VReg(1),
                },
            ])
            .ok();
        assert_eq!(out.s(4), out.v(2)[i]);
        assert!(exp_error(f(x), out.f(4)) <= EXP_MAX_ULP);
    }
}

/// Every 257th f32 of [-87.33, 88.72] (about 8.7 million inputs); `exp_exhaustive`
/// (ignored: a minute in release) tries them all.
#[test]
fn exp_error_sweep() {
    sweep_exp(257);
}

#[test]
#[ignore]
fn exp_exhaustive() {
    sweep_exp(1);
}

fn sweep_exp(step: u32) {
    // All f32 in the range, by bits: negative ones from -87.33 up to -0, then
    // positive from +0 to 88.72.
    let neg = (fb(-0.0)..=fb(-87.33)).step_by(step as usize);
    let pos = (0..=fb(88.72)).step_by(step as usize);
    let mut worst = (0.0f64, 0.0f32);
    let mut count = 0u64;
    for bits in neg.chain(pos) {
        let x = f(bits);
        let e = exp_error(x, sagrada_isa::exec::float::exp(x));
        if e > worst.0 {
            worst = (e, x);
        }
        count += 1;
    }
    println!(
        "exp: {count} inputs, largest error {:.4} ulp at {:e}",
        worst.0, worst.1
    );
    assert!(worst.0 <= EXP_MAX_ULP, "{} ulp at {:e}", worst.0, worst.1);
}

// ---- f32 reductions and compares ----

reduction!(
    op_vredsum_f32,
    F32,
    |sd| Op::VredsumF32 { sd, va: VA },
    |a, m| {
        // The documented tree, inactive lanes as -0.0.
        let mut x: Vec<f32> = (0..LANES)
            .map(|i| if m >> i & 1 != 0 { f(a[i]) } else { -0.0 })
            .collect();
        let mut h = 32;
        while h >= 1 {
            for i in 0..h {
                x[i] += x[i + h];
            }
            h /= 2;
        }
        fb(x[0])
    }
);

/// The largest (`max`) or smallest active lane, NaN lanes ignored unless all are NaN.
fn ref_extreme(a: &Lanes, m: u64, max: bool) -> u32 {
    let active: Vec<f32> = (0..LANES)
        .filter(|i| m >> i & 1 != 0)
        .map(|i| f(a[i]))
        .collect();
    let numbers: Vec<f32> = active.iter().copied().filter(|x| !x.is_nan()).collect();
    if active.is_empty() {
        return fb(if max {
            f32::NEG_INFINITY
        } else {
            f32::INFINITY
        });
    }
    if numbers.is_empty() {
        return fb(f32::NAN);
    }
    let pick = numbers.iter().copied().reduce(|x, y| {
        let ord = x.total_cmp(&y);
        if ord.is_ge() == max { x } else { y }
    });
    fb(pick.unwrap())
}

reduction!(
    op_vredmax_f32,
    F32,
    |sd| Op::VredmaxF32 { sd, va: VA },
    |a, m| { ref_extreme(a, m, true) }
);
reduction!(
    op_vredmin_f32,
    F32,
    |sd| Op::VredminF32 { sd, va: VA },
    |a, m| { ref_extreme(a, m, false) }
);

#[test]
fn f32_reductions_edge_cases() {
    let nan = fb(f32::NAN);
    let mut a = [nan; LANES];
    a[5] = fb(-3.0);
    a[9] = fb(2.0);
    let run = |a: Lanes, m: u64| {
        Setup::new()
            .v(1, a)
            .p(1, m)
            .run(
                &[
                    Op::VredmaxF32 {
                        sd: SReg(4),
                        va: VA,
                    },
                    Op::VredminF32 {
                        sd: SReg(5),
                        va: VA,
                    },
                    Op::VredsumF32 {
                        sd: SReg(6),
                        va: VA,
                    },
                ]
                .map(|op| Inst::guarded(g(1, false), op)),
            )
            .ok()
    };
    let out = run(a, u64::MAX);
    assert_eq!((out.f(4), out.f(5)), (2.0, -3.0), "NaN lanes are ignored");
    assert!(out.f(6).is_nan());
    let out = run(a, !((1 << 5) | (1 << 9)));
    assert!(
        out.f(4).is_nan() && out.f(5).is_nan(),
        "all active lanes NaN"
    );
    let out = run(a, 0);
    assert_eq!((out.f(4), out.f(5)), (f32::NEG_INFINITY, f32::INFINITY));
    assert_eq!(out.s(6), fb(-0.0), "the empty sum is -0");
    // Signed zeros: -0 < +0 in both directions.
    let mut z = [fb(-0.0); LANES];
    z[7] = fb(0.0);
    let out = run(z, u64::MAX);
    assert_eq!((out.s(4), out.s(5), out.s(6)), (fb(0.0), fb(-0.0), fb(0.0)));
    // The tree order is not the sequential one: 1e8 + 1 + ... loses differently.
    let mut x = [fb(1.0); LANES];
    x[0] = fb(1.0e8);
    let out = run(x, u64::MAX);
    let seq = (0..LANES).fold(0.0f32, |s, i| s + f(x[i]));
    assert_eq!(out.f(6), 100_000_056.0);
    assert_ne!(out.f(6), seq);
}

compare!(
    op_vcmp_eq_f32,
    |pd| Op::VcmpEqF32 { pd, va: VA, vb: VB },
    |c, i| { f(c.a[i]).partial_cmp(&f(c.b[i])) == Some(std::cmp::Ordering::Equal) }
);
compare!(
    op_vcmp_ne_f32,
    |pd| Op::VcmpNeF32 { pd, va: VA, vb: VB },
    |c, i| { f(c.a[i]).partial_cmp(&f(c.b[i])) != Some(std::cmp::Ordering::Equal) }
);
compare!(
    op_vcmp_lt_f32,
    |pd| Op::VcmpLtF32 { pd, va: VA, vb: VB },
    |c, i| { f(c.a[i]).partial_cmp(&f(c.b[i])) == Some(std::cmp::Ordering::Less) }
);
compare!(
    op_vcmp_le_f32,
    |pd| Op::VcmpLeF32 { pd, va: VA, vb: VB },
    |c, i| {
        matches!(
            f(c.a[i]).partial_cmp(&f(c.b[i])),
            Some(std::cmp::Ordering::Less | std::cmp::Ordering::Equal)
        )
    }
);

// ---- conversions ----

lanewise!(
    op_vcvt_f32_i32,
    F32,
    |vd| Op::VcvtF32I32 { vd, va: VA },
    |c, i| { fb(f64::from(si(c.a[i])) as f32) }
);
lanewise!(
    op_vcvt_i32_f32,
    BITS,
    |vd| Op::VcvtI32F32 { vd, va: VA },
    |c, i| { ref_f32_to_i32(f(c.a[i])) as u32 }
);
lanewise!(
    op_vcvt_f32_u32,
    F32,
    |vd| Op::VcvtF32U32 { vd, va: VA },
    |c, i| { fb(f64::from(c.a[i]) as f32) }
);
lanewise!(
    op_vcvt_u32_f32,
    BITS,
    |vd| Op::VcvtU32F32 { vd, va: VA },
    |c, i| { ref_f32_to_u32(f(c.a[i])) }
);

/// Nearest-even rounding of `x` to a 16-bit format whose non-negative codes
/// `0..=inf_code` have the values `value` (increasing; the infinity code stands for
/// the next power of two, so that overflow rounds as IEEE 754 says). NaN gives the
/// quiet NaN `nan` with the sign of `x`.
fn ref_round16(x: f32, inf_code: u16, nan: u16, value: impl Fn(u16) -> f64) -> u16 {
    let sign = if x.is_sign_negative() { 0x8000 } else { 0 };
    if x.is_nan() {
        return sign | nan;
    }
    let a = f64::from(x).abs();
    if a >= value(inf_code) {
        return sign | inf_code;
    }
    // The largest code not above a.
    let (mut lo, mut hi) = (0u16, inf_code);
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if value(mid) <= a { lo = mid } else { hi = mid }
    }
    let (dl, dh) = (a - value(lo), value(hi) - a);
    sign | if dl < dh || (dl == dh && lo % 2 == 0) {
        lo
    } else {
        hi
    }
}

fn ref_bf16_value(h: u16) -> f64 {
    if h & 0x7fff == 0x7f80 {
        2f64.powi(128)
    } else {
        f64::from(f(u32::from(h) << 16))
    }
}

fn ref_f16_value(h: u16) -> f64 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let e = i32::from((h >> 10) & 0x1f);
    let m = f64::from(h & 0x3ff);
    sign * match e {
        0x1f if m == 0.0 => 2f64.powi(16),
        0x1f => f64::NAN,
        0 => m * 2f64.powi(-24),
        _ => (1024.0 + m) * 2f64.powi(e - 25),
    }
}

fn ref_to_bf16(x: f32) -> u16 {
    ref_round16(x, 0x7f80, 0x7fc0, ref_bf16_value)
}

fn ref_to_f16(x: f32) -> u16 {
    ref_round16(x, 0x7c00, 0x7e00, ref_f16_value)
}

/// The f32 of a bf16 or f16 code, exact (infinities and NaN as such).
fn ref_widen(h: u16, f16: bool) -> u32 {
    let v = if f16 {
        ref_f16_value(h)
    } else {
        ref_bf16_value(h)
    };
    let is_inf = if f16 {
        h & 0x7fff == 0x7c00
    } else {
        h & 0x7fff == 0x7f80
    };
    let sign = if h & 0x8000 != 0 { -1.0f32 } else { 1.0 };
    fb(if is_inf {
        sign * f32::INFINITY
    } else {
        v as f32
    })
}

/// Element `e` of the packed vector `x`.
fn element(x: &Lanes, e: usize) -> u16 {
    (x[e / 2] >> (16 * (e % 2))) as u16
}

lanewise!(
    op_vunpk_lo_bf16,
    F32,
    |vd| Op::VunpkLoBf16 { vd, va: VA },
    |c, i| { ref_widen(element(&c.a, i), false) }
);
lanewise!(
    op_vunpk_hi_bf16,
    F32,
    |vd| Op::VunpkHiBf16 { vd, va: VA },
    |c, i| { ref_widen(element(&c.a, 64 + i), false) }
);
lanewise!(
    op_vunpk_lo_f16,
    F32,
    |vd| Op::VunpkLoF16 { vd, va: VA },
    |c, i| { ref_widen(element(&c.a, i), true) }
);
lanewise!(
    op_vunpk_hi_f16,
    F32,
    |vd| Op::VunpkHiF16 { vd, va: VA },
    |c, i| { ref_widen(element(&c.a, 64 + i), true) }
);

/// Lane `i` of a pack of `a` (elements 0..=63) and `b` (64..=127).
fn ref_pack(c: &Lw, i: usize, round: fn(f32) -> u16) -> u32 {
    let src = |e: usize| if e < 64 { f(c.a[e]) } else { f(c.b[e - 64]) };
    u32::from(round(src(2 * i))) | u32::from(round(src(2 * i + 1))) << 16
}

lanewise!(
    op_vpack_bf16,
    BF16X2,
    |vd| Op::VpackBf16 { vd, va: VA, vb: VB },
    |c, i| { ref_pack(c, i, ref_to_bf16) }
);
lanewise!(
    op_vpack_f16,
    F16X2,
    |vd| Op::VpackF16 { vd, va: VA, vb: VB },
    |c, i| { ref_pack(c, i, ref_to_f16) }
);

#[test]
fn f16_and_bf16_edge_cases() {
    let mut a = [0u32; LANES];
    let cases: &[(f32, u16, u16)] = &[
        // (value, f16, bf16)
        (1.0, 0x3c00, 0x3f80),
        (-2.0, 0xc000, 0xc000),
        (65504.0, 0x7bff, 0x4780),
        (65519.996, 0x7bff, 0x4780),
        (65520.0, 0x7c00, 0x4780),
        (2f32.powi(-24), 0x0001, 0x3380),
        (2f32.powi(-25), 0x0000, 0x3300),
        (3.0 * 2f32.powi(-25), 0x0002, 0x33c0),
        (2f32.powi(-14), 0x0400, 0x3880),
        (f32::MAX, 0x7c00, 0x7f80),
        (f32::INFINITY, 0x7c00, 0x7f80),
        (-0.0, 0x8000, 0x8000),
        (1.0 + 2f32.powi(-8), 0x3c04, 0x3f80),
        (1.0 + 3.0 * 2f32.powi(-8), 0x3c0c, 0x3f82),
    ];
    for (i, &(x, _, _)) in cases.iter().enumerate() {
        a[i] = fb(x);
    }
    let out = Setup::new()
        .v(1, a)
        .run_ops(&[
            Op::VpackF16 {
                vd: VReg(3),
                va: VA,
                vb: VA,
            },
            Op::VpackBf16 {
                vd: VReg(4),
                va: VA,
                vb: VA,
            },
            Op::VunpkLoF16 {
                vd: VReg(5),
                va: VReg(3),
            },
            Op::VunpkLoBf16 {
                vd: VReg(6),
                va: VReg(4),
            },
        ])
        .ok();
    for (i, &(x, h, bh)) in cases.iter().enumerate() {
        assert_eq!(element(&out.v(3), i), h, "f16 of {x}");
        assert_eq!(element(&out.v(4), i), bh, "bf16 of {x}");
        assert_eq!(out.v(5)[i], ref_widen(h, true), "f16 {h:#x} widened");
        assert_eq!(out.v(6)[i], ref_widen(bh, false), "bf16 {bh:#x} widened");
    }
    // Every f16 and bf16 value widens exactly.
    for h in (0..=u16::MAX).step_by(LANES * 2) {
        let packed: Lanes = std::array::from_fn(|i| {
            u32::from(h + 2 * i as u16) | u32::from(h + 2 * i as u16 + 1) << 16
        });
        let out = Setup::new()
            .v(1, packed)
            .run_ops(&[
                Op::VunpkLoF16 {
                    vd: VReg(3),
                    va: VA,
                },
                Op::VunpkHiF16 {
                    vd: VReg(4),
                    va: VA,
                },
                Op::VunpkLoBf16 {
                    vd: VReg(5),
                    va: VA,
                },
                Op::VunpkHiBf16 {
                    vd: VReg(6),
                    va: VA,
                },
            ])
            .ok();
        for i in 0..LANES {
            for (r, e, f16) in [
                (3, i, true),
                (4, 64 + i, true),
                (5, i, false),
                (6, 64 + i, false),
            ] {
                let code = element(&packed, e);
                assert!(F32(out.v(r)[i], ref_widen(code, f16)), "{code:#06x}");
            }
        }
    }
}

// ---- vector integer ----

lanewise!(
    op_vadd_i32,
    BITS,
    |vd| Op::VaddI32 { vd, va: VA, vb: VB },
    |c, i| { (u64::from(c.a[i]) + u64::from(c.b[i])) as u32 }
);
lanewise!(
    op_vsub_i32,
    BITS,
    |vd| Op::VsubI32 { vd, va: VA, vb: VB },
    |c, i| { (i64::from(c.a[i]) - i64::from(c.b[i])) as u32 }
);
lanewise!(
    op_vmul_i32,
    BITS,
    |vd| Op::VmulI32 { vd, va: VA, vb: VB },
    |c, i| { (u64::from(c.a[i]) * u64::from(c.b[i])) as u32 }
);
lanewise!(
    op_vmin_i32,
    BITS,
    |vd| Op::VminI32 { vd, va: VA, vb: VB },
    |c, i| {
        if si(c.a[i]) <= si(c.b[i]) {
            c.a[i]
        } else {
            c.b[i]
        }
    }
);
lanewise!(
    op_vmax_i32,
    BITS,
    |vd| Op::VmaxI32 { vd, va: VA, vb: VB },
    |c, i| {
        if si(c.a[i]) >= si(c.b[i]) {
            c.a[i]
        } else {
            c.b[i]
        }
    }
);
lanewise!(
    op_vmin_u32,
    BITS,
    |vd| Op::VminU32 { vd, va: VA, vb: VB },
    |c, i| { if c.a[i] <= c.b[i] { c.a[i] } else { c.b[i] } }
);
lanewise!(
    op_vmax_u32,
    BITS,
    |vd| Op::VmaxU32 { vd, va: VA, vb: VB },
    |c, i| { if c.a[i] >= c.b[i] { c.a[i] } else { c.b[i] } }
);
lanewise!(
    op_vand,
    BITS,
    |vd| Op::Vand { vd, va: VA, vb: VB },
    |c, i| c.a[i] & c.b[i]
);
lanewise!(op_vor, BITS, |vd| Op::Vor { vd, va: VA, vb: VB }, |c, i| c
    .a[i]
    | c.b[i]);
lanewise!(
    op_vxor,
    BITS,
    |vd| Op::Vxor { vd, va: VA, vb: VB },
    |c, i| c.a[i] ^ c.b[i]
);
lanewise!(
    op_vshl,
    BITS,
    |vd| Op::Vshl { vd, va: VA, vb: VB },
    |c, i| { (u64::from(c.a[i]) << (c.b[i] % 32)) as u32 }
);
lanewise!(
    op_vshr,
    BITS,
    |vd| Op::Vshr { vd, va: VA, vb: VB },
    |c, i| c.a[i] >> (c.b[i] % 32)
);
lanewise!(
    op_vsra,
    BITS,
    |vd| Op::Vsra { vd, va: VA, vb: VB },
    |c, i| { (i64::from(si(c.a[i])) >> (c.b[i] % 32)) as u32 }
);
lanewise!(
    op_vadds_i32,
    BITS,
    |vd| Op::VaddsI32 { vd, va: VA, sb: SB },
    |c, i| { (u64::from(c.a[i]) + u64::from(c.s)) as u32 }
);

fn active(a: &Lanes, m: u64) -> impl Iterator<Item = u32> + '_ {
    (0..LANES).filter(move |i| m >> i & 1 != 0).map(|i| a[i])
}

reduction!(
    op_vredsum_i32,
    BITS,
    |sd| Op::VredsumI32 { sd, va: VA },
    |a, m| { active(a, m).map(u64::from).sum::<u64>() as u32 }
);
reduction!(
    op_vredmax_i32,
    BITS,
    |sd| Op::VredmaxI32 { sd, va: VA },
    |a, m| { active(a, m).map(si).max().unwrap_or(i32::MIN) as u32 }
);
reduction!(
    op_vredmin_i32,
    BITS,
    |sd| Op::VredminI32 { sd, va: VA },
    |a, m| { active(a, m).map(si).min().unwrap_or(i32::MAX) as u32 }
);

compare!(
    op_vcmp_eq_i32,
    |pd| Op::VcmpEqI32 { pd, va: VA, vb: VB },
    |c, i| c.a[i] == c.b[i]
);
compare!(
    op_vcmp_lt_i32,
    |pd| Op::VcmpLtI32 { pd, va: VA, vb: VB },
    |c, i| { si(c.a[i]) < si(c.b[i]) }
);
compare!(
    op_vcmp_le_i32,
    |pd| Op::VcmpLeI32 { pd, va: VA, vb: VB },
    |c, i| { si(c.a[i]) <= si(c.b[i]) }
);
compare!(
    op_vcmp_lt_u32,
    |pd| Op::VcmpLtU32 { pd, va: VA, vb: VB },
    |c, i| c.a[i] < c.b[i]
);

#[test]
fn p0_reads_all_ones_and_discards_writes() {
    let out = Setup::new()
        .v(1, [1; LANES])
        .run_ops(&[
            Op::VcmpLtI32 {
                pd: PReg(0),
                va: VA,
                vb: VA,
            },
            Op::Pfirst {
                pd: PReg(0),
                sa: SReg(0),
            },
            Op::Pxor {
                pd: PReg(0),
                pa: PReg(0),
                pb: PReg(0),
            },
            Op::Pcnt {
                sd: SReg(4),
                pa: PReg(0),
            },
            Op::Pand {
                pd: PReg(2),
                pa: PReg(0),
                pb: PReg(0),
            },
            Op::VaddI32 {
                vd: VReg(3),
                va: VA,
                vb: VA,
            },
        ])
        .ok();
    assert_eq!(out.core.p[0], u64::MAX);
    assert_eq!(out.s(4), 64);
    assert_eq!(out.core.p[2], u64::MAX);
    assert_eq!(out.v(3), [2; LANES], "@p0 is every lane");
}

// ---- lane movement ----

lanewise!(op_vmov, BITS, |vd| Op::Vmov { vd, va: VA }, |c, i| c.a[i]);
lanewise!(op_vbcast, BITS, |vd| Op::Vbcast { vd, sa: SB }, |c, i| c.s);
lanewise!(
    op_vperm,
    BITS,
    |vd| Op::Vperm { vd, va: VA, vb: VB },
    |c, i| { c.a[(c.b[i] % 64) as usize] }
);
lanewise!(
    op_vrot,
    BITS,
    |vd| Op::Vrot { vd, va: VA, sb: SB },
    |c, i| { c.a[((i as u64 + u64::from(c.s)) % 64) as usize] }
);
lanewise!(op_viota, BITS, |vd| Op::Viota { vd }, |c, i| i as u32);
lanewise!(
    op_vsel,
    BITS,
    |vd| Op::Vsel {
        vd,
        pa: PA,
        va: VA,
        vb: VB
    },
    |c, i| { if c.sel >> i & 1 != 0 { c.a[i] } else { c.b[i] } }
);

proptest! {
    #![proptest_config(cfg())]

    #[test]
    fn op_vext(a in lanes(), k in word()) {
        let out = Setup::new()
            .v(1, a)
            .s(2, k)
            .run_ops(&[Op::Vext { sd: SReg(4), va: VA, sb: S2 }])
            .ok();
        prop_assert_eq!(out.s(4), a[(k % 64) as usize]);
    }

    #[test]
    fn op_vins(a in lanes(), x in word(), k in word()) {
        let out = Setup::new()
            .v(1, a)
            .s(1, x)
            .s(2, k)
            .run_ops(&[Op::Vins { vd: VA, sa: S1, sb: S2 }])
            .ok();
        let mut want = a;
        want[(k % 64) as usize] = x;
        prop_assert_eq!(out.v(1), want);
    }
}

// ---- predicates ----

proptest! {
    #![proptest_config(cfg())]

    #[test]
    fn op_pfirst(n in prop_oneof![0u32..=70, any::<u32>()]) {
        let out = Setup::new().s(1, n).run_ops(&[Op::Pfirst { pd: PReg(3), sa: S1 }]).ok();
        let want = (0..64).filter(|&i| i < n).fold(0u64, |m, i| m | 1 << i);
        prop_assert_eq!(out.core.p[3], want);
    }

    #[test]
    fn op_pand(x in mask(), y in mask()) {
        let out = Setup::new().p(1, x).p(2, y)
            .run_ops(&[Op::Pand { pd: PReg(3), pa: PReg(1), pb: PReg(2) }]).ok();
        prop_assert_eq!(out.core.p[3], x & y);
    }

    #[test]
    fn op_por(x in mask(), y in mask()) {
        let out = Setup::new().p(1, x).p(2, y)
            .run_ops(&[Op::Por { pd: PReg(3), pa: PReg(1), pb: PReg(2) }]).ok();
        prop_assert_eq!(out.core.p[3], x | y);
    }

    #[test]
    fn op_pxor(x in mask(), y in mask()) {
        let out = Setup::new().p(1, x).p(2, y)
            .run_ops(&[Op::Pxor { pd: PReg(3), pa: PReg(1), pb: PReg(2) }]).ok();
        prop_assert_eq!(out.core.p[3], x ^ y);
    }

    #[test]
    fn op_pnot(x in mask()) {
        let out = Setup::new().p(1, x)
            .run_ops(&[Op::Pnot { pd: PReg(3), pa: PReg(1) }, Op::Pnot { pd: PReg(4), pa: PReg(0) }])
            .ok();
        prop_assert_eq!(out.core.p[3], !x);
        prop_assert_eq!(out.core.p[4], 0);
    }

    #[test]
    fn op_pcnt(x in mask()) {
        let out = Setup::new().p(1, x).run_ops(&[Op::Pcnt { sd: SReg(4), pa: PReg(1) }]).ok();
        prop_assert_eq!(out.s(4), (0..64).filter(|i| x >> i & 1 != 0).count() as u32);
    }
}

// ---- control ----

fn branch_taken(make: impl Fn(SReg, SReg, Off) -> Op, a: u32, b: u32) -> bool {
    // Taken, the branch skips the `li s4, 1`.
    let out = Setup::new()
        .s(1, a)
        .s(2, b)
        .run_ops(&[
            make(S1, S2, Off(2)),
            Op::Li {
                sd: SReg(4),
                imm: Bits(1),
            },
        ])
        .ok();
    out.s(4) == 0
}

macro_rules! branch {
    ($name:ident, $op:ident, |$a:ident, $b:ident| $taken:expr) => {
        proptest! {
            #![proptest_config(cfg())]
            #[test]
            fn $name($a in word(), $b in word()) {
                let make = |sa, sb, target| Op::$op { sa, sb, target };
                prop_assert_eq!(branch_taken(make, $a, $b), $taken);
                prop_assert_eq!(branch_taken(make, $a, $a), { let $b = $a; $taken });
            }
        }
    };
}

branch!(op_beq, Beq, |a, b| a == b);
branch!(op_bne, Bne, |a, b| a != b);
branch!(op_blt, Blt, |a, b| i64::from(si(a)) < i64::from(si(b)));
branch!(op_bge, Bge, |a, b| i64::from(si(a)) >= i64::from(si(b)));
branch!(op_bltu, Bltu, |a, b| u64::from(a) < u64::from(b));
branch!(op_bgeu, Bgeu, |a, b| u64::from(a) >= u64::from(b));

#[test]
fn op_nop() {
    let out = Setup::new().run_ops(&[Op::Nop {}, Op::Nop {}]).ok();
    assert_eq!(out.core.s, [0; 32]);
    assert_eq!(out.core.counters.instructions, 3);
}

#[test]
fn op_halt() {
    let out = Setup::new()
        .run_ops(&[
            Op::Halt {},
            Op::Li {
                sd: SReg(4),
                imm: Bits(1),
            },
        ])
        .ok();
    assert_eq!(out.s(4), 0);
    assert_eq!(out.core.counters.invocations, 1);
    assert_eq!(out.core.counters.instructions, 1);
}

#[test]
fn op_j() {
    // A loop: s4 counts to 10 with a backward jump, a forward jump skips a marker.
    let out = Setup::new()
        .s(1, 10)
        .run_ops(&[
            Op::Addi {
                sd: SReg(4),
                sa: SReg(4),
                imm: Imm(1),
            },
            Op::Beq {
                sa: SReg(4),
                sb: S1,
                target: Off(2),
            },
            Op::J { target: Off(-2) },
            Op::J { target: Off(2) },
            Op::Li {
                sd: SReg(5),
                imm: Bits(1),
            },
        ])
        .ok();
    assert_eq!((out.s(4), out.s(5)), (10, 0));
    // preamble (1) + 10 addi + 10 beq + 9 j + j + halt
    assert_eq!(out.core.counters.instructions, 1 + 10 + 10 + 9 + 1 + 1);
}

// ---- the launch ----

#[test]
fn op_idx() {
    let mut setup = Setup::new();
    setup.dims = [5, 6, 7, 8];
    setup.point = [4, 3, 2, 1];
    let ops: Vec<Op> = (0..4)
        .map(|d| Op::Idx {
            sd: SReg(4 + d),
            dim: Dim(d),
        })
        .collect();
    let out = setup.run_ops(&ops).ok();
    assert_eq!(&out.core.s[4..8], &[4, 3, 2, 1]);
}

#[test]
fn op_idxn() {
    let mut setup = Setup::new();
    setup.dims = [5, 6, 7, 8];
    let ops: Vec<Op> = (0..4)
        .map(|d| Op::Idxn {
            sd: SReg(4 + d),
            dim: Dim(d),
        })
        .collect();
    let out = setup.run_ops(&ops).ok();
    assert_eq!(&out.core.s[4..8], &[5, 6, 7, 8]);
}

#[test]
fn op_coreid() {
    let mut setup = Setup::new();
    setup.core_id = 6;
    let out = setup.run_ops(&[Op::Coreid { sd: SReg(4) }]).ok();
    assert_eq!(out.s(4), 6);
}

#[test]
fn op_ldarg() {
    let mut setup = Setup::new();
    setup.scalars = vec![11, 22, 0xdead_beef];
    let out = setup
        .run_ops(&[
            Op::Ldarg {
                sd: SReg(4),
                imm: Imm(0),
            },
            Op::Ldarg {
                sd: SReg(5),
                imm: Imm(2),
            },
        ])
        .ok();
    assert_eq!((out.s(4), out.s(5)), (11, 0xdead_beef));
}

#[test]
fn op_tdim() {
    let setup = Setup::new()
        .tensor(TensorDesc {
            dims: [3, 4, 5, 6],
            elem_size: 4,
            ..Default::default()
        })
        .tensor(TensorDesc {
            dims: [7, 1, 1, 1],
            elem_size: 2,
            ..Default::default()
        });
    let mut ops: Vec<Op> = (0..4)
        .map(|d| Op::Tdim {
            sd: SReg(4 + d),
            t: TReg(0),
            dim: Dim(d),
        })
        .collect();
    ops.push(Op::Tdim {
        sd: SReg(8),
        t: TReg(1),
        dim: Dim(0),
    });
    let out = setup.run_ops(&ops).ok();
    assert_eq!(&out.core.s[4..9], &[3, 4, 5, 6, 7]);
}

// ---- scratchpad ----

#[test]
fn op_lds() {
    let out = Setup::new()
        .scratch(1000, &0x1234_5678u32.to_le_bytes())
        .scratch(SCRATCH_BYTES - 4, &[1, 2, 3, 4])
        .s(1, 1004)
        .s(2, SCRATCH_BYTES as u32)
        .run_ops(&[
            Op::Lds {
                sd: SReg(4),
                sa: S1,
                imm: Imm(-4),
            },
            Op::Lds {
                sd: SReg(5),
                sa: S2,
                imm: Imm(-4),
            },
        ])
        .ok();
    assert_eq!((out.s(4), out.s(5)), (0x1234_5678, 0x0403_0201));
    assert_eq!(out.core.counters.scratch_bytes, 8);
}

#[test]
fn op_sts() {
    let out = Setup::new()
        .s(1, 0xa1b2_c3d4)
        .s(2, 96)
        .run_ops(&[
            Op::Sts {
                sv: S1,
                sa: S2,
                imm: Imm(4),
            },
            Op::Sts {
                sv: S1,
                sa: SReg(0),
                imm: Imm(SCRATCH_BYTES as i32 - 4),
            },
        ])
        .ok();
    assert_eq!(&out.core.scratch[100..104], &[0xd4, 0xc3, 0xb2, 0xa1]);
    assert_eq!(
        &out.core.scratch[SCRATCH_BYTES - 4..],
        &[0xd4, 0xc3, 0xb2, 0xa1]
    );
    assert_eq!(&out.core.scratch[96..100], &[0; 4]);
}

/// What a vector scratchpad access at `base` does under `active`: the fault of the
/// first active lane that has one, else nothing.
fn ref_scratch_fault(base: i64, active: u64) -> Option<FaultKind> {
    (0..LANES)
        .filter(|i| active >> i & 1 != 0)
        .map(|i| base + 4 * i as i64)
        .find_map(|addr| {
            if addr % 4 != 0 {
                Some(FaultKind::Misaligned { addr })
            } else if addr < 0 || addr + 4 > SCRATCH_BYTES as i64 {
                Some(FaultKind::ScratchRange { addr })
            } else {
                None
            }
        })
}

fn scratch_base() -> impl Strategy<Value = (u32, i32)> {
    prop_oneof![
        (0u32..1000, -64i32..64),
        (
            (SCRATCH_BYTES as u32 - 300)..(SCRATCH_BYTES as u32 + 8),
            -8i32..8
        ),
        (
            (SCRATCH_BYTES as u32 - 264)..(SCRATCH_BYTES as u32 - 240),
            Just(0)
        ),
        (any::<u32>(), any::<i32>()),
    ]
}

proptest! {
    #![proptest_config(cfg())]

    #[test]
    fn op_ldv(case in lw(), (sa, imm) in scratch_base()) {
        let base = i64::from(sa) + i64::from(imm);
        let pattern: Vec<u8> = (0..PRE).map(|k| (k * 7 + k / 251) as u8).collect();
        let setup = case.setup().s(6, sa).scratch(0, &pattern);
        // What the body sees: the pattern, and the preamble's values above it.
        let image = setup.run(&[]).ok().core.scratch;
        for (guard, active) in case.guards() {
            let out = setup.run(&[Inst::guarded(guard, Op::Ldv { vd: VD, sa: SReg(6), imm: Imm(imm) })]);
            match ref_scratch_fault(base, active) {
                Some(kind) => {
                    prop_assert_eq!(out.fault(), Fault { pc: out.start, kind });
                    prop_assert_eq!(out.v(3), case.old);
                }
                None => {
                    prop_assert!(out.result.is_ok());
                    for i in 0..LANES {
                        let want = if active >> i & 1 != 0 {
                            let at = (base + 4 * i as i64) as usize;
                            u32::from_le_bytes(image[at..at + 4].try_into().unwrap())
                        } else {
                            case.old[i]
                        };
                        prop_assert_eq!(out.v(3)[i], want, "lane {}", i);
                    }
                }
            }
        }
    }

    #[test]
    fn op_stv(case in lw(), (sa, imm) in scratch_base()) {
        let base = i64::from(sa) + i64::from(imm);
        for (guard, active) in case.guards() {
            let setup = case.setup().s(6, sa);
            let before = setup.run(&[]).ok().core.scratch;
            let out = setup.run(&[Inst::guarded(guard, Op::Stv { vv: VA, sa: SReg(6), imm: Imm(imm) })]);
            let mut want = before.clone();
            match ref_scratch_fault(base, active) {
                Some(kind) => prop_assert_eq!(out.fault(), Fault { pc: out.start, kind }),
                None => {
                    prop_assert!(out.result.is_ok());
                    for i in (0..LANES).filter(|i| active >> i & 1 != 0) {
                        let at = (base + 4 * i as i64) as usize;
                        want[at..at + 4].copy_from_slice(&case.a[i].to_le_bytes());
                    }
                }
            }
            prop_assert!(out.core.scratch == want);
        }
    }
}

// ---- tensors ----

/// The global memory's initial contents: a pattern that tells every byte apart.
fn memory_image() -> FlatMemory {
    let mut mem = FlatMemory::new(MEM_BASE, MEM_LEN);
    for (k, x) in mem.bytes.iter_mut().enumerate() {
        *x = (k * 131 + k / 256 + 7) as u8;
    }
    mem
}

fn mem_word(mem: &FlatMemory, va: u64, len: usize) -> u32 {
    let at = (va - MEM_BASE) as usize;
    let mut b = [0u8; 4];
    b[..len].copy_from_slice(&mem.bytes[at..at + len]);
    u32::from_le_bytes(b)
}

/// A tensor access case: 4-dimensional tensor at `MEM_BASE + 64` with dims
/// `[d0, 3, 2, 2]`, strides `[s0, 700, 2100, 4200]`, coordinates `c`.
#[derive(Clone, Debug)]
struct TCase {
    d0: u32,
    s0: u32,
    c: [u32; 4],
    lw: Lw,
}

fn tcase() -> impl Strategy<Value = TCase> {
    (
        1u32..300,
        1u32..4,
        0u32..300,
        0u32..4,
        0u32..3,
        0u32..3,
        lw(),
    )
        .prop_map(|(d0, s0, c0, c1, c2, c3, lw)| TCase {
            d0,
            s0,
            c: [c0, c1, c2, c3],
            lw,
        })
}

impl TCase {
    fn desc(&self, elem_size: u32) -> TensorDesc {
        TensorDesc {
            base: MEM_BASE + 64,
            elem_size,
            dims: [self.d0, 3, 2, 2],
            strides: [self.s0, 700, 2100, 4200],
        }
    }

    /// The address of the element at `(c0 + e, c1, c2, c3)`.
    fn addr(&self, elem_size: u32, e: u64) -> u64 {
        let d = self.desc(elem_size);
        let idx = (u64::from(self.c[0]) + e) * u64::from(d.strides[0])
            + (1..4)
                .map(|k| u64::from(self.c[k]) * u64::from(d.strides[k]))
                .sum::<u64>();
        d.base + u64::from(elem_size) * idx
    }

    /// The first range fault of the active lanes, element by element, dimension by
    /// dimension.
    fn range_fault(&self, per_lane: u64, active: u64) -> Option<FaultKind> {
        let dims = self.desc(4).dims;
        for i in (0..LANES as u64).filter(|i| active >> i & 1 != 0) {
            for j in 0..per_lane {
                let coords = [
                    u64::from(self.c[0]) + per_lane * i + j,
                    self.c[1].into(),
                    self.c[2].into(),
                    self.c[3].into(),
                ];
                for d in 0..4 {
                    if coords[d] >= u64::from(dims[d]) {
                        return Some(FaultKind::TensorRange {
                            slot: 1,
                            dim: d as u8,
                            coord: coords[d],
                        });
                    }
                }
            }
        }
        None
    }

    /// Runs a tensor instruction on slot t1 (t0 is a decoy) with the coordinates in
    /// s8..s11.
    fn run(&self, guard: Guard, op: Op, elem_size: u32) -> Outcome {
        let mut setup = self
            .lw
            .setup()
            .tensor(TensorDesc {
                elem_size: 6 - elem_size,
                ..self.desc(4)
            })
            .tensor(self.desc(elem_size));
        for k in 0..4 {
            setup = setup.s(8 + k as u8, self.c[k]);
        }
        setup.mem = memory_image();
        setup.run(&[Inst::guarded(guard, op)])
    }
}

/// A vector tensor load: `per_lane` elements of `elem_size` bytes per lane.
fn check_tensor_load(t: &TCase, op: Op, elem_size: u32) -> Result<(), TestCaseError> {
    let per_lane = u64::from(4 / elem_size);
    let image = memory_image();
    for (guard, active) in t.lw.guards() {
        let out = t.run(guard, op, elem_size);
        match t.range_fault(per_lane, active) {
            Some(kind) => {
                prop_assert_eq!(
                    out.fault(),
                    Fault {
                        pc: out.start,
                        kind
                    }
                );
                prop_assert_eq!(out.v(3), t.lw.old);
            }
            None => {
                prop_assert!(out.result.is_ok(), "{:?}", out.result);
                for i in 0..LANES {
                    let want = if active >> i & 1 != 0 {
                        (0..per_lane).fold(0u32, |w, j| {
                            let e = per_lane * i as u64 + j;
                            let x = mem_word(&image, t.addr(elem_size, e), elem_size as usize);
                            w | x << (8 * elem_size as u64 * j)
                        })
                    } else {
                        t.lw.old[i]
                    };
                    prop_assert_eq!(out.v(3)[i], want, "lane {}", i);
                }
                prop_assert!(out.mem.bytes == image.bytes, "a load wrote memory");
            }
        }
    }
    Ok(())
}

fn check_tensor_store(t: &TCase, op: Op, elem_size: u32) -> Result<(), TestCaseError> {
    let per_lane = u64::from(4 / elem_size);
    let image = memory_image();
    for (guard, active) in t.lw.guards() {
        let out = t.run(guard, op, elem_size);
        let mut want = image.clone();
        match t.range_fault(per_lane, active) {
            Some(kind) => prop_assert_eq!(
                out.fault(),
                Fault {
                    pc: out.start,
                    kind
                }
            ),
            None => {
                prop_assert!(out.result.is_ok(), "{:?}", out.result);
                for i in (0..LANES).filter(|i| active >> i & 1 != 0) {
                    for j in 0..per_lane {
                        let e = per_lane * i as u64 + j;
                        let at = (t.addr(elem_size, e) - MEM_BASE) as usize;
                        let bytes = t.lw.a[i].to_le_bytes();
                        let part = &bytes[(elem_size as u64 * j) as usize..][..elem_size as usize];
                        want.bytes[at..at + elem_size as usize].copy_from_slice(part);
                    }
                }
                prop_assert_eq!(
                    out.core.counters.global_bytes,
                    4 * u64::from(active.count_ones())
                );
            }
        }
        prop_assert!(out.mem.bytes == want.bytes, "memory differs");
    }
    Ok(())
}

proptest! {
    #![proptest_config(cfg())]

    #[test]
    fn op_ldt_b32(t in tcase()) {
        check_tensor_load(&t, Op::LdtB32 { vd: VD, t: TReg(1), c: CReg(8) }, 4)?;
    }

    #[test]
    fn op_stt_b32(t in tcase()) {
        check_tensor_store(&t, Op::SttB32 { vv: VA, t: TReg(1), c: CReg(8) }, 4)?;
    }

    #[test]
    fn op_ldt_b16(t in tcase()) {
        check_tensor_load(&t, Op::LdtB16 { vd: VD, t: TReg(1), c: CReg(8) }, 2)?;
    }

    #[test]
    fn op_stt_b16(t in tcase()) {
        check_tensor_store(&t, Op::SttB16 { vv: VA, t: TReg(1), c: CReg(8) }, 2)?;
    }

    #[test]
    fn op_ldts_b32(t in tcase()) {
        let out = t.run(Guard::ALWAYS, Op::LdtsB32 { sd: SReg(4), t: TReg(1), c: CReg(8) }, 4);
        match t.range_fault(1, 1) {
            Some(kind) => prop_assert_eq!(out.fault(), Fault { pc: out.start, kind }),
            None => prop_assert_eq!(out.ok().s(4), mem_word(&memory_image(), t.addr(4, 0), 4)),
        }
    }

    #[test]
    fn op_stts_b32(t in tcase(), x in word()) {
        let mut t = t;
        t.lw.s = x;
        let out = t.run(Guard::ALWAYS, Op::SttsB32 { sv: SB, t: TReg(1), c: CReg(8) }, 4);
        let mut want = memory_image();
        match t.range_fault(1, 1) {
            Some(kind) => prop_assert_eq!(out.fault(), Fault { pc: out.start, kind }),
            None => {
                let at = (t.addr(4, 0) - MEM_BASE) as usize;
                want.bytes[at..at + 4].copy_from_slice(&x.to_le_bytes());
            }
        }
        prop_assert!(out.mem.bytes == want.bytes);
    }
}

#[test]
fn tensor_range_names_the_first_active_lane_and_dimension() {
    let t = TCase {
        d0: 100,
        s0: 1,
        c: [60, 1, 1, 1],
        lw: Lw {
            a: [0; LANES],
            b: [0; LANES],
            c: [0; LANES],
            old: [9; LANES],
            s: 0,
            mask: 0,
            neg: false,
            sel: 0,
        },
    };
    let ld = Op::LdtB32 {
        vd: VD,
        t: TReg(1),
        c: CReg(8),
    };
    let range = |dim, coord| FaultKind::TensorRange {
        slot: 1,
        dim,
        coord,
    };
    // Lanes 40.. are out along dimension 0; the first is lane 40, at 100.
    assert_eq!(t.run(Guard::ALWAYS, ld, 4).fault().kind, range(0, 100));
    // Guarded to lanes 0..40, nothing is out.
    let mut t2 = t.clone();
    t2.lw.mask = (1 << 40) - 1;
    let out = t2.run(g(1, false), ld, 4).ok();
    assert_eq!(out.v(3)[39], mem_word(&memory_image(), t.addr(4, 39), 4));
    assert_eq!(out.v(3)[40], 9);
    // Only lanes 45 and 50 active: lane 45, at 105.
    t2.lw.mask = (1 << 45) | (1 << 50);
    assert_eq!(t2.run(g(1, false), ld, 4).fault().kind, range(0, 105));
    // A coordinate outside dimension 2 is reported for the first active lane, unless
    // that lane is already out along dimension 0.
    let mut t3 = t.clone();
    t3.c[2] = 2;
    assert_eq!(t3.run(Guard::ALWAYS, ld, 4).fault().kind, range(2, 2));
    t3.lw.mask = 1 << 50;
    assert_eq!(t3.run(g(1, false), ld, 4).fault().kind, range(0, 110));
    // ldt.b16: lane 19's second element is at 60 + 39 = 99, lane 20's first at 100;
    // with d0 = 99, lane 19 is the first out, at its second element.
    let mut t4 = t.clone();
    t4.d0 = 99;
    let ld16 = Op::LdtB16 {
        vd: VD,
        t: TReg(1),
        c: CReg(8),
    };
    assert_eq!(t4.run(Guard::ALWAYS, ld16, 2).fault().kind, range(0, 99));
    // No active lane: nothing is checked beyond the slot and the element size.
    t3.lw.mask = 0;
    t3.run(g(1, false), ld, 4).ok();
}

// ---- faults: every kind, at its exact pc ----

/// The fault of running `ops` after the setup's preamble, with its pc made relative
/// to the body.
fn body_fault(setup: &Setup, ops: &[Op]) -> (u32, FaultKind) {
    let out = setup.run_ops(ops);
    let f = out.fault();
    (f.pc - out.start, f.kind)
}

#[test]
fn fault_illegal_instruction() {
    let words = [
        Inst::from(Op::Nop {}).encode(),
        Inst::from(Op::Nop {}).encode(),
        0xff,
        Inst::from(Op::Halt {}).encode(),
    ];
    let out = Setup::new().run_words(&words, 0);
    assert_eq!(
        out.fault(),
        Fault {
            pc: 2,
            kind: FaultKind::IllegalInstruction(DecodeError::UnknownOpcode {
                opcode: 0xff,
                word: 0xff
            })
        }
    );
    assert_eq!(out.core.counters.instructions, 2);
    // A word that does not decode is harmless until executed.
    let skip = [
        Inst::from(Op::J { target: Off(2) }).encode(),
        0xff,
        Inst::from(Op::Halt {}).encode(),
    ];
    Setup::new().run_words(&skip, 0).ok();
}

#[test]
fn fault_pc_range() {
    let setup = Setup::new();
    // A branch out of the program faults at the branch, which does not retire.
    assert_eq!(
        body_fault(&setup, &[Op::Nop {}, Op::J { target: Off(-100) }]),
        (
            1,
            FaultKind::PcRange {
                target: i64::from(setup.run(&[]).start) + 1 - 100
            }
        )
    );
    let words = [
        Inst::from(Op::Nop {}).encode(),
        Inst::from(Op::Beq {
            sa: SReg(0),
            sb: SReg(0),
            target: Off(5),
        })
        .encode(),
    ];
    let out = setup.run_words(&words, 0);
    assert_eq!(
        out.fault(),
        Fault {
            pc: 1,
            kind: FaultKind::PcRange { target: 6 }
        }
    );
    assert_eq!(out.core.counters.instructions, 1);
    // Falling off the end faults at the last instruction, which retired.
    let words = [
        Inst::from(Op::Nop {}).encode(),
        Inst::from(Op::Li {
            sd: SReg(4),
            imm: Bits(3),
        })
        .encode(),
    ];
    let out = setup.run_words(&words, 0);
    assert_eq!(
        out.fault(),
        Fault {
            pc: 1,
            kind: FaultKind::PcRange { target: 2 }
        }
    );
    assert_eq!((out.s(4), out.core.counters.instructions), (3, 2));
    // An entry outside the program, and an empty program.
    let out = setup.run_words(&words, 7);
    assert_eq!(
        out.fault(),
        Fault {
            pc: 7,
            kind: FaultKind::PcRange { target: 7 }
        }
    );
    let out = setup.run_words(&[], 0);
    assert_eq!(
        out.fault(),
        Fault {
            pc: 0,
            kind: FaultKind::PcRange { target: 0 }
        }
    );
}

#[test]
fn fault_misaligned() {
    let setup = Setup::new().s(1, 6).v(3, [5; LANES]);
    assert_eq!(
        body_fault(
            &setup,
            &[
                Op::Nop {},
                Op::Lds {
                    sd: SReg(4),
                    sa: S1,
                    imm: Imm(0)
                }
            ]
        ),
        (1, FaultKind::Misaligned { addr: 6 })
    );
    assert_eq!(
        body_fault(
            &setup,
            &[Op::Sts {
                sv: S1,
                sa: S1,
                imm: Imm(-3)
            }]
        ),
        (0, FaultKind::Misaligned { addr: 3 })
    );
    let out = setup.run_ops(&[Op::Ldv {
        vd: VReg(3),
        sa: S1,
        imm: Imm(1),
    }]);
    assert_eq!(out.fault().kind, FaultKind::Misaligned { addr: 7 });
    assert_eq!(out.v(3), [5; LANES], "a faulting load writes nothing");
}

#[test]
fn fault_scratch_range() {
    let top = SCRATCH_BYTES as u32;
    let setup = Setup::new().s(1, top).s(2, u32::MAX - 3);
    assert_eq!(
        body_fault(
            &setup,
            &[Op::Lds {
                sd: SReg(4),
                sa: S1,
                imm: Imm(0)
            }]
        ),
        (0, FaultKind::ScratchRange { addr: top.into() })
    );
    assert_eq!(
        body_fault(
            &setup,
            &[
                Op::Nop {},
                Op::Sts {
                    sv: S1,
                    sa: SReg(0),
                    imm: Imm(-4)
                }
            ]
        ),
        (1, FaultKind::ScratchRange { addr: -4 })
    );
    // sa is unsigned: 2^32 - 4 + 8 is far outside, not 4.
    assert_eq!(
        body_fault(
            &setup,
            &[Op::Lds {
                sd: SReg(4),
                sa: S2,
                imm: Imm(8)
            }]
        )
        .1,
        FaultKind::ScratchRange {
            addr: (1 << 32) + 4
        }
    );
    // A vector running past the end: the first lane outside.
    assert_eq!(
        body_fault(
            &setup,
            &[Op::Stv {
                vv: VReg(1),
                sa: S1,
                imm: Imm(-128)
            }]
        ),
        (0, FaultKind::ScratchRange { addr: top.into() })
    );
    // Only the last lane outside; then the whole vector just inside.
    assert_eq!(
        body_fault(
            &setup,
            &[Op::Ldv {
                vd: VReg(1),
                sa: S1,
                imm: Imm(-252)
            }]
        ),
        (0, FaultKind::ScratchRange { addr: top.into() })
    );
    setup
        .run_ops(&[Op::Ldv {
            vd: VReg(1),
            sa: S1,
            imm: Imm(-256),
        }])
        .ok();
    // Guarded to the lanes inside, no fault.
    let inside = Inst::guarded(
        g(1, false),
        Op::Stv {
            vv: VReg(1),
            sa: S1,
            imm: Imm(-252),
        },
    );
    setup.clone().p(1, u64::MAX >> 1).run(&[inside]).ok();
}

#[test]
fn fault_arg_range() {
    let mut setup = Setup::new();
    setup.scalars = vec![1, 2];
    assert_eq!(
        body_fault(
            &setup,
            &[
                Op::Ldarg {
                    sd: SReg(4),
                    imm: Imm(1)
                },
                Op::Ldarg {
                    sd: SReg(4),
                    imm: Imm(2)
                }
            ]
        ),
        (1, FaultKind::ArgRange { index: 2 })
    );
    assert_eq!(
        body_fault(
            &setup,
            &[Op::Ldarg {
                sd: SReg(4),
                imm: Imm(-1)
            }]
        ),
        (0, FaultKind::ArgRange { index: -1 })
    );
}

#[test]
fn fault_tensor_slot() {
    let setup = Setup::new().tensor(TensorDesc {
        elem_size: 4,
        dims: [64, 1, 1, 1],
        strides: [1; 4],
        base: MEM_BASE,
    });
    let slot = |slot| FaultKind::TensorSlot { slot };
    assert_eq!(
        body_fault(
            &setup,
            &[Op::Tdim {
                sd: SReg(4),
                t: TReg(1),
                dim: Dim(0)
            }]
        ),
        (0, slot(1))
    );
    assert_eq!(
        body_fault(
            &setup,
            &[
                Op::Nop {},
                Op::LdtB32 {
                    vd: VD,
                    t: TReg(15),
                    c: CReg(0)
                }
            ]
        ),
        (1, slot(15))
    );
    assert_eq!(
        body_fault(
            &setup,
            &[Op::SttB16 {
                vv: VD,
                t: TReg(2),
                c: CReg(0)
            }]
        ),
        (0, slot(2))
    );
    assert_eq!(
        body_fault(
            &setup,
            &[Op::LdtsB32 {
                sd: SReg(4),
                t: TReg(3),
                c: CReg(0)
            }]
        ),
        (0, slot(3))
    );
    // Checked even with no active lane.
    let out = setup.run(&[Inst::guarded(
        g(0, true),
        Op::SttB32 {
            vv: VD,
            t: TReg(4),
            c: CReg(0),
        },
    )]);
    assert_eq!(out.fault().kind, slot(4));
}

#[test]
fn fault_tensor_type() {
    let t = |elem_size| TensorDesc {
        elem_size,
        dims: [64, 1, 1, 1],
        strides: [1; 4],
        base: MEM_BASE,
    };
    let setup = Setup::new().tensor(t(2)).tensor(t(4)).tensor(t(8));
    let ty = |slot, elem_size| FaultKind::TensorType { slot, elem_size };
    assert_eq!(
        body_fault(
            &setup,
            &[Op::LdtB32 {
                vd: VD,
                t: TReg(0),
                c: CReg(0)
            }]
        ),
        (0, ty(0, 2))
    );
    assert_eq!(
        body_fault(
            &setup,
            &[
                Op::Nop {},
                Op::LdtB16 {
                    vd: VD,
                    t: TReg(1),
                    c: CReg(0)
                }
            ]
        ),
        (1, ty(1, 4))
    );
    assert_eq!(
        body_fault(
            &setup,
            &[Op::SttsB32 {
                sv: S1,
                t: TReg(2),
                c: CReg(0)
            }]
        ),
        (0, ty(2, 8))
    );
    // The type before the range.
    assert_eq!(
        body_fault(
            &setup.clone().s(1, 1000),
            &[Op::SttB16 {
                vv: VD,
                t: TReg(2),
                c: CReg(1)
            }]
        ),
        (0, ty(2, 8))
    );
    // tdim does not care about the type.
    let out = setup
        .run_ops(&[Op::Tdim {
            sd: SReg(4),
            t: TReg(2),
            dim: Dim(0),
        }])
        .ok();
    assert_eq!(out.s(4), 64);
}

#[test]
fn fault_tensor_range() {
    let setup = Setup::new()
        .tensor(TensorDesc {
            elem_size: 4,
            dims: [64, 2, 1, 1],
            strides: [1, 64, 128, 128],
            base: MEM_BASE,
        })
        .s(4, 1)
        .s(5, 2);
    let range = |dim, coord| FaultKind::TensorRange {
        slot: 0,
        dim,
        coord,
    };
    // c = (s4, s5, s6, s7) = (1, 2, 0, 0): lane 0 is in along dim 0 but out along dim 1.
    assert_eq!(
        body_fault(
            &setup,
            &[
                Op::Nop {},
                Op::LdtB32 {
                    vd: VD,
                    t: TReg(0),
                    c: CReg(4)
                }
            ]
        ),
        (1, range(1, 2))
    );
    // c = (s3, s4, s5, s6) = (0, 1, 2, 0): out along dim 2.
    assert_eq!(
        body_fault(
            &setup,
            &[Op::LdtsB32 {
                sd: SReg(8),
                t: TReg(0),
                c: CReg(3)
            }]
        ),
        (0, range(2, 2))
    );
    // c = (s5, s6, ...) = (2, 0, 0, 0): lane 62 is at 64.
    assert_eq!(
        body_fault(
            &setup,
            &[Op::SttB32 {
                vv: VD,
                t: TReg(0),
                c: CReg(5)
            }]
        ),
        (0, range(0, 64))
    );
    // Coordinates are unsigned: -1 is 2^32 - 1.
    let setup = setup.s(9, u32::MAX);
    assert_eq!(
        body_fault(
            &setup,
            &[Op::SttsB32 {
                sv: S1,
                t: TReg(0),
                c: CReg(9)
            }]
        ),
        (0, range(0, u64::from(u32::MAX)))
    );
}

/// A memory that accepts every access, and counts them.
#[derive(Default)]
struct Everything {
    reads: Vec<(u64, usize)>,
    writes: Vec<(u64, usize)>,
}

impl GlobalMemory for Everything {
    fn read(&mut self, va: u64, buf: &mut [u8]) -> Result<(), MemFault> {
        self.reads.push((va, buf.len()));
        Ok(())
    }
    fn write(&mut self, va: u64, data: &[u8]) -> Result<(), MemFault> {
        self.writes.push((va, data.len()));
        Ok(())
    }
}

#[test]
fn fault_mmu() {
    let end = MEM_BASE + MEM_LEN as u64;
    let t = |base, stride| TensorDesc {
        elem_size: 4,
        dims: [64, 1, 1, 1],
        strides: [stride, 1, 1, 1],
        base,
    };
    let mmu = |va, write| FaultKind::Mmu { va, write };
    // Lanes 10.. are past the end of memory: adjacent elements (one access) and
    // strided ones (one access per lane) report the same first address.
    for stride in [1, 2] {
        let base = end - 40 * stride as u64;
        let setup = Setup::new().tensor(t(base, stride)).v(3, [4; LANES]);
        let out = setup.run_ops(&[
            Op::Nop {},
            Op::LdtB32 {
                vd: VD,
                t: TReg(0),
                c: CReg(0),
            },
        ]);
        assert_eq!(
            out.fault(),
            Fault {
                pc: out.start + 1,
                kind: mmu(end, false)
            }
        );
        assert_eq!(out.v(3), [4; LANES], "a faulting load writes nothing");
        assert_eq!(
            body_fault(
                &setup,
                &[Op::SttB32 {
                    vv: VD,
                    t: TReg(0),
                    c: CReg(0)
                }]
            ),
            (0, mmu(end, true))
        );
    }
    // Below the memory, scalar.
    let setup = Setup::new().tensor(t(MEM_BASE - 8, 1));
    assert_eq!(
        body_fault(
            &setup,
            &[Op::LdtsB32 {
                sd: SReg(4),
                t: TReg(0),
                c: CReg(0)
            }]
        ),
        (0, mmu(MEM_BASE - 8, false))
    );
    assert_eq!(
        body_fault(
            &setup,
            &[Op::SttsB32 {
                sv: SReg(4),
                t: TReg(0),
                c: CReg(0)
            }]
        ),
        (0, mmu(MEM_BASE - 8, true))
    );

    // The top of the address space: lane 2 of a tensor at 2^64 - 8 does not fit.
    let program = Program::decode(
        &[Inst::from(Op::LdtB32 {
            vd: VD,
            t: TReg(0),
            c: CReg(0),
        })
        .encode()],
        0,
    );
    let run = |base: u64, stride: u32| {
        let tensors = [t(base, stride)];
        let launch = Launch {
            dims: [1; 4],
            tensors: &tensors,
            scalars: &[],
        };
        let mut mem = Everything::default();
        let r = Core::new(0).run(&program, &launch, [0; 4], &mut mem);
        (r, mem.reads)
    };
    let (r, reads) = run(u64::MAX - 7, 1);
    assert_eq!(
        r,
        Err(Stop::Fault(Fault {
            pc: 0,
            kind: mmu(u64::MAX, false)
        }))
    );
    assert_eq!(reads, [(u64::MAX - 7, 4), (u64::MAX - 3, 4)]);
    // An element that starts below 2^64 and ends above it faults at its own address.
    let (r, _) = run(u64::MAX - 5, 1);
    assert_eq!(
        r,
        Err(Stop::Fault(Fault {
            pc: 0,
            kind: mmu(u64::MAX - 1, false)
        }))
    );
    // Strided, huge offsets: lane 1 at base + 4 · (2^32 - 1) is past 2^64.
    let (r, reads) = run(u64::MAX - (1 << 33) + 1, u32::MAX);
    assert_eq!(reads.len(), 1);
    assert_eq!(
        r,
        Err(Stop::Fault(Fault {
            pc: 0,
            kind: mmu(u64::MAX, false)
        }))
    );
}

#[test]
fn fault_divide_by_zero() {
    let setup = Setup::new().s(1, 7).s(4, 99);
    for (k, op) in [
        Op::Div {
            sd: SReg(4),
            sa: S1,
            sb: SReg(0),
        },
        Op::Divu {
            sd: SReg(4),
            sa: S1,
            sb: SReg(0),
        },
        Op::Rem {
            sd: SReg(4),
            sa: S1,
            sb: SReg(0),
        },
        Op::Remu {
            sd: SReg(4),
            sa: S1,
            sb: SReg(0),
        },
    ]
    .into_iter()
    .enumerate()
    {
        let mut ops = vec![Op::Nop {}; k];
        ops.push(op);
        let out = setup.run_ops(&ops);
        assert_eq!(
            out.fault(),
            Fault {
                pc: out.start + k as u32,
                kind: FaultKind::DivideByZero
            }
        );
        assert_eq!(out.s(4), 99, "the destination keeps its value");
    }
}

#[test]
fn every_fault_kind_has_a_test_and_its_code() {
    // The codes of the hardware ABI, one per kind (the fault_* tests above cover
    // each kind; this lists them so a new kind shows up here).
    let kinds = [
        (
            FaultKind::IllegalInstruction(DecodeError::UnknownOpcode {
                opcode: 0xff,
                word: 0xff,
            }),
            1,
        ),
        (FaultKind::PcRange { target: -1 }, 2),
        (FaultKind::Misaligned { addr: 3 }, 3),
        (FaultKind::ScratchRange { addr: -4 }, 4),
        (FaultKind::ArgRange { index: 9 }, 5),
        (FaultKind::TensorSlot { slot: 3 }, 6),
        (
            FaultKind::TensorType {
                slot: 3,
                elem_size: 8,
            },
            7,
        ),
        (
            FaultKind::TensorRange {
                slot: 3,
                dim: 2,
                coord: 77,
            },
            8,
        ),
        (
            FaultKind::Mmu {
                va: 0xabc0,
                write: true,
            },
            9,
        ),
        (FaultKind::DivideByZero, 10),
    ];
    for (kind, code) in kinds {
        // A match without a wildcard: a new kind must be added to this list.
        match kind {
            FaultKind::IllegalInstruction(_)
            | FaultKind::PcRange { .. }
            | FaultKind::Misaligned { .. }
            | FaultKind::ScratchRange { .. }
            | FaultKind::ArgRange { .. }
            | FaultKind::TensorSlot { .. }
            | FaultKind::TensorType { .. }
            | FaultKind::TensorRange { .. }
            | FaultKind::Mmu { .. }
            | FaultKind::DivideByZero => {}
        }
        assert_eq!(kind.code(), code, "{kind:?}");
        let text = Fault { pc: 12, kind }.to_string();
        assert!(text.starts_with("fault at pc 12: "), "{text}");
    }
    let text = |kind: FaultKind| kind.to_string();
    assert_eq!(
        text(FaultKind::Mmu {
            va: 0xabc0,
            write: true
        }),
        "the MMU refused a write at device address 0xabc0"
    );
    assert_eq!(
        text(FaultKind::TensorRange {
            slot: 3,
            dim: 2,
            coord: 77
        }),
        "coordinate 77 along dimension 2 is outside tensor t3"
    );
    assert_eq!(
        text(FaultKind::Misaligned { addr: 3 }),
        "scratchpad address 3 is not 4-byte aligned"
    );
    assert_eq!(Stop::Aborted.to_string(), "the launch was abandoned");
}

/// A memory that asks to stop the first time it is asked.
struct StopAtOnce(u32);

impl GlobalMemory for StopAtOnce {
    fn read(&mut self, va: u64, _: &mut [u8]) -> Result<(), MemFault> {
        Err(MemFault { va })
    }
    fn write(&mut self, va: u64, _: &[u8]) -> Result<(), MemFault> {
        Err(MemFault { va })
    }
    fn should_stop(&mut self) -> bool {
        self.0 += 1;
        true
    }
}

#[test]
fn an_endless_loop_is_abandoned_when_the_memory_says_so() {
    // On a thread, so that a regression fails the test instead of hanging it.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let program = Program::decode(&[Inst::from(Op::J { target: Off(0) }).encode()], 0);
        let launch = Launch {
            dims: [1; 4],
            tensors: &[],
            scalars: &[],
        };
        let mut core = Core::new(0);
        let mut mem = StopAtOnce(0);
        let r = core.run(&program, &launch, [0; 4], &mut mem);
        tx.send((r, mem.0, core.counters)).unwrap();
    });
    let (r, asked, counters) = rx
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("the loop was not abandoned");
    assert_eq!(r, Err(Stop::Aborted));
    assert_eq!(asked, 1);
    // Asked every 64Ki instructions, not more often.
    assert_eq!(counters.instructions, 1 << 16);
    assert_eq!(counters.invocations, 0);
}

// ---- invocations, launches and counters ----

#[test]
fn counters_count_what_retired() {
    let tensors = [TensorDesc {
        base: MEM_BASE,
        elem_size: 4,
        dims: [64, 1, 1, 1],
        strides: [1; 4],
    }];
    let launch = Launch {
        dims: [1; 4],
        tensors: &tensors,
        scalars: &[],
    };
    let ops = [
        Op::Li {
            sd: SReg(1),
            imm: Bits(20),
        },
        Op::Pfirst {
            pd: PReg(1),
            sa: SReg(1),
        },
        Inst::guarded(g(1, false), Op::Viota { vd: VReg(1) }).op,
    ];
    let mut words: Vec<u64> = ops[..2].iter().map(|&op| Inst::from(op).encode()).collect();
    words.extend([
        Inst::guarded(g(1, false), Op::Viota { vd: VReg(1) }).encode(),
        Inst::guarded(
            g(1, true),
            Op::Stv {
                vv: VReg(1),
                sa: SReg(0),
                imm: Imm(0),
            },
        )
        .encode(),
        Inst::guarded(
            g(1, false),
            Op::LdtB32 {
                vd: VReg(2),
                t: TReg(0),
                c: CReg(8),
            },
        )
        .encode(),
        Inst::from(Op::SttsB32 {
            sv: SReg(1),
            t: TReg(0),
            c: CReg(8),
        })
        .encode(),
        Inst::from(Op::Lds {
            sd: SReg(2),
            sa: SReg(0),
            imm: Imm(0),
        })
        .encode(),
        Inst::from(Op::Vext {
            sd: SReg(3),
            va: VReg(1),
            sb: SReg(1),
        })
        .encode(),
        Inst::from(Op::Halt {}).encode(),
    ]);
    let program = Program::decode(&words, 0);
    let mut core = Core::new(0);
    let mut mem = FlatMemory::new(MEM_BASE, MEM_LEN);
    core.start_launch();
    core.run(&program, &launch, [0; 4], &mut mem).unwrap();
    let once = Counters {
        instructions: 9,
        lane_ops: 20 + 44 + 20 + 1,
        global_bytes: 4 * 20 + 4,
        scratch_bytes: 4 * 44 + 4,
        invocations: 1,
    };
    assert_eq!(core.counters, once);
    core.run(&program, &launch, [0; 4], &mut mem).unwrap();
    assert_eq!(core.counters.instructions, 18);
    assert_eq!(core.counters.invocations, 2);
    core.start_launch();
    assert_eq!(core.counters, Counters::default());
    let _ = ops;
}

#[test]
fn registers_reset_per_invocation_and_the_scratchpad_per_launch() {
    let words: Vec<u64> = [
        // s4 = scratch[0] + 1; scratch[0] = s4; v1 += 1 lane-wise (from zero); p1 = !p1.
        Op::Lds {
            sd: SReg(4),
            sa: SReg(0),
            imm: Imm(0),
        },
        Op::Addi {
            sd: SReg(4),
            sa: SReg(4),
            imm: Imm(1),
        },
        Op::Sts {
            sv: SReg(4),
            sa: SReg(0),
            imm: Imm(0),
        },
        Op::Addi {
            sd: SReg(5),
            sa: SReg(5),
            imm: Imm(1),
        },
        Op::Li {
            sd: SReg(6),
            imm: Bits(1),
        },
        Op::VaddsI32 {
            vd: VReg(1),
            va: VReg(1),
            sb: SReg(6),
        },
        Op::Pnot {
            pd: PReg(1),
            pa: PReg(1),
        },
        Op::Halt {},
    ]
    .iter()
    .map(|&op| Inst::from(op).encode())
    .collect();
    let program = Program::decode(&words, 0);
    let launch = Launch {
        dims: [3, 1, 1, 1],
        tensors: &[],
        scalars: &[],
    };
    let mut core = Core::new(0);
    let mut mem = FlatMemory::default();
    core.start_launch();
    core.run_points(&program, &launch, 0..3, &mut mem).unwrap();
    assert_eq!(core.s[4], 3, "the scratchpad is kept across invocations");
    assert_eq!((core.s[5], core.v[1], core.p[1]), (1, [1; LANES], u64::MAX));
    assert_eq!(core.p[0], u64::MAX);
    assert_eq!(core.counters.invocations, 3);
    core.start_launch();
    core.run(&program, &launch, [0; 4], &mut mem).unwrap();
    assert_eq!(core.s[4], 1, "a launch starts with a zeroed scratchpad");
}

#[test]
fn run_points_runs_each_point_in_row_major_order() {
    // Each invocation stores its linear index (c0 + 2·c1 + 6·c2) at 4·linear.
    let words: Vec<u64> = [
        Op::Idx {
            sd: SReg(1),
            dim: Dim(0),
        },
        Op::Idx {
            sd: SReg(2),
            dim: Dim(1),
        },
        Op::Idx {
            sd: SReg(3),
            dim: Dim(2),
        },
        Op::Muli {
            sd: SReg(2),
            sa: SReg(2),
            imm: Imm(2),
        },
        Op::Muli {
            sd: SReg(3),
            sa: SReg(3),
            imm: Imm(6),
        },
        Op::Add {
            sd: SReg(1),
            sa: SReg(1),
            sb: SReg(2),
        },
        Op::Add {
            sd: SReg(1),
            sa: SReg(1),
            sb: SReg(3),
        },
        Op::Shli {
            sd: SReg(4),
            sa: SReg(1),
            imm: Imm(2),
        },
        Op::Addi {
            sd: SReg(1),
            sa: SReg(1),
            imm: Imm(100),
        },
        Op::Sts {
            sv: SReg(1),
            sa: SReg(4),
            imm: Imm(0),
        },
        Op::Halt {},
    ]
    .iter()
    .map(|&op| Inst::from(op).encode())
    .collect();
    let program = Program::decode(&words, 0);
    let launch = Launch {
        dims: [2, 3, 4, 1],
        tensors: &[],
        scalars: &[],
    };
    let mut core = Core::new(0);
    core.start_launch();
    core.run_points(&program, &launch, 5..17, &mut FlatMemory::default())
        .unwrap();
    for linear in 0..24u32 {
        let at = 4 * linear as usize;
        let got = u32::from_le_bytes(core.scratch[at..at + 4].try_into().unwrap());
        assert_eq!(
            got,
            if (5..17).contains(&linear) {
                100 + linear
            } else {
                0
            }
        );
    }
}

#[test]
fn partition_gives_static_blocks() {
    for (dims, cores) in [
        ([10, 1, 1, 1], 3),
        ([7, 3, 2, 1], 8),
        ([1, 1, 1, 1], 8),
        ([5, 5, 5, 5], 1),
        ([3, 1, 1, 1], 5),
    ] {
        let total: u64 = dims.iter().map(|&d| u64::from(d)).product();
        let mut next = 0;
        for core in 0..cores {
            let r = partition(dims, cores, core);
            assert_eq!(
                r.start, next,
                "{dims:?} over {cores}: blocks are contiguous"
            );
            let want =
                total / u64::from(cores) + u64::from(u64::from(core) < total % u64::from(cores));
            assert_eq!(r.end - r.start, want);
            next = r.end;
        }
        assert_eq!(next, total);
    }
    // Degenerate shapes give empty blocks, never a panic.
    assert!(partition([0, 5, 5, 5], 4, 1).is_empty());
    assert!(partition([5, 5, 5, 5], 0, 0).is_empty());
    assert!(partition([5, 5, 5, 5], 4, 4).is_empty());
    let huge = [u32::MAX; 4];
    let last = partition(huge, u32::MAX, u32::MAX - 1);
    assert_eq!(last.end, u64::MAX);
    assert!(!last.is_empty());
}

#[test]
fn point_of_inverts_the_row_major_order() {
    let dims = [3, 4, 5, 6];
    let mut linear = 0u64;
    for c3 in 0..6 {
        for c2 in 0..5 {
            for c1 in 0..4 {
                for c0 in 0..3 {
                    assert_eq!(point_of(dims, linear), [c0, c1, c2, c3]);
                    assert_eq!(linear, u64::from(c0 + 3 * (c1 + 4 * (c2 + 5 * c3))));
                    linear += 1;
                }
            }
        }
    }
    assert_eq!(point_of([0, 3, 3, 3], 7), [0; 4]);
    // 2^64 - 1 = (2^32 - 1)(2^32 + 1)
    assert_eq!(point_of([u32::MAX; 4], u64::MAX), [0, 2, 1, 0]);
}

#[test]
fn flat_memory_names_the_first_address_refused() {
    let mut m = FlatMemory::new(0x1000, 16);
    let mut buf = [0u8; 8];
    assert_eq!(m.read(0x0ff8, &mut buf), Err(MemFault { va: 0x0ff8 }));
    assert_eq!(m.read(0x100c, &mut buf), Err(MemFault { va: 0x1010 }));
    assert_eq!(m.write(0x1010, &buf), Err(MemFault { va: 0x1010 }));
    assert_eq!(m.read(u64::MAX, &mut buf), Err(MemFault { va: u64::MAX }));
    m.write(0x1008, &[1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
    m.read(0x1006, &mut buf[..4]).unwrap();
    assert_eq!(&buf[..4], &[0, 0, 1, 2]);
}
