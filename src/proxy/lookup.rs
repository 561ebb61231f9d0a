//! The lookup phase: with `[cache]` on, whether a request may be answered
//! from the exact cache, the answer when it may, and what its miss stores.
//!
//! What is cached: answers to chat completions, completions, embeddings
//! and Anthropic messages, 2xx and complete, as the client got them: a
//! whole body, or a stream's events recorded as they passed. Keyed by the
//! caller's namespace (its key's team, else the key, else the gateway),
//! the route, the client's model name and the body in canonical form
//! (`cache::key`, which leaves `stream` out), so a streamed request and a
//! whole one share their entry: each is answered from the other's form
//! (`cache::replay`). A model with `cache = false` is never cached.
//!
//! Invariants: a hit is answered only for the namespace that stored it; an
//! entry older than its TTL, or than the client's `max-age`, never
//! answers; a hit costs no tokens (its usage is zero, unless
//! `cache.charge_hits` meters it at its answer's), and is answered
//! after the key's checks, so a key that may not use the model never
//! reads another's answer; an entry that cannot give the form asked (a
//! usage chunk it never had) is a miss, and the miss's answer replaces it.

use std::borrow::Cow;
use std::sync::Arc;

use monoio::io::{AsyncWriteRent, AsyncWriteRentExt};

use super::endpoint::Endpoint;
use super::exchange::{to_client, ClientFacts, Relayed};
use crate::api::usage::Usage;
use crate::buf::PooledBuf;
use crate::cache::directive::{directive, Directive};
use crate::cache::key::{cache_key, CacheKey};
use crate::cache::raw::Identity;
use crate::cache::replay::{kept_stream, replay, Form, Shape, Want};
use crate::cache::semantic_text::semantic_text;
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
    /// The form the request wants its answer in.
    pub want: Want,
    /// With its model opted in to the semantic cache: what it is found by.
    pub semantic: Option<SemanticAsk>,
    /// The caller's namespace, when the key came from the canonical walk:
    /// a hit then remembers the request's bytes (`cache::raw`), so only a
    /// request seen answered before pays for that copy, never a miss.
    remember: Option<String>,
}

/// A request's semantic lookup: its partition (the key of everything but
/// its text) and, once its text was embedded on an exact miss, its vector
/// (which its miss's answer is indexed under).
pub(super) struct SemanticAsk {
    partition: CacheKey,
    vector: Option<Vec<f32>>,
}

/// An entry that answers a request, in the form it asked for.
pub(super) struct Hit {
    entry: Arc<Entry>,
    /// The entry's answer told in another form (else its own body).
    converted: Option<Vec<u8>>,
    pub streams: bool,
    /// Found by meaning: how close the request was to the one answered.
    similarity: Option<f32>,
}

impl Hit {
    fn body(&self) -> &[u8] {
        self.converted.as_deref().unwrap_or(&self.entry.body)
    }

    /// What the hit is metered at: nothing, or with `cache.charge_hits`
    /// the usage of the answer it gives again.
    pub fn usage(&self, gw: &Gateway) -> Usage {
        match gw.config.cache.charge_hits {
            true => self.entry.usage,
            false => Usage::default(),
        }
    }
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
    (streams, include_usage): (bool, bool),
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
    let shape = match endpoint {
        Endpoint::ChatCompletions => Shape::Chat,
        Endpoint::Completions => Shape::Completions,
        Endpoint::Embeddings => Shape::Embeddings,
        Endpoint::Messages => Shape::Messages,
        _ => return None,
    };
    let want = Want {
        shape,
        streams,
        include_usage,
    };
    let configured = gw.router.model_index(model).map(|m| &gw.config.models[m]);
    let off = configured.is_some_and(|m| m.cache == Some(false));
    if off || !(asked.read || asked.write) {
        return Some(CachePlan {
            directive: asked,
            key: None,
            want,
            semantic: None,
            remember: None,
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
    // A byte-identical repeat skips the canonical walk and its digest.
    let store = gw.cache.as_ref()?;
    let id = Identity::new(&namespace, shape.route(), model, body);
    let key_of = |exclude: &[String]| {
        cache_key(
            &store.digest,
            &namespace,
            shape.route(),
            model,
            body,
            exclude,
        )
    };
    let (key, remember) = match store.raw.get(&id) {
        Some(key) => (Some(key), false),
        None => (key_of(&cfg.exclude_fields), true),
    };
    let semantic = match (&gw.semantic, configured) {
        (Some(_), Some(m)) if m.semantic && key.is_some() => {
            let mut exclude = cfg.exclude_fields.clone();
            exclude.extend(TEXT_FIELDS.iter().map(|f| f.to_string()));
            key_of(&exclude).map(|partition| SemanticAsk {
                partition,
                vector: None,
            })
        }
        _ => None,
    };
    Some(CachePlan {
        directive: asked,
        key: key.map(|k| (k, ttl)),
        want,
        semantic,
        remember: remember.then_some(namespace),
    })
}

/// The members a request's text is in: left out of its semantic
/// partition, which is everything else about it.
const TEXT_FIELDS: &[&str] = &["messages", "system", "prompt"];

/// The exact entry for `key`: the in-process store's, else the shared
/// tier's.
async fn exact(gw: &Gateway, key: &CacheKey, now: u64, max_age: Option<u64>) -> Option<Arc<Entry>> {
    let found = gw.cache.as_ref()?.part(key).get(key, now, max_age);
    match found {
        Some(entry) => Some(entry),
        None => shared(gw, key, now, max_age).await,
    }
}

/// The shared tier's entry for `key`, then kept in-process.
async fn shared(
    gw: &Gateway,
    key: &CacheKey,
    now: u64,
    max_age: Option<u64>,
) -> Option<Arc<Entry>> {
    let store = gw.cache.as_ref()?;
    let fresh = |e: &Entry| {
        e.expires_at > now && max_age.is_none_or(|age| now.saturating_sub(e.stored_at) <= age)
    };
    let entry = gw.shared_cache.as_ref()?.get(key).await.filter(fresh)?;
    store.part(key).insert(*key, entry, now).ok()
}

/// The entry that answers `plan` (for `body`) at `now`, if any, and how
/// old it is: the exact entry (in-process, else shared), else with the
/// semantic cache the entry of the nearest request answered (the text
/// read from `body` only then, and its embedding kept in `plan` for the
/// miss's answer).
pub(super) async fn find(
    gw: &Gateway,
    plan: &mut CachePlan,
    (model, body): (&str, &[u8]),
    now: u64,
) -> Option<(Hit, u64)> {
    let (key, _) = plan.key.as_ref()?;
    if !plan.directive.read {
        return None;
    }
    let store = gw.cache.as_ref()?;
    let max_age = plan.directive.max_age;
    let local = {
        let mut s = store.part(key);
        let local = s.get(key, now, max_age);
        // The common miss (no other tier to ask), counted under this lock.
        if local.is_none() && gw.shared_cache.is_none() && plan.semantic.is_none() {
            s.count(None);
            return None;
        }
        local
    };
    let mut found = match local {
        Some(entry) => Some(entry),
        None => shared(gw, key, now, max_age).await,
    };
    let route = plan.want.shape.route();
    if let (Some(_), Some(namespace)) = (&found, &plan.remember) {
        store
            .raw
            .insert(&Identity::new(namespace, route, model, body), *key);
    }
    let mut similarity = None;
    if let (None, Some(tier), Some(ask)) = (&found, &gw.semantic, plan.semantic.as_mut()) {
        ask.vector = match semantic_text(route, body) {
            Some(text) => tier.embedder.embed(text).await,
            None => None,
        };
        let index = || tier.index.lock().unwrap_or_else(|e| e.into_inner());
        let near = ask
            .vector
            .as_ref()
            .and_then(|v| index().nearest(&ask.partition, v, tier.threshold));
        if let Some((target, sim)) = near {
            found = exact(gw, &target, now, max_age).await;
            match found {
                Some(_) => {
                    similarity = Some(sim);
                    tier.hits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                // Its answer is gone: so is the way to it.
                None if max_age.is_none() => index().remove_target(&target),
                None => {}
            }
        }
    }
    // Told in another form off the lock: that parses the answer.
    let hit = found.and_then(|entry| {
        let converted = match replay(entry.form, &entry.body, plan.want)? {
            Cow::Borrowed(_) => None,
            Cow::Owned(body) => Some(body),
        };
        Some(Hit {
            entry,
            converted,
            streams: plan.want.streams,
            similarity,
        })
    });
    store.part(key).count(hit.as_ref().map(|h| &h.entry.saved));
    let hit = hit?;
    let age = now.saturating_sub(hit.entry.stored_at);
    Some((hit, age))
}

/// Keeps `body`, a 2xx answer to `plan`'s request in `form` that used
/// `usage` and cost `saved`, stored at `now`; a stream only if it ended
/// whole.
pub(super) fn keep(
    gw: &Gateway,
    plan: &CachePlan,
    (form, body): (Form, Vec<u8>),
    (usage, saved): (Usage, Saved),
    now: u64,
) {
    let (Some((key, ttl)), true) = (plan.key, plan.directive.write) else {
        return;
    };
    let Some(cache) = gw.cache.as_ref() else {
        return;
    };
    let body = match form {
        Form::Stream => match kept_stream(plan.want.shape, body) {
            Some(kept) => kept,
            None => return,
        },
        Form::Whole => body,
    };
    let entry = Entry {
        body,
        form,
        stored_at: now,
        expires_at: now.saturating_add(ttl),
        saved,
        usage,
    };
    // Too large for the cache, say: the answer went out all the same.
    let kept = cache.part(&key).insert(key, entry, now);
    let Ok(entry) = kept else {
        return;
    };
    if let Some(tier) = &gw.shared_cache {
        tier.put(&key, &entry, now);
    }
    if let (Some(tier), Some(ask)) = (&gw.semantic, &plan.semantic) {
        if let Some(vector) = &ask.vector {
            let mut index = tier.index.lock().unwrap_or_else(|e| e.into_inner());
            index.insert(ask.partition, vector, key);
        }
    }
}

/// Answers with `hit`, stored `age` seconds ago.
pub(super) async fn answer_hit(
    client: &mut impl AsyncWriteRent,
    facts: &ClientFacts,
    hit: &Hit,
    age: u64,
) -> Relayed {
    let close = !facts.keep_alive || facts.http10;
    let body = hit.body();
    let mut out = PooledBuf::take(256 + body.len());
    push_status_line(&mut out, 200);
    if hit.streams {
        push_header(&mut out, b"content-type", b"text/event-stream");
        push_header(&mut out, b"cache-control", b"no-cache");
    } else {
        push_header(&mut out, b"content-type", b"application/json");
    }
    push_content_length(&mut out, body.len() as u64);
    push_header(&mut out, b"x-shardgate-cache", b"hit");
    push_header(&mut out, b"age", itoa::Buffer::new().format(age).as_bytes());
    if let Some(similarity) = hit.similarity {
        let similarity = format!("{similarity:.4}");
        push_header(
            &mut out,
            b"x-shardgate-cache-similarity",
            similarity.as_bytes(),
        );
    }
    if close {
        push_header(&mut out, b"connection", b"close");
    }
    if let Some(rate) = &facts.rate {
        rate.push(&mut out);
    }
    end_head(&mut out);
    if !facts.is_head {
        out.extend_from_slice(body);
    }
    match to_client(facts, client.write_all(out)).await {
        Some((Ok(_), _)) => Relayed::Complete { close },
        _ => Relayed::Broken,
    }
}
