//! OpenAI `/v1/chat/completions` request → Cohere `POST /v2/chat` body.
//!
//! Cohere's v2 chat is shaped like OpenAI's: the same roles (system
//! messages inline, where the client put them; `developer` is `system`),
//! text and `image_url` parts (vision models), the same `tool_calls` and
//! function tools, `tool` messages answering a `tool_call_id`. So each turn
//! is written as one message, in order, its members copied from the
//! input's text; nothing is merged or moved. Settings are renamed (`top_p`
//! → `p`, `stop` → `stop_sequences`, `max_completion_tokens` →
//! `max_tokens`) and brought into Cohere's ranges where they are narrower
//! than OpenAI's (`p` 0.01..=0.99, the penalties 0..=1), as the Bedrock
//! translation clamps temperature.
//!
//! What Cohere cannot say is refused, as `request_to_converse` refuses it:
//! `n > 1`, content parts other than text and images (audio, files), tools
//! other than functions, a `tool_choice` naming a function (Cohere can
//! require some tool or forbid them, not pick one), a `response_format`
//! other than text, JSON or a JSON schema. What only asks for extras or
//! says who asked is dropped, as there (neither reads it): `logprobs` and
//! `top_logprobs` (the translated response has `logprobs: null`), `audio`
//! and `modalities`, `user`, `parallel_tool_calls`, a function's `strict`,
//! `stream_options` (Cohere ends every stream with its usage), `metadata`,
//! `store`, `service_tier`, `reasoning_effort`.

use super::raw::{document, scanned_document, Raw};
use super::request_to_anthropic::tool_input;
use super::write::{Arr, Obj};
use super::{Budget, TranslateError, TranslateLimits};

/// Translates an OpenAI chat-completions request into a Cohere v2 chat
/// body for `upstream_model`, within `limits`; `validated` as for
/// [`super::translate_request`].
pub fn openai_request_to_cohere_chat(
    body: &[u8],
    upstream_model: &str,
    limits: TranslateLimits,
    validated: bool,
) -> Result<Vec<u8>, TranslateError> {
    let request = if validated {
        scanned_document(body)?
    } else {
        document(body)?
    };
    let [n, turns, max_completion_tokens, max_tokens, stop, temperature, top_p, seed, frequency_penalty, presence_penalty, response_format, stream, tools, tool_choice] =
        request.pick([
            "n",
            "messages",
            "max_completion_tokens",
            "max_tokens",
            "stop",
            "temperature",
            "top_p",
            "seed",
            "frequency_penalty",
            "presence_penalty",
            "response_format",
            "stream",
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
    top.str("model", upstream_model);
    let mut messages = Arr::open(top.key("messages"));
    for turn in turns.elements() {
        budget.message()?;
        write_message(turn, messages.item(), &mut budget)?;
    }
    messages.close();

    if tools.elements().next().is_some() {
        let mut written = Arr::open(top.key("tools"));
        for tool in tools.elements() {
            budget.blocks(1)?;
            write_tool(tool, written.item())?;
        }
        written.close();
        if let Some(choice) = cohere_tool_choice(tool_choice)? {
            top.json("tool_choice", choice);
        }
    } else if !(tool_choice.is_null()
        || tool_choice.is_str_eq("auto")
        || tool_choice.is_str_eq("none"))
    {
        // Without tools, `auto` and `none` both mean what Cohere does anyway.
        return Err(TranslateError::Invalid(
            "`tool_choice` without `tools`".into(),
        ));
    }
    write_response_format(response_format, &mut top)?;

    if let Some(max_tokens) = max_completion_tokens
        .as_u64()
        .or_else(|| max_tokens.as_u64())
    {
        top.u64("max_tokens", max_tokens);
    }
    if stop.is_str() {
        let mut sequences = Arr::open(top.key("stop_sequences"));
        sequences.item().extend_from_slice(stop.text().as_bytes());
        sequences.close();
    } else if stop.elements().next().is_some() {
        top.raw("stop_sequences", stop);
    }
    // Cohere documents no upper bound for temperature (OpenAI's is 2).
    for (key, value) in [("temperature", temperature), ("seed", seed)] {
        if value.is_number() {
            top.raw(key, value);
        }
    }
    write_clamped(&mut top, "p", top_p, 0.01, 0.99);
    // OpenAI's penalties go down to -2 (favouring repetition), Cohere's
    // only from 0.
    write_clamped(&mut top, "frequency_penalty", frequency_penalty, 0.0, 1.0);
    write_clamped(&mut top, "presence_penalty", presence_penalty, 0.0, 1.0);
    if stream.as_bool() == Some(true) {
        top.json("stream", "true");
    }
    top.close();
    Ok(out)
}

/// A number copied as it is when within `min..=max`, else the nearest bound.
fn write_clamped(object: &mut Obj<'_>, key: &str, value: Raw<'_>, min: f64, max: f64) {
    let Some(number) = value.as_f64() else {
        return;
    };
    let clamped = number.clamp(min, max);
    if clamped == number {
        object.raw(key, value);
    } else {
        // Display writes a finite f64 in plain decimals: valid JSON.
        object.json(key, &clamped.to_string());
    }
}

/// The content parts a role may carry.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Parts {
    /// System and tool messages.
    Text,
    /// User messages: text and images.
    Images,
    /// Assistant messages: text and refusals, anything else skipped (it is
    /// the model's own earlier output, as `request_to_converse` reads it).
    Answer,
}

fn write_message(
    turn: Raw<'_>,
    out: &mut Vec<u8>,
    budget: &mut Budget,
) -> Result<(), TranslateError> {
    let [role, content, tool_calls, tool_call_id] =
        turn.pick(["role", "content", "tool_calls", "tool_call_id"]);
    let mut message = Obj::open(out);
    match role.as_str().as_deref() {
        Some("system") | Some("developer") => {
            message.json("role", "\"system\"");
            write_content(content, Parts::Text, message.key("content"), budget)?;
        }
        Some("user") => {
            message.json("role", "\"user\"");
            write_content(content, Parts::Images, message.key("content"), budget)?;
        }
        Some("assistant") => {
            message.json("role", "\"assistant\"");
            // Content may be absent beside tool calls.
            if !content.is_null() {
                write_content(content, Parts::Answer, message.key("content"), budget)?;
            }
            if tool_calls.elements().next().is_some() {
                let mut calls = Arr::open(message.key("tool_calls"));
                for call in tool_calls.elements() {
                    budget.blocks(1)?;
                    write_tool_call(call, calls.item())?;
                }
                calls.close();
            }
        }
        Some("tool") => {
            if !tool_call_id.is_str() {
                return Err(TranslateError::Invalid(
                    "tool message needs `tool_call_id`".into(),
                ));
            }
            message.json("role", "\"tool\"");
            message.raw("tool_call_id", tool_call_id);
            write_content(content, Parts::Text, message.key("content"), budget)?;
        }
        other => {
            return Err(TranslateError::Unsupported(format!(
                "message role {other:?}"
            )))
        }
    }
    message.close();
    Ok(())
}

/// A string content copied as it is, or its parts as Cohere's typed parts.
fn write_content(
    content: Raw<'_>,
    allowed: Parts,
    out: &mut Vec<u8>,
    budget: &mut Budget,
) -> Result<(), TranslateError> {
    if content.is_str() {
        out.extend_from_slice(content.text().as_bytes());
        return Ok(());
    }
    if !content.is_array() {
        return Err(TranslateError::Invalid(
            "message content must be a string or an array".into(),
        ));
    }
    let mut parts = Arr::open(out);
    for part in content.elements() {
        budget.blocks(1)?;
        let [kind, text, refusal, image_url] = part.pick(["type", "text", "refusal", "image_url"]);
        let text = if kind.is_str_eq("refusal") && allowed == Parts::Answer {
            refusal
        } else if kind.is_str_eq("text") {
            text
        } else if kind.is_str_eq("image_url") && allowed == Parts::Images {
            let [url, detail] = image_url.pick(["url", "detail"]);
            if !url.is_str() {
                return Err(TranslateError::Invalid(
                    "image_url part needs a `url`".into(),
                ));
            }
            let mut written = Obj::open(parts.item());
            written.json("type", "\"image_url\"");
            let mut image = Obj::open(written.key("image_url"));
            image.raw("url", url);
            if detail.is_str() {
                image.raw("detail", detail);
            }
            image.close();
            written.close();
            continue;
        } else if allowed == Parts::Answer {
            continue;
        } else {
            return Err(TranslateError::Unsupported(format!(
                "content part {:?} in this message",
                kind.as_str()
            )));
        };
        if !text.is_str() {
            return Err(TranslateError::Invalid(
                "text part needs a `text` string".into(),
            ));
        }
        let mut written = Obj::open(parts.item());
        written.json("type", "\"text\"");
        written.raw("text", text);
        written.close();
    }
    parts.close();
    Ok(())
}

/// Cohere v2 takes OpenAI's tool-call shape; the arguments are checked to
/// be JSON here, as Cohere parses them, and blank ones become `{}`.
fn write_tool_call(call: Raw<'_>, out: &mut Vec<u8>) -> Result<(), TranslateError> {
    let [id, function] = call.pick(["id", "function"]);
    let [name, arguments] = function.pick(["name", "arguments"]);
    if !id.is_str() || !name.is_str() {
        return Err(TranslateError::Invalid(
            "tool call needs `id` and `function.name`".into(),
        ));
    }
    let decoded = arguments.as_str().unwrap_or_default();
    tool_input(&decoded)?;
    let mut written = Obj::open(out);
    written.raw("id", id);
    written.json("type", "\"function\"");
    let mut function = Obj::open(written.key("function"));
    function.raw("name", name);
    if decoded.trim().is_empty() {
        function.json("arguments", "\"{}\"");
    } else {
        function.raw("arguments", arguments);
    }
    function.close();
    written.close();
    Ok(())
}

fn write_tool(tool: Raw<'_>, out: &mut Vec<u8>) -> Result<(), TranslateError> {
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
    let mut written = Obj::open(out);
    written.json("type", "\"function\"");
    let mut spec = Obj::open(written.key("function"));
    spec.raw("name", name);
    if description.is_str() {
        spec.raw("description", description);
    }
    if parameters.is_object() {
        spec.raw("parameters", parameters);
    } else {
        spec.json("parameters", "{\"type\":\"object\",\"properties\":{}}");
    }
    spec.close();
    written.close();
    Ok(())
}

/// `required` → `REQUIRED`, `none` → `NONE`, `auto` (Cohere's default) →
/// nothing; a named function has no counterpart.
fn cohere_tool_choice(choice: Raw<'_>) -> Result<Option<&'static str>, TranslateError> {
    if choice.is_null() || choice.is_str_eq("auto") {
        Ok(None)
    } else if choice.is_str_eq("required") {
        Ok(Some("\"REQUIRED\""))
    } else if choice.is_str_eq("none") {
        Ok(Some("\"NONE\""))
    } else if choice.is_object() {
        Err(TranslateError::Unsupported(
            "`tool_choice` naming a function (Cohere can require a tool, not pick one)".into(),
        ))
    } else {
        Err(TranslateError::Invalid("unknown `tool_choice`".into()))
    }
}

/// `json_object` → `{"type":"json_object"}`, `json_schema` → the same with
/// the schema as Cohere's `json_schema`; `text` is Cohere's default.
fn write_response_format(format: Raw<'_>, top: &mut Obj<'_>) -> Result<(), TranslateError> {
    if format.is_null() {
        return Ok(());
    }
    let [kind, json_schema] = format.pick(["type", "json_schema"]);
    if kind.is_str_eq("text") {
        return Ok(());
    }
    let mut written = Obj::open(top.key("response_format"));
    written.json("type", "\"json_object\"");
    if kind.is_str_eq("json_schema") {
        let schema = json_schema.get("schema");
        if !schema.is_object() {
            return Err(TranslateError::Invalid(
                "`response_format.json_schema` needs a `schema` object".into(),
            ));
        }
        written.raw("json_schema", schema);
    } else if !kind.is_str_eq("json_object") {
        return Err(TranslateError::Unsupported(format!(
            "response_format of type {:?}",
            kind.as_str()
        )));
    }
    written.close();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn translate(body: Value) -> Result<Value, TranslateError> {
        let body = body.to_string();
        let out = openai_request_to_cohere_chat(
            body.as_bytes(),
            "command-a-03-2025",
            TranslateLimits::DEFAULT,
            false,
        )?;
        Ok(serde_json::from_slice(&out).expect("the output is JSON"))
    }

    #[test]
    fn a_conversation_with_tools() {
        let got = translate(json!({
            "model": "gpt-4o",
            "stream": true,
            "stream_options": {"include_usage": true},
            "user": "u-1",
            "logprobs": true,
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Weather in \"Toronto\"?"},
                {"role": "developer", "content": [{"type": "text", "text": "Use tools."}]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "get_weather_1byjy32y4hvq", "type": "function", "function": {"name": "get_weather", "arguments": "{\"location\":\"Toronto\"}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "time", "arguments": ""}}
                ]},
                {"role": "tool", "tool_call_id": "get_weather_1byjy32y4hvq", "content": "[{\"temperature\":{\"toronto\":\"19 degrees Celcius\"}}]"},
                {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "noon"}]},
                {"role": "assistant", "content": [{"type": "text", "text": "19C"}, {"type": "refusal", "refusal": "no"}, {"type": "audio"}]},
                {"role": "user", "content": [
                    {"type": "text", "text": "And this?"},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "low"}}
                ]}
            ],
            "max_completion_tokens": 200,
            "max_tokens": 7,
            "temperature": 1.5,
            "top_p": 1,
            "frequency_penalty": -1.5,
            "presence_penalty": 0.5,
            "seed": 42,
            "stop": "END",
            "tools": [
                {"type": "function", "function": {"name": "get_weather", "description": "Gets the weather of a given location", "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}, "strict": true}},
                {"type": "function", "function": {"name": "time"}}
            ],
            "tool_choice": "required",
            "parallel_tool_calls": false
        }))
        .unwrap();
        assert_eq!(
            got,
            json!({
                "model": "command-a-03-2025",
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "Weather in \"Toronto\"?"},
                    {"role": "system", "content": [{"type": "text", "text": "Use tools."}]},
                    {"role": "assistant", "tool_calls": [
                        {"id": "get_weather_1byjy32y4hvq", "type": "function", "function": {"name": "get_weather", "arguments": "{\"location\":\"Toronto\"}"}},
                        {"id": "call_2", "type": "function", "function": {"name": "time", "arguments": "{}"}}
                    ]},
                    {"role": "tool", "tool_call_id": "get_weather_1byjy32y4hvq", "content": "[{\"temperature\":{\"toronto\":\"19 degrees Celcius\"}}]"},
                    {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "noon"}]},
                    {"role": "assistant", "content": [{"type": "text", "text": "19C"}, {"type": "text", "text": "no"}]},
                    {"role": "user", "content": [
                        {"type": "text", "text": "And this?"},
                        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "low"}}
                    ]}
                ],
                "tools": [
                    {"type": "function", "function": {"name": "get_weather", "description": "Gets the weather of a given location", "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}},
                    {"type": "function", "function": {"name": "time", "parameters": {"type": "object", "properties": {}}}}
                ],
                "tool_choice": "REQUIRED",
                "max_tokens": 200,
                "stop_sequences": ["END"],
                "temperature": 1.5,
                "seed": 42,
                "p": 0.99,
                "frequency_penalty": 0,
                "presence_penalty": 0.5,
                "stream": true
            })
        );
    }

    #[test]
    fn minimal_request() {
        let got = translate(json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": false, "top_p": 0.5, "stop": ["a", "b"], "max_tokens": 9}))
            .unwrap();
        assert_eq!(
            got,
            json!({"model": "command-a-03-2025", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 9, "stop_sequences": ["a", "b"], "p": 0.5})
        );
    }

    #[test]
    fn tool_choices() {
        let with = |choice: Value, tools: bool| {
            let mut body =
                json!({"messages": [{"role": "user", "content": "hi"}], "tool_choice": choice});
            if tools {
                body["tools"] = json!([{"type": "function", "function": {"name": "f"}}]);
            }
            translate(body)
        };
        assert!(with(json!("auto"), true)
            .unwrap()
            .get("tool_choice")
            .is_none());
        assert_eq!(with(json!("none"), true).unwrap()["tool_choice"], "NONE");
        assert!(with(json!("none"), false)
            .unwrap()
            .get("tool_choice")
            .is_none());
        assert!(matches!(
            with(json!({"type": "function", "function": {"name": "f"}}), true),
            Err(TranslateError::Unsupported(_))
        ));
        assert!(matches!(
            with(json!("sometimes"), true),
            Err(TranslateError::Invalid(_))
        ));
        assert!(matches!(
            with(json!("required"), false),
            Err(TranslateError::Invalid(_))
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
            .get("response_format")
            .is_none());
        assert_eq!(
            with(json!({"type": "json_object"})).unwrap()["response_format"],
            json!({"type": "json_object"})
        );
        let schema = json!({"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]});
        assert_eq!(
            with(json!({"type": "json_schema", "json_schema": {"name": "book", "strict": true, "schema": schema}}))
                .unwrap()["response_format"],
            json!({"type": "json_object", "json_schema": schema})
        );
        assert!(matches!(
            with(json!({"type": "json_schema", "json_schema": {"name": "x"}})),
            Err(TranslateError::Invalid(_))
        ));
        assert!(matches!(
            with(json!({"type": "grammar"})),
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
            json!({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]}),
            json!({"messages": [{"role": "system", "content": [{"type": "image_url", "image_url": {"url": "u"}}]}]}),
            json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]}),
            json!({"messages": [{"role": "user", "content": [{"type": "text"}]}]}),
            json!({"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{} ,\"x\":1"}}]}]}),
            json!({"messages": [{"role": "assistant", "tool_calls": [{"function": {"name": "f"}}]}]}),
            json!({"messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "code_interpreter"}]}),
            json!({"messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function", "function": {}}]}),
        ];
        for body in bad {
            assert!(translate(body.clone()).is_err(), "{body}");
        }
        let many: Vec<Value> = (0..3)
            .map(|_| json!({"role": "user", "content": [{"type": "text", "text": "hi"}]}))
            .collect();
        let body = json!({"messages": many}).to_string();
        let limits = |max_messages, max_blocks| TranslateLimits {
            max_messages,
            max_blocks,
        };
        let run = |limits| openai_request_to_cohere_chat(body.as_bytes(), "m", limits, false);
        assert_eq!(
            run(limits(2, 100)),
            Err(TranslateError::TooLarge {
                what: "messages",
                limit: 2
            })
        );
        assert_eq!(
            run(limits(10, 2)),
            Err(TranslateError::TooLarge {
                what: "content blocks",
                limit: 2
            })
        );
        assert!(run(limits(3, 3)).is_ok());
        assert!(matches!(
            openai_request_to_cohere_chat(b"[1]", "m", limits(3, 3), true),
            Err(TranslateError::Invalid(_))
        ));
    }
}
