//! Reductions over any set of axes, with or without keeping the reduced axes
//! as length 1: sum, mean, max, and logsumexp computed stably.

use super::math;
use super::strided::{for_each_row, inner_stride, rows_of};
use super::{pool, Element, Layout, Tensor};

impl<T: Element> Tensor<T> {
    /// Checks `axes` and returns the keep-dim output shape.
    fn reduced_shape(&self, op: &str, axes: &[usize]) -> Vec<usize> {
        let mut shape = self.shape().to_vec();
        for (i, &a) in axes.iter().enumerate() {
            assert!(
                a < shape.len() && !axes[..i].contains(&a),
                "{op}: axes {axes:?} invalid for shape {:?}",
                self.shape()
            );
            shape[a] = 1;
        }
        shape
    }

    /// Folds the elements along `axes` with `combine`, starting from `init`;
    /// the reduced axes stay as length 1.
    fn fold_keepdim(
        &self,
        op: &str,
        axes: &[usize],
        init: T,
        combine: impl Fn(T, T) -> T,
    ) -> Tensor<T> {
        let out_shape = self.reduced_shape(op, axes);
        // The output seen through the input's shape: stride 0 along reduced axes,
        // so walking the input walks the output slot each element folds into.
        let out_view = Layout::contiguous(&out_shape).broadcast_to(self.shape());
        let mut out = pool::filled(out_shape.iter().product(), init);
        let (n_rows, row_len) = rows_of(self.shape());
        let (is, os) = (inner_stride(self.layout()), inner_stride(&out_view));
        let src = self.storage();
        // Fast path: a contiguous input reduced over leading axes only (a
        // bias gradient, [batch, dim] → [dim]) folds whole rows into `out`.
        let leading = axes.iter().all(|&a| axes.contains(&0) && a < axes.len());
        if let (Some(data), true, false) = (self.as_slice(), leading, axes.is_empty()) {
            let block = out.len();
            if block > 0 {
                for chunk in data.chunks_exact(block) {
                    for (o, &v) in out.iter_mut().zip(chunk) {
                        *o = combine(*o, v);
                    }
                }
            }
            return Tensor::from_vec(out, &out_shape);
        }
        if self.numel() > 0 {
            for_each_row(
                self.shape(),
                [self.layout(), &out_view],
                0,
                n_rows,
                |[s, o]| {
                    if os == 0 {
                        let mut acc = out[o];
                        for i in 0..row_len {
                            acc = combine(acc, src[s + i * is]);
                        }
                        out[o] = acc;
                    } else {
                        for i in 0..row_len {
                            out[o + i * os] = combine(out[o + i * os], src[s + i * is]);
                        }
                    }
                },
            );
        }
        Tensor::from_vec(out, &out_shape)
    }

    fn drop_axes(t: Tensor<T>, axes: &[usize]) -> Tensor<T> {
        let shape: Vec<usize> = t
            .shape()
            .iter()
            .enumerate()
            .filter(|(k, _)| !axes.contains(k))
            .map(|(_, &n)| n)
            .collect();
        t.reshape(&shape)
    }

    /// Sum over `axes`, keeping them as length 1.
    ///
    /// # Panics
    /// If an axis is out of range or repeated.
    pub fn sum_axes_keepdim(&self, axes: &[usize]) -> Tensor<T> {
        self.fold_keepdim("sum", axes, T::ZERO, |a, b| a + b)
    }

    /// Sum over `axes`, removing them.
    ///
    /// # Panics
    /// If an axis is out of range or repeated.
    pub fn sum_axes(&self, axes: &[usize]) -> Tensor<T> {
        Self::drop_axes(self.sum_axes_keepdim(axes), axes)
    }

    /// Sum of every element, as a rank-0 tensor.
    pub fn sum_all(&self) -> Tensor<T> {
        let axes: Vec<usize> = (0..self.ndim()).collect();
        self.sum_axes(&axes)
    }

    /// Mean over `axes`, keeping them as length 1.
    ///
    /// # Panics
    /// If an axis is out of range or repeated.
    pub fn mean_axes_keepdim(&self, axes: &[usize]) -> Tensor<T> {
        let count: usize = axes
            .iter()
            .map(|&a| self.shape().get(a).copied().unwrap_or(1))
            .product();
        self.sum_axes_keepdim(axes)
            .mul_scalar(T::ONE / T::from_f64(count as f64))
    }

    /// Mean over `axes`, removing them.
    ///
    /// # Panics
    /// If an axis is out of range or repeated.
    pub fn mean_axes(&self, axes: &[usize]) -> Tensor<T> {
        Self::drop_axes(self.mean_axes_keepdim(axes), axes)
    }

    /// Mean of every element, as a rank-0 tensor.
    pub fn mean_all(&self) -> Tensor<T> {
        let axes: Vec<usize> = (0..self.ndim()).collect();
        self.mean_axes(&axes)
    }

    /// Maximum over `axes`, keeping them as length 1 (−∞ for an empty axis).
    ///
    /// # Panics
    /// If an axis is out of range or repeated.
    pub fn max_axes_keepdim(&self, axes: &[usize]) -> Tensor<T> {
        let neg_inf = T::from_f64(f64::NEG_INFINITY);
        self.fold_keepdim("max", axes, neg_inf, |a, b| {
            if b > a || a.to_f64().is_nan() {
                b
            } else {
                a
            }
        })
    }

    /// Maximum over `axes`, removing them.
    ///
    /// # Panics
    /// If an axis is out of range or repeated.
    pub fn max_axes(&self, axes: &[usize]) -> Tensor<T> {
        Self::drop_axes(self.max_axes_keepdim(axes), axes)
    }

    /// Minimum over `axes`, keeping them as length 1 (+∞ for an empty axis).
    ///
    /// # Panics
    /// If an axis is out of range or repeated (the message names `min` and the shape).
    pub fn min_axes_keepdim(&self, axes: &[usize]) -> Tensor<T> {
        let inf = T::from_f64(f64::INFINITY);
        self.fold_keepdim("min", axes, inf, |a, b| {
            if b < a || a.to_f64().is_nan() {
                b
            } else {
                a
            }
        })
    }

    /// Minimum over `axes`, removing them.
    ///
    /// # Panics
    /// If an axis is out of range or repeated.
    pub fn min_axes(&self, axes: &[usize]) -> Tensor<T> {
        Self::drop_axes(self.min_axes_keepdim(axes), axes)
    }

    /// `log Σ exp(x)` over `axes`, keeping them: computed as `m + log Σ exp(x − m)`
    /// with `m` the maximum, so no term overflows.
    ///
    /// # Panics
    /// If an axis is out of range or repeated.
    pub fn logsumexp_axes_keepdim(&self, axes: &[usize]) -> Tensor<T> {
        // A slot whose max is ±∞ uses shift 0: the result is then ±∞ exactly.
        let shift = self
            .max_axes_keepdim(axes)
            .map(|m| if m.is_finite() { m } else { T::ZERO });
        let sum = self.sub(&shift).exp().sum_axes_keepdim(axes);
        sum.ln().add(&shift)
    }

    /// `log Σ exp(x)` over `axes`, removing them.
    ///
    /// # Panics
    /// If an axis is out of range or repeated.
    pub fn logsumexp_axes(&self, axes: &[usize]) -> Tensor<T> {
        Self::drop_axes(self.logsumexp_axes_keepdim(axes), axes)
    }

    /// The softmax over `axes`, wᵢ = exp(xᵢ − m) / Σⱼ exp(xⱼ − m) with m the
    /// slot's maximum, same shape as `self`: the gradient of
    /// [`Tensor::logsumexp_axes_keepdim`]. The weights are computed from the
    /// inputs alone (not from a rounded log-sum), in f64 with a compensated
    /// sum, and rounded once to `T`: for finite inputs each slot's weights
    /// sum to 1 within about half an ulp of 1. A slot whose entries are all
    /// −∞ gets weights 0 (it carries no mass; 0/0 is not taken); a slot
    /// holding +∞ or NaN gets NaN weights.
    ///
    /// # Panics
    /// If an axis is out of range or repeated.
    pub fn softmax_axes(&self, axes: &[usize]) -> Tensor<T> {
        self.reduced_shape("softmax", axes);
        if self.numel() == 0 {
            return self.contiguous();
        }
        // Reduced axes last: each slot is then one contiguous row.
        let kept = (0..self.ndim()).filter(|a| !axes.contains(a));
        let perm: Vec<usize> = kept.chain(axes.iter().copied()).collect();
        let rows = self.permute(&perm).contiguous();
        let row_len: usize = axes.iter().map(|&a| self.shape()[a]).product();
        let mut out = pool::with_capacity(self.numel());
        let data = rows.as_slice().expect("contiguous() is contiguous");
        for row in data.chunks_exact(row_len) {
            let max = row
                .iter()
                .map(|v| v.to_f64())
                .fold(f64::NEG_INFINITY, f64::max);
            if max == f64::NEG_INFINITY {
                out.extend(std::iter::repeat_n(T::ZERO, row_len));
                continue;
            }
            // Σ exp(x − m) ∈ [1, n], summed with Neumaier's compensation.
            let (mut sum, mut carry) = (0.0f64, 0.0f64);
            for v in row {
                let e = math::exp(v.to_f64() - max);
                let next = sum + e;
                carry += if sum >= e {
                    (sum - next) + e
                } else {
                    (e - next) + sum
                };
                sum = next;
            }
            let sum = sum + carry;
            out.extend(
                row.iter()
                    .map(|v| T::from_f64(math::exp(v.to_f64() - max) / sum)),
            );
        }
        let permuted_shape: Vec<usize> = perm.iter().map(|&a| self.shape()[a]).collect();
        let mut inverse = vec![0; perm.len()];
        for (k, &a) in perm.iter().enumerate() {
            inverse[a] = k;
        }
        Tensor::from_vec(out, &permuted_shape)
            .permute(&inverse)
            .contiguous()
    }

    /// Sums a broadcast result back to `shape`: the gradient of a broadcast is
    /// the sum over the axes it repeated along.
    ///
    /// # Panics
    /// If `shape` does not broadcast to this tensor's shape.
    pub fn sum_to_shape(&self, shape: &[usize]) -> Tensor<T> {
        if self.shape() == shape {
            return self.clone();
        }
        let lead = self.ndim().checked_sub(shape.len()).unwrap_or_else(|| {
            panic!(
                "sum_to_shape: cannot reduce shape {:?} to {shape:?}",
                self.shape()
            )
        });
        let mut axes: Vec<usize> = (0..lead).collect();
        for (k, &n) in shape.iter().enumerate() {
            let m = self.shape()[lead + k];
            if n == 1 && m != 1 {
                axes.push(lead + k);
            } else {
                assert_eq!(
                    n,
                    m,
                    "sum_to_shape: cannot reduce shape {:?} to {shape:?}",
                    self.shape()
                );
            }
        }
        self.sum_axes_keepdim(&axes).reshape(shape)
    }
}
