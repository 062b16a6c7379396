//! Property tests, one binary. Run one area with a filter:
//! `cargo test --release --test proptests flows::`.
//!
//! - `tolerance`: the named tolerances and the one comparison helper.
//! - `strategies`: generators for shapes, strided views and flow inputs.
//! - `tensor_kernels`: every kernel against a naive reference, on views with
//!   odd strides (transposed, narrowed, broadcast).
//! - `autodiff_ops`: gradcheck of every recorded op against central differences.
//! - `fuzz`: random and mutated bytes into the IDX, `.npy`, CSV and
//!   checkpoint readers: typed errors, never a panic (prints the input
//!   counts); the table readers hold memory in proportion to their input.
//! - `alloc_meter`: the counting allocator the fuzzers measure with.
//! - `edges`: extreme conditioner outputs for the coupling scales, and
//!   edge inputs (zeros, ±1e4, subnormals, mask boundaries, a batch of one)
//!   for every layer and assembled architecture: finite outputs, log-dets
//!   and gradients, or a typed error.
//! - `flows`: `check_flow` (invertibility, log-det vs the finite-difference
//!   Jacobian) and the parameter gradcheck on every layer and stack.

mod alloc_meter;
mod autodiff_ops;
mod autoregressive;
mod edges;
mod flows;
mod fuzz;
mod linalg;
mod strategies;
mod tensor_kernels;
mod tensor_views;
mod tolerance;
