//! What headers and paths cross the gateway, against the real binary over
//! raw sockets, under both drivers: headers a `Connection` header names are
//! hop-by-hop in both directions (RFC 9110 §7.6.1); no client credential of
//! any provider reaches an upstream, and only allow-listed headers do at
//! all; `X-Forwarded-For` carries the client's own address, trusting a
//! chain only from configured proxies; upstreams are asked for identity
//! encoding and one that compresses anyway is a 502 (its usage could not be
//! metered); a model name that is not one safe path segment never reaches
//! Azure's deployment path.

mod common;

use common::*;
use serde_json::Value;

const CHAT: &str = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#;

/// `[server]` (and the `[server]` keys in `server`), then `body`.
fn config(default_provider: &str, server: &str, body: &str) -> String {
    format!(
        "default_provider = \"{default_provider}\"\n[server]\nlisten = \"127.0.0.1:1\"\npin_cores = false\n{server}\n{body}\n"
    )
}

/// One OpenAI-compatible provider `openai` at `mock`, with `server` keys.
fn openai_config(mock: &MockUpstream, server: &str) -> String {
    config(
        "openai",
        server,
        &format!(
            "[providers.openai]\nbase_url = \"{}\"\napi_key = \"{PROVIDER_KEY}\"\n",
            mock.base_url()
        ),
    )
}

fn chat_with(extra: &[&str]) -> String {
    post("/v1/chat/completions", CHAT, extra)
}

#[test]
fn headers_a_connection_header_names_are_dropped_both_ways() {
    let mock = MockUpstream::with(|_| Reply::Raw {
        status: 200,
        content_type: "application/json".into(),
        headers: vec![
            ("connection".into(), "keep-alive, X-Upstream-Hop".into()),
            ("Connection".into(), "x-ratelimit-limit-requests".into()),
            ("x-upstream-hop".into(), "secret-hop".into()),
            ("x-ratelimit-limit-requests".into(), "100".into()),
            ("x-ratelimit-remaining-requests".into(), "99".into()),
        ],
        body: br#"{"id":"c","object":"chat.completion","choices":[]}"#.to_vec(),
    });
    each_driver(|d| {
        let gw = Gateway::start(GatewayOpts::env(d, &mock));
        let mut c = gw.connect();
        let r = c
            .request(chat_with(&[
                "Connection: keep-alive,\tX-Stainless-Lang , user-agent",
                "Connection: OpenAI-Beta",
                "X-Stainless-Lang: rust",
                "User-Agent: hop-agent/1",
                "OpenAI-Beta: assistants=v2",
                "X-Stainless-OS: Linux",
            ]))
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        let seen = mock.last();
        for h in [
            "x-stainless-lang",
            "user-agent",
            "openai-beta",
            "connection",
        ] {
            assert!(
                seen.header(h).is_none(),
                "{h} was named in Connection yet reached the upstream: {:?}",
                seen.headers
            );
        }
        assert_eq!(seen.header("x-stainless-os"), Some("Linux"));
        // Response side: the named ones are gone, the others pass.
        assert!(r.header("x-upstream-hop").is_none(), "{:?}", r.headers);
        assert!(
            r.header("x-ratelimit-limit-requests").is_none(),
            "{:?}",
            r.headers
        );
        assert_eq!(r.header("x-ratelimit-remaining-requests"), Some("99"));
        // The keep-alive the client asked for still holds.
        let again = c.request(chat_with(&[])).unwrap();
        assert_eq!(again.status, 200);
    });
}

#[test]
fn no_client_credential_of_any_provider_reaches_the_upstream() {
    let mock = MockUpstream::start();
    let credentials = [
        "Authorization: Bearer client-secret-0",
        "Proxy-Authorization: Basic client-secret-1",
        "x-api-key: client-secret-2",
        "api-key: client-secret-3",
        "Cookie: session=client-secret-4",
        "x-goog-api-key: client-secret-5",
        "x-goog-user-project: client-secret-6",
        "Ocp-Apim-Subscription-Key: client-secret-7",
        "OpenAI-Organization: org-client-secret-8",
        "OpenAI-Project: proj_client-secret-9",
        "X-Amz-Security-Token: client-secret-10",
        "X-Amz-Date: 20250101T000000Z-client-secret-11",
        "X-Amz-Content-Sha256: client-secret-12",
        "anthropic-api-key: client-secret-13",
        "Helicone-Auth: Bearer client-secret-14",
        "x-portkey-api-key: client-secret-15",
    ];
    each_driver(|d| {
        let gw = Gateway::start(GatewayOpts::env(d, &mock));
        let r = gw.connect().request(chat_with(&credentials)).unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        let seen = mock.last();
        assert_eq!(
            seen.header_all("authorization"),
            [format!("Bearer {PROVIDER_KEY}")]
        );
        let leaked: Vec<_> = seen
            .headers
            .iter()
            .filter(|(_, v)| v.contains("client-secret"))
            .collect();
        assert!(leaked.is_empty(), "client credentials leaked: {leaked:?}");
    });
}

#[test]
fn only_allow_listed_headers_are_forwarded() {
    let mock = MockUpstream::start();
    let kept = [
        ("User-Agent", "OpenAI/Python 1.50.0"),
        ("Accept", "application/json"),
        ("OpenAI-Beta", "assistants=v2"),
        ("X-Stainless-Retry-Count", "0"),
        ("X-Stainless-Package-Version", "1.50.0"),
        ("Idempotency-Key", "stainless-retry-1"),
        ("X-Client-Request-Id", "client-req-1"),
        (
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ),
        ("anthropic-beta", "prompt-caching-2024-07-31"),
    ];
    let dropped = [
        ("X-Custom-Thing", "1"),
        ("Origin", "https://evil.example"),
        ("Referer", "https://app.example/private/page"),
        ("Forwarded", "for=6.6.6.6"),
        ("X-Real-IP", "6.6.6.6"),
        ("X-Forwarded-Host", "evil.example"),
        ("Cache-Control", "no-cache"),
        ("Content-Encoding", "identity"),
        ("baggage", "user=alice"),
    ];
    each_driver(|d| {
        let gw = Gateway::start(GatewayOpts::env(d, &mock));
        let lines: Vec<String> = kept
            .iter()
            .chain(&dropped)
            .map(|(n, v)| format!("{n}: {v}"))
            .collect();
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        let r = gw.connect().request(chat_with(&lines)).unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        let seen = mock.last();
        for (name, value) in kept {
            assert_eq!(seen.header_all(name), [value], "{name}: {:?}", seen.headers);
        }
        for (name, _) in dropped {
            assert!(
                seen.header(name).is_none(),
                "{name} reached the upstream: {:?}",
                seen.headers
            );
        }
        assert_eq!(seen.header("content-type"), Some("application/json"));
    });
}

#[test]
fn anthropic_beta_reaches_anthropic_and_its_version_is_the_providers() {
    let mock = MockUpstream::with(|_| {
        Reply::Raw {
        status: 200,
        content_type: "application/json".into(),
        headers: vec![],
        body: br#"{"id":"m","type":"message","role":"assistant","model":"claude","content":[],"stop_reason":"end_turn","usage":{"input_tokens":1,"output_tokens":1}}"#.to_vec(),
    }
    });
    let cfg = config(
        "anthropic",
        "",
        &format!(
            "[providers.anthropic]\nbase_url = \"http://{}\"\napi_key = \"sk-ant\"\n",
            mock.addr
        ),
    );
    each_driver(|d| {
        let gw = Gateway::start(GatewayOpts::config(d, cfg.clone()));
        let body =
            r#"{"model":"claude","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}"#;
        let r = gw
            .connect()
            .request(post(
                "/v1/messages",
                body,
                &[
                    "anthropic-version: 2020-01-01",
                    "anthropic-beta: tools-2024-04-04",
                    "x-api-key: client-secret",
                    "X-Stainless-Lang: js",
                    "X-Unknown: 1",
                ],
            ))
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        let seen = mock.last();
        assert_eq!(seen.header_all("anthropic-version"), ["2023-06-01"]);
        assert_eq!(seen.header_all("anthropic-beta"), ["tools-2024-04-04"]);
        assert_eq!(seen.header_all("x-api-key"), ["sk-ant"]);
        assert_eq!(seen.header("x-stainless-lang"), Some("js"));
        assert!(seen.header("x-unknown").is_none(), "{:?}", seen.headers);
    });
}

#[test]
fn x_forwarded_for_is_the_clients_address_unless_a_trusted_proxy_sent_a_chain() {
    let mock = MockUpstream::start();
    // (server keys, client's X-Forwarded-For lines, what the upstream sees)
    let cases: &[(&str, &[&str], &[&str])] = &[
        // Default: an untrusted client's chain is replaced by its address.
        ("", &["X-Forwarded-For: 6.6.6.6"], &["127.0.0.1"]),
        ("", &[], &["127.0.0.1"]),
        // A trusted proxy's chain is kept and the proxy appended, with
        // repeated lines joined in order.
        (
            "trusted_proxies = [\"127.0.0.0/8\", \"::1/128\"]",
            &["X-Forwarded-For: 203.0.113.7", "x-forwarded-for: 10.0.0.1"],
            &["203.0.113.7, 10.0.0.1, 127.0.0.1"],
        ),
        ("trusted_proxies = [\"127.0.0.1/32\"]", &[], &["127.0.0.1"]),
        // A trust list that does not cover the peer changes nothing.
        (
            "trusted_proxies = [\"10.0.0.0/8\"]",
            &["X-Forwarded-For: 6.6.6.6"],
            &["127.0.0.1"],
        ),
        // Off: providers never learn client addresses.
        (
            "forwarded_for = \"off\"",
            &["X-Forwarded-For: 6.6.6.6"],
            &[],
        ),
    ];
    each_driver(|d| {
        for &(server, sent, expected) in cases {
            let gw = Gateway::start(GatewayOpts::config(d, openai_config(&mock, server)));
            let r = gw.connect().request(chat_with(sent)).unwrap();
            assert_eq!(r.status, 200, "{server}: {}", r.text());
            let seen = mock.last();
            assert_eq!(
                seen.header_all("x-forwarded-for"),
                expected,
                "config {server:?}, client sent {sent:?}"
            );
        }
    });
}

#[test]
fn a_trusted_proxys_chain_named_in_connection_is_not_kept() {
    let mock = MockUpstream::start();
    let cfg = openai_config(&mock, "trusted_proxies = [\"127.0.0.1/32\"]");
    each_driver(|d| {
        let gw = Gateway::start(GatewayOpts::config(d, cfg.clone()));
        let r = gw
            .connect()
            .request(chat_with(&[
                "Connection: X-Forwarded-For",
                "X-Forwarded-For: 6.6.6.6",
            ]))
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(mock.last().header_all("x-forwarded-for"), ["127.0.0.1"]);
    });
}

/// `--check-config` on an `openai_config` with these `[server]` keys:
/// whether it passed, and its stderr.
fn check_config(mock: &MockUpstream, server: &str) -> (bool, String) {
    let dir = TempDir::new("hostile-headers-cfg");
    let path = dir.write("c.toml", &openai_config(mock, server));
    let out = gateway_command()
        .arg("--config")
        .arg(&path)
        .arg("--check-config")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn forwarding_settings_are_validated_naming_the_field() {
    let mock = MockUpstream::start();
    let good = "forwarded_for = \"append\"\ntrusted_proxies = [\"10.0.0.0/8\", \"192.168.1.1\", \"fd00::/8\", \"::1\"]";
    let (ok, stderr) = check_config(&mock, good);
    assert!(ok, "{stderr}");
    assert!(check_config(&mock, "forwarded_for = \"off\"").0);
    for (server, field) in [
        (
            "trusted_proxies = [\"10.0.0.0/33\"]",
            "server.trusted_proxies",
        ),
        (
            "trusted_proxies = [\"not-an-ip\"]",
            "server.trusted_proxies",
        ),
        ("forwarded_for = \"sometimes\"", "server.forwarded_for"),
    ] {
        let (ok, stderr) = check_config(&mock, server);
        assert!(!ok, "{server} was accepted");
        assert!(stderr.contains(field), "{server}: {stderr}");
    }
}

/// A chat completion answered with `content-encoding: <coding>` (the body
/// is whatever the upstream claims it is; the gateway must not relay it).
fn encoded_reply(coding: &'static str) -> Reply {
    Reply::Raw {
        status: 200,
        content_type: "application/json".into(),
        headers: vec![("Content-Encoding".into(), coding.into())],
        body: b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03compressed-usage".to_vec(),
    }
}

#[test]
fn upstreams_are_asked_for_identity_and_a_compressed_answer_is_a_502() {
    each_driver(|d| {
        for coding in ["gzip", "GZIP", "identity, gzip", "br", "deflate"] {
            let mock = MockUpstream::with(move |_| encoded_reply(coding));
            let gw = Gateway::start(GatewayOpts::env(d, &mock));
            let mut c = gw.connect();
            let r = c
                .request(chat_with(&["Accept-Encoding: gzip, deflate, br"]))
                .unwrap();
            let e = r.assert_openai_error(502);
            assert_eq!(e["code"], "upstream_protocol_error", "{coding}: {e}");
            assert!(
                !contains(&r.raw, b"compressed-usage"),
                "{coding}: a compressed body reached the client"
            );
            let seen = mock.last();
            assert_eq!(seen.header_all("accept-encoding"), ["identity"], "{coding}");
            // The answer is complete: the connection goes on.
            mock.set_script(|_| Reply::Auto);
            assert_eq!(c.request(chat_with(&[])).unwrap().status, 200);
            // The same for the Anthropic dialect, shaped as its error.
            mock.set_script(move |_| encoded_reply(coding));
            let body =
                r#"{"model":"gpt-4o","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}"#;
            let r = c
                .request(post("/v1/messages", body, &["Accept-Encoding: gzip"]))
                .unwrap();
            assert_eq!(r.status, 502, "{coding}: {}", r.text());
            assert_eq!(r.json()["type"], "error", "{}", r.text());
            assert_eq!(mock.last().header_all("accept-encoding"), ["identity"]);
        }
    });
}

#[test]
fn an_identity_answer_is_relayed_and_metered() {
    let mock = MockUpstream::with(|_| {
        Reply::Raw {
        status: 200,
        content_type: "application/json".into(),
        headers: vec![("content-encoding".into(), "identity".into())],
        body: br#"{"id":"c","object":"chat.completion","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}"#.to_vec(),
    }
    });
    each_driver(|d| {
        let gw = Gateway::start(GatewayOpts::env(d, &mock));
        let r = gw.connect().request(chat_with(&[])).unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["usage"]["total_tokens"], 7);
        // With no Accept-Encoding from the client, identity is still asked.
        assert_eq!(mock.last().header_all("accept-encoding"), ["identity"]);
    });
}

/// An Azure provider `az` at `mock`.
fn azure_config(mock: &MockUpstream) -> String {
    config(
        "az",
        "",
        &format!(
            "[providers.az]\nkind = \"azure\"\nbase_url = \"http://{}/\"\napi_key = \"az-key\"\n\
             [[models]]\nname = \"dotdot\"\nprovider = \"az\"\nupstream_model = \"..\"\n",
            mock.addr
        ),
    )
}

#[test]
fn a_model_that_is_not_one_safe_path_segment_never_reaches_azure() {
    let mock = MockUpstream::start();
    each_driver(|d| {
        let gw = Gateway::start(GatewayOpts::config(d, azure_config(&mock)));
        let mut c = gw.connect();
        let before = mock.requests().len();
        for model in [
            "..",
            ".",
            "az/a/b",
            "az/../../admin",
            "a b",
            "a%2Fb",
            "",
            "dotdot",
            "az/..",
        ] {
            let body = format!(r#"{{"model":"{model}","messages":[]}}"#);
            let r = c.request(post("/v1/chat/completions", &body, &[])).unwrap();
            let e = r.assert_openai_error(400);
            assert_eq!(e["param"], "model", "{model:?}: {e}");
            // The Anthropic dialect (translated to Azure's chat) alike.
            let body = format!(
                r#"{{"model":"{model}","max_tokens":8,"messages":[{{"role":"user","content":"hi"}}]}}"#
            );
            let r = c.request(post("/v1/messages", &body, &[])).unwrap();
            assert_eq!(r.status, 400, "{model:?}: {}", r.text());
            let v: Value = r.json();
            assert_eq!(v["type"], "error", "{model:?}: {v}");
        }
        assert_eq!(mock.requests().len(), before, "{:?}", mock.requests());
        // A well-formed deployment name still goes through.
        let r = c
            .request(post(
                "/v1/chat/completions",
                r#"{"model":"gpt-4o.mini_2~x-1","messages":[]}"#,
                &[],
            ))
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(
            mock.last().target,
            "/openai/deployments/gpt-4o.mini_2~x-1/chat/completions?api-version=2024-10-21"
        );
    });
}
