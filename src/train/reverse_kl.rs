//! Training a flow as a *sampler* by reverse KL: the model draws its own
//! samples and is scored by an unnormalised target, as IAF is used in the
//! lecture (variational inference, density distillation).
//!
//! With x = f(z), z ~ π, the loss is
//!
//! L = E_z[log q(x) − log p̃(x)] = E_z[log π(z) − log|det ∂f/∂z| − log p̃(x)]
//!   = KL(q ‖ p) − log Z,
//!
//! where p = p̃ / Z. It needs `forward` and its log-det only, one parallel
//! pass for an [`Iaf`](crate::flows::Iaf), and never the inverse. Two
//! targets: a 2-D [`Energy`] (p̃ = exp(−U), [`fit_to_energy`]) and a trained
//! teacher flow (p̃ = the teacher's density, [`distill`], the probability
//! density distillation of Parallel WaveNet, arXiv:1711.10433).
//!
//! Derivation: [`derivations::iaf`](crate::derivations::iaf)
//! (docs/derivations/iaf.md), "Training by reverse KL".

use crate::autodiff::{Tape, Var};
use crate::data::energy::Energy;
use crate::error::TrainError;
use crate::flows::{Flow, FlowModel};
use crate::nn::Adam;
use crate::tensor::parallel::in_pool;
use crate::tensor::{Element, Tensor};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::time::Instant;

/// An unnormalised log-density log p̃(x) that can be put on a tape.
pub trait LogTarget<T: Element>: Sync {
    /// log p̃ of every row of `x` (`[batch, dim]`), `[batch]`, on `x`'s tape.
    fn log_density<'t>(&self, x: &Var<'t, T>) -> Var<'t, T>;
}

impl<T: Element> LogTarget<T> for Energy {
    /// log p̃ = −U.
    fn log_density<'t>(&self, x: &Var<'t, T>) -> Var<'t, T> {
        self.energy_var(x).neg()
    }
}

/// A trained flow as a target: log p̃ = its log-density (normalised, so the
/// loss is KL(student ‖ teacher) itself). Its parameters are not updated.
pub struct Teacher<'a, T: Element>(pub &'a FlowModel<T>);

impl<T: Element> LogTarget<T> for Teacher<'_, T> {
    fn log_density<'t>(&self, x: &Var<'t, T>) -> Var<'t, T> {
        self.0.log_prob_var(x)
    }
}

/// The settings of a reverse-KL run.
#[derive(Clone, Debug)]
pub struct ReverseKlConfig {
    /// Optimisation steps.
    pub steps: usize,
    /// Samples per step.
    pub batch: usize,
    /// Adam's learning rate.
    pub lr: f64,
    /// Seed of the latent draws.
    pub seed: u64,
    /// Record the loss every this many steps.
    pub log_every: usize,
    /// Steps over which the target is annealed: step t minimises
    /// E[log q − βₜ·log p̃] with βₜ = min(1, 0.01 + t / anneal_steps), so the
    /// sampler starts broad and narrows onto every mode instead of collapsing
    /// onto the first it finds (Rezende & Mohamed 2015, §6.1). 0: β = 1 throughout.
    pub anneal_steps: usize,
    /// [`distill`] only: steps of maximum likelihood on the teacher's own
    /// samples before the reverse-KL steps. This minimises the other KL,
    /// KL(teacher ‖ student), which is mass-covering: the student starts the
    /// reverse-KL phase on every mode of the teacher instead of collapsing
    /// onto one. It needs the teacher's sampling direction and the student's
    /// density direction (both D sequential passes for MAF and IAF), so it
    /// suits low-dimensional data. 0: none.
    pub forward_kl_steps: usize,
}

impl Default for ReverseKlConfig {
    /// 5000 steps of 256 samples, Adam 1e-3, seed 0, loss logged every 100,
    /// no annealing, no forward-KL warm start.
    fn default() -> Self {
        ReverseKlConfig {
            steps: 5000,
            batch: 256,
            lr: 1e-3,
            seed: 0,
            log_every: 100,
            anneal_steps: 0,
            forward_kl_steps: 0,
        }
    }
}

/// What a reverse-KL run did.
#[derive(Clone, Debug, Default)]
pub struct ReverseKlReport {
    /// Steps taken.
    pub steps: usize,
    /// `(step, loss)` every `log_every` steps: the minibatch estimate of
    /// E[log q − β·log p̃] in nats (β = 1 once annealing is over).
    pub loss_curve: Vec<(usize, f64)>,
    /// The loss at the last step (nats).
    pub final_loss: f64,
    /// Wall time of the loop, in seconds.
    pub train_seconds: f64,
    /// Milliseconds per step.
    pub ms_per_step: f64,
    /// [`distill`] with a warm start: the student's mean negative
    /// log-likelihood of a batch of teacher samples (nats) at the last
    /// forward-KL step, and that phase's wall time in seconds. None otherwise.
    pub forward_kl: Option<(f64, f64)>,
}

/// E[log q(x) − log p̃(x)] over `n` fresh samples of `model` (no tape),
/// in nats: KL(q ‖ p) − log Z. Drawn in chunks of 4096 from `seed`.
pub fn reverse_kl_estimate<T: Element>(
    model: &FlowModel<T>,
    target: &dyn LogTarget<T>,
    n: usize,
    seed: u64,
) -> f64 {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut total = 0.0;
    let mut done = 0;
    while done < n {
        let len = 4096.min(n - done);
        let z = model.sample_prior(len, 1.0, &mut rng);
        let gap = in_pool(|| {
            let tape = Tape::no_grad();
            sample_gap(model, target, &tape.constant(z), 1.0).into_value()
        });
        total += gap.to_vec().iter().map(|v| v.to_f64()).sum::<f64>();
        done += len;
    }
    total / n.max(1) as f64
}

/// log q(x) − β·log p̃(x) per sample for x = f(z):
/// log π(z) − logdet_forward(z) − β·log p̃(x).
fn sample_gap<'t, T: Element>(
    model: &FlowModel<T>,
    target: &dyn LogTarget<T>,
    z: &Var<'t, T>,
    beta: f64,
) -> Var<'t, T> {
    let (x, log_det) = model.flow.forward(z);
    let log_q = model.prior_log_prob(z).sub(&log_det);
    let log_p = target.log_density(&x);
    if beta == 1.0 {
        log_q.sub(&log_p)
    } else {
        log_q.sub(&log_p.mul_scalar(T::from_f64(beta)))
    }
}

/// Trains `model` by minimising L = E_z[log q(x) − log p̃(x)], x = f(z), with
/// Adam on fresh latent batches (annealed as `config.anneal_steps` says),
/// calling `on_step(step, loss)` each step.
/// The model's `forward` must be cheap (an IAF: one pass).
///
/// # Units
/// Losses in nats per sample.
///
/// # Errors
/// [`TrainError::BadArgument`] for zero steps or batch or a non-positive
/// learning rate; [`TrainError::Diverged`] when the loss becomes NaN or
/// infinite (the model then holds the parameters of the step before).
pub fn fit_reverse_kl<T: Element>(
    model: &mut FlowModel<T>,
    target: &dyn LogTarget<T>,
    config: &ReverseKlConfig,
    mut on_step: impl FnMut(usize, f64) + Send,
) -> Result<ReverseKlReport, TrainError> {
    validate(config)?;
    in_pool(move || {
        let mut rng = StdRng::seed_from_u64(config.seed);
        let mut adam = Adam::<T>::new(config.lr);
        let mut report = ReverseKlReport::default();
        let start = Instant::now();
        for step in 1..=config.steps {
            let z: Tensor<T> = model.sample_prior(config.batch, 1.0, &mut rng);
            let loss = {
                let tape = Tape::new();
                let beta = match config.anneal_steps {
                    0 => 1.0,
                    n => (0.01 + step as f64 / n as f64).min(1.0),
                };
                let loss = sample_gap(model, target, &tape.constant(z.clone()), beta).mean_all();
                let value = loss.value().item().to_f64();
                if !value.is_finite() {
                    return Err(TrainError::Diverged {
                        step,
                        what: first_non_finite_forward(&model.flow.layers, &z),
                    });
                }
                tape.backward(&loss).assign(model.params_mut());
                value
            };
            adam.step(model.params_mut());
            on_step(step, loss);
            report.final_loss = loss;
            if step % config.log_every.max(1) == 0 || step == config.steps {
                report.loss_curve.push((step, loss));
            }
        }
        report.steps = config.steps;
        report.train_seconds = start.elapsed().as_secs_f64();
        report.ms_per_step = 1e3 * report.train_seconds / config.steps as f64;
        Ok(report)
    })
}

/// [`TrainError::BadArgument`] for zero steps or batch or a non-positive
/// learning rate.
fn validate(config: &ReverseKlConfig) -> Result<(), TrainError> {
    for (name, value) in [("steps", config.steps), ("batch", config.batch)] {
        if value == 0 {
            return Err(TrainError::BadArgument {
                name: name.into(),
                message: "must be at least 1".into(),
            });
        }
    }
    if !(config.lr > 0.0 && config.lr.is_finite()) {
        return Err(TrainError::BadArgument {
            name: "lr".into(),
            message: format!("must be a positive number, got {}", config.lr),
        });
    }
    Ok(())
}

/// Fits `model` to the target exp(−U) of a 2-D [`Energy`] by reverse KL
/// (Rezende & Mohamed 2015, §6.1, arXiv:1505.05770).
///
/// # Errors
/// As [`fit_reverse_kl`]; [`TrainError::BadArgument`] if the model is not 2-D.
pub fn fit_to_energy<T: Element>(
    model: &mut FlowModel<T>,
    energy: Energy,
    config: &ReverseKlConfig,
    on_step: impl FnMut(usize, f64) + Send,
) -> Result<ReverseKlReport, TrainError> {
    if model.dim() != 2 {
        return Err(TrainError::BadArgument {
            name: "model".into(),
            message: format!("an energy target is 2-D, the model is {}-D", model.dim()),
        });
    }
    fit_reverse_kl(model, &energy, config, on_step)
}

/// Distils a trained `teacher` into `student` by minimising
/// KL(student ‖ teacher) = E_{x ~ student}[log q(x) − log p_teacher(x)]: the
/// student samples (its cheap direction), the teacher scores (its cheap
/// direction, for an MAF the one-pass `inverse`). The teacher is not updated.
///
/// Reverse KL is mode-seeking: on two moons a student started at the prior
/// settles on one moon (KL ≈ log 2). `config.forward_kl_steps` first fits the
/// student to the teacher's samples by maximum likelihood, so it starts on
/// both (see [`ReverseKlConfig::forward_kl_steps`]).
///
/// # Source
/// A. van den Oord et al., "Parallel WaveNet", ICML 2018, arXiv:1711.10433
/// (§3, probability density distillation).
///
/// # Errors
/// As [`fit_reverse_kl`]; [`TrainError::BadArgument`] if the dimensions differ.
pub fn distill<T: Element>(
    student: &mut FlowModel<T>,
    teacher: &FlowModel<T>,
    config: &ReverseKlConfig,
    on_step: impl FnMut(usize, f64) + Send,
) -> Result<ReverseKlReport, TrainError> {
    if student.dim() != teacher.dim() {
        return Err(TrainError::BadArgument {
            name: "student".into(),
            message: format!(
                "the student is {}-D, the teacher {}-D",
                student.dim(),
                teacher.dim()
            ),
        });
    }
    // Refuse bad settings before the warm start spends its steps.
    validate(config)?;
    let warm_start = match config.forward_kl_steps {
        0 => None,
        steps => Some(fit_to_teacher_samples(student, teacher, config, steps)?),
    };
    let mut report = fit_reverse_kl(student, &Teacher(teacher), config, on_step)?;
    report.forward_kl = warm_start;
    Ok(report)
}

/// The warm start of [`distill`]: `steps` Adam steps of maximum likelihood
/// on fresh teacher samples (batch and learning rate of `config`). Returns
/// the last loss (nats) and the wall time (s).
fn fit_to_teacher_samples<T: Element>(
    student: &mut FlowModel<T>,
    teacher: &FlowModel<T>,
    config: &ReverseKlConfig,
    steps: usize,
) -> Result<(f64, f64), TrainError> {
    in_pool(move || {
        let mut rng = StdRng::seed_from_u64(config.seed ^ 0x5eed_f0d1);
        let mut adam = Adam::<T>::new(config.lr);
        let start = Instant::now();
        let mut last = f64::NAN;
        for step in 1..=steps {
            let x = teacher.sample(config.batch, 1.0, &mut rng);
            let tape = Tape::new();
            let loss = student.log_prob_var(&tape.constant(x)).mean_all().neg();
            last = loss.value().item().to_f64();
            if !last.is_finite() {
                return Err(TrainError::Diverged {
                    step,
                    what: "the student's log-density of teacher samples".into(),
                });
            }
            tape.backward(&loss).assign(student.params_mut());
            adam.step(student.params_mut());
        }
        Ok((last, start.elapsed().as_secs_f64()))
    })
}

/// The per-layer name of the first flow in `layers` whose forward output is
/// not finite at `z`, for messages.
pub fn first_non_finite_forward<T: Element>(layers: &[Box<dyn Flow<T>>], z: &Tensor<T>) -> String {
    let mut v = z.clone();
    for (i, layer) in layers.iter().enumerate() {
        let (x, log_det) = layer.forward_tensor(&v);
        if !x.all_finite() || !log_det.all_finite() {
            return format!("layer {i} ({})", layer.name());
        }
        v = x;
    }
    "the target log-density".into()
}
