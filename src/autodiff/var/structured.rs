//! The structured ops of [`Var`]: the image reshapes (squeeze and its
//! inverse), 2-D convolution, and the linear algebra of the 1x1
//! convolution's log-det (inverse, slogdet, triangular solve), each with
//! its closed-form backward rule.

use super::super::op::{Conv2dOp, Op, SolveTriangularOp};
use super::Var;
use crate::tensor::linalg::{self, Diagonal, Triangle};
use crate::tensor::{Element, SqueezePlan, Tensor};

impl<'t, T: Element> Var<'t, T> {
    /// Squeeze (space-to-depth) by `factor`, as [`Tensor::space_to_depth`]:
    /// `out[b, c·f² + i·f + j, y, x] = in[b, c, y·f + i, x·f + j]`. Composed
    /// from reshape and permute, whose backward rules move the gradient back.
    ///
    /// # Shapes
    /// `[batch, channels, height, width]` → `[batch, channels·f², height/f, width/f]`.
    ///
    /// # Panics
    /// If the value is not rank 4 or height or width is not divisible by `factor`.
    ///
    /// # Source
    /// Dinh, Sohl-Dickstein, Bengio, "Density estimation using Real NVP",
    /// ICLR 2017, arXiv:1605.08803, §3.6 (the squeezing operation).
    pub fn space_to_depth(&self, factor: usize) -> Var<'t, T> {
        let plan = SqueezePlan::space_to_depth(self.shape(), factor);
        self.reshape(&plan.split)
            .permute(&plan.perm)
            .reshape(&plan.out)
    }

    /// Unsqueeze (depth-to-space) by `factor`, the inverse of
    /// [`Var::space_to_depth`], as [`Tensor::depth_to_space`].
    ///
    /// # Shapes
    /// `[batch, channels·f², height, width]` → `[batch, channels, height·f, width·f]`.
    ///
    /// # Panics
    /// If the value is not rank 4 or the channels are not divisible by `factor²`.
    pub fn depth_to_space(&self, factor: usize) -> Var<'t, T> {
        let plan = SqueezePlan::depth_to_space(self.shape(), factor);
        self.reshape(&plan.split)
            .permute(&plan.perm)
            .reshape(&plan.out)
    }

    /// 2-D convolution of an NCHW batch, stride 1, zero `padding`, as
    /// [`Tensor::conv2d`]. Backward: the input gets the adjoint convolution
    /// of `ȳ` ([`Tensor::conv2d_input_grad`]), the weight the correlation of
    /// `ȳ` with the input ([`Tensor::conv2d_weight_grad`]), the bias `ȳ`
    /// summed over batch and pixels.
    ///
    /// # Shapes
    /// `self: [batch, in_channels, height, width]`,
    /// `weight: [out_channels, in_channels, K, K]`, `bias: [out_channels]` →
    /// `[batch, out_channels, height + 2p − K + 1, width + 2p − K + 1]`.
    ///
    /// # Panics
    /// As [`Tensor::conv2d`]; or if the operands live on different tapes.
    pub fn conv2d(
        &self,
        weight: &Var<'t, T>,
        bias: Option<&Var<'t, T>>,
        padding: usize,
    ) -> Var<'t, T> {
        let same_tape = |v: &Var<'t, T>| std::ptr::eq(self.tape, v.tape);
        assert!(
            same_tape(weight) && bias.is_none_or(same_tape),
            "autodiff: operands live on different tapes"
        );
        let out = self
            .value
            .conv2d(&weight.value, bias.map(|b| &b.value), padding);
        let bias_node = bias.and_then(|b| b.node);
        let recorded = self.node.is_some() || weight.node.is_some() || bias_node.is_some();
        let node = recorded.then(|| {
            self.tape.push(Op::Conv2d(Box::new(Conv2dOp {
                x: self.node,
                weight: weight.node,
                bias: bias_node,
                x_value: self.value.clone(),
                weight_value: weight.value.clone(),
                padding,
            })))
        });
        Var::from_parts(self.tape, out, node)
    }

    /// The matrix inverse `Y = A⁻¹` of a square matrix (LU with partial
    /// pivoting, [`linalg::inverse`]). Backward, in closed form:
    /// `Ā −= Yᵀ·Ȳ·Yᵀ`. An exactly singular `A` gives a matrix of NaN, so a
    /// training loop's finiteness check reports it.
    ///
    /// # Shapes
    /// `[n, n]` → `[n, n]`.
    ///
    /// # Panics
    /// If the value is not a square matrix.
    ///
    /// # Derivation
    /// [`derivations::reverse_mode`](crate::derivations::reverse_mode)
    /// (docs/derivations/reverse-mode.md, "Closed forms").
    pub fn inverse(&self) -> Var<'t, T> {
        let out = inverse_or_nan(&self.value);
        let saved = out.clone();
        self.unary(out, |a| Op::Inverse { a, out: saved })
    }

    /// `(sign, log|det A|)` of a square matrix, with det A = sign·exp(log|det A|):
    /// the sign as a number (it is locally constant, so it has no gradient),
    /// the log-determinant as a rank-0 `Var`. Backward, by Jacobi's formula:
    /// `Ā += ȳ·A⁻ᵀ`. A singular `A` gives `(0, −∞)` and a NaN gradient.
    ///
    /// # Shapes
    /// `[n, n]` → `[]`.
    ///
    /// # Panics
    /// If the value is not a square matrix.
    ///
    /// # Source
    /// M. B. Giles, "Collected matrix derivative results for forward and
    /// reverse mode algorithmic differentiation", Advances in Automatic
    /// Differentiation, Springer 2008 (the determinant and inverse results).
    ///
    /// # Derivation
    /// [`derivations::reverse_mode`](crate::derivations::reverse_mode)
    /// (docs/derivations/reverse-mode.md, "Closed forms").
    pub fn slogdet(&self) -> (T, Var<'t, T>) {
        let (sign, log_abs) = linalg::slogdet(&self.value);
        let var = self.unary(Tensor::scalar(log_abs), |a| Op::Slogdet {
            a,
            inverse_t: inverse_or_nan(&self.value).t(),
        });
        (sign, var)
    }

    /// Solves `T·X = B` for `X`, where `T` is the `triangle` of this square
    /// matrix `A` (the other triangle is not read) with its own diagonal or a
    /// unit one ([`linalg::solve_triangular`]). Backward:
    /// `B̄ += T⁻ᵀ·X̄` (one more triangular solve) and `Ā −= B̄·Xᵀ` on the
    /// entries of `A` the solve reads (none for the other triangle, none on a
    /// unit diagonal).
    ///
    /// # Shapes
    /// `self: [n, n]`, `rhs: [n]` or `[n, m]` → the shape of `rhs`.
    ///
    /// # Panics
    /// As [`linalg::solve_triangular`]; or if the operands live on different tapes.
    pub fn solve_triangular(
        &self,
        rhs: &Var<'t, T>,
        triangle: Triangle,
        diagonal: Diagonal,
    ) -> Var<'t, T> {
        let out = linalg::solve_triangular(&self.value, &rhs.value, triangle, diagonal);
        let saved = out.clone();
        self.binary(rhs, out, |a, b| {
            Op::SolveTriangular(Box::new(SolveTriangularOp {
                a,
                b,
                a_value: self.value.clone(),
                out: saved,
                triangle,
                diagonal,
            }))
        })
    }
}

/// `A⁻¹`, or a matrix of NaN when A is exactly singular.
fn inverse_or_nan<T: Element>(a: &Tensor<T>) -> Tensor<T> {
    linalg::inverse(a).unwrap_or_else(|| Tensor::full(a.shape(), T::from_f64(f64::NAN)))
}
