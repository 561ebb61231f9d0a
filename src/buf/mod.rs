//! The per-shard arena of reusable I/O buffers.
