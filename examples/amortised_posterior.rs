//! Amortised inference with a known answer (issue 16, item 4): a
//! conditional flow q(θ | x) for the linear-Gaussian model
//! θ ~ N(0, I_d), x = A·θ + ε, ε ~ N(0, 0.5²·I), against the exact
//! posterior p(θ | x), which is Gaussian in closed form. Two ways to train:
//!
//! - a conditional MAF by maximum likelihood on simulated pairs (θ, x)
//!   (`fit_posterior`, neural posterior estimation);
//! - a conditional IAF by reverse KL against the joint log p(θ, x)
//!   (`fit_variational_posterior`, amortised variational inference), on
//!   observations x simulated from p(x).
//!
//! For d = 2 and d = 5 (x of the same dimension) it prints both
//! divergences, KL(p ‖ q) (what maximum likelihood minimises) and
//! KL(q ‖ p) (what reverse KL minimises), in nats, averaged over 100
//! held-out observations x (each by Monte Carlo over 2000 draws), and
//! KL(p ‖ q) for the prior N(0, I) as q, the figure of a model that
//! ignored x.
//!
//! Run: `cargo run --release --example amortised_posterior [steps]`
//! (default 3000 steps of 256 fresh simulations, for each model).

use flowzoo::data::simulators::LinearGaussian;
use flowzoo::flows::FlowModel;
use flowzoo::nn::Adam;
use flowzoo::tensor::Tensor;
use flowzoo::train::amortised::{fit_posterior, fit_variational_posterior};
use flowzoo::train::fit::FitConfig;
use flowzoo::train::reverse_kl::ReverseKlConfig;
use rand::rngs::StdRng;
use rand::SeedableRng;

/// The mean over `held_out` rows (x of width d) of KL(p ‖ q) and KL(q ‖ p).
fn divergences(sim: &LinearGaussian, model: &FlowModel<f32>, held_out: &Tensor<f64>) -> (f64, f64) {
    let mut rng = StdRng::seed_from_u64(4);
    let (mut forward, mut reverse) = (0.0, 0.0);
    let rows = held_out.dim(0) as f64;
    for x in held_out.to_vec().chunks(sim.x_dim) {
        forward += sim.posterior_kl(model, x, 2000, &mut rng).expect("width d");
        reverse += sim
            .reverse_posterior_kl(model, x, 2000, &mut rng)
            .expect("width d");
    }
    (forward / rows, reverse / rows)
}

fn main() {
    let steps: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("steps: a positive integer"))
        .unwrap_or(3000);
    println!("| d | model, training | steps | ms/step | KL(p ‖ q), nats | KL(q ‖ p), nats | KL(p ‖ prior), nats |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for d in [2, 5] {
        let sim = LinearGaussian::new(d, d, 0.5, 0);
        let (_, held_out) = sim.simulate::<f64, _>(100, &mut StdRng::seed_from_u64(3));
        let prior = FlowModel::<f32>::conditional_maf(d, d, 0, &[], &mut StdRng::seed_from_u64(0));
        let (kl_prior, _) = divergences(&sim, &prior, &held_out);

        let mut maf =
            FlowModel::<f32>::conditional_maf(d, d, 3, &[64, 64], &mut StdRng::seed_from_u64(1));
        let config = FitConfig {
            steps,
            seed: 2,
            eval_every: steps,
            ..FitConfig::default()
        };
        let report = fit_posterior(&mut maf, &mut Adam::new(1e-3), &config, |_, rng| {
            sim.simulate::<f32, _>(256, rng)
        })
        .expect("training runs");
        let (forward, reverse) = divergences(&sim, &maf, &held_out);
        println!(
            "| {d} | MAF, maximum likelihood | {steps} | {:.2} | {forward:.4} | {reverse:.4} | {kl_prior:.3} |",
            report.ms_per_step
        );

        let mut iaf =
            FlowModel::<f32>::conditional_iaf(d, d, 3, &[64, 64], &mut StdRng::seed_from_u64(1));
        let config = ReverseKlConfig {
            steps,
            batch: 256,
            seed: 2,
            ..ReverseKlConfig::default()
        };
        let report = fit_variational_posterior(&mut iaf, &sim, &config, |batch, rng| {
            sim.simulate::<f32, _>(batch, rng).1
        })
        .expect("training runs");
        let (forward, reverse) = divergences(&sim, &iaf, &held_out);
        println!(
            "| {d} | IAF, reverse KL | {steps} | {:.2} | {forward:.4} | {reverse:.4} | {kl_prior:.3} |",
            report.ms_per_step
        );
    }
}
