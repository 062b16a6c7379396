//! [`Made::solve_autoregressive`]: the sequential direction of an
//! autoregressive flow (MAF sampling, IAF density) in one pass of work, by
//! computing each hidden unit of the MADE once, in degree order. The network
//! itself, its degrees and masks, is [`made`](super::made).
//!
//! Derivation: [`derivations::made`](crate::derivations::made), "Sampling in
//! one pass of work".

use super::made::Made;
use crate::tensor::parallel::prelude::*;
use crate::tensor::{Element, Tensor};

impl<T: Element> Made<T> {
    /// Solves the autoregressive system uᵢ = step(i, outputs of feature i at
    /// u) for u, one feature at a time in degree order, computing each hidden
    /// unit exactly once. Records nothing.
    ///
    /// `step(i, rows, raw)` receives feature i, the batch rows `rows` it is
    /// asked for, and `raw`: `[rows.len(), params_per_dim]`, the outputs of
    /// feature i (column j = output j), which depend only on the u of lower
    /// degree, already solved; it returns uᵢ for those rows.
    /// Returns u `[batch, dim]` and the network's outputs at u,
    /// `[batch, params_per_dim·dim]` (what [`Made::forward`] gives on u).
    ///
    /// Why it is fast: a hidden unit of degree k depends on the features of
    /// degree ≤ k only, so it is final as soon as those are solved. With the
    /// units sorted by degree, solving the feature of degree d computes just
    /// the hidden units of degree d − 1 from the already-known prefix, so the
    /// D sequential steps cost one forward pass of work in total instead of D
    /// (the textbook loop runs the whole network D times). The batch is split
    /// across rayon's threads (the rows are independent), unless inside
    /// [`serial_kernels`](crate::tensor::parallel::serial_kernels).
    ///
    /// # Derivation
    /// [`derivations::made`](crate::derivations::made), "Sampling in one
    /// pass of work".
    ///
    /// # Panics
    /// If the MADE reads a context (use
    /// [`Made::solve_autoregressive_with_context`]).
    pub fn solve_autoregressive<F>(&self, batch: usize, step: F) -> (Tensor<T>, Tensor<T>)
    where
        F: Fn(usize, std::ops::Range<usize>, &Tensor<T>) -> Tensor<T> + Sync,
    {
        self.solve_autoregressive_with_context(batch, None, step)
    }

    /// [`Made::solve_autoregressive`] given the context `c`
    /// (`[batch, context_dim]`, `None` for an unconditional MADE): the
    /// outputs are those of [`Made::forward_with_context`] at (u, c).
    ///
    /// Why c costs one product: c·W_c enters the first layer's
    /// pre-activation of every unit, whatever its degree, and does not
    /// depend on u; it is computed once, `[batch, width of the first
    /// layer]`, and added where the solve starts each unit from its bias.
    ///
    /// # Panics
    /// If `c` is missing or not `[batch, context_dim]` for a MADE that
    /// reads a context.
    ///
    /// # Derivation
    /// [`derivations::conditioning`, "MADE"](crate::derivations::conditioning#made)
    /// (docs/derivations/conditioning.md).
    pub fn solve_autoregressive_with_context<F>(
        &self,
        batch: usize,
        c: Option<&Tensor<T>>,
        step: F,
    ) -> (Tensor<T>, Tensor<T>)
    where
        F: Fn(usize, std::ops::Range<usize>, &Tensor<T>) -> Tensor<T> + Sync,
    {
        let plan = SolvePlan::new(self);
        // c·W_c, its columns in the plan's sorted order of the first layer.
        let offset: Option<Vec<T>> = match (&self.context, c) {
            (None, _) => None,
            (Some(weight), Some(c)) => {
                assert!(
                    c.shape() == [batch, weight.value.dim(0)],
                    "Made: expected a context [{batch}, {}], got {:?}",
                    weight.value.dim(0),
                    c.shape()
                );
                let product = c.matmul(&weight.value).to_vec();
                let width = plan.first_columns.len();
                Some(
                    product
                        .chunks(width)
                        .flat_map(|row| plan.first_columns.iter().map(move |&k| row[k]))
                        .collect(),
                )
            }
            (Some(weight), None) => panic!(
                "Made: reads a context of width {}, none was given",
                weight.value.dim(0)
            ),
        };
        let first_width = plan.first_columns.len();
        let width = self.params_per_dim * self.dim;
        let mut u = vec![T::ZERO; batch * self.dim];
        let mut out = vec![T::ZERO; batch * width];
        // Rows per task: enough work per thread to pay for the split.
        // Serial inside `serial_kernels` (a piece of `FlowModel::sample`, or
        // of `FlowModel::log_prob` for an IAF).
        let threads = crate::tensor::parallel::current_num_threads().max(1);
        let rows_per_task = if crate::tensor::parallel::threads_available() && batch >= 32 {
            batch.div_ceil(threads)
        } else {
            batch.max(1)
        };
        u.par_chunks_mut(rows_per_task * self.dim)
            .zip(out.par_chunks_mut(rows_per_task * width))
            .enumerate()
            .for_each(|(task, (u_rows, out_rows))| {
                let start = task * rows_per_task;
                let n = u_rows.len() / self.dim;
                let offset = offset
                    .as_ref()
                    .map(|o| &o[start * first_width..(start + n) * first_width]);
                plan.solve_rows(self, start, offset, u_rows, out_rows, &step);
            });
        (
            Tensor::from_vec(u, &[batch, self.dim]),
            Tensor::from_vec(out, &[batch, width]),
        )
    }
}

/// The network re-indexed for [`Made::solve_autoregressive`]: features and
/// hidden units sorted by degree, so "every unit of degree ≤ k" is a prefix,
/// and the masked weights permuted to match.
struct SolvePlan<T: Element> {
    /// `features[d − 1]` = the feature of degree d.
    features: Vec<usize>,
    /// Per layer (hidden layers then output): the masked weight with rows and
    /// columns in sorted order, contiguous `[in, out]`.
    weights: Vec<Vec<T>>,
    /// Per layer: the bias in sorted column order.
    biases: Vec<Vec<T>>,
    /// Per hidden layer: `prefix[k]` = the number of units of degree ≤ k,
    /// for k in 0..=D.
    prefix: Vec<Vec<usize>>,
    /// Hidden widths.
    widths: Vec<usize>,
    /// The first layer's columns in sorted order (its weight's column of
    /// each), to sort a context's c·W_c the same way.
    first_columns: Vec<usize>,
}

impl<T: Element> SolvePlan<T> {
    fn new(made: &Made<T>) -> Self {
        let dim = made.dim;
        let mut features = vec![0; dim];
        for (i, &m) in made.input_degrees.iter().enumerate() {
            features[m - 1] = i;
        }
        let sorted_units = |degrees: &[usize]| {
            let mut units: Vec<usize> = (0..degrees.len()).collect();
            units.sort_by_key(|&k| degrees[k]);
            units
        };
        let mut rows_order = features.clone();
        let (mut weights, mut biases, mut prefix, mut widths) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut first_columns = Vec::new();
        let n_layers = made.layers.len();
        for l in 0..n_layers {
            let cols_order: Vec<usize> = if l + 1 < n_layers {
                sorted_units(&made.hidden_degrees[l])
            } else {
                // Output columns: output j of the feature of degree d at j·D + d − 1.
                (0..made.params_per_dim)
                    .flat_map(|j| features.iter().map(move |&i| j * dim + i))
                    .collect()
            };
            if l == 0 {
                first_columns.clone_from(&cols_order);
            }
            let masked = made.layers[l].weight.value.mul(made.masks[l].mask());
            let (w, n_out) = (masked.to_vec(), masked.dim(1));
            let mut permuted = Vec::with_capacity(rows_order.len() * cols_order.len());
            for &r in &rows_order {
                permuted.extend(cols_order.iter().map(|&c| w[r * n_out + c]));
            }
            let bias = made.layers[l].bias.value.to_vec();
            weights.push(permuted);
            biases.push(cols_order.iter().map(|&c| bias[c]).collect());
            if l + 1 < n_layers {
                let degrees = &made.hidden_degrees[l];
                prefix.push(
                    (0..=dim)
                        .map(|k| degrees.iter().filter(|&&m| m <= k).count())
                        .collect(),
                );
                widths.push(degrees.len());
            }
            rows_order = cols_order;
        }
        SolvePlan {
            features,
            weights,
            biases,
            prefix,
            widths,
            first_columns,
        }
    }

    /// The sequential solve for `n = u_rows.len() / dim` rows starting at
    /// batch row `start`; fills `u_rows` (`[n, dim]`) and `out_rows`
    /// (`[n, params_per_dim·dim]`), both in the caller's feature order.
    /// `offset`: these rows' c·W_c (`[n, width of the first layer]`, sorted
    /// columns), added to the first layer's pre-activations.
    fn solve_rows<F>(
        &self,
        made: &Made<T>,
        start: usize,
        offset: Option<&[T]>,
        u_rows: &mut [T],
        out_rows: &mut [T],
        step: &F,
    ) where
        F: Fn(usize, std::ops::Range<usize>, &Tensor<T>) -> Tensor<T>,
    {
        let (dim, k_out) = (made.dim, made.params_per_dim);
        let n = u_rows.len() / dim;
        if n == 0 {
            return;
        }
        let n_hidden = self.widths.len();
        // Features solved so far, in degree order: `[n, dim]`.
        let mut known = vec![T::ZERO; n * dim];
        // Per hidden layer: pre-activations and activations, `[n, width]`,
        // columns in sorted-degree order.
        let mut pre: Vec<Vec<T>> = self.widths.iter().map(|&w| vec![T::ZERO; n * w]).collect();
        let mut act: Vec<Vec<T>> = pre.clone();
        let mut raw = vec![T::ZERO; n * k_out];
        for d in 1..=dim {
            // 1. The hidden units of degree d − 1 are now computable: the
            //    inputs of degree ≤ d − 1 are solved, and so are the units of
            //    lower degree in every layer.
            for l in 0..n_hidden {
                if d == 1 {
                    break; // no hidden unit has degree 0
                }
                let (c0, c1) = (self.prefix[l][d - 2], self.prefix[l][d - 1]);
                if c1 == c0 {
                    continue;
                }
                let (source, source_width, k) = if l == 0 {
                    (&known, dim, d - 1)
                } else {
                    (&act[l - 1], self.widths[l - 1], self.prefix[l - 1][d - 1])
                };
                let width = self.widths[l];
                let (before, this) = pre.split_at_mut(l);
                let target = &mut this[0];
                // Start from the bias (and, in a residual block, the identity path).
                for r in 0..n {
                    for c in c0..c1 {
                        let mut v = self.biases[l][c];
                        if made.residual && l > 0 {
                            v += before[l - 1][r * self.widths[l - 1] + c];
                        }
                        if let (0, Some(offset)) = (l, offset) {
                            v += offset[r * width + c];
                        }
                        target[r * width + c] = v;
                    }
                }
                // pre[:, c0..c1] += source[:, ..k] · W[..k, c0..c1]
                gemm_accumulate(
                    n,
                    k,
                    c1 - c0,
                    source,
                    source_width,
                    &self.weights[l][c0..],
                    width,
                    &mut target[c0..],
                    width,
                );
                for r in 0..n {
                    for c in c0..c1 {
                        act[l][r * width + c] = target[r * width + c].max(T::ZERO);
                    }
                }
            }
            // 2. The outputs of the feature of degree d, from the units of degree < d.
            let (source, source_width, k) = if n_hidden == 0 {
                (&known, dim, d - 1)
            } else {
                (
                    &act[n_hidden - 1],
                    self.widths[n_hidden - 1],
                    self.prefix[n_hidden - 1][d - 1],
                )
            };
            let out_w = &self.weights[n_hidden];
            for r in 0..n {
                for j in 0..k_out {
                    let column = j * dim + d - 1;
                    raw[r * k_out + j] = self.biases[n_hidden][column];
                    // Without hidden layers the output layer is the first.
                    if let (0, Some(offset)) = (n_hidden, offset) {
                        raw[r * k_out + j] += offset[r * k_out * dim + column];
                    }
                }
            }
            for j in 0..k_out {
                // raw[:, j] += source[:, ..k] · W_out[..k, column of (j, d)]
                gemm_accumulate(
                    n,
                    k,
                    1,
                    source,
                    source_width,
                    &out_w[j * dim + d - 1..],
                    k_out * dim,
                    &mut raw[j..],
                    k_out,
                );
            }
            // 3. Solve the feature of degree d.
            let feature = self.features[d - 1];
            let raw_t = Tensor::from_vec(raw.clone(), &[n, k_out]);
            let solved = step(feature, start..start + n, &raw_t).to_vec();
            assert_eq!(
                solved.len(),
                n,
                "Made::solve_autoregressive: step returned {} values for {n} rows",
                solved.len()
            );
            for r in 0..n {
                known[r * dim + d - 1] = solved[r];
                u_rows[r * dim + feature] = solved[r];
                for j in 0..k_out {
                    out_rows[r * k_out * dim + j * dim + feature] = raw[r * k_out + j];
                }
            }
        }
    }
}

/// `C[m, n] += A[m, ..k]·B[..k, n]` on row-major slices with row strides
/// `lda`, `ldb`, `ldc` (A's first k columns, B's first k rows).
#[allow(clippy::too_many_arguments)]
fn gemm_accumulate<T: Element>(
    m: usize,
    k: usize,
    n: usize,
    a: &[T],
    lda: usize,
    b: &[T],
    ldb: usize,
    c: &mut [T],
    ldc: usize,
) {
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    assert!(
        a.len() >= (m - 1) * lda + k
            && b.len() >= (k - 1) * ldb + n
            && c.len() >= (m - 1) * ldc + n,
        "gemm_accumulate: slices too short for [{m}, {k}] x [{k}, {n}]"
    );
    // SAFETY: the assert above keeps every index of the three strided
    // matrices inside its slice, and `c` is a distinct `&mut` borrow.
    unsafe {
        T::gemm(
            m,
            k,
            n,
            T::ONE,
            a.as_ptr(),
            lda as isize,
            1,
            b.as_ptr(),
            ldb as isize,
            1,
            T::ONE,
            c.as_mut_ptr(),
            ldc as isize,
            1,
        );
    }
}
