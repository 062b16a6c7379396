//! Hand-derived gradients for every recorded op, the derivative written next
//! to the numbers; then evaluation without a tape, and the optimisers against
//! their published updates on a few steps computed by hand.
//!
//! The property tests (`cargo test --release --test proptests autodiff_ops::`)
//! check the same ops against finite differences on random shapes; these
//! tests pin exact values a reader can verify on paper.

use flowzoo::autodiff::{Gradients, Param, Tape, Var};
use flowzoo::nn::optim::{clip_grad_norm, Adam, AdamW, LrSchedule, Sgd};
use flowzoo::tensor::linalg::{Diagonal, Triangle};
use flowzoo::tensor::Tensor;

fn t(data: &[f64], shape: &[usize]) -> Tensor<f64> {
    Tensor::from_vec(data.to_vec(), shape)
}

/// Asserts `got` equals `expected` entry by entry to 1e-12 (relative, floor 1).
fn assert_close(what: &str, got: &Tensor<f64>, expected: &[f64]) {
    let got = got.to_vec();
    assert_eq!(got.len(), expected.len(), "{what}: lengths differ");
    for (i, (g, e)) in got.iter().zip(expected).enumerate() {
        assert!(
            (g - e).abs() <= 1e-12 * 1f64.max(g.abs()).max(e.abs()),
            "{what}: entry {i}: got {g:.15e}, expected {e:.15e}"
        );
    }
}

/// The gradient of `f` (a one-element loss) with respect to each input.
fn grads_of(
    inputs: Vec<Tensor<f64>>,
    f: impl for<'t> Fn(&[Var<'t, f64>]) -> Var<'t, f64>,
) -> Vec<Tensor<f64>> {
    let tape = Tape::new();
    let vars: Vec<Var<f64>> = inputs.iter().map(|x| tape.leaf(x.clone())).collect();
    let loss = f(&vars);
    let grads: Gradients<f64> = tape.backward(&loss);
    vars.iter()
        .map(|v| grads.wrt(v).expect("the loss depends on every input"))
        .collect()
}

// ---- element-wise, binary -------------------------------------------------

#[test]
fn add_sends_the_gradient_to_both_and_sums_a_broadcast_operand() {
    // y = Σᵢⱼ (aᵢⱼ + bⱼ), a: [2, 3], b: [3] broadcast over the rows:
    // ∂y/∂aᵢⱼ = 1, ∂y/∂bⱼ = Σᵢ 1 = 2.
    let g = grads_of(
        vec![
            t(&[1., 2., 3., 4., 5., 6.], &[2, 3]),
            t(&[7., 8., 9.], &[3]),
        ],
        |v| v[0].add(&v[1]).sum_all(),
    );
    assert_close("ā", &g[0], &[1.; 6]);
    assert_close("b̄", &g[1], &[2.; 3]);
}

#[test]
fn sub_negates_the_gradient_of_the_right_operand() {
    // y = Σ (a − b) with b: [2, 1] broadcast along the columns of a: [2, 2]:
    // ∂y/∂a = 1, ∂y/∂bᵢ = −2.
    let g = grads_of(
        vec![t(&[1., 2., 3., 4.], &[2, 2]), t(&[5., 6.], &[2, 1])],
        |v| v[0].sub(&v[1]).sum_all(),
    );
    assert_close("ā", &g[0], &[1.; 4]);
    assert_close("b̄", &g[1], &[-2., -2.]);
}

#[test]
fn mul_gives_each_operand_the_other() {
    // y = Σ a ⊙ b: ∂y/∂a = b = [4, 5, 6], ∂y/∂b = a = [1, 2, 3].
    let g = grads_of(vec![t(&[1., 2., 3.], &[3]), t(&[4., 5., 6.], &[3])], |v| {
        v[0].mul(&v[1]).sum_all()
    });
    assert_close("ā", &g[0], &[4., 5., 6.]);
    assert_close("b̄", &g[1], &[1., 2., 3.]);
}

#[test]
fn a_value_used_twice_receives_both_gradients() {
    // y = Σ x ⊙ x: ∂y/∂x = 2x = [6, −2] at x = [3, −1] (the product rule fires
    // twice into the same node; accumulation adds the two).
    let g = grads_of(vec![t(&[3., -1.], &[2])], |v| v[0].mul(&v[0]).sum_all());
    assert_close("x̄", &g[0], &[6., -2.]);
}

#[test]
fn div_follows_the_quotient_rule() {
    // y = Σ a / b: ∂y/∂a = 1/b = [1/2, 1/4], ∂y/∂b = −a/b² = [−3/4, −5/16].
    let g = grads_of(vec![t(&[3., 5.], &[2]), t(&[2., 4.], &[2])], |v| {
        v[0].div(&v[1]).sum_all()
    });
    assert_close("ā", &g[0], &[0.5, 0.25]);
    assert_close("b̄", &g[1], &[-0.75, -5. / 16.]);
}

#[test]
fn pow_with_a_tensor_exponent_differentiates_base_and_exponent() {
    // y = Σ aᵇ at a = [2, 3], b = [3, 2]:
    // ∂y/∂a = b·aᵇ⁻¹ = [3·4, 2·3] = [12, 6],
    // ∂y/∂b = aᵇ·ln a = [8 ln 2, 9 ln 3].
    let g = grads_of(vec![t(&[2., 3.], &[2]), t(&[3., 2.], &[2])], |v| {
        v[0].pow(&v[1]).sum_all()
    });
    assert_close("ā", &g[0], &[12., 6.]);
    assert_close("b̄", &g[1], &[8. * 2f64.ln(), 9. * 3f64.ln()]);
}

#[test]
fn select_routes_the_gradient_to_the_branch_that_was_picked() {
    // y = Σ w ⊙ where(c, a, b) with w = [1, 2, 3], c = [1, 0, 1]:
    // ∂y/∂a = w ⊙ c = [1, 0, 3], ∂y/∂b = w ⊙ (1 − c) = [0, 2, 0].
    let cond = t(&[1., 0., 1.], &[3]);
    let g = grads_of(vec![t(&[5., 6., 7.], &[3]), t(&[8., 9., 10.], &[3])], |v| {
        let w = v[0].constant(t(&[1., 2., 3.], &[3]));
        Var::select(&cond, &v[0], &v[1]).mul(&w).sum_all()
    });
    assert_close("ā", &g[0], &[1., 0., 3.]);
    assert_close("b̄", &g[1], &[0., 2., 0.]);
}

// ---- element-wise, unary --------------------------------------------------

#[test]
fn scalar_ops_scale_or_pass_the_gradient() {
    // y = Σ −(3·x + 2): ∂y/∂x = −3.
    let g = grads_of(vec![t(&[1., 2.], &[2])], |v| {
        v[0].mul_scalar(3.).add_scalar(2.).neg().sum_all()
    });
    assert_close("x̄", &g[0], &[-3., -3.]);
}

#[test]
fn exp_and_ln_differentiate_to_the_value_and_the_reciprocal() {
    // y = Σ eˣ: ∂y/∂x = eˣ; y = Σ ln x: ∂y/∂x = 1/x = [1/2, 1/4].
    let x = t(&[0., 1.], &[2]);
    assert_close(
        "exp",
        &grads_of(vec![x], |v| v[0].exp().sum_all())[0],
        &[1., 1f64.exp()],
    );
    let x = t(&[2., 4.], &[2]);
    assert_close(
        "ln",
        &grads_of(vec![x], |v| v[0].ln().sum_all())[0],
        &[0.5, 0.25],
    );
}

#[test]
fn log1p_differentiates_to_one_over_one_plus_x() {
    // y = Σ ln(1 + x): ∂y/∂x = 1/(1 + x) = [1, 1/2, 1/4] at x = [0, 1, 3].
    let g = grads_of(vec![t(&[0., 1., 3.], &[3])], |v| v[0].log1p().sum_all());
    assert_close("x̄", &g[0], &[1., 0.5, 0.25]);
}

#[test]
fn sqrt_differentiates_to_one_over_twice_the_root() {
    // y = Σ √x: ∂y/∂x = 1/(2√x) = [1/4, 1/6] at x = [4, 9].
    let g = grads_of(vec![t(&[4., 9.], &[2])], |v| v[0].sqrt().sum_all());
    assert_close("x̄", &g[0], &[0.25, 1. / 6.]);
}

#[test]
fn powf_brings_the_exponent_down() {
    // y = Σ x³: ∂y/∂x = 3x² = [12, 3] at x = [2, −1];
    // y = Σ x⁰ = 2 is constant: ∂y/∂x = 0 (also at x = 0, where 0·x⁻¹ is not formed).
    let g = grads_of(vec![t(&[2., -1.], &[2])], |v| v[0].powf(3.).sum_all());
    assert_close("x³", &g[0], &[12., 3.]);
    let g = grads_of(vec![t(&[0., 5.], &[2])], |v| v[0].powf(0.).sum_all());
    assert_close("x⁰", &g[0], &[0., 0.]);
}

#[test]
fn tanh_differentiates_to_one_minus_its_square() {
    // y = Σ tanh x: ∂y/∂x = 1 − tanh²x = [1, 1 − tanh²(1)].
    let g = grads_of(vec![t(&[0., 1.], &[2])], |v| v[0].tanh().sum_all());
    assert_close("x̄", &g[0], &[1., 1. - 1f64.tanh().powi(2)]);
}

#[test]
fn sigmoid_differentiates_to_sigma_times_one_minus_sigma() {
    // σ(0) = 1/2 and σ(ln 3) = 3/4, so σ' = σ(1 − σ) = [1/4, 3/16].
    let g = grads_of(vec![t(&[0., 3f64.ln()], &[2])], |v| {
        v[0].sigmoid().sum_all()
    });
    assert_close("x̄", &g[0], &[0.25, 0.1875]);
}

#[test]
fn softplus_differentiates_to_the_sigmoid_and_stays_finite() {
    // softplus' = σ: [1/2, 3/4] at x = [0, ln 3]; at x = ±800, where e^x
    // overflows f64, the value is 800 or 0 (to the last bit) and σ = 1 or 0.
    let x = t(&[0., 3f64.ln(), 800., -800.], &[4]);
    let tape = Tape::new();
    let v = tape.leaf(x);
    let y = v.softplus();
    assert_close("value", y.value(), &[2f64.ln(), 4f64.ln(), 800., 0.]);
    let g = tape.backward(&y.sum_all()).wrt(&v).unwrap();
    assert_close("x̄", &g, &[0.5, 0.75, 1., 0.]);
}

#[test]
fn log_sigmoid_differentiates_to_one_minus_sigma() {
    // d/dx log σ(x) = 1 − σ(x) = [1/2, 1/4] at x = [0, ln 3].
    let g = grads_of(vec![t(&[0., 3f64.ln()], &[2])], |v| {
        v[0].log_sigmoid().sum_all()
    });
    assert_close("x̄", &g[0], &[0.5, 0.25]);
}

#[test]
fn relu_and_leaky_relu_pass_the_gradient_by_slope() {
    // relu' = 1(x > 0) = [0, 1]; leaky_relu' with slope 0.1 = [0.1, 1] at x = [−1, 2].
    let x = t(&[-1., 2.], &[2]);
    assert_close(
        "relu",
        &grads_of(vec![x.clone()], |v| v[0].relu().sum_all())[0],
        &[0., 1.],
    );
    let g = grads_of(vec![x], |v| v[0].leaky_relu(0.1).sum_all());
    assert_close("leaky_relu", &g[0], &[0.1, 1.]);
}

#[test]
fn elu_differentiates_to_one_or_value_plus_alpha() {
    // α = 2: elu(x) = x (x > 0) or 2(eˣ − 1); elu' = 1 or 2eˣ = y + α:
    // at x = [−1, 3]: [2e⁻¹, 1].
    let g = grads_of(vec![t(&[-1., 3.], &[2])], |v| v[0].elu(2.).sum_all());
    assert_close("x̄", &g[0], &[2. * (-1f64).exp(), 1.]);
}

// ---- reductions -----------------------------------------------------------

#[test]
fn sum_and_mean_spread_the_gradient_evenly() {
    // y = Σⱼ wⱼ·(Σᵢ xᵢⱼ) with w = [1, 2, 3]: ∂y/∂xᵢⱼ = wⱼ;
    // y = mean x over 6 entries: ∂y/∂x = 1/6.
    let x = t(&[1., 2., 3., 4., 5., 6.], &[2, 3]);
    let g = grads_of(vec![x.clone()], |v| {
        v[0].sum_axes(&[0])
            .mul(&v[0].constant(t(&[1., 2., 3.], &[3])))
            .sum_all()
    });
    assert_close("sum", &g[0], &[1., 2., 3., 1., 2., 3.]);
    let g = grads_of(vec![x], |v| v[0].mean_all());
    assert_close("mean", &g[0], &[1. / 6.; 6]);
}

#[test]
fn max_sends_the_gradient_to_the_maximum_and_splits_ties() {
    // y = Σᵢ maxⱼ xᵢⱼ: row [1, 5, 3] → [0, 1, 0]; row [4, 4, 2] has a tie → [½, ½, 0].
    let x = t(&[1., 5., 3., 4., 4., 2.], &[2, 3]);
    let g = grads_of(vec![x.clone()], |v| v[0].max_axes(&[1]).sum_all());
    assert_close("x̄", &g[0], &[0., 1., 0., 0.5, 0.5, 0.]);
    let g = grads_of(vec![x], |v| v[0].max_axes_keepdim(&[0, 1]).sum_all());
    assert_close("x̄ (all axes)", &g[0], &[0., 1., 0., 0., 0., 0.]);
}

#[test]
fn logsumexp_differentiates_to_the_softmax() {
    // y = log(e⁰ + e^{ln 3}) = ln 4; ∂y/∂x = softmax(x) = [1/4, 3/4].
    // Shifted by 1000 (e^1000 overflows f64) the value shifts and the gradient does not.
    let x = t(&[0., 3f64.ln(), 1000., 1000. + 3f64.ln()], &[2, 2]);
    let tape = Tape::new();
    let v = tape.leaf(x);
    let y = v.logsumexp_axes(&[1]);
    assert_close("value", y.value(), &[4f64.ln(), 1000. + 4f64.ln()]);
    let g = tape.backward(&y.sum_all()).wrt(&v).unwrap();
    assert_close("x̄", &g, &[0.25, 0.75, 0.25, 0.75]);
}

#[test]
fn logsumexp_gradient_keeps_its_mass_in_f32() {
    // y = log(e¹⁰⁰⁰ + e¹⁰⁰⁰) = 1000 + ln 2, so ∂y/∂x = softmax(x) = [½, ½] exactly.
    // In f32, y rounds to a multiple of 2⁻¹⁴ (6.1e-5) near 1000.69; weights
    // exp(x − y) taken from that rounded y lose up to 3e-5 of the mass
    // (0.49998546 each): the weights must not depend on the rounded output.
    let tape = Tape::<f32>::new();
    let v = tape.leaf(Tensor::from_vec(vec![1000f32, 1000.0], &[2]));
    let g = tape
        .backward(&v.logsumexp_axes(&[0]).sum_all())
        .wrt(&v)
        .unwrap();
    assert_eq!(g.to_vec(), vec![0.5f32, 0.5]);
}

#[test]
fn logsumexp_of_minus_infinity_alone_has_a_zero_gradient() {
    // Row 0: y = log(e^−∞ + e^−∞) = −∞. No entry carries weight, and the
    // gradient is defined as 0 (softmax's 0/0 is not taken). Row 1:
    // y = log(1 + e^{ln 3}) = ln 4, ∂y/∂x = [¼, ¾] as usual.
    let x = t(
        &[f64::NEG_INFINITY, f64::NEG_INFINITY, 0., 3f64.ln()],
        &[2, 2],
    );
    let tape = Tape::new();
    let v = tape.leaf(x);
    let y = v.logsumexp_axes(&[1]);
    assert_eq!(y.value().to_vec()[0], f64::NEG_INFINITY);
    let g = tape.backward(&y.sum_all()).wrt(&v).unwrap();
    assert_close("x̄", &g, &[0., 0., 0.25, 0.75]);
}

// ---- matrix products --------------------------------------------------------

#[test]
fn matmul_gradients_are_products_with_the_transposes() {
    // y = Σ A·B with A: [2, 3], B: [3, 2]. Ā = 1·Bᵀ: each row is the row sums
    // of B = [3, 7, 11]; B̄ = Aᵀ·1: each column is the column sums of A = [5, 7, 9].
    let a = t(&[1., 2., 3., 4., 5., 6.], &[2, 3]);
    let b = t(&[1., 2., 3., 4., 5., 6.], &[3, 2]);
    let g = grads_of(vec![a, b], |v| v[0].matmul(&v[1]).sum_all());
    assert_close("Ā", &g[0], &[3., 7., 11., 3., 7., 11.]);
    assert_close("B̄", &g[1], &[5., 5., 7., 7., 9., 9.]);
}

#[test]
fn batched_matmul_sums_the_gradient_of_a_shared_matrix_over_the_batch() {
    // y = Σ A_b·B over b = 0, 1 with A: [2, 1, 2] and B: [2, 2] shared:
    // B̄ = Σ_b A_bᵀ·1 = rows [a_b0, a_b0], [a_b1, a_b1] summed: A = [[1, 2]], [[3, 4]]
    // → B̄ = [[4, 4], [6, 6]]; Ā_b = 1·Bᵀ = row sums of B = [3, 7] for each b.
    let a = t(&[1., 2., 3., 4.], &[2, 1, 2]);
    let b = t(&[1., 2., 3., 4.], &[2, 2]);
    let g = grads_of(vec![a, b], |v| v[0].matmul(&v[1]).sum_all());
    assert_close("Ā", &g[0], &[3., 7., 3., 7.]);
    assert_close("B̄", &g[1], &[4., 4., 6., 6.]);
    // And a shared left matrix: y = Σ A·B_b, A: [1, 2], B: [2, 2, 1]:
    // Ā = Σ_b 1·B_bᵀ = [1 + 3, 2 + 4] = [4, 6]; B̄_b = Aᵀ·1 = [1, 2] for each b.
    let a = t(&[1., 2.], &[1, 2]);
    let b = t(&[1., 2., 3., 4.], &[2, 2, 1]);
    let g = grads_of(vec![a, b], |v| v[0].matmul(&v[1]).sum_all());
    assert_close("Ā (shared)", &g[0], &[4., 6.]);
    assert_close("B̄ (batched)", &g[1], &[1., 2., 1., 2.]);
}

#[test]
fn linear_gradients_match_the_matmul_and_the_bias_sum() {
    // Y = x·W + b, y = Σ Y with x: [2, 2], W: [2, 3], b: [3]:
    // x̄ = 1·Wᵀ = row sums of W = [6, 15] per row; W̄ = xᵀ·1 = column sums
    // of x = [4, 6] repeated along each row; b̄ = batch size = 2.
    let x = t(&[1., 2., 3., 4.], &[2, 2]);
    let w = t(&[1., 2., 3., 4., 5., 6.], &[2, 3]);
    let b = t(&[0., 0., 0.], &[3]);
    let g = grads_of(vec![x, w, b], |v| v[0].linear(&v[1], &v[2]).sum_all());
    assert_close("x̄", &g[0], &[6., 15., 6., 15.]);
    assert_close("W̄", &g[1], &[4., 4., 4., 6., 6., 6.]);
    assert_close("b̄", &g[2], &[2., 2., 2.]);
}

#[test]
fn conv2d_gradients_count_the_windows_each_entry_is_seen_in() {
    // A 3×3 image of ones, a 3×3 kernel of ones, padding 1, y = Σ out.
    // ∂y/∂w[i, j] = Σ over outputs of the input pixel the tap reads: the
    // centre tap sees all 9 pixels, an edge tap 6, a corner tap 4. By symmetry
    // x̄ has the same pattern (a corner pixel is seen by 4 outputs). b̄ = 9 outputs.
    let x = Tensor::<f64>::ones(&[1, 1, 3, 3]);
    let w = Tensor::<f64>::ones(&[1, 1, 3, 3]);
    let b = t(&[0.5], &[1]);
    let g = grads_of(vec![x, w, b], |v| {
        v[0].conv2d(&v[1], Some(&v[2]), 1).sum_all()
    });
    let pattern = [4., 6., 4., 6., 9., 6., 4., 6., 4.];
    assert_close("x̄", &g[0], &pattern);
    assert_close("W̄", &g[1], &pattern);
    assert_close("b̄", &g[2], &[9.]);
}

// ---- linear algebra -----------------------------------------------------------

#[test]
fn inverse_gradient_is_minus_inverse_transpose_products() {
    // Y = A⁻¹ for A = diag(2, 4), y = Σₖₗ Yₖₗ. From dY = −Y·dA·Y:
    // ∂y/∂Aᵢⱼ = −(Σₖ Yₖᵢ)(Σₗ Yⱼₗ) = −(1/Aᵢᵢ)(1/Aⱼⱼ) = [[−1/4, −1/8], [−1/8, −1/16]].
    let g = grads_of(vec![t(&[2., 0., 0., 4.], &[2, 2])], |v| {
        v[0].inverse().sum_all()
    });
    assert_close("Ā", &g[0], &[-0.25, -0.125, -0.125, -0.0625]);
}

#[test]
fn slogdet_gradient_is_the_inverse_transpose() {
    // A = [[2, 1], [1, 3]]: det = 5, so log|det A| = ln 5 and sign +1;
    // ∂/∂A = A⁻ᵀ = (1/5)[[3, −1], [−1, 2]].
    let tape = Tape::new();
    let a = tape.leaf(t(&[2., 1., 1., 3.], &[2, 2]));
    let (sign, log_abs) = a.slogdet();
    assert_eq!(sign, 1.0);
    assert_close("log|det|", log_abs.value(), &[5f64.ln()]);
    let g = tape.backward(&log_abs).wrt(&a).unwrap();
    assert_close("Ā", &g, &[0.6, -0.2, -0.2, 0.4]);
    // A non-symmetric A with det < 0: A = [[1, 2], [3, 4]], det = −2:
    // sign −1, ln 2, A⁻ᵀ = (1/−2)[[4, −3], [−2, 1]] = [[−2, 1.5], [1, −0.5]].
    let tape = Tape::new();
    let a = tape.leaf(t(&[1., 2., 3., 4.], &[2, 2]));
    let (sign, log_abs) = a.slogdet();
    assert_eq!(sign, -1.0);
    assert_close("log|det|", log_abs.value(), &[2f64.ln()]);
    let g = tape.backward(&log_abs).wrt(&a).unwrap();
    assert_close("Ā", &g, &[-2., 1.5, 1., -0.5]);
}

#[test]
fn triangular_solve_gradients_solve_with_the_transpose() {
    // L = [[2, 0], [1, 4]], b = [2, 9]: x = L⁻¹b = [1, 2]; y = Σ x.
    // b̄ = L⁻ᵀ·1: Lᵀ = [[2, 1], [0, 4]] gives z₂ = 1/4, 2z₁ + z₂ = 1 → z₁ = 3/8.
    // L̄ = −b̄·xᵀ on the lower triangle: −[[3/8, ·], [1/4·1, 1/4·2]] = [[−3/8, 0], [−1/4, −1/2]].
    let l = t(&[2., 0., 1., 4.], &[2, 2]);
    let b = t(&[2., 9.], &[2]);
    let tape = Tape::new();
    let (lv, bv) = (tape.leaf(l.clone()), tape.leaf(b));
    let x = lv.solve_triangular(&bv, Triangle::Lower, Diagonal::NonUnit);
    assert_close("x", x.value(), &[1., 2.]);
    let grads = tape.backward(&x.sum_all());
    assert_close("b̄", &grads.wrt(&bv).unwrap(), &[0.375, 0.25]);
    assert_close("L̄", &grads.wrt(&lv).unwrap(), &[-0.375, 0., -0.25, -0.5]);
    // With a unit diagonal (the diagonal is not read and gets no gradient):
    // x = [2, 9 − 1·2] = [2, 7]; b̄ = [1 − 1, 1] = [0, 1]; L̄₁₀ = −b̄₁x₀ = −2.
    let g = grads_of(vec![l, t(&[2., 9.], &[2])], |v| {
        v[0].solve_triangular(&v[1], Triangle::Lower, Diagonal::Unit)
            .sum_all()
    });
    assert_close("L̄ (unit)", &g[0], &[0., 0., -2., 0.]);
    assert_close("b̄ (unit)", &g[1], &[0., 1.]);
}

/// `Σ w ⊙ v` with weights `w = [1, 2, 3, …]` in row-major order.
fn weighted<'t>(v: &Var<'t, f64>) -> Var<'t, f64> {
    let w = Tensor::from_vec(
        (1..=v.value().numel()).map(|k| k as f64).collect(),
        v.shape(),
    );
    v.mul(&v.constant(w)).sum_all()
}

// ---- views ----------------------------------------------------------------------

#[test]
fn views_move_the_gradient_back_to_where_the_values_came_from() {
    // y = Σ w ⊙ view(x) with distinct weights w = [1, 2, …], so x̄ shows
    // where each output entry came from: x̄ = view⁻¹(w).
    let x = t(&[0.; 6], &[2, 3]);
    // transpose: y[j, i] = x[i, j], so x̄[i, j] = w[j, i]: w = [[1, 2], [3, 4], [5, 6]].
    let g = grads_of(vec![x.clone()], |v| weighted(&v[0].transpose(0, 1)));
    assert_close("transpose", &g[0], &[1., 3., 5., 2., 4., 6.]);
    // narrow columns 1..3: x̄ = [[0, 1, 2], [0, 3, 4]].
    let g = grads_of(vec![x.clone()], |v| weighted(&v[0].narrow(1, 1, 2)));
    assert_close("narrow", &g[0], &[0., 1., 2., 0., 3., 4.]);
    // reshape to [3, 2]: same order, x̄ = w.
    let g = grads_of(vec![x.clone()], |v| weighted(&v[0].reshape(&[3, 2])));
    assert_close("reshape", &g[0], &[1., 2., 3., 4., 5., 6.]);
    // broadcast [2, 3] → [2, 2, 3]: x̄ = w[0] + w[1] = [1+7, 2+8, …].
    let g = grads_of(vec![x.clone()], |v| {
        weighted(&v[0].broadcast_to(&[2, 2, 3]))
    });
    assert_close("broadcast", &g[0], &[8., 10., 12., 14., 16., 18.]);
    // gather columns [2, 0, 2]: column 2 picked twice gets w₀ + w₂ in each row.
    let g = grads_of(vec![x.clone()], |v| {
        weighted(&v[0].index_select(1, &[2, 0, 2]))
    });
    assert_close("index_select", &g[0], &[2., 0., 4., 5., 0., 10.]);
    // concat [x, x] along axis 0: x̄ = w[:2] + w[2:].
    let g = grads_of(vec![x.clone()], |v| {
        weighted(&Var::concat(&[&v[0], &v[0]], 0))
    });
    assert_close("concat", &g[0], &[8., 10., 12., 14., 16., 18.]);
    // masked select of the entries [1, 0, 1; 0, 0, 1]: picked in row-major order.
    let mask = t(&[1., 0., 1., 0., 0., 1.], &[2, 3]);
    let g = grads_of(vec![x], |v| weighted(&v[0].masked_select(&mask)));
    assert_close("masked_select", &g[0], &[1., 0., 2., 0., 0., 3.]);
}

#[test]
fn squeeze_2x2_moves_values_and_gradients_as_the_tensor_kernel_does() {
    // space_to_depth: out[b, c·4 + i·2 + j, y, x] = in[b, c, 2y + i, 2x + j];
    // y = Σ w ⊙ space_to_depth(x), so x̄ = depth_to_space(w).
    let x = Tensor::<f64>::arange(32).reshape(&[1, 2, 4, 4]);
    let w = Tensor::<f64>::arange(32)
        .add_scalar(1.)
        .reshape(&[1, 8, 2, 2]);
    let tape = Tape::new();
    let v = tape.leaf(x.clone());
    let squeezed = v.space_to_depth(2);
    assert_eq!(squeezed.value().to_vec(), x.space_to_depth(2).to_vec());
    assert_eq!(squeezed.depth_to_space(2).value().to_vec(), x.to_vec());
    let loss = squeezed.mul(&tape.constant(w.clone())).sum_all();
    let g = tape.backward(&loss).wrt(&v).unwrap();
    assert_eq!(g.to_vec(), w.depth_to_space(2).to_vec());
}

// ---- evaluation without a tape ----------------------------------------------------

#[test]
fn no_grad_records_nothing() {
    // The same code on a no-grad tape computes the same value and keeps no node.
    let x = t(&[0.5, -1.0, 2.0], &[3]);
    fn f<'t>(v: &Var<'t, f64>) -> Var<'t, f64> {
        v.tanh().mul(v).softplus().logsumexp_axes(&[0])
    }
    let recording = Tape::new();
    let a = f(&recording.leaf(x.clone()));
    let quiet = Tape::no_grad();
    let b = f(&quiet.leaf(x));
    assert_eq!(a.value().to_vec(), b.value().to_vec());
    assert!(!recording.is_empty());
    assert_eq!(quiet.len(), 0);
    assert!(b.node().is_none());
}

// ---- optimisers ---------------------------------------------------------------------

fn scalar_param(value: f64) -> Param<f64> {
    Param::new("theta", t(&[value], &[1]))
}

#[test]
fn adam_matches_the_published_update_on_three_steps() {
    // Kingma & Ba, Algorithm 1, lr = 0.1, β₁ = 0.9, β₂ = 0.999, ε = 1e-8, θ₀ = 1:
    // t = 1, g = 0.5:   m = 0.05,  v = 2.5e-4,  m̂ = 0.5, v̂ = 0.25,
    //                   θ₁ = 1 − 0.1·0.5/(0.5 + 1e-8) = 0.900000002 (to 1e-17)
    // t = 2, g = −0.25: m = 0.9·0.05 − 0.025 = 0.02,  v = 0.999·2.5e-4 + 0.001·0.0625 = 3.1225e-4,
    //                   m̂ = 0.02/0.19 = 0.105263…, v̂ = 3.1225e-4/0.001999 = 0.156203…,
    //                   θ₂ = θ₁ − 0.1·m̂/(√v̂ + ε) = 0.873366298707846…
    // t = 3, g = 0.125: m = 0.018 + 0.0125 = 0.0305,  v = 0.999·3.1225e-4 + 0.001·0.015625 = 3.2756275e-4,
    //                   m̂ = 0.0305/0.271 = 0.112546…, v̂ = 3.2756275e-4/0.002997001 = 0.109296…,
    //                   θ₃ = 0.839323384916654…
    let mut p = scalar_param(1.0);
    let mut adam = Adam::new(0.1);
    let expected = [0.900000002, 0.8733662987078463, 0.8393233849166541];
    for (g, want) in [0.5, -0.25, 0.125].into_iter().zip(expected) {
        p.grad = Some(t(&[g], &[1]));
        adam.step([&mut p]);
        assert_close("θ", &p.value, &[want]);
    }
    assert_eq!(adam.steps(), 3);
}

#[test]
fn adamw_decays_the_weight_apart_from_the_adam_step() {
    // AdamW (Loshchilov & Hutter, Alg. 2) with lr = 0.1, λ = 0.5, θ₀ = 1, g = 0.5:
    // θ₁ = θ₀ − lr·λ·θ₀ − lr·m̂/(√v̂ + ε) = 1 − 0.05 − 0.1·0.5/(0.5 + 1e-8) = 0.850000002.
    let mut p = scalar_param(1.0);
    let mut adamw = AdamW::new(0.1, 0.5);
    p.grad = Some(t(&[0.5], &[1]));
    adamw.step([&mut p]);
    assert_close("θ", &p.value, &[0.850000002]);
}

#[test]
fn sgd_with_momentum_accumulates_a_velocity() {
    // v ← 0.9·v + g, θ ← θ − 0.1·v with g = 1 each step from θ = 0:
    // v = 1, 1.9, 2.71; θ = −0.1, −0.29, −0.561.
    let mut p = scalar_param(0.0);
    let mut sgd = Sgd::new(0.1, 0.9);
    for want in [-0.1, -0.29, -0.561] {
        p.grad = Some(t(&[1.0], &[1]));
        sgd.step([&mut p]);
        assert_close("θ", &p.value, &[want]);
    }
}

#[test]
fn optimisers_skip_a_parameter_without_a_gradient() {
    let (mut a, mut b) = (scalar_param(1.0), scalar_param(2.0));
    a.grad = Some(t(&[1.0], &[1]));
    let mut adam = Adam::new(0.1);
    adam.step([&mut a, &mut b]);
    assert!(a.value.item() < 1.0);
    assert_eq!(b.value.item(), 2.0);
}

#[test]
fn clip_grad_norm_scales_all_gradients_by_one_factor() {
    // Gradients [3] and [4]: joint norm √(9 + 16) = 5; clipped to 1 → [0.6], [0.8].
    let (mut a, mut b) = (scalar_param(0.0), scalar_param(0.0));
    a.grad = Some(t(&[3.0], &[1]));
    b.grad = Some(t(&[4.0], &[1]));
    let norm = clip_grad_norm([&mut a, &mut b], 1.0);
    assert_eq!(norm, 5.0);
    assert_close("a", a.grad.as_ref().unwrap(), &[0.6]);
    assert_close("b", b.grad.as_ref().unwrap(), &[0.8]);
    // Below the limit nothing changes.
    let norm = clip_grad_norm([&mut a, &mut b], 10.0);
    assert!((norm - 1.0).abs() < 1e-15);
    assert_close("a unchanged", a.grad.as_ref().unwrap(), &[0.6]);
}

#[test]
fn learning_rate_schedules_follow_their_formulas() {
    // Step decay: 0.1 · 0.5^⌊t/10⌋.
    let step = LrSchedule::Step {
        base: 0.1,
        every: 10,
        gamma: 0.5,
    };
    assert_eq!([0, 9, 10, 25].map(|t| step.lr(t)), [0.1, 0.1, 0.05, 0.025]);
    // Warm-up over 4 steps to 1.0 (0.25, 0.5, 0.75, 1.0), then cosine to 0 over
    // 8 steps: at t = 4 + 4 (p = 1/2) the rate is (1 + cos π/2)/2 = 0.5; at t = 12, 0.
    let cosine = LrSchedule::WarmupCosine {
        base: 1.0,
        warmup: 4,
        total: 12,
        min: 0.0,
    };
    let rates: Vec<f64> = [0, 1, 2, 3, 4, 8, 12, 20].map(|t| cosine.lr(t)).to_vec();
    let expected = [0.25, 0.5, 0.75, 1.0, 1.0, 0.5, 0.0, 0.0];
    for (r, e) in rates.iter().zip(expected) {
        assert!(
            (r - e).abs() < 1e-15,
            "rates {rates:?}, expected {expected:?}"
        );
    }
    assert_eq!(LrSchedule::Constant(0.3).lr(1000), 0.3);
}
