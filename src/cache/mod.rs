//! The response cache (issue 17): what a request's cache key is (`key`),
//! what its headers ask of the cache (`directive`), the bounded in-process
//! store of exact entries (`store`), and a recorded chat stream put back
//! together as a whole answer (`assemble`, not used yet). The proxy's
//! lookup phase (`proxy::lookup`) reads and fills the store for whole
//! answers; streams, Redis sharing and the semantic lookup come next.
//! The semantic cache's sans-IO pieces are here, not yet wired in: the
//! bounded vector index by partition (`semantic`) and the text a request is
//! embedded from, with the embeddings request and answer (`semantic_text`).

pub mod assemble;
pub mod directive;
pub mod key;
pub mod metrics;
pub mod semantic;
pub mod semantic_text;
pub mod store;
