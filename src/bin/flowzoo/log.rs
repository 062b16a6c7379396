//! Logs a machine can read: one line per check on standard error when it
//! is not a terminal, and `--log-json FILE`, one JSON object per check.

use flowzoo::train::fit::Check;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// `step 500/5000  loss 1.2345 nats  validation 1.3012  lr 1.0e-3  grad 4.21  812.3 steps/s`
/// (validation only when the run validates; steps/s since the run's first
/// step, `resumed` steps not counted).
pub fn line(check: &Check, steps: usize, resumed: Option<u64>) -> String {
    let mut text = format!("step {}/{steps}  loss {:.4} nats", check.step, check.loss);
    if let Some(v) = check.validation {
        text += &format!("  validation {v:.4}");
    }
    let taken = check.step - resumed.unwrap_or(0) as usize;
    text += &format!(
        "  lr {:.2e}  grad {:.3}  {:.1} steps/s",
        check.lr,
        check.grad_norm,
        taken as f64 / check.seconds.max(1e-9)
    );
    if check.keep {
        text += "  saved";
    }
    text
}

/// An appended JSON-lines file, flushed at every check.
pub struct JsonLog {
    path: PathBuf,
    file: File,
}

impl JsonLog {
    /// Opens `path` for appending, creating it.
    pub fn open(path: &Path) -> Result<JsonLog, String> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| format!("--log-json {}: {e}", path.display()))?;
        Ok(JsonLog {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Appends `check` as one line (non-finite numbers as null).
    pub fn append(&mut self, check: &Check) -> Result<(), String> {
        let finite = |v: f64| v.is_finite().then_some(v);
        let object = serde_json::json!({
            "step": check.step,
            "loss": finite(check.loss),
            "validation": check.validation.and_then(finite),
            "lr": check.lr,
            "grad_norm": finite(check.grad_norm),
            "seconds": check.seconds,
            "kept": check.keep,
        });
        writeln!(self.file, "{object}")
            .and_then(|()| self.file.flush())
            .map_err(|e| format!("--log-json {}: {e}", self.path.display()))
    }
}
