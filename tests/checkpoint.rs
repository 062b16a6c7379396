//! Checkpoints: every flow of the zoo round-trips bit for bit, and saving
//! never leaves a half-written file under the real name. Malformed files:
//! tests/checkpoint_files.rs; specs that disagree with their tensors or
//! hold unknown values: tests/checkpoint_specs.rs.

#[path = "common/checkpoint.rs"]
mod checkpoint_helpers;
mod common;

use checkpoint_helpers::*;
use flowzoo::autodiff::Tape;
use flowzoo::error::CheckpointError;
use flowzoo::flows::architectures::{
    glow, glow_vector_layers, nice_layers, realnvp_image, GlowConfig, NiceConfig,
    RealNvpImageConfig,
};
use flowzoo::flows::autoregressive::maf_layers;
use flowzoo::flows::batchnorm::BatchNormMode;
use flowzoo::flows::iaf::iaf_layers;
use flowzoo::flows::model::realnvp_layers;
use flowzoo::flows::preprocess::Logit;
use flowzoo::flows::prior::{Logistic, Prior};
use flowzoo::flows::registry::layer_kinds;
use flowzoo::flows::spec::{LayerSpec, SpecValue};
use flowzoo::flows::spline::RationalQuadraticSpline;
use flowzoo::flows::spline_coupling::nsf_layers;
use flowzoo::flows::spline_maf::nsf_ar_layers;
use flowzoo::flows::standardize::Standardize;
use flowzoo::flows::zoo::FlowName;
use flowzoo::flows::{
    ActNorm, AffineCoupling, BatchNorm, DiagonalNormal, Flow, FlowModel, GaussianMixture,
    ImageCoupling, ImageMask, ImageSplineCoupling, InvConv1x1, Mask, Permutation, Reshape, Reverse,
    ScaleKind, Sequential, Split, Squeeze, Transform,
};
use flowzoo::nn::Adam;
use flowzoo::tensor::{Element, Tensor};
use flowzoo::train::checkpoint::{
    load_model, save, save_model, temporary_path, to_bytes, AdamState, Checkpoint,
};
use flowzoo::train::record::RunRecord;
use rand::rngs::StdRng;

#[test]
fn realnvp_round_trips_in_f32_and_f64() {
    let model = FlowModel::<f32>::realnvp(2, 4, 16, &mut rng(0));
    assert_round_trip("realnvp-f32", model, &vectors(64, 2, 1));
    let model = FlowModel::<f64>::realnvp(5, 3, 8, &mut rng(0));
    assert_round_trip("realnvp-f64", model, &vectors(64, 5, 1));
}

// A learnable base's tensors (prior.*) are parameters like the flow's:
// randomised by assert_round_trip, saved, loaded and compared bit for bit,
// with the prior's kind and sizes in the spec.
#[test]
fn learned_bases_round_trip_in_f32_and_f64() {
    let flow = || Sequential::<f64>::new(realnvp_layers(3, 2, 4, &mut rng(1)));
    let diag = FlowModel::with_prior(DiagonalNormal::new(3), flow());
    let mixture = FlowModel::with_prior(GaussianMixture::new(3, 4), flow());
    assert_eq!(mixture.prior_params.len(), 3);
    assert_round_trip("diag-base", diag, &vectors(8, 3, 2));
    assert_round_trip("mixture-base", mixture, &vectors(8, 3, 3));
    let mixture32 = FlowModel::with_prior(
        GaussianMixture::new(2, 2),
        Sequential::<f32>::new(realnvp_layers(2, 2, 4, &mut rng(4))),
    );
    assert_round_trip("mixture-base-f32", mixture32, &vectors(8, 2, 5));
}

#[test]
fn nice_with_rescale_and_logistic_prior_round_trips() {
    let nice = NiceConfig {
        couplings: 4,
        hidden: 8,
        ..NiceConfig::default()
    };
    let layers = nice_layers::<f64, _>(4, nice, &mut rng(2));
    let prior: Prior = Logistic::new(4).into();
    let model = FlowModel::with_prior(prior, Sequential::new(layers));
    assert_round_trip("nice", model, &vectors(5, 4, 4));
}

#[test]
fn hand_assembled_stack_round_trips() {
    // Alternating masks, a reversal, a nested Sequential and a logistic prior:
    // none of it comes from a named builder, all of it from the specs.
    let dim = 6;
    let mut r = rng(0);
    let inner: Vec<Box<dyn Flow<f64>>> = vec![
        Box::new(AffineCoupling::new(Mask::alternating(dim, 1), 8, &mut r)),
        Box::new(Reverse::new(dim)),
    ];
    let layers: Vec<Box<dyn Flow<f64>>> = vec![
        Box::new(AffineCoupling::new(Mask::alternating(dim, 0), 12, &mut r)),
        Box::new(Sequential::new(inner)),
        Box::new(AffineCoupling::new(Mask::half(dim, true), 4, &mut r)),
    ];
    let model = FlowModel::with_prior(Logistic::new(dim), Sequential::new(layers));
    assert_round_trip("hand-assembled", model, &vectors(32, dim, 2));
}

#[test]
fn digits_model_with_logit_round_trips() {
    let dim = 64;
    let mut layers = realnvp_layers::<f32, _>(dim, 2, 32, &mut rng(0));
    layers.push(Box::new(Logit::new(dim, 0.05)));
    let model = FlowModel::new(dim, Sequential::new(layers));
    let x = Tensor::<f32>::rand_uniform(&[16, dim], 0.0, 1.0, &mut rng(4));
    assert_round_trip("digits-logit", model, &x);
}

#[test]
fn optimiser_state_and_metadata_round_trip() {
    let mut model = FlowModel::<f32>::realnvp(2, 2, 8, &mut rng(0));
    let mut adam = Adam::new(3e-4);
    adam.beta2 = 0.99;
    let x = vectors::<f32>(32, 2, 5);
    for _ in 0..3 {
        flowzoo::train::train_step(&mut model, &mut adam, &x).unwrap();
    }
    let record = RunRecord {
        data: "moons".into(),
        flow: FlowName::RealNvp,
        layers: 2,
        hidden: 8,
        batch: 32,
        seed: 5,
        step: 3,
        target: None,
        columns: Some(vec!["a".into(), "b".into()]),
        context: None,
    };
    let path = common::temp_dir("ckpt-adam").join("model.flowzoo");
    save(&path, &model, Some(&AdamState::of(&adam)), Some(&record)).unwrap();
    let loaded = Checkpoint::<f32>::load(&path).unwrap();
    assert_eq!(loaded.record.as_ref(), Some(&record));
    let state = loaded.optimizer.expect("the optimiser state was saved");
    assert_eq!((state.lr, state.beta2, state.step), (3e-4, 0.99, 3));
    assert_eq!(state.moments.len(), model.params().len());
    for ([m, v], [m2, v2]) in adam.moments().iter().zip(&state.moments) {
        assert_eq!((bits(m), bits(v)), (bits(m2), bits(v2)));
    }
    // One more step from the restored state equals one more step of the original.
    let (mut resumed_model, mut resumed) = (loaded.model, state.to_adam());
    let a = flowzoo::train::train_step(&mut model, &mut adam, &x).unwrap();
    let b = flowzoo::train::train_step(&mut resumed_model, &mut resumed, &x).unwrap();
    assert_eq!(a.to_bits(), b.to_bits());
    for (p, q) in model.params().iter().zip(resumed_model.params()) {
        assert_eq!(
            bits(&p.value),
            bits(&q.value),
            "{} after a resumed step",
            p.name
        );
    }
}

#[test]
fn f32_checkpoint_loads_into_f64_exactly() {
    let model = FlowModel::<f32>::realnvp(3, 2, 8, &mut rng(0));
    let path = common::temp_dir("ckpt-cast").join("model.flowzoo");
    save_model(&path, &model).unwrap();
    let wide = load_model::<f64>(&path).unwrap();
    for (p, q) in model.params().iter().zip(wide.params()) {
        let widened: Vec<f64> = p.value.to_f64_vec();
        assert_eq!(widened, q.value.to_f64_vec(), "{}", p.name);
    }
}

#[test]
fn a_crash_mid_save_leaves_the_old_checkpoint_whole() {
    let dir = common::temp_dir("ckpt-crash");
    let path = dir.join("model.flowzoo");
    let old = FlowModel::<f32>::realnvp(2, 2, 8, &mut rng(0));
    save_model(&path, &old).unwrap();
    let old_bytes = std::fs::read(&path).unwrap();
    assert!(
        !temporary_path(&path).exists(),
        "save left its temporary file"
    );

    // A save that died half-way: the new bytes cut in the middle, in NAME.tmp.
    let new = FlowModel::<f32>::realnvp(2, 2, 8, &mut rng(1));
    let new_bytes = to_bytes(&new, None, None).unwrap();
    std::fs::write(temporary_path(&path), &new_bytes[..new_bytes.len() / 2]).unwrap();

    // The real name still holds the old checkpoint, whole, and it loads.
    assert_eq!(std::fs::read(&path).unwrap(), old_bytes);
    let loaded = load_model::<f32>(&path).unwrap();
    let x = vectors::<f32>(8, 2, 2);
    assert_eq!(bits(&old.log_prob(&x)), bits(&loaded.log_prob(&x)));
    // The half-written file itself is rejected, not misread.
    let err = load_model::<f32>(temporary_path(&path)).err().unwrap();
    assert!(matches!(err, CheckpointError::Truncated { .. }), "{err}");

    // The next save replaces the leftover and the checkpoint.
    save_model(&path, &new).unwrap();
    assert!(!temporary_path(&path).exists());
    assert_eq!(std::fs::read(&path).unwrap(), new_bytes);
}

// ------------------------------------------------ image flows and the rest

/// A flat-vector model around image layers `middle` (forward order): the
/// latent `[n]` is reshaped to `latent_image`, `middle` maps it to
/// `data_image`, and that is flattened to the data `[n]`.
fn image_model<T: Element>(
    latent_image: [usize; 3],
    middle: Vec<Box<dyn Flow<T>>>,
    data_image: [usize; 3],
) -> FlowModel<T> {
    let n: usize = data_image.iter().product();
    let mut layers: Vec<Box<dyn Flow<T>>> = vec![Box::new(Reshape::new(&latent_image, &[n]))];
    layers.extend(middle);
    layers.push(Box::new(Reshape::new(&[n], &data_image)));
    FlowModel::new(n, Sequential::new(layers))
}

#[test]
fn glow_round_trips_with_lu_and_plain_convolutions_both_priors_and_scales() {
    let variants = [
        (true, true, ScaleKind::Sigmoid),
        (false, false, ScaleKind::Tanh),
        (true, false, ScaleKind::Tanh),
        (false, true, ScaleKind::Sigmoid),
    ];
    for (i, &(lu, learned_prior, scale_kind)) in variants.iter().enumerate() {
        let config = GlowConfig {
            levels: 2,
            steps: 2,
            hidden: 4,
            blocks: i % 2,
            lu,
            learned_prior,
            scale_kind,
        };
        let name = format!("glow-lu-{lu}-prior-{learned_prior}-{}", scale_kind.name());
        let seed = i as u64;
        let mut model = glow::<f32, _>([1, 4, 4], config, &mut rng(seed));
        let x = vectors::<f32>(8, 16, 10 + seed);
        model.flow.initialize(&x);
        assert_round_trip(&format!("{name}-f32"), model, &x);
        let mut model = glow::<f64, _>([1, 4, 4], config, &mut rng(seed));
        let x = vectors::<f64>(8, 16, 20 + seed);
        model.flow.initialize(&x);
        assert_round_trip(&format!("{name}-f64"), model, &x);
    }
}

#[test]
fn glow_on_vectors_round_trips() {
    let config = GlowConfig {
        steps: 3,
        hidden: 8,
        ..GlowConfig::default()
    };
    let mut model = FlowModel::new(
        2,
        Sequential::new(glow_vector_layers::<f64, _>(2, config, &mut rng(0))),
    );
    let x = vectors::<f64>(32, 2, 1);
    model.flow.initialize(&x);
    assert_round_trip("glow-vectors", model, &x);
}

#[test]
fn realnvp_image_round_trips_in_f32_and_f64_affine_and_spline() {
    let config = RealNvpImageConfig {
        scales: 2,
        checkerboard: 2,
        channel: 2,
        last: 2,
        hidden: 4,
        blocks: 1,
        spline: None,
    };
    let model = realnvp_image::<f32, _>([1, 4, 4], config, &mut rng(0));
    assert_round_trip("realnvp-image-f32", model, &vectors(8, 16, 1));
    // three scales, with the spline couplings of the zoo's nsf-image
    let config = RealNvpImageConfig {
        scales: 3,
        hidden: 2,
        blocks: 0,
        spline: Some(RationalQuadraticSpline::new(4, 2.0)),
        ..config
    };
    let model = realnvp_image::<f64, _>([1, 8, 8], config, &mut rng(0));
    assert_round_trip("nsf-image-f64", model, &vectors(8, 64, 1));
}

/// A BatchNorm over `channels` after three training-time passes (on a
/// recording tape) over shifted, scaled batches shaped `[batch, channels,
/// …rest]`, so its running statistics are not the defaults; then set to `mode`.
fn trained_batch_norm(channels: usize, rest: &[usize], mode: BatchNormMode) -> BatchNorm<f64> {
    let mut layer = BatchNorm::new(channels);
    layer.momentum = 0.3;
    let tape = Tape::new();
    let shape: Vec<usize> = [32, channels].iter().chain(rest).copied().collect();
    for seed in 0..3 {
        let x = Tensor::<f64>::randn(&shape, &mut rng(30 + seed))
            .mul_scalar(2.0)
            .add_scalar(1.0);
        let _ = layer.inverse(&tape.constant(x));
    }
    let (mean, var) = layer.running_statistics();
    assert!(mean.to_vec().iter().all(|&m| m != 0.0), "{mean:?}");
    assert!(var.to_vec().iter().all(|&v| v != 1.0), "{var:?}");
    layer.mode = mode;
    layer
}

#[test]
fn batch_norm_round_trips_its_running_statistics_and_mode() {
    let dim = 4;
    for mode in [
        BatchNormMode::Auto,
        BatchNormMode::Running,
        BatchNormMode::Batch,
    ] {
        let layers: Vec<Box<dyn Flow<f64>>> = vec![
            Box::new(AffineCoupling::new(Mask::half(dim, false), 8, &mut rng(0))),
            Box::new(trained_batch_norm(dim, &[], mode)),
            Box::new(AffineCoupling::new(Mask::half(dim, true), 8, &mut rng(1))),
        ];
        let model = FlowModel::new(dim, Sequential::new(layers));
        let name = format!("batchnorm-{}", mode.name());
        assert_round_trip(&name, model, &vectors(16, dim, 2));
    }
    // On images, inside a Split: the buffers are routed through `inner`.
    let inner: Box<dyn Flow<f64>> = Box::new(Sequential::new(vec![
        Box::new(Reshape::new(&[1, 2, 2], &[4])),
        Box::new(trained_batch_norm(1, &[2, 2], BatchNormMode::Auto)),
    ]));
    let split = Split::new([2, 2, 2], 1, inner, None, &mut rng(0));
    let layers: Vec<Box<dyn Flow<f64>>> =
        vec![Box::new(split), Box::new(Reshape::new(&[8], &[2, 2, 2]))];
    let model = FlowModel::new(8, Sequential::new(layers));
    assert_eq!(
        model.flow.buffers()[0].0,
        "layer0.inner.layer1.running_mean"
    );
    assert_round_trip("batchnorm-in-split", model, &vectors(16, 8, 3));
}

#[test]
fn permutation_round_trips_alone_and_in_a_stack() {
    let layers: Vec<Box<dyn Flow<f32>>> = vec![Box::new(Permutation::random(7, &mut rng(0)))];
    let model = FlowModel::new(7, Sequential::new(layers));
    assert_round_trip("permutation", model, &vectors(8, 7, 1));
    let layers: Vec<Box<dyn Flow<f64>>> = vec![
        Box::new(AffineCoupling::new(Mask::half(5, false), 8, &mut rng(0))),
        Box::new(Permutation::random(5, &mut rng(1))),
        Box::new(AffineCoupling::new(Mask::half(5, false), 8, &mut rng(2))),
    ];
    let model = FlowModel::new(5, Sequential::new(layers));
    assert_round_trip("permutation-stack", model, &vectors(8, 5, 1));
}

#[test]
fn each_image_layer_round_trips_alone() {
    let mut r = rng(0);
    let image = [2, 4, 4];
    let x = vectors::<f64>(8, 32, 1);
    let mask = ImageMask::Checkerboard { parity: 1 };
    let coupling = ImageCoupling::<f64>::new(2, mask, 4, 1, ScaleKind::Tanh, &mut r);
    let model = image_model::<f64>(image, vec![Box::new(coupling)], image);
    assert_round_trip("image-coupling-checkerboard", model, &x);
    let mask = ImageMask::Channel { flip: true };
    let coupling = ImageCoupling::<f64>::new(2, mask, 3, 0, ScaleKind::Sigmoid, &mut r);
    let model = image_model::<f64>(image, vec![Box::new(coupling)], image);
    assert_round_trip("image-coupling-channel", model, &x);
    let spline = RationalQuadraticSpline::new(5, 2.0);
    for (name, mask) in [
        (
            "image-spline-checkerboard",
            ImageMask::Checkerboard { parity: 0 },
        ),
        ("image-spline-channel", ImageMask::Channel { flip: false }),
    ] {
        let coupling = ImageSplineCoupling::<f64>::new(2, mask, 4, 1, spline, &mut r);
        let model = image_model::<f64>(image, vec![Box::new(coupling)], image);
        assert_round_trip(name, model, &x);
    }
    let model = image_model::<f64>(image, vec![Box::new(ActNorm::<f64>::new(2))], image);
    assert_round_trip("actnorm-image", model, &x);
    let model = image_model::<f64>(
        image,
        vec![Box::new(InvConv1x1::<f64>::new(2, &mut r))],
        image,
    );
    assert_round_trip("invconv-plain-image", model, &x);
    let model = image_model::<f64>(
        image,
        vec![Box::new(InvConv1x1::<f64>::new_lu(2, &mut r))],
        image,
    );
    assert_round_trip("invconv-lu-image", model, &x);
    let model = image_model::<f64>([8, 2, 2], vec![Box::new(Squeeze)], image);
    assert_round_trip("squeeze", model, &x);
    // A split alone: the kept channel's inner flow is just the flattening.
    for learned_prior in [None, Some(3)] {
        let inner: Box<dyn Flow<f64>> = Box::new(Reshape::new(&[1, 4, 4], &[16]));
        let split = Split::new(image, 1, inner, learned_prior, &mut r);
        let layers: Vec<Box<dyn Flow<f64>>> =
            vec![Box::new(split), Box::new(Reshape::new(&[32], &image))];
        let model = FlowModel::new(32, Sequential::new(layers));
        let name = format!("split-prior-{}", learned_prior.is_some());
        assert_round_trip(&name, model, &x);
    }
}

#[test]
fn vector_actnorm_and_invconv_round_trip_alone_in_f32_and_f64() {
    let mut r = rng(0);
    let layers: Vec<Box<dyn Flow<f32>>> = vec![Box::new(ActNorm::new(3))];
    let model = FlowModel::new(3, Sequential::new(layers));
    assert_round_trip("actnorm-f32", model, &vectors(8, 3, 1));
    let layers: Vec<Box<dyn Flow<f32>>> = vec![Box::new(InvConv1x1::new_lu(5, &mut r))];
    let model = FlowModel::new(5, Sequential::new(layers));
    assert_round_trip("invconv-lu-f32", model, &vectors(8, 5, 1));
    let layers: Vec<Box<dyn Flow<f64>>> = vec![Box::new(InvConv1x1::new(5, &mut r))];
    let model = FlowModel::new(5, Sequential::new(layers));
    assert_round_trip("invconv-plain-f64", model, &vectors(8, 5, 1));
}

#[test]
fn actnorm_initialised_before_saving_is_not_initialised_again() {
    let dim = 3;
    let one_actnorm = || {
        let layers: Vec<Box<dyn Flow<f64>>> = vec![Box::new(ActNorm::new(dim))];
        FlowModel::new(dim, Sequential::new(layers))
    };
    let initialized = |model: &FlowModel<f64>| {
        model.flow.layers[0]
            .to_spec()
            .unwrap()
            .get("initialized")
            .cloned()
    };
    let first = vectors::<f64>(64, dim, 1).mul_scalar(3.0).add_scalar(2.0);
    let other = vectors::<f64>(16, dim, 2).mul_scalar(0.5).add_scalar(-1.0);
    let mut model = one_actnorm();
    model.flow.initialize(&first);
    let path = common::temp_dir("ckpt-actnorm").join("model.flowzoo");
    save_model(&path, &model).unwrap();
    let mut loaded = load_model::<f64>(&path).unwrap();
    assert_eq!(initialized(&loaded), Some(SpecValue::Bool(true)));
    // `initialize` on another batch leaves the loaded parameters alone.
    let z = loaded.flow.initialize(&other);
    assert_eq!(bits(&z), bits(&model.flow.inverse_tensor(&other).0));
    for (p, q) in model.params().iter().zip(loaded.params()) {
        assert_eq!(bits(&p.value), bits(&q.value), "{}", p.name);
    }
    assert_eq!(
        bits(&model.log_prob(&other)),
        bits(&loaded.log_prob(&other))
    );

    // A layer saved before its initialisation initialises on its first batch.
    let fresh = one_actnorm();
    save_model(&path, &fresh).unwrap();
    let mut loaded = load_model::<f64>(&path).unwrap();
    assert_eq!(initialized(&loaded), Some(SpecValue::Bool(false)));
    let mut reference = one_actnorm();
    let z = loaded.flow.initialize(&other);
    assert_eq!(bits(&z), bits(&reference.flow.initialize(&other)));
    assert_eq!(initialized(&loaded), Some(SpecValue::Bool(true)));
}

/// The kinds in `spec` and its descendants.
fn kinds(spec: &LayerSpec, into: &mut std::collections::BTreeSet<String>) {
    into.insert(spec.kind.clone());
    spec.children.iter().for_each(|c| kinds(c, into));
}

#[test]
fn every_layer_kind_round_trips() {
    // One small model per architecture of the zoo, and the layers no
    // architecture uses; together they hold every kind build_layer knows.
    let mut r = rng(0);
    let glow_config = GlowConfig {
        steps: 1,
        hidden: 4,
        ..GlowConfig::default()
    };
    let realnvp_config = RealNvpImageConfig {
        checkerboard: 1,
        channel: 1,
        last: 1,
        hidden: 4,
        ..RealNvpImageConfig::default()
    };
    let nice = NiceConfig {
        couplings: 2,
        hidden: 4,
        depth: 1,
        logistic_prior: true,
    };
    let extra: Vec<Box<dyn Flow<f64>>> = vec![
        Box::new(Standardize::new(vec![1.0, -2.0, 0.5], vec![2.0, 0.5, 1.0])),
        Box::new(BatchNorm::new(3)),
        Box::new(Permutation::random(3, &mut r)),
        Box::new(Reverse::new(3)),
    ];
    let mut logit = realnvp_layers::<f64, _>(3, 2, 4, &mut r);
    logit.push(Box::new(Logit::new(3, 0.05)));
    let zoo: Vec<(&str, FlowModel<f64>, usize)> = vec![
        ("zoo-realnvp", FlowModel::realnvp(3, 2, 4, &mut r), 3),
        ("zoo-nice", nice_model(nice, &mut r), 3),
        (
            "zoo-maf",
            FlowModel::new(3, Sequential::new(maf_layers(3, 2, &[6], &mut r))),
            3,
        ),
        (
            "zoo-iaf",
            FlowModel::new(
                3,
                Sequential::new(iaf_layers(3, 2, &[6], Transform::Gated, &mut r)),
            ),
            3,
        ),
        ("zoo-glow", glow([1, 4, 4], glow_config, &mut r), 16),
        (
            "zoo-realnvp-image",
            realnvp_image([1, 4, 4], realnvp_config, &mut r),
            16,
        ),
        ("zoo-logit", FlowModel::new(3, Sequential::new(logit)), 3),
        (
            "zoo-nsf",
            FlowModel::new(
                3,
                Sequential::new(nsf_layers(
                    3,
                    2,
                    6,
                    RationalQuadraticSpline::new(4, 3.0),
                    &mut r,
                )),
            ),
            3,
        ),
        (
            "zoo-nsf-ar",
            FlowModel::new(
                3,
                Sequential::new(nsf_ar_layers(
                    3,
                    2,
                    &[6],
                    RationalQuadraticSpline::new(5, 2.0),
                    &mut r,
                )),
            ),
            3,
        ),
        ("zoo-extra", FlowModel::new(3, Sequential::new(extra)), 3),
        (
            "zoo-image-spline",
            image_model::<f64>(
                [2, 2, 2],
                vec![Box::new(ImageSplineCoupling::new(
                    2,
                    ImageMask::Channel { flip: true },
                    3,
                    0,
                    RationalQuadraticSpline::new(3, 2.0),
                    &mut r,
                ))],
                [2, 2, 2],
            ),
            8,
        ),
    ];
    let mut seen = std::collections::BTreeSet::new();
    for (name, model, dim) in zoo {
        kinds(&model.flow.to_spec().unwrap(), &mut seen);
        let x = Tensor::<f64>::rand_uniform(&[8, dim], 0.1, 0.9, &mut rng(5));
        assert_round_trip(name, model, &x);
    }
    let known: std::collections::BTreeSet<String> =
        layer_kinds().iter().map(|k| k.to_string()).collect();
    assert_eq!(
        seen, known,
        "kinds round-tripped vs the kinds build_layer knows"
    );
}

fn nice_model(config: NiceConfig, r: &mut StdRng) -> FlowModel<f64> {
    let prior: Prior = Logistic::new(3).into();
    FlowModel::with_prior(prior, Sequential::new(nice_layers(3, config, r)))
}
