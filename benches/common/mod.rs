//! Timing helpers shared by the benches (each declares `mod common;`).

use std::time::Instant;

/// The median of `times`: the middle value, the upper of the two middle
/// ones for an even count.
///
/// # Panics
/// If `times` is empty or holds a NaN.
pub fn median(mut times: Vec<f64>) -> f64 {
    times.sort_by(|a, b| a.partial_cmp(b).expect("times are finite"));
    times[times.len() / 2]
}

/// Median milliseconds of `reps` calls of `f`, after `warm` unmeasured ones.
#[allow(dead_code)] // the benches that time batches use `median` alone
pub fn median_ms(warm: usize, reps: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..warm {
        f();
    }
    median(
        (0..reps)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect(),
    )
}
