//! The span record a shard fills at the end of a request, borrowed from
//! what the request already holds (its model names, its provider's name),
//! for `otlp` to encode: ids, start and end in Unix nanoseconds, kind and
//! status ([`Span`]); its attributes and events ([`Attr`], [`Event`]) are
//! handed to `otlp::SpanWriter` one by one and encoded as they come.
//!
//! Invariant: a record owns nothing and allocates nothing, and nothing is
//! gathered before it is encoded: a span costs the shard no allocation and
//! no copy but its bytes in the batch.

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

/// An event on a span: a decision at a moment (a retry, a fail-over, a
/// breaker's change), with at most one attribute.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Event<'a> {
    pub time_unix_nanos: u64,
    pub name: &'static str,
    pub attr: Option<Attr<'a>>,
}

/// One finished span's own fields (its attributes and events go through
/// `otlp::SpanWriter`).
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
    pub status: StatusCode,
    /// The status's message (empty for none): the error's kind.
    pub status_message: &'a str,
}

/// A minimal server span, for the encoder's and the exporter's tests.
#[cfg(test)]
pub(super) fn sample() -> Span<'static> {
    Span {
        trace_id: TraceId([1; 16]),
        span_id: SpanId([2; 8]),
        parent: None,
        flags: 1,
        parent_remote: false,
        trace_state: "",
        name: ("chat", "m"),
        kind: SpanKind::Server,
        start_unix_nanos: 1,
        end_unix_nanos: 2,
        status: StatusCode::Unset,
        status_message: "",
    }
}
