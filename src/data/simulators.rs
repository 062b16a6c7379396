//! Simulators for amortised (simulation-based) inference: draw a parameter
//! θ from its prior, simulate data x given θ, and train a conditional flow
//! q(θ | x) on the pairs, so that one trained model gives the posterior
//! for any observed x.
//!
//! - [`LinearGaussian`]: θ ~ N(0, I_d), x = A·θ + ε, ε ~ N(0, σ²·I), whose
//!   posterior p(θ | x) is Gaussian in closed form ([`Gaussian`]), so the
//!   KL divergence from the exact posterior to the flow can be measured.
//! - [`TwoMoons`]: the two-moons task of the simulation-based-inference
//!   benchmarks (a 2-D θ, a bimodal, crescent-shaped posterior).
//!
//! Derivation: [`derivations::conditioning`, "Amortised inference with a known answer"](crate::derivations::conditioning#amortised-inference-with-a-known-answer)
//! (docs/derivations/conditioning.md).

use crate::tensor::math;
use crate::tensor::{linalg, Tensor};
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

/// ½·log 2π.
const HALF_LOG_TWO_PI: f64 = 0.918_938_533_204_672_8;

/// A multivariate Gaussian N(μ, Σ) in f64, with the Cholesky factor of Σ
/// for sampling and the log-density.
#[derive(Clone, Debug, PartialEq)]
pub struct Gaussian {
    /// μ, `[d]`.
    pub mean: Vec<f64>,
    /// Σ, `[d, d]` row-major, symmetric positive definite.
    pub covariance: Vec<f64>,
    /// L with L·Lᵀ = Σ, lower triangular, `[d, d]` row-major.
    pub cholesky: Vec<f64>,
}

impl Gaussian {
    /// N(`mean`, `covariance`).
    ///
    /// # Panics
    /// If the covariance is not `[d, d]` for d = `mean.len()` or not
    /// positive definite.
    pub fn new(mean: Vec<f64>, covariance: Vec<f64>) -> Self {
        let d = mean.len();
        assert_eq!(
            covariance.len(),
            d * d,
            "Gaussian::new: covariance is not [{d}, {d}]"
        );
        let cholesky = cholesky(&covariance, d);
        Gaussian {
            mean,
            covariance,
            cholesky,
        }
    }

    /// The dimension d.
    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    /// log N(θ; μ, Σ) = −½‖L⁻¹(θ − μ)‖² − Σᵢ log Lᵢᵢ − (d/2)·log 2π, in nats.
    ///
    /// # Panics
    /// If `theta` does not have d entries.
    pub fn log_prob(&self, theta: &[f64]) -> f64 {
        let d = self.dim();
        assert_eq!(theta.len(), d, "Gaussian::log_prob: expected {d} values");
        // u = L⁻¹(θ − μ) by forward substitution
        let mut u = vec![0.0; d];
        for i in 0..d {
            let partial: f64 = (0..i).map(|k| self.cholesky[i * d + k] * u[k]).sum();
            u[i] = (theta[i] - self.mean[i] - partial) / self.cholesky[i * d + i];
        }
        let log_diagonal: f64 = (0..d).map(|i| math::ln(self.cholesky[i * d + i])).sum();
        -0.5 * u.iter().map(|v| v * v).sum::<f64>() - log_diagonal - d as f64 * HALF_LOG_TWO_PI
    }

    /// `n` draws μ + L·ε, ε ~ N(0, I), as `[n, d]` row-major.
    pub fn sample<R: Rng + ?Sized>(&self, n: usize, rng: &mut R) -> Vec<f64> {
        let d = self.dim();
        let mut out = Vec::with_capacity(n * d);
        for _ in 0..n {
            let e: Vec<f64> = (0..d).map(|_| StandardNormal.sample(rng)).collect();
            for i in 0..d {
                let le: f64 = (0..=i).map(|k| self.cholesky[i * d + k] * e[k]).sum();
                out.push(self.mean[i] + le);
            }
        }
        out
    }
}

/// The Cholesky factor L (lower, row-major) of the `[d, d]` matrix `a`.
///
/// # Panics
/// If `a` is not positive definite (a pivot ≤ 0).
fn cholesky(a: &[f64], d: usize) -> Vec<f64> {
    let mut l = vec![0.0; d * d];
    for i in 0..d {
        for j in 0..=i {
            // Lᵢⱼ = (Aᵢⱼ − Σₖ<ⱼ Lᵢₖ·Lⱼₖ) / Lⱼⱼ, and the square root on the diagonal
            let partial: f64 = (0..j).map(|k| l[i * d + k] * l[j * d + k]).sum();
            let value = a[i * d + j] - partial;
            if i == j {
                assert!(
                    value > 0.0,
                    "cholesky: the matrix is not positive definite (pivot {i} is {value})"
                );
                l[i * d + i] = value.sqrt();
            } else {
                l[i * d + j] = value / l[j * d + j];
            }
        }
    }
    l
}

/// The linear-Gaussian simulator: θ ~ N(0, I_d), x = A·θ + ε with
/// ε ~ N(0, σ²·I_m). Its posterior is Gaussian,
/// p(θ | x) = N(μ(x), Σ) with Σ = (I + AᵀA/σ²)⁻¹ and μ(x) = Σ·Aᵀx/σ²:
/// the covariance is the same for every x, the mean linear in x.
///
/// # Shapes
/// [`LinearGaussian::simulate`] returns θ `[n, d]` and x `[n, m]`.
///
/// # Source
/// C. M. Bishop, "Pattern Recognition and Machine Learning", 2006, §2.3.3
/// (Bayes' theorem for Gaussian variables, eq. 2.116-2.117).
///
/// # Derivation
/// [`derivations::conditioning`, "Amortised inference with a known answer"](crate::derivations::conditioning#amortised-inference-with-a-known-answer)
/// (docs/derivations/conditioning.md).
///
/// # Examples
/// ```
/// use flowzoo::data::simulators::LinearGaussian;
/// use rand::SeedableRng;
/// let sim = LinearGaussian::new(2, 3, 0.5, 0);
/// let (theta, x) = sim.simulate::<f64, _>(4, &mut rand::rngs::StdRng::seed_from_u64(1));
/// assert_eq!((theta.shape(), x.shape()), (&[4, 2][..], &[4, 3][..]));
/// let posterior = sim.posterior(&x.to_vec()[..3]);
/// assert!(posterior.log_prob(&posterior.mean.clone()).is_finite());
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct LinearGaussian {
    /// d, the dimension of θ.
    pub theta_dim: usize,
    /// m, the dimension of x.
    pub x_dim: usize,
    /// A, `[m, d]` row-major.
    pub a: Vec<f64>,
    /// σ, the noise's standard deviation.
    pub noise: f64,
}

impl LinearGaussian {
    /// A simulator with d = `theta_dim`, m = `x_dim`, noise σ = `noise`,
    /// and A drawn from `seed` with entries N(0, 1/d) (so each xᵢ has
    /// variance about 1 + σ²).
    ///
    /// # Panics
    /// If a dimension is 0 or `noise` is not positive.
    pub fn new(theta_dim: usize, x_dim: usize, noise: f64, seed: u64) -> Self {
        assert!(
            theta_dim > 0 && x_dim > 0 && noise > 0.0,
            "LinearGaussian::new: need dimensions ≥ 1 and noise > 0"
        );
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
        let scale = 1.0 / (theta_dim as f64).sqrt();
        let a = (0..x_dim * theta_dim)
            .map(|_| scale * Distribution::<f64>::sample(&StandardNormal, &mut rng))
            .collect();
        LinearGaussian {
            theta_dim,
            x_dim,
            a,
            noise,
        }
    }

    /// `n` pairs: θ `[n, d]` from the prior and x `[n, m]` from the
    /// simulator.
    pub fn simulate<T: crate::tensor::Element, R: Rng + ?Sized>(
        &self,
        n: usize,
        rng: &mut R,
    ) -> (Tensor<T>, Tensor<T>) {
        let (d, m) = (self.theta_dim, self.x_dim);
        let mut theta = Vec::with_capacity(n * d);
        let mut x = Vec::with_capacity(n * m);
        for _ in 0..n {
            let t: Vec<f64> = (0..d).map(|_| StandardNormal.sample(rng)).collect();
            for i in 0..m {
                let at: f64 = (0..d).map(|k| self.a[i * d + k] * t[k]).sum();
                let e: f64 = StandardNormal.sample(rng);
                x.push(at + self.noise * e);
            }
            theta.extend(t);
        }
        (
            Tensor::from_f64_slice(&theta, &[n, d]),
            Tensor::from_f64_slice(&x, &[n, m]),
        )
    }

    /// The exact posterior p(θ | x) = N(Σ·Aᵀx/σ², Σ), Σ = (I + AᵀA/σ²)⁻¹.
    ///
    /// # Panics
    /// If `x` does not have m entries.
    pub fn posterior(&self, x: &[f64]) -> Gaussian {
        let (d, m) = (self.theta_dim, self.x_dim);
        assert_eq!(x.len(), m, "LinearGaussian::posterior: expected {m} values");
        let s2 = self.noise * self.noise;
        // precision P = I + AᵀA/σ²
        let mut precision = vec![0.0; d * d];
        for i in 0..d {
            for j in 0..d {
                let ata: f64 = (0..m).map(|k| self.a[k * d + i] * self.a[k * d + j]).sum();
                precision[i * d + j] = ata / s2 + if i == j { 1.0 } else { 0.0 };
            }
        }
        let covariance = linalg::inverse(&Tensor::<f64>::from_vec(precision, &[d, d]))
            .expect("I + AᵀA/σ² is positive definite, so invertible")
            .to_vec();
        // μ = Σ·Aᵀx/σ²
        let atx: Vec<f64> = (0..d)
            .map(|i| (0..m).map(|k| self.a[k * d + i] * x[k]).sum::<f64>() / s2)
            .collect();
        let mean = (0..d)
            .map(|i| (0..d).map(|j| covariance[i * d + j] * atx[j]).sum())
            .collect();
        // Symmetrise against round-off before the Cholesky factor.
        let symmetric = (0..d * d)
            .map(|k| 0.5 * (covariance[k] + covariance[(k % d) * d + k / d]))
            .collect();
        Gaussian::new(mean, symmetric)
    }

    /// KL(p(θ | x) ‖ q(θ | x)) in nats, from the exact posterior p to a
    /// conditional model q (θ the model's data, x its context), by Monte
    /// Carlo over `samples` draws θₖ ~ p(θ | x):
    /// (1/K)·Σₖ [log p(θₖ | x) − log q(θₖ | x)].
    ///
    /// # Units
    /// Nats. The estimate's standard error falls as 1/√K.
    ///
    /// # Errors
    /// The model's [`ContextError`](crate::flows::ContextError) if it does
    /// not take a context of width m.
    pub fn posterior_kl<T: crate::tensor::Element, R: Rng + ?Sized>(
        &self,
        model: &crate::flows::FlowModel<T>,
        x: &[f64],
        samples: usize,
        rng: &mut R,
    ) -> Result<f64, crate::flows::ContextError> {
        let posterior = self.posterior(x);
        let theta = posterior.sample(samples, rng);
        let exact: f64 = theta
            .chunks(self.theta_dim)
            .map(|t| posterior.log_prob(t))
            .sum();
        let context = Tensor::<T>::from_f64_slice(x, &[1, self.x_dim]);
        let theta = Tensor::<T>::from_f64_slice(&theta, &[samples, self.theta_dim]);
        let model_log_prob: f64 = model
            .log_prob_given(&theta, Some(&context))?
            .to_f64_vec()
            .iter()
            .sum();
        Ok((exact - model_log_prob) / samples as f64)
    }

    /// KL(q(θ | x) ‖ p(θ | x)) in nats, from a conditional model q (θ the
    /// model's data, x its context) to the exact posterior p, by Monte
    /// Carlo over `samples` draws θₖ ~ q(θ | x):
    /// (1/K)·Σₖ [log q(θₖ | x) − log p(θₖ | x)]. The divergence an
    /// amortised variational posterior minimises (mode-seeking), where
    /// [`LinearGaussian::posterior_kl`] is the one maximum likelihood
    /// minimises (mass-covering).
    ///
    /// # Units
    /// Nats. The estimate's standard error falls as 1/√K.
    ///
    /// # Errors
    /// The model's [`ContextError`](crate::flows::ContextError) if it does
    /// not take a context of width m.
    pub fn reverse_posterior_kl<T: crate::tensor::Element, R: Rng + ?Sized>(
        &self,
        model: &crate::flows::FlowModel<T>,
        x: &[f64],
        samples: usize,
        rng: &mut R,
    ) -> Result<f64, crate::flows::ContextError> {
        let posterior = self.posterior(x);
        let context = Tensor::<T>::from_f64_slice(x, &[1, self.x_dim]);
        let theta = model.sample_given(samples, 1.0, Some(&context), rng)?;
        let model_log_prob: f64 = model
            .log_prob_given(&theta, Some(&context))?
            .to_f64_vec()
            .iter()
            .sum();
        let exact: f64 = theta
            .to_f64_vec()
            .chunks(self.theta_dim)
            .map(|t| posterior.log_prob(t))
            .sum();
        Ok((model_log_prob - exact) / samples as f64)
    }
}

/// The two-moons simulator of the simulation-based-inference benchmarks:
/// θ ~ U(−1, 1)², and, with a ~ U(−π/2, π/2) and r ~ N(0.1, 0.01²),
///
/// x = (r·cos a + 0.25 − |θ₁ + θ₂|/√2,  r·sin a + (−θ₁ + θ₂)/√2).
///
/// The |·| folds two parameter regions onto the same data, so the
/// posterior given x is bimodal, each mode a thin crescent (the arc of a).
///
/// # Shapes
/// [`TwoMoons::simulate`] returns θ `[n, 2]` and x `[n, 2]`.
///
/// # Source
/// D. S. Greenberg, M. Nonnenmacher, J. H. Macke, "Automatic Posterior
/// Transformation for Likelihood-Free Inference", ICML 2019,
/// arXiv:1905.07488, §5; J.-M. Lueckmann et al., "Benchmarking
/// Simulation-Based Inference", AISTATS 2021, arXiv:2101.04653, task T.8.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TwoMoons;

impl TwoMoons {
    /// `n` pairs: θ `[n, 2]` from the prior and x `[n, 2]` from the
    /// simulator.
    pub fn simulate<T: crate::tensor::Element, R: Rng + ?Sized>(
        &self,
        n: usize,
        rng: &mut R,
    ) -> (Tensor<T>, Tensor<T>) {
        let mut theta = Vec::with_capacity(2 * n);
        let mut x = Vec::with_capacity(2 * n);
        for _ in 0..n {
            let (t1, t2) = (rng.gen_range(-1.0..1.0), rng.gen_range(-1.0..1.0));
            x.extend(TwoMoons::simulate_one(t1, t2, rng));
            theta.extend([t1, t2]);
        }
        (
            Tensor::from_f64_slice(&theta, &[n, 2]),
            Tensor::from_f64_slice(&x, &[n, 2]),
        )
    }

    /// One x given θ = (`t1`, `t2`).
    pub fn simulate_one<R: Rng + ?Sized>(t1: f64, t2: f64, rng: &mut R) -> [f64; 2] {
        let a = rng.gen_range(-std::f64::consts::FRAC_PI_2..std::f64::consts::FRAC_PI_2);
        let e: f64 = StandardNormal.sample(rng);
        let r = 0.1 + 0.01 * e;
        let sqrt2 = std::f64::consts::SQRT_2;
        [
            r * math::cos(a) + 0.25 - (t1 + t2).abs() / sqrt2,
            r * math::sin(a) + (-t1 + t2) / sqrt2,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cholesky_reconstructs_the_matrix() {
        // A = [[4, 2], [2, 3]]: L = [[2, 0], [1, √2]]
        let l = cholesky(&[4.0, 2.0, 2.0, 3.0], 2);
        assert_eq!(l[0], 2.0);
        assert_eq!(l[2], 1.0);
        assert!((l[3] - 2f64.sqrt()).abs() < 1e-15);
    }

    #[test]
    fn the_gaussian_log_density_matches_the_one_dimensional_formula() {
        // N(1, 4) at 3: −½·(2/2)² − log 2 − ½ log 2π
        let g = Gaussian::new(vec![1.0], vec![4.0]);
        let expected = -0.5 - 2f64.ln() - HALF_LOG_TWO_PI;
        assert!((g.log_prob(&[3.0]) - expected).abs() < 1e-14);
    }

    #[test]
    fn the_posterior_of_one_scalar_observation_is_the_textbook_one() {
        // d = m = 1, x = a·θ + ε: Σ = 1/(1 + a²/σ²), μ = Σ·a·x/σ²
        let sim = LinearGaussian {
            theta_dim: 1,
            x_dim: 1,
            a: vec![2.0],
            noise: 0.5,
        };
        let p = sim.posterior(&[1.0]);
        let variance = 1.0 / (1.0 + 4.0 / 0.25);
        assert!((p.covariance[0] - variance).abs() < 1e-14);
        assert!((p.mean[0] - variance * 2.0 / 0.25).abs() < 1e-14);
    }
}
