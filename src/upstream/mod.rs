//! Upstream peers and per-shard keep-alive connection pools.
