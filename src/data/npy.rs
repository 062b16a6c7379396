//! A reader for NumPy's `.npy` files holding a numeric matrix, so users can
//! train on vectors saved with `numpy.save`.
//!
//! The format (NumPy Enhancement Proposal 1, "A simple file format for NumPy
//! arrays"): the magic `\x93NUMPY`, a major and a minor version byte, the
//! header length (u16 little-endian in version 1, u32 in versions 2 and 3),
//! an ASCII header holding a Python dict literal such as
//! `{'descr': '<f8', 'fortran_order': False, 'shape': (100, 3), }`, padded
//! with spaces to a multiple of 64 bytes, then the raw data.
//!
//! Read here: little-endian (or byte-sized) `f8`, `f4`, `i8`, `i4`, `i2`,
//! `i1`, `u1`; one or two dimensions (a 1-D array is one column); C or
//! Fortran order. Every value becomes an `f64` exactly: floats must be
//! finite, and integers are converted as they are (an `i8` value beyond
//! ±2⁵³ that `f64` cannot hold exactly, such as 2⁵³ + 1, is refused rather
//! than rounded). Integer data are trained on as the numbers they are: a
//! flow then fits a continuous density to values on a grid, so add noise
//! (dequantise) first if they are counts or codes.

use crate::data::tabular::Table;
use crate::error::DataError;
use byteorder::{ByteOrder, LittleEndian};
use std::path::Path;

/// The first six bytes of every `.npy` file.
pub const NPY_MAGIC: [u8; 6] = *b"\x93NUMPY";

/// Reads the `.npy` file at `path` as a table with columns `x0, x1, …`.
///
/// # Shapes
/// A file of shape `(n, d)` gives `[n, d]`; `(n,)` gives `[n, 1]`.
///
/// # Errors
/// [`DataError::Io`] if the file cannot be read; otherwise as [`parse_npy`].
pub fn read_npy(path: impl AsRef<Path>) -> Result<Table, DataError> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_npy(&bytes, path)
}

/// Parses `.npy` bytes held in memory; `path` names them in errors.
///
/// # Errors
/// [`DataError::BadNpy`] naming the byte offset for a wrong magic number, an
/// unknown version, a header that is not the dict NumPy writes, a dtype or
/// rank this reader does not take, a shape with no values (a zero in it), a
/// file shorter or longer than the header announces, or a value that is
/// NaN, infinite, or an `i8` integer `f64` cannot hold exactly (naming its
/// row and column, 0-based).
///
/// # Examples
/// ```
/// use flowzoo::data::npy::parse_npy;
/// let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
/// let header = "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 1), }";
/// let padded = format!("{header:<117}\n"); // 10 + 118 = 128 bytes
/// bytes.extend_from_slice(&(padded.len() as u16).to_le_bytes());
/// bytes.extend_from_slice(padded.as_bytes());
/// for v in [1.5f64, -2.0] {
///     bytes.extend_from_slice(&v.to_le_bytes());
/// }
/// let table = parse_npy(&bytes, "x.npy".as_ref()).unwrap();
/// assert_eq!((table.rows, table.dim(), table.data), (2, 1, vec![1.5, -2.0]));
/// ```
pub fn parse_npy(bytes: &[u8], path: &Path) -> Result<Table, DataError> {
    let bad = |offset: usize, what: String| DataError::BadNpy {
        path: path.to_path_buf(),
        offset: offset as u64,
        what,
    };
    if bytes.len() < 8 || bytes[..6] != NPY_MAGIC {
        let found = &bytes[..bytes.len().min(6)];
        return Err(bad(
            0,
            format!(
                "not a .npy file: it starts with {found:02x?}, not 93 4e 55 4d 50 59 (\\x93NUMPY)"
            ),
        ));
    }
    let (major, minor) = (bytes[6], bytes[7]);
    let (header_start, header_len) = match major {
        1 if bytes.len() >= 10 => (10usize, LittleEndian::read_u16(&bytes[8..10]) as usize),
        2 | 3 if bytes.len() >= 12 => (12, LittleEndian::read_u32(&bytes[8..12]) as usize),
        1..=3 => return Err(bad(8, "the file ends inside the header length".into())),
        _ => {
            return Err(bad(
                6,
                format!("format version {major}.{minor} is not 1.0, 2.0 or 3.0"),
            ))
        }
    };
    let data_start = header_start
        .checked_add(header_len)
        .filter(|&end| end <= bytes.len())
        .ok_or_else(|| {
            bad(
                bytes.len(),
                format!("the file ends inside the {header_len}-byte header"),
            )
        })?;
    let header = std::str::from_utf8(&bytes[header_start..data_start])
        .map_err(|_| bad(header_start, "the header is not text".into()))?;
    let header = Header::parse(header).map_err(|what| bad(header_start, what))?;

    let (rows, columns) = match header.shape[..] {
        [n] => (n, 1),
        [n, d] => (n, d),
        _ => {
            return Err(bad(
                header_start,
                format!(
                    "shape {:?}: only 1-D or 2-D arrays are tables",
                    header.shape
                ),
            ))
        }
    };
    if rows == 0 || columns == 0 {
        // Nothing to read; and the column names of a (0, 10¹²) array alone
        // would take terabytes.
        return Err(bad(
            header_start,
            format!(
                "shape {:?} holds no values: a table needs at least one row and one column",
                header.shape
            ),
        ));
    }
    let size = header.dtype.size();
    let expected = rows
        .checked_mul(columns)
        .and_then(|n| n.checked_mul(size))
        .and_then(|n| n.checked_add(data_start))
        .ok_or_else(|| bad(header_start, format!("shape {:?} overflows", header.shape)))?;
    if bytes.len() < expected {
        return Err(bad(
            bytes.len(),
            format!(
                "the file ends after {} bytes, but its header announces {expected}",
                bytes.len()
            ),
        ));
    }
    if bytes.len() > expected {
        return Err(bad(
            expected,
            format!(
                "{} bytes after the data the header announces",
                bytes.len() - expected
            ),
        ));
    }
    let mut data = vec![0.0; rows * columns];
    for (k, b) in bytes[data_start..].chunks_exact(size).enumerate() {
        // Element k sits at (row, column) in C order, (column, row) in Fortran order.
        let (row, column) = if header.fortran_order {
            (k % rows, k / rows)
        } else {
            (k / columns, k % columns)
        };
        let v = header.dtype.read(b).map_err(|what| {
            bad(
                data_start + k * size,
                format!("row {row}, column {column} (0-based) is {what}"),
            )
        })?;
        data[row * columns + column] = v;
    }
    Ok(Table {
        data,
        rows,
        columns: (0..columns).map(|j| format!("x{j}")).collect(),
    })
}

/// The element types read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dtype {
    F8,
    F4,
    I8,
    I4,
    I2,
    I1,
    U1,
}

impl Dtype {
    fn parse(descr: &str) -> Option<Dtype> {
        Some(match descr {
            "<f8" => Dtype::F8,
            "<f4" => Dtype::F4,
            "<i8" => Dtype::I8,
            "<i4" => Dtype::I4,
            "<i2" => Dtype::I2,
            "|i1" | "<i1" => Dtype::I1,
            "|u1" | "<u1" => Dtype::U1,
            _ => return None,
        })
    }

    fn size(self) -> usize {
        match self {
            Dtype::F8 | Dtype::I8 => 8,
            Dtype::F4 | Dtype::I4 => 4,
            Dtype::I2 => 2,
            Dtype::I1 | Dtype::U1 => 1,
        }
    }

    /// The value of one element, exactly as an f64, or what is wrong with
    /// it (a NaN or infinity; an `i8` that f64 would round).
    fn read(self, b: &[u8]) -> Result<f64, String> {
        let v = match self {
            Dtype::F8 => LittleEndian::read_f64(b),
            Dtype::F4 => f64::from(LittleEndian::read_f32(b)),
            Dtype::I8 => {
                let i = LittleEndian::read_i64(b);
                let v = i as f64;
                // Through i128: i64::MAX rounds to 2⁶³, which `as i64` would saturate back.
                if v as i128 != i128::from(i) {
                    return Err(format!(
                        "{i}, which f64 cannot hold exactly (it would round to {v:e}; \
                         integers are exact up to ±2⁵³)"
                    ));
                }
                v
            }
            Dtype::I4 => f64::from(LittleEndian::read_i32(b)),
            Dtype::I2 => f64::from(LittleEndian::read_i16(b)),
            Dtype::I1 => f64::from(b[0] as i8),
            Dtype::U1 => f64::from(b[0]),
        };
        if v.is_finite() {
            Ok(v)
        } else {
            Err(format!("{v}: values must be finite"))
        }
    }
}

/// The three keys of the header dict.
struct Header {
    dtype: Dtype,
    fortran_order: bool,
    shape: Vec<usize>,
}

impl Header {
    /// Parses `{'descr': '<f8', 'fortran_order': False, 'shape': (3, 2), }`
    /// (keys in any order, any spacing), or says what is wrong.
    fn parse(text: &str) -> Result<Header, String> {
        let body = text
            .trim()
            .strip_prefix('{')
            .and_then(|s| s.strip_suffix('}'))
            .ok_or_else(|| format!("the header {text:?} is not a dict"))?;
        let value_of = |key: &str| -> Result<&str, String> {
            let quoted = format!("'{key}'");
            let at = body
                .find(&quoted)
                .ok_or_else(|| format!("the header lacks '{key}'"))?;
            let rest = body[at + quoted.len()..].trim_start();
            rest.strip_prefix(':')
                .map(str::trim_start)
                .ok_or_else(|| format!("no ':' after '{key}'"))
        };
        let descr = value_of("descr")?;
        let descr = descr
            .strip_prefix('\'')
            .and_then(|s| s.split('\'').next())
            .ok_or_else(|| "'descr' is not a quoted string".to_string())?;
        let dtype = Dtype::parse(descr).ok_or_else(|| {
            format!("dtype '{descr}' is not read (little-endian f8, f4, i8, i4, i2, i1 or u1 only)")
        })?;
        let fortran = value_of("fortran_order")?;
        let fortran_order = if fortran.starts_with("True") {
            true
        } else if fortran.starts_with("False") {
            false
        } else {
            return Err("'fortran_order' is not True or False".into());
        };
        let shape = value_of("shape")?;
        let inside = shape
            .strip_prefix('(')
            .and_then(|s| s.split(')').next())
            .ok_or_else(|| "'shape' is not a tuple".to_string())?;
        let shape = inside
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.trim_end_matches('L')
                    .parse::<usize>()
                    .map_err(|_| format!("shape entry {s:?} is not a size"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Header {
            dtype,
            fortran_order,
            shape,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_parses_in_any_key_order_and_rejects_big_endian() {
        let h = Header::parse("{'shape': (3,), 'fortran_order': True, 'descr': '|u1', }").unwrap();
        assert_eq!(
            (h.dtype, h.fortran_order, h.shape),
            (Dtype::U1, true, vec![3])
        );
        let err = Header::parse("{'descr': '>f8', 'fortran_order': False, 'shape': (3,), }")
            .err()
            .unwrap();
        assert!(err.contains("'>f8'"), "{err}");
    }
}
