//! A counting allocator for the fuzzers: the whole binary allocates through
//! it, and [`peak_bytes`] reports the most memory the calling thread held
//! while a closure ran, above what it held before. A reader that sizes a
//! buffer from a number in the file (a header's shape, a length field)
//! shows up as a peak far beyond the file's own size.
//!
//! The counts are per thread (the test harness runs tests side by side), in
//! `const` thread-locals without destructors, so counting never allocates.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    /// Bytes allocated minus bytes freed by this thread.
    static HELD: Cell<isize> = const { Cell::new(0) };
    /// The largest `HELD` since the last [`peak_bytes`] began.
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn count(delta: isize) {
    let _ = HELD.try_with(|held| {
        let now = held.get() + delta;
        held.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

struct Meter;

// SAFETY: every call is forwarded unchanged to `System`; the counting only
// touches this thread's `Cell`s.
unsafe impl GlobalAlloc for Meter {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            count(layout.size() as isize);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(layout);
        if !p.is_null() {
            count(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        count(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            count(new_size as isize - layout.size() as isize);
        }
        p
    }
}

#[global_allocator]
static METER: Meter = Meter;

/// Runs `f` and returns its result with the peak number of bytes this
/// thread held while it ran (its result included), above what it held
/// when `f` began.
pub fn peak_bytes<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let start = HELD.with(Cell::get);
    PEAK.with(|peak| peak.set(start));
    let result = f();
    let peak = PEAK.with(Cell::get) - start;
    (result, peak.max(0) as usize)
}

/// A meter that cannot see allocations would pass every bound: 1 MiB held
/// must show as at least 1 MiB.
#[test]
fn the_meter_sees_what_is_held() {
    let (v, peak) = peak_bytes(|| vec![1u8; 1 << 20]);
    assert_eq!(v.len(), 1 << 20);
    assert!(peak >= 1 << 20, "peak {peak}");
    let ((), peak) = peak_bytes(|| ());
    assert!(peak < 1024, "peak {peak} for nothing");
}
