//! Upstream peers and per-shard keep-alive connection pools: where a provider
//! lives (`UpstreamUrl`), how to reach it (`connect`), and the idle
//! connections a shard keeps for it (`UpstreamPool`).

mod connect;
mod pool;
mod url;

pub use connect::{connect, UpstreamConn};
pub use pool::UpstreamPool;
pub use url::UpstreamUrl;
