//! [`Dataset`]: the data of a run (a toy density, the digits, a user's
//! table), how the architectures see it, its training / test split, and
//! [`test_score`], the one function that computes a run's test figure for
//! `flowzoo train` and `flowzoo eval` alike.

use super::condition::{context_columns_last, digits_nll_and_accuracy};
use super::eval::{bits_per_dim, discrete_nll, mean_nll};
use super::seeds::Stream;
use crate::data::batch::gather_rows;
use crate::data::digits;
use crate::data::read_table;
use crate::data::tabular::Table;
use crate::data::toy2d::Toy2d;
use crate::error::{DataError, Error};
use crate::flows::preprocess::Dequantize;
use crate::flows::zoo::DataShape;
use crate::flows::FlowModel;
use crate::tensor::Tensor;
use rand::seq::SliceRandom;
use std::path::PathBuf;
use std::sync::Arc;

/// The logit margin α of the digits' preprocessing (RealNVP §4.1; RESULTS.md).
pub const DIGITS_ALPHA: f64 = 0.05;

/// Where the training data comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum Dataset {
    /// A 2-D toy density: a fresh batch every step, tested on fresh points.
    Toy(Toy2d),
    /// The embedded UCI 8x8 digits as 64-D vectors, dequantised and
    /// logit-transformed; validation = the last 383 training images.
    Digits,
    /// The user's own vectors from a `.csv` or `.npy` file: a seeded split
    /// into training and test rows ([`UserTable::split`]); the model ends
    /// in a [`Standardize`](crate::flows::Standardize) layer fitted to the training rows, so densities
    /// are in the data's units.
    Table(Arc<UserTable>),
}

/// A table of vectors read from the user's file.
#[derive(Debug, PartialEq)]
pub struct UserTable {
    /// The file it was read from.
    pub path: PathBuf,
    /// Its rows (the readers have checked that every value is finite).
    pub table: Table,
    /// How many of its columns, the last ones, are a conditional run's
    /// context rather than data (0 for a density of every column; see
    /// [`UserTable::with_context_columns`]).
    pub context_columns: usize,
}

/// The share of a user's table held out as the test split.
pub const TABLE_TEST_FRACTION: f64 = 0.1;

impl UserTable {
    /// Reads `path` (`.npy`, else CSV; see [`read_table`]).
    ///
    /// # Errors
    /// As [`read_table`] (ragged rows, non-numbers, NaN or infinity are
    /// rejected, naming the row and column); [`DataError::OutOfRange`] for
    /// a value finite in f64 but beyond f32's ±3.4e38, in which runs compute
    /// ([`Table::check_fits`]); [`DataError::Mismatch`] for fewer than 2
    /// rows (nothing to split into training and test).
    pub fn read(path: impl Into<PathBuf>) -> Result<Self, DataError> {
        let path = path.into();
        let table = read_table(&path)?;
        table.check_fits::<f32>(&path)?;
        if table.rows < 2 {
            return Err(DataError::Mismatch {
                what: format!(
                    "{}: {} rows: at least 2 are needed, for a training and a test split",
                    path.display(),
                    table.rows
                ),
            });
        }
        Ok(UserTable {
            path,
            table,
            context_columns: 0,
        })
    }

    /// The number of modelled columns (those before the context's).
    pub fn data_dim(&self) -> usize {
        self.table.dim() - self.context_columns
    }

    /// The same rows with the columns `wanted` (names, or 0-based
    /// indices) moved to the end as a conditional run's context, in that
    /// order (see [`context_columns_last`]).
    ///
    /// # Errors
    /// As [`context_columns_last`]: an unknown column, one given twice, or
    /// none left to model.
    pub fn with_context_columns(&self, wanted: &[String]) -> Result<UserTable, DataError> {
        let (table, context_columns) = context_columns_last(&self.table, &self.path, wanted)?;
        Ok(UserTable {
            path: self.path.clone(),
            table,
            context_columns,
        })
    }

    /// The names of the context columns, in order (none for a density of
    /// every column).
    pub fn context_names(&self) -> &[String] {
        &self.table.columns[self.data_dim()..]
    }

    /// The (training, test) rows of a run seeded `seed`: the rows in an
    /// order shuffled by the run's [`Stream::Split`], the last ⌈n·[`TABLE_TEST_FRACTION`]⌉
    /// (at least 1, at most n − 1) held out for test. The same seed gives
    /// the same split, so a resumed run and `flowzoo eval` see it again.
    pub fn split(&self, seed: u64) -> (Table, Table) {
        let n = self.table.rows;
        let test_rows = ((n as f64 * TABLE_TEST_FRACTION).ceil() as usize).clamp(1, n - 1);
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut Stream::Split.rng(seed));
        let (train, test) = order.split_at(n - test_rows);
        let rows = |indices: &[usize]| Table {
            data: gather_rows(&self.table.data, self.table.dim(), indices),
            rows: indices.len(),
            columns: self.table.columns.clone(),
        };
        (rows(train), rows(test))
    }
}

impl std::str::FromStr for Dataset {
    type Err = Error;
    /// `digits`, a toy name, or a path ending in `.csv` or `.npy` (read at
    /// once, see [`UserTable::read`]).
    fn from_str(name: &str) -> Result<Self, Error> {
        let lower = name.to_ascii_lowercase();
        if name == "digits" {
            Ok(Dataset::Digits)
        } else if lower.ends_with(".csv") || lower.ends_with(".npy") {
            Ok(Dataset::Table(Arc::new(UserTable::read(name)?)))
        } else {
            Ok(Dataset::Toy(name.parse::<Toy2d>()?))
        }
    }
}

impl Dataset {
    /// The name the command line uses (`table` for a user's file).
    pub fn name(&self) -> &'static str {
        match self {
            Dataset::Toy(t) => t.name(),
            Dataset::Digits => "digits",
            Dataset::Table(_) => "table",
        }
    }

    /// The dimension of one sample.
    pub fn dim(&self) -> usize {
        self.shape().dim()
    }

    /// What the zoo's architectures see: 2-D vectors, the digits as
    /// `[1, 8, 8]` images (the vector flows flatten them), a table's rows.
    pub fn shape(&self) -> DataShape {
        match self {
            Dataset::Toy(_) => DataShape::Vector(2),
            Dataset::Digits => DataShape::Image(DIGITS_IMAGE),
            Dataset::Table(user) => DataShape::Vector(user.data_dim()),
        }
    }

    /// What `--data` said: the toy's name, `digits`, or the file's path
    /// (what the run record stores, and [`Dataset::from_str`](std::str::FromStr::from_str) reads back).
    pub fn argument(&self) -> String {
        match self {
            Dataset::Table(user) => user.path.to_string_lossy().into_owned(),
            other => other.name().to_string(),
        }
    }
}

/// The shape the image flows see the digits as, `[1, 8, 8]`.
pub const DIGITS_IMAGE: [usize; 3] = [1, digits::SIDE, digits::SIDE];

/// Fresh test points drawn for a 2-D toy density.
pub const TOY_TEST_POINTS: usize = 20_000;

/// A test figure: the NLL in nats per sample (of the discrete data for the
/// digits, every Jacobian counted) and, for discrete data, bits/dim.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TestScore {
    /// Test NLL, nats per sample.
    pub nll_nats: f64,
    /// Test bits/dim (the digits only).
    pub bits_per_dim: Option<f64>,
    /// For a model of the digits given their label, the share of test
    /// digits classified right by Bayes' rule
    /// ([`bayes_accuracy`](super::condition::bayes_accuracy)).
    pub accuracy: Option<f64>,
    /// How many test samples were scored.
    pub samples: usize,
}

/// The test figure of `model` on `dataset` for a run seeded `seed`, the
/// one number `flowzoo train` reports and `flowzoo eval` repeats: for a toy
/// density `test_size` fresh points from [`Stream::Test`]; for the digits
/// the 1797 test digits dequantised with noise from [`Stream::Test`] (given
/// their labels, with the Bayes-rule accuracy, for a model that reads them);
/// for a user's table its held-out rows ([`UserTable::split`]), each row
/// `[x | c]` for a conditional model.
pub fn test_score(
    model: &FlowModel<f32>,
    dataset: &Dataset,
    seed: u64,
    test_size: usize,
) -> TestScore {
    let mut rng = Stream::Test.rng(seed);
    match dataset {
        Dataset::Toy(toy) => {
            let test = Tensor::from_f64_slice(&toy.sample(test_size, &mut rng), &[test_size, 2]);
            TestScore {
                nll_nats: mean_nll(model, &test),
                bits_per_dim: None,
                accuracy: None,
                samples: test_size,
            }
        }
        Dataset::Digits => {
            let dim = dataset.dim();
            let test = digits::test();
            let v = Tensor::<f32>::from_f64_slice(&test.images_f64(), &[test.n, dim]);
            let (nll, accuracy) = if model.context_dim() > 0 {
                let (nll, accuracy) = digits_nll_and_accuracy(model, &v, &test.labels, &mut rng);
                (nll, Some(accuracy))
            } else {
                let dequantize = Dequantize::new(digits::LEVELS);
                (discrete_nll(model, &v, dequantize, &mut rng), None)
            };
            TestScore {
                nll_nats: nll,
                bits_per_dim: Some(bits_per_dim(nll, dim)),
                accuracy,
                samples: test.n,
            }
        }
        Dataset::Table(user) => {
            let (_, test) = user.split(seed);
            let x = Tensor::<f32>::from_f64_slice(&test.data, &[test.rows, test.dim()]);
            TestScore {
                nll_nats: mean_nll(model, &x),
                bits_per_dim: None,
                accuracy: None,
                samples: test.rows,
            }
        }
    }
}
