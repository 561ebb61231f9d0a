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
        // Most scalars in LLM JSON are `null`: a literal is compared whole
        // rather than read byte by byte to a delimiter.
        b'n' => literal_end(json, start, b"null"),
        b't' => literal_end(json, start, b"true"),
        b'f' => literal_end(json, start, b"false"),
        _ => {
            let len = json[start..]
                .iter()
                .position(|b| !matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
                .unwrap_or(json.len() - start);
            (len > 0).then_some(start + len)
        }
    }
}

/// One past `literal`, if it is what starts at `start`.
#[inline(always)]
fn literal_end(json: &[u8], start: usize, literal: &[u8]) -> Option<usize> {
    let end = start + literal.len();
    (json.get(start..end)? == literal).then_some(end)
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

/// The members of an object (`{…}`), or the elements of an array (`[…]`):
/// each as its key's raw text (quotes off, escapes not decoded; empty for
/// an array's element) and its value's raw text, in order. Values are
/// delimited, not validated. The iteration ends at the closing bracket, or
/// early at malformed text; [`Items::complete`] tells which (and, for the
/// outermost container, that only whitespace follows it).
///
/// A reader that wants a nested container's items walks into it instead of
/// past it ([`Items::next_key`], [`Items::inner`], [`Items::resume`]), so
/// its bytes are read once rather than once to find its end and again to
/// read it.
pub struct Items<'a> {
    json: &'a [u8],
    at: usize,
    /// `Some(true)` for an object, `Some(false)` an array, `None` neither.
    object: Option<bool>,
    /// The outermost container: only whitespace may follow its close.
    outer: bool,
    first: bool,
    ended: bool,
    complete: bool,
    key_at: usize,
}

impl<'a> Items<'a> {
    /// The items of the container `json` is.
    pub fn new(json: &'a [u8]) -> Items<'a> {
        Items::open(json, skip_space(json, 0), true)
    }

    /// The items of the container opening at `at` in `json` (as
    /// [`Items::next_key`] gives it).
    pub fn inner(json: &'a [u8], at: usize) -> Items<'a> {
        Items::open(json, at, false)
    }

    fn open(json: &'a [u8], at: usize, outer: bool) -> Items<'a> {
        let object = match json.get(at) {
            Some(b'{') => Some(true),
            Some(b'[') => Some(false),
            _ => None,
        };
        Items {
            json,
            at: at + 1,
            object,
            outer,
            first: true,
            ended: object.is_none(),
            complete: false,
            key_at: at,
        }
    }

    /// The members of the object `json` is, read from the one whose key
    /// opens at `key` (its separator, if any, already passed): where a
    /// reader that saw the bytes before `key`, and the quote at it, in an
    /// earlier object takes up this one (the walk so far is decided by
    /// those bytes alone).
    pub fn from_member(json: &'a [u8], key: usize) -> Items<'a> {
        Items {
            json,
            at: key,
            object: Some(true),
            outer: true,
            first: true,
            ended: false,
            complete: false,
            key_at: key,
        }
    }

    /// Where the key [`Items::next_key`] returned last opens (its quote).
    pub fn key_at(&self) -> usize {
        self.key_at
    }

    /// Whether `json` is an object (as opposed to an array or neither).
    pub fn is_object(&self) -> bool {
        self.object == Some(true)
    }

    /// Whether `json` is an array.
    pub fn is_array(&self) -> bool {
        self.object == Some(false)
    }

    /// Whether the iteration reached the closing bracket (with, for the
    /// outermost container, only whitespace after it).
    pub fn complete(&self) -> bool {
        self.complete
    }

    /// The next item's key and where its value starts, the value not read:
    /// follow with [`Items::skip_value`], or walk into it with
    /// [`Items::inner`] and then [`Items::resume`].
    #[inline(always)]
    pub fn next_key(&mut self) -> Option<(&'a [u8], usize)> {
        if self.ended {
            return None;
        }
        let key = self.key();
        self.ended = key.is_none();
        key
    }

    /// Past the value [`Items::next_key`] stopped at; its raw text.
    #[inline(always)]
    pub fn skip_value(&mut self) -> Option<&'a [u8]> {
        let Some(end) = value_end(self.json, self.at) else {
            self.ended = true;
            return None;
        };
        let value = &self.json[self.at..end];
        self.at = end;
        Some(value)
    }

    /// Past the value [`Items::next_key`] stopped at, which `inner` walked
    /// to its close; the iteration ends unless `inner` is complete.
    pub fn resume(&mut self, inner: &Items<'a>) {
        self.at = inner.at;
        self.ended |= !inner.complete;
    }

    #[inline(always)]
    fn key(&mut self) -> Option<(&'a [u8], usize)> {
        let (json, object) = (self.json, self.object == Some(true));
        let close = if object { b'}' } else { b']' };
        let mut at = skip_space(json, self.at);
        let first = std::mem::take(&mut self.first);
        match json.get(at) {
            Some(&c) if c == close => {
                self.at = at + 1;
                self.complete = !self.outer || skip_space(json, at + 1) == json.len();
                return None;
            }
            Some(b',') if !first => at = skip_space(json, at + 1),
            _ if first => {}
            _ => return None,
        }
        let key = if object {
            if json.get(at) != Some(&b'"') {
                return None;
            }
            self.key_at = at;
            let end = string_end(json, at)?;
            let key = &json[at + 1..end - 1];
            at = skip_space(json, end);
            if json.get(at) != Some(&b':') {
                return None;
            }
            at = skip_space(json, at + 1);
            key
        } else {
            &json[at..at]
        };
        self.at = at;
        Some((key, at))
    }
}

impl<'a> Iterator for Items<'a> {
    type Item = (&'a [u8], &'a [u8]);

    // Inlined like its parts: a reader's loop over a chunk's members is
    // the whole of its cost, and a call per member is a third of that.
    #[inline(always)]
    fn next(&mut self) -> Option<Self::Item> {
        let (key, _) = self.next_key()?;
        Some((key, self.skip_value()?))
    }
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
            // Nested too, as a caller walks into what it is given.
            let mut stack = vec![&bytes[..]];
            while let Some(json) = stack.pop() {
                for (_, value) in Items::new(json) {
                    prop_assert!(!value.is_empty() && value.len() < json.len());
                    stack.push(value);
                }
            }
        }
    }

    fn items(json: &str) -> (Vec<(String, String)>, bool) {
        let mut it = Items::new(json.as_bytes());
        let got = (&mut it)
            .map(|(k, v)| {
                (
                    String::from_utf8(k.to_vec()).unwrap(),
                    String::from_utf8(v.to_vec()).unwrap(),
                )
            })
            .collect();
        (got, it.complete())
    }

    #[test]
    fn items_are_an_objects_members_or_an_arrays_elements() {
        let (got, complete) = items(r#" { "a" : [1, {"b": "}"}] , "c\"d": "x\"y", "e": null } "#);
        assert!(complete);
        let keys: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["a", "c\\\"d", "e"]);
        assert_eq!(got[0].1, r#"[1, {"b": "}"}]"#);
        assert_eq!(got[1].1, r#""x\"y""#);
        let (got, complete) = items(r#"[ {"i":0} ,2,"s" ]"#);
        assert!(complete);
        let values: Vec<&str> = got.iter().map(|(_, v)| v.as_str()).collect();
        assert_eq!(values, [r#"{"i":0}"#, "2", r#""s""#]);
        assert_eq!(items("{}"), (vec![], true));
        assert_eq!(items(" [ ] "), (vec![], true));
    }

    #[test]
    fn a_nested_container_is_walked_into_and_past() {
        let json = br#"{"a": [ {"i": 1}, {"i": 2} ], "b": true}"#;
        let mut top = Items::new(json);
        let (key, at) = top.next_key().unwrap();
        assert_eq!(key, b"a");
        let mut list = Items::inner(json, at);
        let mut seen = vec![];
        while let Some((_, at)) = list.next_key() {
            let mut fields = Items::inner(json, at);
            seen.extend((&mut fields).map(|(k, v)| (k.to_vec(), v.to_vec())));
            list.resume(&fields);
        }
        assert!(list.complete());
        assert_eq!(
            seen,
            [
                (b"i".to_vec(), b"1".to_vec()),
                (b"i".to_vec(), b"2".to_vec())
            ]
        );
        top.resume(&list);
        assert_eq!(top.next(), Some((&b"b"[..], &b"true"[..])));
        assert_eq!(top.next(), None);
        assert!(top.complete());
        // An inner container cut short ends the outer iteration too.
        let cut = br#"{"a": [1, 2 "b": 3}"#;
        let mut top = Items::new(cut);
        let (_, at) = top.next_key().unwrap();
        let mut list = Items::inner(cut, at);
        while list.next().is_some() {}
        top.resume(&list);
        assert_eq!(top.next(), None);
        assert!(!top.complete());
    }

    #[test]
    fn malformed_items_end_incomplete() {
        for json in [
            "",
            "1",
            r#""s""#,
            "{",
            "[",
            r#"{"a":1,}"#,
            "[1,]",
            r#"{"a" 1}"#,
            r#"{"a":1 "b":2}"#,
            r#"{"a":1}x"#,
            r#"{"a":"#,
            r#"{"a":"x}"#,
            "[1 2]",
            r#"{1:2}"#,
            ",",
            "{,}",
        ] {
            let (_, complete) = items(json);
            assert!(!complete, "{json}");
        }
    }

    fn json_value(depth: u32) -> impl Strategy<Value = serde_json::Value> {
        use serde_json::Value;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i32>().prop_map(Value::from),
            "[a-z\"\\\\\u{e9}\n{}\\[\\],:]{0,6}".prop_map(Value::String),
        ];
        leaf.prop_recursive(depth, 32, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-c\"\\\\]{1,3}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn items_of_valid_json_are_what_serde_sees(v in json_value(3)) {
            let text = v.to_string();
            let mut it = Items::new(text.as_bytes());
            let got: Vec<(Vec<u8>, serde_json::Value)> = (&mut it)
                .map(|(k, v)| (k.to_vec(), serde_json::from_slice(v).unwrap()))
                .collect();
            match &v {
                serde_json::Value::Object(m) => {
                    prop_assert!(it.complete());
                    let want: Vec<(Vec<u8>, serde_json::Value)> = m.iter()
                        .map(|(k, v)| {
                            let quoted = serde_json::to_string(k).unwrap();
                            (quoted.as_bytes()[1..quoted.len() - 1].to_vec(), v.clone())
                        })
                        .collect();
                    prop_assert_eq!(got, want);
                }
                serde_json::Value::Array(a) => {
                    prop_assert!(it.complete());
                    prop_assert_eq!(got.into_iter().map(|(_, v)| v).collect::<Vec<_>>(), a.clone());
                }
                _ => prop_assert!(!it.complete() && got.is_empty()),
            }
        }
    }
}
