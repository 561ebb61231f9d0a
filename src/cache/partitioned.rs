//! The in-process store split by key into parts, each a [`Store`] behind a
//! lock of its own, so the shards' lookups and inserts rarely meet on one
//! lock (a miss holds its part's lock for an insert and an eviction, which
//! under a flood of misses made one shared lock the shards' futex
//! ping-pong). Each part has an equal share of `max_bytes`; eviction is
//! CLOCK within a part, which over uniformly hashed keys is CLOCK over the
//! whole within a part's worth of entries.
//!
//! Invariants: a key always maps to the same part (its hash's ninth byte,
//! the first eight being the parts' map hash); the parts' bytes sum to at
//! most `max_bytes`; the part count is fixed when made (a reload changes
//! the shares, not the count).

use std::sync::{Mutex, MutexGuard};

use super::key::{CacheKey, KeyDigest};
use super::raw::RawIndex;
use super::store::{Stats, Store};

/// Parts at most: enough that two to a few dozen shards seldom share one.
const MAX_PARTS: usize = 16;

/// The store, in parts, and the byte-identical index in front of it.
pub struct Partitioned {
    parts: Vec<Mutex<Store>>,
    /// Requests' exact bytes to their canonical keys (an eighth of
    /// `max_bytes`; the parts share the rest).
    pub raw: RawIndex,
    /// How this store's keys are made: fixed for its life, since an entry
    /// is found only by a key made the same way.
    pub digest: KeyDigest,
}

/// The share of `max_bytes` the byte-identical index holds.
fn raw_share(max_bytes: usize) -> usize {
    max_bytes / 8
}

impl Partitioned {
    /// Parts enough for the shards, each large enough for four entries of
    /// the largest size, keyed by `digest`.
    pub fn new(max_bytes: usize, max_entry_bytes: usize, digest: KeyDigest) -> Partitioned {
        let raw = raw_share(max_bytes);
        let stored = max_bytes - raw;
        let n = (stored / max_entry_bytes.max(1) / 4).clamp(1, MAX_PARTS);
        let parts = (0..n)
            .map(|_| {
                let share = stored / n;
                Mutex::new(Store::new(share, max_entry_bytes.min(share)))
            })
            .collect();
        Partitioned {
            parts,
            raw: RawIndex::new(raw),
            digest,
        }
    }

    /// The part `key` lives in, locked.
    pub fn part(&self, key: &CacheKey) -> MutexGuard<'_, Store> {
        let at = key.0[8] as usize % self.parts.len();
        self.parts[at].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// New bounds (a reload's), shared among the parts.
    pub fn set_bounds(&self, max_bytes: usize, max_entry_bytes: usize) {
        let share = (max_bytes - raw_share(max_bytes)) / self.parts.len();
        for p in &self.parts {
            lock(p).set_bounds(share, max_entry_bytes.min(share));
        }
    }

    /// Drops every entry; how many there were.
    pub fn clear(&self) -> usize {
        self.raw.clear();
        self.parts.iter().map(|p| lock(p).clear()).sum()
    }

    /// All parts' counts together.
    pub fn stats(&self) -> Stats {
        let mut all = Stats::default();
        for p in &self.parts {
            let s = lock(p).stats();
            all.hits += s.hits;
            all.misses += s.misses;
            all.evictions += s.evictions;
            all.entries += s.entries;
            all.bytes += s.bytes;
            all.saved.input_tokens += s.saved.input_tokens;
            all.saved.output_tokens += s.saved.output_tokens;
            all.saved.nanos += s.saved.nanos;
        }
        all
    }
}

fn lock(p: &Mutex<Store>) -> MutexGuard<'_, Store> {
    p.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::usage::Usage;
    use crate::cache::store::{Entry, Form, Saved};

    fn entry(len: usize) -> Entry {
        Entry {
            body: vec![b'x'; len],
            form: Form::Whole,
            stored_at: 0,
            expires_at: 100,
            saved: Saved::default(),
            usage: Usage::default(),
        }
    }

    #[test]
    fn keys_spread_over_parts_and_the_whole_stays_bounded() {
        let p = Partitioned::new(64 * 1024, 1024, KeyDigest::random());
        assert_eq!(p.parts.len(), 14);
        for n in 0..2000u32 {
            let mut key = [0u8; 32];
            key[..4].copy_from_slice(&n.to_le_bytes());
            key[8] = (n * 7) as u8;
            let key = CacheKey(key);
            p.part(&key).insert(key, entry(200), 0).unwrap();
            assert!(p.part(&key).get(&key, 1, None).is_some());
        }
        let s = p.stats();
        assert!(s.bytes <= 56 * 1024 && s.bytes > 40 * 1024, "{}", s.bytes);
        assert!(s.evictions > 1000);
        p.set_bounds(16 * 1024, 1024);
        assert!(p.stats().bytes <= 14 * 1024);
        let held = p.stats().entries;
        assert_eq!(p.clear(), held);
        assert_eq!(p.stats().entries, 0);
        assert_eq!(
            Partitioned::new(1024, 1024, KeyDigest::random())
                .parts
                .len(),
            1
        );
    }
}
