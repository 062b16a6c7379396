//! The two inner loops of the thin matrix product (`n ≤ 4` output columns,
//! see `matmul.rs`), with an AVX2 + FMA version chosen at run time.
//!
//! The crate is compiled for the baseline x86-64 (SSE2, 4 f32 lanes, no fused
//! multiply-add), which is what a user's `cargo build` gives. On a CPU that
//! has AVX2 and FMA (checked once per call with `is_x86_feature_detected!`,
//! a cached flag), these loops run on 8 f32 / 4 f64 lanes with one fused
//! multiply-add per lane instead of a multiply and an add: about twice the
//! arithmetic per instruction. Elsewhere they fall back to plain Rust.
//!
//! The packed GEMM (`gemm.rs`, our AVX2 kernel for f32, `matrixmultiply`
//! otherwise) asks `has_avx2_fma` too. All obey the same compile-time
//! switch, `MMTEST_FEATURE` (`cpu.rs`).

#[cfg(target_arch = "x86_64")]
use super::cpu::has_avx2_fma;
pub(crate) use super::cpu::{widest, Width};
use super::Element;

/// `out[j] = Σₚ row[p]·columns[j][p]` for each column j (`columns.len() ==
/// out.len() ≤ 4`, each column as long as `row`).
///
/// # Panics
/// If there are more than 4 columns, or not as many outputs as columns.
pub(crate) fn dots<T: Element>(row: &[T], columns: &[&[T]], out: &mut [T]) {
    assert!(
        columns.len() <= 4 && columns.len() == out.len(),
        "dots: {} columns and {} outputs, at most 4",
        columns.len(),
        out.len()
    );
    #[cfg(target_arch = "x86_64")]
    {
        if has_avx2_fma() {
            if let Some((row, out)) = as_f32(row).zip(as_f32_mut(out)) {
                // On the stack: this runs once per row of A.
                let mut typed: [&[f32]; 4] = [&[]; 4];
                for (t, c) in typed.iter_mut().zip(columns) {
                    *t = as_f32(c).expect("the same element type as the row");
                }
                // SAFETY: AVX2 and FMA were detected on this CPU.
                unsafe { avx::dots_f32(row, &typed[..columns.len()], out) };
                return;
            }
            if let Some((row, out)) = as_f64(row).zip(as_f64_mut(out)) {
                // On the stack: this runs once per row of A.
                let mut typed: [&[f64]; 4] = [&[]; 4];
                for (t, c) in typed.iter_mut().zip(columns) {
                    *t = as_f64(c).expect("the same element type as the row");
                }
                // SAFETY: AVX2 and FMA were detected on this CPU.
                unsafe { avx::dots_f64(row, &typed[..columns.len()], out) };
                return;
            }
        }
    }
    for (o, col) in out.iter_mut().zip(columns) {
        *o = dot(row, col);
    }
}

/// `y[i] += scale·x[i]` for every i.
///
/// # Panics
/// If `x` and `y` differ in length.
pub(crate) fn axpy<T: Element>(scale: T, x: &[T], y: &mut [T]) {
    assert_eq!(x.len(), y.len(), "axpy: lengths differ");
    #[cfg(target_arch = "x86_64")]
    {
        if has_avx2_fma() {
            if let (Some(x), Some(y)) = (as_f32(x), as_f32_mut(y)) {
                // SAFETY: AVX2 and FMA were detected on this CPU.
                unsafe { avx::axpy_f32(scale.to_f64() as f32, x, y) };
                return;
            }
            if let (Some(x), Some(y)) = (as_f64(x), as_f64_mut(y)) {
                // SAFETY: AVX2 and FMA were detected on this CPU.
                unsafe { avx::axpy_f64(scale.to_f64(), x, y) };
                return;
            }
        }
    }
    for (acc, &v) in y.iter_mut().zip(x) {
        *acc += scale * v;
    }
}

/// Dot product with eight independent accumulators (vectorises without
/// reassociation by the compiler).
#[inline]
fn dot<T: Element>(x: &[T], y: &[T]) -> T {
    let mut acc = [T::ZERO; 8];
    let chunks = x.len() / 8;
    for c in 0..chunks {
        let (xs, ys) = (&x[c * 8..c * 8 + 8], &y[c * 8..c * 8 + 8]);
        for l in 0..8 {
            acc[l] += xs[l] * ys[l];
        }
    }
    let mut total = T::ZERO;
    for i in chunks * 8..x.len() {
        total += x[i] * y[i];
    }
    acc.iter().fold(total, |s, &v| s + v)
}

// The element type is generic; these views are the same slice when T is the
// named type and None otherwise (T is 'static, so TypeId tells).
macro_rules! view {
    ($name:ident, $name_mut:ident, $t:ty) => {
        #[cfg(target_arch = "x86_64")]
        fn $name<T: Element>(s: &[T]) -> Option<&[$t]> {
            (std::any::TypeId::of::<T>() == std::any::TypeId::of::<$t>())
                // SAFETY: T is $t, so the layout and lifetime are the same.
                .then(|| unsafe { std::slice::from_raw_parts(s.as_ptr().cast::<$t>(), s.len()) })
        }
        #[cfg(target_arch = "x86_64")]
        fn $name_mut<T: Element>(s: &mut [T]) -> Option<&mut [$t]> {
            (std::any::TypeId::of::<T>() == std::any::TypeId::of::<$t>()).then(|| {
                // SAFETY: T is $t, so the layout and lifetime are the same.
                unsafe { std::slice::from_raw_parts_mut(s.as_mut_ptr().cast::<$t>(), s.len()) }
            })
        }
    };
}
view!(as_f32, as_f32_mut, f32);
view!(as_f64, as_f64_mut, f64);

#[cfg(target_arch = "x86_64")]
mod avx {
    use std::arch::x86_64::*;

    /// Sum of the lanes of an 8-lane f32 vector.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn sum_f32(v: __m256) -> f32 {
        let mut lanes = [0f32; 8];
        _mm256_storeu_ps(lanes.as_mut_ptr(), v);
        lanes.iter().sum()
    }

    /// Sum of the lanes of a 4-lane f64 vector.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn sum_f64(v: __m256d) -> f64 {
        let mut lanes = [0f64; 4];
        _mm256_storeu_pd(lanes.as_mut_ptr(), v);
        lanes.iter().sum()
    }

    // One pass over `row` serves every column: each 16-element block of the
    // row is loaded once and multiplied into two accumulators per column, so
    // up to 8 fused multiply-adds are in flight (the FMA latency is 4 cycles).
    // The column count is a constant of each instance (1..=4), so the
    // accumulators live in registers, not in memory.
    macro_rules! dots {
        ($name:ident, $n_cols:ident, $t:ty, $lanes:expr, $vec:ty, $zero:ident, $load:ident, $fma:ident, $add:ident, $sum:ident) => {
            /// See [`super::dots`].
            ///
            /// # Safety
            /// The CPU must have AVX2 and FMA; every column must be at least
            /// as long as `row`, and `out` as long as `columns` (at most 4).
            #[target_feature(enable = "avx2,fma")]
            pub(super) unsafe fn $name(row: &[$t], columns: &[&[$t]], out: &mut [$t]) {
                match columns.len() {
                    0 => {}
                    1 => $n_cols::<1>(row, columns, out),
                    2 => $n_cols::<2>(row, columns, out),
                    3 => $n_cols::<3>(row, columns, out),
                    4 => $n_cols::<4>(row, columns, out),
                    n => panic!("dots: {n} columns, at most 4"),
                }
            }

            #[target_feature(enable = "avx2,fma")]
            unsafe fn $n_cols<const N: usize>(row: &[$t], columns: &[&[$t]], out: &mut [$t]) {
                const BLOCK: usize = 2 * $lanes;
                let k = row.len();
                assert!(
                    out.len() == N && columns.len() == N && columns.iter().all(|c| c.len() >= k)
                );
                let cols: [*const $t; N] = std::array::from_fn(|j| columns[j].as_ptr());
                let mut acc: [[$vec; 2]; N] = [[$zero(); 2]; N];
                let blocks = k / BLOCK;
                for b in 0..blocks {
                    let p = b * BLOCK;
                    let x0 = $load(row.as_ptr().add(p));
                    let x1 = $load(row.as_ptr().add(p + $lanes));
                    for j in 0..N {
                        acc[j][0] = $fma(x0, $load(cols[j].add(p)), acc[j][0]);
                        acc[j][1] = $fma(x1, $load(cols[j].add(p + $lanes)), acc[j][1]);
                    }
                }
                for j in 0..N {
                    let mut total = $sum($add(acc[j][0], acc[j][1]));
                    for p in blocks * BLOCK..k {
                        total += row[p] * columns[j][p];
                    }
                    out[j] = total;
                }
            }
        };
    }
    dots!(
        dots_f32,
        dots_f32_n,
        f32,
        8,
        __m256,
        _mm256_setzero_ps,
        _mm256_loadu_ps,
        _mm256_fmadd_ps,
        _mm256_add_ps,
        sum_f32
    );
    dots!(
        dots_f64,
        dots_f64_n,
        f64,
        4,
        __m256d,
        _mm256_setzero_pd,
        _mm256_loadu_pd,
        _mm256_fmadd_pd,
        _mm256_add_pd,
        sum_f64
    );

    macro_rules! axpy {
        ($name:ident, $t:ty, $lanes:expr, $set1:ident, $load:ident, $store:ident, $fma:ident) => {
            /// See [`super::axpy`].
            ///
            /// # Safety
            /// The CPU must have AVX2 and FMA; `x` and `y` equally long.
            #[target_feature(enable = "avx2,fma")]
            pub(super) unsafe fn $name(scale: $t, x: &[$t], y: &mut [$t]) {
                assert_eq!(x.len(), y.len());
                let s = $set1(scale);
                let blocks = x.len() / $lanes;
                for b in 0..blocks {
                    let p = b * $lanes;
                    let out = y.as_mut_ptr().add(p);
                    $store(out, $fma(s, $load(x.as_ptr().add(p)), $load(out)));
                }
                for p in blocks * $lanes..x.len() {
                    y[p] += scale * x[p];
                }
            }
        };
    }
    axpy!(
        axpy_f32,
        f32,
        8,
        _mm256_set1_ps,
        _mm256_loadu_ps,
        _mm256_storeu_ps,
        _mm256_fmadd_ps
    );
    axpy!(
        axpy_f64,
        f64,
        4,
        _mm256_set1_pd,
        _mm256_loadu_pd,
        _mm256_storeu_pd,
        _mm256_fmadd_pd
    );
}
