//! Head parsing: limits, lookups and scanner behaviour that httparse has no
//! opinion on (the syntax itself is covered by `http1_differential.rs`).

use shardgate::http1::parse::{
    parse_request, parse_response, HeadError, HeadLimits, HeadScanner, Parsed, RequestHead,
    ResponseHead,
};

const CHAT: &[u8] = b"POST /v1/chat/completions HTTP/1.1\r\nHost: api.example.com\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";

fn limits(max_head_bytes: usize, max_headers: usize) -> HeadLimits {
    HeadLimits {
        max_head_bytes,
        max_headers,
    }
}

#[test]
fn limits_are_enforced_on_the_head_not_the_buffer() {
    let head_len = CHAT.len() - 2;
    type Case = (
        &'static str,
        &'static [u8],
        HeadLimits,
        Result<Parsed, HeadError>,
    );
    let cases: &[Case] = &[
        (
            "fits exactly, body past the limit",
            CHAT,
            limits(head_len, 3),
            Ok(Parsed::Complete),
        ),
        (
            "one byte short",
            CHAT,
            limits(head_len - 1, 3),
            Err(HeadError::TooLarge),
        ),
        (
            "partial within the limit",
            &CHAT[..40],
            limits(40, 3),
            Ok(Parsed::Partial),
        ),
        (
            "partial past the limit",
            &CHAT[..41],
            limits(40, 3),
            Err(HeadError::TooLarge),
        ),
        (
            "one header too many",
            CHAT,
            limits(1024, 2),
            Err(HeadError::TooManyHeaders),
        ),
        (
            "no headers allowed",
            CHAT,
            limits(1024, 0),
            Err(HeadError::TooManyHeaders),
        ),
        (
            "syntax error inside the limit wins",
            b"GET /\x01 HTTP/1.1\r\n\r\n",
            limits(8, 3),
            Err(HeadError::Invalid("invalid request target")),
        ),
    ];
    for (name, buf, limits, expected) in cases {
        let mut head = RequestHead::default();
        assert_eq!(parse_request(buf, limits, &mut head), *expected, "{name}");
    }
}

#[test]
fn lookups_ignore_ascii_case_and_return_the_first_match() {
    let buf = b"HTTP/1.1 200 OK\r\nSet-Cookie: a\r\nset-cookie: b\r\nX-Empty:\r\n\r\n";
    let mut head = ResponseHead::default();
    assert_eq!(
        parse_response(buf, &HeadLimits::default(), &mut head),
        Ok(Parsed::Complete)
    );
    assert_eq!(head.header(buf, b"SET-COOKIE"), Some(&b"a"[..]));
    assert_eq!(head.header(buf, b"x-empty"), Some(&b""[..]));
    assert_eq!(head.header(buf, b"x-missing"), None);
    assert_eq!((head.status, head.reason.get(buf)), (200, &b"OK"[..]));
}

#[test]
fn headers_are_refilled_keeping_capacity() {
    let mut head = RequestHead::default();
    assert_eq!(
        parse_request(CHAT, &HeadLimits::default(), &mut head),
        Ok(Parsed::Complete)
    );
    let capacity = head.headers.capacity();
    let small = b"GET / HTTP/1.0\r\nHost: a\r\n\r\n";
    assert_eq!(
        parse_request(small, &HeadLimits::default(), &mut head),
        Ok(Parsed::Complete)
    );
    assert_eq!(head.headers.len(), 1);
    assert_eq!(head.headers.capacity(), capacity);
    assert_eq!(head.minor_version, 0);
}

#[test]
fn scanner_keeps_its_verdict_until_reset() {
    let mut scanner = HeadScanner::default();
    let mut head = RequestHead::default();
    let limits = HeadLimits::default();
    assert_eq!(
        scanner.request(b"GET / HT", &limits, &mut head),
        Ok(Parsed::Partial)
    );
    assert_eq!(
        scanner.request(b"GET / HTTX", &limits, &mut head),
        Err(HeadError::Invalid("invalid HTTP version"))
    );
    assert_eq!(
        scanner.request(b"GET / HTTX\r\n\r\n", &limits, &mut head),
        Err(HeadError::Invalid("invalid HTTP version"))
    );
    scanner.reset();
    assert_eq!(
        scanner.request(CHAT, &limits, &mut head),
        Ok(Parsed::Complete)
    );
    assert_eq!(
        scanner.request(CHAT, &limits, &mut head),
        Ok(Parsed::Complete)
    );
    assert_eq!(head.header(CHAT, b"content-length"), Some(&b"2"[..]));
}

#[test]
fn pipelined_heads_parse_one_after_another() {
    let two = [CHAT, b"GET /health HTTP/1.1\r\n\r\n"].concat();
    let mut head = RequestHead::default();
    assert_eq!(
        parse_request(&two, &HeadLimits::default(), &mut head),
        Ok(Parsed::Complete)
    );
    let next = &two[head.head_len + 2..];
    assert_eq!(
        parse_request(next, &HeadLimits::default(), &mut head),
        Ok(Parsed::Complete)
    );
    assert_eq!(head.target.get(next), b"/health");
    assert_eq!(head.head_len, next.len());
}
