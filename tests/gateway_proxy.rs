//! The gateway as a proxy, end to end over loopback: the real `shardgate`
//! binary in front of a mock upstream, under both monoio drivers.
//!
//! Covers every OpenAI endpoint (plain and streamed, streams forwarded as
//! they arrive in all three framings), `/v1/models` (local and passed
//! through), `/health`, `provider/model` routing, credential replacement,
//! byte-exact bodies apart from the model value, upstream keep-alive reuse,
//! the retry-once rule (a GET, never a POST the upstream may have read),
//! error pass-through, and 502/504 for a dead or silent upstream.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const CHAT: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi there"}]}"#;

#[test]
fn every_endpoint_answers_with_the_upstream_json() {
    let mock = MockUpstream::start();
    each_driver(|d| {
        let gw = Gateway::start(GatewayOpts::env(d, &mock));
        let cases: &[(&str, &str)] = &[
            ("/v1/chat/completions", CHAT),
            (
                "/v1/completions",
                r#"{"model":"gpt-3.5-turbo-instruct","prompt":"say"}"#,
            ),
            (
                "/v1/embeddings",
                r#"{"model":"text-embedding-3-small","input":"abc"}"#,
            ),
            ("/v1/responses", r#"{"model":"gpt-4o","input":"hello"}"#),
            // Paths without /v1 are accepted too.
            ("/chat/completions", CHAT),
        ];
        for (path, body) in cases {
            let r = gw.post(path, body);
            assert_eq!(r.status, 200, "{path}: {}", r.text());
            let req: Value = serde_json::from_str(body).unwrap();
            let upstream_path = format!("/v1{}", path.trim_start_matches("/v1"));
            let expected = mock_json(&upstream_path, req["model"].as_str().unwrap(), &req);
            assert_eq!(r.json(), expected, "{path}");
            assert_eq!(r.header("content-type"), Some("application/json"));
            let seen = mock.last();
            assert_eq!(seen.method, "POST");
            assert_eq!(seen.target, upstream_path, "upstream path for {path}");
            assert_eq!(seen.body, body.as_bytes());
        }
        let health = gw.get("/health");
        assert_eq!(health.status, 200);
        assert_eq!(health.json(), json!({"status": "ok"}));
    });
}

#[test]
fn streams_arrive_incrementally_in_every_upstream_framing() {
    const EVENTS: usize = 4;
    for framing in [
        SseFraming::Chunked,
        SseFraming::ContentLength,
        SseFraming::CloseDelimited,
    ] {
        let mock = MockUpstream::with(move |_| Reply::Sse {
            events: EVENTS,
            delay: Duration::from_millis(150),
            framing,
        });
        each_driver(|d| {
            let gw = Gateway::start(GatewayOpts::env(d, &mock));
            let before = mock.events_sent();
            let body = r#"{"model":"gpt-4o-mini","stream":true,"messages":[]}"#;
            let mut c = gw.connect();
            c.send(post("/v1/chat/completions", body, &[])).unwrap();
            c.read_until(b"tok0", Duration::from_secs(5))
                .unwrap_or_else(|e| panic!("{framing:?}: first event: {e}"));
            let sent = mock.events_sent() - before;
            assert!(
                sent < EVENTS,
                "{framing:?}: the first event reached the client only after the mock sent {sent} of {EVENTS}"
            );
            let r = c.read_response().unwrap();
            assert_eq!(r.status, 200);
            assert_eq!(r.header("content-type"), Some("text/event-stream"));
            let data = sse_data(&r.body);
            assert_eq!(data.len(), EVENTS + 1, "{framing:?}: {}", r.text());
            for (i, ev) in data[..EVENTS].iter().enumerate() {
                let v: Value = serde_json::from_str(ev).unwrap();
                assert_eq!(v, mock_event("/v1/chat/completions", "gpt-4o-mini", i));
            }
            assert_eq!(data[EVENTS], "[DONE]");
            // A close-delimited upstream response must be close-delimited (or
            // re-framed) for the client too; the others keep the connection.
            // (shardgate re-frames it as chunked when it reads the stream,
            // e.g. to hide a usage chunk it asked for; then the connection
            // may stay open and must still work.)
            if framing == SseFraming::CloseDelimited && r.header("transfer-encoding").is_none() {
                assert!(c.is_closed(Duration::from_secs(5)), "{framing:?}");
            } else {
                let again = c.request(post("/v1/chat/completions", CHAT, &[])).unwrap();
                assert_eq!(again.status, 200, "{framing:?}: keep-alive after a stream");
            }
        });
    }
}

#[test]
fn streamed_completions_pass_through() {
    let mock = MockUpstream::start();
    each_driver(|d| {
        let gw = Gateway::start(GatewayOpts::env(d, &mock));
        let r = gw.post(
            "/v1/completions",
            r#"{"model":"gpt-3.5-turbo-instruct","prompt":"x","stream":true}"#,
        );
        assert_eq!(r.status, 200);
        assert_eq!(r.header("transfer-encoding"), Some("chunked"));
        let data = sse_data(&r.body);
        assert_eq!(data.len(), 4);
        let v: Value = serde_json::from_str(&data[2]).unwrap();
        assert_eq!(v["choices"][0]["text"], "tok2");
    });
}

#[test]
fn models_are_answered_locally_when_configured_else_by_the_default_provider() {
    let mock = MockUpstream::start();
    let cfg = config_for(
        &mock,
        "",
        "[[models]]\nname = \"fast\"\nprovider = \"openai\"\nupstream_model = \"gpt-4o-mini\"\naliases = [\"quick\"]\n\n[[models]]\nname = \"smart\"\nprovider = \"openai\"\n",
    );
    each_driver(|d| {
        let gw = Gateway::start(GatewayOpts::config(d, cfg.clone()));
        // The configured models, then the provider's own list, fetched by
        // the gateway just after start.
        let deadline = Instant::now() + Duration::from_secs(10);
        let ids = loop {
            let r = gw.get("/v1/models");
            assert_eq!(r.status, 200);
            let v = r.json();
            assert_eq!(v["object"], "list");
            let ids: Vec<_> = v["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| {
                    assert_eq!(m["object"], "model");
                    assert!(m["created"].is_u64() && m["owned_by"].is_string(), "{m}");
                    m["id"].as_str().unwrap().to_string()
                })
                .collect();
            if ids.len() > 3 || Instant::now() > deadline {
                break ids;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(
            ids,
            [
                "fast",
                "quick",
                "smart",
                "mock-model-a",
                "openai/mock-model-a",
                "mock-model-b",
                "openai/mock-model-b"
            ]
        );
        let before = mock.requests().len();
        assert_eq!(gw.get("/v1/models").status, 200);
        assert_eq!(
            mock.requests().len(),
            before,
            "the list is answered locally"
        );
        assert!(!mock.list_fetches().is_empty());

        // A configured model is sent upstream under its upstream name.
        let r = gw.post("/v1/chat/completions", r#"{"model":"quick","messages":[]}"#);
        assert_eq!(r.status, 200);
        assert_eq!(mock.last().json()["model"], "gpt-4o-mini");
    });
    each_driver(|d| {
        let gw = Gateway::start(GatewayOpts::env(d, &mock));
        let r = gw.get("/v1/models?limit=5");
        assert_eq!(r.status, 200);
        assert_eq!(r.json(), mock_json("/v1/models", "", &Value::Null));
        let seen = mock.last();
        assert_eq!(
            (seen.method.as_str(), seen.target.as_str()),
            ("GET", "/v1/models?limit=5")
        );
        assert_eq!(
            seen.header("authorization"),
            Some(&*format!("Bearer {PROVIDER_KEY}"))
        );
    });
}

#[test]
fn provider_prefix_routes_and_is_stripped_unknown_prefix_is_404() {
    let a = MockUpstream::start();
    let b = MockUpstream::start();
    let cfg = format!(
        "default_provider = \"a\"\n[server]\npin_cores = false\n\
         [providers.a]\nbase_url = \"{}\"\napi_key = \"key-a\"\n\
         [providers.b]\nbase_url = \"{}\"\napi_key = \"key-b\"\n",
        a.base_url(),
        b.base_url()
    );
    each_driver(|d| {
        let gw = Gateway::start(GatewayOpts::config(d, cfg.clone()));
        // (client model, mock that must see it, model it must see, key)
        let table: &[(&str, &MockUpstream, &str, &str)] = &[
            ("b/llama-3", &b, "llama-3", "key-b"),
            ("a/gpt-4o", &a, "gpt-4o", "key-a"),
            ("gpt-4o", &a, "gpt-4o", "key-a"),
            ("b/org/model:tag", &b, "org/model:tag", "key-b"),
        ];
        for &(model, mock, upstream_model, key) in table {
            let n = mock.requests().len();
            let body = format!(r#"{{"model":"{model}","messages":[]}}"#);
            let r = gw.post("/v1/chat/completions", &body);
            assert_eq!(r.status, 200, "{model}: {}", r.text());
            assert_eq!(r.json()["model"], upstream_model, "{model}");
            assert_eq!(
                mock.requests().len(),
                n + 1,
                "{model} went to the wrong provider"
            );
            let seen = mock.last();
            assert_eq!(seen.json()["model"], upstream_model);
            assert_eq!(seen.header_all("authorization"), [format!("Bearer {key}")]);
        }
        let (na, nb) = (a.requests().len(), b.requests().len());
        let r = gw.post(
            "/v1/chat/completions",
            r#"{"model":"nope/gpt-4o","messages":[]}"#,
        );
        let e = r.assert_openai_error(404);
        assert_eq!(e["code"], "model_not_found");
        assert_eq!(e["param"], "model");
        assert!(e["message"].as_str().unwrap().contains("nope"), "{e}");
        assert_eq!((a.requests().len(), b.requests().len()), (na, nb));
    });
}

#[test]
fn client_credentials_are_replaced_by_the_provider_key() {
    let mock = MockUpstream::start();
    each_driver(|d| {
        let gw = Gateway::start(GatewayOpts::env(d, &mock));
        let req = post(
            "/v1/chat/completions",
            CHAT,
            &[
                "Authorization: Bearer sk-client-secret",
                "x-api-key: client-secret-2",
                "api-key: client-secret-3",
                "Proxy-Authorization: Basic Zm9vOmJhcg==",
                "OpenAI-Beta: assistants=v2",
                "X-Request-Id: abc-123",
            ],
        );
        let r = gw.connect().request(req).unwrap();
        assert_eq!(r.status, 200);
        let seen = mock.last();
        assert_eq!(
            seen.header_all("authorization"),
            [format!("Bearer {PROVIDER_KEY}")]
        );
        for h in ["x-api-key", "api-key", "proxy-authorization"] {
            assert!(seen.header(h).is_none(), "{h} leaked upstream");
        }
        for (name, _) in &seen.headers {
            assert!(!contains(name.as_bytes(), b"secret"));
        }
        assert!(
            !seen
                .headers
                .iter()
                .any(|(_, v)| v.contains("client-secret")),
            "a client credential reached the provider: {:?}",
            seen.headers
        );
        assert_eq!(seen.header("openai-beta"), Some("assistants=v2"));
        assert_eq!(seen.header("x-request-id"), Some("abc-123"));
        assert_eq!(seen.header("host"), Some(&*mock.addr.to_string()));
    });
}

#[test]
fn upstream_body_is_the_client_body_byte_for_byte_but_the_model_value() {
    let mock = MockUpstream::start();
    // (client body, model value sent by the client, model value upstream)
    let cases: &[(&str, &str, &str)] = &[
        (
            "{ \"messages\" : [ {\"role\":\"user\",\"content\":\"the \\\"model\\\" is \\u00e9 \u{1F600}\"} ],\n\t\"model\"  :  \"openai/gpt-4o\" ,\"metadata\":{\"model\":\"inner\"},\"temperature\":0.50 }",
            "\"openai/gpt-4o\"",
            "\"gpt-4o\"",
        ),
        (
            "{\"model\":\"openai/x\\/y\",\"input\":[1,2,3]}",
            "\"openai/x\\/y\"",
            "\"x/y\"",
        ),
        // A bare name goes upstream untouched.
        (
            "{\"input\":\"a\",\r\n\"model\":\"gpt-4o\"   }  ",
            "\"gpt-4o\"",
            "\"gpt-4o\"",
        ),
    ];
    each_driver(|d| {
        let gw = Gateway::start(GatewayOpts::env(d, &mock));
        for &(body, from, to) in cases {
            let r = gw.post("/v1/embeddings", body);
            assert_eq!(r.status, 200, "{body}: {}", r.text());
            let expected = body.replacen(from, to, 1);
            let seen = mock.last();
            assert_eq!(
                String::from_utf8_lossy(&seen.body),
                expected,
                "upstream body differs beyond the model value"
            );
            assert_eq!(
                seen.header("content-length"),
                Some(&*expected.len().to_string())
            );
        }
    });
}

#[test]
fn upstream_connections_are_kept_alive_and_reused() {
    let mock = MockUpstream::start();
    each_driver(|d| {
        let before = mock.connections();
        let gw = Gateway::start(GatewayOpts::env(d, &mock));
        // Several client connections, one after another, on the one shard.
        for _ in 0..3 {
            let mut c = gw.connect();
            for _ in 0..2 {
                let r = c.request(post("/v1/chat/completions", CHAT, &[])).unwrap();
                assert_eq!(r.status, 200);
            }
        }
        let r = gw.post("/v1/chat/completions", r#"{"model":"m","stream":true}"#);
        assert_eq!(r.status, 200);
        let r = gw.post("/v1/chat/completions", CHAT);
        assert_eq!(r.status, 200);
        assert_eq!(
            mock.connections() - before,
            1,
            "8 sequential requests need one upstream connection"
        );
    });
}

#[test]
fn a_pooled_connection_closed_before_responding_retries_a_get_once_but_not_a_post() {
    // The second request on any upstream connection is read, then the
    // connection closed without a response.
    let mock = MockUpstream::with(|r| {
        if r.index_in_conn >= 1 {
            Reply::CloseBeforeResponse
        } else {
            Reply::Auto
        }
    });
    each_driver(|d| {
        let gw = Gateway::start(GatewayOpts::env(d, &mock));
        let (conns, reqs) = (mock.connections(), mock.requests().len());
        let mut c = gw.connect();
        for i in 0..3 {
            let r = c
                .request("GET /v1/models HTTP/1.1\r\nhost: t\r\n\r\n")
                .unwrap();
            assert_eq!(r.status, 200, "request {i}: {}", r.text());
        }
        // Request 0: fresh. Requests 1, 2: pooled conn closes, retried fresh.
        assert_eq!(mock.connections() - conns, 3);
        assert_eq!(mock.requests().len() - reqs, 5);
        // The upstream may have acted on a POST it read: not sent again.
        let r = c.request(post("/v1/chat/completions", CHAT, &[])).unwrap();
        let e = r.assert_openai_error(502);
        assert_eq!(e["code"], "upstream_closed");
        assert_eq!(mock.requests().len() - reqs, 6);
    });
}

#[test]
fn a_fresh_connection_closed_before_responding_is_not_retried() {
    let mock = MockUpstream::with(|_| Reply::CloseBeforeResponse);
    each_driver(|d| {
        let gw = Gateway::start(GatewayOpts::env(d, &mock));
        let reqs = mock.requests().len();
        let r = gw.post("/v1/chat/completions", CHAT);
        let e = r.assert_openai_error(502);
        assert_eq!(e["code"], "upstream_closed");
        assert_eq!(mock.requests().len() - reqs, 1);
        gw.assert_healthy();
    });
}

#[test]
fn a_body_cut_before_the_client_saw_it_becomes_a_502() {
    let mock = MockUpstream::with(|r| {
        if r.index_in_conn >= 1 {
            Reply::PartialThenClose
        } else {
            Reply::Auto
        }
    });
    each_driver(|d| {
        let gw = Gateway::start(GatewayOpts::env(d, &mock));
        let reqs = mock.requests().len();
        let mut c = gw.connect();
        let r = c.request(post("/v1/chat/completions", CHAT, &[])).unwrap();
        assert_eq!(r.status, 200);
        // The small body is held until whole, so the cut is answered with a
        // well-formed error instead of a cut response (a model without
        // deployments is not retried).
        let r = c.request(post("/v1/chat/completions", CHAT, &[])).unwrap();
        let e = r.assert_openai_error(502);
        assert_eq!(e["code"], "upstream_closed", "{}", r.text());
        assert_eq!(mock.requests().len() - reqs, 2);
        let r = c.request(post("/v1/chat/completions", CHAT, &[])).unwrap();
        assert_eq!(r.status, 200, "the client connection carries on");
        gw.assert_healthy();
    });
}

#[test]
fn upstream_error_statuses_pass_through_unchanged() {
    let mock = MockUpstream::start();
    each_driver(|d| {
        let gw = Gateway::start(GatewayOpts::env(d, &mock));
        for status in [400u16, 401, 403, 404, 422, 429, 500, 503] {
            mock.set_script(move |_| Reply::Error {
                status,
                message: format!("mock says {status}"),
                headers: vec![("x-ratelimit-remaining-requests".into(), "0".into())],
            });
            let r = gw.post("/v1/chat/completions", CHAT);
            assert_eq!(r.status, status);
            assert_eq!(
                r.json(),
                json!({"error": {"message": format!("mock says {status}"), "type": "mock_error", "param": null, "code": "mock_code"}})
            );
            assert_eq!(r.header("x-ratelimit-remaining-requests"), Some("0"));
        }
        mock.set_script(|_| Reply::Auto);
    });
}

#[test]
fn upstream_down_is_502() {
    let dead = free_port();
    each_driver(|d| {
        let gw = Gateway::start(GatewayOpts {
            driver: d,
            config: None,
            base_url: Some(format!("http://127.0.0.1:{dead}/v1")),
            api_key: Some(PROVIDER_KEY.into()),
            shards: 1,
        });
        let r = gw.post("/v1/chat/completions", CHAT);
        let e = r.assert_openai_error(502);
        assert_eq!(e["code"], "upstream_connect_failed");
        gw.assert_healthy();
    });
}

#[test]
fn upstream_stall_is_504_within_the_configured_timeout() {
    let mock = MockUpstream::with(|_| Reply::Stall(Duration::from_secs(3)));
    let cfg = config_for(&mock, "", "[upstream]\nfirst_byte_timeout_ms = 300\n");
    each_driver(|d| {
        let gw = Gateway::start(GatewayOpts::config(d, cfg.clone()));
        let t = Instant::now();
        let r = gw.post("/v1/chat/completions", CHAT);
        let e = r.assert_openai_error(504);
        assert_eq!(e["code"], "upstream_timeout");
        let took = t.elapsed();
        assert!(
            took >= Duration::from_millis(250) && took < Duration::from_millis(2500),
            "504 after {took:?}"
        );
        gw.assert_healthy();
    });
}

#[test]
fn large_bodies_cross_intact_both_ways() {
    let mock = MockUpstream::start();
    each_driver(|d| {
        let gw = Gateway::start(GatewayOpts::env(d, &mock));
        let content: String = (0..300_000)
            .map(|i| (b'a' + (i % 26) as u8) as char)
            .collect();
        let body = format!(
            r#"{{"messages":[{{"role":"user","content":"{content}"}}],"model":"openai/gpt-4o"}}"#
        );
        let r = gw.post("/v1/chat/completions", &body);
        assert_eq!(r.status, 200);
        assert_eq!(
            r.json()["choices"][0]["message"]["content"]
                .as_str()
                .unwrap()
                .len(),
            content.len() + "echo: ".len()
        );
        assert_eq!(
            mock.last().body,
            body.replacen("openai/gpt-4o", "gpt-4o", 1).as_bytes()
        );
    });
}

#[test]
fn http10_clients_get_a_close_delimited_decoded_stream() {
    let mock = MockUpstream::start();
    each_driver(|d| {
        let gw = Gateway::start(GatewayOpts::env(d, &mock));
        let body = r#"{"model":"gpt-4o","stream":true}"#;
        let mut c = gw.connect();
        c.send(format!(
            "POST /v1/chat/completions HTTP/1.0\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        ))
        .unwrap();
        let raw = c.read_to_close(Duration::from_secs(5)).unwrap();
        let text = String::from_utf8_lossy(&raw);
        let (head, payload) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200"),
            "{head}"
        );
        assert!(
            !head.to_ascii_lowercase().contains("transfer-encoding"),
            "{head}"
        );
        let data = sse_data(payload.as_bytes());
        assert_eq!(data.len(), 4, "{payload}");
        assert_eq!(data[3], "[DONE]");
    });
}

#[test]
fn connection_close_from_the_client_is_honoured() {
    let mock = MockUpstream::start();
    each_driver(|d| {
        let gw = Gateway::start(GatewayOpts::env(d, &mock));
        for req in [
            post("/v1/chat/completions", CHAT, &["Connection: close"]),
            "GET /health HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n".to_string(),
            "GET /v1/nope HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n".to_string(),
        ] {
            let mut c = gw.connect();
            let r = c.request(&req).unwrap();
            assert_eq!(r.header("connection"), Some("close"), "{req}");
            assert!(c.is_closed(Duration::from_secs(5)), "{req}");
        }
    });
}

#[test]
fn an_upstream_silent_mid_stream_cuts_the_client_after_the_idle_timeout() {
    let mock = MockUpstream::with(|_| Reply::Sse {
        events: 3,
        delay: Duration::from_secs(3),
        framing: SseFraming::Chunked,
    });
    let cfg = config_for(&mock, "", "[upstream]\nidle_timeout_ms = 300\n");
    each_driver(|d| {
        let gw = Gateway::start(GatewayOpts::config(d, cfg.clone()));
        let mut c = gw.connect();
        let t = Instant::now();
        c.send(post(
            "/v1/chat/completions",
            r#"{"model":"m","stream":true}"#,
            &[],
        ))
        .unwrap();
        let got = c
            .read_until(b"\r\n0\r\n\r\n", Duration::from_secs(5))
            .unwrap();
        let took = t.elapsed();
        let text = String::from_utf8_lossy(&got);
        assert!(text.contains("tok0") && !text.contains("tok1"), "{text}");
        // A cut stream must not look complete: it ends with an error event.
        let cut = text.find("stream_truncated").expect(&text);
        assert!(cut > text.find("tok0").unwrap(), "{text}");
        assert!(text.ends_with("\r\n0\r\n\r\n"), "{text}");
        assert!(took < Duration::from_millis(2500), "cut after {took:?}");
        // Ended whole as HTTP, the client connection is kept.
        assert!(!c.is_closed(Duration::from_millis(200)), "{text}");
        gw.assert_healthy();
    });
}

#[test]
fn a_client_leaving_mid_stream_does_not_hurt_the_shard() {
    let mock = MockUpstream::with(|_| Reply::Sse {
        events: 5,
        delay: Duration::from_millis(100),
        framing: SseFraming::Chunked,
    });
    each_driver(|d| {
        let gw = Gateway::start(GatewayOpts::env(d, &mock));
        for _ in 0..3 {
            let mut c = gw.connect();
            c.send(post(
                "/v1/chat/completions",
                r#"{"model":"m","stream":true}"#,
                &[],
            ))
            .unwrap();
            c.read_until(b"tok0", Duration::from_secs(5)).unwrap();
            drop(c);
        }
        mock.set_script(|_| Reply::Auto);
        let r = gw.post("/v1/chat/completions", CHAT);
        assert_eq!(r.status, 200);
        mock.set_script(|_| Reply::Sse {
            events: 5,
            delay: Duration::from_millis(100),
            framing: SseFraming::Chunked,
        });
    });
}

#[test]
fn head_and_query_strings_pass() {
    let mock = MockUpstream::start();
    each_driver(|d| {
        let gw = Gateway::start(GatewayOpts::env(d, &mock));
        let mut c = gw.connect();
        c.send("HEAD /health HTTP/1.1\r\nhost: t\r\n\r\n").unwrap();
        let r = c.read_response_within(READ_TIMEOUT, true).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-length"), Some("15"));
        assert!(r.body.is_empty());
        let r = c
            .request(post(
                "/v1/chat/completions?api-version=2024-06-01",
                CHAT,
                &[],
            ))
            .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(
            mock.last().target,
            "/v1/chat/completions?api-version=2024-06-01"
        );
    });
}

#[test]
fn concurrent_clients_on_several_shards_all_get_their_own_answers() {
    let mock = MockUpstream::start();
    each_driver(|d| {
        let mut opts = GatewayOpts::env(d, &mock);
        opts.shards = 2;
        let gw = Gateway::start(opts);
        std::thread::scope(|s| {
            for t in 0..8 {
                let gw = &gw;
                s.spawn(move || {
                    let mut c = gw.connect();
                    for i in 0..5 {
                        let model = format!("openai/m-{t}-{i}");
                        let body = format!(r#"{{"model":"{model}","stream":{}}}"#, i % 2 == 1);
                        let r = c.request(post("/v1/chat/completions", &body, &[])).unwrap();
                        assert_eq!(r.status, 200);
                        assert!(
                            contains(&r.body, format!("\"m-{t}-{i}\"").as_bytes()),
                            "{model}: {}",
                            r.text()
                        );
                    }
                });
            }
        });
    });
}
