//! Error bodies: an upstream's error in one dialect re-dressed for a client
//! speaking the other, and errors the gateway makes itself.
//!
//! OpenAI: `{"error":{"message","type","param","code"}}`.
//! Anthropic: `{"type":"error","error":{"type","message"}}`.
//! Google (Gemini API, Vertex AI): `{"error":{"code","message","status"}}`,
//! `status` a gRPC code name (`RESOURCE_EXHAUSTED`), kept as OpenAI's
//! `code`.
//! AWS and Cohere: `{"message"}` (Cohere adds an `id`), its kind in the status
//! alone; it goes to either dialect with its status kept.
//! The official SDKs pick their exception class from the HTTP status, so the
//! status is the primary signal and the error `type` is derived from it; the
//! one status that changes is Anthropic's 529 (overloaded), which is not a
//! status OpenAI clients know, and becomes 503.
//!
//! Translating an error never fails: an upstream error body that is not JSON
//! (a proxy's HTML page, say) still yields a well-formed error whose message
//! carries the start of that body.

use std::borrow::Cow;

use super::raw::{document, Raw};
use super::write::Obj;
use crate::json::push_json_string;

/// Keeps a non-JSON upstream body from flooding the client's error message.
const MAX_RAW_MESSAGE_BYTES: usize = 512;

/// Anthropic's status for "overloaded", which only Anthropic uses.
const STATUS_OVERLOADED: u16 = 529;

/// An error ready to send: the status for the client and the body in its dialect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranslatedError {
    pub status: u16,
    pub body: Vec<u8>,
}

/// The event that ends an OpenAI-dialect stream the upstream cut: the
/// official SDK raises a `data:` payload with an `error` member as an API
/// error, so a client never takes a truncated answer for a whole one.
pub const OPENAI_STREAM_CUT: &[u8] = b"data: {\"error\":{\"message\":\"the upstream cut the stream before the response was complete\",\"type\":\"server_error\",\"param\":null,\"code\":\"stream_truncated\"}}\n\n";

/// A stream cut because its key's budget ran out while it ran (OpenAI).
pub const OPENAI_BUDGET_CUT: &[u8] = b"data: {\"error\":{\"message\":\"the API key's budget ran out during this stream\",\"type\":\"insufficient_quota\",\"param\":null,\"code\":\"budget_exceeded\"}}\n\n";
/// A stream cut because its key's tokens-per-minute ran out (OpenAI).
pub const OPENAI_TOKENS_CUT: &[u8] = b"data: {\"error\":{\"message\":\"the API key's tokens-per-minute limit was reached during this stream\",\"type\":\"rate_limit_error\",\"param\":null,\"code\":\"rate_limit_exceeded\"}}\n\n";
/// The same two for Anthropic streams (the code starts the message).
pub const ANTHROPIC_BUDGET_CUT: &[u8] = b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\",\"message\":\"budget_exceeded: the API key's budget ran out during this stream\"}}\n\n";
pub const ANTHROPIC_TOKENS_CUT: &[u8] = b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\",\"message\":\"rate_limit_exceeded: the API key's tokens-per-minute limit was reached during this stream\"}}\n\n";

/// The same for an Anthropic-dialect stream: an `error` event.
pub const ANTHROPIC_STREAM_CUT: &[u8] = b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"the upstream cut the stream before the response was complete\"}}\n\n";

/// An error message to write: an upstream's JSON string, copied as it came
/// (neither decoded nor escaped again, whatever its size), or text.
enum Message<'a> {
    Json(Raw<'a>),
    Text(Cow<'a, str>),
}

impl Message<'_> {
    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Message::Json(raw) => out.extend_from_slice(raw.text().as_bytes()),
            Message::Text(text) => push_json_string(out, text),
        }
    }
}

/// An OpenAI-dialect upstream error, for an Anthropic client.
pub fn openai_error_to_anthropic(status: u16, body: &[u8]) -> TranslatedError {
    let message = upstream_message(body, |error| {
        // Some OpenAI-compatible servers send `{"error": "text"}`, FastAPI
        // ones `{"detail": "text"}`.
        let [inner, message, detail] = error.pick(["error", "message", "detail"]);
        [inner.get("message"), inner, message, detail]
            .into_iter()
            .find(|m| m.is_str())
    });
    let message = message.unwrap_or_else(|| Message::Text(status_text(status).into()));
    TranslatedError {
        status,
        body: anthropic_error_body(anthropic_error_type(status), &message),
    }
}

/// An Anthropic-dialect upstream error, for an OpenAI client.
pub fn anthropic_error_to_openai(status: u16, body: &[u8]) -> TranslatedError {
    let mut error_type = None;
    let message = upstream_message(body, |error| {
        let [kind, message] = error.get("error").pick(["type", "message"]);
        error_type = kind.as_str().map(|kind| openai_error_type(&kind));
        message.is_str().then_some(message)
    });
    let client_status = if status == STATUS_OVERLOADED {
        503
    } else {
        status
    };
    let message = message.unwrap_or_else(|| Message::Text(status_text(status).into()));
    let error_type = error_type.unwrap_or_else(|| openai_error_type(anthropic_error_type(status)));
    TranslatedError {
        status: client_status,
        body: openai_error_body(error_type, &message),
    }
}

/// An error whose body is `{"message": …}` (`Message` in some AWS
/// services), its kind in the status alone (AWS's `x-amzn-ErrorType` header
/// says no more; Cohere adds an `id`), for an OpenAI client.
pub fn message_error_to_openai(status: u16, body: &[u8]) -> TranslatedError {
    let error_type = openai_error_type(anthropic_error_type(status));
    TranslatedError {
        status,
        body: openai_error_body(error_type, &body_message(status, body)),
    }
}

/// The same for an Anthropic client.
pub fn message_error_to_anthropic(status: u16, body: &[u8]) -> TranslatedError {
    TranslatedError {
        status,
        body: anthropic_error_body(anthropic_error_type(status), &body_message(status, body)),
    }
}

fn body_message(status: u16, body: &[u8]) -> Message<'_> {
    let message = upstream_message(body, |error| {
        let [message, capital] = error.pick(["message", "Message"]);
        [message, capital].into_iter().find(|m| m.is_str())
    });
    message.unwrap_or_else(|| Message::Text(status_text(status).into()))
}

/// A Google (Gemini API or Vertex AI) upstream error, for an OpenAI
/// client: the HTTP status kept, the type derived from it, Google's
/// `status` as the `code`.
pub fn google_error_to_openai(status: u16, body: &[u8]) -> TranslatedError {
    let mut code = None;
    let message = upstream_message(body, |error| {
        let [message, google_status] = error.get("error").pick(["message", "status"]);
        code = google_status.is_str().then_some(google_status);
        message.is_str().then_some(message)
    });
    let message = message.unwrap_or_else(|| Message::Text(status_text(status).into()));
    let error_type = openai_error_type(anthropic_error_type(status));
    TranslatedError {
        status,
        body: openai_error_body_with_code(error_type, &message, code),
    }
}

/// A gateway-made error in Anthropic's shape, its type derived from `status`.
pub fn anthropic_error(status: u16, message: &str) -> Vec<u8> {
    anthropic_error_body(anthropic_error_type(status), &Message::Text(message.into()))
}

/// A gateway-made error in OpenAI's shape, its type derived from `status`.
pub fn openai_error(status: u16, message: &str) -> Vec<u8> {
    openai_error_body(
        openai_error_type(anthropic_error_type(status)),
        &Message::Text(message.into()),
    )
}

/// `{"type":"error","error":{"type","message"}}`.
fn anthropic_error_body(error_type: &str, message: &Message<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    let mut top = Obj::open(&mut out);
    top.json("type", "\"error\"");
    let mut error = Obj::open(top.key("error"));
    error.str("type", error_type);
    message.write(error.key("message"));
    error.close();
    top.close();
    out
}

/// `{"error":{"message","type","param","code"}}`.
fn openai_error_body(error_type: &str, message: &Message<'_>) -> Vec<u8> {
    openai_error_body_with_code(error_type, message, None)
}

/// The same with `code` (a JSON string) when there is one.
fn openai_error_body_with_code(
    error_type: &str,
    message: &Message<'_>,
    code: Option<Raw<'_>>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    let mut top = Obj::open(&mut out);
    let mut error = Obj::open(top.key("error"));
    message.write(error.key("message"));
    error.str("type", error_type);
    error.json("param", "null");
    error.json("code", code.map_or("null", Raw::text));
    error.close();
    top.close();
    out
}

/// Anthropic's error types correspond one to one with its statuses.
fn anthropic_error_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | STATUS_OVERLOADED => "overloaded_error",
        500..=599 => "api_error",
        _ => "invalid_request_error",
    }
}

fn openai_error_type(anthropic_type: &str) -> &'static str {
    match anthropic_type {
        "authentication_error" => "authentication_error",
        "permission_error" => "permission_error",
        "not_found_error" => "not_found_error",
        "rate_limit_error" => "rate_limit_error",
        "api_error" | "overloaded_error" => "server_error",
        _ => "invalid_request_error",
    }
}

/// The upstream's own message when its body is JSON in the expected shape,
/// else the start of the raw body, else `None` for an empty body. The body
/// is read in place (an upstream's error body can be as large as any).
fn upstream_message<'a>(
    body: &'a [u8],
    extract: impl FnOnce(Raw<'a>) -> Option<Raw<'a>>,
) -> Option<Message<'a>> {
    if let Ok(parsed) = document(body) {
        if let Some(message) = extract(parsed) {
            return Some(Message::Json(message));
        }
    }
    // Only the start is shown: convert no more than it (an invalid byte
    // may become a 3-byte replacement character, hence the margin).
    let body = body.trim_ascii_start();
    let head = &body[..body.len().min(2 * MAX_RAW_MESSAGE_BYTES)];
    let raw = String::from_utf8_lossy(head);
    let raw = if head.len() == body.len() {
        raw.trim()
    } else {
        raw.trim_start()
    };
    if raw.is_empty() {
        return None;
    }
    let mut end = raw.len().min(MAX_RAW_MESSAGE_BYTES);
    while !raw.is_char_boundary(end) {
        end -= 1;
    }
    Some(Message::Text(raw[..end].to_owned().into()))
}

fn status_text(status: u16) -> String {
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|code| code.canonical_reason())
        .unwrap_or("upstream error");
    format!("upstream returned {status} {reason}")
}

#[cfg(test)]
mod tests {
    use super::*;

    use sonic_rs::{JsonValueTrait, Value};

    /// The payload of the single `data:` line of an event.
    fn data(event: &[u8]) -> Value {
        let text = std::str::from_utf8(event).unwrap();
        assert!(text.ends_with("\n\n"), "{text:?}");
        let line = text.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
        sonic_rs::from_str(line).unwrap()
    }

    #[test]
    fn google_errors_keep_their_status_and_code() {
        let body = br#"{"error":{"code":429,"message":"Resource has been exhausted (e.g. check quota).","status":"RESOURCE_EXHAUSTED","details":[]}}"#;
        let got = google_error_to_openai(429, body);
        assert_eq!(got.status, 429);
        assert_eq!(
            std::str::from_utf8(&got.body).unwrap(),
            r#"{"error":{"message":"Resource has been exhausted (e.g. check quota).","type":"rate_limit_error","param":null,"code":"RESOURCE_EXHAUSTED"}}"#
        );
        let got = google_error_to_openai(
            400,
            br#"{"error":{"code":400,"message":"bad \"x\"","status":"INVALID_ARGUMENT"}}"#,
        );
        let value: Value = sonic_rs::from_slice(&got.body).unwrap();
        assert_eq!(value["error"]["message"].as_str(), Some("bad \"x\""));
        assert_eq!(
            value["error"]["type"].as_str(),
            Some("invalid_request_error")
        );
        // Not Google's shape (an HTML page, a stream's JSON array): the start
        // of the body, and no code.
        for body in [&b"<html>502</html>"[..], br#"[{"error":{"code":500}}]"#] {
            let got = google_error_to_openai(502, body);
            let value: Value = sonic_rs::from_slice(&got.body).unwrap();
            assert_eq!(value["error"]["type"].as_str(), Some("server_error"));
            assert!(value["error"]["code"].is_null());
        }
        let value: Value = sonic_rs::from_slice(&google_error_to_openai(503, b"").body).unwrap();
        assert_eq!(
            value["error"]["message"].as_str(),
            Some("upstream returned 503 Service Unavailable")
        );
    }

    /// Cohere's and AWS's `{"message"}` bodies, in both dialects.
    #[test]
    fn message_errors_keep_their_status_and_message() {
        let body =
            br#"{"id":"2d8b1c4e-0f3a-4c1e-9a57-5b1f7c0e9d21","message":"invalid api token"}"#;
        let openai = message_error_to_openai(401, body);
        assert_eq!(openai.status, 401);
        let parsed: Value = sonic_rs::from_slice(&openai.body).unwrap();
        assert_eq!(
            parsed["error"]["message"].as_str(),
            Some("invalid api token")
        );
        assert_eq!(
            parsed["error"]["type"].as_str(),
            Some("authentication_error")
        );
        let anthropic = message_error_to_anthropic(429, br#"{"message":"trial key limit"}"#);
        assert_eq!(anthropic.status, 429);
        let parsed: Value = sonic_rs::from_slice(&anthropic.body).unwrap();
        assert_eq!(parsed["error"]["type"].as_str(), Some("rate_limit_error"));
        assert_eq!(parsed["error"]["message"].as_str(), Some("trial key limit"));
        let page = message_error_to_openai(502, b"<html>bad gateway</html>");
        let parsed: Value = sonic_rs::from_slice(&page.body).unwrap();
        assert_eq!(parsed["error"]["type"].as_str(), Some("server_error"));
        assert_eq!(
            parsed["error"]["message"].as_str(),
            Some("<html>bad gateway</html>")
        );
        let empty = message_error_to_openai(500, b"");
        let parsed: Value = sonic_rs::from_slice(&empty.body).unwrap();
        assert!(parsed["error"]["message"].as_str().unwrap().contains("500"));
        let aws = message_error_to_openai(
            403,
            br#"{"Message":"The security token included in the request is invalid."}"#,
        );
        let parsed: Value = sonic_rs::from_slice(&aws.body).unwrap();
        assert_eq!(parsed["error"]["type"].as_str(), Some("permission_error"));
        assert!(parsed["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("The security token"));
    }

    #[test]
    fn stream_cut_events_are_errors_in_their_dialect() {
        let openai = data(OPENAI_STREAM_CUT);
        assert_eq!(openai["error"]["type"].as_str(), Some("server_error"));
        assert!(openai["error"]["message"].as_str().unwrap().contains("cut"));
        assert!(ANTHROPIC_STREAM_CUT.starts_with(b"event: error\n"));
        let anthropic = data(ANTHROPIC_STREAM_CUT);
        assert_eq!(anthropic["type"].as_str(), Some("error"));
        assert_eq!(anthropic["error"]["type"].as_str(), Some("api_error"));
    }
}
