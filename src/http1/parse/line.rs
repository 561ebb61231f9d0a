//! Whole-line fast paths: a start line or field line already complete and
//! valid in the buffer, parsed straight through with no state kept; `None`
//! sends the line back to the step machine. Also the small checks (version,
//! line end, the head's window) the step machine shares.

use super::{HeadError, HeadLimits, HeaderSpan, Span};
use crate::http1::bytes::{is_token_byte, scan, FIELD, TARGET, TOKEN};

/// Pushes the field lines from `pos` on that are whole and valid, up to the
/// limit; returns where the first other line starts. Out of line because
/// inlined into the step machine it lost registers to it (about 3% more
/// instructions per head under callgrind).
#[inline(never)]
pub(super) fn whole_field_lines(
    buf: &[u8],
    mut pos: usize,
    headers: &mut Vec<HeaderSpan>,
    max_headers: usize,
) -> usize {
    while headers.len() < max_headers {
        let Some((header, next)) = whole_field_line(buf, pos) else {
            break;
        };
        headers.push(header);
        pos = next;
    }
    pos
}

/// The request line at `start` when it is whole and valid, with no empty
/// lines before it: (method, target, minor version) and where the next line
/// starts. `None` for anything else, which the step machine then parses.
#[inline]
pub(super) fn whole_request_line(buf: &[u8], start: usize) -> Option<((Span, Span, u8), usize)> {
    let method_end = scan(buf, start, TOKEN);
    if method_end == start || buf.get(method_end) != Some(&b' ') {
        return None;
    }
    let target_start = method_end + 1;
    let target_end = scan(buf, target_start, TARGET);
    if target_end == target_start || buf.get(target_end) != Some(&b' ') {
        return None;
    }
    let target = &buf[target_start..target_end];
    if !(target.is_ascii() || std::str::from_utf8(target).is_ok()) {
        return None;
    }
    let version = target_end + 1;
    let minor = match buf.get(version..version + 8)? {
        b"HTTP/1.0" => 0,
        b"HTTP/1.1" => 1,
        _ => return None,
    };
    let next = line_end(buf, version + 8).ok()??;
    let line = (
        Span::new(start, method_end),
        Span::new(target_start, target_end),
        minor,
    );
    Some((line, next))
}

/// The status line at `start` when it is whole and valid, with no empty
/// lines before it: (minor version, status, reason) and where the next line
/// starts. `None` for anything else, which the step machine then parses.
#[inline]
pub(super) fn whole_status_line(buf: &[u8], start: usize) -> Option<((u8, u16, Span), usize)> {
    let [b'H', b'T', b'T', b'P', b'/', b'1', b'.', minor @ (b'0' | b'1'), b' ', digits @ .., after] =
        *buf.get(start..)?.first_chunk::<13>()?
    else {
        return None;
    };
    let [d0, d1, d2] = digits;
    if !(d0.is_ascii_digit() && d1.is_ascii_digit() && d2.is_ascii_digit()) {
        return None;
    }
    let status = [d0, d1, d2]
        .iter()
        .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    let (reason, end) = match after {
        b' ' => {
            let end = scan(buf, start + 13, FIELD);
            (Span::new(start + 13, end), end)
        }
        // Like httparse: no reason, and no space before it either.
        b'\r' | b'\n' => (Span::new(start + 12, start + 12), start + 12),
        _ => return None,
    };
    let next = line_end(buf, end).ok()??;
    Some(((minor - b'0', status, reason), next))
}

/// The field line at `start` when it is whole and valid in `buf`: its spans
/// and where the next line starts. `None` for anything else (the empty line,
/// a line cut by the buffer's end, a syntax error), which the step machine
/// then parses from `start`, so this only ever agrees with it.
#[inline(always)]
pub(super) fn whole_field_line(buf: &[u8], start: usize) -> Option<(HeaderSpan, usize)> {
    // Every head ends with the empty line: leave it before any scan.
    if !is_token_byte(*buf.get(start)?) {
        return None;
    }
    // Names, the colon and OWS are all field bytes too, so one scan from the
    // line's start finds its end. Where the next line starts then depends on
    // that scan alone; the name's scan below runs beside it, not after it.
    let end = scan(buf, start, FIELD);
    let next = if buf.get(end..end + 2) == Some(b"\r\n") {
        end + 2
    } else if buf.get(end) == Some(&b'\n') {
        end + 1
    } else {
        return None;
    };
    // The name stops at or before `end`, which holds no tchar.
    let colon = scan(buf, start, TOKEN);
    if colon == start || buf.get(colon) != Some(&b':') {
        return None;
    }
    let mut value = colon + 1;
    if buf.get(value) == Some(&b' ') {
        value += 1;
    }
    while let Some(b' ' | b'\t') = buf.get(value) {
        value += 1;
    }
    // The value begins with a non-blank byte, so trimming stops at or after it.
    let mut trimmed = end;
    while trimmed > value && matches!(buf[trimmed - 1], b' ' | b'\t') {
        trimmed -= 1;
    }
    let header = HeaderSpan {
        name: Span::new(start, colon),
        value: Span::new(value, trimmed),
    };
    Some((header, next))
}

pub(super) fn invalid_name() -> HeadError {
    HeadError::Invalid("invalid header name")
}

pub(super) fn invalid_value() -> HeadError {
    HeadError::Invalid("invalid header value")
}

pub(super) fn invalid_status() -> HeadError {
    HeadError::Invalid("invalid status line")
}

/// The part of `buf` a head may occupy.
pub(super) fn window<'b>(buf: &'b [u8], limits: &HeadLimits) -> &'b [u8] {
    &buf[..buf.len().min(limits.max_head_bytes).min(u32::MAX as usize)]
}

/// `HTTP/1.0` or `HTTP/1.1` at `at` (RFC 9112 §2.3; other versions are
/// refused as httparse refuses them). `None` while a valid prefix is short.
pub(super) fn version(buf: &[u8], at: usize) -> Result<Option<u8>, HeadError> {
    const PREFIX: &[u8] = b"HTTP/1.";
    let seen = &buf[at.min(buf.len())..buf.len().min(at + 8)];
    let prefix_len = seen.len().min(PREFIX.len());
    if seen[..prefix_len] != PREFIX[..prefix_len] {
        return Err(HeadError::Invalid("invalid HTTP version"));
    }
    match seen.get(7) {
        None => Ok(None),
        Some(b'0') => Ok(Some(0)),
        Some(b'1') => Ok(Some(1)),
        Some(_) => Err(HeadError::Invalid("invalid HTTP version")),
    }
}

/// A line end at `at`: CRLF, or a bare LF as httparse accepts (RFC 9112 §2.2
/// allows a recipient to). Returns where the next line starts.
pub(super) fn line_end(buf: &[u8], at: usize) -> Result<Option<usize>, HeadError> {
    match buf.get(at) {
        None => Ok(None),
        Some(b'\n') => Ok(Some(at + 1)),
        Some(b'\r') => match buf.get(at + 1) {
            None => Ok(None),
            Some(b'\n') => Ok(Some(at + 2)),
            Some(_) => Err(HeadError::Invalid("invalid line ending")),
        },
        Some(_) => Err(HeadError::Invalid("invalid line ending")),
    }
}
