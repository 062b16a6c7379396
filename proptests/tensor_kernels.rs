//! Kernels against naive references: element-wise maps and binary ops with
//! broadcasting, comparisons and selects, reductions, matmul (2-D, batched,
//! thin, parallel) and conv2d with its two backward kernels.
//!
//! Every operand is built as a *view* with odd strides (a permuted storage,
//! narrowed with a margin, some axes broadcast with stride 0) so the strided
//! paths run, and shapes come both below and above the parallel threshold
//! (`PAR_MIN_ELEMENTS` = 2^15 elements) so both the serial and the rayon
//! paths run. The references walk multi-indices with nested loops and read
//! elements through `Tensor::get`, the address formula alone.

use crate::strategies::randn;
use crate::tolerance::KERNEL_RTOL;
use flowzoo::tensor::{math, Tensor};
use proptest::prelude::*;

/// Element-wise and comparison kernels apply the same f64 operation to the
/// same inputs as the reference, so they must agree exactly.
const EXACT: f64 = 0.0;

/// How to build a tensor of a given shape as a view with odd strides.
#[derive(Clone, Debug)]
pub struct ViewSpec {
    /// Storage axis `j` holds logical axis `perm[j]` (a permute back makes
    /// the view: strides out of order, not contiguous).
    pub perm: Vec<usize>,
    /// Per axis, `(start, extra)`: the storage axis is `extra` longer and the
    /// view narrows it from `start ≤ extra` (offset and gaps).
    pub margin: Vec<(usize, usize)>,
    /// Per axis: stored with length 1 and broadcast (stride 0).
    pub broadcast: Vec<bool>,
}

impl ViewSpec {
    /// The plain contiguous layout.
    pub fn contiguous(rank: usize) -> ViewSpec {
        ViewSpec {
            perm: (0..rank).collect(),
            margin: vec![(0, 0); rank],
            broadcast: vec![false; rank],
        }
    }
}

/// A view spec for `rank` axes: contiguous a quarter of the time, otherwise
/// a random permutation, margins of up to 2, and broadcast axes when allowed.
pub fn view_spec(rank: usize, allow_broadcast: bool) -> impl Strategy<Value = ViewSpec> {
    let strided = (
        Just((0..rank).collect::<Vec<usize>>()).prop_shuffle(),
        prop::collection::vec((0usize..3, 0usize..3), rank),
        prop::collection::vec(prop::bool::weighted(0.2), rank),
    )
        .prop_map(move |(perm, margin, broadcast)| ViewSpec {
            perm,
            margin: margin.into_iter().map(|(s, e)| (s.min(e), e)).collect(),
            broadcast: broadcast
                .into_iter()
                .map(|b| b && allow_broadcast)
                .collect(),
        });
    prop_oneof![1 => Just(ViewSpec::contiguous(rank)), 3 => strided]
}

/// A tensor of logical shape `shape` laid out as `spec` says, with N(0, 1)
/// entries from `seed`.
pub fn make_view(shape: &[usize], spec: &ViewSpec, seed: u64) -> Tensor<f64> {
    view_over(shape, spec, |stored| randn(stored, seed))
}

/// Like [`make_view`] with small integers (round(1.5·N(0, 1))), so that
/// comparisons see ties.
fn make_int_view(shape: &[usize], spec: &ViewSpec, seed: u64) -> Tensor<f64> {
    view_over(shape, spec, |stored| {
        randn(stored, seed).map(|v| (v * 1.5).round())
    })
}

/// The view of `spec` over storage filled by `fill(stored_shape)`.
fn view_over(
    shape: &[usize],
    spec: &ViewSpec,
    fill: impl Fn(&[usize]) -> Tensor<f64>,
) -> Tensor<f64> {
    let rank = shape.len();
    let base: Vec<usize> = (0..rank)
        .map(|k| {
            if spec.broadcast[k] {
                1
            } else {
                shape[k] + spec.margin[k].1
            }
        })
        .collect();
    let stored: Vec<usize> = spec.perm.iter().map(|&k| base[k]).collect();
    let mut inverse = vec![0; rank];
    for (j, &k) in spec.perm.iter().enumerate() {
        inverse[k] = j;
    }
    let mut t = fill(&stored).permute(&inverse);
    for (k, &len) in shape.iter().enumerate() {
        if !spec.broadcast[k] {
            t = t.narrow(k, spec.margin[k].0, len);
        }
    }
    let t = t.broadcast_to(shape);
    assert_eq!(t.shape(), shape);
    t
}

/// Every multi-index of `shape`, row-major (one empty index for rank 0).
pub fn multi_indices(shape: &[usize]) -> Vec<Vec<usize>> {
    let mut out = vec![vec![]];
    for &n in shape {
        out = out
            .into_iter()
            .flat_map(|prefix| {
                (0..n).map(move |i| {
                    let mut p = prefix.clone();
                    p.push(i);
                    p
                })
            })
            .collect();
    }
    out
}

/// The elements read one by one through the address formula, row-major.
pub fn naive_values(t: &Tensor<f64>) -> Vec<f64> {
    multi_indices(t.shape()).iter().map(|i| t.get(i)).collect()
}

/// Asserts exact (`rtol = 0`, bit-for-bit up to the sign of zero) or close agreement.
fn assert_agree(what: &str, got: &[f64], expected: &[f64], rtol: f64) {
    assert_eq!(got.len(), expected.len(), "{what}: lengths differ");
    for (i, (g, e)) in got.iter().zip(expected).enumerate() {
        let ok = if rtol == 0.0 {
            g == e || (g.is_nan() && e.is_nan())
        } else {
            crate::tolerance::close(*g, *e, rtol)
        };
        assert!(ok, "{what}: index {i}: got {g:e}, expected {e:e}");
    }
}

/// Shapes of rank 1 to 4, axes 1 to 5: small, serial.
fn small_shape() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..=5, 1..=4)
}

/// Shapes from about 2^13 to 2^16.5 elements: on both sides of the parallel
/// threshold of 2^15.
fn large_shape() -> impl Strategy<Value = Vec<usize>> {
    prop_oneof![
        (8000usize..90000).prop_map(|n| vec![n]),
        (90usize..300, 90usize..300).prop_map(|(a, b)| vec![a, b]),
        (20usize..45, 20usize..45, 20usize..45).prop_map(|(a, b, c)| vec![a, b, c]),
    ]
}

/// Either kind of shape, mostly small.
fn any_shape() -> impl Strategy<Value = Vec<usize>> {
    prop_oneof![3 => small_shape(), 1 => large_shape()]
}

/// A shape with a view spec for it.
fn shaped_view(
    shape: impl Strategy<Value = Vec<usize>>,
) -> impl Strategy<Value = (Vec<usize>, ViewSpec)> {
    shape.prop_flat_map(|s| {
        let rank = s.len();
        (Just(s), view_spec(rank, true))
    })
}

/// A shape with two independent view specs for it.
fn shaped_views2(
    shape: impl Strategy<Value = Vec<usize>>,
) -> impl Strategy<Value = (Vec<usize>, ViewSpec, ViewSpec)> {
    shape.prop_flat_map(|s| {
        let rank = s.len();
        (Just(s), view_spec(rank, true), view_spec(rank, true))
    })
}

/// An operand that broadcasts to `out`: some leading axes dropped, some axes
/// set to 1, laid out as a random view.
fn broadcast_operand(out: Vec<usize>) -> impl Strategy<Value = (Vec<usize>, ViewSpec)> {
    let rank = out.len();
    (
        0..=rank,
        prop::collection::vec(prop::bool::weighted(0.25), rank),
    )
        .prop_flat_map(move |(drop, ones)| {
            let shape: Vec<usize> = (drop..rank)
                .map(|k| if ones[k] { 1 } else { out[k] })
                .collect();
            let r = shape.len();
            (Just(shape), view_spec(r, true))
        })
}

/// The numpy broadcast of two shapes, written out.
fn naive_broadcast(a: &[usize], b: &[usize]) -> Vec<usize> {
    let rank = a.len().max(b.len());
    (0..rank)
        .map(|k| {
            let pick = |s: &[usize]| {
                if k + s.len() >= rank {
                    s[k + s.len() - rank]
                } else {
                    1
                }
            };
            pick(a).max(pick(b))
        })
        .collect()
}

/// The element of `t` that output index `index` reads under broadcasting.
fn broadcast_get(t: &Tensor<f64>, index: &[usize]) -> f64 {
    let lead = index.len() - t.ndim();
    let i: Vec<usize> = (0..t.ndim())
        .map(|k| if t.dim(k) == 1 { 0 } else { index[lead + k] })
        .collect();
    t.get(&i)
}

/// The binary kernels under test, with their scalar definitions.
type Binary = (&'static str, fn(f64, f64) -> f64);
const BINARY: &[Binary] = &[
    ("add", |a, b| a + b),
    ("sub", |a, b| a - b),
    ("mul", |a, b| a * b),
    ("div", |a, b| a / b),
    ("maximum", |a, b| if a >= b { a } else { b }),
    ("minimum", |a, b| if a <= b { a } else { b }),
    ("gt", |a, b| (a > b) as u8 as f64),
    ("ge", |a, b| (a >= b) as u8 as f64),
    ("lt", |a, b| (a < b) as u8 as f64),
    ("le", |a, b| (a <= b) as u8 as f64),
    ("eq", |a, b| (a == b) as u8 as f64),
    ("ne", |a, b| (a != b) as u8 as f64),
    ("masked_fill", |a, m| if m != 0.0 { 7.5 } else { a }),
];

fn run_binary(name: &str, lhs: &Tensor<f64>, rhs: &Tensor<f64>) -> Tensor<f64> {
    match name {
        "add" => lhs.add(rhs),
        "sub" => lhs.sub(rhs),
        "mul" => lhs.mul(rhs),
        "div" => lhs.div(rhs),
        "maximum" => lhs.maximum(rhs),
        "minimum" => lhs.minimum(rhs),
        "gt" => lhs.gt(rhs),
        "ge" => lhs.ge(rhs),
        "lt" => lhs.lt(rhs),
        "le" => lhs.le(rhs),
        "eq" => lhs.eq(rhs),
        "ne" => lhs.ne(rhs),
        "masked_fill" => lhs.masked_fill(rhs, 7.5),
        _ => unreachable!("no binary kernel {name}"),
    }
}

/// The unary kernels under test, with their scalar definitions (inputs are
/// made positive for `ln` and `sqrt`).
type Unary = (&'static str, fn(f64) -> f64);
/// The scalar functions are the crate's own (`tensor::math`, the same
/// bits on every platform), which the kernels must apply exactly.
const UNARY: &[Unary] = &[
    ("exp", math::exp),
    ("ln", |a| math::ln(a.abs())),
    ("tanh", math::tanh),
    ("relu", |a| if a > 0.0 { a } else { 0.0 }),
    ("sqrt", |a| a.abs().sqrt()),
    ("square", |a| a * a),
    ("neg", |a| -a),
    ("add_scalar", |a| a + 0.25),
    ("mul_scalar", |a| a * -1.5),
    ("map", |a| a.sin() * 3.0),
];

fn run_unary(name: &str, x: &Tensor<f64>) -> Tensor<f64> {
    match name {
        "exp" => x.exp(),
        "ln" => x.map(f64::abs).ln(),
        "tanh" => x.tanh(),
        "relu" => x.relu(),
        "sqrt" => x.map(f64::abs).sqrt(),
        "square" => x.square(),
        "neg" => x.neg(),
        "add_scalar" => x.add_scalar(0.25),
        "mul_scalar" => x.mul_scalar(-1.5),
        "map" => x.map(|a| a.sin() * 3.0),
        _ => unreachable!("no unary kernel {name}"),
    }
}

/// Sum-like results are compared against `rtol · Σ|terms|`: reordering a sum
/// of `n` terms moves it by at most `n·ε·Σ|terms|`, and much less in practice.
fn assert_sum_close(what: &str, got: f64, expected: f64, abs_sum: f64) {
    let tol = KERNEL_RTOL * abs_sum.max(1.0);
    assert!(
        (got - expected).abs() <= tol,
        "{what}: got {got:e}, expected {expected:e} (tolerance {tol:e})"
    );
}

/// A naive reduction over `axes` with keepdim: `(values, Σ|x| per slot)`.
fn naive_reduce(
    x: &Tensor<f64>,
    axes: &[usize],
    init: f64,
    combine: impl Fn(f64, f64) -> f64,
) -> (Vec<usize>, Vec<f64>, Vec<f64>) {
    let mut out_shape = x.shape().to_vec();
    for &a in axes {
        out_shape[a] = 1;
    }
    let slots = multi_indices(&out_shape);
    let mut values = Vec::with_capacity(slots.len());
    let mut abs_sums = Vec::with_capacity(slots.len());
    for slot in &slots {
        // Loop over the reduced axes only, with the others fixed at `slot`.
        let reduced: Vec<usize> = axes.iter().map(|&a| x.dim(a)).collect();
        let (mut acc, mut abs) = (init, 0.0);
        for r in multi_indices(&reduced) {
            let mut index = slot.clone();
            for (&a, &i) in axes.iter().zip(&r) {
                index[a] = i;
            }
            let v = x.get(&index);
            acc = combine(acc, v);
            abs += v.abs();
        }
        values.push(acc);
        abs_sums.push(abs);
    }
    (out_shape, values, abs_sums)
}

/// `[m, k] · [k, n]` by the triple loop: `(values, Σ|aᵢₚ·bₚⱼ| per entry)`.
fn naive_matmul(a: &Tensor<f64>, b: &Tensor<f64>) -> (Vec<f64>, Vec<f64>) {
    let (m, k, n) = (a.dim(0), a.dim(1), b.dim(1));
    let (mut values, mut abs) = (vec![0.0; m * n], vec![0.0; m * n]);
    for i in 0..m {
        for j in 0..n {
            for p in 0..k {
                let t = a.get(&[i, p]) * b.get(&[p, j]);
                values[i * n + j] += t;
                abs[i * n + j] += t.abs();
            }
        }
    }
    (values, abs)
}

/// Matmul operands `[m, k]`, `[k, n]` as random views, mostly small, with
/// thin shapes (m or n ≤ 4) and 1-sized axes common.
fn matmul_case() -> impl Strategy<Value = (usize, usize, usize, ViewSpec, ViewSpec, u64)> {
    let dim = prop_oneof![1 => 1usize..=4, 2 => 1usize..=40];
    (
        dim.clone(),
        1usize..=40,
        dim,
        view_spec(2, true),
        view_spec(2, true),
        any::<u64>(),
    )
}

/// The direct 7-loop convolution with its per-output `Σ|terms|`:
/// `out[b,o,y,x] = bias[o] + Σ_{c,i,j} w[o,c,i,j]·x[b,c,y+i−p,x+j−p]`.
fn naive_conv2d(
    x: &Tensor<f64>,
    w: &Tensor<f64>,
    bias: Option<&Tensor<f64>>,
    p: usize,
) -> (Vec<usize>, Vec<f64>, Vec<f64>) {
    let (batch, c_in, h, wd) = (x.dim(0), x.dim(1), x.dim(2), x.dim(3));
    let (c_out, k) = (w.dim(0), w.dim(2));
    let (oh, ow) = (h + 2 * p + 1 - k, wd + 2 * p + 1 - k);
    let (mut out, mut abs) = (vec![], vec![]);
    for b in 0..batch {
        for o in 0..c_out {
            for y in 0..oh {
                for xx in 0..ow {
                    let mut acc = bias.map_or(0.0, |t| t.get(&[o]));
                    let mut mag = acc.abs();
                    for c in 0..c_in {
                        for i in 0..k {
                            for j in 0..k {
                                let (iy, ix) = (y + i, xx + j);
                                if iy < p || ix < p || iy - p >= h || ix - p >= wd {
                                    continue;
                                }
                                let t = w.get(&[o, c, i, j]) * x.get(&[b, c, iy - p, ix - p]);
                                acc += t;
                                mag += t.abs();
                            }
                        }
                    }
                    out.push(acc);
                    abs.push(mag);
                }
            }
        }
    }
    (vec![batch, c_out, oh, ow], out, abs)
}

/// The weight gradient by its definition:
/// `∂L/∂w[o,c,i,j] = Σ_{b,y,x} g[b,o,y,x]·x[b,c,y+i−p,x+j−p]`, with `Σ|terms|`.
fn naive_conv2d_weight_grad(
    x: &Tensor<f64>,
    g: &Tensor<f64>,
    k: usize,
    p: usize,
) -> (Vec<f64>, Vec<f64>) {
    let (batch, c_in, h, wd) = (x.dim(0), x.dim(1), x.dim(2), x.dim(3));
    let (c_out, oh, ow) = (g.dim(1), g.dim(2), g.dim(3));
    let (mut out, mut abs) = (vec![], vec![]);
    for o in 0..c_out {
        for c in 0..c_in {
            for i in 0..k {
                for j in 0..k {
                    let (mut acc, mut mag) = (0.0, 0.0);
                    for b in 0..batch {
                        for y in 0..oh {
                            for xx in 0..ow {
                                let (iy, ix) = (y + i, xx + j);
                                if iy < p || ix < p || iy - p >= h || ix - p >= wd {
                                    continue;
                                }
                                let t = g.get(&[b, o, y, xx]) * x.get(&[b, c, iy - p, ix - p]);
                                acc += t;
                                mag += t.abs();
                            }
                        }
                    }
                    out.push(acc);
                    abs.push(mag);
                }
            }
        }
    }
    (out, abs)
}

/// `⟨a, b⟩` with `Σ|aᵢbᵢ|`.
fn inner(a: &[f64], b: &[f64]) -> (f64, f64) {
    a.iter()
        .zip(b)
        .fold((0.0, 0.0), |(s, m), (x, y)| (s + x * y, m + (x * y).abs()))
}

/// Convolution sizes `(batch, c_in, c_out, k, h, w, padding)`, with the
/// padding raised where needed so the kernel fits the padded image. Kernel
/// sizes 1 to 5, odd and even.
fn conv_sizes() -> impl Strategy<Value = (usize, usize, usize, usize, usize, usize, usize)> {
    (
        1usize..=3,
        1usize..=3,
        1usize..=4,
        1usize..=5,
        1usize..=8,
        1usize..=8,
        0usize..=3,
    )
        .prop_map(|(b, c, o, k, h, w, p)| {
            let need = k.saturating_sub(h.min(w)).div_ceil(2);
            (b, c, o, k, h, w, p.max(need))
        })
}

/// Checks conv2d and both backward kernels at one point: forward against
/// the 7-loop reference, the weight gradient against its definition, and
/// the input gradient by the adjoint identity `⟨conv(x), g⟩ = ⟨x, A*(g)⟩`
/// and the weight gradient by `⟨conv_w(x), g⟩ = ⟨w, ∂_w⟩` (conv is linear in
/// each of x and w).
fn check_conv(x: &Tensor<f64>, w: &Tensor<f64>, bias: Option<&Tensor<f64>>, p: usize, seed: u64) {
    let k = w.dim(2);
    let out = x.conv2d(w, bias, p);
    let (shape, expected, abs) = naive_conv2d(x, w, bias, p);
    assert_eq!(out.shape(), &shape[..], "conv2d: output shape");
    for (i, ((g, e), a)) in out.to_vec().iter().zip(&expected).zip(&abs).enumerate() {
        assert_sum_close(&format!("conv2d index {i}"), *g, *e, *a);
    }

    let grad = randn(&shape, seed ^ 0x9e37);
    // Input gradient: ⟨conv(x) − bias, g⟩ = ⟨x, conv2d_input_grad(g)⟩.
    let plain = x.conv2d(w, None, p).to_vec();
    let grad_in = Tensor::conv2d_input_grad(&grad, w, x.shape(), p);
    assert_eq!(grad_in.shape(), x.shape(), "conv2d_input_grad: shape");
    let (lhs, lhs_abs) = inner(&plain, &grad.to_vec());
    let (rhs, rhs_abs) = inner(&naive_values(x), &grad_in.to_vec());
    assert_sum_close(
        "⟨conv(x), g⟩ = ⟨x, A*g⟩",
        lhs,
        rhs,
        lhs_abs.max(rhs_abs) * 8.0,
    );

    // Weight gradient: its definition, and ⟨conv_w(x), g⟩ = ⟨w, ∂L/∂w⟩.
    let grad_w = Tensor::conv2d_weight_grad(x, &grad, k, p);
    assert_eq!(grad_w.shape(), w.shape(), "conv2d_weight_grad: shape");
    let (expected_w, abs_w) = naive_conv2d_weight_grad(x, &grad, k, p);
    for (i, ((g, e), a)) in grad_w
        .to_vec()
        .iter()
        .zip(&expected_w)
        .zip(&abs_w)
        .enumerate()
    {
        assert_sum_close(&format!("conv2d_weight_grad index {i}"), *g, *e, *a);
    }
    let (rhs_w, rhs_w_abs) = inner(&naive_values(w), &grad_w.to_vec());
    assert_sum_close(
        "⟨conv_w(x), g⟩ = ⟨w, ∂w⟩",
        lhs,
        rhs_w,
        lhs_abs.max(rhs_w_abs) * 8.0,
    );

    // Bias gradient: Σ over batch, height and width.
    if let Some(b) = bias {
        let grad_b = Tensor::conv2d_bias_grad(&grad);
        assert_eq!(grad_b.shape(), b.shape());
        let (_, sums, sum_abs) = naive_reduce(&grad, &[0, 2, 3], 0.0, |a, v| a + v);
        for (i, ((g, e), a)) in grad_b.to_vec().iter().zip(&sums).zip(&sum_abs).enumerate() {
            assert_sum_close(&format!("conv2d_bias_grad index {i}"), *g, *e, *a);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn unary_kernels_match_the_scalar_function(
        (shape, spec) in shaped_view(any_shape()),
        which in 0..UNARY.len(),
        seed in any::<u64>(),
    ) {
        let x = make_view(&shape, &spec, seed);
        let (name, f) = UNARY[which];
        let got = run_unary(name, &x);
        prop_assert_eq!(got.shape(), &shape[..]);
        prop_assert!(got.is_contiguous());
        let expected: Vec<f64> = naive_values(&x).into_iter().map(f).collect();
        assert_agree(name, &got.to_vec(), &expected, EXACT);
    }

    #[test]
    fn binary_kernels_broadcast_like_numpy(
        (lhs_shape, lhs_spec, rhs_shape, rhs_spec) in any_shape().prop_flat_map(|out| {
            (broadcast_operand(out.clone()), broadcast_operand(out))
                .prop_map(|((a, sa), (b, sb))| (a, sa, b, sb))
        }),
        which in 0..BINARY.len(),
        swap in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let (lhs_shape, lhs_spec, rhs_shape, rhs_spec) = if swap {
            (rhs_shape, rhs_spec, lhs_shape, lhs_spec)
        } else {
            (lhs_shape, lhs_spec, rhs_shape, rhs_spec)
        };
        // Small integers half the time, so that `eq`, `ge` and `le` see ties.
        let (lhs, rhs) = if seed % 2 == 0 {
            (make_view(&lhs_shape, &lhs_spec, seed), make_view(&rhs_shape, &rhs_spec, seed ^ 1))
        } else {
            (make_int_view(&lhs_shape, &lhs_spec, seed), make_int_view(&rhs_shape, &rhs_spec, seed ^ 1))
        };
        let (name, f) = BINARY[which];
        let got = run_binary(name, &lhs, &rhs);
        let shape = naive_broadcast(&lhs_shape, &rhs_shape);
        prop_assert_eq!(got.shape(), &shape[..]);
        let expected: Vec<f64> = multi_indices(&shape)
            .iter()
            .map(|i| f(broadcast_get(&lhs, i), broadcast_get(&rhs, i)))
            .collect();
        assert_agree(name, &got.to_vec(), &expected, EXACT);
    }

    #[test]
    fn binary_kernels_read_strided_views_of_the_same_shape(
        (shape, lhs_spec, rhs_spec) in shaped_views2(any_shape()),
        which in 0..BINARY.len(),
        seed in any::<u64>(),
    ) {
        // Same shapes on both sides (the path `a + b` takes in a layer),
        // each operand contiguous or a view.
        let lhs = make_int_view(&shape, &lhs_spec, seed);
        let rhs = make_int_view(&shape, &rhs_spec, seed ^ 5);
        let (name, f) = BINARY[which];
        let got = run_binary(name, &lhs, &rhs);
        let expected: Vec<f64> = naive_values(&lhs)
            .into_iter()
            .zip(naive_values(&rhs))
            .map(|(a, b)| f(a, b))
            .collect();
        assert_agree(name, &got.to_vec(), &expected, EXACT);
    }

    #[test]
    fn select_picks_by_the_condition(
        (shape, spec, cond_spec) in shaped_views2(any_shape()),
        seed in any::<u64>(),
    ) {
        let rank = shape.len();
        let cond = make_view(&shape, &cond_spec, seed).gt(&Tensor::scalar(0.3));
        let on_true = make_view(&shape, &spec, seed ^ 2);
        let on_false = randn(&[*shape.last().unwrap()], seed ^ 3);
        let got = Tensor::select(&cond, &on_true, &on_false);
        let expected: Vec<f64> = multi_indices(&shape)
            .iter()
            .map(|i| {
                if cond.get(i) != 0.0 {
                    on_true.get(i)
                } else {
                    on_false.get(&[i[rank - 1]])
                }
            })
            .collect();
        assert_agree("select", &got.to_vec(), &expected, EXACT);
    }

    #[test]
    fn reductions_match_nested_loops(
        (shape, spec) in shaped_view(any_shape()),
        axis_mask in prop::collection::vec(any::<bool>(), 4),
        scale in prop_oneof![Just(1.0), Just(400.0)],
        seed in any::<u64>(),
    ) {
        // `scale` 400 puts exp(x) far outside f64's range: logsumexp must
        // still be finite (it is computed with the max shifted out).
        let x = make_view(&shape, &spec, seed).mul_scalar(scale);
        let axes: Vec<usize> = (0..shape.len()).filter(|&k| axis_mask[k]).collect();
        let keep = |t: Tensor<f64>, out_shape: &[usize]| {
            prop_assert_eq!(t.shape(), out_shape);
            Ok(t.to_vec())
        };

        let (out_shape, sums, abs) = naive_reduce(&x, &axes, 0.0, |a, v| a + v);
        let got = keep(x.sum_axes_keepdim(&axes), &out_shape)?;
        for i in 0..sums.len() {
            assert_sum_close("sum", got[i], sums[i], abs[i]);
        }
        let count: usize = axes.iter().map(|&a| shape[a]).product();
        let got = keep(x.mean_axes_keepdim(&axes), &out_shape)?;
        for i in 0..sums.len() {
            assert_sum_close("mean", got[i], sums[i] / count as f64, abs[i] / count as f64);
        }
        let (_, maxes, _) = naive_reduce(&x, &axes, f64::NEG_INFINITY, f64::max);
        assert_agree("max", &keep(x.max_axes_keepdim(&axes), &out_shape)?, &maxes, EXACT);
        let (_, mins, _) = naive_reduce(&x, &axes, f64::INFINITY, f64::min);
        assert_agree("min", &keep(x.min_axes_keepdim(&axes), &out_shape)?, &mins, EXACT);

        // logsumexp: m + ln Σ exp(x − m), m the slot's max; Σ exp(x − m) ∈ [1, n].
        let shifted = x.sub(&Tensor::from_vec(maxes.clone(), &out_shape));
        let (_, exp_sums, _) = naive_reduce(&shifted, &axes, 0.0, |a, v| a + v.exp());
        let expected: Vec<f64> = maxes.iter().zip(&exp_sums).map(|(m, s)| m + s.ln()).collect();
        let got = keep(x.logsumexp_axes_keepdim(&axes), &out_shape)?;
        prop_assert!(got.iter().all(|v| v.is_finite()), "logsumexp overflowed");
        assert_agree("logsumexp", &got, &expected, KERNEL_RTOL * 10.0);

        // Dropping the axes changes only the shape.
        let dropped: Vec<usize> = (0..shape.len()).filter(|k| !axes.contains(k)).map(|k| shape[k]).collect();
        prop_assert_eq!(x.sum_axes(&axes).shape().to_vec(), dropped);
        prop_assert_eq!(x.max_axes(&axes).to_vec(), maxes);
        let total: f64 = naive_values(&x).iter().sum();
        let total_abs: f64 = naive_values(&x).iter().map(|v| v.abs()).sum();
        assert_sum_close("sum_all", x.sum_all().item(), total, total_abs);
        assert_sum_close("mean_all", x.mean_all().item(), total / x.numel() as f64, total_abs / x.numel() as f64);
    }

    #[test]
    fn sum_to_shape_sums_what_broadcast_repeated(
        (target, lead) in (small_shape(), prop::collection::vec(1usize..=3, 0..=2)),
        spec in view_spec(6, true),
        seed in any::<u64>(),
    ) {
        // A gradient of the broadcast shape (new leading axes, 1-sized axes
        // grown to 3), summed back to `target`: each entry is the sum of the
        // copies of its slot.
        let big_shape: Vec<usize> = lead
            .iter()
            .copied()
            .chain(target.iter().map(|&n| if n == 1 { 3 } else { n }))
            .collect();
        let rank = big_shape.len();
        let spec = ViewSpec {
            perm: spec.perm.iter().copied().filter(|&k| k < rank).collect(),
            margin: spec.margin[..rank].to_vec(),
            broadcast: spec.broadcast[..rank].to_vec(),
        };
        let g = make_view(&big_shape, &spec, seed);
        let got = g.sum_to_shape(&target);
        prop_assert_eq!(got.shape(), &target[..]);
        let mut expected = vec![0.0; target.iter().product()];
        let mut abs = vec![0.0; expected.len()];
        let strides = flowzoo::tensor::layout::row_major_strides(&target);
        for i in multi_indices(&big_shape) {
            let at: usize = (0..target.len())
                .map(|k| if target[k] == 1 { 0 } else { i[lead.len() + k] * strides[k] })
                .sum();
            expected[at] += g.get(&i);
            abs[at] += g.get(&i).abs();
        }
        let got = got.to_vec();
        for i in 0..expected.len() {
            assert_sum_close("sum_to_shape", got[i], expected[i], abs[i]);
        }
    }

    #[test]
    fn matmul_matches_the_triple_loop_on_views((m, k, n, sa, sb, seed) in matmul_case()) {
        // Thin (m or n ≤ 4), transposed, narrowed and stride-0 operands.
        let a = make_view(&[m, k], &sa, seed);
        let b = make_view(&[k, n], &sb, seed ^ 7);
        let got = a.matmul(&b);
        prop_assert_eq!(got.shape(), &[m, n][..]);
        let (expected, abs) = naive_matmul(&a, &b);
        let got = got.to_vec();
        for i in 0..expected.len() {
            assert_sum_close("matmul", got[i], expected[i], abs[i]);
        }
    }

    #[test]
    fn batched_matmul_matches_per_batch_products(
        (m, k, n, sa, sb, seed) in matmul_case(),
        batch in 1usize..=4,
        ranks in prop_oneof![Just((3, 3)), Just((2, 3)), Just((3, 2))],
        spec3 in view_spec(3, true),
    ) {
        let a3 = make_view(&[batch, m, k], &spec3, seed);
        let b3 = make_view(&[batch, k, n], &ViewSpec::contiguous(3), seed ^ 9);
        let a2 = make_view(&[m, k], &sa, seed ^ 11);
        let b2 = make_view(&[k, n], &sb, seed ^ 13);
        let (a, b) = match ranks {
            (3, 3) => (a3.clone(), b3.clone()),
            (2, 3) => (a2.clone(), b3.clone()),
            _ => (a3.clone(), b2.clone()),
        };
        let got = a.matmul(&b);
        prop_assert_eq!(got.shape(), &[batch, m, n][..]);
        for r in 0..batch {
            let ar = if a.ndim() == 3 { a.narrow(0, r, 1).squeeze(0) } else { a.clone() };
            let br = if b.ndim() == 3 { b.narrow(0, r, 1).squeeze(0) } else { b.clone() };
            let (expected, abs) = naive_matmul(&ar, &br);
            let got_r = got.narrow(0, r, 1).to_vec();
            for i in 0..expected.len() {
                assert_sum_close("batched matmul", got_r[i], expected[i], abs[i]);
            }
        }
    }

    #[test]
    fn linear_is_matmul_plus_bias(
        (m, k, n, sa, sb, seed) in matmul_case(),
    ) {
        let x = make_view(&[m, k], &sa, seed);
        let w = make_view(&[k, n], &sb, seed ^ 3);
        let bias = randn(&[n], seed ^ 4);
        let got = x.linear(&w, &bias).to_vec();
        let (product, abs) = naive_matmul(&x, &w);
        for i in 0..m {
            for j in 0..n {
                let e = product[i * n + j] + bias.get(&[j]);
                assert_sum_close("linear", got[i * n + j], e, abs[i * n + j] + bias.get(&[j]).abs());
            }
        }
    }

    #[test]
    fn conv2d_and_its_backward_kernels_match_direct_loops(
        (batch, c_in, c_out, k, h, w, p) in conv_sizes(),
        spec in view_spec(4, true),
        with_bias in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let x = make_view(&[batch, c_in, h, w], &spec, seed);
        let weight = randn(&[c_out, c_in, k, k], seed ^ 21);
        let bias = randn(&[c_out], seed ^ 22);
        check_conv(&x, &weight, with_bias.then_some(&bias), p, seed);
    }
}

proptest! {
    // Large cases: fewer, since the references are nested loops.
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn parallel_matmul_matches_the_triple_loop(
        m in 16usize..=96,
        k in 60usize..=160,
        n in 60usize..=140,
        sa in view_spec(2, false),
        sb in view_spec(2, false),
        seed in any::<u64>(),
    ) {
        // m·k·n ≥ 16·60·60·… crosses PAR_MIN_MATMUL_FLOPS = 2^20 for most
        // draws, so the row split across threads runs.
        let a = make_view(&[m, k], &sa, seed);
        let b = make_view(&[k, n], &sb, seed ^ 7);
        let got = a.matmul(&b).to_vec();
        let (expected, abs) = naive_matmul(&a, &b);
        for i in 0..expected.len() {
            assert_sum_close("parallel matmul", got[i], expected[i], abs[i]);
        }
    }

    #[test]
    fn parallel_conv2d_matches_direct_loops(
        batch in 6usize..=8,
        c_in in 8usize..=10,
        c_out in 16usize..=18,
        spec in view_spec(4, false),
        seed in any::<u64>(),
    ) {
        // batch·c_out·16²·c_in·9 ≥ 6·16·256·72 = 1.8M multiply-adds, above
        // PAR_MIN_MATMUL_FLOPS: groups of images run on rayon's threads.
        let x = make_view(&[batch, c_in, 16, 16], &spec, seed);
        let weight = randn(&[c_out, c_in, 3, 3], seed ^ 21);
        let bias = randn(&[c_out], seed ^ 22);
        check_conv(&x, &weight, Some(&bias), 1, seed);
    }
}

#[test]
fn conv2d_same_padding_keeps_the_image_size_for_odd_kernels() {
    for k in [1, 3, 5, 7] {
        let x = randn(&[2, 3, 9, 6], k as u64);
        let w = randn(&[4, 3, k, k], 100 + k as u64);
        assert_eq!(x.conv2d(&w, None, (k - 1) / 2).shape(), &[2, 4, 9, 6]);
    }
}

#[test]
fn conv2d_weight_grad_is_reproducible() {
    // The batch sum runs in a fixed order for a given thread count.
    let x = randn(&[8, 8, 16, 16], 1);
    let g = randn(&[8, 16, 16, 16], 2);
    let first = Tensor::conv2d_weight_grad(&x, &g, 3, 1).to_vec();
    for _ in 0..3 {
        assert_eq!(Tensor::conv2d_weight_grad(&x, &g, 3, 1).to_vec(), first);
    }
}

#[test]
#[should_panic(expected = "add: shapes do not broadcast: lhs [2, 3], rhs [4]")]
fn add_names_both_shapes_when_they_do_not_broadcast() {
    let _ = Tensor::<f64>::zeros(&[2, 3]).add(&Tensor::zeros(&[4]));
}

#[test]
#[should_panic(expected = "ge: shapes do not broadcast: lhs [2, 3], rhs [2]")]
fn comparisons_name_both_shapes_when_they_do_not_broadcast() {
    let _ = Tensor::<f64>::zeros(&[2, 3]).ge(&Tensor::zeros(&[2]));
}

#[test]
#[should_panic(expected = "masked_fill: shapes do not broadcast: lhs [3], rhs [2, 2]")]
fn masked_fill_names_both_shapes_when_they_do_not_broadcast() {
    let _ = Tensor::<f64>::zeros(&[3]).masked_fill(&Tensor::zeros(&[2, 2]), 1.0);
}

#[test]
#[should_panic(expected = "matmul: inner dimensions differ: lhs [4, 3], rhs [5, 2]")]
fn matmul_names_both_shapes_when_inner_dimensions_differ() {
    let _ = Tensor::<f64>::zeros(&[4, 3]).matmul(&Tensor::zeros(&[5, 2]));
}

#[test]
#[should_panic(expected = "matmul: batch sizes differ: lhs [2, 4, 3], rhs [3, 3, 2]")]
fn batched_matmul_names_both_shapes_when_batches_differ() {
    let _ = Tensor::<f64>::zeros(&[2, 4, 3]).matmul(&Tensor::zeros(&[3, 3, 2]));
}

#[test]
#[should_panic(expected = "conv2d: input channels differ: input [1, 2, 5, 5], weight [3, 4, 3, 3]")]
fn conv2d_names_both_shapes_when_channels_differ() {
    let _ = Tensor::<f64>::zeros(&[1, 2, 5, 5]).conv2d(&Tensor::zeros(&[3, 4, 3, 3]), None, 1);
}

#[test]
#[should_panic(
    expected = "conv2d: bias must be [out_channels]: input [1, 2, 5, 5], weight [3, 2, 3, 3], bias [2]"
)]
fn conv2d_names_the_shapes_when_the_bias_does_not_fit() {
    let bias = Tensor::<f64>::zeros(&[2]);
    let _ =
        Tensor::<f64>::zeros(&[1, 2, 5, 5]).conv2d(&Tensor::zeros(&[3, 2, 3, 3]), Some(&bias), 1);
}

#[test]
#[should_panic(
    expected = "conv2d: kernel larger than the padded image (padding 0): input [1, 1, 2, 2], weight [1, 1, 3, 3]"
)]
fn conv2d_names_the_shapes_when_the_kernel_does_not_fit() {
    let _ = Tensor::<f64>::zeros(&[1, 1, 2, 2]).conv2d(&Tensor::zeros(&[1, 1, 3, 3]), None, 0);
}

#[test]
#[should_panic(
    expected = "conv2d_input_grad: grad_out [1, 3, 4, 4] is not the output shape [1, 3, 5, 5] of input [1, 2, 5, 5], weight [3, 2, 3, 3], padding 1"
)]
fn conv2d_input_grad_names_the_shapes_when_grad_out_does_not_fit() {
    let _ = Tensor::conv2d_input_grad(
        &Tensor::<f64>::zeros(&[1, 3, 4, 4]),
        &Tensor::zeros(&[3, 2, 3, 3]),
        &[1, 2, 5, 5],
        1,
    );
}

#[test]
#[should_panic(
    expected = "conv2d_weight_grad: grad_out [2, 3, 5, 5] is not the output shape [2, 3, 3, 3] of input [2, 2, 5, 5] with kernel 3, padding 0"
)]
fn conv2d_weight_grad_names_the_shapes_when_grad_out_does_not_fit() {
    let _ = Tensor::conv2d_weight_grad(
        &Tensor::<f64>::zeros(&[2, 2, 5, 5]),
        &Tensor::zeros(&[2, 3, 5, 5]),
        3,
        0,
    );
}

/// A 0/1 mask `[inp, out]` of one of four kinds: a MADE-like mask from
/// sorted degrees (a staircase), the same from shuffled degrees (ones
/// scattered), a reversed staircase, or independent coin flips.
fn test_mask(inp: usize, out: usize, kind: usize, seed: u64) -> Tensor<f64> {
    use rand::seq::SliceRandom;
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let top = inp.max(out);
    let mut rows: Vec<usize> = (0..inp).map(|_| rng.gen_range(1..=top)).collect();
    let mut cols: Vec<usize> = (0..out).map(|_| rng.gen_range(1..=top)).collect();
    rows.sort_unstable();
    cols.sort_unstable();
    match kind {
        1 => {
            rows.shuffle(&mut rng);
            cols.shuffle(&mut rng);
        }
        2 => rows.reverse(),
        _ => {}
    }
    let p: f64 = rng.gen_range(0.0..1.0);
    let data = (0..inp * out)
        .map(|i| {
            let (r, c) = (i / out, i % out);
            let one = match kind {
                3 => rng.gen_bool(p),
                _ => cols[c] >= rows[r],
            };
            if one {
                1.0
            } else {
                0.0
            }
        })
        .collect();
    Tensor::from_vec(data, &[inp, out])
}

proptest! {
    // Large cases: fewer, since the references are nested loops.
    #![proptest_config(ProptestConfig::with_cases(24))]

    // The products of a masked weight that skip the mask's zero tiles
    // (`tensor::blocked`, a MADE's layers) against x·(W ⊙ M) + b and its two
    // gradients by triple loops; batches from 1 (the thin path) to 300
    // (above PAR_MIN_MATMUL_FLOPS, so the split across threads runs), tiles
    // from 1 (every tile thin) to 80.
    #[test]
    fn block_masked_products_match_the_dense_masked_ones(
        batch in prop_oneof![1usize..=5, 16usize..=300],
        inp in 1usize..=160,
        out in 1usize..=160,
        kind in 0usize..4,
        tile in prop_oneof![1usize..=8, 9usize..=80],
        seed in any::<u64>(),
    ) {
        use flowzoo::tensor::blocked::BlockMask;
        let mask = test_mask(inp, out, kind, seed);
        let blocks = BlockMask::with_tile(&mask, tile);
        let ms = mask.to_vec();
        // The tiles are disjoint, cover every one, and a full tile is all ones.
        let mut covered = vec![0u8; inp * out];
        for t in blocks.tiles() {
            for r in t.rows.clone() {
                for c in t.cols.clone() {
                    covered[r * out + c] += 1;
                    prop_assert!(!t.full || ms[r * out + c] == 1.0, "full tile {t:?} holds a zero");
                }
            }
        }
        for i in 0..inp * out {
            prop_assert!(covered[i] <= 1, "tiles overlap at {i}");
            prop_assert!(ms[i] == 0.0 || covered[i] == 1, "the one at {i} is not covered");
        }
        let (x, w, b, g) = (
            randn(&[batch, inp], seed ^ 1),
            randn(&[inp, out], seed ^ 2),
            randn(&[out], seed ^ 3),
            randn(&[batch, out], seed ^ 4),
        );
        let (xs, ws, bs, gs) = (x.to_vec(), w.to_vec(), b.to_vec(), g.to_vec());
        let masked = blocks.apply(&w);
        let y = x.block_masked_linear(&masked, &b, &blocks).to_vec();
        let dx = g.block_masked_input_grad(&masked, &blocks).to_vec();
        let dw = x.block_masked_weight_grad(&g, &blocks).to_vec();
        for i in 0..batch {
            for c in 0..out {
                let terms = (0..inp).map(|r| xs[i * inp + r] * ws[r * out + c] * ms[r * out + c]);
                let (e, abs) = terms.fold((bs[c], bs[c].abs()), |(s, a), t| (s + t, a + t.abs()));
                assert_sum_close("block_masked_linear", y[i * out + c], e, abs);
            }
            for r in 0..inp {
                let terms = (0..out).map(|c| gs[i * out + c] * ws[r * out + c] * ms[r * out + c]);
                let (e, abs) = terms.fold((0.0, 0.0), |(s, a), t: f64| (s + t, a + t.abs()));
                assert_sum_close("block_masked_input_grad", dx[i * inp + r], e, abs);
            }
        }
        for r in 0..inp {
            for c in 0..out {
                let terms = (0..batch).map(|i| xs[i * inp + r] * gs[i * out + c] * ms[r * out + c]);
                let (e, abs) = terms.fold((0.0, 0.0), |(s, a), t: f64| (s + t, a + t.abs()));
                assert_sum_close("block_masked_weight_grad", dw[r * out + c], e, abs);
            }
        }
    }
}
