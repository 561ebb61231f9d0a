//! Typed configuration: the TOML file format (the schema types and their
//! defaults, here), parsing (`parse`), the checks config can make alone,
//! naming the bad field (`validate`), the error type (`error`), and address
//! blocks (`ipnet`).
//!
//! Config is a low floor: it imports nothing but the pure layers (`api`'s
//! translation limits). What needs the provider catalogue, URLs or TLS
//! (provider kinds, base URLs, CA files, the zero-config environment
//! fallback) is checked and built by `providers`, which hands its provider
//! check to [`Config::validate_with`].
//!
//! Invariant: a `Config` that passed `providers::validate` can be turned
//! into routes without further checks; unknown keys are rejected at parse
//! time.

mod address;
mod duration;
mod error;
mod governance;
mod ipnet;
mod parse;
mod server_tls;
#[cfg(test)]
mod tests;
mod tracing;
mod validate;

use error::bad;
pub use error::ConfigError;
pub use governance::{
    AuthConfig, GovernanceConfig, KeyConfig, LimitFields, OnUnavailable, Period, StateConfig,
    TeamConfig, Unavailable,
};
pub use ipnet::IpNet;
pub use server_tls::ServerTlsConfig;
pub use tracing::TracingConfig;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

pub use address::{admin_addr, listen_addr};
use duration::{ms, opt_ms};

use crate::api::translate::TranslateLimits;

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
    #[serde(default)]
    pub auth: AuthConfig,
    #[serde(default)]
    pub governance: GovernanceConfig,
    #[serde(default)]
    pub state: StateConfig,
    #[serde(default)]
    pub cache: CacheConfig,
    /// OpenTelemetry traces (off unless `otlp_endpoint` is set).
    #[serde(default)]
    pub tracing: TracingConfig,
    /// Virtual keys declared in the file (the admin API adds more).
    #[serde(default)]
    pub keys: Vec<KeyConfig>,
    #[serde(default)]
    pub teams: Vec<TeamConfig>,
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

/// `[cache]`: the exact response cache, in this process's memory.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Answer repeated requests from the cache.
    pub enabled: bool,
    /// How long an answer is kept, seconds (a model's `cache_ttl_s` wins).
    pub ttl_s: u64,
    /// Memory the whole cache may hold, bytes (least recently hit first out).
    pub max_bytes: usize,
    /// The largest answer kept, bytes.
    pub max_entry_bytes: usize,
    /// Top-level request members the key leaves out, besides `stream`,
    /// `stream_options` and `user` (which it always does).
    pub exclude_fields: Vec<String>,
    /// Meter a hit at its answer's usage, against budgets and token
    /// limits, as if it had gone upstream. Off: a hit costs nothing (it
    /// still counts as a request for `rpm`).
    pub charge_hits: bool,
    /// With `state.backend = "redis"`: entries are kept in that Redis too,
    /// shared by every instance, behind the in-process store.
    pub shared: bool,
    /// The longest a request waits for the shared tier's answer,
    /// milliseconds; past it the lookup is a miss.
    #[serde(deserialize_with = "ms")]
    pub shared_wait_ms: Duration,
    /// The semantic cache, for the models that opt in (`[[models]]
    /// semantic = true`).
    pub semantic: SemanticConfig,
}

/// `[cache.semantic]`: a request whose text means the same as one already
/// answered (for the same tenant, model and parameters) gets that answer.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SemanticConfig {
    /// The model requests' text is embedded with, routed like any model
    /// (to an OpenAI-compatible provider's `/embeddings`).
    pub embedding_model: Option<String>,
    /// The cosine similarity at or above which two requests are the same.
    pub threshold: f32,
    /// Embeddings kept, at most (the oldest go first).
    pub max_vectors: usize,
    /// Partitions (tenant, route, model and parameters) indexed, at most:
    /// each costs about 48 KiB however few embeddings it holds.
    pub max_partitions: usize,
    /// The longest a request waits for its embedding, milliseconds; past
    /// it the request is an exact-cache miss.
    #[serde(deserialize_with = "ms")]
    pub timeout_ms: Duration,
}

impl Default for SemanticConfig {
    fn default() -> Self {
        SemanticConfig {
            embedding_model: None,
            threshold: crate::cache::semantic::DEFAULT_THRESHOLD,
            max_vectors: 10_000,
            max_partitions: 256,
            timeout_ms: Duration::from_millis(500),
        }
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            enabled: false,
            ttl_s: 300,
            max_bytes: 64 * 1024 * 1024,
            max_entry_bytes: 1024 * 1024,
            exclude_fields: Vec::new(),
            charge_hits: false,
            shared: true,
            shared_wait_ms: Duration::from_millis(25),
            semantic: SemanticConfig::default(),
        }
    }
}

/// One `[[prices]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceConfig {
    pub model: String,
    /// USD per million input tokens.
    pub input: f64,
    /// USD per million input tokens read from a prompt cache (default:
    /// `input`); `cache_read` is the same key.
    #[serde(alias = "cache_read")]
    pub cached_input: Option<f64>,
    /// USD per million input tokens written to a prompt cache (default:
    /// `input`; Anthropic charges 1.25× input for its 5-minute cache).
    pub cache_write: Option<f64>,
    /// USD per million input tokens written to a prompt cache for an hour
    /// (default: `cache_write`; Anthropic charges 2× input).
    pub cache_write_1h: Option<f64>,
    /// USD per million output tokens.
    pub output: f64,
}

/// The admin listener: Prometheus metrics and the reload endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// `GET /metrics`, `POST /admin/reload`, `GET /health`; keep it on
    /// loopback or a private network. Empty (`None`) disables it.
    #[serde(deserialize_with = "address::admin")]
    pub listen: Option<SocketAddr>,
    /// The bearer token of the admin API's key and team endpoints
    /// (`SHARDGATE_ADMIN_TOKEN` when unset); without one they are off.
    /// Setting it turns key checks on for every model route.
    pub token: Option<String>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 9090))),
            token: None,
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
    #[serde(deserialize_with = "address::listen")]
    pub listen: SocketAddr,
    /// Number of shards; 0 means one per CPU this process may run on.
    pub shards: usize,
    /// Pin each shard thread to its own CPU.
    pub pin_cores: bool,
    /// With `pin_cores`: each shard's listener asks the kernel
    /// (`SO_INCOMING_CPU`) for the connections whose packets arrive on its
    /// CPU. Off by default: it helps only where the NIC spreads flows over
    /// the CPUs (RSS, or RPS), and with clients on one CPU (a local proxy,
    /// loopback) it sends every connection to that CPU's shard.
    pub incoming_cpu: bool,
    /// Start even if another process already listens on the port (only for a
    /// zero-downtime upgrade, where the old binary drains beside the new one).
    pub share_port: bool,
    /// On SIGTERM, how long in-flight requests and streams may take to
    /// finish before the process exits anyway, milliseconds.
    #[serde(deserialize_with = "ms")]
    pub drain_timeout_ms: Duration,
    /// Whether upstream requests carry the client's address in
    /// `X-Forwarded-For`.
    pub forwarded_for: ForwardedFor,
    /// Peers (proxies in front of the gateway) whose own `X-Forwarded-For`
    /// chain is kept, the peer appended; any other client's is replaced by
    /// its address.
    pub trusted_proxies: Vec<IpNet>,
    /// `[server.tls]`: terminate client TLS on the listener.
    pub tls: Option<ServerTlsConfig>,
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

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            shards: 0,
            pin_cores: true,
            incoming_cpu: false,
            share_port: false,
            drain_timeout_ms: Duration::from_millis(30_000),
            forwarded_for: ForwardedFor::Append,
            trusted_proxies: Vec::new(),
            tls: None,
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
    /// Largest request body read whole, bytes. Over it: 413, except for an
    /// upload (images edits and variations, audio transcriptions and
    /// translations) with a Content-Length, which is streamed through.
    pub max_body_bytes: usize,
    /// Largest upload streamed through, bytes. Over it: 413.
    pub max_upload_bytes: u64,
    /// Longest chunk-size line (with extensions) in a chunked body, bytes.
    pub max_chunk_line_bytes: usize,
    /// A whole request head must arrive within this, milliseconds, counted
    /// from the accept (first request) or from its first byte (later
    /// requests). Over it: 408 and the connection is closed (slowloris).
    #[serde(deserialize_with = "ms")]
    pub header_read_timeout_ms: Duration,
    /// A whole request body must arrive within this, milliseconds, counted
    /// from the end of its head. Over it: 408 and the connection is closed.
    #[serde(deserialize_with = "ms")]
    pub body_read_timeout_ms: Duration,
    /// A keep-alive connection idle this long between requests is closed
    /// silently, milliseconds.
    #[serde(deserialize_with = "ms")]
    pub keepalive_idle_timeout_ms: Duration,
    /// One write to the client must finish within this, milliseconds: a
    /// client that stops reading a response (its socket buffer full) is
    /// cut off, freeing the upstream connection and its in-flight slot.
    #[serde(deserialize_with = "ms")]
    pub client_write_timeout_ms: Duration,
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
    /// Largest upstream response head (status line + headers), bytes.
    /// Over it the response is malformed: 502 in the client's dialect (or
    /// another attempt), nothing relayed.
    pub max_response_head_bytes: usize,
    /// Most header lines in an upstream response head. Over it: as above.
    pub max_response_headers: usize,
    /// A non-streamed upstream body up to this size is read whole before
    /// the client gets a byte, so an upstream that breaks off inside it is
    /// answered with an error (or retried) rather than relayed as a cut
    /// response; a larger one is relayed as it arrives. 0 holds none.
    pub max_held_body_bytes: usize,
    /// Connections turned away over `max_connections_per_shard` that may
    /// linger per shard (answered 503, then what they sent read briefly so
    /// the close does not reset the answer away); past it a turned-away
    /// connection is closed at once.
    pub max_lingering_connections: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_head_bytes: 16 * 1024,
            max_headers: 100,
            max_body_bytes: 32 * 1024 * 1024,
            max_upload_bytes: 1024 * 1024 * 1024,
            max_chunk_line_bytes: 4096,
            header_read_timeout_ms: Duration::from_millis(10_000),
            body_read_timeout_ms: Duration::from_millis(60_000),
            keepalive_idle_timeout_ms: Duration::from_millis(60_000),
            client_write_timeout_ms: Duration::from_millis(60_000),
            max_connections_per_shard: 16_384,
            max_in_flight_per_upstream: 4_096,
            max_translated_messages: TranslateLimits::DEFAULT.max_messages,
            max_translated_blocks: TranslateLimits::DEFAULT.max_blocks,
            offload_body_bytes: 1024 * 1024,
            max_response_head_bytes: 64 * 1024,
            max_response_headers: 256,
            max_held_body_bytes: 256 * 1024,
            max_lingering_connections: 1024,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamConfig {
    /// TCP (and TLS) connect deadline, milliseconds.
    #[serde(deserialize_with = "ms")]
    pub connect_timeout_ms: Duration,
    /// Deadline from the end of the request write to the first response byte.
    #[serde(deserialize_with = "ms")]
    pub first_byte_timeout_ms: Duration,
    /// Longest silence between two reads of a response body (streams).
    #[serde(deserialize_with = "ms")]
    pub idle_timeout_ms: Duration,
    /// The whole exchange, from the request's send to the last response
    /// byte (streams included), milliseconds; 0: unbounded. Before a byte
    /// reached the client it is a 504, after it cuts the response as the
    /// idle timeout does.
    #[serde(deserialize_with = "ms")]
    pub total_timeout_ms: Duration,
    /// Idle keep-alive connections kept per upstream per shard.
    pub pool_max_idle: usize,
    /// An idle pooled connection older than this is closed, milliseconds.
    #[serde(deserialize_with = "ms")]
    pub pool_idle_timeout_ms: Duration,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            connect_timeout_ms: Duration::from_millis(5_000),
            first_byte_timeout_ms: Duration::from_millis(300_000),
            idle_timeout_ms: Duration::from_millis(120_000),
            // Finite, so a trickling upstream cannot hold a connection and an
            // in-flight slot forever; an hour, so no real generation (long
            // reasoning, tens of thousands of tokens streamed) is ever cut.
            total_timeout_ms: Duration::from_millis(3_600_000),
            pool_max_idle: 128,
            pool_idle_timeout_ms: Duration::from_millis(60_000),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Provider family or catalogue name: "openai" (OpenAI and any
    /// OpenAI-compatible API), "azure", "anthropic", "bedrock", or a catalogue name
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
    /// "bedrock": the AWS region requests are signed for (and, without a
    /// `base_url`, sent to: `https://bedrock-runtime.{region}.amazonaws.com`).
    /// Defaults to the region of the AWS environment (`AWS_REGION`,
    /// `AWS_DEFAULT_REGION`, the profile's `region`).
    /// "vertex": the location (`us-central1`, `global`), in the path and,
    /// without a `base_url`, the host; defaults to `GOOGLE_CLOUD_LOCATION`.
    pub region: Option<String>,
    /// "vertex": the Google Cloud project; defaults to
    /// `GOOGLE_CLOUD_PROJECT`, else the service account's own project.
    pub project: Option<String>,
    /// "vertex": the service-account key file (JSON) whose OAuth 2.0
    /// tokens authenticate requests; defaults to
    /// `GOOGLE_APPLICATION_CREDENTIALS`.
    pub credentials_file: Option<PathBuf>,
    /// "bedrock" signing with the AWS environment's credentials: how often
    /// they are read again, seconds (default 60).
    pub credentials_refresh_s: Option<u64>,
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
    #[serde(default, deserialize_with = "opt_ms")]
    pub connect_timeout_ms: Option<Duration>,
    #[serde(default, deserialize_with = "opt_ms")]
    pub first_byte_timeout_ms: Option<Duration>,
    #[serde(default, deserialize_with = "opt_ms")]
    pub idle_timeout_ms: Option<Duration>,
    /// 0: unbounded, even when `upstream.total_timeout_ms` is not.
    #[serde(default, deserialize_with = "opt_ms")]
    pub total_timeout_ms: Option<Duration>,
    /// A quota shared by every request sent to this provider (all its
    /// deployments, and direct `provider/model` requests): requests per
    /// minute, for this gateway instance. A deployment on a provider at its
    /// quota is passed over; a direct request is answered 429.
    pub rpm: Option<u64>,
    /// Tokens per minute, like `rpm`.
    pub tpm: Option<u64>,
}

/// Retries, fail-over and outlier ejection (see `upstream::{retry, breaker}`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResilienceConfig {
    /// Retries on one deployment before failing over to another.
    pub max_retries: u32,
    /// First backoff ceiling (full jitter), milliseconds; doubles per retry.
    #[serde(deserialize_with = "ms")]
    pub backoff_base_ms: Duration,
    /// Largest backoff, milliseconds.
    #[serde(deserialize_with = "ms")]
    pub backoff_cap_ms: Duration,
    /// Longest upstream `Retry-After` waited out, milliseconds; a longer one
    /// fails over at once.
    #[serde(deserialize_with = "ms")]
    pub max_retry_after_ms: Duration,
    /// Re-sends (retries and fail-overs) allowed per client request, over
    /// the budget window, per shard.
    pub retry_budget_ratio: f64,
    /// Re-sends always allowed per window, per shard.
    pub retry_budget_min_retries: u32,
    /// The retry budget's sliding window, milliseconds.
    #[serde(deserialize_with = "ms")]
    pub retry_budget_window_ms: Duration,
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
    #[serde(deserialize_with = "ms")]
    pub breaker_base_ejection_ms: Duration,
    /// Longest ejection cool-down, milliseconds.
    #[serde(deserialize_with = "ms")]
    pub breaker_max_ejection_ms: Duration,
    /// Whether a 429 counts as a deployment failure for the breaker.
    pub breaker_count_429: bool,
    /// `strategy = "latency"`: how fast an unsampled latency average decays,
    /// milliseconds.
    #[serde(deserialize_with = "ms")]
    pub latency_decay_ms: Duration,
}

impl Default for ResilienceConfig {
    fn default() -> Self {
        ResilienceConfig {
            max_retries: 2,
            backoff_base_ms: Duration::from_millis(100),
            backoff_cap_ms: Duration::from_millis(5_000),
            max_retry_after_ms: Duration::from_millis(10_000),
            retry_budget_ratio: 0.2,
            retry_budget_min_retries: 10,
            retry_budget_window_ms: Duration::from_millis(10_000),
            retry_on_timeout: true,
            retry_on_broken_response: true,
            breaker_consecutive_failures: 5,
            breaker_base_ejection_ms: Duration::from_millis(30_000),
            breaker_max_ejection_ms: Duration::from_millis(300_000),
            breaker_count_429: false,
            latency_decay_ms: Duration::from_millis(10_000),
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
    /// `false`: this model's answers are never cached (with `[cache]` on).
    pub cache: Option<bool>,
    /// How long this model's answers are kept, seconds.
    pub cache_ttl_s: Option<u64>,
    /// `true`: this model's answers are found by meaning too
    /// (`[cache.semantic]`).
    #[serde(default)]
    pub semantic: bool,
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
    /// The provider's quota for this deployment: requests per minute (any
    /// 60 s window of whole seconds), for this gateway instance, all shards
    /// together. At it the deployment is passed over until a second frees.
    pub rpm: Option<u64>,
    /// Tokens per minute (input and output, as the responses report them),
    /// like `rpm`.
    pub tpm: Option<u64>,
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
