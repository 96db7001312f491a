//! The HIR interpreter (`front::interp`, the language's reference semantics): the demo
//! kernels agree bit for bit with the IR interpreter on their lowered IR, and each
//! construct of the language gives the result written by hand here.

use sagrada_cc::front::{self, interp};
use sagrada_cc::ir::interp::{self as ir_interp, HostTensor};
use sagrada_isa::exec::FaultKind;

const LIMIT: u64 = 50_000_000;

fn check(src: &str) -> front::Program {
    match front::check(src) {
        Ok(p) => p,
        Err(d) => panic!("{}", d.render(src, "test.sgc")),
    }
}

/// Small deterministic random numbers (splitmix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// An f32 in [-4, 4) with a few fraction bits.
    fn f32(&mut self) -> f32 {
        (self.next() % 8192) as f32 / 1024.0 - 4.0
    }

    fn f32s(&mut self, dims: [u32; 4]) -> HostTensor {
        let n = dims.iter().product::<u32>() as usize;
        let v: Vec<f32> = (0..n).map(|_| self.f32()).collect();
        HostTensor::f32(dims, &v)
    }

    fn bf16s(&mut self, dims: [u32; 4]) -> HostTensor {
        let n = dims.iter().product::<u32>() as usize;
        HostTensor {
            elem_size: 2,
            dims,
            data: (0..n)
                .flat_map(|_| ((self.f32().to_bits() >> 16) as u16).to_le_bytes())
                .collect(),
        }
    }
}

/// Runs `src` in both interpreters (the HIR's, and the IR's on the lowered IR) and
/// checks they agree: the same tensors bit for bit, or the same fault at the same
/// point. Gives the HIR interpreter's result.
fn agree(
    src: &str,
    dims: [u32; 4],
    cores: u32,
    tensors: &[HostTensor],
    scalars: &[u32],
) -> Result<Vec<HostTensor>, interp::InterpError> {
    let p = check(src);
    let hir = interp::run_tensors(&p, dims, cores, tensors, scalars, LIMIT);
    let f = sagrada_cc::lower::lower(&p);
    let ir = ir_interp::run_tensors(&f, dims, cores, tensors, scalars, LIMIT);
    match (&hir, &ir) {
        (Ok((a, sa)), Ok((b, sb))) => {
            assert_eq!(a, b, "the interpreters disagree on\n{src}");
            assert_eq!(sa.invocations, sb.invocations);
        }
        (
            Err(interp::InterpError::Fault {
                kind, point, core, ..
            }),
            Err(ir_interp::InterpError::Fault {
                kind: k2,
                point: p2,
                core: c2,
                ..
            }),
        ) => assert_eq!((kind, point, core), (k2, p2, c2), "{src}"),
        _ => panic!(
            "the interpreters disagree: {} and {} on\n{src}",
            outcome(&hir.as_ref().map(|_| ()).map_err(|e| e.to_string())),
            outcome(&ir.as_ref().map(|_| ()).map_err(|e| e.to_string())),
        ),
    }
    hir.map(|(t, _)| t)
}

fn outcome(r: &Result<(), String>) -> String {
    match r {
        Ok(()) => "a complete run".into(),
        Err(e) => e.clone(),
    }
}

fn words(t: &HostTensor) -> Vec<u32> {
    t.words()
}

fn floats(t: &HostTensor) -> Vec<f32> {
    t.words().into_iter().map(f32::from_bits).collect()
}

// ---- the demo kernels ----

const VADD: &str = include_str!("../../../kernels/vadd.sgc");
const SAXPY: &str = include_str!("../../../kernels/saxpy.sgc");
const ROW_SUM: &str = include_str!("../../../kernels/row_sum.sgc");
const SOFTMAX: &str = include_str!("../../../kernels/softmax.sgc");
const LAYERNORM: &str = include_str!("../../../kernels/layernorm.sgc");
const GEMM: &str = include_str!("../../../kernels/gemm.sgc");
const GEMM_BF16: &str = include_str!("../../../kernels/gemm_bf16.sgc");

#[test]
fn demo_vadd_agrees_and_adds() {
    let mut r = Rng(1);
    let (a, b) = (r.f32s([150, 1, 1, 1]), r.f32s([150, 1, 1, 1]));
    let c = HostTensor::f32([150, 1, 1, 1], &[7.0; 150]);
    let out = agree(VADD, [3, 1, 1, 1], 2, &[a.clone(), b.clone(), c], &[]).unwrap();
    let want: Vec<f32> = floats(&a)
        .iter()
        .zip(floats(&b))
        .map(|(x, y)| x + y)
        .collect();
    assert_eq!(floats(&out[2]), want);
}

#[test]
fn demo_saxpy_agrees() {
    let mut r = Rng(2);
    let (x, y) = (r.f32s([100, 1, 1, 1]), r.f32s([100, 1, 1, 1]));
    let out = agree(
        SAXPY,
        [2, 1, 1, 1],
        1,
        &[x.clone(), y.clone()],
        &[1.5f32.to_bits()],
    )
    .unwrap();
    let want: Vec<f32> = floats(&x)
        .iter()
        .zip(floats(&y))
        .map(|(a, b)| a * 1.5 + b)
        .collect();
    assert_eq!(floats(&out[1]), want);
}

#[test]
fn demo_row_sum_agrees() {
    let mut r = Rng(3);
    let x = r.f32s([150, 5, 1, 1]);
    let out = HostTensor::f32([5, 1, 1, 1], &[0.0; 5]);
    agree(ROW_SUM, [5, 1, 1, 1], 2, &[x, out], &[]).unwrap();
}

#[test]
fn demo_softmax_agrees() {
    let mut r = Rng(4);
    let x = r.f32s([130, 3, 1, 1]);
    let y = HostTensor::f32([130, 3, 1, 1], &[0.0; 390]);
    let out = agree(SOFTMAX, [3, 1, 1, 1], 2, &[x, y], &[]).unwrap();
    let row: f32 = floats(&out[1])[..130].iter().sum();
    assert!((row - 1.0).abs() < 1e-4, "{row}");
}

#[test]
fn demo_layernorm_agrees() {
    let mut r = Rng(5);
    let x = r.f32s([100, 4, 1, 1]);
    let (g, b) = (r.f32s([100, 1, 1, 1]), r.f32s([100, 1, 1, 1]));
    let y = HostTensor::f32([100, 4, 1, 1], &[0.0; 400]);
    agree(
        LAYERNORM,
        [4, 1, 1, 1],
        3,
        &[x, g, b, y],
        &[1e-5f32.to_bits()],
    )
    .unwrap();
}

#[test]
fn demo_gemm_agrees_and_multiplies() {
    let mut r = Rng(6);
    // K = 64, M = 8, N = 70: two column tiles, the second masked.
    let (k, m, n) = (64u32, 8u32, 70u32);
    let a = r.f32s([k, m, 1, 1]);
    let b = r.f32s([n, k, 1, 1]);
    let c = HostTensor::f32([n, m, 1, 1], &vec![0.0; (n * m) as usize]);
    let out = agree(GEMM, [2, 1, 1, 1], 2, &[a.clone(), b.clone(), c], &[]).unwrap();
    let (fa, fb, fc) = (floats(&a), floats(&b), floats(&out[2]));
    for row in 0..m as usize {
        for col in 0..n as usize {
            let mut acc = 0.0f32;
            for kk in 0..k as usize {
                acc += fb[kk * n as usize + col] * fa[row * k as usize + kk];
            }
            assert_eq!(fc[row * n as usize + col], acc, "C[{row}, {col}]");
        }
    }
}

#[test]
fn demo_gemm_bf16_agrees() {
    let mut r = Rng(7);
    // K = 64, M = 8, N = 130: the second tile has 2 columns (its high half none).
    let (k, m, n) = (64u32, 8u32, 130u32);
    let a = r.bf16s([k, m, 1, 1]);
    let b = r.bf16s([n, k, 1, 1]);
    let c = HostTensor::f32([n, m, 1, 1], &vec![0.0; (n * m) as usize]);
    agree(GEMM_BF16, [2, 1, 1, 1], 1, &[a, b, c], &[]).unwrap();
}

// ---- each construct, with its result written by hand ----

/// An i32 tensor of `n` elements, each the pattern a kernel must overwrite.
fn fresh_i32(n: u32) -> HostTensor {
    HostTensor::u32([n, 1, 1, 1], &vec![0x7fc0_1234; n as usize])
}

/// Runs `src` (one point, one core) on an i32 tensor of `n` elements; gives its words.
fn run_i32(src: &str, n: u32) -> Vec<u32> {
    let out = agree(src, [1, 1, 1, 1], 1, &[fresh_i32(n)], &[]).unwrap();
    words(&out[0])
}

const KEEP: u32 = 0x7fc0_1234;

#[test]
fn if_else_and_variables_starting_at_zero() {
    let src = "
kernel k(tensor<i32> o) {
    int x;                      // zero
    f32 f;                      // zero
    int4 c;                     // zero
    if (x == 0) { x = 5; } else { x = 6; }
    if (f != 0.0) { x += 100; }
    if (x > 3) { if (x > 4) { o[int4(1)] = 1; } else { o[int4(1)] = 2; } }
    o[int4(0)] = x;
    o[int4(2)] = c[0] + c[3];
}";
    assert_eq!(run_i32(src, 3), [5, 1, 0]);
}

#[test]
fn loops_with_break_and_continue() {
    let src = "
kernel k(tensor<i32> o) {
    int s = 0;
    for (int i = 0; i < 100; i++) {
        if (i % 3 == 0) { continue; }
        if (i > 20) { break; }
        s += i;
    }
    int n = 0;
    while (true) { n++; if (n == 7) { break; } }
    int pairs = 0;
    for (int a = 0; a < 4; a++) {
        for (int b = 0; ; b++) {
            if (b == a) { break; }      // the inner loop only
            pairs++;
        }
    }
    int w = 10;
    while (w > 0) { w -= 3; if (w == 4) { continue; } w -= 0; }
    o[int4(0)] = s;
    o[int4(1)] = n;
    o[int4(2)] = pairs;
    o[int4(3)] = w;
}";
    // s: 1..=20 without the multiples of 3 = 210 - 63; pairs: 0 + 1 + 2 + 3.
    assert_eq!(run_i32(src, 4), [147, 7, 6, (-2i32) as u32]);
}

#[test]
fn unroll_register_arrays_and_int4_components() {
    let src = "
kernel k(tensor<i32> o) {
    int acc[4];
    unroll for (int i = 0; i < 4; i++) { acc[i] = i * 10; }
    int s = 0;
    unroll for (int k = 10; k > 0; k--) {
        if (k == 7) { continue; }
        if (k == 3) { break; }
        s += k;
    }
    int4 cs[2];
    unroll for (int i = 0; i < 2; i++) { cs[i][i + 1] = 5 + i; }
    int4 c = int4(1, 2, 3, 4);
    c[2] += 10;
    c[0]++;
    c[3] = c[3] * c[1];
    o[int4(0)] = acc[0] + acc[1] + acc[2] + acc[3];
    o[int4(1)] = s;
    o[int4(2)] = cs[0][1] * 100 + cs[1][2] + cs[0][2] + cs[1][1];
    o[int4(3)] = c[0] * 1000 + c[1] * 100 + c[2] * 10 + c[3];
}";
    // s = 10 + 9 + 8 + 6 + 5 + 4; c = (2, 2, 13, 8).
    assert_eq!(run_i32(src, 4), [60, 42, 506, 2000 + 200 + 130 + 8]);
}

#[test]
fn functions_with_early_return_and_tensor_parameters() {
    let src = "
fn classify(int x) -> int {
    if (x < 0) { return -1; }
    for (int i = 0; i < 10; i++) {
        if (i * i >= x) { return i; }
    }
    return 100;
}
fn put(tensor<i32> t, int at, int v) {
    if (v == 0) { return; }
    t[int4(at)] = v;
}
fn twice(tensor<i32> t, int at, int v) { put(t, at, v); put(t, at + 1, v * 2); }
kernel k(tensor<i32> o) {
    o[int4(0)] = classify(-5);
    o[int4(1)] = classify(10);
    o[int4(2)] = classify(1000);
    put(o, 3, 42);
    put(o, 4, 0);
    twice(o, 5, classify(classify(50)));
}";
    // classify(50) = 8, classify(8) = 3.
    assert_eq!(run_i32(src, 7), [(-1i32) as u32, 4, 100, 42, KEEP, 3, 6]);
}

#[test]
fn nested_where_assigns_only_the_active_lanes_of_outer_variables() {
    let src = "
kernel k(tensor<i32> o) {
    i32x64 v = iota();
    i32x64 w;
    mask m;
    int s = 0;
    int r = 0;
    where (v < 32) {
        w = v + 100;
        where (v >= 16) {
            w = w * 2;
        } else {
            w -= 1;
        }
    } else {
        w = 7 - v;
    }
    where (lanes(10)) {
        m = iota() > 4;             // lanes 5..9; the others keep m's zero
        r = reduce_add(iota());     // the active lanes only: 0 + ... + 9
    }
    where (lanes(0)) { s = 5; }     // scalar code runs as usual
    store(o, int4(0), w);
    o[int4(64)] = count(m);
    o[int4(65)] = r;
    o[int4(66)] = s;
}";
    let got = run_i32(src, 67);
    for i in 0..64i32 {
        let want = match i {
            0..16 => 99 + i,
            16..32 => 2 * (100 + i),
            _ => 7 - i,
        };
        assert_eq!(got[i as usize], want as u32, "lane {i}");
    }
    assert_eq!(got[64..], [5, 45, 5]);
}

#[test]
fn where_in_a_called_function_and_a_loop() {
    let src = "
fn bump(f32x64 x, mask m) -> f32x64 {
    f32x64 y = x;
    where (m) { y += 1.0; }
    return y;
}
kernel k(tensor<f32> o) {
    f32x64 acc;
    for (int i = 0; i < 4; i++) {
        where (lanes(16 * i + 16)) {
            acc = bump(acc, iota() >= 8);
        }
    }
    store(o, int4(0), acc);
}";
    let out = agree(
        src,
        [1, 1, 1, 1],
        1,
        &[HostTensor::f32([64, 1, 1, 1], &[9.0; 64])],
        &[],
    )
    .unwrap();
    let got = floats(&out[0]);
    for (i, g) in got.iter().enumerate() {
        // Lane i is bumped by the iterations whose mask covers it, if i >= 8.
        let want = if i < 8 { 0.0 } else { (4 - i / 16) as f32 };
        assert_eq!(*g, want, "lane {i}");
    }
}

#[test]
fn scratchpad_arrays_persist_per_core_and_start_at_zero() {
    let src = "
kernel k(tensor<i32> o) {
    local i32 calls[1];
    calls[0] += 1;
    o[int4(index(0))] = calls[0];
    o[int4(index(0) + 8)] = core();
}";
    let out = agree(src, [7, 1, 1, 1], 3, &[fresh_i32(16)], &[]).unwrap();
    // 7 points on 3 cores: 0..3, 3..5, 5..7.
    assert_eq!(
        words(&out[0]),
        [1, 2, 3, 1, 2, 1, 2, KEEP, 0, 0, 0, 1, 1, 2, 2, KEEP]
    );
}

#[test]
fn scratchpad_vectors_lanes_and_masked_stores() {
    let src = "
kernel k(tensor<i32> o) {
    local i32x64 buf[3];
    local i32 row[64];
    buf[2] = iota() * 2;
    where (lanes(8)) { buf[1] = iota() + 1; }
    buf[0] = iota();
    buf[0][5] = 99;
    buf[0][70] += 1000;             // lane 70 & 63 = 6
    for (int i = 0; i < 64; i++) { row[i] = buf[0][i] + buf[1][i]; }
    store(o, int4(0), buf[2] + buf[1]);
    o[int4(64)] = row[5] + row[6] + row[9];
}";
    let got = run_i32(src, 65);
    for i in 0..64u32 {
        // buf[1]'s lanes from 8 on were never written: zero at the start of the launch.
        let want = 2 * i + if i < 8 { i + 1 } else { 0 };
        assert_eq!(got[i as usize], want, "lane {i}");
    }
    assert_eq!(got[64], (99 + 6) + (1006 + 7) + 9);
}

#[test]
fn short_circuit_and_conditional_evaluate_only_what_they_need() {
    let src = "
// Counts its calls in its own scratchpad array (zero at the start of the launch) and
// in the tensor, and returns r.
fn seen(tensor<i32> t, bool r) -> bool {
    local i32 n[1];
    n[0] = n[0] + 1;
    t[int4(9)] = n[0];
    return r;
}
kernel k(tensor<i32> o) {
    int z = 0;
    bool a = false && seen(o, true);
    bool b = true || seen(o, true);
    bool c = true && seen(o, false);
    bool d = false || seen(o, true);
    int x = d ? 10 : 1 / z;
    int y = c ? 1 / z : 20;
    int w = select(c, 1, 2);
    o[int4(0)] = i32(a);
    o[int4(1)] = i32(b);
    o[int4(2)] = i32(c);
    o[int4(3)] = i32(d);
    o[int4(4)] = x + y + w;
}";
    assert_eq!(run_i32(src, 10)[..5], [0, 1, 0, 1, 32]);
    assert_eq!(run_i32(src, 10)[9], 2);
}

#[test]
fn evaluation_left_to_right_and_compound_places_once() {
    let src = "
fn next(tensor<i32> t) -> int { t[int4(15)] += 1; return t[int4(15)]; }
kernel k(tensor<i32> o) {
    o[int4(15)] = 0;
    local i32 a[8];
    for (int i = 0; i < 8; i++) { a[i] = i * 100; }
    a[next(o)] += 5;
    o[int4(0)] = a[1];
    o[int4(1)] = o[int4(15)];
    o[int4(2)] = next(o) * 10 + next(o);
    o[int4(3)] = next(o) - next(o);
}";
    let got = run_i32(src, 16);
    assert_eq!(got[..4], [105, 1, 23, (-1i32) as u32]);
    assert_eq!(got[15], 5);
}

#[test]
fn unsigned_conversions_and_arithmetic() {
    let src = "
kernel k(tensor<u32> o, tensor<f32> f) {
    u32 big = 0xffffff81u;
    u32 odd = 16777217u;
    f[int4(0)] = f32(big);          // 2^32 - 127: to nearest, 2^32
    f[int4(1)] = f32(odd);          // 2^24 + 1: a tie, to even 2^24
    f[int4(2)] = f32(2147483777u);  // 2^31 + 129: up to 2^31 + 256
    o[int4(0)] = u32(3.0e9);
    o[int4(1)] = u32(-5.0);
    o[int4(2)] = u32(1.0e10);
    o[int4(3)] = u32(nan);
    o[int4(4)] = big / 3u;
    o[int4(5)] = big >> 4;
    o[int4(6)] = u32(big > 5u);
    o[int4(7)] = max(big, 7u) - min(big, 7u);
    o[int4(8)] = u32(-1 >> 4);      // the literal takes the context's type: logical
    o[int4(9)] = big % 10u;
    int m1 = -1;
    o[int4(10)] = u32(m1 >> 4);     // arithmetic on an i32
}";
    let out = agree(
        src,
        [1, 1, 1, 1],
        1,
        &[
            HostTensor::u32([11, 1, 1, 1], &[0; 11]),
            HostTensor::f32([3, 1, 1, 1], &[0.0; 3]),
        ],
        &[],
    )
    .unwrap();
    assert_eq!(
        words(&out[0]),
        [
            3_000_000_000,
            0,
            u32::MAX,
            0,
            4_294_967_169 / 3,
            0x0fff_fff8,
            1,
            4_294_967_169 - 7,
            0x0fff_ffff,
            9,
            u32::MAX
        ]
    );
    assert_eq!(
        floats(&out[1]),
        [4_294_967_296.0, 16_777_216.0, 2_147_483_904.0]
    );
}

#[test]
fn lanes_of_a_negative_count_is_no_lane() {
    // Regression: `lanes(n)` became `pfirst` of n read as unsigned, every lane for
    // n < 0 (so gemm_bf16's `lanes(width - 64)` stored past the tensor).
    let src = "
kernel k(tensor<i32> o, i32 n) {
    where (lanes(n)) { store(o, int4(0), iota()); }
    o[int4(64)] = count(lanes(n)) + 100 * count(lanes(n + 100));
}";
    let out = agree(src, [1, 1, 1, 1], 1, &[fresh_i32(65)], &[(-3i32) as u32]).unwrap();
    let got = words(&out[0]);
    assert!(got[..64].iter().all(|&w| w == KEEP), "{got:x?}");
    assert_eq!(got[64], 6400);
}

#[test]
fn lane_movement_bf16_and_reductions() {
    let src = "
kernel k(tensor<f32> o) {
    f32x64 a = f32x64(iota());
    f32x64 b = a + 0.5;
    bf16x128 p = pack_bf16(a, b);
    store(o, int4(0), unpack_hi(p));
    store(o, int4(64), rotate(a, 3));
    store(o, int4(128), shuffle(a, 63 - iota()));
    o[int4(192)] = reduce_max(a) + reduce_min(a) + reduce_add(a);
    f32x64 t = f32x64(1.00390625);  // 1 + 2^-8: a tie in bf16, to even 1
    f32x64 u = f32x64(1.01171875);  // 1 + 3 * 2^-8: a tie, to even 1 + 2^-6
    bf16x128 q = pack_bf16(t, u);
    o[int4(193)] = unpack_lo(q)[0];
    o[int4(194)] = unpack_hi(q)[63];
    o[int4(195)] = a[70];
}";
    let out = agree(
        src,
        [1, 1, 1, 1],
        1,
        &[HostTensor::f32([196, 1, 1, 1], &[0.0; 196])],
        &[],
    )
    .unwrap();
    let got = floats(&out[0]);
    for i in 0..64 {
        assert_eq!(got[i], i as f32 + 0.5);
        assert_eq!(got[64 + i], ((i + 3) & 63) as f32);
        assert_eq!(got[128 + i], (63 - i) as f32);
    }
    assert_eq!(got[192..], [63.0 + 0.0 + 2016.0, 1.0, 1.015625, 6.0]);
}

// ---- faults, limits and poison ----

fn fault_of(r: Result<Vec<HostTensor>, interp::InterpError>) -> (FaultKind, [u32; 4], u32) {
    match r {
        Err(interp::InterpError::Fault {
            kind, point, core, ..
        }) => (kind, point, core),
        other => panic!("expected a fault, got {other:?}"),
    }
}

#[test]
fn division_by_zero_faults_at_its_point() {
    let src = "
kernel k(tensor<i32> o, i32 z) {
    o[int4(index(0))] = 1;
    if (index(0) == 2) { o[int4(0)] = 10 / z; }
}";
    let r = agree(src, [4, 1, 1, 1], 2, &[fresh_i32(4)], &[0]);
    assert_eq!(fault_of(r), (FaultKind::DivideByZero, [2, 0, 0, 0], 1));
    // The span is the division's.
    let p = check(src);
    match interp::run_tensors(&p, [4, 1, 1, 1], 2, &[fresh_i32(4)], &[0], LIMIT) {
        Err(interp::InterpError::Fault { span, .. }) => {
            assert_eq!(&src[span.start as usize..span.end as usize], "10 / z");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn tensor_and_scratchpad_faults_are_the_isas() {
    let store = "
kernel k(tensor<i32> o) {
    where (lanes(dim(o, 0) - index(0) * 64)) { store(o, int4(index(0) * 64), iota()); }
    store(o, int4(index(0) * 64), iota());
}";
    let r = agree(store, [2, 1, 1, 1], 1, &[fresh_i32(100)], &[]);
    let range = FaultKind::TensorRange {
        slot: 0,
        dim: 0,
        coord: 100,
    };
    assert_eq!(fault_of(r), (range, [1, 0, 0, 0], 0));

    let dim1 = "kernel k(tensor<i32> o) { o[int4(0, 1)] = 0; }";
    let r = agree(dim1, [1, 1, 1, 1], 1, &[fresh_i32(4)], &[]);
    let range = FaultKind::TensorRange {
        slot: 0,
        dim: 1,
        coord: 1,
    };
    assert_eq!(fault_of(r).0, range);

    let scratch = "
kernel k(tensor<i32> o) {
    local i32 a[4];
    a[index(0) - 1] = 1;
}";
    let r = agree(scratch, [1, 1, 1, 1], 1, &[fresh_i32(1)], &[]);
    assert_eq!(fault_of(r).0, FaultKind::ScratchRange { addr: 0xffff_fffc });

    let missing = "kernel k(tensor<i32> o, tensor<i32> p, i32 n) { p[int4(0)] = n; }";
    let r = agree(missing, [1, 1, 1, 1], 1, &[fresh_i32(1)], &[]);
    assert_eq!(fault_of(r).0, FaultKind::ArgRange { index: 0 });
    let r = agree(missing, [1, 1, 1, 1], 1, &[fresh_i32(1)], &[5]);
    assert_eq!(fault_of(r).0, FaultKind::TensorSlot { slot: 1 });
}

#[test]
fn a_runaway_loop_stops_at_the_step_limit() {
    let p = check("kernel k(tensor<i32> o) { int i = 0; while (true) { i++; } }");
    let r = interp::run_tensors(&p, [1, 1, 1, 1], 1, &[fresh_i32(1)], &[], 10_000);
    assert_eq!(r.err(), Some(interp::InterpError::StepLimit(10_000)));
}

#[test]
fn a_vector_cannot_leave_a_where_by_return() {
    // Returning from inside `where` would carry the lanes the `where` leaves
    // unspecified out of it, where the caller could read them: the checker refuses it.
    let src = "
fn half(f32x64 x) -> f32x64 {
    where (lanes(4)) { return x * 2.0; }
    return x;
}
kernel k(tensor<f32> o) {
    store(o, int4(0), half(f32x64(1.5)));
}";
    let e = sagrada_cc::front::check(src).unwrap_err();
    assert_eq!(e.0.len(), 1, "{e:?}");
    assert!(e.0[0].message.contains("from inside `where`"), "{e:?}");
}

#[test]
fn unsigned_conversions_agree_with_the_lowered_expansions_on_edge_values() {
    let src = "
kernel k(tensor<f32> f, tensor<u32> u, tensor<u32> fu, tensor<f32> uf) {
    for (int i = 0; i < dim(f, 0); i++) {
        fu[int4(i)] = u32(f[int4(i)]);
        uf[int4(i)] = f32(u[int4(i)]);
    }
}";
    let fs = [
        0.0f32,
        -0.0,
        0.999,
        -0.999,
        -1.0,
        2_147_483_520.0,
        2_147_483_648.0,
        2_147_483_904.0,
        4_294_967_040.0,
        4_294_967_296.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        1.0e-40,
        16_777_217.0,
    ];
    let us = [
        0u32,
        1,
        0xffff,
        0x1_0000,
        0x00ff_ffff,
        0x0100_0001,
        0x0100_0003,
        0x7fff_ffff,
        0x8000_0000,
        0x8000_0080,
        0x8000_0081,
        0xffff_ff7f,
        0xffff_ff80,
        0xffff_ffff,
        0x1234_5678,
    ];
    let n = fs.len() as u32;
    let out = agree(
        src,
        [1, 1, 1, 1],
        1,
        &[
            HostTensor::f32([n, 1, 1, 1], &fs),
            HostTensor::u32([n, 1, 1, 1], &us),
            HostTensor::u32([n, 1, 1, 1], &vec![0; n as usize]),
            HostTensor::f32([n, 1, 1, 1], &vec![0.0; n as usize]),
        ],
        &[],
    )
    .unwrap();
    // The language's conversions are Rust's `as`: truncating, saturating, NaN to 0;
    // to nearest even.
    let want_fu: Vec<u32> = fs.iter().map(|&x| x as u32).collect();
    let want_uf: Vec<u32> = us.iter().map(|&x| (x as f32).to_bits()).collect();
    assert_eq!(words(&out[2]), want_fu);
    assert_eq!(words(&out[3]), want_uf);
}

#[test]
fn the_deepest_nesting_the_checker_accepts_runs_on_a_quarter_of_a_test_stack() {
    // Parentheses and operators nested in the kernel and in 18 functions calling each
    // other, inside blocks: about 200 levels once inlined, the checker's limit (19
    // functions are refused). The interpreter recurses along the tree, so it must fit
    // in far less than a test thread's 2 MiB.
    let mut src = String::new();
    for f in 0..18 {
        let inner = if f == 0 {
            "x".to_string()
        } else {
            format!("g{}(x)", f - 1)
        };
        let expr = format!("{}{inner}{}", "(".repeat(8), " + 1)".repeat(8));
        src += &format!("fn g{f}(int x) -> int {{ return {expr}; }}\n");
    }
    let deep = format!("{}1{}", "(".repeat(55), " + 1)".repeat(55));
    src += &format!(
        "kernel k(tensor<i32> o) {{ {} o[int4(0)] = g17(0) + {deep}; {} }}",
        "{ ".repeat(10),
        "} ".repeat(10)
    );
    let p = check(&src);
    let run = std::thread::Builder::new()
        .stack_size(512 * 1024)
        .spawn(move || {
            interp::run_tensors(&p, [1, 1, 1, 1], 1, &[fresh_i32(1)], &[], LIMIT)
                .map(|(t, _)| words(&t[0]))
        })
        .unwrap();
    assert_eq!(run.join().unwrap().unwrap(), [18 * 8 + 56]);
}
