//! Matrix products: `[m, k] × [k, n] → [m, n]` and the batched
//! `[b, m, k] × [b, k, n] → [b, m, n]`.
//!
//! The operands' strides go to the GEMM (`Element::gemm`) as they are, so a transposed
//! or narrowed operand costs no copy. Large products split the rows of the
//! output across rayon's threads; a thin output (n ≤ 4, the last layer of a
//! 2-D coupling net) takes a dot-product path that beats the packed GEMM.

use super::element::relu_in_place;
use super::parallel::{threads_available, PAR_MIN_MATMUL_FLOPS};
use super::{pool, simd, Element, Tensor};
use crate::tensor::parallel::prelude::*;

/// Output columns at or below which the thin path runs.
pub(super) const THIN_N: usize = 4;

/// What the output of [`gemm_into`] starts as.
#[derive(Clone, Copy)]
enum Start<'b, T> {
    /// Nothing: `c`'s values are never read (`C ← A·B`), so its buffer may
    /// hold anything (a kept buffer's old values, [`pool::reused`]).
    Overwrite,
    /// The bias `b` in every row (`C ← A·B + 1·bᵀ`), then `max(C, 0)` when
    /// `relu`: each thread's share is one [`Element::gemm_bias`], which on
    /// our AVX2 kernel adds the bias and applies the ReLU as it stores each
    /// tile.
    Bias { bias: &'b [T], relu: bool },
}

/// Raw strided product `C ← A·B` (or `C ← A·B + 1·bᵀ`, see [`Start`]) for
/// one matrix, with `c` contiguous `[m, n]`. Splits rows across threads when
/// the product is large.
#[allow(clippy::too_many_arguments)]
fn gemm_into<T: Element>(
    m: usize,
    k: usize,
    n: usize,
    a: &[T],
    a_off: usize,
    (rsa, csa): (usize, usize),
    b: &[T],
    b_off: usize,
    (rsb, csb): (usize, usize),
    c: &mut [T],
    start: Start<'_, T>,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        match start {
            Start::Overwrite => c.fill(T::ZERO),
            Start::Bias { bias, relu } => {
                for row in c.chunks_mut(n) {
                    row.copy_from_slice(bias);
                }
                if relu {
                    relu_in_place(c);
                }
            }
        }
        return;
    }
    if let (Start::Bias { bias, relu }, true) = (start, n <= THIN_N || m <= THIN_N) {
        // The thin paths write their whole output (β = 0 only); theirs is
        // small, so the bias and the ReLU follow in a pass over it.
        gemm_into(
            m,
            k,
            n,
            a,
            a_off,
            (rsa, csa),
            b,
            b_off,
            (rsb, csb),
            c,
            Start::Overwrite,
        );
        for row in c.chunks_mut(n) {
            row.iter_mut().zip(bias).for_each(|(c, &b)| *c = b + *c);
        }
        if relu {
            relu_in_place(c);
        }
        return;
    }
    if n <= THIN_N {
        thin_gemm(m, k, n, a, a_off, (rsa, csa), b, b_off, (rsb, csb), c);
        return;
    }
    if m <= THIN_N {
        // Cᵀ = Bᵀ·Aᵀ has a thin output: compute it, then transpose into C.
        let mut ct = pool::reused(n * m);
        thin_gemm(n, k, m, b, b_off, (csb, rsb), a, a_off, (csa, rsa), &mut ct);
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = ct[j * m + i];
            }
        }
        pool::give(ct);
        return;
    }
    let threads = crate::tensor::parallel::current_num_threads();
    let parallel = threads_available() && m * k * n >= PAR_MIN_MATMUL_FLOPS && m >= 2 * 8;
    let rows_per_task = if parallel { m.div_ceil(threads) } else { m };
    let run = |task: usize, c_rows: &mut [T]| {
        let row0 = task * rows_per_task;
        let rows = c_rows.len() / n;
        // SAFETY: the layouts were checked against the storages by `Tensor`
        // (invariant 3), rows `row0..row0+rows` of A exist, and `c_rows` is a
        // distinct `[rows, n]` block of the output.
        unsafe {
            let a_rows = a.as_ptr().add(a_off + row0 * rsa);
            let b_start = b.as_ptr().add(b_off);
            match start {
                Start::Overwrite => T::gemm(
                    rows,
                    k,
                    n,
                    T::ONE,
                    a_rows,
                    rsa as isize,
                    csa as isize,
                    b_start,
                    rsb as isize,
                    csb as isize,
                    T::ZERO,
                    c_rows.as_mut_ptr(),
                    n as isize,
                    1,
                ),
                Start::Bias { bias, relu } => T::gemm_bias(
                    rows,
                    k,
                    n,
                    a_rows,
                    (rsa as isize, csa as isize),
                    b_start,
                    (rsb as isize, csb as isize),
                    bias,
                    relu,
                    c_rows,
                ),
            }
        }
    };
    if parallel {
        c.par_chunks_mut(rows_per_task * n)
            .enumerate()
            .for_each(|(task, rows)| run(task, rows));
    } else {
        run(0, c);
    }
}

/// [`gemm_into`] for two rank-2 tensors whose shapes were checked, into `c`
/// (`[a.dim(0), b.dim(1)]`, contiguous).
fn gemm_2d<T: Element>(a: &Tensor<T>, b: &Tensor<T>, c: &mut [T], start: Start<'_, T>) {
    gemm_into(
        a.dim(0),
        a.dim(1),
        b.dim(1),
        a.storage(),
        a.layout().offset(),
        (a.strides()[0], a.strides()[1]),
        b.storage(),
        b.layout().offset(),
        (b.strides()[0], b.strides()[1]),
        c,
        start,
    );
}

/// `C ← A·B` for `n ≤ THIN_N` output columns, where a packed GEMM spends more
/// time packing than multiplying. Two forms, chosen by A's layout:
/// - rows of A contiguous: each output is a dot product of a row of A with a
///   column of B (copied contiguous once), all n of them in one pass over the
///   row;
/// - columns of A contiguous (A is a transposed view): each output column is
///   a sum of columns of A scaled by entries of B (axpy), so no gather.
#[allow(clippy::too_many_arguments)]
fn thin_gemm<T: Element>(
    m: usize,
    k: usize,
    n: usize,
    a: &[T],
    a_off: usize,
    (rsa, csa): (usize, usize),
    b: &[T],
    b_off: usize,
    (rsb, csb): (usize, usize),
    c: &mut [T],
) {
    let b_at = |p: usize, j: usize| b[b_off + p * rsb + j * csb];
    if rsa == 1 && csa != 1 {
        // C[:, j] = Σₚ A[:, p]·B[p, j], each A[:, p] contiguous.
        let mut column = vec![T::ZERO; m];
        for j in 0..n {
            column.fill(T::ZERO);
            for p in 0..k {
                let (scale, a_col) = (b_at(p, j), &a[a_off + p * csa..a_off + p * csa + m]);
                simd::axpy(scale, a_col, &mut column);
            }
            for (i, &v) in column.iter().enumerate() {
                c[i * n + j] = v;
            }
        }
        return;
    }
    let columns: Vec<Vec<T>> = (0..n)
        .map(|j| (0..k).map(|p| b_at(p, j)).collect())
        .collect();
    let columns: Vec<&[T]> = columns.iter().map(Vec::as_slice).collect();
    let mut row = Vec::with_capacity(k);
    for (i, out) in c.chunks_mut(n).enumerate() {
        let start = a_off + i * rsa;
        let a_row: &[T] = if csa == 1 {
            &a[start..start + k]
        } else {
            row.clear();
            row.extend((0..k).map(|p| a[start + p * csa]));
            &row
        };
        simd::dots(a_row, &columns, out);
    }
}

impl<T: Element> Tensor<T> {
    /// Matrix product `[m, k] × [k, n] → [m, n]`, or batched
    /// `[b, m, k] × [b, k, n] → [b, m, n]` (a rank-2 operand broadcasts over
    /// the batch). Any strides are accepted without copying.
    ///
    /// # Panics
    /// If the operands are not rank 2 or 3, or the inner dimensions or batch
    /// sizes differ: `matmul: inner dimensions differ: lhs [4, 3], rhs [5, 2]`.
    pub fn matmul(&self, rhs: &Tensor<T>) -> Tensor<T> {
        let (ls, rs) = (self.shape(), rhs.shape());
        match (ls.len(), rs.len()) {
            (2, 2) => {
                let (m, k, n) = (ls[0], ls[1], rs[1]);
                assert_eq!(
                    k, rs[0],
                    "matmul: inner dimensions differ: lhs {ls:?}, rhs {rs:?}"
                );
                let mut out = pool::reused(m * n);
                gemm_2d(self, rhs, &mut out, Start::Overwrite);
                Tensor::from_vec(out, &[m, n])
            }
            (2 | 3, 2 | 3) => {
                let batch = if ls.len() == 3 { ls[0] } else { rs[0] };
                let lhs = if ls.len() == 3 {
                    self.clone()
                } else {
                    self.unsqueeze(0).broadcast_to(&[batch, ls[0], ls[1]])
                };
                let rhs = if rs.len() == 3 {
                    rhs.clone()
                } else {
                    rhs.unsqueeze(0).broadcast_to(&[batch, rs[0], rs[1]])
                };
                let (l, r) = (lhs.shape(), rhs.shape());
                assert_eq!(
                    l[0], r[0],
                    "matmul: batch sizes differ: lhs {ls:?}, rhs {rs:?}"
                );
                assert_eq!(
                    l[2], r[1],
                    "matmul: inner dimensions differ: lhs {ls:?}, rhs {rs:?}"
                );
                let (m, k, n) = (l[1], l[2], r[2]);
                let mut out = pool::reused(batch * m * n);
                if m * n > 0 {
                    for (b, c) in out.chunks_mut(m * n).enumerate() {
                        gemm_into(
                            m,
                            k,
                            n,
                            lhs.storage(),
                            lhs.layout().offset() + b * lhs.strides()[0],
                            (lhs.strides()[1], lhs.strides()[2]),
                            rhs.storage(),
                            rhs.layout().offset() + b * rhs.strides()[0],
                            (rhs.strides()[1], rhs.strides()[2]),
                            c,
                            Start::Overwrite,
                        );
                    }
                }
                Tensor::from_vec(out, &[batch, m, n])
            }
            _ => panic!("matmul: expected rank 2 or 3 operands: lhs {ls:?}, rhs {rs:?}"),
        }
    }
}

impl<T: Element> Tensor<T> {
    /// The affine map of a batch, `x·W + b`: the output starts as `b` in
    /// every row and the product is added into it (the bias folded into the
    /// GEMM: no zero-filling, no second pass).
    ///
    /// # Shapes
    /// `x: [batch, in]`, `W: [in, out]`, `b: [out]` → `[batch, out]`.
    ///
    /// # Panics
    /// If the shapes do not fit, naming the op and the shapes.
    pub fn linear(&self, weight: &Tensor<T>, bias: &Tensor<T>) -> Tensor<T> {
        self.affine(weight, bias, false)
    }

    /// `max(x·W + b, 0)` (0 for NaN, as [`Tensor::relu`]): [`Tensor::linear`]
    /// with the ReLU applied as the output is written (on the AVX2 GEMM,
    /// to each tile as it is stored; elsewhere in a pass after the
    /// product). Shapes and panics as [`Tensor::linear`].
    pub fn linear_relu(&self, weight: &Tensor<T>, bias: &Tensor<T>) -> Tensor<T> {
        self.affine(weight, bias, true)
    }

    /// [`Tensor::linear`], then the ReLU when `relu`.
    fn affine(&self, weight: &Tensor<T>, bias: &Tensor<T>, relu: bool) -> Tensor<T> {
        assert!(
            self.ndim() == 2 && weight.ndim() == 2 && bias.shape() == [weight.dim(1)],
            "linear: shapes do not fit: x {:?}, weight {:?}, bias {:?}",
            self.shape(),
            weight.shape(),
            bias.shape()
        );
        let (m, k, n) = (self.dim(0), self.dim(1), weight.dim(1));
        assert_eq!(
            k,
            weight.dim(0),
            "matmul: inner dimensions differ: lhs {:?}, rhs {:?}",
            self.shape(),
            weight.shape()
        );
        let b = bias.contiguous();
        let b = b
            .as_slice()
            .expect("contiguous() gives a contiguous tensor");
        let mut out = pool::reused(m * n);
        gemm_2d(self, weight, &mut out, Start::Bias { bias: b, relu });
        Tensor::from_vec(out, &[m, n])
    }
}
