//! The chunked transfer coding (RFC 9112 §7.1): an incremental decoder that
//! hands out payload as borrowed slices of the input, never copying.
//!
//! The decoder is a byte-exact state machine: its state after feeding
//! `a ++ b` in one call equals its state after feeding `a` then `b`, for any
//! split, so reads may end anywhere. It never looks past the final CRLF of
//! the trailer section: `consumed` then marks where the next pipelined
//! message starts. Line ends must be CRLF (a bare LF is refused, as hyper
//! does) because a lenient chunk parser in front of a strict one is a
//! smuggling vector. For the same reason chunk extensions, though never
//! interpreted, must follow the grammar exactly (RFC 9112 §7.1.1): a quoted
//! string left open, or a byte no token may hold, is refused, so no two
//! parsers can disagree about where a size line ends.

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
    /// Inside chunk extensions: checked against the grammar, bounded by
    /// the line limit, and otherwise skipped.
    Extension {
        size: u64,
        at: Ext,
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

/// Where in `chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS
/// chunk-ext-val ] )` (RFC 9112 §7.1.1) the decoder is; `chunk-ext-val =
/// token / quoted-string` (RFC 9110 §5.6.2, §5.6.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ext {
    /// After `;`: BWS, then the first byte of a name.
    BeforeName,
    Name,
    /// BWS after a name: `=`, the next `;` or the line end.
    AfterName,
    /// After `=`: BWS, then a token or a quoted string.
    BeforeValue,
    Token,
    /// Inside `"…"`.
    Quoted,
    /// After a `\` inside a quoted string.
    QuotedPair,
    /// After a value: BWS, the next `;` or the line end.
    AfterValue,
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
            (Size { size, .. } | SizeWhitespace { size }, b';') => Extension {
                size,
                at: Ext::BeforeName,
            },
            (Size { size, .. } | SizeWhitespace { size }, b'\r') => SizeLf { size },
            (Size { .. } | SizeWhitespace { .. }, _) => {
                Failed(invalid("invalid byte after chunk size"))
            }
            (Extension { size, at }, _) => match extension_step(at, byte) {
                Ok(Some(at)) => Extension { size, at },
                Ok(None) => SizeLf { size },
                Err(reason) => Failed(invalid(reason)),
            },
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

/// One byte of chunk extensions: the next place in the grammar, `None` at
/// the CR that ends the size line, or why the byte is refused. Whitespace
/// before the line end is let through, as after the size itself.
fn extension_step(at: Ext, byte: u8) -> Result<Option<Ext>, &'static str> {
    use Ext::*;
    let next = match (at, byte) {
        (Quoted, b'"') => AfterValue,
        (Quoted, b'\\') => QuotedPair,
        (Quoted | QuotedPair, b'\r' | b'\n') => {
            return Err("unterminated quoted string in chunk extension")
        }
        // qdtext, and the quoted-pair's second byte (HTAB / SP / VCHAR /
        // obs-text): field-value bytes, where `"` and `\` were taken above.
        (Quoted | QuotedPair, _) if is_field_byte(byte) => Quoted,
        (Quoted | QuotedPair, _) => return Err("invalid byte in chunk extension"),
        (BeforeName | Name, _) if is_token_byte(byte) => Name,
        (BeforeValue | Token, _) if is_token_byte(byte) => Token,
        (BeforeValue, b'"') => Quoted,
        (BeforeName | BeforeValue, b' ' | b'\t') => at,
        (Name | AfterName, b' ' | b'\t') => AfterName,
        (Token | AfterValue, b' ' | b'\t') => AfterValue,
        (Name | AfterName, b'=') => BeforeValue,
        (Name | AfterName | Token | AfterValue, b';') => BeforeName,
        (Name | AfterName | Token | AfterValue, b'\r') => return Ok(None),
        (BeforeName, b'\r' | b';' | b'=') => return Err("empty chunk extension name"),
        (BeforeValue, b'\r' | b';') => return Err("empty chunk extension value"),
        _ => return Err("invalid byte in chunk extension"),
    };
    Ok(Some(next))
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

    /// Feeds `3<ext>\r\nabc\r\n0\r\n\r\n` whole and byte by byte; both
    /// must agree. Returns the outcome.
    fn with_extension(ext: &[u8]) -> Result<bool, ChunkError> {
        let body = [b"3", ext, b"\r\nabc\r\n0\r\n\r\n"].concat();
        let mut whole = ChunkedDecoder::new(ChunkLimits::default());
        let once = whole.feed(&body, |_| {}).map(|p| p.done);
        let mut split = ChunkedDecoder::new(ChunkLimits::default());
        let mut bytewise = Ok(false);
        for byte in body.chunks(1) {
            bytewise = split.feed(byte, |_| {}).map(|p| p.done);
            if bytewise != Ok(false) {
                break;
            }
        }
        assert_eq!(once, bytewise, "{:?}", String::from_utf8_lossy(ext));
        once
    }

    #[test]
    fn chunk_extensions_follow_the_grammar() {
        let valid: &[&[u8]] = &[
            b"",
            b" ",
            b";a",
            b";a=b",
            b";a=b;c",
            b";a=b;c=d",
            b" ; a = b ; c",
            b";a=\"\"",
            b";a=\"q s\"",
            b";a=\"semi;colon=eq\"",
            b";a=\"\\\"escaped quote\"",
            b";a=\"\\\\\"",
            b";a=\"tab\there\"",
            b";a=\"obs-text \xe9\"",
            b";a=\"x\" ",
            b";a \t",
            b";!#$%&'*+-.^_`|~=!#$%&'*+-.^_`|~",
        ];
        for ext in valid {
            assert_eq!(
                with_extension(ext),
                Ok(true),
                "{:?}",
                String::from_utf8_lossy(ext)
            );
        }
        let invalid = |reason| Err(ChunkError::Invalid(reason));
        let cases: &[(&[u8], Result<bool, ChunkError>)] = &[
            (
                b";a=\"abc",
                invalid("unterminated quoted string in chunk extension"),
            ),
            (
                b";a=\"abc\\\"",
                invalid("unterminated quoted string in chunk extension"),
            ),
            (
                b";a=\"abc\\",
                invalid("unterminated quoted string in chunk extension"),
            ),
            (
                b";a=\"x\ry\"",
                invalid("unterminated quoted string in chunk extension"),
            ),
            (
                b";a=\"x\ny\"",
                invalid("unterminated quoted string in chunk extension"),
            ),
            (b";a=\"x\x00\"", invalid("invalid byte in chunk extension")),
            (b";a=\"x\x7f\"", invalid("invalid byte in chunk extension")),
            (
                b";a=\"x\\\x01\"",
                invalid("invalid byte in chunk extension"),
            ),
            (b";a=\"x\"y", invalid("invalid byte in chunk extension")),
            (b";a=b\"c\"", invalid("invalid byte in chunk extension")),
            (b";a=b c", invalid("invalid byte in chunk extension")),
            (b";a b", invalid("invalid byte in chunk extension")),
            (b";a@b", invalid("invalid byte in chunk extension")),
            (b";a=b@c", invalid("invalid byte in chunk extension")),
            (b";a=(b)", invalid("invalid byte in chunk extension")),
            (b";\"a\"=b", invalid("invalid byte in chunk extension")),
            (b";a==b", invalid("invalid byte in chunk extension")),
            (b";a=b,c=d", invalid("invalid byte in chunk extension")),
            (b";a\x80", invalid("invalid byte in chunk extension")),
            (b";a\nb", invalid("invalid byte in chunk extension")),
            (b";", invalid("empty chunk extension name")),
            (b"; ", invalid("empty chunk extension name")),
            (b";;a", invalid("empty chunk extension name")),
            (b";=b", invalid("empty chunk extension name")),
            (b";a=b;", invalid("empty chunk extension name")),
            (b";a=", invalid("empty chunk extension value")),
            (b";a= ", invalid("empty chunk extension value")),
            (b";a=;b", invalid("empty chunk extension value")),
        ];
        for (ext, expected) in cases {
            assert_eq!(
                with_extension(ext),
                *expected,
                "{:?}",
                String::from_utf8_lossy(ext)
            );
        }
    }

    #[test]
    fn an_open_quoted_string_is_bounded_by_the_line_limit() {
        let limits = ChunkLimits {
            max_line_bytes: 16,
            ..ChunkLimits::default()
        };
        let mut d = ChunkedDecoder::new(limits);
        let mut line = b"3;a=\"".to_vec();
        line.resize(64, b'x');
        assert_eq!(d.feed(&line, |_| {}), Err(ChunkError::LineTooLong));
    }

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
