//! The IAF experiments of `flowzoo train --flow iaf`, as library functions:
//! an IAF fitted by reverse KL to one of the 2-D energies of Rezende and
//! Mohamed ([`fit_iaf_to_energy`]), or distilled from an MAF trained on a
//! 2-D data set ([`distill_iaf`]). The command line parses, calls these,
//! prints and draws; the numbers come from here.
//!
//! Derivation: [`derivations::iaf`](crate::derivations::iaf)
//! (docs/derivations/iaf.md).

use super::eval::mean_nll;
use super::fit::TrainOptions;
use super::record::RunRecord;
use super::reverse_kl::{
    distill, fit_reverse_kl_with, reverse_kl_estimate, ReverseKlConfig, ReverseKlReport, Teacher,
};
use super::run::{run, Dataset, RunConfig, RunResult};
use super::sample::DensityGrid;
use super::seeds::Stream;
use crate::data::energy::Energy;
use crate::data::toy2d::Toy2d;
use crate::error::{Error, TrainError};
use crate::flows::zoo::{DataShape, FlowName, Sizes};
use crate::flows::{FlowModel, Sequential};
use crate::tensor::Tensor;

/// Samples drawn to estimate a KL or a test NLL after training.
pub const EVAL_SAMPLES: usize = 20_000;

/// The settings of an IAF experiment (the command line's flags).
#[derive(Clone, Debug)]
pub struct IafConfig {
    /// MADEs.
    pub layers: usize,
    /// Width of each MADE's two hidden layers.
    pub hidden: usize,
    /// Steps (of each phase: the teacher's, then the student's).
    pub steps: usize,
    /// Samples per step.
    pub batch: usize,
    /// Adam's learning rate.
    pub lr: f64,
    /// The seed of every stream ([`Stream`]).
    pub seed: u64,
    /// Loss logged (and, for the teacher, validated) every this many steps.
    pub eval_every: usize,
}

impl Default for IafConfig {
    /// The zoo's IAF sizes (8 MADEs of width 256) and the run defaults of
    /// [`RunConfig::default`] (5000 steps of 256 samples, Adam 1e-3, seed 0,
    /// logs every 100 steps).
    fn default() -> Self {
        let sizes = FlowName::Iaf
            .default_sizes(DataShape::Vector(2))
            .expect("IAF models vectors");
        let run = RunConfig::default();
        IafConfig {
            layers: sizes.layers,
            hidden: sizes.hidden,
            steps: run.steps,
            batch: run.batch,
            lr: run.lr,
            seed: run.seed,
            eval_every: run.eval_every,
        }
    }
}

impl IafConfig {
    /// A fresh 2-D IAF of these sizes, initialised from `seed`.
    fn model(&self, seed: u64) -> Result<FlowModel<f32>, TrainError> {
        let sizes = Sizes {
            layers: self.layers,
            hidden: self.hidden,
        };
        let mut rng = rand::SeedableRng::seed_from_u64(seed);
        let rng: &mut rand::rngs::StdRng = &mut rng;
        let (prior, layers) = FlowName::Iaf
            .layers::<f32, _>(DataShape::Vector(2), sizes, rng)
            .map_err(|e| TrainError::BadArgument {
                name: "flow".into(),
                message: e.to_string(),
            })?;
        Ok(FlowModel::with_prior(prior, Sequential::new(layers)))
    }

    fn reverse_kl(&self, seed: u64) -> ReverseKlConfig {
        ReverseKlConfig {
            steps: self.steps,
            batch: self.batch,
            lr: self.lr,
            seed,
            log_every: self.eval_every,
            anneal_steps: self.steps / 2,
            forward_kl_steps: 0,
            options: TrainOptions::default(),
        }
    }

    /// The record a checkpoint of the trained IAF stores.
    pub fn record(&self, data: &str, target: Option<&str>) -> RunRecord {
        RunRecord {
            data: data.to_string(),
            flow: FlowName::Iaf,
            layers: self.layers,
            hidden: self.hidden,
            batch: self.batch,
            seed: self.seed,
            step: self.steps as u64,
            target: target.map(str::to_string),
            columns: None,
            context: None,
        }
    }
}

/// What [`fit_iaf_to_energy`] produced.
pub struct EnergyFit {
    /// The trained sampler.
    pub model: FlowModel<f32>,
    /// The loop's report.
    pub report: ReverseKlReport,
    /// E[log q + U] over [`EVAL_SAMPLES`] fresh samples, nats (= KL − log Z).
    pub reverse_kl_loss: f64,
    /// log Z of the target by quadrature, nats.
    pub log_normalizer: f64,
    /// KL(q ‖ p) = the loss + log Z, nats.
    pub kl: f64,
}

/// Fits an IAF to the target exp(−U) of `energy` by reverse KL, the
/// target annealed over the first half of the steps, and estimates KL(q ‖ p)
/// with the target's normaliser from quadrature. Calls `on_step(step, loss)`.
///
/// # Errors
/// [`TrainError::BadArgument`] for bad settings, [`TrainError::Diverged`]
/// if the loss turns non-finite.
pub fn fit_iaf_to_energy(
    config: &IafConfig,
    energy: Energy,
    on_step: impl FnMut(usize, f64) + Send,
) -> Result<EnergyFit, Error> {
    fit_iaf_to_energy_with(config, energy, on_step, |_, _, _| {})
}

/// [`fit_iaf_to_energy`], also handing the sampler to `on_log(step, loss,
/// model)` every `config.eval_every` steps and at the last (see
/// [`fit_reverse_kl_with`]): the web lab draws it from there.
///
/// # Errors
/// As [`fit_iaf_to_energy`].
pub fn fit_iaf_to_energy_with(
    config: &IafConfig,
    energy: Energy,
    on_step: impl FnMut(usize, f64) + Send,
    on_log: impl FnMut(usize, f64, &FlowModel<f32>) + Send,
) -> Result<EnergyFit, Error> {
    let mut model = config.model(Stream::Init.seed(config.seed))?;
    let report = fit_reverse_kl_with(
        &mut model,
        &energy,
        &config.reverse_kl(Stream::Fit.seed(config.seed)),
        on_step,
        on_log,
    )?;
    let reverse_kl_loss = reverse_kl_estimate(
        &model,
        &energy,
        EVAL_SAMPLES,
        Stream::IafKlEstimate.seed(config.seed),
    );
    let log_normalizer = energy.log_normalizer(1000);
    Ok(EnergyFit {
        model,
        report,
        reverse_kl_loss,
        log_normalizer,
        kl: reverse_kl_loss + log_normalizer,
    })
}

/// What [`distill_iaf`] produced.
pub struct Distillation {
    /// The teacher MAF's run.
    pub teacher: RunResult,
    /// The student IAF.
    pub student: FlowModel<f32>,
    /// The student's loop (its forward-KL warm start included).
    pub report: ReverseKlReport,
    /// Steps of the warm start (a fifth of the steps).
    pub warm_start_steps: usize,
    /// KL(student ‖ teacher) over [`EVAL_SAMPLES`] student samples, nats.
    pub kl: f64,
    /// The student's NLL of [`EVAL_SAMPLES`] fresh test points (the
    /// teacher's test stream), nats.
    pub student_test_nll: f64,
}

/// Trains an MAF teacher of the same sizes on `toy` by maximum likelihood
/// (a [`run`] with this seed), then an IAF student: a fifth of the steps
/// of maximum likelihood on the teacher's samples (forward KL, which covers
/// every mode), then reverse KL to the teacher without annealing.
/// `on_teacher_step` and `on_student_step` see each phase's losses.
///
/// # Errors
/// As [`run`] for the teacher; [`TrainError`] for the student.
pub fn distill_iaf(
    config: &IafConfig,
    toy: Toy2d,
    on_teacher_step: impl FnMut(usize, f64) + Send,
    on_student_step: impl FnMut(usize, f64) + Send,
) -> Result<Distillation, Error> {
    let teacher_config = RunConfig {
        flow: FlowName::Maf,
        layers: config.layers,
        hidden: config.hidden,
        steps: config.steps,
        batch: config.batch,
        lr: config.lr,
        seed: config.seed,
        eval_every: config.eval_every,
        ..RunConfig::new(Dataset::Toy(toy), FlowName::Maf)?
    };
    let teacher = run(&teacher_config, on_teacher_step)?;
    let mut student = config.model(Stream::StudentInit.seed(config.seed))?;
    let warm_start_steps = config.steps / 5;
    let report = distill(
        &mut student,
        &teacher.model,
        &ReverseKlConfig {
            // Started on both moons by maximum likelihood on the teacher's
            // samples, the student needs no annealing (which would first
            // spread it out again).
            forward_kl_steps: warm_start_steps,
            anneal_steps: 0,
            ..config.reverse_kl(Stream::Distill.seed(config.seed))
        },
        on_student_step,
    )?;
    let kl = reverse_kl_estimate(
        &student,
        &Teacher(&teacher.model),
        EVAL_SAMPLES,
        Stream::DistillKlEstimate.seed(config.seed),
    );
    let mut test_rng = Stream::Test.rng(config.seed);
    let test =
        Tensor::<f32>::from_f64_slice(&toy.sample(EVAL_SAMPLES, &mut test_rng), &[EVAL_SAMPLES, 2]);
    let student_test_nll = mean_nll(&student, &test);
    Ok(Distillation {
        teacher,
        student,
        report,
        warm_start_steps,
        kl,
        student_test_nll,
    })
}

/// The target exp(−U) of `energy` on a `resolution²` grid over its box, as
/// a density grid (for pictures; unnormalised).
pub fn energy_grid(energy: Energy, resolution: usize) -> DensityGrid {
    let (x_range, y_range) = energy.bounds();
    let (dx, dy) = (
        (x_range[1] - x_range[0]) / resolution as f64,
        (y_range[1] - y_range[0]) / resolution as f64,
    );
    let mut log_density = Vec::with_capacity(resolution * resolution);
    for row in 0..resolution {
        let y = y_range[1] - (row as f64 + 0.5) * dy;
        for col in 0..resolution {
            log_density.push(-energy.energy([x_range[0] + (col as f64 + 0.5) * dx, y]));
        }
    }
    DensityGrid {
        log_density,
        resolution,
        x_range,
        y_range,
    }
}
