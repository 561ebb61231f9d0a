//! The Bedrock translators on generated input: an OpenAI request of any
//! shape either is refused or becomes valid JSON that keeps every text; a
//! Converse response of any bytes never panics; a ConverseStream answer
//! decoded under any split translates the same as decoded whole.

use proptest::prelude::*;
use serde_json::{json, Value};
use shardgate::api::eventstream::{encode, event, Decoder};
use shardgate::api::translate::{
    converse_response_to_openai, openai_request_to_converse, BedrockToOpenAiStream, StreamEnd,
    TranslateLimits,
};

fn text() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), "[a-z \"\\\\\n\u{e9}\u{1F600}]{1,12}",]
}

fn content() -> impl Strategy<Value = Value> {
    let part = prop_oneof![
        text().prop_map(|t| json!({"type": "text", "text": t})),
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

proptest! {
    #[test]
    fn requests_translate_to_json_or_are_refused(
        messages in prop::collection::vec(message(), 0..6),
        temperature in prop::option::of(0.0f64..2.5),
        tool_choice in prop::option::of(prop::sample::select(vec!["auto", "required", "none"])),
        with_tools in any::<bool>(),
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
        let body = request.to_string();
        if let Ok(out) = openai_request_to_converse(body.as_bytes(), TranslateLimits::DEFAULT, false) {
            let out: Value = serde_json::from_slice(&out).expect("the output is JSON");
            let mut written = Vec::new();
            strings(&out, &mut written);
            let written = written.join("\u{0}");
            // Every non-blank text of a user or assistant turn is in the output.
            for m in request["messages"].as_array().unwrap() {
                if !matches!(m["role"].as_str(), Some("user" | "assistant")) {
                    continue;
                }
                let mut texts = Vec::new();
                match &m["content"] {
                    Value::String(s) => texts.push(s.clone()),
                    Value::Array(parts) => parts.iter().for_each(|p| {
                        if let Some(t) = p["text"].as_str() { texts.push(t.into()) }
                    }),
                    _ => {}
                }
                for t in texts.iter().filter(|t| !t.trim().is_empty()) {
                    prop_assert!(written.contains(t.as_str()), "{t:?} lost from {out}");
                }
            }
            if let Some(t) = out["inferenceConfig"]["temperature"].as_f64() {
                prop_assert!((0.0..=1.0).contains(&t));
            }
        }
    }

    #[test]
    fn any_response_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..64)) {
        if let Ok(out) = converse_response_to_openai(&body, "m", "r") {
            serde_json::from_slice::<Value>(&out).expect("the output is JSON");
        }
    }

    #[test]
    fn response_texts_survive(texts in prop::collection::vec(text(), 0..4), tool in any::<bool>()) {
        let mut content: Vec<Value> = texts.iter().map(|t| json!({"text": t})).collect();
        if tool {
            content.push(json!({"toolUse": {"toolUseId": "t", "name": "f", "input": {"q": texts.concat()}}}));
        }
        let body = json!({"output": {"message": {"role": "assistant", "content": content}}, "stopReason": "end_turn"});
        let out = converse_response_to_openai(body.to_string().as_bytes(), "m", "r").unwrap();
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
        ends in prop::collection::vec(0usize..2000, 0..10),
    ) {
        let mut events = vec![event("messageStart", br#"{"role":"assistant"}"#)];
        for d in &deltas {
            let payload = json!({"contentBlockIndex": 0, "delta": {"text": d}}).to_string();
            events.push(event("contentBlockDelta", payload.as_bytes()));
        }
        events.push(event("messageStop", br#"{"stopReason":"end_turn"}"#));
        events.push(event("metadata", br#"{"usage":{"inputTokens":1,"outputTokens":2}}"#));
        let wire: Vec<u8> = events.iter().flat_map(|m| encode(m).unwrap()).collect();
        let mut ends = ends;
        ends.sort_unstable();
        let run = |ends: &[usize]| {
            let mut decoder = Decoder::default();
            let mut t = BedrockToOpenAiStream::new("m", "r", true);
            let mut out = Vec::new();
            let mut start = 0;
            for &end in ends.iter().chain([&wire.len()]) {
                let end = end.clamp(start, wire.len());
                decoder.feed(&wire[start..end], |m| t.on_message(&m, &mut out).unwrap()).unwrap();
                start = end;
            }
            t.finish(&mut out);
            // `created` is the translator's clock, not the stream's.
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
                .collect::<Vec<_>>()
        };
        let whole = run(&[]);
        prop_assert_eq!(run(&ends), whole.clone());
        let contents: String = whole.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
        prop_assert_eq!(contents, deltas.concat());
        prop_assert_eq!(whole.last().unwrap(), &json!("[DONE]"));
    }
}
