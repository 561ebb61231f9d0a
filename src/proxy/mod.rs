//! The life of one proxied request: admit (parse and bound the request) →
//! route (model → provider) → upstream (send on a pooled connection) →
//! respond (relay as it arrives).

mod admit;
mod attempt;
pub mod body;
mod conn;
mod context;
mod downstream;
mod endpoint;
mod exchange;
mod forward;
mod headers;
mod offload;
mod plan;
mod relay;
mod respond;
mod settle;
mod translated;

pub use conn::serve_connection;
pub use downstream::local_response;
pub use endpoint::ROUTE_NAMES;
