//! The embedding example of the README (examples/embed.rs, included here
//! as a module) runs on a checkpoint, and the README shows it verbatim.

mod common;

#[allow(dead_code)]
#[path = "../examples/embed.rs"]
mod embed;

use flowzoo::flows::FlowModel;
use flowzoo::train::checkpoint::save_model;
use rand::SeedableRng;

#[test]
fn the_embedding_example_loads_a_checkpoint_and_samples() {
    let path = common::temp_dir("embed").join("model.flowzoo");
    let model = FlowModel::<f32>::realnvp(2, 2, 8, &mut rand::rngs::StdRng::seed_from_u64(0));
    save_model(&path, &model).unwrap();
    let log_p = embed::run(&path).unwrap();
    assert_eq!(log_p.len(), 5);
    assert!(log_p.iter().all(|v| v.is_finite()), "{log_p:?}");
    // A missing file is an error the program can report, not a panic.
    let err = embed::run(&path.with_extension("missing")).err().unwrap();
    assert!(err.to_string().contains("model.missing"), "{err}");
}

#[test]
fn the_readme_shows_the_example_verbatim() {
    let readme = include_str!("../README.md");
    let example = include_str!("../examples/embed.rs");
    assert!(
        readme.contains(example),
        "README.md must quote examples/embed.rs verbatim (it is the compiled, tested copy)"
    );
    assert!(readme.contains("default-features = false"));
}
