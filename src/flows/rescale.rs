//! [`Rescale`]: NICE's final diagonal scaling, the one layer of a NICE model
//! that changes volume.

use super::error::FlowError;
use super::flow::Flow;
use super::spec::{sample_shape, LayerSpec};
use crate::autodiff::{Param, Var};
use crate::tensor::{Element, Tensor};

/// Element-wise scaling by learned positive factors, parameterised through
/// their logs so they stay positive:
///
/// forward x = z ⊙ exp(log_scale),  log|det ∂x/∂z| = Σᵢ log_scaleᵢ;
/// inverse z = x ⊙ exp(−log_scale),  log-det −Σᵢ log_scaleᵢ.
///
/// The additive couplings of NICE preserve volume, so without this layer the
/// model could not concentrate or spread mass; NICE calls the factors S and
/// puts them at the top (data end) of the network. `log_scale` starts at 0
/// (the identity).
///
/// # Shapes
/// Any `[batch, …]` whose per-sample shape is `sample_shape` (a vector
/// `[dim]` or an image `[channels, height, width]`); one factor per element;
/// log-det `[batch]` (the same for every sample).
///
/// # Units
/// Log-dets in nats.
///
/// # Panics
/// If the input's per-sample shape is not `sample_shape`, naming the layer
/// and both shapes.
///
/// # Source
/// L. Dinh, D. Krueger, Y. Bengio, "NICE: Non-linear Independent Components
/// Estimation", ICLR 2015 workshop, arXiv:1410.8516, §3.3 (allowing rescaling).
///
/// # Derivation
/// [`derivations::nice`, "Rescaling"](crate::derivations::nice#rescaling)
/// (docs/derivations/nice.md): why NICE needs it, and its log-det Σ σᵢ.
///
/// # Examples
/// ```
/// use flowzoo::flows::{rescale::Rescale, Flow};
/// use flowzoo::tensor::Tensor;
/// let mut layer = Rescale::<f64>::new(&[2]);
/// layer.log_scale.value = Tensor::from_vec(vec![2f64.ln(), 0.0], &[2]);
/// let (x, log_det) = layer.forward_tensor(&Tensor::from_vec(vec![1.0, 1.0], &[1, 2]));
/// assert_eq!(x.to_vec(), vec![2.0, 1.0]);
/// assert!((log_det.item() - 2f64.ln()).abs() < 1e-15);
/// ```
#[derive(Clone, Debug)]
pub struct Rescale<T: Element> {
    /// The per-sample shape.
    pub sample_shape: Vec<usize>,
    /// log S, of shape `sample_shape`.
    pub log_scale: Param<T>,
}

impl<T: Element> Rescale<T> {
    /// The identity scaling of samples shaped `sample_shape`.
    pub fn new(sample_shape: &[usize]) -> Self {
        Rescale {
            sample_shape: sample_shape.to_vec(),
            log_scale: Param::new("log_scale", Tensor::zeros(sample_shape)),
        }
    }

    /// The layer a spec of kind `Rescale` describes (field `sample_shape`).
    ///
    /// # Errors
    /// [`FlowError::BadSpec`] if `sample_shape` is missing or not a shape
    /// a tensor can hold.
    pub fn from_spec(spec: &LayerSpec) -> Result<Self, FlowError> {
        Ok(Rescale::new(&sample_shape(spec, "sample_shape")?))
    }

    /// `v ⊙ exp(sign · log_scale)` and its log-det `sign · Σ log_scale`.
    fn scale<'t>(&self, v: &Var<'t, T>, sign: f64) -> (Var<'t, T>, Var<'t, T>) {
        assert!(
            v.shape().len() == self.sample_shape.len() + 1 && v.shape()[1..] == self.sample_shape,
            "Rescale: expected [batch, {:?}], got {:?}",
            self.sample_shape,
            v.shape()
        );
        let batch = v.shape()[0];
        let mut broadcast = vec![1];
        broadcast.extend(&self.sample_shape);
        let log_scale = v
            .tape()
            .param(&self.log_scale)
            .mul_scalar(T::from_f64(sign));
        let out = v.mul(&log_scale.reshape(&broadcast).exp());
        // log|det| = Σᵢ log Sᵢ, the same for every sample
        let log_det = log_scale.sum_all().reshape(&[1]).broadcast_to(&[batch]);
        (out, log_det)
    }
}

impl<T: Element> Flow<T> for Rescale<T> {
    fn name(&self) -> String {
        "Rescale".into()
    }

    fn per_sample(&self) -> bool {
        true
    }

    fn forward<'t>(&self, z: &Var<'t, T>) -> (Var<'t, T>, Var<'t, T>) {
        self.scale(z, 1.0)
    }

    fn inverse<'t>(&self, x: &Var<'t, T>) -> (Var<'t, T>, Var<'t, T>) {
        self.scale(x, -1.0)
    }

    fn params(&self) -> Vec<&Param<T>> {
        vec![&self.log_scale]
    }

    fn to_spec(&self) -> Option<LayerSpec> {
        Some(LayerSpec::new("Rescale").with("sample_shape", &self.sample_shape[..]))
    }

    fn params_mut(&mut self) -> Vec<&mut Param<T>> {
        vec![&mut self.log_scale]
    }
}
