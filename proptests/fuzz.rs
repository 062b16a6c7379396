//! Fuzzing the readers of untrusted files: the IDX reader, the `.npy`
//! reader, the CSV reader and the checkpoint reader get random bytes and
//! mutated valid files. Each input must give `Ok` or a typed error, never a
//! panic (an out-of-bounds slice, an overflow, an allocation of a size read
//! from the file). Each test prints how many inputs it ran (`--nocapture`
//! shows it).
//!
//! The table readers (CSV and `.npy`) are also metered ([`alloc_meter`]):
//! reading an input of n bytes may hold at most [`BYTES_PER_INPUT_BYTE`]·n
//! plus [`ALLOCATION_SLACK`] bytes, the table it returns included, so no size
//! read from a header can make them allocate beyond what the file holds. A
//! table that reads `Ok` is then standardised, proving the statistics
//! finite (and panic-free) on whatever numbers the reader lets through.
//!
//! [`alloc_meter`]: crate::alloc_meter
//!
//! Mutations: flip a bit, overwrite a byte, overwrite a little-endian u32 or
//! u64 with an extreme value (0, 1, 255, 2³¹, 2⁶⁴ − 1, ...), truncate, insert
//! or delete a byte. Checkpoints are also *resealed* after mutation (their
//! length field and checksum recomputed), which is what makes mutated bytes
//! reach the parser behind the checksum: the spec tree, the tensor records,
//! the layer builders. A last run mutates only the layer specs (the `ARCH`
//! section), so that most inputs reach the builders of every layer kind.

use crate::alloc_meter::peak_bytes;
use flowzoo::data::idx::{encode_idx, parse_idx};
use flowzoo::data::npy::parse_npy;
use flowzoo::data::tabular::{parse_csv, standardize, Table};
use flowzoo::error::DataError;
use flowzoo::flows::architectures::{glow_layers, GlowConfig};
use flowzoo::flows::model::realnvp_layers;
use flowzoo::flows::preprocess::Logit;
use flowzoo::flows::standardize::Standardize;
use flowzoo::flows::zoo::FlowName;
use flowzoo::flows::{BatchNorm, Flow, FlowModel, Permutation, Reverse, Sequential};
use flowzoo::nn::Adam;
use flowzoo::tensor::Tensor;
use flowzoo::train::checkpoint::{fnv1a64, to_bytes, AdamState, Checkpoint};
use flowzoo::train::record::RunRecord;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use rand::SeedableRng;
use std::path::Path;

/// The most a table reader may hold per byte of its input: the table
/// itself is at most an f64 (8 bytes) and a column name (a `String`, 24
/// bytes, and its text) per byte of a 1-byte `u1` element or of a
/// one-character CSV field, and a CSV line's fields are split once more.
const BYTES_PER_INPUT_BYTE: usize = 64;
/// What any parse may hold whatever its input: an error message, the
/// header's text, small vectors.
const ALLOCATION_SLACK: usize = 64 << 10;

/// Runs a table reader on an input of `input_len` bytes under the
/// allocation meter, asserting the bound, and returns its result and the
/// fraction of the bound it used (for the report).
fn metered(
    what: &str,
    input_len: usize,
    read: impl FnOnce() -> Result<Table, DataError>,
) -> (Result<Table, DataError>, f64) {
    let (result, peak) = peak_bytes(read);
    let bound = BYTES_PER_INPUT_BYTE * input_len + ALLOCATION_SLACK;
    assert!(
        peak <= bound,
        "{what}: reading {input_len} bytes held {peak} bytes (bound {bound}); result {result:?}"
    );
    (result, peak as f64 / bound as f64)
}

/// Large valid inputs where the table, not the slack, fills the bound: a
/// 1-row `u1` array and a header of one-letter names, 30,000 columns each
/// (an f64 and a name per input byte or two), and 20,000 one-digit rows.
fn assert_wide_tables_fit_the_bound() {
    let n = 30_000;
    let bytes = npy_bytes(1, "|u1", false, &format!("(1, {n})"), &vec![7u8; n]);
    let (table, used) = metered("wide npy", bytes.len(), || {
        parse_npy(&bytes, Path::new("wide.npy"))
    });
    assert_eq!(table.expect("valid").dim(), n);
    let wide_csv = format!("{}\n{}\n", vec!["a"; n].join(","), vec!["1"; n].join(","));
    let (table, used_csv) = metered("wide csv", wide_csv.len(), || {
        parse_csv(&wide_csv, Path::new("wide.csv"), &[])
    });
    assert_eq!(table.expect("valid").dim(), n);
    let long_csv = format!("x\n{}", "1\n".repeat(20_000));
    let (table, used_long) = metered("long csv", long_csv.len(), || {
        parse_csv(&long_csv, Path::new("long.csv"), &[])
    });
    assert_eq!(table.expect("valid").rows, 20_000);
    eprintln!(
        "fuzz: wide tables use {:.0} % (npy), {:.0} % (csv, wide) and {:.0} % (csv, long) \
         of the allocation bound",
        100.0 * used,
        100.0 * used_csv,
        100.0 * used_long
    );
}

/// What every table that reads `Ok` must satisfy, and standardising it:
/// `rows × dim` finite values, and finite statistics and standardised values.
fn check_table(table: Result<Table, DataError>) {
    let Ok(mut table) = table else { return };
    assert_eq!(table.data.len(), table.rows * table.dim(), "{table:?}");
    assert!(table.data.iter().all(|v| v.is_finite()), "{table:?}");
    let _ = table.check_fits::<f32>(Path::new("fuzz"));
    if table.dim() > 0 {
        let layer = Standardize::fit(&table.data, table.dim());
        assert!(layer.log_det_forward().is_finite(), "{layer:?}");
    }
    let (means, stds) = standardize(&mut table);
    assert!(
        means.iter().chain(&stds).all(|v| v.is_finite()) && stds.iter().all(|s| *s > 0.0),
        "{means:?} {stds:?}"
    );
    assert!(table.data.iter().all(|v| v.is_finite()), "{table:?}");
}

/// One edit of a byte string.
#[derive(Clone, Debug)]
enum Mutation {
    FlipBit { at: usize, bit: u8 },
    SetByte { at: usize, value: u8 },
    SetU32 { at: usize, value: u32 },
    SetU64 { at: usize, value: u64 },
    Truncate { len: usize },
    Insert { at: usize, value: u8 },
    Delete { at: usize },
}

fn extreme_u64() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(1),
        Just(255),
        Just(1 << 31),
        Just(1 << 32),
        Just(u64::MAX),
        Just(u64::MAX / 2),
        any::<u64>(),
        0u64..64,
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    // Positions are drawn large and reduced modulo the length when applied.
    let at = any::<usize>();
    prop_oneof![
        (at, 0u8..8).prop_map(|(at, bit)| Mutation::FlipBit { at, bit }),
        (at, any::<u8>()).prop_map(|(at, value)| Mutation::SetByte { at, value }),
        (at, extreme_u64()).prop_map(|(at, v)| Mutation::SetU32 {
            at,
            value: v as u32
        }),
        (at, extreme_u64()).prop_map(|(at, value)| Mutation::SetU64 { at, value }),
        at.prop_map(|len| Mutation::Truncate { len }),
        (at, any::<u8>()).prop_map(|(at, value)| Mutation::Insert { at, value }),
        at.prop_map(|at| Mutation::Delete { at }),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    let n = bytes.len();
    if n == 0 {
        return;
    }
    match *m {
        Mutation::FlipBit { at, bit } => bytes[at % n] ^= 1 << bit,
        Mutation::SetByte { at, value } => bytes[at % n] = value,
        Mutation::SetU32 { at, value } if n >= 4 => {
            let at = at % (n - 3);
            bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
        }
        Mutation::SetU64 { at, value } if n >= 8 => {
            let at = at % (n - 7);
            bytes[at..at + 8].copy_from_slice(&value.to_le_bytes());
        }
        Mutation::SetU32 { .. } | Mutation::SetU64 { .. } => {}
        Mutation::Truncate { len } => bytes.truncate(len % n),
        Mutation::Insert { at, value } => bytes.insert(at % (n + 1), value),
        Mutation::Delete { at } => {
            bytes.remove(at % n);
        }
    }
}

/// Recomputes a checkpoint's length field and checksum after an edit.
fn reseal(bytes: &mut [u8]) {
    let n = bytes.len();
    if n < 28 {
        return;
    }
    bytes[12..20].copy_from_slice(&(n as u64).to_le_bytes());
    let sum = fnv1a64(&bytes[..n - 8]);
    bytes[n - 8..].copy_from_slice(&sum.to_le_bytes());
}

/// Valid checkpoints to mutate: a small RealNVP with optimiser state and
/// metadata, a stack with a reversal and a logit layer in f64, and a small
/// Glow (LU 1×1 convolutions, a split with a learned prior) followed by a
/// batch norm and a permutation, so mutations reach the image layers' specs.
fn seed_checkpoints() -> Vec<Vec<u8>> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let mut model = FlowModel::<f32>::realnvp(2, 2, 4, &mut rng);
    let mut adam = Adam::new(1e-3);
    let x = Tensor::<f32>::randn(&[8, 2], &mut rng);
    flowzoo::train::train_step(&mut model, &mut adam, &x).expect("a finite step");
    let record = RunRecord {
        data: "moons".into(),
        flow: FlowName::RealNvp,
        layers: 2,
        hidden: 4,
        batch: 8,
        seed: 0,
        step: 1,
        target: None,
        columns: Some(vec!["x0".into(), "x1".into()]),
        context: None,
    };
    let first = to_bytes(&model, Some(&AdamState::of(&adam)), Some(&record)).expect("saveable");
    let mut layers = realnvp_layers::<f64, _>(3, 1, 3, &mut rng);
    layers.push(Box::new(Reverse::new(3)) as Box<dyn Flow<f64>>);
    layers.push(Box::new(Logit::new(3, 0.05)));
    let second =
        to_bytes(&FlowModel::new(3, Sequential::new(layers)), None, None).expect("saveable");
    let config = GlowConfig {
        steps: 1,
        hidden: 2,
        blocks: 0,
        ..GlowConfig::default()
    };
    let mut layers = glow_layers::<f32, _>([1, 4, 4], config, &mut rng);
    layers.insert(0, Box::new(BatchNorm::new(16)));
    layers.push(Box::new(Permutation::random(16, &mut rng)));
    let third =
        to_bytes(&FlowModel::new(16, Sequential::new(layers)), None, None).expect("saveable");
    vec![first, second, third]
}

/// Applies `edits` to the payload of the first section (`ARCH`, the layer
/// specs, at byte 32 after the 20-byte header, its tag and its u64 length),
/// rewrites that length and reseals the file: nearly every such input gets
/// past the framing to the spec parser and the layer builders.
fn mutate_arch(bytes: &[u8], edits: &[Mutation]) -> Vec<u8> {
    assert_eq!(&bytes[20..24], b"ARCH", "the first section is ARCH");
    let len = u64::from_le_bytes(bytes[24..32].try_into().expect("8 bytes")) as usize;
    let mut arch = bytes[32..32 + len].to_vec();
    edits.iter().for_each(|m| apply(&mut arch, m));
    let mut out = bytes[..24].to_vec();
    out.extend_from_slice(&(arch.len() as u64).to_le_bytes());
    out.extend_from_slice(&arch);
    out.extend_from_slice(&bytes[32 + len..]);
    reseal(&mut out);
    out
}

/// Valid IDX files to mutate: labels, and 3x2 images.
fn seed_idx() -> Vec<Vec<u8>> {
    vec![
        encode_idx(&[5], &[0, 1, 2, 3, 4]).expect("valid"),
        encode_idx(&[2, 3, 2], &[7; 12]).expect("valid"),
    ]
}

/// A valid `.npy` file of shape (3, 2) in f8.
fn seed_npy() -> Vec<u8> {
    let header = "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 2), }";
    let padded = format!("{header:<117}\n");
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(padded.len() as u16).to_le_bytes());
    bytes.extend_from_slice(padded.as_bytes());
    for v in [1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0] {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    bytes
}

/// Feeds one input to the checkpoint reader in both dtypes; a panic fails
/// the proptest case, an `Err` is what we expect.
fn read_checkpoint(bytes: &[u8]) {
    let path = Path::new("fuzz.flowzoo");
    if let Ok(c) = Checkpoint::<f32>::from_bytes(bytes, path) {
        // A file that loads must also run: a model whose layers disagree
        // on the dimension would panic here.
        let _ = c.model.params().len();
    }
    let _ = Checkpoint::<f64>::from_bytes(bytes, path);
}

/// Runs `cases` inputs from `strategy` through `test`, returning the count.
fn run<S: Strategy>(cases: u32, strategy: S, test: impl Fn(S::Value)) -> u32
where
    S::Value: std::fmt::Debug,
{
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    runner
        .run(&strategy, |v| {
            test(v);
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    cases
}

#[test]
fn idx_reader_survives_random_and_mutated_bytes() {
    let path = Path::new("fuzz.idx");
    let random = run(3000, prop::collection::vec(any::<u8>(), 0..256), |bytes| {
        let _ = parse_idx(&bytes, path);
    });
    // Random bytes rarely pass the magic; random bytes after a valid magic do.
    let headed = run(
        3000,
        (1u8..=4, prop::collection::vec(any::<u8>(), 0..128)),
        |(dims, tail)| {
            let mut bytes = vec![0, 0, 8, dims];
            bytes.extend(tail);
            let _ = parse_idx(&bytes, path);
        },
    );
    let seeds = seed_idx();
    let mutated = run(
        4000,
        (0..seeds.len(), prop::collection::vec(mutation(), 1..6)),
        |(which, edits)| {
            let mut bytes = seeds[which].clone();
            edits.iter().for_each(|m| apply(&mut bytes, m));
            let _ = parse_idx(&bytes, path);
        },
    );
    eprintln!(
        "fuzz: IDX reader: {} inputs without a panic ({random} random, {headed} after a valid magic, {mutated} mutated files)",
        random + headed + mutated
    );
}

/// `.npy` bytes with the header dict `{'descr': …, 'fortran_order': …,
/// 'shape': …, }` padded as NumPy pads it (version 1 or 2), then `data`.
fn npy_bytes(version: u8, descr: &str, fortran: bool, shape: &str, data: &[u8]) -> Vec<u8> {
    let header = format!(
        "{{'descr': '{descr}', 'fortran_order': {}, 'shape': {shape}, }}",
        if fortran { "True" } else { "False" }
    );
    let prefix = if version == 1 { 10 } else { 12 };
    let total = (prefix + header.len() + 1).div_ceil(64) * 64;
    let padded = format!("{header:<width$}\n", width = total - prefix - 1);
    let mut bytes = b"\x93NUMPY".to_vec();
    bytes.extend_from_slice(&[version, 0]);
    if version == 1 {
        bytes.extend_from_slice(&(padded.len() as u16).to_le_bytes());
    } else {
        bytes.extend_from_slice(&(padded.len() as u32).to_le_bytes());
    }
    bytes.extend_from_slice(padded.as_bytes());
    bytes.extend_from_slice(data);
    bytes
}

/// More valid `.npy` files to mutate: int64 in Fortran order, bytes in a
/// version-2 file, a 1-D f4 array.
fn more_seed_npys() -> Vec<Vec<u8>> {
    let i8s: Vec<u8> = [1i64, -2, 3, 1 << 53, -(1 << 40), 7]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let f4s: Vec<u8> = [0.5f32, -1e30, 3.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    vec![
        npy_bytes(1, "<i8", true, "(3, 2)", &i8s),
        npy_bytes(2, "|u1", false, "(2, 4)", &[0, 1, 2, 3, 255, 254, 9, 8]),
        npy_bytes(1, "<f4", false, "(3,)", &f4s),
    ]
}

/// A shape tuple as a header may spell it: sizes from 0 to 2⁶⁴ − 1
/// (NumPy's `L` suffix included), one to three of them, or junk.
fn shape_text() -> impl Strategy<Value = String> {
    let size = prop_oneof![
        3 => Just("0".to_string()),
        2 => Just("1".to_string()),
        2 => (2u64..5).prop_map(|n| n.to_string()),
        3 => Just("1000000000000".to_string()),
        1 => Just((1u64 << 62).to_string()),
        1 => Just(u64::MAX.to_string()),
        1 => Just("18446744073709551616".to_string()),
        1 => Just("3L".to_string()),
        1 => Just("-1".to_string()),
    ];
    prop_oneof![
        prop::collection::vec(size, 1..=3).prop_map(|sizes| match sizes.len() {
            1 => format!("({},)", sizes[0]),
            _ => format!("({})", sizes.join(", ")),
        }),
        Just("()".to_string()),
        Just("(2, 3".to_string()),
        Just("[2, 3]".to_string()),
    ]
}

#[test]
fn npy_reader_survives_random_and_mutated_bytes() {
    let path = Path::new("fuzz.npy");
    let mut seeds = vec![seed_npy()];
    seeds.extend(more_seed_npys());
    let worst = std::cell::Cell::new(0.0f64);
    let read = |bytes: &[u8]| {
        let (table, per_byte) = metered("npy", bytes.len(), || parse_npy(bytes, path));
        worst.set(worst.get().max(per_byte));
        check_table(table);
    };
    let random = run(2000, prop::collection::vec(any::<u8>(), 0..256), |bytes| {
        read(&bytes)
    });
    let mutated = run(
        3000,
        (0..seeds.len(), prop::collection::vec(mutation(), 1..6)),
        |(which, edits)| {
            let mut bytes = seeds[which].clone();
            edits.iter().for_each(|m| apply(&mut bytes, m));
            read(&bytes)
        },
    );
    // Headers written afresh with any dtype, order and shape, over no data
    // (what a shape holding a 0 announces) or 1 to 64 bytes: this is what
    // reaches the size arithmetic.
    let dtypes = [
        "<f8", "<f4", "<i8", "<i4", "<i2", "|i1", "|u1", ">f8", "<c16", "<U3",
    ];
    let headers = run(
        3000,
        (
            1u8..=2,
            prop::sample::select(dtypes.to_vec()),
            any::<bool>(),
            shape_text(),
            prop_oneof![Just(Vec::new()), prop::collection::vec(any::<u8>(), 1..64)],
        ),
        |(version, descr, fortran, shape, data)| {
            read(&npy_bytes(version, descr, fortran, &shape, &data))
        },
    );
    assert_wide_tables_fit_the_bound();
    eprintln!(
        "fuzz: NPY reader: {} inputs without a panic ({random} random, {mutated} mutated \
         files, {headers} with a fresh header), at most {:.0} % of the allocation bound",
        random + mutated + headers,
        100.0 * worst.get()
    );
}

/// Valid CSV texts to mutate: an R export with a quoted header and a
/// `rownames` column to drop, numbers near f64's limit, CRLF line ends and
/// blank lines, one column.
fn seed_csvs() -> Vec<&'static str> {
    vec![
        "\"rownames\",\"eruptions\",\"waiting\"\n\"1\",3.6,79\n\"2\",1.8,54\n\"3\",3.333,74\n",
        "a,b\n1e308,-1e308\n1.7976931348623157e308,1.7976931348623157e308\n\n5,6e-320\n",
        "x,y,z\r\n1,2,3\r\n\r\n4.5,-5,+6\r\n",
        "only\n1\n2\n3\n",
    ]
}

/// Reads `text` as a CSV, keeping every column and, when it has one,
/// without `rownames`.
fn read_csv_text(text: &str, worst: &std::cell::Cell<f64>) {
    let path = Path::new("fuzz.csv");
    for drop in [&[][..], &["rownames"][..]] {
        let (table, per_byte) = metered("csv", text.len(), || parse_csv(text, path, drop));
        worst.set(worst.get().max(per_byte));
        check_table(table);
    }
}

#[test]
fn csv_reader_survives_random_and_mutated_text() {
    let worst = std::cell::Cell::new(0.0f64);
    let random = run(2000, prop::collection::vec(any::<u8>(), 0..256), |bytes| {
        read_csv_text(&String::from_utf8_lossy(&bytes), &worst)
    });
    // Text from the characters a numeric CSV is made of, so most lines get
    // past the header to the field parser.
    let alphabet: Vec<char> = "0123456789.,,,\n\n\r\"e+-  aiNnfIty_".chars().collect();
    let csvish = run(
        3000,
        prop::collection::vec(prop::sample::select(alphabet), 0..200),
        |chars| read_csv_text(&chars.into_iter().collect::<String>(), &worst),
    );
    let seeds = seed_csvs();
    let mutated = run(
        3000,
        (0..seeds.len(), prop::collection::vec(mutation(), 1..6)),
        |(which, edits)| {
            let mut bytes = seeds[which].as_bytes().to_vec();
            edits.iter().for_each(|m| apply(&mut bytes, m));
            read_csv_text(&String::from_utf8_lossy(&bytes), &worst)
        },
    );
    eprintln!(
        "fuzz: CSV reader: {} inputs without a panic ({random} random, {csvish} of CSV \
         characters, {mutated} mutated files), at most {:.0} % of the allocation bound",
        random + csvish + mutated,
        100.0 * worst.get()
    );
}

#[test]
fn checkpoint_reader_survives_random_mutated_and_resealed_bytes() {
    let random = run(2000, prop::collection::vec(any::<u8>(), 0..512), |bytes| {
        read_checkpoint(&bytes)
    });
    let seeds = seed_checkpoints();
    let mutated = run(
        2000,
        (0..seeds.len(), prop::collection::vec(mutation(), 1..6)),
        |(which, edits)| {
            let mut bytes = seeds[which].clone();
            edits.iter().for_each(|m| apply(&mut bytes, m));
            read_checkpoint(&bytes)
        },
    );
    let resealed = run(
        4000,
        (0..seeds.len(), prop::collection::vec(mutation(), 1..4)),
        |(which, edits)| {
            let mut bytes = seeds[which].clone();
            edits.iter().for_each(|m| apply(&mut bytes, m));
            reseal(&mut bytes);
            read_checkpoint(&bytes)
        },
    );
    // A size field mutated to a large valid value would make the loader
    // allocate before the stored tensors are compared; the model's element
    // budget (a few times what the file stores) refuses it first.
    let arch = run(
        3000,
        (0..seeds.len(), prop::collection::vec(mutation(), 1..4)),
        |(which, edits)| read_checkpoint(&mutate_arch(&seeds[which], &edits)),
    );
    eprintln!(
        "fuzz: checkpoint reader: {} inputs without a panic ({random} random, {mutated} mutated, {resealed} mutated and resealed, {arch} with the layer specs mutated and resealed)",
        random + mutated + resealed + arch
    );
}
