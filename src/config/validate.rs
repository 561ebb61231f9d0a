//! Validation: what parsing cannot check (addresses, URLs, references,
//! ranges), naming the bad field.
//!
//! Invariant: a `Config` that passed `validate` can be turned into routes
//! without further checks.

use super::*;

impl Config {
    /// Checks everything that parsing cannot: addresses, URLs, references.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.admin.listen.is_empty()
            && self.admin.listen.parse::<std::net::SocketAddr>().is_err()
        {
            return Err(bad(
                "admin.listen",
                format!(
                    "{:?} is not an IP:port address (or \"\" to disable)",
                    self.admin.listen
                ),
            ));
        }
        for (i, p) in self.prices.iter().enumerate() {
            let ok = |v: f64| v.is_finite() && v >= 0.0;
            if p.model.is_empty() || !ok(p.input) || !ok(p.output) || !p.cached_input.is_none_or(ok)
            {
                return Err(bad(
                    format!("prices[{i}]"),
                    "needs a model name and prices that are finite and not negative",
                ));
            }
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
        if self.server.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(bad(
                "server.listen",
                format!("{:?} is not an IP:port address", self.server.listen),
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
            ("upstream.pool_max_idle", self.upstream.pool_max_idle),
        ] {
            if v == 0 {
                return Err(bad(field, "must be greater than 0"));
            }
        }
        if l.max_head_bytes < 64 {
            return Err(bad("limits.max_head_bytes", "must be at least 64"));
        }
        for (field, v) in [
            (
                "upstream.connect_timeout_ms",
                self.upstream.connect_timeout_ms,
            ),
            (
                "upstream.first_byte_timeout_ms",
                self.upstream.first_byte_timeout_ms,
            ),
            ("upstream.idle_timeout_ms", self.upstream.idle_timeout_ms),
            ("limits.header_read_timeout_ms", l.header_read_timeout_ms),
            ("limits.body_read_timeout_ms", l.body_read_timeout_ms),
            (
                "limits.keepalive_idle_timeout_ms",
                l.keepalive_idle_timeout_ms,
            ),
            ("limits.client_write_timeout_ms", l.client_write_timeout_ms),
        ] {
            if v == 0 {
                return Err(bad(field, "must be greater than 0"));
            }
        }
        self.resilience.validate()?;
        for (name, p) in &self.providers {
            if name.is_empty() || name.contains('/') {
                return Err(bad(
                    format!("providers.{name:?}"),
                    "a provider name must be non-empty and contain no '/'",
                ));
            }
            validate_provider(name, p)?;
        }
        if let Some(d) = &self.default_provider {
            if !self.providers.contains_key(d) {
                return Err(bad("default_provider", format!("no provider named {d:?}")));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for (i, m) in self.models.iter().enumerate() {
            let field = |f: &str| format!("models[{i}].{f}");
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

/// Checks one `[providers.NAME]` table: name, kind, URL, header-safe values,
/// and TLS settings that make sense together (and a readable `ca_file`).
fn validate_provider(name: &str, p: &ProviderConfig) -> Result<(), ConfigError> {
    let field = |f: &str| format!("providers.{name}.{f}");
    let (entry, base_url) = p.resolve_kind(name)?;
    let Some(base_url) = base_url else {
        return Err(bad(
            field("base_url"),
            format!(
                "is required (kind {:?} has no default; a custom provider needs its URL)",
                entry.name
            ),
        ));
    };
    let url =
        crate::upstream::UpstreamUrl::parse(base_url).map_err(|m| bad(field("base_url"), m))?;
    // These end up in request heads (and the query string for Azure).
    let header_safe = |v: &str| !v.is_empty() && v.bytes().all(|b| b.is_ascii_graphic());
    if let Some(k) = &p.api_key {
        if !header_safe(k) {
            return Err(bad(
                field("api_key"),
                "must be non-empty printable ASCII without spaces",
            ));
        }
    }
    if let Some(v) = &p.api_version {
        if entry.family == Family::OpenAi {
            return Err(bad(
                field("api_version"),
                "only applies to kinds \"azure\" and \"anthropic\"",
            ));
        }
        let query_safe = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_');
        if v.is_empty() || !v.bytes().all(query_safe) {
            return Err(bad(
                field("api_version"),
                format!("{v:?} is not a version like \"2024-10-21\""),
            ));
        }
    }
    let tls_field =
        match (&p.ca_file, p.tls_insecure_skip_verify) {
            (Some(_), true) => return Err(bad(
                field("tls_insecure_skip_verify"),
                "cannot be combined with ca_file: either verify against the CA or do not verify",
            )),
            (Some(path), false) => {
                crate::upstream::tls::load_ca_file(path).map_err(|m| bad(field("ca_file"), m))?;
                Some("ca_file")
            }
            (None, true) => Some("tls_insecure_skip_verify"),
            (None, false) => None,
        };
    if let (Some(f), false) = (tls_field, url.tls) {
        return Err(bad(
            field(f),
            format!("has no effect: base_url {base_url:?} is not https"),
        ));
    }
    for (f, v) in [
        ("connect_timeout_ms", p.connect_timeout_ms),
        ("first_byte_timeout_ms", p.first_byte_timeout_ms),
        ("idle_timeout_ms", p.idle_timeout_ms),
    ] {
        if v == Some(0) {
            return Err(bad(field(f), "must be greater than 0"));
        }
    }
    Ok(())
}
