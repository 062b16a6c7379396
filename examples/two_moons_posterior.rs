//! The two-moons task of simulation-based inference (issue 16, item 4): a
//! conditional MAF q(θ | x) trained on simulated pairs of
//! [`TwoMoons`](flowzoo::data::simulators::TwoMoons), then asked for the
//! posterior at the observation x₀ = (0, 0), whose true posterior is two
//! thin crescents. Draws 20 000 posterior samples into a 2-D histogram over
//! the prior's box [−1, 1]² and writes it as `two_moons_posterior.png`
//! (or the path given), darker where more samples fall.
//!
//! It also prints a number to check the picture against: the posterior
//! predictive distance, the mean of ‖x − x₀‖ for x simulated from the
//! samples θ, beside the same for θ from the prior.
//!
//! Run: `cargo run --release --example two_moons_posterior [out.png] [steps]`
//! (the PNG needs the `cli` feature, on by default).

use flowzoo::data::simulators::TwoMoons;
use flowzoo::flows::FlowModel;
use flowzoo::nn::Adam;
use flowzoo::tensor::Tensor;
use flowzoo::train::amortised::fit_posterior;
use flowzoo::train::fit::FitConfig;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Pixels per side of the histogram.
const SIZE: usize = 320;

fn main() {
    let mut args = std::env::args().skip(1);
    let out = args
        .next()
        .unwrap_or_else(|| "two_moons_posterior.png".into());
    let steps: usize = args
        .next()
        .map(|s| s.parse().expect("steps: a positive integer"))
        .unwrap_or(5000);
    let mut model =
        FlowModel::<f32>::conditional_maf(2, 2, 5, &[64, 64], &mut StdRng::seed_from_u64(1));
    let config = FitConfig {
        steps,
        seed: 2,
        eval_every: steps,
        ..FitConfig::default()
    };
    let report = fit_posterior(&mut model, &mut Adam::new(1e-3), &config, |_, rng| {
        TwoMoons.simulate::<f32, _>(256, rng)
    })
    .expect("training runs");
    println!(
        "trained {steps} steps of 256 simulations, {:.2} ms/step, final loss {:.3} nats",
        report.ms_per_step, report.final_loss
    );

    let n = 20_000;
    let observed = Tensor::<f32>::from_vec(vec![0.0, 0.0], &[1, 2]);
    let mut rng = StdRng::seed_from_u64(3);
    let theta = model
        .sample_given(n, 1.0, Some(&observed), &mut rng)
        .expect("a context of width 2")
        .to_f64_vec();
    let distance = |t1: f64, t2: f64, rng: &mut StdRng| {
        let [x1, x2] = TwoMoons::simulate_one(t1, t2, rng);
        x1.hypot(x2)
    };
    let posterior: f64 = theta
        .chunks(2)
        .map(|t| distance(t[0], t[1], &mut rng))
        .sum::<f64>()
        / n as f64;
    let prior: f64 = (0..n)
        .map(|_| {
            let (t1, t2) = (rng.gen_range(-1.0..1.0), rng.gen_range(-1.0..1.0));
            distance(t1, t2, &mut rng)
        })
        .sum::<f64>()
        / n as f64;
    println!("posterior predictive mean ‖x − x₀‖: {posterior:.4} (θ from the prior: {prior:.4})");
    let inside = theta
        .chunks(2)
        .filter(|t| t[0].abs() <= 1.0 && t[1].abs() <= 1.0)
        .count();
    println!("{inside} of {n} samples inside the prior's box [−1, 1]²");

    // 2-D histogram, θ₁ across, θ₂ up.
    let mut counts = vec![0u32; SIZE * SIZE];
    for t in theta.chunks(2) {
        let column = ((t[0] + 1.0) / 2.0 * SIZE as f64).floor();
        let row = ((1.0 - t[1]) / 2.0 * SIZE as f64).floor();
        if (0.0..SIZE as f64).contains(&column) && (0.0..SIZE as f64).contains(&row) {
            counts[row as usize * SIZE + column as usize] += 1;
        }
    }
    let top = counts.iter().copied().max().unwrap_or(1).max(1) as f64;
    let mut pixels = Vec::with_capacity(SIZE * SIZE * 3);
    for (k, &count) in counts.iter().enumerate() {
        let (row, column) = (k / SIZE, k % SIZE);
        // Axes θ₁ = 0 and θ₂ = 0 in light grey.
        let axis = row == SIZE / 2 || column == SIZE / 2;
        // White to dark blue on a square-root scale, so thin tails show.
        let level = (count as f64 / top).sqrt();
        let shade = |full: f64| (255.0 - level * (255.0 - full)).round() as u8;
        if count == 0 && axis {
            pixels.extend([210, 210, 210]);
        } else {
            pixels.extend([shade(20.0), shade(40.0), shade(120.0)]);
        }
    }
    write_png(&out, &pixels);
    println!("wrote {out} ({SIZE}x{SIZE}: θ₁ ∈ [−1, 1] across, θ₂ ∈ [−1, 1] up)");
}

/// Writes RGB `pixels` (`SIZE`×`SIZE`) to `path` through a temporary file.
fn write_png(path: &str, pixels: &[u8]) {
    let tmp = format!("{path}.tmp");
    let file = std::fs::File::create(&tmp).expect("create the PNG");
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), SIZE as u32, SIZE as u32);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().expect("PNG header");
    writer.write_image_data(pixels).expect("PNG data");
    writer.finish().expect("PNG end");
    std::fs::rename(&tmp, path).expect("rename the PNG into place");
}
