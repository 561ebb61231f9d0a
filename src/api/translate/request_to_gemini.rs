//! OpenAI `/v1/chat/completions` request → Gemini `generateContent` body
//! (the Gemini API's `models/{model}:generateContent` and Vertex AI's
//! `publishers/google/models/{model}:generateContent`, or their
//! `:streamGenerateContent?alt=sse`: the model and whether to stream are in
//! the path, so neither is written here).
//!
//! The reshaping follows the Converse one: system and developer prompts
//! become `systemInstruction`, turns are `contents` with roles `user` and
//! `model`, consecutive turns of one role are merged into one content of
//! several parts, blank text parts are dropped. Assistant tool calls become
//! `functionCall {name, args}` parts and `role: tool` messages
//! `functionResponse {name, response: {output}}` parts of a user turn;
//! Gemini keys a response by the function's name, not a call id, so the
//! name is looked up from the assistant call with that `tool_call_id`.
//! Sampling settings go into `generationConfig`, tools into
//! `tools[0].functionDeclarations` and `tool_choice` into
//! `toolConfig.functionCallingConfig`.
//!
//! Schemas are JSON Schema in OpenAI's dialect, and Gemini's `parameters`
//! and `responseSchema` take an OpenAPI subset that refuses some of it
//! (`additionalProperties`, `$ref`), so they go as they are into the fields
//! that take JSON Schema: `parametersJsonSchema` and `responseJsonSchema`.
//! Image data URLs become `inlineData`; other image URLs become `fileData`
//! (Gemini fetches what it can: File API and `gs://` URIs, public URLs for
//! the models that take them), with the `mimeType` its extension names if
//! it names one. Refused, not guessed: `n > 1` (as for Converse), audio and
//! file parts, tools other than functions. `user`, `parallel_tool_calls`,
//! `logprobs` and Anthropic's `cache_control` have no counterpart and are
//! dropped.

use std::borrow::Cow;
use std::collections::HashMap;

use super::raw::{document, scanned_document, Raw};
use super::request_to_anthropic::tool_input;
use super::request_to_converse::{write_text_block, Merged};
use super::write::{joined_text, joined_text_inner, Arr, Obj};
use super::{Budget, TranslateError, TranslateLimits};

/// Translates an OpenAI chat-completions request into a Gemini
/// `generateContent` body, within `limits`; `validated` as for
/// [`super::translate_request`].
pub fn openai_request_to_gemini(
    body: &[u8],
    limits: TranslateLimits,
    validated: bool,
) -> Result<Vec<u8>, TranslateError> {
    let request = if validated {
        scanned_document(body)?
    } else {
        document(body)?
    };
    let [n, turns, max_completion_tokens, max_tokens, stop, temperature, top_p, seed, presence, frequency, response_format, tools, tool_choice] =
        request.pick([
            "n",
            "messages",
            "max_completion_tokens",
            "max_tokens",
            "stop",
            "temperature",
            "top_p",
            "seed",
            "presence_penalty",
            "frequency_penalty",
            "response_format",
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

    let mut contents = Merged::open(top.key("contents"), "parts");
    // Tool call id → function name, for the tool messages that answer them.
    let mut call_names: HashMap<Cow<'_, str>, Raw<'_>> = HashMap::new();
    let mut system_prompts = 0usize;
    for turn in turns.elements() {
        budget.message()?;
        let [role, content, tool_calls, tool_call_id] =
            turn.pick(["role", "content", "tool_calls", "tool_call_id"]);
        match role.as_str().as_deref() {
            Some("system") | Some("developer") => {
                budget.blocks(content.elements().count())?;
                system_prompts += 1;
            }
            Some("user") => push_user_parts(content, &mut contents, &mut budget)?,
            Some("assistant") => {
                push_model_parts(content, &mut contents, &mut budget)?;
                for call in tool_calls.elements() {
                    budget.blocks(1)?;
                    let [id, function] = call.pick(["id", "function"]);
                    let name = function_call(function, contents.block("model"))?;
                    if let Some(id) = id.as_str() {
                        call_names.insert(id, name);
                    }
                }
            }
            Some("tool") => {
                let Some(id) = tool_call_id.as_str() else {
                    return Err(TranslateError::Invalid(
                        "tool message needs `tool_call_id`".into(),
                    ));
                };
                let Some(&name) = call_names.get(&id) else {
                    return Err(TranslateError::Invalid(format!(
                        "tool message answers no earlier tool call ({id:?}); Gemini needs the function's name"
                    )));
                };
                budget.blocks(1)?;
                let mut part = Obj::open(contents.block("user"));
                let mut answer = Obj::open(part.key("functionResponse"));
                answer.raw("name", name);
                let mut response = Obj::open(answer.key("response"));
                // `output` is the key Google's docs name for a function's result.
                joined_text(response.key("output"), content, "\\n");
                response.close();
                answer.close();
                part.close();
            }
            other => {
                return Err(TranslateError::Unsupported(format!(
                    "message role {other:?}"
                )))
            }
        }
    }
    contents.close();

    if system_prompts > 0 {
        let prompts = turns.elements().filter_map(|turn| {
            let [role, content] = turn.pick(["role", "content"]);
            (role.is_str_eq("system") || role.is_str_eq("developer")).then_some(content)
        });
        let mut instruction = Obj::open(top.key("systemInstruction"));
        let mut parts = Arr::open(instruction.key("parts"));
        let mut part = Obj::open(parts.item());
        let out = part.key("text");
        out.push(b'"');
        for (i, content) in prompts.enumerate() {
            if i > 0 {
                out.extend_from_slice(b"\\n\\n");
            }
            joined_text_inner(out, content, "\\n\\n");
        }
        out.push(b'"');
        part.close();
        parts.close();
        instruction.close();
    }

    let max_tokens = max_completion_tokens
        .as_u64()
        .or_else(|| max_tokens.as_u64());
    let has_stop = stop.is_str() || stop.elements().next().is_some();
    let json_mode = json_response(response_format)?;
    let settings = [temperature, top_p, seed, presence, frequency];
    if max_tokens.is_some()
        || has_stop
        || json_mode.is_some()
        || settings.iter().any(|s| s.is_number())
    {
        let mut config = Obj::open(top.key("generationConfig"));
        // Gemini's ranges are OpenAI's (temperature 0..=2, penalties
        // -2..2), so the numbers go as they are.
        for (key, value) in [
            "temperature",
            "topP",
            "seed",
            "presencePenalty",
            "frequencyPenalty",
        ]
        .into_iter()
        .zip(settings)
        {
            if value.is_number() {
                config.raw(key, value);
            }
        }
        if let Some(max_tokens) = max_tokens {
            config.u64("maxOutputTokens", max_tokens);
        }
        if stop.is_str() {
            let mut sequences = Arr::open(config.key("stopSequences"));
            sequences.item().extend_from_slice(stop.text().as_bytes());
            sequences.close();
        } else if has_stop {
            config.raw("stopSequences", stop);
        }
        if let Some(schema) = json_mode {
            config.json("responseMimeType", "\"application/json\"");
            if schema.is_object() {
                config.raw("responseJsonSchema", schema);
            }
        }
        config.close();
    }

    if tools.elements().next().is_some() {
        let mut list = Arr::open(top.key("tools"));
        let mut tool = Obj::open(list.item());
        let mut declarations = Arr::open(tool.key("functionDeclarations"));
        for spec in tools.elements() {
            budget.blocks(1)?;
            function_declaration(spec, declarations.item())?;
        }
        declarations.close();
        tool.close();
        list.close();
        if !tool_choice.is_null() {
            let mut config = Obj::open(top.key("toolConfig"));
            write_tool_choice(tool_choice, config.key("functionCallingConfig"))?;
            config.close();
        }
    } else if !(tool_choice.is_null()
        || tool_choice.is_str_eq("auto")
        || tool_choice.is_str_eq("none"))
    {
        // Without tools, `auto` and `none` both mean what Gemini does anyway
        // (no function is called); a choice that needs a tool cannot be met.
        return Err(TranslateError::Invalid(
            "`tool_choice` without `tools`".into(),
        ));
    }
    top.close();
    Ok(out)
}

/// `Some(schema)` when the client asked for JSON output: the schema of a
/// `json_schema` format ([`super::raw::NULL`] for `json_object`).
fn json_response(format: Raw<'_>) -> Result<Option<Raw<'_>>, TranslateError> {
    let [kind, json_schema] = format.pick(["type", "json_schema"]);
    if format.is_null() || kind.is_str_eq("text") {
        Ok(None)
    } else if kind.is_str_eq("json_object") {
        Ok(Some(super::raw::NULL))
    } else if kind.is_str_eq("json_schema") {
        Ok(Some(json_schema.get("schema")))
    } else {
        Err(TranslateError::Invalid(format!(
            "unknown response_format type {:?}",
            kind.as_str()
        )))
    }
}

fn push_user_parts(
    content: Raw<'_>,
    contents: &mut Merged<'_>,
    budget: &mut Budget,
) -> Result<(), TranslateError> {
    if content.is_str() {
        write_text_block(content, contents, "user");
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
        if kind.is_str_eq("text") {
            write_text_block(text, contents, "user");
        } else if kind.is_str_eq("image_url") {
            write_image_part(image_url.get("url"), contents.block("user"))?;
        } else {
            return Err(TranslateError::Unsupported(format!(
                "user content part {:?}",
                kind.as_str()
            )));
        }
    }
    Ok(())
}

/// A base64 data URL as `inlineData` (its base64 copied, not decoded), any
/// other URL as `fileData`.
fn write_image_part(url: Raw<'_>, out: &mut Vec<u8>) -> Result<(), TranslateError> {
    let Some(url) = url.as_str() else {
        return Err(TranslateError::Invalid(
            "image_url part needs a `url`".into(),
        ));
    };
    let mut part = Obj::open(out);
    if let Some(data_url) = url.strip_prefix("data:") {
        let Some((mime_type, data)) = data_url.split_once(";base64,") else {
            return Err(TranslateError::Unsupported(
                "image data URL that is not base64".into(),
            ));
        };
        let mut inline = Obj::open(part.key("inlineData"));
        inline.str("mimeType", mime_type);
        inline.str("data", data);
        inline.close();
    } else {
        let mut file = Obj::open(part.key("fileData"));
        if let Some(mime_type) = image_type_of(&url) {
            file.str("mimeType", mime_type);
        }
        file.str("fileUri", &url);
        file.close();
    }
    part.close();
    Ok(())
}

/// The image type a URL's path ends in, if it is one Gemini reads.
fn image_type_of(url: &str) -> Option<&'static str> {
    let path = url.split(['?', '#']).next().unwrap_or_default();
    let extension = path.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match extension.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "heic" => "image/heic",
        "heif" => "image/heif",
        "gif" => "image/gif",
        _ => return None,
    })
}

fn push_model_parts(
    content: Raw<'_>,
    contents: &mut Merged<'_>,
    budget: &mut Budget,
) -> Result<(), TranslateError> {
    if content.is_str() {
        write_text_block(content, contents, "model");
        return Ok(());
    }
    for part in content.elements() {
        budget.blocks(1)?;
        let [text, refusal] = part.pick(["text", "refusal"]);
        let text = if text.is_str() { text } else { refusal };
        write_text_block(text, contents, "model");
    }
    Ok(())
}

/// Writes an assistant tool call's `functionCall` part; returns its name.
fn function_call<'a>(function: Raw<'a>, out: &mut Vec<u8>) -> Result<Raw<'a>, TranslateError> {
    let [name, arguments] = function.pick(["name", "arguments"]);
    if !name.is_str() {
        return Err(TranslateError::Invalid(
            "tool call needs `function.name`".into(),
        ));
    }
    let arguments = arguments.as_str().unwrap_or_default();
    let args = tool_input(&arguments)?;
    // Gemini's `args` is a Struct: arguments that are JSON but not an object
    // have nowhere to go.
    if !args.starts_with('{') {
        return Err(TranslateError::Invalid(
            "tool call arguments must be a JSON object".into(),
        ));
    }
    let mut part = Obj::open(out);
    let mut call = Obj::open(part.key("functionCall"));
    call.raw("name", name);
    call.json("args", args);
    call.close();
    part.close();
    Ok(name)
}

fn function_declaration(tool: Raw<'_>, out: &mut Vec<u8>) -> Result<(), TranslateError> {
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
    let mut declaration = Obj::open(out);
    declaration.raw("name", name);
    if description.is_str() {
        declaration.raw("description", description);
    }
    // A function without parameters leaves them unset.
    if parameters.is_object() {
        declaration.raw("parametersJsonSchema", parameters);
    }
    declaration.close();
    Ok(())
}

/// `auto` → `AUTO`, `required` → `ANY`, `none` → `NONE`, a named function
/// → `ANY` limited to it.
fn write_tool_choice(choice: Raw<'_>, out: &mut Vec<u8>) -> Result<(), TranslateError> {
    let mut config = Obj::open(out);
    if choice.is_str_eq("auto") {
        config.json("mode", "\"AUTO\"");
    } else if choice.is_str_eq("required") {
        config.json("mode", "\"ANY\"");
    } else if choice.is_str_eq("none") {
        config.json("mode", "\"NONE\"");
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
        config.json("mode", "\"ANY\"");
        let mut names = Arr::open(config.key("allowedFunctionNames"));
        names.item().extend_from_slice(name.text().as_bytes());
        names.close();
    }
    config.close();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn translate(body: Value) -> Result<Value, TranslateError> {
        let body = body.to_string();
        let out = openai_request_to_gemini(body.as_bytes(), TranslateLimits::DEFAULT, false)?;
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
                {"role": "developer", "content": [{"type": "text", "text": "Use tools.", "cache_control": {"type": "ephemeral"}}]},
                {"role": "user", "content": "Weather in \"Paris\"?"},
                {"role": "assistant", "content": "Checking.", "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "time", "arguments": ""}}
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
                {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "noon"}]},
                {"role": "user", "content": [{"type": "text", "text": "Thanks"}, {"type": "text", "text": ""}]}
            ],
            "max_completion_tokens": 200,
            "max_tokens": 5,
            "temperature": 1.5,
            "top_p": 0.9,
            "seed": 7,
            "presence_penalty": 0.5,
            "frequency_penalty": -0.5,
            "stop": "END",
            "tools": [
                {"type": "function", "function": {"name": "weather", "description": "Weather.", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "additionalProperties": false}}},
                {"type": "function", "function": {"name": "time"}}
            ],
            "tool_choice": "required",
            "parallel_tool_calls": false
        }))
        .unwrap();
        assert_eq!(
            got,
            json!({
                "contents": [
                    {"role": "user", "parts": [{"text": "Weather in \"Paris\"?"}]},
                    {"role": "model", "parts": [
                        {"text": "Checking."},
                        {"functionCall": {"name": "weather", "args": {"city": "Paris"}}},
                        {"functionCall": {"name": "time", "args": {}}}
                    ]},
                    {"role": "user", "parts": [
                        {"functionResponse": {"name": "weather", "response": {"output": "18C"}}},
                        {"functionResponse": {"name": "time", "response": {"output": "noon"}}},
                        {"text": "Thanks"}
                    ]}
                ],
                "systemInstruction": {"parts": [{"text": "Be brief.\n\nUse tools."}]},
                "generationConfig": {
                    "temperature": 1.5, "topP": 0.9, "seed": 7,
                    "presencePenalty": 0.5, "frequencyPenalty": -0.5,
                    "maxOutputTokens": 200, "stopSequences": ["END"]
                },
                "tools": [{"functionDeclarations": [
                    {"name": "weather", "description": "Weather.", "parametersJsonSchema": {"type": "object", "properties": {"city": {"type": "string"}}, "additionalProperties": false}},
                    {"name": "time"}
                ]}],
                "toolConfig": {"functionCallingConfig": {"mode": "ANY"}}
            })
        );
    }

    #[test]
    fn minimal_request_has_no_optional_sections() {
        let got = translate(json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}))
            .unwrap();
        assert_eq!(
            got,
            json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]})
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
        let config = |v: Value| v["toolConfig"]["functionCallingConfig"].clone();
        assert_eq!(
            config(with(json!("auto")).unwrap()),
            json!({"mode": "AUTO"})
        );
        assert_eq!(
            config(with(json!("none")).unwrap()),
            json!({"mode": "NONE"})
        );
        assert_eq!(
            config(with(json!({"type": "function", "function": {"name": "f"}})).unwrap()),
            json!({"mode": "ANY", "allowedFunctionNames": ["f"]})
        );
        assert!(matches!(
            with(json!("sometimes")),
            Err(TranslateError::Invalid(_))
        ));
        assert!(matches!(
            with(json!({"type": "function"})),
            Err(TranslateError::Invalid(_))
        ));
        let none_without_tools = translate(json!({
            "messages": [{"role": "user", "content": "hi"}], "tool_choice": "none"
        }))
        .unwrap();
        assert!(none_without_tools.get("toolConfig").is_none());
    }

    #[test]
    fn images_inline_or_by_uri() {
        let with = |url: &str| {
            translate(json!({"messages": [{"role": "user", "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": url, "detail": "high"}}
            ]}]}))
        };
        assert_eq!(
            with("data:image/png;base64,iVBORw0KGgo=").unwrap()["contents"][0]["parts"][1],
            json!({"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}})
        );
        assert_eq!(
            with("https://example.com/cat.JPG?size=2").unwrap()["contents"][0]["parts"][1],
            json!({"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/cat.JPG?size=2"}})
        );
        assert_eq!(
            with("gs://bucket/cat").unwrap()["contents"][0]["parts"][1],
            json!({"fileData": {"fileUri": "gs://bucket/cat"}})
        );
        assert!(matches!(
            with("data:image/png,rawbytes"),
            Err(TranslateError::Unsupported(_))
        ));
    }

    #[test]
    fn response_formats() {
        let with = |format: Value| {
            translate(
                json!({"messages": [{"role": "user", "content": "hi"}], "response_format": format}),
            )
        };
        assert!(with(json!({"type": "text"}))
            .unwrap()
            .get("generationConfig")
            .is_none());
        assert_eq!(
            with(json!({"type": "json_object"})).unwrap()["generationConfig"],
            json!({"responseMimeType": "application/json"})
        );
        let schema =
            json!({"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]});
        assert_eq!(
            with(json!({"type": "json_schema", "json_schema": {"name": "x", "strict": true, "schema": schema}}))
                .unwrap()["generationConfig"],
            json!({"responseMimeType": "application/json", "responseJsonSchema": schema})
        );
        assert!(matches!(
            with(json!({"type": "yaml"})),
            Err(TranslateError::Invalid(_))
        ));
    }

    #[test]
    fn tool_messages_need_the_call_they_answer() {
        let body = |id: &str| {
            json!({"messages": [
                {"role": "assistant", "tool_calls": [{"id": "c\u{e9}", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": id, "content": "ok"}
            ]})
        };
        let got = translate(body("c\u{e9}")).unwrap();
        assert_eq!(
            got["contents"][1],
            json!({"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {"output": "ok"}}}]})
        );
        assert!(matches!(
            translate(body("other")),
            Err(TranslateError::Invalid(_))
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
            json!({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]}),
            json!({"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{} ,\"x\":1"}}]}]}),
            json!({"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "[1]"}}]}]}),
            json!({"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "function": {"arguments": "{}"}}]}]}),
            json!({"messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "web_search"}]}),
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
            openai_request_to_gemini(body.as_bytes(), limits, false),
            Err(TranslateError::TooLarge {
                what: "messages",
                limit: 2
            })
        );
    }
}
