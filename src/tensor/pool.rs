//! Reuse of freed tensor storage: a cache of buffers by capacity, shared by
//! every thread.
//!
//! A training step allocates the same tensors, of the same lengths, step
//! after step: the tape's activations, their gradients, the optimiser's
//! temporaries. When a tensor's last handle drops, its buffer (if it holds at
//! least [`MIN_BYTES`]) goes into this cache instead of back to the
//! allocator; the kernels take their output buffers from the cache first.
//! The memory a cached buffer covers is already mapped, so the next step
//! writes it without page faults, whatever the allocator would have done with
//! it (glibc trims the arenas of rayon's worker threads, where training runs,
//! and the next touch maps the pages in again: docs/benchmarks/engine.md,
//! "Freed storage kept for the next step").
//!
//! One cache for all threads, not one per thread: the two gradients of a
//! product are computed side by side ([`join_serial`](super::parallel::join_serial)),
//! so a buffer is often allocated on one worker and freed on another; per
//! thread caches would fill on one side and miss on the other.
//!
//! What a kernel gets from the cache is a `Vec` whose capacity is the length
//! asked for: of length 0 (`with_capacity`), filled with one value
//! (`filled`), or holding the old values (`reused`), which only kernels that
//! write every element before any is read ask for (a product's output, whose
//! GEMM never reads it: β = 0; the element-wise walks over strided views;
//! the fused coupling's buffers). So reuse cannot change a result. A kept
//! buffer is always full (a `Vec` handed back with spare capacity has its
//! tail zeroed first), so its old values are initialised `T`s.
//!
//! The cache keeps at most [`limit`] bytes in all (both element types; 256
//! MiB unless [`set_limit`] says otherwise, 64 MiB on `wasm32`). A buffer
//! that would pass it first evicts the buffers of the capacities least
//! recently asked for (so a process that moves on to other shapes does not
//! keep the old ones), and goes back to the allocator if it still does not
//! fit. [`release`] empties the cache. The key is a buffer's capacity: a
//! buffer handed to [`Tensor::from_vec`](super::Tensor::from_vec) with spare
//! capacity is kept under a length that kernels may never ask for.

use super::Element;
use std::any::Any;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

/// Buffers smaller than this many bytes go straight back to the allocator:
/// small allocations are cheap and rarely fault.
pub const MIN_BYTES: usize = 16 * 1024;

/// The default of [`limit`], in bytes: 256 MiB (64 MiB on `wasm32`, whose
/// memory never shrinks).
pub const DEFAULT_LIMIT: usize = if cfg!(target_arch = "wasm32") {
    64 << 20
} else {
    256 << 20
};

static LIMIT: AtomicUsize = AtomicUsize::new(DEFAULT_LIMIT);

/// The most bytes of freed storage the cache keeps for reuse, in all (both
/// element types, every thread).
pub fn limit() -> usize {
    LIMIT.load(Ordering::Relaxed)
}

/// Sets the most bytes of freed storage the cache keeps, in all, from the
/// next freed buffer on (process-wide). `0` turns the cache off; buffers
/// already kept stay until they are reused, evicted or [`release`]d.
pub fn set_limit(bytes: usize) {
    LIMIT.store(bytes, Ordering::Relaxed);
}

/// The bytes of freed storage the cache keeps now.
pub fn retained_bytes() -> usize {
    let p = pools();
    p.f32.bytes + p.f64.bytes
}

/// Gives every kept buffer back to the allocator.
pub fn release() {
    let (f32s, f64s) = {
        let mut p = pools();
        (std::mem::take(&mut p.f32), std::mem::take(&mut p.f64))
    };
    // Freed outside the lock.
    drop((f32s, f64s));
}

/// The buffers kept for one capacity, and when that capacity was last
/// asked for or given back (the cache's clock).
struct Entry<T> {
    capacity: usize,
    buffers: Vec<Vec<T>>,
    used: u64,
}

/// The cache of one element type: free buffers by capacity (few distinct
/// lengths, so a list).
struct Cache<T> {
    free: Vec<Entry<T>>,
    bytes: usize,
}

impl<T> Default for Cache<T> {
    fn default() -> Self {
        Cache::new()
    }
}

impl<T> Cache<T> {
    const fn new() -> Self {
        Cache {
            free: Vec::new(),
            bytes: 0,
        }
    }

    /// A kept buffer of capacity `n` (full, with its old values), if there
    /// is one.
    fn take(&mut self, n: usize, now: u64) -> Option<Vec<T>> {
        let entry = self.free.iter_mut().find(|e| e.capacity == n)?;
        entry.used = now;
        let v = entry.buffers.pop()?;
        self.bytes -= bytes_of::<T>(n);
        Some(v)
    }

    /// Keeps the buffer `v` within `room` bytes for this cache. When it
    /// does not fit, the buffers of the capacities least recently used go
    /// first (a training loop that moved on to other shapes does not keep the
    /// old ones); when it still does not fit, `v` is refused. Returns what
    /// is to be freed (outside the lock).
    fn keep(&mut self, v: Vec<T>, room: usize, now: u64) -> Vec<Vec<T>> {
        let (cap, bytes) = (v.capacity(), bytes_of::<T>(v.capacity()));
        let mut freed = Vec::new();
        while self.bytes + bytes > room {
            let oldest = self
                .free
                .iter()
                .enumerate()
                .filter(|(_, e)| e.capacity != cap)
                .min_by_key(|(_, e)| e.used)
                .map(|(i, _)| i);
            let Some(i) = oldest else { break };
            let entry = self.free.swap_remove(i);
            self.bytes -= bytes_of::<T>(entry.capacity) * entry.buffers.len();
            freed.extend(entry.buffers);
        }
        if self.bytes + bytes > room {
            freed.push(v);
            return freed;
        }
        self.bytes += bytes;
        match self.free.iter_mut().find(|e| e.capacity == cap) {
            Some(entry) => {
                entry.buffers.push(v);
                entry.used = now;
            }
            None => {
                if self.free.len() >= 64 {
                    // Forget capacities that hold nothing, so the list (scanned
                    // under the lock) does not grow with every length seen.
                    self.free.retain(|e| !e.buffers.is_empty());
                }
                self.free.push(Entry {
                    capacity: cap,
                    buffers: vec![v],
                    used: now,
                })
            }
        }
        freed
    }

    /// How many buffers of capacity `n` are kept.
    #[cfg(test)]
    fn count(&self, n: usize) -> usize {
        self.free
            .iter()
            .find(|e| e.capacity == n)
            .map_or(0, |e| e.buffers.len())
    }
}

struct Pools {
    f32: Cache<f32>,
    f64: Cache<f64>,
    /// Counts the calls that take or keep a buffer: the age of an entry.
    clock: u64,
}

impl Pools {
    const fn new() -> Self {
        Pools {
            f32: Cache::new(),
            f64: Cache::new(),
            clock: 0,
        }
    }

    /// The cache of `T`, and the bytes the other element type's holds.
    fn split<T: Element>(&mut self) -> Option<(&mut Cache<T>, usize)> {
        let is_f32 = std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>();
        let (cache, other): (&mut dyn Any, usize) = if is_f32 {
            (&mut self.f32, self.f64.bytes)
        } else {
            (&mut self.f64, self.f32.bytes)
        };
        cache.downcast_mut::<Cache<T>>().map(|c| (c, other))
    }

    fn take<T: Element>(&mut self, n: usize) -> Option<Vec<T>> {
        self.clock += 1;
        let now = self.clock;
        self.split::<T>()?.0.take(n, now)
    }

    /// [`Cache::keep`] within `limit` bytes for both element types together.
    fn keep<T: Element>(&mut self, v: Vec<T>, limit: usize) -> Vec<Vec<T>> {
        self.clock += 1;
        let now = self.clock;
        match self.split::<T>() {
            Some((cache, other)) => cache.keep(v, limit.saturating_sub(other), now),
            None => vec![v],
        }
    }
}

static POOLS: Mutex<Pools> = Mutex::new(Pools::new());

/// The lock on the caches. Nothing that can panic runs under it, but a
/// poisoned lock is still usable: the caches are consistent between calls.
fn pools() -> MutexGuard<'static, Pools> {
    POOLS.lock().unwrap_or_else(|e| e.into_inner())
}

fn bytes_of<T>(capacity: usize) -> usize {
    capacity * std::mem::size_of::<T>()
}

/// An empty `Vec` with capacity for `n` elements: a kept buffer of exactly
/// that capacity when there is one, a fresh allocation otherwise.
pub(crate) fn with_capacity<T: Element>(n: usize) -> Vec<T> {
    if bytes_of::<T>(n) >= MIN_BYTES {
        if let Some(mut v) = pools().take(n) {
            v.clear();
            return v;
        }
    }
    Vec::with_capacity(n)
}

/// `vec![value; n]`, in a kept buffer when there is one.
pub(crate) fn filled<T: Element>(n: usize, value: T) -> Vec<T> {
    let mut v = with_capacity(n);
    v.resize(n, value);
    v
}

/// `n` values that the caller overwrites before reading any: a kept buffer
/// of capacity `n` with its old values (no pass over it), or `n` zeros from
/// the allocator (`calloc`, which skips the writes for fresh pages).
pub(crate) fn reused<T: Element>(n: usize) -> Vec<T> {
    if bytes_of::<T>(n) >= MIN_BYTES {
        if let Some(v) = pools().take::<T>(n) {
            debug_assert_eq!(v.len(), n, "kept buffers are full");
            return v;
        }
    }
    vec![T::ZERO; n]
}

/// Keeps `v`'s buffer for reuse (full: a spare tail is zeroed), or frees it when it is small or
/// does not fit in [`limit`] even after the least recently used capacities
/// of its element type are evicted.
pub(crate) fn give<T: Element>(mut v: Vec<T>) {
    if bytes_of::<T>(v.capacity()) < MIN_BYTES {
        return;
    }
    let limit = limit();
    // Kept full, so that `reused` hands out initialised values.
    v.resize(v.capacity(), T::ZERO);
    // What the cache refuses or evicts comes back out, freed after the lock.
    let freed = pools().keep(v, limit);
    drop(freed);
}

#[cfg(test)]
mod tests {
    use super::*;

    // The cache is shared by the whole process and the library's other unit
    // tests run beside these, so the tests of the shared cache use lengths
    // no other test allocates and look only at those lengths; the limit is
    // tested on a cache of the test's own.

    fn kept_f32(n: usize) -> usize {
        pools().f32.count(n)
    }

    #[test]
    fn a_freed_buffer_is_reused_for_the_same_length_and_comes_back_empty() {
        let n = MIN_BYTES + 4099; // f32: over MIN_BYTES bytes, an odd length
        let mut v = filled::<f32>(n, 7.0);
        v[3] = 1.0;
        let at = v.as_ptr();
        give(v);
        assert_eq!(kept_f32(n), 1);
        let w = with_capacity::<f32>(n);
        assert_eq!(w.as_ptr(), at, "the kept buffer is handed out again");
        assert!(w.is_empty() && w.capacity() == n);
        assert_eq!(kept_f32(n), 0);
        give(w);
        let z = filled::<f32>(n, 0.0);
        assert_eq!(z.as_ptr(), at);
        assert!(z.iter().all(|&x| x == 0.0), "no old value survives");
        // Another length or another type does not take it.
        give(z);
        let other = with_capacity::<f32>(n + 1);
        assert_ne!(other.as_ptr(), at);
        let wide = with_capacity::<f64>(n);
        assert_ne!(wide.as_ptr() as *const f32, at);
        assert_eq!(kept_f32(n), 1);
        let again = with_capacity::<f32>(n);
        assert_eq!(again.as_ptr(), at);
    }

    #[test]
    fn reused_hands_out_the_old_values_of_a_kept_buffer_and_zeros_on_a_miss() {
        let n = MIN_BYTES + 4111; // f32, an odd length no other test asks for
        let mut v = Vec::with_capacity(n);
        v.extend((0..n - 10).map(|i| i as f32));
        let at = v.as_ptr();
        give(v);
        let w = reused::<f32>(n);
        assert_eq!(w.as_ptr(), at, "the kept buffer is handed out again");
        assert_eq!(w.len(), n);
        assert_eq!((w[0], w[7], w[n - 11]), (0.0, 7.0, (n - 11) as f32));
        assert!(
            w[n - 10..].iter().all(|&x| x == 0.0),
            "the spare tail was zeroed"
        );
        let miss = reused::<f32>(n);
        assert_ne!(miss.as_ptr(), at);
        assert!(miss.len() == n && miss.iter().all(|&x| x == 0.0));
    }

    #[test]
    fn small_buffers_go_back_to_the_allocator() {
        let n = MIN_BYTES / 4 - 3; // f32: just under MIN_BYTES bytes
        give(vec![1.0f32; n]);
        assert_eq!(kept_f32(n), 0);
        let m = MIN_BYTES / 4 + 5; // just over, and an odd length
        give(vec![1.0f32; m]);
        assert!(kept_f32(m) >= 1, "over MIN_BYTES it is kept");
    }

    #[test]
    fn a_full_cache_evicts_the_least_recently_used_lengths_then_refuses() {
        let mut cache = Cache::<f64>::default();
        let (n, m) = (MIN_BYTES / 8, MIN_BYTES / 4);
        let room = 2 * MIN_BYTES;
        assert!(cache.keep(Vec::with_capacity(n), room, 1).is_empty());
        assert!(cache.keep(Vec::with_capacity(n), room, 2).is_empty());
        // The same length again: nothing of another length to evict, refused.
        let refused = cache.keep(Vec::with_capacity(n), room, 3);
        assert!(refused.len() == 1 && refused[0].capacity() == n);
        assert_eq!((cache.bytes, cache.count(n)), (2 * MIN_BYTES, 2));
        // Another length evicts the older one.
        let evicted = cache.keep(Vec::with_capacity(m), room, 4);
        assert!(evicted.len() == 2 && evicted.iter().all(|v| v.capacity() == n));
        assert_eq!((cache.bytes, cache.count(n), cache.count(m)), (room, 0, 1));
        assert!(cache.take(m, 5).is_some() && cache.take(m, 6).is_none());
        assert_eq!(cache.bytes, 0);
    }

    #[test]
    fn the_limit_counts_both_element_types() {
        let mut pools = Pools::new();
        let limit = 4 * MIN_BYTES;
        for _ in 0..3 {
            assert!(pools
                .keep(Vec::<f64>::with_capacity(MIN_BYTES / 8), limit)
                .is_empty());
        }
        // 3 × MIN_BYTES of f64 kept: an f32 buffer of 2 × MIN_BYTES does not
        // fit, and f32 has nothing of its own to evict.
        let refused = pools.keep(Vec::<f32>::with_capacity(MIN_BYTES / 2), limit);
        assert_eq!(refused.len(), 1);
        assert!(pools
            .keep(Vec::<f32>::with_capacity(MIN_BYTES / 4), limit)
            .is_empty());
        assert_eq!(pools.f32.bytes + pools.f64.bytes, limit);
        assert!(pools.take::<f32>(MIN_BYTES / 4).is_some());
        assert!(
            pools.take::<f64>(MIN_BYTES / 4).is_none(),
            "each type its own buffers"
        );
    }

    #[test]
    fn a_dropped_tensor_gives_its_storage_to_the_next_kernel() {
        use crate::tensor::Tensor;
        let shape = [61, 257]; // 15677 f32: a length no other test uses
        let a = Tensor::<f32>::full(&shape, 1.0);
        let at = a.storage().as_ptr();
        drop(a);
        let b = Tensor::<f32>::zeros(&[257, 61]);
        assert_eq!(b.storage().as_ptr(), at);
        assert!(b.storage().iter().all(|&x| x == 0.0));
        // A shared storage is kept only when its last handle drops.
        let c = b.reshape(&[61 * 257]);
        drop(b);
        assert_eq!(kept_f32(61 * 257), 0);
        drop(c);
        assert_eq!(kept_f32(61 * 257), 1);
    }
}
