//! Every flow layer and stack through the public `check_flow` and the
//! parameter gradcheck, in f64, at random points and random parameters.

use crate::strategies::{randn, rng};
use crate::tolerance::{GRADCHECK_H, GRADCHECK_RTOL, INVERSE_RTOL, LOG_DET_RTOL};
use flowzoo::flows::check::{check_flow, gradcheck_params, randomize_params, CheckOptions};
use flowzoo::flows::preprocess::Logit;
use flowzoo::flows::Standardize;
use flowzoo::flows::{AffineCoupling, Flow, FlowModel, Mask, Reverse, Sequential};
use proptest::prelude::*;

fn options() -> CheckOptions {
    CheckOptions {
        inverse_rtol: INVERSE_RTOL,
        log_det_rtol: LOG_DET_RTOL,
        ..CheckOptions::default()
    }
}

fn mask_strategy() -> impl Strategy<Value = Mask> {
    (2usize..=7, any::<bool>(), 0usize..3).prop_map(|(dim, flip, kind)| match kind {
        0 => Mask::half(dim, flip),
        _ => Mask::alternating(dim, flip as usize),
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    // x = f(z), z' = f⁻¹(x): z' = z to INVERSE_RTOL; log-det = log|det ∂x/∂z|
    // (finite differences) and = −logdet_inverse(x), to LOG_DET_RTOL.
    #[test]
    fn affine_coupling_passes_check_flow(mask in mask_strategy(), batch in 1usize..4, seed in any::<u64>()) {
        let mut r = rng(seed);
        let dim = mask.dim;
        let mut layer = AffineCoupling::<f64>::new(mask, 8, &mut r);
        randomize_params(&mut layer, 0.5, &mut r);
        let z = randn(&[batch, dim], seed ^ 1);
        if let Err(e) = check_flow(&layer, &z, options()) { panic!("{e}"); }
    }

    #[test]
    fn affine_coupling_gradient_reaches_every_parameter(mask in mask_strategy(), seed in any::<u64>()) {
        let mut r = rng(seed);
        let dim = mask.dim;
        let mut layer = AffineCoupling::<f64>::new(mask, 4, &mut r);
        randomize_params(&mut layer, 0.5, &mut r);
        let x = randn(&[3, dim], seed ^ 2);
        if let Err(e) = gradcheck_params(&mut layer, &x, GRADCHECK_H, GRADCHECK_RTOL) { panic!("{e}"); }
    }

    #[test]
    fn realnvp_stack_passes_check_flow(dim in 2usize..6, layers in 1usize..5, seed in any::<u64>()) {
        let mut r = rng(seed);
        let mut model = FlowModel::<f64>::realnvp(dim, layers, 8, &mut r);
        randomize_params(&mut model.flow, 0.3, &mut r);
        let z = randn(&[2, dim], seed ^ 3);
        if let Err(e) = check_flow(&model.flow, &z, options()) { panic!("{e}"); }
    }

    #[test]
    fn realnvp_stack_gradient_reaches_every_parameter(dim in 2usize..5, seed in any::<u64>()) {
        let mut r = rng(seed);
        let mut model = FlowModel::<f64>::realnvp(dim, 3, 4, &mut r);
        randomize_params(&mut model.flow, 0.3, &mut r);
        let x = randn(&[2, dim], seed ^ 4);
        if let Err(e) = gradcheck_params(&mut model.flow, &x, GRADCHECK_H, GRADCHECK_RTOL) { panic!("{e}"); }
    }

    #[test]
    fn reverse_and_logit_pass_check_flow(dim in 1usize..8, seed in any::<u64>()) {
        let z = randn(&[2, dim], seed);
        if let Err(e) = check_flow(&Reverse::new(dim), &z, options()) { panic!("{e}"); }
        let logit = Logit::new(dim, 0.05);
        if let Err(e) = check_flow(&logit, &z, options()) { panic!("{e}"); }
        let stack = Sequential::<f64>::new(vec![Box::new(Reverse::new(dim)), Box::new(Logit::new(dim, 0.05))]);
        if let Err(e) = check_flow(&stack, &z, options()) { panic!("{e}"); }
    }

    #[test]
    fn standardize_passes_check_flow(dim in 1usize..8, seed in any::<u64>()) {
        // Means anywhere, standard deviations in (0.05, 20): what a table's
        // columns give.
        let m = randn(&[dim], seed ^ 1).to_vec();
        let s = randn(&[dim], seed ^ 2).to_vec();
        let mean: Vec<f64> = m.iter().map(|v| 10.0 * v).collect();
        let std: Vec<f64> = s.iter().map(|v| (1.5 * v.clamp(-2.0, 2.0)).exp()).collect();
        let layer = Standardize::new(mean, std);
        let z = randn(&[3, dim], seed);
        if let Err(e) = check_flow(&layer, &z, options()) { panic!("{e}"); }
    }
}

/// A check that cannot pass on a wrong layer: a flow whose reported log-det
/// is off by a constant must be caught.
#[test]
fn check_flow_catches_a_wrong_log_det() {
    struct Liar;
    impl Flow<f64> for Liar {
        fn name(&self) -> String {
            "Liar".into()
        }
        fn forward<'t>(
            &self,
            z: &flowzoo::autodiff::Var<'t, f64>,
        ) -> (
            flowzoo::autodiff::Var<'t, f64>,
            flowzoo::autodiff::Var<'t, f64>,
        ) {
            let ld = z.sum_axes(&[1]).mul_scalar(0.0).add_scalar(0.1);
            (z.mul_scalar(1.0), ld)
        }
        fn inverse<'t>(
            &self,
            x: &flowzoo::autodiff::Var<'t, f64>,
        ) -> (
            flowzoo::autodiff::Var<'t, f64>,
            flowzoo::autodiff::Var<'t, f64>,
        ) {
            let ld = x.sum_axes(&[1]).mul_scalar(0.0).add_scalar(-0.1);
            (x.mul_scalar(1.0), ld)
        }
    }
    let z = randn(&[2, 3], 7);
    let err = check_flow(&Liar, &z, options()).unwrap_err();
    assert!(err.property.contains("finite differences"), "{err}");
}

// ---------------------------------------------------------------------------
// The coupling family (issue 5): NICE, RealNVP on images, Glow, layer by
// layer and assembled, through the same public `check_flow` and gradcheck.
// ---------------------------------------------------------------------------

mod coupling_family {
    use super::{mask_strategy, options};
    use crate::strategies::{randn, rng};
    use crate::tolerance::{close, GRADCHECK_H, GRADCHECK_RTOL};
    use flowzoo::autodiff::Tape;
    use flowzoo::flows::architectures::{
        glow, glow_vector_layers, nice, realnvp_image, GlowConfig, NiceConfig, RealNvpImageConfig,
    };
    use flowzoo::flows::batchnorm::BatchNormMode;
    use flowzoo::flows::check::{check_flow, gradcheck_params, randomize_params};
    use flowzoo::flows::{
        ActNorm, AdditiveCoupling, AffineCoupling, BatchNorm, Flow, FlowModel, ImageCoupling,
        ImageMask, InvConv1x1, Logistic, Permutation, RationalQuadraticSpline, Rescale, Reshape,
        ScaleKind, Sequential, Split, Squeeze,
    };
    use flowzoo::tensor::Tensor;
    use flowzoo::train::sample::DensityGrid;
    use proptest::prelude::*;
    use rand::Rng;

    /// Adds N(0, scale²) noise to every parameter (where replacing them
    /// would make a matrix that must stay invertible arbitrarily ill-conditioned).
    fn perturb_params<R: Rng>(flow: &mut dyn Flow<f64>, scale: f64, rng: &mut R) {
        for p in flow.params_mut() {
            let noise = Tensor::randn(p.value.shape(), rng).mul_scalar(scale);
            p.value = p.value.add(&noise);
        }
    }

    fn check(flow: &dyn Flow<f64>, z: &Tensor<f64>) {
        if let Err(e) = check_flow(flow, z, options()) {
            panic!("shape {:?}: {e}", z.shape());
        }
    }

    fn gradcheck(flow: &mut dyn Flow<f64>, x: &Tensor<f64>) {
        if let Err(e) = gradcheck_params(flow, x, GRADCHECK_H, GRADCHECK_RTOL) {
            panic!("shape {:?}: {e}", x.shape());
        }
    }

    fn image_mask(kind: usize) -> ImageMask {
        match kind % 4 {
            0 => ImageMask::Checkerboard { parity: 0 },
            1 => ImageMask::Checkerboard { parity: 1 },
            2 => ImageMask::Channel { flip: false },
            _ => ImageMask::Channel { flip: true },
        }
    }

    fn scale_kind(sigmoid: bool) -> ScaleKind {
        if sigmoid {
            ScaleKind::Sigmoid
        } else {
            ScaleKind::Tanh
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]

        // x₂ = z₂ + m(z₁): round trips to INVERSE_RTOL, log-det 0 = log|det J| (finite differences).
        #[test]
        fn additive_coupling_passes_check_flow(mask in mask_strategy(), batch in 1usize..4, seed in any::<u64>()) {
            let mut r = rng(seed);
            let dim = mask.dim;
            let mut layer = AdditiveCoupling::<f64>::new(mask, 8, 2, &mut r);
            randomize_params(&mut layer, 0.5, &mut r);
            check(&layer, &randn(&[batch, dim], seed ^ 1));
        }

        #[test]
        fn additive_coupling_gradient_reaches_every_parameter(mask in mask_strategy(), seed in any::<u64>()) {
            let mut r = rng(seed);
            let dim = mask.dim;
            let mut layer = AdditiveCoupling::<f64>::new(mask, 4, 2, &mut r);
            randomize_params(&mut layer, 0.5, &mut r);
            gradcheck(&mut layer, &randn(&[3, dim], seed ^ 2));
        }

        // s = −log σ(ŝ + 2): log-det Σ s against finite differences; gradients.
        #[test]
        fn glow_sigmoid_affine_coupling_passes_check_flow(mask in mask_strategy(), seed in any::<u64>()) {
            let mut r = rng(seed);
            let dim = mask.dim;
            let mut layer = AffineCoupling::<f64>::new(mask, 6, &mut r).with_scale_kind(ScaleKind::Sigmoid);
            randomize_params(&mut layer, 0.5, &mut r);
            check(&layer, &randn(&[2, dim], seed ^ 3));
            gradcheck(&mut layer, &randn(&[2, dim], seed ^ 4));
        }

        // x = z ⊙ exp(log S): log-det Σ log S, vectors and images.
        #[test]
        fn rescale_passes_check_flow_and_gradcheck(dim in 1usize..6, seed in any::<u64>()) {
            let mut r = rng(seed);
            let mut layer = Rescale::<f64>::new(&[dim]);
            randomize_params(&mut layer, 0.7, &mut r);
            check(&layer, &randn(&[2, dim], seed ^ 5));
            gradcheck(&mut layer, &randn(&[3, dim], seed ^ 6));
            let mut image = Rescale::<f64>::new(&[2, 2, dim]);
            randomize_params(&mut image, 0.7, &mut r);
            check(&image, &randn(&[2, 2, 2, dim], seed ^ 7));
        }

        // Permutations move elements: exact, log-det 0 (the Jacobian is a permutation matrix).
        #[test]
        fn squeeze_reshape_and_permutation_pass_check_flow(dim in 1usize..7, seed in any::<u64>()) {
            let mut r = rng(seed);
            let permutation = Permutation::random(dim, &mut r);
            check(&permutation, &randn(&[2, dim], seed));
            check(&permutation, &randn(&[2, dim, 2, 2], seed ^ 1));
            check(&Squeeze, &randn(&[2, 4 * dim, 1, 2], seed ^ 2));
            check(&Reshape::new(&[2, 2, dim], &[4 * dim]), &randn(&[2, 4 * dim], seed ^ 3));
            check(&Reshape::new(&[4 * dim], &[2, 2, dim]), &randn(&[2, 2, 2, dim], seed ^ 4));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(8))]

        // Checkerboard and channel masks, tanh and sigmoid scales, on [2, C, 4, 4]:
        // the full (16·C)² Jacobian by finite differences.
        #[test]
        fn image_coupling_passes_check_flow(kind in 0usize..4, channels in 1usize..4, sigmoid in any::<bool>(), blocks in 0usize..2, seed in any::<u64>()) {
            let mut r = rng(seed);
            let mask = image_mask(kind);
            let channels = if matches!(mask, ImageMask::Channel { .. }) { channels.max(2) } else { channels };
            let mut layer = ImageCoupling::<f64>::new(channels, mask, 4, blocks, scale_kind(sigmoid), &mut r);
            randomize_params(&mut layer, 0.3, &mut r);
            check(&layer, &randn(&[2, channels, 4, 4], seed ^ 1));
        }

        #[test]
        fn image_coupling_gradient_reaches_every_parameter(kind in 0usize..4, sigmoid in any::<bool>(), seed in any::<u64>()) {
            let mut r = rng(seed);
            let mut layer = ImageCoupling::<f64>::new(2, image_mask(kind), 3, 1, scale_kind(sigmoid), &mut r);
            randomize_params(&mut layer, 0.3, &mut r);
            gradcheck(&mut layer, &randn(&[2, 2, 2, 2], seed ^ 2));
        }

        // x = z ⊙ exp(s_c) + b_c: log-det H·W·Σ s_c.
        #[test]
        fn actnorm_passes_check_flow(channels in 1usize..5, seed in any::<u64>()) {
            let mut r = rng(seed);
            let mut layer = ActNorm::<f64>::new(channels);
            randomize_params(&mut layer, 0.7, &mut r);
            check(&layer, &randn(&[2, channels], seed ^ 1));
            check(&layer, &randn(&[2, channels, 2, 3], seed ^ 2));
        }

        #[test]
        fn actnorm_gradient_reaches_every_parameter(channels in 1usize..4, seed in any::<u64>()) {
            let mut r = rng(seed);
            let mut layer = ActNorm::<f64>::new(channels);
            randomize_params(&mut layer, 0.7, &mut r);
            gradcheck(&mut layer, &randn(&[3, channels, 2, 2], seed ^ 3));
        }

        // On the batch it saw, the latent-side output has mean 0 and variance 1
        // per channel; a second initialisation changes nothing.
        #[test]
        fn actnorm_initialization_gives_zero_mean_unit_variance(channels in 1usize..5, image in any::<bool>(), offset in -5.0f64..5.0, spread in 0.1f64..10.0, seed in any::<u64>()) {
            let shape: Vec<usize> = if image { vec![6, channels, 3, 2] } else { vec![40, channels] };
            let x = randn(&shape, seed).mul_scalar(spread).add_scalar(offset);
            let mut layer = ActNorm::<f64>::new(channels);
            prop_assert!(!layer.initialized);
            let z = layer.initialize(&x);
            prop_assert!(layer.initialized);
            let axes: Vec<usize> = (0..shape.len()).filter(|&a| a != 1).collect();
            let mean = z.mean_axes(&axes).to_vec();
            let var = z.square().mean_axes(&axes).to_vec();
            for c in 0..channels {
                prop_assert!(mean[c].abs() < 1e-10, "channel {}: mean {}", c, mean[c]);
                prop_assert!(close(var[c], 1.0, 1e-10), "channel {}: variance {}", c, var[c]);
            }
            let before: Vec<Vec<f64>> = layer.params().iter().map(|p| p.value.to_vec()).collect();
            layer.initialize(&x.mul_scalar(3.0));
            let after: Vec<Vec<f64>> = layer.params().iter().map(|p| p.value.to_vec()).collect();
            prop_assert_eq!(before, after);
        }

        // Running statistics make a fixed affine map: its inverse is exact.
        #[test]
        fn batchnorm_in_evaluation_passes_check_flow(channels in 1usize..4, image in any::<bool>(), seed in any::<u64>()) {
            let mut r = rng(seed);
            let mut layer = BatchNorm::<f64>::new(channels);
            layer.mode = BatchNormMode::Running;
            randomize_params(&mut layer, 0.7, &mut r);
            let mean = Tensor::randn(&[channels], &mut r);
            let var = Tensor::randn(&[channels], &mut r).square().add_scalar(0.1);
            layer.set_running_statistics(mean, var);
            let shape: Vec<usize> = if image { vec![2, channels, 2, 2] } else { vec![2, channels] };
            check(&layer, &randn(&shape, seed ^ 1));
        }

        // Batch statistics: the gradient flows through μ and v too.
        #[test]
        fn batchnorm_training_gradient_reaches_every_parameter(channels in 1usize..4, seed in any::<u64>()) {
            let mut r = rng(seed);
            let mut layer = BatchNorm::<f64>::new(channels);
            layer.mode = BatchNormMode::Batch;
            randomize_params(&mut layer, 0.7, &mut r);
            gradcheck(&mut layer, &randn(&[3, channels, 2, 2], seed ^ 2));
        }

        // x = W·z at every pixel: log-det H·W·log|det W|, plain and LU, vectors and images.
        #[test]
        fn inv_conv_passes_check_flow(channels in 1usize..5, lu in any::<bool>(), seed in any::<u64>()) {
            let mut r = rng(seed);
            let mut layer = if lu { InvConv1x1::<f64>::new_lu(channels, &mut r) } else { InvConv1x1::<f64>::new(channels, &mut r) };
            perturb_params(&mut layer, 0.3, &mut r);
            check(&layer, &randn(&[2, channels], seed ^ 1));
            check(&layer, &randn(&[2, channels, 2, 3], seed ^ 2));
        }

        #[test]
        fn inv_conv_gradient_reaches_every_parameter(channels in 1usize..4, lu in any::<bool>(), seed in any::<u64>()) {
            let mut r = rng(seed);
            let mut layer = if lu { InvConv1x1::<f64>::new_lu(channels, &mut r) } else { InvConv1x1::<f64>::new(channels, &mut r) };
            perturb_params(&mut layer, 0.3, &mut r);
            gradcheck(&mut layer, &randn(&[2, channels, 2, 2], seed ^ 3));
        }

        // The factor-out holding a deeper level: one bijection, with and
        // without the learned prior.
        #[test]
        fn split_passes_check_flow(learned in any::<bool>(), seed in any::<u64>()) {
            let mut r = rng(seed);
            let inner = Sequential::<f64>::new(vec![
                Box::new(Reshape::new(&[2, 2, 2], &[8])),
                Box::new(ImageCoupling::new(2, ImageMask::Channel { flip: false }, 3, 0, ScaleKind::Tanh, &mut r)),
            ]);
            let mut split = Split::new([4, 2, 2], 2, Box::new(inner), learned.then_some(3), &mut r);
            randomize_params(&mut split, 0.3, &mut r);
            check(&split, &randn(&[2, 16], seed ^ 1));
        }

        #[test]
        fn split_gradient_reaches_every_parameter(seed in any::<u64>()) {
            let mut r = rng(seed);
            let inner = Sequential::<f64>::new(vec![
                Box::new(Reshape::new(&[1, 2, 2], &[4])),
                Box::new(Rescale::new(&[1, 2, 2])),
            ]);
            let mut split = Split::new([2, 2, 2], 1, Box::new(inner), Some(2), &mut r);
            randomize_params(&mut split, 0.3, &mut r);
            gradcheck(&mut split, &randn(&[2, 2, 2, 2], seed ^ 2));
        }
    }

    /// The multi-scale RealNVP, its couplings affine or (`spline`) the
    /// rational-quadratic spline couplings of the zoo's `nsf-image`, K = 4
    /// on [−2, 2] so that the N(0, 1) points fall both inside and in the
    /// tails.
    fn realnvp_image_check(channels: usize, blocks: usize, spline: bool, seed: u64) {
        let mut r = rng(seed);
        let config = RealNvpImageConfig {
            scales: 2,
            checkerboard: 2,
            channel: 2,
            last: 2,
            hidden: 3,
            blocks,
            spline: spline.then(|| RationalQuadraticSpline::new(4, 2.0)),
        };
        let mut model = realnvp_image::<f64, _>([channels, 4, 4], config, &mut r);
        randomize_params(&mut model.flow, 0.2, &mut r);
        check(&model.flow, &randn(&[2, channels * 16], seed ^ 1));
    }

    /// A CI run found this point: a ReLU in a coupling net changes sign
    /// within the finite-difference step, where a central difference
    /// averages two slopes and misses the log-det by 5e-3 (see
    /// `kink_aware_derivative`).
    #[test]
    fn realnvp_image_check_at_a_relu_kink() {
        realnvp_image_check(2, 1, false, 7164072758218875161);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4))]

        // The assembled architectures, on 16-pixel images or 2..7 features.
        #[test]
        fn nice_passes_check_flow(dim in 2usize..8, logistic in any::<bool>(), seed in any::<u64>()) {
            let mut r = rng(seed);
            let config = NiceConfig { couplings: 4, hidden: 6, depth: 2, logistic_prior: logistic };
            let mut model = nice::<f64, _>(dim, config, &mut r);
            randomize_params(&mut model.flow, 0.3, &mut r);
            check(&model.flow, &randn(&[2, dim], seed ^ 1));
        }

        #[test]
        fn nice_gradient_reaches_every_parameter(dim in 2usize..5, seed in any::<u64>()) {
            let mut r = rng(seed);
            let config = NiceConfig { couplings: 4, hidden: 3, depth: 1, logistic_prior: true };
            let mut model = nice::<f64, _>(dim, config, &mut r);
            randomize_params(&mut model.flow, 0.3, &mut r);
            gradcheck(&mut model.flow, &randn(&[2, dim], seed ^ 2));
        }

        #[test]
        fn realnvp_image_passes_check_flow(channels in 1usize..3, blocks in 0usize..2, spline in any::<bool>(), seed in any::<u64>()) {
            realnvp_image_check(channels, blocks, spline, seed);
        }

        #[test]
        fn realnvp_image_gradient_reaches_every_parameter(seed in any::<u64>()) {
            let mut r = rng(seed);
            let config = RealNvpImageConfig { scales: 2, checkerboard: 1, channel: 1, last: 1, hidden: 2, blocks: 0, spline: None };
            let mut model = realnvp_image::<f64, _>([1, 4, 4], config, &mut r);
            randomize_params(&mut model.flow, 0.2, &mut r);
            gradcheck(&mut model.flow, &randn(&[2, 16], seed ^ 2));
        }

        #[test]
        fn glow_passes_check_flow(steps in 1usize..3, lu in any::<bool>(), learned_prior in any::<bool>(), sigmoid in any::<bool>(), seed in any::<u64>()) {
            let mut r = rng(seed);
            let config = GlowConfig { levels: 2, steps, hidden: 3, blocks: 0, lu, learned_prior, scale_kind: scale_kind(sigmoid) };
            let mut model = glow::<f64, _>([1, 4, 4], config, &mut r);
            model.flow.initialize(&randn(&[8, 16], seed ^ 1).mul_scalar(2.0).add_scalar(0.5));
            perturb_params(&mut model.flow, 0.1, &mut r);
            check(&model.flow, &randn(&[2, 16], seed ^ 2));
        }

        #[test]
        fn glow_gradient_reaches_every_parameter(lu in any::<bool>(), seed in any::<u64>()) {
            let mut r = rng(seed);
            let config = GlowConfig { levels: 2, steps: 1, hidden: 2, blocks: 0, lu, learned_prior: true, scale_kind: ScaleKind::Sigmoid };
            let mut model = glow::<f64, _>([1, 4, 4], config, &mut r);
            model.flow.initialize(&randn(&[8, 16], seed ^ 1));
            perturb_params(&mut model.flow, 0.1, &mut r);
            gradcheck(&mut model.flow, &randn(&[2, 16], seed ^ 3));
        }

        #[test]
        fn glow_vector_passes_check_flow(dim in 2usize..6, lu in any::<bool>(), seed in any::<u64>()) {
            let mut r = rng(seed);
            let config = GlowConfig { steps: 2, hidden: 6, lu, ..GlowConfig::default() };
            let mut flow = Sequential::new(glow_vector_layers::<f64, _>(dim, config, &mut r));
            flow.initialize(&randn(&[16, dim], seed ^ 1));
            perturb_params(&mut flow, 0.2, &mut r);
            check(&flow, &randn(&[2, dim], seed ^ 2));
            gradcheck(&mut flow, &randn(&[2, dim], seed ^ 3));
        }
    }

    // Each running average moves a fraction m (the momentum) of the way to
    // the batch's statistic on a recording tape, and not at all on a no-grad
    // tape, where the running averages are used.
    #[test]
    fn batchnorm_running_averages_follow_the_batches() {
        let layer = BatchNorm::<f64>::new(2);
        // channel 0 = (1, 3), channel 1 = (2, 6): means (2, 4), variances (1, 4)
        let x = Tensor::from_vec(vec![1.0, 2.0, 3.0, 6.0], &[2, 2]);
        let tape = Tape::new();
        let _ = layer.inverse(&tape.leaf(x.clone()));
        let (mean, var) = layer.running_statistics();
        // μ̄ = 0.9·0 + 0.1·(2, 4), v̄ = 0.9·1 + 0.1·(1, 4)
        crate::tolerance::assert_all_close("running mean", &mean.to_vec(), &[0.2, 0.4], 1e-15);
        crate::tolerance::assert_all_close("running var", &var.to_vec(), &[1.0, 1.3], 1e-15);
        let (z, _) = layer.inverse_tensor(&x);
        let (mean_after, _) = layer.running_statistics();
        assert_eq!(
            mean_after.to_vec(),
            mean.to_vec(),
            "a no-grad pass must not update"
        );
        // evaluation normalises with the running averages: (1 − 0.2)/√(1 + 1e-5)
        assert!(close(z.to_vec()[0], 0.8 / (1.0f64 + 1e-5).sqrt(), 1e-14));
    }

    // The standard logistic: log π(z) = log σ(z) + log σ(−z), mean 0,
    // variance π²/3.
    #[test]
    fn logistic_prior_matches_its_formula_and_moments() {
        let prior = Logistic::new(3);
        let z = Tensor::from_vec(vec![0.0, 1.5, -40.0], &[1, 3]);
        let tape = Tape::no_grad();
        let got = prior.log_prob(&tape.constant(z)).value().item();
        let sigmoid = |a: f64| 1.0 / (1.0 + (-a).exp());
        let log_density = |a: f64| (sigmoid(a) * sigmoid(-a)).ln();
        // at −40, σ(−40) underflows nothing in f64: e^−40 ≈ 4e−18
        let expected =
            log_density(0.0) + log_density(1.5) + (-40.0 - 2.0 * (1.0f64 + (-40.0f64).exp()).ln());
        assert!(
            close(got, expected, 1e-12),
            "got {got}, expected {expected}"
        );
        let samples = prior.sample::<f64, _>(100_000, 1.0, &mut rng(11)).to_vec();
        let n = samples.len() as f64;
        let mean = samples.iter().sum::<f64>() / n;
        let var = samples.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / n;
        assert!(mean.abs() < 0.02, "mean {mean}");
        let expected_var = std::f64::consts::PI.powi(2) / 3.0;
        assert!(
            (var - expected_var).abs() < 0.05,
            "variance {var}, expected {expected_var}"
        );
    }

    // DESIGN.md proof 6 for every 2-D model of the family: midpoint-rule
    // quadrature of exp(log p) over a box that holds the mass (the logistic
    // prior's tails beyond ±14 hold 2e−6 per axis) is 1 to 1e-3.
    #[test]
    fn two_d_models_integrate_to_one() {
        let mut r = rng(5);
        let mut models: Vec<(&str, FlowModel<f64>)> = Vec::new();
        for logistic in [true, false] {
            let config = NiceConfig {
                couplings: 4,
                hidden: 16,
                depth: 2,
                logistic_prior: logistic,
            };
            let mut model = nice::<f64, _>(2, config, &mut r);
            randomize_params(&mut model.flow, 0.3, &mut r);
            models.push((
                if logistic {
                    "NICE, logistic prior"
                } else {
                    "NICE, normal prior"
                },
                model,
            ));
        }
        for lu in [true, false] {
            let config = GlowConfig {
                steps: 3,
                hidden: 16,
                lu,
                ..GlowConfig::default()
            };
            let mut flow = Sequential::new(glow_vector_layers::<f64, _>(2, config, &mut r));
            flow.initialize(&randn(&[64, 2], 6).mul_scalar(0.8).add_scalar(0.3));
            // Small enough that no 2×2 mixing matrix nears singularity, which
            // would fold the density onto a line thinner than the grid.
            perturb_params(&mut flow, 0.1, &mut r);
            models.push((
                if lu { "Glow (LU)" } else { "Glow (plain)" },
                FlowModel::new(2, flow),
            ));
        }
        // The spline flows, each coordinate bent on [−3, 3] by K = 8 bins,
        // with parameters at scale 0.1: at 0.3 the random splines put density
        // spikes narrower than the grid's 0.04 (NSF-C: mass 1.0086, 1.0046,
        // 1.0022 at 700, 1400, 2800 points; NSF-AR, since its hidden layers
        // start fan-in uniform: 0.99893, 1.00025, 0.99997; converging to 1,
        // at the spikes' rate).
        let spline = flowzoo::flows::RationalQuadraticSpline::new(8, 3.0);
        let mut flow = Sequential::new(flowzoo::flows::spline_coupling::nsf_layers::<f64, _>(
            2, 4, 16, spline, &mut r,
        ));
        randomize_params(&mut flow, 0.1, &mut r);
        models.push(("NSF-C (spline couplings)", FlowModel::new(2, flow)));
        let mut flow = Sequential::new(flowzoo::flows::spline_maf::nsf_ar_layers::<f64, _>(
            2,
            3,
            &[16, 16],
            spline,
            &mut r,
        ));
        randomize_params(&mut flow, 0.1, &mut r);
        models.push(("NSF-AR (spline MAF)", FlowModel::new(2, flow)));
        for (name, model) in &models {
            let grid = DensityGrid::new(model, [-14.0, 14.0], [-14.0, 14.0], 700);
            let mass = grid.mass();
            assert!((mass - 1.0).abs() < 1e-3, "{name}: mass {mass}");
        }
    }
}
