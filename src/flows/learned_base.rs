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

/// A conditional base: a diagonal Gaussian whose mean and log-scale are
/// functions of the context, N(μ(c), diag e^{2ℓ(c)}) with (μ, ℓ) = NN(c):
/// log π(z | c) = Σᵢ [−½((zᵢ − μᵢ(c))·e^{−ℓᵢ(c)})² − ℓᵢ(c)] − (D/2)·log 2π.
///
/// NN is an MLP from `context_dim` inputs through the `hidden` widths
/// (ReLU between layers; no hidden layer makes (μ, ℓ) affine in c) to 2·D
/// outputs, μ first; its last layer starts at zero, so the base starts as
/// N(0, I) for every c. Its parameters are `prior.net.layer{i}.weight` and
/// `.bias`. The base reads the context the model's layers read (the
/// embedding's output when the model has one).
///
/// With no hidden layer, μ and ℓ are affine in c; a conditional MAF on top
/// adds the correlations, so together they can hold the exact posterior of
/// a [`LinearGaussian`](crate::data::simulators::LinearGaussian) (mean
/// affine in x, covariance constant).
///
/// # Shapes
/// `log_prob` takes z `[batch, dim]` and c `[batch, context_dim]` and
/// returns `[batch]`; `sample` takes c `[n, context_dim]` and returns
/// `[n, dim]`.
///
/// # Units
/// Log-densities in nats.
///
/// # Panics
/// If a parameter is missing from `params`, or z or c has another shape.
///
/// # Source
/// Papamakarios et al., "Normalizing Flows for Probabilistic Modeling and
/// Inference", arXiv:1912.02762, §2.3 and §5.3 (conditional flows);
/// Winkler et al., "Learning Likelihoods with Conditional Normalizing
/// Flows", arXiv:1912.00042, §3 (a conditional base).
///
/// # Derivation
/// [`derivations::conditioning`, "The conditional base"](crate::derivations::conditioning#the-conditional-base)
/// (docs/derivations/conditioning.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConditionalNormal {
    /// The number of dimensions D.
    pub dim: usize,
    /// The width of the context it reads.
    pub context_dim: usize,
    /// The width of its one hidden layer, or 0 for none ((μ, ℓ) affine in c).
    pub hidden: usize,
}

impl ConditionalNormal {
    /// A conditional diagonal Gaussian on `dim` dimensions given a context
    /// of width `context_dim`, through one hidden layer of width `hidden`
    /// (0: none).
    ///
    /// # Panics
    /// If `dim` or `context_dim` is 0.
    pub fn new(dim: usize, context_dim: usize, hidden: usize) -> Self {
        assert!(
            dim > 0 && context_dim > 0,
            "ConditionalNormal::new: need dim ≥ 1 and context_dim ≥ 1, got {dim} and {context_dim}"
        );
        ConditionalNormal {
            dim,
            context_dim,
            hidden,
        }
    }

    /// The widths of its network, `[context_dim, (hidden,) 2·dim]`.
    fn sizes(&self) -> Vec<usize> {
        let mut sizes = vec![self.context_dim];
        if self.hidden > 0 {
            sizes.push(self.hidden);
        }
        sizes.push(2 * self.dim);
        sizes
    }

    /// Its parameters at the start: a hidden layer Glorot from a fixed seed,
    /// the output layer zero (N(0, I) for every c).
    pub fn initial_params<T: Element>(&self) -> Vec<Param<T>> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0);
        let mut net = crate::nn::Mlp::<T>::new(&self.sizes(), crate::nn::Init::Zero, &mut rng);
        for p in net.params_mut() {
            p.prefix("prior.net");
        }
        net.params().into_iter().cloned().collect()
    }

    /// (μ(c), ℓ(c)), each `[batch, dim]`, on `c`'s tape.
    fn mean_and_log_scale<'t, T: Element>(
        &self,
        c: &Var<'t, T>,
        params: &[Param<T>],
    ) -> (Var<'t, T>, Var<'t, T>) {
        assert!(
            c.shape().len() == 2 && c.shape()[1] == self.context_dim,
            "ConditionalNormal: expected a context [batch, {}], got {:?}",
            self.context_dim,
            c.shape()
        );
        let tape = c.tape();
        let layers = self.sizes().len() - 1;
        let mut h = c.clone();
        for l in 0..layers {
            if l > 0 {
                h = h.relu();
            }
            let weight = tape.param(find(params, &format!("prior.net.layer{l}.weight")));
            let bias = tape.param(find(params, &format!("prior.net.layer{l}.bias")));
            h = h.linear(&weight, &bias);
        }
        (h.narrow(1, 0, self.dim), h.narrow(1, self.dim, self.dim))
    }

    /// log π(z | c) per sample, on `z`'s tape (gradients reach the network
    /// and, through c, an embedding).
    pub fn log_prob<'t, T: Element>(
        &self,
        z: &Var<'t, T>,
        c: &Var<'t, T>,
        params: &[Param<T>],
    ) -> Var<'t, T> {
        check_input("ConditionalNormal", z, self.dim);
        let (mean, log_scale) = self.mean_and_log_scale(c, params);
        // u = (z − μ(c)) ⊙ e^{−ℓ(c)}, log π = −½Σu² − Σℓ − D·½log 2π
        let u = z.sub(&mean).mul(&log_scale.neg().exp());
        let constant = -(self.dim as f64) * HALF_LOG_TWO_PI;
        u.square()
            .sum_axes(&[1])
            .mul_scalar(T::from_f64(-0.5))
            .sub(&log_scale.sum_axes(&[1]))
            .add_scalar(T::from_f64(constant))
    }

    /// One sample per context row: μ(c) + e^{ℓ(c)} ⊙ (τ·ε), ε ~ N(0, I),
    /// τ the temperature; `[rows of c, dim]`.
    pub fn sample<T: Element, R: Rng + ?Sized>(
        &self,
        temperature: f64,
        c: &Tensor<T>,
        params: &[Param<T>],
        rng: &mut R,
    ) -> Tensor<T> {
        let tape = crate::autodiff::Tape::no_grad();
        let (mean, log_scale) = self.mean_and_log_scale(&tape.constant(c.clone()), params);
        Tensor::<T>::randn(&[c.dim(0), self.dim], rng)
            .mul_scalar(T::from_f64(temperature))
            .mul(&log_scale.value().exp())
            .add(mean.value())
    }
}
