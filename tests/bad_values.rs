//! Values a well-formed file or a training run can carry and a layer or a
//! reader cannot take (issue 14): a singular 1×1 convolution weight, column
//! statistics of numbers near f64's limit, integer `.npy` arrays. Each is
//! refused with a typed error that says what and where, or handled exactly;
//! none panics or gives a silent NaN.

use flowzoo::data::tabular::{parse_csv, standardize};
use flowzoo::error::{CheckpointError, FlowError};
use flowzoo::flows::inv_conv::InvConvWeight;
use flowzoo::flows::standardize::{column_statistics, Standardize};
use flowzoo::flows::{Flow, FlowModel, InvConv1x1, Reverse, Sequential};
use flowzoo::tensor::{Element, Tensor};
use flowzoo::train::checkpoint::{to_bytes, Checkpoint};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::path::Path;

// ---- a singular 1×1 convolution -------------------------------------------

/// A model [Reverse(3), InvConv1x1(3)] whose convolution is plain (or LU)
/// with its parameters then set by `edit`.
fn model_with_conv<T: Element>(lu: bool, edit: impl FnOnce(&mut InvConvWeight<T>)) -> FlowModel<T> {
    let mut rng = StdRng::seed_from_u64(0);
    let mut conv = if lu {
        InvConv1x1::<T>::new_lu(3, &mut rng)
    } else {
        InvConv1x1::<T>::new(3, &mut rng)
    };
    edit(&mut conv.weight);
    let layers: Vec<Box<dyn Flow<T>>> = vec![Box::new(Reverse::new(3)), Box::new(conv)];
    FlowModel::new(3, Sequential::new(layers))
}

/// W with rows 0 and 2 equal: det W = 0.
fn equal_rows<T: Element>(weight: &mut InvConvWeight<T>) {
    let InvConvWeight::Plain { weight } = weight else {
        panic!("a plain weight")
    };
    let w = [0.6, 0.8, 0.0, -0.8, 0.6, 0.0, 0.6, 0.8, 0.0];
    weight.value = Tensor::from_f64_slice(&w, &[3, 3]);
}

/// Loads `model` back from its checkpoint bytes and returns the error,
/// asserting that it names the convolution's place and kind and says why.
fn load_error<T: Element>(model: &FlowModel<T>) -> String {
    let bytes = to_bytes(model, None, None).expect("saveable");
    let err = match Checkpoint::<T>::from_bytes(&bytes, Path::new("singular.flowzoo")) {
        Ok(_) => panic!("a checkpoint with a singular 1x1 convolution loaded"),
        Err(e) => e,
    };
    assert!(matches!(err, CheckpointError::Layer { .. }), "{err:?}");
    let message = err.to_string();
    for part in ["singular.flowzoo", "layer 1", "InvConv1x1", "singular"] {
        assert!(message.contains(part), "{part:?} missing from: {message}");
    }
    message
}

#[test]
fn a_singular_inv_conv_weight_is_refused_when_loaded() {
    // Two equal rows: log|det W| = −∞, W⁻¹ has NaN; loading must say so.
    load_error(&model_with_conv::<f32>(false, equal_rows));
    load_error(&model_with_conv::<f64>(false, equal_rows));
}

#[test]
fn a_near_singular_inv_conv_weight_is_refused_in_f32_and_kept_in_f64() {
    // W = [[1, 1, 0], [1, 1 + 2⁻²³, 0], [0, 0, 1]]: det W = 2⁻²³ and the
    // condition number ‖W‖₁·‖W⁻¹‖₁ ≈ 3.4e7, beyond 1/ε = 8.4e6 of f32 (the
    // inverse keeps no correct digit there) but far inside f64's 4.5e15.
    let near = |weight: &mut InvConvWeight<f64>| {
        let InvConvWeight::Plain { weight } = weight else {
            panic!("a plain weight")
        };
        let e = f64::from(f32::EPSILON);
        let w = [1.0, 1.0, 0.0, 1.0, 1.0 + e, 0.0, 0.0, 0.0, 1.0];
        weight.value = Tensor::from_vec(w.to_vec(), &[3, 3]);
    };
    let model64 = model_with_conv::<f64>(false, near);
    let bytes = to_bytes(&model64, None, None).expect("saveable");
    Checkpoint::<f64>::from_bytes(&bytes, Path::new("near.flowzoo"))
        .expect("well within f64's precision");
    let near32 = |weight: &mut InvConvWeight<f32>| {
        let InvConvWeight::Plain { weight } = weight else {
            panic!("a plain weight")
        };
        let w = [1.0, 1.0, 0.0, 1.0, 1.0 + f32::EPSILON, 0.0, 0.0, 0.0, 1.0];
        weight.value = Tensor::from_vec(w.to_vec(), &[3, 3]);
    };
    let message = load_error(&model_with_conv::<f32>(false, near32));
    assert!(message.contains("condition number"), "{message}");
}

#[test]
fn an_lu_inv_conv_whose_diagonal_underflows_is_refused_when_loaded() {
    // s₁ = e⁻²⁰⁰ is 0 in f32 (W singular there, the inverse divides by 0)
    // and 1e-87 in f64 (W invertible on paper, condition number 1e87).
    let tiny_s = |weight: &mut InvConvWeight<f32>| {
        let InvConvWeight::Lu { log_s, .. } = weight else {
            panic!("an LU weight")
        };
        log_s.value = Tensor::from_vec(vec![0.0, -200.0, 0.0], &[3]);
    };
    load_error(&model_with_conv::<f32>(true, tiny_s));
    let tiny_s = |weight: &mut InvConvWeight<f64>| {
        let InvConvWeight::Lu { log_s, .. } = weight else {
            panic!("an LU weight")
        };
        log_s.value = Tensor::from_vec(vec![0.0, -200.0, 0.0], &[3]);
    };
    load_error(&model_with_conv::<f64>(true, tiny_s));
}

// ---- column statistics near f64's limit -----------------------------------

/// Three columns of three rows near f64's largest value:
/// 0: [1e308, 1e308, −1e308], whose sum overflows;
/// 1: [MAX, MAX, MAX], constant;
/// 2: [1.7e308, −1.7e308, −1.7e308], where x − μ overflows.
fn huge_columns() -> Vec<f64> {
    let m = f64::MAX;
    vec![1e308, m, 1.7e308, 1e308, m, -1.7e308, -1e308, m, -1.7e308]
}

fn assert_near(what: &str, got: f64, expected: f64) {
    assert!(
        (got - expected).abs() <= 1e-14 * expected.abs().max(1.0),
        "{what}: got {got:e}, expected {expected:e}"
    );
}

#[test]
fn column_statistics_of_numbers_near_the_largest_f64_are_finite() {
    // Column a·[1, 1, −1]: μ = a/3, deviations a·[2/3, 2/3, −4/3],
    // σ² = a²·(4 + 4 + 16)/27 = a²·8/9, σ = a·√(8/9). A constant column
    // has σ = 1 by convention.
    let (means, stds) = column_statistics(&huge_columns(), 3);
    let r = (8.0f64 / 9.0).sqrt();
    assert_near("mean 0", means[0], 1e308 / 3.0);
    assert_near("std 0", stds[0], 1e308 * r);
    assert_eq!((means[1], stds[1]), (f64::MAX, 1.0));
    assert_near("mean 2", means[2], -1.7e308 / 3.0);
    assert_near("std 2", stds[2], 1.7e308 * r);
}

#[test]
fn standardizing_numbers_near_the_largest_f64_gives_finite_values() {
    // z = (x − μ)/σ for a·[1, 1, −1]: [2/3, 2/3, −4/3]/√(8/9) = [1, 1, −2]/√2,
    // for −a·[−1, 1, 1] the negatives of the same; a constant column → 0.
    let text = format!(
        "a,b,c\n1e308,{m:e},1.7e308\n1e308,{m:e},-1.7e308\n-1e308,{m:e},-1.7e308\n",
        m = f64::MAX
    );
    let mut table = parse_csv(&text, Path::new("huge.csv"), &[]).expect("finite numbers");
    standardize(&mut table);
    let h = std::f64::consts::FRAC_1_SQRT_2;
    let expected = [h, 0.0, 2.0 * h, h, 0.0, -h, -2.0 * h, 0.0, -h];
    for (k, (&got, &want)) in table.data.iter().zip(&expected).enumerate() {
        assert_near(&format!("entry {k}"), got, want);
    }
    // The layer fitted to the same rows maps them the same way, in f64.
    let layer = Standardize::fit(&huge_columns(), 3);
    let x = Tensor::<f64>::from_vec(huge_columns(), &[3, 3]);
    let (z, log_det) = layer.inverse_tensor(&x);
    for (k, (&got, &want)) in z.to_vec().iter().zip(&expected).enumerate() {
        assert_near(&format!("layer entry {k}"), got, want);
    }
    assert!(log_det.all_finite(), "{log_det:?}");
}

#[test]
fn column_statistics_of_ordinary_numbers_are_the_plain_two_pass_formula_bit_for_bit() {
    // The overflow guard (a power-of-two scale per column) must not move a
    // single bit where nothing overflows: trained figures stay as they were.
    let mut rng = StdRng::seed_from_u64(5);
    for (rows, spread) in [
        (1, 1.0),
        (7, 1e-3),
        (100, 3.0),
        (1000, 1e6),
        (50, 1e-100),
        (20, 1e100),
    ] {
        let data: Vec<f64> = Tensor::<f64>::randn(&[rows, 4], &mut rng)
            .mul_scalar(spread)
            .add_scalar(spread * 0.3)
            .to_vec();
        let (means, stds) = column_statistics(&data, 4);
        for j in 0..4 {
            let column: Vec<f64> = data.iter().skip(j).step_by(4).copied().collect();
            let n = rows as f64;
            let mean = column.iter().sum::<f64>() / n;
            let variance = column.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
            let std = if variance > 0.0 { variance.sqrt() } else { 1.0 };
            assert_eq!(
                (means[j].to_bits(), stds[j].to_bits()),
                (mean.to_bits(), std.to_bits()),
                "{rows} rows of spread {spread}, column {j}"
            );
        }
    }
}
#[test]
fn validate_names_the_layer_whose_weight_went_singular() {
    // What training's divergence report can ask: which layer is unusable, and why.
    let model = model_with_conv::<f32>(false, equal_rows);
    let err = model.flow.validate().expect_err("a singular weight");
    let FlowError::BadSpec { at, layer, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!((at.0.clone(), layer.as_str()), (vec![1], "InvConv1x1"));
    assert!(err.to_string().contains("singular"), "{err}");
    // A healthy model passes.
    model_with_conv::<f32>(true, |_| {})
        .flow
        .validate()
        .expect("a rotation is well conditioned");
}

#[test]
fn inv_conv_from_weight_refuses_a_singular_matrix() {
    let singular = Tensor::<f64>::from_vec(vec![1.0, 2.0, 2.0, 4.0], &[2, 2]);
    for lu in [false, true] {
        let result = if lu {
            InvConv1x1::from_weight_lu(&singular)
        } else {
            InvConv1x1::from_weight(&singular)
        };
        let err = result.expect_err("a singular weight");
        assert!(err.to_string().contains("singular"), "{err}");
    }
    // An invertible one is kept exactly (plain) or factored back to it (LU).
    let w = Tensor::<f64>::from_vec(vec![2.0, 1.0, 0.5, 3.0], &[2, 2]);
    let z = Tensor::<f64>::from_vec(vec![1.0, -1.0], &[1, 2]);
    // x = z·Wᵀ: [2 − 1, 0.5 − 3] = [1, −2.5]; log|det W| = ln 5.5.
    for layer in [
        InvConv1x1::from_weight(&w).expect("invertible"),
        InvConv1x1::from_weight_lu(&w).expect("invertible"),
    ] {
        let (x, log_det) = layer.forward_tensor(&z);
        let x = x.to_vec();
        assert!(
            (x[0] - 1.0).abs() < 1e-12 && (x[1] + 2.5).abs() < 1e-12,
            "{x:?}"
        );
        assert!((log_det.to_vec()[0] - 5.5f64.ln()).abs() < 1e-12);
    }
}

#[test]
fn a_table_beyond_the_range_of_f32_is_refused_naming_the_column() {
    // `flowzoo train` computes in f32: 1e308 read from a CSV is finite in
    // f64 and infinite in f32, where it made "the input batch is not
    // finite: training diverged (try a smaller learning rate)". The data
    // path refuses it first, naming the row and the column.
    let text = "a,b\n1.5,2\n-3e38,-1e308\n";
    let table = parse_csv(text, Path::new("huge.csv"), &[]).expect("finite numbers");
    table
        .check_fits::<f64>(Path::new("huge.csv"))
        .expect("f64 holds it");
    let err = table
        .check_fits::<f32>(Path::new("huge.csv"))
        .expect_err("f32 does not");
    let message = err.to_string();
    assert!(
        matches!(&err, flowzoo::error::DataError::OutOfRange { row: 1, column, element: "f32", .. } if column == "b"),
        "{err:?}"
    );
    for part in ["huge.csv", "data row 1", "column \"b\"", "-1e308", "f32"] {
        assert!(message.contains(part), "{part:?} missing from: {message}");
    }
}

// ---- training when a layer becomes unusable --------------------------------

/// A test-only identity layer that breaks on its `at`-th inverse pass: from
/// then on its log-det is NaN and [`Flow::validate`] says why, as a 1×1
/// convolution driven singular by the optimiser would.
struct BreaksAt {
    calls: std::sync::atomic::AtomicUsize,
    at: usize,
}

impl BreaksAt {
    fn broken(&self) -> bool {
        self.calls.load(std::sync::atomic::Ordering::SeqCst) >= self.at
    }
}

impl Flow<f64> for BreaksAt {
    fn name(&self) -> String {
        "BreaksAt".into()
    }
    fn forward<'t>(
        &self,
        z: &flowzoo::autodiff::Var<'t, f64>,
    ) -> (
        flowzoo::autodiff::Var<'t, f64>,
        flowzoo::autodiff::Var<'t, f64>,
    ) {
        let n = z.value().dim(0);
        (z.clone(), z.constant(Tensor::zeros(&[n])))
    }
    fn inverse<'t>(
        &self,
        x: &flowzoo::autodiff::Var<'t, f64>,
    ) -> (
        flowzoo::autodiff::Var<'t, f64>,
        flowzoo::autodiff::Var<'t, f64>,
    ) {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let n = x.value().dim(0);
        let value = if self.broken() { f64::NAN } else { 0.0 };
        (x.clone(), x.constant(Tensor::full(&[n], value)))
    }
    fn validate(&self) -> Result<(), FlowError> {
        if self.broken() {
            return Err(FlowError::BadSpec {
                at: Default::default(),
                layer: "BreaksAt".into(),
                field: "weight".into(),
                what: "the weight W is singular".into(),
            });
        }
        Ok(())
    }
}

/// Trains `model` on standard normal 3-D batches for 20 steps (no check
/// before the last, so the layer sees one inverse pass per step).
fn train(
    model: &mut FlowModel<f64>,
) -> Result<flowzoo::train::fit::FitReport, flowzoo::error::TrainError> {
    use flowzoo::train::fit::{fit, FitConfig};
    let config = FitConfig {
        steps: 20,
        seed: 0,
        eval_every: 100,
        ..FitConfig::default()
    };
    let mut adam = flowzoo::nn::Adam::new(1e-3);
    let batch = |_: usize, rng: &mut StdRng| {
        use rand_distr::{Distribution, StandardNormal};
        let v: Vec<f64> = (0..32 * 3).map(|_| StandardNormal.sample(rng)).collect();
        Tensor::from_vec(v, &[32, 3])
    };
    fit(model, &mut adam, &config, batch, None, |_, _| {})
}

#[test]
fn training_a_model_with_a_singular_inv_conv_stops_before_the_first_step_naming_it() {
    // Before: the first step's loss was NaN and the error said "training
    // diverged (try a smaller learning rate)", which no learning rate cures.
    let mut model = model_with_conv::<f64>(false, equal_rows);
    let err = train(&mut model).expect_err("a singular weight cannot train");
    let flowzoo::error::TrainError::BadLayer { step: 0, source } = &err else {
        panic!("{err:?}")
    };
    assert!(matches!(source, FlowError::BadSpec { layer, .. } if layer == "InvConv1x1"));
    let message = err.to_string();
    for part in ["before the first step", "layer 1", "InvConv1x1", "singular"] {
        assert!(message.contains(part), "{part:?} missing from: {message}");
    }
    assert!(!message.contains("learning rate"), "{message}");
}

#[test]
fn a_layer_that_becomes_unusable_mid_run_is_named_instead_of_the_learning_rate() {
    // The loss turns NaN at step 7 (the layer's 7th inverse pass) because the
    // layer broke: the error names it, why, and the step, not only the first
    // NaN downstream of it.
    let layers: Vec<Box<dyn Flow<f64>>> = vec![
        Box::new(Reverse::new(3)),
        Box::new(Reverse::new(3)),
        Box::new(BreaksAt {
            calls: Default::default(),
            at: 7,
        }),
    ];
    let mut model = FlowModel::new(3, Sequential::new(layers));
    let err = train(&mut model).expect_err("the layer broke");
    let flowzoo::error::TrainError::BadLayer { step, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(*step, 7);
    let message = err.to_string();
    for part in ["step 7", "diverged", "layer 2", "BreaksAt", "singular"] {
        assert!(message.contains(part), "{part:?} missing from: {message}");
    }
}

#[test]
fn standardizing_a_column_of_tiny_values_in_f32_stays_finite() {
    // A column near 1e-39 (subnormal in f32): the scale 1/a of the
    // overflow-free form must not itself overflow f32.
    let data = [1.0e-39, 2.0, 3.0e-39, 4.0, 2.0e-39, 3.0];
    let layer = Standardize::fit(&data, 2);
    let x = Tensor::<f32>::from_f64_slice(&data, &[3, 2]);
    let (z, log_det) = layer.inverse_tensor(&x);
    assert!(z.all_finite() && log_det.all_finite(), "{z:?} {log_det:?}");
}
