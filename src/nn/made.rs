//! [`Made`]: the masked autoencoder for distribution estimation, the
//! conditioner network of every autoregressive flow (MAF, IAF).
//!
//! A MADE is an MLP whose weights are multiplied by fixed 0/1 masks built
//! from *degrees*: input feature i gets degree m(i) ∈ {1..D} (its position in
//! the autoregressive order), each hidden unit a degree in {1..D−1}, and a
//! connection survives only where it cannot carry information from a later
//! feature to an earlier output:
//!
//! - into a hidden unit k of degree m(k): from units of degree ≤ m(k);
//! - into an output of feature i: from units of degree < m(i) (strictly).
//!
//! So every output of feature i is a function of the features of degree
//! below m(i) alone, and the Jacobian of an autoregressive flow built on it
//! is triangular in the order. Derivation:
//! [`derivations::made`](crate::derivations::made) (docs/derivations/made.md).

use super::init::glorot_uniform;
use super::linear::{Init, Linear};
use crate::autodiff::{Param, Var};
use crate::tensor::blocked::BlockMask;
use crate::tensor::parallel::prelude::*;
use crate::tensor::{Element, Tensor};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::sync::Arc;

/// The autoregressive order of the inputs: which feature comes first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// Feature i has degree i + 1: x₀ first, x_{D−1} last.
    Natural,
    /// Feature i has degree D − i: x_{D−1} first, x₀ last.
    Reversed,
    /// A uniformly random permutation drawn from `seed` (the same seed gives
    /// the same order).
    Random {
        /// Seed of the permutation.
        seed: u64,
    },
}

impl Order {
    /// The degree m(i) ∈ {1..D} of each of the `dim` features: a permutation
    /// of 1..=D, position in the order plus one.
    pub fn degrees(&self, dim: usize) -> Vec<usize> {
        match *self {
            Order::Natural => (1..=dim).collect(),
            Order::Reversed => (1..=dim).rev().collect(),
            Order::Random { seed } => {
                let mut degrees: Vec<usize> = (1..=dim).collect();
                degrees.shuffle(&mut StdRng::seed_from_u64(seed));
                degrees
            }
        }
    }
}

/// How hidden units get their degrees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HiddenDegrees {
    /// The degrees (k mod max(1, D−1)) + 1 for k = 0..width, so that every
    /// degree 1..D−1 appears about equally often (the reference MAF's choice,
    /// and the deterministic variant of Germain et al. §4), given to the
    /// units in ascending order. The order of hidden units changes nothing in
    /// the model; sorted, each mask is a staircase whose zero blocks the
    /// masked products skip ([`crate::tensor::blocked`]).
    Cyclic,
    /// Degrees drawn uniformly from {min degree of the layer below .. D−1}
    /// (Germain et al. §4, eq. 13), from `seed`, given to the units in
    /// ascending order (as for `Cyclic`).
    Random {
        /// Seed of the draw.
        seed: u64,
    },
}

/// The options of a [`Made`] beyond its sizes and order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MadeOptions {
    /// How hidden units get their degrees.
    pub hidden_degrees: HiddenDegrees,
    /// Pre-activation residual blocks between hidden layers,
    /// hₗ₊₁ = hₗ + (W ⊙ M)·relu(hₗ) + b, instead of hₗ₊₁ = relu((W ⊙ M)·hₗ + b).
    /// Needs every hidden layer to have the same width (and so the same degrees).
    pub residual: bool,
    /// How the output layer starts: [`Init::Zero`] makes every output 0, so a
    /// flow built on the network starts as the identity.
    pub output_init: Init,
}

impl Default for MadeOptions {
    /// Cyclic hidden degrees, no residual blocks, zero output layer.
    fn default() -> Self {
        MadeOptions {
            hidden_degrees: HiddenDegrees::Cyclic,
            residual: false,
            output_init: Init::Zero,
        }
    }
}

/// Masked autoencoder for distribution estimation: an MLP with ReLU whose
/// weights are masked so that its `params_per_dim` outputs for feature i
/// depend only on the features of lower degree.
///
/// Layer l computes hₗ₊₁ = relu(hₗ·(Wₗ ⊙ Mₗ) + bₗ) (no ReLU on the output),
/// with the masks
/// Mₗ[k′, k] = 1 if m(k) ≥ m(k′) (into a hidden unit),
/// M_out[k′, (j, i)] = 1 if m(i) > m(k′) (into output j of feature i).
///
/// # Shapes
/// Input `[batch, dim]`; output `[batch, params_per_dim · dim]`, where
/// column `j·dim + i` is output j of feature i (for MAF: j = 0 the shift μᵢ,
/// j = 1 the log-scale αᵢ before its bound).
///
/// # Panics
/// [`Made::forward`] panics if the input is not `[_, dim]`, naming both shapes.
///
/// # Source
/// M. Germain, K. Gregor, I. Murray, H. Larochelle, "MADE: Masked Autoencoder
/// for Distribution Estimation", ICML 2015, arXiv:1502.03509 (§4: masks and
/// degrees, eq. 12-13).
///
/// # Derivation
/// [`derivations::made`](crate::derivations::made) (docs/derivations/made.md).
///
/// # Examples
/// ```
/// use flowzoo::nn::made::{Made, Order};
/// use flowzoo::autodiff::Tape;
/// use flowzoo::tensor::Tensor;
/// use rand::SeedableRng;
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let made = Made::<f64>::new(3, &[8, 8], 2, Order::Natural, &mut rng);
/// let tape = Tape::no_grad();
/// let out = made.forward(&tape.constant(Tensor::zeros(&[5, 3])));
/// assert_eq!(out.shape(), &[5, 6]);
/// // Feature 0 comes first: nothing feeds its outputs (columns 0 and 3).
/// assert_eq!(made.mask(2).get(&[0, 0]), 0.0);
/// ```
#[derive(Clone, Debug)]
pub struct Made<T: Element> {
    /// The number of features D.
    pub dim: usize,
    /// Outputs per feature (2 for an affine flow: shift and log-scale).
    pub params_per_dim: usize,
    /// The degree m(i) ∈ {1..D} of each input feature.
    pub input_degrees: Vec<usize>,
    /// The degree of each unit of each hidden layer.
    pub hidden_degrees: Vec<Vec<usize>>,
    /// Residual blocks between hidden layers (see [`MadeOptions::residual`]).
    pub residual: bool,
    /// The hidden layers, then the output layer; weights `[in, out]`.
    pub layers: Vec<Linear<T>>,
    /// The 0/1 mask of each layer, the shape of its weight, with the blocks
    /// that hold its ones (the masked products skip the rest).
    masks: Vec<Arc<BlockMask<T>>>,
}

impl<T: Element> Made<T> {
    /// A MADE on `dim` features with hidden layers of the widths in `hidden`
    /// (any number, including none; any width, including below D), giving
    /// `params_per_dim` outputs per feature, with the default options.
    ///
    /// # Panics
    /// If `dim` or `params_per_dim` is 0, or a hidden width is 0.
    pub fn new<R: Rng + ?Sized>(
        dim: usize,
        hidden: &[usize],
        params_per_dim: usize,
        order: Order,
        rng: &mut R,
    ) -> Self {
        Made::with_options(
            dim,
            hidden,
            params_per_dim,
            &order.degrees(dim),
            MadeOptions::default(),
            rng,
        )
    }

    /// A MADE with explicit input degrees (a permutation of 1..=dim, see
    /// [`Order::degrees`]) and options. Hidden weights start Glorot uniform,
    /// the output layer as `options.output_init` says, biases at zero.
    ///
    /// # Panics
    /// If `dim`, `params_per_dim` or a hidden width is 0, if `input_degrees`
    /// is not a permutation of 1..=dim, or if `options.residual` is set and
    /// the hidden widths differ.
    pub fn with_options<R: Rng + ?Sized>(
        dim: usize,
        hidden: &[usize],
        params_per_dim: usize,
        input_degrees: &[usize],
        options: MadeOptions,
        rng: &mut R,
    ) -> Self {
        assert!(
            hidden.iter().all(|&h| h > 0),
            "Made: hidden widths must be positive, got {hidden:?}"
        );
        assert!(
            !options.residual || hidden.windows(2).all(|w| w[0] == w[1]),
            "Made: residual blocks need equal hidden widths, got {hidden:?}"
        );
        Made::from_degrees(
            dim,
            params_per_dim,
            input_degrees,
            hidden_degrees(dim, hidden, options),
            options.residual,
            options.output_init,
            rng,
        )
    }

    /// A MADE with every degree given: the input degrees (a permutation of
    /// 1..=dim) and the degrees of each hidden layer's units (each in
    /// 1..=max(1, dim − 1)). This is the architecture a checkpoint stores;
    /// [`Made::with_options`] computes the hidden degrees and calls it.
    ///
    /// # Panics
    /// If `dim` or `params_per_dim` is 0, a hidden layer is empty, the input
    /// degrees are not a permutation of 1..=dim, a hidden degree is out of
    /// range, or `residual` is set and two hidden layers' degrees differ.
    pub fn from_degrees<R: Rng + ?Sized>(
        dim: usize,
        params_per_dim: usize,
        input_degrees: &[usize],
        hidden_degrees: Vec<Vec<usize>>,
        residual: bool,
        output_init: Init,
        rng: &mut R,
    ) -> Self {
        assert!(
            dim > 0 && params_per_dim > 0,
            "Made: need dim ≥ 1 and params_per_dim ≥ 1, got {dim} and {params_per_dim}"
        );
        let mut sorted = input_degrees.to_vec();
        sorted.sort_unstable();
        assert!(
            sorted == (1..=dim).collect::<Vec<_>>(),
            "Made: input degrees {input_degrees:?} are not a permutation of 1..={dim}"
        );
        let top = dim.saturating_sub(1).max(1);
        for (l, degrees) in hidden_degrees.iter().enumerate() {
            assert!(
                !degrees.is_empty() && degrees.iter().all(|m| (1..=top).contains(m)),
                "Made: hidden layer {l} has no units or a degree outside 1..={top}"
            );
        }
        assert!(
            !residual || hidden_degrees.windows(2).all(|w| w[0] == w[1]),
            "Made: residual blocks need equal degrees from layer to layer"
        );
        let mut layers = Vec::with_capacity(hidden_degrees.len() + 1);
        let mut masks = Vec::with_capacity(hidden_degrees.len() + 1);
        let mut below: &[usize] = input_degrees;
        for (l, degrees) in hidden_degrees.iter().enumerate() {
            // Into a hidden unit: m(k) ≥ m(k′).
            let mask = mask_from(below, degrees, 1, |into, from| into >= from);
            let weight = glorot_uniform::<T, _>(below.len(), degrees.len(), rng).mul(&mask);
            layers.push(named_linear(weight, l));
            masks.push(Arc::new(BlockMask::new(&mask)));
            below = degrees;
        }
        // Into an output of feature i: m(i) > m(k′), repeated for each output j.
        let mask = mask_from(below, input_degrees, params_per_dim, |into, from| {
            into > from
        });
        let out_features = params_per_dim * dim;
        let weight = match output_init {
            Init::Glorot => glorot_uniform::<T, _>(below.len(), out_features, rng).mul(&mask),
            Init::Zero => Tensor::zeros(&[below.len(), out_features]),
        };
        layers.push(named_linear(weight, hidden_degrees.len()));
        masks.push(Arc::new(BlockMask::new(&mask)));
        Made {
            dim,
            params_per_dim,
            input_degrees: input_degrees.to_vec(),
            hidden_degrees,
            residual,
            layers,
            masks,
        }
    }

    /// The 0/1 mask of layer `l` (`[in, out]`, the shape of its weight); the
    /// last layer is the output layer.
    ///
    /// # Panics
    /// If there is no layer `l`.
    pub fn mask(&self, l: usize) -> &Tensor<T> {
        self.masks[l].mask()
    }

    /// The network's outputs for `x`: `[batch, dim] → [batch, params_per_dim·dim]`.
    ///
    /// # Panics
    /// If `x` is not `[_, dim]`.
    pub fn forward<'t>(&self, x: &Var<'t, T>) -> Var<'t, T> {
        assert!(
            x.shape().len() == 2 && x.shape()[1] == self.dim,
            "Made: expected [batch, {}], got {:?}",
            self.dim,
            x.shape()
        );
        let tape = x.tape();
        // hₗ·(Wₗ ⊙ Mₗ) + bₗ, multiplying only the blocks of Mₗ that hold ones;
        // the mask is a constant, so the gradient reaching Wₗ is zero where
        // the mask is.
        let linear = |h: &Var<'t, T>, l: usize| {
            h.masked_linear(
                &tape.param(&self.layers[l].weight),
                &tape.param(&self.layers[l].bias),
                &self.masks[l],
            )
        };
        let n_hidden = self.hidden_degrees.len();
        let mut h = x.clone();
        for l in 0..n_hidden {
            h = if !self.residual {
                linear(&h, l).relu()
            } else if l == 0 {
                linear(&h, l)
            } else {
                // hₗ₊₁ = hₗ + (W ⊙ M)·relu(hₗ) + b: the identity path joins units
                // of equal degree, which the masks allow.
                h.add(&linear(&h.relu(), l))
            };
        }
        if self.residual && n_hidden > 0 {
            h = h.relu();
        }
        linear(&h, n_hidden)
    }

    /// Every parameter, layer by layer (weight, bias).
    pub fn params(&self) -> Vec<&Param<T>> {
        self.layers.iter().flat_map(|l| l.params()).collect()
    }

    /// Every parameter, mutably.
    pub fn params_mut(&mut self) -> Vec<&mut Param<T>> {
        self.layers
            .iter_mut()
            .flat_map(|l| l.params_mut())
            .collect()
    }

    /// Solves the autoregressive system uᵢ = step(i, outputs of feature i at
    /// u) for u, one feature at a time in degree order, computing each hidden
    /// unit exactly once. Records nothing.
    ///
    /// `step(i, rows, raw)` receives feature i, the batch rows `rows` it is
    /// asked for, and `raw`: `[rows.len(), params_per_dim]`, the outputs of
    /// feature i (column j = output j), which depend only on the u of lower
    /// degree, already solved; it returns uᵢ for those rows.
    /// Returns u `[batch, dim]` and the network's outputs at u,
    /// `[batch, params_per_dim·dim]` (what [`Made::forward`] gives on u).
    ///
    /// Why it is fast: a hidden unit of degree k depends on the features of
    /// degree ≤ k only, so it is final as soon as those are solved. With the
    /// units sorted by degree, solving the feature of degree d computes just
    /// the hidden units of degree d − 1 from the already-known prefix, so the
    /// D sequential steps cost one forward pass of work in total instead of D
    /// (the textbook loop runs the whole network D times). The batch is split
    /// across rayon's threads (the rows are independent), unless inside
    /// [`serial_kernels`](crate::tensor::parallel::serial_kernels).
    ///
    /// # Derivation
    /// [`derivations::made`](crate::derivations::made), "Sampling in one
    /// pass of work".
    pub fn solve_autoregressive<F>(&self, batch: usize, step: F) -> (Tensor<T>, Tensor<T>)
    where
        F: Fn(usize, std::ops::Range<usize>, &Tensor<T>) -> Tensor<T> + Sync,
    {
        let plan = SolvePlan::new(self);
        let width = self.params_per_dim * self.dim;
        let mut u = vec![T::ZERO; batch * self.dim];
        let mut out = vec![T::ZERO; batch * width];
        // Rows per task: enough work per thread to pay for the split.
        // Serial inside `serial_kernels` (a piece of `FlowModel::sample`, or
        // of `FlowModel::log_prob` for an IAF).
        let threads = crate::tensor::parallel::current_num_threads().max(1);
        let rows_per_task = if crate::tensor::parallel::threads_available() && batch >= 32 {
            batch.div_ceil(threads)
        } else {
            batch.max(1)
        };
        u.par_chunks_mut(rows_per_task * self.dim)
            .zip(out.par_chunks_mut(rows_per_task * width))
            .enumerate()
            .for_each(|(task, (u_rows, out_rows))| {
                let start = task * rows_per_task;
                plan.solve_rows(self, start, u_rows, out_rows, &step);
            });
        (
            Tensor::from_vec(u, &[batch, self.dim]),
            Tensor::from_vec(out, &[batch, width]),
        )
    }
}

fn named_linear<T: Element>(weight: Tensor<T>, l: usize) -> Linear<T> {
    let out = weight.dim(1);
    let mut layer = Linear {
        weight: Param::new("weight", weight),
        bias: Param::new("bias", Tensor::zeros(&[out])),
    };
    for p in layer.params_mut() {
        p.prefix(&format!("layer{l}"));
    }
    layer
}

/// The `[below.len(), repeat·into.len()]` 0/1 mask with entry (k′, j·n + k)
/// = connects(into[k], below[k′]).
fn mask_from<T: Element>(
    below: &[usize],
    into: &[usize],
    repeat: usize,
    connects: impl Fn(usize, usize) -> bool,
) -> Tensor<T> {
    let n = into.len();
    let mut mask = Vec::with_capacity(below.len() * repeat * n);
    for &from in below {
        for _ in 0..repeat {
            mask.extend(
                into.iter()
                    .map(|&to| if connects(to, from) { T::ONE } else { T::ZERO }),
            );
        }
    }
    Tensor::from_vec(mask, &[below.len(), repeat * n])
}

/// The degrees of every hidden layer (see [`HiddenDegrees`]). Degrees lie in
/// 1..=max(1, D−1): a unit of degree D could feed no output.
fn hidden_degrees(dim: usize, hidden: &[usize], options: MadeOptions) -> Vec<Vec<usize>> {
    let top = dim.saturating_sub(1).max(1);
    match options.hidden_degrees {
        HiddenDegrees::Cyclic => hidden
            .iter()
            .map(|&width| {
                let mut degrees: Vec<usize> = (0..width).map(|k| k % top + 1).collect();
                degrees.sort_unstable();
                degrees
            })
            .collect(),
        HiddenDegrees::Random { seed } => {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut low = 1;
            let mut layers: Vec<Vec<usize>> = Vec::with_capacity(hidden.len());
            for &width in hidden {
                if options.residual && !layers.is_empty() {
                    // The identity path needs equal degrees layer to layer.
                    layers.push(layers[0].clone());
                    continue;
                }
                let mut degrees: Vec<usize> =
                    (0..width).map(|_| rng.gen_range(low..=top)).collect();
                degrees.sort_unstable();
                low = *degrees.iter().min().expect("hidden widths are positive");
                layers.push(degrees);
            }
            layers
        }
    }
}

/// The network re-indexed for [`Made::solve_autoregressive`]: features and
/// hidden units sorted by degree, so "every unit of degree ≤ k" is a prefix,
/// and the masked weights permuted to match.
struct SolvePlan<T: Element> {
    /// `features[d − 1]` = the feature of degree d.
    features: Vec<usize>,
    /// Per layer (hidden layers then output): the masked weight with rows and
    /// columns in sorted order, contiguous `[in, out]`.
    weights: Vec<Vec<T>>,
    /// Per layer: the bias in sorted column order.
    biases: Vec<Vec<T>>,
    /// Per hidden layer: `prefix[k]` = the number of units of degree ≤ k,
    /// for k in 0..=D.
    prefix: Vec<Vec<usize>>,
    /// Hidden widths.
    widths: Vec<usize>,
}

impl<T: Element> SolvePlan<T> {
    fn new(made: &Made<T>) -> Self {
        let dim = made.dim;
        let mut features = vec![0; dim];
        for (i, &m) in made.input_degrees.iter().enumerate() {
            features[m - 1] = i;
        }
        let sorted_units = |degrees: &[usize]| {
            let mut units: Vec<usize> = (0..degrees.len()).collect();
            units.sort_by_key(|&k| degrees[k]);
            units
        };
        let mut rows_order = features.clone();
        let (mut weights, mut biases, mut prefix, mut widths) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let n_layers = made.layers.len();
        for l in 0..n_layers {
            let cols_order: Vec<usize> = if l + 1 < n_layers {
                sorted_units(&made.hidden_degrees[l])
            } else {
                // Output columns: output j of the feature of degree d at j·D + d − 1.
                (0..made.params_per_dim)
                    .flat_map(|j| features.iter().map(move |&i| j * dim + i))
                    .collect()
            };
            let masked = made.layers[l].weight.value.mul(made.masks[l].mask());
            let (w, n_out) = (masked.to_vec(), masked.dim(1));
            let mut permuted = Vec::with_capacity(rows_order.len() * cols_order.len());
            for &r in &rows_order {
                permuted.extend(cols_order.iter().map(|&c| w[r * n_out + c]));
            }
            let bias = made.layers[l].bias.value.to_vec();
            weights.push(permuted);
            biases.push(cols_order.iter().map(|&c| bias[c]).collect());
            if l + 1 < n_layers {
                let degrees = &made.hidden_degrees[l];
                prefix.push(
                    (0..=dim)
                        .map(|k| degrees.iter().filter(|&&m| m <= k).count())
                        .collect(),
                );
                widths.push(degrees.len());
            }
            rows_order = cols_order;
        }
        SolvePlan {
            features,
            weights,
            biases,
            prefix,
            widths,
        }
    }

    /// The sequential solve for `n = u_rows.len() / dim` rows starting at
    /// batch row `start`; fills `u_rows` (`[n, dim]`) and `out_rows`
    /// (`[n, params_per_dim·dim]`), both in the caller's feature order.
    fn solve_rows<F>(
        &self,
        made: &Made<T>,
        start: usize,
        u_rows: &mut [T],
        out_rows: &mut [T],
        step: &F,
    ) where
        F: Fn(usize, std::ops::Range<usize>, &Tensor<T>) -> Tensor<T>,
    {
        let (dim, k_out) = (made.dim, made.params_per_dim);
        let n = u_rows.len() / dim;
        if n == 0 {
            return;
        }
        let n_hidden = self.widths.len();
        // Features solved so far, in degree order: `[n, dim]`.
        let mut known = vec![T::ZERO; n * dim];
        // Per hidden layer: pre-activations and activations, `[n, width]`,
        // columns in sorted-degree order.
        let mut pre: Vec<Vec<T>> = self.widths.iter().map(|&w| vec![T::ZERO; n * w]).collect();
        let mut act: Vec<Vec<T>> = pre.clone();
        let mut raw = vec![T::ZERO; n * k_out];
        for d in 1..=dim {
            // 1. The hidden units of degree d − 1 are now computable: the
            //    inputs of degree ≤ d − 1 are solved, and so are the units of
            //    lower degree in every layer.
            for l in 0..n_hidden {
                if d == 1 {
                    break; // no hidden unit has degree 0
                }
                let (c0, c1) = (self.prefix[l][d - 2], self.prefix[l][d - 1]);
                if c1 == c0 {
                    continue;
                }
                let (source, source_width, k) = if l == 0 {
                    (&known, dim, d - 1)
                } else {
                    (&act[l - 1], self.widths[l - 1], self.prefix[l - 1][d - 1])
                };
                let width = self.widths[l];
                let (before, this) = pre.split_at_mut(l);
                let target = &mut this[0];
                // Start from the bias (and, in a residual block, the identity path).
                for r in 0..n {
                    for c in c0..c1 {
                        let mut v = self.biases[l][c];
                        if made.residual && l > 0 {
                            v += before[l - 1][r * self.widths[l - 1] + c];
                        }
                        target[r * width + c] = v;
                    }
                }
                // pre[:, c0..c1] += source[:, ..k] · W[..k, c0..c1]
                gemm_accumulate(
                    n,
                    k,
                    c1 - c0,
                    source,
                    source_width,
                    &self.weights[l][c0..],
                    width,
                    &mut target[c0..],
                    width,
                );
                for r in 0..n {
                    for c in c0..c1 {
                        act[l][r * width + c] = target[r * width + c].max(T::ZERO);
                    }
                }
            }
            // 2. The outputs of the feature of degree d, from the units of degree < d.
            let (source, source_width, k) = if n_hidden == 0 {
                (&known, dim, d - 1)
            } else {
                (
                    &act[n_hidden - 1],
                    self.widths[n_hidden - 1],
                    self.prefix[n_hidden - 1][d - 1],
                )
            };
            let out_w = &self.weights[n_hidden];
            for r in 0..n {
                for j in 0..k_out {
                    raw[r * k_out + j] = self.biases[n_hidden][j * dim + d - 1];
                }
            }
            for j in 0..k_out {
                // raw[:, j] += source[:, ..k] · W_out[..k, column of (j, d)]
                gemm_accumulate(
                    n,
                    k,
                    1,
                    source,
                    source_width,
                    &out_w[j * dim + d - 1..],
                    k_out * dim,
                    &mut raw[j..],
                    k_out,
                );
            }
            // 3. Solve the feature of degree d.
            let feature = self.features[d - 1];
            let raw_t = Tensor::from_vec(raw.clone(), &[n, k_out]);
            let solved = step(feature, start..start + n, &raw_t).to_vec();
            assert_eq!(
                solved.len(),
                n,
                "Made::solve_autoregressive: step returned {} values for {n} rows",
                solved.len()
            );
            for r in 0..n {
                known[r * dim + d - 1] = solved[r];
                u_rows[r * dim + feature] = solved[r];
                for j in 0..k_out {
                    out_rows[r * k_out * dim + j * dim + feature] = raw[r * k_out + j];
                }
            }
        }
    }
}

/// `C[m, n] += A[m, ..k]·B[..k, n]` on row-major slices with row strides
/// `lda`, `ldb`, `ldc` (A's first k columns, B's first k rows).
#[allow(clippy::too_many_arguments)]
fn gemm_accumulate<T: Element>(
    m: usize,
    k: usize,
    n: usize,
    a: &[T],
    lda: usize,
    b: &[T],
    ldb: usize,
    c: &mut [T],
    ldc: usize,
) {
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    assert!(
        a.len() >= (m - 1) * lda + k
            && b.len() >= (k - 1) * ldb + n
            && c.len() >= (m - 1) * ldc + n,
        "gemm_accumulate: slices too short for [{m}, {k}] x [{k}, {n}]"
    );
    // SAFETY: the assert above keeps every index of the three strided
    // matrices inside its slice, and `c` is a distinct `&mut` borrow.
    unsafe {
        T::gemm(
            m,
            k,
            n,
            T::ONE,
            a.as_ptr(),
            lda as isize,
            1,
            b.as_ptr(),
            ldb as isize,
            1,
            T::ONE,
            c.as_mut_ptr(),
            ldc as isize,
            1,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cyclic_hidden_degrees_match_the_reference() {
        // (k mod max(1, D − 1)) + 1 with D = 4: 1, 2, 3, 1, 2, sorted.
        let degrees = hidden_degrees(4, &[5], MadeOptions::default());
        assert_eq!(degrees, vec![vec![1, 1, 2, 2, 3]]);
        // D = 1: every unit has degree 1, and no output may use it.
        assert_eq!(
            hidden_degrees(1, &[2], MadeOptions::default()),
            vec![vec![1, 1]]
        );
    }

    #[test]
    fn random_hidden_degrees_never_fall_below_the_layer_under_them() {
        let options = MadeOptions {
            hidden_degrees: HiddenDegrees::Random { seed: 3 },
            ..MadeOptions::default()
        };
        let degrees = hidden_degrees(6, &[7, 5, 9], options);
        for pair in degrees.windows(2) {
            let low = *pair[0].iter().min().unwrap();
            assert!(
                pair[1].iter().all(|&m| (low..=5).contains(&m)),
                "{degrees:?}"
            );
        }
    }

    #[test]
    fn masks_follow_the_degree_rules() {
        let mut rng = StdRng::seed_from_u64(1);
        let made = Made::<f64>::new(3, &[4], 2, Order::Reversed, &mut rng);
        // input degrees [3, 2, 1], hidden [1, 1, 2, 2]
        assert_eq!(made.input_degrees, vec![3, 2, 1]);
        let m0 = made.mask(0);
        assert_eq!(m0.get(&[2, 0]), 1.0); // degree 1 → degree 1
        assert_eq!(m0.get(&[1, 0]), 0.0); // degree 2 ↛ degree 1
        let out = made.mask(1);
        // feature 0 (degree 3) may use hidden units of degree 1 and 2; feature 2 none.
        assert_eq!(out.get(&[1, 0]), 1.0);
        assert_eq!(out.get(&[1, 3]), 1.0);
        assert_eq!(out.get(&[0, 2]), 0.0);
        assert_eq!(out.get(&[0, 5]), 0.0);
    }

    #[test]
    fn random_order_is_a_seeded_permutation() {
        let a = Order::Random { seed: 9 }.degrees(10);
        assert_eq!(a, Order::Random { seed: 9 }.degrees(10));
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (1..=10).collect::<Vec<_>>());
    }
}
