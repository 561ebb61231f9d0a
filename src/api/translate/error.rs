//! Error bodies: an upstream's error in one dialect re-dressed for a client
//! speaking the other, and errors the gateway makes itself.
//!
//! OpenAI: `{"error":{"message","type","param","code"}}`.
//! Anthropic: `{"type":"error","error":{"type","message"}}`.
//! The official SDKs pick their exception class from the HTTP status, so the
//! status is the primary signal and the error `type` is derived from it; the
//! one status that changes is Anthropic's 529 (overloaded), which is not a
//! status OpenAI clients know, and becomes 503.
//!
//! Translating an error never fails: an upstream error body that is not JSON
//! (a proxy's HTML page, say) still yields a well-formed error whose message
//! carries the start of that body.

use sonic_rs::{JsonValueTrait, Value};

use super::serialize;
use super::wire::{AnthropicError, ErrorDetail, OpenAiError};

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

/// The same for an Anthropic-dialect stream: an `error` event.
pub const ANTHROPIC_STREAM_CUT: &[u8] = b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"the upstream cut the stream before the response was complete\"}}\n\n";

/// An OpenAI-dialect upstream error, for an Anthropic client.
pub fn openai_error_to_anthropic(status: u16, body: &[u8]) -> TranslatedError {
    let message = upstream_message(body, |error| {
        // Some OpenAI-compatible servers send `{"error": "text"}`, FastAPI
        // ones `{"detail": "text"}`.
        error["error"]["message"]
            .as_str()
            .or_else(|| error["error"].as_str())
            .or_else(|| error["message"].as_str())
            .or_else(|| error["detail"].as_str())
            .map(str::to_owned)
    });
    TranslatedError {
        status,
        body: anthropic_error(status, &message.unwrap_or_else(|| status_text(status))),
    }
}

/// An Anthropic-dialect upstream error, for an OpenAI client.
pub fn anthropic_error_to_openai(status: u16, body: &[u8]) -> TranslatedError {
    let mut error_type = None;
    let message = upstream_message(body, |error| {
        error_type = error["error"]["type"].as_str().map(openai_error_type);
        error["error"]["message"].as_str().map(str::to_owned)
    });
    let client_status = if status == STATUS_OVERLOADED {
        503
    } else {
        status
    };
    let message = message.unwrap_or_else(|| status_text(status));
    let error_type = error_type.unwrap_or_else(|| openai_error_type(anthropic_error_type(status)));
    TranslatedError {
        status: client_status,
        body: openai_error_body(error_type, &message),
    }
}

/// A gateway-made error in Anthropic's shape, its type derived from `status`.
pub fn anthropic_error(status: u16, message: &str) -> Vec<u8> {
    serialize(&AnthropicError {
        kind: "error",
        error: ErrorDetail {
            kind: anthropic_error_type(status),
            message,
        },
    })
}

/// A gateway-made error in OpenAI's shape, its type derived from `status`.
pub fn openai_error(status: u16, message: &str) -> Vec<u8> {
    openai_error_body(openai_error_type(anthropic_error_type(status)), message)
}

fn openai_error_body(error_type: &str, message: &str) -> Vec<u8> {
    serialize(&OpenAiError::new(error_type, message))
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
/// else the start of the raw body, else `None` for an empty body.
fn upstream_message(body: &[u8], extract: impl FnOnce(&Value) -> Option<String>) -> Option<String> {
    if let Ok(parsed) = sonic_rs::from_slice::<Value>(body) {
        if let Some(message) = extract(&parsed) {
            return Some(message);
        }
    }
    let raw = String::from_utf8_lossy(body);
    let raw = raw.trim();
    if raw.is_empty() {
        return None;
    }
    let mut end = raw.len().min(MAX_RAW_MESSAGE_BYTES);
    while !raw.is_char_boundary(end) {
        end -= 1;
    }
    Some(raw[..end].to_owned())
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

    /// The payload of the single `data:` line of an event.
    fn data(event: &[u8]) -> Value {
        let text = std::str::from_utf8(event).unwrap();
        assert!(text.ends_with("\n\n"), "{text:?}");
        let line = text.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
        sonic_rs::from_str(line).unwrap()
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
