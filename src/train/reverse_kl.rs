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

use super::clock::Stopwatch;
use crate::autodiff::{Tape, Var};
use crate::data::energy::Energy;
use crate::error::TrainError;
use crate::flows::{Flow, FlowModel};
use crate::nn::Adam;
use crate::tensor::parallel::in_pool;
use crate::tensor::{Element, Tensor};
use crate::train::fit::{check_options, Stop, TrainOptions, Update, EXPLODED_NATS_PER_DIM};
use rand::rngs::StdRng;
use rand::SeedableRng;

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

/// An unnormalised log-density given as a closure on the tape:
/// `x` (`[batch, dim]`) to log p̃ (`[batch]`), built from [`Var`]'s ops so
/// that reverse KL can differentiate through it. Fits any flow with
/// [`fit_reverse_kl`].
///
/// # Examples
/// A RealNVP fitted to a banana, x₁ ~ N(0, 2²) and x₂ | x₁ ~ N(x₁²/4, ½²):
/// log p̃(x) = −x₁²/8 − 2·(x₂ − x₁²/4)².
/// ```
/// use flowzoo::autodiff::Var;
/// use flowzoo::flows::FlowModel;
/// use flowzoo::nn::LrSchedule;
/// use flowzoo::train::fit::TrainOptions;
/// use flowzoo::train::reverse_kl::{fit_reverse_kl, reverse_kl_estimate, LogDensityFn, ReverseKlConfig};
/// use rand::SeedableRng;
///
/// let banana = LogDensityFn::new(|x: &Var<'_, f64>| {
///     let (x1, x2) = (x.narrow(1, 0, 1), x.narrow(1, 1, 1));
///     let bend = x2.sub(&x1.square().mul_scalar(0.25));
///     let log_p = x1.square().mul_scalar(-0.125).sub(&bend.square().mul_scalar(2.0));
///     log_p.sum_axes(&[1])
/// });
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let mut model = FlowModel::<f64>::realnvp(2, 4, 32, &mut rng);
/// let log_z = (2.0 * std::f64::consts::PI).ln(); // Z = 2π·2·½ = 2π
/// let before = reverse_kl_estimate(&model, &banana, 4000, 1) + log_z;
/// let config = ReverseKlConfig {
///     steps: 600,
///     lr: 3e-3,
///     options: TrainOptions {
///         schedule: Some(LrSchedule::WarmupCosine { base: 3e-3, warmup: 50, total: 600, min: 0.0 }),
///         clip_norm: Some(10.0),
///         ..TrainOptions::default()
///     },
///     ..ReverseKlConfig::default()
/// };
/// fit_reverse_kl(&mut model, &banana, &config, |_, _| {}).unwrap();
/// // E[log q − log p̃] = KL(q ‖ p) − log Z.
/// let kl = reverse_kl_estimate(&model, &banana, 4000, 1) + log_z;
/// assert!(kl < 0.1 && kl < before, "KL(q ‖ p) = {kl} nats, {before} before");
/// ```
pub struct LogDensityFn<F>(F);

impl<F> LogDensityFn<F> {
    /// The target log p̃ = `f(x)`.
    pub fn new<T: Element>(f: F) -> Self
    where
        F: for<'t> Fn(&Var<'t, T>) -> Var<'t, T> + Sync,
    {
        LogDensityFn(f)
    }
}

impl<T: Element, F> LogTarget<T> for LogDensityFn<F>
where
    F: for<'t> Fn(&Var<'t, T>) -> Var<'t, T> + Sync,
{
    fn log_density<'t>(&self, x: &Var<'t, T>) -> Var<'t, T> {
        (self.0)(x)
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
    /// Schedule, clipping, weight decay and early stopping, as in [`fit`](super::fit::fit).
    /// Early stopping scores the model every `log_every` steps by the
    /// reverse-KL estimate (β = 1) on one fixed latent batch of
    /// [`VALIDATION_LATENTS`] draws, and keeps the best parameters.
    pub options: TrainOptions,
}

/// The latent draws of the fixed batch that scores a reverse-KL run for
/// early stopping.
pub const VALIDATION_LATENTS: usize = 4096;

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
            options: TrainOptions::default(),
        }
    }
}

/// What a reverse-KL run did.
#[derive(Clone, Debug, Default)]
pub struct ReverseKlReport {
    /// The last step taken.
    pub steps: usize,
    /// Why the run ended there.
    pub stop: Stop,
    /// With early stopping, the step whose parameters the model ends with
    /// (the best validation estimate) and that estimate, nats; else the
    /// last step and `None`.
    pub best: (usize, Option<f64>),
    /// `(step, loss)` every `log_every` steps: the minibatch estimate of
    /// E[log q − β·log p̃] in nats (β = 1 once annealing is over).
    pub loss_curve: Vec<(usize, f64)>,
    /// The loss at the last step (nats).
    pub final_loss: f64,
    /// Wall time of the loop, in seconds (0 on `wasm32-unknown-unknown`,
    /// which has no clock).
    pub train_seconds: f64,
    /// Milliseconds per step (0 on `wasm32-unknown-unknown`).
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
/// infinite, [`TrainError::Exploded`] when it stays finite but rises more
/// than [`EXPLODED_NATS_PER_DIM`] nats per dimension above the first step's
/// (the model then holds the parameters of the step before);
/// [`TrainError::BadLayer`] instead when a layer's parameters are unusable
/// ([`Flow::validate`]), before the first
/// step or when the loss stops being finite.
pub fn fit_reverse_kl<T: Element>(
    model: &mut FlowModel<T>,
    target: &dyn LogTarget<T>,
    config: &ReverseKlConfig,
    on_step: impl FnMut(usize, f64) + Send,
) -> Result<ReverseKlReport, TrainError> {
    fit_reverse_kl_with(model, target, config, on_step, |_, _, _| {})
}

/// [`fit_reverse_kl`], also handing the model to `on_log(step, loss,
/// model)` at every logged step (each `config.log_every` steps and the
/// last), after its update: for pictures of a sampler while it learns.
///
/// # Errors
/// As [`fit_reverse_kl`].
pub fn fit_reverse_kl_with<T: Element>(
    model: &mut FlowModel<T>,
    target: &dyn LogTarget<T>,
    config: &ReverseKlConfig,
    mut on_step: impl FnMut(usize, f64) + Send,
    mut on_log: impl FnMut(usize, f64, &FlowModel<T>) + Send,
) -> Result<ReverseKlReport, TrainError> {
    validate(config)?;
    if let Err(source) = model.flow.validate() {
        return Err(TrainError::BadLayer { step: 0, source });
    }
    in_pool(move || {
        let mut rng = StdRng::seed_from_u64(config.seed);
        let mut adam = Adam::<T>::new(config.lr);
        let mut report = ReverseKlReport::default();
        let options = &config.options;
        // The fixed latents that score the model for early stopping.
        let held_out: Option<Tensor<T>> = options.patience.map(|_| {
            let mut rng = StdRng::seed_from_u64(config.seed ^ 0x7a11_da7e);
            model.sample_prior(VALIDATION_LATENTS, 1.0, &mut rng)
        });
        let mut best: Option<(f64, Vec<Tensor<T>>)> = None;
        let mut checks_without_improvement = 0;
        let start = Stopwatch::start();
        let mut first_loss: Option<f64> = None;
        let mut last = 0;
        for step in 1..=config.steps {
            last = step;
            // As in `fit`: the first step begun after the limit is the last, and logged.
            let out_of_time = options.time_limit.is_some_and(|l| start.seconds() >= l);
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
                    if let Err(source) = model.flow.validate() {
                        return Err(TrainError::BadLayer { step, source });
                    }
                    return Err(TrainError::Diverged {
                        step,
                        what: first_non_finite_forward(&model.flow.layers, &z),
                    });
                }
                // The rule of `fit`: a rise of more than EXPLODED_NATS_PER_DIM
                // nats per dimension above the first loss, once annealing is
                // over (while β rises the loss legitimately grows by
                // (1 − β)·E[−log p̃], unbounded for a target with an offset).
                let dim = z.dim(1).max(1);
                if beta < 1.0 {
                    // Not yet comparable.
                } else if let Some(first) = first_loss {
                    if value > first + EXPLODED_NATS_PER_DIM * dim as f64 {
                        if let Err(source) = model.flow.validate() {
                            return Err(TrainError::BadLayer { step, source });
                        }
                        return Err(TrainError::Exploded {
                            step,
                            loss: value,
                            first_loss: first,
                            dim,
                            limit_per_dim: EXPLODED_NATS_PER_DIM,
                            largest: largest_forward_term(model, target, &z),
                        });
                    }
                }
                if beta == 1.0 {
                    first_loss.get_or_insert(value);
                }
                tape.backward(&loss).assign(model.params_mut());
                value
            };
            Update::of_step(options, config.lr, step, false).apply(model.params_mut(), &mut adam);
            on_step(step, loss);
            report.final_loss = loss;
            if step % config.log_every.max(1) == 0 || step == config.steps || out_of_time {
                report.loss_curve.push((step, loss));
                on_log(step, loss, model);
                if let Some(latents) = &held_out {
                    let score = in_pool(|| {
                        let tape = Tape::no_grad();
                        let gap = sample_gap(model, target, &tape.constant(latents.clone()), 1.0);
                        gap.mean_all().value().item().to_f64()
                    });
                    if score.is_finite() && best.as_ref().is_none_or(|(b, _)| score < *b) {
                        let values = model.params().iter().map(|p| p.value.clone()).collect();
                        best = Some((score, values));
                        report.best = (step, Some(score));
                        checks_without_improvement = 0;
                    } else {
                        checks_without_improvement += 1;
                    }
                    if options
                        .patience
                        .is_some_and(|p| checks_without_improvement >= p)
                    {
                        report.stop = Stop::Patience {
                            checks: checks_without_improvement,
                        };
                        break;
                    }
                }
            }
            if let (true, Some(seconds)) = (out_of_time && step < config.steps, options.time_limit)
            {
                report.stop = Stop::TimeLimit { seconds };
                break;
            }
        }
        match best {
            Some((_, values)) => {
                for (p, v) in model.params_mut().into_iter().zip(values) {
                    p.value = v;
                }
            }
            None => report.best = (last, None),
        }
        report.steps = last;
        report.train_seconds = start.seconds();
        report.ms_per_step = 1e3 * report.train_seconds / last.max(1) as f64;
        Ok(report)
    })
}

/// [`TrainError::BadArgument`] for zero steps or batch or a non-positive
/// learning rate.
fn validate(config: &ReverseKlConfig) -> Result<(), TrainError> {
    check_options(&config.options, config.steps, true)?;
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
        let start = Stopwatch::start();
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
        Ok((last, start.seconds()))
    })
}

/// The term of the reverse-KL gap log π(z) − Σ log-dets − log p̃(f(z))
/// largest in size, averaged over the batch `z`: `"layer 2 (Made) log-det,
/// mean 3.1e9 nats"` or the prior's or the target's log-density.
fn largest_forward_term<T: Element>(
    model: &FlowModel<T>,
    target: &dyn LogTarget<T>,
    z: &Tensor<T>,
) -> String {
    let tape = Tape::no_grad();
    let mean = |t: &Tensor<T>| t.to_f64_vec().iter().sum::<f64>() / t.numel().max(1) as f64;
    let mut v: Var<T> = tape.constant(z.clone());
    let mut terms = vec![(
        mean(model.prior_log_prob(&v).value()),
        "the prior log-density".to_string(),
    )];
    for (i, layer) in model.flow.layers.iter().enumerate() {
        let (x, log_det) = layer.forward(&v);
        terms.push((
            mean(log_det.value()),
            format!("layer {i} ({}) log-det", layer.name()),
        ));
        v = x;
    }
    terms.push((
        mean(&target.log_density(&v).into_value()),
        "the target log-density".into(),
    ));
    let (value, name) = terms
        .into_iter()
        .max_by(|a, b| a.0.abs().total_cmp(&b.0.abs()))
        .expect("the prior's term is always there");
    format!("{name}, mean {value:.3e} nats")
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
