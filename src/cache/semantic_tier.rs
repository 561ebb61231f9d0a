//! The semantic cache as a generation holds it: the vector index behind
//! its lock, the embedder, and the threshold, built from `[cache.semantic]`
//! with the embedding model routed by the generation's router. The index
//! points at exact-cache keys; the answers stay in the exact cache (and
//! its shared tier), so an entry evicted there is a semantic miss too.
//!
//! Invariant: built only with the cache on and a model opted in; the
//! index starts empty with each generation (a reload forgets what it had
//! learnt, never the answers themselves).

use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

use super::embedder::Embedder;
use super::semantic::SemanticIndex;
use crate::config::Config;
use crate::providers::router::Router;

/// A generation's semantic cache.
pub struct SemanticTier {
    pub index: Mutex<SemanticIndex>,
    pub embedder: Embedder,
    pub threshold: f32,
    /// Requests answered by meaning (not by their exact key).
    pub hits: AtomicU64,
}

impl SemanticTier {
    /// The tier `config` asks for, if any.
    pub fn build(config: &Config, router: &Router) -> Result<Option<SemanticTier>, String> {
        let c = &config.cache;
        let s = &c.semantic;
        let Some(model) = s.embedding_model.as_deref() else {
            return Ok(None);
        };
        if !c.enabled || !config.models.iter().any(|m| m.semantic) {
            return Ok(None);
        }
        let target = router
            .route(model)
            .map_err(|e| format!("cache.semantic.embedding_model: {}", e.message))?;
        let embedder = Embedder::spawn(
            &router.providers[target.provider],
            target.upstream_model,
            s.timeout_ms,
        )?;
        Ok(Some(SemanticTier {
            index: Mutex::new(
                SemanticIndex::new(s.max_vectors).with_max_partitions(s.max_partitions),
            ),
            embedder,
            threshold: s.threshold,
            hits: AtomicU64::new(0),
        }))
    }
}
