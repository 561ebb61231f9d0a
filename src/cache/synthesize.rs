//! A whole answer told again as the stream it would have been, so that a
//! cached whole answer can answer a later request that streams (issue 17:
//! "and the other way round"). Sans-IO: one whole body in, the event
//! stream's bytes out, framed as the dialect frames it.
//!
//! - OpenAI chat (`chat.completion`): per choice, a chunk with the role and
//!   the content (and refusal), one with its tool calls, one with its
//!   finish reason; the usage chunk when the client asked for it; `[DONE]`.
//! - OpenAI completions (`text_completion`): a chunk per choice with its
//!   text and finish reason, the usage chunk when asked, `[DONE]`.
//! - Anthropic messages (`message`): `message_start` (the message without
//!   its content, its output tokens not yet counted), each content block
//!   opened, given whole as one delta and closed, `message_delta` with the
//!   stop reason and the output tokens, `message_stop`.
//!
//! Invariants: the events say exactly what the whole answer said (joined
//! back, they give its content, calls, reasons and usage); an answer that
//! is not the shape expected, or a usage chunk asked of an answer with no
//! usage, gives `None` (the caller goes upstream instead).

use serde_json::{json, Map, Value};

/// The chat stream of `whole`, a `chat.completion`.
pub fn chat_stream(whole: &[u8], include_usage: bool) -> Option<Vec<u8>> {
    let whole: Value = serde_json::from_slice(whole).ok()?;
    let head = chunk_head(&whole, "chat.completion.chunk");
    let mut out = Vec::with_capacity(256);
    for choice in whole["choices"].as_array()? {
        let index = &choice["index"];
        let message = choice["message"].as_object()?;
        let mut delta = json!({"role": "assistant", "content": message.get("content").cloned().unwrap_or(Value::Null)});
        if let Some(refusal) = message.get("refusal").filter(|r| !r.is_null()) {
            delta["refusal"] = refusal.clone();
        }
        push_chunk(&mut out, &head, index, delta, Value::Null);
        if let Some(calls) = message.get("tool_calls").and_then(Value::as_array) {
            let calls: Vec<Value> = calls
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    json!({"index": i, "id": c["id"], "type": c["type"], "function": c["function"]})
                })
                .collect();
            push_chunk(
                &mut out,
                &head,
                index,
                json!({"tool_calls": calls}),
                Value::Null,
            );
        }
        let finish = choice.get("finish_reason").cloned().unwrap_or(Value::Null);
        push_chunk(&mut out, &head, index, json!({}), finish);
    }
    finish_openai(&mut out, head, &whole, include_usage)?;
    Some(out)
}

/// The completions stream of `whole`, a `text_completion`.
pub fn completion_stream(whole: &[u8], include_usage: bool) -> Option<Vec<u8>> {
    let whole: Value = serde_json::from_slice(whole).ok()?;
    let head = chunk_head(&whole, "text_completion");
    let mut out = Vec::with_capacity(256);
    for choice in whole["choices"].as_array()? {
        let mut chunk = head.clone();
        chunk.insert(
            "choices".into(),
            json!([{"index": choice["index"], "text": choice.get("text")?, "logprobs": null,
                    "finish_reason": choice["finish_reason"]}]),
        );
        push_data(&mut out, &Value::Object(chunk));
    }
    finish_openai(&mut out, head, &whole, include_usage)?;
    Some(out)
}

/// The messages stream of `whole`, an Anthropic `message`.
pub fn message_stream(whole: &[u8]) -> Option<Vec<u8>> {
    let Value::Object(mut message) = serde_json::from_slice(whole).ok()? else {
        return None;
    };
    let Some(Value::Array(content)) = message.remove("content") else {
        return None;
    };
    let stop_reason = message.insert("stop_reason".into(), Value::Null);
    let stop_sequence = message.insert("stop_sequence".into(), Value::Null);
    let mut usage = message.get("usage").cloned().unwrap_or_else(|| json!({}));
    let output_tokens = usage.get("output_tokens").cloned().unwrap_or(json!(0));
    if let Some(u) = usage.as_object_mut() {
        u.insert("output_tokens".into(), json!(0));
    }
    message.insert("usage".into(), usage);
    message.insert("content".into(), json!([]));
    let mut out = Vec::with_capacity(whole.len() * 2);
    push_event(
        &mut out,
        "message_start",
        &json!({"type": "message_start", "message": message}),
    );
    for (index, block) in content.into_iter().enumerate() {
        let (start, delta) = block_parts(block)?;
        push_event(
            &mut out,
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": start}),
        );
        for delta in delta {
            push_event(
                &mut out,
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": index, "delta": delta}),
            );
        }
        push_event(
            &mut out,
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": index}),
        );
    }
    push_event(
        &mut out,
        "message_delta",
        &json!({"type": "message_delta",
                "delta": {"stop_reason": stop_reason.unwrap_or(Value::Null),
                          "stop_sequence": stop_sequence.unwrap_or(Value::Null)},
                "usage": {"output_tokens": output_tokens}}),
    );
    push_event(&mut out, "message_stop", &json!({"type": "message_stop"}));
    Some(out)
}

/// A content block as it opens, and the deltas that fill it.
fn block_parts(mut block: Value) -> Option<(Value, Vec<Value>)> {
    let kind = block["type"].as_str()?.to_owned();
    let b = block.as_object_mut()?;
    let deltas = match kind.as_str() {
        "text" => {
            let text = b.insert("text".into(), json!(""))?;
            vec![json!({"type": "text_delta", "text": text})]
        }
        "tool_use" | "server_tool_use" => {
            let input = b.insert("input".into(), json!({}))?;
            vec![json!({"type": "input_json_delta", "partial_json": input.to_string()})]
        }
        "thinking" => {
            let thinking = b.insert("thinking".into(), json!(""))?;
            let mut deltas = vec![json!({"type": "thinking_delta", "thinking": thinking})];
            if let Some(signature) = b.insert("signature".into(), json!("")) {
                deltas.push(json!({"type": "signature_delta", "signature": signature}));
            }
            deltas
        }
        // Opened whole (redacted thinking, tool results of the server's).
        _ => Vec::new(),
    };
    Some((block, deltas))
}

/// The members every chunk of `whole` repeats.
fn chunk_head(whole: &Value, object: &str) -> Map<String, Value> {
    let mut head = Map::new();
    for key in ["id", "created", "model", "system_fingerprint"] {
        if let Some(v) = whole.get(key).filter(|v| !v.is_null()) {
            head.insert(key.into(), v.clone());
        }
    }
    head.insert("object".into(), json!(object));
    head
}

fn push_chunk(
    out: &mut Vec<u8>,
    head: &Map<String, Value>,
    index: &Value,
    delta: Value,
    finish: Value,
) {
    let mut chunk = head.clone();
    chunk.insert(
        "choices".into(),
        json!([{"index": index, "delta": delta, "logprobs": null, "finish_reason": finish}]),
    );
    push_data(out, &Value::Object(chunk));
}

/// The usage chunk when asked (`None` when asked of an answer with no
/// usage), then `[DONE]`.
fn finish_openai(
    out: &mut Vec<u8>,
    mut head: Map<String, Value>,
    whole: &Value,
    include_usage: bool,
) -> Option<()> {
    if include_usage {
        let usage = whole.get("usage").filter(|u| u.is_object())?;
        head.insert("choices".into(), json!([]));
        head.insert("usage".into(), usage.clone());
        push_data(out, &Value::Object(head));
    }
    out.extend_from_slice(b"data: [DONE]\n\n");
    Some(())
}

fn push_data(out: &mut Vec<u8>, data: &Value) {
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(data.to_string().as_bytes());
    out.extend_from_slice(b"\n\n");
}

fn push_event(out: &mut Vec<u8>, name: &str, data: &Value) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    out.push(b'\n');
    push_data(out, data);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::sse::SseScanner;
    use crate::cache::assemble::{ChatAssembler, MessageAssembler};

    fn events(stream: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut got = Vec::new();
        SseScanner::new(1 << 20)
            .feed(stream, |ev| got.push((ev.event.to_vec(), ev.data.to_vec())))
            .unwrap();
        got
    }

    fn value(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).unwrap()
    }

    #[test]
    fn a_chat_answer_streams_back_into_itself() {
        let whole = json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 7, "model": "gpt-4o",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "refusal": null,
                "tool_calls": [{"id": "call_a", "type": "function", "function": {"name": "f", "arguments": "{\"x\":1}"}}]},
                "logprobs": null, "finish_reason": "tool_calls"},
                {"index": 1, "message": {"role": "assistant", "content": "Hello", "refusal": null},
                "logprobs": null, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
        });
        let stream = chat_stream(whole.to_string().as_bytes(), true).unwrap();
        let mut a = ChatAssembler::default();
        let got = events(&stream);
        assert_eq!(got.last().unwrap().1, b"[DONE]");
        for (_, data) in &got {
            a.on_data(data);
        }
        assert_eq!(value(&a.finish().unwrap()), whole);

        let bare = chat_stream(whole.to_string().as_bytes(), false).unwrap();
        assert!(events(&bare)
            .iter()
            .all(|(_, d)| !d.starts_with(b"{") || value(d).get("usage").is_none()));
        let no_usage = json!({"id": "x", "choices": []});
        assert_eq!(chat_stream(no_usage.to_string().as_bytes(), true), None);
        assert!(chat_stream(no_usage.to_string().as_bytes(), false).is_some());
        assert_eq!(chat_stream(b"[1,2]", false), None);
        assert_eq!(chat_stream(b"{\"choices\":[{\"message\":3}]}", false), None);
    }

    #[test]
    fn a_completion_streams_its_text() {
        let whole = json!({"id": "cmpl-1", "object": "text_completion", "created": 7, "model": "m",
            "choices": [{"index": 0, "text": "Hi there", "logprobs": null, "finish_reason": "length"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}});
        let stream = completion_stream(whole.to_string().as_bytes(), true).unwrap();
        let got = events(&stream);
        assert_eq!(got.len(), 3);
        let first = value(&got[0].1);
        assert_eq!(first["choices"][0]["text"], "Hi there");
        assert_eq!(first["choices"][0]["finish_reason"], "length");
        assert_eq!(value(&got[1].1)["usage"], whole["usage"]);
    }

    #[test]
    fn a_message_streams_back_into_itself() {
        let whole = json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
            "content": [
                {"type": "thinking", "thinking": "Let me see.", "signature": "sig=="},
                {"type": "text", "text": "Hello \"you\""},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "redacted_thinking", "data": "opaque"}
            ],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 12, "output_tokens": 9, "cache_read_input_tokens": 3}
        });
        let stream = message_stream(whole.to_string().as_bytes()).unwrap();
        let got = events(&stream);
        assert_eq!(got[0].0, b"message_start");
        assert_eq!(value(&got[0].1)["message"]["usage"]["output_tokens"], 0);
        assert_eq!(got.last().unwrap().0, b"message_stop");
        let mut a = MessageAssembler::default();
        for (name, data) in &got {
            a.on_event(name, data);
        }
        assert_eq!(value(&a.finish().unwrap()), whole);
        assert_eq!(message_stream(b"{\"content\":[{\"text\":1}]}"), None);
        assert_eq!(message_stream(b"{}"), None);
    }
}
