//! Layer specs: a flow's architecture as data, and the registry that builds
//! a layer back from it. This is what makes a checkpoint self-describing:
//! [`Flow::spec`] writes a [`LayerSpec`] (the layer's kind, its sizes, masks,
//! orders, permutations, flags, and its sub-layers), the checkpoint stores
//! the tree, and [`build_layer`] turns the tree back into layers whose
//! parameters are then filled by name. No code change is needed to load any
//! architecture the crate can build.
//!
//! What goes where:
//!
//! | state | where it is saved |
//! | --- | --- |
//! | sizes, masks, orders, permutations, flags (ActNorm's initialised flag) | the spec's `fields` |
//! | sub-layers (a `Sequential`'s layers) | the spec's `children`, in order |
//! | trainable tensors | [`Flow::params`], by name |
//! | non-trainable tensors (BatchNorm running statistics) | [`Flow::buffers`], by name |
//!
//! **Adding a layer.** Implement [`Flow::spec`] in the layer's file (kind =
//! the type's name, one field per constructor argument), then add one arm to
//! [`build_layer`] that reads the fields back with the typed accessors
//! ([`LayerSpec::usize`], [`LayerSpec::usizes`], ...) and calls the layer's
//! constructor, and list the kind in [`LAYER_KINDS`]; the round-trip tests
//! in `tests/checkpoint.rs` prove the pair (`every_layer_kind_round_trips`
//! fails until a model holding the new kind is among them).
//!
//! The byte layout of a spec in a file is in docs/checkpoint-format.md.

use super::actnorm::ActNorm;
use super::batchnorm::BatchNorm;
use super::coupling::{AdditiveCoupling, AffineCoupling, ImageCoupling, Mask, ScaleKind};
use super::inv_conv::InvConv1x1;
use super::permute::{Permutation, Reverse};
use super::rescale::Rescale;
use super::sequential::Sequential;
use super::squeeze::{Reshape, Split, Squeeze};
use super::Flow;
use crate::autodiff::Param;
use crate::data::preprocess::Logit;
use crate::error::CheckpointError;
use crate::nn::{Init, Mlp};
use crate::tensor::{Element, Tensor};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::path::PathBuf;

/// One value of a [`LayerSpec`] field.
#[derive(Clone, Debug, PartialEq)]
pub enum SpecValue {
    /// An integer: a size, a count, an index.
    Int(i64),
    /// A real number: a margin, a constant.
    Float(f64),
    /// A flag.
    Bool(bool),
    /// A name.
    Str(String),
    /// A list of integers: a mask's indices, an order's degrees, a permutation.
    Ints(Vec<i64>),
    /// A list of reals: fixed per-feature constants (standardisation means).
    Floats(Vec<f64>),
}

impl SpecValue {
    /// The variant's name, for messages (`"int"`, `"list of ints"`, ...).
    pub fn type_name(&self) -> &'static str {
        match self {
            SpecValue::Int(_) => "int",
            SpecValue::Float(_) => "float",
            SpecValue::Bool(_) => "bool",
            SpecValue::Str(_) => "string",
            SpecValue::Ints(_) => "list of ints",
            SpecValue::Floats(_) => "list of floats",
        }
    }
}

impl From<usize> for SpecValue {
    fn from(v: usize) -> Self {
        SpecValue::Int(v as i64)
    }
}
impl From<i64> for SpecValue {
    fn from(v: i64) -> Self {
        SpecValue::Int(v)
    }
}
impl From<f64> for SpecValue {
    fn from(v: f64) -> Self {
        SpecValue::Float(v)
    }
}
impl From<bool> for SpecValue {
    fn from(v: bool) -> Self {
        SpecValue::Bool(v)
    }
}
impl From<&str> for SpecValue {
    fn from(v: &str) -> Self {
        SpecValue::Str(v.to_string())
    }
}
impl From<String> for SpecValue {
    fn from(v: String) -> Self {
        SpecValue::Str(v)
    }
}
impl From<&[usize]> for SpecValue {
    fn from(v: &[usize]) -> Self {
        SpecValue::Ints(v.iter().map(|&i| i as i64).collect())
    }
}
impl From<Vec<usize>> for SpecValue {
    fn from(v: Vec<usize>) -> Self {
        SpecValue::from(&v[..])
    }
}
impl From<&[f64]> for SpecValue {
    fn from(v: &[f64]) -> Self {
        SpecValue::Floats(v.to_vec())
    }
}
impl From<Vec<f64>> for SpecValue {
    fn from(v: Vec<f64>) -> Self {
        SpecValue::Floats(v)
    }
}

/// A layer's architecture as data: its kind, its named fields, and its
/// sub-layers. Parameters and buffers are not part of it (they are stored
/// as tensors by name).
///
/// # Examples
/// ```
/// use flowzoo::flows::spec::{build_layer, LayerSpec};
/// use flowzoo::flows::{Flow, Reverse};
/// let spec = LayerSpec::new("Reverse").with("dim", 3usize);
/// assert_eq!(Flow::<f32>::spec(&Reverse::new(3)), Some(spec.clone()));
/// let layer = build_layer::<f32>(&spec).unwrap();
/// assert_eq!(layer.name(), "Reverse");
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct LayerSpec {
    /// The layer's kind, the name [`build_layer`] dispatches on (`"AffineCoupling"`).
    pub kind: String,
    /// Named values, in the order the layer wrote them.
    pub fields: Vec<(String, SpecValue)>,
    /// Sub-layers, in order (a `Sequential`'s layers, forward order).
    pub children: Vec<LayerSpec>,
}

impl LayerSpec {
    /// A spec of `kind` with no fields and no children.
    pub fn new(kind: impl Into<String>) -> Self {
        LayerSpec {
            kind: kind.into(),
            fields: Vec::new(),
            children: Vec::new(),
        }
    }

    /// The spec with the field `name = value` appended.
    pub fn with(mut self, name: &str, value: impl Into<SpecValue>) -> Self {
        self.fields.push((name.to_string(), value.into()));
        self
    }

    /// The spec with `child` appended to its sub-layers.
    pub fn child(mut self, child: LayerSpec) -> Self {
        self.children.push(child);
        self
    }

    /// The value of field `name`, if present.
    pub fn get(&self, name: &str) -> Option<&SpecValue> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// A [`CheckpointError::BadSpec`] about field `field` of this layer.
    pub fn error(&self, field: &str, what: impl Into<String>) -> CheckpointError {
        CheckpointError::BadSpec {
            path: PathBuf::new(),
            layer: self.kind.clone(),
            field: field.to_string(),
            what: what.into(),
        }
    }

    fn field(&self, name: &str) -> Result<&SpecValue, CheckpointError> {
        self.get(name)
            .ok_or_else(|| self.error(name, "missing from the spec"))
    }

    fn wrong_type(&self, name: &str, wanted: &str, found: &SpecValue) -> CheckpointError {
        self.error(
            name,
            format!("expected {wanted}, found {}", found.type_name()),
        )
    }

    /// Field `name` as a non-negative integer.
    ///
    /// # Errors
    /// [`CheckpointError::BadSpec`] if it is missing, not an int, or negative.
    pub fn usize(&self, name: &str) -> Result<usize, CheckpointError> {
        match self.field(name)? {
            &SpecValue::Int(v) => {
                usize::try_from(v).map_err(|_| self.error(name, format!("{v} is negative")))
            }
            other => Err(self.wrong_type(name, "an int", other)),
        }
    }

    /// Field `name` as a list of non-negative integers.
    ///
    /// # Errors
    /// [`CheckpointError::BadSpec`] if it is missing, not a list of ints, or
    /// holds a negative entry.
    pub fn usizes(&self, name: &str) -> Result<Vec<usize>, CheckpointError> {
        match self.field(name)? {
            SpecValue::Ints(v) => v
                .iter()
                .map(|&i| {
                    usize::try_from(i)
                        .map_err(|_| self.error(name, format!("entry {i} is negative")))
                })
                .collect(),
            other => Err(self.wrong_type(name, "a list of ints", other)),
        }
    }

    /// Field `name` as a list of integers (signs, say), negative ones allowed.
    ///
    /// # Errors
    /// [`CheckpointError::BadSpec`] if it is missing or not a list of ints.
    pub fn ints(&self, name: &str) -> Result<Vec<i64>, CheckpointError> {
        match self.field(name)? {
            SpecValue::Ints(v) => Ok(v.clone()),
            other => Err(self.wrong_type(name, "a list of ints", other)),
        }
    }

    /// Field `name` as a finite real (an int is accepted and converted).
    ///
    /// # Errors
    /// [`CheckpointError::BadSpec`] if it is missing, not a number, or not finite.
    pub fn f64(&self, name: &str) -> Result<f64, CheckpointError> {
        let v = match self.field(name)? {
            &SpecValue::Float(v) => v,
            &SpecValue::Int(v) => v as f64,
            other => return Err(self.wrong_type(name, "a float", other)),
        };
        if v.is_finite() {
            Ok(v)
        } else {
            Err(self.error(name, format!("{v} is not finite")))
        }
    }

    /// Field `name` as a list of finite reals.
    ///
    /// # Errors
    /// [`CheckpointError::BadSpec`] if it is missing, not a list of floats,
    /// or holds a NaN or infinity.
    pub fn f64s(&self, name: &str) -> Result<Vec<f64>, CheckpointError> {
        match self.field(name)? {
            SpecValue::Floats(v) => match v.iter().position(|x| !x.is_finite()) {
                Some(i) => Err(self.error(name, format!("entry {i} ({}) is not finite", v[i]))),
                None => Ok(v.clone()),
            },
            other => Err(self.wrong_type(name, "a list of floats", other)),
        }
    }

    /// Field `name` as a flag.
    ///
    /// # Errors
    /// [`CheckpointError::BadSpec`] if it is missing or not a bool.
    pub fn bool(&self, name: &str) -> Result<bool, CheckpointError> {
        match self.field(name)? {
            &SpecValue::Bool(v) => Ok(v),
            other => Err(self.wrong_type(name, "a bool", other)),
        }
    }

    /// Field `name` as a string.
    ///
    /// # Errors
    /// [`CheckpointError::BadSpec`] if it is missing or not a string.
    pub fn str(&self, name: &str) -> Result<&str, CheckpointError> {
        match self.field(name)? {
            SpecValue::Str(v) => Ok(v),
            other => Err(self.wrong_type(name, "a string", other)),
        }
    }
}

/// The largest size (features, hidden units, channels) a spec may ask for.
/// A checksum-valid but hand-crafted file could otherwise make the loader
/// allocate without bound before any tensor is compared.
pub const MAX_SIZE: usize = 1 << 24;

/// The largest number of scalars one layer built from a spec may allocate.
pub const MAX_LAYER_ELEMENTS: usize = 1 << 31;

/// The most residual blocks a convolutional network built from a spec may
/// have: each block is a few allocations whatever its size, so the element
/// bound alone would not bound them.
pub const MAX_BLOCKS: usize = 1 << 10;

/// Field `name` as a size in 1..=[`MAX_SIZE`].
pub(crate) fn size(spec: &LayerSpec, name: &str) -> Result<usize, CheckpointError> {
    let v = spec.usize(name)?;
    if (1..=MAX_SIZE).contains(&v) {
        Ok(v)
    } else {
        Err(spec.error(name, format!("{v} is not a size in 1..={MAX_SIZE}")))
    }
}

/// Field `name` as a list of sizes in 1..=[`MAX_SIZE`].
pub(crate) fn sizes(spec: &LayerSpec, name: &str) -> Result<Vec<usize>, CheckpointError> {
    let v = spec.usizes(name)?;
    match v.iter().find(|&&s| !(1..=MAX_SIZE).contains(&s)) {
        Some(s) => Err(spec.error(name, format!("{s} is not a size in 1..={MAX_SIZE}"))),
        None => Ok(v),
    }
}

/// Field `name` as a per-sample shape: sizes in 1..=[`MAX_SIZE`], at least
/// one and fewer than [`MAX_DIMS`](crate::tensor::MAX_DIMS) axes (the batch
/// axis comes on top), at most [`MAX_LAYER_ELEMENTS`] elements.
pub(crate) fn sample_shape(spec: &LayerSpec, name: &str) -> Result<Vec<usize>, CheckpointError> {
    let shape = sizes(spec, name)?;
    let numel = shape.iter().try_fold(1usize, |n, &s| n.checked_mul(s));
    if shape.is_empty()
        || shape.len() >= crate::tensor::MAX_DIMS
        || numel.is_none_or(|n| n > MAX_LAYER_ELEMENTS)
    {
        return Err(spec.error(
            name,
            format!("{shape:?} is not a sample shape a tensor can hold"),
        ));
    }
    Ok(shape)
}

thread_local! {
    /// Scalars the layers still being built may allocate, while
    /// [`with_element_budget`] runs; `None` outside it.
    static ELEMENT_BUDGET: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// Runs `build` with a budget of `scalars` for all the layers it builds
/// together: every allocation check ([`check_elements`], the network checks)
/// charges what its layer will allocate, and fails once the total passes the
/// budget. A checkpoint's loader sets it from the tensors the file stores, so
/// a checksum-valid file whose specs claim far more parameters than the file
/// holds is refused before the memory is allocated, not after. The previous
/// budget is restored when `build` returns or panics.
pub(crate) fn with_element_budget<R>(scalars: usize, build: impl FnOnce() -> R) -> R {
    struct Restore(Option<usize>);
    impl Drop for Restore {
        fn drop(&mut self) {
            ELEMENT_BUDGET.with(|b| b.set(self.0));
        }
    }
    let _restore = Restore(ELEMENT_BUDGET.with(|b| b.replace(Some(scalars))));
    build()
}

/// Charges `n` scalars to the budget of [`with_element_budget`], if one is
/// running; false when they do not fit.
fn charge(n: usize) -> bool {
    ELEMENT_BUDGET.with(|b| match b.get() {
        None => true,
        Some(left) if n <= left => {
            b.set(Some(left - n));
            true
        }
        Some(_) => false,
    })
}

/// Checks a count of scalars computed with checked arithmetic (`None`: it
/// overflowed) against [`MAX_LAYER_ELEMENTS`], for sizes that bound a layer's
/// work but are not allocated when it is built (a `Split`'s C·H·W); the error
/// names `field`.
pub(crate) fn check_bound(
    spec: &LayerSpec,
    field: &str,
    elements: Option<usize>,
) -> Result<usize, CheckpointError> {
    match elements {
        Some(n) if n <= MAX_LAYER_ELEMENTS => Ok(n),
        _ => Err(spec.error(
            field,
            format!("the layer would hold more than {MAX_LAYER_ELEMENTS} scalars"),
        )),
    }
}

/// Checks a count of scalars a layer will allocate as [`check_bound`] does,
/// and charges it to the budget of the model being loaded; the error names
/// `field`.
pub(crate) fn check_elements(
    spec: &LayerSpec,
    field: &str,
    elements: Option<usize>,
) -> Result<(), CheckpointError> {
    let n = check_bound(spec, field, elements)?;
    if charge(n) {
        Ok(())
    } else {
        Err(spec.error(
            field,
            format!("the layer would hold {n} scalars, more than the file's size allows"),
        ))
    }
}

/// Field `name` as a permutation of 0..n (of its own length, in
/// 1..=[`MAX_SIZE`], when `n` is `None`).
///
/// # Errors
/// [`CheckpointError::BadSpec`] naming `name` for a wrong length, an entry
/// out of range, or an entry that repeats.
pub(crate) fn permutation(
    spec: &LayerSpec,
    name: &str,
    n: Option<usize>,
) -> Result<Vec<usize>, CheckpointError> {
    let perm = spec.usizes(name)?;
    let n = n.unwrap_or(perm.len());
    if perm.len() != n || !(1..=MAX_SIZE).contains(&n) {
        return Err(spec.error(
            name,
            format!("{} entries, expected a permutation of 0..{n}", perm.len()),
        ));
    }
    let mut seen = vec![false; n];
    for &i in &perm {
        if i >= n || seen[i] {
            return Err(spec.error(
                name,
                format!("entry {i} is out of 0..{n} or repeats: not a permutation"),
            ));
        }
        seen[i] = true;
    }
    Ok(perm)
}

/// Checks that a dense network through `widths` (weights and biases, times
/// `copies`: 2 for a MADE, whose masks are as large as its weights) stays
/// within [`check_elements`]'s bounds before it is allocated.
pub(crate) fn check_network(
    spec: &LayerSpec,
    field: &str,
    widths: &[usize],
    copies: usize,
) -> Result<(), CheckpointError> {
    let total = widths.windows(2).try_fold(0usize, |acc, w| {
        w[0].checked_mul(w[1])
            .and_then(|n| n.checked_add(w[1]))
            .and_then(|n| acc.checked_add(n))
    });
    check_elements(spec, field, total.and_then(|n| n.checked_mul(copies)))
}

/// The network of a coupling layer read from `spec`: an MLP from the
/// conditioning features through the `hidden` widths to `out` outputs, its
/// parameters named `net.*` as the layers' constructors name them; values
/// are placeholders for the stored ones.
fn coupling_net<T: Element>(
    spec: &LayerSpec,
    mask: &Mask,
    out: usize,
    rng: &mut StdRng,
) -> Result<Mlp<T>, CheckpointError> {
    let hidden = sizes(spec, "hidden")?;
    let widths: Vec<usize> = std::iter::once(mask.cond.len())
        .chain(hidden)
        .chain(std::iter::once(out))
        .collect();
    check_network(spec, "hidden", &widths, 1)?;
    let mut net = Mlp::new(&widths, Init::Zero, rng);
    for p in net.params_mut() {
        p.prefix("net");
    }
    Ok(net)
}

/// Checks that `cond` and `trans` partition 0..dim, each non-empty and increasing.
fn mask_from_spec(spec: &LayerSpec) -> Result<Mask, CheckpointError> {
    let dim = size(spec, "dim")?;
    let cond = spec.usizes("cond")?;
    let trans = spec.usizes("trans")?;
    let mut seen = vec![false; dim];
    for (field, part) in [("cond", &cond), ("trans", &trans)] {
        if part.is_empty() {
            return Err(spec.error(field, "is empty"));
        }
        if part.windows(2).any(|w| w[0] >= w[1]) {
            return Err(spec.error(field, format!("{part:?} is not increasing")));
        }
        for &i in part.iter() {
            if i >= dim || seen[i] {
                return Err(spec.error(
                    field,
                    format!("feature {i} is out of 0..{dim} or in both halves"),
                ));
            }
            seen[i] = true;
        }
    }
    if seen.iter().any(|s| !s) {
        return Err(spec.error("cond", format!("cond and trans do not cover 0..{dim}")));
    }
    Ok(Mask { dim, cond, trans })
}

/// Every kind [`build_layer`] knows, one per layer type of the crate
/// (`tests/checkpoint.rs` round-trips a model holding each).
pub const LAYER_KINDS: &[&str] = &[
    "AffineCoupling",
    "AdditiveCoupling",
    "Rescale",
    "Reverse",
    "Permutation",
    "ActNorm",
    "InvConv1x1",
    "ImageCoupling",
    "BatchNorm",
    "Squeeze",
    "Reshape",
    "Split",
    "Logit",
    "Maf",
    "Iaf",
    "Sequential",
    "Standardize",
];

/// Builds the layer `spec` describes, with placeholder parameter values
/// (fill them by name afterwards, as the checkpoint loader does).
///
/// Known kinds: [`LAYER_KINDS`].
///
/// # Errors
/// [`CheckpointError::UnknownLayer`] for a kind not listed;
/// [`CheckpointError::BadSpec`] for a missing, mistyped or invalid field
/// (sizes must lie in 1..=[`MAX_SIZE`]). The errors carry an empty path:
/// [`CheckpointError::in_file`] names the file.
pub fn build_layer<T: Element>(spec: &LayerSpec) -> Result<Box<dyn Flow<T>>, CheckpointError> {
    // The placeholder values are overwritten by the stored ones, so any seed does.
    let mut rng = StdRng::seed_from_u64(0);
    let layer: Box<dyn Flow<T>> = match spec.kind.as_str() {
        "AffineCoupling" => {
            let mask = mask_from_spec(spec)?;
            // As AffineCoupling::new, with any number of hidden layers.
            let net = coupling_net(spec, &mask, 2 * mask.trans.len(), &mut rng)?;
            let n2 = mask.trans.len();
            Box::new(AffineCoupling {
                mask,
                net,
                scale: Param::new("scale", Tensor::ones(&[n2])),
                scale_kind: match spec.get("scale_kind") {
                    Some(SpecValue::Str(kind)) if kind == "sigmoid" => ScaleKind::Sigmoid,
                    _ => ScaleKind::Tanh,
                },
            })
        }
        "AdditiveCoupling" => {
            let mask = mask_from_spec(spec)?;
            let net = coupling_net(spec, &mask, mask.trans.len(), &mut rng)?;
            Box::new(AdditiveCoupling { mask, net })
        }
        "Rescale" => Box::new(Rescale::new(&sample_shape(spec, "sample_shape")?)),
        "Reverse" => Box::new(Reverse::new(size(spec, "dim")?)),
        "Permutation" => Box::new(Permutation::new(permutation(spec, "perm", None)?)),
        "ActNorm" => {
            let mut layer = ActNorm::new(size(spec, "channels")?);
            // A layer saved after its initialisation is not initialised again.
            layer.initialized = spec.bool("initialized")?;
            Box::new(layer)
        }
        "InvConv1x1" => Box::new(InvConv1x1::from_spec(spec)?),
        "ImageCoupling" => Box::new(ImageCoupling::from_spec(spec)?),
        "BatchNorm" => Box::new(BatchNorm::from_spec(spec)?),
        "Squeeze" => Box::new(Squeeze),
        "Reshape" => Box::new(Reshape::from_spec(spec)?),
        "Split" => Box::new(Split::from_spec(spec)?),
        "Logit" => {
            let dim = size(spec, "dim")?;
            let alpha = spec.f64("alpha")?;
            if !(0.0..0.5).contains(&alpha) {
                return Err(spec.error("alpha", format!("{alpha} is not in [0, 0.5)")));
            }
            Box::new(Logit::new(dim, alpha))
        }
        "Maf" | "Iaf" => super::autoregressive::layer_from_spec(spec)?,
        "Sequential" => Box::new(build_sequential(spec)?),
        "Standardize" => Box::new(crate::data::standardize::from_spec(spec)?),
        _ => {
            return Err(CheckpointError::UnknownLayer {
                path: PathBuf::new(),
                kind: spec.kind.clone(),
            })
        }
    };
    Ok(layer)
}

/// Builds a [`Sequential`] from a spec of kind `Sequential`: each child
/// with [`build_layer`], in order (a [`FlowModel`](super::FlowModel)'s flow
/// is one).
///
/// # Errors
/// [`CheckpointError::BadSpec`] if `spec` is of another kind; otherwise as
/// [`build_layer`] for each child.
pub fn build_sequential<T: Element>(spec: &LayerSpec) -> Result<Sequential<T>, CheckpointError> {
    if spec.kind != "Sequential" {
        return Err(spec.error("kind", "expected a Sequential"));
    }
    let layers = spec
        .children
        .iter()
        .map(build_layer)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Sequential::new(layers))
}

/// Takes exactly the buffers `wanted` (name, shape) from `buffers`, in that
/// order: the helper a layer's [`Flow::set_buffers`] uses.
///
/// # Errors
/// [`CheckpointError::ArchitectureMismatch`] naming `layer` and the buffer,
/// if one is missing, has another shape, or is not wanted.
pub fn take_buffers<T: Element>(
    layer: &str,
    buffers: Vec<(String, Tensor<T>)>,
    wanted: &[(&str, &[usize])],
) -> Result<Vec<Tensor<T>>, CheckpointError> {
    let mismatch = |what: String| CheckpointError::ArchitectureMismatch {
        path: PathBuf::new(),
        what: format!("layer {layer}: {what}"),
    };
    let mut buffers: Vec<Option<(String, Tensor<T>)>> = buffers.into_iter().map(Some).collect();
    let taken = wanted
        .iter()
        .map(|&(name, shape)| {
            let slot = buffers
                .iter_mut()
                .find(|b| b.as_ref().is_some_and(|(n, _)| n == name))
                .ok_or_else(|| mismatch(format!("buffer `{name}` is missing")))?;
            let (_, tensor) = slot.take().expect("found above as Some");
            if tensor.shape() != shape {
                return Err(mismatch(format!(
                    "buffer `{name}` has shape {:?}, the layer needs {shape:?}",
                    tensor.shape()
                )));
            }
            Ok(tensor)
        })
        .collect::<Result<Vec<_>, _>>()?;
    match buffers.into_iter().flatten().next() {
        Some((name, _)) => Err(mismatch(format!("unexpected buffer `{name}`"))),
        None => Ok(taken),
    }
}
