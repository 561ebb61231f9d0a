//! RFC 9112 message framing: from a parsed head, how long the body is,
//! whether the connection persists, and whether the client expects 100-continue.
//!
//! The rules are those of RFC 9112 §6.3, read strictly on the request side:
//! anything that could let two parsers disagree about where a body ends
//! (request smuggling) is refused rather than repaired. Header names are
//! matched ASCII case-insensitively and list-valued fields may be split over
//! several lines (RFC 9110 §5.3), so every line of a field is considered.
//!
//! Request admission rides on the same single pass over the header spans:
//! exactly one valid `Host` (RFC 9112 §3.2), and no transfer coding but one
//! final `chunked` (RFC 9112 §6.1). The request side answers with a
//! [`FramingError`] (400, or 501 for a coding we do not implement), the
//! response side with a [`HeadError`] (502 to the caller).

use super::bytes::is_token_byte;
use super::parse::{HeadError, HeaderSpan, RequestHead, ResponseHead, Span};

/// How the body of a message is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyKind {
    /// No body at all (not even a zero-length one was announced).
    Empty,
    /// Exactly this many bytes (RFC 9112 §6.2); may be 0.
    Length(u64),
    /// The chunked transfer coding (RFC 9112 §7.1).
    Chunked,
    /// Everything until the peer closes (responses only, RFC 9112 §6.3 rule 8).
    CloseDelimited,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestFraming {
    pub body: BodyKind,
    pub keep_alive: bool,
    pub expect_continue: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResponseFraming {
    pub body: BodyKind,
    pub keep_alive: bool,
}

/// Why a request was refused before its body was read. Either way the
/// connection closes: the body is left unread, so its end is not known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FramingError {
    /// Malformed or ambiguous framing, or a missing, repeated or invalid
    /// `Host` (400). The text names what was wrong.
    Invalid(&'static str),
    /// Well framed, but a transfer coding other than `chunked` is applied
    /// (RFC 9112 §6.1: 501). Decoding it is not implemented, and ignoring
    /// it would forward a body the client did not mean.
    UnsupportedCoding,
}

/// The framing of a request, or why it cannot be admitted.
pub fn request_framing(buf: &[u8], head: &RequestHead) -> Result<RequestFraming, FramingError> {
    let fields = FramingFields::collect(buf, &head.headers).map_err(FramingError::Invalid)?;
    // RFC 9112 §3.2: 400 for an HTTP/1.1 request without Host, and for any
    // request with more than one Host line or an invalid Host value.
    match fields.host_lines {
        0 if head.minor_version >= 1 => return Err(FramingError::Invalid("missing host")),
        0 => {}
        1 if is_valid_host(fields.host.get(buf)) => {}
        1 => return Err(FramingError::Invalid("invalid host")),
        _ => return Err(FramingError::Invalid("more than one host")),
    }
    let body = match (fields.transfer_encoding, fields.content_length) {
        // RFC 9112 §6.1: a server MAY reject both; a proxy forwarding both
        // is how smuggling happens, so we always do.
        (Some(_), Some(_)) => {
            return Err(FramingError::Invalid(
                "both transfer-encoding and content-length",
            ))
        }
        // RFC 9112 §6.1: HTTP/1.0 has no transfer codings; treat as faulty.
        (Some(_), None) if head.minor_version == 0 => {
            return Err(FramingError::Invalid(
                "transfer-encoding in an HTTP/1.0 request",
            ))
        }
        (Some(codings), None) => {
            if !codings.chunked_last {
                // RFC 9112 §6.3 rule 4: without chunked last the length is
                // unknowable: 400, whatever the other codings are.
                return Err(FramingError::Invalid(
                    "transfer-encoding does not end in chunked",
                ));
            }
            if codings.other {
                // RFC 9112 §6.1: a coding we do not implement (gzip, or one
                // we do not know at all) is 501.
                return Err(FramingError::UnsupportedCoding);
            }
            BodyKind::Chunked
        }
        (None, Some(length)) => BodyKind::Length(length),
        // RFC 9112 §6.3 rule 6: neither field means no body.
        (None, None) => BodyKind::Empty,
    };
    Ok(RequestFraming {
        body,
        keep_alive: fields.keep_alive(head.minor_version),
        // RFC 9110 §10.1.1: 100-continue means nothing to an HTTP/1.0 client.
        expect_continue: head.minor_version >= 1 && fields.expect_continue,
    })
}

/// The framing of a response to a request (`request_was_head` when it was a
/// HEAD), or why it cannot be trusted (502).
pub fn response_framing(
    buf: &[u8],
    head: &ResponseHead,
    request_was_head: bool,
) -> Result<ResponseFraming, HeadError> {
    let fields = FramingFields::collect(buf, &head.headers).map_err(invalid)?;
    let keep_alive = fields.keep_alive(head.minor_version);
    // RFC 9112 §6.3 rules 1: these never carry a body, whatever they announce.
    if request_was_head || (100..200).contains(&head.status) || matches!(head.status, 204 | 304) {
        return Ok(ResponseFraming {
            body: BodyKind::Empty,
            keep_alive,
        });
    }
    let framing = match (fields.transfer_encoding, fields.content_length) {
        // RFC 9112 §6.1: faulty framing in HTTP/1.0.
        (Some(_), _) if head.minor_version == 0 => {
            return Err(invalid("transfer-encoding in an HTTP/1.0 response"))
        }
        // RFC 9112 §6.3 rule 3: chunked overrides content-length, but the
        // connection cannot be trusted afterwards. Codings before chunked
        // are the relaying side's to judge; the framing is sound.
        (Some(codings), length) if codings.chunked_last => ResponseFraming {
            body: BodyKind::Chunked,
            keep_alive: keep_alive && length.is_none(),
        },
        // RFC 9112 §6.3 rule 4: read until close.
        (Some(_), _) => ResponseFraming {
            body: BodyKind::CloseDelimited,
            keep_alive: false,
        },
        (None, Some(length)) => ResponseFraming {
            body: BodyKind::Length(length),
            keep_alive,
        },
        // RFC 9112 §6.3 rule 8.
        (None, None) => ResponseFraming {
            body: BodyKind::CloseDelimited,
            keep_alive: false,
        },
    };
    Ok(framing)
}

fn invalid(reason: &'static str) -> HeadError {
    HeadError::Invalid(reason)
}

/// What the transfer-encoding lines said, all lines taken as one list.
#[derive(Clone, Copy, Default)]
struct Codings {
    /// The last coding is `chunked` (and it is the only `chunked`).
    chunked_last: bool,
    /// Some coding other than `chunked` is applied (`identity` included:
    /// it is no longer a transfer coding, RFC 9112 §7).
    other: bool,
}

/// The framing-relevant fields of a head, gathered in one pass.
#[derive(Default)]
struct FramingFields {
    content_length: Option<u64>,
    transfer_encoding: Option<Codings>,
    connection_close: bool,
    connection_keep_alive: bool,
    expect_continue: bool,
    /// Host lines seen, and the value of the last; validated by the request
    /// side only, and only when there is exactly one.
    host_lines: u32,
    host: Span,
}

impl FramingFields {
    fn collect(buf: &[u8], headers: &[HeaderSpan]) -> Result<FramingFields, &'static str> {
        let mut fields = FramingFields::default();
        for header in headers {
            let name = header.name.get(buf);
            let value = header.value.get(buf);
            if eq_ignore_case(name, b"content-length") {
                fields.add_content_length(value)?;
            } else if eq_ignore_case(name, b"transfer-encoding") {
                fields.add_transfer_codings(value)?;
            } else if eq_ignore_case(name, b"connection") {
                for option in list_elements(value) {
                    fields.connection_close |= eq_ignore_case(option, b"close");
                    fields.connection_keep_alive |= eq_ignore_case(option, b"keep-alive");
                }
            } else if eq_ignore_case(name, b"expect") {
                fields.expect_continue |= eq_ignore_case(value, b"100-continue");
            } else if eq_ignore_case(name, b"host") {
                fields.host_lines += 1;
                fields.host = header.value;
            }
        }
        Ok(fields)
    }

    /// RFC 9112 §6.2 / RFC 9110 §8.6: `1*DIGIT`. A list or repeated lines
    /// of one identical value may be taken as that value; anything else,
    /// including an empty element, is invalid.
    fn add_content_length(&mut self, value: &[u8]) -> Result<(), &'static str> {
        for element in value.split(|&b| b == b',').map(trim_ows) {
            let length = parse_decimal(element).ok_or("invalid content-length")?;
            match self.content_length {
                Some(seen) if seen != length => return Err("conflicting content-length"),
                _ => self.content_length = Some(length),
            }
        }
        Ok(())
    }

    /// RFC 9112 §6.1: `#transfer-coding`, each `token *( OWS ";" OWS param )`.
    /// Empty list elements are ignored (RFC 9110 §5.6.1). A line with no
    /// element at all still counts as the field being present.
    fn add_transfer_codings(&mut self, value: &[u8]) -> Result<(), &'static str> {
        let codings = self.transfer_encoding.get_or_insert_with(Codings::default);
        for element in list_elements(value) {
            let (name, params) = match element.iter().position(|&b| b == b';') {
                Some(at) => (trim_ows(&element[..at]), true),
                None => (element, false),
            };
            if name.is_empty() || !name.iter().all(|&b| is_token_byte(b)) {
                return Err("invalid transfer coding");
            }
            // RFC 9112 §6.1: chunked must be last, so anything after it
            // means chunked is not the final coding.
            if codings.chunked_last {
                return Err(if name.eq_ignore_ascii_case(b"chunked") {
                    // RFC 9112 §6.1: chunked MUST NOT be applied more than once.
                    "chunked applied twice"
                } else {
                    "transfer coding after chunked"
                });
            }
            if name.eq_ignore_ascii_case(b"chunked") {
                // RFC 9112 §7.1 defines no parameters for chunked; one that
                // carries some is not the coding every parser agrees on.
                if params {
                    return Err("parameters on chunked");
                }
                codings.chunked_last = true;
            } else {
                codings.other = true;
            }
        }
        Ok(())
    }

    /// RFC 9112 §9.3: HTTP/1.1 persists unless told `close`; HTTP/1.0 only
    /// with `keep-alive`; `close` always wins.
    fn keep_alive(&self, minor_version: u8) -> bool {
        !self.connection_close && (minor_version >= 1 || self.connection_keep_alive)
    }
}

/// `bytes.eq_ignore_ascii_case(lower)` for a lowercase constant `lower`,
/// eight bytes at a time: every field name of every head is compared with
/// four of these. OR-ing 0x20 into the bytes facing a letter of `lower` maps
/// exactly that letter's two cases onto it; every other byte must match as is.
#[inline(always)]
fn eq_ignore_case<const N: usize>(bytes: &[u8], lower: &[u8; N]) -> bool {
    debug_assert!(lower
        .iter()
        .all(|b| b.is_ascii() && !b.is_ascii_uppercase()));
    let Ok(bytes) = <&[u8; N]>::try_from(bytes) else {
        return false;
    };
    // Words at 0, 8, … and one ending at N (overlapping the one before);
    // constants under eight bytes are padded with zeros on both sides.
    let word = |bytes: &[u8; N], at: usize| {
        let mut word = [0u8; 8];
        let end = N.min(at + 8);
        word[..end - at].copy_from_slice(&bytes[at..end]);
        u64::from_le_bytes(word)
    };
    const ONES: u64 = u64::from_le_bytes([1; 8]);
    let mut at = 0;
    loop {
        let start = at.min(N.saturating_sub(8));
        let expected = word(lower, start);
        // 0x20 in each byte of the (constant) word that is in 'a'..='z'.
        let letters = (expected + ONES * (0x80 - u64::from(b'a')))
            & !(expected + ONES * (0x7f - u64::from(b'z')))
            & (ONES * 0x80);
        if word(bytes, start) | (letters >> 2) != expected {
            return false;
        }
        if start + 8 >= N {
            return true;
        }
        at += 8;
    }
}

/// RFC 9112 §3.2 / RFC 3986 §3.2.2: `uri-host [ ":" port ]`, where
/// `uri-host = IP-literal / IPv4address / reg-name` and `port = *DIGIT`.
/// An empty value is allowed (a target without authority). Everything that
/// could make a Host mean another authority (userinfo, a path, a second
/// port, a list, whitespace) is outside the grammar and refused.
fn is_valid_host(value: &[u8]) -> bool {
    let (host, port) = match value {
        [b'[', rest @ ..] => match rest.iter().position(|&b| b == b']') {
            Some(end) if is_ip_literal(&rest[..end]) => match &rest[end + 1..] {
                [] => (&[][..], &[][..]),
                [b':', port @ ..] => (&[][..], port),
                _ => return false,
            },
            _ => return false,
        },
        _ => match value.iter().position(|&b| b == b':') {
            Some(at) => (&value[..at], &value[at + 1..]),
            None => (value, &[][..]),
        },
    };
    is_reg_name(host) && port.iter().all(u8::is_ascii_digit)
}

/// `reg-name = *( unreserved / pct-encoded / sub-delims )`; an IPv4
/// address is a reg-name as far as bytes go.
fn is_reg_name(mut name: &[u8]) -> bool {
    while let [b, rest @ ..] = name {
        name = match b {
            b'%' => match rest {
                [h, l, rest @ ..] if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() => rest,
                _ => return false,
            },
            _ if is_unreserved(*b) || is_sub_delim(*b) => rest,
            _ => return false,
        };
    }
    true
}

/// The inside of `[...]`: `IPv6address` (hex digits, `:` and a dotted
/// IPv4 tail) or `IPvFuture = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" )`.
/// The IPv6 grammar is not checked further: these bytes cannot change
/// which authority the value names.
fn is_ip_literal(inside: &[u8]) -> bool {
    match inside {
        [b'v' | b'V', rest @ ..] => match rest.iter().position(|&b| b == b'.') {
            Some(dot) if dot > 0 => {
                rest[..dot].iter().all(u8::is_ascii_hexdigit)
                    && rest.len() > dot + 1
                    && rest[dot + 1..]
                        .iter()
                        .all(|&b| is_unreserved(b) || is_sub_delim(b) || b == b':')
            }
            _ => false,
        },
        _ => {
            inside.contains(&b':')
                && inside
                    .iter()
                    .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        }
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn is_sub_delim(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

/// Non-empty elements of a comma list (RFC 9110 §5.6.1: empty ones are
/// ignored), each trimmed of optional whitespace.
pub(crate) fn list_elements(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|e| !e.is_empty())
}

fn trim_ows(mut bytes: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = bytes {
        bytes = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = bytes {
        bytes = rest;
    }
    bytes
}

/// Unsigned decimal without sign or whitespace; `None` when empty, not all
/// digits, or over `u64::MAX`.
fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        let digit = d.is_ascii_digit().then(|| u64::from(d - b'0'))?;
        n.checked_mul(10)?.checked_add(digit)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_values_follow_uri_host_and_port() {
        let valid: &[&[u8]] = &[
            b"",
            b"t",
            b"api.openai.com",
            b"api.openai.com:443",
            b"API.Example-1.COM",
            b"127.0.0.1",
            b"127.0.0.1:8080",
            b"localhost:",
            b"[::1]",
            b"[::1]:8080",
            b"[2001:db8::192.0.2.1]",
            b"[v1.fe80::a+en1]",
            b"a_b~c",
            b"t%2Dx",
            b"sub!$&'()*+,;=delims",
        ];
        for host in valid {
            assert!(is_valid_host(host), "{:?}", String::from_utf8_lossy(host));
        }
        let invalid: &[&[u8]] = &[
            b" ",
            b"a b",
            b"t, u",
            b"t/v1",
            b"t?x",
            b"t#x",
            b"user@t",
            b"user:pw@t",
            b"t:80x",
            b"t:80:81",
            b"t: 80",
            b"::1",
            b"[::1",
            b"[::1]x",
            b"[::1]:x",
            b"[]",
            b"[t]",
            b"[v1]",
            b"[v.x]",
            b"[vz.x]",
            b"[v1.]",
            b"t%",
            b"t%2",
            b"t%zz",
            b"t\"x",
            b"t\\x",
            b"<t>",
            b"t\xe9",
            b"t\x00",
            b"t\tx",
        ];
        for host in invalid {
            assert!(!is_valid_host(host), "{:?}", String::from_utf8_lossy(host));
        }
    }

    #[test]
    fn eq_ignore_case_is_eq_ignore_ascii_case() {
        fn check<const N: usize>(lower: &[u8; N]) {
            let mut upper = *lower;
            upper.make_ascii_uppercase();
            for len in [0, 1, N.saturating_sub(1), N, N + 1] {
                let mut name = [lower.as_slice(), b"x"].concat();
                name.truncate(len);
                assert_eq!(
                    eq_ignore_case(&name, lower),
                    name.eq_ignore_ascii_case(lower)
                );
            }
            // Every byte value at every position, over both cases.
            for base in [*lower, upper] {
                for at in 0..N {
                    for b in 0..=255u8 {
                        let mut name = base;
                        name[at] = b;
                        assert_eq!(
                            eq_ignore_case(&name, lower),
                            name.eq_ignore_ascii_case(lower),
                            "{:?}",
                            String::from_utf8_lossy(&name)
                        );
                    }
                }
            }
        }
        check(b"content-length");
        check(b"transfer-encoding");
        check(b"connection");
        check(b"expect");
        check(b"host");
        check(b"close");
        check(b"keep-alive");
        check(b"100-continue");
        check(b"a");
        check(b"x-8bytes");
    }
}
