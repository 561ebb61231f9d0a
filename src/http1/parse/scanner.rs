//! The resumable head parser: a step machine that keeps where it stands
//! between reads, so a head arriving in pieces is validated once. Whole,
//! valid lines are handed to the fast paths in `line.rs`; every other line
//! (empty, cut short, invalid, over the limit) is read here from its start,
//! so this machine alone decides every edge.

use super::line::{
    invalid_name, invalid_status, invalid_value, line_end, version, whole_field_lines,
    whole_request_line, whole_status_line, window,
};
use super::{HeadError, HeadLimits, HeaderSpan, Parsed, RequestHead, ResponseHead, Span};
use crate::http1::bytes::{is_field_byte, is_token_byte, scan, FIELD, TARGET, TOKEN};

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

/// What a request head and a response head parse differently: the start
/// line. [`HeadScanner::head`] is generic over it, so each kind is still
/// compiled to its own code.
trait StartLine {
    /// The headers to fill and where the head's length goes.
    fn fields(&mut self) -> (&mut Vec<HeaderSpan>, &mut usize);
    /// The fast path: a whole, valid start line at `start` is stored and the
    /// position after it returned; anything else is `None`.
    fn whole_line(&mut self, buf: &[u8], start: usize) -> Option<usize>;
    /// The step machine's start line, resumable.
    fn step_line(
        scanner: &mut HeadScanner,
        buf: &[u8],
        head: &mut Self,
    ) -> Result<Progress, HeadError>;
}

impl StartLine for RequestHead {
    fn fields(&mut self) -> (&mut Vec<HeaderSpan>, &mut usize) {
        (&mut self.headers, &mut self.head_len)
    }
    fn whole_line(&mut self, buf: &[u8], start: usize) -> Option<usize> {
        let (parts, end) = whole_request_line(buf, start)?;
        (self.method, self.target, self.minor_version) = parts;
        Some(end)
    }
    fn step_line(
        scanner: &mut HeadScanner,
        buf: &[u8],
        head: &mut Self,
    ) -> Result<Progress, HeadError> {
        scanner.request_line(buf, head)
    }
}

impl StartLine for ResponseHead {
    fn fields(&mut self) -> (&mut Vec<HeaderSpan>, &mut usize) {
        (&mut self.headers, &mut self.head_len)
    }
    fn whole_line(&mut self, buf: &[u8], start: usize) -> Option<usize> {
        let (parts, end) = whole_status_line(buf, start)?;
        (self.minor_version, self.status, self.reason) = parts;
        Some(end)
    }
    fn step_line(
        scanner: &mut HeadScanner,
        buf: &[u8],
        head: &mut Self,
    ) -> Result<Progress, HeadError> {
        scanner.status_line(buf, head)
    }
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
    pub(super) fn request_head<const WHOLE_LINES: bool>(
        &mut self,
        buf: &[u8],
        limits: &HeadLimits,
        head: &mut RequestHead,
    ) -> Result<Parsed, HeadError> {
        self.head::<_, WHOLE_LINES>(buf, limits, head)
    }

    pub(super) fn response_head<const WHOLE_LINES: bool>(
        &mut self,
        buf: &[u8],
        limits: &HeadLimits,
        head: &mut ResponseHead,
    ) -> Result<Parsed, HeadError> {
        self.head::<_, WHOLE_LINES>(buf, limits, head)
    }

    /// A head of either kind: the start line (the whole-line fast path
    /// first, then the step machine), then the field lines.
    #[inline(always)]
    fn head<H: StartLine, const WHOLE_LINES: bool>(
        &mut self,
        buf: &[u8],
        limits: &HeadLimits,
        head: &mut H,
    ) -> Result<Parsed, HeadError> {
        let window = window(buf, limits);
        if self.step == Step::LeadingEmptyLines {
            head.fields().0.clear();
            if let Some(end) = head.whole_line(window, self.pos).filter(|_| WHOLE_LINES) {
                self.start_element(end, Step::LineStart);
            }
        }
        let result = H::step_line(self, window, head).and_then(|progress| match progress {
            Progress::Done => {
                let (headers, head_len) = head.fields();
                self.field_lines::<WHOLE_LINES>(window, limits, headers, head_len)
            }
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
