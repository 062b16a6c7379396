//! Helpers shared by the checkpoint tests (tests/checkpoint*.rs): seeded
//! RNGs, bit-for-bit round trips, and models whose layers misdescribe
//! themselves. Each test file uses some of them.
#![allow(dead_code)]

use super::common;
use flowzoo::autodiff::Var;
use flowzoo::error::CheckpointError;
use flowzoo::flows::spec::{LayerSpec, SpecValue};
use flowzoo::flows::{Flow, FlowModel, Sequential};
use flowzoo::tensor::{Element, Tensor};
use flowzoo::train::checkpoint::{load_model, save_model, to_bytes, Checkpoint};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::path::Path;

pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// The bits of every entry, so that equality means bit-for-bit.
pub fn bits<T: Element>(t: &Tensor<T>) -> Vec<u64> {
    t.to_f64_vec().iter().map(|v| v.to_bits()).collect()
}

/// Saves `model`, loads it back, and checks that parameters, buffers,
/// `log_prob` on `x` and samples from the same seed are identical to the bit.
pub fn assert_round_trip<T: Element>(name: &str, mut model: FlowModel<T>, x: &Tensor<T>) {
    // Random parameters, so that a parameter loaded into the wrong place shows.
    let mut r = rng(7);
    for p in model.params_mut() {
        p.value = Tensor::randn(p.value.shape(), &mut r).mul_scalar(T::from_f64(0.1));
    }
    let path = common::temp_dir(&format!("ckpt-{name}")).join("model.flowzoo");
    save_model(&path, &model).unwrap_or_else(|e| panic!("{name}: save: {e}"));
    let loaded = load_model::<T>(&path).unwrap_or_else(|e| panic!("{name}: load: {e}"));

    let (before, after) = (model.params(), loaded.params());
    assert_eq!(before.len(), after.len(), "{name}: parameter count");
    for (p, q) in before.iter().zip(&after) {
        assert_eq!(p.name, q.name, "{name}: parameter order");
        assert_eq!(bits(&p.value), bits(&q.value), "{name}: {}", p.name);
    }
    let (before, after) = (model.flow.buffers(), loaded.flow.buffers());
    assert_eq!(before.len(), after.len(), "{name}: buffer count");
    for ((n, a), (m, b)) in before.iter().zip(&after) {
        assert_eq!((n, bits(a)), (m, bits(b)), "{name}: buffer {n}");
    }
    assert_eq!(model.prior, loaded.prior, "{name}: prior");
    assert_eq!(model.flow.to_spec(), loaded.flow.to_spec(), "{name}: spec");
    let (lp, lq) = (model.log_prob(x), loaded.log_prob(x));
    assert!(lp.all_finite(), "{name}: log_prob is not finite: {lp:?}");
    assert_eq!(bits(&lp), bits(&lq), "{name}: log_prob");
    let (sp, sq) = (
        model.sample(16, 0.8, &mut rng(3)),
        loaded.sample(16, 0.8, &mut rng(3)),
    );
    assert_eq!(bits(&sp), bits(&sq), "{name}: samples");
    // The file is also what a re-save of the loaded model writes.
    let again = to_bytes(&loaded, None, None).unwrap();
    assert_eq!(
        std::fs::read(&path).unwrap(),
        again,
        "{name}: re-saved bytes"
    );
}

pub fn vectors<T: Element>(batch: usize, dim: usize, seed: u64) -> Tensor<T> {
    Tensor::randn(&[batch, dim], &mut rng(seed))
}

pub fn load_bytes(bytes: &[u8]) -> Result<Checkpoint<f32>, CheckpointError> {
    Checkpoint::from_bytes(bytes, Path::new("bad.flowzoo"))
}

pub fn error_of(bytes: &[u8]) -> CheckpointError {
    match load_bytes(bytes) {
        Ok(_) => panic!("a bad checkpoint loaded"),
        Err(e) => {
            let message = e.to_string();
            assert!(message.contains("bad.flowzoo"), "no file name: {message}");
            e
        }
    }
}

/// A layer that tells a different architecture than it holds: its spec
/// claims `hidden` widths, its parameters are those of `inner`.
pub struct Misdescribed {
    pub inner: Box<dyn Flow<f32>>,
    pub claim: LayerSpec,
}

impl Flow<f32> for Misdescribed {
    fn name(&self) -> String {
        "Misdescribed".into()
    }
    fn forward<'t>(&self, z: &Var<'t, f32>) -> (Var<'t, f32>, Var<'t, f32>) {
        self.inner.forward(z)
    }
    fn inverse<'t>(&self, x: &Var<'t, f32>) -> (Var<'t, f32>, Var<'t, f32>) {
        self.inner.inverse(x)
    }
    fn params(&self) -> Vec<&flowzoo::autodiff::Param<f32>> {
        self.inner.params()
    }
    fn params_mut(&mut self) -> Vec<&mut flowzoo::autodiff::Param<f32>> {
        self.inner.params_mut()
    }
    fn to_spec(&self) -> Option<LayerSpec> {
        Some(self.claim.clone())
    }
}

/// The bytes of a one-layer model whose layer `inner` claims its own spec
/// after `edit`.
pub fn misdescribed_layer_bytes(
    inner: Box<dyn Flow<f32>>,
    edit: impl FnOnce(LayerSpec) -> LayerSpec,
) -> Vec<u8> {
    let claim = edit(inner.to_spec().unwrap());
    let layers: Vec<Box<dyn Flow<f32>>> = vec![Box::new(Misdescribed { inner, claim })];
    let model = FlowModel::new(4, Sequential::new(layers));
    to_bytes(&model, None, None).unwrap()
}

pub fn set_field(mut spec: LayerSpec, name: &str, value: SpecValue) -> LayerSpec {
    for (n, v) in &mut spec.fields {
        if n == name {
            *v = value.clone();
        }
    }
    spec
}
