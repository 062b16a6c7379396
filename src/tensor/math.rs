//! The elementary functions every kernel, sampler and score uses: eˣ, ln,
//! eˣ − 1, ln(1 + x), tanh, xʸ, sin and cos, computed by the library itself
//! so that a run gives the same bits on every platform.
//!
//! **Why not the standard library's.** `f64::exp` and its kin call the
//! platform's C math library: glibc on Linux, Apple's libm on macOS, and a
//! Rust port of musl's on `wasm32-unknown-unknown`. They are all accurate to
//! about one unit in the last place (ulp), but not the *same* ulp: on 5
//! million random arguments in [−20, 20], glibc and the wasm port disagreed
//! in the last bit on 9.8 % of `exp`, 5 % of `ln` and 1.9 % of `tanh`
//! (f32: `expf` 9.8 %, `logf` 5 %). One such bit in step 1 of a training run
//! moves every later step, so a model trained in a browser would differ from
//! the same run on Linux. The functions here use only +, −, ×, ÷, `floor`
//! and bit operations, which IEEE 754 defines exactly, so they round the
//! same way everywhere.
//!
//! **How.** Each reduces its argument to a short interval, where a
//! truncated series is accurate, and scales back exactly:
//! - eˣ = 2ᵏ·eʳ with k = round(x/ln 2) (rounded by adding and subtracting 1.5·2⁵²) and r = x − k·ln 2 in [−ln2/2, ln2/2],
//!   ln 2 split in two parts so that k·ln2₁ is exact (Cody and Waite); eʳ by
//!   its Taylor series to r¹³/13! (f64) or r⁷/7! (f32), whose remainder is
//!   below 0.01 ulp;
//! - ln x = e·ln 2 + ln m with x = m·2ᵉ, m in [√½, √2); with f = m − 1 (exact)
//!   and s = f/(2 + f), ln m = 2 atanh s = f − s·(f − R), R = 2s²/3 + 2s⁴/5 + …
//!   (|s| ≤ 0.172, so eleven terms reach 10⁻¹⁷);
//! - eˣ − 1 by its series for |x| < ln2/2 (no cancellation), eˣ − 1 beyond;
//!   ln(1 + x) = ln(u)·x/(u − 1) with u = 1 + x rounded (the rounding of u
//!   cancels: Goldberg, "What every computer scientist should know about
//!   floating-point arithmetic", 1991, theorem 4);
//! - tanh |x| = t/(t + 2) with t = e^{2|x|} − 1;
//! - sin, cos: x = k·π/2 + r with π/2 in three parts (exact products for
//!   |k| < 2²⁰, so |x| up to about 1.6·10⁶; beyond, NaN rather than a wrong
//!   value: the crate takes sines of data angles and of 2-D points only),
//!   then the Taylor series on |r| ≤ π/4;
//! - xʸ by products for integer |y| ≤ 4, e^{y·ln x} otherwise (relative
//!   error about |y·ln x|·ε: 1100 ulp for 10³⁰⁰; f32 results are within 1
//!   ulp, being computed in f64), with IEEE 754's values at ±0, ±∞ and NaN.
//!
//! Accuracy, measured by this module's tests against the standard library on
//! random arguments: within 2 ulp in f64 (4 for eˣ − 1 and tanh near the
//! switch of method), within 1 ulp in f32. The f32 functions evaluate in
//! f64 with shorter series, then round once.
//!
//! What is still the platform's: `sqrt` (IEEE 754 requires it correctly
//! rounded, so it is the same everywhere), the latent interpolation's `acos`
//! and `sin` (pictures only), and `rand_distr`'s normal sampler, whose
//! ziggurat calls `exp` in a rejection test that a last-bit difference can
//! flip only when a uniform draw falls within one ulp of the boundary.

use std::f64::consts::{FRAC_1_SQRT_2, LN_2, LOG2_E};

/// ln 2 in two parts: the first with its low 32 bits zero, so k·LN2_HI is
/// exact for |k| < 2²⁰; LN2_HI + LN2_LO = ln 2 to about 2⁻⁸⁵.
const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);

/// π/2 in three parts of 33 significant bits each (exact products with k <
/// 2²⁰), and the remainder.
const PIO2_1: f64 = f64::from_bits(0x3ff9_21fb_5440_0000);
const PIO2_2: f64 = f64::from_bits(0x3dd0_b461_1a60_0000);
const PIO2_3: f64 = f64::from_bits(0x3ba3_198a_2e00_0000);
const PIO2_3T: f64 = f64::from_bits(0x397b_839a_2520_49c1);

/// 1/n! for n = 0..=17.
const INV_FACTORIAL: [f64; 18] = {
    let mut t = [1.0; 18];
    let mut n = 1;
    while n < 18 {
        t[n] = t[n - 1] / n as f64;
        n += 1;
    }
    t
};

/// Σ c[i]·rⁱ by Horner's rule, c[0] first.
#[inline(always)]
fn horner(r: f64, c: &[f64]) -> f64 {
    let mut p = 0.0;
    for &ci in c.iter().rev() {
        p = p * r + ci;
    }
    p
}

/// 2ᵏ·p for p in [0.7, 1.5], k an integer in about [−1100, 1030].
#[inline(always)]
fn scale(p: f64, k: i64) -> f64 {
    if (-1022..=1023).contains(&k) {
        p * pow2(k)
    } else if k > 1023 {
        p * pow2(1023) * pow2(k - 1023)
    } else {
        // Subnormal results: two exact-or-once-rounded steps.
        p * pow2(k + 1000) * pow2(-1000)
    }
}

/// 1.5·2⁵²: for |v| < 2⁵¹, v + SHIFT rounds v to an integer (ties to
/// even) and leaves it, in two's complement, in the low bits; subtracting
/// SHIFT again gives it as a float. Both steps are exact IEEE additions,
/// and unlike `f64::floor` (a library call on baseline x86-64) they
/// compile to two instructions.
const SHIFT: f64 = 6_755_399_441_055_744.0;

/// v rounded to the nearest integer, as a float and as an integer.
#[inline(always)]
fn round_to_integer(v: f64) -> (f64, i64) {
    let t = v + SHIFT;
    (
        t - SHIFT,
        (t.to_bits() as i64).wrapping_sub(SHIFT.to_bits() as i64),
    )
}

/// 2ᵏ for k in [−1022, 1023].
#[inline(always)]
fn pow2(k: i64) -> f64 {
    f64::from_bits(((k + 1023) as u64) << 52)
}

/// eˣ with the series `terms` (1/n! for n = 0..terms) on the reduced argument.
#[inline(always)]
fn exp_with(x: f64, terms: usize) -> f64 {
    // One test catches NaN and both ends; beyond them the result is
    // ∞ or 0 (or NaN), and just inside them `scale` overflows to ∞ or
    // underflows to 0 by itself.
    if !(x > -745.2 && x < 709.8) {
        return if x.is_nan() {
            x
        } else if x > 0.0 {
            f64::INFINITY
        } else {
            0.0
        };
    }
    let (k, ki) = round_to_integer(x * LOG2_E);
    let r = (x - k * LN2_HI) - k * LN2_LO;
    scale(horner(r, &INV_FACTORIAL[..terms]), ki)
}

/// eˣ in f64.
#[inline]
pub fn exp(x: f64) -> f64 {
    exp_with(x, 14)
}

/// eˣ in f32 (evaluated in f64, rounded once). Branch-free: the argument
/// is clamped to [−104, 89], where 2ᵏ is a normal f64 and e⁻¹⁰⁴ and e⁸⁹
/// already round to 0 and ∞ in f32; NaN passes through the arithmetic.
#[inline]
pub fn exp_f32(x: f32) -> f32 {
    exp_f32_in_f64(x as f64) as f32
}

/// The f64 value [`exp_f32`] rounds: x clamped to [−104, 89], then
/// [`exp_with`]'s reduction and 8-term series with no branch (2ᵏ is a
/// normal f64 over that range, so `scale` reduces to one product). For x
/// in [−104, 89] it is exp_with(x, 8), bit for bit.
#[inline(always)]
fn exp_f32_in_f64(x: f64) -> f64 {
    let x = x.clamp(-104.0, 89.0);
    let (k, ki) = round_to_integer(x * LOG2_E);
    let r = (x - k * LN2_HI) - k * LN2_LO;
    horner(r, &INV_FACTORIAL[..8]) * f64::from_bits((ki.wrapping_add(1023) as u64) << 52)
}

/// 2/(2n + 1) for n = 1..=11: the series R(s²) of [`ln`].
const ATANH_SERIES: [f64; 11] = {
    let mut t = [0.0; 11];
    let mut n = 0;
    while n < 11 {
        t[n] = 2.0 / (2 * n + 3) as f64;
        n += 1;
    }
    t
};

/// The bits of √½: [`ln_with`] offsets the exponent by this, so that
/// the mantissa lands in [√½, √2) without a branch.
const SQRT_HALF_BITS: u64 = 0x3fe6_a09e_667f_3bcd;

/// ln x with `terms` terms of R.
#[inline(always)]
fn ln_with(x: f64, terms: usize) -> f64 {
    if !(x > 0.0 && x < f64::INFINITY) {
        return if x == 0.0 {
            f64::NEG_INFINITY
        } else if x == f64::INFINITY {
            x
        } else {
            f64::NAN
        };
    }
    // Subnormals (f64 only): scale by 2⁵⁴ first (exact).
    let (x, e0) = if x < f64::MIN_POSITIVE {
        (x * pow2(54), -54)
    } else {
        (x, 0)
    };
    // x = m·2ᵉ with m in [√½, √2): adding 1 − √½ to the bits carries into
    // the exponent exactly when the mantissa of x is at least √2's.
    let shifted = x.to_bits() + ((1023 << 52) - SQRT_HALF_BITS);
    let e = (shifted >> 52) as i64 - 1023 + e0;
    let m = f64::from_bits((shifted & ((1 << 52) - 1)) + SQRT_HALF_BITS);
    let ln_m = ln_kernel(m - 1.0, terms);
    let e = e as f64;
    e * LN2_HI + (e * LN2_LO + ln_m)
}

/// ln(1 + f) for f in [√½ − 1, √2 − 1]: with s = f/(2 + f), 2 atanh s =
/// f − s·(f − R), R = 2s²/3 + 2s⁴/5 + … (`terms` terms).
#[inline(always)]
fn ln_kernel(f: f64, terms: usize) -> f64 {
    let s = f / (2.0 + f);
    let z = s * s;
    f - s * (f - z * horner(z, &ATANH_SERIES[..terms]))
}

/// Natural logarithm in f64 (NaN below 0, −∞ at 0).
#[inline]
pub fn ln(x: f64) -> f64 {
    ln_with(x, 11)
}

/// Natural logarithm in f32. An f32 is never subnormal as an f64, so the
/// arithmetic needs no branch; the special arguments (≤ 0, ∞, NaN) are
/// chosen at the end.
#[inline]
pub fn ln_f32(x: f32) -> f32 {
    let v = x as f64;
    let shifted = v.to_bits().wrapping_add((1023 << 52) - SQRT_HALF_BITS);
    let e = ((shifted >> 52) & 0x7ff) as i64 - 1023;
    let m = f64::from_bits((shifted & ((1 << 52) - 1)) + SQRT_HALF_BITS);
    let ln_m = ln_kernel(m - 1.0, 6);
    let e = e as f64;
    let out = (e * LN2_HI + (e * LN2_LO + ln_m)) as f32;
    if x > 0.0 && x < f32::INFINITY {
        out
    } else if x == 0.0 {
        f32::NEG_INFINITY
    } else if x == f32::INFINITY {
        x
    } else {
        f32::NAN
    }
}

/// eˣ − 1 with `terms` terms of the series and `exp_terms` for eˣ.
#[inline(always)]
fn exp_m1_with(x: f64, terms: usize, exp_terms: usize) -> f64 {
    if x == 0.0 {
        return x; // keeps −0
    }
    if x.abs() < 0.5 * LN_2 {
        // x + x²·(1/2! + x/3! + …): no cancellation.
        x + x * x * horner(x, &INV_FACTORIAL[2..2 + terms])
    } else if x < -40.0 {
        -1.0
    } else {
        exp_with(x, exp_terms) - 1.0
    }
}

/// eˣ − 1 in f64, accurate for small x.
#[inline]
pub fn exp_m1(x: f64) -> f64 {
    exp_m1_with(x, 14, 14)
}

/// ln(1 + x) for `ln` with `terms` terms.
#[inline(always)]
fn ln_1p_with(x: f64, terms: usize) -> f64 {
    if (-0.292_893_218_813_452_4..=0.414_213_562_373_095).contains(&x) {
        // 1 + x is already in [√½, √2): the kernel takes x itself, exact.
        return ln_kernel(x, terms);
    }
    let u = 1.0 + x;
    if !(u > 0.0 && u < f64::INFINITY) {
        return ln_with(u, terms);
    }
    // u rounds 1 + x; c is the rounding error, exactly (Fast2Sum: the
    // larger of 1 and x first), and ln(1 + x) = ln(u) + ln(1 + c/u).
    let c = if x > 1.0 {
        1.0 - (u - x)
    } else {
        x - (u - 1.0)
    };
    ln_with(u, terms) + c / u
}

/// ln(1 + x) in f64, accurate for small x (NaN below −1, −∞ at −1).
#[inline]
pub fn ln_1p(x: f64) -> f64 {
    ln_1p_with(x, 11)
}

/// ln(1 + x) in f32.
#[inline]
pub fn ln_1p_f32(x: f32) -> f32 {
    ln_1p_with(x as f64, 6) as f32
}

/// tanh with the given series lengths.
#[inline(always)]
fn tanh_with(x: f64, terms: usize, exp_terms: usize) -> f64 {
    let a = x.abs();
    if a.is_nan() || a < 1e-9 {
        return x;
    }
    if a > 22.0 {
        return 1f64.copysign(x);
    }
    let t = exp_m1_with(2.0 * a, terms, exp_terms);
    (t / (t + 2.0)).copysign(x)
}

/// Hyperbolic tangent in f64.
#[inline]
pub fn tanh(x: f64) -> f64 {
    tanh_with(x, 14, 14)
}

/// Hyperbolic tangent in f32.
///
/// The same operations as [`tanh`]'s (with shorter series), so the same
/// bits as that branchy form in f32, but with no branch: every case is
/// computed and the right one selected, so that a loop over a slice
/// vectorises. For |x| ≤ 22 the argument 2|x| of eˣ is at most 44, inside
/// the range where [`exp`] takes no special case. The branches not taken
/// may hold ∞ or NaN (the series at x = ±∞, say); the selects discard
/// them.
#[inline]
pub fn tanh_f32(x: f32) -> f32 {
    let x = x as f64;
    let a = x.abs();
    let y = 2.0 * a;
    // e^y − 1 by its series (y below ln2/2) ...
    let series = y + y * y * horner(y, &INV_FACTORIAL[2..10]);
    // ... or by e^y (y ≥ 0), as exp_with(y, 8) computes it in its normal range
    let big = exp_f32_in_f64(y) - 1.0;
    let t = if y < 0.5 * LN_2 { series } else { big };
    let v = (t / (t + 2.0)).copysign(x);
    let v = if a > 22.0 { 1f64.copysign(x) } else { v };
    let v = if a.is_nan() || a < 1e-9 { x } else { v };
    v as f32
}

/// xʸ in f64 as e^{y·ln x}; for x < 0, defined for integer y (the sign of
/// (−1)ʸ), NaN otherwise; x⁰ = 1 and 1ʸ = 1 for every y, NaN included.
#[inline]
pub fn powf(x: f64, y: f64) -> f64 {
    pow_with(x, y, ln, exp)
}

/// xʸ in f32 (as [`powf`], evaluated in f64).
#[inline]
pub fn powf_f32(x: f32, y: f32) -> f32 {
    pow_with(x as f64, y as f64, |v| ln_with(v, 8), |v| exp_with(v, 10)) as f32
}

#[inline(always)]
fn pow_with(x: f64, y: f64, ln: impl Fn(f64) -> f64, exp: impl Fn(f64) -> f64) -> f64 {
    if y == 0.0 || x == 1.0 {
        return 1.0;
    }
    if x.is_nan() || y.is_nan() {
        return f64::NAN;
    }
    let integer = y.floor() == y;
    // An odd integer keeps the sign of a negative base (|y| ≥ 2⁵³ is even).
    let odd = integer && y.abs() < 9.007_199_254_740_992e15 && (y * 0.5).floor() != y * 0.5;
    if x == 0.0 || x.is_infinite() {
        // ±0 and ±∞: 0 or ∞ by the signs of y and of log|x|, signed as
        // x is when y is an odd integer (IEEE 754 pow).
        let magnitude = if (y > 0.0) == (x == 0.0) {
            0.0
        } else {
            f64::INFINITY
        };
        return if odd && x.is_sign_negative() {
            -magnitude
        } else {
            magnitude
        };
    }
    if x < 0.0 {
        if !integer {
            return f64::NAN;
        }
        let magnitude = pow_with(-x, y, ln, exp);
        return if odd { -magnitude } else { magnitude };
    }
    if integer && y.abs() <= 4.0 {
        // x², x³, x⁴ (and their inverses) by products: within 2 ulp.
        let (mut base, mut n, mut out) = (x, y.abs() as u32, 1.0);
        while n > 0 {
            if n & 1 == 1 {
                out *= base;
            }
            base *= base;
            n >>= 1;
        }
        if y > 0.0 || out.is_finite() && out != 0.0 {
            return if y < 0.0 { 1.0 / out } else { out };
        }
    }
    exp(y * ln(x))
}

/// The largest |x| whose reduction by π/2 is exact to the last bits: the
/// products k·PIO2_i are exact for |k| < 2²⁰.
const SIN_COS_LIMIT: f64 = 1_647_099.0;

/// The quadrant k mod 4 and the remainder r = x − k·π/2, |r| ≤ π/4, for
/// |x| ≤ [`SIN_COS_LIMIT`].
#[inline(always)]
fn reduce_half_pi(x: f64) -> (i64, f64) {
    let (k, ki) = round_to_integer(x * std::f64::consts::FRAC_2_PI);
    let r = ((x - k * PIO2_1) - k * PIO2_2) - k * PIO2_3 - k * PIO2_3T;
    (ki.rem_euclid(4), r)
}

/// sin r for |r| ≤ π/4: r − r³/3! + … ± r¹⁷/17!.
#[inline(always)]
fn sin_kernel(r: f64) -> f64 {
    let z = r * r;
    let c = [
        -INV_FACTORIAL[3],
        INV_FACTORIAL[5],
        -INV_FACTORIAL[7],
        INV_FACTORIAL[9],
        -INV_FACTORIAL[11],
        INV_FACTORIAL[13],
        -INV_FACTORIAL[15],
        INV_FACTORIAL[17],
    ];
    r + r * z * horner(z, &c)
}

/// cos r for |r| ≤ π/4: 1 − r²/2! + … + r¹⁶/16!.
#[inline(always)]
fn cos_kernel(r: f64) -> f64 {
    let z = r * r;
    let c = [
        INV_FACTORIAL[4],
        -INV_FACTORIAL[6],
        INV_FACTORIAL[8],
        -INV_FACTORIAL[10],
        INV_FACTORIAL[12],
        -INV_FACTORIAL[14],
        INV_FACTORIAL[16],
    ];
    1.0 - 0.5 * z + z * z * horner(z, &c)
}

/// Sine in f64, for |x| ≤ 1 647 099 (about 2²⁰·π/2); NaN beyond, and for
/// NaN and ±∞. The crate calls it on data angles and on 2-D points.
#[inline]
pub fn sin(x: f64) -> f64 {
    if x.is_nan() || x.abs() > SIN_COS_LIMIT {
        return f64::NAN;
    }
    if x.abs() < FRAC_1_SQRT_2 * 1e-8 {
        return x;
    }
    match reduce_half_pi(x) {
        (0, r) => sin_kernel(r),
        (1, r) => cos_kernel(r),
        (2, r) => -sin_kernel(r),
        (_, r) => -cos_kernel(r),
    }
}

/// Cosine in f64, for |x| ≤ 1 647 099; NaN beyond, and for NaN and ±∞.
#[inline]
pub fn cos(x: f64) -> f64 {
    if x.is_nan() || x.abs() > SIN_COS_LIMIT {
        return f64::NAN;
    }
    match reduce_half_pi(x) {
        (0, r) => cos_kernel(r),
        (1, r) => -sin_kernel(r),
        (2, r) => -cos_kernel(r),
        (_, r) => sin_kernel(r),
    }
}

#[cfg(test)]
mod tests;
