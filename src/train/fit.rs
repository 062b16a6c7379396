//! [`fit`]: the minibatch maximum-likelihood loop.

use crate::autodiff::{Tape, Var};
use crate::error::TrainError;
use crate::flows::FlowModel;
use crate::nn::Adam;
use crate::tensor::parallel::in_pool;
use crate::tensor::{Element, Tensor};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::time::Instant;

/// How far the training loss may rise above the first step's, in nats per
/// dimension, before [`fit`] stops the run as diverged
/// ([`TrainError::Exploded`]): 100 nats per dimension is a density e¹⁰⁰
/// (about 2¹⁴⁴) times worse per feature than at the start, which no
/// converging run reaches and every exploding one passes.
pub const EXPLODED_NATS_PER_DIM: f64 = 100.0;

/// The settings of a training run. The learning rate is the optimiser's
/// ([`Adam::lr`]), not a setting of the loop.
#[derive(Clone, Debug)]
pub struct FitConfig {
    /// Optimisation steps.
    pub steps: usize,
    /// Seed of the RNG that draws batches and noise.
    pub seed: u64,
    /// Check the validation score every this many steps (and at the last).
    pub eval_every: usize,
}

impl Default for FitConfig {
    /// 5000 steps, seed 0, validation every 100 steps.
    fn default() -> Self {
        FitConfig {
            steps: 5000,
            seed: 0,
            eval_every: 100,
        }
    }
}

/// What a training run did.
#[derive(Clone, Debug, Default)]
pub struct FitReport {
    /// Steps taken.
    pub steps: usize,
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
    /// Wall time of the loop, in seconds (validation included).
    pub train_seconds: f64,
    /// Wall time per optimisation step, validation excluded, in milliseconds.
    pub ms_per_step: f64,
}

/// Trains `model` by maximum likelihood: each step takes the batch
/// `next_batch(step, rng)` (`[batch, dim]`), minimises
/// L = −(1/B) Σᵦ log p(xᵦ) with `adam` (a fresh `Adam::new(lr)`, whose
/// learning rate is the run's), and calls `on_step(step, loss)`.
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
/// loss, naming the largest term of the log-density. The model then holds
/// the parameters of the step before.
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
        |_, _, _| {},
    )
}

/// [`fit`], continuing the optimisation `adam` holds: a fresh
/// `Adam::new(lr)`, or one restored from a checkpoint to resume a run.
/// Steps are counted from `adam.steps() + 1` up to `config.steps` (the
/// total), with learning rate `adam.lr`.
///
/// `on_check(step, model, adam)` is the place to save a checkpoint, so that
/// a run that diverges later keeps its last good one. It is called at a
/// validation point (every `config.eval_every` steps and the last) with the
/// current parameters when they are worth keeping: with `validate`, when
/// the score is finite and the best so far (the parameters the run ends
/// with); without it, when the updated model's log-density of the step's
/// batch is finite, so a model that already produces NaN or infinity is
/// never handed over. The RNG is seeded from `config.seed` and the first
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
    on_check: impl FnMut(usize, &FlowModel<T>, &Adam<T>) + Send,
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
    mut on_check: impl FnMut(usize, &FlowModel<T>, &Adam<T>),
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
    let eval_every = config.eval_every.max(1);
    // The first step joins the seed so that a resumed run does not replay
    // the batches of the steps it already took.
    let mut rng = StdRng::seed_from_u64(config.seed.wrapping_add(first as u64 - 1));
    let mut report = FitReport::default();
    let mut best: Option<(f64, Vec<Tensor<T>>)> = None;
    let start = Instant::now();
    let mut validation_seconds = 0.0;
    let mut first_loss: Option<f64> = None;
    for step in first..=config.steps {
        let x = next_batch(step, &mut rng);
        let dim = x.dim(1);
        let limit = first_loss.map(|first| first + EXPLODED_NATS_PER_DIM * dim.max(1) as f64);
        let loss = match checked_step(model, adam, &x, limit) {
            Ok(loss) => loss,
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
        if step % eval_every == 0 || step == config.steps {
            report.loss_curve.push((step, loss));
            if let Some(validate) = validate.as_deref_mut() {
                let t = Instant::now();
                let score = validate(model);
                validation_seconds += t.elapsed().as_secs_f64();
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
                    on_check(step, model, adam);
                }
            } else if model.log_prob(&x).all_finite() {
                // Why test the updated model on this batch: the loss above was
                // computed before the update, and an update can itself blow up.
                on_check(step, model, adam);
            }
        }
    }
    report.train_seconds = start.elapsed().as_secs_f64();
    let taken = config.steps + 1 - first;
    report.ms_per_step = 1e3 * (report.train_seconds - validation_seconds) / taken as f64;
    report.steps = config.steps;
    match best {
        Some((_, values)) => {
            for (p, v) in model.params_mut().into_iter().zip(values) {
                p.value = v;
            }
        }
        None => report.best_step = config.steps,
    }
    Ok(report)
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
    checked_step(model, adam, x, None).map_err(|e| match e {
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

/// [`train_step`], also refusing (before any update) a loss above `limit`.
fn checked_step<T: Element>(
    model: &mut FlowModel<T>,
    adam: &mut Adam<T>,
    x: &Tensor<T>,
    limit: Option<f64>,
) -> Result<f64, StepError> {
    let loss = {
        let tape = Tape::new();
        let loss = model
            .log_prob_var(&tape.constant(x.clone()))
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
    adam.step(model.params_mut());
    Ok(loss)
}

/// The term of log p(x) = log π(z) + Σ log-dets largest in size on `x`,
/// averaged over the batch: `"layer 3 (AffineCoupling) log-det, mean
/// -4.1e30 nats"` or `"the prior log-density, mean ..."`.
pub fn largest_term<T: Element>(model: &FlowModel<T>, x: &Tensor<T>) -> String {
    let tape = Tape::no_grad();
    let mut v: Var<T> = tape.constant(x.clone());
    let mean = |t: &Tensor<T>| t.to_f64_vec().iter().sum::<f64>() / t.numel().max(1) as f64;
    let mut largest: Option<(f64, String)> = None;
    let mut consider = |value: f64, name: String| {
        if largest.as_ref().is_none_or(|(m, _)| value.abs() > m.abs()) {
            largest = Some((value, name));
        }
    };
    for (i, layer) in model.flow.layers.iter().enumerate().rev() {
        let (z, log_det) = layer.inverse(&v);
        consider(
            mean(log_det.value()),
            format!("layer {i} ({}) log-det", layer.name()),
        );
        v = z;
    }
    consider(
        mean(model.prior_log_prob(&v).value()),
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
    let mut v: Var<T> = tape.constant(x.clone());
    let layers = &model.flow.layers;
    for (i, layer) in layers.iter().enumerate().rev() {
        let (z, log_det) = layer.inverse(&v);
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
