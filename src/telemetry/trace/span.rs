//! The span record a shard fills at the end of a request, borrowed from
//! what the request already holds (its model names, its provider's name),
//! for `otlp` to encode: ids, start and end in Unix nanoseconds, kind,
//! status, a few typed attributes and events.
//!
//! Invariant: a record owns nothing and allocates nothing; its attributes
//! live in a fixed array ([`Attrs`]), so building and encoding a span costs
//! no allocation on the shard.

/// A W3C / OTLP trace id: 16 bytes, never all zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TraceId(pub [u8; 16]);

/// A W3C / OTLP span id: 8 bytes, never all zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SpanId(pub [u8; 8]);

impl TraceId {
    pub fn is_valid(&self) -> bool {
        self.0 != [0; 16]
    }
}

impl SpanId {
    pub fn is_valid(&self) -> bool {
        self.0 != [0; 8]
    }
}

/// OTLP's `Span.SpanKind` (trace.proto), the two a gateway makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpanKind {
    /// The client's request, as the gateway served it.
    Server = 2,
    /// One upstream attempt.
    Client = 3,
}

/// OTLP's `Status.StatusCode`: unset (the default, a success) or error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusCode {
    Unset = 0,
    Error = 2,
}

/// An attribute's value: the `AnyValue` kinds a gateway sends.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value<'a> {
    Str(&'a str),
    Int(i64),
    Double(f64),
    Bool(bool),
}

/// One attribute: keys are the semantic conventions' names, static.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Attr<'a> {
    pub key: &'static str,
    pub value: Value<'a>,
}

/// At most this many attributes on one span (the server span uses ~16).
pub const MAX_ATTRS: usize = 24;

/// A span's attributes in a fixed array: pushing past [`MAX_ATTRS`] drops
/// the attribute and counts it (OTLP's `dropped_attributes_count`).
#[derive(Clone, Copy, Debug)]
pub struct Attrs<'a> {
    items: [Attr<'a>; MAX_ATTRS],
    len: usize,
    pub dropped: u32,
}

impl Default for Attrs<'_> {
    fn default() -> Self {
        Attrs {
            items: [Attr {
                key: "",
                value: Value::Bool(false),
            }; MAX_ATTRS],
            len: 0,
            dropped: 0,
        }
    }
}

impl<'a> Attrs<'a> {
    pub fn push(&mut self, key: &'static str, value: Value<'a>) {
        match self.items.get_mut(self.len) {
            Some(slot) => {
                *slot = Attr { key, value };
                self.len += 1;
            }
            None => self.dropped += 1,
        }
    }

    pub fn str(&mut self, key: &'static str, value: &'a str) {
        self.push(key, Value::Str(value));
    }

    pub fn int(&mut self, key: &'static str, value: i64) {
        self.push(key, Value::Int(value));
    }

    pub fn as_slice(&self) -> &[Attr<'a>] {
        &self.items[..self.len]
    }
}

/// An event on a span: a decision at a moment (a retry, a fail-over, a
/// breaker's change), with at most one attribute.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Event<'a> {
    pub time_unix_nanos: u64,
    pub name: &'static str,
    pub attr: Option<Attr<'a>>,
}

/// One finished span, ready to encode.
#[derive(Clone, Copy, Debug)]
pub struct Span<'a> {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    /// None for a root span.
    pub parent: Option<SpanId>,
    /// The W3C trace flags (bit 0: sampled).
    pub flags: u8,
    /// Whether `parent` is remote (the client's): OTLP's flags bits 8–9.
    pub parent_remote: bool,
    /// The W3C `tracestate`, as received (empty for none).
    pub trace_state: &'a str,
    /// The name as two parts joined by a space when both are non-empty
    /// (`chat` and the model: the GenAI conventions' `{operation} {model}`),
    /// so it needs no buffer of its own.
    pub name: (&'a str, &'a str),
    pub kind: SpanKind,
    pub start_unix_nanos: u64,
    pub end_unix_nanos: u64,
    pub attrs: &'a Attrs<'a>,
    pub events: &'a [Event<'a>],
    pub status: StatusCode,
    /// The status's message (empty for none): the error's kind.
    pub status_message: &'a str,
}
