//! The exact cache's in-process tier, sans-IO: entries by key, each kept
//! until its time to live runs out, the whole bounded in bytes
//! (`max_bytes`) and each entry too (`max_entry_bytes`). Eviction is CLOCK
//! (second chance): the entries sit in one ring of slots, a hit marks its
//! entry referenced, and the hand sweeping the ring clears a mark or evicts
//! an unmarked entry; a new entry takes a freed slot, the one the hand just
//! passed when it evicted for room, so it is the last the hand comes back
//! to. An insert does O(1) amortised work however full the cache is and
//! whatever the load.
//!
//! Invariants: `bytes` is the sum of the live entries' sizes and never
//! exceeds `max_bytes` after an insert; every live slot is in the index at
//! its position and every free one in `free`; an expired entry is never
//! returned. Time is the caller's (`now`, seconds), so the store is tested
//! without a clock.

use std::sync::Arc;

use super::key::{CacheKey, KeyMap};
pub use super::replay::Form;
use crate::api::usage::Usage;

/// What the cache keeps of an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The answer as it is replayed (a whole body, or a stream's events).
    pub body: Vec<u8>,
    pub form: Form,
    /// When it was stored, and until when it is served (Unix seconds).
    pub stored_at: u64,
    pub expires_at: u64,
    /// What the answer cost upstream, which each hit saves.
    pub saved: Saved,
    /// The answer's usage, which a hit is metered at with
    /// `cache.charge_hits`.
    pub usage: Usage,
}

/// Tokens and nano-dollars (what a hit saves, or all hits saved).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Saved {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub nanos: u64,
}

/// What the store has done, for its metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub hits: u64,
    pub misses: u64,
    pub evictions: u64,
    pub entries: usize,
    pub bytes: usize,
    pub saved: Saved,
}

impl Entry {
    /// Bytes it counts for against the bounds: its body and a fixed share
    /// for its key and bookkeeping.
    pub fn size(&self) -> usize {
        self.body.len() + OVERHEAD
    }
}

/// What an entry costs beyond its body (key, ring slot, map slot).
const OVERHEAD: usize = 128;

/// Why an insert was not kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Larger than `max_entry_bytes` (or than the whole cache).
    TooLarge,
    /// Already expired.
    Expired,
}

struct Slot {
    key: CacheKey,
    entry: Arc<Entry>,
    /// The entry's size, kept here so that a sweep reads the ring alone.
    size: usize,
    referenced: bool,
}

/// The bounded store.
pub struct Store {
    index: KeyMap<usize>,
    ring: Vec<Option<Slot>>,
    /// The ring's free slots, the last freed on top.
    free: Vec<usize>,
    hand: usize,
    bytes: usize,
    max_bytes: usize,
    max_entry_bytes: usize,
    evictions: u64,
    hits: u64,
    misses: u64,
    saved: Saved,
}

impl Store {
    pub fn new(max_bytes: usize, max_entry_bytes: usize) -> Store {
        Store {
            index: KeyMap::default(),
            ring: Vec::new(),
            free: Vec::new(),
            hand: 0,
            bytes: 0,
            max_bytes,
            max_entry_bytes: max_entry_bytes.min(max_bytes),
            evictions: 0,
            hits: 0,
            misses: 0,
            saved: Saved::default(),
        }
    }

    /// The entry for `key` if one is live at `now` and no older than
    /// `max_age` seconds (a client's `Cache-Control: max-age`), marked
    /// referenced. An expired one is dropped. The lookup is counted apart
    /// ([`Store::count`]), once the caller knows whether the entry answers.
    pub fn get(&mut self, key: &CacheKey, now: u64, max_age: Option<u64>) -> Option<Arc<Entry>> {
        let &at = self.index.get(key)?;
        let slot = self.ring[at].as_mut()?;
        if slot.entry.expires_at <= now {
            self.remove_at(at);
            return None;
        }
        if max_age.is_some_and(|age| now.saturating_sub(slot.entry.stored_at) > age) {
            return None;
        }
        slot.referenced = true;
        Some(slot.entry.clone())
    }

    /// Counts one lookup: a hit that saved `saved`, or a miss.
    pub fn count(&mut self, hit: Option<&Saved>) {
        match hit {
            Some(saved) => {
                self.hits += 1;
                self.saved.input_tokens += saved.input_tokens;
                self.saved.output_tokens += saved.output_tokens;
                self.saved.nanos += saved.nanos;
            }
            None => self.misses += 1,
        }
    }

    /// Counts and sizes, for the metrics.
    pub fn stats(&self) -> Stats {
        Stats {
            hits: self.hits,
            misses: self.misses,
            evictions: self.evictions,
            entries: self.index.len(),
            bytes: self.bytes,
            saved: self.saved,
        }
    }

    /// Keeps `entry` under `key` (replacing what was there), evicting
    /// unreferenced entries until it fits; the entry as kept.
    pub fn insert(&mut self, key: CacheKey, entry: Entry, now: u64) -> Result<Arc<Entry>, Refused> {
        let size = entry.size();
        if size > self.max_entry_bytes {
            return Err(Refused::TooLarge);
        }
        if entry.expires_at <= now {
            return Err(Refused::Expired);
        }
        if let Some(&at) = self.index.get(&key) {
            self.remove_at(at);
        }
        while self.bytes + size > self.max_bytes {
            self.evict_one();
        }
        self.bytes += size;
        let entry = Arc::new(entry);
        let slot = Slot {
            key,
            entry: entry.clone(),
            size,
            referenced: false,
        };
        let at = match self.free.pop() {
            Some(at) => {
                self.ring[at] = Some(slot);
                at
            }
            None => {
                self.ring.push(Some(slot));
                self.ring.len() - 1
            }
        };
        self.index.insert(key, at);
        Ok(entry)
    }

    /// New bounds (a reload's): entries go, by the same sweep, until the
    /// whole fits.
    pub fn set_bounds(&mut self, max_bytes: usize, max_entry_bytes: usize) {
        self.max_bytes = max_bytes;
        self.max_entry_bytes = max_entry_bytes.min(max_bytes);
        while self.bytes > self.max_bytes {
            self.evict_one();
        }
    }

    /// Drops every entry; how many there were.
    pub fn clear(&mut self) -> usize {
        let n = self.index.len();
        self.index.clear();
        self.ring.clear();
        self.free.clear();
        self.hand = 0;
        self.bytes = 0;
        n
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Bytes the live entries count for.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Entries evicted for room so far.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// One sweep step after another until an unreferenced entry is found
    /// and evicted: each step clears a mark, passes a free slot or evicts,
    /// so at most two laps. Only called with entries in the ring: an entry
    /// fits an empty store (`max_entry_bytes <= max_bytes`).
    fn evict_one(&mut self) {
        loop {
            if self.hand >= self.ring.len() {
                self.hand = 0;
            }
            let at = self.hand;
            self.hand += 1;
            match self.ring[at].as_mut() {
                Some(slot) if slot.referenced => slot.referenced = false,
                Some(_) => {
                    self.remove_at(at);
                    self.evictions += 1;
                    return;
                }
                None => {}
            }
        }
    }

    /// Frees the slot at `at` (it holds an entry).
    fn remove_at(&mut self, at: usize) {
        if let Some(slot) = self.ring[at].take() {
            self.index.remove(&slot.key);
            self.bytes -= slot.size;
            self.free.push(at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(n: u8) -> CacheKey {
        CacheKey([n; 32])
    }

    fn entry(len: usize, stored_at: u64, ttl: u64) -> Entry {
        Entry {
            body: vec![b'x'; len],
            form: Form::Whole,
            stored_at,
            expires_at: stored_at + ttl,
            saved: Saved {
                input_tokens: 3,
                output_tokens: 2,
                nanos: 10,
            },
            usage: Usage::default(),
        }
    }

    #[test]
    fn unreferenced_entries_go_oldest_first() {
        let size = entry(372, 0, 9).size();
        let mut s = Store::new(3 * size, size);
        for n in 0..3 {
            s.insert(key(n), entry(372, 0, 9), 0).unwrap();
        }
        // Each insert past the bound evicts the oldest left, never the
        // newest just added.
        for n in 3..10 {
            s.insert(key(n), entry(372, 0, 9), 0).unwrap();
            assert!(s.get(&key(n - 3), 1, None).is_none(), "{} kept", n - 3);
            for kept in n - 1..=n {
                assert!(s.index.contains_key(&key(kept)), "{kept} evicted");
            }
        }
    }

    #[test]
    fn entries_live_for_their_ttl_and_max_age_is_in_seconds() {
        let mut s = Store::new(1 << 20, 1 << 16);
        s.insert(key(1), entry(10, 100, 60), 100).unwrap();
        assert!(s.get(&key(1), 159, None).is_some());
        assert!(s.get(&key(1), 130, Some(30)).is_some());
        assert!(
            s.get(&key(1), 131, Some(30)).is_none(),
            "older than max-age"
        );
        assert!(s.get(&key(1), 131, None).is_some(), "still stored");
        assert!(s.get(&key(1), 160, None).is_none(), "expired");
        assert!(s.is_empty(), "an expired entry is dropped");
        assert_eq!(s.bytes(), 0);
        assert_eq!(
            s.insert(key(2), entry(10, 100, 0), 100),
            Err(Refused::Expired)
        );
    }

    #[test]
    fn bounds_hold_and_referenced_entries_get_a_second_chance() {
        let size = entry(372, 0, 9).size();
        assert_eq!(size, 500);
        let mut s = Store::new(4 * size, 2 * size);
        assert_eq!(
            s.insert(key(9), entry(3 * size, 0, 9), 0),
            Err(Refused::TooLarge)
        );
        for n in 0..4 {
            s.insert(key(n), entry(372, 0, 9), 0).unwrap();
        }
        assert_eq!(s.bytes(), 4 * size);
        // 0 and 2 were read: 1 goes first, then 3.
        for n in [0, 2] {
            let hit = s.get(&key(n), 1, None).unwrap();
            s.count(Some(&hit.saved));
        }
        s.insert(key(4), entry(372, 1, 9), 1).unwrap();
        assert!(s.get(&key(1), 1, None).is_none());
        s.count(None);
        s.insert(key(5), entry(372, 1, 9), 1).unwrap();
        assert!(s.get(&key(3), 1, None).is_none());
        s.count(None);
        assert_eq!((s.len(), s.bytes(), s.evictions()), (4, 4 * size, 2));
        let stats = s.stats();
        assert_eq!((stats.hits, stats.misses, stats.entries), (2, 2, 4));
        assert_eq!(
            stats.saved,
            Saved {
                input_tokens: 6,
                output_tokens: 4,
                nanos: 20
            }
        );
        // Smaller bounds (a reload's) evict until the whole fits.
        s.set_bounds(2 * size, size);
        assert_eq!((s.len(), s.bytes()), (2, 2 * size));
        assert_eq!(s.clear(), 2);
        assert_eq!((s.len(), s.bytes()), (0, 0));
        s.set_bounds(4 * size, size);
        for n in 0..4 {
            s.insert(key(n), entry(372, 1, 9), 1).unwrap();
        }
        // A replacement counts once.
        s.insert(key(5), entry(100, 2, 9), 2).unwrap();
        assert_eq!(s.len(), 4);
        assert_eq!(s.get(&key(5), 2, None).unwrap().body.len(), 100);
    }

    proptest! {
        /// Under any mix of inserts, reads and removals the bounds hold,
        /// the index and the ring agree, and what is read is what was
        /// stored last under that key.
        #[test]
        fn any_workload_keeps_the_invariants(ops in prop::collection::vec((0u8..3, 0u8..24, 0usize..900, 0u64..20), 1..300)) {
            let mut s = Store::new(4_000, 1_500);
            let mut last: std::collections::HashMap<CacheKey, Entry> = Default::default();
            let mut now = 0;
            for (op, k, len, ttl) in ops {
                now += ttl % 3;
                let k = key(k);
                match op {
                    0 => {
                        let e = entry(len, now, ttl);
                        if s.insert(k, e.clone(), now).is_ok() {
                            last.insert(k, e);
                        }
                    }
                    1 => {
                        if let Some(got) = s.get(&k, now, None) {
                            prop_assert_eq!(Some(&*got), last.get(&k));
                            prop_assert!(got.expires_at > now);
                        }
                    }
                    _ => {
                        if let Some(&at) = s.index.get(&k) {
                            s.remove_at(at);
                        }
                    }
                }
                prop_assert!(s.bytes() <= 4_000);
                let live: Vec<(usize, &Slot)> = s.ring.iter().enumerate().filter_map(|(i, slot)| Some((i, slot.as_ref()?))).collect();
                prop_assert_eq!(s.index.len(), live.len());
                prop_assert_eq!(s.ring.len(), live.len() + s.free.len());
                let sum: usize = live.iter().map(|(_, slot)| slot.entry.size()).sum();
                prop_assert_eq!(sum, s.bytes());
                for (i, slot) in live {
                    prop_assert_eq!(s.index.get(&slot.key), Some(&i));
                }
                for &i in &s.free {
                    prop_assert!(s.ring[i].is_none());
                }
            }
        }
    }
}
