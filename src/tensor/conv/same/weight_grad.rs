//! The weight gradient of the same convolutions (`same.rs`): every
//! weight's sum over all pixels in 16-lane registers on AVX-512, reading
//! the masked windows in place; `None` elsewhere, where the caller's patch
//! matrix and GEMM run instead.

#[cfg(target_arch = "x86_64")]
use super::super::super::simd::{self, Width};
use super::super::super::Element;
use super::super::geometry::LANES;
#[cfg(target_arch = "x86_64")]
use super::super::x86::{cast, is};
use super::Same;
#[cfg(target_arch = "x86_64")]
use super::CHUNK_ELEMENTS;
#[cfg(target_arch = "x86_64")]
use crate::tensor::parallel::prelude::*;

/// `∂L/∂weight[o, c, i, j] = Σ_{b,y,x} grad[b, o, y, x]·src[b, c, y+i−p, x+j−p]`
/// for the same geometry of `plan`, on AVX-512 for `f32` (`None` elsewhere:
/// the caller's patch matrix and product run instead). `src` contiguous
/// `[batch, c_in, H, W]`, `grad` contiguous `[batch, c_out, H, W]`; returns
/// `[c_out, c_in, K, K]` as a vector.
///
/// Each weight's sum runs in 16 lanes (lane l takes the pixels t ≡ l mod
/// 16, in order) that are added in order at the end; with several threads,
/// each sums a contiguous range of images and the ranges are added in
/// order, so a thread count gives one result.
#[allow(clippy::too_many_arguments)]
pub(crate) fn weight_grad<T: Element>(
    plan: &Same,
    src: &[T],
    grad: &[T],
    batch: usize,
    c_in: usize,
    c_out: usize,
    parallel: bool,
) -> Option<Vec<T>> {
    // Why a limit: every chunk of images adds into all the 16-lane sums, so
    // they should stay in L2 (1 MiB: 32 → 32 channels 3×3 take 590 kB; the
    // MNIST models' 64 → 64 would take 2.4 MB and run faster as a GEMM).
    let lane_sums = c_out.div_ceil(4) * 4 * (c_in * plan.taps).div_ceil(4) * 4 * LANES;
    // The 16 sums of 16 lanes need AVX-512's 32 registers.
    #[cfg(target_arch = "x86_64")]
    let avx512 = simd::widest() == Width::Avx512 && is::<T, f32>();
    #[cfg(not(target_arch = "x86_64"))]
    let avx512 = false;
    if !avx512 || batch == 0 || lane_sums > 1 << 18 {
        return None;
    }
    #[cfg(target_arch = "x86_64")]
    {
        let (src, grad) = (cast::<T, f32>(src)?, cast::<T, f32>(grad)?);
        let tasks = if parallel {
            crate::tensor::parallel::current_num_threads().min(batch)
        } else {
            1
        };
        let task_sum = |task: usize| {
            weight_grad_images(
                plan,
                src,
                grad,
                c_in,
                c_out,
                task * batch / tasks..(task + 1) * batch / tasks,
            )
        };
        let sums: Vec<Vec<f32>> = if tasks > 1 {
            (0..tasks).into_par_iter().map(task_sum).collect()
        } else {
            vec![task_sum(0)]
        };
        let mut total = vec![0f32; c_out * c_in * plan.taps];
        for sum in &sums {
            for (t, &v) in total.iter_mut().zip(sum) {
                *t += v;
            }
        }
        Some(
            total
                .into_iter()
                .map(|v| T::from_f64(f64::from(v)))
                .collect(),
        )
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (plan, src, grad, c_in, c_out, parallel);
        None
    }
}

/// The weight gradient of `images` alone (see [`weight_grad`]): tiles of 4
/// output channels × 4 rows `r = c·K² + tap`, each a 16-lane sum kept in
/// `lanes` between chunks of images.
#[cfg(target_arch = "x86_64")]
fn weight_grad_images(
    plan: &Same,
    src: &[f32],
    grad: &[f32],
    c_in: usize,
    c_out: usize,
    images: std::ops::Range<usize>,
) -> Vec<f32> {
    const TILE: usize = 4;
    let (p, taps) = (plan.pixels, plan.taps);
    let rows = c_in * taps;
    let (o_tiles, r_tiles) = (c_out.div_ceil(TILE), rows.div_ceil(TILE));
    let per_tap = plan.period / LANES;
    let mut lanes = vec![0f32; o_tiles * r_tiles * TILE * TILE * LANES];
    // Twice the forward's chunk: the passes over a chunk read it from L2.
    let chunk = (2 * CHUNK_ELEMENTS / ((c_in + c_out) * p).max(1)).clamp(1, images.len().max(1));
    let zeros = vec![0f32; chunk * p + LANES];
    let (mut x_runs, mut g_runs) = (Vec::new(), Vec::new());
    for first in images.clone().step_by(chunk) {
        let n = chunk.min(images.end - first);
        let sx = plan.channel_runs(src, c_in, first, n, &mut x_runs);
        let sg = plan.channel_runs(grad, c_out, first, n, &mut g_runs);
        let total = n * p;
        let len = total.div_ceil(LANES) * LANES;
        for ot in 0..o_tiles {
            let g_rows: [&[f32]; TILE] = std::array::from_fn(|k| {
                let o = ot * TILE + k;
                if o < c_out {
                    &g_runs[o * sg + plan.margin..][..len]
                } else {
                    &zeros[..len]
                }
            });
            for rt in 0..r_tiles {
                let mut x_bits: [&[u16]; TILE] = [&plan.bits[..per_tap]; TILE];
                let x_rows: [&[f32]; TILE] = std::array::from_fn(|k| {
                    let r = rt * TILE + k;
                    if r < rows {
                        let (c, tap) = (r / taps, r % taps);
                        x_bits[k] = &plan.bits[tap * per_tap..(tap + 1) * per_tap];
                        let start = (c * sx + plan.margin).wrapping_add_signed(plan.shifts[tap]);
                        &x_runs[start..start + len]
                    } else {
                        &zeros[..len]
                    }
                });
                let tile =
                    &mut lanes[(ot * r_tiles + rt) * TILE * TILE * LANES..][..TILE * TILE * LANES];
                // SAFETY: `simd::widest` found AVX-512F (checked on entry).
                unsafe {
                    super::super::x86::weight_tile_avx512(g_rows, x_rows, x_bits, total, tile)
                };
            }
        }
    }
    let mut out = vec![0f32; c_out * rows];
    for o in 0..c_out {
        for r in 0..rows {
            let (tile, k) = (
                (o / TILE) * r_tiles + r / TILE,
                (o % TILE) * TILE + r % TILE,
            );
            let acc = &lanes[(tile * TILE * TILE + k) * LANES..][..LANES];
            out[o * rows + r] = acc.iter().fold(0.0, |s, &v| s + v);
        }
    }
    out
}
