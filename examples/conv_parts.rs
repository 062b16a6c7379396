//! The four kernels of one convolution layer timed apart, on the shapes
//! where flowzoo's image flows were behind PyTorch: the forward pass
//! (`Tensor::conv2d`, no bias), and the backward pass's bias, weight and
//! input gradients. `benches/conv.rs` gives forward and backward as two
//! figures (for the comparison with PyTorch); this example shows which
//! kernel of the backward costs what. Median milliseconds of 20 calls after
//! 3 warm-up calls, `f32`, on the threads rayon is given.
//!
//! Run: `RAYON_NUM_THREADS=1 cargo run --release --example conv_parts`

use flowzoo::tensor::Tensor;
use rand::{rngs::StdRng, SeedableRng};
use std::hint::black_box;
use std::time::Instant;

/// `(batch, c_in, c_out, h = w, k)`: shapes of `benches/conv.rs`.
const SHAPES: [(usize, usize, usize, usize, usize); 10] = [
    (256, 32, 32, 8, 3),
    (256, 32, 4, 4, 3),
    (256, 32, 32, 4, 3),
    (64, 64, 8, 14, 3),
    (64, 64, 16, 7, 3),
    (64, 64, 64, 14, 3),
    (64, 8, 64, 7, 3),
    (64, 4, 64, 14, 3),
    (64, 64, 64, 14, 1),
    (64, 32, 32, 14, 3),
];

/// Median milliseconds of `reps` calls of `f`, after 3 warm-up calls.
fn median_ms(reps: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..3 {
        f();
    }
    let mut times: Vec<f64> = (0..reps)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[reps / 2]
}

fn main() {
    let mut rng = StdRng::seed_from_u64(0);
    println!("shape | forward | bias grad | weight grad | input grad (ms)");
    for (batch, c_in, c_out, hw, k) in SHAPES {
        let pad = k / 2;
        let x = Tensor::<f32>::randn(&[batch, c_in, hw, hw], &mut rng);
        let w = Tensor::<f32>::randn(&[c_out, c_in, k, k], &mut rng).mul_scalar(0.1);
        let g = Tensor::<f32>::randn(&[batch, c_out, hw, hw], &mut rng);
        let forward = median_ms(20, || {
            black_box(x.conv2d(&w, None, pad));
        });
        let bias = median_ms(20, || {
            black_box(Tensor::conv2d_bias_grad(&g));
        });
        let weight = median_ms(20, || {
            black_box(Tensor::conv2d_weight_grad(&x, &g, k, pad));
        });
        let input = median_ms(20, || {
            black_box(Tensor::conv2d_input_grad(&g, &w, x.shape(), pad));
        });
        println!(
            "[{batch},{c_in},{hw},{hw}] -> {c_out}, k{k} | {forward:.3} | {bias:.3} | {weight:.3} | {input:.3}"
        );
    }
}
