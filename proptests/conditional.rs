//! Conditional layers and models in f64 (docs/derivations/conditioning.md):
//! `check_flow` at several fixed contexts for every conditional layer, the
//! MADE-based layers' Jacobian triangular in x for every context, the
//! parameter gradcheck at a context, the gradient of log p(x | c) in c
//! against finite differences, and a conditional model whose context
//! weights are zero equal to the unconditional one.

use crate::autoregressive::assert_triangular;
use crate::strategies::{randn, rng};
use crate::tolerance::{
    assert_all_close, GRADCHECK_H, GRADCHECK_RTOL, INVERSE_RTOL, KERNEL_RTOL, LOG_DET_RTOL,
};
use flowzoo::autodiff::gradcheck;
use flowzoo::flows::check::{
    check_flow, finite_difference_jacobian, gradcheck_params, randomize_params, CheckOptions,
};
use flowzoo::flows::context::AtContext;
use flowzoo::flows::{
    AdditiveCoupling, AffineCoupling, ConditionalNormal, ContextEmbedding, Flow, FlowModel, Iaf,
    Maf, Mask, RationalQuadraticSpline, Reverse, Sequential, SequentialMethod, SplineCoupling,
    SplineMaf, Transform,
};
use flowzoo::nn::made::{Made, Order};
use flowzoo::tensor::Tensor;
use proptest::prelude::*;

fn options() -> CheckOptions {
    CheckOptions {
        inverse_rtol: INVERSE_RTOL,
        log_det_rtol: LOG_DET_RTOL,
        ..CheckOptions::default()
    }
}

/// The six conditional layers, by index: 0 affine, 1 additive, 2 spline
/// coupling, 3 MAF, 4 IAF (affine by [`Iaf::conditional`] for seeds
/// divisible by 3, else gated), 5 spline MAF; on `dim` features with a
/// context of width `context_dim`, parameters N(0, 0.3²) (0.15² for the IAF,
/// whose sequential inverse amplifies large weights; see
/// `autoregressive::IAF_PARAM_SCALE`).
fn conditional_layer(kind: usize, dim: usize, context_dim: usize, seed: u64) -> Box<dyn Flow<f64>> {
    let mut r = rng(seed);
    let spline = RationalQuadraticSpline::new(5, 3.0);
    let order = order_of(seed);
    let mut layer: Box<dyn Flow<f64>> = match kind {
        0 => Box::new(AffineCoupling::conditional(
            Mask::half(dim, seed % 2 == 1),
            6,
            context_dim,
            &mut r,
        )),
        1 => Box::new(AdditiveCoupling::conditional(
            Mask::alternating(dim, 0),
            6,
            2,
            context_dim,
            &mut r,
        )),
        2 => Box::new(SplineCoupling::conditional(
            Mask::half(dim, false),
            6,
            spline,
            context_dim,
            &mut r,
        )),
        3 => Box::new(Maf::conditional(dim, &[8, 8], order, context_dim, &mut r)),
        4 if seed.is_multiple_of(3) => Box::new(Iaf::conditional(
            dim,
            &[8],
            order,
            Transform::Affine,
            context_dim,
            &mut r,
        )),
        4 => {
            let made = Made::new(dim, &[8], 2, order, &mut r).with_context(context_dim, &mut r);
            Box::new(Iaf::from_made(made, Transform::Gated))
        }
        _ => Box::new(SplineMaf::conditional(
            dim,
            &[8],
            order,
            spline,
            context_dim,
            &mut r,
        )),
    };
    let scale = if kind == 4 { 0.15 } else { 0.3 };
    randomize_params(layer.as_mut(), scale, &mut r);
    layer
}

/// The fixed contexts every layer is proved at: zero, a constant row, and a
/// random row from `seed`.
fn contexts(context_dim: usize, seed: u64) -> Vec<Tensor<f64>> {
    vec![
        Tensor::zeros(&[1, context_dim]),
        Tensor::full(&[1, context_dim], 1.5),
        randn(&[1, context_dim], seed ^ 0x5eed),
    ]
}

/// `check_flow` on the layer `build` makes, at each of the fixed contexts
/// of [`contexts`], on the points `z`; and two contexts move some sample.
fn check_at_fixed_contexts(
    kind: usize,
    z: &Tensor<f64>,
    context_dim: usize,
    seed: u64,
    build: impl Fn() -> Box<dyn Flow<f64>>,
) {
    let mut outputs = Vec::new();
    for c in contexts(context_dim, seed) {
        let layer = build();
        assert_eq!(layer.context_dim(), context_dim, "kind {kind}");
        let at = AtContext::new(layer, c);
        if let Err(failure) = check_flow(&at, z, options()) {
            panic!("kind {kind}: {failure}");
        }
        outputs.push(at.forward_tensor(z).0.to_vec());
    }
    let moved = outputs[0].iter().zip(&outputs[1]).any(|(a, b)| a != b);
    assert!(
        moved,
        "kind {kind}: the output does not depend on the context"
    );
}

/// ∂/∂c of Σᵦ log p(xᵦ | cᵦ) against central differences in every entry
/// of c, at 3 random rows x and c from `seed`.
fn check_context_gradient(model: &FlowModel<f64>, context_dim: usize, seed: u64, what: &str) {
    let x = randn(&[3, model.dim()], seed ^ 3);
    let c = randn(&[3, context_dim], seed ^ 5);
    let result = gradcheck(
        |v| {
            let x = v[0].constant(x.clone());
            model.log_prob_given_var(&x, Some(&v[0])).sum_all()
        },
        &[c],
        GRADCHECK_H,
        GRADCHECK_RTOL,
    );
    if let Err(failure) = result {
        panic!("{what}: {failure}");
    }
}

/// The order of the MADE-based layers built from `seed`.
fn order_of(seed: u64) -> Order {
    if seed.is_multiple_of(2) {
        Order::Natural
    } else {
        Order::Reversed
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    // For each fixed c: x = f(z; c), f⁻¹(f(z; c); c) = z, and
    // log|det ∂x/∂z| = log|det J| of the finite-difference Jacobian in z.
    // And the context is read: two contexts move some sample.
    #[test]
    fn conditional_layers_pass_check_flow_at_fixed_contexts(kind in 0usize..6, dim in 2usize..6, context_dim in 1usize..4, batch in 1usize..4, seed in any::<u64>()) {
        let z = randn(&[batch, dim], seed);
        check_at_fixed_contexts(kind, &z, context_dim, seed, || conditional_layer(kind, dim, context_dim, seed));
    }

    // MADE-based layers: ∂xᵢ/∂z_k = 0 exactly when m(k) > m(i), at every context.
    #[test]
    fn conditional_made_layers_are_triangular_in_x_for_every_context(kind in 3usize..6, dim in 2usize..6, context_dim in 1usize..4, seed in any::<u64>()) {
        let z = randn(&[1, dim], seed);
        for c in contexts(context_dim, seed) {
            let degrees = order_of(seed).degrees(dim);
            let at = AtContext::new(conditional_layer(kind, dim, context_dim, seed), c);
            let jac = finite_difference_jacobian(&at, &z, 0, 1e-5);
            assert_triangular(&at.name(), &jac, &degrees);
        }
    }

    // ∂L/∂θ of L = −mean log p(x | c₀) (standard normal base) against finite
    // differences, for every parameter, the context weights included.
    #[test]
    fn conditional_gradient_reaches_every_parameter(kind in 0usize..6, dim in 2usize..5, context_dim in 1usize..3, seed in any::<u64>()) {
        let c = randn(&[1, context_dim], seed ^ 7);
        let mut at = AtContext::new(conditional_layer(kind, dim, context_dim, seed), c);
        let x = randn(&[2, dim], seed ^ 11);
        if let Err(message) = gradcheck_params(&mut at, &x, GRADCHECK_H, GRADCHECK_RTOL) {
            panic!("{message}");
        }
    }

    // ∂/∂c of Σᵦ log p(xᵦ | cᵦ) for a whole conditional model (an embedding,
    // a conditional coupling, a conditional MAF, a conditional base) against
    // central differences in every entry of c.
    #[test]
    fn log_prob_gradient_in_the_context_matches_finite_differences(dim in 2usize..5, context_dim in 1usize..4, seed in any::<u64>()) {
        let model = conditional_model(dim, context_dim, 3, seed);
        check_context_gradient(&model, context_dim, seed, "conditional model");
    }
}

/// The sequential direction of a conditional MADE-based layer (`kind` 0:
/// MAF forward, 1: IAF inverse, 2: spline MAF forward) with hidden widths
/// `hidden`, solved by `method`, at the points `v` and contexts `c`
/// (recording nothing): the values and the per-sample log-det.
fn sequential_direction(
    kind: usize,
    hidden: &[usize],
    method: SequentialMethod,
    v: &Tensor<f64>,
    c: &Tensor<f64>,
    seed: u64,
) -> (Vec<f64>, Vec<f64>) {
    let (dim, context_dim) = (v.dim(1), c.dim(1));
    let mut r = rng(seed);
    let spline = RationalQuadraticSpline::new(5, 3.0);
    let made = |k: usize, r: &mut rand::rngs::StdRng| {
        Made::new(dim, hidden, k, order_of(seed), r).with_context(context_dim, r)
    };
    let mut layer: Box<dyn Flow<f64>> = match kind {
        0 => {
            let mut maf = Maf::from_made(made(2, &mut r), Transform::Affine);
            maf.method = method;
            Box::new(maf)
        }
        1 => {
            let mut iaf = Iaf::from_made(made(2, &mut r), Transform::Gated);
            iaf.method = method;
            Box::new(iaf)
        }
        _ => {
            let mut maf =
                SplineMaf::conditional(dim, hidden, order_of(seed), spline, context_dim, &mut r);
            maf.method = method;
            Box::new(maf)
        }
    };
    randomize_params(layer.as_mut(), 0.3, &mut r);
    let tape = flowzoo::autodiff::Tape::no_grad();
    let (v, c) = (tape.constant(v.clone()), tape.constant(c.clone()));
    let (out, log_det) = match kind {
        1 => layer.inverse_with_context(&v, Some(&c)),
        _ => layer.forward_with_context(&v, Some(&c)),
    };
    (out.into_value().to_vec(), log_det.into_value().to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    // With a context, the incremental solve (c·W_c computed once and added
    // where each first-layer unit starts from its bias) and the textbook
    // loop (D full passes of the network at (x, c)) give the same values and
    // log-dets; with no hidden layer, c·W_c enters the outputs directly.
    // Batches of 64-71 rows cross the split of rows between threads.
    #[test]
    fn conditional_incremental_solve_matches_full_passes(kind in 0usize..3, dim in 1usize..6, hidden_layers in 0usize..3, context_dim in 1usize..4, batch in prop_oneof![1usize..4, 64usize..72], seed in any::<u64>()) {
        let hidden = vec![8; hidden_layers];
        let v = randn(&[batch, dim], seed ^ 21);
        let c = randn(&[batch, context_dim], seed ^ 22);
        let fast = sequential_direction(kind, &hidden, SequentialMethod::Incremental, &v, &c, seed);
        let slow = sequential_direction(kind, &hidden, SequentialMethod::FullPasses, &v, &c, seed);
        assert_all_close("values", &fast.0, &slow.0, KERNEL_RTOL * 100.0);
        assert_all_close("log-det", &fast.1, &slow.1, KERNEL_RTOL * 100.0);
    }
}

/// A conditional model on `dim` features reading a context of width
/// `context_dim` through an embedding to `features` features: a conditional
/// affine coupling, a reversal, a conditional MAF, over a conditional
/// normal base; every parameter N(0, 0.3²).
fn conditional_model(dim: usize, context_dim: usize, features: usize, seed: u64) -> FlowModel<f64> {
    let mut r = rng(seed);
    let layers: Vec<Box<dyn Flow<f64>>> = vec![
        Box::new(AffineCoupling::conditional(
            Mask::half(dim, false),
            6,
            features,
            &mut r,
        )),
        Box::new(Reverse::new(dim)),
        Box::new(Maf::conditional(
            dim,
            &[8],
            Order::Natural,
            features,
            &mut r,
        )),
    ];
    let base = ConditionalNormal::new(dim, features, 5);
    let embedding = ContextEmbedding::new(context_dim, &[6], features, &mut r);
    let mut model = FlowModel::with_prior(base, Sequential::new(layers)).with_embedding(embedding);
    for p in model.params_mut() {
        p.value = Tensor::randn(p.value.shape(), &mut r).mul_scalar(0.3);
    }
    model
}

// With every weight that reads c set to zero (the context rows of the
// coupling nets' first layers, MADE's W_c, the conditional base's output
// layer), a conditional model is the unconditional model with the remaining
// weights: log p(x | c) = log p(x) for every c, and the same seed draws the
// same samples.
#[test]
fn zeroed_context_weights_give_the_unconditional_model() {
    let (dim, context_dim) = (4, 3);
    let mut r = rng(1);
    let unconditional_layers: Vec<Box<dyn Flow<f64>>> = vec![
        Box::new(AffineCoupling::new(Mask::half(dim, false), 8, &mut r)),
        Box::new(AdditiveCoupling::new(Mask::half(dim, true), 8, 1, &mut r)),
        Box::new(Maf::new(dim, &[8], Order::Reversed, &mut r)),
    ];
    let mut unconditional = FlowModel::new(dim, Sequential::new(unconditional_layers));
    for p in unconditional.params_mut() {
        p.value = Tensor::randn(p.value.shape(), &mut r).mul_scalar(0.4);
    }
    let conditional_layers: Vec<Box<dyn Flow<f64>>> = vec![
        Box::new(AffineCoupling::conditional(
            Mask::half(dim, false),
            8,
            context_dim,
            &mut r,
        )),
        Box::new(AdditiveCoupling::conditional(
            Mask::half(dim, true),
            8,
            1,
            context_dim,
            &mut r,
        )),
        Box::new(Maf::conditional(
            dim,
            &[8],
            Order::Reversed,
            context_dim,
            &mut r,
        )),
    ];
    let base = ConditionalNormal::new(dim, context_dim, 4);
    let mut conditional = FlowModel::with_prior(base, Sequential::new(conditional_layers));
    // Copy every shared weight; a first layer's extra rows are the context's.
    let source: Vec<(String, Tensor<f64>)> = unconditional
        .params()
        .iter()
        .map(|p| (p.name.clone(), p.value.clone()))
        .collect();
    for p in conditional.params_mut() {
        match source.iter().find(|(name, _)| *name == p.name) {
            Some((_, value)) if value.shape() == p.value.shape() => p.value = value.clone(),
            Some((_, value)) => {
                // [n1 + context_dim, hidden]: the first n1 rows from the
                // unconditional net, the context rows zero.
                let zeros = Tensor::zeros(&[p.value.dim(0) - value.dim(0), value.dim(1)]);
                p.value = Tensor::concat(&[value, &zeros], 0);
            }
            // MADE's W_c and the base's network: its hidden layer random,
            // its output layer (and W_c) zero.
            None if p.name.contains("prior.net.layer0") => {
                p.value = Tensor::randn(p.value.shape(), &mut r);
            }
            None => p.value = Tensor::zeros(p.value.shape()),
        }
    }
    let x = randn(&[16, dim], 2);
    let expected = unconditional.log_prob(&x).to_vec();
    for c in contexts(context_dim, 3) {
        let got = conditional.log_prob_given(&x, Some(&c)).unwrap().to_vec();
        crate::tolerance::assert_all_close("log p(x | c) vs log p(x)", &got, &expected, 1e-12);
    }
    let c = randn(&[16, context_dim], 4);
    let samples = conditional
        .sample_given(16, 1.0, Some(&c), &mut rng(5))
        .unwrap()
        .to_vec();
    let unconditional_samples = unconditional.sample(16, 1.0, &mut rng(5)).to_vec();
    crate::tolerance::assert_all_close(
        "samples given c vs unconditional samples",
        &samples,
        &unconditional_samples,
        1e-12,
    );
}

// The conditional base with no hidden layer: (μ, ℓ) = c·W + b, so at each
// c its log-density is that of N(μ(c), diag e^{2ℓ(c)}) computed from the
// weights by hand, through the independent closed form of
// data::simulators::Gaussian.
#[test]
fn conditional_base_is_the_gaussian_of_its_mean_and_log_scale() {
    use flowzoo::autodiff::Tape;
    use flowzoo::data::simulators::Gaussian;
    use flowzoo::flows::prior::Prior;
    let (dim, context_dim) = (3, 2);
    let prior = Prior::from(ConditionalNormal::new(dim, context_dim, 0));
    let mut params = prior.initial_params::<f64>();
    let mut r = rng(6);
    for p in &mut params {
        p.value = Tensor::randn(p.value.shape(), &mut r).mul_scalar(0.5);
    }
    let (weight, bias) = (params[0].value.to_vec(), params[1].value.to_vec());
    let c = randn(&[4, context_dim], 7);
    let z = randn(&[4, dim], 8);
    let tape = Tape::no_grad();
    let got = prior
        .log_prob_given(
            &tape.constant(z.clone()),
            Some(&tape.constant(c.clone())),
            &params,
        )
        .value()
        .to_vec();
    for (row, &got) in got.iter().enumerate() {
        // out_j = Σₖ c_k·W[k, j] + b_j; μ = out[..dim], ℓ = out[dim..]
        let out: Vec<f64> = (0..2 * dim)
            .map(|j| {
                (0..context_dim)
                    .map(|k| c.get(&[row, k]) * weight[k * 2 * dim + j])
                    .sum::<f64>()
                    + bias[j]
            })
            .collect();
        let mut covariance = vec![0.0; dim * dim];
        for i in 0..dim {
            covariance[i * dim + i] = (2.0 * out[dim + i]).exp();
        }
        let expected = Gaussian::new(out[..dim].to_vec(), covariance)
            .log_prob(&(0..dim).map(|i| z.get(&[row, i])).collect::<Vec<_>>());
        assert!(
            crate::tolerance::close(got, expected, 1e-12),
            "row {row}: {got} vs {expected}"
        );
    }
}

/// The conditional image layers, by index: 0 a checkerboard coupling
/// (tanh) on `[2, 2, 2]` images, 1 a channel coupling (Glow's sigmoid) on
/// `[2, 2, 2]`, 2 Glow on `[1, 4, 4]` (squeezes, ActNorm, LU 1×1
/// convolutions, couplings, a split whose learned prior reads c), 3 the
/// multi-scale RealNVP on `[1, 4, 4]` (a split without a learned prior
/// passing c to the deeper scale); a context of width `context_dim`.
/// Returns the layer and its input's shape for `batch` samples. Coupling
/// parameters N(0, 0.3²); Glow's initialised from data, then perturbed by
/// N(0, 0.1²) (an LU 1×1 convolution drawn whole at random is nearly
/// singular).
fn conditional_image_layer(
    kind: usize,
    context_dim: usize,
    batch: usize,
    seed: u64,
) -> (Box<dyn Flow<f64>>, Vec<usize>) {
    use flowzoo::flows::architectures::{
        conditional_glow_layers, conditional_realnvp_image_layers, GlowConfig, RealNvpImageConfig,
    };
    use flowzoo::flows::{ImageCoupling, ImageMask, ScaleKind};
    let mut r = rng(seed);
    match kind {
        0 | 1 => {
            let (mask, scale_kind) = match kind {
                0 => (ImageMask::Checkerboard { parity: 1 }, ScaleKind::Tanh),
                _ => (ImageMask::Channel { flip: true }, ScaleKind::Sigmoid),
            };
            let mut layer =
                ImageCoupling::conditional(2, mask, 3, 1, scale_kind, context_dim, &mut r);
            randomize_params(&mut layer, 0.3, &mut r);
            (Box::new(layer), vec![batch, 2, 2, 2])
        }
        2 => {
            let config = GlowConfig {
                steps: 1,
                hidden: 3,
                blocks: 0,
                ..GlowConfig::default()
            };
            let layers = conditional_glow_layers([1, 4, 4], config, context_dim, &mut r);
            let mut flow = Sequential::new(layers);
            let x = randn(&[8, 16], seed ^ 1).mul_scalar(2.0).add_scalar(0.5);
            flow.initialize_with_context(&x, Some(&randn(&[8, context_dim], seed ^ 2)));
            for p in flow.params_mut() {
                let noise = Tensor::randn(p.value.shape(), &mut r).mul_scalar(0.1);
                p.value = p.value.add(&noise);
            }
            (Box::new(flow), vec![batch, 16])
        }
        _ => {
            let config = RealNvpImageConfig {
                scales: 2,
                checkerboard: 1,
                channel: 1,
                last: 1,
                hidden: 2,
                blocks: 0,
                spline: None,
            };
            let layers = conditional_realnvp_image_layers([1, 4, 4], config, context_dim, &mut r);
            let mut flow = Sequential::new(layers);
            randomize_params(&mut flow, 0.2, &mut r);
            (Box::new(flow), vec![batch, 16])
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(8))]

    // Image couplings, Glow and the multi-scale RealNVP, each at fixed c:
    // f⁻¹(f(z; c); c) = z, log|det ∂x/∂z| against the finite-difference
    // Jacobian in z, and the output moves with c.
    #[test]
    fn conditional_image_layers_pass_check_flow_at_fixed_contexts(kind in 0usize..4, context_dim in 1usize..4, batch in 1usize..3, seed in any::<u64>()) {
        let (_, shape) = conditional_image_layer(kind, context_dim, batch, seed);
        let z = randn(&shape, seed ^ 9);
        check_at_fixed_contexts(kind, &z, context_dim, seed, || conditional_image_layer(kind, context_dim, batch, seed).0);
    }

    // ∂L/∂θ of L = −mean log p(x | c₀) against finite differences for every
    // parameter of the image layers, W_c of the couplings and the split
    // prior included.
    #[test]
    fn conditional_image_gradient_reaches_every_parameter(kind in 0usize..4, context_dim in 1usize..3, seed in any::<u64>()) {
        let c = randn(&[1, context_dim], seed ^ 7);
        let (layer, shape) = conditional_image_layer(kind, context_dim, 2, seed);
        let mut at = AtContext::new(layer, c);
        if let Err(message) = gradcheck_params(&mut at, &randn(&shape, seed ^ 11), GRADCHECK_H, GRADCHECK_RTOL) {
            panic!("kind {kind}: {message}");
        }
    }

    // ∂/∂c of Σᵦ log p(xᵦ | cᵦ) for a conditional Glow (and RealNVP) on
    // [1, 4, 4] images against central differences in every entry of c.
    #[test]
    fn image_log_prob_gradient_in_the_context_matches_finite_differences(kind in 2usize..4, context_dim in 1usize..4, seed in any::<u64>()) {
        let (layer, _) = conditional_image_layer(kind, context_dim, 3, seed);
        let model = FlowModel::new(16, Sequential::new(vec![layer]));
        check_context_gradient(&model, context_dim, seed, &format!("image kind {kind}"));
    }
}

// A conditional Glow (couplings and split prior reading c) whose context
// weights W_c are zero is the unconditional Glow with the other weights:
// log p(x | c) = log p(x) for every c, and the same draws.
#[test]
fn zeroed_context_weights_give_the_unconditional_image_flow() {
    use flowzoo::flows::architectures::{conditional_glow_layers, glow_layers, GlowConfig};
    // The plain 1×1 convolution: the LU form's fixed P and signs are drawn
    // at build time and are not parameters to copy.
    let config = GlowConfig {
        steps: 2,
        hidden: 4,
        blocks: 1,
        lu: false,
        ..GlowConfig::default()
    };
    let context_dim = 3;
    let mut conditional = FlowModel::new(
        16,
        Sequential::new(conditional_glow_layers(
            [1, 4, 4],
            config,
            context_dim,
            &mut rng(1),
        )),
    );
    let mut unconditional = FlowModel::new(
        16,
        Sequential::new(glow_layers([1, 4, 4], config, &mut rng(2))),
    );
    let mut r = rng(3);
    let mut zeroed = 0;
    for p in conditional.params_mut() {
        if p.name.ends_with("context.weight") {
            p.value = Tensor::zeros(p.value.shape());
            zeroed += 1;
        } else {
            p.value = p
                .value
                .add(&Tensor::randn(p.value.shape(), &mut r).mul_scalar(0.2));
        }
    }
    // 2 levels × 2 couplings, and the split's prior
    assert_eq!(zeroed, 5);
    let source: Vec<(String, Tensor<f64>)> = conditional
        .params()
        .iter()
        .map(|p| (p.name.clone(), p.value.clone()))
        .collect();
    for p in unconditional.params_mut() {
        let (_, value) = source
            .iter()
            .find(|(name, _)| *name == p.name)
            .unwrap_or_else(|| panic!("{} has no conditional twin", p.name));
        p.value = value.clone();
    }
    let x = randn(&[6, 16], 4);
    let expected = unconditional.log_prob(&x).to_vec();
    for c in contexts(context_dim, 5) {
        let got = conditional.log_prob_given(&x, Some(&c)).unwrap().to_vec();
        crate::tolerance::assert_all_close("log p(x | c) vs log p(x)", &got, &expected, 1e-12);
    }
    let c = randn(&[6, context_dim], 6);
    let samples = conditional
        .sample_given(6, 1.0, Some(&c), &mut rng(7))
        .unwrap();
    let unconditional_samples = unconditional.sample(6, 1.0, &mut rng(7));
    crate::tolerance::assert_all_close(
        "samples given c vs unconditional samples",
        &samples.to_vec(),
        &unconditional_samples.to_vec(),
        1e-12,
    );
}

// A conditional Glow (couplings and split prior reading c) and a
// conditional multi-scale RealNVP, written to checkpoint bytes and read
// back: the same context width, bit-identical log p(x | c) and samples.
#[test]
fn conditional_image_flows_round_trip_through_checkpoints() {
    use flowzoo::train::checkpoint::{to_bytes, Checkpoint};
    for kind in [2, 3] {
        let (layer, _) = conditional_image_layer(kind, 3, 1, 10 + kind as u64);
        let model = FlowModel::new(16, Sequential::new(vec![layer]));
        let bytes = to_bytes(&model, None, None).unwrap();
        let loaded = Checkpoint::<f64>::from_bytes(&bytes, "image.flowzoo".as_ref())
            .unwrap()
            .model;
        assert_eq!(loaded.context_dim(), 3, "kind {kind}");
        let (x, c) = (randn(&[4, 16], 1), randn(&[4, 3], 2));
        assert_eq!(
            model.log_prob_given(&x, Some(&c)).unwrap().to_vec(),
            loaded.log_prob_given(&x, Some(&c)).unwrap().to_vec(),
            "kind {kind}"
        );
        let draw = |m: &FlowModel<f64>| m.sample_given(4, 0.8, Some(&c), &mut rng(3)).unwrap();
        assert_eq!(draw(&model).to_vec(), draw(&loaded).to_vec(), "kind {kind}");
    }
}
