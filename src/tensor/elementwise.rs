//! Element-wise kernels: unary maps and binary ops with numpy broadcasting.
//!
//! Each kernel has a contiguous fast path (plain slices, which the compiler
//! vectorises) and a strided path that walks rows (see `strided.rs`); both go
//! parallel above [`PAR_MIN_ELEMENTS`](super::parallel::PAR_MIN_ELEMENTS).
//! When an operand is a transposed view (its last axis has a larger stride
//! than the one before), walking rows would touch a new cache line, often a
//! new page, per element; those kernels visit `TILE × TILE` blocks of the
//! last two axes instead, so each line read serves the whole block.

use super::parallel::{go_parallel, PAR_CHUNK};
use super::strided::{for_each_row, inner_stride, rows_of};
use super::{broadcast_shapes, pool, wide, Element, Layout, Tensor};
use crate::tensor::parallel::prelude::*;

impl<T: Element> Tensor<T> {
    /// Applies `f` to every element: `out[i] = f(self[i])`, a new contiguous tensor.
    pub fn map<F: Fn(T) -> T + Sync + Send>(&self, f: F) -> Tensor<T> {
        let n = self.numel();
        if let Some(src) = self.as_slice() {
            // Every element is written by the loops below.
            let mut out = pool::reused(n);
            if go_parallel(n) {
                out.par_chunks_mut(PAR_CHUNK)
                    .zip(src.par_chunks(PAR_CHUNK))
                    .for_each(|(o, s)| wide::map_into(s, o, &f));
            } else {
                wide::map_into(src, &mut out, &f);
            }
            return Tensor::from_vec(out, self.shape());
        }
        let shape = self.shape();
        let storage = self.storage();
        let layout = *self.layout();
        if wants_tiles(shape, &[&layout]) {
            let out = run_tiled(shape, [&layout], |[s]| f(storage[s]));
            return Tensor::from_vec(out, shape);
        }
        let (n_rows, row_len) = rows_of(shape);
        let stride = inner_stride(self.layout());
        // Every row is written by the walk below.
        let mut out = pool::reused(n);
        let fill = |first_row: usize, dst: &mut [T]| {
            let mut at = 0;
            for_each_row(
                shape,
                [&layout],
                first_row,
                dst.len() / row_len.max(1),
                |[s]| {
                    let row = &mut dst[at..at + row_len];
                    if stride == 1 {
                        // A narrowed view's rows (the MAF's log-scale half).
                        wide::map_into(&storage[s..s + row_len], row, &f);
                    } else {
                        for (i, d) in row.iter_mut().enumerate() {
                            *d = f(storage[s + i * stride]);
                        }
                    }
                    at += row_len;
                },
            );
        };
        run_rows(&mut out, n_rows, row_len, fill);
        Tensor::from_vec(out, shape)
    }

    /// Combines two tensors element by element after broadcasting them to a
    /// common shape (numpy rules): `out[i] = f(lhs[i], rhs[i])`.
    ///
    /// # Panics
    /// If the shapes do not broadcast; the message names `op` and both shapes.
    pub fn zip_map<F: Fn(T, T) -> T + Sync + Send>(
        &self,
        rhs: &Tensor<T>,
        op: &str,
        f: F,
    ) -> Tensor<T> {
        let same_shape = self.shape() == rhs.shape();
        if same_shape {
            if let (Some(a), Some(b)) = (self.as_slice(), rhs.as_slice()) {
                let n = a.len();
                // Every element is written by the loops below.
                let mut out = pool::reused(n);
                if go_parallel(n) {
                    out.par_chunks_mut(PAR_CHUNK)
                        .zip(a.par_chunks(PAR_CHUNK).zip(b.par_chunks(PAR_CHUNK)))
                        .for_each(|(o, (x, y))| wide::zip_into(x, y, o, &f));
                } else {
                    wide::zip_into(a, b, &mut out, &f);
                }
                return Tensor::from_vec(out, self.shape());
            }
        }
        let shape = if same_shape {
            self.shape().to_vec()
        } else {
            broadcast_shapes(op, self.shape(), rhs.shape())
        };
        let lhs_layout = self.layout().broadcast_to(&shape);
        let rhs_layout = rhs.layout().broadcast_to(&shape);
        if wants_tiles(&shape, &[&lhs_layout, &rhs_layout]) {
            let (lhs, rhs_data) = (self.storage(), rhs.storage());
            let out = run_tiled(&shape, [&lhs_layout, &rhs_layout], |[a, b]| {
                f(lhs[a], rhs_data[b])
            });
            return Tensor::from_vec(out, &shape);
        }
        let (n_rows, row_len) = rows_of(&shape);
        let (ls, rs) = (inner_stride(&lhs_layout), inner_stride(&rhs_layout));
        let (lhs, rhs_data) = (self.storage(), rhs.storage());
        // Every row is written by the walk below.
        let mut out = pool::reused(n_rows * row_len);
        let fill = |first_row: usize, dst: &mut [T]| {
            let mut at = 0;
            let rows = dst.len() / row_len.max(1);
            for_each_row(
                &shape,
                [&lhs_layout, &rhs_layout],
                first_row,
                rows,
                |[a, b]| {
                    let row = &mut dst[at..at + row_len];
                    if ls == 1 && rs == 1 {
                        let (x, y) = (&lhs[a..a + row_len], &rhs_data[b..b + row_len]);
                        wide::zip_into(x, y, row, &f);
                    } else if ls == 1 && rs == 0 {
                        let (x, y) = (&lhs[a..a + row_len], rhs_data[b]);
                        wide::map_into(x, row, |v| f(v, y));
                    } else {
                        for (i, r) in row.iter_mut().enumerate() {
                            *r = f(lhs[a + i * ls], rhs_data[b + i * rs]);
                        }
                    }
                    at += row_len;
                },
            );
        };
        run_rows(&mut out, n_rows, row_len, fill);
        Tensor::from_vec(out, &shape)
    }

    /// `self + rhs` with broadcasting.
    pub fn add(&self, rhs: &Tensor<T>) -> Tensor<T> {
        self.zip_map(rhs, "add", |a, b| a + b)
    }
    /// `self − rhs` with broadcasting.
    pub fn sub(&self, rhs: &Tensor<T>) -> Tensor<T> {
        self.zip_map(rhs, "sub", |a, b| a - b)
    }
    /// `self ⊙ rhs` (element-wise product) with broadcasting.
    pub fn mul(&self, rhs: &Tensor<T>) -> Tensor<T> {
        self.zip_map(rhs, "mul", |a, b| a * b)
    }
    /// `self / rhs` element-wise with broadcasting.
    pub fn div(&self, rhs: &Tensor<T>) -> Tensor<T> {
        self.zip_map(rhs, "div", |a, b| a / b)
    }
    /// Element-wise maximum with broadcasting.
    pub fn maximum(&self, rhs: &Tensor<T>) -> Tensor<T> {
        self.zip_map(rhs, "maximum", |a, b| if a >= b { a } else { b })
    }
    /// Element-wise minimum with broadcasting.
    pub fn minimum(&self, rhs: &Tensor<T>) -> Tensor<T> {
        self.zip_map(rhs, "minimum", |a, b| if a <= b { a } else { b })
    }
    /// `1` where `self > rhs`, else `0`, with broadcasting.
    pub fn gt(&self, rhs: &Tensor<T>) -> Tensor<T> {
        self.zip_map(rhs, "gt", |a, b| if a > b { T::ONE } else { T::ZERO })
    }
    /// `1` where `self ≥ rhs`, else `0`, with broadcasting (NaN compares false).
    ///
    /// # Panics
    /// If the shapes do not broadcast; the message names `ge` and both shapes.
    pub fn ge(&self, rhs: &Tensor<T>) -> Tensor<T> {
        self.zip_map(rhs, "ge", |a, b| if a >= b { T::ONE } else { T::ZERO })
    }
    /// `1` where `self < rhs`, else `0`, with broadcasting (NaN compares false).
    ///
    /// # Panics
    /// If the shapes do not broadcast; the message names `lt` and both shapes.
    pub fn lt(&self, rhs: &Tensor<T>) -> Tensor<T> {
        self.zip_map(rhs, "lt", |a, b| if a < b { T::ONE } else { T::ZERO })
    }
    /// `1` where `self ≤ rhs`, else `0`, with broadcasting (NaN compares false).
    ///
    /// # Panics
    /// If the shapes do not broadcast; the message names `le` and both shapes.
    pub fn le(&self, rhs: &Tensor<T>) -> Tensor<T> {
        self.zip_map(rhs, "le", |a, b| if a <= b { T::ONE } else { T::ZERO })
    }
    /// `1` where `self == rhs`, else `0`, with broadcasting (NaN equals nothing).
    ///
    /// # Panics
    /// If the shapes do not broadcast; the message names `eq` and both shapes.
    pub fn eq(&self, rhs: &Tensor<T>) -> Tensor<T> {
        self.zip_map(rhs, "eq", |a, b| if a == b { T::ONE } else { T::ZERO })
    }
    /// `1` where `self ≠ rhs`, else `0`, with broadcasting (NaN differs from everything).
    ///
    /// # Panics
    /// If the shapes do not broadcast; the message names `ne` and both shapes.
    pub fn ne(&self, rhs: &Tensor<T>) -> Tensor<T> {
        self.zip_map(rhs, "ne", |a, b| if a != b { T::ONE } else { T::ZERO })
    }
    /// `value` where `mask ≠ 0`, else `self`; `mask` broadcasts against `self`
    /// and the result has the broadcast shape.
    ///
    /// # Panics
    /// If the shapes do not broadcast; the message names `masked_fill` and
    /// both shapes.
    pub fn masked_fill(&self, mask: &Tensor<T>, value: T) -> Tensor<T> {
        self.zip_map(
            mask,
            "masked_fill",
            |a, m| if m != T::ZERO { value } else { a },
        )
    }
    /// `self + c` for a scalar `c`.
    pub fn add_scalar(&self, c: T) -> Tensor<T> {
        self.map(|a| a + c)
    }
    /// `c · self` for a scalar `c`.
    pub fn mul_scalar(&self, c: T) -> Tensor<T> {
        self.map(|a| a * c)
    }
    /// `−self`.
    pub fn neg(&self) -> Tensor<T> {
        self.map(|a| -a)
    }
    /// `exp(self)` element-wise.
    pub fn exp(&self) -> Tensor<T> {
        self.map(T::exp)
    }
    /// Natural log element-wise.
    pub fn ln(&self) -> Tensor<T> {
        self.map(T::ln)
    }
    /// `tanh(self)` element-wise.
    pub fn tanh(&self) -> Tensor<T> {
        self.map(T::tanh)
    }
    /// `max(self, 0)` element-wise.
    pub fn relu(&self) -> Tensor<T> {
        self.map(|a| if a > T::ZERO { a } else { T::ZERO })
    }
    /// `√self` element-wise.
    pub fn sqrt(&self) -> Tensor<T> {
        self.map(T::sqrt)
    }
    /// `self²` element-wise.
    pub fn square(&self) -> Tensor<T> {
        self.map(|a| a * a)
    }
    /// Where `cond ≠ 0` take `on_true`, else `on_false`; all three broadcast together.
    ///
    /// # Panics
    /// If the shapes do not broadcast.
    pub fn select(cond: &Tensor<T>, on_true: &Tensor<T>, on_false: &Tensor<T>) -> Tensor<T> {
        // where(c, a, b) = b + c·(a − b) would lose exactness; pick instead.
        let picked_true = cond.zip_map(
            on_true,
            "select",
            |c, a| if c != T::ZERO { a } else { T::ZERO },
        );
        let keep_false = cond.zip_map(
            on_false,
            "select",
            |c, b| if c != T::ZERO { T::ZERO } else { b },
        );
        picked_true.add(&keep_false)
    }
}

/// Fills `out` (rows of `row_len`) by calling `fill(first_row, chunk)`, over
/// rayon chunks of whole rows when the output is large, else in one call.
fn run_rows<T: Element>(
    out: &mut [T],
    n_rows: usize,
    row_len: usize,
    fill: impl Fn(usize, &mut [T]) + Sync,
) {
    if row_len == 0 || n_rows == 0 {
        return;
    }
    if go_parallel(out.len()) {
        let rows_per_chunk = (PAR_CHUNK / row_len).max(1);
        out.par_chunks_mut(rows_per_chunk * row_len)
            .enumerate()
            .for_each(|(c, chunk)| fill(c * rows_per_chunk, chunk));
    } else {
        fill(0, out);
    }
}

/// Edge of the blocks the tiled path visits: 32 rows share each cache line
/// of a transposed operand (16 f32 or 8 f64 per 64-byte line), and a block's
/// 32 lines per operand stay in L1.
const TILE: usize = 32;

/// True when walking rows would stride through memory: some operand steps
/// more than one element along the last axis and less along the axis before
/// it (a transposed view), with both axes longer than 1.
fn wants_tiles(shape: &[usize], layouts: &[&Layout]) -> bool {
    let n = shape.len();
    n >= 2
        && shape[n - 1] > 1
        && shape[n - 2] > 1
        && layouts.iter().any(|l| {
            let s = l.strides();
            s[n - 1] > 1 && s[n - 2] < s[n - 1]
        })
}

/// The output of an element-wise kernel, `out[i] = body(storage indices of
/// element i in each layout)`, computed in `TILE × TILE` blocks of the last
/// two axes (rows of blocks split across threads when large). Every layout
/// has shape `shape`, of rank ≥ 2.
fn run_tiled<T: Element, const N: usize>(
    shape: &[usize],
    layouts: [&Layout; N],
    body: impl Fn([usize; N]) -> T + Sync,
) -> Vec<T> {
    let (n_rows, cols) = rows_of(shape);
    // Every block is written by `fill_tiled`.
    let mut out = pool::reused(n_rows * cols);
    if out.is_empty() {
        return out;
    }
    let fill = |first_row: usize, dst: &mut [T]| fill_tiled(shape, layouts, first_row, dst, &body);
    if go_parallel(out.len()) {
        out.par_chunks_mut(TILE * cols)
            .enumerate()
            .for_each(|(c, chunk)| fill(c * TILE, chunk));
    } else {
        fill(0, &mut out);
    }
    out
}

/// Fills `dst`, whole rows `first_row ..` of `shape`, block by block: up to
/// `TILE` rows of one plane (the last two axes) at a time, and within them
/// `TILE` columns at a time, row by row.
fn fill_tiled<T: Element, const N: usize>(
    shape: &[usize],
    layouts: [&Layout; N],
    first_row: usize,
    dst: &mut [T],
    body: &impl Fn([usize; N]) -> T,
) {
    let n = shape.len();
    let (plane_rows, cols) = (shape[n - 2], shape[n - 1]);
    let row_step = layouts.map(|l| l.strides()[n - 2]);
    let col_step = layouts.map(|l| l.strides()[n - 1]);
    let rows = dst.len() / cols;
    let mut r = 0;
    while r < rows {
        let in_plane = (first_row + r) % plane_rows;
        let block = (TILE - in_plane % TILE)
            .min(plane_rows - in_plane)
            .min(rows - r);
        let mut starts = [0usize; N];
        for_each_row(shape, layouts, first_row + r, 1, |s| starts = s);
        for c0 in (0..cols).step_by(TILE) {
            let c1 = (c0 + TILE).min(cols);
            for i in 0..block {
                let row = &mut dst[(r + i) * cols..(r + i + 1) * cols];
                let base: [usize; N] = std::array::from_fn(|q| starts[q] + i * row_step[q]);
                for (j, out) in row.iter_mut().enumerate().take(c1).skip(c0) {
                    *out = body(std::array::from_fn(|q| base[q] + j * col_step[q]));
                }
            }
        }
        r += block;
    }
}

macro_rules! impl_binary_operator {
    ($trait:ident, $method:ident) => {
        impl<T: Element> std::ops::$trait<&Tensor<T>> for &Tensor<T> {
            type Output = Tensor<T>;
            fn $method(self, rhs: &Tensor<T>) -> Tensor<T> {
                Tensor::$method(self, rhs)
            }
        }
    };
}
impl_binary_operator!(Add, add);
impl_binary_operator!(Sub, sub);
impl_binary_operator!(Mul, mul);
impl_binary_operator!(Div, div);
