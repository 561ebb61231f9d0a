//! The chunked transfer coding (RFC 9112 §7.1): an incremental decoder that
//! hands out payload as borrowed slices of the input, never copying.
//!
//! The decoder is a byte-exact state machine: its state after feeding
//! `a ++ b` in one call equals its state after feeding `a` then `b`, for any
//! split, so reads may end anywhere. It never looks past the final CRLF of
//! the trailer section: `consumed` then marks where the next pipelined
//! message starts. Line ends must be CRLF (a bare LF is refused, as hyper
//! does) because a lenient chunk parser in front of a strict one is a
//! smuggling vector.

use super::bytes::{is_field_byte, is_token_byte};

/// Limits on the parts of a chunked body that are not payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkLimits {
    /// Bytes of one chunk-size line, extensions included, CRLF excluded.
    pub max_line_bytes: usize,
    /// Bytes of the whole trailer section, CRLFs included.
    pub max_trailer_bytes: usize,
    /// Payload bytes of the whole body. Checked as each chunk-size line
    /// ends, so an announced chunk that would pass it fails at once instead
    /// of holding the connection until the bytes arrive.
    pub max_body_bytes: u64,
}

impl Default for ChunkLimits {
    fn default() -> Self {
        ChunkLimits {
            max_line_bytes: 4096,
            max_trailer_bytes: 16 * 1024,
            max_body_bytes: u64::MAX,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkError {
    /// Malformed framing; the text names what was wrong.
    Invalid(&'static str),
    /// A chunk size above `u64::MAX`.
    SizeOverflow,
    /// A chunk-size line longer than `max_line_bytes`.
    LineTooLong,
    /// A trailer section longer than `max_trailer_bytes`.
    TrailersTooLarge,
    /// The chunk sizes announced add up to more than `max_body_bytes`.
    BodyTooLarge,
}

/// What one [`ChunkedDecoder::feed`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkProgress {
    /// Bytes of the input that belong to this body. Equal to the input's
    /// length unless `done`.
    pub consumed: usize,
    /// The last chunk and the trailer section have been read.
    pub done: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Hex digits of a chunk size; `digits` so far (at least one is needed).
    Size {
        size: u64,
        digits: bool,
    },
    /// After the size: BWS before `;` or the line end (RFC 9112 §7.1.1).
    SizeWhitespace {
        size: u64,
    },
    /// Inside chunk extensions: skipped, but bounded and free of bare LF.
    Extension {
        size: u64,
    },
    /// Read CR of the size line.
    SizeLf {
        size: u64,
    },
    Data {
        remaining: u64,
    },
    DataCr,
    DataLf,
    /// At the start of a trailer line or of the final empty line.
    TrailerStart,
    TrailerName,
    TrailerValue,
    TrailerLf,
    EndLf,
    Done,
    Failed(ChunkError),
}

/// Decodes one chunked body. Reuse it for the next with [`ChunkedDecoder::reset`].
#[derive(Clone, Debug)]
pub struct ChunkedDecoder {
    limits: ChunkLimits,
    state: State,
    /// Bytes of the current size line so far.
    line_bytes: usize,
    /// Bytes of the trailer section so far.
    trailer_bytes: usize,
    /// Payload bytes announced by the chunk sizes so far.
    announced: u64,
}

impl ChunkedDecoder {
    pub fn new(limits: ChunkLimits) -> ChunkedDecoder {
        ChunkedDecoder {
            limits,
            state: State::Size {
                size: 0,
                digits: false,
            },
            line_bytes: 0,
            trailer_bytes: 0,
            announced: 0,
        }
    }

    pub fn reset(&mut self) {
        *self = ChunkedDecoder::new(self.limits);
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Whether the bytes fed so far end exactly between two chunks (or
    /// before the first): a proxy relaying the framing as is may then add a
    /// chunk of its own and the last chunk, and the body stays well framed.
    pub fn between_chunks(&self) -> bool {
        matches!(self.state, State::Size { digits: false, .. })
    }

    /// Decodes as much of `input` as belongs to this body, handing each run
    /// of payload to `on_data` as a slice of `input`. After an error the
    /// decoder keeps returning that error until reset.
    pub fn feed(
        &mut self,
        input: &[u8],
        on_data: impl FnMut(&[u8]),
    ) -> Result<ChunkProgress, ChunkError> {
        self.feed_until(input, on_data, false)
    }

    /// Like [`Self::feed`], but stops at the first point between two chunks
    /// (where it starts, if that is one): `consumed` then marks that point
    /// and may be short of the input even when not `done`. A proxy relaying
    /// the framing as is finds with it where a chunk of its own may go.
    pub fn feed_to_chunk_end(
        &mut self,
        input: &[u8],
        on_data: impl FnMut(&[u8]),
    ) -> Result<ChunkProgress, ChunkError> {
        self.feed_until(input, on_data, true)
    }

    fn feed_until(
        &mut self,
        input: &[u8],
        mut on_data: impl FnMut(&[u8]),
        stop_between_chunks: bool,
    ) -> Result<ChunkProgress, ChunkError> {
        let mut at = 0;
        while at < input.len() {
            if stop_between_chunks && self.between_chunks() {
                break;
            }
            match self.state {
                State::Done => break,
                State::Failed(e) => return Err(e),
                State::Data { remaining } => {
                    let run = remaining.min((input.len() - at) as u64) as usize;
                    on_data(&input[at..at + run]);
                    at += run;
                    let remaining = remaining - run as u64;
                    self.state = if remaining == 0 {
                        State::DataCr
                    } else {
                        State::Data { remaining }
                    };
                }
                state => {
                    let next = self.step(state, input[at]);
                    if let State::Failed(e) = next {
                        self.state = next;
                        return Err(e);
                    }
                    self.state = next;
                    at += 1;
                }
            }
        }
        match self.state {
            State::Failed(e) => Err(e),
            state => Ok(ChunkProgress {
                consumed: at,
                done: state == State::Done,
            }),
        }
    }

    /// One byte of framing (everything but payload).
    fn step(&mut self, state: State, byte: u8) -> State {
        use State::*;
        match state {
            Size { .. } | SizeWhitespace { .. } | Extension { .. } => {
                self.line_bytes += 1;
                if self.line_bytes > self.limits.max_line_bytes && byte != b'\r' {
                    return Failed(ChunkError::LineTooLong);
                }
            }
            TrailerStart | TrailerName | TrailerValue | TrailerLf | EndLf => {
                self.trailer_bytes += 1;
                if self.trailer_bytes > self.limits.max_trailer_bytes {
                    return Failed(ChunkError::TrailersTooLarge);
                }
            }
            _ => {}
        }
        match (state, byte) {
            // RFC 9112 §7.1: chunk-size = 1*HEXDIG.
            (Size { size, .. }, _) if byte.is_ascii_hexdigit() => {
                let digit = u64::from(hex_value(byte));
                match size.checked_mul(16).and_then(|s| s.checked_add(digit)) {
                    Some(size) => Size { size, digits: true },
                    None => Failed(ChunkError::SizeOverflow),
                }
            }
            (Size { digits: false, .. }, _) => Failed(invalid("chunk size is not hex")),
            (Size { size, .. } | SizeWhitespace { size }, b' ' | b'\t') => SizeWhitespace { size },
            (Size { size, .. } | SizeWhitespace { size }, b';') => Extension { size },
            (Size { size, .. } | SizeWhitespace { size } | Extension { size }, b'\r') => {
                SizeLf { size }
            }
            (Size { .. } | SizeWhitespace { .. }, _) => {
                Failed(invalid("invalid byte after chunk size"))
            }
            // Extension names and values are not interpreted, only kept to
            // field-value bytes so no control byte (bare LF above all) hides in them.
            (Extension { size }, _) if is_field_byte(byte) => Extension { size },
            (Extension { .. }, _) => Failed(invalid("invalid byte in chunk extension")),
            (SizeLf { size }, b'\n') => {
                self.line_bytes = 0;
                self.announced = self.announced.saturating_add(size);
                match size {
                    _ if self.announced > self.limits.max_body_bytes => {
                        Failed(ChunkError::BodyTooLarge)
                    }
                    0 => TrailerStart,
                    remaining => Data { remaining },
                }
            }
            (SizeLf { .. }, _) => Failed(invalid("chunk size line not ended by CRLF")),
            (DataCr, b'\r') => DataLf,
            (DataLf, b'\n') => Size {
                size: 0,
                digits: false,
            },
            (DataCr | DataLf, _) => Failed(invalid("chunk data not followed by CRLF")),
            // RFC 9112 §7.1.2: trailer-section = *( field-line CRLF ), then CRLF.
            (TrailerStart, b'\r') => EndLf,
            (TrailerStart | TrailerName, _) if is_token_byte(byte) => TrailerName,
            (TrailerName, b':') => TrailerValue,
            (TrailerStart | TrailerName, _) => Failed(invalid("invalid trailer field name")),
            (TrailerValue, b'\r') => TrailerLf,
            (TrailerValue, _) if is_field_byte(byte) => TrailerValue,
            (TrailerValue, _) => Failed(invalid("invalid trailer field value")),
            (TrailerLf, b'\n') => TrailerStart,
            (EndLf, b'\n') => Done,
            (TrailerLf | EndLf, _) => Failed(invalid("trailer line not ended by CRLF")),
            (Data { .. } | Done | Failed(_), _) => unreachable!("handled by feed"),
        }
    }
}

fn invalid(reason: &'static str) -> ChunkError {
    ChunkError::Invalid(reason)
}

fn hex_value(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        _ => digit - b'A' + 10,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_announced_chunk_over_the_body_limit_fails_at_its_size_line() {
        let limits = ChunkLimits {
            max_body_bytes: 10,
            ..ChunkLimits::default()
        };
        let mut d = ChunkedDecoder::new(limits);
        assert_eq!(
            d.feed(b"ffffffffffffffff\r\n", |_| {}),
            Err(ChunkError::BodyTooLarge)
        );
        let mut d = ChunkedDecoder::new(limits);
        assert_eq!(
            d.feed(b"6\r\nabcdef\r\n5\r\n", |_| {}),
            Err(ChunkError::BodyTooLarge)
        );
        let mut d = ChunkedDecoder::new(limits);
        let p = d
            .feed(b"6\r\nabcdef\r\n4\r\nabcd\r\n0\r\n\r\n", |_| {})
            .unwrap();
        assert!(p.done, "exactly at the limit is accepted");
    }

    #[test]
    fn between_chunks_only_where_a_chunk_of_ones_own_may_go() {
        let body = b"3;x=1\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        let mut d = ChunkedDecoder::new(ChunkLimits::default());
        let mut between = vec![d.between_chunks()];
        for byte in body {
            d.feed(std::slice::from_ref(byte), |_| {}).unwrap();
            between.push(d.between_chunks());
        }
        let at: Vec<usize> = (0..between.len()).filter(|&i| between[i]).collect();
        // Before the first size, and after each chunk's data CRLF.
        assert_eq!(at, [0, 12, 19]);
        assert!(d.feed(b"", |_| {}).is_ok() && !d.between_chunks());

        let mut d = ChunkedDecoder::new(ChunkLimits::default());
        let mut data = Vec::new();
        let fed = d.feed_to_chunk_end(body, |x| data.extend_from_slice(x));
        assert_eq!(
            fed,
            Ok(ChunkProgress {
                consumed: 0,
                done: false
            }),
            "starts between"
        );
        d.feed(b"3;x", |_| {}).unwrap();
        let rest = &body[3..];
        let fed = d
            .feed_to_chunk_end(rest, |x| data.extend_from_slice(x))
            .unwrap();
        assert_eq!((fed.consumed, &data[..]), (12 - 3, &b"abc"[..]));
        assert!(d.between_chunks());
        let fed = d.feed(&rest[fed.consumed..], |_| {}).unwrap();
        assert!(fed.done);
    }
}
