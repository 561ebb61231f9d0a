//! Non-streaming responses: OpenAI `chat.completion` ⇄ Anthropic `message`,
//! and the stop-reason and usage mappings the stream translators share.
//!
//! Usage semantics differ: OpenAI's `prompt_tokens` counts every prompt
//! token and reports the cached ones inside it, Anthropic's `input_tokens`
//! excludes cache reads and writes, which it reports beside it. The mapping
//! keeps totals equal in both directions.

use sonic_rs::{JsonValueTrait, Value};

use super::chat_completion;
use super::raw::{document, Raw};
use super::request_to_anthropic::tool_input;
use super::wire::{AnthropicUsage, OpenAiUsage};
use super::write::{joined_string, Arr, Obj};
use super::{swap_id_prefix, unix_seconds_now, TokenUsage, TranslateError};

/// Most content blocks (and tool calls) a response may carry to be
/// translated; a real one has a handful. Beyond it the response is refused
/// (the client gets a 502) rather than keeping the shard busy translating it.
pub const MAX_RESPONSE_BLOCKS: usize = 20_000;

fn too_many_blocks() -> TranslateError {
    TranslateError::TooLarge {
        what: "content blocks",
        limit: MAX_RESPONSE_BLOCKS,
    }
}

/// Translates an OpenAI chat completion into an Anthropic message, naming
/// `client_model` as the model.
pub fn openai_response_to_anthropic(
    body: &[u8],
    client_model: &str,
) -> Result<Vec<u8>, TranslateError> {
    openai_response_to_anthropic_with_usage(body, client_model).map(|(out, _)| out)
}

/// [`openai_response_to_anthropic`], and the text of the body's top-level
/// `usage` value as `crate::api::usage::openai_response_usage` locates it
/// (for `crate::api::usage::openai_usage_value`). The body is read once
/// ([`chat_completion::read`]: validated, the fields kept on the way).
pub fn openai_response_to_anthropic_with_usage<'a>(
    body: &'a [u8],
    client_model: &str,
) -> Result<(Vec<u8>, Option<&'a [u8]>), TranslateError> {
    let read = chat_completion::read(body)?;
    if !read.has_choice {
        return Err(TranslateError::Invalid("response has no choices".into()));
    }
    if read.too_many_tool_calls {
        return Err(too_many_blocks());
    }
    let mut out = Vec::with_capacity(body.len() + 256);
    let mut top = Obj::open(&mut out);
    let id = read.id.as_str().unwrap_or_default();
    top.str("id", &swap_id_prefix(&id, "chatcmpl-", "msg_"));
    top.json("type", "\"message\"");
    top.json("role", "\"assistant\"");
    top.str("model", client_model);
    let mut blocks = Arr::open(top.key("content"));
    for text in [read.content, read.refusal] {
        if text.str_inner().is_some_and(|t| !t.is_empty()) {
            let mut block = Obj::open(blocks.item());
            block.json("type", "\"text\"");
            block.raw("text", text);
            block.close();
        }
    }
    for call in &read.tool_calls {
        let arguments = call.arguments.as_str().unwrap_or_default();
        let input = tool_input(&arguments)?;
        let mut block = Obj::open(blocks.item());
        block.json("type", "\"tool_use\"");
        write_str_or_empty(block.key("id"), call.id);
        write_str_or_empty(block.key("name"), call.name);
        block.json("input", input);
        block.close();
    }
    blocks.close();
    joined_string(
        top.key("stop_reason"),
        [anthropic_stop_reason(
            read.finish_reason.as_str().as_deref(),
        )],
        "",
    );
    top.json("stop_sequence", "null");
    let usage = AnthropicUsage::new(TokenUsage::from_inclusive(
        read.prompt_tokens.as_u64().unwrap_or(0),
        read.cached_tokens.as_u64().unwrap_or(0),
        read.completion_tokens.as_u64().unwrap_or(0),
    ));
    write_usage(&mut top, &usage);
    top.close();
    Ok((out, read.usage_value))
}

/// A message's `usage` member.
fn write_usage(top: &mut Obj<'_>, usage: &AnthropicUsage) {
    let mut written = Obj::open(top.key("usage"));
    written.u64("input_tokens", usage.input_tokens);
    written.u64("output_tokens", usage.output_tokens);
    written.u64(
        "cache_creation_input_tokens",
        usage.cache_creation_input_tokens,
    );
    written.u64("cache_read_input_tokens", usage.cache_read_input_tokens);
    written.close();
}

/// A string member copied as it is, or `""` when it is absent or not a
/// string (the SDKs require these fields to be strings).
fn write_str_or_empty(out: &mut Vec<u8>, value: Raw<'_>) {
    joined_string(out, [value.str_inner().unwrap_or_default()], "");
}

/// Translates an Anthropic message into an OpenAI chat completion, naming
/// `client_model` as the model.
pub fn anthropic_response_to_openai(
    body: &[u8],
    client_model: &str,
) -> Result<Vec<u8>, TranslateError> {
    let response = document(body)?;
    let [id, blocks, stop_reason, usage] = response.pick(["id", "content", "stop_reason", "usage"]);
    if !blocks.is_array() {
        return Err(TranslateError::Invalid(
            "message has no `content` array".into(),
        ));
    }
    // One walk to count and classify the blocks; the output then takes the
    // text blocks and the tool_use blocks in two more.
    let (mut has_text, mut has_tool_calls) = (false, false);
    for (i, block) in blocks.elements().enumerate() {
        if i == MAX_RESPONSE_BLOCKS {
            return Err(too_many_blocks());
        }
        let [kind, text] = block.pick(["type", "text"]);
        has_text |= kind.is_str_eq("text") && text.str_inner().is_some_and(|t| !t.is_empty());
        has_tool_calls |= kind.is_str_eq("tool_use");
    }
    let is_tool_use = |block: &Raw<'_>| block.get("type").is_str_eq("tool_use");
    let texts = blocks.elements().filter_map(|block| {
        let [kind, text] = block.pick(["type", "text"]);
        // Thinking has no place in a chat completion; dropping it keeps the
        // answer itself intact.
        kind.is_str_eq("text")
            .then(|| Some(text.str_inner().unwrap_or_default()))
            .flatten()
    });

    let mut out = Vec::with_capacity(body.len() + 256);
    let mut top = Obj::open(&mut out);
    let id = id.as_str().unwrap_or_default();
    top.str("id", &swap_id_prefix(&id, "msg_", "chatcmpl-"));
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
        for block in blocks.elements().filter(is_tool_use) {
            let [id, name, input] = block.pick(["id", "name", "input"]);
            let mut call = Obj::open(calls.item());
            write_str_or_empty(call.key("id"), id);
            call.json("type", "\"function\"");
            let mut function = Obj::open(call.key("function"));
            write_str_or_empty(function.key("name"), name);
            // The input object as JSON text inside a string.
            function.str("arguments", input.text());
            function.close();
            call.close();
        }
        calls.close();
    }
    message.close();
    choice.json("logprobs", "null");
    joined_string(
        choice.key("finish_reason"),
        [openai_finish_reason(stop_reason.as_str().as_deref())],
        "",
    );
    choice.close();
    choices.close();
    let count = |field: &str| usage.get(field).as_u64().unwrap_or(0);
    write_openai_usage(top.key("usage"), token_usage_from(count));
    top.close();
    Ok(out)
}

/// `usage` as a chat completion's `usage` object.
pub(super) fn write_openai_usage(out: &mut Vec<u8>, usage: TokenUsage) {
    let tokens = OpenAiUsage::new(usage);
    let mut written = Obj::open(out);
    written.u64("prompt_tokens", tokens.prompt_tokens);
    written.u64("completion_tokens", tokens.completion_tokens);
    written.u64("total_tokens", tokens.total_tokens);
    let mut details = Obj::open(written.key("prompt_tokens_details"));
    details.u64("cached_tokens", tokens.prompt_tokens_details.cached_tokens);
    details.close();
    written.close();
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

/// Anthropic usage read in the gateway's terms: all prompt tokens are
/// input, the cache reads and writes (reported beside it) parts of it.
pub(super) fn token_usage(usage: &Value) -> TokenUsage {
    let one_hour = usage["cache_creation"]["ephemeral_1h_input_tokens"]
        .as_u64()
        .unwrap_or(0);
    token_usage_from(|field| usage[field].as_u64().unwrap_or(0)).with_writes_for_an_hour(one_hour)
}

fn token_usage_from(count: impl Fn(&str) -> u64) -> TokenUsage {
    TokenUsage::from_additive(
        count("input_tokens"),
        count("cache_read_input_tokens"),
        count("cache_creation_input_tokens"),
        count("output_tokens"),
    )
}

#[cfg(test)]
pub(super) mod two_pass {
    use super::*;

    /// The translation as it was before the one-pass reader: the whole body
    /// validated, then the fields found with the cursor. What the tests hold
    /// [`openai_response_to_anthropic`] to, byte for byte and error for error.
    pub(in crate::api::translate) fn openai_response_to_anthropic_two_pass(
        body: &[u8],
        client_model: &str,
    ) -> Result<Vec<u8>, TranslateError> {
        let response = document(body)?;
        let [id, choices, usage] = response.pick(["id", "choices", "usage"]);
        let choice = choices.elements().next().filter(|c| c.is_object());
        let Some(choice) = choice else {
            return Err(TranslateError::Invalid("response has no choices".into()));
        };
        let [message, finish_reason] = choice.pick(["message", "finish_reason"]);
        let [content, refusal, tool_calls] = message.pick(["content", "refusal", "tool_calls"]);
        if tool_calls.elements().nth(MAX_RESPONSE_BLOCKS).is_some() {
            return Err(too_many_blocks());
        }
        let mut out = Vec::with_capacity(body.len() + 256);
        let mut top = Obj::open(&mut out);
        let id = id.as_str().unwrap_or_default();
        top.str("id", &swap_id_prefix(&id, "chatcmpl-", "msg_"));
        top.json("type", "\"message\"");
        top.json("role", "\"assistant\"");
        top.str("model", client_model);
        let mut blocks = Arr::open(top.key("content"));
        for text in [content, refusal] {
            if text.str_inner().is_some_and(|t| !t.is_empty()) {
                let mut block = Obj::open(blocks.item());
                block.json("type", "\"text\"");
                block.raw("text", text);
                block.close();
            }
        }
        for call in tool_calls.elements() {
            let [id, function] = call.pick(["id", "function"]);
            let [name, arguments] = function.pick(["name", "arguments"]);
            let arguments = arguments.as_str().unwrap_or_default();
            let input = tool_input(&arguments)?;
            let mut block = Obj::open(blocks.item());
            block.json("type", "\"tool_use\"");
            write_str_or_empty(block.key("id"), id);
            write_str_or_empty(block.key("name"), name);
            block.json("input", input);
            block.close();
        }
        blocks.close();
        joined_string(
            top.key("stop_reason"),
            [anthropic_stop_reason(finish_reason.as_str().as_deref())],
            "",
        );
        top.json("stop_sequence", "null");
        let [prompt_tokens, completion_tokens, details] = usage.pick([
            "prompt_tokens",
            "completion_tokens",
            "prompt_tokens_details",
        ]);
        let usage = AnthropicUsage::new(TokenUsage::from_inclusive(
            prompt_tokens.as_u64().unwrap_or(0),
            details.get("cached_tokens").as_u64().unwrap_or(0),
            completion_tokens.as_u64().unwrap_or(0),
        ));
        write_usage(&mut top, &usage);
        top.close();
        Ok(out)
    }
}
