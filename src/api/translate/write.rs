//! Writing JSON straight into the output buffer: objects and arrays that
//! place their own commas, members whose values are copied from the input
//! text ([`Raw`]) or escaped from a `&str`.
//!
//! Invariant: keys are literals of the translators (plain ASCII, nothing to
//! escape); every value written is either a validated [`Raw`], a string
//! escaped by `push_json_string`, or a JSON literal, so the output is valid
//! JSON whenever each `open` is matched by its `close`.

use super::raw::Raw;
use crate::json::push_json_string;

/// An object being written.
pub(super) struct Obj<'o> {
    out: &'o mut Vec<u8>,
    empty: bool,
}

impl<'o> Obj<'o> {
    pub fn open(out: &'o mut Vec<u8>) -> Self {
        out.push(b'{');
        Self { out, empty: true }
    }

    /// Writes `"key":` and hands back the buffer for its value.
    pub fn key(&mut self, key: &str) -> &mut Vec<u8> {
        if !self.empty {
            self.out.push(b',');
        }
        self.empty = false;
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
        self.out
    }

    /// A member whose value is JSON text (a [`Raw`]'s, or a literal).
    pub fn json(&mut self, key: &str, json: &str) {
        self.key(key).extend_from_slice(json.as_bytes());
    }

    pub fn raw(&mut self, key: &str, value: Raw<'_>) {
        self.json(key, value.text());
    }

    pub fn str(&mut self, key: &str, value: &str) {
        push_json_string(self.key(key), value);
    }

    pub fn u64(&mut self, key: &str, value: u64) {
        let mut digits = itoa::Buffer::new();
        self.json(key, digits.format(value));
    }

    pub fn close(self) {
        self.out.push(b'}');
    }
}

/// An array being written.
pub(super) struct Arr<'o> {
    out: &'o mut Vec<u8>,
    empty: bool,
}

impl<'o> Arr<'o> {
    pub fn open(out: &'o mut Vec<u8>) -> Self {
        out.push(b'[');
        Self { out, empty: true }
    }

    /// Starts the next element and hands back the buffer for it.
    pub fn item(&mut self) -> &mut Vec<u8> {
        if !self.empty {
            self.out.push(b',');
        }
        self.empty = false;
        self.out
    }

    pub fn close(self) {
        self.out.push(b']');
    }
}

/// Writes one JSON string made of `pieces`, each the still-escaped content
/// of a string ([`Raw::str_inner`]), with `separator` (also escaped, e.g.
/// `\\n\\n`) between them. Joining escaped contents gives the escaped join.
pub(super) fn joined_string<'a>(
    out: &mut Vec<u8>,
    pieces: impl IntoIterator<Item = &'a str>,
    separator: &str,
) {
    out.push(b'"');
    for (i, piece) in pieces.into_iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(separator.as_bytes());
        }
        out.extend_from_slice(piece.as_bytes());
    }
    out.push(b'"');
}

/// Both dialects put text either in a plain string or in a list of typed
/// parts; this writes the text parts joined as one string and ignores the
/// rest (and anything else reads as the empty string).
pub(super) fn joined_text(out: &mut Vec<u8>, content: Raw<'_>, separator: &str) {
    out.push(b'"');
    joined_text_inner(out, content, separator);
    out.push(b'"');
}

/// [`joined_text`] without the quotes, to join several contents as one.
pub(super) fn joined_text_inner(out: &mut Vec<u8>, content: Raw<'_>, separator: &str) {
    if let Some(text) = content.str_inner() {
        out.extend_from_slice(text.as_bytes());
        return;
    }
    let texts = content
        .elements()
        .filter_map(|part| part.get("text").str_inner());
    // A separator goes between non-empty texts only: empty parts add nothing.
    let mut joined_any = false;
    for text in texts {
        if joined_any {
            out.extend_from_slice(separator.as_bytes());
        }
        out.extend_from_slice(text.as_bytes());
        joined_any |= !text.is_empty();
    }
}

#[cfg(test)]
mod tests {
    use super::super::raw::document;
    use super::*;

    #[test]
    fn objects_and_arrays_place_their_commas() {
        let doc = document(br#"{"x":[1,{"y":"a\nb"}]}"#).unwrap();
        let mut out = Vec::new();
        let mut o = Obj::open(&mut out);
        o.str("s", "q\"");
        o.raw("x", doc.get("x"));
        o.u64("n", 42);
        let mut a = Arr::open(o.key("list"));
        a.item().extend_from_slice(b"true");
        Obj::open(a.item()).close();
        a.close();
        o.close();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"s":"q\"","x":[1,{"y":"a\nb"}],"n":42,"list":[true,{}]}"#
        );
    }

    #[test]
    fn joined_text_joins_escaped_pieces() {
        let doc = document(
            br#"{"s":"one\"","p":[{"text":""},{"type":"text","text":"a\tb"},{"type":"image"},{"text":"c"}],"n":5}"#,
        )
        .unwrap();
        let text = |field: &str| {
            let mut out = Vec::new();
            joined_text(&mut out, doc.get(field), "\\n\\n");
            sonic_rs::from_slice::<String>(&out).unwrap()
        };
        assert_eq!(text("s"), "one\"");
        assert_eq!(text("p"), "a\tb\n\nc");
        assert_eq!(text("n"), "");
    }
}
