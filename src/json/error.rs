//! The one error type of the JSON scan: what went wrong, where (byte offset
//! into the body), and how to say it to a client in an OpenAI-style 400.
//!
//! Errors are the cold path: allocating here (the detail text, the duplicate
//! key's name) is fine; building them never touches the common path.

use std::fmt;

/// Keys echoed back in messages are cut to this many characters, so a
/// hostile body cannot make the error response arbitrarily large.
const MAX_ECHOED_KEY_CHARS: usize = 64;

/// Why a request body was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum JsonErrorKind {
    /// Not JSON: a syntax error, bad escape, bad number, trailing garbage.
    Syntax { detail: String },
    /// The bytes are not UTF-8.
    InvalidUtf8,
    /// Valid JSON, but the top-level value is not an object.
    NotAnObject,
    /// Arrays/objects nested deeper than `limit`.
    TooDeep { limit: usize },
    /// The same top-level key twice (compared after unescaping).
    DuplicateKey { key: String },
    /// A known top-level field has the wrong JSON type.
    WrongType {
        param: &'static str,
        expected: &'static str,
    },
}

/// A rejected body: the kind of failure and the byte offset where it was seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError {
    kind: JsonErrorKind,
    offset: usize,
}

impl JsonError {
    pub(crate) fn new(kind: JsonErrorKind, offset: usize) -> Self {
        Self { kind, offset }
    }

    pub(crate) fn syntax(detail: impl Into<String>, offset: usize) -> Self {
        Self::new(
            JsonErrorKind::Syntax {
                detail: detail.into(),
            },
            offset,
        )
    }

    pub(crate) fn from_sonic(err: &sonic_rs::Error, fallback_offset: usize) -> Self {
        // sonic's Display adds a multi-line excerpt of the body; the first
        // line ("Invalid number at line 1 column 8") is what a client needs.
        let text = err.to_string();
        let detail = text.lines().next().unwrap_or("invalid JSON").to_owned();
        let offset = if err.is_syntax() {
            err.offset()
        } else {
            fallback_offset
        };
        Self::syntax(detail, offset)
    }

    pub fn kind(&self) -> &JsonErrorKind {
        &self.kind
    }

    /// Byte offset in the body where the problem was detected.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// The request parameter the error is about, for the `param` field of an
    /// OpenAI-style error object.
    pub fn param(&self) -> Option<&str> {
        match &self.kind {
            JsonErrorKind::DuplicateKey { key } => Some(key),
            JsonErrorKind::WrongType { param, .. } => Some(param),
            _ => None,
        }
    }

    /// A client-facing message for the `message` field of a 400 response.
    pub fn message(&self) -> String {
        const CANNOT_PARSE: &str = "We could not parse the JSON body of your request";
        match &self.kind {
            JsonErrorKind::Syntax { detail } => format!(
                "{CANNOT_PARSE}: {detail}. The API expects a JSON object as the request body."
            ),
            JsonErrorKind::InvalidUtf8 => format!(
                "{CANNOT_PARSE}: it is not valid UTF-8 (at byte {}).",
                self.offset
            ),
            JsonErrorKind::NotAnObject => {
                format!("{CANNOT_PARSE}: the top-level value must be a JSON object.")
            }
            JsonErrorKind::TooDeep { limit } => {
                format!("{CANNOT_PARSE}: arrays and objects are nested deeper than {limit} levels.")
            }
            JsonErrorKind::DuplicateKey { key } => {
                let shown: String = key.chars().take(MAX_ECHOED_KEY_CHARS).collect();
                let ellipsis = if shown.len() < key.len() { "..." } else { "" };
                format!("{CANNOT_PARSE}: duplicate key '{shown}{ellipsis}'.")
            }
            JsonErrorKind::WrongType { param, expected } => {
                format!("Invalid type for '{param}': expected {expected}.")
            }
        }
    }
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for JsonError {}
