//! Finding one top-level member's value in a body the gateway only reads on
//! the side (usage in upstream responses), without validating the rest.
//!
//! A response's `usage` sits after `choices`, which holds most of the body;
//! the validating walk (`walk`) spends about 25 instructions a byte getting
//! past it. Here strings are skipped with `memchr2` on `"` and `\`, and
//! containers by counting brackets outside strings.
//!
//! All of it is `#[inline(always)]`, and `api::usage` calls it from one
//! non-generic function: with a usage reader per provider shape and a few
//! cold callers, the compiler stopped inlining the helpers, which cost
//! every proxied response hundreds of instructions (bench/README.md).
//!
//! Invariants: never panics, never allocates, no recursion, O(len). On valid
//! JSON the result is exactly the raw text of the first member named `key`
//! of the top-level object. On malformed JSON the result is `None` or some
//! slice of the body, so the caller parses what it gets strictly.

use memchr::memchr2;

/// The raw text of the value of the first top-level member whose key,
/// as written (escapes not decoded), is `key`.
#[inline(always)]
pub fn top_level_value<'a>(json: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let mut at = skip_space(json, 0);
    if json.get(at) != Some(&b'{') {
        return None;
    }
    at += 1;
    loop {
        at = skip_space(json, at);
        if json.get(at) != Some(&b'"') {
            return None; // `}` (no such key) or malformed
        }
        let key_end = string_end(json, at)?;
        let wanted = &json[at + 1..key_end - 1] == key;
        at = skip_space(json, key_end);
        if json.get(at) != Some(&b':') {
            return None;
        }
        at = skip_space(json, at + 1);
        let value_end = value_end(json, at)?;
        if wanted {
            return Some(&json[at..value_end]);
        }
        at = skip_space(json, value_end);
        if json.get(at) != Some(&b',') {
            return None;
        }
        at += 1;
    }
}

/// Where the whitespace at `at` ends.
pub fn skip_space(json: &[u8], mut at: usize) -> usize {
    while let Some(b' ' | b'\n' | b'\r' | b'\t') = json.get(at) {
        at += 1;
    }
    at
}

/// One past the closing quote of the string opening at `open`.
#[inline(always)]
fn string_end(json: &[u8], open: usize) -> Option<usize> {
    let mut at = open + 1;
    loop {
        let hit = next_quote_or_backslash(json, at)?;
        if json[hit] == b'"' {
            return Some(hit + 1);
        }
        at = hit + 2; // the escaped byte cannot close the string
    }
}

/// The first quote or backslash at or after `at`. The first sixteen bytes
/// are looked at eight at a time (most strings, keys and ids, end there),
/// the rest with `memchr2`, whose set-up costs more than a short string.
#[inline(always)]
pub fn next_quote_or_backslash(json: &[u8], mut at: usize) -> Option<usize> {
    for _ in 0..2 {
        let Some(word) = json.get(at..at + 8) else {
            break;
        };
        let flags = quotes_or_backslashes(u64::from_le_bytes(word.try_into().ok()?));
        if flags != 0 {
            return Some(at + flags.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    Some(at + memchr2(b'"', b'\\', json.get(at..)?)?)
}

/// The quotes and backslashes among eight bytes (`word`, little-endian):
/// the high bit of each such byte set. Exact up to the lowest one (a borrow
/// may flag bytes above it), which is all the callers read.
#[inline(always)]
pub fn quotes_or_backslashes(word: u64) -> u64 {
    const LOW: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let quote = word ^ (LOW * u64::from(b'"'));
    let backslash = word ^ (LOW * u64::from(b'\\'));
    (quote.wrapping_sub(LOW) & !quote | backslash.wrapping_sub(LOW) & !backslash) & HIGH
}

/// One past the end of the value starting at `start` (not validated).
#[inline(always)]
pub fn value_end(json: &[u8], start: usize) -> Option<usize> {
    match *json.get(start)? {
        b'"' => string_end(json, start),
        b'{' | b'[' => container_end(json, start),
        _ => {
            let len = json[start..]
                .iter()
                .position(|b| matches!(b, b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t'))
                .unwrap_or(json.len() - start);
            (len > 0).then_some(start + len)
        }
    }
}

/// One past the bracket closing the container opening at `open`. Bracket
/// kinds are not matched against each other: valid JSON needs no check.
#[inline(always)]
fn container_end(json: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut at = open;
    while let Some(&byte) = json.get(at) {
        match byte {
            b'"' => {
                at = string_end(json, at)?;
                continue;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return Some(at + 1);
                }
            }
            _ => {}
        }
        at += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn found<'a>(json: &'a str, key: &str) -> Option<&'a str> {
        top_level_value(json.as_bytes(), key.as_bytes()).map(|v| std::str::from_utf8(v).unwrap())
    }

    #[test]
    fn skips_nested_keys_strings_and_escapes_to_the_top_level_member() {
        let body = r#" { "id" : "x\"usage\\" , "choices": [{"usage": 1, "t": "}]\\\"{"}],
            "n": -1.5e3, "ok": true, "usage" : {"prompt_tokens": 3} , "usage": 9 }"#;
        assert_eq!(found(body, "usage"), Some(r#"{"prompt_tokens": 3}"#));
        assert_eq!(found(body, "n"), Some("-1.5e3"));
        assert_eq!(found(body, "ok"), Some("true"));
        assert_eq!(found(body, "id"), Some(r#""x\"usage\\""#));
        assert_eq!(found(body, "t"), None);
        assert_eq!(found(body, "missing"), None);
    }

    #[test]
    fn malformed_or_cut_bodies_give_none() {
        for body in [
            "",
            "[]",
            r#"{"usage""#,
            r#"{"usage":"#,
            r#"{"usage": {"a": 1"#,
            r#"{"a": "open, "usage": 1"#,
            r#"{"a" 1, "usage": 1}"#,
            r#"{"a": 1 "usage": 1}"#,
            r#"{"a": "\"#,
            r#"{"usage": }"#,
        ] {
            assert_eq!(found(body, "usage"), None, "{body}");
        }
    }

    /// `string_end` as it was: `memchr2` from the first byte.
    fn string_end_memchr(json: &[u8], open: usize) -> Option<usize> {
        let mut at = open + 1;
        loop {
            let hit = at + memchr2(b'"', b'\\', json.get(at..)?)?;
            if json[hit] == b'"' {
                return Some(hit + 1);
            }
            at = hit + 2;
        }
    }

    proptest! {
        #[test]
        fn strings_end_where_memchr2_ends_them(
            bytes in prop::collection::vec(prop::sample::select(b"a\"\\\x80\xff ".to_vec()), 1..48),
            open in 0usize..48,
        ) {
            let open = open % bytes.len();
            prop_assert_eq!(string_end(&bytes, open), string_end_memchr(&bytes, open));
        }

        #[test]
        fn json_like_bytes_never_panic(
            bytes in prop::collection::vec(prop::sample::select(b"{}[]\":, \\usage1".to_vec()), 0..64)
        ) {
            if let Some(value) = top_level_value(&bytes, b"usage") {
                prop_assert!(!value.is_empty());
            }
        }
    }
}
