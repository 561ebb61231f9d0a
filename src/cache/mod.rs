//! The response cache (issue 17): what a request's cache key is
//! (`key`). Exact entries, their store and the semantic index come next.

pub mod key;
