//! [`InvConv1x1`]: Glow's invertible 1×1 convolution, a learned linear map
//! of the channels applied at every pixel, in its plain and LU forms.

use super::error::FlowError;
use super::flow::Flow;
use super::spec::{self, LayerSpec, SpecValue};
use crate::autodiff::{Param, Tape, Var};
use crate::tensor::linalg::{self, Diagonal, Triangle};
use crate::tensor::math;
use crate::tensor::{Element, Tensor};
use rand::Rng;

/// How an [`InvConv1x1`] holds its C×C matrix W.
#[derive(Clone, Debug)]
#[allow(clippy::large_enum_variant)] // one per layer; boxing would only add an indirection
pub enum InvConvWeight<T: Element> {
    /// W itself, `[C, C]`; log|det W| by LU every step (O(C³)), W⁻¹ by LU.
    Plain {
        /// W.
        weight: Param<T>,
    },
    /// W = P·L·(U + diag(s)) with P a fixed permutation, L unit lower
    /// triangular, U strictly upper triangular, s = sign ⊙ exp(log_s):
    /// log|det W| = Σ log|sᵢ| costs O(C), and W⁻¹ is two triangular solves.
    Lu {
        /// P, `[C, C]`, fixed.
        permutation: Tensor<T>,
        /// L's strictly lower entries (the rest of the tensor is not used), `[C, C]`.
        lower: Param<T>,
        /// U's strictly upper entries (the rest is not used), `[C, C]`.
        upper: Param<T>,
        /// log|sᵢ|, `[C]`.
        log_s: Param<T>,
        /// The signs of s, fixed, `[C]`.
        sign_s: Tensor<T>,
    },
}

/// The invertible 1×1 convolution of Glow: at every pixel, the channel
/// vector is multiplied by a learned C×C matrix W,
///
/// forward x[b, :, h, w] = W·z[b, :, h, w],  log|det ∂x/∂z| = H·W_px·log|det W|
///
/// (the Jacobian is block-diagonal with one copy of W per pixel; H·W_px is the
/// number of pixels, 1 for vectors); inverse z = W⁻¹·x, log-det the negative.
/// It generalises the fixed channel permutation of RealNVP to a learned one.
///
/// Two parameterisations ([`InvConvWeight`]): the plain matrix, whose
/// log-determinant is an LU factorisation per step, and Glow's LU form
/// W = P·L·(U + diag(s)), whose log-determinant is Σ log|sᵢ|. Both start
/// from a random rotation (Q of the QR factorisation of a Gaussian matrix),
/// so log|det W| = 0 at the start; the LU form keeps P and the signs of s
/// fixed from that start.
///
/// # Shapes
/// `[batch, channels]` or `[batch, channels, height, width]`, same shape out;
/// log-det `[batch]`.
///
/// # Units
/// Log-dets in nats.
///
/// # Panics
/// If the input's axis 1 is not `channels`, naming the layer and both shapes.
///
/// # Source
/// D. P. Kingma, P. Dhariwal, "Glow: Generative Flow with Invertible 1x1
/// Convolutions", NeurIPS 2018, arXiv:1807.03039, §3.2 (and its LU
/// decomposition paragraph), table 1.
///
/// # Derivation
/// [`derivations::glow`, "The invertible 1×1 convolution"](crate::derivations::glow#the-invertible-11-convolution)
/// (docs/derivations/glow.md): the block-diagonal Jacobian, the plain and
/// LU forms of log|det W|, and the random-rotation start.
///
/// # Examples
/// ```
/// use flowzoo::flows::{inv_conv::InvConv1x1, Flow};
/// use flowzoo::tensor::Tensor;
/// use rand::SeedableRng;
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let layer = InvConv1x1::<f64>::new_lu(4, &mut rng);
/// let z = Tensor::randn(&[2, 4, 3, 3], &mut rng);
/// let (x, log_det) = layer.forward_tensor(&z);
/// assert!(log_det.to_vec().iter().all(|l| l.abs() < 1e-12)); // a rotation
/// let (z_back, _) = layer.inverse_tensor(&x);
/// assert!(z.sub(&z_back).to_vec().iter().all(|d| d.abs() < 1e-12));
/// ```
#[derive(Clone, Debug)]
pub struct InvConv1x1<T: Element> {
    /// The number of channels C.
    pub channels: usize,
    /// W, plain or in LU form.
    pub weight: InvConvWeight<T>,
}

/// A random C×C rotation: Q of the QR factorisation of a matrix of N(0, 1)
/// entries (modified Gram-Schmidt on its columns), in f64.
fn random_rotation<R: Rng + ?Sized>(channels: usize, rng: &mut R) -> Tensor<f64> {
    let n = channels;
    let a = Tensor::<f64>::randn(&[n, n], rng).to_vec();
    // columns[j] = column j of A, orthonormalised in place.
    let mut columns: Vec<Vec<f64>> = (0..n)
        .map(|j| (0..n).map(|i| a[i * n + j]).collect())
        .collect();
    for j in 0..n {
        for k in 0..j {
            let (done, rest) = columns.split_at_mut(j);
            let (column, basis) = (&mut rest[0], &done[k]);
            let dot: f64 = column.iter().zip(basis).map(|(a, b)| a * b).sum();
            column
                .iter_mut()
                .zip(basis)
                .for_each(|(a, b)| *a -= dot * b);
        }
        let norm = columns[j].iter().map(|v| v * v).sum::<f64>().sqrt();
        columns[j].iter_mut().for_each(|v| *v /= norm);
    }
    let data = (0..n * n).map(|at| columns[at % n][at / n]).collect();
    Tensor::from_vec(data, &[n, n])
}

/// The 0/1 matrix with ones strictly below (`lower`) or above the diagonal.
fn strict_triangle<T: Element>(n: usize, lower: bool) -> Tensor<T> {
    let data = (0..n * n)
        .map(|at| {
            let (i, j) = (at / n, at % n);
            if (lower && i > j) || (!lower && i < j) {
                T::ONE
            } else {
                T::ZERO
            }
        })
        .collect();
    Tensor::from_vec(data, &[n, n])
}

/// The identity matrix.
fn eye<T: Element>(n: usize) -> Tensor<T> {
    let data = (0..n * n)
        .map(|at| if at / n == at % n { T::ONE } else { T::ZERO })
        .collect();
    Tensor::from_vec(data, &[n, n])
}

/// The LU form of the invertible `w` (f64): P·L·U by LU with partial
/// pivoting, s = diag(U) kept as log|s| and its signs.
fn lu_form<T: Element>(w: &Tensor<f64>) -> InvConvWeight<T> {
    let n = w.dim(0);
    let factors = linalg::lu(w);
    let upper = factors.upper().to_vec();
    let s: Vec<f64> = (0..n).map(|i| upper[i * n + i]).collect();
    let log_s: Vec<f64> = s.iter().map(|v| math::ln(v.abs())).collect();
    let sign_s: Vec<f64> = s.iter().map(|v| v.signum()).collect();
    let strict_lower = factors.lower().mul(&strict_triangle(n, true));
    let strict_upper = factors.upper().mul(&strict_triangle(n, false));
    InvConvWeight::Lu {
        permutation: factors.permutation().cast::<T>(),
        lower: Param::new("lower", strict_lower.cast::<T>()),
        upper: Param::new("upper", strict_upper.cast::<T>()),
        log_s: Param::new("log_s", Tensor::from_f64_slice(&log_s, &[n])),
        sign_s: Tensor::from_f64_slice(&sign_s, &[n]),
    }
}

/// C for a `[C, C]` weight, C ≥ 1.
fn square_size<T: Element>(weight: &Tensor<T>) -> Result<usize, FlowError> {
    match weight.shape() {
        &[n, m] if n == m && n > 0 => Ok(n),
        shape => Err(FlowError::BadSpec {
            at: Default::default(),
            layer: "InvConv1x1".into(),
            field: "weight".into(),
            what: format!("shape {shape:?} is not a non-empty square matrix"),
        }),
    }
}

/// κ₁(W) = ‖W‖₁·‖W⁻¹‖₁ (‖·‖₁ the largest column sum of |entries|), ∞ when
/// W is exactly singular or its inverse overflows.
fn condition_number(w: &Tensor<f64>) -> f64 {
    let n = w.dim(0);
    let norm = |m: &[f64]| {
        (0..n)
            .map(|j| (0..n).map(|i| m[i * n + j].abs()).sum::<f64>())
            .fold(0.0, f64::max)
    };
    match linalg::inverse(w) {
        Some(inv) => {
            let k = norm(&w.to_vec()) * norm(&inv.to_vec());
            if k.is_nan() {
                f64::INFINITY
            } else {
                k
            }
        }
        None => f64::INFINITY,
    }
}

impl<T: Element> InvConv1x1<T> {
    /// The plain form over `channels` channels, W a random rotation.
    pub fn new<R: Rng + ?Sized>(channels: usize, rng: &mut R) -> Self {
        let q = random_rotation(channels, rng).cast::<T>();
        InvConv1x1 {
            channels,
            weight: InvConvWeight::Plain {
                weight: Param::new("weight", q),
            },
        }
    }

    /// The LU form over `channels` channels: a random rotation factored as
    /// P·L·U by LU with partial pivoting, s = diag(U).
    pub fn new_lu<R: Rng + ?Sized>(channels: usize, rng: &mut R) -> Self {
        let q = random_rotation(channels, rng);
        InvConv1x1 {
            channels,
            weight: lu_form(&q),
        }
    }

    /// The plain form with W = `weight` (`[C, C]`), checked as
    /// [`InvConv1x1::check_weight`] checks it.
    ///
    /// # Errors
    /// [`FlowError::BadSpec`] (field `weight`) if `weight` is not a
    /// non-empty square matrix, holds a NaN or infinity, or is singular in
    /// `T` (see [`InvConv1x1::check_weight`]).
    pub fn from_weight(weight: &Tensor<T>) -> Result<Self, FlowError> {
        let channels = square_size(weight)?;
        let layer = InvConv1x1 {
            channels,
            weight: InvConvWeight::Plain {
                weight: Param::new("weight", weight.contiguous()),
            },
        };
        layer.check_weight()?;
        Ok(layer)
    }

    /// The LU form of W = `weight` (`[C, C]`): factored in f64 as P·L·U by LU
    /// with partial pivoting, s = diag(U), P and the signs of s fixed from
    /// here on.
    ///
    /// # Errors
    /// As [`InvConv1x1::from_weight`].
    pub fn from_weight_lu(weight: &Tensor<T>) -> Result<Self, FlowError> {
        let channels = square_size(weight)?;
        let w = weight.cast::<f64>();
        let layer = if w.all_finite() && !linalg::lu(&w).is_singular() {
            InvConv1x1 {
                channels,
                weight: lu_form(&w),
            }
        } else {
            // Checked as the plain matrix it is, which names what is wrong.
            InvConv1x1::from_weight(weight)?
        };
        layer.check_weight()?;
        Ok(layer)
    }

    /// Checks that W is usable in `T`: every parameter finite, and W far
    /// from singular, its condition number κ₁(W) = ‖W‖₁·‖W⁻¹‖₁ (computed
    /// in f64 from the values the layer holds; for the LU form from
    /// P·L·(U + diag s), s = sign ⊙ exp(log_s) evaluated in `T`) below
    /// 1/ε of `T` (8.4e6 for f32, 4.5e15 for f64). At or beyond it W is
    /// singular to `T`'s precision (LAPACK's test): log|det W| is dominated
    /// by rounding or infinite, W⁻¹ has no correct digit or is NaN. A
    /// checkpoint's loader runs this once the parameters are filled (through
    /// [`Flow::set_buffers`]), and [`Flow::validate`] runs it on demand.
    ///
    /// # Errors
    /// [`FlowError::BadSpec`] naming the parameter that holds a NaN or
    /// infinity, or field `weight` with W's condition number (∞ for a zero
    /// pivot) and, for the LU form, the smallest |sᵢ|.
    pub fn check_weight(&self) -> Result<(), FlowError> {
        let n = self.channels;
        let bad = |field: &str, what: String| FlowError::BadSpec {
            at: Default::default(),
            layer: "InvConv1x1".into(),
            field: field.into(),
            what,
        };
        for p in self.params() {
            if let Some(v) = p.value.to_f64_vec().into_iter().find(|v| !v.is_finite()) {
                return Err(bad(&p.name, format!("holds {v}")));
            }
        }
        let (w, smallest_s) = match &self.weight {
            InvConvWeight::Plain { weight } => (weight.value.cast::<f64>(), None),
            InvConvWeight::Lu {
                permutation,
                lower,
                upper,
                log_s,
                sign_s,
            } => {
                // s in T, as the layer computes it: e^log_s may underflow to 0
                // or overflow to ∞ there.
                let s: Vec<f64> = log_s.value.exp().mul(sign_s).to_f64_vec();
                let l = lower
                    .value
                    .cast::<f64>()
                    .mul(&strict_triangle(n, true))
                    .add(&eye(n));
                let mut u = upper
                    .value
                    .cast::<f64>()
                    .mul(&strict_triangle(n, false))
                    .to_vec();
                for (i, &si) in s.iter().enumerate() {
                    u[i * n + i] = si;
                }
                let u = Tensor::from_vec(u, &[n, n]);
                let w = permutation.cast::<f64>().matmul(&l).matmul(&u);
                let smallest = s.iter().fold(f64::INFINITY, |m, v| m.min(v.abs()));
                (w, Some(smallest))
            }
        };
        let limit = 1.0 / T::EPSILON.to_f64();
        let condition = condition_number(&w);
        if condition < limit {
            return Ok(());
        }
        let diagonal = match smallest_s {
            Some(s) => format!(" (W = P·L·(U + diag s), smallest |sᵢ| = {s:.3e})"),
            None => String::new(),
        };
        let condition = if condition.is_finite() {
            format!("{condition:.3e}")
        } else {
            "∞ (a zero pivot: det W = 0 to working precision)".to_string()
        };
        let what = format!(
            "the weight W is singular in {}{diagonal}: its condition number \
             ‖W‖₁·‖W⁻¹‖₁ = {condition} is at least 1/ε = {limit:.3e}, so log|det W| \
             and W⁻¹ are rounding noise or infinite",
            T::NAME
        );
        Err(bad("weight", what))
    }

    /// The layer a spec of kind `InvConv1x1` describes, with placeholder
    /// parameters (W = 0, or L = U = 0 and log s = 0) for the loader to fill.
    /// The LU form's P is rebuilt from `permutation` (row i has its 1 in
    /// column `permutation[i]`) and its signs from `sign_s`. Once the loader
    /// has filled the parameters, [`Flow::set_buffers`] refuses a weight
    /// that is singular ([`InvConv1x1::check_weight`]).
    ///
    /// # Errors
    /// [`FlowError::BadSpec`] naming the field: `channels` not a size
    /// or the matrices over [`spec::MAX_LAYER_ELEMENTS`] scalars, `permutation` not a
    /// permutation of 0..C, `sign_s` not C entries of ±1.
    pub fn from_spec(spec: &LayerSpec) -> Result<Self, FlowError> {
        let n = spec::size(spec, "channels")?;
        let lu = spec.bool("lu")?;
        // plain: W; LU: P, L, U and log s
        let matrices = if lu { 3 } else { 1 };
        let elements = n
            .checked_mul(n)
            .and_then(|m| m.checked_mul(matrices))
            .and_then(|m| m.checked_add(n));
        spec::check_elements(spec, "channels", elements)?;
        let weight = if lu {
            let perm = spec::permutation(spec, "permutation", Some(n))?;
            let mut p = vec![0.0; n * n];
            for (row, &column) in perm.iter().enumerate() {
                p[row * n + column] = 1.0;
            }
            let signs = spec.ints("sign_s")?;
            if signs.len() != n || signs.iter().any(|s| s.abs() != 1) {
                return Err(spec.error("sign_s", format!("expected {n} entries of ±1")));
            }
            let signs: Vec<f64> = signs.iter().map(|&s| s as f64).collect();
            InvConvWeight::Lu {
                permutation: Tensor::from_f64_slice(&p, &[n, n]),
                lower: Param::new("lower", Tensor::zeros(&[n, n])),
                upper: Param::new("upper", Tensor::zeros(&[n, n])),
                log_s: Param::new("log_s", Tensor::zeros(&[n])),
                sign_s: Tensor::from_f64_slice(&signs, &[n]),
            }
        } else {
            InvConvWeight::Plain {
                weight: Param::new("weight", Tensor::zeros(&[n, n])),
            }
        };
        Ok(InvConv1x1 {
            channels: n,
            weight,
        })
    }

    /// U + diag(s) of the LU form, on `tape`.
    fn upper_with_diagonal<'t>(
        &self,
        tape: &'t Tape<T>,
        upper: &Param<T>,
        log_s: &Param<T>,
        sign_s: &Tensor<T>,
    ) -> Var<'t, T> {
        let n = self.channels;
        // diag(s)ᵢⱼ = Iᵢⱼ·sⱼ, s = sign ⊙ exp(log_s)
        let s = tape.param(log_s).exp().mul(&tape.constant(sign_s.clone()));
        let diagonal = tape.constant(eye(n)).mul(&s.reshape(&[1, n]));
        tape.param(upper)
            .mul(&tape.constant(strict_triangle(n, false)))
            .add(&diagonal)
    }

    /// W (or W⁻¹, when `inverse`) and log|det W|, on `tape`.
    fn matrix<'t>(&self, tape: &'t Tape<T>, inverse: bool) -> (Var<'t, T>, Var<'t, T>) {
        let n = self.channels;
        match &self.weight {
            InvConvWeight::Plain { weight } => {
                let w = tape.param(weight);
                let (_, log_abs_det) = w.slogdet();
                (if inverse { w.inverse() } else { w }, log_abs_det)
            }
            InvConvWeight::Lu {
                permutation,
                lower,
                upper,
                log_s,
                sign_s,
            } => {
                let l_strict = tape.param(lower);
                let u = self.upper_with_diagonal(tape, upper, log_s, sign_s);
                let matrix = if inverse {
                    // W⁻¹ = (U + diag s)⁻¹·L⁻¹·Pᵀ: a unit-lower solve, then an
                    // upper one; the unit-lower solve reads only the strictly
                    // lower entries.
                    let l_inv_pt = l_strict.solve_triangular(
                        &tape.constant(permutation.t().contiguous()),
                        Triangle::Lower,
                        Diagonal::Unit,
                    );
                    u.solve_triangular(&l_inv_pt, Triangle::Upper, Diagonal::NonUnit)
                } else {
                    // W = P·L·(U + diag s), L = (strictly lower part) + I
                    let l = l_strict
                        .mul(&tape.constant(strict_triangle(n, true)))
                        .add(&tape.constant(eye(n)));
                    tape.constant(permutation.clone()).matmul(&l).matmul(&u)
                };
                // log|det W| = log|det P| + log|det L| + Σ log|sᵢ| = Σ log|sᵢ|
                (matrix, tape.param(log_s).sum_all())
            }
        }
    }

    /// `matrix` applied to the channel vector of every pixel of `v`, and the
    /// number of pixels.
    fn apply<'t>(&self, v: &Var<'t, T>, matrix: &Var<'t, T>) -> (Var<'t, T>, usize) {
        let shape = v.shape();
        assert!(
            (shape.len() == 2 || shape.len() == 4) && shape[1] == self.channels,
            "InvConv1x1: expected [batch, {c}] or [batch, {c}, height, width], got {shape:?}",
            c = self.channels
        );
        let c = self.channels;
        if shape.len() == 2 {
            // rows are channel vectors: x = z·Wᵀ
            (v.matmul(&matrix.transpose(0, 1)), 1)
        } else {
            // a 1×1 convolution with kernel W[o, c]
            let kernel = matrix.reshape(&[c, c, 1, 1]);
            (v.conv2d(&kernel, None, 0), shape[2] * shape[3])
        }
    }
}

impl<T: Element> Flow<T> for InvConv1x1<T> {
    fn name(&self) -> String {
        match self.weight {
            InvConvWeight::Plain { .. } => "InvConv1x1".into(),
            InvConvWeight::Lu { .. } => "InvConv1x1(LU)".into(),
        }
    }

    fn per_sample(&self) -> bool {
        true
    }

    fn forward<'t>(&self, z: &Var<'t, T>) -> (Var<'t, T>, Var<'t, T>) {
        let (w, log_abs_det) = self.matrix(z.tape(), false);
        let (x, pixels) = self.apply(z, &w);
        // log|det| = (pixels)·log|det W|
        let log_det = log_abs_det
            .mul_scalar(T::from_f64(pixels as f64))
            .reshape(&[1])
            .broadcast_to(&[z.shape()[0]]);
        (x, log_det)
    }

    fn inverse<'t>(&self, x: &Var<'t, T>) -> (Var<'t, T>, Var<'t, T>) {
        let (w_inv, log_abs_det) = self.matrix(x.tape(), true);
        let (z, pixels) = self.apply(x, &w_inv);
        let log_det = log_abs_det
            .mul_scalar(T::from_f64(-(pixels as f64)))
            .reshape(&[1])
            .broadcast_to(&[x.shape()[0]]);
        (z, log_det)
    }

    /// No buffers; called by the checkpoint loader after the parameters are
    /// filled, so it checks the weight they make ([`InvConv1x1::check_weight`]).
    fn set_buffers(&mut self, buffers: Vec<(String, Tensor<T>)>) -> Result<(), FlowError> {
        spec::take_buffers(&self.name(), buffers, &[])?;
        self.check_weight()
    }

    /// [`InvConv1x1::check_weight`].
    fn validate(&self) -> Result<(), FlowError> {
        self.check_weight()
    }

    /// `channels` and `lu`; the LU form adds its fixed P as `permutation`
    /// (the column of the 1 in each row) and the signs of s as `sign_s`.
    fn to_spec(&self) -> Option<LayerSpec> {
        let spec = LayerSpec::new("InvConv1x1").with("channels", self.channels);
        Some(match &self.weight {
            InvConvWeight::Plain { .. } => spec.with("lu", false),
            InvConvWeight::Lu {
                permutation,
                sign_s,
                ..
            } => {
                let n = self.channels;
                let p = permutation.to_f64_vec();
                let perm: Vec<usize> = (0..n)
                    .map(|row| {
                        (0..n)
                            .find(|&column| p[row * n + column] == 1.0)
                            .expect("P is a permutation matrix")
                    })
                    .collect();
                let signs = sign_s.to_f64_vec().iter().map(|&s| s as i64).collect();
                spec.with("lu", true)
                    .with("permutation", perm)
                    .with("sign_s", SpecValue::Ints(signs))
            }
        })
    }

    fn params(&self) -> Vec<&Param<T>> {
        match &self.weight {
            InvConvWeight::Plain { weight } => vec![weight],
            InvConvWeight::Lu {
                lower,
                upper,
                log_s,
                ..
            } => vec![lower, upper, log_s],
        }
    }

    fn params_mut(&mut self) -> Vec<&mut Param<T>> {
        match &mut self.weight {
            InvConvWeight::Plain { weight } => vec![weight],
            InvConvWeight::Lu {
                lower,
                upper,
                log_s,
                ..
            } => vec![lower, upper, log_s],
        }
    }
}
