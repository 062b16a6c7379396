//! The command-line tool, run as a user runs it.

mod common;

use std::process::Command;

fn flowzoo() -> Command {
    Command::new(env!("CARGO_BIN_EXE_flowzoo"))
}

#[test]
fn train_writes_metrics_and_pictures() {
    let out = common::temp_dir("cli-train");
    let status = flowzoo()
        .args([
            "train", "--steps", "20", "--hidden", "16", "--layers", "2", "--quiet", "--out",
        ])
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    for file in ["metrics.json", "samples.png", "density.png"] {
        let len = std::fs::metadata(out.join(file)).unwrap().len();
        assert!(len > 100, "{file} is {len} bytes");
    }
    let metrics = std::fs::read_to_string(out.join("metrics.json")).unwrap();
    for key in [
        "test_nll_nats",
        "best_step",
        "steps",
        "train_seconds",
        "ms_per_step",
        "n_params",
        "seed",
    ] {
        assert!(
            metrics.contains(&format!("\"{key}\"")),
            "metrics.json lacks {key}: {metrics}"
        );
    }
    assert!(std::fs::read(out.join("samples.png"))
        .unwrap()
        .starts_with(b"\x89PNG"));
    let leftovers: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left behind");
}

#[test]
fn digits_run_reports_bits_per_dim() {
    let out = common::temp_dir("cli-digits");
    let output = flowzoo()
        .args([
            "train",
            "--data",
            "digits",
            "--steps",
            "10",
            "--eval-every",
            "5",
            "--hidden",
            "16",
            "--layers",
            "2",
            "--quiet",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metrics = std::fs::read_to_string(out.join("metrics.json")).unwrap();
    assert!(metrics.contains("\"test_bits_per_dim\""), "{metrics}");
    assert!(out.join("samples.png").exists());
}

#[test]
fn bad_arguments_fail_with_a_clear_message() {
    let output = flowzoo()
        .args(["train", "--data", "spirals", "--quiet"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("spirals") && stderr.contains("moons"),
        "{stderr}"
    );

    let output = flowzoo()
        .args(["train", "--batch", "0", "--quiet", "--out"])
        .arg(common::temp_dir("cli-bad"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("batch"));
}
