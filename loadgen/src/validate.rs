//! Response validation: what counts as a good answer, and the classes a bad
//! one falls into. Plain bodies must be well-formed JSON; streams must be
//! well-formed SSE whose `data:` payloads are JSON and which end the way their
//! dialect ends. Streams are scanned incrementally, each byte once.

use crate::workload::StreamEnd;
use serde::de::IgnoredAny;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Could not connect (or the connection failed before the request was sent).
    Connect,
    /// No complete response within `--timeout`.
    Timeout,
    /// A response arrived with a non-2xx status.
    Status,
    /// The response was not valid HTTP, JSON or SSE.
    Malformed,
    /// The connection closed before the response (or stream) was complete.
    Truncated,
    /// A stream that ended with a well-formed error in its dialect (an
    /// OpenAI `data:` payload with an `error` member, an Anthropic `error`
    /// event): how a gateway says a stream broke after it began.
    StreamError,
}

impl ErrorClass {
    pub const ALL: [ErrorClass; 6] = [
        ErrorClass::Connect,
        ErrorClass::Timeout,
        ErrorClass::Status,
        ErrorClass::Malformed,
        ErrorClass::Truncated,
        ErrorClass::StreamError,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ErrorClass::Connect => "connect",
            ErrorClass::Timeout => "timeout",
            ErrorClass::Status => "status",
            ErrorClass::Malformed => "malformed",
            ErrorClass::Truncated => "truncated",
            ErrorClass::StreamError => "stream_error",
        }
    }
}

/// sonic-rs rather than serde_json: as strict (stricter: it also rejects
/// invalid UTF-8) and about twice as fast, which is most of the
/// generator's own user time on small answers.
pub fn check_json(body: &[u8]) -> Result<(), ErrorClass> {
    sonic_rs::from_slice::<IgnoredAny>(body)
        .map(|_| ())
        .map_err(|_| ErrorClass::Malformed)
}

/// Incremental SSE checker over a growing decoded body.
pub struct StreamCheck {
    end: StreamEnd,
    scanned: usize,
    pub finished: bool,
    /// The stream carried an error event (see [`ErrorClass::StreamError`]).
    pub errored: bool,
}

impl StreamCheck {
    pub fn new(end: StreamEnd) -> StreamCheck {
        StreamCheck {
            end,
            scanned: 0,
            finished: false,
            errored: false,
        }
    }

    /// Checks the complete events in `body` not seen before and returns how
    /// many there were. `body` only ever grows between calls.
    pub fn scan(&mut self, body: &[u8]) -> Result<usize, ErrorClass> {
        let mut events = 0;
        while let Some(len) = find_event_end(&body[self.scanned..]) {
            let event = &body[self.scanned..self.scanned + len];
            self.scanned += len;
            if !self.finished && !event.iter().all(|b| b.is_ascii_whitespace()) {
                self.check_event(event)?;
                events += 1;
            }
        }
        Ok(events)
    }

    fn check_event(&mut self, event: &[u8]) -> Result<(), ErrorClass> {
        let mut name: &[u8] = b"";
        for line in event.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if let Some(v) = line.strip_prefix(b"event:") {
                name = v.trim_ascii();
            } else if let Some(v) = line.strip_prefix(b"data:") {
                let v = v.trim_ascii();
                if v == b"[DONE]" {
                    self.finished |= self.end == StreamEnd::Done;
                } else {
                    check_json(v)?;
                    // Only a payload that mentions it is parsed again.
                    if v.windows(7).any(|w| w == b"\"error\"") {
                        let value: serde_json::Value =
                            serde_json::from_slice(v).map_err(|_| ErrorClass::Malformed)?;
                        self.errored |= value.get("error").is_some();
                    }
                }
            } else if !(line.is_empty()
                || line.starts_with(b":")
                || line.starts_with(b"id:")
                || line.starts_with(b"retry:"))
            {
                return Err(ErrorClass::Malformed);
            }
        }
        self.errored |= name == b"error";
        self.finished |= match self.end {
            StreamEnd::Done => false,
            StreamEnd::ResponseCompleted => name == b"response.completed",
            StreamEnd::MessageStop => name == b"message_stop",
        };
        Ok(())
    }
}

/// Length of the first event in `s` including its blank-line terminator.
fn find_event_end(s: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(nl) = s[i..].iter().position(|&b| b == b'\n') {
        let at = i + nl + 1;
        match s.get(at) {
            Some(b'\n') => return Some(at + 1),
            Some(b'\r') if s.get(at + 1) == Some(&b'\n') => return Some(at + 2),
            _ => i = at,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_stream_needs_done() {
        let mut c = StreamCheck::new(StreamEnd::Done);
        assert_eq!(c.scan(b"data: {\"a\":1}\n\ndata: {\"b\"").unwrap(), 1);
        assert!(!c.finished);
        assert_eq!(
            c.scan(b"data: {\"a\":1}\n\ndata: {\"b\":2}\n\ndata: [DONE]\n\n")
                .unwrap(),
            2
        );
        assert!(c.finished);
    }

    #[test]
    fn dialect_terminal_events() {
        let mut c = StreamCheck::new(StreamEnd::MessageStop);
        c.scan(b"event: ping\ndata: {}\n\nevent: message_stop\r\ndata: {\"type\":\"message_stop\"}\r\n\r\n").unwrap();
        assert!(c.finished);
        let mut c = StreamCheck::new(StreamEnd::ResponseCompleted);
        c.scan(b"event: response.created\ndata: {}\n\n").unwrap();
        assert!(!c.finished);
    }

    #[test]
    fn error_events_are_recognised_in_both_dialects() {
        let mut c = StreamCheck::new(StreamEnd::Done);
        c.scan(b"data: {\"choices\":[],\"note\":\"error\"}\n\n")
            .unwrap();
        assert!(!c.errored, "a mere mention is not an error");
        c.scan(b"data: {\"choices\":[],\"note\":\"error\"}\n\ndata: {\"error\":{\"message\":\"cut\"}}\n\n")
            .unwrap();
        assert!(c.errored && !c.finished);
        let mut c = StreamCheck::new(StreamEnd::MessageStop);
        c.scan(b"event: error\ndata: {\"type\":\"error\",\"error\":{}}\n\n")
            .unwrap();
        assert!(c.errored);
    }

    #[test]
    fn bad_payload_is_malformed() {
        let mut c = StreamCheck::new(StreamEnd::Done);
        assert_eq!(c.scan(b"data: {not json\n\n"), Err(ErrorClass::Malformed));
        for bad in [
            &b"{\"a\":"[..],
            b"",
            b"[1,]",
            b"{} x",
            b"{\"a\":tru}",
            b"{\"a\":\"\\x\"}",
            b"\"\xff\"",
        ] {
            assert_eq!(check_json(bad), Err(ErrorClass::Malformed), "{bad:?}");
        }
        assert_eq!(check_json(b"{\"a\":[1,{\"b\":null}]}"), Ok(()));
    }
}
