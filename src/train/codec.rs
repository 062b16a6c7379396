//! The checkpoint's byte codec: the header, the checksum, the sections, and
//! the encoding of values, specs and tensors, little-endian throughout. Every
//! reader turns a short or impossible record into a typed error at its
//! offset. What the sections hold and how a model is rebuilt from them is
//! [`checkpoint`](super::checkpoint); the byte layout is
//! docs/checkpoint-format.md.

use crate::error::CheckpointError;
use crate::flows::spec::{LayerSpec, SpecValue};
use crate::tensor::{Element, Tensor};
use byteorder::{ByteOrder, LittleEndian, WriteBytesExt};
use std::path::PathBuf;

/// The first eight bytes of every checkpoint: `FLOWZOO` and a NUL.
pub const MAGIC: [u8; 8] = *b"FLOWZOO\0";

/// The newest format version this build reads and writes: 2. A file is
/// written as version 2 only when one of its spline layers applies the
/// spline data to noise (a meaning version 1 readers would miss: they
/// ignore the `direction` field and would load the layer backwards); every
/// other model is written as version 1, byte for byte as before
/// (docs/checkpoint-format.md, "Versioning").
pub const FORMAT_VERSION: u32 = 2;

/// Bytes before the first section: magic, version, file length.
pub(crate) const HEADER_LEN: usize = 8 + 4 + 8;

/// Bytes after the last section: the checksum.
pub(crate) const FOOTER_LEN: usize = 8;

/// Deepest nesting of layer specs a file may hold (a guard for the parser's
/// recursion; real models nest two or three levels).
pub const MAX_SPEC_DEPTH: usize = 64;

/// Largest number of dimensions of a stored tensor (the tensor's own limit).
pub(crate) const MAX_DIMS: usize = crate::tensor::MAX_DIMS;

/// The section tags, in the order they are written.
pub(crate) const ARCH: [u8; 4] = *b"ARCH";
pub(crate) const PARA: [u8; 4] = *b"PARA";
pub(crate) const BUFF: [u8; 4] = *b"BUFF";
pub(crate) const OPTM: [u8; 4] = *b"OPTM";
pub(crate) const META: [u8; 4] = *b"META";

/// Dtype codes of stored tensors.
pub(crate) const DTYPE_F32: u8 = 1;
pub(crate) const DTYPE_F64: u8 = 2;

/// Value tags of spec fields and metadata.
pub(crate) const TAG_INT: u8 = 0;
pub(crate) const TAG_FLOAT: u8 = 1;
pub(crate) const TAG_BOOL: u8 = 2;
pub(crate) const TAG_STR: u8 = 3;
pub(crate) const TAG_INTS: u8 = 4;
pub(crate) const TAG_FLOATS: u8 = 5;

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

// ---------------------------------------------------------------- writing

pub(crate) fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.write_u32::<LittleEndian>(v)
        .expect("writing to a Vec cannot fail");
}

pub(crate) fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.write_u64::<LittleEndian>(v)
        .expect("writing to a Vec cannot fail");
}

pub(crate) fn put_f64(out: &mut Vec<u8>, v: f64) {
    out.write_f64::<LittleEndian>(v)
        .expect("writing to a Vec cannot fail");
}

pub(crate) fn put_str(out: &mut Vec<u8>, s: &str) {
    put_u32(out, s.len() as u32);
    out.extend_from_slice(s.as_bytes());
}

/// A section: its tag, its payload length (u64), its payload.
pub(crate) fn section(out: &mut Vec<u8>, tag: [u8; 4], payload: impl FnOnce(&mut Vec<u8>)) {
    out.extend_from_slice(&tag);
    let length_at = out.len();
    put_u64(out, 0);
    payload(out);
    let length = (out.len() - length_at - 8) as u64;
    LittleEndian::write_u64(&mut out[length_at..length_at + 8], length);
}

pub(crate) fn put_value(out: &mut Vec<u8>, value: &SpecValue) {
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

pub(crate) fn put_fields(out: &mut Vec<u8>, fields: &[(String, SpecValue)]) {
    put_u32(out, fields.len() as u32);
    for (name, value) in fields {
        put_str(out, name);
        put_value(out, value);
    }
}

pub(crate) fn put_spec(out: &mut Vec<u8>, spec: &LayerSpec) {
    put_str(out, &spec.kind);
    put_fields(out, &spec.fields);
    put_u32(out, spec.children.len() as u32);
    for child in &spec.children {
        put_spec(out, child);
    }
}

pub(crate) fn put_tensor<T: Element>(out: &mut Vec<u8>, name: &str, t: &Tensor<T>) {
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

pub(crate) fn put_tensors<T: Element>(out: &mut Vec<u8>, tensors: &[(String, Tensor<T>)]) {
    put_u64(out, tensors.len() as u64);
    for (name, t) in tensors {
        put_tensor(out, name, t);
    }
}

// ---------------------------------------------------------------- reading

/// A cursor over the file's bytes that turns every short read into
/// [`CheckpointError::Truncated`] at the offset where the data ran out.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    /// Offset of `bytes[0]` in the file.
    base: usize,
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn offset(&self) -> u64 {
        (self.base + self.pos) as u64
    }

    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    pub(crate) fn malformed(&self, at: u64, what: impl Into<String>) -> CheckpointError {
        CheckpointError::Malformed {
            path: PathBuf::new(),
            offset: at,
            what: what.into(),
        }
    }

    pub(crate) fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], CheckpointError> {
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

    pub(crate) fn u8(&mut self, what: &str) -> Result<u8, CheckpointError> {
        Ok(self.take(1, what)?[0])
    }

    pub(crate) fn u32(&mut self, what: &str) -> Result<u32, CheckpointError> {
        Ok(LittleEndian::read_u32(self.take(4, what)?))
    }

    pub(crate) fn u64(&mut self, what: &str) -> Result<u64, CheckpointError> {
        Ok(LittleEndian::read_u64(self.take(8, what)?))
    }

    pub(crate) fn i64(&mut self, what: &str) -> Result<i64, CheckpointError> {
        Ok(LittleEndian::read_i64(self.take(8, what)?))
    }

    pub(crate) fn f64(&mut self, what: &str) -> Result<f64, CheckpointError> {
        Ok(LittleEndian::read_f64(self.take(8, what)?))
    }

    pub(crate) fn str(&mut self, what: &str) -> Result<String, CheckpointError> {
        let at = self.offset();
        let len = self.u32(what)? as usize;
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| self.malformed(at, format!("{what} is not UTF-8 text")))
    }

    /// A count of records of at least `min_size` bytes each, checked against
    /// the bytes left so that no count allocates beyond the file.
    pub(crate) fn count(
        &mut self,
        wide: bool,
        min_size: usize,
        what: &str,
    ) -> Result<usize, CheckpointError> {
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

pub(crate) fn get_value(r: &mut Reader, what: &str) -> Result<SpecValue, CheckpointError> {
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

pub(crate) fn get_fields(
    r: &mut Reader,
    owner: &str,
) -> Result<Vec<(String, SpecValue)>, CheckpointError> {
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

pub(crate) fn get_spec(r: &mut Reader, depth: usize) -> Result<LayerSpec, CheckpointError> {
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

pub(crate) fn get_tensor<T: Element>(
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

pub(crate) fn get_tensors<T: Element>(
    r: &mut Reader,
    what: &str,
) -> Result<Vec<(String, Tensor<T>)>, CheckpointError> {
    // A tensor record is at least a name length, a dtype and a rank.
    let n = r.count(true, 6, &format!("the {what} count"))?;
    (0..n).map(|_| get_tensor(r, what)).collect()
}

/// The raw sections of a file whose header and checksum have been checked.
#[derive(Default)]
pub(crate) struct Sections<'a> {
    pub(crate) arch: Option<Reader<'a>>,
    pub(crate) para: Option<Reader<'a>>,
    pub(crate) buff: Option<Reader<'a>>,
    pub(crate) optm: Option<Reader<'a>>,
    pub(crate) meta: Option<Reader<'a>>,
}

/// Checks magic, version, length and checksum, and splits the sections.
pub(crate) fn split_sections<'a>(bytes: &'a [u8]) -> Result<Sections<'a>, CheckpointError> {
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
pub(crate) fn finished(r: &Reader, section: &str) -> Result<(), CheckpointError> {
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

pub(crate) fn required<'a>(
    section: Option<Reader<'a>>,
    tag: &str,
) -> Result<Reader<'a>, CheckpointError> {
    section.ok_or_else(|| CheckpointError::Malformed {
        path: PathBuf::new(),
        offset: HEADER_LEN as u64,
        what: format!("the required section {tag} is missing"),
    })
}
