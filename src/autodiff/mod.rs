//! Reverse-mode automatic differentiation on a tape.
//!
//! Build a [`Tape`], turn inputs and parameters into [`Var`]s on it
//! ([`Tape::leaf`], [`Tape::param`], [`Tape::constant`]), compute with `Var`
//! methods (each computes its value at once and appends one node), then call
//! [`Tape::backward`] on a one-element loss to get a [`Gradients`]. The tape is
//! a Wengert list: nodes in creation order, so walking it backwards visits
//! every node after all its users. The recorded ops are listed in [`op`]; all
//! their derivatives sit in one `match` in `backward.rs`.
//!
//! **Evaluation without recording**: [`Tape::no_grad`] gives a tape on which
//! every `Var` is a plain value, so inference (`sample`, `log_prob`) keeps no
//! graph. The same layer code serves training and inference.
//!
//! **Checking**: [`gradcheck`] compares the tape with central differences.
//!
//! Read `op.rs`, then `var.rs`, then `backward.rs`. Derivation:
//! [`derivations::reverse_mode`](crate::derivations::reverse_mode)
//! (docs/derivations/reverse-mode.md).

mod backward;
mod gradcheck;
pub mod op;
mod param;
pub mod profile;
mod tape;
mod var;

pub use gradcheck::{
    beyond_fd_error, gradcheck, kink_aware_derivative, kink_aware_derivative_with_error,
    GradcheckFailure, FD_STENCIL,
};
pub use param::Param;
pub use tape::{Gradients, Tape};
pub use var::Var;
