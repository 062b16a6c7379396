//! Fuzzing the readers of untrusted files: the IDX reader, the `.npy`
//! reader and the checkpoint reader get random bytes and mutated valid
//! files. Each input must give `Ok` or a typed error, never a panic (an
//! out-of-bounds slice, an overflow, an allocation of a size read from the
//! file). Each test prints how many inputs it ran (`--nocapture` shows it).
//!
//! Mutations: flip a bit, overwrite a byte, overwrite a little-endian u32 or
//! u64 with an extreme value (0, 1, 255, 2³¹, 2⁶⁴ − 1, ...), truncate, insert
//! or delete a byte. Checkpoints are also *resealed* after mutation (their
//! length field and checksum recomputed), which is what makes mutated bytes
//! reach the parser behind the checksum: the spec tree, the tensor records,
//! the layer builders. A last run mutates only the layer specs (the `ARCH`
//! section), so that most inputs reach the builders of every layer kind.

use flowzoo::data::idx::{encode_idx, parse_idx};
use flowzoo::data::npy::parse_npy;
use flowzoo::flows::architectures::{glow_layers, GlowConfig};
use flowzoo::flows::model::realnvp_layers;
use flowzoo::flows::preprocess::Logit;
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

#[test]
fn npy_reader_survives_random_and_mutated_bytes() {
    let path = Path::new("fuzz.npy");
    let seed = seed_npy();
    let random = run(2000, prop::collection::vec(any::<u8>(), 0..256), |bytes| {
        let _ = parse_npy(&bytes, path);
    });
    let mutated = run(3000, prop::collection::vec(mutation(), 1..6), |edits| {
        let mut bytes = seed.clone();
        edits.iter().for_each(|m| apply(&mut bytes, m));
        let _ = parse_npy(&bytes, path);
    });
    eprintln!(
        "fuzz: NPY reader: {} inputs without a panic ({random} random, {mutated} mutated files)",
        random + mutated
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
