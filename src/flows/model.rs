//! [`FlowModel`]: a prior and a flow, with `log_prob` and `sample`.

use super::context::{check_context, ContextEmbedding, ContextError};
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
    /// fixed priors) and of a context embedding (`embedding.*`, see
    /// [`FlowModel::with_embedding`]), trained and saved with the flow's.
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

    /// A conditional MAF for p(x | c): `layers` conditional [`Maf`](super::Maf)
    /// layers (MADEs of hidden widths `hidden`, orders alternating natural
    /// and reversed, each reading c in its first layer) over a
    /// [`ConditionalNormal`](super::ConditionalNormal) base whose mean and
    /// log-scale are affine in c. The choice for amortised posteriors
    /// (neural posterior estimation).
    ///
    /// # Source
    /// Papamakarios et al., arXiv:1705.07057, §3.4 (conditional MAF);
    /// Greenberg et al., arXiv:1905.07488.
    ///
    /// # Derivation
    /// [`derivations::conditioning`](crate::derivations::conditioning)
    /// (docs/derivations/conditioning.md).
    ///
    /// # Examples
    /// ```
    /// use flowzoo::flows::FlowModel;
    /// use flowzoo::tensor::Tensor;
    /// use rand::SeedableRng;
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    /// // p(θ | x): 3 conditional MAF layers over a conditional Gaussian base
    /// let model = FlowModel::<f32>::conditional_maf(2, 5, 3, &[64, 64], &mut rng);
    /// let x = Tensor::from_vec(vec![0.1, -0.3, 1.0, 0.0, 2.0], &[1, 5]); // one row for all
    /// let theta = model.sample_given(1000, 1.0, Some(&x), &mut rng).unwrap();
    /// let log_q = model.log_prob_given(&theta, Some(&x)).unwrap(); // [1000]
    /// assert_eq!(log_q.shape(), &[1000]);
    /// ```
    pub fn conditional_maf<R: Rng + ?Sized>(
        dim: usize,
        context_dim: usize,
        layers: usize,
        hidden: &[usize],
        rng: &mut R,
    ) -> Self {
        let flow: Vec<Box<dyn Flow<T>>> = (0..layers)
            .map(|i| {
                let order = super::autoregressive::alternating_order(i);
                Box::new(super::Maf::conditional(
                    dim,
                    hidden,
                    order,
                    context_dim,
                    rng,
                )) as Box<dyn Flow<T>>
            })
            .collect();
        let base = super::ConditionalNormal::new(dim, context_dim, 0);
        FlowModel::with_prior(base, Sequential::new(flow))
    }

    /// A conditional IAF for q(θ | c): `layers` conditional IAF layers
    /// ([`Iaf::conditional`](super::Iaf::conditional), affine transform)
    /// with MADEs of hidden widths `hidden`, orders alternating, over a
    /// standard normal base (fixed, as reverse KL needs: see
    /// [`fit_variational_posterior`](crate::train::amortised::fit_variational_posterior)).
    /// Sampling and the log-density of its own samples take one pass;
    /// `log_prob_given` of other points takes D passes per layer.
    ///
    /// # Panics
    /// If `dim` or a hidden width is 0.
    ///
    /// # Source
    /// Kingma et al., arXiv:1606.04934.
    pub fn conditional_iaf<R: Rng + ?Sized>(
        dim: usize,
        context_dim: usize,
        layers: usize,
        hidden: &[usize],
        rng: &mut R,
    ) -> Self {
        let flow = super::iaf::conditional_iaf_layers(
            dim,
            layers,
            hidden,
            super::Transform::Affine,
            context_dim,
            rng,
        );
        FlowModel::new(dim, Sequential::new(flow))
    }

    /// A conditional RealNVP for p(x | c): `layers` conditional affine
    /// couplings over contiguous halves (swapping from one layer to the
    /// next), each network reading `[x₁ | c]` through two hidden layers of
    /// width `hidden`, over a standard normal base.
    ///
    /// # Panics
    /// If `dim < 2`.
    ///
    /// # Source
    /// Dinh et al., arXiv:1605.08803; Winkler et al., "Learning Likelihoods
    /// with Conditional Normalizing Flows", arXiv:1912.00042.
    pub fn conditional_realnvp<R: Rng + ?Sized>(
        dim: usize,
        context_dim: usize,
        layers: usize,
        hidden: usize,
        rng: &mut R,
    ) -> Self {
        let flow = conditional_realnvp_layers(dim, layers, hidden, context_dim, rng);
        FlowModel::new(dim, Sequential::new(flow))
    }

    /// The number of dimensions D.
    pub fn dim(&self) -> usize {
        self.prior.dim()
    }

    /// The same model with a learned embedding of the context: the layers
    /// and the base then read e = NN(c) instead of c, and the model takes
    /// contexts of the embedding's input width. Its parameters
    /// (`embedding.*`) join [`FlowModel::prior_params`] (the tensors beside
    /// the flow's), and train and save with the rest.
    ///
    /// # Panics
    /// If the embedding's output width is not the width the layers and the
    /// base read ([`FlowModel::conditioner_dim`]), naming both.
    ///
    /// # Derivation
    /// [`derivations::conditioning`, "Embeddings"](crate::derivations::conditioning#embeddings)
    /// (docs/derivations/conditioning.md).
    pub fn with_embedding(mut self, embedding: ContextEmbedding<T>) -> Self {
        assert_eq!(
            embedding.out_dim(),
            self.conditioner_dim(),
            "FlowModel::with_embedding: the embedding gives {} features, the layers and base read {}",
            embedding.out_dim(),
            self.conditioner_dim()
        );
        self.prior_params
            .extend(embedding.params().into_iter().cloned());
        self
    }

    /// The learned context embedding, if the model has one (rebuilt from
    /// its tensors in [`FlowModel::prior_params`], which it shares).
    pub fn embedding(&self) -> Option<ContextEmbedding<T>> {
        ContextEmbedding::from_params(&self.prior_params)
    }

    /// The width of the context the layers and the base read: the largest
    /// of theirs (they share one in a model built by the crate); 0 for an
    /// unconditional model.
    pub fn conditioner_dim(&self) -> usize {
        self.flow.context_dim().max(self.prior.context_dim())
    }

    /// The width of the context the model takes: the embedding's input
    /// width if it has one, else [`FlowModel::conditioner_dim`]. 0 for an
    /// unconditional model, which takes no context.
    pub fn context_dim(&self) -> usize {
        match self.embedding() {
            Some(embedding) => embedding.context_dim(),
            None => self.conditioner_dim(),
        }
    }

    /// What the layers and base read for the context `c`: e = NN(c) with
    /// an embedding, c itself without (`None` for no context).
    pub fn context_features<'t>(&self, c: Option<&Var<'t, T>>) -> Option<Var<'t, T>> {
        let c = c?;
        Some(match self.embedding() {
            Some(embedding) => embedding.forward(c),
            None => c.clone(),
        })
    }

    /// log p(x | c) per sample, on a tape (for training): x `[batch, dim]`,
    /// c `[batch, context_dim]` (or `None` for an unconditional model).
    ///
    /// # Panics
    /// If c is missing or of another shape for a conditional model (the
    /// checked entry point is [`FlowModel::log_prob_given`]).
    ///
    /// # Derivation
    /// [`derivations::conditioning`](crate::derivations::conditioning)
    /// (docs/derivations/conditioning.md).
    pub fn log_prob_given_var<'t>(&self, x: &Var<'t, T>, c: Option<&Var<'t, T>>) -> Var<'t, T> {
        let e = self.context_features(c);
        let (z, log_det) = self.flow.inverse_with_context(x, e.as_ref());
        self.prior
            .log_prob_given(&z, e.as_ref(), &self.prior_params)
            .add(&log_det)
    }

    /// The data part x and the context part c of a training batch
    /// `[batch, dim + context_dim]`, each row x then its context (the
    /// layout [`fit`](crate::train::fit::fit) and the tables use); for an
    /// unconditional model, the batch itself and `None`.
    ///
    /// # Panics
    /// If a conditional model's batch is not `[batch, dim + context_dim]`.
    pub fn split_batch(&self, rows: &Tensor<T>) -> (Tensor<T>, Option<Tensor<T>>) {
        let context_dim = self.context_dim();
        if context_dim == 0 {
            return (rows.clone(), None);
        }
        let dim = self.dim();
        assert!(
            rows.ndim() == 2 && rows.dim(1) == dim + context_dim,
            "FlowModel::split_batch: expected rows [batch, {dim} + {context_dim}], got {:?}",
            rows.shape()
        );
        (
            rows.narrow(1, 0, dim).contiguous(),
            Some(rows.narrow(1, dim, context_dim).contiguous()),
        )
    }

    /// The data-dependent initialisation ([`Flow::initialize`], ActNorm's)
    /// from a batch of rows `[x | c]` (see [`FlowModel::split_batch`]):
    /// every layer initialises from what it sees of x given the context
    /// features of c; for an unconditional model, `flow.initialize(rows)`.
    ///
    /// # Panics
    /// As [`FlowModel::split_batch`].
    pub fn initialize_batch(&mut self, rows: &Tensor<T>) {
        let (x, c) = self.split_batch(rows);
        let e = c.map(|c| {
            let tape = Tape::no_grad();
            let c = tape.constant(c);
            self.context_features(Some(&c))
                .expect("a context gives features")
                .into_value()
        });
        self.flow.initialize_with_context(&x, e.as_ref());
    }

    /// log p(x | c) per sample for a training batch of rows `[x | c]` (see
    /// [`FlowModel::split_batch`]), on a tape; for an unconditional model
    /// [`FlowModel::log_prob_var`] of the batch.
    pub fn log_prob_batch_var<'t>(&self, rows: &Var<'t, T>) -> Var<'t, T> {
        if self.context_dim() == 0 {
            return self.log_prob_var(rows);
        }
        let (dim, context_dim) = (self.dim(), self.context_dim());
        let (x, c) = (rows.narrow(1, 0, dim), rows.narrow(1, dim, context_dim));
        self.log_prob_given_var(&x, Some(&c))
    }

    /// log p(x | c) per sample, recording nothing, for a batch of rows
    /// `[x | c]` (see [`FlowModel::split_batch`]); for an unconditional
    /// model [`FlowModel::log_prob`] of the batch. A row whose context is
    /// not finite gets NaN.
    pub fn log_prob_batch(&self, rows: &Tensor<T>) -> Tensor<T> {
        match self.split_batch(rows) {
            (x, None) => self.log_prob(&x),
            (x, Some(c)) => self
                .log_prob_given(&x, Some(&c))
                .unwrap_or_else(|_| Tensor::full(&[x.dim(0)], T::from_f64(f64::NAN))),
        }
    }

    /// log p(x | c) per sample, recording nothing, for x `[batch, dim]` and
    /// the context c: `[batch, context_dim]` (one row per sample),
    /// `[1, context_dim]` (broadcast to every row), or `None` for an
    /// unconditional model (then it is [`FlowModel::log_prob`]). Large
    /// batches are split across threads as in [`FlowModel::log_prob`].
    ///
    /// # Errors
    /// A [`ContextError`] naming `FlowModel::log_prob_given`: no context
    /// for a conditional model, a context for an unconditional one, a
    /// width or row count that does not fit, a NaN or infinite entry.
    ///
    /// # Panics
    /// If x is not `[batch, dim]`.
    ///
    /// # Examples
    /// ```
    /// use flowzoo::flows::{AffineCoupling, FlowModel, Mask, Sequential};
    /// use flowzoo::tensor::Tensor;
    /// use rand::SeedableRng;
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    /// let layer = AffineCoupling::<f64>::conditional(Mask::half(2, false), 8, 3, &mut rng);
    /// let model = FlowModel::new(2, Sequential::new(vec![Box::new(layer)]));
    /// assert_eq!(model.context_dim(), 3);
    /// let x = Tensor::zeros(&[4, 2]);
    /// let c = Tensor::from_vec(vec![1.0, 0.0, 0.5], &[1, 3]); // one row for all
    /// assert_eq!(model.log_prob_given(&x, Some(&c)).unwrap().shape(), &[4]);
    /// assert!(model.log_prob_given(&x, None).is_err()); // a context is needed
    /// ```
    pub fn log_prob_given(
        &self,
        x: &Tensor<T>,
        c: Option<&Tensor<T>>,
    ) -> Result<Tensor<T>, ContextError> {
        const AT: &str = "FlowModel::log_prob_given";
        let rows = x.shape().first().copied().unwrap_or(0);
        let Some(c) = check_context(AT, c, self.context_dim(), rows)? else {
            return Ok(self.log_prob(x));
        };
        assert!(
            x.ndim() == 2 && x.dim(1) == self.dim(),
            "{AT}: expected x [batch, {}], got {:?}",
            self.dim(),
            x.shape()
        );
        // Why join [x | c]: the pieces cut rows, and each piece needs its
        // rows of both.
        let joined = Tensor::concat(&[x, &c], 1);
        Ok(in_pool(|| {
            by_pieces(&joined, self.flow.per_sample(), |piece| {
                let tape = Tape::no_grad();
                self.log_prob_batch_var(&tape.constant(piece)).into_value()
            })
        }))
    }

    /// `n` samples of p(x | c) at temperature τ, recording nothing: row k
    /// drawn given row k of c (`[n, context_dim]`), or every row given the
    /// one row of c (`[1, context_dim]`); `None` for an unconditional model
    /// (then it is [`FlowModel::sample`], draw for draw).
    ///
    /// # Errors
    /// A [`ContextError`] naming `FlowModel::sample_given`, as
    /// [`FlowModel::log_prob_given`].
    pub fn sample_given<R: Rng + ?Sized>(
        &self,
        n: usize,
        temperature: f64,
        c: Option<&Tensor<T>>,
        rng: &mut R,
    ) -> Result<Tensor<T>, ContextError> {
        const AT: &str = "FlowModel::sample_given";
        let Some(c) = check_context(AT, c, self.context_dim(), n)? else {
            return Ok(self.sample(n, temperature, rng));
        };
        let features = match self.embedding() {
            Some(embedding) => {
                let tape = Tape::no_grad();
                embedding.forward(&tape.constant(c)).into_value()
            }
            None => c,
        };
        let z = self
            .prior
            .sample_given(n, temperature, Some(&features), &self.prior_params, rng);
        let (dim, width) = (self.dim(), features.dim(1));
        let joined = Tensor::concat(&[&z, &features], 1);
        Ok(in_pool(|| {
            by_pieces(&joined, self.flow.per_sample(), |piece| {
                let tape = Tape::no_grad();
                let (z, e) = (piece.narrow(1, 0, dim), piece.narrow(1, dim, width));
                let e = tape.constant(e);
                self.flow
                    .forward_with_context(&tape.constant(z), Some(&e))
                    .0
                    .into_value()
            })
        }))
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

    /// Every trainable parameter: the flow's, then a learnable base's
    /// and a context embedding's.
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
/// hand-off for the whole chain (docs/benchmarks/engine.md, "Evaluation by pieces").
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
    conditional_realnvp_layers(dim, layers, hidden, 0, rng)
}

/// The layers of a conditional vector RealNVP (see
/// [`FlowModel::conditional_realnvp`]): each coupling's network reads a
/// context of width `context_dim` beside its half; with `context_dim = 0`,
/// [`realnvp_layers`], draw for draw.
pub fn conditional_realnvp_layers<T: Element, R: Rng + ?Sized>(
    dim: usize,
    layers: usize,
    hidden: usize,
    context_dim: usize,
    rng: &mut R,
) -> Vec<Box<dyn Flow<T>>> {
    (0..layers)
        .map(|i| {
            let mask = Mask::half(dim, i % 2 == 1);
            Box::new(AffineCoupling::conditional(mask, hidden, context_dim, rng))
                as Box<dyn Flow<T>>
        })
        .collect()
}
