//! Non-streaming responses: OpenAI `chat.completion` ⇄ Anthropic `message`,
//! and the stop-reason and usage mappings the stream translators share.
//!
//! Usage semantics differ: OpenAI's `prompt_tokens` counts every prompt
//! token and reports the cached ones inside it, Anthropic's `input_tokens`
//! excludes cache reads and writes, which it reports beside it. The mapping
//! keeps totals equal in both directions.

use sonic_rs::{json, Array, JsonContainerTrait, JsonValueTrait, Object, Value};

use super::{
    parse_object, serialize, swap_id_prefix, tool_input, unix_seconds_now, TranslateError,
};

/// Translates an OpenAI chat completion into an Anthropic message, naming
/// `client_model` as the model.
pub fn openai_response_to_anthropic(
    body: &[u8],
    client_model: &str,
) -> Result<Vec<u8>, TranslateError> {
    let response = parse_object(body)?;
    let choice = &response["choices"][0];
    if !choice.is_object() {
        return Err(TranslateError::Invalid("response has no choices".into()));
    }
    let message = &choice["message"];
    let mut content = Array::new();
    for text in [message["content"].as_str(), message["refusal"].as_str()]
        .into_iter()
        .flatten()
        .filter(|t| !t.is_empty())
    {
        content.push(json!({"type": "text", "text": text}));
    }
    for call in message["tool_calls"]
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
    {
        content.push(json!({
            "type": "tool_use",
            "id": call["id"],
            "name": call["function"]["name"],
            "input": tool_input(call["function"]["arguments"].as_str().unwrap_or_default())?,
        }));
    }
    let id = swap_id_prefix(
        response["id"].as_str().unwrap_or_default(),
        "chatcmpl-",
        "msg_",
    );
    let stop_reason = anthropic_stop_reason(choice["finish_reason"].as_str());
    Ok(serialize(&json!({
        "id": id,
        "type": "message",
        "role": "assistant",
        "model": client_model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": null,
        "usage": anthropic_usage(&response["usage"]),
    })))
}

/// Translates an Anthropic message into an OpenAI chat completion, naming
/// `client_model` as the model.
pub fn anthropic_response_to_openai(
    body: &[u8],
    client_model: &str,
) -> Result<Vec<u8>, TranslateError> {
    let response = parse_object(body)?;
    let blocks = response["content"]
        .as_array()
        .ok_or_else(|| TranslateError::Invalid("message has no `content` array".into()))?;
    let mut text = String::new();
    let mut tool_calls = Array::new();
    for block in blocks {
        match block["type"].as_str() {
            Some("text") => text.push_str(block["text"].as_str().unwrap_or_default()),
            Some("tool_use") => {
                let arguments = sonic_rs::to_string(&block["input"])
                    .map_err(|e| TranslateError::Invalid(e.to_string()))?;
                tool_calls.push(json!({
                    "id": block["id"],
                    "type": "function",
                    "function": {"name": block["name"], "arguments": arguments},
                }));
            }
            // Thinking has no place in a chat completion; dropping it keeps the
            // answer itself intact.
            _ => {}
        }
    }
    let mut message = Object::new();
    message.insert("role", "assistant");
    if text.is_empty() && !tool_calls.is_empty() {
        message.insert("content", Value::new_null());
    } else {
        message.insert("content", text.as_str());
    }
    message.insert("refusal", Value::new_null());
    if !tool_calls.is_empty() {
        message.insert("tool_calls", tool_calls);
    }
    let id = swap_id_prefix(
        response["id"].as_str().unwrap_or_default(),
        "msg_",
        "chatcmpl-",
    );
    let finish_reason = openai_finish_reason(response["stop_reason"].as_str());
    let usage = token_usage(&response["usage"]);
    Ok(serialize(&json!({
        "id": id,
        "object": "chat.completion",
        "created": unix_seconds_now(),
        "model": client_model,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": finish_reason,
        }],
        "usage": openai_usage(usage, cache_read_tokens(&response["usage"])),
    })))
}

/// OpenAI cannot say which stop sequence matched, so `stop` maps to
/// `end_turn`; a content filter stop maps to Anthropic's `refusal`.
pub(super) fn anthropic_stop_reason(finish_reason: Option<&str>) -> &'static str {
    match finish_reason {
        Some("length") => "max_tokens",
        Some("tool_calls") | Some("function_call") => "tool_use",
        Some("content_filter") => "refusal",
        _ => "end_turn",
    }
}

pub(super) fn openai_finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens") | Some("model_context_window_exceeded") => "length",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        _ => "stop",
    }
}

/// Anthropic usage read in the gateway's terms: all prompt tokens are input.
pub(super) fn token_usage(usage: &Value) -> super::TokenUsage {
    let count = |field: &str| usage[field].as_u64().unwrap_or(0);
    super::TokenUsage {
        input_tokens: count("input_tokens")
            + count("cache_read_input_tokens")
            + count("cache_creation_input_tokens"),
        output_tokens: count("output_tokens"),
    }
}

pub(super) fn cache_read_tokens(anthropic_usage: &Value) -> u64 {
    anthropic_usage["cache_read_input_tokens"]
        .as_u64()
        .unwrap_or(0)
}

pub(super) fn openai_usage(usage: super::TokenUsage, cached_tokens: u64) -> Value {
    json!({
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
        "prompt_tokens_details": {"cached_tokens": cached_tokens},
    })
}

/// OpenAI usage in Anthropic's shape: cached prompt tokens move out of
/// `input_tokens` into `cache_read_input_tokens`.
pub(super) fn anthropic_usage(openai_usage: &Value) -> Value {
    let prompt = openai_usage["prompt_tokens"].as_u64().unwrap_or(0);
    let cached = openai_usage["prompt_tokens_details"]["cached_tokens"]
        .as_u64()
        .unwrap_or(0);
    json!({
        "input_tokens": prompt.saturating_sub(cached),
        "output_tokens": openai_usage["completion_tokens"].as_u64().unwrap_or(0),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached.min(prompt),
    })
}
