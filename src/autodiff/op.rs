//! The recorded operations. Each variant names its parents (`None` when a
//! parent needs no gradient) and keeps the values its backward rule needs:
//! values, not closures over copies.
//!
//! The table pairs each op's forward map with its backward rule (the
//! vector-Jacobian product, VJP): `ȳ` is the gradient arriving at the output,
//! `ā` the one sent to parent `a`; `⊙` and `/` are element-wise. The rules are
//! computed in the one `match` of `backward.rs`, each arm headed by the same
//! formula. Every binary element-wise op broadcasts, and each operand's share
//! of the gradient is summed back to its own shape (`sum_to_shape`).
//!
//! | op | forward | backward (VJP) | keeps |
//! | --- | --- | --- | --- |
//! | `Leaf` | a parameter or input that wants a gradient | (the gradient is the result) | nothing |
//! | `Add`, `Sub` | `a ± b` | `ā += ȳ`, `b̄ ±= ȳ` | both shapes |
//! | `Mul` | `a ⊙ b` | `ā += ȳ ⊙ b`, `b̄ += ȳ ⊙ a` | both values |
//! | `Div` | `a / b` | `ā += ȳ / b`, `b̄ −= ȳ ⊙ y / b` | `a`'s shape, `b`, the output |
//! | `Pow` | `a ^ b` (`a > 0`) | `ā += ȳ ⊙ b ⊙ a^(b−1)`, `b̄ += ȳ ⊙ y ⊙ ln a` | `a`, `b`, the output |
//! | `PowScalar` | `a ^ p`, scalar `p` | `ā += ȳ ⊙ p ⊙ a^(p−1)` | `a`, `p` |
//! | `Neg` | `−a` | `ā −= ȳ` | nothing |
//! | `AddScalar`, `MulScalar` | `a + c`, `c·a` | `ā += ȳ`, `ā += c·ȳ` | `c` |
//! | `Exp` | `exp(a)` | `ā += ȳ ⊙ y` | the output |
//! | `Log` | `ln(a)` | `ā += ȳ / a` | `a` |
//! | `Log1p` | `ln(1 + a)` | `ā += ȳ / (1 + a)` | `a` |
//! | `Sqrt` | `√a` | `ā += ȳ / (2y)` | the output |
//! | `Tanh` | `tanh(a)` | `ā += ȳ ⊙ (1 − y²)` | the output |
//! | `Sigmoid` | `σ(a) = 1 / (1 + e⁻ᵃ)` | `ā += ȳ ⊙ y(1 − y)` | the output |
//! | `Softplus` | `ln(1 + eᵃ)`, computed `max(a, 0) + ln(1 + e^−abs(a))` | `ā += ȳ ⊙ σ(a)` | `a` |
//! | `Relu` | `max(a, 0)` | `ā += ȳ ⊙ 1(a > 0)` | `a` |
//! | `LeakyRelu` | `a` if `a > 0` else `s·a` | `ā += ȳ` or `s·ȳ` | `a`, `s` |
//! | `Elu` | `a` if `a > 0` else `α(eᵃ − 1)` | `ā += ȳ` or `ȳ ⊙ (y + α)` | `a`, the output, `α` |
//! | `MatMul` | `A·B`, 2-D or batched | `Ā += Ȳ·Bᵀ`, `B̄ += Aᵀ·Ȳ` | both values |
//! | `Linear` | `x·W + b` (fused for speed) | `x̄ += Ȳ·Wᵀ`, `W̄ += xᵀ·Ȳ`, `b̄ += Σ_batch Ȳ` | `x` and `W` |
//! | `Linear` with `relu_out` | `y = max(x·W + b, 0)` (an MLP's hidden layer, fused) | `Ḡ = Ȳ ⊙ 1(y > 0)`, then as `Linear` with `Ḡ` | `x`, `W`, `y` |
//! | `MaskedLinear` | `x·(W ⊙ M) + b`, `M` a constant 0/1 mask (a MADE layer), skipping `M`'s zero blocks | `x̄ += Ȳ·(W ⊙ M)ᵀ`, `W̄ += (xᵀ·Ȳ) ⊙ M`, `b̄ += Σ_batch Ȳ` | `x`, `W ⊙ M`, the mask |
//! | `AffineCoupling` | `[y | ℓ]` from `h = [ŝ | t]`, bound `c`, `x`: `s = tanh(ŝ) ⊙ c`, `y = (x − t) ⊙ e^−s`, `ℓ = −Σⱼ sⱼ` (inverse) or `y = x ⊙ eˢ + t`, `ℓ = Σⱼ sⱼ` (forward), one pass | `x̄ = ȳ ⊙ e^∓s`, `t̄ = ∓x̄`, `s̄ = ±ℓ̄ ± ȳ ⊙ u ⊙ e^∓s`, `c̄ = Σ_batch s̄ ⊙ tanh ŝ`, `ŝ̄ = s̄ ⊙ c ⊙ (1 − tanh² ŝ)` | `h`, `c`, `x`, `tanh ŝ`, `e^∓s` |
//! | `Conv2d` | `conv2d(x, W) + b` on NCHW | `x̄` = the adjoint convolution of `Ȳ`, `W̄ = Σ Ȳ ⋆ x`, `b̄ = Σ Ȳ` | `x`, `W`, padding |
//! | `Sum` | sum over axes | `ā += ȳ` repeated along the summed axes | input and keep-dim shapes |
//! | `Max` | maximum over axes | `ā += ȳ` at the maxima, split evenly among ties | `a`, the keep-dim output |
//! | `LogSumExp` | `log Σ exp(a)` over axes, stable | `ā += ȳ ⊙ softmax(a)`, from `a` alone; 0 for a slot of −∞ only | `a`, the keep-dim output |
//! | `Select` | `where(c, a, b)` | `ā += ȳ ⊙ 1(c ≠ 0)`, `b̄ += ȳ ⊙ 1(c = 0)` | the condition, both shapes |
//! | `Broadcast` | `a` repeated to a larger shape | `ā += ȳ` summed over the broadcast axes | input shape |
//! | `Reshape` | same elements, new shape | `ā += ȳ` reshaped back | input shape |
//! | `Permute` | axes reordered (transpose) | `ā += ȳ` permuted back | the permutation |
//! | `Narrow` | a slice along one axis | `ā += ȳ` placed in the slice, zeros elsewhere | axis, start, input shape |
//! | `Concat` | tensors joined along an axis | each part `+=` its slice of `ȳ` | each part's length |
//! | `IndexSelect` | entries picked along an axis (gather) | `ā += ȳ` added back at the indices | the indices, input shape |
//! | `Inverse` | `Y = A⁻¹` | `Ā −= Yᵀ·Ȳ·Yᵀ` | the output |
//! | `Slogdet` | `y = log abs(det A)` | `Ā += ȳ·A⁻ᵀ` | `A⁻ᵀ` |
//! | `SolveTriangular` | `X = T⁻¹·B`, `T` a triangle of `A` | `B̄ += T⁻ᵀ·X̄`, `Ā −= B̄·Xᵀ` on the triangle read | `A`, the output, which triangle |
//!
//! Composed from these in `var.rs` (no variant of their own): `mean`,
//! `square`, `log_sigmoid`, `masked_select`, `unsqueeze` / `squeeze`, and the
//! image reshapes `space_to_depth` / `depth_to_space` (reshape + permute).
//! An op earns a variant for speed (`Linear` with its fused ReLU, `MaskedLinear`, `MatMul`, `Conv2d`, one node
//! instead of several for `Sigmoid`) or for numerical stability (`Softplus`,
//! `LogSumExp`, and the closed forms of `Inverse` and `Slogdet`, which never
//! differentiate through the LU factorisation).

use crate::tensor::blocked::{BlockMask, MaskedWeight};
use crate::tensor::fused::AffineDirection;
use crate::tensor::linalg::{Diagonal, Triangle};
use crate::tensor::{Element, Layout, Tensor};
use std::sync::Arc;

/// A parent's node index on the tape, or `None` when it needs no gradient.
pub type Parent = Option<usize>;

/// One recorded operation; see the module table.
#[allow(missing_docs)]
pub enum Op<T: Element> {
    Leaf,
    Add {
        a: Parent,
        b: Parent,
        a_shape: Layout,
        b_shape: Layout,
    },
    Sub {
        a: Parent,
        b: Parent,
        a_shape: Layout,
        b_shape: Layout,
    },
    Mul {
        a: Parent,
        b: Parent,
        a_value: Tensor<T>,
        b_value: Tensor<T>,
    },
    Div {
        a: Parent,
        b: Parent,
        a_shape: Layout,
        b_value: Tensor<T>,
        out: Tensor<T>,
    },
    Pow(Box<PowOp<T>>),
    PowScalar {
        a: Parent,
        a_value: Tensor<T>,
        p: T,
    },
    Neg {
        a: Parent,
    },
    AddScalar {
        a: Parent,
    },
    MulScalar {
        a: Parent,
        c: T,
    },
    Exp {
        a: Parent,
        out: Tensor<T>,
    },
    Log {
        a: Parent,
        a_value: Tensor<T>,
    },
    Log1p {
        a: Parent,
        a_value: Tensor<T>,
    },
    Sqrt {
        a: Parent,
        out: Tensor<T>,
    },
    Tanh {
        a: Parent,
        out: Tensor<T>,
    },
    Sigmoid {
        a: Parent,
        out: Tensor<T>,
    },
    Softplus {
        a: Parent,
        a_value: Tensor<T>,
    },
    Relu {
        a: Parent,
        a_value: Tensor<T>,
    },
    LeakyRelu {
        a: Parent,
        a_value: Tensor<T>,
        slope: T,
    },
    Elu {
        a: Parent,
        a_value: Tensor<T>,
        out: Tensor<T>,
        alpha: T,
    },
    MatMul {
        a: Parent,
        b: Parent,
        a_value: Tensor<T>,
        b_value: Tensor<T>,
    },
    Linear {
        x: Parent,
        weight: Parent,
        bias: Parent,
        x_value: Tensor<T>,
        weight_value: Tensor<T>,
        /// The output, kept when a ReLU was fused onto it (`LinearRelu`).
        relu_out: Option<Tensor<T>>,
    },
    MaskedLinear {
        x: Parent,
        weight: Parent,
        bias: Parent,
        x_value: Tensor<T>,
        masked_weight: MaskedWeight<T>,
        mask: Arc<BlockMask<T>>,
    },
    Conv2d(Box<Conv2dOp<T>>),
    AffineCoupling(Box<AffineCouplingOp<T>>),
    Sum {
        a: Parent,
        in_shape: Layout,
        keep_shape: Layout,
    },
    Max {
        a: Parent,
        a_value: Tensor<T>,
        out_keepdim: Tensor<T>,
    },
    LogSumExp {
        a: Parent,
        a_value: Tensor<T>,
        out_keepdim: Tensor<T>,
    },
    Select(Box<SelectOp<T>>),
    Broadcast {
        a: Parent,
        in_shape: Layout,
    },
    Reshape {
        a: Parent,
        in_shape: Layout,
    },
    Permute {
        a: Parent,
        perm: Vec<usize>,
    },
    Narrow {
        a: Parent,
        axis: usize,
        start: usize,
        in_shape: Layout,
    },
    Concat {
        parts: Vec<Parent>,
        axis: usize,
        lengths: Vec<usize>,
    },
    IndexSelect {
        a: Parent,
        axis: usize,
        indices: Vec<usize>,
        in_shape: Layout,
    },
    Inverse {
        a: Parent,
        out: Tensor<T>,
    },
    Slogdet {
        a: Parent,
        inverse_t: Tensor<T>,
    },
    SolveTriangular(Box<SolveTriangularOp<T>>),
}

impl<T: Element> Op<T> {
    /// The variant's name ("Linear", "Tanh" ...): what a profile
    /// ([`profile`](super::profile)) files the op's time under.
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Leaf => "Leaf",
            Op::Add { .. } => "Add",
            Op::Sub { .. } => "Sub",
            Op::Mul { .. } => "Mul",
            Op::Div { .. } => "Div",
            Op::Pow(..) => "Pow",
            Op::PowScalar { .. } => "PowScalar",
            Op::Neg { .. } => "Neg",
            Op::AddScalar { .. } => "AddScalar",
            Op::MulScalar { .. } => "MulScalar",
            Op::Exp { .. } => "Exp",
            Op::Log { .. } => "Log",
            Op::Log1p { .. } => "Log1p",
            Op::Sqrt { .. } => "Sqrt",
            Op::Tanh { .. } => "Tanh",
            Op::Sigmoid { .. } => "Sigmoid",
            Op::Softplus { .. } => "Softplus",
            Op::Relu { .. } => "Relu",
            Op::LeakyRelu { .. } => "LeakyRelu",
            Op::Elu { .. } => "Elu",
            Op::MatMul { .. } => "MatMul",
            Op::Linear { .. } => "Linear",
            Op::MaskedLinear { .. } => "MaskedLinear",
            Op::Conv2d(..) => "Conv2d",
            Op::AffineCoupling(..) => "AffineCoupling",
            Op::Sum { .. } => "Sum",
            Op::Max { .. } => "Max",
            Op::LogSumExp { .. } => "LogSumExp",
            Op::Select(..) => "Select",
            Op::Broadcast { .. } => "Broadcast",
            Op::Reshape { .. } => "Reshape",
            Op::Permute { .. } => "Permute",
            Op::Narrow { .. } => "Narrow",
            Op::Concat { .. } => "Concat",
            Op::IndexSelect { .. } => "IndexSelect",
            Op::Inverse { .. } => "Inverse",
            Op::Slogdet { .. } => "Slogdet",
            Op::SolveTriangular(..) => "SolveTriangular",
        }
    }
}

// Why the rarer, larger variants are boxed: every push moves an `Op`, and an
// enum is as large as its largest variant. The hot small ops (add, mul, tanh)
// then move a few hundred bytes, not twice that; the boxed ops cost far more
// than one allocation anyway.

/// `y = a ^ b` element-wise with a tensor exponent (see the module table).
#[allow(missing_docs)]
pub struct PowOp<T: Element> {
    pub a: Parent,
    pub b: Parent,
    pub a_value: Tensor<T>,
    pub b_value: Tensor<T>,
    pub out: Tensor<T>,
}

/// `y = conv2d(x, W) + b` (see the module table and `Tensor::conv2d`).
#[allow(missing_docs)]
pub struct Conv2dOp<T: Element> {
    pub x: Parent,
    pub weight: Parent,
    pub bias: Parent,
    pub x_value: Tensor<T>,
    pub weight_value: Tensor<T>,
    pub padding: usize,
}

/// An affine coupling's update with the bounded scale, fused
/// ([`Var::affine_coupling_tanh`](super::Var::affine_coupling_tanh); see the
/// module table). The values are contiguous.
#[allow(missing_docs)]
pub struct AffineCouplingOp<T: Element> {
    pub h: Parent,
    pub bound: Parent,
    pub x: Parent,
    pub h_value: Tensor<T>,
    pub bound_value: Tensor<T>,
    pub x_value: Tensor<T>,
    pub tanh: Tensor<T>,
    pub factor: Tensor<T>,
    pub direction: AffineDirection,
}

/// `y = where(cond, a, b)` (see the module table).
#[allow(missing_docs)]
pub struct SelectOp<T: Element> {
    pub a: Parent,
    pub b: Parent,
    pub cond: Tensor<T>,
    pub a_shape: Layout,
    pub b_shape: Layout,
}

/// `X = T⁻¹·B` with `T` the `triangle` of `A` (see the module table and
/// `tensor::linalg::solve_triangular`).
#[allow(missing_docs)]
pub struct SolveTriangularOp<T: Element> {
    pub a: Parent,
    pub b: Parent,
    pub a_value: Tensor<T>,
    pub out: Tensor<T>,
    pub triangle: Triangle,
    pub diagonal: Diagonal,
}
