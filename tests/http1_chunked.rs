//! The chunked decoder: valid bodies under every split, and each way a
//! chunked body can be malformed.

use proptest::prelude::*;
use shardgate::http1::chunked::{ChunkError, ChunkLimits, ChunkProgress, ChunkedDecoder};

/// Feeds `input` in pieces ending at `ends`; returns the payload, the bytes
/// consumed in all, and the final result.
fn decode_split(
    input: &[u8],
    ends: &[usize],
    limits: ChunkLimits,
) -> (Vec<u8>, usize, Result<bool, ChunkError>) {
    let mut decoder = ChunkedDecoder::new(limits);
    let mut payload = Vec::new();
    let mut consumed = 0;
    let mut start = 0;
    for &end in ends.iter().chain([&input.len()]) {
        let end = end.clamp(start, input.len());
        match decoder.feed(&input[start..end], |data| payload.extend_from_slice(data)) {
            Ok(ChunkProgress { consumed: n, done }) => {
                consumed += n;
                if done {
                    assert!(decoder.is_done());
                    return (payload, consumed, Ok(true));
                }
                assert_eq!(n, end - start, "a body not done consumes all it is given");
            }
            // Where it stopped inside a bad body is of no use to anyone.
            Err(e) => return (payload, 0, Err(e)),
        }
        start = end;
    }
    (payload, consumed, Ok(false))
}

fn decode(input: &[u8]) -> (Vec<u8>, usize, Result<bool, ChunkError>) {
    decode_split(input, &[], ChunkLimits::default())
}

#[test]
fn valid_bodies() {
    let cases: [(&[u8], &[u8]); 8] = [
        (b"0\r\n\r\n", b""),
        (b"5\r\nhello\r\n0\r\n\r\n", b"hello"),
        (b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", b"hello world"),
        (b"A\r\n0123456789\r\n0\r\n\r\n", b"0123456789"),
        (b"000003\r\nabc\r\n00\r\n\r\n", b"abc"),
        (b"3;name=value;flag\r\nabc\r\n0;last\r\n\r\n", b"abc"),
        (b"3 \t;ext=\"q s\"\r\nabc\r\n0\r\n\r\n", b"abc"),
        (
            b"3\r\nabc\r\n0\r\nExpires: never\r\nX-Usage: 12 tokens\r\n\r\n",
            b"abc",
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(
            decode(input),
            (expected.to_vec(), input.len(), Ok(true)),
            "{input:?}"
        );
    }
}

#[test]
fn malformed_bodies() {
    let invalid = |reason| Err(ChunkError::Invalid(reason));
    let cases: [(&[u8], Result<bool, ChunkError>); 19] = [
        (b"\r\n", invalid("chunk size is not hex")),
        (b"g\r\n", invalid("chunk size is not hex")),
        (b"-1\r\n", invalid("chunk size is not hex")),
        (b" 5\r\n", invalid("chunk size is not hex")),
        (b"0x5\r\n", invalid("invalid byte after chunk size")),
        (b"5\nhello\r\n", invalid("invalid byte after chunk size")),
        (b"5\r\r\n", invalid("chunk size line not ended by CRLF")),
        (b"5;a\nb\r\n", invalid("invalid byte in chunk extension")),
        (b"5;a\x00\r\n", invalid("invalid byte in chunk extension")),
        (
            b"5;a=\"open\r\nhello\r\n0\r\n\r\n",
            invalid("unterminated quoted string in chunk extension"),
        ),
        (b"5;a@b\r\n", invalid("invalid byte in chunk extension")),
        (b"5;=b\r\n", invalid("empty chunk extension name")),
        (
            b"5\r\nhelloX\r\n",
            invalid("chunk data not followed by CRLF"),
        ),
        (
            b"5\r\nhello\n0\r\n\r\n",
            invalid("chunk data not followed by CRLF"),
        ),
        (
            b"5\r\nhello\r0\r\n\r\n",
            invalid("chunk data not followed by CRLF"),
        ),
        (b"0\r\n\n", invalid("invalid trailer field name")),
        (
            b"0\r\n folded: x\r\n\r\n",
            invalid("invalid trailer field name"),
        ),
        (
            b"0\r\nX-A: b\nc\r\n\r\n",
            invalid("invalid trailer field value"),
        ),
        (b"10000000000000000\r\n", Err(ChunkError::SizeOverflow)),
    ];
    for (input, expected) in cases {
        assert_eq!(decode(input).2, expected, "{input:?}");
    }
    assert_eq!(
        decode(b"ffffffffffffffff\r\nab").2,
        Ok(false),
        "u64::MAX itself is a size"
    );
}

#[test]
fn limits_bound_the_framing_not_the_payload() {
    let limits = ChunkLimits {
        max_line_bytes: 8,
        max_trailer_bytes: 12,
        ..ChunkLimits::default()
    };
    let decode = |input: &[u8]| decode_split(input, &[], limits).2;
    assert_eq!(
        decode(b"5;abcdef\r\nhello\r\n0\r\n\r\n"),
        Ok(true),
        "8 bytes of size line"
    );
    assert_eq!(decode(b"5;abcdefg\r\n"), Err(ChunkError::LineTooLong));
    assert_eq!(decode(b"0000000005\r\n"), Err(ChunkError::LineTooLong));
    assert_eq!(
        decode(b"0\r\nA: 12345\r\n\r\n"),
        Ok(true),
        "12 bytes of trailers, the limit"
    );
    assert_eq!(
        decode(b"0\r\nA: 123456\r\n\r\n"),
        Err(ChunkError::TrailersTooLarge)
    );
    let mut big = b"1000\r\n".to_vec();
    big.extend_from_slice(&[b'x'; 0x1000]);
    big.extend_from_slice(b"\r\n0\r\n\r\n");
    assert_eq!(decode(&big), Ok(true));
}

#[test]
fn stops_exactly_at_the_end_of_the_message() {
    let input = b"3\r\nabc\r\n0\r\n\r\nPOST / HTTP/1.1\r\n";
    let body_len = b"3\r\nabc\r\n0\r\n\r\n".len();
    for split in 0..input.len() {
        assert_eq!(
            decode_split(input, &[split], ChunkLimits::default()),
            (b"abc".to_vec(), body_len, Ok(true))
        );
    }
    let mut decoder = ChunkedDecoder::new(ChunkLimits::default());
    assert_eq!(
        decoder.feed(input, |_| {}),
        Ok(ChunkProgress {
            consumed: body_len,
            done: true
        })
    );
    assert_eq!(
        decoder.feed(b"more", |_| panic!("no data after done")),
        Ok(ChunkProgress {
            consumed: 0,
            done: true
        })
    );
    decoder.reset();
    assert!(!decoder.is_done());
    assert_eq!(
        decoder.feed(b"0\r\n\r\n", |_| {}),
        Ok(ChunkProgress {
            consumed: 5,
            done: true
        })
    );
}

#[test]
fn payload_is_borrowed_from_the_input() {
    let input = b"5\r\nhello\r\n0\r\n\r\n";
    let mut decoder = ChunkedDecoder::new(ChunkLimits::default());
    let mut runs = Vec::new();
    decoder
        .feed(input, |data| {
            runs.push(data.as_ptr() as usize - input.as_ptr() as usize)
        })
        .unwrap();
    assert_eq!(runs, [3]);
}

#[test]
fn errors_stick_until_reset() {
    let mut decoder = ChunkedDecoder::new(ChunkLimits::default());
    assert_eq!(
        decoder.feed(b"z", |_| {}),
        Err(ChunkError::Invalid("chunk size is not hex"))
    );
    assert_eq!(
        decoder.feed(b"0\r\n\r\n", |_| {}),
        Err(ChunkError::Invalid("chunk size is not hex"))
    );
}

/// A chunked body of these chunks (with extensions and trailers sometimes).
fn body(chunks: &[Vec<u8>], extensions: bool, trailers: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in chunks.iter().filter(|c| !c.is_empty()) {
        out.extend_from_slice(format!("{:X}", chunk.len()).as_bytes());
        if extensions {
            // A quoted string holding what would end it or the line if the
            // decoder lost its place: an escaped quote, `;`, `=`.
            out.extend_from_slice(b" ; a=b;q = \"x\\\"y;z=\" ;flag");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n");
    if trailers {
        out.extend_from_slice(b"X-Trailer: yes\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

proptest! {
    #[test]
    fn any_split_decodes_the_same(
        chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 0..6),
        extensions in any::<bool>(),
        trailers in any::<bool>(),
        ends in prop::collection::vec(0usize..300, 0..10),
        next_message in prop::collection::vec(any::<u8>(), 0..8),
    ) {
        let encoded = body(&chunks, extensions, trailers);
        let input = [&encoded[..], &next_message].concat();
        let mut ends = ends;
        ends.sort_unstable();
        let expected = (chunks.concat(), encoded.len(), Ok(true));
        prop_assert_eq!(decode_split(&input, &ends, ChunkLimits::default()), expected.clone());
        let every_byte: Vec<usize> = (0..input.len()).collect();
        prop_assert_eq!(decode_split(&input, &every_byte, ChunkLimits::default()), expected);
    }

    #[test]
    fn garbage_gives_the_same_verdict_under_any_split(
        input in prop::collection::vec(prop::sample::select(b"0123456789abcdefxX;= \t\r\n:".to_vec()), 0..40),
        ends in prop::collection::vec(0usize..40, 0..6),
    ) {
        let mut ends = ends;
        ends.sort_unstable();
        let limits = ChunkLimits { max_line_bytes: 10, max_trailer_bytes: 16, ..ChunkLimits::default() };
        prop_assert_eq!(decode_split(&input, &ends, limits), decode_split(&input, &[], limits));
    }
}
