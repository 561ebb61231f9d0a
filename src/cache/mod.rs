//! The response cache (issue 17): what a request's cache key is (`key`),
//! what its headers ask of the cache (`directive`), the bounded in-process
//! store of exact entries (`store`, in parts by key: `partitioned`, with a
//! byte-identical fast path in front: `raw`), and what an entry answers a request
//! with (`replay`): a whole answer or a recorded stream, given back as
//! kept, or a stream put back together as the whole answer (`assemble`)
//! and a whole answer told as a stream (`synthesize`); a stream is recorded
//! as it passes (`record`). The shared tier keeps entries in Redis too
//! (`shared`, in the format of `wire`). The semantic cache finds an entry
//! by meaning: the bounded vector index by partition (`semantic`) and the
//! text a request is embedded from, with the embeddings request and answer
//! (`semantic_text`). The proxy's lookup phase (`proxy::lookup`) reads and
//! fills them.

pub mod assemble;
pub mod directive;
pub mod embedder;
pub mod handoff;
pub mod key;
pub mod metrics;
pub mod partitioned;
pub mod raw;
pub mod record;
pub mod replay;
pub mod semantic;
pub mod semantic_text;
pub mod semantic_tier;
pub mod shared;
pub mod store;
pub mod synthesize;
pub mod wire;
