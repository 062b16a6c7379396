//! MAF and IAF end to end: maximum likelihood on two moons, reverse KL to an
//! energy, distillation of an MAF into an IAF, the density integrating to
//! one, the errors, and the command line.

use flowzoo::data::energy::Energy;
use flowzoo::data::toy2d::Toy2d;
use flowzoo::error::TrainError;
use flowzoo::flows::autoregressive::maf_layers;
use flowzoo::flows::check::randomize_params;
use flowzoo::flows::iaf::iaf_layers;
use flowzoo::flows::registry::build_layer;
use flowzoo::flows::spec::SpecValue;
use flowzoo::flows::{Flow, FlowModel, Iaf, Maf, Sequential, Transform};
use flowzoo::nn::made::{HiddenDegrees, Made, MadeOptions, Order};
use flowzoo::nn::Init;
use flowzoo::tensor::Tensor;
use flowzoo::train::eval::mean_nll;
use flowzoo::train::fit::{fit, FitConfig};
use flowzoo::train::reverse_kl::{
    distill, fit_reverse_kl, fit_to_energy, reverse_kl_estimate, ReverseKlConfig, Teacher,
};
use flowzoo::train::sample::DensityGrid;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::path::PathBuf;
use std::process::Command;

fn maf(dim: usize, layers: usize, hidden: usize, seed: u64) -> FlowModel<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    FlowModel::new(
        dim,
        Sequential::new(maf_layers(dim, layers, &[hidden, hidden], &mut rng)),
    )
}

fn iaf(
    dim: usize,
    layers: usize,
    hidden: usize,
    transform: Transform,
    seed: u64,
) -> FlowModel<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    FlowModel::new(
        dim,
        Sequential::new(iaf_layers(
            dim,
            layers,
            &[hidden, hidden],
            transform,
            &mut rng,
        )),
    )
}

fn trained_moons_maf() -> FlowModel<f32> {
    let toy = Toy2d::moons();
    let mut model = maf(2, 4, 64, 0);
    let config = FitConfig {
        steps: 1500,
        ..FitConfig::default()
    };
    fit(
        &mut model,
        &mut flowzoo::nn::Adam::new(1e-3),
        &config,
        |_, rng| Tensor::from_f64_slice(&toy.sample(256, rng), &[256, 2]),
        None,
        |_, _| {},
    )
    .unwrap();
    model
}

fn moons_test_set() -> Tensor<f32> {
    let mut rng = StdRng::seed_from_u64(10_000);
    Tensor::from_f64_slice(&Toy2d::moons().sample(5000, &mut rng), &[5000, 2])
}

// Maximum likelihood on two moons: the standard normal scores
// ½·E‖x‖² + log 2π ≈ 2.25 nats on this data; a small MAF (4 MADEs 2-64-64-4,
// 1500 steps) gets well under 1 nat (RealNVP 8x256 reaches 0.37 after 5000).
// The model's density, evaluated by the one-pass inverse, integrates to one
// over the data's box padded by 2 (DESIGN.md proof 6).
#[test]
fn maf_learns_two_moons_and_its_density_integrates_to_one() {
    let model = trained_moons_maf();
    let nll = mean_nll(&model, &moons_test_set());
    assert!(nll < 0.8, "test NLL {nll} nats");
    let grid = DensityGrid::new(&model, [-3.0, 4.0], [-2.5, 3.0], 500);
    let mass = grid.mass();
    assert!((mass - 1.0).abs() < 1e-2, "mass {mass}");
}

// Reverse KL to the ring: KL(q ‖ p) = E[log q + U] + log Z ≥ 0, and a small
// IAF brings it below 0.15 nats in 1500 steps (the initial prior N(0, I) is
// at about 2.9 nats).
#[test]
fn iaf_fits_the_ring_by_reverse_kl() {
    let mut model = iaf(2, 4, 64, Transform::Affine, 1);
    let log_z = Energy::Ring.log_normalizer(800);
    let before = reverse_kl_estimate(&model, &Energy::Ring, 20_000, 5) + log_z;
    let config = ReverseKlConfig {
        steps: 1500,
        ..ReverseKlConfig::default()
    };
    let report = fit_to_energy(&mut model, Energy::Ring, &config, |_, _| {}).unwrap();
    let after = reverse_kl_estimate(&model, &Energy::Ring, 20_000, 5) + log_z;
    assert!(before > 1.0, "KL before training {before}");
    assert!(
        (0.0..0.15).contains(&after),
        "KL after training {after} nats"
    );
    assert_eq!(report.steps, 1500);
    // The density of the IAF, by its D-step inverse, integrates to one.
    let grid = DensityGrid::new(&model, [-6.0, 6.0], [-6.0, 6.0], 500);
    assert!((grid.mass() - 1.0).abs() < 1e-2, "mass {}", grid.mass());
}

// Gated layers learn too, within their limits. A gated layer never expands
// volume (σ < 1, so its log-det is negative) and the ring must be stretched
// out of the N(0, I) prior; as in the IAF paper, whose base is a learned
// Gaussian, the stack starts with a layer that can expand (affine), then
// three gated ones. It learns far more slowly than an affine stack: the test
// asks that KL(q ‖ p) fall by more than half.
#[test]
fn gated_iaf_learns_the_ring_by_reverse_kl() {
    let mut rng = StdRng::seed_from_u64(2);
    let mut layers = iaf_layers(2, 4, &[64, 64], Transform::Gated, &mut rng);
    layers[0] = Box::new(Iaf::new(
        2,
        &[64, 64],
        Order::Natural,
        Transform::Affine,
        &mut rng,
    ));
    let mut model = FlowModel::<f32>::new(2, Sequential::new(layers));
    let log_z = Energy::Ring.log_normalizer(800);
    let before = reverse_kl_estimate(&model, &Energy::Ring, 20_000, 6) + log_z;
    let config = ReverseKlConfig {
        steps: 1500,
        ..ReverseKlConfig::default()
    };
    fit_to_energy(&mut model, Energy::Ring, &config, |_, _| {}).unwrap();
    let after = reverse_kl_estimate(&model, &Energy::Ring, 20_000, 6) + log_z;
    assert!(
        after >= 0.0 && after < 0.5 * before,
        "KL before {before}, after {after} nats"
    );
}

// Distillation: the student IAF samples, the teacher MAF scores.
// KL(student ‖ teacher) starts above 100 nats (the prior is far wider than
// the thin moons) and falls to about 1 nat in 2000 steps of this small
// student (1.20 measured; the run is deterministic for a given thread count).
// Reverse KL is mode-seeking: the student tends to drop part of a moon, and
// rare far-out samples weigh heavily in the estimate.
#[test]
fn distilled_iaf_approaches_its_maf_teacher() {
    let teacher = trained_moons_maf();
    let mut student = iaf(2, 4, 64, Transform::Affine, 3);
    let before = reverse_kl_estimate(&student, &Teacher(&teacher), 20_000, 7);
    let config = ReverseKlConfig {
        steps: 2000,
        ..ReverseKlConfig::default()
    };
    distill(&mut student, &teacher, &config, |_, _| {}).unwrap();
    let kl = reverse_kl_estimate(&student, &Teacher(&teacher), 20_000, 7);
    assert!(
        before > 100.0,
        "KL(student ‖ teacher) before training {before}"
    );
    assert!((0.0..2.0).contains(&kl), "KL(student ‖ teacher) {kl}");
}

// The warm start: maximum likelihood on the teacher's samples first puts the
// student on both moons, and the reverse-KL steps keep it there. Each
// student sample is given to the moon whose circle it is nearer (the upper
// arc lies on the unit circle about (0, 0), the lower on the one about
// (1, ½)): each moon must get 30-70 % of them, where a collapsed student
// puts ~100 % on one. KL(student ‖ teacher) must fall below 0.5 nats; a
// student on one moon cannot go below log 2 = 0.69 (measured: 0.25).
#[test]
fn warm_started_distillation_covers_both_moons() {
    let teacher = trained_moons_maf();
    let mut student = iaf(2, 4, 64, Transform::Affine, 3);
    let config = ReverseKlConfig {
        steps: 1000,
        forward_kl_steps: 1000,
        ..ReverseKlConfig::default()
    };
    let report = distill(&mut student, &teacher, &config, |_, _| {}).unwrap();
    assert!(report.forward_kl.is_some_and(|(nll, _)| nll.is_finite()));
    let kl = reverse_kl_estimate(&student, &Teacher(&teacher), 20_000, 7);
    assert!((0.0..0.5).contains(&kl), "KL(student ‖ teacher) {kl}");
    let samples = student
        .sample(10_000, 1.0, &mut StdRng::seed_from_u64(8))
        .to_f64_vec();
    let upper = samples
        .chunks(2)
        .filter(|p| {
            let to_upper = (p[0].hypot(p[1]) - 1.0).abs();
            let to_lower = ((p[0] - 1.0).hypot(p[1] - 0.5) - 1.0).abs();
            to_upper < to_lower
        })
        .count() as f64
        / 10_000.0;
    assert!(
        (0.3..0.7).contains(&upper),
        "{upper} of the samples on the upper moon"
    );
}

// Annealing runs (β rises from 0.01 to 1) and leaves a working sampler.
#[test]
fn annealed_reverse_kl_fits_the_ring() {
    let mut model = iaf(2, 4, 64, Transform::Affine, 1);
    let config = ReverseKlConfig {
        steps: 1500,
        anneal_steps: 500,
        ..ReverseKlConfig::default()
    };
    let report = fit_to_energy(&mut model, Energy::Ring, &config, |_, _| {}).unwrap();
    let kl =
        reverse_kl_estimate(&model, &Energy::Ring, 20_000, 5) + Energy::Ring.log_normalizer(800);
    assert!((0.0..0.3).contains(&kl), "KL after training {kl} nats");
    // Early losses are those of the flattened target, below −log Z.
    assert!(report.loss_curve[0].1 < -Energy::Ring.log_normalizer(800));
}

#[test]
fn reverse_kl_rejects_bad_arguments() {
    let mut model = iaf(2, 1, 4, Transform::Affine, 0);
    for config in [
        ReverseKlConfig {
            steps: 0,
            ..ReverseKlConfig::default()
        },
        ReverseKlConfig {
            batch: 0,
            ..ReverseKlConfig::default()
        },
        ReverseKlConfig {
            lr: -1.0,
            ..ReverseKlConfig::default()
        },
    ] {
        let err = fit_reverse_kl(&mut model, &Energy::Ring, &config, |_, _| {}).unwrap_err();
        assert!(matches!(err, TrainError::BadArgument { .. }), "{err}");
        // With a warm start, the settings are refused before it runs: the
        // student is left untouched.
        let mut student = iaf(2, 1, 4, Transform::Affine, 1);
        let before: Vec<Vec<f32>> = student.params().iter().map(|p| p.value.to_vec()).collect();
        let warm = ReverseKlConfig {
            forward_kl_steps: 20,
            ..config.clone()
        };
        let err = distill(&mut student, &model, &warm, |_, _| {}).unwrap_err();
        assert!(matches!(err, TrainError::BadArgument { .. }), "{err}");
        let after: Vec<Vec<f32>> = student.params().iter().map(|p| p.value.to_vec()).collect();
        assert_eq!(before, after, "the warm start ran on bad settings");
    }
    let mut three = iaf(3, 1, 4, Transform::Affine, 0);
    let err = fit_to_energy(
        &mut three,
        Energy::Ring,
        &ReverseKlConfig::default(),
        |_, _| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("3-D"), "{err}");
    let err = distill(&mut three, &model, &ReverseKlConfig::default(), |_, _| {}).unwrap_err();
    assert!(matches!(err, TrainError::BadArgument { .. }), "{err}");
}

// A sampler whose parameters blow up is reported as diverged, naming a layer.
#[test]
fn reverse_kl_reports_divergence() {
    let mut model = iaf(2, 2, 4, Transform::Gated, 0);
    let mut rng = StdRng::seed_from_u64(0);
    for p in model.params_mut() {
        p.value = Tensor::randn(p.value.shape(), &mut rng).mul_scalar(1e30);
    }
    let config = ReverseKlConfig {
        steps: 3,
        ..ReverseKlConfig::default()
    };
    let err = fit_to_energy(&mut model, Energy::Ring, &config, |_, _| {}).unwrap_err();
    match err {
        TrainError::Diverged { step, what } => {
            assert_eq!(step, 1);
            assert!(what.contains("Iaf") || what.contains("target"), "{what}");
        }
        other => panic!("expected Diverged, got {other}"),
    }
}

// f64 models with random parameters: the IAF's density integrates to one too
// (its log_prob runs the incremental D-step inverse).
#[test]
fn random_iaf_density_integrates_to_one() {
    let mut rng = StdRng::seed_from_u64(4);
    let mut model = FlowModel::<f64>::new(
        2,
        Sequential::new(iaf_layers(2, 3, &[16, 16], Transform::Affine, &mut rng)),
    );
    // At scale 0.3 some of these maps push 0.25 % of the mass past |x| = 10.
    randomize_params(&mut model.flow, 0.2, &mut rng);
    let grid = DensityGrid::new(&model, [-10.0, 10.0], [-10.0, 10.0], 600);
    assert!((grid.mass() - 1.0).abs() < 1e-3, "mass {}", grid.mass());
}

// A hand-made spec that does not describe a MADE is refused with the field
// named, before anything is allocated.
#[test]
fn bad_specs_are_refused_naming_the_field() {
    let mut rng = StdRng::seed_from_u64(0);
    let maf = Maf::<f32>::new(3, &[4], Order::Natural, &mut rng);
    let good = maf.to_spec().unwrap();
    assert!(build_layer::<f32>(&good).is_ok());
    let with = |field: &str, value: SpecValue| {
        let mut spec = good.clone();
        for (name, v) in &mut spec.fields {
            if name == field {
                *v = value.clone();
            }
        }
        spec
    };
    for (field, value) in [
        ("input_degrees", SpecValue::Ints(vec![1, 1, 3])),
        ("hidden_degrees", SpecValue::Ints(vec![1, 2, 3, 1])),
        ("hidden_degrees", SpecValue::Ints(vec![1, 2])),
        ("transform", SpecValue::Str("spline".into())),
        ("dim", SpecValue::Int(0)),
        ("hidden", SpecValue::Ints(vec![1 << 23, 1 << 23])),
    ] {
        let err = build_layer::<f32>(&with(field, value))
            .err()
            .expect("refused");
        assert!(err.to_string().contains(field), "{field}: {err}");
    }
}

/// Which inputs reach which outputs of `made`: the boolean product of its
/// masks, `[dim][params_per_dim · dim]` (a path through the network exists
/// exactly where the product is non-zero).
fn connectivity(made: &Made<f64>) -> Vec<Vec<bool>> {
    let mut reach: Vec<Vec<bool>> = (0..made.dim)
        .map(|i| (0..made.dim).map(|k| i == k).collect())
        .collect();
    for l in 0..made.layers.len() {
        let mask = made.mask(l);
        let (rows, columns) = (mask.shape()[0], mask.shape()[1]);
        reach = reach
            .iter()
            .map(|from| {
                (0..columns)
                    .map(|c| (0..rows).any(|r| from[r] && mask.get(&[r, c]) != 0.0))
                    .collect()
            })
            .collect();
    }
    reach
}

/// Asserts that input i reaches output j of feature k exactly when
/// m(i) < m(k): every connection the order allows, and no other.
fn assert_fully_connected(made: &Made<f64>, what: &str) {
    let degrees = &made.input_degrees;
    let reach = connectivity(made);
    for (i, row) in reach.iter().enumerate() {
        for (column, &reaches) in row.iter().enumerate() {
            let k = column % made.dim;
            assert_eq!(
                reaches,
                degrees[i] < degrees[k],
                "{what}: input {i} (degree {}) {} output {column} (feature {k}, degree {}); \
                 hidden degrees {:?}",
                degrees[i],
                if reaches { "reaches" } else { "does not reach" },
                degrees[k],
                made.hidden_degrees
            );
        }
    }
}

#[test]
fn random_hidden_degrees_connect_every_input_for_every_seed() {
    // D = 3 with one hidden layer of 2 drew degrees [1, 1] at seed 2, so x₁
    // (degree 2) reached nothing; D = 5 with [4, 4] lost an input at about
    // half the seeds. With widths ≥ D − 1 every degree 1..D−1 must appear in
    // every hidden layer: then each input reaches each later output.
    let shapes: [(usize, &[usize], bool); 6] = [
        (3, &[2], false),
        (5, &[4, 4], false),
        (5, &[4, 9, 4], false),
        (6, &[7, 7, 7], true),
        (2, &[1, 3], false),
        (1, &[2], false),
    ];
    for (dim, hidden, residual) in shapes {
        for seed in 0..400 {
            for order in [Order::Natural, Order::Reversed, Order::Random { seed }] {
                let options = MadeOptions {
                    hidden_degrees: HiddenDegrees::Random { seed },
                    residual,
                    output_init: Init::Glorot,
                    hidden_init: Init::Glorot,
                };
                let made = Made::<f64>::with_options(
                    dim,
                    hidden,
                    2,
                    &order.degrees(dim),
                    options,
                    &mut StdRng::seed_from_u64(seed),
                );
                let what = format!("D = {dim}, hidden {hidden:?}, {order:?}, seed {seed}");
                assert_fully_connected(&made, &what);
            }
        }
    }
}

#[test]
fn cyclic_hidden_degrees_connect_every_input_when_wide_enough() {
    for dim in 1..=7usize {
        for width in dim.saturating_sub(1).max(1)..dim + 3 {
            let made = Made::<f64>::new(
                dim,
                &[width, width + 1],
                2,
                Order::Reversed,
                &mut StdRng::seed_from_u64(0),
            );
            assert_fully_connected(&made, &format!("cyclic, D = {dim}, width {width}"));
        }
    }
}

#[test]
#[should_panic(
    expected = "Made: random hidden degrees need every hidden layer at least D − 1 = 4 wide"
)]
fn random_hidden_degrees_refuse_a_layer_narrower_than_d_minus_one() {
    let options = MadeOptions {
        hidden_degrees: HiddenDegrees::Random { seed: 0 },
        ..MadeOptions::default()
    };
    let degrees = Order::Natural.degrees(5);
    Made::<f64>::with_options(
        5,
        &[8, 3],
        2,
        &degrees,
        options,
        &mut StdRng::seed_from_u64(0),
    );
}

fn out_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("flowzoo-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn flowzoo() -> Command {
    Command::new(env!("CARGO_BIN_EXE_flowzoo"))
}

#[test]
fn cli_trains_an_iaf_to_an_energy_and_draws_it() {
    let out = out_dir("iaf-ring");
    let status = flowzoo()
        .args([
            "train", "--flow", "iaf", "--target", "ring", "--steps", "20", "--layers", "2",
            "--hidden", "8", "--quiet", "--out",
        ])
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    for file in ["metrics.json", "samples.png", "target.png", "density.png"] {
        let len = std::fs::metadata(out.join(file)).unwrap().len();
        assert!(len > 100, "{file} is {len} bytes");
    }
    let metrics = std::fs::read_to_string(out.join("metrics.json")).unwrap();
    for key in [
        "kl_nats",
        "log_normalizer",
        "ms_per_step",
        "\"target\": \"ring\"",
    ] {
        assert!(metrics.contains(key), "metrics.json lacks {key}: {metrics}");
    }
}

#[test]
fn cli_trains_maf_and_distils_an_iaf() {
    let out = out_dir("maf-moons");
    let status = flowzoo()
        .args([
            "train", "--flow", "maf", "--data", "moons", "--steps", "20", "--layers", "2",
            "--hidden", "8", "--quiet", "--out",
        ])
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let metrics = std::fs::read_to_string(out.join("metrics.json")).unwrap();
    assert!(metrics.contains("\"flow\": \"maf\""), "{metrics}");
    let out = out_dir("iaf-distilled");
    let status = flowzoo()
        .args([
            "train", "--flow", "iaf", "--data", "moons", "--steps", "20", "--layers", "2",
            "--hidden", "8", "--quiet", "--out",
        ])
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    for file in [
        "metrics.json",
        "samples.png",
        "teacher_samples.png",
        "density.png",
    ] {
        assert!(out.join(file).exists(), "{file} missing");
    }
    let metrics = std::fs::read_to_string(out.join("metrics.json")).unwrap();
    assert!(metrics.contains("kl_student_teacher_nats"), "{metrics}");
}

#[test]
fn cli_rejects_unknown_flows_and_targets() {
    let output = flowzoo()
        .args(["train", "--flow", "nope", "--steps", "1"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("maf"));
    let output = flowzoo()
        .args([
            "train", "--flow", "iaf", "--target", "donut", "--steps", "1",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("ring"));
}
