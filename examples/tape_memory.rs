//! Does training leak memory? Trains the two-moons RealNVP (8 affine
//! couplings, MLPs with two hidden layers of 64) for 10,000 steps of batch
//! 256 with the library's own loop (`train::fit`, Adam 1e-3), and reads the
//! process's resident memory from `/proc/self/status` every 1,000 steps:
//! `VmRSS` (resident now) and `VmHWM` (the peak so far). Each step builds a
//! tape, backpropagates and drops it, so both should be flat after the first
//! steps. Then evaluates `log_prob` on 20,000 points without a tape.
//!
//! Run: `cargo run --release --example tape_memory` (Linux: it reads /proc).
//! Prints a table, then one JSON line with the figures at steps 1,000 and
//! 10,000.

use flowzoo::data::toy2d::Toy2d;
use flowzoo::flows::FlowModel;
use flowzoo::tensor::Tensor;
use flowzoo::train::fit::{fit, FitConfig};
use rand::SeedableRng;

/// `(VmRSS, VmHWM)` of this process in KiB, from /proc/self/status.
fn resident_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status")
        .expect("/proc/self/status is readable (this example needs Linux)");
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
            .unwrap_or_else(|| panic!("/proc/self/status has no {name} line"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn main() {
    const STEPS: usize = 10_000;
    const BATCH: usize = 256;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let mut model = FlowModel::<f32>::realnvp(2, 8, 64, &mut rng);
    let moons = Toy2d::moons();
    let config = FitConfig {
        steps: STEPS,
        seed: 0,
        eval_every: 1000,
        ..FitConfig::default()
    };
    let (rss0, hwm0) = resident_kib();
    let mut readings: Vec<(usize, f64, u64, u64)> = Vec::new();
    let report = fit(
        &mut model,
        &mut flowzoo::nn::Adam::new(1e-3),
        &config,
        |_, rng| Tensor::from_f64_slice(&moons.sample(BATCH, rng), &[BATCH, 2]),
        None,
        |step, loss| {
            if step == 1 || step % 1000 == 0 {
                let (rss, hwm) = resident_kib();
                readings.push((step, loss, rss, hwm));
            }
        },
    )
    .expect("moons training does not diverge");
    let test = Tensor::<f32>::from_f64_slice(&moons.sample(20_000, &mut rng), &[20_000, 2]);
    let nll = flowzoo::train::eval::mean_nll(&model, &test);
    let (rss_eval, hwm_eval) = resident_kib();

    println!(
        "RealNVP moons, 8 couplings, hidden 64, batch {BATCH}: {:.2} ms/step, test NLL {nll:.3} nats",
        report.ms_per_step
    );
    println!("| step | loss | VmRSS (KiB) | VmHWM (KiB) |");
    println!("| --- | --- | --- | --- |");
    println!("| before | | {rss0} | {hwm0} |");
    for (step, loss, rss, hwm) in &readings {
        println!("| {step} | {loss:.3} | {rss} | {hwm} |");
    }
    println!("| after eval of 20k points | | {rss_eval} | {hwm_eval} |");
    let at = |s: usize| {
        readings
            .iter()
            .find(|r| r.0 == s)
            .map(|r| (r.2, r.3))
            .expect("a reading at every 1000th step")
    };
    let ((rss_1k, hwm_1k), (rss_10k, hwm_10k)) = (at(1000), at(STEPS));
    println!(
        "{{\"rss_kib_step_1000\": {rss_1k}, \"hwm_kib_step_1000\": {hwm_1k}, \"rss_kib_step_10000\": {rss_10k}, \"hwm_kib_step_10000\": {hwm_10k}, \"hwm_growth_kib\": {}, \"ms_per_step\": {:.3}}}",
        hwm_10k as i64 - hwm_1k as i64,
        report.ms_per_step
    );
}
