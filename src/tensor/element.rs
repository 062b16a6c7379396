//! The [`Element`] trait: what a kernel needs from a float (`f32` or `f64`).

use super::math;
use std::fmt::{Debug, Display};
use std::iter::Sum;
use std::ops::{Add, AddAssign, Div, Mul, MulAssign, Neg, Sub, SubAssign};

/// A floating-point element type a [`Tensor`](super::Tensor) can hold: `f32` or `f64`.
///
/// It names the few scalar functions the kernels use and the matching GEMM
/// (for f32 flowzoo's packed AVX2 kernel where the CPU has AVX2 and FMA,
/// otherwise `matrixmultiply::sgemm`; for f64 `matrixmultiply::dgemm`), so
/// every kernel is written once for both types.
pub trait Element:
    Copy
    + Send
    + Sync
    + Debug
    + Display
    + PartialOrd
    + Default
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + SubAssign
    + MulAssign
    + Sum
    + 'static
{
    /// Additive identity.
    const ZERO: Self;
    /// Multiplicative identity.
    const ONE: Self;
    /// The type's name as used in checkpoints and messages (`"f32"`, `"f64"`).
    const NAME: &'static str;
    /// Machine epsilon: the gap between 1 and the next larger value
    /// (2⁻²³ for `f32`, 2⁻⁵² for `f64`).
    const EPSILON: Self;
    /// Converts from `f64`, rounding to nearest for `f32`.
    fn from_f64(v: f64) -> Self;
    /// Converts to `f64` exactly.
    fn to_f64(self) -> f64;
    /// `eˣ`. This and the other transcendental functions below are the
    /// crate's own ([`math`]): the same bits on every platform.
    fn exp(self) -> Self;
    /// Natural logarithm.
    fn ln(self) -> Self;
    /// `ln(1 + x)`, accurate for small `x`.
    fn ln_1p(self) -> Self;
    /// Hyperbolic tangent.
    fn tanh(self) -> Self;
    /// Square root.
    fn sqrt(self) -> Self;
    /// `selfᵉ` for a real exponent.
    fn powf(self, e: Self) -> Self;
    /// Absolute value.
    fn abs(self) -> Self;
    /// The larger of two values (NaN-ignoring, as `f64::max`).
    fn max(self, other: Self) -> Self;
    /// The smaller of two values (NaN-ignoring, as `f64::min`).
    fn min(self, other: Self) -> Self;
    /// True unless NaN or infinite.
    fn is_finite(self) -> bool;
    /// `C ← α·A·B + β·C` with arbitrary row and column strides, in elements.
    ///
    /// # Safety
    /// The pointers and strides must describe valid `[m, k]`, `[k, n]` and
    /// `[m, n]` matrices; `c` must not alias `a` or `b`.
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm(
        m: usize,
        k: usize,
        n: usize,
        alpha: Self,
        a: *const Self,
        rsa: isize,
        csa: isize,
        b: *const Self,
        rsb: isize,
        csb: isize,
        beta: Self,
        c: *mut Self,
        rsc: isize,
        csc: isize,
    );

    /// `C ← A·B + 1·biasᵀ`, then `max(C, 0)` (0 for NaN) when `relu`, with
    /// `c` `m` contiguous rows of `n` (row stride `n`): an affine layer and
    /// its ReLU in one pass over C. For f32 where [`Element::gemm`] runs
    /// flowzoo's AVX2 kernel, the bias and the ReLU are applied to each
    /// tile of C as it is stored; otherwise C is filled with the bias, the
    /// product added (β = 1), and the ReLU applied after. Both give the
    /// same bits: each element is `bias + Σ` rounded once, as a fused
    /// multiply-add `1·bias + Σ` rounds it.
    ///
    /// # Safety
    /// As [`Element::gemm`], with `bias` holding `n` values.
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm_bias(
        m: usize,
        k: usize,
        n: usize,
        a: *const Self,
        a_strides: (isize, isize),
        b: *const Self,
        b_strides: (isize, isize),
        bias: &[Self],
        relu: bool,
        c: &mut [Self],
    );
}

/// [`Element::gemm_bias`] by three steps: C filled with the bias in every
/// row, `C ← A·B + 1·C`, then the ReLU over C.
///
/// # Safety
/// As [`Element::gemm_bias`].
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm_bias_by_beta<T: Element>(
    m: usize,
    k: usize,
    n: usize,
    a: *const T,
    (rsa, csa): (isize, isize),
    b: *const T,
    (rsb, csb): (isize, isize),
    bias: &[T],
    relu: bool,
    c: &mut [T],
) {
    debug_assert!(bias.len() == n && c.len() == m * n);
    for row in c.chunks_mut(n) {
        row.copy_from_slice(bias);
    }
    if k > 0 {
        // SAFETY: the caller's contract; C is `[m, n]` with row stride n.
        unsafe {
            T::gemm(
                m,
                k,
                n,
                T::ONE,
                a,
                rsa,
                csa,
                b,
                rsb,
                csb,
                T::ONE,
                c.as_mut_ptr(),
                n as isize,
                1,
            )
        };
    }
    if relu {
        relu_in_place(c);
    }
}

/// `v ← max(v, 0)` over a slice, 0 for NaN (as [`Tensor::relu`](super::Tensor::relu)).
pub(crate) fn relu_in_place<T: Element>(values: &mut [T]) {
    values
        .iter_mut()
        .for_each(|v| *v = if *v > T::ZERO { *v } else { T::ZERO });
}

macro_rules! impl_element {
    ($t:ty, $name:literal, $gemm:path, $gemm_bias:expr, $exp:path, $ln:path, $ln_1p:path, $tanh:path, $powf:path) => {
        impl Element for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const NAME: &'static str = $name;
            const EPSILON: Self = <$t>::EPSILON;
            #[inline]
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            #[inline]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline]
            fn exp(self) -> Self {
                $exp(self)
            }
            #[inline]
            fn ln(self) -> Self {
                $ln(self)
            }
            #[inline]
            fn ln_1p(self) -> Self {
                $ln_1p(self)
            }
            #[inline]
            fn tanh(self) -> Self {
                $tanh(self)
            }
            #[inline]
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            #[inline]
            fn powf(self, e: Self) -> Self {
                $powf(self, e)
            }
            #[inline]
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
            #[inline]
            fn max(self, other: Self) -> Self {
                <$t>::max(self, other)
            }
            #[inline]
            fn min(self, other: Self) -> Self {
                <$t>::min(self, other)
            }
            #[inline]
            fn is_finite(self) -> bool {
                <$t>::is_finite(self)
            }
            #[inline]
            unsafe fn gemm(
                m: usize,
                k: usize,
                n: usize,
                alpha: Self,
                a: *const Self,
                rsa: isize,
                csa: isize,
                b: *const Self,
                rsb: isize,
                csb: isize,
                beta: Self,
                c: *mut Self,
                rsc: isize,
                csc: isize,
            ) {
                $gemm(m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc)
            }
            #[inline]
            unsafe fn gemm_bias(
                m: usize,
                k: usize,
                n: usize,
                a: *const Self,
                a_strides: (isize, isize),
                b: *const Self,
                b_strides: (isize, isize),
                bias: &[Self],
                relu: bool,
                c: &mut [Self],
            ) {
                // SAFETY: the caller's contract.
                unsafe {
                    if !$gemm_bias(m, k, n, a, a_strides, b, b_strides, bias, relu, &mut *c) {
                        gemm_bias_by_beta(m, k, n, a, a_strides, b, b_strides, bias, relu, c)
                    }
                }
            }
        }
    };
}

impl_element!(
    f32,
    "f32",
    super::gemm::sgemm,
    super::gemm::sgemm_bias,
    math::exp_f32,
    math::ln_f32,
    math::ln_1p_f32,
    math::tanh_f32,
    math::powf_f32
);
impl_element!(
    f64,
    "f64",
    matrixmultiply::dgemm,
    // f64 has no fused route: the three passes always run.
    |_, _, _, _, _, _, _, _, _, _| false,
    math::exp,
    math::ln,
    math::ln_1p,
    math::tanh,
    math::powf
);
