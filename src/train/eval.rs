//! Evaluation: mean negative log-likelihood in nats, and bits per dimension
//! of discrete data.
//!
//! Derivation: [`derivations::bits_per_dim`](crate::derivations::bits_per_dim)
//! (docs/derivations/bits-per-dim.md).

use crate::flows::preprocess::Dequantize;
use crate::flows::FlowModel;
use crate::tensor::{Element, Tensor};
use rand::Rng;

/// Rows evaluated at once, bounding memory for large test sets.
const EVAL_CHUNK: usize = 4096;

/// −(1/N) Σ log p(xₙ) over the rows of `x` (`[n, dim]`), in nats per sample,
/// computed in chunks without recording. Accumulated in f64. For a
/// conditional model each row is `[xₙ | cₙ]` (`[n, dim + context_dim]`, see
/// [`FlowModel::log_prob_batch`]) and the mean is of −log p(xₙ | cₙ).
pub fn mean_nll<T: Element>(model: &FlowModel<T>, x: &Tensor<T>) -> f64 {
    let n = x.dim(0);
    let mut total = 0.0;
    let mut start = 0;
    while start < n {
        let len = EVAL_CHUNK.min(n - start);
        let lp = model.log_prob_batch(&x.narrow(0, start, len));
        total -= lp.to_vec().iter().map(|v| v.to_f64()).sum::<f64>();
        start += len;
    }
    total / n.max(1) as f64
}

/// Bits per dimension of a discrete NLL: `nll_nats / (D · ln 2)`.
///
/// # Units
/// Input nats per sample; output bits per dimension.
pub fn bits_per_dim(nll_nats: f64, dim: usize) -> f64 {
    nll_nats / (dim as f64 * std::f64::consts::LN_2)
}

/// The log-likelihood of dequantised data x = (v + u)/levels as a density
/// on the unit cube [0, 1]^dim, from the NLL of the discrete data:
/// log p(x) = D·ln(levels) − NLL (the cube of one level has volume
/// levels^−D). NICE reports MNIST in these units (1980.5 nats,
/// arXiv:1410.8516, table 2); see the derivation page.
///
/// # Units
/// Input nats per sample of the discrete data; output nats per sample on
/// [0, 1]^D (higher is better).
pub fn unit_cube_log_likelihood(nll_nats: f64, dim: usize, levels: usize) -> f64 {
    dim as f64 * (levels as f64).ln() - nll_nats
}

/// The NLL of integer data `v` (`[n, dim]`, values 0..levels−1, as floats) in
/// nats per sample, under a model of the dequantised x = (v + u)/levels:
/// −log P(v) ≈ −log p(x) + D·log(levels), with one noise draw u from `rng`
/// (a stochastic upper bound on the discrete NLL, Theis et al. 2016).
pub fn discrete_nll<T: Element, R: Rng + ?Sized>(
    model: &FlowModel<T>,
    v: &Tensor<T>,
    dequantize: Dequantize,
    rng: &mut R,
) -> f64 {
    let x = dequantize.apply(v, rng);
    mean_nll(model, &x) - dequantize.log_det(v.dim(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_cube_log_likelihood_is_zero_for_the_uniform_model_and_gives_nice_s_figure() {
        // The uniform model on [0,1]^D: NLL = D ln L, density 1 on the cube.
        let uniform = 784.0 * 256f64.ln();
        assert!(unit_cube_log_likelihood(uniform, 784, 256).abs() < 1e-9);
        // NICE's 1980.5 nats on MNIST is 4.356 bits/dim of the discrete data.
        let nll = 784.0 * 256f64.ln() - 1980.5;
        assert!(
            (bits_per_dim(nll, 784) - 4.3556).abs() < 1e-4,
            "{}",
            bits_per_dim(nll, 784)
        );
        assert!((unit_cube_log_likelihood(nll, 784, 256) - 1980.5).abs() < 1e-9);
    }
}
