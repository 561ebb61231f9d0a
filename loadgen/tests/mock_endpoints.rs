//! The mock answers every endpoint in its dialect's real shape, plain and
//! streaming, echoes what it received, and keeps pipelined requests in order.

mod common;
use common::*;
use std::io::{BufReader, Write};

fn sse_data(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            e.lines()
                .find_map(|l| l.strip_prefix("data: "))
                .unwrap()
                .to_string()
        })
        .collect()
}

#[test]
fn plain_endpoints_echo_model_and_report_usage() {
    let mock = Mock::start(&["--tokens", "3", "--embedding-dims", "8"]);
    let chat = send(
        mock.addr,
        "POST",
        "/v1/chat/completions",
        &[],
        r#"{"model":"m-1","messages":[]}"#,
    );
    assert_eq!(chat.status, 200);
    let v = chat.json();
    assert_eq!(v["model"], "m-1");
    assert_eq!(v["choices"][0]["message"]["content"], "tok tok tok ");
    assert_eq!(v["usage"]["completion_tokens"], 3);

    let v = send(
        mock.addr,
        "POST",
        "/completions",
        &[],
        r#"{"model":"c","prompt":"x"}"#,
    )
    .json();
    assert_eq!(
        (v["object"].as_str(), v["usage"]["total_tokens"].is_u64()),
        (Some("text_completion"), true)
    );

    let v = send(
        mock.addr,
        "POST",
        "/v1/embeddings",
        &[],
        r#"{"model":"e","input":["a","b"]}"#,
    )
    .json();
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    assert_eq!(v["data"][1]["embedding"].as_array().unwrap().len(), 8);

    let v = send(
        mock.addr,
        "POST",
        "/v1/responses",
        &[],
        r#"{"model":"r","input":"hi"}"#,
    )
    .json();
    assert_eq!(
        (v["object"].as_str(), v["status"].as_str()),
        (Some("response"), Some("completed"))
    );
    assert_eq!(v["output"][0]["content"][0]["text"], "tok tok tok ");
    assert!(v["usage"]["input_tokens"].is_u64());

    let v = send(
        mock.addr,
        "POST",
        "/v1/messages",
        &[],
        r#"{"model":"claude-x","max_tokens":5,"messages":[]}"#,
    )
    .json();
    assert_eq!(
        (v["type"].as_str(), v["model"].as_str()),
        (Some("message"), Some("claude-x"))
    );
    assert_eq!(v["usage"]["output_tokens"], 3);

    assert!(send(
        mock.addr,
        "POST",
        "/v1/messages/count_tokens",
        &[],
        r#"{"model":"c"}"#
    )
    .json()["input_tokens"]
        .is_u64());
    assert_eq!(
        send(mock.addr, "GET", "/v1/models", &[], "").json()["object"],
        "list"
    );
    assert_eq!(
        send(
            mock.addr,
            "GET",
            "/v1/models",
            &[("anthropic-version", "2023-06-01")],
            ""
        )
        .json()["has_more"],
        false
    );

    let missing = send(mock.addr, "POST", "/v1/nope", &[], "{}");
    assert_eq!(missing.status, 404);
    assert!(missing.json()["error"]["message"].is_string());
    assert_eq!(
        send(mock.addr, "POST", "/v1/chat/completions", &[], "{oops").status,
        400
    );
}

#[test]
fn streams_end_the_way_their_dialect_ends() {
    let mock = Mock::start(&["--tokens", "4"]);
    let chat = send(
        mock.addr,
        "POST",
        "/v1/chat/completions",
        &[],
        r#"{"model":"m","stream":true,"stream_options":{"include_usage":true}}"#,
    );
    assert_eq!(chat.header("content-type"), Some("text/event-stream"));
    let data = sse_data(&chat.text());
    assert_eq!(data.last().unwrap(), "[DONE]");
    let usage: serde_json::Value = serde_json::from_str(&data[data.len() - 2]).unwrap();
    assert_eq!(usage["usage"]["completion_tokens"], 4);
    let deltas = data
        .iter()
        .filter(|d| d.contains(r#""content":"tok ""#))
        .count();
    assert_eq!(deltas, 4);

    let no_usage = sse_data(
        &send(
            mock.addr,
            "POST",
            "/v1/chat/completions",
            &[],
            r#"{"model":"m","stream":true}"#,
        )
        .text(),
    );
    assert!(no_usage.iter().all(|d| !d.contains("usage")));

    let completions = sse_data(
        &send(
            mock.addr,
            "POST",
            "/v1/completions",
            &[],
            r#"{"model":"m","stream":true}"#,
        )
        .text(),
    );
    assert_eq!(completions.last().unwrap(), "[DONE]");

    let responses = send(
        mock.addr,
        "POST",
        "/v1/responses",
        &[],
        r#"{"model":"m","stream":true}"#,
    )
    .text();
    let last: serde_json::Value =
        serde_json::from_str(sse_data(&responses).last().unwrap()).unwrap();
    assert_eq!(last["type"], "response.completed");
    assert_eq!(last["response"]["model"], "m");
    assert!(responses.starts_with("event: response.created\n"));

    let messages = send(
        mock.addr,
        "POST",
        "/v1/messages",
        &[],
        r#"{"model":"c","stream":true}"#,
    )
    .text();
    assert!(messages.starts_with("event: message_start\n"));
    assert!(messages.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"));
    for event in sse_data(&messages) {
        serde_json::from_str::<serde_json::Value>(&event).unwrap();
    }
}

#[test]
fn echo_returns_exactly_what_arrived() {
    let mock = Mock::start(&[]);
    let body = r#"{"model": "x",  "messages":[{"content":"é\n"}]}"#;
    let v = send(
        mock.addr,
        "POST",
        "/v1/chat/completions?q=1",
        &[("x-mock-echo-body", "1"), ("X-Custom", "v")],
        body,
    )
    .json();
    assert_eq!(v["body"], body);
    assert_eq!(v["method"], "POST");
    assert_eq!(v["target"], "/v1/chat/completions?q=1");
    assert!(v["headers"]
        .as_array()
        .unwrap()
        .iter()
        .any(|h| h[0] == "X-Custom" && h[1] == "v"));
}

#[test]
fn pipelined_and_chunked_requests_are_answered_in_order() {
    let mock = Mock::start(&[]);
    let stream = connect(mock.addr);
    let mut wire = request_bytes("POST", "/v1/chat/completions", &[], r#"{"model":"first"}"#);
    wire.extend(b"POST /mock/echo HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n");
    wire.extend(request_bytes(
        "POST",
        "/v1/messages",
        &[],
        r#"{"model":"third"}"#,
    ));
    (&stream).write_all(&wire).unwrap();
    let mut reader = BufReader::new(&stream);
    assert_eq!(read_response(&mut reader).json()["model"], "first");
    assert_eq!(read_response(&mut reader).json()["body"], "abcde");
    assert_eq!(read_response(&mut reader).json()["model"], "third");
}

#[test]
fn expect_continue_gets_an_interim_response() {
    let mock = Mock::start(&[]);
    let stream = connect(mock.addr);
    let body = r#"{"model":"late"}"#;
    let head = format!("POST /v1/chat/completions HTTP/1.1\r\nhost: t\r\nexpect: 100-continue\r\ncontent-length: {}\r\n\r\n", body.len());
    (&stream).write_all(head.as_bytes()).unwrap();
    let mut reader = BufReader::new(&stream);
    assert_eq!(read_response(&mut reader).status, 100);
    (&stream).write_all(body.as_bytes()).unwrap();
    assert_eq!(read_response(&mut reader).json()["model"], "late");
}
