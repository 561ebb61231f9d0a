//! A recorded stream put back together as the whole answer it streamed, so
//! that it can answer a later request that does not stream (issue 17: "a
//! non-streamed request can be answered from a recorded stream"). Sans-IO:
//! each event in, one whole body out: [`ChatAssembler`] for an OpenAI chat
//! stream (`chat.completion`), [`MessageAssembler`] for an Anthropic
//! messages stream (`message`).
//!
//! Chat, per choice (by `index`): the `content` deltas joined, the `refusal`
//! deltas joined, each tool call (by its `index`) with its id, type and
//! name from the chunk that opened it and its `arguments` fragments joined,
//! and the last `finish_reason`. The response's `id`, `created`, `model`
//! and `system_fingerprint` are the chunks' (the first that says each);
//! `usage` is the usage chunk's, when the stream had one.
//!
//! Messages: `message_start`'s message, each content block (by `index`)
//! as `content_block_start` opened it with its deltas applied (text,
//! thinking and signature joined; a tool call's `partial_json` joined and
//! parsed as its `input`), and `message_delta`'s stop reason, stop
//! sequence and usage merged in.
//!
//! Invariants: the result is JSON whenever `finish` gives one; a stream
//! that did not finish (no `finish_reason` on a choice; no `message_stop`)
//! or said an error gives none, as such a stream is not an answer to keep.

use serde_json::{json, Map, Value};

/// One choice as far as its chunks went.
#[derive(Default)]
struct Choice {
    content: Option<String>,
    refusal: Option<String>,
    /// Tool calls by their index in the choice.
    calls: Vec<(u64, Call)>,
    finish_reason: Option<Value>,
}

#[derive(Default)]
struct Call {
    id: Value,
    kind: Value,
    name: Value,
    arguments: String,
}

/// Gathers a chat stream's chunks.
#[derive(Default)]
pub struct ChatAssembler {
    head: Map<String, Value>,
    choices: Vec<(u64, Choice)>,
    usage: Option<Value>,
    failed: bool,
}

impl ChatAssembler {
    /// Takes one `data:` payload (`[DONE]` and non-JSON ones mark nothing
    /// but the latter fail the stream).
    pub fn on_data(&mut self, data: &[u8]) {
        if data == b"[DONE]" {
            return;
        }
        let Ok(chunk) = serde_json::from_slice::<Value>(data) else {
            self.failed = true;
            return;
        };
        if chunk.get("error").is_some_and(|e| !e.is_null()) {
            self.failed = true;
            return;
        }
        for key in ["id", "created", "model", "system_fingerprint"] {
            if let Some(v) = chunk.get(key).filter(|v| !v.is_null()) {
                self.head.entry(key).or_insert_with(|| v.clone());
            }
        }
        if let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) {
            self.usage = Some(usage.clone());
        }
        for c in chunk["choices"].as_array().into_iter().flatten() {
            let index = c["index"].as_u64().unwrap_or(0);
            let choice = slot(&mut self.choices, index);
            let delta = &c["delta"];
            if let Some(text) = delta["content"].as_str() {
                choice
                    .content
                    .get_or_insert_with(String::new)
                    .push_str(text);
            }
            if let Some(text) = delta["refusal"].as_str() {
                choice
                    .refusal
                    .get_or_insert_with(String::new)
                    .push_str(text);
            }
            for t in delta["tool_calls"].as_array().into_iter().flatten() {
                let call = slot(&mut choice.calls, t["index"].as_u64().unwrap_or(0));
                let function = &t["function"];
                for (field, value) in [
                    (&mut call.id, &t["id"]),
                    (&mut call.kind, &t["type"]),
                    (&mut call.name, &function["name"]),
                ] {
                    if field.is_null() && !value.is_null() {
                        *field = value.clone();
                    }
                }
                if let Some(fragment) = function["arguments"].as_str() {
                    call.arguments.push_str(fragment);
                }
            }
            if let Some(reason) = c.get("finish_reason").filter(|r| !r.is_null()) {
                choice.finish_reason = Some(reason.clone());
            }
        }
    }

    /// The `chat.completion` the stream was, if it finished whole.
    pub fn finish(mut self) -> Option<Vec<u8>> {
        let finished =
            !self.choices.is_empty() && self.choices.iter().all(|(_, c)| c.finish_reason.is_some());
        if self.failed || !finished {
            return None;
        }
        self.choices.sort_by_key(|(i, _)| *i);
        let choices: Vec<Value> = self
            .choices
            .into_iter()
            .map(|(index, mut c)| {
                let mut message = json!({
                    "role": "assistant",
                    "content": c.content,
                    "refusal": c.refusal,
                });
                if !c.calls.is_empty() {
                    c.calls.sort_by_key(|(i, _)| *i);
                    let calls: Vec<Value> = c
                        .calls
                        .into_iter()
                        .map(|(_, call)| {
                            json!({
                                "id": call.id,
                                "type": if call.kind.is_null() { json!("function") } else { call.kind },
                                "function": {"name": call.name, "arguments": call.arguments},
                            })
                        })
                        .collect();
                    message["tool_calls"] = Value::Array(calls);
                }
                json!({
                    "index": index,
                    "message": message,
                    "logprobs": null,
                    "finish_reason": c.finish_reason,
                })
            })
            .collect();
        let mut body = self.head;
        body.insert("object".into(), json!("chat.completion"));
        body.insert("choices".into(), Value::Array(choices));
        if let Some(usage) = self.usage {
            body.insert("usage".into(), usage);
        }
        serde_json::to_vec(&Value::Object(body)).ok()
    }
}

/// Gathers an Anthropic messages stream's events.
#[derive(Default)]
pub struct MessageAssembler {
    message: Option<Map<String, Value>>,
    /// Content blocks by index, with a tool call's input JSON as text.
    blocks: Vec<(u64, Value, String)>,
    stopped: bool,
    failed: bool,
}

impl MessageAssembler {
    /// Takes one event: its name and its `data:` payload.
    pub fn on_event(&mut self, event: &[u8], data: &[u8]) {
        if self.failed {
            return;
        }
        let Ok(ev) = serde_json::from_slice::<Value>(data) else {
            self.failed = true;
            return;
        };
        let kind = match ev["type"].as_str() {
            Some(kind) => kind.as_bytes(),
            None => event,
        };
        match kind {
            b"message_start" => match ev["message"].as_object() {
                Some(m) => self.message = Some(m.clone()),
                None => self.failed = true,
            },
            b"content_block_start" => {
                let index = ev["index"].as_u64().unwrap_or(0);
                let block = ev["content_block"].clone();
                match self.blocks.iter_mut().find(|(i, _, _)| *i == index) {
                    Some(slot) => slot.1 = block,
                    None => self.blocks.push((index, block, String::new())),
                }
            }
            b"content_block_delta" => {
                let index = ev["index"].as_u64().unwrap_or(0);
                let Some((_, block, json)) = self.blocks.iter_mut().find(|(i, _, _)| *i == index)
                else {
                    self.failed = true;
                    return;
                };
                let delta = &ev["delta"];
                let (field, fragment) = match delta["type"].as_str() {
                    Some("text_delta") => ("text", &delta["text"]),
                    Some("thinking_delta") => ("thinking", &delta["thinking"]),
                    Some("signature_delta") => ("signature", &delta["signature"]),
                    Some("input_json_delta") => {
                        json.push_str(delta["partial_json"].as_str().unwrap_or_default());
                        return;
                    }
                    _ => return,
                };
                let Some(fragment) = fragment.as_str() else {
                    return;
                };
                if let Some(b) = block.as_object_mut() {
                    let text = b.entry(field).or_insert_with(|| json!(""));
                    let joined = format!("{}{fragment}", text.as_str().unwrap_or_default());
                    *text = Value::String(joined);
                }
            }
            b"message_delta" => {
                let Some(m) = self.message.as_mut() else {
                    self.failed = true;
                    return;
                };
                for key in ["stop_reason", "stop_sequence"] {
                    if let Some(v) = ev["delta"].get(key) {
                        m.insert(key.into(), v.clone());
                    }
                }
                if let Some(usage) = ev["usage"].as_object() {
                    let merged = m.entry("usage").or_insert_with(|| json!({}));
                    if let Some(into) = merged.as_object_mut() {
                        for (k, v) in usage {
                            into.insert(k.clone(), v.clone());
                        }
                    }
                }
            }
            b"message_stop" => self.stopped = true,
            b"error" => self.failed = true,
            _ => {}
        }
    }

    /// The `message` the stream was, if it ended whole.
    pub fn finish(mut self) -> Option<Vec<u8>> {
        let mut message = self.message.take()?;
        if self.failed || !self.stopped {
            return None;
        }
        self.blocks.sort_by_key(|(i, _, _)| *i);
        let mut content = Vec::with_capacity(self.blocks.len());
        for (_, mut block, json) in self.blocks {
            if block["type"] == "tool_use" && !json.is_empty() {
                block["input"] = serde_json::from_str(&json).ok()?;
            }
            content.push(block);
        }
        message.insert("content".into(), Value::Array(content));
        serde_json::to_vec(&Value::Object(message)).ok()
    }
}

/// The entry for `index`, made when first seen.
fn slot<T: Default>(items: &mut Vec<(u64, T)>, index: u64) -> &mut T {
    let at = match items.iter().position(|(i, _)| *i == index) {
        Some(at) => at,
        None => {
            items.push((index, T::default()));
            items.len() - 1
        }
    };
    &mut items[at].1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assemble(chunks: &[Value]) -> Option<Value> {
        let mut a = ChatAssembler::default();
        for c in chunks {
            a.on_data(c.to_string().as_bytes());
        }
        a.on_data(b"[DONE]");
        a.finish().map(|b| serde_json::from_slice(&b).unwrap())
    }

    fn chunk(delta: Value, finish: Value) -> Value {
        json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 7, "model": "gpt-4o",
               "system_fingerprint": "fp_1", "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]})
    }

    #[test]
    fn text_deltas_and_the_usage_chunk_make_a_completion() {
        let got = assemble(&[
            chunk(json!({"role": "assistant", "content": ""}), Value::Null),
            chunk(json!({"content": "Hel"}), Value::Null),
            chunk(json!({"content": "lo"}), Value::Null),
            chunk(json!({}), json!("stop")),
            json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 7, "model": "gpt-4o", "choices": [],
                   "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}}),
        ])
        .unwrap();
        assert_eq!(
            got,
            json!({
                "id": "chatcmpl-1", "object": "chat.completion", "created": 7, "model": "gpt-4o",
                "system_fingerprint": "fp_1",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello", "refusal": null},
                             "logprobs": null, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
            })
        );
    }

    #[test]
    fn tool_calls_are_joined_by_their_index() {
        let got = assemble(&[
            chunk(json!({"role": "assistant", "content": null, "tool_calls": [
                {"index": 0, "id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]}), Value::Null),
            chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]}), Value::Null),
            chunk(json!({"tool_calls": [{"index": 1, "id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]}), Value::Null),
            chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}), Value::Null),
            chunk(json!({}), json!("tool_calls")),
        ])
        .unwrap();
        let message = &got["choices"][0]["message"];
        assert_eq!(message["content"], Value::Null);
        assert_eq!(
            message["tool_calls"],
            json!([
                {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}
            ])
        );
        assert_eq!(got["choices"][0]["finish_reason"], "tool_calls");
        assert!(got.get("usage").is_none());
    }

    #[test]
    fn streams_that_did_not_finish_or_failed_are_not_answers() {
        assert_eq!(
            assemble(&[chunk(json!({"content": "Hel"}), Value::Null)]),
            None
        );
        assert_eq!(
            assemble(&[
                chunk(json!({"content": "Hel"}), Value::Null),
                json!({"error": {"message": "upstream stream ended before the response was complete"}}),
                chunk(json!({}), json!("stop")),
            ]),
            None
        );
        let mut a = ChatAssembler::default();
        a.on_data(b"{not json");
        a.on_data(chunk(json!({}), json!("stop")).to_string().as_bytes());
        assert_eq!(a.finish(), None);
        assert_eq!(assemble(&[]), None);
    }

    fn messages(events: &[(&str, Value)]) -> Option<Value> {
        let mut a = MessageAssembler::default();
        for (name, data) in events {
            a.on_event(name.as_bytes(), data.to_string().as_bytes());
        }
        a.finish().map(|b| serde_json::from_slice(&b).unwrap())
    }

    fn message_start() -> (&'static str, Value) {
        (
            "message_start",
            json!({"type": "message_start", "message": {
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 12, "output_tokens": 1}}}),
        )
    }

    #[test]
    fn a_messages_stream_makes_its_message() {
        let got = messages(&[
            message_start(),
            ("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})),
            ("ping", json!({"type": "ping"})),
            ("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel"}})),
            ("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "lo"}})),
            ("content_block_stop", json!({"type": "content_block_stop", "index": 0})),
            ("content_block_start", json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}})),
            ("content_block_delta", json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"city\":"}})),
            ("content_block_delta", json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "\"Paris\"}"}})),
            ("content_block_stop", json!({"type": "content_block_stop", "index": 1})),
            ("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null}, "usage": {"output_tokens": 9}})),
            ("message_stop", json!({"type": "message_stop"})),
        ])
        .unwrap();
        assert_eq!(
            got,
            json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
                   "content": [{"type": "text", "text": "Hello"},
                               {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}],
                   "stop_reason": "tool_use", "stop_sequence": null,
                   "usage": {"input_tokens": 12, "output_tokens": 9}})
        );
    }

    #[test]
    fn a_messages_stream_that_did_not_end_or_failed_is_no_message() {
        let text = (
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        );
        assert_eq!(messages(&[message_start(), text.clone()]), None);
        assert_eq!(
            messages(&[
                message_start(),
                text.clone(),
                (
                    "error",
                    json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
                ),
                ("message_stop", json!({"type": "message_stop"})),
            ]),
            None
        );
        assert_eq!(
            messages(&[("message_stop", json!({"type": "message_stop"}))]),
            None
        );
        let bad_input = (
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "t", "name": "f", "input": {}}}),
        );
        assert_eq!(
            messages(&[
                message_start(),
                bad_input,
                (
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "{\"cut"}})
                ),
                ("message_stop", json!({"type": "message_stop"})),
            ]),
            None
        );
    }
}
