//! The governance families of `/metrics`, rendered from the table's ledgers
//! at scrape time (off the shards): spend, requests by outcome and tokens,
//! by key name and team.
//!
//! Invariant: cardinality is bounded: the 100 keys with the most requests
//! are named, every other key is summed under `key="other"` (its team
//! kept), so a million keys make at most 100 × teams + teams series per
//! family.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::ledger::Totals;
use super::Table;
use crate::telemetry::prometheus::{family, sample, sample_start};

/// Keys named in the metrics; the rest are `other`.
pub const NAMED_KEYS: usize = 100;

/// (key label, team) → summed totals: the [`NAMED_KEYS`] busiest keys by
/// name, the rest as `other` (their teams kept).
pub fn rows(table: &Table) -> BTreeMap<(String, String), Totals> {
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
    keys.sort_by(|a, b| b.2.requests.cmp(&a.2.requests).then_with(|| a.0.cmp(&b.0)));
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
    rows
}

fn totals_json(t: &Totals, out: &mut Map<String, Value>) {
    out.insert("requests".into(), t.requests.into());
    out.insert("rate_limited".into(), t.rate_limited.into());
    out.insert("budget_exceeded".into(), t.over_budget.into());
    out.insert("input_tokens".into(), t.input_tokens.into());
    out.insert("output_tokens".into(), t.output_tokens.into());
    out.insert("spend_usd".into(), (t.spent_nanos as f64 / 1e9).into());
}

/// The governance part of `/admin/stats`: the same rows as the metrics
/// (names, never ids or secrets), and each team's totals.
pub fn stats(table: &Table) -> (Value, Value) {
    let keys = rows(table)
        .iter()
        .map(|((key, team), t)| {
            let mut o = Map::new();
            o.insert("key".into(), key.as_str().into());
            o.insert("team".into(), team.as_str().into());
            totals_json(t, &mut o);
            Value::Object(o)
        })
        .collect();
    let teams = table
        .teams()
        .iter()
        .map(|t| {
            let mut o = Map::new();
            o.insert("team".into(), t.spec.name.as_str().into());
            totals_json(&t.ledger.lock().totals, &mut o);
            Value::Object(o)
        })
        .collect();
    (keys, teams)
}

/// Appends the governance families (nothing when there are no keys).
pub fn render(table: &Table, out: &mut String) {
    let rows = rows(table);
    if rows.is_empty() {
        return;
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
    render_budgets(table, out);
}

/// Budgets and this period's spend, for the keys and teams that have one:
/// the [`NAMED_KEYS`] nearest to exhaustion (what an alert needs), so the
/// series stay bounded however many keys have budgets.
/// (subject, key name, team name, budget, this period's spend), nano-dollars.
type BudgetRow = (&'static str, String, String, u64, u64);

fn render_budgets(table: &Table, out: &mut String) {
    let now = super::unix_now();
    let mut rows: Vec<BudgetRow> = Vec::new();
    for k in table.keys() {
        if let Some(budget) = k.limits.budget_nanos {
            let spent = k.ledger.lock().spent_nanos(&k.limits, now);
            let team = k
                .team
                .as_ref()
                .map_or(String::new(), |t| t.spec.name.clone());
            rows.push(("key", k.spec.name.clone(), team, budget, spent));
        }
    }
    for t in table.teams() {
        if let Some(budget) = t.limits.budget_nanos {
            let spent = t.ledger.lock().spent_nanos(&t.limits, now);
            rows.push(("team", String::new(), t.spec.name.clone(), budget, spent));
        }
    }
    if rows.is_empty() {
        return;
    }
    let used = |r: &BudgetRow| r.4 as f64 / r.3.max(1) as f64;
    rows.sort_by(|a, b| used(b).total_cmp(&used(a)).then_with(|| a.1.cmp(&b.1)));
    rows.truncate(NAMED_KEYS);
    let budget: fn(&BudgetRow) -> u64 = |r| r.3;
    let spent: fn(&BudgetRow) -> u64 = |r| r.4;
    for (name, help, nanos) in [
        (
            "shardgate_budget_usd",
            "Budgets in US dollars per period, by subject (key or team), key and team: the 100 nearest to exhaustion.",
            budget,
        ),
        (
            "shardgate_budget_spent_usd",
            "US dollars spent in the budget's current period, by subject (key or team), key and team.",
            spent,
        ),
    ] {
        family(out, name, "gauge", help);
        for r in &rows {
            sample_start(
                out,
                name,
                &[("subject", r.0), ("key", &r.1), ("team", &r.2)],
            );
            out.push_str(&format!("{}\n", nanos(r) as f64 / 1e9));
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
