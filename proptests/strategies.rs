//! Generators shared by the property tests.

use flowzoo::tensor::Tensor;
use proptest::prelude::*;
use rand::SeedableRng;

/// A seeded RNG from a proptest-drawn seed (so a failing case replays).
pub fn rng(seed: u64) -> rand::rngs::StdRng {
    rand::rngs::StdRng::seed_from_u64(seed)
}

/// Shapes of rank 1 to 4 with axes of length 1 to `max` (1-sized axes included).
pub fn shape(max: usize) -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1..=max, 1..=4)
}

/// A tensor of `shape` with N(0, 1) entries from `seed`.
pub fn randn(shape: &[usize], seed: u64) -> Tensor<f64> {
    Tensor::randn(shape, &mut rng(seed))
}
