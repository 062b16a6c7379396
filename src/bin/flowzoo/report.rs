//! What `flowzoo train` leaves in its output folder at the end of a run:
//! metrics.json (completed or failed), the pictures of the data kind (2-D
//! densities and layer-by-layer samples, image grids and interpolations,
//! a table's held-out rows) and the one-line summary on standard output.

use crate::checkpoints::{self, unit_cube_nats, MODEL_FILE};
use crate::{conditional, pictures};
use flowzoo::flows::Flow;
use flowzoo::tensor::Tensor;
use flowzoo::train::condition::Condition;
use flowzoo::train::run::{Dataset, RunConfig, RunResult, Schedule};
use flowzoo::train::sample::{latent_scales, layer_by_layer, DensityGrid};
use flowzoo::train::seeds::Stream;
use std::path::Path;

/// What a failed run leaves: with a checkpoint saved before the failure, a
/// metrics.json that says the run failed, why, and which step the
/// checkpoint holds; without one, no output folder at all (if this run
/// created it and it is still empty).
pub fn failed(config: &RunConfig, out: &Path, existed: bool, saved_step: Option<usize>, why: &str) {
    match saved_step {
        Some(step) => {
            let mut metrics = run_fields(config, "failed");
            metrics["error"] = why.into();
            metrics["model_step"] = step.into();
            let text = serde_json::to_string_pretty(&metrics).unwrap_or_default() + "\n";
            if let Err(e) = pictures::write_atomically(&out.join("metrics.json"), text.as_bytes()) {
                eprintln!("warning: {e}");
            }
        }
        None if !existed => {
            // Fails, as it should, if anything else was put there meanwhile.
            let _ = std::fs::remove_dir(out);
        }
        None => {}
    }
}

/// The fields of metrics.json that describe the run, with its `status`.
fn run_fields(config: &RunConfig, status: &str) -> serde_json::Value {
    let label = match &config.dataset {
        Dataset::Table(user) => user.path.display().to_string(),
        other => other.name().to_string(),
    };
    let mut fields = serde_json::json!({
        "status": status,
        "data": label,
        "flow": config.flow.name(),
        "layers": config.layers,
        "hidden": config.hidden,
        "batch": config.batch,
        "lr": config.lr,
        "schedule": schedule_name(config),
        "clip_norm": config.clip_norm,
        "weight_decay": config.weight_decay,
        "patience": config.patience,
        "seed": config.seed,
        "model": MODEL_FILE,
    });
    if let Some(seconds) = config.time_limit {
        fields["minutes"] = (seconds / 60.0).into();
    }
    // Only a conditional run names its context, so other runs' files are as before.
    match &config.condition {
        Some(Condition::Label) => fields["condition"] = "label".into(),
        Some(Condition::Columns(names)) => fields["context_columns"] = names.clone().into(),
        None => {}
    }
    fields
}

/// The schedule as `--schedule` spells it.
fn schedule_name(config: &RunConfig) -> String {
    match config.schedule {
        Schedule::Constant => "constant".into(),
        Schedule::Cosine { warmup } => format!("cosine:{warmup}"),
        Schedule::Step { every, gamma } => format!("step:{every}:{gamma}"),
    }
}

pub fn report(
    config: &RunConfig,
    result: &RunResult,
    out: &Path,
    resumed_from: Option<&Path>,
) -> Result<(), String> {
    let label = match &config.dataset {
        Dataset::Table(user) => user.path.display().to_string(),
        other => other.name().to_string(),
    };
    let mut metrics = run_fields(config, "completed");
    let extra = serde_json::json!({
        "steps": result.report.steps,
        "stopped": result.report.stop.describe(result.report.best_step),
        "best_step": result.report.best_step,
        "test_nll_nats": result.test_nll_nats,
        "final_train_loss_nats": result.report.final_loss,
        "train_seconds": result.report.train_seconds,
        "ms_per_step": result.report.ms_per_step,
        "n_params": result.model.n_params(),
        "threads": rayon::current_num_threads(),
    });
    for (key, value) in extra.as_object().expect("an object") {
        metrics[key] = value.clone();
    }
    if let Some(path) = resumed_from {
        metrics["resumed_from"] = path.display().to_string().into();
    }
    if let Some(bpd) = result.test_bits_per_dim {
        metrics["test_bits_per_dim"] = bpd.into();
    }
    if let Some(nats) = unit_cube_nats(
        &config.dataset,
        config.condition.is_some(),
        result.test_nll_nats,
    ) {
        metrics["test_log_likelihood_unit_cube_nats"] = nats.into();
    }
    if let Some(accuracy) = result.test_accuracy {
        // Bayes' rule on the test digits: argmax_c log p(x | c) + log p(c)
        metrics["test_accuracy"] = accuracy.into();
    }
    if let Some(v) = result.report.best_validation {
        let key = match config.dataset {
            Dataset::Digits | Dataset::Images(_) => "best_validation_bits_per_dim",
            _ => "best_validation_nll_nats",
        };
        metrics[key] = v.into();
    }
    let text = serde_json::to_string_pretty(&metrics).map_err(|e| e.to_string())? + "\n";
    pictures::write_atomically(&out.join("metrics.json"), text.as_bytes())?;
    let mut rng = Stream::Pictures.rng(config.seed);
    let flow = config.flow.name();
    match &config.dataset {
        &Dataset::Toy(toy) => {
            let (x_range, y_range) = toy.bounds();
            let samples = result.model.sample(4000, 1.0, &mut rng).to_f64_vec();
            let data = toy.sample(4000, &mut rng);
            let nll = result.test_nll_nats;
            let name = toy.name();
            pictures::scatter(
                &out.join("samples.png"),
                &data,
                &samples,
                x_range,
                y_range,
                &format!("{flow} on {name}: samples and data, test NLL {nll:.3} nats"),
            )?;
            let grid = DensityGrid::new(&result.model, x_range, y_range, 256);
            pictures::heat_map(
                &out.join("density.png"),
                &grid,
                &format!("{flow} on {name}: density, test NLL {nll:.3} nats"),
                None,
            )?;
            let z = result.model.sample_prior(3000, 1.0, &mut rng);
            let stages: Vec<(String, Vec<f64>)> = layer_by_layer(&result.model, &z)
                .into_iter()
                .map(|(label, t)| (label, t.to_f64_vec()))
                .collect();
            pictures::flows_png(
                &out.join("flows.png"),
                &stages,
                &format!(
                    "{flow} on {name}: base samples carried through each layer, \
                     coloured by their quadrant in z"
                ),
            )?;
            metrics_line(&label, config, result, Some(grid.mass()));
        }
        Dataset::Digits | Dataset::Images(_) if result.model.context_dim() > 0 => {
            let images = config.dataset.images().expect("an image dataset");
            let bpd = result.test_bits_per_dim.unwrap_or(f64::NAN);
            conditional::image_pictures(out, &result.model, &images, flow, bpd, &mut rng)?;
            metrics_line(&label, config, result, None);
        }
        Dataset::Digits | Dataset::Images(_) => {
            let images = config.dataset.images().expect("an image dataset");
            let shape = images.test.shape;
            let bpd = result.test_bits_per_dim.unwrap_or(f64::NAN);
            let samples = result.model.sample(64, 1.0, &mut rng).to_f64_vec();
            pictures::image_grid(
                &out.join("samples.png"),
                &samples,
                shape,
                8,
                &format!("{flow} samples, temperature 1.0; test {bpd:.3} bits/dim"),
            )?;
            let cooler = result.model.sample(64, 0.7, &mut rng).to_f64_vec();
            pictures::image_grid(
                &out.join("samples-t0.7.png"),
                &cooler,
                shape,
                8,
                &format!("{flow} samples, temperature 0.7; test {bpd:.3} bits/dim"),
            )?;
            let strip =
                pictures::latent_interpolation(&result.model, &images.test, images.levels, 10);
            pictures::image_grid(
                &out.join("interpolation.png"),
                &strip,
                shape,
                10,
                "linear paths in z between test images of classes 2-7, 0-6, 3-8 (ends: the images)",
            )?;
            let scales = latent_scales(&result.model, result.model.dim());
            if !scales.is_empty() && shape[0] == 1 {
                // The first test image at the centre of its dequantisation cells.
                let levels = f64::from(images.levels);
                let x: Vec<f64> = images
                    .test
                    .image(0)
                    .iter()
                    .map(|&v| (f64::from(v) + 0.5) / levels)
                    .collect();
                let (z, _) = result
                    .model
                    .flow
                    .inverse_tensor(&Tensor::<f32>::from_f64_slice(&x, &[1, x.len()]));
                pictures::latents_png(
                    &out.join("latents.png"),
                    &x,
                    shape[1],
                    &z.to_f64_vec(),
                    &scales,
                    &format!(
                        "{flow}: the latent z = f⁻¹(x) of a test image, scale by scale \
                         (black −3, grey 0, white +3)"
                    ),
                )?;
            }
            metrics_line(&label, config, result, None);
        }
        Dataset::Table(user) => {
            // The held-out rows, so `flowzoo eval --data test.csv` scores them again.
            let (_, test) = user.split(config.seed);
            checkpoints::write_csv(&out.join("test.csv"), &test.columns, &test.data)?;
            metrics_line(&label, config, result, None);
        }
    }
    outln!("wrote {}", out.display());
    Ok(())
}

fn metrics_line(data: &str, config: &RunConfig, result: &RunResult, mass: Option<f64>) {
    out!(
        "{data} {}: test NLL {:.4} nats",
        config.flow.name(),
        result.test_nll_nats
    );
    if let Some(bpd) = result.test_bits_per_dim {
        out!(
            ", test {bpd:.4} bits/dim (best validation at step {})",
            result.report.best_step
        );
    }
    if let Some(nats) = unit_cube_nats(
        &config.dataset,
        config.condition.is_some(),
        result.test_nll_nats,
    ) {
        out!(", log-likelihood {nats:.1} nats on [0,1]^D");
    }
    if let Some(accuracy) = result.test_accuracy {
        out!(", Bayes-rule test accuracy {:.2} %", 100.0 * accuracy);
    }
    if let Some(mass) = mass {
        out!(", density mass on the plotted box {mass:.4}");
    }
    outln!(
        ", {:.2} ms/step, {:.1} s, {} parameters",
        result.report.ms_per_step,
        result.report.train_seconds,
        result.model.n_params()
    );
}
