//! The weight gradient of the same convolutions (`same.rs`): every
//! weight's sum over all pixels in 16-lane registers on AVX-512, or in
//! 8-lane registers with fused multiply-adds on AVX2 + FMA, reading the
//! masked windows in place; `None` elsewhere (f64, other CPUs, wasm32, a
//! build with `MMTEST_FEATURE=none`), where the caller's patch matrix and
//! GEMM run instead.

#[cfg(target_arch = "x86_64")]
use super::super::super::simd::{self, Width};
use super::super::super::Element;
#[cfg(target_arch = "x86_64")]
use super::super::geometry::LANES;
#[cfg(target_arch = "x86_64")]
use super::super::x86::{cast, is, weight_tile_avx2};
use super::Same;
#[cfg(target_arch = "x86_64")]
use super::CHUNK_ELEMENTS;
#[cfg(target_arch = "x86_64")]
use crate::tensor::parallel::prelude::*;

/// `∂L/∂weight[o, c, i, j] = Σ_{b,y,x} grad[b, o, y, x]·src[b, c, y+i−p, x+j−p]`
/// for the same geometry of `plan`, for `f32` on AVX-512 (when its lane
/// sums fit in L2) or AVX2 + FMA (`None` elsewhere: the caller's patch
/// matrix and product run instead). `src` contiguous `[batch, c_in, H, W]`,
/// `grad` contiguous `[batch, c_out, H, W]`; returns `[c_out, c_in, K, K]`
/// as a vector.
///
/// Each weight's sum runs in 16 lanes on AVX-512, 8 on AVX2 (lane l takes
/// the pixels t ≡ l mod 16 or 8, in order within a chunk of images) that
/// are added in order at the end; with several threads, each sums a
/// contiguous range of images and the ranges are added in order, so a
/// thread count gives one result on one machine.
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
    // The 16 sums of 16 lanes need AVX-512's 32 registers; AVX2 sums in 8
    // lanes, tiles of 3 × 4 (measured against the GEMM: "On an AVX2 host
    // (session 19)" in docs/benchmarks/images.md).
    #[cfg(target_arch = "x86_64")]
    let (avx512, avx2) = (
        // Why a limit: every chunk of images adds into all the 16-lane sums,
        // so they should stay in L2 (1 MiB: 32 → 32 channels 3×3 take 590
        // kB; the MNIST models' 64 → 64 would take 2.4 MB and run faster as
        // a GEMM).
        {
            let lane_sums = c_out.div_ceil(4) * 4 * (c_in * plan.taps).div_ceil(4) * 4 * LANES;
            simd::widest() == Width::Avx512 && is::<T, f32>() && lane_sums <= 1 << 18
        },
        simd::widest() == Width::Avx2 && is::<T, f32>() && crate::tensor::cpu::has_avx2_fma(),
    );
    #[cfg(not(target_arch = "x86_64"))]
    let (avx512, avx2) = (false, false);
    if !(avx512 || avx2) || batch == 0 || c_in == 0 || c_out == 0 {
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
        // Built once per call, read by every task (empty for AVX-512).
        let table = if avx2 { mask_table(plan) } else { Vec::new() };
        let task_sum = |task: usize| {
            let images = task * batch / tasks..(task + 1) * batch / tasks;
            if avx512 {
                weight_grad_images(plan, src, grad, c_in, c_out, images)
            } else {
                weight_grad_images_avx2(plan, src, grad, c_in, c_out, images, &table)
            }
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
        let _ = (plan, src, grad, c_in, c_out, parallel, avx512, avx2);
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

/// The weight gradient of `images` alone on AVX2 with FMA (see
/// [`weight_grad`]): tiles of up to 3 output channels × 4 rows
/// `r = c·K² + tap`, each an 8-lane sum kept in `lanes` between stretches
/// of [`STRETCH`] pixels (3 × 4 measured faster than 2 × 5: "On an AVX2
/// host (session 19)" in docs/benchmarks/images.md). With at least 4 input channels a tile's
/// rows are 4 channels at one tap, which share one mask: the kernel
/// zeroes the gradient's lanes outside it and reads the windows with plain
/// loads (their other lanes hold finite neighbours or the runs' zero
/// margins, so a product with a zeroed lane is 0 for finite inputs). With
/// fewer channels a tile is 4 consecutive rows, each window read by a
/// masked load. The masks come from `table` ([`mask_table`]). Lanes past the last pixel multiply the zeros after the
/// gradient's runs.
#[cfg(target_arch = "x86_64")]
fn weight_grad_images_avx2(
    plan: &Same,
    src: &[f32],
    grad: &[f32],
    c_in: usize,
    c_out: usize,
    images: std::ops::Range<usize>,
    table: &[i32],
) -> Vec<f32> {
    const OT: usize = 3;
    const L: usize = 8;
    let (p, taps, period) = (plan.pixels, plan.taps, plan.period);
    let rows = c_in * taps;
    let ext = period + STRETCH;
    // Each tile's rows r (None past the last row).
    let same_mask = c_in >= RT;
    let tiles: Vec<[Option<usize>; RT]> = if same_mask {
        (0..c_in.div_ceil(RT))
            .flat_map(|ct| {
                (0..taps).map(move |tap| {
                    std::array::from_fn(|k| {
                        let c = ct * RT + k;
                        (c < c_in).then_some(c * taps + tap)
                    })
                })
            })
            .collect()
    } else {
        (0..rows.div_ceil(RT))
            .map(|rt| std::array::from_fn(|k| Some(rt * RT + k).filter(|&r| r < rows)))
            .collect()
    };
    let per_tile = c_out * RT * L;
    let mut lanes = vec![0f32; tiles.len() * per_tile];
    let chunk = (2 * CHUNK_ELEMENTS / ((c_in + c_out) * p).max(1)).clamp(1, images.len().max(1));
    let zeros = vec![0f32; STRETCH];
    let (mut x_runs, mut g_runs) = (Vec::new(), Vec::new());
    for first in images.clone().step_by(chunk) {
        let n = chunk.min(images.end - first);
        let sx = plan.channel_runs(src, c_in, first, n, &mut x_runs);
        let sg = plan.channel_runs(grad, c_out, first, n, &mut g_runs);
        let total = n * p;
        for t0 in (0..total).step_by(STRETCH) {
            let len = (total - t0).min(STRETCH).div_ceil(L) * L;
            let (phase, blocks) = (t0 % period, len / L);
            let g_row = |o: usize| &g_runs[o * sg + plan.margin + t0..][..len];
            for (tile, lanes) in tiles.iter().zip(lanes.chunks_exact_mut(per_tile)) {
                let mut m_rows: [&[i32]; RT] = [&table[..len]; RT];
                let x_rows: [&[f32]; RT] = std::array::from_fn(|k| match tile[k] {
                    Some(r) => {
                        let (c, tap) = (r / taps, r % taps);
                        m_rows[k] = &table[tap * ext + phase..][..len];
                        let start =
                            (c * sx + plan.margin + t0).wrapping_add_signed(plan.shifts[tap]);
                        &x_runs[start..start + len]
                    }
                    None => &zeros[..len],
                });
                let tile = Tile {
                    x_rows,
                    m_rows,
                    blocks,
                    same_mask,
                };
                let mut o0 = 0;
                while o0 < c_out {
                    let acc = &mut lanes[o0 * RT * L..];
                    // SAFETY: the caller found AVX2 and FMA on this CPU.
                    unsafe {
                        match OT.min(c_out - o0) {
                            3 => tile.run::<3>(std::array::from_fn(|k| g_row(o0 + k)), acc),
                            2 => tile.run::<2>(std::array::from_fn(|k| g_row(o0 + k)), acc),
                            _ => tile.run::<1>([g_row(o0)], acc),
                        }
                    }
                    o0 += OT;
                }
            }
        }
    }
    // lanes: [tile][o][k][L]; row r of output o is slot k of its tile.
    let mut out = vec![0f32; c_out * rows];
    for (tile, lanes) in tiles.iter().zip(lanes.chunks_exact(per_tile)) {
        for (k, r) in tile.iter().enumerate() {
            let Some(r) = *r else { continue };
            for o in 0..c_out {
                let acc = &lanes[(o * RT + k) * L..][..L];
                out[o * rows + r] = acc.iter().fold(0.0, |s, &v| s + v);
            }
        }
    }
    out
}

/// Pixels per stretch of the AVX2 weight gradient: a tile's 4 windows
/// and their masks take 32 kB, read again for every 3 output channels; the
/// gradient's rows (4 kB per output channel) come from L2.
#[cfg(target_arch = "x86_64")]
const STRETCH: usize = 1024;

/// Rows `c·K² + tap` per tile of the AVX2 weight gradient.
#[cfg(target_arch = "x86_64")]
const RT: usize = 4;

/// The AVX2 weight gradient's masks: `[tap][period + STRETCH]`, 0 or −1
/// per pixel (−1 where the tap reads inside the image), extended past the
/// period by a stretch so that a stretch's masks are one slice.
#[cfg(target_arch = "x86_64")]
fn mask_table(plan: &Same) -> Vec<i32> {
    let (taps, period) = (plan.taps, plan.period);
    (0..taps)
        .flat_map(|tap| {
            let masks = &plan.masks[tap * period..(tap + 1) * period];
            (0..period + STRETCH).map(move |t| -i32::from(masks[t % period]))
        })
        .collect()
}

/// What one call of [`weight_tile_avx2`] reads besides the gradient's
/// rows: the tile's [`RT`] windows, their masks, the blocks of 8 pixels, and
/// whether the windows share `m_rows[0]`.
#[cfg(target_arch = "x86_64")]
struct Tile<'a> {
    x_rows: [&'a [f32]; RT],
    m_rows: [&'a [i32]; RT],
    blocks: usize,
    same_mask: bool,
}

#[cfg(target_arch = "x86_64")]
impl Tile<'_> {
    /// Adds the tile's sums for the `OT` gradient rows `g_rows` into the
    /// first `OT·4·8` values of `acc`.
    ///
    /// # Safety
    /// The CPU must have AVX2 and FMA.
    unsafe fn run<const OT: usize>(&self, g_rows: [&[f32]; OT], acc: &mut [f32]) {
        let acc = &mut acc[..OT * RT * 8];
        if self.same_mask {
            weight_tile_avx2::<OT, RT, true>(g_rows, self.x_rows, self.m_rows, self.blocks, acc)
        } else {
            weight_tile_avx2::<OT, RT, false>(g_rows, self.x_rows, self.m_rows, self.blocks, acc)
        }
    }
}
