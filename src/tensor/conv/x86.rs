//! The products of the same convolutions (`same.rs`) in AVX2 and AVX-512F
//! intrinsics: in the forward pass (and the input gradient, the same
//! kernel) a multiply, then an add (never a fused multiply-add), so it gives
//! the bits of the plain loops on every width. The weight gradient's tiles
//! (`weight_tile_*`) promise no bits across widths; the AVX2 one fuses.
//!
//! Each function is `unsafe` only for its CPU feature; it checks the
//! lengths of its slices before it reads through pointers.

use super::geometry::LANES;
use std::arch::x86_64::*;

/// See `same::products` and `same::Source::Windows`: the rows
/// read in place by masked loads (the margins of the runs keep every
/// window inside `runs`; the loads are checked anyway).
///
/// # Safety
/// The CPU must have AVX-512F.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn windows_avx512<const OT: usize>(
    runs: &[f32],
    stride: usize,
    starts: &[usize],
    bits: &[u16],
    weights: &[f32],
    acc: &mut [f32],
) {
    let channels = windows_fit(runs, stride, starts, bits, weights.len(), acc.len(), OT);
    let (mut w, out) = (weights.as_ptr(), acc.as_mut_ptr());
    // SAFETY (every pointer below): the lengths were checked above.
    let mut a = [_mm512_setzero_ps(); OT];
    for (o, a) in a.iter_mut().enumerate() {
        *a = _mm512_loadu_ps(out.add(o * LANES));
    }
    for c in 0..channels {
        let run = runs.as_ptr().add(c * stride);
        for (&start, &bit) in starts.iter().zip(bits) {
            let v = _mm512_maskz_loadu_ps(bit, run.add(start));
            for (o, a) in a.iter_mut().enumerate() {
                *a = _mm512_add_ps(*a, _mm512_mul_ps(_mm512_set1_ps(*w.add(o)), v));
            }
            w = w.add(OT);
        }
    }
    for (o, a) in a.iter().enumerate() {
        _mm512_storeu_ps(out.add(o * LANES), *a);
    }
}

/// [`windows_avx512`] on AVX2: each channel's 16 lanes in two 256-bit
/// halves, the lanes outside `bits[tap]` loaded as 0 by `vmaskmovps` (the
/// lane masks built from the bits: lane l kept where bit l is set). The
/// same multiplies and adds in the same order, so the same bits.
///
/// # Safety
/// The CPU must have AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn windows_avx2<const OT: usize>(
    runs: &[f32],
    stride: usize,
    starts: &[usize],
    bits: &[u16],
    weights: &[f32],
    acc: &mut [f32],
) {
    let channels = windows_fit(runs, stride, starts, bits, weights.len(), acc.len(), OT);
    let (mut w, out) = (weights.as_ptr(), acc.as_mut_ptr());
    // SAFETY (every pointer below): the lengths were checked above.
    let (mut lo, mut hi) = ([_mm256_setzero_ps(); OT], [_mm256_setzero_ps(); OT]);
    for o in 0..OT {
        lo[o] = _mm256_loadu_ps(out.add(o * LANES));
        hi[o] = _mm256_loadu_ps(out.add(o * LANES + 8));
    }
    for c in 0..channels {
        let run = runs.as_ptr().add(c * stride);
        for (&start, &bit) in starts.iter().zip(bits) {
            let (m0, m1) = lane_masks(bit);
            let v0 = _mm256_maskload_ps(run.add(start), m0);
            let v1 = _mm256_maskload_ps(run.add(start + 8), m1);
            for o in 0..OT {
                let wo = _mm256_set1_ps(*w.add(o));
                lo[o] = _mm256_add_ps(lo[o], _mm256_mul_ps(wo, v0));
                hi[o] = _mm256_add_ps(hi[o], _mm256_mul_ps(wo, v1));
            }
            w = w.add(OT);
        }
    }
    for o in 0..OT {
        _mm256_storeu_ps(out.add(o * LANES), lo[o]);
        _mm256_storeu_ps(out.add(o * LANES + 8), hi[o]);
    }
}

/// Gathers the masked windows of one block into a panel (`[C·K²][LANES]`,
/// row `c·K² + tap`): the rows [`windows_avx2`] would read in place, each
/// loaded once by `vmaskmovps` (lanes outside `bits[tap]` as 0) and stored,
/// so the tiles of a wide convolution read them with plain loads. Copies
/// values or writes 0: the same panel as `same::Same::panel`.
///
/// # Safety
/// The CPU must have AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn panel_avx2(
    runs: &[f32],
    stride: usize,
    starts: &[usize],
    bits: &[u16],
    panel: &mut [f32],
) {
    let taps = starts.len();
    let channels = windows_fit(runs, stride, starts, bits, panel.len() / LANES, LANES, 1);
    let out = panel.as_mut_ptr();
    // SAFETY (every pointer below): `windows_fit` checked that every window
    // lies in its run and that the panel has a row per channel and tap.
    for (tap, (&start, &bit)) in starts.iter().zip(bits).enumerate() {
        // One tap's masks serve every channel.
        let (m0, m1) = lane_masks(bit);
        for c in 0..channels {
            let src = runs.as_ptr().add(c * stride + start);
            let dst = out.add((c * taps + tap) * LANES);
            _mm256_storeu_ps(dst, _mm256_maskload_ps(src, m0));
            _mm256_storeu_ps(dst.add(8), _mm256_maskload_ps(src.add(8), m1));
        }
    }
}

/// `vmaskmovps` masks of the 16 lanes of a block, as two halves: lane l
/// kept (all ones) where bit l of `bits` is set, else 0.
///
/// # Safety
/// The CPU must have AVX2.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn lane_masks(bits: u16) -> (__m256i, __m256i) {
    let lane_lo = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    let lane_hi = _mm256_slli_epi32::<8>(lane_lo);
    let b = _mm256_set1_epi32(i32::from(bits));
    (
        _mm256_cmpeq_epi32(_mm256_and_si256(b, lane_lo), lane_lo),
        _mm256_cmpeq_epi32(_mm256_and_si256(b, lane_hi), lane_hi),
    )
}

/// The channels of `runs` (`stride` apart), after checking that every
/// window lies inside its run and that the weights (`OT` per row) and the
/// accumulators (`OT` × 16 lanes) fit.
///
/// # Panics
/// If they do not.
fn windows_fit(
    runs: &[f32],
    stride: usize,
    starts: &[usize],
    bits: &[u16],
    weights: usize,
    acc: usize,
    ot: usize,
) -> usize {
    let (channels, taps) = (runs.len() / stride.max(1), starts.len());
    assert!(
        weights == channels * taps * ot
            && acc == ot * LANES
            && bits.len() == taps
            && starts.iter().all(|&s| s + LANES <= stride),
        "windows: runs, windows, weights and accumulators disagree"
    );
    channels
}

/// One tile of `same::weight_grad`: `acc[(o·4 + r)·LANES + l] +=
/// Σ_b g_rows[o][16b + l]·x_rows[r][16b + l]` over the `total` pixels,
/// the lanes of x outside the masks `x_bits[r][b mod period]` and every
/// lane past `total` read as 0.
///
/// # Safety
/// The CPU must have AVX-512F.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn weight_tile_avx512(
    g_rows: [&[f32]; 4],
    x_rows: [&[f32]; 4],
    x_bits: [&[u16]; 4],
    total: usize,
    acc: &mut [f32],
) {
    let blocks = total.div_ceil(LANES);
    let per_tap = x_bits[0].len();
    assert!(
        acc.len() == 16 * LANES
            && g_rows
                .iter()
                .chain(&x_rows)
                .all(|r| r.len() >= blocks * LANES)
            && x_bits.iter().all(|b| b.len() == per_tap && per_tap > 0),
        "weight_tile: rows, masks and accumulators disagree"
    );
    let out = acc.as_mut_ptr();
    // SAFETY (every pointer below): the lengths were checked above.
    let mut a = [_mm512_setzero_ps(); 16];
    for (k, a) in a.iter_mut().enumerate() {
        *a = _mm512_loadu_ps(out.add(k * LANES));
    }
    let mut phase = 0;
    for b in 0..blocks {
        let rest = total - b * LANES;
        let limit: u16 = if rest >= LANES {
            u16::MAX
        } else {
            (1 << rest) - 1
        };
        let at = b * LANES;
        let g: [__m512; 4] =
            std::array::from_fn(|o| _mm512_maskz_loadu_ps(limit, g_rows[o].as_ptr().add(at)));
        for r in 0..4 {
            let bits = *x_bits[r].get_unchecked(phase) & limit;
            let x = _mm512_maskz_loadu_ps(bits, x_rows[r].as_ptr().add(at));
            for o in 0..4 {
                a[o * 4 + r] = _mm512_add_ps(a[o * 4 + r], _mm512_mul_ps(g[o], x));
            }
        }
        phase += 1;
        if phase == per_tap {
            phase = 0;
        }
    }
    for (k, a) in a.iter().enumerate() {
        _mm512_storeu_ps(out.add(k * LANES), *a);
    }
}

/// One tile of `same::weight_grad` on AVX2 with FMA: `acc[(o·RT + r)·8 + l]
/// += Σ_b g_rows[o][8b + l]·x_rows[r][8b + l]` over `blocks` blocks of 8
/// pixels, the lanes of x where `m_rows[r]` is 0 read as 0 (`vmaskmovps`;
/// the mask rows hold 0 or −1 per pixel). With `SAME_MASK` every row's
/// mask is `m_rows[0]`, loaded once per block and applied to the gradient
/// rows instead (x read whole: the same sums while x is finite). Each
/// product is fused into
/// its lane's sum (`vfmadd`): the weight gradient promises the same bits
/// for a thread count on one machine, not across widths.
///
/// # Safety
/// The CPU must have AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn weight_tile_avx2<const OT: usize, const RT: usize, const SAME_MASK: bool>(
    g_rows: [&[f32]; OT],
    x_rows: [&[f32]; RT],
    m_rows: [&[i32]; RT],
    blocks: usize,
    acc: &mut [f32],
) {
    const L: usize = 8;
    assert!(
        acc.len() == OT * RT * L
            && g_rows.iter().chain(&x_rows).all(|r| r.len() >= blocks * L)
            && m_rows.iter().all(|m| m.len() >= blocks * L),
        "weight_tile_avx2: rows, masks and accumulators disagree"
    );
    let out = acc.as_mut_ptr();
    // SAFETY (every pointer below): the lengths were checked above.
    let mut a = [[_mm256_setzero_ps(); RT]; OT];
    for (o, a) in a.iter_mut().enumerate() {
        for (r, a) in a.iter_mut().enumerate() {
            *a = _mm256_loadu_ps(out.add((o * RT + r) * L));
        }
    }
    for b in 0..blocks {
        let at = b * L;
        if SAME_MASK {
            let m = _mm256_loadu_ps(m_rows[0].as_ptr().add(at).cast::<f32>());
            let g: [__m256; OT] = std::array::from_fn(|o| {
                _mm256_and_ps(m, _mm256_loadu_ps(g_rows[o].as_ptr().add(at)))
            });
            for r in 0..RT {
                let x = _mm256_loadu_ps(x_rows[r].as_ptr().add(at));
                for o in 0..OT {
                    a[o][r] = _mm256_fmadd_ps(g[o], x, a[o][r]);
                }
            }
            continue;
        }
        let g: [__m256; OT] = std::array::from_fn(|o| _mm256_loadu_ps(g_rows[o].as_ptr().add(at)));
        for r in 0..RT {
            let m = _mm256_loadu_si256(m_rows[r].as_ptr().add(at).cast::<__m256i>());
            let x = _mm256_maskload_ps(x_rows[r].as_ptr().add(at), m);
            for o in 0..OT {
                a[o][r] = _mm256_fmadd_ps(g[o], x, a[o][r]);
            }
        }
    }
    for (o, a) in a.iter().enumerate() {
        for (r, a) in a.iter().enumerate() {
            _mm256_storeu_ps(out.add((o * RT + r) * L), *a);
        }
    }
}

/// See `same::products`; two 256-bit registers per channel.
///
/// # Safety
/// The CPU must have AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn products_avx2<const OT: usize>(
    panel: &[f32],
    weights: &[f32],
    acc: &mut [f32],
) {
    let rows = panel.len() / LANES;
    assert!(
        panel.len() == rows * LANES && weights.len() == rows * OT && acc.len() == OT * LANES,
        "products: panel, weights and accumulators disagree"
    );
    let (p, w, out) = (panel.as_ptr(), weights.as_ptr(), acc.as_mut_ptr());
    // SAFETY (every pointer below): the lengths were checked above.
    let (mut lo, mut hi) = ([_mm256_setzero_ps(); OT], [_mm256_setzero_ps(); OT]);
    for o in 0..OT {
        lo[o] = _mm256_loadu_ps(out.add(o * LANES));
        hi[o] = _mm256_loadu_ps(out.add(o * LANES + 8));
    }
    for r in 0..rows {
        let (v0, v1) = (
            _mm256_loadu_ps(p.add(r * LANES)),
            _mm256_loadu_ps(p.add(r * LANES + 8)),
        );
        for o in 0..OT {
            let wo = _mm256_set1_ps(*w.add(r * OT + o));
            lo[o] = _mm256_add_ps(lo[o], _mm256_mul_ps(wo, v0));
            hi[o] = _mm256_add_ps(hi[o], _mm256_mul_ps(wo, v1));
        }
    }
    for o in 0..OT {
        _mm256_storeu_ps(out.add(o * LANES), lo[o]);
        _mm256_storeu_ps(out.add(o * LANES + 8), hi[o]);
    }
}

/// Whether `T` is `U`.
pub(super) fn is<T: 'static, U: 'static>() -> bool {
    std::any::TypeId::of::<T>() == std::any::TypeId::of::<U>()
}

/// `s` as a slice of `U` when `T` is `U`.
pub(super) fn cast<T: 'static, U: 'static>(s: &[T]) -> Option<&[U]> {
    // SAFETY: T is U, so the layout and the lifetime are the same.
    is::<T, U>().then(|| unsafe { std::slice::from_raw_parts(s.as_ptr().cast::<U>(), s.len()) })
}

/// `s` as a mutable slice of `U` when `T` is `U`.
pub(super) fn cast_mut<T: 'static, U: 'static>(s: &mut [T]) -> Option<&mut [U]> {
    is::<T, U>().then(|| {
        // SAFETY: T is U, so the layout and the lifetime are the same.
        unsafe { std::slice::from_raw_parts_mut(s.as_mut_ptr().cast::<U>(), s.len()) }
    })
}
