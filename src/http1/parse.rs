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

use super::bytes::{is_field_byte, is_token_byte, scan, FIELD, TARGET, TOKEN};

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

/// Where the parser stands between two calls.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Step {
    /// RFC 9112 §2.2: empty lines before the start line are ignored.
    #[default]
    LeadingEmptyLines,
    Method,
    Target,
    RequestVersion,
    RequestLineEnd,
    StatusVersion,
    StatusCode,
    AfterStatusCode,
    Reason,
    /// At the start of a field line or of the empty line ending the head.
    LineStart,
    Name,
    /// Between the colon and the first byte of the value (OWS).
    ValueStart,
    Value,
    Complete,
    Failed(HeadError),
}

/// Incremental head parser. Call it after every read with the buffer grown
/// (earlier bytes unchanged and in place) and the same head: long runs are
/// resumed where validation stopped, and only short fixed elements (a
/// version, a CRLF) are looked at again, so a head trickling in byte by byte
/// costs linear time. [`HeadScanner::reset`] before the next message, or if
/// the buffer was compacted or replaced.
///
/// A finished scanner (complete or failed) keeps returning its result.
#[derive(Clone, Debug, Default)]
pub struct HeadScanner {
    step: Step,
    /// Start of the element being parsed.
    mark: usize,
    /// Everything before `pos` has been validated.
    pos: usize,
    /// Name of the field line whose value is being parsed.
    name: Span,
}

enum Progress {
    Done,
    NeedMore,
}

impl HeadScanner {
    pub fn reset(&mut self) {
        *self = HeadScanner::default();
    }

    /// Parses (more of) a request head at the start of `buf`.
    pub fn request(
        &mut self,
        buf: &[u8],
        limits: &HeadLimits,
        head: &mut RequestHead,
    ) -> Result<Parsed, HeadError> {
        self.request_head::<true>(buf, limits, head)
    }

    /// Parses (more of) a response head at the start of `buf`.
    pub fn response(
        &mut self,
        buf: &[u8],
        limits: &HeadLimits,
        head: &mut ResponseHead,
    ) -> Result<Parsed, HeadError> {
        self.response_head::<true>(buf, limits, head)
    }

    /// `WHOLE_LINES` turns the fast paths for whole lines on; the tests turn
    /// them off to compare against the step machine alone.
    fn request_head<const WHOLE_LINES: bool>(
        &mut self,
        buf: &[u8],
        limits: &HeadLimits,
        head: &mut RequestHead,
    ) -> Result<Parsed, HeadError> {
        let window = window(buf, limits);
        if self.step == Step::LeadingEmptyLines {
            head.headers.clear();
            if let Some(line) = whole_request_line(window, self.pos).filter(|_| WHOLE_LINES) {
                (head.method, head.target, head.minor_version) = line.0;
                self.start_element(line.1, Step::LineStart);
            }
        }
        let result = self
            .request_line(window, head)
            .and_then(|progress| match progress {
                Progress::Done => self.field_lines::<WHOLE_LINES>(
                    window,
                    limits,
                    &mut head.headers,
                    &mut head.head_len,
                ),
                Progress::NeedMore => Ok(Progress::NeedMore),
            });
        self.finish(result, buf, limits)
    }

    fn response_head<const WHOLE_LINES: bool>(
        &mut self,
        buf: &[u8],
        limits: &HeadLimits,
        head: &mut ResponseHead,
    ) -> Result<Parsed, HeadError> {
        let window = window(buf, limits);
        if self.step == Step::LeadingEmptyLines {
            head.headers.clear();
            if let Some(line) = whole_status_line(window, self.pos).filter(|_| WHOLE_LINES) {
                (head.minor_version, head.status, head.reason) = line.0;
                self.start_element(line.1, Step::LineStart);
            }
        }
        let result = self
            .status_line(window, head)
            .and_then(|progress| match progress {
                Progress::Done => self.field_lines::<WHOLE_LINES>(
                    window,
                    limits,
                    &mut head.headers,
                    &mut head.head_len,
                ),
                Progress::NeedMore => Ok(Progress::NeedMore),
            });
        self.finish(result, buf, limits)
    }

    fn finish(
        &mut self,
        result: Result<Progress, HeadError>,
        buf: &[u8],
        limits: &HeadLimits,
    ) -> Result<Parsed, HeadError> {
        let error = match result {
            Ok(Progress::Done) => {
                self.step = Step::Complete;
                return Ok(Parsed::Complete);
            }
            // The window is full and the head has not ended within it.
            Ok(Progress::NeedMore) if buf.len() > limits.max_head_bytes => HeadError::TooLarge,
            Ok(Progress::NeedMore) => return Ok(Parsed::Partial),
            Err(e) => e,
        };
        self.step = Step::Failed(error);
        Err(error)
    }

    /// Skips the empty lines httparse tolerates before a start line.
    fn leading_empty_lines(&mut self, buf: &[u8]) -> Result<Progress, HeadError> {
        let mut i = self.pos;
        loop {
            match buf.get(i) {
                None => break,
                Some(b'\n') => i += 1,
                Some(b'\r') => match buf.get(i + 1) {
                    None => break,
                    Some(b'\n') => i += 2,
                    Some(_) => return Err(HeadError::Invalid("invalid line ending")),
                },
                Some(_) => {
                    self.pos = i;
                    self.mark = i;
                    return Ok(Progress::Done);
                }
            }
        }
        self.pos = i;
        Ok(Progress::NeedMore)
    }

    /// RFC 9112 §3: `method SP request-target SP HTTP-version CRLF`.
    fn request_line(&mut self, buf: &[u8], head: &mut RequestHead) -> Result<Progress, HeadError> {
        loop {
            match self.step {
                Step::LeadingEmptyLines => {
                    if let Progress::NeedMore = self.leading_empty_lines(buf)? {
                        return Ok(Progress::NeedMore);
                    }
                    self.step = Step::Method;
                }
                Step::Method => {
                    let end = scan(buf, self.pos, TOKEN);
                    match buf.get(end) {
                        None => return Ok(self.need_more_at(end)),
                        Some(b' ') if end > self.mark => {
                            head.method = Span::new(self.mark, end);
                            self.start_element(end + 1, Step::Target);
                        }
                        Some(_) => return Err(HeadError::Invalid("invalid method")),
                    }
                }
                Step::Target => {
                    let end = scan(buf, self.pos, TARGET);
                    match buf.get(end) {
                        None => return Ok(self.need_more_at(end)),
                        // httparse hands the target out as &str, so it must be
                        // UTF-8; ASCII, nearly always, is checked inline.
                        Some(b' ')
                            if end > self.mark
                                && (buf[self.mark..end].is_ascii()
                                    || std::str::from_utf8(&buf[self.mark..end]).is_ok()) =>
                        {
                            head.target = Span::new(self.mark, end);
                            self.start_element(end + 1, Step::RequestVersion);
                        }
                        Some(_) => return Err(HeadError::Invalid("invalid request target")),
                    }
                }
                Step::RequestVersion => match version(buf, self.mark)? {
                    None => return Ok(Progress::NeedMore),
                    Some(minor) => {
                        head.minor_version = minor;
                        self.start_element(self.mark + 8, Step::RequestLineEnd);
                    }
                },
                Step::RequestLineEnd => match line_end(buf, self.pos)? {
                    None => return Ok(Progress::NeedMore),
                    Some(next) => self.start_element(next, Step::LineStart),
                },
                _ => return Ok(Progress::Done),
            }
        }
    }

    /// RFC 9112 §4: `HTTP-version SP status-code SP [ reason-phrase ] CRLF`;
    /// like httparse, the SP before an absent reason may be missing too.
    fn status_line(&mut self, buf: &[u8], head: &mut ResponseHead) -> Result<Progress, HeadError> {
        loop {
            match self.step {
                Step::LeadingEmptyLines => {
                    if let Progress::NeedMore = self.leading_empty_lines(buf)? {
                        return Ok(Progress::NeedMore);
                    }
                    self.step = Step::StatusVersion;
                }
                Step::StatusVersion => match version(buf, self.mark)? {
                    None => return Ok(Progress::NeedMore),
                    Some(_) if buf.len() == self.mark + 8 => return Ok(Progress::NeedMore),
                    Some(_) if buf[self.mark + 8] != b' ' => {
                        return Err(HeadError::Invalid("invalid HTTP version"))
                    }
                    Some(minor) => {
                        head.minor_version = minor;
                        self.start_element(self.mark + 9, Step::StatusCode);
                    }
                },
                Step::StatusCode => {
                    let digits = &buf[self.mark..buf.len().min(self.mark + 3)];
                    if !digits.iter().all(u8::is_ascii_digit) {
                        return Err(HeadError::Invalid("invalid status code"));
                    }
                    if digits.len() < 3 {
                        return Ok(Progress::NeedMore);
                    }
                    head.status = digits
                        .iter()
                        .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
                    self.start_element(self.mark + 3, Step::AfterStatusCode);
                }
                Step::AfterStatusCode => match buf.get(self.pos) {
                    None => return Ok(Progress::NeedMore),
                    Some(b' ') => self.start_element(self.pos + 1, Step::Reason),
                    Some(b'\r' | b'\n') => {
                        match line_end(buf, self.pos).map_err(|_| invalid_status())? {
                            None => return Ok(Progress::NeedMore),
                            Some(next) => {
                                head.reason = Span::new(self.pos, self.pos);
                                self.start_element(next, Step::LineStart);
                            }
                        }
                    }
                    Some(_) => return Err(invalid_status()),
                },
                Step::Reason => {
                    let end = scan(buf, self.pos, FIELD);
                    match line_end(buf, end).map_err(|_| invalid_status())? {
                        None => return Ok(self.need_more_at(end)),
                        Some(next) => {
                            head.reason = Span::new(self.mark, end);
                            self.start_element(next, Step::LineStart);
                        }
                    }
                }
                _ => return Ok(Progress::Done),
            }
        }
    }

    /// RFC 9112 §5: `field-name ":" OWS field-value OWS CRLF` lines up to an
    /// empty line. No whitespace before the colon (§5.1), no obs-fold (§5.2).
    fn field_lines<const WHOLE_LINES: bool>(
        &mut self,
        buf: &[u8],
        limits: &HeadLimits,
        headers: &mut Vec<HeaderSpan>,
        head_len: &mut usize,
    ) -> Result<Progress, HeadError> {
        loop {
            match self.step {
                Step::LineStart => {
                    // Lines already whole in the buffer skip the step
                    // machine; it takes over at the first line that is not
                    // (the empty line, a partial line, an error, the limit).
                    if WHOLE_LINES {
                        let pos = whole_field_lines(buf, self.pos, headers, limits.max_headers);
                        self.mark = pos;
                        self.pos = pos;
                    }
                    let pos = self.pos;
                    match buf.get(pos) {
                        None => return Ok(Progress::NeedMore),
                        Some(b'\r' | b'\n') => match line_end(buf, pos)? {
                            None => return Ok(Progress::NeedMore),
                            Some(end) => {
                                *head_len = end;
                                return Ok(Progress::Done);
                            }
                        },
                        Some(&b) if is_token_byte(b) => self.start_element(pos, Step::Name),
                        Some(_) => return Err(invalid_name()),
                    }
                }
                Step::Name => {
                    let end = scan(buf, self.pos, TOKEN);
                    match buf.get(end) {
                        None => return Ok(self.need_more_at(end)),
                        Some(b':') => {
                            self.name = Span::new(self.mark, end);
                            self.start_element(end + 1, Step::ValueStart);
                        }
                        Some(_) => return Err(invalid_name()),
                    }
                }
                Step::ValueStart => {
                    let mut i = self.pos;
                    while matches!(buf.get(i), Some(b' ' | b'\t')) {
                        i += 1;
                    }
                    match buf.get(i) {
                        None => return Ok(self.need_more_at(i)),
                        Some(b'\r' | b'\n') => {
                            match line_end(buf, i).map_err(|_| invalid_value())? {
                                None => return Ok(self.need_more_at(i)),
                                Some(next) => {
                                    self.push_field(headers, limits, Span::new(i, i), next)?
                                }
                            }
                        }
                        Some(&b) if is_field_byte(b) => self.start_element(i, Step::Value),
                        Some(_) => return Err(invalid_value()),
                    }
                }
                Step::Value => {
                    let end = scan(buf, self.pos, FIELD);
                    match line_end(buf, end).map_err(|_| invalid_value())? {
                        None => return Ok(self.need_more_at(end)),
                        Some(next) => {
                            let trimmed = buf[self.mark..end]
                                .iter()
                                .rposition(|&b| b != b' ' && b != b'\t')
                                .map_or(self.mark, |last| self.mark + last + 1);
                            self.push_field(headers, limits, Span::new(self.mark, trimmed), next)?;
                        }
                    }
                }
                Step::Complete => return Ok(Progress::Done),
                Step::Failed(e) => return Err(e),
                _ => unreachable!("field_lines entered before the start line was done"),
            }
        }
    }

    fn push_field(
        &mut self,
        headers: &mut Vec<HeaderSpan>,
        limits: &HeadLimits,
        value: Span,
        next: usize,
    ) -> Result<(), HeadError> {
        // Counted once the line is whole, as httparse does.
        if headers.len() >= limits.max_headers {
            return Err(HeadError::TooManyHeaders);
        }
        headers.push(HeaderSpan {
            name: self.name,
            value,
        });
        self.start_element(next, Step::LineStart);
        Ok(())
    }

    #[inline]
    fn start_element(&mut self, at: usize, step: Step) {
        self.step = step;
        self.mark = at;
        self.pos = at;
    }

    #[inline]
    fn need_more_at(&mut self, validated_up_to: usize) -> Progress {
        self.pos = validated_up_to;
        Progress::NeedMore
    }
}

/// Pushes the field lines from `pos` on that are whole and valid, up to the
/// limit; returns where the first other line starts. Out of line because
/// inlined into the step machine it lost registers to it (about 3% more
/// instructions per head under callgrind).
#[inline(never)]
fn whole_field_lines(
    buf: &[u8],
    mut pos: usize,
    headers: &mut Vec<HeaderSpan>,
    max_headers: usize,
) -> usize {
    while headers.len() < max_headers {
        let Some((header, next)) = whole_field_line(buf, pos) else {
            break;
        };
        headers.push(header);
        pos = next;
    }
    pos
}

/// The request line at `start` when it is whole and valid, with no empty
/// lines before it: (method, target, minor version) and where the next line
/// starts. `None` for anything else, which the step machine then parses.
#[inline]
fn whole_request_line(buf: &[u8], start: usize) -> Option<((Span, Span, u8), usize)> {
    let method_end = scan(buf, start, TOKEN);
    if method_end == start || buf.get(method_end) != Some(&b' ') {
        return None;
    }
    let target_start = method_end + 1;
    let target_end = scan(buf, target_start, TARGET);
    if target_end == target_start || buf.get(target_end) != Some(&b' ') {
        return None;
    }
    let target = &buf[target_start..target_end];
    if !(target.is_ascii() || std::str::from_utf8(target).is_ok()) {
        return None;
    }
    let version = target_end + 1;
    let minor = match buf.get(version..version + 8)? {
        b"HTTP/1.0" => 0,
        b"HTTP/1.1" => 1,
        _ => return None,
    };
    let next = line_end(buf, version + 8).ok()??;
    let line = (
        Span::new(start, method_end),
        Span::new(target_start, target_end),
        minor,
    );
    Some((line, next))
}

/// The status line at `start` when it is whole and valid, with no empty
/// lines before it: (minor version, status, reason) and where the next line
/// starts. `None` for anything else, which the step machine then parses.
#[inline]
fn whole_status_line(buf: &[u8], start: usize) -> Option<((u8, u16, Span), usize)> {
    let [b'H', b'T', b'T', b'P', b'/', b'1', b'.', minor @ (b'0' | b'1'), b' ', digits @ .., after] =
        *buf.get(start..)?.first_chunk::<13>()?
    else {
        return None;
    };
    let [d0, d1, d2] = digits;
    if !(d0.is_ascii_digit() && d1.is_ascii_digit() && d2.is_ascii_digit()) {
        return None;
    }
    let status = [d0, d1, d2]
        .iter()
        .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    let (reason, end) = match after {
        b' ' => {
            let end = scan(buf, start + 13, FIELD);
            (Span::new(start + 13, end), end)
        }
        // Like httparse: no reason, and no space before it either.
        b'\r' | b'\n' => (Span::new(start + 12, start + 12), start + 12),
        _ => return None,
    };
    let next = line_end(buf, end).ok()??;
    Some(((minor - b'0', status, reason), next))
}

/// The field line at `start` when it is whole and valid in `buf`: its spans
/// and where the next line starts. `None` for anything else (the empty line,
/// a line cut by the buffer's end, a syntax error), which the step machine
/// then parses from `start`, so this only ever agrees with it.
#[inline(always)]
fn whole_field_line(buf: &[u8], start: usize) -> Option<(HeaderSpan, usize)> {
    // Every head ends with the empty line: leave it before any scan.
    if !is_token_byte(*buf.get(start)?) {
        return None;
    }
    // Names, the colon and OWS are all field bytes too, so one scan from the
    // line's start finds its end. Where the next line starts then depends on
    // that scan alone; the name's scan below runs beside it, not after it.
    let end = scan(buf, start, FIELD);
    let next = if buf.get(end..end + 2) == Some(b"\r\n") {
        end + 2
    } else if buf.get(end) == Some(&b'\n') {
        end + 1
    } else {
        return None;
    };
    // The name stops at or before `end`, which holds no tchar.
    let colon = scan(buf, start, TOKEN);
    if colon == start || buf.get(colon) != Some(&b':') {
        return None;
    }
    let mut value = colon + 1;
    if buf.get(value) == Some(&b' ') {
        value += 1;
    }
    while let Some(b' ' | b'\t') = buf.get(value) {
        value += 1;
    }
    // The value begins with a non-blank byte, so trimming stops at or after it.
    let mut trimmed = end;
    while trimmed > value && matches!(buf[trimmed - 1], b' ' | b'\t') {
        trimmed -= 1;
    }
    let header = HeaderSpan {
        name: Span::new(start, colon),
        value: Span::new(value, trimmed),
    };
    Some((header, next))
}

fn invalid_name() -> HeadError {
    HeadError::Invalid("invalid header name")
}

fn invalid_value() -> HeadError {
    HeadError::Invalid("invalid header value")
}

fn invalid_status() -> HeadError {
    HeadError::Invalid("invalid status line")
}

/// The part of `buf` a head may occupy.
fn window<'b>(buf: &'b [u8], limits: &HeadLimits) -> &'b [u8] {
    &buf[..buf.len().min(limits.max_head_bytes).min(u32::MAX as usize)]
}

/// `HTTP/1.0` or `HTTP/1.1` at `at` (RFC 9112 §2.3; other versions are
/// refused as httparse refuses them). `None` while a valid prefix is short.
fn version(buf: &[u8], at: usize) -> Result<Option<u8>, HeadError> {
    const PREFIX: &[u8] = b"HTTP/1.";
    let seen = &buf[at.min(buf.len())..buf.len().min(at + 8)];
    let prefix_len = seen.len().min(PREFIX.len());
    if seen[..prefix_len] != PREFIX[..prefix_len] {
        return Err(HeadError::Invalid("invalid HTTP version"));
    }
    match seen.get(7) {
        None => Ok(None),
        Some(b'0') => Ok(Some(0)),
        Some(b'1') => Ok(Some(1)),
        Some(_) => Err(HeadError::Invalid("invalid HTTP version")),
    }
}

/// A line end at `at`: CRLF, or a bare LF as httparse accepts (RFC 9112 §2.2
/// allows a recipient to). Returns where the next line starts.
fn line_end(buf: &[u8], at: usize) -> Result<Option<usize>, HeadError> {
    match buf.get(at) {
        None => Ok(None),
        Some(b'\n') => Ok(Some(at + 1)),
        Some(b'\r') => match buf.get(at + 1) {
            None => Ok(None),
            Some(b'\n') => Ok(Some(at + 2)),
            Some(_) => Err(HeadError::Invalid("invalid line ending")),
        },
        Some(_) => Err(HeadError::Invalid("invalid line ending")),
    }
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
