//! Anthropic messages SSE stream → OpenAI `chat.completion.chunk` stream.
//!
//! Every Anthropic event maps to at most one OpenAI chunk, written as soon as
//! it arrives. The first chunk carries `role: assistant`; text deltas become
//! `content` deltas; a tool_use block becomes a `tool_calls` entry (index, id,
//! name) followed by its argument fragments under the same index;
//! `message_delta` becomes the `finish_reason` chunk; `message_stop` becomes
//! the usage chunk (when the client asked for `include_usage`) and `[DONE]`.
//! Thinking blocks are skipped: chat completions have no place for them.

use sonic_rs::{JsonValueTrait, Value};

use super::openai_chunks::ChunkWriter;
use super::response::{openai_finish_reason, token_usage};
use super::wire::{ToolCallDelta, ToolCallFunctionDelta};
use super::{swap_id_prefix, StreamEnd, TokenUsage, TranslateError};

/// Translates one Anthropic stream, event by event, into OpenAI chunks.
#[derive(Debug)]
pub struct AnthropicToOpenAiStream {
    /// Its id is set from `message_start`'s.
    writer: ChunkWriter,
    ended: bool,
    /// Anthropic block index → OpenAI tool-call index, for the tool_use blocks.
    tool_blocks: Vec<(u64, u64)>,
    finish_reason: Option<&'static str>,
    usage: TokenUsage,
}

impl AnthropicToOpenAiStream {
    /// `client_model` is the model name the OpenAI client asked for;
    /// `include_usage` is its `stream_options.include_usage` (see
    /// [`super::openai_stream_wants_usage`]).
    pub fn new(client_model: &str, include_usage: bool) -> Self {
        Self {
            writer: ChunkWriter::new(client_model, String::new(), include_usage),
            ended: false,
            tool_blocks: Vec::new(),
            finish_reason: None,
            usage: TokenUsage::default(),
        }
    }

    /// Usage the upstream reported so far (all of it once the stream ended).
    pub fn usage(&self) -> TokenUsage {
        self.usage
    }

    /// Feeds one Anthropic SSE event: its `event:` name (may be empty, then
    /// the data's `type` is used) and its `data:` payload. Appends complete
    /// `data: …\n\n` lines to `out`.
    pub fn on_event(
        &mut self,
        event: &[u8],
        data: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), TranslateError> {
        if self.ended || event == b"ping" {
            return Ok(());
        }
        let data: Value =
            sonic_rs::from_slice(data).map_err(|e| TranslateError::Json(e.to_string()))?;
        let event = match std::str::from_utf8(event.trim_ascii()) {
            Ok(name) if !name.is_empty() => name,
            _ => data["type"].as_str().unwrap_or_default(),
        };
        match event {
            "message_start" => {
                let message = &data["message"];
                self.writer.id = swap_id_prefix(
                    message["id"].as_str().unwrap_or_default(),
                    "msg_",
                    "chatcmpl-",
                );
                self.record_usage(&message["usage"]);
                self.writer.start(out);
            }
            "content_block_start" => {
                self.writer.start(out);
                let block = &data["content_block"];
                match block["type"].as_str() {
                    Some("text") => self
                        .writer
                        .text(block["text"].as_str().unwrap_or_default(), out),
                    Some("tool_use") => {
                        let tool_index = self.tool_blocks.len() as u64;
                        self.tool_blocks
                            .push((data["index"].as_u64().unwrap_or(0), tool_index));
                        let call = ToolCallDelta {
                            index: tool_index,
                            id: Some(block["id"].as_str().unwrap_or_default()),
                            kind: Some("function"),
                            function: ToolCallFunctionDelta {
                                name: Some(block["name"].as_str().unwrap_or_default()),
                                arguments: "",
                            },
                        };
                        self.writer.tool_call(call, out);
                    }
                    _ => {}
                }
            }
            "content_block_delta" => {
                self.writer.start(out);
                let delta = &data["delta"];
                match delta["type"].as_str() {
                    Some("text_delta") => self
                        .writer
                        .text(delta["text"].as_str().unwrap_or_default(), out),
                    Some("input_json_delta") => {
                        let block_index = data["index"].as_u64().unwrap_or(0);
                        let fragment = delta["partial_json"].as_str().unwrap_or_default();
                        let tool = self
                            .tool_blocks
                            .iter()
                            .find(|(block, _)| *block == block_index);
                        if let (Some(&(_, tool_index)), false) = (tool, fragment.is_empty()) {
                            let call = ToolCallDelta {
                                index: tool_index,
                                id: None,
                                kind: None,
                                function: ToolCallFunctionDelta {
                                    name: None,
                                    arguments: fragment,
                                },
                            };
                            self.writer.tool_call(call, out);
                        }
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                self.writer.start(out);
                self.record_usage(&data["usage"]);
                let finish_reason = openai_finish_reason(data["delta"]["stop_reason"].as_str());
                self.finish_reason = Some(finish_reason);
                self.writer.finish_reason(finish_reason, out);
            }
            "message_stop" => self.end_stream(out),
            "error" => {
                let message = data["error"]["message"]
                    .as_str()
                    .unwrap_or("upstream stream error");
                let error_type = data["error"]["type"].as_str().unwrap_or("api_error");
                self.end_with_error(error_type, message, out);
            }
            _ => {}
        }
        Ok(())
    }

    /// Anthropic reports input usage in `message_start` and (in newer API
    /// versions) again in `message_delta`; output usage is cumulative.
    fn record_usage(&mut self, usage: &Value) {
        if usage["input_tokens"].is_number() {
            // A restated input replaces the earlier counts, cache ones too.
            self.usage = TokenUsage {
                output_tokens: self.usage.output_tokens,
                ..token_usage(usage)
            };
        }
        if let Some(output) = usage["output_tokens"].as_u64() {
            self.usage.output_tokens = output;
        }
    }

    fn end_stream(&mut self, out: &mut Vec<u8>) {
        self.ended = true;
        self.writer.done(self.usage, out);
    }

    fn end_with_error(&mut self, anthropic_type: &str, message: &str, out: &mut Vec<u8>) {
        self.ended = true;
        let error_type = match anthropic_type {
            "overloaded_error" | "api_error" => "server_error",
            other => other,
        };
        self.writer.error(error_type, message, out);
    }
}

/// After `message_stop` nothing is written; a stream that delivered its stop
/// reason but lost `message_stop` is closed normally; one cut earlier ends
/// with an error chunk.
impl StreamEnd for AnthropicToOpenAiStream {
    fn ended(&self) -> bool {
        self.ended
    }
    fn stopped(&self) -> bool {
        self.finish_reason.is_some()
    }
    fn end_whole(&mut self, out: &mut Vec<u8>) {
        self.end_stream(out);
    }
    fn end_cut(&mut self, why: &str, out: &mut Vec<u8>) {
        self.end_with_error("api_error", why, out);
    }
}
