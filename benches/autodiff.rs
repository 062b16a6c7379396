//! Autodiff overhead: the per-op cost of recording and backpropagating tiny
//! ops, and one training step of an MLP 64-256-256-64 (ReLU) at batch 256.
//!
//! Run: `cargo bench --bench autodiff`. Prints a table, then one JSON line.

use flowzoo::autodiff::{Tape, Var};
use flowzoo::nn::{Adam, Init, Mlp};
use flowzoo::tensor::parallel::in_pool;
use flowzoo::tensor::Tensor;
use rand::SeedableRng;
use std::hint::black_box;
use std::time::Instant;

mod common;
use common::{median, median_ms};

/// Median seconds of `reps` runs of `f`, after `warm` unmeasured runs.
fn median_seconds(reps: usize, warm: usize, f: impl FnMut()) -> f64 {
    median_ms(warm, reps, f) / 1e3
}

/// Ops in the tiny chain, not counting the final sum.
const CHAIN_OPS: usize = 400;

/// A chain of `CHAIN_OPS` ops on 4-element tensors, cycling through
/// mul, add, tanh, mul_scalar (two binary ops with a leaf, two unary), then
/// backward; returns the loss so the work is not optimised away.
fn tiny_chain(a: &Tensor<f32>, b: &Tensor<f32>) -> f32 {
    let tape = Tape::new();
    let (a, b) = (tape.leaf(a.clone()), tape.leaf(b.clone()));
    let mut x: Var<f32> = a.clone();
    for k in 0..CHAIN_OPS / 4 {
        x = x.mul(&b);
        x = x.add(&a);
        x = x.tanh();
        x = x.mul_scalar(if k % 2 == 0 { 1.5 } else { 0.75 });
    }
    let loss = x.sum_all();
    let grads = tape.backward(&loss);
    black_box(grads.wrt(&a));
    loss.value().item()
}

/// The same chain without a tape: the kernels alone.
fn tiny_chain_no_grad(a: &Tensor<f32>, b: &Tensor<f32>) -> f32 {
    let tape = Tape::no_grad();
    let (a, b) = (tape.constant(a.clone()), tape.constant(b.clone()));
    let mut x: Var<f32> = a.clone();
    for k in 0..CHAIN_OPS / 4 {
        x = x.mul(&b);
        x = x.add(&a);
        x = x.tanh();
        x = x.mul_scalar(if k % 2 == 0 { 1.5 } else { 0.75 });
    }
    x.sum_all().value().item()
}

fn main() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let a = Tensor::<f32>::randn(&[4], &mut rng);
    let b = Tensor::<f32>::randn(&[4], &mut rng);
    let n_ops = (CHAIN_OPS + 1) as f64;
    let chain_s = median_seconds(2000, 200, || {
        black_box(tiny_chain(&a, &b));
    });
    let chain_kernels_s = median_seconds(2000, 200, || {
        black_box(tiny_chain_no_grad(&a, &b));
    });
    let tape_op_us = 1e6 * chain_s / n_ops;
    let kernel_op_us = 1e6 * chain_kernels_s / n_ops;

    // MLP 64-256-256-64, batch 256, f32, loss = mean of squared outputs.
    let mut mlp = Mlp::<f32>::new(&[64, 256, 256, 64], Init::Glorot, &mut rng);
    let x = Tensor::<f32>::randn(&[256, 64], &mut rng);
    let mut adam = Adam::<f32>::new(1e-3);
    let (step_s, forward_s, backward_s) = in_pool(|| {
        let step_s = median_seconds(200, 20, || {
            let tape = Tape::new();
            let loss = mlp.forward(&tape.constant(x.clone())).square().mean_all();
            let grads = tape.backward(&loss);
            grads.assign(mlp.params_mut());
            adam.step(mlp.params_mut());
        });
        let forward_s = median_seconds(200, 20, || {
            let tape = Tape::new();
            black_box(mlp.forward(&tape.constant(x.clone())).square().mean_all());
        });
        // Backward alone: time the whole recorded pass and subtract forward
        // per run would add noise; instead time backward on a fresh tape.
        let mut backward_times = Vec::with_capacity(200);
        for rep in 0..220 {
            let tape = Tape::new();
            let loss = mlp.forward(&tape.constant(x.clone())).square().mean_all();
            let t = Instant::now();
            let grads = tape.backward(&loss);
            let elapsed = t.elapsed().as_secs_f64();
            black_box(grads.of(&mlp.layers[0].weight));
            if rep >= 20 {
                backward_times.push(elapsed);
            }
        }
        (step_s, forward_s, median(backward_times))
    });
    let no_grad_forward_s = in_pool(|| {
        median_seconds(200, 20, || {
            let tape = Tape::no_grad();
            black_box(mlp.forward(&tape.constant(x.clone())));
        })
    });

    println!(
        "autodiff benchmark (median of repeats, rayon threads = {})",
        rayon::current_num_threads()
    );
    println!("| figure | value |");
    println!("| --- | --- |");
    println!("| tiny chain, per op, record + backward | {tape_op_us:.3} us |");
    println!("| tiny chain, per op, kernels only (no tape) | {kernel_op_us:.3} us |");
    println!("| MLP step (fwd + bwd + Adam) | {:.3} ms |", 1e3 * step_s);
    println!("| MLP forward, recorded | {:.3} ms |", 1e3 * forward_s);
    println!(
        "| MLP forward, no tape | {:.3} ms |",
        1e3 * no_grad_forward_s
    );
    println!("| MLP backward | {:.3} ms |", 1e3 * backward_s);
    println!(
        "{{\"tape_op_us\": {tape_op_us:.3}, \"kernel_op_us\": {kernel_op_us:.3}, \"mlp_step_ms\": {:.3}, \"mlp_forward_ms\": {:.3}, \"mlp_backward_ms\": {:.3}, \"backward_over_forward\": {:.2}}}",
        1e3 * step_s,
        1e3 * forward_s,
        1e3 * backward_s,
        backward_s / forward_s
    );
}
