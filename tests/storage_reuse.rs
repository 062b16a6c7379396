//! Products take their outputs from the cache of freed storage
//! (`flowzoo::tensor::pool`) without filling them first: the GEMM never
//! reads its output at β = 0, so a kept buffer's old values must never reach
//! a result; nor may the element-wise kernels' walks over strided views,
//! which take unfilled buffers too. These tests drop tensors full of NaN (their buffers go to the
//! cache) just before each product, so that one read of an old value shows
//! as a NaN in the result; the sizes are odd ones that no other test in this
//! binary asks for.

use flowzoo::tensor::blocked::BlockMask;
use flowzoo::tensor::{Element, Tensor};

/// `[rows, cols]` of small integers (exact in f32 and f64 products).
fn small_ints<T: Element>(rows: usize, cols: usize, salt: usize) -> Tensor<T> {
    let v = (0..rows * cols)
        .map(|i| T::from_f64((((i + salt) * 7919) % 13) as f64 - 6.0))
        .collect();
    Tensor::from_vec(v, &[rows, cols])
}

/// `a·w (+ bias)` by the definition, in f64 (exact for small integers).
fn naive<T: Element>(a: &Tensor<T>, w: &Tensor<T>, bias: Option<&[f64]>) -> Vec<T> {
    let (m, k, n) = (a.dim(0), a.dim(1), w.dim(1));
    let (av, wv) = (a.to_vec(), w.to_vec());
    let mut out = Vec::with_capacity(m * n);
    for i in 0..m {
        for j in 0..n {
            let dot: f64 = (0..k)
                .map(|p| av[i * k + p].to_f64() * wv[p * n + j].to_f64())
                .sum();
            out.push(T::from_f64(dot + bias.map_or(0.0, |b| b[j])));
        }
    }
    out
}

/// Drops three tensors of `n` NaNs, so that the cache holds their buffers
/// for the next kernel that asks for `n` elements.
fn poison<T: Element>(n: usize) {
    for _ in 0..3 {
        drop(Tensor::from_vec(vec![T::from_f64(f64::NAN); n], &[n]));
    }
}

fn products_never_read_old_values<T: Element + std::fmt::Debug>() {
    // One shape per path of the product (thin columns, thin rows, the packed
    // GEMM or `matrixmultiply`, split across threads, k = 0).
    for (m, k, n) in [
        (2003, 7, 3),
        (3, 9, 2011),
        (211, 29, 53),
        (257, 263, 261),
        (127, 0, 59),
    ] {
        let (a, w) = (small_ints::<T>(m, k, 1), small_ints::<T>(k, n, 2));
        // The same A as a transposed view (columns contiguous).
        let a_t = small_ints::<T>(k, m, 1).t();
        let b: Vec<f64> = (0..n).map(|j| j as f64 * 0.5).collect();
        let bias = Tensor::from_vec(b.iter().map(|&v| T::from_f64(v)).collect(), &[n]);
        let what = format!("{m}×{k}×{n}");
        poison::<T>(m * n);
        assert_eq!(a.matmul(&w).to_vec(), naive(&a, &w, None), "matmul {what}");
        let expected = naive(&a_t.contiguous(), &w, None);
        poison::<T>(m * n);
        assert_eq!(a_t.matmul(&w).to_vec(), expected, "matmul of Aᵀ {what}");
        let expected = naive(&a, &w, Some(&b));
        poison::<T>(m * n);
        assert_eq!(a.linear(&w, &bias).to_vec(), expected, "linear {what}");
    }
    // The element-wise kernels' walks over strided views (rows, and tiles
    // of a transposed plane), which also write every element of a reused
    // buffer: a copy and a sum of the transposed view of a [301, 223].
    let a_t = small_ints::<T>(301, 223, 7).t();
    let (rows, cols) = (223, 301);
    let source = small_ints::<T>(301, 223, 7).to_vec();
    let transposed: Vec<T> = (0..rows * cols)
        .map(|i| source[(i % cols) * rows + i / cols])
        .collect();
    poison::<T>(rows * cols);
    assert_eq!(
        a_t.contiguous().to_vec(),
        transposed,
        "copy of a strided view"
    );
    let doubled: Vec<T> = transposed.iter().map(|&v| v + v).collect();
    poison::<T>(rows * cols);
    assert_eq!(a_t.add(&a_t).to_vec(), doubled, "sum of strided views");
    let narrowed = small_ints::<T>(rows, 2 * cols, 8);
    let right = narrowed.narrow(1, cols, cols);
    let expected: Vec<T> = narrowed
        .to_vec()
        .chunks(2 * cols)
        .flat_map(|row| row[cols..].to_vec())
        .collect();
    poison::<T>(rows * cols);
    assert_eq!(
        right.contiguous().to_vec(),
        expected,
        "copy of a narrowed view"
    );
    // A batched product: [3, 37, 41] × [41, 43].
    let (a, w) = (small_ints::<T>(3 * 37, 41, 3), small_ints::<T>(41, 43, 4));
    let expected = naive(&a, &w, None);
    poison::<T>(3 * 37 * 43);
    let batched = a.reshape(&[3, 37, 41]).matmul(&w).to_vec();
    assert_eq!(batched, expected, "batched matmul");
    // The MADE's blocked product under a 300 × 300 staircase mask.
    let size = 300;
    let ones = (0..size * size).map(|i| {
        if i % size >= i / size {
            T::ONE
        } else {
            T::ZERO
        }
    });
    let mask = Tensor::from_vec(ones.collect(), &[size, size]);
    let blocks = BlockMask::new(&mask);
    assert!(
        blocks.worth_blocking(),
        "the staircase is multiplied by tiles"
    );
    let (x, w) = (small_ints::<T>(67, size, 5), small_ints::<T>(size, size, 6));
    let bias = Tensor::from_vec(vec![T::ONE; size], &[size]);
    let expected = naive(&x, &w.mul(&mask), Some(&vec![1.0; size]));
    let masked = blocks.apply(&w);
    poison::<T>(67 * size);
    let y = x.block_masked_linear(&masked, &bias, &blocks).to_vec();
    assert_eq!(y, expected, "block_masked_linear");
}

#[test]
fn a_product_never_reads_the_old_values_of_its_reused_output() {
    products_never_read_old_values::<f32>();
    products_never_read_old_values::<f64>();
}
