//! Per-core shards: one pinned thread, one monoio runtime, one listener each.
