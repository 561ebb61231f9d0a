//! Prometheus text exposition (format 0.0.4) of [`MergedMetrics`].
//!
//! Invariants: every family gets `# HELP` and `# TYPE` once, before its
//! samples, even when it has none yet; label values are escaped (`\`, `"`,
//! newline); histogram buckets are cumulative with fixed bounds, end in
//! `le="+Inf"` equal to `_count`; durations are seconds and money is US
//! dollars, written from integer micro-units so no float noise appears.

use std::fmt::Write;

use super::metrics::{Latency, MergedMetrics, ProviderCounters};

/// The `Content-Type` of a scrape response.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Bucket upper bounds (µs) for end-to-end, upstream and TTFT durations:
/// 5 ms to 10 min, LLM calls being slow and long-tailed.
const SLOW_BOUNDS_US: [u64; 16] = [
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    30_000_000,
    60_000_000,
    120_000_000,
    300_000_000,
    600_000_000,
];

/// Bucket upper bounds (µs) for the gateway's own overhead: 10 µs to 100 ms.
const FAST_BOUNDS_US: [u64; 12] = [
    10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 100_000,
];

/// Reads one counter out of a provider's counters.
type CounterOf = fn(&ProviderCounters) -> u64;

/// Appends the exposition of `m` to `out`.
pub fn render(m: &MergedMetrics, out: &mut String) {
    family(
        out,
        "shardgate_requests_total",
        "counter",
        "Requests answered, by route, provider, model and status.",
    );
    for ((route, provider, model, status), v) in &m.requests {
        sample(
            out,
            "shardgate_requests_total",
            &[
                ("route", route),
                ("provider", provider),
                ("model", model),
                ("status", status),
            ],
            *v,
        );
    }

    family(
        out,
        "shardgate_errors_total",
        "counter",
        "Errors, by provider (none: before routing) and kind.",
    );
    for ((provider, kind), v) in &m.errors {
        sample(
            out,
            "shardgate_errors_total",
            &[("provider", provider), ("kind", kind)],
            *v,
        );
    }

    family(
        out,
        "shardgate_upstream_connections_total",
        "counter",
        "Upstream requests by connection: newly opened or reused from the pool.",
    );
    for (provider, c) in &m.providers {
        for (kind, v) in [("new", c.connects), ("reused", c.reuses)] {
            sample(
                out,
                "shardgate_upstream_connections_total",
                &[("provider", provider), ("kind", kind)],
                v,
            );
        }
    }
    let per_provider: [(&str, &str, CounterOf); 3] = [
        (
            "shardgate_retries_total",
            "Upstream attempts retried.",
            |c| c.retries,
        ),
        (
            "shardgate_fallbacks_total",
            "Requests that fell back from this provider to another.",
            |c| c.fallbacks,
        ),
        (
            "shardgate_ejections_total",
            "Upstream peers ejected as unhealthy.",
            |c| c.ejections,
        ),
    ];
    for (name, help, get) in per_provider {
        family(out, name, "counter", help);
        for (provider, c) in &m.providers {
            sample(out, name, &[("provider", provider)], get(c));
        }
    }

    family(
        out,
        "shardgate_quota_passed_over_total",
        "counter",
        "Requests that passed a deployment over at its provider quota (rpm/tpm), by model, provider and deployment (its index in the model's deployments).",
    );
    for ((model, provider, deployment), v) in &m.quota_passed {
        let deployment = deployment.to_string();
        sample(
            out,
            "shardgate_quota_passed_over_total",
            &[
                ("model", model),
                ("provider", provider),
                ("deployment", &deployment),
            ],
            *v,
        );
    }

    family(
        out,
        "shardgate_open_connections",
        "gauge",
        "Client connections open now.",
    );
    sample_i64(out, "shardgate_open_connections", m.open_connections);

    family(
        out,
        "shardgate_tokens_total",
        "counter",
        "Tokens reported by providers, by direction.",
    );
    for ((provider, model), u) in &m.usage {
        for (direction, v) in [("input", u.input_tokens), ("output", u.output_tokens)] {
            sample(
                out,
                "shardgate_tokens_total",
                &[
                    ("provider", provider),
                    ("model", model),
                    ("direction", direction),
                ],
                v,
            );
        }
    }

    family(
        out,
        "shardgate_cost_usd_total",
        "counter",
        "Estimated cost of requests in US dollars.",
    );
    for ((provider, model), u) in &m.usage {
        sample_start(
            out,
            "shardgate_cost_usd_total",
            &[("provider", provider), ("model", model)],
        );
        push_nanos(out, u.cost_nanos);
        out.push('\n');
    }

    family(
        out,
        "shardgate_cache_tokens_total",
        "counter",
        "Input tokens read from (kind=\"read\") or written to (kind=\"write\") a provider's prompt cache; part of shardgate_tokens_total{direction=\"input\"}, not added to it.",
    );
    for ((provider, model), u) in &m.usage {
        for (kind, v) in [
            ("read", u.cache_read_tokens),
            ("write", u.cache_write_tokens),
        ] {
            sample(
                out,
                "shardgate_cache_tokens_total",
                &[("provider", provider), ("model", model), ("kind", kind)],
                v,
            );
        }
    }

    let slow = [
        (
            "shardgate_request_duration_seconds",
            "Time from the first request byte to the last response byte.",
            &m.request_duration,
        ),
        (
            "shardgate_upstream_duration_seconds",
            "Time from sending upstream to the last upstream byte.",
            &m.upstream_duration,
        ),
        (
            "shardgate_stream_ttft_seconds",
            "Time to the first streamed token event.",
            &m.stream_ttft,
        ),
    ];
    for (name, help, by_provider) in slow {
        family(out, name, "histogram", help);
        for (provider, h) in by_provider {
            histogram(out, name, Some(provider), h, &SLOW_BOUNDS_US);
        }
    }
    family(
        out,
        "shardgate_gateway_overhead_seconds",
        "histogram",
        "Request duration minus upstream duration: the gateway's own cost.",
    );
    histogram(
        out,
        "shardgate_gateway_overhead_seconds",
        None,
        &m.gateway_overhead,
        &FAST_BOUNDS_US,
    );

    family(
        out,
        "shardgate_access_log_dropped_total",
        "counter",
        "Access-log lines dropped because the log writer fell behind.",
    );
    sample(
        out,
        "shardgate_access_log_dropped_total",
        &[],
        m.access_log_dropped,
    );

    family(
        out,
        "shardgate_shard_info",
        "gauge",
        "Each shard and the I/O driver it runs on (always 1).",
    );
    for s in &m.shards {
        let mut id = itoa::Buffer::new();
        sample(
            out,
            "shardgate_shard_info",
            &[("shard", id.format(s.shard)), ("driver", s.driver.as_str())],
            1,
        );
    }
}

/// How the configuration has been reloaded since start.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReloadCounts {
    /// 0 at start, one more per reload applied.
    pub generation: u64,
    pub applied: u64,
    pub refused: u64,
    /// When the running configuration was applied (start or last reload).
    pub applied_at_unix: u64,
}

/// `shardgate_build_info` and the configuration's reload outcomes.
pub fn render_process_info(out: &mut String, reloads: &ReloadCounts) {
    family(
        out,
        "shardgate_build_info",
        "gauge",
        "The running build: version, target architecture and OS (always 1).",
    );
    sample(
        out,
        "shardgate_build_info",
        &[
            ("version", env!("CARGO_PKG_VERSION")),
            ("arch", std::env::consts::ARCH),
            ("os", std::env::consts::OS),
        ],
        1,
    );
    family(
        out,
        "shardgate_config_generation",
        "gauge",
        "The running configuration's generation: 0 at start, one more per reload applied.",
    );
    sample(out, "shardgate_config_generation", &[], reloads.generation);
    family(
        out,
        "shardgate_config_reloads_total",
        "counter",
        "Configuration reloads (SIGHUP or POST /admin/reload), by outcome.",
    );
    sample(
        out,
        "shardgate_config_reloads_total",
        &[("outcome", "applied")],
        reloads.applied,
    );
    sample(
        out,
        "shardgate_config_reloads_total",
        &[("outcome", "refused")],
        reloads.refused,
    );
    family(
        out,
        "shardgate_config_applied_timestamp_seconds",
        "gauge",
        "When the running configuration was applied (start or last reload), unix seconds.",
    );
    sample(
        out,
        "shardgate_config_applied_timestamp_seconds",
        &[],
        reloads.applied_at_unix,
    );
}

pub fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
}

pub fn sample_start(out: &mut String, name: &str, labels: &[(&str, &str)]) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(k);
            out.push_str("=\"");
            push_escaped(out, v);
            out.push('"');
        }
        out.push('}');
    }
    out.push(' ');
}

pub fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], v: u64) {
    sample_start(out, name, labels);
    out.push_str(itoa::Buffer::new().format(v));
    out.push('\n');
}

fn sample_i64(out: &mut String, name: &str, v: i64) {
    sample_start(out, name, &[]);
    out.push_str(itoa::Buffer::new().format(v));
    out.push('\n');
}

fn histogram(out: &mut String, name: &str, provider: Option<&str>, h: &Latency, bounds: &[u64]) {
    let base: Vec<(&str, &str)> = provider.map(|p| ("provider", p)).into_iter().collect();
    histogram_with(out, name, &base, h, bounds);
}

fn histogram_with(
    out: &mut String,
    name: &str,
    base: &[(&str, &str)],
    h: &Latency,
    bounds: &[u64],
) {
    let bucket = format!("{name}_bucket");
    let mut le = String::new();
    for bound in bounds.iter().map(Some).chain([None]) {
        le.clear();
        let count = match bound {
            Some(&b) => {
                push_micros(&mut le, b);
                h.count_le(b)
            }
            None => {
                le.push_str("+Inf");
                h.count()
            }
        };
        let mut labels = base.to_vec();
        labels.push(("le", &le));
        sample(out, &bucket, &labels, count);
    }
    sample_start(out, &format!("{name}_sum"), base);
    let _ = writeln!(out, "{}", h.sum_seconds());
    sample(out, &format!("{name}_count"), base, h.count());
}

/// `gen_ai.client.operation.duration`'s advised bounds (µs): 10 ms doubling
/// to 81.92 s.
const GEN_AI_DURATION_BOUNDS_US: [u64; 14] = [
    10_000, 20_000, 40_000, 80_000, 160_000, 320_000, 640_000, 1_280_000, 2_560_000, 5_120_000,
    10_240_000, 20_480_000, 40_960_000, 81_920_000,
];

/// `gen_ai.server.time_to_first_token`'s advised bounds (µs): 1 ms to 10 s.
const GEN_AI_TTFT_BOUNDS_US: [u64; 16] = [
    1_000, 5_000, 10_000, 20_000, 40_000, 60_000, 80_000, 100_000, 250_000, 500_000, 750_000,
    1_000_000, 2_500_000, 5_000_000, 7_500_000, 10_000_000,
];

/// The GenAI operation a route is (`gen_ai.operation.name`'s values).
fn gen_ai_operation(route: &str) -> &str {
    match route {
        "chat_completions" | "messages" | "responses" => "chat",
        "completions" => "text_completion",
        "embeddings" => "embeddings",
        other => other,
    }
}

/// The OpenTelemetry GenAI semantic conventions' metrics, beside ours and
/// from the same counts, named as OpenTelemetry's Prometheus exporters
/// name them (dots to underscores, the unit as a suffix).
pub fn render_gen_ai(m: &MergedMetrics, out: &mut String) {
    let name = "gen_ai_client_token_usage";
    family(
        out,
        name,
        "histogram",
        "Tokens used per request (OpenTelemetry gen_ai.client.token.usage), by token type.",
    );
    let bucket = format!("{name}_bucket");
    for ((route, provider, model), counts) in &m.token_usage {
        for (kind, c) in ["input", "output"].iter().zip(counts) {
            let base = [
                ("gen_ai_operation_name", gen_ai_operation(route)),
                ("gen_ai_provider_name", provider.as_ref()),
                ("gen_ai_request_model", model.as_ref()),
                ("gen_ai_token_type", kind),
            ];
            let mut cumulative = 0;
            let mut le = itoa::Buffer::new();
            for (i, n) in c.buckets.iter().enumerate() {
                cumulative += n;
                let bound = match super::metrics::TOKEN_BOUNDS.get(i) {
                    Some(b) => le.format(*b),
                    None => "+Inf",
                };
                let mut labels = base.to_vec();
                labels.push(("le", bound));
                sample(out, &bucket, &labels, cumulative);
            }
            sample(out, &format!("{name}_sum"), &base, c.sum);
            sample(out, &format!("{name}_count"), &base, c.count());
        }
    }
    let by_provider = [
        (
            "gen_ai_server_request_duration_seconds",
            "Request duration at the gateway (OpenTelemetry gen_ai.server.request.duration).",
            &m.request_duration,
            &GEN_AI_DURATION_BOUNDS_US[..],
        ),
        (
            "gen_ai_client_operation_duration_seconds",
            "Upstream call duration, the gateway as the provider's client \
             (OpenTelemetry gen_ai.client.operation.duration).",
            &m.upstream_duration,
            &GEN_AI_DURATION_BOUNDS_US[..],
        ),
        (
            "gen_ai_server_time_to_first_token_seconds",
            "Time to the first streamed token (OpenTelemetry gen_ai.server.time_to_first_token).",
            &m.stream_ttft,
            &GEN_AI_TTFT_BOUNDS_US[..],
        ),
    ];
    for (name, help, hists, bounds) in by_provider {
        family(out, name, "histogram", help);
        for (provider, h) in hists {
            histogram_with(out, name, &[("gen_ai_provider_name", provider)], h, bounds);
        }
    }
}

/// Writes `micros / 10^6` exactly, without trailing zeros.
fn push_micros(out: &mut String, micros: u64) {
    out.push_str(itoa::Buffer::new().format(micros / 1_000_000));
    let frac = micros % 1_000_000;
    if frac != 0 {
        let digits = format!(".{frac:06}");
        out.push_str(digits.trim_end_matches('0'));
    }
}

fn push_nanos(out: &mut String, nanos: u64) {
    out.push_str(itoa::Buffer::new().format(nanos / 1_000_000_000));
    let frac = nanos % 1_000_000_000;
    if frac != 0 {
        let digits = format!(".{frac:09}");
        out.push_str(digits.trim_end_matches('0'));
    }
}

/// Label value escaping per the text format: backslash, double quote, newline.
fn push_escaped(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micros_are_exact_decimals() {
        let f = |v| {
            let mut s = String::new();
            push_micros(&mut s, v);
            s
        };
        assert_eq!(f(0), "0");
        assert_eq!(f(10), "0.00001");
        assert_eq!(f(2_500_000), "2.5");
        assert_eq!(f(600_000_000), "600");
        assert_eq!(f(1_234_567), "1.234567");
    }

    #[test]
    fn label_values_are_escaped() {
        let mut s = String::new();
        push_escaped(&mut s, "a\\b\"c\nd");
        assert_eq!(s, r#"a\\b\"c\nd"#);
    }
}
