//! Non-streaming Bedrock Converse response → OpenAI `chat.completion`, and
//! the stop-reason and usage mappings the ConverseStream translator shares.
//!
//! Converse puts the answer in `output.message.content`, a list of blocks
//! each keyed by its kind (`{"text": …}`, `{"toolUse": {toolUseId, name,
//! input}}`, `{"reasoningContent": …}`); its usage counts cache reads and
//! writes beside `inputTokens`, as Anthropic's does, so the prompt total is
//! their sum. It has no response id: the caller's request id stands in.
//! Reasoning blocks are dropped: chat completions have no place for them.

use super::raw::document;
use super::response::{write_openai_usage, MAX_RESPONSE_BLOCKS};
use super::write::{joined_string, Arr, Obj};
use super::{unix_seconds_now, TranslateError};
use crate::api::usage::bedrock_usage;

/// Bedrock's `stopReason` in OpenAI's terms.
pub(super) fn bedrock_finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens") | Some("model_context_window_exceeded") => "length",
        Some("tool_use") => "tool_calls",
        Some("guardrail_intervened") | Some("content_filtered") => "content_filter",
        _ => "stop",
    }
}

/// Translates a Converse response into an OpenAI chat completion naming
/// `client_model`, with id `chatcmpl-{request_id}`.
pub fn converse_response_to_openai(
    body: &[u8],
    client_model: &str,
    request_id: &str,
) -> Result<Vec<u8>, TranslateError> {
    let response = document(body)?;
    let [output, stop_reason] = response.pick(["output", "stopReason"]);
    let blocks = output.get("message").get("content");
    if !blocks.is_array() {
        return Err(TranslateError::Invalid(
            "response has no `output.message.content` array".into(),
        ));
    }
    let (mut has_text, mut has_tool_calls) = (false, false);
    for (i, block) in blocks.elements().enumerate() {
        if i == MAX_RESPONSE_BLOCKS {
            return Err(TranslateError::TooLarge {
                what: "content blocks",
                limit: MAX_RESPONSE_BLOCKS,
            });
        }
        let [text, tool] = block.pick(["text", "toolUse"]);
        has_text |= text.str_inner().is_some_and(|t| !t.is_empty());
        has_tool_calls |= tool.is_object();
    }
    let texts = blocks
        .elements()
        .filter_map(|block| block.get("text").str_inner());

    let mut out = Vec::with_capacity(body.len() + 256);
    let mut top = Obj::open(&mut out);
    top.str("id", &format!("chatcmpl-{request_id}"));
    top.json("object", "\"chat.completion\"");
    top.u64("created", unix_seconds_now());
    top.str("model", client_model);
    let mut choices = Arr::open(top.key("choices"));
    let mut choice = Obj::open(choices.item());
    choice.u64("index", 0);
    let mut message = Obj::open(choice.key("message"));
    message.json("role", "\"assistant\"");
    if has_text || !has_tool_calls {
        joined_string(message.key("content"), texts, "");
    } else {
        message.json("content", "null");
    }
    message.json("refusal", "null");
    if has_tool_calls {
        let mut calls = Arr::open(message.key("tool_calls"));
        for tool in blocks.elements().map(|b| b.get("toolUse")) {
            if !tool.is_object() {
                continue;
            }
            let [id, name, input] = tool.pick(["toolUseId", "name", "input"]);
            let mut call = Obj::open(calls.item());
            joined_string(call.key("id"), id.str_inner(), "");
            call.json("type", "\"function\"");
            let mut function = Obj::open(call.key("function"));
            joined_string(function.key("name"), name.str_inner(), "");
            // The input object as JSON text inside a string.
            let input = if input.is_object() {
                input.text()
            } else {
                "{}"
            };
            function.str("arguments", input);
            function.close();
            call.close();
        }
        calls.close();
    }
    message.close();
    choice.json("logprobs", "null");
    let reason = bedrock_finish_reason(stop_reason.as_str().as_deref());
    choice.json("finish_reason", &format!("\"{reason}\""));
    choice.close();
    choices.close();
    let tokens = bedrock_usage(body).unwrap_or_default();
    write_openai_usage(top.key("usage"), tokens);
    top.close();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn translate(body: &str) -> Value {
        let out = converse_response_to_openai(body.as_bytes(), "gpt-4o", "req-9").unwrap();
        serde_json::from_slice(&out).expect("valid JSON")
    }

    #[test]
    fn text_answer() {
        let got = translate(
            r#"{"output":{"message":{"role":"assistant","content":[{"text":"Hello, \"world\"\n"},{"reasoningContent":{"reasoningText":{"text":"hm"}}},{"text":"!"}]}},"stopReason":"end_turn","usage":{"inputTokens":10,"outputTokens":3,"totalTokens":13,"cacheReadInputTokens":4,"cacheWriteInputTokens":2},"metrics":{"latencyMs":120}}"#,
        );
        assert_eq!(got["id"], "chatcmpl-req-9");
        assert_eq!(got["object"], "chat.completion");
        assert_eq!(got["model"], "gpt-4o");
        let choice = &got["choices"][0];
        assert_eq!(choice["message"]["content"], "Hello, \"world\"\n!");
        assert_eq!(choice["message"]["role"], "assistant");
        assert!(choice["message"].get("tool_calls").is_none());
        assert_eq!(choice["finish_reason"], "stop");
        assert_eq!(
            got["usage"],
            json!({"prompt_tokens":16,"completion_tokens":3,"total_tokens":19,"prompt_tokens_details":{"cached_tokens":4}})
        );
    }

    #[test]
    fn tool_use_answer() {
        let got = translate(
            r#"{"output":{"message":{"role":"assistant","content":[{"toolUse":{"toolUseId":"tooluse_a","name":"weather","input":{"city":"Paris","days":[1,2]}}},{"toolUse":{"toolUseId":"tooluse_b","name":"time","input":{}}}]}},"stopReason":"tool_use","usage":{"inputTokens":1,"outputTokens":2}}"#,
        );
        let message = &got["choices"][0]["message"];
        assert!(message["content"].is_null());
        let calls = message["tool_calls"].as_array().unwrap();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0]["id"], "tooluse_a");
        assert_eq!(calls[0]["type"], "function");
        assert_eq!(calls[0]["function"]["name"], "weather");
        let args: Value =
            serde_json::from_str(calls[0]["function"]["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(args, json!({"city":"Paris","days":[1,2]}));
        assert_eq!(calls[1]["function"]["arguments"], "{}");
        assert_eq!(got["choices"][0]["finish_reason"], "tool_calls");
    }

    #[test]
    fn stop_reasons_and_missing_usage() {
        for (bedrock, openai) in [
            ("max_tokens", "length"),
            ("stop_sequence", "stop"),
            ("guardrail_intervened", "content_filter"),
            ("content_filtered", "content_filter"),
        ] {
            let body = format!(
                r#"{{"output":{{"message":{{"role":"assistant","content":[]}}}},"stopReason":"{bedrock}"}}"#
            );
            let got = translate(&body);
            assert_eq!(got["choices"][0]["finish_reason"], openai, "{bedrock}");
            // No blocks at all still gives a string content, as SDKs expect.
            assert_eq!(got["choices"][0]["message"]["content"], "");
            assert_eq!(got["usage"]["total_tokens"], 0);
        }
    }

    #[test]
    fn not_a_converse_response() {
        for body in [
            r#"{"message":"ValidationException"}"#,
            r#"{"output":{}}"#,
            "[1]",
        ] {
            assert!(
                matches!(
                    converse_response_to_openai(body.as_bytes(), "m", "r"),
                    Err(TranslateError::Invalid(_))
                ),
                "{body}"
            );
        }
        assert!(matches!(
            converse_response_to_openai(b"{not json", "m", "r"),
            Err(TranslateError::Json(_))
        ));
    }
}
