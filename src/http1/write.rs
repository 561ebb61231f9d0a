//! Writing heads: status lines, request lines, headers, chunk framing, into a
//! caller's reusable buffer.
//!
//! Everything appends to a `Vec<u8>` the caller reuses, so once it has grown
//! to a typical head no call allocates. Callers are trusted to pass valid
//! tokens and values (they come from parsed heads or from our own config);
//! these functions frame, they do not validate.

/// The last chunk and an empty trailer section (RFC 9112 §7.1).
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// `HTTP/1.1 <status> <canonical reason>\r\n` (RFC 9112 §4). An unknown
/// status gets an empty reason, which §4 allows.
pub fn push_status_line(out: &mut Vec<u8>, status: u16) {
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|code| code.canonical_reason())
        .unwrap_or("");
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(itoa::Buffer::new().format(status).as_bytes());
    out.push(b' ');
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// `<method> <target> HTTP/1.1\r\n` (RFC 9112 §3).
pub fn push_request_line(out: &mut Vec<u8>, method: &[u8], target: &[u8]) {
    out.extend_from_slice(method);
    out.push(b' ');
    out.extend_from_slice(target);
    out.extend_from_slice(b" HTTP/1.1\r\n");
}

/// `<name>: <value>\r\n` (RFC 9112 §5).
pub fn push_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// `content-length: <n>\r\n`.
pub fn push_content_length(out: &mut Vec<u8>, len: u64) {
    push_header(
        out,
        b"content-length",
        itoa::Buffer::new().format(len).as_bytes(),
    );
}

/// A chunk-size line without extensions: lowercase hex, then CRLF
/// (RFC 9112 §7.1). A size of 0 starts the last chunk; prefer [`LAST_CHUNK`].
pub fn push_chunk_size(out: &mut Vec<u8>, size: usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [0u8; 2 * std::mem::size_of::<usize>()];
    let mut start = digits.len();
    let mut rest = size;
    loop {
        start -= 1;
        digits[start] = HEX[rest & 0xf];
        rest >>= 4;
        if rest == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
    out.extend_from_slice(b"\r\n");
}

/// The empty line that ends a head.
pub fn end_head(out: &mut Vec<u8>) {
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_carry_canonical_reasons() {
        for (status, line) in [
            (200, &b"HTTP/1.1 200 OK\r\n"[..]),
            (404, b"HTTP/1.1 404 Not Found\r\n"),
            (502, b"HTTP/1.1 502 Bad Gateway\r\n"),
            (599, b"HTTP/1.1 599 \r\n"),
        ] {
            let mut out = Vec::new();
            push_status_line(&mut out, status);
            assert_eq!(out, line, "status {status}");
        }
    }

    #[test]
    fn chunk_sizes_are_lowercase_hex() {
        for (size, line) in [
            (0, &b"0\r\n"[..]),
            (9, b"9\r\n"),
            (10, b"a\r\n"),
            (4096, b"1000\r\n"),
            (usize::MAX, b"ffffffffffffffff\r\n"),
        ] {
            let mut out = Vec::new();
            push_chunk_size(&mut out, size);
            assert_eq!(out, line, "size {size}");
        }
    }

    #[test]
    fn a_written_request_head_parses_back() {
        use crate::http1::parse::{parse_request, HeadLimits, Parsed, RequestHead};
        let mut out = Vec::new();
        push_request_line(&mut out, b"POST", b"/v1/chat/completions");
        push_header(&mut out, b"host", b"api.example.com");
        push_content_length(&mut out, 1234);
        end_head(&mut out);
        out.extend_from_slice(LAST_CHUNK);
        let mut head = RequestHead::default();
        assert_eq!(
            parse_request(&out, &HeadLimits::default(), &mut head),
            Ok(Parsed::Complete)
        );
        assert_eq!(head.method.get(&out), b"POST");
        assert_eq!(head.target.get(&out), b"/v1/chat/completions");
        assert_eq!(head.minor_version, 1);
        assert_eq!(head.header(&out, b"Content-Length"), Some(&b"1234"[..]));
        assert_eq!(&out[head.head_len..], LAST_CHUNK);
    }
}
