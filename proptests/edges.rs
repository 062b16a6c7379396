//! Layers at the edges of their domains. So far: extreme conditioner
//! outputs for the coupling scales (both scale kinds, both directions, f32
//! and f64), which must give finite outputs, log-dets and gradients. The
//! edge inputs for every layer and assembled architecture (issue 14, "widen
//! the net") are still to come.

use crate::strategies::rng;
use flowzoo::autodiff::Tape;
use flowzoo::flows::{AffineCoupling, Flow, ImageCoupling, ImageMask, Mask, ScaleKind};
use flowzoo::tensor::{Element, Tensor};
use proptest::prelude::*;

/// Runs `flow` forward and inverse on `input` (each on a recording tape,
/// loss Σ output + Σ log-det) and asserts that the output, the log-det, the
/// input's gradient and every parameter's gradient are finite, naming
/// `what`, the direction and the first offending value.
pub fn assert_finite_both_ways<T: Element>(what: &str, flow: &mut dyn Flow<T>, input: &Tensor<T>) {
    for inverse in [false, true] {
        let direction = if inverse { "inverse" } else { "forward" };
        let tape = Tape::new();
        let v = tape.leaf(input.clone());
        let (out, log_det) = if inverse {
            flow.inverse(&v)
        } else {
            flow.forward(&v)
        };
        let first_bad = |t: &Tensor<T>| t.to_f64_vec().into_iter().find(|x| !x.is_finite());
        if let Some(bad) = first_bad(out.value()) {
            panic!(
                "{what}, {direction}: output holds {bad} (input shape {:?})",
                input.shape()
            );
        }
        if let Some(bad) = first_bad(log_det.value()) {
            panic!("{what}, {direction}: log-det holds {bad}");
        }
        let loss = out.sum_all().add(&log_det.sum_all());
        let grads = tape.backward(&loss);
        if let Some(bad) = grads.wrt(&v).as_ref().and_then(first_bad) {
            panic!("{what}, {direction}: the input's gradient holds {bad}");
        }
        grads.assign(flow.params_mut());
        for p in flow.params() {
            if let Some(bad) = p.grad.as_ref().and_then(first_bad) {
                panic!(
                    "{what}, {direction}: the gradient of {} holds {bad}",
                    p.name
                );
            }
        }
    }
}

/// Makes a coupling's network output the constant `raw` for ŝ and `shift`
/// for t whatever its input: every parameter zero but the output bias.
fn pin_conditioner<T: Element>(
    params: Vec<&mut flowzoo::autodiff::Param<T>>,
    raw: f64,
    shift: f64,
) {
    let count = params.len();
    for (k, p) in params.into_iter().enumerate() {
        let n = p.value.numel();
        let values: Vec<f64> = if k + 1 == count {
            // The output bias: [ŝ | t], n/2 each.
            (0..n)
                .map(|i| if i < n / 2 { raw } else { shift })
                .collect()
        } else {
            vec![0.0; n]
        };
        p.value = Tensor::from_f64_slice(&values, p.value.shape());
    }
}

/// Conditioner outputs at and beyond where exp overflows (f32 at 88.7, f64
/// at 709.8), both signs, and ordinary ones.
fn extreme_raw() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(-1e30),
        Just(-1e4),
        Just(-800.0),
        Just(-100.0),
        Just(-30.0),
        Just(30.0),
        Just(100.0),
        Just(1e4),
        Just(1e30),
        -200.0f64..200.0,
    ]
}

fn scale_kind(sigmoid: bool) -> ScaleKind {
    if sigmoid {
        ScaleKind::Sigmoid
    } else {
        ScaleKind::Tanh
    }
}

/// The vector and the image coupling with their conditioner pinned to
/// (`raw`, `shift`), checked both ways on inputs of spread `spread`.
fn check_pinned_couplings<T: Element>(raw: f64, shift: f64, sigmoid: bool, spread: f64, seed: u64) {
    let kind = scale_kind(sigmoid);
    let what = format!(
        "{} scale, ŝ = {raw}, t = {shift}, |z| ~ {spread}, {}",
        kind.name(),
        T::NAME
    );
    let mut r = rng(seed);
    let mut vector =
        AffineCoupling::<T>::new(Mask::alternating(4, 0), 8, &mut r).with_scale_kind(kind);
    pin_conditioner(vector.net.params_mut(), raw, shift);
    let z = Tensor::<f64>::randn(&[3, 4], &mut r).mul_scalar(spread);
    assert_finite_both_ways(&format!("AffineCoupling, {what}"), &mut vector, &z.cast());
    for mask in [
        ImageMask::Checkerboard { parity: 1 },
        ImageMask::Channel { flip: true },
    ] {
        let mut image = ImageCoupling::<T>::new(2, mask, 4, 1, kind, &mut r);
        pin_conditioner(image.net.params_mut(), raw, shift);
        let z = Tensor::<f64>::randn(&[2, 2, 4, 4], &mut r).mul_scalar(spread);
        assert_finite_both_ways(
            &format!("ImageCoupling({mask:?}), {what}"),
            &mut image,
            &z.cast(),
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    // x₂ = z₂ ⊙ exp(s) + t and z₂ = (x₂ − t) ⊙ exp(−s), log-det ±Σ s, with
    // s from a conditioner output ŝ anywhere in ±1e30: the scale is bounded
    // (tanh: |s| ≤ c; sigmoid: 0 ≤ s ≤ SIGMOID_MAX = 12), so outputs, log-dets and
    // gradients stay finite in both directions, for both kinds, f32 and f64.
    #[test]
    fn coupling_scales_stay_finite_at_extreme_conditioner_outputs(
        raw in extreme_raw(),
        shift in prop_oneof![Just(0.0), Just(-1e4), Just(1e4), -10.0f64..10.0],
        sigmoid in any::<bool>(),
        spread in prop_oneof![Just(1.0), Just(100.0)],
        seed in any::<u64>(),
    ) {
        check_pinned_couplings::<f32>(raw, shift, sigmoid, spread, seed);
        check_pinned_couplings::<f64>(raw, shift, sigmoid, spread, seed);
    }
}
