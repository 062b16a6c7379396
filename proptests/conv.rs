//! conv2d and its three gradient kernels against seven nested loops, in f64
//! and f32, on contiguous and strided inputs: the same convolutions (odd K,
//! padding (K − 1)/2, the direct kernel of `tensor/conv/same.rs`) and every
//! other padding (im2col + product), with batches that cross the kernel's
//! 16-pixel blocks, its chunks of images and its split across threads.
//!
//! Each output is compared with its reference within `rtol · Σ|terms|`, the
//! terms being the products the definition sums (and the bias), so a
//! missing, doubled or misplaced term fails the test.

use crate::strategies::rng;
use crate::tolerance::{KERNEL_RTOL, KERNEL_RTOL_F32};
use flowzoo::tensor::{Element, Tensor};
use proptest::prelude::*;

/// Sizes of one convolution.
#[derive(Clone, Copy, Debug)]
struct Conv {
    batch: usize,
    c_in: usize,
    c_out: usize,
    height: usize,
    width: usize,
    kernel: usize,
    padding: usize,
}

impl Conv {
    fn out_h(&self) -> usize {
        self.height + 2 * self.padding + 1 - self.kernel
    }
    fn out_w(&self) -> usize {
        self.width + 2 * self.padding + 1 - self.kernel
    }
    /// `in[b, c, y + i − p, x + j − p]` as a flat index, or `None` in the padding.
    fn input_at(
        &self,
        b: usize,
        c: usize,
        y: usize,
        x: usize,
        i: usize,
        j: usize,
    ) -> Option<usize> {
        let (iy, ix) = (
            (y + i).checked_sub(self.padding)?,
            (x + j).checked_sub(self.padding)?,
        );
        (iy < self.height && ix < self.width)
            .then(|| ((b * self.c_in + c) * self.height + iy) * self.width + ix)
    }
}

/// The input of shape `[batch, c_in, H, W]` as one of four layouts over
/// random storage: 0 contiguous, 1 height and width transposed in storage,
/// 2 narrowed out of a larger tensor (an offset and gaps on every axis),
/// 3 batch and channel axes swapped in storage.
fn input_view<T: Element>(s: &Conv, layout: u8, seed: u64) -> Tensor<T> {
    let (b, c, h, w) = (s.batch, s.c_in, s.height, s.width);
    let mut r = rng(seed);
    match layout {
        0 => Tensor::randn(&[b, c, h, w], &mut r),
        1 => Tensor::randn(&[b, c, w, h], &mut r).permute(&[0, 1, 3, 2]),
        2 => Tensor::randn(&[b + 1, c + 2, h + 1, w + 2], &mut r)
            .narrow(0, 1, b)
            .narrow(1, 1, c)
            .narrow(2, 0, h)
            .narrow(3, 2, w),
        _ => Tensor::randn(&[c, b, h, w], &mut r).permute(&[1, 0, 2, 3]),
    }
}

/// The reference values and `Σ|terms|` of the forward pass, input gradient,
/// weight gradient and bias gradient, summed in f64 from the definitions.
struct Reference {
    out: Vec<(f64, f64)>,
    grad_in: Vec<(f64, f64)>,
    grad_w: Vec<(f64, f64)>,
    grad_b: Vec<(f64, f64)>,
}

/// The seven loops `b, o, y, x, c, i, j` over the definitions:
/// `out[b,o,y,x] = bias[o] + Σ_{c,i,j} w[o,c,i,j]·in[b,c,y+i−p,x+j−p]`,
/// `∂in[b,c,·] += w[o,c,i,j]·g[b,o,y,x]`, `∂w[o,c,i,j] += g[b,o,y,x]·in[b,c,·]`,
/// `∂bias[o] = Σ_{b,y,x} g[b,o,y,x]`, with `Σ|terms|` alongside.
fn reference(s: &Conv, x: &[f64], w: &[f64], bias: Option<&[f64]>, g: &[f64]) -> Reference {
    let (oh, ow, k) = (s.out_h(), s.out_w(), s.kernel);
    let add = |slot: &mut (f64, f64), t: f64| {
        slot.0 += t;
        slot.1 += t.abs();
    };
    let mut out = vec![(0.0, 0.0); s.batch * s.c_out * oh * ow];
    let mut grad_in = vec![(0.0, 0.0); x.len()];
    let mut grad_w = vec![(0.0, 0.0); w.len()];
    let mut grad_b = vec![(0.0, 0.0); s.c_out];
    for b in 0..s.batch {
        for o in 0..s.c_out {
            for y in 0..oh {
                for xx in 0..ow {
                    let at = ((b * s.c_out + o) * oh + y) * ow + xx;
                    let (slot, gv) = (&mut out[at], g[at]);
                    if let Some(bias) = bias {
                        add(slot, bias[o]);
                    }
                    add(&mut grad_b[o], gv);
                    for c in 0..s.c_in {
                        for i in 0..k {
                            for j in 0..k {
                                let Some(xi) = s.input_at(b, c, y, xx, i, j) else {
                                    continue;
                                };
                                let wi = ((o * s.c_in + c) * k + i) * k + j;
                                add(slot, w[wi] * x[xi]);
                                add(&mut grad_in[xi], w[wi] * gv);
                                add(&mut grad_w[wi], gv * x[xi]);
                            }
                        }
                    }
                }
            }
        }
    }
    Reference {
        out,
        grad_in,
        grad_w,
        grad_b,
    }
}

/// `|got − expected| ≤ rtol · Σ|terms|` at every index, naming the kernel,
/// the sizes, the index and both values.
fn assert_matches(what: &str, s: &Conv, got: &[f64], expected: &[(f64, f64)], rtol: f64) {
    assert_eq!(got.len(), expected.len(), "{what} {s:?}: lengths differ");
    for (i, (&g, &(e, abs))) in got.iter().zip(expected).enumerate() {
        assert!(
            (g - e).abs() <= rtol * abs,
            "{what} {s:?}: index {i}: got {g:e}, expected {e:e} (tolerance {:e})",
            rtol * abs
        );
    }
}

/// Runs the four kernels in `T` on an input of `layout` and compares each
/// with [`reference`].
fn check<T: Element>(s: &Conv, layout: u8, with_bias: bool, seed: u64, rtol: f64) {
    let x = input_view::<T>(s, layout, seed);
    let w = Tensor::<T>::randn(&[s.c_out, s.c_in, s.kernel, s.kernel], &mut rng(seed ^ 1));
    let bias = Tensor::<T>::randn(&[s.c_out], &mut rng(seed ^ 2));
    let g = Tensor::<T>::randn(
        &[s.batch, s.c_out, s.out_h(), s.out_w()],
        &mut rng(seed ^ 3),
    );
    let bias = with_bias.then_some(&bias);
    let expected = reference(
        s,
        &x.to_f64_vec(),
        &w.to_f64_vec(),
        bias.map(|b| b.to_f64_vec()).as_deref(),
        &g.to_f64_vec(),
    );
    let out = x.conv2d(&w, bias, s.padding);
    assert_eq!(out.shape(), g.shape(), "conv2d {s:?}: output shape");
    assert_matches("conv2d", s, &out.to_f64_vec(), &expected.out, rtol);
    let grad_in = Tensor::conv2d_input_grad(&g, &w, x.shape(), s.padding);
    assert_eq!(grad_in.shape(), x.shape(), "conv2d_input_grad {s:?}: shape");
    assert_matches(
        "conv2d_input_grad",
        s,
        &grad_in.to_f64_vec(),
        &expected.grad_in,
        rtol,
    );
    let grad_w = Tensor::conv2d_weight_grad(&x, &g, s.kernel, s.padding);
    assert_eq!(grad_w.shape(), w.shape(), "conv2d_weight_grad {s:?}: shape");
    assert_matches(
        "conv2d_weight_grad",
        s,
        &grad_w.to_f64_vec(),
        &expected.grad_w,
        rtol,
    );
    let grad_b = Tensor::conv2d_bias_grad(&g);
    assert_matches(
        "conv2d_bias_grad",
        s,
        &grad_b.to_f64_vec(),
        &expected.grad_b,
        rtol,
    );
}

/// Small convolutions: batch 1-6, 1-20 channels in and 1-40 out (so the
/// output channels fall into every tile width, 16, 8, 4, 2, 1), maps 1×1
/// to 9×9, kernels 1 and 3, padding 0-2 (raised where the kernel would not
/// fit): same convolutions and others.
fn small() -> impl Strategy<Value = Conv> {
    (
        1usize..=6,
        1usize..=20,
        1usize..=40,
        1usize..=9,
        1usize..=9,
        0usize..2,
        0usize..=2,
    )
        .prop_map(|(batch, c_in, c_out, height, width, k, padding)| {
            let kernel = 2 * k + 1;
            let need = kernel.saturating_sub(height.min(width)).div_ceil(2);
            Conv {
                batch,
                c_in,
                c_out,
                height,
                width,
                kernel,
                padding: padding.max(need),
            }
        })
}

/// Same 3×3 convolutions large enough to run on several threads (above
/// 2²⁰ multiply-adds) and, for 17-18 input channels on 8×8 maps, to span
/// more than one chunk of images (65,536 input values per chunk).
fn large() -> impl Strategy<Value = Conv> {
    (
        50usize..=70,
        prop_oneof![Just(3usize), 17usize..=18],
        prop_oneof![Just(1usize), Just(2), Just(5), Just(17), Just(31), Just(33)],
        prop_oneof![Just(8usize), Just(7), Just(2)],
    )
        .prop_map(|(batch, c_in, c_out, side)| Conv {
            batch,
            c_in,
            c_out,
            height: side,
            width: side,
            kernel: 3,
            padding: 1,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn conv2d_kernels_match_the_seven_loops_in_f64(
        s in small(),
        layout in 0u8..4,
        with_bias in any::<bool>(),
        seed in any::<u64>(),
    ) {
        // out = bias + Σ w·x, ∂x, ∂w, ∂bias from their definitions, in f64.
        check::<f64>(&s, layout, with_bias, seed, KERNEL_RTOL);
    }

    #[test]
    fn conv2d_kernels_match_the_seven_loops_in_f32(
        s in small(),
        layout in 0u8..4,
        with_bias in any::<bool>(),
        seed in any::<u64>(),
    ) {
        // The same in f32 (the AVX-512 path on a CPU that has it), against
        // f64 sums of the same f32 values.
        check::<f32>(&s, layout, with_bias, seed, KERNEL_RTOL_F32);
    }
}

proptest! {
    // Large cases: fewer, since the references are nested loops.
    #![proptest_config(ProptestConfig::with_cases(6))]

    #[test]
    fn large_same_convolutions_match_the_seven_loops(
        s in large(),
        layout in 0u8..4,
        seed in any::<u64>(),
    ) {
        check::<f32>(&s, layout, true, seed, KERNEL_RTOL_F32);
        check::<f64>(&s, layout, true, seed, KERNEL_RTOL);
    }
}

#[test]
fn same_convolution_kernels_are_reproducible() {
    // A thread count gives one order of summation, hence the same bits.
    // 31 = 16 + 8 + 4 + 2 + 1 output channels: every tile width.
    let s = Conv {
        batch: 64,
        c_in: 17,
        c_out: 31,
        height: 8,
        width: 8,
        kernel: 3,
        padding: 1,
    };
    let x = input_view::<f32>(&s, 0, 5);
    let w = Tensor::<f32>::randn(&[31, 17, 3, 3], &mut rng(6));
    let g = Tensor::<f32>::randn(&[64, 31, 8, 8], &mut rng(7));
    let run = || {
        (
            x.conv2d(&w, None, 1).to_vec(),
            Tensor::conv2d_input_grad(&g, &w, x.shape(), 1).to_vec(),
            Tensor::conv2d_weight_grad(&x, &g, 3, 1).to_vec(),
        )
    };
    let first = run();
    for _ in 0..3 {
        assert!(run() == first, "a repeated convolution changed its bits");
    }
}
