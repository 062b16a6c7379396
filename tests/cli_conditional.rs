//! Issue 16 through the command line: conditional runs (`--condition
//! label` on the digits and on an MNIST folder, `--context-columns` on a
//! table), `sample --context`, `eval` and `check` of a conditional model,
//! the pictures of images given their label, and the errors.

mod common;
#[path = "common/mnist.rs"]
mod mnist;

use common::{run_err, run_ok};
use std::path::Path;

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

/// `flowzoo check --model MODEL`, which must pass: a header naming the
/// contexts (`given`), then one row per layer it counts, each ok.
fn check_passes(model: &Path, given: &str) {
    let stdout = run_ok(&["check", "--model", path(model)]);
    let header = stdout.lines().next().unwrap();
    assert!(header.contains(given), "{stdout}");
    let layers = number_before(header, "layers checked") as usize;
    let rows: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with(|c: char| c.is_ascii_digit()))
        .collect();
    assert!(layers >= 2 && rows.len() == layers, "{stdout}");
    assert!(rows.iter().all(|l| l.ends_with("  ok")), "{stdout}");
    assert!(stdout.contains("every layer passed"), "{stdout}");
}

/// Width and height of a PNG file, from its header.
fn png_size(file: &Path) -> (u32, u32) {
    let bytes = std::fs::read(file).unwrap();
    assert!(bytes.starts_with(b"\x89PNG"), "{}", file.display());
    let word = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    (word(16), word(20))
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
        // check proves every layer at the test digits, each given its label.
        check_passes(&model, "each image given its own one-hot label (classes ");
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
    // check proves every layer at the run's rows, each at its (b, a),
    // standardised by the model's embedding.
    check_passes(
        &model,
        "each row given its own context (columns b, a of the file) through the model's \
         context embedding",
    );
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

#[test]
fn an_mnist_folder_given_the_label_trains_evals_samples_checks_and_draws_its_pictures() {
    let dir = common::temp_dir("cli-mnist-label");
    let data = mnist::tiny_folder(&dir.join("mnist"));
    let out = dir.join("run");
    let stdout = run_ok(&[
        "train",
        "--data",
        "mnist",
        "--data-dir",
        path(&data),
        "--condition",
        "label",
        "--flow",
        "glow",
        "--steps",
        "3",
        "--batch",
        "16",
        "--hidden",
        "8",
        "--layers",
        "1",
        "--quiet",
        "--out",
        path(&out),
    ]);
    assert!(
        stdout.contains("mnist glow") && stdout.contains("Bayes-rule test accuracy"),
        "{stdout}"
    );
    assert_eq!(metric_text(&out, "condition"), "\"label\"");
    let (bits, accuracy) = (
        metric(&out, "test_bits_per_dim"),
        metric(&out, "test_accuracy"),
    );
    // Uniform random bytes: no model does much better than 8 bits/dim.
    assert!(
        bits.is_finite() && bits > 7.0 && (0.0..=1.0).contains(&accuracy),
        "{bits} {accuracy}"
    );
    // The grids of image_grid: 8x8 images drawn 8 times larger in cells of
    // 68 pixels, a 4-pixel gutter and a 28-pixel caption. samples.png: one
    // row of 10 per class; interpolation.png: one row of 10 steps per class
    // with two test images (of 16 with random labels: 1 to 4 rows).
    for file in ["samples.png", "samples-t0.7.png"] {
        let (width, height) = png_size(&out.join(file));
        assert!(
            width >= 10 * 68 + 4 && height == 10 * 68 + 32,
            "{file}: {width}x{height}"
        );
    }
    let (width, height) = png_size(&out.join("interpolation.png"));
    let rows = (height - 32) / 68;
    assert!(
        width >= 10 * 68 + 4 && (1..=4).contains(&rows) && height == rows * 68 + 32,
        "{width}x{height}"
    );
    // eval reads the folder again and repeats both figures.
    let model = out.join("model.flowzoo");
    let stdout = run_ok(&["eval", "--model", path(&model)]);
    assert!(
        stdout.contains("mnist test split") && stdout.contains("given their labels"),
        "{stdout}"
    );
    assert!(
        (number_before(&stdout, "bits/dim") - bits).abs() <= 5.1e-5,
        "{stdout} vs {bits}"
    );
    assert!(
        (number_before(&stdout, "%") / 100.0 - accuracy).abs() <= 5.1e-5,
        "{stdout} vs {accuracy}"
    );
    let png = dir.join("sevens.png");
    run_ok(&[
        "sample",
        "--model",
        path(&model),
        "-n",
        "4",
        "--context",
        "0,0,0,0,0,0,0,1,0,0",
        "--out",
        path(&png),
    ]);
    png_size(&png);
    check_passes(&model, "each image given its own one-hot label (classes ");
    // A label the one-hot context cannot hold is named, file and image.
    let mut labels: Vec<u8> = (0..mnist::TEST_N as u8).map(|i| i % 10).collect();
    labels[5] = 12;
    mnist::write_gz(
        &data.join("t10k-labels-idx1-ubyte.gz"),
        &mnist::idx(&[mnist::TEST_N], &labels),
    );
    let stderr = run_err(&[
        "train",
        "--data",
        "mnist",
        "--data-dir",
        path(&data),
        "--condition",
        "label",
        "--out",
        path(&dir.join("x")),
    ]);
    assert!(
        stderr.contains("mnist") && stderr.contains("test image 5 has label 12"),
        "{stderr}"
    );
}
