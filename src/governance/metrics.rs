//! The governance families of `/metrics`, rendered from the table's ledgers
//! at scrape time (off the shards): spend, requests by outcome and tokens,
//! by key name and team.
//!
//! Invariant: cardinality is bounded: the 100 keys with the most requests
//! are named, every other key is summed under `key="other"` (its team
//! kept), so a million keys make at most 100 × teams + teams series per
//! family.

use std::collections::BTreeMap;

use super::ledger::Totals;
use super::Table;
use crate::telemetry::prometheus::{family, sample, sample_start};

/// Keys named in the metrics; the rest are `other`.
pub const NAMED_KEYS: usize = 100;

/// Appends the governance families (nothing when there are no keys).
pub fn render(table: &Table, out: &mut String) {
    let mut keys: Vec<(String, String, Totals)> = table
        .keys()
        .iter()
        .map(|k| {
            let team = k
                .team
                .as_ref()
                .map_or(String::new(), |t| t.spec.name.clone());
            (k.spec.name.clone(), team, k.ledger.lock().totals)
        })
        .collect();
    if keys.is_empty() {
        return;
    }
    keys.sort_by(|a, b| b.2.requests.cmp(&a.2.requests).then_with(|| a.0.cmp(&b.0)));
    // (key label, team) → summed totals.
    let mut rows: BTreeMap<(String, String), Totals> = BTreeMap::new();
    for (i, (name, team, t)) in keys.into_iter().enumerate() {
        let name = if i < NAMED_KEYS { name } else { "other".into() };
        let row = rows.entry((name, team)).or_default();
        row.requests += t.requests;
        row.rate_limited += t.rate_limited;
        row.over_budget += t.over_budget;
        row.input_tokens += t.input_tokens;
        row.output_tokens += t.output_tokens;
        row.spent_nanos += t.spent_nanos;
    }
    family(
        out,
        "shardgate_key_spend_usd_total",
        "counter",
        "US dollars spent, by key and team.",
    );
    for ((key, team), t) in &rows {
        sample_start(
            out,
            "shardgate_key_spend_usd_total",
            &[("key", key), ("team", team)],
        );
        out.push_str(&format!("{}\n", t.spent_nanos as f64 / 1e9));
    }
    family(
        out,
        "shardgate_key_requests_total",
        "counter",
        "Requests by key, team and outcome (admitted, rate_limited, budget_exceeded).",
    );
    for ((key, team), t) in &rows {
        for (outcome, v) in [
            ("admitted", t.requests),
            ("rate_limited", t.rate_limited),
            ("budget_exceeded", t.over_budget),
        ] {
            let labels = [
                ("key", key.as_str()),
                ("team", team.as_str()),
                ("outcome", outcome),
            ];
            sample(out, "shardgate_key_requests_total", &labels, v);
        }
    }
    family(
        out,
        "shardgate_key_tokens_total",
        "counter",
        "Tokens by key, team and direction.",
    );
    for ((key, team), t) in &rows {
        for (direction, v) in [("input", t.input_tokens), ("output", t.output_tokens)] {
            let labels = [
                ("key", key.as_str()),
                ("team", team.as_str()),
                ("direction", direction),
            ];
            sample(out, "shardgate_key_tokens_total", &labels, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::records::KeySpec;
    use super::super::secret;
    use super::*;

    #[test]
    fn past_a_hundred_keys_the_rest_are_other() {
        let table = Table::default();
        for i in 0..150u64 {
            let id = format!("k{i}");
            table.put_key(
                KeySpec {
                    id: id.clone(),
                    name: format!("key-{i}"),
                    ..KeySpec::default()
                },
                secret::hash(id.as_bytes()),
            );
            let k = table.key(&id).unwrap();
            let mut l = k.ledger.lock();
            l.totals.requests = i + 1;
            l.totals.spent_nanos = 1_500_000_000;
        }
        let mut out = String::new();
        render(&table, &mut out);
        let spend_lines = out
            .lines()
            .filter(|l| l.starts_with("shardgate_key_spend_usd_total{"))
            .count();
        assert_eq!(spend_lines, 101, "{out}");
        assert!(
            out.contains("shardgate_key_spend_usd_total{key=\"other\",team=\"\"} 75\n"),
            "{out}"
        );
        assert!(out.contains("key=\"key-149\""), "the busiest are named");
        assert!(!out.contains("key=\"key-0\""), "the quietest are not");
        assert!(out.contains(
            "shardgate_key_requests_total{key=\"key-149\",team=\"\",outcome=\"admitted\"} 150\n"
        ));
    }
}
