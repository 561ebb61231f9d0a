//! The event-stream codec against an independent implementation: what
//! `eventstream::encode` writes, botocore's `EventStreamBuffer` (the parser
//! the AWS SDK for Python reads Bedrock streams with) reads back header for
//! header, and both refuse the same corrupted frames. Skips with a SKIP
//! line when botocore is not installed.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::python_modules_available;
use serde_json::{json, Value};
use shardgate::api::eventstream::{encode, event, Decoder, Header, HeaderValue, Message};

/// Reads an event stream on stdin; prints each message's headers (bytes as
/// hex) and payload (hex), or `{"error": ...}` where botocore refuses it.
const BOTOCORE_DECODE: &str = r#"
import json, sys, uuid
from botocore.eventstream import EventStreamBuffer
def show(v):
    if isinstance(v, (bytes, bytearray)):
        return {"hex": v.hex()}
    if isinstance(v, uuid.UUID):
        return {"hex": v.bytes.hex()}
    return v
buf = EventStreamBuffer()
buf.add_data(sys.stdin.buffer.read())
out = []
try:
    for m in buf:
        out.append({"headers": {k: show(v) for k, v in m.headers.items()}, "payload": m.payload.hex()})
except Exception as e:
    out.append({"error": type(e).__name__})
print(json.dumps(out))
"#;

fn botocore(stream: &[u8]) -> Value {
    let mut child = Command::new("python3")
        .args(["-c", BOTOCORE_DECODE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child.stdin.take().unwrap().write_all(stream).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "botocore decoder failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("botocore prints JSON")
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The JSON the botocore script prints for `m`.
fn as_botocore_shows(m: &Message) -> Value {
    let mut headers = serde_json::Map::new();
    for h in &m.headers {
        let v = match &h.value {
            HeaderValue::Bool(b) => json!(b),
            HeaderValue::Byte(v) => json!(v),
            HeaderValue::Short(v) => json!(v),
            HeaderValue::Int(v) => json!(v),
            HeaderValue::Long(v) | HeaderValue::Timestamp(v) => json!(v),
            HeaderValue::Bytes(b) => json!({ "hex": hex(b) }),
            HeaderValue::Uuid(b) => json!({ "hex": hex(b) }),
            HeaderValue::String(s) => json!(s),
        };
        headers.insert(h.name.clone(), v);
    }
    json!({ "headers": headers, "payload": hex(&m.payload) })
}

fn messages() -> Vec<Message> {
    let h = |name: &str, value: HeaderValue| Header {
        name: name.into(),
        value,
    };
    vec![
        event(
            "contentBlockDelta",
            br#"{"contentBlockIndex":0,"delta":{"text":"Bonjour \u00e9"}}"#,
        ),
        event(
            "metadata",
            br#"{"usage":{"inputTokens":3,"outputTokens":4,"totalTokens":7}}"#,
        ),
        Message::default(),
        Message {
            headers: vec![
                h("t", HeaderValue::Bool(true)),
                h("f", HeaderValue::Bool(false)),
                h("byte", HeaderValue::Byte(-7)),
                h("short", HeaderValue::Short(-300)),
                h("int", HeaderValue::Int(-70_000)),
                h("long", HeaderValue::Long(-5_000_000_000)),
                h("bytes", HeaderValue::Bytes(vec![0, 1, 0xFE, 0xFF])),
                h("string", HeaderValue::String("ünïcode ✓".into())),
                h("ts", HeaderValue::Timestamp(1_700_000_000_123)),
                h("uuid", HeaderValue::Uuid(*b"0123456789abcdef")),
            ],
            payload: (0..=255).collect(),
        },
    ]
}

#[test]
fn botocore_reads_what_we_encode() {
    if !python_modules_available("aws_eventstream_botocore", "botocore") {
        return;
    }
    let messages = messages();
    let stream: Vec<u8> = messages.iter().flat_map(|m| encode(m).unwrap()).collect();
    let expected: Vec<Value> = messages.iter().map(as_botocore_shows).collect();
    assert_eq!(botocore(&stream), Value::Array(expected));
    // And we read it back the same, one byte at a time.
    let mut decoder = Decoder::default();
    let mut ours = Vec::new();
    for b in stream.chunks(1) {
        decoder.feed(b, |m| ours.push(m)).unwrap();
    }
    assert_eq!(ours, messages);
}

#[test]
fn both_refuse_the_same_corruptions() {
    if !python_modules_available("aws_eventstream_botocore", "botocore") {
        return;
    }
    let good = encode(&messages()[0]).unwrap();
    // A bit flipped in the prelude CRC, in a header, in the payload and in
    // the message CRC.
    for at in [9, 20, good.len() - 10, good.len() - 1] {
        let mut bad = good.clone();
        bad[at] ^= 0x10;
        let theirs = botocore(&bad);
        assert!(
            theirs[0]["error"].is_string(),
            "botocore took byte {at} flipped: {theirs}"
        );
        let mut decoder = Decoder::default();
        assert!(
            decoder.feed(&bad, |_| {}).is_err(),
            "we took byte {at} flipped"
        );
    }
}
