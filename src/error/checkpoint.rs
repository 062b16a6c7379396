//! [`CheckpointError`]: why a checkpoint could not be written, read, or
//! rebuilt (the byte layout its offsets refer to is
//! docs/checkpoint-format.md).

use super::FlowError;
use std::fmt;
use std::path::PathBuf;

/// Why a checkpoint could not be written, read, or turned back into a model.
///
/// Variants about a file carry its `path`; a checkpoint parsed from memory
/// uses a stand-in such as `<memory>`. Errors raised while rebuilding a layer
/// from its [`LayerSpec`](crate::flows::spec::LayerSpec) outside any file
/// carry an empty path until [`CheckpointError::in_file`] names it. The byte
/// layout the offsets refer to is docs/checkpoint-format.md.
#[derive(Debug)]
pub enum CheckpointError {
    /// The operating system could not read or write the file.
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The first eight bytes are not the checkpoint magic `FLOWZOO\0`.
    BadMagic {
        /// The file.
        path: PathBuf,
        /// The first (up to) eight bytes as found.
        found: Vec<u8>,
    },
    /// The file was written in a format version this build cannot read.
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The version in the file (bytes 8–11).
        found: u32,
        /// The newest version this build reads.
        supported: u32,
    },
    /// The file ends before the data its header or a record announces.
    Truncated {
        /// The file.
        path: PathBuf,
        /// Byte offset where the data ran out.
        offset: u64,
        /// What was being read there (e.g. `"tensor layer0.net.layer0.weight"`).
        what: String,
    },
    /// The checksum stored in the last eight bytes does not match the bytes
    /// before it: the file was corrupted after it was written.
    ChecksumMismatch {
        /// The file.
        path: PathBuf,
        /// Offset of the stored checksum (the file's length − 8).
        offset: u64,
        /// The checksum stored in the file.
        expected: u64,
        /// The checksum computed over the file's bytes.
        found: u64,
    },
    /// A record holds a value no writer produces (an unknown type tag, a
    /// length beyond the file, text that is not UTF-8, bytes after the end).
    Malformed {
        /// The file.
        path: PathBuf,
        /// Byte offset of the offending value.
        offset: u64,
        /// What is wrong, quoting the value.
        what: String,
    },
    /// The architecture and the stored tensors disagree: a parameter missing
    /// or left over, a shape that differs, optimiser state of the wrong size.
    ArchitectureMismatch {
        /// The file.
        path: PathBuf,
        /// Which tensor or field, and both sides of the disagreement.
        what: String,
    },
    /// A layer could not be rebuilt from its spec or given its buffers: an
    /// unknown kind, a missing or invalid field, a buffer that does not fit.
    /// The [`FlowError`] names the layer's position, kind, field and value.
    Layer {
        /// The file.
        path: PathBuf,
        /// What the layer said.
        source: FlowError,
    },
    /// The record of the run (the `META` section) holds a field this build
    /// does not know, or a known one of the wrong type or value.
    BadRecord {
        /// The file.
        path: PathBuf,
        /// The field.
        field: String,
        /// What is wrong with it.
        what: String,
    },
    /// Saving: a layer of the model has no spec (its
    /// [`Flow::to_spec`](crate::flows::Flow::to_spec) returns `None`), so it
    /// could not be rebuilt from the file.
    NotSaveable {
        /// The layer's name and its position in the model.
        layer: String,
    },
}

impl CheckpointError {
    /// The same error, naming `path` as the file (replacing an empty path).
    pub fn in_file(mut self, file: &std::path::Path) -> Self {
        match &mut self {
            CheckpointError::Io { path, .. }
            | CheckpointError::BadMagic { path, .. }
            | CheckpointError::UnsupportedVersion { path, .. }
            | CheckpointError::Truncated { path, .. }
            | CheckpointError::ChecksumMismatch { path, .. }
            | CheckpointError::Malformed { path, .. }
            | CheckpointError::ArchitectureMismatch { path, .. }
            | CheckpointError::Layer { path, .. }
            | CheckpointError::BadRecord { path, .. } => {
                if path.as_os_str().is_empty() {
                    *path = file.to_path_buf();
                }
            }
            CheckpointError::NotSaveable { .. } => {}
        }
        self
    }
}

/// A path for a message: `<spec>` when no file is known yet.
fn shown(path: &std::path::Path) -> std::path::Display<'_> {
    if path.as_os_str().is_empty() {
        std::path::Path::new("<spec>").display()
    } else {
        path.display()
    }
}

impl fmt::Display for CheckpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckpointError::Io { path, source } => {
                write!(
                    f,
                    "{}: cannot read or write the checkpoint: {source}",
                    shown(path)
                )
            }
            CheckpointError::BadMagic { path, found } => write!(
                f,
                "{}: offset 0: not a flowzoo checkpoint: the file starts with {:02x?}, \
                 a checkpoint with the 8 bytes \"FLOWZOO\\0\"",
                shown(path),
                found
            ),
            CheckpointError::UnsupportedVersion {
                path,
                found,
                supported,
            } => write!(
                f,
                "{}: offset 8: checkpoint format version {found} is newer than this \
                 build reads (up to {supported}); update flowzoo",
                shown(path)
            ),
            CheckpointError::Truncated { path, offset, what } => write!(
                f,
                "{}: offset {offset}: the file ends while reading {what} (truncated \
                 checkpoint)",
                shown(path)
            ),
            CheckpointError::ChecksumMismatch {
                path,
                offset,
                expected,
                found,
            } => write!(
                f,
                "{}: offset {offset}: checksum mismatch: the file stores \
                 {expected:016x}, its bytes hash to {found:016x}; the checkpoint is corrupted",
                shown(path)
            ),
            CheckpointError::Malformed { path, offset, what } => {
                write!(
                    f,
                    "{}: offset {offset}: malformed checkpoint: {what}",
                    shown(path)
                )
            }
            CheckpointError::ArchitectureMismatch { path, what } => write!(
                f,
                "{}: the architecture and the stored tensors disagree: {what}",
                shown(path)
            ),
            CheckpointError::Layer { path, source } => write!(f, "{}: {source}", shown(path)),
            CheckpointError::BadRecord { path, field, what } => write!(
                f,
                "{}: the run record, field `{field}`: {what}",
                shown(path)
            ),
            CheckpointError::NotSaveable { layer } => write!(
                f,
                "cannot save the model: layer {layer} has no spec (Flow::to_spec returns \
                 None), so a checkpoint could not rebuild it"
            ),
        }
    }
}

impl std::error::Error for CheckpointError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CheckpointError::Io { source, .. } => Some(source),
            CheckpointError::Layer { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<FlowError> for CheckpointError {
    /// The layer's error, in no file yet ([`CheckpointError::in_file`] names it).
    fn from(source: FlowError) -> Self {
        CheckpointError::Layer {
            path: PathBuf::new(),
            source,
        }
    }
}
