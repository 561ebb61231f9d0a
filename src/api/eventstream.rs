//! The AWS event-stream binary framing (`application/vnd.amazon.eventstream`,
//! what Bedrock's ConverseStream and InvokeModelWithResponseStream answer
//! in), decoded incrementally and sans-IO, plus the encoder a mock upstream
//! and the tests need.
//!
//! A message is: total length (u32 BE), headers length (u32 BE), CRC32 of
//! those 8 bytes; the headers (name length u8, name, type u8, value); the
//! payload; CRC32 of everything before it. CRC32 is the IEEE one; the crate
//! has no CRC dependency, so a 1 KiB table is built at compile time here.
//!
//! Invariants:
//! - Any split of the input decodes the same as one piece, down to one byte
//!   at a time; a message whole in one feed is parsed where it lies, only a
//!   message cut across feeds is copied.
//! - Memory is bounded by the decoder's limit: a length is checked (prelude
//!   CRC first, then the bounds) before any byte of its message is buffered,
//!   and the buffer only ever holds bytes that arrived.
//! - Bad CRCs, impossible lengths, truncated or unknown headers and invalid
//!   UTF-8 are errors, never panics; after one, the decoder stays failed.

/// The 12-byte prelude: total length, headers length, prelude CRC.
pub const PRELUDE_LEN: usize = 12;
/// A message with no headers and no payload: prelude plus message CRC.
pub const MIN_MESSAGE_LEN: usize = PRELUDE_LEN + 4;
/// The default bound on one message. Bedrock's events are a few KiB; AWS's
/// own decoders have used 16 MiB.
pub const DEFAULT_MAX_MESSAGE_BYTES: u32 = 16 << 20;

const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// CRC-32/IEEE (the zlib/PNG one) of `data`.
pub fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c = CRC_TABLE[((c ^ u32::from(b)) & 0xFF) as usize] ^ (c >> 8);
    }
    !c
}

/// A header value, by its wire type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderValue {
    /// Types 0 (true) and 1 (false).
    Bool(bool),
    Byte(i8),
    Short(i16),
    Int(i32),
    Long(i64),
    /// Type 6: u16 length, bytes.
    Bytes(Vec<u8>),
    /// Type 7: u16 length, UTF-8.
    String(String),
    /// Type 8: milliseconds since the epoch.
    Timestamp(i64),
    Uuid([u8; 16]),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    pub value: HeaderValue,
}

/// One decoded message.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Message {
    pub headers: Vec<Header>,
    pub payload: Vec<u8>,
}

/// What a message is, from its `:message-type` and the header that goes
/// with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind<'a> {
    /// `event`, with its `:event-type` (e.g. `contentBlockDelta`).
    Event(&'a str),
    /// `exception`, with its `:exception-type` (e.g. `throttlingException`);
    /// the payload is the JSON error body.
    Exception(&'a str),
    /// `error`, with `:error-code` and `:error-message`.
    Error { code: &'a str, message: &'a str },
    /// Anything else, or a message without the headers that say.
    Unknown,
}

impl Message {
    /// The first header `name` whose value is a string.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.headers.iter().find_map(|h| match &h.value {
            HeaderValue::String(s) if h.name == name => Some(s.as_str()),
            _ => None,
        })
    }

    pub fn message_type(&self) -> Option<&str> {
        self.header_str(":message-type")
    }

    pub fn event_type(&self) -> Option<&str> {
        self.header_str(":event-type")
    }

    pub fn exception_type(&self) -> Option<&str> {
        self.header_str(":exception-type")
    }

    pub fn kind(&self) -> Kind<'_> {
        match self.message_type() {
            Some("event") => self.event_type().map_or(Kind::Unknown, Kind::Event),
            Some("exception") => self.exception_type().map_or(Kind::Unknown, Kind::Exception),
            Some("error") => Kind::Error {
                code: self.header_str(":error-code").unwrap_or(""),
                message: self.header_str(":error-message").unwrap_or(""),
            },
            _ => Kind::Unknown,
        }
    }
}

/// Why a stream cannot be decoded. No variant carries stream bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    PreludeCrc,
    MessageCrc,
    /// A total length over the decoder's limit.
    TooLarge {
        total: u32,
        max: u32,
    },
    /// A total length under 16, or headers that do not fit in it.
    BadLength,
    /// Headers that run past their length, a zero-length name, an unknown
    /// type, or a name or string value that is not UTF-8.
    BadHeader,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::PreludeCrc => f.write_str("event stream: prelude CRC mismatch"),
            DecodeError::MessageCrc => f.write_str("event stream: message CRC mismatch"),
            DecodeError::TooLarge { total, max } => {
                write!(
                    f,
                    "event stream: message of {total} bytes over the {max}-byte limit"
                )
            }
            DecodeError::BadLength => f.write_str("event stream: impossible message lengths"),
            DecodeError::BadHeader => f.write_str("event stream: malformed message headers"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// The incremental decoder.
#[derive(Debug)]
pub struct Decoder {
    max: u32,
    /// The part of a message cut across feeds (prelude first).
    buf: Vec<u8>,
    /// The total length of the message in `buf`, once its prelude is in.
    total: usize,
    failed: Option<DecodeError>,
}

impl Default for Decoder {
    fn default() -> Decoder {
        Decoder::new(DEFAULT_MAX_MESSAGE_BYTES)
    }
}

impl Decoder {
    /// A decoder that refuses any message over `max_message_bytes`.
    pub fn new(max_message_bytes: u32) -> Decoder {
        Decoder {
            max: max_message_bytes,
            buf: Vec::new(),
            total: 0,
            failed: None,
        }
    }

    /// Consumes all of `input`, calling `on_message` for each message it
    /// completes, in order. After an error every later feed gives it again.
    pub fn feed(
        &mut self,
        input: &[u8],
        mut on_message: impl FnMut(Message),
    ) -> Result<(), DecodeError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let r = self.feed_inner(input, &mut on_message);
        if let Err(e) = r {
            self.failed = Some(e);
            self.buf = Vec::new();
            self.total = 0;
        }
        r
    }

    /// True when no message is cut off: a stream that ends now ended on a
    /// message boundary (and had no error).
    pub fn is_idle(&self) -> bool {
        self.buf.is_empty() && self.failed.is_none()
    }

    /// Bytes held of a message not yet complete.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    fn feed_inner(
        &mut self,
        mut input: &[u8],
        on_message: &mut impl FnMut(Message),
    ) -> Result<(), DecodeError> {
        loop {
            if self.buf.is_empty() {
                while input.len() >= PRELUDE_LEN {
                    let total = check_prelude(&input[..PRELUDE_LEN], self.max)?;
                    if input.len() < total {
                        break;
                    }
                    on_message(parse_message(&input[..total])?);
                    input = &input[total..];
                }
            }
            if input.is_empty() {
                return Ok(());
            }
            let want = if self.total == 0 {
                PRELUDE_LEN
            } else {
                self.total
            };
            let take = (want - self.buf.len()).min(input.len());
            self.buf.extend_from_slice(&input[..take]);
            input = &input[take..];
            if self.total == 0 && self.buf.len() == PRELUDE_LEN {
                self.total = check_prelude(&self.buf, self.max)?;
            }
            if self.total != 0 && self.buf.len() == self.total {
                let message = parse_message(&self.buf)?;
                self.buf.clear();
                self.total = 0;
                on_message(message);
            }
        }
    }
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// The message's total length, once the prelude is proven and in bounds.
fn check_prelude(prelude: &[u8], max: u32) -> Result<usize, DecodeError> {
    if crc32(&prelude[..8]) != be32(&prelude[8..12]) {
        return Err(DecodeError::PreludeCrc);
    }
    let total = be32(&prelude[0..4]);
    let headers = be32(&prelude[4..8]) as usize;
    if total > max {
        return Err(DecodeError::TooLarge { total, max });
    }
    let total = total as usize;
    if total < MIN_MESSAGE_LEN || headers > total - MIN_MESSAGE_LEN {
        return Err(DecodeError::BadLength);
    }
    Ok(total)
}

/// A whole message whose prelude [`check_prelude`] accepted.
fn parse_message(m: &[u8]) -> Result<Message, DecodeError> {
    let crc_at = m.len() - 4;
    if crc32(&m[..crc_at]) != be32(&m[crc_at..]) {
        return Err(DecodeError::MessageCrc);
    }
    let headers_end = PRELUDE_LEN + be32(&m[4..8]) as usize;
    Ok(Message {
        headers: parse_headers(&m[PRELUDE_LEN..headers_end])?,
        payload: m[headers_end..crc_at].to_vec(),
    })
}

fn parse_headers(mut b: &[u8]) -> Result<Vec<Header>, DecodeError> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Result<&'a [u8], DecodeError> {
        if b.len() < n {
            return Err(DecodeError::BadHeader);
        }
        let (head, rest) = b.split_at(n);
        *b = rest;
        Ok(head)
    }
    fn fixed<const N: usize>(b: &mut &[u8]) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(take(b, N)?);
        Ok(out)
    }
    let mut headers = Vec::new();
    while !b.is_empty() {
        let name_len = take(&mut b, 1)?[0] as usize;
        if name_len == 0 {
            return Err(DecodeError::BadHeader);
        }
        let name = std::str::from_utf8(take(&mut b, name_len)?)
            .map_err(|_| DecodeError::BadHeader)?
            .to_owned();
        let value = match take(&mut b, 1)?[0] {
            0 => HeaderValue::Bool(true),
            1 => HeaderValue::Bool(false),
            2 => HeaderValue::Byte(i8::from_be_bytes(fixed(&mut b)?)),
            3 => HeaderValue::Short(i16::from_be_bytes(fixed(&mut b)?)),
            4 => HeaderValue::Int(i32::from_be_bytes(fixed(&mut b)?)),
            5 => HeaderValue::Long(i64::from_be_bytes(fixed(&mut b)?)),
            t @ (6 | 7) => {
                let len = u16::from_be_bytes(fixed(&mut b)?) as usize;
                let bytes = take(&mut b, len)?;
                if t == 6 {
                    HeaderValue::Bytes(bytes.to_vec())
                } else {
                    let s = std::str::from_utf8(bytes).map_err(|_| DecodeError::BadHeader)?;
                    HeaderValue::String(s.to_owned())
                }
            }
            8 => HeaderValue::Timestamp(i64::from_be_bytes(fixed(&mut b)?)),
            9 => HeaderValue::Uuid(fixed(&mut b)?),
            _ => return Err(DecodeError::BadHeader),
        };
        headers.push(Header { name, value });
    }
    Ok(headers)
}

/// The wire form of `message`; `None` when it cannot be framed (an empty or
/// over-255-byte name, a value over 65535 bytes, a message over 4 GiB).
pub fn encode(message: &Message) -> Option<Vec<u8>> {
    let mut headers = Vec::new();
    for h in &message.headers {
        let name = h.name.as_bytes();
        if name.is_empty() || name.len() > 255 {
            return None;
        }
        headers.push(name.len() as u8);
        headers.extend_from_slice(name);
        let var = |out: &mut Vec<u8>, t: u8, bytes: &[u8]| -> Option<()> {
            out.push(t);
            out.extend_from_slice(&u16::try_from(bytes.len()).ok()?.to_be_bytes());
            out.extend_from_slice(bytes);
            Some(())
        };
        match &h.value {
            HeaderValue::Bool(true) => headers.push(0),
            HeaderValue::Bool(false) => headers.push(1),
            HeaderValue::Byte(v) => {
                headers.push(2);
                headers.extend_from_slice(&v.to_be_bytes());
            }
            HeaderValue::Short(v) => {
                headers.push(3);
                headers.extend_from_slice(&v.to_be_bytes());
            }
            HeaderValue::Int(v) => {
                headers.push(4);
                headers.extend_from_slice(&v.to_be_bytes());
            }
            HeaderValue::Long(v) => {
                headers.push(5);
                headers.extend_from_slice(&v.to_be_bytes());
            }
            HeaderValue::Bytes(v) => var(&mut headers, 6, v)?,
            HeaderValue::String(v) => var(&mut headers, 7, v.as_bytes())?,
            HeaderValue::Timestamp(v) => {
                headers.push(8);
                headers.extend_from_slice(&v.to_be_bytes());
            }
            HeaderValue::Uuid(v) => {
                headers.push(9);
                headers.extend_from_slice(v);
            }
        }
    }
    let total = u32::try_from(MIN_MESSAGE_LEN + headers.len() + message.payload.len()).ok()?;
    let mut out = Vec::with_capacity(total as usize);
    out.extend_from_slice(&total.to_be_bytes());
    out.extend_from_slice(&(headers.len() as u32).to_be_bytes());
    out.extend_from_slice(&crc32(&out).to_be_bytes());
    out.extend_from_slice(&headers);
    out.extend_from_slice(&message.payload);
    out.extend_from_slice(&crc32(&out).to_be_bytes());
    Some(out)
}

/// A Bedrock-shaped event: `:event-type`, `:content-type` JSON,
/// `:message-type` event, and `payload`.
pub fn event(event_type: &str, payload: &[u8]) -> Message {
    let s = |name: &str, v: &str| Header {
        name: name.to_owned(),
        value: HeaderValue::String(v.to_owned()),
    };
    Message {
        headers: vec![
            s(":event-type", event_type),
            s(":content-type", "application/json"),
            s(":message-type", "event"),
        ],
        payload: payload.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// From aws-c-event-stream's tests (`multiple_valid_messages_parse`):
    /// an empty message, one with payload `{'foo':'bar'}`, and the same with
    /// a `content-type: application/json` string header.
    const AWS_MULTI: &[u8] = &[
        0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x05, 0xc2, 0x48, 0xeb, 0x7d, 0x98, 0xc8,
        0xff, //
        0x00, 0x00, 0x00, 0x1D, 0x00, 0x00, 0x00, 0x00, 0xfd, 0x52, 0x8c, 0x5a, 0x7b, 0x27, 0x66,
        0x6f, 0x6f, 0x27, 0x3a, 0x27, 0x62, 0x61, 0x72, 0x27, 0x7d, 0xc3, 0x65, 0x39, 0x36, //
        0x00, 0x00, 0x00, 0x3D, 0x00, 0x00, 0x00, 0x20, 0x07, 0xFD, 0x83, 0x96, 0x0C, b'c', b'o',
        b'n', b't', b'e', b'n', b't', b'-', b't', b'y', b'p', b'e', 0x07, 0x00, 0x10, b'a', b'p',
        b'p', b'l', b'i', b'c', b'a', b't', b'i', b'o', b'n', b'/', b'j', b's', b'o', b'n', 0x7b,
        0x27, 0x66, 0x6f, 0x6f, 0x27, 0x3a, 0x27, 0x62, 0x61, 0x72, 0x27, 0x7d, 0x8D, 0x9C, 0x08,
        0xB1,
    ];

    fn aws_multi_messages() -> Vec<Message> {
        let payload = b"{'foo':'bar'}".to_vec();
        vec![
            Message::default(),
            Message {
                headers: vec![],
                payload: payload.clone(),
            },
            Message {
                headers: vec![Header {
                    name: "content-type".into(),
                    value: HeaderValue::String("application/json".into()),
                }],
                payload,
            },
        ]
    }

    fn decode_in(input: &[u8], piece: usize, max: u32) -> (Vec<Message>, Result<(), DecodeError>) {
        let mut d = Decoder::new(max);
        let mut out = Vec::new();
        for chunk in input.chunks(piece.max(1)) {
            if let Err(e) = d.feed(chunk, |m| out.push(m)) {
                return (out, Err(e));
            }
        }
        (out, Ok(()))
    }

    #[test]
    fn crc32_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn aws_vectors_decode_under_every_split() {
        for piece in 1..=AWS_MULTI.len() {
            let (got, r) = decode_in(AWS_MULTI, piece, DEFAULT_MAX_MESSAGE_BYTES);
            assert_eq!(r, Ok(()), "piece {piece}");
            assert_eq!(got, aws_multi_messages(), "piece {piece}");
        }
    }

    #[test]
    fn encoder_reproduces_the_aws_vectors() {
        let encoded: Vec<u8> = aws_multi_messages()
            .iter()
            .flat_map(|m| encode(m).unwrap())
            .collect();
        assert_eq!(encoded, AWS_MULTI);
    }

    #[test]
    fn a_flipped_bit_in_prelude_or_body_is_caught() {
        // aws-c-event-stream's `corrupted_crc_fails`: the 10th byte flipped.
        let mut bad = AWS_MULTI[..16].to_vec();
        bad[9] ^= 0x01;
        assert_eq!(
            decode_in(&bad, 16, DEFAULT_MAX_MESSAGE_BYTES).1,
            Err(DecodeError::PreludeCrc)
        );
        let mut bad = AWS_MULTI[16..45].to_vec();
        bad[20] ^= 0x40;
        assert_eq!(
            decode_in(&bad, 1, DEFAULT_MAX_MESSAGE_BYTES).1,
            Err(DecodeError::MessageCrc)
        );
    }

    #[test]
    fn over_the_limit_is_refused_from_the_prelude_alone() {
        // aws-c-event-stream's `large_msg_success` prelude: 16 MiB + 1 total.
        let prelude = [0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0x94, 0xE8, 0xF6, 0x47];
        let mut d = Decoder::default();
        let r = d.feed(&prelude, |_| panic!("no message"));
        assert_eq!(
            r,
            Err(DecodeError::TooLarge {
                total: 0x0100_0001,
                max: DEFAULT_MAX_MESSAGE_BYTES
            })
        );
        assert_eq!(d.buffered(), 0);
        // And the decoder stays failed, even given a good message.
        assert_eq!(
            d.feed(&AWS_MULTI[..16], |_| panic!("no message")),
            Err(r.unwrap_err())
        );
        assert!(!d.is_idle());
    }

    #[test]
    fn impossible_lengths_are_refused() {
        let prelude = |total: u32, headers: u32| {
            let mut p = total.to_be_bytes().to_vec();
            p.extend_from_slice(&headers.to_be_bytes());
            let crc = crc32(&p);
            p.extend_from_slice(&crc.to_be_bytes());
            p
        };
        for (total, headers) in [(0, 0), (15, 0), (16, 1), (20, 5), (100, u32::MAX)] {
            assert_eq!(
                decode_in(&prelude(total, headers), 1, DEFAULT_MAX_MESSAGE_BYTES).1,
                Err(DecodeError::BadLength),
                "{total} {headers}"
            );
        }
        assert_eq!(
            decode_in(&prelude(16, 0), 1, 15).1,
            Err(DecodeError::TooLarge { total: 16, max: 15 })
        );
    }

    #[test]
    fn malformed_headers_are_refused() {
        let framed = |headers: &[u8]| {
            let total = (MIN_MESSAGE_LEN + headers.len()) as u32;
            let mut m = total.to_be_bytes().to_vec();
            m.extend_from_slice(&(headers.len() as u32).to_be_bytes());
            let crc = crc32(&m);
            m.extend_from_slice(&crc.to_be_bytes());
            m.extend_from_slice(headers);
            let crc = crc32(&m);
            m.extend_from_slice(&crc.to_be_bytes());
            m
        };
        let cases: [&[u8]; 6] = [
            &[0, 7],                   // zero-length name
            &[1, b'a'],                // no type
            &[1, b'a', 10],            // unknown type
            &[1, b'a', 7, 0, 5, b'x'], // string runs past the headers
            &[1, b'a', 7, 0, 1, 0xFF], // string not UTF-8
            &[1, b'a', 4, 0, 0, 0],    // int cut short
        ];
        for h in cases {
            assert_eq!(
                decode_in(&framed(h), 3, DEFAULT_MAX_MESSAGE_BYTES).1,
                Err(DecodeError::BadHeader),
                "{h:?}"
            );
        }
        // Every type, each skipped by its own length, then the string.
        let all = [
            &[1, b'a', 0][..],
            &[1, b'b', 1],
            &[1, b'c', 2, 0xFF],
            &[1, b'd', 3, 0, 1],
            &[1, b'e', 4, 0, 0, 0, 2],
            &[1, b'f', 5, 0, 0, 0, 0, 0, 0, 0, 3],
            &[1, b'g', 6, 0, 2, 0xFE, 0xFF],
            &[1, b'h', 8, 0, 0, 0, 0, 0, 0, 0, 4],
            &[
                1, b'i', 9, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
            ],
            &[
                11, b':', b'e', b'v', b'e', b'n', b't', b'-', b't', b'y', b'p', b'e', 7, 0, 2,
                b'o', b'k',
            ],
        ]
        .concat();
        let (got, r) = decode_in(&framed(&all), 1, DEFAULT_MAX_MESSAGE_BYTES);
        assert_eq!(r, Ok(()));
        let values: Vec<_> = got[0].headers.iter().map(|h| h.value.clone()).collect();
        assert_eq!(
            values,
            [
                HeaderValue::Bool(true),
                HeaderValue::Bool(false),
                HeaderValue::Byte(-1),
                HeaderValue::Short(1),
                HeaderValue::Int(2),
                HeaderValue::Long(3),
                HeaderValue::Bytes(vec![0xFE, 0xFF]),
                HeaderValue::Timestamp(4),
                HeaderValue::Uuid([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]),
                HeaderValue::String("ok".into()),
            ]
        );
        assert_eq!(got[0].event_type(), Some("ok"));
    }

    #[test]
    fn kinds_of_bedrock_messages() {
        let delta = event(
            "contentBlockDelta",
            br#"{"delta":{"text":"Hi"},"contentBlockIndex":0}"#,
        );
        let bytes = encode(&delta).unwrap();
        let (got, r) = decode_in(&bytes, 1, DEFAULT_MAX_MESSAGE_BYTES);
        assert_eq!(r, Ok(()));
        assert_eq!(got, [delta]);
        assert_eq!(got[0].kind(), Kind::Event("contentBlockDelta"));
        let s = |n: &str, v: &str| Header {
            name: n.into(),
            value: HeaderValue::String(v.into()),
        };
        let exc = Message {
            headers: vec![
                s(":message-type", "exception"),
                s(":exception-type", "throttlingException"),
            ],
            payload: br#"{"message":"slow down"}"#.to_vec(),
        };
        assert_eq!(exc.kind(), Kind::Exception("throttlingException"));
        let err = Message {
            headers: vec![
                s(":message-type", "error"),
                s(":error-code", "InternalFailure"),
                s(":error-message", "x"),
            ],
            payload: vec![],
        };
        assert_eq!(
            err.kind(),
            Kind::Error {
                code: "InternalFailure",
                message: "x"
            }
        );
        assert_eq!(Message::default().kind(), Kind::Unknown);
    }

    #[test]
    fn idle_only_on_a_message_boundary() {
        let mut d = Decoder::default();
        let mut n = 0;
        d.feed(&AWS_MULTI[..20], |_| n += 1).unwrap();
        assert_eq!((n, d.is_idle(), d.buffered()), (1, false, 4));
        d.feed(&AWS_MULTI[20..45], |_| n += 1).unwrap();
        assert_eq!((n, d.is_idle()), (2, true));
    }

    #[test]
    fn encode_refuses_what_cannot_be_framed() {
        let with = |name: &str, value: HeaderValue| Message {
            headers: vec![Header {
                name: name.into(),
                value,
            }],
            payload: vec![],
        };
        assert_eq!(encode(&with("", HeaderValue::Bool(true))), None);
        assert_eq!(
            encode(&with(&"n".repeat(256), HeaderValue::Bool(true))),
            None
        );
        assert_eq!(
            encode(&with("n", HeaderValue::Bytes(vec![0; 65_536]))),
            None
        );
        assert!(encode(&with(&"n".repeat(255), HeaderValue::Bytes(vec![0; 65_535]))).is_some());
    }
}
