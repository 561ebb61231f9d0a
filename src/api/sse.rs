//! A sans-IO Server-Sent Events scanner for upstream streams, following the
//! WHATWG event-stream rules: lines end in CRLF, LF or CR; a blank line
//! dispatches the event; `:` starts a comment; `data:` lines join with `\n`;
//! one space after the field's colon is dropped; fields other than `event`
//! and `data` (`id`, `retry`) are skipped; an event without data is not
//! dispatched.
//!
//! Invariants:
//! - The events reported, and whether and where an error is reported, do not
//!   depend on how the stream is split into `feed` calls.
//! - Zero copy: an event with at most one `data:` line that lies wholly
//!   within one input slice is reported as slices of that input. Only the
//!   incomplete tail of a feed (and multi-line data) is copied, into buffers
//!   the scanner keeps and reuses.
//! - The size of an event (each line's bytes plus one per line, comments
//!   included, the dispatching blank line not) is capped; past the cap the
//!   scanner fails and stays failed until `reset`, so its buffers stay
//!   bounded. `reset` also gives back buffers a large event grew past
//!   [`KEPT_BUFFER_BYTES`], so a long-lived scanner does not keep one
//!   stream's worst case.

use std::fmt;

/// The most capacity a buffer keeps across [`SseScanner::reset`]: ordinary
/// events fit, and reuse stays allocation-free; one huge event's buffer is
/// not held for the life of the connection.
pub const KEPT_BUFFER_BYTES: usize = 64 * 1024;

/// One dispatched event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SseEvent<'a> {
    /// The `event:` field; empty when the event had none.
    pub event: &'a [u8],
    /// The `data:` lines joined with `\n`.
    pub data: &'a [u8],
}

impl SseEvent<'_> {
    /// OpenAI's end-of-stream sentinel, `data: [DONE]`.
    pub fn is_done(&self) -> bool {
        self.data == b"[DONE]"
    }
}

/// The stream broke the scanner's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SseError {
    /// An event grew past `limit` bytes.
    EventTooLarge { limit: usize },
}

impl fmt::Display for SseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SseError::EventTooLarge { limit } => {
                write!(f, "server-sent event larger than {limit} bytes")
            }
        }
    }
}

impl std::error::Error for SseError {}

/// Incremental scanner; feed it the stream's bytes as they arrive.
#[derive(Debug)]
pub struct SseScanner {
    max_event_bytes: usize,
    /// The last, unterminated line of the previous feed.
    partial_line: Vec<u8>,
    /// The previous feed ended in CR: a leading LF is that CRLF's second half.
    skip_leading_lf: bool,
    /// Size of the current event so far, as defined in the module doc.
    event_bytes: usize,
    /// The current event's `event:` value, once it has been copied.
    name: Vec<u8>,
    /// The current event's data, once it has been copied.
    data: Vec<u8>,
    data_lines: usize,
    failure: Option<SseError>,
}

enum Field<'a> {
    Event(&'a [u8]),
    Data(&'a [u8]),
    Other,
}

impl SseScanner {
    pub fn new(max_event_bytes: usize) -> Self {
        Self {
            max_event_bytes,
            partial_line: Vec::new(),
            skip_leading_lf: false,
            event_bytes: 0,
            name: Vec::new(),
            data: Vec::new(),
            data_lines: 0,
            failure: None,
        }
    }

    /// Forgets any partial event and failure, keeping the buffers, so the
    /// scanner can serve the next stream.
    pub fn reset(&mut self) {
        self.partial_line.clear();
        self.skip_leading_lf = false;
        self.clear_event();
        self.failure = None;
        for buf in [&mut self.partial_line, &mut self.name, &mut self.data] {
            buf.shrink_to(KEPT_BUFFER_BYTES);
        }
    }

    /// Whether the bytes fed so far end inside an event (a partial line, or
    /// lines not yet dispatched by a blank one), or the scanner failed:
    /// whatever is written after them joins that event unless a blank line
    /// ends it first.
    pub fn mid_event(&self) -> bool {
        self.failure.is_some() || !self.partial_line.is_empty() || self.event_bytes > 0
    }

    /// Scans `input`, calling `on_event` for each event it completes.
    pub fn feed(
        &mut self,
        input: &[u8],
        mut on_event: impl FnMut(SseEvent<'_>),
    ) -> Result<(), SseError> {
        if let Some(failure) = self.failure {
            return Err(failure);
        }
        let result = self.scan(input, &mut on_event);
        if let Err(failure) = result {
            self.failure = Some(failure);
        }
        result
    }

    fn scan(
        &mut self,
        input: &[u8],
        on_event: &mut impl FnMut(SseEvent<'_>),
    ) -> Result<(), SseError> {
        let mut rest = input;
        if self.skip_leading_lf && !rest.is_empty() {
            self.skip_leading_lf = false;
            rest = rest.strip_prefix(b"\n").unwrap_or(rest);
        }
        if !self.partial_line.is_empty() {
            let Some(end) = line_end(rest) else {
                self.partial_line.extend_from_slice(rest);
                return self.check_partial_line();
            };
            self.partial_line.extend_from_slice(&rest[..end]);
            rest = self.after_line(rest, end);
            let line = std::mem::take(&mut self.partial_line);
            let result = self.copied_line(&line, on_event);
            self.partial_line = line;
            self.partial_line.clear();
            result?;
        }

        // Fields of the current event still lying in `input`; copied into
        // `self` only if the event is not dispatched within this feed.
        let mut name: Option<&[u8]> = None;
        let mut data: Option<&[u8]> = None;
        while let Some(end) = line_end(rest) {
            let line = &rest[..end];
            rest = self.after_line(rest, end);
            if line.is_empty() {
                self.dispatch(name.take(), data.take(), on_event);
                continue;
            }
            self.count_line(line.len())?;
            match field(line) {
                Field::Event(value) => name = Some(value),
                Field::Data(value) if self.data_lines == 0 && data.is_none() => data = Some(value),
                Field::Data(value) => {
                    if let Some(first) = data.take() {
                        self.push_data(first);
                    }
                    self.push_data(value);
                }
                Field::Other => {}
            }
        }
        if let Some(name) = name {
            self.name.clear();
            self.name.extend_from_slice(name);
        }
        if let Some(data) = data {
            self.push_data(data);
        }
        if !rest.is_empty() {
            self.partial_line.extend_from_slice(rest);
            self.check_partial_line()?;
        }
        Ok(())
    }

    /// A line assembled in `partial_line`, whose fields must be copied.
    fn copied_line(
        &mut self,
        line: &[u8],
        on_event: &mut impl FnMut(SseEvent<'_>),
    ) -> Result<(), SseError> {
        if line.is_empty() {
            self.dispatch(None, None, on_event);
            return Ok(());
        }
        self.count_line(line.len())?;
        match field(line) {
            Field::Event(value) => {
                self.name.clear();
                self.name.extend_from_slice(value);
            }
            Field::Data(value) => self.push_data(value),
            Field::Other => {}
        }
        Ok(())
    }

    /// `rest` past the terminator of the line ending at `end`.
    fn after_line<'a>(&mut self, rest: &'a [u8], end: usize) -> &'a [u8] {
        let after = &rest[end + 1..];
        if rest[end] == b'\r' {
            if after.is_empty() {
                self.skip_leading_lf = true;
            }
            return after.strip_prefix(b"\n").unwrap_or(after);
        }
        after
    }

    fn push_data(&mut self, value: &[u8]) {
        if self.data_lines > 0 {
            self.data.push(b'\n');
        }
        self.data.extend_from_slice(value);
        self.data_lines += 1;
    }

    fn dispatch(
        &mut self,
        name: Option<&[u8]>,
        data: Option<&[u8]>,
        on_event: &mut impl FnMut(SseEvent<'_>),
    ) {
        if data.is_some() || self.data_lines > 0 {
            on_event(SseEvent {
                event: name.unwrap_or(&self.name),
                data: data.unwrap_or(&self.data),
            });
        }
        self.clear_event();
    }

    fn clear_event(&mut self) {
        self.event_bytes = 0;
        self.name.clear();
        self.data.clear();
        self.data_lines = 0;
    }

    fn count_line(&mut self, len: usize) -> Result<(), SseError> {
        self.event_bytes += len + 1;
        self.within_limit(self.event_bytes)
    }

    /// The unterminated line will count at least its bytes so far plus one,
    /// so failing now is the same verdict, just sooner.
    fn check_partial_line(&self) -> Result<(), SseError> {
        self.within_limit(self.event_bytes + self.partial_line.len() + 1)
    }

    fn within_limit(&self, bytes: usize) -> Result<(), SseError> {
        if bytes > self.max_event_bytes {
            return Err(SseError::EventTooLarge {
                limit: self.max_event_bytes,
            });
        }
        Ok(())
    }
}

fn line_end(bytes: &[u8]) -> Option<usize> {
    memchr::memchr2(b'\n', b'\r', bytes)
}

fn field(line: &[u8]) -> Field<'_> {
    // The common lines, without looking for their colon (the first one is
    // the one after the name, which has none).
    if let Some(value) = line.strip_prefix(b"data:") {
        return Field::Data(value.strip_prefix(b" ").unwrap_or(value));
    }
    if let Some(value) = line.strip_prefix(b"event:") {
        return Field::Event(value.strip_prefix(b" ").unwrap_or(value));
    }
    if line[0] == b':' {
        return Field::Other;
    }
    let (name, value) = match memchr::memchr(b':', line) {
        Some(colon) => {
            let value = &line[colon + 1..];
            (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
        }
        None => (line, &b""[..]),
    };
    match name {
        b"data" => Field::Data(value),
        b"event" => Field::Event(value),
        _ => Field::Other,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    type Owned = (String, String);

    fn events_of(scanner: &mut SseScanner, chunks: &[&[u8]]) -> (Vec<Owned>, Option<SseError>) {
        let mut events = Vec::new();
        for chunk in chunks {
            let fed = scanner.feed(chunk, |e| {
                events.push((
                    String::from_utf8_lossy(e.event).into_owned(),
                    String::from_utf8_lossy(e.data).into_owned(),
                ))
            });
            if let Err(e) = fed {
                return (events, Some(e));
            }
        }
        (events, None)
    }

    fn scan_whole(stream: &str) -> Vec<Owned> {
        let (events, error) = events_of(&mut SseScanner::new(1 << 20), &[stream.as_bytes()]);
        assert_eq!(error, None);
        events
    }

    fn ev(event: &str, data: &str) -> Owned {
        (event.into(), data.into())
    }

    #[test]
    fn openai_chunks_and_done() {
        let stream = "data: {\"id\":\"chatcmpl-1\",\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n\
                      data: {\"id\":\"chatcmpl-1\",\"choices\":[],\"usage\":{\"prompt_tokens\":9}}\n\n\
                      data: [DONE]\n\n";
        let events = scan_whole(stream);
        assert_eq!(events.len(), 3);
        assert_eq!(events[2], ev("", "[DONE]"));
        let mut done = 0;
        SseScanner::new(1024)
            .feed(b"data: [DONE]\n\n", |e| done += usize::from(e.is_done()))
            .unwrap();
        assert_eq!(done, 1);
    }

    #[test]
    fn anthropic_named_events() {
        let stream = "event: message_start\ndata: {\"type\":\"message_start\"}\n\n\
                      event: ping\ndata: {\"type\": \"ping\"}\n\n\
                      event: message_stop\r\ndata: {\"type\":\"message_stop\"}\r\n\r\n";
        assert_eq!(
            scan_whole(stream),
            [
                ev("message_start", "{\"type\":\"message_start\"}"),
                ev("ping", "{\"type\": \"ping\"}"),
                ev("message_stop", "{\"type\":\"message_stop\"}"),
            ]
        );
    }

    #[test]
    fn line_ends_cr_lf_and_crlf_mix() {
        let stream = "data: a\r\rdata: b\n\ndata: c\r\n\r\ndata: d\r\n\ndata: e\n\r";
        assert_eq!(
            scan_whole(stream),
            [
                ev("", "a"),
                ev("", "b"),
                ev("", "c"),
                ev("", "d"),
                ev("", "e")
            ]
        );
    }

    #[test]
    fn multiple_data_lines_join_with_newline() {
        let stream = "data: first\ndata:second\ndata\ndata:  two spaces\n\n";
        assert_eq!(scan_whole(stream), [ev("", "first\nsecond\n\n two spaces")]);
    }

    #[test]
    fn comments_unknown_fields_and_empty_events() {
        let stream = ": keep-alive\n\nid: 7\nretry: 100\n\nevent: x\n\n: c\ndata: y\n: c\n\n";
        // Events without data are not dispatched, and their event name does
        // not leak into the next event.
        assert_eq!(scan_whole(stream), [ev("", "y")]);
        assert_eq!(scan_whole("data:\n\n"), [ev("", "")]);
        assert_eq!(scan_whole("data\n\n"), [ev("", "")]);
        assert_eq!(
            scan_whole("event: a\nevent: b\ndata: d\n\n"),
            [ev("b", "d")]
        );
        assert_eq!(scan_whole("dataX: no\ndata : no\n\n"), []);
    }

    #[test]
    fn incomplete_event_waits_for_its_blank_line() {
        let mut scanner = SseScanner::new(1024);
        let (events, _) = events_of(
            &mut scanner,
            &[b"data: a\n", b"\n", b"data: b\n", b"data: c"],
        );
        assert_eq!(events, [ev("", "a")]);
        let (events, _) = events_of(&mut scanner, &[b"\n\n"]);
        assert_eq!(events, [ev("", "b\nc")]);
    }

    #[test]
    fn single_slice_events_are_zero_copy() {
        let input = b"event: e\ndata: payload\n\n";
        let mut scanner = SseScanner::new(1024);
        let mut seen = 0;
        scanner
            .feed(input, |e| {
                let range = input.as_ptr_range();
                assert!(range.contains(&e.data.as_ptr()) && range.contains(&e.event.as_ptr()));
                seen += 1;
            })
            .unwrap();
        assert_eq!(seen, 1);
        assert_eq!(scanner.data.capacity(), 0, "nothing was buffered");
    }

    #[test]
    fn oversized_event_fails_and_stays_failed_until_reset() {
        let mut scanner = SseScanner::new(17);
        let (events, error) = events_of(
            &mut scanner,
            &[b"data: 0123456789\n\n", b"data: 0123456789x\n\n"],
        );
        assert_eq!(events, [ev("", "0123456789")]);
        assert_eq!(error, Some(SseError::EventTooLarge { limit: 17 }));
        assert_eq!(
            scanner.feed(b"data: ok\n\n", |_| {}),
            Err(SseError::EventTooLarge { limit: 17 })
        );
        scanner.reset();
        let (events, error) = events_of(&mut scanner, &[b"data: ok\n\n"]);
        assert_eq!((events, error), (vec![ev("", "ok")], None));
    }

    #[test]
    fn a_partial_line_cannot_grow_past_the_limit() {
        let mut scanner = SseScanner::new(64);
        let mut error = None;
        for _ in 0..100 {
            if let Err(e) = scanner.feed(b"xxxxxxxx", |_| {}) {
                error = Some(e);
                break;
            }
        }
        assert_eq!(error, Some(SseError::EventTooLarge { limit: 64 }));
        assert!(scanner.partial_line.len() <= 72);
    }

    #[test]
    fn mid_event_says_whether_a_blank_line_is_due() {
        let mut scanner = SseScanner::new(64);
        assert!(!scanner.mid_event());
        for (input, mid) in [
            (&b"data: a"[..], true),
            (b"\n", true),
            (b"\n", false),
            (b": comment\r\n", true),
            (b"\r\n", false),
            (b"data: b\n\n", false),
        ] {
            scanner.feed(input, |_| {}).unwrap();
            assert_eq!(scanner.mid_event(), mid, "after {input:?}");
        }
        let _ = scanner.feed(&[b'x'; 100], |_| {});
        assert!(scanner.mid_event(), "a failed scanner is inside its event");
        scanner.reset();
        assert!(!scanner.mid_event());
    }

    #[test]
    fn reset_gives_back_what_a_huge_event_grew() {
        let mut scanner = SseScanner::new(1 << 20);
        let mut line = b"data: ".to_vec();
        line.resize(512 * 1024, b'x');
        scanner.feed(&line, |_| {}).unwrap();
        assert!(scanner.partial_line.capacity() >= 512 * 1024);
        scanner.reset();
        assert!(scanner.partial_line.capacity() <= KEPT_BUFFER_BYTES);
        let mut small = SseScanner::new(1 << 20);
        small.feed(b"data: a", |_| {}).unwrap();
        let kept = small.partial_line.capacity();
        small.reset();
        assert_eq!(
            small.partial_line.capacity(),
            kept,
            "small buffers are kept"
        );
    }

    fn stream_piece() -> impl Strategy<Value = &'static str> {
        prop_oneof![
            Just("data: {\"a\":1}"),
            Just("data:x"),
            Just("data"),
            Just("event: message_delta"),
            Just("event:"),
            Just(": comment"),
            Just("id: 1"),
            Just("data: [DONE]"),
            Just("\n"),
            Just("\r"),
            Just("\r\n"),
            Just("\n\n"),
            Just("\r\n\r\n"),
            Just("é"),
        ]
    }

    proptest! {
        /// Splitting the stream anywhere, into any number of feeds, changes
        /// neither the events nor the verdict.
        #[test]
        fn any_split_gives_the_same_events(
            pieces in prop::collection::vec(stream_piece(), 0..40),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
            limit in prop_oneof![Just(1usize << 20), 8usize..64],
        ) {
            let stream = pieces.concat().into_bytes();
            let whole = events_of(&mut SseScanner::new(limit), &[&stream]);
            let mut offsets: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
            offsets.sort_unstable();
            let mut chunks = Vec::new();
            let mut start = 0;
            for offset in offsets {
                chunks.push(&stream[start..offset]);
                start = offset;
            }
            chunks.push(&stream[start..]);
            prop_assert_eq!(events_of(&mut SseScanner::new(limit), &chunks), whole.clone());
            let bytewise: Vec<&[u8]> = stream.chunks(1).collect();
            prop_assert_eq!(events_of(&mut SseScanner::new(limit), &bytewise), whole);
        }
    }
}
