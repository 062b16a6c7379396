//! Products with a masked weight that skip the mask's zero regions:
//! `x·(W ⊙ M) + b` and its two gradients, for a constant 0/1 mask `M`.
//!
//! Why: a MADE's masks (`nn::made`) let a unit of degree k see only the units
//! below it of degree ≤ k. With the units sorted by degree each mask is a
//! staircase, about half zero, and a dense product spends half its
//! multiply-adds on those zeros. A [`BlockMask`] covers the ones of `M` with
//! rectangular tiles, found by splitting the mask in halves (a quadtree) and
//! trimming each part to the rows and columns that hold ones: on a staircase
//! the tiles off the diagonal are all ones (`full`: the product reads `W` as
//! it is) and only the small tiles on the diagonal need `W ⊙ M`. The products
//! below multiply just the tiles. What they compute equals the dense product
//! (the skipped terms are products with an exact zero), though the summation
//! order, and so the last bit of rounding, can differ.
//!
//! Derivation: docs/derivations/made.md, "Skipping the masked-out blocks".

use super::element::Element;
use super::matmul::THIN_N;
use super::parallel::{current_num_threads, threads_available, PAR_MIN_MATMUL_FLOPS};
use super::pool;
use super::Tensor;
use crate::tensor::parallel::prelude::*;
use std::ops::Range;

/// Tiles at most this many rows and columns are not split further (the GEMM
/// micro-kernel loses efficiency on thinner operands).
pub const TILE: usize = 64;

/// One tile of a [`BlockMask`]: every one of the mask lies in some tile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tile {
    /// The tile's rows of the mask (inputs of the layer).
    pub rows: Range<usize>,
    /// The tile's columns of the mask (outputs of the layer).
    pub cols: Range<usize>,
    /// True when the mask is 1 on the whole tile.
    pub full: bool,
}

impl Tile {
    /// The number of mask entries the tile covers, rows × columns.
    pub fn area(&self) -> usize {
        self.rows.len() * self.cols.len()
    }
}

/// A 0/1 mask `[in, out]` with the tiles that cover its ones, for
/// [`Tensor::block_masked_linear`] and its gradients.
///
/// # Source
/// The masks are MADE's (Germain et al., arXiv:1502.03509, §4); the tiling is
/// flowzoo's, derived in docs/derivations/made.md, "Skipping the masked-out
/// blocks".
///
/// # Examples
/// ```
/// use flowzoo::tensor::blocked::BlockMask;
/// use flowzoo::tensor::Tensor;
/// // A 256 × 256 staircase: column c sees rows 0..=c.
/// let n = 256;
/// let mask = Tensor::<f32>::from_vec(
///     (0..n * n).map(|i| if i / n <= i % n { 1.0 } else { 0.0 }).collect(),
///     &[n, n],
/// );
/// let blocks = BlockMask::new(&mask);
/// // One 128² and two 64² tiles of ones, four 64² tiles on the diagonal:
/// // 5/8 of the dense product's work.
/// assert_eq!(blocks.density(), 0.625);
/// assert_eq!(blocks.tiles().iter().filter(|t| t.full).count(), 3);
/// ```
#[derive(Clone, Debug)]
pub struct BlockMask<T: Element> {
    mask: Tensor<T>,
    tiles: Vec<Tile>,
}

/// `W` under a [`BlockMask`]: when the mask is
/// [worth blocking](BlockMask::worth_blocking), the weight itself, read on the
/// full tiles, and `W ⊙ M` on each partial tile (contiguous, `[rows, cols]` of
/// the tile); otherwise the dense `W ⊙ M`.
#[derive(Clone, Debug)]
pub struct MaskedWeight<T: Element> {
    weight: Tensor<T>,
    partial: Vec<Vec<T>>,
    blocked: bool,
}

impl<T: Element> MaskedWeight<T> {
    /// Checks that this weight was made by `mask.apply`, or by the apply of
    /// a mask with the same shape and tiles: the products read its buffers
    /// through the tiles of `mask`, so a mismatch would read out of bounds.
    ///
    /// # Panics
    /// If the shapes, the number of tiles or a tile's size disagree.
    fn check_fits(&self, what: &str, mask: &BlockMask<T>) {
        // `apply` keeps a masked copy of each partial tile, none of a full one.
        let copy_len = |t: &Tile| if t.full { 0 } else { t.area() };
        let same_tiles = || {
            self.partial.len() == mask.tiles.len()
                && mask
                    .tiles
                    .iter()
                    .zip(&self.partial)
                    .all(|(t, p)| p.len() == copy_len(t))
        };
        let fits = self.weight.shape() == mask.mask.shape()
            && self.blocked == mask.worth_blocking()
            && (!self.blocked || same_tiles());
        assert!(
            fits,
            "{what}: the masked weight ({:?}) was not made by this mask's apply (mask {:?}, {} tiles)",
            self.weight.shape(),
            mask.mask.shape(),
            mask.tiles.len()
        );
    }

    /// The operand of tile `t`: a pointer and its (row, column) strides.
    fn tile(&self, mask: &BlockMask<T>, t: usize) -> (*const T, (usize, usize)) {
        let tile = &mask.tiles[t];
        if tile.full {
            let w = self
                .weight
                .as_slice()
                .expect("the weight is kept contiguous");
            let out = mask.mask.dim(1);
            (
                w[tile.rows.start * out + tile.cols.start..].as_ptr(),
                (out, 1),
            )
        } else {
            (self.partial[t].as_ptr(), (tile.cols.len(), 1))
        }
    }
}

/// Finds the tiles of the ones of `at` inside `rows × cols` (see the module
/// doc), appending them to `tiles`.
fn quadtree(
    at: &dyn Fn(usize, usize) -> bool,
    size: usize,
    rows: Range<usize>,
    cols: Range<usize>,
    tiles: &mut Vec<Tile>,
) {
    // Trim to the bounding box of the ones.
    let row_has = |r: usize| cols.clone().any(|c| at(r, c));
    let Some(r0) = rows.clone().find(|&r| row_has(r)) else {
        return;
    };
    let r1 = rows.clone().rev().find(|&r| row_has(r)).unwrap_or(r0) + 1;
    let col_has = |c: usize| (r0..r1).any(|r| at(r, c));
    let c0 = cols.clone().find(|&c| col_has(c)).unwrap_or(cols.start);
    let c1 = cols.clone().rev().find(|&c| col_has(c)).unwrap_or(c0) + 1;
    let full = (r0..r1).all(|r| (c0..c1).all(|c| at(r, c)));
    let (h, w) = (r1 - r0, c1 - c0);
    if full || (h <= size && w <= size) {
        tiles.push(Tile {
            rows: r0..r1,
            cols: c0..c1,
            full,
        });
    } else if h >= w {
        let mid = r0 + h / 2;
        quadtree(at, size, r0..mid, c0..c1, tiles);
        quadtree(at, size, mid..r1, c0..c1, tiles);
    } else {
        let mid = c0 + w / 2;
        quadtree(at, size, r0..r1, c0..mid, tiles);
        quadtree(at, size, r0..r1, mid..c1, tiles);
    }
}

impl<T: Element> BlockMask<T> {
    /// The tiles of `mask` (`[in, out]`, entries 0 or 1), split down to at
    /// most [`TILE`] rows and columns.
    ///
    /// # Panics
    /// If `mask` is not 2-D or an entry is neither 0 nor 1.
    pub fn new(mask: &Tensor<T>) -> Self {
        BlockMask::with_tile(mask, TILE)
    }

    /// The tiles of `mask`, split down to at most `tile` rows and columns
    /// (a tile of ones is never split).
    ///
    /// # Panics
    /// If `mask` is not 2-D, `tile` is 0, or an entry is neither 0 nor 1.
    pub fn with_tile(mask: &Tensor<T>, tile: usize) -> Self {
        assert!(
            mask.ndim() == 2 && tile > 0,
            "BlockMask: need a 2-D mask and a positive tile size, got {:?} and {tile}",
            mask.shape()
        );
        let mask = mask.contiguous();
        let (rows, cols) = (mask.dim(0), mask.dim(1));
        let m = mask
            .as_slice()
            .expect("contiguous() gives a contiguous tensor");
        assert!(
            m.iter().all(|&v| v == T::ZERO || v == T::ONE),
            "BlockMask: the mask must hold only 0 and 1"
        );
        let mut tiles = Vec::new();
        quadtree(
            &|r, c| m[r * cols + c] != T::ZERO,
            tile,
            0..rows,
            0..cols,
            &mut tiles,
        );
        BlockMask { mask, tiles }
    }

    /// The mask, contiguous `[in, out]`.
    pub fn mask(&self) -> &Tensor<T> {
        &self.mask
    }

    /// The tiles, disjoint, covering every one of the mask.
    pub fn tiles(&self) -> &[Tile] {
        &self.tiles
    }

    /// The share of the dense product's multiply-adds the tiles keep, in
    /// [0, 1].
    pub fn density(&self) -> f64 {
        let kept: usize = self.tiles.iter().map(Tile::area).sum();
        kept as f64 / (self.mask.numel().max(1)) as f64
    }

    /// True when multiplying tile by tile saves enough to pay for the extra
    /// GEMM calls: at least an eighth of the work. When false,
    /// [`Var::masked_linear`](crate::autodiff::Var::masked_linear) takes the
    /// dense product of `W ⊙ M`.
    pub fn worth_blocking(&self) -> bool {
        self.tiles.len() > 1 && self.density() <= 0.875
    }

    /// `W` under this mask: `W ⊙ M` computed on the partial tiles only, or
    /// everywhere when the mask is not worth blocking.
    ///
    /// # Panics
    /// If `weight` does not have the mask's shape.
    pub fn apply(&self, weight: &Tensor<T>) -> MaskedWeight<T> {
        assert_eq!(
            weight.shape(),
            self.mask.shape(),
            "BlockMask::apply: weight {:?} and mask {:?} differ",
            weight.shape(),
            self.mask.shape()
        );
        if !self.worth_blocking() {
            return MaskedWeight {
                weight: weight.mul(&self.mask),
                partial: Vec::new(),
                blocked: false,
            };
        }
        let weight = weight.contiguous();
        let (w, m) = (
            weight.as_slice().expect("contiguous"),
            self.mask.as_slice().expect("contiguous"),
        );
        let out = self.mask.dim(1);
        let partial = self
            .tiles
            .iter()
            .map(|t| {
                if t.full {
                    return Vec::new();
                }
                let mut tile = Vec::with_capacity(t.area());
                for r in t.rows.clone() {
                    let span = r * out + t.cols.start..r * out + t.cols.end;
                    tile.extend(w[span.clone()].iter().zip(&m[span]).map(|(&a, &b)| a * b));
                }
                tile
            })
            .collect();
        MaskedWeight {
            weight,
            partial,
            blocked: true,
        }
    }

    fn check(&self, what: &str, shape: &[usize], width: usize) {
        assert!(
            shape.len() == 2 && shape[1] == width,
            "{what}: expected [batch, {width}] for the mask {:?}, got {shape:?}",
            self.mask.shape()
        );
    }

    /// The multiply-adds of one product over `batch` rows.
    fn flops(&self, batch: usize) -> usize {
        (self.density() * (batch * self.mask.numel()) as f64) as usize
    }
}

/// The tiles' indices in an order that pairs costly with cheap ones, so that
/// rayon's halving split gives each thread about equal work.
fn balanced(tiles: &[Tile]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..tiles.len()).collect();
    order.sort_by_key(|&t| tiles[t].area());
    let mut out = Vec::with_capacity(order.len());
    let (mut lo, mut hi) = (0, order.len());
    while lo < hi {
        hi -= 1;
        out.push(order[hi]);
        if lo < hi {
            out.push(order[lo]);
            lo += 1;
        }
    }
    out
}

/// A raw pointer that tasks writing disjoint parts of one buffer share.
#[derive(Clone, Copy)]
struct Shared<T>(*mut T);
// SAFETY: every use writes through it only to a part of the buffer that no
// other task touches (the tiles are disjoint), and the buffer outlives the
// parallel region.
unsafe impl<T: Send> Send for Shared<T> {}
unsafe impl<T: Send> Sync for Shared<T> {}

impl<T> Shared<T> {
    /// The pointer (a method, so that closures capture the whole `Shared`).
    fn ptr(&self) -> *mut T {
        self.0
    }
}

/// `C ← C + A·B` (`accumulate`) or `C ← A·B` with general strides.
///
/// # Safety
/// The pointers with their strides must address valid `[m, k]`, `[k, n]`
/// and `[m, n]` matrices, and no other thread may touch this part of C.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_tile<T: Element>(
    (m, k, n): (usize, usize, usize),
    a: *const T,
    (rsa, csa): (usize, usize),
    b: *const T,
    (rsb, csb): (usize, usize),
    accumulate: bool,
    c: *mut T,
    rsc: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    if m <= THIN_N || n <= THIN_N || k == 0 {
        // Too thin for the packed GEMM to pay: plain dot products.
        for i in 0..m {
            for j in 0..n {
                let mut s = T::ZERO;
                for p in 0..k {
                    s += *a.add(i * rsa + p * csa) * *b.add(p * rsb + j * csb);
                }
                let out = c.add(i * rsc + j);
                *out = if accumulate { *out + s } else { s };
            }
        }
        return;
    }
    T::gemm(
        m,
        k,
        n,
        T::ONE,
        a,
        rsa as isize,
        csa as isize,
        b,
        rsb as isize,
        csb as isize,
        if accumulate { T::ONE } else { T::ZERO },
        c,
        rsc as isize,
        1,
    );
}

/// Runs `task(first_row, rows)` on chunks of the `[batch, width]` output
/// `out`, one chunk per thread when the product is worth a split.
fn by_batch_rows<T: Element>(
    out: &mut [T],
    width: usize,
    flops: usize,
    task: impl Fn(usize, &mut [T]) + Send + Sync,
) {
    let batch = out.len() / width.max(1);
    let threads = current_num_threads();
    if width == 0 || batch == 0 {
        return;
    }
    if threads_available() && flops >= PAR_MIN_MATMUL_FLOPS && batch >= 16 {
        let rows = batch.div_ceil(threads);
        out.par_chunks_mut(rows * width)
            .enumerate()
            .for_each(|(i, chunk)| task(i * rows, chunk));
    } else {
        task(0, out);
    }
}

impl<T: Element> Tensor<T> {
    /// `self·(W ⊙ M) + b` for `self: [batch, in]`, the masked weight from
    /// [`BlockMask::apply`] and `bias: [out]`: `[batch, out]`, multiplying
    /// only the tiles of `mask`.
    ///
    /// # Panics
    /// If `self` is not `[_, in]` or `bias` not `[out]` for the mask's
    /// `[in, out]`, or `weight` was not made by `mask.apply` (checked: a
    /// mismatch would read out of bounds).
    pub fn block_masked_linear(
        &self,
        weight: &MaskedWeight<T>,
        bias: &Tensor<T>,
        mask: &BlockMask<T>,
    ) -> Tensor<T> {
        let (inp, out) = (mask.mask.dim(0), mask.mask.dim(1));
        mask.check("block_masked_linear", self.shape(), inp);
        assert!(
            bias.shape() == [out],
            "block_masked_linear: bias {:?} does not fit the mask {:?}",
            bias.shape(),
            mask.mask.shape()
        );
        weight.check_fits("block_masked_linear", mask);
        if !weight.blocked {
            return self.linear(&weight.weight, bias);
        }
        let batch = self.dim(0);
        let (x, b) = (self.contiguous(), bias.contiguous());
        let (xs, bs) = (
            x.as_slice().expect("contiguous"),
            b.as_slice().expect("contiguous"),
        );
        // Every row is written with the bias before a tile adds into it.
        let mut y = pool::reused(batch * out);
        by_batch_rows(&mut y, out, mask.flops(batch), |i0, chunk| {
            for row in chunk.chunks_mut(out) {
                row.copy_from_slice(bs);
            }
            let m = chunk.len() / out;
            for (t, tile) in mask.tiles.iter().enumerate() {
                let (bp, bstrides) = weight.tile(mask, t);
                // SAFETY: rows i0..i0+m of x [batch, in], the tile's operand
                // as `MaskedWeight::tile` describes it, and this task's own
                // chunk of y.
                unsafe {
                    gemm_tile(
                        (m, tile.rows.len(), tile.cols.len()),
                        xs.as_ptr().add(i0 * inp + tile.rows.start),
                        (inp, 1),
                        bp,
                        bstrides,
                        true,
                        chunk.as_mut_ptr().add(tile.cols.start),
                        out,
                    );
                }
            }
        });
        Tensor::from_vec(y, &[batch, out])
    }

    /// The input gradient of [`Tensor::block_masked_linear`]: `self·(W ⊙ M)ᵀ`
    /// for the output gradient `self: [batch, out]`; `[batch, in]`.
    ///
    /// # Panics
    /// If `self` is not `[_, out]`, or `weight` was not made by `mask.apply`.
    pub fn block_masked_input_grad(
        &self,
        weight: &MaskedWeight<T>,
        mask: &BlockMask<T>,
    ) -> Tensor<T> {
        let (inp, out) = (mask.mask.dim(0), mask.mask.dim(1));
        mask.check("block_masked_input_grad", self.shape(), out);
        weight.check_fits("block_masked_input_grad", mask);
        if !weight.blocked {
            return self.matmul(&weight.weight.t());
        }
        let batch = self.dim(0);
        let g = self.contiguous();
        let gs = g.as_slice().expect("contiguous");
        let mut dx = pool::filled(batch * inp, T::ZERO);
        by_batch_rows(&mut dx, inp, mask.flops(batch), |i0, chunk| {
            let m = chunk.len() / inp;
            for (t, tile) in mask.tiles.iter().enumerate() {
                let (bp, (rs, cs)) = weight.tile(mask, t);
                // SAFETY: rows i0..i0+m of G [batch, out]; the tile's operand
                // read transposed (strides swapped); this task's own chunk of
                // dx.
                unsafe {
                    gemm_tile(
                        (m, tile.cols.len(), tile.rows.len()),
                        gs.as_ptr().add(i0 * out + tile.cols.start),
                        (out, 1),
                        bp,
                        (cs, rs),
                        true,
                        chunk.as_mut_ptr().add(tile.rows.start),
                        inp,
                    );
                }
            }
        });
        Tensor::from_vec(dx, &[batch, inp])
    }

    /// The weight gradient of [`Tensor::block_masked_linear`] through the
    /// mask, `(xᵀ·G) ⊙ M`, for the input `self: [batch, in]` and the output
    /// gradient `grad: [batch, out]`: `[in, out]`, zero outside the tiles.
    ///
    /// # Panics
    /// If the shapes do not fit the mask or the batch sizes differ.
    pub fn block_masked_weight_grad(&self, grad: &Tensor<T>, mask: &BlockMask<T>) -> Tensor<T> {
        let (inp, out) = (mask.mask.dim(0), mask.mask.dim(1));
        mask.check("block_masked_weight_grad", self.shape(), inp);
        mask.check("block_masked_weight_grad", grad.shape(), out);
        assert_eq!(
            self.dim(0),
            grad.dim(0),
            "block_masked_weight_grad: batch sizes differ: x {:?}, grad {:?}",
            self.shape(),
            grad.shape()
        );
        if !mask.worth_blocking() {
            return self.t().matmul(grad).mul(&mask.mask);
        }
        let batch = self.dim(0);
        if batch == 0 {
            return Tensor::zeros(&[inp, out]);
        }
        let (x, g) = (self.contiguous(), grad.contiguous());
        let (xs, gs) = (
            x.as_slice().expect("contiguous"),
            g.as_slice().expect("contiguous"),
        );
        let ms = mask.mask.as_slice().expect("the mask is contiguous");
        let mut dw = pool::filled(inp * out, T::ZERO);
        let dp = Shared(dw.as_mut_ptr());
        let task = |t: usize| {
            let tile = &mask.tiles[t];
            // SAFETY: this tile alone writes its part of dW (the tiles are
            // disjoint); xᵀ[r, p] = x[p, r] is read with swapped strides.
            unsafe {
                gemm_tile(
                    (tile.rows.len(), batch, tile.cols.len()),
                    xs.as_ptr().add(tile.rows.start),
                    (1, inp),
                    gs.as_ptr().add(tile.cols.start),
                    (out, 1),
                    false,
                    dp.ptr().add(tile.rows.start * out + tile.cols.start),
                    out,
                );
                if !tile.full {
                    for r in tile.rows.clone() {
                        for c in tile.cols.clone() {
                            *dp.ptr().add(r * out + c) *= ms[r * out + c];
                        }
                    }
                }
            }
        };
        let order = balanced(&mask.tiles);
        if threads_available() && mask.flops(batch) >= PAR_MIN_MATMUL_FLOPS && order.len() > 1 {
            order.par_iter().for_each(|&t| task(t));
        } else {
            order.iter().for_each(|&t| task(t));
        }
        Tensor::from_vec(dw, &[inp, out])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn staircase(rows: usize, cols: usize, sees: impl Fn(usize, usize) -> bool) -> Tensor<f64> {
        Tensor::from_vec(
            (0..rows)
                .flat_map(|r| (0..cols).map(move |c| (r, c)))
                .map(|(r, c)| if sees(r, c) { 1.0 } else { 0.0 })
                .collect(),
            &[rows, cols],
        )
    }

    #[test]
    fn tiles_cover_every_one_once_and_the_off_diagonal_tiles_are_full() {
        let n = 256;
        let mask = staircase(n, n, |r, c| r <= c);
        let bm = BlockMask::new(&mask);
        let mut covered = vec![0; n * n];
        for t in bm.tiles() {
            for r in t.rows.clone() {
                for c in t.cols.clone() {
                    covered[r * n + c] += 1;
                    if t.full {
                        assert!(r <= c, "a full tile holds a zero at ({r}, {c})");
                    }
                }
            }
        }
        for r in 0..n {
            for c in 0..n {
                assert!(covered[r * n + c] <= 1, "tiles overlap at ({r}, {c})");
                if r <= c {
                    assert_eq!(
                        covered[r * n + c],
                        1,
                        "the one at ({r}, {c}) is not covered"
                    );
                }
            }
        }
        // Halving down to 64: one 128², two 64² full tiles, four 64² partial.
        assert_eq!(bm.tiles().iter().filter(|t| t.full).count(), 3);
        assert!(
            (bm.density() - (128.0 * 128.0 + 6.0 * 64.0 * 64.0) / (n * n) as f64).abs() < 1e-12
        );
        assert!(bm.worth_blocking());
    }

    #[test]
    #[should_panic(expected = "was not made by this mask's apply")]
    fn a_weight_masked_by_another_tiling_is_refused() {
        let n = 256;
        let mask = staircase(n, n, |r, c| r <= c);
        let weight = BlockMask::new(&mask).apply(&Tensor::ones(&[n, n]));
        let coarse = BlockMask::with_tile(&mask, 128);
        Tensor::<f64>::ones(&[2, n]).block_masked_linear(&weight, &Tensor::zeros(&[n]), &coarse);
    }

    #[test]
    fn an_empty_batch_gives_zero_gradients() {
        let n = 256;
        let bm = BlockMask::new(&staircase(n, n, |r, c| r <= c));
        assert!(bm.worth_blocking());
        let (x, g) = (Tensor::<f64>::zeros(&[0, n]), Tensor::<f64>::zeros(&[0, n]));
        let dw = x.block_masked_weight_grad(&g, &bm);
        assert_eq!(dw.shape(), &[n, n]);
        assert!(dw.to_vec().iter().all(|&v| v == 0.0));
    }

    #[test]
    fn an_all_zero_mask_has_no_tiles_and_a_dense_one_a_single_full_tile() {
        let zero = BlockMask::new(&Tensor::<f32>::zeros(&[3, 4]));
        assert!(zero.tiles().is_empty());
        let ones = BlockMask::new(&Tensor::<f32>::ones(&[100, 70]));
        assert_eq!(
            ones.tiles(),
            &[Tile {
                rows: 0..100,
                cols: 0..70,
                full: true
            }]
        );
        assert!(!ones.worth_blocking());
    }
}
