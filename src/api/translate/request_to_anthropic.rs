//! OpenAI `/v1/chat/completions` request → Anthropic `/v1/messages` request.
//!
//! System and developer messages, wherever they sit, become the top-level
//! `system` prompt (Anthropic has no system role). `role: tool` messages become
//! `tool_result` blocks of a user turn, and consecutive turns of one role are
//! merged into one, since Anthropic expects user and assistant to alternate
//! and the tool results to lead the user turn that follows a tool call.
//! Anthropic requires `max_tokens`, so one is always written.

use sonic_rs::{json, Array, JsonContainerTrait, JsonValueMutTrait, JsonValueTrait, Object, Value};

use super::{joined_text, parse_object, serialize, tool_input, TranslateError};

/// What Anthropic gets when the OpenAI client did not bound the completion.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

/// Translates an OpenAI chat-completions request into an Anthropic messages
/// request for `upstream_model`.
pub fn openai_request_to_anthropic(
    body: &[u8],
    upstream_model: &str,
) -> Result<Vec<u8>, TranslateError> {
    let request = parse_object(body)?;
    if request["n"].as_u64().is_some_and(|n| n > 1) {
        return Err(TranslateError::Unsupported("`n` greater than 1".into()));
    }
    let turns = request["messages"]
        .as_array()
        .ok_or_else(|| TranslateError::Invalid("`messages` must be an array".into()))?;

    let mut system_prompts: Vec<String> = Vec::new();
    let mut messages = Array::new();
    for turn in turns {
        let content = &turn["content"];
        match turn["role"].as_str() {
            Some("system") | Some("developer") => system_prompts.push(joined_text(content, "\n\n")),
            Some("user") => push_merged(&mut messages, "user", user_blocks(content)?),
            Some("assistant") => push_merged(&mut messages, "assistant", assistant_blocks(turn)?),
            Some("tool") => {
                let id = turn["tool_call_id"].as_str().ok_or_else(|| {
                    TranslateError::Invalid("tool message needs `tool_call_id`".into())
                })?;
                let result = json!({
                    "type": "tool_result",
                    "tool_use_id": id,
                    "content": joined_text(content, "\n"),
                });
                push_merged(&mut messages, "user", vec![result]);
            }
            other => {
                return Err(TranslateError::Unsupported(format!(
                    "message role {other:?}"
                )))
            }
        }
    }

    let mut out = Object::new();
    out.insert("model", upstream_model);
    let max_tokens = request["max_completion_tokens"]
        .as_u64()
        .or_else(|| request["max_tokens"].as_u64())
        .unwrap_or(DEFAULT_MAX_TOKENS);
    out.insert("max_tokens", max_tokens);
    if !system_prompts.is_empty() {
        out.insert("system", system_prompts.join("\n\n").as_str());
    }
    out.insert("messages", messages);

    match &request["stop"] {
        stop if stop.is_str() => {
            out.insert("stop_sequences", json!([stop]));
        }
        stop if stop.as_array().is_some_and(|s| !s.is_empty()) => {
            out.insert("stop_sequences", stop.clone());
        }
        _ => {}
    }
    if let Some(temperature) = request["temperature"].as_f64() {
        // OpenAI's range is 0..=2, Anthropic's 0..=1 and it refuses the rest.
        let clamped = temperature.clamp(0.0, 1.0);
        out.insert("temperature", Value::new_f64(clamped).unwrap_or_default());
    }
    if request["top_p"].is_number() {
        out.insert("top_p", request["top_p"].clone());
    }
    if let Some(user) = request["user"].as_str() {
        out.insert("metadata", json!({"user_id": user}));
    }
    if request["stream"].as_bool() == Some(true) {
        out.insert("stream", true);
    }
    if let Some(tools) = request["tools"].as_array() {
        if !tools.is_empty() {
            let mut translated = Array::new();
            for tool in tools {
                translated.push(anthropic_tool(tool)?);
            }
            out.insert("tools", translated);
        }
    }
    let mut choice = match &request["tool_choice"] {
        choice if choice.is_null() => None,
        choice => Some(tool_choice(choice)?),
    };
    if request["parallel_tool_calls"].as_bool() == Some(false) {
        let choice = choice.get_or_insert_with(|| json!({"type": "auto"}));
        if let Some(choice) = choice.as_object_mut() {
            choice.insert("disable_parallel_tool_use", true);
        }
    }
    if let Some(choice) = choice {
        out.insert("tool_choice", choice);
    }
    Ok(serialize(&out.into_value()))
}

/// Whether an OpenAI streaming request asked for the final usage chunk
/// (`stream_options.include_usage`); the gateway passes it to
/// [`super::AnthropicToOpenAiStream::new`].
pub fn openai_stream_wants_usage(body: &[u8]) -> bool {
    parse_object(body)
        .map(|request| request["stream_options"]["include_usage"].as_bool() == Some(true))
        .unwrap_or(false)
}

/// Appends blocks to the last message when it has the same role, otherwise
/// starts a new message.
fn push_merged(messages: &mut Array, role: &str, blocks: Vec<Value>) {
    if blocks.is_empty() {
        return;
    }
    if let Some(last) = messages.last_mut() {
        if last["role"].as_str() == Some(role) {
            if let Some(content) = last.get_mut("content").and_then(|c| c.as_array_mut()) {
                for block in blocks {
                    content.push(block);
                }
                return;
            }
        }
    }
    messages.push(json!({"role": role, "content": blocks}));
}

fn user_blocks(content: &Value) -> Result<Vec<Value>, TranslateError> {
    if let Some(text) = content.as_str() {
        return Ok(text_block(text).into_iter().collect());
    }
    let parts = content.as_array().ok_or_else(|| {
        TranslateError::Invalid("message content must be a string or an array".into())
    })?;
    let mut blocks = Vec::with_capacity(parts.len());
    for part in parts {
        match part["type"].as_str() {
            Some("text") => blocks.extend(text_block(part["text"].as_str().unwrap_or_default())),
            Some("image_url") => blocks.push(image_block(&part["image_url"])?),
            other => {
                return Err(TranslateError::Unsupported(format!(
                    "user content part {other:?}"
                )))
            }
        }
    }
    Ok(blocks)
}

/// Anthropic refuses empty text blocks, which OpenAI clients send freely.
fn text_block(text: &str) -> Option<Value> {
    (!text.is_empty()).then(|| json!({"type": "text", "text": text}))
}

/// A data URL becomes a base64 source, anything else a URL source.
fn image_block(image_url: &Value) -> Result<Value, TranslateError> {
    let url = image_url["url"]
        .as_str()
        .ok_or_else(|| TranslateError::Invalid("image_url part needs a `url`".into()))?;
    let source = match url.strip_prefix("data:") {
        Some(data_url) => {
            let (media_type, data) = data_url.split_once(";base64,").ok_or_else(|| {
                TranslateError::Unsupported("image data URL that is not base64".into())
            })?;
            json!({"type": "base64", "media_type": media_type, "data": data})
        }
        None => json!({"type": "url", "url": url}),
    };
    Ok(json!({"type": "image", "source": source}))
}

/// Content (text or refusal) first, then one tool_use block per tool call, as
/// Anthropic itself orders them.
fn assistant_blocks(turn: &Value) -> Result<Vec<Value>, TranslateError> {
    let mut blocks: Vec<Value> = Vec::new();
    let content = &turn["content"];
    if let Some(text) = content.as_str() {
        blocks.extend(text_block(text));
    } else if let Some(parts) = content.as_array() {
        for part in parts {
            let text = part["text"].as_str().or_else(|| part["refusal"].as_str());
            blocks.extend(text.and_then(text_block));
        }
    }
    for call in turn["tool_calls"]
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
    {
        let function = &call["function"];
        let arguments = function["arguments"].as_str().unwrap_or_default();
        let input = tool_input(arguments)?;
        blocks.push(json!({
            "type": "tool_use",
            "id": call["id"],
            "name": function["name"],
            "input": input,
        }));
    }
    Ok(blocks)
}

fn anthropic_tool(tool: &Value) -> Result<Value, TranslateError> {
    if tool["type"].as_str() != Some("function") {
        return Err(TranslateError::Unsupported(format!(
            "tool of type {:?}",
            tool["type"].as_str()
        )));
    }
    let function = &tool["function"];
    let name = function["name"]
        .as_str()
        .ok_or_else(|| TranslateError::Invalid("function tool needs a `name`".into()))?;
    let mut out = Object::new();
    out.insert("name", name);
    if let Some(description) = function["description"].as_str() {
        out.insert("description", description);
    }
    // Anthropic requires an object schema even for a tool without parameters.
    let schema = match &function["parameters"] {
        parameters if parameters.is_object() => parameters.clone(),
        _ => json!({"type": "object", "properties": {}}),
    };
    out.insert("input_schema", schema);
    Ok(out.into_value())
}

fn tool_choice(choice: &Value) -> Result<Value, TranslateError> {
    match choice.as_str() {
        Some("auto") => return Ok(json!({"type": "auto"})),
        Some("required") => return Ok(json!({"type": "any"})),
        Some("none") => return Ok(json!({"type": "none"})),
        Some(other) => {
            return Err(TranslateError::Invalid(format!(
                "unknown tool_choice {other:?}"
            )))
        }
        None => {}
    }
    let name = choice["function"]["name"].as_str().ok_or_else(|| {
        TranslateError::Invalid("tool_choice object needs `function.name`".into())
    })?;
    Ok(json!({"type": "tool", "name": name}))
}
