//! Translation between the OpenAI chat-completions dialect and the Anthropic
//! messages dialect, in both directions: request bodies, non-streaming
//! response bodies, error bodies and SSE streams.
//!
//! Everything here is sans-IO: bytes in, bytes out. This is the one place in
//! the gateway that builds a new body instead of patching the client's one
//! (see DESIGN.md), so it parses into a `sonic_rs::Value` tree and writes a
//! fresh document.
//!
//! Invariants:
//! - Requests take the upstream model name, responses and streams the model
//!   name the client asked for: the client never sees the upstream's name.
//! - Streams are translated event by event; a translator holds only the state
//!   the target protocol needs (open block, tool-call indices, usage), never
//!   the stream itself.
//! - Fields with no counterpart in the target dialect are dropped rather than
//!   guessed; inputs the target cannot express faithfully (server tools,
//!   `n > 1`, audio) are refused with [`TranslateError::Unsupported`].

mod error;
mod request_to_anthropic;
mod request_to_openai;
mod response;
mod stream_to_anthropic;
mod stream_to_openai;
mod wire;

use std::fmt;

use sonic_rs::{JsonContainerTrait, JsonValueTrait, Value};

pub use error::{
    anthropic_error, anthropic_error_to_openai, openai_error, openai_error_to_anthropic,
    TranslatedError, ANTHROPIC_STREAM_CUT, OPENAI_STREAM_CUT,
};
pub use request_to_anthropic::{openai_request_to_anthropic, openai_stream_wants_usage};
pub use request_to_openai::anthropic_request_to_openai;
pub use response::{anthropic_response_to_openai, openai_response_to_anthropic};
pub use stream_to_anthropic::OpenAiToAnthropicStream;
pub use stream_to_openai::AnthropicToOpenAiStream;

/// Why a body could not be translated. All of these are the client's (or the
/// upstream's) fault, never the gateway's: the gateway answers 400 for a
/// request and 502 for a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TranslateError {
    /// The body is not JSON.
    Json(String),
    /// The body is JSON but a field is missing or has the wrong shape.
    Invalid(String),
    /// Valid in the source dialect, but the target dialect cannot express it.
    Unsupported(String),
}

impl fmt::Display for TranslateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TranslateError::Json(why) => write!(f, "body is not valid JSON: {why}"),
            TranslateError::Invalid(why) => write!(f, "invalid body: {why}"),
            TranslateError::Unsupported(why) => write!(f, "cannot be translated: {why}"),
        }
    }
}

impl std::error::Error for TranslateError {}

/// Tokens an upstream reported, in the gateway's terms: every prompt token
/// (cached or not) counts as input.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

fn parse_object(body: &[u8]) -> Result<Value, TranslateError> {
    let value: Value =
        sonic_rs::from_slice(body).map_err(|e| TranslateError::Json(e.to_string()))?;
    if !value.is_object() {
        return Err(TranslateError::Invalid(
            "top level must be a JSON object".into(),
        ));
    }
    Ok(value)
}

fn serialize<T: serde::Serialize + ?Sized>(value: &T) -> Vec<u8> {
    // Every body written here has string keys and finite numbers, which always serialize.
    sonic_rs::to_vec(value).expect("translated bodies always serialize")
}

/// The id with its dialect prefix swapped, so an upstream id stays traceable in
/// the client's logs: `chatcmpl-abc` ⇄ `msg_abc`.
fn swap_id_prefix(id: &str, from: &str, to: &str) -> String {
    format!("{to}{}", id.strip_prefix(from).unwrap_or(id))
}

/// Both dialects put text either in a plain string or in a list of typed parts;
/// this joins the text parts and ignores the rest.
fn joined_text(content: &Value, separator: &str) -> String {
    if let Some(text) = content.as_str() {
        return text.to_owned();
    }
    let mut joined = String::new();
    for part in content.as_array().map(|a| a.as_slice()).unwrap_or_default() {
        if let Some(text) = part["text"].as_str() {
            if !joined.is_empty() {
                joined.push_str(separator);
            }
            joined.push_str(text);
        }
    }
    joined
}

fn unix_seconds_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// OpenAI carries tool input as a JSON string, which models sometimes leave
/// empty for a tool without parameters; Anthropic needs an object.
fn tool_input(arguments: &str) -> Result<Value, TranslateError> {
    if arguments.trim().is_empty() {
        return Ok(Value::new_object());
    }
    sonic_rs::from_str(arguments)
        .map_err(|e| TranslateError::Invalid(format!("tool call arguments are not JSON: {e}")))
}
