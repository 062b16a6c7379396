//! The strided tensor: [`Tensor<T>`] is a [`Layout`] (shape, strides, offset)
//! over shared, reference-counted storage.
//!
//! Views (transpose, permute, narrow, broadcast, reshape of a contiguous
//! tensor) only make a new `Layout` and share the storage; kernels read any
//! layout, with a fast path for contiguous data. Results are fresh contiguous
//! tensors. Read `layout.rs` first, then `strided.rs`, then the kernels.
//!
//! Misuse (shapes that do not broadcast, an axis out of range) panics with the
//! op's name and both shapes: `matmul: inner dimensions differ: lhs [4, 3], rhs [5, 2]`.
//!
//! Derivation: [`derivations::tensor_layout`](crate::derivations::tensor_layout)
//! (docs/derivations/tensor-layout.md).

pub mod blocked;
mod conv;
mod cpu;
mod create;
mod display;
pub mod element;
mod elementwise;
pub mod fused;
mod gemm;
pub mod layout;
pub mod linalg;
pub mod math;
mod matmul;
pub mod parallel;
pub mod pool;
mod reduce;
mod simd;
pub mod strided;
mod views;
mod wide;

pub use element::Element;
pub use layout::{broadcast_shapes, Layout, MAX_DIMS};
pub(crate) use views::SqueezePlan;

use std::sync::Arc;

/// An n-dimensional array of `f32` or `f64`: a [`Layout`] over shared storage.
///
/// Cloning is cheap (the storage is reference-counted); a view shares the
/// storage; every kernel returns a new contiguous tensor.
pub struct Tensor<T: Element> {
    storage: Arc<Storage<T>>,
    layout: Layout,
}

/// A tensor's buffer. When the last tensor sharing it drops, the buffer goes
/// to the process-wide [`pool`] for the next kernel's output instead of back
/// to the allocator.
struct Storage<T: Element>(Vec<T>);

impl<T: Element> Drop for Storage<T> {
    fn drop(&mut self) {
        pool::give(std::mem::take(&mut self.0));
    }
}

impl<T: Element> Clone for Storage<T> {
    fn clone(&self) -> Self {
        let mut v = pool::with_capacity(self.0.len());
        v.extend_from_slice(&self.0);
        Storage(v)
    }
}

impl<T: Element> Clone for Tensor<T> {
    fn clone(&self) -> Self {
        Tensor {
            storage: Arc::clone(&self.storage),
            layout: self.layout,
        }
    }
}

impl<T: Element> Tensor<T> {
    /// Builds a tensor from a buffer and a layout that fits inside it. Like
    /// every tensor's storage, the buffer goes to the [`pool`] when the last
    /// tensor holding it drops.
    ///
    /// # Panics
    /// If the layout reaches past the end of the storage.
    pub fn from_storage(storage: Vec<T>, layout: Layout) -> Self {
        assert!(
            layout.storage_span() <= storage.len(),
            "from_storage: {layout:?} reaches index {} of a storage of {}",
            layout.storage_span(),
            storage.len()
        );
        Tensor {
            storage: Arc::new(Storage(storage)),
            layout,
        }
    }

    /// The layout: shape, strides and offset.
    #[inline]
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The sizes of the axes.
    #[inline]
    pub fn shape(&self) -> &[usize] {
        self.layout.shape()
    }

    /// The strides of the axes, in elements.
    #[inline]
    pub fn strides(&self) -> &[usize] {
        self.layout.strides()
    }

    /// The number of axes.
    #[inline]
    pub fn ndim(&self) -> usize {
        self.layout.ndim()
    }

    /// The number of elements.
    #[inline]
    pub fn numel(&self) -> usize {
        self.layout.numel()
    }

    /// The size of axis `axis`.
    ///
    /// # Panics
    /// If `axis` is out of range.
    #[inline]
    pub fn dim(&self, axis: usize) -> usize {
        self.shape()[axis]
    }

    /// The whole shared storage (not only the part this layout sees).
    #[inline]
    pub fn storage(&self) -> &[T] {
        &self.storage.0
    }

    /// True when this tensor and `other` share one storage buffer.
    pub fn shares_storage_with(&self, other: &Tensor<T>) -> bool {
        Arc::ptr_eq(&self.storage, &other.storage)
    }

    /// True when the layout is row-major with no gaps.
    #[inline]
    pub fn is_contiguous(&self) -> bool {
        self.layout.is_contiguous()
    }

    /// The elements in row-major order as a slice, borrowed, when the layout is
    /// contiguous; `None` otherwise (see [`Tensor::contiguous`]).
    #[inline]
    pub fn as_slice(&self) -> Option<&[T]> {
        if self.is_contiguous() {
            let start = self.layout.offset();
            Some(&self.storage.0[start..start + self.numel()])
        } else {
            None
        }
    }

    /// The elements in row-major order, copied.
    pub fn to_vec(&self) -> Vec<T> {
        match self.as_slice() {
            Some(s) => s.to_vec(),
            // The copy `contiguous` makes (by rows, no list of offsets), owned.
            None => self.contiguous().into_vec(),
        }
    }

    /// The elements in row-major order, without a copy when this tensor owns
    /// its contiguous storage alone.
    pub fn into_vec(self) -> Vec<T> {
        if self.is_contiguous() && self.layout.offset() == 0 && self.storage.0.len() == self.numel()
        {
            match Arc::try_unwrap(self.storage) {
                Ok(mut only) => std::mem::take(&mut only.0),
                Err(shared) => shared.0.clone(),
            }
        } else {
            self.to_vec()
        }
    }

    /// The elements as `f64`, row-major, copied.
    pub fn to_f64_vec(&self) -> Vec<f64> {
        self.to_vec().into_iter().map(T::to_f64).collect()
    }

    /// This tensor converted to element type `U` (a copy).
    pub fn cast<U: Element>(&self) -> Tensor<U> {
        Tensor::from_vec(
            self.to_vec()
                .into_iter()
                .map(|v| U::from_f64(v.to_f64()))
                .collect(),
            self.shape(),
        )
    }

    /// The tensor itself when contiguous (no copy), else a contiguous copy.
    pub fn contiguous(&self) -> Tensor<T> {
        if self.is_contiguous() {
            self.clone()
        } else {
            // The element-wise kernel's copy: rows (or tiles) of the view into
            // a buffer from the pool, without a list of offsets.
            self.map(|v| v)
        }
    }

    /// The element at a multi-index.
    ///
    /// # Panics
    /// If the index has the wrong rank or is out of range.
    pub fn get(&self, index: &[usize]) -> T {
        self.storage.0[self.layout.index_of(index)]
    }

    /// The single element of a one-element tensor.
    ///
    /// # Panics
    /// If the tensor does not hold exactly one element.
    pub fn item(&self) -> T {
        assert_eq!(
            self.numel(),
            1,
            "item: tensor of shape {:?} does not hold one element",
            self.shape()
        );
        self.storage.0[self.layout.offset()]
    }

    /// The elements as a mutable row-major slice; copies first when the layout
    /// is not contiguous or the storage is shared (copy-on-write).
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        let whole = self.is_contiguous()
            && self.layout.offset() == 0
            && self.storage.0.len() == self.numel();
        if !whole {
            *self = self.map(|v| v);
        }
        Arc::make_mut(&mut self.storage).0.as_mut_slice()
    }

    /// True when every element is finite (no NaN, no infinity).
    pub fn all_finite(&self) -> bool {
        match self.as_slice() {
            Some(s) => s.iter().all(|v| v.is_finite()),
            None => self.to_vec().iter().all(|v| v.is_finite()),
        }
    }
}
