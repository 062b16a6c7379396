//! [`FlowModel`]: a prior and a flow, with `log_prob` and `sample`.

use super::coupling::{AffineCoupling, Mask};
use super::flow::Flow;
use super::prior::{Prior, StandardNormal};
use super::sequential::Sequential;
use crate::autodiff::{Param, Tape, Var};
use crate::tensor::parallel::prelude::*;
use crate::tensor::parallel::{current_num_threads, in_pool, serial_kernels, threads_available};
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
/// # Derivation
/// [`derivations::change_of_variables`, "The model: a prior and a flow"](crate::derivations::change_of_variables#the-model-a-prior-and-a-flow)
/// (docs/derivations/change-of-variables.md): log p(x), sampling, and the
/// temperature.
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
    /// The trainable tensors of a learnable base (`prior.*`; empty for the
    /// fixed priors), trained and saved with the flow's.
    pub prior_params: Vec<Param<T>>,
    /// The bijection, forward = latent → data.
    pub flow: Sequential<T>,
}

impl<T: Element> FlowModel<T> {
    /// A model of `flow` over a standard normal on `dim` dimensions.
    pub fn new(dim: usize, flow: Sequential<T>) -> Self {
        FlowModel {
            prior: Prior::StandardNormal(StandardNormal::new(dim)),
            prior_params: Vec::new(),
            flow,
        }
    }

    /// A model of `flow` over the base density `prior` (NICE's
    /// [`Logistic`](super::prior::Logistic), a learnable
    /// [`GaussianMixture`](super::GaussianMixture), say); a learnable base
    /// starts at [`Prior::initial_params`].
    pub fn with_prior(prior: impl Into<Prior>, flow: Sequential<T>) -> Self {
        let prior = prior.into();
        FlowModel {
            prior,
            prior_params: prior.initial_params(),
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
        self.prior_log_prob(&z).add(&log_det)
    }

    /// log π(z) of the base per sample, `[batch, dim] → [batch]`, with a
    /// learnable base's tensors on `z`'s tape.
    pub fn prior_log_prob<'t>(&self, z: &Var<'t, T>) -> Var<'t, T> {
        self.prior.log_prob_with(z, &self.prior_params)
    }

    /// `n` draws of the base at `temperature`, `[n, dim]`.
    pub fn sample_prior<R: Rng + ?Sized>(
        &self,
        n: usize,
        temperature: f64,
        rng: &mut R,
    ) -> Tensor<T> {
        self.prior
            .sample_with(n, temperature, &self.prior_params, rng)
    }

    /// log p(x) per sample, recording nothing.
    ///
    /// When every layer maps samples on their own ([`Flow::per_sample`]) and
    /// kernels may use two or more threads (not inside
    /// [`serial_kernels`]), a batch of 64 rows or more is cut into
    /// pieces of at least 32 rows, at most one per thread, each a rayon
    /// task with serial kernels; the rows are those of the whole batch.
    ///
    /// # Panics
    /// If `x` does not hold `dim` values per sample (`[batch, dim]` for
    /// every model of the crate), before any piece is cut.
    pub fn log_prob(&self, x: &Tensor<T>) -> Tensor<T> {
        let per_row: usize = x.shape().iter().skip(1).product();
        assert!(
            x.ndim() >= 2 && per_row == self.dim(),
            "FlowModel::log_prob: expected [batch, {}], got {:?}",
            self.dim(),
            x.shape()
        );
        in_pool(|| {
            by_pieces(x, self.flow.per_sample(), |piece| {
                let tape = Tape::no_grad();
                self.log_prob_var(&tape.constant(piece)).into_value()
            })
        })
    }

    /// `n` samples x = f(τ·ε), ε ~ N(0, I), at temperature τ (1 samples the
    /// model; below 1 concentrates on typical samples). Records nothing.
    /// ε is drawn whole, then mapped in pieces as in [`FlowModel::log_prob`].
    pub fn sample<R: Rng + ?Sized>(&self, n: usize, temperature: f64, rng: &mut R) -> Tensor<T> {
        let z = self.sample_prior(n, temperature, rng);
        in_pool(|| {
            by_pieces(&z, self.flow.per_sample(), |piece| {
                self.flow.forward_tensor(&piece).0
            })
        })
    }

    /// Every trainable parameter: the flow's, then a learnable base's.
    pub fn params(&self) -> Vec<&Param<T>> {
        let mut params = self.flow.params();
        params.extend(&self.prior_params);
        params
    }

    /// Every trainable parameter, mutably.
    pub fn params_mut(&mut self) -> Vec<&mut Param<T>> {
        let mut params = self.flow.params_mut();
        params.extend(&mut self.prior_params);
        params
    }

    /// The number of trainable scalars.
    pub fn n_params(&self) -> usize {
        self.params().iter().map(|p| p.numel()).sum()
    }
}

/// Rows per thread below which [`by_pieces`] leaves a batch whole.
const MIN_ROWS_PER_PIECE: usize = 32;

/// `f(x)`, computed piece by piece when that is allowed and pays: with
/// `per_sample` (see [`Flow::per_sample`]), [`threads_available`] (two or
/// more threads, not inside [`serial_kernels`]) and at least
/// `2 · MIN_ROWS_PER_PIECE` rows, the rows of `x` (axis 0) are cut into
/// `min(threads, rows / MIN_ROWS_PER_PIECE)` contiguous pieces, each runs
/// on a thread of its own with serial kernels, and the outputs are joined
/// along axis 0 in order.
///
/// Why: a no-grad evaluation is a chain of many ops, each of which, split
/// across threads on its own, pays a hand-off per op and leaves a thread
/// idle while the other finishes its half; one piece per thread pays one
/// hand-off for the whole chain (docs/benchmarks.md, "Evaluation by pieces").
fn by_pieces<T: Element>(
    x: &Tensor<T>,
    per_sample: bool,
    f: impl Fn(Tensor<T>) -> Tensor<T> + Sync,
) -> Tensor<T> {
    let batch = x.shape().first().copied().unwrap_or(0);
    let pieces = current_num_threads().min(batch / MIN_ROWS_PER_PIECE);
    if !per_sample || pieces < 2 || !threads_available() {
        return f(x.clone());
    }
    let outputs: Vec<Tensor<T>> = (0..pieces)
        .into_par_iter()
        .map(|i| {
            let (start, end) = (i * batch / pieces, (i + 1) * batch / pieces);
            serial_kernels(|| f(x.narrow(0, start, end - start).contiguous()))
        })
        .collect();
    Tensor::concat(&outputs.iter().collect::<Vec<_>>(), 0)
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
