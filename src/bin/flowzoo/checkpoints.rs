//! The checkpoint side of the tool: `flowzoo sample` and `flowzoo eval` on a
//! `model.flowzoo`, and the metadata `flowzoo train` stores with it.

use crate::pictures;
use flowzoo::data::digits;
use flowzoo::data::tabular::{read_table, Table};
use flowzoo::data::toy2d::Toy2d;
use flowzoo::flows::preprocess::Dequantize;
use flowzoo::flows::spec::SpecValue;
use flowzoo::flows::FlowModel;
use flowzoo::tensor::Tensor;
use flowzoo::train::checkpoint::Checkpoint;
use flowzoo::train::eval::{bits_per_dim, discrete_nll, mean_nll};
use flowzoo::train::run::{Dataset, FlowKind, RunConfig, DIGITS_IMAGE};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The checkpoint `flowzoo train` writes in its output folder.
pub const MODEL_FILE: &str = "model.flowzoo";

/// Fresh test points drawn for a 2-D toy density.
const TOY_TEST_POINTS: usize = 20_000;

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
    /// Seed of the dequantisation noise or the toy test points [default:
    /// the one `flowzoo train` tested with, so eval repeats metrics.json's
    /// test numbers].
    #[arg(long)]
    seed: Option<u64>,
}

/// Loads a checkpoint as the tool uses it (f32), naming the file on error.
pub fn load(path: &Path) -> Result<Checkpoint<f32>, String> {
    Checkpoint::<f32>::load(path).map_err(|e| e.to_string())
}

/// The seed of the test points (toy) or test dequantisation noise (digits)
/// of a run seeded `seed`, as `flowzoo::train::run::run` draws them.
fn test_seed(seed: u64) -> u64 {
    10_000 + seed
}

/// The facts `flowzoo train` stores with its checkpoint: what `sample`
/// and `eval` need (the data, the image shape, the dequantisation levels,
/// the test seed, the column names) and what `--resume` needs to rebuild
/// the run (flow, sizes, batch, seed). `data` is the `--data` argument.
pub fn run_metadata(config: &RunConfig, data: &str) -> Vec<(String, SpecValue)> {
    let mut metadata: Vec<(String, SpecValue)> = vec![
        ("data".into(), data.into()),
        ("flow".into(), config.flow.name().into()),
        ("layers".into(), config.layers.into()),
        ("hidden".into(), config.hidden.into()),
        ("batch".into(), config.batch.into()),
        ("seed".into(), SpecValue::Int(config.seed as i64)),
        (
            "test_seed".into(),
            SpecValue::Int(test_seed(config.seed) as i64),
        ),
    ];
    match &config.dataset {
        Dataset::Digits => {
            metadata.push(("image_shape".into(), DIGITS_IMAGE.to_vec().into()));
            metadata.push(("dequantize_levels".into(), (digits::LEVELS as usize).into()));
        }
        Dataset::Table(user) => {
            metadata.push(("columns".into(), user.table.columns.join(",").into()));
        }
        Dataset::Toy(_) => {}
    }
    metadata
}

/// The run a checkpoint of `flowzoo train` describes, for `--resume`.
pub struct RunSettings {
    pub data: String,
    pub flow: FlowKind,
    pub layers: usize,
    pub hidden: usize,
    pub batch: usize,
    pub seed: u64,
}

impl RunSettings {
    /// Reads the metadata [`run_metadata`] wrote; `path` names the file in errors.
    pub fn of(checkpoint: &Checkpoint<f32>, path: &Path) -> Result<Self, String> {
        let missing = |field: &str| {
            format!(
                "{}: metadata field `{field}` is missing or of the wrong type: \
                 --resume needs a checkpoint written by `flowzoo train`",
                path.display()
            )
        };
        let size = |field: &str| {
            meta_ints(checkpoint, field)
                .and_then(|v| v.first().copied())
                .ok_or_else(|| missing(field))
        };
        let flow = meta_str(checkpoint, "flow").ok_or_else(|| missing("flow"))?;
        Ok(RunSettings {
            data: meta_str(checkpoint, "data")
                .ok_or_else(|| missing("data"))?
                .to_string(),
            flow: flow
                .parse()
                .map_err(|e: flowzoo::error::TrainError| format!("{}: {e}", path.display()))?,
            layers: size("layers")?,
            hidden: size("hidden")?,
            batch: size("batch")?,
            seed: size("seed")? as u64,
        })
    }
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

fn meta_ints(checkpoint: &Checkpoint<f32>, name: &str) -> Option<Vec<usize>> {
    match checkpoint.meta(name)? {
        SpecValue::Ints(v) => v.iter().map(|&i| usize::try_from(i).ok()).collect(),
        SpecValue::Int(i) => usize::try_from(*i).ok().map(|i| vec![i]),
        _ => None,
    }
}

fn meta_str<'a>(checkpoint: &'a Checkpoint<f32>, name: &str) -> Option<&'a str> {
    match checkpoint.meta(name)? {
        SpecValue::Str(s) => Some(s),
        _ => None,
    }
}

/// `flowzoo sample`: draws samples from a checkpoint and writes them.
pub fn sample(args: SampleArgs) -> Result<(), String> {
    let checkpoint = load(&args.model)?;
    if !(args.temperature.is_finite() && args.temperature >= 0.0) {
        return Err(format!(
            "--temperature must be a non-negative number, got {}",
            args.temperature
        ));
    }
    let image = meta_ints(&checkpoint, "image_shape").filter(|s| s.len() == 3);
    let out = args.out.unwrap_or_else(|| {
        PathBuf::from(if image.is_some() {
            "samples.png"
        } else {
            "samples.csv"
        })
    });
    let model = &checkpoint.model;
    let mut rng = StdRng::seed_from_u64(args.seed);
    let samples = model
        .sample(args.n, args.temperature, &mut rng)
        .to_f64_vec();
    let png = out
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("png"));
    if png {
        let Some([1, height, width]) = image.as_deref().map(|s| [s[0], s[1], s[2]]) else {
            return Err(format!(
                "{}: a PNG grid needs a model of one-channel images; this model draws \
                 {}-D vectors: write a .csv instead",
                out.display(),
                model.dim()
            ));
        };
        if height != width || height * width != model.dim() {
            return Err(format!(
                "{}: image shape [1, {height}, {width}] does not match the model's {} dimensions",
                args.model.display(),
                model.dim()
            ));
        }
        let columns = (args.n as f64).sqrt().ceil().max(1.0) as usize;
        let clamped: Vec<f64> = samples.iter().map(|v| v.clamp(0.0, 1.0)).collect();
        pictures::digit_grid(&out, &clamped, height, columns)?;
    } else {
        let names: Vec<String> = match meta_str(&checkpoint, "columns") {
            Some(names) if names.split(',').count() == model.dim() => {
                names.split(',').map(str::to_string).collect()
            }
            _ => (0..model.dim()).map(|j| format!("x{j}")).collect(),
        };
        write_csv(&out, &names, &samples)?;
    }
    println!(
        "wrote {} samples at temperature {} to {}",
        args.n,
        args.temperature,
        out.display()
    );
    Ok(())
}

/// The test vectors of a table file, in the column order the model was
/// trained on (the `columns` metadata), `[rows, dim]`.
fn table_tensor(path: &str, checkpoint: &Checkpoint<f32>) -> Result<Tensor<f32>, String> {
    let table: Table = read_table(path).map_err(|e| e.to_string())?;
    let dim = checkpoint.model.dim();
    let order: Vec<usize> = match meta_str(checkpoint, "columns") {
        Some(names) if path.to_ascii_lowercase().ends_with(".csv") => names
            .split(',')
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
            "{path}: {} columns, the model takes {dim}",
            order.len()
        ));
    }
    let mut data = Vec::with_capacity(table.rows * dim);
    for i in 0..table.rows {
        let row = table.row(i);
        data.extend(order.iter().map(|&j| row[j]));
    }
    Ok(Tensor::from_f64_slice(&data, &[table.rows, dim]))
}

/// `flowzoo eval`: test NLL (and bits/dim for discrete data) of a checkpoint.
pub fn eval(args: EvalArgs) -> Result<(), String> {
    let checkpoint = load(&args.model)?;
    let model: &FlowModel<f32> = &checkpoint.model;
    let data = match args.data {
        Some(d) => d,
        None => meta_str(&checkpoint, "data")
            .map(str::to_string)
            .ok_or_else(|| "--data is needed: the checkpoint does not name its data".to_string())?,
    };
    let seed = args.seed.unwrap_or_else(|| {
        meta_ints(&checkpoint, "test_seed")
            .and_then(|v| v.first().copied())
            .map_or(0, |s| s as u64)
    });
    let mut rng = StdRng::seed_from_u64(seed);
    let dim = model.dim();
    let lower = data.to_ascii_lowercase();
    if lower.ends_with(".csv") || lower.ends_with(".npy") {
        let x = table_tensor(&data, &checkpoint)?;
        let nll = mean_nll(model, &x);
        println!(
            "{data}: test NLL {nll:.4} nats per sample ({:.4} nats/dim) over {} rows, in the data's units",
            nll / dim as f64,
            x.dim(0)
        );
    } else if data == "digits" {
        if dim != digits::SIDE * digits::SIDE {
            return Err(format!(
                "the model takes {dim} dimensions, the digits have 64"
            ));
        }
        let levels = meta_ints(&checkpoint, "dequantize_levels")
            .and_then(|v| v.first().copied())
            .unwrap_or(digits::LEVELS as usize);
        let test = digits::test();
        let v = Tensor::<f32>::from_f64_slice(&test.images_f64(), &[test.n, dim]);
        let nll = discrete_nll(model, &v, Dequantize::new(levels as u32), &mut rng);
        println!(
            "digits test split: NLL {nll:.4} nats per image, {:.4} bits/dim over {} images",
            bits_per_dim(nll, dim),
            test.n
        );
    } else {
        let toy: Toy2d = data
            .parse()
            .map_err(|e: flowzoo::error::DataError| e.to_string())?;
        if dim != 2 {
            return Err(format!("the model takes {dim} dimensions, {data} has 2"));
        }
        let points = toy.sample(TOY_TEST_POINTS, &mut rng);
        let x = Tensor::<f32>::from_f64_slice(&points, &[TOY_TEST_POINTS, 2]);
        let nll = mean_nll(model, &x);
        println!("{data}: test NLL {nll:.4} nats per sample over {TOY_TEST_POINTS} fresh points");
    }
    Ok(())
}
