//! [`run`]: one whole experiment, data to metrics, as the command-line tool
//! runs it: build the data and the model, train, evaluate on the test split.
//! [`run_from`] does the same from a checkpoint's model and optimiser, and
//! hands the model to a callback whenever it is worth saving.

use super::eval::{bits_per_dim, discrete_nll, mean_nll};
use super::fit::{fit_with, FitConfig, FitReport};
use crate::data::batch::{gather_rows, Batcher};
use crate::data::digits;
use crate::data::tabular::{read_table, Table};
use crate::data::toy2d::Toy2d;
use crate::error::{DataError, Error, TrainError};
use crate::flows::architectures::{
    glow_layers, glow_vector_layers, nice_layers, realnvp_image_layers, GlowConfig, NiceConfig,
    RealNvpImageConfig,
};
use crate::flows::autoregressive::maf_layers;
use crate::flows::model::realnvp_layers;
use crate::flows::preprocess::{Dequantize, Logit};
use crate::flows::prior::{Logistic, Prior, StandardNormal};
use crate::flows::standardize::Standardize;
use crate::flows::{Flow, FlowModel, Sequential};
use crate::nn::Adam;
use crate::tensor::Tensor;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::path::PathBuf;
use std::sync::Arc;

/// The logit margin α of the digits' preprocessing (RealNVP §4.1; RESULTS.md).
pub const DIGITS_ALPHA: f64 = 0.05;

/// Where the training data comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum Dataset {
    /// A 2-D toy density: a fresh batch every step, tested on fresh points.
    Toy(Toy2d),
    /// The embedded UCI 8x8 digits as 64-D vectors, dequantised and
    /// logit-transformed; validation = the last 383 training images.
    Digits,
    /// The user's own vectors from a `.csv` or `.npy` file: a seeded split
    /// into training and test rows ([`UserTable::split`]); the model ends
    /// in a [`Standardize`] layer fitted to the training rows, so densities
    /// are in the data's units.
    Table(Arc<UserTable>),
}

/// A table of vectors read from the user's file.
#[derive(Debug, PartialEq)]
pub struct UserTable {
    /// The file it was read from.
    pub path: PathBuf,
    /// Its rows (the readers have checked that every value is finite).
    pub table: Table,
}

/// The share of a user's table held out as the test split.
pub const TABLE_TEST_FRACTION: f64 = 0.1;

impl UserTable {
    /// Reads `path` (`.npy`, else CSV; see [`read_table`]).
    ///
    /// # Errors
    /// As [`read_table`] (ragged rows, non-numbers, NaN or infinity are
    /// rejected, naming the row and column); [`DataError::Mismatch`] for
    /// fewer than 2 rows (nothing to split into training and test).
    pub fn read(path: impl Into<PathBuf>) -> Result<Self, DataError> {
        let path = path.into();
        let table = read_table(&path)?;
        if table.rows < 2 {
            return Err(DataError::Mismatch {
                what: format!(
                    "{}: {} rows: at least 2 are needed, for a training and a test split",
                    path.display(),
                    table.rows
                ),
            });
        }
        Ok(UserTable { path, table })
    }

    /// The (training, test) rows: the rows in an order shuffled by a
    /// `StdRng` seeded from `seed`, the last ⌈n·[`TABLE_TEST_FRACTION`]⌉
    /// (at least 1, at most n − 1) held out for test. The same seed gives
    /// the same split, so a resumed run and `flowzoo eval` see it again.
    pub fn split(&self, seed: u64) -> (Table, Table) {
        let n = self.table.rows;
        let test_rows = ((n as f64 * TABLE_TEST_FRACTION).ceil() as usize).clamp(1, n - 1);
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut StdRng::seed_from_u64(seed));
        let (train, test) = order.split_at(n - test_rows);
        let rows = |indices: &[usize]| Table {
            data: gather_rows(&self.table.data, self.table.dim(), indices),
            rows: indices.len(),
            columns: self.table.columns.clone(),
        };
        (rows(train), rows(test))
    }
}

impl std::str::FromStr for Dataset {
    type Err = Error;
    /// `digits`, a toy name, or a path ending in `.csv` or `.npy` (read at
    /// once, see [`UserTable::read`]).
    fn from_str(name: &str) -> Result<Self, Error> {
        let lower = name.to_ascii_lowercase();
        if name == "digits" {
            Ok(Dataset::Digits)
        } else if lower.ends_with(".csv") || lower.ends_with(".npy") {
            Ok(Dataset::Table(Arc::new(UserTable::read(name)?)))
        } else {
            Ok(Dataset::Toy(name.parse::<Toy2d>()?))
        }
    }
}

impl Dataset {
    /// The name the command line uses (`table` for a user's file).
    pub fn name(&self) -> &'static str {
        match self {
            Dataset::Toy(t) => t.name(),
            Dataset::Digits => "digits",
            Dataset::Table(_) => "table",
        }
    }

    /// The dimension of one sample.
    pub fn dim(&self) -> usize {
        match self {
            Dataset::Toy(_) => 2,
            Dataset::Digits => digits::SIDE * digits::SIDE,
            Dataset::Table(user) => user.table.dim(),
        }
    }
}

/// The architecture trained by [`run`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FlowKind {
    /// Affine couplings over alternating halves (RealNVP, arXiv:1605.08803).
    #[default]
    RealNvp,
    /// MAF layers, order reversed between layers (arXiv:1705.07057): each a
    /// MADE with two hidden layers of width `hidden`.
    Maf,
    /// NICE (arXiv:1410.8516): `layers` additive couplings over alternating
    /// features, MLPs of 4 hidden layers of width `hidden`, a diagonal
    /// rescaling, and the logistic prior. Vectors (2-D or the flat digits).
    Nice,
    /// The multi-scale RealNVP on images (arXiv:1605.08803, §3.6): 2 scales of
    /// `layers` checkerboard couplings, squeeze, `layers` channel-wise
    /// couplings and a factor-out, then `layers + 1` checkerboard couplings,
    /// each a ResNet of `hidden` channels and 1 residual block. Digits only
    /// (as `[batch, 1, 8, 8]` images).
    RealNvpImage,
    /// Glow (arXiv:1807.03039): on the digits, L = 2 levels of K = `layers`
    /// steps (ActNorm, LU 1×1 convolution, sigmoid-scale affine coupling with
    /// a network of `hidden` channels and 1 residual block), learned priors
    /// at the split; on 2-D data, K steps with the 1×1 convolution as a 2×2
    /// matrix and MLP couplings of width `hidden`. ActNorm is initialised
    /// from 512 training points before the first step.
    Glow,
}

impl FlowKind {
    /// The name the command line uses.
    pub fn name(&self) -> &'static str {
        match self {
            FlowKind::RealNvp => "realnvp",
            FlowKind::Maf => "maf",
            FlowKind::Nice => "nice",
            FlowKind::RealNvpImage => "realnvp-image",
            FlowKind::Glow => "glow",
        }
    }

    /// The default (layers, hidden) of the coupling family's flows on
    /// `dataset`, the sizes whose results the README reports; `None` for the
    /// flows whose defaults the command line sets itself.
    pub fn coupling_family_defaults(&self, dataset: &Dataset) -> Option<(usize, usize)> {
        let digits = *dataset == Dataset::Digits;
        match self {
            FlowKind::Nice => Some(if digits { (4, 256) } else { (4, 128) }),
            FlowKind::RealNvpImage => Some((3, 32)),
            FlowKind::Glow => Some(if digits { (4, 32) } else { (8, 128) }),
            FlowKind::RealNvp | FlowKind::Maf => None,
        }
    }
}

impl std::str::FromStr for FlowKind {
    type Err = TrainError;
    fn from_str(name: &str) -> Result<Self, TrainError> {
        match name {
            "realnvp" => Ok(FlowKind::RealNvp),
            "maf" => Ok(FlowKind::Maf),
            "nice" => Ok(FlowKind::Nice),
            "realnvp-image" => Ok(FlowKind::RealNvpImage),
            "glow" => Ok(FlowKind::Glow),
            _ => Err(TrainError::BadArgument {
                name: "flow".into(),
                message: format!(
                    "unknown flow '{name}': available: realnvp, maf, nice, realnvp-image, glow"
                ),
            }),
        }
    }
}

/// The settings of one experiment (the command line's flags).
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// The data.
    pub dataset: Dataset,
    /// The architecture.
    pub flow: FlowKind,
    /// Coupling layers (RealNVP) or MADEs (MAF).
    pub layers: usize,
    /// Hidden width of each coupling network or MADE (two hidden layers).
    pub hidden: usize,
    /// Optimisation steps.
    pub steps: usize,
    /// Batch size.
    pub batch: usize,
    /// Adam's learning rate.
    pub lr: f64,
    /// The seed of everything random: initialisation, batches, noise, test points.
    pub seed: u64,
    /// Validation every this many steps (digits).
    pub eval_every: usize,
    /// Fresh test points for 2-D data.
    pub test_size: usize,
}

impl Default for RunConfig {
    /// The setup of the quality bar: moons, 8 couplings of width 256, 5000
    /// steps of batch 256, Adam 1e-3, seed 0, validation every 100 steps,
    /// 20,000 test points.
    fn default() -> Self {
        RunConfig {
            dataset: Dataset::Toy(Toy2d::moons()),
            flow: FlowKind::RealNvp,
            layers: 8,
            hidden: 256,
            steps: 5000,
            batch: 256,
            lr: 1e-3,
            seed: 0,
            eval_every: 100,
            test_size: 20_000,
        }
    }
}

/// What an experiment produced.
pub struct RunResult {
    /// The trained model (f32), with the best-validation parameters for digits.
    pub model: FlowModel<f32>,
    /// The training loop's report.
    pub report: FitReport,
    /// Test NLL in nats per sample (of the discrete data for digits).
    pub test_nll_nats: f64,
    /// Test bits/dim (digits only).
    pub test_bits_per_dim: Option<f64>,
}

/// The shape the image flows see the digits as, `[1, 8, 8]`.
pub const DIGITS_IMAGE: [usize; 3] = [1, digits::SIDE, digits::SIDE];

/// Builds the model for `config`: the chosen flow on the data's dimension
/// (the digits as `[1, 8, 8]` images for the image flows), plus at the data
/// end the logit layer for the digits, or for a user's table the
/// [`Standardize`] layer of its training rows.
///
/// # Panics
/// For [`FlowKind::RealNvpImage`] on 2-D data ([`run`] rejects it first).
pub fn build_model(config: &RunConfig) -> FlowModel<f32> {
    let dim = config.dataset.dim();
    let mut rng = StdRng::seed_from_u64(config.seed);
    let digits = config.dataset == Dataset::Digits;
    let mut prior: Prior = StandardNormal::new(dim).into();
    let mut layers = match config.flow {
        FlowKind::RealNvp => realnvp_layers::<f32, _>(dim, config.layers, config.hidden, &mut rng),
        FlowKind::Maf => maf_layers::<f32, _>(
            dim,
            config.layers,
            &[config.hidden, config.hidden],
            &mut rng,
        ),
        FlowKind::Nice => {
            prior = Logistic::new(dim).into();
            let nice = NiceConfig {
                couplings: config.layers,
                hidden: config.hidden,
                ..NiceConfig::default()
            };
            nice_layers::<f32, _>(dim, nice, &mut rng)
        }
        FlowKind::RealNvpImage => {
            assert!(
                digits,
                "build_model: realnvp-image needs image data (digits)"
            );
            let realnvp = RealNvpImageConfig {
                checkerboard: config.layers,
                channel: config.layers,
                last: config.layers + 1,
                hidden: config.hidden,
                ..RealNvpImageConfig::default()
            };
            realnvp_image_layers::<f32, _>(DIGITS_IMAGE, realnvp, &mut rng)
        }
        FlowKind::Glow => {
            let glow = GlowConfig {
                steps: config.layers,
                hidden: config.hidden,
                ..GlowConfig::default()
            };
            if digits {
                glow_layers::<f32, _>(DIGITS_IMAGE, glow, &mut rng)
            } else {
                glow_vector_layers::<f32, _>(dim, glow, &mut rng)
            }
        }
    };
    match &config.dataset {
        Dataset::Digits => layers.push(Box::new(Logit::new(dim, DIGITS_ALPHA))),
        Dataset::Table(user) => {
            let (train, _) = user.split(config.seed);
            layers.push(Box::new(Standardize::fit(&train.data, train.dim())));
        }
        Dataset::Toy(_) => {}
    }
    FlowModel::with_prior(prior, Sequential::new(layers))
}

/// Points for ActNorm's data-dependent initialisation (Glow).
const INIT_POINTS: usize = 512;

/// Runs one experiment: trains `config.flow` on `config.dataset` and evaluates it
/// on the test split, calling `on_step(step, loss)` after every step.
///
/// # Errors
/// [`TrainError::BadArgument`] for a zero batch, layer count or width;
/// [`TrainError::Diverged`] if training diverges.
pub fn run(config: &RunConfig, on_step: impl FnMut(usize, f64) + Send) -> Result<RunResult, Error> {
    run_from(config, None, on_step, |_, _, _| {})
}

/// [`run`], with two additions for the command line's checkpoints.
///
/// `resume`: the model and Adam state of a checkpoint to continue from,
/// instead of a fresh [`build_model`] and `Adam::new`; training goes on from
/// step `adam.steps() + 1` to `config.steps` (see
/// [`fit_with`]), and ActNorm is not initialised again.
///
/// `on_check(step, model, adam)`: called whenever the model is worth
/// saving (see [`fit_with`]: at a validation point,
/// when the validation score improved, or without validation when the
/// model is still finite), so a run that diverges keeps its last good
/// checkpoint.
///
/// # Errors
/// As [`run`]; also [`TrainError::BadArgument`] if the resumed model's
/// dimension is not the data's, or it has taken `config.steps` steps already.
pub fn run_from(
    config: &RunConfig,
    resume: Option<(FlowModel<f32>, Adam<f32>)>,
    on_step: impl FnMut(usize, f64) + Send,
    on_check: impl FnMut(usize, &FlowModel<f32>, &Adam<f32>) + Send,
) -> Result<RunResult, Error> {
    for (name, value) in [
        ("batch", config.batch),
        ("layers", config.layers),
        ("hidden", config.hidden),
    ] {
        if value == 0 {
            return Err(TrainError::BadArgument {
                name: name.into(),
                message: "must be at least 1".into(),
            }
            .into());
        }
    }
    if config.flow == FlowKind::RealNvpImage && config.dataset != Dataset::Digits {
        return Err(TrainError::BadArgument {
            name: "flow".into(),
            message: "realnvp-image models images: use --data digits".into(),
        }
        .into());
    }
    let fresh = resume.is_none();
    let (mut model, mut adam) = match resume {
        Some((model, adam)) => (model, adam),
        None => (build_model(config), Adam::new(config.lr)),
    };
    if model.dim() != config.dataset.dim() {
        return Err(TrainError::BadArgument {
            name: "resume".into(),
            message: format!(
                "the checkpoint's model takes {} dimensions, the data has {}",
                model.dim(),
                config.dataset.dim()
            ),
        }
        .into());
    }
    let initialize_act_norm = fresh && config.flow == FlowKind::Glow;
    let fit_config = FitConfig {
        steps: config.steps,
        lr: config.lr,
        // A stream apart from the initialisation's.
        seed: config.seed.wrapping_add(1),
        eval_every: config.eval_every,
    };
    match &config.dataset {
        &Dataset::Toy(toy) => {
            let batch = config.batch;
            if initialize_act_norm {
                // ActNorm's data-dependent initialisation, on its own stream.
                let mut init_rng = StdRng::seed_from_u64(config.seed.wrapping_add(5));
                let points = toy.sample(INIT_POINTS, &mut init_rng);
                model
                    .flow
                    .initialize(&Tensor::from_f64_slice(&points, &[INIT_POINTS, 2]));
            }
            let report = fit_with(
                &mut model,
                &mut adam,
                &fit_config,
                |_, rng| Tensor::from_f64_slice(&toy.sample(batch, rng), &[batch, 2]),
                None,
                on_step,
                on_check,
            )?;
            let mut test_rng = StdRng::seed_from_u64(10_000 + config.seed);
            let test = Tensor::<f32>::from_f64_slice(
                &toy.sample(config.test_size, &mut test_rng),
                &[config.test_size, 2],
            );
            let test_nll_nats = mean_nll(&model, &test);
            Ok(RunResult {
                model,
                report,
                test_nll_nats,
                test_bits_per_dim: None,
            })
        }
        Dataset::Digits => {
            let dim = config.dataset.dim();
            let (train, validation) = digits::train().split_validation(digits::VALIDATION_LEN);
            let test = digits::test();
            let as_tensor =
                |d: &digits::Digits| Tensor::<f32>::from_f64_slice(&d.images_f64(), &[d.n, dim]);
            let (train_v, validation_v, test_v) =
                (train.images_f64(), as_tensor(&validation), as_tensor(&test));
            let dequantize = Dequantize::new(digits::LEVELS);
            if initialize_act_norm {
                // ActNorm's data-dependent initialisation on the first
                // INIT_POINTS training images, dequantised on their own stream.
                let mut init_rng = StdRng::seed_from_u64(config.seed.wrapping_add(5));
                let n = INIT_POINTS.min(train.n);
                let v = Tensor::<f32>::from_f64_slice(&train_v[..n * dim], &[n, dim]);
                model.flow.initialize(&dequantize.apply(&v, &mut init_rng));
            }
            let mut batcher = Batcher::new(train.n, config.batch, config.seed.wrapping_add(2));
            let next_batch = |_: usize, rng: &mut StdRng| {
                let rows = batcher.next_batch();
                let v = Tensor::<f32>::from_f64_slice(
                    &gather_rows(&train_v, dim, &rows),
                    &[rows.len(), dim],
                );
                dequantize.apply(&v, rng)
            };
            // One fixed noise draw for every validation check, so scores compare.
            let validation_seed = config.seed.wrapping_add(3);
            let mut validate = |m: &FlowModel<f32>| {
                let mut rng = StdRng::seed_from_u64(validation_seed);
                bits_per_dim(discrete_nll(m, &validation_v, dequantize, &mut rng), dim)
            };
            let report = fit_with(
                &mut model,
                &mut adam,
                &fit_config,
                next_batch,
                Some(&mut validate),
                on_step,
                on_check,
            )?;
            let mut test_rng = StdRng::seed_from_u64(10_000 + config.seed);
            let test_nll_nats = discrete_nll(&model, &test_v, dequantize, &mut test_rng);
            Ok(RunResult {
                model,
                report,
                test_nll_nats,
                test_bits_per_dim: Some(bits_per_dim(test_nll_nats, dim)),
            })
        }
        Dataset::Table(user) => {
            let (train, test) = user.split(config.seed);
            let dim = train.dim();
            if initialize_act_norm {
                // ActNorm sees the first training rows through Standardize.
                let n = INIT_POINTS.min(train.rows);
                model
                    .flow
                    .initialize(&Tensor::from_f64_slice(&train.data[..n * dim], &[n, dim]));
            }
            let mut batcher = Batcher::new(train.rows, config.batch, config.seed.wrapping_add(2));
            let next_batch = |_: usize, _: &mut StdRng| {
                let rows = batcher.next_batch();
                Tensor::from_f64_slice(&gather_rows(&train.data, dim, &rows), &[rows.len(), dim])
            };
            let report = fit_with(
                &mut model,
                &mut adam,
                &fit_config,
                next_batch,
                None,
                on_step,
                on_check,
            )?;
            let test_nll_nats = mean_nll(
                &model,
                &Tensor::<f32>::from_f64_slice(&test.data, &[test.rows, dim]),
            );
            Ok(RunResult {
                model,
                report,
                test_nll_nats,
                test_bits_per_dim: None,
            })
        }
    }
}
