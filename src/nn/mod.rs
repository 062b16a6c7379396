//! Neural-network building blocks for the flows' conditioner networks, and
//! the optimisers that train them.
//!
//! - [`linear`]: [`Linear`] and its initialisation [`Init`]. **Read this first.**
//! - [`mlp`]: [`Mlp`], the ReLU network of the vector couplings.
//! - [`conv`]: [`Conv2d`](conv::Conv2d) and [`ConvResNet`](conv::ConvResNet),
//!   the small residual networks of the image couplings and of the learned
//!   prior of a split.
//! - [`made`]: [`Made`], the masked autoencoder behind MAF and IAF: masks
//!   from degrees, so output i sees only the features before i;
//!   [`made_solve`]: its incremental solve, which samples the sequential
//!   direction in one pass of work.
//! - [`init`]: Glorot initialisation, seeded.
//! - [`optim`]: [`Sgd`], [`Adam`], [`AdamW`] (each with its update rule in
//!   its doc), [`AdamState`], the optimiser state a checkpoint saves,
//!   [`LrSchedule`] and [`clip_grad_norm`].
//!
//! A layer owns its [`Param`]s and lists them (`params`, `params_mut`); its
//! `forward` takes a [`Var`](crate::autodiff::Var) and asks the `Var`'s tape
//! for each parameter, so the same code trains (recording tape) and evaluates
//! (no-grad tape). The module imports from `tensor` and `autodiff` only.

pub mod conv;
pub mod init;
pub mod linear;
pub mod made;
pub mod made_solve;
pub mod mlp;
pub mod optim;

pub use crate::autodiff::Param;
pub use linear::{Init, Linear};
pub use made::Made;
pub use mlp::Mlp;
pub use optim::{clip_grad_norm, Adam, AdamState, AdamW, LrSchedule, Sgd};
