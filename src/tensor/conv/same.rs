//! The "same" convolutions (odd `K`, padding `p = (K − 1)/2`, so the output
//! has the input's size): the only ones the flows' networks use, computed
//! without a patch matrix for the forward pass and the input gradient, and
//! with a patch matrix built in long vector loops for the weight gradient.
//!
//! Number the pixels of a batch row by row and image after image,
//! `t = n·H·W + y·W + x`. With the output grid equal to the input grid, tap
//! `(i, j)` of the kernel reads, for output pixel `t`, input pixel
//! `t + sᵢⱼ` with `sᵢⱼ = (i − p)·W + (j − p)`, provided `(y + i − p, x + j − p)`
//! lies in the image, and 0 otherwise. So once each input channel is one
//! run over the batch (channel-major, "CNHW") between zero margins, the
//! values a tap reads for [`LANES`] consecutive output pixels are
//! `LANES` consecutive values of the run, kept or zeroed by a mask that
//! depends only on the tap and on `t` modulo `lcm(H·W, LANES)`.
//!
//! The forward pass takes the output pixels `LANES` at a time; each tile of
//! up to 16 output channels sums `bias[o] + Σ_r weight[o, r]·window_r` in
//! registers, one vector per channel, reading the `C·K²` windows in place
//! by masked loads (`f32` on AVX-512, or on AVX2 up to 8 outputs or
//! 1 × 1) or from a panel they are gathered into (a few kB in L1), and
//! stores the block straight into the NCHW output.
//! The input gradient of a same convolution is the same convolution of
//! `∂L/∂out` by the kernel flipped, channel axes swapped: the same loops,
//! no col2im. The weight gradient sums over every pixel in 16-lane
//! registers on AVX-512, or 8-lane ones on AVX2 + FMA ([`weight_grad`]);
//! elsewhere the masked windows are the rows of im2col's matrix for the
//! GEMM ([`Same::col_rows`]).
//!
//! **Bits.** A forward output is `bias[o]` plus the products in the order
//! `(c, i, j)`, one rounding per multiply and per add, in plain loops or in
//! intrinsics (`x86.rs`) that multiply then add, never fused: every width
//! gives the bits `wasm32` gives.
//!
//! Derivation: docs/derivations/tensor-layout.md, "Convolution as a matrix
//! product" and "Same convolutions without a patch matrix".

use super::super::simd::Width;
use super::super::{pool, Element};
use super::geometry::{for_each_group, Geometry, LANES};
#[cfg(target_arch = "x86_64")]
use super::x86::{cast, cast_mut, is};

/// Input elements (channels × pixels) per channel-major chunk of images.
const CHUNK_ELEMENTS: usize = 1 << 16;

/// Largest mask table (taps × period) built; larger images take the
/// general path.
const MAX_MASKS: usize = 1 << 20;

/// What a same convolution of one image size needs: the taps' shifts and
/// masks.
pub(super) struct Same {
    /// `H·W`.
    pixels: usize,
    /// `K²`, the taps in the order `(i, j)`.
    taps: usize,
    /// `sᵢⱼ = (i − p)·W + (j − p)` per tap.
    shifts: Vec<isize>,
    /// `lcm(H·W, LANES)`: the masks repeat with this period in `t`.
    period: usize,
    /// `[tap][period]`: whether the tap reads inside the image for pixel
    /// `t mod period`.
    masks: Vec<bool>,
    /// The same masks as bits: `[tap][period / LANES]`, bit l for lane l.
    bits: Vec<u16>,
    /// Zeros before and after each channel's run, so that every window a
    /// block reads lies inside the buffer: `p·W + p + LANES`.
    margin: usize,
}

impl Same {
    /// The plan for `g`, or `None` when `g` is not a same convolution (or
    /// its images are empty or too large for the mask table).
    pub(super) fn new(g: &Geometry) -> Option<Same> {
        let (h, w, k, p) = (g.height, g.width, g.kernel, g.padding);
        let pixels = h * w;
        if k != 2 * p + 1 || pixels == 0 {
            return None;
        }
        let period = pixels / gcd(pixels, LANES) * LANES;
        let taps = k * k;
        if taps * period > MAX_MASKS {
            return None;
        }
        let mut shifts = Vec::with_capacity(taps);
        let mut masks = Vec::with_capacity(taps * period);
        for i in 0..k {
            for j in 0..k {
                shifts.push((i as isize - p as isize) * w as isize + j as isize - p as isize);
                masks.extend((0..period).map(|t| {
                    let (y, x) = ((t % pixels) / w + i, t % w + j);
                    // Input pixel (y − p, x − p) inside the image.
                    y >= p && y - p < h && x >= p && x - p < w
                }));
            }
        }
        let bits = masks
            .chunks_exact(LANES)
            .map(|m| (0..LANES).filter(|&l| m[l]).map(|l| 1u16 << l).sum())
            .collect();
        Some(Same {
            pixels,
            taps,
            shifts,
            period,
            masks,
            bits,
            margin: p * w + p + LANES,
        })
    }

    /// Whether the direct kernel beats im2col + GEMM for `c_in → c_out`
    /// channels of `T` on `width`'s registers. Measured
    /// (docs/benchmarks/images.md, "Convolutions on the flows' shapes" for
    /// AVX-512, "On an AVX2 host (session 19)" for AVX2): up to 32 output
    /// channels it always does. With more, on AVX-512 it needs at least 256 rows `c·K² + tap`
    /// per block (64 outputs of 1-8 channels 3×3, or a 1×1 of 64, ran
    /// faster as a GEMM); on AVX2 with `f32` it needs a 3×3 (or larger)
    /// kernel and 64 rows: 8 → 64 channels 3×3 ran 0.34-0.49 of the GEMM
    /// path's time on 14×14 maps and 0.89-0.98 on 7×7, 16 → 64 0.55, while
    /// 4 → 64 (36 rows) ran 1.11-1.29 and a 1×1 of 64 channels 1.27-1.70.
    #[cfg_attr(
        not(target_arch = "x86_64"),
        allow(clippy::extra_unused_type_parameters)
    )]
    pub(super) fn pays<T: Element>(&self, width: Width, c_in: usize, c_out: usize) -> bool {
        let rows = c_in * self.taps;
        #[cfg(target_arch = "x86_64")]
        if width == Width::Avx2 && is::<T, f32>() {
            return c_out <= 32 || (self.taps > 1 && rows >= 64);
        }
        let _ = width;
        c_out <= 32 || rows >= 256
    }

    /// Lays images `first .. first + images` of the contiguous NCHW `src`
    /// (`channels` channels) out channel by channel into `runs`: per
    /// channel, `margin` zeros, the images' planes one after another, then
    /// `margin` zeros. Returns the distance between two channels' runs.
    /// The margins are written only when `runs` changes size: the planes
    /// overwrite everything else.
    pub(super) fn channel_runs<T: Element>(
        &self,
        src: &[T],
        channels: usize,
        first: usize,
        images: usize,
        runs: &mut Vec<T>,
    ) -> usize {
        let p = self.pixels;
        let stride = images * p + 2 * self.margin;
        if runs.len() != channels * stride {
            runs.clear();
            runs.resize(channels * stride, T::ZERO);
        }
        for (c, run) in runs.chunks_exact_mut(stride).enumerate() {
            let planes = run[self.margin..self.margin + images * p].chunks_exact_mut(p);
            for (n, dst) in planes.enumerate() {
                copy_plane(dst, &src[((first + n) * channels + c) * p..][..p]);
            }
        }
        stride
    }

    /// Writes the patch matrix `col` (`[C·K², total]`, row `c·K² + tap`) of
    /// the `total` pixels in `runs` (from [`Same::channel_runs`]):
    /// `col[c·K² + tap, t] = runs[c][t + s_tap]` where the tap reads inside
    /// the image, else 0.
    pub(super) fn col_rows<T: Element>(
        &self,
        runs: &[T],
        stride: usize,
        total: usize,
        col: &mut [T],
    ) {
        let mut rows = col.chunks_exact_mut(total.max(1));
        for run in runs.chunks_exact(stride) {
            for (tap, &shift) in self.shifts.iter().enumerate() {
                let start = self.margin.wrapping_add_signed(shift);
                let src = &run[start..start + total];
                let mask = &self.masks[tap * self.period..(tap + 1) * self.period];
                let dst = rows.next().expect("col has a row per channel and tap");
                for (d, s) in dst.chunks_mut(self.period).zip(src.chunks(self.period)) {
                    for ((d, &s), &keep) in d.iter_mut().zip(s).zip(mask) {
                        *d = if keep { s } else { T::ZERO };
                    }
                }
            }
        }
    }

    /// Fills `panel` (`[C·K²][LANES]`) with the masked windows of output
    /// pixels `t0 .. t0 + LANES` of the runs.
    #[inline(always)]
    fn panel<T: Element>(&self, runs: &[T], stride: usize, t0: usize, panel: &mut [T]) {
        let phase = t0 % self.period;
        let mut rows = panel.chunks_exact_mut(LANES);
        for run in runs.chunks_exact(stride) {
            for (tap, &shift) in self.shifts.iter().enumerate() {
                let start = (self.margin + t0).wrapping_add_signed(shift);
                let src: &[T; LANES] = run[start..start + LANES]
                    .try_into()
                    .expect("the margins hold every window");
                let mask: &[bool; LANES] = self.masks[tap * self.period + phase..][..LANES]
                    .try_into()
                    .expect("the period is a multiple of LANES");
                let dst = rows
                    .next()
                    .expect("the panel has a row per channel and tap");
                for l in 0..LANES {
                    dst[l] = if mask[l] { src[l] } else { T::ZERO };
                }
            }
        }
    }
}

impl Same {
    /// For output pixels `t0 .. t0 + LANES`: where each tap's window starts
    /// in a channel's run, and its mask bits.
    fn windows(&self, t0: usize, starts: &mut [usize], bits: &mut [u16]) {
        let phase = t0 % self.period / LANES;
        let per_tap = self.period / LANES;
        for (tap, (start, bit)) in starts.iter_mut().zip(bits.iter_mut()).enumerate() {
            *start = (self.margin + t0).wrapping_add_signed(self.shifts[tap]);
            *bit = self.bits[tap * per_tap + phase];
        }
    }
}

/// `a` and `b`'s greatest common divisor.
fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// `dst ← src`. Why the cases: the planes of the flows' small maps are 4 or
/// 16 values, and a copy of a length known at compile time is a few moves,
/// where `copy_from_slice` of a run-time length is a library call.
#[inline(always)]
fn copy_plane<T: Copy>(dst: &mut [T], src: &[T]) {
    match src.len() {
        4 => dst[..4].copy_from_slice(&src[..4]),
        16 => dst[..16].copy_from_slice(&src[..16]),
        64 => dst[..64].copy_from_slice(&src[..64]),
        _ => dst.copy_from_slice(src),
    }
}

/// One same convolution, ready to run on groups of images.
struct Job<'a, T> {
    plan: &'a Same,
    /// The contiguous NCHW input.
    src: &'a [T],
    c_in: usize,
    c_out: usize,
    /// The weight cut into tiles of output channels: tile `(o0, ot)` holds
    /// `[C·K²][ot]` from offset `o0·C·K²`, so a block's products read it in
    /// order.
    weights: Vec<T>,
    /// `(first output channel, channels)` of each tile.
    tiles: Vec<(usize, usize)>,
    /// `[c_out]`, zeros without a bias.
    bias: Vec<T>,
    /// The registers the products run on.
    width: Width,
}

/// `out[b, o] = bias[o] + Σ_{c,i,j} weight[o, c, i, j]·src[b, c, · + (i−p, j−p)]`
/// for the same geometry of `plan`: `src` contiguous `[batch, c_in, H, W]`,
/// `weight` contiguous `[c_out, c_in, K, K]`; returns `[batch, c_out, H, W]`
/// as a vector. Groups of images run on rayon's threads when `parallel`.
/// The products run on the registers of `width`, which must be
/// `simd::widest()` or narrower (the tests compare the widths).
#[allow(clippy::too_many_arguments)]
pub(super) fn forward<T: Element>(
    width: Width,
    plan: &Same,
    src: &[T],
    batch: usize,
    c_in: usize,
    c_out: usize,
    weight: &[T],
    bias: Option<&[T]>,
    parallel: bool,
) -> Vec<T> {
    let rows = c_in * plan.taps;
    // AVX-512, f32: 16 channels of 16 lanes fill half the 32 registers (the
    // sweet spot measured, 234 GFLOP/s on one core); AVX2 holds a channel's
    // 16 lanes in 2 of its 16 registers, so 4 channels.
    let widest = match width {
        #[cfg(target_arch = "x86_64")]
        Width::Avx512 if is::<T, f32>() => 16,
        _ => 4,
    };
    let mut tiles = Vec::new();
    let mut weights = Vec::with_capacity(c_out * rows);
    let mut o0 = 0;
    while o0 < c_out {
        let ot = [16, 8, 4, 2, 1]
            .into_iter()
            .find(|&n| n <= widest && n <= c_out - o0)
            .expect("1 always fits");
        for r in 0..rows {
            weights.extend((o0..o0 + ot).map(|o| weight[o * rows + r]));
        }
        tiles.push((o0, ot));
        o0 += ot;
    }
    let job = Job {
        plan,
        src,
        c_in,
        c_out,
        weights,
        tiles,
        bias: bias.map_or_else(|| vec![T::ZERO; c_out], <[T]>::to_vec),
        width,
    };
    let per_image = c_out * plan.pixels;
    let mut out = pool::filled(batch * per_image, T::ZERO);
    let threads = if parallel {
        crate::tensor::parallel::current_num_threads()
    } else {
        1
    };
    let group = batch.div_ceil(threads).max(1);
    for_each_group(&mut out, group * per_image, parallel, |index, dst| {
        run(&job, index * group, dst)
    });
    out
}

/// The output images `first ..` that `out` holds (NCHW, whole images).
fn run<T: Element>(job: &Job<T>, first: usize, out: &mut [T]) {
    let plan = job.plan;
    let p = plan.pixels;
    let per_image = job.c_out * p;
    let images = out.len() / per_image;
    let rows = job.c_in * plan.taps;
    let chunk = (CHUNK_ELEMENTS / (job.c_in * p).max(1)).clamp(1, images.max(1));
    let mut runs = Vec::new();
    let direct = reads_in_place::<T>(job.width, job.c_out, plan.taps);
    // Blocks per group: each tile's weights (C·K²·16 values, up to 37 kB for
    // 64 input channels) are read from L1 for a whole group, not reloaded
    // from L2 for every block; a group's panels stay within 128 kB.
    let group = if job.tiles.len() < 2 {
        1
    } else if direct {
        8
    } else {
        (32768 / (rows * LANES).max(1)).clamp(1, 8)
    };
    let mut panels = vec![T::ZERO; if direct { 0 } else { group * rows * LANES }];
    let (mut starts, mut bits) = (vec![0; group * plan.taps], vec![0; group * plan.taps]);
    let mut at = vec![[0usize; LANES]; group];
    let mut done = 0;
    while done < images {
        let n = chunk.min(images - done);
        let stride = plan.channel_runs(job.src, job.c_in, first + done, n, &mut runs);
        let dst = &mut out[done * per_image..(done + n) * per_image];
        let total = n * p;
        for g0 in (0..total).step_by(group * LANES) {
            let blocks = (total - g0).div_ceil(LANES).min(group);
            for (k, at) in at.iter_mut().enumerate().take(blocks) {
                let t0 = g0 + k * LANES;
                if direct {
                    let taps = k * plan.taps..(k + 1) * plan.taps;
                    plan.windows(t0, &mut starts[taps.clone()], &mut bits[taps]);
                } else {
                    let panel = &mut panels[k * rows * LANES..][..rows * LANES];
                    fill_panel(
                        plan,
                        job.width,
                        &runs,
                        stride,
                        t0,
                        panel,
                        &mut starts,
                        &mut bits,
                    );
                }
                // Where lane l's pixel t0 + l sits in channel 0 of `dst`:
                // image n, pixel q (one division per block, not per lane).
                let (mut n, mut q) = (t0 / p, t0 % p);
                for a in at.iter_mut().take((total - t0).min(LANES)) {
                    *a = n * per_image + q;
                    q += 1;
                    if q == p {
                        (n, q) = (n + 1, 0);
                    }
                }
            }
            for &(o0, ot) in &job.tiles {
                let weights = &job.weights[o0 * rows..(o0 + ot) * rows];
                let bias = &job.bias[o0..o0 + ot];
                for (k, at) in at.iter().enumerate().take(blocks) {
                    let t0 = g0 + k * LANES;
                    let source = if direct {
                        let taps = k * plan.taps..(k + 1) * plan.taps;
                        Source::windows(&runs, stride, &starts[taps.clone()], &bits[taps])
                    } else {
                        Source::Panel(&panels[k * rows * LANES..][..rows * LANES])
                    };
                    let block = Block {
                        at,
                        lanes: (total - t0).min(LANES),
                        pixels: p,
                        width: job.width,
                    };
                    match ot {
                        16 => tile::<T, 16>(&source, weights, bias, o0, dst, &block),
                        8 => tile::<T, 8>(&source, weights, bias, o0, dst, &block),
                        4 => tile::<T, 4>(&source, weights, bias, o0, dst, &block),
                        2 => tile::<T, 2>(&source, weights, bias, o0, dst, &block),
                        _ => tile::<T, 1>(&source, weights, bias, o0, dst, &block),
                    }
                }
            }
        }
        done += n;
    }
}

/// Fills `panel` with the masked windows of output pixels `t0 .. t0 +
/// LANES` ([`Same::panel`]); for `f32` on AVX2 by masked vector loads
/// (`x86::panel_avx2`, the same values), with `starts` and `bits` (at
/// least a tap's worth each) as scratch.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn fill_panel<T: Element>(
    plan: &Same,
    width: Width,
    runs: &[T],
    stride: usize,
    t0: usize,
    panel: &mut [T],
    starts: &mut [usize],
    bits: &mut [u16],
) {
    #[cfg(target_arch = "x86_64")]
    if width == Width::Avx2 {
        if let (Some(runs), Some(panel)) = (cast::<T, f32>(runs), cast_mut::<T, f32>(panel)) {
            let (starts, bits) = (&mut starts[..plan.taps], &mut bits[..plan.taps]);
            plan.windows(t0, starts, bits);
            // SAFETY: `width` is `simd::widest()` or narrower, so the CPU has AVX2.
            return unsafe { super::x86::panel_avx2(runs, stride, starts, bits, panel) };
        }
    }
    let _ = (width, &starts, &bits);
    plan.panel(runs, stride, t0, panel);
}

/// Where a block's lanes are stored.
struct Block<'a> {
    /// Offset of lane l's pixel in output channel 0.
    at: &'a [usize; LANES],
    /// Lanes that hold pixels (fewer in the last block).
    lanes: usize,
    /// `H·W`: the distance between two output channels of an image.
    pixels: usize,
    /// The registers the products run on.
    width: Width,
}

/// `out[o0 + o][lane] = bias[o] + Σ_r weights[r][o]·panel[r][lane]` for the
/// `OT` channels of one tile, summed in registers in the order of `r`.
#[inline(always)]
fn tile<T: Element, const OT: usize>(
    source: &Source<T>,
    weights: &[T],
    bias: &[T],
    o0: usize,
    out: &mut [T],
    block: &Block,
) {
    let mut acc = [[T::ZERO; LANES]; OT];
    for (a, &b) in acc.iter_mut().zip(bias) {
        *a = [b; LANES];
    }
    products::<T, OT>(block.width, source, weights, acc.as_flattened_mut());
    let whole = block.lanes == LANES && block.pixels.is_multiple_of(LANES);
    for (o, a) in acc.iter().enumerate() {
        let base = (o0 + o) * block.pixels;
        if whole {
            // The block is LANES consecutive pixels of one image.
            out[block.at[0] + base..][..LANES].copy_from_slice(a);
        } else {
            for l in 0..block.lanes {
                out[block.at[l] + base] = a[l];
            }
        }
    }
}

/// What a block's products read: the rows `r = c·K² + tap` of its masked
/// windows.
enum Source<'a, T> {
    /// Gathered into a panel, `[C·K²][LANES]`.
    Panel(&'a [T]),
    /// Read in place from the channel runs by masked loads (AVX-512 or AVX2, f32; see `reads_in_place`):
    /// row `c·K² + tap` is `runs[c·stride + starts[tap] ..][..LANES]` with
    /// the lanes outside `bits[tap]` read as 0.
    #[cfg(target_arch = "x86_64")]
    Windows {
        runs: &'a [f32],
        stride: usize,
        starts: &'a [usize],
        bits: &'a [u16],
    },
}

impl<'a, T: Element> Source<'a, T> {
    /// [`Source::Windows`] over `runs` (only built where [`reads_in_place`]
    /// holds, so `T` is `f32`).
    fn windows(runs: &'a [T], stride: usize, starts: &'a [usize], bits: &'a [u16]) -> Self {
        #[cfg(target_arch = "x86_64")]
        if let Some(runs) = cast::<T, f32>(runs) {
            return Source::Windows {
                runs,
                stride,
                starts,
                bits,
            };
        }
        unreachable!(
            "windows are read in place only for f32 on x86-64 ({} values, {stride}, {starts:?}, {bits:?})",
            runs.len()
        )
    }
}

/// Whether the products read the windows in place (masked loads, `f32`)
/// instead of from a panel, for `c_out` output channels and `taps` taps:
/// always on AVX-512; on AVX2 for at most 8 output channels (2 tiles) or
/// a 1 × 1 kernel. Each tile repeats the masked loads a panel gathers once
/// per block, and AVX2 builds its lane masks from the bits on every load:
/// measured (docs/benchmarks/images.md, "On an AVX2 host (session 14)"),
/// windows ran 0.27-0.83 of the (scalar-gathered) panel's time up to 16
/// outputs, 0.78-1.01 for 1 × 1, and 1.00-1.31 with 32-64 outputs of a
/// 3 × 3 kernel; since the panel is gathered by masked vector loads
/// ("On an AVX2 host (session 19)"), the panel ran 0.87-0.90 of the
/// windows' time with 16 outputs, but 1.04-1.10 with 8 and 1.35-1.43 with
/// 4. Off x86-64 the answer is always no, and `T` goes unused there.
#[cfg_attr(
    not(target_arch = "x86_64"),
    allow(clippy::extra_unused_type_parameters, unused_variables)
)]
fn reads_in_place<T: Element>(width: Width, c_out: usize, taps: usize) -> bool {
    match width {
        #[cfg(target_arch = "x86_64")]
        Width::Avx512 => is::<T, f32>(),
        #[cfg(target_arch = "x86_64")]
        Width::Avx2 => is::<T, f32>() && (c_out <= 8 || taps == 1),
        _ => false,
    }
}

/// `acc[o·LANES + l] += Σ_r weights[r·OT + o]·row_r[l]` over the rows of
/// `source`, in the order of `r`, one multiply and one add per term: on
/// `width`'s registers for `f32` on x86-64, in plain loops otherwise (the
/// same bits).
fn products<T: Element, const OT: usize>(
    width: Width,
    source: &Source<T>,
    weights: &[T],
    acc: &mut [T],
) {
    // Off x86-64 a panel is the only source, so the match cannot fail there.
    #[cfg_attr(
        not(target_arch = "x86_64"),
        allow(clippy::infallible_destructuring_match)
    )]
    let panel = match source {
        Source::Panel(panel) => panel,
        #[cfg(target_arch = "x86_64")]
        Source::Windows {
            runs,
            stride,
            starts,
            bits,
        } => {
            let w = cast::<T, f32>(weights).expect("windows are f32");
            let acc = cast_mut::<T, f32>(acc).expect("windows are f32");
            // SAFETY: windows are read in place only where `simd::widest`
            // found AVX-512F or AVX2 on this CPU, and `width` says which.
            return unsafe {
                if width == Width::Avx512 {
                    super::x86::windows_avx512::<OT>(runs, *stride, starts, bits, w, acc)
                } else {
                    super::x86::windows_avx2::<OT>(runs, *stride, starts, bits, w, acc)
                }
            };
        }
    };
    #[cfg(target_arch = "x86_64")]
    if let (Some(p), Some(w)) = (cast::<T, f32>(panel), cast::<T, f32>(weights)) {
        let acc = cast_mut::<T, f32>(acc).expect("the same element type");
        // AVX-512 reads f32 windows in place (`Source::Windows`), so a panel
        // of f32 meets at most AVX2 here (more than 8 outputs, K > 1).
        if width == Width::Avx2 {
            // SAFETY: `simd::widest` found AVX2 on this CPU.
            return unsafe { super::x86::products_avx2::<OT>(p, w, acc) };
        }
    }
    let _ = width;
    for (v, w) in panel.chunks_exact(LANES).zip(weights.chunks_exact(OT)) {
        for (a, &wo) in acc.chunks_exact_mut(LANES).zip(w) {
            for (a, &vl) in a.iter_mut().zip(v) {
                *a += wo * vl;
            }
        }
    }
}

pub(super) mod weight_grad;

#[cfg(test)]
mod tests;
