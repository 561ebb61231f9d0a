//! `[tracing]`: OpenTelemetry traces over OTLP/HTTP (protobuf), off
//! unless `otlp_endpoint` is set. Only the schema and its checks live
//! here; the spans are `telemetry::trace`'s, the export's HTTP client
//! `upstream::blocking`'s.
//!
//! Invariant: the table is read at start-up (the exporter thread and the
//! shards' tracers are made then); a reload validates it but keeps the
//! running one, like `server.listen`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::duration::ms;
use super::error::{bad, ConfigError};

/// `[tracing]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TracingConfig {
    /// The collector's OTLP/HTTP base URL (`http://host:4318`); spans go
    /// to `<otlp_endpoint>/v1/traces` (a URL that already ends so is used
    /// as it is). Unset: tracing is off.
    pub otlp_endpoint: Option<String>,
    /// The share of new traces recorded, 0 to 1; a request that continues
    /// a client's trace follows the client's sampled flag.
    pub sample_ratio: f64,
    /// The `service.name` of the exported resource.
    pub service_name: String,
    /// Headers sent with every export (a collector's auth).
    pub headers: BTreeMap<String, String>,
    /// Each step of one export (connect, write, read), milliseconds.
    #[serde(deserialize_with = "ms")]
    pub export_timeout_ms: Duration,
    /// A shard hands its spans over once it holds this many (or on its
    /// tick, once the oldest is `flush_interval_ms` old).
    pub shard_batch_spans: u32,
    /// Batches queued for the exporter, all shards together; past it a
    /// batch is dropped and counted (`shardgate_trace_spans_dropped_total`).
    pub queue_batches: usize,
    /// Spans in one export at most.
    pub max_export_spans: u32,
    /// Spans wait at most about this long before they are exported.
    #[serde(deserialize_with = "ms")]
    pub flush_interval_ms: Duration,
}

impl Default for TracingConfig {
    fn default() -> Self {
        TracingConfig {
            otlp_endpoint: None,
            sample_ratio: 1.0,
            service_name: "shardgate".into(),
            headers: BTreeMap::new(),
            export_timeout_ms: Duration::from_millis(5000),
            shard_batch_spans: 64,
            queue_batches: 64,
            max_export_spans: 512,
            flush_interval_ms: Duration::from_millis(1000),
        }
    }
}

impl TracingConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.otlp_endpoint {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(bad(
                    "tracing.otlp_endpoint",
                    format!("{url:?} is not an http:// or https:// URL"),
                ));
            }
        }
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            return Err(bad("tracing.sample_ratio", "must be between 0 and 1"));
        }
        if self.service_name.is_empty() {
            return Err(bad("tracing.service_name", "must not be empty"));
        }
        for (name, value) in &self.headers {
            let token = |c: u8| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c);
            if name.is_empty() || !name.bytes().all(token) {
                return Err(bad(
                    format!("tracing.headers.{name}"),
                    "is not an HTTP header name",
                ));
            }
            if value.bytes().any(|c| c == b'\r' || c == b'\n' || c == 0) {
                return Err(bad(
                    format!("tracing.headers.{name}"),
                    "a header value may not hold CR, LF or NUL",
                ));
            }
        }
        for (field, v) in [
            ("tracing.shard_batch_spans", self.shard_batch_spans as usize),
            ("tracing.queue_batches", self.queue_batches),
            ("tracing.max_export_spans", self.max_export_spans as usize),
        ] {
            if v == 0 {
                return Err(bad(field, "must be at least 1"));
            }
        }
        for (field, d) in [
            ("tracing.export_timeout_ms", self.export_timeout_ms),
            ("tracing.flush_interval_ms", self.flush_interval_ms),
        ] {
            if d.is_zero() {
                return Err(bad(field, "must be at least 1 (millisecond)"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn check(toml: &str) -> Result<Config, String> {
        let c = Config::from_toml(toml).map_err(|e| e.to_string())?;
        c.validate_with(|_, _| Ok(())).map_err(|e| e.to_string())?;
        Ok(c)
    }

    #[test]
    fn off_by_default_and_parsed_when_given() {
        let c = check("").unwrap();
        assert_eq!(c.tracing.otlp_endpoint, None);
        assert_eq!(c.tracing.sample_ratio, 1.0);
        let c = check(
            "[tracing]\notlp_endpoint = \"http://127.0.0.1:4318\"\nsample_ratio = 0.25\n\
             headers = { authorization = \"Bearer x\" }\nflush_interval_ms = 200\n",
        )
        .unwrap();
        assert_eq!(c.tracing.sample_ratio, 0.25);
        assert_eq!(c.tracing.headers["authorization"], "Bearer x");
        assert_eq!(c.tracing.flush_interval_ms.as_millis(), 200);
    }

    #[test]
    fn bad_values_name_their_field() {
        for (toml, field) in [
            (
                "otlp_endpoint = \"127.0.0.1:4318\"",
                "tracing.otlp_endpoint",
            ),
            ("sample_ratio = 1.5", "tracing.sample_ratio"),
            ("sample_ratio = -0.1", "tracing.sample_ratio"),
            ("service_name = \"\"", "tracing.service_name"),
            (
                "headers = { \"bad name\" = \"v\" }",
                "tracing.headers.bad name",
            ),
            ("headers = { x = \"a\\r\\nb: c\" }", "tracing.headers.x"),
            ("queue_batches = 0", "tracing.queue_batches"),
            ("shard_batch_spans = 0", "tracing.shard_batch_spans"),
            ("max_export_spans = 0", "tracing.max_export_spans"),
            ("flush_interval_ms = 0", "tracing.flush_interval_ms"),
            ("export_timeout_ms = 0", "tracing.export_timeout_ms"),
        ] {
            let e = check(&format!("[tracing]\n{toml}\n")).unwrap_err();
            assert!(e.starts_with(&format!("{field}:")), "{toml}: {e}");
        }
        assert!(check("[tracing]\nsampling = 1\n")
            .unwrap_err()
            .contains("sampling"));
    }
}
