//! [`Standardize`]: per-column standardisation of tabular data as a flow
//! layer, so a model trained on standardised values reports densities in the
//! data's original units and samples in them.

use super::error::FlowError;
use super::flow::Flow;
use super::spec::LayerSpec;
use crate::autodiff::Var;
use crate::tensor::math;
use crate::tensor::{Element, Tensor};

/// The fixed affine map between standardised values z and data x, one
/// mean μᵢ and standard deviation σᵢ per column:
///
/// forward (z → x): x = μ + σ ⊙ z,  log|det ∂x/∂z| = Σᵢ log σᵢ;
/// inverse (x → z): z = (x − μ) ⊘ σ,  log|det ∂z/∂x| = −Σᵢ log σᵢ.
///
/// Put last in a model's `Sequential` (at the data end), it makes
/// `log_prob` the density of the *original* x, the standardisation's
/// Jacobian counted: log p(x) = log p_z((x − μ)/σ) − Σᵢ log σᵢ. Its
/// statistics are part of its spec, so a checkpoint stores them. It has no
/// trainable parameters.
///
/// # Shapes
/// `[batch, dim] → [batch, dim]`, log-det `[batch]`.
///
/// # Units
/// μ and σ in the data's units; log-dets in nats.
///
/// # Panics
/// `new` panics if `mean` and `std` differ in length, are empty, or a σ
/// is not positive and finite; `forward`/`inverse` if the input is not
/// `[_, dim]` (naming both shapes).
///
/// # Derivation
/// [`derivations::preprocessing`, "Standardize"](crate::derivations::preprocessing#standardize)
/// (docs/derivations/preprocessing.md): the diagonal Jacobian, and why the
/// term makes densities those of the data's units.
///
/// # Examples
/// ```
/// use flowzoo::flows::standardize::Standardize;
/// use flowzoo::flows::Flow;
/// use flowzoo::tensor::Tensor;
/// let layer = Standardize::new(vec![10.0, -1.0], vec![2.0, 0.5]);
/// let x = Tensor::<f64>::from_vec(vec![12.0, -1.5], &[1, 2]);
/// let (z, log_det) = layer.inverse_tensor(&x);
/// assert_eq!(z.to_vec(), vec![1.0, -1.0]);
/// // −(log 2 + log ½) = 0
/// assert!(log_det.item().abs() < 1e-15);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Standardize {
    /// μ per column.
    pub mean: Vec<f64>,
    /// σ per column, positive.
    pub std: Vec<f64>,
}

impl Standardize {
    /// The layer with means `mean` and standard deviations `std`.
    ///
    /// # Panics
    /// See the type's doc.
    pub fn new(mean: Vec<f64>, std: Vec<f64>) -> Self {
        assert!(
            !mean.is_empty() && mean.len() == std.len(),
            "Standardize: {} means and {} standard deviations",
            mean.len(),
            std.len()
        );
        assert!(
            std.iter().all(|s| s.is_finite() && *s > 0.0) && mean.iter().all(|m| m.is_finite()),
            "Standardize: standard deviations must be positive and finite, means finite: {std:?}, {mean:?}"
        );
        Standardize { mean, std }
    }

    /// The layer fitted to the rows of `data` (`[rows, dim]`, row-major):
    /// the statistics of [`column_statistics`].
    ///
    /// # Panics
    /// If `dim` is 0 or does not divide `data.len()`.
    pub fn fit(data: &[f64], dim: usize) -> Self {
        let (mean, std) = column_statistics(data, dim);
        Standardize::new(mean, std)
    }

    /// The number of columns.
    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    /// Σᵢ log σᵢ, the forward log-det of every sample.
    pub fn log_det_forward(&self) -> f64 {
        self.std.iter().map(|&s| math::ln(s)).sum()
    }

    /// The rows 1/a, μ/a and σ/a (`[1, dim]`), a per column the power of two
    /// [`column_scale`] gives for (μ, σ), at least 1: the maps work on x/a, where no
    /// difference x − μ or product σ·z can overflow, and scaling by a power
    /// of two changes no bit of the result where nothing under- or overflows.
    fn constants<'t, T: Element>(&self, v: &Var<'t, T>) -> [Var<'t, T>; 3] {
        assert!(
            v.shape().len() == 2 && v.shape()[1] == self.dim(),
            "Standardize: expected [batch, {}], got {:?}",
            self.dim(),
            v.shape()
        );
        let scales: Vec<f64> = self
            .mean
            .iter()
            .zip(&self.std)
            // Never below 1: a column of tiny values is used as it is (1/a
            // of a column near 1e-39 would overflow f32).
            .map(|(m, s)| column_scale([*m, *s]).max(1.0))
            .collect();
        let scaled = |values: &[f64]| -> Vec<f64> {
            values.iter().zip(&scales).map(|(v, a)| v / a).collect()
        };
        let inverse_scales: Vec<f64> = scales.iter().map(|a| 1.0 / a).collect();
        let row = |values: &[f64]| v.constant(Tensor::from_f64_slice(values, &[1, self.dim()]));
        [
            row(&inverse_scales),
            row(&scaled(&self.mean)),
            row(&scaled(&self.std)),
        ]
    }

    fn log_dets<'t, T: Element>(&self, v: &Var<'t, T>, sign: f64) -> Var<'t, T> {
        let value = T::from_f64(sign * self.log_det_forward());
        v.constant(Tensor::full(&[v.shape()[0]], value))
    }
}

impl<T: Element> Flow<T> for Standardize {
    fn name(&self) -> String {
        "Standardize".into()
    }

    fn per_sample(&self) -> bool {
        true
    }

    fn forward<'t>(&self, z: &Var<'t, T>) -> (Var<'t, T>, Var<'t, T>) {
        let [inverse_scale, mean, std] = self.constants(z);
        // x = μ + σ ⊙ z = a ⊙ (μ/a + (σ/a) ⊙ z)
        let x = z.mul(&std).add(&mean).div(&inverse_scale);
        (x, self.log_dets(z, 1.0))
    }

    fn inverse<'t>(&self, x: &Var<'t, T>) -> (Var<'t, T>, Var<'t, T>) {
        let [inverse_scale, mean, std] = self.constants(x);
        // z = (x − μ) ⊘ σ = (x/a − μ/a) ⊘ (σ/a)
        let z = x.mul(&inverse_scale).sub(&mean).div(&std);
        (z, self.log_dets(x, -1.0))
    }

    fn to_spec(&self) -> Option<LayerSpec> {
        Some(
            LayerSpec::new("Standardize")
                .with("mean", self.mean.clone())
                .with("std", self.std.clone()),
        )
    }
}

impl Standardize {
    /// The layer a spec of kind `Standardize` describes.
    ///
    /// # Errors
    /// [`FlowError::BadSpec`] if `mean` or `std` is missing, they differ
    /// in length or are empty, or a σ is not positive.
    pub fn from_spec(spec: &LayerSpec) -> Result<Standardize, FlowError> {
        let mean = spec.f64s("mean")?;
        let std = spec.f64s("std")?;
        if mean.is_empty() || mean.len() != std.len() {
            return Err(spec.error(
                "std",
                format!("{} means and {} standard deviations", mean.len(), std.len()),
            ));
        }
        if let Some(s) = std.iter().find(|s| **s <= 0.0) {
            return Err(spec.error("std", format!("{s} is not positive")));
        }
        Ok(Standardize::new(mean, std))
    }
}

/// The mean and population standard deviation of every column of `data`
/// (`[rows, dim]`, row-major), by two passes (the mean first, then the
/// squared deviations: no cancellation); σ = 1 for a constant column, and
/// (0, 1) for every column when there are no rows.
///
/// Any finite data gives finite statistics: each column is divided by a
/// power of two 2ᵏ ≥ max |x| ([`column_scale`]) before it is summed and
/// squared, and the results multiplied back (a column of 1e308s summed
/// plainly overflows to ∞). Scaling by a power of two is exact, so wherever
/// the plain formula neither overflows nor underflows the statistics are
/// its own, bit for bit; where its squares underflow (a column of 1e-200s)
/// they are now right instead of σ = 1.
///
/// # Panics
/// If `dim` is 0 or does not divide `data.len()`.
pub fn column_statistics(data: &[f64], dim: usize) -> (Vec<f64>, Vec<f64>) {
    assert!(
        dim > 0 && data.len().is_multiple_of(dim),
        "column_statistics: {} values are not rows of {dim} columns",
        data.len()
    );
    let mut means = vec![0.0; dim];
    let mut stds = vec![1.0; dim];
    let rows = (data.len() / dim) as f64;
    if rows == 0.0 {
        return (means, stds);
    }
    for (column, (mean, std)) in means.iter_mut().zip(&mut stds).enumerate() {
        let a = column_scale(data.iter().skip(column).step_by(dim).copied());
        // x/a ∈ [−1, 1]: the sums stay below `rows`.
        let values = || data.iter().skip(column).step_by(dim).map(|x| x / a);
        let scaled_mean = values().sum::<f64>() / rows;
        let variance = values().map(|x| (x - scaled_mean).powi(2)).sum::<f64>() / rows;
        // |μ| ≤ max |x| and σ ≤ max |x| (Popoviciu): finite but for rounding
        // at f64::MAX itself, which the clamp takes back.
        *mean = (scaled_mean * a).clamp(-f64::MAX, f64::MAX);
        *std = if variance > 0.0 {
            (variance.sqrt() * a).min(f64::MAX)
        } else {
            1.0
        };
    }
    (means, stds)
}

/// The power of two 2ᵏ (−1022 ≤ k ≤ 1023) at or just above the largest |x|
/// of `values`, 1 for an empty or all-zero column: dividing by it maps the
/// values into [−2, 2] (into [−1, 1] unless max |x| > 2¹⁰²³) exactly, so
/// sums of them cannot overflow and statistics computed on them and scaled
/// back are those of the values, bit for bit, wherever nothing underflows.
pub fn column_scale(values: impl IntoIterator<Item = f64>) -> f64 {
    let largest = values.into_iter().fold(0.0f64, |m, x| m.max(x.abs()));
    if largest == 0.0 || !largest.is_finite() {
        return 1.0;
    }
    // ⌈log₂ largest⌉ from the bits (exact on every platform, unlike a
    // library log2 near a power of two): the exponent, plus one unless
    // the mantissa is zero.
    let bits = largest.to_bits();
    let exponent = ((bits >> 52) & 0x7ff) as i32 - 1023;
    let k = if largest < f64::MIN_POSITIVE {
        -1022
    } else if bits & ((1 << 52) - 1) == 0 {
        exponent
    } else {
        exponent + 1
    };
    2f64.powi(k.clamp(-1022, 1023))
}
