//! Numeric tables from CSV files, e.g. Old Faithful or Breast Cancer Wisconsin.
//!
//! The dialect is the simple one numeric tables use: a header line of column
//! names, then one row of numbers per line, fields separated by commas, blank
//! lines skipped, optional double quotes around a whole field (as R's
//! `write.csv` puts around names). There is no escaping and no comma inside a
//! field. Every bad field is reported with its line and column as the user
//! sees them in an editor: both 1-based, the header being line 1.

use std::path::Path;

use crate::error::DataError;
use crate::flows::standardize::{column_scale, column_statistics};
use crate::tensor::Element;

/// A numeric table: named columns, rows of `f64`.
///
/// # Shapes
/// `data` is `[rows, columns.len()]` row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// The values, `[rows, columns.len()]` row-major; all finite.
    pub data: Vec<f64>,
    /// Number of rows (data lines; the header and blank lines not counted).
    pub rows: usize,
    /// Column names from the header line, in order.
    pub columns: Vec<String>,
}

impl Table {
    /// Number of columns, the `dim` of the `[rows, dim]` data.
    pub fn dim(&self) -> usize {
        self.columns.len()
    }

    /// Checks that every value stays finite as a `T`, the element type a
    /// model will compute in (`flowzoo train` works in f32, which holds
    /// magnitudes up to about 3.4e38; a CSV of 1e308s reads as finite f64s
    /// and would become infinities). Values that round to zero are kept.
    ///
    /// # Errors
    /// [`DataError::OutOfRange`] for the first value that is not, naming
    /// `path`, its row (0-based) and its column's name.
    pub fn check_fits<T: Element>(&self, path: &Path) -> Result<(), DataError> {
        let dim = self.dim().max(1);
        match self.data.iter().position(|&v| !T::from_f64(v).is_finite()) {
            None => Ok(()),
            Some(at) => Err(DataError::OutOfRange {
                path: path.to_path_buf(),
                row: at / dim,
                column: self.columns.get(at % dim).cloned().unwrap_or_default(),
                value: self.data[at],
                element: T::NAME,
            }),
        }
    }

    /// Row `i`, `[dim]`.
    ///
    /// # Panics
    /// If `i >= rows`.
    pub fn row(&self, i: usize) -> &[f64] {
        let dim = self.dim();
        &self.data[i * dim..(i + 1) * dim]
    }
}

/// Reads a numeric CSV file, leaving out the columns named in `drop_columns`
/// (an index column such as `rownames`, or a label such as `target`). Dropped
/// columns are not parsed, so they may hold text.
///
/// # Shapes
/// Returns `data` `[rows, kept columns]` row-major.
///
/// # Errors
/// - [`DataError::Io`] if the file cannot be read (or is not UTF-8).
/// - [`DataError::Parse`] for a file with no header line, an empty column
///   name, a row with fewer or more fields than the header (the column is the
///   first missing or first extra field), or a field that is not a number (the
///   message quotes it and names its column).
/// - [`DataError::NonFinite`] for a field that parses as NaN or ±infinity
///   (including overflow such as `1e400`).
/// - [`DataError::Mismatch`] if a name in `drop_columns` is not in the header.
///
/// Lines and columns in errors are 1-based, the header being line 1.
pub fn read_csv(path: impl AsRef<Path>, drop_columns: &[&str]) -> Result<Table, DataError> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_csv(&text, path, drop_columns)
}

/// Parses CSV text held in memory; `path` is used only in error messages.
///
/// # Errors
/// As [`read_csv`], without [`DataError::Io`].
///
/// # Examples
/// ```
/// use flowzoo::data::tabular::parse_csv;
/// let text = "rownames,eruptions,waiting\n1,3.6,79\n2,1.8,54\n";
/// let table = parse_csv(text, "faithful.csv".as_ref(), &["rownames"]).unwrap();
/// assert_eq!(table.columns, vec!["eruptions", "waiting"]);
/// assert_eq!((table.rows, table.data), (2, vec![3.6, 79.0, 1.8, 54.0]));
/// ```
pub fn parse_csv(text: &str, path: &Path, drop_columns: &[&str]) -> Result<Table, DataError> {
    let parse_error = |row: usize, column: usize, message: String| DataError::Parse {
        path: path.to_path_buf(),
        row,
        column,
        message,
    };
    // (line number, line), line numbers 1-based as an editor shows them.
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(index, line)| (index + 1, line))
        .filter(|(_, line)| !line.trim().is_empty());
    let Some((header_row, header)) = lines.next() else {
        return Err(parse_error(1, 1, "the file has no header line".to_string()));
    };
    let names: Vec<&str> = header.split(',').map(unquote).collect();
    if let Some(column) = names.iter().position(|name| name.is_empty()) {
        let message = "empty column name in the header".to_string();
        return Err(parse_error(header_row, column + 1, message));
    }
    if let Some(missing) = drop_columns.iter().find(|drop| !names.contains(drop)) {
        return Err(DataError::Mismatch {
            what: format!(
                "{}: no column \"{missing}\" to drop; the columns are {}",
                path.display(),
                names.join(", ")
            ),
        });
    }
    let keep: Vec<bool> = names
        .iter()
        .map(|name| !drop_columns.contains(name))
        .collect();
    let columns: Vec<String> = names
        .iter()
        .zip(&keep)
        .filter(|(_, &kept)| kept)
        .map(|(name, _)| name.to_string())
        .collect();

    let mut data = Vec::new();
    let mut rows = 0;
    for (row, line) in lines {
        let mut fields = 0;
        for (column, field) in line.split(',').enumerate() {
            fields += 1;
            if column >= names.len() {
                let message = format!(
                    "{} fields, but the header has {} columns",
                    line.split(',').count(),
                    names.len()
                );
                return Err(parse_error(row, column + 1, message));
            }
            if !keep[column] {
                continue;
            }
            let field = unquote(field);
            let value: f64 = field.parse().map_err(|_| {
                let message = format!("column \"{}\": \"{field}\" is not a number", names[column]);
                parse_error(row, column + 1, message)
            })?;
            if !value.is_finite() {
                return Err(DataError::NonFinite {
                    path: path.to_path_buf(),
                    row,
                    column: column + 1,
                });
            }
            data.push(value);
        }
        if fields < names.len() {
            let message = format!(
                "{fields} fields, but the header has {} columns",
                names.len()
            );
            return Err(parse_error(row, fields + 1, message));
        }
        rows += 1;
    }
    Ok(Table {
        data,
        rows,
        columns,
    })
}

/// A field without surrounding whitespace and without one pair of enclosing
/// double quotes.
fn unquote(field: &str) -> &str {
    let field = field.trim();
    field
        .strip_prefix('"')
        .and_then(|inner| inner.strip_suffix('"'))
        .unwrap_or(field)
}

/// Standardizes each column in place to mean 0 and standard deviation 1:
/// xᵢⱼ ← (xᵢⱼ − μⱼ) / σⱼ, with μⱼ the column mean and σⱼ the population
/// standard deviation √(Σᵢ (xᵢⱼ − μⱼ)² / rows).
///
/// A constant column (σⱼ = 0) would divide by zero; its σⱼ is taken as 1, so
/// it only loses its mean. With no rows, means are 0 and stds 1.
///
/// Returns `(means, stds)`, each `[dim]`, so that new data (a test split)
/// can be mapped the same way and samples mapped back: x = z·σ + μ.
///
/// # Examples
/// ```
/// use flowzoo::data::tabular::{parse_csv, standardize};
/// let mut table = parse_csv("a,b\n1,5\n3,5\n", "<memory>".as_ref(), &[]).unwrap();
/// let (means, stds) = standardize(&mut table);
/// assert_eq!((means, stds), (vec![2.0, 5.0], vec![1.0, 1.0]));
/// assert_eq!(table.data, vec![-1.0, 0.0, 1.0, 0.0]);
/// ```
pub fn standardize(table: &mut Table) -> (Vec<f64>, Vec<f64>) {
    let dim = table.dim();
    if dim == 0 {
        return (Vec::new(), Vec::new());
    }
    let (means, stds) = column_statistics(&table.data, dim);
    // (x − μ)/σ = (x/a − μ/a)/(σ/a) with a a power of two per column: x − μ
    // overflows for columns near f64's limit, the scaled difference cannot,
    // and elsewhere the scaling changes no bit.
    let scales: Vec<f64> = (0..dim)
        .map(|j| column_scale(table.data.iter().skip(j).step_by(dim).copied()))
        .collect();
    for row in table.data.chunks_exact_mut(dim) {
        for (((x, mean), std), a) in row.iter_mut().zip(&means).zip(&stds).zip(&scales) {
            *x = (*x / a - mean / a) / (std / a);
        }
    }
    (means, stds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unquote_strips_spaces_and_one_pair_of_quotes() {
        assert_eq!(unquote(" \"rownames\" "), "rownames");
        assert_eq!(unquote("3.5"), "3.5");
        assert_eq!(unquote("\""), "\"");
    }
}
