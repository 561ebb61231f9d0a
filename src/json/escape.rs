//! JSON string escapes, both ways.
//!
//! `push_json_string` appends `"…"` with every character JSON requires
//! escaped (quote, backslash, U+0000..U+001F) escaped and everything else
//! copied unchanged, so the output is valid JSON decoding to exactly the
//! input. `check_escapes` is the escape validation sonic-rs's skipper leaves
//! out (it takes any four bytes after `\u`). `string_contents` reads a
//! string literal back, decoding only one that has escapes.

use std::borrow::Cow;

use super::error::JsonError;

/// The text of a JSON string literal (quotes included): borrowed when it
/// has no escapes, decoded when it has; `None` when it is not a string or
/// will not decode.
pub fn string_contents(raw: &str) -> Option<Cow<'_, str>> {
    let inner = raw.strip_prefix('"')?.strip_suffix('"')?;
    if !inner.contains('\\') {
        return Some(Cow::Borrowed(inner));
    }
    sonic_rs::from_str::<String>(raw).ok().map(Cow::Owned)
}

/// Appends `s` to `out` as a JSON string literal, quotes included.
pub fn push_json_string(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut copied_up_to = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let short = match b {
            b'"' => b'"',
            b'\\' => b'\\',
            b'\n' => b'n',
            b'\r' => b'r',
            b'\t' => b't',
            0x08 => b'b',
            0x0c => b'f',
            0x00..=0x1f => 0,
            _ => continue,
        };
        // Copy the unescaped run in one go; escapes are rare in model names.
        out.extend_from_slice(&bytes[copied_up_to..i]);
        copied_up_to = i + 1;
        if short != 0 {
            out.extend_from_slice(&[b'\\', short]);
        } else {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ]);
        }
    }
    out.extend_from_slice(&bytes[copied_up_to..]);
    out.push(b'"');
}

/// Checks every escape in `raw`, a string literal (quotes included) that
/// sonic-rs already found well delimited; `start` is its offset in the body.
/// Surrogate escapes must pair up (a high one followed by a low one), as
/// serde_json and most upstream parsers require.
pub(crate) fn check_escapes(raw: &str, start: usize) -> Result<(), JsonError> {
    let bytes = raw.as_bytes();
    let mut i = 0;
    while let Some(found) = memchr::memchr(b'\\', &bytes[i..]) {
        let at = i + found;
        i = match bytes.get(at + 1) {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => at + 2,
            Some(b'u') => match unicode_escape(bytes, at) {
                Some(0xD800..=0xDBFF)
                    if matches!(unicode_escape(bytes, at + 6), Some(0xDC00..=0xDFFF)) =>
                {
                    at + 12
                }
                Some(0xD800..=0xDFFF) | None => return Err(invalid_escape(start + at)),
                Some(_) => at + 6,
            },
            _ => return Err(invalid_escape(start + at)),
        };
    }
    Ok(())
}

/// The code unit of the `\uXXXX` escape at `at`, if there is one.
fn unicode_escape(bytes: &[u8], at: usize) -> Option<u32> {
    match bytes.get(at..at + 6)? {
        [b'\\', b'u', hex @ ..] => {
            let hex = std::str::from_utf8(hex).ok()?;
            // from_str_radix accepts a leading '+'; JSON does not.
            if hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                u32::from_str_radix(hex, 16).ok()
            } else {
                None
            }
        }
        _ => None,
    }
}

fn invalid_escape(offset: usize) -> JsonError {
    JsonError::syntax(
        format!("Invalid escape sequence in a string at byte {offset}"),
        offset,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_escapes_pass() {
        let raw = r#""\" \\ \/ \b \f \n \r \t \u00e9 \uD83E\uDD80 \u0000""#;
        assert!(check_escapes(raw, 0).is_ok());
        assert!(check_escapes(r#""no escapes""#, 0).is_ok());
    }

    #[test]
    fn invalid_escapes_fail_with_their_offset() {
        for (raw, at) in [
            (r#""\x""#, 1),
            (r#""ab\u12G4""#, 3),
            (r#""\u12""#, 1),
            (r#""\n\'""#, 3),
            (r#""\ud83e""#, 1),
            (r#""\ud83e\u0041""#, 1),
            (r#""\udd80\ud83e""#, 1),
            (r#""x\ud83e\n""#, 2),
        ] {
            let err = check_escapes(raw, 10).unwrap_err();
            assert_eq!(err.offset(), 10 + at, "{raw}");
        }
    }

    fn encoded(s: &str) -> String {
        let mut out = Vec::new();
        push_json_string(&mut out, s);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn plain_text_is_only_quoted() {
        assert_eq!(encoded("gpt-4o-mini"), r#""gpt-4o-mini""#);
        assert_eq!(encoded(""), r#""""#);
        assert_eq!(encoded("模型 ✓ 🦀"), "\"模型 ✓ 🦀\"");
    }

    #[test]
    fn required_escapes() {
        assert_eq!(encoded(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(encoded("\n\r\t\u{8}\u{c}"), r#""\n\r\t\b\f""#);
        assert_eq!(encoded("\u{0}\u{1f}\u{7f}"), "\"\\u0000\\u001f\u{7f}\"");
    }

    #[test]
    fn appends_without_clobbering() {
        let mut out = b"{\"model\":".to_vec();
        push_json_string(&mut out, "x\"");
        assert_eq!(out, b"{\"model\":\"x\\\"\"");
    }

    #[test]
    fn every_char_round_trips_through_serde_json() {
        let all: String = (0u32..0x800).filter_map(char::from_u32).collect();
        let decoded: String = serde_json::from_str(&encoded(&all)).unwrap();
        assert_eq!(decoded, all);
    }
}
