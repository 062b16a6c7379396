//! 2-D convolution on NCHW images (stride 1, zero padding) and the two
//! kernels its backward pass needs, all by im2col + matrix product.
//!
//! With `K` the kernel size, `p` the padding and `Hₒ = H + 2p − K + 1`,
//! `Wₒ = W + 2p − K + 1`, the forward map is
//!
//! ```text
//! out[b, o, y, x] = bias[o] + Σ_{c, i, j} weight[o, c, i, j] · in[b, c, y + i − p, x + j − p]
//! ```
//!
//! with `in` read as 0 outside the image. *im2col* lays the `C·K·K` input
//! values each output pixel sees into one column of a matrix `col`,
//! `[C·K·K, Hₒ·Wₒ]`, so the convolution of one image is the product
//! `weight[O, C·K·K] · col` handed to [`Tensor::matmul`]. Several images go
//! into one `col` (side by side along its columns) while it stays small
//! enough for the cache, so the product is long enough for the packed GEMM;
//! groups of images run on rayon's threads when the work is large.
//!
//! The backward kernels are the two transposed products:
//! `∂L/∂col = weightᵀ · ∂L/∂out` scattered back onto the image (*col2im*,
//! which adds where windows overlap), and `∂L/∂weight = Σ_b ∂L/∂out_b · col_bᵀ`.
//!
//! *Same* convolutions (odd `K`, `p = (K − 1)/2`: the output has the
//! input's size, the only kind the flows' networks use) skip the patch
//! matrix for the forward pass and the input gradient: `same.rs` sums each
//! 16-pixel block's shifted, masked windows straight into registers, and
//! gives the input gradient as the same convolution with the kernel
//! flipped. Every other padding takes the im2col path above.
//!
//! Derivation: [`derivations::tensor_layout`](crate::derivations::tensor_layout)
//! (docs/derivations/tensor-layout.md, sections "Convolution as a matrix
//! product" and "Same convolutions without a patch matrix").

use super::parallel::serial_kernels;
use super::simd;
use super::{pool, Element, Tensor};
use crate::tensor::parallel::prelude::*;
use geometry::{for_each_group, Geometry};
use same::Same;

mod geometry;
mod same;
#[cfg(target_arch = "x86_64")]
mod x86;

/// Fills `col` (`[C·K·K, images·Hₒ·Wₒ]`, row-major) with the patches of
/// images `first .. first + images` of the contiguous NCHW input `src`.
fn im2col<T: Element>(src: &[T], g: &Geometry, first: usize, images: usize, col: &mut [T]) {
    let (h, w, k, p) = (g.height, g.width, g.kernel, g.padding);
    let pixels = g.out_pixels();
    let row_len = images * pixels;
    for c in 0..g.c_in {
        for i in 0..k {
            for j in 0..k {
                let row = (c * k + i) * k + j;
                let dst_row = &mut col[row * row_len..(row + 1) * row_len];
                // Output column x reads input column x + j − p, inside the
                // image for x in [x0, x1).
                let x1 = (w + p).saturating_sub(j).min(g.out_w);
                let x0 = p.saturating_sub(j).min(x1);
                for n in 0..images {
                    let plane = &src[((first + n) * g.c_in + c) * h * w..][..h * w];
                    for y in 0..g.out_h {
                        let dst = &mut dst_row[n * pixels + y * g.out_w..][..g.out_w];
                        let iy = y + i;
                        if iy < p || iy - p >= h {
                            dst.fill(T::ZERO);
                            continue;
                        }
                        let src_row = &plane[(iy - p) * w..][..w];
                        // x0 == x1 when this kernel column never touches the image
                        // (a kernel wider than the input): then x0 + j − p may underflow.
                        if x0 == x1 {
                            dst.fill(T::ZERO);
                            continue;
                        }
                        dst[..x0].fill(T::ZERO);
                        dst[x0..x1].copy_from_slice(&src_row[x0 + j - p..x1 + j - p]);
                        dst[x1..].fill(T::ZERO);
                    }
                }
            }
        }
    }
}

/// The transpose of [`im2col`]: adds every entry of `col` back onto the
/// image position it was read from, into `dst` (images `0 .. images` of a
/// contiguous NCHW gradient, zero on entry).
fn col2im_add<T: Element>(col: &[T], g: &Geometry, images: usize, dst: &mut [T]) {
    let (h, w, k, p) = (g.height, g.width, g.kernel, g.padding);
    let pixels = g.out_pixels();
    let row_len = images * pixels;
    for c in 0..g.c_in {
        for i in 0..k {
            for j in 0..k {
                let row = (c * k + i) * k + j;
                let src_row = &col[row * row_len..(row + 1) * row_len];
                let x1 = (w + p).saturating_sub(j).min(g.out_w);
                let x0 = p.saturating_sub(j).min(x1);
                for n in 0..images {
                    let plane = &mut dst[(n * g.c_in + c) * h * w..][..h * w];
                    for y in 0..g.out_h {
                        let iy = y + i;
                        if iy < p || iy - p >= h || x0 == x1 {
                            continue;
                        }
                        let from = &src_row[n * pixels + y * g.out_w..][x0..x1];
                        let to = &mut plane[(iy - p) * w..][x0 + j - p..x1 + j - p];
                        for (t, &v) in to.iter_mut().zip(from) {
                            *t += v;
                        }
                    }
                }
            }
        }
    }
}

/// Images `first .. first + images` of a `[B, O, Hₒ, Wₒ]` gradient as one
/// `[O, images·Hₒ·Wₒ]` matrix (a view for a single image of a contiguous
/// tensor, a copy otherwise).
fn gather_out<T: Element>(
    grad_out: &Tensor<T>,
    g: &Geometry,
    first: usize,
    images: usize,
) -> Tensor<T> {
    let pixels = g.out_pixels();
    if images == 1 {
        return grad_out.narrow(0, first, 1).reshape(&[g.c_out, pixels]);
    }
    let block = grad_out.narrow(0, first, images).contiguous();
    let src = block
        .as_slice()
        .expect("contiguous() gives a contiguous tensor");
    let mut data = pool::with_capacity(g.c_out * images * pixels);
    for o in 0..g.c_out {
        for n in 0..images {
            data.extend_from_slice(&src[(n * g.c_out + o) * pixels..][..pixels]);
        }
    }
    Tensor::from_vec(data, &[g.c_out, images * pixels])
}

/// The weight of the input gradient: `flipped[c, o, i, j] = weight[o, c, K−1−i, K−1−j]`
/// from a contiguous `[c_out, c_in, K, K]` weight.
fn flipped<T: Element>(weight: &[T], c_out: usize, c_in: usize, k: usize) -> Vec<T> {
    let taps = k * k;
    let mut out = Vec::with_capacity(weight.len());
    for c in 0..c_in {
        for o in 0..c_out {
            let src = &weight[(o * c_in + c) * taps..][..taps];
            out.extend(src.iter().rev());
        }
    }
    out
}

/// `lhs · rhs` by [`Tensor::matmul`]; with serial kernels when the groups
/// already run on several threads, since splitting each product's rows again
/// would pack its right operand once per half for nothing.
fn product<T: Element>(lhs: &Tensor<T>, rhs: &Tensor<T>, groups_parallel: bool) -> Tensor<T> {
    if groups_parallel {
        serial_kernels(|| lhs.matmul(rhs))
    } else {
        lhs.matmul(rhs)
    }
}

impl<T: Element> Tensor<T> {
    /// 2-D convolution (cross-correlation, as in every deep-learning library)
    /// with stride 1 and `padding` zeros on each side:
    /// `out[b, o, y, x] = bias[o] + Σ_{c,i,j} weight[o, c, i, j] · self[b, c, y+i−p, x+j−p]`.
    ///
    /// An odd kernel size `K` with `padding = (K − 1) / 2` keeps the image
    /// size ("same" convolution); any `K ≥ 1` and `padding` with
    /// `H + 2p ≥ K`, `W + 2p ≥ K` are accepted. Any strides are accepted
    /// (a non-contiguous input or weight is copied once).
    ///
    /// # Shapes
    /// `self: [batch, in_channels, height, width]`,
    /// `weight: [out_channels, in_channels, K, K]`, `bias: [out_channels]`
    /// → `[batch, out_channels, height + 2p − K + 1, width + 2p − K + 1]`.
    ///
    /// # Panics
    /// If the ranks, the channel counts or the bias length disagree, the
    /// kernel is not square, or it is larger than the padded image; the
    /// message names `conv2d` and the shapes.
    ///
    /// # Derivation
    /// [`derivations::tensor_layout`](crate::derivations::tensor_layout)
    /// (section "Convolution as a matrix product").
    ///
    /// # Examples
    /// ```
    /// use flowzoo::tensor::Tensor;
    /// let image = Tensor::<f64>::ones(&[1, 1, 3, 3]);
    /// let box_filter = Tensor::<f64>::ones(&[1, 1, 3, 3]);
    /// let out = image.conv2d(&box_filter, None, 1);
    /// assert_eq!(out.shape(), &[1, 1, 3, 3]);
    /// assert_eq!(out.get(&[0, 0, 1, 1]), 9.0); // the centre sees all nine
    /// assert_eq!(out.get(&[0, 0, 0, 0]), 4.0); // a corner sees four
    /// ```
    pub fn conv2d(
        &self,
        weight: &Tensor<T>,
        bias: Option<&Tensor<T>>,
        padding: usize,
    ) -> Tensor<T> {
        let g = Geometry::new("conv2d", self.shape(), weight.shape(), padding);
        if let Some(b) = bias {
            assert_eq!(
                b.shape(),
                &[g.c_out],
                "conv2d: bias must be [out_channels]: input {:?}, weight {:?}, bias {:?}",
                self.shape(),
                weight.shape(),
                b.shape()
            );
        }
        let input = self.contiguous();
        let src = input
            .as_slice()
            .expect("contiguous() gives a contiguous tensor");
        let bias = bias.map(|b| b.to_vec());
        if let Some(plan) = Same::new(&g).filter(|s| s.pays::<T>(simd::widest(), g.c_in, g.c_out)) {
            let weight = weight.contiguous();
            let out = same::forward(
                simd::widest(),
                &plan,
                src,
                g.batch,
                g.c_in,
                g.c_out,
                weight
                    .as_slice()
                    .expect("contiguous() gives a contiguous tensor"),
                bias.as_deref(),
                g.parallel(),
            );
            return Tensor::from_vec(out, &g.out_shape());
        }
        let w2 = weight.reshape(&[g.c_out, g.patch()]);
        let pixels = g.out_pixels();
        let per_image = g.c_out * pixels;
        let parallel = g.parallel();
        let group = g.group_size(parallel);
        let mut out = pool::filled(g.batch * per_image, T::ZERO);
        for_each_group(&mut out, group * per_image, parallel, |index, dst| {
            let (first, images) = (index * group, dst.len() / per_image);
            let mut col = pool::filled(g.patch() * images * pixels, T::ZERO);
            im2col(src, &g, first, images, &mut col);
            let col = Tensor::from_vec(col, &[g.patch(), images * pixels]);
            // [O, C·K·K] · [C·K·K, images·Hₒ·Wₒ]: column n·Hₒ·Wₒ + q is pixel q of image n.
            let product = product(&w2, &col, parallel);
            let product = product
                .as_slice()
                .expect("matmul returns a contiguous tensor");
            for n in 0..images {
                for o in 0..g.c_out {
                    let shift = bias.as_ref().map_or(T::ZERO, |b| b[o]);
                    let from = &product[(o * images + n) * pixels..][..pixels];
                    let to = &mut dst[n * per_image + o * pixels..][..pixels];
                    for (t, &v) in to.iter_mut().zip(from) {
                        *t = v + shift;
                    }
                }
            }
        });
        Tensor::from_vec(out, &g.out_shape())
    }

    /// The gradient of [`Tensor::conv2d`] with respect to its input: the
    /// adjoint of the convolution applied to `grad_out`,
    /// `∂L/∂in[b, c, u, v] = Σ_{o,i,j} weight[o, c, i, j] · grad_out[b, o, u−i+p, v−j+p]`
    /// (terms outside `grad_out` are zero). It is the linear map `A*` with
    /// `⟨conv2d(x), g⟩ = ⟨x, A*(g)⟩` for every `x`, `g` (bias off).
    ///
    /// # Shapes
    /// `grad_out: [batch, out_channels, Hₒ, Wₒ]`,
    /// `weight: [out_channels, in_channels, K, K]`,
    /// `input_shape = [batch, in_channels, height, width]` → a tensor of
    /// `input_shape`, where `Hₒ = height + 2p − K + 1` and likewise `Wₒ`.
    ///
    /// # Panics
    /// If `grad_out` is not the shape `conv2d` gives for `input_shape` and
    /// `weight`, or the shapes disagree as in [`Tensor::conv2d`]; the message
    /// names `conv2d_input_grad` and the shapes.
    ///
    /// # Derivation
    /// [`derivations::tensor_layout`](crate::derivations::tensor_layout)
    /// (section "Convolution as a matrix product").
    pub fn conv2d_input_grad(
        grad_out: &Tensor<T>,
        weight: &Tensor<T>,
        input_shape: &[usize],
        padding: usize,
    ) -> Tensor<T> {
        let op = "conv2d_input_grad";
        let g = Geometry::new(op, input_shape, weight.shape(), padding);
        assert_eq!(
            grad_out.shape(),
            &g.out_shape(),
            "{op}: grad_out {:?} is not the output shape {:?} of input {input_shape:?}, weight {:?}, padding {padding}",
            grad_out.shape(),
            g.out_shape(),
            weight.shape()
        );
        // The input gradient runs c_out → c_in channels.
        if let Some(plan) = Same::new(&g).filter(|s| s.pays::<T>(simd::widest(), g.c_out, g.c_in)) {
            // The adjoint of a same convolution is the same convolution of
            // grad_out with the kernel flipped and its channel axes swapped.
            let (grad_out, weight) = (grad_out.contiguous(), weight.contiguous());
            let contiguous = "contiguous() gives a contiguous tensor";
            let flipped = flipped(
                weight.as_slice().expect(contiguous),
                g.c_out,
                g.c_in,
                g.kernel,
            );
            let grad_in = same::forward(
                simd::widest(),
                &plan,
                grad_out.as_slice().expect(contiguous),
                g.batch,
                g.c_out,
                g.c_in,
                &flipped,
                None,
                g.parallel(),
            );
            return Tensor::from_vec(grad_in, input_shape);
        }
        // weightᵀ as a view: [C·K·K, O], strides handed to the GEMM.
        let w2 = weight.reshape(&[g.c_out, g.patch()]);
        let w2t = w2.t();
        let per_image = g.c_in * g.height * g.width;
        let parallel = g.parallel();
        let group = g.group_size(parallel);
        let mut grad_in = pool::filled(g.batch * per_image, T::ZERO);
        for_each_group(&mut grad_in, group * per_image, parallel, |index, dst| {
            let (first, images) = (index * group, dst.len() / per_image);
            let grad_block = gather_out(grad_out, &g, first, images);
            let grad_col = product(&w2t, &grad_block, parallel);
            let grad_col = grad_col
                .as_slice()
                .expect("matmul returns a contiguous tensor");
            col2im_add(grad_col, &g, images, dst);
        });
        Tensor::from_vec(grad_in, input_shape)
    }

    /// The gradient of [`Tensor::conv2d`] with respect to its weight:
    /// `∂L/∂weight[o, c, i, j] = Σ_{b,y,x} grad_out[b, o, y, x] · input[b, c, y+i−p, x+j−p]`.
    ///
    /// Summed over the batch in a fixed order for a given thread count, so
    /// the result is reproducible.
    ///
    /// # Shapes
    /// `input: [batch, in_channels, height, width]`,
    /// `grad_out: [batch, out_channels, Hₒ, Wₒ]` with
    /// `Hₒ = height + 2p − K + 1` (likewise `Wₒ`) →
    /// `[out_channels, in_channels, K, K]`.
    ///
    /// # Panics
    /// If `grad_out` is not the shape `conv2d` gives for `input` and a
    /// `kernel_size` kernel, or `kernel_size` is 0 or larger than the padded
    /// image; the message names `conv2d_weight_grad` and the shapes.
    ///
    /// # Derivation
    /// [`derivations::tensor_layout`](crate::derivations::tensor_layout)
    /// (section "Convolution as a matrix product").
    pub fn conv2d_weight_grad(
        input: &Tensor<T>,
        grad_out: &Tensor<T>,
        kernel_size: usize,
        padding: usize,
    ) -> Tensor<T> {
        let op = "conv2d_weight_grad";
        assert!(
            input.ndim() == 4 && grad_out.ndim() == 4,
            "{op}: expected rank-4 input and grad_out: input {:?}, grad_out {:?}",
            input.shape(),
            grad_out.shape()
        );
        let weight_shape = [grad_out.dim(1), input.dim(1), kernel_size, kernel_size];
        let g = Geometry::new(op, input.shape(), &weight_shape, padding);
        assert_eq!(
            grad_out.shape(),
            &g.out_shape(),
            "{op}: grad_out {:?} is not the output shape {:?} of input {:?} with kernel {kernel_size}, padding {padding}",
            grad_out.shape(),
            g.out_shape(),
            input.shape()
        );
        let input = input.contiguous();
        let src = input
            .as_slice()
            .expect("contiguous() gives a contiguous tensor");
        let pixels = g.out_pixels();
        let parallel = g.parallel();
        let plan = Same::new(&g);
        if let Some(plan) = &plan {
            let grad = grad_out.contiguous();
            let grad = grad
                .as_slice()
                .expect("contiguous() gives a contiguous tensor");
            let found =
                same::weight_grad::weight_grad(plan, src, grad, g.batch, g.c_in, g.c_out, parallel);
            if let Some(total) = found {
                return Tensor::from_vec(total, &weight_shape);
            }
        }
        let group = g.group_size(parallel);
        let n_groups = g.batch.div_ceil(group);
        // Contiguous ranges of groups per task, each summed in order, then the
        // task sums in order: the same association for the same thread count.
        let tasks = if parallel {
            crate::tensor::parallel::current_num_threads().min(n_groups)
        } else {
            1
        };
        let size = g.c_out * g.patch();
        let task_sum = |task: usize| -> Vec<T> {
            let mut acc = vec![T::ZERO; size];
            let (lo, hi) = (task * n_groups / tasks, (task + 1) * n_groups / tasks);
            let (mut col, mut runs) = (Vec::new(), Vec::new());
            for index in lo..hi {
                let first = index * group;
                let images = group.min(g.batch - first);
                // Every entry is written below: resizing zero-fills only growth.
                col.resize(g.patch() * images * pixels, T::ZERO);
                if let Some(plan) = &plan {
                    let stride = plan.channel_runs(src, g.c_in, first, images, &mut runs);
                    plan.col_rows(&runs, stride, images * pixels, &mut col);
                } else {
                    im2col(src, &g, first, images, &mut col);
                }
                let col_t =
                    Tensor::from_vec(std::mem::take(&mut col), &[g.patch(), images * pixels]);
                // [O, images·Hₒ·Wₒ] · colᵀ (a view) = [O, C·K·K].
                let partial = product(
                    &gather_out(grad_out, &g, first, images),
                    &col_t.t(),
                    tasks > 1,
                );
                col = col_t.into_vec();
                let partial = partial
                    .as_slice()
                    .expect("matmul returns a contiguous tensor");
                for (a, &v) in acc.iter_mut().zip(partial) {
                    *a += v;
                }
            }
            acc
        };
        let sums: Vec<Vec<T>> = if tasks > 1 {
            (0..tasks).into_par_iter().map(task_sum).collect()
        } else {
            vec![task_sum(0)]
        };
        let mut total = pool::filled(size, T::ZERO);
        for s in &sums {
            for (t, &v) in total.iter_mut().zip(s) {
                *t += v;
            }
        }
        Tensor::from_vec(total, &weight_shape)
    }

    /// The gradient of [`Tensor::conv2d`] with respect to its bias: the sum
    /// of `grad_out` over batch, height and width.
    ///
    /// # Shapes
    /// `grad_out: [batch, out_channels, Hₒ, Wₒ]` → `[out_channels]`.
    ///
    /// # Panics
    /// If `grad_out` is not rank 4; the message names `conv2d_bias_grad` and the shape.
    pub fn conv2d_bias_grad(grad_out: &Tensor<T>) -> Tensor<T> {
        assert_eq!(
            grad_out.ndim(),
            4,
            "conv2d_bias_grad: expected grad_out [batch, out_channels, height, width], got {:?}",
            grad_out.shape()
        );
        grad_out.sum_axes(&[0, 2, 3])
    }
}
