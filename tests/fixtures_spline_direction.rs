//! Spline models saved before the spline's direction was a field of its
//! spec (flowzoo's spline layers then always applied g toward the data,
//! x = g(z)) still load with that direction and give the same
//! log-densities, bit for bit; the same models re-specified with the new
//! default direction (data to noise, z = g(x)) give other log-densities, so
//! the bit test would catch a loader that picked the default for them. The
//! files in `tests/fixtures/` were made by `flowzoo train` at commit
//! 38395d9:
//!
//! ```text
//! flowzoo train --data moons --flow nsf --layers 2 --hidden 8 --steps 200 --seed 0 --out nsf
//! flowzoo train --data moons --flow nsf-ar --layers 2 --hidden 8 --steps 200 --seed 0 --out nsf-ar
//! flowzoo train --data digits --flow nsf-image --layers 1 --hidden 4 --steps 20 --eval-every 20 --seed 0 --out nsf-image
//! ```
//!
//! and the expected values below were printed by that build.

#[path = "common/fixtures.rs"]
mod fixtures;

use fixtures::{fixture, points};
use flowzoo::flows::registry::build_sequential;
use flowzoo::flows::spec::{LayerSpec, SpecValue};
use flowzoo::flows::spline::SplineDirection;
use flowzoo::flows::{Flow, FlowModel};
use flowzoo::tensor::Tensor;
use flowzoo::train::checkpoint::Checkpoint;

/// Each fixture, the points it is evaluated on (data-side values in (0, 1)
/// for the digits model, where its logit layer is defined), and the bits
/// of the log-densities the build that wrote it printed.
fn cases() -> [(&'static str, Tensor<f32>, Vec<u32>); 3] {
    [
        (
            "moons-nsf.v-before-direction.flowzoo",
            points(4, 2, 1.5),
            // -2.2657237, -7.8556485, -9.080091, -3.6308446
            vec![0xc011019e, 0xc0fb6179, 0xc111480e, 0xc0685fc2],
        ),
        (
            "moons-nsf-ar.v-before-direction.flowzoo",
            points(4, 2, 1.5),
            // -1.504676, -5.630803, -7.252903, -1.7659571
            vec![0xbfc09939, 0xc0b42f8a, 0xc0e817c8, 0xbfe20ae2],
        ),
        (
            "digits-nsf-image.v-before-direction.flowzoo",
            points(3, 64, 0.45).add_scalar(0.5),
            // -33.29219, -23.765701, -18.596825
            vec![0xc2052b34, 0xc1be2028, 0xc194c64c],
        ),
    ]
}

fn bits(t: &Tensor<f32>) -> Vec<u32> {
    t.to_vec().iter().map(|v| v.to_bits()).collect()
}

/// The directions of every spline in `spec` (the layers that write
/// `min_derivative`), in order, as their spec names them; `None` for a
/// spline whose spec has no direction.
fn directions_in(spec: &LayerSpec, into: &mut Vec<Option<String>>) {
    if spec.get("min_derivative").is_some() {
        into.push(match spec.get("direction") {
            Some(SpecValue::Str(name)) => Some(name.clone()),
            _ => None,
        });
    }
    for child in &spec.children {
        directions_in(child, into);
    }
}

/// `spec` with every spline's direction set to `direction`.
fn with_direction(mut spec: LayerSpec, direction: SplineDirection) -> LayerSpec {
    if spec.get("min_derivative").is_some() {
        spec.fields.retain(|(name, _)| name != "direction");
        spec = spec.with("direction", direction.name());
    }
    spec.children = spec
        .children
        .into_iter()
        .map(|c| with_direction(c, direction))
        .collect();
    spec
}

/// `model` rebuilt from its own spec with every spline's direction set to
/// `direction`, keeping its parameters.
fn respecified(model: &FlowModel<f32>, direction: SplineDirection) -> FlowModel<f32> {
    let spec = with_direction(model.flow.to_spec().unwrap(), direction);
    let flow = build_sequential::<f32>(&spec).unwrap();
    let mut rebuilt = FlowModel {
        prior: model.prior,
        prior_params: model.prior_params.clone(),
        flow,
    };
    let values: Vec<Tensor<f32>> = model.params().iter().map(|p| p.value.clone()).collect();
    assert_eq!(values.len(), rebuilt.params().len());
    for (param, value) in rebuilt.params_mut().into_iter().zip(values) {
        param.value = value;
    }
    rebuilt
}

#[test]
fn splines_saved_without_a_direction_load_noise_to_data_with_their_old_log_densities() {
    for (file, x, expected) in cases() {
        let model = Checkpoint::<f32>::load(fixture(file)).unwrap().model;
        let log_p = model.log_prob(&x);
        assert_eq!(
            bits(&log_p),
            expected,
            "{file}: log p = {:?}",
            log_p.to_vec()
        );
        // The files hold no direction; the loaded model writes the one it uses.
        let mut written = Vec::new();
        directions_in(&model.flow.to_spec().unwrap(), &mut written);
        assert!(!written.is_empty(), "{file}: no spline in the model");
        assert!(
            written
                .iter()
                .all(|d| d.as_deref() == Some("noise-to-data")),
            "{file}: the loaded splines' directions {written:?}"
        );
    }
}

#[test]
fn the_old_models_in_the_new_default_direction_give_other_log_densities() {
    for (file, x, expected) in cases() {
        let model = Checkpoint::<f32>::load(fixture(file)).unwrap().model;
        // Naming the old direction explicitly changes nothing...
        let old = respecified(&model, SplineDirection::NoiseToData);
        assert_eq!(bits(&old.log_prob(&x)), expected, "{file}");
        // ...while the default direction moves every log-density.
        let new = respecified(&model, SplineDirection::default())
            .log_prob(&x)
            .to_vec();
        for (i, (&new, old)) in new.iter().zip(model.log_prob(&x).to_vec()).enumerate() {
            assert!(
                (new - old).abs() > 1e-4,
                "{file}, point {i}: log p {old} noise to data, {new} data to noise"
            );
        }
    }
}
