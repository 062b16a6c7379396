//! [`SplineMaf`]: the autoregressive layer of the neural spline flows
//! (NSF-AR), an MAF whose element-wise map is a
//! [`RationalQuadraticSpline`] with parameters from a MADE; and
//! [`nsf_ar_layers`], the stack the zoo's `nsf-ar` builds.
//!
//! Derivation: [`derivations::splines`](crate::derivations::splines)
//! (docs/derivations/splines.md).

use super::autoregressive::{alternating_order, made_from_spec, made_spec, SequentialMethod};
use super::error::FlowError;
use super::flow::Flow;
use super::spec::LayerSpec;
use super::spline::RationalQuadraticSpline;
use crate::autodiff::{Param, Tape, Var};
use crate::nn::made::{Made, MadeOptions, Order};
use crate::nn::Init;
use crate::tensor::{Element, Tensor};
use rand::Rng;

/// Autoregressive rational-quadratic spline layer (NSF-AR): feature i is
/// moved by its own monotonic spline, whose 3K − 1 parameters a [`Made`]
/// computes from the *data-side* features before it, as in [`Maf`](super::Maf):
///
/// forward (z → x, D sequential steps): xᵢ = τ(zᵢ; θᵢ(x_{<i})),
/// inverse (x → z, one pass): zᵢ = τ⁻¹(xᵢ; θᵢ(x_{<i})),
/// log|det ∂x/∂z| = Σᵢ log τ′(zᵢ; θᵢ(x_{<i})),
///
/// where τ is g⁻¹ for the spline's
/// [`SplineDirection::DataToNoise`](super::SplineDirection) (the default
/// and the paper's: the one-pass density applies g, as in MAF-type NSF) or
/// g for `NoiseToData`. g is a [`RationalQuadraticSpline`] on [−B, B]
/// (identity outside); the
/// MADE's output layer starts at zero, so the layer starts as the identity.
/// "Before" is the MADE's order. The Jacobian is triangular in that order
/// with diagonal τ′.
///
/// # Shapes
/// `forward` and `inverse` take `[batch, dim]` and return `[batch, dim]`
/// and a per-sample log-det `[batch]`.
///
/// # Units
/// Log-dets in nats.
///
/// # Panics
/// If the input is not `[_, dim]`; the message names the layer and both
/// shapes.
///
/// # Source
/// C. Durkan, A. Bekasov, I. Murray, G. Papamakarios, "Neural Spline
/// Flows", NeurIPS 2019, arXiv:1906.04032 (§3.2, the autoregressive
/// transform); the MADE of Germain et al., arXiv:1502.03509.
///
/// # Derivation
/// [`derivations::splines`, "The coupling and the autoregressive layer"](crate::derivations::splines#the-coupling-and-the-autoregressive-layer)
/// (docs/derivations/splines.md).
///
/// # Examples
/// ```
/// use flowzoo::flows::{check::randomize_params, Flow, RationalQuadraticSpline, SplineMaf};
/// use flowzoo::nn::made::Order;
/// use flowzoo::tensor::Tensor;
/// use rand::SeedableRng;
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let spline = RationalQuadraticSpline::new(6, 3.0);
/// let mut layer = SplineMaf::<f64>::new(3, &[16, 16], Order::Natural, spline, &mut rng);
/// randomize_params(&mut layer, 0.3, &mut rng);
/// let x = Tensor::randn(&[2, 3], &mut rng);
/// let (z, _) = layer.inverse_tensor(&x); // one pass
/// let (x_back, _) = layer.forward_tensor(&z); // three sequential steps
/// assert!(x.sub(&x_back).to_vec().iter().all(|d| d.abs() < 1e-12));
/// ```
#[derive(Clone, Debug)]
pub struct SplineMaf<T: Element> {
    made: Made<T>,
    /// The spline's bins, bound and minima.
    pub spline: RationalQuadraticSpline,
    /// How `forward` is solved when nothing is recorded.
    pub method: SequentialMethod,
}

impl<T: Element> SplineMaf<T> {
    /// A spline MAF layer on `dim` features with a MADE of hidden widths
    /// `hidden` (ReLU, cyclic hidden degrees, hidden layers [`Init::FanIn`],
    /// output layer zero) in `order`. Why fan-in and not Glorot:
    /// [`derivations::splines`, "Initialisation"](crate::derivations::splines#initialisation).
    ///
    ///
    /// # Panics
    /// If `dim` or a hidden width is 0.
    pub fn new<R: Rng + ?Sized>(
        dim: usize,
        hidden: &[usize],
        order: Order,
        spline: RationalQuadraticSpline,
        rng: &mut R,
    ) -> Self {
        SplineMaf::conditional(dim, hidden, order, spline, 0, rng)
    }

    /// A conditional spline MAF layer: as [`SplineMaf::new`], its MADE also
    /// reading a context of width `context_dim` ([`Made::with_context`]),
    /// so xᵢ = τ(zᵢ; θᵢ(x_{<i}, c)). The sequential direction takes one
    /// pass of work, as without a context.
    ///
    /// # Derivation
    /// [`derivations::conditioning`, "MADE"](crate::derivations::conditioning#made)
    /// (docs/derivations/conditioning.md).
    pub fn conditional<R: Rng + ?Sized>(
        dim: usize,
        hidden: &[usize],
        order: Order,
        spline: RationalQuadraticSpline,
        context_dim: usize,
        rng: &mut R,
    ) -> Self {
        let options = MadeOptions {
            hidden_init: Init::FanIn,
            ..MadeOptions::default()
        };
        let degrees = order.degrees(dim);
        let made = Made::with_options(
            dim,
            hidden,
            spline.params_per_element(),
            &degrees,
            options,
            rng,
        )
        .with_context(context_dim, rng);
        SplineMaf {
            made,
            spline,
            method: SequentialMethod::default(),
        }
    }

    /// The layer a spec of kind `SplineMaf` describes (the MADE's fields as
    /// [`Maf::from_spec`](super::Maf::from_spec) reads them, and the
    /// spline's), with placeholder parameters to be filled by name.
    ///
    /// # Errors
    /// [`FlowError::BadSpec`] naming the field, as
    /// [`Maf::from_spec`](super::Maf::from_spec) and
    /// [`RationalQuadraticSpline::from_spec`].
    pub fn from_spec(spec: &LayerSpec) -> Result<Self, FlowError> {
        let spline = RationalQuadraticSpline::from_spec(spec)?;
        Ok(SplineMaf {
            made: made_from_spec(spec, spline.params_per_element())?,
            spline,
            method: SequentialMethod::default(),
        })
    }

    /// The conditioner network.
    pub fn made(&self) -> &Made<T> {
        &self.made
    }

    fn check(&self, v: &Var<'_, T>) {
        assert!(
            v.shape().len() == 2 && v.shape()[1] == self.made.dim,
            "SplineMaf: expected [batch, {}], got {:?}",
            self.made.dim,
            v.shape()
        );
    }

    /// τ (or τ⁻¹) of `v` `[batch, n]` with the MADE's outputs `out`
    /// `[batch, (3K − 1)·n]` (output j of feature i in column j·n + i), and
    /// the per-sample sum of the log-derivatives.
    fn spline_of<'t>(
        &self,
        v: &Var<'t, T>,
        out: &Var<'t, T>,
        inverse: bool,
    ) -> (Var<'t, T>, Var<'t, T>) {
        let (batch, n) = (v.shape()[0], v.shape()[1]);
        let per = self.spline.params_per_element();
        // [batch, P·n] → [batch, P, n] → [batch, n, P]
        let theta = out.reshape(&[batch, per, n]).permute(&[0, 2, 1]);
        let (w, h, d) = self.spline.split_params(&theta);
        let (u, log_det) = self.spline.layer_pass(v, &w, &h, &d, inverse);
        (u, log_det.sum_axes(&[1]))
    }
}

impl<T: Element> Flow<T> for SplineMaf<T> {
    fn name(&self) -> String {
        "SplineMaf".into()
    }

    fn per_sample(&self) -> bool {
        true
    }

    fn context_dim(&self) -> usize {
        self.made.context_dim()
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
        self.check(z);
        let (batch, dim) = (z.shape()[0], self.made.dim);
        if z.tape().is_recording() || self.method == SequentialMethod::FullPasses {
            // xᵢ = τ(zᵢ; θᵢ(x_{<i})): pass k leaves the first k features in
            // the order exact, so after D passes all are, and the last
            // pass's log-derivatives were computed from the exact prefix.
            let mut x = z.constant(Tensor::zeros(&[batch, dim]));
            let mut log_det = None;
            for _ in 0..dim {
                let out = self.made.forward_with_context(&x, c);
                let (next, ld) = self.spline_of(z, &out, false);
                x = next;
                log_det = Some(ld);
            }
            return (x, log_det.expect("dim ≥ 1: at least one pass"));
        }
        // Each hidden unit computed once, feature by feature in degree order.
        let z_value = z.value();
        let context = c.map(|c| c.value().clone());
        let (_, out) = self.made.solve_autoregressive_with_context(
            batch,
            context.as_ref(),
            |feature, rows, raw| {
                let tape = Tape::no_grad();
                let column = z_value
                    .narrow(0, rows.start, rows.len())
                    .narrow(1, feature, 1);
                let (x, _) =
                    self.spline_of(&tape.constant(column), &tape.constant(raw.clone()), false);
                x.into_value()
            },
        );
        // With the network's outputs at the solution, one parallel pass of
        // the spline gives x and its log-det together.
        let tape = Tape::no_grad();
        let (x, log_det) =
            self.spline_of(&tape.constant(z_value.clone()), &tape.constant(out), false);
        (z.constant(x.into_value()), z.constant(log_det.into_value()))
    }

    fn inverse_with_context<'t>(
        &self,
        x: &Var<'t, T>,
        c: Option<&Var<'t, T>>,
    ) -> (Var<'t, T>, Var<'t, T>) {
        self.check(x);
        // zᵢ = τ⁻¹(xᵢ; θᵢ(x_{<i}, c)),  log|det ∂z/∂x| = −Σᵢ log τ′(zᵢ)
        self.spline_of(x, &self.made.forward_with_context(x, c), true)
    }

    fn to_spec(&self) -> Option<LayerSpec> {
        Some(self.spline.write_spec(made_spec(&self.made, "SplineMaf")))
    }

    fn params(&self) -> Vec<&Param<T>> {
        self.made.params()
    }

    fn params_mut(&mut self) -> Vec<&mut Param<T>> {
        self.made.params_mut()
    }
}

/// The layers of an NSF-AR stack: `layers` [`SplineMaf`] layers with MADEs
/// of hidden widths `hidden` and the spline `spline`, the order natural in
/// even layers and reversed in odd ones (as [`maf_layers`](super::autoregressive::maf_layers)).
///
/// # Source
/// Durkan et al., arXiv:1906.04032, §3.2 and §5.
pub fn nsf_ar_layers<T: Element, R: Rng + ?Sized>(
    dim: usize,
    layers: usize,
    hidden: &[usize],
    spline: RationalQuadraticSpline,
    rng: &mut R,
) -> Vec<Box<dyn Flow<T>>> {
    conditional_nsf_ar_layers(dim, layers, hidden, spline, 0, rng)
}

/// [`nsf_ar_layers`] of conditional spline MAF layers
/// ([`SplineMaf::conditional`]), each MADE reading a context of width
/// `context_dim`; with `context_dim = 0`, [`nsf_ar_layers`], draw for draw.
pub fn conditional_nsf_ar_layers<T: Element, R: Rng + ?Sized>(
    dim: usize,
    layers: usize,
    hidden: &[usize],
    spline: RationalQuadraticSpline,
    context_dim: usize,
    rng: &mut R,
) -> Vec<Box<dyn Flow<T>>> {
    (0..layers)
        .map(|i| {
            Box::new(SplineMaf::conditional(
                dim,
                hidden,
                alternating_order(i),
                spline,
                context_dim,
                rng,
            )) as Box<dyn Flow<T>>
        })
        .collect()
}
