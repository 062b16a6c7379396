//! The coupling family end to end: the multi-scale latents, ActNorm's
//! initialisation as state, the LU log-det against a plain slogdet, the
//! dequantisation Jacobian in bits/dim, short trainings of NICE, the
//! multi-scale RealNVP and Glow on the digits, and the command line.

mod common;

use flowzoo::data::digits;
use flowzoo::flows::architectures::{glow, realnvp_image, GlowConfig, RealNvpImageConfig};
use flowzoo::flows::check::randomize_params;
use flowzoo::flows::inv_conv::{InvConv1x1, InvConvWeight};
use flowzoo::flows::preprocess::Dequantize;
use flowzoo::flows::squeeze::Split;
use flowzoo::flows::zoo::FlowName;
use flowzoo::flows::{ActNorm, Flow};
use flowzoo::tensor::{linalg, Tensor};
use flowzoo::train::eval::{discrete_nll, mean_nll};
use flowzoo::train::run::{run, Dataset, RunConfig};
use rand::SeedableRng;
use std::process::Command;

fn rng(seed: u64) -> rand::rngs::StdRng {
    rand::rngs::StdRng::seed_from_u64(seed)
}

fn max_abs_diff(a: &Tensor<f64>, b: &Tensor<f64>) -> f64 {
    a.sub(b).to_vec().iter().fold(0.0, |m, d| m.max(d.abs()))
}

// Encoding an 8×8 image with the 2-scale RealNVP gives 64 latents: 32 from
// the deeper scale, then the 32 factored out after the first. Decoding them
// gives the image back, and changing only the factored-out part leaves the
// deeper latents of the re-encoding as they were (they never saw it).
#[test]
fn encoding_returns_every_factored_out_latent_and_decoding_reconstructs() {
    let mut r = rng(1);
    let config = RealNvpImageConfig {
        hidden: 4,
        ..RealNvpImageConfig::default()
    };
    let mut model = realnvp_image::<f64, _>([1, 8, 8], config, &mut r);
    randomize_params(&mut model.flow, 0.2, &mut r);
    let x = Tensor::<f64>::randn(&[3, 64], &mut r);
    let (z, _) = model.flow.inverse_tensor(&x);
    assert_eq!(z.shape(), &[3, 64]);
    let (x_back, _) = model.flow.forward_tensor(&z);
    let error = max_abs_diff(&x, &x_back);
    assert!(error < 1e-10, "reconstruction error {error}");

    let deeper = z.narrow(1, 0, 32);
    let factored = z.narrow(1, 32, 32).add_scalar(0.5);
    let (x_moved, _) = model
        .flow
        .forward_tensor(&Tensor::concat(&[&deeper, &factored], 1));
    let (z_again, _) = model.flow.inverse_tensor(&x_moved);
    let deeper_error = max_abs_diff(&z_again.narrow(1, 0, 32), &deeper);
    let factored_error = max_abs_diff(&z_again.narrow(1, 32, 32), &factored);
    assert!(
        deeper_error < 1e-10,
        "deeper latents moved by {deeper_error}"
    );
    assert!(
        factored_error < 1e-10,
        "factored latents off by {factored_error}"
    );
}

// The split's sizes: kept·H·W latents go deeper, the rest are factored out.
#[test]
fn split_reports_its_latent_sizes() {
    let inner = Box::new(flowzoo::flows::Reshape::new(&[2, 4, 4], &[32]));
    let split = Split::<f64>::new([4, 4, 4], 2, inner, None, &mut rng(0));
    assert_eq!((split.inner_dim(), split.factored_dim()), (32, 32));
}

// ActNorm initialises once: a second batch, or a layer whose flag says it was
// initialised (as a loaded checkpoint's), leaves the parameters alone.
#[test]
fn actnorm_is_initialised_once() {
    let mut r = rng(2);
    let config = GlowConfig {
        hidden: 4,
        steps: 2,
        ..GlowConfig::default()
    };
    let mut model = glow::<f64, _>([1, 8, 8], config, &mut r);
    let first = Tensor::<f64>::randn(&[32, 64], &mut r).add_scalar(0.3);
    model.flow.initialize(&first);
    let after_first: Vec<Vec<f64>> = model.params().iter().map(|p| p.value.to_vec()).collect();
    model
        .flow
        .initialize(&Tensor::<f64>::randn(&[32, 64], &mut r).mul_scalar(5.0));
    let after_second: Vec<Vec<f64>> = model.params().iter().map(|p| p.value.to_vec()).collect();
    assert_eq!(after_first, after_second);

    let mut loaded = ActNorm::<f64>::new(2);
    loaded.initialized = true;
    loaded.bias.value = Tensor::from_vec(vec![0.25, -1.0], &[2]);
    loaded.initialize(&Tensor::from_vec(vec![10.0, 20.0, 30.0, 40.0], &[2, 2]));
    assert_eq!(loaded.bias.value.to_vec(), vec![0.25, -1.0]);
    assert_eq!(loaded.log_scale.value.to_vec(), vec![0.0, 0.0]);
}

// W = P·L·(U + diag s): log|det W| from an LU factorisation of the assembled
// matrix equals Σ log|sᵢ|, the LU form's log-det per pixel.
#[test]
fn lu_log_det_equals_the_slogdet_of_the_assembled_matrix() {
    let mut r = rng(3);
    let mut layer = InvConv1x1::<f64>::new_lu(5, &mut r);
    randomize_params(&mut layer, 0.4, &mut r);
    let w = match &layer.weight {
        InvConvWeight::Lu {
            permutation,
            lower,
            upper,
            log_s,
            sign_s,
        } => {
            let n = 5;
            let mut l = lower.value.to_vec();
            let mut u = upper.value.to_vec();
            let s: Vec<f64> = log_s
                .value
                .to_vec()
                .iter()
                .zip(sign_s.to_vec())
                .map(|(ls, sign)| sign * ls.exp())
                .collect();
            for (i, &s_i) in s.iter().enumerate() {
                for j in 0..n {
                    let at = i * n + j;
                    l[at] = match i.cmp(&j) {
                        std::cmp::Ordering::Greater => l[at],
                        std::cmp::Ordering::Equal => 1.0,
                        std::cmp::Ordering::Less => 0.0,
                    };
                    u[at] = match i.cmp(&j) {
                        std::cmp::Ordering::Less => u[at],
                        std::cmp::Ordering::Equal => s_i,
                        std::cmp::Ordering::Greater => 0.0,
                    };
                }
            }
            let l = Tensor::from_vec(l, &[n, n]);
            let u = Tensor::from_vec(u, &[n, n]);
            permutation.matmul(&l).matmul(&u)
        }
        InvConvWeight::Plain { .. } => unreachable!("built with new_lu"),
    };
    let (_, log_abs_det) = linalg::slogdet(&w);
    // 3×2 pixels: the layer's log-det is 6·log|det W|
    let (_, log_det) = layer.forward_tensor(&Tensor::randn(&[1, 5, 3, 2], &mut r));
    let per_pixel = log_det.item() / 6.0;
    assert!(
        (per_pixel - log_abs_det).abs() < 1e-12,
        "LU form {per_pixel}, slogdet {log_abs_det}"
    );
}

// bits/dim counts the scaling v + u ↦ (v + u)/17: the discrete NLL is the
// continuous one plus D·log 17 nats, with the same noise.
// Glow's scale with the network's output pinned to ŝ (every weight 0, the
// output bias [ŝ, ŝ | 0, 0]): the forward log-det is Σ s' over the two
// transformed features, s = softplus(−ŝ − 2), s' = s up to the knee 10 and
// 10 + 2·tanh((s − 10)/2) ≤ 12 above it (12 once tanh rounds to 1).
#[test]
fn sigmoid_scale_is_itself_below_the_knee_and_never_above_twelve() {
    use flowzoo::flows::bound::{LOG_SCALE_KNEE, LOG_SCALE_MAX};
    use flowzoo::flows::{AffineCoupling, Mask, ScaleKind};
    assert_eq!((LOG_SCALE_KNEE, LOG_SCALE_MAX), (10.0, 12.0));
    let softplus = |x: f64| x.max(0.0) + (-x.abs()).exp().ln_1p();
    for raw in [0.0, -5.0, -11.9, -12.5, -100.0, -1e4, -1e30] {
        let mut layer = AffineCoupling::<f64>::new(Mask::half(4, false), 4, &mut rng(0))
            .with_scale_kind(ScaleKind::Sigmoid);
        let mut params = layer.net.params_mut();
        let bias = params.pop().expect("the output bias");
        bias.value = Tensor::from_vec(vec![raw, raw, 0.0, 0.0], &[4]);
        for p in params {
            p.value = p.value.mul_scalar(0.0);
        }
        let s = softplus(-raw - 2.0);
        let capped = if s <= 10.0 {
            s
        } else {
            10.0 + 2.0 * ((s - 10.0) / 2.0).tanh()
        };
        let z = Tensor::from_vec(vec![0.5, -1.0, 2.0, -3.0], &[1, 4]);
        let (x, log_det) = layer.forward_tensor(&z);
        let log_det = log_det.to_vec()[0];
        if s <= 10.0 {
            assert_eq!(log_det, 2.0 * s, "ŝ = {raw}: below the knee, s itself");
        } else {
            assert!(
                (log_det - 2.0 * capped).abs() < 1e-12,
                "ŝ = {raw}: {log_det} vs {}",
                2.0 * capped
            );
        }
        assert!(log_det <= 24.0, "ŝ = {raw}: each s' is at most 12");
        // x₂ = z₂·e^{s'}: the map applies the capped scale the log-det counts.
        let x = x.to_vec();
        assert!(
            (x[2] - 2.0 * capped.exp()).abs() <= 1e-12 * x[2].abs(),
            "ŝ = {raw}: {x:?}"
        );
    }
}

#[test]
fn dequantized_scaling_is_counted_in_bits_per_dim() {
    let config = RunConfig {
        dataset: Dataset::Digits,
        flow: FlowName::RealNvpImage,
        layers: 1,
        hidden: 4,
        ..RunConfig::default()
    };
    let model = flowzoo::train::run::build_model(&config).unwrap();
    let test = digits::test();
    let v = Tensor::<f32>::from_f64_slice(&test.images_f64()[..64 * 50], &[50, 64]);
    let dequantize = Dequantize::new(digits::LEVELS);
    let discrete = discrete_nll(&model, &v, dequantize, &mut rng(4));
    let continuous = mean_nll(&model, &dequantize.apply(&v, &mut rng(4)));
    let jacobian = 64.0 * 17f64.ln();
    assert!(
        (discrete - continuous - jacobian).abs() < 1e-6 * discrete.abs(),
        "discrete {discrete}, continuous {continuous}: difference is not 64·log 17 = {jacobian}"
    );
}

// A few dozen steps of each model on the digits move the test bits/dim well
// below where the untrained model starts (about 4.5 bits/dim for these
// identity-initialised flows: the logit-space standard normal fits the
// digits badly) and below the 4.09 bits/dim of the uniform distribution.
#[test]
fn the_image_flows_learn_the_digits() {
    for (flow, layers, hidden) in [
        (FlowName::Nice, 4, 32),
        (FlowName::RealNvpImage, 1, 8),
        (FlowName::Glow, 1, 8),
        (FlowName::NsfImage, 1, 8),
    ] {
        let config = RunConfig {
            dataset: Dataset::Digits,
            flow,
            layers,
            hidden,
            steps: 60,
            eval_every: 30,
            lr: 3e-3,
            ..RunConfig::default()
        };
        let result = run(&config, |_, _| {}).unwrap();
        let bpd = result.test_bits_per_dim.expect("digits report bits/dim");
        assert!(
            bpd < 3.6,
            "{}: test bits/dim {bpd} after 60 steps",
            flow.name()
        );
    }
}

// realnvp-image is for images: on 2-D data the run stops with a typed error.
#[test]
fn realnvp_image_rejects_two_dimensional_data() {
    let config = RunConfig {
        flow: FlowName::RealNvpImage,
        steps: 1,
        ..RunConfig::default()
    };
    let message = run(&config, |_, _| {}).err().expect("an error").to_string();
    assert!(message.contains("digits"), "{message}");
}

// `flowzoo train --flow glow --data digits` writes the metrics, both sample
// grids and the interpolation strip; `--flow nice` runs on 2-D data.
#[test]
fn cli_trains_glow_on_digits_and_nice_on_moons() {
    let out = common::temp_dir("cli-glow");
    let status = Command::new(env!("CARGO_BIN_EXE_flowzoo"))
        .args([
            "train",
            "--data",
            "digits",
            "--flow",
            "glow",
            "--steps",
            "10",
            "--layers",
            "1",
            "--hidden",
            "4",
            "--eval-every",
            "5",
            "--quiet",
            "--out",
        ])
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    for file in [
        "metrics.json",
        "samples.png",
        "samples-t0.7.png",
        "interpolation.png",
    ] {
        let bytes = std::fs::read(out.join(file)).unwrap();
        assert!(bytes.len() > 100, "{file} is {} bytes", bytes.len());
    }
    let metrics = std::fs::read_to_string(out.join("metrics.json")).unwrap();
    assert!(metrics.contains("\"glow\""), "{metrics}");
    assert!(metrics.contains("test_bits_per_dim"), "{metrics}");

    let out = common::temp_dir("cli-nice");
    let status = Command::new(env!("CARGO_BIN_EXE_flowzoo"))
        .args([
            "train", "--flow", "nice", "--steps", "10", "--hidden", "8", "--quiet", "--out",
        ])
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    assert!(std::fs::read_to_string(out.join("metrics.json"))
        .unwrap()
        .contains("\"nice\""));
}
