//! [`Linear`]: `y = x·W + b`.

use super::init::{fan_in_uniform, glorot_uniform};
use crate::autodiff::{Param, Var};
use crate::tensor::{Element, Tensor};
use rand::Rng;

/// How a [`Linear`] layer's weight starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Init {
    /// Glorot uniform weight, zero bias.
    Glorot,
    /// Zero weight and bias: the layer outputs 0, so a coupling layer whose
    /// network ends in it starts as the identity.
    Zero,
    /// Weight and bias uniform on ±1/√fan_in ([`fan_in_uniform`]), PyTorch's
    /// default. The random biases put the first layer's ReLU kinks across
    /// the data instead of all through the origin; the spline flows'
    /// conditioners start so (see
    /// [`derivations::splines`, "Initialisation"](crate::derivations::splines#initialisation)).
    FanIn,
}

/// A fully connected layer `y = x·W + b`.
///
/// # Shapes
/// `x: [batch, in_features]`, `W: [in_features, out_features]`,
/// `b: [out_features]`, `y: [batch, out_features]`. (W is stored as
/// `[in, out]` so the forward pass is a plain `x·W`, no transpose.)
///
/// # Panics
/// `forward` panics if `x` is not `[_, in_features]` (from `matmul`, naming both shapes).
#[derive(Clone, Debug)]
pub struct Linear<T: Element> {
    /// `[in_features, out_features]`.
    pub weight: Param<T>,
    /// `[out_features]`.
    pub bias: Param<T>,
}

impl<T: Element> Linear<T> {
    /// A layer from `in_features` to `out_features`, initialised by `init`.
    pub fn new<R: Rng + ?Sized>(
        in_features: usize,
        out_features: usize,
        init: Init,
        rng: &mut R,
    ) -> Self {
        let (weight, bias) = match init {
            Init::Glorot => (
                glorot_uniform(in_features, out_features, rng),
                Tensor::zeros(&[out_features]),
            ),
            Init::Zero => (
                Tensor::zeros(&[in_features, out_features]),
                Tensor::zeros(&[out_features]),
            ),
            Init::FanIn => {
                let weight = fan_in_uniform(&[in_features, out_features], in_features, rng);
                (weight, fan_in_uniform(&[out_features], in_features, rng))
            }
        };
        Linear {
            weight: Param::new("weight", weight),
            bias: Param::new("bias", bias),
        }
    }

    /// `x·W + b`.
    pub fn forward<'t>(&self, x: &Var<'t, T>) -> Var<'t, T> {
        let tape = x.tape();
        x.linear(&tape.param(&self.weight), &tape.param(&self.bias))
    }

    /// `max(x·W + b, 0)`: the layer and a ReLU in one op
    /// ([`Var::linear_relu`]).
    pub fn forward_relu<'t>(&self, x: &Var<'t, T>) -> Var<'t, T> {
        let tape = x.tape();
        x.linear_relu(&tape.param(&self.weight), &tape.param(&self.bias))
    }

    /// The parameters, weight first.
    pub fn params(&self) -> Vec<&Param<T>> {
        vec![&self.weight, &self.bias]
    }

    /// The parameters, mutably.
    pub fn params_mut(&mut self) -> Vec<&mut Param<T>> {
        vec![&mut self.weight, &mut self.bias]
    }
}
