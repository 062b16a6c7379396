//! The conditional side of the tool (issue 16): `--condition label` and
//! `--context-columns` for `flowzoo train`, `--context` for `flowzoo
//! sample`, and the class-by-class sample grids of a model of the digits
//! given their label. The library does the work (train::condition).

use crate::pictures;
use flowzoo::flows::FlowModel;
use flowzoo::tensor::Tensor;
use flowzoo::train::condition::{one_hot, Condition, DIGIT_CLASSES};
use rand::Rng;
use std::path::Path;

/// The condition the train flags ask for: `--condition label`, or
/// `--context-columns a,b` (names or 0-based indices), or none.
pub fn condition_of(
    condition: Option<&str>,
    context_columns: Option<&str>,
) -> Result<Option<Condition>, String> {
    match (condition, context_columns) {
        (None, None) => Ok(None),
        (Some(_), Some(_)) => {
            Err("--condition and --context-columns are two ways to give a context: give one".into())
        }
        (Some("label"), None) => Ok(Some(Condition::Label)),
        (Some(other), None) => Err(format!(
            "--condition: unknown context '{other}': available: label (the digits' class, \
             one-hot; for your own table use --context-columns)"
        )),
        (None, Some(list)) => {
            let names: Vec<String> = list.split(',').map(|s| s.trim().to_string()).collect();
            if names.iter().any(String::is_empty) {
                return Err(format!(
                    "--context-columns: '{list}' has an empty entry: give column names or \
                     0-based indices separated by commas"
                ));
            }
            Ok(Some(Condition::Columns(names)))
        }
    }
}

/// The context row `[1, k]` of `--context 1.5,0.2`.
pub fn parse_context(text: &str) -> Result<Tensor<f32>, String> {
    let values = text
        .split(',')
        .enumerate()
        .map(|(i, field)| {
            let field = field.trim();
            match field.parse::<f64>() {
                Ok(v) if v.is_finite() && v.abs() <= f64::from(f32::MAX) => Ok(v),
                _ => Err(format!(
                    "--context: entry {i} (0-based), '{field}', is not a finite number"
                )),
            }
        })
        .collect::<Result<Vec<f64>, String>>()?;
    Ok(Tensor::from_f64_slice(&values, &[1, values.len()]))
}

/// `per_class` samples of each digit class at `temperature`, class after
/// class (a grid of `per_class` columns has one row per class), as pixels.
pub fn samples_by_class<R: Rng + ?Sized>(
    model: &FlowModel<f32>,
    per_class: usize,
    temperature: f64,
    rng: &mut R,
) -> Result<Vec<f64>, String> {
    let mut pixels = Vec::with_capacity(DIGIT_CLASSES * per_class * model.dim());
    for class in 0..DIGIT_CLASSES {
        let c = one_hot(&[class as u8]);
        let x = model
            .sample_given(per_class, temperature, Some(&c), rng)
            .map_err(|e| e.to_string())?;
        pixels.extend(x.to_f64_vec());
    }
    Ok(pixels)
}

/// samples.png and samples-t0.7.png of a model of the digits given their
/// label: one row per class, 0 at the top, 10 samples each.
pub fn digit_pictures<R: Rng + ?Sized>(
    out: &Path,
    model: &FlowModel<f32>,
    flow: &str,
    bits_per_dim: f64,
    rng: &mut R,
) -> Result<(), String> {
    for (file, temperature) in [("samples.png", 1.0), ("samples-t0.7.png", 0.7)] {
        let samples = samples_by_class(model, DIGIT_CLASSES, temperature, rng)?;
        pictures::image_grid(
            &out.join(file),
            &samples,
            flowzoo::train::run::DIGITS_IMAGE,
            DIGIT_CLASSES,
            &format!(
                "{flow} given the label: row k shows class k (0 at the top), temperature \
                 {temperature}; test {bits_per_dim:.3} bits/dim"
            ),
        )?;
    }
    Ok(())
}
