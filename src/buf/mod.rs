//! Buffers for I/O: a per-shard (per-thread) arena of reusable byte buffers
//! that monoio can own during an operation, and a vectored-write assembly that
//! sends slices of several owned buffers as one `writev`.

mod arena;
mod iovec;

pub use arena::{arena_stats, trim_free_buffers, PooledBuf};
pub use iovec::{write_all, write_all_vectored, IoVecs};
