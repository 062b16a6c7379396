//! The derivation pages of docs/derivations, compiled into the API docs so
//! every formula is one click from the code that computes it.
//!
//! Each module below is empty: its documentation *is* the page, included from
//! `docs/derivations/*.md`, so the same text reads on GitHub and in rustdoc.
//! Read them in this order: change of variables, affine coupling, bits per
//! dimension for the flows; tensor layout and reverse mode for the engine.
//!
//! ## Writing a page
//!
//! A page reads top to bottom: Source, Notation, the map, its Jacobian and
//! log-determinant, Numerical notes, What the tests prove, Where in the code
//! (STYLE.md §4). Each layer has a section of its own, so that its doc
//! comment links to an anchor: rustdoc makes a heading's id from its text,
//! lower-cased, spaces turned to `-`, other punctuation dropped ("## The
//! invertible 1×1 convolution" is `#the-invertible-11-convolution`).
//!
//! Pages cite code in backticks, in three forms, and `tests/derivation_pages.rs`
//! fails when a citation no longer names anything:
//!
//! - a test or function by its name: `affine_coupling_passes_check_flow`
//!   (a property test may carry its module in the `proptests` binary:
//!   `tensor_kernels::block_masked_products_match_the_dense_masked_ones`);
//! - an item by its path from the crate root (`flows::coupling::AffineCoupling`)
//!   or from its type (`Dequantize::log_det`, `Transform::Gated`), with
//!   arguments if they help (`Mask::half(dim, flip)`);
//! - a file by its path from the crate root: `tests/checkpoint.rs`.
//!
//! Backticked text of another shape (an expression, a shape, a command, a
//! one-word variable such as `z1`) is not a citation. The same test checks
//! that each page's "What the tests prove" names at least one test, and that
//! every link from a doc comment to a section lands on a heading.

/// Change of variables: the density of a bijection, summed log-dets, the sign
/// convention, maximum likelihood, and bits/dim.
#[doc = include_str!("../docs/derivations/change-of-variables.md")]
pub mod change_of_variables {}

/// Affine coupling (RealNVP): masks, the triangular Jacobian, log-det Σ s, the
/// bounded log-scale, zero initialisation, and the additive (NICE) case.
#[doc = include_str!("../docs/derivations/affine-coupling.md")]
pub mod affine_coupling {}

/// Tensor layout: strides, offsets, contiguity, and why transpose, narrow and
/// broadcast are free views.
#[doc = include_str!("../docs/derivations/tensor-layout.md")]
pub mod tensor_layout {}

/// Reverse mode: the chain rule on a Wengert list, vector-Jacobian products,
/// the backward rules, and gradcheck.
#[doc = include_str!("../docs/derivations/reverse-mode.md")]
pub mod reverse_mode {}

/// Bits per dimension: dequantisation, the logit transform and their
/// Jacobians, and the bound on the discrete log-likelihood.
#[doc = include_str!("../docs/derivations/bits-per-dim.md")]
pub mod bits_per_dim {}

/// NICE: the additive coupling, volume preservation, the diagonal rescaling,
/// and the logistic prior.
#[doc = include_str!("../docs/derivations/nice.md")]
pub mod nice {}

/// RealNVP on images: checkerboard and channel masks, the squeeze, the
/// multi-scale factor-out and its log-det bookkeeping, batch normalisation as
/// a bijector.
#[doc = include_str!("../docs/derivations/realnvp.md")]
pub mod realnvp {}

/// Glow: ActNorm and its data-dependent initialisation, the invertible 1×1
/// convolution and its LU form, the sigmoid scale and the learned prior.
#[doc = include_str!("../docs/derivations/glow.md")]
pub mod glow {}

/// Dequantisation: why bits/dim needs the discrete likelihood, and which
/// Jacobians it counts.
#[doc = include_str!("../docs/derivations/dequantization.md")]
pub mod dequantization {}

/// The data-side bijections and their log-dets: `Dequantize`'s scaling,
/// `Logit`, `Standardize`.
#[doc = include_str!("../docs/derivations/preprocessing.md")]
pub mod preprocessing {}

/// Permutations: why `Reverse`, `Permutation` and `Reshape` add nothing to
/// the log-det, and why flows need them between layers.
#[doc = include_str!("../docs/derivations/permutations.md")]
pub mod permutations {}

/// MADE: masks from degrees, why the outputs are autoregressive, and the
/// incremental solve that samples in one pass of work.
#[doc = include_str!("../docs/derivations/made.md")]
pub mod made {}

/// MAF: the affine autoregressive map, its triangular Jacobian, the parallel
/// density and the sequential sampling.
#[doc = include_str!("../docs/derivations/maf.md")]
pub mod maf {}

/// IAF: MAF read backwards, the gated update, and training by reverse KL.
#[doc = include_str!("../docs/derivations/iaf.md")]
pub mod iaf {}

/// Neural spline flows: the rational-quadratic spline, its derivative, the
/// inverse as a quadratic and its stable root, the tails, the constraints.
#[doc = include_str!("../docs/derivations/splines.md")]
pub mod splines {}

/// Learnable base distributions: the diagonal Gaussian and the Gaussian
/// mixture, log-sum-exp, sampling by component.
#[doc = include_str!("../docs/derivations/bases.md")]
pub mod bases {}

/// Conditioning: why any function of the context may enter a conditioner
/// without touching the log-det; conditional couplings, MADE, base and
/// embedding; amortised inference with a known answer.
#[doc = include_str!("../docs/derivations/conditioning.md")]
pub mod conditioning {}
