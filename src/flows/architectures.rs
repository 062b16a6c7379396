//! The paper architectures assembled from the layers: [`nice`],
//! [`realnvp_image`] (the multi-scale RealNVP) and [`glow`], each with its
//! sizes as arguments, plus the layer lists the training code builds on.
//!
//! Every image architecture takes and returns flat vectors: its data side is
//! `[batch, C·H·W]` (reshaped to `[batch, C, H, W]` by its first layer) and
//! its latent side the flat multi-scale latent `[batch, C·H·W]`, so a
//! [`FlowModel`] over it, the training loop, bits/dim and sampling work as for
//! the vector flows.
//!
//! Derivations: [`derivations::nice`](crate::derivations::nice),
//! [`derivations::realnvp`](crate::derivations::realnvp),
//! [`derivations::glow`](crate::derivations::glow).

use super::actnorm::ActNorm;
use super::coupling::{AdditiveCoupling, AffineCoupling, Mask, ScaleKind};
use super::flow::Flow;
use super::image_coupling::{ImageCoupling, ImageMask};
use super::image_spline_coupling::ImageSplineCoupling;
use super::inv_conv::InvConv1x1;
use super::model::FlowModel;
use super::prior::{Logistic, Prior, StandardNormal};
use super::rescale::Rescale;
use super::sequential::Sequential;
use super::spline::RationalQuadraticSpline;
use super::squeeze::{Reshape, Split, Squeeze};
use crate::tensor::Element;
use rand::Rng;

/// A [`Sequential`] from layers listed in the data → latent order (the order
/// the papers draw them), reversed into the forward (latent → data) order.
fn chain<T: Element>(mut data_to_latent: Vec<Box<dyn Flow<T>>>) -> Sequential<T> {
    data_to_latent.reverse();
    Sequential::new(data_to_latent)
}

/// The sizes of a NICE model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NiceConfig {
    /// Additive coupling layers (NICE: 4).
    pub couplings: usize,
    /// Width of the hidden layers of each coupling network.
    pub hidden: usize,
    /// Hidden ReLU layers per coupling network (NICE on MNIST: 5).
    pub depth: usize,
    /// The standard logistic prior of NICE (`true`) or a standard normal.
    pub logistic_prior: bool,
}

impl Default for NiceConfig {
    /// NICE's layout at a size that trains in minutes on the 8×8 digits:
    /// 4 couplings, networks of 4 hidden layers of 256 units, logistic prior.
    fn default() -> Self {
        NiceConfig {
            couplings: 4,
            hidden: 256,
            depth: 4,
            logistic_prior: true,
        }
    }
}

/// The layers of NICE on `dim` features, forward (latent → data) order:
/// `couplings` additive couplings over alternating (odd / even) features,
/// the roles swapping from one layer to the next, then the diagonal
/// [`Rescale`] at the latent end, as in the paper (h = exp(s) ⊙ f(x)).
///
/// # Panics
/// If `dim < 2` or `depth = 0`.
///
/// # Source
/// Dinh, Krueger, Bengio, arXiv:1410.8516, §3-5.
pub fn nice_layers<T: Element, R: Rng + ?Sized>(
    dim: usize,
    config: NiceConfig,
    rng: &mut R,
) -> Vec<Box<dyn Flow<T>>> {
    conditional_nice_layers(dim, config, 0, rng)
}

/// [`nice_layers`] with conditional additive couplings
/// ([`AdditiveCoupling::conditional`]) reading a context of width
/// `context_dim` (the rescaling reads none); with `context_dim = 0`,
/// [`nice_layers`], draw for draw.
///
/// # Panics
/// As [`nice_layers`].
pub fn conditional_nice_layers<T: Element, R: Rng + ?Sized>(
    dim: usize,
    config: NiceConfig,
    context_dim: usize,
    rng: &mut R,
) -> Vec<Box<dyn Flow<T>>> {
    let mut data_to_latent: Vec<Box<dyn Flow<T>>> = (0..config.couplings)
        .map(|i| {
            Box::new(AdditiveCoupling::conditional(
                Mask::alternating(dim, i % 2),
                config.hidden,
                config.depth,
                context_dim,
                rng,
            )) as Box<dyn Flow<T>>
        })
        .collect();
    data_to_latent.push(Box::new(Rescale::new(&[dim])));
    data_to_latent.reverse();
    data_to_latent
}

/// NICE on `dim` features: [`nice_layers`] over a logistic or normal prior.
///
/// # Source
/// Dinh, Krueger, Bengio, arXiv:1410.8516.
///
/// # Examples
/// ```
/// use flowzoo::flows::architectures::{nice, NiceConfig};
/// use rand::SeedableRng;
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let model = nice::<f32, _>(2, NiceConfig { hidden: 16, ..NiceConfig::default() }, &mut rng);
/// assert_eq!(model.prior.name(), "logistic");
/// let x = model.sample(5, 1.0, &mut rng);
/// assert_eq!(model.log_prob(&x).shape(), &[5]);
/// ```
pub fn nice<T: Element, R: Rng + ?Sized>(
    dim: usize,
    config: NiceConfig,
    rng: &mut R,
) -> FlowModel<T> {
    let prior: Prior = if config.logistic_prior {
        Logistic::new(dim).into()
    } else {
        StandardNormal::new(dim).into()
    };
    FlowModel::with_prior(prior, Sequential::new(nice_layers(dim, config, rng)))
}

/// The sizes of a multi-scale RealNVP, and the element-wise map of its
/// couplings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RealNvpImageConfig {
    /// Scales; every scale but the last ends in a squeeze and a factor-out
    /// of half the channels.
    pub scales: usize,
    /// Checkerboard couplings at the start of each scale (RealNVP: 3).
    pub checkerboard: usize,
    /// Channel-wise couplings after each squeeze (RealNVP: 3).
    pub channel: usize,
    /// Checkerboard couplings of the last scale (RealNVP: 4).
    pub last: usize,
    /// Channels inside each coupling's ResNet.
    pub hidden: usize,
    /// Residual blocks per coupling ResNet.
    pub blocks: usize,
    /// The couplings' element-wise map: `None` for RealNVP's affine
    /// [`ImageCoupling`] (tanh-bounded log-scale), `Some(spline)` for
    /// rational-quadratic [`ImageSplineCoupling`]s in the same places, as
    /// the neural spline flow's image models do (Durkan et al.,
    /// arXiv:1906.04032, §5.2).
    pub spline: Option<RationalQuadraticSpline>,
}

impl Default for RealNvpImageConfig {
    /// RealNVP's layout (3 checkerboard, squeeze, 3 channel-wise per scale,
    /// 4 checkerboard at the last) with 2 scales and small ResNets (32
    /// channels, 1 block), sized for the 8×8 digits.
    fn default() -> Self {
        RealNvpImageConfig {
            scales: 2,
            checkerboard: 3,
            channel: 3,
            last: 4,
            hidden: 32,
            blocks: 1,
            spline: None,
        }
    }
}

/// One scale of the multi-scale RealNVP and everything deeper, on images of
/// `shape` (data side) to the flat latent, its couplings reading a context
/// of width `context_dim` (0: none).
fn realnvp_scale<T: Element, R: Rng + ?Sized>(
    [c, h, w]: [usize; 3],
    scale: usize,
    config: RealNvpImageConfig,
    context_dim: usize,
    rng: &mut R,
) -> Box<dyn Flow<T>> {
    let (hidden, blocks) = (config.hidden, config.blocks);
    let coupling = |channels, mask, rng: &mut R| -> Box<dyn Flow<T>> {
        match config.spline {
            None => Box::new(ImageCoupling::conditional(
                channels,
                mask,
                hidden,
                blocks,
                ScaleKind::Tanh,
                context_dim,
                rng,
            )),
            Some(spline) => Box::new(ImageSplineCoupling::conditional(
                channels,
                mask,
                hidden,
                blocks,
                spline,
                context_dim,
                rng,
            )),
        }
    };
    let mut layers: Vec<Box<dyn Flow<T>>> = Vec::new();
    if scale + 1 >= config.scales {
        // The last scale: checkerboard couplings, then the flat latent.
        let mut mask = ImageMask::Checkerboard { parity: 0 };
        for _ in 0..config.last {
            layers.push(coupling(c, mask, rng));
            mask = mask.flipped();
        }
        layers.push(Box::new(Reshape::new(&[c, h, w], &[c * h * w])));
        return Box::new(chain(layers));
    }
    let mut mask = ImageMask::Checkerboard { parity: 0 };
    for _ in 0..config.checkerboard {
        layers.push(coupling(c, mask, rng));
        mask = mask.flipped();
    }
    layers.push(Box::new(Squeeze));
    let (c, h, w) = (4 * c, h / 2, w / 2);
    let mut mask = ImageMask::Channel { flip: false };
    for _ in 0..config.channel {
        layers.push(coupling(c, mask, rng));
        mask = mask.flipped();
    }
    let inner = realnvp_scale([c / 2, h, w], scale + 1, config, context_dim, rng);
    layers.push(Box::new(Split::new([c, h, w], c / 2, inner, None, rng)));
    Box::new(chain(layers))
}

/// The layers of the multi-scale RealNVP on images of `shape` = [C, H, W]
/// given as flat vectors, forward order (one [`Sequential`] holding the
/// nested scales, behind a [`Reshape`] from `[C·H·W]`).
///
/// Each scale but the last: `checkerboard` checkerboard couplings (masks
/// alternating), a [`Squeeze`], `channel` channel-wise couplings (halves
/// alternating), and a [`Split`] that factors out half the channels; the
/// last scale: `last` checkerboard couplings. Couplings use the bounded
/// tanh log-scale and a [`ConvResNet`](crate::nn::conv::ConvResNet), or,
/// with `config.spline` set, a rational-quadratic spline
/// ([`ImageSplineCoupling`]) from the same network.
///
/// # Panics
/// If H and W are not divisible by 2^(scales − 1).
///
/// # Source
/// Dinh, Sohl-Dickstein, Bengio, arXiv:1605.08803, §3.6 and §4.1.
pub fn realnvp_image_layers<T: Element, R: Rng + ?Sized>(
    shape: [usize; 3],
    config: RealNvpImageConfig,
    rng: &mut R,
) -> Vec<Box<dyn Flow<T>>> {
    conditional_realnvp_image_layers(shape, config, 0, rng)
}

/// [`realnvp_image_layers`] with conditional image couplings
/// ([`ImageCoupling::conditional`]) reading a context of width
/// `context_dim`; the squeezes, splits and reshapes pass it on to the deeper
/// scales. With `context_dim = 0`, [`realnvp_image_layers`], draw for draw.
///
/// # Panics
/// As [`realnvp_image_layers`].
///
/// # Derivation
/// [`derivations::conditioning`, "Image couplings"](crate::derivations::conditioning#image-couplings)
/// (docs/derivations/conditioning.md).
pub fn conditional_realnvp_image_layers<T: Element, R: Rng + ?Sized>(
    shape: [usize; 3],
    config: RealNvpImageConfig,
    context_dim: usize,
    rng: &mut R,
) -> Vec<Box<dyn Flow<T>>> {
    let [c, h, w] = shape;
    let factor = 1 << config.scales.saturating_sub(1);
    assert!(
        h % factor == 0 && w % factor == 0,
        "realnvp_image: {h}x{w} images do not squeeze {} times",
        config.scales.saturating_sub(1)
    );
    let body = realnvp_scale(shape, 0, config, context_dim, rng);
    let reshape: Box<dyn Flow<T>> = Box::new(Reshape::new(&[c * h * w], &shape));
    vec![body, reshape]
}

/// The multi-scale RealNVP on `shape` images under a standard normal prior.
///
/// # Examples
/// ```
/// use flowzoo::flows::architectures::{realnvp_image, RealNvpImageConfig};
/// use rand::SeedableRng;
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let config = RealNvpImageConfig { hidden: 4, ..RealNvpImageConfig::default() };
/// let model = realnvp_image::<f64, _>([1, 4, 4], config, &mut rng);
/// let x = model.sample(2, 1.0, &mut rng);
/// assert_eq!(x.shape(), &[2, 16]);
/// ```
pub fn realnvp_image<T: Element, R: Rng + ?Sized>(
    shape: [usize; 3],
    config: RealNvpImageConfig,
    rng: &mut R,
) -> FlowModel<T> {
    let dim = shape.iter().product();
    FlowModel::new(
        dim,
        Sequential::new(realnvp_image_layers(shape, config, rng)),
    )
}

/// The sizes of a Glow model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GlowConfig {
    /// Levels L (each a squeeze and K steps; all but the last end in a split).
    pub levels: usize,
    /// Steps of flow K per level.
    pub steps: usize,
    /// Channels inside each coupling network.
    pub hidden: usize,
    /// Residual blocks per coupling network (0: conv → ReLU → conv, Glow's shape).
    pub blocks: usize,
    /// The LU form of the 1×1 convolution (else the plain matrix).
    pub lu: bool,
    /// Glow's learned conditional prior at each split (else the standard prior).
    pub learned_prior: bool,
    /// The couplings' scale: Glow's [`ScaleKind::Sigmoid`] or RealNVP's tanh.
    pub scale_kind: ScaleKind,
}

impl Default for GlowConfig {
    /// Glow's design at a size for the 8×8 digits: L = 2 levels of K = 4
    /// steps, coupling networks of 32 channels with 1 residual block, the LU
    /// 1×1 convolution, learned priors, sigmoid scales.
    fn default() -> Self {
        GlowConfig {
            levels: 2,
            steps: 4,
            hidden: 32,
            blocks: 1,
            lu: true,
            learned_prior: true,
            scale_kind: ScaleKind::Sigmoid,
        }
    }
}

/// One step of flow: ActNorm → InvConv1x1 → affine coupling (data → latent
/// order), the coupling reading a context of width `context_dim` (0: none).
fn glow_step<T: Element, R: Rng + ?Sized>(
    channels: usize,
    config: GlowConfig,
    context_dim: usize,
    rng: &mut R,
) -> Vec<Box<dyn Flow<T>>> {
    let inv_conv = if config.lu {
        InvConv1x1::new_lu(channels, rng)
    } else {
        InvConv1x1::new(channels, rng)
    };
    vec![
        Box::new(ActNorm::new(channels)),
        Box::new(inv_conv),
        Box::new(ImageCoupling::conditional(
            channels,
            ImageMask::Channel { flip: false },
            config.hidden,
            config.blocks,
            config.scale_kind,
            context_dim,
            rng,
        )),
    ]
}

/// Level `level` of Glow and everything deeper, on images of `shape`, the
/// couplings and learned priors reading a context of width `context_dim`.
fn glow_level<T: Element, R: Rng + ?Sized>(
    [c, h, w]: [usize; 3],
    level: usize,
    config: GlowConfig,
    context_dim: usize,
    rng: &mut R,
) -> Box<dyn Flow<T>> {
    let mut layers: Vec<Box<dyn Flow<T>>> = vec![Box::new(Squeeze)];
    let (c, h, w) = (4 * c, h / 2, w / 2);
    for _ in 0..config.steps {
        layers.extend(glow_step(c, config, context_dim, rng));
    }
    if level + 1 < config.levels {
        let inner = glow_level([c / 2, h, w], level + 1, config, context_dim, rng);
        let prior = config.learned_prior.then_some(config.hidden);
        let split = Split::conditional([c, h, w], c / 2, inner, prior, context_dim, rng);
        layers.push(Box::new(split));
    } else {
        layers.push(Box::new(Reshape::new(&[c, h, w], &[c * h * w])));
    }
    Box::new(chain(layers))
}

/// The layers of Glow on images of `shape` = [C, H, W] given as flat
/// vectors, forward order: L levels, each a [`Squeeze`] and K steps of
/// [`ActNorm`] → [`InvConv1x1`] → channel-wise affine coupling, every level
/// but the last ending in a [`Split`] of half the channels.
///
/// # Panics
/// If H and W are not divisible by 2^levels.
///
/// # Source
/// Kingma & Dhariwal, arXiv:1807.03039, figure 2 and §3.
pub fn glow_layers<T: Element, R: Rng + ?Sized>(
    shape: [usize; 3],
    config: GlowConfig,
    rng: &mut R,
) -> Vec<Box<dyn Flow<T>>> {
    conditional_glow_layers(shape, config, 0, rng)
}

/// [`glow_layers`] whose couplings ([`ImageCoupling::conditional`]) and
/// learned split priors ([`Split::conditional`]) read a context of width
/// `context_dim`; ActNorm, the 1×1 convolutions and the squeezes ignore it
/// and pass it on. With `context_dim = 0`, [`glow_layers`], draw for draw.
///
/// # Panics
/// As [`glow_layers`].
///
/// # Derivation
/// [`derivations::conditioning`, "Image couplings"](crate::derivations::conditioning#image-couplings)
/// (docs/derivations/conditioning.md).
pub fn conditional_glow_layers<T: Element, R: Rng + ?Sized>(
    shape: [usize; 3],
    config: GlowConfig,
    context_dim: usize,
    rng: &mut R,
) -> Vec<Box<dyn Flow<T>>> {
    let [c, h, w] = shape;
    let factor = 1 << config.levels;
    assert!(
        h % factor == 0 && w % factor == 0,
        "glow: {h}x{w} images do not squeeze {} times",
        config.levels
    );
    let body = glow_level(shape, 0, config, context_dim, rng);
    let reshape: Box<dyn Flow<T>> = Box::new(Reshape::new(&[c * h * w], &shape));
    vec![body, reshape]
}

/// The layers of Glow on `dim`-feature vectors (2-D toy data, say), forward
/// order: K steps of [`ActNorm`] → [`InvConv1x1`] (a learned D×D mixing of
/// the features) → [`AffineCoupling`] over contiguous halves with an MLP of
/// two hidden layers of width `config.hidden`. No squeeze, no levels.
pub fn glow_vector_layers<T: Element, R: Rng + ?Sized>(
    dim: usize,
    config: GlowConfig,
    rng: &mut R,
) -> Vec<Box<dyn Flow<T>>> {
    conditional_glow_vector_layers(dim, config, 0, rng)
}

/// [`glow_vector_layers`] with conditional couplings
/// ([`AffineCoupling::conditional`]) reading a context of width
/// `context_dim`; with `context_dim = 0`, [`glow_vector_layers`], draw for draw.
pub fn conditional_glow_vector_layers<T: Element, R: Rng + ?Sized>(
    dim: usize,
    config: GlowConfig,
    context_dim: usize,
    rng: &mut R,
) -> Vec<Box<dyn Flow<T>>> {
    let mut layers: Vec<Box<dyn Flow<T>>> = Vec::new();
    for _ in 0..config.steps {
        let inv_conv = if config.lu {
            InvConv1x1::new_lu(dim, rng)
        } else {
            InvConv1x1::new(dim, rng)
        };
        layers.push(Box::new(ActNorm::new(dim)));
        layers.push(Box::new(inv_conv));
        layers.push(Box::new(
            AffineCoupling::conditional(Mask::half(dim, false), config.hidden, context_dim, rng)
                .with_scale_kind(config.scale_kind),
        ));
    }
    layers.reverse();
    layers
}

/// Glow on `shape` images under a standard normal prior. Call
/// [`Flow::initialize`] on `model.flow` with a batch of data before training
/// (ActNorm's data-dependent initialisation).
///
/// # Examples
/// ```
/// use flowzoo::flows::architectures::{glow, GlowConfig};
/// use flowzoo::flows::Flow;
/// use flowzoo::tensor::Tensor;
/// use rand::SeedableRng;
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let config = GlowConfig { hidden: 4, steps: 1, ..GlowConfig::default() };
/// let mut model = glow::<f64, _>([1, 4, 4], config, &mut rng);
/// model.flow.initialize(&Tensor::randn(&[8, 16], &mut rng));
/// let x = model.sample(2, 0.7, &mut rng);
/// assert_eq!(model.log_prob(&x).shape(), &[2]);
/// ```
pub fn glow<T: Element, R: Rng + ?Sized>(
    shape: [usize; 3],
    config: GlowConfig,
    rng: &mut R,
) -> FlowModel<T> {
    let dim = shape.iter().product();
    FlowModel::new(dim, Sequential::new(glow_layers(shape, config, rng)))
}
