//! conv2d on the shapes the image flows use, and the image flows' training
//! step, printed line by line in the JSON format of PyTorch's peer scripts
//! (../shared/peers/conv_torch.py and image_flows_torch.py), so that the two
//! sides compare shape by shape (benches/compare_conv.sh does it).
//!
//! Run: `cargo bench --bench conv -- [--threads T] [--reps R] [--flows]`
//! (`FLOWZOO_THREADS` also sets the thread count; default 2). Without
//! `--flows`: one line per convolution shape, forward
//! ([`Tensor::conv2d`] with bias) and backward (the tape's three kernels:
//! [`Tensor::conv2d_bias_grad`], [`Tensor::conv2d_weight_grad`],
//! [`Tensor::conv2d_input_grad`]), median and minimum ms of `R` calls (default
//! 20) after 3 unmeasured ones; GFLOP/s count 2 FLOPs per multiply-add, the
//! backward as two forwards, as conv_torch.py does. With `--flows`: one line
//! per image flow (`glow`, `realnvp-image` at their digits defaults, batch 256),
//! the median and minimum ms of a training step (forward, backward, Adam).

use std::hint::black_box;
use std::time::Instant;

use flowzoo::data::digits;
use flowzoo::flows::preprocess::Dequantize;
use flowzoo::flows::zoo::FlowName;
use flowzoo::nn::Adam;
use flowzoo::tensor::Tensor;
use flowzoo::train::fit::train_step;
use flowzoo::train::run::{build_model, Dataset, RunConfig};
use rand::rngs::StdRng;
use rand::SeedableRng;

mod common;
use common::median;

/// `(batch, c_in, c_out, h = w, k)`: conv_torch.py's SHAPES in its order,
/// then the MNIST models' shapes (1×28×28, squeezed to 4×14×14 and 16×7×7).
const SHAPES: [(usize, usize, usize, usize, usize); 21] = [
    (256, 1, 32, 8, 3),
    (256, 32, 32, 8, 3),
    (256, 32, 2, 8, 3),
    (256, 2, 32, 4, 3),
    (256, 4, 32, 2, 3),
    (256, 32, 32, 4, 3),
    (256, 32, 4, 4, 3),
    (256, 32, 32, 2, 3),
    (256, 32, 8, 2, 3),
    (256, 4, 4, 4, 1),
    (256, 8, 8, 2, 1),
    (256, 32, 32, 8, 1),
    (64, 32, 32, 14, 3),
    (64, 64, 64, 28, 3),
    (64, 1, 64, 28, 3),
    (64, 4, 64, 14, 3),
    (64, 64, 64, 14, 3),
    (64, 64, 8, 14, 3),
    (64, 8, 64, 7, 3),
    (64, 64, 16, 7, 3),
    (64, 64, 64, 14, 1),
];

/// The value after `--name` on the command line, else the environment
/// variable `env`, else `default`.
fn option(name: &str, env: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
        .or_else(|| std::env::var(env).ok())
        .map_or(default, |v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}: not a count: {v}"))
        })
}

/// (median, minimum) ms of `reps` calls of `f` after `warm` unmeasured ones.
fn time_ms(warm: usize, reps: usize, mut f: impl FnMut()) -> (f64, f64) {
    for _ in 0..warm {
        f();
    }
    let times: Vec<f64> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    let min = times.iter().copied().fold(f64::INFINITY, f64::min);
    (median(times), min)
}

/// The 1-minute load average, as conv_torch.py reports it.
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

fn convolutions(threads: usize, reps: usize) {
    let mut rng = StdRng::seed_from_u64(0);
    for (batch, c_in, c_out, hw, k) in SHAPES {
        let pad = k / 2;
        let x = Tensor::<f32>::randn(&[batch, c_in, hw, hw], &mut rng);
        let w = Tensor::<f32>::randn(&[c_out, c_in, k, k], &mut rng).mul_scalar(0.1);
        let bias = Tensor::<f32>::randn(&[c_out], &mut rng);
        let g = Tensor::<f32>::randn(&[batch, c_out, hw, hw], &mut rng);
        let macs = (batch * c_out * hw * hw * c_in * k * k) as f64;
        let (fwd, fwd_min) = time_ms(3, reps, || {
            black_box(x.conv2d(&w, Some(&bias), pad));
        });
        let (bwd, bwd_min) = time_ms(3, reps, || {
            black_box(Tensor::conv2d_bias_grad(&g));
            black_box(Tensor::conv2d_weight_grad(&x, &g, k, pad));
            black_box(Tensor::conv2d_input_grad(&g, &w, x.shape(), pad));
        });
        println!(
            "{{\"side\": \"flowzoo\", \"shape\": \"[{batch},{c_in},{hw},{hw}] -> {c_out}, k{k}\", \
             \"mflop_fwd\": {:.2}, \"fwd_ms\": {fwd:.4}, \"fwd_min_ms\": {fwd_min:.4}, \
             \"bwd_ms\": {bwd:.4}, \"bwd_min_ms\": {bwd_min:.4}, \"fwd_gflops\": {:.2}, \
             \"bwd_gflops\": {:.2}, \"threads\": {threads}, \"load\": \"{}\"}}",
            2.0 * macs / 1e6,
            2.0 * macs / fwd / 1e6,
            4.0 * macs / bwd / 1e6,
            load()
        );
    }
}

fn image_flows(threads: usize, reps: usize) {
    let pixels = digits::train().images_f64();
    let dequantize = Dequantize::new(digits::LEVELS);
    for (name, flow) in [
        ("glow", FlowName::Glow),
        ("realnvp-image", FlowName::RealNvpImage),
    ] {
        let config = RunConfig::new(Dataset::Digits, flow).expect("an image flow models digits");
        let mut model = build_model(&config).expect("the zoo builds its default image flows");
        let mut adam = Adam::new(1e-3);
        let mut rng = StdRng::seed_from_u64(1);
        let images = Tensor::<f32>::from_f64_slice(&pixels[..256 * 64], &[256, 64]);
        let batches: Vec<Tensor<f32>> = (0..8)
            .map(|_| dequantize.apply(&images, &mut rng))
            .collect();
        let mut next = batches.iter().cycle();
        let (ms, min) = time_ms(5, reps, || {
            let x = next.next().expect("cycle never ends");
            train_step(&mut model, &mut adam, x).expect("the benchmark does not diverge");
        });
        println!(
            "{{\"side\": \"flowzoo\", \"model\": \"{name}\", \"batch\": 256, \"threads\": {threads}, \
             \"step_ms_median\": {ms:.3}, \"step_ms_min\": {min:.3}, \"load\": \"{}\"}}",
            load()
        );
    }
}

fn main() {
    let threads = option("--threads", "FLOWZOO_THREADS", 2);
    let reps = option("--reps", "FLOWZOO_REPS", 20);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a thread pool");
    let flows = std::env::args().any(|a| a == "--flows");
    pool.install(|| {
        if flows {
            image_flows(threads, reps);
        } else {
            convolutions(threads, reps);
        }
    });
}
