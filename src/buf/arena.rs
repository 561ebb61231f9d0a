//! The per-shard arena of byte buffers.
//!
//! Invariants: a `PooledBuf` never leaves the thread that took it (it is
//! `!Send`), so the arena is a plain thread-local free list with no locking;
//! a buffer that grew beyond `MAX_POOLED_CAPACITY` (a large body) is freed on
//! return instead of pooled, and the free list holds at most
//! `MAX_FREE_BYTES` of capacity, so the arena's memory is bounded whatever
//! the traffic was (buffers adopted with `from_vec` join it too, so a bound
//! on the count alone would let it fill with them).

use std::cell::RefCell;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};

use monoio::buf::{IoBuf, IoBufMut};

/// Buffers larger than this go back to the allocator, not the arena.
const MAX_POOLED_CAPACITY: usize = 256 * 1024;
/// Capacity kept in the free list per shard: 256 buffers of 16 KiB, enough
/// to absorb a burst without going back to the allocator.
const MAX_FREE_BYTES: usize = 4 * 1024 * 1024;

#[derive(Default)]
struct Arena {
    free: Vec<Vec<u8>>,
    /// Sum of the free buffers' capacities.
    free_bytes: usize,
    taken: u64,
    allocated: u64,
}

thread_local! {
    static ARENA: RefCell<Arena> = RefCell::new(Arena { free: Vec::with_capacity(256), ..Default::default() });
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
            match a.free.pop() {
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

    /// A placeholder with no storage: holds a slot while the real buffer is
    /// owned by an in-flight operation. Costs no allocation.
    pub fn empty() -> PooledBuf {
        PooledBuf {
            buf: Vec::new(),
            _shard_local: PhantomData,
        }
    }

    /// Adopts a buffer built elsewhere (e.g. a translated body); it joins
    /// this shard's arena when dropped.
    pub fn from_vec(buf: Vec<u8>) -> PooledBuf {
        PooledBuf {
            buf,
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
                    a.free.push(buf);
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

/// This shard's arena counters: (buffers taken, buffers ever allocated, free now).
pub fn arena_stats() -> (u64, u64, usize) {
    ARENA.with(|a| {
        let a = a.borrow();
        (a.taken, a.allocated, a.free.len())
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
    fn oversized_buffers_are_freed_not_pooled() {
        let b = PooledBuf::take(MAX_POOLED_CAPACITY * 2);
        let (_, _, free_before) = arena_stats();
        drop(b);
        let (_, _, free_after) = arena_stats();
        assert_eq!(free_before, free_after);
    }

    #[test]
    fn adopted_buffers_cannot_grow_the_free_list_past_its_byte_bound() {
        for _ in 0..2 * MAX_FREE_BYTES / (16 * 1024) {
            drop(PooledBuf::from_vec(Vec::with_capacity(16 * 1024)));
        }
        assert!(free_bytes() <= MAX_FREE_BYTES);
        assert!(free_bytes() > MAX_FREE_BYTES - 16 * 1024);
        let taken: Vec<PooledBuf> = (0..8).map(|_| PooledBuf::take(1024)).collect();
        assert!(free_bytes() <= MAX_FREE_BYTES - 8 * 16 * 1024);
        drop(taken);
    }

    #[test]
    fn consume_front_keeps_the_tail() {
        let mut b = PooledBuf::take(16);
        b.extend_from_slice(b"GET / HTTP/1.1\r\n\r\nNEXT");
        b.consume_front(18);
        assert_eq!(&b[..], b"NEXT");
    }
}
