//! Non-streaming responses: OpenAI `chat.completion` ⇄ Anthropic `message`,
//! and the stop-reason and usage mappings the stream translators share.
//!
//! Usage semantics differ: OpenAI's `prompt_tokens` counts every prompt
//! token and reports the cached ones inside it, Anthropic's `input_tokens`
//! excludes cache reads and writes, which it reports beside it. The mapping
//! keeps totals equal in both directions.

use sonic_rs::{JsonContainerTrait, JsonValueTrait, Value};

use super::wire::{
    AnthropicBlock, AnthropicMessage, AnthropicUsage, OpenAiChoice, OpenAiCompletion,
    OpenAiFunction, OpenAiMessage, OpenAiToolCall, OpenAiUsage,
};
use super::{
    parse_object, serialize, swap_id_prefix, tool_input, unix_seconds_now, TokenUsage,
    TranslateError,
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
    let tool_calls = message["tool_calls"]
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default();
    let inputs = tool_calls
        .iter()
        .map(|call| tool_input(call["function"]["arguments"].as_str().unwrap_or_default()))
        .collect::<Result<Vec<_>, _>>()?;
    let mut content: Vec<AnthropicBlock> =
        [message["content"].as_str(), message["refusal"].as_str()]
            .into_iter()
            .flatten()
            .filter(|text| !text.is_empty())
            .map(|text| AnthropicBlock::Text { text })
            .collect();
    for (call, input) in tool_calls.iter().zip(&inputs) {
        content.push(AnthropicBlock::ToolUse {
            id: call["id"].as_str().unwrap_or_default(),
            name: call["function"]["name"].as_str().unwrap_or_default(),
            input,
        });
    }
    let id = swap_id_prefix(
        response["id"].as_str().unwrap_or_default(),
        "chatcmpl-",
        "msg_",
    );
    let usage = &response["usage"];
    Ok(serialize(&AnthropicMessage {
        id: &id,
        kind: "message",
        role: "assistant",
        model: client_model,
        content: &content,
        stop_reason: Some(anthropic_stop_reason(choice["finish_reason"].as_str())),
        stop_sequence: None,
        usage: AnthropicUsage::from_openai(
            usage["prompt_tokens"].as_u64().unwrap_or(0),
            usage["prompt_tokens_details"]["cached_tokens"]
                .as_u64()
                .unwrap_or(0),
            usage["completion_tokens"].as_u64().unwrap_or(0),
        ),
    }))
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
    let mut tool_uses: Vec<(&Value, String)> = Vec::new();
    for block in blocks {
        match block["type"].as_str() {
            Some("text") => text.push_str(block["text"].as_str().unwrap_or_default()),
            Some("tool_use") => {
                let arguments = sonic_rs::to_string(&block["input"])
                    .map_err(|e| TranslateError::Invalid(e.to_string()))?;
                tool_uses.push((block, arguments));
            }
            // Thinking has no place in a chat completion; dropping it keeps the
            // answer itself intact.
            _ => {}
        }
    }
    let tool_calls: Vec<OpenAiToolCall> = tool_uses
        .iter()
        .map(|(block, arguments)| OpenAiToolCall {
            id: block["id"].as_str().unwrap_or_default(),
            kind: "function",
            function: OpenAiFunction {
                name: block["name"].as_str().unwrap_or_default(),
                arguments,
            },
        })
        .collect();
    let content = (!text.is_empty() || tool_calls.is_empty()).then_some(text.as_str());
    let id = swap_id_prefix(
        response["id"].as_str().unwrap_or_default(),
        "msg_",
        "chatcmpl-",
    );
    let usage = &response["usage"];
    Ok(serialize(&OpenAiCompletion {
        id: &id,
        object: "chat.completion",
        created: unix_seconds_now(),
        model: client_model,
        choices: [OpenAiChoice {
            index: 0,
            message: OpenAiMessage {
                role: "assistant",
                content,
                refusal: None,
                tool_calls: &tool_calls,
            },
            logprobs: None,
            finish_reason: openai_finish_reason(response["stop_reason"].as_str()),
        }],
        usage: OpenAiUsage::new(token_usage(usage), cache_read_tokens(usage)),
    }))
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
pub(super) fn token_usage(usage: &Value) -> TokenUsage {
    let count = |field: &str| usage[field].as_u64().unwrap_or(0);
    TokenUsage {
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
