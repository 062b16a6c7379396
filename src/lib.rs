//! # flowzoo
//!
//! Normalizing flows in pure Rust, on their own strided tensor and
//! reverse-mode autodiff: a reference to learn flows from, and a crate to
//! embed when a program needs a density or a sampler. No BLAS, no libtorch,
//! no C compiler: the library depends on `rand`, `rand_distr`,
//! `matrixmultiply`, `rayon` and `byteorder` only.
//!
//! ## The map (the reading order: no module reaches up)
//!
//! Each module imports only from the modules above it in this table
//! (`tests/layering.rs` checks it, file by file):
//!
//! | module | what it holds |
//! | --- | --- |
//! | [`tensor`] | `Tensor<T>`: a `Layout` (shape, strides, offset) over shared storage; views, element-wise kernels with broadcasting, reductions, matmul, conv2d, small linear algebra (LU, slogdet, triangular solve) |
//! | [`autodiff`] | the tape (a Wengert list), `Var`, `Param`, one backward rule per op, `gradcheck` |
//! | [`nn`] | `Linear`, `Mlp`, `Made` (and its one-pass solver), small conv nets, initialisers, `Sgd`, `Adam` and its saved state |
//! | [`flows`] | the `Flow` trait, every layer (each writing and reading its own spec), the registry of layer kinds, `Sequential`, the priors, `FlowModel`, the named architectures, the data-side bijections (`Dequantize`, `Logit`, `Standardize`), `check_flow`, `FlowError` |
//! | [`error`] | the crate's error enums (`DataError`, `TrainError`, `CheckpointError`, and `FlowError` re-exported) and `Error`, `Result` |
//! | [`data`] | datasets only: toy 2-D densities and target energies, the IDX reader, the embedded UCI digits, CSV and `.npy` tables, batches |
//! | [`train`] | the maximum-likelihood and reverse-KL loops, NLL and bits/dim, checkpoints and their byte codec, density grids, whole experiments |
//! | [`derivations`] | the math of every layer and engine piece (docs/derivations), one click from the code |
//!
//! The command-line tool (`src/bin/flowzoo/`, feature `cli`) sits on top and
//! only parses, calls the library, and reports. To add a flow layer, read
//! the [`flows`] module doc, "Add a layer".
//!
//! ## Conventions
//!
//! - `forward` maps latent z to data x (x = f(z)); `inverse` maps x to z. Each
//!   returns the output and the per-sample log|det J| (shape `[batch]`), so
//!   log p(x) = log π(z) + logdet_inverse(x).
//! - Vectors are `[batch, dim]`, images `[batch, channels, height, width]`.
//! - Log-likelihoods are in nats per sample unless named `bits_per_dim`.
//! - Every random thing takes a seed or an `&mut impl Rng`; the same seed and
//!   thread count reproduce a run.
//!
//! ## Quick start: fit a flow to two moons
//!
//! ```
//! use flowzoo::data::toy2d::Toy2d;
//! use flowzoo::flows::FlowModel;
//! use flowzoo::nn::Adam;
//! use flowzoo::tensor::Tensor;
//! use flowzoo::train::{fit, mean_nll, FitConfig};
//! use rand::SeedableRng;
//!
//! let mut rng = rand::rngs::StdRng::seed_from_u64(0);
//! let moons = Toy2d::moons();
//! let mut model = FlowModel::<f32>::realnvp(2, 4, 32, &mut rng);
//! let config = FitConfig { steps: 200, ..FitConfig::default() };
//! let batch = |_step: usize, rng: &mut rand::rngs::StdRng| {
//!     Tensor::from_f64_slice(&moons.sample(128, rng), &[128, 2])
//! };
//! let mut adam = Adam::new(1e-3); // the learning rate is the optimiser's
//! let report = fit(&mut model, &mut adam, &config, batch, None, |_, _| {}).unwrap();
//!
//! let test = Tensor::from_f64_slice(&moons.sample(2000, &mut rng), &[2000, 2]);
//! let nll = mean_nll(&model, &test); // nats per sample
//! assert!(nll < 1.6, "test NLL {nll} after {} steps", report.steps);
//! let samples = model.sample(5, 1.0, &mut rng); // [5, 2]
//! assert_eq!(samples.shape(), &[5, 2]);
//! ```
#![deny(missing_docs)]

pub mod autodiff;
pub mod data;
pub mod derivations;
pub mod error;
pub mod flows;
pub mod nn;
pub mod tensor;
pub mod train;

pub use error::{Error, Result};
