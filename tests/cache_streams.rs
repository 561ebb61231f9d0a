//! Streams in the response cache over real sockets: a streamed answer is
//! recorded as it passes and a repeat is replayed from it (the same events,
//! the usage chunk only when asked), a whole request is answered from a
//! recorded stream and a streamed one from a whole answer, in both
//! dialects, passed through and translated; a stream that was cut, that
//! never finished, or that outgrew `max_entry_bytes` is not kept.

mod common;

use common::answers::realistic_mock as mock;
use common::*;
use serde_json::{json, Value};

const CHAT: &str = "/v1/chat/completions";
const MESSAGES: &str = "/v1/messages";

fn gateway(mock: &MockUpstream, cache: &str) -> Gateway {
    let config = config_for(
        mock,
        "",
        &format!(
            "[providers.an]\nkind = \"anthropic\"\nbase_url = \"{}\"\napi_key = \"an-key\"\n\n\
             [cache]\nenabled = true\n{cache}\n\n\
             [[models]]\nname = \"claude-x\"\nprovider = \"an\"\n",
            mock.base_url()
        ),
    );
    Gateway::start(GatewayOpts::config(Driver::IoUring, config))
}

fn send(gw: &Gateway, path: &str, body: &Value) -> Response {
    gw.connect()
        .request(post(path, &body.to_string(), &[]))
        .unwrap()
}

fn upstream_calls(mock: &MockUpstream) -> usize {
    mock.requests().len()
}

/// The `data:` payloads of an OpenAI stream.
fn data_of(r: &Response) -> Vec<String> {
    assert_eq!(r.status, 200, "{}", r.text());
    sse_data(&r.body)
}

/// An Anthropic stream's events: (name, data).
fn named_events(r: &Response) -> Vec<(String, Value)> {
    let text = r.text();
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let name = e.lines().find_map(|l| l.strip_prefix("event: ")).unwrap();
            let data = e.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
            (name.to_owned(), serde_json::from_str(data).unwrap())
        })
        .collect()
}

fn joined_openai_text(events: &[String]) -> String {
    events
        .iter()
        .filter(|d| *d != "[DONE]")
        .filter_map(|d| {
            let v: Value = serde_json::from_str(d).unwrap();
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(String::from)
        })
        .collect()
}

fn chat(prompt: &str, stream: bool, usage: bool) -> Value {
    let mut body =
        json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": prompt}]});
    if stream {
        body["stream"] = json!(true);
    }
    if usage {
        body["stream_options"] = json!({"include_usage": true});
    }
    body
}

#[test]
fn an_openai_stream_is_replayed_and_answers_both_forms() {
    let mock = mock();
    let gw = gateway(&mock, "");

    let first = send(&gw, CHAT, &chat("stream me", true, true));
    assert_eq!(first.header("x-shardgate-cache"), Some("miss"));
    let recorded = data_of(&first);
    assert_eq!(recorded.len(), 6, "{recorded:?}");

    // Keys reordered: the same events, token by token, from the cache.
    let reordered = r#"{"stream_options":{"include_usage":true},"messages":[{"content":"stream me","role":"user"}],"stream":true,"model":"gpt-4o-mini"}"#;
    let hit = gw.connect().request(post(CHAT, reordered, &[])).unwrap();
    assert_eq!(hit.header("x-shardgate-cache"), Some("hit"));
    assert!(hit.header("age").is_some());
    assert_eq!(hit.header("content-type"), Some("text/event-stream"));
    assert_eq!(data_of(&hit), recorded);

    // Without include_usage: the same events but the usage chunk.
    let bare = send(&gw, CHAT, &chat("stream me", true, false));
    assert_eq!(bare.header("x-shardgate-cache"), Some("hit"));
    let without: Vec<String> = recorded
        .iter()
        .filter(|d| !d.contains("\"usage\""))
        .cloned()
        .collect();
    assert_eq!(data_of(&bare), without);

    // A whole request: the recorded stream put back together.
    let whole = send(&gw, CHAT, &chat("stream me", false, false));
    assert_eq!(whole.header("x-shardgate-cache"), Some("hit"));
    let v = whole.json();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["content"], "Hello world");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["total_tokens"], 11);
    assert_eq!(upstream_calls(&mock), 1, "one upstream call answered four");

    // The other way round: a whole answer kept, then streamed from.
    let kept = send(&gw, CHAT, &chat("whole first", false, false));
    assert_eq!(kept.header("x-shardgate-cache"), Some("miss"));
    let content = kept.json()["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    let streamed = send(&gw, CHAT, &chat("whole first", true, true));
    assert_eq!(streamed.header("x-shardgate-cache"), Some("hit"));
    let events = data_of(&streamed);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    assert_eq!(joined_openai_text(&events), content);
    let usage: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    assert_eq!(usage["usage"], kept.json()["usage"]);
    assert_eq!(upstream_calls(&mock), 2);

    // A stream recorded without the usage chunk cannot give one: asked
    // for it, the request goes upstream and its answer replaces the entry.
    send(&gw, CHAT, &chat("no usage", true, false));
    let asked = send(&gw, CHAT, &chat("no usage", true, true));
    assert_eq!(asked.header("x-shardgate-cache"), Some("miss"));
    assert!(data_of(&asked).iter().any(|d| d.contains("\"usage\"")));
    let again = send(&gw, CHAT, &chat("no usage", true, true));
    assert_eq!(again.header("x-shardgate-cache"), Some("hit"));
    assert_eq!(upstream_calls(&mock), 4);
}

#[test]
fn anthropic_streams_are_replayed_passed_through_and_translated() {
    let mock = mock();
    let gw = gateway(&mock, "");
    let messages = |model: &str, stream: bool| {
        json!({"model": model, "max_tokens": 64, "stream": stream,
               "messages": [{"role": "user", "content": "stream me"}]})
    };

    // Passed through to an Anthropic provider.
    let first = send(&gw, MESSAGES, &messages("claude-x", true));
    assert_eq!(first.header("x-shardgate-cache"), Some("miss"));
    let recorded = named_events(&first);
    assert_eq!(recorded.len(), 7);
    let hit = send(&gw, MESSAGES, &messages("claude-x", true));
    assert_eq!(hit.header("x-shardgate-cache"), Some("hit"));
    assert_eq!(named_events(&hit), recorded);
    let whole = send(&gw, MESSAGES, &messages("claude-x", false));
    assert_eq!(whole.header("x-shardgate-cache"), Some("hit"));
    let v = whole.json();
    assert_eq!(v["type"], "message");
    assert_eq!(
        v["content"],
        json!([{"type": "text", "text": "Hello world"}])
    );
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(v["usage"]["output_tokens"], 2);
    assert_eq!(upstream_calls(&mock), 1);

    // Translated: Anthropic's client, an OpenAI provider's stream.
    let first = send(&gw, MESSAGES, &messages("gpt-4o-mini", true));
    assert_eq!(first.header("x-shardgate-cache"), Some("miss"));
    let recorded = named_events(&first);
    assert_eq!(recorded.last().unwrap().0, "message_stop");
    let hit = send(&gw, MESSAGES, &messages("gpt-4o-mini", true));
    assert_eq!(hit.header("x-shardgate-cache"), Some("hit"));
    assert_eq!(named_events(&hit), recorded);

    // Translated the other way: OpenAI's client, Anthropic's stream.
    let body = json!({"model": "claude-x", "stream": true, "messages": [{"role": "user", "content": "translate me"}]});
    let first = send(&gw, CHAT, &body);
    assert_eq!(first.header("x-shardgate-cache"), Some("miss"));
    let recorded = data_of(&first);
    assert_eq!(joined_openai_text(&recorded), "Hello world");
    let hit = send(&gw, CHAT, &body);
    assert_eq!(hit.header("x-shardgate-cache"), Some("hit"));
    assert_eq!(data_of(&hit), recorded);

    // A whole Anthropic answer told as a stream.
    let kept = send(
        &gw,
        MESSAGES,
        &json!({"model": "claude-x", "max_tokens": 64,
        "messages": [{"role": "user", "content": "whole first"}]}),
    );
    assert_eq!(kept.header("x-shardgate-cache"), Some("miss"));
    let streamed = send(
        &gw,
        MESSAGES,
        &json!({"model": "claude-x", "max_tokens": 64, "stream": true,
        "messages": [{"role": "user", "content": "whole first"}]}),
    );
    assert_eq!(streamed.header("x-shardgate-cache"), Some("hit"));
    let events = named_events(&streamed);
    let text: String = events
        .iter()
        .filter_map(|(_, d)| d["delta"]["text"].as_str().map(String::from))
        .collect();
    assert_eq!(text, "Whole answer");
    assert_eq!(events.last().unwrap().0, "message_stop");
    assert_eq!(upstream_calls(&mock), 4);
}

#[test]
fn cut_unfinished_and_oversized_streams_are_not_kept() {
    let stream = |tag: &str| json!({"model": "gpt-4o-mini", "stream": true, "messages": [{"role": "user", "content": tag}]});
    // Cut mid-stream: the client is told in-band, and nothing is kept.
    let cut = MockUpstream::with(|_| Reply::SseCut { events: 2 });
    let gw = gateway(&cut, "");
    for _ in 0..2 {
        let r = send(&gw, CHAT, &stream("cut"));
        assert_eq!(r.header("x-shardgate-cache"), Some("miss"));
    }
    assert_eq!(upstream_calls(&cut), 2);

    // A stream that ends without any choice finishing is not an answer.
    let unfinished = MockUpstream::with(|_| Reply::Sse {
        events: 3,
        delay: std::time::Duration::ZERO,
        framing: SseFraming::Chunked,
    });
    let gw = gateway(&unfinished, "");
    for _ in 0..2 {
        let r = send(&gw, CHAT, &stream("unfinished"));
        assert_eq!(r.header("x-shardgate-cache"), Some("miss"));
    }
    assert_eq!(upstream_calls(&unfinished), 2);

    // Larger than an entry may be: relayed whole, recorded no further.
    let mock = mock();
    let gw = gateway(&mock, "max_entry_bytes = 600");
    for _ in 0..2 {
        let r = send(&gw, CHAT, &stream("a long one"));
        assert_eq!(joined_openai_text(&data_of(&r)), "Hello world");
        assert_eq!(r.header("x-shardgate-cache"), Some("miss"));
    }
    assert_eq!(upstream_calls(&mock), 2);
    // A small one still fits.
    let small = MockUpstream::start();
    let gw = gateway(&small, "max_entry_bytes = 600");
    for want in ["miss", "hit"] {
        let r = send(&gw, CHAT, &chat("small", false, false));
        assert_eq!(r.header("x-shardgate-cache"), Some(want));
    }
}
