//! [`RationalQuadraticSpline`]: the monotonic rational-quadratic spline of
//! the neural spline flows, an element-wise bijection of ℝ with K bins on
//! [−B, B] and the identity outside, written as a composition of the tape's
//! ops so that gradients reach the input and all three parameter sets.
//!
//! The layers that use it ([`SplineCoupling`](super::SplineCoupling),
//! [`SplineMaf`](super::SplineMaf),
//! [`ImageSplineCoupling`](super::ImageSplineCoupling)) only compute its parameters with a
//! network; everything numerical is here.
//!
//! Derivation: [`derivations::splines`](crate::derivations::splines)
//! (docs/derivations/splines.md).

use super::error::FlowError;
use super::spec::LayerSpec;
use crate::autodiff::Var;
use crate::tensor::math;
use crate::tensor::{Element, Tensor};

/// The constraints of a [`RationalQuadraticSpline`] by default: no bin
/// narrower or lower than 1e-3 of the interval's share, no derivative
/// below 1e-3 (the values of the paper's code).
pub const DEFAULT_MIN_BIN: f64 = 1e-3;

/// The monotonic rational-quadratic spline g: ℝ → ℝ (Gregory & Delbourgo
/// 1982), as the neural spline flows use it: K bins between the knots
/// (x⁽ᵏ⁾, y⁽ᵏ⁾), k = 0..K, with x⁽⁰⁾ = y⁽⁰⁾ = −B and x⁽ᴷ⁾ = y⁽ᴷ⁾ = B, positive
/// derivatives δ⁽ᵏ⁾ at the knots, δ⁽⁰⁾ = δ⁽ᴷ⁾ = 1, and g(x) = x outside
/// (−B, B). In bin k, with w = x⁽ᵏ⁺¹⁾ − x⁽ᵏ⁾, h = y⁽ᵏ⁺¹⁾ − y⁽ᵏ⁾, s = h/w and
/// ξ = (x − x⁽ᵏ⁾)/w ∈ [0, 1]:
///
/// g(x) = y⁽ᵏ⁾ + h·(s ξ² + δ⁽ᵏ⁾ ξ(1 − ξ)) / (s + (δ⁽ᵏ⁺¹⁾ + δ⁽ᵏ⁾ − 2s) ξ(1 − ξ)),
///
/// g′(x) = s²·(δ⁽ᵏ⁺¹⁾ξ² + 2sξ(1 − ξ) + δ⁽ᵏ⁾(1 − ξ)²) / (s + (δ⁽ᵏ⁺¹⁾ + δ⁽ᵏ⁾ − 2s) ξ(1 − ξ))²,
///
/// and g⁻¹ solves a quadratic in ξ with the root 2c / (−b − √(b² − 4ac)),
/// which never divides 0 by 0 (the textbook root does where the bin is
/// linear, a = 0).
///
/// The parameters are unconstrained, per element: `widths` and `heights`
/// (K each) become bin sizes by a softmax, floored at `min_width` and
/// `min_height` (w = 2B·(m + (1 − K·m)·softmax(ŵ))), and the K − 1
/// `derivatives` become δ = `min_derivative` + softplus(δ̂ + c), with c
/// chosen so that δ̂ = 0 gives δ = 1: all-zero parameters (a zero-initialised
/// network) make g the identity.
///
/// Robust where other libraries fault: the bin index is counted, so it lies
/// in 0..K whatever the input (NaN included); inputs with |x| ≥ B are passed
/// through exactly, with log-det exactly 0 and no gradient to the
/// parameters (the spline branch is evaluated at 0 for them, so nothing
/// non-finite reaches the backward pass); the two end knots are set to ±B
/// exactly rather than summed.
///
/// # Shapes
/// An input of any shape S; `widths` and `heights` S + `[K]`, `derivatives`
/// S + `[K − 1]`. [`RationalQuadraticSpline::forward`] and
/// [`RationalQuadraticSpline::inverse`] return the output and the
/// element-wise log|dy/dx| (or log|dx/dy|), both of shape S.
///
/// # Units
/// Log-derivatives in nats.
///
/// # Panics
/// In [`RationalQuadraticSpline::new`], if K < 2, B is not positive and
/// finite, or a minimum leaves no room (K·min ≥ 1, or a negative minimum);
/// in `forward` and `inverse`, if the parameter shapes do not match the
/// input's (the message names both shapes).
///
/// # Source
/// C. Durkan, A. Bekasov, I. Murray, G. Papamakarios, "Neural Spline
/// Flows", NeurIPS 2019, arXiv:1906.04032 (§3.1, Appendix A, eq. 4-8 and
/// the inverse in Appendix A.3); J. A. Gregory, R. Delbourgo, "Piecewise
/// rational quadratic interpolation to monotonic data", IMA J. Numer. Anal.
/// 1982.
///
/// # Derivation
/// [`derivations::splines`, "The map"](crate::derivations::splines#the-map)
/// and ["The inverse as a quadratic"](crate::derivations::splines#the-inverse-as-a-quadratic)
/// (docs/derivations/splines.md).
///
/// # Examples
/// ```
/// use flowzoo::flows::spline::RationalQuadraticSpline;
/// use flowzoo::autodiff::Tape;
/// use flowzoo::tensor::Tensor;
/// let spline = RationalQuadraticSpline::new(4, 3.0);
/// let tape = Tape::<f64>::no_grad();
/// let x = tape.constant(Tensor::from_vec(vec![-5.0, 0.3, 2.9], &[3]));
/// let w = tape.constant(Tensor::from_vec((0..12).map(|i| (i as f64).sin()).collect(), &[3, 4]));
/// let h = tape.constant(Tensor::from_vec((0..12).map(|i| (i as f64).cos()).collect(), &[3, 4]));
/// let d = tape.constant(Tensor::from_vec(vec![0.5; 9], &[3, 3]));
/// let (y, log_det) = spline.forward(&x, &w, &h, &d);
/// assert_eq!(y.value().get(&[0]), -5.0); // the tail is the identity
/// assert_eq!(log_det.value().get(&[0]), 0.0);
/// let (x_back, _) = spline.inverse(&y, &w, &h, &d);
/// assert!((x_back.value().get(&[1]) - 0.3).abs() < 1e-12);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RationalQuadraticSpline {
    /// The number of bins K (at least 2).
    pub bins: usize,
    /// The half-width B of the interval [−B, B] the spline bends; the
    /// identity outside.
    pub bound: f64,
    /// The smallest bin width, as a fraction of the interval 2B.
    pub min_width: f64,
    /// The smallest bin height, as a fraction of the interval 2B.
    pub min_height: f64,
    /// The smallest derivative at an interior knot.
    pub min_derivative: f64,
    /// Which way the layers that use the spline apply g: toward the noise
    /// (the paper's choice, the default) or toward the data.
    pub direction: SplineDirection,
}

/// Which way a spline layer ([`SplineCoupling`](super::SplineCoupling),
/// [`SplineMaf`](super::SplineMaf),
/// [`ImageSplineCoupling`](super::ImageSplineCoupling)) applies its spline
/// g. The two are different models: the inverse of a rational-quadratic
/// spline is not a rational-quadratic spline (it takes a square root), so
/// the same parameters give another density and training finds other
/// parameters.
///
/// Measured (docs/benchmarks/splines.md, "Which way the spline points"):
/// on pinwheel and 8gaussians, [`SplineDirection::DataToNoise`] gave test
/// NLLs 0.010-0.020 nats lower than [`SplineDirection::NoiseToData`] with
/// the same network, seeds and steps, for both `nsf` and `nsf-ar`; on the
/// checkerboard and moons the two were within about one standard error.
///
/// # Derivation
/// [`derivations::splines`, "Which way the spline points"](crate::derivations::splines#which-way-the-spline-points)
/// (docs/derivations/splines.md).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SplineDirection {
    /// z = g(x): the density's pass (x → z, the layer's `inverse`) applies
    /// g, sampling (z → x, `forward`) applies g⁻¹. As in the paper
    /// (arXiv:1906.04032, where the transform maps data to noise) and its
    /// code, nflows and zuko. Written `data-to-noise` in a spec.
    #[default]
    DataToNoise,
    /// x = g(z): sampling applies g and the density's pass g⁻¹. flowzoo's
    /// spline layers before this field existed; a spec without a
    /// `direction` field (every spline model saved before it) loads with
    /// it, so old checkpoints keep their densities. Written
    /// `noise-to-data` in a spec.
    NoiseToData,
}

impl SplineDirection {
    /// The spellings a spec uses, in the order of the variants.
    pub const NAMES: [&'static str; 2] = ["data-to-noise", "noise-to-data"];

    /// The name a spec writes: `data-to-noise` or `noise-to-data`.
    pub fn name(self) -> &'static str {
        match self {
            SplineDirection::DataToNoise => Self::NAMES[0],
            SplineDirection::NoiseToData => Self::NAMES[1],
        }
    }
}

/// The per-element knots of one spline side: positions `[N, K + 1]` (the
/// first −B and the last B exactly) and bin sizes `[N, K]`.
struct Knots<'t, T: Element> {
    positions: Var<'t, T>,
    sizes: Var<'t, T>,
}

/// What a bin of the spline holds, for each element: `[N]` each.
struct Bin<'t, T: Element> {
    /// x⁽ᵏ⁾, y⁽ᵏ⁾: the bin's left knot.
    x_left: Var<'t, T>,
    y_left: Var<'t, T>,
    /// w, h: its width and height.
    width: Var<'t, T>,
    height: Var<'t, T>,
    /// δ⁽ᵏ⁾, δ⁽ᵏ⁺¹⁾: the derivatives at its two knots.
    d_left: Var<'t, T>,
    d_right: Var<'t, T>,
}

impl RationalQuadraticSpline {
    /// A spline with `bins` bins on [−`bound`, `bound`], the default
    /// minima ([`DEFAULT_MIN_BIN`] for widths, heights and derivatives),
    /// applied by its layers data to noise
    /// ([`SplineDirection::DataToNoise`]; [`RationalQuadraticSpline::with_direction`]
    /// changes it).
    ///
    /// # Panics
    /// If `bins < 2` or `bound` is not positive and finite.
    pub fn new(bins: usize, bound: f64) -> Self {
        RationalQuadraticSpline::with_minima(
            bins,
            bound,
            DEFAULT_MIN_BIN,
            DEFAULT_MIN_BIN,
            DEFAULT_MIN_BIN,
        )
    }

    /// A spline with explicit minima for the bin widths and heights (as
    /// fractions of 2B) and the interior derivatives.
    ///
    /// # Panics
    /// If `bins < 2`, `bound` is not positive and finite, a minimum is
    /// negative or not finite, or `bins · min_width` or `bins · min_height`
    /// is 1 or more (no room left for the softmax).
    pub fn with_minima(
        bins: usize,
        bound: f64,
        min_width: f64,
        min_height: f64,
        min_derivative: f64,
    ) -> Self {
        let spline = RationalQuadraticSpline {
            bins,
            bound,
            min_width,
            min_height,
            min_derivative,
            direction: SplineDirection::default(),
        };
        if let Err((_, what)) = spline.validate() {
            panic!("RationalQuadraticSpline: {what}");
        }
        spline
    }

    /// The same spline, applied by its layers in `direction`.
    ///
    /// # Examples
    /// ```
    /// use flowzoo::flows::spline::{RationalQuadraticSpline, SplineDirection};
    /// let spline = RationalQuadraticSpline::new(8, 5.0);
    /// assert_eq!(spline.direction, SplineDirection::DataToNoise);
    /// let old = spline.with_direction(SplineDirection::NoiseToData);
    /// assert_eq!(old.direction, SplineDirection::NoiseToData);
    /// ```
    pub fn with_direction(self, direction: SplineDirection) -> Self {
        RationalQuadraticSpline { direction, ..self }
    }

    /// Checks the fields: K ≥ 2, B positive and finite, minima
    /// non-negative and finite with K·min < 1 for widths and heights.
    ///
    /// # Errors
    /// The field that is wrong and a sentence saying why (a layer's
    /// `from_spec` turns them into a [`FlowError::BadSpec`]).
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.bins < 2 {
            return Err(("bins", format!("needs at least 2 bins, got {}", self.bins)));
        }
        if !(self.bound.is_finite() && self.bound > 0.0) {
            return Err((
                "bound",
                format!("the bound must be positive and finite, got {}", self.bound),
            ));
        }
        for (name, min) in [
            ("min_width", self.min_width),
            ("min_height", self.min_height),
        ] {
            if !(min.is_finite() && min >= 0.0 && min * self.bins as f64 <= 1.0 - 1e-6) {
                return Err((
                    name,
                    format!(
                        "{name} = {min} must be non-negative with bins · {name} < 1 ({} bins)",
                        self.bins
                    ),
                ));
            }
        }
        if !(self.min_derivative.is_finite() && self.min_derivative >= 0.0) {
            return Err((
                "min_derivative",
                format!(
                    "min_derivative = {} must be non-negative and finite",
                    self.min_derivative
                ),
            ));
        }
        Ok(())
    }

    /// `spec` with the spline's fields appended: `bins`, `bound`,
    /// `min_width`, `min_height`, `min_derivative`, `direction` (what the
    /// spline layers' `to_spec` write, read back by
    /// [`RationalQuadraticSpline::from_spec`]).
    pub fn write_spec(&self, spec: LayerSpec) -> LayerSpec {
        spec.with("bins", self.bins)
            .with("bound", self.bound)
            .with("min_width", self.min_width)
            .with("min_height", self.min_height)
            .with("min_derivative", self.min_derivative)
            .with("direction", self.direction.name())
    }

    /// The spline whose fields [`RationalQuadraticSpline::write_spec`] wrote
    /// into `spec`.
    ///
    /// A spec without `direction` (written before the field existed) gives
    /// [`SplineDirection::NoiseToData`], the only direction then.
    ///
    /// # Errors
    /// [`FlowError::BadSpec`] naming the field: missing, mistyped, or
    /// refused by [`RationalQuadraticSpline::validate`] (fewer than 2 bins or
    /// more than [`MAX_SIZE`](super::spec::MAX_SIZE), a bound that is not
    /// positive, minima that leave no room), or a `direction` that is not
    /// one of [`SplineDirection::NAMES`].
    pub fn from_spec(spec: &LayerSpec) -> Result<Self, FlowError> {
        let bins = spec.usize("bins")?;
        if bins > super::spec::MAX_SIZE {
            return Err(spec.error(
                "bins",
                format!("{bins} is more than {}", super::spec::MAX_SIZE),
            ));
        }
        let spline = RationalQuadraticSpline {
            bins,
            bound: spec.f64("bound")?,
            min_width: spec.f64("min_width")?,
            min_height: spec.f64("min_height")?,
            min_derivative: spec.f64("min_derivative")?,
            direction: match spec.get("direction") {
                None => SplineDirection::NoiseToData,
                Some(_) => match spec.choice("direction", &SplineDirection::NAMES)? {
                    "data-to-noise" => SplineDirection::DataToNoise,
                    "noise-to-data" => SplineDirection::NoiseToData,
                    other => unreachable!("spec.choice returned {other:?}, not one of NAMES"),
                },
            },
        };
        spline
            .validate()
            .map_err(|(field, what)| spec.error(field, what))?;
        Ok(spline)
    }

    /// The number of unconstrained parameters per element, 3K − 1: K
    /// widths, K heights, K − 1 interior derivatives.
    pub fn params_per_element(&self) -> usize {
        3 * self.bins - 1
    }

    /// Splits the last axis of `raw` (`[…, 3K − 1]`) into (widths `[…, K]`,
    /// heights `[…, K]`, derivatives `[…, K − 1]`), in that order.
    ///
    /// # Panics
    /// If the last axis of `raw` is not 3K − 1 long.
    pub fn split_params<'t, T: Element>(
        &self,
        raw: &Var<'t, T>,
    ) -> (Var<'t, T>, Var<'t, T>, Var<'t, T>) {
        let k = self.bins;
        let axis = raw.shape().len() - 1;
        assert_eq!(
            raw.shape()[axis],
            self.params_per_element(),
            "RationalQuadraticSpline::split_params: the last axis of {:?} must be 3K − 1 = {}",
            raw.shape(),
            self.params_per_element()
        );
        (
            raw.narrow(axis, 0, k),
            raw.narrow(axis, k, k),
            raw.narrow(axis, 2 * k, k - 1),
        )
    }

    /// The knots the parameters describe, exactly as
    /// [`RationalQuadraticSpline::forward`] computes them: (x⁽⁰⁾..x⁽ᴷ⁾ from
    /// `widths`, y⁽⁰⁾..y⁽ᴷ⁾ from `heights`), each `[…, K + 1]`, the first
    /// −B and the last B. Records nothing.
    ///
    /// # Panics
    /// If `widths` and `heights` are not both `[…, K]` of the same shape.
    pub fn knots<T: Element>(
        &self,
        widths: &Tensor<T>,
        heights: &Tensor<T>,
    ) -> (Tensor<T>, Tensor<T>) {
        let k = self.bins;
        assert!(
            widths.shape() == heights.shape() && widths.shape().last() == Some(&k),
            "RationalQuadraticSpline::knots: widths {:?} and heights {:?} must both be […, {k}]",
            widths.shape(),
            heights.shape()
        );
        let tape = crate::autodiff::Tape::no_grad();
        let mut shape = widths.shape().to_vec();
        let n = widths.numel() / k;
        *shape.last_mut().expect("checked above") = k + 1;
        let side = |raw: &Tensor<T>, min: f64| {
            let knots = self.knots_var(&tape.constant(raw.reshape(&[n, k])), min);
            knots.positions.into_value().reshape(&shape)
        };
        (side(widths, self.min_width), side(heights, self.min_height))
    }

    /// y = g(x) and log g′(x), element-wise (see the type's doc).
    ///
    /// # Panics
    /// If the parameter shapes are not S + `[K]`, S + `[K]`, S + `[K − 1]`
    /// for the shape S of `x`.
    pub fn forward<'t, T: Element>(
        &self,
        x: &Var<'t, T>,
        widths: &Var<'t, T>,
        heights: &Var<'t, T>,
        derivatives: &Var<'t, T>,
    ) -> (Var<'t, T>, Var<'t, T>) {
        self.apply(x, widths, heights, derivatives, false)
    }

    /// x = g⁻¹(y) and log|dx/dy| = −log g′(x), element-wise (see the type's
    /// doc).
    ///
    /// # Panics
    /// As [`RationalQuadraticSpline::forward`].
    pub fn inverse<'t, T: Element>(
        &self,
        y: &Var<'t, T>,
        widths: &Var<'t, T>,
        heights: &Var<'t, T>,
        derivatives: &Var<'t, T>,
    ) -> (Var<'t, T>, Var<'t, T>) {
        self.apply(y, widths, heights, derivatives, true)
    }

    /// A spline layer's pass through the spline: for the layer's `inverse`
    /// (x → z, `layer_inverse` true) or its `forward` (z → x), g or g⁻¹ as
    /// [`RationalQuadraticSpline::direction`] says (with
    /// [`SplineDirection::DataToNoise`], the inverse applies g). Returns the
    /// output and the element-wise log-det of the map applied, so that the
    /// layer's log-det is the sum of it in either pass.
    ///
    /// # Shapes
    /// As [`RationalQuadraticSpline::forward`]: an input of shape S, the
    /// parameters S + `[K]`, S + `[K]`, S + `[K − 1]`; the output and the
    /// log-derivatives of shape S.
    ///
    /// # Units
    /// Log-derivatives in nats.
    ///
    /// # Panics
    /// As [`RationalQuadraticSpline::forward`].
    pub fn layer_pass<'t, T: Element>(
        &self,
        input: &Var<'t, T>,
        widths: &Var<'t, T>,
        heights: &Var<'t, T>,
        derivatives: &Var<'t, T>,
        layer_inverse: bool,
    ) -> (Var<'t, T>, Var<'t, T>) {
        let g_inverse = match self.direction {
            SplineDirection::DataToNoise => !layer_inverse,
            SplineDirection::NoiseToData => layer_inverse,
        };
        self.apply(input, widths, heights, derivatives, g_inverse)
    }

    fn apply<'t, T: Element>(
        &self,
        input: &Var<'t, T>,
        widths: &Var<'t, T>,
        heights: &Var<'t, T>,
        derivatives: &Var<'t, T>,
        inverse: bool,
    ) -> (Var<'t, T>, Var<'t, T>) {
        let shape = input.shape().to_vec();
        let k = self.bins;
        let with = |last: usize| -> Vec<usize> { shape.iter().copied().chain([last]).collect() };
        for (name, p, last) in [
            ("widths", widths, k),
            ("heights", heights, k),
            ("derivatives", derivatives, k - 1),
        ] {
            assert!(
                p.shape() == with(last).as_slice(),
                "RationalQuadraticSpline: {name} must be {:?} for an input of {:?}, got {:?}",
                with(last),
                shape,
                p.shape()
            );
        }
        let n: usize = shape.iter().product();
        let flat = input.reshape(&[n]);
        // Inside (−B, B) the spline bends; at ±B and beyond, g is the
        // identity (where the two meet, g(±B) = ±B and g′ = 1, so the
        // choice at exactly ±B is continuous and exact). NaN is "outside".
        let bound = T::from_f64(self.bound);
        let inside = flat
            .value()
            .map(|v| if v.abs() < bound { T::ONE } else { T::ZERO });
        // Why evaluate the spline at 0 for the tails, not at the input: the
        // unpicked branch of a select still runs its backward pass (with
        // zero weight), and 0·∞ would be NaN; at 0 every quantity is finite.
        let zeros = input.constant(Tensor::zeros(&[n]));
        let safe = Var::select(&inside, &flat, &zeros);
        let xs = self.knots_var(&widths.reshape(&[n, k]), self.min_width);
        let ys = self.knots_var(&heights.reshape(&[n, k]), self.min_height);
        let deltas = self.derivatives(&derivatives.reshape(&[n, k - 1]));
        let search = if inverse { &ys } else { &xs };
        let onehot = bin_onehot(search.positions.value(), safe.value());
        let pick = |t: &Var<'t, T>| t.mul(&input.constant(onehot.clone())).sum_axes(&[1]);
        let bin = Bin {
            x_left: pick(&xs.positions.narrow(1, 0, k)),
            y_left: pick(&ys.positions.narrow(1, 0, k)),
            width: pick(&xs.sizes),
            height: pick(&ys.sizes),
            d_left: pick(&deltas.narrow(1, 0, k)),
            d_right: pick(&deltas.narrow(1, 1, k)),
        };
        let (out, log_det) = if inverse {
            bin.inverse(&safe)
        } else {
            bin.forward(&safe)
        };
        let out = Var::select(&inside, &out, &flat);
        let log_det = Var::select(&inside, &log_det, &zeros);
        (out.reshape(&shape), log_det.reshape(&shape))
    }

    /// Knot positions and bin sizes from unnormalised sizes `raw` `[N, K]`:
    /// size = 2B·(m + (1 − K·m)·softmax(raw)), positions −B + cumulative
    /// sums, the last set to B exactly (not summed: a sum of K rounded
    /// sizes can miss B by an ulp, and the identity tail must meet the
    /// spline exactly), and the sizes recomputed as differences of the
    /// positions so that they tile [−B, B] without a gap.
    fn knots_var<'t, T: Element>(&self, raw: &Var<'t, T>, min: f64) -> Knots<'t, T> {
        let (n, k) = (raw.shape()[0], self.bins);
        // softmax(raw) = exp(raw − logsumexp(raw)), stable for any raw
        let p = raw.sub(&raw.logsumexp_axes_keepdim(&[1])).exp();
        let p = p
            .mul_scalar(T::from_f64(1.0 - min * k as f64))
            .add_scalar(T::from_f64(min));
        // Interior knot j (1 ≤ j < K) is −B + 2B·Σ_{i<j} pᵢ: p·U with
        // U[i][j − 1] = 1 for i < j, a [K, K − 1] upper triangle of ones.
        let upper: Vec<T> = (0..k)
            .flat_map(|i| (1..k).map(move |j| if i < j { T::ONE } else { T::ZERO }))
            .collect();
        let cumulative = p.matmul(&raw.constant(Tensor::from_vec(upper, &[k, k - 1])));
        let b = self.bound;
        let interior = cumulative
            .mul_scalar(T::from_f64(2.0 * b))
            .add_scalar(T::from_f64(-b));
        let left = raw.constant(Tensor::full(&[n, 1], T::from_f64(-b)));
        let right = raw.constant(Tensor::full(&[n, 1], T::from_f64(b)));
        let positions = Var::concat(&[&left, &interior, &right], 1);
        let sizes = positions.narrow(1, 1, k).sub(&positions.narrow(1, 0, k));
        Knots { positions, sizes }
    }

    /// The K + 1 knot derivatives `[N, K + 1]` from the unnormalised
    /// interior ones `[N, K − 1]`: δ = m + softplus(δ̂ + c) with
    /// c = ln(e^{1 − m} − 1), so that δ̂ = 0 gives δ = 1; the two end
    /// derivatives are 1, so the spline meets the identity tails with a
    /// continuous slope.
    fn derivatives<'t, T: Element>(&self, raw: &Var<'t, T>) -> Var<'t, T> {
        let n = raw.shape()[0];
        let m = self.min_derivative;
        let shift = math::ln(math::exp_m1(1.0 - m));
        let interior = raw
            .add_scalar(T::from_f64(shift))
            .softplus()
            .add_scalar(T::from_f64(m));
        let one = raw.constant(Tensor::ones(&[n, 1]));
        Var::concat(&[&one, &interior, &one], 1)
    }
}

/// The one-hot `[N, K]` of the bin each of `values` `[N]` falls in, given
/// the knots `[N, K + 1]`: bin k holds [knot k, knot k + 1). The index is a
/// count of interior knots ≤ the value, so it lies in 0..K for every input
/// (below the first knot: bin 0; at or beyond the last, or NaN: bin 0 or
/// K − 1), never out of range.
fn bin_onehot<T: Element>(knots: &Tensor<T>, values: &Tensor<T>) -> Tensor<T> {
    let (n, k) = (knots.dim(0), knots.dim(1) - 1);
    let knots = knots.contiguous();
    let knots = knots.as_slice().expect("made contiguous above");
    let values = values.to_vec();
    let mut onehot = vec![T::ZERO; n * k];
    for (i, &v) in values.iter().enumerate() {
        let row = &knots[i * (k + 1)..(i + 1) * (k + 1)];
        let bin = row[1..k].iter().filter(|&&knot| knot <= v).count();
        onehot[i * k + bin] = T::ONE;
    }
    Tensor::from_vec(onehot, &[n, k])
}

/// ξ with its value clamped to [0, 1] and its gradient passed straight
/// through (ξ + (clamp(ξ) − ξ), the correction a constant). Why: ξ leaves
/// [0, 1] only by round-off (an input on a knot, a root at a bin's end),
/// but there ξ(1 − ξ) < 0, and with large knot derivatives (κ ~ 1e4) the
/// denominator s + κ·ξ(1 − ξ) can reach 0 or below: log g′ was NaN in f32
/// for raw parameters of ±1e4 (found by
/// `spline_is_finite_and_exact_at_knots_bounds_tails_and_collapsed_bins`).
/// Clamped, the denominator is at least s/2. The gradient is that of the
/// unclamped ξ, the right one up to the same round-off.
fn clamp_unit<'t, T: Element>(xi: &Var<'t, T>) -> Var<'t, T> {
    let correction = xi.value().map(|v| v.max(T::ZERO).min(T::ONE) - v);
    xi.add(&xi.constant(correction))
}

impl<'t, T: Element> Bin<'t, T> {
    /// The bin's mean slope s = h/w.
    fn slope(&self) -> Var<'t, T> {
        self.height.div(&self.width)
    }

    /// log g′ at ξ: log(s²·(δ⁽ᵏ⁺¹⁾ξ² + 2sξ(1 − ξ) + δ⁽ᵏ⁾(1 − ξ)²)) − 2·log(denominator).
    fn log_derivative(&self, xi: &Var<'t, T>, s: &Var<'t, T>) -> Var<'t, T> {
        let one_minus = xi.neg().add_scalar(T::ONE);
        let t = xi.mul(&one_minus);
        let numerator = s.square().mul(
            &self
                .d_right
                .mul(&xi.square())
                .add(&s.mul(&t).mul_scalar(T::from_f64(2.0)))
                .add(&self.d_left.mul(&one_minus.square())),
        );
        numerator
            .ln()
            .sub(&self.denominator(&t, s).ln().mul_scalar(T::from_f64(2.0)))
    }

    /// s + (δ⁽ᵏ⁺¹⁾ + δ⁽ᵏ⁾ − 2s)·t with t = ξ(1 − ξ); ≥ s/2 > 0 for ξ in [0, 1]
    /// (docs/derivations/splines.md, "The derivative").
    fn denominator(&self, t: &Var<'t, T>, s: &Var<'t, T>) -> Var<'t, T> {
        s.add(&self.curvature(s).mul(t))
    }

    /// δ⁽ᵏ⁺¹⁾ + δ⁽ᵏ⁾ − 2s.
    fn curvature(&self, s: &Var<'t, T>) -> Var<'t, T> {
        self.d_right
            .add(&self.d_left)
            .sub(&s.mul_scalar(T::from_f64(2.0)))
    }

    /// y = y⁽ᵏ⁾ + h·(sξ² + δ⁽ᵏ⁾ξ(1 − ξ)) / denominator, and log g′.
    fn forward(&self, x: &Var<'t, T>) -> (Var<'t, T>, Var<'t, T>) {
        let s = self.slope();
        let xi = clamp_unit(&x.sub(&self.x_left).div(&self.width));
        let t = xi.mul(&xi.neg().add_scalar(T::ONE));
        let numerator = self
            .height
            .mul(&s.mul(&xi.square()).add(&self.d_left.mul(&t)));
        let y = self.y_left.add(&numerator.div(&self.denominator(&t, &s)));
        (y, self.log_derivative(&xi, &s))
    }

    /// ξ, the root in [0, 1] of aξ² + bξ + c = 0 with b = hδ⁽ᵏ⁾ − Δ·κ,
    /// a = hs − b (= h(s − δ⁽ᵏ⁾) + Δ·κ), c = −sΔ, Δ = y − y⁽ᵏ⁾,
    /// κ = δ⁽ᵏ⁺¹⁾ + δ⁽ᵏ⁾ − 2s: for b ≥ 0, ξ = 2c / (−b − √(b² − 4ac)); for
    /// b < 0, ξ = (−b + √(b² − 4ac)) / 2a. Then x = x⁽ᵏ⁾ + ξw, and
    /// log|dx/dy| = −log g′(x).
    fn inverse(&self, y: &Var<'t, T>) -> (Var<'t, T>, Var<'t, T>) {
        let s = self.slope();
        let kappa = self.curvature(&s);
        let delta = y.sub(&self.y_left);
        let h = &self.height;
        let b = h.mul(&self.d_left).sub(&delta.mul(&kappa));
        // a + b = hs exactly, so a = hs − b: for b < 0 a sum of two
        // positive terms, where h(s − δ⁽ᵏ⁾) + Δκ could cancel.
        let a = h.mul(&s).sub(&b);
        let c = s.mul(&delta).neg();
        // b² − 4ac = b² + 4a·sΔ = (w·g′·denominator)² > 0 at the root (the
        // derivation's "Why this root is stable"); a round-off below 0
        // would make √ NaN, so such an entry takes a tiny positive constant
        // (no gradient) instead, within the rounding of the true value.
        let disc = b.square().sub(&a.mul(&c).mul_scalar(T::from_f64(4.0)));
        let flag = |keep: bool| if keep { T::ONE } else { T::ZERO };
        let positive = disc.value().map(|v| flag(v > T::ZERO));
        let floor = y.constant(Tensor::full(disc.shape(), T::from_f64(1e-30)));
        let root = Var::select(&positive, &disc, &floor).sqrt();
        // Why two forms: each adds two terms of one sign, so neither
        // cancels. For b ≥ 0, 2c / (−b − √disc) (−b − √disc ≤ −b − |b| < 0
        // unless the bin is degenerate); the textbook (−b + √disc) / 2a
        // would be 0/0 in a linear bin (a = 0). For b < 0, (−b + √disc) / 2a
        // with a = hs + |b| > 0; here 2c / (−b − √disc) would subtract
        // nearly equal numbers when |4ac| ≪ b² (a bin of tiny slope s:
        // 75 ulp lost in f32 at s = 1e-3, found by
        // `spline_is_finite_and_exact_at_knots_bounds_tails_and_collapsed_bins`).
        // The unpicked form's divisor is replaced by −1 or 1 so that its
        // (discarded) value and backward pass stay finite.
        let b_nonneg = b.value().map(|v| flag(v >= T::ZERO));
        let b_neg = b.value().map(|v| flag(v < T::ZERO));
        let minus_one = y.constant(Tensor::full(b.shape(), T::from_f64(-1.0)));
        let one = y.constant(Tensor::full(b.shape(), T::ONE));
        let den_plus = Var::select(&b_nonneg, &b.neg().sub(&root), &minus_one);
        let den_minus = Var::select(&b_neg, &a.mul_scalar(T::from_f64(2.0)), &one);
        let xi_plus = c.mul_scalar(T::from_f64(2.0)).div(&den_plus);
        let xi_minus = b.neg().add(&root).div(&den_minus);
        let xi = clamp_unit(&Var::select(&b_nonneg, &xi_plus, &xi_minus));
        let x = self.x_left.add(&xi.mul(&self.width));
        (x, self.log_derivative(&xi, &s).neg())
    }
}
