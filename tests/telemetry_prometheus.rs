//! Renders metrics recorded on several shards and parses the text back with
//! a small parser of the 0.0.4 text format: the families are well formed,
//! label values round-trip through escaping, histograms are cumulative, and
//! counts add up across shards.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use shardgate::runtime::Driver;
use shardgate::telemetry::metrics::{
    LabelTable, MergedMetrics, RequestMetrics, ShardMetrics, Usage,
};
use shardgate::telemetry::prometheus::{
    render, render_gen_ai, render_process_info, ReloadCounts, CONTENT_TYPE,
};

#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the text format strictly enough to catch malformed output:
/// comment lines are HELP/TYPE, every sample belongs to a family whose TYPE
/// came before it, families are not split.
fn parse(text: &str) -> (HashMap<String, String>, Vec<Sample>) {
    let mut types = HashMap::new();
    let mut samples = Vec::new();
    let mut closed: Vec<String> = Vec::new();
    let mut current = String::new();
    assert!(text.ends_with('\n'), "exposition ends with a newline");
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (kw, name, arg) = (
                parts.next().unwrap(),
                parts.next().unwrap(),
                parts.next().unwrap(),
            );
            match kw {
                "HELP" => assert!(!arg.is_empty()),
                "TYPE" => {
                    assert!(["counter", "gauge", "histogram"].contains(&arg), "{line}");
                    assert!(types.insert(name.to_string(), arg.to_string()).is_none());
                    assert!(!closed.contains(&name.to_string()), "family {name} split");
                    if !current.is_empty() {
                        closed.push(std::mem::take(&mut current));
                    }
                    current = name.to_string();
                }
                _ => panic!("unexpected comment {line}"),
            }
            continue;
        }
        let (name, rest) = match line.find('{') {
            Some(i) => (&line[..i], &line[i..]),
            None => line.split_at(line.find(' ').unwrap()),
        };
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "{name}"
        );
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| types.get(*f).map(String::as_str) == Some("histogram"))
            })
            .unwrap_or(name);
        assert_eq!(family, current, "sample {line} outside its family");
        let mut labels = BTreeMap::new();
        let mut rest = rest.as_bytes();
        if rest[0] == b'{' {
            rest = &rest[1..];
            loop {
                let eq = rest.iter().position(|&b| b == b'=').unwrap();
                let key = std::str::from_utf8(&rest[..eq]).unwrap().to_string();
                assert_eq!(rest[eq + 1], b'"');
                let mut i = eq + 2;
                let mut value = Vec::new();
                loop {
                    match rest[i] {
                        b'\\' => {
                            value.push(match rest[i + 1] {
                                b'\\' => b'\\',
                                b'"' => b'"',
                                b'n' => b'\n',
                                other => panic!("bad escape {}", other as char),
                            });
                            i += 2;
                        }
                        b'"' => break,
                        b => {
                            value.push(b);
                            i += 1;
                        }
                    }
                }
                assert!(labels
                    .insert(key, String::from_utf8(value).unwrap())
                    .is_none());
                rest = &rest[i + 1..];
                match rest[0] {
                    b',' => rest = &rest[1..],
                    b'}' => {
                        rest = &rest[1..];
                        break;
                    }
                    other => panic!("unexpected {}", other as char),
                }
            }
        }
        let value_text = std::str::from_utf8(rest).unwrap();
        let value_text = value_text
            .strip_prefix(' ')
            .expect("one space before the value");
        let value: f64 = value_text
            .parse()
            .unwrap_or_else(|_| panic!("value in {line}"));
        samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    (types, samples)
}

fn find<'a>(samples: &'a [Sample], name: &str, labels: &[(&str, &str)]) -> Vec<&'a Sample> {
    samples
        .iter()
        .filter(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect()
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let found = find(samples, name, labels);
    assert_eq!(found.len(), 1, "{name} {labels:?}: {found:?}");
    found[0].value
}

#[test]
fn renders_merged_shards_that_parse_back() {
    assert_eq!(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8");
    // A provider name with characters that need escaping.
    let odd = "we\"ird\\name\nx";
    let labels = Arc::new(LabelTable::new(
        &["chat_completions", "embeddings"],
        &["openai", odd],
        &[("fast", &[][..]), ("embed", &[][..])],
    ));
    let shards: Vec<ShardMetrics> = (0..3)
        .map(|i| {
            let driver = if i == 2 {
                Driver::Epoll
            } else {
                Driver::IoUring
            };
            ShardMetrics::new(i, driver, labels.clone())
        })
        .collect();
    let openai = labels.provider(0);
    for (i, shard) in shards.iter().enumerate() {
        // shard i: (i + 1) × 10 chat requests of 30 ms, 25 ms upstream, 300 ms TTFT
        for _ in 0..(i + 1) * 10 {
            shard.record_request(&RequestMetrics {
                route: labels.route(0),
                provider: openai,
                model: labels.model("fast"),
                status: 200,
                total: Duration::from_millis(30),
                upstream: Some(Duration::from_millis(25)),
                ttft: Some(Duration::from_millis(300)),
                usage: Usage {
                    input_tokens: 100,
                    output_tokens: 20,
                    cache_read_tokens: 60,
                    cache_write_tokens: 0,
                    cost_nanos: 1_500_000,
                },
            });
            shard.upstream_connection(openai, true);
        }
        shard.upstream_connection(openai, false);
        shard.record_request(&RequestMetrics {
            route: labels.route(1),
            provider: labels.provider(1),
            model: labels.model("unknown-model"),
            status: 502,
            total: Duration::from_secs(2),
            upstream: None,
            ttft: None,
            usage: Usage::default(),
        });
        shard.error(labels.provider(1), "upstream_connect");
        shard.retry(labels.provider(1));
        shard.connection_opened();
    }
    shards[0].fallback(labels.provider(1));
    shards[1].ejection(labels.provider(1));

    let snaps: Vec<_> = shards.iter().map(ShardMetrics::snapshot).collect();
    let mut merged = MergedMetrics::merge(&snaps);
    merged.access_log_dropped = 7;
    let mut text = String::new();
    render(&merged, &mut text);
    render_gen_ai(&merged, &mut text);
    render_process_info(
        &mut text,
        &ReloadCounts {
            generation: 2,
            applied: 2,
            refused: 1,
            applied_at_unix: 1_800_000_000,
        },
    );
    let (types, s) = parse(&text);

    for (name, kind) in [
        ("shardgate_requests_total", "counter"),
        ("shardgate_errors_total", "counter"),
        ("shardgate_request_duration_seconds", "histogram"),
        ("shardgate_gateway_overhead_seconds", "histogram"),
        ("shardgate_upstream_duration_seconds", "histogram"),
        ("shardgate_stream_ttft_seconds", "histogram"),
        ("shardgate_tokens_total", "counter"),
        ("shardgate_cost_usd_total", "counter"),
        ("shardgate_cache_tokens_total", "counter"),
        ("shardgate_upstream_connections_total", "counter"),
        ("shardgate_retries_total", "counter"),
        ("shardgate_fallbacks_total", "counter"),
        ("shardgate_ejections_total", "counter"),
        ("shardgate_open_connections", "gauge"),
        ("shardgate_access_log_dropped_total", "counter"),
        ("shardgate_shard_info", "gauge"),
    ] {
        assert_eq!(types.get(name).map(String::as_str), Some(kind), "{name}");
    }

    // 10 + 20 + 30 chat requests across the shards.
    let chat = [
        ("route", "chat_completions"),
        ("provider", "openai"),
        ("model", "fast"),
        ("status", "200"),
    ];
    assert_eq!(value(&s, "shardgate_requests_total", &chat), 60.0);
    let failed = [("provider", odd), ("model", "other"), ("status", "502")];
    assert_eq!(value(&s, "shardgate_requests_total", &failed), 3.0);
    assert_eq!(
        value(
            &s,
            "shardgate_errors_total",
            &[("provider", odd), ("kind", "upstream_connect")]
        ),
        3.0
    );
    let conn = |kind| {
        value(
            &s,
            "shardgate_upstream_connections_total",
            &[("provider", "openai"), ("kind", kind)],
        )
    };
    assert_eq!((conn("new"), conn("reused")), (3.0, 60.0));
    assert_eq!(
        value(&s, "shardgate_retries_total", &[("provider", odd)]),
        3.0
    );
    assert_eq!(
        value(&s, "shardgate_fallbacks_total", &[("provider", odd)]),
        1.0
    );
    assert_eq!(
        value(&s, "shardgate_ejections_total", &[("provider", odd)]),
        1.0
    );
    assert_eq!(value(&s, "shardgate_open_connections", &[]), 3.0);
    assert_eq!(value(&s, "shardgate_access_log_dropped_total", &[]), 7.0);
    let tokens = |dir| {
        value(
            &s,
            "shardgate_tokens_total",
            &[
                ("provider", "openai"),
                ("model", "fast"),
                ("direction", dir),
            ],
        )
    };
    assert_eq!((tokens("input"), tokens("output")), (6000.0, 1200.0));
    let cache = |kind| {
        value(
            &s,
            "shardgate_cache_tokens_total",
            &[("provider", "openai"), ("model", "fast"), ("kind", kind)],
        )
    };
    assert_eq!((cache("read"), cache("write")), (3600.0, 0.0));
    assert_eq!(
        value(&s, "shardgate_cost_usd_total", &[("model", "fast")]),
        0.09
    );
    for (shard, driver) in [("0", "io_uring"), ("1", "io_uring"), ("2", "epoll")] {
        assert_eq!(
            value(
                &s,
                "shardgate_shard_info",
                &[("shard", shard), ("driver", driver)]
            ),
            1.0
        );
    }

    // Histograms: cumulative, +Inf == count, sum in seconds.
    let check_hist = |name: &str, provider: Option<&str>| -> Vec<(f64, f64)> {
        let base: Vec<(&str, &str)> = provider.map(|p| ("provider", p)).into_iter().collect();
        let buckets = find(&s, &format!("{name}_bucket"), &base);
        let mut points: Vec<(f64, f64)> = buckets
            .iter()
            .map(|b| {
                let le = &b.labels["le"];
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().unwrap()
                };
                (le, b.value)
            })
            .collect();
        assert!(points.windows(2).all(|w| w[0].0 < w[1].0), "le ascending");
        assert!(points.windows(2).all(|w| w[0].1 <= w[1].1), "cumulative");
        let count = value(&s, &format!("{name}_count"), &base);
        assert_eq!(points.last().unwrap(), &(f64::INFINITY, count));
        points.retain(|p| p.0.is_finite());
        points
    };
    let at = |points: &[(f64, f64)], le: f64| points.iter().find(|p| p.0 == le).unwrap().1;

    let total = check_hist("shardgate_request_duration_seconds", Some("openai"));
    assert_eq!(at(&total, 0.025), 0.0);
    assert_eq!(at(&total, 0.05), 60.0);
    let sum = value(
        &s,
        "shardgate_request_duration_seconds_sum",
        &[("provider", "openai")],
    );
    assert!((sum - 1.8).abs() < 1e-9, "{sum}");
    let failed_total = check_hist("shardgate_request_duration_seconds", Some(odd));
    assert_eq!(at(&failed_total, 1.0), 0.0);
    assert_eq!(at(&failed_total, 2.5), 3.0);

    let overhead = check_hist("shardgate_gateway_overhead_seconds", None);
    assert_eq!(at(&overhead, 0.0025), 0.0);
    assert_eq!(at(&overhead, 0.005), 60.0);
    assert!(find(
        &s,
        "shardgate_gateway_overhead_seconds_bucket",
        &[("provider", "openai")]
    )
    .is_empty());

    // The GenAI conventions' names, from the same counts: 60 chat requests
    // of 100 input tokens (le 256) and 20 output (le 64).
    let tokens = |kind: &str, le: &str| {
        value(
            &s,
            "gen_ai_client_token_usage_bucket",
            &[
                ("gen_ai_operation_name", "chat"),
                ("gen_ai_provider_name", "openai"),
                ("gen_ai_request_model", "fast"),
                ("gen_ai_token_type", kind),
                ("le", le),
            ],
        )
    };
    assert_eq!((tokens("input", "64"), tokens("input", "256")), (0.0, 60.0));
    assert_eq!(
        (tokens("output", "16"), tokens("output", "64")),
        (0.0, 60.0)
    );
    assert_eq!(tokens("input", "+Inf"), 60.0);
    let genai_sum = find(
        &s,
        "gen_ai_client_token_usage_sum",
        &[("gen_ai_token_type", "input")],
    );
    assert_eq!(genai_sum.len(), 1);
    assert_eq!(genai_sum[0].value, 6000.0);
    let ttft_le = |le| {
        value(
            &s,
            "gen_ai_server_time_to_first_token_seconds_bucket",
            &[("gen_ai_provider_name", "openai"), ("le", le)],
        )
    };
    assert_eq!((ttft_le("0.25"), ttft_le("0.5")), (0.0, 60.0));
    assert_eq!(
        value(
            &s,
            "gen_ai_client_operation_duration_seconds_count",
            &[("gen_ai_provider_name", "openai")]
        ),
        60.0
    );
    assert_eq!(
        value(
            &s,
            "shardgate_config_reloads_total",
            &[("outcome", "refused")]
        ),
        1.0
    );
    assert_eq!(value(&s, "shardgate_config_generation", &[]), 2.0);
    let build = find(&s, "shardgate_build_info", &[]);
    assert_eq!(build.len(), 1);
    assert_eq!(build[0].labels["version"], env!("CARGO_PKG_VERSION"));

    let ttft = check_hist("shardgate_stream_ttft_seconds", Some("openai"));
    assert_eq!(at(&ttft, 0.25), 0.0);
    assert_eq!(at(&ttft, 0.5), 60.0);
    let upstream = check_hist("shardgate_upstream_duration_seconds", Some("openai"));
    assert_eq!(at(&upstream, 0.025), 60.0);
    assert!(find(
        &s,
        "shardgate_upstream_duration_seconds_count",
        &[("provider", odd)]
    )
    .is_empty());
}

#[test]
fn empty_metrics_render_metadata_only() {
    let mut text = String::new();
    render(&MergedMetrics::default(), &mut text);
    let (types, samples) = parse(&text);
    assert_eq!(types.len(), 17);
    // Only the unlabelled series exist before any traffic.
    let names: Vec<&str> = samples
        .iter()
        .filter(|s| !s.name.starts_with("shardgate_gateway_overhead_seconds"))
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "shardgate_open_connections",
            "shardgate_access_log_dropped_total"
        ]
    );
}
