//! Small convolutional networks for the image couplings: [`Conv2d`] and
//! [`ConvResNet`], the conditioner `(ŝ, t) = NN(x₁)` of RealNVP's and Glow's
//! image coupling layers.
//!
//! Both work on NCHW batches `[batch, channels, height, width]`, stride 1,
//! with "same" zero padding (`K/2` for an odd kernel `K`), so every layer keeps
//! the image size, as a coupling needs (its scales and shifts are per pixel).

use super::init::fan_in_uniform;
use super::linear::Init;
use crate::autodiff::{Param, Var};
use crate::tensor::{Element, Tensor};
use rand::Rng;

/// A 2-D convolution layer, stride 1, "same" zero padding:
/// `y[b, o] = bias[o] + Σ_c weight[o, c] ⋆ x[b, c]`.
///
/// # Shapes
/// `x: [batch, in_channels, height, width]` →
/// `[batch, out_channels, height, width]`; `weight: [out_channels,
/// in_channels, K, K]` with `K` odd, `bias: [out_channels]`.
///
/// # Panics
/// `new` panics if `kernel` is even; `forward` if `x` does not have
/// `in_channels` channels (from the conv2d kernel, naming both shapes).
///
/// # Examples
/// ```
/// use flowzoo::nn::{conv::Conv2d, Init};
/// use flowzoo::autodiff::Tape;
/// use flowzoo::tensor::Tensor;
/// use rand::SeedableRng;
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let conv = Conv2d::<f64>::new(2, 5, 3, Init::Glorot, &mut rng);
/// let tape = Tape::no_grad();
/// let y = conv.forward(&tape.constant(Tensor::ones(&[4, 2, 6, 6])));
/// assert_eq!(y.shape(), &[4, 5, 6, 6]);
/// ```
#[derive(Clone, Debug)]
pub struct Conv2d<T: Element> {
    /// `[out_channels, in_channels, K, K]`.
    pub weight: Param<T>,
    /// `[out_channels]`.
    pub bias: Param<T>,
}

impl<T: Element> Conv2d<T> {
    /// A `kernel × kernel` convolution from `in_channels` to `out_channels`:
    /// [`Init::Glorot`] draws the weight uniform on ±√(6 / (fan_in + fan_out))
    /// with fan_in = in_channels·K², fan_out = out_channels·K² (the Glorot
    /// bound of a layer seeing K² pixels per channel), the bias 0;
    /// [`Init::Zero`] starts weight and bias at 0, so the layer outputs 0;
    /// [`Init::FanIn`] draws both uniform on ±1/√fan_in.
    ///
    /// # Panics
    /// If `kernel` is even (no symmetric "same" padding exists).
    pub fn new<R: Rng + ?Sized>(
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        init: Init,
        rng: &mut R,
    ) -> Self {
        assert!(
            kernel % 2 == 1,
            "Conv2d::new: kernel {kernel} must be odd for same padding"
        );
        let shape = [out_channels, in_channels, kernel, kernel];
        let fan_in = in_channels * kernel * kernel;
        let (weight, bias) = match init {
            Init::Glorot => {
                let fans = (in_channels + out_channels) * kernel * kernel;
                let a = (6.0 / fans.max(1) as f64).sqrt();
                let weight = Tensor::rand_uniform(&shape, -a, a, rng);
                (weight, Tensor::zeros(&[out_channels]))
            }
            Init::Zero => (Tensor::zeros(&shape), Tensor::zeros(&[out_channels])),
            Init::FanIn => (
                fan_in_uniform(&shape, fan_in, rng),
                fan_in_uniform(&[out_channels], fan_in, rng),
            ),
        };
        Conv2d {
            weight: Param::new("weight", weight),
            bias: Param::new("bias", bias),
        }
    }

    /// The kernel size K.
    pub fn kernel(&self) -> usize {
        self.weight.value.dim(2)
    }

    /// `weight ⋆ x + bias` with padding K/2.
    pub fn forward<'t>(&self, x: &Var<'t, T>) -> Var<'t, T> {
        let tape = x.tape();
        x.conv2d(
            &tape.param(&self.weight),
            Some(&tape.param(&self.bias)),
            self.kernel() / 2,
        )
    }

    /// The parameters, weight first.
    pub fn params(&self) -> Vec<&Param<T>> {
        vec![&self.weight, &self.bias]
    }

    /// The parameters, mutably.
    pub fn params_mut(&mut self) -> Vec<&mut Param<T>> {
        vec![&mut self.weight, &mut self.bias]
    }
}

/// A small residual convolutional network, the conditioner of the image
/// couplings:
///
/// h₀ = conv₃ₓ₃(x);  hₖ = hₖ₋₁ + conv₃ₓ₃(relu(conv₃ₓ₃(relu(hₖ₋₁)))) for each
/// of the `blocks` residual blocks;  y = conv₃ₓ₃(relu(h)), its last
/// convolution zero-initialised so that a coupling built on it starts as the
/// identity (RealNVP) or at Glow's fixed starting scale.
///
/// With `blocks = 0` it is conv → ReLU → conv, the shape of Glow's
/// coupling network (conv 3×3, ReLU, …, zero-initialised conv 3×3).
///
/// # Shapes
/// `[batch, in_channels, height, width]` → `[batch, out_channels, height, width]`.
///
/// # Source
/// K. He, X. Zhang, S. Ren, J. Sun, "Deep Residual Learning for Image
/// Recognition", CVPR 2016, arXiv:1512.03385 (the residual block); RealNVP,
/// arXiv:1605.08803, §4.1 (ResNet coupling networks, without their batch
/// normalisation here); Glow, arXiv:1807.03039, §3.3 (zero-initialised last
/// convolution).
///
/// # Examples
/// ```
/// use flowzoo::nn::conv::ConvResNet;
/// use flowzoo::autodiff::Tape;
/// use flowzoo::tensor::Tensor;
/// use rand::SeedableRng;
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let net = ConvResNet::<f64>::new(1, 8, 2, 1, &mut rng);
/// let tape = Tape::no_grad();
/// let y = net.forward(&tape.constant(Tensor::ones(&[3, 1, 4, 4])));
/// assert_eq!(y.shape(), &[3, 2, 4, 4]);
/// assert!(y.value().to_vec().iter().all(|&v| v == 0.0)); // zero last layer
/// ```
#[derive(Clone, Debug)]
pub struct ConvResNet<T: Element> {
    /// in_channels → hidden.
    pub input: Conv2d<T>,
    /// Residual blocks, each two hidden → hidden convolutions.
    pub blocks: Vec<[Conv2d<T>; 2]>,
    /// hidden → out_channels, zero-initialised.
    pub output: Conv2d<T>,
}

impl<T: Element> ConvResNet<T> {
    /// The scalars of a ConvResNet from `n_in` to `n_out` channels with
    /// `hidden` channels and `blocks` residual blocks (3×3 convolutions with
    /// biases: n_in → hidden, two hidden → hidden per block, hidden → n_out),
    /// or `None` if the count overflows.
    pub fn elements(n_in: usize, hidden: usize, n_out: usize, blocks: usize) -> Option<usize> {
        let conv = |a: usize, b: usize| a.checked_mul(b)?.checked_mul(9)?.checked_add(b);
        let per_block = conv(hidden, hidden)?.checked_mul(2)?;
        conv(n_in, hidden)?
            .checked_add(blocks.checked_mul(per_block)?)?
            .checked_add(conv(hidden, n_out)?)
    }

    /// A network from `in_channels` to `out_channels` with `hidden` channels
    /// inside and `blocks` residual blocks, all kernels 3×3.
    pub fn new<R: Rng + ?Sized>(
        in_channels: usize,
        hidden: usize,
        out_channels: usize,
        blocks: usize,
        rng: &mut R,
    ) -> Self {
        let mut input = Conv2d::new(in_channels, hidden, 3, Init::Glorot, rng);
        for p in input.params_mut() {
            p.prefix("input");
        }
        let blocks = (0..blocks)
            .map(|k| {
                let mut pair = [
                    Conv2d::new(hidden, hidden, 3, Init::Glorot, rng),
                    Conv2d::new(hidden, hidden, 3, Init::Glorot, rng),
                ];
                for (j, conv) in pair.iter_mut().enumerate() {
                    for p in conv.params_mut() {
                        p.prefix(&format!("block{k}.conv{j}"));
                    }
                }
                pair
            })
            .collect();
        let mut output = Conv2d::new(hidden, out_channels, 3, Init::Zero, rng);
        for p in output.params_mut() {
            p.prefix("output");
        }
        ConvResNet {
            input,
            blocks,
            output,
        }
    }

    /// The network's output for `x`.
    pub fn forward<'t>(&self, x: &Var<'t, T>) -> Var<'t, T> {
        self.forward_shifted(x, None)
    }

    /// The network's output for `x` with `shift` (`[batch, hidden]`) added
    /// to every pixel of the input convolution's output, h₀ = conv(x) + shift:
    /// how a conditional image coupling feeds its network a projection of
    /// the context (`None`: [`ConvResNet::forward`]).
    ///
    /// # Panics
    /// If `shift` is not `[batch, hidden]`, from the broadcasting add
    /// (naming both shapes).
    pub fn forward_shifted<'t>(&self, x: &Var<'t, T>, shift: Option<&Var<'t, T>>) -> Var<'t, T> {
        let mut h = self.input.forward(x);
        if let Some(shift) = shift {
            // [batch, hidden] → [batch, hidden, 1, 1], broadcast over the pixels
            let (batch, hidden) = (shift.shape()[0], shift.shape()[1]);
            h = h.add(&shift.reshape(&[batch, hidden, 1, 1]));
        }
        for [first, second] in &self.blocks {
            // hₖ = hₖ₋₁ + F(hₖ₋₁): the identity path carries the gradient through.
            let branch = second.forward(&first.forward(&h.relu()).relu());
            h = h.add(&branch);
        }
        self.output.forward(&h.relu())
    }

    /// Every parameter: input, blocks in order, output.
    pub fn params(&self) -> Vec<&Param<T>> {
        let mut p = self.input.params();
        for pair in &self.blocks {
            p.extend(pair.iter().flat_map(|c| c.params()));
        }
        p.extend(self.output.params());
        p
    }

    /// Every parameter, mutably.
    pub fn params_mut(&mut self) -> Vec<&mut Param<T>> {
        let mut p = self.input.params_mut();
        for pair in &mut self.blocks {
            p.extend(pair.iter_mut().flat_map(|c| c.params_mut()));
        }
        p.extend(self.output.params_mut());
        p
    }
}
