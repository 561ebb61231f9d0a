//! OpenAI `/v1/chat/completions` request → Bedrock Converse request body
//! (`POST /model/{modelId}/converse`, or `/converse-stream`: the model and
//! whether to stream are in the path, so neither is written here).
//!
//! The reshaping follows the Anthropic translation, whose rules Converse
//! shares: system and developer prompts become the top-level `system`
//! list, `role: tool` messages become `toolResult` blocks of a user turn,
//! consecutive turns of one role are merged (Converse too needs user and
//! assistant to alternate), empty text blocks are dropped (Converse refuses
//! blank text). Sampling settings go into `inferenceConfig`, tools into
//! `toolConfig`. What Converse cannot say is refused, not guessed:
//! `n > 1`, image URLs (it takes image bytes only), `tool_choice: none`.
//! `user` and `parallel_tool_calls` have no counterpart and are dropped.
//!
//! Prompt caching: a `cache_control` mark (on a user text or image part, a
//! system part or a tool, the convention OpenAI-style clients of Anthropic
//! use, and what the Anthropic translation keeps on its way here) becomes
//! a cache point (`{"cachePoint":{"type":"default"}}`) right after what it
//! marked, where Converse takes one: in the turn's content, after the
//! system prompt, after the tool.

use super::raw::{document, scanned_document, Raw};
use super::request_to_anthropic::tool_input;
use super::write::{joined_string, joined_text, joined_text_inner, Arr, Obj};
use super::{Budget, TranslateError, TranslateLimits};

/// Translates an OpenAI chat-completions request into a Converse body,
/// within `limits`; `validated` as for [`super::translate_request`].
pub fn openai_request_to_converse(
    body: &[u8],
    limits: TranslateLimits,
    validated: bool,
) -> Result<Vec<u8>, TranslateError> {
    let request = if validated {
        scanned_document(body)?
    } else {
        document(body)?
    };
    let [n, turns, max_completion_tokens, max_tokens, stop, temperature, top_p, tools, tool_choice] =
        request.pick([
            "n",
            "messages",
            "max_completion_tokens",
            "max_tokens",
            "stop",
            "temperature",
            "top_p",
            "tools",
            "tool_choice",
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
    let mut out = Vec::with_capacity(body.len() + 256);
    let mut top = Obj::open(&mut out);

    let mut messages = Merged::open(top.key("messages"), "content");
    let mut system_prompts = 0usize;
    let mut system_cached = false;
    for turn in turns.elements() {
        budget.message()?;
        let [role, content, tool_calls, tool_call_id] =
            turn.pick(["role", "content", "tool_calls", "tool_call_id"]);
        match role.as_str().as_deref() {
            Some("system") | Some("developer") => {
                budget.blocks(content.elements().count())?;
                system_prompts += 1;
                system_cached |= content.elements().any(marked);
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
                let mut block = Obj::open(messages.block("user"));
                let mut result = Obj::open(block.key("toolResult"));
                result.raw("toolUseId", tool_call_id);
                let mut parts = Arr::open(result.key("content"));
                let mut text = Obj::open(parts.item());
                joined_text(text.key("text"), content, "\\n");
                text.close();
                parts.close();
                result.close();
                block.close();
            }
            other => {
                return Err(TranslateError::Unsupported(format!(
                    "message role {other:?}"
                )))
            }
        }
    }
    messages.close();

    if system_prompts > 0 {
        let prompts = turns.elements().filter_map(|turn| {
            let [role, content] = turn.pick(["role", "content"]);
            (role.is_str_eq("system") || role.is_str_eq("developer")).then_some(content)
        });
        let mut system = Arr::open(top.key("system"));
        let mut block = Obj::open(system.item());
        let out = block.key("text");
        out.push(b'"');
        for (i, content) in prompts.enumerate() {
            if i > 0 {
                out.extend_from_slice(b"\\n\\n");
            }
            joined_text_inner(out, content, "\\n\\n");
        }
        out.push(b'"');
        block.close();
        if system_cached {
            system.item().extend_from_slice(CACHE_POINT);
        }
        system.close();
    }

    let max_tokens = max_completion_tokens
        .as_u64()
        .or_else(|| max_tokens.as_u64());
    let has_stop = stop.is_str() || stop.elements().next().is_some();
    if max_tokens.is_some() || has_stop || temperature.is_number() || top_p.is_number() {
        let mut config = Obj::open(top.key("inferenceConfig"));
        if let Some(max_tokens) = max_tokens {
            config.u64("maxTokens", max_tokens);
        }
        if let Some(value) = temperature.as_f64() {
            // OpenAI's range is 0..=2; the models behind Converse take 0..=1
            // and refuse the rest.
            let clamped = value.clamp(0.0, 1.0);
            if clamped == value {
                config.raw("temperature", temperature);
            } else {
                config.json("temperature", if clamped == 0.0 { "0.0" } else { "1.0" });
            }
        }
        if top_p.is_number() {
            config.raw("topP", top_p);
        }
        if stop.is_str() {
            let mut sequences = Arr::open(config.key("stopSequences"));
            sequences.item().extend_from_slice(stop.text().as_bytes());
            sequences.close();
        } else if has_stop {
            config.raw("stopSequences", stop);
        }
        config.close();
    }

    if tools.elements().next().is_some() {
        let mut config = Obj::open(top.key("toolConfig"));
        let mut specs = Arr::open(config.key("tools"));
        for tool in tools.elements() {
            budget.blocks(1)?;
            tool_spec(tool, specs.item())?;
            if marked(tool) {
                specs.item().extend_from_slice(CACHE_POINT);
            }
        }
        specs.close();
        if !tool_choice.is_null() {
            write_tool_choice(tool_choice, config.key("toolChoice"))?;
        }
        config.close();
    } else if !(tool_choice.is_null()
        || tool_choice.is_str_eq("auto")
        || tool_choice.is_str_eq("none"))
    {
        // Without tools, `auto` and `none` both mean what Converse does
        // anyway (no tool is called); a choice that needs a tool cannot be met.
        return Err(TranslateError::Invalid(
            "`tool_choice` without `tools`".into(),
        ));
    }
    top.close();
    Ok(out)
}

/// The turns array being written, consecutive blocks of one role in one
/// turn (as in the Anthropic translation; the shape is the same). Converse
/// names a turn's list `content`, Gemini `parts`.
pub(super) struct Merged<'o> {
    out: &'o mut Vec<u8>,
    blocks_key: &'static str,
    open_role: Option<&'static str>,
}

impl<'o> Merged<'o> {
    pub fn open(out: &'o mut Vec<u8>, blocks_key: &'static str) -> Self {
        out.push(b'[');
        Self {
            out,
            blocks_key,
            open_role: None,
        }
    }

    pub fn block(&mut self, role: &'static str) -> &mut Vec<u8> {
        match self.open_role {
            Some(open) if open == role => self.out.push(b','),
            open => {
                if open.is_some() {
                    self.out.extend_from_slice(b"]},");
                }
                self.out.extend_from_slice(b"{\"role\":\"");
                self.out.extend_from_slice(role.as_bytes());
                self.out.extend_from_slice(b"\",\"");
                self.out.extend_from_slice(self.blocks_key.as_bytes());
                self.out.extend_from_slice(b"\":[");
                self.open_role = Some(role);
            }
        }
        self.out
    }

    pub fn close(self) {
        if self.open_role.is_some() {
            self.out.extend_from_slice(b"]}");
        }
        self.out.push(b']');
    }
}

/// A cache point, as a content block, a system block or a tool.
const CACHE_POINT: &[u8] = b"{\"cachePoint\":{\"type\":\"default\"}}";

/// Whether a part or tool carries Anthropic's `cache_control` mark.
fn marked(part: Raw<'_>) -> bool {
    part.get("cache_control").is_object()
}

/// A `{"text": …}` block, which Converse and Gemini share; blank text is
/// dropped (both refuse it). Whether one was written.
pub(super) fn write_text_block(
    text: Raw<'_>,
    messages: &mut Merged<'_>,
    role: &'static str,
) -> bool {
    let written = text.str_inner().is_some_and(|t| !t.trim().is_empty());
    if written {
        let mut block = Obj::open(messages.block(role));
        block.raw("text", text);
        block.close();
    }
    written
}

fn push_user_blocks(
    content: Raw<'_>,
    messages: &mut Merged<'_>,
    budget: &mut Budget,
) -> Result<(), TranslateError> {
    if content.is_str() {
        write_text_block(content, messages, "user");
        return Ok(());
    }
    if !content.is_array() {
        return Err(TranslateError::Invalid(
            "message content must be a string or an array".into(),
        ));
    }
    for part in content.elements() {
        budget.blocks(1)?;
        let [kind, text, image_url] = part.pick(["type", "text", "image_url"]);
        let written = if kind.is_str_eq("text") {
            write_text_block(text, messages, "user")
        } else if kind.is_str_eq("image_url") {
            write_image_block(image_url.get("url"), messages)?;
            true
        } else {
            return Err(TranslateError::Unsupported(format!(
                "user content part {:?}",
                kind.as_str()
            )));
        };
        if written && marked(part) {
            messages.block("user").extend_from_slice(CACHE_POINT);
        }
    }
    Ok(())
}

/// A base64 data URL as an image block with its bytes. Converse takes the
/// base64 text as it is, so the data is copied, not decoded.
fn write_image_block(url: Raw<'_>, messages: &mut Merged<'_>) -> Result<(), TranslateError> {
    let Some(inner) = url.str_inner() else {
        return Err(TranslateError::Invalid(
            "image_url part needs a `url`".into(),
        ));
    };
    let decoded = url.as_str().unwrap_or_default();
    let text = if inner.contains('\\') {
        &*decoded
    } else {
        inner
    };
    let Some(data_url) = text.strip_prefix("data:") else {
        return Err(TranslateError::Unsupported(
            "image URLs (Bedrock takes image bytes: send a base64 data URL)".into(),
        ));
    };
    let Some((media_type, data)) = data_url.split_once(";base64,") else {
        return Err(TranslateError::Unsupported(
            "image data URL that is not base64".into(),
        ));
    };
    let format = match media_type {
        "image/png" => "png",
        "image/jpeg" | "image/jpg" => "jpeg",
        "image/gif" => "gif",
        "image/webp" => "webp",
        other => {
            return Err(TranslateError::Unsupported(format!("image type {other:?}")));
        }
    };
    let mut block = Obj::open(messages.block("user"));
    let mut image = Obj::open(block.key("image"));
    image.json("format", &format!("\"{format}\""));
    let mut source = Obj::open(image.key("source"));
    // Base64 has no characters JSON escapes, so the text is its own escape.
    joined_string(source.key("bytes"), [data], "");
    source.close();
    image.close();
    block.close();
    Ok(())
}

fn push_assistant_blocks(
    content: Raw<'_>,
    tool_calls: Raw<'_>,
    messages: &mut Merged<'_>,
    budget: &mut Budget,
) -> Result<(), TranslateError> {
    if content.is_str() {
        write_text_block(content, messages, "assistant");
    } else {
        for part in content.elements() {
            budget.blocks(1)?;
            let [text, refusal] = part.pick(["text", "refusal"]);
            let text = if text.is_str() { text } else { refusal };
            write_text_block(text, messages, "assistant");
        }
    }
    for call in tool_calls.elements() {
        budget.blocks(1)?;
        let [id, function] = call.pick(["id", "function"]);
        let [name, arguments] = function.pick(["name", "arguments"]);
        if !id.is_str() || !name.is_str() {
            return Err(TranslateError::Invalid(
                "tool call needs `id` and `function.name`".into(),
            ));
        }
        let arguments = arguments.as_str().unwrap_or_default();
        let input = tool_input(&arguments)?;
        let mut block = Obj::open(messages.block("assistant"));
        let mut tool_use = Obj::open(block.key("toolUse"));
        tool_use.raw("toolUseId", id);
        tool_use.raw("name", name);
        tool_use.json("input", input);
        tool_use.close();
        block.close();
    }
    Ok(())
}

fn tool_spec(tool: Raw<'_>, out: &mut Vec<u8>) -> Result<(), TranslateError> {
    let [kind, function] = tool.pick(["type", "function"]);
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
    let mut wrapper = Obj::open(out);
    let mut spec = Obj::open(wrapper.key("toolSpec"));
    spec.raw("name", name);
    if description.is_str() {
        spec.raw("description", description);
    }
    let mut schema = Obj::open(spec.key("inputSchema"));
    if parameters.is_object() {
        schema.raw("json", parameters);
    } else {
        schema.json("json", "{\"type\":\"object\",\"properties\":{}}");
    }
    schema.close();
    spec.close();
    wrapper.close();
    Ok(())
}

/// `auto` → `{"auto":{}}`, `required` → `{"any":{}}`, a named function →
/// `{"tool":{"name":…}}`; Converse has no way to say `none`.
fn write_tool_choice(choice: Raw<'_>, out: &mut Vec<u8>) -> Result<(), TranslateError> {
    let mut object = Obj::open(out);
    if choice.is_str_eq("auto") {
        object.json("auto", "{}");
    } else if choice.is_str_eq("required") {
        object.json("any", "{}");
    } else if choice.is_str_eq("none") {
        return Err(TranslateError::Unsupported(
            "`tool_choice: none` (Bedrock Converse cannot forbid the tools it is given)".into(),
        ));
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
        let mut tool = Obj::open(object.key("tool"));
        tool.raw("name", name);
        tool.close();
    }
    object.close();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn translate(body: Value) -> Result<Value, TranslateError> {
        let body = body.to_string();
        let out = openai_request_to_converse(body.as_bytes(), TranslateLimits::DEFAULT, false)?;
        Ok(serde_json::from_slice(&out).expect("the output is JSON"))
    }

    #[test]
    fn a_conversation_with_tools() {
        let got = translate(json!({
            "model": "gpt-4o",
            "stream": true,
            "user": "u-1",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": [{"type": "text", "text": "Use tools."}]},
                {"role": "user", "content": "Weather in \"Paris\"?"},
                {"role": "assistant", "content": "", "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "time", "arguments": ""}}
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
                {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "noon"}]},
                {"role": "user", "content": [{"type": "text", "text": "Thanks"}, {"type": "text", "text": ""}]}
            ],
            "max_completion_tokens": 200,
            "temperature": 1.5,
            "top_p": 0.9,
            "stop": "END",
            "tools": [
                {"type": "function", "function": {"name": "weather", "description": "Weather.", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
                {"type": "function", "function": {"name": "time"}}
            ],
            "tool_choice": "required",
            "parallel_tool_calls": false
        }))
        .unwrap();
        assert_eq!(
            got,
            json!({
                "messages": [
                    {"role": "user", "content": [{"text": "Weather in \"Paris\"?"}]},
                    {"role": "assistant", "content": [
                        {"toolUse": {"toolUseId": "call_1", "name": "weather", "input": {"city": "Paris"}}},
                        {"toolUse": {"toolUseId": "call_2", "name": "time", "input": {}}}
                    ]},
                    {"role": "user", "content": [
                        {"toolResult": {"toolUseId": "call_1", "content": [{"text": "18C"}]}},
                        {"toolResult": {"toolUseId": "call_2", "content": [{"text": "noon"}]}},
                        {"text": "Thanks"}
                    ]}
                ],
                "system": [{"text": "Be brief.\n\nUse tools."}],
                "inferenceConfig": {"maxTokens": 200, "temperature": 1.0, "topP": 0.9, "stopSequences": ["END"]},
                "toolConfig": {
                    "tools": [
                        {"toolSpec": {"name": "weather", "description": "Weather.", "inputSchema": {"json": {"type": "object", "properties": {"city": {"type": "string"}}}}}},
                        {"toolSpec": {"name": "time", "inputSchema": {"json": {"type": "object", "properties": {}}}}}
                    ],
                    "toolChoice": {"any": {}}
                }
            })
        );
    }

    #[test]
    fn cache_marks_become_cache_points_after_what_they_mark() {
        let point = json!({"cachePoint": {"type": "default"}});
        let got = translate(json!({
            "messages": [
                {"role": "system", "content": [{"type": "text", "text": "Rules.", "cache_control": {"type": "ephemeral"}}]},
                {"role": "user", "content": [
                    {"type": "text", "text": "Doc.", "cache_control": {"type": "ephemeral"}},
                    {"type": "text", "text": " ", "cache_control": {"type": "ephemeral"}},
                    {"type": "text", "text": "Q?"}
                ]}
            ],
            "tools": [
                {"type": "function", "function": {"name": "a", "parameters": {"type": "object"}}, "cache_control": {"type": "ephemeral"}},
                {"type": "function", "function": {"name": "b", "parameters": {"type": "object"}}}
            ]
        }))
        .unwrap();
        assert_eq!(got["system"], json!([{"text": "Rules."}, point]));
        // A mark on a dropped (blank) part marks nothing.
        assert_eq!(
            got["messages"][0]["content"],
            json!([{"text": "Doc."}, point, {"text": "Q?"}])
        );
        let tools = got["toolConfig"]["tools"].as_array().unwrap();
        assert_eq!(tools.len(), 3);
        assert_eq!(tools[1], point);
        assert_eq!(tools[2]["toolSpec"]["name"], "b");
        // Without marks, none.
        let plain = translate(json!({"messages": [{"role": "user", "content": "hi"}]})).unwrap();
        assert!(!plain.to_string().contains("cachePoint"));
    }

    #[test]
    fn minimal_request_has_no_optional_sections() {
        let got = translate(json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}))
            .unwrap();
        assert_eq!(
            got,
            json!({"messages": [{"role": "user", "content": [{"text": "hi"}]}]})
        );
    }

    #[test]
    fn tool_choices() {
        let with = |choice: Value| {
            translate(json!({
                "messages": [{"role": "user", "content": "hi"}],
                "tools": [{"type": "function", "function": {"name": "f"}}],
                "tool_choice": choice
            }))
        };
        assert_eq!(
            with(json!("auto")).unwrap()["toolConfig"]["toolChoice"],
            json!({"auto": {}})
        );
        assert_eq!(
            with(json!({"type": "function", "function": {"name": "f"}})).unwrap()["toolConfig"]
                ["toolChoice"],
            json!({"tool": {"name": "f"}})
        );
        assert!(matches!(
            with(json!("none")),
            Err(TranslateError::Unsupported(_))
        ));
        assert!(matches!(
            with(json!("sometimes")),
            Err(TranslateError::Invalid(_))
        ));
        assert!(matches!(
            with(json!({"type": "function"})),
            Err(TranslateError::Invalid(_))
        ));
    }

    #[test]
    fn images_as_bytes_only() {
        let with = |url: &str| {
            translate(json!({"messages": [{"role": "user", "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": url}}
            ]}]}))
        };
        let got = with("data:image/png;base64,iVBORw0KGgo=").unwrap();
        assert_eq!(
            got["messages"][0]["content"][1],
            json!({"image": {"format": "png", "source": {"bytes": "iVBORw0KGgo="}}})
        );
        assert_eq!(
            with("data:image/jpeg;base64,/9j/4AAQ").unwrap()["messages"][0]["content"][1]["image"]
                ["format"],
            "jpeg"
        );
        assert!(matches!(
            with("https://example.com/cat.png"),
            Err(TranslateError::Unsupported(_))
        ));
        assert!(matches!(
            with("data:image/tiff;base64,AAAA"),
            Err(TranslateError::Unsupported(_))
        ));
        assert!(matches!(
            with("data:image/png,rawbytes"),
            Err(TranslateError::Unsupported(_))
        ));
    }

    #[test]
    fn refusals_and_limits() {
        let bad = [
            json!({"n": 2, "messages": [{"role": "user", "content": "hi"}]}),
            json!({"messages": "hi"}),
            json!({"messages": [{"role": "tool", "content": "x"}]}),
            json!({"messages": [{"role": "wizard", "content": "x"}]}),
            json!({"messages": [{"role": "user", "content": 5}]}),
            json!({"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{} ,\"x\":1"}}]}]}),
            json!({"messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "code_interpreter"}]}),
            json!({"messages": [{"role": "user", "content": "hi"}], "tool_choice": "required"}),
        ];
        for body in bad {
            assert!(translate(body.clone()).is_err(), "{body}");
        }
        let many: Vec<Value> = (0..3)
            .map(|_| json!({"role": "user", "content": "hi"}))
            .collect();
        let body = json!({"messages": many}).to_string();
        let limits = TranslateLimits {
            max_messages: 2,
            max_blocks: 100,
        };
        assert_eq!(
            openai_request_to_converse(body.as_bytes(), limits, false),
            Err(TranslateError::TooLarge {
                what: "messages",
                limit: 2
            })
        );
    }
}
