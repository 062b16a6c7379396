//! Data: the distributions and datasets flows are trained on, and the batches
//! that feed them.
//!
//! Everything here returns flat, row-major `Vec`s with the shape stated in each
//! doc (`[n, 2]` for toy points, `[n, 64]` for digits, `[rows, dim]` for
//! tables), so the module depends on nothing but `std`, `rand` and
//! `byteorder`; the caller wraps the vectors in tensors.
//!
//! - [`toy2d`]: [`Toy2d`], the 2-D toy densities (moons, eight Gaussians,
//!   checkerboard, pinwheel, circles), each defined exactly in its doc, with
//!   a box that holds its mass. **Read this first**: it is the data of the
//!   first lecture and of every density picture.
//! - [`digits`]: [`Digits`], the UCI optdigits 8x8 digits embedded in the
//!   library, and the validation split of the protocol (the last 383 training
//!   images).
//! - [`idx`]: the IDX reader and writer behind the digits (and MNIST-style
//!   folders), with one typed error per way a file can be malformed.
//! - [`tabular`]: [`Table`], numeric CSV files, and [`standardize()`].
//! - [`batch`]: [`Batcher`], seeded shuffling into minibatches of row indices,
//!   and [`gather_rows`] to copy those rows out.
//! - [`npy`]: NumPy `.npy` matrices read as a [`Table`].
//! - [`preprocess`]: dequantisation and the logit transform as flows, whose
//!   log-dets count towards bits/dim.
//! - [`mod@standardize`]: per-column standardisation as a flow layer, so tabular
//!   densities are reported in the data's original units.
//!
//! Randomness is always explicit: samplers take `&mut impl Rng`, the batcher a
//! `u64` seed. Malformed input returns a
//! [`DataError`](crate::error::DataError) that names the file and the line,
//! column or byte offset.

pub mod batch;
pub mod digits;
pub mod idx;
pub mod npy;
pub mod preprocess;
pub mod standardize;
pub mod tabular;
pub mod toy2d;

pub use batch::{gather_rows, Batcher};
pub use digits::Digits;
pub use idx::{parse_idx, read_idx, read_idx_expect, write_idx, IdxArray};
pub use tabular::{read_csv, standardize, Table};
pub use toy2d::Toy2d;
