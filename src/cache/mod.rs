//! The response cache (issue 17): what a request's cache key is (`key`)
//! and the bounded in-process store of exact entries (`store`). Wiring
//! into the proxy's lookup and settle phases, Redis sharing and the
//! semantic index come next.

pub mod key;
pub mod store;
