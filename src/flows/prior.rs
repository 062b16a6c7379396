//! Priors: the base density π(z) of a flow.

use crate::autodiff::Var;
use crate::tensor::{Element, Tensor};
use rand::Rng;

/// The standard normal prior N(0, I) on `dim` dimensions:
/// log π(z) = −½‖z‖² − (D/2)·log 2π.
///
/// # Shapes
/// `log_prob` takes `[batch, dim]` and returns `[batch]`; `sample` returns
/// `[n, dim]`.
///
/// # Units
/// Log-densities in nats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StandardNormal {
    /// The number of dimensions D.
    pub dim: usize,
}

impl StandardNormal {
    /// N(0, I) on `dim` dimensions.
    pub fn new(dim: usize) -> Self {
        StandardNormal { dim }
    }

    /// log π(z) per sample.
    ///
    /// # Panics
    /// If `z` is not `[batch, dim]`.
    pub fn log_prob<'t, T: Element>(&self, z: &Var<'t, T>) -> Var<'t, T> {
        assert!(
            z.shape().len() == 2 && z.shape()[1] == self.dim,
            "StandardNormal::log_prob: expected [batch, {}], got {:?}",
            self.dim,
            z.shape()
        );
        let constant = -0.5 * self.dim as f64 * (2.0 * std::f64::consts::PI).ln();
        z.square()
            .sum_axes(&[1])
            .mul_scalar(T::from_f64(-0.5))
            .add_scalar(T::from_f64(constant))
    }

    /// `n` samples `temperature · ε`, ε ~ N(0, I) (temperature 1 is the prior
    /// itself; below 1 trades diversity for typicality, as in Glow).
    pub fn sample<T: Element, R: Rng + ?Sized>(
        &self,
        n: usize,
        temperature: f64,
        rng: &mut R,
    ) -> Tensor<T> {
        Tensor::<T>::randn(&[n, self.dim], rng).mul_scalar(T::from_f64(temperature))
    }
}
