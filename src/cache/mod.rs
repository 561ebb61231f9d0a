//! The response cache (issue 17): what a request's cache key is (`key`),
//! what its headers ask of the cache (`directive`) and the bounded
//! in-process store of exact entries (`store`). Wiring into the proxy's
//! lookup and settle phases, Redis sharing and the semantic index come
//! next.

pub mod directive;
pub mod key;
pub mod store;
