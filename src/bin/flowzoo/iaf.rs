//! `flowzoo train --flow iaf`: an IAF trained as a sampler by reverse KL,
//! either to a 2-D energy (`--target ring|wave|bump|step`) or by distilling
//! an MAF teacher trained on a 2-D data set (`--data moons` and no target).

use crate::checkpoints::MODEL_FILE;
use crate::pictures;
use flowzoo::data::energy::Energy;
use flowzoo::flows::autoregressive::iaf_layers;
use flowzoo::flows::spec::SpecValue;
use flowzoo::flows::{FlowModel, Sequential, Transform};
use flowzoo::tensor::Tensor;
use flowzoo::train::eval::mean_nll;
use flowzoo::train::reverse_kl::{
    distill, fit_to_energy, reverse_kl_estimate, ReverseKlConfig, ReverseKlReport, Teacher,
};
use flowzoo::train::run::{run, Dataset, FlowKind, RunConfig};
use flowzoo::train::sample::DensityGrid;
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::path::{Path, PathBuf};

/// Samples drawn to estimate the KL after training, and to draw.
const EVAL_SAMPLES: usize = 20_000;
const PICTURE_SAMPLES: usize = 4000;

/// The command-line settings an IAF run uses.
pub struct Settings {
    pub target: Option<String>,
    pub data: String,
    pub layers: usize,
    pub hidden: usize,
    pub steps: usize,
    pub batch: usize,
    pub lr: f64,
    pub seed: u64,
    pub eval_every: usize,
    pub out: Option<PathBuf>,
    pub quiet: bool,
}

fn progress(quiet: bool, steps: usize, what: &str) -> ProgressBar {
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(steps as u64)
    };
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{what} {{bar:40}} {{pos}}/{{len}} steps  {{msg}}  [{{elapsed_precise}} < {{eta_precise}}]"
        ))
        .expect("the template is valid"),
    );
    bar
}

fn iaf_model(s: &Settings, seed: u64) -> FlowModel<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    let layers = iaf_layers(
        2,
        s.layers,
        &[s.hidden, s.hidden],
        Transform::Affine,
        &mut rng,
    );
    FlowModel::new(2, Sequential::new(layers))
}

fn fit_config(s: &Settings, seed: u64) -> ReverseKlConfig {
    ReverseKlConfig {
        steps: s.steps,
        batch: s.batch,
        lr: s.lr,
        seed,
        log_every: s.eval_every,
        anneal_steps: s.steps / 2,
        forward_kl_steps: 0,
    }
}

fn create_out(s: &Settings, default: &str) -> Result<PathBuf, String> {
    let out = s
        .out
        .clone()
        .unwrap_or_else(|| Path::new("runs").join(default));
    std::fs::create_dir_all(&out)
        .map_err(|e| format!("{}: cannot create the output folder: {e}", out.display()))?;
    Ok(out)
}

/// Trains and writes metrics.json and the pictures.
pub fn train(s: Settings) -> Result<(), String> {
    match &s.target {
        Some(name) => {
            let energy: Energy = name
                .parse()
                .map_err(|e: flowzoo::error::DataError| format!("--target: {e}"))?;
            to_energy(&s, energy)
        }
        None => {
            let dataset: Dataset = s.data.parse().map_err(|e: flowzoo::Error| e.to_string())?;
            match dataset {
                Dataset::Toy(_) => distilled(&s, dataset),
                Dataset::Digits | Dataset::Table(_) => Err(
                    "--flow iaf: give --target ring|wave|bump|step (reverse KL to an energy), \
                     or a 2-D toy --data set to distil an MAF teacher into an IAF"
                        .into(),
                ),
            }
        }
    }
}

/// The target exp(−U) on a `resolution²` grid, as a density grid.
fn energy_grid(energy: Energy, resolution: usize) -> DensityGrid {
    let (x_range, y_range) = energy.bounds();
    let (dx, dy) = (
        (x_range[1] - x_range[0]) / resolution as f64,
        (y_range[1] - y_range[0]) / resolution as f64,
    );
    let mut log_density = Vec::with_capacity(resolution * resolution);
    for row in 0..resolution {
        let y = y_range[1] - (row as f64 + 0.5) * dy;
        for col in 0..resolution {
            log_density.push(-energy.energy([x_range[0] + (col as f64 + 0.5) * dx, y]));
        }
    }
    DensityGrid {
        log_density,
        resolution,
        x_range,
        y_range,
    }
}

fn to_energy(s: &Settings, energy: Energy) -> Result<(), String> {
    let out = create_out(s, &format!("iaf-{}", energy.name()))?;
    let mut model = iaf_model(s, s.seed);
    let bar = progress(s.quiet, s.steps, "reverse KL");
    let report = fit_to_energy(
        &mut model,
        energy,
        &fit_config(s, s.seed.wrapping_add(1)),
        |step, loss| {
            if step % 10 == 0 {
                bar.set_position(step as u64);
                bar.set_message(format!("E[log q + U] {loss:.4} nats"));
            }
        },
    )
    .map_err(|e| e.to_string())?;
    bar.finish_and_clear();
    let gap = reverse_kl_estimate(&model, &energy, EVAL_SAMPLES, s.seed.wrapping_add(2));
    let log_z = energy.log_normalizer(1000);
    let metrics = serde_json::json!({
        "flow": "iaf",
        "target": energy.name(),
        "layers": s.layers,
        "hidden": s.hidden,
        "batch": s.batch,
        "lr": s.lr,
        "seed": s.seed,
        "steps": report.steps,
        "reverse_kl_loss_nats": gap,
        "log_normalizer": log_z,
        "kl_nats": gap + log_z,
        "final_train_loss_nats": report.final_loss,
        "train_seconds": report.train_seconds,
        "ms_per_step": report.ms_per_step,
        "n_params": model.n_params(),
        "threads": flowzoo::tensor::parallel::current_num_threads(),
    });
    write_metrics(&out, &metrics)?;
    save(&out, &model, s, &[("target".into(), energy.name().into())])?;
    let mut rng = StdRng::seed_from_u64(s.seed.wrapping_add(3));
    let samples = model.sample(PICTURE_SAMPLES, 1.0, &mut rng).to_f64_vec();
    let target = energy_grid(energy, 256);
    pictures::scatter_over_density(&out.join("samples.png"), &target, &samples)?;
    pictures::heat_map(&out.join("target.png"), &target)?;
    let (x_range, y_range) = energy.bounds();
    let grid = DensityGrid::new(&model, x_range, y_range, 256);
    pictures::heat_map(&out.join("density.png"), &grid)?;
    println!(
        "{} iaf (reverse KL): KL(q ‖ p) {:.4} nats (E[log q + U] {gap:.4}, log Z {log_z:.4}), {}",
        energy.name(),
        gap + log_z,
        timing(&report, model.n_params())
    );
    println!("wrote {}", out.display());
    Ok(())
}

fn distilled(s: &Settings, dataset: Dataset) -> Result<(), String> {
    let Dataset::Toy(toy) = dataset else {
        unreachable!("distilled() is called for 2-D data")
    };
    let out = create_out(s, &format!("iaf-distilled-{}", toy.name()))?;
    // 1. The teacher: an MAF of the same size, by maximum likelihood.
    let teacher_config = RunConfig {
        dataset,
        flow: FlowKind::Maf,
        layers: s.layers,
        hidden: s.hidden,
        steps: s.steps,
        batch: s.batch,
        lr: s.lr,
        seed: s.seed,
        eval_every: s.eval_every,
        ..RunConfig::default()
    };
    let bar = progress(s.quiet, s.steps, "MAF teacher");
    let teacher = run(&teacher_config, |step, loss| {
        if step % 10 == 0 {
            bar.set_position(step as u64);
            bar.set_message(format!("NLL {loss:.4} nats"));
        }
    })
    .map_err(|e| e.to_string())?;
    bar.finish_and_clear();
    // 2. The student: an IAF that samples, scored by the teacher.
    let mut student = iaf_model(s, s.seed.wrapping_add(5));
    let bar = progress(s.quiet, s.steps, "IAF student");
    let warm_start_steps = s.steps / 5;
    let report = distill(
        &mut student,
        &teacher.model,
        &ReverseKlConfig {
            // Started on both moons by maximum likelihood on the teacher's
            // samples, the student needs no annealing (which would first
            // spread it out again).
            forward_kl_steps: warm_start_steps,
            anneal_steps: 0,
            ..fit_config(s, s.seed.wrapping_add(6))
        },
        |step, loss| {
            if step % 10 == 0 {
                bar.set_position(step as u64);
                bar.set_message(format!("KL {loss:.4} nats"));
            }
        },
    )
    .map_err(|e| e.to_string())?;
    bar.finish_and_clear();
    let kl = reverse_kl_estimate(
        &student,
        &Teacher(&teacher.model),
        EVAL_SAMPLES,
        s.seed.wrapping_add(7),
    );
    let mut test_rng = StdRng::seed_from_u64(10_000 + s.seed);
    let test =
        Tensor::<f32>::from_f64_slice(&toy.sample(EVAL_SAMPLES, &mut test_rng), &[EVAL_SAMPLES, 2]);
    let student_nll = mean_nll(&student, &test);
    let metrics = serde_json::json!({
        "flow": "iaf",
        "data": toy.name(),
        "teacher": "maf",
        "layers": s.layers,
        "hidden": s.hidden,
        "batch": s.batch,
        "lr": s.lr,
        "seed": s.seed,
        "steps": report.steps,
        "teacher_test_nll_nats": teacher.test_nll_nats,
        "student_test_nll_nats": student_nll,
        "kl_student_teacher_nats": kl,
        "teacher_ms_per_step": teacher.report.ms_per_step,
        "forward_kl_steps": warm_start_steps,
        "forward_kl_final_nll_nats": report.forward_kl.map(|(nll, _)| nll),
        "ms_per_step": report.ms_per_step,
        "train_seconds": teacher.report.train_seconds
            + report.train_seconds
            + report.forward_kl.map_or(0.0, |(_, seconds)| seconds),
        "n_params": student.n_params(),
        "threads": flowzoo::tensor::parallel::current_num_threads(),
    });
    write_metrics(&out, &metrics)?;
    save(&out, &student, s, &[("data".into(), toy.name().into())])?;
    let mut rng = StdRng::seed_from_u64(s.seed.wrapping_add(8));
    let (x_range, y_range) = toy.bounds();
    let data = toy.sample(PICTURE_SAMPLES, &mut rng);
    let samples = student.sample(PICTURE_SAMPLES, 1.0, &mut rng).to_f64_vec();
    pictures::scatter(&out.join("samples.png"), &data, &samples, x_range, y_range)?;
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
    )?;
    let grid = DensityGrid::new(&student, x_range, y_range, 256);
    pictures::heat_map(&out.join("density.png"), &grid)?;
    println!(
        "{} iaf distilled from maf: KL(student ‖ teacher) {kl:.4} nats, test NLL student {student_nll:.4} / teacher {:.4} nats, {}",
        toy.name(),
        teacher.test_nll_nats,
        timing(&report, student.n_params())
    );
    println!("wrote {}", out.display());
    Ok(())
}

fn timing(report: &ReverseKlReport, n_params: usize) -> String {
    format!(
        "{:.2} ms/step, {:.1} s, {n_params} parameters",
        report.ms_per_step, report.train_seconds
    )
}

/// Saves the trained IAF as model.flowzoo, for `flowzoo sample` (and
/// `flowzoo eval`, slow for an IAF: its inverse is sequential); `extra` says
/// what it was trained towards. No optimiser state: an IAF run does not resume.
fn save(
    out: &Path,
    model: &FlowModel<f32>,
    s: &Settings,
    extra: &[(String, SpecValue)],
) -> Result<(), String> {
    let mut metadata: Vec<(String, SpecValue)> = vec![
        ("flow".into(), "iaf".into()),
        ("layers".into(), s.layers.into()),
        ("hidden".into(), s.hidden.into()),
        ("seed".into(), SpecValue::Int(s.seed as i64)),
        ("test_seed".into(), SpecValue::Int(10_000 + s.seed as i64)),
    ];
    metadata.extend_from_slice(extra);
    flowzoo::train::checkpoint::save(out.join(MODEL_FILE), model, None, &metadata)
        .map_err(|e| e.to_string())
}

fn write_metrics(out: &Path, metrics: &serde_json::Value) -> Result<(), String> {
    let text = serde_json::to_string_pretty(metrics).map_err(|e| e.to_string())? + "\n";
    pictures::write_atomically(&out.join("metrics.json"), text.as_bytes())
}
