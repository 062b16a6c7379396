//! Constructors: from a `Vec`, filled, and seeded random samples.

use super::{Element, Layout, Tensor};
use rand::Rng;
use rand_distr::{Distribution, StandardNormal, Uniform};
use std::sync::Arc;

impl<T: Element> Tensor<T> {
    /// A contiguous tensor of `shape` holding `data` in row-major order.
    ///
    /// # Panics
    /// If `data.len()` is not the product of `shape`.
    pub fn from_vec(data: Vec<T>, shape: &[usize]) -> Self {
        let layout = Layout::contiguous(shape);
        assert_eq!(
            data.len(),
            layout.numel(),
            "from_vec: {} values do not fill shape {shape:?}",
            data.len()
        );
        Tensor {
            storage: Arc::new(super::Storage(data)),
            layout,
        }
    }

    /// A contiguous tensor from `f64` values, converted to `T`.
    ///
    /// # Panics
    /// If `data.len()` is not the product of `shape`.
    pub fn from_f64_slice(data: &[f64], shape: &[usize]) -> Self {
        Tensor::from_vec(data.iter().map(|&v| T::from_f64(v)).collect(), shape)
    }

    /// A rank-0 tensor holding `value`.
    pub fn scalar(value: T) -> Self {
        Tensor::from_vec(vec![value], &[])
    }

    /// A tensor of `shape` with every element `value`.
    pub fn full(shape: &[usize], value: T) -> Self {
        let n = shape.iter().product();
        Tensor::from_vec(super::pool::filled(n, value), shape)
    }

    /// Zeros of `shape`.
    pub fn zeros(shape: &[usize]) -> Self {
        Tensor::full(shape, T::ZERO)
    }

    /// Ones of `shape`.
    pub fn ones(shape: &[usize]) -> Self {
        Tensor::full(shape, T::ONE)
    }

    /// `[0, 1, …, n-1]` as a rank-1 tensor.
    pub fn arange(n: usize) -> Self {
        Tensor::from_vec((0..n).map(|i| T::from_f64(i as f64)).collect(), &[n])
    }

    /// Independent standard normal samples N(0, 1), drawn in row-major order
    /// from `rng` (so the same seed gives the same tensor).
    pub fn randn<R: Rng + ?Sized>(shape: &[usize], rng: &mut R) -> Self {
        let n = shape.iter().product();
        let data = (0..n)
            .map(|_| T::from_f64(StandardNormal.sample(rng)))
            .collect();
        Tensor::from_vec(data, shape)
    }

    /// Independent uniform samples on `[low, high)`, drawn in row-major order.
    ///
    /// # Panics
    /// If `low >= high`.
    pub fn rand_uniform<R: Rng + ?Sized>(
        shape: &[usize],
        low: f64,
        high: f64,
        rng: &mut R,
    ) -> Self {
        assert!(low < high, "rand_uniform: empty range [{low}, {high})");
        let dist = Uniform::new(low, high);
        let n = shape.iter().product();
        let data = (0..n).map(|_| T::from_f64(dist.sample(rng))).collect();
        Tensor::from_vec(data, shape)
    }
}
