//! The validating walk over a body's top-level object, built from sonic-rs's
//! tokenizer (`Parser::skip_space`, and `skip_one` for strings, numbers and
//! literals) with our own iterative handling of arrays and objects.
//!
//! Why not `skip_one` on containers: sonic-rs validates nested values by
//! unbounded recursion (a hostile `[[[[…` overflows the stack; unoptimized,
//! each level costs ~25 KiB), and its string skipper does not check that `\u`
//! is followed by four hex digits. Here nesting is tracked in a `u128`
//! bit-stack (no recursion, no allocation, depth capped at [`MAX_NESTING`]),
//! and strings that contain escapes get their escapes checked.
//!
//! A reader that wants a few nested values (a translator) can walk into
//! containers instead of past them (`next_key`, `enter_object`,
//! `enter_array`, `next_key_in`, `next_in_array`, `value`, `end_member`):
//! the same parser calls in the same order as skipping them whole, so the
//! same checks, errors and offsets, and the body is still read once.
//!
//! Invariant: `next_member` returns members in order, each value validated in
//! full; when it returns `Ok(None)` the object was closed, and `finish` then
//! confirms only whitespace follows. Offsets are byte offsets into the body.
//! Walking into containers keeps that invariant as long as every value is
//! either walked into to its close or read with `value`, each at the depth
//! of the containers open around it.

use sonic_rs::parser::{ParseStatus, Parser};
use sonic_rs::reader::Reader;
use sonic_rs::Read;

use super::error::{JsonError, JsonErrorKind};
use super::escape::check_escapes;
use super::locate::quotes_or_backslashes;

/// Deepest nesting of arrays/objects accepted, the top-level object included.
/// Real requests (tool schemas included) stay far below it.
pub const MAX_NESTING: usize = 128;

// The bit-stack has one bit per level below the top-level object.
const _: () = assert!(MAX_NESTING <= 129);

/// One top-level member as raw slices of the body.
pub(crate) struct Member<'a> {
    pub key_start: usize,
    /// The key's literal, quotes included.
    pub key_raw: &'a str,
    pub key_status: ParseStatus,
    pub value_start: usize,
    /// The value's text, exactly as in the body.
    pub value_raw: &'a str,
    /// Whether the value has escapes (meaningful when it is a string).
    pub value_status: ParseStatus,
}

impl Member<'_> {
    pub fn value_span(&self) -> std::ops::Range<usize> {
        self.value_start..self.value_start + self.value_raw.len()
    }
}

pub(crate) struct MemberWalker<'a> {
    text: &'a str,
    parser: Parser<Read<'a>>,
    first: bool,
    object_end: Option<usize>,
}

impl<'a> MemberWalker<'a> {
    /// Starts at the top-level object's `{`.
    pub fn new(text: &'a str) -> Result<Self, JsonError> {
        // `&str` input: UTF-8 was checked already, sonic-rs skips it.
        let mut parser = Parser::new(Read::from(text));
        match parser.skip_space() {
            Some(b'{') => Ok(Self {
                text,
                parser,
                first: true,
                object_end: None,
            }),
            Some(first) => {
                let at = parser.offset() - 1;
                if matches!(first, b'[' | b'"' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n') {
                    Err(JsonError::new(JsonErrorKind::NotAnObject, at))
                } else {
                    Err(syntax_at("Expected a JSON value", at))
                }
            }
            None => Err(syntax_at("EOF while parsing a value", text.len())),
        }
    }

    pub fn next_member(&mut self) -> Result<Option<Member<'a>>, JsonError> {
        let Some((key_start, key_raw, key_status)) = self.next_key()? else {
            return Ok(None);
        };
        let (value_start, value_raw, value_status) = self.skip_value()?;
        self.end_member()?;
        Ok(Some(Member {
            key_start,
            key_raw,
            key_status,
            value_start,
            value_raw,
            value_status,
        }))
    }

    /// The next top-level key (start, literal, escapes), its `:` consumed;
    /// `None` once the object closed. The caller then reads the value
    /// ([`Self::value`], or [`Self::enter_object`] / [`Self::enter_array`]
    /// at depth 1) and calls [`Self::end_member`]: together, exactly
    /// [`Self::next_member`]'s checks in its order.
    #[inline]
    pub fn next_key(&mut self) -> Result<Option<(usize, &'a str, ParseStatus)>, JsonError> {
        if self.object_end.is_some() {
            return Ok(None);
        }
        match self.parser.skip_space_peek() {
            Some(b'}') if self.first => {
                self.parser.skip_space();
                self.object_end = Some(self.parser.offset() - 1);
                return Ok(None);
            }
            Some(b'"') => self.first = false,
            _ => return Err(self.error_here("Expected an object key or '}'")),
        }
        let key = self.skip_scalar()?;
        match self.parser.skip_space() {
            Some(b':') => Ok(Some(key)),
            found => Err(self.unexpected(found, "Expected ':' after an object key")),
        }
    }

    /// What follows a top-level member's value: `,` and a key, or `}`.
    #[inline]
    pub fn end_member(&mut self) -> Result<(), JsonError> {
        match self.parser.skip_space() {
            Some(b',') if self.parser.skip_space_peek() == Some(b'"') => Ok(()),
            Some(b',') => Err(self.error_here("Expected an object key after ','")),
            Some(b'}') => {
                self.object_end = Some(self.parser.offset() - 1);
                Ok(())
            }
            found => Err(self.unexpected(found, "Expected ',' or '}' after an object member")),
        }
    }

    /// The byte offset the walk has read to: after [`Self::peek`], where
    /// the next value starts; after a value, where it ended.
    #[inline]
    pub fn offset(&self) -> usize {
        self.parser.offset()
    }

    /// The first byte of the next value, not consumed.
    #[inline]
    pub fn peek(&mut self) -> Option<u8> {
        self.parser.skip_space_peek()
    }

    /// Validates the next value in full, `depth` arrays and objects being
    /// open around it below the top-level object (0 for a member's value):
    /// start, text, and whether a string has escapes.
    #[inline]
    pub fn value(&mut self, depth: usize) -> Result<(usize, &'a str, ParseStatus), JsonError> {
        self.skip_value_at(depth)
    }

    /// Opens the object that is next ([`Self::peek`] saw `{`), to be
    /// `depth` deep (1 for a member's value), and reads its first key:
    /// `None` when it is empty (and closed). The same checks, offsets and
    /// messages as validating it whole with [`Self::value`]; then each
    /// value is read at `depth` and followed by [`Self::next_key_in`].
    #[inline]
    pub fn enter_object(
        &mut self,
        depth: usize,
    ) -> Result<Option<(usize, &'a str, ParseStatus)>, JsonError> {
        if !self.open(depth, b'}')? {
            return Ok(None);
        }
        self.skip_key_and_colon().map(Some)
    }

    /// After a value in an object opened with [`Self::enter_object`]: the
    /// next key, or `None` when the object closed.
    #[inline]
    pub fn next_key_in(&mut self) -> Result<Option<(usize, &'a str, ParseStatus)>, JsonError> {
        match self.parser.skip_space() {
            Some(b',') => self.skip_key_and_colon().map(Some),
            Some(b'}') => Ok(None),
            found => Err(self.unexpected(found, "Expected ',' or '}' in an object")),
        }
    }

    /// Opens the array that is next ([`Self::peek`] saw `[`), to be `depth`
    /// deep: whether it has an element (read at `depth`, then followed by
    /// [`Self::next_in_array`]).
    #[inline]
    pub fn enter_array(&mut self, depth: usize) -> Result<bool, JsonError> {
        self.open(depth, b']')
    }

    /// After an element of an array opened with [`Self::enter_array`]:
    /// whether another one follows (`false`: the array closed).
    #[inline]
    pub fn next_in_array(&mut self) -> Result<bool, JsonError> {
        match self.parser.skip_space() {
            Some(b',') => Ok(true),
            Some(b']') => Ok(false),
            found => Err(self.unexpected(found, "Expected ',' or ']' in an array")),
        }
    }

    /// Consumes an opening bracket as [`Self::skip_value_at`] does: the
    /// nesting cap, then whether the container closes at once.
    #[inline]
    fn open(&mut self, depth: usize, close: u8) -> Result<bool, JsonError> {
        self.parser.skip_space();
        if depth >= MAX_NESTING {
            let at = self.parser.offset() - 1;
            let limit = MAX_NESTING;
            return Err(JsonError::new(JsonErrorKind::TooDeep { limit }, at));
        }
        if self.parser.skip_space_peek() == Some(close) {
            self.parser.skip_space();
            return Ok(false);
        }
        Ok(true)
    }

    /// Offset of the closing `}`, after checking only whitespace follows it.
    pub fn finish(mut self) -> Result<usize, JsonError> {
        let end = self
            .object_end
            .expect("finish is called after next_member returned None");
        if self.parser.skip_space().is_some() {
            return Err(self.error("Trailing characters after the top-level object"));
        }
        Ok(end)
    }

    /// Validates one value of any kind without recursion. Returns its start,
    /// its text, and (for a string) whether it has escapes.
    fn skip_value(&mut self) -> Result<(usize, &'a str, ParseStatus), JsonError> {
        self.skip_value_at(0)
    }

    /// [`Self::skip_value`] for a value inside `base` open containers
    /// (below the top-level object), so the nesting cap counts them.
    fn skip_value_at(&mut self, base: usize) -> Result<(usize, &'a str, ParseStatus), JsonError> {
        match self.parser.skip_space_peek() {
            Some(b'{' | b'[') => {}
            _ => return self.skip_scalar(),
        }
        let start = self.parser.offset();
        // Bit `d - 1` set: the container open at depth `d` (1-based, below
        // the top-level object) is an object. Levels up to `base` are the
        // caller's and never looked at.
        let mut objects: u128 = 0;
        let mut depth = base;
        let mut want_value = true;
        loop {
            if want_value {
                match self.parser.skip_space_peek() {
                    Some(open @ (b'{' | b'[')) => {
                        self.parser.skip_space();
                        depth += 1;
                        if depth >= MAX_NESTING {
                            let at = self.parser.offset() - 1;
                            let limit = MAX_NESTING;
                            return Err(JsonError::new(JsonErrorKind::TooDeep { limit }, at));
                        }
                        let is_object = open == b'{';
                        let bit = 1u128 << (depth - 1);
                        objects = if is_object {
                            objects | bit
                        } else {
                            objects & !bit
                        };
                        let close = if is_object { b'}' } else { b']' };
                        if self.parser.skip_space_peek() == Some(close) {
                            self.parser.skip_space();
                            depth -= 1;
                            want_value = false;
                        } else if is_object {
                            self.skip_key_and_colon()?;
                        }
                    }
                    _ => {
                        self.skip_scalar()?;
                        want_value = false;
                    }
                }
            } else {
                if depth == base {
                    let end = self.parser.offset();
                    return Ok((start, &self.text[start..end], ParseStatus::None));
                }
                let in_object = objects & (1u128 << (depth - 1)) != 0;
                match (self.parser.skip_space(), in_object) {
                    (Some(b','), true) => {
                        self.skip_key_and_colon()?;
                        want_value = true;
                    }
                    (Some(b','), false) => want_value = true,
                    (Some(b'}'), true) | (Some(b']'), false) => depth -= 1,
                    (found, true) => {
                        return Err(self.unexpected(found, "Expected ',' or '}' in an object"))
                    }
                    (found, false) => {
                        return Err(self.unexpected(found, "Expected ',' or ']' in an array"))
                    }
                }
            }
        }
    }

    fn skip_key_and_colon(&mut self) -> Result<(usize, &'a str, ParseStatus), JsonError> {
        if self.parser.skip_space_peek() != Some(b'"') {
            return Err(self.error_here("Expected an object key"));
        }
        let key = self.skip_scalar()?;
        match self.parser.skip_space() {
            Some(b':') => Ok(key),
            found => Err(self.unexpected(found, "Expected ':' after an object key")),
        }
    }

    /// A string, number or literal; never called on `{` or `[`, so sonic-rs
    /// does not recurse. A short string with no escape and no control
    /// character is skipped here: sonic-rs's set-up costs a hundred
    /// instructions or so per value, more than such a key or value takes.
    fn skip_scalar(&mut self) -> Result<(usize, &'a str, ParseStatus), JsonError> {
        if self.parser.skip_space_peek() == Some(b'"') {
            let start = self.parser.offset();
            if let Some(end) = plain_string_end(self.text.as_bytes(), start) {
                self.parser.read.set_index(end);
                return Ok((start, &self.text[start..end], ParseStatus::None));
            }
        }
        let (raw, status) = self
            .parser
            .skip_one(true)
            .map_err(|e| JsonError::from_sonic(&e, self.parser.offset()))?;
        // skip_one skips leading whitespace itself, so the value is the last
        // `raw.len()` bytes before the new offset.
        let end = self.parser.offset();
        let start = end - raw.len();
        let raw = &self.text[start..end];
        if status == ParseStatus::HasEscaped {
            check_escapes(raw, start)?;
        }
        Ok((start, raw, status))
    }

    /// An error at the byte `skip_space` just consumed.
    fn error(&self, what: &str) -> JsonError {
        syntax_at(
            what,
            self.parser.offset().saturating_sub(1).min(self.text.len()),
        )
    }

    /// An error at the next byte, which was only peeked at (or at the end).
    fn error_here(&self, what: &str) -> JsonError {
        syntax_at(what, self.parser.offset().min(self.text.len()))
    }

    /// An error for what `skip_space` returned: the byte it consumed, or
    /// the end of the body when there was none.
    fn unexpected(&self, found: Option<u8>, what: &str) -> JsonError {
        match found {
            Some(_) => self.error(what),
            None => self.error_here(what),
        }
    }
}

/// Strings up to this long (quotes included, about) are looked at here;
/// longer ones are left to sonic-rs's wider SIMD scan.
const PLAIN_STRING: usize = 40;

/// One past the closing quote of the string opening at `open`, when it
/// closes within [`PLAIN_STRING`] bytes with no backslash and no control
/// character before its quote: such a string is valid (the text is UTF-8
/// already) and has nothing to unescape, as sonic-rs would find. `None`
/// for anything else, which sonic-rs then skips and judges.
fn plain_string_end(bytes: &[u8], open: usize) -> Option<usize> {
    const LOW: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut at = open + 1;
    while at < open + PLAIN_STRING {
        let word = u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?);
        // Bytes below 0x20, flagged like the quotes and backslashes: exact
        // up to the lowest flagged byte.
        let controls = word.wrapping_sub(LOW * 0x20) & !word & HIGH;
        let flags = quotes_or_backslashes(word) | controls;
        if flags != 0 {
            let hit = at + flags.trailing_zeros() as usize / 8;
            return (bytes[hit] == b'"').then_some(hit + 1);
        }
        at += 8;
    }
    None
}

fn syntax_at(what: &str, at: usize) -> JsonError {
    JsonError::syntax(format!("{what} at byte {at}"), at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What sonic-rs's checked skipper makes of the string at `open`.
    fn sonic_string_end(text: &str, open: usize) -> Option<(usize, ParseStatus)> {
        let mut parser = Parser::new(Read::from(&text[open..]));
        let (_, status) = parser.skip_one(true).ok()?;
        Some((open + parser.offset(), status))
    }

    #[test]
    fn plain_strings_end_where_sonic_ends_them() {
        for text in [
            r#""model":"gpt-4o-mini","#,
            r#""a""#,
            r#""""#,
            r#""The quick brown fox jumps over the lazy""#,
            r#""h\u00e9llo","x":1"#,
            "\"tab\there\", 1",
            "\"caf\u{e9} \u{1f600}\"        ",
            r#""unterminated        "#,
        ] {
            let end = plain_string_end(text.as_bytes(), 0);
            if let Some(end) = end {
                assert_eq!(
                    sonic_string_end(text, 0),
                    Some((end, ParseStatus::None)),
                    "{text}"
                );
            }
        }
        // Escapes, control characters and long strings are sonic-rs's.
        assert_eq!(plain_string_end(br#""a\"b", 12345678"#, 0), None);
        assert_eq!(plain_string_end(b"\"a\nb\", 12345678", 0), None);
        let long = format!("\"{}\", 1234567", "x".repeat(PLAIN_STRING));
        assert_eq!(plain_string_end(long.as_bytes(), 0), None);
        assert_eq!(plain_string_end(br#""model":"gpt-4o-mini","#, 0), Some(7));
    }

    #[test]
    fn a_walk_reports_plain_and_escaped_members_as_before() {
        let text = r#"{"model" : "gpt-4o-mini","k\u0065y":"v\"w","n":1,"s":"The quick brown fox jumps over the lazy dog.","e":""}"#;
        let mut walker = MemberWalker::new(text).unwrap();
        let mut seen = Vec::new();
        while let Some(m) = walker.next_member().unwrap() {
            seen.push((m.key_raw, m.key_status, m.value_raw, m.value_status));
        }
        assert_eq!(walker.finish().unwrap(), text.len() - 1);
        let none = ParseStatus::None;
        let escaped = ParseStatus::HasEscaped;
        assert_eq!(
            seen,
            [
                (r#""model""#, none, r#""gpt-4o-mini""#, none),
                (r#""k\u0065y""#, escaped, r#""v\"w""#, escaped),
                (r#""n""#, none, "1", none),
                (
                    r#""s""#,
                    none,
                    r#""The quick brown fox jumps over the lazy dog.""#,
                    none
                ),
                (r#""e""#, none, r#""""#, none),
            ]
        );
        // A control character in a string is still refused.
        let mut walker = MemberWalker::new("{\"a\":\"x\u{1}y\",\"b\":1}").unwrap();
        assert!(walker.next_member().is_err());
    }

    /// Walks `text` going into every container (by recursion: test input
    /// only), and returns what the walk made of it.
    fn walk_into_everything(text: &str) -> Result<usize, JsonError> {
        fn value(walker: &mut MemberWalker<'_>, depth: usize) -> Result<(), JsonError> {
            match walker.peek() {
                Some(b'{') => {
                    let mut key = walker.enter_object(depth + 1)?;
                    while key.is_some() {
                        value(walker, depth + 1)?;
                        key = walker.next_key_in()?;
                    }
                    Ok(())
                }
                Some(b'[') => {
                    if walker.enter_array(depth + 1)? {
                        value(walker, depth + 1)?;
                        while walker.next_in_array()? {
                            value(walker, depth + 1)?;
                        }
                    }
                    Ok(())
                }
                _ => walker.value(depth).map(drop),
            }
        }
        let mut walker = MemberWalker::new(text)?;
        while walker.next_key()?.is_some() {
            value(&mut walker, 0)?;
            walker.end_member()?;
        }
        walker.finish()
    }

    fn walk_past_everything(text: &str) -> Result<usize, JsonError> {
        let mut walker = MemberWalker::new(text)?;
        while walker.next_member()?.is_some() {}
        walker.finish()
    }

    #[test]
    fn walking_into_containers_judges_as_walking_past_them() {
        let deep = |n: usize| format!("{{\"a\":{}{}}}", "[".repeat(n), "]".repeat(n));
        for text in [
            r#"{"a":[1,{"b":[],"c":{}},"x"],"d":{"e":{"f":[true,null]}}}"#,
            r#"{"a":[1,]}"#,
            r#"{"a":[,1]}"#,
            r#"{"a":{"b":1,}}"#,
            r#"{"a":{,"b":1}}"#,
            r#"{"a":{"b" 1}}"#,
            r#"{"a":{1:1}}"#,
            r#"{"a":[1 2]}"#,
            r#"{"a":{"b":1]}"#,
            r#"{"a":[1}"#,
            r#"{"a":[{"b":"\x"}]}"#,
            r#"{"a":[{"b":"\ud800"}]}"#,
            r#"{"a":[  ],"b":{  }}"#,
            r#"{"a":[{"b":[{"c":"#,
            "{\"a\":[\"\u{1}\"]}",
            &deep(MAX_NESTING - 2),
            &deep(MAX_NESTING - 1),
            &deep(MAX_NESTING),
        ] {
            assert_eq!(
                walk_into_everything(text),
                walk_past_everything(text),
                "{text}"
            );
        }
    }

    proptest! {
        #[test]
        fn any_text_is_judged_alike_walked_into_or_past(
            text in prop::collection::vec(
                prop::sample::select(vec!["{", "}", "[", "]", ",", ":", " ", "\"k\"", "1", "-", "\"\\u00e9\"", "\"\\q\"", "null", "tru"]),
                0..40,
            ),
        ) {
            let text = format!("{{\"a\":{}", text.concat());
            prop_assert_eq!(walk_into_everything(&text), walk_past_everything(&text));
        }

        #[test]
        fn whatever_ends_here_sonic_ends_the_same(
            chars in prop::collection::vec(
                prop::sample::select(vec!['a', '"', '\\', '\u{1}', '\n', ' ', '\u{e9}', '\u{1f600}', 'u', '0']),
                0..60,
            ),
        ) {
            let text: String = std::iter::once('"').chain(chars).collect();
            if let Some(end) = plain_string_end(text.as_bytes(), 0) {
                prop_assert_eq!(sonic_string_end(&text, 0), Some((end, ParseStatus::None)), "{:?}", text);
            }
        }
    }
}
