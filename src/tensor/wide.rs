//! Element-wise loops compiled for the widest vectors the CPU has.
//!
//! The crate is compiled for the baseline x86-64 (SSE2), so a loop such as
//! `out[i] = tanh(x[i])` gets at most two f64 lanes, and our elementary
//! functions (`math.rs`), which are evaluated in f64 and pass through
//! integer bits, mostly stay scalar. The loops here take the element
//! function as a closure and are compiled three times: plain, with AVX2 and
//! with AVX-512F enabled. Each wide copy writes its loop out (a call to the
//! plain one is not inlined once `tanh` makes its body large, and would run
//! plain), so the closure and the `#[inline]` functions it calls are
//! compiled with the feature and vectorised; [`cpu::widest`](super::cpu::widest)
//! picks the copy at run time. On a 2-core Zen 3 (AVX2), ns per f32 element
//! of a `[256, 64]` tensor, one thread (examples/elementwise_speed.rs),
//! before and after, contiguous / a narrowed view's rows: `tanh` 5.98 / 15.13
//! → 3.52 / 3.55, `exp` 2.64 / 5.92 → 1.49 / 1.59, `ln` 4.48 / 7.90 → 2.22 /
//! 2.37 (the narrowed rows also went from an indexed loop to slices).
//!
//! **Same bits at every width.** Only AVX2 and AVX-512F are enabled, not
//! FMA, and Rust never fuses a multiply and an add on its own, so each copy
//! performs the same IEEE operations on each element as the plain one and
//! rounds them the same way (`wide_loops_give_the_plain_bits` below, on
//! NaN, infinities, signed zeros and the branch points of `tanh` and `exp`).
//! `MMTEST_FEATURE=none` keeps the plain copy, as on `wasm32`.

#[cfg(target_arch = "x86_64")]
use super::cpu::{widest, Width};

/// `out[i] = f(x[i])` for every i.
///
/// # Panics
/// If `x` and `out` differ in length.
#[inline]
pub(crate) fn map_into<T: Copy, F: Fn(T) -> T>(x: &[T], out: &mut [T], f: F) {
    assert_eq!(x.len(), out.len(), "map_into: lengths differ");
    #[cfg(target_arch = "x86_64")]
    match widest() {
        // SAFETY: the CPU has the features (`widest` detected them).
        Width::Avx512 => return unsafe { x86::map_avx512(x, out, &f) },
        // SAFETY: as above.
        Width::Avx2 => return unsafe { x86::map_avx2(x, out, &f) },
        Width::Baseline => {}
    }
    map_plain(x, out, &f)
}

/// `v[i] = f(v[i])` for every i.
#[inline]
pub(crate) fn map_in_place<T: Copy, F: Fn(T) -> T>(v: &mut [T], f: F) {
    #[cfg(target_arch = "x86_64")]
    match widest() {
        // SAFETY: the CPU has the features (`widest` detected them).
        Width::Avx512 => return unsafe { x86::in_place_avx512(v, &f) },
        // SAFETY: as above.
        Width::Avx2 => return unsafe { x86::in_place_avx2(v, &f) },
        Width::Baseline => {}
    }
    in_place_plain(v, &f)
}

/// `out[i] = f(x[i], y[i])` for every i.
///
/// # Panics
/// If the three lengths differ.
#[inline]
pub(crate) fn zip_into<T: Copy, F: Fn(T, T) -> T>(x: &[T], y: &[T], out: &mut [T], f: F) {
    assert!(
        x.len() == out.len() && y.len() == out.len(),
        "zip_into: lengths {}, {} and {} differ",
        x.len(),
        y.len(),
        out.len()
    );
    #[cfg(target_arch = "x86_64")]
    match widest() {
        // SAFETY: the CPU has the features (`widest` detected them).
        Width::Avx512 => return unsafe { x86::zip_avx512(x, y, out, &f) },
        // SAFETY: as above.
        Width::Avx2 => return unsafe { x86::zip_avx2(x, y, out, &f) },
        Width::Baseline => {}
    }
    zip_plain(x, y, out, &f)
}

#[inline(always)]
fn map_plain<T: Copy, F: Fn(T) -> T>(x: &[T], out: &mut [T], f: &F) {
    out.iter_mut().zip(x).for_each(|(o, &a)| *o = f(a));
}

#[inline(always)]
fn in_place_plain<T: Copy, F: Fn(T) -> T>(v: &mut [T], f: &F) {
    v.iter_mut().for_each(|a| *a = f(*a));
}

#[inline(always)]
fn zip_plain<T: Copy, F: Fn(T, T) -> T>(x: &[T], y: &[T], out: &mut [T], f: &F) {
    out.iter_mut()
        .zip(x.iter().zip(y))
        .for_each(|(o, (&a, &b))| *o = f(a, b));
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! The wide copies: the plain loops, compiled with the feature enabled.

    macro_rules! wide {
        ($feature:literal, $map:ident, $in_place:ident, $zip:ident) => {
            /// [`super::map_plain`] compiled with the feature.
            ///
            /// # Safety
            /// The CPU must have the feature.
            #[target_feature(enable = $feature)]
            pub(super) unsafe fn $map<T: Copy, F: Fn(T) -> T>(x: &[T], out: &mut [T], f: &F) {
                // The loop written out here (not a call to the plain one),
                // so that its body, `f` inlined, is compiled with the feature.
                for (o, &a) in out.iter_mut().zip(x) {
                    *o = f(a);
                }
            }

            /// [`super::in_place_plain`] compiled with the feature.
            ///
            /// # Safety
            /// The CPU must have the feature.
            #[target_feature(enable = $feature)]
            pub(super) unsafe fn $in_place<T: Copy, F: Fn(T) -> T>(v: &mut [T], f: &F) {
                for a in v.iter_mut() {
                    *a = f(*a);
                }
            }

            /// [`super::zip_plain`] compiled with the feature.
            ///
            /// # Safety
            /// The CPU must have the feature.
            #[target_feature(enable = $feature)]
            pub(super) unsafe fn $zip<T: Copy, F: Fn(T, T) -> T>(
                x: &[T],
                y: &[T],
                out: &mut [T],
                f: &F,
            ) {
                for (o, (&a, &b)) in out.iter_mut().zip(x.iter().zip(y)) {
                    *o = f(a, b);
                }
            }
        };
    }
    wide!("avx2", map_avx2, in_place_avx2, zip_avx2);
    wide!("avx512f", map_avx512, in_place_avx512, zip_avx512);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::Element;

    /// Arguments around every branch point of the elementary functions,
    /// plus NaN, the infinities, the signed zeros and a spread of ordinary
    /// values; 1000 of them, so the wide loops run full vectors and a tail.
    fn arguments<T: Element>() -> Vec<T> {
        let special = [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            0.0,
            -0.0,
            1e-10,
            -1e-10,
            0.5 * std::f64::consts::LN_2,
            0.17,
            22.0,
            22.000_001,
            -22.5,
            88.7,
            89.5,
            -103.0,
            -104.5,
            709.0,
            -745.0,
            1e300,
        ];
        let spread = (0..1000 - special.len()).map(|i| {
            let u =
                ((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) as f64 / (1u64 << 53) as f64;
            (u - 0.5) * 60.0
        });
        special
            .iter()
            .copied()
            .chain(spread)
            .map(T::from_f64)
            .collect()
    }

    fn check<T: Element>() {
        let x = arguments::<T>();
        let y: Vec<T> = x.iter().rev().copied().collect();
        let bits = |v: &[T]| -> Vec<u64> { v.iter().map(|a| a.to_f64().to_bits()).collect() };
        type Unary<T> = (&'static str, fn(T) -> T);
        let unary: [Unary<T>; 4] = [
            ("tanh", T::tanh),
            ("exp", T::exp),
            ("ln", T::ln),
            ("relu", |a| if a > T::ZERO { a } else { T::ZERO }),
        ];
        for (name, f) in unary {
            let mut plain = vec![T::ZERO; x.len()];
            map_plain(&x, &mut plain, &f);
            let mut wide = vec![T::ZERO; x.len()];
            map_into(&x, &mut wide, f);
            assert_eq!(bits(&wide), bits(&plain), "map_into {name} in {}", T::NAME);
            let mut in_place = x.clone();
            map_in_place(&mut in_place, f);
            assert_eq!(
                bits(&in_place),
                bits(&plain),
                "map_in_place {name} in {}",
                T::NAME
            );
        }
        let f = |a: T, b: T| (a * b).exp() - a / b;
        let mut plain = vec![T::ZERO; x.len()];
        zip_plain(&x, &y, &mut plain, &f);
        let mut wide = vec![T::ZERO; x.len()];
        zip_into(&x, &y, &mut wide, f);
        assert_eq!(bits(&wide), bits(&plain), "zip_into in {}", T::NAME);
    }

    /// On this CPU's widest copy (the plain one where it has neither
    /// feature): every element has the plain loop's bits.
    #[test]
    fn wide_loops_give_the_plain_bits() {
        check::<f32>();
        check::<f64>();
    }

    /// Each wide copy this CPU can run, called directly (the dispatch above
    /// takes only the widest), on tanh and exp in f32.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn every_wide_copy_this_cpu_runs_gives_the_plain_bits() {
        let x = arguments::<f32>();
        for f in [
            <f32 as Element>::tanh as fn(f32) -> f32,
            <f32 as Element>::exp,
        ] {
            let mut plain = vec![0.0; x.len()];
            map_plain(&x, &mut plain, &f);
            let bits = |v: &[f32]| -> Vec<u32> { v.iter().map(|a| a.to_bits()).collect() };
            if std::arch::is_x86_feature_detected!("avx2") {
                let mut wide = vec![0.0; x.len()];
                // SAFETY: the CPU has AVX2.
                unsafe { x86::map_avx2(&x, &mut wide, &f) };
                assert_eq!(bits(&wide), bits(&plain), "AVX2");
            }
            if std::arch::is_x86_feature_detected!("avx512f") {
                let mut wide = vec![0.0; x.len()];
                // SAFETY: the CPU has AVX-512F.
                unsafe { x86::map_avx512(&x, &mut wide, &f) };
                assert_eq!(bits(&wide), bits(&plain), "AVX-512F");
            }
        }
    }
}
