//! Gemini `streamGenerateContent?alt=sse` → OpenAI `chat.completion.chunk`
//! SSE.
//!
//! Each SSE `data:` payload is a whole `GenerateContentResponse`: the
//! first candidate's parts since the last event, and `finishReason` and
//! `usageMetadata` once known. The first event gives the `role: assistant`
//! chunk; each text part a `content` delta; each `functionCall` part a
//! whole `tool_calls` entry (Gemini sends a call whole: id, name and
//! arguments in one chunk, its id made up as `call_{i}` when Gemini gives
//! none, as in `response_gemini`); `finishReason` the `finish_reason`
//! chunk. Thought parts are skipped. A blocked prompt (no candidates,
//! `promptFeedback.blockReason`) stops with `content_filter`. A payload
//! with an `error` object ends the stream with OpenAI's in-stream error.
//!
//! Gemini's stream has no end event of its own: the finish reason arriving
//! means the answer is whole, and the usage may come with it or in a later
//! event (each event restates the counts so far). So the end (the usage
//! chunk when the client asked for `include_usage`, then `[DONE]`) is
//! written by [`StreamEnd::finish`] when the upstream stream ends: as a
//! whole answer once a finish reason came, as a cut one before.
//!
//! Invariant: the state held is the chunk writer's identity, the count of
//! tool calls, the finish reason and the last usage, never the stream.

use sonic_rs::{JsonContainerTrait, JsonValueTrait, Value};

use super::openai_chunks::ChunkWriter;
use super::response_gemini::{gemini_finish_reason, gemini_token_usage};
use super::wire::{ToolCallDelta, ToolCallFunctionDelta};
use super::{StreamEnd, TokenUsage, TranslateError};

/// Translates one Gemini stream, event by event.
#[derive(Debug)]
pub struct GeminiToOpenAiStream {
    writer: ChunkWriter,
    ended: bool,
    tool_calls: u64,
    finish_reason: Option<&'static str>,
    usage: TokenUsage,
}

/// A Google error's `status` in OpenAI's error vocabulary.
fn error_type(status: Option<&str>) -> &'static str {
    match status {
        Some("RESOURCE_EXHAUSTED") => "rate_limit_error",
        Some("INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE") => {
            "invalid_request_error"
        }
        Some("PERMISSION_DENIED") => "permission_error",
        Some("UNAUTHENTICATED") => "authentication_error",
        Some("NOT_FOUND") => "not_found_error",
        _ => "server_error",
    }
}

impl GeminiToOpenAiStream {
    /// `client_model`: the model the client asked for; `request_id`: the
    /// chunk id's stand-in until the first event's `responseId` replaces
    /// it; `include_usage`: the client's `stream_options.include_usage`.
    pub fn new(client_model: &str, request_id: &str, include_usage: bool) -> Self {
        Self {
            writer: ChunkWriter::new(
                client_model,
                format!("chatcmpl-{request_id}"),
                include_usage,
            ),
            ended: false,
            tool_calls: 0,
            finish_reason: None,
            usage: TokenUsage::default(),
        }
    }

    /// Usage the upstream reported so far (all of it once it stopped).
    pub fn usage(&self) -> TokenUsage {
        self.usage
    }

    /// Feeds one SSE `data:` payload; appends complete `data: …\n\n` lines.
    pub fn on_data(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), TranslateError> {
        if self.ended {
            return Ok(());
        }
        let data: Value =
            sonic_rs::from_slice(data).map_err(|e| TranslateError::Json(e.to_string()))?;
        let error = &data["error"];
        if error.is_object() {
            let message = error["message"].as_str().unwrap_or("upstream stream error");
            self.end_with_error(error_type(error["status"].as_str()), message, out);
            return Ok(());
        }
        if let Some(usage) = data.get("usageMetadata").filter(|u| u.is_object()) {
            self.usage = gemini_token_usage(|field| usage[field].as_u64().unwrap_or(0));
        }
        if self.finish_reason.is_some() {
            // A late event restates the usage; the answer is complete.
            return Ok(());
        }
        if let Some(id) = data["responseId"].as_str() {
            if !self.writer.started() {
                self.writer.id = format!("chatcmpl-{id}");
            }
        }
        self.writer.start(out);
        let Some(candidate) = data["candidates"].as_array().and_then(|c| c.first()) else {
            if data["promptFeedback"]["blockReason"].is_str() {
                self.stop("content_filter", out);
            }
            return Ok(());
        };
        if let Some(parts) = candidate["content"]["parts"].as_array() {
            for part in parts.iter() {
                if part["thought"].as_bool() == Some(true) {
                    continue;
                }
                if let Some(text) = part["text"].as_str() {
                    self.writer.text(text, out);
                }
                let call = &part["functionCall"];
                if call.is_object() {
                    self.tool_call(call, out);
                }
            }
        }
        if let Some(reason) = candidate["finishReason"].as_str() {
            self.stop(gemini_finish_reason(Some(reason), self.tool_calls > 0), out);
        }
        Ok(())
    }

    fn tool_call(&mut self, call: &Value, out: &mut Vec<u8>) {
        let index = self.tool_calls;
        self.tool_calls += 1;
        let made_up;
        let id = match call["id"].as_str() {
            Some(id) => id,
            None => {
                made_up = format!("call_{index}");
                &made_up
            }
        };
        let args = &call["args"];
        let arguments = if args.is_object() {
            args.to_string()
        } else {
            "{}".to_owned()
        };
        let delta = ToolCallDelta {
            index,
            id: Some(id),
            kind: Some("function"),
            function: ToolCallFunctionDelta {
                name: Some(call["name"].as_str().unwrap_or_default()),
                arguments: &arguments,
            },
        };
        self.writer.tool_call(delta, out);
    }

    fn stop(&mut self, reason: &'static str, out: &mut Vec<u8>) {
        self.finish_reason = Some(reason);
        self.writer.finish_reason(reason, out);
    }

    fn end_with_error(&mut self, kind: &str, message: &str, out: &mut Vec<u8>) {
        self.ended = true;
        self.writer.error(kind, message, out);
    }
}

/// A stream whose finish reason arrived ends whole (with the last usage
/// reported) when the upstream closes; one closed before ends with an
/// error chunk.
impl StreamEnd for GeminiToOpenAiStream {
    fn ended(&self) -> bool {
        self.ended
    }
    fn stopped(&self) -> bool {
        self.finish_reason.is_some()
    }
    fn end_whole(&mut self, out: &mut Vec<u8>) {
        self.ended = true;
        self.writer.done(self.usage, out);
    }
    fn end_cut(&mut self, why: &str, out: &mut Vec<u8>) {
        self.end_with_error("server_error", why, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// A thought, text in two events, a function call, the finish reason
    /// with the usage: the shape of a Gemini 2.5 stream.
    const EVENTS: [&str; 4] = [
        r#"{"candidates":[{"content":{"role":"model","parts":[{"text":"plan","thought":true}]}}],"responseId":"r-1","modelVersion":"gemini-2.5-flash"}"#,
        r#"{"candidates":[{"content":{"role":"model","parts":[{"text":"Let me "}]}}],"responseId":"r-1"}"#,
        r#"{"candidates":[{"content":{"role":"model","parts":[{"text":"check."},{"functionCall":{"name":"weather","args":{"city":"Paris"}}}]}}],"responseId":"r-1"}"#,
        r#"{"candidates":[{"content":{"role":"model","parts":[{"text":""}]},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":20,"candidatesTokenCount":12,"thoughtsTokenCount":3,"cachedContentTokenCount":5},"responseId":"r-1"}"#,
    ];

    fn run(events: &[&str], include_usage: bool) -> (GeminiToOpenAiStream, Vec<u8>) {
        let mut t = GeminiToOpenAiStream::new("gpt-4o", "req-1", include_usage);
        let mut out = Vec::new();
        for e in events {
            t.on_data(e.as_bytes(), &mut out).unwrap();
        }
        (t, out)
    }

    #[test]
    fn a_stream_becomes_openai_chunks() {
        let (mut t, mut out) = run(&EVENTS, true);
        // Nothing ends before the upstream closes: the usage may come later.
        assert!(!String::from_utf8_lossy(&out).contains("[DONE]"));
        t.finish(&mut out);
        let got = lines(&out);
        let delta = |i: usize| &got[i]["choices"][0]["delta"];
        assert_eq!(got.len(), 7, "{got:#?}");
        assert!(got[..6].iter().all(|c| c["id"] == "chatcmpl-r-1"));
        assert_eq!(got[0]["model"], "gpt-4o");
        assert_eq!(delta(0)["role"], "assistant");
        assert_eq!(delta(1)["content"], "Let me ");
        assert_eq!(delta(2)["content"], "check.");
        let call = &delta(3)["tool_calls"][0];
        assert_eq!(call["index"], 0);
        assert_eq!(call["id"], "call_0");
        assert_eq!(call["function"]["name"], "weather");
        assert_eq!(call["function"]["arguments"], "{\"city\":\"Paris\"}");
        assert_eq!(got[4]["choices"][0]["finish_reason"], "tool_calls");
        assert!(got[..5]
            .iter()
            .all(|c| c["usage"].is_null() && c.get("usage").is_some()));
        assert_eq!(got[5]["choices"].as_array().map(Vec::len), Some(0));
        assert_eq!(got[5]["usage"]["prompt_tokens"], 20);
        assert_eq!(got[5]["usage"]["completion_tokens"], 15);
        assert_eq!(got[5]["usage"]["prompt_tokens_details"]["cached_tokens"], 5);
        assert_eq!(got[6], "[DONE]");
        assert_eq!(t.usage(), TokenUsage::from_inclusive(20, 5, 15));
        let before = out.len();
        t.on_data(EVENTS[1].as_bytes(), &mut out).unwrap();
        t.finish(&mut out);
        assert_eq!(out.len(), before, "nothing after the end");
    }

    #[test]
    fn usage_after_the_finish_reason_is_kept() {
        let (mut t, mut out) = run(
            &[
                r#"{"candidates":[{"content":{"parts":[{"text":"Hi"}]},"finishReason":"MAX_TOKENS"}]}"#,
                r#"{"usageMetadata":{"promptTokenCount":4,"candidatesTokenCount":1}}"#,
            ],
            true,
        );
        t.finish(&mut out);
        let got = lines(&out);
        assert_eq!(got[0]["id"], "chatcmpl-req-1");
        assert_eq!(got[2]["choices"][0]["finish_reason"], "length");
        assert_eq!(got[3]["usage"]["total_tokens"], 5);
        assert_eq!(got[4], "[DONE]");
    }

    #[test]
    fn without_include_usage_no_usage_chunk() {
        let (mut t, mut out) = run(&EVENTS, false);
        t.finish(&mut out);
        let got = lines(&out);
        assert_eq!(got.len(), 6);
        assert!(got[..5].iter().all(|c| c.get("usage").is_none()));
        assert_eq!(got[5], "[DONE]");
    }

    #[test]
    fn a_blocked_prompt_stops_with_content_filter() {
        let (mut t, mut out) = run(
            &[
                r#"{"promptFeedback":{"blockReason":"PROHIBITED_CONTENT"},"usageMetadata":{"promptTokenCount":3}}"#,
            ],
            false,
        );
        t.finish(&mut out);
        let got = lines(&out);
        assert_eq!(got[1]["choices"][0]["finish_reason"], "content_filter");
        assert_eq!(got[2], "[DONE]");
    }

    #[test]
    fn a_cut_stream_and_an_error_event_end_in_error() {
        let (mut t, mut out) = run(&EVENTS[..2], true);
        t.finish(&mut out);
        let got = lines(&out);
        assert_eq!(got.last().unwrap()["error"]["type"], "server_error");
        assert!(!String::from_utf8_lossy(&out).contains("[DONE]"));

        let (mut t, mut out) = run(
            &[
                EVENTS[1],
                r#"{"error":{"code":429,"message":"quota","status":"RESOURCE_EXHAUSTED"}}"#,
            ],
            false,
        );
        t.finish(&mut out);
        let got = lines(&out);
        assert_eq!(got.len(), 3, "nothing after the error");
        assert_eq!(got[2]["error"]["type"], "rate_limit_error");
        assert_eq!(got[2]["error"]["message"], "quota");
    }

    #[test]
    fn a_payload_that_is_not_json_is_an_error() {
        let mut t = GeminiToOpenAiStream::new("m", "r", false);
        let mut out = Vec::new();
        assert!(matches!(
            t.on_data(b"{not json", &mut out),
            Err(TranslateError::Json(_))
        ));
        assert!(out.is_empty());
    }
}
