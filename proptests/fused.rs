//! The fused ops of the training step (issue 19) against the unfused
//! composition they replace, values and gradients, in f64 and f32:
//! - `Var::linear_relu` against `linear(…).relu()`, equal bit for bit (the
//!   same ReLU on the same values; the backward mask and bias sum add the
//!   same numbers in the same order), on shapes that reach the thin product
//!   paths (n ≤ 4 or m ≤ 4), the packed GEMM, k = 0, and outputs of
//!   130-260 rows and columns;
//! - `Tensor::linear` (the bias folded into the product) against
//!   `matmul` + broadcast add, to `KERNEL_RTOL` (the GEMM may add the bias
//!   before or after the product's last rounding);
//! - `Var::affine_coupling_tanh` in both directions against the ops one by
//!   one, equal bit for bit, values and the gradients of `h`, the bound and
//!   `x`;
//! - both fused ops through `gradcheck` against central differences (f64).
//!
//! The losses weight every output by a random `w` (see autodiff_ops.rs: an
//! all-ones upstream gradient could hide a misplaced entry).

use crate::strategies::{randn, rng};
use crate::tolerance::{assert_all_close, GRADCHECK_H, GRADCHECK_RTOL, KERNEL_RTOL};
use flowzoo::autodiff::{gradcheck, Tape, Var};
use flowzoo::tensor::fused::AffineDirection;
use flowzoo::tensor::{Element, Tensor};
use proptest::prelude::*;
use rand::Rng;

/// `Σ w ⊙ v` with fixed random weights `w` (standard normal, from `seed`).
fn weighted<'t, T: Element>(v: &Var<'t, T>, seed: u64) -> Var<'t, T> {
    let w = Tensor::<T>::randn(v.shape(), &mut rng(seed));
    v.mul(&v.constant(w)).sum_all()
}

/// The values and the gradients of every input of `f` at `inputs`.
type Run<T> = (Vec<T>, Vec<Vec<T>>);

fn run<T: Element>(
    inputs: &[Tensor<T>],
    f: impl for<'t> Fn(&[Var<'t, T>]) -> Var<'t, T>,
) -> Run<T> {
    let tape = Tape::new();
    let vars: Vec<Var<T>> = inputs.iter().map(|x| tape.leaf(x.clone())).collect();
    let out = f(&vars);
    let grads = tape.backward(&out);
    let grads = vars
        .iter()
        .map(|v| grads.wrt(v).map_or_else(Vec::new, |g| g.to_vec()))
        .collect();
    (out.value().to_vec(), grads)
}

/// Asserts two runs gave the same values and the same gradient of each
/// input (named by `names`), bit for bit.
fn assert_same_bits<T: Element>(fused: &Run<T>, composed: &Run<T>, names: &[&str], what: &str) {
    assert_eq!(fused.0, composed.0, "{what}: value");
    for (i, name) in names.iter().enumerate() {
        assert_eq!(fused.1[i], composed.1[i], "{what}: gradient of {name}");
    }
}

/// Shapes `(m, k, n)` for a linear layer: thin outputs, thin inputs, the
/// packed GEMM, an empty inner dimension, and large outputs.
fn linear_shape() -> impl Strategy<Value = (usize, usize, usize)> {
    prop_oneof![
        (1usize..=40, 0usize..=12, 1usize..=4),
        (1usize..=4, 1usize..=12, 5usize..=40),
        (5usize..=70, 1usize..=40, 5usize..=70),
        (130usize..=260, 1usize..=8, 130usize..=260),
    ]
}

/// `linear_relu` and `linear().relu()` on the same inputs, in `T`: the same
/// bits for the output and for the gradients of x, W and b.
fn check_linear_relu<T: Element + std::fmt::Debug>((m, k, n): (usize, usize, usize), seed: u64) {
    let inputs: Vec<Tensor<T>> = [vec![m, k], vec![k, n], vec![n]]
        .iter()
        .enumerate()
        .map(|(i, s)| Tensor::<T>::randn(s, &mut rng(seed.wrapping_add(i as u64))))
        .collect();
    let fused = run(&inputs, |v| weighted(&v[0].linear_relu(&v[1], &v[2]), seed));
    let composed = run(&inputs, |v| {
        weighted(&v[0].linear(&v[1], &v[2]).relu(), seed)
    });
    let what = format!("linear_relu, [{m}, {k}] x [{k}, {n}]");
    assert_same_bits(&fused, &composed, &["x", "W", "b"], &what);
}

/// The bound `c`, `h = [ŝ | t]` and `x` of an affine coupling with `rows`
/// rows of `n` moved features, as the inputs of [`affine_composed`].
fn affine_inputs<T: Element>(rows: usize, n: usize, seed: u64) -> Vec<Tensor<T>> {
    let mut r = rng(seed);
    let h = Tensor::<T>::randn(&[rows, 2 * n], &mut r);
    let bound: Vec<f64> = (0..n).map(|_| r.gen_range(0.2..2.0)).collect();
    let x = Tensor::<T>::randn(&[rows, n], &mut r);
    vec![h, Tensor::from_f64_slice(&bound, &[n]), x]
}

/// The unfused composition, exactly as `AffineCoupling` wrote it before the
/// fused op: `(y, log_det)`.
fn affine_composed<'t, T: Element>(
    v: &[Var<'t, T>],
    direction: AffineDirection,
) -> (Var<'t, T>, Var<'t, T>) {
    let n = v[1].shape()[0];
    let s = v[0].narrow(1, 0, n).tanh().mul(&v[1]);
    let t = v[0].narrow(1, n, n);
    match direction {
        AffineDirection::Forward => (v[2].mul(&s.exp()).add(&t), s.sum_axes(&[1])),
        AffineDirection::Inverse => (v[2].sub(&t).mul(&s.neg().exp()), s.sum_axes(&[1]).neg()),
    }
}

/// A loss that reads both outputs, each with its own weights.
fn affine_loss<'t, T: Element>((y, log_det): (Var<'t, T>, Var<'t, T>), seed: u64) -> Var<'t, T> {
    weighted(&y, seed).add(&weighted(&log_det, seed.wrapping_add(1)))
}

fn check_affine<T: Element + std::fmt::Debug>(rows: usize, n: usize, forward: bool, seed: u64) {
    let direction = if forward {
        AffineDirection::Forward
    } else {
        AffineDirection::Inverse
    };
    let inputs = affine_inputs::<T>(rows, n, seed);
    let fused = run(&inputs, |v| {
        affine_loss(v[0].affine_coupling_tanh(&v[1], &v[2], direction), seed)
    });
    let composed = run(&inputs, |v| {
        affine_loss(affine_composed(v, direction), seed)
    });
    let what = format!("{direction:?} update, {rows} rows of {n}");
    assert_same_bits(&fused, &composed, &["h", "bound", "x"], &what);
    // The outputs themselves, not only the weighted loss.
    let tape = Tape::no_grad();
    let v: Vec<Var<T>> = inputs.iter().map(|x| tape.constant(x.clone())).collect();
    let (y, log_det) = v[0].affine_coupling_tanh(&v[1], &v[2], direction);
    let (y0, log_det0) = affine_composed(&v, direction);
    assert_eq!(y.value().to_vec(), y0.value().to_vec(), "{direction:?} y");
    assert_eq!(
        log_det.value().to_vec(),
        log_det0.value().to_vec(),
        "{direction:?} log-det"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn fused_linear_relu_equals_linear_then_relu(shape in linear_shape(), seed in any::<u64>()) {
        check_linear_relu::<f64>(shape, seed);
        check_linear_relu::<f32>(shape, seed);
    }

    #[test]
    fn fused_linear_bias_equals_matmul_plus_bias(shape in linear_shape(), seed in any::<u64>()) {
        let (m, k, n) = shape;
        let (x, w, b) = (randn(&[m, k], seed), randn(&[k, n], seed.wrapping_add(1)), randn(&[n], seed.wrapping_add(2)));
        let folded = x.linear(&w, &b);
        let reference = x.matmul(&w).add(&b);
        assert_all_close("linear", &folded.to_vec(), &reference.to_vec(), KERNEL_RTOL);
        assert_eq!(folded.shape(), &[m, n]);
    }

    #[test]
    fn fused_affine_coupling_equals_the_ops_one_by_one(
        rows in 1usize..=40,
        n in 1usize..=9,
        forward in any::<bool>(),
        seed in any::<u64>(),
    ) {
        check_affine::<f64>(rows, n, forward, seed);
        check_affine::<f32>(rows, n, forward, seed);
    }

    #[test]
    fn fused_ops_pass_gradcheck(
        rows in 1usize..=6,
        n in 1usize..=4,
        forward in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let direction = if forward { AffineDirection::Forward } else { AffineDirection::Inverse };
        let inputs = affine_inputs::<f64>(rows, n, seed);
        gradcheck(
            |v| affine_loss(v[0].affine_coupling_tanh(&v[1], &v[2], direction), seed),
            &inputs,
            GRADCHECK_H,
            GRADCHECK_RTOL,
        )
        .map_err(|e| TestCaseError::fail(format!("affine_coupling_tanh {direction:?}: {e}")))?;
        // Inputs away from the ReLU's kink by more than the step: shift the
        // bias so no pre-activation lands within 1e-3 of 0.
        let (x, w) = (randn(&[rows, 3], seed), randn(&[3, n + 2], seed.wrapping_add(1)));
        let pre = x.matmul(&w).to_vec();
        let mut b = randn(&[n + 2], seed.wrapping_add(2)).to_vec();
        for (j, bj) in b.iter_mut().enumerate() {
            while pre.iter().skip(j).step_by(n + 2).any(|p| (p + *bj).abs() < 1e-3) {
                *bj += 0.01;
            }
        }
        let inputs = [x, w, Tensor::from_vec(b, &[n + 2])];
        gradcheck(
            |v| weighted(&v[0].linear_relu(&v[1], &v[2]), seed),
            &inputs,
            GRADCHECK_H,
            GRADCHECK_RTOL,
        )
        .map_err(|e| TestCaseError::fail(format!("linear_relu: {e}")))?;
    }
}

/// The equality checks can fail: a fused ReLU that let the kink through
/// (`y ≥ 0` instead of `y > 0`, here by comparing against a composition with
/// a leaky slope) differs from the composition.
#[test]
fn fused_checks_catch_a_different_composition() {
    let inputs: Vec<Tensor<f64>> = vec![randn(&[6, 3], 1), randn(&[3, 5], 2), randn(&[5], 3)];
    let fused = run(&inputs, |v| weighted(&v[0].linear_relu(&v[1], &v[2]), 4));
    let leaky = run(&inputs, |v| {
        weighted(&v[0].linear(&v[1], &v[2]).leaky_relu(0.01), 4)
    });
    assert_ne!(fused.1[0], leaky.1[0]);
}
