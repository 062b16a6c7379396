//! The command-line tool, run as a user runs it.

mod common;

use common::{run_err, run_ok};
use std::process::Command;

fn flowzoo() -> Command {
    Command::new(env!("CARGO_BIN_EXE_flowzoo"))
}

/// The width and RGB bytes of a PNG the tool wrote.
fn decode(path: &std::path::Path) -> (usize, Vec<u8>) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut rgb = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut rgb).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb, "{}", path.display());
    (info.width as usize, rgb)
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
    for file in ["metrics.json", "samples.png", "density.png", "flows.png"] {
        let len = std::fs::metadata(out.join(file)).unwrap().len();
        assert!(len > 100, "{file} is {len} bytes");
    }
    // Each picture carries its title: dark text in the band above the plot,
    // which is otherwise white.
    for file in ["samples.png", "density.png", "flows.png"] {
        let (width, rgb) = decode(&out.join(file));
        let dark = rgb[..width * 3 * 28]
            .chunks_exact(3)
            .filter(|p| p.iter().all(|&c| c < 100))
            .count();
        assert!(dark > 50, "{file}: {dark} dark pixels in the title band");
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

    let output = flowzoo()
        .args(["train", "--base", "mixture:0", "--quiet"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--base") && stderr.contains("mixture:K"),
        "{stderr}"
    );
}

// ---- checkpoints: train → model.flowzoo → sample / eval / resume ----

/// `OsStr` arguments from strings and paths alike.
macro_rules! args {
    ($($a:expr),* $(,)?) => { &[$(std::ffi::OsStr::new(&$a)),*] };
}

/// Trains a small RealNVP (2 couplings of width 16) on moons for `steps`
/// steps into `out`, with `extra` flags.
fn train_small(out: &std::path::Path, steps: &str, extra: &[&str]) {
    let mut args: Vec<&std::ffi::OsStr> = args![
        "train", "--steps", steps, "--hidden", "16", "--layers", "2", "--quiet", "--out", out
    ]
    .to_vec();
    args.extend(extra.iter().map(std::ffi::OsStr::new));
    run_ok(&args);
}

/// The number printed right after `marker` in `text`.
fn number_after(text: &str, marker: &str) -> f64 {
    let start = text
        .find(marker)
        .unwrap_or_else(|| panic!("no {marker:?} in {text:?}"))
        + marker.len();
    let token: String = text[start..]
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit() || matches!(c, '-' | '.' | 'e' | '+'))
        .collect();
    token
        .parse()
        .unwrap_or_else(|_| panic!("{token:?} after {marker:?} is not a number: {text}"))
}

/// The number stored under `key` in metrics.json.
fn metric(out: &std::path::Path, key: &str) -> f64 {
    let text = std::fs::read_to_string(out.join("metrics.json")).unwrap();
    number_after(&text, &format!("\"{key}\":"))
}

/// The optimiser step count stored in a checkpoint.
fn checkpoint_step(path: &std::path::Path) -> u64 {
    let checkpoint = flowzoo::train::checkpoint::Checkpoint::<f32>::load(path).unwrap();
    checkpoint.optimizer.expect("flowzoo train saves Adam").step
}

/// Eval prints numbers to 4 decimals: they must round metrics.json's.
fn assert_same_4_decimals(printed: f64, stored: f64, what: &str) {
    assert!(
        (printed - stored).abs() <= 5.1e-5,
        "{what}: eval printed {printed}, metrics.json has {stored}"
    );
}

#[test]
fn train_writes_a_checkpoint_that_sample_and_eval_read() {
    let out = common::temp_dir("cli-ckpt-moons");
    let model = out.join("model.flowzoo");
    train_small(&out, "20", &[]);
    assert_eq!(checkpoint_step(&model), 20);

    let sample = |csv: &std::path::Path| {
        run_ok(args![
            "sample",
            "--model",
            model,
            "-n",
            "7",
            "--temperature",
            "0.8",
            "--seed",
            "3",
            "--out",
            csv
        ])
    };
    let csv = out.join("s.csv");
    let stdout = sample(&csv);
    assert!(stdout.contains("7 samples"), "{stdout}");
    let text = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 8, "header and 7 rows: {text}");
    assert_eq!(lines[0], "x0,x1");
    for line in &lines[1..] {
        let values: Vec<f64> = line.split(',').map(|v| v.parse().unwrap()).collect();
        assert!(
            values.len() == 2 && values.iter().all(|v| v.is_finite()),
            "{line}"
        );
    }
    // The same seed gives the same samples.
    let again = out.join("again.csv");
    sample(&again);
    assert_eq!(text, std::fs::read_to_string(&again).unwrap());

    // Eval's default seed is the run's test seed: the same 20,000 points.
    let stdout = run_ok(args!["eval", "--model", model]);
    assert_same_4_decimals(
        number_after(&stdout, "test NLL"),
        metric(&out, "test_nll_nats"),
        "moons test NLL",
    );
}

#[test]
fn digits_checkpoint_samples_a_png_grid_and_evals_bits_per_dim() {
    // A vector flow and the image flows: each checkpoint alone rebuilds the
    // model that `eval` scores exactly as the run did.
    let flows: [&[&str]; 4] = [
        &["--flow", "realnvp", "--hidden", "16", "--layers", "2"],
        &["--flow", "glow", "--hidden", "4", "--layers", "1"],
        &["--flow", "realnvp-image", "--hidden", "4", "--layers", "1"],
        &["--flow", "nsf-image", "--hidden", "4", "--layers", "1"],
    ];
    for (i, flow) in flows.iter().enumerate() {
        let out = common::temp_dir(&format!("cli-ckpt-digits{i}"));
        let model = out.join("model.flowzoo");
        let mut train: Vec<&std::ffi::OsStr> = args![
            "train",
            "--data",
            "digits",
            "--steps",
            "6",
            "--eval-every",
            "3",
            "--quiet",
            "--out",
            out
        ]
        .to_vec();
        train.extend(flow.iter().map(std::ffi::OsStr::new));
        run_ok(&train);
        let png = out.join("grid.png");
        run_ok(args!["sample", "--model", model, "-n", "9", "--out", png]);
        assert!(
            std::fs::read(&png).unwrap().starts_with(b"\x89PNG"),
            "{flow:?}"
        );
        let stdout = run_ok(args!["eval", "--model", model, "--data", "digits"]);
        assert_same_4_decimals(
            number_after(&stdout, "per image,"),
            metric(&out, "test_bits_per_dim"),
            &format!("{flow:?} digits bits/dim"),
        );
        assert_same_4_decimals(
            number_after(&stdout, "NLL"),
            metric(&out, "test_nll_nats"),
            &format!("{flow:?} digits NLL"),
        );
    }
}

/// Trains each flow for 3 steps; returns (output folder, stderr) per run.
fn train_each(runs: &[&[&str]], name: &str) -> Vec<(std::path::PathBuf, String)> {
    let mut results = Vec::new();
    for (i, flow_args) in runs.iter().enumerate() {
        let out = common::temp_dir(&format!("cli-ckpt-{name}{i}"));
        let mut args: Vec<std::ffi::OsString> = ["train", "--steps", "3", "--quiet"]
            .iter()
            .chain(flow_args.iter())
            .map(|a| a.into())
            .collect();
        if !flow_args.contains(&"--hidden") {
            args.extend(["--hidden".into(), "8".into()]);
        }
        args.extend(["--out".into(), out.clone().into_os_string()]);
        let output = flowzoo().args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(output.status.success(), "{flow_args:?}: {stderr}");
        results.push((out, stderr));
    }
    results
}

#[test]
fn every_saveable_flow_writes_a_loadable_checkpoint() {
    let runs: [&[&str]; 11] = [
        &["--flow", "realnvp"],
        &["--flow", "maf"],
        &["--flow", "nsf", "--layers", "2"],
        &["--flow", "nsf-ar", "--layers", "2"],
        &["--flow", "nsf", "--layers", "2", "--base", "mixture:3"],
        &["--flow", "maf", "--layers", "2", "--base", "diag"],
        &["--flow", "nice"],
        &["--flow", "iaf", "--target", "ring", "--layers", "2"],
        &["--flow", "glow", "--layers", "1"],
        &[
            "--flow", "glow", "--data", "digits", "--layers", "1", "--hidden", "4",
        ],
        &[
            "--flow",
            "realnvp-image",
            "--data",
            "digits",
            "--layers",
            "1",
            "--hidden",
            "4",
        ],
    ];
    for (flow_args, (out, _)) in runs.iter().zip(train_each(&runs, "saveable")) {
        let model = out.join("model.flowzoo");
        let loaded = flowzoo::train::checkpoint::Checkpoint::<f32>::load(&model)
            .unwrap_or_else(|e| panic!("{flow_args:?}: {e}"));
        // A --base replaces the architecture's prior, and the checkpoint keeps it.
        let base = flow_args
            .iter()
            .position(|a| *a == "--base")
            .map(|i| flow_args[i + 1].split(':').next().unwrap());
        if let Some(base) = base {
            assert_eq!(loaded.model.prior.name(), base, "{flow_args:?}");
        }
        let x = loaded.model.sample(
            4,
            1.0,
            &mut <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(0),
        );
        assert!(
            loaded.model.log_prob(&x).all_finite(),
            "{flow_args:?}: log_prob of its own samples"
        );
        run_ok(args![
            "sample",
            "--model",
            model,
            "-n",
            "4",
            "--out",
            out.join("s.csv")
        ]);
    }
}

#[test]
fn resume_restores_the_optimiser_and_continues_the_count() {
    let first = common::temp_dir("cli-resume-a");
    train_small(&first, "10", &["--lr", "2e-3"]);
    let saved = first.join("model.flowzoo");
    let before = flowzoo::train::checkpoint::Checkpoint::<f32>::load(&saved).unwrap();
    let state = before.optimizer.as_ref().unwrap();
    assert_eq!((state.step, state.lr), (10, 2e-3));
    // Adam restored from the file holds exactly the saved moments.
    let adam = state.to_adam();
    assert_eq!(adam.steps(), 10);
    assert_eq!(adam.moments().len(), before.model.params().len());
    for (restored, stored) in adam.moments().iter().zip(&state.moments) {
        for k in 0..2 {
            assert_eq!(restored[k].to_vec(), stored[k].to_vec());
        }
    }

    let resumed = common::temp_dir("cli-resume-b");
    run_ok(args![
        "train", "--resume", saved, "--steps", "30", "--quiet", "--out", resumed
    ]);
    let after =
        flowzoo::train::checkpoint::Checkpoint::<f32>::load(resumed.join("model.flowzoo")).unwrap();
    let state = after.optimizer.as_ref().unwrap();
    // 20 more steps at the checkpoint's learning rate, from its moments.
    assert_eq!((state.step, state.lr), (30, 2e-3));
    assert!(std::fs::read_to_string(resumed.join("metrics.json"))
        .unwrap()
        .contains("\"resumed_from\""));

    // Straight through to 30 steps: other batches after step 10, so close, not equal.
    let straight = common::temp_dir("cli-resume-c");
    train_small(&straight, "30", &["--lr", "2e-3"]);
    let (a, b) = (
        metric(&resumed, "test_nll_nats"),
        metric(&straight, "test_nll_nats"),
    );
    assert!((a - b).abs() < 0.1, "resumed {a} vs straight {b} nats");

    // Nothing left to do, or a flag that would change the run: clear errors.
    let stderr = run_err(args![
        "train", "--resume", saved, "--steps", "10", "--quiet", "--out", resumed
    ]);
    assert!(stderr.contains("already taken 10 steps"), "{stderr}");
    let stderr = run_err(args![
        "train", "--resume", saved, "--flow", "maf", "--quiet"
    ]);
    assert!(
        stderr.contains("--flow") && stderr.contains("model.flowzoo"),
        "{stderr}"
    );
}

#[test]
fn divergence_names_step_and_layer_and_keeps_the_last_good_checkpoint() {
    let out = common::temp_dir("cli-diverge");
    let model = out.join("model.flowzoo");
    train_small(&out, "10", &[]);
    let good = std::fs::read(&model).unwrap();
    // Step 11 moves every parameter by about 1e30: its model is not saved
    // (its log-density is no longer finite), and step 12's loss is NaN.
    let stderr = run_err(args![
        "train",
        "--resume",
        model,
        "--steps",
        "20",
        "--lr",
        "1e30",
        "--eval-every",
        "1",
        "--quiet",
        "--out",
        out
    ]);
    assert!(stderr.contains("step 12:"), "{stderr}");
    assert!(stderr.contains("layer "), "names the layer: {stderr}");
    assert!(stderr.contains("(step 10)"), "{stderr}");
    assert_eq!(
        std::fs::read(&model).unwrap(),
        good,
        "the good checkpoint was overwritten"
    );
    assert!(!out.join("model.flowzoo.tmp").exists());
}

#[test]
fn bad_checkpoints_fail_naming_the_file() {
    let dir = common::temp_dir("cli-bad-ckpt");
    let garbage = dir.join("garbage.flowzoo");
    std::fs::write(&garbage, b"not a checkpoint at all").unwrap();
    let stderr = run_err(args!["sample", "--model", garbage, "-n", "2"]);
    assert!(stderr.contains("garbage.flowzoo"), "{stderr}");

    let out = dir.join("run");
    train_small(&out, "2", &[]);
    let bytes = std::fs::read(out.join("model.flowzoo")).unwrap();
    let truncated = dir.join("truncated.flowzoo");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let stderr = run_err(args!["eval", "--model", truncated]);
    assert!(
        stderr.contains("truncated.flowzoo") && stderr.contains("offset"),
        "{stderr}"
    );
    let missing = dir.join("missing.flowzoo");
    let stderr = run_err(args!["eval", "--model", missing]);
    assert!(stderr.contains("missing.flowzoo"), "{stderr}");
}

// ---- the user's own vectors: --data FILE.csv / FILE.npy ----

/// 200 rows of three correlated columns, each multiplied by `scale`.
fn table_csv(scale: f64) -> String {
    let mut text = String::from("height,weight,age\n");
    for i in 0..200 {
        let u = (i as f64 * 0.37).sin();
        let v = (i as f64 * 1.13).cos();
        let row = [170.0 + 8.0 * u, 70.0 + 5.0 * u + 3.0 * v, 40.0 + 10.0 * v];
        let fields: Vec<String> = row.iter().map(|x| format!("{}", x * scale)).collect();
        text += &(fields.join(",") + "\n");
    }
    text
}

#[test]
fn csv_data_trains_in_the_data_units_and_eval_repeats_the_test_nll() {
    let dir = common::temp_dir("cli-table");
    let train = |name: &str, scale: f64| {
        let csv = dir.join(format!("{name}.csv"));
        std::fs::write(&csv, table_csv(scale)).unwrap();
        let out = dir.join(name);
        run_ok(args![
            "train", "--data", csv, "--steps", "20", "--batch", "32", "--hidden", "16", "--layers",
            "2", "--quiet", "--out", out
        ]);
        out
    };
    let out = train("people", 1.0);
    let model = out.join("model.flowzoo");
    // 10% of 200 rows held out, written so that eval can score them again.
    let test = std::fs::read_to_string(out.join("test.csv")).unwrap();
    assert_eq!(test.lines().count(), 21, "{test}");
    let stdout = run_ok(args![
        "eval",
        "--model",
        model,
        "--data",
        out.join("test.csv")
    ]);
    assert_same_4_decimals(
        number_after(&stdout, "test NLL"),
        metric(&out, "test_nll_nats"),
        "table test NLL",
    );
    let samples = out.join("s.csv");
    run_ok(args![
        "sample", "--model", model, "-n", "5", "--out", samples
    ]);
    let text = std::fs::read_to_string(&samples).unwrap();
    assert!(text.starts_with("height,weight,age\n"), "{text}");
    assert_eq!(text.lines().count(), 6);

    // Densities are in the data's units: the same data in units 1000 times
    // smaller (x' = 1000·x) has log p'(x') = log p(x) − 3·ln 1000, the
    // standardisation's Jacobian counted, the model otherwise the same.
    let scaled = train("people-milli", 1000.0);
    let (a, b) = (
        metric(&out, "test_nll_nats"),
        metric(&scaled, "test_nll_nats"),
    );
    let expected = 3.0 * 1000f64.ln();
    assert!(
        (b - a - expected).abs() < 1e-2,
        "NLL {b} − {a} should be 3·ln 1000 = {expected}"
    );
}

#[test]
fn npy_data_trains() {
    let dir = common::temp_dir("cli-npy");
    // 40 rows × 2 little-endian f64.
    let values: Vec<f64> = (0..40)
        .flat_map(|i| [(i as f64).sin() * 3.0, (i as f64 * 0.5).cos() + 10.0])
        .collect();
    let bytes = common::npy("<f8", false, "(40, 2)", &common::f8(&values));
    let npy = dir.join("points.npy");
    std::fs::write(&npy, bytes).unwrap();
    let out = dir.join("run");
    let stdout = run_ok(args![
        "train", "--data", npy, "--steps", "5", "--batch", "16", "--hidden", "8", "--layers", "2",
        "--quiet", "--out", out
    ]);
    assert!(stdout.contains("points.npy"), "{stdout}");
    assert!(metric(&out, "test_nll_nats").is_finite());
    assert!(out.join("model.flowzoo").exists());
}

#[test]
fn bad_csv_data_is_rejected_naming_file_row_and_column() {
    let dir = common::temp_dir("cli-bad-csv");
    let cases = [
        ("ragged", "a,b\n1,2\n3\n", "line 3"),
        ("word", "a,b\n1,2\n3,four\n", "four"),
        ("nan", "a,b\n1,2\nNaN,4\n", "not finite"),
        ("inf", "a,b\n1,2\n5,inf\n", "not finite"),
        // Finite, but not in f32, in which the run computes (before: a panic
        // in the column mean, exit 101; then "training diverged").
        ("huge", "a,b\n1,2\n5,1e308\n", "beyond the range of f32"),
    ];
    for (name, text, says) in cases {
        let csv = dir.join(format!("{name}.csv"));
        std::fs::write(&csv, text).unwrap();
        let stderr = run_err(args!["train", "--data", csv, "--quiet", "--out", dir]);
        assert!(
            stderr.contains(&format!("{name}.csv")) && stderr.contains(says),
            "{name}: {stderr}"
        );
        assert!(stderr.contains("column"), "{name}: {stderr}");
    }
}

// A conditional model (written by the library) given to a command that
// needs a context it cannot have: an error naming the file and the context
// width, never a panic. `check` at fresh 2-D points (which have no context)
// and `sample` without --context.
#[test]
fn a_conditional_model_without_a_context_is_refused_by_name() {
    use flowzoo::flows::FlowModel;
    use rand::SeedableRng;
    let dir = common::temp_dir("cli-conditional");
    let path = dir.join("model.flowzoo");
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let model = FlowModel::<f32>::conditional_realnvp(2, 3, 2, 8, &mut rng);
    flowzoo::train::checkpoint::save_model(&path, &model).unwrap();
    let stderr = run_err(args!["check", "--model", path, "--data", "moons"]);
    assert!(
        stderr.contains("model.flowzoo")
            && stderr.contains("conditional (it reads a context of width 3)")
            && stderr.contains("fresh 2-D points have no context"),
        "{stderr}"
    );
    let stderr = run_err(args!["sample", "--model", path]);
    assert!(
        stderr.contains("model.flowzoo")
            && stderr.contains("is conditional: give --context with 3"),
        "{stderr}"
    );
}

// `flowzoo train ... | head -1` closes stdout before the report is written:
// the tool ends with success and no panic (it used to panic in println!),
// and the checkpoint it saved is whole (eval reads it).
#[test]
fn a_closed_stdout_ends_the_tool_quietly() {
    let out = common::temp_dir("cli-closed-stdout");
    let mut child = flowzoo()
        .args(["train", "--steps", "20", "--hidden", "8", "--layers", "2"])
        .arg("--out")
        .arg(&out)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader goes away at once
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && !stderr.contains("panicked"),
        "{:?}: {stderr}",
        output.status
    );
    let model = out.join("model.flowzoo");
    run_ok(args!["eval", "--model", model]);
}
