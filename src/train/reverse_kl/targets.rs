//! What reverse KL scores a model's samples by: [`LogTarget`], an
//! unnormalised log-density log p̃(x) (an [`Energy`], a closure
//! [`LogDensityFn`], a trained [`Teacher`]), and [`ConditionalLogTarget`],
//! a joint log p̃(θ, x) for amortised variational inference.

use crate::autodiff::Var;
use crate::data::energy::Energy;
use crate::flows::FlowModel;
use crate::tensor::Element;

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

/// An unnormalised joint log-density log p̃(θ, x) that can be put on a
/// tape: the target of amortised variational inference, where a
/// conditional flow q(θ | x) learns the posterior p(θ | x) = p(θ, x) / p(x)
/// for every observation x at once
/// ([`fit_variational_posterior`](crate::train::amortised::fit_variational_posterior)).
/// Its normaliser in θ, p(x), may differ from one x to the next: the loss
/// then differs from E_x[KL(q(θ | x) ‖ p(θ | x))] by E_x[log p(x)], a
/// constant of the model.
pub trait ConditionalLogTarget<T: Element>: Sync {
    /// log p̃(θ, x) of every row pair, θ `[batch, dim]` and x
    /// `[batch, context_dim]`, as `[batch]` on their tape.
    fn log_joint<'t>(&self, theta: &Var<'t, T>, x: &Var<'t, T>) -> Var<'t, T>;
}

/// What a reverse-KL run scores the model's samples by.
#[derive(Clone, Copy)]
pub(crate) enum Target<'a, T: Element> {
    /// log p̃(x), for a model without a context.
    Plain(&'a dyn LogTarget<T>),
    /// log p̃(θ, c), the context c of each row given beside it.
    Given(&'a dyn ConditionalLogTarget<T>),
}

impl<T: Element> Target<'_, T> {
    /// log p̃ of the samples `x` drawn given the contexts `c` (None for a
    /// plain target).
    pub(crate) fn log_density<'t>(&self, x: &Var<'t, T>, c: Option<&Var<'t, T>>) -> Var<'t, T> {
        match (self, c) {
            (Target::Plain(target), _) => target.log_density(x),
            (Target::Given(target), Some(c)) => target.log_joint(x, c),
            (Target::Given(_), None) => unreachable!("a conditional target is run with contexts"),
        }
    }
}

/// An unnormalised log-density given as a closure on the tape:
/// `x` (`[batch, dim]`) to log p̃ (`[batch]`), built from [`Var`]'s ops so
/// that reverse KL can differentiate through it. Fits any flow with
/// [`fit_reverse_kl`](super::fit_reverse_kl).
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
