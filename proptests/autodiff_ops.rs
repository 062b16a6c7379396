//! Every recorded op's gradient against central finite differences, in f64,
//! through the public `autodiff::gradcheck`: random shapes (1-sized axes
//! included), broadcast operands, and inputs reaching the op through strided
//! views (permuted, narrowed, broadcast), so the backward rules of the views
//! and the strided paths of the kernels are exercised too.
//!
//! Each loss is a weighted sum `Σ w ⊙ op(…)` with random weights `w`, not a
//! plain sum: with all-ones upstream gradients a rule that misplaces entries
//! (a missing transpose, a wrong broadcast axis) could still pass.
//!
//! Tolerances (`tolerance.rs`): `GRADCHECK_RTOL` at step `GRADCHECK_H`.
//! Inputs are kept away from the kinks of relu-like ops and of max by more
//! than the step, and matrices are kept well conditioned, so the finite
//! differences are accurate to far inside the tolerance.

use crate::strategies::{randn, rng};
use crate::tolerance::{GRADCHECK_H, GRADCHECK_RTOL};
use flowzoo::autodiff::{gradcheck, Var};
use flowzoo::tensor::blocked::BlockMask;
use flowzoo::tensor::linalg::{Diagonal, Triangle};
use flowzoo::tensor::Tensor;
use proptest::prelude::*;
use rand::seq::SliceRandom;
use rand::Rng;

/// How an input reaches the op under test.
#[derive(Clone, Copy, Debug)]
enum View {
    /// As it is (contiguous).
    Plain,
    /// Through a permutation reversing the axes.
    Permuted,
    /// Through a narrow of axis 0 (the source has 2 more entries there).
    Narrowed,
    /// Through a broadcast of axis 0 (the source has length 1 there).
    Broadcast,
}

fn view() -> impl Strategy<Value = View> {
    prop_oneof![
        Just(View::Plain),
        Just(View::Permuted),
        Just(View::Narrowed),
        Just(View::Broadcast)
    ]
}

/// An element-wise op under test.
type Unary = for<'t> fn(&Var<'t, f64>) -> Var<'t, f64>;

/// `x`, or its matrix transpose (a view) when `transposed`.
fn maybe_t<'t>(x: &Var<'t, f64>, transposed: bool) -> Var<'t, f64> {
    if transposed {
        x.transpose(0, 1)
    } else {
        x.clone()
    }
}

/// The shape a source tensor needs for `apply(view, …)` to have `shape`.
fn source_shape(view: View, shape: &[usize]) -> Vec<usize> {
    let mut s = shape.to_vec();
    match view {
        View::Plain => {}
        View::Permuted => s.reverse(),
        View::Narrowed => s[0] += 2,
        View::Broadcast => s[0] = 1,
    }
    s
}

/// The source seen through `view`, with shape `shape`.
fn apply<'t>(view: View, v: &Var<'t, f64>, shape: &[usize]) -> Var<'t, f64> {
    match view {
        View::Plain => v.clone(),
        View::Permuted => {
            let perm: Vec<usize> = (0..shape.len()).rev().collect();
            v.permute(&perm)
        }
        View::Narrowed => v.narrow(0, 1, shape[0]),
        View::Broadcast => v.broadcast_to(shape),
    }
}

/// Shapes of rank 1 to 4 with axes of length 1 to 3.
fn shape() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..=3, 1..=4)
}

/// A shape and one that broadcasts to it: some axes set to 1, some leading
/// axes dropped.
fn broadcast_pair() -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
    shape().prop_flat_map(|s| {
        let n = s.len();
        (
            Just(s),
            prop::collection::vec(any::<bool>(), n),
            0..=n.saturating_sub(1),
        )
            .prop_map(|(s, ones, drop)| {
                let b: Vec<usize> = s
                    .iter()
                    .zip(&ones)
                    .map(|(&d, &one)| if one { 1 } else { d })
                    .skip(drop)
                    .collect();
                (s, b)
            })
    })
}

/// `Σ w ⊙ y` with fixed random weights `w` of `y`'s shape.
fn weighted<'t>(y: &Var<'t, f64>, seed: u64) -> Var<'t, f64> {
    let w = randn(y.shape(), seed ^ 0x9e37_79b9);
    y.mul(&y.constant(w)).sum_all()
}

/// Runs `gradcheck` and turns a failure into a test failure with its message.
fn check(
    what: &str,
    inputs: Vec<Tensor<f64>>,
    f: impl for<'t> Fn(&[Var<'t, f64>]) -> Var<'t, f64>,
) -> Result<(), TestCaseError> {
    gradcheck(f, &inputs, GRADCHECK_H, GRADCHECK_RTOL)
        .map_err(|e| TestCaseError::fail(format!("{what}: {e}")))
}

/// `x` moved away from 0 by at least `margin` (for ops with a kink at 0).
fn off_zero(x: &Tensor<f64>, margin: f64) -> Tensor<f64> {
    x.map(|v| if v >= 0.0 { v + margin } else { v - margin })
}

/// Distinct values (a shuffled grid plus jitter far smaller than its step),
/// so that the maximum is unique and more than the step away from a tie.
fn distinct(shape: &[usize], seed: u64) -> Tensor<f64> {
    let n: usize = shape.iter().product();
    let mut r = rng(seed);
    let mut values: Vec<f64> = (0..n)
        .map(|k| 0.25 * k as f64 + 0.01 * r.gen::<f64>())
        .collect();
    values.shuffle(&mut r);
    Tensor::from_vec(values, shape)
}

/// A random `[n, n]` matrix plus `shift·I`: well conditioned for `shift`
/// well above the spread of the random part.
fn shifted_matrix(n: usize, shift: f64, seed: u64) -> Tensor<f64> {
    let a = randn(&[n, n], seed).mul_scalar(0.5);
    let eye = Tensor::from_vec(
        (0..n * n)
            .map(|k| if k / n == k % n { shift } else { 0.0 })
            .collect(),
        &[n, n],
    );
    a.add(&eye)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    // y = a ∘ b for ∘ in + − ⊙ / and aᵇ, b broadcast to a's shape, a through a view:
    // gradients summed back to each operand's shape.
    #[test]
    fn binary_ops_match_finite_differences(
        (s, bs) in broadcast_pair(), v in view(), seed in any::<u64>()
    ) {
        let a = randn(&source_shape(v, &s), seed);
        let b = randn(&bs, seed + 1);
        let positive_b = b.map(|x| x.abs() + 0.5);
        let positive_a = a.map(|x| x.abs() + 0.5);
        let s = &s;
        check("add", vec![a.clone(), b.clone()], |x| weighted(&apply(v, &x[0], s).add(&x[1]), seed))?;
        check("sub", vec![a.clone(), b.clone()], |x| weighted(&apply(v, &x[0], s).sub(&x[1]), seed))?;
        check("mul", vec![a.clone(), b.clone()], |x| weighted(&apply(v, &x[0], s).mul(&x[1]), seed))?;
        check("div", vec![a.clone(), positive_b.clone()], |x| {
            weighted(&apply(v, &x[0], s).div(&x[1]), seed)
        })?;
        // b on the left too: the broadcast operand first.
        check("div (broadcast numerator)", vec![b, positive_a.clone()], |x| {
            weighted(&x[0].div(&apply(v, &x[1], s)), seed)
        })?;
        check("pow", vec![positive_a, positive_b.mul_scalar(0.8)], |x| {
            weighted(&apply(v, &x[0], s).pow(&x[1]), seed)
        })?;
    }

    // y = f(a) element-wise, a through a strided view.
    #[test]
    fn unary_ops_match_finite_differences(s in shape(), v in view(), seed in any::<u64>()) {
        let a = randn(&source_shape(v, &s), seed);
        let positive = a.map(|x| x.abs() + 0.3);
        let s = &s;
        let unary: [(&str, &Tensor<f64>, Unary); 11] = [
            ("neg", &a, |x| x.neg()),
            ("add_scalar", &a, |x| x.add_scalar(1.5)),
            ("mul_scalar", &a, |x| x.mul_scalar(-2.5)),
            ("exp", &a, |x| x.exp()),
            ("ln", &positive, |x| x.ln()),
            ("log1p", &positive, |x| x.add_scalar(-0.2).log1p()),
            ("sqrt", &positive, |x| x.sqrt()),
            ("tanh", &a, |x| x.tanh()),
            ("sigmoid", &a, |x| x.mul_scalar(3.0).sigmoid()),
            ("softplus", &a, |x| x.mul_scalar(3.0).softplus()),
            ("log_sigmoid", &a, |x| x.mul_scalar(3.0).log_sigmoid()),
        ];
        for (name, input, f) in unary {
            check(name, vec![input.clone()], |x| weighted(&f(&apply(v, &x[0], s)), seed))?;
        }
        check("powf 3", vec![a.clone()], |x| weighted(&apply(v, &x[0], s).powf(3.0), seed))?;
        check("powf −1.5", vec![positive.clone()], |x| {
            weighted(&apply(v, &x[0], s).powf(-1.5), seed)
        })?;
        check("square", vec![a.clone()], |x| weighted(&apply(v, &x[0], s).square(), seed))?;
    }

    // relu, leaky_relu, elu: inputs more than 1e-2 from the kink at 0.
    #[test]
    fn piecewise_ops_match_finite_differences(s in shape(), v in view(), seed in any::<u64>()) {
        let a = off_zero(&randn(&source_shape(v, &s), seed), 1e-2);
        let s = &s;
        check("relu", vec![a.clone()], |x| weighted(&apply(v, &x[0], s).relu(), seed))?;
        check("leaky_relu", vec![a.clone()], |x| weighted(&apply(v, &x[0], s).leaky_relu(0.2), seed))?;
        check("elu", vec![a], |x| weighted(&apply(v, &x[0], s).elu(1.3), seed))?;
    }

    // Reductions over a random non-empty set of axes, with and without keepdim.
    #[test]
    fn reductions_match_finite_differences(
        s in shape(), v in view(), picks in prop::collection::vec(any::<bool>(), 4),
        seed in any::<u64>()
    ) {
        let mut axes: Vec<usize> = (0..s.len()).filter(|&k| picks[k]).collect();
        if axes.is_empty() {
            axes.push(s.len() - 1);
        }
        let a = randn(&source_shape(v, &s), seed);
        let (s, axes) = (&s, &axes);
        check("sum_axes", vec![a.clone()], |x| weighted(&apply(v, &x[0], s).sum_axes(axes), seed))?;
        check("sum_axes_keepdim", vec![a.clone()], |x| {
            weighted(&apply(v, &x[0], s).sum_axes_keepdim(axes), seed)
        })?;
        check("mean_axes", vec![a.clone()], |x| weighted(&apply(v, &x[0], s).mean_axes(axes), seed))?;
        check("logsumexp_axes", vec![a.clone()], |x| {
            weighted(&apply(v, &x[0], s).logsumexp_axes(axes), seed)
        })?;
        check("logsumexp_axes_keepdim", vec![a], |x| {
            weighted(&apply(v, &x[0], s).logsumexp_axes_keepdim(axes), seed)
        })?;
        // max: distinct values (a broadcast source would tie by construction).
        let plain = distinct(s, seed);
        check("max_axes", vec![plain], |x| weighted(&x[0].max_axes(axes), seed))?;
        let reversed = distinct(&source_shape(View::Permuted, s), seed);
        check("max_axes_keepdim of a permuted view", vec![reversed], |x| {
            weighted(&apply(View::Permuted, &x[0], s).max_axes_keepdim(axes), seed)
        })?;
    }

    // Matrix products: 2-D, batched, a 2-D operand shared over the batch on
    // either side, operands as transposed views; and the fused linear map.
    #[test]
    fn matmul_and_linear_match_finite_differences(
        m in 1usize..=4, k in 1usize..=4, n in 1usize..=5, batch in 1usize..=3,
        transposed in any::<bool>(), seed in any::<u64>()
    ) {
        // A: [m, k], given as [k, m] and transposed when `transposed`.
        let a2 = if transposed { randn(&[k, m], seed) } else { randn(&[m, k], seed) };
        let b2 = randn(&[k, n], seed + 1);
        let a3 = randn(&[batch, m, k], seed + 2);
        let b3 = randn(&[batch, n, k], seed + 3); // used as its transpose [batch, k, n]
        check("matmul 2-D", vec![a2.clone(), b2.clone()], |x| {
            weighted(&maybe_t(&x[0], transposed).matmul(&x[1]), seed)
        })?;
        check("matmul batched", vec![a3.clone(), b3.clone()], |x| {
            weighted(&x[0].matmul(&x[1].transpose(1, 2)), seed)
        })?;
        check("matmul [b,m,k]·[k,n]", vec![a3, b2.clone()], |x| {
            weighted(&x[0].matmul(&x[1]), seed)
        })?;
        check("matmul [m,k]·[b,k,n]", vec![a2.clone(), b3], |x| {
            weighted(&maybe_t(&x[0], transposed).matmul(&x[1].transpose(1, 2)), seed)
        })?;
        let bias = randn(&[n], seed + 4);
        check("linear", vec![a2.clone(), b2.clone(), bias.clone()], |x| {
            weighted(&maybe_t(&x[0], transposed).linear(&x[1], &x[2]), seed)
        })?;
        // x·(W ⊙ M) + b with a random 0/1 mask: tiles of 1 (the tile-by-tile
        // products whenever they save an eighth) and tiles of 64 (one tile:
        // the dense product of W ⊙ M).
        let mut r = rng(seed ^ 5);
        let mask = Tensor::from_vec(
            (0..k * n).map(|_| if r.gen_bool(0.5) { 1.0 } else { 0.0 }).collect(),
            &[k, n],
        );
        for tile in [1, 64] {
            let blocks = std::sync::Arc::new(BlockMask::with_tile(&mask, tile));
            check("masked_linear", vec![a2.clone(), b2.clone(), bias.clone()], |x| {
                weighted(&maybe_t(&x[0], transposed).masked_linear(&x[1], &x[2], &blocks), seed)
            })?;
        }
    }

    // Views and gathers: permute, narrow, reshape, broadcast, concat,
    // index_select (with repeated indices), masked_select, select.
    #[test]
    fn views_and_gathers_match_finite_differences(
        s in shape(), seed in any::<u64>(), axis_pick in any::<usize>()
    ) {
        let axis = axis_pick % s.len();
        let a = randn(&s, seed);
        let len = s[axis];
        let s = &s;
        let mut r = rng(seed);
        check("permute", vec![a.clone()], |x| {
            let perm: Vec<usize> = (0..s.len()).rev().collect();
            weighted(&x[0].permute(&perm), seed)
        })?;
        let start = r.gen_range(0..len);
        let width = r.gen_range(1..=len - start);
        check("narrow", vec![a.clone()], |x| weighted(&x[0].narrow(axis, start, width), seed))?;
        check("reshape of a transposed view", vec![a.clone()], |x| {
            let perm: Vec<usize> = (0..s.len()).rev().collect();
            weighted(&x[0].permute(&perm).reshape(&[s.iter().product()]), seed)
        })?;
        check("broadcast_to", vec![a.clone()], |x| {
            let mut big = vec![2];
            big.extend_from_slice(s);
            weighted(&x[0].broadcast_to(&big), seed)
        })?;
        let other = randn(s, seed + 1);
        check("concat", vec![a.clone(), other.clone()], |x| {
            weighted(&Var::concat(&[&x[0], &x[1], &x[0]], axis), seed)
        })?;
        let indices: Vec<usize> = (0..len + 2).map(|_| r.gen_range(0..len)).collect();
        check("index_select", vec![a.clone()], |x| {
            weighted(&x[0].index_select(axis, &indices), seed)
        })?;
        let mask = randn(s, seed + 2).map(|v| if v > 0.0 { 1.0 } else { 0.0 });
        check("masked_select", vec![a.clone()], |x| weighted(&x[0].masked_select(&mask), seed))?;
        // where(c, a, b) with the condition broadcast along axis 0.
        let mut cond_shape = s.clone();
        cond_shape[0] = 1;
        let cond = randn(&cond_shape, seed + 3).map(|v| if v > 0.0 { 1.0 } else { 0.0 });
        check("select", vec![a, other], |x| weighted(&Var::select(&cond, &x[0], &x[1]), seed))?;
    }

    // The image reshapes: squeeze 2×2 and its inverse, on a strided input.
    #[test]
    fn squeeze_2x2_matches_finite_differences(
        b in 1usize..=2, c in 1usize..=2, h in 1usize..=2, w in 1usize..=2,
        seed in any::<u64>()
    ) {
        let x = randn(&[b, c, 2 * h, 2 * w], seed);
        check("space_to_depth", vec![x.clone()], |v| weighted(&v[0].space_to_depth(2), seed))?;
        check("depth_to_space", vec![x], |v| {
            weighted(&v[0].permute(&[0, 1, 3, 2]).reshape(&[b, c * 4, w, h]).depth_to_space(2), seed)
        })?;
    }

    // conv2d: input, weight and bias, kernel 1 or 3, padding 0 or "same".
    #[test]
    fn conv2d_matches_finite_differences(
        b in 1usize..=2, c_in in 1usize..=2, c_out in 1usize..=2,
        h in 3usize..=4, w in 3usize..=4, kernel3 in any::<bool>(), same in any::<bool>(),
        seed in any::<u64>()
    ) {
        let k = if kernel3 { 3 } else { 1 };
        let padding = if same { (k - 1) / 2 } else { 0 };
        let x = randn(&[b, c_in, h, w], seed);
        let weight = randn(&[c_out, c_in, k, k], seed + 1);
        let bias = randn(&[c_out], seed + 2);
        check("conv2d", vec![x.clone(), weight.clone(), bias], |v| {
            weighted(&v[0].conv2d(&v[1], Some(&v[2]), padding), seed)
        })?;
        // The input as a strided view (a transposed image) and no bias.
        check("conv2d of a view", vec![x.permute(&[0, 1, 3, 2]).contiguous(), weight], |v| {
            weighted(&v[0].permute(&[0, 1, 3, 2]).conv2d(&v[1], None, padding), seed)
        })?;
    }

    // Linear algebra by closed forms: inverse, slogdet, triangular solve.
    #[test]
    fn linalg_ops_match_finite_differences(
        n in 1usize..=4, m in 1usize..=3, vector_rhs in any::<bool>(),
        lower in any::<bool>(), unit in any::<bool>(), seed in any::<u64>()
    ) {
        let a = shifted_matrix(n, 2.5, seed);
        check("inverse", vec![a.clone()], |v| weighted(&v[0].inverse(), seed))?;
        check("slogdet", vec![a.clone()], |v| v[0].slogdet().1)?;
        // A negative determinant: the sign is locally constant, the gradient the same.
        check("slogdet of −A", vec![a.neg()], |v| v[0].slogdet().1.mul_scalar(1.7))?;
        check("inverse of a transposed view", vec![a.clone()], |v| {
            weighted(&maybe_t(&v[0], true).inverse(), seed)
        })?;
        let rhs = if vector_rhs { randn(&[n], seed + 1) } else { randn(&[n, m], seed + 1) };
        let triangle = if lower { Triangle::Lower } else { Triangle::Upper };
        let diagonal = if unit { Diagonal::Unit } else { Diagonal::NonUnit };
        check("solve_triangular", vec![a, rhs], |v| {
            weighted(&v[0].solve_triangular(&v[1], triangle, diagonal), seed)
        })?;
    }
}

/// A failing rule must be caught: a deliberately wrong gradient (the
/// derivative of sin used for cos) fails gradcheck, so these tests can fail.
#[test]
fn gradcheck_rejects_a_wrong_gradient() {
    // f(x) = Σ x·x computed as x ⊙ stop_gradient(x): the tape sees only one
    // use, giving x where the truth is 2x.
    let x = Tensor::from_vec(vec![0.5, -1.0, 2.0], &[3]);
    let result = gradcheck(
        |v| v[0].mul(&v[0].detach()).sum_all(),
        &[x],
        GRADCHECK_H,
        GRADCHECK_RTOL,
    );
    let failure = result.expect_err("a wrong gradient must fail");
    assert!(
        (failure.analytic - 0.5).abs() < 1e-12 && (failure.numeric - 1.0).abs() < 1e-6,
        "{failure}"
    );
}

/// Σᵢ wᵢ accumulated in f64 with Neumaier's compensation, so the test's own
/// sum adds no error to the weights it checks.
fn compensated_sum(weights: impl IntoIterator<Item = f64>) -> f64 {
    let (mut sum, mut carry) = (0.0f64, 0.0f64);
    for w in weights {
        let next = sum + w;
        carry += if sum.abs() >= w.abs() {
            (sum - next) + w
        } else {
            (w - next) + sum
        };
        sum = next;
    }
    sum + carry
}

/// Logits at three spreads: a few units (every weight counts), tens (a
/// few dominate), thousands (one weight is 1 to within e⁻¹⁰⁰), all shifted
/// far from 0 so the rounded output loses digits.
fn logits() -> impl Strategy<Value = Vec<f64>> {
    (
        prop::collection::vec(-1.0f64..1.0, 1..48),
        prop_oneof![Just(3.0), Just(30.0), Just(3000.0)],
        prop_oneof![Just(0.0), Just(1000.0), Just(-5000.0)],
    )
        .prop_map(|(u, spread, shift)| u.iter().map(|v| shift + spread * v).collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    // y = log Σ exp(x): ∂y/∂xᵢ = softmax(x)ᵢ ≥ 0 and Σᵢ ∂y/∂xᵢ = 1. Each
    // weight is rounded once to the element type, so the sum is 1 to within
    // about half an ulp of 1 (checked: 2 ulps), in f32 and in f64.
    #[test]
    fn logsumexp_gradient_sums_to_one_within_two_ulps(x in logits()) {
        let n = x.len();
        let tape = flowzoo::autodiff::Tape::<f32>::new();
        let v = tape.leaf(Tensor::from_f64_slice(&x, &[n]));
        let g = tape.backward(&v.logsumexp_axes(&[0]).sum_all()).wrt(&v).expect("a gradient");
        let total = compensated_sum(g.to_vec().iter().map(|&w| f64::from(w)));
        prop_assert!(g.to_vec().iter().all(|&w| w >= 0.0), "negative weight: {:?}", g.to_vec());
        prop_assert!((total - 1.0).abs() <= 2.0 * f64::from(f32::EPSILON),
            "f32, n = {}: the weights sum to {} (1 − {:e})", n, total, 1.0 - total);

        let tape = flowzoo::autodiff::Tape::<f64>::new();
        let v = tape.leaf(Tensor::from_vec(x.clone(), &[n]));
        let g = tape.backward(&v.logsumexp_axes(&[0]).sum_all()).wrt(&v).expect("a gradient");
        let total = compensated_sum(g.to_vec());
        prop_assert!((total - 1.0).abs() <= 2.0 * f64::EPSILON,
            "f64, n = {}: the weights sum to {} (1 − {:e})", n, total, 1.0 - total);
    }
}
