//! Amortised inference with a known answer (issue 16, item 4): a
//! conditional MAF q(θ | x) trained on simulated pairs of the
//! linear-Gaussian model θ ~ N(0, I_d), x = A·θ + ε, ε ~ N(0, 0.5²·I),
//! against the exact posterior p(θ | x), which is Gaussian in closed form.
//!
//! For d = 2 and d = 5 (x of the same dimension) it prints the KL
//! divergence KL(p(θ | x) ‖ q(θ | x)) in nats, averaged over 100 held-out
//! observations x (each by Monte Carlo over 2000 posterior draws), and the
//! same figure for the prior N(0, I) as q, the KL a model that ignored x
//! would have.
//!
//! Run: `cargo run --release --example amortised_posterior [steps]`
//! (default 3000 steps of 256 fresh simulations).

use flowzoo::data::simulators::LinearGaussian;
use flowzoo::flows::FlowModel;
use flowzoo::nn::Adam;
use flowzoo::train::amortised::fit_posterior;
use flowzoo::train::fit::FitConfig;
use rand::rngs::StdRng;
use rand::SeedableRng;

fn main() {
    let steps: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("steps: a positive integer"))
        .unwrap_or(3000);
    println!("| d | steps | ms/step | KL(exact ‖ flow), nats | KL(exact ‖ prior), nats |");
    println!("| --- | --- | --- | --- | --- |");
    for d in [2, 5] {
        let sim = LinearGaussian::new(d, d, 0.5, 0);
        let mut model =
            FlowModel::<f32>::conditional_maf(d, d, 3, &[64, 64], &mut StdRng::seed_from_u64(1));
        let config = FitConfig {
            steps,
            seed: 2,
            eval_every: steps,
            ..FitConfig::default()
        };
        let report = fit_posterior(&mut model, &mut Adam::new(1e-3), &config, |_, rng| {
            sim.simulate::<f32, _>(256, rng)
        })
        .expect("training runs");
        let mut rng = StdRng::seed_from_u64(3);
        let (_, held_out) = sim.simulate::<f64, _>(100, &mut rng);
        let prior = FlowModel::<f32>::conditional_maf(d, d, 0, &[], &mut StdRng::seed_from_u64(0));
        let (mut kl, mut kl_prior) = (0.0, 0.0);
        for x in held_out.to_vec().chunks(d) {
            kl += sim
                .posterior_kl(&model, x, 2000, &mut rng)
                .expect("a context of width d");
            kl_prior += sim
                .posterior_kl(&prior, x, 2000, &mut rng)
                .expect("a context of width d");
        }
        println!(
            "| {d} | {steps} | {:.2} | {:.4} | {:.3} |",
            report.ms_per_step,
            kl / 100.0,
            kl_prior / 100.0
        );
    }
}
