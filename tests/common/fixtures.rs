//! The saved models in `tests/fixtures/` and the fixed points the fixture
//! tests evaluate them on.

use flowzoo::tensor::Tensor;
use std::path::PathBuf;

/// The path of `tests/fixtures/{name}`.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Points on which the stored models are evaluated: `[n, dim]`, each entry
/// a fixed function of its index so that nothing random enters.
pub fn points(n: usize, dim: usize, scale: f64) -> Tensor<f32> {
    let values: Vec<f64> = (0..n * dim)
        .map(|i| scale * (0.37 * i as f64 + 0.11).sin())
        .collect();
    Tensor::from_f64_slice(&values, &[n, dim])
}
