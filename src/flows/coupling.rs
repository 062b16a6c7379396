//! Coupling layers on vectors: [`AdditiveCoupling`] (NICE), [`AffineCoupling`]
//! (RealNVP, Glow's sigmoid scale as an option), the [`Mask`] of conditioning
//! and transformed features, and the [`ScaleKind`] the image coupling shares.
//!
//! x₁ = z₁ passes through; a network of z₁ moves the rest element-wise. The
//! Jacobian is triangular (log-det: the sum of the log-scales, 0 for the
//! additive coupling); the inverse never inverts the network.
//!
//! Derivations: [`derivations::affine_coupling`](crate::derivations::affine_coupling),
//! [`derivations::nice`](crate::derivations::nice),
//! [`derivations::realnvp`](crate::derivations::realnvp),
//! [`derivations::glow`](crate::derivations::glow).

use super::bound::soft_clamp;
use super::context::{conditioner_input, context_dim_from_spec, with_context_dim};
use super::error::FlowError;
use super::flow::Flow;
use super::spec::{check_network, size, sizes, LayerSpec};
use crate::autodiff::{Param, Var};
use crate::nn::{Init, Mlp};
use crate::tensor::fused::AffineDirection;
use crate::tensor::{Element, Tensor};
use rand::Rng;

/// A binary partition of `dim` features into a *conditioning* half, which
/// passes through unchanged, and a *transformed* half.
///
/// # Derivation
/// [`derivations::affine_coupling`, "Masks and stacking"](crate::derivations::affine_coupling#masks-and-stacking):
/// why consecutive layers swap the halves; why a mask need not be contiguous.
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
    /// `flip`ped, the last ⌈D/2⌉ condition the first ⌊D/2⌋.
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
    pub(crate) fn assemble<'t, T: Element>(
        &self,
        part1: &Var<'t, T>,
        part2: &Var<'t, T>,
    ) -> Var<'t, T> {
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

/// How an affine coupling turns the network's raw output ŝ into the
/// log-scale s of x₂ = z₂ ⊙ exp(s) + t.
///
/// # Derivation
/// [`derivations::affine_coupling`, "The bounded log-scale and the zero initialisation"](crate::derivations::affine_coupling#the-bounded-log-scale-and-the-zero-initialisation)
/// for [`ScaleKind::Tanh`];
/// [`derivations::glow`, "The affine coupling with Glow's scale"](crate::derivations::glow#the-affine-coupling-with-glows-scale)
/// for [`ScaleKind::Sigmoid`] (docs/derivations/affine-coupling.md, glow.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ScaleKind {
    /// RealNVP's bounded log-scale s = c ⊙ tanh(ŝ), with a learned bound c
    /// per transformed feature (starting at 1): |s| ≤ |c|, and s = 0 at ŝ = 0,
    /// so a zero-initialised network starts the layer at the identity.
    #[default]
    Tanh,
    /// Glow's sigmoid scale: the data → latent map multiplies by
    /// σ(ŝ + 2) ∈ (0, 1), i.e. s = −log σ(ŝ + 2) = softplus(−ŝ − 2) ≥ 0. The
    /// training direction is a contraction, so one step cannot blow up; at
    /// ŝ = 0 the scale is σ(2) ≈ 0.88 (near, not at, the identity). No bound
    /// parameter is used.
    ///
    /// The sampling direction multiplies by e^s, unbounded as ŝ → −∞
    /// (ŝ = −100 gave e⁹⁸, infinite in f32), so s is capped smoothly by
    /// [`soft_clamp`](super::bound::soft_clamp()): s itself up to
    /// [`LOG_SCALE_KNEE`](super::bound::LOG_SCALE_KNEE) = 10, then bending
    /// (C¹) to at most [`LOG_SCALE_MAX`](super::bound::LOG_SCALE_MAX) = 12.
    /// The capped s is the one the map applies and the log-det sums, so the
    /// log-det is exact; below the knee every number is the uncapped one,
    /// bit for bit.
    Sigmoid,
}

impl ScaleKind {
    /// s from the raw output `raw` (and the bound `c`, broadcast against
    /// `raw`, for [`ScaleKind::Tanh`]).
    pub(crate) fn log_scale<'t, T: Element>(
        &self,
        raw: &Var<'t, T>,
        bound: &Var<'t, T>,
    ) -> Var<'t, T> {
        match self {
            // s = c ⊙ tanh(ŝ)
            ScaleKind::Tanh => raw.tanh().mul(bound),
            // s = −log σ(ŝ + 2) = softplus(−(ŝ + 2)) ≥ 0, capped at LOG_SCALE_MAX
            ScaleKind::Sigmoid => soft_clamp(&raw.add_scalar(T::from_f64(2.0)).neg().softplus()),
        }
    }

    /// The scale kind in field `scale_kind` of `spec` (`"tanh"` or
    /// `"sigmoid"`).
    ///
    /// # Errors
    /// [`FlowError::BadSpec`] if the field is missing or holds another value.
    pub fn from_spec(spec: &LayerSpec) -> Result<Self, FlowError> {
        match spec.choice("scale_kind", &["tanh", "sigmoid"])? {
            "tanh" => Ok(ScaleKind::Tanh),
            _ => Ok(ScaleKind::Sigmoid),
        }
    }

    /// The name messages and the command line use (`"tanh"`, `"sigmoid"`).
    pub fn name(&self) -> &'static str {
        match self {
            ScaleKind::Tanh => "tanh",
            ScaleKind::Sigmoid => "sigmoid",
        }
    }

    /// The kind called `name`, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        [ScaleKind::Tanh, ScaleKind::Sigmoid]
            .into_iter()
            .find(|k| k.name() == name)
    }
}

/// Affine coupling layer (RealNVP): the conditioning features pass through
/// unchanged and set the scale and shift of an element-wise affine map of
/// the others.
///
/// Forward, z → x, with z split by the mask into (z₁, z₂):
/// x₁ = z₁,  x₂ = z₂ ⊙ exp(s(z₁)) + t(z₁),  log|det ∂x/∂z| = Σᵢ s(z₁)ᵢ.
/// Inverse: z₂ = (x₂ − t(x₁)) ⊙ exp(−s(x₁)). By default the log-scale is
/// bounded, s = scale ⊙ tanh(ŝ) with a learned per-feature `scale` (starting
/// at 1), so one step cannot blow up; [`ScaleKind::Sigmoid`] selects Glow's
/// form instead (see [`AffineCoupling::with_scale_kind`]). The network
/// (ŝ, t) = NN(z₁) is an [`Mlp`] whose last layer starts at zero, so the layer
/// starts as the identity (tanh) or at Glow's fixed scale σ(2) (sigmoid).
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
/// [`derivations::affine_coupling`, "The Jacobian and its log-determinant"](crate::derivations::affine_coupling#the-jacobian-and-its-log-determinant)
/// (docs/derivations/affine-coupling.md): why the Jacobian is triangular
/// and the log-det is Σ s; "The bounded log-scale and the zero
/// initialisation" for the tanh bound.
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
    /// (ŝ, t) = net([z₁ | c]): `[batch, |cond| + context_dim] → [batch, 2·|trans|]`.
    pub net: Mlp<T>,
    /// The bound of the log-scale per transformed feature, `[|trans|]`
    /// (used, and listed in `params`, only with [`ScaleKind::Tanh`]).
    pub scale: Param<T>,
    /// How ŝ becomes the log-scale s.
    pub scale_kind: ScaleKind,
    /// The width of the context c the network reads beside z₁ (0: none).
    pub context_dim: usize,
}

impl<T: Element> AffineCoupling<T> {
    /// A coupling layer over `mask` with a two-hidden-layer ReLU network of
    /// width `hidden`, its last layer zero (the layer starts as the identity).
    pub fn new<R: Rng + ?Sized>(mask: Mask, hidden: usize, rng: &mut R) -> Self {
        AffineCoupling::conditional(mask, hidden, 0, rng)
    }

    /// A conditional coupling: as [`AffineCoupling::new`], with a network
    /// that reads `[z₁ | c]`, a context c of width `context_dim` beside the
    /// conditioning half, so x₂ = z₂ ⊙ exp(s(z₁, c)) + t(z₁, c). With
    /// `context_dim = 0` it is [`AffineCoupling::new`], draw for draw.
    ///
    /// # Derivation
    /// [`derivations::conditioning`, "Couplings"](crate::derivations::conditioning#couplings)
    /// (docs/derivations/conditioning.md).
    pub fn conditional<R: Rng + ?Sized>(
        mask: Mask,
        hidden: usize,
        context_dim: usize,
        rng: &mut R,
    ) -> Self {
        let (n1, n2) = (mask.cond.len(), mask.trans.len());
        let net = named_net(
            &[n1 + context_dim, hidden, hidden, 2 * n2],
            Init::Glorot,
            rng,
        );
        AffineCoupling {
            mask,
            net,
            scale: Param::new("scale", Tensor::ones(&[n2])),
            scale_kind: ScaleKind::Tanh,
            context_dim,
        }
    }

    /// The layer a spec of kind `AffineCoupling` describes (fields `dim`,
    /// `cond`, `trans`, `hidden`, `scale_kind`, and `context_dim` for a
    /// conditional layer), with any number of hidden
    /// layers and placeholder parameters for the loader to fill.
    ///
    /// # Errors
    /// [`FlowError::BadSpec`] naming the field: a mask that is not a
    /// partition of 0..dim, a width that is not a size, a network too large
    /// to load, a scale kind other than `tanh` or `sigmoid`.
    pub fn from_spec(spec: &LayerSpec) -> Result<Self, FlowError> {
        let mask = mask_from_spec(spec)?;
        let scale_kind = ScaleKind::from_spec(spec)?;
        let context_dim = context_dim_from_spec(spec)?;
        let n2 = mask.trans.len();
        // Placeholder values; any seed does.
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(0);
        let net = coupling_net(spec, &mask, context_dim, 2 * n2, &mut rng)?;
        Ok(AffineCoupling {
            mask,
            net,
            scale: Param::new("scale", Tensor::ones(&[n2])),
            scale_kind,
            context_dim,
        })
    }

    /// The same layer with the log-scale formed by `kind` (Glow's
    /// [`ScaleKind::Sigmoid`], say).
    ///
    /// # Source
    /// Kingma, Dhariwal, "Glow", arXiv:1807.03039, §3.3 and its code
    /// (`scale = sigmoid(h + 2)`).
    pub fn with_scale_kind(mut self, kind: ScaleKind) -> Self {
        self.scale_kind = kind;
        self
    }

    fn check(&self, v: &Var<'_, T>) {
        assert!(
            v.shape().len() == 2 && v.shape()[1] == self.mask.dim,
            "AffineCoupling: expected [batch, {}], got {:?}",
            self.mask.dim,
            v.shape()
        );
    }

    /// The moved half and the log-det of `direction` from the conditioning
    /// half `part1`, the moved half `part2` and the context: with
    /// s = scale ⊙ tanh(ŝ) one fused op ([`Var::affine_coupling_tanh`]),
    /// with Glow's s = softplus(−ŝ − 2) the ops one by one.
    fn update<'t>(
        &self,
        part1: &Var<'t, T>,
        part2: &Var<'t, T>,
        c: Option<&Var<'t, T>>,
        direction: AffineDirection,
    ) -> (Var<'t, T>, Var<'t, T>) {
        let n2 = self.mask.trans.len();
        let input = conditioner_input("AffineCoupling", part1, c, self.context_dim);
        let h = self.net.forward(&input);
        let bound = part1.tape().param(&self.scale);
        if self.scale_kind == ScaleKind::Tanh {
            return h.affine_coupling_tanh(&bound, part2, direction);
        }
        let s = self.scale_kind.log_scale(&h.narrow(1, 0, n2), &bound);
        let t = h.narrow(1, n2, n2);
        match direction {
            // x₂ = z₂ ⊙ exp(s) + t;  log|det ∂x/∂z| = Σᵢ sᵢ (triangular Jacobian)
            AffineDirection::Forward => (part2.mul(&s.exp()).add(&t), s.sum_axes(&[1])),
            // z₂ = (x₂ − t) ⊙ exp(−s);  log|det ∂z/∂x| = −Σᵢ sᵢ
            AffineDirection::Inverse => (part2.sub(&t).mul(&s.neg().exp()), s.sum_axes(&[1]).neg()),
        }
    }
}

impl<T: Element> Flow<T> for AffineCoupling<T> {
    fn name(&self) -> String {
        "AffineCoupling".into()
    }

    fn per_sample(&self) -> bool {
        true
    }

    fn context_dim(&self) -> usize {
        self.context_dim
    }

    fn forward<'t>(&self, z: &Var<'t, T>) -> (Var<'t, T>, Var<'t, T>) {
        self.forward_with_context(z, None)
    }

    fn inverse<'t>(&self, x: &Var<'t, T>) -> (Var<'t, T>, Var<'t, T>) {
        self.inverse_with_context(x, None)
    }

    fn forward_with_context<'t>(
        &self,
        z: &Var<'t, T>,
        c: Option<&Var<'t, T>>,
    ) -> (Var<'t, T>, Var<'t, T>) {
        self.check(z);
        let (z1, z2) = (
            z.index_select(1, &self.mask.cond),
            z.index_select(1, &self.mask.trans),
        );
        let (x2, log_det) = self.update(&z1, &z2, c, AffineDirection::Forward);
        (self.mask.assemble(&z1, &x2), log_det)
    }

    fn inverse_with_context<'t>(
        &self,
        x: &Var<'t, T>,
        c: Option<&Var<'t, T>>,
    ) -> (Var<'t, T>, Var<'t, T>) {
        self.check(x);
        let (x1, x2) = (
            x.index_select(1, &self.mask.cond),
            x.index_select(1, &self.mask.trans),
        );
        let (z2, log_det) = self.update(&x1, &x2, c, AffineDirection::Inverse);
        (self.mask.assemble(&x1, &z2), log_det)
    }

    fn to_spec(&self) -> Option<LayerSpec> {
        // The network's hidden widths: every layer's output but the last.
        let hidden = hidden_widths(&self.net);
        let spec = LayerSpec::new("AffineCoupling")
            .with("dim", self.mask.dim)
            .with("cond", &self.mask.cond[..])
            .with("trans", &self.mask.trans[..])
            .with("hidden", hidden)
            .with("scale_kind", self.scale_kind.name());
        Some(with_context_dim(spec, self.context_dim))
    }

    fn params(&self) -> Vec<&Param<T>> {
        let mut p = self.net.params();
        if self.scale_kind == ScaleKind::Tanh {
            p.push(&self.scale);
        }
        p
    }

    fn params_mut(&mut self) -> Vec<&mut Param<T>> {
        let mut p = self.net.params_mut();
        if self.scale_kind == ScaleKind::Tanh {
            p.push(&mut self.scale);
        }
        p
    }
}

/// Additive coupling layer (NICE): the conditioning features pass through
/// and shift the others by a network's output.
///
/// Forward, z → x, with z split by the mask into (z₁, z₂):
/// x₁ = z₁,  x₂ = z₂ + m(z₁);  inverse z₂ = x₂ − m(x₁). The Jacobian is unit
/// lower-triangular (after ordering the features as [z₁ | z₂]), so the layer
/// preserves volume: log|det| = 0 both ways. NICE adds a diagonal
/// [`Rescale`](super::rescale::Rescale) at the end so the model can still
/// change volume.
///
/// The network m is an [`Mlp`] with `depth` hidden ReLU layers of width
/// `hidden`, its last layer zero, so the layer starts as the identity.
///
/// # Shapes
/// `[batch, dim] → [batch, dim]`, log-det `[batch]` of zeros.
///
/// # Panics
/// If the input is not `[_, dim]`; the message names the layer and both shapes.
///
/// # Source
/// L. Dinh, D. Krueger, Y. Bengio, "NICE: Non-linear Independent Components
/// Estimation", ICLR 2015 workshop, arXiv:1410.8516, §3.2 (eq. 4: the additive
/// coupling), §5.1 (ReLU coupling networks).
///
/// # Derivation
/// [`derivations::nice`, "The additive coupling"](crate::derivations::nice#the-additive-coupling)
/// (docs/derivations/nice.md): the unit-triangular Jacobian, log-det 0.
///
/// # Examples
/// ```
/// use flowzoo::flows::{coupling::{AdditiveCoupling, Mask}, check::randomize_params, Flow};
/// use flowzoo::tensor::Tensor;
/// use rand::SeedableRng;
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let mut layer = AdditiveCoupling::<f64>::new(Mask::alternating(4, 0), 8, 2, &mut rng);
/// randomize_params(&mut layer, 0.5, &mut rng);
/// let z = Tensor::randn(&[3, 4], &mut rng);
/// let (x, log_det) = layer.forward_tensor(&z);
/// assert_eq!(log_det.to_vec(), vec![0.0; 3]); // volume-preserving
/// let (z_back, _) = layer.inverse_tensor(&x);
/// assert!(z.sub(&z_back).to_vec().iter().all(|d| d.abs() < 1e-12));
/// ```
pub struct AdditiveCoupling<T: Element> {
    /// Which features condition and which are shifted.
    pub mask: Mask,
    /// m = net([z₁ | c]): `[batch, |cond| + context_dim] → [batch, |trans|]`.
    pub net: Mlp<T>,
    /// The width of the context c the network reads beside z₁ (0: none).
    pub context_dim: usize,
}

impl<T: Element> AdditiveCoupling<T> {
    /// An additive coupling over `mask` whose network has `depth ≥ 1` hidden
    /// ReLU layers of width `hidden`, its last layer zero.
    ///
    /// # Panics
    /// If `depth` is 0.
    pub fn new<R: Rng + ?Sized>(mask: Mask, hidden: usize, depth: usize, rng: &mut R) -> Self {
        AdditiveCoupling::conditional(mask, hidden, depth, 0, rng)
    }

    /// A conditional additive coupling: as [`AdditiveCoupling::new`], with a
    /// network that reads `[z₁ | c]`, so x₂ = z₂ + m(z₁, c); the log-det
    /// stays 0. With `context_dim = 0` it is [`AdditiveCoupling::new`],
    /// draw for draw.
    ///
    /// # Panics
    /// If `depth` is 0.
    ///
    /// # Derivation
    /// [`derivations::conditioning`, "Couplings"](crate::derivations::conditioning#couplings)
    /// (docs/derivations/conditioning.md).
    pub fn conditional<R: Rng + ?Sized>(
        mask: Mask,
        hidden: usize,
        depth: usize,
        context_dim: usize,
        rng: &mut R,
    ) -> Self {
        assert!(
            depth >= 1,
            "AdditiveCoupling::new: depth must be at least 1"
        );
        let sizes: Vec<usize> = std::iter::once(mask.cond.len() + context_dim)
            .chain(std::iter::repeat_n(hidden, depth))
            .chain(std::iter::once(mask.trans.len()))
            .collect();
        let net = named_net(&sizes, Init::Glorot, rng);
        AdditiveCoupling {
            mask,
            net,
            context_dim,
        }
    }

    /// The layer a spec of kind `AdditiveCoupling` describes (fields `dim`,
    /// `cond`, `trans`, `hidden`, and `context_dim` for a conditional
    /// layer), with placeholder parameters.
    ///
    /// # Errors
    /// [`FlowError::BadSpec`] naming the field, as
    /// [`AffineCoupling::from_spec`].
    pub fn from_spec(spec: &LayerSpec) -> Result<Self, FlowError> {
        let mask = mask_from_spec(spec)?;
        let context_dim = context_dim_from_spec(spec)?;
        // Placeholder values; any seed does.
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(0);
        let net = coupling_net(spec, &mask, context_dim, mask.trans.len(), &mut rng)?;
        Ok(AdditiveCoupling {
            mask,
            net,
            context_dim,
        })
    }

    fn check(&self, v: &Var<'_, T>) {
        assert!(
            v.shape().len() == 2 && v.shape()[1] == self.mask.dim,
            "AdditiveCoupling: expected [batch, {}], got {:?}",
            self.mask.dim,
            v.shape()
        );
    }

    /// Applies x₂ = z₂ + sign·m(z₁, c), with sign +1 forward and −1 inverse.
    fn shift<'t>(
        &self,
        v: &Var<'t, T>,
        c: Option<&Var<'t, T>>,
        sign: f64,
    ) -> (Var<'t, T>, Var<'t, T>) {
        self.check(v);
        let (v1, v2) = (
            v.index_select(1, &self.mask.cond),
            v.index_select(1, &self.mask.trans),
        );
        let input = conditioner_input("AdditiveCoupling", &v1, c, self.context_dim);
        let m = self.net.forward(&input).mul_scalar(T::from_f64(sign));
        let zeros = v.constant(Tensor::zeros(&[v.shape()[0]]));
        (self.mask.assemble(&v1, &v2.add(&m)), zeros)
    }
}

/// The hidden widths of a coupling network: every layer's output but the last.
pub(crate) fn hidden_widths<T: Element>(net: &Mlp<T>) -> Vec<usize> {
    let layers = &net.layers;
    layers[..layers.len() - 1]
        .iter()
        .map(|l| l.weight.value.shape()[1])
        .collect()
}

impl<T: Element> Flow<T> for AdditiveCoupling<T> {
    fn name(&self) -> String {
        "AdditiveCoupling".into()
    }

    fn per_sample(&self) -> bool {
        true
    }

    fn context_dim(&self) -> usize {
        self.context_dim
    }

    fn forward<'t>(&self, z: &Var<'t, T>) -> (Var<'t, T>, Var<'t, T>) {
        self.forward_with_context(z, None)
    }

    fn inverse<'t>(&self, x: &Var<'t, T>) -> (Var<'t, T>, Var<'t, T>) {
        self.inverse_with_context(x, None)
    }

    fn forward_with_context<'t>(
        &self,
        z: &Var<'t, T>,
        c: Option<&Var<'t, T>>,
    ) -> (Var<'t, T>, Var<'t, T>) {
        // x₂ = z₂ + m(z₁, c), log|det| = 0
        self.shift(z, c, 1.0)
    }

    fn inverse_with_context<'t>(
        &self,
        x: &Var<'t, T>,
        c: Option<&Var<'t, T>>,
    ) -> (Var<'t, T>, Var<'t, T>) {
        // z₂ = x₂ − m(x₁, c), log|det| = 0
        self.shift(x, c, -1.0)
    }

    fn params(&self) -> Vec<&Param<T>> {
        self.net.params()
    }

    fn params_mut(&mut self) -> Vec<&mut Param<T>> {
        self.net.params_mut()
    }

    fn to_spec(&self) -> Option<LayerSpec> {
        let spec = LayerSpec::new("AdditiveCoupling")
            .with("dim", self.mask.dim)
            .with("cond", &self.mask.cond[..])
            .with("trans", &self.mask.trans[..])
            .with("hidden", hidden_widths(&self.net));
        Some(with_context_dim(spec, self.context_dim))
    }
}

/// A coupling network through `sizes`, hidden layers by `hidden`, the last
/// zero (the layer starts as the identity), parameters named `net.*`.
pub(crate) fn named_net<T: Element, R: Rng + ?Sized>(
    sizes: &[usize],
    hidden: Init,
    rng: &mut R,
) -> Mlp<T> {
    let mut net = Mlp::with_inits(sizes, hidden, Init::Zero, rng);
    for p in net.params_mut() {
        p.prefix("net");
    }
    net
}

/// The network of a coupling layer read from `spec` ([`named_net`] from
/// the conditioning features and `context_dim` context columns through the
/// `hidden` widths to `out`), placeholder values for the stored ones.
pub(crate) fn coupling_net<T: Element, R: Rng + ?Sized>(
    spec: &LayerSpec,
    mask: &Mask,
    context_dim: usize,
    out: usize,
    rng: &mut R,
) -> Result<Mlp<T>, FlowError> {
    let hidden = sizes(spec, "hidden")?;
    let widths: Vec<usize> = std::iter::once(mask.cond.len() + context_dim)
        .chain(hidden)
        .chain(std::iter::once(out))
        .collect();
    check_network(spec, "hidden", &widths, 1)?;
    Ok(named_net(&widths, Init::Glorot, rng))
}

/// Checks that `cond` and `trans` partition 0..dim, each non-empty and increasing.
pub(crate) fn mask_from_spec(spec: &LayerSpec) -> Result<Mask, FlowError> {
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
