//! Differential tests of the scan + splice patch against a full parse with
//! serde_json: for every body, patching `model` by splicing must equal
//! parse → set model → re-serialize, appending a member before `object_end`
//! must equal inserting it, and the scan must agree with the oracle on
//! whether the body is acceptable at all. And locating a top-level member
//! without validating (`top_level_value`) must find what the parse finds.
//!
//! The oracle is serde_json plus the rules serde_json does not enforce: the
//! top level must be an object, no top-level key may repeat, and the fields
//! the scan reads have their types. Numbers beyond f64 are valid JSON that
//! serde_json's `Value` cannot hold; such bodies are left out of the
//! comparison (tests/json_scan.rs covers them).

use std::fmt;

use proptest::prelude::*;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::{json, Map, Value};
use shardgate::json::{push_json_string, scan_top_level, splice, top_level_value};

/// The oracle's verdict: the parsed top-level object, or why it is refused.
fn oracle(body: &[u8]) -> Result<Map<String, Value>, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let Value::Object(object) = value else {
        return Err("not an object".into());
    };
    let keys = serde_json::Deserializer::from_slice(body)
        .deserialize_map(TopLevelKeys)
        .map_err(|e| e.to_string())?;
    if keys.len() != object.len() {
        return Err("duplicate top-level key".into());
    }
    if let Some(model) = object.get("model") {
        if !model.is_string() {
            return Err("model is not a string".into());
        }
    }
    if !matches!(
        object.get("stream"),
        None | Some(Value::Bool(_) | Value::Null)
    ) {
        return Err("stream is not a boolean".into());
    }
    if !matches!(
        object.get("stream_options"),
        None | Some(Value::Object(_) | Value::Null)
    ) {
        return Err("stream_options is not an object".into());
    }
    Ok(object)
}

/// Every top-level key, repeats included.
struct TopLevelKeys;

impl<'de> Visitor<'de> for TopLevelKeys {
    type Value = Vec<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<String>, A::Error> {
        let mut keys = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            map.next_value::<IgnoredAny>()?;
            keys.push(key);
        }
        Ok(keys)
    }
}

const NEW_MODELS: &[&str] = &[
    "gpt-4o-mini",
    "",
    "claude-3-5-sonnet-20241022",
    "a much longer model name than the one it replaces, to shift the suffix",
    "quote\" backslash\\ newline\n tab\t nul\u{0} bell\u{7}",
    "モデル 🦀 ünïcödé",
];

/// Checks one body against the oracle; returns whether it was accepted.
fn check_body(body: &[u8]) -> bool {
    let scanned = scan_top_level(body);
    let expected = oracle(body);
    if expected
        .as_ref()
        .is_err_and(|e| e.starts_with("number out of range"))
    {
        return scanned.is_ok();
    }
    let (top, object) = match (scanned, expected) {
        (Ok(top), Ok(object)) => (top, object),
        (Err(_), Err(_)) => return false,
        (scanned, expected) => panic!(
            "scan and oracle disagree on {:?}\n  scan: {scanned:?}\n  oracle: {expected:?}",
            String::from_utf8_lossy(body)
        ),
    };
    assert_eq!(top.member_count, object.len());
    assert_eq!(
        top.model.as_ref().map(|m| m.value.as_ref()),
        object.get("model").and_then(Value::as_str)
    );
    assert_eq!(top.stream, object.get("stream").and_then(Value::as_bool));
    assert_eq!(
        top.stream_options.is_some(),
        object.contains_key("stream_options")
    );
    if let Some(span) = &top.stream_options {
        let value: Value = serde_json::from_slice(&body[span.value.clone()]).unwrap();
        assert_eq!(Some(&value), object.get("stream_options"));
        assert!(body[span.member.clone()].starts_with(b"\""));
    }

    if let Some(model) = &top.model {
        for new_model in NEW_MODELS {
            let mut literal = Vec::new();
            push_json_string(&mut literal, new_model);
            let patched = splice(body, model.span.clone(), &literal).concat();
            let mut expected = object.clone();
            expected.insert("model".into(), json!(new_model));
            let reparsed: Value = serde_json::from_slice(&patched).unwrap_or_else(|e| {
                panic!(
                    "patched body is not JSON ({e}): {}",
                    String::from_utf8_lossy(&patched)
                )
            });
            assert_eq!(reparsed, Value::Object(expected));
            // The patched body is itself acceptable, with the new model.
            let rescanned = scan_top_level(&patched).unwrap();
            assert_eq!(rescanned.model.unwrap().value, *new_model);
        }
    }

    let separator: &[u8] = if top.member_count == 0 { b"" } else { b"," };
    let member = [separator, br#""x_injected":{"include_usage":true}"#].concat();
    let end = top.object_end;
    assert_eq!(body[end], b'}');
    let appended = splice(body, end..end, &member).concat();
    let mut expected = object.clone();
    expected.insert("x_injected".into(), json!({"include_usage": true}));
    let reparsed: Value = serde_json::from_slice(&appended).unwrap();
    assert_eq!(reparsed, Value::Object(expected));
    true
}

const CORPUS: &[&str] = &[
    // Chat completion with tools, tool calls and a tool result.
    r#"{"model":"gpt-4o","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"What's the weather like in Boston today?"},{"role":"assistant","content":null,"tool_calls":[{"id":"call_abc123","type":"function","function":{"name":"get_current_weather","arguments":"{\n\"location\": \"Boston, MA\"\n}"}}]},{"role":"tool","tool_call_id":"call_abc123","content":"{\"temperature\": 22, \"unit\": \"celsius\"}"}],"tools":[{"type":"function","function":{"name":"get_current_weather","description":"Get the current weather in a given location","parameters":{"type":"object","properties":{"location":{"type":"string","description":"The city and state, e.g. San Francisco, CA"},"unit":{"type":"string","enum":["celsius","fahrenheit"]}},"required":["location"]}}}],"tool_choice":"auto","temperature":0.7,"top_p":1,"n":1,"stream":false,"max_tokens":256,"presence_penalty":0,"frequency_penalty":0,"logit_bias":{"50256":-100},"user":"user-1234"}"#,
    // Vision input, pretty-printed with CRLF line ends.
    "{\r\n  \"model\": \"gpt-4o-mini\",\r\n  \"messages\": [\r\n    {\r\n      \"role\": \"user\",\r\n      \"content\": [\r\n        {\"type\": \"text\", \"text\": \"What\u{2019}s in this image?\"},\r\n        {\"type\": \"image_url\", \"image_url\": {\"url\": \"data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==\", \"detail\": \"low\"}}\r\n      ]\r\n    }\r\n  ],\r\n  \"max_tokens\": 300\r\n}\r\n",
    // Streaming with stream_options and escapes in content.
    r#"{"stream":true,"stream_options":{"include_usage":true},"model":"gpt-4.1","messages":[{"role":"user","content":"Translate \"hello\" to 日本語 and explain \\n vs \n. Emoji: \ud83e\udd80 \u00e9\u0301"}]}"#,
    // Structured outputs with a nested JSON schema.
    r#"{"model":"gpt-4o-2024-08-06","messages":[{"role":"user","content":"Extract the event."}],"response_format":{"type":"json_schema","json_schema":{"name":"event","strict":true,"schema":{"type":"object","properties":{"name":{"type":"string"},"date":{"type":"string"},"participants":{"type":"array","items":{"type":"object","properties":{"name":{"type":"string"},"roles":{"type":"array","items":{"type":"string"}}},"required":["name","roles"],"additionalProperties":false}}},"required":["name","date","participants"],"additionalProperties":false}}},"seed":42,"logprobs":true,"top_logprobs":2}"#,
    // Embeddings: string and token-array inputs.
    r#"{"input":"The food was delicious and the waiter...","model":"text-embedding-3-small","encoding_format":"float","dimensions":256}"#,
    r#"{"model":"text-embedding-ada-002","input":[[1234,5678,91011],[121314,-0,1.5e10]]}"#,
    // Responses API.
    r#"{"model":"o4-mini","input":[{"role":"developer","content":"Talk like a pirate."},{"role":"user","content":[{"type":"input_text","text":"Are semicolons optional in JavaScript?"},{"type":"input_image","image_url":"https://example.com/a.png"}]}],"reasoning":{"effort":"medium","summary":"auto"},"tools":[{"type":"web_search_preview"}],"store":false,"previous_response_id":null,"metadata":{"model":"not-this-one"}}"#,
    // Anthropic Messages API with a system prompt, tools and images.
    r#"{"model":"claude-sonnet-4-20250514","max_tokens":1024,"system":[{"type":"text","text":"You are a pirate.","cache_control":{"type":"ephemeral"}}],"tools":[{"name":"get_stock_price","description":"Get the current stock price for a given ticker symbol.","input_schema":{"type":"object","properties":{"ticker":{"type":"string","description":"The stock ticker symbol, e.g. AAPL for Apple Inc."}},"required":["ticker"]}}],"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":"image/jpeg","data":"/9j/4AAQSkZJRg=="}},{"type":"text","text":"What is in this image?"}]},{"role":"assistant","content":[{"type":"tool_use","id":"toolu_01","name":"get_stock_price","input":{"ticker":"AAPL"}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_01","content":"259.75 USD"}]}],"stream":true,"temperature":1.0,"thinking":{"type":"enabled","budget_tokens":2048}}"#,
    // Legacy completions with an escaped model key and escaped model.
    r#"{"mod\u0065l":"gpt-3.5-turbo-instruct","prompt":["Say this is a test","\"model\": \"fake\""],"max_tokens":7,"temperature":0,"echo":true,"stop":["\n"]}"#,
    r#"{"model":"my\/fine\u002dtune:ft-acme","prompt":"x"}"#,
    // No model at all, and an empty object.
    r#"{"messages":[]}"#,
    "{}",
    // Rejected bodies.
    r#"{"model":"a","messages":[],"model":"b"}"#,
    r#"{"model":"a","m\u006fdel":"b"}"#,
    r#"[{"model":"gpt-4o"}]"#,
    r#"{"model":"gpt-4o","messages":[}"#,
    r#"{"model":"gpt-4o"} {"model":"again"}"#,
    r#"{"model":["gpt-4o"]}"#,
    r#"{"model":"gpt-4o","stream":"yes"}"#,
];

#[test]
fn corpus_matches_the_oracle() {
    let accepted = CORPUS
        .iter()
        .filter(|body| check_body(body.as_bytes()))
        .count();
    assert_eq!(accepted, 12, "the first twelve corpus bodies are valid");
}

#[test]
fn every_truncation_matches_the_oracle() {
    for body in CORPUS {
        for end in 0..body.len() {
            check_body(&body.as_bytes()[..end]);
        }
    }
}

#[test]
fn single_byte_corruptions_match_the_oracle() {
    for body in &CORPUS[..12] {
        let mut bytes = body.as_bytes().to_vec();
        for i in 0..bytes.len() {
            let original = bytes[i];
            for replacement in [
                b'"', b'\\', b'{', b']', b',', b':', b' ', b'0', b'e', b'\n', 0x01, 0xff,
            ] {
                bytes[i] = replacement;
                check_body(&bytes);
            }
            bytes[i] = original;
        }
    }
}

/// A ~20 KB chat body: the shape of a long conversation with tools.
pub fn large_chat_body() -> String {
    let mut messages = Vec::new();
    for turn in 0..60 {
        messages.push(json!({"role": "user", "content": format!("Question {turn}: what about \"quoted\" text,\nnewlines and ünïcödé? {}", "lorem ipsum ".repeat(12))}));
        messages.push(json!({"role": "assistant", "content": format!("Answer {turn}: {}", "dolor sit amet ".repeat(8))}));
    }
    json!({"model": "gpt-4o", "messages": messages, "stream": true}).to_string()
}

#[test]
fn large_body_matches_the_oracle() {
    let body = large_chat_body();
    assert!(body.len() > 15_000);
    assert!(check_body(body.as_bytes()));
}

fn arbitrary_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        any::<String>().prop_map(Value::String),
        Just(json!("model")),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..6)
                .prop_map(|members| Value::Object(members.into_iter().collect())),
        ]
    })
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("model".to_string()),
        Just("stream".to_string()),
        Just("stream_options".to_string()),
        Just("messages".to_string()),
        any::<String>(),
    ]
}

/// Serializes a key, sometimes spelling its first character as `\uXXXX`.
fn key_literal(key: &str, escape_first: bool) -> String {
    match key.chars().next() {
        Some(first) if escape_first && (first as u32) < 0x10000 => {
            format!(
                "\"\\u{:04x}{}",
                first as u32,
                &serde_json::to_string(key).unwrap()[1 + first.len_utf8()..]
            )
        }
        _ => serde_json::to_string(key).unwrap(),
    }
}

fn whitespace() -> impl Strategy<Value = &'static str> {
    prop_oneof![Just(""), Just(" "), Just("\n  "), Just("\r\n\t")]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// Objects built member by member, so keys can repeat and be escaped.
    #[test]
    fn generated_objects_match_the_oracle(
        members in prop::collection::vec(
            (key(), any::<bool>(), arbitrary_value(), whitespace()), 0..8),
        model in prop::option::of(any::<String>()),
        pretty in any::<bool>(),
    ) {
        let mut body = String::from("{");
        let mut all: Vec<_> = members.into_iter()
            .map(|(k, escape, v, ws)| (key_literal(&k, escape), v, ws))
            .collect();
        if let Some(model) = model {
            all.insert(all.len() / 2, (key_literal("model", false), json!(model), " "));
        }
        for (i, (key, value, ws)) in all.iter().enumerate() {
            if i > 0 {
                body.push(',');
            }
            let value = if pretty {
                serde_json::to_string_pretty(value).unwrap()
            } else {
                serde_json::to_string(value).unwrap()
            };
            body.push_str(&format!("{ws}{key}{ws}:{ws}{value}{ws}"));
        }
        body.push('}');
        check_body(body.as_bytes());
    }
}

proptest! {
    /// Locating a top-level member without validating (how usage is read
    /// from responses) finds exactly the member a full parse finds.
    #[test]
    fn locating_a_member_matches_the_parse(
        members in prop::collection::btree_map(key(), arbitrary_value(), 0..6),
        probe in key(),
        pretty in any::<bool>(),
    ) {
        let object = Value::Object(members.into_iter().collect());
        let text = if pretty {
            serde_json::to_string_pretty(&object).unwrap()
        } else {
            serde_json::to_string(&object).unwrap()
        };
        // Keys are matched as written; serde_json escapes these.
        prop_assume!(!probe.contains(|c: char| c == '"' || c == '\\' || c.is_control()));
        // Compared with a parse of the same text: serde_json's default float
        // parsing does not round-trip every float it prints.
        let reparsed: Value = serde_json::from_str(&text).unwrap();
        let located = top_level_value(text.as_bytes(), probe.as_bytes())
            .map(|raw| serde_json::from_slice::<Value>(raw).expect("a whole value"));
        prop_assert_eq!(located.as_ref(), reparsed.get(&probe));
    }
}
