//! The cache's Prometheus families, read off the store and its shared
//! tier when the admin listener is scraped (both live across reloads, so
//! their counters do too).

use std::sync::atomic::Ordering;

use super::partitioned::Partitioned;
use super::semantic_tier::SemanticTier;
use super::shared::SharedTier;
use crate::telemetry::prometheus::{family, sample};

/// Appends the cache's families.
pub fn render(
    store: &Partitioned,
    shared: Option<&SharedTier>,
    semantic: Option<&SemanticTier>,
    out: &mut String,
) {
    if let Some(tier) = shared {
        render_shared(tier, out);
    }
    if let Some(tier) = semantic {
        render_semantic(tier, out);
    }
    let s = store.stats();
    family(
        out,
        "shardgate_cache_lookups_total",
        "counter",
        "Requests the exact cache was asked for, by result (hit or miss).",
    );
    sample(
        out,
        "shardgate_cache_lookups_total",
        &[("result", "hit")],
        s.hits,
    );
    sample(
        out,
        "shardgate_cache_lookups_total",
        &[("result", "miss")],
        s.misses,
    );
    family(
        out,
        "shardgate_cache_evictions_total",
        "counter",
        "Entries evicted to make room.",
    );
    sample(out, "shardgate_cache_evictions_total", &[], s.evictions);
    family(out, "shardgate_cache_entries", "gauge", "Entries held now.");
    sample(out, "shardgate_cache_entries", &[], s.entries as u64);
    family(
        out,
        "shardgate_cache_size_bytes",
        "gauge",
        "Bytes the entries count for now (bodies and bookkeeping).",
    );
    sample(out, "shardgate_cache_size_bytes", &[], s.bytes as u64);
    family(
        out,
        "shardgate_cache_saved_tokens_total",
        "counter",
        "Tokens hits did not spend upstream, by direction.",
    );
    for (direction, v) in [
        ("input", s.saved.input_tokens),
        ("output", s.saved.output_tokens),
    ] {
        sample(
            out,
            "shardgate_cache_saved_tokens_total",
            &[("direction", direction)],
            v,
        );
    }
    family(
        out,
        "shardgate_cache_saved_usd_total",
        "counter",
        "US dollars hits did not spend upstream, at the answers' prices.",
    );
    out.push_str(&format!(
        "shardgate_cache_saved_usd_total {}\n",
        s.saved.nanos as f64 / 1e9
    ));
}

/// The shared tier's families.
fn render_shared(tier: &SharedTier, out: &mut String) {
    let c = &tier.counts;
    family(
        out,
        "shardgate_cache_shared_up",
        "gauge",
        "1 while the shared tier holds a working Redis connection.",
    );
    sample(out, "shardgate_cache_shared_up", &[], tier.is_up() as u64);
    family(
        out,
        "shardgate_cache_shared_lookups_total",
        "counter",
        "In-process misses asked of Redis, by result (hit, miss, or unavailable: not asked, or not answered within cache.shared_wait_ms).",
    );
    for (result, n) in [
        ("hit", &c.hits),
        ("miss", &c.misses),
        ("unavailable", &c.unavailable),
    ] {
        sample(
            out,
            "shardgate_cache_shared_lookups_total",
            &[("result", result)],
            n.load(Ordering::Relaxed),
        );
    }
    family(
        out,
        "shardgate_cache_shared_stores_total",
        "counter",
        "Answers written to Redis, by result (stored, or dropped: Redis down, the queue full, a failed call).",
    );
    for (result, n) in [("stored", &c.stored), ("dropped", &c.dropped)] {
        sample(
            out,
            "shardgate_cache_shared_stores_total",
            &[("result", result)],
            n.load(Ordering::Relaxed),
        );
    }
}

/// The semantic cache's families.
fn render_semantic(tier: &SemanticTier, out: &mut String) {
    let c = &tier.embedder.counts;
    family(
        out,
        "shardgate_cache_semantic_hits_total",
        "counter",
        "Requests answered by meaning: the entry of a request whose embedding was within the threshold (part of shardgate_cache_lookups_total{result=\"hit\"}).",
    );
    sample(
        out,
        "shardgate_cache_semantic_hits_total",
        &[],
        tier.hits.load(Ordering::Relaxed),
    );
    family(
        out,
        "shardgate_cache_semantic_embeddings_total",
        "counter",
        "Requests' texts embedded for the semantic cache, by result (ok, or failed: the call failed, was late or could not be queued).",
    );
    for (result, n) in [("ok", &c.embedded), ("failed", &c.failed)] {
        sample(
            out,
            "shardgate_cache_semantic_embeddings_total",
            &[("result", result)],
            n.load(Ordering::Relaxed),
        );
    }
    family(
        out,
        "shardgate_cache_semantic_embedding_tokens_total",
        "counter",
        "Input tokens the embedding model reported for the semantic cache's own calls.",
    );
    sample(
        out,
        "shardgate_cache_semantic_embedding_tokens_total",
        &[],
        c.tokens.load(Ordering::Relaxed),
    );
    let index = tier.index.lock().unwrap_or_else(|e| e.into_inner());
    family(
        out,
        "shardgate_cache_semantic_vectors",
        "gauge",
        "Embeddings held now.",
    );
    sample(
        out,
        "shardgate_cache_semantic_vectors",
        &[],
        index.len() as u64,
    );
    family(
        out,
        "shardgate_cache_semantic_index_bytes",
        "gauge",
        "Bytes the vector index holds now (estimated: floats, graphs, bookkeeping).",
    );
    sample(
        out,
        "shardgate_cache_semantic_index_bytes",
        &[],
        index.bytes() as u64,
    );
}
