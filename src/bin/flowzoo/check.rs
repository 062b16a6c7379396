//! `flowzoo check`: the finite-difference proofs of every layer, run on a
//! trained checkpoint at the points the data sends through it, one row per
//! layer, and the density's mass for 2-D models. A conditional model is
//! checked in x at each row's own context: an image's one-hot label, a
//! table row's context columns (through the model's embedding, if any).

use crate::checkpoints::{context_columns, table_tensor};
use flowzoo::autodiff::Tape;
use flowzoo::flows::check::{check_layers_given, CheckOptions, LayerCheck};
use flowzoo::flows::preprocess::Dequantize;
use flowzoo::tensor::Tensor;
use flowzoo::train::checkpoint::Checkpoint;
use flowzoo::train::condition::{one_hot, DIGIT_CLASSES};
use flowzoo::train::run::{image_tensor, load_run, Dataset, SavedRun};
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
    /// The rows to check at: digits, mnist:DIR or cifar10:DIR (test images,
    /// each given its label for a model given the label), a 2-D toy name
    /// (fresh points; unconditional models only) or a .csv/.npy file of
    /// vectors in the training data's units, with the context columns of a
    /// conditional model [default: the data the model was trained on].
    #[arg(long)]
    data: Option<String>,
    /// How many rows (each costs a finite-difference Jacobian per layer).
    #[arg(long, default_value_t = 8)]
    rows: usize,
}

/// The rows to check at, f64 `[rows, …]` in the data space, and for a
/// conditional model each row's context `[rows, context_dim]` with a
/// description of it for the header.
struct Rows {
    x: Tensor<f64>,
    context: Option<(Tensor<f64>, String)>,
}

/// The rows of `data` to check `model` at (`saved` is its checkpoint,
/// for a table's columns and the run's seed).
fn rows(args: &CheckArgs, data: &str, saved: &SavedRun) -> Result<Rows, String> {
    let model = &saved.checkpoint.model;
    let (dim, context_dim) = (model.dim(), model.context_dim());
    let seed = saved.seed();
    let lower = data.to_ascii_lowercase();
    let (x, context): (Tensor<f64>, _) = if lower.ends_with(".csv") || lower.ends_with(".npy") {
        // For a conditional model, each row [x | c], its context columns last.
        let rows: Tensor<f64> = table_tensor(data, saved)?.cast();
        let width = rows.dim(1);
        let context = (context_dim > 0).then(|| {
            let names = context_columns(saved).map_or_else(
                || format!("the last {context_dim} columns"),
                |names| format!("columns {}", names.join(", ")),
            );
            let c = rows
                .narrow(1, width - context_dim, context_dim)
                .contiguous();
            (
                c,
                format!("each row given its own context ({names} of the file)"),
            )
        });
        (rows.narrow(1, 0, width - context_dim).contiguous(), context)
    } else {
        match data.parse().map_err(|e: flowzoo::Error| e.to_string())? {
            Dataset::Toy(toy) => {
                if context_dim > 0 {
                    return Err(format!(
                        "{}: the model is conditional (it reads a context of width \
                         {context_dim}); fresh 2-D points have no context: give --data a \
                         .csv/.npy file with the context columns",
                        args.model.display()
                    ));
                }
                let points = toy.sample(args.rows, &mut Stream::Test.rng(seed));
                (Tensor::from_vec(points, &[args.rows, 2]), None)
            }
            dataset @ (Dataset::Digits | Dataset::Images(_)) => {
                let images = dataset.images().expect("an image dataset");
                let head = images.test.head(args.rows);
                let v: Tensor<f64> = image_tensor(&head).cast();
                let x = Dequantize::new(images.levels).apply(&v, &mut Stream::Test.rng(seed));
                let context = match context_dim {
                    0 => None,
                    DIGIT_CLASSES => {
                        // The header names the first 12 rows' classes.
                        let mut labels: Vec<String> =
                            head.labels.iter().take(12).map(u8::to_string).collect();
                        if head.labels.len() > 12 {
                            labels.push("…".into());
                        }
                        let c: Tensor<f64> = one_hot(&head.labels).cast();
                        let text = format!(
                            "each image given its own one-hot label (classes {})",
                            labels.join(", ")
                        );
                        Some((c, text))
                    }
                    k => {
                        return Err(format!(
                            "{}: a model of {} given a context of width {k} (the label is \
                             {DIGIT_CLASSES} wide)",
                            args.model.display(),
                            dataset.name()
                        ))
                    }
                };
                (x, context)
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
    Ok(Rows {
        x: x.narrow(0, 0, n).contiguous(),
        context: context.map(|(c, text)| (c.narrow(0, 0, n).contiguous(), text)),
    })
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
    let data = match &args.data {
        Some(d) => d.clone(),
        None => checkpoint
            .record
            .as_ref()
            .map(|r| r.data.clone())
            .filter(|d| !d.is_empty())
            .ok_or_else(|| "--data is needed: the checkpoint does not name its data".to_string())?,
    };
    let saved = load_run(&args.model).map_err(|e| e.to_string())?;
    let Rows { x, context } = rows(&args, &data, &saved)?;
    let options = CheckOptions::default();
    // The layers read the context's features: through the embedding, if any.
    let features = context.as_ref().map(|(c, _)| {
        let tape = Tape::no_grad();
        model
            .context_features(Some(&tape.constant(c.clone())))
            .expect("a context gives features")
            .into_value()
    });
    let checks = check_layers_given(&model.flow.layers, &x, features.as_ref(), options);
    let given = match (&context, model.embedding().is_some()) {
        (None, _) => String::new(),
        (Some((_, text)), false) => format!(", {text}"),
        (Some((_, text)), true) => format!(", {text} through the model's context embedding"),
    };
    outln!(
        "{}: {} layers checked in f64 at {} rows of {data}{given} (tolerances: inverse {:.0e}, \
         log-det {:.0e}, relative)",
        args.model.display(),
        checks.len(),
        x.dim(0),
        options.inverse_rtol,
        options.log_det_rtol
    );
    out!("{}", table(&checks));
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
            outln!(
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
        outln!("every layer passed");
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
