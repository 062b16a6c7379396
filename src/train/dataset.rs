//! [`Dataset`]: the data of a run (a toy density, the digits, a user's
//! table), how the architectures see it, its training / test split, and
//! [`test_score`], the one function that computes a run's test figure for
//! `flowzoo train` and `flowzoo eval` alike.

use super::condition::{context_columns_last, digits_nll_and_accuracy};
use super::eval::{bits_per_dim, discrete_nll, mean_nll};
use super::seeds::Stream;
use crate::data::batch::gather_rows;
use crate::data::digits;
use crate::data::images::{default_open, read_cifar10_dir, read_mnist_dir, ImageSet, Open};
use crate::data::read_table;
use crate::data::tabular::Table;
use crate::data::toy2d::Toy2d;
use crate::error::{DataError, Error};
use crate::flows::preprocess::Dequantize;
use crate::flows::zoo::DataShape;
use crate::flows::FlowModel;
use crate::tensor::Tensor;
use rand::seq::SliceRandom;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

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
    /// Images read from a folder (MNIST, CIFAR-10): dequantised from 256
    /// levels and logit-transformed like the digits; validation = the last
    /// 5,000 training images, test = the folder's test split.
    Images(Arc<ImageData>),
    /// The user's own vectors from a `.csv` or `.npy` file: a seeded split
    /// into training and test rows ([`UserTable::split`]); the model ends
    /// in a [`Standardize`](crate::flows::Standardize) layer fitted to the training rows, so densities
    /// are in the data's units.
    Table(Arc<UserTable>),
}

/// The image datasets read from a folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageKind {
    /// An MNIST folder: the four IDX files, plain or `.gz`
    /// ([`read_mnist_dir`]); 28x28 grey.
    Mnist,
    /// A CIFAR-10 binary folder (`cifar-10-batches-bin`,
    /// [`read_cifar10_dir`]); 32x32 colour.
    Cifar10,
}

impl ImageKind {
    /// The name `--data` takes: `mnist`, `cifar10`.
    pub fn name(self) -> &'static str {
        match self {
            ImageKind::Mnist => "mnist",
            ImageKind::Cifar10 => "cifar10",
        }
    }
}

/// Number of grey (or colour) levels of 8-bit images.
pub const BYTE_LEVELS: u32 = 256;

/// The last training images held out for validation from a folder's
/// training split (MNIST: 55,000 train on, 5,000 validate).
pub const IMAGE_VALIDATION_LEN: usize = 5_000;

/// The logit margin α of 8-bit images: logit(α + (1 − 2α)·x), as for the
/// digits (RealNVP, arXiv:1605.08803, §4.1, uses 0.05 on its image sets).
pub const IMAGE_ALPHA: f64 = 0.05;

/// An image dataset with its protocol: training, validation and test
/// images, their number of levels and the logit margin.
#[derive(Debug, PartialEq)]
pub struct ImageData {
    /// `digits`, `mnist` or `cifar10`.
    pub name: &'static str,
    /// The folder it was read from (`None` for the embedded digits).
    pub dir: Option<PathBuf>,
    /// The images trained on.
    pub train: ImageSet,
    /// The validation images (early stopping, the kept model).
    pub validation: ImageSet,
    /// The test images (the reported figure only).
    pub test: ImageSet,
    /// Pixel values are 0..levels−1: dequantised as (v + u)/levels.
    pub levels: u32,
    /// The logit margin of the model's data-end [`Logit`](crate::flows::preprocess::Logit) layer.
    pub alpha: f64,
}

impl ImageData {
    /// Reads `kind` from `dir`, each file through `open`
    /// ([`open_plain`](crate::data::images::open_plain), or a decoder), and splits off the validation images.
    ///
    /// # Errors
    /// Those of [`read_mnist_dir`] / [`read_cifar10_dir`], naming the file;
    /// [`DataError::Mismatch`] if the training split has no more than
    /// [`IMAGE_VALIDATION_LEN`] images, or the test images differ in shape.
    pub fn read(kind: ImageKind, dir: &Path, open: Open<'_>) -> Result<ImageData, DataError> {
        let read = |split| match kind {
            ImageKind::Mnist => read_mnist_dir(dir, split, open),
            ImageKind::Cifar10 => read_cifar10_dir(dir, split, open),
        };
        let (train, test) = (read("train")?, read("test")?);
        if train.n <= IMAGE_VALIDATION_LEN || train.shape != test.shape {
            return Err(DataError::Mismatch {
                what: format!(
                    "{}: {} training images of shape {:?} and test images of shape {:?};                      training needs more than {IMAGE_VALIDATION_LEN} (the validation split)                      and both splits one shape",
                    dir.display(),
                    train.n,
                    train.shape,
                    test.shape
                ),
            });
        }
        let (train, validation) = train.split_validation(IMAGE_VALIDATION_LEN);
        Ok(ImageData {
            name: kind.name(),
            dir: Some(dir.to_path_buf()),
            train,
            validation,
            test,
            levels: BYTE_LEVELS,
            alpha: IMAGE_ALPHA,
        })
    }

    /// The embedded 8x8 digits with their protocol (the last 383 training
    /// images validate), built once.
    pub fn digits() -> Arc<ImageData> {
        static DIGITS: OnceLock<Arc<ImageData>> = OnceLock::new();
        DIGITS
            .get_or_init(|| {
                let (train, validation) = digits::train().split_validation(digits::VALIDATION_LEN);
                Arc::new(ImageData {
                    name: "digits",
                    dir: None,
                    train: train.into(),
                    validation: validation.into(),
                    test: digits::test().into(),
                    levels: digits::LEVELS,
                    alpha: DIGITS_ALPHA,
                })
            })
            .clone()
    }

    /// Values per image.
    pub fn dim(&self) -> usize {
        self.train.pixels()
    }

    /// Whether every label is a class 0..=9, as the one-hot context of
    /// `--condition label` ([`one_hot`](super::condition::one_hot)) needs.
    ///
    /// # Errors
    /// The first label out of range: the folder, the split (`training`,
    /// counting the validation images after the others, or `test`), the
    /// image's index in it and the label.
    pub fn check_labels(&self) -> Result<(), String> {
        let training = self.train.labels.iter().chain(&self.validation.labels);
        for (split, labels) in [
            ("training", training.collect::<Vec<_>>()),
            ("test", self.test.labels.iter().collect()),
        ] {
            if let Some((i, label)) = labels
                .iter()
                .enumerate()
                .find(|(_, &&l)| usize::from(l) >= super::condition::DIGIT_CLASSES)
            {
                let dir = self.dir.as_deref().unwrap_or(Path::new(""));
                return Err(format!(
                    "{} ({}): {split} image {i} has label {label}; the one-hot label context \
                     takes classes 0 to 9",
                    self.name,
                    dir.display()
                ));
            }
        }
        Ok(())
    }
}

/// `set`'s images as a `[n, dim]` tensor of their integer values.
pub fn image_tensor(set: &ImageSet) -> Tensor<f32> {
    let values: Vec<f32> = set.images.iter().map(|&v| f32::from(v)).collect();
    Tensor::from_vec(values, &[set.n, set.pixels()])
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
    /// `digits`, `mnist:DIR` or `cifar10:DIR` (read at once from the
    /// folder through [`default_open`]: see [`ImageData::read`]), a toy name,
    /// or a path ending in `.csv` or `.npy` (read at once, see
    /// [`UserTable::read`]).
    fn from_str(name: &str) -> Result<Self, Error> {
        let lower = name.to_ascii_lowercase();
        let folder = |kind: ImageKind| -> Result<Self, Error> {
            let dir = name.split_once(':').map_or("", |(_, dir)| dir);
            Ok(Dataset::Images(Arc::new(ImageData::read(
                kind,
                Path::new(dir),
                &default_open,
            )?)))
        };
        if name == "digits" {
            Ok(Dataset::Digits)
        } else if lower.starts_with("mnist:") {
            folder(ImageKind::Mnist)
        } else if lower.starts_with("cifar10:") {
            folder(ImageKind::Cifar10)
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
            Dataset::Images(images) => images.name,
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
            Dataset::Images(images) => DataShape::Image(images.train.shape),
            Dataset::Table(user) => DataShape::Vector(user.data_dim()),
        }
    }

    /// The images and their protocol, for the digits and the image folders.
    pub fn images(&self) -> Option<Arc<ImageData>> {
        match self {
            Dataset::Digits => Some(ImageData::digits()),
            Dataset::Images(images) => Some(images.clone()),
            _ => None,
        }
    }

    /// What `--data` said: the toy's name, `digits`, `mnist:DIR`, or the file's path
    /// (what the run record stores, and [`Dataset::from_str`](std::str::FromStr::from_str) reads back).
    pub fn argument(&self) -> String {
        match self {
            Dataset::Table(user) => user.path.to_string_lossy().into_owned(),
            Dataset::Images(images) => {
                let dir = images.dir.as_deref().unwrap_or(Path::new(""));
                format!("{}:{}", images.name, dir.display())
            }
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
    /// Test bits/dim (images only).
    pub bits_per_dim: Option<f64>,
    /// For a model of images (the digits, MNIST, CIFAR-10) given their
    /// label, the share of test images classified right by Bayes' rule
    /// ([`bayes_accuracy`](super::condition::bayes_accuracy)).
    pub accuracy: Option<f64>,
    /// How many test samples were scored.
    pub samples: usize,
}

/// The test figure of `model` on `dataset` for a run seeded `seed`, the
/// one number `flowzoo train` reports and `flowzoo eval` repeats: for a toy
/// density `test_size` fresh points from [`Stream::Test`]; for images the
/// test split (the digits' 1797, a folder's) dequantised with noise from
/// [`Stream::Test`] (given their labels, with the Bayes-rule accuracy, for
/// a model that reads them);
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
        Dataset::Digits | Dataset::Images(_) => {
            let dim = dataset.dim();
            let images = dataset.images().expect("an image dataset");
            let v = image_tensor(&images.test);
            let (nll, accuracy) = if model.context_dim() > 0 {
                let (nll, accuracy) = digits_nll_and_accuracy(
                    model,
                    &v,
                    &images.test.labels,
                    images.levels,
                    &images.train.labels,
                    &mut rng,
                );
                (nll, Some(accuracy))
            } else {
                let dequantize = Dequantize::new(images.levels);
                (discrete_nll(model, &v, dequantize, &mut rng), None)
            };
            TestScore {
                nll_nats: nll,
                bits_per_dim: Some(bits_per_dim(nll, dim)),
                accuracy,
                samples: images.test.n,
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
