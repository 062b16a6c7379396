//! [`ImageSplineCoupling`]: the rational-quadratic spline coupling (NSF-C)
//! on images `[batch, C, H, W]`, with the masks of
//! [`ImageCoupling`](super::ImageCoupling) ([`ImageMask`]) and its
//! convolutional ResNet, the element-wise map a
//! [`RationalQuadraticSpline`] as in [`SplineCoupling`](super::SplineCoupling).
//!
//! Derivation: [`derivations::splines`, "Image spline couplings"](crate::derivations::splines#image-spline-couplings)
//! (docs/derivations/splines.md).

use super::context::{context_dim_from_spec, context_shift, context_weight, with_context_dim};
use super::error::FlowError;
use super::flow::Flow;
use super::image_coupling::{resnet_from_spec, ImageMask};
use super::spec::{self, LayerSpec};
use super::spline::RationalQuadraticSpline;
use crate::autodiff::{Param, Var};
use crate::nn::conv::ConvResNet;
use crate::tensor::{Element, Tensor};
use rand::Rng;

/// A rational-quadratic spline coupling on images: [`ImageMask`] chooses
/// the conditioning elements x₁ = z₁, and a [`ConvResNet`] computes from
/// them, for every transformed element, the 3K − 1 parameters θ of its own
/// monotonic spline g:
///
/// x₂ = τ(z₂; θ(z₁)),   log|det ∂x/∂z| = Σ log τ′(z₂; θ(z₁))  (over the
/// transformed channels and pixels); inverse z₂ = τ⁻¹(x₂; θ(x₁)), where
/// τ = g⁻¹ for the spline's
/// [`SplineDirection::DataToNoise`](super::SplineDirection) (the default:
/// the density's pass applies g) and τ = g for `NoiseToData`; g⁻¹ is the
/// root of a quadratic per element.
///
/// g is a [`RationalQuadraticSpline`] on [−B, B], the identity outside
/// (log g′ = 0 there), applied element-wise exactly as in
/// [`SplineCoupling`](super::SplineCoupling). The network outputs
/// n·(3K − 1) channels for n transformed channels: channels
/// i·(3K − 1)..(i + 1)·(3K − 1) are, at every pixel, the K widths, K
/// heights and K − 1 derivatives of transformed channel i's spline at that
/// pixel. With a checkerboard mask b the network sees b ⊙ z (`channels`
/// in, `channels`·(3K − 1) out), every element is passed through the
/// spline, and the conditioning elements (b = 1) keep their input and
/// contribute 0 to the log-det. With a channel mask the network maps the
/// conditioning channels to (transformed channels)·(3K − 1). The network's
/// last convolution starts at zero, so θ = 0: uniform bins, unit
/// derivatives, and the layer starts as the identity.
///
/// A conditional layer ([`ImageSplineCoupling::conditional`]) reads a
/// context c `[batch, context_dim]` as [`ImageCoupling`](super::ImageCoupling)
/// does: c·W_c (`[batch, hidden]`) is added to every pixel of the network's
/// first convolution's output, so θ = θ(z₁, c).
///
/// Why a type of its own and not an option of `ImageCoupling`: the affine
/// layer's public fields (`scale`, `scale_kind`), its spec and its
/// checkpoints' parameter names describe the affine map; the spline layer
/// has none of them and has the spline's fields instead.
///
/// # Shapes
/// `[batch, channels, height, width]` in and out; log-det `[batch]`.
///
/// # Units
/// Log-dets in nats.
///
/// # Panics
/// `new` panics for a channel mask on fewer than 2 channels; `forward` and
/// `inverse` panic if the input is not `[_, channels, _, _]`, naming the
/// layer and both shapes.
///
/// # Source
/// C. Durkan, A. Bekasov, I. Murray, G. Papamakarios, "Neural Spline
/// Flows", arXiv:1906.04032, §3.1-3.2 (the spline and the coupling
/// transform; §5.2 uses it in RealNVP's multi-scale image architecture);
/// Dinh, Sohl-Dickstein, Bengio, arXiv:1605.08803, §3.4-3.6 (the masks).
///
/// # Derivation
/// [`derivations::splines`, "Image spline couplings"](crate::derivations::splines#image-spline-couplings)
/// (docs/derivations/splines.md): why the log-det is the sum of log g′ over
/// the transformed elements only.
///
/// # Examples
/// ```
/// use flowzoo::flows::{check::randomize_params, Flow, ImageMask, ImageSplineCoupling, RationalQuadraticSpline};
/// use flowzoo::tensor::Tensor;
/// use rand::SeedableRng;
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let mask = ImageMask::Checkerboard { parity: 0 };
/// let spline = RationalQuadraticSpline::new(4, 3.0);
/// let mut layer = ImageSplineCoupling::<f64>::new(2, mask, 8, 1, spline, &mut rng);
/// randomize_params(&mut layer, 0.3, &mut rng);
/// let z = Tensor::randn(&[3, 2, 4, 4], &mut rng);
/// let (x, log_det) = layer.forward_tensor(&z);
/// let (z_back, _) = layer.inverse_tensor(&x);
/// assert_eq!((x.shape(), log_det.shape()), (&[3, 2, 4, 4][..], &[3][..]));
/// assert!(z.sub(&z_back).to_vec().iter().all(|d| d.abs() < 1e-10));
/// ```
pub struct ImageSplineCoupling<T: Element> {
    /// Which elements condition.
    pub mask: ImageMask,
    /// The image's channel count C.
    pub channels: usize,
    /// θ = net(z₁): (3K − 1) channels per transformed channel.
    pub net: ConvResNet<T>,
    /// The spline's bins, bound and minima.
    pub spline: RationalQuadraticSpline,
    /// W_c `[context_dim, hidden]`, the projection of the context added to
    /// the network's first convolution (`None`: the layer reads no context).
    pub context: Option<Param<T>>,
}

impl<T: Element> ImageSplineCoupling<T> {
    /// A spline coupling on images of `channels` channels with mask `mask`,
    /// its network a [`ConvResNet`] of `hidden` channels and `blocks`
    /// residual blocks, its last convolution zero (the layer starts as the
    /// identity).
    ///
    /// # Panics
    /// For a channel mask on fewer than 2 channels.
    pub fn new<R: Rng + ?Sized>(
        channels: usize,
        mask: ImageMask,
        hidden: usize,
        blocks: usize,
        spline: RationalQuadraticSpline,
        rng: &mut R,
    ) -> Self {
        ImageSplineCoupling::conditional(channels, mask, hidden, blocks, spline, 0, rng)
    }

    /// A conditional spline coupling: as [`ImageSplineCoupling::new`], its
    /// network also reading a context c of width `context_dim` through W_c
    /// `[context_dim, hidden]` (Glorot, drawn after the network), added to
    /// every pixel of the first convolution's output. With
    /// `context_dim = 0` it is [`ImageSplineCoupling::new`], draw for draw.
    ///
    /// # Panics
    /// For a channel mask on fewer than 2 channels.
    ///
    /// # Derivation
    /// [`derivations::conditioning`, "Image couplings"](crate::derivations::conditioning#image-couplings)
    /// (docs/derivations/conditioning.md).
    pub fn conditional<R: Rng + ?Sized>(
        channels: usize,
        mask: ImageMask,
        hidden: usize,
        blocks: usize,
        spline: RationalQuadraticSpline,
        context_dim: usize,
        rng: &mut R,
    ) -> Self {
        let (n_in, n_trans) = mask.sizes(channels, "ImageSplineCoupling");
        let n_out = n_trans * spline.params_per_element();
        let mut net = ConvResNet::new(n_in, hidden, n_out, blocks, rng);
        for p in net.params_mut() {
            p.prefix("net");
        }
        ImageSplineCoupling {
            mask,
            channels,
            net,
            spline,
            context: context_weight(context_dim, hidden, rng),
        }
    }

    /// The layer a spec of kind `ImageSplineCoupling` describes, with
    /// placeholder parameters for the loader to fill.
    ///
    /// # Errors
    /// [`FlowError::BadSpec`] naming the field: `channels` or `hidden` not a
    /// size, `mask` not `checkerboard` or `channel`, `parity` not 0 or 1, a
    /// channel mask on fewer than 2 channels, `blocks` over
    /// [`spec::MAX_BLOCKS`], a spline field out of range (see
    /// [`RationalQuadraticSpline::from_spec`]), `context_dim` not a size, or
    /// a network over [`spec::MAX_LAYER_ELEMENTS`] scalars.
    pub fn from_spec(spec: &LayerSpec) -> Result<Self, FlowError> {
        let channels = spec::size(spec, "channels")?;
        let (mask, n_in, n_trans) = ImageMask::from_spec(spec, channels)?;
        let (hidden, blocks) = resnet_from_spec(spec)?;
        let spline = RationalQuadraticSpline::from_spec(spec)?;
        let context_dim = context_dim_from_spec(spec)?;
        let elements = n_trans
            .checked_mul(spline.params_per_element())
            .and_then(|n_out| ConvResNet::<T>::elements(n_in, hidden, n_out, blocks))
            .and_then(|n| n.checked_add(context_dim.checked_mul(hidden)?)); // and W_c
        spec::check_elements(spec, "hidden", elements)?;
        // Placeholder values; any seed does.
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(0);
        Ok(ImageSplineCoupling::conditional(
            channels,
            mask,
            hidden,
            blocks,
            spline,
            context_dim,
            &mut rng,
        ))
    }

    /// τ (or τ⁻¹) of `v2` `[batch, n, H, W]`, its parameters from the
    /// network's output `theta` `[batch, n·(3K − 1), H, W]`: the output and
    /// the element-wise log-derivative, both `[batch, n, H, W]`.
    fn spline_of<'t>(
        &self,
        v2: &Var<'t, T>,
        theta: &Var<'t, T>,
        inverse: bool,
    ) -> (Var<'t, T>, Var<'t, T>) {
        let &[batch, n, height, width] = v2.shape() else {
            unreachable!("checked by the caller")
        };
        let p = self.spline.params_per_element();
        // [batch, n·P, H, W] → [batch, n, P, H, W] → [batch, n, H, W, P]
        let theta = theta
            .reshape(&[batch, n, p, height, width])
            .permute(&[0, 1, 3, 4, 2]);
        let (w, h, d) = self.spline.split_params(&theta);
        self.spline.layer_pass(v2, &w, &h, &d, inverse)
    }

    /// The coupling in either direction: forward τ to `v` = z, or `inverse`
    /// τ⁻¹ to `v` = x, given the context `c`. Returns the output and the
    /// log-det `[batch]` of the map applied.
    fn couple<'t>(
        &self,
        v: &Var<'t, T>,
        c: Option<&Var<'t, T>>,
        inverse: bool,
    ) -> (Var<'t, T>, Var<'t, T>) {
        assert!(
            v.shape().len() == 4 && v.shape()[1] == self.channels,
            "ImageSplineCoupling: expected [batch, {}, height, width], got {:?}",
            self.channels,
            v.shape()
        );
        let (height, width) = (v.shape()[2], v.shape()[3]);
        // c·W_c, added to every pixel of the first convolution's output
        let shift = context_shift(
            "ImageSplineCoupling",
            self.context.as_ref(),
            v.shape()[0],
            c,
        );
        let net = |input: &Var<'t, T>| self.net.forward_shifted(input, shift.as_ref());
        let (out, log_g) = match self.mask {
            ImageMask::Checkerboard { parity } => {
                let b: Tensor<T> = ImageMask::checkerboard(parity, height, width);
                let theta = net(&v.mul(&v.constant(b.clone())));
                let (g, log_g) = self.spline_of(v, &theta, inverse);
                // where b = 1 the element conditions: its input passes
                // through exactly and its log τ′ is dropped
                let not_b = b.map(|x| T::ONE - x);
                let out = Var::select(&not_b, &g, v);
                (out, log_g.mul(&v.constant(not_b)))
            }
            ImageMask::Channel { flip } => {
                let ((c1, n1), (c2, n2)) = ImageMask::channel_ranges(flip, self.channels);
                let (v1, v2) = (v.narrow(1, c1, n1), v.narrow(1, c2, n2));
                let (out2, log_g) = self.spline_of(&v2, &net(&v1), inverse);
                (ImageMask::join_channels(flip, &v1, &out2), log_g)
            }
        };
        // log|det| = Σ log τ′ over the transformed channels and pixels
        // (`layer_pass` returns the log-derivative of the map it applied)
        (out, log_g.sum_axes(&[1, 2, 3]))
    }
}

impl<T: Element> Flow<T> for ImageSplineCoupling<T> {
    fn name(&self) -> String {
        format!("ImageSplineCoupling({})", self.mask.label())
    }

    fn per_sample(&self) -> bool {
        true
    }

    fn context_dim(&self) -> usize {
        self.context.as_ref().map_or(0, |w| w.value.dim(0))
    }

    fn forward<'t>(&self, z: &Var<'t, T>) -> (Var<'t, T>, Var<'t, T>) {
        self.couple(z, None, false)
    }

    fn inverse<'t>(&self, x: &Var<'t, T>) -> (Var<'t, T>, Var<'t, T>) {
        self.couple(x, None, true)
    }

    fn forward_with_context<'t>(
        &self,
        z: &Var<'t, T>,
        c: Option<&Var<'t, T>>,
    ) -> (Var<'t, T>, Var<'t, T>) {
        // x₂ = τ(z₂; θ(z₁, c)),  log|det ∂x/∂z| = Σ log τ′(z₂)
        self.couple(z, c, false)
    }

    fn inverse_with_context<'t>(
        &self,
        x: &Var<'t, T>,
        c: Option<&Var<'t, T>>,
    ) -> (Var<'t, T>, Var<'t, T>) {
        // z₂ = τ⁻¹(x₂; θ(x₁, c)),  log|det ∂z/∂x| = −Σ log τ′(z₂)
        self.couple(x, c, true)
    }

    /// `channels`, `mask` (`"checkerboard"` with `parity`, or `"channel"`
    /// with `flip`), the network's `hidden` channels and residual `blocks`,
    /// the spline's fields ([`RationalQuadraticSpline::write_spec`]), and
    /// `context_dim` for a conditional layer.
    fn to_spec(&self) -> Option<LayerSpec> {
        let spec = LayerSpec::new("ImageSplineCoupling").with("channels", self.channels);
        let spec = self
            .mask
            .write_spec(spec)
            .with("hidden", self.net.input.weight.value.dim(0))
            .with("blocks", self.net.blocks.len());
        let spec = self.spline.write_spec(spec);
        Some(with_context_dim(spec, Flow::<T>::context_dim(self)))
    }

    fn params(&self) -> Vec<&Param<T>> {
        let mut p = self.net.params();
        p.extend(&self.context);
        p
    }

    fn params_mut(&mut self) -> Vec<&mut Param<T>> {
        let mut p = self.net.params_mut();
        p.extend(&mut self.context);
        p
    }
}
