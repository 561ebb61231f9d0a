//! `/v1/models` with each provider's own models: the configured models
//! first, then every model each provider lists (its `GET …/models`), named
//! as the gateway routes them: `provider/id`, and the default provider's
//! also bare when no `[[models]]` take bare names. Fetched by a thread of
//! its own at start and every [`REFRESH`], cached as the rendered body.
//!
//! Invariants: no shard waits on a provider for it: a request reads the
//! last rendered body; a provider whose fetch fails keeps its last list
//! (none at first), and the configured models are always there; a
//! provider's answer is bounded in size (`MAX_LIST_BYTES`) and count
//! (`MAX_MODELS`); the thread holds only a [`Weak`] and ends soon after
//! its router is dropped (a reload starts another).

use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

use super::Provider;
use crate::telemetry::log_warn;
use crate::upstream::blocking;

/// How often the lists are fetched again.
pub const REFRESH: Duration = Duration::from_secs(600);

/// One exchange with a provider may take this long.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest list read from one provider (OpenRouter's is about 0.5 MiB).
const MAX_LIST_BYTES: usize = 8 * 1024 * 1024;

/// The most models taken from one provider's list.
const MAX_MODELS: usize = 10_000;

/// One provider's models as it listed them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listed {
    pub provider: String,
    /// Also listed bare: the default provider, when bare names go to it.
    pub bare: bool,
    pub ids: Vec<(String, u64)>,
}

/// What `/v1/models` answers: the fetched lists, and the body rendered from
/// them and the configured models.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub listed: Vec<Listed>,
    pub body: Vec<u8>,
}

/// A configured model's entry: its name (or alias), what it resolves to
/// (`provider/upstream model`, for a key's allow-list) and its provider.
pub type Configured = (String, String, String);

/// The cached lists, shared by the shards and the fetching thread.
#[derive(Debug)]
pub struct ModelLists {
    current: RwLock<Arc<Snapshot>>,
    configured: Vec<Configured>,
}

/// What the fetching thread needs of a provider, copied so that it holds
/// no part of the router.
struct Source {
    index: usize,
    name: String,
    bare: bool,
    request: Vec<u8>,
    addrs: Vec<std::net::SocketAddr>,
    tls: Option<(
        Arc<rustls::ClientConfig>,
        rustls::pki_types::ServerName<'static>,
    )>,
}

impl ModelLists {
    /// The lists of `providers` (those that list models in OpenAI's shape;
    /// `bare_for` the one also listed bare) after the `configured` models.
    /// With `fetch`, a thread fetches them now and every [`REFRESH`].
    pub fn start(
        providers: &[Provider],
        bare_for: Option<usize>,
        configured: Vec<Configured>,
        fetch: bool,
    ) -> Arc<ModelLists> {
        let lists = Arc::new(ModelLists {
            current: RwLock::new(Arc::new(Snapshot::default())),
            configured,
        });
        lists.publish(Vec::new());
        let sources: Vec<Source> = providers
            .iter()
            .enumerate()
            .filter_map(|(index, p)| {
                let peer = p.blocking_peer();
                Some(Source {
                    index,
                    name: p.name.clone(),
                    bare: bare_for == Some(index),
                    request: p.model_list_request()?,
                    addrs: peer.addrs.to_vec(),
                    tls: peer.tls,
                })
            })
            .collect();
        if fetch && !sources.is_empty() {
            let weak = Arc::downgrade(&lists);
            let spawned = std::thread::Builder::new()
                .name("model-lists".into())
                .spawn(move || fetch_loop(weak, sources));
            if let Err(e) = spawned {
                log_warn(format_args!("cannot start the model-list thread: {e}"));
            }
        }
        lists
    }

    /// The current answer.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The answer for a caller that sees only the models `keep(name,
    /// resolved)` takes (a key with a model list).
    pub fn render_where(&self, keep: impl Fn(&str, &str) -> bool) -> Vec<u8> {
        render(&self.configured, &self.snapshot().listed, keep)
    }

    fn publish(&self, listed: Vec<Listed>) {
        let body = render(&self.configured, &listed, |_, _| true);
        let snapshot = Arc::new(Snapshot { listed, body });
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = snapshot;
    }
}

/// `/v1/models` in OpenAI's list format: the `configured` models, then
/// each listed model, `provider/id` (and bare for the default provider),
/// each name once and only those `keep(name, resolved)` takes.
pub fn render(
    configured: &[Configured],
    listed: &[Listed],
    keep: impl Fn(&str, &str) -> bool,
) -> Vec<u8> {
    let mut out = b"{\"object\":\"list\",\"data\":[".to_vec();
    let mut seen = std::collections::HashSet::new();
    let mut entry = |name: &str, created: u64, owner: &str, out: &mut Vec<u8>| {
        if !seen.insert(name.to_string()) {
            return;
        }
        if seen.len() > 1 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"id\":");
        crate::json::push_json_string(out, name);
        out.extend_from_slice(b",\"object\":\"model\",\"created\":");
        out.extend_from_slice(itoa::Buffer::new().format(created).as_bytes());
        out.extend_from_slice(b",\"owned_by\":");
        crate::json::push_json_string(out, owner);
        out.push(b'}');
    };
    for (name, resolved, owner) in configured {
        if keep(name, resolved) {
            entry(name, 0, owner, &mut out);
        }
    }
    for l in listed {
        for (id, created) in &l.ids {
            let resolved = format!("{}/{id}", l.provider);
            let bare = l.bare.then_some(id.as_str());
            for name in bare.into_iter().chain([resolved.as_str()]) {
                if keep(name, &resolved) {
                    entry(name, *created, &l.provider, &mut out);
                }
            }
        }
    }
    out.extend_from_slice(b"]}");
    out
}

/// The `data[].id` (and `created`, when a number) of a provider's list.
pub fn parse_list(body: &[u8]) -> Result<Vec<(String, u64)>, String> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let data = v["data"].as_array().ok_or("no `data` list")?;
    Ok(data
        .iter()
        .filter_map(|m| {
            let id = m["id"].as_str()?;
            // A name the gateway could not route (or would log oddly).
            let plain = !id.is_empty() && id.len() <= 256 && !id.contains(char::is_control);
            plain.then(|| (id.to_string(), m["created"].as_u64().unwrap_or(0)))
        })
        .take(MAX_MODELS)
        .collect())
}

fn fetch(source: &Source) -> Result<Vec<(String, u64)>, String> {
    let peer = blocking::Peer {
        addrs: &source.addrs,
        tls: source.tls.clone(),
    };
    let (status, body) = blocking::send(&peer, &source.request, FETCH_TIMEOUT, MAX_LIST_BYTES)?;
    if status != 200 {
        return Err(format!("answered {status}"));
    }
    parse_list(&body)
}

/// Fetches every list, publishes, and waits for the next round, checking
/// each second that the lists are still wanted.
fn fetch_loop(lists: Weak<ModelLists>, sources: Vec<Source>) {
    let mut listed: Vec<Listed> = sources
        .iter()
        .map(|s| Listed {
            provider: s.name.clone(),
            bare: s.bare,
            ids: Vec::new(),
        })
        .collect();
    loop {
        for (source, slot) in sources.iter().zip(&mut listed) {
            match fetch(source) {
                Ok(ids) => slot.ids = ids,
                Err(e) => log_warn(format_args!(
                    "provider {:?} (#{}): its model list was not fetched ({e}); /v1/models keeps its last",
                    source.name, source.index
                )),
            }
        }
        match lists.upgrade() {
            Some(l) => l.publish(listed.clone()),
            None => return,
        }
        let next = Instant::now() + REFRESH;
        while Instant::now() < next {
            std::thread::sleep(Duration::from_secs(1));
            if lists.strong_count() == 0 {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(provider: &str, bare: bool, ids: &[&str]) -> Listed {
        Listed {
            provider: provider.into(),
            bare,
            ids: ids.iter().map(|i| (i.to_string(), 7)).collect(),
        }
    }

    #[test]
    fn renders_configured_then_each_providers_models_once() {
        let configured = [("fast".to_string(), "a/m9".to_string(), "a".to_string())];
        let body = render(
            &configured,
            &[
                listed("a", true, &["m1", "m2"]),
                listed("b", false, &["m1", "fast"]),
            ],
            |_, _| true,
        );
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let ids: Vec<&str> = v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["fast", "m1", "a/m1", "m2", "a/m2", "b/m1", "b/fast"]);
        assert_eq!(v["data"][1]["created"], 7);
        assert_eq!(v["data"][6]["owned_by"], "b");
        // A key's allow-list judges the bare name by what it resolves to.
        let only_b = render(
            &configured,
            &[listed("a", true, &["m1"]), listed("b", false, &["x"])],
            |_, resolved| resolved.starts_with("b/"),
        );
        assert_eq!(only_b, br#"{"object":"list","data":[{"id":"b/x","object":"model","created":7,"owned_by":"b"}]}"#);
    }

    #[test]
    fn lists_are_read_from_openai_and_anthropic_shapes() {
        let openai = br#"{"object":"list","data":[{"id":"gpt-4o","object":"model","created":1715367049,"owned_by":"system"},{"id":""},{"object":"model"}]}"#;
        assert_eq!(
            parse_list(openai).unwrap(),
            [("gpt-4o".to_string(), 1715367049)]
        );
        let anthropic = br#"{"data":[{"type":"model","id":"claude-sonnet-4-20250514","display_name":"Claude Sonnet 4","created_at":"2025-05-22T00:00:00Z"}],"has_more":false,"first_id":"x","last_id":"y"}"#;
        assert_eq!(
            parse_list(anthropic).unwrap(),
            [("claude-sonnet-4-20250514".to_string(), 0)]
        );
        assert!(parse_list(b"[]").is_err());
        assert!(parse_list(b"<html>").is_err());
    }
}
