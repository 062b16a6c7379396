//! The "Add a layer" walkthrough of the `flows` module doc, proven: a layer
//! defined here, outside the crate, passes `check_flow`, joins the registry
//! with `registry::register`, and round-trips through a checkpoint bit for
//! bit, like the crate's own layers. Without registration the loader names
//! the kind it does not know; the crate's own kinds cannot be replaced.

mod common;

use flowzoo::autodiff::{Param, Var};
use flowzoo::error::CheckpointError;
use flowzoo::flows::check::{check_flow, randomize_params, CheckOptions};
use flowzoo::flows::error::LayerPath;
use flowzoo::flows::registry::{self, register};
use flowzoo::flows::spec::LayerSpec;
use flowzoo::flows::{AffineCoupling, Flow, FlowError, FlowModel, Mask, Sequential};
use flowzoo::tensor::{Element, Tensor};
use flowzoo::train::checkpoint::{load_model, save_model};
use rand::rngs::StdRng;
use rand::SeedableRng;

/// The kind the round-trip test registers.
const KIND: &str = "ScaleAll";

/// A kind no test registers (registration is global to the process, so the
/// test of an unknown kind needs a name of its own).
const UNREGISTERED: &str = "ScaleAllNeverRegistered";

/// A layer of the test's own: every feature scaled by one learned factor,
///
/// forward x = z · exp(a),  log|det ∂x/∂z| = D·a  (the Jacobian is e^a·I);
/// inverse z = x · exp(−a), log-det −D·a.
///
/// `kind` is the name its spec carries.
struct ScaleAll<T: Element> {
    kind: &'static str,
    dim: usize,
    /// a, shape `[1]`.
    log_scale: Param<T>,
}

impl<T: Element> ScaleAll<T> {
    /// The identity (a = 0) on `dim` features.
    fn new(kind: &'static str, dim: usize) -> Self {
        ScaleAll {
            kind,
            dim,
            log_scale: Param::new("log_scale", Tensor::zeros(&[1])),
        }
    }

    /// The reader of step 2 of the walkthrough: the spec `to_spec` wrote,
    /// back to the layer, with a placeholder parameter the loader fills.
    fn from_spec(spec: &LayerSpec) -> Result<Self, FlowError> {
        let dim = spec.usize("dim")?;
        if dim == 0 {
            return Err(spec.error("dim", "0 is not a size"));
        }
        Ok(ScaleAll::new(KIND, dim))
    }

    /// `v · exp(sign · a)` and its log-det `sign · D · a` per sample.
    fn scale<'t>(&self, v: &Var<'t, T>, sign: f64) -> (Var<'t, T>, Var<'t, T>) {
        assert_eq!(&v.shape()[1..], &[self.dim], "ScaleAll: input shape");
        let a = v
            .tape()
            .param(&self.log_scale)
            .mul_scalar(T::from_f64(sign));
        let x = v.mul(&a.reshape(&[1, 1]).exp());
        let log_det = a
            .mul_scalar(T::from_f64(self.dim as f64))
            .broadcast_to(&[v.shape()[0]]);
        (x, log_det)
    }
}

impl<T: Element> Flow<T> for ScaleAll<T> {
    fn name(&self) -> String {
        self.kind.into()
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

    fn per_sample(&self) -> bool {
        true
    }

    fn to_spec(&self) -> Option<LayerSpec> {
        Some(LayerSpec::new(self.kind).with("dim", self.dim))
    }
}

fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// The bits of every entry, so that equality means bit for bit.
fn bits<T: Element>(t: &Tensor<T>) -> Vec<u64> {
    t.to_f64_vec().iter().map(|v| v.to_bits()).collect()
}

/// A model of a built-in coupling followed by a `ScaleAll` of `kind`, with
/// random parameters (so a parameter loaded into the wrong place shows).
fn model(kind: &'static str) -> FlowModel<f32> {
    let mut r = rng(0);
    let layers: Vec<Box<dyn Flow<f32>>> = vec![
        Box::new(AffineCoupling::new(Mask::half(3, false), 8, &mut r)),
        Box::new(ScaleAll::new(kind, 3)),
    ];
    let mut model = FlowModel::new(3, Sequential::new(layers));
    for p in model.params_mut() {
        p.value = Tensor::randn(p.value.shape(), &mut r).mul_scalar(0.3);
    }
    model
}

#[test]
fn a_layer_defined_outside_the_crate_passes_check_flow() {
    // Step 4 of the walkthrough: the proofs every layer carries, in f64.
    let mut layer = ScaleAll::<f64>::new(KIND, 4);
    randomize_params(&mut layer, 0.5, &mut rng(1));
    let z = Tensor::<f64>::randn(&[3, 4], &mut rng(2));
    if let Err(e) = check_flow(&layer, &z, CheckOptions::default()) {
        panic!("{e}");
    }
}

#[test]
fn a_registered_layer_round_trips_through_a_checkpoint() {
    register::<f32>(KIND, |spec, _| {
        Ok(Box::new(ScaleAll::<f32>::from_spec(spec)?))
    });
    let model = model(KIND);
    let path = common::temp_dir("registry").join("model.flowzoo");
    save_model(&path, &model).unwrap_or_else(|e| panic!("save: {e}"));
    let loaded = load_model::<f32>(&path).unwrap_or_else(|e| panic!("load: {e}"));

    assert_eq!(model.flow.to_spec(), loaded.flow.to_spec(), "spec");
    assert_eq!(loaded.flow.layers[1].name(), KIND);
    let (before, after) = (model.params(), loaded.params());
    assert_eq!(before.len(), after.len(), "parameter count");
    for (p, q) in before.iter().zip(&after) {
        assert_eq!(p.name, q.name, "parameter order");
        assert_eq!(bits(&p.value), bits(&q.value), "{}", p.name);
    }
    let x = Tensor::<f32>::randn(&[16, 3], &mut rng(3));
    let (lp, lq) = (model.log_prob(&x), loaded.log_prob(&x));
    assert!(lp.all_finite(), "log_prob is not finite: {lp:?}");
    assert_eq!(bits(&lp), bits(&lq), "log_prob");
}

#[test]
fn loading_an_unregistered_kind_names_it_and_its_place() {
    let model = model(UNREGISTERED);
    let path = common::temp_dir("registry-unknown").join("model.flowzoo");
    // Saving needs no registration: the layer writes its own spec.
    save_model(&path, &model).unwrap_or_else(|e| panic!("save: {e}"));
    let err = load_model::<f32>(&path)
        .err()
        .expect("an unknown kind must not load");
    match &err {
        CheckpointError::Layer {
            path: file,
            source: FlowError::UnknownKind { at, kind },
        } => {
            assert_eq!(kind, UNREGISTERED);
            // The second layer of the model's Sequential.
            assert_eq!(at, &LayerPath(vec![1]));
            assert_eq!(file, &path);
        }
        other => panic!("expected an unknown layer kind, got {other:?}"),
    }
    let message = err.to_string();
    assert!(
        message.contains(UNREGISTERED) && message.contains("layer 1"),
        "{message}"
    );
    assert!(!registry::layer_kinds().contains(&UNREGISTERED));
}

#[test]
fn registering_a_kind_of_the_crate_panics() {
    // Two of them (each prints its panic message): a layer and a container.
    for kind in ["AffineCoupling", "Sequential"] {
        assert!(registry::layer_kinds().contains(&kind));
        let result = std::panic::catch_unwind(|| {
            register::<f32>(kind, |spec, _| {
                Ok(Box::new(ScaleAll::<f32>::from_spec(spec)?))
            })
        });
        let payload = result.expect_err("replacing a layer kind of the crate must panic");
        let message = payload
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default();
        assert!(message.contains(kind), "{kind}: {message}");
    }
}
