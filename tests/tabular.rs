//! The CSV loader: a faithful-style table reads right, and every bad field is
//! reported with the right variant, line and column (both 1-based, header =
//! line 1).

use std::path::PathBuf;

use flowzoo::data::tabular::{read_csv, standardize};
use flowzoo::error::DataError;

/// Writes `text` to a file unique to this test under the system temp dir.
fn csv_file(test: &str, text: &str) -> PathBuf {
    let path =
        std::env::temp_dir().join(format!("flowzoo-tabular-{}-{test}.csv", std::process::id()));
    std::fs::write(&path, text).unwrap();
    path
}

/// The first rows of Old Faithful as R writes it: quoted header, an index column.
const FAITHFUL: &str =
    "\"rownames\",\"eruptions\",\"waiting\"\n1,3.6,79\n2,1.8,54\n\n3,3.333,74\r\n4,2.283,62\n";

#[test]
fn a_faithful_style_file_reads_with_the_index_column_dropped() {
    let path = csv_file("faithful", FAITHFUL);
    let table = read_csv(&path, &["rownames"]).unwrap();
    assert_eq!(table.columns, vec!["eruptions", "waiting"]);
    assert_eq!(table.rows, 4);
    assert_eq!(
        table.data,
        vec![3.6, 79.0, 1.8, 54.0, 3.333, 74.0, 2.283, 62.0]
    );
    assert_eq!(table.row(2), &[3.333, 74.0]);
}

#[test]
fn dropped_columns_may_hold_text() {
    let path = csv_file("text-column", "id,x\nalpha,1\nbeta,2\n");
    assert_eq!(read_csv(&path, &["id"]).unwrap().data, vec![1.0, 2.0]);
}

#[test]
fn a_short_row_is_a_parse_error_at_its_first_missing_column() {
    // line 1 header, line 2 fine, line 3 blank (skipped but counted), line 4 short
    let path = csv_file("short-row", "a,b,c\n1,2,3\n\n4,5\n");
    let error = read_csv(&path, &[]).unwrap_err();
    assert!(
        matches!(
            error,
            DataError::Parse {
                row: 4,
                column: 3,
                ..
            }
        ),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("line 4, column 3") && message.contains("2 fields"),
        "{message}"
    );
}

#[test]
fn a_long_row_is_a_parse_error_at_its_first_extra_column() {
    let path = csv_file("long-row", "a,b\n1,2\n3,4,5\n");
    let error = read_csv(&path, &[]).unwrap_err();
    assert!(
        matches!(
            error,
            DataError::Parse {
                row: 3,
                column: 3,
                ..
            }
        ),
        "{error:?}"
    );
}

#[test]
fn a_non_number_is_a_parse_error_quoting_the_text() {
    let path = csv_file("non-number", "eruptions,waiting\n3.6,79\n1.8,fifty\n");
    let error = read_csv(&path, &[]).unwrap_err();
    assert!(
        matches!(
            error,
            DataError::Parse {
                row: 3,
                column: 2,
                ..
            }
        ),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("\"fifty\"") && message.contains("waiting"),
        "{message}"
    );
    assert!(
        message.contains(path.file_name().unwrap().to_str().unwrap()),
        "{message}"
    );
}

#[test]
fn nan_is_non_finite_at_its_row_and_column() {
    let path = csv_file("nan", "a,b\n1,2\nNaN,3\n");
    let error = read_csv(&path, &[]).unwrap_err();
    assert!(
        matches!(
            error,
            DataError::NonFinite {
                row: 3,
                column: 1,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("line 3, column 1"), "{error}");
}

#[test]
fn infinities_are_non_finite_at_their_row_and_column() {
    for (test, field) in [("inf", "inf"), ("minus-inf", "-inf"), ("overflow", "1e400")] {
        let path = csv_file(test, &format!("a,b\n1,2\n3,4\n5,{field}\n"));
        let error = read_csv(&path, &[]).unwrap_err();
        assert!(
            matches!(
                error,
                DataError::NonFinite {
                    row: 4,
                    column: 2,
                    ..
                }
            ),
            "{field}: {error:?}"
        );
    }
}

#[test]
fn a_missing_file_or_drop_column_is_reported() {
    let missing = std::env::temp_dir().join("flowzoo-tabular-absent.csv");
    assert!(matches!(read_csv(&missing, &[]), Err(DataError::Io { .. })));
    let path = csv_file("drop", "a,b\n1,2\n");
    let error = read_csv(&path, &["target"]).unwrap_err();
    assert!(matches!(error, DataError::Mismatch { .. }), "{error:?}");
    assert!(error.to_string().contains("\"target\""), "{error}");
}

#[test]
fn an_empty_file_has_no_header() {
    let path = csv_file("empty", "\n\n");
    let error = read_csv(&path, &[]).unwrap_err();
    assert!(
        matches!(
            error,
            DataError::Parse {
                row: 1,
                column: 1,
                ..
            }
        ),
        "{error:?}"
    );
}

#[test]
fn standardized_columns_have_mean_zero_and_unit_deviation() {
    let path = csv_file("standardize", FAITHFUL);
    let mut table = read_csv(&path, &["rownames"]).unwrap();
    let original = table.data.clone();
    let (means, stds) = standardize(&mut table);
    for column in 0..table.dim() {
        let values: Vec<f64> = table.data.iter().skip(column).step_by(2).copied().collect();
        let mean = values.iter().sum::<f64>() / 4.0;
        let variance = values.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 4.0;
        assert!(
            mean.abs() < 1e-12 && (variance - 1.0).abs() < 1e-12,
            "column {column}"
        );
    }
    // x = z·σ + μ recovers the data
    for (i, (z, x)) in table.data.iter().zip(&original).enumerate() {
        assert!((z * stds[i % 2] + means[i % 2] - x).abs() < 1e-12);
    }
}
