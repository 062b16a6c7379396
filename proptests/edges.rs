//! Layers at the edges of their domains: extreme conditioner outputs for
//! the coupling scales (both scale kinds, both directions, f32 and f64), and
//! edge inputs (zeros, ±1e4, subnormals, mask boundaries, mixtures; see
//! `edge_values`) for every layer kind and assembled architecture in f32.
//! All must give finite outputs, log-dets and gradients. The spline's own
//! edges (knots, ±B and one ulp either side) are in proptests/splines.rs.

use crate::strategies::rng;
use flowzoo::autodiff::Tape;
use flowzoo::flows::architectures::{
    glow, glow_vector_layers, nice, realnvp_image, GlowConfig, NiceConfig, RealNvpImageConfig,
};
use flowzoo::flows::autoregressive::maf_layers;
use flowzoo::flows::batchnorm::BatchNormMode;
use flowzoo::flows::iaf::iaf_layers;
use flowzoo::flows::model::realnvp_layers;
use flowzoo::flows::preprocess::Logit;
use flowzoo::flows::spline_coupling::nsf_layers;
use flowzoo::flows::spline_maf::nsf_ar_layers;
use flowzoo::flows::{
    ActNorm, AdditiveCoupling, AffineCoupling, BatchNorm, Flow, FlowModel, Iaf, ImageCoupling,
    ImageMask, ImageSplineCoupling, InvConv1x1, Maf, Mask, Permutation, RationalQuadraticSpline,
    Rescale, Reshape, Reverse, ScaleKind, Sequential, SplineCoupling, SplineMaf, Split, Squeeze,
    Standardize, Transform,
};
use flowzoo::nn::made::Order;
use flowzoo::tensor::{Element, Tensor};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::Rng;

/// Runs `flow` forward and inverse on `input` (each on a recording tape,
/// loss Σ output + Σ log-det) and asserts that the output, the log-det, the
/// input's gradient and every parameter's gradient are finite, naming
/// `what`, the direction and the first offending value.
pub fn assert_finite_both_ways<T: Element>(what: &str, flow: &mut dyn Flow<T>, input: &Tensor<T>) {
    assert_finite_each_way(what, flow, input, input);
}

/// As [`assert_finite_both_ways`], with `z` for the forward direction and
/// `x` for the inverse (for layers whose two sides differ in shape or domain).
pub fn assert_finite_each_way<T: Element>(
    what: &str,
    flow: &mut dyn Flow<T>,
    z: &Tensor<T>,
    x: &Tensor<T>,
) {
    for inverse in [false, true] {
        let direction = if inverse { "inverse" } else { "forward" };
        let input = if inverse { x } else { z };
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
    // (tanh: |s| ≤ c; sigmoid: 0 ≤ s ≤ LOG_SCALE_MAX = 12), so outputs, log-dets and
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

// ---------------------------------------------------------------------------
// Every layer and every assembled architecture at the edges of its domain.
// ---------------------------------------------------------------------------

/// f32's smallest positive subnormal is 1.4e-45; 1e-41 is a subnormal with
/// a few bits, MIN_POSITIVE the smallest normal.
const SUBNORMAL: f64 = 1e-41;
const BIG: f64 = 1e4;

/// The edge inputs, by `pattern`, for a batch of `shape` (`[batch, …]`):
/// 0 zeros; 1 all +1e4; 2 all −1e4; 3 ±1e4 alternating; 4 subnormals and
/// f32's smallest normal, both signs; 5 and 6 mask boundaries: the first half
/// of each sample's values (the conditioning half of a half mask, the first
/// channels of a channel mask) at ±1e4 and the rest 0, or the reverse;
/// 7 a seeded mixture of 0, ±1, ±1e4 and ±1e-41.
fn edge_values(shape: &[usize], pattern: usize, seed: u64) -> Tensor<f32> {
    let per_sample: usize = shape[1..].iter().product();
    let mut r = rng(seed);
    let picks = [0.0, 1.0, -1.0, BIG, -BIG, SUBNORMAL, -SUBNORMAL];
    let values: Vec<f64> = (0..shape.iter().product::<usize>())
        .map(|i| {
            let first_half = i % per_sample < per_sample / 2;
            let sign = if i % 2 == 0 { 1.0 } else { -1.0 };
            match pattern {
                0 => 0.0,
                1 => BIG,
                2 => -BIG,
                3 => sign * BIG,
                4 => {
                    sign * if i % 4 < 2 {
                        SUBNORMAL
                    } else {
                        f64::from(f32::MIN_POSITIVE)
                    }
                }
                5 => {
                    if first_half {
                        BIG
                    } else {
                        0.0
                    }
                }
                6 => {
                    if first_half {
                        0.0
                    } else {
                        -BIG
                    }
                }
                _ => picks[r.gen_range(0..picks.len())],
            }
        })
        .collect();
    Tensor::from_f64_slice(&values, shape)
}

/// The same pattern mapped into [0, 1], the data side of [`Logit`]: the
/// logit of a dequantised pixel p = α + (1 − 2α)·x is defined for x in
/// [0, 1] only (outside it p leaves (0, 1) and the log-det is NaN), so
/// there the edges are 0, 1, and values a subnormal away from 0.
fn unit_interval(t: &Tensor<f32>) -> Tensor<f32> {
    t.map(|v| v.clamp(0.0, 1.0))
}

/// One thing under test: a name, the flow, and its input shapes per sample
/// on the latent side (forward) and the data side (inverse).
struct Case {
    name: String,
    flow: Box<dyn Flow<f32>>,
    latent: Vec<usize>,
    data: Vec<usize>,
}

fn case(name: &str, flow: impl Flow<f32> + 'static, latent: &[usize], data: &[usize]) -> Case {
    Case {
        name: name.to_string(),
        flow: Box::new(flow),
        latent: latent.to_vec(),
        data: data.to_vec(),
    }
}

/// Replaces every parameter with N(0, scale²) noise, as `randomize_params`
/// does in f64.
fn randomize_params(flow: &mut dyn Flow<f32>, scale: f64, r: &mut StdRng) {
    for p in flow.params_mut() {
        p.value = Tensor::<f64>::randn(p.value.shape(), r)
            .mul_scalar(scale)
            .cast();
    }
}

/// Adds N(0, scale²) noise to every parameter (keeps a rotation invertible).
fn perturb(flow: &mut dyn Flow<f32>, scale: f64, r: &mut StdRng) {
    for p in flow.params_mut() {
        let noise = Tensor::<f64>::randn(p.value.shape(), r).mul_scalar(scale);
        p.value = p.value.add(&noise.cast());
    }
}

/// Every layer kind of the registry, at small sizes, with random (but
/// moderate) parameters: vectors of 4 features, images `[2, 4, 4]`.
fn layers(r: &mut StdRng) -> Vec<Case> {
    let mut cases = Vec::new();
    let mut add = |name: &str,
                   mut flow: Box<dyn Flow<f32>>,
                   scale: f64,
                   latent: &[usize],
                   data: &[usize],
                   r: &mut StdRng| {
        randomize_params(&mut *flow, scale, r);
        cases.push(Case {
            name: name.into(),
            flow,
            latent: latent.to_vec(),
            data: data.to_vec(),
        });
    };
    let v = [4];
    let image = [2, 4, 4];
    add(
        "AffineCoupling (tanh)",
        Box::new(AffineCoupling::new(Mask::half(4, false), 8, r)),
        0.5,
        &v,
        &v,
        r,
    );
    add(
        "AffineCoupling (sigmoid)",
        Box::new(
            AffineCoupling::new(Mask::alternating(4, 1), 8, r).with_scale_kind(ScaleKind::Sigmoid),
        ),
        0.5,
        &v,
        &v,
        r,
    );
    add(
        "AdditiveCoupling",
        Box::new(AdditiveCoupling::new(Mask::alternating(4, 0), 8, 2, r)),
        0.5,
        &v,
        &v,
        r,
    );
    add("Rescale", Box::new(Rescale::new(&v)), 0.7, &v, &v, r);
    add(
        "ActNorm (vectors)",
        Box::new(ActNorm::new(4)),
        0.7,
        &v,
        &v,
        r,
    );
    add(
        "ActNorm (images)",
        Box::new(ActNorm::new(2)),
        0.7,
        &image,
        &image,
        r,
    );
    add(
        "ImageCoupling (checkerboard, tanh)",
        Box::new(ImageCoupling::new(
            2,
            ImageMask::Checkerboard { parity: 0 },
            4,
            1,
            ScaleKind::Tanh,
            r,
        )),
        0.3,
        &image,
        &image,
        r,
    );
    add(
        "ImageCoupling (channel, sigmoid)",
        Box::new(ImageCoupling::new(
            2,
            ImageMask::Channel { flip: true },
            4,
            1,
            ScaleKind::Sigmoid,
            r,
        )),
        0.3,
        &image,
        &image,
        r,
    );
    add(
        "Maf",
        Box::new(Maf::new(4, &[8, 8], Order::Natural, r)),
        0.3,
        &v,
        &v,
        r,
    );
    // The IAF's sequential direction divides by a gate along the order; its
    // parameters are kept as small as proptests/autoregressive.rs keeps them.
    add(
        "Iaf (affine)",
        Box::new(Iaf::new(4, &[8, 8], Order::Reversed, Transform::Affine, r)),
        0.15,
        &v,
        &v,
        r,
    );
    add(
        "Iaf (gated)",
        Box::new(Iaf::new(4, &[8, 8], Order::Natural, Transform::Gated, r)),
        0.15,
        &v,
        &v,
        r,
    );
    let spline = RationalQuadraticSpline::new(8, 3.0);
    add(
        "SplineCoupling",
        Box::new(SplineCoupling::new(Mask::alternating(4, 1), 8, spline, r)),
        0.5,
        &v,
        &v,
        r,
    );
    add(
        "SplineMaf",
        Box::new(SplineMaf::new(4, &[8, 8], Order::Reversed, spline, r)),
        0.5,
        &v,
        &v,
        r,
    );
    for mask in [
        ImageMask::Checkerboard { parity: 1 },
        ImageMask::Channel { flip: false },
    ] {
        let layer = ImageSplineCoupling::new(2, mask, 4, 1, spline, r);
        let name = Flow::<f32>::name(&layer);
        add(&name, Box::new(layer), 0.5, &image, &image, r);
    }
    let split_inner = Sequential::<f32>::new(vec![
        Box::new(Reshape::new(&[2, 2, 2], &[8])),
        Box::new(ImageCoupling::new(
            2,
            ImageMask::Channel { flip: false },
            3,
            0,
            ScaleKind::Tanh,
            r,
        )),
    ]);
    add(
        "Split (learned prior)",
        Box::new(Split::new([4, 2, 2], 2, Box::new(split_inner), Some(3), r)),
        0.3,
        &[16],
        &[4, 2, 2],
        r,
    );
    let mut running = BatchNorm::<f32>::new(4);
    running.mode = BatchNormMode::Running;
    running.set_running_statistics(
        Tensor::from_f64_slice(&[0.0, 1e3, -2.0, 0.5], &[4]),
        Tensor::from_f64_slice(&[1.0, 1e-3, 4.0, 1e4], &[4]),
    );
    add(
        "BatchNorm (running statistics)",
        Box::new(running),
        0.7,
        &v,
        &v,
        r,
    );
    // In batch mode a batch of one has variance 0: ε keeps 1/√(v + ε) finite.
    add(
        "BatchNorm (batch statistics)",
        Box::new(BatchNorm::<f32>::new(4)),
        0.7,
        &v,
        &v,
        r,
    );
    for lu in [false, true] {
        let mut conv = if lu {
            InvConv1x1::<f32>::new_lu(4, r)
        } else {
            InvConv1x1::<f32>::new(4, r)
        };
        perturb(&mut conv, 0.2, r);
        let name = if lu {
            "InvConv1x1 (LU, vectors)"
        } else {
            "InvConv1x1 (vectors)"
        };
        cases.push(case(name, conv, &v, &v));
        let mut conv = if lu {
            InvConv1x1::<f32>::new_lu(2, r)
        } else {
            InvConv1x1::<f32>::new(2, r)
        };
        perturb(&mut conv, 0.2, r);
        let name = if lu {
            "InvConv1x1 (LU, images)"
        } else {
            "InvConv1x1 (images)"
        };
        cases.push(case(name, conv, &image, &image));
    }
    cases.push(case("Reverse", Reverse::new(4), &v, &v));
    cases.push(case("Permutation", Permutation::random(4, r), &v, &v));
    cases.push(case("Squeeze", Squeeze, &[8, 2, 2], &image));
    cases.push(case("Reshape", Reshape::new(&image, &[32]), &[32], &image));
    cases.push(case(
        "Standardize",
        Standardize::new(vec![1e3, -2.0, 0.0, 5.0], vec![1e-3, 2.0, 1e3, 1.0]),
        &v,
        &v,
    ));
    cases.push(case("Logit", Logit::new(4, 0.05), &v, &v));
    cases
}

/// Every assembled architecture, small, as a model (prior included).
///
/// The gated IAF stack's density direction is the one exception, stated
/// here: it divides by gates e^ℓ down to e⁻¹² (the bound of `soft_clamp`),
/// and with random weights on x = ±1e4 these compound along the order and
/// over the layers to latents of 1e13-1e20, whose loss −log π(z) ≈ z²/2 or
/// its gradient z·∂z/∂θ lies beyond f32. That is the exact answer out of
/// range, not a fault; an IAF is a sampler, trained through its forward
/// direction, and both of its directions are still checked at every edge
/// (outputs, log-dets, gradients). Its loss is checked at the small edges.
fn architectures(r: &mut StdRng) -> Vec<(String, FlowModel<f32>)> {
    let mut models = Vec::new();
    let nice_config = NiceConfig {
        couplings: 4,
        hidden: 8,
        depth: 2,
        logistic_prior: true,
    };
    let mut model = nice::<f32, _>(4, nice_config, r);
    randomize_params(&mut model.flow, 0.3, r);
    models.push(("nice".to_string(), model));
    // the multi-scale RealNVP with affine couplings, and with spline
    // couplings as the zoo's nsf-image
    for spline in [None, Some(RationalQuadraticSpline::new(8, 3.0))] {
        let realnvp_config = RealNvpImageConfig {
            scales: 2,
            checkerboard: 1,
            channel: 1,
            last: 1,
            hidden: 4,
            blocks: 1,
            spline,
        };
        let mut model = realnvp_image::<f32, _>([1, 4, 4], realnvp_config, r);
        randomize_params(&mut model.flow, 0.2, r);
        let name = if spline.is_some() {
            "nsf_image"
        } else {
            "realnvp_image"
        };
        models.push((name.to_string(), model));
    }
    for (lu, sigmoid) in [(true, true), (false, false)] {
        let config = GlowConfig {
            levels: 2,
            steps: 1,
            hidden: 4,
            blocks: 0,
            lu,
            learned_prior: lu,
            scale_kind: scale_kind(sigmoid),
        };
        let mut model = glow::<f32, _>([1, 4, 4], config, r);
        let warm = Tensor::<f64>::randn(&[8, 16], r).cast::<f32>();
        model.flow.initialize(&warm);
        perturb(&mut model.flow, 0.1, r);
        models.push((format!("glow (lu {lu}, sigmoid {sigmoid})"), model));
        let config = GlowConfig {
            steps: 2,
            hidden: 8,
            lu,
            scale_kind: scale_kind(sigmoid),
            ..GlowConfig::default()
        };
        let mut flow = Sequential::new(glow_vector_layers::<f32, _>(4, config, r));
        flow.initialize(&Tensor::<f64>::randn(&[16, 4], r).cast::<f32>());
        perturb(&mut flow, 0.1, r);
        models.push((
            format!("glow_vector_layers (lu {lu}, sigmoid {sigmoid})"),
            FlowModel::new(4, flow),
        ));
    }
    let mut flow = Sequential::new(realnvp_layers::<f32, _>(4, 3, 8, r));
    randomize_params(&mut flow, 0.3, r);
    models.push(("realnvp_layers".to_string(), FlowModel::new(4, flow)));
    let mut flow = Sequential::new(maf_layers::<f32, _>(4, 2, &[8, 8], r));
    randomize_params(&mut flow, 0.3, r);
    models.push(("maf_layers".to_string(), FlowModel::new(4, flow)));
    let spline = RationalQuadraticSpline::new(8, 3.0);
    let mut flow = Sequential::new(nsf_layers::<f32, _>(4, 3, 8, spline, r));
    randomize_params(&mut flow, 0.5, r);
    models.push(("nsf_layers".to_string(), FlowModel::new(4, flow)));
    let mut flow = Sequential::new(nsf_ar_layers::<f32, _>(4, 2, &[8, 8], spline, r));
    randomize_params(&mut flow, 0.5, r);
    models.push(("nsf_ar_layers".to_string(), FlowModel::new(4, flow)));
    for transform in [Transform::Affine, Transform::Gated] {
        let mut flow = Sequential::new(iaf_layers::<f32, _>(4, 2, &[8, 8], transform, r));
        randomize_params(&mut flow, 0.15, r);
        models.push((
            format!("iaf_layers ({transform:?})"),
            FlowModel::new(4, flow),
        ));
    }
    models
}

/// The training loss −mean log p(x) of `model` on `x` and its gradients:
/// all finite.
fn assert_finite_log_prob(what: &str, model: &mut FlowModel<f32>, x: &Tensor<f32>) {
    let tape = Tape::new();
    let loss = model
        .log_prob_var(&tape.constant(x.clone()))
        .mean_all()
        .neg();
    let value = loss.value().item();
    assert!(
        value.is_finite(),
        "{what}: the loss −mean log p(x) is {value}"
    );
    tape.backward(&loss).assign(model.params_mut());
    for p in model.params() {
        let bad = p
            .grad
            .as_ref()
            .and_then(|g| g.to_vec().into_iter().find(|v| !v.is_finite()));
        if let Some(bad) = bad {
            panic!("{what}: the loss's gradient of {} holds {bad}", p.name);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    // Each layer kind and each architecture, in f32, on one edge pattern at
    // a time, a batch of one or three: forward and inverse give finite
    // outputs, log-dets and gradients (inputs and parameters), and the
    // models a finite training loss with finite gradients (the gated IAF
    // stack's at the small edges only, see `architectures`). The one layer
    // with a bounded domain, Logit, gets its data side in [0, 1].
    #[test]
    fn every_layer_and_architecture_stays_finite_at_the_edges_of_its_domain(
        pattern in 0usize..8,
        batch in prop_oneof![Just(1usize), Just(3)],
        seed in any::<u64>(),
    ) {
        let mut r = rng(seed);
        let with_batch = |shape: &[usize]| -> Vec<usize> { std::iter::once(batch).chain(shape.iter().copied()).collect() };
        for mut c in layers(&mut r) {
            let z = edge_values(&with_batch(&c.latent), pattern, seed);
            let mut x = edge_values(&with_batch(&c.data), pattern, seed ^ 1);
            if c.name == "Logit" {
                x = unit_interval(&x);
            }
            let what = format!("{}, pattern {pattern}, batch {batch}", c.name);
            assert_finite_each_way(&what, &mut *c.flow, &z, &x);
        }
        for (name, mut model) in architectures(&mut r) {
            let dim = model.dim();
            let z = edge_values(&[batch, dim], pattern, seed);
            let x = edge_values(&[batch, dim], pattern, seed ^ 1);
            let what = format!("{name}, pattern {pattern}, batch {batch}");
            assert_finite_each_way(&what, &mut model.flow, &z, &x);
            let large = x.to_f64_vec().iter().any(|v| v.abs() >= BIG);
            if !(large && name.starts_with("iaf_layers (Gated)")) {
                assert_finite_log_prob(&what, &mut model, &x);
            }
        }
    }
}
