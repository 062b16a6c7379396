//! Issue 17, items 1-3 through the command line: the training options as
//! flags, logs a machine can read, and `flowzoo check` on the trained file;
//! image folders (MNIST's gzip files). The conditional runs of issue 16 are
//! in cli_conditional.rs.

mod common;
#[path = "common/mnist.rs"]
mod mnist;

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

fn flowzoo() -> Command {
    Command::new(env!("CARGO_BIN_EXE_flowzoo"))
}

#[test]
fn options_log_lines_json_log_early_stopping_and_check() {
    let dir = common::temp_dir("cli-loop");
    let out = dir.join("run");
    let log = dir.join("log.jsonl");
    // Standard error is a pipe here, not a terminal: log lines, no bar.
    let output = flowzoo()
        .args([
            "train",
            "--steps",
            "400",
            "--hidden",
            "16",
            "--layers",
            "2",
            "--eval-every",
            "20",
            "--schedule",
            "cosine:20",
            "--clip-norm",
            "5",
            "--weight-decay",
            "1e-4",
            "--patience",
            "1000",
            "--log-json",
        ])
        .arg(&log)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("step ")).collect();
    assert_eq!(lines.len(), 20, "one line per check: {stderr}");
    assert!(lines[0].starts_with("step 20/400  loss "), "{}", lines[0]);
    for part in ["validation ", "lr ", "grad ", "steps/s"] {
        assert!(lines[0].contains(part), "{part:?} missing: {}", lines[0]);
    }
    // One JSON object per check, the learning rate the schedule's.
    let json = std::fs::read_to_string(&log).unwrap();
    let objects: Vec<&str> = json.lines().collect();
    assert_eq!(objects.len(), 20, "{json}");
    assert!(objects[0].contains("\"step\":20"), "{}", objects[0]);
    // cosine:20 on 400 steps from 1e-3: step 20 (t = 19) ends the warm-up.
    assert!(objects[0].contains("\"lr\":0.001"), "{}", objects[0]);
    // ... and the cosine has brought it down near 0 by the last check.
    let last_lr: f64 = objects[19]
        .split("\"lr\":")
        .nth(1)
        .and_then(|s| s.split([',', '}']).next())
        .and_then(|s| s.parse().ok())
        .expect("lr in the last object");
    assert!(last_lr > 0.0 && last_lr < 1e-7, "{}", objects[19]);
    let metrics = std::fs::read_to_string(out.join("metrics.json")).unwrap();
    for part in [
        "\"schedule\": \"cosine:20\"",
        "\"clip_norm\": 5.0",
        "\"weight_decay\": 0.0001",
        "\"patience\": 1000",
        "\"stopped\": \"completed every step\"",
        "\"best_validation_nll_nats\"",
    ] {
        assert!(metrics.contains(part), "{part} missing: {metrics}");
    }

    // A patience of 1 stops at the first check that does not improve.
    let (metrics, steps) = train_metrics(
        &dir.join("early"),
        &[
            "--steps",
            "4000",
            "--hidden",
            "16",
            "--layers",
            "2",
            "--eval-every",
            "5",
            "--lr",
            "3e-2",
            "--patience",
            "1",
        ],
    );
    assert!(metrics.contains("early stopping: 1 check(s)"), "{metrics}");
    assert!(
        steps < 4000 && steps.is_multiple_of(5),
        "stopped at {steps}"
    );

    // --minutes ends a long run at the first step begun after the limit.
    let (metrics, steps) = train_metrics(
        &dir.join("timed"),
        &[
            "--steps",
            "1000000",
            "--hidden",
            "16",
            "--layers",
            "2",
            "--minutes",
            "0.005",
        ],
    );
    assert!(metrics.contains("time limit: 0.3 s"), "{metrics}");
    assert!(metrics.contains("\"minutes\": 0.005"), "{metrics}");
    assert!((1..1_000_000).contains(&steps), "stopped at {steps}");

    // `check` proves the trained file layer by layer.
    let output = flowzoo()
        .args(["check", "--model"])
        .arg(out.join("model.flowzoo"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // One row per layer: --layers 2 builds two couplings.
    let rows = stdout
        .lines()
        .filter(|l| l.starts_with(|c: char| c.is_ascii_digit()) && l.ends_with("  ok"))
        .count();
    assert_eq!(rows, 2, "one row per layer: {stdout}");
    assert!(stdout.contains("density mass"), "{stdout}");
    assert!(stdout.contains("every layer passed"), "{stdout}");
}

/// `flowzoo train FLAGS --quiet --out OUT`, which must succeed: its
/// metrics.json and the steps it says were taken.
fn train_metrics(out: &Path, flags: &[&str]) -> (String, usize) {
    let output = flowzoo()
        .arg("train")
        .args(flags)
        .args(["--quiet", "--out"])
        .arg(out)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metrics = std::fs::read_to_string(out.join("metrics.json")).unwrap();
    let steps = metrics
        .split("\"steps\": ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .and_then(|s| s.trim().parse().ok())
        .expect("steps in metrics.json");
    (metrics, steps)
}

#[test]
fn bad_option_values_fail_with_a_clear_message() {
    let dir = common::temp_dir("cli-loop-bad");
    for (flags, says) in [
        (&["--schedule", "linear"][..], "unknown schedule"),
        (&["--schedule", "step:0:0.5"][..], "interval"),
        (&["--schedule", "step:10:2"][..], "decay factor"),
        (&["--weight-decay", "-0.1"][..], "weight_decay"),
        (&["--clip-norm", "-1"][..], "clip_norm"),
        (&["--patience", "0"][..], "patience"),
        (&["--minutes", "0"][..], "--minutes"),
        (&["--minutes", "-2"][..], "--minutes"),
    ] {
        let output = flowzoo()
            .args(["train", "--steps", "5", "--quiet", "--out"])
            .arg(dir.join("x"))
            .args(flags)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{flags:?}: {stderr}");
        assert!(stderr.contains(says), "{flags:?}: {stderr}");
    }
}

/// Runs the tool with `args` (strings and paths alike).
fn tool(args: &[&dyn AsRef<OsStr>]) -> std::process::Output {
    flowzoo()
        .args(args.iter().map(|a| a.as_ref()))
        .output()
        .unwrap()
}

#[test]
fn an_mnist_folder_of_gzip_files_trains_evals_and_samples_and_bad_folders_are_named() {
    let dir = common::temp_dir("cli-mnist");
    let data = mnist::tiny_folder(&dir.join("mnist"));
    let out = dir.join("run");
    // The folder given relative to the working directory of train: the run
    // record names it absolutely, so eval below (run from elsewhere) finds it.
    let relative = data.strip_prefix(&dir).unwrap().to_path_buf();
    let train = flowzoo()
        .current_dir(&dir)
        .args(["train", "--data", "mnist", "--data-dir"])
        .arg(&relative)
        .args(["--flow", "realnvp", "--steps", "3", "--batch", "16"])
        .args(["--hidden", "8", "--layers", "2", "--quiet", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&train.stdout);
    assert!(
        train.status.success(),
        "{}",
        String::from_utf8_lossy(&train.stderr)
    );
    assert!(
        stdout.contains("mnist realnvp") && stdout.contains("bits/dim"),
        "{stdout}"
    );
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    let bpd = metrics["test_bits_per_dim"].as_f64().unwrap();
    // Uniform random bytes: no model does much better than 8 bits/dim.
    assert!(bpd.is_finite() && bpd > 7.0, "{metrics}");
    for picture in ["samples.png", "samples-t0.7.png", "interpolation.png"] {
        assert!(
            std::fs::metadata(out.join(picture)).unwrap().len() > 100,
            "{picture}"
        );
    }
    // eval reads the folder the run names (gzip again) and repeats the figure.
    let model = out.join("model.flowzoo");
    let eval = tool(&[&"eval", &"--model", &model]);
    let text = String::from_utf8_lossy(&eval.stdout);
    assert!(
        eval.status.success(),
        "{}",
        String::from_utf8_lossy(&eval.stderr)
    );
    assert!(
        text.contains("mnist test split") && text.contains(&format!("{bpd:.4} bits/dim")),
        "{text} vs {bpd}"
    );
    let grid = dir.join("grid.png");
    let sample = tool(&[
        &"sample", &"--model", &model, &"--num", &"9", &"--out", &grid,
    ]);
    assert!(
        sample.status.success(),
        "{}",
        String::from_utf8_lossy(&sample.stderr)
    );
    assert!(std::fs::metadata(&grid).unwrap().len() > 100);

    // Bad folders: no --data-dir, a missing file, a corrupt gzip stream.
    let refuse = |args: &[&dyn AsRef<OsStr>]| {
        let output = tool(args);
        assert!(!output.status.success() && output.status.code() != Some(101));
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let message = refuse(&[&"train", &"--data", &"mnist", &"--quiet"]);
    assert!(message.contains("--data-dir"), "{message}");
    let labels = data.join("t10k-labels-idx1-ubyte.gz");
    std::fs::remove_file(&labels).unwrap();
    let from_folder: [&dyn AsRef<OsStr>; 6] = [
        &"train",
        &"--data",
        &"mnist",
        &"--data-dir",
        &data,
        &"--quiet",
    ];
    let message = refuse(&from_folder);
    assert!(message.contains("t10k-labels-idx1-ubyte"), "{message}");
    std::fs::write(&labels, [0x1f, 0x8b, 8, 0, 1, 2, 3]).unwrap();
    let message = refuse(&from_folder);
    assert!(message.contains("t10k-labels-idx1-ubyte.gz"), "{message}");
}
