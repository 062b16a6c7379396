//! The direct kernel on every width this CPU has gives the bits of the
//! plain loops (`Width::Baseline`, what `wasm32` runs): the module doc's
//! promise, checked on the shapes that exercise every tile size (16, 8, 4,
//! 2, 1 output channels), images whose pixel count is not a multiple of
//! the 16 lanes, and kernels 1, 3 and 5; on AVX2 both of its sources (the
//! windows read in place up to 8 outputs or 1 × 1, the panel gathered by
//! masked loads for 16 and 31 outputs of a 3 × 3).

use super::*;

/// A value with a few mantissa bits, of either sign, some exact zeros.
fn value(seed: usize, i: usize) -> f32 {
    let h = (seed * 7919 + i * 104_729 + 13) % 1009;
    (h as f32 - 504.0) / 97.0
}

#[test]
fn every_width_gives_the_bits_of_the_plain_loops() {
    let mut widths = vec![Width::Baseline];
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            widths.push(Width::Avx2);
        }
        if std::arch::is_x86_feature_detected!("avx512f") {
            widths.push(Width::Avx512);
        }
    }
    for &(batch, c_in, (h, w), k, c_out) in &[
        (2, 3, (7, 7), 3, 31),
        (1, 1, (28, 28), 3, 16),
        (3, 2, (5, 3), 5, 7),
        (2, 4, (14, 14), 1, 20),
        (1, 5, (6, 10), 3, 3),
    ] {
        let g = Geometry::new(
            "test",
            &[batch, c_in, h, w],
            &[c_out, c_in, k, k],
            (k - 1) / 2,
        );
        let plan = Same::new(&g).expect("a same convolution");
        let src: Vec<f32> = (0..batch * c_in * h * w).map(|i| value(1, i)).collect();
        let weight: Vec<f32> = (0..c_out * c_in * k * k).map(|i| value(2, i)).collect();
        let bias: Vec<f32> = (0..c_out).map(|i| value(3, i)).collect();
        let run = |width: Width| {
            forward(
                width,
                &plan,
                &src,
                batch,
                c_in,
                c_out,
                &weight,
                Some(&bias),
                false,
            )
        };
        let plain = run(Width::Baseline);
        // The plain loops against a direct f64 sum, so the test cannot pass
        // on a kernel that is wrong everywhere in the same way.
        let (p, o0, y0, x0) = ((k - 1) / 2, c_out - 1, h / 2, w - 1);
        let mut want = f64::from(bias[o0]);
        for c in 0..c_in {
            for i in 0..k {
                for j in 0..k {
                    let (y, x) = (
                        (y0 + i) as isize - p as isize,
                        (x0 + j) as isize - p as isize,
                    );
                    if y >= 0 && x >= 0 && (y as usize) < h && (x as usize) < w {
                        let s = src[((batch - 1) * c_in + c) * h * w + y as usize * w + x as usize];
                        want += f64::from(weight[((o0 * c_in + c) * k + i) * k + j]) * f64::from(s);
                    }
                }
            }
        }
        let got = plain[((batch - 1) * c_out + o0) * h * w + y0 * w + x0];
        assert!(
            (f64::from(got) - want).abs() < 1e-3,
            "plain loops: {got} against {want}"
        );
        for &width in &widths[1..] {
            let other = run(width);
            let differ = plain
                .iter()
                .zip(&other)
                .position(|(a, b)| a.to_bits() != b.to_bits());
            assert!(
                differ.is_none(),
                "{width:?}, [{batch}, {c_in}, {h}, {w}] * {k}x{k} -> {c_out}: output {differ:?} differs"
            );
        }
    }
}

/// A layer without output (or input) channels has an empty weight
/// gradient on every path; the AVX2 tiles once divided by the channel
/// count (found by a review).
#[test]
fn a_weight_gradient_without_channels_is_empty() {
    use crate::tensor::Tensor;
    let input = Tensor::<f32>::ones(&[1, 1, 2, 2]);
    let grad = Tensor::<f32>::ones(&[1, 0, 2, 2]);
    let w = Tensor::conv2d_weight_grad(&input, &grad, 3, 1);
    assert_eq!(w.shape(), &[0, 1, 3, 3]);
    let input = Tensor::<f32>::ones(&[2, 0, 3, 3]);
    let grad = Tensor::<f32>::ones(&[2, 4, 3, 3]);
    let w = Tensor::conv2d_weight_grad(&input, &grad, 3, 1);
    assert_eq!(w.shape(), &[4, 0, 3, 3]);
}
