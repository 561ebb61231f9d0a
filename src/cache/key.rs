//! The exact cache's key: a digest of the caller's namespace, the route,
//! the resolved model and the request body in a canonical form, so that
//! two requests that mean the same get the same key however their JSON is
//! spaced or their members ordered.
//!
//! The digest ([`KeyDigest`]) is SHA-256 when keys name entries in a
//! shared tier (every instance must compute the same one), and otherwise
//! keyed SipHash-1-3 with a 128-bit output and a random key drawn per
//! process: a keyed PRF, so no caller can make two requests collide
//! without the key, at a fraction of SHA-256's time (the canonical form of
//! a chat body is a few hundred bytes, and a miss pays for its digest).
//!
//! The canonical form is written in one pass over the body and hashed in
//! one call: compact JSON (no space outside strings) with each object's
//! members in the order of their keys (written as they come, then moved
//! into order, if they were not in it) and each string in one escaping
//! (`\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`, `\u00xx` for the other
//! control characters, everything else as UTF-8), after the namespace,
//! route and model, each length-prefixed (LEB128). JSON delimits itself,
//! so no two different documents give the same form; a string already in
//! that escaping (nearly all) is copied as it stands. Members the answer
//! does not depend on are left out at the top level: `stream`,
//! `stream_options`, `user`, and the configured ones.
//!
//! Invariants: never panics; the form, a scratch buffer for reordering and
//! the member list are kept per thread and reused (a body past
//! [`KEPT_CAPACITY`] does not keep them grown); a string with other
//! escapes is decoded and escaped again; depth is bounded by
//! [`MAX_NESTING`]; a body the walk finds malformed has no key (`None`:
//! not cacheable; bodies are validated at admission, so numbers are taken
//! as written rather than checked again).
//! Numbers are not normalised: `1` and `1.0` are different requests.

use std::ops::Range;

use ring::digest::SHA256;
use siphasher::sip128::{Hasher128, SipHasher13};
use std::hash::Hasher;

use crate::json::{next_quote_or_backslash, push_json_string, skip_space, value_end, MAX_NESTING};

/// Top-level members every key leaves out: they change how an answer is
/// delivered or who asked, not what it says.
pub const ALWAYS_EXCLUDED: &[&str] = &["stream", "stream_options", "user"];

/// A request's cache key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheKey(pub [u8; 32]);

/// How a canonical form becomes a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyDigest {
    /// Keyed SipHash-1-3, 128 bits (the key's last 16 bytes are zero):
    /// keys that never leave the process.
    Keyed(u64, u64),
    /// SHA-256: keys a shared tier (Redis) holds, the same on every instance.
    Sha256,
}

impl KeyDigest {
    /// A keyed digest with a key from the system's CSPRNG.
    pub fn random() -> KeyDigest {
        use ring::rand::SecureRandom;
        let mut key = [0u8; 16];
        // A failing system RNG leaves no secret to key with: fall back to
        // the clock and the process id rather than refuse to cache.
        if ring::rand::SystemRandom::new().fill(&mut key).is_err() {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos() as u64;
            let mixed = (t ^ u64::from(std::process::id())).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            key[..8].copy_from_slice(&t.to_le_bytes());
            key[8..].copy_from_slice(&mixed.to_le_bytes());
        }
        let half = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("8 bytes"));
        KeyDigest::Keyed(half(&key[..8]), half(&key[8..]))
    }

    fn key(&self, form: &[u8]) -> CacheKey {
        let mut key = [0u8; 32];
        match *self {
            KeyDigest::Keyed(k0, k1) => {
                let mut h = SipHasher13::new_with_keys(k0, k1);
                h.write(form);
                key[..16].copy_from_slice(&h.finish128().as_bytes());
            }
            KeyDigest::Sha256 => {
                key.copy_from_slice(ring::digest::digest(&SHA256, form).as_ref());
            }
        }
        CacheKey(key)
    }
}

impl CacheKey {
    /// Lowercase hex, for a Redis key or a log line.
    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// The key, by `digest`, of `body` (a JSON object) sent to `route` for
/// `model` by a caller in `namespace`, leaving out the top-level members in
/// `exclude` (besides [`ALWAYS_EXCLUDED`]). `None` when the body is not
/// well-formed JSON or nests too deep.
pub fn cache_key(
    digest: &KeyDigest,
    namespace: &str,
    route: &str,
    model: &str,
    body: &[u8],
    exclude: &[String],
) -> Option<CacheKey> {
    BUFFERS.with(|buffers| {
        let mut buffers = buffers.try_borrow_mut().ok()?;
        let Buffers {
            out,
            scratch,
            members,
        } = &mut *buffers;
        out.clear();
        members.clear();
        for part in [namespace, route, model] {
            write_len(out, part.len());
            out.extend_from_slice(part.as_bytes());
        }
        let mut walk = Canonical {
            json: body,
            out,
            scratch,
            members,
            exclude,
        };
        let start = skip_space(body, 0);
        let end = walk.value(start, 0)?;
        if skip_space(body, end) != body.len() {
            return None;
        }
        let key = digest.key(out);
        // A huge body's buffer is not kept for the next, small one.
        if out.capacity() > KEPT_CAPACITY {
            *out = Vec::new();
            *scratch = Vec::new();
        }
        Some(key)
    })
}

/// The most a thread keeps of its walk buffers between keys.
const KEPT_CAPACITY: usize = 256 * 1024;

/// The walk's buffers, kept per thread so a request's key allocates
/// nothing once they have grown to its body's size.
#[derive(Default)]
struct Buffers {
    out: Vec<u8>,
    scratch: Vec<u8>,
    members: Vec<Member>,
}

thread_local! {
    static BUFFERS: std::cell::RefCell<Buffers> = Default::default();
}

/// One object member: where its key (canonical text, quotes included) and
/// the whole member (key, colon and value) are in the output.
struct Member {
    key: Range<usize>,
    whole: Range<usize>,
}

/// One pass over the body, writing the canonical form: compact JSON, each
/// object's members in the order of their canonical keys (moved into it,
/// already written, only where they were not), strings with one escaping.
/// A string with no escape, or only the short ones, is its canonical self
/// and is copied as it stands.
struct Canonical<'a, 'b> {
    json: &'a [u8],
    out: &'b mut Vec<u8>,
    /// An object's members in key order, while they are moved.
    scratch: &'b mut Vec<u8>,
    /// Members of the objects being walked, innermost last.
    members: &'b mut Vec<Member>,
    exclude: &'a [String],
}

impl Canonical<'_, '_> {
    /// Writes the value at `at` (no space before it); where it ends.
    fn value(&mut self, at: usize, depth: usize) -> Option<usize> {
        match *self.json.get(at)? {
            b'{' => self.object(at, depth),
            b'[' => self.array(at, depth),
            b'"' => self.string(at),
            b't' => self.literal(at, b"true"),
            b'f' => self.literal(at, b"false"),
            b'n' => self.literal(at, b"null"),
            b'-' | b'0'..=b'9' => {
                let len = self.json[at..]
                    .iter()
                    .position(|b| !matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
                    .unwrap_or(self.json.len() - at);
                self.out.extend_from_slice(&self.json[at..at + len]);
                Some(at + len)
            }
            _ => None,
        }
    }

    /// Writes the string opening at `at` in canonical form; where it ends.
    fn string(&mut self, at: usize) -> Option<usize> {
        let (end, plain) = string_end(self.json, at)?;
        if plain {
            self.out.extend_from_slice(&self.json[at..end]);
        } else {
            let text: String = sonic_rs::from_slice(&self.json[at..end]).ok()?;
            push_json_string(self.out, &text);
        }
        Some(end)
    }

    fn literal(&mut self, at: usize, word: &[u8]) -> Option<usize> {
        self.json[at..].starts_with(word).then(|| {
            self.out.extend_from_slice(word);
            at + word.len()
        })
    }

    fn array(&mut self, open: usize, depth: usize) -> Option<usize> {
        if depth + 1 >= MAX_NESTING {
            return None;
        }
        self.out.push(b'[');
        let mut at = skip_space(self.json, open + 1);
        if self.json.get(at) == Some(&b']') {
            self.out.push(b']');
            return Some(at + 1);
        }
        loop {
            at = self.value(at, depth + 1)?;
            at = skip_space(self.json, at);
            match self.json.get(at)? {
                b',' => {
                    self.out.push(b',');
                    at = skip_space(self.json, at + 1);
                }
                b']' => {
                    self.out.push(b']');
                    return Some(at + 1);
                }
                _ => return None,
            }
        }
    }

    /// Writes each member (its key, then its value) as it comes, comma
    /// separated, then, if they were not in the order of their keys, puts
    /// them in it.
    fn object(&mut self, open: usize, depth: usize) -> Option<usize> {
        if depth + 1 >= MAX_NESTING {
            return None;
        }
        let first = self.members.len();
        self.out.push(b'{');
        let body_start = self.out.len();
        let mut sorted = true;
        let mut at = skip_space(self.json, open + 1);
        let end = if self.json.get(at) == Some(&b'}') {
            at + 1
        } else {
            loop {
                if self.json.get(at) != Some(&b'"') {
                    return None;
                }
                let key_start = self.out.len();
                let key_end = self.string(at)?;
                let key = key_start..self.out.len();
                at = skip_space(self.json, key_end);
                if self.json.get(at) != Some(&b':') {
                    return None;
                }
                let value_start = skip_space(self.json, at + 1);
                let value_end = if depth == 0 && self.is_excluded(&self.out[key.clone()]) {
                    self.out.truncate(key_start);
                    value_end(self.json, value_start)?
                } else {
                    self.out.push(b':');
                    let value_end = self.value(value_start, depth + 1)?;
                    if let Some(last) = self.members[first..].last() {
                        sorted &= self.out[last.key.clone()] <= self.out[key.clone()];
                    }
                    self.members.push(Member {
                        key,
                        whole: key_start..self.out.len(),
                    });
                    self.out.push(b',');
                    value_end
                };
                at = skip_space(self.json, value_end);
                match self.json.get(at)? {
                    b',' => at = skip_space(self.json, at + 1),
                    b'}' => break at + 1,
                    _ => return None,
                }
            }
        };
        if !sorted {
            let out = &*self.out;
            let members = &mut self.members[first..];
            members.sort_by(|a, b| out[a.key.clone()].cmp(&out[b.key.clone()]));
            self.scratch.clear();
            for m in members.iter() {
                self.scratch.extend_from_slice(&out[m.whole.clone()]);
                self.scratch.push(b',');
            }
            self.out.truncate(body_start);
            self.out.extend_from_slice(self.scratch);
        }
        // The last member's comma becomes the closing brace.
        if self.out.len() > body_start {
            self.out.pop();
        }
        self.out.push(b'}');
        self.members.truncate(first);
        Some(end)
    }

    /// Whether a top-level member's key (canonical, quoted) is left out.
    fn is_excluded(&self, key: &[u8]) -> bool {
        let Some(name) = key.get(1..key.len() - 1) else {
            return false;
        };
        ALWAYS_EXCLUDED.iter().any(|e| e.as_bytes() == name)
            || self.exclude.iter().any(|e| e.as_bytes() == name)
    }
}

/// A length as LEB128: one byte below 128, so the canonical form stays
/// close to the body's own size (it is what the digest's time goes on).
fn write_len(out: &mut Vec<u8>, len: usize) {
    let mut bytes = [0u8; 10];
    let (mut n, mut i) = (len as u64, 0);
    loop {
        let low = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            bytes[i] = low;
            i += 1;
            break;
        }
        bytes[i] = low | 0x80;
        i += 1;
    }
    out.extend_from_slice(&bytes[..i]);
}

/// The hasher of maps keyed by [`CacheKey`]: a key is already a uniform
/// digest (SHA-256, or SipHash under a key nobody outside knows), so its
/// first eight bytes are as good a hash as any, and nobody can choose
/// them, at no cost.
#[derive(Default)]
pub struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(29) ^ u64::from_le_bytes(word);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = self.0.rotate_left(29) ^ n;
    }
}

/// A map keyed by [`CacheKey`].
pub type KeyMap<V> =
    std::collections::HashMap<CacheKey, V, std::hash::BuildHasherDefault<KeyHasher>>;

impl std::hash::Hash for CacheKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let mut first = [0u8; 8];
        first.copy_from_slice(&self.0[..8]);
        state.write_u64(u64::from_le_bytes(first));
    }
}

/// One past the closing quote of the string opening at `open`, and whether
/// it is plain: no escapes but the short ones the canonical form keeps
/// (`\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`), so it is its own
/// canonical text.
fn string_end(json: &[u8], open: usize) -> Option<(usize, bool)> {
    let mut at = open + 1;
    let mut plain = true;
    loop {
        let hit = next_quote_or_backslash(json, at)?;
        if json[hit] == b'"' {
            return Some((hit + 1, plain));
        }
        plain &= matches!(
            json.get(hit + 1)?,
            b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't'
        );
        at = hit + 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{json, Value};

    /// A fixed key, so failures repeat.
    const D: KeyDigest = KeyDigest::Keyed(0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210);

    fn key(body: &str) -> Option<CacheKey> {
        cache_key(
            &D,
            "team-a",
            "chat_completions",
            "gpt-4o",
            body.as_bytes(),
            &[],
        )
    }

    #[test]
    fn both_digests_see_the_same_canonical_form_and_keys_differ_by_secret() {
        let a = br#"{"b":[1,{"y":2,"x":"\u0041"}],"a":null}"#;
        let b = br#" { "a" : null , "b" : [ 1 , { "x" : "A" , "y" : 2 } ] } "#;
        for d in [D, KeyDigest::Sha256, KeyDigest::random()] {
            let k = |body: &[u8]| cache_key(&d, "n", "r", "m", body, &[]).unwrap();
            assert_eq!(k(a), k(b), "{d:?}");
            assert_ne!(k(a), k(br#"{"a":null}"#), "{d:?}");
        }
        let keyed = cache_key(&D, "n", "r", "m", a, &[]).unwrap();
        assert_eq!(keyed.0[16..], [0; 16], "128 bits");
        assert_ne!(keyed.0[..16], [0; 16]);
        let other = cache_key(&KeyDigest::Keyed(1, 2), "n", "r", "m", a, &[]).unwrap();
        assert_ne!(keyed, other, "another secret, another key");
        assert_ne!(KeyDigest::random(), KeyDigest::random());
        // SHA-256 of the canonical form: the same on every instance.
        let sha = cache_key(&KeyDigest::Sha256, "n", "r", "m", a, &[]).unwrap();
        let mut form = vec![1, b'n', 1, b'r', 1, b'm'];
        form.extend_from_slice(br#"{"a":null,"b":[1,{"x":"A","y":2}]}"#);
        assert_eq!(sha.0[..], *ring::digest::digest(&SHA256, &form).as_ref());
    }

    #[test]
    fn spacing_key_order_and_escapes_do_not_matter() {
        let a = key(
            r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"temperature":0}"#,
        );
        let b = key(
            "{ \"temperature\" : 0,\n\t\"messages\": [ {\"content\":\"h\\u0069\", \"role\":\"user\"} ],\"model\":\"gpt-4o\" }",
        );
        assert!(a.is_some());
        assert_eq!(a, b);
        // What delivers or attributes the answer is left out.
        let c = key(
            r#"{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},"user":"u1","messages":[{"role":"user","content":"hi"}],"temperature":0}"#,
        );
        assert_eq!(a, c);
    }

    #[test]
    fn one_escaping_for_every_string() {
        for (a, b) in [
            (r#"{"a":"x/y"}"#, r#"{"a":"x\/y"}"#),
            (r#"{"a":"\n"}"#, r#"{"a":"\u000a"}"#),
            (r#"{"a":"\b"}"#, r#"{"a":"\u0008"}"#),
            (r#"{"a":"\u0001"}"#, r#"{"a":"\u0001"}"#),
            ("{\"a\":\"\u{e9}\"}", r#"{"a":"\u00e9"}"#),
            (r#"{"a":"\""}"#, r#"{"a":"\u0022"}"#),
            (r#"{"\u0062":1,"a":2}"#, r#"{"a":2,"b":1}"#),
        ] {
            assert!(key(a).is_some(), "{a}");
            assert_eq!(key(a), key(b), "{a} {b}");
        }
        assert_ne!(key(r#"{"a":"\\n"}"#), key(r#"{"a":"\n"}"#));
        assert_eq!(key(r#"{"a":"\x"}"#), None);
    }

    #[test]
    fn anything_else_that_differs_changes_the_key() {
        let base = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#;
        let k = key(base).unwrap();
        for other in [
            r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi "}]}"#,
            r#"{"model":"gpt-4o","messages":[{"role":"system","content":"hi"}]}"#,
            r#"{"model":"gpt-4o","messages":[{"role":"user","content":["hi"]}]}"#,
            r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"n":2}"#,
            r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"},{"role":"user","content":"hi"}]}"#,
            // A nested `user` or `stream` is content, not delivery.
            r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi","user":"x"}]}"#,
            // Arrays keep their order.
            r#"{"model":"gpt-4o","messages":[],"stop":["b","a"]}"#,
            r#"{"model":"gpt-4o","messages":[],"stop":["a","b"]}"#,
        ] {
            assert_ne!(key(other), Some(k), "{other}");
        }
        let other_tenant = cache_key(
            &D,
            "team-b",
            "chat_completions",
            "gpt-4o",
            base.as_bytes(),
            &[],
        );
        let other_route = cache_key(&D, "team-a", "responses", "gpt-4o", base.as_bytes(), &[]);
        let other_model = cache_key(
            &D,
            "team-a",
            "chat_completions",
            "gpt-4o-mini",
            base.as_bytes(),
            &[],
        );
        for k2 in [other_tenant, other_route, other_model] {
            assert_ne!(k2, Some(k));
        }
        // Kinds are tagged: a string and a number of the same text differ.
        assert_ne!(key(r#"{"a":"1"}"#), key(r#"{"a":1}"#));
        // Boundaries are length-prefixed: moving text between parts shows.
        assert_ne!(
            cache_key(&D, "ab", "c", "m", b"{}", &[]),
            cache_key(&D, "a", "bc", "m", b"{}", &[])
        );
    }

    #[test]
    fn configured_fields_are_left_out_at_the_top_only() {
        let exclude = vec!["metadata".to_string()];
        let k = |body: &str| cache_key(&D, "n", "r", "m", body.as_bytes(), &exclude);
        assert_eq!(
            k(r#"{"messages":[],"metadata":{"trace":"1"}}"#),
            k(r#"{"messages":[]}"#)
        );
        assert_ne!(
            k(r#"{"messages":[{"metadata":1}]}"#),
            k(r#"{"messages":[{}]}"#)
        );
    }

    #[test]
    fn malformed_or_too_deep_bodies_have_no_key() {
        for bad in [
            "",
            "{",
            r#"{"a":}"#,
            r#"{"a":1,}"#,
            r#"{"a" 1}"#,
            "{} x",
            r#"{"a":tru}"#,
            r#"{"a":"\u12"}"#,
        ] {
            assert_eq!(key(bad), None, "{bad}");
        }
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert_eq!(key(&format!(r#"{{"a":{deep}}}"#)), None);
        let fine = format!("{}{}", "[".repeat(20), "]".repeat(20));
        assert!(key(&format!(r#"{{"a":{fine}}}"#)).is_some());
    }

    /// Any JSON value, with its members shuffled and re-spaced by serde.
    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i32>().prop_map(|n| json!(n)),
            "[a-z\"\\\\\u{e9}\n]{0,6}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-e]{1,3}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// The same document written with its object members reversed.
    fn reversed(v: &Value) -> String {
        match v {
            Value::Object(m) => {
                let members: Vec<String> = m
                    .iter()
                    .rev()
                    .map(|(k, v)| format!("{} : {}", json!(k), reversed(v)))
                    .collect();
                format!("{{ {} }}", members.join(" ,\n"))
            }
            Value::Array(a) => {
                let items: Vec<String> = a.iter().map(reversed).collect();
                format!("[ {} ]", items.join(", "))
            }
            other => other.to_string(),
        }
    }

    proptest! {
        #[test]
        fn the_same_document_however_written_has_one_key(body in prop::collection::btree_map("[a-e]{1,3}", any_json(), 0..5)) {
            let v = Value::Object(body.into_iter().collect());
            let compact = key(&v.to_string());
            prop_assert!(compact.is_some());
            prop_assert_eq!(compact, key(&reversed(&v)));
        }

        #[test]
        fn different_documents_have_different_keys(
            a in prop::collection::btree_map("[a-e]{1,3}", any_json(), 0..4),
            b in prop::collection::btree_map("[a-e]{1,3}", any_json(), 0..4),
        ) {
            let (a, b) = (Value::Object(a.into_iter().collect()), Value::Object(b.into_iter().collect()));
            prop_assert_eq!(a == b, key(&a.to_string()) == key(&b.to_string()));
        }

        /// The form is serde_json's compact print of the same document
        /// (its maps sort their keys, and it escapes strings as the form
        /// does), however the body was spaced and ordered, with the
        /// always-excluded members left out at the top level only.
        #[test]
        fn the_form_is_the_sorted_compact_document(
            body in prop::collection::btree_map("[a-e]{1,3}|stream|user", any_json(), 0..5),
        ) {
            let v = Value::Object(body.into_iter().collect());
            let mut kept = v.clone();
            for e in ALWAYS_EXCLUDED {
                kept.as_object_mut().unwrap().remove(*e);
            }
            let mut form = vec![1, b'n', 1, b'r', 1, b'm'];
            form.extend_from_slice(kept.to_string().as_bytes());
            let want = ring::digest::digest(&SHA256, &form);
            for text in [v.to_string(), reversed(&v)] {
                let got = cache_key(&KeyDigest::Sha256, "n", "r", "m", text.as_bytes(), &[]);
                prop_assert_eq!(got.map(|k| k.0.to_vec()), Some(want.as_ref().to_vec()), "{}", text);
            }
        }

        #[test]
        fn any_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = cache_key(&D, "n", "r", "m", &body, &[]);
        }
    }
}
