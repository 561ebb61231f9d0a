//! Non-streaming response translation, OpenAI ⇄ Anthropic.

mod translate_support;

use serde_json::{json, Value};
use shardgate::api::translate::{
    anthropic_response_to_openai, openai_response_to_anthropic, TranslateError,
};
use translate_support::{assert_anthropic_message, assert_openai_completion, fixture, parse};

fn to_anthropic(name: &str) -> Value {
    let message =
        parse(&openai_response_to_anthropic(&fixture(name), "claude-via-openai").unwrap());
    assert_anthropic_message(&message);
    message
}

fn to_openai(name: &str) -> Value {
    let completion =
        parse(&anthropic_response_to_openai(&fixture(name), "gpt-via-claude").unwrap());
    assert_openai_completion(&completion);
    completion
}

#[test]
fn openai_text_response_becomes_an_anthropic_message() {
    let message = to_anthropic("openai_response_text.json");
    assert_eq!(
        message,
        json!({
            "id": "msg_B9MBs8CjcvOU2jLn4n570S5qMJKcT",
            "type": "message",
            "role": "assistant",
            "model": "claude-via-openai",
            "content": [{"type": "text", "text": "Hello! How can I assist you today?"}],
            "stop_reason": "end_turn",
            "stop_sequence": null,
            // 19 prompt tokens of which 4 cached: Anthropic counts them apart.
            "usage": {"input_tokens": 15, "output_tokens": 10, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 4},
        })
    );
}

#[test]
fn openai_tool_calls_become_tool_use_blocks() {
    let message = to_anthropic("openai_response_tool_calls.json");
    assert_eq!(
        message["content"],
        json!([
            {"type": "tool_use", "id": "call_abc123", "name": "get_weather", "input": {"location": "Boston, MA"}},
            {"type": "tool_use", "id": "call_def456", "name": "get_time", "input": {}},
        ])
    );
    assert_eq!(message["stop_reason"], "tool_use");
    assert_eq!(message["usage"]["input_tokens"], 82);
    assert_eq!(message["usage"]["output_tokens"], 17);
}

#[test]
fn openai_finish_reasons_map_to_stop_reasons() {
    assert_eq!(
        to_anthropic("openai_response_length.json")["stop_reason"],
        "max_tokens"
    );
    let refused = to_anthropic("openai_response_content_filter.json");
    assert_eq!(refused["stop_reason"], "refusal");
    assert_eq!(
        refused["content"],
        json!([{"type": "text", "text": "I'm sorry, I can't help with that."}])
    );
}

#[test]
fn anthropic_text_response_becomes_a_chat_completion() {
    let completion = to_openai("anthropic_response_text.json");
    assert_eq!(completion["id"], "chatcmpl-013Zva2CMHLNnXjNJJKqJ2EF");
    assert_eq!(completion["model"], "gpt-via-claude");
    assert_eq!(
        completion["choices"][0]["message"],
        json!({"role": "assistant", "content": "Hi! My name is Claude.", "refusal": null})
    );
    assert_eq!(completion["choices"][0]["finish_reason"], "stop");
    // Cache reads and writes are prompt tokens too.
    assert_eq!(
        completion["usage"],
        json!({
            "prompt_tokens": 2205,
            "completion_tokens": 503,
            "total_tokens": 2708,
            "prompt_tokens_details": {"cached_tokens": 100},
        })
    );
}

#[test]
fn anthropic_tool_use_becomes_tool_calls_with_string_arguments() {
    let completion = to_openai("anthropic_response_tool_use.json");
    let message = &completion["choices"][0]["message"];
    assert_eq!(
        message["content"], "I'll check the current weather in San Francisco for you.",
        "thinking is dropped"
    );
    let call = &message["tool_calls"][0];
    assert_eq!(call["id"], "toolu_01A09q90qw90lq917835lq9");
    assert_eq!(call["function"]["name"], "get_weather");
    let arguments: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(
        arguments,
        json!({"location": "San Francisco, CA", "unit": "celsius"})
    );
    assert_eq!(completion["choices"][0]["finish_reason"], "tool_calls");
}

#[test]
fn anthropic_stop_reasons_map_to_finish_reasons() {
    assert_eq!(
        to_openai("anthropic_response_max_tokens.json")["choices"][0]["finish_reason"],
        "length"
    );
    assert_eq!(
        to_openai("anthropic_response_stop_sequence.json")["choices"][0]["finish_reason"],
        "stop"
    );
}

#[test]
fn responses_round_trip() {
    for name in [
        "anthropic_response_tool_use.json",
        "anthropic_response_max_tokens.json",
    ] {
        let original = parse(&fixture(name));
        let openai = anthropic_response_to_openai(&fixture(name), "m").unwrap();
        let back =
            parse(&openai_response_to_anthropic(&openai, "claude-sonnet-4-5-20250929").unwrap());
        let kept: Vec<&Value> = original["content"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["type"] != "thinking")
            .collect();
        assert_eq!(
            back["content"]
                .as_array()
                .unwrap()
                .iter()
                .collect::<Vec<_>>(),
            kept,
            "{name}"
        );
        assert_eq!(back["id"], original["id"]);
        assert_eq!(back["model"], original["model"]);
        assert_eq!(back["stop_reason"], original["stop_reason"]);
        assert_eq!(
            back["usage"]["input_tokens"],
            original["usage"]["input_tokens"]
        );
        assert_eq!(
            back["usage"]["output_tokens"],
            original["usage"]["output_tokens"]
        );
    }
}

#[test]
fn malformed_responses_are_refused() {
    assert!(matches!(
        openai_response_to_anthropic(b"<html>", "m"),
        Err(TranslateError::Json(_))
    ));
    assert!(matches!(
        openai_response_to_anthropic(br#"{"choices":[]}"#, "m"),
        Err(TranslateError::Invalid(_))
    ));
    assert!(matches!(
        anthropic_response_to_openai(br#"{"id":"msg_1"}"#, "m"),
        Err(TranslateError::Invalid(_))
    ));
}
