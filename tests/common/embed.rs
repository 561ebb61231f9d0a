//! A deterministic stand-in for an embedding model, for the semantic
//! cache's tests (and the mock upstream's `/embeddings`): a bag of crudely
//! normalised words hashed into a fixed-width vector, with character
//! trigrams at a lower weight, L2-normalised.
//!
//! It knows no meaning, only words: rewordings that keep the content words
//! (reordered, contracted, with or without "please", "can you", articles,
//! plural or -ing forms) land close; prompts that differ in a content word
//! land farther. Numbers and negations weigh double, because one of them
//! changing changes the answer ("17 times 23" is not "17 times 24"). Same
//! text, same vector, on every machine: FNV-1a, no seeds.

/// The vector's width.
pub const DIMENSIONS: usize = 256;

/// Words that carry little of a prompt's meaning, role labels included
/// (the semantic text is `role: text` lines).
const STOP_WORDS: &[&str] = &[
    "a",
    "an",
    "the",
    "of",
    "in",
    "into",
    "to",
    "for",
    "on",
    "at",
    "by",
    "with",
    "about",
    "from",
    "and",
    "or",
    "if",
    "is",
    "are",
    "was",
    "be",
    "do",
    "does",
    "did",
    "has",
    "have",
    "there",
    "it",
    "me",
    "my",
    "you",
    "your",
    "our",
    "we",
    "can",
    "could",
    "would",
    "will",
    "please",
    "some",
    "all",
    "this",
    "that",
    "what",
    "which",
    "tell",
    "system",
    "user",
    "assistant",
    "developer",
];

/// Irregular forms and a few synonyms the suffix rules cannot reach.
const SYNONYMS: &[(&str, &str)] = &[
    ("wrote", "write"),
    ("written", "write"),
    ("author", "write"),
    ("cannot", "not"),
    ("won", "win"),
];

/// Words that turn a statement around.
const NEGATIONS: &[&str] = &["not", "no", "never", "without"];

const TRIGRAM_WEIGHT: f32 = 0.2;

/// The toy embedding of `text`: [`DIMENSIONS`] floats of unit length (all
/// zeros only for a text with no word at all).
pub fn toy_embedding(text: &str) -> Vec<f32> {
    let mut vector = vec![0.0f32; DIMENSIONS];
    for word in words(text) {
        let weight =
            if NEGATIONS.contains(&word.as_str()) || word.chars().any(|c| c.is_ascii_digit()) {
                2.0
            } else {
                1.0
            };
        add(&mut vector, word.as_bytes(), weight);
        let marked: Vec<u8> = [b"^", word.as_bytes(), b"$"].concat();
        for trigram in marked.windows(3) {
            add(&mut vector, trigram, TRIGRAM_WEIGHT);
        }
    }
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        vector.iter_mut().for_each(|x| *x /= norm);
    }
    vector
}

/// The content words of `text`, normalised.
fn words(text: &str) -> Vec<String> {
    let lower = text.to_lowercase().replace('’', "'");
    let mut out = Vec::new();
    for raw in lower.split(|c: char| !(c.is_alphanumeric() || c == '\'')) {
        let raw = raw.trim_matches('\'');
        // "can't" is "can not", "isn't" "is not"; "what's", "Canada's",
        // "we're", "I'll" are their first word.
        let (word, negated) = match raw.strip_suffix("n't") {
            Some("ca") => ("can", true),
            Some("wo") => ("will", true),
            Some(stem) => (stem, true),
            None => (raw.split('\'').next().unwrap_or(raw), false),
        };
        for word in [Some(word), negated.then_some("not")].into_iter().flatten() {
            let word = SYNONYMS
                .iter()
                .find(|(from, _)| *from == word)
                .map_or(word, |(_, to)| to);
            if word.is_empty() || STOP_WORDS.contains(&word) {
                continue;
            }
            out.push(stem(word));
        }
    }
    out
}

/// Crude suffix stripping: plurals ("cookies" to "cookie", not to
/// "cooky"), -ing, -ed.
fn stem(word: &str) -> String {
    let n = word.len();
    for (suffix, min) in [("ing", 6), ("ed", 5)] {
        if let Some(s) = word.strip_suffix(suffix).filter(|_| n >= min) {
            return s.to_string();
        }
    }
    match word.strip_suffix('s') {
        Some(s) if n > 3 && !s.ends_with('s') => s.to_string(),
        _ => word.to_string(),
    }
}

/// Adds `feature` at `weight` to the component its hash picks, with the
/// sign its hash picks (so unrelated features cancel rather than pile up).
fn add(vector: &mut [f32], feature: &[u8], weight: f32) {
    let hash = fnv1a(feature);
    let sign = if hash >> 63 == 0 { 1.0 } else { -1.0 };
    vector[(hash % DIMENSIONS as u64) as usize] += sign * weight;
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
