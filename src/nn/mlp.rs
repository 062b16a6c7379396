//! [`Mlp`]: linear layers with ReLU between them.

use super::linear::{Init, Linear};
use crate::autodiff::{Param, Var};
use crate::tensor::Element;
use rand::Rng;

/// A multilayer perceptron: `Linear → ReLU → … → Linear`, no activation after
/// the last layer.
///
/// # Shapes
/// `[batch, sizes[0]] → [batch, sizes[last]]`.
#[derive(Clone, Debug)]
pub struct Mlp<T: Element> {
    /// The layers in order.
    pub layers: Vec<Linear<T>>,
}

impl<T: Element> Mlp<T> {
    /// An MLP through `sizes` (e.g. `[2, 256, 256, 4]`): hidden layers Glorot,
    /// the last layer initialised by `last` ([`Init::Zero`] for a coupling net
    /// that starts as the identity).
    ///
    /// # Panics
    /// If `sizes` has fewer than two entries.
    pub fn new<R: Rng + ?Sized>(sizes: &[usize], last: Init, rng: &mut R) -> Self {
        Mlp::with_inits(sizes, Init::Glorot, last, rng)
    }

    /// [`Mlp::new`] with the hidden layers (all but the last) initialised
    /// by `hidden` instead of Glorot.
    ///
    /// # Panics
    /// If `sizes` has fewer than two entries.
    pub fn with_inits<R: Rng + ?Sized>(
        sizes: &[usize],
        hidden: Init,
        last: Init,
        rng: &mut R,
    ) -> Self {
        assert!(
            sizes.len() >= 2,
            "Mlp::new: need at least input and output sizes, got {sizes:?}"
        );
        let n = sizes.len() - 1;
        let layers = (0..n)
            .map(|i| {
                let init = if i + 1 == n { last } else { hidden };
                let mut layer = Linear::new(sizes[i], sizes[i + 1], init, rng);
                for p in layer.params_mut() {
                    p.prefix(&format!("layer{i}"));
                }
                layer
            })
            .collect();
        Mlp { layers }
    }

    /// The network's output for `x`.
    pub fn forward<'t>(&self, x: &Var<'t, T>) -> Var<'t, T> {
        // Each hidden layer's ReLU is fused into its product (Var::linear_relu).
        let (last, hidden) = self.layers.split_last().expect("at least one layer");
        let mut h = x.clone();
        for layer in hidden {
            h = layer.forward_relu(&h);
        }
        last.forward(&h)
    }

    /// Every parameter, layer by layer.
    pub fn params(&self) -> Vec<&Param<T>> {
        self.layers.iter().flat_map(|l| l.params()).collect()
    }

    /// Every parameter, mutably.
    pub fn params_mut(&mut self) -> Vec<&mut Param<T>> {
        self.layers
            .iter_mut()
            .flat_map(|l| l.params_mut())
            .collect()
    }
}
