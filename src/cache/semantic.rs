//! The semantic cache's vector index, sans-IO: embeddings of requests that
//! were answered, each pointing at the exact cache entry (`target`) that
//! holds the answer, looked up by cosine similarity above a threshold.
//!
//! The index is [usearch](https://crates.io/crates/usearch)'s HNSW graph,
//! one graph per partition. Of the ANN crates looked at it is the one that
//! inserts incrementally *and* removes (a removed slot goes on a free list
//! and the next insert reuses it, so a bounded FIFO of embeddings does not
//! grow the graph or need rebuilding); `hnsw_rs` cannot remove (tombstones
//! and rebuilds would be ours to write) and `instant-distance` is built
//! once and immutable. usearch bundles its C++ (compiled with the system
//! C++ compiler, no download) and is actively kept. Its search over a small
//! graph visits every node (the search's expansion, 64, exceeds the size),
//! so tiny partitions are answered exactly without a fallback of our own.
//!
//! A partition is an opaque [`CacheKey`] (the caller derives it from the
//! tenant's namespace, the route, the model and the request's non-text
//! parameters); a graph per partition means vectors of different partitions
//! are never even compared, and each partition has its own dimension (that
//! of its first vector; an empty partition is dropped, graph and all).
//! The price is a fixed cost per partition (about 48 KiB resident, and two
//! 8 MiB arenas of address space, only touched pages resident), so callers
//! should partition coarsely: by tenant, route, model and the parameters
//! that change an answer, not by anything per request.
//!
//! Invariants: at most `max_vectors` vectors in all partitions together,
//! and at most `max_partitions` partitions, the oldest vectors evicted first (O(1) amortised: a queue of insertion ids,
//! stale ids skipped and the queue compacted when they outnumber the live
//! ones); a target has at most one vector (re-inserting replaces it);
//! vectors are L2-normalised on insert and query, and a zero, non-finite,
//! oversized or wrong-dimension vector is refused on insert and matches
//! nothing on query. Nothing here panics on any input.

use std::cmp::Ordering;
use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};

use usearch::{Index, IndexOptions, MetricKind, ScalarKind};

use super::key::CacheKey;

/// The cosine similarity at or above which a stored request is taken to
/// mean the same as the one asked (the config's default). Measured on the
/// labelled paraphrase set in `tests/fixtures/semantic/` with the test
/// embedding: the lowest threshold with one false hit there (a word-order
/// swap a bag of words cannot see), and in the range semantic caches over
/// real embedding models use (0.9 to 0.95). A model whose paraphrases sit
/// closer wants it higher.
pub const DEFAULT_THRESHOLD: f32 = 0.90;

/// The largest embedding accepted (the widest common models have 4096).
pub const MAX_DIMENSIONS: usize = 8192;

/// usearch's own defaults, stated so the memory estimate can rely on them.
const CONNECTIVITY: usize = 16;
const EXPANSION_ADD: usize = 128;
const EXPANSION_SEARCH: usize = 64;

/// Bytes a vector costs beyond its floats: the graph node (key, level and
/// 2 × `CONNECTIVITY` neighbour slots at the base level), usearch's key
/// table and slot array, and our three maps' entries and queue slot.
/// Checked against usearch's own accounting in the tests.
const PER_VECTOR: usize = 400;
/// Bytes a graph costs however few vectors it holds: its search context,
/// the first pages of its two allocator arenas, its slot arrays (measured:
/// 20 000 one-vector partitions grew the resident set by about 48 KiB
/// each).
const PER_PARTITION: usize = 48 * 1024;

/// The bounded index of embeddings, by partition.
pub struct SemanticIndex {
    max_vectors: usize,
    max_partitions: usize,
    partitions: HashMap<CacheKey, Partition>,
    /// Where each target's vector is: its id, and its partition.
    by_target: HashMap<CacheKey, (u64, CacheKey)>,
    /// Each live id's target (the graph's keys are these ids).
    by_id: HashMap<u64, CacheKey>,
    /// Ids oldest first; an id no longer in `by_id` is stale.
    order: VecDeque<u64>,
    next_id: u64,
    bytes: usize,
}

struct Partition {
    index: Index,
    dims: usize,
}

impl SemanticIndex {
    /// An empty index that holds at most `max_vectors` vectors (in as
    /// many partitions as they fall in: see [`Self::with_max_partitions`]).
    pub fn new(max_vectors: usize) -> Self {
        Self {
            max_vectors,
            max_partitions: usize::MAX,
            partitions: HashMap::new(),
            by_target: HashMap::new(),
            by_id: HashMap::new(),
            order: VecDeque::new(),
            next_id: 0,
            bytes: 0,
        }
    }

    /// Bounds the partitions too, each costing [`PER_PARTITION`] however
    /// few vectors it holds: a vector for a new partition past the bound
    /// evicts the oldest vectors until a partition is gone.
    pub fn with_max_partitions(mut self, max_partitions: usize) -> Self {
        self.max_partitions = max_partitions.max(1);
        self
    }

    /// Stores `vector` in `partition`, pointing at `target`, replacing the
    /// target's previous vector and evicting the oldest vectors past the
    /// bound. Returns whether it was stored: a vector that is zero,
    /// non-finite, wider than [`MAX_DIMENSIONS`] or of another dimension than
    /// the partition's is refused, and the index is left as it was.
    pub fn insert(&mut self, partition: CacheKey, vector: &[f32], target: CacheKey) -> bool {
        let Some(unit) = normalised(vector) else {
            return false;
        };
        if self.max_vectors == 0 {
            return false;
        }
        let replacing = self.by_target.get(&target).map(|&(_, p)| p);
        if let Some(existing) = self.partitions.get(&partition) {
            // The target's own old vector may be the partition's last, in
            // which case the partition is about to go and any width will do.
            let sole_old = replacing == Some(partition) && existing.index.size() == 1;
            if existing.dims != unit.len() && !sole_old {
                return false;
            }
        }
        self.remove_target(&target);
        while self.by_id.len() >= self.max_vectors
            || (!self.partitions.contains_key(&partition)
                && self.partitions.len() >= self.max_partitions)
        {
            if !self.evict_oldest() {
                break;
            }
        }
        let id = self.next_id;
        if self.add(partition, id, &unit).is_none() {
            return false;
        }
        self.next_id += 1;
        self.by_target.insert(target, (id, partition));
        self.by_id.insert(id, target);
        self.order.push_back(id);
        self.bytes += unit.len() * 4 + PER_VECTOR;
        true
    }

    /// The target of the vector in `partition` most similar to `vector`,
    /// with its cosine similarity, if that is at least `threshold`.
    pub fn nearest(
        &self,
        partition: &CacheKey,
        vector: &[f32],
        threshold: f32,
    ) -> Option<(CacheKey, f32)> {
        let part = self.partitions.get(partition)?;
        if vector.len() != part.dims {
            return None;
        }
        let unit = normalised(vector)?;
        let found = part.index.search(&unit, 1).ok()?;
        let (&id, &distance) = found.keys.first().zip(found.distances.first())?;
        // The inner-product metric's distance is 1 − the dot product.
        let similarity = 1.0 - distance;
        // A NaN threshold or similarity is no match.
        if !matches!(
            similarity.partial_cmp(&threshold),
            Some(Ordering::Greater | Ordering::Equal)
        ) {
            return None;
        }
        let target = self.by_id.get(&id)?;
        Some((*target, similarity.min(1.0)))
    }

    /// Forgets the vector pointing at `target` (its exact entry is gone).
    pub fn remove_target(&mut self, target: &CacheKey) {
        let Some((id, partition)) = self.by_target.remove(target) else {
            return;
        };
        self.by_id.remove(&id);
        if let Some(part) = self.partitions.get(&partition) {
            let _ = part.index.remove(id);
            self.bytes = self.bytes.saturating_sub(part.dims * 4 + PER_VECTOR);
            if part.index.size() == 0 {
                self.partitions.remove(&partition);
                self.bytes = self.bytes.saturating_sub(PER_PARTITION);
            }
        }
        // Removals leave stale ids behind; keep them from outgrowing the
        // live ones so the queue stays O(live).
        if self.order.len() > 2 * self.by_id.len() + 16 {
            let live = &self.by_id;
            self.order.retain(|id| live.contains_key(id));
        }
    }

    /// How many vectors the index holds.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Approximate bytes held (floats, graph and bookkeeping), for a metric.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Evicts the oldest live vector; false when there is none.
    fn evict_oldest(&mut self) -> bool {
        while let Some(id) = self.order.pop_front() {
            if let Some(target) = self.by_id.get(&id).copied() {
                self.remove_target(&target);
                return true;
            }
        }
        false
    }

    /// Adds `unit` under `id` to `partition`'s graph, making the graph if
    /// it has none; `None` (and no new empty graph left behind) if usearch
    /// refuses.
    fn add(&mut self, partition: CacheKey, id: u64, unit: &[f32]) -> Option<()> {
        if let Entry::Vacant(slot) = self.partitions.entry(partition) {
            let index = Index::new(&IndexOptions {
                dimensions: unit.len(),
                metric: MetricKind::IP,
                quantization: ScalarKind::F32,
                connectivity: CONNECTIVITY,
                expansion_add: EXPANSION_ADD,
                expansion_search: EXPANSION_SEARCH,
                multi: false,
            })
            .ok()?;
            slot.insert(Partition {
                index,
                dims: unit.len(),
            });
            self.bytes += PER_PARTITION;
        }
        let part = self.partitions.get(&partition)?;
        let index = &part.index;
        // usearch adds only within reserved capacity; double it, and keep one
        // search context (the index is used from one shard's thread).
        let stored = (index.size() < index.capacity()
            || index
                .reserve_capacity_and_threads((index.capacity() * 2).max(4), 1)
                .is_ok())
            && index.add(id, unit).is_ok();
        if !stored && index.size() == 0 {
            self.partitions.remove(&partition);
            self.bytes = self.bytes.saturating_sub(PER_PARTITION);
        }
        stored.then_some(())
    }
}

/// `vector` scaled to unit length; `None` if it is empty, too wide, has a
/// non-finite component or has no length to scale.
fn normalised(vector: &[f32]) -> Option<Vec<f32>> {
    if vector.is_empty() || vector.len() > MAX_DIMENSIONS {
        return None;
    }
    // In f64 so that large finite components do not overflow the sum.
    let mut sum = 0.0f64;
    for &x in vector {
        if !x.is_finite() {
            return None;
        }
        sum += f64::from(x) * f64::from(x);
    }
    let norm = sum.sqrt();
    // Squares of finite floats sum to no NaN.
    if norm <= 0.0 || !norm.is_finite() {
        return None;
    }
    Some(
        vector
            .iter()
            .map(|&x| (f64::from(x) / norm) as f32)
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(n: u8) -> CacheKey {
        CacheKey([n; 32])
    }

    fn cosine(a: &[f32], b: &[f32]) -> f32 {
        let (a, b) = (normalised(a).unwrap(), normalised(b).unwrap());
        a.iter().zip(&b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn finds_the_nearest_above_the_threshold() {
        let mut index = SemanticIndex::new(10);
        let p = key(0);
        assert!(index.insert(p, &[1.0, 0.0, 0.0], key(1)));
        assert!(index.insert(p, &[0.0, 1.0, 0.0], key(2)));
        let (target, sim) = index.nearest(&p, &[0.9, 0.1, 0.0], 0.9).unwrap();
        assert_eq!(target, key(1));
        assert!((sim - cosine(&[0.9, 0.1, 0.0], &[1.0, 0.0, 0.0])).abs() < 1e-5);
        // Unnormalised input is scaled, not compared by length.
        assert_eq!(
            index.nearest(&p, &[0.0, 50.0, 0.0], 0.99).unwrap().0,
            key(2)
        );
        assert_eq!(index.nearest(&p, &[0.0, 0.0, 1.0], 0.5), None);
        assert_eq!(index.nearest(&p, &[1.0, 1.0, 0.0], 0.8), None);
    }

    #[test]
    fn partitions_never_match_each_other() {
        let mut index = SemanticIndex::new(10);
        assert!(index.insert(key(0), &[1.0, 0.0], key(1)));
        assert_eq!(index.nearest(&key(9), &[1.0, 0.0], -1.0), None);
        // Another partition may have another width.
        assert!(index.insert(key(9), &[1.0, 0.0, 0.0], key(2)));
        assert_eq!(
            index.nearest(&key(9), &[1.0, 0.0, 0.0], 0.9).unwrap().0,
            key(2)
        );
        assert_eq!(index.nearest(&key(0), &[1.0, 0.0], 0.9).unwrap().0, key(1));
    }

    #[test]
    fn refuses_bad_vectors_without_panicking() {
        let mut index = SemanticIndex::new(10);
        let p = key(0);
        for bad in [
            &[][..],
            &[0.0, 0.0],
            &[f32::NAN, 1.0],
            &[f32::INFINITY, 1.0],
        ] {
            assert!(!index.insert(p, bad, key(1)), "{bad:?}");
            assert_eq!(index.nearest(&p, bad, -1.0), None);
        }
        assert!(!index.insert(p, &vec![1.0; MAX_DIMENSIONS + 1], key(1)));
        assert!(index.is_empty());
        assert_eq!(index.bytes(), 0);
        // Huge or subnormal finite components normalise rather than
        // overflow or vanish.
        assert!(index.insert(p, &[f32::MIN_POSITIVE / 1e6, 0.0], key(1)));
        assert_eq!(index.nearest(&p, &[1.0, 0.0], 0.99).unwrap().0, key(1));
        assert!(index.insert(p, &[f32::MAX, f32::MAX], key(1)));
        assert!(!index.insert(p, &[1.0, 0.0, 0.0], key(2)), "wrong width");
        assert_eq!(index.nearest(&p, &[1.0, 1.0, 0.0], -1.0), None);
        assert_eq!(index.nearest(&p, &[1.0, 1.0], f32::NAN), None);
        assert_eq!(index.nearest(&p, &[1.0, 1.0], 0.99).unwrap().0, key(1));
        assert_eq!(index.len(), 1);
        let mut none = SemanticIndex::new(0);
        assert!(!none.insert(p, &[1.0], key(1)));
        assert!(none.is_empty());
    }

    #[test]
    fn reinserting_a_target_replaces_its_vector() {
        let mut index = SemanticIndex::new(10);
        let p = key(0);
        assert!(index.insert(p, &[1.0, 0.0], key(1)));
        assert!(index.insert(p, &[0.0, 1.0], key(1)));
        assert_eq!(index.len(), 1);
        assert_eq!(index.nearest(&p, &[1.0, 0.0], 0.5), None);
        assert_eq!(index.nearest(&p, &[0.0, 1.0], 0.5).unwrap().0, key(1));
        // Even into another partition, and with the sole vector's partition
        // free to change width.
        assert!(index.insert(p, &[0.0, 1.0, 0.0], key(1)));
        assert!(index.insert(key(5), &[0.0, 1.0], key(1)));
        assert_eq!(index.nearest(&p, &[0.0, 1.0, 0.0], 0.5), None);
        assert_eq!(index.nearest(&key(5), &[0.0, 1.0], 0.5).unwrap().0, key(1));
        assert_eq!(index.len(), 1);
        // A refused re-insert keeps the old vector.
        assert!(index.insert(key(5), &[1.0, 0.0], key(2)));
        assert!(!index.insert(key(5), &[1.0, 0.0, 0.0], key(1)));
        assert_eq!(index.nearest(&key(5), &[0.0, 1.0], 0.5).unwrap().0, key(1));
    }

    #[test]
    fn evicts_the_oldest_and_removes_targets() {
        let mut index = SemanticIndex::new(3);
        let p = key(0);
        let axis = |i: usize| {
            let mut v = vec![0.0; 4];
            v[i] = 1.0;
            v
        };
        for i in 0..4 {
            assert!(index.insert(p, &axis(i), key(i as u8 + 1)));
        }
        assert_eq!(index.len(), 3);
        assert_eq!(index.nearest(&p, &axis(0), 0.5), None, "oldest evicted");
        assert_eq!(index.nearest(&p, &axis(3), 0.5).unwrap().0, key(4));
        index.remove_target(&key(2));
        index.remove_target(&key(2));
        assert_eq!(index.nearest(&p, &axis(1), 0.5), None);
        assert_eq!(index.len(), 2);
        index.remove_target(&key(3));
        index.remove_target(&key(4));
        assert!(index.is_empty());
        assert!(index.partitions.is_empty(), "empty partitions dropped");
        assert_eq!(index.bytes(), 0);
    }

    #[test]
    fn a_new_partition_past_the_bound_evicts_the_oldest() {
        let mut idx = SemanticIndex::new(100).with_max_partitions(2);
        assert!(idx.insert(key(1), &[1.0, 0.0], key(11)));
        assert!(idx.insert(key(1), &[0.0, 1.0], key(12)));
        assert!(idx.insert(key(2), &[1.0, 0.0], key(21)));
        // Partition 3 needs room: 1's two vectors go (oldest first).
        assert!(idx.insert(key(3), &[1.0, 0.0], key(31)));
        assert_eq!(idx.len(), 2);
        assert_eq!(idx.nearest(&key(1), &[1.0, 0.0], 0.5), None);
        assert_eq!(
            idx.nearest(&key(2), &[1.0, 0.0], 0.5).map(|h| h.0),
            Some(key(21))
        );
        assert_eq!(
            idx.nearest(&key(3), &[1.0, 0.0], 0.5).map(|h| h.0),
            Some(key(31))
        );
        // An existing partition takes more without evicting.
        assert!(idx.insert(key(3), &[0.0, 1.0], key(32)));
        assert_eq!(idx.len(), 3);
    }

    #[test]
    fn stale_ids_do_not_accumulate() {
        let mut index = SemanticIndex::new(4);
        for round in 0..1000u32 {
            let v = [1.0, round as f32];
            assert!(index.insert(key(0), &v, key((round % 2) as u8)));
        }
        assert_eq!(index.len(), 2);
        assert!(index.order.len() <= 2 * index.len() + 17);
    }

    #[test]
    fn bytes_tracks_usearch_within_a_factor_of_two() {
        let mut index = SemanticIndex::new(10_000);
        let mut rng = fastrand::Rng::with_seed(7);
        for i in 0..2000u32 {
            let v: Vec<f32> = (0..256).map(|_| rng.f32() - 0.5).collect();
            let mut t = [0u8; 32];
            t[..4].copy_from_slice(&i.to_le_bytes());
            assert!(index.insert(key((i % 4) as u8), &v, CacheKey(t)));
        }
        // usearch's `memory_usage` counts its arenas' untouched reserve
        // (8 MiB a tape); what is used of them is what compares.
        let theirs: usize = index
            .partitions
            .values()
            .map(|p| {
                let m = p.index.memory_stats();
                m.graph_allocated - m.graph_reserved + m.vectors_allocated - m.vectors_reserved
            })
            .sum();
        let ours = index.bytes();
        assert!(
            ours > theirs / 2 && ours < theirs * 2,
            "ours {ours}, usearch's {theirs}"
        );
    }

    /// Small vectors from a few values, so near-ties and duplicates occur.
    fn vector(dims: usize) -> impl Strategy<Value = Vec<f32>> {
        prop::collection::vec(-3i8..=3, dims).prop_map(|v| v.into_iter().map(f32::from).collect())
    }

    proptest! {
        #[test]
        fn agrees_with_a_brute_force_scan(
            stored in prop::collection::vec((0u8..3, vector(6)), 0..40),
            queries in prop::collection::vec((0u8..4, vector(6)), 1..10),
            threshold in -1.0f32..1.0,
            max in 1usize..32,
        ) {
            let mut index = SemanticIndex::new(max);
            // What should be live: the newest `max` accepted vectors.
            let mut live: Vec<(u8, Vec<f32>, CacheKey)> = Vec::new();
            for (i, (p, v)) in stored.iter().enumerate() {
                let target = key(i as u8);
                let ok = index.insert(key(*p), v, target);
                prop_assert_eq!(ok, normalised(v).is_some());
                if ok {
                    live.push((*p, v.clone(), target));
                    if live.len() > max {
                        live.remove(0);
                    }
                }
                prop_assert!(index.len() <= max);
                prop_assert_eq!(index.len(), live.len());
            }
            for (p, q) in &queries {
                let got = index.nearest(&key(*p), q, threshold);
                let best = normalised(q).and_then(|_| {
                    live.iter()
                        .filter(|(lp, _, _)| lp == p)
                        .map(|(_, v, t)| (cosine(q, v), *t))
                        .max_by(|a, b| a.0.total_cmp(&b.0))
                });
                const EPS: f32 = 1e-4;
                match (got, best) {
                    (Some((target, sim)), Some((best_sim, _))) => {
                        prop_assert!(sim >= threshold);
                        prop_assert!((sim - best_sim).abs() < EPS, "{sim} vs {best_sim}");
                        let (_, v, _) = live.iter().find(|(lp, _, t)| *t == target && lp == p)
                            .expect("a live target of the queried partition");
                        prop_assert!((cosine(q, v) - sim).abs() < EPS);
                    }
                    (None, Some((best_sim, _))) => prop_assert!(best_sim < threshold + EPS),
                    (Some(found), None) => prop_assert!(false, "{found:?} from nothing"),
                    (None, None) => {}
                }
            }
        }
    }
}
