//! [`Tape`]: the Wengert list. Nodes are appended in execution order, so the
//! vector read backwards is already a valid reverse topological order.

use super::backward::run_backward;
use super::op::Op;
use super::param::Param;
use super::var::Var;
use crate::tensor::{Element, Tensor};
use std::cell::RefCell;

/// A record of the operations that produced a value, for reverse-mode
/// differentiation; or, made with [`Tape::no_grad`], a context that records
/// nothing (inference: `sample`, `log_prob`).
///
/// A tape lives for one forward + backward pass: build it, compute a loss
/// from [`Var`]s, call [`Tape::backward`], drop it.
///
/// # Examples
/// ```
/// use flowzoo::autodiff::Tape;
/// use flowzoo::tensor::Tensor;
/// let tape = Tape::new();
/// let x = tape.leaf(Tensor::<f64>::from_vec(vec![3.0, 1.0, 4.0], &[3]));
/// // y = Σ x² + 5x, so dy/dx = 2x + 5 = [11, 7, 13]
/// let y = (&(&x * &x) + &x.mul_scalar(5.0)).sum_all();
/// let grads = tape.backward(&y);
/// assert_eq!(grads.wrt(&x).unwrap().to_vec(), vec![11.0, 7.0, 13.0]);
/// ```
pub struct Tape<T: Element> {
    nodes: RefCell<Vec<Op<T>>>,
    params: RefCell<Vec<(usize, usize)>>,
    recording: bool,
}

impl<T: Element> Default for Tape<T> {
    fn default() -> Self {
        Tape::new()
    }
}

impl<T: Element> Tape<T> {
    /// An empty tape that records.
    pub fn new() -> Self {
        Tape {
            nodes: RefCell::new(Vec::with_capacity(256)),
            params: RefCell::new(Vec::new()),
            recording: true,
        }
    }

    /// A tape that records nothing: every [`Var`] made on it is a plain value,
    /// so evaluation keeps no graph and frees intermediates as it goes.
    pub fn no_grad() -> Self {
        Tape {
            nodes: RefCell::new(Vec::new()),
            params: RefCell::new(Vec::new()),
            recording: false,
        }
    }

    /// True unless made by [`Tape::no_grad`].
    #[inline]
    pub fn is_recording(&self) -> bool {
        self.recording
    }

    /// The number of recorded nodes.
    pub fn len(&self) -> usize {
        self.nodes.borrow().len()
    }

    /// True when nothing has been recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn push(&self, op: Op<T>) -> usize {
        if super::profile::on() {
            super::profile::pushed(op.kind());
        }
        let mut nodes = self.nodes.borrow_mut();
        nodes.push(op);
        nodes.len() - 1
    }

    /// A value that wants a gradient (an input of a gradient check, say).
    /// On a no-grad tape it is a constant.
    pub fn leaf(&self, value: Tensor<T>) -> Var<'_, T> {
        let node = self.recording.then(|| self.push(Op::Leaf));
        Var::from_parts(self, value, node)
    }

    /// A value that needs no gradient (data, masks).
    pub fn constant(&self, value: Tensor<T>) -> Var<'_, T> {
        Var::from_parts(self, value, None)
    }

    /// The [`Var`] of a parameter: recorded as a leaf the first time it is
    /// asked for on this tape, the same node afterwards.
    pub fn param(&self, param: &Param<T>) -> Var<'_, T> {
        if !self.recording {
            return self.constant(param.value.clone());
        }
        let known = self
            .params
            .borrow()
            .iter()
            .find(|(id, _)| *id == param.id())
            .map(|&(_, node)| node);
        let node = known.unwrap_or_else(|| {
            let node = self.push(Op::Leaf);
            self.params.borrow_mut().push((param.id(), node));
            node
        });
        Var::from_parts(self, param.value.clone(), Some(node))
    }

    /// Reverse-mode differentiation of a one-element `loss`: the gradient of
    /// `loss` with respect to every leaf and parameter recorded on this tape.
    ///
    /// # Panics
    /// If `loss` does not hold exactly one element or belongs to another tape.
    pub fn backward(&self, loss: &Var<'_, T>) -> Gradients<T> {
        assert!(
            std::ptr::eq(loss.tape(), self),
            "backward: the loss was not recorded on this tape"
        );
        assert_eq!(
            loss.value().numel(),
            1,
            "backward: loss must hold one element, got shape {:?}",
            loss.value().shape()
        );
        let nodes = self.nodes.borrow();
        let grads = match loss.node() {
            Some(root) => run_backward(&nodes, root, Tensor::ones(loss.value().shape())),
            None => vec![None; nodes.len()],
        };
        Gradients {
            grads,
            params: self.params.borrow().clone(),
        }
    }
}

/// The gradients of one backward pass, by leaf.
pub struct Gradients<T: Element> {
    grads: Vec<Option<Tensor<T>>>,
    params: Vec<(usize, usize)>,
}

impl<T: Element> Gradients<T> {
    /// The gradient with respect to a leaf `Var` (same shape), or `None` if the
    /// loss does not depend on it.
    pub fn wrt(&self, var: &Var<'_, T>) -> Option<Tensor<T>> {
        var.node()
            .and_then(|n| self.grads.get(n).cloned().flatten())
            .map(|g| g.contiguous())
    }

    /// The gradient with respect to a parameter, or `None` if it was not used.
    pub fn of(&self, param: &Param<T>) -> Option<Tensor<T>> {
        self.params
            .iter()
            .find(|(id, _)| *id == param.id())
            .and_then(|&(_, node)| self.grads[node].clone())
            .map(|g| g.reshape(param.value.shape()).contiguous())
    }

    /// Stores each parameter's gradient in its `grad` slot (zeros when the loss
    /// did not reach it).
    pub fn assign<'a>(&self, params: impl IntoIterator<Item = &'a mut Param<T>>) {
        for p in params {
            p.grad = Some(self.of(p).unwrap_or_else(|| Tensor::zeros(p.value.shape())));
        }
    }
}
