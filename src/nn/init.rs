//! Seeded initialisers.

use crate::tensor::{Element, Tensor};
use rand::Rng;

/// Glorot (Xavier) uniform initialisation of a `[fan_in, fan_out]` weight:
/// entries uniform on `[−a, a]` with `a = √(6 / (fan_in + fan_out))`, which
/// keeps activation variance roughly constant through layers.
///
/// # Source
/// X. Glorot, Y. Bengio, "Understanding the difficulty of training deep
/// feedforward neural networks", AISTATS 2010.
pub fn glorot_uniform<T: Element, R: Rng + ?Sized>(
    fan_in: usize,
    fan_out: usize,
    rng: &mut R,
) -> Tensor<T> {
    let a = (6.0 / (fan_in + fan_out).max(1) as f64).sqrt();
    Tensor::rand_uniform(&[fan_in, fan_out], -a, a, rng)
}
