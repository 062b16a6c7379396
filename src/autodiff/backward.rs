//! The backward pass: one `match` over [`Op`] holds every vector-Jacobian
//! product. Each arm opens with its rule; `ȳ` is the gradient arriving at the
//! node's output, `ā` the one it sends to parent `a`.
//!
//! Gradients are updated in place where that is safe: a gradient arriving at
//! a node is owned by the backward pass alone, so an element-wise rule
//! (`ā = ȳ ⊙ f(a)`) can overwrite `ȳ`'s buffer and hand it on, and a second
//! contribution to a parent is added into the buffer it already has. The
//! tensors are copy-on-write ([`Tensor::as_mut_slice`]), so a buffer that is
//! shared after all (one `ȳ` sent to both operands of an `Add`) is copied
//! first, never changed under another holder.
//!
//! Derivation: [`derivations::reverse_mode`](crate::derivations::reverse_mode)
//! (docs/derivations/reverse-mode.md).

use super::op::{AffineCouplingOp, Conv2dOp, Op, Parent, PowOp, SelectOp, SolveTriangularOp};
use super::profile;
use crate::tensor::fused;
use crate::tensor::linalg::{self, Diagonal, Triangle};
use crate::tensor::parallel::prelude::*;
use crate::tensor::parallel::{go_parallel, join_serial, PAR_CHUNK};
use crate::tensor::{Element, Tensor};

/// The gradients `a()` and `b()` of the parents that need them: side by side
/// with serial kernels when both do ([`join_serial`]), else the one alone
/// with the kernels free to split across threads (a first layer's input
/// needs no gradient, and its weight's product should not leave a core idle).
fn both_or_one<T: Element>(
    (pa, pb): (Parent, Parent),
    a: impl FnOnce() -> Tensor<T> + Send,
    b: impl FnOnce() -> Tensor<T> + Send,
) -> (Option<Tensor<T>>, Option<Tensor<T>>) {
    match (pa, pb) {
        (Some(_), Some(_)) => {
            let (ga, gb) = join_serial(a, b);
            (Some(ga), Some(gb))
        }
        _ => (pa.map(|_| a()), pb.map(|_| b())),
    }
}

/// Adds `g()` into `grads[parent]` (nothing when the parent needs no
/// gradient, and then `g` is never computed). Gradients accumulate: a value
/// used twice receives the sum of both uses (the multivariate chain rule).
fn accumulate<T: Element>(
    grads: &mut [Option<Tensor<T>>],
    parent: Parent,
    g: impl FnOnce() -> Tensor<T>,
) {
    if let Some(p) = parent {
        let g = g();
        grads[p] = Some(match grads[p].take() {
            Some(old) => zip_into(old, &g, "accumulate", |x, y| x + y),
            None => g,
        });
    }
}

/// Adds `f(g, v)` summed to `shape` into `grads[parent]`. When the parent
/// already holds a gradient of the same shape as `g` and `v`, the sum is
/// formed in that buffer, with no temporary (`b̄ += ȳ ⊙ a` of a product).
fn accumulate_zip<T: Element>(
    grads: &mut [Option<Tensor<T>>],
    parent: Parent,
    (g, v): (&Tensor<T>, &Tensor<T>),
    shape: &[usize],
    f: impl Fn(T, T) -> T + Sync + Send,
) {
    let Some(p) = parent else { return };
    let fusable = g.shape() == shape && v.shape() == shape && g.is_contiguous();
    match (grads[p].take(), v.as_slice(), g.as_slice()) {
        (Some(mut old), Some(vs), Some(gs)) if fusable && old.shape() == shape => {
            if old.is_contiguous() {
                let acc = old.as_mut_slice();
                zip3_slices(acc, gs, vs, |o, gy, x| o + f(gy, x));
                grads[p] = Some(old);
            } else {
                grads[p] = Some(old.add(&g.zip_map(v, "accumulate", f)));
            }
        }
        (old, _, _) => {
            grads[p] = old;
            accumulate(grads, parent, || {
                reduce_to(g.zip_map(v, "backward", f), shape)
            });
        }
    }
}

/// `g` summed back to `shape` (the gradient of a broadcast); `g` itself,
/// with no copy, when it already has that shape.
fn reduce_to<T: Element>(g: Tensor<T>, shape: &[usize]) -> Tensor<T> {
    if g.shape() == shape {
        g
    } else {
        g.sum_to_shape(shape)
    }
}

/// `f(g, v)` element-wise, written into `g`'s buffer when `g` and `v` have
/// the same shape and are contiguous; a fresh tensor (with broadcasting)
/// otherwise.
fn zip_into<T: Element>(
    mut g: Tensor<T>,
    v: &Tensor<T>,
    op: &str,
    f: impl Fn(T, T) -> T + Sync + Send,
) -> Tensor<T> {
    match v.as_slice() {
        Some(vs) if g.shape() == v.shape() && g.is_contiguous() => {
            zip_slices(g.as_mut_slice(), vs, f);
            g
        }
        _ => g.zip_map(v, op, f),
    }
}

/// `f(g)` element-wise, in `g`'s buffer when it is contiguous.
fn map_into<T: Element>(mut g: Tensor<T>, f: impl Fn(T) -> T + Sync + Send) -> Tensor<T> {
    if g.is_contiguous() {
        let n = g.numel();
        let out = g.as_mut_slice();
        if go_parallel(n) {
            out.par_chunks_mut(PAR_CHUNK)
                .for_each(|c| c.iter_mut().for_each(|x| *x = f(*x)));
        } else {
            out.iter_mut().for_each(|x| *x = f(*x));
        }
        g
    } else {
        g.map(f)
    }
}

/// `out[i] = f(out[i], v[i])`, in parallel chunks when large.
fn zip_slices<T: Element>(out: &mut [T], v: &[T], f: impl Fn(T, T) -> T + Sync + Send) {
    let each = |(o, v): (&mut [T], &[T])| {
        for (x, &y) in o.iter_mut().zip(v) {
            *x = f(*x, y);
        }
    };
    if go_parallel(out.len()) {
        out.par_chunks_mut(PAR_CHUNK)
            .zip(v.par_chunks(PAR_CHUNK))
            .for_each(each);
    } else {
        each((out, v));
    }
}

/// `out[i] = f(out[i], g[i], v[i])`, in parallel chunks when large.
fn zip3_slices<T: Element>(
    out: &mut [T],
    g: &[T],
    v: &[T],
    f: impl Fn(T, T, T) -> T + Sync + Send,
) {
    let each = |((o, g), v): ((&mut [T], &[T]), &[T])| {
        for ((x, &gy), &y) in o.iter_mut().zip(g).zip(v) {
            *x = f(*x, gy, y);
        }
    };
    if go_parallel(out.len()) {
        out.par_chunks_mut(PAR_CHUNK)
            .zip(g.par_chunks(PAR_CHUNK))
            .zip(v.par_chunks(PAR_CHUNK))
            .for_each(each);
    } else {
        each(((out, g), v));
    }
}

/// `ȳ ⊙ 1(y > 0)` for the output `y` of a fused ReLU, and, when
/// `bias_wanted`, its sum over the rows (the bias gradient) from the same
/// pass ([`fused::relu_mask_and_column_sums`]); in `ȳ`'s buffer when it is
/// contiguous.
fn relu_backward_with_bias<T: Element>(
    mut g: Tensor<T>,
    y: &Tensor<T>,
    bias_wanted: bool,
) -> (Tensor<T>, Option<Tensor<T>>) {
    let n = y.dim(1);
    match y.as_slice() {
        Some(ys) if bias_wanted && g.shape() == y.shape() && g.is_contiguous() => {
            let sums = fused::relu_mask_and_column_sums(g.as_mut_slice(), ys, n);
            (g, Some(Tensor::from_vec(sums, &[n])))
        }
        _ => (
            zip_into(g, y, "relu backward", |gy, y| {
                if y > T::ZERO {
                    gy
                } else {
                    T::ZERO
                }
            }),
            None,
        ),
    }
}

/// The elements of a contiguous tensor (the fused ops keep theirs so).
fn slice<T: Element>(t: &Tensor<T>) -> &[T] {
    t.as_slice().expect("a fused op keeps contiguous values")
}

/// Swaps the last two axes (a view): the matrix transpose of every batch entry.
fn last_two<T: Element>(t: &Tensor<T>) -> Tensor<T> {
    t.transpose(t.ndim() - 2, t.ndim() - 1)
}

/// The triangle a solve with `Tᵀ` reads, when `T` is the `triangle` of A.
fn transposed(triangle: Triangle) -> Triangle {
    match triangle {
        Triangle::Lower => Triangle::Upper,
        Triangle::Upper => Triangle::Lower,
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
        let started = profile::on().then(std::time::Instant::now);
        match op {
            Op::Leaf => unreachable!("leaves are skipped above"),
            // y = a + b:  ā += ȳ summed to a's shape,  b̄ += ȳ summed to b's shape
            Op::Add {
                a,
                b,
                a_shape,
                b_shape,
            } => {
                accumulate(&mut grads, *b, || reduce_to(g.clone(), b_shape.shape()));
                accumulate(&mut grads, *a, || reduce_to(g, a_shape.shape()));
            }
            // y = a − b:  ā += ȳ,  b̄ −= ȳ (each summed to its shape)
            Op::Sub {
                a,
                b,
                a_shape,
                b_shape,
            } => {
                accumulate(&mut grads, *a, || reduce_to(g.clone(), a_shape.shape()));
                accumulate(&mut grads, *b, || {
                    map_into(reduce_to(g, b_shape.shape()), |x| -x)
                });
            }
            // y = a ⊙ b:  ā += ȳ ⊙ b,  b̄ += ȳ ⊙ a
            Op::Mul {
                a,
                b,
                a_value,
                b_value,
            } => {
                accumulate_zip(&mut grads, *b, (&g, a_value), b_value.shape(), |gy, x| {
                    gy * x
                });
                accumulate(&mut grads, *a, || {
                    reduce_to(
                        zip_into(g, b_value, "mul backward", |gy, x| gy * x),
                        a_value.shape(),
                    )
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
                let ga = zip_into(g, b_value, "div backward", |gy, x| gy / x);
                accumulate_zip(&mut grads, *b, (&ga, out), b_value.shape(), |q, y| -(q * y));
                accumulate(&mut grads, *a, || reduce_to(ga, a_shape.shape()));
            }
            // y = a ^ b:  ā += ȳ ⊙ b ⊙ a^(b−1),  b̄ += ȳ ⊙ y ⊙ ln a (0 where y = 0)
            Op::Pow(pow) => {
                let PowOp {
                    a,
                    b,
                    a_value,
                    b_value,
                    out,
                } = &**pow;
                accumulate(&mut grads, *b, || {
                    let dy_db = out.zip_map(a_value, "pow backward", |y, x| {
                        if y == T::ZERO {
                            T::ZERO
                        } else {
                            y * x.ln()
                        }
                    });
                    reduce_to(g.mul(&dy_db), b_value.shape())
                });
                accumulate(&mut grads, *a, || {
                    let dy_da =
                        a_value.zip_map(b_value, "pow backward", |x, p| p * x.powf(p - T::ONE));
                    reduce_to(
                        zip_into(g, &dy_da, "pow backward", |gy, d| gy * d),
                        a_value.shape(),
                    )
                });
            }
            // y = a ^ p:  ā += ȳ ⊙ p ⊙ a^(p−1)  (0 for p = 0)
            Op::PowScalar { a, a_value, p } => accumulate(&mut grads, *a, || {
                let p = *p;
                zip_into(g, a_value, "pow backward", move |gy, x| {
                    if p == T::ZERO {
                        T::ZERO
                    } else {
                        gy * p * x.powf(p - T::ONE)
                    }
                })
            }),
            // y = −a:  ā −= ȳ
            Op::Neg { a } => accumulate(&mut grads, *a, || map_into(g, |x| -x)),
            // y = a + c:  ā += ȳ
            Op::AddScalar { a } => accumulate(&mut grads, *a, || g),
            // y = c·a:  ā += c·ȳ
            Op::MulScalar { a, c } => {
                let c = *c;
                accumulate(&mut grads, *a, || map_into(g, move |x| c * x))
            }
            // y = exp(a):  ā += ȳ ⊙ y
            Op::Exp { a, out } => accumulate(&mut grads, *a, || {
                zip_into(g, out, "exp backward", |gy, y| gy * y)
            }),
            // y = ln(a):  ā += ȳ / a
            Op::Log { a, a_value } => accumulate(&mut grads, *a, || {
                zip_into(g, a_value, "ln backward", |gy, x| gy / x)
            }),
            // y = ln(1 + a):  ā += ȳ / (1 + a)
            Op::Log1p { a, a_value } => accumulate(&mut grads, *a, || {
                zip_into(g, a_value, "log1p backward", |gy, x| gy / (T::ONE + x))
            }),
            // y = √a:  ā += ȳ / (2y)
            Op::Sqrt { a, out } => accumulate(&mut grads, *a, || {
                zip_into(g, out, "sqrt backward", |gy, y| gy / (y + y))
            }),
            // y = tanh(a):  ā += ȳ ⊙ (1 − y²)
            Op::Tanh { a, out } => accumulate(&mut grads, *a, || {
                zip_into(g, out, "tanh backward", |gy, y| gy * (T::ONE - y * y))
            }),
            // y = σ(a):  ā += ȳ ⊙ y(1 − y)
            Op::Sigmoid { a, out } => accumulate(&mut grads, *a, || {
                zip_into(g, out, "sigmoid backward", |gy, y| gy * y * (T::ONE - y))
            }),
            // y = ln(1 + eᵃ):  ā += ȳ ⊙ σ(a)
            Op::Softplus { a, a_value } => accumulate(&mut grads, *a, || {
                zip_into(g, a_value, "softplus backward", |gy, x| {
                    gy / (T::ONE + (-x).exp())
                })
            }),
            // y = max(a, 0):  ā += ȳ where a > 0 (0 at the kink, a subgradient)
            Op::Relu { a, a_value } => accumulate(&mut grads, *a, || {
                zip_into(g, a_value, "relu backward", |gy, x| {
                    if x > T::ZERO {
                        gy
                    } else {
                        T::ZERO
                    }
                })
            }),
            // y = a (a > 0), s·a (else):  ā += ȳ (a > 0), s·ȳ (else)
            Op::LeakyRelu { a, a_value, slope } => {
                let s = *slope;
                accumulate(&mut grads, *a, || {
                    zip_into(g, a_value, "leaky_relu backward", move |gy, x| {
                        if x > T::ZERO {
                            gy
                        } else {
                            s * gy
                        }
                    })
                })
            }
            // y = a (a > 0), α(eᵃ − 1) (else):  ā += ȳ (a > 0), ȳ ⊙ (y + α) (else)
            Op::Elu {
                a,
                a_value,
                out,
                alpha,
            } => {
                let alpha = *alpha;
                accumulate(&mut grads, *a, || {
                    let slope = a_value.zip_map(out, "elu backward", move |x, y| {
                        if x > T::ZERO {
                            T::ONE
                        } else {
                            y + alpha
                        }
                    });
                    zip_into(g, &slope, "elu backward", |gy, d| gy * d)
                })
            }
            // Y = A·B:  Ā += Ȳ·Bᵀ,  B̄ += Aᵀ·Ȳ (transposes are views; a rank-2
            // operand broadcast over a batch gets the batch summed)
            Op::MatMul {
                a,
                b,
                a_value,
                b_value,
            } => {
                accumulate(&mut grads, *a, || {
                    g.matmul(&last_two(b_value)).sum_to_shape(a_value.shape())
                });
                accumulate(&mut grads, *b, || {
                    let gb = if a_value.ndim() == 2 && g.ndim() == 3 {
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
                    gb.sum_to_shape(b_value.shape())
                });
            }
            // Y = X·W + b:  X̄ += Ȳ·Wᵀ,  W̄ += Xᵀ·Ȳ,  b̄ += Σ over the batch of Ȳ
            // (with a fused ReLU, y = max(X·W + b, 0): Ȳ ← Ȳ ⊙ 1(y > 0) first)
            Op::Linear {
                x,
                weight,
                bias,
                x_value,
                weight_value,
                relu_out,
            } => {
                let (g, bias_grad) = match relu_out {
                    Some(y) => relu_backward_with_bias(g, y, bias.is_some()),
                    None => (g, None),
                };
                // The two products are independent: one per core when both
                // are wanted; one alone splits its rows across the cores.
                let (gx, gw) = both_or_one(
                    (*x, *weight),
                    || g.matmul(&weight_value.t()),
                    || x_value.t().matmul(&g),
                );
                accumulate(&mut grads, *bias, || {
                    bias_grad.unwrap_or_else(|| g.sum_axes(&[0]))
                });
                accumulate(&mut grads, *x, || gx.expect("computed when x is recorded"));
                accumulate(&mut grads, *weight, || {
                    gw.expect("computed when weight is recorded")
                });
            }
            // Y = X·(W ⊙ M) + b:  X̄ += Ȳ·(W ⊙ M)ᵀ,  W̄ += (Xᵀ·Ȳ) ⊙ M,  b̄ += Σ_batch Ȳ
            Op::MaskedLinear {
                x,
                weight,
                bias,
                x_value,
                masked_weight,
                mask,
            } => {
                let (gx, gw) = both_or_one(
                    (*x, *weight),
                    || g.block_masked_input_grad(masked_weight, mask),
                    || x_value.block_masked_weight_grad(&g, mask),
                );
                accumulate(&mut grads, *bias, || g.sum_axes(&[0]));
                accumulate(&mut grads, *x, || gx.expect("computed when x is recorded"));
                accumulate(&mut grads, *weight, || {
                    gw.expect("computed when weight is recorded")
                });
            }
            // Y = conv2d(X, W) + b:  X̄ += conv2d_input_grad(Ȳ, W),
            // W̄ += conv2d_weight_grad(X, Ȳ),  b̄ += Ȳ summed over batch and pixels
            Op::Conv2d(conv) => {
                let Conv2dOp {
                    x,
                    weight,
                    bias,
                    x_value,
                    weight_value,
                    padding,
                } = &**conv;
                accumulate(&mut grads, *bias, || Tensor::conv2d_bias_grad(&g));
                accumulate(&mut grads, *weight, || {
                    Tensor::conv2d_weight_grad(x_value, &g, weight_value.dim(2), *padding)
                });
                accumulate(&mut grads, *x, || {
                    Tensor::conv2d_input_grad(&g, weight_value, x_value.shape(), *padding)
                });
            }
            // [y | ℓ] = the affine coupling's update (see the op table):
            // all three gradients from one pass of fused::affine_tanh_backward
            Op::AffineCoupling(op) => {
                let AffineCouplingOp {
                    h,
                    bound,
                    x,
                    h_value,
                    bound_value,
                    x_value,
                    tanh,
                    factor,
                    direction,
                } = &**op;
                let g = g.contiguous();
                let kept = (slice(h_value), slice(x_value), slice(tanh), slice(factor));
                let back =
                    fused::affine_tanh_backward(slice(&g), kept, slice(bound_value), *direction);
                accumulate(&mut grads, *h, || Tensor::from_vec(back.h, h_value.shape()));
                accumulate(&mut grads, *bound, || {
                    Tensor::from_vec(back.bound, bound_value.shape())
                });
                accumulate(&mut grads, *x, || Tensor::from_vec(back.x, x_value.shape()));
            }
            // y = Σ over axes:  ā += ȳ repeated along the summed axes
            Op::Sum {
                a,
                in_shape,
                keep_shape,
            } => accumulate(&mut grads, *a, || {
                g.reshape(keep_shape.shape()).broadcast_to(in_shape.shape())
            }),
            // y = max over axes:  ā += ȳ where a equals the maximum, split
            // evenly among ties (a subgradient; PyTorch's amax does the same)
            Op::Max {
                a,
                a_value,
                out_keepdim,
            } => accumulate(&mut grads, *a, || {
                let is_max = a_value.zip_map(out_keepdim, "max backward", |x, m| {
                    if x == m {
                        T::ONE
                    } else {
                        T::ZERO
                    }
                });
                let ties = is_max.sum_to_shape(out_keepdim.shape());
                let share = g.reshape(out_keepdim.shape()).div(&ties);
                is_max.mul(&share)
            }),
            // y = log Σ exp(a) over axes:  ā += ȳ ⊙ softmax(a) = ȳ ⊙ exp(a − m) / Σ exp(a − m)
            Op::LogSumExp {
                a,
                a_value,
                out_keepdim,
            } => accumulate(&mut grads, *a, || {
                // The weights from a alone, max-shifted (exp(a − y) with y
                // rounded loses up to half an ulp of y of the mass); zero for
                // a slot of −∞ only (Tensor::softmax_axes).
                let axes: Vec<usize> = (0..a_value.ndim())
                    .filter(|&k| out_keepdim.shape()[k] == 1 && a_value.shape()[k] != 1)
                    .collect();
                let softmax = a_value.softmax_axes(&axes);
                softmax.mul(&g.reshape(out_keepdim.shape()))
            }),
            // y = where(c, a, b):  ā += ȳ where c ≠ 0,  b̄ += ȳ where c = 0
            Op::Select(select) => {
                let SelectOp {
                    a,
                    b,
                    cond,
                    a_shape,
                    b_shape,
                } = &**select;
                let zero = T::ZERO;
                accumulate(&mut grads, *a, || {
                    let picked =
                        g.zip_map(
                            cond,
                            "select backward",
                            |gy, c| {
                                if c != zero {
                                    gy
                                } else {
                                    zero
                                }
                            },
                        );
                    reduce_to(picked, a_shape.shape())
                });
                accumulate(&mut grads, *b, || {
                    let picked = zip_into(g, cond, "select backward", |gy, c| {
                        if c == zero {
                            gy
                        } else {
                            zero
                        }
                    });
                    reduce_to(picked, b_shape.shape())
                });
            }
            // y = broadcast(a):  ā += ȳ summed over the broadcast axes
            Op::Broadcast { a, in_shape } => {
                accumulate(&mut grads, *a, || reduce_to(g, in_shape.shape()))
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
            // Y = A⁻¹:  Ā −= Yᵀ·Ȳ·Yᵀ  (from dY = −Y·dA·Y)
            Op::Inverse { a, out } => accumulate(&mut grads, *a, || {
                let yt = out.t();
                map_into(yt.matmul(&g).matmul(&yt), |x| -x)
            }),
            // y = log|det A|:  Ā += ȳ·A⁻ᵀ  (Jacobi's formula)
            Op::Slogdet { a, inverse_t } => {
                accumulate(&mut grads, *a, || inverse_t.mul_scalar(g.item()))
            }
            // X = T⁻¹·B, T the triangle of A read by the solve:
            // B̄ += T⁻ᵀ·X̄ (a solve with the transposed triangle),
            // Ā −= B̄·Xᵀ on the entries of A the solve reads (none of a unit diagonal)
            Op::SolveTriangular(solve) => {
                let SolveTriangularOp {
                    a,
                    b,
                    a_value,
                    out,
                    triangle,
                    diagonal,
                } = &**solve;
                let gb =
                    linalg::solve_triangular(&a_value.t(), &g, transposed(*triangle), *diagonal);
                accumulate(&mut grads, *a, || {
                    let n = a_value.dim(0);
                    let m = out.numel() / n;
                    let outer = gb.reshape(&[n, m]).matmul(&out.reshape(&[n, m]).t());
                    let mut ga = outer.contiguous();
                    for (at, v) in ga.as_mut_slice().iter_mut().enumerate() {
                        let (i, j) = (at / n, at % n);
                        let read = match triangle {
                            Triangle::Lower => i >= j,
                            Triangle::Upper => i <= j,
                        } && !(i == j && *diagonal == Diagonal::Unit);
                        *v = if read { -*v } else { T::ZERO };
                    }
                    ga
                });
                accumulate(&mut grads, *b, || gb);
            }
        }
        if let Some(started) = started {
            profile::backward_done(op.kind(), started);
        }
    }
    grads
}
