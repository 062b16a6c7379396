//! The learnable base distributions (`flows::learned_base`): gradients
//! against finite differences, the diagonal Gaussian at its start equal to
//! N(0, I), the mixture's density integrating to 1 in 2-D, its sampler
//! matching its density (a chi-square test with a fixed seed), and its
//! log-density finite and right far from every component.

use crate::strategies::rng;
use crate::tolerance::{close, GRADCHECK_H, GRADCHECK_RTOL};
use flowzoo::autodiff::{kink_aware_derivative, Tape, FD_STENCIL};
use flowzoo::flows::{
    DiagonalNormal, FlowModel, GaussianMixture, Prior, Reverse, Sequential, StandardNormal,
};
use flowzoo::tensor::{Element, Tensor};
use flowzoo::train::sample::DensityGrid;
use proptest::prelude::*;
use rand::rngs::StdRng;

/// A model of `prior` over the bijection Reverse (log-det 0), so its
/// density is the base's with the two coordinates swapped; the base's
/// parameters drawn N(0, scale²) (means at scale 1.5, to spread the
/// components).
fn model_of<T: Element>(prior: Prior, scale: f64, r: &mut StdRng) -> FlowModel<T> {
    let dim = prior.dim();
    let flow = Sequential::new(vec![Box::new(Reverse::new(dim))]);
    let mut model = FlowModel::with_prior(prior, flow);
    for p in &mut model.prior_params {
        let s = if p.name == "prior.means" { 1.5 } else { scale };
        p.value = Tensor::<f64>::randn(p.value.shape(), r)
            .mul_scalar(s)
            .cast();
    }
    model
}

/// −mean log p(x) of `model`.
fn loss(model: &FlowModel<f64>, x: &Tensor<f64>) -> f64 {
    model.log_prob(x).to_vec().iter().sum::<f64>() / -(x.dim(0) as f64)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    // ∂L/∂θ from the tape = central differences (one-sided never needed:
    // the densities are smooth), for every tensor of both bases, L = −mean
    // log p(x), at random parameters and points.
    #[test]
    fn learned_bases_gradients_match_finite_differences(
        dim in 1usize..=3,
        components in 1usize..=4,
        mixture in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let mut r = rng(seed);
        let prior: Prior = if mixture {
            GaussianMixture::new(dim, components).into()
        } else {
            DiagonalNormal::new(dim).into()
        };
        let mut model = model_of::<f64>(prior, 0.5, &mut r);
        let x = Tensor::<f64>::randn(&[4, dim], &mut r).mul_scalar(2.0);
        let tape = Tape::new();
        let l = model.log_prob_var(&tape.constant(x.clone())).mean_all().neg();
        let grads = tape.backward(&l);
        let analytic: Vec<Vec<f64>> = model
            .prior_params
            .iter()
            .map(|p| grads.of(p).expect("every base tensor is on the loss's path").to_vec())
            .collect();
        let f0 = loss(&model, &x);
        for (k, analytic_k) in analytic.iter().enumerate() {
            for (j, &got) in analytic_k.iter().enumerate() {
                let original = model.prior_params[k].value.to_vec()[j];
                let values = FD_STENCIL.map(|step| {
                    model.prior_params[k].value.as_mut_slice()[j] = original + step * GRADCHECK_H;
                    loss(&model, &x)
                });
                model.prior_params[k].value.as_mut_slice()[j] = original;
                let numeric = kink_aware_derivative(f0, values, GRADCHECK_H);
                let name = &model.prior_params[k].name;
                prop_assert!(close(got, numeric, GRADCHECK_RTOL), "{name} entry {j}: tape {got:e}, finite differences {numeric:e}");
            }
        }
    }
}

// At its start (μ = 0, ℓ = 0) the diagonal Gaussian is N(0, I).
#[test]
fn diagonal_normal_starts_as_the_standard_normal() {
    let tape = Tape::<f64>::no_grad();
    let z = tape.constant(Tensor::randn(&[5, 3], &mut rng(1)));
    let diag = DiagonalNormal::new(3);
    let got = diag.log_prob(&z, &diag.initial_params()).value().to_vec();
    let expected = StandardNormal::new(3).log_prob(&z).value().to_vec();
    for (g, e) in got.iter().zip(&expected) {
        assert!(close(*g, *e, 1e-14), "got {g}, expected {e}");
    }
}

/// A 2-D mixture of 3 components with the parameters of seed 3.
fn mixture_2d() -> FlowModel<f64> {
    model_of(GaussianMixture::new(2, 3).into(), 0.4, &mut rng(3))
}

// DESIGN.md proof 6 for the base itself: midpoint quadrature of
// exp(log p) over [−14, 14]² (means within ±6, scales below e^1.2 here) is
// 1 to 1e-3, for the mixture and the diagonal Gaussian.
#[test]
fn learned_bases_integrate_to_one_in_2d() {
    let diag = model_of::<f64>(DiagonalNormal::new(2).into(), 0.4, &mut rng(4));
    for (name, model) in [("mixture", mixture_2d()), ("diagonal", diag)] {
        let grid = DensityGrid::new(&model, [-14.0, 14.0], [-14.0, 14.0], 700);
        let mass = grid.mass();
        assert!((mass - 1.0).abs() < 1e-3, "{name}: mass {mass}");
    }
}

/// The upper `z`-score quantile of χ² with `df` degrees of freedom, by the
/// Wilson-Hilferty cube-root approximation (accurate to about 1 % at
/// df ≥ 30): df·(1 − 2/(9df) + z·√(2/(9df)))³.
fn chi_square_quantile(df: f64, z: f64) -> f64 {
    let a = 2.0 / (9.0 * df);
    df * (1.0 - a + z * a.sqrt()).powi(3)
}

// The sampler draws from the density it reports: 40,000 samples (fixed
// seed) counted in the 12×12 cells of [−6, 6]², against the expected
// counts from quadrature of exp(log p) (30×30 points per cell). Cells
// expecting fewer than 5 are pooled with everything outside the box (the
// rest, by difference), as Pearson's test asks. χ² must stay below its
// 0.1 % quantile (z = 3.09): a sampler that drew the wrong component's
// weight, or scaled by σ² instead of σ, lands far above.
#[test]
fn mixture_sampler_matches_its_density_by_chi_square() {
    let model = mixture_2d();
    let n = 40_000;
    let samples = model.sample(n, 1.0, &mut rng(17)).to_vec();
    let (cells, lo, hi) = (12usize, -6.0, 6.0);
    let width = (hi - lo) / cells as f64;
    let mut observed = vec![0.0; cells * cells];
    let mut outside = 0.0;
    for point in samples.chunks(2) {
        let cell = |v: f64| ((v - lo) / width).floor();
        let (i, j) = (cell(point[0]), cell(point[1]));
        if (0.0..cells as f64).contains(&i) && (0.0..cells as f64).contains(&j) {
            observed[i as usize * cells + j as usize] += 1.0;
        } else {
            outside += 1.0;
        }
    }
    let fine = 30;
    let step = width / fine as f64;
    let mut points = Vec::with_capacity(cells * cells * fine * fine * 2);
    for i in 0..cells {
        for j in 0..cells {
            for a in 0..fine {
                for b in 0..fine {
                    points.push(lo + i as f64 * width + (a as f64 + 0.5) * step);
                    points.push(lo + j as f64 * width + (b as f64 + 0.5) * step);
                }
            }
        }
    }
    let log_p = model
        .log_prob(&Tensor::from_vec(points, &[cells * cells * fine * fine, 2]))
        .to_vec();
    let expected: Vec<f64> = log_p
        .chunks(fine * fine)
        .map(|cell| cell.iter().map(|l| l.exp()).sum::<f64>() * step * step * n as f64)
        .collect();
    let (mut pooled_observed, mut pooled_expected) =
        (outside, n as f64 - expected.iter().sum::<f64>());
    let mut chi_square = 0.0;
    let mut kept = 0;
    for (o, e) in observed.iter().zip(&expected) {
        if *e >= 5.0 {
            chi_square += (o - e).powi(2) / e;
            kept += 1;
        } else {
            pooled_observed += o;
            pooled_expected += e;
        }
    }
    assert!(
        pooled_expected >= 5.0,
        "the pooled cell expects {pooled_expected:.1}: widen the box"
    );
    chi_square += (pooled_observed - pooled_expected).powi(2) / pooled_expected;
    // kept + 1 cells, their counts summing to n: kept degrees of freedom.
    let bound = chi_square_quantile(kept as f64, 3.09);
    assert!(
        kept >= 30 && chi_square < bound,
        "χ² = {chi_square:.1} over {} cells, bound {bound:.1} (pooled: observed {pooled_observed}, expected {pooled_expected:.1})",
        kept + 1
    );
}

// Far from every component each one's density underflows (e^−500000), but
// log-sum-exp keeps the mixture's log-density finite and equal to the
// independent formula max_k [log w_k + log N_k(z)] + log Σ_k e^{… − max},
// in f64 to 1e-12 relative and in f32 to 1e-5, at (±1e3, ±1e3).
#[test]
fn mixture_log_prob_is_finite_and_right_far_away() {
    let model = mixture_2d();
    let get = |name: &str| {
        model
            .prior_params
            .iter()
            .find(|p| p.name == name)
            .unwrap()
            .value
            .to_vec()
    };
    let (logits, means, log_scales) = (
        get("prior.logits"),
        get("prior.means"),
        get("prior.log_scales"),
    );
    let model32 = FlowModel::<f32> {
        prior: model.prior,
        prior_params: model
            .prior_params
            .iter()
            .map(|p| flowzoo::autodiff::Param::new(p.name.clone(), p.value.cast()))
            .collect(),
        flow: Sequential::new(vec![Box::new(Reverse::new(2))]),
    };
    for (x, y) in [(1e3, 1e3), (-1e3, 1e3), (1e3, -1e3), (-1e3, -1e3)] {
        // The flow is Reverse: the base sees (y, x).
        let z = [y, x];
        let top = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let log_norm = top + logits.iter().map(|a| (a - top).exp()).sum::<f64>().ln();
        let terms: Vec<f64> = (0..3)
            .map(|k| {
                let gauss: f64 = (0..2)
                    .map(|i| {
                        let u = (z[i] - means[k * 2 + i]) * (-log_scales[k * 2 + i]).exp();
                        -0.5 * u * u
                            - log_scales[k * 2 + i]
                            - 0.5 * (2.0 * std::f64::consts::PI).ln()
                    })
                    .sum();
                logits[k] - log_norm + gauss
            })
            .collect();
        let max = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let expected = max + terms.iter().map(|t| (t - max).exp()).sum::<f64>().ln();
        let got = model
            .log_prob(&Tensor::from_vec(vec![x, y], &[1, 2]))
            .item();
        assert!(
            got.is_finite() && close(got, expected, 1e-12),
            "f64 at ({x}, {y}): {got} vs {expected}"
        );
        let got32 = f64::from(
            model32
                .log_prob(&Tensor::from_f64_slice(&[x, y], &[1, 2]))
                .item(),
        );
        assert!(
            got32.is_finite() && close(got32, expected, 1e-5),
            "f32 at ({x}, {y}): {got32} vs {expected}"
        );
    }
}
