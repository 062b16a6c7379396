//! Small dense linear algebra on square matrices: LU with partial pivoting,
//! `slogdet` (log|det| and its sign), triangular solves, solves through the
//! LU factors, and the inverse.
//!
//! Serial and in the element type of the tensor; these matrices are small
//! (Jacobians in the proofs, channel mixers in Glow), `O(n³)` with `n` in
//! the tens.
//!
//! Conventions: a matrix is `[n, n]`; a right-hand side is `[n]` (one
//! vector) or `[n, m]` (`m` columns solved at once), and a solve returns the
//! shape of its right-hand side. Singular input does not panic: `slogdet`
//! returns `(0, −∞)`, [`inverse`] returns `None`, and the solves divide by the
//! zero pivot (infinities or NaN in the result), as LAPACK's `trsm` does.

use super::{Element, Tensor};

/// The LU factorisation of a square matrix with partial pivoting:
/// `lu` holds L (unit lower, diagonal implied) below the diagonal and U on and
/// above it; `perm[i]` is the row of A that became row `i`; `sign` is det(P).
///
/// With P the permutation matrix of [`Lu::permutation`] (`P[perm[i], i] = 1`),
/// `A = P·L·U`, equivalently `Pᵀ·A = L·U`: row `i` of `L·U` is row `perm[i]`
/// of A.
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

/// Which triangle of a matrix a triangular solve reads (the other is ignored,
/// so the packed factors of [`Lu::lu`] can be passed as they are).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Triangle {
    /// On and below the diagonal.
    Lower,
    /// On and above the diagonal.
    Upper,
}

/// Whether a triangular solve reads the diagonal or takes it as ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Diagonal {
    /// The diagonal is all ones and is not read (L of an LU factorisation).
    Unit,
    /// The diagonal is read from the matrix.
    NonUnit,
}

/// The right-hand side `b` (`[n]` or `[n, m]`) as a row-major `[n, m]` copy,
/// with `m`; panics naming `op` and both shapes unless `b` has `n` rows.
fn rhs_columns<T: Element>(op: &str, a: &[usize], b: &Tensor<T>, n: usize) -> (Vec<T>, usize) {
    let m = match b.shape() {
        [rows] if *rows == n => 1,
        [rows, cols] if *rows == n => *cols,
        _ => panic!(
            "{op}: right-hand side must be [{n}] or [{n}, m]: matrix {a:?}, rhs {:?}",
            b.shape()
        ),
    };
    (b.to_vec(), m)
}

/// Solves `T·X = B` in place for a triangular `T` (the `triangle` of the
/// row-major `[n, n]` matrix `a`), with `x` holding B (`[n, m]`) on entry and
/// X on exit, by forward (lower) or back (upper) substitution:
/// `xᵢ = (bᵢ − Σ_{r<i} tᵢᵣ·xᵣ) / tᵢᵢ` for lower.
fn substitute<T: Element>(
    a: &[T],
    n: usize,
    x: &mut [T],
    m: usize,
    triangle: Triangle,
    diagonal: Diagonal,
) {
    let solve_row = |x: &mut [T], i: usize, r: usize| {
        // xᵢ −= tᵢᵣ·xᵣ over all m columns at once (it vectorises).
        let t = a[i * n + r];
        if t == T::ZERO {
            return;
        }
        let (done, row) = if r < i {
            let (lo, hi) = x.split_at_mut(i * m);
            (&lo[r * m..(r + 1) * m], &mut hi[..m])
        } else {
            let (lo, hi) = x.split_at_mut(r * m);
            (&hi[..m], &mut lo[i * m..(i + 1) * m])
        };
        for (xi, &xr) in row.iter_mut().zip(done) {
            *xi -= t * xr;
        }
    };
    let divide = |x: &mut [T], i: usize| {
        if diagonal == Diagonal::NonUnit {
            let d = a[i * n + i];
            for xi in &mut x[i * m..(i + 1) * m] {
                *xi = *xi / d;
            }
        }
    };
    match triangle {
        Triangle::Lower => {
            for i in 0..n {
                (0..i).for_each(|r| solve_row(x, i, r));
                divide(x, i);
            }
        }
        Triangle::Upper => {
            for i in (0..n).rev() {
                (i + 1..n).for_each(|r| solve_row(x, i, r));
                divide(x, i);
            }
        }
    }
}

/// Solves `T·X = B` for `X`, where `T` is the lower or upper triangle of the
/// square matrix `a` (the other triangle is not read) with its own diagonal
/// or a unit one.
///
/// # Shapes
/// `a: [n, n]`, `b: [n]` or `[n, m]` → the shape of `b`.
///
/// # Panics
/// If `a` is not square or `b` does not have `n` rows; the message names
/// `solve_triangular` and both shapes. A zero on a read diagonal does not
/// panic: the result holds infinities or NaN.
///
/// # Examples
/// ```
/// use flowzoo::tensor::{linalg::{solve_triangular, Diagonal, Triangle}, Tensor};
/// let l = Tensor::<f64>::from_vec(vec![2.0, 0.0, 1.0, 4.0], &[2, 2]);
/// let b = Tensor::from_vec(vec![2.0, 9.0], &[2]);
/// let x = solve_triangular(&l, &b, Triangle::Lower, Diagonal::NonUnit);
/// assert_eq!(x.to_vec(), vec![1.0, 2.0]); // 2·1 = 2, 1·1 + 4·2 = 9
/// ```
pub fn solve_triangular<T: Element>(
    a: &Tensor<T>,
    b: &Tensor<T>,
    triangle: Triangle,
    diagonal: Diagonal,
) -> Tensor<T> {
    let op = "solve_triangular";
    assert!(
        a.ndim() == 2 && a.dim(0) == a.dim(1),
        "{op}: expected a square matrix: matrix {:?}, rhs {:?}",
        a.shape(),
        b.shape()
    );
    let n = a.dim(0);
    let (mut x, m) = rhs_columns(op, a.shape(), b, n);
    substitute(&a.to_vec(), n, &mut x, m, triangle, diagonal);
    Tensor::from_vec(x, b.shape())
}

impl<T: Element> Lu<T> {
    /// Solves `A·X = B` with the factors: `X = U⁻¹·L⁻¹·Pᵀ·B` (a row
    /// permutation, a unit-lower forward substitution, an upper back
    /// substitution), `O(n²·m)`.
    ///
    /// # Shapes
    /// `b: [n]` or `[n, m]` → the shape of `b`.
    ///
    /// # Panics
    /// If `b` does not have `n` rows; the message names `lu_solve` and both
    /// shapes. A singular A gives infinities or NaN (see [`Lu::is_singular`]).
    pub fn solve(&self, b: &Tensor<T>) -> Tensor<T> {
        let n = self.n;
        let (rhs, m) = rhs_columns("lu_solve", &[n, n], b, n);
        // Row i of Pᵀ·B is row perm[i] of B.
        let mut x = Vec::with_capacity(n * m);
        for &p in &self.perm {
            x.extend_from_slice(&rhs[p * m..(p + 1) * m]);
        }
        substitute(&self.lu, n, &mut x, m, Triangle::Lower, Diagonal::Unit);
        substitute(&self.lu, n, &mut x, m, Triangle::Upper, Diagonal::NonUnit);
        Tensor::from_vec(x, b.shape())
    }

    /// True when U has an exact zero on its diagonal (A is singular).
    pub fn is_singular(&self) -> bool {
        (0..self.n).any(|i| self.lu[i * self.n + i] == T::ZERO)
    }

    /// L: the unit lower-triangular factor, `[n, n]`.
    pub fn lower(&self) -> Tensor<T> {
        let n = self.n;
        let data = (0..n * n)
            .map(|at| match (at / n, at % n) {
                (i, j) if i == j => T::ONE,
                (i, j) if i > j => self.lu[at],
                _ => T::ZERO,
            })
            .collect();
        Tensor::from_vec(data, &[n, n])
    }

    /// U: the upper-triangular factor, `[n, n]`.
    pub fn upper(&self) -> Tensor<T> {
        let n = self.n;
        let data = (0..n * n)
            .map(|at| {
                if at / n <= at % n {
                    self.lu[at]
                } else {
                    T::ZERO
                }
            })
            .collect();
        Tensor::from_vec(data, &[n, n])
    }

    /// P: the permutation matrix with `A = P·L·U`, `P[perm[i], i] = 1`, `[n, n]`.
    pub fn permutation(&self) -> Tensor<T> {
        let n = self.n;
        let mut data = vec![T::ZERO; n * n];
        for (i, &p) in self.perm.iter().enumerate() {
            data[p * n + i] = T::ONE;
        }
        Tensor::from_vec(data, &[n, n])
    }
}

/// Solves `A·X = B` for a square `A` by LU with partial pivoting
/// (see [`Lu::solve`]).
///
/// # Shapes
/// `a: [n, n]`, `b: [n]` or `[n, m]` → the shape of `b`.
///
/// # Panics
/// If `a` is not square or `b` does not have `n` rows (the message names the
/// op and both shapes). A singular A gives infinities or NaN.
pub fn lu_solve<T: Element>(a: &Tensor<T>, b: &Tensor<T>) -> Tensor<T> {
    assert!(
        a.ndim() == 2 && a.dim(0) == a.dim(1),
        "lu_solve: expected a square matrix: matrix {:?}, rhs {:?}",
        a.shape(),
        b.shape()
    );
    lu(a).solve(b)
}

/// The inverse `A⁻¹` of a square matrix, by solving `A·X = I` with its LU
/// factors; `None` when A is exactly singular (a zero pivot). A nearly
/// singular A gives a finite inverse with large entries and a large error,
/// as any inverse would: check `slogdet` when it matters.
///
/// # Shapes
/// `[n, n]` → `[n, n]`.
///
/// # Panics
/// If `a` is not a square matrix; the message names `inverse` and the shape.
///
/// # Examples
/// ```
/// use flowzoo::tensor::{linalg::inverse, Tensor};
/// let a = Tensor::<f64>::from_vec(vec![0.0, 2.0, 4.0, 0.0], &[2, 2]);
/// let inv = inverse(&a).expect("invertible");
/// assert_eq!(inv.to_vec(), vec![0.0, 0.25, 0.5, 0.0]);
/// ```
pub fn inverse<T: Element>(a: &Tensor<T>) -> Option<Tensor<T>> {
    assert!(
        a.ndim() == 2 && a.dim(0) == a.dim(1),
        "inverse: expected a square matrix, got shape {:?}",
        a.shape()
    );
    let f = lu(a);
    if f.is_singular() {
        return None;
    }
    let n = f.n;
    let identity = Tensor::from_vec(
        (0..n * n)
            .map(|at| if at / n == at % n { T::ONE } else { T::ZERO })
            .collect(),
        &[n, n],
    );
    Some(f.solve(&identity))
}
