//! Amortised inference: one conditional flow q(θ | x) that gives the
//! posterior for any observation x.
//!
//! - [`fit_posterior`]: by maximum likelihood on fresh simulated pairs
//!   (neural posterior estimation; needs only a simulator).
//! - [`fit_variational_posterior`]: by reverse KL against the joint
//!   log-density log p(θ, x) (amortised variational inference; needs the
//!   likelihood, no simulated θ), the use the IAF was made for.
//!
//! Derivation: [`derivations::conditioning`, "Amortised inference with a known answer"](crate::derivations::conditioning#amortised-inference-with-a-known-answer)
//! (docs/derivations/conditioning.md).

use super::fit::{fit, FitConfig, FitReport};
use super::reverse_kl::{
    run_reverse_kl, ConditionalLogTarget, ReverseKlConfig, ReverseKlReport, Target,
};
use crate::autodiff::Var;
use crate::data::simulators::LinearGaussian;
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

/// Trains `model`, a conditional model of θ given the context x, as an
/// amortised variational posterior: each step draws observations x
/// `[batch, context_dim]` from `observe(batch, rng)` (from p(x), or a data
/// set's rows), one θ ~ q(θ | x) per row by the model's `forward` (one pass
/// for an [`Iaf`](crate::flows::Iaf)), and minimises
///
/// L = E_x E_{θ~q(·|x)}[log q(θ | x) − log p̃(θ, x)]
///   = E_x[KL(q(θ | x) ‖ p(θ | x))] − E_x[log p(x)]
///
/// when p̃(θ, x) = p(θ)·p(x | θ) is the joint (`joint`), so the loss
/// minus the evidence term E_x[log p(x)] is the mean reverse KL to the
/// exact posterior. It never needs the model's inverse. The settings,
/// annealing, early stopping (on one fixed batch of observations and
/// latents), time limit and errors are those of
/// [`fit_reverse_kl`](super::reverse_kl::fit_reverse_kl).
///
/// # Units
/// Losses in nats per sample.
///
/// # Errors
/// As [`fit_reverse_kl`](super::reverse_kl::fit_reverse_kl), and
/// [`TrainError::BadArgument`] for a model that takes no context, and
/// (named `contexts`) when `observe` gives another shape than
/// `[batch, context_dim]` or a NaN or infinite value, naming the step.
///
/// # Source
/// D. P. Kingma, M. Welling, "Auto-Encoding Variational Bayes",
/// arXiv:1312.6114 (amortised inference); D. P. Kingma et al., "Improved
/// Variational Inference with Inverse Autoregressive Flow", NeurIPS 2016,
/// arXiv:1606.04934 (IAF posteriors conditioned on the data).
///
/// # Derivation
/// [`derivations::conditioning`, "Amortised variational inference"](crate::derivations::conditioning#amortised-variational-inference)
/// (docs/derivations/conditioning.md).
///
/// # Examples
/// ```
/// use flowzoo::data::simulators::LinearGaussian;
/// use flowzoo::flows::FlowModel;
/// use flowzoo::train::amortised::fit_variational_posterior;
/// use flowzoo::train::reverse_kl::ReverseKlConfig;
/// use rand::SeedableRng;
/// let sim = LinearGaussian::new(2, 3, 0.5, 0);
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// // q(θ | x): 2 conditional IAF layers reading x of width 3
/// let mut model = FlowModel::<f32>::conditional_iaf(2, 3, 2, &[16], &mut rng);
/// let config = ReverseKlConfig { steps: 20, batch: 64, ..ReverseKlConfig::default() };
/// let report = fit_variational_posterior(&mut model, &sim, &config, |batch, rng| {
///     sim.simulate(batch, rng).1 // x from p(x): simulate, drop θ
/// })
/// .unwrap();
/// assert!(report.final_loss.is_finite());
/// ```
pub fn fit_variational_posterior<T: Element>(
    model: &mut FlowModel<T>,
    joint: &dyn ConditionalLogTarget<T>,
    config: &ReverseKlConfig,
    mut observe: impl FnMut(usize, &mut StdRng) -> Tensor<T> + Send,
) -> Result<ReverseKlReport, TrainError> {
    run_reverse_kl(
        model,
        Target::Given(joint),
        config,
        Some(&mut observe),
        |_, _| {},
        |_, _, _| {},
    )
}

impl<T: Element> ConditionalLogTarget<T> for LinearGaussian {
    /// log p(θ) + log p(x | θ) = log N(θ; 0, I) + log N(x; A·θ, σ²·I),
    /// exact (normalised).
    fn log_joint<'t>(&self, theta: &Var<'t, T>, x: &Var<'t, T>) -> Var<'t, T> {
        let (d, m) = (self.theta_dim, self.x_dim);
        let a_transposed = Tensor::from_f64_slice(&self.a, &[m, d]).transpose(0, 1);
        let a_transposed = theta.constant(a_transposed.contiguous());
        let residual = x.sub(&theta.matmul(&a_transposed));
        let s2 = self.noise * self.noise;
        let half_log_two_pi = 0.5 * (2.0 * std::f64::consts::PI).ln();
        let constant = -((d + m) as f64) * half_log_two_pi - 0.5 * (m as f64) * s2.ln();
        theta
            .square()
            .sum_axes(&[1])
            .add(
                &residual
                    .square()
                    .sum_axes(&[1])
                    .mul_scalar(T::from_f64(1.0 / s2)),
            )
            .mul_scalar(T::from_f64(-0.5))
            .add_scalar(T::from_f64(constant))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autodiff::Tape;
    use crate::data::simulators::Gaussian;
    use rand::SeedableRng;

    // Bayes' rule pointwise: log p(θ, x) − log p(θ | x) = log p(x), the same
    // for every θ, and equal to the marginal N(x; 0, A·Aᵀ + σ²·I).
    #[test]
    fn the_linear_gaussian_joint_is_the_posterior_times_the_evidence() {
        let sim = LinearGaussian::new(3, 2, 0.7, 5);
        let mut rng = StdRng::seed_from_u64(1);
        let (theta, x) = sim.simulate::<f64, _>(6, &mut rng);
        let (d, m) = (3, 2);
        let mut marginal = vec![0.0; m * m];
        for i in 0..m {
            for j in 0..m {
                let aat: f64 = (0..d).map(|k| sim.a[i * d + k] * sim.a[j * d + k]).sum();
                marginal[i * m + j] = aat + if i == j { 0.49 } else { 0.0 };
            }
        }
        let evidence = Gaussian::new(vec![0.0; m], marginal);
        let tape = Tape::no_grad();
        let joint = sim
            .log_joint(&tape.constant(theta.clone()), &tape.constant(x.clone()))
            .into_value()
            .to_vec();
        let (theta, x) = (theta.to_vec(), x.to_vec());
        for row in 0..6 {
            let (t, o) = (&theta[row * d..][..d], &x[row * m..][..m]);
            let log_evidence = joint[row] - sim.posterior(o).log_prob(t);
            let exact = evidence.log_prob(o);
            assert!(
                (log_evidence - exact).abs() < 1e-10,
                "row {row}: log p(θ, x) − log p(θ | x) = {log_evidence}, log p(x) = {exact}"
            );
        }
    }
}
