//! Training and evaluation: minibatch maximum likelihood with Adam
//! ([`mod@fit`]; on simulated pairs for amortised inference,
//! [`amortised`]), reverse KL ([`reverse_kl`]), test NLL and bits/dim
//! ([`eval`]), the grids behind density pictures ([`sample`]), whole
//! experiments as the command line runs them ([`run`] for maximum
//! likelihood, [`iaf`] for the IAF samplers), their seed streams
//! ([`seeds`]), and checkpoints ([`checkpoint`] with its byte [`codec`] and
//! the [`record`] of the run).
//!
//! The story in one paragraph: each step draws a batch x, computes the loss
//! L = −(1/B) Σ log p(xᵦ) on a recording tape, backpropagates, and lets Adam
//! move every parameter. For a fixed dataset a validation score is checked
//! every few steps and the parameters with the best score are kept, because
//! small datasets overfit. Every random draw comes from one seeded RNG, so the
//! same seed and thread count reproduce the run. Read `fit.rs` first.

pub mod amortised;
pub mod checkpoint;
mod clock;
pub mod codec;
pub mod condition;
pub mod dataset;
pub mod eval;
pub mod fit;
pub mod iaf;
pub mod record;
pub mod reverse_kl;
pub mod run;
pub mod sample;
pub mod schedule;
pub mod seeds;

pub use eval::{bits_per_dim, mean_nll};
pub use fit::{fit, train_step, FitConfig, FitReport};
