//! [`FlowError`]: why a layer could not be rebuilt from its spec or given
//! its state. The layers raise it; the checkpoint reader wraps it in
//! [`CheckpointError::Layer`](crate::error::CheckpointError::Layer) with the
//! file's path, so every layer reports a bad value the same way: the layer's
//! position in the model, its kind, the field and the value.

use std::fmt;

/// Where a layer sits in a model: the index of the layer in its
/// `Sequential`, then, for a layer inside a container (a `Split`'s inner
/// flow), the index inside that, and so on. Empty for a spec read on its own.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LayerPath(pub Vec<usize>);

impl fmt::Display for LayerPath {
    /// `layer 3` or `layer 3.0.2`; `the spec` when empty.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return write!(f, "the spec");
        }
        let parts: Vec<String> = self.0.iter().map(|i| i.to_string()).collect();
        write!(f, "layer {}", parts.join("."))
    }
}

/// Why a layer could not be built from its [`LayerSpec`](super::spec::LayerSpec)
/// or given its stored buffers.
///
/// Every variant carries `at`, the layer's position ([`LayerPath`]), filled
/// in by the containers as the error passes up through them
/// ([`FlowError::in_layer`]).
#[derive(Debug, Clone, PartialEq)]
pub enum FlowError {
    /// The spec names a layer kind the registry does not know.
    UnknownKind {
        /// Where the layer sits.
        at: LayerPath,
        /// The kind as stored (e.g. `"AffineCoupling"`).
        kind: String,
    },
    /// A field is missing, of the wrong type, or holds a value the layer
    /// cannot take (a mask that is not a partition, an unknown scale kind, ...).
    BadSpec {
        /// Where the layer sits.
        at: LayerPath,
        /// The layer's kind.
        layer: String,
        /// The field.
        field: String,
        /// What is wrong with it, quoting the value.
        what: String,
    },
    /// Stored buffers (non-trainable state) do not fit the layer: one
    /// missing, left over, or of another shape.
    BufferMismatch {
        /// Where the layer sits.
        at: LayerPath,
        /// The layer's name.
        layer: String,
        /// Which buffer, and both sides of the disagreement.
        what: String,
    },
}

impl FlowError {
    /// The same error one container level up: the error of a layer at
    /// `index` inside a container gets `index` in front of its path.
    pub fn in_layer(mut self, index: usize) -> Self {
        let at = match &mut self {
            FlowError::UnknownKind { at, .. }
            | FlowError::BadSpec { at, .. }
            | FlowError::BufferMismatch { at, .. } => at,
        };
        at.0.insert(0, index);
        self
    }

    /// Where the layer sits.
    pub fn at(&self) -> &LayerPath {
        match self {
            FlowError::UnknownKind { at, .. }
            | FlowError::BadSpec { at, .. }
            | FlowError::BufferMismatch { at, .. } => at,
        }
    }
}

impl fmt::Display for FlowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlowError::UnknownKind { at, kind } => write!(
                f,
                "{at}: unknown layer kind \"{kind}\": this build of flowzoo cannot construct it"
            ),
            FlowError::BadSpec {
                at,
                layer,
                field,
                what,
            } => write!(f, "{at} ({layer}), field `{field}`: {what}"),
            FlowError::BufferMismatch { at, layer, what } => {
                write!(f, "{at} ({layer}): {what}")
            }
        }
    }
}

impl std::error::Error for FlowError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_grows_from_the_inside_out() {
        let e = FlowError::UnknownKind {
            at: LayerPath::default(),
            kind: "Mystery".into(),
        };
        assert!(e.to_string().starts_with("the spec: "));
        let e = e.in_layer(0).in_layer(3);
        assert_eq!(e.at(), &LayerPath(vec![3, 0]));
        assert!(e
            .to_string()
            .starts_with("layer 3.0: unknown layer kind \"Mystery\""));
    }
}
