//! Issue 17, item 3: the proofs run on a trained, saved model, layer by
//! layer (`flows::check::check_layers`, what `flowzoo check` prints). A
//! healthy trained model passes everywhere; a saved model with one layer
//! whose log-det is wrong fails on that layer, by index and name, and
//! nowhere else.

mod common;

use flowzoo::autodiff::{Param, Var};
use flowzoo::flows::check::{check_flow, check_layers, CheckOptions};
use flowzoo::flows::model::realnvp_layers;
use flowzoo::flows::registry::register;
use flowzoo::flows::spec::LayerSpec;
use flowzoo::flows::zoo::FlowName;
use flowzoo::flows::{Flow, FlowError, FlowModel, Rescale, Sequential};
use flowzoo::tensor::{Element, Tensor};
use flowzoo::train::checkpoint::{load_model, save_model, to_bytes, Checkpoint};
use flowzoo::train::run::{run, Dataset, RunConfig};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::path::Path;

/// A moons run of `flow`, 2 layers of width 16, 200 steps.
fn trained(flow: FlowName) -> FlowModel<f32> {
    let config = RunConfig {
        layers: 2,
        hidden: 16,
        steps: 200,
        ..RunConfig::new(Dataset::Toy(flowzoo::data::Toy2d::moons()), flow).unwrap()
    };
    run(&config, |_, _| {}).expect("trains").model
}

/// Moons points to check at.
fn rows(n: usize) -> Tensor<f64> {
    let points = flowzoo::data::Toy2d::moons().sample(n, &mut StdRng::seed_from_u64(5));
    Tensor::from_vec(points, &[n, 2])
}

/// The model as f64, through its checkpoint bytes (as `flowzoo check` reads it).
fn as_f64(model: &FlowModel<f32>) -> FlowModel<f64> {
    let bytes = to_bytes(model, None, None).expect("saveable");
    Checkpoint::<f64>::from_bytes(&bytes, Path::new("trained.flowzoo"))
        .expect("loads as f64")
        .model
}

#[test]
fn trained_models_pass_every_layer_and_autoregressive_ones_are_triangular() {
    for flow in [
        FlowName::RealNvp,
        FlowName::Maf,
        FlowName::Glow,
        FlowName::Nsf,
        FlowName::NsfAr,
    ] {
        let model = as_f64(&trained(flow));
        let checks = check_layers(&model.flow.layers, &rows(4), CheckOptions::default());
        assert_eq!(checks.len(), model.flow.layers.len());
        for c in &checks {
            assert!(c.passed, "{}: {c:?}", flow.name());
            assert!(c.inverse_error.is_finite() && c.log_det_error.is_finite());
            assert_eq!(
                c.triangularity_error.is_some(),
                c.name == "Maf" || c.name == "SplineMaf",
                "{}: {c:?}",
                flow.name()
            );
        }
        if flow == FlowName::Maf || flow == FlowName::NsfAr {
            assert!(checks.iter().any(|c| c.triangularity_error.is_some()));
        }
    }
}

/// The kind of the corrupted layer.
const KIND: &str = "ScaleWithWrongLogDet";

/// x = z·e^a per feature, whose log-det is D·a, but which reports (D + 1)·a:
/// a layer whose stored scale makes its log-det wrong, file still valid.
struct ScaleWithWrongLogDet<T: Element> {
    dim: usize,
    log_scale: Param<T>,
}

impl<T: Element> ScaleWithWrongLogDet<T> {
    /// v·e^(sign·a), with the wrong log-det sign·(D + 1)·a per sample.
    fn scale<'t>(&self, v: &Var<'t, T>, sign: f64) -> (Var<'t, T>, Var<'t, T>) {
        let batch = v.value().dim(0);
        let a = v
            .tape()
            .param(&self.log_scale)
            .mul_scalar(T::from_f64(sign));
        let out = v.mul(&a.reshape(&[1, 1]).exp());
        let log_det = a
            .mul_scalar(T::from_f64(self.dim as f64 + 1.0))
            .broadcast_to(&[batch]);
        (out, log_det)
    }
}

impl<T: Element> Flow<T> for ScaleWithWrongLogDet<T> {
    fn name(&self) -> String {
        KIND.into()
    }
    fn forward<'t>(&self, z: &Var<'t, T>) -> (Var<'t, T>, Var<'t, T>) {
        self.scale(z, 1.0)
    }
    fn inverse<'t>(&self, x: &Var<'t, T>) -> (Var<'t, T>, Var<'t, T>) {
        self.scale(x, -1.0)
    }
    fn params(&self) -> Vec<&Param<T>> {
        vec![&self.log_scale]
    }
    fn params_mut(&mut self) -> Vec<&mut Param<T>> {
        vec![&mut self.log_scale]
    }
    fn to_spec(&self) -> Option<LayerSpec> {
        Some(LayerSpec::new(KIND).with("dim", self.dim))
    }
}

fn reader<T: Element>(spec: &LayerSpec) -> Result<ScaleWithWrongLogDet<T>, FlowError> {
    Ok(ScaleWithWrongLogDet {
        dim: spec.usize("dim")?,
        log_scale: Param::new("log_scale", Tensor::zeros(&[1])),
    })
}

#[test]
fn a_saved_layer_with_a_wrong_log_det_is_named_and_the_others_pass() {
    register::<f32>(KIND, |spec, _| Ok(Box::new(reader::<f32>(spec)?)));
    register::<f64>(KIND, |spec, _| Ok(Box::new(reader::<f64>(spec)?)));
    // The trained RealNVP's two couplings with the corrupted layer between
    // them: fresh layers of the same architecture, given the trained values
    // (Sequential names its parameters by position when it is built).
    let trained = trained(FlowName::RealNvp);
    let mut layers = realnvp_layers::<f32, _>(2, 2, 16, &mut StdRng::seed_from_u64(9));
    let mut bad = reader::<f32>(&LayerSpec::new(KIND).with("dim", 2usize)).unwrap();
    bad.log_scale.value = Tensor::full(&[1], 0.3);
    layers.insert(1, Box::new(bad));
    let mut model = FlowModel::new(2, Sequential::new(layers));
    let mut values = trained.params().into_iter().map(|p| p.value.clone());
    for p in model.params_mut() {
        if p.name != "layer1.log_scale" {
            p.value = values.next().expect("as many trained values");
        }
    }
    assert!(values.next().is_none(), "every trained value used");
    let path = common::temp_dir("check-model").join("model.flowzoo");
    save_model(&path, &model).expect("saves");
    let model = load_model::<f64>(&path).expect("a valid file");

    let checks = check_layers(&model.flow.layers, &rows(4), CheckOptions::default());
    let failed: Vec<_> = checks.iter().filter(|c| !c.passed).collect();
    assert_eq!(failed.len(), 1, "{checks:?}");
    assert_eq!(
        (failed[0].path.clone(), failed[0].name.as_str()),
        (vec![1], KIND)
    );
    // The log-det is off by a = 0.3 nats: relative error 0.3 / max(1, 0.9).
    assert!(
        (failed[0].log_det_error - 0.3).abs() < 1e-6,
        "{:?}",
        failed[0]
    );
    assert!(failed[0].inverse_error < 1e-12, "the inverse is right");
}

#[test]
fn check_flow_catches_a_log_det_three_millionths_off_and_one_where_the_map_contracts_hard() {
    // Reported log-det (D + 1)·a against the true D·a: off by a. The
    // round-off allowance of the finite differences must not hide a
    // 3e-6 error where the map is well conditioned...
    let z = rows(3);
    let mut layer = reader::<f64>(&LayerSpec::new(KIND).with("dim", 2usize)).unwrap();
    layer.log_scale.value = Tensor::full(&[1], 3e-6);
    let failure = check_flow(&layer, &z, CheckOptions::default()).expect_err("3e-6 off");
    assert!(failure.property.contains("finite differences"), "{failure}");
    // ...nor an error of a where it contracts by e⁻⁸ per feature (|det| = e⁻¹⁶),
    // and a right log-det there passes.
    layer.log_scale.value = Tensor::full(&[1], -8.0);
    let failure = check_flow(&layer, &z, CheckOptions::default()).expect_err("8 nats off");
    assert!(failure.property.contains("finite differences"), "{failure}");
    let mut right = Rescale::<f64>::new(&[2]);
    right.log_scale.value = Tensor::full(&[2], -8.0);
    check_flow(&right, &z, CheckOptions::default()).expect("a right log-det passes");
}
