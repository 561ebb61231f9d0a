//! An OpenAI chat stream put back together as the whole answer it streamed,
//! so that a recorded stream can answer a later request that does not
//! stream (issue 17: "a non-streamed request can be answered from a
//! recorded stream"). Sans-IO: each `data:` payload in, one
//! `chat.completion` body out.
//!
//! Per choice (by `index`): the `content` deltas joined, the `refusal`
//! deltas joined, each tool call (by its `index`) with its id, type and
//! name from the chunk that opened it and its `arguments` fragments joined,
//! and the last `finish_reason`. The response's `id`, `created`, `model`
//! and `system_fingerprint` are the chunks' (the first that says each);
//! `usage` is the usage chunk's, when the stream had one.
//!
//! Invariants: the result is JSON whenever [`ChatAssembler::finish`] gives
//! one; a stream that did not finish (no `finish_reason` on a choice) or
//! said an error gives none, as such a stream is not an answer to keep.

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
}
