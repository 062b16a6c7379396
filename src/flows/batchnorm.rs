//! [`BatchNorm`] as a bijector: batch normalisation with its log-det, as
//! RealNVP and MAF use it between flow layers.

use super::error::FlowError;
use super::flow::Flow;
use super::spec::{self, LayerSpec};
use crate::autodiff::{Param, Var};
use crate::tensor::{Element, Tensor};
use std::sync::Mutex;

/// Which mean and variance a [`BatchNorm`] normalises with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum BatchNormMode {
    /// Batch statistics on a recording tape (a training step), running
    /// averages on a no-grad tape (evaluation, sampling). The default, so the
    /// training loop and evaluation need no mode switch.
    #[default]
    Auto,
    /// Always the statistics of the batch in `inverse` (for gradient checks of
    /// the training-time map); `forward` still uses the running averages.
    Batch,
    /// Always the running averages: a fixed element-wise affine map, exactly
    /// invertible (evaluation).
    Running,
}

impl BatchNormMode {
    /// The name a checkpoint stores (`"auto"`, `"batch"`, `"running"`).
    pub fn name(&self) -> &'static str {
        match self {
            BatchNormMode::Auto => "auto",
            BatchNormMode::Batch => "batch",
            BatchNormMode::Running => "running",
        }
    }

    /// The mode called `name`, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            BatchNormMode::Auto,
            BatchNormMode::Batch,
            BatchNormMode::Running,
        ]
        .into_iter()
        .find(|m| m.name() == name)
    }
}

/// Batch normalisation as an invertible layer. In the data → latent
/// direction, per channel c,
///
/// z = (x − μ_c) / √(v_c + ε) ⊙ exp(γ_c) + β_c,
/// log|det ∂z/∂x| = H·W·Σ_c [γ_c − ½·log(v_c + ε)],
///
/// where (μ, v) are the mean and (population) variance of the batch during
/// training and running averages of them in evaluation; `forward` is the
/// inverse map with the running averages. γ is stored as a log (the scale
/// exp(γ) stays positive). Each training-time `inverse` on a recording tape
/// updates the running averages, μ̄ ← (1 − m)·μ̄ + m·μ (and v̄ likewise) with
/// momentum m, through interior mutability (the [`Flow`] methods take `&self`).
///
/// With batch statistics the map of one sample depends on the whole batch;
/// as in RealNVP and MAF the log-det treats (μ, v) as constants per batch,
/// and the gradient flows through them. In evaluation the layer is a fixed
/// element-wise affine map, exactly invertible, and `check_flow` proves it.
///
/// # Shapes
/// `[batch, channels]` or `[batch, channels, height, width]`, same shape out;
/// log-det `[batch]`.
///
/// # Units
/// Log-dets in nats.
///
/// # Panics
/// If the input's axis 1 is not `channels`, naming the layer and both shapes.
///
/// # Source
/// S. Ioffe, C. Szegedy, "Batch Normalization", ICML 2015, arXiv:1502.03167;
/// as a bijector: Dinh, Sohl-Dickstein, Bengio, arXiv:1605.08803, §3.7 and
/// appendix E; Papamakarios, Pavlakou, Murray, arXiv:1705.07057, appendix B.
///
/// # Derivation
/// [`derivations::realnvp`, "Batch normalisation as a bijector"](crate::derivations::realnvp#batch-normalisation-as-a-bijector)
/// (docs/derivations/realnvp.md): the map, its log-det, and what changes
/// between batch and running statistics.
///
/// # Examples
/// ```
/// use flowzoo::flows::{batchnorm::{BatchNorm, BatchNormMode}, Flow};
/// use flowzoo::tensor::Tensor;
/// let mut layer = BatchNorm::<f64>::new(2);
/// layer.mode = BatchNormMode::Running;
/// let x = Tensor::from_vec(vec![1.0, -2.0, 3.0, 0.5], &[2, 2]);
/// let (z, _) = layer.inverse_tensor(&x);
/// let (x_back, _) = layer.forward_tensor(&z);
/// assert!(x.sub(&x_back).to_vec().iter().all(|d| d.abs() < 1e-12));
/// ```
pub struct BatchNorm<T: Element> {
    /// The number of channels C (features, for vectors).
    pub channels: usize,
    /// γ, the log of the per-channel scale, `[channels]`, starting at 0.
    pub log_gamma: Param<T>,
    /// β, the per-channel shift, `[channels]`, starting at 0.
    pub beta: Param<T>,
    /// The weight m of the newest batch in the running averages.
    pub momentum: f64,
    /// ε, added to the variance before the square root.
    pub eps: f64,
    /// Batch or running statistics.
    pub mode: BatchNormMode,
    /// (running mean, running variance), each `[channels]`.
    running: Mutex<(Tensor<T>, Tensor<T>)>,
}

impl<T: Element> BatchNorm<T> {
    /// A batch norm over `channels` channels: γ = β = 0, running mean 0 and
    /// variance 1, momentum 0.1, ε = 1e-5, [`BatchNormMode::Auto`].
    pub fn new(channels: usize) -> Self {
        BatchNorm {
            channels,
            log_gamma: Param::new("log_gamma", Tensor::zeros(&[channels])),
            beta: Param::new("beta", Tensor::zeros(&[channels])),
            momentum: 0.1,
            eps: 1e-5,
            mode: BatchNormMode::Auto,
            running: Mutex::new((Tensor::zeros(&[channels]), Tensor::ones(&[channels]))),
        }
    }

    /// The running (mean, variance), each `[channels]`.
    pub fn running_statistics(&self) -> (Tensor<T>, Tensor<T>) {
        self.running
            .lock()
            .expect("BatchNorm: the running statistics' lock is never poisoned")
            .clone()
    }

    /// Replaces the running (mean, variance) (a checkpoint being loaded).
    ///
    /// # Panics
    /// If either is not `[channels]`.
    pub fn set_running_statistics(&mut self, mean: Tensor<T>, var: Tensor<T>) {
        assert!(
            mean.shape() == [self.channels] && var.shape() == [self.channels],
            "BatchNorm::set_running_statistics: expected [{}] twice, got {:?} and {:?}",
            self.channels,
            mean.shape(),
            var.shape()
        );
        *self
            .running
            .get_mut()
            .expect("BatchNorm: the running statistics' lock is never poisoned") = (mean, var);
    }

    /// The layer a spec of kind `BatchNorm` describes, with γ = β = 0 and the
    /// default running statistics as placeholders for the stored ones.
    ///
    /// # Errors
    /// [`FlowError::BadSpec`] naming the field: `channels` not a size,
    /// `momentum` outside [0, 1], `eps` not positive, `mode` not one of
    /// `auto`, `batch`, `running`.
    pub fn from_spec(spec: &LayerSpec) -> Result<Self, FlowError> {
        let mut layer = BatchNorm::new(spec::size(spec, "channels")?);
        layer.momentum = spec.f64("momentum")?;
        if !(0.0..=1.0).contains(&layer.momentum) {
            return Err(spec.error("momentum", format!("{} is not in [0, 1]", layer.momentum)));
        }
        layer.eps = spec.f64("eps")?;
        if layer.eps <= 0.0 {
            return Err(spec.error("eps", format!("{} is not positive", layer.eps)));
        }
        let mode = spec.choice("mode", &["auto", "batch", "running"])?;
        layer.mode = BatchNormMode::from_name(mode).expect("one of the names choice allows");
        Ok(layer)
    }

    /// The broadcast shape of a per-channel tensor against `v`, the axes to
    /// reduce for batch statistics, and the pixels per channel H·W.
    fn layout(&self, v: &Var<'_, T>) -> (Vec<usize>, Vec<usize>, usize) {
        let shape = v.shape();
        assert!(
            shape.len() >= 2 && shape[1] == self.channels,
            "BatchNorm: expected [batch, {}, …], got {:?}",
            self.channels,
            shape
        );
        let mut broadcast = vec![1; shape.len()];
        broadcast[1] = self.channels;
        let axes: Vec<usize> = (0..shape.len()).filter(|&a| a != 1).collect();
        (broadcast, axes, shape[2..].iter().product())
    }

    /// The per-sample log-det of the data → latent map,
    /// H·W·Σ_c [γ_c − ½·log(v_c + ε)], broadcast to `[batch]`.
    fn inverse_log_det<'t>(
        &self,
        log_gamma: &Var<'t, T>,
        var: &Var<'t, T>,
        pixels: usize,
        batch: usize,
    ) -> Var<'t, T> {
        let half_log_var = var
            .reshape(&[self.channels])
            .add_scalar(T::from_f64(self.eps))
            .ln()
            .mul_scalar(T::from_f64(0.5));
        log_gamma
            .sub(&half_log_var)
            .sum_all()
            .mul_scalar(T::from_f64(pixels as f64))
            .reshape(&[1])
            .broadcast_to(&[batch])
    }
}

impl<T: Element> Flow<T> for BatchNorm<T> {
    fn name(&self) -> String {
        "BatchNorm".into()
    }

    fn per_sample(&self) -> bool {
        // Auto uses the running statistics on a no-grad tape.
        self.mode != BatchNormMode::Batch
    }

    fn forward<'t>(&self, z: &Var<'t, T>) -> (Var<'t, T>, Var<'t, T>) {
        let (broadcast, _, pixels) = self.layout(z);
        let tape = z.tape();
        let (mean, var) = self.running_statistics();
        let (mean, var) = (tape.constant(mean), tape.constant(var));
        let log_gamma = tape.param(&self.log_gamma);
        let beta = tape.param(&self.beta).reshape(&broadcast);
        let std = var.add_scalar(T::from_f64(self.eps)).sqrt();
        // x = (z − β) ⊙ exp(−γ) ⊙ √(v + ε) + μ
        let x = z
            .sub(&beta)
            .mul(&log_gamma.neg().exp().mul(&std).reshape(&broadcast))
            .add(&mean.reshape(&broadcast));
        let log_det = self
            .inverse_log_det(&log_gamma, &var, pixels, z.shape()[0])
            .neg();
        (x, log_det)
    }

    fn inverse<'t>(&self, x: &Var<'t, T>) -> (Var<'t, T>, Var<'t, T>) {
        let (broadcast, axes, pixels) = self.layout(x);
        let tape = x.tape();
        let use_batch = match self.mode {
            BatchNormMode::Auto => tape.is_recording(),
            BatchNormMode::Batch => true,
            BatchNormMode::Running => false,
        };
        let (mean, var) = if use_batch {
            // μ = mean of x over batch and pixels, v = mean of (x − μ)²
            let mean = x.mean_axes(&axes);
            let centred = x.sub(&mean.reshape(&broadcast));
            let var = centred.square().mean_axes(&axes);
            if tape.is_recording() {
                let mut running = self
                    .running
                    .lock()
                    .expect("BatchNorm: the running statistics' lock is never poisoned");
                let m = T::from_f64(self.momentum);
                let keep = T::from_f64(1.0 - self.momentum);
                // μ̄ ← (1 − m)·μ̄ + m·μ, v̄ ← (1 − m)·v̄ + m·v (values only)
                running.0 = running.0.mul_scalar(keep).add(&mean.value().mul_scalar(m));
                running.1 = running.1.mul_scalar(keep).add(&var.value().mul_scalar(m));
            }
            (mean, var)
        } else {
            let (mean, var) = self.running_statistics();
            (tape.constant(mean), tape.constant(var))
        };
        let log_gamma = tape.param(&self.log_gamma);
        let beta = tape.param(&self.beta).reshape(&broadcast);
        let inv_std = var.add_scalar(T::from_f64(self.eps)).sqrt();
        // z = (x − μ) / √(v + ε) ⊙ exp(γ) + β
        let z = x
            .sub(&mean.reshape(&broadcast))
            .mul(&log_gamma.exp().div(&inv_std).reshape(&broadcast))
            .add(&beta);
        let log_det = self.inverse_log_det(&log_gamma, &var, pixels, x.shape()[0]);
        (z, log_det)
    }

    fn params(&self) -> Vec<&Param<T>> {
        vec![&self.log_gamma, &self.beta]
    }

    /// `channels`, `momentum`, `eps` and `mode`; the running statistics are
    /// buffers.
    fn to_spec(&self) -> Option<LayerSpec> {
        Some(
            LayerSpec::new("BatchNorm")
                .with("channels", self.channels)
                .with("momentum", self.momentum)
                .with("eps", self.eps)
                .with("mode", self.mode.name()),
        )
    }

    /// `running_mean` and `running_var`, each `[channels]`.
    fn buffers(&self) -> Vec<(String, Tensor<T>)> {
        let (mean, var) = self.running_statistics();
        vec![("running_mean".into(), mean), ("running_var".into(), var)]
    }

    fn set_buffers(&mut self, buffers: Vec<(String, Tensor<T>)>) -> Result<(), FlowError> {
        let c = [self.channels];
        let wanted: [(&str, &[usize]); 2] = [("running_mean", &c), ("running_var", &c)];
        let [mean, var]: [Tensor<T>; 2] = spec::take_buffers(&self.name(), buffers, &wanted)?
            .try_into()
            .expect("take_buffers returns one tensor per wanted buffer");
        self.set_running_statistics(mean, var);
        Ok(())
    }

    fn params_mut(&mut self) -> Vec<&mut Param<T>> {
        vec![&mut self.log_gamma, &mut self.beta]
    }
}
