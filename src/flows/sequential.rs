//! [`Sequential`]: a composition of flows, log-dets summed.

use super::error::FlowError;
use super::flow::{BuildChild, Flow};
use super::spec::LayerSpec;
use crate::autodiff::{Param, Var};
use crate::tensor::{Element, Tensor};

/// The composition f = f_{n−1} ∘ … ∘ f₀: `forward` applies the layers in
/// order (z → x), `inverse` in reverse order (x → z), and the log-dets add
/// (the chain rule: the Jacobian of a composition is the product of the
/// Jacobians, and log|det| of a product is the sum).
///
/// The layers need not commute, so the order matters: `inverse` undoes the
/// last layer first. An empty `Sequential` is the identity, log-det 0.
/// [`Flow::initialize`] also runs in the inverse order, from the data end.
///
/// # Shapes
/// Those of its layers; log-det `[batch]`.
///
/// # Source
/// D. J. Rezende, S. Mohamed, "Variational Inference with Normalizing
/// Flows", ICML 2015, arXiv:1505.05770, §3.1 (finite flows).
///
/// # Derivation
/// [`derivations::change_of_variables`, "Composition: why log-dets add"](crate::derivations::change_of_variables#composition-why-log-dets-add)
/// (docs/derivations/change-of-variables.md).
pub struct Sequential<T: Element> {
    /// The layers, in the forward (z → x) order.
    pub layers: Vec<Box<dyn Flow<T>>>,
}

impl<T: Element> Sequential<T> {
    /// A composition of `layers` (forward order). Each layer's parameter
    /// names get the prefix `layer{i}.`.
    pub fn new(mut layers: Vec<Box<dyn Flow<T>>>) -> Self {
        for (i, layer) in layers.iter_mut().enumerate() {
            for p in layer.params_mut() {
                p.prefix(&format!("layer{i}"));
            }
        }
        Sequential { layers }
    }

    /// The layer a spec of kind `Sequential` describes: each child built
    /// with `build` (the registry's [`build_layer`](super::registry::build_layer)),
    /// in order. A [`FlowModel`](super::FlowModel)'s flow is one.
    ///
    /// # Errors
    /// [`FlowError::BadSpec`] if `spec` is of another kind; a child's error
    /// with the child's index in front of its path.
    pub fn from_spec(spec: &LayerSpec, build: BuildChild<T>) -> Result<Self, FlowError> {
        if spec.kind != "Sequential" {
            return Err(spec.error("kind", "expected a Sequential"));
        }
        let layers = spec
            .children
            .iter()
            .enumerate()
            .map(|(i, child)| build(child).map_err(|e| e.in_layer(i)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Sequential::new(layers))
    }
}

impl<T: Element> Flow<T> for Sequential<T> {
    fn name(&self) -> String {
        format!("Sequential({} layers)", self.layers.len())
    }

    fn per_sample(&self) -> bool {
        self.layers.iter().all(|layer| layer.per_sample())
    }

    fn sublayers(&self) -> &[Box<dyn Flow<T>>] {
        &self.layers
    }

    fn validate(&self) -> Result<(), FlowError> {
        for (i, layer) in self.layers.iter().enumerate() {
            layer.validate().map_err(|e| e.in_layer(i))?;
        }
        Ok(())
    }

    /// The width its conditional layers read: the largest of its layers'
    /// (a model's layers share one width, checked when the model is built).
    fn context_dim(&self) -> usize {
        self.layers
            .iter()
            .map(|layer| layer.context_dim())
            .max()
            .unwrap_or(0)
    }

    fn forward<'t>(&self, z: &Var<'t, T>) -> (Var<'t, T>, Var<'t, T>) {
        self.forward_with_context(z, None)
    }

    fn inverse<'t>(&self, x: &Var<'t, T>) -> (Var<'t, T>, Var<'t, T>) {
        self.inverse_with_context(x, None)
    }

    /// Every layer gets the same context c; those that read none ignore it.
    fn forward_with_context<'t>(
        &self,
        z: &Var<'t, T>,
        c: Option<&Var<'t, T>>,
    ) -> (Var<'t, T>, Var<'t, T>) {
        let mut x = z.clone();
        let mut log_det: Option<Var<'t, T>> = None;
        for layer in &self.layers {
            let (y, ld) = layer.forward_with_context(&x, c);
            log_det = Some(match log_det {
                Some(total) => total.add(&ld),
                None => ld,
            });
            x = y;
        }
        let log_det =
            log_det.unwrap_or_else(|| z.constant(crate::tensor::Tensor::zeros(&[z.shape()[0]])));
        (x, log_det)
    }

    fn inverse_with_context<'t>(
        &self,
        x: &Var<'t, T>,
        c: Option<&Var<'t, T>>,
    ) -> (Var<'t, T>, Var<'t, T>) {
        let mut z = x.clone();
        let mut log_det: Option<Var<'t, T>> = None;
        for layer in self.layers.iter().rev() {
            let (y, ld) = layer.inverse_with_context(&z, c);
            log_det = Some(match log_det {
                Some(total) => total.add(&ld),
                None => ld,
            });
            z = y;
        }
        let log_det =
            log_det.unwrap_or_else(|| x.constant(crate::tensor::Tensor::zeros(&[x.shape()[0]])));
        (z, log_det)
    }

    fn to_spec(&self) -> Option<LayerSpec> {
        let children = self
            .layers
            .iter()
            .map(|l| l.to_spec())
            .collect::<Option<Vec<_>>>()?;
        Some(LayerSpec {
            kind: "Sequential".into(),
            fields: Vec::new(),
            children,
        })
    }

    /// Each layer's buffers, prefixed `layer{i}.` as its parameters are.
    fn buffers(&self) -> Vec<(String, Tensor<T>)> {
        let mut all = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            for (name, t) in layer.buffers() {
                all.push((format!("layer{i}.{name}"), t));
            }
        }
        all
    }

    fn set_buffers(&mut self, buffers: Vec<(String, Tensor<T>)>) -> Result<(), FlowError> {
        let mut per_layer: Vec<Vec<(String, Tensor<T>)>> = vec![Vec::new(); self.layers.len()];
        for (name, t) in buffers {
            // "layer{i}.rest" -> (i, "rest")
            let routed = name
                .strip_prefix("layer")
                .and_then(|s| s.split_once('.'))
                .and_then(|(i, rest)| Some((i.parse::<usize>().ok()?, rest)))
                .filter(|&(i, _)| i < self.layers.len());
            match routed {
                Some((i, rest)) => per_layer[i].push((rest.to_string(), t)),
                None => {
                    return Err(FlowError::BufferMismatch {
                        at: Default::default(),
                        layer: self.name(),
                        what: format!(
                            "buffer `{name}` names no layer of a {}-layer Sequential",
                            self.layers.len()
                        ),
                    })
                }
            }
        }
        for (i, (layer, buffers)) in self.layers.iter_mut().zip(per_layer).enumerate() {
            layer.set_buffers(buffers).map_err(|e| e.in_layer(i))?;
        }
        Ok(())
    }

    fn params(&self) -> Vec<&Param<T>> {
        self.layers.iter().flat_map(|l| l.params()).collect()
    }

    fn params_mut(&mut self) -> Vec<&mut Param<T>> {
        self.layers
            .iter_mut()
            .flat_map(|l| l.params_mut())
            .collect()
    }

    fn initialize(&mut self, x: &crate::tensor::Tensor<T>) -> crate::tensor::Tensor<T> {
        // The inverse order, as `inverse`: each layer sees what the layers
        // nearer the data made of x, with their parameters already set.
        let mut z = x.clone();
        for layer in self.layers.iter_mut().rev() {
            z = layer.initialize(&z);
        }
        z
    }

    /// As `initialize`, every layer given the same context c.
    fn initialize_with_context(
        &mut self,
        x: &crate::tensor::Tensor<T>,
        c: Option<&crate::tensor::Tensor<T>>,
    ) -> crate::tensor::Tensor<T> {
        let mut z = x.clone();
        for layer in self.layers.iter_mut().rev() {
            z = layer.initialize_with_context(&z, c);
        }
        z
    }
}
