//! Validation: what parsing cannot check (references, ranges),
//! naming the bad field. Each provider table's own rules (kind, base URL,
//! TLS, keys) need the catalogue and the upstream layer, so they belong to
//! `providers` and come in as a function, called at the same point of the
//! walk as always, so a config with several faults reports the same one.
//!
//! Invariant: a `Config` that passed `validate_with(providers' check)` can
//! be turned into routes without further checks.

use super::*;

impl Config {
    /// Checks everything that parsing cannot: references,
    /// ranges; each `[providers.NAME]` table goes to `check_provider` (see
    /// `providers::validate`, which every caller outside tests uses).
    pub fn validate_with(
        &self,
        check_provider: impl Fn(&str, &ProviderConfig) -> Result<(), ConfigError>,
    ) -> Result<(), ConfigError> {
        self.validate_governance()?;
        for (i, p) in self.prices.iter().enumerate() {
            let ok = |v: f64| v.is_finite() && v >= 0.0;
            let rates = [
                Some(p.input),
                Some(p.output),
                p.cached_input,
                p.cache_write,
                p.cache_write_1h,
            ];
            if p.model.is_empty() || !rates.into_iter().flatten().all(ok) {
                return Err(bad(
                    format!("prices[{i}]"),
                    "needs a model name and prices that are finite and not negative",
                ));
            }
        }
        if self.server.incoming_cpu && !self.server.pin_cores {
            return Err(bad(
                "server.incoming_cpu",
                "needs server.pin_cores = true: a listener can only ask for its own CPU's \
                 connections when its shard runs on that CPU",
            ));
        }
        if !matches!(self.access_log.target.as_str(), "off" | "stdout" | "file") {
            return Err(bad(
                "access_log.target",
                format!(
                    "{:?} is not one of \"off\", \"stdout\", \"file\"",
                    self.access_log.target
                ),
            ));
        }
        let l = &self.limits;
        for (field, v) in [
            ("limits.max_head_bytes", l.max_head_bytes),
            ("limits.max_headers", l.max_headers),
            ("limits.max_body_bytes", l.max_body_bytes),
            ("limits.max_chunk_line_bytes", l.max_chunk_line_bytes),
            (
                "limits.max_connections_per_shard",
                l.max_connections_per_shard,
            ),
            (
                "limits.max_in_flight_per_upstream",
                l.max_in_flight_per_upstream,
            ),
            ("limits.max_translated_messages", l.max_translated_messages),
            ("limits.max_translated_blocks", l.max_translated_blocks),
            ("limits.offload_body_bytes", l.offload_body_bytes),
            ("limits.max_response_head_bytes", l.max_response_head_bytes),
            ("limits.max_response_headers", l.max_response_headers),
            ("upstream.pool_max_idle", self.upstream.pool_max_idle),
        ] {
            if v == 0 {
                return Err(bad(field, "must be greater than 0"));
            }
        }
        if l.max_head_bytes < 64 {
            return Err(bad("limits.max_head_bytes", "must be at least 64"));
        }
        if l.max_response_head_bytes < 64 {
            return Err(bad("limits.max_response_head_bytes", "must be at least 64"));
        }
        for (field, zero) in [
            (
                "upstream.connect_timeout_ms",
                self.upstream.connect_timeout_ms.is_zero(),
            ),
            (
                "upstream.first_byte_timeout_ms",
                self.upstream.first_byte_timeout_ms.is_zero(),
            ),
            (
                "upstream.idle_timeout_ms",
                self.upstream.idle_timeout_ms.is_zero(),
            ),
            (
                "limits.header_read_timeout_ms",
                l.header_read_timeout_ms.is_zero(),
            ),
            (
                "limits.body_read_timeout_ms",
                l.body_read_timeout_ms.is_zero(),
            ),
            (
                "limits.keepalive_idle_timeout_ms",
                l.keepalive_idle_timeout_ms.is_zero(),
            ),
            (
                "limits.client_write_timeout_ms",
                l.client_write_timeout_ms.is_zero(),
            ),
        ] {
            if zero {
                return Err(bad(field, "must be greater than 0"));
            }
        }
        self.resilience.validate()?;
        self.tracing.validate()?;
        for (name, p) in &self.providers {
            if name.is_empty() || name.contains('/') {
                return Err(bad(
                    format!("providers.{name:?}"),
                    "a provider name must be non-empty and contain no '/'",
                ));
            }
            check_quota(&format!("providers.{name}"), p.rpm, p.tpm)?;
            check_provider(name, p)?;
        }
        if let Some(d) = &self.default_provider {
            if !self.providers.contains_key(d) {
                return Err(bad("default_provider", format!("no provider named {d:?}")));
            }
        }
        let c = &self.cache;
        if c.ttl_s == 0 {
            return Err(bad("cache.ttl_s", "must be at least 1 (second)"));
        }
        if c.max_entry_bytes == 0 || c.max_entry_bytes > c.max_bytes {
            return Err(bad(
                "cache.max_entry_bytes",
                "must be at least 1 and at most cache.max_bytes",
            ));
        }
        let sem = &c.semantic;
        if !(sem.threshold > 0.0 && sem.threshold <= 1.0) {
            return Err(bad("cache.semantic.threshold", "must be in (0, 1]"));
        }
        if sem.max_vectors == 0 || sem.max_partitions == 0 {
            return Err(bad(
                "cache.semantic.max_vectors",
                "max_vectors and max_partitions must be at least 1",
            ));
        }
        if self.models.iter().any(|m| m.semantic) && sem.embedding_model.is_none() {
            return Err(bad(
                "cache.semantic.embedding_model",
                "a model has semantic = true: name the model requests are embedded with",
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, m) in self.models.iter().enumerate() {
            let field = |f: &str| format!("models[{i}].{f}");
            if m.cache_ttl_s == Some(0) {
                return Err(bad(field("cache_ttl_s"), "must be at least 1 (second)"));
            }
            match (&m.provider, m.deployments.is_empty()) {
                (Some(_), false) => {
                    return Err(bad(
                        field("deployments"),
                        "give either `provider` or `deployments`, not both",
                    ))
                }
                (None, true) => {
                    return Err(bad(
                        field("provider"),
                        "is required (or a non-empty `deployments` list)",
                    ))
                }
                (Some(p), true) if !self.providers.contains_key(p) => {
                    return Err(bad(field("provider"), format!("no provider named {p:?}")));
                }
                _ => {}
            }
            for (j, d) in m.deployments.iter().enumerate() {
                if !self.providers.contains_key(&d.provider) {
                    return Err(bad(
                        field(&format!("deployments[{j}].provider")),
                        format!("no provider named {:?}", d.provider),
                    ));
                }
                if d.weight == 0 {
                    return Err(bad(
                        field(&format!("deployments[{j}].weight")),
                        "must be at least 1",
                    ));
                }
                check_quota(&field(&format!("deployments[{j}]")), d.rpm, d.tpm)?;
            }
            if let Some(s) = &m.strategy {
                if !matches!(
                    s.as_str(),
                    "weighted_round_robin" | "least_in_flight" | "latency"
                ) {
                    return Err(bad(
                        field("strategy"),
                        format!(
                            "{s:?} is not one of \"weighted_round_robin\", \"least_in_flight\", \"latency\""
                        ),
                    ));
                }
            }
            for (key, list) in [
                ("fallbacks", &m.fallbacks),
                ("context_window_fallbacks", &m.context_window_fallbacks),
            ] {
                for f in list {
                    let known = self
                        .models
                        .iter()
                        .any(|o| &o.name == f || o.aliases.contains(f));
                    if !known {
                        return Err(bad(field(key), format!("{f:?} is not a configured model")));
                    }
                    if &m.name == f || m.aliases.contains(f) {
                        return Err(bad(field(key), "a model cannot fall back to itself"));
                    }
                }
            }
            for n in std::iter::once(&m.name).chain(&m.aliases) {
                if n.is_empty() {
                    return Err(bad(field("name"), "model names must be non-empty"));
                }
                if !seen.insert(n.as_str()) {
                    return Err(bad(
                        field("name"),
                        format!("model name {n:?} is defined twice"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The provider for bare names that match no model.
    /// The provider for bare names: `default_provider`, else the only
    /// provider, else `openai` when it is among several (bare names are
    /// OpenAI's in the SDKs' own convention).
    pub fn default_provider_name(&self) -> Option<&str> {
        match &self.default_provider {
            Some(d) => Some(d),
            None if self.providers.len() == 1 => self.providers.keys().next().map(|s| s.as_str()),
            None => self
                .providers
                .get_key_value("openai")
                .map(|(k, _)| k.as_str()),
        }
    }
}

impl ResilienceConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        for (field, zero) in [
            ("resilience.backoff_base_ms", self.backoff_base_ms.is_zero()),
            ("resilience.backoff_cap_ms", self.backoff_cap_ms.is_zero()),
            (
                "resilience.retry_budget_window_ms",
                self.retry_budget_window_ms.is_zero(),
            ),
            (
                "resilience.breaker_consecutive_failures",
                self.breaker_consecutive_failures == 0,
            ),
            (
                "resilience.breaker_base_ejection_ms",
                self.breaker_base_ejection_ms.is_zero(),
            ),
            (
                "resilience.breaker_max_ejection_ms",
                self.breaker_max_ejection_ms.is_zero(),
            ),
            (
                "resilience.latency_decay_ms",
                self.latency_decay_ms.is_zero(),
            ),
        ] {
            if zero {
                return Err(bad(field, "must be greater than 0"));
            }
        }
        if self.backoff_cap_ms < self.backoff_base_ms {
            return Err(bad(
                "resilience.backoff_cap_ms",
                "must be at least resilience.backoff_base_ms",
            ));
        }
        if self.breaker_max_ejection_ms < self.breaker_base_ejection_ms {
            return Err(bad(
                "resilience.breaker_max_ejection_ms",
                "must be at least resilience.breaker_base_ejection_ms",
            ));
        }
        if !self.retry_budget_ratio.is_finite() || self.retry_budget_ratio < 0.0 {
            return Err(bad(
                "resilience.retry_budget_ratio",
                "must be a number 0 or greater",
            ));
        }
        Ok(())
    }
}

/// A quota's `rpm` and `tpm`, where given, are at least 1 (a quota of 0
/// would be a deployment that is never used: leave it out instead).
fn check_quota(table: &str, rpm: Option<u64>, tpm: Option<u64>) -> Result<(), ConfigError> {
    for (key, v) in [("rpm", rpm), ("tpm", tpm)] {
        if v == Some(0) {
            return Err(bad(
                format!("{table}.{key}"),
                "must be at least 1 (leave it out for no quota)",
            ));
        }
    }
    Ok(())
}
