//! The backward pass: one `match` over [`Op`] holds every vector-Jacobian
//! product. Each arm opens with its rule; `ȳ` is the gradient arriving at the
//! node's output, `ā` the one it sends to parent `a`.
//!
//! Derivation: [`derivations::reverse_mode`](crate::derivations::reverse_mode)
//! (docs/derivations/reverse-mode.md).

use super::op::{Op, Parent};
use crate::tensor::{Element, Tensor};

/// Adds `g` into `grads[parent]`. Gradients accumulate: a value used twice
/// receives the sum of both uses (the multivariate chain rule).
fn accumulate<T: Element>(
    grads: &mut [Option<Tensor<T>>],
    parent: Parent,
    g: impl FnOnce() -> Tensor<T>,
) {
    if let Some(p) = parent {
        let g = g();
        grads[p] = Some(match grads[p].take() {
            Some(old) => old.add(&g),
            None => g,
        });
    }
}

/// Runs the backward pass from node `root`, seeded with `seed` (= ∂loss/∂loss),
/// and returns the gradient of every node that keeps one (the leaves).
pub(crate) fn run_backward<T: Element>(
    nodes: &[Op<T>],
    root: usize,
    seed: Tensor<T>,
) -> Vec<Option<Tensor<T>>> {
    let mut grads: Vec<Option<Tensor<T>>> = vec![None; nodes.len()];
    grads[root] = Some(seed);
    // Reverse creation order is a reverse topological order: a node's users
    // were all created after it, so its gradient is complete when reached.
    for i in (0..=root).rev() {
        let op = &nodes[i];
        if matches!(op, Op::Leaf) {
            continue; // leaves keep their gradient for the caller
        }
        let Some(g) = grads[i].take() else { continue };
        match op {
            Op::Leaf => unreachable!("leaves are skipped above"),
            // y = a + b:  ā += ȳ summed to a's shape,  b̄ += ȳ summed to b's shape
            Op::Add {
                a,
                b,
                a_shape,
                b_shape,
            } => {
                accumulate(&mut grads, *a, || g.sum_to_shape(a_shape.shape()));
                accumulate(&mut grads, *b, || g.sum_to_shape(b_shape.shape()));
            }
            // y = a − b:  ā += ȳ,  b̄ −= ȳ (each summed to its shape)
            Op::Sub {
                a,
                b,
                a_shape,
                b_shape,
            } => {
                accumulate(&mut grads, *a, || g.sum_to_shape(a_shape.shape()));
                accumulate(&mut grads, *b, || g.sum_to_shape(b_shape.shape()).neg());
            }
            // y = a ⊙ b:  ā += ȳ ⊙ b,  b̄ += ȳ ⊙ a
            Op::Mul {
                a,
                b,
                a_value,
                b_value,
            } => {
                accumulate(&mut grads, *a, || {
                    g.mul(b_value).sum_to_shape(a_value.shape())
                });
                accumulate(&mut grads, *b, || {
                    g.mul(a_value).sum_to_shape(b_value.shape())
                });
            }
            // y = a / b:  ā += ȳ / b,  b̄ −= ȳ ⊙ y / b
            Op::Div {
                a,
                b,
                a_shape,
                b_value,
                out,
            } => {
                let ga = g.div(b_value);
                accumulate(&mut grads, *b, || {
                    ga.mul(out).sum_to_shape(b_value.shape()).neg()
                });
                accumulate(&mut grads, *a, || ga.sum_to_shape(a_shape.shape()));
            }
            // y = −a:  ā −= ȳ
            Op::Neg { a } => accumulate(&mut grads, *a, || g.neg()),
            // y = a + c:  ā += ȳ
            Op::AddScalar { a } => accumulate(&mut grads, *a, || g.clone()),
            // y = c·a:  ā += c·ȳ
            Op::MulScalar { a, c } => accumulate(&mut grads, *a, || g.mul_scalar(*c)),
            // y = exp(a):  ā += ȳ ⊙ y
            Op::Exp { a, out } => accumulate(&mut grads, *a, || g.mul(out)),
            // y = ln(a):  ā += ȳ / a
            Op::Log { a, a_value } => accumulate(&mut grads, *a, || g.div(a_value)),
            // y = tanh(a):  ā += ȳ ⊙ (1 − y²)
            Op::Tanh { a, out } => accumulate(&mut grads, *a, || {
                g.zip_map(out, "tanh backward", |gy, y| gy * (T::ONE - y * y))
            }),
            // y = max(a, 0):  ā += ȳ where a > 0
            Op::Relu { a, a_value } => accumulate(&mut grads, *a, || {
                g.zip_map(a_value, "relu backward", |gy, x| {
                    if x > T::ZERO {
                        gy
                    } else {
                        T::ZERO
                    }
                })
            }),
            // Y = A·B:  Ā += Ȳ·Bᵀ,  B̄ += Aᵀ·Ȳ (transposes are views; a rank-2
            // operand broadcast over a batch gets the batch summed)
            Op::MatMul {
                a,
                b,
                a_value,
                b_value,
            } => {
                let last_two = |t: &Tensor<T>| t.transpose(t.ndim() - 2, t.ndim() - 1);
                accumulate(&mut grads, *a, || {
                    g.matmul(&last_two(b_value)).sum_to_shape(a_value.shape())
                });
                accumulate(&mut grads, *b, || {
                    let ga = if a_value.ndim() == 2 && g.ndim() == 3 {
                        // [m,k] broadcast over the batch: Aᵀ·Ȳ for each batch entry.
                        last_two(&a_value.unsqueeze(0).broadcast_to(&[
                            g.dim(0),
                            a_value.dim(0),
                            a_value.dim(1),
                        ]))
                        .matmul(&g)
                    } else {
                        last_two(a_value).matmul(&g)
                    };
                    ga.sum_to_shape(b_value.shape())
                });
            }
            // Y = X·W + b:  X̄ += Ȳ·Wᵀ,  W̄ += Xᵀ·Ȳ,  b̄ += Σ over the batch of Ȳ
            Op::Linear {
                x,
                weight,
                bias,
                x_value,
                weight_value,
            } => {
                // The two products are independent: one per core.
                let (gx, gw) = crate::tensor::parallel::join_serial(
                    || x.map(|_| g.matmul(&weight_value.t())),
                    || weight.map(|_| x_value.t().matmul(&g)),
                );
                accumulate(&mut grads, *x, || gx.expect("computed when x is recorded"));
                accumulate(&mut grads, *weight, || {
                    gw.expect("computed when weight is recorded")
                });
                accumulate(&mut grads, *bias, || g.sum_axes(&[0]));
            }
            // y = Σ over axes:  ā += ȳ repeated along the summed axes
            Op::Sum {
                a,
                in_shape,
                keep_shape,
            } => accumulate(&mut grads, *a, || {
                g.reshape(keep_shape.shape()).broadcast_to(in_shape.shape())
            }),
            // y = broadcast(a):  ā += ȳ summed over the broadcast axes
            Op::Broadcast { a, in_shape } => {
                accumulate(&mut grads, *a, || g.sum_to_shape(in_shape.shape()))
            }
            // y = reshape(a):  ā += reshape(ȳ) back to a's shape
            Op::Reshape { a, in_shape } => {
                accumulate(&mut grads, *a, || g.reshape(in_shape.shape()))
            }
            // y = permute(a, p):  ā += permute(ȳ, p⁻¹)
            Op::Permute { a, perm } => accumulate(&mut grads, *a, || {
                let mut inverse = vec![0; perm.len()];
                for (k, &p) in perm.iter().enumerate() {
                    inverse[p] = k;
                }
                g.permute(&inverse)
            }),
            // y = a[start..start+len] along axis:  ā += ȳ placed back, zeros elsewhere
            Op::Narrow {
                a,
                axis,
                start,
                in_shape,
            } => accumulate(&mut grads, *a, || {
                let indices: Vec<usize> = (*start..*start + g.dim(*axis)).collect();
                Tensor::index_add_into_zeros(in_shape.shape(), *axis, &indices, &g)
            }),
            // y = concat(parts):  each part gets its slice of ȳ
            Op::Concat {
                parts,
                axis,
                lengths,
            } => {
                let mut start = 0;
                for (p, &len) in parts.iter().zip(lengths) {
                    accumulate(&mut grads, *p, || g.narrow(*axis, start, len));
                    start += len;
                }
            }
            // y = a[indices] along axis:  ā += ȳ added back at the indices
            Op::IndexSelect {
                a,
                axis,
                indices,
                in_shape,
            } => accumulate(&mut grads, *a, || {
                Tensor::index_add_into_zeros(in_shape.shape(), *axis, indices, &g)
            }),
        }
    }
    grads
}
