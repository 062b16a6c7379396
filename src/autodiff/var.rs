//! [`Var`]: a value on a tape. One method per recorded op (see the table in
//! [`op`](super::op)), plus the composed functions (mean, square,
//! log-sigmoid, masked select, squeeze and unsqueeze); the fused ops of the
//! training step (linear, linear + ReLU, the affine coupling's update) are
//! in `var/fused.rs`; the image reshapes,
//! convolution and linear algebra are in `var/structured.rs`.

use super::op::{Op, Parent, PowOp, SelectOp};
use super::tape::Tape;
use crate::tensor::blocked::BlockMask;
use crate::tensor::{Element, Layout, Tensor};
use std::sync::Arc;

mod fused;
mod structured;

/// A tensor value and, when it needs a gradient, its node on a [`Tape`].
///
/// Operations on `Var`s compute their value at once (eagerly) and, when a
/// parent is recorded, append one node. Cloning a `Var` clones an `Arc`.
///
/// # Panics
/// The tensor ops panic on shape misuse as [`Tensor`]'s do; combining `Var`s
/// of two different tapes panics.
#[derive(Clone)]
pub struct Var<'t, T: Element> {
    tape: &'t Tape<T>,
    value: Tensor<T>,
    node: Option<usize>,
}

impl<T: Element> std::fmt::Debug for Var<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Var(node {:?}, {:?})", self.node, self.value)
    }
}

impl<'t, T: Element> Var<'t, T> {
    pub(crate) fn from_parts(tape: &'t Tape<T>, value: Tensor<T>, node: Option<usize>) -> Self {
        Var { tape, value, node }
    }

    /// The computed value.
    #[inline]
    pub fn value(&self) -> &Tensor<T> {
        &self.value
    }

    /// The value, consuming the `Var`.
    pub fn into_value(self) -> Tensor<T> {
        self.value
    }

    /// The shape of the value.
    #[inline]
    pub fn shape(&self) -> &[usize] {
        self.value.shape()
    }

    /// The node index on the tape, or `None` for a constant.
    #[inline]
    pub fn node(&self) -> Option<usize> {
        self.node
    }

    /// The tape this value lives on.
    #[inline]
    pub fn tape(&self) -> &'t Tape<T> {
        self.tape
    }

    /// A constant on the same tape (data, masks): no gradient flows into it.
    pub fn constant(&self, value: Tensor<T>) -> Var<'t, T> {
        self.tape.constant(value)
    }

    /// The same value cut off from the graph: no gradient flows back through it.
    pub fn detach(&self) -> Var<'t, T> {
        self.tape.constant(self.value.clone())
    }

    fn unary(&self, value: Tensor<T>, op: impl FnOnce(Parent) -> Op<T>) -> Var<'t, T> {
        let node = self.node.map(|a| self.tape.push(op(Some(a))));
        Var::from_parts(self.tape, value, node)
    }

    fn binary(
        &self,
        rhs: &Var<'t, T>,
        value: Tensor<T>,
        op: impl FnOnce(Parent, Parent) -> Op<T>,
    ) -> Var<'t, T> {
        assert!(
            std::ptr::eq(self.tape, rhs.tape),
            "autodiff: operands live on different tapes"
        );
        let node = (self.node.is_some() || rhs.node.is_some())
            .then(|| self.tape.push(op(self.node, rhs.node)));
        Var::from_parts(self.tape, value, node)
    }

    /// `a + b`, broadcast.
    pub fn add(&self, rhs: &Var<'t, T>) -> Var<'t, T> {
        let (a_shape, b_shape) = (*self.value.layout(), *rhs.value.layout());
        self.binary(rhs, self.value.add(&rhs.value), |a, b| Op::Add {
            a,
            b,
            a_shape,
            b_shape,
        })
    }

    /// `a − b`, broadcast.
    pub fn sub(&self, rhs: &Var<'t, T>) -> Var<'t, T> {
        let (a_shape, b_shape) = (*self.value.layout(), *rhs.value.layout());
        self.binary(rhs, self.value.sub(&rhs.value), |a, b| Op::Sub {
            a,
            b,
            a_shape,
            b_shape,
        })
    }

    /// `a ⊙ b`, broadcast.
    pub fn mul(&self, rhs: &Var<'t, T>) -> Var<'t, T> {
        let out = self.value.mul(&rhs.value);
        self.binary(rhs, out, |a, b| Op::Mul {
            a,
            b,
            a_value: self.value.clone(),
            b_value: rhs.value.clone(),
        })
    }

    /// `a / b`, broadcast.
    pub fn div(&self, rhs: &Var<'t, T>) -> Var<'t, T> {
        let out = self.value.div(&rhs.value);
        let saved = out.clone();
        let a_shape = *self.value.layout();
        self.binary(rhs, out, |a, b| Op::Div {
            a,
            b,
            a_shape,
            b_value: rhs.value.clone(),
            out: saved,
        })
    }

    /// `−a`.
    pub fn neg(&self) -> Var<'t, T> {
        self.unary(self.value.neg(), |a| Op::Neg { a })
    }

    /// `a + c` for a scalar `c`.
    pub fn add_scalar(&self, c: T) -> Var<'t, T> {
        self.unary(self.value.add_scalar(c), |a| Op::AddScalar { a })
    }

    /// `c · a` for a scalar `c`.
    pub fn mul_scalar(&self, c: T) -> Var<'t, T> {
        self.unary(self.value.mul_scalar(c), |a| Op::MulScalar { a, c })
    }

    /// `exp(a)`.
    pub fn exp(&self) -> Var<'t, T> {
        let out = self.value.exp();
        let saved = out.clone();
        self.unary(out, |a| Op::Exp { a, out: saved })
    }

    /// `ln(a)`.
    pub fn ln(&self) -> Var<'t, T> {
        self.unary(self.value.ln(), |a| Op::Log {
            a,
            a_value: self.value.clone(),
        })
    }

    /// `tanh(a)`.
    pub fn tanh(&self) -> Var<'t, T> {
        let out = self.value.tanh();
        let saved = out.clone();
        self.unary(out, |a| Op::Tanh { a, out: saved })
    }

    /// `max(a, 0)`.
    pub fn relu(&self) -> Var<'t, T> {
        self.unary(self.value.relu(), |a| Op::Relu {
            a,
            a_value: self.value.clone(),
        })
    }

    /// Matrix product, 2-D or batched; see [`Tensor::matmul`] for shapes.
    pub fn matmul(&self, rhs: &Var<'t, T>) -> Var<'t, T> {
        let out = self.value.matmul(&rhs.value);
        self.binary(rhs, out, |a, b| Op::MatMul {
            a,
            b,
            a_value: self.value.clone(),
            b_value: rhs.value.clone(),
        })
    }

    /// `x·(W ⊙ M) + b` for `x: [batch, in]`, `W: [in, out]`, `b: [out]` and a
    /// constant 0/1 mask `M` (a MADE's layer): one op that multiplies only the
    /// tiles of `M` that hold ones when that saves enough
    /// ([`BlockMask::worth_blocking`]), the dense masked product otherwise.
    /// The gradient reaching `W` is zero where `M` is.
    ///
    /// # Panics
    /// If `W` does not have the mask's shape, the other shapes do not fit, or
    /// the operands live on different tapes.
    pub fn masked_linear(
        &self,
        weight: &Var<'t, T>,
        bias: &Var<'t, T>,
        mask: &Arc<BlockMask<T>>,
    ) -> Var<'t, T> {
        assert!(
            std::ptr::eq(self.tape, weight.tape) && std::ptr::eq(self.tape, bias.tape),
            "autodiff: operands live on different tapes"
        );
        // `apply` checks that the weight has the mask's shape.
        let masked_weight = mask.apply(&weight.value);
        let out = self
            .value
            .block_masked_linear(&masked_weight, &bias.value, mask);
        let recorded = self.node.is_some() || weight.node.is_some() || bias.node.is_some();
        let node = recorded.then(|| {
            self.tape.push(Op::MaskedLinear {
                x: self.node,
                weight: weight.node,
                bias: bias.node,
                x_value: self.value.clone(),
                masked_weight,
                mask: Arc::clone(mask),
            })
        });
        Var::from_parts(self.tape, out, node)
    }

    /// Sum over `axes`, keeping them as length 1.
    pub fn sum_axes_keepdim(&self, axes: &[usize]) -> Var<'t, T> {
        let out = self.value.sum_axes_keepdim(axes);
        let (in_shape, keep_shape) = (*self.value.layout(), *out.layout());
        self.unary(out, |a| Op::Sum {
            a,
            in_shape,
            keep_shape,
        })
    }

    /// Sum over `axes`, removing them (one node: the backward rule of a sum
    /// reshapes `ȳ` to the keep-dim shape itself).
    pub fn sum_axes(&self, axes: &[usize]) -> Var<'t, T> {
        let out = self.value.sum_axes(axes);
        let in_shape = *self.value.layout();
        let keep_shape = Layout::contiguous(&keepdim_shape(self.shape(), axes));
        self.unary(out, |a| Op::Sum {
            a,
            in_shape,
            keep_shape,
        })
    }

    /// Sum of every element, rank 0.
    pub fn sum_all(&self) -> Var<'t, T> {
        let axes: Vec<usize> = (0..self.value.ndim()).collect();
        self.sum_axes(&axes)
    }

    /// Mean over `axes`, removing them.
    pub fn mean_axes(&self, axes: &[usize]) -> Var<'t, T> {
        let count: usize = axes.iter().map(|&a| self.shape()[a]).product();
        self.sum_axes(axes)
            .mul_scalar(T::ONE / T::from_f64(count as f64))
    }

    /// Mean of every element, rank 0.
    pub fn mean_all(&self) -> Var<'t, T> {
        let count = self.value.numel();
        self.sum_all()
            .mul_scalar(T::ONE / T::from_f64(count as f64))
    }

    /// Repeats the value to `shape` (numpy broadcasting).
    pub fn broadcast_to(&self, shape: &[usize]) -> Var<'t, T> {
        let in_shape = *self.value.layout();
        self.unary(self.value.broadcast_to(shape), |a| Op::Broadcast {
            a,
            in_shape,
        })
    }

    /// The same elements under a new shape.
    pub fn reshape(&self, shape: &[usize]) -> Var<'t, T> {
        if self.shape() == shape {
            return self.clone();
        }
        let in_shape = *self.value.layout();
        self.unary(self.value.reshape(shape), |a| Op::Reshape { a, in_shape })
    }

    /// Reorders the axes: output axis `k` is input axis `perm[k]`.
    pub fn permute(&self, perm: &[usize]) -> Var<'t, T> {
        self.unary(self.value.permute(perm), |a| Op::Permute {
            a,
            perm: perm.to_vec(),
        })
    }

    /// Swaps two axes.
    pub fn transpose(&self, a: usize, b: usize) -> Var<'t, T> {
        let mut perm: Vec<usize> = (0..self.value.ndim()).collect();
        perm.swap(a, b);
        self.permute(&perm)
    }

    /// Entries `start .. start + len` of `axis`.
    pub fn narrow(&self, axis: usize, start: usize, len: usize) -> Var<'t, T> {
        let in_shape = *self.value.layout();
        self.unary(self.value.narrow(axis, start, len), |a| Op::Narrow {
            a,
            axis,
            start,
            in_shape,
        })
    }

    /// Joins `parts` along `axis`.
    ///
    /// # Panics
    /// If `parts` is empty, mixes tapes, or the shapes disagree off `axis`.
    pub fn concat(parts: &[&Var<'t, T>], axis: usize) -> Var<'t, T> {
        assert!(!parts.is_empty(), "concat: no tensors to join");
        let tape = parts[0].tape;
        let values: Vec<&Tensor<T>> = parts.iter().map(|p| &p.value).collect();
        let out = Tensor::concat(&values, axis);
        let recorded = parts.iter().any(|p| p.node.is_some());
        let node = recorded.then(|| {
            tape.push(Op::Concat {
                parts: parts.iter().map(|p| p.node).collect(),
                axis,
                lengths: parts.iter().map(|p| p.shape()[axis]).collect(),
            })
        });
        Var::from_parts(tape, out, node)
    }

    /// Picks entries `indices` along `axis` (a narrow, without a copy, when
    /// they form a contiguous increasing range).
    pub fn index_select(&self, axis: usize, indices: &[usize]) -> Var<'t, T> {
        let is_range = !indices.is_empty() && indices.windows(2).all(|w| w[1] == w[0] + 1);
        if is_range {
            return self.narrow(axis, indices[0], indices.len());
        }
        let in_shape = *self.value.layout();
        self.unary(self.value.index_select(axis, indices), |a| {
            Op::IndexSelect {
                a,
                axis,
                indices: indices.to_vec(),
                in_shape,
            }
        })
    }

    /// `a²`, element-wise.
    pub fn square(&self) -> Var<'t, T> {
        self.mul(self)
    }

    /// `σ(a) = 1 / (1 + e⁻ᵃ)`, the logistic sigmoid, as one node.
    /// Backward: `ā += ȳ ⊙ y(1 − y)`.
    pub fn sigmoid(&self) -> Var<'t, T> {
        let out = self.value.map(|x| T::ONE / (T::ONE + (-x).exp()));
        let saved = out.clone();
        self.unary(out, |a| Op::Sigmoid { a, out: saved })
    }

    /// `ln(1 + a)`, accurate for small `a`. Backward: `ā += ȳ / (1 + a)`.
    pub fn log1p(&self) -> Var<'t, T> {
        self.unary(self.value.map(T::ln_1p), |a| Op::Log1p {
            a,
            a_value: self.value.clone(),
        })
    }

    /// `√a`. Backward: `ā += ȳ / (2√a)` (infinite at `a = 0`).
    pub fn sqrt(&self) -> Var<'t, T> {
        let out = self.value.sqrt();
        let saved = out.clone();
        self.unary(out, |a| Op::Sqrt { a, out: saved })
    }

    /// `aᵖ` for a scalar exponent `p` (`powf` as on `f64`).
    /// Backward: `ā += ȳ ⊙ p·aᵖ⁻¹`, and 0 for `p = 0`.
    pub fn powf(&self, p: T) -> Var<'t, T> {
        self.unary(self.value.map(|x| x.powf(p)), |a| Op::PowScalar {
            a,
            a_value: self.value.clone(),
            p,
        })
    }

    /// `aᵇ` element-wise with a tensor exponent, broadcast. The exponent's
    /// gradient `ȳ ⊙ y ⊙ ln a` needs `a > 0` (it is taken as 0 where
    /// `y = 0`); the base's is `ȳ ⊙ b·aᵇ⁻¹`.
    ///
    /// # Panics
    /// If the shapes do not broadcast, or the operands live on different tapes.
    pub fn pow(&self, exponent: &Var<'t, T>) -> Var<'t, T> {
        let out = self.value.zip_map(&exponent.value, "pow", T::powf);
        let saved = out.clone();
        self.binary(exponent, out, |a, b| {
            Op::Pow(Box::new(PowOp {
                a,
                b,
                a_value: self.value.clone(),
                b_value: exponent.value.clone(),
                out: saved,
            }))
        })
    }

    /// `softplus(a) = ln(1 + eᵃ)`, computed as `max(a, 0) + ln(1 + e^−|a|)`
    /// so that no exponent is positive. Backward: `ā += ȳ ⊙ σ(a)`.
    pub fn softplus(&self) -> Var<'t, T> {
        let out = self
            .value
            .map(|x| x.max(T::ZERO) + (-x.abs()).exp().ln_1p());
        self.unary(out, |a| Op::Softplus {
            a,
            a_value: self.value.clone(),
        })
    }

    /// `log σ(a) = −softplus(−a)`, stable for large `|a|` (composed).
    pub fn log_sigmoid(&self) -> Var<'t, T> {
        self.neg().softplus().neg()
    }

    /// Leaky ReLU: `a` where `a > 0`, `slope·a` elsewhere.
    /// Backward: `ā += ȳ` or `slope·ȳ` (the slope at 0 is `slope`).
    pub fn leaky_relu(&self, slope: T) -> Var<'t, T> {
        let out = self.value.map(|x| if x > T::ZERO { x } else { slope * x });
        self.unary(out, |a| Op::LeakyRelu {
            a,
            a_value: self.value.clone(),
            slope,
        })
    }

    /// ELU: `a` where `a > 0`, `α(eᵃ − 1)` elsewhere.
    /// Backward: `ā += ȳ` or `ȳ ⊙ (y + α)`.
    ///
    /// # Source
    /// D.-A. Clevert, T. Unterthiner, S. Hochreiter, "Fast and Accurate Deep
    /// Network Learning by Exponential Linear Units (ELUs)", ICLR 2016,
    /// arXiv:1511.07289.
    pub fn elu(&self, alpha: T) -> Var<'t, T> {
        let out = self.value.map(|x| {
            if x > T::ZERO {
                x
            } else {
                alpha * (x.exp() - T::ONE)
            }
        });
        let saved = out.clone();
        self.unary(out, |a| Op::Elu {
            a,
            a_value: self.value.clone(),
            out: saved,
            alpha,
        })
    }

    /// Maximum over `axes`, keeping them as length 1. Backward: `ȳ` goes to
    /// the entries equal to the maximum, split evenly among ties.
    ///
    /// # Panics
    /// If an axis is out of range or repeated.
    pub fn max_axes_keepdim(&self, axes: &[usize]) -> Var<'t, T> {
        let out = self.value.max_axes_keepdim(axes);
        self.record_reduction(out.clone(), out, |a, a_value, out_keepdim| Op::Max {
            a,
            a_value,
            out_keepdim,
        })
    }

    /// Maximum over `axes`, removing them (see [`Var::max_axes_keepdim`]).
    ///
    /// # Panics
    /// If an axis is out of range or repeated.
    pub fn max_axes(&self, axes: &[usize]) -> Var<'t, T> {
        let out = self.value.max_axes_keepdim(axes);
        let value = out.reshape(&drop_axes(self.shape(), axes));
        self.record_reduction(value, out, |a, a_value, out_keepdim| Op::Max {
            a,
            a_value,
            out_keepdim,
        })
    }

    /// `y = log Σ exp(a)` over `axes`, keeping them as length 1, computed as
    /// `m + log Σ exp(a − m)` with `m` the maximum so no term overflows.
    /// Backward, in closed form: `ā += ȳ ⊙ softmax(a)` ([`Tensor::softmax_axes`]:
    /// weights from `a` alone, summing to 1 within an ulp; 0 where every
    /// entry of a slot is −∞, whose value is −∞).
    ///
    /// # Panics
    /// If an axis is out of range or repeated.
    ///
    /// # Derivation
    /// [`derivations::reverse_mode`](crate::derivations::reverse_mode)
    /// (docs/derivations/reverse-mode.md, "Closed forms").
    pub fn logsumexp_axes_keepdim(&self, axes: &[usize]) -> Var<'t, T> {
        let out = self.value.logsumexp_axes_keepdim(axes);
        self.record_reduction(out.clone(), out, |a, a_value, out_keepdim| Op::LogSumExp {
            a,
            a_value,
            out_keepdim,
        })
    }

    /// `log Σ exp(a)` over `axes`, removing them (see
    /// [`Var::logsumexp_axes_keepdim`]).
    ///
    /// # Panics
    /// If an axis is out of range or repeated.
    pub fn logsumexp_axes(&self, axes: &[usize]) -> Var<'t, T> {
        let out = self.value.logsumexp_axes_keepdim(axes);
        let value = out.reshape(&drop_axes(self.shape(), axes));
        self.record_reduction(value, out, |a, a_value, out_keepdim| Op::LogSumExp {
            a,
            a_value,
            out_keepdim,
        })
    }

    /// Records a reduction whose backward needs the input and the keep-dim
    /// output; `value` is the output in the shape the caller asked for.
    fn record_reduction(
        &self,
        value: Tensor<T>,
        out_keepdim: Tensor<T>,
        op: impl FnOnce(Parent, Tensor<T>, Tensor<T>) -> Op<T>,
    ) -> Var<'t, T> {
        self.unary(value, |a| op(a, self.value.clone(), out_keepdim))
    }

    /// `where(cond, on_true, on_false)`: `on_true` where `cond ≠ 0`, else
    /// `on_false`; all three broadcast together. Backward: each branch gets
    /// `ȳ` where it was picked, 0 elsewhere (summed to its shape); the
    /// condition is data and gets no gradient.
    ///
    /// # Panics
    /// If the shapes do not broadcast, or the operands live on different tapes.
    pub fn select(cond: &Tensor<T>, on_true: &Var<'t, T>, on_false: &Var<'t, T>) -> Var<'t, T> {
        let out = Tensor::select(cond, &on_true.value, &on_false.value);
        let (a_shape, b_shape) = (*on_true.value.layout(), *on_false.value.layout());
        on_true.binary(on_false, out, |a, b| {
            Op::Select(Box::new(SelectOp {
                a,
                b,
                cond: cond.clone(),
                a_shape,
                b_shape,
            }))
        })
    }

    /// The entries where `mask ≠ 0`, in row-major order, as a rank-1 `Var`
    /// (composed: a reshape to one axis, then a gather). Backward: each
    /// picked entry gets its gradient back, the others 0.
    ///
    /// # Panics
    /// If `mask` does not have this value's shape.
    pub fn masked_select(&self, mask: &Tensor<T>) -> Var<'t, T> {
        assert_eq!(
            mask.shape(),
            self.shape(),
            "masked_select: mask shape {:?} differs from value shape {:?}",
            mask.shape(),
            self.shape()
        );
        let picked: Vec<usize> = mask
            .to_vec()
            .iter()
            .enumerate()
            .filter(|(_, &m)| m != T::ZERO)
            .map(|(i, _)| i)
            .collect();
        self.reshape(&[self.value.numel()]).index_select(0, &picked)
    }

    /// Inserts an axis of length 1 at `axis` (a reshape).
    ///
    /// # Panics
    /// If `axis > ndim`.
    pub fn unsqueeze(&self, axis: usize) -> Var<'t, T> {
        let mut shape = self.shape().to_vec();
        assert!(
            axis <= shape.len(),
            "unsqueeze: axis {axis} out of range for shape {shape:?}"
        );
        shape.insert(axis, 1);
        self.reshape(&shape)
    }

    /// Removes axis `axis`, which must have length 1 (a reshape).
    ///
    /// # Panics
    /// If the axis is out of range or not of length 1.
    pub fn squeeze(&self, axis: usize) -> Var<'t, T> {
        let mut shape = self.shape().to_vec();
        assert!(
            axis < shape.len() && shape[axis] == 1,
            "squeeze: axis {axis} is not of length 1 in shape {shape:?}"
        );
        shape.remove(axis);
        self.reshape(&shape)
    }
}

/// `shape` with the entries at `axes` set to 1.
fn keepdim_shape(shape: &[usize], axes: &[usize]) -> Vec<usize> {
    let mut keep = shape.to_vec();
    for &a in axes {
        if a < keep.len() {
            keep[a] = 1;
        }
    }
    keep
}

/// `shape` without the entries at `axes`.
fn drop_axes(shape: &[usize], axes: &[usize]) -> Vec<usize> {
    shape
        .iter()
        .enumerate()
        .filter(|(k, _)| !axes.contains(k))
        .map(|(_, &n)| n)
        .collect()
}

macro_rules! impl_var_operator {
    ($trait:ident, $method:ident) => {
        impl<'t, T: Element> std::ops::$trait<&Var<'t, T>> for &Var<'t, T> {
            type Output = Var<'t, T>;
            fn $method(self, rhs: &Var<'t, T>) -> Var<'t, T> {
                Var::$method(self, rhs)
            }
        }
    };
}
impl_var_operator!(Add, add);
impl_var_operator!(Sub, sub);
impl_var_operator!(Mul, mul);
impl_var_operator!(Div, div);
