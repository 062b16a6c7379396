//! [`Layout`]: shape + strides + offset, and every view as a pure `Layout -> Layout` function.
//!
//! See [`derivations::tensor_layout`](crate::derivations::tensor_layout)
//! (docs/derivations/tensor-layout.md) for the arithmetic with worked examples.

/// The largest rank a tensor may have. Images are rank 4 (NCHW); the 2x2
/// squeeze goes through a rank-6 view, so six is enough for the whole zoo.
pub const MAX_DIMS: usize = 6;

/// How a tensor's elements sit in its storage: element `[i₀, …, iₙ₋₁]` lives at
/// `offset + Σₖ iₖ·strides[k]`.
///
/// Invariants (every constructor and view keeps them; kernels rely on them):
/// 1. `ndim ≤ MAX_DIMS`, and only the first `ndim` entries of `shape` and
///    `strides` mean anything (the rest are zero), so a `Layout` is `Copy` and
///    a view allocates nothing.
/// 2. Strides count elements, not bytes; a stride of 0 marks a broadcast axis
///    (many indices, one element).
/// 3. For a non-empty tensor, every valid index lands inside the storage
///    (checked where a `Tensor` is built from a layout).
/// 4. A layout is *contiguous* when it is row-major with no gaps: axes of
///    length 1 may have any stride, since they are never stepped along.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Layout {
    ndim: usize,
    shape: [usize; MAX_DIMS],
    strides: [usize; MAX_DIMS],
    offset: usize,
}

impl std::fmt::Debug for Layout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Layout {{ shape: {:?}, strides: {:?}, offset: {} }}",
            self.shape(),
            self.strides(),
            self.offset
        )
    }
}

/// Row-major strides of `shape`: the last axis has stride 1.
pub fn row_major_strides(shape: &[usize]) -> [usize; MAX_DIMS] {
    let mut strides = [0; MAX_DIMS];
    let mut acc = 1;
    for k in (0..shape.len()).rev() {
        strides[k] = acc;
        acc *= shape[k];
    }
    strides
}

/// The numpy broadcast of two shapes: align on the right; each pair of sizes
/// must be equal or contain a 1.
///
/// # Panics
/// If the shapes cannot broadcast; the message names `op` and both shapes.
pub fn broadcast_shapes(op: &str, lhs: &[usize], rhs: &[usize]) -> Vec<usize> {
    let ndim = lhs.len().max(rhs.len());
    let mut out = vec![0; ndim];
    for k in 0..ndim {
        let l = if k + lhs.len() >= ndim {
            lhs[k + lhs.len() - ndim]
        } else {
            1
        };
        let r = if k + rhs.len() >= ndim {
            rhs[k + rhs.len() - ndim]
        } else {
            1
        };
        out[k] = if l == r || r == 1 {
            l
        } else if l == 1 {
            r
        } else {
            panic!("{op}: shapes do not broadcast: lhs {lhs:?}, rhs {rhs:?}");
        };
    }
    out
}

impl Layout {
    /// The row-major contiguous layout of `shape`, at offset 0.
    ///
    /// # Panics
    /// If `shape` has more than [`MAX_DIMS`] axes.
    pub fn contiguous(shape: &[usize]) -> Layout {
        assert!(
            shape.len() <= MAX_DIMS,
            "layout: rank {} exceeds MAX_DIMS = {MAX_DIMS}: shape {shape:?}",
            shape.len()
        );
        let mut s = [0; MAX_DIMS];
        s[..shape.len()].copy_from_slice(shape);
        Layout {
            ndim: shape.len(),
            shape: s,
            strides: row_major_strides(shape),
            offset: 0,
        }
    }

    /// Builds a layout from explicit parts. The caller keeps invariant 3.
    ///
    /// # Panics
    /// If `shape` and `strides` differ in length or exceed [`MAX_DIMS`].
    pub fn from_parts(shape: &[usize], strides: &[usize], offset: usize) -> Layout {
        assert_eq!(
            shape.len(),
            strides.len(),
            "layout: shape {shape:?} and strides {strides:?} differ in rank"
        );
        let mut l = Layout::contiguous(shape);
        l.strides[..strides.len()].copy_from_slice(strides);
        l.offset = offset;
        l
    }

    /// The sizes of the axes.
    #[inline]
    pub fn shape(&self) -> &[usize] {
        &self.shape[..self.ndim]
    }

    /// The strides of the axes, in elements.
    #[inline]
    pub fn strides(&self) -> &[usize] {
        &self.strides[..self.ndim]
    }

    /// Where element `[0, …, 0]` lives in the storage.
    #[inline]
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// The number of axes.
    #[inline]
    pub fn ndim(&self) -> usize {
        self.ndim
    }

    /// The number of elements (1 for a scalar of rank 0).
    #[inline]
    pub fn numel(&self) -> usize {
        self.shape().iter().product()
    }

    /// One past the largest storage index this layout touches (0 if empty).
    pub fn storage_span(&self) -> usize {
        if self.numel() == 0 {
            return 0;
        }
        self.offset
            + self
                .shape()
                .iter()
                .zip(self.strides())
                .map(|(&n, &s)| (n - 1) * s)
                .sum::<usize>()
            + 1
    }

    /// True when the elements are row-major with no gaps (invariant 4).
    pub fn is_contiguous(&self) -> bool {
        let mut expected = 1;
        for k in (0..self.ndim).rev() {
            if self.shape[k] != 1 && self.strides[k] != expected {
                return false;
            }
            expected *= self.shape[k];
        }
        true
    }

    /// Storage index of a multi-index.
    ///
    /// # Panics
    /// If the index has the wrong rank or is out of range.
    pub fn index_of(&self, index: &[usize]) -> usize {
        assert_eq!(
            index.len(),
            self.ndim,
            "index: rank of index {index:?} differs from shape {:?}",
            self.shape()
        );
        let mut at = self.offset;
        for k in 0..self.ndim {
            assert!(
                index[k] < self.shape[k],
                "index: {index:?} out of range for shape {:?}",
                self.shape()
            );
            at += index[k] * self.strides[k];
        }
        at
    }

    /// Swaps two axes: a transpose is a swap of two strides, no data moves.
    ///
    /// # Panics
    /// If an axis is out of range.
    pub fn transpose(&self, a: usize, b: usize) -> Layout {
        assert!(
            a < self.ndim && b < self.ndim,
            "transpose: axes ({a}, {b}) out of range for shape {:?}",
            self.shape()
        );
        let mut l = *self;
        l.shape.swap(a, b);
        l.strides.swap(a, b);
        l
    }

    /// Reorders the axes: output axis `k` is input axis `perm[k]`.
    ///
    /// # Panics
    /// If `perm` is not a permutation of `0..ndim`.
    pub fn permute(&self, perm: &[usize]) -> Layout {
        let mut seen = [false; MAX_DIMS];
        assert!(
            perm.len() == self.ndim
                && perm
                    .iter()
                    .all(|&p| p < self.ndim && !std::mem::replace(&mut seen[p], true)),
            "permute: {perm:?} is not a permutation of the axes of shape {:?}",
            self.shape()
        );
        let mut l = *self;
        for (k, &p) in perm.iter().enumerate() {
            l.shape[k] = self.shape[p];
            l.strides[k] = self.strides[p];
        }
        l
    }

    /// Keeps `len` entries of `axis` starting at `start`: an offset shift.
    ///
    /// # Panics
    /// If the axis or the range is out of bounds.
    pub fn narrow(&self, axis: usize, start: usize, len: usize) -> Layout {
        assert!(
            axis < self.ndim && start + len <= self.shape[axis],
            "narrow: axis {axis}, range {start}..{} out of bounds for shape {:?}",
            start + len,
            self.shape()
        );
        let mut l = *self;
        if len > 0 {
            l.offset += start * self.strides[axis];
        }
        l.shape[axis] = len;
        l
    }

    /// Broadcasts to `shape` (numpy rules): new leading axes and size-1 axes
    /// that grow get stride 0.
    ///
    /// # Panics
    /// If this shape cannot broadcast to `shape`.
    pub fn broadcast_to(&self, shape: &[usize]) -> Layout {
        assert!(
            shape.len() >= self.ndim && shape.len() <= MAX_DIMS,
            "broadcast_to: cannot broadcast shape {:?} to {shape:?}",
            self.shape()
        );
        let lead = shape.len() - self.ndim;
        let mut l = Layout::contiguous(shape);
        l.offset = self.offset;
        for k in 0..shape.len() {
            if k < lead {
                l.strides[k] = 0;
            } else {
                let n = self.shape[k - lead];
                if n == shape[k] {
                    l.strides[k] = self.strides[k - lead];
                } else if n == 1 {
                    l.strides[k] = 0;
                } else {
                    panic!(
                        "broadcast_to: cannot broadcast shape {:?} to {shape:?}",
                        self.shape()
                    );
                }
            }
        }
        l
    }

    /// A new axis of length 1 at `axis`.
    ///
    /// # Panics
    /// If `axis > ndim` or the rank would exceed [`MAX_DIMS`].
    pub fn unsqueeze(&self, axis: usize) -> Layout {
        assert!(
            axis <= self.ndim && self.ndim < MAX_DIMS,
            "unsqueeze: axis {axis} out of range for shape {:?}",
            self.shape()
        );
        let mut l = *self;
        for k in (axis..self.ndim).rev() {
            l.shape[k + 1] = self.shape[k];
            l.strides[k + 1] = self.strides[k];
        }
        l.shape[axis] = 1;
        l.strides[axis] = 0;
        l.ndim += 1;
        l
    }

    /// Removes an axis of length 1.
    ///
    /// # Panics
    /// If `axis` is out of range or its length is not 1.
    pub fn squeeze(&self, axis: usize) -> Layout {
        assert!(
            axis < self.ndim && self.shape[axis] == 1,
            "squeeze: axis {axis} of shape {:?} is not of length 1",
            self.shape()
        );
        let mut l = *self;
        for k in axis..self.ndim - 1 {
            l.shape[k] = self.shape[k + 1];
            l.strides[k] = self.strides[k + 1];
        }
        l.ndim -= 1;
        l.shape[l.ndim] = 0;
        l.strides[l.ndim] = 0;
        l
    }

    /// A view with a new shape of the same element count, when the strides
    /// allow one (here: when the layout is contiguous); `None` otherwise, and
    /// the caller copies.
    ///
    /// # Panics
    /// If the element counts differ.
    pub fn reshape(&self, shape: &[usize]) -> Option<Layout> {
        let n: usize = shape.iter().product();
        assert_eq!(
            n,
            self.numel(),
            "reshape: element count differs: from {:?} to {shape:?}",
            self.shape()
        );
        if self.is_contiguous() {
            let mut l = Layout::contiguous(shape);
            l.offset = self.offset;
            Some(l)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_swaps_strides() {
        let l = Layout::contiguous(&[2, 3]);
        let t = l.transpose(0, 1);
        assert_eq!(t.shape(), &[3, 2]);
        assert_eq!(t.strides(), &[1, 3]);
        assert!(!t.is_contiguous());
    }

    #[test]
    fn size_one_axes_do_not_break_contiguity() {
        let l = Layout::from_parts(&[1, 3], &[99, 1], 0);
        assert!(l.is_contiguous());
    }

    #[test]
    fn broadcast_sets_stride_zero() {
        let l = Layout::contiguous(&[3, 1]).broadcast_to(&[2, 3, 4]);
        assert_eq!(l.strides(), &[0, 1, 0]);
    }

    #[test]
    fn narrow_moves_the_offset() {
        let l = Layout::contiguous(&[4, 5]).narrow(0, 2, 2);
        assert_eq!(l.offset(), 10);
        assert_eq!(l.storage_span(), 20);
    }

    #[test]
    fn unsqueeze_then_squeeze_is_identity() {
        let l = Layout::contiguous(&[2, 3]);
        assert_eq!(l.unsqueeze(1).squeeze(1), l);
    }
}
