//! When kernels go parallel: the size thresholds, measured, and the helpers
//! that split work across rayon's threads above them.
//!
//! Below [`PAR_MIN_ELEMENTS`] the cost of waking a second thread (a few µs)
//! exceeds the work; above it, element-wise kernels split their output into
//! chunks of [`PAR_CHUNK`] elements. The numbers come from `cargo bench --bench
//! tensor` on the 2-core development machine (docs/benchmarks.md).

/// Element-wise kernels with fewer output elements than this run serially.
pub const PAR_MIN_ELEMENTS: usize = 1 << 15;

/// Output chunk (in elements) handed to one rayon task.
pub const PAR_CHUNK: usize = 1 << 13;

/// Matmuls with fewer multiply-adds (`m·k·n`) than this run on one thread.
pub const PAR_MIN_MATMUL_FLOPS: usize = 1 << 20;

/// True when a kernel producing `n` elements should split across threads.
#[inline]
pub fn go_parallel(n: usize) -> bool {
    n >= PAR_MIN_ELEMENTS && rayon::current_num_threads() > 1
}
