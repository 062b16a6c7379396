//! [`fit_posterior`]: amortised (simulation-based) inference by maximum
//! likelihood, a conditional flow q(θ | x) trained on fresh simulated
//! pairs, so that one model gives the posterior for any observation x.
//!
//! Derivation: [`derivations::conditioning`, "Amortised inference with a known answer"](crate::derivations::conditioning#amortised-inference-with-a-known-answer)
//! (docs/derivations/conditioning.md).

use super::fit::{fit, FitConfig, FitReport};
use crate::error::TrainError;
use crate::flows::FlowModel;
use crate::nn::Adam;
use crate::tensor::{Element, Tensor};
use rand::rngs::StdRng;

/// Trains `model`, a conditional model of θ given the context x, by
/// [`fit`] on pairs from `simulate(step, rng)`: θ `[batch, dim]` drawn from
/// the prior and x `[batch, context_dim]` simulated from each θ. Each step
/// minimises −(1/B) Σᵦ log q(θᵦ | xᵦ), whose expectation is the expected
/// KL(p(θ | x) ‖ q(θ | x)) over p(x) plus a constant (neural posterior
/// estimation). No validation: fresh simulations are never overfitted.
///
/// # Units
/// Losses in nats per sample.
///
/// # Errors
/// As [`fit`].
///
/// # Panics
/// If the pairs do not have the model's dimension and context width.
///
/// # Source
/// G. Papamakarios, I. Murray, "Fast ε-free Inference of Simulation Models
/// with Bayesian Conditional Density Estimation", NeurIPS 2016,
/// arXiv:1605.06376; Greenberg et al., arXiv:1905.07488.
///
/// # Examples
/// ```
/// use flowzoo::data::simulators::LinearGaussian;
/// use flowzoo::flows::FlowModel;
/// use flowzoo::nn::Adam;
/// use flowzoo::train::{amortised::fit_posterior, FitConfig};
/// use rand::SeedableRng;
/// let sim = LinearGaussian::new(2, 2, 0.5, 0);
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let mut model = FlowModel::<f32>::conditional_maf(2, 2, 2, &[16], &mut rng);
/// let config = FitConfig { steps: 20, eval_every: 20, ..FitConfig::default() };
/// let report = fit_posterior(&mut model, &mut Adam::new(1e-3), &config, |_, rng| {
///     sim.simulate(64, rng)
/// })
/// .unwrap();
/// assert!(report.final_loss.is_finite());
/// ```
pub fn fit_posterior<T: Element>(
    model: &mut FlowModel<T>,
    adam: &mut Adam<T>,
    config: &FitConfig,
    mut simulate: impl FnMut(usize, &mut StdRng) -> (Tensor<T>, Tensor<T>) + Send,
) -> Result<FitReport, TrainError> {
    let next_batch = move |step: usize, rng: &mut StdRng| {
        // Rows [θ | x]: the model's data, then its context (FlowModel::split_batch).
        let (theta, x) = simulate(step, rng);
        Tensor::concat(&[&theta, &x], 1)
    };
    fit(model, adam, config, next_batch, None, |_, _| {})
}
