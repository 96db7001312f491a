//! The floating-point operations the host does not provide with the semantics the ISA
//! fixes: `exp`, NaN-ignoring min/max with `-0 < +0`, and the 16-bit formats.
//!
//! Everything here is plain bit manipulation and f32 `+`/`*`, so it is deterministic on
//! every host and LLVM can vectorise it across the 64 lanes of a vector instruction.

/// `exp(x)` as `vexp.f32` and `fexp` compute it.
///
/// `x = n·ln2 + r` with `n = round(x·log2 e)` (ties to even) and `|r| ≤ ln2/2`, `ln2` in
/// two parts so that `n·ln2_hi` is exact; `exp(r) = 1 + r + r²·P(r)` with `P` of degree
/// 5 (Cephes' `expf`), evaluated with separately rounded multiplies and adds; then the
/// product with `2^n`, done as two exact-or-final multiplies so that `n = 128` and
/// subnormal results need no special case. Inputs above 88.72 give `+inf`, below
/// -87.33 give `+0`, NaN gives NaN. The measured error is in the module doc of
/// [`crate::exec`].
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const HI: f32 = 88.72;
    const LO: f32 = -87.33;
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 = LN2_HI + LN2_LO; LN2_HI has 9 significant bits, so n·LN2_HI is exact for
    // every n here, and x - n·LN2_HI is exact (Sterbenz).
    const LN2_HI: f32 = 355.0 / 512.0;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5·2^23: adding it rounds to an integer (ties to even) in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    const P: [f32; 6] = [
        1.987_569_1e-4,
        1.398_199_9e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        1.666_666_5e-1,
        5e-1,
    ];

    // Clamp first so the integer arithmetic below stays in range for every input; the
    // clamped lanes are replaced at the end.
    // (`clamp` passes NaN through, which the end replaces too.)
    let xc = x.clamp(LO, HI);
    let t = xc * LOG2E + ROUND;
    let n = (t.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    let nf = t - ROUND;
    let r = (xc - nf * LN2_HI) - nf * LN2_LO;
    let mut p = P[0];
    p = p * r + P[1];
    p = p * r + P[2];
    p = p * r + P[3];
    p = p * r + P[4];
    p = p * r + P[5];
    let e = p * (r * r) + r + 1.0;
    // n is in [-126, 128]; split it so that each factor is a normal power of two.
    let n1 = n >> 1;
    let n2 = n - n1;
    let s1 = f32::from_bits(((n1 + 127) as u32) << 23);
    let s2 = f32::from_bits(((n2 + 127) as u32) << 23);
    let y = e * s1 * s2;
    if x > HI {
        f32::INFINITY
    } else if x < LO {
        0.0
    } else if x.is_nan() {
        x + x
    } else {
        y
    }
}

/// `min(a, b)` as `fmin`/`vmin.f32` compute it: a NaN operand yields the other operand
/// (NaN only if both are), and `-0` is less than `+0`.
#[inline(always)]
pub fn min(a: f32, b: f32) -> f32 {
    let (ab, bb) = (a.to_bits(), b.to_bits());
    let r = if a < b {
        ab
    } else if b < a {
        bb
    } else {
        // Equal (only ±0 differ in bits: the negative one wins) or unordered.
        ab | bb
    };
    f32::from_bits(if a.is_nan() {
        bb
    } else if b.is_nan() {
        ab
    } else {
        r
    })
}

/// `max(a, b)` as `fmax`/`vmax.f32` compute it: a NaN operand yields the other operand
/// (NaN only if both are), and `+0` is greater than `-0`.
#[inline(always)]
pub fn max(a: f32, b: f32) -> f32 {
    let (ab, bb) = (a.to_bits(), b.to_bits());
    let r = if a > b {
        ab
    } else if b > a {
        bb
    } else {
        ab & bb
    };
    f32::from_bits(if a.is_nan() {
        bb
    } else if b.is_nan() {
        ab
    } else {
        r
    })
}

/// The bf16 bits of `x`: rounded to nearest even; a NaN stays a quiet NaN with its
/// sign (and the top of its payload).
#[inline(always)]
pub fn f32_to_bf16(x: f32) -> u16 {
    let b = x.to_bits();
    if x.is_nan() {
        ((b >> 16) | 0x40) as u16
    } else {
        // Overflow rounds into the infinity encoding by itself.
        (b.wrapping_add(0x7fff + ((b >> 16) & 1)) >> 16) as u16
    }
}

/// The f32 value of bf16 bits `h` (exact).
#[inline(always)]
pub fn bf16_to_f32(h: u16) -> f32 {
    f32::from_bits(u32::from(h) << 16)
}

/// The f16 bits of `x`: rounded to nearest even, overflowing to infinity, subnormals
/// kept; a NaN stays a quiet NaN with its sign (and the top of its payload).
#[inline(always)]
pub fn f32_to_f16(x: f32) -> u16 {
    let b = x.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let abs = b & 0x7fff_ffff;
    let mag = if abs > 0x7f80_0000 {
        0x7e00 | ((abs >> 13) & 0x3ff) as u16
    } else if abs >= 0x477f_f000 {
        // 65520 and up round to infinity (65520 is the tie between 65504 and 2^16).
        0x7c00
    } else if abs >= 0x3880_0000 {
        // Normal: rebias the exponent (127 → 15) and round the mantissa to 10 bits; a
        // carry moves into the exponent, which is the right answer.
        let r = abs - 0x3800_0000;
        ((r + 0xfff + ((r >> 13) & 1)) >> 13) as u16
    } else {
        // Below 2^-14: a multiple of 2^-24. Adding 0.5 (whose ulp is 2^-24) rounds to
        // it with the host's round-to-nearest-even; the mantissa bits are the result.
        let y = f32::from_bits(abs) + 0.5;
        (y.to_bits() - 0.5f32.to_bits()) as u16
    };
    sign | mag
}

/// The f32 value of f16 bits `h` (exact, subnormals included).
#[inline(always)]
pub fn f16_to_f32(h: u16) -> f32 {
    let h = u32::from(h);
    let sign = (h & 0x8000) << 16;
    let exp = (h >> 10) & 0x1f;
    let man = h & 0x3ff;
    let mag = if exp == 0x1f {
        0x7f80_0000 | (man << 13)
    } else if exp == 0 {
        // man · 2^-24, exact.
        (man as f32 * f32::from_bits(0x3380_0000)).to_bits()
    } else {
        ((exp + 112) << 23) | (man << 13)
    };
    f32::from_bits(sign | mag)
}

/// `vredsum.f32` of the lanes of `x` set in `m`: the inactive lanes count as `-0.0`,
/// then `a[i] += a[i + h]` for `i < h`, `h` = 32, 16, ..., 1; the result is `a[0]`'s
/// bits. Compilers and interpreters that must match the cores bit for bit use it.
#[inline(never)]
pub fn redsum_f32(x: &[u32; crate::LANES], m: u64) -> u32 {
    let mut a: [f32; crate::LANES] = std::array::from_fn(|i| {
        if m >> i & 1 != 0 {
            f32::from_bits(x[i])
        } else {
            -0.0
        }
    });
    let mut h = crate::LANES / 2;
    while h > 0 {
        for i in 0..h {
            a[i] += a[i + h];
        }
        h /= 2;
    }
    a[0].to_bits()
}

/// `vredmax.f32` (`max`) or `vredmin.f32` of the lanes of `x` set in `m`: a NaN lane
/// is skipped unless every active lane is NaN (then the first NaN); no active lane
/// gives `-inf` (max) or `+inf` (min).
pub fn redext_f32(x: &[u32; crate::LANES], m: u64, max: bool) -> u32 {
    let (mut acc, f): (f32, fn(f32, f32) -> f32) = if max {
        (f32::NEG_INFINITY, self::max)
    } else {
        (f32::INFINITY, self::min)
    };
    let mut nan = None;
    let mut number = false;
    for (i, &xi) in x.iter().enumerate() {
        if m >> i & 1 == 0 {
            continue;
        }
        let y = f32::from_bits(xi);
        if y.is_nan() {
            nan.get_or_insert(xi);
        } else {
            acc = f(acc, y);
            number = true;
        }
    }
    match nan {
        Some(bits) if !number => bits,
        _ => acc.to_bits(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_round_trips_every_value() {
        for h in 0..=u16::MAX {
            let f = f16_to_f32(h);
            let back = f32_to_f16(f);
            if f.is_nan() {
                assert!(f16_to_f32(back).is_nan(), "{h:#06x}");
            } else {
                assert_eq!(back, h, "{h:#06x} -> {f}");
            }
        }
    }

    #[test]
    fn bf16_round_trips_every_value() {
        for h in 0..=u16::MAX {
            let f = bf16_to_f32(h);
            let back = f32_to_bf16(f);
            if f.is_nan() {
                assert!(bf16_to_f32(back).is_nan(), "{h:#06x}");
            } else {
                assert_eq!(back, h, "{h:#06x} -> {f}");
            }
        }
    }
}
