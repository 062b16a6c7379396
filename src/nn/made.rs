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
    /// masked products skip ([`crate::tensor::blocked`]). A layer at least
    /// D − 1 wide holds every degree, so each input reaches every output its
    /// order allows; a narrower one holds degrees 1..width only, and the
    /// inputs of higher degree then reach no output.
    Cyclic,
    /// Every degree 1..D−1 once, the other width − (D − 1) units drawn
    /// uniformly from 1..D−1, from `seed`, given to the units in ascending
    /// order (as for `Cyclic`). Germain et al. draw every unit from {min
    /// degree of the layer below .. D−1} (§4, eq. 13), which can leave a
    /// degree out and cut an input off from every output; holding each
    /// degree keeps every connection the order allows (and the layer's
    /// minimum at 1, so the rest are drawn as they draw them). Needs every
    /// hidden layer at least D − 1 wide.
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
    /// How the hidden layers start: [`Init::Glorot`] (the default), or
    /// [`Init::FanIn`] (PyTorch's default, random biases), as the spline
    /// MAF's MADEs do. [`Init::Zero`] would make every hidden unit 0.
    pub hidden_init: Init,
}

impl Default for MadeOptions {
    /// Cyclic hidden degrees, no residual blocks, zero output layer.
    fn default() -> Self {
        MadeOptions {
            hidden_degrees: HiddenDegrees::Cyclic,
            residual: false,
            output_init: Init::Zero,
            hidden_init: Init::Glorot,
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
/// [`derivations::made`, "Degrees and masks"](crate::derivations::made#degrees-and-masks)
/// and ["Why the outputs are autoregressive"](crate::derivations::made#why-the-outputs-are-autoregressive)
/// (docs/derivations/made.md).
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
    pub(crate) masks: Vec<Arc<BlockMask<T>>>,
    /// The context weight W_c, `[context_dim, width of the first layer]`,
    /// unmasked: c·W_c joins the first layer's pre-activation, so every
    /// unit of that layer reads all of c (`None`: an unconditional MADE).
    /// Named `context.weight`.
    pub context: Option<Param<T>>,
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
    /// is not a permutation of 1..=dim, if `options.residual` is set and
    /// the hidden widths differ, or if the hidden degrees are
    /// [`HiddenDegrees::Random`] and a hidden layer is narrower than D − 1.
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
        let top = dim.saturating_sub(1).max(1);
        assert!(
            !matches!(options.hidden_degrees, HiddenDegrees::Random { .. })
                || hidden.iter().all(|&h| h >= top),
            "Made: random hidden degrees need every hidden layer at least D − 1 = {top} wide, \
             so that each degree 1..={top} appears and every input reaches every later output; \
             got {hidden:?}"
        );
        Made::from_degrees(
            dim,
            params_per_dim,
            input_degrees,
            hidden_degrees(dim, hidden, options),
            options.residual,
            [options.hidden_init, options.output_init],
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
        [hidden_init, output_init]: [Init; 2],
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
            layers.push(masked_linear(hidden_init, &mask, l, rng));
            masks.push(Arc::new(BlockMask::new(&mask)));
            below = degrees;
        }
        // Into an output of feature i: m(i) > m(k′), repeated for each output j.
        let mask = mask_from(below, input_degrees, params_per_dim, |into, from| {
            into > from
        });
        layers.push(masked_linear(output_init, &mask, hidden_degrees.len(), rng));
        masks.push(Arc::new(BlockMask::new(&mask)));
        Made {
            dim,
            params_per_dim,
            input_degrees: input_degrees.to_vec(),
            hidden_degrees,
            residual,
            layers,
            masks,
            context: None,
        }
    }

    /// The same MADE reading a context of width `context_dim` as well: the
    /// first layer computes h₁ = relu(x·(W₀ ⊙ M₀) + c·W_c + b₀) with an
    /// unmasked W_c, Glorot uniform (zero when the first layer is the
    /// output layer and starts at zero, so the flow still starts as the
    /// identity). Every unit of every degree reads all of c, so each output
    /// of feature i is a function of (x_{<i}, c) and the Jacobian in x stays
    /// triangular for every c. `context_dim = 0` leaves it unconditional.
    ///
    /// # Source
    /// Germain et al., arXiv:1502.03509, §4.3 (conditioning on side
    /// information); Papamakarios et al., arXiv:1705.07057, §3.4
    /// (conditional MAF).
    ///
    /// # Derivation
    /// [`derivations::conditioning`, "MADE"](crate::derivations::conditioning#made)
    /// (docs/derivations/conditioning.md).
    pub fn with_context<R: Rng + ?Sized>(mut self, context_dim: usize, rng: &mut R) -> Self {
        if context_dim == 0 {
            self.context = None;
            return self;
        }
        let first = &self.layers[0].weight.value;
        let out = first.dim(1);
        let zero_output =
            self.hidden_degrees.is_empty() && first.to_f64_vec().iter().all(|w| *w == 0.0);
        let weight = if zero_output {
            Tensor::zeros(&[context_dim, out])
        } else {
            glorot_uniform::<T, _>(context_dim, out, rng)
        };
        self.context = Some(Param::new("context.weight", weight));
        self
    }

    /// The width of the context it reads (0: none).
    pub fn context_dim(&self) -> usize {
        self.context.as_ref().map_or(0, |w| w.value.dim(0))
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
    /// If `x` is not `[_, dim]`, or the MADE reads a context (use
    /// [`Made::forward_with_context`]).
    pub fn forward<'t>(&self, x: &Var<'t, T>) -> Var<'t, T> {
        self.forward_with_context(x, None)
    }

    /// The network's outputs for `x` and the context `c`
    /// (`[batch, context_dim]`, `None` for an unconditional MADE):
    /// `[batch, params_per_dim·dim]`.
    ///
    /// # Panics
    /// If `x` is not `[_, dim]`, or `c` is missing or not
    /// `[batch, context_dim]` for a MADE that reads a context.
    pub fn forward_with_context<'t>(&self, x: &Var<'t, T>, c: Option<&Var<'t, T>>) -> Var<'t, T> {
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
        // The first layer's pre-activation, with c·W_c when there is a context.
        let context = match (c, self.context_dim()) {
            (_, 0) => None,
            (Some(c), width) => {
                assert!(
                    c.shape() == [x.shape()[0], width],
                    "Made: expected a context [{}, {width}], got {:?}",
                    x.shape()[0],
                    c.shape()
                );
                Some(c)
            }
            (None, width) => panic!("Made: reads a context of width {width}, none was given"),
        };
        let first = match (context, &self.context) {
            (Some(c), Some(weight)) => linear(x, 0).add(&c.matmul(&tape.param(weight))),
            _ => linear(x, 0),
        };
        let n_hidden = self.hidden_degrees.len();
        if n_hidden == 0 {
            return first;
        }
        let mut h = x.clone();
        for l in 0..n_hidden {
            h = if l == 0 {
                if self.residual {
                    first.clone()
                } else {
                    first.relu()
                }
            } else if !self.residual {
                linear(&h, l).relu()
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

    /// Every parameter, layer by layer (weight, bias), then the context
    /// weight if any.
    pub fn params(&self) -> Vec<&Param<T>> {
        let mut params: Vec<&Param<T>> = self.layers.iter().flat_map(|l| l.params()).collect();
        params.extend(&self.context);
        params
    }

    /// Every parameter, mutably.
    pub fn params_mut(&mut self) -> Vec<&mut Param<T>> {
        let mut params: Vec<&mut Param<T>> = self
            .layers
            .iter_mut()
            .flat_map(|l| l.params_mut())
            .collect();
        params.extend(&mut self.context);
        params
    }
}

/// Layer `l` of a MADE: a [`Linear`] of the mask's shape `[in, out]`
/// initialised by `init` (fan-in: all `in` inputs, masked or not, as
/// PyTorch's masked layers count it), its weight then multiplied by the
/// mask.
fn masked_linear<T: Element, R: Rng + ?Sized>(
    init: Init,
    mask: &Tensor<T>,
    l: usize,
    rng: &mut R,
) -> Linear<T> {
    let mut layer = Linear::new(mask.dim(0), mask.dim(1), init, rng);
    layer.weight.value = layer.weight.value.mul(mask);
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
            let mut layers: Vec<Vec<usize>> = Vec::with_capacity(hidden.len());
            for &width in hidden {
                if options.residual && !layers.is_empty() {
                    // The identity path needs equal degrees layer to layer.
                    layers.push(layers[0].clone());
                    continue;
                }
                // Input i reaches output k (m(i) < m(k)) through a path whose
                // degrees climb from ≥ m(i) to < m(k); for m(k) = m(i) + 1 that
                // path must hold degree m(i) in every layer. So each layer gets
                // every degree 1..=top; the rest are drawn from the layer
                // below's minimum, which is then always 1.
                let mut degrees: Vec<usize> = (1..=top)
                    .chain((top..width).map(|_| rng.gen_range(1..=top)))
                    .collect();
                degrees.sort_unstable();
                layers.push(degrees);
            }
            layers
        }
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
