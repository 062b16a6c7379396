//! Issue 17, item 4: latent interpolation (linear and spherical) and the
//! layer-by-layer samples of a 2-D model, the library functions behind the
//! command line's interpolation and flows.png pictures.

use flowzoo::flows::{Flow, FlowModel};
use flowzoo::tensor::Tensor;
use flowzoo::train::sample::{interpolate, layer_by_layer, Interpolation};
use rand::rngs::StdRng;
use rand::SeedableRng;

fn bits(t: &Tensor<f64>) -> Vec<u64> {
    t.to_vec().iter().map(|v| v.to_bits()).collect()
}

#[test]
fn the_ends_are_the_inputs_exactly_and_the_path_is_finite() {
    let mut rng = StdRng::seed_from_u64(1);
    let a = Tensor::<f64>::randn(&[1, 2, 3, 3], &mut rng);
    let b = Tensor::<f64>::randn(&[1, 2, 3, 3], &mut rng);
    let zero = Tensor::<f64>::zeros(&[1, 2, 3, 3]);
    let opposite = a.mul_scalar(-2.0);
    for kind in [Interpolation::Linear, Interpolation::Spherical] {
        for (from, to) in [(&a, &b), (&a, &zero), (&a, &opposite), (&a, &a)] {
            let path = interpolate(from, to, 7, kind);
            assert_eq!(path.shape(), &[7, 2, 3, 3]);
            assert_eq!(bits(&path.narrow(0, 0, 1)), bits(from), "{kind:?} start");
            assert_eq!(bits(&path.narrow(0, 6, 1)), bits(to), "{kind:?} end");
            assert!(path.all_finite(), "{kind:?}: {path:?}");
        }
    }
}

#[test]
fn linear_goes_straight_and_spherical_keeps_the_norm() {
    // Orthogonal ends of norm 2: the line's midpoint has norm √2, the arc's 2.
    let a = Tensor::<f64>::from_vec(vec![2.0, 0.0, 0.0], &[3]);
    let b = Tensor::<f64>::from_vec(vec![0.0, 2.0, 0.0], &[3]);
    let line = interpolate(&a, &b, 3, Interpolation::Linear).to_vec();
    assert_eq!(&line[3..6], &[1.0, 1.0, 0.0]);
    let arc = interpolate(&a, &b, 5, Interpolation::Spherical);
    for k in 0..5 {
        let p = arc.narrow(0, k, 1).to_vec();
        let norm = p.iter().map(|x| x * x).sum::<f64>().sqrt();
        assert!((norm - 2.0).abs() < 1e-12, "step {k}: norm {norm}");
    }
    let mid = arc.narrow(0, 2, 1).to_vec();
    let s = 2f64.sqrt();
    assert!(
        (mid[0] - s).abs() < 1e-12 && (mid[1] - s).abs() < 1e-12,
        "{mid:?}"
    );
}

#[test]
fn layer_by_layer_starts_at_z_and_ends_at_the_models_forward() {
    let mut rng = StdRng::seed_from_u64(2);
    let model = FlowModel::<f64>::realnvp(2, 3, 8, &mut rng);
    let z = Tensor::<f64>::randn(&[10, 2], &mut rng);
    let stages = layer_by_layer(&model, &z);
    assert_eq!(stages.len(), model.flow.layers.len() + 1);
    assert_eq!(bits(&stages[0].1), bits(&z));
    let (x, _) = model.flow.forward_tensor(&z);
    assert_eq!(bits(&stages.last().unwrap().1), bits(&x));
    assert!(stages[1].0.contains("layer 0"), "{}", stages[1].0);
}

#[test]
fn latent_scales_follow_the_splits_of_a_multi_scale_model() {
    use flowzoo::flows::architectures::{glow_layers, GlowConfig};
    use flowzoo::flows::Sequential;
    use flowzoo::train::sample::latent_scales;
    let mut rng = StdRng::seed_from_u64(3);
    // Glow on 1x8x8 images: squeeze to 4x4x4, keep 2 channels, the inner
    // squeezes its 2x4x4 to 8x2x2.
    let config = GlowConfig {
        levels: 2,
        steps: 1,
        hidden: 4,
        ..GlowConfig::default()
    };
    let layers = glow_layers::<f64, _>([1, 8, 8], config, &mut rng);
    let model = FlowModel::new(64, Sequential::new(layers));
    let scales = latent_scales(&model, 64);
    assert_eq!(scales.len(), 2, "{scales:?}");
    assert_eq!((scales[0].offset, scales[0].shape), (32, [2, 4, 4]));
    assert_eq!((scales[1].offset, scales[1].shape), (0, [2, 4, 4]));
    // A model without a split has one scale: none to show.
    assert!(latent_scales(&FlowModel::<f64>::realnvp(2, 2, 8, &mut rng), 2).is_empty());
}
