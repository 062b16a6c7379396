//! MAF against IAF: the lecture's speed trade-off, measured.
//!
//! `cargo bench --bench autoregressive` prints two tables and ends with one
//! JSON line:
//!
//! 1. The reference workload of ../shared/peers/RESULTS.md: an MAF of 5 MADEs
//!    64-512-512-128 on 64-D data, batch 256, f32: log-likelihood, training
//!    step (forward, backward, Adam) and sampling 256, beside PyTorch's
//!    figures from that file (measured there, not in this run).
//! 2. The trade-off: log_prob and sample of an MAF and an IAF of equal size
//!    (5 layers, MADE hidden 256-256, batch 256) for D = 2, 16, 64, 256, the
//!    sequential direction solved both ways (textbook D full passes, and the
//!    incremental solve that computes each hidden unit once).
//! 3. Conditional MAF sampling (issue 16): `sample_given` of 5 conditional
//!    MAF layers (MADE hidden 256-256, a context of width 8, one context
//!    per row) for D = 16 and 64, incremental against textbook, beside the
//!    unconditional MAF's `sample`: the cost of the context.
//!
//! `cargo bench --bench autoregressive -- conditional` runs table 3 only.
//!
//! Times are medians of repeated runs in milliseconds; the machine is shared,
//! so read ratios from one run rather than absolute times across runs.

use flowzoo::autodiff::Tape;
use flowzoo::flows::autoregressive::{Maf, SequentialMethod, Transform};
use flowzoo::flows::iaf::Iaf;
use flowzoo::flows::{Flow, FlowModel, Sequential};
use flowzoo::nn::made::Order;
use flowzoo::nn::Adam;
use flowzoo::tensor::parallel::in_pool;
use flowzoo::tensor::Tensor;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::time::Instant;

mod common;
use common::median;

/// PyTorch 2 threads, f32 (RESULTS.md, "Speed", middle of the quoted range).
const TORCH_LOG_PROB_MS: f64 = 6.2;
const TORCH_TRAIN_STEP_MS: f64 = 25.0;
const TORCH_SAMPLE_MS: f64 = 370.0;

const BATCH: usize = 256;
const LAYERS: usize = 5;

/// Median wall time of `f` in milliseconds: one warm-up, then repeats until
/// `budget_s` seconds are spent (at least 3, at most 25). A call slower than
/// half the budget is timed once (the textbook sampling at D = 256 takes
/// seconds, and a repeat would not change the reading).
fn median_ms(budget_s: f64, mut f: impl FnMut()) -> f64 {
    let t = Instant::now();
    f();
    let first = t.elapsed().as_secs_f64();
    if first > budget_s / 2.0 {
        return first * 1e3;
    }
    let mut times = Vec::new();
    let start = Instant::now();
    while times.len() < 3 || (start.elapsed().as_secs_f64() < budget_s && times.len() < 25) {
        let t = Instant::now();
        f();
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    median(times)
}

/// 5 MAF layers of MADE dim-hidden-hidden-2·dim reading a context of
/// width `context_dim` (0: none), orders alternating.
fn maf_model(
    dim: usize,
    hidden: usize,
    context_dim: usize,
    method: SequentialMethod,
    seed: u64,
) -> FlowModel<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    let layers = (0..LAYERS)
        .map(|i| {
            let order = if i % 2 == 0 {
                Order::Natural
            } else {
                Order::Reversed
            };
            let mut maf = Maf::conditional(dim, &[hidden, hidden], order, context_dim, &mut rng);
            maf.method = method;
            Box::new(maf) as Box<dyn Flow<f32>>
        })
        .collect();
    trained_looking(FlowModel::new(dim, Sequential::new(layers)), seed)
}

/// Table 3: conditional MAF sampling, both solves, against the
/// unconditional MAF of the same size; returns its JSON rows.
fn conditional_sampling(rng: &mut StdRng) -> String {
    const CONTEXT: usize = 8;
    println!("\nconditional MAF sampling, 5 layers of MADE D-256-256-2D reading a context of width {CONTEXT}, batch 256: median ms");
    println!("| D | MAF sample | conditional MAF sample_given (incremental) | conditional (D passes) | D passes / incremental | conditional / unconditional |");
    println!("| --- | --- | --- | --- | --- | --- |");
    let mut rows = Vec::new();
    for dim in [16usize, 64] {
        let c = Tensor::<f32>::randn(&[BATCH, CONTEXT], rng);
        let plain = maf_model(dim, 256, 0, SequentialMethod::Incremental, 5);
        let fast = maf_model(dim, 256, CONTEXT, SequentialMethod::Incremental, 5);
        let slow = maf_model(dim, 256, CONTEXT, SequentialMethod::FullPasses, 5);
        let sample_given = |model: &FlowModel<f32>, rng: &mut StdRng| {
            model
                .sample_given(BATCH, 1.0, Some(&c), rng)
                .expect("a context of width 8");
        };
        let unconditional = median_ms(1.0, || {
            plain.sample(BATCH, 1.0, rng);
        });
        let incremental = median_ms(1.0, || sample_given(&fast, rng));
        let passes = median_ms(1.0, || sample_given(&slow, rng));
        println!(
            "| {dim} | {unconditional:.2} | {incremental:.2} | {passes:.2} | {:.1} | {:.2} |",
            passes / incremental,
            incremental / unconditional
        );
        rows.push(format!(
            "{{\"dim\":{dim},\"maf_sample_ms\":{unconditional:.3},\"conditional_incremental_ms\":{incremental:.3},\"conditional_full_passes_ms\":{passes:.3}}}"
        ));
    }
    format!("\"conditional\":[{}]", rows.join(","))
}

fn iaf_model(dim: usize, hidden: usize, method: SequentialMethod, seed: u64) -> FlowModel<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    let layers = (0..LAYERS)
        .map(|i| {
            let order = if i % 2 == 0 {
                Order::Natural
            } else {
                Order::Reversed
            };
            let mut iaf = Iaf::new(dim, &[hidden, hidden], order, Transform::Affine, &mut rng);
            iaf.method = method;
            Box::new(iaf) as Box<dyn Flow<f32>>
        })
        .collect();
    trained_looking(FlowModel::new(dim, Sequential::new(layers)), seed)
}

/// Small random output weights, so the timed maps are not the identity the
/// zero-initialised output layers start as (the work is the same; the
/// values, and so any denormals, are those of a trained model).
fn trained_looking(mut model: FlowModel<f32>, seed: u64) -> FlowModel<f32> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0xbeef);
    for p in model.params_mut() {
        if p.value
            .as_slice()
            .is_some_and(|v| v.iter().all(|&w| w == 0.0))
            && p.value.ndim() == 2
        {
            p.value = Tensor::randn(p.value.shape(), &mut rng).mul_scalar(0.01);
        }
    }
    model
}

/// The 1-minute load average (Linux), to read the times against.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}

fn train_step(model: &mut FlowModel<f32>, adam: &mut Adam<f32>, x: &Tensor<f32>) -> f64 {
    let tape = Tape::new();
    let loss = model
        .log_prob_var(&tape.constant(x.clone()))
        .mean_all()
        .neg();
    tape.backward(&loss).assign(model.params_mut());
    adam.step(model.params_mut());
    loss.value().item() as f64
}

/// The closing JSON line: threads, load average and the tables' rows.
fn print_json(json: &[String]) {
    println!(
        "\n{{\"bench\":\"autoregressive\",\"threads\":{},\"load_average_end\":\"{}\",{}}}",
        flowzoo::tensor::parallel::current_num_threads(),
        load_average(),
        json.join(",")
    );
}

fn main() {
    println!(
        "autoregressive flows, f32, batch {BATCH}, {} threads, load average {} at the start\n",
        flowzoo::tensor::parallel::current_num_threads(),
        load_average()
    );
    let mut json = Vec::new();
    let mut rng = StdRng::seed_from_u64(1);
    if std::env::args().any(|a| a == "conditional") {
        json.push(conditional_sampling(&mut rng));
        print_json(&json);
        return;
    }

    // 1. The reference workload.
    let dim = 64;
    let x = Tensor::<f32>::randn(&[BATCH, dim], &mut rng);
    let mut maf = maf_model(dim, 512, 0, SequentialMethod::Incremental, 2);
    let log_prob = median_ms(2.0, || {
        maf.log_prob(&x);
    });
    // The 15 matrix products of one log-likelihood evaluation alone: the
    // floor the MAF's time is compared with in this run.
    let (w1, w2, w3) = (
        Tensor::<f32>::randn(&[dim, 512], &mut rng),
        Tensor::<f32>::randn(&[512, 512], &mut rng),
        Tensor::<f32>::randn(&[512, 2 * dim], &mut rng),
    );
    let h = Tensor::<f32>::randn(&[BATCH, 512], &mut rng);
    let matmuls = in_pool(|| {
        median_ms(2.0, || {
            for _ in 0..LAYERS {
                x.matmul(&w1);
                h.matmul(&w2);
                h.matmul(&w3);
            }
        })
    });
    let mut adam = Adam::new(1e-3);
    let step = in_pool(|| {
        median_ms(3.0, || {
            train_step(&mut maf, &mut adam, &x);
        })
    });
    let maf = maf_model(dim, 512, 0, SequentialMethod::Incremental, 2);
    let sample_fast = median_ms(2.0, || {
        maf.sample(BATCH, 1.0, &mut rng);
    });
    let maf_slow = maf_model(dim, 512, 0, SequentialMethod::FullPasses, 2);
    let sample_slow = median_ms(4.0, || {
        maf_slow.sample(BATCH, 1.0, &mut rng);
    });
    println!("MAF 5 x MADE 64-512-512-128, 64-D, batch 256 (PyTorch: RESULTS.md, not this run)");
    println!(
        "the log-likelihood's 15 matmuls alone: {matmuls:.2} ms ({:.0} GFLOP/s); log-likelihood / matmuls = {:.2}",
        2.0 * (BATCH * LAYERS * (dim * 512 + 512 * 512 + 512 * 2 * dim)) as f64 / matmuls / 1e6,
        log_prob / matmuls
    );
    println!("| workload | flowzoo ms | PyTorch ms | flowzoo / PyTorch |");
    println!("| --- | --- | --- | --- |");
    for (name, ms, torch) in [
        ("log-likelihood (no tape)", log_prob, TORCH_LOG_PROB_MS),
        ("train step (fwd + bwd + Adam)", step, TORCH_TRAIN_STEP_MS),
        (
            "sample 256, incremental solve",
            sample_fast,
            TORCH_SAMPLE_MS,
        ),
        (
            "sample 256, textbook 64 passes per layer",
            sample_slow,
            TORCH_SAMPLE_MS,
        ),
    ] {
        println!("| {name} | {ms:.2} | {torch} | {:.2} |", ms / torch);
    }
    json.push(format!(
        "\"maf64\":{{\"matmuls_ms\":{matmuls:.3},\"log_prob_ms\":{log_prob:.3},\"train_step_ms\":{step:.3},\"sample_incremental_ms\":{sample_fast:.3},\"sample_full_passes_ms\":{sample_slow:.3}}}"
    ));

    // 2. The trade-off at equal sizes.
    println!("\nMAF vs IAF, 5 layers of MADE D-256-256-2D, batch 256: median ms");
    println!("| D | MAF log_prob | MAF sample (D passes) | MAF sample (incremental) | IAF sample | IAF log_prob (D passes) | IAF log_prob (incremental) | MAF sample / log_prob (D passes) | IAF log_prob / sample (D passes) |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    let mut rows = Vec::new();
    for dim in [2usize, 16, 64, 256] {
        let x = Tensor::<f32>::randn(&[BATCH, dim], &mut rng);
        let budget = 1.0;
        let maf = maf_model(dim, 256, 0, SequentialMethod::Incremental, 3);
        let maf_log_prob = median_ms(budget, || {
            maf.log_prob(&x);
        });
        let maf_sample_fast = median_ms(budget, || {
            maf.sample(BATCH, 1.0, &mut rng);
        });
        let maf_slow = maf_model(dim, 256, 0, SequentialMethod::FullPasses, 3);
        let maf_sample_slow = median_ms(budget, || {
            maf_slow.sample(BATCH, 1.0, &mut rng);
        });
        let iaf = iaf_model(dim, 256, SequentialMethod::Incremental, 4);
        let iaf_sample = median_ms(budget, || {
            iaf.sample(BATCH, 1.0, &mut rng);
        });
        let iaf_log_prob_fast = median_ms(budget, || {
            iaf.log_prob(&x);
        });
        let iaf_slow = iaf_model(dim, 256, SequentialMethod::FullPasses, 4);
        let iaf_log_prob_slow = median_ms(budget, || {
            iaf_slow.log_prob(&x);
        });
        println!(
            "| {dim} | {maf_log_prob:.2} | {maf_sample_slow:.2} | {maf_sample_fast:.2} | {iaf_sample:.2} | {iaf_log_prob_slow:.2} | {iaf_log_prob_fast:.2} | {:.1} | {:.1} |",
            maf_sample_slow / maf_log_prob,
            iaf_log_prob_slow / iaf_sample
        );
        rows.push(format!(
            "{{\"dim\":{dim},\"maf_log_prob_ms\":{maf_log_prob:.3},\"maf_sample_full_passes_ms\":{maf_sample_slow:.3},\"maf_sample_incremental_ms\":{maf_sample_fast:.3},\"iaf_sample_ms\":{iaf_sample:.3},\"iaf_log_prob_full_passes_ms\":{iaf_log_prob_slow:.3},\"iaf_log_prob_incremental_ms\":{iaf_log_prob_fast:.3}}}"
        ));
    }
    json.push(format!("\"tradeoff\":[{}]", rows.join(",")));
    json.push(conditional_sampling(&mut rng));
    print_json(&json);
}
