//! Evaluation by pieces: `FlowModel::log_prob` with the batch cut into one
//! piece per thread (each piece on its own thread, serial kernels) against
//! the whole batch at once (every kernel splitting itself across threads).
//!
//! `cargo bench --bench pieces` prints one line per model and batch size and
//! ends with one line of JSON. The two sides alternate (median of five
//! alternations of a median of repeats, the side going first swapping), so
//! both see the same load; read the ratio, not the absolute times, on a
//! shared machine.

use flowzoo::autodiff::Tape;
use flowzoo::flows::architectures::{glow, GlowConfig};
use flowzoo::flows::{Flow, FlowModel, Maf, Sequential};
use flowzoo::nn::made::Order;
use flowzoo::tensor::parallel::in_pool;
use flowzoo::tensor::Tensor;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::hint::black_box;
use std::time::Instant;

mod common;
use common::{median, median_ms};

/// (whole, pieces) median milliseconds of a log-likelihood of `x`.
fn compare(model: &FlowModel<f32>, x: &Tensor<f32>, reps: usize) -> (f64, f64) {
    let (mut whole, mut pieces) = (Vec::new(), Vec::new());
    let time_whole = || {
        in_pool(|| {
            median_ms(1, reps, || {
                let tape = Tape::no_grad();
                black_box(model.log_prob_var(&tape.constant(x.clone())).into_value());
            })
        })
    };
    let time_pieces = || in_pool(|| median_ms(1, reps, || drop(black_box(model.log_prob(x)))));
    // Five alternations, the side going first swapping each time.
    for round in 0..5 {
        if round % 2 == 0 {
            whole.push(time_whole());
            pieces.push(time_pieces());
        } else {
            pieces.push(time_pieces());
            whole.push(time_whole());
        }
    }
    (median(whole), median(pieces))
}

fn main() {
    let wall = Instant::now();
    let mut rng = StdRng::seed_from_u64(1);
    println!(
        "log_prob, f32, {} threads: whole batch vs one piece per thread (ms)\n",
        flowzoo::tensor::parallel::current_num_threads()
    );
    println!("| model | batch | whole | pieces | pieces / whole |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    let mut json = Vec::new();
    let mut row = |name: &str, key: &str, model: &FlowModel<f32>, batch: usize, reps: usize| {
        let x = Tensor::<f32>::randn(&[batch, model.dim()], &mut StdRng::seed_from_u64(2));
        let (whole, pieces) = compare(model, &x, reps);
        println!(
            "| {name} | {batch} | {whole:.3} | {pieces:.3} | {:.3} |",
            pieces / whole
        );
        json.push(format!("\"{key}_b{batch}\": {:.4}", pieces / whole));
    };

    let moons = FlowModel::<f32>::realnvp(2, 8, 256, &mut rng);
    // 32 rows stay whole on both sides (fewer than two pieces of 32): the
    // control row, whose ratio shows the noise of the run.
    for batch in [32, 64, 256, 4096] {
        let reps = if batch > 1000 { 7 } else { 40 };
        row(
            "RealNVP 2-D, 8 couplings, hidden 256",
            "realnvp2",
            &moons,
            batch,
            reps,
        );
    }
    let digits = FlowModel::<f32>::realnvp(64, 8, 256, &mut rng);
    for batch in [64, 256] {
        row(
            "RealNVP 64-D, 8 couplings, hidden 256",
            "realnvp64",
            &digits,
            batch,
            25,
        );
    }
    let layers = (0..5)
        .map(|i| {
            let order = if i % 2 == 0 {
                Order::Natural
            } else {
                Order::Reversed
            };
            Box::new(Maf::new(64, &[512, 512], order, &mut rng)) as Box<dyn Flow<f32>>
        })
        .collect();
    let maf = FlowModel::new(64, Sequential::new(layers));
    for batch in [64, 256] {
        row("MAF 5 x MADE 64-512-512-128", "maf64", &maf, batch, 15);
    }
    let mut glow_model = glow::<f32, _>([1, 8, 8], GlowConfig::default(), &mut rng);
    glow_model
        .flow
        .initialize(&Tensor::randn(&[256, 64], &mut rng));
    for batch in [64, 256] {
        row("Glow 1x8x8, default config", "glow", &glow_model, batch, 5);
    }
    json.push(format!(
        "\"bench_seconds\": {:.1}",
        wall.elapsed().as_secs_f64()
    ));
    println!("\n{{{}}}", json.join(", "));
}
