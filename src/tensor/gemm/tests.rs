//! The packed GEMM against two references: a plain f64 sum (every path,
//! within round-off) and, where our AVX2 kernel runs, the same sums in the
//! same order with one fused multiply-add per term (bit for bit).

use super::*;
use crate::tensor::element::gemm_bias_by_beta;

/// A matrix stored in `buf` at `offset` with strides `(rs, cs)` (either may
/// be negative: the offset then points at element (0, 0) inside `buf`).
struct Strided {
    buf: Vec<f32>,
    offset: usize,
    rs: isize,
    cs: isize,
}

impl Strided {
    /// `rows × cols` values from `fill(i, j)`, laid out as `layout` says:
    /// 0 row-major, 1 column-major, 2 row-major with padded rows, 3 rows in
    /// reverse order (negative row stride), 4 columns in reverse order
    /// (column-major, negative column stride).
    fn new(rows: usize, cols: usize, layout: u8, fill: impl Fn(usize, usize) -> f32) -> Self {
        let (rs, cs, len, offset) = match layout {
            0 => (cols as isize, 1, rows * cols, 0),
            1 => (1, rows as isize, rows * cols, 0),
            2 => (cols as isize + 3, 1, rows * (cols + 3), 0),
            3 => (-(cols as isize), 1, rows * cols, (rows - 1) * cols),
            _ => (1, -(rows as isize), rows * cols, (cols - 1) * rows),
        };
        let mut buf = vec![f32::NAN; len];
        for i in 0..rows {
            for j in 0..cols {
                buf[(offset as isize + i as isize * rs + j as isize * cs) as usize] = fill(i, j);
            }
        }
        Strided {
            buf,
            offset,
            rs,
            cs,
        }
    }

    fn at(&self, i: usize, j: usize) -> f32 {
        self.buf[(self.offset as isize + i as isize * self.rs + j as isize * self.cs) as usize]
    }
}

/// A deterministic pseudo-random value in about [-1, 1) with a full 24-bit
/// mantissa (so a product rounds, and a fused multiply-add differs from a
/// multiply and an add), distinct for each (seed, i, j).
fn value(seed: u32, i: usize, j: usize) -> f32 {
    let mut h = seed
        .wrapping_mul(0x9E37_79B9)
        .wrapping_add(i as u32)
        .wrapping_mul(0x85EB_CA6B)
        .wrapping_add(j as u32);
    h ^= h >> 15;
    h = h.wrapping_mul(0x2C1B_3C6D);
    h ^= h >> 12;
    ((h % 2048) as f32 / 1024.0 - 1.0) * (1.0 + 2f32.powi(-20) * ((h >> 11) & 0xFF) as f32)
}

/// Runs `sgemm` on the given shapes and layouts; returns C and the inputs.
fn run(
    (m, k, n): (usize, usize, usize),
    layouts: (u8, u8, u8),
    alpha: f32,
    beta: f32,
) -> (Strided, Strided, Strided, Strided) {
    let a = Strided::new(m, k, layouts.0, |i, j| value(1, i, j));
    let b = Strided::new(k, n, layouts.1, |i, j| value(2, i, j));
    let c0 = Strided::new(m, n, layouts.2, |i, j| value(3, i, j));
    let mut c = Strided::new(m, n, layouts.2, |i, j| value(3, i, j));
    // SAFETY: the three matrices are valid for their strides and distinct.
    unsafe {
        sgemm(
            m,
            k,
            n,
            alpha,
            a.buf.as_ptr().add(a.offset),
            a.rs,
            a.cs,
            b.buf.as_ptr().add(b.offset),
            b.rs,
            b.cs,
            beta,
            c.buf.as_mut_ptr().add(c.offset),
            c.rs,
            c.cs,
        );
    }
    (a, b, c0, c)
}

/// `C ← A·B` (β = 0) for row-major A `[m, k]` and B `[k, n]`, C at `c[0]`
/// with strides `(rsc, csc)`.
///
/// # Panics
/// If a slice is too short for its matrix.
fn product_of_contiguous(
    (m, k, n): (usize, usize, usize),
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
    (rsc, csc): (isize, isize),
) {
    assert!(a.len() >= m * k && b.len() >= k * n);
    assert!(c.len() as isize > (m as isize - 1) * rsc + (n as isize - 1) * csc);
    // SAFETY: the asserts keep the three matrices inside their slices, and
    // `c` is a distinct borrow.
    unsafe {
        sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            k as isize,
            1,
            b.as_ptr(),
            n as isize,
            1,
            0.0,
            c.as_mut_ptr(),
            rsc,
            csc,
        );
    }
}

/// Shapes that cross every block edge: below, at and past MR, NR, KC, MC, NC
/// (those `ours_pays` turns away test `matrixmultiply`'s route).
const SHAPES: [(usize, usize, usize); 15] = [
    (1, 1, 1),
    (5, 3, 17),
    (6, 256, 16),
    (7, 257, 15),
    (13, 1, 33),
    (145, 40, 9),
    (150, 520, 50),
    (12, 600, 4),
    (31, 7, 130),
    (7, 2, NC + 20),
    (7, 257, 17),
    (145, 9, 16),
    (148, 520, 48),
    (12, 2, NC + 16),
    (30, 300, 47),
];

#[test]
fn sgemm_matches_an_f64_sum_for_every_layout_and_block_edge() {
    for &(m, k, n) in &SHAPES {
        for layouts in [
            (0, 0, 0),
            (1, 0, 0),
            (0, 1, 0),
            (1, 1, 1),
            (2, 3, 2),
            (3, 2, 3),
        ] {
            for (alpha, beta) in [(1.0, 0.0), (1.0, 1.0), (-0.5, 2.0)] {
                let (a, b, c0, c) = run((m, k, n), layouts, alpha, beta);
                for i in 0..m {
                    for j in 0..n {
                        let (mut sum, mut size) = (0.0f64, 0.0f64);
                        for p in 0..k {
                            let t = a.at(i, p) as f64 * b.at(p, j) as f64;
                            sum += t;
                            size += t.abs();
                        }
                        let want = alpha as f64 * sum + beta as f64 * c0.at(i, j) as f64;
                        let bound =
                            1e-6 * (size + c0.at(i, j).abs() as f64 + 1.0) * (k as f64).sqrt();
                        let got = c.at(i, j) as f64;
                        assert!(
                            (got - want).abs() <= bound,
                            "[{m}, {k}] x [{k}, {n}], layouts {layouts:?}, α {alpha}, β {beta}: \
                             C[{i}, {j}] = {got}, want {want} ± {bound}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn sgemm_with_beta_zero_writes_c_without_reading_it() {
    let (m, k, n) = (12, 5, 32);
    #[cfg(target_arch = "x86_64")]
    assert!(
        ours_pays(m, n),
        "the shape should take our kernel where it runs"
    );
    let a = vec![1.0f32; m * k];
    let b = vec![2.0f32; k * n];
    for csc in [1isize, m as isize] {
        let rsc = if csc == 1 { n as isize } else { 1 };
        let mut c = vec![f32::NAN; m * n];
        product_of_contiguous((m, k, n), &a, &b, &mut c, (rsc, csc));
        assert!(c.iter().all(|&v| v == 10.0), "column stride {csc}: {c:?}");
    }
}

#[test]
fn sgemm_leaves_c_outside_the_product_untouched() {
    // C is a [12, 47] window with row stride 50 inside a NaN-free buffer of
    // sentinels: the padding and the rows after it must keep them. 47
    // columns end in a partial tile, which our kernel stores element-wise.
    let (m, k, n, ld) = (12, 33, 47, 50);
    #[cfg(target_arch = "x86_64")]
    assert!(
        ours_pays(m, n),
        "the shape should take our kernel where it runs"
    );
    let a: Vec<f32> = (0..m * k).map(|x| value(4, x, 0)).collect();
    let b: Vec<f32> = (0..k * n).map(|x| value(5, x, 0)).collect();
    let mut c = vec![-7.0f32; (m + 1) * ld];
    product_of_contiguous((m, k, n), &a, &b, &mut c, (ld as isize, 1));
    for (x, &v) in c.iter().enumerate() {
        let (i, j) = (x / ld, x % ld);
        if i >= m || j >= n {
            assert_eq!(v, -7.0, "C buffer at row {i}, column {j} was written");
        }
    }
}

/// Where our kernel runs (AVX2 and FMA, `ours_pays`): each element is exactly the fused multiply-adds
/// in order within each KC block, α times that, plus the previous value
/// (β·C for the first block, fused) — the contract the module doc states.
#[cfg(target_arch = "x86_64")]
#[test]
fn sgemm_kernel_is_the_ordered_fused_sum_bit_for_bit() {
    if !crate::tensor::cpu::has_avx2_fma() {
        // matrixmultiply runs instead: the f64 comparison above covers it.
        return;
    }
    let ours: Vec<_> = SHAPES
        .iter()
        .filter(|&&(m, _, n)| ours_pays(m, n))
        .collect();
    // Block edges our kernel crosses: KC and MC, NC, a partial row and column tile.
    assert!(ours.len() >= 5, "too few shapes take our kernel: {ours:?}");
    for &&(m, k, n) in &ours {
        for layouts in [(0, 0, 0), (1, 1, 1), (3, 2, 3), (4, 4, 4)] {
            for (alpha, beta) in [(1.0f32, 0.0f32), (1.0, 1.0), (-0.5, 2.0)] {
                let (a, b, c0, c) = run((m, k, n), layouts, alpha, beta);
                for i in 0..m {
                    for j in 0..n {
                        let mut want = c0.at(i, j);
                        for (block, p0) in (0..k).step_by(KC).enumerate() {
                            let mut acc = 0.0f32;
                            for p in p0..(p0 + KC).min(k) {
                                acc = a.at(i, p).mul_add(b.at(p, j), acc);
                            }
                            let beta = if block == 0 { beta } else { 1.0 };
                            want = if beta == 0.0 {
                                alpha * acc
                            } else {
                                beta.mul_add(want, alpha * acc)
                            };
                        }
                        assert_eq!(
                            c.at(i, j).to_bits(),
                            want.to_bits(),
                            "[{m}, {k}] x [{k}, {n}], layouts {layouts:?}, α {alpha}, β {beta}: C[{i}, {j}]"
                        );
                    }
                }
            }
        }
    }
}

/// `sgemm_bias` (on our kernel: the bias added and the ReLU applied as each
/// tile is stored) gives the bits of the three passes it replaces (C filled
/// with the bias, `C ← A·B + C`, then the ReLU), on every shape and layout
/// above, over an output full of NaN that it must not read. The bias holds
/// −0 (its sum with a +0 product is +0 either way), and A has a NaN row
/// where there are enough rows, which the ReLU turns to 0.
#[test]
fn sgemm_bias_is_fill_then_product_then_relu_bit_for_bit() {
    let mut fused_shapes = 0;
    for &(m, k, n) in &SHAPES {
        for layouts in [(0, 0), (1, 1), (3, 2), (4, 4), (0, 1), (1, 0)] {
            let a = Strided::new(m, k, layouts.0, |i, j| {
                if i == 7 {
                    f32::NAN
                } else {
                    value(1, i, j)
                }
            });
            let b = Strided::new(k, n, layouts.1, |i, j| value(2, i, j));
            let bias: Vec<f32> = (0..n)
                .map(|j| if j % 5 == 0 { -0.0 } else { value(3, j, 0) })
                .collect();
            for relu in [false, true] {
                let mut fused = vec![f32::NAN; m * n];
                let mut passes = vec![f32::NAN; m * n];
                let (pa, pb) = (a.buf[a.offset..].as_ptr(), b.buf[b.offset..].as_ptr());
                // SAFETY: A and B are valid for their strides, the outputs
                // are `[m, n]` and distinct, the bias holds n values.
                let took = unsafe {
                    let (sa, sb) = ((a.rs, a.cs), (b.rs, b.cs));
                    gemm_bias_by_beta(m, k, n, pa, sa, pb, sb, &bias, relu, &mut passes);
                    sgemm_bias(m, k, n, pa, sa, pb, sb, &bias, relu, &mut fused)
                };
                if !took {
                    assert!(
                        fused.iter().all(|v| v.is_nan()),
                        "[{m}, {k}] x [{k}, {n}]: off the route, C was written"
                    );
                    continue;
                }
                fused_shapes += 1;
                for (x, (f, p)) in fused.iter().zip(&passes).enumerate() {
                    assert_eq!(
                        f.to_bits(),
                        p.to_bits(),
                        "[{m}, {k}] x [{k}, {n}], layouts {layouts:?}, relu {relu}: C[{}, {}] = {f}, want {p}",
                        x / n,
                        x % n
                    );
                }
            }
        }
    }
    #[cfg(target_arch = "x86_64")]
    if crate::tensor::cpu::has_avx2_fma() {
        // Block edges: KC, MC, NC, partial row and column tiles.
        assert!(
            fused_shapes >= 5 * 12,
            "too few shapes took the fused route: {fused_shapes}"
        );
    }
    let _ = fused_shapes;
}
