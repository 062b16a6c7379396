//! Preprocessing as flows: uniform dequantisation and the logit transform,
//! whose log-dets are counted so bits/dim is the NLL of the discrete data.
//!
//! Derivations: [`derivations::preprocessing`](crate::derivations::preprocessing)
//! (docs/derivations/preprocessing.md) for the log-dets;
//! [`derivations::bits_per_dim`](crate::derivations::bits_per_dim)
//! (docs/derivations/bits-per-dim.md) for the digits, in numbers.

use super::error::FlowError;
use super::flow::Flow;
use super::spec::{size, LayerSpec};
use crate::autodiff::Var;
use crate::tensor::math;
use crate::tensor::{Element, Tensor};
use rand::Rng;

/// Uniform dequantisation of integer data with `levels` values 0..levels−1:
/// x = (v + u) / levels, u ~ U[0, 1)ᴰ, so x ∈ [0, 1)ᴰ has a density and
/// log P(v) ≥ E_u[log p(x)] − D·log(levels).
///
/// # Shapes
/// `[batch, dim]` integers (as floats) in, `[batch, dim]` in [0, 1) out.
///
/// Not a [`Flow`]: the noise makes v ↦ x a random map, not a bijection.
/// Only the scaling ṽ ↦ ṽ/levels is one; its log-det
/// [`Dequantize::log_det`] is added by hand
/// ([`discrete_nll`](crate::train::eval::discrete_nll)).
///
/// # Source
/// L. Theis, A. van den Oord, M. Bethge, "A note on the evaluation of
/// generative models", ICLR 2016, arXiv:1511.01844.
///
/// # Derivation
/// [`derivations::preprocessing`, "Dequantize"](crate::derivations::preprocessing#dequantize)
/// (docs/derivations/preprocessing.md); why the bound needs it:
/// [`derivations::dequantization`](crate::derivations::dequantization).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dequantize {
    /// The number of integer levels (17 for the 8x8 digits' counts 0..16).
    pub levels: u32,
}

impl Dequantize {
    /// Dequantisation of data with `levels` integer values.
    pub fn new(levels: u32) -> Self {
        Dequantize { levels }
    }

    /// x = (v + u) / levels with fresh noise u from `rng`.
    pub fn apply<T: Element, R: Rng + ?Sized>(&self, v: &Tensor<T>, rng: &mut R) -> Tensor<T> {
        let u = Tensor::<T>::rand_uniform(v.shape(), 0.0, 1.0, rng);
        v.add(&u).mul_scalar(T::from_f64(1.0 / self.levels as f64))
    }

    /// The log-det of the scaling v + u ↦ (v + u)/levels per sample: −D·log(levels),
    /// which turns a density on [0,1)ᴰ into one on the integer grid's cells.
    pub fn log_det(&self, dim: usize) -> f64 {
        -(dim as f64) * math::ln(self.levels as f64)
    }
}

/// The logit transform of RealNVP §4.1 as a flow layer between the unbounded
/// latent side w and data x ∈ (0, 1)ᴰ:
///
/// inverse (x → w): p = α + (1 − 2α)x,  w = log p − log(1 − p),
/// log|det ∂w/∂x| = Σᵢ [log(1 − 2α) − log pᵢ − log(1 − pᵢ)];
/// forward (w → x): p = σ(w),  x = (p − α)/(1 − 2α), log-det the negative.
///
/// α keeps p away from 0 and 1, where the logit blows up.
///
/// # Shapes
/// `[batch, dim] → [batch, dim]`, log-det `[batch]`.
///
/// # Panics
/// [`Logit::new`] if α is not in [0, ½).
///
/// # Source
/// Dinh, Sohl-Dickstein, Bengio, arXiv:1605.08803, §4.1.
///
/// # Derivation
/// [`derivations::preprocessing`, "Logit"](crate::derivations::preprocessing#logit)
/// (docs/derivations/preprocessing.md): the derivative (1 − 2α)/(p(1 − p))
/// and the sign of each direction's log-det.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Logit {
    /// The number of features D.
    pub dim: usize,
    /// The margin α ∈ [0, ½).
    pub alpha: f64,
}

impl Logit {
    /// The logit layer on `dim` features with margin `alpha`.
    ///
    /// # Panics
    /// If `alpha` is not in [0, ½).
    pub fn new(dim: usize, alpha: f64) -> Self {
        assert!(
            (0.0..0.5).contains(&alpha),
            "Logit: alpha {alpha} not in [0, 0.5)"
        );
        Logit { dim, alpha }
    }

    /// The layer a spec of kind `Logit` describes (fields `dim`, `alpha`).
    ///
    /// # Errors
    /// [`FlowError::BadSpec`] for a missing field, a `dim` that is not a
    /// size, or an `alpha` outside [0, ½).
    pub fn from_spec(spec: &LayerSpec) -> Result<Self, FlowError> {
        let dim = size(spec, "dim")?;
        let alpha = spec.f64("alpha")?;
        if !(0.0..0.5).contains(&alpha) {
            return Err(spec.error("alpha", format!("{alpha} is not in [0, 0.5)")));
        }
        Ok(Logit::new(dim, alpha))
    }

    /// Σᵢ [log(1 − 2α) − log pᵢ − log(1 − pᵢ)], the inverse map's log-det.
    fn inverse_log_det<'t, T: Element>(&self, p: &Var<'t, T>) -> Var<'t, T> {
        let one_minus_p = p.neg().add_scalar(T::ONE);
        let per_feature = p.ln().add(&one_minus_p.ln()).neg();
        let constant = T::from_f64(self.dim as f64 * math::ln(1.0 - 2.0 * self.alpha));
        per_feature.sum_axes(&[1]).add_scalar(constant)
    }
}

impl<T: Element> Flow<T> for Logit {
    fn name(&self) -> String {
        "Logit".into()
    }

    fn per_sample(&self) -> bool {
        true
    }

    fn to_spec(&self) -> Option<LayerSpec> {
        Some(
            LayerSpec::new("Logit")
                .with("dim", self.dim)
                .with("alpha", self.alpha),
        )
    }

    fn forward<'t>(&self, w: &Var<'t, T>) -> (Var<'t, T>, Var<'t, T>) {
        let p = w.sigmoid();
        let x = p
            .add_scalar(T::from_f64(-self.alpha))
            .mul_scalar(T::from_f64(1.0 / (1.0 - 2.0 * self.alpha)));
        // log|det ∂x/∂w| = Σᵢ [log pᵢ + log(1 − pᵢ)] − D·log(1 − 2α), with
        // log p = log σ(w) and log(1 − p) = log σ(−w) taken from w: p rounds
        // to 1 for w beyond ~17 in f32, where log(1 − p) would be −∞.
        let per_feature = w.log_sigmoid().add(&w.neg().log_sigmoid());
        let constant = T::from_f64(self.dim as f64 * math::ln(1.0 - 2.0 * self.alpha));
        (x, per_feature.sum_axes(&[1]).add_scalar(-constant))
    }

    fn inverse<'t>(&self, x: &Var<'t, T>) -> (Var<'t, T>, Var<'t, T>) {
        let p = x
            .mul_scalar(T::from_f64(1.0 - 2.0 * self.alpha))
            .add_scalar(T::from_f64(self.alpha));
        let w = p.ln().sub(&p.neg().add_scalar(T::ONE).ln());
        (w, self.inverse_log_det(&p))
    }
}
