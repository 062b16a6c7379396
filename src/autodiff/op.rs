//! The recorded operations. Each variant names its parents (`None` when a
//! parent needs no gradient) and keeps the values its backward rule needs:
//! values, not closures over copies.
//!
//! | op | computes | keeps |
//! | --- | --- | --- |
//! | `Leaf` | a parameter or input that wants a gradient | nothing |
//! | `Add`, `Sub` | `a ± b`, broadcast | both shapes |
//! | `Mul` | `a ⊙ b`, broadcast | both values |
//! | `Div` | `a / b`, broadcast | `a`'s shape, `b` and the output |
//! | `Neg` | `−a` | nothing |
//! | `AddScalar`, `MulScalar` | `a + c`, `c·a` | `c` |
//! | `Exp` | `exp(a)` | the output |
//! | `Log` | `ln(a)` | `a` |
//! | `Tanh` | `tanh(a)` | the output |
//! | `Relu` | `max(a, 0)` | `a` |
//! | `MatMul` | `A·B`, 2-D or batched | both values |
//! | `Linear` | `x·W + b` (fused for speed) | `x` and `W` |
//! | `Sum` | sum over axes (keep-dim shape recorded) | input shape, keep-dim shape |
//! | `Broadcast` | `a` repeated to a larger shape | input shape |
//! | `Reshape` | same elements, new shape | input shape |
//! | `Permute` | axes reordered (transpose) | the permutation |
//! | `Narrow` | a slice along one axis | axis, start, input shape |
//! | `Concat` | tensors joined along an axis | each part's length |
//! | `IndexSelect` | entries picked along an axis | the indices, input shape |
//!
//! Everything else (mean, softplus, losses, bounded scales) is composed from
//! these in the module that needs it.

use crate::tensor::{Element, Layout, Tensor};

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
    Tanh {
        a: Parent,
        out: Tensor<T>,
    },
    Relu {
        a: Parent,
        a_value: Tensor<T>,
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
    },
    Sum {
        a: Parent,
        in_shape: Layout,
        keep_shape: Layout,
    },
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
}
