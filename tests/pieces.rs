//! `FlowModel::log_prob` and `sample` cut large batches into pieces, at most one
//! per thread, when every layer says it maps samples on their own
//! (`Flow::per_sample`). These tests check that the pieces give the rows the
//! whole batch gives, that the split really happens, and that a layer using
//! batch statistics (or one defined elsewhere) keeps its batch whole.
//!
//! Without the `parallel` feature there is one thread and nothing to split.
#![cfg(feature = "parallel")]

use flowzoo::autodiff::{Tape, Var};
use flowzoo::flows::architectures::{glow, GlowConfig};
use flowzoo::flows::batchnorm::BatchNormMode;
use flowzoo::flows::check::randomize_params;
use flowzoo::flows::{BatchNorm, Flow, FlowModel, Maf, Sequential, Split};
use flowzoo::nn::made::Order;
use flowzoo::tensor::parallel::{serial_kernels, threads_available};
use flowzoo::tensor::Tensor;
use rand::SeedableRng;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A pool of two threads, so that the split happens on any machine.
fn two_threads<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .expect("a rayon pool")
        .install(f)
}

/// log p(x) of the whole batch at once, on a no-grad tape (no pieces).
fn whole_log_prob(model: &FlowModel<f64>, x: &Tensor<f64>) -> Tensor<f64> {
    let tape = Tape::no_grad();
    model.log_prob_var(&tape.constant(x.clone())).into_value()
}

fn max_abs_diff(a: &Tensor<f64>, b: &Tensor<f64>) -> f64 {
    assert_eq!(a.shape(), b.shape());
    a.to_vec()
        .iter()
        .zip(b.to_vec())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// The identity map, counting the largest batch it was handed; whether it
/// says `per_sample` is chosen at construction (the trait's default is no).
struct BatchSpy {
    largest: Arc<AtomicUsize>,
    per_sample: Option<bool>,
}

impl Flow<f64> for BatchSpy {
    fn name(&self) -> String {
        "BatchSpy".into()
    }

    fn per_sample(&self) -> bool {
        self.per_sample.unwrap_or(false)
    }

    fn forward<'t>(&self, z: &Var<'t, f64>) -> (Var<'t, f64>, Var<'t, f64>) {
        self.largest.fetch_max(z.shape()[0], Ordering::SeqCst);
        let zeros = z.tape().constant(Tensor::zeros(&[z.shape()[0]]));
        (z.clone(), zeros)
    }

    fn inverse<'t>(&self, x: &Var<'t, f64>) -> (Var<'t, f64>, Var<'t, f64>) {
        self.forward(x)
    }
}

/// A MAF of two layers, then the spy, over `dim` dimensions.
fn maf_with_spy(dim: usize, spy_per_sample: Option<bool>) -> (FlowModel<f64>, Arc<AtomicUsize>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let largest = Arc::new(AtomicUsize::new(0));
    let layers: Vec<Box<dyn Flow<f64>>> = vec![
        Box::new(Maf::new(dim, &[16, 16], Order::Natural, &mut rng)),
        Box::new(Maf::new(dim, &[16, 16], Order::Reversed, &mut rng)),
        Box::new(BatchSpy {
            largest: Arc::clone(&largest),
            per_sample: spy_per_sample,
        }),
    ];
    let mut model = FlowModel::new(dim, Sequential::new(layers));
    randomize_params(&mut model.flow, 0.3, &mut rng);
    (model, largest)
}

#[test]
fn a_per_sample_model_is_evaluated_in_pieces_with_the_same_rows() {
    let (model, largest) = maf_with_spy(5, Some(true));
    let mut rng = rand::rngs::StdRng::seed_from_u64(4);
    let x = Tensor::<f64>::randn(&[101, 5], &mut rng);
    let pieces = two_threads(|| model.log_prob(&x));
    // Two pieces of 50 and 51 rows: the spy never saw the whole batch.
    assert_eq!(largest.load(Ordering::SeqCst), 51);
    let whole = whole_log_prob(&model, &x);
    assert_eq!(largest.load(Ordering::SeqCst), 101);
    let diff = max_abs_diff(&pieces, &whole);
    assert!(diff < 1e-12, "pieces and whole differ by {diff}");
}

#[test]
fn small_batches_and_one_thread_stay_whole() {
    let (model, largest) = maf_with_spy(3, Some(true));
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    // 63 rows: fewer than two pieces of 32.
    let x = Tensor::<f64>::randn(&[63, 3], &mut rng);
    two_threads(|| model.log_prob(&x));
    assert_eq!(largest.load(Ordering::SeqCst), 63);
    // One thread: nothing to split across.
    let x = Tensor::<f64>::randn(&[200, 3], &mut rng);
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("a rayon pool")
        .install(|| model.log_prob(&x));
    assert_eq!(largest.load(Ordering::SeqCst), 200);
}

#[test]
fn a_layer_defined_elsewhere_keeps_its_batch_whole() {
    // The spy does not override per_sample: the trait's default says no.
    let (model, largest) = maf_with_spy(4, None);
    let mut rng = rand::rngs::StdRng::seed_from_u64(6);
    let x = Tensor::<f64>::randn(&[128, 4], &mut rng);
    two_threads(|| model.log_prob(&x));
    assert_eq!(largest.load(Ordering::SeqCst), 128);
    largest.store(0, Ordering::SeqCst);
    two_threads(|| model.sample(128, 1.0, &mut rng));
    assert_eq!(largest.load(Ordering::SeqCst), 128);
}

#[test]
fn batch_norm_on_batch_statistics_keeps_its_batch_whole() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut norm = BatchNorm::<f64>::new(3);
    norm.mode = BatchNormMode::Batch;
    assert!(!norm.per_sample());
    let layers: Vec<Box<dyn Flow<f64>>> = vec![
        Box::new(Maf::new(3, &[8], Order::Natural, &mut rng)),
        Box::new(norm),
    ];
    let mut model = FlowModel::new(3, Sequential::new(layers));
    randomize_params(&mut model.flow, 0.3, &mut rng);
    let x = Tensor::<f64>::randn(&[100, 3], &mut rng).mul_scalar(2.0);
    let got = two_threads(|| model.log_prob(&x));
    let whole = whole_log_prob(&model, &x);
    assert!(max_abs_diff(&got, &whole) < 1e-12);
    // Evaluated in halves, the batch statistics (and so the rows) change:
    // the equality above is not automatic.
    let halves = Tensor::concat(
        &[
            &whole_log_prob(&model, &x.narrow(0, 0, 50).contiguous()),
            &whole_log_prob(&model, &x.narrow(0, 50, 50).contiguous()),
        ],
        0,
    );
    assert!(max_abs_diff(&halves, &whole) > 1e-6);
    // In Running mode it maps samples on their own.
    let mut running = BatchNorm::<f64>::new(3);
    running.mode = BatchNormMode::Running;
    assert!(running.per_sample());
    running.mode = BatchNormMode::Auto;
    assert!(running.per_sample());
}

#[test]
fn sampling_in_pieces_gives_the_whole_batch_rows() {
    let (model, largest) = maf_with_spy(6, Some(true));
    let seed = 8;
    let got = two_threads(|| model.sample(90, 0.8, &mut rand::rngs::StdRng::seed_from_u64(seed)));
    assert_eq!(largest.load(Ordering::SeqCst), 45);
    let z = model
        .prior
        .sample(90, 0.8, &mut rand::rngs::StdRng::seed_from_u64(seed));
    let whole = model.flow.forward_tensor(&z).0;
    assert_eq!(largest.load(Ordering::SeqCst), 90);
    let diff = max_abs_diff(&got, &whole);
    assert!(diff < 1e-12, "pieces and whole differ by {diff}");
}

#[test]
fn glow_is_evaluated_in_pieces_with_the_same_rows() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    let config = GlowConfig {
        hidden: 8,
        steps: 2,
        ..GlowConfig::default()
    };
    let mut glow_model = glow::<f64, _>([1, 4, 4], config, &mut rng);
    assert!(glow_model.flow.per_sample());
    glow_model
        .flow
        .initialize(&Tensor::randn(&[70, 16], &mut rng));
    randomize_params(&mut glow_model.flow, 0.1, &mut rng);
    // The spy after Glow (on the data side) sees what each piece is handed.
    let largest = Arc::new(AtomicUsize::new(0));
    let spy = BatchSpy {
        largest: Arc::clone(&largest),
        per_sample: Some(true),
    };
    let model = FlowModel::new(
        16,
        Sequential::new(vec![Box::new(glow_model.flow), Box::new(spy)]),
    );
    let x = Tensor::<f64>::randn(&[70, 16], &mut rng);
    let pieces = two_threads(|| model.log_prob(&x));
    assert_eq!(largest.load(Ordering::SeqCst), 35);
    let whole = whole_log_prob(&model, &x);
    let diff = max_abs_diff(&pieces, &whole);
    assert!(diff < 1e-9, "pieces and whole differ by {diff}");
}

#[test]
fn a_split_asks_its_inner_flow() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(10);
    let spy = |per_sample| BatchSpy {
        largest: Arc::new(AtomicUsize::new(0)),
        per_sample,
    };
    let split = Split::<f64>::new([2, 2, 2], 1, Box::new(spy(None)), None, &mut rng);
    assert!(!split.per_sample());
    let split = Split::<f64>::new([2, 2, 2], 1, Box::new(spy(Some(true))), Some(4), &mut rng);
    assert!(split.per_sample());
}

#[test]
fn a_wrong_shape_is_named_whole_and_leaves_the_threads_parallel() {
    let (model, largest) = maf_with_spy(5, Some(true));
    let x = Tensor::<f64>::zeros(&[128, 3]);
    two_threads(|| {
        let message = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| model.log_prob(&x)))
            .expect_err("a [128, 3] batch for a 5-D model panics");
        let text = message
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default();
        assert!(text.contains("[128, 3]"), "message: {text}");
        // Neither worker was left with serial kernels: the split still happens.
        let x = Tensor::<f64>::randn(&[128, 5], &mut rand::rngs::StdRng::seed_from_u64(11));
        let flags: Vec<bool> = rayon::broadcast(|_| threads_available());
        assert_eq!(flags, vec![true, true]);
        largest.store(0, Ordering::SeqCst);
        model.log_prob(&x);
        assert_eq!(largest.load(Ordering::SeqCst), 64);
    });
}

#[test]
fn serial_kernels_restores_the_setting_after_a_panic() {
    two_threads(|| {
        assert!(threads_available());
        let caught = std::panic::catch_unwind(|| serial_kernels(|| panic!("inside")));
        assert!(caught.is_err());
        assert!(threads_available());
    });
}
