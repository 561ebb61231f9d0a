//! The W3C Trace Context `traceparent` header (<https://www.w3.org/TR/trace-context/>):
//! `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`, parsed and
//! written.
//!
//! Invariants: parsing is strict — version `00` only, exactly 55 bytes,
//! lowercase hex, neither id all zeros; anything else is `None`, and the
//! caller starts a new trace (the spec's rule for an invalid header).
//! Writing always produces a header this parser accepts.

use super::span::{SpanId, TraceId};

/// The length of a version-00 `traceparent` value.
pub const LEN: usize = 55;

/// The sampled bit of the trace flags.
pub const SAMPLED: u8 = 0x01;

/// What a valid `traceparent` carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: TraceId,
    /// The caller's span, the parent of ours.
    pub parent_id: SpanId,
    pub flags: u8,
}

impl TraceParent {
    pub fn sampled(&self) -> bool {
        self.flags & SAMPLED != 0
    }
}

/// Parses a `traceparent` value; `None` when it is not a valid version-00
/// header. Surrounding optional whitespace (RFC 9110 §5.5) is the head
/// parser's to strip, not ours: a value with any is invalid.
pub fn parse(value: &[u8]) -> Option<TraceParent> {
    if value.len() != LEN || !value.starts_with(b"00-") || value[35] != b'-' || value[52] != b'-' {
        return None;
    }
    let mut trace_id = [0u8; 16];
    hex_into(&value[3..35], &mut trace_id)?;
    let mut parent_id = [0u8; 8];
    hex_into(&value[36..52], &mut parent_id)?;
    let mut flags = [0u8; 1];
    hex_into(&value[53..55], &mut flags)?;
    let (trace_id, parent_id) = (TraceId(trace_id), SpanId(parent_id));
    (trace_id.is_valid() && parent_id.is_valid()).then_some(TraceParent {
        trace_id,
        parent_id,
        flags: flags[0],
    })
}

/// Writes `00-<trace_id>-<span_id>-<flags>`.
pub fn format(trace_id: &TraceId, span_id: &SpanId, flags: u8) -> [u8; LEN] {
    let mut out = [b'-'; LEN];
    out[0] = b'0';
    out[1] = b'0';
    hex_out(&trace_id.0, &mut out[3..35]);
    hex_out(&span_id.0, &mut out[36..52]);
    hex_out(&[flags], &mut out[53..55]);
    out
}

/// Lowercase hex digits into bytes; `None` on any other character.
fn hex_into(hex: &[u8], out: &mut [u8]) -> Option<()> {
    for (pair, byte) in hex.chunks_exact(2).zip(out.iter_mut()) {
        *byte = (digit(pair[0])? << 4) | digit(pair[1])?;
    }
    Some(())
}

fn digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

fn hex_out(bytes: &[u8], out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (b, pair) in bytes.iter().zip(out.chunks_exact_mut(2)) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 0xf)];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const EXAMPLE: &[u8] = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_specs_example() {
        let tp = parse(EXAMPLE).unwrap();
        assert_eq!(tp.trace_id.0[0], 0x4b);
        assert_eq!(tp.trace_id.0[15], 0x36);
        assert_eq!(
            tp.parent_id.0,
            [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]
        );
        assert!(tp.sampled());
        assert_eq!(&format(&tp.trace_id, &tp.parent_id, tp.flags)[..], EXAMPLE);
    }

    #[test]
    fn rejects_what_the_spec_calls_invalid() {
        let bad: &[&[u8]] = &[
            b"",
            // Uppercase hex.
            b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",
            // All-zero trace id, all-zero parent id.
            b"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            // Other versions (ff is forbidden, others are not ours to guess).
            b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            // Too short, too long, wrong separators, not hex.
            b"00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
            b"00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7_01",
            b"00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
            b" 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0",
        ];
        for value in bad {
            assert_eq!(parse(value), None, "{}", String::from_utf8_lossy(value));
        }
    }

    proptest! {
        #[test]
        fn format_then_parse_is_identity(
            trace in any::<[u8; 16]>(),
            span in any::<[u8; 8]>(),
            flags in any::<u8>(),
        ) {
            let (t, s) = (TraceId(trace), SpanId(span));
            let parsed = parse(&format(&t, &s, flags));
            if t.is_valid() && s.is_valid() {
                prop_assert_eq!(parsed, Some(TraceParent { trace_id: t, parent_id: s, flags }));
            } else {
                prop_assert_eq!(parsed, None);
            }
        }

        #[test]
        fn any_bytes_never_panic_and_valid_ones_round_trip(value in proptest::collection::vec(any::<u8>(), 0..70)) {
            if let Some(tp) = parse(&value) {
                prop_assert_eq!(&format(&tp.trace_id, &tp.parent_id, tp.flags)[..], &value[..]);
            }
        }

        #[test]
        fn one_changed_byte_of_a_valid_header_is_caught_or_still_exact(
            at in 0..LEN,
            to in any::<u8>(),
        ) {
            let mut value = EXAMPLE.to_vec();
            value[at] = to;
            match parse(&value) {
                Some(tp) => prop_assert_eq!(&format(&tp.trace_id, &tp.parent_id, tp.flags)[..], &value[..]),
                None => prop_assert_ne!(&value[..], EXAMPLE),
            }
        }
    }
}
