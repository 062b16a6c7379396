//! Reuse of freed tensor storage: a cache of buffers by length, shared by
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
//! What a kernel gets from the cache is a `Vec` of length 0 (or filled, for
//! [`filled`]) whose capacity is the length asked for: the old contents are
//! never visible, so reuse cannot change a result.
//!
//! The cache keeps at most [`limit`] bytes (256 MiB unless [`set_limit`]
//! says otherwise); a buffer that would pass it goes back to the allocator.
//! [`release`] empties it.

use super::Element;
use std::any::Any;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

/// Buffers smaller than this many bytes go straight back to the allocator:
/// small allocations are cheap and rarely fault.
pub const MIN_BYTES: usize = 16 * 1024;

/// The default of [`limit`]: 256 MiB.
pub const DEFAULT_LIMIT: usize = 256 << 20;

static LIMIT: AtomicUsize = AtomicUsize::new(DEFAULT_LIMIT);

/// The most bytes of freed storage the cache keeps for reuse.
pub fn limit() -> usize {
    LIMIT.load(Ordering::Relaxed)
}

/// Sets the most bytes of freed storage the cache keeps, from the next
/// freed buffer on. `0` turns the cache off; buffers already kept stay until
/// they are reused or [`release`]d.
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

/// The cache of one element type: free buffers by capacity (few distinct
/// lengths, so a list).
struct Cache<T> {
    free: Vec<(usize, Vec<Vec<T>>)>,
    bytes: usize,
}

impl<T> Default for Cache<T> {
    fn default() -> Self {
        Cache {
            free: Vec::new(),
            bytes: 0,
        }
    }
}

impl<T> Cache<T> {
    /// A kept buffer of capacity `n`, emptied, if there is one.
    fn take(&mut self, n: usize) -> Option<Vec<T>> {
        let (_, list) = self.free.iter_mut().find(|(cap, _)| *cap == n)?;
        let v = list.pop()?;
        self.bytes -= bytes_of::<T>(n);
        Some(v)
    }

    /// Keeps the empty buffer `v` unless that would pass `limit` bytes, in
    /// which case `v` comes back.
    fn keep(&mut self, v: Vec<T>, limit: usize) -> Option<Vec<T>> {
        let (cap, bytes) = (v.capacity(), bytes_of::<T>(v.capacity()));
        if self.bytes + bytes > limit {
            return Some(v);
        }
        self.bytes += bytes;
        match self.free.iter_mut().find(|(at, _)| *at == cap) {
            Some((_, list)) => list.push(v),
            None => self.free.push((cap, vec![v])),
        }
        None
    }

    /// How many buffers of capacity `n` are kept.
    #[cfg(test)]
    fn count(&self, n: usize) -> usize {
        self.free
            .iter()
            .find(|(cap, _)| *cap == n)
            .map_or(0, |(_, l)| l.len())
    }
}

struct Pools {
    f32: Cache<f32>,
    f64: Cache<f64>,
}

static POOLS: Mutex<Pools> = Mutex::new(Pools {
    f32: Cache {
        free: Vec::new(),
        bytes: 0,
    },
    f64: Cache {
        free: Vec::new(),
        bytes: 0,
    },
});

/// The lock on the caches. Nothing that can panic runs under it, but a
/// poisoned lock is still usable: the caches are consistent between calls.
fn pools() -> MutexGuard<'static, Pools> {
    POOLS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `f` on the cache of `T` under the lock.
fn with_cache<T: Element, R>(f: impl FnOnce(&mut Cache<T>) -> R) -> Option<R> {
    let mut p = pools();
    let p = &mut *p;
    let cache: &mut dyn Any = if std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>() {
        &mut p.f32
    } else {
        &mut p.f64
    };
    cache.downcast_mut::<Cache<T>>().map(f)
}

fn bytes_of<T>(capacity: usize) -> usize {
    capacity * std::mem::size_of::<T>()
}

/// An empty `Vec` with capacity for `n` elements: a kept buffer of exactly
/// that capacity when there is one, a fresh allocation otherwise.
pub(crate) fn with_capacity<T: Element>(n: usize) -> Vec<T> {
    if bytes_of::<T>(n) >= MIN_BYTES {
        let kept = with_cache::<T, _>(|c| c.take(n));
        if let Some(Some(v)) = kept {
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

/// Keeps `v`'s buffer for reuse (emptied), or frees it when it is small or
/// the cache is full.
pub(crate) fn give<T: Element>(mut v: Vec<T>) {
    if bytes_of::<T>(v.capacity()) < MIN_BYTES {
        return;
    }
    let limit = limit();
    v.clear();
    // A buffer the cache refuses comes back out and is freed after the lock.
    let refused = with_cache::<T, _>(move |c| c.keep(v, limit));
    drop(refused);
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
    fn small_buffers_go_back_to_the_allocator() {
        let n = MIN_BYTES / 4 - 3; // f32: just under MIN_BYTES bytes
        give(vec![1.0f32; n]);
        assert_eq!(kept_f32(n), 0);
        give(vec![1.0f32; n + 3]);
        assert_eq!(kept_f32(n + 3), 1, "MIN_BYTES itself is kept");
    }

    #[test]
    fn a_full_cache_hands_the_buffer_back() {
        let mut cache = Cache::<f64>::default();
        let n = MIN_BYTES / 8;
        for _ in 0..2 {
            assert!(cache.keep(Vec::with_capacity(n), 2 * MIN_BYTES).is_none());
        }
        let refused = cache.keep(Vec::with_capacity(n), 2 * MIN_BYTES);
        assert!(
            refused.is_some_and(|v| v.capacity() == n),
            "the third passes the limit"
        );
        assert_eq!((cache.bytes, cache.count(n)), (2 * MIN_BYTES, 2));
        assert!(cache.take(n).is_some() && cache.take(n).is_some());
        assert!(cache.take(n).is_none());
        assert_eq!(cache.bytes, 0);
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
