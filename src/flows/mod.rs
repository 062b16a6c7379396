//! Normalizing flows: the [`Flow`] trait, the layers, their composition, and
//! [`FlowModel`] (prior + flow) with `log_prob` and `sample`.
//!
//! **Direction.** As in the lecture, `forward` maps latent z to data x (the
//! generative direction, x = f(z)); `inverse` maps x to z. Each returns the
//! output and the per-sample log|det J| of the map it computes, so
//! log p(x) = log π(z) + logdet_inverse(x) with z = inverse(x), and
//! logdet_forward(z) = −logdet_inverse(f(z)).
//!
//! | layer | file | log-det | source |
//! | --- | --- | --- | --- |
//! | [`AdditiveCoupling`] | `coupling.rs` | 0 | NICE, arXiv:1410.8516 |
//! | [`Rescale`] | `rescale.rs` | Σ log Sᵢ | NICE, arXiv:1410.8516 |
//! | [`AffineCoupling`] | `coupling.rs` | Σ s(z₁) (tanh or Glow's sigmoid scale) | RealNVP, arXiv:1605.08803 |
//! | [`ImageCoupling`] | `coupling.rs` | Σ s(z₁) over channels and pixels (checkerboard or channel mask) | RealNVP; Glow, arXiv:1807.03039 |
//! | [`BatchNorm`] | `batchnorm.rs` | H·W·Σ (γ − ½ log(v + ε)) (inverse) | RealNVP §3.7; MAF |
//! | [`ActNorm`] | `actnorm.rs` | H·W·Σ log scale | Glow, arXiv:1807.03039 |
//! | [`InvConv1x1`] | `inv_conv.rs` | H·W·log\|det W\| (plain or LU) | Glow, arXiv:1807.03039 |
//! | [`Permutation`] | `permute.rs` | 0 | — |
//! | [`Squeeze`], [`Reshape`] | `squeeze.rs` | 0 | RealNVP §3.6 |
//! | [`Split`] | `squeeze.rs` | inner's (+ −Σ log σ with a learned prior) | RealNVP §3.6; Glow |
//! | [`Maf`] | `autoregressive.rs` | Σ ℓᵢ(x) (ℓ from a MADE of x_{<i}) | MAF, arXiv:1705.07057 |
//! | [`Iaf`] | `autoregressive.rs` | Σ ℓᵢ(z) (ℓ from a MADE of z_{<i}) | IAF, arXiv:1606.04934 |
//! | [`Reverse`] | `permute.rs` | 0 | — |
//! | [`Sequential`] | `sequential.rs` | sum of the layers' | — |
//! | [`Logit`](crate::flows::preprocess::Logit) | `data/preprocess.rs` | Σ log((1−2α)/(p(1−p))) (inverse) | RealNVP §4.1 |
//!
//! Every layer is proved by [`check::check_flow`] (invertibility, log-det
//! against a finite-difference Jacobian) in `proptests/flows.rs`.
//! Read the trait below, then `coupling.rs`, then `model.rs`.
//!
//! Derivation: [`derivations::change_of_variables`](crate::derivations::change_of_variables)
//! (docs/derivations/change-of-variables.md).

pub mod actnorm;
pub mod architectures;
pub mod autoregressive;
pub mod batchnorm;
pub mod bound;
pub mod check;
pub mod coupling;
pub mod error;
pub mod flow;
pub mod image_coupling;
pub mod inv_conv;
pub mod model;
pub mod permute;
pub mod preprocess;
pub mod prior;
pub mod registry;
pub mod rescale;
pub mod sequential;
pub mod spec;
pub mod squeeze;
pub mod standardize;

pub use actnorm::ActNorm;
pub use autoregressive::{Iaf, Maf, SequentialMethod, Transform};
pub use batchnorm::BatchNorm;
pub use coupling::{AdditiveCoupling, AffineCoupling, Mask, ScaleKind};
pub use error::FlowError;
pub use flow::Flow;
pub use image_coupling::{ImageCoupling, ImageMask};
pub use inv_conv::InvConv1x1;
pub use model::FlowModel;
pub use permute::{Permutation, Reverse};
pub use preprocess::{Dequantize, Logit};
pub use prior::{Logistic, Prior, StandardNormal};
pub use rescale::Rescale;
pub use sequential::Sequential;
pub use squeeze::{Reshape, Split, Squeeze};
pub use standardize::Standardize;
