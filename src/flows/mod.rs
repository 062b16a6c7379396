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
//! | [`Logit`](crate::data::preprocess::Logit) | `data/preprocess.rs` | Σ log((1−2α)/(p(1−p))) (inverse) | RealNVP §4.1 |
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
pub mod check;
pub mod coupling;
pub mod energy;
pub mod inv_conv;
pub mod model;
pub mod permute;
pub mod prior;
pub mod rescale;
pub mod sequential;
pub mod spec;
pub mod squeeze;

pub use actnorm::ActNorm;
pub use autoregressive::{Iaf, Maf, SequentialMethod, Transform};
pub use batchnorm::BatchNorm;
pub use coupling::{AdditiveCoupling, AffineCoupling, ImageCoupling, ImageMask, Mask, ScaleKind};
pub use inv_conv::InvConv1x1;
pub use model::FlowModel;
pub use permute::{Permutation, Reverse};
pub use prior::{Logistic, Prior, StandardNormal};
pub use rescale::Rescale;
pub use sequential::Sequential;
pub use squeeze::{Reshape, Split, Squeeze};

use crate::autodiff::{Param, Tape, Var};
use crate::error::CheckpointError;
use crate::tensor::{Element, Tensor};

/// A bijection with a tractable log-determinant, written once for training
/// (on a recording [`Tape`]) and inference (on a no-grad tape).
///
/// # Shapes
/// Vector flows take `[batch, dim]`; image flows `[batch, channels, height, width]`.
/// Both methods return the output (same number of elements per sample) and
/// the per-sample log|det J| of shape `[batch]`, in nats.
pub trait Flow<T: Element>: Send + Sync {
    /// The layer's name, for messages (`"AffineCoupling"`).
    fn name(&self) -> String;

    /// x = f(z) and log|det ∂x/∂z| per sample.
    fn forward<'t>(&self, z: &Var<'t, T>) -> (Var<'t, T>, Var<'t, T>);

    /// z = f⁻¹(x) and log|det ∂z/∂x| per sample.
    fn inverse<'t>(&self, x: &Var<'t, T>) -> (Var<'t, T>, Var<'t, T>);

    /// The trainable parameters (none by default).
    fn params(&self) -> Vec<&Param<T>> {
        Vec::new()
    }

    /// The trainable parameters, mutably (none by default).
    fn params_mut(&mut self) -> Vec<&mut Param<T>> {
        Vec::new()
    }

    /// Data-dependent initialisation before training (ActNorm's): takes a
    /// batch `x` on the data side, lets every layer that has not been
    /// initialised set its parameters from the batch it sees, and returns
    /// z = f⁻¹(x) computed with the new parameters. Layers without such
    /// state (the default) just return their inverse; containers pass the
    /// batch through their layers in the inverse order. A layer initialises
    /// once: its initialised flag is part of its state.
    ///
    /// # Derivation
    /// [`derivations::glow`](crate::derivations::glow) (docs/derivations/glow.md, ActNorm).
    fn initialize(&mut self, x: &Tensor<T>) -> Tensor<T> {
        self.inverse_tensor(x).0
    }

    /// The layer's architecture as data (kind, sizes, masks, orders, flags,
    /// sub-layers), from which [`spec::build_layer`] rebuilds it for a
    /// checkpoint. Every layer of the crate has one (the kinds are
    /// [`spec::LAYER_KINDS`]); `None` (the default) marks a layer defined
    /// elsewhere that cannot be saved:
    /// saving a model holding it fails with
    /// [`CheckpointError::NotSaveable`] naming the layer.
    fn spec(&self) -> Option<spec::LayerSpec> {
        None
    }

    /// Non-trainable state tensors, by name (BatchNorm's running
    /// statistics); saved and restored with the checkpoint. None by default.
    fn buffers(&self) -> Vec<(String, Tensor<T>)> {
        Vec::new()
    }

    /// Restores the tensors [`Flow::buffers`] returned (see
    /// [`spec::take_buffers`]).
    ///
    /// # Errors
    /// [`CheckpointError::ArchitectureMismatch`] for a name the layer does
    /// not hold or a shape that differs; the default (a layer without
    /// buffers) rejects any buffer.
    fn set_buffers(&mut self, buffers: Vec<(String, Tensor<T>)>) -> Result<(), CheckpointError> {
        spec::take_buffers(&self.name(), buffers, &[]).map(|_| ())
    }

    /// True when, on a no-grad tape, the layer maps each sample (each
    /// index along axis 0) on its own: no statistic of the batch enters
    /// its output or its log-det, so a batch evaluated in pieces gives the
    /// rows it gives whole. [`FlowModel::log_prob`] and
    /// [`FlowModel::sample`] then split large batches across threads.
    ///
    /// False by default, the safe answer for a layer defined elsewhere.
    /// Every layer of the crate says true except [`BatchNorm`] in
    /// [`BatchNormMode::Batch`](batchnorm::BatchNormMode::Batch); containers
    /// say true when all their layers do.
    fn per_sample(&self) -> bool {
        false
    }

    /// [`Flow::forward`] on plain tensors, recording nothing.
    fn forward_tensor(&self, z: &Tensor<T>) -> (Tensor<T>, Tensor<T>) {
        let tape = Tape::no_grad();
        let (x, log_det) = self.forward(&tape.constant(z.clone()));
        (x.into_value(), log_det.into_value())
    }

    /// [`Flow::inverse`] on plain tensors, recording nothing.
    fn inverse_tensor(&self, x: &Tensor<T>) -> (Tensor<T>, Tensor<T>) {
        let tape = Tape::no_grad();
        let (z, log_det) = self.inverse(&tape.constant(x.clone()));
        (z.into_value(), log_det.into_value())
    }
}
