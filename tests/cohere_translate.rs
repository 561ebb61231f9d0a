//! The Cohere translators on generated input: an OpenAI request of any
//! shape either is refused or becomes valid JSON that keeps every text;
//! response bytes of any kind never panic; a v2 chat stream scanned under
//! any split translates the same as scanned whole.

use proptest::prelude::*;
use serde_json::{json, Value};
use shardgate::api::sse::SseScanner;
use shardgate::api::translate::{
    cohere_chat_response_to_openai, cohere_embed_to_openai, openai_embeddings_to_cohere,
    openai_request_to_cohere_chat, CohereToOpenAiStream, EmbeddingFormat, StreamEnd,
    TranslateLimits,
};

fn text() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), "[a-z \"\\\\\n\u{e9}\u{1F600}]{1,12}",]
}

fn content() -> impl Strategy<Value = Value> {
    let part = prop_oneof![
        text().prop_map(|t| json!({"type": "text", "text": t})),
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
    let call = (0u8..3, prop_oneof![Just("{\"a\":1}"), Just(""), Just("[1] [2]"), Just("{")])
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
        any::<bool>(),
    )
        .prop_map(|(role, content, calls, with_id)| {
            let mut m = json!({"role": role, "content": content});
            if role == "assistant" && !calls.is_empty() {
                m["tool_calls"] = Value::Array(calls);
            }
            if role == "tool" && with_id {
                m["tool_call_id"] = json!("call_0");
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

/// The data lines of a translated stream, `created` (the translator's
/// clock, not the stream's) removed.
fn chunks(out: Vec<u8>) -> Vec<Value> {
    let text = String::from_utf8(out).unwrap();
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
        top_p in prop::option::of(0.0f64..1.0),
        penalty in prop::option::of(-2.0f64..2.0),
        tool_choice in prop::option::of(prop::sample::select(vec!["auto", "required", "none"])),
        with_tools in any::<bool>(),
    ) {
        let mut request = json!({"model": "gpt-4o", "messages": messages});
        if let Some(p) = top_p {
            request["top_p"] = json!(p);
        }
        if let Some(p) = penalty {
            request["frequency_penalty"] = json!(p);
        }
        if let Some(c) = tool_choice {
            request["tool_choice"] = json!(c);
        }
        if with_tools {
            request["tools"] = json!([{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]);
        }
        let body = request.to_string();
        if let Ok(out) = openai_request_to_cohere_chat(body.as_bytes(), "command-a-03-2025", TranslateLimits::DEFAULT, false) {
            let out: Value = serde_json::from_slice(&out).expect("the output is JSON");
            prop_assert_eq!(&out["model"], "command-a-03-2025");
            let mut written = Vec::new();
            strings(&out, &mut written);
            let written = written.join("\u{0}");
            // Every text of every turn is in the output, blank ones too.
            for m in request["messages"].as_array().unwrap() {
                let mut texts = Vec::new();
                match &m["content"] {
                    Value::String(s) => texts.push(s.clone()),
                    Value::Array(parts) => parts.iter().for_each(|p| {
                        if let Some(t) = p["text"].as_str() { texts.push(t.into()) }
                    }),
                    _ => {}
                }
                for t in &texts {
                    prop_assert!(written.contains(t.as_str()), "{t:?} lost from {out}");
                }
            }
            prop_assert_eq!(
                out["messages"].as_array().map(Vec::len),
                request["messages"].as_array().map(Vec::len)
            );
            if let Some(p) = out["p"].as_f64() {
                prop_assert!((0.01..=0.99).contains(&p));
            }
            if let Some(p) = out["frequency_penalty"].as_f64() {
                prop_assert!((0.0..=1.0).contains(&p));
            }
        }
    }

    #[test]
    fn any_response_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..64)) {
        if let Ok(out) = cohere_chat_response_to_openai(&body, "m") {
            serde_json::from_slice::<Value>(&out).expect("the output is JSON");
        }
        for format in [EmbeddingFormat::Float, EmbeddingFormat::Base64] {
            if let Ok(out) = cohere_embed_to_openai(&body, "m", format) {
                serde_json::from_slice::<Value>(&out).expect("the output is JSON");
            }
        }
        if let Ok(out) = openai_embeddings_to_cohere(&body, "m") {
            serde_json::from_slice::<Value>(&out).expect("the output is JSON");
        }
        let mut t = CohereToOpenAiStream::new("m", true);
        let mut out = Vec::new();
        let _ = t.on_event(b"", &body, &mut out);
        t.finish(&mut out);
    }

    #[test]
    fn response_texts_survive(texts in prop::collection::vec(text(), 0..4), tool in any::<bool>()) {
        let content: Vec<Value> = texts.iter().map(|t| json!({"type": "text", "text": t})).collect();
        let mut message = json!({"role": "assistant", "content": content});
        if tool {
            let arguments = json!({"q": texts.concat()}).to_string();
            message["tool_calls"] = json!([{"id": "t", "type": "function", "function": {"name": "f", "arguments": arguments}}]);
        }
        let body = json!({"id": "x", "message": message, "finish_reason": "COMPLETE"});
        let out = cohere_chat_response_to_openai(body.to_string().as_bytes(), "m").unwrap();
        let out: Value = serde_json::from_slice(&out).unwrap();
        let message = &out["choices"][0]["message"];
        let joined = texts.concat();
        if joined.is_empty() && tool {
            prop_assert!(message["content"].is_null());
        } else {
            prop_assert_eq!(message["content"].as_str(), Some(joined.as_str()));
        }
        if tool {
            let args: Value = serde_json::from_str(message["tool_calls"][0]["function"]["arguments"].as_str().unwrap()).unwrap();
            prop_assert_eq!(&args["q"], &json!(joined));
        }
    }

    #[test]
    fn a_stream_translates_the_same_under_any_split(
        deltas in prop::collection::vec(text(), 0..5),
        arguments in prop::collection::vec(text(), 0..3),
        event_lines in any::<bool>(),
        crlf in any::<bool>(),
        ends in prop::collection::vec(0usize..3000, 0..10),
    ) {
        let mut events = vec![json!({"id": "29f14a5a", "type": "message-start", "delta": {"message": {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}}})];
        events.push(json!({"type": "tool-plan-delta", "delta": {"message": {"tool_plan": "I will"}}}));
        events.push(json!({"type": "tool-call-start", "index": 0, "delta": {"message": {"tool_calls": {"id": "f_1", "type": "function", "function": {"name": "f", "arguments": ""}}}}}));
        for a in &arguments {
            events.push(json!({"type": "tool-call-delta", "index": 0, "delta": {"message": {"tool_calls": {"function": {"arguments": a}}}}}));
        }
        events.push(json!({"type": "tool-call-end", "index": 0}));
        events.push(json!({"type": "content-start", "index": 0, "delta": {"message": {"content": {"type": "text", "text": ""}}}}));
        for d in &deltas {
            events.push(json!({"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": d}}}}));
        }
        events.push(json!({"type": "content-end", "index": 0}));
        events.push(json!({"type": "message-end", "delta": {"finish_reason": "COMPLETE", "usage": {"billed_units": {"input_tokens": 3, "output_tokens": 10}, "tokens": {"input_tokens": 69, "output_tokens": 10}}}}));
        let newline = if crlf { "\r\n" } else { "\n" };
        let wire: Vec<u8> = events
            .iter()
            .flat_map(|e| {
                let name = if event_lines {
                    format!("event: {}{newline}", e["type"].as_str().unwrap())
                } else {
                    String::new()
                };
                format!("{name}data: {e}{newline}{newline}").into_bytes()
            })
            .collect();
        let mut ends = ends;
        ends.sort_unstable();
        let run = |ends: &[usize]| {
            let mut sse = SseScanner::new(1 << 16);
            let mut t = CohereToOpenAiStream::new("m", true);
            let mut out = Vec::new();
            let mut start = 0;
            for &end in ends.iter().chain([&wire.len()]) {
                let end = end.clamp(start, wire.len());
                sse.feed(&wire[start..end], |e| t.on_event(e.event, e.data, &mut out).unwrap()).unwrap();
                start = end;
            }
            t.finish(&mut out);
            chunks(out)
        };
        let whole = run(&[]);
        prop_assert_eq!(run(&ends), whole.clone());
        let contents: String = whole.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
        prop_assert_eq!(contents, deltas.concat());
        let args: String = whole
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
            .collect();
        prop_assert_eq!(args, arguments.concat());
        prop_assert_eq!(&whole[whole.len() - 2]["usage"]["prompt_tokens"], &json!(3));
        prop_assert_eq!(whole.last().unwrap(), &json!("[DONE]"));
    }
}
