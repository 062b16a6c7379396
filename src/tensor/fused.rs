//! Fused kernels of the training step: several element-wise passes done in
//! one walk over memory, each equal, bit for bit, to the composition it
//! replaces (the same operations on each element, the same summation order;
//! a NaN stays a NaN, its sign and payload not kept).
//! Proved against the unfused composition by the proptests `fused_*`
//! (proptests/fused.rs), values and gradients, in f32 and f64.

use super::{pool, wide, Element};

/// The backward pass of a linear layer's fused ReLU, `y = max(x·W + b, 0)`:
/// masks the incoming gradient in place, `ḡ ← ḡ ⊙ 1(y > 0)`, and returns
/// its sum over the rows, `b̄ = Σ_rows ḡ` (length `n`), in the same pass.
///
/// `g` and `y` are `[rows, n]`, row-major. Each column's sum adds the rows
/// in order from 0, as `sum_axes(&[0])` does, so the result is that of the
/// unfused `relu` backward followed by the bias sum, bit for bit. One
/// thread walks it (the pass is bound by memory), so the result does not
/// depend on the thread count either.
///
/// # Panics
/// If `g` and `y` differ in length or `n` does not divide it.
pub(crate) fn relu_mask_and_column_sums<T: Element>(g: &mut [T], y: &[T], n: usize) -> Vec<T> {
    assert!(
        g.len() == y.len() && (n == 0 || g.len().is_multiple_of(n)),
        "relu_mask_and_column_sums: gradient of {} and output of {} elements, rows of {n}",
        g.len(),
        y.len()
    );
    let mut sums = pool::filled(n, T::ZERO);
    if n == 0 {
        return sums;
    }
    // One walk over the rows in order (each column's sum adds the rows from
    // 0, as `sum_axes(&[0])` does). Not split across threads: the pass is
    // bound by memory, and column blocks walked by two threads (the split
    // used until session 16) took 2-3 times as long as this single walk
    // at two threads ([4096, 256]: 0.44-0.59 ms against 0.21).
    for (g_row, y_row) in g.chunks_mut(n).zip(y.chunks(n)) {
        for ((o, gv), &yv) in sums.iter_mut().zip(g_row.iter_mut()).zip(y_row) {
            // ā = ȳ where y > 0 (0 at the kink and below, as Relu's rule)
            *gv = if yv > T::ZERO { *gv } else { T::ZERO };
            *o += *gv;
        }
    }
    sums
}

/// Which way an affine coupling's fused update runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AffineDirection {
    /// Latent → data (sampling): `y = x ⊙ exp(s) + t`, log-det `Σⱼ sⱼ`.
    Forward,
    /// Data → latent (training): `y = (x − t) ⊙ exp(−s)`, log-det `−Σⱼ sⱼ`.
    Inverse,
}

/// What the fused affine update computes and keeps for its backward pass.
pub(crate) struct AffineUpdate<T> {
    /// `[rows, n + 1]`: each row's `n` outputs, then its log-det.
    pub out: Vec<T>,
    /// `tanh(ŝ)`, `[rows, n]`.
    pub tanh: Vec<T>,
    /// `exp(±s)`, `[rows, n]`: the factor the update multiplied by.
    pub factor: Vec<T>,
}

/// The affine coupling's element-wise update with RealNVP's bounded scale,
/// in one pass: from the network output `h = [ŝ | t]` (`[rows, 2n]`), the
/// bound `c` (`[n]`) and the moved half `x` (`[rows, n]`),
/// `s = tanh(ŝ) ⊙ c`, then `y` and the log-det of `direction`. Each number
/// is computed by the same operations in the same order as the unfused
/// `tanh`, `mul`, `neg`, `exp`, `sub`/`add`, `mul` and `sum_axes(&[1])` ops,
/// so the values are theirs, bit for bit.
///
/// # Panics
/// If the lengths do not fit `[rows, 2n]`, `[n]` and `[rows, n]`.
pub(crate) fn affine_tanh_update<T: Element>(
    h: &[T],
    c: &[T],
    x: &[T],
    direction: AffineDirection,
) -> AffineUpdate<T> {
    let n = c.len();
    let rows = x.len().checked_div(n).unwrap_or(0);
    assert!(
        x.len() == rows * n && h.len() == 2 * rows * n,
        "affine_tanh_update: h of {}, bound of {n}, x of {} elements",
        h.len(),
        x.len()
    );
    // Row by row into buffers of their final size, each pass a simple loop
    // over slices that the compiler vectorises (the two elementary
    // functions are branch-free in f32).
    // Every buffer below is written whole before it is read.
    let mut tanh = pool::reused(rows * n);
    for (t_row, h_row) in tanh.chunks_exact_mut(n).zip(h.chunks_exact(2 * n)) {
        wide::map_into(&h_row[..n], t_row, T::tanh);
    }
    // s = tanh(ŝ) ⊙ c, its row sums, and ±s in `factor` (then exponentiated)
    let sign = match direction {
        AffineDirection::Forward => T::ONE,
        AffineDirection::Inverse => -T::ONE,
    };
    let mut factor = pool::reused(rows * n);
    let mut log_dets = pool::reused(rows);
    for ((f_row, th_row), log_det) in factor
        .chunks_exact_mut(n)
        .zip(tanh.chunks_exact(n))
        .zip(log_dets.iter_mut())
    {
        let mut sum = T::ZERO;
        for ((f, &th), &cv) in f_row.iter_mut().zip(th_row).zip(c) {
            let s = th * cv;
            sum += s;
            // ±1 · s is exactly s or −s
            *f = sign * s;
        }
        *log_det = sign * sum;
    }
    wide::map_in_place(&mut factor, T::exp);
    let mut out = pool::reused(rows * (n + 1));
    let rows_of = h.chunks_exact(2 * n).zip(x.chunks_exact(n));
    for (((o_row, (h_row, x_row)), e_row), &log_det) in out
        .chunks_exact_mut(n + 1)
        .zip(rows_of)
        .zip(factor.chunks_exact(n))
        .zip(&log_dets)
    {
        let shift = &h_row[n..];
        let (o_row, o_log_det) = o_row.split_at_mut(n);
        match direction {
            AffineDirection::Forward => {
                for (((o, &xv), &t), &e) in o_row.iter_mut().zip(x_row).zip(shift).zip(e_row) {
                    *o = xv * e + t;
                }
            }
            AffineDirection::Inverse => {
                for (((o, &xv), &t), &e) in o_row.iter_mut().zip(x_row).zip(shift).zip(e_row) {
                    *o = (xv - t) * e;
                }
            }
        }
        o_log_det[0] = log_det;
    }
    AffineUpdate { out, tanh, factor }
}

/// The gradients of [`affine_tanh_update`], in one pass over the rows.
pub(crate) struct AffineGrads<T> {
    /// `h̄ = [ŝ̄ | t̄]`, `[rows, 2n]`.
    pub h: Vec<T>,
    /// `c̄`, `[n]`.
    pub bound: Vec<T>,
    /// `x̄`, `[rows, n]`.
    pub x: Vec<T>,
}

/// The vector-Jacobian product of [`affine_tanh_update`]: from `g`, the
/// gradient of its `[rows, n + 1]` output, and the values it kept, the
/// gradients of `h`, `c` and `x`. With `u = x − t` (inverse) or `x`
/// (forward) and `e` the factor:
/// `x̄ = ȳ ⊙ e`, `t̄ = ∓ȳ ⊙ e` (− inverse), `s̄ = ±ℓ̄ ± (ȳ ⊙ u) ⊙ e`,
/// `c̄ = Σ_rows s̄ ⊙ tanh(ŝ)`, `ŝ̄ = (s̄ ⊙ c) ⊙ (1 − tanh²(ŝ))`, formed in
/// the order the unfused ops' rules form them (the log-det's share of `s̄`
/// first: its ops were recorded last), so the gradients are theirs too.
pub(crate) fn affine_tanh_backward<T: Element>(
    g: &[T],
    kept: (&[T], &[T], &[T], &[T]),
    c: &[T],
    direction: AffineDirection,
) -> AffineGrads<T> {
    let (h, x, tanh, factor) = kept;
    let n = c.len();
    let rows = x.len().checked_div(n).unwrap_or(0);
    assert!(
        g.len() == rows * (n + 1)
            && h.len() == 2 * rows * n
            && tanh.len() == rows * n
            && factor.len() == rows * n,
        "affine_tanh_backward: gradient of {} elements, kept values of {} and {}, for {rows} rows of {n}",
        g.len(),
        tanh.len(),
        factor.len()
    );
    // gh and gx are written whole; gc accumulates.
    let mut gh = pool::reused(2 * rows * n);
    let mut gc = pool::filled(n, T::ZERO);
    let mut gx = pool::reused(rows * n);
    let rows_of = g
        .chunks_exact(n + 1)
        .zip(gh.chunks_exact_mut(2 * n))
        .zip(gx.chunks_exact_mut(n))
        .zip(h.chunks_exact(2 * n))
        .zip(
            x.chunks_exact(n)
                .zip(tanh.chunks_exact(n))
                .zip(factor.chunks_exact(n)),
        );
    for ((((g_row, gh_row), gx_row), h_row), ((x_row, th_row), e_row)) in rows_of {
        let (gy, gl) = (&g_row[..n], g_row[n]);
        let (g_raw, g_shift) = gh_row.split_at_mut(n);
        let shift = &h_row[n..];
        for j in 0..n {
            let (gyj, e, th, xv) = (gy[j], e_row[j], th_row[j], x_row[j]);
            let gu = gyj * e;
            let gs = match direction {
                AffineDirection::Forward => {
                    g_shift[j] = gyj;
                    gl + gyj * xv * e
                }
                AffineDirection::Inverse => {
                    g_shift[j] = -gu;
                    -gl + -(gyj * (xv - shift[j]) * e)
                }
            };
            gx_row[j] = gu;
            gc[j] += gs * th;
            g_raw[j] = gs * c[j] * (T::ONE - th * th);
        }
    }
    AffineGrads {
        h: gh,
        bound: gc,
        x: gx,
    }
}
