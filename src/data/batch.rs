//! Seeded shuffling and minibatches over the rows of a dataset.
//!
//! A [`Batcher`] hands out batches of row *indices*; [`gather_rows`] copies
//! those rows out of a flat row-major matrix. Keeping the two apart lets one
//! order serve several arrays (images and labels) and keeps the batcher free
//! of any element type.
//!
//! Each epoch visits every row exactly once, in a fresh order drawn from a
//! [`StdRng`] seeded once from a `u64`: the same seed gives the same sequence
//! of batches (with the same version of `rand`).

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

/// Yields batches of row indices over `n` rows, reshuffling at each epoch.
///
/// An epoch is `ceil(n / batch_size)` batches: all full except perhaps the
/// last, which holds the remaining `n % batch_size` rows, so every row is
/// seen exactly once per epoch.
///
/// # Examples
/// ```
/// use flowzoo::data::batch::Batcher;
/// let mut batcher = Batcher::new(10, 4, 42);
/// let epoch = batcher.next_epoch();
/// assert_eq!(epoch.iter().map(Vec::len).collect::<Vec<_>>(), vec![4, 4, 2]);
/// ```
#[derive(Debug, Clone)]
pub struct Batcher {
    batch_size: usize,
    rng: StdRng,
    /// The current epoch's permutation of `0..n`.
    order: Vec<usize>,
    /// Position in `order` of the next batch; `order.len()` when the epoch is
    /// used up (also the state before the first epoch).
    position: usize,
    /// Number of epochs started so far.
    epochs_started: usize,
}

impl Batcher {
    /// A batcher over rows `0..n` in batches of `batch_size`, shuffled by a
    /// `StdRng` seeded from `seed`. No order is drawn until the first batch.
    ///
    /// # Panics
    /// If `batch_size` is 0.
    pub fn new(n: usize, batch_size: usize, seed: u64) -> Self {
        assert!(
            batch_size > 0,
            "Batcher::new: batch_size must be at least 1, got 0"
        );
        let order: Vec<usize> = (0..n).collect();
        Batcher {
            batch_size,
            rng: StdRng::seed_from_u64(seed),
            position: order.len(),
            order,
            epochs_started: 0,
        }
    }

    /// Number of rows.
    pub fn n(&self) -> usize {
        self.order.len()
    }

    /// Number of rows in a full batch.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Number of batches in one epoch, `ceil(n / batch_size)`.
    pub fn batches_per_epoch(&self) -> usize {
        self.order.len().div_ceil(self.batch_size)
    }

    /// Number of epochs started so far (0 before the first batch).
    pub fn epochs_started(&self) -> usize {
        self.epochs_started
    }

    /// The next batch of row indices, `[≤ batch_size]`, starting a freshly
    /// shuffled epoch when the current one is used up. Batches go on forever,
    /// which suits a loop that counts steps rather than epochs.
    ///
    /// Returns an empty batch only when `n` is 0.
    pub fn next_batch(&mut self) -> Vec<usize> {
        if self.position >= self.order.len() {
            self.start_epoch();
        }
        let end = (self.position + self.batch_size).min(self.order.len());
        let batch = self.order[self.position..end].to_vec();
        self.position = end;
        batch
    }

    /// All batches of a freshly shuffled epoch. Any batches left in the
    /// current epoch are dropped.
    pub fn next_epoch(&mut self) -> Vec<Vec<usize>> {
        self.start_epoch();
        self.position = self.order.len();
        self.order
            .chunks(self.batch_size)
            .map(<[usize]>::to_vec)
            .collect()
    }

    fn start_epoch(&mut self) {
        // Why shuffle the previous permutation rather than 0..n: a uniform
        // shuffle of any permutation is uniform, and this saves a refill.
        self.order.shuffle(&mut self.rng);
        self.position = 0;
        self.epochs_started += 1;
    }
}

/// Copies the rows `indices` of a row-major `[n, dim]` matrix, in the order
/// given: the result is `[indices.len(), dim]` row-major.
///
/// # Panics
/// If `dim` is 0, if `data.len()` is not a multiple of `dim`, or if an index
/// is `>= n`; the message gives the lengths.
///
/// # Examples
/// ```
/// use flowzoo::data::batch::gather_rows;
/// let data = [0.0, 1.0, 10.0, 11.0, 20.0, 21.0]; // [3, 2]
/// assert_eq!(gather_rows(&data, 2, &[2, 0]), vec![20.0, 21.0, 0.0, 1.0]);
/// ```
pub fn gather_rows<T: Copy>(data: &[T], dim: usize, indices: &[usize]) -> Vec<T> {
    assert!(
        dim > 0 && data.len().is_multiple_of(dim),
        "gather_rows: data of length {} is not [n, {dim}]",
        data.len()
    );
    let n = data.len() / dim;
    let mut out = Vec::with_capacity(indices.len() * dim);
    for &row in indices {
        assert!(
            row < n,
            "gather_rows: row {row} out of range for [{n}, {dim}]"
        );
        out.extend_from_slice(&data[row * dim..(row + 1) * dim]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_index_appears_once_per_epoch() {
        let mut batcher = Batcher::new(103, 10, 7);
        for _ in 0..3 {
            let mut seen: Vec<usize> = (0..batcher.batches_per_epoch())
                .flat_map(|_| batcher.next_batch())
                .collect();
            seen.sort_unstable();
            assert_eq!(seen, (0..103).collect::<Vec<_>>());
        }
        assert_eq!(batcher.epochs_started(), 3);
    }

    #[test]
    fn same_seed_gives_same_order_and_other_seed_another() {
        let epochs = |seed| {
            let mut batcher = Batcher::new(50, 8, seed);
            (batcher.next_epoch(), batcher.next_epoch())
        };
        assert_eq!(epochs(1), epochs(1));
        assert_ne!(epochs(1), epochs(2));
    }

    #[test]
    fn each_epoch_is_reshuffled() {
        let mut batcher = Batcher::new(50, 50, 3);
        assert_ne!(batcher.next_batch(), batcher.next_batch());
    }

    #[test]
    fn last_batch_holds_the_remainder() {
        let mut batcher = Batcher::new(10, 4, 0);
        let sizes: Vec<usize> = (0..4).map(|_| batcher.next_batch().len()).collect();
        assert_eq!(sizes, vec![4, 4, 2, 4]);
    }

    #[test]
    fn empty_data_gives_empty_batches() {
        let mut batcher = Batcher::new(0, 4, 0);
        assert!(batcher.next_batch().is_empty());
        assert_eq!(batcher.batches_per_epoch(), 0);
    }

    #[test]
    fn gather_rows_copies_rows_in_index_order() {
        let data: Vec<u8> = (0..12).collect(); // [4, 3]
        assert_eq!(
            gather_rows(&data, 3, &[3, 1, 3]),
            vec![9, 10, 11, 3, 4, 5, 9, 10, 11]
        );
    }

    #[test]
    #[should_panic(expected = "row 4 out of range for [4, 3]")]
    fn gather_rows_panics_on_an_index_past_the_end() {
        gather_rows(&[0.0; 12], 3, &[4]);
    }
}
