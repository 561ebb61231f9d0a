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

use sonic_rs::{JsonContainerTrait, JsonValueTrait, Value};

use super::response::anthropic_stop_reason;
use super::wire::{
    AnthropicDelta, AnthropicEvent, AnthropicMessage, AnthropicUsage, EmptyObject, ErrorDetail,
    StopDelta, StreamBlockStart,
};
use super::{swap_id_prefix, StreamEnd, TokenUsage, TranslateError};

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
            self.usage = TokenUsage::from_inclusive(
                usage["prompt_tokens"].as_u64().unwrap_or(0),
                usage["prompt_tokens_details"]["cached_tokens"]
                    .as_u64()
                    .unwrap_or(0),
                usage["completion_tokens"].as_u64().unwrap_or(0),
            );
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

    fn start_message(&mut self, upstream_id: &str, out: &mut Vec<u8>) {
        self.started = true;
        let id = swap_id_prefix(upstream_id, "chatcmpl-", "msg_");
        // OpenAI only knows the prompt size at the end; message_delta carries it.
        let message = AnthropicMessage {
            id: &id,
            kind: "message",
            role: "assistant",
            model: &self.client_model,
            content: &[],
            stop_reason: None,
            stop_sequence: None,
            usage: AnthropicUsage::default(),
        };
        write_event(out, &AnthropicEvent::MessageStart { message });
    }

    fn text_delta(&mut self, text: &str, out: &mut Vec<u8>) {
        let index = match self.open_block {
            OpenBlock::Text { index } => index,
            _ => {
                self.close_block(out);
                let index = self.open(out, StreamBlockStart::Text { text: "" });
                self.open_block = OpenBlock::Text { index };
                index
            }
        };
        let delta = AnthropicDelta::TextDelta { text };
        write_event(out, &AnthropicEvent::ContentBlockDelta { index, delta });
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
                let block = StreamBlockStart::ToolUse {
                    id: call["id"].as_str().unwrap_or_default(),
                    name: call["function"]["name"].as_str().unwrap_or_default(),
                    input: EmptyObject {},
                };
                let index = self.open(out, block);
                self.open_block = OpenBlock::ToolUse {
                    index,
                    openai_index,
                };
                self.last_tool_index = Some(openai_index);
                index
            }
        };
        let partial_json = call["function"]["arguments"].as_str().unwrap_or_default();
        if !partial_json.is_empty() {
            let delta = AnthropicDelta::InputJsonDelta { partial_json };
            write_event(out, &AnthropicEvent::ContentBlockDelta { index, delta });
        }
        Ok(())
    }

    fn open(&mut self, out: &mut Vec<u8>, content_block: StreamBlockStart<'_>) -> u64 {
        let index = self.next_block_index;
        self.next_block_index += 1;
        write_event(
            out,
            &AnthropicEvent::ContentBlockStart {
                index,
                content_block,
            },
        );
        index
    }

    fn close_block(&mut self, out: &mut Vec<u8>) {
        let index = match self.open_block {
            OpenBlock::None => return,
            OpenBlock::Text { index } | OpenBlock::ToolUse { index, .. } => index,
        };
        self.open_block = OpenBlock::None;
        write_event(out, &AnthropicEvent::ContentBlockStop { index });
    }

    fn end_message(&mut self, out: &mut Vec<u8>) {
        if !self.started {
            self.start_message("", out);
        }
        self.close_block(out);
        self.ended = true;
        let delta = StopDelta {
            stop_reason: self.stop_reason.unwrap_or("end_turn"),
            stop_sequence: None,
        };
        let usage = AnthropicUsage::new(self.usage);
        write_event(out, &AnthropicEvent::MessageDelta { delta, usage });
        write_event(out, &AnthropicEvent::MessageStop);
    }

    fn end_with_error(&mut self, message: &str, out: &mut Vec<u8>) {
        self.ended = true;
        let error = ErrorDetail {
            kind: "api_error",
            message,
        };
        write_event(out, &AnthropicEvent::Error { error });
    }
}

fn write_event(out: &mut Vec<u8>, event: &AnthropicEvent<'_>) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(event.name().as_bytes());
    out.extend_from_slice(b"\ndata: ");
    // Events have string keys and integer numbers: serializing into a Vec cannot fail.
    sonic_rs::to_writer(&mut *out, event).expect("stream events always serialize");
    out.extend_from_slice(b"\n\n");
}

/// After `[DONE]` nothing is written; a stream that finished its choice but
/// lost `[DONE]` is closed normally; one cut earlier ends with an Anthropic
/// `error` event.
impl StreamEnd for OpenAiToAnthropicStream {
    fn ended(&self) -> bool {
        self.ended
    }
    fn stopped(&self) -> bool {
        self.stop_reason.is_some()
    }
    fn end_whole(&mut self, out: &mut Vec<u8>) {
        self.end_message(out);
    }
    fn end_cut(&mut self, why: &str, out: &mut Vec<u8>) {
        self.end_with_error(why, out);
    }
}
