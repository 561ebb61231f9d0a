//! `/admin/stats`: the merged metrics as one JSON document, for the
//! dashboard (sans-IO: a [`MergedMetrics`] and the running [`Config`] in,
//! a JSON object out). Counters are cumulative; the page computes rates
//! and windowed percentiles from two successive polls, so serving it is a
//! scrape and a few thousand integer reads, with no state kept between
//! polls.
//!
//! Invariants: nothing secret is rendered: a provider's key appears only
//! as where it comes from (`inline`, or the environment variable's name),
//! a base URL only as scheme, host, port and path. Histograms are given as
//! quantiles over the process's life plus cumulative counts at the fixed
//! [`BOUNDS_US`], the same for every histogram, so that two polls subtract.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::metrics::{Latency, MergedMetrics};
use crate::config::Config;

/// Upper bounds (µs) of the cumulative counts every histogram is given
/// with: 1, 1.5, 2, 3, 5, 7 per decade from 10 µs to 10 min (a window's
/// percentile interpolated within a step is within about a fifth), the
/// gateway's overhead at the bottom and a long completion at the top.
#[rustfmt::skip]
pub const BOUNDS_US: [u64; 48] = [
    10, 15, 20, 30, 50, 70, 100, 150, 200, 300, 500, 700,
    1_000, 1_500, 2_000, 3_000, 5_000, 7_000, 10_000, 15_000, 20_000, 30_000, 50_000, 70_000,
    100_000, 150_000, 200_000, 300_000, 500_000, 700_000,
    1_000_000, 1_500_000, 2_000_000, 3_000_000, 5_000_000, 7_000_000,
    10_000_000, 15_000_000, 20_000_000, 30_000_000, 50_000_000, 70_000_000,
    100_000_000, 150_000_000, 200_000_000, 300_000_000, 500_000_000, 600_000_000,
];

/// The metrics part of `/admin/stats` (the caller adds keys, teams, the
/// cache and the process's own fields).
pub fn render(m: &MergedMetrics, config: &Config) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert(
        "shards".into(),
        m.shards
            .iter()
            .map(|s| json!({"shard": s.shard, "driver": s.driver.as_str()}))
            .collect(),
    );
    out.insert("open_connections".into(), m.open_connections.into());
    out.insert("access_log_dropped".into(), m.access_log_dropped.into());
    out.insert("requests".into(), requests(m));
    out.insert("errors".into(), errors(m));
    out.insert("latency".into(), latency(m));
    out.insert("usage".into(), usage(m));
    out.insert("upstreams".into(), upstreams(m));
    out.insert("deployments".into(), deployments(m));
    out.insert("config".into(), config_summary(config));
    out
}

fn add(map: &mut BTreeMap<String, u64>, k: &str, v: u64) {
    match map.get_mut(k) {
        Some(n) => *n += v,
        None => {
            map.insert(k.to_string(), v);
        }
    }
}

/// `2xx`, `4xx`, … for a status label (`200`, `4xx`, `other`).
fn class_of(status: &str) -> &'static str {
    match status.as_bytes().first() {
        Some(b'1') => "1xx",
        Some(b'2') => "2xx",
        Some(b'3') => "3xx",
        Some(b'4') => "4xx",
        Some(b'5') => "5xx",
        _ => "other",
    }
}

fn requests(m: &MergedMetrics) -> Value {
    let mut total = 0;
    let (mut status, mut class, mut route, mut model, mut provider) = Default::default();
    for ((r, p, md, st), &v) in &m.requests {
        total += v;
        add(&mut status, st, v);
        add(&mut class, class_of(st), v);
        add(&mut route, r, v);
        add(&mut model, md, v);
        add(&mut provider, p, v);
    }
    let map = |m: BTreeMap<String, u64>| -> Value {
        Value::Object(m.into_iter().map(|(k, v)| (k, v.into())).collect())
    };
    json!({
        "total": total,
        "by_status": map(status),
        "by_class": map(class),
        "by_route": map(route),
        "by_model": map(model),
        "by_provider": map(provider),
    })
}

fn errors(m: &MergedMetrics) -> Value {
    let mut total = 0;
    let mut kinds = BTreeMap::new();
    let mut list = Vec::with_capacity(m.errors.len());
    for ((provider, kind), &v) in &m.errors {
        total += v;
        add(&mut kinds, kind, v);
        list.push(json!({"provider": provider.as_ref(), "kind": kind, "count": v}));
    }
    json!({
        "total": total,
        "by_kind": Value::Object(kinds.into_iter().map(|(k, v)| (k, v.into())).collect()),
        "list": list,
    })
}

/// One histogram: count, sum, quantiles over its life, and (`le`) the
/// cumulative counts at [`BOUNDS_US`], which the page subtracts between
/// polls (given for the four overall series only: each is 48 walks of the
/// histogram's buckets).
pub fn histogram(h: &Latency, le: bool) -> Value {
    let q = |q: f64| if h.count() == 0 { 0 } else { h.quantile_us(q) };
    let mut out = json!({
        "count": h.count(),
        "sum_s": h.sum_seconds(),
        "p50_us": q(0.5),
        "p90_us": q(0.9),
        "p99_us": q(0.99),
        "max_us": q(1.0),
    });
    if le {
        out["le"] = BOUNDS_US.iter().map(|&b| h.count_le(b)).collect();
    }
    out
}

fn all_providers(by_provider: &BTreeMap<Arc<str>, Latency>) -> Latency {
    let mut all = Latency::default();
    for h in by_provider.values() {
        all.add(h);
    }
    all
}

fn latency(m: &MergedMetrics) -> Value {
    let mut by_provider = Map::new();
    for (name, h) in &m.request_duration {
        let mut p = Map::new();
        p.insert("request".into(), histogram(h, false));
        if let Some(u) = m.upstream_duration.get(name) {
            p.insert("upstream".into(), histogram(u, false));
        }
        if let Some(t) = m.stream_ttft.get(name) {
            p.insert("ttft".into(), histogram(t, false));
        }
        by_provider.insert(name.to_string(), Value::Object(p));
    }
    json!({
        "bounds_us": &BOUNDS_US[..],
        "request": histogram(&all_providers(&m.request_duration), true),
        "upstream": histogram(&all_providers(&m.upstream_duration), true),
        "ttft": histogram(&all_providers(&m.stream_ttft), true),
        "overhead": histogram(&m.gateway_overhead, true),
        "by_provider": by_provider,
    })
}

/// Nano-dollars as dollars (a float: the page only displays it).
fn usd(nanos: u64) -> f64 {
    nanos as f64 / 1e9
}

fn usage(m: &MergedMetrics) -> Value {
    m.usage
        .iter()
        .map(|((provider, model), u)| {
            json!({
                "provider": provider.as_ref(),
                "model": model.as_ref(),
                "input_tokens": u.input_tokens,
                "output_tokens": u.output_tokens,
                "cache_read_tokens": u.cache_read_tokens,
                "cache_write_tokens": u.cache_write_tokens,
                "cost_usd": usd(u.cost_nanos),
            })
        })
        .collect()
}

fn upstreams(m: &MergedMetrics) -> Value {
    m.providers
        .iter()
        .map(|(name, c)| {
            json!({
                "provider": name.as_ref(),
                "connects": c.connects,
                "reuses": c.reuses,
                "retries": c.retries,
                "fallbacks": c.fallbacks,
                "ejections": c.ejections,
            })
        })
        .collect()
}

fn deployments(m: &MergedMetrics) -> Value {
    m.deployments
        .iter()
        .map(|((model, index), h)| {
            json!({
                "model": model.as_ref(),
                "index": index,
                "provider": h.provider.as_ref(),
                "upstream_model": h.upstream_model.as_ref(),
                "state": h.state(),
                "shards": h.shards,
                "ejected_shards": h.ejected,
                "half_open_shards": h.half_open,
                "in_flight": h.in_flight,
                "latency_us": h.latency_us,
            })
        })
        .collect()
}

/// `scheme://host[:port][/path]` of a base URL: any user info, query or
/// fragment is dropped (validation refuses them; this is the second lock).
pub fn display_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let host = authority.rsplit('@').next().unwrap_or_default();
    if scheme.is_empty() {
        format!("{host}{path}")
    } else {
        format!("{scheme}://{host}{path}")
    }
}

/// The running configuration's models and providers, without a secret.
pub fn config_summary(config: &Config) -> Value {
    let providers: Vec<Value> = config
        .providers
        .iter()
        .map(|(name, p)| {
            // Loading fills `api_key` from `api_key_env`: the variable's
            // name says where the key came from.
            let key = match (&p.api_key_env, &p.api_key) {
                (Some(var), _) => Value::from(format!("env {var}")),
                (None, Some(_)) => Value::from("inline"),
                (None, None) => Value::Null,
            };
            json!({
                "name": name,
                "kind": p.kind.as_deref().unwrap_or(name),
                "base_url": p.base_url.as_deref().map(display_url),
                "region": p.region,
                "key": key,
                "rpm": p.rpm,
                "tpm": p.tpm,
                "default": config.default_provider.as_deref() == Some(name.as_str()),
            })
        })
        .collect();
    let models: Vec<Value> = config
        .models
        .iter()
        .map(|m| {
            let deployments: Vec<Value> = m
                .resolved_deployments()
                .iter()
                .enumerate()
                .map(|(i, (provider, upstream, weight))| {
                    let d = m.deployments.get(i);
                    json!({
                        "provider": provider,
                        "upstream_model": upstream,
                        "weight": weight,
                        "rpm": d.and_then(|d| d.rpm),
                        "tpm": d.and_then(|d| d.tpm),
                    })
                })
                .collect();
            json!({
                "name": m.name,
                "aliases": m.aliases,
                "strategy": m.strategy.as_deref().unwrap_or("weighted"),
                "deployments": deployments,
                "fallbacks": m.fallbacks,
            })
        })
        .collect();
    json!({
        "listen": config.server.listen.to_string(),
        "shards": config.server.shards,
        "providers": providers,
        "models": models,
        "cache": config.cache.enabled,
        "keys_required": config.admin.token.is_some() || !config.keys.is_empty(),
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::runtime::Driver;
    use crate::telemetry::health::{BreakerState, DeploymentHealth};
    use crate::telemetry::{LabelTable, RequestMetrics, ShardMetrics, Usage};

    fn config() -> Config {
        let text = r#"
            [providers.oa]
            kind = "openai"
            base_url = "https://api.example.com/v1"
            api_key = "sk-very-secret-provider-key"
            [providers.an]
            kind = "anthropic"
            api_key_env = "ANTHROPIC_KEY"
            # as loading leaves it: filled from the variable
            api_key = "sk-ant-filled-from-the-environment"
            [[models]]
            name = "fast"
            aliases = ["gpt-4o-mini"]
            [[models.deployments]]
            provider = "oa"
            upstream_model = "gpt-4o-mini"
            weight = 3
            [[models.deployments]]
            provider = "an"
            upstream_model = "claude-haiku"
            [admin]
            token = "admin-very-secret-token"
        "#;
        let mut c: Config = toml::from_str(text).unwrap();
        c.server.shards = 2;
        c
    }

    fn merged() -> MergedMetrics {
        let labels = Arc::new(LabelTable::new(
            &["chat_completions"],
            &["an", "oa"],
            &[("fast", &["gpt-4o-mini".to_string()][..])],
        ));
        let shard = ShardMetrics::new(0, Driver::Epoll, labels.clone());
        for (status, ms) in [(200, 10), (200, 30), (429, 2), (502, 500)] {
            shard.record_request(&RequestMetrics {
                route: labels.route(0),
                provider: labels.provider(1),
                model: labels.model("gpt-4o-mini"),
                status,
                total: Duration::from_millis(ms),
                upstream: Some(Duration::from_millis(ms) - Duration::from_micros(80)),
                ttft: None,
                usage: Usage {
                    input_tokens: 10,
                    output_tokens: 4,
                    cost_nanos: 1_500,
                    ..Usage::default()
                },
            });
        }
        shard.error(labels.provider(1), "upstream_status");
        shard.error(labels.no_provider(), "model_not_found");
        let mut snap = shard.snapshot();
        snap.deployments = vec![DeploymentHealth {
            model: "fast".into(),
            index: 1,
            provider: "an".into(),
            upstream_model: "claude-haiku".into(),
            breaker: BreakerState::Ejected,
            in_flight: 2,
            latency_us: Some(1234),
        }];
        MergedMetrics::merge([&snap])
    }

    #[test]
    fn the_document_has_counters_percentiles_and_the_config() {
        let doc = Value::Object(render(&merged(), &config()));
        let r = &doc["requests"];
        assert_eq!(r["total"], 4);
        assert_eq!(r["by_status"]["200"], 2);
        assert_eq!(r["by_class"]["5xx"], 1);
        assert_eq!(r["by_class"]["4xx"], 1);
        assert_eq!(r["by_model"]["fast"], 4);
        assert_eq!(r["by_provider"]["oa"], 4);
        assert_eq!(doc["errors"]["total"], 2);
        assert_eq!(doc["errors"]["by_kind"]["model_not_found"], 1);

        let lat = &doc["latency"];
        assert_eq!(lat["bounds_us"].as_array().unwrap().len(), BOUNDS_US.len());
        let req = &lat["request"];
        assert_eq!(req["count"], 4);
        let p50 = req["p50_us"].as_u64().unwrap();
        assert!((9_000..=11_000).contains(&p50), "{p50}");
        assert!(req["max_us"].as_u64().unwrap() >= 495_000);
        let le: Vec<u64> = serde_json::from_value(req["le"].clone()).unwrap();
        assert!(le.windows(2).all(|w| w[0] <= w[1]), "cumulative: {le:?}");
        assert_eq!(*le.last().unwrap(), 4);
        assert_eq!(lat["overhead"]["count"], 4);
        assert!(lat["overhead"]["p99_us"].as_u64().unwrap() <= 100);
        assert_eq!(lat["by_provider"]["oa"]["request"]["count"], 4);
        assert!(lat["by_provider"]["oa"]["request"].get("le").is_none());
        assert_eq!(lat["ttft"]["count"], 0);

        let u = &doc["usage"][0];
        assert_eq!(
            (u["model"].as_str(), u["provider"].as_str()),
            (Some("fast"), Some("oa"))
        );
        assert_eq!(u["input_tokens"], 40);
        assert!((u["cost_usd"].as_f64().unwrap() - 6e-6).abs() < 1e-12);

        let d = &doc["deployments"][0];
        assert_eq!(d["state"], "ejected");
        assert_eq!(d["in_flight"], 2);
        assert_eq!(d["latency_us"], 1234);

        let c = &doc["config"];
        assert_eq!(c["shards"], 2);
        assert_eq!(c["models"][0]["deployments"][0]["weight"], 3);
        assert_eq!(
            c["models"][0]["deployments"][1]["upstream_model"],
            "claude-haiku"
        );
        let an = &c["providers"][0];
        assert_eq!(
            (an["name"].as_str(), an["key"].as_str()),
            (Some("an"), Some("env ANTHROPIC_KEY"))
        );
        assert_eq!(c["providers"][1]["key"], "inline");
        assert_eq!(c["providers"][1]["base_url"], "https://api.example.com/v1");
    }

    #[test]
    fn no_secret_is_rendered() {
        let text = serde_json::to_string(&render(&merged(), &config())).unwrap();
        for secret in [
            "sk-very-secret-provider-key",
            "sk-ant-filled-from-the-environment",
            "admin-very-secret-token",
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }

    #[test]
    fn urls_lose_user_info_query_and_fragment() {
        assert_eq!(
            display_url("https://user:pw@host.example:8443/v1?key=s#f"),
            "https://host.example:8443/v1"
        );
        assert_eq!(display_url("http://h/"), "http://h/");
        assert_eq!(display_url("h:1"), "h:1");
    }

    #[test]
    fn an_empty_gateway_renders_zeros() {
        let doc = Value::Object(render(&MergedMetrics::default(), &Config::default()));
        assert_eq!(doc["requests"]["total"], 0);
        assert_eq!(doc["latency"]["request"]["p99_us"], 0);
        assert!(doc["deployments"].as_array().unwrap().is_empty());
    }
}
