//! Unnormalised 2-D target densities p(z) ∝ exp(−U(z)): the four energy
//! functions of Rezende & Mohamed (2015, table 1 and figure 3), the targets an
//! [`Iaf`](crate::flows::Iaf) sampler is fitted to by reverse KL
//! ([`train::reverse_kl`](crate::train::reverse_kl)).
//!
//! Each energy comes with its exact gradient ∇U, written by hand (and checked
//! against finite differences in `proptests/autoregressive.rs`), and with
//! [`Energy::energy_var`], which puts U on a tape with that gradient, so the
//! library's small op set needs no `sin`.

use crate::autodiff::Var;
use crate::error::DataError;
use crate::tensor::math;
use crate::tensor::{Element, Tensor};
use std::f64::consts::PI;

/// The canonical names, as [`Energy::name`] returns and `FromStr` accepts.
pub const ENERGY_NAMES: [&str; 4] = ["ring", "wave", "bump", "step"];

/// The half-width of the box [−4, 4]² the paper plots the targets on.
pub const BOX: f64 = 4.0;

/// Width of the wall that confines [`Energy::Wave`], [`Energy::Bump`] and
/// [`Energy::Step`] to |z₁| ≤ 4 (see [`Energy::energy`]).
pub const WALL_WIDTH: f64 = 0.2;

/// One of the four energies U of Rezende & Mohamed, table 1, with
/// w₁(z) = sin(2πz₁/4), w₂(z) = 3·exp(−½((z₁ − 1)/0.6)²),
/// w₃(z) = 3·σ((z₁ − 1)/0.3), σ the logistic sigmoid.
///
/// # Source
/// D. J. Rezende, S. Mohamed, "Variational Inference with Normalizing Flows",
/// ICML 2015, arXiv:1505.05770 (table 1, figure 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Energy {
    /// U₁(z) = ½((‖z‖ − 2)/0.4)² − ln(exp(−½((z₁ − 2)/0.6)²) + exp(−½((z₁ + 2)/0.6)²)):
    /// a ring of radius 2 with its mass at the left and right.
    Ring,
    /// U₂(z) = ½((z₂ − w₁(z))/0.4)²: a sine wave.
    Wave,
    /// U₃(z) = −ln(exp(−½((z₂ − w₁)/0.35)²) + exp(−½((z₂ − w₁ + w₂)/0.35)²)):
    /// the wave and a copy bent down by a bump near z₁ = 1.
    Bump,
    /// U₄(z) = −ln(exp(−½((z₂ − w₁)/0.4)²) + exp(−½((z₂ − w₁ + w₃)/0.35)²)):
    /// the wave and a copy shifted down by a step at z₁ = 1.
    Step,
}

impl std::str::FromStr for Energy {
    type Err = DataError;
    fn from_str(name: &str) -> Result<Self, DataError> {
        match name {
            "ring" | "u1" => Ok(Energy::Ring),
            "wave" | "u2" => Ok(Energy::Wave),
            "bump" | "u3" => Ok(Energy::Bump),
            "step" | "u4" => Ok(Energy::Step),
            _ => Err(DataError::UnknownDataset {
                name: name.to_string(),
                known: ENERGY_NAMES.iter().map(|s| s.to_string()).collect(),
            }),
        }
    }
}

/// −ln(e^{−a} + e^{−b}) and the weights (e^{−a}, e^{−b}) / (e^{−a} + e^{−b}),
/// computed without underflow.
fn neg_log_sum_exp(a: f64, b: f64) -> (f64, [f64; 2]) {
    let low = a.min(b);
    let (ea, eb) = (math::exp(low - a), math::exp(low - b));
    let total = ea + eb;
    (low - math::ln(total), [ea / total, eb / total])
}

fn sigmoid(v: f64) -> f64 {
    1.0 / (1.0 + math::exp(-v))
}

impl Energy {
    /// All four, in the paper's order.
    pub const ALL: [Energy; 4] = [Energy::Ring, Energy::Wave, Energy::Bump, Energy::Step];

    /// The canonical name: one of [`ENERGY_NAMES`].
    pub fn name(&self) -> &'static str {
        match self {
            Energy::Ring => "ring",
            Energy::Wave => "wave",
            Energy::Bump => "bump",
            Energy::Step => "step",
        }
    }

    /// The box the paper plots the target on, [−4, 4]², as (x range, y range).
    pub fn bounds(&self) -> ([f64; 2], [f64; 2]) {
        ([-BOX, BOX], [-BOX, BOX])
    }

    /// U(z) and ∇U(z) at one point.
    ///
    /// U₂, U₃ and U₄ do not depend on ‖z₁‖ beyond the wave: exp(−U) has
    /// infinite mass along z₁ and reverse KL has no minimum. flowzoo adds
    /// the wall ½((|z₁| − 4)₊ / 0.2)² to them ([`WALL_WIDTH`]), which
    /// leaves the box the paper plots untouched and makes them normalisable.
    pub fn energy_and_gradient(&self, z: [f64; 2]) -> (f64, [f64; 2]) {
        let [z1, z2] = z;
        // w₁ = sin(πz₁/2), w₁′ = (π/2)·cos(πz₁/2)
        let w1 = math::sin(PI * z1 / 2.0);
        let dw1 = PI / 2.0 * math::cos(PI * z1 / 2.0);
        let (u, grad) = match self {
            Energy::Ring => {
                let r = (z1 * z1 + z2 * z2).sqrt();
                // ½((r − 2)/0.4)²: gradient ((r − 2)/0.16)·z/r (0 at the origin, a kink)
                let radial = 0.5 * ((r - 2.0) / 0.4).powi(2);
                let scale = if r > 0.0 { (r - 2.0) / 0.16 / r } else { 0.0 };
                // −ln(e^{−a} + e^{−b}), a = ½((z₁ − 2)/0.6)², b = ½((z₁ + 2)/0.6)²
                let (a, b) = (
                    0.5 * ((z1 - 2.0) / 0.6).powi(2),
                    0.5 * ((z1 + 2.0) / 0.6).powi(2),
                );
                let (modes, [pa, pb]) = neg_log_sum_exp(a, b);
                let d_modes = pa * (z1 - 2.0) / 0.36 + pb * (z1 + 2.0) / 0.36;
                (radial + modes, [scale * z1 + d_modes, scale * z2])
            }
            Energy::Wave => {
                // ½((z₂ − w₁)/0.4)²
                let e = (z2 - w1) / 0.16;
                (0.5 * (z2 - w1).powi(2) / 0.16, [-e * dw1, e])
            }
            Energy::Bump => {
                // w₂ = 3·exp(−½((z₁ − 1)/0.6)²), w₂′ = −w₂·(z₁ − 1)/0.36
                let w2 = 3.0 * math::exp(-0.5 * ((z1 - 1.0) / 0.6).powi(2));
                let dw2 = -w2 * (z1 - 1.0) / 0.36;
                let (p, q) = ((z2 - w1) / 0.35, (z2 - w1 + w2) / 0.35);
                let (u, [pp, pq]) = neg_log_sum_exp(0.5 * p * p, 0.5 * q * q);
                // ∂U = pp·p·∂p + pq·q·∂q
                let d1 = pp * p * (-dw1 / 0.35) + pq * q * ((dw2 - dw1) / 0.35);
                let d2 = pp * p / 0.35 + pq * q / 0.35;
                (u, [d1, d2])
            }
            Energy::Step => {
                // w₃ = 3σ((z₁ − 1)/0.3), w₃′ = 3σ(1 − σ)/0.3
                let s = sigmoid((z1 - 1.0) / 0.3);
                let (w3, dw3) = (3.0 * s, 3.0 * s * (1.0 - s) / 0.3);
                let (p, q) = ((z2 - w1) / 0.4, (z2 - w1 + w3) / 0.35);
                let (u, [pp, pq]) = neg_log_sum_exp(0.5 * p * p, 0.5 * q * q);
                let d1 = pp * p * (-dw1 / 0.4) + pq * q * ((dw3 - dw1) / 0.35);
                let d2 = pp * p / 0.4 + pq * q / 0.35;
                (u, [d1, d2])
            }
        };
        if *self == Energy::Ring {
            return (u, grad);
        }
        // The wall ½((|z₁| − 4)₊/w)², gradient sign(z₁)·(|z₁| − 4)₊/w².
        let over = (z1.abs() - BOX).max(0.0);
        let wall = 0.5 * (over / WALL_WIDTH).powi(2);
        let d_wall = z1.signum() * over / (WALL_WIDTH * WALL_WIDTH);
        (u + wall, [grad[0] + d_wall, grad[1]])
    }

    /// U(z) at one point (see [`Energy::energy_and_gradient`]).
    pub fn energy(&self, z: [f64; 2]) -> f64 {
        self.energy_and_gradient(z).0
    }

    /// U of every row of `x` (`[batch, 2]`) on `x`'s tape, as a `[batch]`
    /// value whose gradient with respect to x is the exact ∇U.
    ///
    /// Built as Σⱼ gⱼ·xⱼ + (U − Σⱼ gⱼ·xⱼ) with g = ∇U(x) and the bracket a
    /// constant: the value is U and the first derivative is g (the second
    /// derivative is not, which first-order training never asks for).
    ///
    /// # Panics
    /// If `x` is not `[batch, 2]`.
    pub fn energy_var<'t, T: Element>(&self, x: &Var<'t, T>) -> Var<'t, T> {
        assert!(
            x.shape().len() == 2 && x.shape()[1] == 2,
            "Energy::energy_var: expected [batch, 2], got {:?}",
            x.shape()
        );
        let batch = x.shape()[0];
        let points = x.value().to_f64_vec();
        let (mut grads, mut offsets) = (Vec::with_capacity(2 * batch), Vec::with_capacity(batch));
        for p in points.chunks_exact(2) {
            let (u, g) = self.energy_and_gradient([p[0], p[1]]);
            grads.extend_from_slice(&g);
            offsets.push(u - g[0] * p[0] - g[1] * p[1]);
        }
        let g = x.constant(Tensor::from_f64_slice(&grads, &[batch, 2]));
        let offset = x.constant(Tensor::from_f64_slice(&offsets, &[batch]));
        x.mul(&g).sum_axes(&[1]).add(&offset)
    }

    /// log Z = log ∫ exp(−U(z)) dz by the midpoint rule on a `resolution²`
    /// grid over [−6, 6]² (the ring's and the walled waves' mass lies well
    /// inside). With `resolution` = 1000 the error is below 1e-4.
    pub fn log_normalizer(&self, resolution: usize) -> f64 {
        let half = BOX + 2.0;
        let h = 2.0 * half / resolution as f64;
        let mut values = Vec::with_capacity(resolution * resolution);
        for i in 0..resolution {
            let z1 = -half + (i as f64 + 0.5) * h;
            for j in 0..resolution {
                let z2 = -half + (j as f64 + 0.5) * h;
                values.push(-self.energy([z1, z2]));
            }
        }
        let top = values.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = values.iter().map(|v| math::exp(v - top)).sum();
        top + math::ln(sum) + 2.0 * math::ln(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_is_lowest_on_the_circle_of_radius_two_at_its_modes() {
        let on = Energy::Ring.energy([2.0, 0.0]);
        assert!(on < Energy::Ring.energy([1.5, 0.0]));
        assert!(on < Energy::Ring.energy([0.0, 2.0]));
    }

    #[test]
    fn wave_is_zero_on_the_sine() {
        for z1 in [-3.0, -1.0, 0.5, 2.0] {
            let z2 = math::sin(PI * z1 / 2.0);
            assert!(Energy::Wave.energy([z1, z2]).abs() < 1e-15);
        }
    }

    #[test]
    fn names_round_trip() {
        for e in Energy::ALL {
            assert_eq!(e.name().parse::<Energy>().unwrap(), e);
        }
        assert!("nope".parse::<Energy>().is_err());
    }
}
