//! The `flowzoo` command-line tool: train a flow and get numbers and pictures.
//!
//! `flowzoo train --data moons --flow realnvp --layers 8 --hidden 256 --steps 5000 --batch 256 --seed 0 --out runs/moons`
//! writes `model.flowzoo`, `metrics.json`, `samples.png` and (2-D data)
//! `density.png` to the output folder; on the digits, `samples.png`
//! (temperature 1.0), `samples-t0.7.png` (temperature 0.7) and
//! `interpolation.png` (a latent interpolation between test digits) instead
//! of the density. `flowzoo sample` and `flowzoo eval` use the checkpoint
//! (checkpoints.rs). The library does the work; this file parses, calls it,
//! and reports.

/// `print!` for the program's report on stdout, through [`stdout_write`]: a
/// closed stdout (`flowzoo check | head`) ends the program quietly.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::stdout_write(format_args!($($arg)*))
    };
}

/// `println!` through [`stdout_write`] (see [`out!`]).
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::stdout_write(format_args!("{}\n", format_args!($($arg)*)))
    };
}

mod check;
mod checkpoints;
mod conditional;
mod iaf;
mod log;
mod pictures;
mod report;

use checkpoints::MODEL_FILE;
use clap::{Parser, Subcommand};
use flowzoo::flows::zoo::{self, FlowName};
use flowzoo::flows::FlowModel;
use flowzoo::nn::Adam;
use flowzoo::train::run::{run_from, save_run, Dataset, RunConfig, Schedule};
use indicatif::{ProgressBar, ProgressStyle};
use report::{failed, report};
use std::io::IsTerminal;
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
    /// Train a flow by maximum likelihood and write model.flowzoo,
    /// metrics.json and pictures.
    Train(Box<TrainArgs>),
    /// Draw samples from a checkpoint: a CSV of vectors or a PNG grid of images.
    Sample(checkpoints::SampleArgs),
    /// Test NLL (nats; bits/dim for the digits) of a checkpoint on data.
    Eval(checkpoints::EvalArgs),
    /// Prove a trained checkpoint layer by layer: inverse, log-det against
    /// finite differences, triangularity (MAF, IAF), and the density's mass
    /// (2-D); a conditional model at each row's own context; exit status 1
    /// if any fails.
    Check(check::CheckArgs),
}

#[derive(clap::Args, Clone)]
pub struct TrainArgs {
    #[arg(long, help = format!(
        "Data: moons, 8gaussians, checkerboard, pinwheel, circles (2-D, fresh points every \
         step), digits (the embedded UCI 8x8 digits, 64-D, images to the image flows), mnist \
         or cifar10 (with --data-dir; or mnist:DIR), or a \
         FILE.csv / FILE.npy of your own vectors (standardised; 10% of the rows held out for \
         test and written to test.csv) [default: {}]",
        defaults().dataset.argument()
    ))]
    data: Option<String>,
    /// The folder of --data mnist (train-images-idx3-ubyte, train-labels-idx1-ubyte,
    /// t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, each plain or .gz) or of
    /// --data cifar10 (data_batch_1.bin … data_batch_5.bin, test_batch.bin).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    #[arg(long, help = flow_help())]
    flow: Option<String>,
    /// Base distribution under the flow: normal (N(0, I)), diag (a Gaussian
    /// with trainable mean and log-scale) or mixture:K (K trainable diagonal
    /// Gaussians) [default: the flow's own, normal but for nice's logistic].
    #[arg(long)]
    base: Option<String>,
    /// Train p(x | c), images given their class: `label`, for --data digits,
    /// mnist or cifar10 (the one-hot label 0-9 is the context; samples.png
    /// shows one row per class, interpolation.png paths between two test
    /// images of one class given it, and metrics.json the test accuracy of
    /// classifying by Bayes' rule).
    #[arg(long)]
    condition: Option<String>,
    /// Train p(x | c) on your own table: these columns (header names, or
    /// 0-based indices, e.g. for a .npy file) are the context c and the
    /// other columns are modelled given them; contexts go in standardised
    /// by a learned affine map started at the training rows' statistics.
    #[arg(long)]
    context_columns: Option<String>,
    /// Target energy for --flow iaf: ring, wave, bump, step (Rezende &
    /// Mohamed 2015, figure 3).
    #[arg(long)]
    target: Option<String>,
    /// The flow's `layers` size (couplings, MADEs, steps per level)
    /// [default: the flow's, see --flow; the digits are images].
    #[arg(long)]
    layers: Option<usize>,
    /// The flow's `hidden` size (network width, or channels)
    /// [default: the flow's, see --flow].
    #[arg(long)]
    hidden: Option<usize>,
    /// Optimisation steps (in all: with --resume, the checkpoint's count included).
    #[arg(long, default_value_t = defaults().steps)]
    steps: usize,
    #[arg(long, help = format!("Batch size [default: {}]", defaults().batch))]
    batch: Option<usize>,
    #[arg(long, help = format!(
        "Adam learning rate [default: {:e}; with --resume, the checkpoint's]",
        defaults().lr
    ))]
    lr: Option<f64>,
    #[arg(long, help = format!(
        "Seed of everything random (initialisation, batches, noise, test points) [default: {}]",
        defaults().seed
    ))]
    seed: Option<u64>,
    /// Continue training from a checkpoint (a model.flowzoo), with its
    /// parameters and Adam state; the data, flow, sizes, batch and seed are
    /// the checkpoint's. Batches are drawn afresh, so the result is close to,
    /// not bit-equal to, an uninterrupted run.
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Check every this many steps: the validation score (digits, your
    /// own file, and 2-D data with --patience), a checkpoint, and a log line
    /// when standard error is not a terminal.
    #[arg(long, default_value_t = defaults().eval_every)]
    eval_every: usize,
    /// Learning-rate schedule from --lr: constant, cosine (decaying towards
    /// 0, reached one step after the last), cosine:WARMUP (linear warm-up
    /// over WARMUP steps first), or step:EVERY:GAMMA (times GAMMA, at most
    /// 1, every EVERY steps) [default: constant].
    #[arg(long)]
    schedule: Option<String>,
    /// Clip the gradients' joint norm to this before each update [default: no clipping].
    #[arg(long, allow_negative_numbers = true)]
    clip_norm: Option<f64>,
    /// Decoupled weight decay λ (AdamW): θ ← θ − lr·λ·θ each step, on every
    /// parameter (ActNorm's, the 1x1 convolutions' and the biases too) [default: 0].
    #[arg(long, allow_negative_numbers = true)]
    weight_decay: Option<f64>,
    /// Early stopping: stop after this many checks (--eval-every) without a
    /// better validation score, keeping the best model [default: take every step].
    #[arg(long)]
    patience: Option<usize>,
    /// Stop after this many minutes of training (validation included), with
    /// a check at the last step, e.g. to compare runs at equal time
    /// [default: take every step].
    #[arg(long, allow_negative_numbers = true)]
    minutes: Option<f64>,
    /// Append one JSON object per check to this file (step, loss,
    /// validation, lr, grad_norm, seconds, kept): `tail -f` it, or plot it.
    #[arg(long)]
    log_json: Option<PathBuf>,
    /// Output folder [default: runs/<data>].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Hide the progress bar.
    #[arg(long)]
    quiet: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Image folders may hold gzip files (MNIST's are distributed so).
    flowzoo::data::images::set_default_open(open_maybe_gzip);
    let result = match cli.command {
        Command::Train(args) => train(*args),
        Command::Sample(args) => checkpoints::sample(args),
        Command::Eval(args) => checkpoints::eval(args),
        Command::Check(args) => check::check(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Writes `args` to stdout. When the reader has gone (a pipe into `head`
/// closed early), exits with success at once, as command-line filters do,
/// instead of panicking as `println!` does: whatever the run saved is whole
/// (files are written under a temporary name and renamed). Any other
/// failure to write stdout ends the program with an error.
fn stdout_write(args: std::fmt::Arguments) {
    use std::io::Write;
    let result = std::io::stdout().lock().write_fmt(args);
    match result {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => {
            eprintln!("error: writing to stdout: {e}");
            std::process::exit(1)
        }
    }
}

/// Opens `path`, decoding gzip when the file starts with its magic bytes
/// `1f 8b` (the library's own readers take plain bytes only).
fn open_maybe_gzip(path: &Path) -> std::io::Result<Box<dyn std::io::Read>> {
    use std::io::{BufRead, BufReader};
    let mut reader = BufReader::new(std::fs::File::open(path)?);
    if reader.fill_buf()?.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(flate2::bufread::GzDecoder::new(reader)))
    } else {
        Ok(Box::new(reader))
    }
}

/// `--data` with `--data-dir` as one dataset argument: `mnist` and
/// `cifar10` become `mnist:DIR`, `cifar10:DIR`, DIR made absolute so that
/// the run record finds the folder again from any working directory
/// (`eval`, `sample`, `check`, `--resume`); anything else goes as it is.
fn data_argument(data: String, dir: Option<&Path>) -> Result<String, String> {
    let folder = matches!(data.to_ascii_lowercase().as_str(), "mnist" | "cifar10");
    match (folder, dir) {
        (true, Some(dir)) => {
            let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
            Ok(format!("{}:{}", data.to_ascii_lowercase(), dir.display()))
        }
        (true, None) => Err(format!(
            "--data {data} needs --data-dir DIR, the folder that holds its files \
             (see --help)"
        )),
        (false, Some(_)) => Err(format!(
            "--data-dir is for --data mnist or cifar10, not --data {data}"
        )),
        (false, None) => Ok(data),
    }
}

/// The library's run defaults, which the flags and their help read.
fn defaults() -> RunConfig {
    RunConfig::default()
}

/// `--help` for `--flow`: the zoo's table.
fn flow_help() -> String {
    format!(
        "Flow architecture [default: {}]:\n{}",
        defaults().flow.name(),
        zoo::help_table()
    )
}

fn train(args: TrainArgs) -> Result<(), String> {
    if let Some(path) = &args.resume {
        return resume(path, args.clone());
    }
    let data = args
        .data
        .clone()
        .unwrap_or_else(|| defaults().dataset.argument());
    let data = data_argument(data, args.data_dir.as_deref())?;
    let flow: FlowName = match &args.flow {
        Some(name) => name
            .parse()
            .map_err(|e: zoo::ZooError| format!("--flow: {e}"))?,
        None => defaults().flow,
    };
    let base: Option<zoo::BaseName> = match &args.base {
        Some(name) => Some(name.parse().map_err(|e: String| format!("--base: {e}"))?),
        None => None,
    };
    let condition =
        conditional::condition_of(args.condition.as_deref(), args.context_columns.as_deref())?;
    if flow == FlowName::Iaf {
        if condition.is_some() {
            return Err(
                "--flow iaf (a sampler trained by reverse KL) has no conditional form: \
                 --condition and --context-columns are for the maximum-likelihood flows"
                    .into(),
            );
        }
        if base.is_some() {
            return Err(
                "--base is for the flows trained by maximum likelihood, not --flow iaf".into(),
            );
        }
        let options = [
            ("--schedule", args.schedule.is_some()),
            ("--clip-norm", args.clip_norm.is_some()),
            ("--weight-decay", args.weight_decay.is_some()),
            ("--patience", args.patience.is_some()),
            ("--minutes", args.minutes.is_some()),
            ("--log-json", args.log_json.is_some()),
        ];
        if let Some((flag, _)) = options.iter().find(|(_, given)| *given) {
            return Err(format!(
                "{flag} is for maximum-likelihood runs; --flow iaf (reverse KL) takes \
                 --steps, --batch, --lr, --seed, --layers, --hidden, --target"
            ));
        }
        return iaf::train(&args, &data);
    }
    if args.target.is_some() {
        return Err("--target is for --flow iaf".into());
    }
    let dataset: Dataset = data.parse().map_err(|e: flowzoo::Error| e.to_string())?;
    let defaults = RunConfig::new(dataset, flow).map_err(|e| format!("--flow: {e}"))?;
    let config = RunConfig {
        layers: args.layers.unwrap_or(defaults.layers),
        hidden: args.hidden.unwrap_or(defaults.hidden),
        steps: args.steps,
        batch: args.batch.unwrap_or(defaults.batch),
        lr: args.lr.unwrap_or(defaults.lr),
        seed: args.seed.unwrap_or(defaults.seed),
        eval_every: args.eval_every,
        base,
        ..defaults
    };
    let config = match condition {
        Some(condition) => config
            .with_condition(condition)
            .map_err(|e| e.to_string())?,
        None => config,
    };
    let config = with_options(&args, config)?;
    train_run(&args, config, None)
}

/// `flowzoo train --resume FILE`: the run the checkpoint describes, from
/// its parameters and Adam state.
fn resume(path: &Path, args: TrainArgs) -> Result<(), String> {
    let given = [
        ("--data", args.data.is_some()),
        ("--data-dir", args.data_dir.is_some()),
        ("--flow", args.flow.is_some()),
        ("--base", args.base.is_some()),
        ("--layers", args.layers.is_some()),
        ("--hidden", args.hidden.is_some()),
        ("--batch", args.batch.is_some()),
        ("--seed", args.seed.is_some()),
        ("--target", args.target.is_some()),
        ("--condition", args.condition.is_some()),
        ("--context-columns", args.context_columns.is_some()),
    ];
    if let Some((flag, _)) = given.iter().find(|(_, given)| *given) {
        return Err(format!(
            "{flag} cannot be given with --resume: the run's data, flow, sizes, batch and seed \
             are the checkpoint's ({})",
            path.display()
        ));
    }
    let saved = flowzoo::train::run::load_run(path).map_err(|e| e.to_string())?;
    let record = saved.record().ok_or_else(|| {
        format!(
            "{}: the checkpoint holds no run record: --resume needs a checkpoint written by \
             `flowzoo train`",
            path.display()
        )
    })?;
    if record.flow == FlowName::Iaf {
        return Err(format!(
            "{}: an IAF run (reverse KL) does not resume; train it again with more --steps",
            path.display()
        ));
    }
    let mut config = RunConfig::of_record(record, args.steps)
        .map_err(|e| format!("{}: its data: {e}", path.display()))?;
    config.eval_every = args.eval_every;
    if saved.checkpoint.optimizer.is_none() {
        eprintln!(
            "note: {} holds no optimiser state: Adam starts afresh",
            path.display()
        );
    }
    let mut adam = saved.optimizer(config.lr);
    if let Some(lr) = args.lr {
        adam.lr = lr;
    }
    config.lr = adam.lr;
    let config = with_options(&args, config)?;
    train_run(&args, config, Some((saved.checkpoint.model, adam)))
}

/// `config` with the training options of the flags (not stored in a
/// checkpoint: give them again with --resume).
fn with_options(args: &TrainArgs, config: RunConfig) -> Result<RunConfig, String> {
    let schedule = match &args.schedule {
        Some(text) => text.parse().map_err(|e| format!("--schedule: {e}"))?,
        None => config.schedule,
    };
    if args.minutes.is_some() && schedule != Schedule::Constant {
        eprintln!(
            "note: the schedule spans --steps ({}); --minutes ends the run where the time \
             runs out, wherever the schedule is then: set --steps to the steps the time allows",
            config.steps
        );
    }
    Ok(RunConfig {
        schedule,
        clip_norm: args.clip_norm.or(config.clip_norm),
        weight_decay: args.weight_decay.unwrap_or(config.weight_decay),
        patience: args.patience.or(config.patience),
        time_limit: match args.minutes {
            Some(m) if m > 0.0 && m.is_finite() => Some(60.0 * m),
            Some(m) => return Err(format!("--minutes: must be a positive number, got {m}")),
            None => config.time_limit,
        },
        ..config
    })
}

/// Trains `config` (from `start` when resuming), saving model.flowzoo in
/// the output folder whenever the model is worth keeping, then reports.
fn train_run(
    args: &TrainArgs,
    config: RunConfig,
    start: Option<(FlowModel<f32>, Adam<f32>)>,
) -> Result<(), String> {
    let out = args.out.clone().unwrap_or_else(|| {
        let name = match &config.dataset {
            Dataset::Table(user) => user
                .path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "table".into()),
            other => other.name().into(),
        };
        Path::new("runs").join(name)
    });
    let existed = out.exists();
    std::fs::create_dir_all(&out)
        .map_err(|e| format!("{}: cannot create the output folder: {e}", out.display()))?;
    // A terminal gets the bar; a pipe or a file gets one line per check.
    let lines = !args.quiet && !std::io::stderr().is_terminal();
    let bar = progress_bar(args.quiet || lines, config.steps, "");
    let mut log = match &args.log_json {
        Some(path) => Some(log::JsonLog::open(path)?),
        None => None,
    };
    let model_path = out.join(MODEL_FILE);
    let resumed_step = start.as_ref().map(|(_, adam)| adam.steps());
    let mut saved_step: Option<usize> = None;
    let mut save_error: Option<String> = None;
    let result = run_from(
        &config,
        start,
        |step, loss| {
            if step % 10 == 0 || step == config.steps {
                bar.set_position(step as u64);
                bar.set_message(format!("loss {loss:.4} nats"));
            }
        },
        |check, model, adam| {
            if lines {
                eprintln!("{}", log::line(check, config.steps, resumed_step));
            }
            if let Some(json) = log.as_mut() {
                if let Err(e) = json.append(check) {
                    // The log is a convenience: the run and its checkpoints go on.
                    eprintln!("warning: {e}; no more log lines will be written there");
                    log = None;
                }
            }
            if save_error.is_some() || !check.keep {
                return;
            }
            match save_run(&model_path, &config, model, adam, check.step) {
                Ok(()) => saved_step = Some(check.step),
                Err(e) => save_error = Some(e.to_string()),
            }
        },
    );
    bar.finish_and_clear();
    if let Some(e) = save_error {
        return Err(e);
    }
    let kept = match (saved_step, resumed_step, &args.resume) {
        (Some(step), _, _) => format!(
            "the last good checkpoint, of step {step}, is {}",
            model_path.display()
        ),
        (None, Some(step), Some(path)) => format!(
            "no checkpoint was saved since the one resumed from, {} (step {step})",
            path.display()
        ),
        _ => format!("no checkpoint was written to {}", model_path.display()),
    };
    let result = match result {
        Ok(result) => result,
        Err(e) => {
            let message = format!("{e}; {kept}");
            failed(&config, &out, existed, saved_step, &message);
            return Err(message);
        }
    };
    if saved_step.is_none() {
        eprintln!("warning: the model was never finite at a check point: {kept}");
    }
    report(&config, &result, &out, args.resume.as_deref())
}

/// A progress bar over `steps` steps labelled `what` (hidden with `--quiet`).
pub fn progress_bar(quiet: bool, steps: usize, what: &str) -> ProgressBar {
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(steps as u64)
    };
    let label = if what.is_empty() {
        String::new()
    } else {
        format!("{what} ")
    };
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{label}{{bar:40}} {{pos}}/{{len}} steps  {{msg}}  [{{elapsed_precise}} < {{eta_precise}}]"
        ))
        .expect("the template is valid"),
    );
    bar
}
