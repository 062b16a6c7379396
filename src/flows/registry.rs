//! The registry: each layer kind's name and the function that reads it back
//! from its [`LayerSpec`], one line per kind. Every reader is the layer's own
//! `from_spec`, in the layer's file, beside the `to_spec` that wrote the
//! spec; this file only lists them. A layer defined outside the crate joins
//! with [`register`] and then loads from checkpoints like the crate's own.
//!
//! How to add a layer: the [`flows`](super) module doc, "Add a layer".

use super::actnorm::ActNorm;
use super::autoregressive::Maf;
use super::batchnorm::BatchNorm;
use super::coupling::{AdditiveCoupling, AffineCoupling};
use super::error::{FlowError, LayerPath};
use super::flow::{BuildChild, Flow};
use super::iaf::Iaf;
use super::image_coupling::ImageCoupling;
use super::image_spline_coupling::ImageSplineCoupling;
use super::inv_conv::InvConv1x1;
use super::permute::{Permutation, Reverse};
use super::preprocess::Logit;
use super::rescale::Rescale;
use super::sequential::Sequential;
use super::spec::LayerSpec;
use super::spline_coupling::SplineCoupling;
use super::spline_maf::SplineMaf;
use super::squeeze::{Reshape, Split, Squeeze};
use super::standardize::Standardize;
use crate::tensor::Element;
use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{OnceLock, RwLock};

/// A layer's reader: its spec (and, for a container, the function that
/// builds its children) to the layer, with placeholder parameters that the
/// checkpoint loader then fills by name.
pub type Reader<T> = fn(&LayerSpec, BuildChild<T>) -> Result<Box<dyn Flow<T>>, FlowError>;

/// The crate's layer kinds and their readers, one line each.
fn builtin<T: Element>() -> [(&'static str, Reader<T>); 20] {
    [
        ("AffineCoupling", |s, _| {
            Ok(Box::new(AffineCoupling::from_spec(s)?))
        }),
        ("AdditiveCoupling", |s, _| {
            Ok(Box::new(AdditiveCoupling::from_spec(s)?))
        }),
        ("Rescale", |s, _| Ok(Box::new(Rescale::from_spec(s)?))),
        ("Reverse", |s, _| Ok(Box::new(Reverse::from_spec(s)?))),
        ("Permutation", |s, _| {
            Ok(Box::new(Permutation::from_spec(s)?))
        }),
        ("ActNorm", |s, _| Ok(Box::new(ActNorm::from_spec(s)?))),
        ("InvConv1x1", |s, _| Ok(Box::new(InvConv1x1::from_spec(s)?))),
        ("ImageCoupling", |s, _| {
            Ok(Box::new(ImageCoupling::from_spec(s)?))
        }),
        ("BatchNorm", |s, _| Ok(Box::new(BatchNorm::from_spec(s)?))),
        ("Squeeze", |s, _| Ok(Box::new(Squeeze::from_spec(s)?))),
        ("Reshape", |s, _| Ok(Box::new(Reshape::from_spec(s)?))),
        ("Split", |s, build| {
            Ok(Box::new(Split::from_spec(s, build)?))
        }),
        ("Logit", |s, _| Ok(Box::new(Logit::from_spec(s)?))),
        ("Maf", |s, _| Ok(Box::new(Maf::from_spec(s)?))),
        ("Iaf", |s, _| Ok(Box::new(Iaf::from_spec(s)?))),
        ("Sequential", |s, build| {
            Ok(Box::new(Sequential::from_spec(s, build)?))
        }),
        ("Standardize", |s, _| {
            Ok(Box::new(Standardize::from_spec(s)?))
        }),
        ("SplineCoupling", |s, _| {
            Ok(Box::new(SplineCoupling::from_spec(s)?))
        }),
        ("SplineMaf", |s, _| Ok(Box::new(SplineMaf::from_spec(s)?))),
        ("ImageSplineCoupling", |s, _| {
            Ok(Box::new(ImageSplineCoupling::from_spec(s)?))
        }),
    ]
}

/// Readers added with [`register`], by kind and element type.
type Registered = HashMap<(String, TypeId), Box<dyn Any + Send + Sync>>;

fn registered() -> &'static RwLock<Registered> {
    static REGISTERED: OnceLock<RwLock<Registered>> = OnceLock::new();
    REGISTERED.get_or_init(Default::default)
}

/// Adds a layer kind defined outside the crate, so that [`build_layer`]
/// (and so a checkpoint) can read it back: `reader` turns the spec the
/// layer's `to_spec` wrote into the layer. Register once per element type
/// the layer is loaded as (`f32` for the command line's models). Registering
/// the same kind again replaces the reader.
///
/// # Panics
/// If `kind` is one of the crate's own kinds ([`layer_kinds`]).
///
/// # Examples
/// `tests/registry.rs` defines a layer in the test, registers it and
/// round-trips a model holding it through a checkpoint.
pub fn register<T: Element>(kind: &str, reader: Reader<T>) {
    assert!(
        !builtin::<T>().iter().any(|(k, _)| *k == kind),
        "register: \"{kind}\" is a layer kind of the crate and cannot be replaced"
    );
    registered()
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .insert((kind.to_string(), TypeId::of::<T>()), Box::new(reader));
}

/// The reader of `kind` for element type `T`: the crate's, else a registered one.
fn reader<T: Element>(kind: &str) -> Option<Reader<T>> {
    if let Some((_, read)) = builtin::<T>().into_iter().find(|(k, _)| *k == kind) {
        return Some(read);
    }
    let map = registered()
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    map.get(&(kind.to_string(), TypeId::of::<T>()))
        .and_then(|read| read.downcast_ref::<Reader<T>>())
        .copied()
}

/// The crate's own layer kinds, in the registry's order
/// (`tests/checkpoint.rs` round-trips a model holding each).
pub fn layer_kinds() -> Vec<&'static str> {
    builtin::<f64>().iter().map(|(kind, _)| *kind).collect()
}

/// Builds the layer `spec` describes, with placeholder parameter values
/// (fill them by name afterwards, as the checkpoint loader does).
///
/// # Errors
/// [`FlowError::UnknownKind`] for a kind neither the crate nor
/// [`register`] knows; the layer's own [`FlowError::BadSpec`] for a
/// missing, mistyped or invalid field. Inside containers the error's path
/// names the layer's position ([`LayerPath`]).
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
pub fn build_layer<T: Element>(spec: &LayerSpec) -> Result<Box<dyn Flow<T>>, FlowError> {
    match reader::<T>(&spec.kind) {
        Some(read) => read(spec, &build_layer::<T>),
        None => Err(FlowError::UnknownKind {
            at: LayerPath::default(),
            kind: spec.kind.clone(),
        }),
    }
}

/// Builds a [`Sequential`] from a spec of kind `Sequential` (a
/// [`FlowModel`](super::FlowModel)'s flow is one).
///
/// # Errors
/// [`FlowError::BadSpec`] if `spec` is of another kind; otherwise as
/// [`build_layer`] for each child, the child's index in the error's path.
pub fn build_sequential<T: Element>(spec: &LayerSpec) -> Result<Sequential<T>, FlowError> {
    Sequential::from_spec(spec, &build_layer::<T>)
}
