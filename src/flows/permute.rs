//! Fixed permutations of the features: exact, volume-preserving (log-det 0).

use super::spec::LayerSpec;
use super::Flow;
use crate::autodiff::Var;
use crate::tensor::{Element, Tensor};

/// Reverses the order of the features: `xᵢ = z_{D−1−i}`. Its own inverse;
/// log|det| = 0 (a permutation matrix has determinant ±1).
///
/// # Shapes
/// `[batch, dim] → [batch, dim]`, log-det `[batch]` of zeros.
#[derive(Clone, Copy, Debug)]
pub struct Reverse {
    /// The number of features D.
    pub dim: usize,
}

impl Reverse {
    /// The reversal of `dim` features.
    pub fn new(dim: usize) -> Self {
        Reverse { dim }
    }

    fn apply<'t, T: Element>(&self, v: &Var<'t, T>) -> (Var<'t, T>, Var<'t, T>) {
        assert!(
            v.shape().len() == 2 && v.shape()[1] == self.dim,
            "Reverse: expected [batch, {}], got {:?}",
            self.dim,
            v.shape()
        );
        let order: Vec<usize> = (0..self.dim).rev().collect();
        let zeros = v.constant(Tensor::zeros(&[v.shape()[0]]));
        (v.index_select(1, &order), zeros)
    }
}

impl<T: Element> Flow<T> for Reverse {
    fn name(&self) -> String {
        "Reverse".into()
    }
    fn forward<'t>(&self, z: &Var<'t, T>) -> (Var<'t, T>, Var<'t, T>) {
        self.apply(z)
    }
    fn spec(&self) -> Option<LayerSpec> {
        Some(LayerSpec::new("Reverse").with("dim", self.dim))
    }
    fn inverse<'t>(&self, x: &Var<'t, T>) -> (Var<'t, T>, Var<'t, T>) {
        self.apply(x)
    }
}
