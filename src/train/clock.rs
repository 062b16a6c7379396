//! The training loops' wall clock, and where it reads nothing.
//!
//! `std::time::Instant::now()` panics on `wasm32-unknown-unknown`, which has
//! no clock the standard library can reach. There the [`Stopwatch`] reads
//! nothing and reports 0 seconds, so [`fit`](super::fit::fit) and the
//! reverse-KL loop run unchanged in a browser; the caller times the call
//! itself (`performance.now()` in a web page). Every timing field of a
//! report ([`FitReport::train_seconds`](super::FitReport::train_seconds),
//! `ms_per_step`, [`Check::seconds`](super::fit::Check::seconds)) is 0 on
//! that target. Nothing else depends on the clock: the numbers a run
//! computes are the same with or without it.

/// A started wall clock (none on `wasm32-unknown-unknown`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Stopwatch {
    #[cfg(not(all(target_arch = "wasm32", target_os = "unknown")))]
    start: std::time::Instant,
}

impl Stopwatch {
    /// Starts the clock.
    pub(crate) fn start() -> Self {
        Stopwatch {
            #[cfg(not(all(target_arch = "wasm32", target_os = "unknown")))]
            start: std::time::Instant::now(),
        }
    }

    /// Seconds since [`Stopwatch::start`]; 0 where there is no clock.
    pub(crate) fn seconds(&self) -> f64 {
        #[cfg(not(all(target_arch = "wasm32", target_os = "unknown")))]
        {
            self.start.elapsed().as_secs_f64()
        }
        #[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
        {
            0.0
        }
    }
}
