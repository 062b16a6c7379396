//! The fused ops of [`Var`] that carry the MLP flows' training step: the
//! linear layer (the bias folded into the product), the linear layer with
//! its ReLU, and the affine coupling's element-wise update with its log-det.
//! Each is one node where the composition would record several, and each
//! equals that composition, values and gradients (proptests/fused.rs).
//! Where the time of the step goes: docs/benchmarks/engine.md, "Where the MLP
//! step's time goes (issue 19)".

use super::super::op::{AffineCouplingOp, Op};
use super::Var;
use crate::tensor::fused::{self, AffineDirection};
use crate::tensor::{Element, Tensor};

impl<'t, T: Element> Var<'t, T> {
    /// `x·W + b` for a batch `x: [batch, in]`, `W: [in, out]`, `b: [out]`:
    /// one fused op (see [`Tensor::linear`]).
    ///
    /// # Panics
    /// If the shapes do not fit or the operands live on different tapes.
    pub fn linear(&self, weight: &Var<'t, T>, bias: &Var<'t, T>) -> Var<'t, T> {
        self.linear_maybe_relu(weight, bias, false)
    }

    /// `max(x·W + b, 0)` for `x: [batch, in]`, `W: [in, out]`, `b: [out]`:
    /// `self.linear(W, b).relu()` in one op (an MLP's hidden layer). The
    /// ReLU is applied to the product's fresh output in place, and the
    /// backward pass masks the incoming gradient and sums it for `b̄` in one
    /// pass. Values and gradients equal the two ops' (proptests
    /// `fused_linear_relu_*`).
    ///
    /// # Panics
    /// As [`Var::linear`].
    pub fn linear_relu(&self, weight: &Var<'t, T>, bias: &Var<'t, T>) -> Var<'t, T> {
        self.linear_maybe_relu(weight, bias, true)
    }

    fn linear_maybe_relu(&self, weight: &Var<'t, T>, bias: &Var<'t, T>, relu: bool) -> Var<'t, T> {
        assert!(
            std::ptr::eq(self.tape, weight.tape) && std::ptr::eq(self.tape, bias.tape),
            "autodiff: operands live on different tapes"
        );
        let out = if relu {
            self.value.linear_relu(&weight.value, &bias.value)
        } else {
            self.value.linear(&weight.value, &bias.value)
        };
        let recorded = self.node.is_some() || weight.node.is_some() || bias.node.is_some();
        let node = recorded.then(|| {
            self.tape.push(Op::Linear {
                x: self.node,
                weight: weight.node,
                bias: bias.node,
                x_value: self.value.clone(),
                weight_value: weight.value.clone(),
                relu_out: relu.then(|| out.clone()),
            })
        });
        Var::from_parts(self.tape, out, node)
    }

    /// An affine coupling's update with RealNVP's bounded scale, as one op:
    /// from the conditioner's output `self = h = [ŝ | t]`, the bound `c` and
    /// the moved half `x`, with `s = tanh(ŝ) ⊙ c`,
    /// - [`AffineDirection::Inverse`]: `y = (x − t) ⊙ exp(−s)`, log-det `−Σⱼ sⱼ`;
    /// - [`AffineDirection::Forward`]: `y = x ⊙ exp(s) + t`, log-det `Σⱼ sⱼ`.
    ///
    /// Returns `(y, log_det)`. The same values and gradients as the
    /// composition `h.narrow(1, 0, n).tanh().mul(c)`, `h.narrow(1, n, n)`,
    /// then `x.sub(t).mul(s.neg().exp())` and `s.sum_axes(&[1]).neg()` (or
    /// `x.mul(s.exp()).add(t)` and `s.sum_axes(&[1])`), bit for bit, in one
    /// forward pass and one backward pass instead of about twelve nodes.
    ///
    /// # Shapes
    /// `h: [batch, 2n]`, `c: [n]`, `x: [batch, n]` → `y: [batch, n]`, `log_det: [batch]`.
    ///
    /// # Panics
    /// If the shapes do not fit, naming them, or the operands live on
    /// different tapes.
    ///
    /// # Derivation
    /// [`derivations::affine_coupling`, "The fused update and its backward pass"](crate::derivations::affine_coupling#the-fused-update-and-its-backward-pass)
    /// (docs/derivations/affine-coupling.md).
    pub fn affine_coupling_tanh(
        &self,
        bound: &Var<'t, T>,
        x: &Var<'t, T>,
        direction: AffineDirection,
    ) -> (Var<'t, T>, Var<'t, T>) {
        assert!(
            std::ptr::eq(self.tape, bound.tape) && std::ptr::eq(self.tape, x.tape),
            "autodiff: operands live on different tapes"
        );
        let n = bound.value.numel();
        let rows = x.value.shape().first().copied().unwrap_or(0);
        assert!(
            bound.shape() == [n] && x.shape() == [rows, n] && self.shape() == [rows, 2 * n],
            "affine_coupling_tanh: shapes do not fit: h {:?}, bound {:?}, x {:?}",
            self.shape(),
            bound.shape(),
            x.shape()
        );
        let (h, c, xv) = (
            self.value.contiguous(),
            bound.value.contiguous(),
            x.value.contiguous(),
        );
        let update = fused::affine_tanh_update(
            h.as_slice().expect("contiguous"),
            c.as_slice().expect("contiguous"),
            xv.as_slice().expect("contiguous"),
            direction,
        );
        let out = Tensor::from_vec(update.out, &[rows, n + 1]);
        let recorded = self.node.is_some() || bound.node.is_some() || x.node.is_some();
        let node = recorded.then(|| {
            self.tape
                .push(Op::AffineCoupling(Box::new(AffineCouplingOp {
                    h: self.node,
                    bound: bound.node,
                    x: x.node,
                    h_value: h,
                    bound_value: c,
                    x_value: xv,
                    tanh: Tensor::from_vec(update.tanh, &[rows, n]),
                    factor: Tensor::from_vec(update.factor, &[rows, n]),
                    direction,
                })))
        });
        let packed = Var::from_parts(self.tape, out, node);
        (
            packed.narrow(1, 0, n),
            packed.narrow(1, n, 1).reshape(&[rows]),
        )
    }
}
