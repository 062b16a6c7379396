//! How long one training step takes (forward, backward, Adam) for the
//! skeleton's two workloads, beside the raw matmul work they contain.
//!
//! Run: `cargo bench --bench train_step`. Prints a table, then one JSON line.
//! PyTorch's figures are quoted from ../shared/peers/RESULTS.md (measured on
//! this kind of machine with 2 threads), not measured here.

use flowzoo::data::digits;
use flowzoo::data::toy2d::Toy2d;
use flowzoo::flows::preprocess::Dequantize;
use flowzoo::flows::FlowModel;
use flowzoo::nn::Adam;
use flowzoo::tensor::parallel::in_pool;
use flowzoo::tensor::Tensor;
use flowzoo::train::fit::train_step;
use flowzoo::train::run::{build_model, Dataset, RunConfig};
use rand::rngs::StdRng;
use rand::SeedableRng;

mod common;
use common::median_ms;

/// Median ms of a training step of `model` on batches from `batch`.
fn step_ms(
    model: &mut FlowModel<f32>,
    batch: impl Fn(&mut StdRng) -> Tensor<f32> + Sync,
    reps: usize,
) -> f64 {
    in_pool(|| {
        let mut adam = Adam::new(1e-3);
        let mut rng = StdRng::seed_from_u64(1);
        let batches: Vec<Tensor<f32>> = (0..reps + 10).map(|_| batch(&mut rng)).collect();
        let mut next = batches.iter().cycle();
        median_ms(10, reps, || {
            let x = next.next().expect("cycle never ends");
            train_step(model, &mut adam, x).expect("the benchmark does not diverge");
        })
    })
}

/// Median ms of the matmuls a RealNVP step contains, alone: per coupling the
/// forward `[B, d₁]·[d₁, H]`, `[B, H]·[H, H]`, `[B, H]·[H, 2d₂]` and the two
/// gradient products of each.
fn matmul_only_ms(batch: usize, dim: usize, hidden: usize, layers: usize) -> f64 {
    let mut rng = StdRng::seed_from_u64(2);
    let (d1, d2) = (dim / 2, dim - dim / 2);
    let shapes = [(d1, hidden), (hidden, hidden), (hidden, 2 * d2)];
    let weights: Vec<Tensor<f32>> = shapes
        .iter()
        .map(|&(i, o)| Tensor::randn(&[i, o], &mut rng))
        .collect();
    let inputs: Vec<Tensor<f32>> = shapes
        .iter()
        .map(|&(i, _)| Tensor::randn(&[batch, i], &mut rng))
        .collect();
    let grads: Vec<Tensor<f32>> = shapes
        .iter()
        .map(|&(_, o)| Tensor::randn(&[batch, o], &mut rng))
        .collect();
    in_pool(|| {
        median_ms(5, 30, || {
            for _ in 0..layers {
                for k in 0..3 {
                    std::hint::black_box(inputs[k].matmul(&weights[k]));
                    std::hint::black_box(grads[k].matmul(&weights[k].t()));
                    std::hint::black_box(inputs[k].t().matmul(&grads[k]));
                }
            }
        })
    })
}

fn main() {
    let threads = rayon::current_num_threads();
    let moons = Toy2d::moons();
    let mut moons_model = build_model(&RunConfig::default()).unwrap();
    let moons_ms = step_ms(
        &mut moons_model,
        |rng| Tensor::from_f64_slice(&moons.sample(256, rng), &[256, 2]),
        100,
    );
    let moons_4096_ms = step_ms(
        &mut moons_model,
        |rng| Tensor::from_f64_slice(&moons.sample(4096, rng), &[4096, 2]),
        15,
    );
    let moons_matmul_ms = matmul_only_ms(256, 2, 256, 8);

    let digits_config = RunConfig {
        dataset: Dataset::Digits,
        ..RunConfig::default()
    };
    let mut digits_model = build_model(&digits_config).unwrap();
    let train = digits::train();
    let pixels = train.images_f64();
    let dequantize = Dequantize::new(digits::LEVELS);
    let digits_ms = step_ms(
        &mut digits_model,
        |rng| {
            let v = Tensor::<f32>::from_f64_slice(&pixels[..256 * 64], &[256, 64]);
            dequantize.apply(&v, rng)
        },
        60,
    );
    let digits_matmul_ms = matmul_only_ms(256, 64, 256, 8);

    // PyTorch 2.15 on CPU, 2 threads, ../shared/peers/RESULTS.md (range of runs).
    let torch = [
        ("moons_256", 10.7, 11.7),
        ("moons_4096", 113.0, 123.0),
        ("digits_64d_256", 12.3, 13.6),
    ];
    let ours = [moons_ms, moons_4096_ms, digits_ms];
    println!("| workload | flowzoo ms/step | PyTorch ms/step (RESULTS.md) | flowzoo / PyTorch (mid) | matmuls alone ms |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    let matmul = [Some(moons_matmul_ms), None, Some(digits_matmul_ms)];
    for ((name, lo, hi), (ms, mm)) in torch.iter().zip(ours.iter().zip(matmul)) {
        println!(
            "| {name} | {ms:.2} | {lo}-{hi} | {:.2} | {} |",
            ms / ((lo + hi) / 2.0),
            mm.map_or("-".into(), |m| format!("{m:.2}"))
        );
    }
    println!(
        "{{\"threads\": {threads}, \"moons_step_ms\": {moons_ms:.3}, \"moons_4096_step_ms\": {moons_4096_ms:.3}, \"digits_step_ms\": {digits_ms:.3}, \"moons_matmul_only_ms\": {moons_matmul_ms:.3}, \"digits_matmul_only_ms\": {digits_matmul_ms:.3}, \"moons_vs_torch\": {:.3}, \"digits_vs_torch\": {:.3}}}",
        moons_ms / 11.2,
        digits_ms / 12.95
    );
}
