//! The Gemini translators on generated input: an OpenAI request of any
//! shape either is refused or becomes valid JSON that keeps every text; a
//! Gemini response of any bytes never panics, and its texts and function
//! calls survive; a stream's events translate the same whether fed one by
//! one or split and rejoined on SSE lines, as a relay would hand them over.

use proptest::prelude::*;
use serde_json::{json, Value};
use shardgate::api::translate::{
    gemini_response_to_openai, openai_request_to_gemini, GeminiToOpenAiStream, StreamEnd,
    TranslateLimits,
};

fn text() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), "[a-z \"\\\\\n\u{e9}\u{1F600}]{1,12}",]
}

fn content() -> impl Strategy<Value = Value> {
    let part = prop_oneof![
        text().prop_map(|t| json!({"type": "text", "text": t})),
        text().prop_map(
            |t| json!({"type": "text", "text": t, "cache_control": {"type": "ephemeral"}})
        ),
        Just(
            json!({"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}})
        ),
        Just(json!({"type": "image_url", "image_url": {"url": "https://example.com/a.png"}})),
        Just(json!({"type": "input_audio"})),
    ];
    prop_oneof![
        text().prop_map(Value::String),
        prop::collection::vec(part, 0..3).prop_map(Value::Array),
        Just(Value::Null),
        Just(json!(7)),
    ]
}

fn message() -> impl Strategy<Value = Value> {
    let call = (0u8..3, prop_oneof![Just("{\"a\":1}"), Just(""), Just("[1]"), Just("{")])
        .prop_map(|(i, args)| json!({"id": format!("call_{i}"), "type": "function", "function": {"name": "f", "arguments": args}}));
    (
        prop::sample::select(vec![
            "system",
            "developer",
            "user",
            "assistant",
            "tool",
            "other",
        ]),
        content(),
        prop::collection::vec(call, 0..2),
        0u8..4,
    )
        .prop_map(|(role, content, calls, id)| {
            let mut m = json!({"role": role, "content": content});
            if role == "assistant" && !calls.is_empty() {
                m["tool_calls"] = Value::Array(calls);
            }
            if role == "tool" && id < 3 {
                m["tool_call_id"] = json!(format!("call_{id}"));
            }
            m
        })
}

/// Every string in `v`, decoded.
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|v| strings(v, out)),
        Value::Object(o) => o.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

/// The stream's data lines, `created` (the translator's clock) removed.
fn lines(out: &[u8]) -> Vec<Value> {
    let text = std::str::from_utf8(out).unwrap();
    text.split_terminator("\n\n")
        .map(|l| {
            let data = l.strip_prefix("data: ").unwrap();
            let mut v: Value = serde_json::from_str(data).unwrap_or(json!(data));
            if let Some(o) = v.as_object_mut() {
                o.remove("created");
            }
            v
        })
        .collect()
}

proptest! {
    #[test]
    fn requests_translate_to_json_or_are_refused(
        messages in prop::collection::vec(message(), 0..6),
        temperature in prop::option::of(0.0f64..2.5),
        tool_choice in prop::option::of(prop::sample::select(vec!["auto", "required", "none"])),
        with_tools in any::<bool>(),
        json_mode in any::<bool>(),
    ) {
        let mut request = json!({"model": "gpt-4o", "messages": messages});
        if let Some(t) = temperature {
            request["temperature"] = json!(t);
        }
        if let Some(c) = tool_choice {
            request["tool_choice"] = json!(c);
        }
        if with_tools {
            request["tools"] = json!([{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]);
        }
        if json_mode {
            request["response_format"] = json!({"type": "json_object"});
        }
        let body = request.to_string();
        if let Ok(out) = openai_request_to_gemini(body.as_bytes(), TranslateLimits::DEFAULT, false) {
            let out: Value = serde_json::from_slice(&out).expect("the output is JSON");
            let mut written = Vec::new();
            strings(&out, &mut written);
            let written = written.join("\u{0}");
            for m in request["messages"].as_array().unwrap() {
                let mut texts = Vec::new();
                match &m["content"] {
                    Value::String(s) => texts.push(s.clone()),
                    Value::Array(parts) => parts.iter().for_each(|p| {
                        if let Some(t) = p["text"].as_str() { texts.push(t.into()) }
                    }),
                    _ => {}
                }
                // Every non-blank text of every turn is in the output
                // (system prompts and tool results included).
                for t in texts.iter().filter(|t| !t.trim().is_empty()) {
                    prop_assert!(written.contains(t.as_str()), "{t:?} lost from {out}");
                }
            }
            let contents = out["contents"].as_array().unwrap();
            for pair in contents.windows(2) {
                prop_assert_ne!(&pair[0]["role"], &pair[1]["role"], "turns of one role merged");
            }
            for turn in contents {
                prop_assert!(matches!(turn["role"].as_str(), Some("user" | "model")));
                prop_assert!(!turn["parts"].as_array().unwrap().is_empty());
            }
            prop_assert!(!out.to_string().contains("cache_control"));
        }
    }

    #[test]
    fn any_response_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..64)) {
        if let Ok(out) = gemini_response_to_openai(&body, "m", "r") {
            serde_json::from_slice::<Value>(&out).expect("the output is JSON");
        }
        let mut stream = GeminiToOpenAiStream::new("m", "r", true);
        let mut out = Vec::new();
        let _ = stream.on_data(&body, &mut out);
        stream.finish(&mut out);
        lines(&out);
    }

    #[test]
    fn response_texts_and_calls_survive(
        texts in prop::collection::vec(text(), 0..4),
        thought in text(),
        call in any::<bool>(),
    ) {
        let mut parts: Vec<Value> = vec![json!({"text": thought, "thought": true})];
        parts.extend(texts.iter().map(|t| json!({"text": t})));
        if call {
            parts.push(json!({"functionCall": {"name": "f", "args": {"q": texts.concat()}}}));
        }
        let body = json!({"candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP"}]});
        let out = gemini_response_to_openai(body.to_string().as_bytes(), "m", "r").unwrap();
        let out: Value = serde_json::from_slice(&out).unwrap();
        let message = &out["choices"][0]["message"];
        let joined = texts.concat();
        if joined.is_empty() && call {
            prop_assert!(message["content"].is_null());
        } else {
            prop_assert_eq!(message["content"].as_str(), Some(joined.as_str()));
        }
        if call {
            let args: Value = serde_json::from_str(message["tool_calls"][0]["function"]["arguments"].as_str().unwrap()).unwrap();
            prop_assert_eq!(&args["q"], &json!(joined));
            prop_assert_eq!(&out["choices"][0]["finish_reason"], "tool_calls");
        }
    }

    #[test]
    fn a_stream_translates_the_same_under_any_split(
        deltas in prop::collection::vec(text(), 0..5),
        usage_after in any::<bool>(),
        ends in prop::collection::vec(0usize..2000, 0..10),
    ) {
        let mut events: Vec<String> = deltas
            .iter()
            .map(|d| json!({"candidates": [{"content": {"role": "model", "parts": [{"text": d}]}}], "responseId": "x"}).to_string())
            .collect();
        let usage = json!({"promptTokenCount": 3, "candidatesTokenCount": 2});
        let mut last = json!({"candidates": [{"content": {"parts": [{"text": ""}]}, "finishReason": "STOP"}]});
        if usage_after {
            events.push(last.to_string());
            events.push(json!({"usageMetadata": usage}).to_string());
        } else {
            last["usageMetadata"] = usage;
            events.push(last.to_string());
        }
        // The SSE wire, cut anywhere; a relay hands over whole data lines.
        let wire: String = events.iter().map(|e| format!("data: {e}\r\n\r\n")).collect();
        let mut ends = ends;
        ends.sort_unstable();
        let run = |ends: &[usize]| {
            let mut t = GeminiToOpenAiStream::new("m", "r", true);
            let mut out = Vec::new();
            let mut pending = Vec::new();
            let mut start = 0;
            for &end in ends.iter().chain([&wire.len()]) {
                let end = end.clamp(start, wire.len());
                pending.extend_from_slice(&wire.as_bytes()[start..end]);
                start = end;
                while let Some(at) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                    let event: Vec<u8> = pending.drain(..at + 4).collect();
                    let data = event[..at].strip_prefix(b"data: ").unwrap();
                    t.on_data(data, &mut out).unwrap();
                }
            }
            t.finish(&mut out);
            lines(&out)
        };
        let whole = run(&[]);
        prop_assert_eq!(run(&ends), whole.clone());
        let contents: String = whole.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
        prop_assert_eq!(contents, deltas.concat());
        prop_assert_eq!(&whole[whole.len() - 2]["usage"]["total_tokens"], &json!(5));
        prop_assert_eq!(whole.last().unwrap(), &json!("[DONE]"));
    }
}
