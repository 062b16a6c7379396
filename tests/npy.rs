//! The `.npy` reader on files written byte by byte as NumPy writes them,
//! every way one can be wrong, and the `Standardize` layer that reports
//! tabular densities in the data's original units.

mod common;

use common::{f8, npy};

use flowzoo::data::npy::{parse_npy, read_npy};
use flowzoo::data::read_table;
use flowzoo::data::tabular::parse_csv;
use flowzoo::error::DataError;
use flowzoo::flows::check::randomize_params;
use flowzoo::flows::standardize::Standardize;
use flowzoo::flows::{AffineCoupling, Flow, FlowModel, Mask, Sequential};
use flowzoo::tensor::Tensor;
use rand::SeedableRng;
use std::path::Path;

fn parse(bytes: &[u8]) -> Result<flowzoo::data::tabular::Table, DataError> {
    parse_npy(bytes, Path::new("x.npy"))
}

/// The error's offset and message, after checking it names the file.
fn bad(bytes: &[u8]) -> (u64, String) {
    match parse(bytes) {
        Err(e @ DataError::BadNpy { .. }) => {
            let message = e.to_string();
            assert!(message.starts_with("x.npy: offset "), "{message}");
            let DataError::BadNpy { offset, what, .. } = e else {
                unreachable!()
            };
            (offset, what)
        }
        Err(other) => panic!("expected BadNpy, got {other}"),
        Ok(t) => panic!("a bad file parsed: {t:?}"),
    }
}

#[test]
fn c_and_fortran_order_matrices_read_row_major() {
    // [[1, 2, 3], [4, 5, 6]] in C order is 1 2 3 4 5 6, in Fortran order 1 4 2 5 3 6.
    let c = parse(&npy("<f8", false, "(2, 3)", &f8(&[1., 2., 3., 4., 5., 6.]))).unwrap();
    let f = parse(&npy("<f8", true, "(2, 3)", &f8(&[1., 4., 2., 5., 3., 6.]))).unwrap();
    assert_eq!((c.rows, c.dim()), (2, 3));
    assert_eq!(c.data, vec![1., 2., 3., 4., 5., 6.]);
    assert_eq!(f.data, c.data);
    assert_eq!(c.columns, vec!["x0", "x1", "x2"]);
}

#[test]
fn integer_and_single_precision_files_read_as_f64() {
    let t = parse(&npy("|u1", false, "(3,)", &[0, 7, 255])).unwrap();
    assert_eq!((t.rows, t.dim(), t.data), (3, 1, vec![0., 7., 255.]));
    let t = parse(&npy("|i1", false, "(2,)", &[0xff, 0x02])).unwrap();
    assert_eq!(t.data, vec![-1., 2.]);
    let bytes: Vec<u8> = [0.5f32, -2.25]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let t = parse(&npy("<f4", false, "(1, 2)", &bytes)).unwrap();
    assert_eq!(t.data, vec![0.5, -2.25]);
    let bytes: Vec<u8> = [-3i32, 9].iter().flat_map(|v| v.to_le_bytes()).collect();
    assert_eq!(
        parse(&npy("<i4", false, "(2,)", &bytes)).unwrap().data,
        vec![-3., 9.]
    );
}

#[test]
fn wrong_magic_names_offset_zero() {
    let mut bytes = npy("<f8", false, "(1,)", &f8(&[1.0]));
    bytes[1] = b'X';
    let (offset, what) = bad(&bytes);
    assert_eq!(offset, 0);
    assert!(what.contains("not a .npy file"), "{what}");
    let (offset, _) = bad(b"a,b\n1,2\n");
    assert_eq!(offset, 0);
}

#[test]
fn unknown_version_and_unsupported_dtype_or_rank_are_named() {
    let mut bytes = npy("<f8", false, "(1,)", &f8(&[1.0]));
    bytes[6] = 9;
    let (offset, what) = bad(&bytes);
    assert_eq!(offset, 6);
    assert!(what.contains("version 9.0"), "{what}");

    let (offset, what) = bad(&npy(">f8", false, "(1,)", &f8(&[1.0])));
    assert_eq!(offset, 10);
    assert!(what.contains("'>f8'"), "{what}");
    let (_, what) = bad(&npy("<c16", false, "(1,)", &[0; 16]));
    assert!(what.contains("'<c16'"), "{what}");
    let (_, what) = bad(&npy("<f8", false, "(1, 1, 1)", &f8(&[1.0])));
    assert!(what.contains("only 1-D or 2-D"), "{what}");
    let (_, what) = bad(&npy("<f8", false, "(two,)", &f8(&[1.0])));
    assert!(what.contains("\"two\""), "{what}");
}

#[test]
fn short_and_long_files_name_where_the_data_ends() {
    let bytes = npy("<f8", false, "(2, 2)", &f8(&[1., 2., 3., 4.]));
    let n = bytes.len();
    let (offset, what) = bad(&bytes[..n - 3]);
    assert_eq!(offset, (n - 3) as u64);
    assert!(what.contains(&format!("announces {n}")), "{what}");
    let mut long = bytes.clone();
    long.push(0);
    let (offset, what) = bad(&long);
    assert_eq!(offset, n as u64);
    assert!(what.contains("1 bytes after the data"), "{what}");
    // Cut inside the header.
    let (offset, what) = bad(&bytes[..40]);
    assert_eq!(offset, 40);
    assert!(what.contains("inside the"), "{what}");
}

#[test]
fn nan_and_infinity_are_rejected_naming_row_and_column() {
    let bytes = npy("<f8", false, "(2, 3)", &f8(&[1., 2., 3., 4., f64::NAN, 6.]));
    let (offset, what) = bad(&bytes);
    assert_eq!(offset, 128 + 4 * 8, "the NaN's own bytes");
    assert!(what.contains("row 1, column 1"), "{what}");
    // In Fortran order element 3 is row 1, column 1 too.
    let bytes = npy(
        "<f8",
        true,
        "(2, 3)",
        &f8(&[1., 2., 3., f64::INFINITY, 5., 6.]),
    );
    let (_, what) = bad(&bytes);
    assert!(
        what.contains("row 1, column 1") && what.contains("inf"),
        "{what}"
    );
}

#[test]
fn int64_values_f64_cannot_hold_are_refused_naming_row_and_column() {
    // Integers are read and converted to f64, exactly: every |v| ≤ 2⁵³ is
    // an f64, and so are larger multiples of the spacing there (2⁶⁰ is).
    // 2⁵³ + 1 is not: it would round to 2⁵³, changing the data silently.
    let i8s = |values: &[i64]| -> Vec<u8> { values.iter().flat_map(|v| v.to_le_bytes()).collect() };
    let exact = [-(1i64 << 53), 1 << 53, 1 << 60, i64::MIN, 42];
    let t = parse(&npy("<i8", false, "(5,)", &i8s(&exact))).unwrap();
    assert_eq!(t.data, exact.iter().map(|&v| v as f64).collect::<Vec<_>>());
    let bytes = npy("<i8", false, "(2, 2)", &i8s(&[1, 2, 3, (1 << 53) + 1]));
    let (offset, what) = bad(&bytes);
    assert_eq!(offset, 128 + 3 * 8, "the value's own bytes");
    assert!(
        what.contains("row 1, column 1") && what.contains("9007199254740993"),
        "{what}"
    );
    let (_, what) = bad(&npy("<i8", false, "(1,)", &i8s(&[i64::MAX])));
    assert!(what.contains("9223372036854775807"), "{what}");
}

#[test]
fn an_empty_shape_is_refused_before_anything_is_allocated() {
    // (0, 10¹²) holds no values, so the file is complete at 128 bytes; a
    // reader that then names 10¹² columns allocates terabytes.
    let (offset, what) = bad(&npy("<f8", false, "(0, 1000000000000)", &[]));
    assert_eq!(offset, 10, "the header");
    assert!(what.contains("no values"), "{what}");
    let (_, what) = bad(&npy("<f8", false, "(3, 0)", &[]));
    assert!(what.contains("no values"), "{what}");
}

#[test]
fn read_table_dispatches_on_the_extension() {
    let dir = common::temp_dir("npy-read-table");
    let path = dir.join("data.npy");
    std::fs::write(&path, npy("<f8", false, "(2, 1)", &f8(&[3.0, 4.0]))).unwrap();
    assert_eq!(read_npy(&path).unwrap().data, vec![3.0, 4.0]);
    assert_eq!(read_table(&path).unwrap().data, vec![3.0, 4.0]);
    let csv = dir.join("data.csv");
    std::fs::write(&csv, "a\n3\n4\n").unwrap();
    assert_eq!(read_table(&csv).unwrap().data, vec![3.0, 4.0]);
    let err = read_npy(dir.join("missing.npy")).err().unwrap();
    assert!(matches!(err, DataError::Io { .. }), "{err}");
}

#[test]
fn standardize_counts_its_jacobian_in_log_prob() {
    // The same flow with and without Standardize at the data end:
    // log p(x) = log p_z((x − μ)/σ) − Σᵢ log σᵢ.
    let table = parse_csv("a,b\n10,1\n14,2\n12,6\n", Path::new("<memory>"), &[]).unwrap();
    let standardize = Standardize::fit(&table.data, table.dim());
    assert_eq!(standardize.mean, vec![12.0, 3.0]);
    // The same coupling (same seed, random parameters) in both models.
    let coupling = || -> Box<dyn Flow<f64>> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0);
        let mut layer = AffineCoupling::<f64>::new(Mask::half(2, false), 8, &mut rng);
        randomize_params(&mut layer, 0.5, &mut rng);
        Box::new(layer)
    };
    let plain = FlowModel::new(2, Sequential::new(vec![coupling()]));
    let layers = vec![
        coupling(),
        Box::new(standardize.clone()) as Box<dyn Flow<f64>>,
    ];
    let with = FlowModel::new(2, Sequential::new(layers));
    let x = Tensor::<f64>::from_f64_slice(&table.data, &[3, 2]);
    let z: Vec<f64> = table
        .data
        .chunks(2)
        .flat_map(|r| {
            [
                (r[0] - standardize.mean[0]) / standardize.std[0],
                (r[1] - standardize.mean[1]) / standardize.std[1],
            ]
        })
        .collect();
    let z = Tensor::<f64>::from_f64_slice(&z, &[3, 2]);
    let jacobian: f64 = standardize.std.iter().map(|s| s.ln()).sum();
    let (lx, lz) = (with.log_prob(&x).to_vec(), plain.log_prob(&z).to_vec());
    for (a, b) in lx.iter().zip(&lz) {
        assert!(
            (a - (b - jacobian)).abs() < 1e-12,
            "{a} vs {b} − {jacobian}"
        );
    }
    // And its samples are in the data's units: x = μ + σ·z.
    let (z_back, _) = standardize.inverse_tensor(&x);
    let (x_back, _) = standardize.forward_tensor(&z_back);
    for (a, b) in x_back.to_vec().iter().zip(x.to_vec()) {
        assert!((a - b).abs() < 1e-12);
    }
}
