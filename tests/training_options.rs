//! Issue 17, item 1: each training option of `FitConfig` is applied, seen
//! from outside the loop. Every test here fails if its option is ignored.

use flowzoo::flows::model::realnvp_layers;
use flowzoo::flows::{FlowModel, Sequential};
use flowzoo::nn::{Adam, LrSchedule};
use flowzoo::tensor::Tensor;
use flowzoo::train::fit::{fit_with, Check, FitConfig, FitReport, Stop, TrainOptions};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};

/// A small RealNVP on 2-D data (f64).
fn model() -> FlowModel<f64> {
    let mut rng = StdRng::seed_from_u64(7);
    FlowModel::new(2, Sequential::new(realnvp_layers(2, 2, 8, &mut rng)))
}

/// Batches of 64 points from a stretched, shifted Gaussian: far from the
/// prior, so the gradients are large at the start.
fn batch(_: usize, rng: &mut StdRng) -> Tensor<f64> {
    let normal = Normal::new(3.0, 4.0).unwrap();
    let v: Vec<f64> = (0..128).map(|_| normal.sample(rng)).collect();
    Tensor::from_vec(v, &[64, 2])
}

/// The parameters' values, flattened in order.
fn values(model: &FlowModel<f64>) -> Vec<f64> {
    model
        .params()
        .iter()
        .flat_map(|p| p.value.to_vec())
        .collect()
}

/// Runs `config` from a fresh model and `Adam::new(lr)`, with `validate`,
/// calling `look` at every check.
/// A validation score of the model.
type Validate<'a> = &'a mut (dyn FnMut(&FlowModel<f64>) -> f64 + Send);

fn run(
    config: &FitConfig,
    lr: f64,
    validate: Option<Validate>,
    look: impl FnMut(&Check, &FlowModel<f64>, &Adam<f64>) + Send,
) -> (FlowModel<f64>, FitReport) {
    let mut model = model();
    let mut adam = Adam::new(lr);
    let report = fit_with(
        &mut model,
        &mut adam,
        config,
        batch,
        validate,
        |_, _| {},
        look,
    )
    .expect("the run trains");
    (model, report)
}

fn config(steps: usize) -> FitConfig {
    FitConfig {
        steps,
        seed: 3,
        eval_every: 1,
        ..FitConfig::default()
    }
}

#[test]
fn the_schedule_sets_the_rate_of_each_update() {
    // Adam's first update moves each parameter by lr·g/(|g| + ε): by the
    // step's rate, for every entry with a gradient far above ε. With a
    // warm-up of 4 from 1e-2 the first rate is 2.5e-3, not 1e-2.
    let schedule = LrSchedule::WarmupCosine {
        base: 1e-2,
        warmup: 4,
        total: 20,
        min: 0.0,
    };
    let before = values(&model());
    let mut rates = Vec::new();
    let mut moved = Vec::new();
    let (_, report) = run(
        &FitConfig {
            options: TrainOptions {
                schedule: Some(schedule),
                ..TrainOptions::default()
            },
            ..config(20)
        },
        1e-2,
        None,
        |check, model, adam| {
            rates.push((check.step, check.lr));
            // The optimiser keeps the base rate, which a checkpoint saves.
            assert_eq!(adam.lr, 1e-2);
            if check.step == 1 {
                moved = values(model)
                    .iter()
                    .zip(&before)
                    .map(|(a, b)| (a - b).abs())
                    .collect();
            }
        },
    );
    let largest = moved.iter().cloned().fold(0.0, f64::max);
    assert!(
        (largest - 2.5e-3).abs() < 1e-9,
        "the first update moved a parameter by {largest}, not by the scheduled 2.5e-3"
    );
    for &(step, lr) in &rates {
        assert_eq!(lr, schedule.lr(step - 1), "step {step}");
    }
    assert_eq!(rates.len(), 20);
    assert_eq!(report.steps, 20);
    assert!(rates[19].1 < 1e-4 && rates[19].1 < rates[10].1 && rates[10].1 < rates[4].1);
}

#[test]
fn clipping_bounds_the_gradient_norm_the_optimiser_sees() {
    let max_norm = 0.5;
    let mut clipped_at = Vec::new();
    let mut before = Vec::new();
    run(
        &FitConfig {
            options: TrainOptions {
                clip_norm: Some(max_norm),
                ..TrainOptions::default()
            },
            ..config(10)
        },
        1e-3,
        None,
        |check, model, _| {
            // The gradients the update used are still on the parameters.
            let squares: f64 = model
                .params()
                .iter()
                .filter_map(|p| p.grad.as_ref())
                .map(|g| g.to_vec().iter().map(|x| x * x).sum::<f64>())
                .sum();
            clipped_at.push(squares.sqrt());
            before.push(check.grad_norm);
        },
    );
    // Far from the data, the raw gradients are well above the bound ...
    assert!(before.iter().all(|&n| n > 2.0 * max_norm), "{before:?}");
    // ... and the ones used are at it.
    for (n, raw) in clipped_at.iter().zip(&before) {
        assert!((n - max_norm).abs() < 1e-9, "{n} after clipping {raw}");
    }
}

#[test]
fn weight_decay_shrinks_every_parameter_by_lr_times_lambda() {
    // One step with and without decay from the same model and batch: the
    // Adam part is the same, so the difference is −lr·λ·θ₀ exactly (up to
    // rounding).
    let (lr, lambda) = (1e-2, 0.5);
    let theta0 = values(&model());
    let (plain, _) = run(&config(1), lr, None, |_, _, _| {});
    let (decayed, _) = run(
        &FitConfig {
            options: TrainOptions {
                weight_decay: lambda,
                ..TrainOptions::default()
            },
            ..config(1)
        },
        lr,
        None,
        |_, _, _| {},
    );
    let (plain, decayed) = (values(&plain), values(&decayed));
    let mut shrunk = 0;
    for ((p, d), t) in plain.iter().zip(&decayed).zip(&theta0) {
        let expected = -lr * lambda * t;
        assert!((d - p - expected).abs() < 1e-12, "{d} - {p} vs {expected}");
        if t.abs() > 1e-3 {
            shrunk += 1;
        }
    }
    assert!(shrunk > 10, "the test needs nonzero parameters");
}

#[test]
fn patience_stops_after_that_many_checks_without_improvement_and_keeps_the_best() {
    // A scripted validation score: best at the 3rd check (step 30), then
    // worse. Patience 3 stops at the 6th check, step 60, and the model ends
    // with step 30's parameters.
    let scores = [5.0, 4.0, 3.0, 3.5, 3.2, 3.1, 2.0, 1.0];
    let mut calls = 0;
    let mut validate = |_: &FlowModel<f64>| {
        calls += 1;
        scores[calls - 1]
    };
    let mut at_30 = Vec::new();
    let (model, report) = run(
        &FitConfig {
            eval_every: 10,
            options: TrainOptions {
                patience: Some(3),
                ..TrainOptions::default()
            },
            ..config(200)
        },
        1e-3,
        Some(&mut validate),
        |check, model, _| {
            if check.step == 30 {
                at_30 = values(model);
            }
        },
    );
    assert_eq!(report.stop, Stop::Patience { checks: 3 });
    assert_eq!(report.steps, 60);
    assert_eq!(report.best_step, 30);
    assert_eq!(report.best_validation, Some(3.0));
    assert_eq!(report.checks.len(), 6);
    assert!(report
        .checks
        .iter()
        .map(|c| c.keep)
        .eq([true, true, true, false, false, false]));
    assert_eq!(values(&model), at_30);
    assert!(report.stop.describe(report.best_step).contains("step 30"));
}

#[test]
fn without_patience_every_step_is_taken() {
    let scores = [5.0, 4.0, 3.0, 3.5, 3.6, 3.7, 3.8, 3.9, 4.0, 4.1];
    let mut calls = 0;
    let mut validate = |_: &FlowModel<f64>| {
        calls += 1;
        scores[calls - 1]
    };
    let (_, report) = run(
        &FitConfig {
            eval_every: 10,
            ..config(100)
        },
        1e-3,
        Some(&mut validate),
        |_, _, _| {},
    );
    assert_eq!(report.stop, Stop::Completed);
    assert_eq!((report.steps, report.best_step), (100, 30));
}

#[test]
fn options_out_of_range_are_refused_by_name() {
    let cases = [
        (
            FitConfig {
                options: TrainOptions {
                    clip_norm: Some(0.0),
                    ..TrainOptions::default()
                },
                ..config(5)
            },
            "clip_norm",
        ),
        (
            FitConfig {
                options: TrainOptions {
                    weight_decay: -1.0,
                    ..TrainOptions::default()
                },
                ..config(5)
            },
            "weight_decay",
        ),
        (
            FitConfig {
                options: TrainOptions {
                    patience: Some(2),
                    ..TrainOptions::default()
                },
                ..config(5)
            },
            "patience",
        ),
        (
            FitConfig {
                options: TrainOptions {
                    schedule: Some(LrSchedule::Constant(f64::NAN)),
                    ..TrainOptions::default()
                },
                ..config(5)
            },
            "schedule",
        ),
        (
            FitConfig {
                options: TrainOptions {
                    time_limit: Some(0.0),
                    ..TrainOptions::default()
                },
                ..config(5)
            },
            "time_limit",
        ),
        (
            FitConfig {
                options: TrainOptions {
                    time_limit: Some(f64::NAN),
                    ..TrainOptions::default()
                },
                ..config(5)
            },
            "time_limit",
        ),
    ];
    for (config, name) in cases {
        let mut model = model();
        let mut adam = Adam::new(1e-3);
        refused(&mut model, &mut adam, &config, name);
    }
    // lr·λ ≥ 1 would zero or flip every parameter each step.
    let decay = FitConfig {
        options: TrainOptions {
            weight_decay: 1000.0,
            ..TrainOptions::default()
        },
        ..config(5)
    };
    refused(&mut model(), &mut Adam::new(1e-3), &decay, "weight_decay");
    // A step schedule that grows the rate until it is infinite: refused at its last step.
    let growing = FitConfig {
        options: TrainOptions {
            schedule: Some(LrSchedule::Step {
                base: 1e-3,
                every: 1,
                gamma: 3.0,
            }),
            ..TrainOptions::default()
        },
        ..config(1000)
    };
    refused(&mut model(), &mut Adam::new(1e-3), &growing, "schedule");
}

/// `fit_with` refuses `config`, naming the option `name`.
fn refused(model: &mut FlowModel<f64>, adam: &mut Adam<f64>, config: &FitConfig, name: &str) {
    {
        let err = fit_with(
            model,
            adam,
            config,
            batch,
            None,
            |_, _| {},
            |_: &Check, _: &FlowModel<f64>, _: &Adam<f64>| {},
        )
        .expect_err(name);
        assert!(
            matches!(&err, flowzoo::error::TrainError::BadArgument { name: n, .. } if n == name),
            "{err:?}"
        );
    }
}

#[test]
fn reverse_kl_takes_the_same_options_and_patience_stops_it() {
    use flowzoo::autodiff::Var;
    use flowzoo::flows::Reverse;
    use flowzoo::train::reverse_kl::{fit_reverse_kl, LogDensityFn, ReverseKlConfig};
    // A model without parameters cannot improve its validation estimate:
    // with patience 2 and a check every 10 steps, the run stops at the
    // third check, step 30, keeping step 10's (identical) model.
    let normal = LogDensityFn::new(|x: &Var<'_, f64>| x.square().mul_scalar(-0.5).sum_axes(&[1]));
    let mut model = FlowModel::<f64>::new(2, Sequential::new(vec![Box::new(Reverse::new(2))]));
    let config = ReverseKlConfig {
        steps: 1000,
        batch: 32,
        log_every: 10,
        options: TrainOptions {
            patience: Some(2),
            clip_norm: Some(1.0),
            ..TrainOptions::default()
        },
        ..ReverseKlConfig::default()
    };
    let report = fit_reverse_kl(&mut model, &normal, &config, |_, _| {}).expect("runs");
    assert_eq!(report.stop, Stop::Patience { checks: 2 });
    assert_eq!(report.steps, 30);
    assert_eq!(report.best.0, 10);
    // E[log q − log p̃] = −log Z = −log 2π for the exact model.
    let gap = report.best.1.expect("validated");
    assert!(
        (gap + (2.0 * std::f64::consts::PI).ln()).abs() < 1e-12,
        "{gap}"
    );
    // Out-of-range options are refused as in `fit`.
    let bad = ReverseKlConfig {
        options: TrainOptions {
            weight_decay: f64::NAN,
            ..TrainOptions::default()
        },
        ..config
    };
    let err = fit_reverse_kl(&mut model, &normal, &bad, |_, _| {}).expect_err("NaN decay");
    assert!(err.to_string().contains("weight_decay"), "{err}");
}

#[test]
fn a_time_limit_ends_the_run_with_a_check_at_the_first_step_begun_after_it() {
    // Each batch takes at least 10 ms to draw, so by the fifth step at the
    // latest the loop has run 50 ms: a 50 ms limit ends the run there, of
    // 1000 steps asked, with a last check (and validation) at that step.
    let slow_batch = |step: usize, rng: &mut StdRng| {
        std::thread::sleep(std::time::Duration::from_millis(10));
        batch(step, rng)
    };
    let mut validations = 0;
    let mut validate = |_: &FlowModel<f64>| {
        validations += 1;
        1.0
    };
    let mut model = model();
    let report = fit_with(
        &mut model,
        &mut Adam::new(1e-3),
        &FitConfig {
            eval_every: 100,
            options: TrainOptions {
                time_limit: Some(0.05),
                ..TrainOptions::default()
            },
            ..config(1000)
        },
        slow_batch,
        Some(&mut validate),
        |_, _| {},
        |_: &Check, _: &FlowModel<f64>, _: &Adam<f64>| {},
    )
    .expect("the run trains");
    assert_eq!(report.stop, Stop::TimeLimit { seconds: 0.05 });
    assert!((1..=5).contains(&report.steps), "{} steps", report.steps);
    assert_eq!(report.checks.last().map(|c| c.step), Some(report.steps));
    assert!(report.checks.last().unwrap().seconds >= 0.05);
    assert_eq!(validations, 1);
    assert!(report
        .stop
        .describe(report.best_step)
        .contains("time limit"));

    // The reverse-KL loop stops the same way: each target evaluation sleeps.
    use flowzoo::autodiff::Var;
    use flowzoo::flows::Reverse;
    use flowzoo::train::reverse_kl::{fit_reverse_kl, LogDensityFn, ReverseKlConfig};
    let slow_normal = LogDensityFn::new(|x: &Var<'_, f64>| {
        std::thread::sleep(std::time::Duration::from_millis(10));
        x.square().mul_scalar(-0.5).sum_axes(&[1])
    });
    let mut model = FlowModel::<f64>::new(2, Sequential::new(vec![Box::new(Reverse::new(2))]));
    let config = ReverseKlConfig {
        steps: 1000,
        batch: 8,
        log_every: 100,
        options: TrainOptions {
            time_limit: Some(0.05),
            ..TrainOptions::default()
        },
        ..ReverseKlConfig::default()
    };
    let report = fit_reverse_kl(&mut model, &slow_normal, &config, |_, _| {}).expect("runs");
    assert_eq!(report.stop, Stop::TimeLimit { seconds: 0.05 });
    assert!((1..=6).contains(&report.steps), "{} steps", report.steps);
    assert_eq!(report.loss_curve.last().map(|c| c.0), Some(report.steps));
}
