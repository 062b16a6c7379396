//! Normalizing flows: the [`Flow`] trait, the layers, their composition, and
//! [`FlowModel`] (prior + flow) with `log_prob` and `sample`.
//!
//! **Direction.** As in the lecture, `forward` maps latent z to data x (the
//! generative direction, x = f(z)); `inverse` maps x to z. Each returns the
//! output and the per-sample log|det J| of the map it computes, so
//! log p(x) = log π(z) + logdet_inverse(x) with z = inverse(x), and
//! logdet_forward(z) = −logdet_inverse(f(z)).
//!
//! Read [`flow`] (the trait) first, then `coupling.rs`, then `model.rs`.
//!
//! ## The layers
//!
//! Each layer's file holds the layer, its `to_spec` and its `from_spec`; the
//! derivation column links to the section of docs/derivations that derives it.
//!
//! | layer | file | log-det | source | derivation |
//! | --- | --- | --- | --- | --- |
//! | [`AdditiveCoupling`] | `coupling.rs` | 0 | NICE, arXiv:1410.8516 | [NICE](crate::derivations::nice#the-additive-coupling) |
//! | [`Rescale`] | `rescale.rs` | Σ σᵢ (σ = log S) | NICE | [NICE](crate::derivations::nice#rescaling) |
//! | [`AffineCoupling`] ([`Mask`], [`ScaleKind`]) | `coupling.rs` | Σ s(z₁) (tanh or Glow's sigmoid scale) | RealNVP, arXiv:1605.08803 | [affine coupling](crate::derivations::affine_coupling#the-jacobian-and-its-log-determinant) |
//! | [`ImageCoupling`] ([`ImageMask`]) | `image_coupling.rs` | Σ s(z₁) over channels and pixels (checkerboard or channel mask) | RealNVP; Glow, arXiv:1807.03039 | [RealNVP](crate::derivations::realnvp#checkerboard-coupling) |
//! | [`BatchNorm`] | `batchnorm.rs` | H·W·Σ (γ − ½ log(v + ε)) (inverse) | RealNVP §3.7; MAF | [RealNVP](crate::derivations::realnvp#batch-normalisation-as-a-bijector) |
//! | [`ActNorm`] | `actnorm.rs` | H·W·Σ log scale | Glow, arXiv:1807.03039 | [Glow](crate::derivations::glow#actnorm) |
//! | [`InvConv1x1`] | `inv_conv.rs` | H·W·log\|det W\| (plain or LU) | Glow, arXiv:1807.03039 | [Glow](crate::derivations::glow#the-invertible-11-convolution) |
//! | [`Reverse`] | `permute.rs` | 0 | RealNVP §3.5 | [permutations](crate::derivations::permutations#reverse) |
//! | [`Permutation`] | `permute.rs` | 0 | Glow §3.2 (shuffle) | [permutations](crate::derivations::permutations#permutation) |
//! | [`Squeeze`] | `squeeze.rs` | 0 | RealNVP §3.6 | [RealNVP](crate::derivations::realnvp#squeeze) |
//! | [`Reshape`] | `squeeze.rs` | 0 | — | [permutations](crate::derivations::permutations#reshape) |
//! | [`Split`] | `squeeze.rs` | inner's (+ −Σ log σ with a learned prior) | RealNVP §3.6; Glow | [RealNVP](crate::derivations::realnvp#multi-scale-factoring-out) |
//! | [`Maf`] ([`Transform`]) | `autoregressive.rs` | Σ ℓᵢ(x) (ℓ from a MADE of x_{<i}) | MAF, arXiv:1705.07057 | [MAF](crate::derivations::maf#the-jacobian-and-its-log-determinant) |
//! | [`Iaf`] ([`Transform`]) | `iaf.rs` | Σ ℓᵢ(z) (ℓ from a MADE of z_{<i}) | IAF, arXiv:1606.04934 | [IAF](crate::derivations::iaf#the-map) |
//! | [`SplineCoupling`] ([`RationalQuadraticSpline`]) | `spline_coupling.rs`, `spline.rs` | Σ log τ′(z₂ᵢ) (τ a spline g or its inverse, from a network of z₁) | NSF, arXiv:1906.04032 | [splines](crate::derivations::splines#the-coupling-and-the-autoregressive-layer) |
//! | [`ImageSplineCoupling`] ([`ImageMask`], [`RationalQuadraticSpline`]) | `image_spline_coupling.rs` | Σ log τ′ over the transformed channels and pixels (τ a spline or its inverse, from a conv net of z₁) | NSF, arXiv:1906.04032; RealNVP | [splines](crate::derivations::splines#image-spline-couplings) |
//! | [`SplineMaf`] ([`RationalQuadraticSpline`]) | `spline_maf.rs`, `spline.rs` | Σ log τ′(zᵢ) (τ a spline or its inverse, from a MADE of x_{<i}) | NSF, arXiv:1906.04032 | [splines](crate::derivations::splines#the-coupling-and-the-autoregressive-layer) |
//! | [`Sequential`] | `sequential.rs` | sum of its layers' | Rezende & Mohamed, arXiv:1505.05770 | [change of variables](crate::derivations::change_of_variables#composition-why-log-dets-add) |
//! | [`Logit`] | `preprocess.rs` | Σ log((1−2α)/(p(1−p))) (inverse) | RealNVP §4.1 | [preprocessing](crate::derivations::preprocessing#logit) |
//! | [`Standardize`] | `standardize.rs` | Σ log σᵢ | — | [preprocessing](crate::derivations::preprocessing#standardize) |
//!
//! Beside the layers: [`Dequantize`] (`preprocess.rs`) is not a layer (its
//! noise makes it a random map), but its scaling's log-det −D·log(levels)
//! is counted ([derivation](crate::derivations::preprocessing#dequantize));
//! the priors [`StandardNormal`] and [`Logistic`] are in `prior.rs`, the
//! learnable bases [`DiagonalNormal`] and [`GaussianMixture`] in
//! `learned_base.rs`,
//! [`FlowModel`] in `model.rs`, the builders of the paper architectures (NICE,
//! the multi-scale RealNVP, Glow) in `architectures.rs`, and the [`zoo`]: every
//! named architecture (`realnvp`, `maf`, `iaf`, `nice`, `realnvp-image`,
//! `glow`, `nsf`, `nsf-ar`) with its default sizes per kind of data and its builder.
//!
//! **Conditioning** (p(x | c)): the couplings (the image coupling
//! [`ImageCoupling`] and [`ImageSplineCoupling`] too), [`Maf`], [`Iaf`], [`SplineMaf`] and Glow's
//! learned split prior ([`Split`]) have `conditional` constructors whose
//! conditioners also read a context c `[batch, context_dim]`
//! ([`Flow::forward_with_context`], [`Flow::inverse_with_context`]); the
//! other layers pass c on, and [`zoo::FlowName::conditional_layers`] builds
//! every maximum-likelihood architecture of the zoo so. [`ConditionalNormal`] is a base whose mean and
//! log-scale depend on c, [`ContextEmbedding`] a learned network before
//! them all, and [`FlowModel::log_prob_given`] / [`FlowModel::sample_given`]
//! the checked entry points ([`ContextError`]). [`context`] holds the
//! checks and [`context::AtContext`], which fixes c so that
//! [`check_flow`](check::check_flow) proves a conditional layer at that c;
//! [`check_layers_given`](check::check_layers_given) proves a trained
//! conditional model layer by layer, each row at its own c
//! ([derivation](crate::derivations::conditioning)).
//!
//! The machinery every layer shares: [`flow`] (the trait), [`error`]
//! ([`FlowError`], which names the layer's place, kind, field and value),
//! [`spec`] ([`LayerSpec`](spec::LayerSpec), a layer's architecture as data,
//! and its typed accessors), [`registry`] (each kind's reader), and
//! [`check`] ([`check_flow`](check::check_flow), the proofs of DESIGN.md,
//! public). Every layer is proved by `check_flow` (invertibility, log-det
//! against a finite-difference Jacobian) in `proptests/flows.rs`,
//! `proptests/autoregressive.rs` and (the spline layers)
//! `proptests/splines.rs`.
//!
//! ## Add a layer
//!
//! A new layer is one file and one line; nothing else in the crate names it.
//! For a layer `MyLayer`:
//!
//! 1. **Its file**, `flows/my_layer.rs`, declared here with `pub mod` and
//!    re-exported with `pub use`, and a row in the table above. The struct
//!    carries the doc of STYLE.md §3. `impl Flow<T>` gives `forward` and
//!    `inverse` (each returning the output and its log-det, `[batch]`),
//!    `params` and `params_mut` if it trains, `per_sample` (true when it maps
//!    each sample on its own), and `to_spec`, which writes the layer's kind
//!    and the fields that rebuild it:
//!    `LayerSpec::new("MyLayer").with("dim", self.dim)`. Beside it,
//!    `MyLayer::from_spec(spec)` reads them back with the typed accessors of
//!    [`LayerSpec`](spec::LayerSpec) (`usize`, `f64s`, `choice`, ...), each of
//!    which refuses a missing or bad value with a [`FlowError::BadSpec`]
//!    naming the field. Parameters are not in the spec: the checkpoint stores
//!    them by name and fills the placeholders `from_spec` made.
//! 2. **One line in `registry.rs`**, in the list of kinds:
//!    `("MyLayer", |s, _| Ok(Box::new(MyLayer::from_spec(s)?)))`. (A
//!    container passes the second argument, the function that builds its
//!    children, on to its own `from_spec`.) Checkpoints now save and load the
//!    layer; `every_layer_kind_round_trips` in `tests/checkpoint.rs` fails
//!    until a model holding it is round-tripped there.
//! 3. **Its section of a derivation page** in docs/derivations (a new page
//!    gets its module in [`derivations`](crate::derivations)): the map, the
//!    Jacobian, the log-det, the tests that prove it. The layer's
//!    `# Derivation` links to the section's anchor;
//!    `tests/derivation_pages.rs` checks that the anchor and every test the
//!    page names exist.
//! 4. **A `check_flow` case** in `proptests/flows.rs` (and the
//!    triangular-Jacobian check of `proptests/autoregressive.rs` if it is
//!    autoregressive): [`check_flow`](check::check_flow) at random inputs and
//!    parameters in f64, and [`gradcheck_params`](check::gradcheck_params) if
//!    it trains.
//!
//! A layer defined **outside the crate** does steps 1 and 4 in its own
//! crate, and instead of step 2 registers its reader once, before loading, for
//! each element type it is loaded as:
//!
//! ```text
//! flowzoo::flows::registry::register::<f32>("MyLayer", |spec, _| {
//!     Ok(Box::new(MyLayer::from_spec(spec)?))
//! });
//! ```
//!
//! Then [`registry::build_layer`], and so a checkpoint, reads it like a
//! layer of the crate; loading a model that holds an unregistered kind fails
//! with [`FlowError::UnknownKind`] naming the kind and the layer's place.
//! `tests/registry.rs` walks through all of this with a layer defined in the
//! test.
//!
//! Derivation of the whole: [`derivations::change_of_variables`](crate::derivations::change_of_variables)
//! (docs/derivations/change-of-variables.md).

pub mod actnorm;
pub mod architectures;
pub mod autoregressive;
pub mod batchnorm;
pub mod bound;
pub mod check;
pub mod context;
pub mod coupling;
pub mod error;
pub mod flow;
pub mod iaf;
pub mod image_coupling;
pub mod image_spline_coupling;
pub mod inv_conv;
pub mod learned_base;
pub mod model;
pub mod permute;
pub mod preprocess;
pub mod prior;
pub mod registry;
pub mod rescale;
pub mod sequential;
pub mod spec;
pub mod spline;
pub mod spline_coupling;
pub mod spline_maf;
pub mod squeeze;
pub mod standardize;
pub mod zoo;

pub use actnorm::ActNorm;
pub use autoregressive::{Maf, SequentialMethod, Transform};
pub use batchnorm::BatchNorm;
pub use context::{ContextEmbedding, ContextError};
pub use coupling::{AdditiveCoupling, AffineCoupling, Mask, ScaleKind};
pub use error::FlowError;
pub use flow::Flow;
pub use iaf::Iaf;
pub use image_coupling::{ImageCoupling, ImageMask};
pub use image_spline_coupling::ImageSplineCoupling;
pub use inv_conv::InvConv1x1;
pub use learned_base::{ConditionalNormal, DiagonalNormal, GaussianMixture};
pub use model::FlowModel;
pub use permute::{Permutation, Reverse};
pub use preprocess::{Dequantize, Logit};
pub use prior::{Logistic, Prior, StandardNormal};
pub use rescale::Rescale;
pub use sequential::Sequential;
pub use spline::{RationalQuadraticSpline, SplineDirection};
pub use spline_coupling::SplineCoupling;
pub use spline_maf::SplineMaf;
pub use squeeze::{Reshape, Split, Squeeze};
pub use standardize::Standardize;
