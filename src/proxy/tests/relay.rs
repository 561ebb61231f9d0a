//! The native relay's decisions: reuse, cuts, a client that leaves,
//! HTTP/1.0 clients, usage as it passes.

use super::*;
use crate::api::translate::{ANTHROPIC_STREAM_CUT, OPENAI_STREAM_CUT};
use crate::proxy::exchange::Relayed;
use crate::proxy::relay::relay_response;

const CHAT: &str = r#"{"id":"c1","object":"chat.completion","choices":[],"usage":{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18}}"#;
const SSE: &str = "content-type: text/event-stream\r\n";

/// Relays what `up` answers to a client of `facts`.
fn relay(mut up: Scripted, client: &mut Client, facts: ClientFacts) -> (Relayed, UpstreamSide) {
    run(async {
        let (mut side, urbuf) = head_of(&mut up).await;
        let relayed = relay_response(
            &mut up,
            urbuf,
            PooledBuf::take(1024),
            &mut side,
            client,
            &facts,
            clock(),
        )
        .await
        .unwrap_or_else(|e| panic!("an error before the head: {e}"));
        (relayed, side)
    })
}

fn body_of(client: &Client) -> String {
    let text = client.text();
    text.split_once("\r\n\r\n").expect("a head").1.to_string()
}

#[test]
fn a_whole_length_response_is_relayed_and_leaves_the_connection_reusable() {
    let response = length_response("200 OK", "content-type: application/json\r\n", CHAT);
    let mut client = Client::new();
    // The body comes in three reads, the head with the first bytes of it.
    let (relayed, side) = relay(
        Scripted::in_pieces(&response, 90),
        &mut client,
        facts(Dialect::OpenAi),
    );
    assert!(matches!(relayed, Relayed::Complete { close: false }));
    assert!(side.report.reusable);
    assert_eq!(body_of(&client), CHAT);
    assert!(client
        .text()
        .contains(&format!("content-length: {}\r\n", CHAT.len())));
    assert_eq!(count(&client.text(), "HTTP/1.1 "), 1);
    let usage = side.report.usage.expect("usage read from the body");
    assert_eq!((usage.input_tokens, usage.output_tokens), (11, 7));
}

#[test]
fn bytes_past_the_response_s_end_make_its_connection_unreusable() {
    let mut response = length_response("200 OK", "", CHAT);
    response.extend_from_slice(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nno");
    let mut client = Client::new();
    let (relayed, side) = relay(
        Scripted::in_pieces(&response, 4096),
        &mut client,
        facts(Dialect::OpenAi),
    );
    assert!(matches!(relayed, Relayed::Complete { .. }));
    assert!(
        !side.report.reusable,
        "an unsolicited second response must not be pooled"
    );
    assert_eq!(
        body_of(&client),
        CHAT,
        "the client gets its own response only"
    );
}

#[test]
fn a_length_body_cut_short_within_the_read_ahead_is_still_an_error_to_answer() {
    let response = length_response("200 OK", "", CHAT);
    let cut = &response[..response.len() - 20];
    let mut client = Client::new();
    let err = run(async {
        let mut up = Scripted::in_pieces(cut, 64);
        let (mut side, urbuf) = head_of(&mut up).await;
        let f = facts(Dialect::OpenAi);
        relay_response(
            &mut up,
            urbuf,
            PooledBuf::take(1024),
            &mut side,
            &mut client,
            &f,
            clock(),
        )
        .await
        .err()
    });
    // Nothing was committed: the caller answers a 502 in its place.
    let err = err.expect("the cut is seen before the head is sent");
    assert_eq!(err.status(), 502);
    assert!(client.got.is_empty());
}

#[test]
fn a_length_body_cut_short_past_the_read_ahead_breaks_the_client_s_response_in_place() {
    let body = "b".repeat(400 * 1024);
    let response = length_response("200 OK", "", &body);
    let cut = &response[..response.len() - 100 * 1024];
    let mut client = Client::new();
    let (relayed, side) = relay(
        Scripted::in_pieces(cut, 16 * 1024),
        &mut client,
        facts(Dialect::OpenAi),
    );
    assert!(matches!(relayed, Relayed::Broken));
    assert!(side.report.truncated && !side.report.reusable);
    // One head, and only the bytes that came: never a second head (an
    // error response) after the first.
    assert_eq!(count(&client.text(), "HTTP/1.1 "), 1);
    assert_eq!(body_of(&client).len(), 300 * 1024);
}

#[test]
fn a_stream_cut_between_events_ends_with_the_dialect_s_cut_event() {
    for (dialect, cut) in [
        (Dialect::OpenAi, OPENAI_STREAM_CUT),
        (Dialect::Anthropic, ANTHROPIC_STREAM_CUT),
    ] {
        let events = ["data: {\"n\":1}\n\n", "data: {\"n\":2}\n\n"];
        let response = chunked_response(SSE, &events, false);
        let mut client = Client::new();
        let (relayed, side) = relay(
            Scripted::in_pieces(&response, 4096),
            &mut client,
            facts(dialect),
        );
        // Whole as HTTP: the client's connection stays in sync and is kept;
        // the upstream's is not.
        assert!(
            matches!(relayed, Relayed::Complete { close: false }),
            "{dialect:?}"
        );
        assert!(side.report.truncated && !side.report.reusable);
        let text = client.text();
        let cut = std::str::from_utf8(cut).unwrap();
        // The cut event as a chunk of its own, then the last chunk: the
        // client reads a well-framed stream that says it was cut.
        let tail = format!("{:x}\r\n{cut}\r\n0\r\n\r\n", cut.len());
        assert!(text.ends_with(&tail), "{dialect:?}: {text:?}");
        assert!(text.contains("data: {\"n\":2}\n\n"));
    }
}

#[test]
fn a_stream_cut_inside_an_event_ends_that_event_before_the_cut_event() {
    let response = chunked_response(SSE, &["data: {\"n\":1}\n\n", "data: {\"n\":"], false);
    let mut client = Client::new();
    let (relayed, _) = relay(
        Scripted::in_pieces(&response, 4096),
        &mut client,
        facts(Dialect::OpenAi),
    );
    assert!(matches!(relayed, Relayed::Complete { close: false }));
    let cut = std::str::from_utf8(OPENAI_STREAM_CUT).unwrap();
    let tail = format!("{:x}\r\n\n\n{cut}\r\n0\r\n\r\n", cut.len() + 2);
    assert!(client.text().ends_with(&tail), "{}", client.text());
}

#[test]
fn a_client_that_stops_taking_bytes_breaks_the_relay_and_the_upstream_is_not_pooled() {
    let body = "x".repeat(50_000);
    let response = length_response("200 OK", "", &body);
    let mut client = Client::with_room(1_000);
    let (relayed, side) = relay(
        Scripted::in_pieces(&response, 8192),
        &mut client,
        facts(Dialect::OpenAi),
    );
    assert!(matches!(relayed, Relayed::Broken));
    assert!(!side.report.reusable, "the rest of the body was never read");
    assert_eq!(client.got.len(), 1_000);
}

#[test]
fn an_http10_client_gets_a_chunked_body_decoded_and_the_connection_closed() {
    let response = chunked_response(
        "content-type: application/json\r\n",
        &["{\"a\":", "1}"],
        true,
    );
    let mut client = Client::new();
    let mut f = facts(Dialect::OpenAi);
    f.http10 = true;
    let (relayed, _) = relay(Scripted::in_pieces(&response, 16), &mut client, f);
    assert!(matches!(relayed, Relayed::Complete { close: true }));
    let text = client.text();
    assert!(
        !text.to_ascii_lowercase().contains("transfer-encoding"),
        "{text}"
    );
    assert!(text.contains("connection: close\r\n"), "{text}");
    assert_eq!(body_of(&client), "{\"a\":1}");
}

#[test]
fn a_stream_s_usage_is_read_from_its_events_as_they_pass() {
    let events = [
        "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n",
        "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2,\"total_tokens\":5}}\n\n",
        "data: [DONE]\n\n",
    ];
    let response = chunked_response(SSE, &events, true);
    let mut client = Client::new();
    // Events split across reads, mid-event.
    let (relayed, side) = relay(
        Scripted::in_pieces(&response, 37),
        &mut client,
        facts(Dialect::OpenAi),
    );
    assert!(matches!(relayed, Relayed::Complete { close: false }));
    assert!(side.report.streamed && side.report.reusable);
    let usage = side.report.usage.expect("usage from the stream");
    assert_eq!((usage.input_tokens, usage.output_tokens), (3, 2));
    assert!(side.report.first_event().is_some());
}

#[test]
fn a_response_to_head_has_no_body_and_keeps_the_connection() {
    let response = b"HTTP/1.1 200 OK\r\ncontent-length: 120\r\n\r\n".to_vec();
    let mut client = Client::new();
    let mut f = facts(Dialect::OpenAi);
    f.is_head = true;
    let (relayed, side) = relay(Scripted::in_pieces(&response, 4096), &mut client, f);
    assert!(matches!(relayed, Relayed::Complete { close: false }));
    assert!(side.report.reusable);
    // The head alone: a body after it would be read as the next response.
    assert!(client.text().starts_with("HTTP/1.1 200 OK\r\n"));
    assert_eq!(body_of(&client), "");
}
