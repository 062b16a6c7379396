//! Small dense linear algebra by reconstruction: P·L·U = A, A·inv(A) = I,
//! T·X = B for the triangular solves, A·X = B for `lu_solve`, and `slogdet`
//! against a cofactor (Laplace) expansion on n ≤ 5, on random, nearly
//! singular, exactly singular and row-permuted matrices.
//!
//! Tolerances are the backward-error bounds of the algorithms (Higham,
//! *Accuracy and Stability of Numerical Algorithms*, 2nd ed., chapters 8
//! and 9), with `γₙ = n·ε/(1 − n·ε)` and `ε = 2⁻⁵³`: LU gives
//! `|P·L·U − A| ≤ γₙ·|L|·|U|` and a triangular solve `|T·X − B| ≤ γₙ·|T|·|X|`
//! entry by entry; a constant 4 covers the final rounding of the check.

use crate::strategies::{randn, rng};
use flowzoo::tensor::linalg::{
    inverse, lu, lu_solve, slogdet, solve_triangular, Diagonal, Triangle,
};
use flowzoo::tensor::Tensor;
use proptest::prelude::*;
use rand::seq::SliceRandom;

/// `4·γₙ` for an `n`-term inner product.
fn gamma(n: usize) -> f64 {
    let u = f64::EPSILON / 2.0;
    4.0 * n as f64 * u / (1.0 - n as f64 * u)
}

/// Row-major `[n, n]` values of a matrix tensor.
fn entries(a: &Tensor<f64>) -> Vec<f64> {
    a.to_vec()
}

/// `C = A·B` and `|A|·|B|` for row-major matrices `[m, k]`, `[k, n]`.
fn product(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> (Vec<f64>, Vec<f64>) {
    let (mut c, mut abs) = (vec![0.0; m * n], vec![0.0; m * n]);
    for i in 0..m {
        for j in 0..n {
            for p in 0..k {
                c[i * n + j] += a[i * k + p] * b[p * n + j];
                abs[i * n + j] += (a[i * k + p] * b[p * n + j]).abs();
            }
        }
    }
    (c, abs)
}

/// det by cofactor expansion along the first row (exact arithmetic on the
/// definition; `n!` terms, fine for n ≤ 5).
fn cofactor_det(a: &[f64], n: usize) -> f64 {
    if n == 0 {
        return 1.0;
    }
    if n == 1 {
        return a[0];
    }
    let mut det = 0.0;
    for col in 0..n {
        let minor: Vec<f64> = (1..n)
            .flat_map(|i| (0..n).filter(move |&j| j != col).map(move |j| (i, j)))
            .map(|(i, j)| a[i * n + j])
            .collect();
        let sign = if col % 2 == 0 { 1.0 } else { -1.0 };
        det += sign * a[col] * cofactor_det(&minor, n - 1);
    }
    det
}

/// Hadamard's bound `Π ‖rowᵢ‖₂ ≥ |det A|`: the scale of det's rounding error.
fn hadamard(a: &[f64], n: usize) -> f64 {
    (0..n)
        .map(|i| (0..n).map(|j| a[i * n + j].powi(2)).sum::<f64>().sqrt())
        .product()
}

/// The kinds of square matrices the tests draw.
#[derive(Clone, Copy, Debug)]
enum Kind {
    /// N(0, 1) entries.
    Gaussian,
    /// Rank n−1 plus a perturbation of size 1e-9: |det| tiny, still invertible.
    NearlySingular,
    /// The rows of a Gaussian matrix in a random order: det changes sign
    /// with the permutation's parity; pivoting must follow the rows.
    RowPermuted,
    /// A permutation matrix: det = ±1 exactly.
    Permutation,
    /// Tiny leading entries, so that elimination without pivoting would fail.
    NeedsPivoting,
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        Just(Kind::Gaussian),
        Just(Kind::NearlySingular),
        Just(Kind::RowPermuted),
        Just(Kind::Permutation),
        Just(Kind::NeedsPivoting),
    ]
}

/// A `[n, n]` matrix of `kind` from `seed`.
fn matrix(kind: Kind, n: usize, seed: u64) -> Tensor<f64> {
    let mut r = rng(seed);
    let gaussian = randn(&[n, n], seed);
    let data = match kind {
        Kind::Gaussian => entries(&gaussian),
        Kind::NearlySingular => {
            let rank = n.saturating_sub(1);
            let left = entries(&randn(&[n, rank], seed ^ 1));
            let right = entries(&randn(&[rank, n], seed ^ 2));
            let (low_rank, _) = product(&left, &right, n, rank, n);
            let noise = entries(&randn(&[n, n], seed ^ 3));
            low_rank
                .iter()
                .zip(&noise)
                .map(|(a, e)| a + 1e-9 * e)
                .collect()
        }
        Kind::RowPermuted => {
            let rows = entries(&gaussian);
            let mut order: Vec<usize> = (0..n).collect();
            order.shuffle(&mut r);
            order
                .iter()
                .flat_map(|&i| rows[i * n..(i + 1) * n].to_vec())
                .collect()
        }
        Kind::Permutation => {
            let mut order: Vec<usize> = (0..n).collect();
            order.shuffle(&mut r);
            let mut m = vec![0.0; n * n];
            for (i, &j) in order.iter().enumerate() {
                m[i * n + j] = 1.0;
            }
            m
        }
        Kind::NeedsPivoting => {
            let mut m = entries(&gaussian);
            for i in 0..n {
                m[i * n + i] *= 1e-14;
            }
            m
        }
    };
    Tensor::from_vec(data, &[n, n])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn lu_reconstructs_the_matrix(n in 1usize..=8, kind in kind(), seed in any::<u64>()) {
        let a = matrix(kind, n, seed);
        let f = lu(&a);
        let (p, l, u) = (entries(&f.permutation()), entries(&f.lower()), entries(&f.upper()));
        // Shapes of the factors: P a permutation with det P = sign, L unit
        // lower with |Lᵢⱼ| ≤ 1 (partial pivoting), U upper.
        for i in 0..n {
            prop_assert_eq!((0..n).filter(|&j| p[i * n + j] == 1.0).count(), 1);
            prop_assert_eq!(l[i * n + i], 1.0);
            for j in 0..n {
                if j > i { prop_assert_eq!(l[i * n + j], 0.0); }
                if j < i { prop_assert_eq!(u[i * n + j], 0.0); prop_assert!(l[i * n + j].abs() <= 1.0); }
            }
        }
        // sign = det P = (−1)^(inversions of perm).
        let inversions = (0..n).flat_map(|i| (i + 1..n).map(move |j| (i, j)))
            .filter(|&(i, j)| f.perm[i] > f.perm[j])
            .count();
        prop_assert_eq!(f.sign, if inversions % 2 == 0 { 1.0 } else { -1.0 });
        // P·L·U = A within γₙ·P·|L|·|U|.
        let (lu_prod, lu_abs) = product(&l, &u, n, n, n);
        let (plu, _) = product(&p, &lu_prod, n, n, n);
        let (bound, _) = product(&p, &lu_abs, n, n, n);
        let a = entries(&a);
        for i in 0..n * n {
            prop_assert!((plu[i] - a[i]).abs() <= gamma(n) * bound[i],
                "P·L·U ≠ A at {}: {} vs {} (bound {})", i, plu[i], a[i], gamma(n) * bound[i]);
        }
    }

    #[test]
    fn slogdet_matches_the_cofactor_expansion(n in 1usize..=5, kind in kind(), seed in any::<u64>()) {
        let a = matrix(kind, n, seed);
        let (sign, log_abs) = slogdet(&a);
        let values = entries(&a);
        let det = cofactor_det(&values, n);
        let scale = hadamard(&values, n);
        // det's rounding error is a few ε times Hadamard's bound, for LU and
        // for the expansion alike; this holds for nearly singular A too.
        let got = sign * log_abs.exp();
        prop_assert!((got - det).abs() <= 1e-12 * scale,
            "{:?}: det {} vs cofactor {} (scale {})", kind, got, det, scale);
        if det.abs() >= 1e-3 * scale {
            // Well conditioned: sign and log agree closely.
            prop_assert_eq!(sign, det.signum());
            prop_assert!((log_abs - det.abs().ln()).abs() <= 1e-10,
                "{:?}: log|det| {} vs {}", kind, log_abs, det.abs().ln());
        }
        if let Kind::Permutation = kind {
            prop_assert_eq!((sign, log_abs), (det, 0.0));
        }
    }

    #[test]
    fn inverse_times_matrix_is_the_identity(n in 1usize..=8, kind in kind(), seed in any::<u64>()) {
        let a = matrix(kind, n, seed);
        let x = inverse(&a).expect("these matrices are invertible");
        prop_assert_eq!(x.shape(), &[n, n][..]);
        // ‖A·X − I‖ ≤ c·n·ε·‖A‖·‖X‖ (max norms), on both sides.
        let (av, xv) = (entries(&a), entries(&x));
        let norm = |m: &[f64]| m.iter().fold(0.0f64, |s, v| s.max(v.abs()));
        let tol = 8.0 * gamma(n) * n as f64 * norm(&av) * norm(&xv);
        for (name, (prod, _)) in [("A·X", product(&av, &xv, n, n, n)), ("X·A", product(&xv, &av, n, n, n))] {
            for i in 0..n {
                for j in 0..n {
                    let identity = if i == j { 1.0 } else { 0.0 };
                    prop_assert!((prod[i * n + j] - identity).abs() <= tol,
                        "{:?}: {} − I at ({}, {}) = {} (tolerance {})", kind, name, i, j, prod[i * n + j] - identity, tol);
                }
            }
        }
    }

    #[test]
    fn triangular_solves_satisfy_t_x_equals_b(
        n in 1usize..=8,
        m in 0usize..=3,
        lower in any::<bool>(),
        unit in any::<bool>(),
        seed in any::<u64>(),
    ) {
        // The unread triangle (and the diagonal when unit) holds NaN: any read
        // of it would poison the result.
        let (triangle, diagonal) = (
            if lower { Triangle::Lower } else { Triangle::Upper },
            if unit { Diagonal::Unit } else { Diagonal::NonUnit },
        );
        let mut t = entries(&randn(&[n, n], seed));
        let mut clean = t.clone();
        for i in 0..n {
            for j in 0..n {
                let in_triangle = if lower { j < i } else { j > i };
                if i == j {
                    if unit { t[i * n + j] = f64::NAN; clean[i * n + j] = 1.0; }
                    else { t[i * n + j] += 2.0f64.copysign(t[i * n + j]); clean[i * n + j] = t[i * n + j]; }
                } else if !in_triangle {
                    t[i * n + j] = f64::NAN;
                    clean[i * n + j] = 0.0;
                }
            }
        }
        let t = Tensor::from_vec(t, &[n, n]);
        // m = 0 stands for a vector right-hand side [n].
        let b = if m == 0 { randn(&[n], seed ^ 1) } else { randn(&[n, m], seed ^ 1) };
        let x = solve_triangular(&t, &b, triangle, diagonal);
        prop_assert_eq!(x.shape(), b.shape());
        let cols = m.max(1);
        let (tx, bound) = product(&clean, &x.to_vec(), n, n, cols);
        let bv = b.to_vec();
        for i in 0..n * cols {
            prop_assert!((tx[i] - bv[i]).abs() <= gamma(n) * bound[i] + 1e-300,
                "T·X ≠ B at {}: {} vs {}", i, tx[i], bv[i]);
        }
    }

    #[test]
    fn lu_solve_satisfies_a_x_equals_b(n in 1usize..=8, m in 0usize..=3, kind in kind(), seed in any::<u64>()) {
        let a = matrix(kind, n, seed);
        let b = if m == 0 { randn(&[n], seed ^ 1) } else { randn(&[n, m], seed ^ 1) };
        let x = lu_solve(&a, &b);
        prop_assert_eq!(x.shape(), b.shape());
        let cols = m.max(1);
        let (av, xv, bv) = (entries(&a), x.to_vec(), b.to_vec());
        let (ax, _) = product(&av, &xv, n, n, cols);
        let norm = |v: &[f64]| v.iter().fold(0.0f64, |s, x| s.max(x.abs()));
        let tol = 8.0 * gamma(n) * n as f64 * norm(&av) * norm(&xv);
        for i in 0..n * cols {
            prop_assert!((ax[i] - bv[i]).abs() <= tol, "{:?}: A·X ≠ B at {}: {} vs {}", kind, i, ax[i], bv[i]);
        }
        // The factors solve the same system.
        prop_assert_eq!(lu(&a).solve(&b).to_vec(), xv);
    }

    #[test]
    fn a_repeated_row_is_singular(n in 2usize..=6, seed in any::<u64>()) {
        // Identical rows stay identical under the same row operations, so the
        // elimination meets an exact zero pivot.
        let mut values = entries(&randn(&[n, n], seed));
        let (src, dst) = ((seed % n as u64) as usize, ((seed / 7) % n as u64) as usize);
        let dst = if dst == src { (src + 1) % n } else { dst };
        for j in 0..n {
            values[dst * n + j] = values[src * n + j];
        }
        let a = Tensor::from_vec(values, &[n, n]);
        prop_assert_eq!(slogdet(&a), (0.0, f64::NEG_INFINITY));
        prop_assert!(lu(&a).is_singular());
        prop_assert!(inverse(&a).is_none());
    }
}

#[test]
fn slogdet_of_a_2x2_needing_a_row_swap() {
    // [[0, 2], [3, 1]]: det = −6; the zero pivot forces the swap.
    let a = Tensor::<f64>::from_vec(vec![0.0, 2.0, 3.0, 1.0], &[2, 2]);
    let (sign, log_abs) = slogdet(&a);
    assert_eq!(sign, -1.0);
    assert!((log_abs - 6f64.ln()).abs() < 1e-15);
}

#[test]
#[should_panic(
    expected = "solve_triangular: right-hand side must be [3] or [3, m]: matrix [3, 3], rhs [2]"
)]
fn solve_triangular_names_both_shapes_when_rows_differ() {
    let _ = solve_triangular(
        &Tensor::<f64>::zeros(&[3, 3]),
        &Tensor::zeros(&[2]),
        Triangle::Lower,
        Diagonal::NonUnit,
    );
}

#[test]
#[should_panic(expected = "solve_triangular: expected a square matrix: matrix [2, 3], rhs [2]")]
fn solve_triangular_names_both_shapes_when_not_square() {
    let _ = solve_triangular(
        &Tensor::<f64>::zeros(&[2, 3]),
        &Tensor::zeros(&[2]),
        Triangle::Upper,
        Diagonal::Unit,
    );
}

#[test]
#[should_panic(
    expected = "lu_solve: right-hand side must be [2] or [2, m]: matrix [2, 2], rhs [3, 1]"
)]
fn lu_solve_names_both_shapes_when_rows_differ() {
    let _ = lu_solve(&Tensor::<f64>::ones(&[2, 2]), &Tensor::zeros(&[3, 1]));
}

#[test]
#[should_panic(expected = "inverse: expected a square matrix, got shape [2, 3]")]
fn inverse_names_the_shape_when_not_square() {
    let _ = inverse(&Tensor::<f64>::zeros(&[2, 3]));
}

#[test]
#[should_panic(expected = "lu: expected a square matrix, got shape [2, 3]")]
fn lu_names_the_shape_when_not_square() {
    let _ = lu(&Tensor::<f64>::zeros(&[2, 3]));
}
