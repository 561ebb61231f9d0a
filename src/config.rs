//! Typed configuration: the TOML file format, its defaults, the zero-config
//! environment fallback, and validation that names the bad field.
//!
//! Invariant: a `Config` that passed [`Config::validate`] can be turned into
//! routes without further checks; unknown keys are rejected at parse time.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::api::translate::TranslateLimits;
use crate::providers::catalog::{self, CatalogEntry, Family};

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default)]
    pub upstream: UpstreamConfig,
    #[serde(default)]
    pub admin: AdminConfig,
    #[serde(default)]
    pub access_log: AccessLogConfig,
    #[serde(default)]
    pub resilience: ResilienceConfig,
    /// Provider used for bare model names that match no configured model.
    /// Defaults to the only provider when exactly one is configured.
    pub default_provider: Option<String>,
    /// Providers by name; the name is also the `name/` model prefix.
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderConfig>,
    /// Models served; each maps a public name (and aliases) to a provider.
    #[serde(default)]
    pub models: Vec<ModelConfig>,
    /// Prices (USD per million tokens) that override or extend the shipped
    /// table, by the model name sent upstream.
    #[serde(default)]
    pub prices: Vec<PriceConfig>,
}

/// One `[[prices]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceConfig {
    pub model: String,
    /// USD per million input tokens.
    pub input: f64,
    /// USD per million cached input tokens (default: `input`).
    pub cached_input: Option<f64>,
    /// USD per million output tokens.
    pub output: f64,
}

/// The admin listener: Prometheus metrics and the reload endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// `GET /metrics`, `POST /admin/reload`, `GET /health`; keep it on
    /// loopback or a private network. Empty disables it.
    pub listen: String,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: "127.0.0.1:9090".into(),
        }
    }
}

/// One JSON line per request, written by a thread of its own.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccessLogConfig {
    /// "off", "stdout", or "file" (at `path`, rotated).
    pub target: String,
    pub path: String,
    /// Rotate when the file reaches this size.
    pub max_bytes: u64,
    /// Rotated files kept (`path.1` … `path.keep`).
    pub keep: usize,
}

impl Default for AccessLogConfig {
    fn default() -> Self {
        AccessLogConfig {
            target: "off".into(),
            path: "/var/log/shardgate/access.log".into(),
            max_bytes: 100 * 1024 * 1024,
            keep: 5,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address every shard listens on (SO_REUSEPORT).
    pub listen: String,
    /// Number of shards; 0 means one per CPU this process may run on.
    pub shards: usize,
    /// Pin each shard thread to its own CPU.
    pub pin_cores: bool,
    /// Start even if another process already listens on the port (only for a
    /// zero-downtime upgrade, where the old binary drains beside the new one).
    pub share_port: bool,
    /// On SIGTERM, how long in-flight requests and streams may take to
    /// finish before the process exits anyway, milliseconds.
    pub drain_timeout_ms: u64,
    /// Whether upstream requests carry the client's address in
    /// `X-Forwarded-For`.
    pub forwarded_for: ForwardedFor,
    /// Peers (proxies in front of the gateway) whose own `X-Forwarded-For`
    /// chain is kept, the peer appended; any other client's is replaced by
    /// its address.
    pub trusted_proxies: Vec<IpNet>,
}

/// `server.forwarded_for`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ForwardedFor {
    /// The client's address appended to a trusted proxy's chain, or alone.
    Append,
    /// No `X-Forwarded-For`: providers never learn client addresses.
    Off,
}

/// An address block, `ADDR/PREFIX` or a single `ADDR`, IPv4 or IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct IpNet {
    addr: std::net::IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Whether `ip` lies in the block (an IPv4-mapped IPv6 address counts
    /// as its IPv4 address).
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr::{V4, V6};
        match (self.addr, ip.to_canonical()) {
            (V4(net), V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (V6(net), V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::str::FromStr for IpNet {
    type Err = String;

    fn from_str(s: &str) -> Result<IpNet, String> {
        let bad = || format!("{s:?} is not an IP address or ADDR/PREFIX block");
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr = addr
            .parse::<std::net::IpAddr>()
            .map_err(|_| bad())?
            .to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max && p.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => return Err(format!("{s:?}: the prefix length must be 0 to {max}")),
            },
        };
        Ok(IpNet { addr, prefix })
    }
}

impl TryFrom<String> for IpNet {
    type Error = String;

    fn try_from(s: String) -> Result<IpNet, String> {
        s.parse()
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8080".into(),
            shards: 0,
            pin_cores: true,
            share_port: false,
            drain_timeout_ms: 30_000,
            forwarded_for: ForwardedFor::Append,
            trusted_proxies: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest request head (request line + headers), bytes. Over it: 431.
    pub max_head_bytes: usize,
    /// Most header lines in a request. Over it: 431.
    pub max_headers: usize,
    /// Largest request body, bytes. Over it: 413.
    pub max_body_bytes: usize,
    /// Longest chunk-size line (with extensions) in a chunked body, bytes.
    pub max_chunk_line_bytes: usize,
    /// A whole request head must arrive within this, milliseconds, counted
    /// from the accept (first request) or from its first byte (later
    /// requests). Over it: 408 and the connection is closed (slowloris).
    pub header_read_timeout_ms: u64,
    /// A whole request body must arrive within this, milliseconds, counted
    /// from the end of its head. Over it: 408 and the connection is closed.
    pub body_read_timeout_ms: u64,
    /// A keep-alive connection idle this long between requests is closed
    /// silently, milliseconds.
    pub keepalive_idle_timeout_ms: u64,
    /// One write to the client must finish within this, milliseconds: a
    /// client that stops reading a response (its socket buffer full) is
    /// cut off, freeing the upstream connection and its in-flight slot.
    pub client_write_timeout_ms: u64,
    /// Open client connections per shard. Over it a new connection is
    /// answered 503 with `Retry-After: 1` and closed.
    pub max_connections_per_shard: usize,
    /// Requests in flight to one provider from one shard. Over it: 503 with
    /// `Retry-After: 1`, before anything is sent upstream.
    pub max_in_flight_per_upstream: usize,
    /// Conversation turns (`messages` elements) in a request translated
    /// between dialects (Anthropic ⇄ OpenAI). Over it: 413, in the client's
    /// dialect, before anything is sent upstream. Pass-through requests are
    /// not counted.
    pub max_translated_messages: usize,
    /// Content blocks and parts (those nested in tool results included),
    /// tool calls, tool definitions and system prompt parts in a request
    /// translated between dialects, counted over the whole body. Over it:
    /// 413. Together with `max_body_bytes` this bounds a translation's work
    /// (on the shard's event loop below `offload_body_bytes`).
    pub max_translated_blocks: usize,
    /// A JSON request body of at least this many bytes is validated (and,
    /// when its route translates, translated) on the process's small
    /// blocking pool instead of its shard's event loop, so one large body
    /// does not hold up the shard's other connections; smaller bodies stay
    /// on the loop, where they cost no hand-off. Past a few large bodies
    /// waiting for the pool: 503 with `Retry-After: 1`.
    pub offload_body_bytes: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_head_bytes: 16 * 1024,
            max_headers: 100,
            max_body_bytes: 32 * 1024 * 1024,
            max_chunk_line_bytes: 4096,
            header_read_timeout_ms: 10_000,
            body_read_timeout_ms: 60_000,
            keepalive_idle_timeout_ms: 60_000,
            client_write_timeout_ms: 60_000,
            max_connections_per_shard: 16_384,
            max_in_flight_per_upstream: 4_096,
            max_translated_messages: TranslateLimits::DEFAULT.max_messages,
            max_translated_blocks: TranslateLimits::DEFAULT.max_blocks,
            offload_body_bytes: 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamConfig {
    /// TCP (and TLS) connect deadline, milliseconds.
    pub connect_timeout_ms: u64,
    /// Deadline from the end of the request write to the first response byte.
    pub first_byte_timeout_ms: u64,
    /// Longest silence between two reads of a response body (streams).
    pub idle_timeout_ms: u64,
    /// The whole exchange, from the request's send to the last response
    /// byte (streams included), milliseconds; 0: unbounded. Before a byte
    /// reached the client it is a 504, after it cuts the response as the
    /// idle timeout does.
    pub total_timeout_ms: u64,
    /// Idle keep-alive connections kept per upstream per shard.
    pub pool_max_idle: usize,
    /// An idle pooled connection older than this is closed, milliseconds.
    pub pool_idle_timeout_ms: u64,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            connect_timeout_ms: 5_000,
            first_byte_timeout_ms: 300_000,
            idle_timeout_ms: 120_000,
            // Finite, so a trickling upstream cannot hold a connection and an
            // in-flight slot forever; an hour, so no real generation (long
            // reasoning, tens of thousands of tokens streamed) is ever cut.
            total_timeout_ms: 3_600_000,
            pool_max_idle: 128,
            pool_idle_timeout_ms: 60_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Provider family or catalogue name: "openai" (OpenAI and any
    /// OpenAI-compatible API), "azure", "anthropic", or a catalogue name
    /// ("gemini", "groq", "mistral", "xai", "deepseek", "together",
    /// "fireworks", "openrouter", "cerebras", "perplexity", "vllm", "ollama",
    /// "lmstudio", "llamacpp"), which brings its default `base_url`.
    /// Defaults to the provider's name when that is a catalogue name, else
    /// "openai".
    pub kind: Option<String>,
    /// Base URL. For the OpenAI family it includes the API version path
    /// (`https://api.openai.com/v1`); for "anthropic" it has none
    /// (`https://api.anthropic.com`, as in the Anthropic SDK); for "azure" it
    /// is the resource endpoint (`https://NAME.openai.azure.com`). Optional
    /// for catalogue kinds, required for "azure" and custom providers.
    pub base_url: Option<String>,
    /// The key sent upstream. Prefer `api_key_env` so keys stay out of files.
    pub api_key: Option<String>,
    /// Name of an environment variable holding the key.
    pub api_key_env: Option<String>,
    /// "azure": the `api-version` query parameter (default 2024-10-21).
    /// "anthropic": the `anthropic-version` header (default 2023-06-01).
    pub api_version: Option<String>,
    /// PEM file of the CA certificates that sign a private https endpoint.
    /// When set, only these CAs are trusted for this provider (by default:
    /// the webpki roots and the system store).
    pub ca_file: Option<PathBuf>,
    /// Accept any server certificate. For tests against throwaway endpoints
    /// only; logged as a warning at every start.
    #[serde(default)]
    pub tls_insecure_skip_verify: bool,
    /// This provider's `[upstream]` timeouts, where they differ (a slow
    /// self-hosted model, a fast API worth failing over from early).
    pub connect_timeout_ms: Option<u64>,
    pub first_byte_timeout_ms: Option<u64>,
    pub idle_timeout_ms: Option<u64>,
    /// 0: unbounded, even when `upstream.total_timeout_ms` is not.
    pub total_timeout_ms: Option<u64>,
}

impl ProviderConfig {
    /// The catalogue entry for this provider's kind (see `kind`) and its
    /// base URL: the configured one, else the catalogue's default, which a
    /// provider with neither a catalogue name nor a `kind` does not get (its
    /// key must not go to api.openai.com by accident).
    pub fn resolve_kind(
        &self,
        name: &str,
    ) -> Result<(&'static CatalogEntry, Option<&str>), ConfigError> {
        let kind = match &self.kind {
            Some(k) => k.as_str(),
            None if catalog::lookup(name).is_some() => name,
            None => {
                let entry = catalog::lookup("openai").expect("openai is in the catalogue");
                return Ok((entry, self.base_url.as_deref()));
            }
        };
        let entry = catalog::lookup(kind).ok_or_else(|| {
            bad(
                format!("providers.{name}.kind"),
                format!(
                    "unknown provider kind {kind:?} (known: {})",
                    catalog::known_kinds()
                ),
            )
        })?;
        Ok((entry, self.base_url.as_deref().or(entry.default_base_url)))
    }

    /// This provider's timeouts: its own where set, else `upstream`'s.
    pub fn timeouts(&self, upstream: &UpstreamConfig) -> crate::upstream::timeouts::Timeouts {
        use std::time::Duration;
        let ms = |own: Option<u64>, global: u64| Duration::from_millis(own.unwrap_or(global));
        let total = self.total_timeout_ms.unwrap_or(upstream.total_timeout_ms);
        crate::upstream::timeouts::Timeouts {
            connect: ms(self.connect_timeout_ms, upstream.connect_timeout_ms),
            first_byte: ms(self.first_byte_timeout_ms, upstream.first_byte_timeout_ms),
            idle: ms(self.idle_timeout_ms, upstream.idle_timeout_ms),
            total: (total > 0).then(|| Duration::from_millis(total)),
        }
    }
}

/// Retries, fail-over and outlier ejection (see `upstream::{retry, breaker}`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResilienceConfig {
    /// Retries on one deployment before failing over to another.
    pub max_retries: u32,
    /// First backoff ceiling (full jitter), milliseconds; doubles per retry.
    pub backoff_base_ms: u64,
    /// Largest backoff, milliseconds.
    pub backoff_cap_ms: u64,
    /// Longest upstream `Retry-After` waited out, milliseconds; a longer one
    /// fails over at once.
    pub max_retry_after_ms: u64,
    /// Re-sends (retries and fail-overs) allowed per client request, over
    /// the budget window, per shard.
    pub retry_budget_ratio: f64,
    /// Re-sends always allowed per window, per shard.
    pub retry_budget_min_retries: u32,
    /// The retry budget's sliding window, milliseconds.
    pub retry_budget_window_ms: u64,
    /// A first-byte timeout fails over to another deployment (or fallback)
    /// instead of answering 504. The stalled upstream may still do (and
    /// bill) the work; false answers the timeout.
    pub retry_on_timeout: bool,
    /// A response that broke before any of it reached the client (reset,
    /// cut body, bad framing) is retried instead of answering 502. As with
    /// timeouts, the upstream may have done the work.
    pub retry_on_broken_response: bool,
    /// Failures in a row that eject a deployment.
    pub breaker_consecutive_failures: u32,
    /// First ejection cool-down, milliseconds; doubles per re-ejection.
    pub breaker_base_ejection_ms: u64,
    /// Longest ejection cool-down, milliseconds.
    pub breaker_max_ejection_ms: u64,
    /// Whether a 429 counts as a deployment failure for the breaker.
    pub breaker_count_429: bool,
    /// `strategy = "latency"`: how fast an unsampled latency average decays,
    /// milliseconds.
    pub latency_decay_ms: u64,
}

impl Default for ResilienceConfig {
    fn default() -> Self {
        ResilienceConfig {
            max_retries: 2,
            backoff_base_ms: 100,
            backoff_cap_ms: 5_000,
            max_retry_after_ms: 10_000,
            retry_budget_ratio: 0.2,
            retry_budget_min_retries: 10,
            retry_budget_window_ms: 10_000,
            retry_on_timeout: true,
            retry_on_broken_response: true,
            breaker_consecutive_failures: 5,
            breaker_base_ejection_ms: 30_000,
            breaker_max_ejection_ms: 300_000,
            breaker_count_429: false,
            latency_decay_ms: 10_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// The name clients send in `model`.
    pub name: String,
    /// Provider (a key of `[providers]`); or give `deployments`.
    pub provider: Option<String>,
    /// The model name sent upstream; defaults to `name`.
    pub upstream_model: Option<String>,
    /// Other names clients may use for this model.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Several places that serve this model (instead of `provider`).
    #[serde(default)]
    pub deployments: Vec<DeploymentConfig>,
    /// How requests spread over `deployments`: "weighted_round_robin"
    /// (default), "least_in_flight" or "latency".
    #[serde(default)]
    pub strategy: Option<String>,
    /// Models tried, in order, when every deployment of this one failed.
    #[serde(default)]
    pub fallbacks: Vec<String>,
    /// Models tried, in order, when the prompt is too long for this one.
    #[serde(default)]
    pub context_window_fallbacks: Vec<String>,
}

/// One deployment of a model.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentConfig {
    /// Provider (a key of `[providers]`).
    pub provider: String,
    /// The model name sent upstream; defaults to the model's `upstream_model`,
    /// else its `name`.
    pub upstream_model: Option<String>,
    /// Share of the traffic relative to the other deployments (1 or more).
    #[serde(default = "default_weight")]
    pub weight: u32,
}

fn default_weight() -> u32 {
    1
}

impl ModelConfig {
    /// The deployments as (provider, upstream model, weight): `deployments`,
    /// or the single one `provider` names.
    pub fn resolved_deployments(&self) -> Vec<(&str, &str, u32)> {
        let default_upstream = self.upstream_model.as_deref().unwrap_or(&self.name);
        if self.deployments.is_empty() {
            return self
                .provider
                .as_deref()
                .map(|p| (p, default_upstream, 1))
                .into_iter()
                .collect();
        }
        self.deployments
            .iter()
            .map(|d| {
                (
                    d.provider.as_str(),
                    d.upstream_model.as_deref().unwrap_or(default_upstream),
                    d.weight,
                )
            })
            .collect()
    }
}

impl ResilienceConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        for (field, v) in [
            ("resilience.backoff_base_ms", self.backoff_base_ms),
            ("resilience.backoff_cap_ms", self.backoff_cap_ms),
            (
                "resilience.retry_budget_window_ms",
                self.retry_budget_window_ms,
            ),
            (
                "resilience.breaker_consecutive_failures",
                u64::from(self.breaker_consecutive_failures),
            ),
            (
                "resilience.breaker_base_ejection_ms",
                self.breaker_base_ejection_ms,
            ),
            (
                "resilience.breaker_max_ejection_ms",
                self.breaker_max_ejection_ms,
            ),
            ("resilience.latency_decay_ms", self.latency_decay_ms),
        ] {
            if v == 0 {
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

    pub fn retry_config(&self) -> crate::upstream::retry::RetryConfig {
        use std::time::Duration;
        crate::upstream::retry::RetryConfig {
            max_retries: self.max_retries,
            backoff_base: Duration::from_millis(self.backoff_base_ms),
            backoff_cap: Duration::from_millis(self.backoff_cap_ms),
            jitter: crate::upstream::retry::Jitter::Full,
            max_retry_after: Duration::from_millis(self.max_retry_after_ms),
            budget_ratio: self.retry_budget_ratio,
            budget_min_retries: self.retry_budget_min_retries,
            budget_window: Duration::from_millis(self.retry_budget_window_ms),
            on_timeout: self.retry_on_timeout,
            on_broken_response: self.retry_on_broken_response,
        }
    }

    pub fn breaker_config(&self) -> crate::upstream::breaker::BreakerConfig {
        use std::time::Duration;
        let max = Duration::from_millis(self.breaker_max_ejection_ms);
        crate::upstream::breaker::BreakerConfig {
            consecutive_failures: self.breaker_consecutive_failures,
            base_ejection: Duration::from_millis(self.breaker_base_ejection_ms),
            max_ejection: max,
            probe_timeout: crate::upstream::breaker::BreakerConfig::default().probe_timeout,
            count_429: self.breaker_count_429,
        }
    }
}

/// A configuration problem, naming the field at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub field: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

fn bad(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.into(),
        message: message.into(),
    }
}

impl Config {
    /// Parses TOML text. Unknown keys are errors.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| {
            let field = e.span().map(|s| locate_key(text, s)).unwrap_or_default();
            bad(field, e.message().to_string())
        })
    }

    /// Loads `path`, or builds the zero-config default from the environment
    /// when `path` is `None`. The result is validated.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let mut config = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| bad("", format!("cannot read {}: {e}", path.display())))?;
                Config::from_toml(&text)?
            }
            None => Config::from_env(|k| std::env::var(k).ok()),
        };
        config.resolve_keys(|k| std::env::var(k).ok())?;
        config.validate()?;
        Ok(config)
    }

    /// The zero-config default: listen on 127.0.0.1:8080 and enable each
    /// catalogue provider whose SDK variables are set (see
    /// [`CatalogEntry::env_config`]).
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Config {
        let mut config = Config::default();
        for entry in catalog::CATALOG {
            if let Some(p) = entry.env_config(&var) {
                config.providers.insert(entry.name.into(), p);
            }
        }
        config
    }

    /// Fills `api_key` from `api_key_env` where set.
    pub fn resolve_keys(
        &mut self,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        for (name, p) in &mut self.providers {
            if let Some(env) = &p.api_key_env {
                match var(env) {
                    Some(v) => p.api_key = Some(v),
                    None => {
                        return Err(bad(
                            format!("providers.{name}.api_key_env"),
                            format!("environment variable {env} is not set"),
                        ))
                    }
                }
            }
        }
        Ok(())
    }

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

/// Best-effort dotted path of the TOML key at `span`, for error messages.
fn locate_key(text: &str, span: std::ops::Range<usize>) -> String {
    let before = &text[..span.start.min(text.len())];
    let table = before
        .lines()
        .rev()
        .find_map(|l| {
            let l = l.trim();
            l.strip_prefix('[').map(|t| {
                t.trim_start_matches('[')
                    .trim_end_matches(']')
                    .trim()
                    .to_string()
            })
        })
        .unwrap_or_default();
    // The whole line the span is on: for an unknown key the span is the key,
    // for a bad value it is the value; either way the key starts the line.
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or("");
    let key = line
        .split('=')
        .next()
        .unwrap_or("")
        .trim()
        .trim_matches('"');
    match (table.is_empty(), key.is_empty() || key.starts_with('[')) {
        (_, true) => table,
        (true, false) => key.to_string(),
        (false, false) => format!("{table}.{key}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarding_trusts_no_one_by_default_and_parses_address_blocks() {
        let d = ServerConfig::default();
        assert_eq!(d.forwarded_for, ForwardedFor::Append);
        assert!(d.trusted_proxies.is_empty());
        let c = Config::from_toml(
            "[server]\nforwarded_for = \"off\"\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\", \"fd00::/8\", \"192.168.1.7\"]\n",
        )
        .unwrap();
        assert_eq!(c.server.forwarded_for, ForwardedFor::Off);
        let nets = &c.server.trusted_proxies;
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        assert!(nets[0].contains(ip("10.255.0.1")));
        assert!(nets[0].contains(ip("::ffff:10.1.1.1")));
        assert!(!nets[0].contains(ip("11.0.0.1")));
        assert!(nets[1].contains(ip("::1")) && !nets[1].contains(ip("::2")));
        assert!(nets[2].contains(ip("fd12::1")) && !nets[2].contains(ip("fe80::1")));
        assert!(nets[3].contains(ip("192.168.1.7")) && !nets[3].contains(ip("192.168.1.8")));
        assert!(!nets[3].contains(ip("::1")));
        let all: IpNet = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("1.2.3.4")) && !all.contains(ip("::2")));
        for bad_net in [
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "nope",
            "10.0.0/8",
        ] {
            let e = Config::from_toml(&format!("[server]\ntrusted_proxies = [\"{bad_net}\"]\n"))
                .unwrap_err();
            assert_eq!(e.field, "server.trusted_proxies", "{bad_net}: {e}");
        }
        let e = Config::from_toml("[server]\nforwarded_for = \"replace\"\n").unwrap_err();
        assert_eq!(e.field, "server.forwarded_for", "{e}");
    }

    #[test]
    fn defaults_listen_on_loopback_8080() {
        let c = Config::from_env(|_| None);
        assert_eq!(c.server.listen, "127.0.0.1:8080");
        assert!(c.providers.is_empty());
        c.validate().unwrap();
    }

    #[test]
    fn openai_enabled_by_key_variable_with_base_url_override() {
        let c = Config::from_env(|k| match k {
            "OPENAI_API_KEY" => Some("sk-test".into()),
            "OPENAI_BASE_URL" => Some("http://127.0.0.1:9/v1".into()),
            _ => None,
        });
        let p = &c.providers["openai"];
        assert_eq!(p.base_url.as_deref(), Some("http://127.0.0.1:9/v1"));
        assert_eq!(p.api_key.as_deref(), Some("sk-test"));
        assert_eq!(c.default_provider_name(), Some("openai"));
    }

    #[test]
    fn a_bad_value_is_reported_under_its_key() {
        let e = Config::from_toml("[upstream]\nconnect_timeout_ms = \"soon\"\n").unwrap_err();
        assert_eq!(e.field, "upstream.connect_timeout_ms", "{e}");
        let e = Config::from_toml("[server]\nshards = -1\n").unwrap_err();
        assert_eq!(e.field, "server.shards", "{e}");
    }

    #[test]
    fn unknown_keys_are_errors_naming_the_key() {
        let e = Config::from_toml("[server]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n").unwrap_err();
        assert!(e.message.contains("lisen"), "{e}");
        assert_eq!(e.field, "server.lisen");
    }

    #[test]
    fn validation_names_the_field() {
        let c = Config::from_toml("[server]\nlisten = \"nope\"\n").unwrap();
        assert_eq!(c.validate().unwrap_err().field, "server.listen");

        let c = Config::from_toml("[providers.a]\nbase_url = \"ftp://x\"\n").unwrap();
        assert_eq!(c.validate().unwrap_err().field, "providers.a.base_url");

        let c = Config::from_toml(
            "[providers.a]\nbase_url = \"http://127.0.0.1:1/v1\"\n[[models]]\nname = \"m\"\nprovider = \"b\"\n",
        )
        .unwrap();
        assert_eq!(c.validate().unwrap_err().field, "models[0].provider");

        let c = Config::from_toml("[limits]\nmax_body_bytes = 0\n").unwrap();
        assert_eq!(c.validate().unwrap_err().field, "limits.max_body_bytes");
        for key in [
            "header_read_timeout_ms",
            "body_read_timeout_ms",
            "keepalive_idle_timeout_ms",
            "client_write_timeout_ms",
            "max_connections_per_shard",
            "max_in_flight_per_upstream",
            "max_translated_messages",
            "max_translated_blocks",
        ] {
            let c = Config::from_toml(&format!("[limits]\n{key} = 0\n")).unwrap();
            assert_eq!(c.validate().unwrap_err().field, format!("limits.{key}"));
        }
    }

    #[test]
    fn provider_timeouts_override_upstream_and_inherit_the_rest() {
        use std::time::Duration;
        let ms = Duration::from_millis;
        let c = Config::from_toml(
            "[upstream]\nconnect_timeout_ms = 700\nfirst_byte_timeout_ms = 9000\ntotal_timeout_ms = 60000\n\
             [providers.a]\nbase_url = \"http://127.0.0.1:1/v1\"\nfirst_byte_timeout_ms = 200\nidle_timeout_ms = 300\n\
             [providers.b]\nbase_url = \"http://127.0.0.1:2/v1\"\nconnect_timeout_ms = 50\ntotal_timeout_ms = 0\n\
             [providers.c]\nbase_url = \"http://127.0.0.1:3/v1\"\n",
        )
        .unwrap();
        c.validate().unwrap();
        let t = |n: &str| c.providers[n].timeouts(&c.upstream);
        let a = t("a");
        assert_eq!(
            (a.connect, a.first_byte, a.idle),
            (ms(700), ms(200), ms(300))
        );
        assert_eq!(a.total, Some(ms(60_000)));
        // 0 lifts a global total for this provider alone.
        let b = t("b");
        assert_eq!((b.connect, b.first_byte, b.total), (ms(50), ms(9000), None));
        let c3 = t("c");
        assert_eq!(c3.idle, ms(UpstreamConfig::default().idle_timeout_ms));
        assert_eq!(c3.total, Some(ms(60_000)));
        // The shipped default total is finite; 0 globally means unbounded.
        let d = ProviderConfig::default();
        assert_eq!(
            d.timeouts(&UpstreamConfig::default()).total,
            Some(ms(3_600_000))
        );
        let none = Config::from_toml("[upstream]\ntotal_timeout_ms = 0\n").unwrap();
        none.validate().unwrap();
        assert_eq!(d.timeouts(&none.upstream).total, None);
    }

    #[test]
    fn provider_timeouts_are_validated_naming_the_field() {
        const A: &str = "[providers.a]\nbase_url = \"http://127.0.0.1:1/v1\"\n";
        for key in [
            "connect_timeout_ms",
            "first_byte_timeout_ms",
            "idle_timeout_ms",
        ] {
            let c = Config::from_toml(&format!("{A}{key} = 0\n")).unwrap();
            let e = c.validate().unwrap_err();
            assert_eq!(e.field, format!("providers.a.{key}"), "{e}");
            let e = Config::from_toml(&format!("{A}{key} = \"soon\"\n")).unwrap_err();
            assert_eq!(e.field, format!("providers.a.{key}"), "{e}");
        }
        let c = Config::from_toml(&format!("{A}total_timeout_ms = 0\n")).unwrap();
        c.validate().unwrap();
        let c = Config::from_toml("[upstream]\nidle_timeout_ms = 0\n").unwrap();
        assert_eq!(c.validate().unwrap_err().field, "upstream.idle_timeout_ms");
    }

    #[test]
    fn duplicate_model_names_are_refused() {
        let c = Config::from_toml(
            "[providers.a]\nbase_url = \"http://127.0.0.1:1/v1\"\n[[models]]\nname = \"m\"\nprovider = \"a\"\n[[models]]\nname = \"n\"\nprovider = \"a\"\naliases = [\"m\"]\n",
        )
        .unwrap();
        let e = c.validate().unwrap_err();
        assert_eq!(e.field, "models[1].name");
    }

    #[test]
    fn api_key_env_must_exist() {
        let mut c = Config::from_toml(
            "[providers.a]\nbase_url = \"http://127.0.0.1:1/v1\"\napi_key_env = \"NOPE_KEY\"\n",
        )
        .unwrap();
        let e = c.resolve_keys(|_| None).unwrap_err();
        assert_eq!(e.field, "providers.a.api_key_env");
        c.resolve_keys(|_| Some("k".into())).unwrap();
        assert_eq!(c.providers["a"].api_key.as_deref(), Some("k"));
    }

    /// A fake environment from pairs.
    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn every_hosted_provider_is_enabled_by_its_key_variable_alone() {
        for entry in catalog::CATALOG.iter().filter(|e| !e.local) {
            let key_var = entry.key_var.unwrap();
            let c = Config::from_env(env(&[(key_var, "k-1")]));
            if entry.family == Family::Azure {
                assert!(c.providers.is_empty(), "azure needs its endpoint too");
                continue;
            }
            c.validate().unwrap();
            let p = &c.providers[entry.name];
            assert_eq!(p.kind.as_deref(), Some(entry.name));
            assert_eq!(p.base_url.as_deref(), entry.default_base_url);
            assert_eq!(p.api_key.as_deref(), Some("k-1"));
            assert_eq!(
                c.providers.len(),
                1,
                "{key_var} enables only {}",
                entry.name
            );
        }
    }

    #[test]
    fn zero_config_catalogue_urls() {
        let c = Config::from_env(env(&[
            ("GEMINI_API_KEY", "g"),
            ("GROQ_API_KEY", "q"),
            ("PERPLEXITY_API_KEY", "p"),
            ("ANTHROPIC_API_KEY", "a"),
            ("ANTHROPIC_BASE_URL", "http://127.0.0.1:9"),
        ]));
        c.validate().unwrap();
        let url = |n: &str| c.providers[n].base_url.clone().unwrap();
        assert_eq!(
            url("gemini"),
            "https://generativelanguage.googleapis.com/v1beta/openai"
        );
        assert_eq!(url("groq"), "https://api.groq.com/openai/v1");
        assert_eq!(url("perplexity"), "https://api.perplexity.ai");
        assert_eq!(url("anthropic"), "http://127.0.0.1:9");
        // Several providers and none named the default: bare names are 404.
        assert_eq!(c.default_provider_name(), None);
    }

    #[test]
    fn azure_needs_key_and_endpoint_and_takes_the_api_version() {
        let c = Config::from_env(env(&[
            ("AZURE_OPENAI_API_KEY", "az"),
            ("AZURE_OPENAI_ENDPOINT", "https://res.openai.azure.com/"),
            ("OPENAI_API_VERSION", "2025-01-01-preview"),
        ]));
        c.validate().unwrap();
        let p = &c.providers["azure"];
        assert_eq!(p.kind.as_deref(), Some("azure"));
        assert_eq!(p.base_url.as_deref(), Some("https://res.openai.azure.com/"));
        assert_eq!(p.api_version.as_deref(), Some("2025-01-01-preview"));
        let c = Config::from_env(env(&[(
            "AZURE_OPENAI_ENDPOINT",
            "https://r.openai.azure.com",
        )]));
        assert!(c.providers.is_empty());
    }

    #[test]
    fn local_servers_only_by_their_url_variable() {
        let c = Config::from_env(env(&[("VLLM_API_KEY", "v")]));
        assert!(
            c.providers.is_empty(),
            "a key alone says nothing about a server"
        );
        let c = Config::from_env(env(&[
            ("VLLM_BASE_URL", "http://gpu:8000/v1"),
            ("VLLM_API_KEY", "v"),
            ("OLLAMA_HOST", "0.0.0.0:11500"),
            ("LMSTUDIO_BASE_URL", "http://127.0.0.1:1234/v1"),
            ("LLAMACPP_BASE_URL", "http://127.0.0.1:8080/v1"),
        ]));
        c.validate().unwrap();
        let p = |n: &str| &c.providers[n];
        assert_eq!(p("vllm").base_url.as_deref(), Some("http://gpu:8000/v1"));
        assert_eq!(p("vllm").api_key.as_deref(), Some("v"));
        assert_eq!(
            p("ollama").base_url.as_deref(),
            Some("http://127.0.0.1:11500/v1")
        );
        assert_eq!(p("ollama").api_key, None);
        assert_eq!(p("lmstudio").kind.as_deref(), Some("lmstudio"));
        assert_eq!(p("llamacpp").kind.as_deref(), Some("llamacpp"));
        // OLLAMA_BASE_URL is taken as is and wins over OLLAMA_HOST.
        let c = Config::from_env(env(&[
            ("OLLAMA_BASE_URL", "http://box:1/v1"),
            ("OLLAMA_HOST", "other"),
        ]));
        assert_eq!(
            c.providers["ollama"].base_url.as_deref(),
            Some("http://box:1/v1")
        );
    }

    #[test]
    fn kind_defaults_to_a_catalogue_name_and_brings_its_base_url() {
        let c = Config::from_toml(
            "[providers.groq]\napi_key = \"k\"\n[providers.mine]\nkind = \"mistral\"\n",
        )
        .unwrap();
        c.validate().unwrap();
        let (entry, url) = c.providers["groq"].resolve_kind("groq").unwrap();
        assert_eq!(entry.name, "groq");
        assert_eq!(url, Some("https://api.groq.com/openai/v1"));
        let (entry, url) = c.providers["mine"].resolve_kind("mine").unwrap();
        assert_eq!(entry.name, "mistral");
        assert_eq!(url, Some("https://api.mistral.ai/v1"));
        // A custom name is OpenAI-compatible and needs a base URL.
        let c = Config::from_toml("[providers.mine]\napi_key = \"k\"\n").unwrap();
        assert_eq!(c.validate().unwrap_err().field, "providers.mine.base_url");
    }

    #[test]
    fn deployments_fallbacks_and_resilience_are_validated_naming_the_field() {
        const P: &str = "[providers.a]\nbase_url = \"http://127.0.0.1:1/v1\"\n[providers.b]\nbase_url = \"http://127.0.0.1:2/v1\"\n";
        let field = |text: &str| {
            Config::from_toml(&format!("{P}{text}"))
                .unwrap()
                .validate()
                .err()
                .map(|e| e.field)
        };
        let ok = "[[models]]\nname = \"m\"\nupstream_model = \"x\"\ndeployments = [{ provider = \"a\", weight = 3 }, { provider = \"b\", upstream_model = \"y\" }]\nstrategy = \"latency\"\nfallbacks = [\"n\"]\ncontext_window_fallbacks = [\"n\"]\n[[models]]\nname = \"n\"\nprovider = \"b\"\n";
        assert_eq!(field(ok), None);
        let c = Config::from_toml(&format!("{P}{ok}")).unwrap();
        assert_eq!(
            c.models[0].resolved_deployments(),
            [("a", "x", 3), ("b", "y", 1)]
        );
        assert_eq!(c.models[1].resolved_deployments(), [("b", "n", 1)]);
        for (text, want) in [
            ("[[models]]\nname = \"m\"\n", "models[0].provider"),
            (
                "[[models]]\nname = \"m\"\nprovider = \"a\"\ndeployments = [{ provider = \"a\" }]\n",
                "models[0].deployments",
            ),
            (
                "[[models]]\nname = \"m\"\ndeployments = [{ provider = \"a\" }, { provider = \"z\" }]\n",
                "models[0].deployments[1].provider",
            ),
            (
                "[[models]]\nname = \"m\"\ndeployments = [{ provider = \"a\", weight = 0 }]\n",
                "models[0].deployments[0].weight",
            ),
            (
                "[[models]]\nname = \"m\"\nprovider = \"a\"\nstrategy = \"random\"\n",
                "models[0].strategy",
            ),
            (
                "[[models]]\nname = \"m\"\nprovider = \"a\"\nfallbacks = [\"nope\"]\n",
                "models[0].fallbacks",
            ),
            (
                "[[models]]\nname = \"m\"\nprovider = \"a\"\ncontext_window_fallbacks = [\"m\"]\n",
                "models[0].context_window_fallbacks",
            ),
            ("[resilience]\nbackoff_base_ms = 0\n", "resilience.backoff_base_ms"),
            (
                "[resilience]\nbackoff_base_ms = 100\nbackoff_cap_ms = 10\n",
                "resilience.backoff_cap_ms",
            ),
            (
                "[resilience]\nretry_budget_ratio = -1.0\n",
                "resilience.retry_budget_ratio",
            ),
            (
                "[resilience]\nbreaker_consecutive_failures = 0\n",
                "resilience.breaker_consecutive_failures",
            ),
            (
                "[resilience]\nbreaker_base_ejection_ms = 5000\nbreaker_max_ejection_ms = 10\n",
                "resilience.breaker_max_ejection_ms",
            ),
        ] {
            assert_eq!(field(text).as_deref(), Some(want), "{text}");
        }
        // Unknown keys in a deployment are refused at parse time.
        assert!(Config::from_toml(&format!(
            "{P}[[models]]\nname = \"m\"\ndeployments = [{{ provider = \"a\", wieght = 2 }}]\n"
        ))
        .is_err());
    }

    #[test]
    fn provider_validation_names_the_field() {
        let err = |toml: &str| Config::from_toml(toml).unwrap().validate().unwrap_err();
        let e = err("[providers.a]\nkind = \"bedrock\"\n");
        assert_eq!(e.field, "providers.a.kind");
        assert!(
            e.message.contains("\"azure\"") && e.message.contains("\"ollama\""),
            "{e}"
        );
        assert_eq!(
            err("[providers.a]\nkind = \"azure\"\n").field,
            "providers.a.base_url"
        );
        assert_eq!(
            err("[providers.openai]\napi_version = \"2024-10-21\"\n").field,
            "providers.openai.api_version"
        );
        assert_eq!(
            err("[providers.azure]\nbase_url = \"https://r\"\napi_version = \"x&y=1\"\n").field,
            "providers.azure.api_version"
        );
        assert_eq!(
            err("[providers.openai]\napi_key = \"sk\\r\\nx-evil: 1\"\n").field,
            "providers.openai.api_key"
        );
        assert_eq!(
            err("[providers.a]\nbase_url = \"http://127.0.0.1:1/v1\"\ntls_insecure_skip_verify = true\n").field,
            "providers.a.tls_insecure_skip_verify"
        );
        let e =
            err("[providers.a]\nbase_url = \"https://h/v1\"\nca_file = \"/nonexistent/ca.pem\"\n");
        assert_eq!(e.field, "providers.a.ca_file");
        assert!(e.message.contains("/nonexistent/ca.pem"), "{e}");
        assert_eq!(
            err("[providers.a]\nbase_url = \"https://h/v1\"\nca_file = \"/x\"\ntls_insecure_skip_verify = true\n").field,
            "providers.a.tls_insecure_skip_verify"
        );
    }
}
