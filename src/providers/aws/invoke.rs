//! Anthropic models through Bedrock's InvokeModel, sans-IO: the request
//! body Bedrock wants, and the unwrapping of InvokeModelWithResponseStream's
//! event-stream messages back into the Anthropic SSE events they carry.
//!
//! InvokeModel takes Anthropic's own messages body with two differences:
//! the model is in the path (`/model/{id}/invoke`, or
//! `/invoke-with-response-stream`), so `model` and `stream` are dropped, and
//! `anthropic_version` is required (`bedrock-2023-05-31`). The stream is
//! event-stream `chunk` events whose JSON payload is `{"bytes": base64}`,
//! the base64 holding one Anthropic stream event's JSON (`message_start`,
//! `content_block_delta`, …), so the existing Anthropic relay and
//! translators can take them as they are.
//!
//! Invariants: every other member of the client's body is copied byte for
//! byte; a chunk that is not valid base64 or whose content is not a JSON
//! object is an error, never passed on.
//!
//! [`InvokeStream`] relays such a stream to an Anthropic client.

use crate::api::eventstream::{Kind, Message};
use crate::api::sse::SseEvent;
use crate::api::translate::{anthropic_error, StreamEnd};
use crate::api::usage::{AnthropicStreamUsage, Usage};
use crate::json::walk::MemberWalker;
use crate::json::{push_json_string, JsonError};

/// The `anthropic_version` Bedrock requires of Anthropic bodies.
pub const BEDROCK_ANTHROPIC_VERSION: &str = "bedrock-2023-05-31";

/// `body` (an Anthropic messages request, one JSON object) as InvokeModel
/// wants it: without `model` and `stream`, with `anthropic_version` added
/// unless the client set one.
pub fn anthropic_body_for_invoke(body: &str) -> Result<Vec<u8>, JsonError> {
    anthropic_body_for_platform(body, BEDROCK_ANTHROPIC_VERSION, &["model", "stream"])
}

/// `body` with the members named in `dropped` left out and
/// `anthropic_version: version` added unless the client set one: what the
/// clouds that host Anthropic's models (Bedrock, Vertex AI) want of its
/// messages body, each with its own version and the members its path says.
pub(crate) fn anthropic_body_for_platform(
    body: &str,
    version: &str,
    dropped: &[&str],
) -> Result<Vec<u8>, JsonError> {
    let mut walker = MemberWalker::new(body)?;
    let mut out = Vec::with_capacity(body.len() + 48);
    out.push(b'{');
    let mut has_version = false;
    let mut first = true;
    while let Some(member) = walker.next_member()? {
        let key = crate::json::string_contents(member.key_raw);
        match key.as_deref() {
            Some(name) if dropped.contains(&name) => continue,
            Some("anthropic_version") => has_version = true,
            _ => {}
        }
        if !first {
            out.push(b',');
        }
        first = false;
        out.extend_from_slice(member.key_raw.as_bytes());
        out.push(b':');
        out.extend_from_slice(member.value_raw.as_bytes());
    }
    walker.finish()?;
    if !has_version {
        if !first {
            out.push(b',');
        }
        out.extend_from_slice(b"\"anthropic_version\":");
        push_json_string(&mut out, version);
    }
    out.push(b'}');
    Ok(out)
}

/// What one InvokeModelWithResponseStream message carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InvokeEvent {
    /// One Anthropic stream event's JSON, and its `type`.
    Anthropic { event_type: String, json: Vec<u8> },
    /// A Bedrock exception (`throttlingException`, `modelStreamErrorException`,
    /// …) with its message: the stream ends with it.
    Exception {
        exception_type: String,
        message: String,
    },
    /// A message with nothing for the client (an unknown event type).
    Skip,
}

/// Why a stream message could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvokeError {
    /// The chunk's payload is not `{"bytes": "<base64>"}`.
    NotAChunk,
    /// The base64 does not decode.
    Base64,
    /// What it decodes to is not a JSON object with a string `type`.
    NotAnEvent,
}

impl std::fmt::Display for InvokeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            InvokeError::NotAChunk => "Bedrock stream chunk without a `bytes` string",
            InvokeError::Base64 => "Bedrock stream chunk whose `bytes` is not base64",
            InvokeError::NotAnEvent => "Bedrock stream chunk that is not an Anthropic event",
        })
    }
}

impl std::error::Error for InvokeError {}

/// Reads one decoded event-stream message of an InvokeModelWithResponseStream
/// response.
pub fn invoke_stream_event(message: &Message) -> Result<InvokeEvent, InvokeError> {
    use sonic_rs::JsonValueTrait;
    match message.kind() {
        Kind::Event("chunk") => {
            let payload: sonic_rs::Value =
                sonic_rs::from_slice(&message.payload).map_err(|_| InvokeError::NotAChunk)?;
            let b64 = payload["bytes"].as_str().ok_or(InvokeError::NotAChunk)?;
            let json = base64_decode(b64.as_bytes()).ok_or(InvokeError::Base64)?;
            let event: sonic_rs::Value =
                sonic_rs::from_slice(&json).map_err(|_| InvokeError::NotAnEvent)?;
            let event_type = event["type"].as_str().ok_or(InvokeError::NotAnEvent)?;
            Ok(InvokeEvent::Anthropic {
                event_type: event_type.to_owned(),
                json,
            })
        }
        Kind::Exception(exception_type) => {
            let payload: Option<sonic_rs::Value> = sonic_rs::from_slice(&message.payload).ok();
            let text = payload.as_ref().and_then(|p| p["message"].as_str());
            Ok(InvokeEvent::Exception {
                exception_type: exception_type.to_owned(),
                message: text.unwrap_or(exception_type).to_owned(),
            })
        }
        Kind::Error { code, message } => Ok(InvokeEvent::Exception {
            exception_type: code.to_owned(),
            message: message.to_owned(),
        }),
        _ => Ok(InvokeEvent::Skip),
    }
}

/// An InvokeModelWithResponseStream response relayed to an Anthropic client:
/// each chunk's event written as the SSE event it was, its usage read on
/// the way. A Bedrock exception ends the stream with Anthropic's `error`
/// event, its type from the exception's (throttling is a rate limit, a
/// validation failure the request's fault, anything else the server's).
#[derive(Debug, Default)]
pub struct InvokeStream {
    usage: AnthropicStreamUsage,
    stopped: bool,
    ended: bool,
}

impl InvokeStream {
    /// Feeds one decoded message; appends whole SSE events.
    pub fn on_message(&mut self, message: &Message, out: &mut Vec<u8>) -> Result<(), InvokeError> {
        if self.ended {
            return Ok(());
        }
        match invoke_stream_event(message)? {
            InvokeEvent::Anthropic { event_type, json } => {
                self.on_event(event_type.as_bytes(), &json, out);
            }
            InvokeEvent::Exception {
                exception_type,
                message,
            } => {
                let status = match exception_type.as_str() {
                    "throttlingException" => 429,
                    "validationException" => 400,
                    _ => 500,
                };
                self.end_error(status, &message, out);
            }
            InvokeEvent::Skip => {}
        }
        Ok(())
    }

    /// Feeds one Anthropic event (an SSE event of Anthropic's stream, or
    /// one a chunk carried); appends it.
    pub fn on_event(&mut self, event_type: &[u8], data: &[u8], out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        let event = SseEvent {
            event: event_type,
            data,
        };
        self.usage.observe(event);
        match event_type {
            b"message_delta" => self.stopped = true,
            b"message_stop" => self.ended = true,
            b"error" => self.ended = true,
            _ => {}
        }
        write_sse(out, event);
    }

    /// The usage the stream reported so far.
    pub fn usage(&self) -> Usage {
        self.usage.usage().unwrap_or_default()
    }

    fn end_error(&mut self, status: u16, message: &str, out: &mut Vec<u8>) {
        self.ended = true;
        let data = anthropic_error(status, message);
        write_sse(
            out,
            SseEvent {
                event: b"error",
                data: &data,
            },
        );
    }
}

/// A stream whose `message_delta` (the stop reason) arrived is closed with
/// the `message_stop` it lost; one cut before it ends with an `error`.
impl StreamEnd for InvokeStream {
    fn ended(&self) -> bool {
        self.ended
    }
    fn stopped(&self) -> bool {
        self.stopped
    }
    fn end_whole(&mut self, out: &mut Vec<u8>) {
        self.ended = true;
        out.extend_from_slice(b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
    }
    fn end_cut(&mut self, why: &str, out: &mut Vec<u8>) {
        self.end_error(500, why, out);
    }
}

/// One event as SSE; its JSON has no newline that matters (a raw newline
/// inside JSON is whitespace), so each line gets its own `data:`.
fn write_sse(out: &mut Vec<u8>, event: SseEvent<'_>) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(event.event);
    out.push(b'\n');
    for line in event.data.split(|&b| b == b'\n') {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    out.push(b'\n');
}

/// Standard base64 with padding (what Bedrock sends); `None` for anything
/// else, padding in the middle and stray bits included.
pub fn base64_decode(input: &[u8]) -> Option<Vec<u8>> {
    fn sextet(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    if input.len() % 4 != 0 {
        return None;
    }
    let mut out = Vec::with_capacity(input.len() / 4 * 3);
    let quads = input.chunks_exact(4);
    let last = quads.len().saturating_sub(1);
    for (i, quad) in quads.enumerate() {
        let pad = quad.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && i != last) {
            return None;
        }
        let mut n = 0u32;
        for &c in &quad[..4 - pad] {
            n = n << 6 | sextet(c)?;
        }
        n <<= 6 * pad as u32;
        let bytes = n.to_be_bytes();
        // The bits the padding stands for must be zero (canonical encoding).
        if bytes[4 - pad..].iter().any(|&b| b != 0) {
            return None;
        }
        out.extend_from_slice(&bytes[1..4 - pad]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::eventstream::{event, Header, HeaderValue};

    fn b64(data: &[u8]) -> String {
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in data.chunks(3) {
            let n =
                chunk.iter().fold(0u32, |n, &b| n << 8 | u32::from(b)) << (8 * (3 - chunk.len()));
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    #[test]
    fn body_loses_model_and_stream_and_gains_the_version() {
        let body = r#"{"model":"claude-3-5-sonnet","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hi \"there\""}],"system":"s"}"#;
        let out = anthropic_body_for_invoke(body).unwrap();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"max_tokens":64,"messages":[{"role":"user","content":"hi \"there\""}],"system":"s","anthropic_version":"bedrock-2023-05-31"}"#
        );
        // A version the client set is kept, and an escaped key still counts.
        let body = r#"{"mod\u0065l":"x","anthropic_version":"bedrock-2023-05-31","messages":[]}"#;
        let out = anthropic_body_for_invoke(body).unwrap();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"anthropic_version":"bedrock-2023-05-31","messages":[]}"#
        );
        assert_eq!(
            anthropic_body_for_invoke(r#"{"model":"x"}"#).unwrap(),
            br#"{"anthropic_version":"bedrock-2023-05-31"}"#
        );
        assert!(anthropic_body_for_invoke("[1]").is_err());
        assert!(anthropic_body_for_invoke(r#"{"a":1} x"#).is_err());
    }

    #[test]
    fn chunks_unwrap_to_anthropic_events() {
        let inner = br#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}"#;
        let payload = format!(r#"{{"bytes":"{}","p":"abcd"}}"#, b64(inner));
        let got = invoke_stream_event(&event("chunk", payload.as_bytes())).unwrap();
        assert_eq!(
            got,
            InvokeEvent::Anthropic {
                event_type: "content_block_delta".into(),
                json: inner.to_vec()
            }
        );
        let bad = |payload: &str| invoke_stream_event(&event("chunk", payload.as_bytes()));
        assert_eq!(bad("{}"), Err(InvokeError::NotAChunk));
        assert_eq!(bad("not json"), Err(InvokeError::NotAChunk));
        assert_eq!(bad(r#"{"bytes":"!!!!"}"#), Err(InvokeError::Base64));
        let not_event = format!(r#"{{"bytes":"{}"}}"#, b64(b"[1,2]"));
        assert_eq!(bad(&not_event), Err(InvokeError::NotAnEvent));
        assert_eq!(
            invoke_stream_event(&event("somethingNew", b"{}")),
            Ok(InvokeEvent::Skip)
        );
    }

    #[test]
    fn exceptions_carry_their_type_and_message() {
        let s = |n: &str, v: &str| Header {
            name: n.into(),
            value: HeaderValue::String(v.into()),
        };
        let m = Message {
            headers: vec![
                s(":message-type", "exception"),
                s(":exception-type", "throttlingException"),
            ],
            payload: br#"{"message":"Too many requests"}"#.to_vec(),
        };
        assert_eq!(
            invoke_stream_event(&m),
            Ok(InvokeEvent::Exception {
                exception_type: "throttlingException".into(),
                message: "Too many requests".into()
            })
        );
    }

    #[test]
    fn base64_round_trips_and_refuses_the_non_canonical() {
        for len in 0..40 {
            let data: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            assert_eq!(base64_decode(b64(&data).as_bytes()), Some(data), "{len}");
        }
        assert_eq!(base64_decode(b"aGk="), Some(b"hi".to_vec()));
        for bad in [
            &b"aGk"[..],
            b"aG=k",
            b"a===",
            b"aGl=",
            b"aGk=aGk=",
            b"aGk\n",
            b"a-_=",
        ] {
            assert_eq!(base64_decode(bad), None, "{:?}", std::str::from_utf8(bad));
        }
    }
}
