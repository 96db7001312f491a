//! The back end against the reference semantics: IR functions built by hand, compiled
//! at `-O0` and `-O1`, run on a `sagrada_isa::exec::Core`, their results checked
//! against host arithmetic written here.

use sagrada_cc::OptLevel;
use sagrada_cc::back::{self, Output};
use sagrada_cc::ir::{
    Block, Cond, Function, Guard, Op, Param, ParamKind, Target, Terminator, Type, Value,
};
use sagrada_cc::span::Span;
use sagrada_isa::exec::{Core, FlatMemory, Launch, Program, TensorDesc};
use sagrada_isa::{Opcode, SCRATCH_BYTES};

const LEVELS: [OptLevel; 2] = [OptLevel::O0, OptLevel::O1];
const MEM_BASE: u64 = 0x1_0000_0000;
const REGION: u64 = 0x4_0000;

// ---- building IR ----

struct K {
    f: Function,
    b: Block,
}

impl K {
    fn new(params: &[(&str, ParamKind)]) -> K {
        let params = params
            .iter()
            .map(|&(n, kind)| Param {
                name: n.to_string(),
                kind,
            })
            .collect();
        let f = Function::new("k", params);
        let b = f.entry;
        K { f, b }
    }

    fn op(&mut self, op: Op, args: &[Value], ty: Type) -> Value {
        self.f
            .append(self.b, op, args.to_vec(), Some(ty), Span::default())
            .unwrap()
    }

    fn guarded(
        &mut self,
        op: Op,
        args: &[Value],
        ty: Option<Type>,
        mask: Value,
        negated: bool,
        passthru: Option<Value>,
    ) -> Option<Value> {
        self.f.append_guarded(
            self.b,
            op,
            args.to_vec(),
            ty,
            Some(Guard { mask, negated }),
            passthru,
            Span::default(),
        )
    }

    fn effect(&mut self, op: Op, args: &[Value]) {
        self.f
            .append(self.b, op, args.to_vec(), None, Span::default());
    }

    fn i(&mut self, x: i32) -> Value {
        self.op(Op::Const(x as u32), &[], Type::I32)
    }

    fn fc(&mut self, x: f32) -> Value {
        self.op(Op::Const(x.to_bits()), &[], Type::F32)
    }

    fn arg_i(&mut self, n: u32) -> Value {
        self.op(Op::Arg(n), &[], Type::I32)
    }

    fn arg_f(&mut self, n: u32) -> Value {
        self.op(Op::Arg(n), &[], Type::F32)
    }

    fn int4(&mut self, c: [Value; 4]) -> Value {
        self.op(Op::MakeInt4, &c, Type::Int4)
    }

    fn at(&mut self, x: i32) -> Value {
        let x = self.i(x);
        let z = self.i(0);
        self.int4([x, z, z, z])
    }

    /// Stores scalar `v` as element `k` of tensor `slot`.
    fn out(&mut self, slot: u8, k: i32, v: Value) {
        let c = self.at(k);
        self.effect(Op::StoreTensorScalar { slot }, &[c, v]);
    }

    /// Stores vector `v` at row `row` of tensor `slot`.
    fn out_vec(&mut self, slot: u8, row: i32, v: Value) {
        let z = self.i(0);
        let r = self.i(row);
        let c = self.int4([z, r, z, z]);
        self.effect(Op::StoreTensor { slot }, &[c, v]);
    }

    fn load_vec(&mut self, slot: u8, row: i32, ty: Type) -> Value {
        let z = self.i(0);
        let r = self.i(row);
        let c = self.int4([z, r, z, z]);
        self.op(Op::LoadTensor { slot }, &[c], ty)
    }

    fn jump(&mut self, to: Block, args: Vec<Value>) {
        self.f.block_mut(self.b).term = Terminator::Jump(Target::new(to, args));
    }

    fn branch(&mut self, cond: Value, then: (Block, Vec<Value>), other: (Block, Vec<Value>)) {
        self.f.block_mut(self.b).term = Terminator::Branch {
            cond,
            then: Target::new(then.0, then.1),
            otherwise: Target::new(other.0, other.1),
        };
    }
}

// ---- running ----

struct Tensor {
    dims: [u32; 4],
    data: Vec<u32>,
}

impl Tensor {
    fn new(dims: [u32; 4], data: Vec<u32>) -> Tensor {
        assert_eq!(data.len(), dims.iter().product::<u32>() as usize);
        Tensor { dims, data }
    }

    fn zeros(dims: [u32; 4]) -> Tensor {
        Tensor::new(dims, vec![0; dims.iter().product::<u32>() as usize])
    }
}

struct Run {
    tensors: Vec<Tensor>,
    core: Core,
    instructions: u64,
}

fn compile(f: &Function, level: OptLevel) -> Output {
    match back::compile(f, level) {
        Ok(o) => o,
        Err(e) => panic!("{level:?}: {e}"),
    }
}

fn run_binary(
    bin: &sagrada_isa::binary::KernelBinary,
    mut tensors: Vec<Tensor>,
    scalars: &[u32],
    dims: [u32; 4],
    points: &[[u32; 4]],
) -> Run {
    let mut mem = FlatMemory::new(MEM_BASE, REGION as usize * tensors.len().max(1));
    let mut descs = Vec::new();
    for (k, t) in tensors.iter().enumerate() {
        let base = MEM_BASE + REGION * k as u64;
        for (j, w) in t.data.iter().enumerate() {
            let at = (base - MEM_BASE) as usize + 4 * j;
            mem.bytes[at..at + 4].copy_from_slice(&w.to_le_bytes());
        }
        let d = t.dims;
        descs.push(TensorDesc {
            base,
            elem_size: 4,
            dims: d,
            strides: [1, d[0], d[0] * d[1], d[0] * d[1] * d[2]],
        });
    }
    let program = Program::decode(&bin.code, bin.entry);
    let launch = Launch {
        dims,
        tensors: &descs,
        scalars,
    };
    let mut core = Core::new(0);
    core.start_launch();
    for &p in points {
        if let Err(e) = core.run(&program, &launch, p, &mut mem) {
            panic!(
                "the kernel stopped at {p:?}: {e:?}\n{}",
                sagrada_isa::disasm::disassemble(bin)
            );
        }
    }
    for (k, t) in tensors.iter_mut().enumerate() {
        for (j, w) in t.data.iter_mut().enumerate() {
            let at = REGION as usize * k + 4 * j;
            *w = u32::from_le_bytes(mem.bytes[at..at + 4].try_into().unwrap());
        }
    }
    let instructions = core.counters.instructions;
    Run {
        tensors,
        core,
        instructions,
    }
}

/// Compiles at both levels, runs once at point 0, returns each level's tensors.
fn run_both(f: &Function, tensors: impl Fn() -> Vec<Tensor>, scalars: &[u32]) -> Vec<Run> {
    LEVELS
        .iter()
        .map(|&level| {
            let out = compile(f, level);
            run_binary(&out.binary, tensors(), scalars, [1, 1, 1, 1], &[[0; 4]])
        })
        .collect()
}

/// A deterministic pseudo-random sequence.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) as u32
    }

    fn small_f32(&mut self) -> f32 {
        (self.next() % 2001) as f32 / 100.0 - 10.0
    }
}

// ---- scalars ----

#[test]
fn scalar_integer_arithmetic_matches_the_host() {
    let mut k = K::new(&[
        ("out", ParamKind::TensorI32),
        ("a", ParamKind::I32),
        ("b", ParamKind::I32),
    ]);
    let a = k.arg_i(0);
    let b = k.arg_i(1);
    let seven = k.i(7);
    let minus3 = k.i(-3);
    let ops = [
        Op::Add,
        Op::Sub,
        Op::Mul,
        Op::Div,
        Op::Divu,
        Op::Rem,
        Op::Remu,
        Op::And,
        Op::Or,
        Op::Xor,
        Op::Shl,
        Op::Shr,
        Op::Sra,
        Op::Min,
        Op::Max,
    ];
    let mut n = 0;
    for op in ops {
        for (x, y) in [(a, b), (a, seven), (seven, b), (minus3, a)] {
            let r = k.op(op, &[x, y], Type::I32);
            k.out(0, n, r);
            n += 1;
        }
    }
    let (av, bv) = (-1234567i32, 13i32);
    let host = |op: Op, x: i32, y: i32| -> i32 {
        match op {
            Op::Add => x.wrapping_add(y),
            Op::Sub => x.wrapping_sub(y),
            Op::Mul => x.wrapping_mul(y),
            Op::Div => x.wrapping_div(y),
            Op::Divu => ((x as u32) / (y as u32)) as i32,
            Op::Rem => x.wrapping_rem(y),
            Op::Remu => ((x as u32) % (y as u32)) as i32,
            Op::And => x & y,
            Op::Or => x | y,
            Op::Xor => x ^ y,
            Op::Shl => x.wrapping_shl(y as u32 & 31),
            Op::Shr => ((x as u32) >> (y as u32 & 31)) as i32,
            Op::Sra => x >> (y as u32 & 31),
            Op::Min => x.min(y),
            _ => x.max(y),
        }
    };
    let mut expect = Vec::new();
    for op in ops {
        for (x, y) in [(av, bv), (av, 7), (7, bv), (-3, av)] {
            expect.push(host(op, x, y) as u32);
        }
    }
    for r in run_both(
        &k.f,
        || vec![Tensor::zeros([n as u32, 1, 1, 1])],
        &[av as u32, bv as u32],
    ) {
        assert_eq!(r.tensors[0].data, expect);
    }
}

#[test]
fn scalar_compares_and_selects_match_the_host() {
    let mut k = K::new(&[
        ("out", ParamKind::TensorI32),
        ("a", ParamKind::I32),
        ("b", ParamKind::I32),
        ("x", ParamKind::F32),
        ("y", ParamKind::F32),
    ]);
    let conds = [
        Cond::Eq,
        Cond::Ne,
        Cond::Lt,
        Cond::Le,
        Cond::Gt,
        Cond::Ge,
        Cond::Ltu,
        Cond::Leu,
        Cond::Gtu,
        Cond::Geu,
    ];
    let fconds = [Cond::Eq, Cond::Ne, Cond::Lt, Cond::Le, Cond::Gt, Cond::Ge];
    let cases: [(i32, i32, f32, f32); 4] = [
        (3, 5, 1.5, 2.5),
        (-3, 5, 2.5, 2.5),
        (5, 5, f32::NAN, 1.0),
        (7, -2, -0.0, 0.0),
    ];
    let mut n = 0;
    let a = k.arg_i(0);
    let b = k.arg_i(1);
    let x = k.arg_f(2);
    let y = k.arg_f(3);
    let ten = k.i(10);
    for c in conds {
        let r = k.op(Op::Icmp(c), &[a, b], Type::I32);
        k.out(0, n, r);
        let r2 = k.op(Op::Icmp(c), &[a, ten], Type::I32);
        k.out(0, n + 1, r2);
        // A select on the compare, and on an arbitrary nonzero condition.
        let s = k.op(Op::Select, &[r, a, b], Type::I32);
        k.out(0, n + 2, s);
        n += 3;
    }
    for c in fconds {
        let r = k.op(Op::Fcmp(c), &[x, y], Type::I32);
        k.out(0, n, r);
        n += 1;
    }
    let s = k.op(Op::Select, &[a, x, y], Type::F32);
    k.out(0, n, s);
    let neg = k.op(Op::Fneg, &[x], Type::F32);
    k.out(0, n + 1, neg);
    let abs = k.op(Op::Fabs, &[x], Type::F32);
    k.out(0, n + 2, abs);
    n += 3;
    for (av, bv, xv, yv) in cases {
        let icmp = |c: Cond, p: i32, q: i32| -> u32 {
            let (u, v) = (p as u32, q as u32);
            u32::from(match c {
                Cond::Eq => p == q,
                Cond::Ne => p != q,
                Cond::Lt => p < q,
                Cond::Le => p <= q,
                Cond::Gt => p > q,
                Cond::Ge => p >= q,
                Cond::Ltu => u < v,
                Cond::Leu => u <= v,
                Cond::Gtu => u > v,
                Cond::Geu => u >= v,
            })
        };
        let mut expect = Vec::new();
        for c in conds {
            let r = icmp(c, av, bv);
            expect.push(r);
            expect.push(icmp(c, av, 10));
            expect.push(if r != 0 { av as u32 } else { bv as u32 });
        }
        for c in fconds {
            expect.push(u32::from(match c {
                Cond::Eq => xv == yv,
                Cond::Ne => xv != yv,
                Cond::Lt => xv < yv,
                Cond::Le => xv <= yv,
                Cond::Gt => xv > yv,
                _ => xv >= yv,
            }));
        }
        expect.push(if av != 0 { xv.to_bits() } else { yv.to_bits() });
        expect.push((-xv).to_bits());
        expect.push(xv.abs().to_bits());
        let scalars = [av as u32, bv as u32, xv.to_bits(), yv.to_bits()];
        for r in run_both(&k.f, || vec![Tensor::zeros([n as u32, 1, 1, 1])], &scalars) {
            let got = &r.tensors[0].data;
            for (j, (g, e)) in got.iter().zip(&expect).enumerate() {
                let nan = f32::from_bits(*e).is_nan()
                    && f32::from_bits(*g).is_nan()
                    && j >= n as usize - 3;
                assert!(
                    g == e || nan,
                    "case {av} {bv} {xv} {yv}: element {j}: {g:#x} != {e:#x}"
                );
            }
        }
    }
}

#[test]
fn scalar_float_arithmetic_and_multiply_add_match_the_host() {
    let mut k = K::new(&[
        ("out", ParamKind::TensorF32),
        ("x", ParamKind::F32),
        ("y", ParamKind::F32),
        ("z", ParamKind::F32),
    ]);
    let x = k.arg_f(0);
    let y = k.arg_f(1);
    let z = k.arg_f(2);
    let ops = [Op::Fadd, Op::Fsub, Op::Fmul, Op::Fdiv, Op::Fmin, Op::Fmax];
    let mut n = 0;
    for op in ops {
        let r = k.op(op, &[x, y], Type::F32);
        k.out(0, n, r);
        n += 1;
    }
    let m = k.op(Op::Fmul, &[x, y], Type::F32);
    let s = k.op(Op::Fadd, &[z, m], Type::F32);
    k.out(0, n, s);
    let mad = k.op(Op::Fmad, &[x, z, y], Type::F32);
    k.out(0, n + 1, mad);
    let sq = k.op(Op::Fsqrt, &[z], Type::F32);
    k.out(0, n + 2, sq);
    let rc = k.op(Op::Frcp, &[x], Type::F32);
    k.out(0, n + 3, rc);
    let i = k.op(Op::CvtI32F32, &[y], Type::I32);
    let back_ = k.op(Op::CvtF32I32, &[i], Type::F32);
    k.out(0, n + 4, back_);
    let bits = k.op(Op::Bitcast, &[x], Type::I32);
    k.out(0, n + 5, bits);
    n += 6;
    let (xv, yv, zv) = (1.25f32, -3.75f32, 2.0f32);
    let mut expect: Vec<f32> = vec![xv + yv, xv - yv, xv * yv, xv / yv, xv.min(yv), xv.max(yv)];
    expect.push(zv + xv * yv);
    expect.push(xv * zv + yv);
    expect.push(zv.sqrt());
    expect.push(1.0 / xv);
    expect.push((yv as i32) as f32);
    expect.push(xv);
    let expect: Vec<u32> = expect.iter().map(|f| f.to_bits()).collect();
    let scalars = [xv.to_bits(), yv.to_bits(), zv.to_bits()];
    for r in run_both(&k.f, || vec![Tensor::zeros([n as u32, 1, 1, 1])], &scalars) {
        assert_eq!(r.tensors[0].data, expect);
    }
    // The product folded into the add.
    let out = compile(&k.f, OptLevel::O1);
    assert!(out.asm.contains("mad "), "{}", out.asm);
}

// ---- vectors ----

fn vec_inputs(seed: u64, rows: usize) -> Vec<u32> {
    let mut g = Lcg(seed);
    (0..64 * rows).map(|_| g.small_f32().to_bits()).collect()
}

#[test]
fn vector_float_and_integer_arithmetic_matches_the_host() {
    let mut k = K::new(&[
        ("x", ParamKind::TensorF32),
        ("out", ParamKind::TensorF32),
        ("s", ParamKind::F32),
    ]);
    let a = k.load_vec(0, 0, Type::VF32);
    let b = k.load_vec(0, 1, Type::VF32);
    let c = k.load_vec(0, 2, Type::VF32);
    let s = k.arg_f(0);
    let bs = k.op(Op::Broadcast, &[s], Type::VF32);
    let mut row = 0;
    let mut emit = |k: &mut K, v: Value| {
        k.out_vec(1, row, v);
        row += 1;
    };
    for op in [Op::Fadd, Op::Fsub, Op::Fmul, Op::Fdiv, Op::Fmin, Op::Fmax] {
        let r = k.op(op, &[a, b], Type::VF32);
        emit(&mut k, r);
    }
    let r = k.op(Op::Fadd, &[a, bs], Type::VF32); // vadds
    emit(&mut k, r);
    let r = k.op(Op::Fmul, &[bs, b], Type::VF32); // vmuls
    emit(&mut k, r);
    let r = k.op(Op::Fmad, &[a, b, c], Type::VF32); // vmad
    emit(&mut k, r);
    let r = k.op(Op::Fmad, &[a, bs, c], Type::VF32); // vmads
    emit(&mut k, r);
    let m = k.op(Op::Fmul, &[b, c], Type::VF32);
    let r = k.op(Op::Fadd, &[a, m], Type::VF32); // vmad from an add of a product
    emit(&mut k, r);
    for op in [Op::Fneg, Op::Fabs, Op::Fsqrt, Op::Frcp] {
        let r = k.op(op, &[a], Type::VF32);
        emit(&mut k, r);
    }
    let ai = k.op(Op::CvtI32F32, &[a], Type::VI32);
    let bi = k.op(Op::CvtI32F32, &[b], Type::VI32);
    for op in [
        Op::Add,
        Op::Sub,
        Op::Mul,
        Op::And,
        Op::Or,
        Op::Xor,
        Op::Shl,
        Op::Shr,
        Op::Sra,
        Op::Min,
        Op::Max,
        Op::Minu,
        Op::Maxu,
    ] {
        let r = k.op(op, &[ai, bi], Type::VI32);
        let r = k.op(Op::Bitcast, &[r], Type::VF32);
        emit(&mut k, r);
    }
    let seven = k.i(7);
    let b7 = k.op(Op::Broadcast, &[seven], Type::VI32);
    let r = k.op(Op::Add, &[b7, ai], Type::VI32); // vadds.i32
    let r = k.op(Op::CvtF32I32, &[r], Type::VF32);
    emit(&mut k, r);
    let io = k.op(Op::Iota, &[], Type::VI32);
    let r = k.op(Op::Bitcast, &[io], Type::VF32);
    emit(&mut k, r);
    let three = k.i(3);
    let r = k.op(Op::Rotate, &[a, three], Type::VF32);
    emit(&mut k, r);
    let r = k.op(Op::Permute, &[a, bi], Type::VF32);
    emit(&mut k, r);
    let e = k.op(Op::Extract, &[b, three], Type::F32);
    let r = k.op(Op::Insert, &[a, e, seven], Type::VF32);
    emit(&mut k, r);
    let sum = k.op(Op::RedAdd, &[a], Type::F32);
    let mx = k.op(Op::RedMax, &[a], Type::F32);
    let mn = k.op(Op::RedMin, &[ai], Type::I32);
    let mn = k.op(Op::Bitcast, &[mn], Type::F32);
    let v = k.op(Op::Broadcast, &[sum], Type::VF32);
    let v = k.op(Op::Insert, &[v, mx, seven], Type::VF32);
    let v = k.op(Op::Insert, &[v, mn, three], Type::VF32);
    emit(&mut k, v);
    let rows = row as usize;

    let input = vec_inputs(7, 3);
    let f = |r: usize, l: usize| f32::from_bits(input[64 * r + l]);
    let sv = 1.5f32;
    let mut expect: Vec<u32> = Vec::new();
    let mut lanes = |g: &dyn Fn(usize) -> u32| expect.extend((0..64).map(g));
    let fl = |x: f32| x.to_bits();
    lanes(&|l| fl(f(0, l) + f(1, l)));
    lanes(&|l| fl(f(0, l) - f(1, l)));
    lanes(&|l| fl(f(0, l) * f(1, l)));
    lanes(&|l| fl(f(0, l) / f(1, l)));
    lanes(&|l| fl(f(0, l).min(f(1, l))));
    lanes(&|l| fl(f(0, l).max(f(1, l))));
    lanes(&|l| fl(f(0, l) + sv));
    lanes(&|l| fl(sv * f(1, l)));
    lanes(&|l| fl(f(0, l) * f(1, l) + f(2, l)));
    lanes(&|l| fl(f(0, l) * sv + f(2, l)));
    lanes(&|l| fl(f(0, l) + f(1, l) * f(2, l)));
    lanes(&|l| fl(-f(0, l)));
    lanes(&|l| fl(f(0, l).abs()));
    lanes(&|l| fl(f(0, l).sqrt()));
    lanes(&|l| fl(1.0 / f(0, l)));
    let ia = |l: usize| f(0, l) as i32;
    let ib = |l: usize| f(1, l) as i32;
    lanes(&|l| ia(l).wrapping_add(ib(l)) as u32);
    lanes(&|l| ia(l).wrapping_sub(ib(l)) as u32);
    lanes(&|l| ia(l).wrapping_mul(ib(l)) as u32);
    lanes(&|l| (ia(l) & ib(l)) as u32);
    lanes(&|l| (ia(l) | ib(l)) as u32);
    lanes(&|l| (ia(l) ^ ib(l)) as u32);
    lanes(&|l| ia(l).wrapping_shl(ib(l) as u32 & 31) as u32);
    lanes(&|l| (ia(l) as u32) >> (ib(l) as u32 & 31));
    lanes(&|l| (ia(l) >> (ib(l) as u32 & 31)) as u32);
    lanes(&|l| ia(l).min(ib(l)) as u32);
    lanes(&|l| ia(l).max(ib(l)) as u32);
    lanes(&|l| (ia(l) as u32).min(ib(l) as u32));
    lanes(&|l| (ia(l) as u32).max(ib(l) as u32));
    lanes(&|l| fl((ia(l) + 7) as f32));
    lanes(&|l| l as u32);
    lanes(&|l| fl(f(0, (l + 3) & 63)));
    lanes(&|l| fl(f(0, (ib(l) & 63) as usize)));
    lanes(&|l| if l == 7 { fl(f(1, 3)) } else { fl(f(0, l)) });
    // The tree-ordered sum, as vredsum.f32 defines it.
    let mut t: Vec<f32> = (0..64).map(|l| f(0, l)).collect();
    for h in [32, 16, 8, 4, 2, 1] {
        for i in 0..h {
            t[i] += t[i + h];
        }
    }
    let mx = (0..64).map(|l| f(0, l)).fold(f32::NEG_INFINITY, f32::max);
    let mn = (0..64).map(ia).min().unwrap();
    lanes(&|l| match l {
        7 => fl(mx),
        3 => mn as u32,
        _ => fl(t[0]),
    });
    assert_eq!(expect.len(), rows * 64);
    for r in run_both(
        &k.f,
        || {
            vec![
                Tensor::new([64, 3, 1, 1], input.clone()),
                Tensor::zeros([64, rows as u32, 1, 1]),
            ]
        },
        &[sv.to_bits()],
    ) {
        for (j, (g, e)) in r.tensors[1].data.iter().zip(&expect).enumerate() {
            assert_eq!(g, e, "row {} lane {}", j / 64, j % 64);
        }
    }
    let asm = compile(&k.f, OptLevel::O1).asm;
    for m in [
        "vadds.f32",
        "vmuls.f32",
        "vmad.f32",
        "vmads.f32",
        "vadds.i32",
    ] {
        assert!(asm.contains(m), "no {m} in\n{asm}");
    }
}

#[test]
fn vector_compares_masks_and_selects_match_the_host() {
    let mut k = K::new(&[("x", ParamKind::TensorF32), ("out", ParamKind::TensorI32)]);
    let a = k.load_vec(0, 0, Type::VF32);
    let b = k.load_vec(0, 1, Type::VF32);
    let ai = k.op(Op::CvtI32F32, &[a], Type::VI32);
    let bi = k.op(Op::CvtI32F32, &[b], Type::VI32);
    let one = k.i(1);
    let ones = k.op(Op::Broadcast, &[one], Type::VI32);
    let zero = k.i(0);
    let zeros = k.op(Op::Broadcast, &[zero], Type::VI32);
    let mut row = 0;
    // Each mask is turned into a vector and counted at once, so few are live.
    let mut emit = |k: &mut K, m: Value| {
        let v = k.op(Op::Select, &[m, ones, zeros], Type::VI32);
        k.out_vec(1, row, v);
        let cnt = k.op(Op::MaskCount, &[m], Type::I32);
        let c4 = k.at(64 * 40 + row);
        k.effect(Op::StoreTensorScalar { slot: 1 }, &[c4, cnt]);
        row += 1;
    };
    for c in [Cond::Eq, Cond::Ne, Cond::Lt, Cond::Le, Cond::Gt, Cond::Ge] {
        let m = k.op(Op::Fcmp(c), &[a, b], Type::Mask);
        emit(&mut k, m);
    }
    for c in [
        Cond::Eq,
        Cond::Ne,
        Cond::Lt,
        Cond::Le,
        Cond::Gt,
        Cond::Ge,
        Cond::Ltu,
        Cond::Leu,
        Cond::Gtu,
        Cond::Geu,
    ] {
        let m = k.op(Op::Icmp(c), &[ai, bi], Type::Mask);
        emit(&mut k, m);
    }
    let m0 = k.op(Op::Fcmp(Cond::Lt), &[a, b], Type::Mask);
    let m1 = k.op(Op::Icmp(Cond::Lt), &[ai, bi], Type::Mask);
    for op in [Op::MaskAnd, Op::MaskOr, Op::MaskXor] {
        let m = k.op(op, &[m0, m1], Type::Mask);
        emit(&mut k, m);
    }
    let m = k.op(Op::MaskNot, &[m0], Type::Mask);
    emit(&mut k, m);
    let twenty = k.i(20);
    let m = k.op(Op::Lanes, &[twenty], Type::Mask);
    emit(&mut k, m);
    let all = k.op(Op::Const(0), &[], Type::Mask);
    emit(&mut k, all);
    let input: Vec<u32> = {
        let mut g = Lcg(99);
        (0..128)
            .map(|_| ((g.next() % 7) as f32 - 3.0).to_bits())
            .collect()
    };
    let f = |r: usize, l: usize| f32::from_bits(input[64 * r + l]);
    let fa = |l| f(0, l);
    let fb = |l| f(1, l);
    let mut expect_masks: Vec<Box<dyn Fn(usize) -> bool>> = vec![
        Box::new(|l| fa(l) == fb(l)),
        Box::new(|l| fa(l) != fb(l)),
        Box::new(|l| fa(l) < fb(l)),
        Box::new(|l| fa(l) <= fb(l)),
        Box::new(|l| fa(l) > fb(l)),
        Box::new(|l| fa(l) >= fb(l)),
    ];
    let ia = move |l| fa(l) as i32;
    let ib = move |l| fb(l) as i32;
    expect_masks.push(Box::new(move |l| ia(l) == ib(l)));
    expect_masks.push(Box::new(move |l| ia(l) != ib(l)));
    expect_masks.push(Box::new(move |l| ia(l) < ib(l)));
    expect_masks.push(Box::new(move |l| ia(l) <= ib(l)));
    expect_masks.push(Box::new(move |l| ia(l) > ib(l)));
    expect_masks.push(Box::new(move |l| ia(l) >= ib(l)));
    expect_masks.push(Box::new(move |l| (ia(l) as u32) < ib(l) as u32));
    expect_masks.push(Box::new(move |l| (ia(l) as u32) <= ib(l) as u32));
    expect_masks.push(Box::new(move |l| (ia(l) as u32) > ib(l) as u32));
    expect_masks.push(Box::new(move |l| (ia(l) as u32) >= ib(l) as u32));
    let e0 = move |l| fa(l) < fb(l);
    let e1 = move |l| ia(l) < ib(l);
    expect_masks.push(Box::new(move |l| e0(l) && e1(l)));
    expect_masks.push(Box::new(move |l| e0(l) || e1(l)));
    expect_masks.push(Box::new(move |l| e0(l) != e1(l)));
    expect_masks.push(Box::new(move |l| !e0(l)));
    expect_masks.push(Box::new(|l| l < 20));
    expect_masks.push(Box::new(|_| true));
    let rows = row as u32;
    for r in run_both(
        &k.f,
        || {
            vec![
                Tensor::new([64, 2, 1, 1], input.clone()),
                Tensor::zeros([64 * 41, rows, 1, 1]),
            ]
        },
        &[],
    ) {
        let out = &r.tensors[1].data;
        for (m, e) in expect_masks.iter().enumerate() {
            let want: Vec<u32> = (0..64).map(|l| u32::from(e(l))).collect();
            assert_eq!(&out[64 * 41 * m..64 * 41 * m + 64], &want[..], "mask {m}");
            let count = want.iter().sum::<u32>();
            assert_eq!(out[64 * 40 + m], count, "count of mask {m}");
        }
    }
}

// ---- control flow ----

/// `sum = 0; for i in 0..n { sum += i * 3 }`, with both values block parameters.
fn sum_loop() -> Function {
    let mut k = K::new(&[("out", ParamKind::TensorI32), ("n", ParamKind::I32)]);
    let n = k.arg_i(0);
    let zero = k.i(0);
    let head = k.f.add_block();
    let body = k.f.add_block();
    let exit = k.f.add_block();
    k.jump(head, vec![zero, zero]);
    k.b = head;
    let i = k.f.add_block_param(head, Type::I32);
    let sum = k.f.add_block_param(head, Type::I32);
    let c = k.op(Op::Icmp(Cond::Lt), &[i, n], Type::I32);
    k.branch(c, (body, vec![]), (exit, vec![]));
    k.b = body;
    let t = k.op(Op::Mul, &[i, zero], Type::I32);
    let three = k.i(3);
    let t2 = k.op(Op::Mul, &[i, three], Type::I32);
    let t3 = k.op(Op::Add, &[t, t2], Type::I32);
    let sum2 = k.op(Op::Add, &[sum, t3], Type::I32);
    let one = k.i(1);
    let i2 = k.op(Op::Add, &[i, one], Type::I32);
    k.jump(head, vec![i2, sum2]);
    k.b = exit;
    k.out(0, 0, sum);
    k.f
}

#[test]
fn a_sum_loop_with_block_parameters_computes_the_sum() {
    let f = sum_loop();
    for n in [0u32, 1, 10, 100] {
        for r in run_both(&f, || vec![Tensor::zeros([1, 1, 1, 1])], &[n]) {
            assert_eq!(r.tensors[0].data[0], 3 * n * n.saturating_sub(1) / 2);
        }
    }
}

#[test]
fn the_sum_loop_at_o1_has_no_moves() {
    let out = compile(&sum_loop(), OptLevel::O1);
    assert!(!out.asm.contains("mov "), "{}", out.asm);
    // The loop test branches to the exit and the body jumps back: two branches.
    let jumps = out
        .asm
        .lines()
        .filter(|l| l.trim_start().starts_with("j "))
        .count();
    assert!(jumps <= 1, "{}", out.asm);
}

#[test]
fn parameters_swapped_on_a_back_edge_are_swapped() {
    // (a, b) = (b, a) n times, with a third value rotating through as well.
    let mut k = K::new(&[("out", ParamKind::TensorI32), ("n", ParamKind::I32)]);
    let n = k.arg_i(0);
    let a0 = k.i(11);
    let b0 = k.i(22);
    let c0 = k.i(33);
    let zero = k.i(0);
    let head = k.f.add_block();
    let exit = k.f.add_block();
    k.jump(head, vec![zero, a0, b0, c0]);
    k.b = head;
    let i = k.f.add_block_param(head, Type::I32);
    let a = k.f.add_block_param(head, Type::I32);
    let b = k.f.add_block_param(head, Type::I32);
    let c = k.f.add_block_param(head, Type::I32);
    let one = k.i(1);
    let i2 = k.op(Op::Add, &[i, one], Type::I32);
    let more = k.op(Op::Icmp(Cond::Lt), &[i2, n], Type::I32);
    k.branch(more, (head, vec![i2, b, c, a]), (exit, vec![]));
    k.b = exit;
    k.out(0, 0, a);
    k.out(0, 1, b);
    k.out(0, 2, c);
    let f = k.f;
    for n in [1u32, 2, 3, 4, 5] {
        let mut v = [11u32, 22, 33];
        for _ in 1..n {
            v = [v[1], v[2], v[0]];
        }
        for r in run_both(&f, || vec![Tensor::zeros([3, 1, 1, 1])], &[n]) {
            assert_eq!(r.tensors[0].data, v.to_vec(), "n = {n}");
        }
    }
}

#[test]
fn guarded_operations_keep_the_passthru_lanes() {
    let mut k = K::new(&[("x", ParamKind::TensorF32), ("out", ParamKind::TensorF32)]);
    let a = k.load_vec(0, 0, Type::VF32);
    let b = k.load_vec(0, 1, Type::VF32);
    let twenty = k.i(20);
    let m = k.op(Op::Lanes, &[twenty], Type::Mask);
    // Passthru dies at the instruction: the result takes its register.
    let r = k
        .guarded(Op::Fadd, &[a, b], Some(Type::VF32), m, false, Some(b))
        .unwrap();
    // Passthru still live afterwards (a is stored below): copied first.
    let r2 = k
        .guarded(Op::Fmul, &[r, b], Some(Type::VF32), m, true, Some(a))
        .unwrap();
    // A guarded integer compare needing a negation, merged with a passthru mask.
    let ai = k.op(Op::CvtI32F32, &[a], Type::VI32);
    let bi = k.op(Op::CvtI32F32, &[b], Type::VI32);
    let all = k.op(Op::Const(0), &[], Type::Mask);
    let ne = k
        .guarded(
            Op::Icmp(Cond::Ne),
            &[ai, bi],
            Some(Type::Mask),
            m,
            false,
            Some(all),
        )
        .unwrap();
    let sel = k.op(Op::Select, &[ne, a, b], Type::VF32);
    // Accumulate into r2 with vmads under the negated guard.
    let two = k.fc(2.0);
    let b2 = k.op(Op::Broadcast, &[two], Type::VF32);
    let acc = k
        .guarded(Op::Fmad, &[a, b2, r2], Some(Type::VF32), m, true, Some(r2))
        .unwrap();
    // A guarded store: only the first 20 lanes of row 4.
    k.out_vec(1, 0, r);
    k.out_vec(1, 1, r2);
    k.out_vec(1, 2, sel);
    k.out_vec(1, 3, acc);
    let z = k.i(0);
    let four = k.i(4);
    let c = k.int4([z, four, z, z]);
    k.guarded(Op::StoreTensor { slot: 1 }, &[c, a], None, m, false, None);
    k.out_vec(1, 5, a);
    let input: Vec<u32> = {
        let mut g = Lcg(5);
        (0..128)
            .map(|_| ((g.next() % 5) as f32 - 2.0).to_bits())
            .collect()
    };
    let f = |r: usize, l: usize| f32::from_bits(input[64 * r + l]);
    let mut expect = Vec::new();
    let er = |l: usize| if l < 20 { f(0, l) + f(1, l) } else { f(1, l) };
    let er2 = |l: usize| if l < 20 { f(0, l) } else { er(l) * f(1, l) };
    expect.extend((0..64).map(|l| er(l).to_bits()));
    expect.extend((0..64).map(|l| er2(l).to_bits()));
    expect.extend((0..64).map(|l| {
        let ne = l >= 20 || (f(0, l) as i32 != f(1, l) as i32);
        if ne { f(0, l) } else { f(1, l) }.to_bits()
    }));
    expect.extend((0..64).map(|l| {
        if l < 20 {
            er2(l)
        } else {
            f(0, l) * 2.0 + er2(l)
        }
        .to_bits()
    }));
    expect.extend((0..64).map(|l| if l < 20 { f(0, l).to_bits() } else { 0 }));
    expect.extend((0..64).map(|l| f(0, l).to_bits()));
    for r in run_both(
        &k.f,
        || {
            vec![
                Tensor::new([64, 2, 1, 1], input.clone()),
                Tensor::zeros([64, 6, 1, 1]),
            ]
        },
        &[],
    ) {
        for (j, (g, e)) in r.tensors[1].data.iter().zip(&expect).enumerate() {
            assert_eq!(g, e, "row {} lane {}", j / 64, j % 64);
        }
    }
}

/// The row sum of `kernels/row_sum.s` as IR: the column loop carries the coordinates
/// and the partial sums.
fn row_sum() -> Function {
    let mut k = K::new(&[("x", ParamKind::TensorF32), ("out", ParamKind::TensorF32)]);
    let row = k.op(Op::Idx(0), &[], Type::I32);
    let cols = k.op(Op::Tdim { slot: 0, dim: 0 }, &[], Type::I32);
    let zero = k.i(0);
    let c0 = k.int4([zero, row, zero, zero]);
    let fz = k.fc(0.0);
    let acc0 = k.op(Op::Broadcast, &[fz], Type::VF32);
    let body = k.f.add_block();
    let exit = k.f.add_block();
    k.jump(body, vec![c0, acc0]);
    k.b = body;
    let c = k.f.add_block_param(body, Type::Int4);
    let acc = k.f.add_block_param(body, Type::VF32);
    let col = k.op(Op::Int4Get(0), &[c], Type::I32);
    let left = k.op(Op::Sub, &[cols, col], Type::I32);
    let m = k.op(Op::Lanes, &[left], Type::Mask);
    let v = k
        .guarded(
            Op::LoadTensor { slot: 0 },
            &[c],
            Some(Type::VF32),
            m,
            false,
            None,
        )
        .unwrap();
    let acc2 = k
        .guarded(Op::Fadd, &[acc, v], Some(Type::VF32), m, false, Some(acc))
        .unwrap();
    let sixty4 = k.i(64);
    let col2 = k.op(Op::Add, &[col, sixty4], Type::I32);
    let c2 = k.op(Op::Int4Set(0), &[c, col2], Type::Int4);
    let more = k.op(Op::Icmp(Cond::Lt), &[col2, cols], Type::I32);
    k.branch(more, (body, vec![c2, acc2]), (exit, vec![]));
    k.b = exit;
    let s = k.op(Op::RedAdd, &[acc2], Type::F32);
    let oc = k.int4([row, zero, zero, zero]);
    k.effect(Op::StoreTensorScalar { slot: 1 }, &[oc, s]);
    k.f
}

#[test]
fn a_row_sum_over_int4_coordinates_matches_the_host_and_the_hand_written_kernel() {
    let (cols, rows) = (150u32, 3u32);
    let mut g = Lcg(3);
    let input: Vec<u32> = (0..cols * rows).map(|_| g.small_f32().to_bits()).collect();
    let hand = sagrada_isa::asm::assemble(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../kernels/row_sum.s"
        ))
        .unwrap(),
        "row_sum.s",
    )
    .unwrap();
    let points: Vec<[u32; 4]> = (0..rows).map(|r| [r, 0, 0, 0]).collect();
    let tensors = || {
        vec![
            Tensor::new([cols, rows, 1, 1], input.clone()),
            Tensor::zeros([rows, 1, 1, 1]),
        ]
    };
    let reference = run_binary(&hand, tensors(), &[], [rows, 1, 1, 1], &points);
    for level in LEVELS {
        let out = compile(&row_sum(), level);
        let r = run_binary(&out.binary, tensors(), &[], [rows, 1, 1, 1], &points);
        assert_eq!(r.tensors[1].data, reference.tensors[1].data, "{level:?}");
        if level == OptLevel::O1 {
            assert!(
                r.instructions * 2 <= reference.instructions * 3,
                "{} instructions against {} by hand:\n{}",
                r.instructions,
                reference.instructions,
                out.asm
            );
        }
    }
}

// ---- memory ----

#[test]
fn scratchpad_arrays_of_scalars_and_vectors_round_trip() {
    let mut k = K::new(&[("x", ParamKind::TensorF32), ("out", ParamKind::TensorF32)]);
    k.f.scratch_bytes = 4096;
    let a = k.load_vec(0, 0, Type::VF32);
    let base = k.i(256);
    let n = k.op(Op::Arg(0), &[], Type::I32); // 8, at run time
    let addr = k.op(Op::Add, &[n, base], Type::I32);
    k.effect(Op::StoreScratchVec { offset: 512 }, &[addr, a]);
    let back_ = k.op(Op::LoadScratchVec { offset: 508 }, &[addr], Type::VF32);
    k.out_vec(1, 0, back_);
    let e = k.op(Op::Extract, &[a, n], Type::F32);
    let z = k.i(0);
    k.effect(Op::StoreScratch { offset: 40 }, &[z, e]);
    let forty = k.i(40);
    let s = k.op(Op::LoadScratch { offset: 0 }, &[forty], Type::F32);
    let c = k.at(64);
    k.effect(Op::StoreTensorScalar { slot: 1 }, &[c, s]);
    let input = vec_inputs(11, 1);
    for level in LEVELS {
        let out = compile(&k.f, level);
        assert_eq!(out.binary.scratch_bytes, 4096);
        let r = run_binary(
            &out.binary,
            vec![
                Tensor::new([64, 1, 1, 1], input.clone()),
                Tensor::zeros([65, 1, 1, 1]),
            ],
            &[8],
            [1, 1, 1, 1],
            &[[0; 4]],
        );
        let got = &r.tensors[1].data;
        // Loaded 4 bytes lower: lane l holds lane l - 1, lane 0 what was below.
        for l in 1..64 {
            assert_eq!(got[l], input[l - 1]);
        }
        assert_eq!(got[64], input[8]);
        assert_eq!(r.core.scratch[776..780], input[0].to_le_bytes());
    }
    // The constant address goes in the immediate off s0; a + const too.
    let asm = compile(&k.f, OptLevel::O1).asm;
    assert!(asm.contains(", s0, 40"), "{asm}");
    assert!(asm.contains(", 768"), "{asm}");
}

#[test]
fn the_vmadl_pattern_becomes_vmadl() {
    // acc = a * broadcast(extract(b, k)) + acc over k = 0..3, then the Fmad form.
    let mut k = K::new(&[("x", ParamKind::TensorF32), ("out", ParamKind::TensorF32)]);
    let a = k.load_vec(0, 0, Type::VF32);
    let b = k.load_vec(0, 1, Type::VF32);
    let mut acc = k.load_vec(0, 2, Type::VF32);
    for lane in 0..3 {
        let l = k.i(lane);
        let e = k.op(Op::Extract, &[b, l], Type::F32);
        let bc = k.op(Op::Broadcast, &[e], Type::VF32);
        if lane == 1 {
            acc = k.op(Op::Fmad, &[a, bc, acc], Type::VF32);
        } else {
            let p = k.op(Op::Fmul, &[a, bc], Type::VF32);
            acc = k.op(Op::Fadd, &[acc, p], Type::VF32);
        }
    }
    k.out_vec(1, 0, acc);
    let input = vec_inputs(17, 3);
    let f = |r: usize, l: usize| f32::from_bits(input[64 * r + l]);
    let expect: Vec<u32> = (0..64)
        .map(|l| {
            let mut x = f(2, l);
            for lane in 0..3 {
                x += f(0, l) * f(1, lane);
            }
            x.to_bits()
        })
        .collect();
    for r in run_both(
        &k.f,
        || {
            vec![
                Tensor::new([64, 3, 1, 1], input.clone()),
                Tensor::zeros([64, 1, 1, 1]),
            ]
        },
        &[],
    ) {
        assert_eq!(r.tensors[1].data, expect);
    }
    let asm = compile(&k.f, OptLevel::O1).asm;
    assert_eq!(asm.matches("vmadl.f32").count(), 3, "{asm}");
    assert!(!asm.contains("vext") && !asm.contains("vbcast"), "{asm}");
}

// ---- pressure ----

#[test]
fn forty_live_scalars_are_spilled_and_reloaded() {
    let mut k = K::new(&[("out", ParamKind::TensorI32), ("a", ParamKind::I32)]);
    let a = k.arg_i(0);
    let vals: Vec<Value> = (1..=40)
        .map(|j| {
            let c = k.i(j * 1000);
            k.op(Op::Mul, &[a, c], Type::I32)
        })
        .collect();
    // Read in reverse so that every one is live at once.
    let mut sum = k.i(0);
    for (j, &v) in vals.iter().enumerate().rev() {
        let w = k.op(Op::Xor, &[v, sum], Type::I32);
        sum = k.op(Op::Add, &[w, v], Type::I32);
        k.out(0, j as i32, w);
    }
    k.out(0, 40, sum);
    let av = 7i32;
    let mut expect = vec![0u32; 41];
    let mut s = 0i32;
    for j in (0..40).rev() {
        let v = av.wrapping_mul((j as i32 + 1) * 1000);
        let w = v ^ s;
        s = w.wrapping_add(v);
        expect[j] = w as u32;
    }
    expect[40] = s as u32;
    for level in LEVELS {
        let out = compile(&k.f, level);
        assert!(
            out.binary.scratch_bytes > 0,
            "nothing spilled:\n{}",
            out.asm
        );
        let r = run_binary(
            &out.binary,
            vec![Tensor::zeros([41, 1, 1, 1])],
            &[av as u32],
            [1; 4],
            &[[0; 4]],
        );
        assert_eq!(r.tensors[0].data, expect, "{level:?}");
    }
}

#[test]
fn forty_live_vectors_are_spilled_and_reloaded() {
    let mut k = K::new(&[("x", ParamKind::TensorF32), ("out", ParamKind::TensorF32)]);
    k.f.scratch_bytes = 100;
    let a = k.load_vec(0, 0, Type::VF32);
    let vals: Vec<Value> = (1..=40)
        .map(|j| {
            let c = k.fc(j as f32);
            let b = k.op(Op::Broadcast, &[c], Type::VF32);
            k.op(Op::Fmul, &[a, b], Type::VF32)
        })
        .collect();
    // A subtraction, so that no product is folded into a multiply-add.
    let mut acc = a;
    for &v in vals.iter().rev() {
        acc = k.op(Op::Fsub, &[acc, v], Type::VF32);
    }
    for (j, &v) in vals.iter().enumerate() {
        if j % 8 == 0 {
            k.out_vec(1, (j / 8) as i32, v);
        }
    }
    k.out_vec(1, 5, acc);
    let input = vec_inputs(23, 1);
    let f = |l: usize| f32::from_bits(input[l]);
    let mut expect = Vec::new();
    for j in (0..40).step_by(8) {
        expect.extend((0..64).map(|l| (f(l) * (j + 1) as f32).to_bits()));
    }
    expect.extend((0..64).map(|l| {
        let mut x = f(l);
        for j in (1..=40).rev() {
            x -= f(l) * j as f32;
        }
        x.to_bits()
    }));
    for level in LEVELS {
        let out = compile(&k.f, level);
        // Spill slots come after the kernel's own 100 bytes.
        assert!(
            out.binary.scratch_bytes >= 100 + 256,
            "{}",
            out.binary.scratch_bytes
        );
        assert!(out.asm.contains("stv"), "{}", out.asm);
        let r = run_binary(
            &out.binary,
            vec![
                Tensor::new([64, 1, 1, 1], input.clone()),
                Tensor::zeros([64, 6, 1, 1]),
            ],
            &[],
            [1; 4],
            &[[0; 4]],
        );
        assert_eq!(r.tensors[1].data, expect, "{level:?}");
    }
}

#[test]
fn many_live_int4s_are_allocated_and_spilled() {
    // Twelve coordinates live at once (48 scalars): each reads one element.
    let mut k = K::new(&[("x", ParamKind::TensorI32), ("out", ParamKind::TensorI32)]);
    let zero = k.i(0);
    let coords: Vec<Value> = (0..12)
        .map(|j| {
            let a = k.arg_i(0);
            let c = k.i(j);
            let col = k.op(Op::Add, &[a, c], Type::I32);
            k.int4([col, zero, zero, zero])
        })
        .collect();
    let mut sum = k.i(0);
    for &c in coords.iter().rev() {
        let v = k.op(Op::LoadTensorScalar { slot: 0 }, &[c], Type::I32);
        sum = k.op(Op::Add, &[sum, v], Type::I32);
        let col = k.op(Op::Int4Get(0), &[c], Type::I32);
        let one = k.i(1);
        let c2 = k.op(Op::Int4Set(1), &[c, one], Type::Int4);
        let _ = col;
        k.effect(Op::StoreTensorScalar { slot: 1 }, &[c2, sum]);
    }
    let data: Vec<u32> = (0..20).map(|j| j * j + 1).collect();
    let base = 3u32;
    let mut expect = vec![0u32; 40];
    let mut s = 0u32;
    for j in (0..12).rev() {
        s += data[(base + j) as usize];
        expect[20 + (base + j) as usize] = s;
    }
    for level in LEVELS {
        let out = compile(&k.f, level);
        let r = run_binary(
            &out.binary,
            vec![
                Tensor::new([20, 1, 1, 1], data.clone()),
                Tensor::zeros([20, 2, 1, 1]),
            ],
            &[base],
            [1; 4],
            &[[0; 4]],
        );
        assert_eq!(r.tensors[1].data, expect, "{level:?}\n{}", out.asm);
    }
}

#[test]
fn masks_beyond_seven_are_spilled_and_reloaded() {
    // Twelve masks live at once (p1-p7 hold seven), each counted at the end in reverse.
    let mut k = K::new(&[("out", ParamKind::TensorI32)]);
    let masks: Vec<Value> = (1..=12)
        .map(|j| {
            let n = k.i(j * 5);
            k.op(Op::Lanes, &[n], Type::Mask)
        })
        .collect();
    let mut total = k.i(0);
    let mut weight = 1;
    for &m in masks.iter().rev() {
        // Weighted, so that a mask reloaded into the wrong place changes the sum.
        let c = k.op(Op::MaskCount, &[m], Type::I32);
        let w = k.i(weight);
        let cw = k.op(Op::Mul, &[c, w], Type::I32);
        total = k.op(Op::Add, &[total, cw], Type::I32);
        weight *= 3;
    }
    k.out(0, 0, total);
    let mut expect = 0i64;
    let mut weight = 1i64;
    for j in (1..=12i64).rev() {
        expect += (j * 5).min(64) * weight;
        weight *= 3;
    }
    for level in LEVELS {
        let out = compile(&k.f, level);
        assert!(
            out.asm.contains("vcmp.lt.u32"),
            "{level:?}: no mask was spilled\n{}",
            out.asm
        );
        let r = run_binary(
            &out.binary,
            vec![Tensor::zeros([1, 1, 1, 1])],
            &[],
            [1; 4],
            &[[0; 4]],
        );
        assert_eq!(
            r.tensors[0].data,
            vec![expect as u32],
            "{level:?}\n{}",
            out.asm
        );
    }
}

// ---- the listing ----

#[test]
fn the_listing_reassembles_to_the_same_binary() {
    for f in [sum_loop(), row_sum()] {
        for level in LEVELS {
            let out = compile(&f, level);
            let again = sagrada_isa::asm::assemble(&out.asm, "listing.s").unwrap();
            assert_eq!(again, out.binary);
        }
    }
}

#[test]
fn arguments_and_scratch_are_declared_in_the_binary() {
    let mut k = K::new(&[
        ("a", ParamKind::TensorBf16),
        ("n", ParamKind::U32),
        ("b", ParamKind::TensorI32),
        ("alpha", ParamKind::F32),
    ]);
    k.f.scratch_bytes = 64;
    let out = compile(&k.f, OptLevel::O1);
    use sagrada_isa::binary::{ArgDecl, ArgKind, ElemKind};
    assert_eq!(
        out.binary.args,
        vec![
            ArgDecl::tensor("a", ElemKind::Bf16),
            ArgDecl::scalar("n", ArgKind::U32),
            ArgDecl::tensor("b", ElemKind::I32),
            ArgDecl::scalar("alpha", ArgKind::F32),
        ]
    );
    assert_eq!(out.binary.scratch_bytes, 64);
    assert_eq!(out.binary.code.len(), 1);
    assert_eq!(
        sagrada_isa::Inst::decode(out.binary.code[0])
            .unwrap()
            .op
            .opcode(),
        Opcode::Halt
    );
}

#[test]
fn local_arrays_larger_than_the_scratchpad_are_refused() {
    let mut k = K::new(&[]);
    k.f.scratch_bytes = SCRATCH_BYTES as u32 + 4;
    let e = back::compile(&k.f, OptLevel::O1).unwrap_err();
    assert!(
        e.message.contains(&(SCRATCH_BYTES + 4).to_string()),
        "{}",
        e.message
    );
}
