//! Learnable base distributions: [`DiagonalNormal`] (a trainable mean and
//! log-scale per dimension) and [`GaussianMixture`] (K trainable diagonal
//! Gaussians and their weights). Each is a descriptor (its sizes, saved in
//! a checkpoint's prior spec) whose trainable tensors a
//! [`FlowModel`](super::FlowModel) holds beside its flow's, named
//! `prior.*`, trained and saved like any layer's.
//!
//! Derivation: [`derivations::bases`](crate::derivations::bases)
//! (docs/derivations/bases.md).

use crate::autodiff::{Param, Var};
use crate::tensor::math;
use crate::tensor::{Element, Tensor};
use rand::{Rng, SeedableRng};

/// ½·log 2π, the normal density's constant per dimension.
const HALF_LOG_TWO_PI: f64 = 0.918_938_533_204_672_8;

/// The parameter named `name` among `params`.
///
/// # Panics
/// If there is none (the model's prior and its parameters disagree); the
/// message names it.
fn find<'p, T: Element>(params: &'p [Param<T>], name: &str) -> &'p Param<T> {
    params
        .iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("learned base: no parameter `{name}` among the prior's"))
}

/// Asserts `z` is `[batch, dim]`, naming the base.
fn check_input<T: Element>(base: &str, z: &Var<'_, T>, dim: usize) {
    assert!(
        z.shape().len() == 2 && z.shape()[1] == dim,
        "{base}::log_prob: expected [batch, {dim}], got {:?}",
        z.shape()
    );
}

/// A Gaussian with a trainable mean μ and log-scale ℓ per dimension,
/// N(μ, diag e^{2ℓ}):
/// log π(z) = Σᵢ [−½((zᵢ − μᵢ)·e^{−ℓᵢ})² − ℓᵢ] − (D/2)·log 2π.
/// It starts as N(0, I) (μ = ℓ = 0). Its parameters are `prior.mean` and
/// `prior.log_scale`, both `[dim]`.
///
/// # Shapes
/// `log_prob` takes `[batch, dim]` and returns `[batch]`; `sample` returns
/// `[n, dim]`.
///
/// # Units
/// Log-densities in nats.
///
/// # Panics
/// `log_prob` and `sample` panic if `params` lacks `prior.mean` or
/// `prior.log_scale`, and `log_prob` if `z` is not `[batch, dim]`.
///
/// # Source
/// The learned Gaussian base of IAF (Kingma et al., arXiv:1606.04934, §4:
/// "a diagonal Gaussian with learned mean and variance"), and of
/// Papamakarios et al., "Normalizing Flows for Probabilistic Modeling and
/// Inference", arXiv:1912.02762, §2.3.
///
/// # Derivation
/// [`derivations::bases`, "The diagonal Gaussian"](crate::derivations::bases#the-diagonal-gaussian)
/// (docs/derivations/bases.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiagonalNormal {
    /// The number of dimensions D.
    pub dim: usize,
}

impl DiagonalNormal {
    /// A diagonal Gaussian on `dim` dimensions.
    pub fn new(dim: usize) -> Self {
        DiagonalNormal { dim }
    }

    /// Its parameters at the start: μ = 0, ℓ = 0 (the standard normal).
    pub fn initial_params<T: Element>(&self) -> Vec<Param<T>> {
        vec![
            Param::new("prior.mean", Tensor::zeros(&[self.dim])),
            Param::new("prior.log_scale", Tensor::zeros(&[self.dim])),
        ]
    }

    /// log π(z) per sample, on `z`'s tape (gradients reach μ and ℓ).
    pub fn log_prob<'t, T: Element>(&self, z: &Var<'t, T>, params: &[Param<T>]) -> Var<'t, T> {
        check_input("DiagonalNormal", z, self.dim);
        let tape = z.tape();
        let mean = tape.param(find(params, "prior.mean"));
        let log_scale = tape.param(find(params, "prior.log_scale"));
        // u = (z − μ) ⊙ e^{−ℓ}, log π = −½Σu² − Σℓ − D·½log 2π
        let u = z.sub(&mean).mul(&log_scale.neg().exp());
        let constant = -(self.dim as f64) * HALF_LOG_TWO_PI;
        u.square()
            .sum_axes(&[1])
            .mul_scalar(T::from_f64(-0.5))
            .sub(&log_scale.sum_all())
            .add_scalar(T::from_f64(constant))
    }

    /// `n` samples μ + e^ℓ ⊙ (τ·ε), ε ~ N(0, I), τ the temperature.
    pub fn sample<T: Element, R: Rng + ?Sized>(
        &self,
        n: usize,
        temperature: f64,
        params: &[Param<T>],
        rng: &mut R,
    ) -> Tensor<T> {
        let mean = &find(params, "prior.mean").value;
        let scale = find(params, "prior.log_scale").value.exp();
        Tensor::<T>::randn(&[n, self.dim], rng)
            .mul_scalar(T::from_f64(temperature))
            .mul(&scale)
            .add(mean)
    }
}

/// A mixture of K diagonal Gaussians with trainable weights, means and
/// log-scales:
/// log π(z) = logsumexp_k [log wₖ + Σᵢ (−½((zᵢ − μₖᵢ)·e^{−ℓₖᵢ})² − ℓₖᵢ)] − (D/2)·log 2π,
/// w = softmax(a). Computed with the stable log-sum-exp, so a point far
/// from every component (where each component's density underflows to 0)
/// still gets the finite log-density of the nearest one plus a correction.
/// Parameters: `prior.logits` `[K]` (a, starting equal), `prior.means`
/// `[K, dim]` (starting at N(0, 1) draws from a fixed seed, so that the
/// components differ and the gradient can tell them apart), and
/// `prior.log_scales` `[K, dim]` (starting at 0).
///
/// # Shapes
/// `log_prob` takes `[batch, dim]` and returns `[batch]`; `sample` returns
/// `[n, dim]`.
///
/// # Units
/// Log-densities in nats.
///
/// # Panics
/// [`GaussianMixture::new`] if `components` is 0; `log_prob` and `sample`
/// if `params` lacks one of the three tensors, and `log_prob` if `z` is
/// not `[batch, dim]`.
///
/// # Source
/// Papamakarios et al., "Normalizing Flows for Probabilistic Modeling and
/// Inference", arXiv:1912.02762, §2.3 (flexible base distributions);
/// C. M. Bishop, "Pattern Recognition and Machine Learning", 2006, §9.2.
///
/// # Derivation
/// [`derivations::bases`, "The Gaussian mixture"](crate::derivations::bases#the-gaussian-mixture)
/// (docs/derivations/bases.md).
///
/// # Examples
/// ```
/// use flowzoo::flows::{FlowModel, GaussianMixture, Reverse, Sequential};
/// use rand::SeedableRng;
/// let flow = Sequential::<f64>::new(vec![Box::new(Reverse::new(2))]);
/// let model = FlowModel::with_prior(GaussianMixture::new(2, 3), flow);
/// assert_eq!(model.params().len(), 3); // logits, means, log-scales
/// let x = model.sample(4, 1.0, &mut rand::rngs::StdRng::seed_from_u64(0));
/// assert!(model.log_prob(&x).all_finite());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GaussianMixture {
    /// The number of dimensions D.
    pub dim: usize,
    /// The number of components K.
    pub components: usize,
}

impl GaussianMixture {
    /// A mixture of `components` diagonal Gaussians on `dim` dimensions.
    ///
    /// # Panics
    /// If `components` is 0.
    pub fn new(dim: usize, components: usize) -> Self {
        assert!(
            components >= 1,
            "GaussianMixture::new: needs at least one component"
        );
        GaussianMixture { dim, components }
    }

    /// Its parameters at the start: equal weights, unit scales, and means
    /// drawn N(0, 1) from a fixed seed (the same model every time it is built).
    pub fn initial_params<T: Element>(&self) -> Vec<Param<T>> {
        let (k, d) = (self.components, self.dim);
        let mut rng = rand::rngs::StdRng::seed_from_u64(0);
        vec![
            Param::new("prior.logits", Tensor::zeros(&[k])),
            Param::new("prior.means", Tensor::randn(&[k, d], &mut rng)),
            Param::new("prior.log_scales", Tensor::zeros(&[k, d])),
        ]
    }

    /// log π(z) per sample, on `z`'s tape (gradients reach all three
    /// tensors).
    pub fn log_prob<'t, T: Element>(&self, z: &Var<'t, T>, params: &[Param<T>]) -> Var<'t, T> {
        check_input("GaussianMixture", z, self.dim);
        let tape = z.tape();
        let logits = tape.param(find(params, "prior.logits"));
        let means = tape.param(find(params, "prior.means"));
        let log_scales = tape.param(find(params, "prior.log_scales"));
        // u_bki = (z_bi − μ_ki)·e^{−ℓ_ki}: [batch, 1, D] against [K, D]
        let u = z.unsqueeze(1).sub(&means).mul(&log_scales.neg().exp());
        // log N_k(z) + (D/2)·log 2π = −½Σᵢu² − Σᵢℓ_ki, [batch, K]
        let components = u
            .square()
            .sum_axes(&[2])
            .mul_scalar(T::from_f64(-0.5))
            .sub(&log_scales.sum_axes(&[1]));
        // log w = a − logsumexp(a)
        let log_weights = logits.sub(&logits.logsumexp_axes_keepdim(&[0]));
        let constant = -(self.dim as f64) * HALF_LOG_TWO_PI;
        components
            .add(&log_weights)
            .logsumexp_axes(&[1])
            .add_scalar(T::from_f64(constant))
    }

    /// `n` samples: a component k ~ softmax(a), then μₖ + e^{ℓₖ} ⊙ (τ·ε),
    /// ε ~ N(0, I), τ the temperature.
    pub fn sample<T: Element, R: Rng + ?Sized>(
        &self,
        n: usize,
        temperature: f64,
        params: &[Param<T>],
        rng: &mut R,
    ) -> Tensor<T> {
        let (k, d) = (self.components, self.dim);
        let logits = find(params, "prior.logits").value.to_f64_vec();
        let means = find(params, "prior.means").value.to_f64_vec();
        let log_scales = find(params, "prior.log_scales").value.to_f64_vec();
        // softmax in f64, shifted by the largest logit
        let top = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let weights: Vec<f64> = logits.iter().map(|a| math::exp(a - top)).collect();
        let total: f64 = weights.iter().sum();
        let noise = Tensor::<f64>::randn(&[n, d], rng).to_vec();
        let mut out = Vec::with_capacity(n * d);
        for row in noise.chunks(d.max(1)).take(n) {
            // The component: the first whose cumulative weight passes u·total.
            let mut u = rng.gen::<f64>() * total;
            let mut component = k - 1;
            for (j, w) in weights.iter().enumerate() {
                if u < *w {
                    component = j;
                    break;
                }
                u -= w;
            }
            for (i, e) in row.iter().enumerate() {
                let at = component * d + i;
                out.push(means[at] + math::exp(log_scales[at]) * temperature * e);
            }
        }
        Tensor::from_f64_slice(&out, &[n, d])
    }
}
