//! The semantic cache's precision and recall on a labelled set of
//! paraphrase pairs (`tests/fixtures/semantic/paraphrase_pairs.json`),
//! with the test embedding (`common::embed`) at [`DEFAULT_THRESHOLD`].
//!
//! Every pair's first prompt is stored in one partition, as one tenant's
//! cache would hold them, and each second prompt is looked up among all of
//! them: a hit on the right prompt counts by the pair's label, and a hit on
//! any other stored prompt is a false hit (the answer served would be
//! another question's) unless the set labels that pair the same. The text
//! embedded is what the gateway would embed: `semantic_text` of a chat
//! request.

mod common;

use common::embed::toy_embedding;
use serde_json::{json, Value};
use shardgate::cache::key::{cache_key, CacheKey, KeyDigest};
use shardgate::cache::semantic::{SemanticIndex, DEFAULT_THRESHOLD};
use shardgate::cache::semantic_text::semantic_text;

const PAIRS: &str = include_str!("fixtures/semantic/paraphrase_pairs.json");

struct Pair {
    a: String,
    b: String,
    same: bool,
}

fn pairs() -> Vec<Pair> {
    let set: Value = serde_json::from_str(PAIRS).unwrap();
    set.as_array()
        .unwrap()
        .iter()
        .map(|p| Pair {
            a: p["a"].as_str().unwrap().to_string(),
            b: p["b"].as_str().unwrap().to_string(),
            same: p["same"].as_bool().unwrap(),
        })
        .collect()
}

fn request(prompt: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "model": "m",
        "messages": [{"role": "user", "content": prompt}],
    }))
    .unwrap()
}

/// The embedding of `prompt` as the gateway would compute it, and the
/// exact key its answer would be stored under.
fn embed(prompt: &str) -> (Vec<f32>, CacheKey) {
    let body = request(prompt);
    let text = semantic_text("chat_completions", &body).unwrap();
    let key = cache_key(
        &KeyDigest::Sha256,
        "tenant",
        "chat_completions",
        "m",
        &body,
        &[],
    )
    .unwrap();
    (toy_embedding(&text), key)
}

#[derive(Default, Debug)]
struct Counts {
    true_hits: usize,
    false_hits: usize,
    misses_of_same: usize,
    misses_of_different: usize,
}

fn measure(pairs: &[Pair], threshold: f32) -> (Counts, Vec<String>) {
    let partition = CacheKey([7; 32]);
    let mut index = SemanticIndex::new(1024);
    let mut stored = std::collections::HashMap::new();
    for pair in pairs {
        let (vector, key) = embed(&pair.a);
        assert!(index.insert(partition, &vector, key));
        stored.insert(key, pair.a.clone());
    }
    let label = |a: &str, b: &str| {
        pairs
            .iter()
            .find(|p| (p.a == a && p.b == b) || (p.a == b && p.b == a))
            .map(|p| p.same)
    };
    let mut counts = Counts::default();
    let mut wrong = Vec::new();
    for pair in pairs {
        let (vector, _) = embed(&pair.b);
        match index.nearest(&partition, &vector, threshold) {
            Some((key, similarity)) => {
                let hit = &stored[&key];
                if label(hit, &pair.b) == Some(true) {
                    counts.true_hits += 1;
                } else {
                    counts.false_hits += 1;
                    wrong.push(format!(
                        "false hit {similarity:.3}: {:?} for {:?}",
                        hit, pair.b
                    ));
                }
            }
            None if pair.same => {
                counts.misses_of_same += 1;
                wrong.push(format!("miss: {:?} for {:?}", pair.a, pair.b));
            }
            None => counts.misses_of_different += 1,
        }
    }
    (counts, wrong)
}

#[test]
fn near_duplicates_hit_and_different_prompts_miss() {
    let pairs = pairs();
    assert!(pairs.len() >= 40);
    assert!(pairs.iter().filter(|p| p.same).count() >= 20);
    assert!(pairs.iter().filter(|p| !p.same).count() >= 20);
    let (counts, wrong) = measure(&pairs, DEFAULT_THRESHOLD);
    let hits = counts.true_hits + counts.false_hits;
    let precision = if hits == 0 {
        1.0
    } else {
        counts.true_hits as f64 / hits as f64
    };
    let recall = counts.true_hits as f64 / pairs.iter().filter(|p| p.same).count() as f64;
    eprintln!(
        "semantic precision {precision:.3} recall {recall:.3} at threshold {DEFAULT_THRESHOLD} over {} pairs",
        pairs.len()
    );
    for line in &wrong {
        eprintln!("  {line}");
    }
    assert!(precision >= 0.95, "{counts:?}");
    assert!(recall >= 0.6, "{counts:?}");
}

#[test]
fn the_embedding_is_deterministic_and_unit_length() {
    let a = toy_embedding("What's the capital of France?");
    assert_eq!(a, toy_embedding("What's the capital of France?"));
    assert_eq!(a.len(), common::embed::DIMENSIONS);
    let norm: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-5);
    assert!(toy_embedding(" ?! ").iter().all(|&x| x == 0.0));
}
