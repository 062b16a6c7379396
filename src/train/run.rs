//! [`run`]: one whole maximum-likelihood experiment, data to metrics, as the
//! command-line tool runs it: build the data and the zoo's model, train,
//! evaluate on the test split with [`test_score`]. [`run_from`] does the same
//! from a checkpoint's model and optimiser ([`load_run`] reads one back), and
//! hands the model to a callback whenever it is worth saving. Every random
//! draw comes from a named stream of [`Stream`].

use super::checkpoint::{AdamState, Checkpoint};
use super::condition::{context_standardizer, one_hot, Condition};
use super::eval::{bits_per_dim, mean_nll};
use super::fit::{fit_with, Check, FitConfig, FitReport, TrainOptions};
use super::record::RunRecord;
use super::seeds::Stream;
use crate::data::batch::{gather_rows, Batcher};
use crate::data::tabular::Table;
use crate::data::toy2d::Toy2d;
use crate::error::{Error, TrainError};
use crate::flows::preprocess::{Dequantize, Logit};
use crate::flows::standardize::Standardize;
use crate::flows::zoo::{BaseName, FlowName, Sizes};
use crate::flows::{FlowModel, Sequential};
use crate::nn::Adam;
use crate::tensor::Tensor;
use rand::rngs::StdRng;
use std::path::Path;

pub use super::dataset::{
    image_tensor, test_score, Dataset, ImageData, ImageKind, TestScore, UserTable, DIGITS_ALPHA,
    DIGITS_IMAGE, IMAGE_ALPHA, IMAGE_VALIDATION_LEN, TABLE_TEST_FRACTION, TOY_TEST_POINTS,
};
pub use super::schedule::Schedule;

/// The settings of one experiment (the command line's flags).
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// The data.
    pub dataset: Dataset,
    /// The architecture, from the [zoo](crate::flows::zoo).
    pub flow: FlowName,
    /// Its `layers` size (couplings, MADEs, steps per level).
    pub layers: usize,
    /// Its `hidden` size (network width or channels).
    pub hidden: usize,
    /// Optimisation steps.
    pub steps: usize,
    /// Batch size.
    pub batch: usize,
    /// The learning rate of a fresh Adam (a resumed run continues with the
    /// checkpoint's optimiser, whose rate this replaces).
    pub lr: f64,
    /// The seed of everything random: each stream of [`Stream`] derives from it.
    pub seed: u64,
    /// Validation every this many steps (digits, a user's table, and 2-D
    /// data with `patience`).
    pub eval_every: usize,
    /// Fresh test points for 2-D data.
    pub test_size: usize,
    /// How the learning rate varies from `lr` over the run.
    pub schedule: Schedule,
    /// Gradient-norm clipping ([`TrainOptions::clip_norm`]).
    pub clip_norm: Option<f64>,
    /// Decoupled weight decay ([`TrainOptions::weight_decay`]).
    pub weight_decay: f64,
    /// Early stopping after this many checks without a better validation
    /// score ([`TrainOptions::patience`]). On 2-D data it adds a validation
    /// set of [`TOY_VALIDATION_POINTS`] fresh points.
    pub patience: Option<usize>,
    /// Stop after this many seconds of training wall time
    /// ([`TrainOptions::time_limit`]); `None`: run every step.
    pub time_limit: Option<f64>,
    /// The base distribution, replacing the architecture's own (`None`:
    /// the architecture's, the standard normal but for NICE's logistic).
    pub base: Option<BaseName>,
    /// The context of a conditional run, p(x | c) (`None`: a density of
    /// the data, p(x)); set by [`RunConfig::with_condition`].
    pub condition: Option<Condition>,
}

/// The validation points of a 2-D run with early stopping.
pub const TOY_VALIDATION_POINTS: usize = 4096;

impl Default for RunConfig {
    /// The setup of the quality bar: moons, RealNVP at the zoo's sizes (8
    /// couplings of width 256), 5000 steps of batch 256, Adam 1e-3, seed 0,
    /// validation every 100 steps, 20,000 test points.
    fn default() -> Self {
        RunConfig::new(Dataset::Toy(Toy2d::moons()), FlowName::RealNvp)
            .expect("RealNVP models 2-D data")
    }
}

impl RunConfig {
    /// `flow` on `dataset` at the zoo's default sizes for that data, with the
    /// run defaults of [`RunConfig::default`].
    ///
    /// # Errors
    /// [`TrainError::BadArgument`] (`flow`) if the architecture does not
    /// model this data (the multi-scale RealNVP on vectors, say).
    pub fn new(dataset: Dataset, flow: FlowName) -> Result<Self, TrainError> {
        let sizes = flow
            .default_sizes(dataset.shape())
            .map_err(|e| TrainError::BadArgument {
                name: "flow".into(),
                message: e.to_string(),
            })?;
        Ok(RunConfig {
            dataset,
            flow,
            layers: sizes.layers,
            hidden: sizes.hidden,
            steps: 5000,
            batch: 256,
            lr: 1e-3,
            seed: 0,
            eval_every: 100,
            test_size: TOY_TEST_POINTS,
            schedule: Schedule::Constant,
            clip_norm: None,
            weight_decay: 0.0,
            patience: None,
            time_limit: None,
            base: None,
            condition: None,
        })
    }

    /// The same run, conditional: the images (the digits, an MNIST or
    /// CIFAR-10 folder) given their one-hot class label
    /// ([`Condition::Label`]), or a table's other columns given the
    /// context columns ([`Condition::Columns`], names or 0-based indices,
    /// moved to the end of each row by
    /// [`UserTable::with_context_columns`]; the condition stores their names).
    ///
    /// # Errors
    /// [`TrainError::BadArgument`] (`condition`) for a label on data other
    /// than images, or on a folder with a label outside 0..=9, columns on data other than a table, or the IAF;
    /// the [`DataError`](crate::error::DataError) of
    /// [`UserTable::with_context_columns`] for a column the file lacks.
    pub fn with_condition(mut self, condition: Condition) -> Result<Self, Error> {
        let bad = |message: String| -> Error {
            TrainError::BadArgument {
                name: "condition".into(),
                message,
            }
            .into()
        };
        if self.flow.entry().reverse_kl {
            return Err(bad(format!(
                "{} is a sampler trained by reverse KL and has no conditional form",
                self.flow.name()
            )));
        }
        let condition = match (&self.dataset, condition) {
            (Dataset::Digits, Condition::Label) => Condition::Label,
            (Dataset::Images(images), Condition::Label) => {
                images.check_labels().map_err(bad)?;
                Condition::Label
            }
            (Dataset::Table(user), Condition::Columns(names)) => {
                let moved = user.with_context_columns(&names)?;
                let names = moved.context_names().to_vec();
                self.dataset = Dataset::Table(std::sync::Arc::new(moved));
                Condition::Columns(names)
            }
            (_, Condition::Label) => {
                return Err(bad(
                    "the label is a context of the image sets (digits, mnist, cifar10) only".into(),
                ))
            }
            (_, Condition::Columns(_)) => {
                return Err(bad(
                    "context columns are for a table of your own (.csv or .npy)".into(),
                ))
            }
        };
        self.condition = Some(condition);
        Ok(self)
    }

    /// The width of the context (0 for an unconditional run).
    pub fn context_dim(&self) -> usize {
        self.condition.as_ref().map_or(0, Condition::context_dim)
    }

    /// The architecture's sizes.
    pub fn sizes(&self) -> Sizes {
        Sizes {
            layers: self.layers,
            hidden: self.hidden,
        }
    }

    /// The record a checkpoint of this run stores, after `step` steps.
    pub fn record(&self, step: u64) -> RunRecord {
        RunRecord {
            data: self.dataset.argument(),
            flow: self.flow,
            layers: self.layers,
            hidden: self.hidden,
            batch: self.batch,
            seed: self.seed,
            step,
            target: None,
            columns: match &self.dataset {
                Dataset::Table(user) => Some(user.table.columns[..user.data_dim()].to_vec()),
                _ => None,
            },
            context: self.condition.as_ref().map(Condition::to_record),
        }
    }

    /// The run a checkpoint's record describes, continued to `steps` steps
    /// in all: its data, flow, sizes, batch and seed.
    ///
    /// # Errors
    /// As [`Dataset::from_str`](std::str::FromStr::from_str) for the record's data (a user's file that
    /// is gone, say).
    pub fn of_record(record: &RunRecord, steps: usize) -> Result<Self, Error> {
        let config = RunConfig {
            dataset: record.data.parse()?,
            flow: record.flow,
            layers: record.layers,
            hidden: record.hidden,
            steps,
            batch: record.batch,
            seed: record.seed,
            ..RunConfig::default()
        };
        match &record.context {
            Some(text) => config.with_condition(Condition::of_record(text)),
            None => Ok(config),
        }
    }
}

/// What an experiment produced.
pub struct RunResult {
    /// The trained model (f32), with the best-validation parameters when the
    /// run validates (digits, a table, 2-D data with early stopping).
    pub model: FlowModel<f32>,
    /// The training loop's report.
    pub report: FitReport,
    /// Test NLL in nats per sample (of the discrete data for digits).
    pub test_nll_nats: f64,
    /// Test bits/dim (images only).
    pub test_bits_per_dim: Option<f64>,
    /// Bayes-rule test accuracy (images given their label only).
    pub test_accuracy: Option<f64>,
}

/// Builds the model for `config`: the zoo's architecture on the data's
/// shape, plus at the data end the logit layer for the digits, or for a
/// user's table the [`Standardize`] layer of its training rows. A
/// conditional run's conditioners read the context
/// ([`FlowName::conditional_layers`]); a table's contexts go in
/// standardised by [`context_standardizer`] (the digits' one-hot labels as
/// they are).
///
/// # Errors
/// [`TrainError::BadArgument`] for a zero size or an architecture that
/// does not model the data.
pub fn build_model(config: &RunConfig) -> Result<FlowModel<f32>, TrainError> {
    let mut rng = Stream::Init.rng(config.seed);
    let context_dim = config.context_dim();
    let (zoo_prior, mut layers) = config
        .flow
        .conditional_layers::<f32, _>(
            config.dataset.shape(),
            config.sizes(),
            context_dim,
            &mut rng,
        )
        .map_err(|e| TrainError::BadArgument {
            name: "flow".into(),
            message: e.to_string(),
        })?;
    let mut embedding = None;
    match &config.dataset {
        Dataset::Digits | Dataset::Images(_) => {
            let alpha = config.dataset.images().expect("an image dataset").alpha;
            layers.push(Box::new(Logit::new(config.dataset.dim(), alpha)))
        }
        Dataset::Table(user) => {
            // The statistics of the rows trained on (not the validation rows).
            let (train, _) = hold_out_validation(user.split(config.seed).0);
            let dim = user.data_dim();
            if context_dim == 0 {
                layers.push(Box::new(Standardize::fit(&train.data, train.dim())));
            } else {
                // Only the modelled columns [..dim] of each row [x | c].
                let x: Vec<f64> = train
                    .data
                    .chunks(train.dim())
                    .flat_map(|row| row[..dim].to_vec())
                    .collect();
                layers.push(Box::new(Standardize::fit(&x, dim)));
                embedding = Some(context_standardizer(&train.data, dim, context_dim));
            }
        }
        Dataset::Toy(_) => {}
    }
    let prior = match config.base {
        Some(base) => base.prior(config.dataset.dim()),
        None => zoo_prior,
    };
    let model = FlowModel::with_prior(prior, Sequential::new(layers));
    Ok(match embedding {
        Some(embedding) => model.with_embedding(embedding),
        None => model,
    })
}

/// The share of a user's training rows held out for validation (the
/// score early stopping and the kept parameters follow).
pub const TABLE_VALIDATION_FRACTION: f64 = 0.1;

/// Splits the validation rows off the end of a table's training rows
/// (already in shuffled order): ⌈n·[`TABLE_VALIDATION_FRACTION`]⌉ of
/// them, at least 1, leaving at least 1 to train on; with a single
/// training row, that row validates too.
fn hold_out_validation(train: Table) -> (Table, Tensor<f32>) {
    let (n, dim) = (train.rows, train.dim());
    let held = ((n as f64 * TABLE_VALIDATION_FRACTION).ceil() as usize).clamp(1, n.max(2) - 1);
    let keep = n.saturating_sub(held).max(1);
    let validation = Tensor::from_f64_slice(&train.data[(n - held) * dim..], &[held, dim]);
    let rows = Table {
        data: train.data[..keep * dim].to_vec(),
        rows: keep,
        columns: train.columns,
    };
    (rows, validation)
}

/// Points for the data-dependent initialisation (ActNorm's).
const INIT_POINTS: usize = 512;

type BatchFn = Box<dyn FnMut(usize, &mut StdRng) -> Tensor<f32> + Send>;
type ValidateFn = Box<dyn FnMut(&FlowModel<f32>) -> f64 + Send>;

/// What the training loop needs from a dataset: the batch that initialises
/// a fresh model, the training batches, and the validation score.
struct Feed {
    initial: Tensor<f32>,
    next_batch: BatchFn,
    validate: Option<ValidateFn>,
}

impl Feed {
    fn new(config: &RunConfig) -> Feed {
        let seed = config.seed;
        let batch = config.batch;
        let mut init_rng = Stream::Initialize.rng(seed);
        match &config.dataset {
            &Dataset::Toy(toy) => Feed {
                initial: Tensor::from_f64_slice(
                    &toy.sample(INIT_POINTS, &mut init_rng),
                    &[INIT_POINTS, 2],
                ),
                next_batch: Box::new(move |_, rng| {
                    Tensor::from_f64_slice(&toy.sample(batch, rng), &[batch, 2])
                }),
                // Fresh points are never overfitted: a validation set only
                // for early stopping, on its own stream.
                validate: config.patience.map(|_| {
                    let n = TOY_VALIDATION_POINTS;
                    let points = toy.sample(n, &mut Stream::Validation.rng(seed));
                    let points = Tensor::<f32>::from_f64_slice(&points, &[n, 2]);
                    Box::new(move |m: &FlowModel<f32>| mean_nll(m, &points)) as ValidateFn
                }),
            },
            Dataset::Digits | Dataset::Images(_) => {
                let dim = config.dataset.dim();
                let images = config.dataset.images().expect("an image dataset");
                let validation_v = image_tensor(&images.validation);
                let dequantize = Dequantize::new(images.levels);
                // Given the label: each row [x | one-hot label].
                let labelled = config.condition == Some(Condition::Label);
                let with_labels = move |x: Tensor<f32>, labels: &[u8]| match labelled {
                    true => Tensor::concat(&[&x, &one_hot(labels)], 1),
                    false => x,
                };
                // The first INIT_POINTS training images, dequantised on their own stream.
                let head = images.train.head(INIT_POINTS);
                let initial = with_labels(
                    dequantize.apply(&image_tensor(&head), &mut init_rng),
                    &head.labels,
                );
                let mut batcher = Batcher::new(images.train.n, batch, Stream::Batches.seed(seed));
                let validation_labels = images.validation.labels.clone();
                Feed {
                    initial,
                    next_batch: Box::new(move |_, rng| {
                        let rows = batcher.next_batch();
                        let pixels: Vec<f32> = gather_rows(&images.train.images, dim, &rows)
                            .into_iter()
                            .map(f32::from)
                            .collect();
                        let labels = gather_rows(&images.train.labels, 1, &rows);
                        let v = Tensor::from_vec(pixels, &[rows.len(), dim]);
                        with_labels(dequantize.apply(&v, rng), &labels)
                    }),
                    // One fixed noise draw for every check, so scores compare.
                    validate: Some(Box::new(move |m| {
                        let mut rng = Stream::Validation.rng(seed);
                        let x = with_labels(
                            dequantize.apply(&validation_v, &mut rng),
                            &validation_labels,
                        );
                        bits_per_dim(mean_nll(m, &x) - dequantize.log_det(dim), dim)
                    })),
                }
            }
            Dataset::Table(user) => {
                let (train, validation) = hold_out_validation(user.split(seed).0);
                // Rows [x | c] for a conditional run: the context columns last.
                let dim = train.dim();
                // The first training rows; the model's Standardize layer
                // standardises them on the way in.
                let n = INIT_POINTS.min(train.rows);
                let initial = Tensor::from_f64_slice(&train.data[..n * dim], &[n, dim]);
                let mut batcher = Batcher::new(train.rows, batch, Stream::Batches.seed(seed));
                Feed {
                    initial,
                    next_batch: Box::new(move |_, _| {
                        let rows = batcher.next_batch();
                        Tensor::from_f64_slice(
                            &gather_rows(&train.data, dim, &rows),
                            &[rows.len(), dim],
                        )
                    }),
                    validate: Some(Box::new(move |m| mean_nll(m, &validation))),
                }
            }
        }
    }
}

/// Runs one experiment: trains `config.flow` on `config.dataset` and evaluates it
/// on the test split, calling `on_step(step, loss)` after every step.
///
/// # Errors
/// [`TrainError::BadArgument`] for a zero batch, layer count or width, or
/// an architecture that does not model the data;
/// [`TrainError::Diverged`] if training diverges.
pub fn run(config: &RunConfig, on_step: impl FnMut(usize, f64) + Send) -> Result<RunResult, Error> {
    run_from(
        config,
        None,
        on_step,
        |_: &Check, _: &FlowModel<f32>, _: &Adam<f32>| {},
    )
}

/// [`run`], with two additions for the command line's checkpoints.
///
/// `resume`: the model and Adam state of a checkpoint to continue from,
/// instead of a fresh [`build_model`] and `Adam::new(config.lr)`; training
/// goes on from step `adam.steps() + 1` to `config.steps` (see
/// [`fit_with`]). A fresh model is initialised from a batch of data first
/// ([`Flow::initialize`](crate::flows::Flow::initialize): ActNorm's
/// data-dependent initialisation; the identity for layers without one); a
/// resumed one is not.
///
/// `on_check(check, model, adam)`: called at every check (see
/// [`fit_with`]), for logs; save a checkpoint when `check.keep` says the
/// model is worth it (the validation score improved, or without
/// validation the model is still finite), so a run that diverges keeps
/// its last good checkpoint.
///
/// # Errors
/// As [`run`]; also [`TrainError::BadArgument`] if the resumed model's
/// dimension is not the data's, or it has taken `config.steps` steps already.
pub fn run_from(
    config: &RunConfig,
    resume: Option<(FlowModel<f32>, Adam<f32>)>,
    on_step: impl FnMut(usize, f64) + Send,
    on_check: impl FnMut(&Check, &FlowModel<f32>, &Adam<f32>) + Send,
) -> Result<RunResult, Error> {
    if config.batch == 0 {
        return Err(TrainError::BadArgument {
            name: "batch".into(),
            message: "must be at least 1".into(),
        }
        .into());
    }
    let mut feed = Feed::new(config);
    let (mut model, mut adam) = match resume {
        Some((model, adam)) => (model, adam),
        None => {
            let mut model = build_model(config)?;
            model.initialize_batch(&feed.initial);
            (model, Adam::new(config.lr))
        }
    };
    if model.context_dim() != config.context_dim() {
        return Err(TrainError::BadArgument {
            name: "resume".into(),
            message: format!(
                "the checkpoint's model reads a context of width {}, the run has {}",
                model.context_dim(),
                config.context_dim()
            ),
        }
        .into());
    }
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
    let fit_config = FitConfig {
        steps: config.steps,
        seed: Stream::Fit.seed(config.seed),
        eval_every: config.eval_every,
        options: TrainOptions {
            schedule: config.schedule.of_run(adam.lr, config.steps),
            clip_norm: config.clip_norm,
            weight_decay: config.weight_decay,
            patience: config.patience,
            time_limit: config.time_limit,
        },
    };
    let validate = feed
        .validate
        .as_mut()
        .map(|v| &mut **v as &mut (dyn FnMut(&FlowModel<f32>) -> f64 + Send));
    let report = fit_with(
        &mut model,
        &mut adam,
        &fit_config,
        feed.next_batch,
        validate,
        on_step,
        on_check,
    )?;
    let score = test_score(&model, &config.dataset, config.seed, config.test_size);
    Ok(RunResult {
        model,
        report,
        test_nll_nats: score.nll_nats,
        test_bits_per_dim: score.bits_per_dim,
        test_accuracy: score.accuracy,
    })
}

/// A checkpoint read back for `--resume`, `flowzoo eval` and `flowzoo
/// sample`: the model, the optimiser state, and the run's record with what
/// follows from it.
pub struct SavedRun {
    /// The file's contents.
    pub checkpoint: Checkpoint<f32>,
}

impl SavedRun {
    /// The record of the run, if the file has one.
    pub fn record(&self) -> Option<&RunRecord> {
        self.checkpoint.record.as_ref()
    }

    /// The data the run was trained on (`None` for a model saved without a
    /// record, or an IAF fitted to an energy).
    ///
    /// # Errors
    /// As [`Dataset::from_str`](std::str::FromStr::from_str) (a user's file that is gone, say).
    pub fn dataset(&self) -> Result<Option<Dataset>, Error> {
        match self.record() {
            Some(record) if !record.data.is_empty() => Ok(Some(record.data.parse()?)),
            _ => Ok(None),
        }
    }

    /// The image shape its samples have, for image data (the digits, an
    /// MNIST or CIFAR-10 folder).
    pub fn image_shape(&self) -> Option<[usize; 3]> {
        match self.record() {
            Some(record) if record.data == "digits" => Some(DIGITS_IMAGE),
            // Square images of the folder's channels, sized by the model
            // (28x28 for MNIST itself; smaller for a test's own folder).
            Some(record) => {
                let channels = if record.data.starts_with("mnist:") {
                    1
                } else if record.data.starts_with("cifar10:") {
                    3
                } else {
                    return None;
                };
                let side = (self.checkpoint.model.dim() / channels).isqrt();
                (channels * side * side == self.checkpoint.model.dim())
                    .then_some([channels, side, side])
            }
            None => None,
        }
    }

    /// The run's seed (0 without a record).
    pub fn seed(&self) -> u64 {
        self.record().map_or(0, |r| r.seed)
    }

    /// The Adam that continues the run: the saved state, or a fresh
    /// `Adam::new(lr)` when the file holds none.
    pub fn optimizer(&self, lr: f64) -> Adam<f32> {
        match &self.checkpoint.optimizer {
            Some(state) => state.to_adam(),
            None => Adam::new(lr),
        }
    }
}

/// Reads the checkpoint at `path` with its run record: the one function
/// behind `--resume`, `flowzoo eval` and `flowzoo sample`.
///
/// # Errors
/// As [`Checkpoint::load`].
pub fn load_run(path: impl AsRef<Path>) -> Result<SavedRun, Error> {
    Ok(SavedRun {
        checkpoint: Checkpoint::load(path)?,
    })
}

/// The checkpoint of a run after `step` steps: the model, Adam's state and
/// the run's record, written to `path` atomically.
///
/// # Errors
/// As [`checkpoint::save`](super::checkpoint::save).
pub fn save_run(
    path: &Path,
    config: &RunConfig,
    model: &FlowModel<f32>,
    adam: &Adam<f32>,
    step: usize,
) -> Result<(), Error> {
    let record = config.record(step as u64);
    super::checkpoint::save(path, model, Some(&AdamState::of(adam)), Some(&record))?;
    Ok(())
}
