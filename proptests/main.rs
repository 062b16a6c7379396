//! Property tests, one binary. Run one area with a filter:
//! `cargo test --release --test proptests flows::`.
//!
//! - `tolerance`: the named tolerances, each with where it comes from, and
//!   the one comparison helper.
//! - `strategies`: generators for shapes, strided views and flow inputs.
//! - `tensor_kernels`: every kernel against a naive reference, on views with
//!   odd strides (transposed, narrowed, broadcast), and the block-masked
//!   products against the dense masked ones.
//! - `conv`: conv2d, its input, weight and bias gradients against seven
//!   nested loops in f64 and f32, on strided inputs, for same convolutions
//!   (the direct kernel) and other paddings, and their reproducibility.
//! - `tensor_views`: every view against the address formula; the copies
//!   (concat, stack, index_select, flip, the 2x2 squeeze) against their
//!   definitions.
//! - `linalg`: LU, the triangular solves, the inverse and slogdet by
//!   reconstruction and against a cofactor expansion, with backward-error
//!   tolerances.
//! - `autodiff_ops`: gradcheck of every recorded op against central differences.
//! - `flows`: `check_flow` (invertibility, log-det vs the finite-difference
//!   Jacobian) and the parameter gradcheck on every layer and stack, ActNorm's
//!   initialisation, BatchNorm's running averages, and the density of every
//!   2-D model integrating to 1.
//! - `autoregressive`: MADE's autoregressive property, MAF and IAF through
//!   `check_flow` and the triangular-Jacobian check, the two sequential
//!   solvers agreeing, the gradchecks, and the energies' gradients.
//! - `fused`: the fused ops of the training step (linear + ReLU, the bias
//!   folded into the product, the affine coupling's update) against the
//!   unfused composition, values and gradients in f64 and f32, and gradcheck.
//! - `fuzz`: random and mutated bytes into the IDX, `.npy`, CSV and
//!   checkpoint readers: typed errors, never a panic (prints the input
//!   counts); the table readers hold memory in proportion to their input.
//! - `alloc_meter`: the counting allocator the fuzzers measure with.
//! - `edges`: extreme conditioner outputs for the coupling scales (both
//!   kinds, both directions, f32 and f64), and edge inputs (zeros, ±1e4,
//!   subnormals, mask boundaries, a batch of one) for every layer and
//!   assembled architecture: finite outputs, log-dets and gradients, or a
//!   typed error.
//! - `bases`: the learnable bases (diagonal Gaussian, Gaussian mixture):
//!   gradients against finite differences, the 2-D density integrating to
//!   1, the mixture's sampler against its density (χ²), far-away points.
//! - `conditional`: every conditional layer through `check_flow` at fixed
//!   contexts, the MADE-based ones triangular in x for every context, the
//!   parameter gradcheck at a context, the gradient of log p(x | c) in c,
//!   and a model with its context weights zeroed equal to the
//!   unconditional one.
//! - `splines`: the rational-quadratic spline (round trips, log-derivative
//!   against finite differences, gradcheck of input, widths, heights and
//!   derivatives, the identity at zero parameters, and every knot, ±B,
//!   ±B ± one ulp, ±1e4 and collapsed bins in f32 and f64).
//!
//! Each derivation page in docs/derivations names the tests here that prove
//! it, under "What the tests prove".

mod alloc_meter;
mod autodiff_ops;
mod autoregressive;
mod bases;
mod conditional;
mod conv;
mod edges;
mod flows;
mod fused;
mod fuzz;
mod linalg;
mod splines;
mod strategies;
mod tensor_kernels;
mod tensor_views;
mod tolerance;
