//! The semantic cache over real sockets: a model opted in has its
//! requests' text embedded through the gateway's own call to the
//! configured embedding model (the mock serves a deterministic embedding,
//! `common::embed`), so a paraphrase is answered from the cache
//! (`x-shardgate-cache: hit` with its similarity) while another question,
//! another tenant, other parameters or a model not opted in go upstream;
//! an embedding model that fails or stalls leaves requests to the exact
//! cache, never an error, never a wait past the bound.

mod common;

use std::time::{Duration, Instant};

use common::embed::toy_embedding;
use common::*;
use serde_json::{json, Value};

/// The mock: chat answers (`Reply::Auto`), and `/embeddings` from the
/// toy embedding of the input, with usage.
fn mock() -> MockUpstream {
    MockUpstream::with(|rec| {
        if rec.path != "/v1/embeddings" {
            return Reply::Auto;
        }
        let req: Value = serde_json::from_slice(rec.body).unwrap_or_default();
        let input = req["input"].as_str().unwrap_or_default();
        Reply::Raw {
            status: 200,
            content_type: "application/json".into(),
            headers: vec![],
            body: json!({"object": "list", "model": req["model"],
                         "data": [{"object": "embedding", "index": 0, "embedding": toy_embedding(input)}],
                         "usage": {"prompt_tokens": 8, "total_tokens": 8}})
            .to_string()
            .into_bytes(),
        }
    })
}

fn config(mock: &MockUpstream, admin: std::net::SocketAddr, extra: &str) -> String {
    config_for(
        mock,
        "",
        &format!(
            "[admin]\nlisten = \"{admin}\"\n\n\
             [cache]\nenabled = true\n\n\
             [cache.semantic]\nembedding_model = \"text-embedding-3-small\"\ntimeout_ms = 300\n\n\
             [[models]]\nname = \"smart\"\nprovider = \"openai\"\nupstream_model = \"gpt-4o-mini\"\nsemantic = true\n\n\
             [[models]]\nname = \"literal\"\nprovider = \"openai\"\nupstream_model = \"gpt-4o-mini\"\n\n\
             {extra}"
        ),
    )
}

fn ask(gw: &Gateway, model: &str, prompt: &str, extra: &[&str]) -> Response {
    let body = json!({"model": model, "temperature": 0, "messages": [{"role": "user", "content": prompt}]});
    gw.connect()
        .request(post("/v1/chat/completions", &body.to_string(), extra))
        .unwrap()
}

fn calls(mock: &MockUpstream, path: &str) -> usize {
    mock.requests().iter().filter(|r| r.target == path).count()
}

const CHAT: &str = "/v1/chat/completions";
const EMBED: &str = "/v1/embeddings";

#[test]
fn a_paraphrase_is_answered_by_meaning_and_other_questions_are_not() {
    let mock = mock();
    let admin = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let gw = Gateway::start(GatewayOpts::config(
        Driver::IoUring,
        config(&mock, admin, ""),
    ));

    let first = ask(&gw, "smart", "What is the capital of France?", &[]);
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(first.header("x-shardgate-cache"), Some("miss"));
    assert_eq!((calls(&mock, CHAT), calls(&mock, EMBED)), (1, 1));
    // The embedding went out as the gateway's own request.
    let embed = mock
        .requests()
        .into_iter()
        .find(|r| r.target == EMBED)
        .unwrap();
    assert_eq!(
        embed.header("user-agent"),
        Some("shardgate (semantic cache)")
    );
    assert_eq!(
        embed.header("authorization"),
        Some(format!("Bearer {PROVIDER_KEY}").as_str())
    );
    assert_eq!(embed.json()["model"], "text-embedding-3-small");

    let paraphrase = ask(&gw, "smart", "what's the capital of france", &[]);
    assert_eq!(paraphrase.header("x-shardgate-cache"), Some("hit"));
    let similarity: f32 = paraphrase
        .header("x-shardgate-cache-similarity")
        .unwrap()
        .parse()
        .unwrap();
    assert!((0.9..=1.0).contains(&similarity), "{similarity}");
    assert_eq!(paraphrase.json(), first.json());
    assert_eq!(calls(&mock, CHAT), 1);

    // Another question, other parameters, a model not opted in: upstream.
    let other = ask(&gw, "smart", "What is the capital of Spain?", &[]);
    assert_eq!(other.header("x-shardgate-cache"), Some("miss"));
    let hot = json!({"model": "smart", "temperature": 1.5,
                     "messages": [{"role": "user", "content": "what's the capital of france"}]});
    let r = gw
        .connect()
        .request(post(CHAT, &hot.to_string(), &[]))
        .unwrap();
    assert_eq!(r.header("x-shardgate-cache"), Some("miss"));
    ask(&gw, "literal", "What is the capital of France?", &[]);
    let r = ask(&gw, "literal", "what's the capital of france", &[]);
    assert_eq!(r.header("x-shardgate-cache"), Some("miss"));
    assert_eq!(calls(&mock, CHAT), 5);
    // The exact repeat needs no embedding at all.
    let embeds = calls(&mock, EMBED);
    let exact = ask(&gw, "smart", "What is the capital of France?", &[]);
    assert_eq!(exact.header("x-shardgate-cache"), Some("hit"));
    assert!(exact.header("x-shardgate-cache-similarity").is_none());
    assert_eq!(calls(&mock, EMBED), embeds);

    let m = scrape(admin);
    assert_eq!(
        sample(&m, "shardgate_cache_semantic_hits_total", &[]),
        1.0,
        "{m}"
    );
    assert_eq!(
        sample(
            &m,
            "shardgate_cache_semantic_embeddings_total",
            &["result=\"ok\""]
        ),
        embeds as f64
    );
    assert_eq!(
        sample(&m, "shardgate_cache_semantic_embedding_tokens_total", &[]),
        8.0 * embeds as f64
    );
    assert_eq!(sample(&m, "shardgate_cache_semantic_vectors", &[]), 3.0);
}

/// Keys of other teams never read each other's answers by meaning either.
#[test]
fn another_tenants_paraphrase_misses() {
    let mock = mock();
    let admin = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let teams = "[[teams]]\nid = \"red\"\n\n[[teams]]\nid = \"blue\"\n\n\
                 [[keys]]\nname = \"r\"\nkey_env = \"RED\"\nteam = \"red\"\n\n\
                 [[keys]]\nname = \"b\"\nkey_env = \"BLUE\"\nteam = \"blue\"\n";
    let opts = GatewayOpts::config(Driver::IoUring, config(&mock, admin, teams));
    let gw = Gateway::start_with_env(&opts, &[("RED", "sk-red"), ("BLUE", "sk-blue")]);
    let red = ask(
        &gw,
        "smart",
        "What is the capital of France?",
        &["authorization: Bearer sk-red"],
    );
    assert_eq!(red.header("x-shardgate-cache"), Some("miss"));
    let blue = ask(
        &gw,
        "smart",
        "what's the capital of france",
        &["authorization: Bearer sk-blue"],
    );
    assert_eq!(blue.header("x-shardgate-cache"), Some("miss"));
    let red_again = ask(
        &gw,
        "smart",
        "what's the capital of france",
        &["authorization: Bearer sk-red"],
    );
    assert_eq!(red_again.header("x-shardgate-cache"), Some("hit"));
    assert_eq!(calls(&mock, CHAT), 2);
}

/// An embedding model that errors, stalls or lies (a 200 that is no
/// embedding, or a vector of another width each time): requests are
/// answered from upstream (and exact repeats from the cache), each within
/// the bound, and nothing panics.
#[test]
fn a_failing_stalled_or_lying_embedding_model_costs_only_the_bound() {
    for how in ["error", "stall", "garbage", "widths"] {
        let widths = std::sync::atomic::AtomicUsize::new(4);
        let mock = MockUpstream::with(move |rec| match (rec.path, how) {
            ("/v1/embeddings", "error") => Reply::Error {
                status: 500,
                message: "embedding backend down".into(),
                headers: vec![],
            },
            ("/v1/embeddings", "stall") => Reply::Stall(Duration::from_secs(3)),
            ("/v1/embeddings", "garbage") => Reply::Raw {
                status: 200,
                content_type: "application/json".into(),
                headers: vec![],
                body: br#"{"data":[{"embedding":"not a vector"}],"usage":7}"#.to_vec(),
            },
            ("/v1/embeddings", _) => {
                let n = widths.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Reply::Raw {
                    status: 200,
                    content_type: "application/json".into(),
                    headers: vec![],
                    body: json!({"data": [{"embedding": vec![0.5f32; n]}]})
                        .to_string()
                        .into_bytes(),
                }
            }
            _ => Reply::Auto,
        });
        let admin = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let gw = Gateway::start(GatewayOpts::config(
            Driver::IoUring,
            config(&mock, admin, ""),
        ));
        for (prompt, want) in [
            ("What is the capital of France?", "miss"),
            ("what's the capital of france", "miss"),
            ("What is the capital of France?", "hit"),
        ] {
            let t = Instant::now();
            let r = ask(&gw, "smart", prompt, &[]);
            assert_eq!(r.status, 200, "{how}: {}", r.text());
            assert_eq!(r.header("x-shardgate-cache"), Some(want), "{how}: {prompt}");
            assert!(
                t.elapsed() < Duration::from_secs(2),
                "{how}: {:?}",
                t.elapsed()
            );
        }
        gw.assert_healthy();
        if how != "widths" {
            let m = scrape(admin);
            let failed = sample(
                &m,
                "shardgate_cache_semantic_embeddings_total",
                &["result=\"failed\""],
            );
            assert!(failed >= 2.0, "{how}: {m}");
        }
    }
}
