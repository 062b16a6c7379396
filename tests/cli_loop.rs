//! Issue 17, items 1-3 through the command line: the training options as
//! flags, logs a machine can read, and `flowzoo check` on the trained file.

mod common;

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
    let early = dir.join("early");
    let output = flowzoo()
        .args([
            "train",
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
            "--quiet",
            "--out",
        ])
        .arg(&early)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metrics = std::fs::read_to_string(early.join("metrics.json")).unwrap();
    assert!(metrics.contains("early stopping: 1 check(s)"), "{metrics}");
    let steps: usize = metrics
        .split("\"steps\": ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .and_then(|s| s.trim().parse().ok())
        .expect("steps in metrics.json");
    assert!(
        steps < 4000 && steps.is_multiple_of(5),
        "stopped at {steps}"
    );

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
