//! [`run`]: one whole experiment, data to metrics, as the command-line tool
//! runs it: build the data and the model, train, evaluate on the test split.

use super::eval::{bits_per_dim, discrete_nll, mean_nll};
use super::fit::{fit, FitConfig, FitReport};
use crate::data::batch::{gather_rows, Batcher};
use crate::data::digits;
use crate::data::preprocess::{Dequantize, Logit};
use crate::data::toy2d::Toy2d;
use crate::error::{Error, TrainError};
use crate::flows::model::realnvp_layers;
use crate::flows::{Flow, FlowModel, Sequential};
use crate::tensor::Tensor;
use rand::rngs::StdRng;
use rand::SeedableRng;

/// The logit margin α of the digits' preprocessing (RealNVP §4.1; RESULTS.md).
pub const DIGITS_ALPHA: f64 = 0.05;

/// Where the training data comes from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Dataset {
    /// A 2-D toy density: a fresh batch every step, tested on fresh points.
    Toy(Toy2d),
    /// The embedded UCI 8x8 digits as 64-D vectors, dequantised and
    /// logit-transformed; validation = the last 383 training images.
    Digits,
}

impl std::str::FromStr for Dataset {
    type Err = Error;
    fn from_str(name: &str) -> Result<Self, Error> {
        if name == "digits" {
            Ok(Dataset::Digits)
        } else {
            Ok(Dataset::Toy(name.parse::<Toy2d>()?))
        }
    }
}

impl Dataset {
    /// The name the command line uses.
    pub fn name(&self) -> &'static str {
        match self {
            Dataset::Toy(t) => t.name(),
            Dataset::Digits => "digits",
        }
    }

    /// The dimension of one sample.
    pub fn dim(&self) -> usize {
        match self {
            Dataset::Toy(_) => 2,
            Dataset::Digits => digits::SIDE * digits::SIDE,
        }
    }
}

/// The settings of one experiment (the command line's flags).
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// The data.
    pub dataset: Dataset,
    /// Coupling layers.
    pub layers: usize,
    /// Hidden width of each coupling network (two hidden layers).
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

/// Builds the model for `config`: RealNVP on the data's dimension, plus the
/// logit layer at the data end for the digits.
pub fn build_model(config: &RunConfig) -> FlowModel<f32> {
    let dim = config.dataset.dim();
    let mut rng = StdRng::seed_from_u64(config.seed);
    let mut layers = realnvp_layers::<f32, _>(dim, config.layers, config.hidden, &mut rng);
    if config.dataset == Dataset::Digits {
        layers.push(Box::new(Logit::new(dim, DIGITS_ALPHA)) as Box<dyn Flow<f32>>);
    }
    FlowModel::new(dim, Sequential::new(layers))
}

/// Runs one experiment: trains a RealNVP on `config.dataset` and evaluates it
/// on the test split, calling `on_step(step, loss)` after every step.
///
/// # Errors
/// [`TrainError::BadArgument`] for a zero batch, layer count or width;
/// [`TrainError::Diverged`] if training diverges.
pub fn run(config: &RunConfig, on_step: impl FnMut(usize, f64) + Send) -> Result<RunResult, Error> {
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
    let mut model = build_model(config);
    let fit_config = FitConfig {
        steps: config.steps,
        lr: config.lr,
        // A stream apart from the initialisation's.
        seed: config.seed.wrapping_add(1),
        eval_every: config.eval_every,
    };
    match config.dataset {
        Dataset::Toy(toy) => {
            let batch = config.batch;
            let report = fit(
                &mut model,
                &fit_config,
                |_, rng| Tensor::from_f64_slice(&toy.sample(batch, rng), &[batch, 2]),
                None,
                on_step,
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
            let report = fit(
                &mut model,
                &fit_config,
                next_batch,
                Some(&mut validate),
                on_step,
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
    }
}
