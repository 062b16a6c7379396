//! The zoo: every named architecture (`realnvp`, `nice`, `glow`,
//! `realnvp-image`, `maf`, `iaf`, `nsf`, `nsf-ar`, `nsf-image`) in one table, with its paper, its default
//! sizes for each kind of data, and its builder. The command line's `--flow`
//! names, its defaults and its help text all come from here; adding an
//! architecture is one entry in [`ZOO`] and one arm in [`FlowName::layers`].
//!
//! The builders themselves live beside their layers ([`realnvp_layers`](super::model::realnvp_layers),
//! [`maf_layers`](super::autoregressive::maf_layers), [`iaf_layers`]) or in [`architectures`](super::architectures)
//! (NICE, the multi-scale RealNVP, Glow).

use super::architectures::{
    conditional_glow_layers, conditional_glow_vector_layers, conditional_nice_layers,
    conditional_realnvp_image_layers, GlowConfig, NiceConfig, RealNvpImageConfig,
};
use super::autoregressive::{conditional_maf_layers, Transform};
use super::flow::Flow;
use super::iaf::iaf_layers;
use super::model::conditional_realnvp_layers;
use super::prior::{Logistic, Prior, StandardNormal};
use super::spline::RationalQuadraticSpline;
use super::spline_coupling::conditional_nsf_layers;
use super::spline_maf::conditional_nsf_ar_layers;
use crate::tensor::Element;
use rand::Rng;

/// What the data looks like to an architecture: vectors of `dim` features,
/// or images `[channels, height, width]` (which the vector flows see
/// flattened, and the image flows as images).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataShape {
    /// Vectors of this many features (2-D toy data, a user's table).
    Vector(usize),
    /// Images of shape `[channels, height, width]` (the 8×8 digits: `[1, 8, 8]`).
    Image([usize; 3]),
}

impl DataShape {
    /// The number of features of one sample (C·H·W for images).
    pub fn dim(&self) -> usize {
        match self {
            DataShape::Vector(dim) => *dim,
            DataShape::Image(shape) => shape.iter().product(),
        }
    }

    /// The image shape, if the data is images.
    pub fn image(&self) -> Option<[usize; 3]> {
        match self {
            DataShape::Image(shape) => Some(*shape),
            DataShape::Vector(_) => None,
        }
    }

    /// Images of at least [`LARGE_IMAGE_SIDE`] pixels a side (MNIST,
    /// CIFAR-10), where the zoo takes its MNIST-scale sizes
    /// ([`ZooEntry::large_image_sizes`]) and deeper layouts.
    pub fn is_large_image(&self) -> bool {
        matches!(self, DataShape::Image([_, h, w]) if (*h).min(*w) >= LARGE_IMAGE_SIDE)
    }
}

/// The side from which an image counts as large for the zoo (16: MNIST's
/// 28 and CIFAR-10's 32 do, the 8×8 digits do not). On large images NICE's
/// networks have 5 hidden layers (its paper's MNIST model, not 4) and the
/// multi-scale RealNVP has 3 scales (28 → 14 → 7, not 2) when both sides
/// are divisible by 4.
pub const LARGE_IMAGE_SIDE: usize = 16;

/// The two sizes every architecture of the zoo takes: `layers` (couplings,
/// MADEs, steps of flow, or couplings per group) and `hidden` (the width of
/// each network, or its channels for the image flows).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sizes {
    /// Coupling layers, MADEs, or steps per level.
    pub layers: usize,
    /// Hidden width (units, or channels for convolutional networks).
    pub hidden: usize,
}

/// A named architecture of the zoo.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FlowName {
    /// Affine couplings over alternating halves.
    #[default]
    RealNvp,
    /// Masked autoregressive flow, trained by maximum likelihood.
    Maf,
    /// Inverse autoregressive flow, trained as a sampler by reverse KL.
    Iaf,
    /// Additive couplings, a diagonal rescaling, a logistic prior.
    Nice,
    /// The multi-scale RealNVP on images.
    RealNvpImage,
    /// Glow: ActNorm, invertible 1×1 convolution, affine coupling.
    Glow,
    /// Neural spline flow, coupling form (NSF-C): rational-quadratic spline
    /// couplings over alternating halves.
    Nsf,
    /// Neural spline flow, autoregressive form (NSF-AR): spline MAF layers.
    NsfAr,
    /// The multi-scale RealNVP on images with rational-quadratic spline
    /// couplings in place of the affine ones (NSF on images).
    NsfImage,
}

/// The spline of the zoo's `nsf`, `nsf-ar` and `nsf-image`: K = 8 bins on [−5, 5],
/// applied data to noise ([`SplineDirection::DataToNoise`](super::SplineDirection), the paper's
/// choice and the default of [`RationalQuadraticSpline::new`]).
/// Why B = 5: the toy sets reach ±4 (the checkerboard fills [−4, 4]²,
/// the eight Gaussians and the pinwheel come within ±4 in practice), the
/// digits in logit space lie within ±2.95, and standardised tables mostly
/// within ±3; outside the interval the spline is the identity, so a bound
/// too small wastes the spline's flexibility but never breaks the model.
pub const ZOO_SPLINE_BINS: usize = 8;

/// The bound B of the zoo's spline (see [`ZOO_SPLINE_BINS`]).
pub const ZOO_SPLINE_BOUND: f64 = 5.0;

/// One row of the zoo: everything the library and the command line know
/// about an architecture, said once.
#[derive(Clone, Copy, Debug)]
pub struct ZooEntry {
    /// The architecture.
    pub flow: FlowName,
    /// Its `--flow` name.
    pub name: &'static str,
    /// What it is, in a line, with the meaning of `layers` and `hidden`.
    pub summary: &'static str,
    /// Its paper.
    pub paper: &'static str,
    /// Default sizes on vectors (`None`: it does not model vectors).
    pub vector_sizes: Option<Sizes>,
    /// Default sizes on images (`None`: it does not model images).
    pub image_sizes: Option<Sizes>,
    /// Default sizes on large images ([`DataShape::is_large_image`]: MNIST,
    /// CIFAR-10), chosen so that a run of at most an hour on two cores
    /// gives a result worth showing (`None`: it does not model images).
    pub large_image_sizes: Option<Sizes>,
    /// How it is trained: `true` for a sampler fitted by reverse KL (IAF),
    /// `false` for maximum likelihood.
    pub reverse_kl: bool,
}

const fn sizes(layers: usize, hidden: usize) -> Option<Sizes> {
    Some(Sizes { layers, hidden })
}

/// Every architecture, in the order `--help` lists them.
pub const ZOO: &[ZooEntry] = &[
    ZooEntry {
        flow: FlowName::RealNvp,
        name: "realnvp",
        summary: "affine couplings over alternating halves (layers = couplings, hidden = MLP width, two hidden layers)",
        paper: "Dinh, Sohl-Dickstein, Bengio, arXiv:1605.08803",
        vector_sizes: sizes(8, 256),
        image_sizes: sizes(8, 256),
        large_image_sizes: sizes(8, 256),
        reverse_kl: false,
    },
    ZooEntry {
        flow: FlowName::Maf,
        name: "maf",
        summary: "MADEs, the order reversed between layers (layers = MADEs, hidden = width of their two hidden layers)",
        paper: "Papamakarios, Pavlakou, Murray, arXiv:1705.07057",
        vector_sizes: sizes(5, 512),
        image_sizes: sizes(5, 512),
        large_image_sizes: sizes(5, 512),
        reverse_kl: false,
    },
    ZooEntry {
        flow: FlowName::Iaf,
        name: "iaf",
        summary: "a sampler by reverse KL, to --target or distilled from an MAF on 2-D --data (layers = MADEs, hidden = width)",
        paper: "Kingma et al., arXiv:1606.04934",
        vector_sizes: sizes(8, 256),
        image_sizes: None,
        large_image_sizes: None,
        reverse_kl: true,
    },
    ZooEntry {
        flow: FlowName::Nice,
        name: "nice",
        summary: "additive couplings, MLPs of 4 hidden layers (5 on MNIST-size images, as the paper), a diagonal rescaling, logistic prior (layers = couplings, hidden = width)",
        paper: "Dinh, Krueger, Bengio, arXiv:1410.8516",
        vector_sizes: sizes(4, 128),
        image_sizes: sizes(4, 256),
        large_image_sizes: sizes(4, 1000),
        reverse_kl: false,
    },
    ZooEntry {
        flow: FlowName::RealNvpImage,
        name: "realnvp-image",
        summary: "the multi-scale RealNVP, 2 scales (3 on MNIST-size images: 28 -> 14 -> 7) (layers = couplings per group, hidden = ResNet channels)",
        paper: "Dinh, Sohl-Dickstein, Bengio, arXiv:1605.08803, §3.6",
        vector_sizes: None,
        image_sizes: sizes(3, 32),
        large_image_sizes: sizes(3, 32),
        reverse_kl: false,
    },
    ZooEntry {
        flow: FlowName::Glow,
        name: "glow",
        summary: "ActNorm, LU 1x1 convolution, sigmoid-scale affine coupling; 2 levels on images (layers = steps per level, hidden = network width or channels)",
        paper: "Kingma, Dhariwal, arXiv:1807.03039",
        vector_sizes: sizes(8, 128),
        image_sizes: sizes(4, 32),
        large_image_sizes: sizes(4, 32),
        reverse_kl: false,
    },
    ZooEntry {
        flow: FlowName::Nsf,
        name: "nsf",
        summary: "rational-quadratic spline couplings over alternating halves, K = 8 bins on [-5, 5] (layers = couplings, hidden = MLP width, two hidden layers)",
        paper: "Durkan, Bekasov, Murray, Papamakarios, arXiv:1906.04032",
        vector_sizes: sizes(4, 128),
        image_sizes: sizes(4, 256),
        large_image_sizes: sizes(4, 256),
        reverse_kl: false,
    },
    ZooEntry {
        flow: FlowName::NsfAr,
        name: "nsf-ar",
        summary: "autoregressive rational-quadratic splines on MADEs, K = 8 bins on [-5, 5], order reversed between layers (layers = MADEs, hidden = width of their two hidden layers)",
        paper: "Durkan, Bekasov, Murray, Papamakarios, arXiv:1906.04032",
        vector_sizes: sizes(4, 128),
        image_sizes: sizes(4, 256),
        large_image_sizes: sizes(4, 256),
        reverse_kl: false,
    },
    ZooEntry {
        flow: FlowName::NsfImage,
        name: "nsf-image",
        summary: "the multi-scale RealNVP with rational-quadratic spline couplings, K = 8 bins on [-5, 5] (layers = couplings per group, hidden = ResNet channels)",
        paper: "Durkan, Bekasov, Murray, Papamakarios, arXiv:1906.04032, §5.2",
        vector_sizes: None,
        image_sizes: sizes(3, 32),
        large_image_sizes: sizes(3, 32),
        reverse_kl: false,
    },
];

/// A base distribution the command line can put under any flow
/// (`--base normal|diag|mixture:K`), replacing the architecture's own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BaseName {
    /// The standard normal N(0, I).
    Normal,
    /// A [`DiagonalNormal`](super::DiagonalNormal) with trainable mean and log-scale.
    Diag,
    /// A [`GaussianMixture`](super::GaussianMixture) of this many trainable components.
    Mixture(usize),
}

impl BaseName {
    /// The prior on `dim` dimensions.
    pub fn prior(&self, dim: usize) -> Prior {
        match *self {
            BaseName::Normal => StandardNormal::new(dim).into(),
            BaseName::Diag => super::DiagonalNormal::new(dim).into(),
            BaseName::Mixture(k) => super::GaussianMixture::new(dim, k).into(),
        }
    }
}

impl std::str::FromStr for BaseName {
    type Err = String;
    /// `normal`, `diag`, or `mixture:K` with K in 1..=1024.
    fn from_str(name: &str) -> Result<Self, String> {
        match name {
            "normal" => Ok(BaseName::Normal),
            "diag" => Ok(BaseName::Diag),
            _ => match name.strip_prefix("mixture:").map(str::parse::<usize>) {
                Some(Ok(k)) if (1..=1024).contains(&k) => Ok(BaseName::Mixture(k)),
                _ => Err(format!(
                    "unknown base '{name}': available: normal, diag, mixture:K (K components, 1 to 1024)"
                )),
            },
        }
    }
}

/// What [`FlowName::layers`] builds: the prior and the layers in the
/// forward (latent → data) order, ready for [`Sequential::new`](super::Sequential::new).
pub type PriorAndLayers<T> = (Prior, Vec<Box<dyn Flow<T>>>);

/// Why the zoo cannot build what was asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ZooError {
    /// No architecture has this name.
    UnknownName(String),
    /// The architecture does not model this kind of data.
    Unsupported {
        /// The architecture's name.
        flow: &'static str,
        /// What it was given.
        data: DataShape,
    },
    /// A size is zero.
    ZeroSize {
        /// `layers` or `hidden`.
        field: &'static str,
    },
    /// A coupling architecture was given 1-D vectors: it splits the
    /// features into two parts, so it needs at least 2.
    TooFewFeatures {
        /// The architecture's name.
        flow: &'static str,
    },
    /// The architecture has no conditional form (the IAF, a sampler
    /// trained by reverse KL).
    NotConditional {
        /// The architecture's name.
        flow: &'static str,
    },
}

impl std::fmt::Display for ZooError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ZooError::UnknownName(name) => {
                let names: Vec<&str> = ZOO.iter().map(|e| e.name).collect();
                write!(f, "unknown flow '{name}': available: {}", names.join(", "))
            }
            ZooError::Unsupported { flow, data } => match data {
                DataShape::Vector(dim) => write!(
                    f,
                    "{flow} models images, and this data is {dim}-D vectors: use --data digits"
                ),
                DataShape::Image(shape) => write!(
                    f,
                    "{flow} does not model images such as these {shape:?} (use its vector data)"
                ),
            },
            ZooError::ZeroSize { field } => write!(f, "{field} must be at least 1"),
            ZooError::TooFewFeatures { flow } => write!(
                f,
                "{flow} splits the features into two parts and this data has 1: \
                 use maf or nsf-ar"
            ),
            ZooError::NotConditional { flow } => write!(
                f,
                "{flow} has no conditional form: use one of the maximum-likelihood flows"
            ),
        }
    }
}

impl std::error::Error for ZooError {}

impl std::str::FromStr for FlowName {
    type Err = ZooError;
    fn from_str(name: &str) -> Result<Self, ZooError> {
        ZOO.iter()
            .find(|e| e.name == name)
            .map(|e| e.flow)
            .ok_or_else(|| ZooError::UnknownName(name.to_string()))
    }
}

impl FlowName {
    /// Its row of the zoo.
    pub fn entry(&self) -> &'static ZooEntry {
        ZOO.iter()
            .find(|e| e.flow == *self)
            .expect("every FlowName has a row in ZOO")
    }

    /// The name the command line uses (`"realnvp-image"`).
    pub fn name(&self) -> &'static str {
        self.entry().name
    }

    /// The default sizes on `data`.
    ///
    /// # Errors
    /// [`ZooError::Unsupported`] if the architecture does not model `data`.
    pub fn default_sizes(&self, data: DataShape) -> Result<Sizes, ZooError> {
        let entry = self.entry();
        let sizes = match data {
            DataShape::Vector(_) => entry.vector_sizes,
            DataShape::Image(_) if data.is_large_image() => entry.large_image_sizes,
            DataShape::Image(_) => entry.image_sizes,
        };
        sizes.ok_or(ZooError::Unsupported {
            flow: entry.name,
            data,
        })
    }

    /// The prior and the layers (forward order, latent → data; flat
    /// `[batch, dim]` on both ends) of this architecture on `data` with
    /// `sizes`, initialised from `rng`. The vector flows see images
    /// flattened; `glow` on images uses 2 levels (28×28 images and other
    /// sizes that halve twice), on vectors K steps of an MLP Glow.
    ///
    /// # Errors
    /// [`ZooError::ZeroSize`] for a zero size; [`ZooError::Unsupported`] for
    /// data the architecture does not model.
    pub fn layers<T: Element, R: Rng + ?Sized>(
        &self,
        data: DataShape,
        sizes: Sizes,
        rng: &mut R,
    ) -> Result<PriorAndLayers<T>, ZooError> {
        self.conditional_layers(data, sizes, 0, rng)
    }

    /// [`FlowName::layers`] for a model of p(x | c): every conditioner
    /// (coupling network, MADE, Glow's split priors) also reads a context
    /// of width `context_dim`; the layers without conditioners pass it on.
    /// With `context_dim = 0` it is [`FlowName::layers`], draw for draw.
    /// The base stays the architecture's own.
    ///
    /// # Errors
    /// As [`FlowName::layers`], and [`ZooError::NotConditional`] for the
    /// IAF with `context_dim > 0`.
    ///
    /// # Derivation
    /// [`derivations::conditioning`](crate::derivations::conditioning)
    /// (docs/derivations/conditioning.md).
    pub fn conditional_layers<T: Element, R: Rng + ?Sized>(
        &self,
        data: DataShape,
        sizes: Sizes,
        context_dim: usize,
        rng: &mut R,
    ) -> Result<PriorAndLayers<T>, ZooError> {
        if context_dim > 0 && *self == FlowName::Iaf {
            return Err(ZooError::NotConditional { flow: self.name() });
        }
        let k = context_dim;
        for (field, value) in [("layers", sizes.layers), ("hidden", sizes.hidden)] {
            if value == 0 {
                return Err(ZooError::ZeroSize { field });
            }
        }
        self.default_sizes(data)?;
        let dim = data.dim();
        let couples = matches!(
            self,
            FlowName::RealNvp | FlowName::Nice | FlowName::Nsf | FlowName::Glow
        );
        if dim < 2 && couples {
            return Err(ZooError::TooFewFeatures { flow: self.name() });
        }
        let Sizes { layers, hidden } = sizes;
        let normal: Prior = StandardNormal::new(dim).into();
        Ok(match (self, data.image()) {
            (FlowName::RealNvp, _) => (
                normal,
                conditional_realnvp_layers(dim, layers, hidden, k, rng),
            ),
            (FlowName::Maf, _) => (
                normal,
                conditional_maf_layers(dim, layers, &[hidden, hidden], k, rng),
            ),
            (FlowName::Iaf, _) => (
                normal,
                iaf_layers(dim, layers, &[hidden, hidden], Transform::Affine, rng),
            ),
            (FlowName::Nice, _) => {
                let nice = NiceConfig {
                    couplings: layers,
                    hidden,
                    // The paper's MNIST networks: 5 hidden layers.
                    depth: if data.is_large_image() { 5 } else { 4 },
                    ..NiceConfig::default()
                };
                (
                    Logistic::new(dim).into(),
                    conditional_nice_layers(dim, nice, k, rng),
                )
            }
            (FlowName::RealNvpImage | FlowName::NsfImage, Some(shape)) => {
                let realnvp = RealNvpImageConfig {
                    // 28 → 14 → 7 on MNIST (3 scales need sides divisible by 4).
                    scales: if data.is_large_image() && shape[1] % 4 == 0 && shape[2] % 4 == 0 {
                        3
                    } else {
                        2
                    },
                    checkerboard: layers,
                    channel: layers,
                    last: layers + 1,
                    hidden,
                    spline: (*self == FlowName::NsfImage).then(zoo_spline),
                    ..RealNvpImageConfig::default()
                };
                (
                    normal,
                    conditional_realnvp_image_layers(shape, realnvp, k, rng),
                )
            }
            (FlowName::RealNvpImage | FlowName::NsfImage, None) => {
                unreachable!("default_sizes refused vectors")
            }
            (FlowName::Glow, image) => {
                let glow = GlowConfig {
                    steps: layers,
                    hidden,
                    ..GlowConfig::default()
                };
                match image {
                    Some(shape) => (normal, conditional_glow_layers(shape, glow, k, rng)),
                    None => (normal, conditional_glow_vector_layers(dim, glow, k, rng)),
                }
            }
            (FlowName::Nsf, _) => (
                normal,
                conditional_nsf_layers(dim, layers, hidden, zoo_spline(), k, rng),
            ),
            (FlowName::NsfAr, _) => (
                normal,
                conditional_nsf_ar_layers(dim, layers, &[hidden, hidden], zoo_spline(), k, rng),
            ),
        })
    }
}

/// The spline of the zoo's `nsf`, `nsf-ar` and `nsf-image`.
fn zoo_spline() -> RationalQuadraticSpline {
    RationalQuadraticSpline::new(ZOO_SPLINE_BINS, ZOO_SPLINE_BOUND)
}

/// One line per architecture and its defaults, for `--help`:
/// `realnvp: affine couplings ... [layers x hidden: 8 x 256]`.
pub fn help_table() -> String {
    let show = |s: Option<Sizes>| s.map(|s| format!("{} x {}", s.layers, s.hidden));
    ZOO.iter()
        .map(|e| {
            let mut defaults = match (show(e.vector_sizes), show(e.image_sizes)) {
                (Some(v), Some(i)) if v == i => v,
                (Some(v), Some(i)) => format!("{v} on vectors, {i} on images"),
                (Some(v), None) => format!("{v}, vectors only"),
                (None, Some(i)) => format!("{i}, images only"),
                (None, None) => "no data".into(),
            };
            if let Some(large) =
                show(e.large_image_sizes).filter(|_| e.large_image_sizes != e.image_sizes)
            {
                defaults = format!("{defaults}; {large} on MNIST-size images");
            }
            format!("{}: {} [layers x hidden: {defaults}]", e.name, e.summary)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn every_name_parses_to_its_own_entry() {
        for entry in ZOO {
            let flow: FlowName = entry.name.parse().unwrap();
            assert_eq!(flow, entry.flow);
            assert_eq!(flow.name(), entry.name);
        }
        assert!("spline".parse::<FlowName>().is_err());
    }

    #[test]
    fn every_flow_builds_on_the_data_it_models() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0);
        for entry in ZOO {
            for data in [DataShape::Vector(2), DataShape::Image([1, 4, 4])] {
                let small = Sizes {
                    layers: 1,
                    hidden: 4,
                };
                let built = entry.flow.layers::<f64, _>(data, small, &mut rng);
                match entry.flow.default_sizes(data) {
                    Ok(_) => {
                        let (prior, layers) = built.unwrap();
                        assert_eq!(prior.dim(), data.dim(), "{}", entry.name);
                        assert!(!layers.is_empty(), "{}", entry.name);
                    }
                    Err(e) => assert_eq!(built.err(), Some(e)),
                }
            }
        }
    }

    /// The number of parameters of `layers`.
    fn count(layers: &[Box<dyn Flow<f64>>]) -> usize {
        layers
            .iter()
            .flat_map(|l| l.params())
            .map(|p| p.value.numel())
            .sum()
    }

    #[test]
    fn mnist_scale_layouts_apply_from_16_pixels_and_leave_the_digits_alone() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0);
        let digits = DataShape::Image([1, 8, 8]);
        let mnist = DataShape::Image([1, 28, 28]);
        assert!(!digits.is_large_image() && mnist.is_large_image());
        assert!(!DataShape::Vector(784).is_large_image());
        for entry in ZOO {
            let (small, large) = (
                entry.flow.default_sizes(digits),
                entry.flow.default_sizes(mnist),
            );
            assert_eq!(small.ok(), entry.image_sizes, "{}", entry.name);
            assert_eq!(large.ok(), entry.large_image_sizes, "{}", entry.name);
        }
        let nice = FlowName::Nice.default_sizes(mnist).unwrap();
        assert_eq!((nice.layers, nice.hidden), (4, 1000));
        // NICE: 5 hidden layers on MNIST, 4 on the digits; RealNVP: 3
        // scales on MNIST, 2 on the digits. Each against the builder with
        // the layout spelled out (parameter counts differ between layouts).
        let tiny = Sizes {
            layers: 2,
            hidden: 4,
        };
        for (data, depth, scales) in [(digits, 4, 2), (mnist, 5, 3)] {
            let (_, zoo) = FlowName::Nice
                .layers::<f64, _>(data, tiny, &mut rng)
                .unwrap();
            let config = NiceConfig {
                couplings: 2,
                hidden: 4,
                depth,
                ..NiceConfig::default()
            };
            let spelled = conditional_nice_layers::<f64, _>(data.dim(), config, 0, &mut rng);
            assert_eq!(count(&zoo), count(&spelled), "NICE depth {depth}");
            let (_, zoo) = FlowName::RealNvpImage
                .layers::<f64, _>(data, tiny, &mut rng)
                .unwrap();
            let config = RealNvpImageConfig {
                scales,
                checkerboard: 2,
                channel: 2,
                last: 3,
                hidden: 4,
                ..RealNvpImageConfig::default()
            };
            let image = data.image().unwrap();
            let spelled = conditional_realnvp_image_layers::<f64, _>(image, config, 0, &mut rng);
            assert_eq!(count(&zoo), count(&spelled), "RealNVP {scales} scales");
        }
        let other = NiceConfig {
            couplings: 2,
            hidden: 4,
            depth: 4,
            ..NiceConfig::default()
        };
        let (_, zoo) = FlowName::Nice
            .layers::<f64, _>(mnist, tiny, &mut rng)
            .unwrap();
        let depth_4 = conditional_nice_layers::<f64, _>(784, other, 0, &mut rng);
        assert_ne!(count(&zoo), count(&depth_4));
        // A large image whose sides do not divide by 4 keeps 2 scales.
        let odd = DataShape::Image([1, 18, 18]);
        assert!(odd.is_large_image());
        let built = FlowName::RealNvpImage.layers::<f64, _>(odd, tiny, &mut rng);
        assert!(built.is_ok());
    }
}
