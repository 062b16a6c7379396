//! Labelled image sets beyond the embedded digits: MNIST-style IDX folders
//! (plain, or through a decoder the caller supplies, such as gzip) and the
//! CIFAR-10 binary format, as one [`ImageSet`] the training loop reads.
//!
//! The library carries no decompressor (it keeps its five dependencies):
//! every reader here takes an `open` function that turns a path into a
//! byte stream, [`open_plain`] for uncompressed files. The command-line
//! tool passes one that decodes gzip with a pure-Rust crate.
//!
//! # CIFAR-10 binary format
//! ```text
//! one record per image, 3073 bytes, no header:
//! 1 byte      label 0..=9
//! 1024 bytes  red   plane, 32 rows of 32, row-major
//! 1024 bytes  green plane
//! 1024 bytes  blue  plane
//! ```
//! Training: `data_batch_1.bin` … `data_batch_5.bin` (10,000 records each);
//! test: `test_batch.bin`.
//!
//! # Sources
//! - Y. LeCun, C. Cortes, C. Burges, "The MNIST database of handwritten
//!   digits" (the IDX format; 60,000 training and 10,000 test images of 28x28).
//! - A. Krizhevsky, "Learning Multiple Layers of Features from Tiny Images",
//!   2009 (CIFAR-10; the binary version's layout is on its web page).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::digits::{assemble, mnist_prefix, split_tail, Digits};
use super::idx::{parse_idx_expect, IdxArray};
use crate::error::DataError;

/// Side of a CIFAR-10 image in pixels.
pub const CIFAR_SIDE: usize = 32;

/// Bytes of one CIFAR-10 record: the label and 3·32·32 pixels.
pub const CIFAR_RECORD: usize = 1 + 3 * CIFAR_SIDE * CIFAR_SIDE;

/// The training files of a CIFAR-10 binary folder, in order.
pub const CIFAR_TRAIN_FILES: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];

/// The test file of a CIFAR-10 binary folder.
pub const CIFAR_TEST_FILE: &str = "test_batch.bin";

/// A function that opens a file as a byte stream ([`open_plain`], or one
/// that decompresses).
pub type Open<'a> = &'a dyn Fn(&Path) -> std::io::Result<Box<dyn Read>>;

/// Opens `path` as it is, no decoding: the `open` argument of the readers
/// for uncompressed files.
///
/// # Errors
/// The operating system's, if the file cannot be opened.
pub fn open_plain(path: &Path) -> std::io::Result<Box<dyn Read>> {
    Ok(Box::new(std::io::BufReader::new(std::fs::File::open(
        path,
    )?)))
}

/// The opener [`default_open`] uses: set once by a program that can decode
/// more than plain files (the command-line tool registers gzip).
static DEFAULT_OPEN: OnceLock<OpenFn> = OnceLock::new();

/// An opener as a plain function (what [`set_default_open`] takes).
pub type OpenFn = fn(&Path) -> std::io::Result<Box<dyn Read>>;

/// Makes [`default_open`] use `open` from now on, for every dataset named
/// by a string (`Dataset::from_str("mnist:DIR")`). Returns `false`, changing
/// nothing, if an opener was set before.
pub fn set_default_open(open: OpenFn) -> bool {
    DEFAULT_OPEN.set(open).is_ok()
}

/// Opens `path` with the opener of [`set_default_open`], else
/// [`open_plain`].
///
/// # Errors
/// The opener's.
pub fn default_open(path: &Path) -> std::io::Result<Box<dyn Read>> {
    match DEFAULT_OPEN.get() {
        Some(open) => open(path),
        None => open_plain(path),
    }
}

/// Labelled images of one shape, pixel values as stored (0..=255).
///
/// # Shapes
/// `images` is `[n, channels, height, width]` row-major (one image per
/// `channels·height·width` bytes, channel planes one after the other);
/// `labels` is `[n]`; `shape` is `[channels, height, width]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSet {
    /// Pixels, `[n, channels, height, width]` row-major.
    pub images: Vec<u8>,
    /// Class labels, `[n]`.
    pub labels: Vec<u8>,
    /// Number of images.
    pub n: usize,
    /// `[channels, height, width]` of one image.
    pub shape: [usize; 3],
}

impl ImageSet {
    /// Values per image, `channels·height·width`.
    pub fn pixels(&self) -> usize {
        self.shape.iter().product()
    }

    /// The pixels of image `i`, `[channels, height, width]` row-major.
    ///
    /// # Panics
    /// If `i >= n`.
    pub fn image(&self, i: usize) -> &[u8] {
        let pixels = self.pixels();
        &self.images[i * pixels..(i + 1) * pixels]
    }

    /// The first `n` images (all of them if there are fewer).
    pub fn head(&self, n: usize) -> ImageSet {
        let n = n.min(self.n);
        ImageSet {
            images: self.images[..n * self.pixels()].to_vec(),
            labels: self.labels[..n].to_vec(),
            n,
            shape: self.shape,
        }
    }

    /// Splits off the **last** `n_validation` images, keeping the order:
    /// `(training, validation)`.
    ///
    /// # Panics
    /// If `n_validation > n`; the message gives both numbers.
    pub fn split_validation(mut self, n_validation: usize) -> (ImageSet, ImageSet) {
        let pixels = self.pixels();
        let (images, labels) = split_tail(
            &mut self.images,
            &mut self.labels,
            &mut self.n,
            pixels,
            n_validation,
        );
        let validation = ImageSet {
            images,
            labels,
            n: n_validation,
            shape: self.shape,
        };
        (self, validation)
    }
}

impl From<Digits> for ImageSet {
    /// Grey images `[1, height, width]`.
    fn from(d: Digits) -> ImageSet {
        ImageSet {
            shape: [1, d.height, d.width],
            images: d.images,
            labels: d.labels,
            n: d.n,
        }
    }
}

/// Reads all of `path` through `open`, naming the file on failure.
fn read_all(path: &Path, open: Open<'_>) -> Result<Vec<u8>, DataError> {
    let io = |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut bytes = Vec::new();
    open(path)
        .map_err(io)?
        .read_to_end(&mut bytes)
        .map_err(io)?;
    Ok(bytes)
}

/// Reads an IDX array of `ndims` dimensions from any byte stream: `open`
/// gives the stream for `path` (the name is used in errors).
///
/// # Errors
/// [`DataError::Io`] naming the file if it cannot be opened or read (a
/// decoder's error, such as a corrupt gzip stream, arrives this way), then
/// every error of [`parse_idx`](super::idx::parse_idx) and
/// [`DataError::BadDims`].
pub fn read_idx_with(path: &Path, ndims: usize, open: Open<'_>) -> Result<IdxArray, DataError> {
    parse_idx_expect(&read_all(path, open)?, path, ndims)
}

/// Reads split `"train"` or `"test"` of an MNIST-style folder
/// (`train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
/// `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`; each name may end in
/// `.gz`, and then `open` must decode gzip).
///
/// # Shapes
/// `[n, 1, height, width]` images from the file's `[n, height, width]`.
///
/// # Errors
/// - [`DataError::UnknownDataset`] for another `split`.
/// - [`DataError::Io`] naming the file (without and with `.gz`) if neither
///   exists.
/// - Every error of [`read_idx_with`]; [`DataError::Mismatch`] if the
///   images and labels differ in number.
pub fn read_mnist_dir(dir: &Path, split: &str, open: Open<'_>) -> Result<ImageSet, DataError> {
    let prefix = mnist_prefix(split)?;
    let images_path = plain_or_gz(dir, &format!("{prefix}-images-idx3-ubyte"))?;
    let labels_path = plain_or_gz(dir, &format!("{prefix}-labels-idx1-ubyte"))?;
    let images = read_idx_with(&images_path, 3, open)?;
    let labels = read_idx_with(&labels_path, 1, open)?;
    Ok(assemble(&images_path, images, &labels_path, labels)?.into())
}

/// `dir/name` if it exists, else `dir/name.gz` if that exists.
fn plain_or_gz(dir: &Path, name: &str) -> Result<PathBuf, DataError> {
    let plain = dir.join(name);
    let gz = dir.join(format!("{name}.gz"));
    if plain.exists() {
        Ok(plain)
    } else if gz.exists() {
        Ok(gz)
    } else {
        Err(DataError::Io {
            path: plain,
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("neither it nor {} exists", gz.display()),
            ),
        })
    }
}

/// Parses CIFAR-10 binary records held in memory (`path` names them in
/// errors).
///
/// # Shapes
/// `[n, 3, 32, 32]` images, `n = bytes.len() / 3073`.
///
/// # Errors
/// - [`DataError::Truncated`] if the length is 0 or not a multiple of 3073
///   (`offset` the length, `expected` the next multiple).
/// - [`DataError::Mismatch`] naming the record and its byte offset if a
///   label is above 9.
///
/// # Examples
/// ```
/// use flowzoo::data::images::{parse_cifar10, CIFAR_RECORD};
/// let mut record = vec![7u8; CIFAR_RECORD];
/// record[1] = 255; // the first red pixel
/// let set = parse_cifar10(&record, "<memory>".as_ref()).unwrap();
/// assert_eq!((set.n, set.shape, set.labels[0], set.image(0)[0]), (1, [3, 32, 32], 7, 255));
/// ```
pub fn parse_cifar10(bytes: &[u8], path: &Path) -> Result<ImageSet, DataError> {
    let length = bytes.len() as u64;
    if bytes.is_empty() || !bytes.len().is_multiple_of(CIFAR_RECORD) {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            offset: length,
            expected: (bytes.len() / CIFAR_RECORD + 1) as u64 * CIFAR_RECORD as u64,
        });
    }
    let n = bytes.len() / CIFAR_RECORD;
    let mut images = Vec::with_capacity(n * (CIFAR_RECORD - 1));
    let mut labels = Vec::with_capacity(n);
    for (i, record) in bytes.chunks_exact(CIFAR_RECORD).enumerate() {
        if record[0] > 9 {
            return Err(DataError::Mismatch {
                what: format!(
                    "{}: record {i} (byte offset {}) has label {}, but CIFAR-10 labels are 0..=9",
                    path.display(),
                    i * CIFAR_RECORD,
                    record[0]
                ),
            });
        }
        labels.push(record[0]);
        images.extend_from_slice(&record[1..]);
    }
    Ok(ImageSet {
        images,
        labels,
        n,
        shape: [3, CIFAR_SIDE, CIFAR_SIDE],
    })
}

/// Reads split `"train"` ([`CIFAR_TRAIN_FILES`], in order) or `"test"`
/// ([`CIFAR_TEST_FILE`]) of a CIFAR-10 binary folder
/// (`cifar-10-batches-bin`) through `open`.
///
/// # Errors
/// [`DataError::UnknownDataset`] for another `split`; [`DataError::Io`]
/// naming a file that cannot be read; every error of [`parse_cifar10`].
pub fn read_cifar10_dir(dir: &Path, split: &str, open: Open<'_>) -> Result<ImageSet, DataError> {
    let files: &[&str] = match mnist_prefix(split)? {
        "train" => &CIFAR_TRAIN_FILES,
        _ => &[CIFAR_TEST_FILE],
    };
    let mut all: Option<ImageSet> = None;
    for name in files {
        let path = dir.join(name);
        let part = parse_cifar10(&read_all(&path, open)?, &path)?;
        all = Some(match all {
            None => part,
            Some(mut set) => {
                set.images.extend(part.images);
                set.labels.extend(part.labels);
                set.n += part.n;
                set
            }
        });
    }
    Ok(all.expect("at least one file per split"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::idx::encode_idx;

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("flowzoo-images-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn cifar_records_keep_their_planes_and_labels_and_bad_files_are_named() {
        // Two records whose pixels encode (record, channel, pixel).
        let mut bytes = Vec::new();
        for r in 0..2u8 {
            bytes.push(3 + r);
            for c in 0..3usize {
                bytes.extend((0..1024usize).map(|p| (usize::from(r) * 97 + c * 31 + p) as u8));
            }
        }
        let dir = temp_dir("cifar");
        for name in CIFAR_TRAIN_FILES {
            std::fs::write(dir.join(name), &bytes).unwrap();
        }
        std::fs::write(dir.join(CIFAR_TEST_FILE), &bytes[..CIFAR_RECORD]).unwrap();
        let train = read_cifar10_dir(&dir, "train", &open_plain).unwrap();
        assert_eq!((train.n, train.shape), (10, [3, 32, 32]));
        assert_eq!(&train.labels[..4], &[3, 4, 3, 4]);
        // Record 1, green plane (c = 1), pixel 5 (row 0, column 5).
        assert_eq!(train.image(1)[1024 + 5], (97 + 31 + 5) as u8);
        let test = read_cifar10_dir(&dir, "test", &open_plain).unwrap();
        assert_eq!((test.n, test.image(0)), (1, &bytes[1..CIFAR_RECORD]));

        std::fs::write(dir.join(CIFAR_TEST_FILE), &bytes[..CIFAR_RECORD + 10]).unwrap();
        let error = read_cifar10_dir(&dir, "test", &open_plain)
            .unwrap_err()
            .to_string();
        assert!(error.contains(CIFAR_TEST_FILE), "{error}");
        let mut bad = bytes.clone();
        bad[CIFAR_RECORD] = 10;
        let error = parse_cifar10(&bad, Path::new("b.bin"))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("record 1") && error.contains("label 10"),
            "{error}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_mnist_folder_reads_through_any_stream_and_names_what_is_missing() {
        let dir = temp_dir("mnist");
        let images: Vec<u8> = (0..3 * 4 * 5).map(|v| v as u8).collect();
        std::fs::write(
            dir.join("t10k-images-idx3-ubyte"),
            encode_idx(&[3, 4, 5], &images).unwrap(),
        )
        .unwrap();
        // The labels stored "compressed" by a toy codec (every byte + 1),
        // which the open function undoes: any decoder plugs in the same way.
        let labels = encode_idx(&[3], &[7, 8, 9]).unwrap();
        let coded: Vec<u8> = labels.iter().map(|b| b.wrapping_add(1)).collect();
        std::fs::write(dir.join("t10k-labels-idx1-ubyte.gz"), coded).unwrap();
        let open = |path: &Path| -> std::io::Result<Box<dyn Read>> {
            let bytes = std::fs::read(path)?;
            let decoded = if path.extension().is_some_and(|e| e == "gz") {
                bytes.iter().map(|b| b.wrapping_sub(1)).collect()
            } else {
                bytes
            };
            Ok(Box::new(std::io::Cursor::new(decoded)))
        };
        let test = read_mnist_dir(&dir, "test", &open).unwrap();
        assert_eq!(
            (test.n, test.shape, test.labels.clone()),
            (3, [1, 4, 5], vec![7, 8, 9])
        );
        assert_eq!(test.image(2), &images[40..60]);
        let (train, validation) = test.split_validation(1);
        assert_eq!((train.n, validation.n, validation.labels[0]), (2, 1, 9));
        let error = read_mnist_dir(&dir, "train", &open)
            .unwrap_err()
            .to_string();
        assert!(error.contains("train-images-idx3-ubyte"), "{error}");
        // Without the decoder the .gz file's bytes are not IDX.
        assert!(read_mnist_dir(&dir, "test", &open_plain).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
