//! Optimisers, gradient-norm clipping and learning-rate schedules.
//!
//! Each optimiser reads `Param::grad` and updates `Param::value` in place
//! (copy-on-write: a value shared with a saved copy is copied first). Its
//! state is kept by position in the parameter list, so pass the same
//! parameters in the same order every step. A parameter whose `grad` is
//! `None` is left as it is.
//!
//! | item | update |
//! | --- | --- |
//! | [`Sgd`] | `v ← μ·v + g`, `θ ← θ − lr·v` |
//! | [`Adam`] | moments `m`, `v` of `g` and `g²`, `θ ← θ − lr·m̂ / (√v̂ + ε)` |
//! | [`AdamW`] | Adam with decoupled weight decay `θ ← θ − lr·λ·θ` |
//! | [`clip_grad_norm`] | `g ← g · min(1, c / ‖g‖)` over all parameters together |
//! | [`LrSchedule`] | constant, step decay, or linear warm-up then cosine decay |
//!
//! A schedule is applied by setting the optimiser's public `lr` before each
//! step: `adam.lr = schedule.lr(step)`.

use crate::autodiff::Param;
use crate::tensor::math;
use crate::tensor::parallel::go_parallel;
use crate::tensor::parallel::prelude::*;
use crate::tensor::{Element, Tensor};

/// Elements per task when an update is split across threads.
const CHUNK: usize = 1 << 14;

/// Applies `update(θ, g, state₁, state₂)` to every entry of every parameter
/// that has a gradient, creating the two zero-initialised state tensors per
/// parameter on the first call. The entries of all parameters are cut into
/// chunks that run on rayon's threads when there are many, so one large
/// weight matrix does not leave the other core idle.
///
/// # Panics
/// If a parameter changed shape since the state was created (naming it and
/// the optimiser `name`).
fn update_each<T: Element>(
    name: &str,
    params: Vec<&mut Param<T>>,
    state: &mut Vec<[Tensor<T>; 2]>,
    update: impl Fn(&mut T, T, &mut T, &mut T) + Sync + Send,
) {
    while state.len() < params.len() {
        let shape = params[state.len()].value.shape().to_vec();
        state.push([Tensor::zeros(&shape), Tensor::zeros(&shape)]);
    }
    let grads: Vec<Option<Tensor<T>>> = params
        .iter()
        .map(|p| p.grad.as_ref().map(|g| g.contiguous()))
        .collect();
    // (θ, g, s₁, s₂) chunks of every parameter with a gradient.
    type Task<'a, T> = (&'a mut [T], &'a [T], &'a mut [T], &'a mut [T]);
    let mut tasks: Vec<Task<'_, T>> = Vec::new();
    let mut total = 0;
    for ((p, g), [s1, s2]) in params.into_iter().zip(&grads).zip(state.iter_mut()) {
        let Some(g) = g else { continue };
        assert_eq!(
            s1.shape(),
            p.value.shape(),
            "{name}: parameter {} changed shape",
            p.name
        );
        assert_eq!(
            g.shape(),
            p.value.shape(),
            "{name}: gradient of {} has shape {:?}, value {:?}",
            p.name,
            g.shape(),
            p.value.shape()
        );
        let g = g
            .as_slice()
            .expect("contiguous() gives a contiguous tensor");
        total += g.len();
        let chunks = p
            .value
            .as_mut_slice()
            .chunks_mut(CHUNK)
            .zip(g.chunks(CHUNK))
            .zip(s1.as_mut_slice().chunks_mut(CHUNK))
            .zip(s2.as_mut_slice().chunks_mut(CHUNK))
            .map(|(((theta, g), s1), s2)| (theta, g, s1, s2));
        tasks.extend(chunks);
    }
    let run = |(theta, g, s1, s2): Task<'_, T>| {
        for (((t, &g), a), b) in theta.iter_mut().zip(g).zip(s1).zip(s2) {
            update(t, g, a, b);
        }
    };
    if go_parallel(total) {
        tasks.into_par_iter().for_each(run);
    } else {
        tasks.into_iter().for_each(run);
    }
}

/// Stochastic gradient descent with (heavy-ball) momentum and optional L2
/// weight decay, as PyTorch's `SGD`:
/// g ← g + λ·θ,  v ← μ·v + g,  θ ← θ − lr·v  (v starts at 0; μ = 0 is plain SGD).
///
/// # Source
/// B. T. Polyak, "Some methods of speeding up the convergence of iteration
/// methods", USSR Comp. Math. and Math. Physics 4(5), 1964; the form used in
/// deep learning: I. Sutskever, J. Martens, G. Dahl, G. Hinton, "On the
/// importance of initialization and momentum in deep learning", ICML 2013.
#[derive(Clone, Debug)]
pub struct Sgd<T: Element> {
    /// Learning rate.
    pub lr: f64,
    /// Momentum μ in [0, 1).
    pub momentum: f64,
    /// L2 penalty λ added to the gradient (0 for none).
    pub weight_decay: f64,
    step: u64,
    state: Vec<[Tensor<T>; 2]>,
}

impl<T: Element> Sgd<T> {
    /// SGD with learning rate `lr` and momentum `momentum` (0 for plain SGD),
    /// no weight decay.
    pub fn new(lr: f64, momentum: f64) -> Self {
        Sgd {
            lr,
            momentum,
            weight_decay: 0.0,
            step: 0,
            state: Vec::new(),
        }
    }

    /// The number of steps taken.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// One update of every parameter from its `grad`.
    ///
    /// # Panics
    /// If a parameter changes shape between steps.
    pub fn step<'a>(&mut self, params: impl IntoIterator<Item = &'a mut Param<T>>) {
        self.step += 1;
        let lr = T::from_f64(self.lr);
        let mu = T::from_f64(self.momentum);
        let decay = T::from_f64(self.weight_decay);
        let params: Vec<&mut Param<T>> = params.into_iter().collect();
        update_each("Sgd", params, &mut self.state, |theta, g, v, _| {
            let g = g + decay * *theta;
            *v = mu * *v + g;
            *theta -= lr * *v;
        });
    }
}

/// Adam: per-entry step sizes from running moments of the gradient.
///
/// With gradient g at step t:
/// m ← β₁m + (1 − β₁)g,  v ← β₂v + (1 − β₂)g²,
/// m̂ = m / (1 − β₁ᵗ),  v̂ = v / (1 − β₂ᵗ),  θ ← θ − lr · m̂ / (√v̂ + ε).
///
/// The state is kept by position in the parameter list, so pass the same
/// parameters in the same order every step.
///
/// # Source
/// D. P. Kingma, J. Ba, "Adam: A Method for Stochastic Optimization",
/// ICLR 2015, arXiv:1412.6980 (Algorithm 1).
#[derive(Clone, Debug)]
pub struct Adam<T: Element> {
    /// Learning rate.
    pub lr: f64,
    /// Decay of the first moment.
    pub beta1: f64,
    /// Decay of the second moment.
    pub beta2: f64,
    /// Added to √v̂ to avoid division by zero.
    pub eps: f64,
    step: u64,
    state: Vec<[Tensor<T>; 2]>,
}

impl<T: Element> Adam<T> {
    /// Adam with learning rate `lr` and the paper's defaults β₁ = 0.9,
    /// β₂ = 0.999, ε = 1e-8.
    pub fn new(lr: f64) -> Self {
        Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            step: 0,
            state: Vec::new(),
        }
    }

    /// The number of steps taken.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// The moments [m, v] of each parameter, by position in the parameter
    /// list (empty before the first step): what a checkpoint saves to resume.
    pub fn moments(&self) -> &[[Tensor<T>; 2]] {
        &self.state
    }

    /// Continues from a saved state: `step` updates taken, with `moments` as
    /// [`Adam::moments`] returned them.
    pub fn restore(&mut self, step: u64, moments: Vec<[Tensor<T>; 2]>) {
        self.step = step;
        self.state = moments;
    }

    /// One update of every parameter from its `grad` (a parameter without a
    /// gradient is left as it is).
    ///
    /// # Panics
    /// If the parameter list changes length or shape between steps.
    pub fn step<'a>(&mut self, params: impl IntoIterator<Item = &'a mut Param<T>>) {
        self.step += 1;
        let params: Vec<&mut Param<T>> = params.into_iter().collect();
        adam_update(
            "Adam",
            params,
            &mut self.state,
            AdamStep::new(self.lr, self.beta1, self.beta2, self.eps, self.step),
            T::ZERO,
        );
    }
}

/// Adam's state, saved so that `--resume` continues the same optimisation:
/// the hyperparameters, the step count t, and the moments (m, v) of every
/// parameter in the order of the parameter list it was stepped with
/// ([`FlowModel::params`](crate::flows::FlowModel::params) for a model).
#[derive(Clone, Debug)]
pub struct AdamState<T: Element> {
    /// Learning rate.
    pub lr: f64,
    /// Decay of the first moment.
    pub beta1: f64,
    /// Decay of the second moment.
    pub beta2: f64,
    /// Added to √v̂.
    pub eps: f64,
    /// Steps taken.
    pub step: u64,
    /// (m, v) per parameter, each of the parameter's shape; empty before the
    /// first step.
    pub moments: Vec<[Tensor<T>; 2]>,
}

impl<T: Element> AdamState<T> {
    /// A copy of `adam`'s state (the tensors are shared, not copied).
    pub fn of(adam: &Adam<T>) -> Self {
        AdamState {
            lr: adam.lr,
            beta1: adam.beta1,
            beta2: adam.beta2,
            eps: adam.eps,
            step: adam.steps(),
            moments: adam.moments().to_vec(),
        }
    }

    /// An Adam that continues from this state.
    pub fn to_adam(&self) -> Adam<T> {
        let mut adam = Adam::new(self.lr);
        adam.beta1 = self.beta1;
        adam.beta2 = self.beta2;
        adam.eps = self.eps;
        adam.restore(self.step, self.moments.clone());
        adam
    }
}

/// AdamW: Adam with decoupled weight decay. Before the Adam update, each
/// weight shrinks by its own multiple, θ ← θ − lr·λ·θ, instead of λθ being
/// added to the gradient (where Adam's per-entry scaling would weaken it for
/// entries with large gradients).
///
/// # Source
/// I. Loshchilov, F. Hutter, "Decoupled Weight Decay Regularization",
/// ICLR 2019, arXiv:1711.05101 (Algorithm 2).
#[derive(Clone, Debug)]
pub struct AdamW<T: Element> {
    /// Learning rate.
    pub lr: f64,
    /// Decay of the first moment.
    pub beta1: f64,
    /// Decay of the second moment.
    pub beta2: f64,
    /// Added to √v̂ to avoid division by zero.
    pub eps: f64,
    /// Decoupled weight decay λ.
    pub weight_decay: f64,
    step: u64,
    state: Vec<[Tensor<T>; 2]>,
}

impl<T: Element> AdamW<T> {
    /// AdamW with learning rate `lr`, weight decay `weight_decay` (PyTorch's
    /// default is 0.01), β₁ = 0.9, β₂ = 0.999, ε = 1e-8.
    pub fn new(lr: f64, weight_decay: f64) -> Self {
        AdamW {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay,
            step: 0,
            state: Vec::new(),
        }
    }

    /// The number of steps taken.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// One update of every parameter from its `grad` (a parameter without a
    /// gradient is left as it is, undecayed).
    ///
    /// # Panics
    /// If the parameter list changes length or shape between steps.
    pub fn step<'a>(&mut self, params: impl IntoIterator<Item = &'a mut Param<T>>) {
        self.step += 1;
        let params: Vec<&mut Param<T>> = params.into_iter().collect();
        adam_update(
            "AdamW",
            params,
            &mut self.state,
            AdamStep::new(self.lr, self.beta1, self.beta2, self.eps, self.step),
            T::from_f64(self.lr * self.weight_decay),
        );
    }
}

/// The scalars of one Adam step t, with the bias corrections folded into the
/// step size (Kingma & Ba, §2, the paragraph after Algorithm 1):
/// lr·m̂/(√v̂ + ε) = αₜ·m/(√v + ε̂) with αₜ = lr·√(1 − β₂ᵗ)/(1 − β₁ᵗ) and
/// ε̂ = ε·√(1 − β₂ᵗ), exactly.
struct AdamStep {
    step_size: f64,
    eps_hat: f64,
    beta1: f64,
    beta2: f64,
}

impl AdamStep {
    fn new(lr: f64, beta1: f64, beta2: f64, eps: f64, t: u64) -> Self {
        let t = t.min(i32::MAX as u64) as i32;
        let correction2 = (1.0 - beta2.powi(t)).sqrt();
        AdamStep {
            step_size: lr * correction2 / (1.0 - beta1.powi(t)),
            eps_hat: eps * correction2,
            beta1,
            beta2,
        }
    }
}

/// θ ← θ − decay·θ, then the Adam update of [`Adam`] (decay = lr·λ for AdamW, 0 for Adam).
fn adam_update<T: Element>(
    name: &str,
    params: Vec<&mut Param<T>>,
    state: &mut Vec<[Tensor<T>; 2]>,
    s: AdamStep,
    decay: T,
) {
    let (step_size, eps_hat) = (T::from_f64(s.step_size), T::from_f64(s.eps_hat));
    let (b1, b2) = (T::from_f64(s.beta1), T::from_f64(s.beta2));
    let (c1, c2) = (T::ONE - b1, T::ONE - b2);
    update_each(name, params, state, |theta, g, m, v| {
        *m = b1 * *m + c1 * g;
        *v = b2 * *v + c2 * g * g;
        *theta -= decay * *theta + step_size * *m / (v.sqrt() + eps_hat);
    });
}

/// Scales every gradient by one factor so that their joint Euclidean norm
/// is at most `max_norm`: with ‖g‖ = √(Σ over all parameters and entries of
/// g²), each g ← g · max_norm / ‖g‖ when ‖g‖ > max_norm (as PyTorch's
/// `clip_grad_norm_`, without its 1e-6 in the denominator). Parameters
/// without a gradient are skipped. Returns ‖g‖ before clipping, for logging
/// (NaN or infinite when a gradient is, and then nothing is scaled).
///
/// # Source
/// R. Pascanu, T. Mikolov, Y. Bengio, "On the difficulty of training
/// recurrent neural networks", ICML 2013, arXiv:1211.5063, §3.2.
///
/// # Panics
/// If `max_norm` is not positive.
pub fn clip_grad_norm<'a, T: Element>(
    params: impl IntoIterator<Item = &'a mut Param<T>>,
    max_norm: f64,
) -> f64 {
    assert!(
        max_norm > 0.0,
        "clip_grad_norm: max_norm must be positive, got {max_norm}"
    );
    let mut params: Vec<&mut Param<T>> = params.into_iter().collect();
    let squares: f64 = params
        .iter()
        .filter_map(|p| p.grad.as_ref())
        .map(|g| g.to_f64_vec().iter().map(|x| x * x).sum::<f64>())
        .sum();
    let norm = squares.sqrt();
    if norm.is_finite() && norm > max_norm {
        let scale = T::from_f64(max_norm / norm);
        for p in params.iter_mut() {
            if let Some(g) = p.grad.as_mut() {
                g.as_mut_slice().iter_mut().for_each(|x| *x *= scale);
            }
        }
    }
    norm
}

/// A learning rate as a function of the step, `lr(t)` for t = 0, 1, 2, …
/// (the number of updates taken before this one).
///
/// # Examples
/// ```
/// use flowzoo::nn::optim::LrSchedule;
/// let s = LrSchedule::WarmupCosine { base: 1e-3, warmup: 100, total: 1000, min: 0.0 };
/// let close = |a: f64, b: f64| (a - b).abs() < 1e-15;
/// assert!(close(s.lr(0), 1e-5));    // 1e-3 · 1/100
/// assert!(close(s.lr(99), 1e-3));   // warm-up done
/// assert!(close(s.lr(550), 5e-4));  // half-way through the cosine: p = 450/900
/// assert!(close(s.lr(1000), 0.0));  // the end
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LrSchedule {
    /// The same rate at every step.
    Constant(f64),
    /// Step decay: `base · gamma^⌊t / every⌋`.
    Step {
        /// The rate of the first `every` steps.
        base: f64,
        /// Steps between decays (at least 1).
        every: usize,
        /// Factor applied at each decay, e.g. 0.1.
        gamma: f64,
    },
    /// Linear warm-up then cosine decay:
    /// `base · (t + 1) / warmup` for `t < warmup`, then
    /// `min + (base − min) · (1 + cos(π·p)) / 2` with
    /// `p = (t − warmup) / (total − warmup)` clamped to [0, 1], so the rate
    /// is `base` at the end of the warm-up and reaches `min` at step `total`.
    ///
    /// Source: I. Loshchilov, F. Hutter, "SGDR: Stochastic Gradient Descent
    /// with Warm Restarts", ICLR 2017, arXiv:1608.03983 (the cosine, one
    /// cycle); P. Goyal et al., "Accurate, Large Minibatch SGD",
    /// arXiv:1706.02677, §2.2 (the linear warm-up).
    WarmupCosine {
        /// The peak rate, reached at the end of the warm-up.
        base: f64,
        /// Warm-up steps (0 for none).
        warmup: usize,
        /// Total steps of the run.
        total: usize,
        /// The final rate.
        min: f64,
    },
}

impl LrSchedule {
    /// The learning rate at step `t` (counting from 0).
    pub fn lr(&self, t: usize) -> f64 {
        match *self {
            LrSchedule::Constant(lr) => lr,
            LrSchedule::Step { base, every, gamma } => {
                base * gamma.powi((t / every.max(1)).min(i32::MAX as usize) as i32)
            }
            LrSchedule::WarmupCosine {
                base,
                warmup,
                total,
                min,
            } => {
                if t < warmup {
                    return base * (t + 1) as f64 / warmup as f64;
                }
                let span = total.saturating_sub(warmup).max(1) as f64;
                let p = ((t - warmup) as f64 / span).clamp(0.0, 1.0);
                min + (base - min) * (1.0 + math::cos(std::f64::consts::PI * p)) / 2.0
            }
        }
    }
}
