//! Every flow layer and stack through the public `check_flow` and the
//! parameter gradcheck, in f64, at random points and random parameters.

use crate::strategies::{randn, rng};
use crate::tolerance::{GRADCHECK_H, GRADCHECK_RTOL, INVERSE_RTOL, LOG_DET_RTOL};
use flowzoo::data::preprocess::Logit;
use flowzoo::flows::check::{check_flow, gradcheck_params, randomize_params, CheckOptions};
use flowzoo::flows::{AffineCoupling, Flow, FlowModel, Mask, Reverse, Sequential};
use proptest::prelude::*;

fn options() -> CheckOptions {
    CheckOptions {
        inverse_rtol: INVERSE_RTOL,
        log_det_rtol: LOG_DET_RTOL,
        ..CheckOptions::default()
    }
}

fn mask_strategy() -> impl Strategy<Value = Mask> {
    (2usize..=7, any::<bool>(), 0usize..3).prop_map(|(dim, flip, kind)| match kind {
        0 => Mask::half(dim, flip),
        _ => Mask::alternating(dim, flip as usize),
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    // x = f(z), z' = f⁻¹(x): z' = z to INVERSE_RTOL; log-det = log|det ∂x/∂z|
    // (finite differences) and = −logdet_inverse(x), to LOG_DET_RTOL.
    #[test]
    fn affine_coupling_passes_check_flow(mask in mask_strategy(), batch in 1usize..4, seed in any::<u64>()) {
        let mut r = rng(seed);
        let dim = mask.dim;
        let mut layer = AffineCoupling::<f64>::new(mask, 8, &mut r);
        randomize_params(&mut layer, 0.5, &mut r);
        let z = randn(&[batch, dim], seed ^ 1);
        if let Err(e) = check_flow(&layer, &z, options()) { panic!("{e}"); }
    }

    #[test]
    fn affine_coupling_gradient_reaches_every_parameter(mask in mask_strategy(), seed in any::<u64>()) {
        let mut r = rng(seed);
        let dim = mask.dim;
        let mut layer = AffineCoupling::<f64>::new(mask, 4, &mut r);
        randomize_params(&mut layer, 0.5, &mut r);
        let x = randn(&[3, dim], seed ^ 2);
        if let Err(e) = gradcheck_params(&mut layer, &x, GRADCHECK_H, GRADCHECK_RTOL) { panic!("{e}"); }
    }

    #[test]
    fn realnvp_stack_passes_check_flow(dim in 2usize..6, layers in 1usize..5, seed in any::<u64>()) {
        let mut r = rng(seed);
        let mut model = FlowModel::<f64>::realnvp(dim, layers, 8, &mut r);
        randomize_params(&mut model.flow, 0.3, &mut r);
        let z = randn(&[2, dim], seed ^ 3);
        if let Err(e) = check_flow(&model.flow, &z, options()) { panic!("{e}"); }
    }

    #[test]
    fn realnvp_stack_gradient_reaches_every_parameter(dim in 2usize..5, seed in any::<u64>()) {
        let mut r = rng(seed);
        let mut model = FlowModel::<f64>::realnvp(dim, 3, 4, &mut r);
        randomize_params(&mut model.flow, 0.3, &mut r);
        let x = randn(&[2, dim], seed ^ 4);
        if let Err(e) = gradcheck_params(&mut model.flow, &x, GRADCHECK_H, GRADCHECK_RTOL) { panic!("{e}"); }
    }

    #[test]
    fn reverse_and_logit_pass_check_flow(dim in 1usize..8, seed in any::<u64>()) {
        let z = randn(&[2, dim], seed);
        if let Err(e) = check_flow(&Reverse::new(dim), &z, options()) { panic!("{e}"); }
        let logit = Logit::new(dim, 0.05);
        if let Err(e) = check_flow(&logit, &z, options()) { panic!("{e}"); }
        let stack = Sequential::<f64>::new(vec![Box::new(Reverse::new(dim)), Box::new(Logit::new(dim, 0.05))]);
        if let Err(e) = check_flow(&stack, &z, options()) { panic!("{e}"); }
    }
}

/// A check that cannot pass on a wrong layer: a flow whose reported log-det
/// is off by a constant must be caught.
#[test]
fn check_flow_catches_a_wrong_log_det() {
    struct Liar;
    impl Flow<f64> for Liar {
        fn name(&self) -> String {
            "Liar".into()
        }
        fn forward<'t>(
            &self,
            z: &flowzoo::autodiff::Var<'t, f64>,
        ) -> (
            flowzoo::autodiff::Var<'t, f64>,
            flowzoo::autodiff::Var<'t, f64>,
        ) {
            let ld = z.sum_axes(&[1]).mul_scalar(0.0).add_scalar(0.1);
            (z.mul_scalar(1.0), ld)
        }
        fn inverse<'t>(
            &self,
            x: &flowzoo::autodiff::Var<'t, f64>,
        ) -> (
            flowzoo::autodiff::Var<'t, f64>,
            flowzoo::autodiff::Var<'t, f64>,
        ) {
            let ld = x.sum_axes(&[1]).mul_scalar(0.0).add_scalar(-0.1);
            (x.mul_scalar(1.0), ld)
        }
    }
    let z = randn(&[2, 3], 7);
    let err = check_flow(&Liar, &z, options()).unwrap_err();
    assert!(err.property.contains("finite differences"), "{err}");
}
