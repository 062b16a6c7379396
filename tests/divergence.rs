//! Issue 14, items 6 and 7: a run whose loss explodes is stopped for every
//! flow, naming the step and the layer, whether the loss turns non-finite or
//! stays finite but absurd; and a failed run leaves no empty output folder,
//! or, when it saved a checkpoint first, a metrics.json that says it failed.

mod common;

use flowzoo::error::{Error, TrainError};
use flowzoo::flows::zoo::FlowName;
use flowzoo::train::run::{run, Dataset, RunConfig};
use std::process::Command;

fn moons(flow: FlowName, lr: f64, steps: usize) -> RunConfig {
    RunConfig {
        lr,
        steps,
        eval_every: 10,
        ..RunConfig::new(Dataset::Toy(flowzoo::data::Toy2d::moons()), flow).unwrap()
    }
}

// Before the rule of `EXPLODED_NATS_PER_DIM`, RealNVP on the moons at a
// learning rate of 10 trained to the end with a test NLL near 1e31 nats.
#[test]
fn a_finite_but_exploding_loss_stops_the_run() {
    let err = run(&moons(FlowName::RealNvp, 10.0, 300), |_, _| {})
        .err()
        .expect("the run must stop");
    match &err {
        Error::Train(TrainError::Exploded {
            step,
            loss,
            first_loss,
            dim,
            largest,
            ..
        }) => {
            assert!(*step > 1 && *step <= 300, "{err}");
            assert_eq!(*dim, 2);
            assert!(loss - first_loss > 200.0, "{err}");
            assert!(
                largest.contains("layer") || largest.contains("prior"),
                "{err}"
            );
        }
        Error::Train(TrainError::Diverged { .. }) => {}
        other => panic!("expected a divergence, got {other}"),
    }
    let message = err.to_string();
    assert!(message.contains("step "), "{message}");
}

// Every maximum-likelihood flow of the zoo stops with a divergence error at
// an absurd learning rate, one way or the other.
#[test]
fn every_flow_stops_when_its_loss_explodes() {
    for flow in [
        FlowName::RealNvp,
        FlowName::Maf,
        FlowName::Nice,
        FlowName::Glow,
    ] {
        for lr in [1e6, 10.0] {
            let config = RunConfig {
                layers: 2,
                hidden: 32,
                ..moons(flow, lr, 300)
            };
            match run(&config, |_, _| {}) {
                Err(Error::Train(
                    TrainError::Exploded { .. }
                    | TrainError::Diverged { .. }
                    // Glow's LU 1x1 convolution: log s driven to −∞, s = 0.
                    | TrainError::BadLayer { .. },
                )) => {}
                Err(other) => panic!("{} at lr {lr}: unexpected error {other}", flow.name()),
                Ok(result) => assert!(
                    result.test_nll_nats.is_finite() && result.test_nll_nats < 200.0,
                    "{} at lr {lr}: finished with test NLL {}",
                    flow.name(),
                    result.test_nll_nats
                ),
            }
        }
    }
}

fn flowzoo() -> Command {
    Command::new(env!("CARGO_BIN_EXE_flowzoo"))
}

// A run that fails before any checkpoint leaves no output folder behind.
#[test]
fn a_run_that_fails_at_once_leaves_no_folder() {
    let root = common::temp_dir("diverge-empty");
    let out = root.join("run");
    let status = flowzoo()
        .args(["train", "--quiet", "--lr", "1e6", "--steps", "50", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(!status.status.success());
    let stderr = String::from_utf8_lossy(&status.stderr);
    assert!(stderr.contains("diverged"), "{stderr}");
    assert!(!out.exists(), "{} was left behind", out.display());
    // An IAF run that fails (a bad learning rate) leaves none either.
    let out = root.join("iaf");
    let status = flowzoo()
        .args([
            "train", "--quiet", "--flow", "iaf", "--target", "ring", "--lr", "-1", "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(!status.status.success());
    assert!(!out.exists(), "{} was left behind", out.display());
}

// A run that saved a checkpoint before it diverged keeps it, beside a
// metrics.json that says the run failed, why, and which step the model is.
#[test]
fn a_run_that_fails_later_keeps_its_checkpoint_and_says_why() {
    let out = common::temp_dir("diverge-late").join("run");
    let status = flowzoo()
        .args([
            "train",
            "--quiet",
            "--lr",
            "10",
            "--steps",
            "300",
            "--eval-every",
            "1",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(!status.status.success());
    let metrics = std::fs::read_to_string(out.join("metrics.json")).expect("metrics.json");
    assert!(metrics.contains("\"status\": \"failed\""), "{metrics}");
    assert!(metrics.contains("diverged"), "{metrics}");
    let step: u64 = metrics
        .split("\"model_step\": ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .expect("the checkpoint's step");
    assert!(step >= 1);
    let saved = flowzoo::train::run::load_run(out.join("model.flowzoo")).unwrap();
    assert_eq!(saved.record().unwrap().step, step);
}

// Reverse KL applies the same rule (issue 14, item 6, for the IAF's loop and
// any flow fitted to a target): at an absurd learning rate a RealNVP fitted
// to a Gaussian target stops with a divergence error, finite or not.
#[test]
fn reverse_kl_stops_when_its_loss_explodes() {
    use flowzoo::autodiff::Var;
    use flowzoo::flows::FlowModel;
    use flowzoo::train::reverse_kl::{fit_reverse_kl, LogDensityFn, ReverseKlConfig};
    use rand::SeedableRng;
    let target = LogDensityFn::new(|x: &Var<'_, f64>| x.square().mul_scalar(-0.5).sum_axes(&[1]));
    for lr in [10.0, 1e6] {
        let mut rng = rand::rngs::StdRng::seed_from_u64(0);
        let mut model = FlowModel::<f64>::realnvp(2, 2, 32, &mut rng);
        let config = ReverseKlConfig {
            steps: 300,
            lr,
            ..ReverseKlConfig::default()
        };
        match fit_reverse_kl(&mut model, &target, &config, |_, _| {}) {
            Err(TrainError::Exploded { step, largest, .. }) => {
                assert!(step > 1, "lr {lr}: {largest}");
                println!("lr {lr}: exploded at step {step}: {largest}");
            }
            Err(TrainError::Diverged { step, what }) => {
                println!("lr {lr}: diverged at step {step}: {what}");
            }
            Err(other) => panic!("lr {lr}: unexpected error {other}"),
            Ok(report) => panic!("lr {lr}: finished with loss {}", report.final_loss),
        }
    }
}
