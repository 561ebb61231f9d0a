//! Stream translation, fed one upstream event at a time: the translated
//! stream must be well-formed in the client's dialect and add up to the same
//! response as the non-streaming translation.

mod translate_support;

use serde_json::{json, Value};
use shardgate::api::translate::{
    anthropic_response_to_openai, openai_response_to_anthropic, AnthropicToOpenAiStream,
    OpenAiToAnthropicStream, StreamEnd, TokenUsage,
};
use translate_support::{
    accumulate_anthropic, accumulate_openai, assert_anthropic_message, fixture, parse, sse_events,
    SseEvent,
};

fn openai_to_anthropic(upstream: &[u8]) -> (Vec<SseEvent>, TokenUsage) {
    let mut stream = OpenAiToAnthropicStream::new("claude-via-openai");
    let mut out = Vec::new();
    for event in sse_events(upstream) {
        stream.on_data(event.data.as_bytes(), &mut out).unwrap();
    }
    stream.finish(&mut out);
    (sse_events(&out), stream.usage())
}

fn anthropic_to_openai(upstream: &[u8], include_usage: bool) -> (Vec<SseEvent>, TokenUsage) {
    let mut stream = AnthropicToOpenAiStream::new("gpt-via-claude", include_usage);
    let mut out = Vec::new();
    for event in sse_events(upstream) {
        stream
            .on_event(event.event.as_bytes(), event.data.as_bytes(), &mut out)
            .unwrap();
    }
    stream.finish(&mut out);
    (sse_events(&out), stream.usage())
}

fn event_names(events: &[SseEvent]) -> Vec<&str> {
    events.iter().map(|e| e.event.as_str()).collect()
}

#[test]
fn openai_text_stream_adds_up_to_the_non_streaming_message() {
    let (events, usage) = openai_to_anthropic(&fixture("openai_stream_text.sse"));
    assert_eq!(
        event_names(&events),
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
        ]
    );
    let message = accumulate_anthropic(&events);
    assert_anthropic_message(&message);
    let expected = parse(
        &openai_response_to_anthropic(&fixture("openai_response_text.json"), "claude-via-openai")
            .unwrap(),
    );
    assert_eq!(message, expected);
    assert_eq!(
        usage,
        TokenUsage {
            input_tokens: 19,
            output_tokens: 10,
            cache_read_tokens: 4,
            cache_write_tokens: 0,
            cache_write_1h_tokens: 0,
        }
    );
}

#[test]
fn openai_tool_call_stream_adds_up_to_the_non_streaming_message() {
    let (events, usage) = openai_to_anthropic(&fixture("openai_stream_tool_calls.sse"));
    let message = accumulate_anthropic(&events);
    assert_anthropic_message(&message);
    let expected = parse(
        &openai_response_to_anthropic(
            &fixture("openai_response_tool_calls.json"),
            "claude-via-openai",
        )
        .unwrap(),
    );
    assert_eq!(message, expected);
    let start = parse(events[1].data.as_bytes());
    assert_eq!(
        start["content_block"],
        json!({"type": "tool_use", "id": "call_abc123", "name": "get_weather", "input": {}})
    );
    assert_eq!(
        usage,
        TokenUsage {
            input_tokens: 82,
            output_tokens: 17,
            cache_read_tokens: 0,
            cache_write_tokens: 0,
            cache_write_1h_tokens: 0,
        }
    );
}

#[test]
fn openai_chunks_are_translated_as_they_arrive() {
    let upstream = sse_events(&fixture("openai_stream_text.sse"));
    let mut stream = OpenAiToAnthropicStream::new("m");
    let mut out = Vec::new();
    stream
        .on_data(upstream[0].data.as_bytes(), &mut out)
        .unwrap();
    assert_eq!(
        event_names(&sse_events(&out)),
        ["message_start"],
        "empty content opens no block"
    );
    out.clear();
    stream
        .on_data(upstream[1].data.as_bytes(), &mut out)
        .unwrap();
    let events = sse_events(&out);
    assert_eq!(
        event_names(&events),
        ["content_block_start", "content_block_delta"]
    );
    assert_eq!(
        parse(events[1].data.as_bytes())["delta"],
        json!({"type": "text_delta", "text": "Hello"})
    );
    out.clear();
    // The finish chunk closes the block; the stop reason waits for the usage chunk.
    stream
        .on_data(upstream[4].data.as_bytes(), &mut out)
        .unwrap();
    assert_eq!(event_names(&sse_events(&out)), ["content_block_stop"]);
}

#[test]
fn openai_text_then_tool_call_opens_consecutive_blocks() {
    let chunk = |delta: Value, finish: Value| {
        json!({"id": "chatcmpl-1", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}).to_string()
    };
    let upstream = [
        chunk(
            json!({"role": "assistant", "content": "Checking."}),
            Value::Null,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "a", "arguments": "{\"x\":"}}]}),
            Value::Null,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
            Value::Null,
        ),
        chunk(
            json!({"tool_calls": [{"index": 1, "id": "call_2", "type": "function", "function": {"name": "b", "arguments": "{}"}}]}),
            Value::Null,
        ),
        chunk(json!({}), json!("tool_calls")),
        "[DONE]".to_owned(),
    ];
    let mut stream = OpenAiToAnthropicStream::new("m");
    let mut out = Vec::new();
    for data in &upstream {
        stream.on_data(data.as_bytes(), &mut out).unwrap();
    }
    let message = accumulate_anthropic(&sse_events(&out));
    assert_eq!(
        message["content"],
        json!([
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "call_1", "name": "a", "input": {"x": 1}},
            {"type": "tool_use", "id": "call_2", "name": "b", "input": {}},
        ])
    );
    assert_eq!(message["stop_reason"], "tool_use");
    let before_finish = out.len();
    stream.finish(&mut out);
    assert_eq!(out.len(), before_finish, "nothing follows message_stop");
}

#[test]
fn openai_stream_without_done_or_finish() {
    let upstream = sse_events(&fixture("openai_stream_text.sse"));

    // Finished choice, lost [DONE]: a normal close.
    let mut stream = OpenAiToAnthropicStream::new("m");
    let mut out = Vec::new();
    for event in &upstream[..5] {
        stream.on_data(event.data.as_bytes(), &mut out).unwrap();
    }
    stream.finish(&mut out);
    let message = accumulate_anthropic(&sse_events(&out));
    assert_eq!(message["stop_reason"], "end_turn");
    assert_eq!(
        message["content"][0]["text"],
        "Hello! How can I assist you today?"
    );

    // Cut mid-answer: an error event, not a clean stop.
    let mut stream = OpenAiToAnthropicStream::new("m");
    let mut out = Vec::new();
    for event in &upstream[..3] {
        stream.on_data(event.data.as_bytes(), &mut out).unwrap();
    }
    stream.finish(&mut out);
    let events = sse_events(&out);
    let last = events.last().unwrap();
    assert_eq!(last.event, "error");
    assert_eq!(parse(last.data.as_bytes())["error"]["type"], "api_error");
    assert!(!event_names(&events).contains(&"message_stop"));
}

#[test]
fn openai_mid_stream_error_becomes_an_anthropic_error_event() {
    let mut stream = OpenAiToAnthropicStream::new("m");
    let mut out = Vec::new();
    stream.on_data(br#"{"error":{"message":"The server had an error","type":"server_error","param":null,"code":null}}"#, &mut out).unwrap();
    let events = sse_events(&out);
    assert_eq!(event_names(&events), ["error"]);
    assert_eq!(
        parse(events[0].data.as_bytes()),
        json!({"type": "error", "error": {"type": "api_error", "message": "The server had an error"}})
    );
    assert!(
        stream.on_data(b"not json", &mut Vec::new()).is_ok(),
        "input after the end is ignored"
    );
    let mut fresh = OpenAiToAnthropicStream::new("m");
    assert!(fresh.on_data(b"{not json", &mut Vec::new()).is_err());
}

#[test]
fn anthropic_text_stream_adds_up_to_the_non_streaming_completion() {
    let (events, usage) = anthropic_to_openai(&fixture("anthropic_stream_text.sse"), true);
    let streamed = accumulate_openai(&events);
    let expected = parse(
        &anthropic_response_to_openai(&fixture("anthropic_response_text.json"), "gpt-via-claude")
            .unwrap(),
    );
    assert_eq!(streamed["id"], expected["id"]);
    assert_eq!(streamed["model"], expected["model"]);
    assert_eq!(
        streamed["choices"][0]["message"]["content"],
        expected["choices"][0]["message"]["content"]
    );
    assert_eq!(
        streamed["choices"][0]["finish_reason"],
        expected["choices"][0]["finish_reason"]
    );
    assert_eq!(streamed["usage"], expected["usage"]);
    assert_eq!(
        usage,
        TokenUsage {
            input_tokens: 2205,
            output_tokens: 503,
            cache_read_tokens: 100,
            cache_write_tokens: 10,
            cache_write_1h_tokens: 0,
        }
    );
    // Role, two text deltas, finish, usage, [DONE]: ping and block boundaries emit nothing.
    assert_eq!(events.len(), 6);
    for event in &events[..4] {
        assert!(
            parse(event.data.as_bytes())["usage"].is_null()
                && event.data.contains("\"usage\":null")
        );
    }
}

#[test]
fn anthropic_tool_use_stream_adds_up_to_the_non_streaming_completion() {
    let (events, _) = anthropic_to_openai(&fixture("anthropic_stream_tool_use.sse"), true);
    let streamed = accumulate_openai(&events);
    let expected = parse(
        &anthropic_response_to_openai(
            &fixture("anthropic_response_tool_use.json"),
            "gpt-via-claude",
        )
        .unwrap(),
    );
    let (streamed_message, expected_message) = (
        &streamed["choices"][0]["message"],
        &expected["choices"][0]["message"],
    );
    assert_eq!(streamed_message["content"], expected_message["content"]);
    let streamed_call = &streamed_message["tool_calls"][0];
    let expected_call = &expected_message["tool_calls"][0];
    assert_eq!(streamed_call["id"], expected_call["id"]);
    assert_eq!(
        streamed_call["function"]["name"],
        expected_call["function"]["name"]
    );
    // Anthropic streams the arguments with its own spacing; the JSON is the same.
    let arguments = |call: &Value| -> Value {
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap()
    };
    assert_eq!(arguments(streamed_call), arguments(expected_call));
    assert_eq!(streamed["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(streamed["usage"], expected["usage"]);
    let first_call_chunk = events
        .iter()
        .map(|e| parse(e.data.as_bytes()))
        .find(|c| c["choices"][0]["delta"]["tool_calls"].is_array())
        .unwrap();
    assert_eq!(
        first_call_chunk["choices"][0]["delta"]["tool_calls"],
        json!([{
            "index": 0, "id": "toolu_01A09q90qw90lq917835lq9", "type": "function", "function": {"name": "get_weather", "arguments": ""},
        }])
    );
}

#[test]
fn anthropic_stream_without_include_usage_has_no_usage() {
    let (events, usage) = anthropic_to_openai(&fixture("anthropic_stream_text.sse"), false);
    assert_eq!(events.len(), 5);
    assert!(events.iter().all(|e| !e.data.contains("usage")));
    assert!(accumulate_openai(&events)["usage"].is_null());
    assert_eq!(usage.output_tokens, 503, "the gateway still sees usage");
}

#[test]
fn anthropic_event_name_may_come_from_the_data_type() {
    let upstream = sse_events(&fixture("anthropic_stream_text.sse"));
    let mut named = AnthropicToOpenAiStream::new("m", false);
    let mut unnamed = AnthropicToOpenAiStream::new("m", false);
    let (mut named_out, mut unnamed_out) = (Vec::new(), Vec::new());
    for event in &upstream {
        named
            .on_event(
                event.event.as_bytes(),
                event.data.as_bytes(),
                &mut named_out,
            )
            .unwrap();
        unnamed
            .on_event(b"", event.data.as_bytes(), &mut unnamed_out)
            .unwrap();
    }
    let strip_created = |out: &[u8]| -> Vec<Value> {
        sse_events(out)
            .iter()
            .filter(|e| e.data != "[DONE]")
            .map(|e| {
                let mut v = parse(e.data.as_bytes());
                v["created"] = Value::Null;
                v
            })
            .collect()
    };
    assert_eq!(strip_created(&named_out), strip_created(&unnamed_out));
}

#[test]
fn anthropic_error_event_and_truncation_become_openai_error_chunks() {
    let upstream = sse_events(&fixture("anthropic_stream_text.sse"));
    let mut stream = AnthropicToOpenAiStream::new("m", true);
    let mut out = Vec::new();
    for event in &upstream[..4] {
        stream
            .on_event(event.event.as_bytes(), event.data.as_bytes(), &mut out)
            .unwrap();
    }
    out.clear();
    stream
        .on_event(
            b"error",
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
            &mut out,
        )
        .unwrap();
    assert_eq!(
        parse(sse_events(&out)[0].data.as_bytes()),
        json!({"error": {"message": "Overloaded", "type": "server_error", "param": null, "code": null}})
    );
    stream.finish(&mut out);
    assert_eq!(sse_events(&out).len(), 1, "nothing after the error");

    let mut cut = AnthropicToOpenAiStream::new("m", true);
    let mut out = Vec::new();
    for event in &upstream[..4] {
        cut.on_event(event.event.as_bytes(), event.data.as_bytes(), &mut out)
            .unwrap();
    }
    cut.finish(&mut out);
    let last = sse_events(&out).pop().unwrap();
    assert_eq!(parse(last.data.as_bytes())["error"]["type"], "server_error");
}

#[test]
fn streams_round_trip_through_the_other_dialect() {
    // OpenAI upstream → Anthropic client events → back into OpenAI chunks.
    let (anthropic_events, _) = openai_to_anthropic(&fixture("openai_stream_tool_calls.sse"));
    let mut back = AnthropicToOpenAiStream::new("gpt-4o-mini", true);
    let mut out = Vec::new();
    for event in &anthropic_events {
        back.on_event(event.event.as_bytes(), event.data.as_bytes(), &mut out)
            .unwrap();
    }
    let completion = accumulate_openai(&sse_events(&out));
    let original = parse(&fixture("openai_response_tool_calls.json"));
    assert_eq!(completion["id"], original["id"]);
    assert_eq!(completion["choices"][0]["finish_reason"], "tool_calls");
    let calls = completion["choices"][0]["message"]["tool_calls"]
        .as_array()
        .unwrap();
    let original_calls = original["choices"][0]["message"]["tool_calls"]
        .as_array()
        .unwrap();
    assert_eq!(calls.len(), 2);
    for (call, original_call) in calls.iter().zip(original_calls) {
        assert_eq!(call["id"], original_call["id"]);
        assert_eq!(call["function"]["name"], original_call["function"]["name"]);
        assert_eq!(
            call["function"]["arguments"], original_call["function"]["arguments"],
            "fragments pass through unchanged"
        );
    }
    assert_eq!(completion["usage"]["prompt_tokens"], 82);
    assert_eq!(completion["usage"]["completion_tokens"], 17);
}

#[test]
fn translated_streams_are_byte_for_byte_reproducible_in_provider_key_order() {
    let (first, _) = openai_to_anthropic(&fixture("openai_stream_tool_calls.sse"));
    let (second, _) = openai_to_anthropic(&fixture("openai_stream_tool_calls.sse"));
    assert_eq!(first, second);
    assert!(first
        .iter()
        .all(|e| e.data.starts_with(&format!("{{\"type\":\"{}\"", e.event))));
    assert_eq!(
        first[1].data,
        r#"{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"call_abc123","name":"get_weather","input":{}}}"#
    );

    let (chunks, _) = anthropic_to_openai(&fixture("anthropic_stream_tool_use.sse"), false);
    let created = parse(chunks[0].data.as_bytes())["created"].clone();
    assert_eq!(
        chunks[0].data,
        format!(
            r#"{{"id":"chatcmpl-01Aq9w938a90dw8q","object":"chat.completion.chunk","created":{created},"model":"gpt-via-claude","choices":[{{"index":0,"delta":{{"role":"assistant","content":""}},"logprobs":null,"finish_reason":null}}]}}"#
        )
    );
}
