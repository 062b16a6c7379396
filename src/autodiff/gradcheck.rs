//! [`gradcheck`]: the tape's gradient against central finite differences, in
//! `f64`. The tool a student uses to prove a new op or layer.

use super::tape::Tape;
use super::var::Var;
use crate::tensor::Tensor;

/// Where a gradient check failed: which input, which entry, both values.
#[derive(Debug, Clone)]
pub struct GradcheckFailure {
    /// Index of the input in the slice passed to [`gradcheck`].
    pub input: usize,
    /// Row-major index of the entry within that input.
    pub index: usize,
    /// ∂f/∂x from the tape.
    pub analytic: f64,
    /// ∂f/∂x from central differences.
    pub numeric: f64,
    /// `(|analytic − numeric| − e) / max(1, |analytic|, |numeric|)`, with `e`
    /// the differences' own error bound
    /// ([`kink_aware_derivative_with_error`]); NaN if either value is.
    pub error: f64,
}

impl std::fmt::Display for GradcheckFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "gradcheck: input {}, entry {}: tape gives {:.10e}, finite differences {:.10e} (relative error {:.3e})",
            self.input, self.index, self.analytic, self.numeric, self.error
        )
    }
}

/// The offsets, in units of the step h, at which [`kink_aware_derivative`]
/// needs the function (besides the point itself).
pub const FD_STENCIL: [f64; 6] = [-2.0, -1.0, -0.5, 0.5, 1.0, 2.0];

/// f′(0) from f(0) and `values[k] = f(FD_STENCIL[k]·h)`, correct to O(h²) even
/// when one kink (a point where f′ jumps, as where a ReLU's input changes
/// sign) lies within 2h of 0.
///
/// The central difference (f(h) − f(−h)) / 2h averages the two slopes when a
/// kink lies between −h and h: neither the left nor the right derivative, so a
/// correct gradient would fail a check at such a point. Each side therefore
/// gets two second-order one-sided estimates, with steps h and h/2:
///
/// - forward: (−3f(0) + 4f(h) − f(2h)) / 2h and (−3f(0) + 4f(h/2) − f(h)) / h,
/// - backward: (3f(0) − 4f(−h) + f(−2h)) / 2h and (3f(0) − 4f(−h/2) + f(−h)) / h.
///
/// Where f is smooth on a side its two estimates agree to O(h²); a kink on
/// that side makes them disagree. Both sides smooth: the central difference.
/// One side smooth: that side's finer estimate, which is the derivative the
/// tape computes (f′ of the piece the point lies on). Neither side smooth:
/// the central difference, and the check will most likely report the entry.
///
/// A kink *exactly* at the point (a ReLU input of exactly 0, as zero inputs
/// through zero biases give) leaves both sides smooth with different slopes:
/// the result is their average, while the tape takes one side by convention
/// (ReLU′(0) = 0), so check at points drawn at random, not at such a point.
///
/// # Examples
/// ```
/// use flowzoo::autodiff::{kink_aware_derivative, FD_STENCIL};
/// // relu at 3e-6 with h = 1e-5: the central difference gives 0.65, the
/// // derivative is 1.
/// let relu = |t: f64| (3e-6 + t).max(0.0);
/// let h = 1e-5;
/// let d = kink_aware_derivative(relu(0.0), FD_STENCIL.map(|k| relu(k * h)), h);
/// assert!((d - 1.0).abs() < 1e-9);
/// ```
pub fn kink_aware_derivative(f0: f64, values: [f64; 6], h: f64) -> f64 {
    kink_aware_derivative_with_error(f0, values, h).0
}

/// [`kink_aware_derivative`] and a bound on its own error: truncation,
/// estimated by the same formula at twice the step (its O(h²) term is four
/// times larger, so the two differ by three times the finer one's), plus
/// round-off, 4ε·max|f| / h.
///
/// A check compares the tape with the difference to `rtol` *beyond* this
/// bound. For smooth, moderate functions the bound is ~1e-9 and changes
/// nothing; it grows where f bends on a scale near h (a spline's narrowest
/// bin: f‴ ~ 1/w³) or where a kink lies within 2h on both sides, the places
/// where finite differences themselves cannot reach `rtol`. A wrong gradient
/// is not hidden: the two differences agree with each other, not with it.
///
/// # Examples
/// ```
/// use flowzoo::autodiff::{kink_aware_derivative_with_error, FD_STENCIL};
/// // sin at 1 with a coarse step: the estimate is off by about h²/6·cos 1,
/// // and the bound covers it.
/// let h = 1e-3;
/// let (d, error) = kink_aware_derivative_with_error(1f64.sin(), FD_STENCIL.map(|k| (1.0 + k * h).sin()), h);
/// assert!((d - 1f64.cos()).abs() <= error && error < 1e-6);
/// ```
pub fn kink_aware_derivative_with_error(f0: f64, values: [f64; 6], h: f64) -> (f64, f64) {
    let [m2, m1, mh, ph, p1, p2] = values;
    let scale = values.iter().fold(f0.abs(), |m, v| m.max(v.abs()));
    let round_off = 4.0 * f64::EPSILON * scale / h;
    let central = (p1 - m1) / (2.0 * h);
    let central_coarse = (p2 - m2) / (4.0 * h);
    let forward = (
        (-3.0 * f0 + 4.0 * p1 - p2) / (2.0 * h),
        (-3.0 * f0 + 4.0 * ph - p1) / h,
    );
    let backward = (
        (3.0 * f0 - 4.0 * m1 + m2) / (2.0 * h),
        (3.0 * f0 - 4.0 * mh + m1) / h,
    );
    // Smooth-side agreement is O(h²·f‴) + O(ε·|f|/h) ≈ 1e-10 at h = 1e-5; a
    // kink that matters at the checks' 1e-6 shows far above this threshold.
    // Misjudging a smooth side costs nothing: its one-sided estimate is as good.
    let agree = |(a, b): (f64, f64)| (a - b).abs() <= 1e-8 * 1f64.max(a.abs()).max(b.abs());
    let (estimate, coarse) = match (agree(forward), agree(backward)) {
        (true, false) => (forward.1, forward.0),
        (false, true) => (backward.1, backward.0),
        _ => (central, central_coarse),
    };
    let truncation = (estimate - coarse).abs();
    let error = round_off
        + if truncation.is_finite() {
            truncation
        } else {
            0.0
        };
    (estimate, error)
}

/// `(|analytic − numeric| − fd_error)⁺ / max(1, |analytic|, |numeric|)`: the
/// relative disagreement beyond what the differences' own error explains;
/// NaN when either value is NaN (so a NaN gradient always fails).
pub fn beyond_fd_error(analytic: f64, numeric: f64, fd_error: f64) -> f64 {
    let difference = (analytic - numeric).abs();
    if difference.is_nan() {
        return f64::NAN;
    }
    (difference - fd_error).max(0.0) / 1f64.max(analytic.abs()).max(numeric.abs())
}

/// Checks the gradient the tape computes for a scalar function `f` of several
/// tensors against central differences:
/// `∂f/∂xᵢ ≈ (f(x + h·eᵢ) − f(x − h·eᵢ)) / 2h`, error O(h²), or a one-sided
/// difference where a kink (a ReLU changing sign) lies within 2h of the point
/// (see [`kink_aware_derivative`]).
///
/// `f` receives the inputs as [`Var`]s on a fresh tape and returns a
/// one-element `Var`. Each entry passes when
/// `|analytic − numeric| ≤ rtol · max(1, |analytic|, |numeric|) + e`, with
/// `e` the differences' own error bound
/// ([`kink_aware_derivative_with_error`]: ~1e-9 where f is smooth).
///
/// # Errors
/// The first failing entry, with the input, the index, both values and the
/// relative error (its `Display` prints them all).
///
/// # Panics
/// If `f` returns a value with more than one element.
///
/// # Examples
/// ```
/// use flowzoo::autodiff::gradcheck;
/// use flowzoo::tensor::Tensor;
/// let x = Tensor::<f64>::from_vec(vec![0.3, -1.2, 2.0], &[3]);
/// // f(x) = Σ tanh(x)·x
/// gradcheck(|v| (&v[0].tanh() * &v[0]).sum_all(), &[x], 1e-6, 1e-7).unwrap();
/// ```
pub fn gradcheck<F>(f: F, inputs: &[Tensor<f64>], h: f64, rtol: f64) -> Result<(), GradcheckFailure>
where
    F: for<'t> Fn(&[Var<'t, f64>]) -> Var<'t, f64>,
{
    let tape = Tape::new();
    let vars: Vec<Var<f64>> = inputs.iter().map(|x| tape.leaf(x.contiguous())).collect();
    let out = f(&vars);
    let grads = tape.backward(&out);
    let value_at = |inputs: &[Tensor<f64>]| -> f64 {
        let tape = Tape::no_grad();
        let vars: Vec<Var<f64>> = inputs.iter().map(|x| tape.constant(x.clone())).collect();
        f(&vars).value().item()
    };
    for (i, x) in inputs.iter().enumerate() {
        let analytic = grads
            .wrt(&vars[i])
            .map(|g| g.to_vec())
            .unwrap_or_else(|| vec![0.0; x.numel()]);
        let base = x.to_vec();
        let f0 = value_at(inputs);
        for j in 0..base.len() {
            let mut shifted: Vec<Tensor<f64>> = inputs.to_vec();
            let values = FD_STENCIL.map(|k| {
                let mut moved = base.clone();
                moved[j] += k * h;
                shifted[i] = Tensor::from_vec(moved, x.shape());
                value_at(&shifted)
            });
            let (numeric, fd_error) = kink_aware_derivative_with_error(f0, values, h);
            let error = beyond_fd_error(analytic[j], numeric, fd_error);
            if error > rtol || error.is_nan() {
                return Err(GradcheckFailure {
                    input: i,
                    index: j,
                    analytic: analytic[j],
                    numeric,
                    error,
                });
            }
        }
    }
    Ok(())
}
