//! [`Param`]: a named, trainable tensor with a slot for its gradient.

use crate::tensor::{Element, Tensor};
use std::sync::atomic::{AtomicUsize, Ordering};

static NEXT_ID: AtomicUsize = AtomicUsize::new(0);

/// A trainable tensor: its value, its last gradient, and a name for messages
/// and checkpoints (`"coupling3.net.layer0.weight"`).
///
/// Each `Param` has a process-unique id, so a [`Tape`](super::Tape) records a
/// parameter used twice in one graph as one leaf and sums both uses' gradients.
#[derive(Clone, Debug)]
pub struct Param<T: Element> {
    /// The current value.
    pub value: Tensor<T>,
    /// The gradient of the last backward pass (same shape as `value`), or `None`.
    pub grad: Option<Tensor<T>>,
    /// The parameter's name, dotted by owner (`layer3.scale`).
    pub name: String,
    id: usize,
}

impl<T: Element> Param<T> {
    /// A parameter holding `value`, with no gradient yet.
    pub fn new(name: impl Into<String>, value: Tensor<T>) -> Self {
        Param {
            value,
            grad: None,
            name: name.into(),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// The process-unique id a tape records this parameter under.
    #[inline]
    pub fn id(&self) -> usize {
        self.id
    }

    /// The number of scalar entries.
    pub fn numel(&self) -> usize {
        self.value.numel()
    }

    /// Prefixes the name with `owner.` (used when a layer adopts a sub-module).
    pub fn prefix(&mut self, owner: &str) {
        self.name = format!("{owner}.{}", self.name);
    }
}
