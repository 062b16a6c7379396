//! [`check_flow`]: the proofs of DESIGN.md as a public function, so a user
//! proves a layer of their own the same way we prove ours.
//!
//! The Jacobian comes from central finite differences, never from the
//! autodiff under test.

use super::flow::Flow;
use crate::autodiff::{
    beyond_fd_error, kink_aware_derivative, kink_aware_derivative_with_error, Param, Tape, Var,
    FD_STENCIL,
};
use crate::tensor::{linalg, Tensor};
use rand::Rng;

/// Tolerances and step of [`check_flow`].
#[derive(Clone, Copy, Debug)]
pub struct CheckOptions {
    /// Round trips must agree to this relative error (DESIGN.md: 1e-10).
    pub inverse_rtol: f64,
    /// log-dets must match the finite-difference Jacobian to this (1e-6).
    pub log_det_rtol: f64,
    /// Central-difference step. Error O(h²) against round-off O(ε/h): 1e-5
    /// balances them near 1e-10 in f64.
    pub h: f64,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            inverse_rtol: 1e-10,
            log_det_rtol: 1e-6,
            h: 1e-5,
        }
    }
}

/// Which proof failed, on which sample, with both values.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckFailure {
    /// The layer's name.
    pub layer: String,
    /// The property: `"inverse(forward(z)) == z"`, …
    pub property: &'static str,
    /// The sample (row of the batch).
    pub sample: usize,
    /// The value the layer computed.
    pub got: f64,
    /// The value it should equal.
    pub expected: f64,
}

impl std::fmt::Display for CheckFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} fails at sample {}: got {:.12e}, expected {:.12e}",
            self.layer, self.property, self.sample, self.got, self.expected
        )
    }
}

/// `|a − b| ≤ rtol · max(1, |a|, |b|)`.
pub fn close(a: f64, b: f64, rtol: f64) -> bool {
    (a - b).abs() <= rtol * 1f64.max(a.abs()).max(b.abs())
}

/// [`close`] with an absolute allowance `slack` on top:
/// `|a − b| ≤ rtol · max(1, |a|, |b|) + slack`.
fn close_with_slack(a: f64, b: f64, rtol: f64, slack: f64) -> bool {
    (a - b).abs() <= rtol * 1f64.max(a.abs()).max(b.abs()) + slack
}

/// log|det| of the finite-difference Jacobian at one sample, and how far it
/// may be from the true one.
struct FiniteDifferenceLogDet {
    /// ∂x/∂z at step h, `[D, D]`.
    jacobian: Tensor<f64>,
    /// Its log|det|.
    log_abs_det: f64,
    /// The allowance: [`round_off_slack`] plus the truncation error,
    /// estimated as |log|det J_h| − log|det J_2h||. Truncation grows as h²
    /// (or as h where the window straddles a spline knot, where g″ jumps),
    /// so the step-2h estimate is off by more than the step-h one and their
    /// difference bounds the latter. A wrong analytic log-det is not hidden:
    /// both estimates agree with each other and not with it.
    slack: f64,
}

impl FiniteDifferenceLogDet {
    /// At sample `b` of `z`, whose image is `x` (that sample's row).
    fn at(flow: &dyn Flow<f64>, z: &Tensor<f64>, b: usize, x: &[f64], h: f64) -> Self {
        let jacobian = finite_difference_jacobian(flow, z, b, h);
        let (_, log_abs_det) = linalg::slogdet(&jacobian);
        let (_, coarse) = linalg::slogdet(&finite_difference_jacobian(flow, z, b, 2.0 * h));
        let truncation = (log_abs_det - coarse).abs();
        let slack = round_off_slack(&jacobian, x, h)
            + if truncation.is_finite() {
                truncation
            } else {
                0.0
            };
        FiniteDifferenceLogDet {
            jacobian,
            log_abs_det,
            slack,
        }
    }
}

/// Round-off of one evaluation of a flow, in units of ε times its largest
/// output: the few rounded operations between a latent value and its image.
const EVALUATION_ULPS: f64 = 4.0;

/// How far log|det| of a finite-difference Jacobian `jac` (step `h`, outputs
/// `x` of the sample) can be from the true log|det| through round-off alone.
///
/// Each output carries about [`EVALUATION_ULPS`]·ε·max|x| of round-off, so
/// each entry of the central difference carries δ = that / h, and to first
/// order log|det(J + δJ)| − log|det J| = tr(J⁻¹·δJ), at most
/// ‖J⁻¹‖_F·‖δJ‖_F ≤ ‖J⁻¹‖_F·D·δ. For a well-conditioned J this is ~1e-9,
/// far below the tolerance; where the flow contracts hard (g′ ≈ 1e-7 in a
/// spline's flat bin) finite differences cannot resolve g′ to 1e-6 and the
/// allowance grows as 1/g′. A singular `jac` gets no allowance.
fn round_off_slack(jac: &Tensor<f64>, x: &[f64], h: f64) -> f64 {
    let scale = x.iter().fold(1f64, |m, v| m.max(v.abs()));
    let entry = EVALUATION_ULPS * f64::EPSILON * scale / h;
    let Some(inverse) = linalg::inverse(jac) else {
        return 0.0;
    };
    let frobenius = inverse.to_vec().iter().map(|v| v * v).sum::<f64>().sqrt();
    let slack = frobenius * jac.dim(0) as f64 * entry;
    if slack.is_finite() {
        slack
    } else {
        0.0
    }
}

/// Runs the proofs on a vector flow at latent points `z` (`[batch, dim]`, f64):
/// 1. `inverse(forward(z)) == z` and `forward(inverse(x)) == x` to
///    `inverse_rtol` (where the flow is too flat for x to hold z in f64, the
///    first holds when `forward(inverse(forward(z))) == x`: z' is then as
///    good a preimage as z);
/// 2. `logdet_forward(z)` equals log|det| of the finite-difference Jacobian
///    ∂x/∂z (full D×D per sample) to `log_det_rtol`, plus what the
///    differences' own error can explain: round-off, ‖J⁻¹‖_F·D·4ε·max|x|/h,
///    and truncation, |log|det J_h| − log|det J_2h||. Both are ~1e-9 for a
///    smooth, well-conditioned J; round-off grows only where the flow
///    contracts so hard (|det| ≈ e⁻¹⁵) that finite differences cannot
///    resolve it, truncation where the map bends on a scale near h (a
///    spline's narrowest bins);
/// 3. `logdet_forward(z) == −logdet_inverse(forward(z))` to `log_det_rtol`.
///
/// # Errors
/// The first failing property, with the layer, the sample and both values.
///
/// # Examples
/// ```
/// use flowzoo::flows::{check::{check_flow, CheckOptions}, Reverse};
/// use flowzoo::tensor::Tensor;
/// let z = Tensor::<f64>::from_vec(vec![0.1, -2.0, 3.0, 0.5, 0.0, 1.0], &[2, 3]);
/// check_flow(&Reverse::new(3), &z, CheckOptions::default()).unwrap();
/// ```
pub fn check_flow(
    flow: &dyn Flow<f64>,
    z: &Tensor<f64>,
    options: CheckOptions,
) -> Result<(), CheckFailure> {
    let (batch, dim) = (z.dim(0), z.numel() / z.dim(0).max(1));
    let fail = |property, sample, got, expected| CheckFailure {
        layer: flow.name(),
        property,
        sample,
        got,
        expected,
    };
    let (x, ld_forward) = flow.forward_tensor(z);
    let (z_back, ld_inverse) = flow.inverse_tensor(&x);
    let (x_again, _) = flow.forward_tensor(&z_back);
    let (zv, xv, zbv, xav) = (z.to_vec(), x.to_vec(), z_back.to_vec(), x_again.to_vec());
    // Where the flow is so flat that x cannot tell z from z' in f64 (a
    // collapsed spline bin, g′ ~ 1e-9 over a stretch), any z' of the
    // stretch is a correct inverse: it is accepted when forward(z') == x.
    let x_again_matches =
        |b: usize| (b * dim..(b + 1) * dim).all(|i| close(xav[i], xv[i], options.inverse_rtol));
    for i in 0..zv.len() {
        if !close(zbv[i], zv[i], options.inverse_rtol) && !x_again_matches(i / dim) {
            return Err(fail("inverse(forward(z)) == z", i / dim, zbv[i], zv[i]));
        }
    }
    // forward(inverse(x)) == x, starting from the data side.
    let (z_from_x, _) = flow.inverse_tensor(&x);
    let (x_round, _) = flow.forward_tensor(&z_from_x);
    let xr = x_round.to_vec();
    for i in 0..xv.len() {
        if !close(xr[i], xv[i], options.inverse_rtol) || !close(xav[i], xv[i], options.inverse_rtol)
        {
            return Err(fail("forward(inverse(x)) == x", i / dim, xr[i], xv[i]));
        }
    }
    let (ldf, ldi) = (ld_forward.to_vec(), ld_inverse.to_vec());
    for b in 0..batch {
        if !close(ldf[b], -ldi[b], options.log_det_rtol) {
            return Err(fail(
                "logdet_forward(z) == -logdet_inverse(forward(z))",
                b,
                ldf[b],
                -ldi[b],
            ));
        }
        let fd = FiniteDifferenceLogDet::at(flow, z, b, &xv[b * dim..(b + 1) * dim], options.h);
        let (log_abs_det, slack) = (fd.log_abs_det, fd.slack);
        if !close_with_slack(ldf[b], log_abs_det, options.log_det_rtol, slack) {
            return Err(fail(
                "logdet_forward(z) == log|det J| (finite differences)",
                b,
                ldf[b],
                log_abs_det,
            ));
        }
    }
    Ok(())
}

/// The Jacobian ∂x/∂z of `flow.forward` at sample `b` of `z`, by finite
/// differences: column j from f(z + k·h·eⱼ) for k in [`FD_STENCIL`], central
/// (f(z + h·eⱼ) − f(z − h·eⱼ)) / 2h where f is smooth, one-sided where a ReLU
/// inside the flow's networks changes sign within 2h of z (see
/// [`kink_aware_derivative`]). Shape `[D, D]` with D the number of elements
/// per sample.
pub fn finite_difference_jacobian(
    flow: &dyn Flow<f64>,
    z: &Tensor<f64>,
    b: usize,
    h: f64,
) -> Tensor<f64> {
    let sample_shape: Vec<usize> = std::iter::once(1)
        .chain(z.shape()[1..].iter().copied())
        .collect();
    let dim: usize = sample_shape.iter().product();
    let row = z.narrow(0, b, 1).to_vec();
    // The point itself, then 6 perturbed copies per column, as one batch.
    let points = 1 + FD_STENCIL.len() * dim;
    let mut batch = Vec::with_capacity(points * dim);
    batch.extend_from_slice(&row);
    for j in 0..dim {
        for k in FD_STENCIL {
            let mut p = row.clone();
            p[j] += k * h;
            batch.extend(p);
        }
    }
    let mut shape = sample_shape.clone();
    shape[0] = points;
    let (out, _) = flow.forward_tensor(&Tensor::from_vec(batch, &shape));
    let out = out.to_vec();
    let at = |point: usize, i: usize| out[point * dim + i];
    let mut jac = vec![0.0; dim * dim];
    for j in 0..dim {
        let first = 1 + FD_STENCIL.len() * j;
        for i in 0..dim {
            let values = std::array::from_fn(|k| at(first + k, i));
            jac[i * dim + j] = kink_aware_derivative(at(0, i), values, h);
        }
    }
    Tensor::from_vec(jac, &[dim, dim])
}

/// Gradient check of the training loss L = −mean log p(x) (standard normal
/// prior) with respect to every parameter of `flow`: the tape's gradient
/// against finite differences on each entry (central, or one-sided at a ReLU
/// kink: [`kink_aware_derivative`]), to `rtol` beyond the differences' own
/// error ([`kink_aware_derivative_with_error`]).
///
/// # Errors
/// The first mismatch: the parameter's name, the entry, both values.
pub fn gradcheck_params(
    flow: &mut dyn Flow<f64>,
    x: &Tensor<f64>,
    h: f64,
    rtol: f64,
) -> Result<(), String> {
    let prior = super::StandardNormal::new(x.numel() / x.dim(0));
    fn loss_of<'t>(
        flow: &dyn Flow<f64>,
        tape: &'t Tape<f64>,
        x: &Tensor<f64>,
        prior: super::StandardNormal,
    ) -> crate::autodiff::Var<'t, f64> {
        let (z, log_det) = flow.inverse(&tape.constant(x.clone()));
        let flat = z.reshape(&[x.dim(0), prior.dim]);
        prior.log_prob(&flat).add(&log_det).mean_all().neg()
    }
    let tape = Tape::new();
    let loss = loss_of(flow, &tape, x, prior);
    let grads = tape.backward(&loss);
    let analytic: Vec<Option<Tensor<f64>>> = flow.params().iter().map(|p| grads.of(p)).collect();
    drop(loss);
    let value = |flow: &dyn Flow<f64>| loss_of(flow, &Tape::no_grad(), x, prior).value().item();
    let f0 = value(flow);
    for (k, analytic_k) in analytic.iter().enumerate() {
        let originals = flow.params()[k].value.to_vec();
        let analytic_k = analytic_k.as_ref().map(|g| g.to_vec());
        for (j, &original) in originals.iter().enumerate() {
            let set = |flow: &mut dyn Flow<f64>, v: f64| {
                let p: &mut Param<f64> = flow.params_mut().swap_remove(k);
                p.value.as_mut_slice()[j] = v;
            };
            let values = FD_STENCIL.map(|step| {
                set(flow, original + step * h);
                value(flow)
            });
            set(flow, original);
            let (numeric, fd_error) = kink_aware_derivative_with_error(f0, values, h);
            let got = analytic_k.as_ref().map_or(0.0, |g| g[j]);
            let error = beyond_fd_error(got, numeric, fd_error);
            if error > rtol || error.is_nan() {
                return Err(format!(
                    "{}: gradient of parameter {} entry {j}: tape {got:.10e}, finite differences {numeric:.10e}",
                    flow.name(),
                    flow.params()[k].name
                ));
            }
        }
    }
    Ok(())
}

/// Replaces every parameter with N(0, scale²) noise, so a check does not run
/// only at the identity that zero-initialised layers start from.
pub fn randomize_params<R: Rng + ?Sized>(flow: &mut dyn Flow<f64>, scale: f64, rng: &mut R) {
    for p in flow.params_mut() {
        p.value = Tensor::randn(p.value.shape(), rng).mul_scalar(scale);
    }
}

/// What [`check_layers`] measured on one layer of a model, over the rows
/// it was given. Every error is relative, `|a − b| / max(1, |a|, |b|)`,
/// the measure of [`close`], and the largest over the rows.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerCheck {
    /// The layer's place: its index in the model's
    /// [`Sequential`](super::Sequential), then, inside a nested one, the
    /// index there (`[0, 3]`: layer 3 of layer 0).
    pub path: Vec<usize>,
    /// The layer's name (its kind).
    pub name: String,
    /// The round trip: `inverse(forward(z))` against `z`, element-wise.
    pub inverse_error: f64,
    /// The analytic log-det against log|det J| of the finite-difference
    /// Jacobian ∂x/∂z: the part of the difference beyond what the
    /// differences' round-off explains (see [`check_flow`]), relative.
    pub log_det_error: f64,
    /// `logdet_forward(z)` against `−logdet_inverse(forward(z))`.
    pub direction_error: f64,
    /// For autoregressive layers (`Maf`, `Iaf`, `SplineMaf`): the largest |Jᵢⱼ| that
    /// closes a cycle in the graph of the Jacobian's nonzero off-diagonal
    /// entries, relative to the largest |Jᵢⱼ|: 0 when the Jacobian is
    /// triangular in some order of the dimensions, as an autoregressive
    /// map's must be. `None` for other layers.
    pub triangularity_error: Option<f64>,
    /// Every error within `options`' tolerances (and finite).
    pub passed: bool,
}

/// Runs the proofs of [`check_flow`] on each layer of a trained model, at
/// the points each layer sees when the model evaluates the data rows `x`
/// (`[rows, …]` in the data space, f64): `x` is carried back through the
/// layers' inverses, and layer i is checked at its own input. A nested
/// [`Sequential`](super::Sequential) gets a row, then each of its layers
/// (see [`Flow::sublayers`]). Measures rather than stops at the first
/// failure, so every layer gets a row; rows come in forward order.
///
/// Cost: a finite-difference Jacobian (6·D + 1 forward passes) per row and
/// layer; a few rows suffice.
pub fn check_layers(
    layers: &[Box<dyn Flow<f64>>],
    x: &Tensor<f64>,
    options: CheckOptions,
) -> Vec<LayerCheck> {
    check_layers_given(layers, x, None, options)
}

/// [`check_layers`] for the layers of a conditional model, p(x | c): every
/// proof is run in x with the context held fixed, each row of `x` at its
/// own context row. The finite-difference Jacobian of row b is ∂x/∂z at
/// context cᵦ, against the log-det the layer computes at cᵦ, so a layer
/// whose log-det is wrong at some contexts fails there.
///
/// `c` is what the layers read: the context itself, or for a model with a
/// learned embedding its features e = NN(c)
/// ([`FlowModel::context_features`](super::FlowModel::context_features)).
/// A layer that reads no context ignores it; `None` is [`check_layers`].
///
/// # Shapes
/// x `[rows, …]` in the data space; c `[rows, context_dim]` (row b the
/// context of row b) or `[1, context_dim]` (one for every row).
///
/// # Panics
/// If c has neither 1 nor `rows` rows, naming both shapes; as the layers'
/// `forward_with_context` if its width is not theirs.
///
/// # Derivation
/// [`derivations::conditioning`](crate::derivations::conditioning)
/// (docs/derivations/conditioning.md): each layer is a bijection in x for
/// every fixed c, with the log-det in x alone.
///
/// # Examples
/// ```
/// use flowzoo::flows::check::{check_layers_given, CheckOptions};
/// use flowzoo::flows::{AffineCoupling, Flow, Mask};
/// use flowzoo::tensor::Tensor;
/// use rand::SeedableRng;
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let layer = AffineCoupling::<f64>::conditional(Mask::half(2, false), 8, 1, &mut rng);
/// let layers: Vec<Box<dyn Flow<f64>>> = vec![Box::new(layer)];
/// let x = Tensor::from_vec(vec![0.5, -1.0, 2.0, 0.3], &[2, 2]);
/// let c = Tensor::from_vec(vec![-1.0, 3.0], &[2, 1]); // one context per row
/// let checks = check_layers_given(&layers, &x, Some(&c), CheckOptions::default());
/// assert!(checks[0].passed);
/// ```
pub fn check_layers_given(
    layers: &[Box<dyn Flow<f64>>],
    x: &Tensor<f64>,
    c: Option<&Tensor<f64>>,
    options: CheckOptions,
) -> Vec<LayerCheck> {
    if let Some(c) = c {
        assert!(
            c.ndim() == 2 && (c.dim(0) == 1 || c.dim(0) == x.dim(0)),
            "check_layers_given: the context must be [1, k] or [{}, k] for x {:?}, got {:?}",
            x.dim(0),
            x.shape(),
            c.shape()
        );
    }
    let mut checks = Vec::with_capacity(layers.len());
    check_into(layers, x, c, &[], options, &mut checks);
    checks.sort_by(|a, b| a.path.cmp(&b.path));
    checks
}

/// A layer seen at fixed context rows, as a flow in its variable alone:
/// `context` (`[rows, k]`, row b for sample b, or `[1, k]` for every
/// sample) goes to its conditioners; with none, the layer itself. Unlike
/// [`AtContext`](super::context::AtContext) it borrows the layer, so the
/// layers of a loaded model are checked in place.
struct Given<'a> {
    layer: &'a dyn Flow<f64>,
    context: Option<Tensor<f64>>,
}

impl Given<'_> {
    /// The same layer at row b's context only (`[1, k]`), for the
    /// finite-difference batch of that row.
    fn row(&self, b: usize) -> Self {
        Given {
            layer: self.layer,
            context: self.context.as_ref().map(|c| match c.dim(0) {
                1 => c.clone(),
                _ => c.narrow(0, b, 1).contiguous(),
            }),
        }
    }

    /// The context on `v`'s tape, one row per sample of `v`.
    fn context_for<'t>(&self, v: &Var<'t, f64>) -> Option<Var<'t, f64>> {
        let c = self.context.as_ref()?;
        let rows = v.shape()[0];
        Some(v.constant(if c.dim(0) == rows {
            c.clone()
        } else {
            c.broadcast_to(&[rows, c.dim(1)]).contiguous()
        }))
    }
}

impl Flow<f64> for Given<'_> {
    fn name(&self) -> String {
        self.layer.name()
    }

    fn per_sample(&self) -> bool {
        self.layer.per_sample()
    }

    fn forward<'t>(&self, z: &Var<'t, f64>) -> (Var<'t, f64>, Var<'t, f64>) {
        match self.context_for(z) {
            Some(c) => self.layer.forward_with_context(z, Some(&c)),
            None => self.layer.forward(z),
        }
    }

    fn inverse<'t>(&self, x: &Var<'t, f64>) -> (Var<'t, f64>, Var<'t, f64>) {
        match self.context_for(x) {
            Some(c) => self.layer.inverse_with_context(x, Some(&c)),
            None => self.layer.inverse(x),
        }
    }
}

/// [`check_layers_given`] on `layers` under the path `prefix`, into `checks`.
fn check_into(
    layers: &[Box<dyn Flow<f64>>],
    x: &Tensor<f64>,
    c: Option<&Tensor<f64>>,
    prefix: &[usize],
    options: CheckOptions,
    checks: &mut Vec<LayerCheck>,
) {
    let relative = |a: f64, b: f64| {
        let e = (a - b).abs() / 1f64.max(a.abs()).max(b.abs());
        if e.is_nan() {
            f64::INFINITY
        } else {
            e
        }
    };
    let worst = |pairs: &mut dyn Iterator<Item = (f64, f64)>| {
        pairs.map(|(a, b)| relative(a, b)).fold(0.0, f64::max)
    };
    let mut v = x.clone();
    for (index, boxed) in layers.iter().enumerate().rev() {
        let path: Vec<usize> = prefix.iter().copied().chain([index]).collect();
        if !boxed.sublayers().is_empty() {
            check_into(boxed.sublayers(), &v, c, &path, options, checks);
        }
        let layer = Given {
            layer: boxed.as_ref(),
            context: c.cloned(),
        };
        let (z, _) = layer.inverse_tensor(&v);
        let (x_out, ld_forward) = layer.forward_tensor(&z);
        let (z_back, ld_inverse) = layer.inverse_tensor(&x_out);
        let inverse_error = worst(&mut z_back.to_vec().into_iter().zip(z.to_vec()));
        let ldf = ld_forward.to_vec();
        let direction_error =
            worst(&mut ldf.iter().zip(ld_inverse.to_vec()).map(|(a, b)| (*a, -b)));
        let mut log_det_error: f64 = 0.0;
        let mut triangularity: Option<f64> = None;
        let autoregressive = matches!(layer.name().as_str(), "Maf" | "Iaf" | "SplineMaf");
        let (xv, dim) = (x_out.to_vec(), x_out.numel() / x_out.dim(0).max(1));
        for (b, &ld) in ldf.iter().enumerate() {
            let x_row = &xv[b * dim..(b + 1) * dim];
            let fd = FiniteDifferenceLogDet::at(&layer.row(b), &z, b, x_row, options.h);
            let (jac, log_abs_det, slack) = (fd.jacobian, fd.log_abs_det, fd.slack);
            // The error beyond what round-off explains, relative as above.
            let difference = (ld - log_abs_det).abs();
            let error = if difference.is_nan() {
                f64::INFINITY
            } else {
                (difference - slack).max(0.0) / 1f64.max(ld.abs()).max(log_abs_det.abs())
            };
            log_det_error = log_det_error.max(error);
            if autoregressive {
                let t = cycle_weight(&jac);
                triangularity = Some(triangularity.unwrap_or(0.0).max(t));
            }
        }
        let passed = inverse_error <= options.inverse_rtol
            && log_det_error <= options.log_det_rtol
            && direction_error <= options.log_det_rtol
            && triangularity.is_none_or(|t| t <= options.log_det_rtol);
        checks.push(LayerCheck {
            path,
            name: layer.name(),
            inverse_error,
            log_det_error,
            direction_error,
            triangularity_error: triangularity,
            passed,
        });
        v = z;
    }
}

/// The smallest threshold t such that the off-diagonal entries of `jac`
/// with |Jᵢⱼ| > t form an acyclic dependency graph (i depends on j), relative
/// to the largest |Jᵢⱼ|: 0 for a matrix triangular under some
/// permutation. Found by removing the weakest edge until the graph has an
/// order (Kahn's algorithm), which for the near-triangular matrices of a
/// healthy layer takes one pass.
fn cycle_weight(jac: &Tensor<f64>) -> f64 {
    let n = jac.dim(0);
    let j = jac.to_vec();
    let scale = j
        .iter()
        .fold(0.0f64, |m, v| m.max(v.abs()))
        .max(f64::MIN_POSITIVE);
    let mut edges: Vec<(f64, usize, usize)> = (0..n)
        .flat_map(|r| (0..n).map(move |c| (r, c)))
        .filter(|&(r, c)| r != c)
        .map(|(r, c)| (j[r * n + c].abs() / scale, r, c))
        .filter(|e| e.0 > 0.0)
        .collect();
    edges.sort_by(|a, b| a.0.total_cmp(&b.0));
    let acyclic = |edges: &[(f64, usize, usize)]| {
        let mut indegree = vec![0usize; n];
        let mut out: Vec<Vec<usize>> = vec![Vec::new(); n];
        for &(_, r, c) in edges {
            indegree[r] += 1;
            out[c].push(r);
        }
        let mut ready: Vec<usize> = (0..n).filter(|&i| indegree[i] == 0).collect();
        let mut seen = 0;
        while let Some(i) = ready.pop() {
            seen += 1;
            for &r in &out[i] {
                indegree[r] -= 1;
                if indegree[r] == 0 {
                    ready.push(r);
                }
            }
        }
        seen == n
    };
    // Drop the weakest edges until the rest is acyclic; the last dropped is
    // the weight of the cycle.
    let mut dropped = 0.0;
    for k in 0..=edges.len() {
        if acyclic(&edges[k..]) {
            return dropped;
        }
        dropped = edges[k].0;
    }
    dropped
}

#[cfg(test)]
mod tests {
    use super::{cycle_weight, round_off_slack, CheckOptions};
    use crate::tensor::Tensor;

    #[test]
    fn round_off_slack_is_negligible_when_well_conditioned_and_grows_as_the_inverse() {
        let h = CheckOptions::default().h;
        let identity = Tensor::from_vec(vec![1.0, 0.0, 0.0, 1.0], &[2, 2]);
        let slack = round_off_slack(&identity, &[3.0, -2.0], h);
        assert!(slack > 0.0 && slack < 1e-9, "{slack:e}");
        // diag(1, 1e-7): ‖J⁻¹‖_F ≈ 1e7 against √2 for the identity.
        let flat = Tensor::from_vec(vec![1.0, 0.0, 0.0, 1e-7], &[2, 2]);
        let ratio = round_off_slack(&flat, &[3.0, -2.0], h) / slack;
        assert!((ratio * 2f64.sqrt() / 1e7 - 1.0).abs() < 1e-6, "{ratio:e}");
        let singular = Tensor::from_vec(vec![1.0, 2.0, 2.0, 4.0], &[2, 2]);
        assert_eq!(round_off_slack(&singular, &[1.0, 1.0], h), 0.0);
    }

    #[test]
    fn cycle_weight_is_zero_exactly_for_matrices_triangular_in_some_order() {
        // Lower triangular in the order (2, 0, 1): x2 first, then x0, then x1.
        let j = Tensor::from_vec(vec![2.0, 0.0, 0.7, 0.3, 1.0, 0.5, 0.0, 0.0, 4.0], &[3, 3]);
        assert_eq!(cycle_weight(&j), 0.0);
        let diagonal = Tensor::from_vec(vec![1.0, 0.0, 0.0, 3.0], &[2, 2]);
        assert_eq!(cycle_weight(&diagonal), 0.0);
    }

    #[test]
    fn cycle_weight_is_the_weakest_link_of_a_cycle_relative_to_the_largest_entry() {
        // x0 ← x1 (0.5) and x1 ← x0 (0.25): a cycle broken by its 0.25 edge.
        let j = Tensor::from_vec(vec![2.0, 0.5, 0.25, 1.0], &[2, 2]);
        assert_eq!(cycle_weight(&j), 0.25 / 2.0);
    }
}
