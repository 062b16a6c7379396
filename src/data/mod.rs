//! Data: the distributions and datasets flows are trained on, and the batches
//! that feed them.
//!
//! Everything here returns flat, row-major `Vec`s with the shape stated in each
//! doc (`[n, 2]` for toy points, `[n, 64]` for digits, `[rows, dim]` for
//! tables); the caller wraps the vectors in tensors. Datasets only: the
//! bijections that prepare data (dequantisation, the logit, the
//! standardisation of columns) are layers with log-dets and live in
//! [`flows`](crate::flows). In the module order the data comes after the
//! flows and the crate's [`error`](crate::error) file: it imports from
//! `tensor` and `autodiff` (the energies are written on tape variables),
//! from `flows` (the column statistics of
//! [`Standardize`](crate::flows::Standardize)) and from `error` (its
//! [`DataError`](crate::error::DataError)), never from `train` or the tool.
//!
//! - [`toy2d`]: [`Toy2d`], the 2-D toy densities (moons, eight Gaussians,
//!   checkerboard, pinwheel, circles), each defined exactly in its doc, with
//!   a box that holds its mass. **Read this first**: it is the data of the
//!   first lecture and of every density picture.
//! - [`energy`]: [`Energy`](energy::Energy), the four unnormalised 2-D target
//!   densities of Rezende and Mohamed (arXiv:1505.05770) that an IAF is
//!   fitted to by reverse KL.
//! - [`digits`]: [`Digits`], the UCI optdigits 8x8 digits embedded in the
//!   library, and the validation split of the protocol (the last 383 training
//!   images).
//! - [`idx`]: the IDX reader and writer behind the digits (and MNIST-style
//!   folders), with one typed error per way a file can be malformed.
//! - [`images`]: [`ImageSet`](images::ImageSet), MNIST folders (plain or
//!   through a decoder the caller passes, e.g. gzip) and CIFAR-10 binary
//!   batches.
//! - [`tabular`]: [`Table`], numeric CSV files, and [`standardize()`] of a
//!   table's columns in place.
//! - [`npy`]: NumPy `.npy` matrices read as a [`Table`].
//! - [`simulators`]: simulators for amortised inference, the linear-Gaussian
//!   one with its exact posterior and the two-moons task.
//! - [`read_table`] (here, above both readers, so neither imports the
//!   other): a CSV or a `.npy` file by its extension.
//! - [`batch`]: [`Batcher`], seeded shuffling into minibatches of row indices,
//!   and [`gather_rows`] to copy those rows out.
//!
//! Randomness is always explicit: samplers take `&mut impl Rng`, the batcher a
//! `u64` seed. Malformed input returns a
//! [`DataError`](crate::error::DataError) that names the file and the line,
//! column or byte offset.

pub mod batch;
pub mod digits;
pub mod energy;
pub mod idx;
pub mod images;
pub mod npy;
pub mod simulators;
pub mod tabular;
pub mod toy2d;

pub use batch::{gather_rows, Batcher};
pub use digits::Digits;
pub use idx::{parse_idx, read_idx, read_idx_expect, write_idx, IdxArray};
pub use tabular::{read_csv, standardize, Table};
pub use toy2d::Toy2d;

/// Reads a table from a `.npy` file (NumPy's format, see
/// [`npy::read_npy`]: columns `x0, x1, …`) or, for any other extension, a
/// CSV file (see [`read_csv`], nothing dropped). It lives here, above both
/// readers, so that neither reader imports the other.
///
/// # Errors
/// As [`npy::read_npy`] or [`read_csv`].
pub fn read_table(path: impl AsRef<std::path::Path>) -> Result<Table, crate::error::DataError> {
    let path = path.as_ref();
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npy"))
    {
        npy::read_npy(path)
    } else {
        read_csv(path, &[])
    }
}
