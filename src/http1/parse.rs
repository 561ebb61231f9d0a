//! Request and response heads parsed into spans (offsets into the read
//! buffer, never copies). Syntax matches httparse; framing semantics live in
//! `framing.rs`.

/// A byte range `start..end` into the buffer the head was parsed from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    #[inline]
    pub fn get(self, buf: &[u8]) -> &[u8] {
        &buf[self.start as usize..self.end as usize]
    }
}

/// One header line: name and value (value without surrounding whitespace).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeaderSpan {
    pub name: Span,
    pub value: Span,
}

/// Limits on a head. Exceeding either is a 431.
#[derive(Clone, Copy, Debug)]
pub struct HeadLimits {
    pub max_head_bytes: usize,
    pub max_headers: usize,
}

impl Default for HeadLimits {
    fn default() -> Self {
        HeadLimits { max_head_bytes: 16 * 1024, max_headers: 100 }
    }
}

/// Why a head was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadError {
    /// Malformed syntax (400, close). The text names what was wrong.
    Invalid(&'static str),
    /// The head is longer than `max_head_bytes` (431).
    TooLarge,
    /// More than `max_headers` header lines (431).
    TooManyHeaders,
}

/// The outcome of a parse attempt that did not fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// The head is complete; its length is in `head_len`.
    Complete,
    /// More bytes are needed.
    Partial,
}

/// A parsed request head. `headers` is cleared and refilled by each parse;
/// its capacity is kept so steady-state parsing does not allocate.
#[derive(Debug, Default)]
pub struct RequestHead {
    pub method: Span,
    pub target: Span,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    pub headers: Vec<HeaderSpan>,
    /// Bytes from the start of the buffer to the end of the empty line.
    pub head_len: usize,
}

/// A parsed response head, same conventions as [`RequestHead`].
#[derive(Debug, Default)]
pub struct ResponseHead {
    pub minor_version: u8,
    pub status: u16,
    pub reason: Span,
    pub headers: Vec<HeaderSpan>,
    pub head_len: usize,
}
