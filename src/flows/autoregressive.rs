//! Autoregressive flows: [`Maf`] (fast density, sequential sampling) and
//! [`Iaf`](super::Iaf) (fast sampling, sequential density, in [`iaf`](super::iaf)), both an element-wise affine
//! map whose scale and shift come from a [`Made`].
//!
//! Both compute x = z ⊙ exp(ℓ) + b feature by feature; they differ in what
//! (ℓ, b) are conditioned on:
//!
//! | | (ℓ, b) from | `inverse` (x → z) | `forward` (z → x) |
//! | --- | --- | --- | --- |
//! | MAF | the data side, x_{<i} | one parallel pass | D sequential steps |
//! | IAF | the latent side, z_{<i} | D sequential steps | one parallel pass |
//!
//! So an IAF is an MAF read backwards: MAF's parallel direction is density
//! evaluation (training by maximum likelihood), IAF's is sampling (training
//! by reverse KL, as a variational posterior or a distilled sampler).
//!
//! The sequential direction is solved in one of two ways ([`SequentialMethod`]):
//! the textbook loop of D full passes of the network, or an incremental solve
//! that computes each hidden unit once ([`Made::solve_autoregressive`]). On a
//! recording tape the textbook loop always runs, so gradients flow through it.
//!
//! Derivations: [`derivations::maf`](crate::derivations::maf)
//! (docs/derivations/maf.md), [`derivations::iaf`](crate::derivations::iaf)
//! (docs/derivations/iaf.md), [`derivations::made`](crate::derivations::made).

use super::bound::soft_clamp;
use super::context::{context_dim_from_spec, with_context_dim};
use super::error::FlowError;
use super::flow::Flow;
use super::spec::{check_network, LayerSpec, MAX_SIZE};
use crate::autodiff::{Param, Tape, Var};
use crate::nn::made::{Made, MadeOptions, Order};
use crate::nn::Init;
use crate::tensor::{Element, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The initial gate bias of [`Transform::Gated`]: σ(2) ≈ 0.88, so a gated
/// layer starts close to the identity (Kingma et al. 2016, §4: "+1 or +2").
pub const GATE_INIT_BIAS: f64 = 2.0;

/// How the MADE's two outputs per feature become the log-scale ℓᵢ and the
/// shift bᵢ of the element-wise map x = z ⊙ exp(ℓ) + b.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transform {
    /// Outputs (μ, α̂): ℓ = tanh(α̂), b = μ. The bound |ℓ| < 1 keeps one layer
    /// from blowing up (the reference MAF's choice).
    Affine,
    /// The gated update of IAF (Kingma et al. 2016, eq. 14-15), outputs (m, s):
    /// σ = sigmoid(s), x = σ ⊙ z + (1 − σ) ⊙ m, i.e. ℓ = log σ, b = (1 − σ) ⊙ m.
    /// ℓ is computed as log-sigmoid (finite where σ underflows to 0) and
    /// bounded below by [`soft_clamp`] (itself down to −10, never below
    /// −12), so the sequential direction's division by e^ℓ stays finite.
    /// Since σ < 1 a gated layer never expands volume (its log-det is
    /// negative): on a fixed N(0, I) prior, put a layer that can expand before
    /// it (the paper's base is a learned Gaussian).
    Gated,
}

impl Transform {
    /// (ℓ, b) from the two outputs of each feature, `first` and `second`
    /// (both `[batch, n]`).
    pub fn log_scale_and_shift<'t, T: Element>(
        &self,
        first: &Var<'t, T>,
        second: &Var<'t, T>,
    ) -> (Var<'t, T>, Var<'t, T>) {
        match self {
            Transform::Affine => (second.tanh(), first.clone()),
            Transform::Gated => {
                let gate = second.sigmoid();
                // ℓ = log σ(s) (log-sigmoid: ln of an underflowed σ is −∞), bounded;
                // b = (1 − σ) ⊙ m
                let shift = gate.neg().add_scalar(T::ONE).mul(first);
                (soft_clamp(&second.log_sigmoid()), shift)
            }
        }
    }
}

/// How the sequential direction (MAF's forward, IAF's inverse) is solved
/// when nothing is recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SequentialMethod {
    /// Each hidden unit computed once, feature by feature in degree order
    /// ([`Made::solve_autoregressive`]): D small steps, one pass of work.
    #[default]
    Incremental,
    /// The textbook loop: D full passes of the network, the i-th fixing the
    /// i-th feature in the order. D times the work of the parallel direction.
    FullPasses,
}

/// The shared machinery: a MADE with two outputs per feature and a transform.
#[derive(Clone, Debug)]
pub(crate) struct Conditioner<T: Element> {
    pub(crate) made: Made<T>,
    pub(crate) transform: Transform,
}

impl<T: Element> Conditioner<T> {
    pub(crate) fn new(made: Made<T>, transform: Transform) -> Self {
        assert_eq!(
            made.params_per_dim, 2,
            "autoregressive flow: the MADE must give 2 outputs per feature, gives {}",
            made.params_per_dim
        );
        let mut made = made;
        if transform == Transform::Gated {
            // Gate outputs (the second block) start at σ(GATE_INIT_BIAS).
            let dim = made.dim;
            let bias = &mut made
                .layers
                .last_mut()
                .expect("a MADE has an output layer")
                .bias;
            for b in &mut bias.value.as_mut_slice()[dim..] {
                *b = T::from_f64(GATE_INIT_BIAS);
            }
        }
        Conditioner { made, transform }
    }

    /// The architecture as data (read back by [`conditioner_from_spec`]).
    pub(crate) fn spec(&self, kind: &str) -> LayerSpec {
        made_spec(&self.made, kind).with(
            "transform",
            match self.transform {
                Transform::Affine => "affine",
                Transform::Gated => "gated",
            },
        )
    }

    pub(crate) fn check(&self, layer: &str, v: &Var<'_, T>) {
        assert!(
            v.shape().len() == 2 && v.shape()[1] == self.made.dim,
            "{layer}: expected [batch, {}], got {:?}",
            self.made.dim,
            v.shape()
        );
    }

    /// (ℓ, b) of every feature, conditioned on `v` and the context `c`
    /// (one parallel pass).
    pub(crate) fn log_scale_and_shift<'t>(
        &self,
        v: &Var<'t, T>,
        c: Option<&Var<'t, T>>,
    ) -> (Var<'t, T>, Var<'t, T>) {
        let dim = self.made.dim;
        let out = self.made.forward_with_context(v, c);
        self.transform
            .log_scale_and_shift(&out.narrow(1, 0, dim), &out.narrow(1, dim, dim))
    }

    /// Solves w = update(known, ℓ(w), b(w)) for the conditioning side w, where
    /// (ℓ, b) of feature i depend on the w of lower degree (and the context
    /// c) only. Returns w and ℓ(w).
    pub(crate) fn solve<'t, U>(
        &self,
        known: &Var<'t, T>,
        c: Option<&Var<'t, T>>,
        method: SequentialMethod,
        update: U,
    ) -> (Var<'t, T>, Var<'t, T>)
    where
        U: for<'a> Fn(&Var<'a, T>, &Var<'a, T>, &Var<'a, T>) -> Var<'a, T> + Sync,
    {
        let (batch, dim) = (known.shape()[0], self.made.dim);
        if known.tape().is_recording() || method == SequentialMethod::FullPasses {
            // Pass k leaves the first k features in the order exact: feature i
            // reads only features before it, which the previous pass fixed.
            // After D passes all are exact, and the last pass's ℓ was computed
            // from an input exact wherever ℓ looks (the masks zero the rest).
            let mut w = known.constant(Tensor::zeros(&[batch, dim]));
            let mut log_scale = None;
            for _ in 0..dim {
                let (l, b) = self.log_scale_and_shift(&w, c);
                w = update(known, &l, &b);
                log_scale = Some(l);
            }
            let log_scale = log_scale.expect("dim ≥ 1: at least one pass");
            return (w, log_scale);
        }
        let known_value = known.value();
        let context = c.map(|c| c.value().clone());
        let (w, out) = self.made.solve_autoregressive_with_context(
            batch,
            context.as_ref(),
            |feature, rows, raw| {
                let tape = Tape::no_grad();
                let (l, b) = self.transform.log_scale_and_shift(
                    &tape.constant(raw.narrow(1, 0, 1)),
                    &tape.constant(raw.narrow(1, 1, 1)),
                );
                let column = known_value
                    .narrow(0, rows.start, rows.len())
                    .narrow(1, feature, 1);
                update(&tape.constant(column), &l, &b).into_value()
            },
        );
        let tape = Tape::no_grad();
        let out = tape.constant(out);
        let (l, _) = self
            .transform
            .log_scale_and_shift(&out.narrow(1, 0, dim), &out.narrow(1, dim, dim));
        (known.constant(w), known.constant(l.into_value()))
    }
}

/// y = u ⊙ exp(ℓ) + b (the direction of the affine map that scales up).
pub(crate) fn scale_and_shift<'t, T: Element>(
    u: &Var<'t, T>,
    l: &Var<'t, T>,
    b: &Var<'t, T>,
) -> Var<'t, T> {
    u.mul(&l.exp()).add(b)
}

/// u = (y − b) ⊙ exp(−ℓ), the inverse of [`scale_and_shift`].
pub(crate) fn unshift_and_unscale<'t, T: Element>(
    y: &Var<'t, T>,
    l: &Var<'t, T>,
    b: &Var<'t, T>,
) -> Var<'t, T> {
    y.sub(b).mul(&l.neg().exp())
}

/// Masked autoregressive flow layer: the scale and shift of feature i are
/// functions of the *data-side* features before it,
///
/// forward (z → x, D sequential steps): xᵢ = zᵢ · exp(ℓᵢ(x_{<i})) + bᵢ(x_{<i}),
/// inverse (x → z, one pass): z = (x − b(x)) ⊙ exp(−ℓ(x)),
/// log|det ∂x/∂z| = Σᵢ ℓᵢ(x), log|det ∂z/∂x| = −Σᵢ ℓᵢ(x),
///
/// with (ℓ, b) from a [`Made`] by a [`Transform`] (default: ℓ = tanh(α̂), b = μ).
/// "Before" is the MADE's order. The output layer starts at zero, so the
/// layer starts as the identity.
///
/// # Shapes
/// `forward` and `inverse` take `[batch, dim]` and return `[batch, dim]` and
/// a per-sample log-det `[batch]`.
///
/// # Units
/// Log-dets in nats.
///
/// # Panics
/// If the input is not `[_, dim]`; the message names the layer and both shapes.
///
/// # Source
/// G. Papamakarios, T. Pavlakou, I. Murray, "Masked Autoregressive Flow for
/// Density Estimation", NeurIPS 2017, arXiv:1705.07057 (§3.1-3.2).
///
/// # Derivation
/// [`derivations::maf`, "The map"](crate::derivations::maf#the-map) and
/// ["The Jacobian and its log-determinant"](crate::derivations::maf#the-jacobian-and-its-log-determinant)
/// (docs/derivations/maf.md): why the density takes one pass and sampling
/// D steps.
///
/// # Examples
/// ```
/// use flowzoo::flows::{Flow, Maf};
/// use flowzoo::flows::check::randomize_params;
/// use flowzoo::nn::made::Order;
/// use flowzoo::tensor::Tensor;
/// use rand::SeedableRng;
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let mut maf = Maf::<f64>::new(4, &[16, 16], Order::Natural, &mut rng);
/// randomize_params(&mut maf, 0.3, &mut rng);
/// let x = Tensor::randn(&[3, 4], &mut rng);
/// let (z, log_det) = maf.inverse_tensor(&x); // one pass
/// let (x_back, _) = maf.forward_tensor(&z); // four sequential steps
/// assert_eq!(log_det.shape(), &[3]);
/// assert!(x.sub(&x_back).to_vec().iter().all(|d| d.abs() < 1e-12));
/// ```
#[derive(Clone, Debug)]
pub struct Maf<T: Element> {
    conditioner: Conditioner<T>,
    /// How `forward` is solved when nothing is recorded.
    pub method: SequentialMethod,
}

impl<T: Element> Maf<T> {
    /// An MAF layer on `dim` features with a MADE of hidden widths `hidden`
    /// (ReLU, cyclic hidden degrees) in `order`, and ℓ = tanh(α̂).
    ///
    /// # Panics
    /// If `dim` or a hidden width is 0.
    pub fn new<R: Rng + ?Sized>(dim: usize, hidden: &[usize], order: Order, rng: &mut R) -> Self {
        Maf::from_made(Made::new(dim, hidden, 2, order, rng), Transform::Affine)
    }

    /// A conditional MAF layer: as [`Maf::new`], its MADE also reading a
    /// context c of width `context_dim` in its first layer
    /// ([`Made::with_context`]), so xᵢ = zᵢ · exp(ℓᵢ(x_{<i}, c)) + bᵢ(x_{<i}, c).
    /// The sequential direction (`forward`) takes one pass of work, as
    /// without a context ([`Made::solve_autoregressive_with_context`]).
    ///
    /// # Source
    /// Papamakarios et al., arXiv:1705.07057, §3.4 (conditional MAF).
    ///
    /// # Derivation
    /// [`derivations::conditioning`, "MADE"](crate::derivations::conditioning#made)
    /// (docs/derivations/conditioning.md).
    pub fn conditional<R: Rng + ?Sized>(
        dim: usize,
        hidden: &[usize],
        order: Order,
        context_dim: usize,
        rng: &mut R,
    ) -> Self {
        let made = Made::new(dim, hidden, 2, order, rng).with_context(context_dim, rng);
        Maf::from_made(made, Transform::Affine)
    }

    /// An MAF layer on a given MADE (2 outputs per feature) and transform.
    /// With [`Transform::Gated`], the gate biases are set to [`GATE_INIT_BIAS`].
    ///
    /// # Panics
    /// If the MADE does not give 2 outputs per feature.
    pub fn from_made(made: Made<T>, transform: Transform) -> Self {
        Maf {
            conditioner: Conditioner::new(made, transform),
            method: SequentialMethod::default(),
        }
    }

    /// The layer a spec of kind `Maf` describes (what [`Flow::to_spec`]
    /// wrote), with placeholder parameters to be filled by name.
    ///
    /// # Errors
    /// [`FlowError::BadSpec`] naming the field, for a missing, mistyped or
    /// invalid field: a size outside 1..=[`MAX_SIZE`], input degrees that
    /// are not a permutation of 1..=dim, hidden degrees that do not fit the
    /// widths, a network too large to allocate, an unknown transform.
    pub fn from_spec(spec: &LayerSpec) -> Result<Self, FlowError> {
        Ok(Maf {
            conditioner: conditioner_from_spec(spec)?,
            method: SequentialMethod::default(),
        })
    }

    /// The conditioner network.
    pub fn made(&self) -> &Made<T> {
        &self.conditioner.made
    }

    /// The transform from the MADE's outputs to (ℓ, b).
    pub fn transform(&self) -> Transform {
        self.conditioner.transform
    }
}

impl<T: Element> Flow<T> for Maf<T> {
    fn name(&self) -> String {
        "Maf".into()
    }

    fn per_sample(&self) -> bool {
        true
    }

    fn context_dim(&self) -> usize {
        self.conditioner.made.context_dim()
    }

    fn forward<'t>(&self, z: &Var<'t, T>) -> (Var<'t, T>, Var<'t, T>) {
        self.forward_with_context(z, None)
    }

    fn inverse<'t>(&self, x: &Var<'t, T>) -> (Var<'t, T>, Var<'t, T>) {
        self.inverse_with_context(x, None)
    }

    fn forward_with_context<'t>(
        &self,
        z: &Var<'t, T>,
        c: Option<&Var<'t, T>>,
    ) -> (Var<'t, T>, Var<'t, T>) {
        self.conditioner.check("Maf", z);
        // xᵢ = zᵢ · exp(ℓᵢ(x_{<i}, c)) + bᵢ(x_{<i}, c), solved for x.
        let (x, l) = self.conditioner.solve(z, c, self.method, scale_and_shift);
        // log|det ∂x/∂z| = Σᵢ ℓᵢ (triangular Jacobian, diagonal exp(ℓᵢ))
        (x, l.sum_axes(&[1]))
    }

    fn inverse_with_context<'t>(
        &self,
        x: &Var<'t, T>,
        c: Option<&Var<'t, T>>,
    ) -> (Var<'t, T>, Var<'t, T>) {
        self.conditioner.check("Maf", x);
        let (l, b) = self.conditioner.log_scale_and_shift(x, c);
        // z = (x − b(x)) ⊙ exp(−ℓ(x)),  log|det ∂z/∂x| = −Σᵢ ℓᵢ
        (unshift_and_unscale(x, &l, &b), l.sum_axes(&[1]).neg())
    }

    fn to_spec(&self) -> Option<LayerSpec> {
        Some(self.conditioner.spec("Maf"))
    }

    fn params(&self) -> Vec<&Param<T>> {
        self.conditioner.made.params()
    }

    fn params_mut(&mut self) -> Vec<&mut Param<T>> {
        self.conditioner.made.params_mut()
    }
}

/// The order of layer `i` of a stack: natural in even layers, reversed in
/// odd ones, so every feature comes early somewhere.
pub(crate) fn alternating_order(i: usize) -> Order {
    if i.is_multiple_of(2) {
        Order::Natural
    } else {
        Order::Reversed
    }
}

/// The layers of an MAF stack as in the MAF paper and the reference: `layers`
/// MAF layers with MADEs of hidden widths `hidden`, the order natural in even
/// layers and reversed in odd ones, so every feature comes early somewhere.
///
/// # Source
/// Papamakarios et al., arXiv:1705.07057, §3.2 and §4.
pub fn maf_layers<T: Element, R: Rng + ?Sized>(
    dim: usize,
    layers: usize,
    hidden: &[usize],
    rng: &mut R,
) -> Vec<Box<dyn Flow<T>>> {
    conditional_maf_layers(dim, layers, hidden, 0, rng)
}

/// [`maf_layers`] of conditional MAF layers ([`Maf::conditional`]), each
/// MADE reading a context of width `context_dim`; with `context_dim = 0`,
/// [`maf_layers`], draw for draw.
pub fn conditional_maf_layers<T: Element, R: Rng + ?Sized>(
    dim: usize,
    layers: usize,
    hidden: &[usize],
    context_dim: usize,
    rng: &mut R,
) -> Vec<Box<dyn Flow<T>>> {
    (0..layers)
        .map(|i| {
            let order = alternating_order(i);
            Box::new(Maf::conditional(dim, hidden, order, context_dim, rng)) as Box<dyn Flow<T>>
        })
        .collect()
}

/// A MADE with explicit options for [`Maf::from_made`] / [`Iaf::from_made`](super::Iaf::from_made):
/// two outputs per feature, input degrees from `order`.
///
/// # Panics
/// As [`Made::with_options`].
pub fn made_for_flow<T: Element, R: Rng + ?Sized>(
    dim: usize,
    hidden: &[usize],
    order: Order,
    options: MadeOptions,
    rng: &mut R,
) -> Made<T> {
    Made::with_options(dim, hidden, 2, &order.degrees(dim), options, rng)
}

/// Rebuilds the MADE and transform of a [`Maf`] or [`Iaf`] from the
/// [`LayerSpec`] its `to_spec` wrote (fields `dim`, `hidden`,
/// `input_degrees`, `hidden_degrees` (every hidden layer's, concatenated),
/// `residual`, `transform`), with placeholder parameters to be filled by name.
///
/// # Errors
/// [`FlowError::BadSpec`] for a missing, mistyped or invalid field:
/// sizes outside 1..=[`MAX_SIZE`], input degrees that are not a permutation
/// of 1..=dim, hidden degrees outside 1..=max(1, dim − 1) or not matching the
/// widths, residual blocks over unequal layers, a network over
/// [`MAX_LAYER_ELEMENTS`](super::spec::MAX_LAYER_ELEMENTS) scalars (or, loading a
/// checkpoint, more than its stored tensors allow), an unknown transform.
pub(crate) fn conditioner_from_spec<T: Element>(
    spec: &LayerSpec,
) -> Result<Conditioner<T>, FlowError> {
    let made = made_from_spec(spec, 2)?;
    let transform = match spec.choice("transform", &["affine", "gated"])? {
        "affine" => Transform::Affine,
        _ => Transform::Gated,
    };
    Ok(Conditioner::new(made, transform))
}

/// A MADE's architecture as a spec of `kind`: fields `dim`, `hidden`,
/// `input_degrees`, `hidden_degrees` (every hidden layer's, concatenated)
/// and `residual`, read back by [`made_from_spec`].
pub(crate) fn made_spec<T: Element>(made: &Made<T>, kind: &str) -> LayerSpec {
    let widths: Vec<usize> = made.hidden_degrees.iter().map(Vec::len).collect();
    let spec = LayerSpec::new(kind)
        .with("dim", made.dim)
        .with("hidden", widths)
        .with("input_degrees", &made.input_degrees[..])
        .with("hidden_degrees", made.hidden_degrees.concat())
        .with("residual", made.residual);
    with_context_dim(spec, made.context_dim())
}

/// The MADE with `params_per_dim` outputs per feature that [`made_spec`]
/// wrote, with placeholder parameters; the errors are those listed at
/// [`conditioner_from_spec`] but the transform's.
pub(crate) fn made_from_spec<T: Element>(
    spec: &LayerSpec,
    params_per_dim: usize,
) -> Result<Made<T>, FlowError> {
    let dim = spec.usize("dim")?;
    if !(1..=MAX_SIZE).contains(&dim) {
        return Err(spec.error("dim", format!("{dim} is not a size in 1..={MAX_SIZE}")));
    }
    let widths = spec.usizes("hidden")?;
    if let Some(w) = widths.iter().find(|&&w| !(1..=MAX_SIZE).contains(&w)) {
        return Err(spec.error("hidden", format!("{w} is not a size in 1..={MAX_SIZE}")));
    }
    let sizes: Vec<usize> = std::iter::once(dim)
        .chain(widths.iter().copied())
        .chain(std::iter::once(params_per_dim.saturating_mul(dim)))
        .collect();
    check_network(spec, "hidden", &sizes, 2)?;
    let input_degrees = spec.usizes("input_degrees")?;
    let mut sorted = input_degrees.clone();
    sorted.sort_unstable();
    if sorted != (1..=dim).collect::<Vec<_>>() {
        return Err(spec.error("input_degrees", format!("not a permutation of 1..={dim}")));
    }
    let flat = spec.usizes("hidden_degrees")?;
    if flat.len() != widths.iter().sum::<usize>() {
        return Err(spec.error(
            "hidden_degrees",
            format!("{} degrees for hidden widths {widths:?}", flat.len()),
        ));
    }
    let top = dim.saturating_sub(1).max(1);
    if let Some(m) = flat.iter().find(|m| !(1..=top).contains(*m)) {
        return Err(spec.error("hidden_degrees", format!("{m} is outside 1..={top}")));
    }
    let mut hidden_degrees = Vec::with_capacity(widths.len());
    let mut start = 0;
    for &w in &widths {
        hidden_degrees.push(flat[start..start + w].to_vec());
        start += w;
    }
    let residual = spec.bool("residual")?;
    if residual && hidden_degrees.windows(2).any(|w| w[0] != w[1]) {
        return Err(spec.error(
            "residual",
            "residual blocks need equal degrees from layer to layer",
        ));
    }
    let context_dim = context_dim_from_spec(spec)?;
    // The placeholder values are overwritten by the stored ones, so any seed does.
    let mut rng = StdRng::seed_from_u64(0);
    Ok(Made::from_degrees(
        dim,
        params_per_dim,
        &input_degrees,
        hidden_degrees,
        residual,
        [Init::Glorot, Init::Zero],
        &mut rng,
    )
    .with_context(context_dim, &mut rng))
}
