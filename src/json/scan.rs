//! The top-level scan of a request body: validate the whole body, walk only
//! the members of the top-level object, and report where the fields the proxy
//! rewrites (`model`, `stream`, `stream_options`) and the closing `}` are.
//!
//! Invariants:
//! - A body is accepted only if it is UTF-8, valid JSON (see `walk`), an
//!   object at top level, nested at most
//!   [`MAX_NESTING`](super::MAX_NESTING) deep, and has no top-level key twice (keys compared
//!   after unescaping).
//! - Every span is a byte range into the scanned body; splicing a new JSON
//!   value over a value span yields valid JSON with only that value changed.
//! - No heap allocation unless a key or the model has escapes, there are
//!   more than [`INLINE_KEYS`] top-level keys, or the body is rejected.

use std::borrow::Cow;
use std::collections::HashSet;
use std::ops::Range;

use sonic_rs::parser::ParseStatus;

use super::error::{JsonError, JsonErrorKind};
use super::walk::{Member, MemberWalker};

/// Top-level keys checked for duplicates by linear search in a stack array;
/// past this many the check moves to a hash set, so a body with thousands of
/// keys costs O(n), not O(n²).
const INLINE_KEYS: usize = 32;

/// A top-level string field: where its value lies and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StringField<'a> {
    /// The value including its quotes, as a byte range of the body.
    pub span: Range<usize>,
    /// The unescaped value; borrowed from the body when it has no escapes.
    pub value: Cow<'a, str>,
}

/// Where a top-level member lies in the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldSpan {
    /// From the key's opening quote to the end of the value.
    pub member: Range<usize>,
    /// The value alone.
    pub value: Range<usize>,
}

/// What the proxy needs to know about a request body's top-level object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopLevel<'a> {
    /// `model`, which must be a string if present.
    pub model: Option<StringField<'a>>,
    /// `stream`; `null` reads as absent.
    pub stream: Option<bool>,
    /// `stream_options`, an object or `null` if present.
    pub stream_options: Option<FieldSpan>,
    /// Offset of the top-level object's closing `}`: a member can be added
    /// by writing `,"key":value` (or without the comma when `member_count`
    /// is 0) just before it.
    pub object_end: usize,
    /// Number of top-level members.
    pub member_count: usize,
    /// The most output the request allows: the largest whole number among
    /// `max_tokens`, `max_completion_tokens` and `max_output_tokens` (the
    /// dialects' names for it); a value of another type is left for the
    /// upstream to refuse.
    pub max_output_tokens: Option<u64>,
}

impl TopLevel<'_> {
    /// The same result owning its model name, so it can outlive the body
    /// (a scan done on another thread): its spans stay valid against the
    /// identical bytes. Allocates only for the model name.
    pub fn into_owned(self) -> TopLevel<'static> {
        TopLevel {
            model: self.model.map(|m| StringField {
                span: m.span,
                value: Cow::Owned(m.value.into_owned()),
            }),
            stream: self.stream,
            stream_options: self.stream_options,
            object_end: self.object_end,
            member_count: self.member_count,
            max_output_tokens: self.max_output_tokens,
        }
    }

    /// A copy that borrows this one's model name instead of owning it.
    pub fn reborrow(&self) -> TopLevel<'_> {
        TopLevel {
            model: self.model.as_ref().map(|m| StringField {
                span: m.span.clone(),
                value: Cow::Borrowed(m.value.as_ref()),
            }),
            stream: self.stream,
            stream_options: self.stream_options.clone(),
            object_end: self.object_end,
            member_count: self.member_count,
            max_output_tokens: self.max_output_tokens,
        }
    }
}

/// Validates `body` and locates its top-level fields. See the module doc for
/// what is accepted.
pub fn scan_top_level(body: &[u8]) -> Result<TopLevel<'_>, JsonError> {
    let text = std::str::from_utf8(body)
        .map_err(|e| JsonError::new(JsonErrorKind::InvalidUtf8, e.valid_up_to()))?;

    let mut walker = MemberWalker::new(text)?;
    let mut top = TopLevel {
        model: None,
        stream: None,
        stream_options: None,
        object_end: 0,
        member_count: 0,
        max_output_tokens: None,
    };
    let mut keys = KeySet::new();
    while let Some(member) = walker.next_member()? {
        top.member_count += 1;
        let key = unescape_string(member.key_raw, member.key_status, member.key_start)?;
        let known = key_name(&key);
        if let Err(key) = keys.insert(key) {
            return Err(JsonError::new(
                JsonErrorKind::DuplicateKey {
                    key: key.into_owned(),
                },
                member.key_start,
            ));
        }
        match known {
            Some(KnownKey::Model) => top.model = Some(model_field(&member)?),
            Some(KnownKey::Stream) => top.stream = stream_flag(&member)?,
            Some(KnownKey::StreamOptions) => top.stream_options = stream_options_span(&member)?,
            Some(KnownKey::MaxTokens) => {
                if let Ok(n) = member.value_raw.parse::<u64>() {
                    top.max_output_tokens = Some(top.max_output_tokens.map_or(n, |m| m.max(n)));
                }
            }
            None => {}
        }
    }
    top.object_end = walker.finish()?;
    Ok(top)
}

#[derive(Clone, Copy)]
enum KnownKey {
    Model,
    Stream,
    StreamOptions,
    MaxTokens,
}

fn key_name(key: &str) -> Option<KnownKey> {
    match key {
        "model" => Some(KnownKey::Model),
        "stream" => Some(KnownKey::Stream),
        "stream_options" => Some(KnownKey::StreamOptions),
        "max_tokens" | "max_completion_tokens" | "max_output_tokens" => Some(KnownKey::MaxTokens),
        _ => None,
    }
}

fn model_field<'a>(member: &Member<'a>) -> Result<StringField<'a>, JsonError> {
    if !member.value_raw.starts_with('"') {
        return Err(wrong_type("model", "a string", member));
    }
    Ok(StringField {
        span: member.value_span(),
        value: unescape_string(member.value_raw, member.value_status, member.value_start)?,
    })
}

fn stream_flag(member: &Member<'_>) -> Result<Option<bool>, JsonError> {
    match member.value_raw {
        "true" => Ok(Some(true)),
        "false" => Ok(Some(false)),
        "null" => Ok(None),
        _ => Err(wrong_type("stream", "a boolean", member)),
    }
}

fn stream_options_span(member: &Member<'_>) -> Result<Option<FieldSpan>, JsonError> {
    if !(member.value_raw.starts_with('{') || member.value_raw == "null") {
        return Err(wrong_type("stream_options", "an object", member));
    }
    Ok(Some(FieldSpan {
        member: member.key_start..member.value_span().end,
        value: member.value_span(),
    }))
}

fn wrong_type(param: &'static str, expected: &'static str, member: &Member<'_>) -> JsonError {
    JsonError::new(
        JsonErrorKind::WrongType { param, expected },
        member.value_start,
    )
}

/// The decoded contents of a raw JSON string literal (quotes included).
fn unescape_string(raw: &str, status: ParseStatus, at: usize) -> Result<Cow<'_, str>, JsonError> {
    match status {
        ParseStatus::None => Ok(Cow::Borrowed(&raw[1..raw.len() - 1])),
        // Escapes are rare in keys and model names; decoding may allocate.
        ParseStatus::HasEscaped => sonic_rs::from_str::<String>(raw)
            .map(Cow::Owned)
            .map_err(|e| JsonError::syntax(e.to_string().lines().next().unwrap_or(""), at)),
    }
}

/// The set of top-level keys seen so far.
struct KeySet<'a> {
    inline: [&'a str; INLINE_KEYS],
    inline_len: usize,
    /// Escaped keys decode to owned strings; kept here so the inline array
    /// holds only borrowed ones. Also where all keys go past `INLINE_KEYS`.
    spilled: Option<HashSet<Cow<'a, str>>>,
}

impl<'a> KeySet<'a> {
    fn new() -> Self {
        Self {
            inline: [""; INLINE_KEYS],
            inline_len: 0,
            spilled: None,
        }
    }

    /// Adds `key`, or hands it back if it was already present.
    fn insert(&mut self, key: Cow<'a, str>) -> Result<(), Cow<'a, str>> {
        if self.inline[..self.inline_len].contains(&key.as_ref()) {
            return Err(key);
        }
        match key {
            Cow::Borrowed(borrowed) if self.inline_len < INLINE_KEYS && self.spilled.is_none() => {
                self.inline[self.inline_len] = borrowed;
                self.inline_len += 1;
            }
            key => {
                let spilled = self.spilled.get_or_insert_with(HashSet::new);
                if spilled.contains(&key) {
                    return Err(key);
                }
                spilled.insert(key);
            }
        }
        Ok(())
    }
}
