//! [`fit`]: the minibatch maximum-likelihood loop.

use super::clock::Stopwatch;
use crate::autodiff::{Tape, Var};
use crate::error::TrainError;
use crate::flows::{Flow, FlowModel};
use crate::nn::optim::{clip_grad_norm, LrSchedule};
use crate::nn::Adam;
use crate::tensor::parallel::in_pool;
use crate::tensor::{Element, Tensor};
use rand::rngs::StdRng;
use rand::SeedableRng;

/// How far the training loss may rise above the first step's, in nats per
/// dimension, before [`fit`] stops the run as diverged
/// ([`TrainError::Exploded`]): 100 nats per dimension is a density e¹⁰⁰
/// (about 2¹⁴⁴) times worse per feature than at the start, which no
/// converging run reaches and every exploding one passes.
pub const EXPLODED_NATS_PER_DIM: f64 = 100.0;

/// The options of a training loop beyond its length, shared by [`fit`] and
/// [`fit_reverse_kl`](super::reverse_kl::fit_reverse_kl). The defaults (no
/// schedule, clipping, decay or early stopping) are the plain loop every
/// figure of the README was measured with.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TrainOptions {
    /// The learning rate of each step, `schedule.lr(step − 1)`, given to the
    /// optimiser for that step only (its `lr`, which a checkpoint saves,
    /// stays the base rate). `None`: the optimiser's `lr` throughout.
    pub schedule: Option<LrSchedule>,
    /// Before each update, scale the gradients so that their joint
    /// Euclidean norm is at most this ([`clip_grad_norm`]). `None`: no
    /// clipping.
    pub clip_norm: Option<f64>,
    /// Decoupled weight decay λ: before each update every parameter with a
    /// gradient shrinks, θ ← θ − lrₜ·λ·θ (AdamW; Loshchilov & Hutter,
    /// arXiv:1711.05101). 0: none.
    pub weight_decay: f64,
    /// Early stopping: stop once this many checks in a row have not improved
    /// the best validation score, keeping the best parameters. Needs a
    /// validation score. `None`: take every step.
    pub patience: Option<usize>,
    /// Stop at the first step begun once the loop's wall time (validation
    /// included) has reached this many seconds, with a check at that step, so
    /// that runs can be compared at equal time. `None`: no limit. Refused
    /// on `wasm32-unknown-unknown`, which has no clock.
    pub time_limit: Option<f64>,
}

/// The settings of a training run. The base learning rate is the
/// optimiser's ([`Adam::lr`]); `options.schedule` may vary it step by step.
#[derive(Clone, Debug)]
pub struct FitConfig {
    /// Optimisation steps.
    pub steps: usize,
    /// Seed of the RNG that draws batches and noise.
    pub seed: u64,
    /// Check the validation score every this many steps (and at the last).
    pub eval_every: usize,
    /// Schedule, clipping, weight decay, early stopping.
    pub options: TrainOptions,
}

impl Default for FitConfig {
    /// 5000 steps, seed 0, validation every 100 steps; no schedule,
    /// clipping, weight decay or early stopping.
    fn default() -> Self {
        FitConfig {
            steps: 5000,
            seed: 0,
            eval_every: 100,
            options: TrainOptions::default(),
        }
    }
}

/// What the loop saw at one check: every `eval_every` steps and at the
/// last step taken.
#[derive(Clone, Debug, PartialEq)]
pub struct Check {
    /// The step (1-based).
    pub step: usize,
    /// The step's training loss, nats per sample.
    pub loss: f64,
    /// The validation score after the step (the caller's units), if the
    /// run validates.
    pub validation: Option<f64>,
    /// The learning rate the step was taken with.
    pub lr: f64,
    /// The joint Euclidean norm of the step's gradients, before clipping.
    pub grad_norm: f64,
    /// Whether the parameters are worth saving now (see [`fit_with`]).
    pub keep: bool,
    /// Wall time since the loop started, seconds (0 on
    /// `wasm32-unknown-unknown`, which has no clock: time the call yourself).
    pub seconds: f64,
}

/// Why a run ended.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Stop {
    /// It took every step asked for.
    #[default]
    Completed,
    /// Early stopping: `checks` checks in a row did not improve the best
    /// validation score, that of [`FitReport::best_step`].
    Patience {
        /// The patience, in checks.
        checks: usize,
    },
    /// The wall-clock limit ([`TrainOptions::time_limit`]) was reached.
    TimeLimit {
        /// The limit, in seconds.
        seconds: f64,
    },
}

impl Stop {
    /// In words, for metrics.json and the log; `best_step` is the step
    /// whose parameters the run kept.
    pub fn describe(&self, best_step: usize) -> String {
        match self {
            Stop::Completed => "completed every step".into(),
            Stop::Patience { checks } => format!(
                "early stopping: {checks} check(s) in a row without a better validation \
                 score than step {best_step}'s"
            ),
            Stop::TimeLimit { seconds } => format!(
                "time limit: {seconds} s of wall time reached (the kept parameters are \
                 step {best_step}'s)"
            ),
        }
    }
}

/// What a training run did.
#[derive(Clone, Debug, Default)]
pub struct FitReport {
    /// The last step taken: `config.steps`, or where early stopping or the
    /// time limit stopped the run.
    pub steps: usize,
    /// Why the run ended there.
    pub stop: Stop,
    /// Every check, in order.
    pub checks: Vec<Check>,
    /// The step whose parameters were kept (the best validation score, or the
    /// last step without validation).
    pub best_step: usize,
    /// The best validation score, if validation ran (in the caller's units).
    pub best_validation: Option<f64>,
    /// The training loss (nats per sample) at the last step.
    pub final_loss: f64,
    /// `(step, loss)` every `eval_every` steps.
    pub loss_curve: Vec<(usize, f64)>,
    /// `(step, validation score)` at every check.
    pub validation_curve: Vec<(usize, f64)>,
    /// Wall time of the loop, in seconds (validation included; 0 on
    /// `wasm32-unknown-unknown`, which has no clock).
    pub train_seconds: f64,
    /// Wall time per optimisation step, validation excluded, in milliseconds
    /// (0 on `wasm32-unknown-unknown`).
    pub ms_per_step: f64,
}

/// Trains `model` by maximum likelihood: each step takes the batch
/// `next_batch(step, rng)` (`[batch, dim]`), minimises
/// L = −(1/B) Σᵦ log p(xᵦ) with `adam` (a fresh `Adam::new(lr)`, whose
/// learning rate is the run's), and calls `on_step(step, loss)`.
///
/// For a conditional model ([`FlowModel::context_dim`] above 0) each row
/// of the batch holds a sample and then its context, `[batch, dim +
/// context_dim]` (see [`FlowModel::split_batch`]), and the loss is
/// L = −(1/B) Σᵦ log p(xᵦ | cᵦ).
///
/// With `validate`, its score (lower is better, e.g. bits/dim) is computed
/// every `config.eval_every` steps and at the last step, and the model ends
/// with the parameters of the best score; without it, with the last ones.
///
/// # Units
/// Losses in nats per sample.
///
/// # Errors
/// [`TrainError::BadArgument`] for zero steps or a non-positive learning
/// rate; [`TrainError::Diverged`] when the loss becomes NaN or infinite,
/// naming the step and the first layer whose output or log-det went
/// non-finite; [`TrainError::Exploded`] when it stays finite but rises more
/// than [`EXPLODED_NATS_PER_DIM`] nats per dimension above the first step's
/// loss, naming the largest term of the log-density;
/// [`TrainError::BadLayer`] instead of those two when a layer's parameters
/// are unusable ([`Flow::validate`], e.g. a
/// singular 1x1 convolution), and before the first step if they already
/// are. The model then holds the parameters of the step before.
#[allow(clippy::type_complexity)]
pub fn fit<T: Element>(
    model: &mut FlowModel<T>,
    adam: &mut Adam<T>,
    config: &FitConfig,
    next_batch: impl FnMut(usize, &mut StdRng) -> Tensor<T> + Send,
    validate: Option<&mut (dyn FnMut(&FlowModel<T>) -> f64 + Send)>,
    on_step: impl FnMut(usize, f64) + Send,
) -> Result<FitReport, TrainError> {
    fit_with(
        model,
        adam,
        config,
        next_batch,
        validate,
        on_step,
        |_: &Check, _: &FlowModel<T>, _: &Adam<T>| {},
    )
}

/// [`fit`], continuing the optimisation `adam` holds: a fresh
/// `Adam::new(lr)`, or one restored from a checkpoint to resume a run.
/// Steps are counted from `adam.steps() + 1` up to `config.steps` (the
/// total), with learning rate `adam.lr`.
///
/// `on_check(check, model, adam)` is called at every check (every
/// `config.eval_every` steps and the last step taken), for logs, and is the
/// place to save a checkpoint when `check.keep` says the current parameters
/// are worth keeping, so that a run that diverges later keeps its last good
/// one: with `validate`, when the score is finite and the best so far (the
/// parameters the run ends with); without it, when the updated model's
/// log-density of the step's batch is finite, so a model that already
/// produces NaN or infinity is never handed over. The RNG is seeded from `config.seed` and the first
/// step, so a resumed run draws other batches than the uninterrupted run
/// would.
///
/// # Errors
/// As [`fit`]; also [`TrainError::BadArgument`] if `adam` has already
/// taken `config.steps` steps or more.
#[allow(clippy::type_complexity)]
pub fn fit_with<T: Element>(
    model: &mut FlowModel<T>,
    adam: &mut Adam<T>,
    config: &FitConfig,
    next_batch: impl FnMut(usize, &mut StdRng) -> Tensor<T> + Send,
    validate: Option<&mut (dyn FnMut(&FlowModel<T>) -> f64 + Send)>,
    on_step: impl FnMut(usize, f64) + Send,
    on_check: impl FnMut(&Check, &FlowModel<T>, &Adam<T>) + Send,
) -> Result<FitReport, TrainError> {
    // The whole loop runs on a pool thread: see `tensor::parallel::in_pool`.
    in_pool(move || fit_loop(model, adam, config, next_batch, validate, on_step, on_check))
}

#[allow(clippy::type_complexity)]
fn fit_loop<T: Element>(
    model: &mut FlowModel<T>,
    adam: &mut Adam<T>,
    config: &FitConfig,
    mut next_batch: impl FnMut(usize, &mut StdRng) -> Tensor<T>,
    mut validate: Option<&mut (dyn FnMut(&FlowModel<T>) -> f64 + Send)>,
    mut on_step: impl FnMut(usize, f64),
    mut on_check: impl FnMut(&Check, &FlowModel<T>, &Adam<T>),
) -> Result<FitReport, TrainError> {
    if config.steps == 0 {
        return Err(TrainError::BadArgument {
            name: "steps".into(),
            message: "must be at least 1".into(),
        });
    }
    let first = usize::try_from(adam.steps())
        .unwrap_or(usize::MAX)
        .saturating_add(1);
    if first > config.steps {
        return Err(TrainError::BadArgument {
            name: "steps".into(),
            message: format!(
                "the optimiser has already taken {} steps: ask for more than that",
                first - 1
            ),
        });
    }
    if !(adam.lr > 0.0 && adam.lr.is_finite()) {
        return Err(TrainError::BadArgument {
            name: "lr".into(),
            message: format!("must be a positive number, got {}", adam.lr),
        });
    }
    check_options(&config.options, config.steps, validate.is_some())?;
    if adam.lr * config.options.weight_decay >= 1.0 {
        return Err(TrainError::BadArgument {
            name: "weight_decay".into(),
            message: format!(
                "lr·λ = {} ≥ 1 would zero or flip every parameter each step: the decay \
                 must be below 1/lr",
                adam.lr * config.options.weight_decay
            ),
        });
    }
    if let Err(source) = model.flow.validate() {
        return Err(TrainError::BadLayer { step: 0, source });
    }
    let eval_every = config.eval_every.max(1);
    // The first step joins the seed so that a resumed run does not replay
    // the batches of the steps it already took.
    let mut rng = StdRng::seed_from_u64(config.seed.wrapping_add(first as u64 - 1));
    let mut report = FitReport::default();
    let mut best: Option<(f64, Vec<Tensor<T>>)> = None;
    let mut checks_without_improvement = 0;
    let start = Stopwatch::start();
    let mut validation_seconds = 0.0;
    let mut first_loss: Option<f64> = None;
    let base_lr = adam.lr;
    let mut last = first;
    // A resumed run starts from the score of the model it resumes, so the
    // first check after it keeps (and saves) only a better one, and early
    // stopping counts from it.
    if first > 1 {
        if let Some(validate) = validate.as_deref_mut() {
            let score = validate(model);
            if score.is_finite() {
                best = Some((
                    score,
                    model.params().iter().map(|p| p.value.clone()).collect(),
                ));
                report.best_step = first - 1;
                report.best_validation = Some(score);
            }
        }
    }
    for step in first..=config.steps {
        last = step;
        let x = next_batch(step, &mut rng);
        // Per sample: a conditional batch also holds the context columns.
        let dim = if model.context_dim() > 0 {
            model.dim()
        } else {
            x.dim(1)
        };
        let limit = first_loss.map(|first| first + EXPLODED_NATS_PER_DIM * dim.max(1) as f64);
        // The first step begun after the limit is the last, and a check.
        let out_of_time = config
            .options
            .time_limit
            .is_some_and(|limit| start.seconds() >= limit);
        let is_check = step % eval_every == 0 || step == config.steps || out_of_time;
        let update = Update::of_step(&config.options, base_lr, step, is_check);
        let stepped = checked_step(model, adam, &x, limit, &update);
        let (loss, grad_norm) = match stepped {
            Ok(done) => done,
            // A layer that is itself unusable is the cause to report.
            Err(_) if model.flow.validate().is_err() => {
                let source = model.flow.validate().expect_err("failed just above");
                return Err(TrainError::BadLayer { step, source });
            }
            Err(StepError::NonFinite(what)) => return Err(TrainError::Diverged { step, what }),
            Err(StepError::Exploded(loss)) => {
                return Err(TrainError::Exploded {
                    step,
                    loss,
                    first_loss: first_loss.expect("a limit needs a first loss"),
                    dim,
                    limit_per_dim: EXPLODED_NATS_PER_DIM,
                    largest: largest_term(model, &x),
                })
            }
        };
        first_loss.get_or_insert(loss);
        on_step(step, loss);
        report.final_loss = loss;
        if !is_check {
            continue;
        }
        report.loss_curve.push((step, loss));
        let (validation, keep) = match validate.as_deref_mut() {
            Some(validate) => {
                let t = Stopwatch::start();
                let score = validate(model);
                validation_seconds += t.seconds();
                report.validation_curve.push((step, score));
                let improved = score.is_finite() && best.as_ref().is_none_or(|(b, _)| score < *b);
                if improved {
                    // Cheap: the tensors share storage until Adam writes (copy-on-write).
                    best = Some((
                        score,
                        model.params().iter().map(|p| p.value.clone()).collect(),
                    ));
                    report.best_step = step;
                    report.best_validation = Some(score);
                    checks_without_improvement = 0;
                } else {
                    checks_without_improvement += 1;
                }
                (Some(score), improved)
            }
            // Why test the updated model on this batch: the loss above was
            // computed before the update, and an update can itself blow up.
            None => (None, model.log_prob_batch(&x).all_finite()),
        };
        let check = Check {
            step,
            loss,
            validation,
            lr: update.lr,
            grad_norm: grad_norm.unwrap_or(f64::NAN),
            keep,
            seconds: start.seconds(),
        };
        on_check(&check, model, adam);
        report.checks.push(check);
        if let Some(patience) = config.options.patience {
            if checks_without_improvement >= patience {
                report.stop = Stop::Patience { checks: patience };
                break;
            }
        }
        if let (true, Some(seconds)) = (
            out_of_time && step < config.steps,
            config.options.time_limit,
        ) {
            report.stop = Stop::TimeLimit { seconds };
            break;
        }
    }
    report.train_seconds = start.seconds();
    let taken = last + 1 - first;
    report.ms_per_step = 1e3 * (report.train_seconds - validation_seconds) / taken as f64;
    report.steps = last;
    match best {
        Some((_, values)) => {
            for (p, v) in model.params_mut().into_iter().zip(values) {
                p.value = v;
            }
        }
        None => report.best_step = last,
    }
    Ok(report)
}

/// Refuses options out of range: a clipping norm not positive and finite,
/// a negative or non-finite weight decay, a patience of 0 or without a
/// validation score, a schedule whose rate is negative or not finite at
/// its first step, the end of its warm-up or its last step (both kinds
/// are monotone after the warm-up, so these bound every step's).
pub(crate) fn check_options(
    config: &TrainOptions,
    steps: usize,
    validates: bool,
) -> Result<(), TrainError> {
    let bad = |name: &str, message: String| {
        Err(TrainError::BadArgument {
            name: name.into(),
            message,
        })
    };
    if let Some(c) = config.clip_norm {
        if !(c > 0.0 && c.is_finite()) {
            return bad("clip_norm", format!("must be a positive number, got {c}"));
        }
    }
    if let Some(t) = config.time_limit {
        if !(t > 0.0 && t.is_finite()) {
            return bad(
                "time_limit",
                format!("must be a positive number of seconds, got {t}"),
            );
        }
        if cfg!(all(target_arch = "wasm32", target_os = "unknown")) {
            return bad(
                "time_limit",
                "this target (wasm32-unknown-unknown) has no clock to stop by: give a step count"
                    .into(),
            );
        }
    }
    let wd = config.weight_decay;
    if !(wd >= 0.0 && wd.is_finite()) {
        return bad("weight_decay", format!("must be 0 or more, got {wd}"));
    }
    match config.patience {
        Some(0) => return bad("patience", "must be at least 1 check".into()),
        Some(_) if !validates => {
            return bad(
                "patience",
                "early stopping needs a validation score, and this run has none".into(),
            )
        }
        _ => {}
    }
    if let Some(schedule) = config.schedule {
        let warmup = match schedule {
            LrSchedule::WarmupCosine { warmup, .. } => warmup,
            _ => 0,
        };
        for t in [
            0,
            warmup.min(steps.saturating_sub(1)),
            steps.saturating_sub(1),
        ] {
            let lr = schedule.lr(t);
            if !(lr >= 0.0 && lr.is_finite()) {
                return bad(
                    "schedule",
                    format!("gives the learning rate {lr} at step {}", t + 1),
                );
            }
        }
    }
    Ok(())
}

/// How one step updates: its learning rate, clipping and decay, and
/// whether to measure the gradient norm when nothing needs it (no
/// clipping) for a check.
pub(crate) struct Update {
    pub(crate) lr: f64,
    clip_norm: Option<f64>,
    weight_decay: f64,
    measure_norm: bool,
}

impl Update {
    /// Step `step` (1-based) of a run at base rate `base_lr`.
    pub(crate) fn of_step(
        options: &TrainOptions,
        base_lr: f64,
        step: usize,
        measure_norm: bool,
    ) -> Update {
        Update {
            lr: options.schedule.map_or(base_lr, |s| s.lr(step - 1)),
            clip_norm: options.clip_norm,
            weight_decay: options.weight_decay,
            measure_norm,
        }
    }

    /// Clips and decays the gradients and parameters of `params`, then one
    /// update of `adam` at this step's rate (its `lr` left as it was).
    /// Returns the gradients' joint norm before clipping, when clipping or
    /// `measure_norm` computed it.
    pub(crate) fn apply<T: Element>(
        &self,
        mut params: Vec<&mut crate::nn::Param<T>>,
        adam: &mut Adam<T>,
    ) -> Option<f64> {
        let norm = match self.clip_norm {
            Some(max_norm) => Some(clip_grad_norm(
                params.iter_mut().map(|p| &mut **p),
                max_norm,
            )),
            // An infinite bound scales nothing and returns the norm.
            None if self.measure_norm => Some(clip_grad_norm(
                params.iter_mut().map(|p| &mut **p),
                f64::INFINITY,
            )),
            None => None,
        };
        if self.weight_decay > 0.0 {
            // θ − (lr·λ)·θ rather than (1 − lr·λ)·θ: in f32 the factor
            // 1 − lr·λ rounds to 1 for lr·λ below 3e-8.
            let decay = T::from_f64(self.lr * self.weight_decay);
            for p in params.iter_mut().filter(|p| p.grad.is_some()) {
                p.value = p.value.sub(&p.value.mul_scalar(decay));
            }
        }
        let base = adam.lr;
        adam.lr = self.lr;
        adam.step(params);
        adam.lr = base;
        norm
    }
}

/// One optimisation step on batch `x` (`[batch, dim]`): the loss
/// L = −(1/B) Σᵦ log p(xᵦ) on a fresh tape, its gradient, one Adam update.
/// Returns L in nats per sample.
///
/// # Errors
/// When L is not finite: a description of the first layer whose output or
/// log-det went non-finite (see [`first_non_finite`]); the parameters are
/// left as they were.
pub fn train_step<T: Element>(
    model: &mut FlowModel<T>,
    adam: &mut Adam<T>,
    x: &Tensor<T>,
) -> Result<f64, String> {
    let update = Update::of_step(&TrainOptions::default(), adam.lr, 1, false);
    let stepped = checked_step(model, adam, x, None, &update);
    stepped.map(|(loss, _)| loss).map_err(|e| match e {
        StepError::NonFinite(what) => what,
        StepError::Exploded(loss) => unreachable!("no limit was set, yet loss {loss} exceeded it"),
    })
}

/// Why [`checked_step`] did not update.
enum StepError {
    /// The loss is not finite: what went non-finite first.
    NonFinite(String),
    /// The loss is finite but above the limit: the loss.
    Exploded(f64),
}

/// [`train_step`] with `update`'s rate, clipping and decay, also refusing (before any update) a loss above
/// `limit`. Returns the loss and, when clipping or `update.measure_norm`
/// asks for it, the gradients' joint norm before clipping.
fn checked_step<T: Element>(
    model: &mut FlowModel<T>,
    adam: &mut Adam<T>,
    x: &Tensor<T>,
    limit: Option<f64>,
    update: &Update,
) -> Result<(f64, Option<f64>), StepError> {
    let loss = {
        let tape = Tape::new();
        let loss = model
            .log_prob_batch_var(&tape.constant(x.clone()))
            .mean_all()
            .neg();
        let value = loss.value().item().to_f64();
        if !value.is_finite() {
            return Err(StepError::NonFinite(first_non_finite(model, x)));
        }
        if limit.is_some_and(|limit| value > limit) {
            return Err(StepError::Exploded(value));
        }
        tape.backward(&loss).assign(model.params_mut());
        value
    };
    let norm = update.apply(model.params_mut(), adam);
    Ok((loss, norm))
}

/// The term of log p(x) = log π(z) + Σ log-dets largest in size on `x`,
/// averaged over the batch: `"layer 3 (AffineCoupling) log-det, mean
/// -4.1e30 nats"` or `"the prior log-density, mean ..."`.
pub fn largest_term<T: Element>(model: &FlowModel<T>, x: &Tensor<T>) -> String {
    let tape = Tape::no_grad();
    let (x, c) = model.split_batch(x);
    let e = model.context_features(c.map(|c| tape.constant(c)).as_ref());
    let mut v: Var<T> = tape.constant(x);
    let mean = |t: &Tensor<T>| t.to_f64_vec().iter().sum::<f64>() / t.numel().max(1) as f64;
    let mut largest: Option<(f64, String)> = None;
    let mut consider = |value: f64, name: String| {
        if largest.as_ref().is_none_or(|(m, _)| value.abs() > m.abs()) {
            largest = Some((value, name));
        }
    };
    for (i, layer) in model.flow.layers.iter().enumerate().rev() {
        let (z, log_det) = layer.inverse_with_context(&v, e.as_ref());
        consider(
            mean(log_det.value()),
            format!("layer {i} ({}) log-det", layer.name()),
        );
        v = z;
    }
    consider(
        mean(
            model
                .prior
                .log_prob_given(&v, e.as_ref(), &model.prior_params)
                .value(),
        ),
        "the prior log-density".into(),
    );
    let (value, name) = largest.expect("the prior is always considered");
    format!("{name}, mean {value:.4e} nats")
}

/// Names the first layer, in the inverse (data → latent) order the loss
/// runs, whose output or log-det holds a NaN or infinity on `x`.
pub fn first_non_finite<T: Element>(model: &FlowModel<T>, x: &Tensor<T>) -> String {
    if !x.all_finite() {
        return "the input batch".into();
    }
    let tape = Tape::no_grad();
    let (x, c) = model.split_batch(x);
    let e = model.context_features(c.map(|c| tape.constant(c)).as_ref());
    let mut v: Var<T> = tape.constant(x);
    let layers = &model.flow.layers;
    for (i, layer) in layers.iter().enumerate().rev() {
        let (z, log_det) = layer.inverse_with_context(&v, e.as_ref());
        if !z.value().all_finite() {
            return format!("layer {i} ({}) output", layer.name());
        }
        if !log_det.value().all_finite() {
            return format!("layer {i} ({}) log-det", layer.name());
        }
        v = z;
    }
    "the loss (prior log-density)".into()
}
