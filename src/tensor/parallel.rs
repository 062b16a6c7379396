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
    rayon::current_num_threads() > 1 && !SERIAL.with(|s| s.get())
}

/// Runs `f` with this thread's kernels kept serial.
///
/// Why: two independent products (the two gradients of a matmul) run side
/// by side with `rayon::join` use both cores fully, whereas each splitting
/// its rows again would pack its right operand once per half for nothing.
pub fn serial_kernels<R>(f: impl FnOnce() -> R) -> R {
    let before = SERIAL.with(|s| s.replace(true));
    let out = f();
    SERIAL.with(|s| s.set(before));
    out
}

/// Computes `a()` and `b()` side by side on rayon's pool, each with serial
/// kernels (see [`serial_kernels`]); serially when no second thread is free.
pub fn join_serial<A: Send, B: Send>(
    a: impl FnOnce() -> A + Send,
    b: impl FnOnce() -> B + Send,
) -> (A, B) {
    if threads_available() {
        rayon::join(|| serial_kernels(a), || serial_kernels(b))
    } else {
        (a(), b())
    }
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
    if rayon::current_thread_index().is_some() {
        f()
    } else {
        rayon::scope(|_| f())
    }
}
