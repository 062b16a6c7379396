//! [`Var`]: a value on a tape. One method per recorded op, plus the composed
//! functions (mean, softplus, square) that the flows use.

use super::op::{Op, Parent};
use super::tape::Tape;
use crate::tensor::{Element, Tensor};

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

    /// `x·W + b` for a batch `x: [batch, in]`, `W: [in, out]`, `b: [out]`:
    /// one fused op (see [`Tensor::linear`]).
    ///
    /// # Panics
    /// If the shapes do not fit or the operands live on different tapes.
    pub fn linear(&self, weight: &Var<'t, T>, bias: &Var<'t, T>) -> Var<'t, T> {
        assert!(
            std::ptr::eq(self.tape, weight.tape) && std::ptr::eq(self.tape, bias.tape),
            "autodiff: operands live on different tapes"
        );
        let out = self.value.linear(&weight.value, &bias.value);
        let recorded = self.node.is_some() || weight.node.is_some() || bias.node.is_some();
        let node = recorded.then(|| {
            self.tape.push(Op::Linear {
                x: self.node,
                weight: weight.node,
                bias: bias.node,
                x_value: self.value.clone(),
                weight_value: weight.value.clone(),
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

    /// Sum over `axes`, removing them.
    pub fn sum_axes(&self, axes: &[usize]) -> Var<'t, T> {
        let kept = self.sum_axes_keepdim(axes);
        let shape: Vec<usize> = self
            .shape()
            .iter()
            .enumerate()
            .filter(|(k, _)| !axes.contains(k))
            .map(|(_, &n)| n)
            .collect();
        kept.reshape(&shape)
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

    /// `σ(a) = 1 / (1 + exp(−a))`, composed from recorded ops.
    pub fn sigmoid(&self) -> Var<'t, T> {
        let one = self.constant(Tensor::scalar(T::ONE));
        one.div(&self.neg().exp().add_scalar(T::ONE))
    }
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
