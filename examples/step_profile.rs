//! Where a training step's time goes: the moons and digits RealNVP steps of
//! `benches/train_step.rs`, cut into phases (forward, backward, handing the
//! gradients to the parameters, Adam), the forward and backward split by op
//! kind ([`flowzoo::autodiff::profile`]), and the allocator's share (a
//! counting global allocator: calls, bytes, and the time spent inside it,
//! which for zeroed allocations includes the zero-filling).
//!
//! Run: `cargo run --release --example step_profile` (thread count from
//! `RAYON_NUM_THREADS`). Prints one table per workload, in ms per step.

use flowzoo::autodiff::{profile, Tape};
use flowzoo::data::digits;
use flowzoo::data::toy2d::Toy2d;
use flowzoo::flows::preprocess::Dequantize;
use flowzoo::flows::FlowModel;
use flowzoo::nn::Adam;
use flowzoo::tensor::parallel::in_pool;
use flowzoo::tensor::Tensor;
use flowzoo::train::run::{build_model, Dataset, RunConfig};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

/// The system allocator, counting calls, bytes and nanoseconds inside it.
struct Counting;

static CALLS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);
static ZEROED_BYTES: AtomicU64 = AtomicU64::new(0);
static NANOS: AtomicU64 = AtomicU64::new(0);

fn timed<R>(f: impl FnOnce() -> R) -> R {
    let t = Instant::now();
    let r = f();
    NANOS.fetch_add(t.elapsed().as_nanos() as u64, Relaxed);
    r
}

// SAFETY: every call is forwarded to `System` unchanged; the counters are
// atomics and allocate nothing.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        CALLS.fetch_add(1, Relaxed);
        BYTES.fetch_add(layout.size() as u64, Relaxed);
        timed(|| System.alloc(layout))
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        CALLS.fetch_add(1, Relaxed);
        BYTES.fetch_add(layout.size() as u64, Relaxed);
        ZEROED_BYTES.fetch_add(layout.size() as u64, Relaxed);
        timed(|| System.alloc_zeroed(layout))
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        timed(|| System.dealloc(ptr, layout))
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, size: usize) -> *mut u8 {
        CALLS.fetch_add(1, Relaxed);
        BYTES.fetch_add(size as u64, Relaxed);
        timed(|| System.realloc(ptr, layout, size))
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Per-step totals of one workload, in seconds (and counts).
#[derive(Default)]
struct Phases {
    forward: f64,
    backward: f64,
    assign: f64,
    adam: f64,
    alloc_calls: u64,
    alloc_mb: f64,
    zeroed_mb: f64,
    alloc_s: f64,
    page_faults: u64,
}

/// The process's minor page faults so far (field 10 of /proc/self/stat; 0
/// where that file does not exist): a fresh page touched for the first time.
fn minor_faults() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The command name (field 2) may hold spaces; the fields after it do not.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    after
        .split_whitespace()
        .nth(7)
        .and_then(|f| f.parse().ok())
        .unwrap_or(0)
}

/// Runs `steps` training steps of `model` on `batches` (after 10 unmeasured),
/// timing each phase, and prints the breakdown.
fn profile_steps(name: &str, model: &mut FlowModel<f32>, batches: &[Tensor<f32>], steps: usize) {
    in_pool(|| {
        let mut adam = Adam::new(1e-3);
        let mut phases = Phases::default();
        let mut next = batches.iter().cycle();
        let mut faults = 0;
        for i in 0..10 + steps {
            let measured = i >= 10;
            if i == 10 {
                profile::start();
                for c in [&CALLS, &BYTES, &ZEROED_BYTES, &NANOS] {
                    c.store(0, Relaxed);
                }
                faults = minor_faults();
            }
            let x = next.next().expect("cycle never ends");
            profile::mark();
            let t0 = Instant::now();
            let tape = Tape::new();
            let loss = model
                .log_prob_batch_var(&tape.constant(x.clone()))
                .mean_all()
                .neg();
            let t1 = Instant::now();
            let grads = tape.backward(&loss);
            let t2 = Instant::now();
            grads.assign(model.params_mut());
            drop(grads);
            drop(loss);
            drop(tape);
            let t3 = Instant::now();
            adam.step(model.params_mut());
            let t4 = Instant::now();
            if measured {
                phases.forward += (t1 - t0).as_secs_f64();
                phases.backward += (t2 - t1).as_secs_f64();
                phases.assign += (t3 - t2).as_secs_f64();
                phases.adam += (t4 - t3).as_secs_f64();
            }
        }
        let table = profile::stop();
        phases.page_faults = minor_faults() - faults;
        phases.alloc_calls = CALLS.load(Relaxed);
        phases.alloc_mb = BYTES.load(Relaxed) as f64 / 1e6;
        phases.zeroed_mb = ZEROED_BYTES.load(Relaxed) as f64 / 1e6;
        phases.alloc_s = NANOS.load(Relaxed) as f64 / 1e9;
        report(name, &phases, &table, steps as f64);
    })
}

fn report(name: &str, p: &Phases, table: &[profile::Entry], steps: f64) {
    let ms = |s: f64| s / steps * 1e3;
    let total = p.forward + p.backward + p.assign + p.adam;
    println!("\n## {name} ({} threads)\n", rayon::current_num_threads());
    println!("| phase | ms/step | share |");
    println!("| --- | ---: | ---: |");
    for (phase, s) in [
        ("forward (recorded)", p.forward),
        ("backward", p.backward),
        ("gradients to parameters, tape dropped", p.assign),
        ("Adam", p.adam),
        ("whole step", total),
    ] {
        println!("| {phase} | {:.3} | {:.0} % |", ms(s), 100.0 * s / total);
    }
    println!(
        "\nallocator: {:.0} calls/step, {:.2} MB/step ({:.2} MB zeroed), {:.3} ms/step inside it (alloc + free, zero-filling included); {:.0} minor page faults/step\n",
        p.alloc_calls as f64 / steps,
        p.alloc_mb / steps,
        p.zeroed_mb / steps,
        ms(p.alloc_s),
        p.page_faults as f64 / steps
    );
    println!("| phase | op | nodes/step | ms/step | share of step |");
    println!("| --- | --- | ---: | ---: | ---: |");
    for e in table.iter().filter(|e| e.seconds / total > 0.002) {
        println!(
            "| {:?} | {} | {:.0} | {:.3} | {:.1} % |",
            e.phase,
            e.op,
            e.calls as f64 / steps,
            ms(e.seconds),
            100.0 * e.seconds / total
        );
    }
}

fn main() {
    let mut rng = StdRng::seed_from_u64(1);
    let moons = Toy2d::moons();
    let moons_batches = |b: usize, rng: &mut StdRng| -> Vec<Tensor<f32>> {
        (0..20)
            .map(|_| Tensor::from_f64_slice(&moons.sample(b, rng), &[b, 2]))
            .collect()
    };
    let mut model = build_model(&RunConfig::default()).expect("the moons model");
    profile_steps(
        "moons, batch 256",
        &mut model,
        &moons_batches(256, &mut rng),
        100,
    );
    profile_steps(
        "moons, batch 4096",
        &mut model,
        &moons_batches(4096, &mut rng),
        15,
    );

    let config = RunConfig {
        dataset: Dataset::Digits,
        ..RunConfig::default()
    };
    let mut model = build_model(&config).expect("the digits model");
    let pixels = digits::train().images_f64();
    let dequantize = Dequantize::new(digits::LEVELS);
    let batches: Vec<Tensor<f32>> = (0..20)
        .map(|_| {
            let v = Tensor::<f32>::from_f64_slice(&pixels[..256 * 64], &[256, 64]);
            dequantize.apply(&v, &mut rng)
        })
        .collect();
    profile_steps("digits 64-D, batch 256", &mut model, &batches, 60);
}
