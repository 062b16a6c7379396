//! The checkpoint side of the tool: `flowzoo sample` and `flowzoo eval` on a
//! `model.flowzoo`, read through the library's `load_run`.

use crate::pictures;
use flowzoo::data::read_table;
use flowzoo::data::tabular::Table;
use flowzoo::flows::FlowModel;
use flowzoo::tensor::Tensor;
use flowzoo::train::condition::DIGIT_CLASSES;
use flowzoo::train::eval::{mean_nll, unit_cube_log_likelihood};
use flowzoo::train::run::{load_run, test_score, Dataset, SavedRun, TOY_TEST_POINTS};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The checkpoint `flowzoo train` writes in its output folder.
pub const MODEL_FILE: &str = "model.flowzoo";

#[derive(clap::Args)]
pub struct SampleArgs {
    /// The checkpoint (model.flowzoo from `flowzoo train`).
    #[arg(long)]
    model: PathBuf,
    /// Number of samples.
    #[arg(short = 'n', long = "num", default_value_t = 64)]
    n: usize,
    /// Temperature τ: samples x = f(τ·ε); 1 samples the model, below 1
    /// concentrates on typical samples.
    #[arg(long, default_value_t = 1.0)]
    temperature: f64,
    /// Seed of the latent draws (the same seed gives the same samples).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// The context of a conditional model, one row for every sample:
    /// comma-separated numbers, as many as the model's context columns in
    /// their training order and units (`--context 1.5,0.2`), or the one-hot
    /// class label of a model of the digits, MNIST or CIFAR-10 given the
    /// label (`--context 0,0,1,0,0,0,0,0,0,0` draws 2s, or CIFAR's birds).
    #[arg(long, allow_hyphen_values = true)]
    context: Option<String>,
    /// Output: .csv (one sample per row) or .png (a grid, for image
    /// models) [default: samples.png for images, samples.csv otherwise].
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct EvalArgs {
    /// The checkpoint (model.flowzoo from `flowzoo train`).
    #[arg(long)]
    model: PathBuf,
    /// Test data: digits (the embedded test split), a 2-D toy name (fresh
    /// points), or a .csv/.npy file of vectors in the training data's
    /// units [default: the data the model was trained on, if built in].
    #[arg(long)]
    data: Option<String>,
    /// The run seed whose test stream draws the dequantisation noise or the
    /// toy test points (and splits a table) [default: the checkpoint's, so
    /// eval repeats metrics.json's test numbers].
    #[arg(long)]
    seed: Option<u64>,
}

/// Writes rows of `values` (`[rows, columns.len()]`) as CSV under a header
/// of `columns`, atomically. Each number is printed in Rust's shortest form
/// that reads back to the same f64.
pub fn write_csv(path: &Path, columns: &[String], values: &[f64]) -> Result<(), String> {
    let mut text = columns.join(",") + "\n";
    for row in values.chunks(columns.len().max(1)) {
        let fields: Vec<String> = row.iter().map(|v| format!("{v}")).collect();
        writeln!(text, "{}", fields.join(",")).expect("writing to a String");
    }
    pictures::write_atomically(path, text.as_bytes())
}

/// The names of a conditional model's context columns, from its run
/// record (`None` for an unconditional model or the digits' label).
pub fn context_columns(saved: &SavedRun) -> Option<Vec<String>> {
    match saved.record()?.context.as_deref()? {
        "label" => None,
        names => Some(names.split(',').map(str::to_string).collect()),
    }
}

/// `flowzoo sample`: draws samples from a checkpoint and writes them.
pub fn sample(args: SampleArgs) -> Result<(), String> {
    let saved = load_run(&args.model).map_err(|e| e.to_string())?;
    if !(args.temperature.is_finite() && args.temperature >= 0.0) {
        return Err(format!(
            "--temperature must be a non-negative number, got {}",
            args.temperature
        ));
    }
    let image = saved.image_shape();
    let out = args.out.unwrap_or_else(|| {
        PathBuf::from(if image.is_some() {
            "samples.png"
        } else {
            "samples.csv"
        })
    });
    let model = &saved.checkpoint.model;
    let mut rng = StdRng::seed_from_u64(args.seed);
    let context = match (&args.context, model.context_dim()) {
        (None, 0) => None,
        (None, width) => {
            let names = context_columns(&saved)
                .map(|names| format!(" (columns {})", names.join(", ")))
                .unwrap_or_else(|| " (the one-hot class label)".into());
            return Err(format!(
                "{}: the model is conditional: give --context with {width} comma-separated \
                 numbers{names}",
                args.model.display()
            ));
        }
        (Some(text), _) => Some(crate::conditional::parse_context(text)?),
    };
    let samples = model
        .sample_given(args.n, args.temperature, context.as_ref(), &mut rng)
        .map_err(|e| format!("--context: {e}"))?
        .to_f64_vec();
    let png = out
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("png"));
    if png {
        let Some(shape) = image else {
            return Err(format!(
                "{}: a PNG grid needs a model of images; this model draws \
                 {}-D vectors: write a .csv instead",
                out.display(),
                model.dim()
            ));
        };
        if shape.iter().product::<usize>() != model.dim() {
            return Err(format!(
                "{}: image shape {shape:?} does not match the model's {} dimensions",
                args.model.display(),
                model.dim()
            ));
        }
        let columns = (args.n as f64).sqrt().ceil().max(1.0) as usize;
        let clamped: Vec<f64> = samples.iter().map(|v| v.clamp(0.0, 1.0)).collect();
        let caption = format!(
            "{} samples, temperature {}, seed {}",
            args.n, args.temperature, args.seed
        );
        pictures::image_grid(&out, &clamped, shape, columns, &caption)?;
    } else {
        let names: Vec<String> = match saved.record().and_then(|r| r.columns.clone()) {
            Some(names) if names.len() == model.dim() => names,
            _ => (0..model.dim()).map(|j| format!("x{j}")).collect(),
        };
        write_csv(&out, &names, &samples)?;
    }
    outln!(
        "wrote {} samples at temperature {} to {}",
        args.n,
        args.temperature,
        out.display()
    );
    Ok(())
}

/// The test vectors of a table file, in the column order the model was
/// trained on (the `columns` metadata), `[rows, dim]`; for a conditional
/// model each row `[x | c]`, its context columns found by the names the
/// run record keeps (`[rows, dim + context_dim]`).
pub fn table_tensor(path: &str, saved: &SavedRun) -> Result<Tensor<f32>, String> {
    let table: Table = read_table(path).map_err(|e| e.to_string())?;
    let model = &saved.checkpoint.model;
    let dim = model.dim() + model.context_dim();
    let context = context_columns(saved);
    let names: Option<Vec<String>> = saved.record().and_then(|r| r.columns.clone()).map(|x| {
        x.into_iter()
            .chain(context.clone().unwrap_or_default())
            .collect()
    });
    let by_name = path.to_ascii_lowercase().ends_with(".csv") || context.is_some();
    let order: Vec<usize> = match names.as_ref() {
        Some(names) if by_name => names
            .iter()
            .map(|name| {
                table.columns.iter().position(|c| c == name).ok_or_else(|| {
                    format!("{path}: the model was trained on a column \"{name}\" the file lacks")
                })
            })
            .collect::<Result<_, _>>()?,
        _ => (0..table.dim()).collect(),
    };
    if order.len() != dim {
        return Err(format!(
            "{path}: {} columns, the model takes {dim}{}",
            order.len(),
            match model.context_dim() {
                0 => String::new(),
                k => format!(" ({} and a context of {k})", model.dim()),
            }
        ));
    }
    let mut data = Vec::with_capacity(table.rows * dim);
    for i in 0..table.rows {
        let row = table.row(i);
        data.extend(order.iter().map(|&j| row[j]));
    }
    Ok(Tensor::from_f64_slice(&data, &[table.rows, dim]))
}

/// `flowzoo eval`: test NLL (and bits/dim for discrete data) of a checkpoint:
/// on the run's own test split by default (through the library's
/// `test_score`, which `flowzoo train` reports), or on the rows of a file.
pub fn eval(args: EvalArgs) -> Result<(), String> {
    let saved = load_run(&args.model).map_err(|e| e.to_string())?;
    let model: &FlowModel<f32> = &saved.checkpoint.model;
    let seed = args.seed.unwrap_or_else(|| saved.seed());
    let dim = model.dim();
    let data = match args.data {
        Some(d) => d,
        None => saved
            .record()
            .map(|r| r.data.clone())
            .filter(|d| !d.is_empty())
            .ok_or_else(|| "--data is needed: the checkpoint does not name its data".to_string())?,
    };
    let lower = data.to_ascii_lowercase();
    let is_file = lower.ends_with(".csv") || lower.ends_with(".npy");
    let own_table = saved.record().is_some_and(|r| r.data == data);
    if is_file && !own_table {
        // Another file: every row is scored.
        let x = table_tensor(&data, &saved)?;
        let nll = mean_nll(model, &x);
        outln!(
            "{data}: test NLL {nll:.4} nats per sample ({:.4} nats/dim) over {} rows, in the data's units",
            nll / dim as f64,
            x.dim(0)
        );
        return Ok(());
    }
    let mut dataset: Dataset = data.parse().map_err(|e: flowzoo::Error| e.to_string())?;
    if let (Dataset::Table(user), Some(names)) = (&dataset, context_columns(&saved)) {
        // The run's own table, its context columns moved to the end as in training.
        let moved = user
            .with_context_columns(&names)
            .map_err(|e| e.to_string())?;
        dataset = Dataset::Table(std::sync::Arc::new(moved));
    }
    let images = matches!(dataset, Dataset::Digits | Dataset::Images(_));
    if model.context_dim() > 0 && images && model.context_dim() != DIGIT_CLASSES {
        return Err(format!(
            "{}: a model of {} given a context of width {} (the label is {DIGIT_CLASSES} wide)",
            args.model.display(),
            dataset.name(),
            model.context_dim()
        ));
    }
    if model.context_dim() > 0 && matches!(dataset, Dataset::Toy(_)) {
        return Err(format!(
            "{}: the model is conditional; fresh 2-D points have no context",
            args.model.display()
        ));
    }
    if dataset.dim() != dim {
        return Err(format!(
            "the model takes {dim} dimensions, {} has {}",
            dataset.name(),
            dataset.dim()
        ));
    }
    let score = test_score(model, &dataset, seed, TOY_TEST_POINTS);
    match &dataset {
        Dataset::Digits | Dataset::Images(_) => outln!(
            "{} test split: NLL {:.4} nats per image, {:.4} bits/dim over {} images{}{}",
            dataset.name(),
            score.nll_nats,
            score.bits_per_dim.expect("the digits are discrete"),
            score.samples,
            match score.accuracy {
                Some(a) => format!(" given their labels; Bayes-rule accuracy {:.2} %", 100.0 * a),
                None => String::new(),
            },
            match unit_cube_nats(&dataset, model.context_dim() > 0, score.nll_nats) {
                Some(nats) => format!("; log-likelihood {nats:.1} nats on [0,1]^D"),
                None => String::new(),
            },
        ),
        Dataset::Toy(toy) => outln!(
            "{}: test NLL {:.4} nats per sample over {} fresh points",
            toy.name(),
            score.nll_nats,
            score.samples
        ),
        Dataset::Table(_) => outln!(
            "{data}: test NLL {:.4} nats per sample ({:.4} nats/dim) over the run's {} held-out rows, in the data's units",
            score.nll_nats,
            score.nll_nats / dim as f64,
            score.samples
        ),
    }
    Ok(())
}

/// NICE's units for image data: the test log-likelihood of the dequantised
/// images as a density on [0, 1]^D, in nats per image (`None` for other
/// data, and for a conditional model, whose NLL is of p(x | c), not
/// comparable).
pub fn unit_cube_nats(dataset: &Dataset, conditional: bool, nll_nats: f64) -> Option<f64> {
    let images = dataset.images().filter(|_| !conditional)?;
    let levels = images.levels as usize;
    Some(unit_cube_log_likelihood(nll_nats, dataset.dim(), levels))
}
