//! [`Iaf`], the inverse autoregressive flow: [`Maf`](super::Maf) read
//! backwards, with the same conditioner (a [`Made`] and a [`Transform`]),
//! and [`iaf_layers`], its stack. The shared machinery lives in
//! [`autoregressive`](super::autoregressive).
//!
//! Derivation: [`derivations::iaf`](crate::derivations::iaf) (docs/derivations/iaf.md).

#[cfg(doc)]
use super::autoregressive::GATE_INIT_BIAS;
use super::autoregressive::{
    alternating_order, conditioner_from_spec, scale_and_shift, unshift_and_unscale, Conditioner,
    SequentialMethod, Transform,
};
use super::error::FlowError;
use super::flow::Flow;
use super::spec::LayerSpec;
#[cfg(doc)]
use super::spec::MAX_SIZE;
use crate::autodiff::{Param, Var};
use crate::nn::made::{Made, Order};
use crate::tensor::Element;
use rand::Rng;

/// Inverse autoregressive flow layer: the scale and shift of feature i are
/// functions of the *latent-side* features before it,
///
/// forward (z → x, one pass): x = z ⊙ exp(ℓ(z)) + b(z),
/// inverse (x → z, D sequential steps): zᵢ = (xᵢ − bᵢ(z_{<i})) · exp(−ℓᵢ(z_{<i})),
/// log|det ∂x/∂z| = Σᵢ ℓᵢ(z),
///
/// with (ℓ, b) from a [`Made`] by a [`Transform`]: [`Transform::Affine`] or
/// the paper's gated update [`Transform::Gated`] (x = σ ⊙ z + (1 − σ) ⊙ m).
/// Sampling and the log-density *of its own samples* take one pass each,
/// which is what a variational posterior or a distilled sampler needs.
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
/// D. P. Kingma, T. Salimans, R. Jozefowicz, X. Chen, I. Sutskever, M. Welling,
/// "Improved Variational Inference with Inverse Autoregressive Flow",
/// NeurIPS 2016, arXiv:1606.04934 (§4, eq. 10-15).
///
/// # Derivation
/// [`derivations::iaf`, "The map"](crate::derivations::iaf#the-map) and
/// ["The gated update"](crate::derivations::iaf#the-gated-update)
/// (docs/derivations/iaf.md): MAF read backwards, and the gate's log-det.
///
/// # Examples
/// ```
/// use flowzoo::flows::{Flow, Iaf, Transform};
/// use flowzoo::flows::check::randomize_params;
/// use flowzoo::nn::made::Order;
/// use flowzoo::tensor::Tensor;
/// use rand::SeedableRng;
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let mut iaf = Iaf::<f64>::new(3, &[8], Order::Reversed, Transform::Gated, &mut rng);
/// randomize_params(&mut iaf, 0.3, &mut rng);
/// let z = Tensor::randn(&[2, 3], &mut rng);
/// let (x, _) = iaf.forward_tensor(&z); // one pass
/// let (z_back, _) = iaf.inverse_tensor(&x); // three sequential steps
/// assert!(z.sub(&z_back).to_vec().iter().all(|d| d.abs() < 1e-12));
/// ```
#[derive(Clone, Debug)]
pub struct Iaf<T: Element> {
    conditioner: Conditioner<T>,
    /// How `inverse` is solved when nothing is recorded.
    pub method: SequentialMethod,
}

impl<T: Element> Iaf<T> {
    /// An IAF layer on `dim` features with a MADE of hidden widths `hidden`
    /// (ReLU, cyclic hidden degrees) in `order`, and the given transform.
    ///
    /// # Panics
    /// If `dim` or a hidden width is 0.
    pub fn new<R: Rng + ?Sized>(
        dim: usize,
        hidden: &[usize],
        order: Order,
        transform: Transform,
        rng: &mut R,
    ) -> Self {
        Iaf::from_made(Made::new(dim, hidden, 2, order, rng), transform)
    }

    /// A conditional IAF layer: as [`Iaf::new`], its MADE also reading a
    /// context c of width `context_dim` in its first layer
    /// ([`Made::with_context`]), so x = z ⊙ exp(ℓ(z, c)) + b(z, c) with
    /// (ℓᵢ, bᵢ) functions of z_{<i} and of all of c: sampling and the
    /// log-density of its own samples stay one pass for every c, and
    /// `inverse` one pass of work in D steps, as without a context.
    ///
    /// # Panics
    /// If `dim` or a hidden width is 0.
    ///
    /// # Source
    /// Kingma et al., arXiv:1606.04934, §4 and §5 (the IAF posterior of a
    /// VAE reads the encoder's context h).
    ///
    /// # Derivation
    /// [`derivations::conditioning`, "MADE"](crate::derivations::conditioning#made)
    /// (docs/derivations/conditioning.md).
    pub fn conditional<R: Rng + ?Sized>(
        dim: usize,
        hidden: &[usize],
        order: Order,
        transform: Transform,
        context_dim: usize,
        rng: &mut R,
    ) -> Self {
        let made = Made::new(dim, hidden, 2, order, rng).with_context(context_dim, rng);
        Iaf::from_made(made, transform)
    }

    /// An IAF layer on a given MADE (2 outputs per feature) and transform.
    /// With [`Transform::Gated`], the gate biases are set to [`GATE_INIT_BIAS`].
    ///
    /// # Panics
    /// If the MADE does not give 2 outputs per feature.
    pub fn from_made(made: Made<T>, transform: Transform) -> Self {
        Iaf {
            conditioner: Conditioner::new(made, transform),
            method: SequentialMethod::default(),
        }
    }

    /// The layer a spec of kind `Iaf` describes (what [`Flow::to_spec`]
    /// wrote), with placeholder parameters to be filled by name.
    ///
    /// # Errors
    /// [`FlowError::BadSpec`] naming the field, for a missing, mistyped or
    /// invalid field: a size outside 1..=[`MAX_SIZE`], input degrees that
    /// are not a permutation of 1..=dim, hidden degrees that do not fit the
    /// widths, a network too large to allocate, an unknown transform.
    pub fn from_spec(spec: &LayerSpec) -> Result<Self, FlowError> {
        Ok(Iaf {
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

impl<T: Element> Flow<T> for Iaf<T> {
    fn name(&self) -> String {
        "Iaf".into()
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
        self.conditioner.check("Iaf", z);
        let (l, b) = self.conditioner.log_scale_and_shift(z, c);
        // x = z ⊙ exp(ℓ(z, c)) + b(z, c),  log|det ∂x/∂z| = Σᵢ ℓᵢ
        (scale_and_shift(z, &l, &b), l.sum_axes(&[1]))
    }

    fn inverse_with_context<'t>(
        &self,
        x: &Var<'t, T>,
        c: Option<&Var<'t, T>>,
    ) -> (Var<'t, T>, Var<'t, T>) {
        self.conditioner.check("Iaf", x);
        // zᵢ = (xᵢ − bᵢ(z_{<i}, c)) · exp(−ℓᵢ(z_{<i}, c)), solved for z.
        let (z, l) = self
            .conditioner
            .solve(x, c, self.method, unshift_and_unscale);
        (z, l.sum_axes(&[1]).neg())
    }

    fn to_spec(&self) -> Option<LayerSpec> {
        Some(self.conditioner.spec("Iaf"))
    }

    fn params(&self) -> Vec<&Param<T>> {
        self.conditioner.made.params()
    }

    fn params_mut(&mut self) -> Vec<&mut Param<T>> {
        self.conditioner.made.params_mut()
    }
}

/// The layers of an IAF stack: `layers` IAF layers with MADEs of hidden
/// widths `hidden` and the given transform, orders alternating natural and
/// reversed.
///
/// # Source
/// Kingma et al., arXiv:1606.04934, §4 ("reverse the ordering after each step").
pub fn iaf_layers<T: Element, R: Rng + ?Sized>(
    dim: usize,
    layers: usize,
    hidden: &[usize],
    transform: Transform,
    rng: &mut R,
) -> Vec<Box<dyn Flow<T>>> {
    conditional_iaf_layers(dim, layers, hidden, transform, 0, rng)
}

/// [`iaf_layers`] of conditional IAF layers ([`Iaf::conditional`]), each
/// MADE reading a context of width `context_dim`; with `context_dim = 0`,
/// [`iaf_layers`], draw for draw.
pub fn conditional_iaf_layers<T: Element, R: Rng + ?Sized>(
    dim: usize,
    layers: usize,
    hidden: &[usize],
    transform: Transform,
    context_dim: usize,
    rng: &mut R,
) -> Vec<Box<dyn Flow<T>>> {
    (0..layers)
        .map(|i| {
            let order = alternating_order(i);
            let layer = Iaf::conditional(dim, hidden, order, transform, context_dim, rng);
            Box::new(layer) as Box<dyn Flow<T>>
        })
        .collect()
}
