//! Non-streaming Gemini `generateContent` response → OpenAI
//! `chat.completion`, and the finish-reason and usage mappings the stream
//! translator shares.
//!
//! The answer is the first candidate's `content.parts` (a request never
//! asks for more: `n > 1` is refused): text parts joined, `functionCall`
//! parts as tool calls. Gemini gives a call an `id` only sometimes, so one
//! without is named `call_{i}`, its place among the answer's calls: the
//! same in the stream translator, and unique within a turn, which is where
//! a tool message's `tool_call_id` is looked up going back
//! (`request_to_gemini`). Thought parts (`thought: true`) are dropped, as
//! reasoning is for the other dialects. Gemini says STOP for an answer
//! that calls functions, which becomes `tool_calls`.
//!
//! A prompt Gemini blocked has no candidates, only `promptFeedback
//! {blockReason}`: that is answered as an empty completion with
//! `finish_reason: content_filter`, as OpenAI answers a filtered prompt's
//! completion, not as an error (the request was well formed and billed).
//! `responseId` becomes the id (`chatcmpl-{responseId}`, the caller's
//! request id when absent); `modelVersion` is dropped: the client sees the
//! model it asked for.
//!
//! Usage: `promptTokenCount` includes `cachedContentTokenCount`, and the
//! output is `candidatesTokenCount` plus `thoughtsTokenCount` (see
//! [`crate::api::usage`], whose `gemini_usage` meters the same bodies).

use super::raw::{document, Raw, NULL};
use super::response::{write_openai_usage, MAX_RESPONSE_BLOCKS};
use super::write::{joined_string, Arr, Obj};
use super::{unix_seconds_now, TokenUsage, TranslateError};

/// Gemini's `finishReason` in OpenAI's terms; `calls` says the answer has
/// function calls, which Gemini ends with STOP.
pub(super) fn gemini_finish_reason(reason: Option<&str>, calls: bool) -> &'static str {
    match reason {
        Some("MAX_TOKENS") => "length",
        Some(
            "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY",
        ) => "content_filter",
        _ if calls => "tool_calls",
        _ => "stop",
    }
}

/// `usageMetadata` in the gateway's terms.
pub(super) fn gemini_token_usage(count: impl Fn(&str) -> u64) -> TokenUsage {
    TokenUsage::from_inclusive(
        count("promptTokenCount"),
        count("cachedContentTokenCount"),
        count("candidatesTokenCount").saturating_add(count("thoughtsTokenCount")),
    )
}

/// Whether a part is the model's thinking, which is not sent on.
pub(super) fn is_thought(part: Raw<'_>) -> bool {
    part.get("thought").as_bool() == Some(true)
}

/// Translates a Gemini response into an OpenAI chat completion naming
/// `client_model`.
pub fn gemini_response_to_openai(
    body: &[u8],
    client_model: &str,
    request_id: &str,
) -> Result<Vec<u8>, TranslateError> {
    let response = document(body)?;
    let [candidates, prompt_feedback, usage, response_id] = response.pick([
        "candidates",
        "promptFeedback",
        "usageMetadata",
        "responseId",
    ]);
    let (parts, finish_reason) = match candidates.elements().next() {
        Some(candidate) => {
            let [content, reason] = candidate.pick(["content", "finishReason"]);
            (content.get("parts"), reason)
        }
        None if prompt_feedback.get("blockReason").is_str() => (NULL, NULL),
        None => {
            return Err(TranslateError::Invalid(
                "response has no `candidates` and no `promptFeedback.blockReason`".into(),
            ))
        }
    };
    let blocked = candidates.elements().next().is_none();
    let (mut has_text, mut has_calls) = (false, false);
    for (i, part) in parts.elements().enumerate() {
        if i == MAX_RESPONSE_BLOCKS {
            return Err(TranslateError::TooLarge {
                what: "content blocks",
                limit: MAX_RESPONSE_BLOCKS,
            });
        }
        let [text, call] = part.pick(["text", "functionCall"]);
        has_text |= !is_thought(part) && text.str_inner().is_some_and(|t| !t.is_empty());
        has_calls |= call.is_object();
    }
    let texts = parts
        .elements()
        .filter(|part| !is_thought(*part))
        .filter_map(|part| part.get("text").str_inner());

    let mut out = Vec::with_capacity(body.len() + 256);
    let mut top = Obj::open(&mut out);
    let id = response_id.str_inner().unwrap_or(request_id);
    joined_string(top.key("id"), ["chatcmpl-", id], "");
    top.json("object", "\"chat.completion\"");
    top.u64("created", unix_seconds_now());
    top.str("model", client_model);
    let mut choices = Arr::open(top.key("choices"));
    let mut choice = Obj::open(choices.item());
    choice.u64("index", 0);
    let mut message = Obj::open(choice.key("message"));
    message.json("role", "\"assistant\"");
    if has_text || !has_calls {
        joined_string(message.key("content"), texts, "");
    } else {
        message.json("content", "null");
    }
    message.json("refusal", "null");
    if has_calls {
        let mut calls = Arr::open(message.key("tool_calls"));
        let function_calls = parts
            .elements()
            .map(|part| part.get("functionCall"))
            .filter(|call| call.is_object());
        for (i, function_call) in function_calls.enumerate() {
            let [id, name, args] = function_call.pick(["id", "name", "args"]);
            let mut call = Obj::open(calls.item());
            match id.str_inner() {
                Some(id) => joined_string(call.key("id"), [id], ""),
                None => call.str("id", &format!("call_{i}")),
            }
            call.json("type", "\"function\"");
            let mut function = Obj::open(call.key("function"));
            joined_string(function.key("name"), name.str_inner(), "");
            let args = if args.is_object() { args.text() } else { "{}" };
            function.str("arguments", args);
            function.close();
            call.close();
        }
        calls.close();
    }
    message.close();
    choice.json("logprobs", "null");
    let reason = if blocked {
        "content_filter"
    } else {
        gemini_finish_reason(finish_reason.as_str().as_deref(), has_calls)
    };
    choice.json("finish_reason", &format!("\"{reason}\""));
    choice.close();
    choices.close();
    let tokens = gemini_token_usage(|field| usage.get(field).as_u64().unwrap_or(0));
    write_openai_usage(top.key("usage"), tokens);
    top.close();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn translate(body: &str) -> Value {
        let out = gemini_response_to_openai(body.as_bytes(), "gpt-4o", "req-9").unwrap();
        serde_json::from_slice(&out).expect("valid JSON")
    }

    #[test]
    fn text_answer_with_cached_and_thinking_tokens() {
        let body = r#"{"candidates":[{"content":{"role":"model","parts":[{"text":"I should greet.","thought":true},{"text":"Hello, \"world\"\n"},{"text":"!"}]},"finishReason":"STOP","index":0,"safetyRatings":[]}],"usageMetadata":{"promptTokenCount":100,"candidatesTokenCount":7,"thoughtsTokenCount":20,"cachedContentTokenCount":60,"totalTokenCount":127},"modelVersion":"gemini-2.5-flash","responseId":"abc123"}"#;
        let got = translate(body);
        // What the client is told is what the gateway meters.
        assert_eq!(
            crate::api::usage::gemini_usage(body.as_bytes()),
            Some(TokenUsage::from_inclusive(100, 60, 27))
        );
        assert_eq!(got["id"], "chatcmpl-abc123");
        assert_eq!(got["object"], "chat.completion");
        assert_eq!(got["model"], "gpt-4o");
        let choice = &got["choices"][0];
        assert_eq!(choice["message"]["content"], "Hello, \"world\"\n!");
        assert!(choice["message"].get("tool_calls").is_none());
        assert_eq!(choice["finish_reason"], "stop");
        // The cached 60 are inside the 100, not added; thinking is output.
        assert_eq!(
            got["usage"],
            json!({"prompt_tokens":100,"completion_tokens":27,"total_tokens":127,"prompt_tokens_details":{"cached_tokens":60}})
        );
    }

    #[test]
    fn function_calls_with_and_without_ids() {
        let got = translate(
            r#"{"candidates":[{"content":{"role":"model","parts":[{"functionCall":{"name":"weather","args":{"city":"Paris","days":[1,2]}}},{"functionCall":{"id":"fc-7","name":"time"}}]},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":1,"candidatesTokenCount":2}}"#,
        );
        assert_eq!(got["id"], "chatcmpl-req-9");
        let message = &got["choices"][0]["message"];
        assert!(message["content"].is_null());
        let calls = message["tool_calls"].as_array().unwrap();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0]["id"], "call_0");
        assert_eq!(calls[0]["type"], "function");
        assert_eq!(calls[0]["function"]["name"], "weather");
        let args: Value =
            serde_json::from_str(calls[0]["function"]["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(args, json!({"city":"Paris","days":[1,2]}));
        assert_eq!(calls[1]["id"], "fc-7");
        assert_eq!(calls[1]["function"]["arguments"], "{}");
        assert_eq!(got["choices"][0]["finish_reason"], "tool_calls");
    }

    #[test]
    fn finish_reasons_and_missing_usage() {
        for (gemini, openai) in [
            ("STOP", "stop"),
            ("MAX_TOKENS", "length"),
            ("SAFETY", "content_filter"),
            ("RECITATION", "content_filter"),
            ("BLOCKLIST", "content_filter"),
            ("PROHIBITED_CONTENT", "content_filter"),
            ("SPII", "content_filter"),
            ("OTHER", "stop"),
        ] {
            let body = format!(r#"{{"candidates":[{{"finishReason":"{gemini}"}}]}}"#);
            let got = translate(&body);
            assert_eq!(got["choices"][0]["finish_reason"], openai, "{gemini}");
            // No parts at all still gives a string content, as SDKs expect.
            assert_eq!(got["choices"][0]["message"]["content"], "");
            assert_eq!(got["usage"]["total_tokens"], 0);
        }
    }

    #[test]
    fn a_blocked_prompt_is_a_filtered_answer() {
        let got = translate(
            r#"{"promptFeedback":{"blockReason":"SAFETY","safetyRatings":[]},"usageMetadata":{"promptTokenCount":9,"totalTokenCount":9}}"#,
        );
        assert_eq!(got["choices"][0]["finish_reason"], "content_filter");
        assert_eq!(got["choices"][0]["message"]["content"], "");
        assert_eq!(got["usage"]["prompt_tokens"], 9);
    }

    #[test]
    fn not_a_gemini_response() {
        for body in [r#"{"error":{"code":400}}"#, r#"{"candidates":[]}"#, "[1]"] {
            assert!(
                matches!(
                    gemini_response_to_openai(body.as_bytes(), "m", "r"),
                    Err(TranslateError::Invalid(_))
                ),
                "{body}"
            );
        }
        assert!(matches!(
            gemini_response_to_openai(b"{not json", "m", "r"),
            Err(TranslateError::Json(_))
        ));
    }
}
