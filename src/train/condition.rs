//! Conditional runs, p(x | c), as `flowzoo train --condition label` and
//! `--context-columns` set them up: what the context of a run is
//! ([`Condition`]), the one-hot digit labels, the split of a user's table
//! into modelled columns and context columns, the standardisation of
//! contexts, and the classification of the test digits by Bayes' rule.
//!
//! A conditional run's batches are rows `[x | c]` (the layout
//! [`fit`](super::fit::fit) takes): the digits with their one-hot label
//! beside them, a table with its context columns moved to the end.
//!
//! Derivation: [`derivations::conditioning`](crate::derivations::conditioning)
//! (docs/derivations/conditioning.md).

use crate::data::tabular::Table;
use crate::error::DataError;
use crate::flows::context::ContextEmbedding;
use crate::flows::preprocess::Dequantize;
use crate::flows::standardize::column_statistics;
use crate::flows::FlowModel;
use crate::tensor::Tensor;
use rand::Rng;
use std::path::Path;

/// The number of digit classes, the width of the one-hot label context.
pub const DIGIT_CLASSES: usize = 10;

/// What a conditional run reads as its context c.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Condition {
    /// The digits' class, one-hot (`--condition label`), width 10.
    Label,
    /// These columns of a user's table (`--context-columns`), by name, in
    /// this order; the model is of the other columns given these.
    Columns(Vec<String>),
}

impl Condition {
    /// The width of the context.
    pub fn context_dim(&self) -> usize {
        match self {
            Condition::Label => DIGIT_CLASSES,
            Condition::Columns(names) => names.len(),
        }
    }

    /// How a run record stores it: `label`, or the column names joined by
    /// commas (read back by [`Condition::of_record`]).
    pub fn to_record(&self) -> String {
        match self {
            Condition::Label => "label".into(),
            Condition::Columns(names) => names.join(","),
        }
    }

    /// The condition a run record's `context` field describes.
    pub fn of_record(text: &str) -> Condition {
        match text {
            "label" => Condition::Label,
            names => Condition::Columns(names.split(',').map(str::to_string).collect()),
        }
    }
}

/// The one-hot rows of digit `labels`, `[n, 10]`.
///
/// # Panics
/// If a label is 10 or more.
pub fn one_hot(labels: &[u8]) -> Tensor<f32> {
    let mut out = vec![0.0; labels.len() * DIGIT_CLASSES];
    for (i, &label) in labels.iter().enumerate() {
        out[i * DIGIT_CLASSES + usize::from(label)] = 1.0;
    }
    Tensor::from_f64_slice(&out, &[labels.len(), DIGIT_CLASSES])
}

/// log p(c) of each class: the log of its share of `labels`.
pub fn log_class_prior(labels: &[u8]) -> Vec<f64> {
    let mut counts = [0usize; DIGIT_CLASSES];
    for &label in labels {
        counts[usize::from(label)] += 1;
    }
    let n = labels.len().max(1) as f64;
    counts.iter().map(|&k| (k as f64 / n).ln()).collect()
}

/// The share of the rows of `x` (`[n, dim]`, the model's data side) whose
/// label is the class of highest posterior, argmax over c of
/// log p(x | c) + log p(c), with p(c) = exp(`log_prior`); every class is
/// scored through [`FlowModel::log_prob_given`] with its one-hot row.
///
/// # Panics
/// If the model does not read a context of width 10, or `labels` is not one
/// per row of `x`.
pub fn bayes_accuracy(
    model: &FlowModel<f32>,
    x: &Tensor<f32>,
    labels: &[u8],
    log_prior: &[f64],
) -> f64 {
    assert_eq!(labels.len(), x.dim(0), "bayes_accuracy: one label per row");
    let scores: Vec<Vec<f64>> = (0..DIGIT_CLASSES)
        .map(|k| {
            let c = one_hot(&[k as u8]);
            let log_p = model
                .log_prob_given(x, Some(&c))
                .expect("bayes_accuracy: the model reads the one-hot label");
            // log p(x | c) + log p(c)
            log_p
                .to_f64_vec()
                .iter()
                .map(|l| l + log_prior[k])
                .collect()
        })
        .collect();
    let correct = labels
        .iter()
        .enumerate()
        .filter(|&(i, &label)| {
            let best = (0..DIGIT_CLASSES)
                .max_by(|&a, &b| scores[a][i].total_cmp(&scores[b][i]))
                .expect("ten classes");
            best == usize::from(label)
        })
        .count();
    correct as f64 / labels.len().max(1) as f64
}

/// The discrete NLL of images `v` (`[n, dim]`, values 0..levels−1 as
/// floats) given their `labels`, nats per image (one noise draw from `rng`,
/// as [`discrete_nll`](super::eval::discrete_nll)), and the Bayes-rule
/// accuracy of [`bayes_accuracy`] on the same dequantised images, p(c) the
/// class frequencies of `train_labels` (the training split's).
pub fn digits_nll_and_accuracy<R: Rng + ?Sized>(
    model: &FlowModel<f32>,
    v: &Tensor<f32>,
    labels: &[u8],
    levels: u32,
    train_labels: &[u8],
    rng: &mut R,
) -> (f64, f64) {
    let dequantize = Dequantize::new(levels);
    let x = dequantize.apply(v, rng);
    let rows = Tensor::concat(&[&x, &one_hot(labels)], 1);
    let nll = super::eval::mean_nll(model, &rows) - dequantize.log_det(v.dim(1));
    let accuracy = bayes_accuracy(model, &x, labels, &log_class_prior(train_labels));
    (nll, accuracy)
}

/// `table` (read from `path`) with the columns `wanted` moved to the end,
/// in that order, as a conditional run's context: each entry a column name
/// of the file's header, or (for a `.npy` file, whose columns are `x0, x1,
/// …`, or any file) a 0-based column index. Returns the table and the
/// number of context columns (the last ones).
///
/// # Errors
/// [`DataError::Mismatch`] naming the file, for an entry that is neither
/// a column name nor an index in range, a column given twice, or no column
/// left to model.
pub fn context_columns_last(
    table: &Table,
    path: &Path,
    wanted: &[String],
) -> Result<(Table, usize), DataError> {
    let mismatch = |what: String| DataError::Mismatch {
        what: format!("{}: {what}", path.display()),
    };
    let mut context = Vec::with_capacity(wanted.len());
    for entry in wanted {
        let entry = entry.trim();
        let column = match table.columns.iter().position(|c| c == entry) {
            Some(j) => j,
            None => entry
                .parse::<usize>()
                .ok()
                .filter(|&j| j < table.dim())
                .ok_or_else(|| {
                    mismatch(format!(
                        "no context column \"{entry}\" (neither a column name nor a 0-based \
                         index below {}); the columns are {}",
                        table.dim(),
                        table.columns.join(", ")
                    ))
                })?,
        };
        if context.contains(&column) {
            return Err(mismatch(format!(
                "context column \"{}\" is given twice",
                table.columns[column]
            )));
        }
        context.push(column);
    }
    let order: Vec<usize> = (0..table.dim())
        .filter(|j| !context.contains(j))
        .chain(context.iter().copied())
        .collect();
    if order.len() == context.len() {
        return Err(mismatch(
            "every column is a context column: nothing is left to model".into(),
        ));
    }
    let mut data = Vec::with_capacity(table.data.len());
    for i in 0..table.rows {
        let row = table.row(i);
        data.extend(order.iter().map(|&j| row[j]));
    }
    let columns = order.iter().map(|&j| table.columns[j].clone()).collect();
    let moved = Table {
        data,
        rows: table.rows,
        columns,
    };
    Ok((moved, context.len()))
}

/// The embedding that standardises raw contexts, e = (c − μ) / σ per
/// column, μ and σ the statistics of the context columns of `rows` (`[n,
/// dim + context_dim]`, each row `[x | c]`; σ = 1 for a constant column):
/// a [`ContextEmbedding`] of one affine layer, W = diag(1/σ), b = −μ/σ,
/// saved with the model (so a checkpoint takes contexts in the data's
/// units) and trained with it from there.
///
/// Why an embedding and not a [`Standardize`](crate::flows::Standardize)
/// layer: c is not modelled, so no log-det is owed for it, and any function
/// of c may feed the conditioners; a learned affine map that starts at the
/// standardisation is that function, stored where the model keeps its
/// context's tensors.
pub fn context_standardizer(rows: &[f64], dim: usize, context_dim: usize) -> ContextEmbedding<f32> {
    let width = dim + context_dim;
    let context: Vec<f64> = rows
        .chunks(width)
        .flat_map(|row| row[dim..].iter().copied())
        .collect();
    let (mean, std) = column_statistics(&context, context_dim);
    let mut weight = vec![0.0; context_dim * context_dim];
    for j in 0..context_dim {
        weight[j * context_dim + j] = 1.0 / std[j];
    }
    let bias: Vec<f64> = (0..context_dim).map(|j| -mean[j] / std[j]).collect();
    // Any seed: both tensors are set below.
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(0);
    let mut embedding = ContextEmbedding::new(context_dim, &[], context_dim, &mut rng);
    let layer = &mut embedding.net.layers[0];
    layer.weight.value = Tensor::from_f64_slice(&weight, &[context_dim, context_dim]);
    layer.bias.value = Tensor::from_f64_slice(&bias, &[context_dim]);
    embedding
}
