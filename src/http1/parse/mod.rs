//! Request and response heads parsed into spans (offsets into the read
//! buffer, never copies). Syntax matches httparse 1.10 with its default
//! configuration (RFC 9112 §2–§5 as httparse reads them); framing semantics
//! live in `framing.rs`.
//!
//! There is one parser, [`HeadScanner`], a resumable state machine: it keeps
//! the step it is in, where the current element (method, target, name,
//! value…) began and how far it has validated, so bytes arriving one at a
//! time are not re-parsed. `parse_request` / `parse_response` are the
//! same machine run from a fresh state, so both agree by construction.
//!
//! Most heads arrive whole, so a start line or field line already complete
//! in the buffer is parsed by a straight-line function (`whole_*_line`)
//! that keeps no state; the step machine takes over at the first line that
//! is not whole and valid (leading empty lines, the empty line that ends
//! the head, a line cut short, an error, the header limit) and reads it from
//! its start, so it alone decides every edge. The tests compare the two on
//! random heads fed in random pieces.
//!
//! Invariants: spans always lie inside `head_len` (or inside the bytes seen so
//! far while partial); `headers` only ever grows by `push` into its kept
//! capacity; limits are checked against the head's bytes, not the buffer's,
//! so a pipelined body after a complete head never trips `max_head_bytes`.

//!
//! Files: this one holds the shared types and the one-shot entry points;
//! `scanner.rs` the resumable step machine; `line.rs` the whole-line fast
//! paths and the small checks both use.

mod line;
mod scanner;

pub use scanner::HeadScanner;

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

    #[inline]
    fn new(start: usize, end: usize) -> Span {
        // The window parsed is clamped to u32::MAX bytes, so these never truncate.
        Span {
            start: start as u32,
            end: end as u32,
        }
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
        HeadLimits {
            max_head_bytes: 16 * 1024,
            max_headers: 100,
        }
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

impl RequestHead {
    /// The value of the first header named `name` (ASCII case-insensitive).
    pub fn header<'b>(&self, buf: &'b [u8], name: &[u8]) -> Option<&'b [u8]> {
        find_header(&self.headers, buf, name)
    }
}

impl ResponseHead {
    /// The value of the first header named `name` (ASCII case-insensitive).
    pub fn header<'b>(&self, buf: &'b [u8], name: &[u8]) -> Option<&'b [u8]> {
        find_header(&self.headers, buf, name)
    }

    /// Whether the body is an event stream (`content-type:
    /// text/event-stream`, parameters allowed).
    pub fn is_event_stream(&self, buf: &[u8]) -> bool {
        self.content_type_is(buf, b"text/event-stream")
    }

    /// Whether the content type starts with `prefix` (ASCII
    /// case-insensitive): a media type, or a type's `audio/`.
    pub fn content_type_is(&self, buf: &[u8], prefix: &[u8]) -> bool {
        self.header(buf, b"content-type").is_some_and(|v| {
            v.len() >= prefix.len() && v[..prefix.len()].eq_ignore_ascii_case(prefix)
        })
    }
}

fn find_header<'b>(headers: &[HeaderSpan], buf: &'b [u8], name: &[u8]) -> Option<&'b [u8]> {
    headers
        .iter()
        .find(|h| h.name.get(buf).eq_ignore_ascii_case(name))
        .map(|h| h.value.get(buf))
}

/// Parses a request head from the start of `buf` in one go.
pub fn parse_request(
    buf: &[u8],
    limits: &HeadLimits,
    head: &mut RequestHead,
) -> Result<Parsed, HeadError> {
    HeadScanner::default().request(buf, limits, head)
}

/// Parses a response head from the start of `buf` in one go.
pub fn parse_response(
    buf: &[u8],
    limits: &HeadLimits,
    head: &mut ResponseHead,
) -> Result<Parsed, HeadError> {
    HeadScanner::default().response(buf, limits, head)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn one_of(options: &[&'static [u8]]) -> impl Strategy<Value = &'static [u8]> {
        prop::sample::select(options.to_vec())
    }

    /// Runs of mostly ordinary bytes with, now and then, one the block tests
    /// single out, so names and values cross 8- and 16-byte blocks with odd
    /// bytes at every offset.
    fn run(
        common: &'static [&'static [u8]],
        odd: &'static [&'static [u8]],
    ) -> BoxedStrategy<Vec<u8>> {
        prop::collection::vec(prop_oneof![12 => one_of(common), 1 => one_of(odd)], 0..40)
            .prop_map(|pieces| pieces.concat())
            .boxed()
    }

    /// Request and status lines, valid and near misses (fields may cut them).
    fn start_line() -> impl Strategy<Value = Vec<u8>> {
        let request = (
            one_of(&[b"", b"", b"\r\n", b"\n"]),
            one_of(&[b"GET", b"POST", b"M-SEARCH", b"X_Y!", b"", b"G(T", b"\xc3"]),
            one_of(&[b" ", b" ", b"  ", b"\t"]),
            one_of(&[
                b"/",
                b"/v1/chat/completions",
                b"*",
                b"",
                b"/\x7f",
                b"/\xc3\xa9",
                b"/\xe9",
                b"/a\x01",
            ]),
            one_of(&[b" ", b" ", b"  "]),
            one_of(&[
                b"HTTP/1.1",
                b"HTTP/1.0",
                b"HTTP/1.2",
                b"HTTP/2.0",
                b"HTTP/1.",
                b"HTTP/1.1 ",
            ]),
        )
            .prop_map(|(lead, m, s1, t, s2, v)| [lead, m, s1, t, s2, v].concat());
        let status = (
            one_of(&[b"", b"", b"\r\n"]),
            one_of(&[b"HTTP/1.1", b"HTTP/1.0", b"HTTP/1.2", b"HTTP/1.1x"]),
            one_of(&[b" ", b" ", b"  ", b""]),
            one_of(&[b"200", b"101", b"99", b"2000", b"2x0"]),
            one_of(&[
                b" OK",
                b" ",
                b"",
                b" \xe9t\xe9",
                b" a\tb",
                b" a\x7f",
                b"x",
                b" Not Found Here At All",
            ]),
        )
            .prop_map(|(lead, v, sp, code, reason)| [lead, v, sp, code, reason].concat());
        (
            prop_oneof![request, status],
            one_of(&[b"\r\n", b"\r\n", b"\n", b"\r", b"\r\r\n", b""]),
        )
            .prop_map(|(line, eol)| [&line, eol].concat())
    }

    fn head() -> impl Strategy<Value = Vec<u8>> {
        let name = run(
            &[b"a", b"Z", b"-", b"9", b"Content-Length", b"X-Stainless-"],
            &[
                b"_", b"!", b"~", b"|", b" ", b"\t", b"\x7f", b"\xe9", b"(", b":", b"\r\n",
            ],
        );
        let value = run(
            &[b"a", b" ", b"/", b"application/json", b"0123456789"],
            &[
                b"\t", b"\x7f", b"\x80", b"\xff", b"\x01", b"\r", b"\n", b"\r\n", b":",
            ],
        );
        let field = (
            name,
            one_of(&[b":", b": ", b": ", b":\t ", b" :", b""]),
            value,
            one_of(&[b"", b" ", b" \t"]),
            one_of(&[b"\r\n", b"\r\n", b"\r\n", b"\n", b"\r", b"\r\r\n"]),
        )
            .prop_map(|(n, c, v, ows, eol)| [&n, c, &v, ows, eol].concat());
        (
            start_line(),
            prop::collection::vec(field, 0..12),
            one_of(&[b"\r\n", b"\n", b"", b"\r"]),
            prop::collection::vec(any::<u8>(), 0..24),
        )
            .prop_map(|(start, fields, end, body)| [&start, &fields.concat(), end, &body].concat())
    }

    /// Feeds `buf` in growing prefixes (then whole), as a connection reads.
    fn prefixes(buf: &[u8], cuts: &[usize]) -> Vec<usize> {
        let mut ends: Vec<usize> = cuts.iter().map(|c| c % (buf.len() + 1)).collect();
        ends.sort_unstable();
        ends.push(buf.len());
        ends
    }

    type RequestView = (
        Result<Parsed, HeadError>,
        Span,
        Span,
        u8,
        Vec<HeaderSpan>,
        usize,
    );
    type ResponseView = (
        Result<Parsed, HeadError>,
        u8,
        u16,
        Span,
        Vec<HeaderSpan>,
        usize,
    );

    fn requests<const WHOLE_LINES: bool>(
        buf: &[u8],
        ends: &[usize],
        limits: &HeadLimits,
    ) -> Vec<RequestView> {
        let mut scanner = HeadScanner::default();
        let mut head = RequestHead::default();
        ends.iter()
            .map(|&end| {
                let result = scanner.request_head::<WHOLE_LINES>(&buf[..end], limits, &mut head);
                let h = &head;
                (
                    result,
                    h.method,
                    h.target,
                    h.minor_version,
                    h.headers.clone(),
                    h.head_len,
                )
            })
            .collect()
    }

    fn responses<const WHOLE_LINES: bool>(
        buf: &[u8],
        ends: &[usize],
        limits: &HeadLimits,
    ) -> Vec<ResponseView> {
        let mut scanner = HeadScanner::default();
        let mut head = ResponseHead::default();
        ends.iter()
            .map(|&end| {
                let result = scanner.response_head::<WHOLE_LINES>(&buf[..end], limits, &mut head);
                let h = &head;
                (
                    result,
                    h.minor_version,
                    h.status,
                    h.reason,
                    h.headers.clone(),
                    h.head_len,
                )
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

        /// The fast path for whole lines changes nothing the step machine
        /// alone would answer, after every read: verdict, error, spans,
        /// headers so far, limits.
        #[test]
        fn whole_lines_agree_with_the_step_machine(
            buf in head(),
            cuts in prop::collection::vec(any::<usize>(), 0..6),
            max_head_bytes in prop_oneof![Just(usize::MAX), 0usize..400],
            max_headers in prop_oneof![Just(100usize), 0usize..8],
        ) {
            let limits = HeadLimits { max_head_bytes, max_headers };
            for ends in [prefixes(&buf, &cuts), vec![buf.len()]] {
                prop_assert_eq!(
                    requests::<true>(&buf, &ends, &limits),
                    requests::<false>(&buf, &ends, &limits)
                );
                prop_assert_eq!(
                    responses::<true>(&buf, &ends, &limits),
                    responses::<false>(&buf, &ends, &limits)
                );
            }
        }
    }

    #[test]
    fn whole_lines_agree_with_the_step_machine_byte_by_byte() {
        let buf = b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nX-Long-Name-Over-Sixteen: a\tb \t\r\nX-Empty:\r\nETag: \"6740c1a0-128\"\r\n\r\n{}";
        let ends: Vec<usize> = (0..=buf.len()).collect();
        let limits = HeadLimits::default();
        assert_eq!(
            responses::<true>(buf, &ends, &limits),
            responses::<false>(buf, &ends, &limits)
        );
        assert_eq!(
            requests::<true>(buf, &ends, &limits),
            requests::<false>(buf, &ends, &limits)
        );
        let last = responses::<true>(buf, &ends, &limits).pop().unwrap();
        assert_eq!((last.0, last.4.len()), (Ok(Parsed::Complete), 4));
    }
}
