//! The elementary functions against the standard library's (ulps) and
//! their special values.

use super::*;

/// Distance in representable f64 values (0 when both are NaN).
fn ulps(a: f64, b: f64) -> u64 {
    if a.is_nan() && b.is_nan() {
        return 0;
    }
    if a == b {
        return 0;
    }
    let key = |v: f64| {
        let bits = v.to_bits() as i64;
        if bits < 0 {
            i64::MIN - bits
        } else {
            bits
        }
    };
    key(a).abs_diff(key(b))
}

fn ulps32(a: f32, b: f32) -> u64 {
    if a.is_nan() && b.is_nan() {
        return 0;
    }
    if a == b {
        return 0;
    }
    let key = |v: f32| {
        let bits = v.to_bits() as i32 as i64;
        if bits < 0 {
            i32::MIN as i64 - bits
        } else {
            bits
        }
    };
    key(a).abs_diff(key(b))
}

/// Deterministic arguments: a linear congruential walk over [lo, hi].
fn arguments(lo: f64, hi: f64, n: usize) -> impl Iterator<Item = f64> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n).map(move |_| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        lo + (hi - lo) * ((state >> 11) as f64 / (1u64 << 53) as f64)
    })
}

/// Largest ulp distance of `ours` from `std` over the arguments.
fn worst(lo: f64, hi: f64, ours: fn(f64) -> f64, std: fn(f64) -> f64) -> u64 {
    arguments(lo, hi, 200_000)
        .map(|x| ulps(ours(x), std(x)))
        .max()
        .unwrap()
}

/// Fails listing every row whose measured ulps exceed the allowed.
fn assert_within(rows: &[(String, u64, u64)]) {
    let over: Vec<String> = rows
        .iter()
        .filter(|(_, measured, allowed)| measured > allowed)
        .map(|(what, measured, allowed)| format!("{what}: {measured} ulp > {allowed}"))
        .collect();
    assert!(over.is_empty(), "{over:#?}");
}

/// One function on one interval: the worst of 200 000 arguments.
type Row64 = (&'static str, f64, f64, fn(f64) -> f64, fn(f64) -> f64, u64);

#[test]
fn every_function_is_within_a_few_ulps_of_the_platforms_in_f64() {
    let rows: [Row64; 12] = [
        ("exp", -700.0, 700.0, exp, f64::exp, 2),
        ("exp", -1.0, 1.0, exp, f64::exp, 1),
        ("ln", 1e-300, 1e300, ln, f64::ln, 1),
        ("ln", 0.5, 2.0, ln, f64::ln, 2),
        ("exp_m1", -30.0, 30.0, exp_m1, f64::exp_m1, 4),
        ("exp_m1", -1e-3, 1e-3, exp_m1, f64::exp_m1, 1),
        ("ln_1p", -0.999, 100.0, ln_1p, f64::ln_1p, 2),
        ("ln_1p", -1e-6, 1e-6, ln_1p, f64::ln_1p, 2),
        ("tanh", -25.0, 25.0, tanh, f64::tanh, 4),
        ("sin", -100.0, 100.0, sin, f64::sin, 2),
        ("cos", -100.0, 100.0, cos, f64::cos, 2),
        ("x^1.7", 0.01, 50.0, |x| powf(x, 1.7), |x| x.powf(1.7), 8),
    ];
    let measured: Vec<(String, u64, u64)> = rows
        .iter()
        .map(|&(name, lo, hi, ours, std, allowed)| {
            (
                format!("{name} on [{lo}, {hi}]"),
                worst(lo, hi, ours, std),
                allowed,
            )
        })
        .collect();
    assert_within(&measured);
}

/// Against the f64 function rounded to f32: within 1 ulp of the
/// correctly rounded value (the platform's f32 functions are not all).
#[test]
fn every_f32_function_is_within_one_ulp_of_the_rounded_f64_one() {
    type Row32 = (&'static str, f64, f64, fn(f32) -> f32, fn(f64) -> f64);
    let rows: [Row32; 5] = [
        ("exp", -87.0, 88.0, exp_f32, f64::exp),
        ("ln", 1e-30, 1e30, ln_f32, f64::ln),
        ("ln_1p", -0.999, 100.0, ln_1p_f32, f64::ln_1p),
        ("tanh", -12.0, 12.0, tanh_f32, f64::tanh),
        (
            "x^1.7",
            0.01,
            50.0,
            |x| powf_f32(x, 1.7),
            |x| x.powf(1.7f32 as f64),
        ),
    ];
    let measured: Vec<(String, u64, u64)> = rows
        .iter()
        .map(|&(name, lo, hi, ours, reference)| {
            let worst = arguments(lo, hi, 200_000)
                .map(|x| {
                    let x = x as f32;
                    ulps32(ours(x), reference(x as f64) as f32)
                })
                .max()
                .unwrap();
            (format!("{name} (f32) on [{lo}, {hi}]"), worst, 1)
        })
        .collect();
    assert_within(&measured);
}

/// Increasing functions: how often f(next float) < f(x). Not every
/// function here is monotone to the last ulp (std's are correctly
/// rounded or nearly); these bounds keep the measured rates.
#[test]
fn increasing_functions_rarely_or_never_step_down_between_neighbours() {
    for (name, f, lo, hi, allowed) in [
        ("ln", ln as fn(f64) -> f64, 0.5, 3.0, 0),
        ("exp_m1", exp_m1, -3.0, 3.0, 0),
        // ln(u) + c/u: a step where u moves by one ulp (measured 148).
        ("ln_1p", ln_1p, -0.99, 3.0, 200),
    ] {
        let down = arguments(lo, hi, 200_000)
            .filter(|&x| f(x.next_up()) < f(x))
            .count();
        assert!(
            down <= allowed,
            "{name} decreases at {down} of 200 000 arguments"
        );
    }
}

#[test]
fn special_values_are_those_of_the_standard_library() {
    let same = |a: f64, b: f64| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
    for x in [0.0, -0.0, f64::INFINITY, f64::NEG_INFINITY, f64::NAN, -1.0] {
        assert!(same(exp(x), x.exp()), "exp({x})");
        assert!(same(ln(x), x.ln()), "ln({x})");
        assert!(same(tanh(x), x.tanh()) || x == -1.0, "tanh({x})");
        assert!(same(ln_1p(x), x.ln_1p()), "ln_1p({x})");
        assert!(same(exp_m1(x), x.exp_m1()) || x == -1.0, "exp_m1({x})");
    }
    // Overflow, underflow, subnormal arguments and results.
    for x in [
        709.78,
        710.0,
        -745.0,
        -746.0,
        5e-324,
        f64::MIN_POSITIVE,
        1e-20,
        1.0,
    ] {
        assert!(ulps(exp(x), x.exp()) <= 1, "exp({x})");
        assert!(ulps(ln(x), x.ln()) <= 1, "ln({x})");
        assert!(ulps(ln_1p(x), x.ln_1p()) <= 1, "ln_1p({x})");
    }
    assert_eq!(ln(2.0), LN_2);
    assert_eq!(ln(1.0), 0.0);
    assert_eq!(exp(0.0), 1.0);
    assert_eq!(sin(0.0), 0.0);
    assert_eq!(cos(0.0), 1.0);
    assert_eq!(powf(-2.0, 3.0), -8.0);
    assert_eq!(powf(-2.0, 2.0), 4.0);
    assert_eq!(powf(3.0, -2.0), 1.0 / 9.0);
    assert!(powf(-2.0, 0.5).is_nan());
    assert_eq!(powf(0.0, 2.0), 0.0);
    assert_eq!(powf(0.0, -1.0), f64::INFINITY);
    assert!(sin(f64::INFINITY).is_nan());
    assert!(
        sin(1e7).is_nan() && cos(-1e20).is_nan(),
        "beyond the exact reduction: NaN"
    );
    assert_eq!(sin(1.6e6), 1.6e6f64.sin());
    // IEEE 754 pow at ±0 and ±∞, signs included.
    for (x, y) in [
        (-0.0, 3.0),
        (-0.0, -3.0),
        (-0.0, 2.0),
        (0.0, -0.5),
        (f64::NEG_INFINITY, 0.5),
        (f64::NEG_INFINITY, -0.5),
        (f64::NEG_INFINITY, 3.0),
        (f64::NEG_INFINITY, -3.0),
        (f64::INFINITY, -2.0),
        (0.5, f64::INFINITY),
        (2.0, f64::NEG_INFINITY),
        (-1.0, f64::INFINITY),
        (1e5, -62.0),
    ] {
        assert!(same(powf(x, y), x.powf(y)), "powf({x}, {y})");
    }
    assert!(cos(f64::NAN).is_nan());
}

/// The branch-free `tanh_f32` against the branchy form it replaced
/// (`tanh_with(x, 8, 8)`), bit for bit: every 251st f32 bit pattern (both
/// signs, subnormals, the series' and the saturation's edges) and the
/// special values, each edge with its two neighbours. A NaN must give a
/// NaN (its bits may differ: the branchy form returns a quieted NaN, the
/// branch-free one need not quiet a signalling one).
#[test]
fn tanh_f32_is_the_branchy_form_bit_for_bit() {
    // Where a case changes: 1e-9 (tiny), 0.25·ln2 (series / eˣ), 22
    // (saturation), 44.5 (the clamp of 2|x| at 89).
    let centres = [
        0.0f32,
        1e-9,
        (0.25 * LN_2) as f32,
        22.0,
        44.5,
        1e30,
        f32::MIN_POSITIVE,
    ];
    let edges = centres.into_iter().flat_map(|c| {
        let b = c.to_bits();
        [b.saturating_sub(1), b, b + 1]
            .into_iter()
            .flat_map(|b| [f32::from_bits(b), -f32::from_bits(b)])
    });
    let specials = [f32::INFINITY, f32::NEG_INFINITY, f32::NAN];
    let strided = (0..=u32::MAX).step_by(251).map(f32::from_bits);
    let mut checked = 0usize;
    for x in edges.chain(specials).chain(strided) {
        let (ours, branchy) = (tanh_f32(x), tanh_with(x as f64, 8, 8) as f32);
        if branchy.is_nan() {
            assert!(ours.is_nan(), "tanh_f32({x:e}) = {ours:e}, not NaN");
        } else {
            assert_eq!(ours.to_bits(), branchy.to_bits(), "tanh_f32({x:e})");
        }
        checked += 1;
    }
    assert!(checked > 17_000_000, "{checked} arguments");
}
