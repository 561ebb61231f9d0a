//! The translating relay's decisions: a stream translated event by event,
//! a cut stream ended in the client's dialect, a whole answer translated.

use super::*;
use crate::proxy::exchange::Relayed;
use crate::proxy::translated::{relay_translated, TranslatedCall, Translation};

const SSE: &str = "content-type: text/event-stream\r\n";

fn translate(
    mut up: Scripted,
    client: &mut Client,
    call: TranslatedCall,
) -> (Relayed, UpstreamSide) {
    run(async {
        let (mut side, urbuf) = head_of(&mut up).await;
        let relayed = relay_translated(
            &mut up,
            urbuf,
            &mut side,
            client,
            &facts(Dialect::Anthropic),
            &call,
            clock(),
        )
        .await
        .unwrap_or_else(|e| panic!("an error before the head: {e}"));
        (relayed, side)
    })
}

fn to_anthropic(stream: bool) -> TranslatedCall {
    TranslatedCall {
        translation: Translation::OpenAiToAnthropic,
        stream,
        client_model: "claude-client".into(),
    }
}

const CHUNKS: [&str; 4] = [
    "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n",
    "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"}}]}\n\n",
    "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":1,\"total_tokens\":10}}\n\n",
    "data: [DONE]\n\n",
];

#[test]
fn an_openai_stream_reaches_an_anthropic_client_as_its_events() {
    let response = chunked_response(SSE, &CHUNKS, true);
    let mut client = Client::new();
    let (relayed, side) = translate(
        Scripted::in_pieces(&response, 29),
        &mut client,
        to_anthropic(true),
    );
    assert!(matches!(relayed, Relayed::Complete { close: false }));
    let text = client.text();
    for event in [
        "message_start",
        "content_block_delta",
        "message_delta",
        "message_stop",
    ] {
        assert!(
            text.contains(&format!("event: {event}\n")),
            "{event}: {text}"
        );
    }
    assert!(
        text.contains("Hello") && text.contains("claude-client"),
        "{text}"
    );
    assert!(
        !text.contains("[DONE]"),
        "OpenAI's terminator never reaches an Anthropic client"
    );
    assert!(text.ends_with("0\r\n\r\n"));
    let usage = side.report.usage.expect("usage from the stream");
    assert_eq!((usage.input_tokens, usage.output_tokens), (9, 1));
}

#[test]
fn a_cut_openai_stream_ends_the_anthropic_stream_with_an_error_event() {
    let response = chunked_response(SSE, &CHUNKS[..2], false);
    let mut client = Client::new();
    let (relayed, side) = translate(
        Scripted::in_pieces(&response, 4096),
        &mut client,
        to_anthropic(true),
    );
    assert!(matches!(relayed, Relayed::Complete { close: false }));
    assert!(side.report.truncated && !side.report.reusable);
    let text = client.text();
    assert!(text.contains("event: error\n"), "{text}");
    assert!(
        !text.contains("event: message_stop"),
        "a cut stream never says it ended well"
    );
    assert!(
        text.ends_with("0\r\n\r\n"),
        "still a well-framed chunked body: {text}"
    );
    assert_eq!(count(&text, "HTTP/1.1 "), 1);
}

#[test]
fn a_whole_openai_answer_is_answered_as_an_anthropic_message() {
    let body = r#"{"id":"chatcmpl-1","object":"chat.completion","model":"gpt","choices":[{"index":0,"message":{"role":"assistant","content":"Hi there"},"finish_reason":"stop"}],"usage":{"prompt_tokens":4,"completion_tokens":2,"total_tokens":6}}"#;
    let response = length_response("200 OK", "content-type: application/json\r\n", body);
    let mut client = Client::new();
    let (relayed, side) = translate(
        Scripted::in_pieces(&response, 50),
        &mut client,
        to_anthropic(false),
    );
    assert!(matches!(relayed, Relayed::Complete { close: false }));
    assert!(side.report.reusable);
    let text = client.text();
    let (head, json) = text.split_once("\r\n\r\n").unwrap();
    assert!(
        head.contains(&format!("content-length: {}", json.len())),
        "{head}"
    );
    let message: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(message["type"], "message");
    assert_eq!(message["model"], "claude-client");
    assert_eq!(message["content"][0]["text"], "Hi there");
    assert_eq!(message["stop_reason"], "end_turn");
    assert_eq!(message["usage"]["input_tokens"], 4);
}
