//! [`ImageCoupling`]: the affine coupling on images `[batch, C, H, W]`,
//! with RealNVP's checkerboard and channel masks ([`ImageMask`]) and a
//! convolutional ResNet as its network. The vector couplings, and the
//! [`ScaleKind`] both share, are in [`coupling`](super::coupling).
//!
//! Derivations: [`derivations::realnvp`](crate::derivations::realnvp),
//! [`derivations::glow`](crate::derivations::glow).

use super::context::{context_dim_from_spec, context_shift, context_weight, with_context_dim};
use super::coupling::ScaleKind;
use super::error::FlowError;
use super::flow::Flow;
use super::spec::{self, LayerSpec};
use crate::autodiff::{Param, Var};
use crate::nn::conv::ConvResNet;
use crate::tensor::{Element, Tensor};
use rand::Rng;

/// Which elements of an image `[channels, height, width]` condition (pass
/// through) and which are transformed, in an [`ImageCoupling`].
///
/// RealNVP alternates the two kinds within a scale: checkerboard masks on the
/// full-resolution image, then (after a squeeze) channel-wise masks; in each
/// kind consecutive layers swap the roles of the two parts ([`ImageMask::flipped`]),
/// so every element is transformed by some layer.
///
/// # Source
/// Dinh, Sohl-Dickstein, Bengio, arXiv:1605.08803, §3.4 (masked convolution,
/// figure 3) and §3.6 (multi-scale architecture).
///
/// # Derivation
/// [`derivations::realnvp`, "Checkerboard coupling"](crate::derivations::realnvp#checkerboard-coupling)
/// and ["Channel-wise coupling"](crate::derivations::realnvp#channel-wise-coupling)
/// (docs/derivations/realnvp.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageMask {
    /// Pixel (i, j) of every channel conditions when (i + j) mod 2 = `parity`.
    Checkerboard {
        /// 0 or 1.
        parity: usize,
    },
    /// Channels split into halves: the first ⌊C/2⌋ condition and the rest are
    /// transformed, or, `flip`ped, the last ⌈C/2⌉ condition the first ⌊C/2⌋.
    Channel {
        /// Swap the halves' roles.
        flip: bool,
    },
}

impl ImageMask {
    /// The mask of the next layer: the other parity, or the halves swapped.
    pub fn flipped(&self) -> ImageMask {
        match *self {
            ImageMask::Checkerboard { parity } => ImageMask::Checkerboard { parity: 1 - parity },
            ImageMask::Channel { flip } => ImageMask::Channel { flip: !flip },
        }
    }

    /// The 0/1 checkerboard b of shape `[1, 1, height, width]` (1 = conditions).
    pub(super) fn checkerboard<T: Element>(
        parity: usize,
        height: usize,
        width: usize,
    ) -> Tensor<T> {
        let data = (0..height * width)
            .map(|k| {
                let (i, j) = (k / width, k % width);
                if (i + j) % 2 == parity {
                    T::ONE
                } else {
                    T::ZERO
                }
            })
            .collect();
        Tensor::from_vec(data, &[1, 1, height, width])
    }

    /// (the network's input channels, the transformed channels) of this mask
    /// on an image of `channels` channels; `layer` names the caller in the
    /// panic.
    ///
    /// # Panics
    /// For a channel mask on fewer than 2 channels.
    pub(super) fn sizes(&self, channels: usize, layer: &str) -> (usize, usize) {
        match *self {
            ImageMask::Checkerboard { .. } => (channels, channels),
            ImageMask::Channel { flip } => {
                assert!(
                    channels >= 2,
                    "{layer}::new: a channel mask needs at least 2 channels, got {channels}"
                );
                let ((_, n1), (_, n2)) = ImageMask::channel_ranges(flip, channels);
                (n1, n2)
            }
        }
    }

    /// The mask a spec describes (`mask`, with `parity` or `flip`) on an
    /// image of `channels` channels, and its [`ImageMask::sizes`].
    ///
    /// # Errors
    /// [`FlowError::BadSpec`] naming the field: `mask` not `checkerboard`
    /// or `channel`, `parity` not 0 or 1, a channel mask on fewer than 2
    /// channels.
    pub(super) fn from_spec(
        spec: &LayerSpec,
        channels: usize,
    ) -> Result<(ImageMask, usize, usize), FlowError> {
        let mask = match spec.choice("mask", &["checkerboard", "channel"])? {
            "checkerboard" => {
                let parity = spec.usize("parity")?;
                if parity > 1 {
                    return Err(spec.error("parity", format!("{parity} is not 0 or 1")));
                }
                ImageMask::Checkerboard { parity }
            }
            _ => {
                if channels < 2 {
                    return Err(spec.error("channels", "a channel mask needs at least 2"));
                }
                ImageMask::Channel {
                    flip: spec.bool("flip")?,
                }
            }
        };
        let (n_in, n_trans) = mask.sizes(channels, &spec.kind);
        Ok((mask, n_in, n_trans))
    }

    /// `spec` with the mask's fields: `mask` `"checkerboard"` with `parity`,
    /// or `"channel"` with `flip`.
    pub(super) fn write_spec(&self, spec: LayerSpec) -> LayerSpec {
        match *self {
            ImageMask::Checkerboard { parity } => {
                spec.with("mask", "checkerboard").with("parity", parity)
            }
            ImageMask::Channel { flip } => spec.with("mask", "channel").with("flip", flip),
        }
    }

    /// The mask as the layers' names show it.
    pub(super) fn label(&self) -> String {
        match *self {
            ImageMask::Checkerboard { parity } => format!("checkerboard {parity}"),
            ImageMask::Channel { flip } => format!("channel{}", if flip { " flipped" } else { "" }),
        }
    }

    /// The image from the conditioning channels `v1` and the transformed
    /// ones `out2` of a channel mask, in their places along axis 1.
    pub(super) fn join_channels<'t, T: Element>(
        flip: bool,
        v1: &Var<'t, T>,
        out2: &Var<'t, T>,
    ) -> Var<'t, T> {
        if flip {
            Var::concat(&[out2, v1], 1)
        } else {
            Var::concat(&[v1, out2], 1)
        }
    }

    /// (first conditioning channel, count), (first transformed channel, count)
    /// of a channel mask over `channels`.
    pub(super) fn channel_ranges(flip: bool, channels: usize) -> ((usize, usize), (usize, usize)) {
        let split = channels / 2;
        let (first, second) = ((0, split), (split, channels - split));
        if flip {
            (second, first)
        } else {
            (first, second)
        }
    }
}

/// An affine coupling layer on images: [`ImageMask`] chooses the
/// conditioning elements x₁ = z₁, and a [`ConvResNet`] computes from them a
/// per-element log-scale s and shift t for the others:
///
/// x₂ = z₂ ⊙ exp(s(z₁)) + t(z₁),   log|det ∂x/∂z| = Σ s  (over channels and pixels);
/// inverse z₂ = (x₂ − t(x₁)) ⊙ exp(−s(x₁)).
///
/// With a checkerboard mask b the network sees b ⊙ z (`channels` in,
/// 2·`channels` out) and s, t are multiplied by (1 − b), so the conditioning
/// pixels get s = 0, t = 0 and pass through exactly (RealNVP's masked form,
/// x = b⊙z + (1−b)⊙(z⊙exp(s(b⊙z)) + t(b⊙z))). With a channel mask the network
/// maps the conditioning channels to 2·(transformed channels). The log-scale
/// is formed as in [`AffineCoupling`](super::AffineCoupling)
/// ([`ScaleKind::Tanh`] with a learned bound per transformed channel, or
/// Glow's [`ScaleKind::Sigmoid`]); the network's last convolution starts at
/// zero.
///
/// A conditional coupling ([`ImageCoupling::conditional`]) reads a context
/// c `[batch, context_dim]` as well: a learned projection c·W_c
/// (`[batch, hidden]`) is added to every pixel of the network's first
/// convolution's output, so s = s(z₁, c), t = t(z₁, c); the map stays a
/// bijection in z with the same log-det for every c.
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
/// Dinh, Sohl-Dickstein, Bengio, arXiv:1605.08803, §3.4-3.6; Kingma &
/// Dhariwal, arXiv:1807.03039, §3.3 (channel-wise affine coupling).
///
/// # Derivation
/// [`derivations::realnvp`, "Checkerboard coupling"](crate::derivations::realnvp#checkerboard-coupling)
/// and ["Channel-wise coupling"](crate::derivations::realnvp#channel-wise-coupling)
/// (docs/derivations/realnvp.md): the masked form, its triangular Jacobian
/// and log-det; Glow's scale in
/// [`derivations::glow`, "The affine coupling with Glow's scale"](crate::derivations::glow#the-affine-coupling-with-glows-scale).
///
/// # Examples
/// ```
/// use flowzoo::flows::{ImageCoupling, ImageMask, ScaleKind, Flow};
/// use flowzoo::tensor::Tensor;
/// use rand::SeedableRng;
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let mask = ImageMask::Checkerboard { parity: 0 };
/// let layer = ImageCoupling::<f64>::new(2, mask, 8, 1, ScaleKind::Tanh, &mut rng);
/// let z = Tensor::randn(&[3, 2, 4, 4], &mut rng);
/// let (x, log_det) = layer.forward_tensor(&z);
/// assert_eq!((x.shape(), log_det.shape()), (&[3, 2, 4, 4][..], &[3][..]));
/// ```
pub struct ImageCoupling<T: Element> {
    /// Which elements condition.
    pub mask: ImageMask,
    /// The image's channel count C.
    pub channels: usize,
    /// (ŝ, t) = net(z₁), stacked along the channels.
    pub net: ConvResNet<T>,
    /// The bound of the log-scale per transformed channel (used, and listed
    /// in `params`, only with [`ScaleKind::Tanh`]).
    pub scale: Param<T>,
    /// How ŝ becomes the log-scale s.
    pub scale_kind: ScaleKind,
    /// W_c `[context_dim, hidden]`, the projection of the context added to
    /// the network's first convolution (`None`: the layer reads no context).
    pub context: Option<Param<T>>,
}

impl<T: Element> ImageCoupling<T> {
    /// A coupling on images of `channels` channels with mask `mask`, its
    /// network a [`ConvResNet`] of `hidden` channels and `blocks` residual
    /// blocks, the log-scale formed by `scale_kind`.
    ///
    /// # Panics
    /// For a channel mask on fewer than 2 channels.
    pub fn new<R: Rng + ?Sized>(
        channels: usize,
        mask: ImageMask,
        hidden: usize,
        blocks: usize,
        scale_kind: ScaleKind,
        rng: &mut R,
    ) -> Self {
        ImageCoupling::conditional(channels, mask, hidden, blocks, scale_kind, 0, rng)
    }

    /// A conditional coupling: as [`ImageCoupling::new`], its network also
    /// reading a context c of width `context_dim` through W_c
    /// `[context_dim, hidden]` (Glorot, drawn after the network), added to
    /// every pixel of the first convolution's output:
    /// h₀ = conv(z₁) + c·W_c. With `context_dim = 0` it is
    /// [`ImageCoupling::new`], draw for draw.
    ///
    /// # Panics
    /// For a channel mask on fewer than 2 channels.
    ///
    /// # Derivation
    /// [`derivations::conditioning`, "Image couplings"](crate::derivations::conditioning#image-couplings)
    /// (docs/derivations/conditioning.md): why a projection added to the
    /// first convolution, not constant input channels.
    pub fn conditional<R: Rng + ?Sized>(
        channels: usize,
        mask: ImageMask,
        hidden: usize,
        blocks: usize,
        scale_kind: ScaleKind,
        context_dim: usize,
        rng: &mut R,
    ) -> Self {
        let (n_in, n_trans) = mask.sizes(channels, "ImageCoupling");
        let mut net = ConvResNet::new(n_in, hidden, 2 * n_trans, blocks, rng);
        for p in net.params_mut() {
            p.prefix("net");
        }
        ImageCoupling {
            mask,
            channels,
            net,
            scale: Param::new("scale", Tensor::ones(&[n_trans])),
            scale_kind,
            context: context_weight(context_dim, hidden, rng),
        }
    }

    /// The layer a spec of kind `ImageCoupling` describes, with placeholder
    /// parameters for the loader to fill.
    ///
    /// # Errors
    /// [`FlowError::BadSpec`] naming the field: `channels` or `hidden`
    /// not a size, `mask` not `checkerboard` or `channel`, `parity` not 0 or
    /// 1, a channel mask on fewer than 2 channels, `blocks` over
    /// [`spec::MAX_BLOCKS`], `scale_kind` not `tanh`
    /// or `sigmoid`, `context_dim` (present for a conditional layer) not a
    /// size, or a network over [`spec::MAX_LAYER_ELEMENTS`] scalars.
    pub fn from_spec(spec: &LayerSpec) -> Result<Self, FlowError> {
        let channels = spec::size(spec, "channels")?;
        let (mask, n_in, n_trans) = ImageMask::from_spec(spec, channels)?;
        let (hidden, blocks) = resnet_from_spec(spec)?;
        let context_dim = context_dim_from_spec(spec)?;
        let elements = ConvResNet::<T>::elements(n_in, hidden, 2 * n_trans, blocks)
            .and_then(|n| n.checked_add(n_trans)) // and the tanh bound
            .and_then(|n| n.checked_add(context_dim.checked_mul(hidden)?)); // and W_c
        spec::check_elements(spec, "hidden", elements)?;
        let scale_kind = ScaleKind::from_spec(spec)?;
        // Placeholder values; any seed does.
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(0);
        Ok(ImageCoupling::conditional(
            channels,
            mask,
            hidden,
            blocks,
            scale_kind,
            context_dim,
            &mut rng,
        ))
    }

    fn check(&self, v: &Var<'_, T>) {
        assert!(
            v.shape().len() == 4 && v.shape()[1] == self.channels,
            "ImageCoupling: expected [batch, {}, height, width], got {:?}",
            self.channels,
            v.shape()
        );
    }

    /// (s, t) from the network's output `h` (`[batch, 2·n, H, W]`).
    fn scale_and_shift<'t>(&self, h: &Var<'t, T>) -> (Var<'t, T>, Var<'t, T>) {
        let n = h.shape()[1] / 2;
        let bound = h.tape().param(&self.scale).reshape(&[1, n, 1, 1]);
        let s = self.scale_kind.log_scale(&h.narrow(1, 0, n), &bound);
        (s, h.narrow(1, n, n))
    }

    /// The coupling in either direction: `sign` +1 applies the forward map to
    /// `v` = z, −1 the inverse to `v` = x, given the context `c`. Returns the
    /// output and the log-det of the map applied.
    fn couple<'t>(
        &self,
        v: &Var<'t, T>,
        c: Option<&Var<'t, T>>,
        sign: f64,
    ) -> (Var<'t, T>, Var<'t, T>) {
        self.check(v);
        let (height, width) = (v.shape()[2], v.shape()[3]);
        // c·W_c, added to every pixel of the first convolution's output
        let shift = context_shift("ImageCoupling", self.context.as_ref(), v.shape()[0], c);
        let net = |input: &Var<'t, T>| self.net.forward_shifted(input, shift.as_ref());
        let apply = |v2: &Var<'t, T>, s: &Var<'t, T>, t: &Var<'t, T>| {
            if sign > 0.0 {
                // x₂ = z₂ ⊙ exp(s) + t
                v2.mul(&s.exp()).add(t)
            } else {
                // z₂ = (x₂ − t) ⊙ exp(−s)
                v2.sub(t).mul(&s.neg().exp())
            }
        };
        let (out, s) = match self.mask {
            ImageMask::Checkerboard { parity } => {
                let b = v.constant(ImageMask::checkerboard(parity, height, width));
                let not_b = b.neg().add_scalar(T::ONE);
                let (s, t) = self.scale_and_shift(&net(&v.mul(&b)));
                // (1 − b) zeroes s and t where b = 1: those pixels pass through.
                let (s, t) = (s.mul(&not_b), t.mul(&not_b));
                (apply(v, &s, &t), s)
            }
            ImageMask::Channel { flip } => {
                let ((c1, n1), (c2, n2)) = ImageMask::channel_ranges(flip, self.channels);
                let (v1, v2) = (v.narrow(1, c1, n1), v.narrow(1, c2, n2));
                let (s, t) = self.scale_and_shift(&net(&v1));
                let out2 = apply(&v2, &s, &t);
                (ImageMask::join_channels(flip, &v1, &out2), s)
            }
        };
        // log|det| = ±Σ s over channels, rows and columns
        let log_det = s.sum_axes(&[1, 2, 3]).mul_scalar(T::from_f64(sign));
        (out, log_det)
    }
}

/// The conditioner's `hidden` channels and residual `blocks` from an image
/// coupling's spec.
///
/// # Errors
/// [`FlowError::BadSpec`] naming the field: `hidden` not a size, `blocks`
/// over [`spec::MAX_BLOCKS`].
pub(super) fn resnet_from_spec(spec: &LayerSpec) -> Result<(usize, usize), FlowError> {
    let hidden = spec::size(spec, "hidden")?;
    let blocks = spec.usize("blocks")?;
    if blocks > spec::MAX_BLOCKS {
        return Err(spec.error("blocks", format!("{blocks} is over {}", spec::MAX_BLOCKS)));
    }
    Ok((hidden, blocks))
}

impl<T: Element> Flow<T> for ImageCoupling<T> {
    fn name(&self) -> String {
        format!(
            "ImageCoupling({}, {})",
            self.mask.label(),
            self.scale_kind.name()
        )
    }

    fn per_sample(&self) -> bool {
        true
    }

    fn context_dim(&self) -> usize {
        self.context.as_ref().map_or(0, |w| w.value.dim(0))
    }

    fn forward<'t>(&self, z: &Var<'t, T>) -> (Var<'t, T>, Var<'t, T>) {
        self.couple(z, None, 1.0)
    }

    fn forward_with_context<'t>(
        &self,
        z: &Var<'t, T>,
        c: Option<&Var<'t, T>>,
    ) -> (Var<'t, T>, Var<'t, T>) {
        self.couple(z, c, 1.0)
    }

    fn inverse_with_context<'t>(
        &self,
        x: &Var<'t, T>,
        c: Option<&Var<'t, T>>,
    ) -> (Var<'t, T>, Var<'t, T>) {
        self.couple(x, c, -1.0)
    }

    /// `channels`, `mask` (`"checkerboard"` with `parity`, or `"channel"`
    /// with `flip`), the network's `hidden` channels and residual `blocks`,
    /// `scale_kind`, and `context_dim` for a conditional layer.
    fn to_spec(&self) -> Option<LayerSpec> {
        let spec = LayerSpec::new("ImageCoupling").with("channels", self.channels);
        let spec = self
            .mask
            .write_spec(spec)
            .with("hidden", self.net.input.weight.value.dim(0))
            .with("blocks", self.net.blocks.len())
            .with("scale_kind", self.scale_kind.name());
        Some(with_context_dim(spec, Flow::<T>::context_dim(self)))
    }

    fn inverse<'t>(&self, x: &Var<'t, T>) -> (Var<'t, T>, Var<'t, T>) {
        self.couple(x, None, -1.0)
    }

    fn params(&self) -> Vec<&Param<T>> {
        let mut p = self.net.params();
        if self.scale_kind == ScaleKind::Tanh {
            p.push(&self.scale);
        }
        p.extend(&self.context);
        p
    }

    fn params_mut(&mut self) -> Vec<&mut Param<T>> {
        let mut p = self.net.params_mut();
        if self.scale_kind == ScaleKind::Tanh {
            p.push(&mut self.scale);
        }
        p.extend(&mut self.context);
        p
    }
}
