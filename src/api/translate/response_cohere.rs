//! Non-streaming Cohere v2 chat response → OpenAI `chat.completion`, and
//! the finish-reason mapping the stream translator shares.
//!
//! Cohere puts the answer in `message.content`, a list of typed parts
//! (`text`, and `thinking` for reasoning models, dropped: chat completions
//! have no place for it), and its tool calls in `message.tool_calls`, in
//! OpenAI's shape already; `message.tool_plan` (the model's note on why it
//! calls them) is dropped too. The usage written is the one the gateway
//! meters ([`crate::api::usage::cohere_usage`]: billing units, else
//! tokens), so what the client is told it used is what it is charged.
//!
//! A generation Cohere ended with `ERROR` or `TIMEOUT` is not an answer:
//! its text, if any, is cut short, and an OpenAI finish reason would pass
//! it for a whole one. It is refused (the client gets the gateway's 502),
//! as a stream cut short ends in an error; its usage stays readable for
//! metering.

use super::raw::document;
use super::response::MAX_RESPONSE_BLOCKS;
use super::wire::OpenAiUsage;
use super::write::{joined_string, Arr, Obj};
use super::{swap_id_prefix, unix_seconds_now, TranslateError};
use crate::api::usage::cohere_usage;

/// Cohere's `finish_reason` in OpenAI's terms; `None` for a generation
/// that failed (`ERROR`, `TIMEOUT`).
pub(super) fn cohere_finish_reason(finish_reason: Option<&str>) -> Option<&'static str> {
    match finish_reason {
        Some("MAX_TOKENS") => Some("length"),
        Some("TOOL_CALL") => Some("tool_calls"),
        Some("ERROR") | Some("TIMEOUT") => None,
        // COMPLETE, STOP_SEQUENCE, and any added later.
        _ => Some("stop"),
    }
}

/// Translates a Cohere v2 chat response into an OpenAI chat completion
/// naming `client_model`, with id `chatcmpl-{id}`.
pub fn cohere_chat_response_to_openai(
    body: &[u8],
    client_model: &str,
) -> Result<Vec<u8>, TranslateError> {
    let response = document(body)?;
    let [id, message, finish_reason] = response.pick(["id", "message", "finish_reason"]);
    if !message.is_object() {
        return Err(TranslateError::Invalid("response has no `message`".into()));
    }
    let Some(reason) = cohere_finish_reason(finish_reason.as_str().as_deref()) else {
        return Err(TranslateError::Invalid(
            "the upstream's generation ended in an error".into(),
        ));
    };
    let [parts, tool_calls] = message.pick(["content", "tool_calls"]);
    let (mut has_text, mut has_tool_calls) = (false, false);
    for (i, item) in parts.elements().chain(tool_calls.elements()).enumerate() {
        if i == MAX_RESPONSE_BLOCKS {
            return Err(TranslateError::TooLarge {
                what: "content blocks",
                limit: MAX_RESPONSE_BLOCKS,
            });
        }
        let [kind, text, function] = item.pick(["type", "text", "function"]);
        has_text |= kind.is_str_eq("text") && text.str_inner().is_some_and(|t| !t.is_empty());
        has_tool_calls |= function.is_object();
    }
    let texts = parts.elements().filter_map(|part| {
        let [kind, text] = part.pick(["type", "text"]);
        kind.is_str_eq("text").then(|| text.str_inner()).flatten()
    });

    let mut out = Vec::with_capacity(body.len() + 256);
    let mut top = Obj::open(&mut out);
    let id = id.as_str().unwrap_or_default();
    top.str("id", &swap_id_prefix(&id, "", "chatcmpl-"));
    top.json("object", "\"chat.completion\"");
    top.u64("created", unix_seconds_now());
    top.str("model", client_model);
    let mut choices = Arr::open(top.key("choices"));
    let mut choice = Obj::open(choices.item());
    choice.u64("index", 0);
    let mut written = Obj::open(choice.key("message"));
    written.json("role", "\"assistant\"");
    if has_text || !has_tool_calls {
        joined_string(written.key("content"), texts, "");
    } else {
        written.json("content", "null");
    }
    written.json("refusal", "null");
    if has_tool_calls {
        let mut calls = Arr::open(written.key("tool_calls"));
        for call in tool_calls.elements() {
            let [id, function] = call.pick(["id", "function"]);
            if !function.is_object() {
                continue;
            }
            let [name, arguments] = function.pick(["name", "arguments"]);
            let mut call = Obj::open(calls.item());
            joined_string(call.key("id"), id.str_inner(), "");
            call.json("type", "\"function\"");
            let mut function = Obj::open(call.key("function"));
            joined_string(function.key("name"), name.str_inner(), "");
            // Already JSON text in a string, as OpenAI's are.
            joined_string(
                function.key("arguments"),
                [arguments.str_inner().unwrap_or("{}")],
                "",
            );
            function.close();
            call.close();
        }
        calls.close();
    }
    written.close();
    choice.json("logprobs", "null");
    choice.json("finish_reason", &format!("\"{reason}\""));
    choice.close();
    choices.close();
    let tokens = OpenAiUsage::new(cohere_usage(body).unwrap_or_default());
    let mut usage = Obj::open(top.key("usage"));
    usage.u64("prompt_tokens", tokens.prompt_tokens);
    usage.u64("completion_tokens", tokens.completion_tokens);
    usage.u64("total_tokens", tokens.total_tokens);
    let mut details = Obj::open(usage.key("prompt_tokens_details"));
    details.u64("cached_tokens", tokens.prompt_tokens_details.cached_tokens);
    details.close();
    usage.close();
    top.close();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn translate(body: &str) -> Value {
        let out = cohere_chat_response_to_openai(body.as_bytes(), "gpt-4o").unwrap();
        serde_json::from_slice(&out).expect("valid JSON")
    }

    #[test]
    fn text_answer() {
        // The response example of Cohere's v2 chat reference, with a
        // thinking part and a second text part added.
        let got = translate(
            r#"{"id":"c14c80c3-18eb-4519-9460-6c92edd8cfb4","finish_reason":"COMPLETE","message":{"role":"assistant","content":[{"type":"thinking","thinking":"hm"},{"type":"text","text":"LLMs stand for Large Language Models, which are a type of neural network model specialized in processing and generating human language. \"They\"\n"},{"type":"text","text":"!"}]},"usage":{"billed_units":{"input_tokens":17,"output_tokens":12},"tokens":{"input_tokens":215,"output_tokens":12}}}"#,
        );
        assert_eq!(got["id"], "chatcmpl-c14c80c3-18eb-4519-9460-6c92edd8cfb4");
        assert_eq!(got["object"], "chat.completion");
        assert_eq!(got["model"], "gpt-4o");
        let choice = &got["choices"][0];
        assert_eq!(choice["message"]["role"], "assistant");
        assert_eq!(
            choice["message"]["content"],
            "LLMs stand for Large Language Models, which are a type of neural network model specialized in processing and generating human language. \"They\"\n!"
        );
        assert!(choice["message"].get("tool_calls").is_none());
        assert_eq!(choice["finish_reason"], "stop");
        assert_eq!(
            got["usage"],
            json!({"prompt_tokens":17,"completion_tokens":12,"total_tokens":29,"prompt_tokens_details":{"cached_tokens":0}})
        );
    }

    #[test]
    fn tool_call_answer() {
        // From Cohere's tool-use guide.
        let got = translate(
            r#"{"id":"7bd8d4ab-ad3a-4d6b-a0ab-1ef5ddc0f0d1","message":{"role":"assistant","tool_plan":"I will search for the weather in Toronto.","tool_calls":[{"id":"get_weather_1byjy32y4hvq","type":"function","function":{"name":"get_weather","arguments":"{\"location\":\"Toronto\"}"}},{"id":"t2","type":"function","function":{"name":"time"}}]},"finish_reason":"TOOL_CALL","usage":{"billed_units":{"input_tokens":37,"output_tokens":28},"tokens":{"input_tokens":913,"output_tokens":62}}}"#,
        );
        let message = &got["choices"][0]["message"];
        assert!(message["content"].is_null());
        let calls = message["tool_calls"].as_array().unwrap();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0]["id"], "get_weather_1byjy32y4hvq");
        assert_eq!(calls[0]["type"], "function");
        assert_eq!(calls[0]["function"]["name"], "get_weather");
        assert_eq!(
            calls[0]["function"]["arguments"],
            "{\"location\":\"Toronto\"}"
        );
        assert_eq!(calls[1]["function"]["arguments"], "{}");
        assert_eq!(got["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(got["usage"]["prompt_tokens"], 37);
        assert_eq!(got["usage"]["completion_tokens"], 28);
    }

    #[test]
    fn finish_reasons_and_missing_usage() {
        for (cohere, openai) in [
            ("COMPLETE", "stop"),
            ("STOP_SEQUENCE", "stop"),
            ("MAX_TOKENS", "length"),
        ] {
            let body = format!(
                r#"{{"id":"x","message":{{"role":"assistant","content":[]}},"finish_reason":"{cohere}"}}"#
            );
            let got = translate(&body);
            assert_eq!(got["choices"][0]["finish_reason"], openai, "{cohere}");
            assert_eq!(got["choices"][0]["message"]["content"], "");
            assert_eq!(got["usage"]["total_tokens"], 0);
        }
        for failed in ["ERROR", "TIMEOUT"] {
            let body = format!(
                r#"{{"id":"x","message":{{"role":"assistant","content":[{{"type":"text","text":"half"}}]}},"finish_reason":"{failed}"}}"#
            );
            assert!(matches!(
                cohere_chat_response_to_openai(body.as_bytes(), "m"),
                Err(TranslateError::Invalid(_))
            ));
        }
    }

    #[test]
    fn not_a_cohere_response() {
        for body in [r#"{"message":"invalid api token"}"#, r#"{"id":"x"}"#, "[1]"] {
            assert!(
                matches!(
                    cohere_chat_response_to_openai(body.as_bytes(), "m"),
                    Err(TranslateError::Invalid(_))
                ),
                "{body}"
            );
        }
        assert!(matches!(
            cohere_chat_response_to_openai(b"{not json", "m"),
            Err(TranslateError::Json(_))
        ));
    }
}
