//! Tensor methods that change only the layout (no data copied), and the few
//! shape changes that must copy (`concat`, `index_select`).

use super::{pool, strided, Element, Tensor};

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
        let mut data = pool::with_capacity(shape.iter().product());
        let chunks: Vec<Tensor<T>> = parts.iter().map(|p| p.contiguous()).collect();
        for o in 0..outer {
            for c in &chunks {
                let block: usize = c.shape()[axis..].iter().product();
                let c = c
                    .as_slice()
                    .expect("contiguous() gives a contiguous tensor");
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

    /// Joins equally shaped tensors along a new axis `axis` (a copy): `n`
    /// tensors of shape `[d₀, …]` give `[d₀, …, n, …]` with `n` at `axis`,
    /// and `out.narrow(axis, i, 1).squeeze(axis) == parts[i]`.
    ///
    /// # Panics
    /// If `parts` is empty, the shapes differ (the message names `stack` and
    /// both shapes), or `axis > ndim`.
    pub fn stack(parts: &[&Tensor<T>], axis: usize) -> Tensor<T> {
        assert!(!parts.is_empty(), "stack: no tensors to join");
        let first = parts[0].shape();
        assert!(
            axis <= first.len(),
            "stack: axis {axis} out of range for shape {first:?}"
        );
        for p in parts {
            assert_eq!(
                p.shape(),
                first,
                "stack: shapes differ: {first:?} and {:?}",
                p.shape()
            );
        }
        let lifted: Vec<Tensor<T>> = parts.iter().map(|p| p.unsqueeze(axis)).collect();
        let refs: Vec<&Tensor<T>> = lifted.iter().collect();
        Tensor::concat(&refs, axis)
    }

    /// Space-to-depth (the "squeeze" of RealNVP and Glow, `factor = 2`): each
    /// `factor × factor` block of pixels becomes `factor²` channels (a copy).
    ///
    /// Channel order, as Glow's `squeeze2d` and PyTorch's `pixel_unshuffle`:
    /// `out[b, c·f² + i·f + j, y, x] = self[b, c, y·f + i, x·f + j]`, so the
    /// `f²` channels made from input channel `c` are adjacent, row `i` of the
    /// block before column `j`. Computed as a rank-6 view
    /// `[B, C, H/f, f, W/f, f]` permuted to `[B, C, f, f, H/f, W/f]`, then
    /// copied. [`Tensor::depth_to_space`] is its exact inverse.
    ///
    /// # Shapes
    /// `[batch, channels, height, width]` →
    /// `[batch, channels·f², height/f, width/f]`.
    ///
    /// # Panics
    /// If the tensor is not rank 4, `factor` is 0, or height or width is not
    /// divisible by `factor`; the message names `space_to_depth` and the shape.
    ///
    /// # Examples
    /// ```
    /// use flowzoo::tensor::Tensor;
    /// let x = Tensor::<f64>::arange(16).reshape(&[1, 1, 4, 4]);
    /// let y = x.space_to_depth(2);
    /// assert_eq!(y.shape(), &[1, 4, 2, 2]);
    /// // channel 1 = (i, j) = (0, 1): the right pixel of each block's top row
    /// assert_eq!(y.narrow(1, 1, 1).to_vec(), vec![1.0, 3.0, 9.0, 11.0]);
    /// assert_eq!(y.depth_to_space(2).to_vec(), x.to_vec());
    /// ```
    pub fn space_to_depth(&self, factor: usize) -> Tensor<T> {
        let plan = SqueezePlan::space_to_depth(self.shape(), factor);
        self.reshape(&plan.split)
            .permute(&plan.perm)
            .contiguous()
            .reshape(&plan.out)
    }

    /// Depth-to-space, the inverse of [`Tensor::space_to_depth`] (a copy):
    /// `out[b, c, y·f + i, x·f + j] = self[b, c·f² + i·f + j, y, x]`.
    ///
    /// # Shapes
    /// `[batch, channels·f², height, width]` →
    /// `[batch, channels, height·f, width·f]`.
    ///
    /// # Panics
    /// If the tensor is not rank 4, `factor` is 0, or the channel count is
    /// not divisible by `factor²`; the message names `depth_to_space` and the
    /// shape.
    pub fn depth_to_space(&self, factor: usize) -> Tensor<T> {
        let plan = SqueezePlan::depth_to_space(self.shape(), factor);
        self.reshape(&plan.split)
            .permute(&plan.perm)
            .contiguous()
            .reshape(&plan.out)
    }

    /// The entries of `axis` in reverse order (a copy: strides are unsigned,
    /// so a reversed view does not exist): `out[…, i, …] = self[…, n−1−i, …]`.
    ///
    /// # Panics
    /// If `axis` is out of range; the message names `flip` and the shape.
    pub fn flip(&self, axis: usize) -> Tensor<T> {
        assert!(
            axis < self.ndim(),
            "flip: axis {axis} out of range for shape {:?}",
            self.shape()
        );
        let n = self.shape()[axis];
        let reversed: Vec<usize> = (0..n).rev().collect();
        self.index_select(axis, &reversed)
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
        let mut out = pool::filled(shape.iter().product(), T::ZERO);
        let is_range = indices.windows(2).all(|w| w[1] == w[0] + 1);
        if is_range && !indices.is_empty() {
            // A narrow's gradient: each outer block lands as one contiguous run.
            let (start, block) = (indices[0], m * inner);
            assert!(
                start + m <= n,
                "index_add: indices {start}..{} out of range for axis {axis} of shape {shape:?}",
                start + m
            );
            for o in 0..outer {
                let dst = (o * n + start) * inner;
                out[dst..dst + block].copy_from_slice(&s[o * block..(o + 1) * block]);
            }
            return Tensor::from_vec(out, shape);
        }
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

/// The view chain behind [`Tensor::space_to_depth`] and
/// [`Tensor::depth_to_space`] (and their recorded twins on `Var`): reshape
/// to `split`, permute by `perm`, reshape to `out`. One place computes it,
/// so the kernel and the tape op cannot drift apart.
pub(crate) struct SqueezePlan {
    /// The rank-6 shape exposing the factor as its own axes.
    pub(crate) split: [usize; 6],
    /// The axis order that moves the factor axes into (or out of) channels.
    pub(crate) perm: [usize; 6],
    /// The rank-4 result shape.
    pub(crate) out: [usize; 4],
}

impl SqueezePlan {
    /// `[b, c, h, w]` → `[b, c·f², h/f, w/f]`.
    ///
    /// # Panics
    /// If `s` is not rank 4, `factor` is 0, or h or w is not divisible by it.
    pub(crate) fn space_to_depth(s: &[usize], factor: usize) -> SqueezePlan {
        assert!(
            s.len() == 4
                && factor > 0
                && s[2].is_multiple_of(factor)
                && s[3].is_multiple_of(factor),
            "space_to_depth: expected [batch, channels, height, width] with height and \
             width divisible by {factor}, got {s:?}"
        );
        let (b, c, h, w, f) = (s[0], s[1], s[2], s[3], factor);
        SqueezePlan {
            split: [b, c, h / f, f, w / f, f],
            perm: [0, 1, 3, 5, 2, 4],
            out: [b, c * f * f, h / f, w / f],
        }
    }

    /// `[b, c·f², h, w]` → `[b, c, h·f, w·f]`.
    ///
    /// # Panics
    /// If `s` is not rank 4, `factor` is 0, or the channels are not
    /// divisible by `factor²`.
    pub(crate) fn depth_to_space(s: &[usize], factor: usize) -> SqueezePlan {
        assert!(
            s.len() == 4 && factor > 0 && s[1].is_multiple_of(factor * factor),
            "depth_to_space: expected [batch, channels, height, width] with channels \
             divisible by {}, got {s:?}",
            factor * factor
        );
        let (b, c, h, w, f) = (s[0], s[1] / (factor * factor), s[2], s[3], factor);
        SqueezePlan {
            split: [b, c, f, f, h, w],
            perm: [0, 1, 4, 2, 5, 3],
            out: [b, c, h * f, w * f],
        }
    }
}
