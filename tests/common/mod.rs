//! Helpers shared by the integration tests.

use std::path::PathBuf;

/// A fresh empty folder under the system's temporary directory, unique to
/// this test (`name`) and process.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("flowzoo-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a temporary folder");
    dir
}

/// The bytes of a version 1.0 `.npy` file: `descr` (e.g. `<f8`), the
/// order flag, `shape` as NumPy writes it (e.g. `(2, 3)`), then `data`.
#[allow(dead_code)] // not every test binary writes .npy files
pub fn npy(descr: &str, fortran: bool, shape: &str, data: &[u8]) -> Vec<u8> {
    let header = format!(
        "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape}, }}",
        if fortran { "True" } else { "False" }
    );
    let total = (10 + header.len() + 1).div_ceil(64) * 64;
    let padded = format!("{header:<width$}\n", width = total - 10 - 1);
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(padded.len() as u16).to_le_bytes());
    bytes.extend_from_slice(padded.as_bytes());
    bytes.extend_from_slice(data);
    bytes
}

/// Little-endian f64 bytes, as `<f8` data.
#[allow(dead_code)]
pub fn f8(values: &[f64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}
