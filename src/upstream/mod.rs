//! Upstream peers and per-shard keep-alive connection pools: where a provider
//! lives (`UpstreamUrl`), how to reach it (`connect`, with the TLS client
//! settings of `tls`), and the idle connections a shard keeps for it
//! (`UpstreamPool`).

mod connect;
mod pool;
pub mod tls;
mod url;

pub use connect::{connect, UpstreamConn};
pub use pool::UpstreamPool;
pub use url::UpstreamUrl;
