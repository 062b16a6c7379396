//! The embedded optdigits: sizes, class counts and pixel range as published by
//! UCI, the validation split of the protocol, and loading from a folder.

use flowzoo::data::digits::{self, load_dir, Digits, LEVELS, VALIDATION_LEN};
use flowzoo::data::idx::write_idx;
use flowzoo::error::DataError;

#[test]
fn train_has_3823_images_of_8x8() {
    let train = digits::train();
    assert_eq!((train.n, train.height, train.width), (3823, 8, 8));
    assert_eq!((train.images.len(), train.labels.len()), (3823 * 64, 3823));
}

#[test]
fn test_has_1797_images_of_8x8() {
    let test = digits::test();
    assert_eq!((test.n, test.height, test.width), (1797, 8, 8));
    assert_eq!((test.images.len(), test.labels.len()), (1797 * 64, 1797));
}

#[test]
fn class_counts_match_the_uci_description() {
    assert_eq!(
        digits::train().class_counts(),
        [376, 389, 380, 389, 387, 376, 377, 387, 380, 382]
    );
    assert_eq!(
        digits::test().class_counts(),
        [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    );
}

#[test]
fn pixels_are_counts_from_0_to_16() {
    for set in [digits::train(), digits::test()] {
        assert_eq!(set.images.iter().max(), Some(&16));
        assert_eq!(set.images.iter().min(), Some(&0));
        assert!(set.images.iter().all(|&p| u32::from(p) < LEVELS));
        assert!(set.labels.iter().all(|&l| l <= 9));
    }
}

#[test]
fn test_split_starts_like_scikit_learns_load_digits() {
    // load_digits().images[0], row 0: [0, 0, 5, 13, 9, 1, 0, 0], target 0
    let test = digits::test();
    assert_eq!(&test.image(0)[..8], &[0, 0, 5, 13, 9, 1, 0, 0]);
    assert_eq!(test.labels[0], 0);
}

#[test]
fn validation_is_the_last_383_training_images() {
    let full = digits::train();
    let (train, validation) = full.clone().split_validation(VALIDATION_LEN);
    assert_eq!((train.n, validation.n), (3440, 383));
    assert_eq!(
        (train.images.len(), validation.images.len()),
        (3440 * 64, 383 * 64)
    );
    assert_eq!((train.labels.len(), validation.labels.len()), (3440, 383));
    assert_eq!(validation.image(0), full.image(3440));
    assert_eq!(validation.labels[..], full.labels[3440..]);
    assert_eq!(train.images[..], full.images[..3440 * 64]);
}

#[test]
fn load_dir_reads_the_same_data_as_the_embedded_copy() {
    let dir = std::env::temp_dir().join(format!("flowzoo-digits-{}-copy", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let test = digits::test();
    write_idx(
        dir.join("t10k-images-idx3-ubyte"),
        &[test.n, 8, 8],
        &test.images,
    )
    .unwrap();
    write_idx(dir.join("t10k-labels-idx1-ubyte"), &[test.n], &test.labels).unwrap();
    let loaded: Digits = load_dir(&dir, "test").unwrap();
    assert_eq!(loaded, test);
}

#[test]
fn load_dir_rejects_disagreeing_counts_and_unknown_splits() {
    let dir = std::env::temp_dir().join(format!("flowzoo-digits-{}-bad", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    write_idx(dir.join("train-images-idx3-ubyte"), &[3, 2, 2], &[0; 12]).unwrap();
    write_idx(dir.join("train-labels-idx1-ubyte"), &[2], &[0, 1]).unwrap();
    let error = load_dir(&dir, "train").unwrap_err();
    assert!(matches!(error, DataError::Mismatch { .. }), "{error:?}");
    assert!(
        error.to_string().contains("3 images") && error.to_string().contains("2 labels"),
        "{error}"
    );

    let error = load_dir(&dir, "validation").unwrap_err();
    assert!(
        matches!(error, DataError::UnknownDataset { .. }),
        "{error:?}"
    );
    // a missing split names the file it looked for
    let error = load_dir(&dir, "test").unwrap_err();
    assert!(
        error.to_string().contains("t10k-images-idx3-ubyte"),
        "{error}"
    );
}
