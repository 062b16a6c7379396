//! Checkpoints: every way a file's bytes can be wrong (cut short, corrupted,
//! another format or version, trailing bytes, an architecture that does not
//! match its tensors, a layer without a spec, garbage inside a section)
//! gives its typed error naming the file and the offset or field.

#[path = "common/checkpoint.rs"]
mod checkpoint_helpers;
mod common;

use checkpoint_helpers::*;
use flowzoo::autodiff::Var;
use flowzoo::error::CheckpointError;
use flowzoo::flows::spec::{LayerSpec, SpecValue};
use flowzoo::flows::FlowError;
use flowzoo::flows::{AffineCoupling, Flow, FlowModel, Mask, Reverse, Sequential};
use flowzoo::train::checkpoint::{
    fnv1a64, load_model, save_model, temporary_path, to_bytes, FORMAT_VERSION,
};
use std::path::PathBuf;

/// A valid file's bytes for the bad-input tests.
fn good_bytes() -> Vec<u8> {
    let model = FlowModel::<f32>::realnvp(2, 2, 8, &mut rng(0));
    to_bytes(&model, None, None).unwrap()
}

/// Recomputes the length field and the checksum after an edit, as a writer
/// with a bug would produce them.
fn reseal(mut bytes: Vec<u8>) -> Vec<u8> {
    let n = bytes.len();
    bytes[12..20].copy_from_slice(&(n as u64).to_le_bytes());
    let sum = fnv1a64(&bytes[..n - 8]);
    bytes[n - 8..].copy_from_slice(&sum.to_le_bytes());
    bytes
}

#[test]
fn truncated_file_names_the_offset_where_it_ends() {
    let bytes = good_bytes();
    for cut in [0, 5, 11, 19, 20, 100, bytes.len() / 2, bytes.len() - 1] {
        let err = error_of(&bytes[..cut]);
        match &err {
            CheckpointError::Truncated { offset, .. } => assert_eq!(*offset, cut as u64, "{err}"),
            other => panic!("cut at {cut}: expected Truncated, got {other}"),
        }
        if cut > 0 {
            assert!(err.to_string().contains(&format!("offset {cut}")), "{err}");
        }
    }
}

#[test]
fn corrupted_byte_fails_the_checksum() {
    let bytes = good_bytes();
    // Past the header, so that the length and version still read as valid.
    for at in [20, 21, bytes.len() / 2, bytes.len() - 9, bytes.len() - 1] {
        let mut bad = bytes.clone();
        bad[at] ^= 0x10;
        let err = error_of(&bad);
        match &err {
            CheckpointError::ChecksumMismatch {
                offset,
                expected,
                found,
                ..
            } => {
                assert_eq!(*offset, bytes.len() as u64 - 8);
                assert_ne!(expected, found);
            }
            other => panic!("byte {at} flipped: expected ChecksumMismatch, got {other}"),
        }
        assert!(err.to_string().contains("checksum"), "{err}");
    }
}

#[test]
fn wrong_magic_is_not_a_checkpoint() {
    let mut bytes = good_bytes();
    bytes[0] = b'G';
    let err = error_of(&bytes);
    assert!(matches!(err, CheckpointError::BadMagic { .. }), "{err}");
    assert!(err.to_string().contains("offset 0"), "{err}");
    // A PNG or any other file is rejected the same way, before anything else.
    let err = error_of(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR");
    assert!(matches!(err, CheckpointError::BadMagic { .. }), "{err}");
}

#[test]
fn future_version_is_refused_by_number() {
    let mut bytes = good_bytes();
    bytes[8..12].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
    let err = error_of(&bytes);
    match &err {
        CheckpointError::UnsupportedVersion {
            found, supported, ..
        } => assert_eq!((*found, *supported), (FORMAT_VERSION + 1, FORMAT_VERSION)),
        other => panic!("expected UnsupportedVersion, got {other}"),
    }
    assert!(err.to_string().contains("offset 8"), "{err}");
}

#[test]
fn trailing_bytes_are_malformed() {
    let mut bytes = good_bytes();
    let n = bytes.len() as u64;
    bytes.extend_from_slice(b"junk");
    match error_of(&bytes) {
        CheckpointError::Malformed { offset, .. } => assert_eq!(offset, n),
        other => panic!("expected Malformed, got {other}"),
    }
}

fn misdescribed_bytes(edit: impl FnOnce(LayerSpec) -> LayerSpec) -> Vec<u8> {
    let inner = AffineCoupling::new(Mask::half(4, false), 8, &mut rng(0));
    misdescribed_layer_bytes(Box::new(inner), edit)
}

#[test]
fn architecture_and_tensors_that_disagree_name_the_tensor() {
    // The spec says 16 hidden units, the stored weights have 8.
    let bytes = misdescribed_bytes(|s| set_field(s, "hidden", SpecValue::from(vec![16usize, 16])));
    let err = error_of(&bytes);
    match &err {
        CheckpointError::ArchitectureMismatch { what, .. } => {
            assert!(what.contains("layer0.net.layer0.weight"), "{err}");
            assert!(what.contains("[2, 16]") && what.contains("[2, 8]"), "{err}");
        }
        other => panic!("expected ArchitectureMismatch, got {other}"),
    }
    // The spec describes a layer without parameters: every stored tensor is left over.
    let bytes = misdescribed_bytes(|_| LayerSpec::new("Reverse").with("dim", 4usize));
    let err = error_of(&bytes);
    assert!(
        matches!(&err, CheckpointError::ArchitectureMismatch { what, .. }
            if what.contains("stores parameter `layer0.net.layer0.bias`")),
        "{err}"
    );
}

#[test]
fn unknown_layer_and_bad_fields_are_named() {
    let bytes = misdescribed_bytes(|mut s| {
        s.kind = "Mystery".into();
        s
    });
    let err = error_of(&bytes);
    assert!(
        matches!(&err, CheckpointError::Layer { source: FlowError::UnknownKind { kind, .. }, .. } if kind == "Mystery"),
        "{err}"
    );
    // A mask that is not a partition of the features.
    let bytes = misdescribed_bytes(|s| set_field(s, "cond", SpecValue::from(vec![0usize, 2])));
    let err = error_of(&bytes);
    assert!(
        matches!(&err, CheckpointError::Layer { source: FlowError::BadSpec { layer, field, .. }, .. } if layer == "AffineCoupling" && field == "trans"),
        "{err}"
    );
    // A size the loader refuses to allocate.
    let bytes = misdescribed_bytes(|s| set_field(s, "hidden", SpecValue::from(vec![1usize << 40])));
    let err = error_of(&bytes);
    assert!(
        matches!(&err, CheckpointError::Layer { source: FlowError::BadSpec { field, .. }, .. } if field == "hidden"),
        "{err}"
    );
    // A size each layer may have (4096² < MAX_LAYER_ELEMENTS), but 2·10⁸
    // scalars, where the file stores a few hundred: refused by the model's
    // budget before the memory is allocated.
    let bytes =
        misdescribed_bytes(|s| set_field(s, "hidden", SpecValue::from(vec![4096usize; 12])));
    let err = error_of(&bytes);
    assert!(
        matches!(&err, CheckpointError::Layer { source: FlowError::BadSpec { field, what, .. }, .. }
            if field == "hidden" && what.contains("more than the file's size allows")),
        "{err}"
    );
    // A field of the wrong type.
    let bytes = misdescribed_bytes(|s| set_field(s, "dim", SpecValue::from("four")));
    let err = error_of(&bytes);
    assert!(
        err.to_string().contains("field `dim`: expected an int"),
        "{err}"
    );
}

/// A layer with no spec.
struct Opaque;

impl Flow<f32> for Opaque {
    fn name(&self) -> String {
        "Opaque".into()
    }
    fn forward<'t>(&self, z: &Var<'t, f32>) -> (Var<'t, f32>, Var<'t, f32>) {
        (z.clone(), z.sum_axes(&[1]).mul_scalar(0.0))
    }
    fn inverse<'t>(&self, x: &Var<'t, f32>) -> (Var<'t, f32>, Var<'t, f32>) {
        (x.clone(), x.sum_axes(&[1]).mul_scalar(0.0))
    }
}

#[test]
fn a_layer_without_spec_cannot_be_saved_and_nothing_is_written() {
    let layers: Vec<Box<dyn Flow<f32>>> = vec![Box::new(Reverse::new(2)), Box::new(Opaque)];
    let model = FlowModel::new(2, Sequential::new(layers));
    let path: PathBuf = common::temp_dir("ckpt-opaque").join("model.flowzoo");
    let err = save_model(&path, &model).err().unwrap();
    assert!(
        matches!(&err, CheckpointError::NotSaveable { layer } if layer == "1 (Opaque)"),
        "{err}"
    );
    assert!(!path.exists() && !temporary_path(&path).exists());
}

#[test]
fn missing_file_is_an_io_error_naming_it() {
    let path = common::temp_dir("ckpt-missing").join("nothing.flowzoo");
    let err = load_model::<f32>(&path).err().unwrap();
    assert!(matches!(err, CheckpointError::Io { .. }), "{err}");
    assert!(err.to_string().contains("nothing.flowzoo"), "{err}");
}

#[test]
fn resealed_garbage_inside_a_section_is_malformed_not_a_panic() {
    // Unknown value tag where the first spec field's tag sits: magic 8 +
    // version 4 + length 8 + tag 4 + length 8, then the prior's kind
    // (4 + 14 bytes), the field count (4), the name "dim" (4 + 3).
    let bytes = good_bytes();
    let at = 20 + 12 + 4 + "StandardNormal".len() + 4 + 4 + 3;
    assert_eq!(bytes[at], 0, "the int tag of the prior's dim");
    let mut bad = bytes.clone();
    bad[at] = 9;
    match error_of(&reseal(bad)) {
        CheckpointError::Malformed { offset, what, .. } => {
            assert_eq!(offset, at as u64);
            assert!(what.contains("unknown value tag 9"), "{what}");
        }
        other => panic!("expected Malformed, got {other}"),
    }
}
