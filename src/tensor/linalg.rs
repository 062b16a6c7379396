//! Small dense linear algebra on square matrices: LU with partial pivoting
//! and `slogdet` (log|det| and its sign).
//!
//! Serial and in the element type of the tensor; these matrices are small
//! (Jacobians in the proofs, channel mixers in Glow).

use super::{Element, Tensor};

/// The LU factorisation P·A = L·U of a square matrix with partial pivoting:
/// `lu` holds L (unit lower, diagonal implied) below the diagonal and U on and
/// above it; `perm[i]` is the row of A that became row `i`; `sign` is det(P).
#[derive(Clone, Debug)]
pub struct Lu<T: Element> {
    /// L and U packed, `[n, n]` row-major.
    pub lu: Vec<T>,
    /// The row permutation.
    pub perm: Vec<usize>,
    /// det(P) = ±1.
    pub sign: T,
    /// The size n.
    pub n: usize,
}

/// LU with partial pivoting (the largest |entry| of each column below the
/// diagonal becomes the pivot, which bounds the multipliers by 1).
///
/// # Panics
/// If `a` is not a square matrix.
pub fn lu<T: Element>(a: &Tensor<T>) -> Lu<T> {
    assert!(
        a.ndim() == 2 && a.dim(0) == a.dim(1),
        "lu: expected a square matrix, got shape {:?}",
        a.shape()
    );
    let n = a.dim(0);
    let mut m = a.to_vec();
    let mut perm: Vec<usize> = (0..n).collect();
    let mut sign = T::ONE;
    for k in 0..n {
        let pivot = (k..n)
            .max_by(|&i, &j| {
                m[i * n + k]
                    .abs()
                    .partial_cmp(&m[j * n + k].abs())
                    .unwrap_or(std::cmp::Ordering::Equal)
            })
            .unwrap_or(k);
        if pivot != k {
            for c in 0..n {
                m.swap(k * n + c, pivot * n + c);
            }
            perm.swap(k, pivot);
            sign = -sign;
        }
        let d = m[k * n + k];
        if d == T::ZERO {
            continue; // singular: U has a zero on its diagonal
        }
        for i in k + 1..n {
            let f = m[i * n + k] / d;
            m[i * n + k] = f;
            for c in k + 1..n {
                let u = m[k * n + c];
                m[i * n + c] -= f * u;
            }
        }
    }
    Lu {
        lu: m,
        perm,
        sign,
        n,
    }
}

/// `(sign, log|det A|)`: det A = sign · exp(log|det A|), from the LU
/// factors as det(P)·Π Uᵢᵢ. A singular matrix gives `(0, −∞)`.
///
/// # Panics
/// If `a` is not a square matrix.
pub fn slogdet<T: Element>(a: &Tensor<T>) -> (T, T) {
    let f = lu(a);
    let mut sign = f.sign;
    let mut log_abs = T::ZERO;
    for i in 0..f.n {
        let d = f.lu[i * f.n + i];
        if d == T::ZERO {
            return (T::ZERO, T::from_f64(f64::NEG_INFINITY));
        }
        if d < T::ZERO {
            sign = -sign;
        }
        log_abs += d.abs().ln();
    }
    (sign, log_abs)
}
