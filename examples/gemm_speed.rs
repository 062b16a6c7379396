//! The f32 GEMM the tensors use (`Element::gemm`: flowzoo's packed AVX2
//! kernel where the CPU has AVX2 and FMA, `matrixmultiply` elsewhere)
//! against `matrixmultiply::sgemm` called directly, on the products of the
//! MLP flows' training steps, one thread, the two alternating.
//!
//! Run: `cargo run --release --example gemm_speed` (add `-- 9` for 9
//! rounds; 5 by default). Prints GFLOP/s, the median of the rounds.

use flowzoo::tensor::element::Element;
use std::hint::black_box;
use std::time::Instant;

/// A GEMM's signature: `C ← α·A·B + β·C` with strides.
type Gemm = unsafe fn(
    usize,
    usize,
    usize,
    f32,
    *const f32,
    isize,
    isize,
    *const f32,
    isize,
    isize,
    f32,
    *mut f32,
    isize,
    isize,
);

/// One product `[m, k] × [k, n]`, with A or B transposed as the layer's
/// forward or backward pass reads them.
struct Shape {
    what: &'static str,
    m: usize,
    k: usize,
    n: usize,
    a_transposed: bool,
    b_transposed: bool,
}

const SHAPES: [Shape; 13] = [
    Shape {
        what: "moons forward x·Wᵀ, batch 256",
        m: 256,
        k: 256,
        n: 256,
        a_transposed: false,
        b_transposed: true,
    },
    Shape {
        what: "moons input grad g·W",
        m: 256,
        k: 256,
        n: 256,
        a_transposed: false,
        b_transposed: false,
    },
    Shape {
        what: "moons weight grad gᵀ·x",
        m: 256,
        k: 256,
        n: 256,
        a_transposed: true,
        b_transposed: false,
    },
    Shape {
        what: "moons first layer, k = 1",
        m: 256,
        k: 1,
        n: 256,
        a_transposed: false,
        b_transposed: true,
    },
    Shape {
        what: "batch 4096 forward",
        m: 4096,
        k: 256,
        n: 256,
        a_transposed: false,
        b_transposed: true,
    },
    Shape {
        what: "batch 4096 weight grad",
        m: 256,
        k: 4096,
        n: 256,
        a_transposed: true,
        b_transposed: false,
    },
    Shape {
        what: "MAF 5 × 2×512, batch 256",
        m: 256,
        k: 512,
        n: 512,
        a_transposed: false,
        b_transposed: true,
    },
    Shape {
        what: "MADE sampling, 8 new hidden units",
        m: 256,
        k: 300,
        n: 8,
        a_transposed: false,
        b_transposed: false,
    },
    Shape {
        what: "MADE sampling, one output column",
        m: 256,
        k: 512,
        n: 1,
        a_transposed: false,
        b_transposed: false,
    },
    Shape {
        what: "MADE block tile 64 × 64",
        m: 256,
        k: 64,
        n: 64,
        a_transposed: false,
        b_transposed: false,
    },
    Shape {
        what: "MADE block tile 64 × 40",
        m: 256,
        k: 64,
        n: 40,
        a_transposed: false,
        b_transposed: false,
    },
    Shape {
        what: "MADE block tile 40 × 24",
        m: 256,
        k: 40,
        n: 24,
        a_transposed: false,
        b_transposed: false,
    },
    Shape {
        what: "narrow: 5 rows",
        m: 5,
        k: 256,
        n: 256,
        a_transposed: false,
        b_transposed: true,
    },
];

/// Nanoseconds of one call of `f`, the median of `reps` after `reps / 4` warm-up.
fn time_ns(reps: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..reps / 4 + 1 {
        f();
    }
    let mut times: Vec<f64> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_nanos() as f64
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[reps / 2]
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .map_or(5, |r| r.parse().expect("rounds: a number"));
    println!("GFLOP/s, one thread, median of {rounds} alternating rounds");
    println!(
        "{:<34} {:>16} {:>10} {:>10} {:>7}",
        "product", "[m, k, n]", "ours", "raw", "ratio"
    );
    for s in &SHAPES {
        let (m, k, n) = (s.m, s.k, s.n);
        let a: Vec<f32> = (0..m * k)
            .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
            .collect();
        let b: Vec<f32> = (0..k * n)
            .map(|i| ((i * 104_729) % 1000) as f32 / 1000.0 - 0.5)
            .collect();
        let mut c = vec![0.0f32; m * n];
        let (rsa, csa) = if s.a_transposed {
            (1, m as isize)
        } else {
            (k as isize, 1)
        };
        let (rsb, csb) = if s.b_transposed {
            (1, k as isize)
        } else {
            (n as isize, 1)
        };
        let flops = 2.0 * (m * k * n) as f64;
        let reps = ((2e9 / flops) as usize).clamp(5, 2000);
        let (mut ours, mut raw) = (Vec::new(), Vec::new());
        let mut timed = |gemm: Gemm| {
            time_ns(reps, || {
                // SAFETY: a, b and c hold the [m, k], [k, n] and [m, n]
                // matrices their strides describe, and c is distinct.
                unsafe {
                    gemm(
                        m,
                        k,
                        n,
                        1.0,
                        a.as_ptr(),
                        rsa,
                        csa,
                        b.as_ptr(),
                        rsb,
                        csb,
                        0.0,
                        c.as_mut_ptr(),
                        n as isize,
                        1,
                    )
                };
                black_box(&mut c);
            })
        };
        for _ in 0..rounds {
            ours.push(timed(<f32 as Element>::gemm));
            raw.push(timed(matrixmultiply::sgemm));
        }
        let median = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (ours, raw) = (flops / median(ours), flops / median(raw));
        println!(
            "{:<34} {:>16} {:>10.1} {:>10.1} {:>7.2}",
            s.what,
            format!("[{m}, {k}, {n}]"),
            ours,
            raw,
            ours / raw
        );
    }
}
