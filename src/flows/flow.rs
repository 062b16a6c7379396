//! The [`Flow`] trait: a bijection with a tractable log-determinant, the
//! one interface every layer, container and architecture implements.

use super::error::FlowError;
use super::spec::{take_buffers, LayerSpec};
use crate::autodiff::{Param, Tape, Var};
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

    /// The width of the context c this layer's conditioners read: the
    /// columns of the `[batch, context_dim]` tensor that
    /// [`Flow::forward_with_context`] and [`Flow::inverse_with_context`]
    /// take. 0 (the default) for a layer that ignores the context;
    /// containers say the width their conditional layers share.
    ///
    /// # Derivation
    /// [`derivations::conditioning`](crate::derivations::conditioning)
    /// (docs/derivations/conditioning.md).
    fn context_dim(&self) -> usize {
        0
    }

    /// x = f(z; c) and log|det ∂x/∂z| per sample, for the context `c`
    /// (`[batch, context_dim]`, one row per sample, or `None` for no
    /// context). The map is a bijection in z for every fixed c, and the
    /// log-det is the one in z alone: c enters only the conditioners.
    ///
    /// The default ignores `c` and calls [`Flow::forward`], which is what a
    /// layer without conditioners (ActNorm, a permutation, a squeeze) does;
    /// conditional layers override it, and their [`Flow::forward`] is this
    /// method with no context.
    ///
    /// # Panics
    /// A conditional layer panics when `c` is `None` or not
    /// `[batch, context_dim]`, naming the layer and both shapes
    /// ([`FlowModel`](super::FlowModel) checks the context first and
    /// returns a typed error instead).
    ///
    /// # Derivation
    /// [`derivations::conditioning`, "Why the log-det does not change"](crate::derivations::conditioning#why-the-log-det-does-not-change)
    /// (docs/derivations/conditioning.md).
    fn forward_with_context<'t>(
        &self,
        z: &Var<'t, T>,
        c: Option<&Var<'t, T>>,
    ) -> (Var<'t, T>, Var<'t, T>) {
        let _ = c;
        self.forward(z)
    }

    /// z = f⁻¹(x; c) and log|det ∂z/∂x| per sample, for the context `c`
    /// (as [`Flow::forward_with_context`]). The default ignores `c` and
    /// calls [`Flow::inverse`].
    ///
    /// # Panics
    /// As [`Flow::forward_with_context`].
    fn inverse_with_context<'t>(
        &self,
        x: &Var<'t, T>,
        c: Option<&Var<'t, T>>,
    ) -> (Var<'t, T>, Var<'t, T>) {
        let _ = c;
        self.inverse(x)
    }

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
    /// [`derivations::glow`, "ActNorm"](crate::derivations::glow#actnorm)
    /// (docs/derivations/glow.md).
    fn initialize(&mut self, x: &Tensor<T>) -> Tensor<T> {
        self.inverse_tensor(x).0
    }

    /// [`Flow::initialize`] for a conditional flow: `x` `[batch, …]` on
    /// the data side with its context `c` (`[batch, context_dim]`, or
    /// `None`), each layer initialising from the batch it sees given c.
    /// The default is [`Flow::initialize`] for a layer that reads no
    /// context, and for a conditional leaf (which has no data-dependent
    /// state) its inverse given c; containers pass c to their layers.
    ///
    /// # Panics
    /// As [`Flow::inverse_with_context`], for a conditional layer given no
    /// context.
    fn initialize_with_context(&mut self, x: &Tensor<T>, c: Option<&Tensor<T>>) -> Tensor<T> {
        if self.context_dim() == 0 {
            return self.initialize(x);
        }
        self.inverse_tensor_with_context(x, c).0
    }

    /// The layer's architecture as data (kind, sizes, masks, orders, flags,
    /// sub-layers), from which the layer's own `from_spec`, found through
    /// [`registry::build_layer`](super::registry::build_layer), rebuilds it
    /// for a checkpoint. Every layer of the crate has one (the kinds are
    /// [`registry::layer_kinds`](super::registry::layer_kinds)); `None` (the
    /// default) marks a layer that cannot be saved: saving a model holding it
    /// fails with
    /// [`CheckpointError::NotSaveable`](crate::error::CheckpointError::NotSaveable)
    /// naming the layer.
    fn to_spec(&self) -> Option<LayerSpec> {
        None
    }

    /// Non-trainable state tensors, by name (BatchNorm's running
    /// statistics); saved and restored with the checkpoint. None by default.
    fn buffers(&self) -> Vec<(String, Tensor<T>)> {
        Vec::new()
    }

    /// Restores the tensors [`Flow::buffers`] returned (see
    /// [`take_buffers`]). The checkpoint loader calls it once, after the
    /// parameters are filled, so a layer may also refuse parameters it
    /// cannot use here ([`InvConv1x1`](super::InvConv1x1) refuses a singular
    /// weight).
    ///
    /// # Errors
    /// [`FlowError::BufferMismatch`] for a name the layer does not hold or a
    /// shape that differs; the default (a layer without buffers) rejects any
    /// buffer.
    fn set_buffers(&mut self, buffers: Vec<(String, Tensor<T>)>) -> Result<(), FlowError> {
        take_buffers(&self.name(), buffers, &[]).map(|_| ())
    }

    /// Checks that the layer's current parameters describe a usable
    /// bijection, so that a caller holding a non-finite log-det (a diverged
    /// training step) can say why: [`InvConv1x1`](super::InvConv1x1) says
    /// when its weight is singular. Containers check each layer, the
    /// error's path naming it. `Ok` by default.
    ///
    /// # Errors
    /// The layer's [`FlowError::BadSpec`] naming the parameter and what is
    /// wrong with it.
    fn validate(&self) -> Result<(), FlowError> {
        Ok(())
    }

    /// The layers a container applies one after another to its own input
    /// (a [`Sequential`](super::Sequential)'s), so that
    /// [`check_layers`](super::check::check_layers) can prove each of them
    /// at the points it sees. Empty by default (a leaf, or a layer whose
    /// inner flow sees a reshaped input).
    fn sublayers(&self) -> &[Box<dyn Flow<T>>] {
        &[]
    }

    /// True when, on a no-grad tape, the layer maps each sample (each
    /// index along axis 0) on its own: no statistic of the batch enters
    /// its output or its log-det, so a batch evaluated in pieces gives the
    /// rows it gives whole. [`FlowModel::log_prob`](super::FlowModel::log_prob) and
    /// [`FlowModel::sample`](super::FlowModel::sample) then split large batches across threads.
    ///
    /// False by default, the safe answer for a layer defined elsewhere.
    /// Every layer of the crate says true except [`BatchNorm`](super::BatchNorm) in
    /// [`BatchNormMode::Batch`](super::batchnorm::BatchNormMode::Batch); containers
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

    /// [`Flow::inverse_with_context`] on plain tensors, recording nothing:
    /// x `[batch, …]`, c `[batch, context_dim]` or `None`.
    ///
    /// # Panics
    /// As [`Flow::inverse_with_context`].
    fn inverse_tensor_with_context(
        &self,
        x: &Tensor<T>,
        c: Option<&Tensor<T>>,
    ) -> (Tensor<T>, Tensor<T>) {
        let tape = Tape::no_grad();
        let c = c.map(|c| tape.constant(c.clone()));
        let (z, log_det) = self.inverse_with_context(&tape.constant(x.clone()), c.as_ref());
        (z.into_value(), log_det.into_value())
    }
}

/// How a container's `from_spec` builds its sub-layers without knowing the
/// kinds: the registry hands it [`registry::build_layer`](super::registry::build_layer).
pub type BuildChild<'a, T> = &'a dyn Fn(&LayerSpec) -> Result<Box<dyn Flow<T>>, FlowError>;
