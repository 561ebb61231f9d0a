//! Anthropic `/v1/messages` request → OpenAI `/v1/chat/completions` request.
//!
//! Anthropic keeps the system prompt outside the conversation, puts tool calls
//! and tool results inside messages as content blocks, and carries tool input
//! as a JSON object. OpenAI wants a system message, assistant `tool_calls`
//! with the input as a JSON *string*, and one `role: tool` message per result.
//! Tool messages must follow the assistant turn that asked for them directly,
//! so a user turn's tool results are emitted before the rest of that turn.

use sonic_rs::{json, Array, JsonContainerTrait, JsonValueTrait, Object, Value};

use super::{joined_text, parse_object, serialize, TranslateError};

/// Translates an Anthropic messages request into an OpenAI chat-completions
/// request for `upstream_model`.
pub fn anthropic_request_to_openai(
    body: &[u8],
    upstream_model: &str,
) -> Result<Vec<u8>, TranslateError> {
    let request = parse_object(body)?;
    let mut out = Object::new();
    out.insert("model", upstream_model);

    let mut messages = Array::new();
    if !request["system"].is_null() {
        let system = joined_text(&request["system"], "\n\n");
        messages.push(json!({"role": "system", "content": system}));
    }
    let turns = request["messages"]
        .as_array()
        .ok_or_else(|| TranslateError::Invalid("`messages` must be an array".into()))?;
    for turn in turns {
        match turn["role"].as_str() {
            Some("user") => push_user_turn(&turn["content"], &mut messages)?,
            Some("assistant") => messages.push(assistant_turn(&turn["content"])?),
            other => {
                return Err(TranslateError::Invalid(format!(
                    "message role must be user or assistant, got {other:?}"
                )))
            }
        }
    }
    out.insert("messages", messages);

    if let Some(max_tokens) = request["max_tokens"].as_u64() {
        // `max_tokens` is deprecated by OpenAI and refused by its reasoning models.
        out.insert("max_completion_tokens", max_tokens);
    }
    if let Some(stops) = request["stop_sequences"].as_array() {
        if !stops.is_empty() {
            out.insert("stop", stops.clone());
        }
    }
    for knob in ["temperature", "top_p"] {
        if request[knob].is_number() {
            out.insert(knob, request[knob].clone());
        }
    }
    if let Some(user) = request["metadata"]["user_id"].as_str() {
        out.insert("user", user);
    }
    if request["stream"].as_bool() == Some(true) {
        out.insert("stream", true);
        // Without it an OpenAI stream carries no usage, and the gateway must
        // report usage to Anthropic clients and to its own accounting.
        out.insert("stream_options", json!({"include_usage": true}));
    }
    if let Some(tools) = request["tools"].as_array() {
        if !tools.is_empty() {
            let mut translated = Array::new();
            for tool in tools {
                translated.push(function_tool(tool)?);
            }
            out.insert("tools", translated);
        }
    }
    if let Some(choice) = request["tool_choice"].as_object() {
        out.insert("tool_choice", tool_choice(choice)?);
        if choice
            .get(&"disable_parallel_tool_use")
            .and_then(|v| v.as_bool())
            == Some(true)
        {
            out.insert("parallel_tool_calls", false);
        }
    }
    Ok(serialize(&out.into_value()))
}

/// One Anthropic user turn becomes its tool results as `tool` messages, then at
/// most one user message with everything else, in the original order within
/// each group. Images inside tool results move to that user message: OpenAI
/// tool messages carry text only.
fn push_user_turn(content: &Value, messages: &mut Array) -> Result<(), TranslateError> {
    if let Some(text) = content.as_str() {
        messages.push(json!({"role": "user", "content": text}));
        return Ok(());
    }
    let blocks = content.as_array().ok_or_else(|| {
        TranslateError::Invalid("message content must be a string or an array".into())
    })?;
    let mut parts = Array::new();
    for block in blocks {
        match block["type"].as_str() {
            Some("tool_result") => {
                let id = block["tool_use_id"].as_str().ok_or_else(|| {
                    TranslateError::Invalid("tool_result block needs `tool_use_id`".into())
                })?;
                let text = joined_text(&block["content"], "\n");
                messages.push(json!({"role": "tool", "tool_call_id": id, "content": text}));
                for nested in block["content"]
                    .as_array()
                    .map(|a| a.as_slice())
                    .unwrap_or_default()
                {
                    if nested["type"].as_str() == Some("image") {
                        parts.push(image_part(nested)?);
                    }
                }
            }
            Some("text") => parts.push(json!({"type": "text", "text": block["text"]})),
            Some("image") => parts.push(image_part(block)?),
            other => {
                return Err(TranslateError::Unsupported(format!(
                    "user content block of type {other:?}"
                )))
            }
        }
    }
    match parts.len() {
        0 => {}
        1 if parts[0]["type"].as_str() == Some("text") => {
            messages.push(json!({"role": "user", "content": parts[0]["text"]}));
        }
        _ => messages.push(json!({"role": "user", "content": parts})),
    }
    Ok(())
}

/// Anthropic image sources are base64 (with a media type) or a URL; OpenAI
/// takes both as `image_url`, the first as a data URL.
fn image_part(block: &Value) -> Result<Value, TranslateError> {
    let source = &block["source"];
    let url = match source["type"].as_str() {
        Some("base64") => {
            let media_type = source["media_type"].as_str().unwrap_or("image/png");
            let data = source["data"].as_str().unwrap_or_default();
            format!("data:{media_type};base64,{data}")
        }
        Some("url") => source["url"].as_str().unwrap_or_default().to_owned(),
        other => {
            return Err(TranslateError::Unsupported(format!(
                "image source of type {other:?}"
            )))
        }
    };
    Ok(json!({"type": "image_url", "image_url": {"url": url}}))
}

/// Text blocks join into the assistant's content; tool_use blocks become
/// `tool_calls`. Thinking blocks are dropped: OpenAI has no way to replay them.
fn assistant_turn(content: &Value) -> Result<Value, TranslateError> {
    if let Some(text) = content.as_str() {
        return Ok(json!({"role": "assistant", "content": text}));
    }
    let blocks = content.as_array().ok_or_else(|| {
        TranslateError::Invalid("message content must be a string or an array".into())
    })?;
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
            Some("thinking") | Some("redacted_thinking") => {}
            other => {
                return Err(TranslateError::Unsupported(format!(
                    "assistant content block of type {other:?}"
                )))
            }
        }
    }
    let mut message = Object::new();
    message.insert("role", "assistant");
    if text.is_empty() && !tool_calls.is_empty() {
        message.insert("content", Value::new_null());
    } else {
        message.insert("content", text.as_str());
    }
    if !tool_calls.is_empty() {
        message.insert("tool_calls", tool_calls);
    }
    Ok(message.into_value())
}

fn function_tool(tool: &Value) -> Result<Value, TranslateError> {
    // Anthropic server tools (web search, bash, ...) run on Anthropic's side
    // and have no OpenAI equivalent.
    if let Some(kind) = tool["type"].as_str().filter(|k| *k != "custom") {
        return Err(TranslateError::Unsupported(format!("tool of type {kind}")));
    }
    let name = tool["name"]
        .as_str()
        .ok_or_else(|| TranslateError::Invalid("tool needs a `name`".into()))?;
    let mut function = Object::new();
    function.insert("name", name);
    if let Some(description) = tool["description"].as_str() {
        function.insert("description", description);
    }
    function.insert("parameters", tool["input_schema"].clone());
    Ok(json!({"type": "function", "function": function}))
}

fn tool_choice(choice: &Object) -> Result<Value, TranslateError> {
    let kind = choice.get(&"type").and_then(|v| v.as_str());
    Ok(match kind {
        Some("auto") => Value::from("auto"),
        Some("any") => Value::from("required"),
        Some("none") => Value::from("none"),
        Some("tool") => {
            let name = choice
                .get(&"name")
                .and_then(|v| v.as_str())
                .ok_or_else(|| {
                    TranslateError::Invalid("tool_choice of type tool needs a `name`".into())
                })?;
            json!({"type": "function", "function": {"name": name}})
        }
        other => {
            return Err(TranslateError::Invalid(format!(
                "unknown tool_choice type {other:?}"
            )))
        }
    })
}
