//! Coupling layers: [`AffineCoupling`] (RealNVP) and the masks that choose
//! which features condition and which are transformed.

use super::spec::LayerSpec;
use super::Flow;
use crate::autodiff::{Param, Var};
use crate::nn::{Init, Mlp};
use crate::tensor::{Element, Tensor};
use rand::Rng;

/// A binary partition of `dim` features into a *conditioning* half, which
/// passes through unchanged, and a *transformed* half.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mask {
    /// The number of features D.
    pub dim: usize,
    /// Indices that pass through (z₁), increasing.
    pub cond: Vec<usize>,
    /// Indices that are transformed (z₂), increasing.
    pub trans: Vec<usize>,
}

impl Mask {
    /// Contiguous halves: the first ⌊D/2⌋ features condition the rest, or,
    /// `flip`ped, the last ⌈D/2⌉ condition the first ⌊D/2⌋. For D = 2 that is
    /// `[cond, trans]` and then `[trans, cond]`.
    ///
    /// # Panics
    /// If `dim < 2`.
    pub fn half(dim: usize, flip: bool) -> Mask {
        assert!(dim >= 2, "Mask::half: need at least 2 features, got {dim}");
        let split = dim / 2;
        let (first, second): (Vec<usize>, Vec<usize>) =
            ((0..split).collect(), (split..dim).collect());
        if flip {
            Mask {
                dim,
                cond: second,
                trans: first,
            }
        } else {
            Mask {
                dim,
                cond: first,
                trans: second,
            }
        }
    }

    /// Alternating features: those with index parity `parity` (0 or 1) condition.
    ///
    /// # Panics
    /// If `dim < 2`.
    pub fn alternating(dim: usize, parity: usize) -> Mask {
        assert!(
            dim >= 2,
            "Mask::alternating: need at least 2 features, got {dim}"
        );
        let (cond, trans) = (0..dim).partition(|i| i % 2 == parity % 2);
        Mask { dim, cond, trans }
    }

    /// Puts `[z₁ | z₂]` (conditioning columns first) back in feature order.
    fn assemble<'t, T: Element>(&self, part1: &Var<'t, T>, part2: &Var<'t, T>) -> Var<'t, T> {
        let cond_first = self.cond.last() < self.trans.first();
        let trans_first = self.trans.last() < self.cond.first();
        if cond_first && self.cond.first() == Some(&0) {
            Var::concat(&[part1, part2], 1)
        } else if trans_first && self.trans.first() == Some(&0) {
            Var::concat(&[part2, part1], 1)
        } else {
            // Column j of [z₁ | z₂] belongs at feature order[j].
            let order: Vec<usize> = self.cond.iter().chain(&self.trans).copied().collect();
            let mut position = vec![0; self.dim];
            for (j, &feature) in order.iter().enumerate() {
                position[feature] = j;
            }
            Var::concat(&[part1, part2], 1).index_select(1, &position)
        }
    }
}

/// Affine coupling layer (RealNVP): the conditioning features pass through
/// unchanged and set the scale and shift of an element-wise affine map of
/// the others.
///
/// Forward, z → x, with z split by the mask into (z₁, z₂):
/// x₁ = z₁,  x₂ = z₂ ⊙ exp(s(z₁)) + t(z₁),  log|det ∂x/∂z| = Σᵢ s(z₁)ᵢ.
/// Inverse: z₂ = (x₂ − t(x₁)) ⊙ exp(−s(x₁)). The log-scale is bounded,
/// s = scale ⊙ tanh(ŝ) with a learned per-feature `scale` (starting at 1), so
/// one step cannot blow up; the network (ŝ, t) = NN(z₁) is an [`Mlp`] whose
/// last layer starts at zero, so the layer starts as the identity.
///
/// # Shapes
/// `forward` and `inverse` take `[batch, dim]` and return `[batch, dim]` and a
/// per-sample log-det of shape `[batch]`.
///
/// # Units
/// Log-dets in nats.
///
/// # Panics
/// If the input is not `[_, dim]`; the message names the layer and both shapes.
///
/// # Source
/// L. Dinh, J. Sohl-Dickstein, S. Bengio, "Density estimation using Real NVP",
/// ICLR 2017, arXiv:1605.08803 (§3.2-3.3).
///
/// # Derivation
/// [`derivations::affine_coupling`](crate::derivations::affine_coupling)
/// (docs/derivations/affine-coupling.md).
///
/// # Examples
/// ```
/// use flowzoo::flows::{coupling::{AffineCoupling, Mask}, Flow};
/// use flowzoo::tensor::Tensor;
/// use rand::SeedableRng;
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let layer = AffineCoupling::<f64>::new(Mask::half(4, false), 16, &mut rng);
/// let z = Tensor::randn(&[3, 4], &mut rng);
/// let (x, log_det) = layer.forward_tensor(&z);
/// let (z_back, _) = layer.inverse_tensor(&x);
/// assert_eq!(log_det.shape(), &[3]);
/// assert!(z.sub(&z_back).to_vec().iter().all(|d| d.abs() < 1e-12));
/// ```
pub struct AffineCoupling<T: Element> {
    /// Which features condition and which are transformed.
    pub mask: Mask,
    /// (ŝ, t) = net(z₁): `[batch, |cond|] → [batch, 2·|trans|]`.
    pub net: Mlp<T>,
    /// The bound of the log-scale per transformed feature, `[|trans|]`.
    pub scale: Param<T>,
}

impl<T: Element> AffineCoupling<T> {
    /// A coupling layer over `mask` with a two-hidden-layer ReLU network of
    /// width `hidden`, its last layer zero (the layer starts as the identity).
    pub fn new<R: Rng + ?Sized>(mask: Mask, hidden: usize, rng: &mut R) -> Self {
        let (n1, n2) = (mask.cond.len(), mask.trans.len());
        let mut net = Mlp::new(&[n1, hidden, hidden, 2 * n2], Init::Zero, rng);
        for p in net.params_mut() {
            p.prefix("net");
        }
        AffineCoupling {
            mask,
            net,
            scale: Param::new("scale", Tensor::ones(&[n2])),
        }
    }

    fn check(&self, v: &Var<'_, T>) {
        assert!(
            v.shape().len() == 2 && v.shape()[1] == self.mask.dim,
            "AffineCoupling: expected [batch, {}], got {:?}",
            self.mask.dim,
            v.shape()
        );
    }

    /// (s, t) from the conditioning half: s = scale ⊙ tanh(ŝ).
    fn scale_and_shift<'t>(&self, part1: &Var<'t, T>) -> (Var<'t, T>, Var<'t, T>) {
        let n2 = self.mask.trans.len();
        let h = self.net.forward(part1);
        let s = h
            .narrow(1, 0, n2)
            .tanh()
            .mul(&part1.tape().param(&self.scale));
        let t = h.narrow(1, n2, n2);
        (s, t)
    }
}

impl<T: Element> Flow<T> for AffineCoupling<T> {
    fn name(&self) -> String {
        "AffineCoupling".into()
    }

    fn forward<'t>(&self, z: &Var<'t, T>) -> (Var<'t, T>, Var<'t, T>) {
        self.check(z);
        let (z1, z2) = (
            z.index_select(1, &self.mask.cond),
            z.index_select(1, &self.mask.trans),
        );
        let (s, t) = self.scale_and_shift(&z1);
        // x₂ = z₂ ⊙ exp(s) + t
        let x2 = z2.mul(&s.exp()).add(&t);
        // log|det ∂x/∂z| = Σᵢ sᵢ (triangular Jacobian, diagonal exp(s))
        (self.mask.assemble(&z1, &x2), s.sum_axes(&[1]))
    }

    fn inverse<'t>(&self, x: &Var<'t, T>) -> (Var<'t, T>, Var<'t, T>) {
        self.check(x);
        let (x1, x2) = (
            x.index_select(1, &self.mask.cond),
            x.index_select(1, &self.mask.trans),
        );
        let (s, t) = self.scale_and_shift(&x1);
        // z₂ = (x₂ − t) ⊙ exp(−s)
        let z2 = x2.sub(&t).mul(&s.neg().exp());
        // log|det ∂z/∂x| = −Σᵢ sᵢ
        (self.mask.assemble(&x1, &z2), s.sum_axes(&[1]).neg())
    }

    fn spec(&self) -> Option<LayerSpec> {
        // The network's hidden widths: every layer's output but the last.
        let layers = &self.net.layers;
        let hidden: Vec<usize> = layers[..layers.len() - 1]
            .iter()
            .map(|l| l.weight.value.shape()[1])
            .collect();
        Some(
            LayerSpec::new("AffineCoupling")
                .with("dim", self.mask.dim)
                .with("cond", &self.mask.cond[..])
                .with("trans", &self.mask.trans[..])
                .with("hidden", hidden),
        )
    }

    fn params(&self) -> Vec<&Param<T>> {
        let mut p = self.net.params();
        p.push(&self.scale);
        p
    }

    fn params_mut(&mut self) -> Vec<&mut Param<T>> {
        let mut p = self.net.params_mut();
        p.push(&mut self.scale);
        p
    }
}
