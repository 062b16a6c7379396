//! [`ActNorm`]: Glow's per-channel affine layer with data-dependent
//! initialisation.

use super::error::FlowError;
use super::flow::Flow;
use super::spec::{size, LayerSpec};
use crate::autodiff::{Param, Var};
use crate::tensor::math;
use crate::tensor::{Element, Tensor};

/// Activation normalisation: a learned scale and bias per channel,
///
/// forward x = z ⊙ exp(log_scale) + bias,  inverse z = (x − bias) ⊙ exp(−log_scale),
/// log|det ∂x/∂z| = H·W·Σ_c log_scale_c (each channel's factor repeats over
/// the H·W pixels; H·W = 1 for vectors).
///
/// **Initialisation.** Glow sets the parameters from the first batch so that
/// the layer's output on the latent side has zero mean and unit variance per
/// channel: bias_c = mean of channel c of x, log_scale_c = log of its standard
/// deviation. flowzoo does this in [`Flow::initialize`], an explicit step the
/// training code calls once before the first optimisation step (not inside
/// `inverse`, which takes `&self`). `initialized` records that it happened;
/// it is part of the layer's state (saved with the parameters by a
/// checkpoint), so a reloaded model is not initialised a second time.
/// Before initialisation the layer is the identity.
///
/// # Shapes
/// `[batch, channels]` (vectors) or `[batch, channels, height, width]`
/// (images), same shape out; log-det `[batch]`.
///
/// # Units
/// Log-dets in nats.
///
/// # Panics
/// If the input's axis 1 is not `channels`, naming the layer and both shapes.
///
/// # Source
/// D. P. Kingma, P. Dhariwal, "Glow: Generative Flow with Invertible 1x1
/// Convolutions", NeurIPS 2018, arXiv:1807.03039, §3.1 and table 1.
///
/// # Derivation
/// [`derivations::glow`, "ActNorm"](crate::derivations::glow#actnorm)
/// (docs/derivations/glow.md): the map, its log-det H·W·Σ s_c, and the
/// data-dependent initialisation.
///
/// # Examples
/// ```
/// use flowzoo::flows::{actnorm::ActNorm, Flow};
/// use flowzoo::tensor::Tensor;
/// let mut layer = ActNorm::<f64>::new(1);
/// let x = Tensor::from_vec(vec![1.0, 3.0, 5.0, 7.0], &[4, 1]);
/// let z = layer.initialize(&x); // mean 4, standard deviation √5
/// assert!(layer.initialized);
/// let mean: f64 = z.to_vec().iter().sum::<f64>() / 4.0;
/// let var: f64 = z.to_vec().iter().map(|v| v * v).sum::<f64>() / 4.0;
/// assert!(mean.abs() < 1e-12 && (var - 1.0).abs() < 1e-12);
/// ```
#[derive(Clone, Debug)]
pub struct ActNorm<T: Element> {
    /// The number of channels C (features, for vectors).
    pub channels: usize,
    /// log of the per-channel scale, `[channels]`.
    pub log_scale: Param<T>,
    /// The per-channel bias, `[channels]`.
    pub bias: Param<T>,
    /// Whether the data-dependent initialisation has run.
    pub initialized: bool,
}

/// Standard deviations below this are taken as this when initialising, so a
/// constant channel does not get an infinite scale.
const MIN_STD: f64 = 1e-6;

impl<T: Element> ActNorm<T> {
    /// An uninitialised ActNorm over `channels` channels (the identity until
    /// [`Flow::initialize`] runs).
    pub fn new(channels: usize) -> Self {
        ActNorm {
            channels,
            log_scale: Param::new("log_scale", Tensor::zeros(&[channels])),
            bias: Param::new("bias", Tensor::zeros(&[channels])),
            initialized: false,
        }
    }

    /// The layer a spec of kind `ActNorm` describes (fields `channels`,
    /// `initialized`): a layer saved after its initialisation is not
    /// initialised again.
    ///
    /// # Errors
    /// [`FlowError::BadSpec`] for a missing or mistyped field or a
    /// `channels` that is not a size.
    pub fn from_spec(spec: &LayerSpec) -> Result<Self, FlowError> {
        let mut layer = ActNorm::new(size(spec, "channels")?);
        layer.initialized = spec.bool("initialized")?;
        Ok(layer)
    }

    /// `[1, C, 1, 1]` (images) or `[1, C]` (vectors), for broadcasting a
    /// per-channel parameter against `v`, and the pixels per channel H·W.
    fn layout(&self, v: &Var<'_, T>) -> (Vec<usize>, usize) {
        let shape = v.shape();
        assert!(
            shape.len() >= 2 && shape[1] == self.channels,
            "ActNorm: expected [batch, {}, …], got {:?}",
            self.channels,
            shape
        );
        let mut broadcast = vec![1; shape.len()];
        broadcast[1] = self.channels;
        (broadcast, shape[2..].iter().product())
    }

    /// Per-channel mean and (population) standard deviation of `x`, in f64.
    fn channel_statistics(&self, x: &Tensor<T>) -> (Vec<f64>, Vec<f64>) {
        let c = self.channels;
        let pixels: usize = x.shape()[2..].iter().product();
        let values = x.to_f64_vec();
        let count = (values.len() / c).max(1) as f64;
        let mut mean = vec![0.0; c];
        for (i, v) in values.iter().enumerate() {
            mean[(i / pixels) % c] += v;
        }
        mean.iter_mut().for_each(|m| *m /= count);
        let mut var = vec![0.0; c];
        for (i, v) in values.iter().enumerate() {
            let ch = (i / pixels) % c;
            var[ch] += (v - mean[ch]) * (v - mean[ch]);
        }
        let std = var.iter().map(|v| (v / count).sqrt()).collect();
        (mean, std)
    }
}

impl<T: Element> Flow<T> for ActNorm<T> {
    fn name(&self) -> String {
        "ActNorm".into()
    }

    fn per_sample(&self) -> bool {
        true
    }

    fn forward<'t>(&self, z: &Var<'t, T>) -> (Var<'t, T>, Var<'t, T>) {
        let (broadcast, pixels) = self.layout(z);
        let tape = z.tape();
        let log_scale = tape.param(&self.log_scale);
        let bias = tape.param(&self.bias).reshape(&broadcast);
        // x = z ⊙ exp(log_scale) + bias
        let x = z.mul(&log_scale.reshape(&broadcast).exp()).add(&bias);
        // log|det| = H·W·Σ_c log_scale_c
        let log_det = log_scale
            .sum_all()
            .mul_scalar(T::from_f64(pixels as f64))
            .reshape(&[1])
            .broadcast_to(&[z.shape()[0]]);
        (x, log_det)
    }

    fn inverse<'t>(&self, x: &Var<'t, T>) -> (Var<'t, T>, Var<'t, T>) {
        let (broadcast, pixels) = self.layout(x);
        let tape = x.tape();
        let log_scale = tape.param(&self.log_scale);
        let bias = tape.param(&self.bias).reshape(&broadcast);
        // z = (x − bias) ⊙ exp(−log_scale)
        let z = x.sub(&bias).mul(&log_scale.neg().reshape(&broadcast).exp());
        let log_det = log_scale
            .sum_all()
            .mul_scalar(T::from_f64(-(pixels as f64)))
            .reshape(&[1])
            .broadcast_to(&[x.shape()[0]]);
        (z, log_det)
    }

    fn params(&self) -> Vec<&Param<T>> {
        vec![&self.log_scale, &self.bias]
    }

    /// `channels` and the `initialized` flag, so a reloaded layer does not
    /// initialise again on its first batch.
    fn to_spec(&self) -> Option<LayerSpec> {
        Some(
            LayerSpec::new("ActNorm")
                .with("channels", self.channels)
                .with("initialized", self.initialized),
        )
    }

    fn params_mut(&mut self) -> Vec<&mut Param<T>> {
        vec![&mut self.log_scale, &mut self.bias]
    }

    /// Sets bias = per-channel mean and log_scale = log(per-channel standard
    /// deviation) of `x` (once), then returns the inverse of `x`, which then
    /// has zero mean and unit variance per channel.
    fn initialize(&mut self, x: &Tensor<T>) -> Tensor<T> {
        if !self.initialized {
            let (mean, std) = self.channel_statistics(x);
            let log_std: Vec<f64> = std.iter().map(|s| math::ln(s.max(MIN_STD))).collect();
            self.bias.value = Tensor::from_f64_slice(&mean, &[self.channels]);
            self.log_scale.value = Tensor::from_f64_slice(&log_std, &[self.channels]);
            self.initialized = true;
        }
        self.inverse_tensor(x).0
    }
}
