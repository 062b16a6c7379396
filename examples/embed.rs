//! Embedding a trained flow in a program: load a checkpoint written by
//! `flowzoo train`, evaluate log p(x), draw samples. The library alone does
//! it, with no native code and no threads required:
//!
//! ```toml
//! [dependencies]
//! flowzoo = { version = "0.1", default-features = false }
//! rand = "0.8"
//! ```
//!
//! Run: `cargo run --example embed -- runs/moons/model.flowzoo`

use flowzoo::train::checkpoint::load_model;
use rand::SeedableRng;
use std::path::Path;

/// Loads the checkpoint at `path`, draws 5 samples and prints them with
/// their log-densities; returns the log-densities.
pub fn run(path: &Path) -> Result<Vec<f32>, flowzoo::Error> {
    // The file alone rebuilds the model: architecture, parameters, prior.
    let model = load_model::<f32>(path)?;
    let dim = model.dim();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let x = model.sample(5, 1.0, &mut rng); // [5, dim]
    let log_p = model.log_prob(&x).to_vec(); // [5], nats
    for (row, lp) in x.to_vec().chunks(dim).zip(&log_p) {
        println!("x = {row:?}  log p(x) = {lp:.4} nats");
    }
    Ok(log_p)
}

fn main() -> Result<(), flowzoo::Error> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "runs/moons/model.flowzoo".into());
    run(Path::new(&path)).map(|_| ())
}
