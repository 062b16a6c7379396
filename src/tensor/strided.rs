//! Iteration over layouts: a contiguous block at once when there is one, and
//! otherwise row by row, where a *row* is the last axis.
//!
//! Kernels walk several layouts of one shape in lockstep (an output and its
//! operands, each possibly transposed or broadcast). Stepping the outer axes
//! with a carry and the last axis with its stride keeps the inner loop tight
//! and lets a kernel split the rows across threads.

use super::layout::{Layout, MAX_DIMS};

/// The shape split into rows: `(number of rows, row length)`. A rank-0 tensor
/// is one row of length 1.
#[inline]
pub fn rows_of(shape: &[usize]) -> (usize, usize) {
    match shape.split_last() {
        None => (1, 1),
        Some((&last, outer)) => (outer.iter().product(), last),
    }
}

/// The stride of the last axis (0 for rank 0).
#[inline]
pub fn inner_stride(layout: &Layout) -> usize {
    layout.strides().last().copied().unwrap_or(0)
}

/// Calls `f(row_starts)` for rows `start_row .. start_row + n_rows` of `shape`,
/// in row-major order, where `row_starts[j]` is the storage index of the
/// row's first element in `layouts[j]`. Every layout must have shape `shape`.
pub fn for_each_row<const N: usize>(
    shape: &[usize],
    layouts: [&Layout; N],
    start_row: usize,
    n_rows: usize,
    mut f: impl FnMut([usize; N]),
) {
    if n_rows == 0 {
        return;
    }
    let outer = shape.len().saturating_sub(1);
    // The multi-index of `start_row` over the outer axes, last axis fastest.
    let mut index = [0usize; MAX_DIMS];
    let mut rest = start_row;
    for k in (0..outer).rev() {
        index[k] = rest % shape[k];
        rest /= shape[k];
    }
    let mut starts = [0usize; N];
    for j in 0..N {
        starts[j] = layouts[j].offset()
            + (0..outer)
                .map(|k| index[k] * layouts[j].strides()[k])
                .sum::<usize>();
    }
    for row in 0..n_rows {
        f(starts);
        if row + 1 == n_rows {
            break;
        }
        // Step the outer multi-index with a carry, moving each start along.
        let mut k = outer;
        while k > 0 {
            k -= 1;
            index[k] += 1;
            for j in 0..N {
                starts[j] += layouts[j].strides()[k];
            }
            if index[k] < shape[k] {
                break;
            }
            for j in 0..N {
                starts[j] -= shape[k] * layouts[j].strides()[k];
            }
            index[k] = 0;
        }
    }
}

/// The storage indices of every element of `layout`, in row-major order.
pub fn offsets(layout: &Layout) -> Vec<usize> {
    let (n_rows, row_len) = rows_of(layout.shape());
    let stride = inner_stride(layout);
    let mut out = Vec::with_capacity(n_rows * row_len);
    for_each_row(layout.shape(), [layout], 0, n_rows, |[start]| {
        out.extend((0..row_len).map(|i| start + i * stride));
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_of_a_transpose_walk_columns() {
        let l = Layout::contiguous(&[2, 3]).transpose(0, 1);
        assert_eq!(offsets(&l), vec![0, 3, 1, 4, 2, 5]);
    }

    #[test]
    fn rows_can_start_midway() {
        let l = Layout::contiguous(&[2, 2, 2]);
        let mut seen = vec![];
        for_each_row(l.shape(), [&l], 1, 3, |[s]| seen.push(s));
        assert_eq!(seen, vec![2, 4, 6]);
    }

    #[test]
    fn broadcast_rows_repeat() {
        let l = Layout::contiguous(&[3]).broadcast_to(&[2, 3]);
        assert_eq!(offsets(&l), vec![0, 1, 2, 0, 1, 2]);
    }
}
