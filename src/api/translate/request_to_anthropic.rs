//! OpenAI `/v1/chat/completions` request → Anthropic `/v1/messages` request.
//!
//! System and developer messages, wherever they sit, become the top-level
//! `system` prompt (Anthropic has no system role). `role: tool` messages become
//! `tool_result` blocks of a user turn, and consecutive turns of one role are
//! merged into one, since Anthropic expects user and assistant to alternate
//! and the tool results to lead the user turn that follows a tool call.
//! Anthropic requires `max_tokens`, so one is always written.
//!
//! `cache_control` on a content part or a tool (the convention OpenAI-style
//! gateways use to reach Anthropic's prompt caching; OpenAI itself ignores
//! it) is kept on the Anthropic block or tool it becomes. A system prompt
//! with one is written as text blocks, each with its part's breakpoint;
//! without one, as a single string.
//!
//! The output is written in one pass over the input's text (see `raw`), the
//! system prompt in a second walk over the turns rather than collected.

use super::raw::{self, document, Raw, NULL};
use super::write::{joined_string, joined_text, joined_text_inner, Arr, Obj};
use super::{Budget, TranslateError, TranslateLimits};

/// What Anthropic gets when the OpenAI client did not bound the completion.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

/// The translation itself, from a parsed body (see `super::translate_request`).
pub(super) fn translate(
    request: Raw<'_>,
    upstream_model: &str,
    limits: TranslateLimits,
) -> Result<Vec<u8>, TranslateError> {
    let [n, turns, max_completion_tokens, max_tokens, stop, temperature, top_p, user, stream, tools, tool_choice, parallel_tool_calls] =
        request.pick([
            "n",
            "messages",
            "max_completion_tokens",
            "max_tokens",
            "stop",
            "temperature",
            "top_p",
            "user",
            "stream",
            "tools",
            "tool_choice",
            "parallel_tool_calls",
        ]);
    if n.as_u64().is_some_and(|n| n > 1) {
        return Err(TranslateError::Unsupported("`n` greater than 1".into()));
    }
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
    let max_tokens = max_completion_tokens
        .as_u64()
        .or_else(|| max_tokens.as_u64())
        .unwrap_or(DEFAULT_MAX_TOKENS);
    top.u64("max_tokens", max_tokens);

    let mut messages = Merged::open(top.key("messages"));
    let mut system_prompts = 0usize;
    for turn in turns.elements() {
        budget.message()?;
        let [role, content, tool_calls, tool_call_id] =
            turn.pick(["role", "content", "tool_calls", "tool_call_id"]);
        let role = role.as_str();
        match role.as_deref() {
            Some("system") | Some("developer") => {
                budget.blocks(content.elements().count())?;
                system_prompts += 1;
            }
            Some("user") => push_user_blocks(content, &mut messages, &mut budget)?,
            Some("assistant") => {
                push_assistant_blocks(content, tool_calls, &mut messages, &mut budget)?
            }
            Some("tool") => {
                if !tool_call_id.is_str() {
                    return Err(TranslateError::Invalid(
                        "tool message needs `tool_call_id`".into(),
                    ));
                }
                budget.blocks(1)?;
                let mut result = Obj::open(messages.block("user"));
                result.json("type", "\"tool_result\"");
                result.raw("tool_use_id", tool_call_id);
                joined_text(result.key("content"), content, "\\n");
                result.close();
            }
            other => {
                return Err(TranslateError::Unsupported(format!(
                    "message role {other:?}"
                )))
            }
        }
    }
    messages.close();
    let prompts = || {
        turns.elements().filter_map(|turn| {
            let [role, content] = turn.pick(["role", "content"]);
            (role.is_str_eq("system") || role.is_str_eq("developer")).then_some(content)
        })
    };
    let cached_system = || {
        prompts().any(|content| {
            content
                .elements()
                .any(|part| part.get("cache_control").is_object())
        })
    };
    if system_prompts > 0 && cached_system() {
        // A breakpoint marks the end of a cached prefix, so each part keeps
        // its own block rather than being joined into one string.
        let mut blocks = Merged::open(top.key("system"));
        for content in prompts() {
            if content.is_str() {
                write_text_block(content, NULL, &mut blocks, "system");
            }
            for part in content.elements() {
                let [text, cache_control] = part.pick(["text", "cache_control"]);
                write_text_block(text, cache_control, &mut blocks, "system");
            }
        }
        blocks.close_flat();
    } else if system_prompts > 0 {
        // Every system and developer prompt, in order, joined as one.
        let out = top.key("system");
        out.push(b'"');
        for (i, content) in prompts().enumerate() {
            if i > 0 {
                out.extend_from_slice(b"\\n\\n");
            }
            joined_text_inner(out, content, "\\n\\n");
        }
        out.push(b'"');
    }

    if stop.is_str() {
        let mut sequences = Arr::open(top.key("stop_sequences"));
        sequences.item().extend_from_slice(stop.text().as_bytes());
        sequences.close();
    } else if stop.elements().next().is_some() {
        top.raw("stop_sequences", stop);
    }
    if let Some(temperature_value) = temperature.as_f64() {
        // OpenAI's range is 0..=2, Anthropic's 0..=1 and it refuses the rest.
        let clamped = temperature_value.clamp(0.0, 1.0);
        if clamped == temperature_value {
            top.raw("temperature", temperature);
        } else {
            top.json("temperature", if clamped == 0.0 { "0.0" } else { "1.0" });
        }
    }
    if top_p.is_number() {
        top.raw("top_p", top_p);
    }
    if user.is_str() {
        let mut metadata = Obj::open(top.key("metadata"));
        metadata.raw("user_id", user);
        metadata.close();
    }
    if stream.as_bool() == Some(true) {
        top.json("stream", "true");
    }
    if tools.elements().next().is_some() {
        let mut translated = Arr::open(top.key("tools"));
        for tool in tools.elements() {
            budget.blocks(1)?;
            anthropic_tool(tool, translated.item())?;
        }
        translated.close();
    }
    let disable_parallel = parallel_tool_calls.as_bool() == Some(false);
    if !tool_choice.is_null() || disable_parallel {
        write_tool_choice(tool_choice, disable_parallel, top.key("tool_choice"))?;
    }
    top.close();
    Ok(out)
}

/// Whether an OpenAI streaming request asked for the final usage chunk
/// (`stream_options.include_usage`); the gateway passes it to
/// [`super::AnthropicToOpenAiStream::new`].
pub fn openai_stream_wants_usage(body: &[u8]) -> bool {
    document(body).is_ok_and(|request| {
        request.get("stream_options").get("include_usage").as_bool() == Some(true)
    })
}

/// The `messages` array being written, where consecutive blocks of one role
/// share a message: a block of the role of the open message is appended to
/// it, any other starts a new one. A message is opened only for a block that
/// is then written, so no message is ever empty.
struct Merged<'o> {
    out: &'o mut Vec<u8>,
    open_role: Option<&'static str>,
}

impl<'o> Merged<'o> {
    fn open(out: &'o mut Vec<u8>) -> Self {
        out.push(b'[');
        Self {
            out,
            open_role: None,
        }
    }

    /// Starts a block in a `role` message and hands back the buffer for it.
    fn block(&mut self, role: &'static str) -> &mut Vec<u8> {
        match self.open_role {
            Some(open) if open == role => self.out.push(b','),
            open => {
                if open.is_some() {
                    self.out.extend_from_slice(b"]},");
                }
                self.out.extend_from_slice(b"{\"role\":\"");
                self.out.extend_from_slice(role.as_bytes());
                self.out.extend_from_slice(b"\",\"content\":[");
                self.open_role = Some(role);
            }
        }
        self.out
    }

    fn close(self) {
        if self.open_role.is_some() {
            self.out.extend_from_slice(b"]}");
        }
        self.out.push(b']');
    }

    /// Starts the next block of a flat array of blocks that belong to no
    /// message (the system prompt's).
    fn flat_block(&mut self) -> &mut Vec<u8> {
        if self.open_role.is_some() {
            self.out.push(b',');
        }
        self.open_role = Some("");
        self.out
    }

    /// Ends a flat array begun with [`Self::open`].
    fn close_flat(self) {
        self.out.push(b']');
    }
}

fn push_user_blocks(
    content: Raw<'_>,
    messages: &mut Merged<'_>,
    budget: &mut Budget,
) -> Result<(), TranslateError> {
    if content.is_str() {
        write_text_block(content, NULL, messages, "user");
        return Ok(());
    }
    if !content.is_array() {
        return Err(TranslateError::Invalid(
            "message content must be a string or an array".into(),
        ));
    }
    for part in content.elements() {
        budget.blocks(1)?;
        let [kind, text, image_url, cache_control] =
            part.pick(["type", "text", "image_url", "cache_control"]);
        if kind.is_str_eq("text") {
            write_text_block(text, cache_control, messages, "user");
        } else if kind.is_str_eq("image_url") {
            write_image_block(image_url.get("url"), messages)?;
        } else {
            return Err(TranslateError::Unsupported(format!(
                "user content part {:?}",
                kind.as_str()
            )));
        }
    }
    Ok(())
}

/// A text block, unless the text is empty or not a string: Anthropic refuses
/// empty text blocks, which OpenAI clients send freely. `cache_control` is
/// kept when it is an object. Role `system` writes into the flat array of
/// the system prompt.
fn write_text_block(
    text: Raw<'_>,
    cache_control: Raw<'_>,
    messages: &mut Merged<'_>,
    role: &'static str,
) {
    if text.str_inner().is_some_and(|t| !t.is_empty()) {
        let out = if role == "system" {
            messages.flat_block()
        } else {
            messages.block(role)
        };
        let mut block = Obj::open(out);
        block.json("type", "\"text\"");
        block.raw("text", text);
        if cache_control.is_object() {
            block.raw("cache_control", cache_control);
        }
        block.close();
    }
}

/// An image block for an OpenAI `image_url`: a base64 data URL becomes a
/// base64 source (media type and data), any other URL a URL source.
fn write_image_block(url: Raw<'_>, messages: &mut Merged<'_>) -> Result<(), TranslateError> {
    let Some(inner) = url.str_inner() else {
        return Err(TranslateError::Invalid(
            "image_url part needs a `url`".into(),
        ));
    };
    // Without escapes the text is its own decoding: split it and copy the
    // pieces (the data can be megabytes); with escapes, decode and re-escape.
    let decoded = if inner.contains('\\') {
        url.as_str()
    } else {
        None
    };
    let text = decoded.as_deref().unwrap_or(inner);
    let base64 = match text.strip_prefix("data:") {
        Some(data_url) => Some(data_url.split_once(";base64,").ok_or_else(|| {
            TranslateError::Unsupported("image data URL that is not base64".into())
        })?),
        None => None,
    };
    let mut block = Obj::open(messages.block("user"));
    block.json("type", "\"image\"");
    let mut source = Obj::open(block.key("source"));
    match base64 {
        Some((media_type, data)) if decoded.is_none() => {
            source.json("type", "\"base64\"");
            joined_string(source.key("media_type"), [media_type], "");
            joined_string(source.key("data"), [data], "");
        }
        Some((media_type, data)) => {
            source.json("type", "\"base64\"");
            source.str("media_type", media_type);
            source.str("data", data);
        }
        None => {
            source.json("type", "\"url\"");
            source.raw("url", url);
        }
    }
    source.close();
    block.close();
    Ok(())
}

/// Content (text or refusal) first, then one tool_use block per tool call, as
/// Anthropic itself orders them.
fn push_assistant_blocks(
    content: Raw<'_>,
    tool_calls: Raw<'_>,
    messages: &mut Merged<'_>,
    budget: &mut Budget,
) -> Result<(), TranslateError> {
    if content.is_str() {
        write_text_block(content, NULL, messages, "assistant");
    } else {
        for part in content.elements() {
            budget.blocks(1)?;
            let [text, refusal, cache_control] = part.pick(["text", "refusal", "cache_control"]);
            let text = if text.is_str() { text } else { refusal };
            write_text_block(text, cache_control, messages, "assistant");
        }
    }
    for call in tool_calls.elements() {
        budget.blocks(1)?;
        let [id, function] = call.pick(["id", "function"]);
        let [name, arguments] = function.pick(["name", "arguments"]);
        let arguments = arguments.as_str().unwrap_or_default();
        let input = tool_input(&arguments)?;
        let mut block = Obj::open(messages.block("assistant"));
        block.json("type", "\"tool_use\"");
        block.raw("id", id);
        block.raw("name", name);
        block.json("input", input);
        block.close();
    }
    Ok(())
}

/// OpenAI carries tool input as a JSON string, which models sometimes leave
/// empty for a tool without parameters; Anthropic needs the JSON itself.
pub(super) fn tool_input(arguments: &str) -> Result<&str, TranslateError> {
    if arguments.trim().is_empty() {
        return Ok("{}");
    }
    raw::value(arguments)
        .map(Raw::text)
        .map_err(|e| TranslateError::Invalid(format!("tool call arguments are not JSON: {e}")))
}

fn anthropic_tool(tool: Raw<'_>, out: &mut Vec<u8>) -> Result<(), TranslateError> {
    let [kind, function, cache_control] = tool.pick(["type", "function", "cache_control"]);
    if !kind.is_str_eq("function") {
        return Err(TranslateError::Unsupported(format!(
            "tool of type {:?}",
            kind.as_str()
        )));
    }
    let [name, description, parameters] = function.pick(["name", "description", "parameters"]);
    if !name.is_str() {
        return Err(TranslateError::Invalid(
            "function tool needs a `name`".into(),
        ));
    }
    let mut tool = Obj::open(out);
    tool.raw("name", name);
    if description.is_str() {
        tool.raw("description", description);
    }
    // Anthropic requires an object schema even for a tool without parameters.
    if parameters.is_object() {
        tool.raw("input_schema", parameters);
    } else {
        tool.json("input_schema", "{\"type\":\"object\",\"properties\":{}}");
    }
    if cache_control.is_object() {
        tool.raw("cache_control", cache_control);
    }
    tool.close();
    Ok(())
}

/// OpenAI's `tool_choice` (a mode string or a named function) as Anthropic's
/// object; `parallel_tool_calls: false` rides on it (on `auto` when the
/// client named no choice).
fn write_tool_choice(
    choice: Raw<'_>,
    disable_parallel: bool,
    out: &mut Vec<u8>,
) -> Result<(), TranslateError> {
    let mut object = Obj::open(out);
    if choice.is_null() || choice.is_str_eq("auto") {
        object.json("type", "\"auto\"");
    } else if choice.is_str_eq("required") {
        object.json("type", "\"any\"");
    } else if choice.is_str_eq("none") {
        object.json("type", "\"none\"");
    } else if let Some(other) = choice.as_str() {
        return Err(TranslateError::Invalid(format!(
            "unknown tool_choice {other:?}"
        )));
    } else {
        let name = choice.get("function").get("name");
        if !name.is_str() {
            return Err(TranslateError::Invalid(
                "tool_choice object needs `function.name`".into(),
            ));
        }
        object.json("type", "\"tool\"");
        object.raw("name", name);
    }
    if disable_parallel {
        object.json("disable_parallel_tool_use", "true");
    }
    object.close();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::translate::openai_request_to_anthropic;

    #[test]
    fn tool_arguments_must_be_exactly_one_json_value() {
        let request = |arguments: &str| {
            let arguments = sonic_rs::to_string(arguments).unwrap();
            format!(
                r#"{{"model":"m","messages":[{{"role":"assistant","tool_calls":[{{"id":"c","type":"function","function":{{"name":"f","arguments":{arguments}}}}}]}}]}}"#
            )
        };
        // Copied as the block's `input`, two values would add a member to it.
        for bad in ["1,\"x\":2", "{} ,\"cache_control\":{}", "[1] [2]"] {
            let result = openai_request_to_anthropic(request(bad).as_bytes(), "m");
            assert!(
                matches!(result, Err(TranslateError::Invalid(_))),
                "{bad}: {result:?}"
            );
        }
        let out = openai_request_to_anthropic(request(" [1, 2] ").as_bytes(), "m").unwrap();
        let out: sonic_rs::Value = sonic_rs::from_slice(&out).unwrap();
        assert_eq!(
            sonic_rs::to_string(&out["messages"][0]["content"][0]["input"]).unwrap(),
            "[1,2]"
        );
    }
}
