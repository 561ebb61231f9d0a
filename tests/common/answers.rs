//! Answers shaped as providers really send them, for the tests that keep
//! or compare whole streams (the response cache): every stream ends as its
//! dialect ends one.

use std::io::Write;

use serde_json::{json, Value};

use super::{MockUpstream, Reply, Writer};

/// An OpenAI chat stream as the provider sends it: the role, two content
/// deltas, the finish reason, the usage chunk when asked, `[DONE]`.
pub fn openai_events(model: &str, include_usage: bool) -> Vec<String> {
    let chunk = |delta: Value, finish: Value| {
        json!({"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1700000000, "model": model,
               "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]})
        .to_string()
    };
    let mut events = vec![
        chunk(json!({"role": "assistant", "content": ""}), Value::Null),
        chunk(json!({"content": "Hello"}), Value::Null),
        chunk(json!({"content": " world"}), Value::Null),
        chunk(json!({}), json!("stop")),
    ];
    if include_usage {
        events.push(
            json!({"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1700000000, "model": model,
                   "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}})
            .to_string(),
        );
    }
    events.push("[DONE]".into());
    events.iter().map(|e| format!("data: {e}\n\n")).collect()
}

/// An Anthropic messages stream as the provider sends it.
pub fn anthropic_events(model: &str) -> Vec<String> {
    let events = [
        (
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_s", "type": "message",
            "role": "assistant", "model": model, "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 9, "output_tokens": 1}}}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": " world"}}),
        ),
        (
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ),
        (
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": 2}}),
        ),
        ("message_stop", json!({"type": "message_stop"})),
    ];
    events
        .iter()
        .map(|(name, data)| format!("event: {name}\ndata: {data}\n\n"))
        .collect()
}

/// Writes `events` as a chunked SSE response, one chunk each.
pub fn chunked_stream(events: Vec<String>) -> Reply {
    Reply::Scripted(Writer::new(move |s, _| {
        s.write_all(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n",
        )?;
        for e in &events {
            write!(s, "{:x}\r\n{e}\r\n", e.len())?;
        }
        s.write_all(b"0\r\n\r\n")?;
        Ok(true)
    }))
}

/// A mock provider whose answers end as real ones do: OpenAI chat (whole,
/// or streamed to a finish reason, the usage chunk when asked, `[DONE]`)
/// and Anthropic messages (whole, or streamed to `message_stop`), streams
/// chunked one event per chunk.
pub fn realistic_mock() -> MockUpstream {
    MockUpstream::with(|rec| {
        let req: Value = serde_json::from_slice(rec.body).unwrap_or_default();
        let model = req["model"].as_str().unwrap_or_default().to_owned();
        let streams = req["stream"] == true;
        let usage = req["stream_options"]["include_usage"] == true;
        match (rec.path, streams) {
            ("/v1/messages", true) => chunked_stream(anthropic_events(&model)),
            ("/v1/messages", false) => Reply::Raw {
                status: 200,
                content_type: "application/json".into(),
                headers: vec![],
                body: json!({"id": "msg_w", "type": "message", "role": "assistant", "model": model,
                    "content": [{"type": "text", "text": "Whole answer"}], "stop_reason": "end_turn",
                    "stop_sequence": null, "usage": {"input_tokens": 9, "output_tokens": 2}})
                .to_string()
                .into_bytes(),
            },
            (_, true) => chunked_stream(openai_events(&model, usage)),
            _ => Reply::Auto,
        }
    })
}
