//! Class-conditional digits (issue 16, item 2, as a library example): a
//! RealNVP of conditional affine couplings p(x | c) with the one-hot label
//! as the context c, beside the same RealNVP without a context, both on the
//! embedded 8x8 digits under the protocol of `flowzoo train --data digits`
//! (dequantised to 17 levels, a logit layer at the data end, the last 383
//! training images for validation and the kept parameters, test bits/dim
//! of the discrete data on the 1797 test images with one noise draw).
//!
//! Prints, for both models: the test bits/dim, the training cost in ms per
//! step, and for the conditional one the accuracy of classifying the test
//! digits by Bayes' rule, argmax over c of log p(x | c) + log p(c) (p(c) the
//! training class frequencies).
//!
//! Run: `cargo run --release --example conditional_digits [steps]`
//! (default 3000 steps of 128 images).

use flowzoo::data::digits;
use flowzoo::flows::preprocess::{Dequantize, Logit};
use flowzoo::flows::FlowModel;
use flowzoo::nn::Adam;
use flowzoo::tensor::Tensor;
use flowzoo::train::eval::bits_per_dim;
use flowzoo::train::fit::{fit, FitConfig};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

const DIM: usize = 64;
const CLASSES: usize = 10;

/// The one-hot rows of `labels`, `[n, 10]`.
fn one_hot(labels: &[u8]) -> Tensor<f32> {
    let mut out = vec![0.0; labels.len() * CLASSES];
    for (i, &label) in labels.iter().enumerate() {
        out[i * CLASSES + label as usize] = 1.0;
    }
    Tensor::from_f64_slice(&out, &[labels.len(), CLASSES])
}

/// Pixels of `set` as floats, `[n, 64]`.
fn pixels(set: &digits::Digits) -> Tensor<f32> {
    Tensor::from_f64_slice(&set.images_f64(), &[set.n, DIM])
}

/// Discrete NLL in bits/dim of `v` given `c` (`None`: unconditional), one
/// noise draw from `seed`.
fn test_bits_per_dim(
    model: &FlowModel<f32>,
    v: &Tensor<f32>,
    c: Option<&Tensor<f32>>,
    seed: u64,
) -> f64 {
    let dequantize = Dequantize::new(digits::LEVELS);
    let x = dequantize.apply(v, &mut StdRng::seed_from_u64(seed));
    let log_prob = model.log_prob_given(&x, c).expect("the context fits");
    let nll = -log_prob.to_f64_vec().iter().sum::<f64>() / v.dim(0) as f64;
    bits_per_dim(nll - dequantize.log_det(DIM), DIM)
}

fn main() {
    let steps: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("steps: a positive integer"))
        .unwrap_or(3000);
    let (train, validation) = digits::train().split_validation(digits::VALIDATION_LEN);
    let test = digits::test();
    let (train_v, validation_v, test_v) = (pixels(&train), pixels(&validation), pixels(&test));
    let (train_c, validation_c, test_c) = (
        one_hot(&train.labels),
        one_hot(&validation.labels),
        one_hot(&test.labels),
    );
    let log_class_prior: Vec<f64> = train
        .class_counts()
        .iter()
        .map(|&n| (n as f64 / train.n as f64).ln())
        .collect();
    println!("| model | test bits/dim | ms/step | Bayes-rule test accuracy |");
    println!("| --- | --- | --- | --- |");
    for conditional in [false, true] {
        let mut rng = StdRng::seed_from_u64(0);
        let mut model = if conditional {
            FlowModel::<f32>::conditional_realnvp(DIM, CLASSES, 8, 128, &mut rng)
        } else {
            FlowModel::<f32>::realnvp(DIM, 8, 128, &mut rng)
        };
        model.flow.layers.push(Box::new(Logit::new(DIM, 0.05)));
        let context = |c: &Tensor<f32>| conditional.then(|| c.clone());
        let dequantize = Dequantize::new(digits::LEVELS);
        let mut order: Vec<usize> = (0..train.n).collect();
        let (train_rows, train_labels) = (train_v.clone(), train_c.clone());
        let next_batch = move |step: usize, rng: &mut StdRng| {
            if (step - 1) * 128 % train.n < 128 {
                order.shuffle(rng);
            }
            let start = (step - 1) * 128 % train.n;
            let rows: Vec<usize> = (0..128).map(|k| order[(start + k) % train.n]).collect();
            let x = dequantize.apply(&train_rows.index_select(0, &rows), rng);
            match conditional {
                true => Tensor::concat(&[&x, &train_labels.index_select(0, &rows)], 1),
                false => x,
            }
        };
        let validation_c = context(&validation_c);
        let mut validate =
            |m: &FlowModel<f32>| test_bits_per_dim(m, &validation_v, validation_c.as_ref(), 1);
        let config = FitConfig {
            steps,
            seed: 2,
            eval_every: 250,
            ..FitConfig::default()
        };
        let report = fit(
            &mut model,
            &mut Adam::new(1e-3),
            &config,
            next_batch,
            Some(&mut validate),
            |_, _| {},
        )
        .expect("training runs");
        let bits = test_bits_per_dim(&model, &test_v, context(&test_c).as_ref(), 3);
        let accuracy = if conditional {
            // One noise draw, scored under every class.
            let x = dequantize.apply(&test_v, &mut StdRng::seed_from_u64(4));
            let scores: Vec<Vec<f64>> = (0..CLASSES)
                .map(|k| {
                    let c = one_hot(&[k as u8]);
                    let lp = model
                        .log_prob_given(&x, Some(&c))
                        .expect("a context of width 10");
                    lp.to_f64_vec()
                        .iter()
                        .map(|l| l + log_class_prior[k])
                        .collect()
                })
                .collect();
            let correct = (0..test.n)
                .filter(|&i| {
                    let best = (0..CLASSES)
                        .max_by(|&a, &b| scores[a][i].total_cmp(&scores[b][i]))
                        .expect("ten classes");
                    best == test.labels[i] as usize
                })
                .count();
            format!(
                "{:.2} % ({correct} of {})",
                100.0 * correct as f64 / test.n as f64,
                test.n
            )
        } else {
            "—".into()
        };
        println!(
            "| RealNVP 8 × 128{} | {bits:.4} | {:.2} | {accuracy} |",
            if conditional {
                ", one-hot label as context"
            } else {
                ""
            },
            report.ms_per_step
        );
    }
}
