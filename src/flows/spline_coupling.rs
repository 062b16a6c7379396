//! [`SplineCoupling`]: the coupling layer of the neural spline flows
//! (NSF-C), a coupling whose element-wise map is a
//! [`RationalQuadraticSpline`] with parameters from a network of the
//! conditioning half; and [`nsf_layers`], the stack the zoo's `nsf` builds.
//!
//! Derivation: [`derivations::splines`](crate::derivations::splines)
//! (docs/derivations/splines.md).

use super::context::{conditioner_input, context_dim_from_spec, with_context_dim};
use super::coupling::{coupling_net, hidden_widths, mask_from_spec, named_net, Mask};
use super::error::FlowError;
use super::flow::Flow;
use super::spec::LayerSpec;
use super::spline::RationalQuadraticSpline;
use crate::autodiff::{Param, Var};
use crate::nn::{Init, Mlp};
use crate::tensor::Element;
use rand::Rng;

/// Rational-quadratic spline coupling (NSF-C): the conditioning features
/// pass through, and each transformed feature is moved by its own monotonic
/// spline, whose 3K − 1 parameters a network computes from them.
///
/// Forward, z → x, with z split by the mask into (z₁, z₂):
/// x₁ = z₁,  x₂ = τ(z₂; θ(z₁)),  log|det ∂x/∂z| = Σᵢ log τ′(z₂ᵢ; θᵢ(z₁)).
/// Inverse: z₂ = τ⁻¹(x₂; θ(x₁)). τ is the spline g⁻¹ (the spline's
/// [`SplineDirection::DataToNoise`](super::SplineDirection), the default
/// and the paper's: the density's pass applies g) or g itself
/// (`NoiseToData`); g⁻¹ is the root of a quadratic per element. g is
/// a [`RationalQuadraticSpline`] on [−B, B] (identity outside), θ(z₁) =
/// NN(z₁) an [`Mlp`] with `|trans|·(3K − 1)` outputs (for each transformed
/// feature, contiguous: K widths, K heights, K − 1 derivatives), its last
/// layer zero, so the layer starts as the identity. The Jacobian is
/// triangular with diagonal τ′, as for the affine coupling.
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
/// Flows", NeurIPS 2019, arXiv:1906.04032 (§3.1-3.2, the coupling
/// transform).
///
/// # Derivation
/// [`derivations::splines`, "The coupling and the autoregressive layer"](crate::derivations::splines#the-coupling-and-the-autoregressive-layer)
/// (docs/derivations/splines.md).
///
/// # Examples
/// ```
/// use flowzoo::flows::{check::randomize_params, Flow, Mask, RationalQuadraticSpline, SplineCoupling};
/// use flowzoo::tensor::Tensor;
/// use rand::SeedableRng;
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let spline = RationalQuadraticSpline::new(8, 3.0);
/// let mut layer = SplineCoupling::<f64>::new(Mask::half(4, false), 16, spline, &mut rng);
/// randomize_params(&mut layer, 0.3, &mut rng);
/// let z = Tensor::randn(&[3, 4], &mut rng);
/// let (x, log_det) = layer.forward_tensor(&z);
/// let (z_back, _) = layer.inverse_tensor(&x);
/// assert_eq!(log_det.shape(), &[3]);
/// assert!(z.sub(&z_back).to_vec().iter().all(|d| d.abs() < 1e-12));
/// ```
pub struct SplineCoupling<T: Element> {
    /// Which features condition and which are transformed.
    pub mask: Mask,
    /// θ = net([z₁ | c]): `[batch, |cond| + context_dim] → [batch, |trans|·(3K − 1)]`.
    pub net: Mlp<T>,
    /// The spline's bins, bound and minima.
    pub spline: RationalQuadraticSpline,
    /// The width of the context c the network reads beside z₁ (0: none).
    pub context_dim: usize,
}

impl<T: Element> SplineCoupling<T> {
    /// A spline coupling over `mask` with a two-hidden-layer ReLU network of
    /// width `hidden`, its hidden layers [`Init::FanIn`] (PyTorch's default;
    /// why: [`derivations::splines`, "Initialisation"](crate::derivations::splines#initialisation)),
    /// its last layer zero (the layer starts as the identity).
    pub fn new<R: Rng + ?Sized>(
        mask: Mask,
        hidden: usize,
        spline: RationalQuadraticSpline,
        rng: &mut R,
    ) -> Self {
        SplineCoupling::conditional(mask, hidden, spline, 0, rng)
    }

    /// A conditional spline coupling: as [`SplineCoupling::new`], with a
    /// network that reads `[z₁ | c]`, so x₂ = τ(z₂; θ(z₁, c)). With
    /// `context_dim = 0` it is [`SplineCoupling::new`], draw for draw.
    ///
    /// # Derivation
    /// [`derivations::conditioning`, "Couplings"](crate::derivations::conditioning#couplings)
    /// (docs/derivations/conditioning.md).
    pub fn conditional<R: Rng + ?Sized>(
        mask: Mask,
        hidden: usize,
        spline: RationalQuadraticSpline,
        context_dim: usize,
        rng: &mut R,
    ) -> Self {
        let (n1, n2) = (mask.cond.len(), mask.trans.len());
        let out = n2 * spline.params_per_element();
        let net = named_net(&[n1 + context_dim, hidden, hidden, out], Init::FanIn, rng);
        SplineCoupling {
            mask,
            net,
            spline,
            context_dim,
        }
    }

    /// The layer a spec of kind `SplineCoupling` describes (fields `dim`,
    /// `cond`, `trans`, `hidden`, `context_dim` for a conditional layer,
    /// and the spline's, see
    /// [`RationalQuadraticSpline::write_spec`]), with placeholder
    /// parameters for the loader to fill.
    ///
    /// # Errors
    /// [`FlowError::BadSpec`] naming the field: a mask that is not a
    /// partition of 0..dim, a width that is not a size, a network too large
    /// to load, a spline field out of range.
    pub fn from_spec(spec: &LayerSpec) -> Result<Self, FlowError> {
        let mask = mask_from_spec(spec)?;
        let spline = RationalQuadraticSpline::from_spec(spec)?;
        let out = mask
            .trans
            .len()
            .checked_mul(spline.params_per_element())
            .ok_or_else(|| spec.error("bins", "too many outputs"))?;
        let context_dim = context_dim_from_spec(spec)?;
        // Placeholder values; any seed does.
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(0);
        let net = coupling_net(spec, &mask, context_dim, out, &mut rng)?;
        Ok(SplineCoupling {
            mask,
            net,
            spline,
            context_dim,
        })
    }

    fn check(&self, v: &Var<'_, T>) {
        assert!(
            v.shape().len() == 2 && v.shape()[1] == self.mask.dim,
            "SplineCoupling: expected [batch, {}], got {:?}",
            self.mask.dim,
            v.shape()
        );
    }

    /// Applies τ (or τ⁻¹) to the transformed half of `v`, its parameters
    /// from the conditioning half and the context.
    fn couple<'t>(
        &self,
        v: &Var<'t, T>,
        c: Option<&Var<'t, T>>,
        inverse: bool,
    ) -> (Var<'t, T>, Var<'t, T>) {
        self.check(v);
        let (v1, v2) = (
            v.index_select(1, &self.mask.cond),
            v.index_select(1, &self.mask.trans),
        );
        let (batch, n2) = (v.shape()[0], self.mask.trans.len());
        // θ = NN([v₁ | c]), [batch, n2·(3K − 1)] → [batch, n2, 3K − 1]
        let input = conditioner_input("SplineCoupling", &v1, c, self.context_dim);
        let theta =
            self.net
                .forward(&input)
                .reshape(&[batch, n2, self.spline.params_per_element()]);
        let (w, h, d) = self.spline.split_params(&theta);
        let (out2, log_det) = self.spline.layer_pass(&v2, &w, &h, &d, inverse);
        // log|det| = Σᵢ log τ′ (triangular Jacobian, diagonal τ′), or its negative
        (self.mask.assemble(&v1, &out2), log_det.sum_axes(&[1]))
    }
}

impl<T: Element> Flow<T> for SplineCoupling<T> {
    fn name(&self) -> String {
        "SplineCoupling".into()
    }

    fn per_sample(&self) -> bool {
        true
    }

    fn context_dim(&self) -> usize {
        self.context_dim
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
        // x₂ = τ(z₂; θ(z₁, c)),  log|det ∂x/∂z| = Σᵢ log τ′(z₂ᵢ)
        self.couple(z, c, false)
    }

    fn inverse_with_context<'t>(
        &self,
        x: &Var<'t, T>,
        c: Option<&Var<'t, T>>,
    ) -> (Var<'t, T>, Var<'t, T>) {
        // z₂ = τ⁻¹(x₂; θ(x₁, c)),  log|det ∂z/∂x| = −Σᵢ log τ′(z₂ᵢ)
        self.couple(x, c, true)
    }

    fn to_spec(&self) -> Option<LayerSpec> {
        let spec = LayerSpec::new("SplineCoupling")
            .with("dim", self.mask.dim)
            .with("cond", &self.mask.cond[..])
            .with("trans", &self.mask.trans[..])
            .with("hidden", hidden_widths(&self.net));
        Some(with_context_dim(
            self.spline.write_spec(spec),
            self.context_dim,
        ))
    }

    fn params(&self) -> Vec<&Param<T>> {
        self.net.params()
    }

    fn params_mut(&mut self) -> Vec<&mut Param<T>> {
        self.net.params_mut()
    }
}

/// The layers of an NSF-C stack: `layers` spline couplings over contiguous
/// halves, the halves swapping roles from one layer to the next (as
/// [`realnvp_layers`](super::model::realnvp_layers)), each with an MLP of
/// two hidden layers of width `hidden` and the spline `spline`.
///
/// # Panics
/// If `dim < 2`.
///
/// # Source
/// Durkan et al., arXiv:1906.04032, §3.2 and §5.1.
pub fn nsf_layers<T: Element, R: Rng + ?Sized>(
    dim: usize,
    layers: usize,
    hidden: usize,
    spline: RationalQuadraticSpline,
    rng: &mut R,
) -> Vec<Box<dyn Flow<T>>> {
    conditional_nsf_layers(dim, layers, hidden, spline, 0, rng)
}

/// [`nsf_layers`] of conditional spline couplings
/// ([`SplineCoupling::conditional`]), each network reading a context of
/// width `context_dim`; with `context_dim = 0`, [`nsf_layers`], draw for draw.
///
/// # Panics
/// If `dim < 2`.
pub fn conditional_nsf_layers<T: Element, R: Rng + ?Sized>(
    dim: usize,
    layers: usize,
    hidden: usize,
    spline: RationalQuadraticSpline,
    context_dim: usize,
    rng: &mut R,
) -> Vec<Box<dyn Flow<T>>> {
    (0..layers)
        .map(|i| {
            let mask = Mask::half(dim, i % 2 == 1);
            Box::new(SplineCoupling::conditional(
                mask,
                hidden,
                spline,
                context_dim,
                rng,
            )) as Box<dyn Flow<T>>
        })
        .collect()
}
