//! The UCI optdigits 8x8 handwritten digits, embedded in the library.
//!
//! 3823 training and 1797 test images of 8x8 pixels; each pixel counts the
//! on-pixels in a 4x4 block of a 32x32 bitmap, so it is an integer 0..=16
//! ([`LEVELS`] = 17 values). Classes 0..9. The training set comes from 30
//! writers, the test set from 13 others. The files are IDX (see
//! [`idx`](super::idx)) and live in `src/data/optdigits/`, whose README gives
//! provenance and license.
//!
//! The validation protocol used across flowzoo: the **last 383** training
//! images are the validation set ([`Digits::split_validation`]), leaving 3440
//! for training; the test set is used only for final numbers.
//!
//! # Source
//! E. Alpaydin, C. Kaynak, "Optical Recognition of Handwritten Digits", UCI
//! Machine Learning Repository, 1998 (dataset 80), CC BY 4.0.

use std::path::Path;

use super::idx::{parse_idx_expect, read_idx_expect};
use crate::error::DataError;

/// Number of distinct pixel values in optdigits: pixels are counts 0..=16.
///
/// Dequantize with `(x + u) / LEVELS`, `u ~ U[0, 1)`.
pub const LEVELS: u32 = 17;

/// Side of an optdigits image in pixels (images are `SIDE x SIDE`).
pub const SIDE: usize = 8;

/// Number of images in the embedded training split.
pub const TRAIN_LEN: usize = 3823;

/// Number of images in the embedded test split.
pub const TEST_LEN: usize = 1797;

/// Size of the validation split of the protocol: the last 383 training images.
pub const VALIDATION_LEN: usize = 383;

static TRAIN_IMAGES: &[u8] = include_bytes!("optdigits/train-images-idx3-ubyte");
static TRAIN_LABELS: &[u8] = include_bytes!("optdigits/train-labels-idx1-ubyte");
static TEST_IMAGES: &[u8] = include_bytes!("optdigits/t10k-images-idx3-ubyte");
static TEST_LABELS: &[u8] = include_bytes!("optdigits/t10k-labels-idx1-ubyte");

/// A set of labelled grey-level images, row-major.
///
/// # Shapes
/// `images` is `[n, height * width]` row-major (one image per row, pixels in
/// reading order: pixel `k` is at row `k / width`, column `k % width`);
/// `labels` is `[n]`. For the embedded optdigits, `height = width = 8`.
///
/// # Units
/// Pixel values as stored: counts 0..=16 for optdigits, grey levels 0..=255
/// for MNIST-style folders read with [`load_dir`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digits {
    /// Pixels, `[n, height * width]` row-major.
    pub images: Vec<u8>,
    /// Class labels 0..9, `[n]`.
    pub labels: Vec<u8>,
    /// Number of images.
    pub n: usize,
    /// Image height in pixels.
    pub height: usize,
    /// Image width in pixels.
    pub width: usize,
}

/// The embedded optdigits training split: 3823 images of 8x8.
///
/// # Shapes
/// `images` `[3823, 64]`, `labels` `[3823]`.
///
/// # Examples
/// ```
/// let train = flowzoo::data::digits::train();
/// assert_eq!((train.n, train.images.len()), (3823, 3823 * 64));
/// ```
pub fn train() -> Digits {
    embedded("train-images-idx3-ubyte", TRAIN_IMAGES, TRAIN_LABELS)
}

/// The embedded optdigits test split: 1797 images of 8x8 (the same images, in
/// the same order, as scikit-learn's `load_digits`).
///
/// # Shapes
/// `images` `[1797, 64]`, `labels` `[1797]`.
pub fn test() -> Digits {
    embedded("t10k-images-idx3-ubyte", TEST_IMAGES, TEST_LABELS)
}

fn embedded(name: &str, images: &[u8], labels: &[u8]) -> Digits {
    from_idx_bytes(Path::new(name), images, Path::new(name), labels)
        .expect("embedded optdigits file is valid IDX")
}

fn from_idx_bytes(
    images_path: &Path,
    images: &[u8],
    labels_path: &Path,
    labels: &[u8],
) -> Result<Digits, DataError> {
    let images = parse_idx_expect(images, images_path, 3)?;
    let labels = parse_idx_expect(labels, labels_path, 1)?;
    assemble(images_path, images, labels_path, labels)
}

pub(crate) fn assemble(
    images_path: &Path,
    images: super::idx::IdxArray,
    labels_path: &Path,
    labels: super::idx::IdxArray,
) -> Result<Digits, DataError> {
    let (n, height, width) = (images.dims[0], images.dims[1], images.dims[2]);
    if labels.dims[0] != n {
        return Err(DataError::Mismatch {
            what: format!(
                "{} holds {n} images but {} holds {} labels",
                images_path.display(),
                labels_path.display(),
                labels.dims[0]
            ),
        });
    }
    Ok(Digits {
        images: images.data,
        labels: labels.data,
        n,
        height,
        width,
    })
}

/// Reads a split from a folder holding the four MNIST file names, so both an
/// optdigits copy and an (uncompressed) MNIST folder load.
///
/// `split` is `"train"` (files `train-images-idx3-ubyte`,
/// `train-labels-idx1-ubyte`) or `"test"` (files `t10k-images-idx3-ubyte`,
/// `t10k-labels-idx1-ubyte`). If a file is missing but `NAME.gz` exists, the
/// `.gz` file is tried, which gives [`DataError::Gzipped`] with a message
/// saying to decompress it.
///
/// # Shapes
/// `images` `[n, height * width]` with the file's `[n, height, width]`,
/// `labels` `[n]`.
///
/// # Errors
/// - [`DataError::UnknownDataset`] if `split` is neither `"train"` nor `"test"`.
/// - Every error of [`read_idx`](super::idx::read_idx), naming the file.
/// - [`DataError::BadDims`] if the images are not 3-D or the labels not 1-D.
/// - [`DataError::Mismatch`] if the numbers of images and labels differ.
pub fn load_dir(dir: &Path, split: &str) -> Result<Digits, DataError> {
    let prefix = mnist_prefix(split)?;
    let images_path = existing_or_gz(dir, &format!("{prefix}-images-idx3-ubyte"));
    let labels_path = existing_or_gz(dir, &format!("{prefix}-labels-idx1-ubyte"));
    let images = read_idx_expect(&images_path, 3)?;
    let labels = read_idx_expect(&labels_path, 1)?;
    assemble(&images_path, images, &labels_path, labels)
}

/// The file-name prefix of split `"train"` (`train`) or `"test"` (`t10k`)
/// in an MNIST-style folder.
///
/// # Errors
/// [`DataError::UnknownDataset`] for any other split.
pub(crate) fn mnist_prefix(split: &str) -> Result<&'static str, DataError> {
    match split {
        "train" => Ok("train"),
        "test" => Ok("t10k"),
        _ => Err(DataError::UnknownDataset {
            name: split.to_string(),
            known: vec!["train".to_string(), "test".to_string()],
        }),
    }
}

/// `dir/name` if it exists, else `dir/name.gz` if that exists, else `dir/name`
/// (so the missing-file error names the file the caller expects).
fn existing_or_gz(dir: &Path, name: &str) -> std::path::PathBuf {
    let plain = dir.join(name);
    let gz = dir.join(format!("{name}.gz"));
    if !plain.exists() && gz.exists() {
        gz
    } else {
        plain
    }
}

impl Digits {
    /// Number of pixels in one image, `height * width`.
    pub fn pixels(&self) -> usize {
        self.height * self.width
    }

    /// The pixels of image `i`, `[height * width]` row-major.
    ///
    /// # Panics
    /// If `i >= n`.
    pub fn image(&self, i: usize) -> &[u8] {
        let pixels = self.pixels();
        &self.images[i * pixels..(i + 1) * pixels]
    }

    /// How many images carry each label 0..9 (labels above 9 are not counted).
    pub fn class_counts(&self) -> [usize; 10] {
        let mut counts = [0; 10];
        for &label in &self.labels {
            if let Some(count) = counts.get_mut(usize::from(label)) {
                *count += 1;
            }
        }
        counts
    }

    /// The images as `f64`, `[n, height * width]` row-major, values unchanged.
    pub fn images_f64(&self) -> Vec<f64> {
        self.images.iter().map(|&p| f64::from(p)).collect()
    }

    /// Splits off the **last** `n_validation` images as a validation set,
    /// keeping the order: returns `(training, validation)`.
    ///
    /// The flowzoo protocol on optdigits is `train().split_validation(383)`,
    /// giving 3440 training and 383 validation images.
    ///
    /// # Panics
    /// If `n_validation > n`; the message gives both numbers.
    ///
    /// # Examples
    /// ```
    /// use flowzoo::data::digits;
    /// let (train, validation) = digits::train().split_validation(digits::VALIDATION_LEN);
    /// assert_eq!((train.n, validation.n), (3440, 383));
    /// ```
    pub fn split_validation(mut self, n_validation: usize) -> (Digits, Digits) {
        let pixels = self.pixels();
        let (images, labels) = split_tail(
            &mut self.images,
            &mut self.labels,
            &mut self.n,
            pixels,
            n_validation,
        );
        let validation = Digits {
            images,
            labels,
            n: n_validation,
            height: self.height,
            width: self.width,
        };
        (self, validation)
    }
}

/// Moves the last `n_validation` of `n` images (`pixels` bytes each) and
/// their labels out of `images` and `labels`, returning them, and lowers `n`.
///
/// # Panics
/// If `n_validation > n`; the message gives both numbers.
pub(crate) fn split_tail(
    images: &mut Vec<u8>,
    labels: &mut Vec<u8>,
    n: &mut usize,
    pixels: usize,
    n_validation: usize,
) -> (Vec<u8>, Vec<u8>) {
    assert!(
        n_validation <= *n,
        "split_validation: n_validation {n_validation} exceeds the {n} images"
    );
    *n -= n_validation;
    (images.split_off(*n * pixels), labels.split_off(*n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mismatched_counts_name_both_files() {
        let images = [0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 1, 5, 6];
        let labels = [0, 0, 8, 1, 0, 0, 0, 3, 1, 2, 3];
        let error = from_idx_bytes(Path::new("im"), &images, Path::new("lab"), &labels)
            .unwrap_err()
            .to_string();
        assert!(error.contains("im holds 2 images") && error.contains("lab holds 3 labels"));
    }
}
