//! Every hosted OpenAI-compatible catalogue entry on the wire: one gateway
//! binary configured with each of them by name, every base URL pointed at
//! one recording upstream but keeping the entry's own path (`/v1/openai`,
//! `/inference`, `/api/paas/v4`, Cloudflare's account path, ...), and one
//! request per entry routed by its `name/` prefix. The upstream must see
//! POST on exactly that path plus the endpoint, the entry's key in its auth
//! header (`Authorization: Bearer`, or Foundry's `api-key`) and in no other,
//! the prefix stripped from the model, and none of the client's own
//! credentials.

mod common;

use common::{each_driver, post, Gateway, GatewayOpts, MockUpstream, Reply};
use shardgate::providers::catalog::{Auth, CatalogEntry, Family, UrlVar, CATALOG};

/// Entries that serve embeddings (and rerank) but no chat.
const EMBEDDINGS_ONLY: &[&str] = &["voyage", "jina"];

const CLIENT_CREDENTIALS: &[&str] = &[
    "authorization: Bearer client-token",
    "api-key: client-key",
    "x-api-key: client-key",
];

/// The path of an entry's base URL: its default, its URL template filled
/// with a test account id, or (a per-resource URL from a variable) the
/// documented `/openai/v1` of Foundry.
fn base_path(e: &CatalogEntry) -> String {
    let url = match (e.default_base_url, e.url_vars) {
        (Some(u), _) => u.to_string(),
        (None, [UrlVar::Template(_, t), ..]) => t.replace("{}", "acct-1"),
        (None, [UrlVar::BaseUrl(_), ..]) => "https://resource/openai/v1".to_string(),
        _ => panic!("{} has neither a default base URL nor a template", e.name),
    };
    let after_scheme = &url[url.find("://").unwrap() + 3..];
    after_scheme[after_scheme.find('/').unwrap_or(after_scheme.len())..].to_string()
}

/// The hosted OpenAI-family entries: what this test covers.
fn hosted_openai_compatible() -> Vec<&'static CatalogEntry> {
    CATALOG
        .iter()
        .filter(|e| e.family == Family::OpenAi && !e.local)
        .collect()
}

fn reply(path: &str) -> Reply {
    let body = if path.ends_with("/embeddings") {
        r#"{"object":"list","model":"m","data":[{"object":"embedding","index":0,"embedding":[0.5]}],"usage":{"prompt_tokens":1,"total_tokens":1}}"#
    } else {
        r#"{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#
    };
    Reply::Raw {
        status: 200,
        content_type: "application/json".into(),
        headers: Vec::new(),
        body: body.as_bytes().to_vec(),
    }
}

#[test]
fn every_hosted_compatible_entry_gets_its_path_and_its_key() {
    let entries = hosted_openai_compatible();
    assert!(entries.len() >= 30, "{} entries", entries.len());
    each_driver(|d| {
        let mock = MockUpstream::with(|info| reply(info.path));
        let mut toml = format!(
            "default_provider = \"{}\"\n[server]\nlisten = \"127.0.0.1:1\"\npin_cores = false\n",
            entries[0].name
        );
        for e in &entries {
            toml.push_str(&format!(
                "[providers.{n}]\nbase_url = \"http://{a}{p}\"\napi_key = \"key-{n}\"\n",
                n = e.name,
                a = mock.addr,
                p = base_path(e)
            ));
        }
        let gw = Gateway::start(GatewayOpts::config(d, toml));
        let mut c = gw.connect();
        for e in &entries {
            let (endpoint, body) = if EMBEDDINGS_ONLY.contains(&e.name) {
                (
                    "/embeddings",
                    format!(r#"{{"model":"{}/embed-1","input":"hi"}}"#, e.name),
                )
            } else {
                (
                    "/chat/completions",
                    format!(
                        r#"{{"model":"{}/chat-1","messages":[{{"role":"user","content":"hi"}}]}}"#,
                        e.name
                    ),
                )
            };
            let r = c
                .request(post(&format!("/v1{endpoint}"), &body, CLIENT_CREDENTIALS))
                .unwrap();
            assert_eq!(r.status, 200, "{}: {}\n{}", e.name, r.text(), gw.log());
            let seen = mock.last();
            assert_eq!(seen.method, "POST", "{}", e.name);
            assert_eq!(
                seen.target,
                format!("{}{endpoint}", base_path(e)),
                "{}",
                e.name
            );
            let (auth, value) = match e.auth {
                Auth::Bearer => ("authorization", format!("Bearer key-{}", e.name)),
                Auth::Header(h) => (h, format!("key-{}", e.name)),
            };
            assert_eq!(seen.header_all(auth), [value], "{}", e.name);
            for h in ["authorization", "api-key", "x-api-key"] {
                if h != auth {
                    assert!(
                        seen.header(h).is_none(),
                        "{}: client's {h} forwarded",
                        e.name
                    );
                }
            }
            let model = if endpoint == "/embeddings" {
                "embed-1"
            } else {
                "chat-1"
            };
            assert_eq!(seen.json()["model"], model, "{}", e.name);
        }
        assert_eq!(mock.requests().len(), entries.len());
    });
}

#[test]
fn base_paths_are_read_from_the_catalogue() {
    // The path layout the wire test relies on, for a few entries whose
    // layout is not plain `/v1`.
    let path = |n: &str| base_path(CATALOG.iter().find(|e| e.name == n).unwrap());
    assert_eq!(path("deepinfra"), "/v1/openai");
    assert_eq!(path("github"), "/inference");
    assert_eq!(path("perplexity"), "");
    assert_eq!(path("foundry"), "/openai/v1");
    assert_eq!(
        path("cloudflare"),
        "/client/v4/accounts/acct-1/ai/v1".to_string()
    );
}
