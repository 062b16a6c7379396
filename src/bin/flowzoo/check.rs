//! `flowzoo check`: the finite-difference proofs of every layer, run on a
//! trained checkpoint at the points the data sends through it, one row per
//! layer, and the density's mass for 2-D models.

use crate::checkpoints::table_tensor;
use flowzoo::flows::check::{check_layers, CheckOptions, LayerCheck};
use flowzoo::flows::preprocess::Dequantize;
use flowzoo::tensor::Tensor;
use flowzoo::train::checkpoint::Checkpoint;
use flowzoo::train::run::{image_tensor, Dataset};
use flowzoo::train::sample::DensityGrid;
use flowzoo::train::seeds::Stream;
use std::path::PathBuf;

/// How far the 2-D density's mass on the plotted box may be from 1.
pub const MASS_TOLERANCE: f64 = 0.02;

#[derive(clap::Args)]
pub struct CheckArgs {
    /// The checkpoint (model.flowzoo from `flowzoo train`).
    #[arg(long)]
    model: PathBuf,
    /// The rows to check at: digits (test images), a 2-D toy name (fresh
    /// points) or a .csv/.npy file of vectors in the training data's units
    /// [default: the data the model was trained on].
    #[arg(long)]
    data: Option<String>,
    /// How many rows (each costs a finite-difference Jacobian per layer).
    #[arg(long, default_value_t = 8)]
    rows: usize,
}

/// The rows to check at, f64 `[rows, …]` in the data space.
fn rows(args: &CheckArgs, data: &str, dim: usize) -> Result<Tensor<f64>, String> {
    let saved = crate::checkpoints::load_unconditional(&args.model)?;
    let seed = saved.seed();
    let lower = data.to_ascii_lowercase();
    let x: Tensor<f64> = if lower.ends_with(".csv") || lower.ends_with(".npy") {
        table_tensor(data, &saved)?.cast()
    } else {
        match data.parse().map_err(|e: flowzoo::Error| e.to_string())? {
            Dataset::Toy(toy) => {
                let points = toy.sample(args.rows, &mut Stream::Test.rng(seed));
                Tensor::from_vec(points, &[args.rows, 2])
            }
            dataset @ (Dataset::Digits | Dataset::Images(_)) => {
                let images = dataset.images().expect("an image dataset");
                let v: Tensor<f64> = image_tensor(&images.test.head(args.rows)).cast();
                Dequantize::new(images.levels).apply(&v, &mut Stream::Test.rng(seed))
            }
            Dataset::Table(_) => unreachable!("a table is a file name"),
        }
    };
    if x.numel() / x.dim(0).max(1) != dim {
        return Err(format!(
            "{data}: rows of {} values, the model takes {dim}",
            x.numel() / x.dim(0).max(1)
        ));
    }
    let n = args.rows.min(x.dim(0));
    Ok(x.narrow(0, 0, n).contiguous())
}

/// `flowzoo check`: prints one row per layer and fails if any layer does.
pub fn check(args: CheckArgs) -> Result<(), String> {
    if !(1..=1000).contains(&args.rows) {
        return Err(format!(
            "--rows must be 1 to 1000 (each row costs a Jacobian per layer), got {}",
            args.rows
        ));
    }
    let checkpoint = Checkpoint::<f64>::load(&args.model).map_err(|e| e.to_string())?;
    let model = checkpoint.model;
    crate::checkpoints::refuse_conditional(&args.model, model.context_dim())?;
    let data = match &args.data {
        Some(d) => d.clone(),
        None => checkpoint
            .record
            .as_ref()
            .map(|r| r.data.clone())
            .filter(|d| !d.is_empty())
            .ok_or_else(|| "--data is needed: the checkpoint does not name its data".to_string())?,
    };
    let x = rows(&args, &data, model.dim())?;
    let options = CheckOptions::default();
    let checks = check_layers(&model.flow.layers, &x, options);
    println!(
        "{}: {} layers checked in f64 at {} rows of {data} (tolerances: inverse {:.0e}, \
         log-det {:.0e}, relative)",
        args.model.display(),
        checks.len(),
        x.dim(0),
        options.inverse_rtol,
        options.log_det_rtol
    );
    print!("{}", table(&checks));
    let mut failed: Vec<String> = checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| format!("layer {} ({})", place(c), c.name))
        .collect();
    if model.dim() == 2 {
        if let Ok(Dataset::Toy(toy)) = data.parse::<Dataset>() {
            // The plotted box widened by its own size on every side, so the
            // tails of a model still learning stay inside.
            let widen = |[a, b]: [f64; 2]| [a - (b - a), b + (b - a)];
            let (x_range, y_range) = toy.bounds();
            let (x_range, y_range) = (widen(x_range), widen(y_range));
            let mass = DensityGrid::new(&model, x_range, y_range, 512).mass();
            let ok = (mass - 1.0).abs() <= MASS_TOLERANCE;
            println!(
                "density mass on [{:.2}, {:.2}] x [{:.2}, {:.2}] (3 times the plotted box, \
                 512² cells): {mass:.4} {}",
                x_range[0],
                x_range[1],
                y_range[0],
                y_range[1],
                if ok { "ok" } else { "FAIL" }
            );
            if !ok {
                failed.push(format!("the density's mass {mass:.4}"));
            }
        }
    }
    if failed.is_empty() {
        println!("every layer passed");
        Ok(())
    } else {
        Err(format!("check failed: {}", failed.join(", ")))
    }
}

/// A layer's place, `3` or, nested, `0.3`.
fn place(c: &LayerCheck) -> String {
    let parts: Vec<String> = c.path.iter().map(|i| i.to_string()).collect();
    parts.join(".")
}

/// The rows of the report; kinds cut to 28 characters.
fn table(checks: &[LayerCheck]) -> String {
    let mut text = format!(
        "{:<7}{:<29}{:>10}{:>15}{:>12}{:>12}  verdict\n",
        "layer", "kind", "inverse", "log-det vs FD", "fwd vs inv", "triangular"
    );
    for c in checks {
        let triangular = c
            .triangularity_error
            .map_or("-".to_string(), |t| format!("{t:.1e}"));
        let kind: String = c.name.chars().take(28).collect();
        text += &format!(
            "{:<7}{:<29}{:>10.1e}{:>15.1e}{:>12.1e}{:>12}  {}\n",
            place(c),
            kind,
            c.inverse_error,
            c.log_det_error,
            c.direction_error,
            triangular,
            if c.passed { "ok" } else { "FAIL" }
        );
    }
    text
}
