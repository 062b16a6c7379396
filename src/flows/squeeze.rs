//! Reshaping layers of the multi-scale image flows: [`Squeeze`]
//! (space-to-depth), [`Reshape`] (between a flat vector and an image), and
//! [`Split`], the factor-out of RealNVP and Glow.
//!
//! **Multi-scale as one bijection.** RealNVP and Glow factor half of the
//! channels out at the end of each scale: those latents are scored under the
//! prior and only the other half goes deeper. flowzoo writes this as a layer
//! that *contains* the deeper levels: [`Split`] sends the kept channels
//! through its `inner` flow and passes the factored-out ones straight to the
//! latent side, then lays both out as one flat latent vector. The whole model
//! stays one bijection of the same dimension, scored under one prior over the
//! full latent, which is exactly the sum of the log-priors of every level's
//! factored-out part; `inverse` (encoding) returns every factored-out latent,
//! and `forward` (decoding) of that vector reconstructs the input exactly, with
//! nothing re-sampled. [`check_flow`](super::check::check_flow) proves it like
//! any other layer.
//!
//! Derivation: [`derivations::realnvp`](crate::derivations::realnvp)
//! (docs/derivations/realnvp.md, "Multi-scale").

use super::bound::soft_clamp;
use super::context::{context_dim_from_spec, context_shift, context_weight, with_context_dim};
use super::error::FlowError;
use super::flow::{BuildChild, Flow};
use super::spec::{self, LayerSpec};
use crate::autodiff::{Param, Var};
use crate::nn::conv::ConvResNet;
use crate::tensor::{Element, Tensor};
use rand::Rng;

/// The squeeze of RealNVP §3.6: each 2×2 block of pixels becomes 4 channels
/// (space-to-depth), trading resolution for channels,
/// `latent[b, 4c + 2i + j, y, x] = data[b, c, 2y + i, 2x + j]`.
///
/// `inverse` (data → latent) squeezes, `forward` unsqueezes. A permutation of
/// the elements: exact, log|det| = 0.
///
/// # Shapes
/// data side `[batch, C, H, W]` ↔ latent side `[batch, 4C, H/2, W/2]`;
/// log-det `[batch]` of zeros.
///
/// # Panics
/// `inverse` if H or W is odd; `forward` if the channels are not a multiple
/// of 4 (from the space-to-depth kernels, naming the shape).
///
/// # Source
/// Dinh, Sohl-Dickstein, Bengio, arXiv:1605.08803, §3.6 and figure 3;
/// Kingma & Dhariwal, arXiv:1807.03039, figure 2.
///
/// # Derivation
/// [`derivations::realnvp`, "Squeeze"](crate::derivations::realnvp#squeeze)
/// (docs/derivations/realnvp.md): the index formula, and why a map that
/// only moves elements has log-det 0.
///
/// # Examples
/// ```
/// use flowzoo::flows::{squeeze::Squeeze, Flow};
/// use flowzoo::tensor::Tensor;
/// let x = Tensor::<f64>::arange(16).reshape(&[1, 1, 4, 4]);
/// let (z, _) = Squeeze.inverse_tensor(&x);
/// assert_eq!(z.shape(), &[1, 4, 2, 2]);
/// assert_eq!(Squeeze.forward_tensor(&z).0.to_vec(), x.to_vec());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Squeeze;

impl Squeeze {
    /// The layer a spec of kind `Squeeze` describes (it has no fields).
    ///
    /// # Errors
    /// None today; the signature is every layer's.
    pub fn from_spec(_spec: &LayerSpec) -> Result<Self, FlowError> {
        Ok(Squeeze)
    }
}

impl<T: Element> Flow<T> for Squeeze {
    fn name(&self) -> String {
        "Squeeze".into()
    }

    fn per_sample(&self) -> bool {
        true
    }

    /// No fields: the factor is always 2.
    fn to_spec(&self) -> Option<LayerSpec> {
        Some(LayerSpec::new("Squeeze"))
    }

    fn forward<'t>(&self, z: &Var<'t, T>) -> (Var<'t, T>, Var<'t, T>) {
        let zeros = z.constant(Tensor::zeros(&[z.shape()[0]]));
        (z.depth_to_space(2), zeros)
    }

    fn inverse<'t>(&self, x: &Var<'t, T>) -> (Var<'t, T>, Var<'t, T>) {
        let zeros = x.constant(Tensor::zeros(&[x.shape()[0]]));
        (x.space_to_depth(2), zeros)
    }
}

/// A change of per-sample shape with the elements in the same row-major
/// order: `data_shape` on the data side, `latent_shape` on the latent side
/// (flat digits `[64]` ↔ images `[1, 8, 8]`, or an image ↔ the flat latent
/// the prior scores). Exact, log|det| = 0.
///
/// # Shapes
/// `[batch, data_shape…]` ↔ `[batch, latent_shape…]`; log-det `[batch]` of zeros.
///
/// # Panics
/// `new` if the two shapes hold different numbers of elements; `forward` and
/// `inverse` if the input's per-sample shape is not the expected one.
///
/// # Derivation
/// [`derivations::permutations`, "Reshape"](crate::derivations::permutations#reshape)
/// (docs/derivations/permutations.md): the identity on the elements of a
/// sample, log-det 0.
///
/// # Examples
/// ```
/// use flowzoo::flows::{squeeze::Reshape, Flow};
/// use flowzoo::tensor::Tensor;
/// let layer = Reshape::new(&[64], &[1, 8, 8]);
/// let (z, _) = Flow::<f64>::inverse_tensor(&layer, &Tensor::zeros(&[3, 64]));
/// assert_eq!(z.shape(), &[3, 1, 8, 8]);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reshape {
    /// The per-sample shape on the data side.
    pub data_shape: Vec<usize>,
    /// The per-sample shape on the latent side.
    pub latent_shape: Vec<usize>,
}

impl Reshape {
    /// The reshape between `data_shape` and `latent_shape` (per sample).
    ///
    /// # Panics
    /// If they hold different numbers of elements.
    pub fn new(data_shape: &[usize], latent_shape: &[usize]) -> Self {
        assert_eq!(
            data_shape.iter().product::<usize>(),
            latent_shape.iter().product::<usize>(),
            "Reshape::new: {data_shape:?} and {latent_shape:?} hold different numbers of elements"
        );
        Reshape {
            data_shape: data_shape.to_vec(),
            latent_shape: latent_shape.to_vec(),
        }
    }

    /// The layer a spec of kind `Reshape` describes.
    ///
    /// # Errors
    /// [`FlowError::BadSpec`] naming the field: `data_shape` or
    /// `latent_shape` not a list of sizes a tensor can hold, or the two
    /// holding different numbers of elements.
    pub fn from_spec(spec: &LayerSpec) -> Result<Self, FlowError> {
        let data_shape = spec::sample_shape(spec, "data_shape")?;
        let latent_shape = spec::sample_shape(spec, "latent_shape")?;
        let (n, m) = (
            data_shape.iter().product::<usize>(),
            latent_shape.iter().product::<usize>(),
        );
        if n != m {
            return Err(spec.error(
                "latent_shape",
                format!("{latent_shape:?} holds {m} elements, {data_shape:?} {n}"),
            ));
        }
        Ok(Reshape::new(&data_shape, &latent_shape))
    }

    fn apply<'t, T: Element>(
        &self,
        v: &Var<'t, T>,
        from: &[usize],
        to: &[usize],
    ) -> (Var<'t, T>, Var<'t, T>) {
        assert!(
            v.shape().len() == from.len() + 1 && v.shape()[1..] == *from,
            "Reshape: expected [batch, {from:?}], got {:?}",
            v.shape()
        );
        let batch = v.shape()[0];
        let shape: Vec<usize> = std::iter::once(batch).chain(to.iter().copied()).collect();
        (v.reshape(&shape), v.constant(Tensor::zeros(&[batch])))
    }
}

impl<T: Element> Flow<T> for Reshape {
    fn name(&self) -> String {
        format!("Reshape({:?} <-> {:?})", self.data_shape, self.latent_shape)
    }

    fn per_sample(&self) -> bool {
        true
    }

    /// `data_shape` and `latent_shape`.
    fn to_spec(&self) -> Option<LayerSpec> {
        Some(
            LayerSpec::new("Reshape")
                .with("data_shape", &self.data_shape[..])
                .with("latent_shape", &self.latent_shape[..]),
        )
    }

    fn forward<'t>(&self, z: &Var<'t, T>) -> (Var<'t, T>, Var<'t, T>) {
        self.apply(z, &self.latent_shape, &self.data_shape)
    }

    fn inverse<'t>(&self, x: &Var<'t, T>) -> (Var<'t, T>, Var<'t, T>) {
        self.apply(x, &self.data_shape, &self.latent_shape)
    }
}

/// The multi-scale factor-out of RealNVP and Glow, holding the deeper levels.
///
/// Data → latent (`inverse`), on x of shape `[batch, C, H, W]`: the first
/// `kept` channels x_a go through `inner` (the rest of the model, ending in a
/// flat latent `[batch, kept·H·W]`); the other channels x_b are factored out.
/// Without a learned prior z_b = x_b, scored under the standard prior with
/// the rest of the latent. With Glow's learned prior, a zero-initialised
/// [`ConvResNet`] computes (μ, log σ) = NN(x_a), the factored-out part is
/// x_b ~ N(μ, σ²), and the layer whitens it, z_b = (x_b − μ) ⊙ exp(−log σ),
/// log-det −Σ log σ, so log N(x_b; μ, σ²) = log N(z_b; 0, I) − Σ log σ is
/// counted exactly. The output is the flat latent [inner latent | z_b], of
/// `C·H·W` entries per sample.
///
/// Latent → data (`forward`) undoes it: x_a = inner.forward(first part),
/// x_b = z_b (or z_b ⊙ exp(log σ(x_a)) + μ(x_a)), concatenated along the
/// channels. log-dets: `inner`'s plus the prior's whitening term.
///
/// **Context.** A conditional model's context c reaches the deeper levels:
/// `forward_with_context` and `inverse_with_context` hand c to `inner`. A
/// learned prior built by [`Split::conditional`] depends on c as well,
/// (μ, log σ) = NN(x_a, c), c entering as the image couplings' does (a
/// projection c·W_c added to the first convolution's output); without it
/// the prior reads x_a alone.
///
/// # Shapes
/// data side `[batch, C, H, W]` ↔ latent side `[batch, C·H·W]`; log-det `[batch]`.
///
/// # Units
/// Log-dets in nats.
///
/// # Panics
/// If the data-side input is not `[batch, C, H, W]` or the latent-side one
/// not `[batch, C·H·W]`, naming the layer and both shapes.
///
/// # Source
/// Dinh, Sohl-Dickstein, Bengio, arXiv:1605.08803, §3.6 (factoring out
/// variables, eq. 13-14); Kingma & Dhariwal, arXiv:1807.03039, figure 2 and
/// its code (`split2d` with a learned prior).
///
/// # Derivation
/// [`derivations::realnvp`, "Multi-scale: factoring out"](crate::derivations::realnvp#multi-scale-factoring-out)
/// (docs/derivations/realnvp.md): the block-diagonal Jacobian and the
/// factorised prior; the learned prior in
/// [`derivations::glow`, "Multi-scale and the learned prior"](crate::derivations::glow#multi-scale-and-the-learned-prior).
pub struct Split<T: Element> {
    /// C, the channels of the data-side input.
    pub channels: usize,
    /// H.
    pub height: usize,
    /// W.
    pub width: usize,
    /// The channels that go deeper (the first `kept`).
    pub kept: usize,
    /// The deeper levels: `[batch, kept, H, W]` (data side) ↔ `[batch, kept·H·W]`.
    pub inner: Box<dyn Flow<T>>,
    /// Glow's learned conditional prior, (μ, log σ) = prior(x_a), or `None`
    /// for the standard prior.
    pub prior: Option<ConvResNet<T>>,
    /// W_c `[context_dim, prior hidden]`: the context's projection into the
    /// learned prior (`None`: the prior reads no context).
    pub prior_context: Option<Param<T>>,
}

impl<T: Element> Split<T> {
    /// A factor-out of `[channels, height, width]` images keeping the first
    /// `kept` channels for `inner`. With `learned_prior = Some(hidden)` the
    /// factored-out channels get Glow's learned conditional prior, a
    /// [`ConvResNet`] of `hidden` channels (no residual blocks) from the kept
    /// channels, zero-initialised so it starts at the standard prior.
    ///
    /// # Panics
    /// If `kept` is not in 1..channels.
    pub fn new<R: Rng + ?Sized>(
        shape: [usize; 3],
        kept: usize,
        inner: Box<dyn Flow<T>>,
        learned_prior: Option<usize>,
        rng: &mut R,
    ) -> Self {
        Split::conditional(shape, kept, inner, learned_prior, 0, rng)
    }

    /// As [`Split::new`], with a learned prior that also reads a context of
    /// width `context_dim`: (μ, log σ) = NN(x_a, c), W_c `[context_dim,
    /// hidden]` (Glorot, drawn after the prior network) adding c·W_c to
    /// its first convolution's output. With `context_dim = 0`, or without a
    /// learned prior, it is [`Split::new`], draw for draw. `inner` reads
    /// its own context either way.
    ///
    /// # Panics
    /// If `kept` is not in 1..channels.
    ///
    /// # Derivation
    /// [`derivations::conditioning`, "Image couplings"](crate::derivations::conditioning#image-couplings)
    /// (docs/derivations/conditioning.md).
    pub fn conditional<R: Rng + ?Sized>(
        [channels, height, width]: [usize; 3],
        kept: usize,
        mut inner: Box<dyn Flow<T>>,
        learned_prior: Option<usize>,
        context_dim: usize,
        rng: &mut R,
    ) -> Self {
        assert!(
            (1..channels).contains(&kept),
            "Split::new: kept {kept} must be in 1..{channels}"
        );
        for p in inner.params_mut() {
            p.prefix("inner");
        }
        let prior = learned_prior.map(|hidden| {
            let mut net = ConvResNet::new(kept, hidden, 2 * (channels - kept), 0, rng);
            for p in net.params_mut() {
                p.prefix("prior");
            }
            net
        });
        let prior_context = learned_prior.and_then(|hidden| {
            let mut weight = context_weight(context_dim, hidden, rng)?;
            weight.prefix("prior");
            Some(weight)
        });
        Split {
            channels,
            height,
            width,
            kept,
            inner,
            prior,
            prior_context,
        }
    }

    /// The layer a spec of kind `Split` describes: its one child is `inner`
    /// (built with `build`, which the registry gives), and with `learned_prior` the
    /// field `prior_hidden` gives the prior network's width. Parameters are
    /// placeholders for the stored ones.
    ///
    /// # Errors
    /// [`FlowError::BadSpec`] naming the field: a size out of range,
    /// C·H·W or the prior network over [`spec::MAX_LAYER_ELEMENTS`], `kept`
    /// not in 1..C, not exactly one child, `context_dim` not a size or
    /// given without a learned prior; the child's errors as `build` gives
    /// them, with index 0 in their path.
    pub fn from_spec(spec: &LayerSpec, build: BuildChild<T>) -> Result<Self, FlowError> {
        let channels = spec::size(spec, "channels")?;
        let height = spec::size(spec, "height")?;
        let width = spec::size(spec, "width")?;
        let elements = channels
            .checked_mul(height)
            .and_then(|n| n.checked_mul(width));
        // A bound on the layer's shape, not an allocation: not charged.
        spec::check_bound(spec, "width", elements)?;
        let kept = spec.usize("kept")?;
        if !(1..channels).contains(&kept) {
            return Err(spec.error("kept", format!("{kept} is not in 1..{channels}")));
        }
        let context_dim = context_dim_from_spec(spec)?;
        let learned_prior = if spec.bool("learned_prior")? {
            let hidden = spec::size(spec, "prior_hidden")?;
            let out = 2 * (channels - kept);
            let weights = ConvResNet::<T>::elements(kept, hidden, out, 0)
                .and_then(|n| n.checked_add(context_dim.checked_mul(hidden)?));
            spec::check_elements(spec, "prior_hidden", weights)?;
            Some(hidden)
        } else {
            if context_dim > 0 {
                return Err(spec.error("context_dim", "only a learned prior reads a context"));
            }
            None
        };
        let [child] = &spec.children[..] else {
            return Err(spec.error(
                "children",
                format!("expected 1 (the inner flow), found {}", spec.children.len()),
            ));
        };
        let inner = build(child).map_err(|e| e.in_layer(0))?;
        // Placeholder values; any seed does.
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(0);
        Ok(Split::conditional(
            [channels, height, width],
            kept,
            inner,
            learned_prior,
            context_dim,
            &mut rng,
        ))
    }

    /// The latent entries per sample of the deeper levels, kept·H·W.
    pub fn inner_dim(&self) -> usize {
        self.kept * self.height * self.width
    }

    /// The latent entries per sample factored out here, (C − kept)·H·W.
    pub fn factored_dim(&self) -> usize {
        (self.channels - self.kept) * self.height * self.width
    }

    /// (μ, log σ) of the learned prior at the kept channels `x_a` and the
    /// context `c`, log σ bounded by [`soft_clamp`] (itself within ±10,
    /// never beyond ±12), so e^±log σ stays finite whatever the network
    /// outputs.
    fn prior_parameters<'t>(
        &self,
        net: &ConvResNet<T>,
        x_a: &Var<'t, T>,
        c: Option<&Var<'t, T>>,
    ) -> (Var<'t, T>, Var<'t, T>) {
        let batch = x_a.shape()[0];
        let shift = context_shift("Split", self.prior_context.as_ref(), batch, c);
        let h = net.forward_shifted(x_a, shift.as_ref());
        let n = self.channels - self.kept;
        (h.narrow(1, 0, n), soft_clamp(&h.narrow(1, n, n)))
    }
}

impl<T: Element> Flow<T> for Split<T> {
    fn name(&self) -> String {
        format!(
            "Split(keep {} of {} channels{})",
            self.kept,
            self.channels,
            if self.prior.is_some() {
                ", learned prior"
            } else {
                ""
            }
        )
    }

    fn per_sample(&self) -> bool {
        self.inner.per_sample()
    }

    fn validate(&self) -> Result<(), FlowError> {
        self.inner.validate().map_err(|e| e.in_layer(0))
    }

    /// The width the deeper levels and the learned prior read (the larger).
    fn context_dim(&self) -> usize {
        let own = self.prior_context.as_ref().map_or(0, |w| w.value.dim(0));
        own.max(self.inner.context_dim())
    }

    fn forward<'t>(&self, z: &Var<'t, T>) -> (Var<'t, T>, Var<'t, T>) {
        self.forward_with_context(z, None)
    }

    fn inverse<'t>(&self, x: &Var<'t, T>) -> (Var<'t, T>, Var<'t, T>) {
        self.inverse_with_context(x, None)
    }

    /// `inner` and the learned prior get the same context c.
    fn forward_with_context<'t>(
        &self,
        z: &Var<'t, T>,
        c: Option<&Var<'t, T>>,
    ) -> (Var<'t, T>, Var<'t, T>) {
        let (n_a, n_b) = (self.inner_dim(), self.factored_dim());
        assert!(
            z.shape().len() == 2 && z.shape()[1] == n_a + n_b,
            "Split: expected latent [batch, {}], got {:?}",
            n_a + n_b,
            z.shape()
        );
        let batch = z.shape()[0];
        let (x_a, log_det) = self.inner.forward_with_context(&z.narrow(1, 0, n_a), c);
        let z_b = z.narrow(1, n_a, n_b).reshape(&[
            batch,
            self.channels - self.kept,
            self.height,
            self.width,
        ]);
        let (x_b, log_det) = match &self.prior {
            None => (z_b, log_det),
            Some(net) => {
                let (mu, log_sigma) = self.prior_parameters(net, &x_a, c);
                // x_b = z_b ⊙ σ + μ, log|det| = Σ log σ
                let x_b = z_b.mul(&log_sigma.exp()).add(&mu);
                (x_b, log_det.add(&log_sigma.sum_axes(&[1, 2, 3])))
            }
        };
        (Var::concat(&[&x_a, &x_b], 1), log_det)
    }

    fn inverse_with_context<'t>(
        &self,
        x: &Var<'t, T>,
        c: Option<&Var<'t, T>>,
    ) -> (Var<'t, T>, Var<'t, T>) {
        let expected = [self.channels, self.height, self.width];
        assert!(
            x.shape().len() == 4 && x.shape()[1..] == expected,
            "Split: expected [batch, {expected:?}], got {:?}",
            x.shape()
        );
        let batch = x.shape()[0];
        let x_a = x.narrow(1, 0, self.kept);
        let x_b = x.narrow(1, self.kept, self.channels - self.kept);
        let (z_b, prior_log_det) = match &self.prior {
            None => (x_b, None),
            Some(net) => {
                let (mu, log_sigma) = self.prior_parameters(net, &x_a, c);
                // z_b = (x_b − μ) ⊙ exp(−log σ), log|det| = −Σ log σ
                let z_b = x_b.sub(&mu).mul(&log_sigma.neg().exp());
                (z_b, Some(log_sigma.sum_axes(&[1, 2, 3]).neg()))
            }
        };
        let (z_a, log_det) = self.inner.inverse_with_context(&x_a, c);
        let log_det = match prior_log_det {
            Some(ld) => log_det.add(&ld),
            None => log_det,
        };
        let z_b = z_b.reshape(&[batch, self.factored_dim()]);
        (Var::concat(&[&z_a, &z_b], 1), log_det)
    }

    /// `channels`, `height`, `width`, `kept`, `learned_prior` (and
    /// `prior_hidden` when it is set, and `context_dim` when the prior reads
    /// a context); the child is `inner`'s spec.
    fn to_spec(&self) -> Option<LayerSpec> {
        let spec = LayerSpec::new("Split")
            .with("channels", self.channels)
            .with("height", self.height)
            .with("width", self.width)
            .with("kept", self.kept)
            .with("learned_prior", self.prior.is_some());
        let spec = match &self.prior {
            Some(net) => spec.with("prior_hidden", net.input.weight.value.dim(0)),
            None => spec,
        };
        let own_context = self.prior_context.as_ref().map_or(0, |w| w.value.dim(0));
        let spec = with_context_dim(spec, own_context);
        Some(spec.child(self.inner.to_spec()?))
    }

    /// `inner`'s buffers, prefixed `inner.` as its parameters are.
    fn buffers(&self) -> Vec<(String, Tensor<T>)> {
        self.inner
            .buffers()
            .into_iter()
            .map(|(name, t)| (format!("inner.{name}"), t))
            .collect()
    }

    fn set_buffers(&mut self, buffers: Vec<(String, Tensor<T>)>) -> Result<(), FlowError> {
        let inner = buffers
            .into_iter()
            .map(|(name, t)| match name.strip_prefix("inner.") {
                Some(rest) => Ok((rest.to_string(), t)),
                None => Err(FlowError::BufferMismatch {
                    at: Default::default(),
                    layer: self.name(),
                    what: format!("unexpected buffer `{name}`"),
                }),
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.inner.set_buffers(inner).map_err(|e| e.in_layer(0))
    }

    fn params(&self) -> Vec<&Param<T>> {
        let mut p = self.inner.params();
        if let Some(net) = &self.prior {
            p.extend(net.params());
        }
        p.extend(&self.prior_context);
        p
    }

    fn params_mut(&mut self) -> Vec<&mut Param<T>> {
        let mut p = self.inner.params_mut();
        if let Some(net) = &mut self.prior {
            p.extend(net.params_mut());
        }
        p.extend(&mut self.prior_context);
        p
    }

    fn initialize(&mut self, x: &Tensor<T>) -> Tensor<T> {
        self.initialize_with_context(x, None)
    }

    fn initialize_with_context(&mut self, x: &Tensor<T>, c: Option<&Tensor<T>>) -> Tensor<T> {
        // The deeper levels initialise on the kept channels; the prior
        // network has no data-dependent state.
        self.inner
            .initialize_with_context(&x.narrow(1, 0, self.kept), c);
        self.inverse_tensor_with_context(x, c).0
    }
}
