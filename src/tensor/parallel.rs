//! When kernels go parallel: the size thresholds, measured, and the helpers
//! that split work across rayon's threads above them.
//!
//! Below [`PAR_MIN_ELEMENTS`] the cost of waking a second thread (a few µs)
//! exceeds the work; above it, element-wise kernels split their output into
//! chunks of [`PAR_CHUNK`] elements. The numbers come from `cargo bench --bench
//! tensor` on the 2-core development machine (docs/benchmarks/engine.md).
//!
//! **A level above the kernels.** A no-grad evaluation of a whole model
//! ([`FlowModel::log_prob`](crate::flows::FlowModel::log_prob) and
//! `sample`) may instead cut its batch into pieces, at most one per thread,
//! and run each piece with [`serial_kernels`]: one hand-off for the whole
//! chain of ops rather than one per op (docs/benchmarks/engine.md, "Evaluation by pieces").
//!
//! **Without threads.** rayon sits behind the default cargo feature
//! `parallel`. Built without it (`--no-default-features`, e.g. for
//! `wasm32-unknown-unknown`), [`current_num_threads`] is 1, so every kernel
//! takes its serial path, and [`prelude`] supplies serial stand-ins for the
//! few rayon methods the kernels name (`par_iter`, `par_chunks_mut`,
//! `into_par_iter`, `with_min_len`, `collect_into_vec`), so the kernels are
//! written once, with `use crate::tensor::parallel::prelude::*`.

/// Element-wise kernels with fewer output elements than this run serially.
pub const PAR_MIN_ELEMENTS: usize = 1 << 15;

/// Output chunk (in elements) handed to one rayon task.
pub const PAR_CHUNK: usize = 1 << 13;

/// Matmuls with fewer multiply-adds (`m·k·n`) than this run on one thread.
pub const PAR_MIN_MATMUL_FLOPS: usize = 1 << 20;

/// rayon's prelude when the `parallel` feature is on.
#[cfg(feature = "parallel")]
pub mod prelude {
    pub use rayon::prelude::*;
}

/// Serial stand-ins for the rayon methods the kernels call, when the
/// `parallel` feature is off: each returns the standard sequential iterator,
/// so `x.par_chunks_mut(n).zip(..).for_each(..)` compiles to a plain loop.
#[cfg(not(feature = "parallel"))]
pub mod prelude {
    /// `par_iter` and `par_chunks` on slices: their sequential iterators.
    pub trait ParallelSlice<T> {
        /// `self.iter()`.
        fn par_iter(&self) -> std::slice::Iter<'_, T>;
        /// `self.chunks(size)`.
        fn par_chunks(&self, size: usize) -> std::slice::Chunks<'_, T>;
    }

    impl<T> ParallelSlice<T> for [T] {
        fn par_iter(&self) -> std::slice::Iter<'_, T> {
            self.iter()
        }
        fn par_chunks(&self, size: usize) -> std::slice::Chunks<'_, T> {
            self.chunks(size)
        }
    }

    /// `par_iter_mut` and `par_chunks_mut` on slices: their sequential iterators.
    pub trait ParallelSliceMut<T> {
        /// `self.iter_mut()`.
        fn par_iter_mut(&mut self) -> std::slice::IterMut<'_, T>;
        /// `self.chunks_mut(size)`.
        fn par_chunks_mut(&mut self, size: usize) -> std::slice::ChunksMut<'_, T>;
    }

    impl<T> ParallelSliceMut<T> for [T] {
        fn par_iter_mut(&mut self) -> std::slice::IterMut<'_, T> {
            self.iter_mut()
        }
        fn par_chunks_mut(&mut self, size: usize) -> std::slice::ChunksMut<'_, T> {
            self.chunks_mut(size)
        }
    }

    /// `into_par_iter` on anything iterable: `into_iter`.
    pub trait IntoParallelIterator: IntoIterator + Sized {
        /// `self.into_iter()`.
        fn into_par_iter(self) -> Self::IntoIter {
            self.into_iter()
        }
    }

    impl<I: IntoIterator> IntoParallelIterator for I {}

    /// rayon's tuning and collecting methods on sequential iterators.
    pub trait ParallelIterator: Iterator + Sized {
        /// Does nothing: there is one task.
        fn with_min_len(self, _min: usize) -> Self {
            self
        }
        /// Replaces the contents of `out` with the items.
        fn collect_into_vec(self, out: &mut Vec<Self::Item>) {
            out.clear();
            out.extend(self);
        }
    }

    impl<I: Iterator> ParallelIterator for I {}
}

/// The number of threads kernels may split work across: rayon's pool size,
/// or 1 without the `parallel` feature.
#[inline]
pub fn current_num_threads() -> usize {
    #[cfg(feature = "parallel")]
    {
        rayon::current_num_threads()
    }
    #[cfg(not(feature = "parallel"))]
    {
        1
    }
}

thread_local! {
    static SERIAL: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// True when a kernel producing `n` elements should split across threads.
#[inline]
pub fn go_parallel(n: usize) -> bool {
    n >= PAR_MIN_ELEMENTS && threads_available()
}

/// True when kernels on this thread may split work across rayon's threads:
/// more than one thread, and not inside [`serial_kernels`].
#[inline]
pub fn threads_available() -> bool {
    current_num_threads() > 1 && !SERIAL.with(|s| s.get())
}

/// Runs `f` with this thread's kernels kept serial.
///
/// Why: two independent products (the two gradients of a matmul) run side
/// by side with `rayon::join` use both cores fully, whereas each splitting
/// its rows again would pack its right operand once per half for nothing.
///
/// The thread's previous setting comes back when `f` returns or panics (a
/// panic caught further up must not leave the thread serial for good).
pub fn serial_kernels<R>(f: impl FnOnce() -> R) -> R {
    /// Puts the saved setting back on drop, also while unwinding.
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            SERIAL.with(|s| s.set(self.0));
        }
    }
    let _restore = Restore(SERIAL.with(|s| s.replace(true)));
    f()
}

/// Computes `a()` and `b()` side by side on rayon's pool, each with serial
/// kernels (see [`serial_kernels`]); serially when no second thread is free.
pub fn join_serial<A: Send, B: Send>(
    a: impl FnOnce() -> A + Send,
    b: impl FnOnce() -> B + Send,
) -> (A, B) {
    #[cfg(feature = "parallel")]
    if threads_available() {
        return rayon::join(|| serial_kernels(a), || serial_kernels(b));
    }
    (a(), b())
}

/// Runs `f` on a thread of rayon's pool (directly when already on one).
///
/// Why: a parallel kernel called from outside the pool injects its work and
/// puts the calling thread to sleep until the pool is done, paying two
/// thread wake-ups per op (tens of µs on a busy machine, more than a
/// 65k-element op costs). Called from a pool thread, the caller works on one
/// half itself and the other thread steals the rest if it is free. Training
/// loops and batch evaluations wrap their whole body in this.
pub fn in_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    #[cfg(feature = "parallel")]
    if rayon::current_thread_index().is_none() {
        return rayon::scope(|_| f());
    }
    f()
}
