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
