//! Upstream peers and per-shard keep-alive connection pools: where a provider
//! lives (`UpstreamUrl`), how to reach it (`connect`, with the TLS client
//! settings of `tls`), and the idle connections a shard keeps for it
//! (`UpstreamPool`); and, per shard, how a request is spread over a model's
//! deployments and recovers from their failures: `balance` (which
//! deployment), `breaker` (which are ejected), `retry` (whether, when and
//! where to send again); and how long an attempt may take (`timeouts`).
//! Unlike those, `quota` (a provider's requests and tokens per minute) is
//! counted for the whole instance: its counters are shared by the shards.

pub mod balance;
pub mod blocking;
pub mod breaker;
mod connect;
mod from_config;
mod pool;
pub mod quota;
pub mod retry;
pub mod timeouts;
pub mod tls;
mod url;

pub use connect::{connect, AckPromptly, UpstreamConn};
pub use pool::UpstreamPool;
pub use url::UpstreamUrl;
