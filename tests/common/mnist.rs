//! A tiny MNIST folder for the command-line tests (tests/cli_loop.rs,
//! tests/cli_conditional.rs): the four IDX files, gzip-compressed as MNIST
//! is distributed, of 8x8 images with grey levels and labels from a fixed
//! LCG.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// Writes `bytes` gzip-compressed to `path`, as MNIST is distributed.
pub fn write_gz(path: &Path, bytes: &[u8]) {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    std::fs::write(path, encoder.finish().unwrap()).unwrap();
}

/// An IDX file of unsigned bytes with dimensions `dims`.
pub fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        bytes.extend(d.to_be_bytes());
    }
    bytes.extend_from_slice(data);
    bytes
}

/// Training images in [`tiny_folder`] (5,000 of them validate).
pub const TRAIN_N: u32 = 5_040;
/// Test images in [`tiny_folder`].
pub const TEST_N: u32 = 16;

/// Creates `dir` holding 5,040 training images and 16 test images of
/// 8x8, uniform random grey levels and labels 0-9 from a fixed LCG, in
/// the four files' gzip form; returns `dir`.
pub fn tiny_folder(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let mut state = 12345u32;
    let mut bytes = |n: usize, modulo: u32| -> Vec<u8> {
        (0..n)
            .map(|_| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                ((state >> 16) % modulo) as u8
            })
            .collect()
    };
    let (train_n, test_n) = (TRAIN_N, TEST_N);
    let files = [
        (
            "train-images-idx3-ubyte.gz",
            idx(&[train_n, 8, 8], &bytes(train_n as usize * 64, 256)),
        ),
        (
            "train-labels-idx1-ubyte.gz",
            idx(&[train_n], &bytes(train_n as usize, 10)),
        ),
        (
            "t10k-images-idx3-ubyte.gz",
            idx(&[test_n, 8, 8], &bytes(test_n as usize * 64, 256)),
        ),
        (
            "t10k-labels-idx1-ubyte.gz",
            idx(&[test_n], &bytes(test_n as usize, 10)),
        ),
    ];
    for (name, content) in &files {
        write_gz(&dir.join(name), content);
    }
    dir.to_path_buf()
}
