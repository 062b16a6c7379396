//! # flowzoo
//!
//! Normalizing flows in pure Rust, built on their own strided tensor and
//! reverse-mode autodiff.
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
