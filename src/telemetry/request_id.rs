//! Request ids for requests that arrive without `x-request-id`.
//!
//! An id is 128 bits written as 26 Crockford base32 characters (the ULID
//! alphabet): 52 bits of the generator's start time in microseconds since
//! the Unix epoch, 12 bits of shard id, 64 bits of a per-shard counter.
//!
//! Invariants: unique across shards (shard bits) and restarts (a new start
//! time), increasing in string order within one generator; generating an id
//! is an increment and an encode into a stack array, no allocation, no
//! clock read.

use std::cell::Cell;
use std::time::{SystemTime, UNIX_EPOCH};

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// One shard's id generator.
pub struct RequestIdGen {
    /// start µs (52 bits) << 12 | shard (12 bits)
    prefix: u64,
    counter: Cell<u64>,
}

impl RequestIdGen {
    /// A generator for `shard` (only its low 12 bits are used), started now.
    pub fn new(shard: usize) -> RequestIdGen {
        let start_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        RequestIdGen::with_start(shard, start_us)
    }

    fn with_start(shard: usize, start_us: u64) -> RequestIdGen {
        RequestIdGen {
            prefix: (start_us & ((1 << 52) - 1)) << 12 | (shard as u64 & 0xfff),
            counter: Cell::new(0),
        }
    }

    /// The next id.
    pub fn next_id(&self) -> RequestId {
        let n = self.counter.get();
        self.counter.set(n.wrapping_add(1));
        RequestId::encode((self.prefix as u128) << 64 | n as u128)
    }
}

/// A generated request id: 26 ASCII characters.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId([u8; 26]);

impl RequestId {
    fn encode(mut v: u128) -> RequestId {
        let mut out = [0u8; 26];
        // 26 × 5 = 130 bits: the first character carries the top 3 bits.
        for c in out.iter_mut().rev() {
            *c = ALPHABET[(v & 31) as usize];
            v >>= 5;
        }
        RequestId(out)
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("ASCII alphabet")
    }

    pub fn as_bytes(&self) -> &[u8; 26] {
        &self.0
    }
}

impl std::fmt::Debug for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_unique_ordered_and_in_the_alphabet() {
        let a = RequestIdGen::with_start(0, 1_700_000_000_000_000);
        let b = RequestIdGen::with_start(1, 1_700_000_000_000_000);
        let restarted = RequestIdGen::with_start(0, 1_700_000_000_000_001);
        let mut seen = HashSet::new();
        let mut last = a.next_id();
        assert!(seen.insert(last));
        for _ in 0..50_000 {
            let id = a.next_id();
            assert!(id > last, "{id} after {last}");
            last = id;
            assert!(seen.insert(id));
            assert!(seen.insert(b.next_id()));
            assert!(seen.insert(restarted.next_id()));
        }
        for id in &seen {
            assert_eq!(id.as_str().len(), 26);
            assert!(id.as_bytes().iter().all(|c| ALPHABET.contains(c)));
        }
    }

    #[test]
    fn encoding_matches_ulid_layout() {
        assert_eq!(RequestId::encode(0).as_str(), "00000000000000000000000000");
        assert_eq!(
            RequestId::encode(u128::MAX).as_str(),
            "7ZZZZZZZZZZZZZZZZZZZZZZZZZ"
        );
        assert_eq!(RequestId::encode(33).as_str(), "00000000000000000000000011");
    }

    #[test]
    fn real_generator_starts_now() {
        let g = RequestIdGen::new(5);
        let id = g.next_id();
        // The start time (top 52 bits of 128) is not zero: the id does not
        // begin with a long run of zeros.
        assert!(!id.as_str().starts_with("0000000"), "{id}");
    }
}
