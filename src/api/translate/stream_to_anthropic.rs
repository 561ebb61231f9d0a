//! OpenAI `chat.completion.chunk` stream → Anthropic messages SSE stream.
//!
//! Anthropic's stream is a protocol of nested blocks: `message_start`, then for
//! each content block `content_block_start`, deltas and `content_block_stop`,
//! then `message_delta` (stop reason, usage) and `message_stop`. OpenAI's is a
//! flat list of deltas. The translator opens a block when the kind of delta
//! changes (text, or a new tool-call index) and closes it when the next one
//! opens or the choice finishes.
//!
//! OpenAI reports usage in a last chunk *after* the one with `finish_reason`,
//! so `message_delta` waits for `[DONE]` (or [`OpenAiToAnthropicStream::finish`]);
//! holding back one small event is the only delay this adds.

use sonic_rs::{json, JsonContainerTrait, JsonValueTrait, Value};

use super::response::anthropic_stop_reason;
use super::{swap_id_prefix, TokenUsage, TranslateError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpenBlock {
    None,
    Text { index: u64 },
    ToolUse { index: u64, openai_index: u64 },
}

/// Translates one OpenAI stream, chunk by chunk, into Anthropic events.
#[derive(Debug)]
pub struct OpenAiToAnthropicStream {
    client_model: String,
    started: bool,
    ended: bool,
    open_block: OpenBlock,
    next_block_index: u64,
    /// OpenAI tool-call indices only grow; an older one cannot be reopened
    /// because its Anthropic block is already closed.
    last_tool_index: Option<u64>,
    stop_reason: Option<&'static str>,
    usage: TokenUsage,
    cached_tokens: u64,
}

impl OpenAiToAnthropicStream {
    /// `client_model` is the model name the Anthropic client asked for.
    pub fn new(client_model: &str) -> Self {
        Self {
            client_model: client_model.to_owned(),
            started: false,
            ended: false,
            open_block: OpenBlock::None,
            next_block_index: 0,
            last_tool_index: None,
            stop_reason: None,
            usage: TokenUsage::default(),
            cached_tokens: 0,
        }
    }

    /// Usage the upstream reported so far (all of it once the stream ended).
    pub fn usage(&self) -> TokenUsage {
        self.usage
    }

    /// Feeds the `data:` payload of one OpenAI SSE event (a JSON chunk or
    /// `[DONE]`), appending complete Anthropic SSE events to `out`.
    pub fn on_data(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), TranslateError> {
        if self.ended {
            return Ok(());
        }
        let data = data.trim_ascii();
        if data == b"[DONE]" {
            self.end_message(out);
            return Ok(());
        }
        let chunk: Value =
            sonic_rs::from_slice(data).map_err(|e| TranslateError::Json(e.to_string()))?;
        if chunk["error"].is_object() {
            let message = chunk["error"]["message"]
                .as_str()
                .unwrap_or("upstream stream error");
            self.end_with_error(message, out);
            return Ok(());
        }
        if !self.started {
            self.start_message(chunk["id"].as_str().unwrap_or_default(), out);
        }
        if chunk["usage"].is_object() {
            let usage = &chunk["usage"];
            self.usage.input_tokens = usage["prompt_tokens"].as_u64().unwrap_or(0);
            self.usage.output_tokens = usage["completion_tokens"].as_u64().unwrap_or(0);
            self.cached_tokens = usage["prompt_tokens_details"]["cached_tokens"]
                .as_u64()
                .unwrap_or(0);
        }
        // The gateway never asks for `n > 1`, so only the first choice exists.
        let Some(choice) = chunk["choices"].as_array().and_then(|c| c.first()) else {
            return Ok(());
        };
        let delta = &choice["delta"];
        for text in [delta["content"].as_str(), delta["refusal"].as_str()]
            .into_iter()
            .flatten()
            .filter(|t| !t.is_empty())
        {
            self.text_delta(text, out);
        }
        for call in delta["tool_calls"]
            .as_array()
            .map(|a| a.as_slice())
            .unwrap_or_default()
        {
            self.tool_call_delta(call, out)?;
        }
        if let Some(finish_reason) = choice["finish_reason"].as_str() {
            self.close_block(out);
            self.stop_reason = Some(anthropic_stop_reason(Some(finish_reason)));
        }
        Ok(())
    }

    /// Called when the upstream stream ends. After `[DONE]` this writes
    /// nothing. A stream that finished its choice but lost `[DONE]` is closed
    /// normally; one cut before finishing ends with an Anthropic `error`
    /// event, so the client does not take a truncated answer for a whole one.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        if self.stop_reason.is_some() {
            self.end_message(out);
        } else {
            self.end_with_error(
                "upstream stream ended before the response was complete",
                out,
            );
        }
    }

    fn start_message(&mut self, upstream_id: &str, out: &mut Vec<u8>) {
        self.started = true;
        let id = swap_id_prefix(upstream_id, "chatcmpl-", "msg_");
        // OpenAI only knows the prompt size at the end; message_delta carries it.
        write_event(
            out,
            "message_start",
            &json!({
                "type": "message_start",
                "message": {
                    "id": id,
                    "type": "message",
                    "role": "assistant",
                    "model": self.client_model.as_str(),
                    "content": [],
                    "stop_reason": null,
                    "stop_sequence": null,
                    "usage": {"input_tokens": 0, "output_tokens": 0},
                },
            }),
        );
    }

    fn text_delta(&mut self, text: &str, out: &mut Vec<u8>) {
        let index = match self.open_block {
            OpenBlock::Text { index } => index,
            _ => {
                self.close_block(out);
                let index = self.open(out, json!({"type": "text", "text": ""}));
                self.open_block = OpenBlock::Text { index };
                index
            }
        };
        write_event(
            out,
            "content_block_delta",
            &json!({
                "type": "content_block_delta",
                "index": index,
                "delta": {"type": "text_delta", "text": text},
            }),
        );
    }

    fn tool_call_delta(&mut self, call: &Value, out: &mut Vec<u8>) -> Result<(), TranslateError> {
        let openai_index = call["index"].as_u64().unwrap_or(0);
        let index = match self.open_block {
            OpenBlock::ToolUse {
                index,
                openai_index: open,
            } if open == openai_index => index,
            _ => {
                if self
                    .last_tool_index
                    .is_some_and(|last| openai_index <= last)
                {
                    return Err(TranslateError::Unsupported(format!(
                        "tool call {openai_index} resumed after a later one began"
                    )));
                }
                self.close_block(out);
                let function = &call["function"];
                let index = self.open(
                    out,
                    json!({
                        "type": "tool_use",
                        "id": call["id"].as_str().unwrap_or_default(),
                        "name": function["name"].as_str().unwrap_or_default(),
                        "input": {},
                    }),
                );
                self.open_block = OpenBlock::ToolUse {
                    index,
                    openai_index,
                };
                self.last_tool_index = Some(openai_index);
                index
            }
        };
        let fragment = call["function"]["arguments"].as_str().unwrap_or_default();
        if !fragment.is_empty() {
            write_event(
                out,
                "content_block_delta",
                &json!({
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": "input_json_delta", "partial_json": fragment},
                }),
            );
        }
        Ok(())
    }

    fn open(&mut self, out: &mut Vec<u8>, content_block: Value) -> u64 {
        let index = self.next_block_index;
        self.next_block_index += 1;
        write_event(
            out,
            "content_block_start",
            &json!({
                "type": "content_block_start",
                "index": index,
                "content_block": content_block,
            }),
        );
        index
    }

    fn close_block(&mut self, out: &mut Vec<u8>) {
        let index = match self.open_block {
            OpenBlock::None => return,
            OpenBlock::Text { index } | OpenBlock::ToolUse { index, .. } => index,
        };
        self.open_block = OpenBlock::None;
        write_event(
            out,
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": index}),
        );
    }

    fn end_message(&mut self, out: &mut Vec<u8>) {
        if !self.started {
            self.start_message("", out);
        }
        self.close_block(out);
        self.ended = true;
        let cached = self.cached_tokens.min(self.usage.input_tokens);
        write_event(
            out,
            "message_delta",
            &json!({
                "type": "message_delta",
                "delta": {"stop_reason": self.stop_reason.unwrap_or("end_turn"), "stop_sequence": null},
                "usage": {
                    "input_tokens": self.usage.input_tokens - cached,
                    "output_tokens": self.usage.output_tokens,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": cached,
                },
            }),
        );
        write_event(out, "message_stop", &json!({"type": "message_stop"}));
    }

    fn end_with_error(&mut self, message: &str, out: &mut Vec<u8>) {
        self.ended = true;
        write_event(
            out,
            "error",
            &json!({
                "type": "error",
                "error": {"type": "api_error", "message": message},
            }),
        );
    }
}

fn write_event(out: &mut Vec<u8>, name: &str, data: &Value) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    // Writing a `Value` tree into a Vec cannot fail.
    sonic_rs::to_writer(&mut *out, data).expect("a sonic_rs::Value always serializes");
    out.extend_from_slice(b"\n\n");
}
