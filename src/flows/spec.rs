//! Layer specs: a flow's architecture as data. This is what makes a
//! checkpoint self-describing: [`Flow::to_spec`](super::Flow::to_spec)
//! writes a [`LayerSpec`] (the layer's kind, its sizes, masks, orders,
//! permutations, flags, and its sub-layers), the checkpoint stores the tree,
//! and each layer's own `from_spec`, reached through the
//! [`registry`](super::registry), turns it back into the layer, whose
//! parameters are then filled by name.
//!
//! What goes where:
//!
//! | state | where it is saved |
//! | --- | --- |
//! | sizes, masks, orders, permutations, flags (ActNorm's initialised flag) | the spec's `fields` |
//! | sub-layers (a `Sequential`'s layers) | the spec's `children`, in order |
//! | trainable tensors | [`Flow::params`](super::Flow::params), by name |
//! | non-trainable tensors (BatchNorm running statistics) | [`Flow::buffers`](super::Flow::buffers), by name |
//!
//! This file holds the data type, its typed accessors (each refuses a
//! missing, mistyped or out-of-range field with a [`FlowError::BadSpec`]
//! naming the field and the value), and the allocation bounds a loader
//! enforces. How to add a layer: the [`flows`](super) module doc.
//!
//! The byte layout of a spec in a file is in docs/checkpoint-format.md.

use super::error::{FlowError, LayerPath};
use crate::tensor::{Element, Tensor};

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
/// use flowzoo::flows::registry::build_layer;
/// use flowzoo::flows::spec::LayerSpec;
/// use flowzoo::flows::{Flow, Reverse};
/// let spec = LayerSpec::new("Reverse").with("dim", 3usize);
/// assert_eq!(Flow::<f32>::to_spec(&Reverse::new(3)), Some(spec.clone()));
/// let layer = build_layer::<f32>(&spec).unwrap();
/// assert_eq!(layer.name(), "Reverse");
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct LayerSpec {
    /// The layer's kind, the name [`build_layer`](super::registry::build_layer) dispatches on (`"AffineCoupling"`).
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

    /// A [`FlowError::BadSpec`] about field `field` of this layer.
    pub fn error(&self, field: &str, what: impl Into<String>) -> FlowError {
        FlowError::BadSpec {
            at: LayerPath::default(),
            layer: self.kind.clone(),
            field: field.to_string(),
            what: what.into(),
        }
    }

    fn field(&self, name: &str) -> Result<&SpecValue, FlowError> {
        self.get(name)
            .ok_or_else(|| self.error(name, "missing from the spec"))
    }

    fn wrong_type(&self, name: &str, wanted: &str, found: &SpecValue) -> FlowError {
        self.error(
            name,
            format!("expected {wanted}, found {}", found.type_name()),
        )
    }

    /// Field `name` as a non-negative integer.
    ///
    /// # Errors
    /// [`FlowError::BadSpec`] if it is missing, not an int, or negative.
    pub fn usize(&self, name: &str) -> Result<usize, FlowError> {
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
    /// [`FlowError::BadSpec`] if it is missing, not a list of ints, or
    /// holds a negative entry.
    pub fn usizes(&self, name: &str) -> Result<Vec<usize>, FlowError> {
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
    /// [`FlowError::BadSpec`] if it is missing or not a list of ints.
    pub fn ints(&self, name: &str) -> Result<Vec<i64>, FlowError> {
        match self.field(name)? {
            SpecValue::Ints(v) => Ok(v.clone()),
            other => Err(self.wrong_type(name, "a list of ints", other)),
        }
    }

    /// Field `name` as a finite real (an int is accepted and converted).
    ///
    /// # Errors
    /// [`FlowError::BadSpec`] if it is missing, not a number, or not finite.
    pub fn f64(&self, name: &str) -> Result<f64, FlowError> {
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
    /// [`FlowError::BadSpec`] if it is missing, not a list of floats,
    /// or holds a NaN or infinity.
    pub fn f64s(&self, name: &str) -> Result<Vec<f64>, FlowError> {
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
    /// [`FlowError::BadSpec`] if it is missing or not a bool.
    pub fn bool(&self, name: &str) -> Result<bool, FlowError> {
        match self.field(name)? {
            &SpecValue::Bool(v) => Ok(v),
            other => Err(self.wrong_type(name, "a bool", other)),
        }
    }

    /// Field `name` as a string.
    ///
    /// # Errors
    /// [`FlowError::BadSpec`] if it is missing or not a string.
    pub fn str(&self, name: &str) -> Result<&str, FlowError> {
        match self.field(name)? {
            SpecValue::Str(v) => Ok(v),
            other => Err(self.wrong_type(name, "a string", other)),
        }
    }

    /// Field `name` as one of the names in `known` (a scale kind, a mask
    /// kind, a mode): how every layer reads a field with a fixed set of
    /// values, so an unknown value is refused the same way everywhere.
    ///
    /// # Errors
    /// [`FlowError::BadSpec`] if it is missing, not a string, or not in
    /// `known` (the message quotes the value and lists the known ones).
    pub fn choice<'a>(&self, name: &str, known: &[&'a str]) -> Result<&'a str, FlowError> {
        let value = self.str(name)?;
        known.iter().copied().find(|k| *k == value).ok_or_else(|| {
            self.error(
                name,
                format!("unknown value \"{value}\" (known: {})", known.join(", ")),
            )
        })
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
pub(crate) fn size(spec: &LayerSpec, name: &str) -> Result<usize, FlowError> {
    let v = spec.usize(name)?;
    if (1..=MAX_SIZE).contains(&v) {
        Ok(v)
    } else {
        Err(spec.error(name, format!("{v} is not a size in 1..={MAX_SIZE}")))
    }
}

/// Field `name` as a list of sizes in 1..=[`MAX_SIZE`].
pub(crate) fn sizes(spec: &LayerSpec, name: &str) -> Result<Vec<usize>, FlowError> {
    let v = spec.usizes(name)?;
    match v.iter().find(|&&s| !(1..=MAX_SIZE).contains(&s)) {
        Some(s) => Err(spec.error(name, format!("{s} is not a size in 1..={MAX_SIZE}"))),
        None => Ok(v),
    }
}

/// Field `name` as a per-sample shape: sizes in 1..=[`MAX_SIZE`], at least
/// one and fewer than [`MAX_DIMS`](crate::tensor::MAX_DIMS) axes (the batch
/// axis comes on top), at most [`MAX_LAYER_ELEMENTS`] elements.
pub(crate) fn sample_shape(spec: &LayerSpec, name: &str) -> Result<Vec<usize>, FlowError> {
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
) -> Result<usize, FlowError> {
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
) -> Result<(), FlowError> {
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
/// [`FlowError::BadSpec`] naming `name` for a wrong length, an entry
/// out of range, or an entry that repeats.
pub(crate) fn permutation(
    spec: &LayerSpec,
    name: &str,
    n: Option<usize>,
) -> Result<Vec<usize>, FlowError> {
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
) -> Result<(), FlowError> {
    let total = widths.windows(2).try_fold(0usize, |acc, w| {
        w[0].checked_mul(w[1])
            .and_then(|n| n.checked_add(w[1]))
            .and_then(|n| acc.checked_add(n))
    });
    check_elements(spec, field, total.and_then(|n| n.checked_mul(copies)))
}

/// Takes exactly the buffers `wanted` (name, shape) from `buffers`, in that
/// order: the helper a layer's [`Flow::set_buffers`](super::Flow::set_buffers) uses.
///
/// # Errors
/// [`FlowError::BufferMismatch`] naming `layer` and the buffer,
/// if one is missing, has another shape, or is not wanted.
pub fn take_buffers<T: Element>(
    layer: &str,
    buffers: Vec<(String, Tensor<T>)>,
    wanted: &[(&str, &[usize])],
) -> Result<Vec<Tensor<T>>, FlowError> {
    let mismatch = |what: String| FlowError::BufferMismatch {
        at: LayerPath::default(),
        layer: layer.to_string(),
        what,
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
