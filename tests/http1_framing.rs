//! RFC 9112 §6 framing decisions, one table row per rule.

use shardgate::http1::framing::{
    request_framing, response_framing, BodyKind, FramingError, RequestFraming, ResponseFraming,
};
use shardgate::http1::parse::{
    parse_request, parse_response, HeadError, HeadLimits, Parsed, RequestHead, ResponseHead,
};

/// The framing of a request with these fields and a valid Host.
fn request(version: &str, fields: &str) -> Result<RequestFraming, FramingError> {
    request_without_host(version, &format!("Host: t\r\n{fields}"))
}

fn request_without_host(version: &str, fields: &str) -> Result<RequestFraming, FramingError> {
    let buf = format!("POST /v1/chat/completions HTTP/1.{version}\r\n{fields}\r\n");
    let mut head = RequestHead::default();
    assert_eq!(
        parse_request(buf.as_bytes(), &HeadLimits::default(), &mut head),
        Ok(Parsed::Complete)
    );
    request_framing(buf.as_bytes(), &head)
}

fn response(
    status_line: &str,
    fields: &str,
    request_was_head: bool,
) -> Result<ResponseFraming, HeadError> {
    let buf = format!("{status_line}\r\n{fields}\r\n");
    let mut head = ResponseHead::default();
    assert_eq!(
        parse_response(buf.as_bytes(), &HeadLimits::default(), &mut head),
        Ok(Parsed::Complete)
    );
    response_framing(buf.as_bytes(), &head, request_was_head)
}

fn ok(
    body: BodyKind,
    keep_alive: bool,
    expect_continue: bool,
) -> Result<RequestFraming, FramingError> {
    Ok(RequestFraming {
        body,
        keep_alive,
        expect_continue,
    })
}

#[test]
fn request_bodies() {
    use BodyKind::*;
    let cases = [
        ("1", "", ok(Empty, true, false)),
        ("1", "Content-Length: 0\r\n", ok(Length(0), true, false)),
        ("1", "content-length: 42\r\n", ok(Length(42), true, false)),
        (
            "1",
            "Content-Length: 18446744073709551615\r\n",
            ok(Length(u64::MAX), true, false),
        ),
        (
            "1",
            "Content-Length: 5\r\nContent-Length: 5\r\n",
            ok(Length(5), true, false),
        ),
        ("1", "Content-Length: 5, 5\r\n", ok(Length(5), true, false)),
        (
            "1",
            "Transfer-Encoding: chunked\r\n",
            ok(Chunked, true, false),
        ),
        (
            "1",
            "Transfer-Encoding: CHUNKED\r\n",
            ok(Chunked, true, false),
        ),
        (
            "1",
            "Transfer-Encoding: ,, chunked ,\r\n",
            ok(Chunked, true, false),
        ),
        (
            "1",
            "Transfer-Encoding:\r\nTransfer-Encoding: chunked\r\n",
            ok(Chunked, true, false),
        ),
        (
            "1",
            "transfer-encoding:\tChunked \t\r\n",
            ok(Chunked, true, false),
        ),
        ("0", "Content-Length: 3\r\n", ok(Length(3), false, false)),
    ];
    for (version, fields, expected) in cases {
        assert_eq!(
            request(version, fields),
            expected,
            "HTTP/1.{version} {fields:?}"
        );
    }
}

#[test]
fn request_framing_violations_are_rejected() {
    let cases = [
        ("1", "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"),
        ("1", "Transfer-Encoding: chunked\r\nContent-Length: 0\r\n"),
        ("1", "Content-Length: 5\r\nContent-Length: 6\r\n"),
        ("1", "Content-Length: 5, 6\r\n"),
        ("1", "Content-Length: +5\r\n"),
        ("1", "Content-Length: -5\r\n"),
        ("1", "Content-Length: 0x5\r\n"),
        ("1", "Content-Length: 5 5\r\n"),
        ("1", "Content-Length: 5,\r\n"),
        ("1", "Content-Length:\r\n"),
        ("1", "Content-Length: 18446744073709551616\r\n"),
        ("1", "Content-Length: 99999999999999999999999\r\n"),
        ("0", "Transfer-Encoding: chunked\r\n"),
        ("1", "Transfer-Encoding: gzip\r\n"),
        ("1", "Transfer-Encoding: chunked, gzip\r\n"),
        (
            "1",
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n",
        ),
        ("1", "Transfer-Encoding: chunked, chunked\r\n"),
        (
            "1",
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
        ),
        ("1", "Transfer-Encoding: chunked;q=1\r\n"),
        ("1", "Transfer-Encoding: chunked ; q=1\r\n"),
        ("1", "Transfer-Encoding: identity\r\n"),
        ("1", "Transfer-Encoding: identity, gzip\r\n"),
        ("1", "Transfer-Encoding: \"chunked\"\r\n"),
        ("1", "Transfer-Encoding: chun ked\r\n"),
        ("1", "Transfer-Encoding: ;chunked\r\n"),
        ("1", "Transfer-Encoding:\r\n"),
        ("1", "Transfer-Encoding: , ,\r\n"),
    ];
    for (version, fields) in cases {
        assert!(
            matches!(request(version, fields), Err(FramingError::Invalid(_))),
            "accepted HTTP/1.{version} {fields:?}"
        );
    }
}

/// RFC 9112 §6.1: a coding before the final chunked is one we do not
/// implement (501), never ignored; the framing itself is sound.
#[test]
fn request_codings_other_than_chunked_are_not_implemented() {
    let cases = [
        "Transfer-Encoding: gzip, chunked\r\n",
        "Transfer-Encoding: GZIP , Chunked\r\n",
        "Transfer-Encoding: x-gzip, chunked\r\n",
        "Transfer-Encoding: deflate, chunked\r\n",
        "Transfer-Encoding: br, chunked\r\n",
        "Transfer-Encoding: identity, chunked\r\n",
        "Transfer-Encoding: bogus, chunked\r\n",
        "Transfer-Encoding: gzip;q=1 ,, chunked\r\n",
        "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding: identity\r\nTransfer-Encoding: chunked\r\n",
    ];
    for fields in cases {
        assert_eq!(
            request("1", fields),
            Err(FramingError::UnsupportedCoding),
            "{fields:?}"
        );
    }
}

/// RFC 9112 §3.2: exactly one Host in HTTP/1.1, at most one in HTTP/1.0,
/// and always a valid one.
#[test]
fn request_host_admission() {
    use BodyKind::Empty;
    let accepted = [
        ("1", "Host: t\r\n", ok(Empty, true, false)),
        ("1", "HOST: api.openai.com:443\r\n", ok(Empty, true, false)),
        ("1", "host: [::1]:8080\r\n", ok(Empty, true, false)),
        ("1", "host:\r\n", ok(Empty, true, false)),
        ("1", "host: \t t \t\r\n", ok(Empty, true, false)),
        ("0", "", ok(Empty, false, false)),
        ("0", "Host: t\r\n", ok(Empty, false, false)),
        (
            "1",
            "X-Host: t\r\nHost: t\r\nHosts: u\r\n",
            ok(Empty, true, false),
        ),
    ];
    for (version, fields, expected) in accepted {
        assert_eq!(
            request_without_host(version, fields),
            expected,
            "HTTP/1.{version} {fields:?}"
        );
    }
    let invalid = |reason| Err(FramingError::Invalid(reason));
    let refused = [
        ("1", "", invalid("missing host")),
        ("1", "X-Host: t\r\n", invalid("missing host")),
        ("1", "Host: t\r\nHost: u\r\n", invalid("more than one host")),
        ("1", "Host: t\r\nhost: t\r\n", invalid("more than one host")),
        ("0", "Host: t\r\nHost: t\r\n", invalid("more than one host")),
        ("1", "Host: t, u\r\n", invalid("invalid host")),
        ("1", "Host: user@t\r\n", invalid("invalid host")),
        ("1", "Host: t/x\r\n", invalid("invalid host")),
        ("1", "Host: t:x\r\n", invalid("invalid host")),
        ("0", "Host: a b\r\n", invalid("invalid host")),
    ];
    for (version, fields, expected) in refused {
        assert_eq!(
            request_without_host(version, fields),
            expected,
            "HTTP/1.{version} {fields:?}"
        );
    }
}

#[test]
fn request_persistence_and_expectations() {
    use BodyKind::Empty;
    let cases = [
        ("1", "Connection: close\r\n", ok(Empty, false, false)),
        (
            "1",
            "Connection: Keep-Alive, CLOSE\r\n",
            ok(Empty, false, false),
        ),
        (
            "1",
            "Connection: upgrade\r\nConnection: close\r\n",
            ok(Empty, false, false),
        ),
        ("1", "Connection: closed\r\n", ok(Empty, true, false)),
        ("0", "", ok(Empty, false, false)),
        ("0", "Connection: keep-alive\r\n", ok(Empty, true, false)),
        ("0", "Connection: te,keep-alive\r\n", ok(Empty, true, false)),
        ("1", "Expect: 100-continue\r\n", ok(Empty, true, true)),
        ("1", "Expect: 100-Continue\r\n", ok(Empty, true, true)),
        ("1", "Expect: 200-ok\r\n", ok(Empty, true, false)),
        ("0", "Expect: 100-continue\r\n", ok(Empty, false, false)),
    ];
    for (version, fields, expected) in cases {
        assert_eq!(
            request(version, fields),
            expected,
            "HTTP/1.{version} {fields:?}"
        );
    }
}

#[test]
fn response_bodies() {
    use BodyKind::*;
    let framing = |body, keep_alive| Ok(ResponseFraming { body, keep_alive });
    let cases = [
        (
            "HTTP/1.1 200 OK",
            "Content-Length: 12\r\n",
            false,
            framing(Length(12), true),
        ),
        (
            "HTTP/1.1 200 OK",
            "Transfer-Encoding: chunked\r\n",
            false,
            framing(Chunked, true),
        ),
        (
            "HTTP/1.1 200 OK",
            "Transfer-Encoding: chunked\r\nContent-Length: 12\r\n",
            false,
            framing(Chunked, false),
        ),
        (
            "HTTP/1.1 200 OK",
            "Transfer-Encoding: gzip\r\n",
            false,
            framing(CloseDelimited, false),
        ),
        ("HTTP/1.1 200 OK", "", false, framing(CloseDelimited, false)),
        (
            "HTTP/1.1 200 OK",
            "Content-Length: 12\r\n",
            true,
            framing(Empty, true),
        ),
        (
            "HTTP/1.1 204 No Content",
            "Content-Length: 12\r\n",
            false,
            framing(Empty, true),
        ),
        (
            "HTTP/1.1 304 Not Modified",
            "Transfer-Encoding: chunked\r\n",
            false,
            framing(Empty, true),
        ),
        ("HTTP/1.1 100 Continue", "", false, framing(Empty, true)),
        (
            "HTTP/1.1 200 OK",
            "Content-Length: 12\r\nConnection: close\r\n",
            false,
            framing(Length(12), false),
        ),
        (
            "HTTP/1.0 200 OK",
            "Content-Length: 12\r\n",
            false,
            framing(Length(12), false),
        ),
        (
            "HTTP/1.0 200 OK",
            "Content-Length: 12\r\nConnection: keep-alive\r\n",
            false,
            framing(Length(12), true),
        ),
    ];
    for (status_line, fields, was_head, expected) in cases {
        assert_eq!(
            response(status_line, fields, was_head),
            expected,
            "{status_line} {fields:?} head={was_head}"
        );
    }
}

#[test]
fn response_framing_violations_are_rejected() {
    let cases = [
        (
            "HTTP/1.1 200 OK",
            "Content-Length: 1\r\nContent-Length: 2\r\n",
        ),
        ("HTTP/1.1 200 OK", "Content-Length: -1\r\n"),
        ("HTTP/1.1 200 OK", "Transfer-Encoding: chunked, chunked\r\n"),
        ("HTTP/1.0 200 OK", "Transfer-Encoding: chunked\r\n"),
    ];
    for (status_line, fields) in cases {
        assert!(
            matches!(
                response(status_line, fields, false),
                Err(HeadError::Invalid(_))
            ),
            "accepted {status_line} {fields:?}"
        );
    }
}
