//! [`FlowModel`]: a prior and a flow, with `log_prob` and `sample`.

use super::coupling::{AffineCoupling, Mask};
use super::prior::{Prior, StandardNormal};
use super::sequential::Sequential;
use super::Flow;
use crate::autodiff::{Param, Tape, Var};
use crate::tensor::parallel::in_pool;
use crate::tensor::{Element, Tensor};
use rand::Rng;

/// A density model: x = f(z), z ~ π = N(0, I), so
/// log p(x) = log π(f⁻¹(x)) + log|det ∂f⁻¹/∂x|.
///
/// # Shapes
/// `log_prob` takes `[batch, dim]` and returns `[batch]`; `sample` returns
/// `[n, dim]`.
///
/// # Units
/// Log-densities in nats per sample.
///
/// # Examples
/// ```
/// use flowzoo::flows::FlowModel;
/// use rand::SeedableRng;
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let model = FlowModel::<f32>::realnvp(2, 4, 32, &mut rng);
/// let x = model.sample(5, 1.0, &mut rng);
/// assert_eq!(model.log_prob(&x).shape(), &[5]);
/// ```
pub struct FlowModel<T: Element> {
    /// The base density (standard normal unless built by [`FlowModel::with_prior`]).
    pub prior: Prior,
    /// The bijection, forward = latent → data.
    pub flow: Sequential<T>,
}

impl<T: Element> FlowModel<T> {
    /// A model of `flow` over a standard normal on `dim` dimensions.
    pub fn new(dim: usize, flow: Sequential<T>) -> Self {
        FlowModel {
            prior: Prior::StandardNormal(StandardNormal::new(dim)),
            flow,
        }
    }

    /// A model of `flow` over the base density `prior` (NICE's
    /// [`Logistic`](super::prior::Logistic), say).
    pub fn with_prior(prior: impl Into<Prior>, flow: Sequential<T>) -> Self {
        FlowModel {
            prior: prior.into(),
            flow,
        }
    }

    /// RealNVP for vectors: `layers` affine couplings over contiguous halves,
    /// the halves swapping roles from one layer to the next, each with an MLP
    /// of two hidden layers of width `hidden`.
    ///
    /// # Source
    /// Dinh, Sohl-Dickstein, Bengio, arXiv:1605.08803.
    pub fn realnvp<R: Rng + ?Sized>(dim: usize, layers: usize, hidden: usize, rng: &mut R) -> Self {
        FlowModel::new(
            dim,
            Sequential::new(realnvp_layers(dim, layers, hidden, rng)),
        )
    }

    /// The number of dimensions D.
    pub fn dim(&self) -> usize {
        self.prior.dim()
    }

    /// log p(x) per sample, on a tape (for training).
    pub fn log_prob_var<'t>(&self, x: &Var<'t, T>) -> Var<'t, T> {
        let (z, log_det) = self.flow.inverse(x);
        self.prior.log_prob(&z).add(&log_det)
    }

    /// log p(x) per sample, recording nothing.
    ///
    /// # Panics
    /// If `x` is not `[batch, dim]`.
    pub fn log_prob(&self, x: &Tensor<T>) -> Tensor<T> {
        in_pool(|| {
            let tape = Tape::no_grad();
            self.log_prob_var(&tape.constant(x.clone())).into_value()
        })
    }

    /// `n` samples x = f(τ·ε), ε ~ N(0, I), at temperature τ (1 samples the
    /// model; below 1 concentrates on typical samples). Records nothing.
    pub fn sample<R: Rng + ?Sized>(&self, n: usize, temperature: f64, rng: &mut R) -> Tensor<T> {
        let z = self.prior.sample(n, temperature, rng);
        in_pool(|| self.flow.forward_tensor(&z).0)
    }

    /// Every trainable parameter.
    pub fn params(&self) -> Vec<&Param<T>> {
        self.flow.params()
    }

    /// Every trainable parameter, mutably.
    pub fn params_mut(&mut self) -> Vec<&mut Param<T>> {
        self.flow.params_mut()
    }

    /// The number of trainable scalars.
    pub fn n_params(&self) -> usize {
        self.params().iter().map(|p| p.numel()).sum()
    }
}

/// The layers of a vector RealNVP (see [`FlowModel::realnvp`]).
pub fn realnvp_layers<T: Element, R: Rng + ?Sized>(
    dim: usize,
    layers: usize,
    hidden: usize,
    rng: &mut R,
) -> Vec<Box<dyn Flow<T>>> {
    (0..layers)
        .map(|i| {
            Box::new(AffineCoupling::new(
                Mask::half(dim, i % 2 == 1),
                hidden,
                rng,
            )) as Box<dyn Flow<T>>
        })
        .collect()
}
