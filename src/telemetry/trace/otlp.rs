//! A hand-written protobuf encoder for OTLP's `ExportTraceServiceRequest`
//! (opentelemetry-proto: `collector/trace/v1/trace_service.proto`,
//! `trace/v1/trace.proto`, `common/v1/common.proto`,
//! `resource/v1/resource.proto`), the body of an OTLP/HTTP POST to
//! `/v1/traces` with `content-type: application/x-protobuf`.
//!
//! Shards encode each finished span as one `ScopeSpans.spans` field with a
//! [`SpanWriter`]: attributes and events are written as the caller hands
//! them over (protobuf fields may come in any order), then the span's own
//! fields, then its length. The exporter thread concatenates those bytes
//! (a repeated field is just its elements one after another) and puts the
//! envelope in front once per export ([`encode_request_prefix`]), whose
//! lengths it computes from the spans' total, so the spans are not copied
//! again to be wrapped.
//!
//! Invariants: every length is exact and minimal (a span is written after
//! a two-byte length slot, which is narrowed or widened in place in the
//! rare span shorter than 128 or longer than 16 383 bytes; the small
//! messages inside have their lengths computed before they are written),
//! field numbers are the ones the official definitions give
//! (tests/telemetry_otlp.rs decodes our bytes with them), and defaults
//! (zero, empty) are not written, as proto3 does.

use super::span::{Attr, Event, Span, StatusCode, Value};

// Wire types.
const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

/// The instrumentation scope our spans are under.
pub const SCOPE_NAME: &str = "shardgate";

/// What the `Resource` of every export says: `service.name` and the
/// gateway's version.
pub struct Resource<'a> {
    pub service_name: &'a str,
    pub service_version: &'a str,
}

/// One span being written into `out` as a `ScopeSpans.spans` (field 2)
/// element: [`str`](SpanWriter::str), [`int`](SpanWriter::int) … add
/// attributes, [`event`](SpanWriter::event) events, and
/// [`finish`](SpanWriter::finish) the span's own fields. A writer dropped
/// unfinished takes its bytes back out.
pub struct SpanWriter<'o> {
    out: &'o mut Vec<u8>,
    /// Where the span's field starts (its tag), and its length slot.
    start: usize,
    slot: usize,
    finished: bool,
}

/// The bytes reserved for a span's length: spans are 128 to 16 383 bytes.
const SPAN_SLOT: usize = 2;

impl<'o> SpanWriter<'o> {
    pub fn begin(out: &'o mut Vec<u8>) -> SpanWriter<'o> {
        let start = out.len();
        key(out, 2, LEN);
        let slot = out.len();
        out.extend_from_slice(&[0; SPAN_SLOT]);
        SpanWriter {
            out,
            start,
            slot,
            finished: false,
        }
    }

    /// `Span.attributes` (field 9). Inlined, so that each call's key, a
    /// literal, is copied in a few moves of a known length.
    #[inline(always)]
    pub fn attr(&mut self, key: &'static str, value: Value<'_>) {
        key_value(self.out, 9, &Attr { key, value });
    }

    #[inline(always)]
    pub fn str(&mut self, key: &'static str, value: &str) {
        self.attr(key, Value::Str(value));
    }

    #[inline(always)]
    pub fn int(&mut self, key: &'static str, value: i64) {
        self.attr(key, Value::Int(value));
    }

    /// `Span.events` (field 11): `Event { time_unix_nano = 1, name = 2,
    /// attributes = 3 }`.
    pub fn event(&mut self, event: &Event<'_>) {
        let attr = event.attr.as_ref().map_or(0, |a| field_size(kv_size(a)));
        let len = fixed64_size(event.time_unix_nanos) + string_size(event.name) + attr;
        key(self.out, 11, LEN);
        varint(self.out, len as u64);
        fixed64_field(self.out, 1, event.time_unix_nanos);
        string_field(self.out, 2, event.name);
        if let Some(a) = &event.attr {
            key_value(self.out, 3, a);
        }
    }

    /// Writes the span's own fields and closes it.
    pub fn finish(mut self, span: &Span<'_>) {
        let out = &mut *self.out;
        bytes_field(out, 1, &span.trace_id.0);
        bytes_field(out, 2, &span.span_id.0);
        string_field(out, 3, span.trace_state);
        if let Some(parent) = &span.parent {
            bytes_field(out, 4, &parent.0);
        }
        // name = 5: two parts joined, written without a buffer.
        let (a, b) = span.name;
        let joined = !a.is_empty() && !b.is_empty();
        let len = a.len() + b.len() + usize::from(joined);
        if len > 0 {
            key(out, 5, LEN);
            varint(out, len as u64);
            out.extend_from_slice(a.as_bytes());
            if joined {
                out.push(b' ');
            }
            out.extend_from_slice(b.as_bytes());
        }
        key(out, 6, VARINT);
        varint(out, span.kind as u64);
        fixed64_field(out, 7, span.start_unix_nanos);
        fixed64_field(out, 8, span.end_unix_nanos);
        // status = 15: Status { message = 2, code = 3 }.
        if span.status != StatusCode::Unset || !span.status_message.is_empty() {
            let code = if span.status == StatusCode::Unset {
                0
            } else {
                1 + varint_size(span.status as u64)
            };
            key(out, 15, LEN);
            varint(out, (string_size(span.status_message) + code) as u64);
            string_field(out, 2, span.status_message);
            if code > 0 {
                key(out, 3, VARINT);
                varint(out, span.status as u64);
            }
        }
        // flags = 16 (fixed32): the W3C flags in bits 0–7; bit 8 says bit
        // 9 is known, bit 9 that the parent is remote.
        let remote = match (&span.parent, span.parent_remote) {
            (Some(_), true) => 0x300,
            _ => 0x100,
        };
        key(out, 16, FIXED32);
        out.extend_from_slice(&(u32::from(span.flags) | remote).to_le_bytes());
        close(out, self.slot, SPAN_SLOT);
        self.finished = true;
    }
}

impl Drop for SpanWriter<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.out.truncate(self.start);
        }
    }
}

/// Appends the envelope of an `ExportTraceServiceRequest` whose spans,
/// already encoded by [`SpanWriter`]s, are `spans_len` bytes and follow
/// it: one `ResourceSpans` with our `Resource`, one `ScopeSpans` with our
/// scope, the spans last.
pub fn encode_request_prefix(out: &mut Vec<u8>, resource: &Resource<'_>, spans_len: usize) {
    let attrs = [
        Attr {
            key: "service.name",
            value: Value::Str(resource.service_name),
        },
        Attr {
            key: "service.version",
            value: Value::Str(resource.service_version),
        },
        Attr {
            key: "telemetry.sdk.name",
            value: Value::Str(SCOPE_NAME),
        },
        Attr {
            key: "telemetry.sdk.language",
            value: Value::Str("rust"),
        },
    ];
    // Resource { attributes = 1 }
    let resource_len: usize = attrs.iter().map(|a| field_size(kv_size(a))).sum();
    // InstrumentationScope { name = 1, version = 2 }
    let scope_len = string_size(SCOPE_NAME) + string_size(resource.service_version);
    // ScopeSpans { scope = 1, spans = 2 }
    let scope_spans_len = field_size(scope_len) + spans_len;
    // ResourceSpans { resource = 1, scope_spans = 2 }
    let resource_spans_len = field_size(resource_len) + field_size(scope_spans_len);
    // ExportTraceServiceRequest { resource_spans = 1 }
    key(out, 1, LEN);
    varint(out, resource_spans_len as u64);
    key(out, 1, LEN);
    varint(out, resource_len as u64);
    for a in &attrs {
        key_value(out, 1, a);
    }
    key(out, 2, LEN);
    varint(out, scope_spans_len as u64);
    key(out, 1, LEN);
    varint(out, scope_len as u64);
    string_field(out, 1, SCOPE_NAME);
    string_field(out, 2, resource.service_version);
}

/// The whole request: the envelope, then `spans`.
pub fn encode_request(out: &mut Vec<u8>, resource: &Resource<'_>, spans: &[u8]) {
    encode_request_prefix(out, resource, spans.len());
    out.extend_from_slice(spans);
}

/// `KeyValue { key = 1, value = 2 (AnyValue) }` as field `field`.
#[inline(always)]
fn key_value(out: &mut Vec<u8>, field: u32, attr: &Attr<'_>) {
    let k = attr.key.len();
    // The common attribute, a short string or an int under a short key
    // (field < 16), written into room reserved once: every length fits
    // one byte.
    match attr.value {
        Value::Str(v) if k + v.len() < 120 => {
            let any = 2 + v.len();
            let head = [tag(field, LEN), (2 + k + 2 + any) as u8, 0x0a, k as u8];
            let mid = [0x12, any as u8, 0x0a, v.len() as u8];
            put(out, &[&head, attr.key.as_bytes(), &mid, v.as_bytes()]);
        }
        Value::Int(i) if k < 100 && (0..1 << 56).contains(&i) => {
            let mut digits = [0u8; 10];
            let n = varint_into(&mut digits, i as u64);
            let any = 1 + n;
            let head = [tag(field, LEN), (2 + k + 2 + any) as u8, 0x0a, k as u8];
            let mid = [0x12, any as u8, 0x18];
            put(out, &[&head, attr.key.as_bytes(), &mid, &digits[..n]]);
        }
        _ => key_value_any(out, field, attr),
    }
}

/// Appends `parts` after one capacity check (each `extend_from_slice`
/// would check again); inlined, a part of a known length is a few moves.
#[inline(always)]
fn put<const N: usize>(out: &mut Vec<u8>, parts: &[&[u8]; N]) {
    let total: usize = parts.iter().map(|p| p.len()).sum();
    out.reserve(total);
    // SAFETY: `total` bytes are reserved past the length, the parts are
    // copied into them end to end (a `&[u8]` cannot overlap the `Vec`'s
    // spare room, which nothing else borrows), and the length covers
    // only what was written.
    unsafe {
        let mut at = out.as_mut_ptr().add(out.len());
        for p in parts {
            std::ptr::copy_nonoverlapping(p.as_ptr(), at, p.len());
            at = at.add(p.len());
        }
        out.set_len(out.len() + total);
    }
}

/// [`key_value`] for any attribute.
fn key_value_any(out: &mut Vec<u8>, field: u32, attr: &Attr<'_>) {
    key(out, field, LEN);
    varint(out, kv_size(attr) as u64);
    string_field(out, 1, attr.key);
    key(out, 2, LEN);
    varint(out, any_size(&attr.value) as u64);
    // AnyValue's oneof: string 1, bool 2, int64 3, double 4. A oneof
    // member is written even when it holds its type's default.
    match attr.value {
        Value::Str(s) => {
            key(out, 1, LEN);
            varint(out, s.len() as u64);
            out.extend_from_slice(s.as_bytes());
        }
        Value::Bool(b) => {
            key(out, 2, VARINT);
            out.push(u8::from(b));
        }
        // int64 is a plain varint of the two's complement (not zigzag).
        Value::Int(i) => {
            key(out, 3, VARINT);
            varint(out, i as u64);
        }
        Value::Double(d) => {
            key(out, 4, FIXED64);
            out.extend_from_slice(&d.to_le_bytes());
        }
    }
}

/// The length of a `KeyValue`'s body.
fn kv_size(attr: &Attr<'_>) -> usize {
    string_size(attr.key) + field_size(any_size(&attr.value))
}

/// The length of an `AnyValue`'s body.
fn any_size(v: &Value<'_>) -> usize {
    1 + match v {
        Value::Str(s) => varint_size(s.len() as u64) + s.len(),
        Value::Bool(_) => 1,
        Value::Int(i) => varint_size(*i as u64),
        Value::Double(_) => 8,
    }
}

/// A length-delimited field of a field number under 16 with a body of
/// `len` bytes: tag, length, body.
fn field_size(len: usize) -> usize {
    1 + varint_size(len as u64) + len
}

/// A string field (field number under 16) as [`string_field`] writes it.
fn string_size(s: &str) -> usize {
    if s.is_empty() {
        0
    } else {
        field_size(s.len())
    }
}

fn fixed64_size(v: u64) -> usize {
    if v == 0 {
        0
    } else {
        9
    }
}

/// Writes the length of what follows the `width`-byte slot at `slot`,
/// narrowing or widening the slot to the length's minimal varint.
fn close(out: &mut Vec<u8>, slot: usize, width: usize) {
    let len = out.len() - slot - width;
    let mut digits = [0u8; 10];
    let n = varint_into(&mut digits, len as u64);
    if n < width {
        out.drain(slot..slot + (width - n));
    } else if n > width {
        out.splice(slot..slot, std::iter::repeat_n(0, n - width));
    }
    out[slot..slot + n].copy_from_slice(&digits[..n]);
}

/// A field's tag (field number under 16).
#[inline(always)]
fn tag(field: u32, wire: u8) -> u8 {
    debug_assert!(field < 16);
    ((field << 3) as u8) | wire
}

#[inline(always)]
fn key(out: &mut Vec<u8>, field: u32, wire: u8) {
    varint(out, (u64::from(field) << 3) | u64::from(wire));
}

#[inline(always)]
fn varint(out: &mut Vec<u8>, v: u64) {
    if v < 0x80 {
        out.push(v as u8);
    } else {
        varint_long(out, v);
    }
}

#[cold]
#[inline(never)]
fn varint_long(out: &mut Vec<u8>, v: u64) {
    let mut digits = [0u8; 10];
    let n = varint_into(&mut digits, v);
    out.extend_from_slice(&digits[..n]);
}

fn varint_size(v: u64) -> usize {
    // 7 bits per byte; 0 takes one.
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

fn varint_into(digits: &mut [u8; 10], mut v: u64) -> usize {
    let mut n = 0;
    loop {
        let low = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            digits[n] = low;
            return n + 1;
        }
        digits[n] = low | 0x80;
        n += 1;
    }
}

fn bytes_field(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    if !bytes.is_empty() {
        key(out, field, LEN);
        varint(out, bytes.len() as u64);
        out.extend_from_slice(bytes);
    }
}

fn string_field(out: &mut Vec<u8>, field: u32, s: &str) {
    bytes_field(out, field, s.as_bytes());
}

fn fixed64_field(out: &mut Vec<u8>, field: u32, v: u64) {
    if v != 0 {
        key(out, field, FIXED64);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::super::span::sample as span;
    use super::*;

    fn enc(v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        varint(&mut out, v);
        out
    }

    #[test]
    fn varints_are_minimal_and_their_sizes_exact() {
        assert_eq!(enc(0), [0]);
        assert_eq!(enc(127), [0x7f]);
        assert_eq!(enc(128), [0x80, 0x01]);
        assert_eq!(enc(300), [0xac, 0x02]);
        assert_eq!(enc(u64::MAX).len(), 10);
        for v in [0, 1, 127, 128, 16_383, 16_384, 1 << 35, u64::MAX] {
            assert_eq!(varint_size(v), enc(v).len(), "{v}");
        }
    }

    #[test]
    fn a_slot_is_narrowed_or_widened_to_the_length() {
        for width in [1, 2] {
            for len in [0usize, 1, 127, 128, 200, 16_383, 16_384, 70_000] {
                let mut out = vec![0xaa];
                out.extend(std::iter::repeat_n(0u8, width));
                out.extend(std::iter::repeat_n(7u8, len));
                close(&mut out, 1, width);
                let mut expect = vec![0xaa];
                varint(&mut expect, len as u64);
                expect.extend(std::iter::repeat_n(7u8, len));
                assert_eq!(out, expect, "width {width}, length {len}");
            }
        }
    }

    #[test]
    fn the_short_paths_write_what_the_general_one_writes() {
        let long = "v".repeat(300);
        let keys: [&'static str; 3] = ["k", "gen_ai.usage.input_tokens", KEY_100];
        for key in keys {
            for value in [
                Value::Str(""),
                Value::Str("openai"),
                Value::Str(&long[..115]),
                Value::Str(&long),
                Value::Int(0),
                Value::Int(127),
                Value::Int(128),
                Value::Int((1 << 56) - 1),
                Value::Int(1 << 56),
                Value::Int(-1),
                Value::Double(0.25),
                Value::Bool(true),
            ] {
                let attr = Attr { key, value };
                let (mut fast, mut general) = (Vec::new(), Vec::new());
                key_value(&mut fast, 9, &attr);
                key_value_any(&mut general, 9, &attr);
                assert_eq!(fast, general, "{attr:?}");
                assert_eq!(fast.len(), field_size(kv_size(&attr)), "{attr:?}");
            }
        }
    }

    const KEY_100: &str = "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk";

    #[test]
    fn the_written_length_is_the_spans_and_an_unfinished_span_leaves_nothing() {
        for attrs in [0, 1, 50, 500] {
            let mut out = vec![9];
            let mut w = SpanWriter::begin(&mut out);
            for i in 0..attrs {
                w.int("k", i);
            }
            w.finish(&span());
            // tag, then a length that covers exactly the rest
            assert_eq!(out[1], (2 << 3) | 2);
            let mut len = 0u64;
            let mut shift = 0;
            let mut at = 2;
            loop {
                let b = out[at];
                len |= u64::from(b & 0x7f) << shift;
                shift += 7;
                at += 1;
                if b < 0x80 {
                    break;
                }
            }
            assert_eq!(len as usize, out.len() - at, "{attrs} attributes");
        }
        let mut out = vec![9];
        let mut w = SpanWriter::begin(&mut out);
        w.str("k", "v");
        drop(w);
        assert_eq!(out, [9]);
    }
}
