//! Bedrock ConverseStream events (decoded from the event-stream framing by
//! `crate::api::eventstream`) → OpenAI `chat.completion.chunk` SSE.
//!
//! Each event maps to at most one chunk, written as it arrives, as
//! [`super::AnthropicToOpenAiStream`] does for Anthropic: `messageStart`
//! (or the first content) gives the `role: assistant` chunk; a text delta a
//! `content` delta; a `toolUse` block start a `tool_calls` entry (index, id,
//! name) and its `input` fragments follow under the same index;
//! `messageStop` the `finish_reason` chunk. Bedrock sends usage after the
//! stop, in `metadata`, so that event ends the stream: the usage chunk when
//! the client asked for `include_usage`, then `[DONE]`. An `exception`
//! message ends it with OpenAI's in-stream error object. Reasoning blocks
//! are skipped: chat completions have no place for them.
//!
//! Invariant: the state held is the stream's id, the tool-block index map,
//! the stop reason and the usage, never the stream.

use sonic_rs::{JsonValueTrait, Value};

use super::openai_chunks::ChunkWriter;
use super::response_bedrock::bedrock_finish_reason;
use super::wire::{ToolCallDelta, ToolCallFunctionDelta};
use super::{StreamEnd, TokenUsage, TranslateError};
use crate::api::eventstream::{Kind, Message};
use crate::api::usage::bedrock_usage;

/// Translates one ConverseStream response, message by message.
#[derive(Debug)]
pub struct BedrockToOpenAiStream {
    writer: ChunkWriter,
    ended: bool,
    /// Bedrock `contentBlockIndex` → OpenAI tool-call index.
    tool_blocks: Vec<(u64, u64)>,
    finish_reason: Option<&'static str>,
    usage: TokenUsage,
}

/// An exception's type in OpenAI's error vocabulary.
fn error_type(exception: &str) -> &'static str {
    match exception {
        "throttlingException" => "rate_limit_error",
        "validationException" => "invalid_request_error",
        _ => "server_error",
    }
}

impl BedrockToOpenAiStream {
    /// `client_model`: the model the client asked for; `request_id`: the
    /// response's `x-amzn-RequestId`, which becomes the chunk id (Bedrock's
    /// stream has none of its own); `include_usage`: the client's
    /// `stream_options.include_usage`.
    pub fn new(client_model: &str, request_id: &str, include_usage: bool) -> Self {
        Self {
            writer: ChunkWriter::new(
                client_model,
                format!("chatcmpl-{request_id}"),
                include_usage,
            ),
            ended: false,
            tool_blocks: Vec::new(),
            finish_reason: None,
            usage: TokenUsage::default(),
        }
    }

    /// Usage the upstream reported (once `metadata` arrived).
    pub fn usage(&self) -> TokenUsage {
        self.usage
    }

    /// Feeds one decoded message; appends complete `data: …\n\n` lines.
    pub fn on_message(
        &mut self,
        message: &Message,
        out: &mut Vec<u8>,
    ) -> Result<(), TranslateError> {
        if self.ended {
            return Ok(());
        }
        let kind = message.kind();
        if matches!(kind, Kind::Unknown) {
            return Ok(());
        }
        let data: Value = if message.payload.is_empty() {
            Value::default()
        } else {
            sonic_rs::from_slice(&message.payload)
                .map_err(|e| TranslateError::Json(e.to_string()))?
        };
        match kind {
            Kind::Event("messageStart") => self.writer.start(out),
            Kind::Event("contentBlockStart") => {
                self.writer.start(out);
                let tool = &data["start"]["toolUse"];
                if tool.is_object() {
                    let tool_index = self.tool_blocks.len() as u64;
                    let block = data["contentBlockIndex"].as_u64().unwrap_or(0);
                    self.tool_blocks.push((block, tool_index));
                    let call = ToolCallDelta {
                        index: tool_index,
                        id: Some(tool["toolUseId"].as_str().unwrap_or_default()),
                        kind: Some("function"),
                        function: ToolCallFunctionDelta {
                            name: Some(tool["name"].as_str().unwrap_or_default()),
                            arguments: "",
                        },
                    };
                    self.writer.tool_call(call, out);
                }
            }
            Kind::Event("contentBlockDelta") => {
                self.writer.start(out);
                let delta = &data["delta"];
                if let Some(text) = delta["text"].as_str() {
                    self.writer.text(text, out);
                } else if let Some(fragment) = delta["toolUse"]["input"].as_str() {
                    let block = data["contentBlockIndex"].as_u64().unwrap_or(0);
                    let tool = self.tool_blocks.iter().find(|(b, _)| *b == block);
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
            }
            Kind::Event("messageStop") => {
                self.writer.start(out);
                let reason = bedrock_finish_reason(data["stopReason"].as_str());
                self.finish_reason = Some(reason);
                self.writer.finish_reason(reason, out);
            }
            Kind::Event("metadata") => {
                self.usage = bedrock_usage(&message.payload).unwrap_or_default();
                self.end_stream(out);
            }
            Kind::Exception(exception) => {
                let message = data["message"].as_str().unwrap_or(exception);
                self.end_with_error(error_type(exception), message, out);
            }
            Kind::Error { code, message } => {
                let message = if message.is_empty() { code } else { message };
                self.end_with_error("server_error", message, out);
            }
            // contentBlockStop and events added later carry nothing to send.
            _ => {}
        }
        Ok(())
    }

    fn end_stream(&mut self, out: &mut Vec<u8>) {
        self.ended = true;
        self.writer.done(self.usage, out);
    }

    fn end_with_error(&mut self, kind: &str, message: &str, out: &mut Vec<u8>) {
        self.ended = true;
        self.writer.error(kind, message, out);
    }
}

/// A stream whose `messageStop` arrived but whose `metadata` was lost is
/// closed as a whole answer (usage as known); one cut earlier ends with an
/// error chunk.
impl StreamEnd for BedrockToOpenAiStream {
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
        self.end_with_error("server_error", why, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::eventstream::{encode, event, Decoder, Header, HeaderValue};

    /// The data lines of `out`, each parsed (`[DONE]` kept as a string).
    fn lines(out: &[u8]) -> Vec<serde_json::Value> {
        let text = std::str::from_utf8(out).unwrap();
        assert!(text.ends_with("\n\n"), "{text}");
        text.split_terminator("\n\n")
            .map(|l| {
                let data = l.strip_prefix("data: ").expect("data line");
                serde_json::from_str(data)
                    .unwrap_or_else(|_| serde_json::Value::String(data.into()))
            })
            .collect()
    }

    /// A text answer then a tool call, with usage: Bedrock's documented
    /// event order (messageStart, block start/delta/stop, messageStop,
    /// metadata), framed and decoded one byte at a time as it would arrive.
    fn conversation() -> Vec<Message> {
        let events: [(&str, &str); 10] = [
            ("messageStart", r#"{"role":"assistant"}"#),
            (
                "contentBlockDelta",
                r#"{"contentBlockIndex":0,"delta":{"text":"Let me "}}"#,
            ),
            (
                "contentBlockDelta",
                r#"{"contentBlockIndex":0,"delta":{"text":"check."}}"#,
            ),
            ("contentBlockStop", r#"{"contentBlockIndex":0}"#),
            (
                "contentBlockStart",
                r#"{"contentBlockIndex":1,"start":{"toolUse":{"toolUseId":"tooluse_1","name":"weather"}}}"#,
            ),
            (
                "contentBlockDelta",
                r#"{"contentBlockIndex":1,"delta":{"toolUse":{"input":"{\"city\":"}}}"#,
            ),
            (
                "contentBlockDelta",
                r#"{"contentBlockIndex":1,"delta":{"toolUse":{"input":"\"Paris\"}"}}}"#,
            ),
            ("contentBlockStop", r#"{"contentBlockIndex":1}"#),
            ("messageStop", r#"{"stopReason":"tool_use"}"#),
            (
                "metadata",
                r#"{"usage":{"inputTokens":20,"outputTokens":12,"totalTokens":32,"cacheReadInputTokens":5},"metrics":{"latencyMs":300}}"#,
            ),
        ];
        let wire: Vec<u8> = events
            .iter()
            .flat_map(|(t, p)| encode(&event(t, p.as_bytes())).unwrap())
            .collect();
        let mut decoder = Decoder::default();
        let mut messages = Vec::new();
        for b in wire.chunks(1) {
            decoder.feed(b, |m| messages.push(m)).unwrap();
        }
        assert!(decoder.is_idle());
        messages
    }

    #[test]
    fn a_conversation_becomes_openai_chunks() {
        let mut t = BedrockToOpenAiStream::new("gpt-4o", "req-1", true);
        let mut out = Vec::new();
        for m in conversation() {
            t.on_message(&m, &mut out).unwrap();
        }
        let got = lines(&out);
        let delta = |i: usize| &got[i]["choices"][0]["delta"];
        assert_eq!(got.len(), 9, "{got:#?}");
        assert_eq!(got[0]["id"], "chatcmpl-req-1");
        assert_eq!(got[0]["model"], "gpt-4o");
        assert_eq!(got[0]["object"], "chat.completion.chunk");
        assert_eq!(delta(0)["role"], "assistant");
        assert_eq!(delta(1)["content"], "Let me ");
        assert_eq!(delta(2)["content"], "check.");
        let call = &delta(3)["tool_calls"][0];
        assert_eq!(
            (
                call["index"].as_u64(),
                &call["id"],
                &call["function"]["name"]
            ),
            (Some(0), &"tooluse_1".into(), &"weather".into())
        );
        assert_eq!(
            delta(4)["tool_calls"][0]["function"]["arguments"],
            "{\"city\":"
        );
        assert_eq!(
            delta(5)["tool_calls"][0]["function"]["arguments"],
            "\"Paris\"}"
        );
        assert_eq!(delta(5)["tool_calls"][0]["index"], 0);
        assert_eq!(got[6]["choices"][0]["finish_reason"], "tool_calls");
        // Every chunk but the usage one says `usage: null`, as OpenAI does.
        assert!(got[..7]
            .iter()
            .all(|c| c["usage"].is_null() && c.get("usage").is_some()));
        assert_eq!(got[7]["choices"].as_array().map(Vec::len), Some(0));
        assert_eq!(got[7]["usage"]["prompt_tokens"], 25);
        assert_eq!(got[7]["usage"]["completion_tokens"], 12);
        assert_eq!(got[7]["usage"]["total_tokens"], 37);
        assert_eq!(got[7]["usage"]["prompt_tokens_details"]["cached_tokens"], 5);
        assert_eq!(got[8], "[DONE]");
        assert_eq!(t.usage(), TokenUsage::from_additive(20, 5, 0, 12));
        // Nothing after the end.
        let before = out.len();
        t.on_message(
            &event("contentBlockDelta", br#"{"delta":{"text":"late"}}"#),
            &mut out,
        )
        .unwrap();
        t.finish(&mut out);
        assert_eq!(out.len(), before);
    }

    #[test]
    fn without_include_usage_no_usage_chunk() {
        let mut t = BedrockToOpenAiStream::new("m", "r", false);
        let mut out = Vec::new();
        for m in conversation() {
            t.on_message(&m, &mut out).unwrap();
        }
        let got = lines(&out);
        assert_eq!(got.len(), 8);
        assert!(got[..7].iter().all(|c| c.get("usage").is_none()));
        assert_eq!(got[7], "[DONE]");
    }

    #[test]
    fn stop_reasons() {
        for (bedrock, openai) in [
            ("end_turn", "stop"),
            ("stop_sequence", "stop"),
            ("max_tokens", "length"),
            ("tool_use", "tool_calls"),
            ("guardrail_intervened", "content_filter"),
            ("content_filtered", "content_filter"),
        ] {
            let mut t = BedrockToOpenAiStream::new("m", "r", false);
            let mut out = Vec::new();
            let stop = format!(r#"{{"stopReason":"{bedrock}"}}"#);
            t.on_message(&event("messageStop", stop.as_bytes()), &mut out)
                .unwrap();
            let got = lines(&out);
            assert_eq!(got[1]["choices"][0]["finish_reason"], openai, "{bedrock}");
        }
    }

    #[test]
    fn lost_metadata_still_ends_whole_and_a_cut_stream_ends_in_error() {
        let messages = conversation();
        let mut t = BedrockToOpenAiStream::new("m", "r", true);
        let mut out = Vec::new();
        for m in &messages[..9] {
            t.on_message(m, &mut out).unwrap();
        }
        t.finish(&mut out);
        let got = lines(&out);
        assert_eq!(got.last().unwrap(), "[DONE]");
        assert_eq!(got[got.len() - 2]["usage"]["prompt_tokens"], 0);

        let mut t = BedrockToOpenAiStream::new("m", "r", true);
        let mut out = Vec::new();
        for m in &messages[..3] {
            t.on_message(m, &mut out).unwrap();
        }
        t.finish(&mut out);
        let got = lines(&out);
        assert_eq!(got.last().unwrap()["error"]["type"], "server_error");
        assert!(!String::from_utf8_lossy(&out).contains("[DONE]"));
    }

    #[test]
    fn exceptions_end_the_stream_with_an_openai_error() {
        let s = |n: &str, v: &str| Header {
            name: n.into(),
            value: HeaderValue::String(v.into()),
        };
        for (exception, kind) in [
            ("throttlingException", "rate_limit_error"),
            ("validationException", "invalid_request_error"),
            ("modelStreamErrorException", "server_error"),
        ] {
            let m = Message {
                headers: vec![
                    s(":message-type", "exception"),
                    s(":exception-type", exception),
                ],
                payload: br#"{"message":"it went wrong"}"#.to_vec(),
            };
            let mut t = BedrockToOpenAiStream::new("m", "r", false);
            let mut out = Vec::new();
            t.on_message(&event("messageStart", b"{}"), &mut out)
                .unwrap();
            t.on_message(&m, &mut out).unwrap();
            let got = lines(&out);
            assert_eq!(got[1]["error"]["type"], kind);
            assert_eq!(got[1]["error"]["message"], "it went wrong");
            t.finish(&mut out);
            assert_eq!(lines(&out).len(), 2, "nothing after the error");
        }
    }

    #[test]
    fn a_payload_that_is_not_json_is_an_error_and_unknown_messages_are_skipped() {
        let mut t = BedrockToOpenAiStream::new("m", "r", false);
        let mut out = Vec::new();
        assert!(matches!(
            t.on_message(&event("contentBlockDelta", b"{not json"), &mut out),
            Err(TranslateError::Json(_))
        ));
        t.on_message(&Message::default(), &mut out).unwrap();
        t.on_message(&event("someFutureEvent", br#"{"x":1}"#), &mut out)
            .unwrap();
        // A future event still opens nothing it should not.
        assert!(out.is_empty());
    }
}
