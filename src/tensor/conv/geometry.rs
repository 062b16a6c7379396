//! The sizes of one convolution, checked once ([`Geometry`]), the
//! grouping of images that both convolution paths share
//! ([`for_each_group`]), and the block width of the direct kernels
//! ([`LANES`]): the leaf the im2col path (`mod.rs`), the same-convolution
//! kernels (`same.rs`) and their intrinsics (`x86.rs`) all read.

use super::super::parallel::{threads_available, PAR_MIN_MATMUL_FLOPS};
use crate::tensor::parallel::prelude::*;
use crate::tensor::Element;

/// Output pixels per block: one AVX-512 register of `f32`.
pub(super) const LANES: usize = 16;

/// Largest `col` buffer (in elements) one group of images fills: 256 k
/// elements, 1 MiB in f32, so a group's `col` stays in L2 between im2col and
/// the product that reads it.
const COL_BUDGET: usize = 1 << 18;

/// The sizes of one convolution, checked once.
#[derive(Clone, Copy, Debug)]
pub(super) struct Geometry {
    pub(super) batch: usize,
    pub(super) c_in: usize,
    pub(super) height: usize,
    pub(super) width: usize,
    pub(super) c_out: usize,
    pub(super) kernel: usize,
    pub(super) padding: usize,
    pub(super) out_h: usize,
    pub(super) out_w: usize,
}

impl Geometry {
    /// Checks an input shape `[B, C, H, W]` against a weight shape
    /// `[O, C, K, K]`; panics naming `op` and both shapes.
    pub(super) fn new(op: &str, input: &[usize], weight: &[usize], padding: usize) -> Geometry {
        assert!(
            input.len() == 4 && weight.len() == 4,
            "{op}: expected input [batch, channels, height, width] and weight \
             [out_channels, in_channels, k, k]: input {input:?}, weight {weight:?}"
        );
        assert!(
            weight[2] == weight[3] && weight[2] > 0,
            "{op}: the kernel must be square and non-empty: input {input:?}, weight {weight:?}"
        );
        assert_eq!(
            input[1], weight[1],
            "{op}: input channels differ: input {input:?}, weight {weight:?}"
        );
        let kernel = weight[2];
        assert!(
            input[2] + 2 * padding >= kernel && input[3] + 2 * padding >= kernel,
            "{op}: kernel larger than the padded image (padding {padding}): \
             input {input:?}, weight {weight:?}"
        );
        Geometry {
            batch: input[0],
            c_in: input[1],
            height: input[2],
            width: input[3],
            c_out: weight[0],
            kernel,
            padding,
            out_h: input[2] + 2 * padding - kernel + 1,
            out_w: input[3] + 2 * padding - kernel + 1,
        }
    }

    /// Rows of `col`: `C·K·K`.
    pub(super) fn patch(&self) -> usize {
        self.c_in * self.kernel * self.kernel
    }

    /// Output pixels per image and channel: `Hₒ·Wₒ`.
    pub(super) fn out_pixels(&self) -> usize {
        self.out_h * self.out_w
    }

    /// The output shape `[B, O, Hₒ, Wₒ]`.
    pub(super) fn out_shape(&self) -> [usize; 4] {
        [self.batch, self.c_out, self.out_h, self.out_w]
    }

    /// Multiply-adds of the whole convolution.
    pub(super) fn macs(&self) -> usize {
        self.batch * self.c_out * self.out_pixels() * self.patch()
    }

    /// Images per group: as many as keep `col` within [`COL_BUDGET`], at
    /// least one, and few enough that every thread gets a group when the
    /// convolution is large enough to split.
    pub(super) fn group_size(&self, parallel: bool) -> usize {
        let per_image = (self.patch() * self.out_pixels()).max(1);
        let mut group = (COL_BUDGET / per_image).clamp(1, self.batch.max(1));
        if parallel {
            group = group.min(
                self.batch
                    .div_ceil(crate::tensor::parallel::current_num_threads()),
            );
        }
        group.max(1)
    }

    /// True when groups of images should run on several threads (not inside
    /// `parallel::serial_kernels`, where the caller already splits the work).
    pub(super) fn parallel(&self) -> bool {
        threads_available() && self.batch > 1 && self.macs() >= PAR_MIN_MATMUL_FLOPS
    }
}

/// Runs `f(group, chunk)` over the `group`-image chunks of `out`, on rayon's
/// threads when `parallel`.
pub(super) fn for_each_group<T: Element>(
    out: &mut [T],
    chunk: usize,
    parallel: bool,
    f: impl Fn(usize, &mut [T]) + Sync + Send,
) {
    if out.is_empty() || chunk == 0 {
        return;
    }
    if parallel {
        out.par_chunks_mut(chunk)
            .enumerate()
            .for_each(|(i, c)| f(i, c));
    } else {
        out.chunks_mut(chunk).enumerate().for_each(|(i, c)| f(i, c));
    }
}
