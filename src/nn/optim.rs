//! Optimisers. Each reads `Param::grad` and updates `Param::value` in place.

use crate::autodiff::Param;
use crate::tensor::parallel::prelude::*;
use crate::tensor::{Element, Tensor};

/// Adam: per-entry step sizes from running moments of the gradient.
///
/// With gradient g at step t:
/// m ← β₁m + (1 − β₁)g,  v ← β₂v + (1 − β₂)g²,
/// m̂ = m / (1 − β₁ᵗ),  v̂ = v / (1 − β₂ᵗ),  θ ← θ − lr · m̂ / (√v̂ + ε).
///
/// The state is kept by position in the parameter list, so pass the same
/// parameters in the same order every step.
///
/// # Source
/// D. P. Kingma, J. Ba, "Adam: A Method for Stochastic Optimization",
/// ICLR 2015, arXiv:1412.6980 (Algorithm 1).
#[derive(Clone, Debug)]
pub struct Adam<T: Element> {
    /// Learning rate.
    pub lr: f64,
    /// Decay of the first moment.
    pub beta1: f64,
    /// Decay of the second moment.
    pub beta2: f64,
    /// Added to √v̂ to avoid division by zero.
    pub eps: f64,
    step: u64,
    moments: Vec<(Tensor<T>, Tensor<T>)>,
}

impl<T: Element> Adam<T> {
    /// Adam with learning rate `lr` and the paper's defaults β₁ = 0.9,
    /// β₂ = 0.999, ε = 1e-8.
    pub fn new(lr: f64) -> Self {
        Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            step: 0,
            moments: Vec::new(),
        }
    }

    /// The number of steps taken.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// One update of every parameter from its `grad` (a parameter without a
    /// gradient is left as it is).
    ///
    /// # Panics
    /// If the parameter list changes length or shape between steps.
    pub fn step<'a>(&mut self, params: impl IntoIterator<Item = &'a mut Param<T>>) {
        self.step += 1;
        let t = self.step as i32;
        let (b1, b2) = (self.beta1, self.beta2);
        // Bias corrections folded into the step size (Kingma & Ba, §2, the
        // paragraph after Algorithm 1).
        let step_size = T::from_f64(self.lr * (1.0 - b2.powi(t)).sqrt() / (1.0 - b1.powi(t)));
        let eps_hat = T::from_f64(self.eps * (1.0 - b2.powi(t)).sqrt());
        let (b1, b2) = (T::from_f64(b1), T::from_f64(b2));
        let mut params: Vec<&mut Param<T>> = params.into_iter().collect();
        while self.moments.len() < params.len() {
            let shape = params[self.moments.len()].value.shape().to_vec();
            self.moments
                .push((Tensor::zeros(&shape), Tensor::zeros(&shape)));
        }
        // Parameters are independent: update them in parallel.
        params
            .par_iter_mut()
            .zip(self.moments.par_iter_mut())
            .for_each(|(p, (m, v))| {
                let Some(grad) = p.grad.as_ref() else { return };
                let grad = grad.contiguous();
                let g = grad
                    .as_slice()
                    .expect("contiguous() gives a contiguous tensor");
                assert_eq!(
                    m.shape(),
                    p.value.shape(),
                    "Adam: parameter {} changed shape",
                    p.name
                );
                let (m, v) = (m.as_mut_slice(), v.as_mut_slice());
                let theta = p.value.as_mut_slice();
                for j in 0..theta.len() {
                    m[j] = b1 * m[j] + (T::ONE - b1) * g[j];
                    v[j] = b2 * v[j] + (T::ONE - b2) * g[j] * g[j];
                    theta[j] -= step_size * m[j] / (v[j].sqrt() + eps_hat);
                }
            });
    }
}
