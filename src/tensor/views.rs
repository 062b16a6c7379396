//! Tensor methods that change only the layout (no data copied), and the few
//! shape changes that must copy (`concat`, `index_select`).

use super::{strided, Element, Tensor};

impl<T: Element> Tensor<T> {
    fn with_layout(&self, layout: super::Layout) -> Tensor<T> {
        Tensor {
            storage: self.storage.clone(),
            layout,
        }
    }

    /// Swaps axes `a` and `b` (a view).
    ///
    /// # Panics
    /// If an axis is out of range.
    pub fn transpose(&self, a: usize, b: usize) -> Tensor<T> {
        self.with_layout(self.layout.transpose(a, b))
    }

    /// The matrix transpose of a rank-2 tensor (a view).
    ///
    /// # Panics
    /// If the tensor is not rank 2.
    pub fn t(&self) -> Tensor<T> {
        assert_eq!(
            self.ndim(),
            2,
            "t: expected a matrix, got shape {:?}",
            self.shape()
        );
        self.transpose(0, 1)
    }

    /// Reorders axes: output axis `k` is input axis `perm[k]` (a view).
    ///
    /// # Panics
    /// If `perm` is not a permutation of the axes.
    pub fn permute(&self, perm: &[usize]) -> Tensor<T> {
        self.with_layout(self.layout.permute(perm))
    }

    /// Entries `start .. start + len` of `axis` (a view).
    ///
    /// # Panics
    /// If the axis or range is out of bounds.
    pub fn narrow(&self, axis: usize, start: usize, len: usize) -> Tensor<T> {
        self.with_layout(self.layout.narrow(axis, start, len))
    }

    /// Broadcast to `shape` by numpy rules; grown axes get stride 0 (a view).
    ///
    /// # Panics
    /// If the shapes are incompatible.
    pub fn broadcast_to(&self, shape: &[usize]) -> Tensor<T> {
        self.with_layout(self.layout.broadcast_to(shape))
    }

    /// Inserts an axis of length 1 at `axis` (a view).
    ///
    /// # Panics
    /// If `axis > ndim`.
    pub fn unsqueeze(&self, axis: usize) -> Tensor<T> {
        self.with_layout(self.layout.unsqueeze(axis))
    }

    /// Removes axis `axis`, which must have length 1 (a view).
    ///
    /// # Panics
    /// If the axis is out of range or not of length 1.
    pub fn squeeze(&self, axis: usize) -> Tensor<T> {
        self.with_layout(self.layout.squeeze(axis))
    }

    /// The same elements in row-major order under a new shape: a view when the
    /// layout is contiguous, a copy otherwise.
    ///
    /// # Panics
    /// If the element count differs (the message gives both shapes).
    pub fn reshape(&self, shape: &[usize]) -> Tensor<T> {
        match self.layout.reshape(shape) {
            Some(l) => self.with_layout(l),
            None => Tensor::from_vec(self.to_vec(), shape),
        }
    }

    /// Joins tensors along `axis` (a copy). All shapes must agree off `axis`.
    ///
    /// # Panics
    /// If `parts` is empty or the shapes disagree off `axis`.
    pub fn concat(parts: &[&Tensor<T>], axis: usize) -> Tensor<T> {
        assert!(!parts.is_empty(), "concat: no tensors to join");
        let first = parts[0].shape();
        assert!(
            axis < first.len(),
            "concat: axis {axis} out of range for shape {first:?}"
        );
        let mut shape = first.to_vec();
        shape[axis] = 0;
        for p in parts {
            let s = p.shape();
            assert!(
                s.len() == first.len()
                    && s.iter()
                        .zip(first)
                        .enumerate()
                        .all(|(k, (a, b))| k == axis || a == b),
                "concat: shapes disagree off axis {axis}: {first:?} and {s:?}"
            );
            shape[axis] += s[axis];
        }
        let outer: usize = shape[..axis].iter().product();
        let mut data = Vec::with_capacity(shape.iter().product());
        let chunks: Vec<Vec<T>> = parts.iter().map(|p| p.to_vec()).collect();
        for o in 0..outer {
            for (p, c) in parts.iter().zip(&chunks) {
                let block: usize = p.shape()[axis..].iter().product();
                data.extend_from_slice(&c[o * block..(o + 1) * block]);
            }
        }
        Tensor::from_vec(data, &shape)
    }

    /// Picks entries `indices` along `axis`, in that order (a copy): output
    /// shape is the input's with `shape[axis] = indices.len()`.
    ///
    /// # Panics
    /// If the axis or an index is out of range.
    pub fn index_select(&self, axis: usize, indices: &[usize]) -> Tensor<T> {
        assert!(
            axis < self.ndim(),
            "index_select: axis {axis} out of range for shape {:?}",
            self.shape()
        );
        let n = self.shape()[axis];
        let parts: Vec<Tensor<T>> = indices
            .iter()
            .map(|&i| {
                assert!(
                    i < n,
                    "index_select: index {i} out of range for axis {axis} of shape {:?}",
                    self.shape()
                );
                self.narrow(axis, i, 1)
            })
            .collect();
        if parts.is_empty() {
            let mut shape = self.shape().to_vec();
            shape[axis] = 0;
            return Tensor::zeros(&shape);
        }
        let refs: Vec<&Tensor<T>> = parts.iter().collect();
        Tensor::concat(&refs, axis)
    }

    /// The storage indices of every element, row-major (for kernels and tests).
    pub fn storage_offsets(&self) -> Vec<usize> {
        strided::offsets(&self.layout)
    }
}

impl<T: Element> Tensor<T> {
    /// The transpose of `index_select`: a zero tensor of `shape` into which
    /// entry `j` of `src` along `axis` is added at position `indices[j]`
    /// (repeated indices add up). `src` has `shape` with
    /// `shape[axis] = indices.len()`.
    ///
    /// # Panics
    /// If the shapes disagree or an index is out of range.
    pub fn index_add_into_zeros(
        shape: &[usize],
        axis: usize,
        indices: &[usize],
        src: &Tensor<T>,
    ) -> Tensor<T> {
        let mut expected = shape.to_vec();
        expected[axis] = indices.len();
        assert_eq!(
            src.shape(),
            &expected[..],
            "index_add: src shape {:?} does not fit {shape:?} along axis {axis}",
            src.shape()
        );
        let outer: usize = shape[..axis].iter().product();
        let inner: usize = shape[axis + 1..].iter().product();
        let (n, m) = (shape[axis], indices.len());
        let src = src.contiguous();
        let s = src
            .as_slice()
            .expect("contiguous() gives a contiguous tensor");
        let mut out = vec![T::ZERO; shape.iter().product()];
        for o in 0..outer {
            for (j, &i) in indices.iter().enumerate() {
                assert!(
                    i < n,
                    "index_add: index {i} out of range for axis {axis} of shape {shape:?}"
                );
                let (dst, from) = ((o * n + i) * inner, (o * m + j) * inner);
                for r in 0..inner {
                    out[dst + r] += s[from + r];
                }
            }
        }
        Tensor::from_vec(out, shape)
    }
}
