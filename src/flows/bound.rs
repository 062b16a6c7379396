//! [`soft_clamp`]: the smooth bound flowzoo puts on the log-scales that a
//! network computes without a bound of its own (Glow's sigmoid scale in
//! the sampling direction, the learned prior of a [`Split`](super::Split),
//! the gate of a gated [`Iaf`](super::Iaf)), so that e^s and e^−s stay
//! finite in f32 whatever the network outputs.
//!
//! Inside the knee the value is passed through untouched, bit for bit, so
//! a trained model whose log-scales stay inside it computes exactly what
//! it computed unbounded; past the knee the value bends smoothly (C¹) to the
//! bound. The layer applies the bounded value and counts it in its log-det,
//! so the log-det stays exact.

use crate::autodiff::Var;
use crate::tensor::Element;

/// Where [`soft_clamp`] stops passing a log-scale through: a factor
/// e^±10 (2.2e4 or 4.5e-5), far beyond what trained layers use (the
/// README's digits Glow stays within 2.4, its moons Glow within 1.6).
pub const LOG_SCALE_KNEE: f64 = 10.0;

/// The bound of [`soft_clamp`]: |s| ≤ 12, so a layer scales by at most
/// e¹² ≈ 1.6e5 either way (f32 holds up to e⁸⁸).
pub const LOG_SCALE_MAX: f64 = 12.0;

/// s where |s| ≤ [`LOG_SCALE_KNEE`] (the same value and gradient), and
/// ±(k + w·tanh((|s| − k)/w)) beyond it, k the knee and
/// w = [`LOG_SCALE_MAX`] − k: value and slope agree at the knee, and
/// |result| ≤ [`LOG_SCALE_MAX`] (equal to it once tanh rounds to 1). NaN
/// stays NaN.
///
/// # Shapes
/// Any shape; the result has the shape of `s`.
pub fn soft_clamp<'t, T: Element>(s: &Var<'t, T>) -> Var<'t, T> {
    let (knee, width) = (LOG_SCALE_KNEE, LOG_SCALE_MAX - LOG_SCALE_KNEE);
    let flag = |keep: bool| if keep { T::ONE } else { T::ZERO };
    let inside = s.value().map(|v| flag(v.to_f64().abs() <= knee));
    let high = s.value().map(|v| flag(v.to_f64() > knee));
    // The branches are evaluated everywhere but only picked past the knee;
    // tanh is bounded, so an unpicked branch never sends back ∞ or NaN.
    let bend = |sign: f64| {
        s.add_scalar(T::from_f64(-sign * knee))
            .mul_scalar(T::from_f64(1.0 / width))
            .tanh()
            .mul_scalar(T::from_f64(width))
            .add_scalar(T::from_f64(sign * knee))
    };
    Var::select(&inside, s, &Var::select(&high, &bend(1.0), &bend(-1.0)))
}
