//! A hand-written protobuf encoder for OTLP's `ExportTraceServiceRequest`
//! (opentelemetry-proto: `collector/trace/v1/trace_service.proto`,
//! `trace/v1/trace.proto`, `common/v1/common.proto`,
//! `resource/v1/resource.proto`), the body of an OTLP/HTTP POST to
//! `/v1/traces` with `content-type: application/x-protobuf`.
//!
//! Shards encode each finished span as one `ScopeSpans.spans` field
//! ([`encode_span`]); the exporter thread concatenates those bytes (a
//! repeated field is just its elements one after another) and wraps them
//! once per export in the envelope ([`encode_request`]).
//!
//! Invariants: every length is exact and minimal (a nested message is
//! written after a one-byte length slot, which is widened in place when
//! the message is longer than 127 bytes), field numbers are the ones the
//! official definitions give (tests/telemetry_otlp.rs decodes our bytes
//! with them), and defaults (zero, empty) are not written, as proto3 does.

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

/// Appends `span` as one `ScopeSpans.spans` (field 2) element.
pub fn encode_span(out: &mut Vec<u8>, span: &Span<'_>) {
    nested(out, 2, |out| {
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
        for attr in span.attrs.as_slice() {
            key_value(out, 9, attr);
        }
        if span.attrs.dropped > 0 {
            key(out, 10, VARINT);
            varint(out, u64::from(span.attrs.dropped));
        }
        for event in span.events {
            encode_event(out, event);
        }
        if span.status != StatusCode::Unset || !span.status_message.is_empty() {
            nested(out, 15, |out| {
                string_field(out, 2, span.status_message);
                if span.status != StatusCode::Unset {
                    key(out, 3, VARINT);
                    varint(out, span.status as u64);
                }
            });
        }
        // flags = 16 (fixed32): the W3C flags in bits 0–7; bit 8 says bit
        // 9 is known, bit 9 that the parent is remote.
        let remote = if span.parent.is_some() {
            0x100 | if span.parent_remote { 0x200 } else { 0 }
        } else {
            0x100
        };
        key(out, 16, FIXED32);
        out.extend_from_slice(&(u32::from(span.flags) | remote).to_le_bytes());
    });
}

/// `Span.events` (field 11): `Event { time_unix_nano = 1, name = 2,
/// attributes = 3 }`.
fn encode_event(out: &mut Vec<u8>, event: &Event<'_>) {
    nested(out, 11, |out| {
        fixed64_field(out, 1, event.time_unix_nanos);
        string_field(out, 2, event.name);
        if let Some(attr) = &event.attr {
            key_value(out, 3, attr);
        }
    });
}

/// Appends the whole `ExportTraceServiceRequest` for spans already encoded
/// by [`encode_span`] (concatenated in `spans`): one `ResourceSpans` with
/// our `Resource`, one `ScopeSpans` with our scope.
pub fn encode_request(out: &mut Vec<u8>, resource: &Resource<'_>, spans: &[u8]) {
    // ExportTraceServiceRequest.resource_spans = 1
    nested(out, 1, |out| {
        // ResourceSpans.resource = 1: Resource.attributes = 1
        nested(out, 1, |out| {
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
            for attr in &attrs {
                key_value(out, 1, attr);
            }
        });
        // ResourceSpans.scope_spans = 2
        nested(out, 2, |out| {
            // ScopeSpans.scope = 1: InstrumentationScope { name = 1, version = 2 }
            nested(out, 1, |out| {
                string_field(out, 1, SCOPE_NAME);
                string_field(out, 2, resource.service_version);
            });
            out.extend_from_slice(spans);
        });
    });
}

/// `KeyValue { key = 1, value = 2 (AnyValue) }` as field `field`.
fn key_value(out: &mut Vec<u8>, field: u32, attr: &Attr<'_>) {
    nested(out, field, |out| {
        string_field(out, 1, attr.key);
        // AnyValue's oneof: string 1, bool 2, int64 3, double 4. A oneof
        // member is written even when it holds its type's default.
        nested(out, 2, |out| match attr.value {
            Value::Str(s) => {
                key(out, 1, LEN);
                varint(out, s.len() as u64);
                out.extend_from_slice(s.as_bytes());
            }
            Value::Bool(b) => {
                key(out, 2, VARINT);
                varint(out, u64::from(b));
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
        });
    });
}

/// A length-delimited field whose content `body` writes: a one-byte length
/// slot, widened in place once the content's length is known.
fn nested(out: &mut Vec<u8>, field: u32, body: impl FnOnce(&mut Vec<u8>)) {
    key(out, field, LEN);
    let slot = out.len();
    out.push(0);
    body(out);
    let len = out.len() - slot - 1;
    let mut digits = [0u8; 10];
    let n = varint_into(&mut digits, len as u64);
    if n > 1 {
        out.splice(slot..slot, std::iter::repeat_n(0, n - 1));
    }
    out[slot..slot + n].copy_from_slice(&digits[..n]);
}

fn key(out: &mut Vec<u8>, field: u32, wire: u8) {
    varint(out, (u64::from(field) << 3) | u64::from(wire));
}

fn varint(out: &mut Vec<u8>, v: u64) {
    let mut digits = [0u8; 10];
    let n = varint_into(&mut digits, v);
    out.extend_from_slice(&digits[..n]);
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
    use super::*;

    #[test]
    fn varints_are_minimal() {
        let enc = |v| {
            let mut out = Vec::new();
            varint(&mut out, v);
            out
        };
        assert_eq!(enc(0), [0]);
        assert_eq!(enc(127), [0x7f]);
        assert_eq!(enc(128), [0x80, 0x01]);
        assert_eq!(enc(300), [0xac, 0x02]);
        assert_eq!(enc(u64::MAX).len(), 10);
    }

    #[test]
    fn a_nested_message_longer_than_127_bytes_gets_a_wider_length() {
        for len in [0usize, 1, 127, 128, 200, 16_383, 16_384, 70_000] {
            let mut out = vec![0xaa];
            nested(&mut out, 3, |out| out.extend(std::iter::repeat_n(7u8, len)));
            let mut expect = vec![0xaa, (3 << 3) | 2];
            varint(&mut expect, len as u64);
            expect.extend(std::iter::repeat_n(7u8, len));
            assert_eq!(out, expect, "length {len}");
        }
    }
}
