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

/// A tensor of `shape` uniform on ±1/√`fan_in`: PyTorch's default for the
/// weight and the bias of `nn.Linear` and `nn.Conv2d` (Kaiming uniform with
/// a = √5, whose bound √(6 / ((1 + a²)·fan_in)) is 1/√fan_in).
///
/// # Source
/// K. He, X. Zhang, S. Ren, J. Sun, "Delving deep into rectifiers",
/// arXiv:1502.01852 (the Kaiming family); the a = √5 choice is PyTorch's.
pub fn fan_in_uniform<T: Element, R: Rng + ?Sized>(
    shape: &[usize],
    fan_in: usize,
    rng: &mut R,
) -> Tensor<T> {
    let a = 1.0 / (fan_in.max(1) as f64).sqrt();
    Tensor::rand_uniform(shape, -a, a, rng)
}
