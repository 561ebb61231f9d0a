//! Shared by the `translate_*` integration tests: fixture loading, a minimal
//! SSE splitter, the fields the official SDKs require of each dialect, and
//! stream accumulators that rebuild a whole response from translated events
//! the way the SDKs do, checking the event protocol as they go.

// Each test crate includes this module and uses only part of it.
#![allow(dead_code)]

use serde_json::{json, Value};

pub fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/translate/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub fn parse(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(bytes)))
}

/// One SSE event: its `event:` name (empty when absent) and `data:` payload.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    pub event: String,
    pub data: String,
}

/// Splits an SSE text into events; every event must end with a blank line.
pub fn sse_events(bytes: &[u8]) -> Vec<SseEvent> {
    let text = std::str::from_utf8(bytes).expect("SSE is UTF-8");
    assert!(
        text.is_empty() || text.ends_with("\n\n"),
        "SSE must end with a blank line: {text:?}"
    );
    text.split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .map(|block| {
            let mut event = SseEvent {
                event: String::new(),
                data: String::new(),
            };
            for line in block.lines() {
                if let Some(name) = line.strip_prefix("event: ") {
                    event.event = name.to_owned();
                } else if let Some(data) = line.strip_prefix("data: ") {
                    event.data = data.to_owned();
                } else {
                    panic!("unexpected SSE line {line:?}");
                }
            }
            event
        })
        .collect()
}

/// The fields the Anthropic SDKs require of a `Message`.
pub fn assert_anthropic_message(message: &Value) {
    assert!(
        message["id"].as_str().unwrap().starts_with("msg_"),
        "{message}"
    );
    assert_eq!(message["type"], "message");
    assert_eq!(message["role"], "assistant");
    assert!(message["model"].is_string());
    assert!(message["content"].is_array());
    for block in message["content"].as_array().unwrap() {
        match block["type"].as_str().unwrap() {
            "text" => assert!(block["text"].is_string()),
            "tool_use" => {
                assert!(block["id"].is_string() && block["name"].is_string());
                assert!(
                    block["input"].is_object(),
                    "tool input must be an object: {block}"
                );
            }
            other => panic!("unexpected block type {other}"),
        }
    }
    let stop_reasons = [
        "end_turn",
        "max_tokens",
        "stop_sequence",
        "tool_use",
        "pause_turn",
        "refusal",
    ];
    assert!(
        stop_reasons.contains(&message["stop_reason"].as_str().unwrap()),
        "{message}"
    );
    assert!(
        message.get("stop_sequence").is_some(),
        "stop_sequence must be present"
    );
    assert!(message["usage"]["input_tokens"].is_u64());
    assert!(message["usage"]["output_tokens"].is_u64());
}

/// The fields the OpenAI SDKs require of a `ChatCompletion`.
pub fn assert_openai_completion(completion: &Value) {
    assert!(
        completion["id"].as_str().unwrap().starts_with("chatcmpl-"),
        "{completion}"
    );
    assert_eq!(completion["object"], "chat.completion");
    assert!(completion["created"].is_u64());
    assert!(completion["model"].is_string());
    let choices = completion["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 1);
    assert_eq!(choices[0]["index"], 0);
    let message = &choices[0]["message"];
    assert_eq!(message["role"], "assistant");
    assert!(message["content"].is_string() || message["content"].is_null());
    for call in message["tool_calls"].as_array().into_iter().flatten() {
        assert!(call["id"].is_string());
        assert_eq!(call["type"], "function");
        assert!(call["function"]["name"].is_string());
        let arguments = call["function"]["arguments"]
            .as_str()
            .expect("arguments is a string");
        serde_json::from_str::<Value>(arguments).expect("arguments is JSON text");
    }
    let finish_reasons = [
        "stop",
        "length",
        "tool_calls",
        "content_filter",
        "function_call",
    ];
    assert!(finish_reasons.contains(&choices[0]["finish_reason"].as_str().unwrap()));
    let usage = &completion["usage"];
    let (prompt, completion_tokens) = (
        usage["prompt_tokens"].as_u64().unwrap(),
        usage["completion_tokens"].as_u64().unwrap(),
    );
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        prompt + completion_tokens
    );
}

/// Rebuilds a `Message` from Anthropic events, enforcing the protocol:
/// message_start first, blocks opened, filled and closed in order, one
/// message_delta, message_stop last.
pub fn accumulate_anthropic(events: &[SseEvent]) -> Value {
    let mut message = Value::Null;
    let mut open: Option<usize> = None;
    let mut partial_json: Vec<String> = Vec::new();
    let mut stopped = false;
    for (position, sse) in events.iter().enumerate() {
        assert!(!stopped, "event after message_stop: {sse:?}");
        let data = parse(sse.data.as_bytes());
        assert_eq!(
            data["type"],
            sse.event.as_str(),
            "event name and data type differ"
        );
        match sse.event.as_str() {
            "message_start" => {
                assert_eq!(position, 0, "message_start must come first");
                message = data["message"].clone();
            }
            "content_block_start" => {
                assert!(open.is_none(), "block opened while another is open");
                let index = data["index"].as_u64().unwrap() as usize;
                let content = message["content"].as_array_mut().unwrap();
                assert_eq!(index, content.len(), "block indices are consecutive");
                content.push(data["content_block"].clone());
                partial_json.push(String::new());
                open = Some(index);
            }
            "content_block_delta" => {
                let index = data["index"].as_u64().unwrap() as usize;
                assert_eq!(open, Some(index), "delta for a block that is not open");
                let block = &mut message["content"][index];
                match data["delta"]["type"].as_str().unwrap() {
                    "text_delta" => {
                        let text = block["text"].as_str().unwrap().to_owned()
                            + data["delta"]["text"].as_str().unwrap();
                        block["text"] = json!(text);
                    }
                    "input_json_delta" => partial_json[index]
                        .push_str(data["delta"]["partial_json"].as_str().unwrap()),
                    other => panic!("unexpected delta {other}"),
                }
            }
            "content_block_stop" => {
                let index = data["index"].as_u64().unwrap() as usize;
                assert_eq!(open.take(), Some(index));
                if message["content"][index]["type"] == "tool_use"
                    && !partial_json[index].is_empty()
                {
                    message["content"][index]["input"] = parse(partial_json[index].as_bytes());
                }
            }
            "message_delta" => {
                assert!(open.is_none(), "message_delta with a block open");
                message["stop_reason"] = data["delta"]["stop_reason"].clone();
                message["stop_sequence"] = data["delta"]["stop_sequence"].clone();
                for (key, value) in data["usage"].as_object().unwrap() {
                    message["usage"][key] = value.clone();
                }
            }
            "message_stop" => stopped = true,
            other => panic!("unexpected event {other}"),
        }
    }
    assert!(stopped, "stream did not end with message_stop");
    message
}

/// Rebuilds a `ChatCompletion` from OpenAI chunks, enforcing: every line is
/// a chunk of the same id and model, role comes first, the stream ends with
/// `[DONE]`, a usage chunk (with empty choices) comes last when present.
pub fn accumulate_openai(events: &[SseEvent]) -> Value {
    let (last, chunks) = events.split_last().expect("empty stream");
    assert_eq!(last.data, "[DONE]", "stream must end with [DONE]");
    let mut content = String::new();
    let mut tool_calls: Vec<Value> = Vec::new();
    let mut finish_reason = Value::Null;
    let mut usage = Value::Null;
    let first = parse(chunks[0].data.as_bytes());
    assert_eq!(
        first["choices"][0]["delta"]["role"], "assistant",
        "role comes first"
    );
    for sse in chunks {
        assert!(sse.event.is_empty(), "OpenAI streams have no event names");
        let chunk = parse(sse.data.as_bytes());
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["id"], first["id"]);
        assert_eq!(chunk["model"], first["model"]);
        assert_eq!(chunk["created"], first["created"]);
        assert!(usage.is_null(), "usage chunk must be last");
        if chunk["usage"].is_object() {
            assert_eq!(chunk["choices"], json!([]));
            usage = chunk["usage"].clone();
            continue;
        }
        let choice = &chunk["choices"][0];
        assert_eq!(choice["index"], 0);
        if let Some(text) = choice["delta"]["content"].as_str() {
            content.push_str(text);
        }
        for call in choice["delta"]["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let index = call["index"].as_u64().unwrap() as usize;
            if index == tool_calls.len() {
                assert!(
                    call["id"].is_string() && call["function"]["name"].is_string(),
                    "first fragment names the call"
                );
                tool_calls.push(json!({"id": call["id"], "type": "function", "function": {"name": call["function"]["name"], "arguments": ""}}));
            }
            let arguments = tool_calls[index]["function"]["arguments"]
                .as_str()
                .unwrap()
                .to_owned()
                + call["function"]["arguments"].as_str().unwrap_or_default();
            tool_calls[index]["function"]["arguments"] = json!(arguments);
        }
        if !choice["finish_reason"].is_null() {
            assert!(finish_reason.is_null(), "one finish_reason per choice");
            finish_reason = choice["finish_reason"].clone();
        }
    }
    let mut message = json!({"role": "assistant", "content": content});
    if !tool_calls.is_empty() {
        message["tool_calls"] = json!(tool_calls);
    }
    json!({
        "id": first["id"],
        "model": first["model"],
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": usage,
    })
}
