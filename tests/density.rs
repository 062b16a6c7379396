//! DESIGN.md proof 6: a 2-D model's density integrates to one.

use flowzoo::flows::check::randomize_params;
use flowzoo::flows::FlowModel;
use flowzoo::train::sample::DensityGrid;
use rand::SeedableRng;

// ∫ p(x) dx = 1 by the change of variables; the midpoint rule on a 600×600
// grid over a box holding the mass approximates it to well under 1e-3 for a
// smooth density. Random parameters (scale 0.3) make the map far from the
// identity; the box [−8, 8]² holds the prior's mass pushed through it.
#[test]
fn density_integrates_to_one() {
    for seed in 0..3 {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut model = FlowModel::<f64>::realnvp(2, 4, 16, &mut rng);
        randomize_params(&mut model.flow, 0.3, &mut rng);
        let grid = DensityGrid::new(&model, [-8.0, 8.0], [-8.0, 8.0], 600);
        let mass = grid.mass();
        assert!((mass - 1.0).abs() < 1e-3, "seed {seed}: mass {mass}");
    }
}

// The check can fail: a density scaled by 1.01 (its log shifted) is caught.
#[test]
fn a_mis_normalised_density_is_caught() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let model = FlowModel::<f64>::realnvp(2, 2, 8, &mut rng);
    let mut grid = DensityGrid::new(&model, [-8.0, 8.0], [-8.0, 8.0], 300);
    for l in &mut grid.log_density {
        *l += 0.01f64.ln_1p();
    }
    assert!((grid.mass() - 1.0).abs() > 5e-3);
}
