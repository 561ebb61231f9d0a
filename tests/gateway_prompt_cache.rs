//! Prompt caching end to end (issue 16, item 4), over real sockets against
//! the real binary, under both drivers: a mock upstream answers with the
//! cached-usage responses of tests/fixtures/usage/ (in each provider's wire
//! shape) (OpenAI: 2006
//! prompt tokens, 1920 cached; Anthropic: 6 uncached, 1234 written, 5678
//! read), plain and streamed, passed through and translated both ways. The
//! cost the gateway metered is read back from its access log and metrics:
//! each part priced once at its own rate, whatever the client's dialect;
//! the virtual key the requests were made with is charged the same, to the
//! nano-dollar.
//! Anthropic `cache_control` reaches an Anthropic upstream untouched, or
//! translated from an OpenAI request's content parts, and is dropped when an
//! Anthropic request is translated for an OpenAI upstream.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const SOON: Duration = Duration::from_secs(5);
const ADMIN_TOKEN: &str = "admin-token-for-prompt-cache";

/// gpt-4o: 86 × $2.50 + 1920 × $1.25 + 300 × $10 per million tokens.
const OPENAI_USD: f64 = 0.005615;
/// claude-sonnet-4: 6 × $3 + 5678 × $0.30 + 1234 × $3.75 + 100 × $15 per
/// million tokens.
const ANTHROPIC_USD: f64 = 0.0078489;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/usage/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Both dialects at one address, each answering with its recorded
/// cached-usage response (a stream when the request asks for one).
fn cached_usage_mock() -> MockUpstream {
    let bodies = [
        fixture("openai_chat_cached.json"),
        fixture("openai_stream_cached.sse"),
        fixture("anthropic_message_cached.json"),
        fixture("anthropic_stream_cached.sse"),
    ];
    MockUpstream::with(move |info| {
        let stream = serde_json::from_slice::<Value>(info.body).unwrap()["stream"] == true;
        let anthropic = info.path == "/v1/messages";
        let body = bodies[usize::from(anthropic) * 2 + usize::from(stream)].clone();
        let content_type = if stream {
            "text/event-stream"
        } else {
            "application/json"
        };
        Reply::Raw {
            status: 200,
            content_type: content_type.into(),
            headers: vec![],
            body,
        }
    })
}

fn config(mock: &MockUpstream, log: &std::path::Path, admin: SocketAddr) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:1\"\npin_cores = false\n\n\
         [admin]\nlisten = \"{admin}\"\ntoken = \"{ADMIN_TOKEN}\"\n\n\
         [access_log]\ntarget = \"file\"\npath = \"{log}\"\n\n\
         [providers.oa]\nkind = \"openai\"\nbase_url = \"http://{addr}/v1\"\napi_key = \"k\"\n\n\
         [providers.an]\nkind = \"anthropic\"\nbase_url = \"http://{addr}\"\napi_key = \"k\"\n",
        log = log.display(),
        addr = mock.addr,
    )
}

/// The access-log record of `id` (waits for the flush).
fn record(path: &std::path::Path, id: &str) -> Value {
    let deadline = Instant::now() + SOON;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let found = text
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).expect("access-log line is JSON"))
            .find(|r| r["request_id"] == id);
        if let Some(r) = found {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "no access-log record {id}: {text}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// One admin-listener call with the admin token: the response body.
fn admin_call(admin: SocketAddr, method: &str, path: &str, body: &str) -> String {
    let mut s = TcpStream::connect(admin).unwrap();
    s.set_read_timeout(Some(SOON)).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nhost: a\r\nauthorization: Bearer {ADMIN_TOKEN}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.split_once("\r\n\r\n").unwrap().1.to_string()
}

/// Key `id` once none of its requests is in flight (a response reaches the
/// client just before its shard settles it).
fn settled_key(admin: SocketAddr, id: &str) -> Value {
    let deadline = Instant::now() + SOON;
    loop {
        let v: Value =
            serde_json::from_str(&admin_call(admin, "GET", &format!("/admin/keys/{id}"), ""))
                .unwrap();
        if v["in_flight"] == 0 || Instant::now() > deadline {
            return v;
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// One request of the test: what the client sends and which provider's
/// recorded usage comes back.
struct Case {
    id: &'static str,
    path: &'static str,
    body: Value,
    anthropic_usage: bool,
}

fn anthropic_request(model: &str, stream: bool) -> Value {
    json!({
        "model": model,
        "max_tokens": 1024,
        "stream": stream,
        "system": [{"type": "text", "text": "You review contracts. <contract>…</contract>",
                    "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What notice does termination need?",
             "cache_control": {"type": "ephemeral"}}]}],
    })
}

fn openai_request(model: &str, stream: bool) -> Value {
    let mut r = json!({
        "model": model,
        "stream": stream,
        // The breakpoint OpenAI-style gateways pass on to Anthropic.
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "<contract>…</contract>", "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "What notice does termination need?"}]}],
    });
    if stream {
        r["stream_options"] = json!({"include_usage": true});
    }
    r
}

fn cases() -> Vec<Case> {
    let claude = "an/claude-sonnet-4-20250514";
    let gpt = "oa/gpt-4o";
    let mut cases = Vec::new();
    for stream in [false, true] {
        let ids: [&'static str; 4] = if stream {
            [
                "oa-oa-stream",
                "an-an-stream",
                "oa-an-stream",
                "an-oa-stream",
            ]
        } else {
            ["oa-oa", "an-an", "oa-an", "an-oa"]
        };
        cases.extend([
            Case {
                id: ids[0],
                path: "/v1/chat/completions",
                body: openai_request(gpt, stream),
                anthropic_usage: false,
            },
            Case {
                id: ids[1],
                path: "/v1/messages",
                body: anthropic_request(claude, stream),
                anthropic_usage: true,
            },
            // An OpenAI client of an Anthropic model, and the reverse.
            Case {
                id: ids[2],
                path: "/v1/chat/completions",
                body: openai_request(claude, stream),
                anthropic_usage: true,
            },
            Case {
                id: ids[3],
                path: "/v1/messages",
                body: anthropic_request(gpt, stream),
                anthropic_usage: false,
            },
        ]);
    }
    cases
}

/// The usage the client got, in its own dialect, as (prompt tokens all
/// told, cache reads, cache writes where the dialect has them).
fn client_usage(case: &Case, text: &str) -> (u64, u64, Option<u64>) {
    let stream = case.body["stream"] == true;
    let anthropic_client = case.path == "/v1/messages";
    let usage = if !stream {
        serde_json::from_str::<Value>(text).unwrap()["usage"].clone()
    } else if anthropic_client {
        // message_start carries the input when the upstream is Anthropic;
        // message_delta carries it when it is translated from OpenAI.
        let events = data_events(text);
        let delta = events
            .iter()
            .find(|e| e["type"] == "message_delta")
            .unwrap();
        if delta["usage"]["input_tokens"].is_number() {
            delta["usage"].clone()
        } else {
            events[0]["message"]["usage"].clone()
        }
    } else {
        let events = data_events(text);
        events.last().unwrap()["usage"].clone()
    };
    let n = |v: &Value| v.as_u64().unwrap_or_else(|| panic!("{usage}"));
    if anthropic_client {
        let read = n(&usage["cache_read_input_tokens"]);
        let write = n(&usage["cache_creation_input_tokens"]);
        (n(&usage["input_tokens"]) + read + write, read, Some(write))
    } else {
        let read = n(&usage["prompt_tokens_details"]["cached_tokens"]);
        (n(&usage["prompt_tokens"]), read, None)
    }
}

#[test]
fn cached_tokens_are_metered_once_at_their_own_rates_in_every_dialect() {
    each_driver(|d| {
        let mock = cached_usage_mock();
        let dir = TempDir::new("prompt-cache");
        let log = dir.0.join("access.log");
        let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let gw = Gateway::start(GatewayOpts::config(d, config(&mock, &log, admin)));
        let made: Value = serde_json::from_str(&admin_call(
            admin,
            "POST",
            "/admin/keys",
            r#"{"name":"cache"}"#,
        ))
        .unwrap();
        let auth = format!("authorization: Bearer {}", made["key"].as_str().unwrap());
        let mut c = gw.connect();
        let cases = cases();
        for case in &cases {
            let id = format!("x-request-id: {}", case.id);
            let headers = [id.as_str(), auth.as_str(), "anthropic-version: 2023-06-01"];
            let r = c
                .request(post(case.path, &case.body.to_string(), &headers))
                .unwrap();
            assert_eq!(r.status, 200, "{}: {}\n{}", case.id, r.text(), gw.log());

            // What went upstream: the breakpoints, untouched or translated,
            // except where an Anthropic request was translated to OpenAI.
            let sent = String::from_utf8(mock.last().body).unwrap();
            let to_openai = case.body["model"].as_str().unwrap().starts_with("oa/");
            let translated_to_openai = to_openai && case.path == "/v1/messages";
            assert_eq!(
                sent.contains("cache_control"),
                !translated_to_openai,
                "{}: {sent}",
                case.id
            );

            // What the client saw, in its dialect: the same tokens.
            let (prompt, read, write) = client_usage(case, &r.text());
            if case.anthropic_usage {
                assert_eq!((prompt, read), (6918, 5678), "{}", case.id);
                // OpenAI has no field for cache writes.
                if write.is_some() {
                    assert_eq!(write, Some(1234), "{}", case.id);
                }
            } else {
                assert_eq!(
                    (prompt, read, write.unwrap_or(0)),
                    (2006, 1920, 0),
                    "{}",
                    case.id
                );
            }

            // What the gateway metered.
            let rec = record(&log, case.id);
            let (input, read, write, output, usd) = if case.anthropic_usage {
                (6918, 5678, 1234, 100, ANTHROPIC_USD)
            } else {
                (2006, 1920, 0, 300, OPENAI_USD)
            };
            assert_eq!(rec["input_tokens"], input, "{}: {rec}", case.id);
            assert_eq!(rec["cache_read_tokens"], read, "{}: {rec}", case.id);
            assert_eq!(rec["cache_write_tokens"], write, "{}: {rec}", case.id);
            assert_eq!(rec["output_tokens"], output, "{}: {rec}", case.id);
            assert_eq!(rec["cost_usd"].as_f64(), Some(usd), "{}: {rec}", case.id);
        }

        let m = scrape(admin);
        let per_provider = |name: &str, provider: &str, extra: &str| {
            sample(&m, name, &[&format!("provider=\"{provider}\""), extra])
        };
        // Four requests priced at each provider's rates.
        let cost = |p| per_provider("shardgate_cost_usd_total", p, "");
        assert!((cost("oa") - 4.0 * OPENAI_USD).abs() < 1e-12, "{m}");
        assert!((cost("an") - 4.0 * ANTHROPIC_USD).abs() < 1e-12, "{m}");
        let tokens =
            |p, dir| per_provider("shardgate_tokens_total", p, &format!("direction=\"{dir}\""));
        let cache = |p, kind| {
            per_provider(
                "shardgate_cache_tokens_total",
                p,
                &format!("kind=\"{kind}\""),
            )
        };
        assert_eq!(tokens("oa", "input"), 4.0 * 2006.0, "{m}");
        assert_eq!(tokens("an", "input"), 4.0 * 6918.0, "{m}");
        assert_eq!(
            (cache("oa", "read"), cache("oa", "write")),
            (4.0 * 1920.0, 0.0)
        );
        assert_eq!(
            (cache("an", "read"), cache("an", "write")),
            (4.0 * 5678.0, 4.0 * 1234.0)
        );

        // The key's ledger: the same tokens, charged in exact nano-dollars.
        let key = settled_key(admin, made["id"].as_str().unwrap());
        assert_eq!(key["requests"], 8, "{key}");
        assert_eq!(key["input_tokens"], 4 * 2006 + 4 * 6918, "{key}");
        assert_eq!(key["output_tokens"], 4 * 300 + 4 * 100, "{key}");
        let spend = key["spend_usd"].as_f64().unwrap();
        assert!(
            (spend - 4.0 * (OPENAI_USD + ANTHROPIC_USD)).abs() < 1e-12,
            "{key}"
        );
        gw.assert_healthy();
    });
}
