//! Cohere v2 chat SSE stream → OpenAI `chat.completion.chunk` SSE.
//!
//! Each event maps to at most one chunk, written as it arrives, as
//! [`super::BedrockToOpenAiStream`] does for Bedrock: `message-start`
//! (or the first content) gives the `role: assistant` chunk and the id; a
//! `content-delta`'s text a `content` delta; `tool-call-start` a
//! `tool_calls` entry (index, id, name) and the `tool-call-delta` argument
//! fragments follow under the same index. `message-end`, Cohere's last
//! event, carries the finish reason and the usage: it gives the
//! `finish_reason` chunk, the usage chunk when the client asked for
//! `include_usage`, and `[DONE]`; a generation that ended in `ERROR` or
//! `TIMEOUT` ends instead with OpenAI's in-stream error object (see
//! `response_cohere`). Tool plans, citations, thinking and debug events
//! are skipped: chat completions have no place for them.
//!
//! Events are told apart by their data's `type`, which Cohere repeats in
//! every event, so an upstream that sends no `event:` line works too.
//!
//! Invariant: the state held is the stream's id, the tool-call index map,
//! the finish reason and the usage, never the stream.

use sonic_rs::{JsonValueTrait, Value};

use super::response_cohere::cohere_finish_reason;
use super::wire::{
    ChunkChoice, ChunkDelta, OpenAiChunk, OpenAiError, OpenAiUsage, ToolCallDelta,
    ToolCallFunctionDelta,
};
use super::{swap_id_prefix, unix_seconds_now, StreamEnd, TokenUsage, TranslateError};
use crate::api::usage::cohere_usage;

/// What the error chunk says when Cohere ended the generation in `ERROR`
/// or `TIMEOUT`.
const GENERATION_FAILED: &str = "the upstream's generation ended in an error";

/// Translates one Cohere v2 chat stream, event by event.
#[derive(Debug)]
pub struct CohereToOpenAiStream {
    client_model: String,
    include_usage: bool,
    id: String,
    created: u64,
    started: bool,
    ended: bool,
    /// Cohere tool-call `index` → OpenAI tool-call index.
    tool_calls: Vec<(u64, u64)>,
    finish_reason: Option<&'static str>,
    usage: TokenUsage,
}

impl CohereToOpenAiStream {
    /// `client_model`: the model the client asked for; `include_usage`: its
    /// `stream_options.include_usage` (see
    /// [`super::openai_stream_wants_usage`]).
    pub fn new(client_model: &str, include_usage: bool) -> Self {
        Self {
            client_model: client_model.to_owned(),
            include_usage,
            id: String::new(),
            created: unix_seconds_now(),
            started: false,
            ended: false,
            tool_calls: Vec::new(),
            finish_reason: None,
            usage: TokenUsage::default(),
        }
    }

    /// Usage the upstream reported (once `message-end` arrived), as the
    /// gateway meters it ([`cohere_usage`]).
    pub fn usage(&self) -> TokenUsage {
        self.usage
    }

    /// Feeds one SSE event: its `event:` name (used only when the data has
    /// no `type`) and its `data:` payload. Appends complete `data: …\n\n`
    /// lines to `out`.
    pub fn on_event(
        &mut self,
        event: &[u8],
        data: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), TranslateError> {
        if self.ended {
            return Ok(());
        }
        let parsed: Value =
            sonic_rs::from_slice(data).map_err(|e| TranslateError::Json(e.to_string()))?;
        let kind = match parsed["type"].as_str() {
            Some(kind) => kind,
            None => std::str::from_utf8(event.trim_ascii()).unwrap_or_default(),
        };
        let message = &parsed["delta"]["message"];
        match kind {
            "message-start" => {
                let id = parsed["id"].as_str().unwrap_or_default();
                self.id = swap_id_prefix(id, "", "chatcmpl-");
                self.ensure_started(out);
            }
            "content-start" | "content-delta" => {
                self.ensure_started(out);
                // A thinking part has `thinking` instead of `text`.
                let text = message["content"]["text"].as_str().unwrap_or_default();
                if !text.is_empty() {
                    let delta = ChunkDelta {
                        content: Some(text),
                        ..ChunkDelta::default()
                    };
                    self.write_chunk(out, delta, None);
                }
            }
            "tool-call-start" => {
                self.ensure_started(out);
                let call = &message["tool_calls"];
                let index = self.tool_calls.len() as u64;
                self.tool_calls
                    .push((parsed["index"].as_u64().unwrap_or(0), index));
                let function = &call["function"];
                let call = ToolCallDelta {
                    index,
                    id: Some(call["id"].as_str().unwrap_or_default()),
                    kind: Some("function"),
                    function: ToolCallFunctionDelta {
                        name: Some(function["name"].as_str().unwrap_or_default()),
                        arguments: function["arguments"].as_str().unwrap_or_default(),
                    },
                };
                self.write_tool_call(out, call);
            }
            "tool-call-delta" => {
                let cohere_index = parsed["index"].as_u64().unwrap_or(0);
                let fragment = message["tool_calls"]["function"]["arguments"]
                    .as_str()
                    .unwrap_or_default();
                let call = self.tool_calls.iter().find(|(c, _)| *c == cohere_index);
                if let (Some(&(_, index)), false) = (call, fragment.is_empty()) {
                    let call = ToolCallDelta {
                        index,
                        id: None,
                        kind: None,
                        function: ToolCallFunctionDelta {
                            name: None,
                            arguments: fragment,
                        },
                    };
                    self.write_tool_call(out, call);
                }
            }
            "message-end" => {
                self.usage = cohere_usage(data).unwrap_or_default();
                match cohere_finish_reason(parsed["delta"]["finish_reason"].as_str()) {
                    Some(reason) => {
                        self.ensure_started(out);
                        self.finish_reason = Some(reason);
                        self.write_chunk(out, ChunkDelta::default(), Some(reason));
                        self.end_stream(out);
                    }
                    None => self.end_with_error(GENERATION_FAILED, out),
                }
            }
            // content-end, tool-plan-delta, tool-call-end, citation-start
            // and -end, debug, and events added later carry nothing to send.
            _ => {}
        }
        Ok(())
    }

    fn ensure_started(&mut self, out: &mut Vec<u8>) {
        if !self.started {
            self.started = true;
            let delta = ChunkDelta {
                role: Some("assistant"),
                content: Some(""),
                tool_calls: None,
            };
            self.write_chunk(out, delta, None);
        }
    }

    fn write_tool_call(&self, out: &mut Vec<u8>, call: ToolCallDelta<'_>) {
        let delta = ChunkDelta {
            tool_calls: Some([call]),
            ..ChunkDelta::default()
        };
        self.write_chunk(out, delta, None);
    }

    fn write_chunk(
        &self,
        out: &mut Vec<u8>,
        delta: ChunkDelta<'_>,
        finish_reason: Option<&'static str>,
    ) {
        let choice = ChunkChoice {
            index: 0,
            delta,
            logprobs: None,
            finish_reason,
        };
        let usage = self.include_usage.then_some(None);
        write_data(out, &self.chunk(std::slice::from_ref(&choice), usage));
    }

    fn chunk<'a>(
        &'a self,
        choices: &'a [ChunkChoice<'a>],
        usage: Option<Option<OpenAiUsage>>,
    ) -> OpenAiChunk<'a> {
        OpenAiChunk {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.client_model,
            choices,
            usage,
        }
    }

    fn end_stream(&mut self, out: &mut Vec<u8>) {
        self.ensure_started(out);
        self.ended = true;
        if self.include_usage {
            let usage = OpenAiUsage::new(self.usage);
            write_data(out, &self.chunk(&[], Some(Some(usage))));
        }
        out.extend_from_slice(b"data: [DONE]\n\n");
    }

    fn end_with_error(&mut self, message: &str, out: &mut Vec<u8>) {
        self.ended = true;
        write_data(out, &OpenAiError::new("server_error", message));
    }
}

fn write_data<T: serde::Serialize>(out: &mut Vec<u8>, data: &T) {
    out.extend_from_slice(b"data: ");
    // Chunks have string keys and integer numbers: serializing into a Vec cannot fail.
    sonic_rs::to_writer(&mut *out, data).expect("stream chunks always serialize");
    out.extend_from_slice(b"\n\n");
}

/// `message-end` both stops and ends a Cohere stream, so a stream whose
/// stop arrived has ended already; one cut before it ends with an error
/// chunk.
impl StreamEnd for CohereToOpenAiStream {
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
        self.end_with_error(why, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::sse::SseScanner;

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

    /// A tool plan, a tool call and a text answer, in the event order of
    /// Cohere's streaming guide (one upstream may send text and tool calls
    /// in one turn; the translation takes each as it comes).
    const STREAM: &str = concat!(
        "event: message-start\n",
        r#"data: {"id":"29f14a5a-11de-4cae-9800-25e4747408ed","type":"message-start","delta":{"message":{"role":"assistant","content":[],"tool_plan":"","tool_calls":[],"citations":[]}}}"#,
        "\n\n",
        "event: tool-plan-delta\n",
        r#"data: {"type":"tool-plan-delta","delta":{"message":{"tool_plan":"I will look up the weather."}}}"#,
        "\n\n",
        "event: tool-call-start\n",
        r#"data: {"type":"tool-call-start","index":0,"delta":{"message":{"tool_calls":{"id":"get_weather_nsz5zm3w56q3","type":"function","function":{"name":"get_weather","arguments":""}}}}}"#,
        "\n\n",
        "event: tool-call-delta\n",
        r#"data: {"type":"tool-call-delta","index":0,"delta":{"message":{"tool_calls":{"function":{"arguments":"{\n    \"location\": \""}}}}}"#,
        "\n\n",
        "event: tool-call-delta\n",
        r#"data: {"type":"tool-call-delta","index":0,"delta":{"message":{"tool_calls":{"function":{"arguments":"Toronto\"\n}"}}}}}"#,
        "\n\n",
        "event: tool-call-end\n",
        r#"data: {"type":"tool-call-end","index":0}"#,
        "\n\n",
        "event: content-start\n",
        r#"data: {"type":"content-start","index":0,"delta":{"message":{"content":{"type":"text","text":""}}}}"#,
        "\n\n",
        "event: content-delta\n",
        r#"data: {"type":"content-delta","index":0,"delta":{"message":{"content":{"text":"It is "}}}}"#,
        "\n\n",
        "event: citation-start\n",
        r#"data: {"type":"citation-start","index":0,"delta":{"message":{"citations":{"start":6,"end":8,"text":"19","sources":[]}}}}"#,
        "\n\n",
        "event: citation-end\n",
        r#"data: {"type":"citation-end","index":0}"#,
        "\n\n",
        "event: content-delta\n",
        r#"data: {"type":"content-delta","index":0,"delta":{"message":{"content":{"text":"19\u00b0C."}}}}"#,
        "\n\n",
        "event: content-end\n",
        r#"data: {"type":"content-end","index":0}"#,
        "\n\n",
        "event: message-end\n",
        r#"data: {"type":"message-end","delta":{"finish_reason":"TOOL_CALL","usage":{"billed_units":{"input_tokens":37,"output_tokens":28},"tokens":{"input_tokens":913,"output_tokens":62}}}}"#,
        "\n\n",
    );

    fn run(stream: &str, include_usage: bool, finish: bool) -> Vec<u8> {
        let mut t = CohereToOpenAiStream::new("gpt-4o", include_usage);
        let mut out = Vec::new();
        let mut sse = SseScanner::new(1 << 16);
        sse.feed(stream.as_bytes(), |e| {
            t.on_event(e.event, e.data, &mut out).unwrap()
        })
        .unwrap();
        if finish {
            t.finish(&mut out);
        }
        out
    }

    #[test]
    fn a_stream_becomes_openai_chunks() {
        let got = lines(&run(STREAM, true, true));
        let delta = |i: usize| &got[i]["choices"][0]["delta"];
        assert_eq!(got.len(), 9, "{got:#?}");
        assert_eq!(
            got[0]["id"],
            "chatcmpl-29f14a5a-11de-4cae-9800-25e4747408ed"
        );
        assert_eq!(got[0]["model"], "gpt-4o");
        assert_eq!(got[0]["object"], "chat.completion.chunk");
        assert_eq!(delta(0)["role"], "assistant");
        let call = &delta(1)["tool_calls"][0];
        assert_eq!(call["index"], 0);
        assert_eq!(call["id"], "get_weather_nsz5zm3w56q3");
        assert_eq!(call["type"], "function");
        assert_eq!(call["function"]["name"], "get_weather");
        let arguments: String = [2, 3]
            .iter()
            .map(|&i| {
                delta(i)["tool_calls"][0]["function"]["arguments"]
                    .as_str()
                    .unwrap()
            })
            .collect();
        assert_eq!(arguments, "{\n    \"location\": \"Toronto\"\n}");
        assert_eq!(delta(4)["content"], "It is ");
        assert_eq!(delta(5)["content"], "19\u{b0}C.");
        assert_eq!(got[6]["choices"][0]["finish_reason"], "tool_calls");
        assert!(got[..7]
            .iter()
            .all(|c| c["usage"].is_null() && c.get("usage").is_some()));
        assert_eq!(got[7]["choices"].as_array().map(Vec::len), Some(0));
        assert_eq!(got[7]["usage"]["prompt_tokens"], 37);
        assert_eq!(got[7]["usage"]["completion_tokens"], 28);
        assert_eq!(got[7]["usage"]["total_tokens"], 65);
        assert_eq!(got[8], "[DONE]");
    }

    #[test]
    fn without_event_lines_or_include_usage() {
        let bare: String = STREAM
            .lines()
            .filter(|l| !l.starts_with("event:"))
            .map(|l| format!("{l}\n"))
            .collect();
        let got = lines(&run(&bare, false, true));
        assert_eq!(got.len(), 8);
        assert!(got[..7].iter().all(|c| c.get("usage").is_none()));
        assert_eq!(got[7], "[DONE]");
        assert_eq!(lines(&run(STREAM, false, true)), got);
    }

    #[test]
    fn finish_reasons_and_failed_generations() {
        for (cohere, openai) in [
            ("COMPLETE", Some("stop")),
            ("STOP_SEQUENCE", Some("stop")),
            ("MAX_TOKENS", Some("length")),
            ("TOOL_CALL", Some("tool_calls")),
            ("ERROR", None),
            ("TIMEOUT", None),
        ] {
            let mut t = CohereToOpenAiStream::new("m", false);
            let mut out = Vec::new();
            let end = format!(
                r#"{{"type":"message-end","delta":{{"finish_reason":"{cohere}","usage":{{"tokens":{{"input_tokens":5,"output_tokens":1}}}}}}}}"#
            );
            t.on_event(b"", end.as_bytes(), &mut out).unwrap();
            t.finish(&mut out);
            let got = lines(&out);
            match openai {
                Some(reason) => {
                    assert_eq!(got[1]["choices"][0]["finish_reason"], reason, "{cohere}");
                    assert_eq!(got.last().unwrap(), "[DONE]");
                }
                None => {
                    assert_eq!(got.len(), 1, "{got:?}");
                    assert_eq!(got[0]["error"]["type"], "server_error");
                }
            }
            assert_eq!(t.usage(), TokenUsage::from_inclusive(5, 0, 1), "{cohere}");
        }
    }

    #[test]
    fn a_cut_stream_ends_in_error_and_nothing_follows_the_end() {
        let cut = &STREAM[..STREAM.find("event: content-end").unwrap()];
        let got = lines(&run(cut, true, true));
        assert_eq!(
            got.last().unwrap()["error"]["message"],
            super::super::STREAM_ENDED_EARLY
        );
        assert!(!got.contains(&"[DONE]".into()));

        let mut t = CohereToOpenAiStream::new("m", false);
        let mut out = Vec::new();
        t.on_event(
            b"",
            br#"{"type":"message-end","delta":{"finish_reason":"COMPLETE"}}"#,
            &mut out,
        )
        .unwrap();
        let before = out.len();
        t.on_event(
            b"",
            br#"{"type":"content-delta","delta":{"message":{"content":{"text":"late"}}}}"#,
            &mut out,
        )
        .unwrap();
        t.finish(&mut out);
        assert_eq!(out.len(), before);
    }

    #[test]
    fn data_that_is_not_json_is_an_error_and_unknown_events_are_skipped() {
        let mut t = CohereToOpenAiStream::new("m", false);
        let mut out = Vec::new();
        assert!(matches!(
            t.on_event(b"content-delta", b"{not json", &mut out),
            Err(TranslateError::Json(_))
        ));
        t.on_event(b"debug", br#"{"type":"debug","prompt":"..."}"#, &mut out)
            .unwrap();
        t.on_event(b"", br#"{"type":"some-future-event"}"#, &mut out)
            .unwrap();
        assert!(out.is_empty());
        // With no `type`, the event name says what it is.
        t.on_event(
            b"content-delta",
            br#"{"delta":{"message":{"content":{"text":"hi"}}}}"#,
            &mut out,
        )
        .unwrap();
        assert_eq!(lines(&out)[1]["choices"][0]["delta"]["content"], "hi");
    }
}
