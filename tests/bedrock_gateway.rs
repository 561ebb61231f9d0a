//! Bedrock end to end: a real gateway configured with `kind = "bedrock"`
//! in front of a mock Bedrock runtime that checks every request the way
//! AWS does, with an independent implementation (botocore's signer, through
//! `tests/fixtures/aws/sigv4_verify.py`), and answers 403 to a signature
//! that does not verify, as AWS does. Both client dialects, plain and
//! streamed: OpenAI chat through Converse and ConverseStream (event-stream
//! framing), Anthropic messages through InvokeModel for Anthropic's models
//! and Converse for the others; AWS errors in the client's dialect; a cut
//! stream; usage metered; credentials refreshed from the shared file while
//! the gateway runs. Skips with a SKIP line when botocore is not installed
//! (CI requires it).

mod common;

use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{
    data_events, free_port, python_modules_available, sample, scrape, Gateway, GatewayOpts,
    MockUpstream, Recorded, Reply, TempDir, Writer,
};
use serde_json::{json, Value};
use shardgate::api::eventstream::{encode, event};

const ACCESS_KEY: &str = "AKIDEXAMPLE";
const SECRET_A: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const SECRET_B: &str = "second/secret/after/rotation+EXAMPLEKEY";
const TOKEN: &str = "IQoJb3JpZ2luX2VjEXAMPLE/session==";
const REGION: &str = "eu-west-3";
const REQUEST_ID: &str = "7b5a0c1e-2d3f-4a5b-8c9d-0e1f2a3b4c5d";

/// What the mock expects requests to be signed with.
#[derive(Clone)]
struct Expected {
    secret: String,
    token: Option<String>,
}

/// The mock Bedrock runtime: each request's signature is verified by
/// botocore first; its verdict is kept.
struct MockBedrock {
    mock: MockUpstream,
    expected: Arc<Mutex<Expected>>,
    verdicts: Arc<Mutex<Vec<Value>>>,
}

impl MockBedrock {
    fn start(expected: Expected) -> MockBedrock {
        let expected = Arc::new(Mutex::new(expected));
        let verdicts = Arc::new(Mutex::new(Vec::new()));
        let (e, v) = (expected.clone(), verdicts.clone());
        let mock = MockUpstream::with(move |_| {
            let (e, v) = (e.clone(), v.clone());
            Reply::Scripted(Writer::new(move |stream, rec| {
                let expected = e.lock().unwrap().clone();
                let verdict = verify(rec, &expected);
                let ok = verdict["ok"] == true;
                v.lock().unwrap().push(verdict);
                if !ok {
                    let body = br#"{"message":"The request signature we calculated does not match the signature you provided."}"#;
                    respond(stream, 403, "application/json", body)?;
                    return Ok(true);
                }
                answer(stream, rec)
            }))
        });
        MockBedrock {
            mock,
            expected,
            verdicts,
        }
    }

    fn base_url(&self) -> String {
        format!("http://{}", self.mock.addr)
    }

    /// Every request so far verified.
    fn all_verified(&self) {
        let verdicts = self.verdicts.lock().unwrap();
        assert!(!verdicts.is_empty());
        for v in verdicts.iter() {
            assert_eq!(v["ok"], true, "{v}");
        }
    }
}

/// `tests/fixtures/aws/sigv4_verify.py` on one received request.
fn verify(rec: &Recorded, expected: &Expected) -> Value {
    let case = json!({
        "method": rec.method,
        "target": rec.target,
        "headers": rec.headers.iter().map(|(n, v)| [n, v]).collect::<Vec<_>>(),
        "body": String::from_utf8_lossy(&rec.body),
        "secret_access_key": expected.secret,
        "session_token": expected.token,
        "region": REGION,
        "service": "bedrock",
    });
    common::python_verdict("aws/sigv4_verify.py", &case)
}

fn respond(stream: &mut TcpStream, status: u16, content_type: &str, body: &[u8]) -> io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\nx-amzn-RequestId: {REQUEST_ID}\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)
}

/// Writes event-stream `messages` as one chunk each, a little apart, and
/// ends the body unless `cut` (then the connection closes mid-stream).
fn respond_event_stream(
    stream: &mut TcpStream,
    messages: &[Vec<u8>],
    cut: bool,
) -> io::Result<bool> {
    stream.write_all(
        format!("HTTP/1.1 200 OK\r\ncontent-type: application/vnd.amazon.eventstream\r\nx-amzn-RequestId: {REQUEST_ID}\r\ntransfer-encoding: chunked\r\n\r\n").as_bytes(),
    )?;
    for m in messages {
        stream.write_all(format!("{:x}\r\n", m.len()).as_bytes())?;
        stream.write_all(m)?;
        stream.write_all(b"\r\n")?;
        stream.flush()?;
        std::thread::sleep(Duration::from_millis(5));
    }
    if cut {
        return Ok(false);
    }
    stream.write_all(b"0\r\n\r\n")?;
    Ok(true)
}

fn message(event_type: &str, payload: Value) -> Vec<u8> {
    encode(&event(event_type, payload.to_string().as_bytes())).unwrap()
}

/// Standard base64 with padding, as Bedrock wraps InvokeModel's events.
fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Answers by operation, the model id naming the case.
fn answer(stream: &mut TcpStream, rec: &Recorded) -> io::Result<bool> {
    let path = rec.target.split('?').next().unwrap_or("");
    if path.contains("throttled") {
        let body = br#"{"message":"Too many requests, please wait before trying again."}"#;
        respond(stream, 429, "application/json", body)?;
        return Ok(true);
    }
    let cut = path.contains("cut");
    let tools = String::from_utf8_lossy(&rec.body).contains("\"toolConfig\"");
    if path.ends_with("/converse") && tools {
        let body = json!({
            "output": {"message": {"role": "assistant", "content": [
                {"text": "Checking."},
                {"toolUse": {"toolUseId": "tooluse_abc", "name": "get_weather", "input": {"city": "Paris"}}}
            ]}},
            "stopReason": "tool_use",
            "usage": {"inputTokens": 30, "outputTokens": 9, "totalTokens": 39}
        });
        respond(stream, 200, "application/json", body.to_string().as_bytes())?;
        return Ok(true);
    }
    if path.ends_with("/converse-stream") && tools {
        let messages = [
            message("messageStart", json!({"role": "assistant"})),
            message(
                "contentBlockStart",
                json!({"contentBlockIndex": 0, "start": {"toolUse": {"toolUseId": "tooluse_abc", "name": "get_weather"}}}),
            ),
            message(
                "contentBlockDelta",
                json!({"contentBlockIndex": 0, "delta": {"toolUse": {"input": "{\"city\":"}}}),
            ),
            message(
                "contentBlockDelta",
                json!({"contentBlockIndex": 0, "delta": {"toolUse": {"input": "\"Paris\"}"}}}),
            ),
            message("contentBlockStop", json!({"contentBlockIndex": 0})),
            message("messageStop", json!({"stopReason": "tool_use"})),
            message(
                "metadata",
                json!({"usage": {"inputTokens": 30, "outputTokens": 9, "totalTokens": 39}}),
            ),
        ];
        return respond_event_stream(stream, &messages, false);
    }
    if path.ends_with("/converse") {
        let body = json!({
            "output": {"message": {"role": "assistant", "content": [{"text": "Hello from Bedrock"}]}},
            "stopReason": "end_turn",
            "usage": {"inputTokens": 12, "outputTokens": 5, "totalTokens": 20, "cacheReadInputTokens": 3},
            "metrics": {"latencyMs": 42}
        });
        respond(stream, 200, "application/json", body.to_string().as_bytes())?;
        return Ok(true);
    }
    if path.ends_with("/converse-stream") {
        let mut messages = vec![
            message("messageStart", json!({"role": "assistant"})),
            message(
                "contentBlockDelta",
                json!({"contentBlockIndex": 0, "delta": {"text": "Hel"}}),
            ),
            message(
                "contentBlockDelta",
                json!({"contentBlockIndex": 0, "delta": {"text": "lo"}}),
            ),
        ];
        if !cut {
            messages.extend([
                message("contentBlockDelta", json!({"contentBlockIndex": 0, "delta": {"text": "!"}})),
                message("contentBlockStop", json!({"contentBlockIndex": 0})),
                message("messageStop", json!({"stopReason": "end_turn"})),
                message("metadata", json!({"usage": {"inputTokens": 9, "outputTokens": 3, "totalTokens": 12}, "metrics": {"latencyMs": 7}})),
            ]);
        }
        return respond_event_stream(stream, &messages, cut);
    }
    if path.ends_with("/invoke") {
        let body = json!({
            "id": "msg_bdrk_01", "type": "message", "role": "assistant", "model": "claude-3-haiku-20240307",
            "content": [{"type": "text", "text": "Hi from Claude on Bedrock"}],
            "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": 14, "output_tokens": 7}
        });
        respond(stream, 200, "application/json", body.to_string().as_bytes())?;
        return Ok(true);
    }
    if path.ends_with("/invoke-with-response-stream") {
        let events = [
            json!({"type": "message_start", "message": {"id": "msg_bdrk_02", "type": "message", "role": "assistant", "model": "claude-3-haiku-20240307", "content": [], "stop_reason": null, "usage": {"input_tokens": 14, "output_tokens": 1}}}),
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi "}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "there"}}),
            json!({"type": "content_block_stop", "index": 0}),
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": 6}}),
            json!({"type": "message_stop", "amazon-bedrock-invocationMetrics": {"inputTokenCount": 14, "outputTokenCount": 6}}),
        ];
        let messages: Vec<_> = events
            .iter()
            .map(|e| message("chunk", json!({"bytes": base64(e.to_string().as_bytes())})))
            .collect();
        return respond_event_stream(stream, &messages, false);
    }
    respond(
        stream,
        404,
        "application/json",
        br#"{"message":"Unknown operation"}"#,
    )?;
    Ok(true)
}

/// A gateway whose provider `bedrock` signs with `env`'s AWS settings,
/// its admin listener at the returned address.
fn gateway(mock: &MockBedrock, env: &[(&str, &str)], extra: &str) -> (Gateway, SocketAddr) {
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:1\"\npin_cores = false\n\n[admin]\nlisten = \"{admin}\"\n\n\
         [providers.bedrock]\nkind = \"bedrock\"\nbase_url = \"{}\"\nregion = \"{REGION}\"\n{extra}\n",
        mock.base_url()
    );
    let opts = GatewayOpts::config(common::Driver::IoUring, config);
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let gw = Gateway::spawn_at(&opts, addr, &[], env).expect("gateway starts");
    (gw, admin)
}

fn env_credentials() -> Vec<(&'static str, &'static str)> {
    vec![
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", SECRET_A),
        ("AWS_SESSION_TOKEN", TOKEN),
        ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials"),
        ("AWS_CONFIG_FILE", "/nonexistent/config"),
    ]
}

#[test]
fn openai_chat_through_converse_signed_translated_and_metered() {
    if !python_modules_available("bedrock_gateway", "botocore") {
        return;
    }
    let mock = MockBedrock::start(Expected {
        secret: SECRET_A.into(),
        token: Some(TOKEN.into()),
    });
    let (gw, admin) = gateway(&mock, &env_credentials(), "");
    let chat = |model: &str, stream: bool| {
        json!({
            "model": model,
            "stream": stream,
            "stream_options": {"include_usage": true},
            "max_tokens": 64,
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Say hello"}
            ]
        })
        .to_string()
    };

    let r = gw.post(
        "/v1/chat/completions",
        &chat("bedrock/amazon.nova-pro-v1:0", false),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "bedrock/amazon.nova-pro-v1:0");
    assert_eq!(v["id"], format!("chatcmpl-{REQUEST_ID}"));
    assert_eq!(v["choices"][0]["message"]["content"], "Hello from Bedrock");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["prompt_tokens"], 15);
    assert_eq!(v["usage"]["completion_tokens"], 5);
    let sent = mock.mock.last();
    assert_eq!(sent.method, "POST");
    assert_eq!(sent.target, "/model/amazon.nova-pro-v1%3A0/converse");
    let body: Value = serde_json::from_slice(&sent.body).unwrap();
    assert_eq!(body["system"], json!([{"text": "Be brief."}]));
    assert_eq!(
        body["messages"],
        json!([{"role": "user", "content": [{"text": "Say hello"}]}])
    );
    assert_eq!(body["inferenceConfig"]["maxTokens"], 64);
    assert!(
        body.get("model").is_none() && body.get("stream").is_none(),
        "{body}"
    );
    assert_eq!(sent.header("content-type"), Some("application/json"));

    let r = gw.post(
        "/v1/chat/completions",
        &chat("bedrock/amazon.nova-pro-v1:0", true),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let text = r.text();
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    let events = data_events(&text);
    let content: String = events
        .iter()
        .filter_map(|e| e["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "Hello!");
    assert_eq!(
        mock.mock.last().target,
        "/model/amazon.nova-pro-v1%3A0/converse-stream"
    );
    let usage = events
        .iter()
        .find(|e| e["usage"].is_object())
        .expect("usage chunk");
    assert_eq!(
        (
            usage["usage"]["prompt_tokens"].as_u64(),
            usage["usage"]["completion_tokens"].as_u64()
        ),
        (Some(9), Some(3))
    );

    // A stream Bedrock cuts ends with OpenAI's in-stream error.
    let r = gw.post(
        "/v1/chat/completions",
        &chat("bedrock/cut.model-v1:0", true),
    );
    let text = r.text();
    let last = data_events(&text).pop().unwrap();
    assert!(last["error"].is_object(), "{text}");
    assert!(!text.contains("[DONE]"), "{text}");

    mock.all_verified();
    // Metered from Bedrock's own counts: 15 + 9 in, 5 + 3 out, and the
    // cut stream's input estimate and relayed output on top.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let m = scrape(admin);
        let input = sample(
            &m,
            "shardgate_tokens_total",
            &["provider=\"bedrock\"", "direction=\"input\""],
        );
        let output = sample(
            &m,
            "shardgate_tokens_total",
            &["provider=\"bedrock\"", "direction=\"output\""],
        );
        if input >= 24.0 && output >= 8.0 {
            let read = sample(
                &m,
                "shardgate_cache_tokens_total",
                &["provider=\"bedrock\"", "kind=\"read\""],
            );
            assert_eq!(read, 3.0, "{m}");
            break;
        }
        assert!(Instant::now() < deadline, "tokens not metered: {m}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn anthropic_messages_through_invoke_and_converse() {
    if !python_modules_available("bedrock_gateway", "botocore") {
        return;
    }
    let mock = MockBedrock::start(Expected {
        secret: SECRET_A.into(),
        token: Some(TOKEN.into()),
    });
    let (gw, _) = gateway(&mock, &env_credentials(), "");
    let messages = |model: &str, stream: bool| {
        json!({
            "model": model,
            "max_tokens": 100,
            "stream": stream,
            "system": "Be brief.",
            "messages": [{"role": "user", "content": "Hello"}]
        })
        .to_string()
    };
    let claude = "bedrock/anthropic.claude-3-haiku-20240307-v1:0";

    // Anthropic's model: its own body through InvokeModel, its own answer.
    let r = gw.post("/v1/messages", &messages(claude, false));
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["type"], "message");
    assert_eq!(v["content"][0]["text"], "Hi from Claude on Bedrock");
    let sent = mock.mock.last();
    assert_eq!(
        sent.target,
        "/model/anthropic.claude-3-haiku-20240307-v1%3A0/invoke"
    );
    let body: Value = serde_json::from_slice(&sent.body).unwrap();
    assert_eq!(body["anthropic_version"], "bedrock-2023-05-31");
    assert_eq!(body["system"], "Be brief.");
    assert!(
        body.get("model").is_none() && body.get("stream").is_none(),
        "{body}"
    );

    let r = gw.post("/v1/messages", &messages(claude, true));
    assert_eq!(r.status, 200);
    let text = r.text();
    assert_eq!(
        mock.mock.last().target,
        "/model/anthropic.claude-3-haiku-20240307-v1%3A0/invoke-with-response-stream"
    );
    let kinds: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(
        kinds,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ],
        "{text}"
    );
    let said: String = data_events(&text)
        .iter()
        .filter_map(|e| e["delta"]["text"].as_str())
        .collect();
    assert_eq!(said, "Hi there");

    // Another model: through Converse, answered in Anthropic's shape.
    let nova = "bedrock/amazon.nova-lite-v1:0";
    let r = gw.post("/v1/messages", &messages(nova, false));
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["type"], "message");
    assert_eq!(v["model"], nova);
    assert_eq!(v["content"][0]["text"], "Hello from Bedrock");
    assert_eq!(v["usage"]["output_tokens"], 5);
    assert_eq!(
        mock.mock.last().target,
        "/model/amazon.nova-lite-v1%3A0/converse"
    );
    let r = gw.post("/v1/messages", &messages(nova, true));
    let text = r.text();
    let said: String = data_events(&text)
        .iter()
        .filter_map(|e| e["delta"]["text"].as_str())
        .collect();
    assert_eq!(said, "Hello!", "{text}");
    assert!(text.contains("event: message_stop"), "{text}");

    // Anthropic's cache marks become Converse's cache points, each right
    // after what it marked.
    let cached = json!({
        "model": nova,
        "max_tokens": 20,
        "system": [{"type": "text", "text": "A long shared preamble.", "cache_control": {"type": "ephemeral"}}],
        "tools": [{"name": "get_weather", "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "A long document.", "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "The question."}
        ]}]
    });
    let r = gw.post("/v1/messages", &cached.to_string());
    assert_eq!(r.status, 200, "{}", r.text());
    let sent: Value = serde_json::from_slice(&mock.mock.last().body).unwrap();
    let point = json!({"cachePoint": {"type": "default"}});
    assert_eq!(
        sent["system"],
        json!([{"text": "A long shared preamble."}, point])
    );
    assert_eq!(
        sent["messages"][0]["content"],
        json!([{"text": "A long document."}, point, {"text": "The question."}])
    );
    let tools = sent["toolConfig"]["tools"].as_array().unwrap();
    assert_eq!(tools[0]["toolSpec"]["name"], "get_weather");
    assert_eq!(tools[1], point);

    mock.all_verified();
}

#[test]
fn aws_errors_reach_each_client_in_its_dialect() {
    if !python_modules_available("bedrock_gateway", "botocore") {
        return;
    }
    let mock = MockBedrock::start(Expected {
        secret: SECRET_A.into(),
        token: Some(TOKEN.into()),
    });
    let (gw, _) = gateway(&mock, &env_credentials(), "");
    let r = gw.post(
        "/v1/chat/completions",
        r#"{"model":"bedrock/throttled.model-v1:0","messages":[{"role":"user","content":"x"}]}"#,
    );
    let e = r.assert_openai_error(429);
    assert_eq!(e["type"], "rate_limit_error");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .starts_with("Too many requests"),
        "{e}"
    );
    let r = gw.post(
        "/v1/messages",
        r#"{"model":"bedrock/anthropic.throttled-v1:0","max_tokens":5,"messages":[{"role":"user","content":"x"}]}"#,
    );
    assert_eq!(r.status, 429);
    let v = r.json();
    assert_eq!(
        (v["type"].as_str(), v["error"]["type"].as_str()),
        (Some("error"), Some("rate_limit_error"))
    );
    // Bedrock has no client dialect: nothing is passed through to it.
    let r = gw.post(
        "/v1/embeddings",
        r#"{"model":"bedrock/amazon.titan-embed-text-v2:0","input":"x"}"#,
    );
    assert_eq!(r.status, 400, "{}", r.text());
    mock.all_verified();

    // A gateway signing with another secret: the mock refuses it, as AWS
    // would, and the client hears it as a permission error.
    let wrong = MockBedrock::start(Expected {
        secret: SECRET_B.into(),
        token: Some(TOKEN.into()),
    });
    let (gw, _) = gateway(&wrong, &env_credentials(), "");
    let r = gw.post(
        "/v1/chat/completions",
        r#"{"model":"bedrock/amazon.nova-pro-v1:0","messages":[{"role":"user","content":"x"}]}"#,
    );
    let e = r.assert_openai_error(403);
    assert_eq!(e["type"], "permission_error");
    assert!(e["message"].as_str().unwrap().contains("signature"), "{e}");
    assert_eq!(wrong.verdicts.lock().unwrap()[0]["ok"], false);
}

#[test]
fn rotated_credentials_in_the_shared_file_are_picked_up_while_running() {
    if !python_modules_available("bedrock_gateway", "botocore") {
        return;
    }
    let dir = TempDir::new("bedrock-creds");
    let file = |secret: &str| {
        format!("[work]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {secret}\n")
    };
    let creds = dir.write("credentials", &file(SECRET_A));
    let mock = MockBedrock::start(Expected {
        secret: SECRET_A.into(),
        token: None,
    });
    let creds_path = creds.to_str().unwrap();
    let env = [
        ("AWS_PROFILE", "work"),
        ("AWS_SHARED_CREDENTIALS_FILE", creds_path),
        ("AWS_CONFIG_FILE", "/nonexistent/config"),
    ];
    let (gw, _) = gateway(&mock, &env, "credentials_refresh_s = 1");
    let ask = || {
        gw.post(
            "/v1/chat/completions",
            r#"{"model":"bedrock/amazon.nova-pro-v1:0","messages":[{"role":"user","content":"x"}]}"#,
        )
    };
    assert_eq!(ask().status, 200);
    // Rotate: the new secret is written (atomically, as tools do), and
    // the mock accepts only it from now on.
    let tmp = dir.write("credentials.new", &file(SECRET_B));
    std::fs::rename(&tmp, &creds).unwrap();
    mock.expected.lock().unwrap().secret = SECRET_B.into();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = ask();
        if r.status == 200 {
            break;
        }
        assert_eq!(r.status, 403, "{}", r.text());
        assert!(
            Instant::now() < deadline,
            "the rotated secret was never used"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let verdicts = mock.verdicts.lock().unwrap();
    assert_eq!(verdicts.first().unwrap()["ok"], true);
    assert_eq!(verdicts.last().unwrap()["ok"], true);
}

#[test]
fn a_bedrock_provider_without_credentials_or_region_is_refused_at_start() {
    let dir = TempDir::new("bedrock-config");
    let check = |body: &str, env: &[(&str, &str)]| {
        let path = dir.write(
            "c.toml",
            &format!("[providers.br]\nkind = \"bedrock\"\n{body}"),
        );
        let mut cmd = common::gateway_command();
        cmd.args(["--config", path.to_str().unwrap(), "--check-config"])
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_REGION")
            .env_remove("AWS_DEFAULT_REGION")
            .env_remove("AWS_PROFILE")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/c")
            .env("AWS_CONFIG_FILE", "/nonexistent/c");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, err) = check("", &[]);
    assert!(!ok && err.contains("providers.br.region"), "{err}");
    let (ok, err) = check("region = \"eu-west-3\"\n", &[]);
    assert!(!ok && err.contains("no credentials"), "{err}");
    let (ok, err) = check("region = \"eu-west-3.evil.com\"\n", &[]);
    assert!(!ok && err.contains("not an AWS region"), "{err}");
    // A region from the environment and a Bedrock API key are enough.
    let (ok, err) = check(
        "api_key_env = \"AWS_BEARER_TOKEN_BEDROCK\"\n",
        &[
            ("AWS_REGION", "us-west-2"),
            ("AWS_BEARER_TOKEN_BEDROCK", "bedrock-api-key-1"),
        ],
    );
    assert!(ok, "{err}");
}

/// The official OpenAI and Anthropic SDKs through a Bedrock provider:
/// text and tool calls, plain and streamed, and a throttled model raising
/// each SDK's rate-limit error.
#[test]
fn the_official_sdks_through_bedrock() {
    if !python_modules_available("bedrock_gateway", "botocore, openai, anthropic") {
        return;
    }
    let mock = MockBedrock::start(Expected {
        secret: SECRET_A.into(),
        token: Some(TOKEN.into()),
    });
    let (gw, _) = gateway(&mock, &env_credentials(), "");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/bedrock_sdk.py");
    let out = common::run_python(
        script,
        &[&format!("http://{}", gw.addr)],
        Duration::from_secs(60),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("ok"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    mock.all_verified();
}

/// The same through the official Node SDKs.
#[test]
fn the_official_node_sdks_through_bedrock() {
    if !python_modules_available("bedrock_gateway", "botocore")
        || !common::node_sdks_available("the_official_node_sdks_through_bedrock")
    {
        return;
    }
    let mock = MockBedrock::start(Expected {
        secret: SECRET_A.into(),
        token: Some(TOKEN.into()),
    });
    let (gw, _) = gateway(&mock, &env_credentials(), "");
    let out = common::run_node(
        "bedrock.mjs",
        &[&format!("http://{}", gw.addr)],
        Duration::from_secs(60),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("ok"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    mock.all_verified();
}
