//! The crate's error types: what went wrong, and where.
//!
//! Two kinds of failure, two mechanisms (DESIGN.md, "Errors"): misuse of the
//! tensor API panics with both shapes in the message; bad input from the world
//! (a malformed file, a bad argument, NaN data, training that diverges) returns
//! one of the typed errors below. Each variant carries the *where* as named
//! fields (`path`, `offset`, `row`, `column`, `step`), and `Display` prints one
//! full sentence built from them, for example
//!
//! ```text
//! t10k-images-idx3-ubyte: offset 1500: the file ends after 1500 bytes, but its header announces 115024 bytes
//! ```
//!
//! - [`DataError`]: a dataset could not be read (IDX files, `.npy` files,
//!   CSV tables, dataset names).
//! - [`TrainError`]: training was given bad arguments or data, or diverged.
//! - [`CheckpointError`]: a checkpoint could not be written, read or rebuilt;
//!   a layer that cannot be rebuilt from its spec reports a
//!   [`FlowError`], which [`CheckpointError::Layer`] wraps with the file's
//!   path.
//! - [`FlowError`]: re-exported from [`flows::error`](crate::flows::error),
//!   where the layers raise it: the layer's place in the model, its kind,
//!   the field and the value.
//! - [`Error`]: the crate-level error that wraps the data, training and
//!   checkpoint errors, with [`Result`] as alias.
//!
//! This file sits between `flows` and `data` in the module order: it
//! imports `flows::error` only, and the data readers return its
//! `DataError`. The enums are written by hand (no `thiserror`): the library
//! keeps its five dependencies.

pub use crate::flows::error::FlowError;
use std::fmt;
use std::path::PathBuf;

mod checkpoint;
pub use checkpoint::CheckpointError;

/// Why a dataset could not be read or built.
///
/// Variants that concern a file carry its `path`; data parsed from memory uses
/// a stand-in such as `<memory>` or the embedded file's name.
#[derive(Debug)]
pub enum DataError {
    /// The operating system could not read or write the file.
    Io {
        /// The file that could not be read or written.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The first four bytes are not the magic number of an IDX file of
    /// unsigned bytes: bytes 0–1 must be zero, byte 2 must be `0x08`
    /// (unsigned byte) and byte 3, the number of dimensions, must be 1 to 8.
    BadMagic {
        /// The file.
        path: PathBuf,
        /// The first four bytes as found.
        found: [u8; 4],
    },
    /// The file starts with the gzip magic bytes `1f 8b`: it must be
    /// decompressed (e.g. `gunzip FILE.gz`) before it can be read, because
    /// flowzoo carries no gzip decoder.
    Gzipped {
        /// The compressed file.
        path: PathBuf,
    },
    /// The array has a different number of dimensions than the caller asked
    /// for (e.g. labels must be `[n]`, images `[n, height, width]`).
    BadDims {
        /// The file.
        path: PathBuf,
        /// Number of dimensions the caller asked for.
        expected: usize,
        /// Number of dimensions in the file.
        found: usize,
    },
    /// The file ends before the header or the payload the header announces.
    Truncated {
        /// The file.
        path: PathBuf,
        /// Byte offset where the data ran out (the file's length).
        offset: u64,
        /// Total length in bytes the header implies (header plus payload).
        expected: u64,
    },
    /// The file holds more bytes than its header announces.
    TrailingBytes {
        /// The file.
        path: PathBuf,
        /// Total length in bytes the header implies.
        expected: u64,
        /// Actual length of the file in bytes.
        found: u64,
    },
    /// Two parts of a dataset disagree, e.g. the number of images and of
    /// labels; `what` says which parts and both numbers.
    Mismatch {
        /// A sentence naming the two parts and what each holds.
        what: String,
    },
    /// A CSV field or line could not be parsed.
    Parse {
        /// The file.
        path: PathBuf,
        /// Line number, 1-based, counting the header as line 1.
        row: usize,
        /// Column number, 1-based.
        column: usize,
        /// What was wrong, quoting the offending text.
        message: String,
    },
    /// A CSV field parsed as a number that is NaN or infinite.
    NonFinite {
        /// The file.
        path: PathBuf,
        /// Line number, 1-based, counting the header as line 1.
        row: usize,
        /// Column number, 1-based.
        column: usize,
    },
    /// A value read finite that the element type the model computes in
    /// cannot hold: beyond ±3.4e38 for f32 (see
    /// [`Table::check_fits`](crate::data::tabular::Table::check_fits)).
    OutOfRange {
        /// The file.
        path: PathBuf,
        /// Data row, 0-based (the header and blank lines not counted).
        row: usize,
        /// The column's name.
        column: String,
        /// The value as read.
        value: f64,
        /// The element type (`"f32"`).
        element: &'static str,
    },
    /// A `.npy` file that is not a numeric matrix this reader takes, or
    /// that holds a NaN or infinity.
    BadNpy {
        /// The file.
        path: PathBuf,
        /// Byte offset of the offending header field or value.
        offset: u64,
        /// What is wrong (for a value: its row and column, 0-based).
        what: String,
    },
    /// A dataset name that no loader knows.
    UnknownDataset {
        /// The name asked for.
        name: String,
        /// The names that are known.
        known: Vec<String>,
    },
}

/// Why the bytes at the start of an IDX file are not a valid magic number, as
/// a clause for [`DataError::BadMagic`]'s message.
fn magic_problem(found: [u8; 4]) -> String {
    if found[0] != 0 || found[1] != 0 {
        "bytes 0-1 must be zero".to_string()
    } else if found[2] != 0x08 {
        format!(
            "element type 0x{:02x} is not supported (only 0x08, unsigned byte)",
            found[2]
        )
    } else {
        format!(
            "the header announces {} dimensions (IDX arrays here have 1 to 8)",
            found[3]
        )
    }
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataError::Io { path, source } => {
                write!(
                    f,
                    "{}: cannot read or write the file: {source}",
                    path.display()
                )
            }
            DataError::BadMagic { path, found } => write!(
                f,
                "{}: offset 0: not an IDX file of unsigned bytes: magic number \
                 {:02x} {:02x} {:02x} {:02x}: {}",
                path.display(),
                found[0],
                found[1],
                found[2],
                found[3],
                magic_problem(*found)
            ),
            DataError::Gzipped { path } => write!(
                f,
                "{}: the file is gzip-compressed (starts with 1f 8b); flowzoo reads \
                 plain IDX only, so decompress it first (gunzip)",
                path.display()
            ),
            DataError::BadDims {
                path,
                expected,
                found,
            } => write!(
                f,
                "{}: expected an array with {expected} dimensions, the file has {found}",
                path.display()
            ),
            DataError::Truncated {
                path,
                offset,
                expected,
            } => write!(
                f,
                "{}: offset {offset}: the file ends after {offset} bytes, but its \
                 header announces {expected} bytes",
                path.display()
            ),
            DataError::TrailingBytes {
                path,
                expected,
                found,
            } => write!(
                f,
                "{}: offset {expected}: {} unexpected bytes after the payload (the \
                 header announces {expected} bytes, the file has {found})",
                path.display(),
                found.saturating_sub(*expected)
            ),
            DataError::Mismatch { what } => write!(f, "inconsistent dataset: {what}"),
            DataError::Parse {
                path,
                row,
                column,
                message,
            } => write!(
                f,
                "{}: line {row}, column {column}: {message}",
                path.display()
            ),
            DataError::NonFinite { path, row, column } => write!(
                f,
                "{}: line {row}, column {column}: the value is not finite (NaN or infinity)",
                path.display()
            ),
            DataError::OutOfRange {
                path,
                row,
                column,
                value,
                element,
            } => write!(
                f,
                "{}: data row {row} (0-based), column \"{column}\": {value:e} is beyond \
                 the range of {element}, in which the model computes; rescale the column \
                 (other units)",
                path.display()
            ),
            DataError::BadNpy { path, offset, what } => {
                write!(f, "{}: offset {offset}: {what}", path.display())
            }
            DataError::UnknownDataset { name, known } => write!(
                f,
                "unknown dataset \"{name}\"; known datasets: {}",
                known.join(", ")
            ),
        }
    }
}

impl std::error::Error for DataError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DataError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Why training could not start or could not go on.
#[derive(Debug)]
pub enum TrainError {
    /// The loss or a layer's output became NaN or infinite.
    Diverged {
        /// The optimisation step (1-based, as the progress bar counts) at
        /// which it happened.
        step: usize,
        /// What became non-finite, naming the layer, e.g.
        /// `"layer 5 (AffineCoupling) log-det"` or `"loss"`.
        what: String,
    },
    /// The loss stayed finite but exploded: it rose more than
    /// [`EXPLODED_NATS_PER_DIM`](crate::train::fit::EXPLODED_NATS_PER_DIM)
    /// nats per dimension above the first step's, which no converging run
    /// does (a density 2¹⁴⁴ times worse per feature than where it started).
    Exploded {
        /// The optimisation step at which it happened.
        step: usize,
        /// The loss there, nats per sample.
        loss: f64,
        /// The loss of the run's first step, nats per sample.
        first_loss: f64,
        /// The data's dimension.
        dim: usize,
        /// The rise allowed, nats per dimension (the rule's constant).
        limit_per_dim: f64,
        /// The term of the log-density largest in size, naming the layer
        /// (`"layer 3 (AffineCoupling) log-det, mean -4.1e30"`).
        largest: String,
    },
    /// A layer's parameters are unusable: e.g. a 1x1 convolution's weight
    /// singular in the element type
    /// ([`InvConv1x1::check_weight`](crate::flows::InvConv1x1::check_weight)).
    /// Found by [`Flow::validate`](crate::flows::Flow::validate) before the
    /// first step (the model cannot be trained, whatever the learning
    /// rate), or when the loss stopped being finite or exploded: it then
    /// replaces [`TrainError::Diverged`] and [`TrainError::Exploded`],
    /// naming the layer the updates broke and how, rather than the first
    /// non-finite value downstream of it.
    BadLayer {
        /// The optimisation step at which it was found; 0 before the first.
        step: usize,
        /// What is wrong, with the layer's path and kind.
        source: FlowError,
    },
    /// An argument is out of its valid range (a zero batch size, a negative
    /// learning rate, ...).
    BadArgument {
        /// The argument's name as the caller spells it.
        name: String,
        /// What is wrong with it and what is allowed.
        message: String,
    },
    /// The training data holds a NaN or an infinity.
    NonFiniteData {
        /// Row index (0-based) into the `[n, dim]` data.
        row: usize,
        /// Column index (0-based) into the `[n, dim]` data.
        column: usize,
    },
}

impl fmt::Display for TrainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrainError::Diverged { step, what } => write!(
                f,
                "step {step}: {what} is not finite: training diverged (try a smaller \
                 learning rate)"
            ),
            TrainError::Exploded {
                step,
                loss,
                first_loss,
                dim,
                limit_per_dim,
                largest,
            } => write!(
                f,
                "step {step}: the loss {loss:.4e} nats per sample is more than {limit_per_dim} \
                 nats per dimension ({dim} dimensions) above the first step's {first_loss:.4}: \
                 training diverged; the largest term is {largest} (try a smaller learning rate)"
            ),
            TrainError::BadLayer { step: 0, source } => {
                write!(
                    f,
                    "before the first step: {source}: the model cannot be trained"
                )
            }
            TrainError::BadLayer { step, source } => write!(
                f,
                "step {step}: training diverged: the updates made a layer unusable: {source} \
                 (try a smaller learning rate, or clip the gradients)"
            ),
            TrainError::BadArgument { name, message } => {
                write!(f, "bad argument `{name}`: {message}")
            }
            TrainError::NonFiniteData { row, column } => write!(
                f,
                "training data row {row}, column {column} (0-based) is not finite \
                 (NaN or infinity)"
            ),
        }
    }
}

impl std::error::Error for TrainError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TrainError::BadLayer { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The crate-level error: every fallible public function returns it, or one of
/// the specific enums it wraps.
///
/// `Display` and `source()` pass straight through to the wrapped error, so the
/// message reads the same whether a caller holds a [`DataError`] or an
/// [`Error`].
#[derive(Debug)]
pub enum Error {
    /// A dataset could not be read.
    Data(DataError),
    /// Training failed or was given bad input.
    Train(TrainError),
    /// A checkpoint could not be written, read or rebuilt.
    Checkpoint(CheckpointError),
    /// A file other than a dataset (an output, a checkpoint) could not be
    /// read or written.
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Data(error) => error.fmt(f),
            Error::Train(error) => error.fmt(f),
            Error::Checkpoint(error) => error.fmt(f),
            Error::Io { path, source } => {
                write!(
                    f,
                    "{}: cannot read or write the file: {source}",
                    path.display()
                )
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            // Why forward, not `Some(error)`: Display already prints the
            // wrapped error's sentence, so a report walking the chain would
            // print it twice.
            Error::Data(error) => error.source(),
            Error::Train(error) => error.source(),
            Error::Checkpoint(error) => error.source(),
            Error::Io { source, .. } => Some(source),
        }
    }
}

impl From<DataError> for Error {
    fn from(error: DataError) -> Self {
        Error::Data(error)
    }
}

impl From<TrainError> for Error {
    fn from(error: TrainError) -> Self {
        Error::Train(error)
    }
}

impl From<CheckpointError> for Error {
    fn from(error: CheckpointError) -> Self {
        Error::Checkpoint(error)
    }
}

/// The crate's result type: `std::result::Result` with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_problem_names_the_first_bad_byte() {
        assert!(magic_problem([1, 0, 8, 3]).contains("bytes 0-1"));
        assert!(magic_problem([0, 0, 0x0d, 3]).contains("0x0d"));
        assert!(magic_problem([0, 0, 8, 0]).contains("0 dimensions"));
    }
}
