//! Nanoseconds per element of the element-wise ops a flow's step runs most
//! (`tanh` for the couplings' log-scales, `exp` for their factors, `ln`,
//! the ReLU, a product), on a contiguous `[256, 64]` f32 tensor and on the
//! narrowed half of a `[256, 128]` one (a MAF's log-scale), one thread.
//! The loops run the widest copy `src/tensor/wide.rs` has for this CPU;
//! build with `MMTEST_FEATURE=none` to time the plain one.
//!
//! Run: `RAYON_NUM_THREADS=1 cargo run --release --example elementwise_speed`.

use flowzoo::tensor::Tensor;
use rand::{rngs::StdRng, SeedableRng};
use std::time::Instant;

/// A unary tensor op.
type Op = fn(&Tensor<f32>) -> Tensor<f32>;

/// The median of 201 timings of `f`, in ns per element of an `n`-element output.
fn ns_per_element(n: usize, f: impl Fn() -> Tensor<f32>) -> f64 {
    let mut times: Vec<f64> = (0..201)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(f());
            t.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(|a, b| a.total_cmp(b));
    times[100] * 1e9 / n as f64
}

fn main() {
    let mut rng = StdRng::seed_from_u64(1);
    // Positive values, so that ln has a number to give.
    let x = Tensor::<f32>::randn(&[256, 64], &mut rng).exp();
    let y = Tensor::<f32>::randn(&[256, 64], &mut rng);
    let wide = Tensor::<f32>::randn(&[256, 128], &mut rng).exp();
    let half = wide.narrow(1, 64, 64);
    let n = x.numel();
    println!("ns per element, f32, [256, 64], one thread (median of 201)");
    println!("| op | contiguous | narrowed view |");
    println!("| --- | ---: | ---: |");
    let rows: [(&str, Op); 4] = [
        ("tanh", Tensor::tanh),
        ("exp", Tensor::exp),
        ("ln", Tensor::ln),
        ("relu", Tensor::relu),
    ];
    for (name, op) in rows {
        let contiguous = ns_per_element(n, || op(&x));
        let narrowed = ns_per_element(n, || op(&half));
        println!("| {name} | {contiguous:.2} | {narrowed:.2} |");
    }
    let product = ns_per_element(n, || x.mul(&y));
    let narrowed = ns_per_element(n, || half.mul(&y));
    println!("| mul | {product:.2} | {narrowed:.2} |");
}
