//! shardgate: a thread-per-core, io_uring LLM gateway.
//!
//! The library holds everything the binary, the load generator, the tests and
//! the benchmarks share. The sans-IO pieces (`http1`, `json`, `api`) never
//! touch a socket; the I/O layer (`runtime`, `shard`, `net`, `proxy`,
//! `upstream`) composes them on monoio.

pub mod admin;
pub mod api;
pub mod buf;
pub mod cache;
pub mod civil;
pub mod cli;
pub mod config;
pub mod error;
pub mod governance;
pub mod http1;
pub mod json;
pub mod net;
pub mod providers;
pub mod proxy;
pub mod runtime;
pub mod server;
pub mod shard;
pub mod telemetry;
pub mod upstream;
