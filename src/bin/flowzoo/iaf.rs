//! `flowzoo train --flow iaf`: the library's IAF experiments
//! (`flowzoo::train::iaf`), an IAF fitted by reverse KL to a 2-D energy
//! (`--target ring|wave|bump|step`) or distilled from an MAF teacher
//! trained on a 2-D data set (`--data moons` and no target). This file
//! parses, calls, prints and draws.

use crate::checkpoints::MODEL_FILE;
use crate::{pictures, progress_bar, TrainArgs};
use flowzoo::data::energy::Energy;
use flowzoo::flows::FlowModel;
use flowzoo::train::iaf::{distill_iaf, energy_grid, fit_iaf_to_energy, IafConfig};
use flowzoo::train::record::RunRecord;
use flowzoo::train::reverse_kl::ReverseKlReport;
use flowzoo::train::run::Dataset;
use flowzoo::train::sample::DensityGrid;
use flowzoo::train::seeds::Stream;
use std::path::{Path, PathBuf};

/// Samples drawn for the pictures.
const PICTURE_SAMPLES: usize = 4000;

/// Trains and writes metrics.json, the pictures and model.flowzoo.
pub fn train(args: &TrainArgs, data: &str) -> Result<(), String> {
    let defaults = IafConfig::default();
    let config = IafConfig {
        layers: args.layers.unwrap_or(defaults.layers),
        hidden: args.hidden.unwrap_or(defaults.hidden),
        steps: args.steps,
        batch: args.batch.unwrap_or(defaults.batch),
        lr: args.lr.unwrap_or(defaults.lr),
        seed: args.seed.unwrap_or(defaults.seed),
        eval_every: args.eval_every,
    };
    match &args.target {
        Some(name) => {
            let energy: Energy = name
                .parse()
                .map_err(|e: flowzoo::error::DataError| format!("--target: {e}"))?;
            to_energy(args, &config, energy)
        }
        None => match data.parse().map_err(|e: flowzoo::Error| e.to_string())? {
            Dataset::Toy(toy) => distilled(args, &config, toy),
            Dataset::Digits | Dataset::Images(_) | Dataset::Table(_) => Err(
                "--flow iaf: give --target ring|wave|bump|step (reverse KL to an energy), \
                 or a 2-D toy --data set to distil an MAF teacher into an IAF"
                    .into(),
            ),
        },
    }
}

/// The output folder, created once training has succeeded (a failed run
/// leaves none behind).
fn create_out(args: &TrainArgs, default: &str) -> Result<PathBuf, String> {
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| Path::new("runs").join(default));
    std::fs::create_dir_all(&out)
        .map_err(|e| format!("{}: cannot create the output folder: {e}", out.display()))?;
    Ok(out)
}

fn to_energy(args: &TrainArgs, config: &IafConfig, energy: Energy) -> Result<(), String> {
    let bar = progress_bar(args.quiet, config.steps, "reverse KL");
    let fit = fit_iaf_to_energy(config, energy, |step, loss| {
        if step % 10 == 0 {
            bar.set_position(step as u64);
            bar.set_message(format!("E[log q + U] {loss:.4} nats"));
        }
    })
    .map_err(|e| e.to_string())?;
    bar.finish_and_clear();
    let out = create_out(args, &format!("iaf-{}", energy.name()))?;
    let model = &fit.model;
    let metrics = serde_json::json!({
        "flow": "iaf",
        "target": energy.name(),
        "layers": config.layers,
        "hidden": config.hidden,
        "batch": config.batch,
        "lr": config.lr,
        "seed": config.seed,
        "steps": fit.report.steps,
        "reverse_kl_loss_nats": fit.reverse_kl_loss,
        "log_normalizer": fit.log_normalizer,
        "kl_nats": fit.kl,
        "final_train_loss_nats": fit.report.final_loss,
        "train_seconds": fit.report.train_seconds,
        "ms_per_step": fit.report.ms_per_step,
        "n_params": model.n_params(),
        "threads": flowzoo::tensor::parallel::current_num_threads(),
    });
    write_metrics(&out, &metrics)?;
    save(&out, model, &config.record("", Some(energy.name())))?;
    let mut rng = Stream::IafPictures.rng(config.seed);
    let samples = model.sample(PICTURE_SAMPLES, 1.0, &mut rng).to_f64_vec();
    // exp(−U) divided by its integral over the box (midpoint rule): a
    // density, like the model's, so the two colour scales compare.
    let mut target = energy_grid(energy, 256);
    let log_mass = target.mass().ln();
    target.log_density.iter_mut().for_each(|l| *l -= log_mass);
    let name = energy.name();
    pictures::heat_map(
        &out.join("samples.png"),
        &target,
        &format!(
            "IAF samples (white) over the target {name}, KL(q ‖ p) {:.3} nats",
            fit.kl
        ),
        Some(&samples),
    )?;
    pictures::heat_map(
        &out.join("target.png"),
        &target,
        &format!("target {name}: exp(−U) / Z, Z by quadrature on the box"),
        None,
    )?;
    let (x_range, y_range) = energy.bounds();
    let grid = DensityGrid::new(model, x_range, y_range, 256);
    pictures::heat_map(
        &out.join("density.png"),
        &grid,
        &format!("IAF density fitted to {name}, KL(q ‖ p) {:.3} nats", fit.kl),
        None,
    )?;
    outln!(
        "{} iaf (reverse KL): KL(q ‖ p) {:.4} nats (E[log q + U] {:.4}, log Z {:.4}), {}",
        energy.name(),
        fit.kl,
        fit.reverse_kl_loss,
        fit.log_normalizer,
        timing(&fit.report, model.n_params())
    );
    outln!("wrote {}", out.display());
    Ok(())
}

fn distilled(
    args: &TrainArgs,
    config: &IafConfig,
    toy: flowzoo::data::toy2d::Toy2d,
) -> Result<(), String> {
    // One bar for both phases: the teacher's steps, then the student's.
    let bar = progress_bar(args.quiet, config.steps, "MAF teacher, then IAF student");
    let result = distill_iaf(
        config,
        toy,
        |step, loss| {
            if step % 10 == 0 {
                bar.set_position(step as u64);
                bar.set_message(format!("teacher NLL {loss:.4} nats"));
            }
        },
        |step, loss| {
            if step % 10 == 0 {
                bar.set_position(step as u64);
                bar.set_message(format!("student KL {loss:.4} nats"));
            }
        },
    )
    .map_err(|e| e.to_string())?;
    bar.finish_and_clear();
    let out = create_out(args, &format!("iaf-distilled-{}", toy.name()))?;
    let (teacher, student, report) = (&result.teacher, &result.student, &result.report);
    let metrics = serde_json::json!({
        "flow": "iaf",
        "data": toy.name(),
        "teacher": "maf",
        "layers": config.layers,
        "hidden": config.hidden,
        "batch": config.batch,
        "lr": config.lr,
        "seed": config.seed,
        "steps": report.steps,
        "teacher_test_nll_nats": teacher.test_nll_nats,
        "student_test_nll_nats": result.student_test_nll,
        "kl_student_teacher_nats": result.kl,
        "teacher_ms_per_step": teacher.report.ms_per_step,
        "forward_kl_steps": result.warm_start_steps,
        "forward_kl_final_nll_nats": report.forward_kl.map(|(nll, _)| nll),
        "ms_per_step": report.ms_per_step,
        "train_seconds": teacher.report.train_seconds
            + report.train_seconds
            + report.forward_kl.map_or(0.0, |(_, seconds)| seconds),
        "n_params": student.n_params(),
        "threads": flowzoo::tensor::parallel::current_num_threads(),
    });
    write_metrics(&out, &metrics)?;
    save(&out, student, &config.record(toy.name(), None))?;
    let mut rng = Stream::DistillPictures.rng(config.seed);
    let (x_range, y_range) = toy.bounds();
    let data = toy.sample(PICTURE_SAMPLES, &mut rng);
    let samples = student.sample(PICTURE_SAMPLES, 1.0, &mut rng).to_f64_vec();
    let name = toy.name();
    pictures::scatter(
        &out.join("samples.png"),
        &data,
        &samples,
        x_range,
        y_range,
        &format!(
            "IAF student on {name}: test NLL {:.3} nats, KL to the teacher {:.3}",
            result.student_test_nll, result.kl
        ),
    )?;
    let teacher_samples = teacher
        .model
        .sample(PICTURE_SAMPLES, 1.0, &mut rng)
        .to_f64_vec();
    pictures::scatter(
        &out.join("teacher_samples.png"),
        &data,
        &teacher_samples,
        x_range,
        y_range,
        &format!(
            "MAF teacher on {name}: test NLL {:.3} nats",
            teacher.test_nll_nats
        ),
    )?;
    let grid = DensityGrid::new(student, x_range, y_range, 256);
    pictures::heat_map(
        &out.join("density.png"),
        &grid,
        &format!(
            "IAF student density on {name}: test NLL {:.3} nats",
            result.student_test_nll
        ),
        None,
    )?;
    outln!(
        "{} iaf distilled from maf: KL(student ‖ teacher) {:.4} nats, test NLL student {:.4} / teacher {:.4} nats, {}",
        toy.name(),
        result.kl,
        result.student_test_nll,
        teacher.test_nll_nats,
        timing(report, student.n_params())
    );
    outln!("wrote {}", out.display());
    Ok(())
}

fn timing(report: &ReverseKlReport, n_params: usize) -> String {
    format!(
        "{:.2} ms/step, {:.1} s, {n_params} parameters",
        report.ms_per_step, report.train_seconds
    )
}

/// Saves the trained IAF as model.flowzoo with its run record, for
/// `flowzoo sample` (and `flowzoo eval`, slow for an IAF: its inverse is
/// sequential). No optimiser state: an IAF run does not resume.
fn save(out: &Path, model: &FlowModel<f32>, record: &RunRecord) -> Result<(), String> {
    flowzoo::train::checkpoint::save(out.join(MODEL_FILE), model, None, Some(record))
        .map_err(|e| e.to_string())
}

fn write_metrics(out: &Path, metrics: &serde_json::Value) -> Result<(), String> {
    let text = serde_json::to_string_pretty(metrics).map_err(|e| e.to_string())? + "\n";
    pictures::write_atomically(&out.join("metrics.json"), text.as_bytes())
}
