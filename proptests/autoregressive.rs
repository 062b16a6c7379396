//! MADE, MAF and IAF in f64, at random sizes, orders and parameters:
//! the autoregressive property (exact zeros in the finite-difference
//! Jacobian), `check_flow` (invertibility, log-det), the two ways of solving
//! the sequential direction agreeing, the parameter gradcheck, and the
//! energies' hand-written gradients.

use crate::strategies::{randn, rng};
use crate::tolerance::{
    assert_all_close, GRADCHECK_H, GRADCHECK_RTOL, INVERSE_RTOL, KERNEL_RTOL, LOG_DET_RTOL,
};
use flowzoo::autodiff::{Param, Tape, Var};
use flowzoo::data::energy::Energy;
use flowzoo::flows::autoregressive::{made_for_flow, maf_layers};
use flowzoo::flows::check::{
    check_flow, finite_difference_jacobian, gradcheck_params, randomize_params, CheckOptions,
};
use flowzoo::flows::iaf::iaf_layers;
use flowzoo::flows::registry::build_layer;
use flowzoo::flows::{Flow, Iaf, Maf, Sequential, SequentialMethod, Transform};
use flowzoo::nn::made::{HiddenDegrees, Made, MadeOptions, Order};
use flowzoo::nn::Init;
use flowzoo::tensor::Tensor;
use proptest::prelude::*;

/// The spread of random IAF parameters. The (gated) inverse divides by
/// σ(s(z_{<i})); with large random weights s falls as |z| grows, so z grows
/// doubly exponentially along the order: NaN at 0.5, gradients of 1e11 at
/// 0.25 (where central differences lose their digits).
const IAF_PARAM_SCALE: f64 = 0.15;

/// The spread of random parameters in gradchecks: central differences are
/// wrong within h·|∂a/∂θ| of a ReLU kink, a zone that widens as deep
/// (residual) nets with large weights grow their activations.
const GRADCHECK_PARAM_SCALE: f64 = 0.25;

fn options() -> CheckOptions {
    CheckOptions {
        inverse_rtol: INVERSE_RTOL,
        log_det_rtol: LOG_DET_RTOL,
        ..CheckOptions::default()
    }
}

/// A MADE's shape: dim 1..=7, 0 to 3 hidden layers of width 1..=10 (so
/// narrower than D too, with cyclic degrees; random degrees need widths of
/// at least D − 1 and get them), any order, with or without residual blocks
/// (which need equal widths).
#[derive(Clone, Debug)]
struct Shape {
    dim: usize,
    hidden: Vec<usize>,
    order: Order,
    options: MadeOptions,
}

fn order_strategy() -> impl Strategy<Value = Order> {
    prop_oneof![
        Just(Order::Natural),
        Just(Order::Reversed),
        any::<u64>().prop_map(|seed| Order::Random { seed }),
    ]
}

fn shape_strategy() -> impl Strategy<Value = Shape> {
    (
        1usize..=7,
        prop::collection::vec(1usize..=10, 0..=3),
        order_strategy(),
        prop::option::of(any::<u64>()),
        any::<bool>(),
    )
        .prop_map(|(dim, mut hidden, order, random_degrees, residual)| {
            if random_degrees.is_some() {
                hidden.iter_mut().for_each(|h| *h = (*h).max(dim - 1));
            }
            let residual = residual && !hidden.is_empty();
            if residual {
                let width = hidden[0];
                hidden.iter_mut().for_each(|h| *h = width);
            }
            let hidden_degrees = match random_degrees {
                Some(seed) => HiddenDegrees::Random { seed },
                None => HiddenDegrees::Cyclic,
            };
            Shape {
                dim,
                hidden,
                order,
                options: MadeOptions {
                    hidden_degrees,
                    residual,
                    output_init: Init::Glorot,
                    hidden_init: Init::Glorot,
                },
            }
        })
}

fn transform_strategy() -> impl Strategy<Value = Transform> {
    prop_oneof![Just(Transform::Affine), Just(Transform::Gated)]
}

fn made_of(shape: &Shape, seed: u64) -> Made<f64> {
    made_for_flow(
        shape.dim,
        &shape.hidden,
        shape.order,
        shape.options,
        &mut rng(seed),
    )
}

/// A flow with its directions swapped, so the finite-difference Jacobian and
/// the gradcheck (which look at `forward` and `inverse` respectively) reach
/// the other direction too.
pub struct Inverted<F>(pub F);

impl<F: Flow<f64>> Flow<f64> for Inverted<F> {
    fn name(&self) -> String {
        format!("Inverted({})", self.0.name())
    }
    fn forward<'t>(&self, z: &Var<'t, f64>) -> (Var<'t, f64>, Var<'t, f64>) {
        self.0.inverse(z)
    }
    fn inverse<'t>(&self, x: &Var<'t, f64>) -> (Var<'t, f64>, Var<'t, f64>) {
        self.0.forward(x)
    }
    fn params(&self) -> Vec<&Param<f64>> {
        self.0.params()
    }
    fn params_mut(&mut self) -> Vec<&mut Param<f64>> {
        self.0.params_mut()
    }
}

/// Asserts J[i][k] == 0.0 exactly wherever feature k comes at or after
/// feature i in the order (k ≠ i), and J[i][i] ≠ 0.
///
/// Why exact zeros: a masked weight is w·0 = 0 exactly, and adding an exact
/// zero to a partial sum leaves it unchanged, so x_i is computed bit for bit
/// the same whether z_k is moved up or down; the central difference of two
/// equal numbers is 0.0. A mask that let one path through would show.
pub fn assert_triangular(what: &str, jac: &Tensor<f64>, degrees: &[usize]) {
    let dim = degrees.len();
    for i in 0..dim {
        for k in 0..dim {
            let value = jac.get(&[i, k]);
            if k == i {
                assert!(value != 0.0, "{what}: diagonal entry {i} is zero");
            } else if degrees[k] > degrees[i] {
                assert!(
                    value == 0.0,
                    "{what}: output {i} (degree {}) depends on input {k} (degree {}): J = {value:e}",
                    degrees[i],
                    degrees[k]
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    // ∂ outputᵢ / ∂ x_k = 0 exactly when m(k) ≥ m(i): MADE's defining property.
    #[test]
    fn made_outputs_depend_only_on_features_of_lower_degree(shape in shape_strategy(), seed in any::<u64>()) {
        let mut made = made_of(&shape, seed);
        let mut r = rng(seed ^ 1);
        for p in made.params_mut() {
            p.value = Tensor::randn(p.value.shape(), &mut r);
        }
        let (dim, h) = (shape.dim, 1e-4);
        let x = randn(&[1, dim], seed ^ 2).to_vec();
        let tape = Tape::no_grad();
        for k in 0..dim {
            let mut plus = x.clone();
            let mut minus = x.clone();
            plus[k] += h;
            minus[k] -= h;
            let out = |v: Vec<f64>| made.forward(&tape.constant(Tensor::from_vec(v, &[1, dim]))).into_value().to_vec();
            let (op, om) = (out(plus), out(minus));
            for column in 0..2 * dim {
                let i = column % dim;
                if made.input_degrees[k] >= made.input_degrees[i] {
                    prop_assert!(op[column] == om[column],
                        "{shape:?}: output column {column} (feature {i}) moves with input {k}");
                }
            }
        }
    }

    // The Jacobian of both directions of an MAF layer is triangular in its order.
    #[test]
    fn maf_jacobian_is_triangular_in_its_order(shape in shape_strategy(), transform in transform_strategy(), seed in any::<u64>()) {
        let mut maf = Maf::from_made(made_of(&shape, seed), transform);
        randomize_params(&mut maf, 0.5, &mut rng(seed ^ 3));
        let degrees = maf.made().input_degrees.clone();
        let z = randn(&[1, shape.dim], seed ^ 4);
        assert_triangular("Maf forward", &finite_difference_jacobian(&maf, &z, 0, 1e-5), &degrees);
        let inverted = Inverted(maf);
        assert_triangular("Maf inverse", &finite_difference_jacobian(&inverted, &z, 0, 1e-5), &degrees);
    }

    #[test]
    fn iaf_jacobian_is_triangular_in_its_order(shape in shape_strategy(), transform in transform_strategy(), seed in any::<u64>()) {
        let mut iaf = Iaf::from_made(made_of(&shape, seed), transform);
        randomize_params(&mut iaf, IAF_PARAM_SCALE, &mut rng(seed ^ 5));
        let degrees = iaf.made().input_degrees.clone();
        let z = randn(&[1, shape.dim], seed ^ 6);
        assert_triangular("Iaf forward", &finite_difference_jacobian(&iaf, &z, 0, 1e-5), &degrees);
        let inverted = Inverted(iaf);
        assert_triangular("Iaf inverse", &finite_difference_jacobian(&inverted, &z, 0, 1e-5), &degrees);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    // x = f(z), z' = f⁻¹(x): z' = z to INVERSE_RTOL (and from the x side);
    // log-det = log|det ∂x/∂z| (finite differences) = −logdet_inverse(x).
    #[test]
    fn maf_passes_check_flow(shape in shape_strategy(), transform in transform_strategy(), full_passes in any::<bool>(), batch in 1usize..4, seed in any::<u64>()) {
        let mut maf = Maf::from_made(made_of(&shape, seed), transform);
        if full_passes { maf.method = SequentialMethod::FullPasses; }
        randomize_params(&mut maf, 0.5, &mut rng(seed ^ 7));
        let z = randn(&[batch, shape.dim], seed ^ 8);
        if let Err(e) = check_flow(&maf, &z, options()) { panic!("{shape:?}: {e}"); }
    }

    #[test]
    fn iaf_passes_check_flow(shape in shape_strategy(), transform in transform_strategy(), full_passes in any::<bool>(), batch in 1usize..4, seed in any::<u64>()) {
        let mut iaf = Iaf::from_made(made_of(&shape, seed), transform);
        if full_passes { iaf.method = SequentialMethod::FullPasses; }
        randomize_params(&mut iaf, IAF_PARAM_SCALE, &mut rng(seed ^ 9));
        let z = randn(&[batch, shape.dim], seed ^ 10);
        if let Err(e) = check_flow(&iaf, &z, options()) { panic!("{shape:?}: {e}"); }
    }

    // The incremental solve (each hidden unit once) and the textbook loop (D
    // full passes) compute the same function: same ops, another grouping.
    // Batches of 70 rows cross the split of rows between threads.
    #[test]
    fn incremental_solve_matches_full_passes(shape in shape_strategy(), transform in transform_strategy(), batch in prop_oneof![1usize..4, 64usize..72], seed in any::<u64>()) {
        let mut maf = Maf::from_made(made_of(&shape, seed), transform);
        randomize_params(&mut maf, 0.5, &mut rng(seed ^ 11));
        let z = randn(&[batch, shape.dim], seed ^ 12);
        let (x_fast, ld_fast) = maf.forward_tensor(&z);
        maf.method = SequentialMethod::FullPasses;
        let (x_slow, ld_slow) = maf.forward_tensor(&z);
        assert_all_close("x", &x_fast.to_vec(), &x_slow.to_vec(), KERNEL_RTOL * 100.0);
        assert_all_close("log-det", &ld_fast.to_vec(), &ld_slow.to_vec(), KERNEL_RTOL * 100.0);
    }

    // ∂L/∂θ from the tape = central differences, L = −mean log p(x). For the
    // MAF this is the one-pass inverse; for the IAF the inverse is the D-pass
    // loop on the tape, and `Inverted` reaches the one-pass forward that
    // reverse-KL training differentiates.
    #[test]
    fn maf_gradient_reaches_every_parameter(shape in shape_strategy(), transform in transform_strategy(), seed in any::<u64>()) {
        let mut maf = Maf::from_made(made_of(&shape, seed), transform);
        randomize_params(&mut maf, GRADCHECK_PARAM_SCALE, &mut rng(seed ^ 13));
        let x = randn(&[2, shape.dim], seed ^ 14);
        if let Err(e) = gradcheck_params(&mut maf, &x, GRADCHECK_H, GRADCHECK_RTOL) { panic!("{shape:?}: {e}"); }
    }

    #[test]
    fn iaf_gradient_reaches_every_parameter_in_both_directions(shape in shape_strategy(), transform in transform_strategy(), seed in any::<u64>()) {
        let mut iaf = Iaf::from_made(made_of(&shape, seed), transform);
        randomize_params(&mut iaf, IAF_PARAM_SCALE, &mut rng(seed ^ 15));
        let x = randn(&[2, shape.dim], seed ^ 16);
        if let Err(e) = gradcheck_params(&mut iaf, &x, GRADCHECK_H, GRADCHECK_RTOL) { panic!("{shape:?} {transform:?}: {e}"); }
        let mut inverted = Inverted(iaf);
        if let Err(e) = gradcheck_params(&mut inverted, &x, GRADCHECK_H, GRADCHECK_RTOL) { panic!("{shape:?} {transform:?} inverted: {e}"); }
    }

    // spec() → build_layer → parameters copied by name: the same layer (what
    // a checkpoint relies on), for every shape, order and transform.
    #[test]
    fn spec_rebuilds_the_same_layer(shape in shape_strategy(), transform in transform_strategy(), iaf in any::<bool>(), seed in any::<u64>()) {
        let made = made_of(&shape, seed);
        let mut layer: Box<dyn Flow<f64>> = if iaf {
            Box::new(Iaf::from_made(made, transform))
        } else {
            Box::new(Maf::from_made(made, transform))
        };
        randomize_params(layer.as_mut(), IAF_PARAM_SCALE, &mut rng(seed ^ 18));
        let spec = layer.to_spec().expect("Maf and Iaf describe themselves");
        let mut rebuilt = build_layer::<f64>(&spec).unwrap();
        prop_assert_eq!(rebuilt.to_spec(), Some(spec));
        prop_assert_eq!(rebuilt.params().len(), layer.params().len());
        for (p, q) in rebuilt.params_mut().into_iter().zip(layer.params()) {
            prop_assert_eq!(&p.name, &q.name);
            p.value = q.value.clone();
        }
        let z = randn(&[2, shape.dim], seed ^ 19);
        prop_assert_eq!(layer.forward_tensor(&z).0.to_vec(), rebuilt.forward_tensor(&z).0.to_vec());
        prop_assert_eq!(layer.inverse_tensor(&z).1.to_vec(), rebuilt.inverse_tensor(&z).1.to_vec());
    }

    // Stacks with orders alternating: invertible, log-dets right.
    #[test]
    fn maf_and_iaf_stacks_pass_check_flow(dim in 1usize..6, layers in 1usize..4, seed in any::<u64>()) {
        let mut r = rng(seed);
        let mut maf = Sequential::<f64>::new(maf_layers(dim, layers, &[6, 6], &mut r));
        randomize_params(&mut maf, 0.3, &mut r);
        let mut iaf = Sequential::<f64>::new(iaf_layers(dim, layers, &[5], Transform::Gated, &mut r));
        randomize_params(&mut iaf, 0.3, &mut r);
        let z = randn(&[2, dim], seed ^ 17);
        if let Err(e) = check_flow(&maf, &z, options()) { panic!("{e}"); }
        if let Err(e) = check_flow(&iaf, &z, options()) { panic!("{e}"); }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    // ∇U by hand = central differences of U, on the plotted box and past its walls.
    #[test]
    fn energy_gradients_match_finite_differences(which in 0usize..4, z1 in -5.0f64..5.0, z2 in -5.0f64..5.0) {
        let energy = Energy::ALL[which];
        let (_, grad) = energy.energy_and_gradient([z1, z2]);
        let h = 1e-6;
        for (axis, g) in grad.iter().enumerate() {
            let (mut plus, mut minus) = ([z1, z2], [z1, z2]);
            plus[axis] += h;
            minus[axis] -= h;
            let numeric = (energy.energy(plus) - energy.energy(minus)) / (2.0 * h);
            prop_assert!(crate::tolerance::close(*g, numeric, 1e-5),
                "{}: ∂U/∂z{} at ({z1}, {z2}): by hand {g:e}, finite differences {numeric:e}", energy.name(), axis + 1);
        }
    }

    // energy_var carries U as its value and ∇U as its gradient on the tape.
    #[test]
    fn energy_var_has_the_energy_and_its_gradient(which in 0usize..4, z1 in -4.5f64..4.5, z2 in -4.5f64..4.5) {
        let energy = Energy::ALL[which];
        let tape = Tape::new();
        let x = tape.leaf(Tensor::from_vec(vec![z1, z2], &[1, 2]));
        let u = energy.energy_var(&x);
        let (value, grad) = energy.energy_and_gradient([z1, z2]);
        prop_assert!(crate::tolerance::close(u.value().item(), value, KERNEL_RTOL * 100.0));
        let g = tape.backward(&u.sum_all()).wrt(&x).unwrap().to_vec();
        assert_all_close("∇U", &g, &grad, KERNEL_RTOL);
    }
}
