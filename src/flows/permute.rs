//! Fixed permutations of the features: exact, volume-preserving (log-det 0).
//!
//! Derivation: [`derivations::permutations`](crate::derivations::permutations)
//! (docs/derivations/permutations.md).

use super::error::FlowError;
use super::flow::Flow;
use super::spec::{permutation, size, LayerSpec};
use crate::autodiff::Var;
use crate::tensor::{Element, Tensor};

/// Reverses the order of the features: `xᵢ = z_{D−1−i}`. Its own inverse;
/// log|det| = 0 (a permutation matrix has determinant ±1).
///
/// # Shapes
/// `[batch, dim] → [batch, dim]`, log-det `[batch]` of zeros.
///
/// # Panics
/// If the input is not `[_, dim]`, naming the layer and both shapes.
///
/// # Source
/// Dinh, Sohl-Dickstein, Bengio, arXiv:1605.08803, §3.5 (alternating the
/// roles of the features); Kingma & Dhariwal, arXiv:1807.03039, §3.2 (the
/// "reverse" baseline).
///
/// # Derivation
/// [`derivations::permutations`, "Reverse"](crate::derivations::permutations#reverse)
/// (docs/derivations/permutations.md): why a permutation matrix has
/// |det| = 1.
#[derive(Clone, Copy, Debug)]
pub struct Reverse {
    /// The number of features D.
    pub dim: usize,
}

impl Reverse {
    /// The reversal of `dim` features.
    pub fn new(dim: usize) -> Self {
        Reverse { dim }
    }

    /// The layer a spec of kind `Reverse` describes (field `dim`).
    ///
    /// # Errors
    /// [`FlowError::BadSpec`] if `dim` is missing or not a size.
    pub fn from_spec(spec: &LayerSpec) -> Result<Self, FlowError> {
        Ok(Reverse::new(size(spec, "dim")?))
    }

    fn apply<'t, T: Element>(&self, v: &Var<'t, T>) -> (Var<'t, T>, Var<'t, T>) {
        assert!(
            v.shape().len() == 2 && v.shape()[1] == self.dim,
            "Reverse: expected [batch, {}], got {:?}",
            self.dim,
            v.shape()
        );
        let order: Vec<usize> = (0..self.dim).rev().collect();
        let zeros = v.constant(Tensor::zeros(&[v.shape()[0]]));
        (v.index_select(1, &order), zeros)
    }
}

impl<T: Element> Flow<T> for Reverse {
    fn name(&self) -> String {
        "Reverse".into()
    }

    fn per_sample(&self) -> bool {
        true
    }

    fn forward<'t>(&self, z: &Var<'t, T>) -> (Var<'t, T>, Var<'t, T>) {
        self.apply(z)
    }
    fn to_spec(&self) -> Option<LayerSpec> {
        Some(LayerSpec::new("Reverse").with("dim", self.dim))
    }
    fn inverse<'t>(&self, x: &Var<'t, T>) -> (Var<'t, T>, Var<'t, T>) {
        self.apply(x)
    }
}

/// A fixed permutation of the features (vectors) or channels (images),
/// chosen once, e.g. at random from a seed: `x[:, i] = z[:, perm[i]]`. Exact
/// in both directions; log|det| = 0.
///
/// RealNVP reverses the features between couplings ([`Reverse`]); a random
/// fixed permutation mixes them more evenly, and Glow's "shuffle" baseline
/// is this layer on channels.
///
/// # Shapes
/// `[batch, dim]` or `[batch, channels, height, width]` (axis 1 permuted),
/// same shape out; log-det `[batch]` of zeros.
///
/// # Panics
/// `new` panics if `perm` is not a permutation of 0..n; `forward` and
/// `inverse` if axis 1 of the input is not n long.
///
/// # Source
/// Kingma & Dhariwal, arXiv:1807.03039, §3.2 and figure 3 (reverse and
/// shuffle baselines).
///
/// # Derivation
/// [`derivations::permutations`, "Permutation"](crate::derivations::permutations#permutation)
/// (docs/derivations/permutations.md): the inverse permutation, and the
/// log-det 0 on vectors and on the channels of images.
///
/// # Examples
/// ```
/// use flowzoo::flows::{permute::Permutation, Flow};
/// use flowzoo::tensor::Tensor;
/// use rand::SeedableRng;
/// let layer = Permutation::random(5, &mut rand::rngs::StdRng::seed_from_u64(3));
/// let z = Tensor::<f64>::arange(5).reshape(&[1, 5]);
/// let (x, _) = layer.forward_tensor(&z);
/// let order: Vec<f64> = layer.perm.iter().map(|&i| i as f64).collect();
/// assert_eq!(x.to_vec(), order);
/// assert_eq!(layer.inverse_tensor(&x).0.to_vec(), z.to_vec());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Permutation {
    /// `perm[i]`: the input feature that becomes output feature i (forward).
    pub perm: Vec<usize>,
    /// The inverse permutation.
    pub inverse_perm: Vec<usize>,
}

impl Permutation {
    /// The layer a spec of kind `Permutation` describes (field `perm`).
    ///
    /// # Errors
    /// [`FlowError::BadSpec`] if `perm` is missing or not a permutation of
    /// 0..n (naming the entry that is out of range or repeats).
    pub fn from_spec(spec: &LayerSpec) -> Result<Self, FlowError> {
        Ok(Permutation::new(permutation(spec, "perm", None)?))
    }

    /// The permutation `perm` of 0..perm.len().
    ///
    /// # Panics
    /// If `perm` is not a permutation.
    pub fn new(perm: Vec<usize>) -> Self {
        let mut inverse_perm = vec![usize::MAX; perm.len()];
        for (i, &p) in perm.iter().enumerate() {
            assert!(
                p < perm.len() && inverse_perm[p] == usize::MAX,
                "Permutation::new: {perm:?} is not a permutation of 0..{}",
                perm.len()
            );
            inverse_perm[p] = i;
        }
        Permutation { perm, inverse_perm }
    }

    /// A uniformly random permutation of `dim` features (Fisher-Yates on `rng`).
    pub fn random<R: rand::Rng + ?Sized>(dim: usize, rng: &mut R) -> Self {
        use rand::seq::SliceRandom;
        let mut perm: Vec<usize> = (0..dim).collect();
        perm.shuffle(rng);
        Permutation::new(perm)
    }

    fn apply<'t, T: Element>(&self, v: &Var<'t, T>, order: &[usize]) -> (Var<'t, T>, Var<'t, T>) {
        assert!(
            v.shape().len() >= 2 && v.shape()[1] == order.len(),
            "Permutation: expected [batch, {}, …], got {:?}",
            order.len(),
            v.shape()
        );
        let zeros = v.constant(Tensor::zeros(&[v.shape()[0]]));
        (v.index_select(1, order), zeros)
    }
}

impl<T: Element> Flow<T> for Permutation {
    fn name(&self) -> String {
        "Permutation".into()
    }

    fn per_sample(&self) -> bool {
        true
    }

    fn forward<'t>(&self, z: &Var<'t, T>) -> (Var<'t, T>, Var<'t, T>) {
        // x[:, i] = z[:, perm[i]]
        self.apply(z, &self.perm)
    }
    fn inverse<'t>(&self, x: &Var<'t, T>) -> (Var<'t, T>, Var<'t, T>) {
        // z[:, j] = x[:, perm⁻¹[j]]
        self.apply(x, &self.inverse_perm)
    }
    /// `perm` (the inverse is recomputed on load).
    fn to_spec(&self) -> Option<LayerSpec> {
        Some(LayerSpec::new("Permutation").with("perm", &self.perm[..]))
    }
}
