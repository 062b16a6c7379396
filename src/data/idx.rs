//! IDX files: the big-endian array format of MNIST, used here for the digits.
//!
//! ```text
//! offset  bytes   meaning
//! 0       2       zero
//! 2       1       element type: 0x08 = unsigned byte (the only type read here)
//! 3       1       number of dimensions d, 1 to 8
//! 4       4·d     each dimension as a big-endian u32, outermost first
//! 4 + 4·d Π dims  the payload, row-major
//! ```
//!
//! Images are `[n, rows, cols]` (magic `00 00 08 03`), labels `[n]`
//! (`00 00 08 01`). Every malformed file maps to one [`DataError`] variant that
//! names the file and, where it helps, the byte offset.
//!
//! # Source
//! Y. LeCun, C. Cortes, C. Burges, "The MNIST database of handwritten digits"
//! (the file format section of its web page).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use byteorder::{BigEndian, ByteOrder};

use crate::error::DataError;

/// Largest number of dimensions an IDX file may announce.
pub const MAX_DIMS: usize = 8;

/// The element-type byte (byte 2) for unsigned bytes.
const TYPE_U8: u8 = 0x08;

/// The first two bytes of every gzip stream.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// An IDX array of unsigned bytes: its dimensions and its payload.
///
/// # Shapes
/// `data` is row-major with shape `dims`, so `data.len() == dims.iter().product()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    /// The dimensions, outermost first, e.g. `[3823, 8, 8]`.
    pub dims: Vec<usize>,
    /// The payload, row-major.
    pub data: Vec<u8>,
}

impl IdxArray {
    /// Number of items along the outermost dimension (`dims[0]`).
    pub fn num_items(&self) -> usize {
        self.dims.first().copied().unwrap_or(0)
    }

    /// Number of bytes in one item: the product of `dims[1..]` (1 for `[n]`).
    pub fn item_len(&self) -> usize {
        self.dims.iter().skip(1).product()
    }
}

/// Parses an IDX file of unsigned bytes held in memory.
///
/// `path` is used only in error messages; pass the file's name, or `<memory>`.
///
/// # Shapes
/// Returns the array with the dims of the header and `Π dims` payload bytes.
///
/// # Errors
/// - [`DataError::Gzipped`] if the bytes start with the gzip magic `1f 8b`.
/// - [`DataError::Truncated`] if the bytes end inside the header or the
///   payload; `offset` is the length of the bytes, `expected` the length the
///   header implies (4 while the dimension count is still unknown).
/// - [`DataError::BadMagic`] if bytes 0–1 are not zero, byte 2 is not `0x08`,
///   or byte 3 (the number of dimensions) is 0 or more than [`MAX_DIMS`].
/// - [`DataError::TrailingBytes`] if bytes follow the announced payload.
///
/// # Examples
/// ```
/// use flowzoo::data::idx::parse_idx;
/// // a [2, 3] array: magic 00 00 08 02, dims 2 and 3, six payload bytes
/// let bytes = [0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6];
/// let array = parse_idx(&bytes, "<memory>".as_ref()).unwrap();
/// assert_eq!(array.dims, vec![2, 3]);
/// assert_eq!(array.data, vec![1, 2, 3, 4, 5, 6]);
/// ```
pub fn parse_idx(bytes: &[u8], path: &Path) -> Result<IdxArray, DataError> {
    let path_buf = || path.to_path_buf();
    let length = bytes.len() as u64;
    if bytes.starts_with(&GZIP_MAGIC) {
        return Err(DataError::Gzipped { path: path_buf() });
    }
    let Some(&[b0, b1, element_type, ndims]) = bytes.get(..4) else {
        return Err(DataError::Truncated {
            path: path_buf(),
            offset: length,
            expected: 4,
        });
    };
    let found = [b0, b1, element_type, ndims];
    let ndims = usize::from(ndims);
    if b0 != 0 || b1 != 0 || element_type != TYPE_U8 || ndims == 0 || ndims > MAX_DIMS {
        return Err(DataError::BadMagic {
            path: path_buf(),
            found,
        });
    }
    let header_len = 4 + 4 * ndims;
    let Some(dim_bytes) = bytes.get(4..header_len) else {
        return Err(DataError::Truncated {
            path: path_buf(),
            offset: length,
            expected: header_len as u64,
        });
    };
    let dims: Vec<u32> = dim_bytes.chunks_exact(4).map(BigEndian::read_u32).collect();
    // Why u64 and saturating: eight u32 dims can overflow any integer, but a
    // saturated size is still larger than the file, so it reads as truncation.
    let payload_len = dims
        .iter()
        .fold(1u64, |acc, &dim| acc.saturating_mul(u64::from(dim)));
    let expected = payload_len.saturating_add(header_len as u64);
    if length < expected {
        return Err(DataError::Truncated {
            path: path_buf(),
            offset: length,
            expected,
        });
    }
    if length > expected {
        return Err(DataError::TrailingBytes {
            path: path_buf(),
            expected,
            found: length,
        });
    }
    Ok(IdxArray {
        // Each dim is at most the file length, a usize, so this cannot fail.
        dims: dims.iter().map(|&dim| dim as usize).collect(),
        data: bytes[header_len..].to_vec(),
    })
}

/// Parses an IDX array held in memory and checks it has `ndims` dimensions.
///
/// # Errors
/// Those of [`parse_idx`], and [`DataError::BadDims`] if the array has another
/// number of dimensions.
pub fn parse_idx_expect(bytes: &[u8], path: &Path, ndims: usize) -> Result<IdxArray, DataError> {
    check_dims(parse_idx(bytes, path)?, path, ndims)
}

/// Reads an IDX file of unsigned bytes (not gzip-compressed).
///
/// # Shapes
/// Returns the array with the dims of the header and `Π dims` payload bytes.
///
/// # Errors
/// [`DataError::Io`] (with the path) if the file cannot be read, and every
/// error of [`parse_idx`]; a gzip file gives [`DataError::Gzipped`], whose
/// message says to decompress it first.
pub fn read_idx(path: impl AsRef<Path>) -> Result<IdxArray, DataError> {
    let path = path.as_ref();
    let bytes = fs::read(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_idx(&bytes, path)
}

/// Reads an IDX file and checks it has `ndims` dimensions (1 for labels, 3 for
/// images).
///
/// # Errors
/// Those of [`read_idx`], and [`DataError::BadDims`] if the array has another
/// number of dimensions.
pub fn read_idx_expect(path: impl AsRef<Path>, ndims: usize) -> Result<IdxArray, DataError> {
    let path = path.as_ref();
    check_dims(read_idx(path)?, path, ndims)
}

fn check_dims(array: IdxArray, path: &Path, ndims: usize) -> Result<IdxArray, DataError> {
    if array.dims.len() == ndims {
        Ok(array)
    } else {
        Err(DataError::BadDims {
            path: path.to_path_buf(),
            expected: ndims,
            found: array.dims.len(),
        })
    }
}

/// Encodes an array of unsigned bytes as IDX: the header, then `data`.
///
/// # Errors
/// [`DataError::Mismatch`] if `dims` has 0 or more than [`MAX_DIMS`] entries,
/// an entry exceeds `u32::MAX`, or `data.len()` is not the product of `dims`.
pub fn encode_idx(dims: &[usize], data: &[u8]) -> Result<Vec<u8>, DataError> {
    if dims.is_empty() || dims.len() > MAX_DIMS {
        return Err(DataError::Mismatch {
            what: format!(
                "an IDX array has 1 to {MAX_DIMS} dimensions, dims {dims:?} has {}",
                dims.len()
            ),
        });
    }
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &dim| acc.checked_mul(dim));
    if expected != Some(data.len()) {
        return Err(DataError::Mismatch {
            what: format!(
                "dims {dims:?} hold {} bytes, but the data has {}",
                expected.map_or_else(|| "more than usize::MAX".to_string(), |n| n.to_string()),
                data.len()
            ),
        });
    }
    let mut bytes = Vec::with_capacity(4 + 4 * dims.len() + data.len());
    // dims.len() <= MAX_DIMS = 8 was checked above, so it fits in a byte.
    bytes.extend_from_slice(&[0, 0, TYPE_U8, dims.len() as u8]);
    for &dim in dims {
        let dim = u32::try_from(dim).map_err(|_| DataError::Mismatch {
            what: format!("IDX dimensions are u32, dims {dims:?} has {dim}"),
        })?;
        let mut word = [0u8; 4];
        BigEndian::write_u32(&mut word, dim);
        bytes.extend_from_slice(&word);
    }
    bytes.extend_from_slice(data);
    Ok(bytes)
}

/// Writes an array of unsigned bytes as an IDX file, never half: the bytes go
/// to `PATH.tmp` in the same folder, which is then renamed to `path`.
///
/// # Shapes
/// `data` is row-major with shape `dims`: `data.len() == Π dims`.
///
/// # Errors
/// Those of [`encode_idx`] for bad `dims`, and [`DataError::Io`] (naming the
/// temporary file or the target) if writing or renaming fails; the temporary
/// file is then removed.
///
/// # Examples
/// ```
/// use flowzoo::data::idx::{read_idx, write_idx};
/// let path = std::env::temp_dir().join("flowzoo-doc-example.idx");
/// write_idx(&path, &[2, 2], &[1, 2, 3, 4]).unwrap();
/// assert_eq!(read_idx(&path).unwrap().dims, vec![2, 2]);
/// std::fs::remove_file(&path).unwrap();
/// ```
pub fn write_idx(path: impl AsRef<Path>, dims: &[usize], data: &[u8]) -> Result<(), DataError> {
    let path = path.as_ref();
    let bytes = encode_idx(dims, data)?;
    let tmp = tmp_path(path);
    let io_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DataError::Io { path, source }
    };
    let written = fs::File::create(&tmp)
        .and_then(|mut file| {
            file.write_all(&bytes)?;
            file.sync_all()
        })
        .map_err(io_error(&tmp))
        .and_then(|()| fs::rename(&tmp, path).map_err(io_error(path)));
    if written.is_err() {
        // Best effort: the original error is the one worth reporting.
        let _ = fs::remove_file(&tmp);
    }
    written
}

/// `dir/name` -> `dir/name.tmp`: the temporary file beside the target, so the
/// final `rename` stays on one file system and is atomic.
fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tmp_path_appends_tmp_beside_the_target() {
        assert_eq!(
            tmp_path(Path::new("/a/b/x.idx")),
            Path::new("/a/b/x.idx.tmp")
        );
        assert_eq!(tmp_path(Path::new("x")), Path::new("x.tmp"));
    }

    #[test]
    fn encode_writes_big_endian_dims_after_the_magic() {
        let bytes = encode_idx(&[258, 1], &vec![7; 258]).unwrap();
        assert_eq!(&bytes[..12], &[0, 0, 8, 2, 0, 0, 1, 2, 0, 0, 0, 1]);
        assert_eq!(bytes.len(), 12 + 258);
    }

    #[test]
    fn encode_rejects_data_of_the_wrong_length() {
        assert!(matches!(
            encode_idx(&[2, 3], &[0; 5]),
            Err(DataError::Mismatch { .. })
        ));
        assert!(matches!(
            encode_idx(&[], &[]),
            Err(DataError::Mismatch { .. })
        ));
    }

    #[test]
    fn huge_announced_sizes_read_as_truncation_not_overflow() {
        let mut bytes = vec![0, 0, 8, 8];
        bytes.extend(std::iter::repeat_n(0xff, 32));
        let error = parse_idx(&bytes, Path::new("<memory>")).unwrap_err();
        assert!(matches!(
            error,
            DataError::Truncated {
                offset: 36,
                expected: u64::MAX,
                ..
            }
        ));
    }
}
