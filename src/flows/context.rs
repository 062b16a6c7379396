//! Conditioning: the context c of a conditional flow p(x | c), the checks
//! every entry point runs on it ([`ContextError`]), the optional learned
//! [`ContextEmbedding`], and the helper through which a conditioner reads
//! its input `[v₁ | c]`.
//!
//! A context is a `[batch, context_dim]` tensor, one row per sample. It
//! enters only the conditioners (the networks that compute a layer's
//! scales, shifts or spline parameters), never the map's own variable, so
//! each layer stays a bijection in x for every c and its log-det is the one
//! in x alone. An unconditional model is the special case `context_dim = 0`:
//! no context, the API of [`Flow::forward`](super::Flow::forward).
//!
//! Derivation: [`derivations::conditioning`](crate::derivations::conditioning)
//! (docs/derivations/conditioning.md).

use super::error::FlowError;
use super::spec::{LayerSpec, MAX_SIZE};
use crate::autodiff::{Param, Var};
use crate::nn::{Init, Linear, Mlp};
use crate::tensor::{Element, Tensor};
use rand::Rng;
use std::fmt;

/// Why a context could not be used with a model.
///
/// Every variant names the entry point (`"FlowModel::log_prob_given"`) in
/// `at`, so a message says what was wrong and where.
#[derive(Debug, Clone, PartialEq)]
pub enum ContextError {
    /// A conditional model was given no context.
    Missing {
        /// The entry point.
        at: &'static str,
        /// The context width the model reads.
        expected: usize,
    },
    /// A context was given to a model that reads none.
    Unconditional {
        /// The entry point.
        at: &'static str,
        /// The shape of the context given.
        found: Vec<usize>,
    },
    /// The context is not `[rows, context_dim]`.
    WidthMismatch {
        /// The entry point.
        at: &'static str,
        /// The context width the model reads.
        expected: usize,
        /// The shape of the context given.
        found: Vec<usize>,
    },
    /// The context has neither one row (broadcast to all) nor one row per
    /// sample.
    RowsMismatch {
        /// The entry point.
        at: &'static str,
        /// The number of samples.
        rows: usize,
        /// The number of context rows given.
        contexts: usize,
    },
    /// An entry of the context is NaN or infinite.
    NotFinite {
        /// The entry point.
        at: &'static str,
        /// The row of the context.
        row: usize,
        /// The column of the context.
        column: usize,
        /// The value found.
        value: f64,
    },
}

impl fmt::Display for ContextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ContextError::Missing { at, expected } => write!(
                f,
                "{at}: the model is conditional (context of width {expected}) and was given no context"
            ),
            ContextError::Unconditional { at, found } => write!(
                f,
                "{at}: the model is unconditional and was given a context of shape {found:?}"
            ),
            ContextError::WidthMismatch { at, expected, found } => write!(
                f,
                "{at}: expected a context of shape [rows, {expected}], got {found:?}"
            ),
            ContextError::RowsMismatch { at, rows, contexts } => write!(
                f,
                "{at}: {contexts} context rows for {rows} samples (give one row, or one per sample)"
            ),
            ContextError::NotFinite {
                at,
                row,
                column,
                value,
            } => write!(f, "{at}: context row {row}, column {column} is {value}"),
        }
    }
}

impl std::error::Error for ContextError {}

/// Checks a context against a model that reads `context_dim` columns and
/// evaluates `rows` samples, and returns it with one row per sample (a
/// single row is broadcast to all `rows`), or `None` for an unconditional
/// model given no context.
///
/// # Errors
/// [`ContextError::Missing`], [`ContextError::Unconditional`],
/// [`ContextError::WidthMismatch`], [`ContextError::RowsMismatch`] or
/// [`ContextError::NotFinite`], each naming `at`.
pub fn check_context<T: Element>(
    at: &'static str,
    context: Option<&Tensor<T>>,
    context_dim: usize,
    rows: usize,
) -> Result<Option<Tensor<T>>, ContextError> {
    let c = match (context, context_dim) {
        (None, 0) => return Ok(None),
        (None, expected) => return Err(ContextError::Missing { at, expected }),
        (Some(c), 0) => {
            return Err(ContextError::Unconditional {
                at,
                found: c.shape().to_vec(),
            })
        }
        (Some(c), _) => c,
    };
    if c.ndim() != 2 || c.dim(1) != context_dim {
        return Err(ContextError::WidthMismatch {
            at,
            expected: context_dim,
            found: c.shape().to_vec(),
        });
    }
    if let Some(k) = c.to_f64_vec().iter().position(|v| !v.is_finite()) {
        return Err(ContextError::NotFinite {
            at,
            row: k / context_dim,
            column: k % context_dim,
            value: c.to_f64_vec()[k],
        });
    }
    match c.dim(0) {
        n if n == rows => Ok(Some(c.contiguous())),
        1 => Ok(Some(c.broadcast_to(&[rows, context_dim]).contiguous())),
        contexts => Err(ContextError::RowsMismatch { at, rows, contexts }),
    }
}

/// The input of a conditioner network: `[v₁ | c]`, the conditioning part
/// of the layer's variable with the context beside it, or `v₁` alone for
/// a layer that reads no context (`context_dim = 0`, whatever `c` is).
///
/// # Panics
/// If `context_dim > 0` and `c` is `None` or not `[batch, context_dim]`;
/// the message names `layer` and both shapes.
pub(crate) fn conditioner_input<'t, T: Element>(
    layer: &str,
    v1: &Var<'t, T>,
    c: Option<&Var<'t, T>>,
    context_dim: usize,
) -> Var<'t, T> {
    match required_context(layer, v1.shape()[0], c, context_dim) {
        Some(c) => Var::concat(&[v1, c], 1),
        None => v1.clone(),
    }
}

/// `c` when the layer reads a context (`context_dim > 0`), checked to be
/// `[batch, context_dim]`; `None` for a layer that reads none.
///
/// # Panics
/// If `context_dim > 0` and `c` is `None` or of another shape, naming
/// `layer` and both shapes.
pub(crate) fn required_context<'a, 't, T: Element>(
    layer: &str,
    batch: usize,
    c: Option<&'a Var<'t, T>>,
    context_dim: usize,
) -> Option<&'a Var<'t, T>> {
    if context_dim == 0 {
        return None;
    }
    let c = c.unwrap_or_else(|| {
        panic!("{layer}: reads a context of width {context_dim}, none was given")
    });
    assert!(
        c.shape() == [batch, context_dim],
        "{layer}: expected a context [{batch}, {context_dim}], got {:?}",
        c.shape()
    );
    Some(c)
}

/// c·W_c, `[batch, hidden]`: the learned projection of the context that a
/// conditional image network adds to every pixel of its first
/// convolution's output (see [`ConvResNet::forward_shifted`](crate::nn::conv::ConvResNet::forward_shifted));
/// `None` for a layer without context weights (`weight` is `None`), whatever
/// `c` is.
///
/// # Panics
/// If the layer has context weights `[context_dim, hidden]` and `c` is
/// `None` or not `[batch, context_dim]`, naming `layer` and both shapes.
pub(crate) fn context_shift<'t, T: Element>(
    layer: &str,
    weight: Option<&Param<T>>,
    batch: usize,
    c: Option<&Var<'t, T>>,
) -> Option<Var<'t, T>> {
    let weight = weight?;
    let c = required_context(layer, batch, c, weight.value.dim(0))?;
    Some(c.matmul(&c.tape().param(weight)))
}

/// The context weights W_c `[context_dim, hidden]` of a conditional image
/// network, Glorot-initialised and named `context.weight` (before the
/// owner's prefix), or `None` when `context_dim` is 0, drawing nothing, so
/// an unconditional layer is built draw for draw as before.
pub(crate) fn context_weight<T: Element, R: Rng + ?Sized>(
    context_dim: usize,
    hidden: usize,
    rng: &mut R,
) -> Option<Param<T>> {
    (context_dim > 0).then(|| {
        Param::new(
            "context.weight",
            crate::nn::init::glorot_uniform(context_dim, hidden, rng),
        )
    })
}

/// The `context_dim` field of a layer's spec: 0 when absent (an
/// unconditional layer, and every spec written before contexts existed).
///
/// # Errors
/// [`FlowError::BadSpec`] if the field is present and not an integer in
/// 1..=[`MAX_SIZE`].
pub(crate) fn context_dim_from_spec(spec: &LayerSpec) -> Result<usize, FlowError> {
    if spec.get("context_dim").is_none() {
        return Ok(0);
    }
    let n = spec.usize("context_dim")?;
    if !(1..=MAX_SIZE).contains(&n) {
        return Err(spec.error(
            "context_dim",
            format!("{n} is not a size in 1..={MAX_SIZE}"),
        ));
    }
    Ok(n)
}

/// `spec` with the field `context_dim` when it is above 0, so an
/// unconditional layer's spec is the one it always was.
pub(crate) fn with_context_dim(spec: LayerSpec, context_dim: usize) -> LayerSpec {
    if context_dim == 0 {
        spec
    } else {
        spec.with("context_dim", context_dim)
    }
}

/// A learned embedding of the context, e = NN(c): an [`Mlp`] with ReLU
/// between its layers, applied once by the model before any layer reads
/// the context, so every conditioner sees the same features of c. Its
/// parameters are named `embedding.*` and train with the flow's.
///
/// Any function of c may be used (see the derivation), so the embedding
/// changes what the conditioners can express, never the log-det.
///
/// # Shapes
/// `[batch, context_dim] → [batch, out_dim]`.
///
/// # Source
/// G. Papamakarios, D. Sterratt, I. Murray, "Sequential Neural Likelihood",
/// AISTATS 2019, arXiv:1805.07226; the embedding nets of simulation-based
/// inference (Greenberg, Nonnenmacher, Macke, "Automatic Posterior
/// Transformation", ICML 2019, arXiv:1905.07488, §4).
///
/// # Derivation
/// [`derivations::conditioning`, "Embeddings"](crate::derivations::conditioning#embeddings)
/// (docs/derivations/conditioning.md).
#[derive(Clone, Debug)]
pub struct ContextEmbedding<T: Element> {
    /// The network, `[context_dim, hidden…, out_dim]`, all layers Glorot.
    pub net: Mlp<T>,
}

impl<T: Element> ContextEmbedding<T> {
    /// An embedding from `context_dim` columns through the `hidden` widths
    /// to `out_dim` features.
    ///
    /// # Panics
    /// If `context_dim` or `out_dim` is 0.
    pub fn new<R: Rng + ?Sized>(
        context_dim: usize,
        hidden: &[usize],
        out_dim: usize,
        rng: &mut R,
    ) -> Self {
        assert!(
            context_dim > 0 && out_dim > 0,
            "ContextEmbedding::new: need context_dim ≥ 1 and out_dim ≥ 1, got {context_dim} and {out_dim}"
        );
        let sizes: Vec<usize> = std::iter::once(context_dim)
            .chain(hidden.iter().copied())
            .chain(std::iter::once(out_dim))
            .collect();
        let mut net = Mlp::new(&sizes, Init::Glorot, rng);
        for p in net.params_mut() {
            p.prefix("embedding");
        }
        ContextEmbedding { net }
    }

    /// The embedding whose tensors are among `params` (named
    /// `embedding.layer{i}.weight` and `.bias`, i = 0, 1, …), sharing their
    /// storage; `None` when there is none.
    pub fn from_params(params: &[Param<T>]) -> Option<Self> {
        let find = |name: String| params.iter().find(|p| p.name == name).cloned();
        let layers: Vec<Linear<T>> = (0..)
            .map_while(|i| {
                Some(Linear {
                    weight: find(format!("embedding.layer{i}.weight"))?,
                    bias: find(format!("embedding.layer{i}.bias"))?,
                })
            })
            .collect();
        if layers.is_empty() {
            return None;
        }
        Some(ContextEmbedding {
            net: Mlp { layers },
        })
    }

    /// The width of the raw context it reads.
    pub fn context_dim(&self) -> usize {
        self.net.layers[0].weight.value.dim(0)
    }

    /// The width of the features it gives the layers.
    pub fn out_dim(&self) -> usize {
        self.net
            .layers
            .last()
            .expect("an Mlp has a layer")
            .weight
            .value
            .dim(1)
    }

    /// The hidden widths.
    pub fn hidden(&self) -> Vec<usize> {
        // Every layer's output width but the last's.
        let layers = &self.net.layers;
        layers[..layers.len() - 1]
            .iter()
            .map(|l| l.weight.value.dim(1))
            .collect()
    }

    /// e = NN(c), `[batch, context_dim] → [batch, out_dim]`.
    pub fn forward<'t>(&self, c: &Var<'t, T>) -> Var<'t, T> {
        self.net.forward(c)
    }

    /// The parameters (`embedding.layer{i}.weight`, `.bias`).
    pub fn params(&self) -> Vec<&Param<T>> {
        self.net.params()
    }

    /// The parameters, mutably.
    pub fn params_mut(&mut self) -> Vec<&mut Param<T>> {
        self.net.params_mut()
    }
}

/// A conditional flow with its context held fixed: x = f(z; c₀) for one
/// context row c₀, broadcast to every sample. For each c₀ it is an
/// ordinary [`Flow`](super::Flow) in z, so the proofs of
/// [`check_flow`](super::check::check_flow) (exact inverse, log-det
/// against the finite-difference Jacobian in z) and
/// [`gradcheck_params`](super::check::gradcheck_params) apply to a
/// conditional layer at any context you choose: the way the crate proves
/// its own conditional layers, and the way to prove one of yours.
///
/// # Shapes
/// `context` is `[1, context_dim]`; the flow's shapes otherwise.
///
/// # Examples
/// ```
/// use flowzoo::flows::{check::{check_flow, randomize_params, CheckOptions}, context::AtContext};
/// use flowzoo::flows::{AffineCoupling, Mask};
/// use flowzoo::tensor::Tensor;
/// use rand::SeedableRng;
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let mut layer = AffineCoupling::<f64>::conditional(Mask::half(3, false), 8, 2, &mut rng);
/// randomize_params(&mut layer, 0.5, &mut rng);
/// let at = AtContext::new(Box::new(layer), Tensor::from_vec(vec![1.5, -0.2], &[1, 2]));
/// check_flow(&at, &Tensor::randn(&[4, 3], &mut rng), CheckOptions::default()).unwrap();
/// ```
pub struct AtContext<T: Element> {
    /// The conditional flow.
    pub flow: Box<dyn super::Flow<T>>,
    /// The context row c₀, `[1, context_dim]`.
    pub context: Tensor<T>,
}

impl<T: Element> AtContext<T> {
    /// `flow` at the context row `context` (`[1, context_dim]`).
    ///
    /// # Panics
    /// If `context` is not `[1, flow.context_dim()]`, naming both.
    pub fn new(flow: Box<dyn super::Flow<T>>, context: Tensor<T>) -> Self {
        assert!(
            context.shape() == [1, flow.context_dim()],
            "AtContext::new: {} reads a context [1, {}], got {:?}",
            flow.name(),
            flow.context_dim(),
            context.shape()
        );
        AtContext { flow, context }
    }

    /// c₀ on `v`'s tape, one row per sample of `v`.
    fn context_for<'t>(&self, v: &Var<'t, T>) -> Var<'t, T> {
        let rows = v.shape()[0];
        v.constant(
            self.context
                .broadcast_to(&[rows, self.context.dim(1)])
                .contiguous(),
        )
    }
}

impl<T: Element> super::Flow<T> for AtContext<T> {
    fn name(&self) -> String {
        format!(
            "{} at c = {:?}",
            self.flow.name(),
            self.context.to_f64_vec()
        )
    }

    fn per_sample(&self) -> bool {
        self.flow.per_sample()
    }

    fn forward<'t>(&self, z: &Var<'t, T>) -> (Var<'t, T>, Var<'t, T>) {
        self.flow
            .forward_with_context(z, Some(&self.context_for(z)))
    }

    fn inverse<'t>(&self, x: &Var<'t, T>) -> (Var<'t, T>, Var<'t, T>) {
        self.flow
            .inverse_with_context(x, Some(&self.context_for(x)))
    }

    fn params(&self) -> Vec<&Param<T>> {
        self.flow.params()
    }

    fn params_mut(&mut self) -> Vec<&mut Param<T>> {
        self.flow.params_mut()
    }
}
