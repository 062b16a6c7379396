//! The flowzoo lab: a 2-D flow trained in a web page by the library itself,
//! compiled to `wasm32-unknown-unknown`.
//!
//! The page (`web/static/`) runs this crate in a Web Worker. One call,
//! [`train`], does the whole experiment with the library's own loop
//! ([`flowzoo::train::run::run_from`] for the maximum-likelihood flows,
//! [`flowzoo::train::iaf::fit_iaf_to_energy_with`] for the IAF): the same code,
//! seed streams and test figure as `flowzoo train`. While it runs it hands
//! the page what to draw through a [`Sink`]: the loss of every step, and at
//! every check a [`Tag::FrameBegin`] … [`Tag::FrameEnd`] group with the
//! model's log-density on a grid, samples, and the base samples carried
//! through each layer (the lecture's picture of a flow). [`log_det_at`]
//! answers the page's click panel: log|det J| at a point from the layers'
//! formulas beside the finite-difference one.
//!
//! The same functions run natively (`cargo run -p flowzoo-web --bin
//! lab-reference`), which is how the tests check that the browser computes
//! the same bytes as native code: see `web/README.md`.
//!
//! On wasm32 the [`wasm`] module exports the C-ABI functions the worker
//! calls; there is no generated glue, so building the page needs only
//! `cargo build --target wasm32-unknown-unknown`.

#![deny(missing_docs)]

use flowzoo::data::energy::Energy;
use flowzoo::data::toy2d::Toy2d;
use flowzoo::flows::check::{finite_difference_jacobian, CheckOptions};
use flowzoo::flows::zoo::{DataShape, FlowName};
use flowzoo::flows::{Flow, FlowModel};
use flowzoo::tensor::Tensor;
use flowzoo::train::checkpoint::{to_bytes, Checkpoint};
use flowzoo::train::codec::fnv1a64;
use flowzoo::train::fit::Check;
use flowzoo::train::iaf::{energy_grid, fit_iaf_to_energy_with, IafConfig};
use flowzoo::train::record::RunRecord;
use flowzoo::train::run::{run_from, Dataset, RunConfig};
use flowzoo::train::sample::{layer_by_layer, DensityGrid};
use flowzoo::train::seeds::Stream;
use std::path::Path;

#[cfg(target_arch = "wasm32")]
pub mod wasm;

/// What the page learns: samples of a 2-D data set (maximum likelihood),
/// or an unnormalised 2-D energy exp(−U) (the IAF, by reverse KL).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LabData {
    /// A toy data set: `moons`, `8gaussians`, `checkerboard`, `pinwheel`, `circles`.
    Toy(Toy2d),
    /// One of Rezende and Mohamed's energies: `ring`, `wave`, `bump`, `step`.
    Energy(Energy),
}

impl LabData {
    /// The box the pictures show.
    pub fn bounds(&self) -> ([f64; 2], [f64; 2]) {
        match self {
            LabData::Toy(toy) => toy.bounds(),
            LabData::Energy(energy) => energy.bounds(),
        }
    }
}

/// One experiment of the lab: the data, the flow, its sizes and the run's
/// settings. Parsed from the page's `key=value` text by [`LabConfig::parse`].
#[derive(Clone, Debug, PartialEq)]
pub struct LabConfig {
    /// The data or energy.
    pub data: LabData,
    /// The architecture: `nice`, `realnvp`, `glow`, `maf`, `nsf`, `nsf-ar`
    /// on a data set; `iaf` on an energy.
    pub flow: FlowName,
    /// Couplings, MADEs or steps (the zoo's `layers`).
    pub layers: usize,
    /// Hidden width of every network.
    pub hidden: usize,
    /// Optimisation steps.
    pub steps: usize,
    /// Batch size.
    pub batch: usize,
    /// Adam's learning rate.
    pub lr: f64,
    /// The seed of every stream.
    pub seed: u64,
    /// A frame (density, samples, layers) every this many steps, and at the end.
    pub every: usize,
    /// Cells per side of the density grid.
    pub resolution: usize,
    /// Samples drawn for each frame (and data points shown).
    pub points: usize,
}

impl Default for LabConfig {
    /// RealNVP on two moons with a lab-sized network (4 couplings, MLP
    /// 2×64), 500 steps of batch 256 at Adam 1e-3, seed 0, a frame every 50
    /// steps on a 64² grid with 1000 samples.
    fn default() -> Self {
        LabConfig {
            data: LabData::Toy(Toy2d::moons()),
            flow: FlowName::RealNvp,
            layers: 4,
            hidden: 64,
            steps: 500,
            batch: 256,
            lr: 1e-3,
            seed: 0,
            every: 50,
            resolution: 64,
            points: 1000,
        }
    }
}

impl LabConfig {
    /// Parses whitespace-separated `key=value` pairs over the defaults:
    /// `data`, `flow`, `layers`, `hidden`, `steps`, `batch`, `lr`, `seed`,
    /// `every`, `resolution`, `points`. `layers` and `hidden` default to the
    /// lab's sizes (4 and 64) unless given.
    ///
    /// # Errors
    /// A message naming the key: unknown, a value that does not parse, a
    /// zero size or one above the lab's bounds (64 layers, 4096 hidden,
    /// 10⁶ steps, batch 65 536, a 512² grid, 100 000 points), an energy with
    /// another flow than `iaf`, or `iaf` on a data set.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut config = LabConfig::default();
        for pair in text.split_whitespace() {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| format!("{pair:?} is not key=value"))?;
            let count = |v: &str| -> Result<usize, String> {
                v.parse::<usize>()
                    .map_err(|_| format!("{key}: {v:?} is not a whole number"))
            };
            match key {
                "data" => {
                    config.data = match value.parse::<Toy2d>() {
                        Ok(toy) => LabData::Toy(toy),
                        Err(_) => LabData::Energy(value.parse::<Energy>().map_err(|_| {
                            format!(
                                "data: {value:?} is neither a data set (moons, 8gaussians, \
                                 checkerboard, pinwheel, circles) nor an energy (ring, wave, \
                                 bump, step)"
                            )
                        })?),
                    }
                }
                "flow" => config.flow = value.parse().map_err(|e| format!("flow: {e}"))?,
                "layers" => config.layers = count(value)?,
                "hidden" => config.hidden = count(value)?,
                "steps" => config.steps = count(value)?,
                "batch" => config.batch = count(value)?,
                "every" => config.every = count(value)?,
                "resolution" => config.resolution = count(value)?,
                "points" => config.points = count(value)?,
                "seed" => {
                    config.seed = value
                        .parse()
                        .map_err(|_| format!("seed: {value:?} is not a whole number"))?
                }
                "lr" => {
                    config.lr = value
                        .parse::<f64>()
                        .ok()
                        .filter(|lr| lr.is_finite() && *lr > 0.0)
                        .ok_or_else(|| format!("lr: {value:?} is not a positive number"))?
                }
                _ => return Err(format!("unknown setting {key:?}")),
            }
        }
        // The upper bounds keep a page's memory (wasm32: 4 GiB at most)
        // and time sane; the command line has none.
        for (name, value, most) in [
            ("layers", config.layers, 64),
            ("hidden", config.hidden, 4096),
            ("steps", config.steps, 1_000_000),
            ("batch", config.batch, 65_536),
            ("every", config.every, usize::MAX),
            ("resolution", config.resolution, 512),
            ("points", config.points, 100_000),
        ] {
            if value == 0 {
                return Err(format!("{name} must be at least 1"));
            }
            if value > most {
                return Err(format!(
                    "{name} must be at most {most} in the lab, got {value}"
                ));
            }
        }
        match (config.data, config.flow) {
            (LabData::Energy(_), FlowName::Iaf) | (LabData::Toy(_), _) => {}
            (LabData::Energy(_), other) => {
                return Err(format!(
                    "an energy has no samples to learn from by maximum likelihood; \
                     only iaf fits one (by reverse KL), not {}",
                    other.name()
                ))
            }
        }
        if let (LabData::Toy(_), FlowName::Iaf) = (config.data, config.flow) {
            return Err("iaf learns an energy by reverse KL: pick ring, wave, bump or step".into());
        }
        if !models_points(config.flow) {
            return Err(format!(
                "{} models images, not 2-D points",
                config.flow.name()
            ));
        }
        Ok(config)
    }

    /// The same experiment as `flowzoo train` flags, for the native figure:
    /// `--data moons --flow realnvp --layers 4 --hidden 64 --steps 500 …`.
    pub fn as_flags(&self) -> String {
        let data = match self.data {
            LabData::Toy(toy) => toy.name().to_string(),
            LabData::Energy(energy) => format!("energy --target {}", energy.name()),
        };
        format!(
            "--data {data} --flow {} --layers {} --hidden {} --steps {} --batch {} --lr {} --seed {} --eval-every {}",
            self.flow.name(),
            self.layers,
            self.hidden,
            self.steps,
            self.batch,
            self.lr,
            self.seed,
            self.every
        )
    }
}

/// What a [`Sink`] receives, one tag per message; the payload's layout is
/// given with each tag (numbers little-endian, as wasm's memory holds them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Tag {
    /// Every step: f64 `[step, loss]` (loss in nats per sample).
    Step = 1,
    /// A frame starts: f64 `[step, loss, resolution, x0, x1, y0, y1]`.
    FrameBegin = 2,
    /// The model's log-density on the grid: f32 `[resolution²]`, row 0 at
    /// the top (largest y).
    Density = 3,
    /// Samples of the model: f32 `[points, 2]`.
    Samples = 4,
    /// The name of the next stage of the layer-by-layer picture: UTF-8.
    StageName = 5,
    /// That stage's points (the base samples after that many layers): f32 `[points, 2]`.
    StagePoints = 6,
    /// The frame is complete.
    FrameEnd = 7,
    /// Training finished: UTF-8 JSON, the [`Summary`].
    Done = 8,
    /// Training failed: UTF-8, the error.
    Error = 9,
    /// Once, before training: the data points the page draws under the
    /// samples, f32 `[points, 2]` (a data set).
    Data = 10,
    /// Once, before training: the target's log-density −U on the grid,
    /// f32 `[resolution²]` (an energy), after a [`Tag::FrameBegin`]-shaped
    /// f64 header `[0, 0, resolution, x0, x1, y0, y1]` in the same payload.
    Target = 11,
    /// The answer of the click panel: UTF-8 JSON of a [`LogDetCheck`].
    LogDet = 12,
}

/// Where [`train`] sends what the page draws.
pub trait Sink {
    /// One message: its tag and payload bytes.
    fn emit(&mut self, tag: Tag, bytes: &[u8]);
}

/// f64 values as little-endian bytes.
fn f64_bytes(values: &[f64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// f32 values as little-endian bytes.
fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// What a finished run reports (the page shows it; [`Tag::Done`] carries
/// it as JSON).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Summary {
    /// The test NLL in nats per sample on [`flowzoo::train::run::TOY_TEST_POINTS`]
    /// fresh points of the test stream, exactly the figure of `flowzoo
    /// train` with [`LabConfig::as_flags`] (a data set).
    pub test_nll: Option<f64>,
    /// KL(q ‖ p) in nats (an energy).
    pub kl: Option<f64>,
    /// The last step's loss.
    pub final_loss: f64,
    /// Steps taken.
    pub steps: usize,
    /// Trainable parameters.
    pub parameters: usize,
    /// FNV-1a 64 of the checkpoint bytes (model and run record).
    pub checkpoint_fnv: u64,
    /// Length of the checkpoint, bytes.
    pub checkpoint_len: usize,
}

impl Summary {
    /// As JSON. Floats are written in Rust's shortest round-trip form, so
    /// two runs agree on a figure exactly when the texts agree.
    pub fn to_json(&self) -> String {
        let opt = |v: Option<f64>| v.map_or("null".to_string(), |v| format!("\"{v:?}\""));
        format!(
            "{{\"test_nll\":{},\"kl\":{},\"final_loss\":\"{:?}\",\"steps\":{},\"parameters\":{},\
             \"checkpoint_fnv\":\"{:016x}\",\"checkpoint_len\":{}}}",
            opt(self.test_nll),
            opt(self.kl),
            self.final_loss,
            self.steps,
            self.parameters,
            self.checkpoint_fnv,
            self.checkpoint_len
        )
    }
}

/// A finished run: the model, its checkpoint bytes and the summary.
pub struct Outcome {
    /// The trained model.
    pub model: FlowModel<f32>,
    /// The checkpoint (model and run record), as `flowzoo` writes it.
    pub checkpoint: Vec<u8>,
    /// What the page shows.
    pub summary: Summary,
}

/// Sends one frame of `model`: its density on the grid, samples, and the
/// same base samples after each layer.
fn send_frame(
    sink: &mut dyn Sink,
    config: &LabConfig,
    model: &FlowModel<f32>,
    step: usize,
    loss: f64,
) {
    let (x_range, y_range) = config.data.bounds();
    let r = config.resolution;
    sink.emit(
        Tag::FrameBegin,
        &f64_bytes(&[
            step as f64,
            loss,
            r as f64,
            x_range[0],
            x_range[1],
            y_range[0],
            y_range[1],
        ]),
    );
    let grid = DensityGrid::new(model, x_range, y_range, r);
    let density: Vec<f32> = grid.log_density.iter().map(|&v| v as f32).collect();
    sink.emit(Tag::Density, &f32_bytes(&density));
    // The pictures' own stream, as `flowzoo train` draws its pictures: no
    // training draw moves. The same base samples in every frame.
    let mut rng = Stream::Pictures.rng(config.seed);
    let z = model.sample_prior(config.points, 1.0, &mut rng);
    let stages = layer_by_layer(model, &z);
    let samples = &stages.last().expect("the base is the first stage").1;
    sink.emit(Tag::Samples, &f32_bytes(&samples.to_vec()));
    for (name, points) in &stages {
        sink.emit(Tag::StageName, name.as_bytes());
        sink.emit(Tag::StagePoints, &f32_bytes(&points.to_vec()));
    }
    sink.emit(Tag::FrameEnd, &[]);
}

/// Runs the experiment of `config`, telling `sink` everything the page
/// draws; the numbers are those of `flowzoo train` with
/// [`LabConfig::as_flags`] at the same thread count (the lab itself runs
/// serial kernels: one thread).
///
/// # Errors
/// The library's error as text (a diverged run, say); it is also sent as
/// [`Tag::Error`].
pub fn train(config: &LabConfig, sink: &mut (dyn Sink + Send)) -> Result<Outcome, String> {
    let outcome = match config.data {
        LabData::Toy(toy) => train_toy(config, toy, sink),
        LabData::Energy(energy) => train_energy(config, energy, sink),
    };
    match &outcome {
        Ok(done) => sink.emit(Tag::Done, done.summary.to_json().as_bytes()),
        Err(e) => sink.emit(Tag::Error, e.as_bytes()),
    }
    outcome
}

/// Maximum likelihood on a toy data set, by [`run_from`].
fn train_toy(
    config: &LabConfig,
    toy: Toy2d,
    sink: &mut (dyn Sink + Send),
) -> Result<Outcome, String> {
    // The data points shown, from the pictures' stream of the next seed.
    let mut data_rng = Stream::Pictures.rng(config.seed.wrapping_add(1));
    let data: Vec<f32> = toy
        .sample(config.points, &mut data_rng)
        .into_iter()
        .map(|v| v as f32)
        .collect();
    sink.emit(Tag::Data, &f32_bytes(&data));
    let run = RunConfig {
        layers: config.layers,
        hidden: config.hidden,
        steps: config.steps,
        batch: config.batch,
        lr: config.lr,
        seed: config.seed,
        eval_every: config.every,
        ..RunConfig::new(Dataset::Toy(toy), config.flow).map_err(|e| e.to_string())?
    };
    // The sink is used by both callbacks, one after the other.
    let sink = std::sync::Mutex::new(sink);
    let result = run_from(
        &run,
        None,
        |step, loss| {
            let mut sink = sink.lock().expect("one caller at a time");
            sink.emit(Tag::Step, &f64_bytes(&[step as f64, loss]))
        },
        |check: &Check, model: &FlowModel<f32>, _| {
            let mut sink = sink.lock().expect("one caller at a time");
            send_frame(&mut **sink, config, model, check.step, check.loss)
        },
    )
    .map_err(|e| e.to_string())?;
    let record = run.record(result.report.steps as u64);
    let summary = Summary {
        test_nll: Some(result.test_nll_nats),
        final_loss: result.report.final_loss,
        steps: result.report.steps,
        ..Summary::default()
    };
    finish(result.model, &record, summary)
}

/// The outcome of a run: its checkpoint (model and `record`) and the
/// summary completed with the parameter count and the checkpoint's hash.
fn finish(model: FlowModel<f32>, record: &RunRecord, summary: Summary) -> Result<Outcome, String> {
    let checkpoint = to_bytes(&model, None, Some(record)).map_err(|e| e.to_string())?;
    Ok(Outcome {
        summary: Summary {
            parameters: model.n_params(),
            checkpoint_fnv: fnv1a64(&checkpoint),
            checkpoint_len: checkpoint.len(),
            ..summary
        },
        model,
        checkpoint,
    })
}

/// The IAF fitted to an energy by reverse KL, by
/// [`flowzoo::train::iaf::fit_iaf_to_energy_with`], a frame at every logged step.
fn train_energy(
    config: &LabConfig,
    energy: Energy,
    sink: &mut (dyn Sink + Send),
) -> Result<Outcome, String> {
    let target = energy_grid(energy, config.resolution);
    let mut payload = f64_bytes(&[
        0.0,
        0.0,
        config.resolution as f64,
        target.x_range[0],
        target.x_range[1],
        target.y_range[0],
        target.y_range[1],
    ]);
    let log_target: Vec<f32> = target.log_density.iter().map(|&v| v as f32).collect();
    payload.extend(f32_bytes(&log_target));
    sink.emit(Tag::Target, &payload);
    let iaf = IafConfig {
        layers: config.layers,
        hidden: config.hidden,
        steps: config.steps,
        batch: config.batch,
        lr: config.lr,
        seed: config.seed,
        eval_every: config.every,
    };
    // Both callbacks use the sink, one after the other.
    let sink = std::sync::Mutex::new(sink);
    let fit = fit_iaf_to_energy_with(
        &iaf,
        energy,
        |step, loss| {
            let mut sink = sink.lock().expect("one caller at a time");
            sink.emit(Tag::Step, &f64_bytes(&[step as f64, loss]))
        },
        |step, loss, model| {
            let mut sink = sink.lock().expect("one caller at a time");
            send_frame(&mut **sink, config, model, step, loss)
        },
    )
    .map_err(|e| e.to_string())?;
    let summary = Summary {
        kl: Some(fit.kl),
        final_loss: fit.report.final_loss,
        steps: fit.report.steps,
        ..Summary::default()
    };
    finish(fit.model, &iaf.record("", Some(energy.name())), summary)
}

/// log|det ∂x/∂z| of a trained model at a data point x, two ways.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LogDetCheck {
    /// The point x.
    pub x: [f64; 2],
    /// Its latent z = f⁻¹(x).
    pub z: [f64; 2],
    /// From the layers' own log-det formulas (the sum along the flow).
    pub formula: f64,
    /// From the 2×2 finite-difference Jacobian of f at z: ln|J₁₁J₂₂ − J₁₂J₂₁|.
    pub finite_difference: f64,
    /// log p(x), nats.
    pub log_prob: f64,
}

/// Both log-dets of the model in `checkpoint` at `x`, computed in f64 (the
/// f32 parameters converted exactly), with the finite-difference step of
/// [`CheckOptions::default`].
///
/// # Errors
/// A checkpoint that does not parse, or a model that is not 2-D.
pub fn log_det_at(checkpoint: &[u8], x: [f64; 2]) -> Result<LogDetCheck, String> {
    let model = Checkpoint::<f64>::from_bytes(checkpoint, Path::new("the lab's model"))
        .map_err(|e| e.to_string())?
        .model;
    if model.dim() != 2 {
        return Err(format!("the model is {}-D, not 2-D", model.dim()));
    }
    let point = Tensor::from_vec(x.to_vec(), &[1, 2]);
    let (z, _) = model.flow.inverse_tensor(&point);
    let (_, formula) = model.flow.forward_tensor(&z);
    let jacobian =
        finite_difference_jacobian(&model.flow, &z, 0, CheckOptions::default().h).to_vec();
    let det = jacobian[0] * jacobian[3] - jacobian[1] * jacobian[2];
    let z = z.to_vec();
    Ok(LogDetCheck {
        x,
        z: [z[0], z[1]],
        formula: formula.to_vec()[0],
        finite_difference: det.abs().ln(),
        log_prob: model.log_prob(&point).to_vec()[0],
    })
}

impl LogDetCheck {
    /// As JSON, floats in Rust's shortest round-trip form; a value that is
    /// not finite (a point off the model's support, say) is `null`.
    pub fn to_json(&self) -> String {
        let n = |v: f64| {
            if v.is_finite() {
                format!("{v:?}")
            } else {
                "null".to_string()
            }
        };
        format!(
            "{{\"x\":[{},{}],\"z\":[{},{}],\"formula\":{},\"finite_difference\":{},\"log_prob\":{}}}",
            n(self.x[0]),
            n(self.x[1]),
            n(self.z[0]),
            n(self.z[1]),
            n(self.formula),
            n(self.finite_difference),
            n(self.log_prob)
        )
    }
}

/// A [`Sink`] that keeps the count of each tag and the last [`Tag::Done`]
/// or [`Tag::Error`] text (the native reference and the tests).
#[derive(Default, Debug)]
pub struct Recorder {
    /// Messages received, per tag number.
    pub counts: std::collections::BTreeMap<u32, usize>,
    /// The losses of [`Tag::Step`], in order.
    pub losses: Vec<f64>,
    /// The last [`Tag::Done`] JSON or [`Tag::Error`] text.
    pub last_text: String,
}

impl Sink for Recorder {
    fn emit(&mut self, tag: Tag, bytes: &[u8]) {
        *self.counts.entry(tag as u32).or_default() += 1;
        match tag {
            Tag::Step => self.losses.push(f64::from_le_bytes(
                bytes[8..16].try_into().expect("16 bytes"),
            )),
            Tag::Done | Tag::Error => self.last_text = String::from_utf8_lossy(bytes).into(),
            _ => {}
        }
    }
}

/// The flows the lab offers on a data set, in menu order.
pub const TOY_FLOWS: [FlowName; 6] = [
    FlowName::Nice,
    FlowName::RealNvp,
    FlowName::Glow,
    FlowName::Maf,
    FlowName::Nsf,
    FlowName::NsfAr,
];

/// Whether the zoo builds `flow` for 2-D points.
pub fn models_points(flow: FlowName) -> bool {
    flow.default_sizes(DataShape::Vector(2)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse_over_the_defaults_and_bad_ones_are_named() {
        let config = LabConfig::parse("data=pinwheel flow=maf steps=20 lr=0.01").unwrap();
        assert_eq!(config.data, LabData::Toy("pinwheel".parse().unwrap()));
        assert_eq!(
            (config.flow, config.steps, config.lr),
            (FlowName::Maf, 20, 0.01)
        );
        assert_eq!(config.hidden, LabConfig::default().hidden);
        for (text, says) in [
            ("steps=0", "steps must be at least 1"),
            ("hidden=200000", "hidden must be at most 4096 in the lab"),
            ("steps=ten", "steps: \"ten\" is not a whole number"),
            ("lr=-1", "lr: \"-1\" is not a positive number"),
            ("colour=red", "unknown setting \"colour\""),
            ("data=spiral", "neither a data set"),
            ("data=ring flow=realnvp", "only iaf fits one"),
            ("data=moons flow=iaf", "iaf learns an energy"),
            ("flow=realnvp-image", "models images"),
            ("steps", "is not key=value"),
        ] {
            let error = LabConfig::parse(text).unwrap_err();
            assert!(error.contains(says), "{text}: {error}");
        }
    }

    #[test]
    fn a_run_streams_steps_and_frames_and_the_click_panel_agrees_with_finite_differences() {
        let config = LabConfig::parse("steps=20 every=10 layers=2 hidden=8 points=50").unwrap();
        let mut recorder = Recorder::default();
        let outcome = train(&config, &mut recorder).unwrap();
        assert_eq!(recorder.losses.len(), 20);
        // Two checks (steps 10 and 20), each a whole frame with 3 stages.
        assert_eq!(recorder.counts[&(Tag::FrameBegin as u32)], 2);
        assert_eq!(recorder.counts[&(Tag::FrameEnd as u32)], 2);
        assert_eq!(recorder.counts[&(Tag::StagePoints as u32)], 2 * 3);
        assert_eq!(recorder.counts[&(Tag::Data as u32)], 1);
        assert!(
            recorder.last_text.contains("\"steps\":20"),
            "{}",
            recorder.last_text
        );
        let summary = &outcome.summary;
        assert!(summary.test_nll.unwrap().is_finite());
        assert_eq!(summary.checkpoint_fnv, fnv1a64(&outcome.checkpoint));
        let check = log_det_at(&outcome.checkpoint, [0.3, -0.2]).unwrap();
        assert!(
            (check.formula - check.finite_difference).abs() < 1e-6,
            "{check:?}"
        );
        // The same seed gives the same bytes.
        let again = train(&config, &mut Recorder::default()).unwrap();
        assert_eq!(again.checkpoint, outcome.checkpoint);
    }

    #[test]
    fn a_bad_checkpoint_is_an_error_not_a_panic() {
        let error = log_det_at(b"not a checkpoint", [0.0, 0.0]).unwrap_err();
        assert!(error.contains("the lab's model"), "{error}");
    }
}
