//! Checkpoints: a trained [`FlowModel`] in one self-describing file, and
//! back, bit for bit.
//!
//! A file holds the model's prior and its whole architecture as a
//! [`LayerSpec`] tree (preprocessing layers such as `Logit` or `Standardize`
//! included), every parameter and buffer tensor by name with its dtype and
//! shape, optionally Adam's state (to resume training) and
//! the record of the run ([`RunRecord`]: data, architecture name and sizes,
//! batch, seed, steps), and a 64-bit FNV-1a checksum of
//! everything before it. Loading rebuilds the layers from the specs with
//! [`build_sequential`], so any architecture the crate can build loads
//! without code; the rebuilt model gives the same `log_prob` and, from the
//! same seed, the same samples, to the bit.
//!
//! Saving writes `NAME.tmp` in the same folder and renames it over `NAME`,
//! so a crash mid-save leaves the previous checkpoint whole.
//!
//! The byte layout, field by field: [`mod@format`] (docs/checkpoint-format.md).
//!
//! # Examples
//! ```
//! use flowzoo::flows::FlowModel;
//! use flowzoo::train::checkpoint::{load_model, save_model};
//! use rand::{rngs::StdRng, SeedableRng};
//! let dir = std::env::temp_dir().join(format!("flowzoo-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let path = dir.join("model.flowzoo");
//! let model = FlowModel::<f32>::realnvp(2, 4, 16, &mut StdRng::seed_from_u64(0));
//! save_model(&path, &model).unwrap();
//! let loaded = load_model::<f32>(&path).unwrap();
//! let x = model.sample(3, 1.0, &mut StdRng::seed_from_u64(1));
//! assert_eq!(model.log_prob(&x).to_vec(), loaded.log_prob(&x).to_vec());
//! # std::fs::remove_dir_all(&dir).unwrap();
//! ```

use super::codec::{
    finished, get_fields, get_spec, get_tensor, get_tensors, put_f64, put_fields, put_spec,
    put_str, put_tensor, put_tensors, put_u32, put_u64, required, section, split_sections, Reader,
    ARCH, BUFF, FOOTER_LEN, META, OPTM, PARA,
};
pub use super::codec::{fnv1a64, FORMAT_VERSION, MAGIC, MAX_SPEC_DEPTH};
use super::record::RunRecord;
use crate::error::CheckpointError;
use crate::flows::prior::Prior;
use crate::flows::registry::build_sequential;
use crate::flows::spec::{check_network, size, sizes, with_element_budget, LayerSpec, SpecValue};
use crate::flows::spline::SplineDirection;
use crate::flows::{ContextEmbedding, FlowError};
use crate::flows::{Flow, FlowModel};
pub use crate::nn::AdamState;
use crate::tensor::{Element, Tensor};
use byteorder::{ByteOrder, LittleEndian};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The checkpoint format, versions 1 and 2: the page docs/checkpoint-format.md.
#[doc = include_str!("../../docs/checkpoint-format.md")]
pub mod format {}

/// The file extension the command-line tool uses (`model.flowzoo`).
pub const EXTENSION: &str = "flowzoo";

/// Everything a checkpoint file holds.
pub struct Checkpoint<T: Element> {
    /// The model, rebuilt with its parameters and buffers.
    pub model: FlowModel<T>,
    /// Adam's state, if it was saved (for `--resume`).
    pub optimizer: Option<AdamState<T>>,
    /// The record of the run that wrote it, if any (`flowzoo train` stores
    /// one; a model saved on its own has none).
    pub record: Option<RunRecord>,
}

impl<T: Element> Checkpoint<T> {
    /// A checkpoint of `model` alone.
    pub fn new(model: FlowModel<T>) -> Self {
        Checkpoint {
            model,
            optimizer: None,
            record: None,
        }
    }

    /// Writes the checkpoint to `path` (see [`save`]).
    ///
    /// # Errors
    /// As [`save`].
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), CheckpointError> {
        save(
            path,
            &self.model,
            self.optimizer.as_ref(),
            self.record.as_ref(),
        )
    }

    /// Reads a checkpoint from `path`.
    ///
    /// # Errors
    /// [`CheckpointError::Io`] if the file cannot be read; otherwise as
    /// [`Checkpoint::from_bytes`].
    pub fn load(path: impl AsRef<Path>) -> Result<Self, CheckpointError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| CheckpointError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Checkpoint::from_bytes(&bytes, path)
    }

    /// Parses a checkpoint held in memory; `path` names it in errors.
    /// Tensors stored in another dtype than `T` are converted (f32 → f64
    /// exactly, f64 → f32 rounded to nearest).
    ///
    /// # Errors
    /// In the order they are checked, each naming `path` and an offset or field:
    /// - [`CheckpointError::BadMagic`]: the file does not start with [`MAGIC`];
    /// - [`CheckpointError::UnsupportedVersion`]: a version above [`FORMAT_VERSION`];
    /// - [`CheckpointError::Truncated`]: shorter than its header announces;
    /// - [`CheckpointError::Malformed`]: longer than announced, or a record no
    ///   writer produces (unknown tag, bad UTF-8, impossible count);
    /// - [`CheckpointError::ChecksumMismatch`]: the bytes were changed;
    /// - [`CheckpointError::Layer`]: the architecture cannot be built (an
    ///   unknown layer kind, a bad field, naming the layer's position);
    /// - [`CheckpointError::BadRecord`]: the run record holds an unknown or
    ///   bad field;
    /// - [`CheckpointError::ArchitectureMismatch`]: a parameter, buffer or
    ///   optimiser moment is missing, left over, or of another shape.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self, CheckpointError> {
        read_checkpoint(bytes, path).map_err(|e| e.in_file(path))
    }

    /// The file's bytes (see docs/checkpoint-format.md).
    ///
    /// # Errors
    /// As [`to_bytes`].
    pub fn to_bytes(&self) -> Result<Vec<u8>, CheckpointError> {
        to_bytes(&self.model, self.optimizer.as_ref(), self.record.as_ref())
    }
}

/// Saves `model` alone to `path` (see [`save`]).
///
/// # Errors
/// As [`save`].
pub fn save_model<T: Element>(
    path: impl AsRef<Path>,
    model: &FlowModel<T>,
) -> Result<(), CheckpointError> {
    save(path, model, None, None)
}

/// Loads the model of the checkpoint at `path`, dropping the optimiser
/// state and the run record.
///
/// Without a file system (`wasm32-unknown-unknown` in a web page, or bytes
/// compiled in with `include_bytes!`), get the bytes yourself and parse
/// them with [`Checkpoint::from_bytes`]; the path only names them in errors:
///
/// ```
/// use flowzoo::flows::FlowModel;
/// use flowzoo::train::checkpoint::{to_bytes, Checkpoint};
/// use rand::SeedableRng;
/// use std::path::Path;
///
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let model = FlowModel::<f32>::realnvp(2, 2, 16, &mut rng);
/// let bytes = to_bytes(&model, None, None)?; // or fetched, or include_bytes!
/// let loaded = Checkpoint::<f32>::from_bytes(&bytes, Path::new("model.flowzoo"))?.model;
/// let x = flowzoo::tensor::Tensor::from_vec(vec![0.5f32, -0.25], &[1, 2]);
/// assert_eq!(loaded.log_prob(&x).to_vec(), model.log_prob(&x).to_vec());
/// # Ok::<(), flowzoo::error::CheckpointError>(())
/// ```
///
/// # Errors
/// As [`Checkpoint::load`].
pub fn load_model<T: Element>(path: impl AsRef<Path>) -> Result<FlowModel<T>, CheckpointError> {
    Checkpoint::load(path).map(|c| c.model)
}

/// `path` with `.tmp` appended: where [`save`] writes before renaming.
pub fn temporary_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

/// Writes a checkpoint of `model` (with `optimizer` state and the run's `record`
/// if given) to `path`: the bytes go to `path.tmp`, are flushed to disk,
/// and the temporary file is renamed over `path`, so a crash at any moment
/// leaves either the old checkpoint or the new one, whole.
///
/// # Errors
/// [`CheckpointError::NotSaveable`] if a layer has no spec (nothing is
/// written); [`CheckpointError::Io`] naming the file that could not be
/// written or renamed.
pub fn save<T: Element>(
    path: impl AsRef<Path>,
    model: &FlowModel<T>,
    optimizer: Option<&AdamState<T>>,
    record: Option<&RunRecord>,
) -> Result<(), CheckpointError> {
    let path = path.as_ref();
    let bytes = to_bytes(model, optimizer, record)?;
    let tmp = temporary_path(path);
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| CheckpointError::Io { path: p, source }
    };
    {
        // The file is closed at the end of this block, before the rename.
        let mut file = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        file.write_all(&bytes).map_err(io(&tmp))?;
        // Why sync before rename: otherwise the rename can reach the disk before
        // the data, and a power cut leaves an empty file under the real name.
        file.sync_all().map_err(io(&tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// The format version a flow with this spec is written as: 2 if a spline
/// layer in it applies the spline data to noise, which a version 1 reader
/// would load backwards without an error (it does not know the
/// `direction` field), 1 otherwise.
fn version_for(spec: &LayerSpec) -> u32 {
    let data_to_noise = matches!(
        spec.get("direction"),
        Some(SpecValue::Str(d)) if d == SplineDirection::DataToNoise.name()
    );
    if data_to_noise {
        return 2;
    }
    spec.children.iter().map(version_for).max().unwrap_or(1)
}

/// The bytes of a checkpoint of `model` (see docs/checkpoint-format.md): version 1, or 2 when a spline
/// layer applies the spline data to noise.
///
/// # Errors
/// [`CheckpointError::NotSaveable`] naming the first layer without a spec.
pub fn to_bytes<T: Element>(
    model: &FlowModel<T>,
    optimizer: Option<&AdamState<T>>,
    record: Option<&RunRecord>,
) -> Result<Vec<u8>, CheckpointError> {
    let flow_spec = model
        .flow
        .to_spec()
        .ok_or_else(|| CheckpointError::NotSaveable {
            layer: first_without_spec(&model.flow.layers),
        })?;
    let mut out = Vec::new();
    out.extend_from_slice(&MAGIC);
    put_u32(&mut out, version_for(&flow_spec));
    put_u64(&mut out, 0); // the file length, patched below

    section(&mut out, ARCH, |s| {
        put_spec(s, &model.prior.to_spec());
        put_spec(s, &flow_spec);
        // A third spec only for a context embedding, so every other model's
        // file is the one it always was.
        if let Some(embedding) = model.embedding() {
            put_spec(s, &embedding_spec(&embedding));
        }
    });
    let params: Vec<(String, Tensor<T>)> = model
        .params()
        .iter()
        .map(|p| (p.name.clone(), p.value.clone()))
        .collect();
    section(&mut out, PARA, |s| put_tensors(s, &params));
    section(&mut out, BUFF, |s| put_tensors(s, &model.flow.buffers()));
    if let Some(adam) = optimizer {
        section(&mut out, OPTM, |s| {
            put_str(s, "Adam");
            for v in [adam.lr, adam.beta1, adam.beta2, adam.eps] {
                put_f64(s, v);
            }
            put_u64(s, adam.step);
            put_u64(s, adam.moments.len() as u64);
            let names = params
                .iter()
                .map(|(n, _)| n.as_str())
                .chain(std::iter::repeat(""));
            for ([m, v], name) in adam.moments.iter().zip(names) {
                put_tensor(s, &format!("{name}.m"), m);
                put_tensor(s, &format!("{name}.v"), v);
            }
        });
    }
    if let Some(record) = record {
        section(&mut out, META, |s| put_fields(s, &record.to_fields()));
    }
    let total = (out.len() + FOOTER_LEN) as u64;
    LittleEndian::write_u64(&mut out[12..20], total);
    let checksum = fnv1a64(&out);
    put_u64(&mut out, checksum);
    Ok(out)
}

/// "layer {i} ({name})" of the first layer whose spec is `None`, searched
/// one level deep.
fn first_without_spec<T: Element>(layers: &[Box<dyn Flow<T>>]) -> String {
    layers
        .iter()
        .enumerate()
        .find(|(_, l)| l.to_spec().is_none())
        .map(|(i, l)| format!("{i} ({})", l.name()))
        .unwrap_or_else(|| "<unknown>".into())
}

/// The spec of a context embedding: kind `ContextEmbedding`, fields
/// `context_dim`, `hidden`, `out_dim`.
fn embedding_spec<T: Element>(embedding: &ContextEmbedding<T>) -> crate::flows::spec::LayerSpec {
    crate::flows::spec::LayerSpec::new("ContextEmbedding")
        .with("context_dim", embedding.context_dim())
        .with("hidden", embedding.hidden())
        .with("out_dim", embedding.out_dim())
}

/// The embedding [`embedding_spec`] wrote, with placeholder parameters.
fn embedding_from_spec<T: Element>(
    spec: &crate::flows::spec::LayerSpec,
) -> Result<ContextEmbedding<T>, FlowError> {
    if spec.kind != "ContextEmbedding" {
        return Err(FlowError::UnknownKind {
            at: Default::default(),
            kind: spec.kind.clone(),
        });
    }
    let context_dim = size(spec, "context_dim")?;
    let hidden = sizes(spec, "hidden")?;
    let out_dim = size(spec, "out_dim")?;
    let widths: Vec<usize> = std::iter::once(context_dim)
        .chain(hidden.iter().copied())
        .chain(std::iter::once(out_dim))
        .collect();
    check_network(spec, "hidden", &widths, 1)?;
    // Placeholder values; any seed does.
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(0);
    Ok(ContextEmbedding::new(
        context_dim,
        &hidden,
        out_dim,
        &mut rng,
    ))
}

fn mismatch(what: String) -> CheckpointError {
    CheckpointError::ArchitectureMismatch {
        path: PathBuf::new(),
        what,
    }
}

fn read_checkpoint<T: Element>(
    bytes: &[u8],
    _path: &Path,
) -> Result<Checkpoint<T>, CheckpointError> {
    let sections = split_sections(bytes)?;

    let mut arch = required(sections.arch, "ARCH")?;
    let prior = get_spec(&mut arch, 0)?;
    let flow = get_spec(&mut arch, 0)?;
    let embedding = match arch.remaining() {
        0 => None,
        _ => Some(get_spec(&mut arch, 0)?),
    };
    finished(&arch, "ARCH")?;
    let mut para = required(sections.para, "PARA")?;
    let params: Vec<(String, Tensor<T>)> = get_tensors(&mut para, "parameter")?;
    finished(&para, "PARA")?;
    let mut buff = required(sections.buff, "BUFF")?;
    let buffers: Vec<(String, Tensor<T>)> = get_tensors(&mut buff, "buffer")?;
    finished(&buff, "BUFF")?;

    let prior = Prior::from_spec(&prior)?;
    if flow.kind != "Sequential" {
        return Err(flow
            .error("kind", "the model's flow must be a Sequential")
            .into());
    }
    // The layers may allocate a few times what the file stores (masks as
    // large as weights, the fixed matrices of an LU convolution), never more:
    // a spec that claims more is refused before it allocates.
    let stored: usize = params.iter().chain(&buffers).map(|(_, t)| t.numel()).sum();
    let budget = stored.saturating_mul(4).saturating_add(1 << 20);
    let flow = with_element_budget(budget, || build_sequential(&flow))?;
    let mut model = FlowModel::with_prior(prior, flow);
    if let Some(spec) = embedding {
        let embedding = embedding_from_spec(&spec)?;
        if embedding.out_dim() != model.conditioner_dim() {
            return Err(spec
                .error(
                    "out_dim",
                    format!(
                        "the embedding gives {} features, the layers and base read {}",
                        embedding.out_dim(),
                        model.conditioner_dim()
                    ),
                )
                .into());
        }
        model = model.with_embedding(embedding);
    }
    fill_params(&mut model, params)?;
    model.flow.set_buffers(buffers)?;

    let optimizer = match sections.optm {
        Some(mut r) => {
            let state = get_adam(&mut r, &model)?;
            finished(&r, "OPTM")?;
            Some(state)
        }
        None => None,
    };
    let record = match sections.meta {
        Some(mut r) => {
            let fields = get_fields(&mut r, "the run record")?;
            finished(&r, "META")?;
            Some(RunRecord::from_fields(&fields)?)
        }
        None => None,
    };
    Ok(Checkpoint {
        model,
        optimizer,
        record,
    })
}

/// Sets every parameter of `model` from the stored tensor of the same name.
fn fill_params<T: Element>(
    model: &mut FlowModel<T>,
    stored: Vec<(String, Tensor<T>)>,
) -> Result<(), CheckpointError> {
    let mut by_name: HashMap<String, Tensor<T>> = HashMap::with_capacity(stored.len());
    for (name, t) in stored {
        if by_name.insert(name.clone(), t).is_some() {
            return Err(mismatch(format!("parameter `{name}` is stored twice")));
        }
    }
    for p in model.params_mut() {
        let t = by_name.remove(&p.name).ok_or_else(|| {
            mismatch(format!(
                "the architecture has parameter `{}` of shape {:?}, the file does not store it",
                p.name,
                p.value.shape()
            ))
        })?;
        if t.shape() != p.value.shape() {
            return Err(mismatch(format!(
                "parameter `{}`: the architecture needs shape {:?}, the file stores {:?}",
                p.name,
                p.value.shape(),
                t.shape()
            )));
        }
        p.value = t;
    }
    let mut left: Vec<&String> = by_name.keys().collect();
    left.sort();
    match left.first() {
        Some(name) => Err(mismatch(format!(
            "the file stores parameter `{name}`, which the architecture does not have"
        ))),
        None => Ok(()),
    }
}

fn get_adam<T: Element>(
    r: &mut Reader,
    model: &FlowModel<T>,
) -> Result<AdamState<T>, CheckpointError> {
    let at = r.offset();
    let kind = r.str("the optimiser kind")?;
    if kind != "Adam" {
        return Err(r.malformed(
            at,
            format!("unknown optimiser \"{kind}\" (this build knows Adam)"),
        ));
    }
    let lr = r.f64("Adam's lr")?;
    let beta1 = r.f64("Adam's beta1")?;
    let beta2 = r.f64("Adam's beta2")?;
    let eps = r.f64("Adam's eps")?;
    let step = r.u64("Adam's step")?;
    let n = r.count(true, 12, "Adam's moment count")?;
    let params = model.params();
    if n > params.len() {
        return Err(mismatch(format!(
            "Adam holds moments for {n} parameters, the model has {}",
            params.len()
        )));
    }
    let mut moments = Vec::with_capacity(n);
    for p in &params[..n] {
        let (_, m) = get_tensor::<T>(r, "Adam moment")?;
        let (_, v) = get_tensor::<T>(r, "Adam moment")?;
        for (which, t) in [("m", &m), ("v", &v)] {
            if t.shape() != p.value.shape() {
                return Err(mismatch(format!(
                    "Adam's {which} of `{}` has shape {:?}, the parameter {:?}",
                    p.name,
                    t.shape(),
                    p.value.shape()
                )));
            }
        }
        moments.push([m, v]);
    }
    Ok(AdamState {
        lr,
        beta1,
        beta2,
        eps,
        step,
        moments,
    })
}
