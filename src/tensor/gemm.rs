//! Our packed single-precision GEMM for x86-64 CPUs with AVX2 and FMA,
//! `C ← α·A·B + β·C` with arbitrary strides; `matrixmultiply::sgemm`
//! everywhere else.
//!
//! Why our own: `matrixmultiply` allocates its packing buffers inside every
//! call. On a rayon worker thread glibc hands the ~300 KB back to the
//! kernel when it is freed, so the pages fault in again on the next call:
//! about 1,500 minor faults per two-thread training step of the moons flow
//! (docs/benchmarks/engine.md, "On a quiet machine (session 13)"). Here
//! each thread keeps its packing buffers for its lifetime, and the inner
//! kernel keeps a 6 × 16 tile of C in twelve AVX2 registers (the BLIS
//! Haswell shape) where `matrixmultiply`'s f32 kernel keeps 8 × 8.
//!
//! The loops are the five of Goto and van de Geijn's GEMM (ACM TOMS 34(3),
//! 2008; BLIS, Van Zee and van de Geijn, ACM TOMS 41(3), 2015): columns of
//! C in blocks of [`NC`], the inner dimension in blocks of [`KC`] (B's
//! block packed in panels of [`NR`] columns), rows in blocks of [`MC`] (A's
//! block packed in panels of [`MR`] rows), then the micro-kernel on one
//! `MR × NR` tile. Each element of C is the sum over the inner dimension in
//! order, one fused multiply-add per term, the partial sum of each KC block
//! added to C.
//!
//! Products whose output our tiles would pad more than `matrixmultiply`'s
//! 8 × 8 ones (fewer than [`MR`] rows or [`NR`] columns, as in a MADE's
//! one-column-at-a-time sampling, or 40 columns, 40 of 48 filled, in its
//! masked blocks) go to `matrixmultiply`.
//!
//! The same compile-time switch as the thin path's loops (`cpu.rs`):
//! with `MMTEST_FEATURE=none` this kernel stays off and `matrixmultiply`'s
//! plain-Rust kernel runs, as on `wasm32`.

// Off x86-64 only the hand-over below is compiled, and the block sizes go unused.
#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]

/// Rows of the micro-kernel's tile.
pub(crate) const MR: usize = 6;
/// Columns of the micro-kernel's tile (two 8-lane registers).
pub(crate) const NR: usize = 16;
/// Inner-dimension block: an `MR × KC` panel of A (6 KB) and a `KC × NR`
/// panel of B (16 KB) fit the 32 KB L1 cache together.
pub(crate) const KC: usize = 256;
/// Row block: the packed `MC × KC` block of A (144 KB) stays in L2.
pub(crate) const MC: usize = 144;
/// Column block: the packed `KC × NC` block of B (4 MB) stays in L3.
pub(crate) const NC: usize = 4080;

/// `C ← α·A·B + β·C` in f32 for `[m, k] × [k, n]` with strides in elements;
/// with β = 0, C is written without being read (a NaN there does not
/// survive).
///
/// # Safety
/// The pointers and strides must describe valid `[m, k]`, `[k, n]` and
/// `[m, n]` matrices; `c` must not alias `a` or `b`.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn sgemm(
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: *const f32,
    rsa: isize,
    csa: isize,
    b: *const f32,
    rsb: isize,
    csb: isize,
    beta: f32,
    c: *mut f32,
    rsc: isize,
    csc: isize,
) {
    #[cfg(target_arch = "x86_64")]
    {
        if super::cpu::has_avx2_fma() && k > 0 && ours_pays(m, n) {
            x86::sgemm(
                (m, k, n),
                alpha,
                (a, rsa, csa),
                (b, rsb, csb),
                beta,
                (c, rsc, csc),
                x86::Epilogue::NONE,
            );
            return;
        }
    }
    matrixmultiply::sgemm(m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc)
}

/// [`Element::gemm_bias`](super::element::Element::gemm_bias) in f32 on our
/// kernel's route: `C ← A·B + 1·biasᵀ`, then the ReLU when `relu`, `c`
/// `[m, n]` with row stride n, the bias added and the ReLU applied as each
/// tile of C is stored (in the first and the last inner block), so C is
/// written once. Returns false, having done nothing, off that route (no
/// AVX2, k = 0, a shape `ours_pays` turns away): the caller then takes
/// the three passes, which give the same bits.
///
/// # Safety
/// As [`sgemm`], with `bias` holding `n` values and `c` `m·n`.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn sgemm_bias(
    m: usize,
    k: usize,
    n: usize,
    a: *const f32,
    (rsa, csa): (isize, isize),
    b: *const f32,
    (rsb, csb): (isize, isize),
    bias: &[f32],
    relu: bool,
    c: &mut [f32],
) -> bool {
    assert!(
        bias.len() == n && c.len() == m * n,
        "sgemm_bias: bias {} and C {} for [{m}, {n}]",
        bias.len(),
        c.len()
    );
    #[cfg(target_arch = "x86_64")]
    {
        if super::cpu::has_avx2_fma() && k > 0 && ours_pays(m, n) {
            x86::sgemm(
                (m, k, n),
                1.0,
                (a, rsa, csa),
                (b, rsb, csb),
                0.0,
                (c.as_mut_ptr(), n as isize, 1),
                x86::Epilogue {
                    bias: bias.as_ptr(),
                    relu,
                },
            );
            return true;
        }
    }
    let _ = (m, k, n, a, rsa, csa, b, rsb, csb, relu);
    false
}

/// Whether our 6 × 16 tiles waste no more of an `[m, n]` output on padding
/// than `matrixmultiply`'s 8 × 8 ones, give or take the 3-5 % our kernel is
/// faster at equal fill (examples/gemm_speed.rs: 1.00-1.09 on full tiles;
/// on a MADE's 64 × 40 block it ran at 0.82 of `matrixmultiply`, 40
/// columns filling 40 of 48 against 40 of 40). The margin, 0.96, lets in
/// the row counts whose fill is 0.96-0.97 of 8 × 8's (64, 104 and 128 among
/// them; 22 tiles of 6 for 128: 0.9697), where 128 rows are the halves of a
/// 256-row product split over two threads: with 0.97 those went
/// to `matrixmultiply`, which allocates its packing buffers in every call
/// (25 calls of 320 KB per two-thread moons step, examples/step_profile.rs).
#[cfg(target_arch = "x86_64")]
fn ours_pays(m: usize, n: usize) -> bool {
    let fill =
        |len: usize, tile: usize| len as f64 / len.div_ceil(tile).max(1) as f64 / tile as f64;
    m >= MR && n >= NR && fill(m, MR) * fill(n, NR) >= 0.96 * fill(m, 8) * fill(n, 8)
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{KC, MC, MR, NC, NR};
    use std::arch::x86_64::*;
    use std::cell::RefCell;

    /// What a tile of C gets besides the product: a bias row added in the
    /// first inner block in place of β·C (null: none), and the ReLU in the
    /// last.
    #[derive(Clone, Copy)]
    pub(super) struct Epilogue {
        /// `n` values, one per column of C, or null.
        pub(super) bias: *const f32,
        /// Whether the stored tile is `max(·, 0)` (0 for NaN).
        pub(super) relu: bool,
    }

    impl Epilogue {
        /// Neither: a plain `C ← α·A·B + β·C`.
        pub(super) const NONE: Epilogue = Epilogue {
            bias: std::ptr::null(),
            relu: false,
        };
    }

    thread_local! {
        /// This thread's packing buffers (A's block, B's block), grown to the
        /// largest size asked for and kept: the point of this GEMM.
        static PACKED: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
    }

    /// The five loops, on this thread's packing buffers (fresh ones if they
    /// are in use, which no caller does: nothing below calls back here).
    ///
    /// # Safety
    /// As [`super::sgemm`], with m, k, n > 0 and AVX2 and FMA present.
    pub(super) unsafe fn sgemm(
        (m, k, n): (usize, usize, usize),
        alpha: f32,
        a: (*const f32, isize, isize),
        b: (*const f32, isize, isize),
        beta: f32,
        c: (*mut f32, isize, isize),
        epilogue: Epilogue,
    ) {
        let kc_max = k.min(KC);
        let a_len = m.min(MC).div_ceil(MR) * MR * kc_max;
        let b_len = n.min(NC).div_ceil(NR) * NR * kc_max;
        let run = |(pa, pb): &mut (Vec<f32>, Vec<f32>)| {
            if pa.len() < a_len {
                pa.resize(a_len, 0.0);
            }
            if pb.len() < b_len {
                pb.resize(b_len, 0.0);
            }
            // SAFETY: the caller's contract, and buffers of the sizes the
            // blocks need.
            unsafe { blocked((m, k, n), alpha, a, b, beta, c, epilogue, pa, pb) }
        };
        PACKED.with(|cell| match cell.try_borrow_mut() {
            Ok(mut buffers) => run(&mut buffers),
            Err(_) => run(&mut (Vec::new(), Vec::new())),
        });
    }

    /// The loops over NC, KC and MC blocks.
    ///
    /// # Safety
    /// As [`sgemm`], with `pa` and `pb` long enough for one block each.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn blocked(
        (m, k, n): (usize, usize, usize),
        alpha: f32,
        (a, rsa, csa): (*const f32, isize, isize),
        (b, rsb, csb): (*const f32, isize, isize),
        beta: f32,
        (c, rsc, csc): (*mut f32, isize, isize),
        epilogue: Epilogue,
        pa: &mut [f32],
        pb: &mut [f32],
    ) {
        let at = |p: *const f32, i: usize, rs: isize, j: usize, cs: isize| {
            p.offset(i as isize * rs + j as isize * cs)
        };
        for jc in (0..n).step_by(NC) {
            let nc = NC.min(n - jc);
            for pc in (0..k).step_by(KC) {
                let kc = KC.min(k - pc);
                // The first inner block applies β (or adds the bias); the
                // later ones add to it; the last applies the ReLU.
                let beta = if pc == 0 { beta } else { 1.0 };
                let bias = if pc == 0 {
                    epilogue.bias
                } else {
                    std::ptr::null()
                };
                let relu = epilogue.relu && pc + kc == k;
                pack_b(kc, nc, at(b, pc, rsb, jc, csb), rsb, csb, pb);
                for ic in (0..m).step_by(MC) {
                    let mc = MC.min(m - ic);
                    pack_a(mc, kc, at(a, ic, rsa, pc, csa), rsa, csa, pa);
                    for jr in (0..nc).step_by(NR) {
                        let nr = NR.min(nc - jr);
                        let panel_b = pb.as_ptr().add(jr * kc);
                        for ir in (0..mc).step_by(MR) {
                            let mr = MR.min(mc - ir);
                            let tile =
                                c.offset((ic + ir) as isize * rsc + (jc + jr) as isize * csc);
                            let tile_bias = if bias.is_null() {
                                bias
                            } else {
                                bias.add(jc + jr)
                            };
                            kernel(
                                kc,
                                pa.as_ptr().add(ir * kc),
                                panel_b,
                                (alpha, beta),
                                (tile, rsc, csc),
                                (mr, nr),
                                Epilogue {
                                    bias: tile_bias,
                                    relu,
                                },
                            );
                        }
                    }
                }
            }
        }
    }

    /// Packs the `mc × kc` block of A into panels of MR rows: panel i holds,
    /// for each p in order, A[i·MR .. i·MR + MR, p]; rows past `mc` are 0.
    /// A full panel of a row-major A is transposed eight columns at a time
    /// in registers ([`transpose_8x8`]); a column-major one is copied MR
    /// values at a time; any other layout, and the last partial panel, go
    /// element by element.
    ///
    /// # Safety
    /// `a` with its strides addresses a valid `[mc, kc]` matrix, `out`
    /// holds `⌈mc / MR⌉·MR·kc` values, and AVX2 is present.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn pack_a(mc: usize, kc: usize, a: *const f32, rsa: isize, csa: isize, out: &mut [f32]) {
        for (panel, rows) in out.chunks_exact_mut(MR * kc).zip((0..mc).step_by(MR)) {
            let live = MR.min(mc - rows);
            let row = |r: usize| a.offset((rows + r) as isize * rsa);
            if live == MR && csa == 1 {
                let zero = _mm256_setzero_ps();
                let mut p = 0;
                while p + 8 <= kc {
                    let mut v = [zero; 8];
                    for (r, v) in v.iter_mut().enumerate().take(MR) {
                        *v = _mm256_loadu_ps(row(r).add(p));
                    }
                    for (i, col) in transpose_8x8(v).iter().enumerate() {
                        // Rows 0-3 of column p + i, then rows 4 and 5.
                        let dst = panel.as_mut_ptr().add((p + i) * MR);
                        _mm_storeu_ps(dst, _mm256_castps256_ps128(*col));
                        _mm_storel_epi64(
                            dst.add(4).cast(),
                            _mm_castps_si128(_mm256_extractf128_ps::<1>(*col)),
                        );
                    }
                    p += 8;
                }
                for p in p..kc {
                    for r in 0..MR {
                        panel[p * MR + r] = *row(r).add(p);
                    }
                }
            } else if live == MR && rsa == 1 {
                for p in 0..kc {
                    let src =
                        std::slice::from_raw_parts(a.offset(rows as isize + p as isize * csa), MR);
                    panel[p * MR..p * MR + MR].copy_from_slice(src);
                }
            } else {
                for p in 0..kc {
                    let dst = &mut panel[p * MR..p * MR + MR];
                    for (r, d) in dst.iter_mut().enumerate() {
                        *d = if r < live {
                            *row(r).offset(p as isize * csa)
                        } else {
                            0.0
                        };
                    }
                }
            }
        }
    }

    /// Packs the `kc × nc` block of B into panels of NR columns: panel j
    /// holds, for each p in order, B[p, j·NR .. j·NR + NR]; columns past
    /// `nc` are 0. A full panel of a row-major B is copied NR values at a
    /// time; of a column-major B (a transposed weight, `Ȳ·Wᵀ`), transposed
    /// eight rows and eight columns at a time in registers; any other
    /// layout, and the last partial panel, go element by element.
    ///
    /// # Safety
    /// `b` with its strides addresses a valid `[kc, nc]` matrix, `out`
    /// holds `⌈nc / NR⌉·NR·kc` values, and AVX2 is present.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn pack_b(kc: usize, nc: usize, b: *const f32, rsb: isize, csb: isize, out: &mut [f32]) {
        for (panel, cols) in out.chunks_exact_mut(NR * kc).zip((0..nc).step_by(NR)) {
            let live = NR.min(nc - cols);
            let col = |j: usize| b.offset((cols + j) as isize * csb);
            if live == NR && csb == 1 {
                for p in 0..kc {
                    let src =
                        std::slice::from_raw_parts(b.offset(p as isize * rsb + cols as isize), NR);
                    panel[p * NR..p * NR + NR].copy_from_slice(src);
                }
            } else if live == NR && rsb == 1 {
                let mut p = 0;
                while p + 8 <= kc {
                    for half in 0..NR / 8 {
                        let v: [__m256; 8] =
                            std::array::from_fn(|j| _mm256_loadu_ps(col(half * 8 + j).add(p)));
                        for (i, row) in transpose_8x8(v).iter().enumerate() {
                            _mm256_storeu_ps(panel.as_mut_ptr().add((p + i) * NR + half * 8), *row);
                        }
                    }
                    p += 8;
                }
                for p in p..kc {
                    for j in 0..NR {
                        panel[p * NR + j] = *col(j).add(p);
                    }
                }
            } else {
                for p in 0..kc {
                    let dst = &mut panel[p * NR..p * NR + NR];
                    for (j, d) in dst.iter_mut().enumerate() {
                        *d = if j < live {
                            *col(j).offset(p as isize * rsb)
                        } else {
                            0.0
                        };
                    }
                }
            }
        }
    }

    /// The transpose of an 8 × 8 block held as eight rows: element j of
    /// result i is element i of row j (unpack, shuffle, then swap the
    /// 128-bit halves: the usual three stages).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn transpose_8x8(r: [__m256; 8]) -> [__m256; 8] {
        let t0 = _mm256_unpacklo_ps(r[0], r[1]);
        let t1 = _mm256_unpackhi_ps(r[0], r[1]);
        let t2 = _mm256_unpacklo_ps(r[2], r[3]);
        let t3 = _mm256_unpackhi_ps(r[2], r[3]);
        let t4 = _mm256_unpacklo_ps(r[4], r[5]);
        let t5 = _mm256_unpackhi_ps(r[4], r[5]);
        let t6 = _mm256_unpacklo_ps(r[6], r[7]);
        let t7 = _mm256_unpackhi_ps(r[6], r[7]);
        let s0 = _mm256_shuffle_ps::<0x44>(t0, t2);
        let s1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
        let s2 = _mm256_shuffle_ps::<0x44>(t1, t3);
        let s3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
        let s4 = _mm256_shuffle_ps::<0x44>(t4, t6);
        let s5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
        let s6 = _mm256_shuffle_ps::<0x44>(t5, t7);
        let s7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
        [
            _mm256_permute2f128_ps::<0x20>(s0, s4),
            _mm256_permute2f128_ps::<0x20>(s1, s5),
            _mm256_permute2f128_ps::<0x20>(s2, s6),
            _mm256_permute2f128_ps::<0x20>(s3, s7),
            _mm256_permute2f128_ps::<0x31>(s0, s4),
            _mm256_permute2f128_ps::<0x31>(s1, s5),
            _mm256_permute2f128_ps::<0x31>(s2, s6),
            _mm256_permute2f128_ps::<0x31>(s3, s7),
        ]
    }

    /// One `MR × NR` tile: `C ← α·Σₚ a[p]·b[p] + β·C` over `kc` packed
    /// columns of A and rows of B, only the `mr × nr` corner of the tile
    /// written.
    ///
    /// # Safety
    /// `a` holds `MR·kc` values, `b` holds `NR·kc`, `c` with its strides
    /// addresses a valid `[mr, nr]` block; AVX2 and FMA are present.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn kernel(
        kc: usize,
        a: *const f32,
        b: *const f32,
        (alpha, beta): (f32, f32),
        (c, rsc, csc): (*mut f32, isize, isize),
        (mr, nr): (usize, usize),
        epilogue: Epilogue,
    ) {
        let mut acc = [[_mm256_setzero_ps(); 2]; MR];
        let (mut a, mut b) = (a, b);
        for _ in 0..kc {
            let b0 = _mm256_loadu_ps(b);
            let b1 = _mm256_loadu_ps(b.add(8));
            for (r, row) in acc.iter_mut().enumerate() {
                let ar = _mm256_broadcast_ss(&*a.add(r));
                row[0] = _mm256_fmadd_ps(ar, b0, row[0]);
                row[1] = _mm256_fmadd_ps(ar, b1, row[1]);
            }
            a = a.add(MR);
            b = b.add(NR);
        }
        let alpha = _mm256_set1_ps(alpha);
        for row in acc.iter_mut() {
            row[0] = _mm256_mul_ps(alpha, row[0]);
            row[1] = _mm256_mul_ps(alpha, row[1]);
        }
        let zero = _mm256_setzero_ps();
        // The tile's values as stored: bias + Σ or β·C + Σ, then the ReLU
        // (max_ps gives its second operand, 0, for NaN, as `v > 0` does).
        let finish = |v: __m256, old: *const f32, bias: *const f32| {
            let v = if !epilogue.bias.is_null() {
                _mm256_add_ps(_mm256_loadu_ps(bias), v)
            } else if beta == 0.0 {
                v
            } else {
                _mm256_fmadd_ps(_mm256_set1_ps(beta), _mm256_loadu_ps(old), v)
            };
            if epilogue.relu {
                _mm256_max_ps(v, zero)
            } else {
                v
            }
        };
        if mr == MR && nr == NR && csc == 1 {
            for (r, row) in acc.iter().enumerate() {
                let out = c.offset(r as isize * rsc);
                let c0 = finish(row[0], out, epilogue.bias);
                let c1 = finish(row[1], out.add(8), epilogue.bias.wrapping_add(8));
                _mm256_storeu_ps(out, c0);
                _mm256_storeu_ps(out.add(8), c1);
            }
            return;
        }
        let mut tile = [[0.0f32; NR]; MR];
        for (t, row) in tile.iter_mut().zip(&acc) {
            _mm256_storeu_ps(t.as_mut_ptr(), row[0]);
            _mm256_storeu_ps(t.as_mut_ptr().add(8), row[1]);
        }
        for (r, t) in tile.iter().enumerate().take(mr) {
            for (j, &v) in t.iter().enumerate().take(nr) {
                let out = c.offset(r as isize * rsc + j as isize * csc);
                let v = if !epilogue.bias.is_null() {
                    *epilogue.bias.add(j) + v
                } else if beta == 0.0 {
                    v
                } else {
                    beta.mul_add(*out, v)
                };
                let positive = v > 0.0;
                *out = if epilogue.relu && !positive { 0.0 } else { v };
            }
        }
    }
}

#[cfg(test)]
mod tests;
