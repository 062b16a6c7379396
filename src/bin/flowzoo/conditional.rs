//! The conditional side of the tool (issue 16): `--condition label` and
//! `--context-columns` for `flowzoo train`, `--context` for `flowzoo
//! sample`, and the pictures of a model of images (the digits, MNIST,
//! CIFAR-10) given their label: class-by-class samples and same-class
//! latent interpolations. The library does the work (train::condition).

use crate::pictures;
use flowzoo::autodiff::Tape;
use flowzoo::data::images::ImageSet;
use flowzoo::flows::{Flow, FlowModel};
use flowzoo::tensor::Tensor;
use flowzoo::train::condition::{one_hot, Condition, DIGIT_CLASSES};
use flowzoo::train::run::ImageData;
use flowzoo::train::sample::{interpolate, Interpolation};
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
            "--condition: unknown context '{other}': available: label (the class of the \
             digits, mnist or cifar10, one-hot; for your own table use --context-columns)"
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

/// `per_class` samples of each class at `temperature`, class after
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

/// The features the layers of `model` read for the contexts `c`
/// (`[rows, context_dim]`): c through the model's embedding if it has one.
pub fn features(model: &FlowModel<f32>, c: &Tensor<f32>) -> Tensor<f32> {
    let tape = Tape::no_grad();
    model
        .context_features(Some(&tape.constant(c.clone())))
        .expect("a context gives features")
        .into_value()
}

/// The classes whose pairs interpolation.png shows, in this order of
/// preference; a class with fewer than two test images is passed over.
const INTERPOLATED_CLASSES: [u8; 10] = [0, 2, 3, 7, 1, 4, 5, 6, 8, 9];

/// Rows of interpolation.png drawn for a model given the label.
const INTERPOLATED_ROWS: usize = 4;

/// Latent interpolations of a model given the label, one row per class:
/// the first two test images a and b of the class (at the centre of their
/// dequantisation cells) encoded at its context c, z = f⁻¹(x | c), then
/// `steps` images x(t) = f((1 − t)·z_a + t·z_b | c), t = 0 … 1, the
/// context held fixed along the path, so the ends reconstruct a and b.
/// Returns the images (`[rows·steps, pixels]` row-major, values in [0, 1]
/// but for the model's own excursions) and the classes of the rows.
pub fn class_interpolation(
    model: &FlowModel<f32>,
    test: &ImageSet,
    levels: u32,
    steps: usize,
) -> (Vec<f64>, Vec<u8>) {
    let steps = steps.max(2);
    let pixels = test.pixels();
    let centre = |i: usize| -> Vec<f64> {
        test.image(i)
            .iter()
            .map(|&v| (f64::from(v) + 0.5) / f64::from(levels))
            .collect()
    };
    let mut strip = Vec::with_capacity(INTERPOLATED_ROWS * steps * pixels);
    let mut classes = Vec::new();
    for class in INTERPOLATED_CLASSES {
        let mut of_class = test.labels.iter().enumerate().filter(|(_, &l)| l == class);
        let (Some((a, _)), Some((b, _))) = (of_class.next(), of_class.next()) else {
            continue;
        };
        let ends: Vec<f64> = centre(a).into_iter().chain(centre(b)).collect();
        let e = features(model, &one_hot(&[class, class]));
        let (z, _) = model
            .flow
            .inverse_tensor_with_context(&Tensor::from_f64_slice(&ends, &[2, pixels]), Some(&e));
        let path = interpolate(
            &z.narrow(0, 0, 1),
            &z.narrow(0, 1, 1),
            steps,
            Interpolation::Linear,
        );
        let along = e
            .narrow(0, 0, 1)
            .broadcast_to(&[steps, e.dim(1)])
            .contiguous();
        let tape = Tape::no_grad();
        let (x, _) = model
            .flow
            .forward_with_context(&tape.constant(path), Some(&tape.constant(along)));
        strip.extend(x.into_value().to_f64_vec());
        classes.push(class);
        if classes.len() == INTERPOLATED_ROWS {
            break;
        }
    }
    (strip, classes)
}

/// The pictures of a model of images given their label: samples.png and
/// samples-t0.7.png (one row per class, 0 at the top, 10 samples each,
/// at the images' size and colour) and interpolation.png (latent paths
/// between two test images of one class, given that class:
/// [`class_interpolation`]).
pub fn image_pictures<R: Rng + ?Sized>(
    out: &Path,
    model: &FlowModel<f32>,
    images: &ImageData,
    flow: &str,
    bits_per_dim: f64,
    rng: &mut R,
) -> Result<(), String> {
    let shape = images.test.shape;
    for (file, temperature) in [("samples.png", 1.0), ("samples-t0.7.png", 0.7)] {
        let samples = samples_by_class(model, DIGIT_CLASSES, temperature, rng)?;
        pictures::image_grid(
            &out.join(file),
            &samples,
            shape,
            DIGIT_CLASSES,
            &format!(
                "{flow} given the label: row k shows class k (0 at the top), temperature \
                 {temperature}; test {bits_per_dim:.3} bits/dim"
            ),
        )?;
    }
    const STEPS: usize = 10;
    let (strip, classes) = class_interpolation(model, &images.test, images.levels, STEPS);
    if classes.is_empty() {
        eprintln!("note: no class has two test images: no interpolation.png");
        return Ok(());
    }
    let names: Vec<String> = classes.iter().map(u8::to_string).collect();
    pictures::image_grid(
        &out.join("interpolation.png"),
        &strip,
        shape,
        STEPS,
        &format!(
            "linear paths in z between two test images of one class, given it (rows: classes {}; \
             ends: the images)",
            names.join(", ")
        ),
    )
}
