//! A large request body does not hold up its shard (issue 13, item 4): its
//! JSON scan and translation run off the shard's event loop, so a `/health`
//! request on another connection to the same (single) shard is answered
//! while it is processed, and the large request still gets its right
//! answer, under both drivers.
//!
//! The bodies are the worst case for the scan (tiny JSON tokens up to the
//! body limit, set to 4 MiB here to keep the tests short), which in a debug
//! build takes about half a second (32 MiB: seconds). The assertions are
//! orderings, not timings: with the work on the loop, nothing else on the
//! shard runs until the large request's answer is written when that answer
//! comes straight from the scan or the translation (a 400), so the health
//! answer comes second; off the loop it comes first.

mod common;

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

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

fn start(driver: Driver, mock: &MockUpstream, extra: &str) -> Gateway {
    Gateway::start(GatewayOpts::config(driver, config(mock, extra)))
}

/// `limits.max_body_bytes` here.
const MAX_BODY: usize = 4 * 1024 * 1024;

/// The limits of every gateway here, and `extra` ones.
fn limits(extra: &str) -> String {
    format!("[limits]\nmax_body_bytes = {MAX_BODY}\n{extra}")
}

/// A body of `head` (an object's first members, no braces), then a `pad`
/// array of zeros, then `tail` (more members), just under the body limit.
fn padded(head: &str, tail: &str) -> String {
    let open = format!("{{{head},\"pad\":[");
    let close = format!("0]{tail}}}");
    let zeros = (MAX_BODY - 1024 - open.len() - close.len()) / 2;
    let mut body = String::with_capacity(MAX_BODY);
    body.push_str(&open);
    body.push_str(&"0,".repeat(zeros));
    body.push_str(&close);
    body
}

const ANTHROPIC_HEAD: &str =
    r#""model":"oa/gpt-4o-mini","max_tokens":16,"messages":[{"role":"user","content":"x"}]"#;
const OPENAI_HEAD: &str = r#""model":"oa/gpt-4o-mini","messages":[{"role":"user","content":"x"}]"#;

/// Posts the large `body` to `path` on one connection and, once it is sent,
/// asks `/health` on another; returns the large request's response and
/// which of the two answers came first.
fn large_beside_health(gw: &Gateway, path: &str, body: String) -> (Response, &'static str) {
    let (order_tx, order_rx) = mpsc::channel();
    let (sent_tx, sent_rx) = mpsc::channel();
    let req = post(
        path,
        &body,
        &["x-api-key: k", "anthropic-version: 2023-06-01"],
    );
    drop(body);
    let addr = gw.addr;
    let large = {
        let order_tx = order_tx.clone();
        thread::spawn(move || {
            let mut c = Client::connect(addr).unwrap();
            c.send(&req).unwrap();
            sent_tx.send(()).unwrap();
            let r = c.read_response_within(Duration::from_secs(60), false);
            order_tx.send("large").unwrap();
            r
        })
    };
    sent_rx.recv().unwrap();
    // The rest of the body is read from the socket buffers in a few
    // milliseconds; the scan that follows takes far longer.
    thread::sleep(Duration::from_millis(50));
    let health = gw.get("/health");
    order_tx.send("health").unwrap();
    assert_eq!(health.status, 200, "{}", health.text());
    let first = order_rx.recv().unwrap();
    let r = large
        .join()
        .unwrap()
        .unwrap_or_else(|e| panic!("POST {path}: {e}\n{}", gw.log()));
    (r, first)
}

/// The start of a (possibly huge) text, for a failure message.
fn start_of(text: &str) -> &str {
    &text[..text.char_indices().nth(300).map_or(text.len(), |(i, _)| i)]
}

fn error_message(r: &Response) -> String {
    let v: Value = r.json();
    v["error"]["message"]
        .as_str()
        .expect("a message")
        .to_owned()
}

#[test]
fn a_large_invalid_body_is_scanned_off_the_loop_and_refused_as_before() {
    each_driver(|d| {
        let mock = MockUpstream::start();
        // A duplicate key at the very end: the whole body is scanned first.
        let body = padded(OPENAI_HEAD, r#","model":"oa/again""#);
        // The same body refused on the loop, for its message.
        let inline = start(d, &mock, &limits("offload_body_bytes = 1073741824\n"));
        let before = inline.post("/v1/chat/completions", &body);
        drop(inline);
        assert_eq!(before.status, 400, "{}", start_of(&before.text()));

        let gw = start(d, &mock, &limits(""));
        let (r, first) = large_beside_health(&gw, "/v1/chat/completions", body);
        assert_eq!(r.status, 400, "{}", start_of(&r.text()));
        assert_eq!(error_message(&r), error_message(&before));
        assert_eq!(
            first, "health",
            "the health check waited for the large body's scan"
        );
        assert!(mock.requests().is_empty());
        gw.assert_healthy();
    });
}

#[test]
fn a_large_untranslatable_body_is_translated_off_the_loop_and_refused() {
    each_driver(|d| {
        let mock = MockUpstream::start();
        // Valid JSON, but a server tool the translator refuses, last.
        let body = padded(
            ANTHROPIC_HEAD,
            r#","tools":[{"type":"web_search_20250305","name":"w"}]"#,
        );
        let gw = start(d, &mock, &limits(""));
        let (r, first) = large_beside_health(&gw, "/v1/messages", body);
        assert_eq!(r.status, 400, "{}", start_of(&r.text()));
        assert!(
            error_message(&r).starts_with("cannot translate the request"),
            "{}",
            r.text()
        );
        assert_eq!(
            first, "health",
            "the health check waited for the large body's translation"
        );
        assert!(mock.requests().is_empty());
    });
}

#[test]
fn large_bodies_off_the_loop_still_get_their_answers() {
    each_driver(|d| {
        let mock = MockUpstream::start();
        let gw = start(d, &mock, &limits(""));

        // Same dialect: passed through with only the model patched.
        let body = padded(OPENAI_HEAD, "");
        let len = body.len();
        let zeros = body.bytes().filter(|&b| b == b'0').count();
        let (r, first) = large_beside_health(&gw, "/v1/chat/completions", body);
        assert_eq!(r.status, 200, "{}", start_of(&r.text()));
        assert_eq!(first, "health");
        let sent = mock.last();
        assert_eq!(sent.target, "/v1/chat/completions");
        assert_eq!(sent.body.len(), len - "oa/".len());
        let v = sent.json();
        assert_eq!(v["model"], "gpt-4o-mini");
        assert_eq!(v["pad"].as_array().unwrap().len(), zeros);

        // Anthropic to OpenAI: the translated body, and the answer back in
        // the client's dialect.
        let (r, first) = large_beside_health(&gw, "/v1/messages", padded(ANTHROPIC_HEAD, ""));
        assert_eq!(r.status, 200, "{}", start_of(&r.text()));
        assert_eq!(first, "health");
        let v = r.json();
        assert_eq!(v["type"], "message", "{v}");
        assert_eq!(v["model"], "oa/gpt-4o-mini", "{v}");
        let sent = mock.last();
        assert_eq!(sent.target, "/v1/chat/completions");
        assert_eq!(
            sent.json()["messages"],
            json!([{"role": "user", "content": "x"}])
        );
        assert_eq!(sent.json()["model"], "gpt-4o-mini");
        gw.assert_healthy();
    });
}
