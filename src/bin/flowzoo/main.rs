//! The `flowzoo` command-line tool: train a flow and get numbers and pictures.
//!
//! `flowzoo train --data moons --flow realnvp --layers 8 --hidden 256 --steps 5000 --batch 256 --seed 0 --out runs/moons`
//! writes `metrics.json`, `samples.png` and (2-D data) `density.png` to the
//! output folder; on the digits, `samples.png` (temperature 1.0),
//! `samples-t0.7.png` (temperature 0.7) and `interpolation.png` (a latent
//! interpolation between test digits) instead of the density. The library
//! does the work; this file parses, calls it, and reports.

mod iaf;
mod pictures;

use clap::{Parser, Subcommand};
use flowzoo::data::digits;
use flowzoo::train::run::{run, Dataset, FlowKind, RunConfig, RunResult};
use flowzoo::train::sample::DensityGrid;
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "flowzoo",
    version,
    about = "Normalizing flows in pure Rust: train, then look at the numbers and pictures."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a flow by maximum likelihood and write metrics.json and pictures.
    Train(TrainArgs),
}

#[derive(clap::Args)]
struct TrainArgs {
    /// Data: moons, 8gaussians, checkerboard, pinwheel, circles (2-D, fresh
    /// points every step) or digits (the embedded UCI 8x8 digits, 64-D).
    #[arg(long, default_value = "moons")]
    data: String,
    /// Flow architecture: realnvp, maf (maximum likelihood), or iaf (a
    /// sampler by reverse KL: to --target, or distilled from an MAF trained
    /// on a 2-D --data set); nice, glow, or realnvp-image (the multi-scale
    /// RealNVP, digits only; glow sees the digits as images too).
    #[arg(long, default_value = "realnvp")]
    flow: String,
    /// Target energy for --flow iaf: ring, wave, bump, step (Rezende &
    /// Mohamed 2015, figure 3).
    #[arg(long)]
    target: Option<String>,
    /// Number of coupling layers or MADEs [default: 8; maf: 5; nice: 4;
    /// realnvp-image: 3 per group; glow: steps per level, 4 on digits, 8 on 2-D].
    #[arg(long)]
    layers: Option<usize>,
    /// Hidden width of each coupling network or MADE (two hidden layers)
    /// [default: 256; maf: 512; nice: 256 on digits, 128 on 2-D;
    /// realnvp-image and glow on digits: 32 channels; glow on 2-D: 128].
    #[arg(long)]
    hidden: Option<usize>,
    /// Optimisation steps.
    #[arg(long, default_value_t = 5000)]
    steps: usize,
    /// Batch size.
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Seed of everything random (initialisation, batches, noise, test points).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Validation check every this many steps (digits).
    #[arg(long, default_value_t = 100)]
    eval_every: usize,
    /// Output folder [default: runs/<data>].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Hide the progress bar.
    #[arg(long)]
    quiet: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train(args) => train(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn train(args: TrainArgs) -> Result<(), String> {
    if args.flow == "iaf" {
        return iaf::train(iaf::Settings {
            target: args.target,
            data: args.data,
            layers: args.layers.unwrap_or(8),
            hidden: args.hidden.unwrap_or(256),
            steps: args.steps,
            batch: args.batch,
            lr: args.lr,
            seed: args.seed,
            eval_every: args.eval_every,
            out: args.out,
            quiet: args.quiet,
        });
    }
    let flow: FlowKind = args
        .flow
        .parse()
        .map_err(|e: flowzoo::error::TrainError| format!("--flow: {e} (or iaf)"))?;
    if args.target.is_some() {
        return Err("--target is for --flow iaf".into());
    }
    // MAF defaults to the reference: 5 MADEs with two hidden layers of 512.
    let (layers, hidden) = match flow {
        FlowKind::Maf => (args.layers.unwrap_or(5), args.hidden.unwrap_or(512)),
        _ => {
            // NICE, the multi-scale RealNVP and Glow have their own defaults per data set.
            let family = args
                .data
                .parse::<Dataset>()
                .ok()
                .and_then(|d| flow.coupling_family_defaults(d));
            let (layers, hidden) = family.unwrap_or((8, 256));
            (args.layers.unwrap_or(layers), args.hidden.unwrap_or(hidden))
        }
    };
    let dataset: Dataset = args
        .data
        .parse()
        .map_err(|e: flowzoo::Error| e.to_string())?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| Path::new("runs").join(dataset.name()));
    std::fs::create_dir_all(&out)
        .map_err(|e| format!("{}: cannot create the output folder: {e}", out.display()))?;
    let config = RunConfig {
        dataset,
        flow,
        layers,
        hidden,
        steps: args.steps,
        batch: args.batch,
        lr: args.lr,
        seed: args.seed,
        eval_every: args.eval_every,
        ..RunConfig::default()
    };
    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(config.steps as u64)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:40} {pos}/{len} steps  {msg}  [{elapsed_precise} < {eta_precise}]",
        )
        .expect("the template is valid"),
    );
    let result = run(&config, |step, loss| {
        if step % 10 == 0 || step == config.steps {
            bar.set_position(step as u64);
            bar.set_message(format!("loss {loss:.4} nats"));
        }
    })
    .map_err(|e| e.to_string())?;
    bar.finish_and_clear();
    report(&config, &result, &out)
}

fn report(config: &RunConfig, result: &RunResult, out: &Path) -> Result<(), String> {
    let mut metrics = serde_json::json!({
        "data": config.dataset.name(),
        "flow": config.flow.name(),
        "layers": config.layers,
        "hidden": config.hidden,
        "batch": config.batch,
        "lr": config.lr,
        "seed": config.seed,
        "steps": result.report.steps,
        "best_step": result.report.best_step,
        "test_nll_nats": result.test_nll_nats,
        "final_train_loss_nats": result.report.final_loss,
        "train_seconds": result.report.train_seconds,
        "ms_per_step": result.report.ms_per_step,
        "n_params": result.model.n_params(),
        "threads": rayon::current_num_threads(),
    });
    if let Some(bpd) = result.test_bits_per_dim {
        metrics["test_bits_per_dim"] = bpd.into();
    }
    if let Some(v) = result.report.best_validation {
        metrics["best_validation_bits_per_dim"] = v.into();
    }
    let text = serde_json::to_string_pretty(&metrics).map_err(|e| e.to_string())? + "\n";
    pictures::write_atomically(&out.join("metrics.json"), text.as_bytes())?;
    let mut rng = StdRng::seed_from_u64(config.seed.wrapping_add(4));
    match config.dataset {
        Dataset::Toy(toy) => {
            let (x_range, y_range) = toy.bounds();
            let samples = result.model.sample(4000, 1.0, &mut rng).to_f64_vec();
            let data = toy.sample(4000, &mut rng);
            pictures::scatter(&out.join("samples.png"), &data, &samples, x_range, y_range)?;
            let grid = DensityGrid::new(&result.model, x_range, y_range, 256);
            pictures::heat_map(&out.join("density.png"), &grid)?;
            metrics_line(config, result, Some(grid.mass()));
        }
        Dataset::Digits => {
            let samples = result.model.sample(64, 1.0, &mut rng).to_f64_vec();
            pictures::digit_grid(&out.join("samples.png"), &samples, digits::SIDE, 8)?;
            let cooler = result.model.sample(64, 0.7, &mut rng).to_f64_vec();
            pictures::digit_grid(&out.join("samples-t0.7.png"), &cooler, digits::SIDE, 8)?;
            let strip = pictures::latent_interpolation(&result.model, &digits::test(), 10);
            pictures::digit_grid(&out.join("interpolation.png"), &strip, digits::SIDE, 10)?;
            metrics_line(config, result, None);
        }
    }
    println!("wrote {}", out.display());
    Ok(())
}

fn metrics_line(config: &RunConfig, result: &RunResult, mass: Option<f64>) {
    print!(
        "{} {}: test NLL {:.4} nats",
        config.dataset.name(),
        config.flow.name(),
        result.test_nll_nats
    );
    if let Some(bpd) = result.test_bits_per_dim {
        print!(
            ", test {bpd:.4} bits/dim (best validation at step {})",
            result.report.best_step
        );
    }
    if let Some(mass) = mass {
        print!(", density mass on the plotted box {mass:.4}");
    }
    println!(
        ", {:.2} ms/step, {:.1} s, {} parameters",
        result.report.ms_per_step,
        result.report.train_seconds,
        result.model.n_params()
    );
}
