//! Hostile bodies through the dialect translation (issue 13, item 4), over
//! real sockets against the real binary, under both drivers: a request with
//! more messages or content blocks than the gateway translates is refused
//! with a 413 in the client's own dialect before anything goes upstream; a
//! large request that is allowed is translated in a small multiple of its
//! size, and that memory goes back once the shard is quiet; an upstream
//! answer with more blocks than a response may carry is a 502.
//!
//! The memory figures are ratios and bounds with wide margins (a body of
//! 16 MiB: the old tree-building translator peaked at 7x it, this one at
//! about 2x), not timings.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// Providers `oa` (OpenAI) and `an` (Anthropic), both at `mock`, and `extra`.
fn config(mock: &MockUpstream, extra: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:1\"\npin_cores = false\n\n\
         [providers.oa]\nkind = \"openai\"\nbase_url = \"http://{addr}/v1\"\napi_key = \"k\"\n\n\
         [providers.an]\nkind = \"anthropic\"\nbase_url = \"http://{addr}\"\napi_key = \"k\"\n\n{extra}\n",
        addr = mock.addr
    )
}

/// A mock speaking both dialects: Anthropic JSON on `/v1/messages`.
fn two_dialect_mock() -> MockUpstream {
    MockUpstream::with(|info| match info.path {
        "/v1/messages" => Reply::Raw {
            status: 200,
            content_type: "application/json".into(),
            headers: vec![],
            body: json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
                "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn",
                "usage": {"input_tokens": 1, "output_tokens": 1}})
            .to_string()
            .into_bytes(),
        },
        _ => Reply::Auto,
    })
}

fn start(driver: Driver, mock: &MockUpstream, extra: &str) -> Gateway {
    Gateway::start(GatewayOpts::config(driver, config(mock, extra)))
}

/// An Anthropic request for `oa/gpt` whose one user turn has `blocks` text
/// blocks of `text_len` bytes each.
fn anthropic_request(blocks: usize, text_len: usize) -> String {
    let block = format!(r#"{{"type":"text","text":"{}"}}"#, "x".repeat(text_len));
    let content = vec![block.as_str(); blocks].join(",");
    format!(
        r#"{{"model":"oa/gpt","max_tokens":16,"messages":[{{"role":"user","content":[{content}]}}]}}"#
    )
}

/// An OpenAI chat request for `an/claude` with `messages` one-word turns.
fn openai_request(messages: usize) -> String {
    let turns = vec![r#"{"role":"user","content":"a"}"#; messages].join(",");
    format!(r#"{{"model":"an/claude","messages":[{turns}]}}"#)
}

/// The start of a (possibly huge) body, for a failure message.
fn start_of(text: &str) -> &str {
    &text[..text.char_indices().nth(300).map_or(text.len(), |(i, _)| i)]
}

fn send(gw: &Gateway, path: &str, body: &str) -> Response {
    gw.connect()
        .request(post(
            path,
            body,
            &["x-api-key: k", "anthropic-version: 2023-06-01"],
        ))
        .unwrap_or_else(|e| panic!("POST {path}: {e}\n{}", gw.log()))
}

/// Asserts an Anthropic-shaped error: `{"type":"error","error":{type,message}}`.
fn assert_anthropic_error(r: &Response, status: u16, error_type: &str) -> String {
    assert_eq!(r.status, status, "{}", start_of(&r.text()));
    let v = r.json();
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"]["type"], error_type, "{v}");
    v["error"]["message"]
        .as_str()
        .expect("a message")
        .to_owned()
}

#[test]
fn too_many_blocks_or_messages_is_a_413_in_the_anthropic_dialect_and_nothing_goes_upstream() {
    each_driver(|d| {
        let mock = MockUpstream::start();
        let gw = start(d, &mock, "");
        // The defaults: 20,000 blocks, 10,000 messages.
        let r = send(&gw, "/v1/messages", &anthropic_request(20_001, 1));
        let message = assert_anthropic_error(&r, 413, "request_too_large");
        assert!(
            message.contains("20000 content blocks") && message.contains("max_translated_blocks"),
            "{message}"
        );
        let turns = vec![r#"{"role":"user","content":"a"}"#; 10_001].join(",");
        let body = format!(r#"{{"model":"oa/gpt","max_tokens":1,"messages":[{turns}]}}"#);
        let r = send(&gw, "/v1/messages", &body);
        let message = assert_anthropic_error(&r, 413, "request_too_large");
        assert!(message.contains("max_translated_messages"), "{message}");
        assert!(mock.requests().is_empty(), "nothing was sent upstream");
        // Just under the limit translates.
        let r = send(&gw, "/v1/messages", &anthropic_request(20_000, 1));
        assert_eq!(r.status, 200, "{}", start_of(&r.text()));
        let sent = mock.last().json();
        assert_eq!(
            sent["messages"][0]["content"].as_array().unwrap().len(),
            20_000
        );
        gw.assert_healthy();
    });
}

#[test]
fn too_many_messages_is_a_413_in_the_openai_dialect() {
    each_driver(|d| {
        let mock = two_dialect_mock();
        let gw = start(d, &mock, "");
        let r = send(&gw, "/v1/chat/completions", &openai_request(10_001));
        let error = r.assert_openai_error(413);
        assert_eq!(error["code"], "payload_too_large", "{error}");
        assert_eq!(error["param"], "messages", "{error}");
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .contains("10000 messages"),
            "{error}"
        );
        assert!(mock.requests().is_empty(), "nothing was sent upstream");
        let r = send(&gw, "/v1/chat/completions", &openai_request(10_000));
        assert_eq!(r.status, 200, "{}", start_of(&r.text()));
        assert_eq!(
            mock.last().json()["messages"][0]["content"]
                .as_array()
                .unwrap()
                .len(),
            10_000
        );
    });
}

#[test]
fn the_limits_are_read_from_the_config() {
    let mock = two_dialect_mock();
    let gw = start(
        Driver::IoUring,
        &mock,
        "[limits]\nmax_translated_blocks = 3\nmax_translated_messages = 2\n",
    );
    assert_eq!(
        send(&gw, "/v1/messages", &anthropic_request(3, 5)).status,
        200
    );
    let r = send(&gw, "/v1/messages", &anthropic_request(4, 5));
    assert_anthropic_error(&r, 413, "request_too_large");
    assert_eq!(
        send(&gw, "/v1/chat/completions", &openai_request(2)).status,
        200
    );
    send(&gw, "/v1/chat/completions", &openai_request(3)).assert_openai_error(413);
    assert_eq!(mock.requests().len(), 2);
}

/// Peak resident set since start (VmHWM), KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

/// Polls RSS until it is at most `bound` KiB or `within` passed; the last reading.
fn rss_settles(pid: u32, bound: u64, within: Duration) -> u64 {
    let deadline = Instant::now() + within;
    loop {
        let rss = rss_kib(pid);
        if rss <= bound || Instant::now() > deadline {
            return rss;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_large_allowed_translation_peaks_under_3x_its_body_and_gives_it_back() {
    each_driver(|d| {
        let mock = MockUpstream::start();
        let gw = start(d, &mock, "");
        let pid = gw.pid();
        // 20,000 blocks (the default limit) of 800 bytes: 16 MiB.
        let body = anthropic_request(20_000, 800);
        let body_kib = body.len() as u64 / 1024;
        std::thread::sleep(Duration::from_millis(300));
        let baseline = rss_kib(pid);
        let r = send(&gw, "/v1/messages", &body);
        assert_eq!(r.status, 200, "{}", start_of(&r.text()));
        let sent = mock.last().json();
        assert_eq!(
            sent["messages"][0]["content"].as_array().unwrap().len(),
            20_000
        );
        let grew = peak_rss_kib(pid).saturating_sub(baseline);
        eprintln!("body {body_kib} KiB: RSS {baseline} KiB, peak +{grew} KiB");
        assert!(
            grew <= 3 * body_kib,
            "a {body_kib} KiB translation grew RSS by {grew} KiB (more than 3x)"
        );
        let bound = baseline + 8 * 1024;
        let after = rss_settles(pid, bound, Duration::from_secs(10));
        assert!(
            after <= bound,
            "RSS stayed at {after} KiB after the translation (baseline {baseline} KiB)"
        );
    });
}

#[test]
fn a_hostile_upstream_response_with_too_many_blocks_is_a_502() {
    let calls: Vec<Value> = (0..20_001)
        .map(|i| json!({"id": format!("c{i}"), "type": "function", "function": {"name": "f", "arguments": "{}"}}))
        .collect();
    let answer = json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "tool_calls": calls},
                     "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})
    .to_string()
    .into_bytes();
    each_driver(|d| {
        let answer = answer.clone();
        let mock = MockUpstream::with(move |_| Reply::Raw {
            status: 200,
            content_type: "application/json".into(),
            headers: vec![],
            body: answer.clone(),
        });
        let gw = start(d, &mock, "");
        let r = send(&gw, "/v1/messages", &anthropic_request(1, 5));
        let message = assert_anthropic_error(&r, 502, "api_error");
        assert!(message.contains("content blocks"), "{message}");
        gw.assert_healthy();
    });
}
