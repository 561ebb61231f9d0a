//! The per-shard arena of byte buffers.
//!
//! Invariants: a `PooledBuf` never leaves the thread that took it (it is
//! `!Send`), so the arena is a plain thread-local free list with no locking;
//! every buffer in it was taken from it (nothing is adopted), so in steady
//! state returns balance takes and the free lists do not grow (a large
//! `Vec` handed over with `from_vec` is never pooled); small and
//! large buffers are kept apart, so a request for a few hundred bytes never
//! holds a 16 KiB read buffer while it is in flight (that doubled the memory
//! of 64 connections translating Anthropic requests); a buffer that grew
//! beyond `MAX_POOLED_CAPACITY` (a large body) is freed on return instead of
//! pooled, and the free lists hold at most `MAX_FREE_BYTES` of capacity, so
//! the arena's memory is bounded whatever the traffic was (a burst of
//! connections that all close returns all their buffers at once); and once
//! the shard is quiet, [`trim_free_buffers`] hands even those back, so an
//! idle shard holds no spare buffer at all.

use std::cell::RefCell;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};

use monoio::buf::{IoBuf, IoBufMut};

/// Buffers larger than this go back to the allocator, not the arena.
const MAX_POOLED_CAPACITY: usize = 256 * 1024;
/// Capacity kept in the free lists per shard: 256 buffers of 16 KiB, enough
/// to absorb a burst without going back to the allocator.
const MAX_FREE_BYTES: usize = 4 * 1024 * 1024;
/// Takes of at most this many bytes (heads, small bodies) are served from
/// the small list, larger ones (read buffers) from the large list; a buffer
/// returns to the list its capacity belongs to.
const SMALL_MAX: usize = 4 * 1024;

#[derive(Default)]
struct Arena {
    small: Vec<Vec<u8>>,
    large: Vec<Vec<u8>>,
    /// Sum of the free buffers' capacities.
    free_bytes: usize,
    taken: u64,
    allocated: u64,
}

impl Arena {
    fn list(&mut self, capacity: usize) -> &mut Vec<Vec<u8>> {
        if capacity <= SMALL_MAX {
            &mut self.small
        } else {
            &mut self.large
        }
    }
}

thread_local! {
    static ARENA: RefCell<Arena> = RefCell::new(Arena {
        small: Vec::with_capacity(256),
        large: Vec::with_capacity(256),
        ..Default::default()
    });
}

/// A byte buffer borrowed from this shard's arena; it returns there on drop.
pub struct PooledBuf {
    buf: Vec<u8>,
    // Raw pointers are !Send: the buffer must go back to its own shard's arena.
    _shard_local: PhantomData<*const ()>,
}

impl PooledBuf {
    /// An empty buffer with at least `capacity` bytes of room.
    pub fn take(capacity: usize) -> PooledBuf {
        let buf = ARENA.with(|a| {
            let mut a = a.borrow_mut();
            a.taken += 1;
            match a.list(capacity).pop() {
                Some(mut b) => {
                    a.free_bytes -= b.capacity();
                    if b.capacity() < capacity {
                        b.reserve(capacity);
                    }
                    b
                }
                None => {
                    a.allocated += 1;
                    Vec::with_capacity(capacity)
                }
            }
        });
        PooledBuf {
            buf,
            _shard_local: PhantomData,
        }
    }

    /// `bytes` as a shard buffer. A large one (beyond what the arena pools,
    /// e.g. a translated body) is taken over as it is, not copied: it is
    /// freed on drop like any oversized buffer, so it can never join the
    /// free lists. A small one is copied into a buffer taken from the arena,
    /// so that what the arena pools was always its own.
    pub fn from_vec(bytes: Vec<u8>) -> PooledBuf {
        if bytes.capacity() > MAX_POOLED_CAPACITY {
            return PooledBuf {
                buf: bytes,
                _shard_local: PhantomData,
            };
        }
        let mut buf = PooledBuf::take(bytes.len());
        buf.extend_from_slice(&bytes);
        buf
    }

    /// A placeholder with no storage: holds a slot while the real buffer is
    /// owned by an in-flight operation. Costs no allocation.
    pub fn empty() -> PooledBuf {
        PooledBuf {
            buf: Vec::new(),
            _shard_local: PhantomData,
        }
    }

    /// Drops the first `n` bytes, moving the rest to the front (used for the
    /// pipelined bytes that follow a request).
    pub fn consume_front(&mut self, n: usize) {
        if n >= self.buf.len() {
            self.buf.clear();
        } else {
            self.buf.drain(..n);
        }
    }
}

impl Drop for PooledBuf {
    fn drop(&mut self) {
        let mut buf = std::mem::take(&mut self.buf);
        if buf.capacity() == 0 || buf.capacity() > MAX_POOLED_CAPACITY {
            return;
        }
        buf.clear();
        // `try_with`: during thread teardown the arena may already be gone.
        let _ = ARENA.try_with(|a| {
            if let Ok(mut a) = a.try_borrow_mut() {
                if a.free_bytes + buf.capacity() <= MAX_FREE_BYTES {
                    a.free_bytes += buf.capacity();
                    a.list(buf.capacity()).push(buf);
                }
            }
        });
    }
}

impl Deref for PooledBuf {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.buf
    }
}

impl DerefMut for PooledBuf {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }
}

impl std::fmt::Debug for PooledBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "PooledBuf(len={}, cap={})",
            self.buf.len(),
            self.buf.capacity()
        )
    }
}

// SAFETY: delegates to Vec<u8>, whose heap pointer is stable while owned by
// an operation (moving the PooledBuf does not move the heap allocation).
unsafe impl IoBuf for PooledBuf {
    fn read_ptr(&self) -> *const u8 {
        self.buf.read_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.buf.bytes_init()
    }
}

// SAFETY: as above.
unsafe impl IoBufMut for PooledBuf {
    fn write_ptr(&mut self) -> *mut u8 {
        self.buf.write_ptr()
    }
    fn bytes_total(&mut self) -> usize {
        self.buf.bytes_total()
    }
    unsafe fn set_init(&mut self, pos: usize) {
        self.buf.set_init(pos)
    }
}

/// Frees every buffer in this shard's free lists (buffers in use are not
/// touched; they return to the emptied lists as usual). Called when the
/// shard has been quiet for a while: the next burst allocates afresh, which
/// costs little next to what an idle shard would otherwise keep.
pub fn trim_free_buffers() {
    // Taken out first: freeing runs with the arena unborrowed.
    let (small, large) = ARENA.with(|a| {
        let mut a = a.borrow_mut();
        a.free_bytes = 0;
        (std::mem::take(&mut a.small), std::mem::take(&mut a.large))
    });
    drop((small, large));
    ARENA.with(|a| {
        let mut a = a.borrow_mut();
        a.small.reserve(256);
        a.large.reserve(256);
    });
}

/// This shard's arena counters: (buffers taken, buffers ever allocated, free now).
pub fn arena_stats() -> (u64, u64, usize) {
    ARENA.with(|a| {
        let a = a.borrow();
        (a.taken, a.allocated, a.small.len() + a.large.len())
    })
}

#[cfg(test)]
fn free_bytes() -> usize {
    ARENA.with(|a| a.borrow().free_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused() {
        let (_, before, _) = arena_stats();
        let mut b = PooledBuf::take(1024);
        b.extend_from_slice(b"hello");
        drop(b);
        let b = PooledBuf::take(1024);
        assert!(b.is_empty(), "a reused buffer starts empty");
        drop(b);
        let (_, after, _) = arena_stats();
        assert_eq!(after - before, 1, "the second take reused the first buffer");
    }

    #[test]
    fn a_small_take_never_holds_a_large_buffer() {
        drop(PooledBuf::take(16 * 1024));
        let small = PooledBuf::take(256);
        assert!(small.capacity() <= SMALL_MAX, "{}", small.capacity());
        let large = PooledBuf::take(16 * 1024);
        assert!(large.capacity() >= 16 * 1024);
        drop((small, large));
        let (_, before, _) = arena_stats();
        drop((PooledBuf::take(256), PooledBuf::take(16 * 1024)));
        assert_eq!(arena_stats().1, before, "both came back to their own list");
    }

    #[test]
    fn oversized_buffers_are_freed_not_pooled() {
        let b = PooledBuf::take(MAX_POOLED_CAPACITY * 2);
        let (_, _, free_before) = arena_stats();
        drop(b);
        let (_, _, free_after) = arena_stats();
        assert_eq!(free_before, free_after);
    }

    #[test]
    fn a_burst_of_returns_cannot_grow_the_free_list_past_its_byte_bound() {
        let burst: Vec<PooledBuf> = (0..2 * MAX_FREE_BYTES / (16 * 1024))
            .map(|_| PooledBuf::take(16 * 1024))
            .collect();
        drop(burst);
        assert!(free_bytes() <= MAX_FREE_BYTES);
        assert!(free_bytes() > MAX_FREE_BYTES - 16 * 1024);
        let taken: Vec<PooledBuf> = (0..8).map(|_| PooledBuf::take(16 * 1024)).collect();
        assert!(free_bytes() <= MAX_FREE_BYTES - 8 * 16 * 1024);
        drop(taken);
    }

    #[test]
    fn trimming_frees_the_free_lists_and_the_arena_keeps_working() {
        let burst: Vec<PooledBuf> = (0..32).map(|_| PooledBuf::take(16 * 1024)).collect();
        let kept = PooledBuf::take(256);
        drop(burst);
        assert!(free_bytes() >= 32 * 16 * 1024);
        trim_free_buffers();
        assert_eq!(free_bytes(), 0);
        assert_eq!(arena_stats().2, 0, "no free buffer is left");
        drop(kept);
        assert_eq!(
            arena_stats().2,
            1,
            "a buffer in use came back after the trim"
        );
        let (_, before, _) = arena_stats();
        drop(PooledBuf::take(16 * 1024));
        assert_eq!(
            arena_stats().1,
            before + 1,
            "a large take after the trim allocates"
        );
    }

    #[test]
    fn a_large_vec_is_taken_over_and_never_pooled_a_small_one_is_copied() {
        let large = vec![7u8; MAX_POOLED_CAPACITY + 1];
        let at = large.as_ptr();
        let (_, _, free_before) = arena_stats();
        let buf = PooledBuf::from_vec(large);
        assert_eq!(buf.as_ptr(), at, "not copied");
        drop(buf);
        assert_eq!(arena_stats().2, free_before, "freed, not pooled");
        let small = PooledBuf::from_vec(b"abc".to_vec());
        assert_eq!(&small[..], b"abc");
        assert!(small.capacity() <= SMALL_MAX);
    }

    #[test]
    fn consume_front_keeps_the_tail() {
        let mut b = PooledBuf::take(16);
        b.extend_from_slice(b"GET / HTTP/1.1\r\n\r\nNEXT");
        b.consume_front(18);
        assert_eq!(&b[..], b"NEXT");
    }
}
