//! Issue 17, item 3: the proofs run on a trained, saved model, layer by
//! layer (`flows::check::check_layers`, what `flowzoo check` prints). A
//! healthy trained model passes everywhere; a saved model with one layer
//! whose log-det is wrong fails on that layer, by index and name, and
//! nowhere else. Issue 16: a conditional model's layers are checked in x,
//! each row at its own context (`check_layers_given`), and a layer whose
//! log-det is wrong at some contexts fails there.

mod common;

use flowzoo::autodiff::{Param, Var};
use flowzoo::flows::check::{
    check_flow, check_layers, check_layers_given, randomize_params, CheckOptions,
};
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

/// x = z·e^(w·c₀) per feature, reading a context of width 1: its log-det
/// is D·w·c₀, but it reports D·w·c₀ + flaw·c₀², right at c₀ = 0 (and
/// everywhere for flaw = 0), wrong at every other context. Forward and
/// inverse carry the flaw alike, so only the finite differences see it.
struct ContextScale {
    dim: usize,
    weight: f64,
    flaw: f64,
}

impl ContextScale {
    fn scale<'t>(
        &self,
        v: &Var<'t, f64>,
        c: Option<&Var<'t, f64>>,
        sign: f64,
    ) -> (Var<'t, f64>, Var<'t, f64>) {
        let c = c.expect("ContextScale reads a context");
        let batch = v.shape()[0];
        let s = c.mul_scalar(sign * self.weight);
        let out = v.mul(&s.exp());
        let log_det = s
            .mul_scalar(self.dim as f64)
            .add(&c.square().mul_scalar(sign * self.flaw))
            .reshape(&[batch]);
        (out, log_det)
    }
}

impl Flow<f64> for ContextScale {
    fn name(&self) -> String {
        "ContextScale".into()
    }
    fn context_dim(&self) -> usize {
        1
    }
    fn forward<'t>(&self, z: &Var<'t, f64>) -> (Var<'t, f64>, Var<'t, f64>) {
        self.forward_with_context(z, None)
    }
    fn inverse<'t>(&self, x: &Var<'t, f64>) -> (Var<'t, f64>, Var<'t, f64>) {
        self.inverse_with_context(x, None)
    }
    fn forward_with_context<'t>(
        &self,
        z: &Var<'t, f64>,
        c: Option<&Var<'t, f64>>,
    ) -> (Var<'t, f64>, Var<'t, f64>) {
        self.scale(z, c, 1.0)
    }
    fn inverse_with_context<'t>(
        &self,
        x: &Var<'t, f64>,
        c: Option<&Var<'t, f64>>,
    ) -> (Var<'t, f64>, Var<'t, f64>) {
        self.scale(x, c, -1.0)
    }
}

#[test]
fn check_layers_given_proves_each_row_at_its_own_context_and_catches_a_log_det_wrong_at_some() {
    let x = rows(3);
    let check = |flaw: f64, contexts: &[f64]| {
        let layer = ContextScale {
            dim: 2,
            weight: 0.8,
            flaw,
        };
        let layers: Vec<Box<dyn Flow<f64>>> = vec![Box::new(layer)];
        let c = Tensor::from_vec(contexts.to_vec(), &[contexts.len(), 1]);
        let checks = check_layers_given(&layers, &x, Some(&c), CheckOptions::default());
        assert_eq!(checks.len(), 1);
        checks[0].clone()
    };
    // The right log-det passes at contexts that scale by e^-2.4 … e^3.2:
    // the finite differences of row b are taken at row b's context.
    let right = check(0.0, &[-1.5, 0.0, 2.0]);
    assert!(right.passed, "{right:?}");
    // The flawed one passes where it is right (c₀ = 0, for every row)...
    let at_zero = check(1e-3, &[0.0, 0.0, 0.0]);
    assert!(at_zero.passed, "{at_zero:?}");
    // ...and fails as soon as one row sits at a context where it is wrong:
    // 1e-3·2² = 4e-3 nats off D·w·c₀ = 3.2, relative 4e-3 / 3.204.
    for contexts in [&[0.0, 0.0, 2.0][..], &[2.0][..]] {
        let wrong = check(1e-3, contexts);
        assert!(!wrong.passed, "{contexts:?}: {wrong:?}");
        assert!(
            (wrong.log_det_error - 4e-3 / 3.204).abs() < 1e-6,
            "{contexts:?}: {wrong:?}"
        );
        assert!(
            wrong.inverse_error < 1e-12 && wrong.direction_error < 1e-12,
            "{wrong:?}"
        );
    }
}

#[test]
fn a_conditional_realnvp_with_random_weights_passes_every_layer_at_every_row_context() {
    let mut rng = StdRng::seed_from_u64(3);
    let mut model = FlowModel::<f64>::conditional_realnvp(2, 3, 4, 8, &mut rng);
    for layer in model.flow.layers.iter_mut() {
        randomize_params(layer.as_mut(), 0.3, &mut rng);
    }
    let c = Tensor::randn(&[4, 3], &mut rng).mul_scalar(2.0);
    let checks = check_layers_given(
        &model.flow.layers,
        &rows(4),
        Some(&c),
        CheckOptions::default(),
    );
    assert_eq!(checks.len(), 4);
    for check in &checks {
        assert!(check.passed, "{check:?}");
    }
    // The context matters: the same rows at another context give other latents.
    let (z_c, _) = model.flow.inverse_tensor_with_context(&rows(4), Some(&c));
    let (z_0, _) = model
        .flow
        .inverse_tensor_with_context(&rows(4), Some(&Tensor::zeros(&[4, 3])));
    assert!(z_c
        .to_vec()
        .iter()
        .zip(z_0.to_vec())
        .any(|(a, b)| (a - b).abs() > 1e-3));
}
