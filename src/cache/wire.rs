//! An exact-cache entry as the shared tier stores it in Redis, sans-IO: a
//! tag and version, the form, the times, what it saved and its usage as
//! fixed-width little-endian integers, then the body.
//!
//! Invariants: `decode(encode(e)) == e`; any other bytes (another version,
//! a short value, another program's key) decode to `None`, never a panic.

use super::replay::Form;
use super::store::{Entry, Saved};
use crate::api::usage::Usage;

const TAG: &[u8; 4] = b"SGC1";
/// Tag, form, then ten u64s.
const HEADER: usize = TAG.len() + 1 + 10 * 8;

/// The bytes Redis keeps for `e`.
pub fn encode(e: &Entry) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + e.body.len());
    out.extend_from_slice(TAG);
    out.push(match e.form {
        Form::Whole => 0,
        Form::Stream => 1,
    });
    let u = &e.usage;
    for n in [
        e.stored_at,
        e.expires_at,
        e.saved.input_tokens,
        e.saved.output_tokens,
        e.saved.nanos,
        u.input_tokens,
        u.output_tokens,
        u.cache_read_tokens,
        u.cache_write_tokens,
        u.cache_write_1h_tokens,
    ] {
        out.extend_from_slice(&n.to_le_bytes());
    }
    out.extend_from_slice(&e.body);
    out
}

/// The entry `bytes` hold, if they are one.
pub fn decode(bytes: &[u8]) -> Option<Entry> {
    let rest = bytes.strip_prefix(TAG)?;
    let (&form, rest) = rest.split_first()?;
    let form = match form {
        0 => Form::Whole,
        1 => Form::Stream,
        _ => return None,
    };
    if rest.len() < 80 {
        return None;
    }
    let (numbers, body) = rest.split_at(80);
    let n = |i: usize| u64::from_le_bytes(numbers[i * 8..i * 8 + 8].try_into().unwrap());
    Some(Entry {
        body: body.to_vec(),
        form,
        stored_at: n(0),
        expires_at: n(1),
        saved: Saved {
            input_tokens: n(2),
            output_tokens: n(3),
            nanos: n(4),
        },
        usage: Usage {
            input_tokens: n(5),
            output_tokens: n(6),
            cache_read_tokens: n(7),
            cache_write_tokens: n(8),
            cache_write_1h_tokens: n(9),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn entries_round_trip_and_other_bytes_never_panic(
            body in proptest::collection::vec(any::<u8>(), 0..64),
            numbers in proptest::array::uniform10(any::<u64>()),
            stream in any::<bool>(),
            junk in proptest::collection::vec(any::<u8>(), 0..128),
        ) {
            let e = Entry {
                body,
                form: if stream { Form::Stream } else { Form::Whole },
                stored_at: numbers[0],
                expires_at: numbers[1],
                saved: Saved { input_tokens: numbers[2], output_tokens: numbers[3], nanos: numbers[4] },
                usage: Usage {
                    input_tokens: numbers[5],
                    output_tokens: numbers[6],
                    cache_read_tokens: numbers[7],
                    cache_write_tokens: numbers[8],
                    cache_write_1h_tokens: numbers[9],
                },
            };
            let bytes = encode(&e);
            prop_assert_eq!(decode(&bytes), Some(e));
            prop_assert_eq!(decode(&bytes[..HEADER - 1]), None);
            let _ = decode(&junk);
            let mut other = bytes.clone();
            other[4] = 7;
            prop_assert_eq!(decode(&other), None);
        }
    }
}
