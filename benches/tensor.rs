//! The tensor engine against the machine: `cargo bench --bench tensor`.
//!
//! Each ratio is measured side by side in one run (the two sides alternate,
//! median of repeats), because the machine is shared and noisy. Thread
//! counts are fixed with two rayon pools (1 and 2 threads) and
//! `pool.install`, so kernels run on a pool thread as training loops do
//! (`parallel::in_pool`). The run prints a table and ends with one line of
//! JSON; docs/benchmarks/engine.md explains each entry.

use flowzoo::tensor::parallel::{PAR_CHUNK, PAR_MIN_ELEMENTS};
use flowzoo::tensor::Tensor;
use rand::SeedableRng;
use rayon::prelude::*;
use rayon::ThreadPool;
use std::hint::black_box;
use std::time::Instant;

mod common;
use common::median;

/// Median seconds per op of `batch`, where `batch(r)` runs `r` ops (inside
/// a pool's `install`, so that a batch pays one hand-off to the pool, not one
/// per op), over `outer` batches of `inner` ops.
fn median_secs(inner: usize, outer: usize, mut batch: impl FnMut(usize)) -> f64 {
    batch(1); // warm-up: page faults, pool wake-up, caches
    median(
        (0..outer)
            .map(|_| {
                let start = Instant::now();
                batch(inner);
                start.elapsed().as_secs_f64() / inner as f64
            })
            .collect(),
    )
}

/// Median seconds per op of `a` and of `b` (each `FnMut(r)` running a batch
/// of `r` ops), batches alternating so that both sides see the same load.
fn paired_secs(
    inner: usize,
    outer: usize,
    mut a: impl FnMut(usize),
    mut b: impl FnMut(usize),
) -> (f64, f64) {
    let times = alternating_secs(inner, outer, &mut [&mut a, &mut b]);
    (times[0], times[1])
}

/// Median seconds per op of each side (an `FnMut(r)` running a batch of `r`
/// ops), the sides taking turns batch by batch so that all see the same load.
fn alternating_secs(inner: usize, outer: usize, sides: &mut [&mut dyn FnMut(usize)]) -> Vec<f64> {
    for side in sides.iter_mut() {
        side(1); // warm-up: page faults, pool wake-up, caches
    }
    let mut times = vec![Vec::with_capacity(outer); sides.len()];
    for _ in 0..outer {
        for (side, t) in sides.iter_mut().zip(&mut times) {
            let start = Instant::now();
            side(inner);
            t.push(start.elapsed().as_secs_f64() / inner as f64);
        }
    }
    times.into_iter().map(median).collect()
}

/// Runs `op` `r` times on a thread of `pool`.
fn on(pool: &ThreadPool, r: usize, op: impl FnMut() + Send) {
    let mut op = op;
    pool.install(|| (0..r).for_each(|_| op()));
}

fn pool(threads: usize) -> ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a rayon pool")
}

fn randn(shape: &[usize], seed: u64) -> Tensor<f32> {
    Tensor::randn(shape, &mut rand::rngs::StdRng::seed_from_u64(seed))
}

/// `C ← A·B` by `matrixmultiply::sgemm` on the tensors' own buffers and
/// strides, into a preallocated `c` (`[m, n]` row-major).
fn raw_sgemm(a: &Tensor<f32>, b: &Tensor<f32>, c: &mut [f32]) {
    let (m, k, n) = (a.dim(0), a.dim(1), b.dim(1));
    assert_eq!(c.len(), m * n);
    // SAFETY: the layouts lie inside their storages (Tensor's invariant) and
    // `c` is a distinct [m, n] buffer.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.storage().as_ptr().add(a.layout().offset()),
            a.strides()[0] as isize,
            a.strides()[1] as isize,
            b.storage().as_ptr().add(b.layout().offset()),
            b.strides()[0] as isize,
            b.strides()[1] as isize,
            0.0,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

/// The clock in GHz from the first "cpu MHz" line of /proc/cpuinfo.
fn cpu_ghz() -> Option<f64> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("cpu MHz"))?;
    let mhz: f64 = line.split(':').nth(1)?.trim().parse().ok()?;
    Some(mhz / 1000.0)
}

fn main() {
    let wall = Instant::now();
    let (p1, p2) = (pool(1), pool(2));
    let mut json: Vec<(String, f64)> = Vec::new();
    let mut record = |name: &str, value: f64, what: &str| {
        println!("{name:<34} {value:>10.3}   {what}");
        json.push((name.to_string(), value));
    };

    // ---- matmul, n = 512, f32 -------------------------------------------
    let n = 512;
    let flops = 2.0 * (n * n * n) as f64;
    let a = randn(&[n, n], 1);
    let b = randn(&[n, n], 2);
    let mut c = vec![0f32; n * n];
    let (ours, raw) = paired_secs(
        2,
        9,
        |r| on(&p1, r, || drop(black_box(a.matmul(&b)))),
        |r| on(&p1, r, || raw_sgemm(&a, &b, &mut c)),
    );
    record(
        "matmul_vs_raw",
        raw / ours,
        "ours / raw sgemm GFLOP/s, n=512, 1 thread",
    );
    record(
        "matmul_1t_gflops",
        flops / ours / 1e9,
        "ours, n=512, 1 thread",
    );
    record(
        "raw_sgemm_1t_gflops",
        flops / raw / 1e9,
        "matrixmultiply::sgemm, n=512, 1 thread",
    );

    let at = a.t(); // strides (1, 512): a transposed view, no copy
    let (ours_t, raw_t) = paired_secs(
        2,
        9,
        |r| on(&p1, r, || drop(black_box(at.matmul(&b)))),
        |r| on(&p1, r, || raw_sgemm(&at, &b, &mut c)),
    );
    record(
        "matmul_vs_raw_transposed",
        raw_t / ours_t,
        "same, lhs a transposed view",
    );

    // 16 products per timed batch: the first op of a batch pays the wake-up
    // of the pool's sleeping threads, which a training loop, keeping them
    // busy, does not.
    let (two, one) = paired_secs(
        16,
        9,
        |r| on(&p2, r, || drop(black_box(a.matmul(&b)))),
        |r| on(&p1, r, || drop(black_box(a.matmul(&b)))),
    );
    record(
        "matmul_parallel_speedup",
        one / two,
        "ours n=512, 2 threads over 1 thread",
    );
    let matmul_gflops = flops / two / 1e9;
    record("matmul_gflops", matmul_gflops, "ours, n=512, 2 threads");

    // ---- thin matmul: [256, 256] x [256, 2] -----------------------------
    let x = randn(&[256, 256], 3);
    let w = randn(&[256, 2], 4);
    let mut c_thin = vec![0f32; 256 * 2];
    let (ours_thin, raw_thin) = paired_secs(
        200,
        15,
        |r| on(&p1, r, || drop(black_box(x.matmul(&w)))),
        |r| on(&p1, r, || raw_sgemm(&x, &w, &mut c_thin)),
    );
    let thin_flops = 2.0 * 256.0 * 256.0 * 2.0;
    record(
        "thin_matmul_speedup",
        raw_thin / ours_thin,
        "[256,256]x[256,2], ours over raw sgemm, 1 thread",
    );
    record("thin_matmul_gflops", thin_flops / ours_thin / 1e9, "ours");
    record(
        "thin_raw_sgemm_gflops",
        thin_flops / raw_thin / 1e9,
        "raw sgemm",
    );

    // ---- element-wise: 4M f32 add ---------------------------------------
    let len = 1 << 22;
    let ea = randn(&[len], 5);
    let eb = randn(&[len], 6);
    let (sa, sb) = (ea.as_slice().expect("fresh"), eb.as_slice().expect("fresh"));
    let (ours_add, loop_add) = paired_secs(
        2,
        15,
        |r| on(&p1, r, || drop(black_box(ea.add(&eb)))),
        |r| {
            on(&p1, r, || {
                let out: Vec<f32> = sa.iter().zip(sb).map(|(x, y)| x + y).collect();
                drop(black_box(out));
            })
        },
    );
    record(
        "ewise_vs_loop",
        loop_add / ours_add,
        "4M f32 add, ours over a plain loop (1 thread, both allocate)",
    );
    let gbps = |secs: f64| 3.0 * 4.0 * len as f64 / secs / 1e9;
    record(
        "ewise_1t_gbps",
        gbps(ours_add),
        "bytes read + written / s, 1 thread",
    );
    // Two threads over one, for our kernel and for the machine itself: a
    // raw rayon loop into a preallocated buffer (no allocation, no
    // broadcasting checks), the four sides alternating so that all see the
    // same load. A 4M add is bound by memory bandwidth, so the raw loop's
    // speedup is the ceiling the memory system allows in this run.
    let mut out1 = vec![0f32; len];
    let mut out2 = vec![0f32; len];
    let raw_chunk = 1 << 16;
    let times = alternating_secs(
        16,
        9,
        &mut [
            &mut |r| on(&p2, r, || drop(black_box(ea.add(&eb)))),
            &mut |r| on(&p1, r, || drop(black_box(ea.add(&eb)))),
            &mut |r| {
                on(&p2, r, || {
                    out2.par_chunks_mut(raw_chunk)
                        .zip(sa.par_chunks(raw_chunk))
                        .zip(sb.par_chunks(raw_chunk))
                        .for_each(|((o, x), y)| {
                            for ((o, x), y) in o.iter_mut().zip(x).zip(y) {
                                *o = x + y;
                            }
                        });
                    black_box(&out2);
                })
            },
            &mut |r| {
                on(&p1, r, || {
                    for ((o, x), y) in out1.iter_mut().zip(sa).zip(sb) {
                        *o = x + y;
                    }
                    black_box(&out1);
                })
            },
        ],
    );
    let (add2, add1, raw2, raw1) = (times[0], times[1], times[2], times[3]);
    record(
        "ewise_parallel_speedup",
        add1 / add2,
        "4M f32 add, 2 threads over 1",
    );
    record(
        "ewise_2t_gbps",
        gbps(add2),
        "bytes read + written / s, 2 threads",
    );
    record(
        "raw_ewise_parallel_speedup",
        raw1 / raw2,
        "the machine: a raw rayon loop into a preallocated buffer, 2 threads over 1",
    );
    record("raw_ewise_1t_gbps", gbps(raw1), "raw loop, 1 thread");
    record("raw_ewise_2t_gbps", gbps(raw2), "raw loop, 2 threads");
    record(
        "ewise_2t_vs_raw_2t",
        raw2 / add2,
        "2 threads: our add's throughput over the raw loop's",
    );
    record(
        "ewise_1t_vs_raw_1t",
        raw1 / add1,
        "1 thread: our add's throughput over the raw loop's",
    );

    // Strided: the same add on transposed views of [2048, 2048] matrices.
    let ma = ea.reshape(&[2048, 2048]);
    let mb = eb.reshape(&[2048, 2048]);
    let (mat, mbt) = (ma.t(), mb.t());
    let (contiguous, strided) = paired_secs(
        2,
        9,
        |r| on(&p1, r, || drop(black_box(ma.add(&mb)))),
        |r| on(&p1, r, || drop(black_box(mat.add(&mbt)))),
    );
    record(
        "strided_vs_contiguous",
        contiguous / strided,
        "add on transposed [2048,2048] views, throughput over contiguous (1 thread)",
    );
    let mixed = median_secs(2, 9, |r| on(&p1, r, || drop(black_box(ma.add(&mbt)))));
    record(
        "strided_mixed_vs_contiguous",
        contiguous / mixed,
        "one operand transposed, one contiguous",
    );

    // ---- the parallel crossover: 1 vs 2 threads, 2^10 .. 2^22 ----------
    // Forced parallel (split in two halves at least, PAR_CHUNK chunks
    // above), so the threshold in parallel.rs does not hide the answer.
    println!("\nelement-wise add crossover (µs per call; forced split vs serial, and our kernel)");
    println!(
        "{:>9} {:>10} {:>10} {:>7} {:>10} {:>10} {:>7}",
        "elements", "serial", "2 threads", "ratio", "ours 1t", "ours 2t", "ratio"
    );
    let mut crossover: Option<usize> = None;
    let mut wins = Vec::new();
    for log2 in 10..=22 {
        let size = 1usize << log2;
        let (xa, xb) = (&sa[..size], &sb[..size]);
        let chunk = PAR_CHUNK.min(size / 2);
        // About 20 MB of traffic per batch, at least 2 ops.
        let inner = ((1 << 21) / size).max(2);
        let (par, ser) = paired_secs(
            inner,
            11,
            |r| {
                on(&p2, r, || {
                    let mut out = Vec::with_capacity(size);
                    xa.par_iter()
                        .zip(xb.par_iter())
                        .with_min_len(chunk)
                        .map(|(x, y)| x + y)
                        .collect_into_vec(&mut out);
                    drop(black_box(out));
                })
            },
            |r| {
                on(&p1, r, || {
                    let out: Vec<f32> = xa.iter().zip(xb).map(|(x, y)| x + y).collect();
                    drop(black_box(out));
                })
            },
        );
        let (ta, tb) = (
            Tensor::from_vec(xa.to_vec(), &[size]),
            Tensor::from_vec(xb.to_vec(), &[size]),
        );
        let (k2, k1) = paired_secs(
            inner,
            11,
            |r| on(&p2, r, || drop(black_box(ta.add(&tb)))),
            |r| on(&p1, r, || drop(black_box(ta.add(&tb)))),
        );
        println!(
            "{:>9} {:>10.2} {:>10.2} {:>7.2} {:>10.2} {:>10.2} {:>7.2}",
            format!("2^{log2}"),
            ser * 1e6,
            par * 1e6,
            ser / par,
            k1 * 1e6,
            k2 * 1e6,
            k1 / k2
        );
        wins.push((size, par < ser));
    }
    // The smallest size from which 2 threads win at every larger size.
    for (i, &(size, _)) in wins.iter().enumerate() {
        if wins[i..].iter().all(|&(_, win)| win) {
            crossover = Some(size);
            break;
        }
    }
    println!();
    record(
        "ewise_crossover_log2",
        crossover.map_or(f64::NAN, |s| (s as f64).log2()),
        "log2 of the smallest size from which 2 threads beat 1 (forced split)",
    );
    record(
        "par_min_elements_log2",
        (PAR_MIN_ELEMENTS as f64).log2(),
        "the threshold in parallel.rs, for comparison",
    );

    // ---- conv2d ---------------------------------------------------------
    let conv_cases: [(&str, [usize; 4], usize); 2] = [
        ("conv2d", [32, 64, 32, 32], 64),
        ("conv2d_8x8", [256, 64, 8, 8], 64),
    ];
    let mut conv_gflops = f64::NAN;
    for (name, shape, c_out) in conv_cases {
        let input = randn(&shape, 7);
        let weight = randn(&[c_out, shape[1], 3, 3], 8).mul_scalar(0.05);
        let bias = randn(&[c_out], 9);
        let flops = 2.0 * (shape[0] * c_out * shape[2] * shape[3] * shape[1] * 9) as f64;
        let forward = median_secs(1, 7, |r| {
            on(&p2, r, || {
                drop(black_box(input.conv2d(&weight, Some(&bias), 1)))
            })
        });
        let grad = p2.install(|| input.conv2d(&weight, None, 1));
        let input_grad = median_secs(1, 5, |r| {
            on(&p2, r, || {
                drop(black_box(Tensor::conv2d_input_grad(
                    &grad, &weight, &shape, 1,
                )))
            })
        });
        let weight_grad = median_secs(1, 5, |r| {
            on(&p2, r, || {
                drop(black_box(Tensor::conv2d_weight_grad(&input, &grad, 3, 1)))
            })
        });
        let gf = flops / forward / 1e9;
        if name == "conv2d" {
            conv_gflops = gf;
        }
        let what = format!("{shape:?} -> {c_out} channels, 3x3, padding 1, 2 threads");
        record(&format!("{name}_gflops"), gf, &what);
        record(
            &format!("{name}_input_grad_gflops"),
            flops / input_grad / 1e9,
            "",
        );
        record(
            &format!("{name}_weight_grad_gflops"),
            flops / weight_grad / 1e9,
            "",
        );
    }

    // ---- the machine's peak --------------------------------------------
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get()) as f64;
    let ghz = cpu_ghz().unwrap_or(f64::NAN);
    // AVX2: two 256-bit FMA pipes x 8 f32 lanes x 2 FLOPs = 32 FLOP/cycle.
    let peak = cores * ghz * 32.0;
    record("cores", cores, "std::thread::available_parallelism");
    record("clock_ghz", ghz, "/proc/cpuinfo cpu MHz");
    record(
        "peak_gflops",
        peak,
        "cores x GHz x 32 FLOP/cycle (AVX2 FMA, f32)",
    );
    record("matmul_fraction_of_peak", matmul_gflops / peak, "");
    record("conv2d_fraction_of_peak", conv_gflops / peak, "");
    // RESULTS.md's figure: the same formula at the 3.66 GHz boost clock.
    let peak_boost = 234.0;
    record(
        "peak_gflops_results_md",
        peak_boost,
        "2 x 3.66 GHz x 32, from RESULTS.md",
    );
    record(
        "matmul_fraction_of_results_peak",
        matmul_gflops / peak_boost,
        "",
    );
    record(
        "conv2d_fraction_of_results_peak",
        conv_gflops / peak_boost,
        "",
    );
    record("bench_seconds", wall.elapsed().as_secs_f64(), "");

    let body: Vec<String> = json
        .iter()
        .map(|(k, v)| {
            if v.is_finite() {
                format!("\"{k}\": {v:.4}")
            } else {
                format!("\"{k}\": null")
            }
        })
        .collect();
    println!("{{{}}}", body.join(", "));
}
