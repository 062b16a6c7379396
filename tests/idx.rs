//! The IDX reader and writer: round trips, and every malformed file mapped to
//! its `DataError` variant with a message that names the file.

use std::path::{Path, PathBuf};

use flowzoo::data::idx::{parse_idx, read_idx, read_idx_expect, write_idx, IdxArray};
use flowzoo::error::{DataError, Error};

/// A fresh, empty folder under the system temp dir, unique to this test.
fn scratch_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("flowzoo-idx-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes raw bytes to `dir/name` and returns the path.
fn write_raw(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// A valid `[2, 3]` IDX file: 12 header bytes, then 6 payload bytes.
fn two_by_three() -> Vec<u8> {
    vec![0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6]
}

#[test]
fn written_arrays_read_back_unchanged() {
    let dir = scratch_dir("round-trip");
    let shapes: [&[usize]; 5] = [
        &[5],
        &[3, 8, 8],
        &[2, 1, 3, 1],
        &[0, 4],
        &[1, 1, 1, 1, 1, 1, 1, 2],
    ];
    for dims in shapes {
        let len: usize = dims.iter().product();
        let data: Vec<u8> = (0..len).map(|i| (i * 37 % 256) as u8).collect();
        let path = dir.join("array.idx");
        write_idx(&path, dims, &data).unwrap();
        let array = read_idx(&path).unwrap();
        assert_eq!(
            array,
            IdxArray {
                dims: dims.to_vec(),
                data
            },
            "dims {dims:?}"
        );
    }
    // nothing half-written is left beside the file
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec!["array.idx"]);
}

#[test]
fn written_files_have_the_mnist_header() {
    let dir = scratch_dir("header");
    let path = dir.join("labels");
    write_idx(&path, &[3], &[7, 8, 9]).unwrap();
    // magic 00 00 08 01, then n = 3 as big-endian u32, then the labels
    assert_eq!(
        std::fs::read(&path).unwrap(),
        vec![0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9]
    );
}

#[test]
fn writing_data_of_the_wrong_length_fails_and_writes_nothing() {
    let dir = scratch_dir("bad-write");
    let path = dir.join("array.idx");
    let error = write_idx(&path, &[2, 3], &[0; 5]).unwrap_err();
    assert!(matches!(error, DataError::Mismatch { .. }), "{error:?}");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
}

#[test]
fn nonzero_leading_bytes_are_bad_magic() {
    let mut bytes = two_by_three();
    bytes[1] = 1;
    let error = parse_idx(&bytes, Path::new("odd.idx")).unwrap_err();
    assert!(
        matches!(
            error,
            DataError::BadMagic {
                found: [0, 1, 8, 2],
                ..
            }
        ),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.starts_with("odd.idx: offset 0:") && message.contains("bytes 0-1"),
        "{message}"
    );
}

#[test]
fn a_type_byte_other_than_unsigned_byte_is_bad_magic() {
    let mut bytes = two_by_three();
    bytes[2] = 0x0d; // float
    let error = parse_idx(&bytes, Path::new("floats.idx")).unwrap_err();
    assert!(
        matches!(
            error,
            DataError::BadMagic {
                found: [0, 0, 0x0d, 2],
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("element type 0x0d"), "{error}");
}

#[test]
fn zero_or_too_many_dimensions_are_bad_magic() {
    for ndims in [0u8, 9] {
        let mut bytes = vec![0, 0, 8, ndims];
        bytes.extend(vec![0; 4 * usize::from(ndims)]);
        let error = parse_idx(&bytes, Path::new("dims.idx")).unwrap_err();
        assert!(
            matches!(error, DataError::BadMagic { .. }),
            "{ndims} dims: {error:?}"
        );
        assert!(
            error.to_string().contains(&format!("{ndims} dimensions")),
            "{error}"
        );
    }
}

#[test]
fn a_header_cut_short_is_truncated_at_its_end() {
    // too short for the magic number
    let error = parse_idx(&[0, 0, 8], Path::new("tiny.idx")).unwrap_err();
    assert!(
        matches!(
            error,
            DataError::Truncated {
                offset: 3,
                expected: 4,
                ..
            }
        ),
        "{error:?}"
    );
    // magic says 3 dims (16 header bytes) but the file stops after 10
    let bytes = [0, 0, 8, 3, 0, 0, 0, 2, 0, 0];
    let error = parse_idx(&bytes, Path::new("short.idx")).unwrap_err();
    assert!(
        matches!(
            error,
            DataError::Truncated {
                offset: 10,
                expected: 16,
                ..
            }
        ),
        "{error:?}"
    );
}

#[test]
fn a_payload_cut_short_is_truncated_at_the_file_end() {
    let dir = scratch_dir("truncated");
    // header says [1797, 8, 8]: 16 + 1797·64 = 115024 bytes; keep 1500
    let mut bytes = vec![0, 0, 8, 3, 0, 0, 0x07, 0x05, 0, 0, 0, 8, 0, 0, 0, 8];
    bytes.resize(1500, 0);
    let path = write_raw(&dir, "digits.idx", &bytes);
    let error = read_idx(&path).unwrap_err();
    match &error {
        DataError::Truncated {
            path: p,
            offset,
            expected,
        } => {
            assert_eq!((p, *offset, *expected), (&path, 1500, 115_024));
        }
        other => panic!("expected Truncated, got {other:?}"),
    }
    let message = error.to_string();
    assert!(message.contains("digits.idx: offset 1500:"), "{message}");
    assert!(message.contains("115024"), "{message}");
}

#[test]
fn bytes_after_the_payload_are_trailing_bytes() {
    let mut bytes = two_by_three();
    bytes.extend([0, 0]);
    let error = parse_idx(&bytes, Path::new("long.idx")).unwrap_err();
    assert!(
        matches!(
            error,
            DataError::TrailingBytes {
                expected: 18,
                found: 20,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .starts_with("long.idx: offset 18: 2 unexpected bytes"),
        "{error}"
    );
}

#[test]
fn gzip_files_are_refused_with_advice_to_decompress() {
    let dir = scratch_dir("gzip");
    let path = write_raw(
        &dir,
        "train-images-idx3-ubyte.gz",
        &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0],
    );
    let error = read_idx(&path).unwrap_err();
    assert!(
        matches!(&error, DataError::Gzipped { path: p } if *p == path),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("train-images-idx3-ubyte.gz") && message.contains("decompress"),
        "{message}"
    );
}

#[test]
fn a_missing_file_is_an_io_error_naming_the_path() {
    let path = scratch_dir("missing").join("absent.idx");
    let error = read_idx(&path).unwrap_err();
    match &error {
        DataError::Io { path: p, source } => {
            assert_eq!(p, &path);
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("expected Io, got {other:?}"),
    }
    assert!(error.to_string().contains("absent.idx"), "{error}");
    // the crate-level error keeps the message and exposes the io::Error as source
    let error = Error::from(error);
    assert!(error.to_string().contains("absent.idx"));
    assert!(std::error::Error::source(&error).is_some());
}

#[test]
fn asking_for_another_number_of_dimensions_is_bad_dims() {
    let dir = scratch_dir("dims");
    let path = write_raw(&dir, "labels.idx", &two_by_three());
    let error = read_idx_expect(&path, 1).unwrap_err();
    assert!(
        matches!(
            error,
            DataError::BadDims {
                expected: 1,
                found: 2,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("labels.idx"), "{error}");
    assert_eq!(read_idx_expect(&path, 2).unwrap().dims, vec![2, 3]);
}

#[test]
fn item_helpers_describe_the_outer_dimension() {
    let array = parse_idx(&two_by_three(), Path::new("<memory>")).unwrap();
    assert_eq!((array.num_items(), array.item_len()), (2, 3));
}
