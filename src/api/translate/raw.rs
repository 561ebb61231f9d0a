//! Reading a JSON document as borrowed slices of its own text, without
//! building a tree: what the translators read their input with.
//!
//! A parsed tree (`sonic_rs::Value`) costs a node per value and an object
//! header per object, far more than the text itself: a `/v1/messages` body of
//! 1.2 M tiny content blocks took ~1.6 KB per block, 60 times the body, once
//! the translated tree was built beside it. Here a value is its text
//! ([`Raw`]): reading a field scans the object's members in place, and a
//! translator copies strings, numbers and whole sub-documents (tool schemas,
//! tool input) to its output byte for byte, escapes and all, so working
//! memory is the output buffer and nothing per value.
//!
//! Invariant: a [`Raw`] only ever holds text that was validated in full
//! first, by [`document`] (or, for a request body the proxy admitted, by
//! its scan: [`scanned_document`]; or value by value, by a reader walking
//! the body once: [`Raw::walked`]), or is a slice of such text
//! at a value boundary. That is what lets the member and element iterators
//! skip a value without checking it (byte by byte when short, with
//! sonic-rs's unchecked, non-recursive SIMD skipper when long), and treat an
//! unexpected byte as the end (it cannot occur). Validation is
//! `crate::json`'s walk: iterative, nesting capped at
//! [`crate::json::MAX_NESTING`], escapes checked.

use std::borrow::Cow;

use sonic_rs::parser::Parser;
use sonic_rs::Read;

use super::TranslateError;
use crate::json::walk::MemberWalker;
use crate::json::{quotes_or_backslashes, JsonError, JsonErrorKind};

/// A validated JSON value, as its text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Raw<'a>(&'a str);

/// What a missing member reads as, like indexing a parsed tree.
pub(super) const NULL: Raw<'static> = Raw("null");

/// Validates `body` as one JSON object and returns it. A body that is JSON
/// but not an object is `Invalid`, one that is not JSON `Json`.
pub(super) fn document(body: &[u8]) -> Result<Raw<'_>, TranslateError> {
    let text = utf8(body)?;
    validate_object(text)?;
    Ok(Raw(text.trim_ascii()))
}

/// A request body the proxy admitted: [`crate::json::scan_top_level`]
/// validated it (the same walk as [`document`]'s) and it is not repeated.
pub(super) fn scanned_document(body: &[u8]) -> Result<Raw<'_>, TranslateError> {
    let text = utf8(body)?.trim_ascii();
    if !text.starts_with('{') {
        return Err(TranslateError::Invalid(
            "top level must be a JSON object".into(),
        ));
    }
    Ok(Raw(text))
}

pub(super) fn utf8(body: &[u8]) -> Result<&str, TranslateError> {
    std::str::from_utf8(body)
        .map_err(|e| TranslateError::Json(format!("not UTF-8 at byte {}", e.valid_up_to())))
}

/// Validates `text` as any JSON value (tool arguments carried in a string).
pub(super) fn value(text: &str) -> Result<Raw<'_>, TranslateError> {
    let text = text.trim_ascii();
    if text.starts_with('{') {
        validate_object(text)?;
        return Ok(Raw(text));
    }
    // The walk validates objects only: check the value as the one member of
    // an object (and nothing but it: `1,"x":2` would pass as two members).
    // Arrays and scalars here are rare and small.
    let wrapped = format!("{{\"v\":{text}}}");
    let one_value = MemberWalker::new(&wrapped).and_then(|mut walker| {
        let first = walker.next_member()?.map(|m| m.value_raw.len());
        let second = walker.next_member()?.is_some();
        walker.finish()?;
        Ok(first == Some(text.len()) && !second)
    });
    match one_value {
        Ok(true) => Ok(Raw(text)),
        Ok(false) => Err(TranslateError::Json("more than one JSON value".into())),
        Err(e) => Err(TranslateError::Json(e.to_string())),
    }
}

fn validate_object(text: &str) -> Result<(), TranslateError> {
    let walked = MemberWalker::new(text).and_then(|mut walker| {
        while walker.next_member()?.is_some() {}
        walker.finish()
    });
    walked.map(drop).map_err(walk_error)
}

/// What [`document`] makes of the walk's error: a body that is JSON but
/// not an object is `Invalid`, one that is not JSON `Json`.
pub(super) fn walk_error(e: JsonError) -> TranslateError {
    if *e.kind() == JsonErrorKind::NotAnObject {
        TranslateError::Invalid("top level must be a JSON object".into())
    } else {
        TranslateError::Json(e.to_string())
    }
}

impl<'a> Raw<'a> {
    /// A value the validating walk has just read in full (`MemberWalker`'s
    /// `value`, or a key): the one way in besides [`document`], for a
    /// reader that walks a body once and keeps what it needs.
    pub fn walked(text: &'a str) -> Self {
        Raw(text)
    }

    /// The value's text, exactly as in the document.
    pub fn text(self) -> &'a str {
        self.0
    }

    fn first_byte(self) -> u8 {
        self.0.as_bytes().first().copied().unwrap_or(b'n')
    }

    pub fn is_null(self) -> bool {
        self.0 == "null"
    }

    pub fn is_object(self) -> bool {
        self.first_byte() == b'{'
    }

    pub fn is_array(self) -> bool {
        self.first_byte() == b'['
    }

    pub fn is_str(self) -> bool {
        self.first_byte() == b'"'
    }

    pub fn is_number(self) -> bool {
        matches!(self.first_byte(), b'-' | b'0'..=b'9')
    }

    pub fn as_bool(self) -> Option<bool> {
        match self.0 {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        }
    }

    /// A non-negative integer (not `1.0`, not `1e3`), as a tree would read it.
    pub fn as_u64(self) -> Option<u64> {
        self.0.parse().ok()
    }

    pub fn as_f64(self) -> Option<f64> {
        self.is_number().then(|| self.0.parse().ok()).flatten()
    }

    /// A string's content still escaped, as it sits between the quotes: what
    /// is copied into another JSON string unchanged.
    pub fn str_inner(self) -> Option<&'a str> {
        self.is_str().then(|| &self.0[1..self.0.len() - 1])
    }

    /// A string's decoded content; borrowed unless it has escapes.
    pub fn as_str(self) -> Option<Cow<'a, str>> {
        let inner = self.str_inner()?;
        if !inner.contains('\\') {
            return Some(Cow::Borrowed(inner));
        }
        // Validated, so decoding cannot fail.
        sonic_rs::from_str::<String>(self.0).ok().map(Cow::Owned)
    }

    /// Whether this is the string `expected` (compared decoded).
    pub fn is_str_eq(self, expected: &str) -> bool {
        match self.str_inner() {
            Some(inner) if !inner.contains('\\') => inner == expected,
            Some(_) => self.as_str().is_some_and(|s| s == expected),
            None => false,
        }
    }

    /// Member `key` of an object ([`NULL`] when absent or not an object). A
    /// repeated key reads as its last occurrence.
    pub fn get(self, key: &str) -> Raw<'a> {
        self.pick([key])[0]
    }

    /// Several members of an object in one pass over it, in the order of
    /// `keys`; [`NULL`] for each one absent.
    pub fn pick<const N: usize>(self, keys: [&str; N]) -> [Raw<'a>; N] {
        let mut found = [NULL; N];
        for (key, value) in self.members() {
            if let Some(i) = key.position_in(&keys) {
                found[i] = value;
            }
        }
        found
    }

    /// An object's members in order (none when not an object).
    pub fn members(self) -> Members<'a> {
        Members(Cursor::open(self, b'{'))
    }

    /// An array's elements in order (none when not an array).
    pub fn elements(self) -> Elements<'a> {
        Elements(Cursor::open(self, b'['))
    }
}

/// An object key, still escaped.
#[derive(Clone, Copy, Debug)]
pub(super) struct Key<'a>(Raw<'a>);

impl Key<'_> {
    /// What [`Self::position_in`] is held to (the test's reference).
    #[cfg(test)]
    pub fn matches(self, name: &str) -> bool {
        self.0.is_str_eq(name)
    }

    /// Where `names` has this key (the first match, compared decoded):
    /// [`Self::matches`] against each name, with the key looked at for
    /// escapes once rather than once per name (a request's top-level
    /// `pick` names ten).
    fn position_in(self, names: &[&str]) -> Option<usize> {
        let inner = self.0.str_inner()?;
        if !inner.as_bytes().contains(&b'\\') {
            return names.iter().position(|name| *name == inner);
        }
        let decoded = self.0.as_str()?;
        names.iter().position(|name| *name == decoded)
    }
}

/// Walks the members or elements of one validated container.
struct Cursor<'a> {
    text: &'a str,
    /// Where the next key or value starts; `None` once the container closed.
    at: Option<usize>,
    close: u8,
}

impl<'a> Cursor<'a> {
    fn open(container: Raw<'a>, open: u8) -> Self {
        let text = container.0;
        let bytes = text.as_bytes();
        let close = if open == b'{' { b'}' } else { b']' };
        let at = match bytes.first() {
            Some(&b) if b == open => {
                let first = skip_blanks(bytes, 1);
                (bytes.get(first) != Some(&close)).then_some(first)
            }
            _ => None,
        };
        Self { text, at, close }
    }

    /// The next value, and the separator after it: `,`, or `:` after a
    /// key, or the closing bracket, which ends the walk.
    fn next(&mut self, separator: u8) -> Option<Raw<'a>> {
        let start = self.at?;
        let bytes = self.text.as_bytes();
        let end = skip_value(self.text, start);
        let after = skip_blanks(bytes, end);
        // Value boundaries are ASCII delimiters, so these are char boundaries.
        let value = self.text.get(start..end);
        match (value, bytes.get(after)) {
            (Some(value), Some(&b)) if b == separator => {
                self.at = Some(skip_blanks(bytes, after + 1));
                Some(Raw(value))
            }
            (Some(value), Some(&b)) if b == self.close && separator == b',' => {
                self.at = None;
                Some(Raw(value))
            }
            _ => {
                debug_assert!(false, "a validated document broke off");
                self.at = None;
                None
            }
        }
    }
}

fn skip_blanks(text: &[u8], mut at: usize) -> usize {
    while matches!(text.get(at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        at += 1;
    }
    at
}

/// Values up to about this long are skipped here (strings eight bytes at a
/// time); longer ones by sonic-rs's SIMD skipper (unchecked: the text is
/// valid), which costs a parser set-up per value but goes through escapes
/// and nested strings 32 or 64 bytes at a time.
const SHORT_VALUE: usize = 32;

/// The end of the value that starts at `at`. The text is valid JSON, so
/// only quotes, backslashes (inside strings) and brackets need looking at.
fn skip_value(text: &str, at: usize) -> usize {
    let bytes = text.as_bytes();
    let short_end = (at + SHORT_VALUE).min(bytes.len());
    let short = match bytes.get(at) {
        Some(b'"') => short_string_end(bytes, at, short_end),
        Some(b'{' | b'[') => short_container_end(bytes, at, short_end),
        // A number or a literal runs to the next delimiter.
        _ => {
            let rest = &bytes[at.min(bytes.len())..];
            return at
                + rest
                    .iter()
                    .position(|b| {
                        matches!(b, b',' | b'}' | b']' | b':' | b' ' | b'\t' | b'\n' | b'\r')
                    })
                    .unwrap_or(rest.len());
        }
    };
    if let Some(end) = short {
        return end;
    }
    let mut parser = Parser::new(Read::from(&text[at..]));
    match parser.skip_one(false) {
        Ok(_) => at + parser.offset(),
        Err(_) => bytes.len(),
    }
}

/// The end of a string that closes before `limit`, else `None`. Eight
/// bytes at a time while none of them is a quote or a backslash (byte by
/// byte, this loop was a tenth of a translated request's instructions).
fn short_string_end(bytes: &[u8], at: usize, limit: usize) -> Option<usize> {
    let mut i = at + 1;
    while i < limit {
        if let Some(word) = bytes.get(i..i + 8).filter(|_| i + 8 <= limit) {
            let word = u64::from_le_bytes(word.try_into().unwrap_or_default());
            let hits = quotes_or_backslashes(word);
            if hits == 0 {
                i += 8;
                continue;
            }
            // The lowest flagged byte is the first quote or backslash.
            i += hits.trailing_zeros() as usize / 8;
        }
        match bytes[i] {
            b'"' => return Some(i + 1),
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
    None
}

/// The end of a container that closes before `limit`, else `None`.
fn short_container_end(bytes: &[u8], at: usize, limit: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = at;
    while i < limit {
        match bytes[i] {
            b'"' => {
                i = short_string_end(bytes, i, limit)?;
                continue;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

pub(super) struct Members<'a>(Cursor<'a>);

impl<'a> Iterator for Members<'a> {
    type Item = (Key<'a>, Raw<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        let key = self.0.next(b':')?;
        let value = self.0.next(b',')?;
        Some((Key(key), value))
    }
}

pub(super) struct Elements<'a>(Cursor<'a>);

impl<'a> Iterator for Elements<'a> {
    type Item = Raw<'a>;

    fn next(&mut self) -> Option<Raw<'a>> {
        self.0.next(b',')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_and_elements_are_slices_of_the_text() {
        let doc =
            document(br#" { "a" : [1, {"b": "x\"y"}, [] ] , "c":null, "a\u0062": 2.5 } "#).unwrap();
        let members: Vec<_> = doc.members().map(|(_, v)| v.text()).collect();
        assert_eq!(members, [r#"[1, {"b": "x\"y"}, [] ]"#, "null", "2.5"]);
        let a = doc.get("a");
        let elements: Vec<_> = a.elements().map(Raw::text).collect();
        assert_eq!(elements, ["1", r#"{"b": "x\"y"}"#, "[]"]);
        assert_eq!(
            a.elements().nth(1).unwrap().get("b").as_str().unwrap(),
            "x\"y"
        );
        assert_eq!(
            doc.get("ab").as_f64(),
            Some(2.5),
            "escaped keys compare decoded"
        );
        assert!(doc.get("missing").is_null());
        assert_eq!(
            doc.get("a").elements().nth(2).unwrap().elements().count(),
            0
        );
    }

    #[test]
    fn a_key_is_found_where_matching_each_name_finds_it() {
        let doc = document(br#"{"a":1,"b\u0061":2,"\u0062":3,"c\"":4,"":5,"d":6}"#).unwrap();
        let names = ["b", "ba", "a", "c\"", "", "a"];
        for (key, _) in doc.members() {
            let each = names.iter().position(|name| key.matches(name));
            assert_eq!(key.position_in(&names), each, "{key:?}");
        }
        assert_eq!(doc.pick(["ba", "b", "d"]).map(Raw::text), ["2", "3", "6"]);
    }

    #[test]
    fn scalars_read_like_a_tree() {
        let doc = document(br#"{"n":7,"f":1.0,"neg":-1,"t":true,"s":"\u0041b","e":""}"#).unwrap();
        let [n, f, neg, t, s, e] = doc.pick(["n", "f", "neg", "t", "s", "e"]);
        assert_eq!(n.as_u64(), Some(7));
        assert_eq!(f.as_u64(), None);
        assert_eq!(neg.as_u64(), None);
        assert_eq!(t.as_bool(), Some(true));
        assert_eq!(s.as_str().unwrap(), "Ab");
        assert_eq!(s.str_inner(), Some("\\u0041b"));
        assert!(s.is_str_eq("Ab"));
        assert_eq!(e.as_str().unwrap(), "");
        assert!(!n.is_str() && n.is_number() && !t.is_number());
    }

    #[test]
    fn only_valid_objects_become_documents() {
        assert!(matches!(document(b"{"), Err(TranslateError::Json(_))));
        assert!(matches!(document(b"[]"), Err(TranslateError::Invalid(_))));
        assert!(matches!(
            document(b"{\"a\":1} x"),
            Err(TranslateError::Json(_))
        ));
        assert!(matches!(document(b"\xff"), Err(TranslateError::Json(_))));
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(200), "]".repeat(200));
        assert!(matches!(
            document(deep.as_bytes()),
            Err(TranslateError::Json(_))
        ));
        assert!(value(" [1, 2] ").is_ok());
        assert!(value("{oops").is_err());
        assert!(value("1 2").is_err());
        assert!(value("1,\"x\":2").is_err(), "one value, not members");
        assert!(value("[1],\"x\":{}").is_err());
        assert_eq!(value(" 5 ").unwrap().text(), "5");
    }

    /// The byte-by-byte loop `short_string_end` replaced.
    fn string_end_bytewise(bytes: &[u8], at: usize, limit: usize) -> Option<usize> {
        let mut i = at + 1;
        while i < limit {
            match bytes[i] {
                b'"' => return Some(i + 1),
                b'\\' => i += 2,
                _ => i += 1,
            }
        }
        None
    }

    #[test]
    fn strings_end_where_the_bytewise_loop_ends_them() {
        for text in [
            r#""""#,
            r#""abcdefgh""#,
            r#""abcdefghijklmnopqrstuvwxyz\"0123456789\\""#,
            r#""\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\\"x""#,
            "\"h\u{e9}llo w\u{f6}rld, \u{1f600} \\u0041 ok\"",
        ] {
            let bytes = text.as_bytes();
            for limit in 0..=bytes.len() {
                assert_eq!(
                    short_string_end(bytes, 0, limit),
                    string_end_bytewise(bytes, 0, limit),
                    "{text} {limit}"
                );
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_end_where_the_bytewise_loop_ends_them(
            bytes in proptest::collection::vec(
                proptest::sample::select(b"a\"\\\x80\xff\x22\x5c\x01 ".to_vec()), 1..80),
            at in 0usize..80,
            limit in 0usize..90,
        ) {
            let at = at % bytes.len();
            let limit = limit.min(bytes.len());
            proptest::prop_assert_eq!(
                short_string_end(&bytes, at, limit),
                string_end_bytewise(&bytes, at, limit)
            );
        }
    }

    #[test]
    fn values_of_any_length_end_where_sonic_ends_them() {
        for len in 0..2 * SHORT_VALUE + 20 {
            let filler: String = "ab\\\"c{[]}, é".chars().cycle().take(len).collect();
            let filler = filler.trim_end_matches('\\');
            for text in [
                format!("\"{filler}\" ,1"),
                format!("[\"{filler}\",{{\"k\":[1,2,\"{filler}\"]}}] ,1"),
                format!("{{\"a\":{{\"b\":\"{filler}\"}},\"c\":[]}}]"),
            ] {
                let mut parser = Parser::new(Read::from(text.as_str()));
                parser.skip_one(false).unwrap();
                assert_eq!(skip_value(&text, 0), parser.offset(), "{text}");
            }
        }
    }
}
