//! The byte-identical fast path of the exact cache, sans-IO: most repeats
//! of a request are the same bytes (one client serialises the same way
//! each time), so the request's exact bytes, with its namespace, route and
//! model, are mapped to the canonical key they had, and a repeat skips the
//! canonical walk and its SHA-256. A mapping is made on a request's first
//! hit (`proxy::lookup`), not on its miss: a miss that is never asked
//! again, the common case under unique prompts, then costs only the hash.
//!
//! Invariants: a match is decided by comparing the whole identity (the
//! bytes, not only their hash), so a hash collision can never give another
//! request's key; the index is bounded in bytes (oldest out first), in
//! parts by hash, each behind its own lock; a stale mapping (its entry
//! gone) only costs the canonical path, never a wrong answer.

use std::collections::VecDeque;
use std::hash::Hasher;
use std::sync::Mutex;

use super::key::CacheKey;

const PARTS: usize = 16;
/// What a mapping costs beyond its identity bytes.
const OVERHEAD: usize = 96;

/// A request's identity: its hash and the parts it is made of.
pub struct Identity<'a> {
    hash: u64,
    parts: [&'a [u8]; 4],
    len: usize,
}

impl<'a> Identity<'a> {
    pub fn new(namespace: &'a str, route: &'a str, model: &'a str, body: &'a [u8]) -> Self {
        let parts = [
            namespace.as_bytes(),
            route.as_bytes(),
            model.as_bytes(),
            body,
        ];
        let mut h = rustc_hash::FxHasher::default();
        for p in parts {
            h.write_usize(p.len());
            h.write(p);
        }
        Identity {
            hash: h.finish(),
            parts,
            len: parts.iter().map(|p| p.len() + 8).sum(),
        }
    }

    /// The identity as stored: each part length-prefixed.
    fn bytes(&self) -> Box<[u8]> {
        let mut out = Vec::with_capacity(self.len);
        for p in self.parts {
            out.extend_from_slice(&(p.len() as u64).to_le_bytes());
            out.extend_from_slice(p);
        }
        out.into_boxed_slice()
    }

    fn matches(&self, stored: &[u8]) -> bool {
        if stored.len() != self.len {
            return false;
        }
        let mut at = 0;
        for p in self.parts {
            let (len, rest) = stored[at..].split_at(8);
            if len != (p.len() as u64).to_le_bytes() || !rest.starts_with(p) {
                return false;
            }
            at += 8 + p.len();
        }
        true
    }
}

#[derive(Default)]
struct Part {
    map: std::collections::HashMap<
        u64,
        (CacheKey, Box<[u8]>),
        std::hash::BuildHasherDefault<rustc_hash::FxHasher>,
    >,
    order: VecDeque<u64>,
    bytes: usize,
}

/// The bounded index of identities to canonical keys.
pub struct RawIndex {
    parts: Vec<Mutex<Part>>,
    max_part_bytes: usize,
}

impl RawIndex {
    /// An index of at most `max_bytes` (identities and bookkeeping).
    pub fn new(max_bytes: usize) -> RawIndex {
        RawIndex {
            parts: (0..PARTS).map(|_| Mutex::new(Part::default())).collect(),
            max_part_bytes: max_bytes / PARTS,
        }
    }

    fn part(&self, hash: u64) -> std::sync::MutexGuard<'_, Part> {
        // The hash's high bits pick the part; its map uses all of them.
        let at = (hash >> 58) as usize % PARTS;
        self.parts[at].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The canonical key `id` had, if it was seen (and is still held).
    pub fn get(&self, id: &Identity<'_>) -> Option<CacheKey> {
        let part = self.part(id.hash);
        let (key, stored) = part.map.get(&id.hash)?;
        id.matches(stored).then_some(*key)
    }

    /// Remembers that `id` has canonical key `key`, evicting the oldest
    /// mappings past the bound.
    pub fn insert(&self, id: &Identity<'_>, key: CacheKey) {
        let size = id.len + OVERHEAD;
        if size > self.max_part_bytes {
            return;
        }
        let mut part = self.part(id.hash);
        if let Some((_, old)) = part.map.insert(id.hash, (key, id.bytes())) {
            part.bytes -= old.len() + OVERHEAD;
        } else {
            part.order.push_back(id.hash);
        }
        part.bytes += size;
        while part.bytes > self.max_part_bytes {
            let Some(oldest) = part.order.pop_front() else {
                break;
            };
            if let Some((_, old)) = part.map.remove(&oldest) {
                part.bytes -= old.len() + OVERHEAD;
            }
        }
    }

    /// Forgets every mapping.
    pub fn clear(&self) {
        for p in &self.parts {
            *p.lock().unwrap_or_else(|e| e.into_inner()) = Part::default();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_same_bytes_in_the_same_namespace_match() {
        let idx = RawIndex::new(1 << 20);
        let key = CacheKey([7; 32]);
        let id = Identity::new("team:a", "chat_completions", "m", b"{\"x\":1}");
        assert_eq!(idx.get(&id), None);
        idx.insert(&id, key);
        assert_eq!(idx.get(&id), Some(key));
        for other in [
            Identity::new("team:b", "chat_completions", "m", b"{\"x\":1}"),
            Identity::new("team:a", "messages", "m", b"{\"x\":1}"),
            Identity::new("team:a", "chat_completions", "m2", b"{\"x\":1}"),
            Identity::new("team:a", "chat_completions", "m", b"{\"x\":2}"),
            Identity::new("team:", "achat_completions", "m", b"{\"x\":1}"),
        ] {
            assert_eq!(idx.get(&other), None);
        }
        // A colliding hash with other bytes never matches.
        let mut forged = Identity::new("team:b", "chat_completions", "m", b"{\"x\":1}");
        forged.hash = id.hash;
        assert_eq!(idx.get(&forged), None);
        idx.clear();
        assert_eq!(idx.get(&id), None);
    }

    #[test]
    fn the_bound_holds_oldest_out_first() {
        let idx = RawIndex::new(PARTS * 2048);
        let bodies: Vec<Vec<u8>> = (0..400u32)
            .map(|n| format!("{{\"n\":{n}}}").into_bytes())
            .collect();
        for (n, b) in bodies.iter().enumerate() {
            idx.insert(&Identity::new("", "r", "m", b), CacheKey([n as u8; 32]));
        }
        for p in &idx.parts {
            assert!(p.lock().unwrap().bytes <= 2048);
        }
        let last = Identity::new("", "r", "m", &bodies[399]);
        assert_eq!(idx.get(&last), Some(CacheKey([399u32 as u8; 32])));
        assert_eq!(idx.get(&Identity::new("", "r", "m", &bodies[0])), None);
    }
}
