//! Priors: the base density π(z) of a flow.

use super::error::{FlowError, LayerPath};
use super::learned_base::{ConditionalNormal, DiagonalNormal, GaussianMixture};
use super::spec::{size, LayerSpec};
use crate::autodiff::{Param, Var};
use crate::tensor::math;
use crate::tensor::{Element, Tensor};
use rand::Rng;

/// The standard normal prior N(0, I) on `dim` dimensions:
/// log π(z) = −½‖z‖² − (D/2)·log 2π.
///
/// # Shapes
/// `log_prob` takes `[batch, dim]` and returns `[batch]`; `sample` returns
/// `[n, dim]`.
///
/// # Units
/// Log-densities in nats.
///
/// # Derivation
/// [`derivations::change_of_variables`, "The standard normal prior"](crate::derivations::change_of_variables#the-standard-normal-prior)
/// (docs/derivations/change-of-variables.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StandardNormal {
    /// The number of dimensions D.
    pub dim: usize,
}

impl StandardNormal {
    /// N(0, I) on `dim` dimensions.
    pub fn new(dim: usize) -> Self {
        StandardNormal { dim }
    }

    /// log π(z) per sample.
    ///
    /// # Panics
    /// If `z` is not `[batch, dim]`.
    pub fn log_prob<'t, T: Element>(&self, z: &Var<'t, T>) -> Var<'t, T> {
        assert!(
            z.shape().len() == 2 && z.shape()[1] == self.dim,
            "StandardNormal::log_prob: expected [batch, {}], got {:?}",
            self.dim,
            z.shape()
        );
        let constant = -0.5 * self.dim as f64 * math::ln(2.0 * std::f64::consts::PI);
        z.square()
            .sum_axes(&[1])
            .mul_scalar(T::from_f64(-0.5))
            .add_scalar(T::from_f64(constant))
    }

    /// `n` samples `temperature · ε`, ε ~ N(0, I) (temperature 1 is the prior
    /// itself; below 1 trades diversity for typicality, as in Glow).
    pub fn sample<T: Element, R: Rng + ?Sized>(
        &self,
        n: usize,
        temperature: f64,
        rng: &mut R,
    ) -> Tensor<T> {
        Tensor::<T>::randn(&[n, self.dim], rng).mul_scalar(T::from_f64(temperature))
    }
}

/// The standard logistic prior on `dim` independent dimensions, the base
/// density NICE used: each coordinate has density
/// π(zᵢ) = σ(zᵢ)·σ(−zᵢ) = e^{−zᵢ}/(1 + e^{−zᵢ})², so
/// log π(z) = −Σᵢ [softplus(zᵢ) + softplus(−zᵢ)].
///
/// Its tails are heavier than a Gaussian's (exponential, not squared), which
/// NICE found gives better-behaved gradients for points far from the mode.
///
/// # Shapes
/// `log_prob` takes `[batch, dim]` and returns `[batch]`; `sample` returns
/// `[n, dim]`.
///
/// # Units
/// Log-densities in nats.
///
/// # Source
/// L. Dinh, D. Krueger, Y. Bengio, "NICE: Non-linear Independent Components
/// Estimation", ICLR 2015 workshop, arXiv:1410.8516, §3.4 and §5.
///
/// # Derivation
/// [`derivations::nice`, "The logistic prior"](crate::derivations::nice#the-logistic-prior)
/// (docs/derivations/nice.md): its log-density through softplus, its
/// tails and its sampler.
///
/// # Examples
/// ```
/// use flowzoo::flows::prior::Logistic;
/// use flowzoo::autodiff::Tape;
/// use flowzoo::tensor::Tensor;
/// let tape = Tape::<f64>::no_grad();
/// let z = tape.constant(Tensor::zeros(&[1, 3]));
/// // at 0 each coordinate has density σ(0)² = 1/4
/// let lp = Logistic::new(3).log_prob(&z).value().item();
/// assert!((lp - 3.0 * 0.25f64.ln()).abs() < 1e-12);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Logistic {
    /// The number of dimensions D.
    pub dim: usize,
}

impl Logistic {
    /// The standard logistic density on `dim` dimensions.
    pub fn new(dim: usize) -> Self {
        Logistic { dim }
    }

    /// log π(z) = −Σᵢ [softplus(zᵢ) + softplus(−zᵢ)] per sample, computed
    /// with the stable softplus so no exponent overflows.
    ///
    /// # Panics
    /// If `z` is not `[batch, dim]`.
    pub fn log_prob<'t, T: Element>(&self, z: &Var<'t, T>) -> Var<'t, T> {
        assert!(
            z.shape().len() == 2 && z.shape()[1] == self.dim,
            "Logistic::log_prob: expected [batch, {}], got {:?}",
            self.dim,
            z.shape()
        );
        // log σ(z) + log σ(−z) = −softplus(−z) − softplus(z)
        z.softplus().add(&z.neg().softplus()).sum_axes(&[1]).neg()
    }

    /// `n` samples `temperature · (log u − log(1 − u))`, u ~ U(0, 1)ᴰ (the
    /// inverse of the logistic CDF applied to uniform noise).
    pub fn sample<T: Element, R: Rng + ?Sized>(
        &self,
        n: usize,
        temperature: f64,
        rng: &mut R,
    ) -> Tensor<T> {
        let u: Vec<f64> = (0..n * self.dim)
            // u in (0, 1): the open interval keeps both logs finite.
            .map(|_| rng.gen_range(f64::EPSILON..1.0))
            .map(|u| temperature * (math::ln(u) - math::ln_1p(-u)))
            .collect();
        Tensor::from_f64_slice(&u, &[n, self.dim])
    }
}

/// The base density of a [`FlowModel`](super::FlowModel): a standard normal
/// (RealNVP, Glow, MAF), a standard logistic (NICE), or a learnable
/// [`DiagonalNormal`] or [`GaussianMixture`]. The enum describes the base
/// (its kind and sizes, what a checkpoint's prior spec holds); a learnable
/// base's trainable tensors live in the model
/// ([`FlowModel::prior_params`](super::FlowModel::prior_params)) and are
/// passed to [`Prior::log_prob_with`] and [`Prior::sample_with`].
///
/// # Shapes
/// As the variants: `log_prob` `[batch, dim] → [batch]`, `sample` `[n, dim]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prior {
    /// N(0, I).
    StandardNormal(StandardNormal),
    /// The standard logistic density of NICE.
    Logistic(Logistic),
    /// N(μ, diag e^{2ℓ}) with trainable μ and ℓ.
    DiagonalNormal(DiagonalNormal),
    /// A mixture of K trainable diagonal Gaussians.
    GaussianMixture(GaussianMixture),
    /// N(μ(c), diag e^{2ℓ(c)}), (μ, ℓ) a trainable network of the context.
    ConditionalNormal(ConditionalNormal),
}

impl Prior {
    /// The prior as a spec, as a checkpoint stores it: `StandardNormal { dim }`,
    /// `Logistic { dim }`, `DiagonalNormal { dim }` or
    /// `GaussianMixture { dim, components }` (a learnable base's tensors are
    /// stored with the parameters, by name).
    pub fn to_spec(&self) -> LayerSpec {
        match self {
            Prior::StandardNormal(p) => LayerSpec::new("StandardNormal").with("dim", p.dim),
            Prior::Logistic(p) => LayerSpec::new("Logistic").with("dim", p.dim),
            Prior::DiagonalNormal(p) => LayerSpec::new("DiagonalNormal").with("dim", p.dim),
            Prior::GaussianMixture(p) => LayerSpec::new("GaussianMixture")
                .with("dim", p.dim)
                .with("components", p.components),
            Prior::ConditionalNormal(p) => LayerSpec::new("ConditionalNormal")
                .with("dim", p.dim)
                .with("context_dim", p.context_dim)
                .with("hidden", p.hidden),
        }
    }

    /// The prior a spec describes.
    ///
    /// # Errors
    /// [`FlowError::UnknownKind`] for a kind other than the five above
    /// (`ConditionalNormal { dim, context_dim, hidden }` the fifth);
    /// [`FlowError::BadSpec`] for a `dim`, `components` or `context_dim`
    /// that is not a size, or a network too large to build.
    pub fn from_spec(spec: &LayerSpec) -> Result<Self, FlowError> {
        match spec.kind.as_str() {
            "StandardNormal" => Ok(StandardNormal::new(size(spec, "dim")?).into()),
            "Logistic" => Ok(Logistic::new(size(spec, "dim")?).into()),
            "DiagonalNormal" => Ok(DiagonalNormal::new(size(spec, "dim")?).into()),
            "GaussianMixture" => {
                let (dim, components) = (size(spec, "dim")?, size(spec, "components")?);
                super::spec::check_elements(
                    spec,
                    "components",
                    dim.checked_mul(components).and_then(|n| n.checked_mul(2)),
                )?;
                Ok(GaussianMixture::new(dim, components).into())
            }
            "ConditionalNormal" => {
                let (dim, context_dim) = (size(spec, "dim")?, size(spec, "context_dim")?);
                let hidden = spec.usize("hidden")?;
                let widths = [context_dim, hidden.max(1), dim.saturating_mul(2)];
                super::spec::check_network(spec, "hidden", &widths, 1)?;
                Ok(ConditionalNormal::new(dim, context_dim, hidden).into())
            }
            _ => Err(FlowError::UnknownKind {
                at: LayerPath::default(),
                kind: spec.kind.clone(),
            }),
        }
    }

    /// The number of dimensions D.
    pub fn dim(&self) -> usize {
        match self {
            Prior::StandardNormal(p) => p.dim,
            Prior::Logistic(p) => p.dim,
            Prior::DiagonalNormal(p) => p.dim,
            Prior::GaussianMixture(p) => p.dim,
            Prior::ConditionalNormal(p) => p.dim,
        }
    }

    /// The width of the context the base reads: 0 but for
    /// [`ConditionalNormal`].
    pub fn context_dim(&self) -> usize {
        match self {
            Prior::ConditionalNormal(p) => p.context_dim,
            _ => 0,
        }
    }

    /// The name the command line and messages use (`"normal"`, `"logistic"`,
    /// `"diag"`, `"mixture"`).
    pub fn name(&self) -> &'static str {
        match self {
            Prior::StandardNormal(_) => "normal",
            Prior::Logistic(_) => "logistic",
            Prior::DiagonalNormal(_) => "diag",
            Prior::GaussianMixture(_) => "mixture",
            Prior::ConditionalNormal(_) => "conditional",
        }
    }

    /// True for a base with trainable tensors ([`DiagonalNormal`],
    /// [`GaussianMixture`], [`ConditionalNormal`]).
    pub fn is_learned(&self) -> bool {
        matches!(
            self,
            Prior::DiagonalNormal(_) | Prior::GaussianMixture(_) | Prior::ConditionalNormal(_)
        )
    }

    /// The trainable tensors of a learnable base at their starting values
    /// (none for the fixed priors).
    pub fn initial_params<T: Element>(&self) -> Vec<Param<T>> {
        match self {
            Prior::StandardNormal(_) | Prior::Logistic(_) => Vec::new(),
            Prior::DiagonalNormal(p) => p.initial_params(),
            Prior::GaussianMixture(p) => p.initial_params(),
            Prior::ConditionalNormal(p) => p.initial_params(),
        }
    }

    /// log π(z) per sample, for a fixed prior.
    ///
    /// # Panics
    /// If `z` is not `[batch, dim]`, or for a learnable base (it needs its
    /// tensors: use [`Prior::log_prob_with`] or the model's
    /// [`FlowModel::log_prob`](super::FlowModel::log_prob)).
    pub fn log_prob<'t, T: Element>(&self, z: &Var<'t, T>) -> Var<'t, T> {
        match self {
            Prior::StandardNormal(p) => p.log_prob(z),
            Prior::Logistic(p) => p.log_prob(z),
            _ => panic!(
                "Prior::log_prob: the {} base is learned: pass its parameters to log_prob_with",
                self.name()
            ),
        }
    }

    /// log π(z) per sample, a learnable base reading its tensors from
    /// `params` (by name; ignored by the fixed priors).
    ///
    /// # Panics
    /// If `z` is not `[batch, dim]`, or a learnable base's tensor is
    /// missing from `params`, or the base is conditional (use
    /// [`Prior::log_prob_given`]).
    pub fn log_prob_with<'t, T: Element>(&self, z: &Var<'t, T>, params: &[Param<T>]) -> Var<'t, T> {
        self.log_prob_given(z, None, params)
    }

    /// log π(z | c) per sample: a conditional base reads the context `c`
    /// (`[batch, context_dim]`); the others ignore it and read their
    /// tensors from `params` as [`Prior::log_prob_with`].
    ///
    /// # Panics
    /// As [`Prior::log_prob_with`], and for a conditional base given no
    /// context or one of another shape.
    pub fn log_prob_given<'t, T: Element>(
        &self,
        z: &Var<'t, T>,
        c: Option<&Var<'t, T>>,
        params: &[Param<T>],
    ) -> Var<'t, T> {
        match self {
            Prior::DiagonalNormal(p) => p.log_prob(z, params),
            Prior::GaussianMixture(p) => p.log_prob(z, params),
            Prior::ConditionalNormal(p) => {
                let c = c.expect("Prior::log_prob_given: the conditional base needs a context");
                p.log_prob(z, c, params)
            }
            _ => self.log_prob(z),
        }
    }

    /// `n` samples of a fixed prior at `temperature` (the latent scaled by it).
    ///
    /// # Panics
    /// For a learnable base (use [`Prior::sample_with`]).
    pub fn sample<T: Element, R: Rng + ?Sized>(
        &self,
        n: usize,
        temperature: f64,
        rng: &mut R,
    ) -> Tensor<T> {
        match self {
            Prior::StandardNormal(p) => p.sample(n, temperature, rng),
            Prior::Logistic(p) => p.sample(n, temperature, rng),
            _ => panic!(
                "Prior::sample: the {} base is learned: pass its parameters to sample_with",
                self.name()
            ),
        }
    }

    /// `n` samples at `temperature`, a learnable base reading its tensors
    /// from `params` (ignored by the fixed priors).
    ///
    /// # Panics
    /// If a learnable base's tensor is missing from `params`, or the base
    /// is conditional (use [`Prior::sample_given`]).
    pub fn sample_with<T: Element, R: Rng + ?Sized>(
        &self,
        n: usize,
        temperature: f64,
        params: &[Param<T>],
        rng: &mut R,
    ) -> Tensor<T> {
        self.sample_given(n, temperature, None, params, rng)
    }

    /// `n` samples at `temperature`, a conditional base drawing row k
    /// given row k of `c` (`[n, context_dim]`); the others ignore `c`.
    ///
    /// # Panics
    /// As [`Prior::sample_with`], and for a conditional base given no
    /// context or one without `n` rows.
    pub fn sample_given<T: Element, R: Rng + ?Sized>(
        &self,
        n: usize,
        temperature: f64,
        c: Option<&Tensor<T>>,
        params: &[Param<T>],
        rng: &mut R,
    ) -> Tensor<T> {
        match self {
            Prior::DiagonalNormal(p) => p.sample(n, temperature, params, rng),
            Prior::GaussianMixture(p) => p.sample(n, temperature, params, rng),
            Prior::ConditionalNormal(p) => {
                let c = c.expect("Prior::sample_given: the conditional base needs a context");
                assert_eq!(
                    c.dim(0),
                    n,
                    "Prior::sample_given: {n} samples, {} contexts",
                    c.dim(0)
                );
                p.sample(temperature, c, params, rng)
            }
            _ => self.sample(n, temperature, rng),
        }
    }
}

impl From<StandardNormal> for Prior {
    fn from(p: StandardNormal) -> Self {
        Prior::StandardNormal(p)
    }
}

impl From<Logistic> for Prior {
    fn from(p: Logistic) -> Self {
        Prior::Logistic(p)
    }
}

impl From<DiagonalNormal> for Prior {
    fn from(p: DiagonalNormal) -> Self {
        Prior::DiagonalNormal(p)
    }
}

impl From<GaussianMixture> for Prior {
    fn from(p: GaussianMixture) -> Self {
        Prior::GaussianMixture(p)
    }
}

impl From<ConditionalNormal> for Prior {
    fn from(p: ConditionalNormal) -> Self {
        Prior::ConditionalNormal(p)
    }
}
