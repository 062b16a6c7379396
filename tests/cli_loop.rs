//! Issue 17, items 1-3 through the command line: the training options as
//! flags, logs a machine can read, and `flowzoo check` on the trained file;
//! issue 16, items 2-3: conditional runs (`--condition label`,
//! `--context-columns`, `sample --context`, `eval` of a conditional model)
//! and their errors.

mod common;

use common::{run_err, run_ok};
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

/// Writes `bytes` gzip-compressed to `path`, as MNIST is distributed.
fn write_gz(path: &std::path::Path, bytes: &[u8]) {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    std::fs::write(path, encoder.finish().unwrap()).unwrap();
}

/// An IDX file of unsigned bytes with dimensions `dims`.
fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        bytes.extend(d.to_be_bytes());
    }
    bytes.extend_from_slice(data);
    bytes
}

#[test]
fn an_mnist_folder_of_gzip_files_trains_evals_and_samples_and_bad_folders_are_named() {
    // 5,040 training images (5,000 of them validate) and 16 test images of
    // 8x8, grey levels from a fixed LCG, in the four files' gzip form.
    let dir = common::temp_dir("cli-mnist");
    let data = dir.join("mnist");
    std::fs::create_dir_all(&data).unwrap();
    let mut state = 12345u32;
    let mut bytes = |n: usize, modulo: u32| -> Vec<u8> {
        (0..n)
            .map(|_| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                ((state >> 16) % modulo) as u8
            })
            .collect()
    };
    let (train_n, test_n) = (5_040u32, 16u32);
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
        write_gz(&data.join(name), content);
    }
    let out = dir.join("run");
    let train = tool(&[
        &"train",
        &"--data",
        &"mnist",
        &"--data-dir",
        &data,
        &"--flow",
        &"realnvp",
        &"--steps",
        &"3",
        &"--batch",
        &"16",
        &"--hidden",
        &"8",
        &"--layers",
        &"2",
        &"--quiet",
        &"--out",
        &out,
    ]);
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

// ---- conditional runs (issue 16) ----

/// The value stored under `key` in `out`/metrics.json, as text.
fn metric_text(out: &Path, key: &str) -> String {
    let metrics = std::fs::read_to_string(out.join("metrics.json")).unwrap();
    let start = metrics
        .find(&format!("\"{key}\": "))
        .unwrap_or_else(|| panic!("no {key} in {metrics}"))
        + key.len()
        + 4;
    metrics[start..]
        .split([',', '\n'])
        .next()
        .unwrap()
        .trim()
        .to_string()
}

/// The number stored under `key` in `out`/metrics.json.
fn metric(out: &Path, key: &str) -> f64 {
    metric_text(out, key).parse().unwrap()
}

/// The number printed right before `marker` in `text`.
fn number_before(text: &str, marker: &str) -> f64 {
    let end = text
        .find(marker)
        .unwrap_or_else(|| panic!("no {marker:?} in {text:?}"));
    let token = text[..end].split_whitespace().last().unwrap();
    token
        .parse()
        .unwrap_or_else(|_| panic!("{token:?}: {text}"))
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn digits_given_the_label_train_sample_eval_and_resume() {
    let dir = common::temp_dir("cli-given-label");
    for flow in ["realnvp", "glow"] {
        let out = dir.join(flow);
        let stdout = run_ok(&[
            "train",
            "--data",
            "digits",
            "--condition",
            "label",
            "--flow",
            flow,
            "--steps",
            "6",
            "--eval-every",
            "3",
            "--hidden",
            "8",
            "--layers",
            "1",
            "--batch",
            "32",
            "--quiet",
            "--out",
            path(&out),
        ]);
        assert!(stdout.contains("Bayes-rule test accuracy"), "{stdout}");
        assert_eq!(metric_text(&out, "condition"), "\"label\"");
        let (bits, accuracy) = (
            metric(&out, "test_bits_per_dim"),
            metric(&out, "test_accuracy"),
        );
        assert!(
            bits.is_finite() && (0.0..=1.0).contains(&accuracy),
            "{bits} {accuracy}"
        );
        assert!(out.join("samples.png").exists() && out.join("samples-t0.7.png").exists());
        // eval scores the test digits given their labels again: the same figures.
        let model = out.join("model.flowzoo");
        let stdout = run_ok(&["eval", "--model", path(&model)]);
        assert!(
            (number_before(&stdout, "bits/dim") - bits).abs() <= 5.1e-5,
            "{stdout}"
        );
        let printed = number_before(&stdout, "%") / 100.0;
        assert!(
            (printed - accuracy).abs() <= 5.1e-5,
            "{stdout} vs {accuracy}"
        );
        // One class for every sample; a context is needed, of width 10.
        let png = dir.join(format!("{flow}-2s.png"));
        run_ok(&[
            "sample",
            "--model",
            path(&model),
            "-n",
            "9",
            "--context",
            "0,0,1,0,0,0,0,0,0,0",
            "--out",
            path(&png),
        ]);
        assert!(std::fs::read(&png).unwrap().starts_with(b"\x89PNG"));
        let stderr = run_err(&["sample", "--model", path(&model)]);
        assert!(stderr.contains("give --context with 10"), "{stderr}");
        let stderr = run_err(&["sample", "--model", path(&model), "--context", "0,1"]);
        assert!(stderr.contains("[rows, 10], got [1, 2]"), "{stderr}");
    }
    // --resume continues a conditional run from its record.
    let out = dir.join("realnvp");
    run_ok(&[
        "train",
        "--resume",
        path(&out.join("model.flowzoo")),
        "--steps",
        "9",
        "--eval-every",
        "3",
        "--quiet",
        "--out",
        path(&out),
    ]);
    assert_eq!(metric(&out, "steps"), 9.0);
    assert_eq!(metric_text(&out, "condition"), "\"label\"");
}

/// 120 rows of `a, y, b, w` with y = 2a − b/10 + noise, w = a·y + noise.
fn context_csv() -> String {
    let mut text = String::from("a,y,b,w\n");
    for i in 0..120 {
        let (a, b) = (
            (i as f64 * 0.37).sin(),
            100.0 + 30.0 * (i as f64 * 1.3).cos(),
        );
        let y = 2.0 * a - b / 10.0 + 0.1 * (i as f64 * 2.9).sin();
        let w = a * y + 0.1 * (i as f64 * 0.9).cos();
        text += &format!("{a},{y},{b},{w}\n");
    }
    text
}

#[test]
fn a_table_given_its_context_columns_trains_samples_and_evals() {
    let dir = common::temp_dir("cli-given-columns");
    let csv = dir.join("data.csv");
    std::fs::write(&csv, context_csv()).unwrap();
    let out = dir.join("run");
    run_ok(&[
        "train",
        "--data",
        path(&csv),
        "--context-columns",
        "b,a",
        "--steps",
        "20",
        "--batch",
        "32",
        "--hidden",
        "8",
        "--layers",
        "2",
        "--quiet",
        "--out",
        path(&out),
    ]);
    let nll = metric(&out, "test_nll_nats");
    assert!(nll.is_finite());
    let model = out.join("model.flowzoo");
    // eval on the run's own split, and on the held-out rows it wrote
    // (context columns last, found by name): the test NLL again.
    let test = std::fs::read_to_string(out.join("test.csv")).unwrap();
    assert!(test.starts_with("y,w,b,a\n"), "{test}");
    for data in [None, Some(out.join("test.csv"))] {
        let mut args = vec!["eval", "--model", path(&model)];
        if let Some(data) = &data {
            args.extend(["--data", path(data)]);
        }
        let stdout = run_ok(&args);
        let printed: f64 = stdout
            .split("test NLL ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!((printed - nll).abs() <= 5.1e-5, "{stdout} vs {nll}");
    }
    // One context (b, a) for all samples; only y and w are drawn.
    let samples = dir.join("s.csv");
    run_ok(&[
        "sample",
        "--model",
        path(&model),
        "-n",
        "5",
        "--context",
        "110,0.5",
        "--out",
        path(&samples),
    ]);
    let text = std::fs::read_to_string(&samples).unwrap();
    assert!(
        text.starts_with("y,w\n") && text.lines().count() == 6,
        "{text}"
    );
    // The errors: no context, the wrong width, a non-number, an unknown
    // column, a NaN in a context column, a file without a context column.
    let stderr = run_err(&["sample", "--model", path(&model)]);
    assert!(
        stderr.contains("give --context with 2") && stderr.contains("columns b, a"),
        "{stderr}"
    );
    let stderr = run_err(&["sample", "--model", path(&model), "--context", "1,2,3"]);
    assert!(stderr.contains("[rows, 2], got [1, 3]"), "{stderr}");
    let stderr = run_err(&["sample", "--model", path(&model), "--context", "1,NaN"]);
    assert!(
        stderr.contains("entry 1") && stderr.contains("NaN"),
        "{stderr}"
    );
    let x = path(&dir.join("x")).to_string();
    let stderr = run_err(&[
        "train",
        "--data",
        path(&csv),
        "--context-columns",
        "a,zz",
        "--out",
        &x,
    ]);
    assert!(
        stderr.contains("\"zz\"") && stderr.contains("a, y, b, w"),
        "{stderr}"
    );
    // One modelled column left: a coupling flow says it needs two.
    let stderr = run_err(&[
        "train",
        "--data",
        path(&csv),
        "--context-columns",
        "a,b,w",
        "--out",
        &x,
    ]);
    assert!(stderr.contains("splits the features"), "{stderr}");
    let nan = dir.join("nan.csv");
    std::fs::write(&nan, "a,y,b\n1,2,3\nnan,2,3\n4,5,6\n").unwrap();
    let stderr = run_err(&[
        "train",
        "--data",
        path(&nan),
        "--context-columns",
        "a",
        "--out",
        &x,
    ]);
    assert!(
        stderr.contains("nan.csv") && stderr.contains("line 3, column 1"),
        "{stderr}"
    );
    let lacking = dir.join("lacking.csv");
    std::fs::write(&lacking, "y,w,b\n1,2,3\n").unwrap();
    let stderr = run_err(&["eval", "--model", path(&model), "--data", path(&lacking)]);
    assert!(stderr.contains("column \"a\" the file lacks"), "{stderr}");
    let stderr = run_err(&[
        "train",
        "--data",
        "digits",
        "--condition",
        "colour",
        "--out",
        &x,
    ]);
    assert!(stderr.contains("unknown context 'colour'"), "{stderr}");
    // A .npy file has no header: its context columns by 0-based index.
    let values: Vec<f64> = (0..60).map(|i| (i as f64 * 0.7).sin()).collect();
    let npy = dir.join("points.npy");
    std::fs::write(
        &npy,
        common::npy("<f8", false, "(20, 3)", &common::f8(&values)),
    )
    .unwrap();
    let out = dir.join("npy");
    run_ok(&[
        "train",
        "--data",
        path(&npy),
        "--context-columns",
        "2",
        "--steps",
        "3",
        "--batch",
        "8",
        "--hidden",
        "4",
        "--layers",
        "2",
        "--quiet",
        "--out",
        path(&out),
    ]);
    let columns = std::fs::read_to_string(out.join("metrics.json")).unwrap();
    assert!(
        columns.contains("\"context_columns\": [\n    \"x2\"\n  ]"),
        "{columns}"
    );
}
