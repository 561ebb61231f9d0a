//! The life of one proxied request, one file per phase, in order (after
//! pingora's `ProxyHttp` phases, statically dispatched):
//!
//! - `conn` — the connection loop: runs the phases for each request on one
//!   `context::RequestCtx`;
//! - `admit` — framing, the body read whole, request id, endpoint, content
//!   rules;
//! - `route` — model → provider (or a configured model's deployment), and
//!   pass-through or translation;
//! - `lookup` — with `[cache]` on, a whole answer from the exact cache
//!   (after the key's checks, before any attempt), and what a miss keeps;
//! - `attempt` — the upstream attempts: retries, fail-over, breakers and
//!   balancers; each one assembled by `upstream_request` and sent by
//!   `forward` (pooled connection, write, response head), its response
//!   relayed by `relay` (native) or `translated`;
//! - `respond` — answers the gateway makes itself, and whether the
//!   connection goes on;
//! - `settle` — the log phase: metrics, access log, usage and cost.
//!
//! Below the phases: `exchange` (what one upstream exchange carries),
//! `downstream` (the client connection's reads and local responses),
//! `headers`, `body`, `endpoint`, `lend`, `offload`.

mod admit;
mod attempt;
pub mod body;
mod conn;
mod context;
mod downstream;
mod endpoint;
mod exchange;
mod forward;
mod govern;
mod headers;
mod lend;
mod lookup;
mod offload;
mod relay;
mod respond;
mod route;
mod settle;
#[cfg(test)]
mod tests;
mod trace;
mod translated;
mod upstream_request;

pub use conn::serve_connection;
pub use downstream::local_response;
pub use endpoint::ROUTE_NAMES;
