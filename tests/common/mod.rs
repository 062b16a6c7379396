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

/// Runs the `flowzoo` tool with `args`, asserting success; returns its
/// standard output.
#[allow(dead_code)] // for the command-line tests only
pub fn run_ok<S: AsRef<std::ffi::OsStr> + std::fmt::Debug>(args: &[S]) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_flowzoo"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "flowzoo {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Runs the `flowzoo` tool with `args`, asserting failure; returns its
/// standard error.
#[allow(dead_code)] // for the command-line tests only
pub fn run_err<S: AsRef<std::ffi::OsStr> + std::fmt::Debug>(args: &[S]) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_flowzoo"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        !output.status.success(),
        "flowzoo {args:?} should have failed: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    // 101 is a panic's exit status: a failure must be an error, not a crash.
    assert_ne!(
        output.status.code(),
        Some(101),
        "flowzoo {args:?} panicked: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stderr).unwrap()
}
