//! Neural-network building blocks for the flows' conditioner networks:
//! [`Linear`], [`Mlp`], initialisers, and the [`Adam`] optimiser.
//!
//! A layer owns its [`Param`]s and lists them (`params`, `params_mut`); its
//! `forward` takes a [`Var`](crate::autodiff::Var) and asks the `Var`'s tape
//! for each parameter, so the same code trains (recording tape) and evaluates
//! (no-grad tape). Read `linear.rs` first.

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
