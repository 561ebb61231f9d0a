//! The lookup phase: with `[cache]` on, whether a request may be answered
//! from the exact cache, the answer when it may, and what its miss stores.
//!
//! What is cached: whole (non-streamed) answers to chat completions,
//! completions, embeddings and Anthropic messages, 2xx and complete, as
//! the client got them, keyed by the caller's namespace (its key's team,
//! else the key, else the gateway), the route, the client's model name
//! and the body in canonical form (`cache::key`). A streamed request
//! neither reads nor writes the cache yet (`x-shardgate-cache: bypass`).
//! A model with `cache = false` is never cached.
//!
//! Invariants: a hit is answered only for the namespace that stored it; an
//! entry older than its TTL, or than the client's `max-age`, never
//! answers; a hit costs no tokens (its usage is zero), and is answered
//! after the key's checks, so a key that may not use the model never
//! reads another's answer.

use std::sync::Arc;

use monoio::io::{AsyncWriteRent, AsyncWriteRentExt};

use super::endpoint::Endpoint;
use super::exchange::{to_client, ClientFacts, Relayed};
use crate::buf::PooledBuf;
use crate::cache::directive::{directive, Directive};
use crate::cache::key::{cache_key, CacheKey};
use crate::cache::store::{Entry, Saved};
use crate::governance::KeyEntry;
use crate::http1::parse::RequestHead;
use crate::http1::write::{end_head, push_content_length, push_header, push_status_line};
use crate::shard::Gateway;

/// What the cache does for one request.
pub(super) struct CachePlan {
    pub directive: Directive,
    /// The key, and how long an answer is kept, when the request is one
    /// the cache serves.
    pub key: Option<(CacheKey, u64)>,
}

impl CachePlan {
    /// The `x-shardgate-cache` value of an answer that did not come from it.
    pub fn status(&self) -> &'static str {
        match (&self.key, self.directive.read || self.directive.write) {
            (Some(_), true) => "miss",
            _ => "bypass",
        }
    }
}

/// The plan for a routed request, or `None` with the cache off.
#[allow(clippy::too_many_arguments)]
pub(super) fn plan(
    gw: &Gateway,
    endpoint: Endpoint,
    body: &[u8],
    model: &str,
    key: Option<&Arc<KeyEntry>>,
    head: &RequestHead,
    rbuf: &[u8],
) -> Option<CachePlan> {
    gw.cache.as_ref()?;
    let cfg = &gw.config.cache;
    let asked = directive(
        head.headers
            .iter()
            .filter(|h| h.name.get(rbuf).eq_ignore_ascii_case(b"cache-control"))
            .map(|h| h.value.get(rbuf)),
        head.header(rbuf, b"x-shardgate-cache"),
    );
    let route = match endpoint {
        Endpoint::ChatCompletions => "chat_completions",
        Endpoint::Completions => "completions",
        Endpoint::Embeddings => "embeddings",
        Endpoint::Messages => "messages",
        _ => return None,
    };
    let streams = crate::json::top_level_value(body, b"stream") == Some(b"true");
    let configured = gw.router.model_index(model).map(|m| &gw.config.models[m]);
    let off = configured.is_some_and(|m| m.cache == Some(false));
    if streams || off || !(asked.read || asked.write) {
        return Some(CachePlan {
            directive: asked,
            key: None,
        });
    }
    let namespace = match key {
        Some(k) => match &k.spec.team {
            Some(team) => format!("team:{team}"),
            None => format!("key:{}", k.spec.id),
        },
        None => String::new(),
    };
    let ttl = configured.and_then(|m| m.cache_ttl_s).unwrap_or(cfg.ttl_s);
    let key = cache_key(&namespace, route, model, body, &cfg.exclude_fields);
    Some(CachePlan {
        directive: asked,
        key: key.map(|k| (k, ttl)),
    })
}

/// The entry that answers `plan` at `now`, if any.
pub(super) fn find(gw: &Gateway, plan: &CachePlan, now: u64) -> Option<Arc<Entry>> {
    let (key, _) = plan.key.as_ref()?;
    if !plan.directive.read {
        return None;
    }
    let mut store = gw.cache.as_ref()?.lock().unwrap_or_else(|e| e.into_inner());
    store.get(key, now, plan.directive.max_age)
}

/// Keeps `body`, a whole 2xx answer to `plan`'s request that cost `saved`,
/// stored at `now`.
pub(super) fn keep(gw: &Gateway, plan: &CachePlan, body: Vec<u8>, saved: Saved, now: u64) {
    let (Some((key, ttl)), true) = (plan.key, plan.directive.write) else {
        return;
    };
    let Some(cache) = gw.cache.as_ref() else {
        return;
    };
    let entry = Entry {
        body,
        stored_at: now,
        expires_at: now.saturating_add(ttl),
        saved,
    };
    // Too large for the cache, say: the answer went out all the same.
    let _ = cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, entry, now);
}

/// Answers from `entry`, stored `age` seconds ago.
pub(super) async fn answer_hit(
    client: &mut impl AsyncWriteRent,
    facts: &ClientFacts,
    entry: &Entry,
    age: u64,
) -> Relayed {
    let close = !facts.keep_alive || facts.http10;
    let mut out = PooledBuf::take(256 + entry.body.len());
    push_status_line(&mut out, 200);
    push_header(&mut out, b"content-type", b"application/json");
    push_content_length(&mut out, entry.body.len() as u64);
    push_header(&mut out, b"x-shardgate-cache", b"hit");
    push_header(&mut out, b"age", itoa::Buffer::new().format(age).as_bytes());
    if close {
        push_header(&mut out, b"connection", b"close");
    }
    if let Some(rate) = &facts.rate {
        rate.push(&mut out);
    }
    end_head(&mut out);
    if !facts.is_head {
        out.extend_from_slice(&entry.body);
    }
    match to_client(facts, client.write_all(out)).await {
        Some((Ok(_), _)) => Relayed::Complete { close },
        _ => Relayed::Broken,
    }
}
