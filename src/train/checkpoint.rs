//! Checkpoints: a trained [`FlowModel`] in one self-describing file, and
//! back, bit for bit.
//!
//! A file holds the model's prior and its whole architecture as a
//! [`LayerSpec`] tree (preprocessing layers such as `Logit` or `Standardize`
//! included), every parameter and buffer tensor by name with its dtype and
//! shape, optionally Adam's state (to resume training) and free-form
//! metadata (the dataset, the image shape), and a 64-bit FNV-1a checksum of
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

use crate::error::CheckpointError;
use crate::flows::prior::{Logistic, Prior, StandardNormal};
use crate::flows::spec::{build_sequential, with_element_budget, LayerSpec, SpecValue, MAX_SIZE};
use crate::flows::{Flow, FlowModel};
use crate::nn::Adam;
use crate::tensor::{Element, Tensor};
use byteorder::{ByteOrder, LittleEndian, WriteBytesExt};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The checkpoint format, version 1: the page docs/checkpoint-format.md.
#[doc = include_str!("../../docs/checkpoint-format.md")]
pub mod format {}

/// The first eight bytes of every checkpoint: `FLOWZOO` and a NUL.
pub const MAGIC: [u8; 8] = *b"FLOWZOO\0";

/// The format version this build writes, and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;

/// The file extension the command-line tool uses (`model.flowzoo`).
pub const EXTENSION: &str = "flowzoo";

/// Bytes before the first section: magic, version, file length.
const HEADER_LEN: usize = 8 + 4 + 8;

/// Bytes after the last section: the checksum.
const FOOTER_LEN: usize = 8;

/// Deepest nesting of layer specs a file may hold (a guard for the parser's
/// recursion; real models nest two or three levels).
pub const MAX_SPEC_DEPTH: usize = 64;

/// Largest number of dimensions of a stored tensor (the tensor's own limit).
const MAX_DIMS: usize = crate::tensor::MAX_DIMS;

/// The section tags, in the order they are written.
const ARCH: [u8; 4] = *b"ARCH";
const PARA: [u8; 4] = *b"PARA";
const BUFF: [u8; 4] = *b"BUFF";
const OPTM: [u8; 4] = *b"OPTM";
const META: [u8; 4] = *b"META";

/// Dtype codes of stored tensors.
const DTYPE_F32: u8 = 1;
const DTYPE_F64: u8 = 2;

/// Value tags of spec fields and metadata.
const TAG_INT: u8 = 0;
const TAG_FLOAT: u8 = 1;
const TAG_BOOL: u8 = 2;
const TAG_STR: u8 = 3;
const TAG_INTS: u8 = 4;
const TAG_FLOATS: u8 = 5;

/// The 64-bit FNV-1a hash of `bytes`, the checkpoint's checksum:
/// h ← 0xcbf29ce484222325; for each byte b: h ← (h ⊕ b) · 0x100000001b3 mod 2⁶⁴.
///
/// Every step is a bijection of h for a fixed byte, so two inputs of equal
/// length that differ in one byte always hash differently: any single
/// corrupted byte is caught; other damage slips through with probability
/// about 2⁻⁶⁴.
///
/// # Source
/// G. Fowler, L. C. Noll, K.-P. Vo, D. Eastlake, "The FNV Non-Cryptographic
/// Hash Algorithm", IETF draft-eastlake-fnv (FNV-1a, 64-bit parameters).
///
/// # Examples
/// ```
/// use flowzoo::train::checkpoint::fnv1a64;
/// assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
/// assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
/// ```
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes
        .iter()
        .fold(OFFSET_BASIS, |h, &b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}

/// Adam's state, saved so that `--resume` continues the same optimisation:
/// the hyperparameters, the step count t, and the moments (m, v) of every
/// parameter in [`FlowModel::params`] order.
#[derive(Clone, Debug)]
pub struct AdamState<T: Element> {
    /// Learning rate.
    pub lr: f64,
    /// Decay of the first moment.
    pub beta1: f64,
    /// Decay of the second moment.
    pub beta2: f64,
    /// Added to √v̂.
    pub eps: f64,
    /// Steps taken.
    pub step: u64,
    /// (m, v) per parameter, each of the parameter's shape; empty before the
    /// first step.
    pub moments: Vec<[Tensor<T>; 2]>,
}

impl<T: Element> AdamState<T> {
    /// A copy of `adam`'s state (the tensors are shared, not copied).
    pub fn of(adam: &Adam<T>) -> Self {
        AdamState {
            lr: adam.lr,
            beta1: adam.beta1,
            beta2: adam.beta2,
            eps: adam.eps,
            step: adam.steps(),
            moments: adam.moments().to_vec(),
        }
    }

    /// An Adam that continues from this state.
    pub fn to_adam(&self) -> Adam<T> {
        let mut adam = Adam::new(self.lr);
        adam.beta1 = self.beta1;
        adam.beta2 = self.beta2;
        adam.eps = self.eps;
        adam.restore(self.step, self.moments.clone());
        adam
    }
}

/// Everything a checkpoint file holds.
pub struct Checkpoint<T: Element> {
    /// The model, rebuilt with its parameters and buffers.
    pub model: FlowModel<T>,
    /// Adam's state, if it was saved (for `--resume`).
    pub optimizer: Option<AdamState<T>>,
    /// Free-form facts about the run, by name (the command-line tool stores
    /// `data`, `flow`, `image_shape`, `dequantize_levels`, `seed`).
    pub metadata: Vec<(String, SpecValue)>,
}

impl<T: Element> Checkpoint<T> {
    /// A checkpoint of `model` alone.
    pub fn new(model: FlowModel<T>) -> Self {
        Checkpoint {
            model,
            optimizer: None,
            metadata: Vec::new(),
        }
    }

    /// The metadata entry `name`, if present.
    pub fn meta(&self, name: &str) -> Option<&SpecValue> {
        self.metadata
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    /// Writes the checkpoint to `path` (see [`save`]).
    ///
    /// # Errors
    /// As [`save`].
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), CheckpointError> {
        save(path, &self.model, self.optimizer.as_ref(), &self.metadata)
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
    /// - [`CheckpointError::UnknownLayer`], [`CheckpointError::BadSpec`]: the
    ///   architecture cannot be built;
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
        to_bytes(&self.model, self.optimizer.as_ref(), &self.metadata)
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
    save(path, model, None, &[])
}

/// Loads the model of the checkpoint at `path`, dropping the optimiser
/// state and metadata.
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

/// Writes a checkpoint of `model` (with `optimizer` state and `metadata`
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
    metadata: &[(String, SpecValue)],
) -> Result<(), CheckpointError> {
    let path = path.as_ref();
    let bytes = to_bytes(model, optimizer, metadata)?;
    let tmp = temporary_path(path);
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| CheckpointError::Io { path: p, source }
    };
    let mut file = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    file.write_all(&bytes).map_err(io(&tmp))?;
    // Why sync before rename: otherwise the rename can reach the disk before
    // the data, and a power cut leaves an empty file under the real name.
    file.sync_all().map_err(io(&tmp))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// The bytes of a checkpoint of `model` (see docs/checkpoint-format.md).
///
/// # Errors
/// [`CheckpointError::NotSaveable`] naming the first layer without a spec.
pub fn to_bytes<T: Element>(
    model: &FlowModel<T>,
    optimizer: Option<&AdamState<T>>,
    metadata: &[(String, SpecValue)],
) -> Result<Vec<u8>, CheckpointError> {
    let flow_spec = model
        .flow
        .spec()
        .ok_or_else(|| CheckpointError::NotSaveable {
            layer: first_without_spec(&model.flow.layers),
        })?;
    let mut out = Vec::new();
    out.extend_from_slice(&MAGIC);
    put_u32(&mut out, FORMAT_VERSION);
    put_u64(&mut out, 0); // the file length, patched below

    section(&mut out, ARCH, |s| {
        put_spec(s, &prior_spec(&model.prior));
        put_spec(s, &flow_spec);
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
    if !metadata.is_empty() {
        section(&mut out, META, |s| put_fields(s, metadata));
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
        .find(|(_, l)| l.spec().is_none())
        .map(|(i, l)| format!("{i} ({})", l.name()))
        .unwrap_or_else(|| "<unknown>".into())
}

/// The spec of a prior: `StandardNormal { dim }` or `Logistic { dim }`.
pub fn prior_spec(prior: &Prior) -> LayerSpec {
    match prior {
        Prior::StandardNormal(p) => LayerSpec::new("StandardNormal").with("dim", p.dim),
        Prior::Logistic(p) => LayerSpec::new("Logistic").with("dim", p.dim),
    }
}

/// The prior a spec describes.
///
/// # Errors
/// [`CheckpointError::UnknownLayer`] for another kind,
/// [`CheckpointError::BadSpec`] for a bad `dim`.
pub fn build_prior(spec: &LayerSpec) -> Result<Prior, CheckpointError> {
    let dim = spec.usize("dim")?;
    if !(1..=MAX_SIZE).contains(&dim) {
        return Err(spec.error("dim", format!("{dim} is not a size in 1..={MAX_SIZE}")));
    }
    match spec.kind.as_str() {
        "StandardNormal" => Ok(StandardNormal::new(dim).into()),
        "Logistic" => Ok(Logistic::new(dim).into()),
        _ => Err(CheckpointError::UnknownLayer {
            path: PathBuf::new(),
            kind: spec.kind.clone(),
        }),
    }
}

// ---------------------------------------------------------------- writing

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.write_u32::<LittleEndian>(v)
        .expect("writing to a Vec cannot fail");
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.write_u64::<LittleEndian>(v)
        .expect("writing to a Vec cannot fail");
}

fn put_f64(out: &mut Vec<u8>, v: f64) {
    out.write_f64::<LittleEndian>(v)
        .expect("writing to a Vec cannot fail");
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_u32(out, s.len() as u32);
    out.extend_from_slice(s.as_bytes());
}

/// A section: its tag, its payload length (u64), its payload.
fn section(out: &mut Vec<u8>, tag: [u8; 4], payload: impl FnOnce(&mut Vec<u8>)) {
    out.extend_from_slice(&tag);
    let length_at = out.len();
    put_u64(out, 0);
    payload(out);
    let length = (out.len() - length_at - 8) as u64;
    LittleEndian::write_u64(&mut out[length_at..length_at + 8], length);
}

fn put_value(out: &mut Vec<u8>, value: &SpecValue) {
    match value {
        SpecValue::Int(v) => {
            out.push(TAG_INT);
            out.write_i64::<LittleEndian>(*v)
                .expect("writing to a Vec cannot fail");
        }
        SpecValue::Float(v) => {
            out.push(TAG_FLOAT);
            put_f64(out, *v);
        }
        SpecValue::Bool(v) => {
            out.push(TAG_BOOL);
            out.push(u8::from(*v));
        }
        SpecValue::Str(v) => {
            out.push(TAG_STR);
            put_str(out, v);
        }
        SpecValue::Ints(v) => {
            out.push(TAG_INTS);
            put_u64(out, v.len() as u64);
            for &i in v {
                out.write_i64::<LittleEndian>(i)
                    .expect("writing to a Vec cannot fail");
            }
        }
        SpecValue::Floats(v) => {
            out.push(TAG_FLOATS);
            put_u64(out, v.len() as u64);
            for &x in v {
                put_f64(out, x);
            }
        }
    }
}

fn put_fields(out: &mut Vec<u8>, fields: &[(String, SpecValue)]) {
    put_u32(out, fields.len() as u32);
    for (name, value) in fields {
        put_str(out, name);
        put_value(out, value);
    }
}

fn put_spec(out: &mut Vec<u8>, spec: &LayerSpec) {
    put_str(out, &spec.kind);
    put_fields(out, &spec.fields);
    put_u32(out, spec.children.len() as u32);
    for child in &spec.children {
        put_spec(out, child);
    }
}

fn put_tensor<T: Element>(out: &mut Vec<u8>, name: &str, t: &Tensor<T>) {
    put_str(out, name);
    let is_f32 = T::NAME == "f32";
    out.push(if is_f32 { DTYPE_F32 } else { DTYPE_F64 });
    out.push(t.shape().len() as u8);
    for &d in t.shape() {
        put_u64(out, d as u64);
    }
    for v in t.to_f64_vec() {
        // Exact: a value that came from an f32 converts back to it.
        if is_f32 {
            out.write_f32::<LittleEndian>(v as f32)
                .expect("writing to a Vec cannot fail");
        } else {
            put_f64(out, v);
        }
    }
}

fn put_tensors<T: Element>(out: &mut Vec<u8>, tensors: &[(String, Tensor<T>)]) {
    put_u64(out, tensors.len() as u64);
    for (name, t) in tensors {
        put_tensor(out, name, t);
    }
}

// ---------------------------------------------------------------- reading

/// A cursor over the file's bytes that turns every short read into
/// [`CheckpointError::Truncated`] at the offset where the data ran out.
struct Reader<'a> {
    bytes: &'a [u8],
    /// Offset of `bytes[0]` in the file.
    base: usize,
    pos: usize,
}

impl<'a> Reader<'a> {
    fn offset(&self) -> u64 {
        (self.base + self.pos) as u64
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn malformed(&self, at: u64, what: impl Into<String>) -> CheckpointError {
        CheckpointError::Malformed {
            path: PathBuf::new(),
            offset: at,
            what: what.into(),
        }
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], CheckpointError> {
        if n > self.remaining() {
            return Err(CheckpointError::Truncated {
                path: PathBuf::new(),
                offset: (self.base + self.bytes.len()) as u64,
                what: format!("{what} ({n} bytes from offset {})", self.offset()),
            });
        }
        let slice = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(slice)
    }

    fn u8(&mut self, what: &str) -> Result<u8, CheckpointError> {
        Ok(self.take(1, what)?[0])
    }

    fn u32(&mut self, what: &str) -> Result<u32, CheckpointError> {
        Ok(LittleEndian::read_u32(self.take(4, what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64, CheckpointError> {
        Ok(LittleEndian::read_u64(self.take(8, what)?))
    }

    fn i64(&mut self, what: &str) -> Result<i64, CheckpointError> {
        Ok(LittleEndian::read_i64(self.take(8, what)?))
    }

    fn f64(&mut self, what: &str) -> Result<f64, CheckpointError> {
        Ok(LittleEndian::read_f64(self.take(8, what)?))
    }

    fn str(&mut self, what: &str) -> Result<String, CheckpointError> {
        let at = self.offset();
        let len = self.u32(what)? as usize;
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| self.malformed(at, format!("{what} is not UTF-8 text")))
    }

    /// A count of records of at least `min_size` bytes each, checked against
    /// the bytes left so that no count allocates beyond the file.
    fn count(&mut self, wide: bool, min_size: usize, what: &str) -> Result<usize, CheckpointError> {
        let at = self.offset();
        let n = if wide {
            self.u64(what)?
        } else {
            u64::from(self.u32(what)?)
        };
        match usize::try_from(n) {
            Ok(n) if n.saturating_mul(min_size) <= self.remaining() => Ok(n),
            _ => Err(self.malformed(
                at,
                format!(
                    "{what}: {n} records cannot fit in the {} bytes left",
                    self.remaining()
                ),
            )),
        }
    }
}

fn get_value(r: &mut Reader, what: &str) -> Result<SpecValue, CheckpointError> {
    let at = r.offset();
    Ok(match r.u8(what)? {
        TAG_INT => SpecValue::Int(r.i64(what)?),
        TAG_FLOAT => SpecValue::Float(r.f64(what)?),
        TAG_BOOL => match r.u8(what)? {
            0 => SpecValue::Bool(false),
            1 => SpecValue::Bool(true),
            b => return Err(r.malformed(at + 1, format!("{what}: bool byte {b} is not 0 or 1"))),
        },
        TAG_STR => SpecValue::Str(r.str(what)?),
        TAG_INTS => {
            let n = r.count(true, 8, what)?;
            SpecValue::Ints((0..n).map(|_| r.i64(what)).collect::<Result<_, _>>()?)
        }
        TAG_FLOATS => {
            let n = r.count(true, 8, what)?;
            SpecValue::Floats((0..n).map(|_| r.f64(what)).collect::<Result<_, _>>()?)
        }
        tag => return Err(r.malformed(at, format!("{what}: unknown value tag {tag}"))),
    })
}

fn get_fields(r: &mut Reader, owner: &str) -> Result<Vec<(String, SpecValue)>, CheckpointError> {
    // A field is at least a 4-byte name length, a tag and a 1-byte value.
    let n = r.count(false, 6, &format!("the field count of {owner}"))?;
    (0..n)
        .map(|_| {
            let name = r.str(&format!("a field name of {owner}"))?;
            let value = get_value(r, &format!("field `{name}` of {owner}"))?;
            Ok((name, value))
        })
        .collect()
}

fn get_spec(r: &mut Reader, depth: usize) -> Result<LayerSpec, CheckpointError> {
    if depth > MAX_SPEC_DEPTH {
        return Err(r.malformed(
            r.offset(),
            format!("layer specs nest deeper than {MAX_SPEC_DEPTH} levels"),
        ));
    }
    let kind = r.str("a layer kind")?;
    let fields = get_fields(r, &format!("layer {kind}"))?;
    // A child is at least a kind length and two counts.
    let n = r.count(false, 12, &format!("the child count of layer {kind}"))?;
    let children = (0..n)
        .map(|_| get_spec(r, depth + 1))
        .collect::<Result<_, _>>()?;
    Ok(LayerSpec {
        kind,
        fields,
        children,
    })
}

fn get_tensor<T: Element>(
    r: &mut Reader,
    what: &str,
) -> Result<(String, Tensor<T>), CheckpointError> {
    let name = r.str(&format!("the name of a {what}"))?;
    let label = format!("{what} `{name}`");
    let at = r.offset();
    let size = match r.u8(&label)? {
        DTYPE_F32 => 4,
        DTYPE_F64 => 8,
        d => return Err(r.malformed(at, format!("{label}: unknown dtype code {d}"))),
    };
    let at = r.offset();
    let ndim = r.u8(&label)? as usize;
    if ndim > MAX_DIMS {
        return Err(r.malformed(
            at,
            format!("{label}: {ndim} dimensions (at most {MAX_DIMS})"),
        ));
    }
    let mut shape = Vec::with_capacity(ndim);
    for _ in 0..ndim {
        shape.push(r.u64(&label)?);
    }
    let numel = shape
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .and_then(|n| usize::try_from(n).ok())
        .filter(|n| n.saturating_mul(size) <= r.remaining());
    let Some(numel) = numel else {
        return Err(CheckpointError::Truncated {
            path: PathBuf::new(),
            offset: (r.base + r.bytes.len()) as u64,
            what: format!("{label} of shape {shape:?}, whose data goes past the section's end"),
        });
    };
    let data = r.take(numel * size, &label)?;
    let values: Vec<T> = if size == 4 {
        data.chunks_exact(4)
            .map(|b| T::from_f64(f64::from(LittleEndian::read_f32(b))))
            .collect()
    } else {
        data.chunks_exact(8)
            .map(|b| T::from_f64(LittleEndian::read_f64(b)))
            .collect()
    };
    let shape: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
    Ok((name, Tensor::from_vec(values, &shape)))
}

fn get_tensors<T: Element>(
    r: &mut Reader,
    what: &str,
) -> Result<Vec<(String, Tensor<T>)>, CheckpointError> {
    // A tensor record is at least a name length, a dtype and a rank.
    let n = r.count(true, 6, &format!("the {what} count"))?;
    (0..n).map(|_| get_tensor(r, what)).collect()
}

/// The raw sections of a file whose header and checksum have been checked.
#[derive(Default)]
struct Sections<'a> {
    arch: Option<Reader<'a>>,
    para: Option<Reader<'a>>,
    buff: Option<Reader<'a>>,
    optm: Option<Reader<'a>>,
    meta: Option<Reader<'a>>,
}

/// Checks magic, version, length and checksum, and splits the sections.
fn split_sections<'a>(bytes: &'a [u8]) -> Result<Sections<'a>, CheckpointError> {
    let prefix = &bytes[..bytes.len().min(MAGIC.len())];
    if prefix != &MAGIC[..prefix.len()] {
        return Err(CheckpointError::BadMagic {
            path: PathBuf::new(),
            found: prefix.to_vec(),
        });
    }
    let mut header = Reader {
        bytes,
        base: 0,
        pos: 0,
    };
    header.take(MAGIC.len(), "the magic number")?;
    let version = header.u32("the format version")?;
    if version == 0 || version > FORMAT_VERSION {
        return Err(CheckpointError::UnsupportedVersion {
            path: PathBuf::new(),
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    let declared = header.u64("the file length")?;
    let actual = bytes.len() as u64;
    if actual < declared {
        return Err(CheckpointError::Truncated {
            path: PathBuf::new(),
            offset: actual,
            what: format!("the {declared} bytes the header announces"),
        });
    }
    if actual > declared {
        return Err(CheckpointError::Malformed {
            path: PathBuf::new(),
            offset: declared,
            what: format!(
                "{} bytes after the end the header announces ({declared} bytes)",
                actual - declared
            ),
        });
    }
    if bytes.len() < HEADER_LEN + FOOTER_LEN {
        return Err(CheckpointError::Malformed {
            path: PathBuf::new(),
            offset: 12,
            what: format!("a file length of {declared} bytes leaves no room for the checksum"),
        });
    }
    let end = bytes.len() - FOOTER_LEN;
    let expected = LittleEndian::read_u64(&bytes[end..]);
    let found = fnv1a64(&bytes[..end]);
    if expected != found {
        return Err(CheckpointError::ChecksumMismatch {
            path: PathBuf::new(),
            offset: end as u64,
            expected,
            found,
        });
    }
    let mut body = Reader {
        bytes: &bytes[..end],
        base: 0,
        pos: HEADER_LEN,
    };
    let mut sections = Sections::default();
    while body.remaining() > 0 {
        let at = body.offset();
        let tag: [u8; 4] = body
            .take(4, "a section tag")?
            .try_into()
            .expect("took 4 bytes");
        let length = body.u64("a section length")?;
        let length = usize::try_from(length)
            .ok()
            .filter(|&l| l <= body.remaining())
            .ok_or_else(|| CheckpointError::Truncated {
                path: PathBuf::new(),
                offset: end as u64,
                what: format!(
                    "section {} of {length} bytes",
                    String::from_utf8_lossy(&tag)
                ),
            })?;
        let start = body.pos;
        let reader = Reader {
            bytes: &bytes[start..start + length],
            base: start,
            pos: 0,
        };
        body.pos += length;
        let slot = match tag {
            ARCH => &mut sections.arch,
            PARA => &mut sections.para,
            BUFF => &mut sections.buff,
            OPTM => &mut sections.optm,
            META => &mut sections.meta,
            // Why skip, not fail: a later minor revision may add sections
            // this reader does not need.
            _ => continue,
        };
        if slot.is_some() {
            return Err(body.malformed(
                at,
                format!("section {} appears twice", String::from_utf8_lossy(&tag)),
            ));
        }
        *slot = Some(reader);
    }
    Ok(sections)
}

/// Fails unless the section was read to its last byte.
fn finished(r: &Reader, section: &str) -> Result<(), CheckpointError> {
    if r.remaining() == 0 {
        Ok(())
    } else {
        Err(r.malformed(
            r.offset(),
            format!(
                "{} unread bytes at the end of section {section}",
                r.remaining()
            ),
        ))
    }
}

fn required<'a>(section: Option<Reader<'a>>, tag: &str) -> Result<Reader<'a>, CheckpointError> {
    section.ok_or_else(|| CheckpointError::Malformed {
        path: PathBuf::new(),
        offset: HEADER_LEN as u64,
        what: format!("the required section {tag} is missing"),
    })
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
    finished(&arch, "ARCH")?;
    let mut para = required(sections.para, "PARA")?;
    let params: Vec<(String, Tensor<T>)> = get_tensors(&mut para, "parameter")?;
    finished(&para, "PARA")?;
    let mut buff = required(sections.buff, "BUFF")?;
    let buffers: Vec<(String, Tensor<T>)> = get_tensors(&mut buff, "buffer")?;
    finished(&buff, "BUFF")?;

    let prior = build_prior(&prior)?;
    if flow.kind != "Sequential" {
        return Err(CheckpointError::BadSpec {
            path: PathBuf::new(),
            layer: flow.kind.clone(),
            field: "kind".into(),
            what: "the model's flow must be a Sequential".into(),
        });
    }
    // The layers may allocate a few times what the file stores (masks as
    // large as weights, the fixed matrices of an LU convolution), never more:
    // a spec that claims more is refused before it allocates.
    let stored: usize = params.iter().chain(&buffers).map(|(_, t)| t.numel()).sum();
    let budget = stored.saturating_mul(4).saturating_add(1 << 20);
    let flow = with_element_budget(budget, || build_sequential(&flow))?;
    let mut model = FlowModel::with_prior(prior, flow);
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
    let metadata = match sections.meta {
        Some(mut r) => {
            let fields = get_fields(&mut r, "the metadata")?;
            finished(&r, "META")?;
            fields
        }
        None => Vec::new(),
    };
    Ok(Checkpoint {
        model,
        optimizer,
        metadata,
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
