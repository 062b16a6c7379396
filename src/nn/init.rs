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

#[cfg(test)]
mod tests {
    use crate::nn::{Init, Linear, Made};
    use rand::SeedableRng;

    // Init::FanIn: weight and bias inside ±1/√fan_in and spread over it
    // (uniform: variance a²/3), the bias not zero; a MADE so initialised
    // keeps its masks (masked weights exactly zero).
    #[test]
    fn fan_in_init_draws_weight_and_bias_on_the_pytorch_interval() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0);
        let layer = Linear::<f64>::new(4, 500, Init::FanIn, &mut rng);
        let a = 0.5;
        for (name, values) in [
            ("weight", layer.weight.value.to_vec()),
            ("bias", layer.bias.value.to_vec()),
        ] {
            assert!(values.iter().all(|v| v.abs() <= a), "{name} outside ±{a}");
            let variance = values.iter().map(|v| v * v).sum::<f64>() / values.len() as f64;
            assert!(
                (variance - a * a / 3.0).abs() < 0.15 * a * a / 3.0,
                "{name}: variance {variance}, uniform gives {}",
                a * a / 3.0
            );
        }
        let glorot = Linear::<f64>::new(4, 500, Init::Glorot, &mut rng);
        assert!(glorot.bias.value.to_vec().iter().all(|&b| b == 0.0));
        let made = Made::<f64>::with_options(
            3,
            &[8],
            2,
            &[1, 2, 3],
            crate::nn::made::MadeOptions {
                hidden_init: Init::FanIn,
                ..Default::default()
            },
            &mut rng,
        );
        for p in made.params() {
            if p.name.ends_with("layer0.weight") {
                // degree-3 input feeds no hidden unit (degrees 1..2)
                assert!((0..8).all(|k| p.value.get(&[2, k]) == 0.0), "{p:?}");
            }
            if p.name.ends_with("layer0.bias") {
                assert!(p.value.to_vec().iter().all(|&b| b != 0.0));
            }
        }
    }
}
