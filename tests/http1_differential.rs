//! Differential tests: our head parser against httparse 1.10 (defaults) on
//! arbitrary bytes and on near-valid heads, and the incremental
//! `HeadScanner` against the one-shot parse under random splits.

use proptest::prelude::*;
use shardgate::http1::parse::{
    parse_request, parse_response, HeadError, HeadLimits, HeadScanner, HeaderSpan, Parsed,
    RequestHead, ResponseHead,
};

const MAX_HEADERS: usize = 8;

fn no_size_limit() -> HeadLimits {
    HeadLimits {
        max_head_bytes: usize::MAX,
        max_headers: MAX_HEADERS,
    }
}

fn offset(buf: &[u8], part: &[u8]) -> usize {
    part.as_ptr() as usize - buf.as_ptr() as usize
}

fn assert_same_headers(buf: &[u8], ours: &[HeaderSpan], theirs: &[httparse::Header<'_>]) {
    assert_eq!(ours.len(), theirs.len(), "header count");
    for (o, t) in ours.iter().zip(theirs) {
        assert_eq!(o.name.get(buf), t.name.as_bytes());
        assert_eq!(o.name.start as usize, offset(buf, t.name.as_bytes()));
        assert_eq!(o.value.get(buf), t.value);
        assert_eq!(o.value.start as usize, offset(buf, t.value), "value offset");
    }
}

/// Both parsers agree on the outcome, and on every span when they accept.
fn check_request(buf: &[u8]) {
    let mut head = RequestHead::default();
    let ours = parse_request(buf, &no_size_limit(), &mut head);
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut theirs = httparse::Request::new(&mut slots);
    match (ours, theirs.parse(buf)) {
        (Ok(Parsed::Complete), Ok(httparse::Status::Complete(len))) => {
            assert_eq!(head.head_len, len);
            assert_eq!(head.method.get(buf), theirs.method.unwrap().as_bytes());
            assert_eq!(head.target.get(buf), theirs.path.unwrap().as_bytes());
            assert_eq!(
                head.target.start as usize,
                offset(buf, theirs.path.unwrap().as_bytes())
            );
            assert_eq!(head.minor_version, theirs.version.unwrap());
            assert_same_headers(buf, &head.headers, theirs.headers);
        }
        (Ok(Parsed::Partial), Ok(httparse::Status::Partial)) => {}
        (Err(HeadError::TooManyHeaders), Err(httparse::Error::TooManyHeaders)) => {}
        (Err(HeadError::Invalid(_)), Err(e)) if e != httparse::Error::TooManyHeaders => {}
        (ours, theirs) => panic!("disagree on {buf:?}: ours {ours:?}, httparse {theirs:?}"),
    }
}

fn check_response(buf: &[u8]) {
    let mut head = ResponseHead::default();
    let ours = parse_response(buf, &no_size_limit(), &mut head);
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut theirs = httparse::Response::new(&mut slots);
    match (ours, theirs.parse(buf)) {
        (Ok(Parsed::Complete), Ok(httparse::Status::Complete(len))) => {
            assert_eq!(head.head_len, len);
            assert_eq!(head.minor_version, theirs.version.unwrap());
            assert_eq!(head.status, theirs.code.unwrap());
            let reason = head.reason.get(buf);
            // httparse blanks a reason holding obs-text; we keep the bytes.
            if reason.is_ascii() {
                assert_eq!(reason, theirs.reason.unwrap().as_bytes());
            } else {
                assert_eq!(theirs.reason, Some(""));
            }
            assert_same_headers(buf, &head.headers, theirs.headers);
        }
        (Ok(Parsed::Partial), Ok(httparse::Status::Partial)) => {}
        (Err(HeadError::TooManyHeaders), Err(httparse::Error::TooManyHeaders)) => {}
        (Err(HeadError::Invalid(_)), Err(e)) if e != httparse::Error::TooManyHeaders => {}
        (ours, theirs) => panic!("disagree on {buf:?}: ours {ours:?}, httparse {theirs:?}"),
    }
}

/// Growing prefixes of `buf` ending at `cuts` (any values) and then at its end.
fn prefixes(buf: &[u8], cuts: &[usize]) -> Vec<usize> {
    let mut ends: Vec<usize> = cuts.iter().map(|c| c % (buf.len() + 1)).collect();
    ends.sort_unstable();
    ends.push(buf.len());
    ends
}

/// Feeds `buf` to a scanner in growing prefixes; the final answer (and the
/// head, when complete) must equal the one-shot parse of the whole buffer.
fn check_scanner_splits(buf: &[u8], cuts: &[usize], limits: &HeadLimits) {
    let mut whole = RequestHead::default();
    let expected = parse_request(buf, limits, &mut whole);
    let mut scanner = HeadScanner::default();
    // A head left over from another message: the scanner must clear it.
    let mut head = RequestHead {
        headers: vec![HeaderSpan::default(); 3],
        ..Default::default()
    };
    let mut last = Ok(Parsed::Partial);
    for end in prefixes(buf, cuts) {
        last = scanner.request(&buf[..end], limits, &mut head);
        if last != Ok(Parsed::Partial) {
            break;
        }
    }
    assert_eq!(last, expected, "request scanner on {buf:?}");
    if expected == Ok(Parsed::Complete) {
        assert_eq!(
            (
                head.method,
                head.target,
                head.minor_version,
                &head.headers,
                head.head_len
            ),
            (
                whole.method,
                whole.target,
                whole.minor_version,
                &whole.headers,
                whole.head_len
            )
        );
    }

    let mut whole = ResponseHead::default();
    let expected = parse_response(buf, limits, &mut whole);
    scanner.reset();
    let mut head = ResponseHead::default();
    let mut last = Ok(Parsed::Partial);
    for end in prefixes(buf, cuts) {
        last = scanner.response(&buf[..end], limits, &mut head);
        if last != Ok(Parsed::Partial) {
            break;
        }
    }
    assert_eq!(last, expected, "response scanner on {buf:?}");
    if expected == Ok(Parsed::Complete) {
        assert_eq!(
            (
                head.status,
                head.reason,
                head.minor_version,
                &head.headers,
                head.head_len
            ),
            (
                whole.status,
                whole.reason,
                whole.minor_version,
                &whole.headers,
                whole.head_len
            )
        );
    }
}

/// Pieces heads are made of, valid and not, so random concatenations land
/// near the grammar's edges (bad bytes in each element, bare CR/LF, obs-text,
/// whitespace before colons, folded lines, unknown versions).
fn piece() -> impl Strategy<Value = Vec<u8>> {
    let fixed = prop::sample::select(vec![
        &b"GET "[..],
        b"POST ",
        b"P(ST ",
        b" ",
        b"  ",
        b"/",
        b"/v1/chat/completions?x=1",
        b"*",
        b"http://a.b/c",
        b"/\xc3\xa9",
        b"/\xff",
        b"/\x7f",
        b"HTTP/1.1",
        b"HTTP/1.0",
        b"HTTP/1.2",
        b"HTTP/2.0",
        b"http/1.1",
        b"HTTP/1.",
        b"\r\n",
        b"\n",
        b"\r",
        b"\r\r\n",
        b"200",
        b"20",
        b"2x0",
        b" OK",
        b" Not \xe9 Found",
        b"Host",
        b"Host:",
        b": ",
        b":",
        b"Content-Length: 5",
        b"X-A: b ",
        b"X-A:\t b\t \t",
        b"X-Empty:",
        b"X-Empty:  \t",
        b"Na me: v",
        b"Name : v",
        b"Name\x00: v",
        b"V: \x01",
        b"V: a\x7fb",
        b"V: \x80\xff",
        b" folded",
        b"\tfolded",
        b"\0",
        b"{",
        b"@",
    ])
    .prop_map(<[u8]>::to_vec);
    prop_oneof![4 => fixed, 1 => prop::collection::vec(any::<u8>(), 0..4)]
}

fn near_valid_request() -> impl Strategy<Value = Vec<u8>> {
    let start = prop::sample::select(vec![
        &b"GET / HTTP/1.1\r\n"[..],
        b"POST /v1/chat/completions HTTP/1.1\r\n",
        b"\r\nGET /a HTTP/1.0\n",
        b"HTTP/1.1 200 OK\r\n",
        b"HTTP/1.0 404\n",
        b"HTTP/1.1 101 \r\n",
        b"",
    ]);
    (start, prop::collection::vec(piece(), 0..16), any::<bool>()).prop_map(
        |(start, pieces, end_head)| {
            let mut buf = start.to_vec();
            for piece in pieces {
                buf.extend_from_slice(&piece);
            }
            if end_head {
                buf.extend_from_slice(b"\r\n\r\nbody");
            }
            buf
        },
    )
}

fn one_of(options: &[&'static [u8]]) -> impl Strategy<Value = &'static [u8]> {
    prop::sample::select(options.to_vec())
}

/// A head built element by element, each element drawn from valid and
/// invalid spellings, then maybe one byte overwritten and maybe truncated.
fn structured_head() -> impl Strategy<Value = Vec<u8>> {
    let eol = || one_of(&[b"\r\n", b"\r\n", b"\n", b"\r", b"\n\r"]);
    let start_line = prop_oneof![
        (
            one_of(&[
                b"GET",
                b"POST",
                b"M-SEARCH",
                b"",
                b"GE T",
                b"G\x7f",
                b"\xc3\xa9"
            ]),
            one_of(&[b" ", b" ", b"  ", b"\t"]),
            one_of(&[
                b"/",
                b"/a?b=c#d",
                b"*",
                b"",
                b"/\x7f",
                b"/\x01",
                b"/\xc3\xa9",
                b"/\xe9"
            ]),
            one_of(&[b" ", b" ", b"  "]),
            one_of(&[
                b"HTTP/1.1",
                b"HTTP/1.0",
                b"HTTP/1.2",
                b"HTTP/1",
                b"HTTP/1.1 "
            ]),
        )
            .prop_map(|(m, s1, t, s2, v)| [m, s1, t, s2, v].concat()),
        (
            one_of(&[b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0"]),
            one_of(&[b" ", b"  ", b""]),
            one_of(&[b"200", b"101", b"99", b"2000", b"abc"]),
            one_of(&[b" OK", b" ", b"", b" \xe9t\xe9", b" a\tb", b" a\x7f", b"x"]),
        )
            .prop_map(|(v, s, c, r)| [v, s, c, r].concat()),
    ];
    let field = (
        one_of(&[
            b"Host",
            b"content-length",
            b"X-1!#$%&'*+-.^_`|~",
            b"",
            b"Na me",
            b"N\x00",
            b"\xe9",
        ]),
        one_of(&[b":", b": ", b":\t", b" :", b"", b"::"]),
        one_of(&[
            b"v",
            b"a b",
            b"  trailing \t ",
            b"",
            b"\xe9\xff",
            b"a\x7f",
            b"a\x01b",
            b"a\rb",
        ]),
        eol(),
    )
        .prop_map(|(n, c, v, e)| [n, c, v, e].concat());
    (
        one_of(&[b"", b"", b"\r\n", b"\n\n", b"\r"]),
        start_line,
        eol(),
        prop::collection::vec(field, 0..10),
        one_of(&[b"\r\n", b"\n", b"", b" x\r\n"]),
        prop::option::of((any::<prop::sample::Index>(), any::<u8>())),
        prop::option::of(any::<prop::sample::Index>()),
    )
        .prop_map(|(lead, start, eol, fields, end, flip, cut)| {
            let mut buf = [lead, &start, eol].concat();
            fields.iter().for_each(|f| buf.extend_from_slice(f));
            buf.extend_from_slice(end);
            buf.extend_from_slice(b"{\"model\":1}");
            if let Some((at, byte)) = flip {
                let at = at.index(buf.len());
                buf[at] = byte;
            }
            if let Some(cut) = cut {
                buf.truncate(cut.index(buf.len() + 1));
            }
            buf
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_match_httparse(buf in prop::collection::vec(any::<u8>(), 0..64)) {
        check_request(&buf);
        check_response(&buf);
    }

    #[test]
    fn near_valid_heads_match_httparse(buf in near_valid_request()) {
        check_request(&buf);
        check_response(&buf);
    }

    #[test]
    fn structured_heads_match_httparse(buf in structured_head()) {
        check_request(&buf);
        check_response(&buf);
    }

    #[test]
    fn scanner_splits_match_one_shot(
        buf in prop_oneof![near_valid_request(), structured_head()],
        cuts in prop::collection::vec(any::<usize>(), 0..8),
        max_head_bytes in prop_oneof![Just(usize::MAX), 0usize..96],
        max_headers in 0usize..6,
    ) {
        check_scanner_splits(&buf, &cuts, &HeadLimits { max_head_bytes, max_headers });
    }
}

#[test]
fn scanner_byte_by_byte_matches_one_shot() {
    let buf = b"\r\nPOST /v1/chat/completions HTTP/1.1\r\nHost: api\r\nX-Empty:\r\nContent-Type: application/json \r\n\r\n{}";
    let every_byte: Vec<usize> = (0..buf.len()).collect();
    check_scanner_splits(buf, &every_byte, &HeadLimits::default());
}
