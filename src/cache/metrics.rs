//! The cache's Prometheus families, read off the store when the admin
//! listener is scraped (the store is the current generation's: a reload
//! starts it, and its counters, anew, which `rate()` takes as a reset).

use std::sync::Mutex;

use super::store::Store;
use crate::telemetry::prometheus::{family, sample};

/// Appends the cache's families.
pub fn render(store: &Mutex<Store>, out: &mut String) {
    let s = store.lock().unwrap_or_else(|e| e.into_inner()).stats();
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
