//! Anthropic `/v1/messages` request → OpenAI `/v1/chat/completions` request.
//!
//! Anthropic keeps the system prompt outside the conversation, puts tool calls
//! and tool results inside messages as content blocks, and carries tool input
//! as a JSON object. OpenAI wants a system message, assistant `tool_calls`
//! with the input as a JSON *string*, and one `role: tool` message per result.
//! Tool messages must follow the assistant turn that asked for them directly,
//! so a user turn's tool results are emitted before the rest of that turn.
//!
//! Anthropic's `cache_control` marks are dropped (OpenAI caches by itself),
//! except in the translation on the way to Bedrock's Converse
//! ([`super::RequestInto::OpenAiKeepingCache`]): there they stay on
//! the text parts, system parts and tools they were on, in the convention
//! OpenAI-style clients of Anthropic use, for `request_to_converse` to
//! turn into cache points.
//!
//! The output is written in one pass over the input's text (see `raw`):
//! strings and sub-documents are copied as they are, a turn's blocks are
//! walked again instead of being collected when the output needs them in
//! another order (tool results first; content before tool calls).

use super::raw::{Raw, NULL};
use super::write::{joined_string, joined_text, Arr, Obj};
use super::{Budget, TranslateError, TranslateLimits};

/// The translation itself, from a parsed body (see `super::translate_request`).
pub(super) fn translate(
    request: Raw<'_>,
    upstream_model: &str,
    limits: TranslateLimits,
    keep_cache: bool,
) -> Result<Vec<u8>, TranslateError> {
    let [system, turns, max_tokens, stop_sequences, temperature, top_p, metadata, stream, tools, tool_choice] =
        request.pick([
            "system",
            "messages",
            "max_tokens",
            "stop_sequences",
            "temperature",
            "top_p",
            "metadata",
            "stream",
            "tools",
            "tool_choice",
        ]);
    if !turns.is_array() {
        return Err(TranslateError::Invalid(
            "`messages` must be an array".into(),
        ));
    }
    let mut budget = Budget::new(limits);
    // Roughly the body's size: the output is the same content reshaped.
    let mut out = Vec::with_capacity(request.text().len() + 256);
    let mut top = Obj::open(&mut out);
    top.str("model", upstream_model);

    // Each message is written followed by a comma (the last one dropped at
    // the end), so a message can be moved or taken back as one piece.
    let messages = top.key("messages");
    messages.push(b'[');
    // An empty system prompt (`""`, `[]`, blank blocks) says nothing, and
    // an empty system message is refused by some servers: none is sent.
    let says_something = match system.str_inner() {
        Some(text) => !text.is_empty(),
        None => system
            .elements()
            .any(|part| part.get("text").str_inner().is_some_and(|t| !t.is_empty())),
    };
    if !system.is_null() {
        budget.blocks(system.elements().count())?;
    }
    let system_cached = keep_cache
        && system
            .elements()
            .any(|p| p.get("cache_control").is_object());
    if says_something {
        let mut message = Obj::open(messages);
        message.json("role", "\"system\"");
        if system_cached {
            // As parts, so each keeps its mark.
            let mut parts = Arr::open(message.key("content"));
            for block in system.elements() {
                let [text, cache_control] = block.pick(["text", "cache_control"]);
                write_text_part(parts.item(), text, cache_control);
            }
            parts.close();
        } else {
            joined_text(message.key("content"), system, "\\n\\n");
        }
        message.close();
        messages.push(b',');
    }
    let mut tool_messages = Vec::new();
    for turn in turns.elements() {
        budget.message()?;
        let [role, content] = turn.pick(["role", "content"]);
        if role.is_str_eq("user") {
            push_user_turn(
                content,
                messages,
                &mut tool_messages,
                &mut budget,
                keep_cache,
            )?;
        } else if role.is_str_eq("assistant") {
            push_assistant_turn(content, messages, &mut budget)?;
        } else {
            return Err(TranslateError::Invalid(format!(
                "message role must be user or assistant, got {:?}",
                role.as_str()
            )));
        }
    }
    if messages.last() == Some(&b',') {
        messages.pop();
    }
    messages.push(b']');

    if let Some(max_tokens) = max_tokens.as_u64() {
        // `max_tokens` is deprecated by OpenAI and refused by its reasoning models.
        top.u64("max_completion_tokens", max_tokens);
    }
    if stop_sequences.elements().next().is_some() {
        top.raw("stop", stop_sequences);
    }
    for (knob, value) in [("temperature", temperature), ("top_p", top_p)] {
        if value.is_number() {
            top.raw(knob, value);
        }
    }
    let user = metadata.get("user_id");
    if user.is_str() {
        top.raw("user", user);
    }
    if stream.as_bool() == Some(true) {
        top.json("stream", "true");
        // Without it an OpenAI stream carries no usage, and the gateway must
        // report usage to Anthropic clients and to its own accounting.
        top.json("stream_options", "{\"include_usage\":true}");
    }
    if tools.elements().next().is_some() {
        let mut translated = Arr::open(top.key("tools"));
        for tool in tools.elements() {
            budget.blocks(1)?;
            function_tool(tool, translated.item(), keep_cache)?;
        }
        translated.close();
    }
    if tool_choice.is_object() {
        let [kind, name, disable_parallel] =
            tool_choice.pick(["type", "name", "disable_parallel_tool_use"]);
        write_tool_choice(kind, name, top.key("tool_choice"))?;
        if disable_parallel.as_bool() == Some(true) {
            top.json("parallel_tool_calls", "false");
        }
    }
    top.close();
    Ok(out)
}

/// One Anthropic user turn becomes its tool results as `tool` messages, then at
/// most one user message with everything else, in the original order within
/// each group. Images inside tool results move to that user message: OpenAI
/// tool messages carry text only.
///
/// One walk over the blocks: the user message is written in place while the
/// tool messages collect in `tool_messages` (scratch), which then moves in
/// front of it.
fn push_user_turn(
    content: Raw<'_>,
    messages: &mut Vec<u8>,
    tool_messages: &mut Vec<u8>,
    budget: &mut Budget,
    keep_cache: bool,
) -> Result<(), TranslateError> {
    if content.is_str() {
        push_plain_message(messages, "\"user\"", content);
        return Ok(());
    }
    if !content.is_array() {
        return Err(TranslateError::Invalid(
            "message content must be a string or an array".into(),
        ));
    }
    let start = messages.len();
    messages.extend_from_slice(b"{\"role\":\"user\",\"content\":");
    let mut parts = Arr::open(messages);
    let mut count = 0usize;
    let mut lone_text = None;
    tool_messages.clear();
    for block in content.elements() {
        budget.blocks(1)?;
        let [kind, text, id, result, source, cache_control] = block.pick([
            "type",
            "text",
            "tool_use_id",
            "content",
            "source",
            "cache_control",
        ]);
        let cache_control = if keep_cache { cache_control } else { NULL };
        if kind.is_str_eq("tool_result") {
            if !id.is_str() {
                return Err(TranslateError::Invalid(
                    "tool_result block needs `tool_use_id`".into(),
                ));
            }
            let mut message = Obj::open(tool_messages);
            message.json("role", "\"tool\"");
            message.raw("tool_call_id", id);
            joined_text(message.key("content"), result, "\\n");
            message.close();
            tool_messages.push(b',');
            for nested in result.elements() {
                budget.blocks(1)?;
                let [kind, source] = nested.pick(["type", "source"]);
                if kind.is_str_eq("image") {
                    write_image_part(source, parts.item())?;
                    count += 1;
                }
            }
        } else if kind.is_str_eq("text") {
            write_text_part(parts.item(), text, cache_control);
            count += 1;
            // A marked part must stay a part to keep its mark.
            if count == 1 && !cache_control.is_object() {
                lone_text = Some(text);
            }
        } else if kind.is_str_eq("image") {
            write_image_part(source, parts.item())?;
            count += 1;
        } else {
            return Err(TranslateError::Unsupported(format!(
                "user content block of type {:?}",
                kind.as_str()
            )));
        }
    }
    parts.close();
    match (count, lone_text) {
        (0, _) => messages.truncate(start),
        // A lone text part is sent as plain content, as clients write it.
        (1, Some(text)) => {
            messages.truncate(start);
            push_plain_message(messages, "\"user\"", text);
        }
        _ => messages.extend_from_slice(b"},"),
    }
    if !tool_messages.is_empty() {
        messages.splice(start..start, tool_messages.iter().copied());
    }
    Ok(())
}

/// `{"type":"text","text":…}`, with the `cache_control` mark when there is
/// one (only kept for Converse).
fn write_text_part(out: &mut Vec<u8>, text: Raw<'_>, cache_control: Raw<'_>) {
    let mut part = Obj::open(out);
    part.json("type", "\"text\"");
    part.raw("text", text);
    if cache_control.is_object() {
        part.raw("cache_control", cache_control);
    }
    part.close();
}

/// `{"role":…,"content":…},`: a message whose content is one value copied
/// as it is (a string turn, or a turn that came down to one text part).
/// `role` is JSON text, quotes included.
fn push_plain_message(messages: &mut Vec<u8>, role: &str, content: Raw<'_>) {
    let mut message = Obj::open(messages);
    message.json("role", role);
    message.raw("content", content);
    message.close();
    messages.push(b',');
}

/// `{"type":"image_url","image_url":{"url":…}}` for an Anthropic image
/// source: base64 data (with a media type) as a data URL, a URL as itself.
/// The pieces of a data URL are still-escaped string contents, so joining
/// them is escaping the join.
fn write_image_part(source: Raw<'_>, out: &mut Vec<u8>) -> Result<(), TranslateError> {
    let [kind, media_type, data, url] = source.pick(["type", "media_type", "data", "url"]);
    let pieces = if kind.is_str_eq("base64") {
        [
            "data:",
            media_type.str_inner().unwrap_or("image/png"),
            ";base64,",
            data.str_inner().unwrap_or_default(),
        ]
    } else if kind.is_str_eq("url") {
        [url.str_inner().unwrap_or_default(), "", "", ""]
    } else {
        return Err(TranslateError::Unsupported(format!(
            "image source of type {:?}",
            kind.as_str()
        )));
    };
    let mut part = Obj::open(out);
    part.json("type", "\"image_url\"");
    let mut image_url = Obj::open(part.key("image_url"));
    joined_string(image_url.key("url"), pieces, "");
    image_url.close();
    part.close();
    Ok(())
}

/// Text blocks join into the assistant's content; tool_use blocks become
/// `tool_calls`. Thinking blocks are dropped: OpenAI has no way to replay them.
fn push_assistant_turn(
    content: Raw<'_>,
    messages: &mut Vec<u8>,
    budget: &mut Budget,
) -> Result<(), TranslateError> {
    if content.is_str() {
        push_plain_message(messages, "\"assistant\"", content);
        return Ok(());
    }
    if !content.is_array() {
        return Err(TranslateError::Invalid(
            "message content must be a string or an array".into(),
        ));
    }
    let mut message = Obj::open(messages);
    message.json("role", "\"assistant\"");
    let (mut has_text, mut has_tool_calls) = (false, false);
    for block in content.elements() {
        budget.blocks(1)?;
        let [kind, text] = block.pick(["type", "text"]);
        if kind.is_str_eq("text") {
            has_text |= text.str_inner().is_some_and(|t| !t.is_empty());
        } else if kind.is_str_eq("tool_use") {
            has_tool_calls = true;
        } else if !(kind.is_str_eq("thinking") || kind.is_str_eq("redacted_thinking")) {
            return Err(TranslateError::Unsupported(format!(
                "assistant content block of type {:?}",
                kind.as_str()
            )));
        }
    }
    let text_blocks = content.elements().filter_map(|block| {
        let [kind, text] = block.pick(["type", "text"]);
        kind.is_str_eq("text").then(|| text.str_inner()).flatten()
    });
    if !has_text && has_tool_calls {
        message.json("content", "null");
    } else {
        joined_string(message.key("content"), text_blocks, "");
    }
    if has_tool_calls {
        let mut calls = Arr::open(message.key("tool_calls"));
        for block in content.elements() {
            let [kind, id, name, input] = block.pick(["type", "id", "name", "input"]);
            if !kind.is_str_eq("tool_use") {
                continue;
            }
            let mut call = Obj::open(calls.item());
            call.raw("id", id);
            call.json("type", "\"function\"");
            let mut function = Obj::open(call.key("function"));
            function.raw("name", name);
            // OpenAI carries the input as JSON text inside a string.
            function.str("arguments", input.text());
            function.close();
            call.close();
        }
        calls.close();
    }
    message.close();
    messages.push(b',');
    Ok(())
}

fn function_tool(tool: Raw<'_>, out: &mut Vec<u8>, keep_cache: bool) -> Result<(), TranslateError> {
    let [kind, name, description, input_schema, cache_control] = tool.pick([
        "type",
        "name",
        "description",
        "input_schema",
        "cache_control",
    ]);
    // Anthropic server tools (web search, bash, ...) run on Anthropic's side
    // and have no OpenAI equivalent.
    if let Some(kind) = kind.as_str().filter(|k| k != "custom") {
        return Err(TranslateError::Unsupported(format!("tool of type {kind}")));
    }
    if !name.is_str() {
        return Err(TranslateError::Invalid("tool needs a `name`".into()));
    }
    let mut tool = Obj::open(out);
    tool.json("type", "\"function\"");
    let mut function = Obj::open(tool.key("function"));
    function.raw("name", name);
    if description.is_str() {
        function.raw("description", description);
    }
    function.raw("parameters", input_schema);
    function.close();
    if keep_cache && cache_control.is_object() {
        tool.raw("cache_control", cache_control);
    }
    tool.close();
    Ok(())
}

fn write_tool_choice(
    kind: Raw<'_>,
    name: Raw<'_>,
    out: &mut Vec<u8>,
) -> Result<(), TranslateError> {
    let simple = [("auto", "auto"), ("any", "required"), ("none", "none")]
        .into_iter()
        .find(|(anthropic, _)| kind.is_str_eq(anthropic));
    if let Some((_, openai)) = simple {
        joined_string(out, [openai], "");
    } else if kind.is_str_eq("tool") {
        if !name.is_str() {
            return Err(TranslateError::Invalid(
                "tool_choice of type tool needs a `name`".into(),
            ));
        }
        let mut choice = Obj::open(out);
        choice.json("type", "\"function\"");
        let mut function = Obj::open(choice.key("function"));
        function.raw("name", name);
        function.close();
        choice.close();
    } else {
        return Err(TranslateError::Invalid(format!(
            "unknown tool_choice type {:?}",
            kind.as_str()
        )));
    }
    Ok(())
}
