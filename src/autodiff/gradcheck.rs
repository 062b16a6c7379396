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
    /// `|analytic − numeric| / max(1, |analytic|, |numeric|)`.
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

/// Checks the gradient the tape computes for a scalar function `f` of several
/// tensors against central differences:
/// `∂f/∂xᵢ ≈ (f(x + h·eᵢ) − f(x − h·eᵢ)) / 2h`, error O(h²).
///
/// `f` receives the inputs as [`Var`]s on a fresh tape and returns a
/// one-element `Var`. Each entry passes when
/// `|analytic − numeric| ≤ rtol · max(1, |analytic|, |numeric|)`.
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
        for j in 0..base.len() {
            let mut shifted: Vec<Tensor<f64>> = inputs.to_vec();
            let mut plus = base.clone();
            plus[j] += h;
            shifted[i] = Tensor::from_vec(plus, x.shape());
            let f_plus = value_at(&shifted);
            let mut minus = base.clone();
            minus[j] -= h;
            shifted[i] = Tensor::from_vec(minus, x.shape());
            let f_minus = value_at(&shifted);
            let numeric = (f_plus - f_minus) / (2.0 * h);
            let error =
                (analytic[j] - numeric).abs() / 1f64.max(analytic[j].abs()).max(numeric.abs());
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
