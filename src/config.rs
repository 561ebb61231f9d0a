//! Typed configuration: the TOML file format, its defaults, the zero-config
//! environment fallback, and validation that names the bad field.
//!
//! Invariant: a `Config` that passed [`Config::validate`] can be turned into
//! routes without further checks; unknown keys are rejected at parse time.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::Deserialize;

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
    /// Provider used for bare model names that match no configured model.
    /// Defaults to the only provider when exactly one is configured.
    pub default_provider: Option<String>,
    /// Providers by name; the name is also the `name/` model prefix.
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderConfig>,
    /// Models served; each maps a public name (and aliases) to a provider.
    #[serde(default)]
    pub models: Vec<ModelConfig>,
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
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8080".into(),
            shards: 0,
            pin_cores: true,
            share_port: false,
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
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_head_bytes: 16 * 1024,
            max_headers: 100,
            max_body_bytes: 32 * 1024 * 1024,
            max_chunk_line_bytes: 4096,
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
            pool_max_idle: 128,
            pool_idle_timeout_ms: 60_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Provider family: "openai" (any OpenAI-compatible API) for now.
    #[serde(default = "default_kind")]
    pub kind: String,
    /// Base URL including the API version path, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    /// The key sent upstream. Prefer `api_key_env` so keys stay out of files.
    pub api_key: Option<String>,
    /// Name of an environment variable holding the key.
    pub api_key_env: Option<String>,
}

fn default_kind() -> String {
    "openai".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// The name clients send in `model`.
    pub name: String,
    /// Provider (a key of `[providers]`).
    pub provider: String,
    /// The model name sent upstream; defaults to `name`.
    pub upstream_model: Option<String>,
    /// Other names clients may use for this model.
    #[serde(default)]
    pub aliases: Vec<String>,
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

/// The zero-config providers: enabled by their SDK's standard key variable,
/// base URL overridable by the SDK's conventional variable.
const ENV_PROVIDERS: &[(&str, &str, &str, &str)] = &[
    // (provider name, key variable, base URL variable, default base URL)
    (
        "openai",
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "https://api.openai.com/v1",
    ),
];

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
    /// provider whose key variable is set.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Config {
        let mut config = Config::default();
        for &(name, key_var, url_var, default_url) in ENV_PROVIDERS {
            if let Some(key) = var(key_var).filter(|k| !k.is_empty()) {
                let base_url = var(url_var)
                    .filter(|u| !u.is_empty())
                    .unwrap_or(default_url.into());
                config.providers.insert(
                    name.into(),
                    ProviderConfig {
                        kind: default_kind(),
                        base_url,
                        api_key: Some(key),
                        api_key_env: None,
                    },
                );
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
        ] {
            if v == 0 {
                return Err(bad(field, "must be greater than 0"));
            }
        }
        for (name, p) in &self.providers {
            let field = |f: &str| format!("providers.{name}.{f}");
            if name.is_empty() || name.contains('/') {
                return Err(bad(
                    format!("providers.{name:?}"),
                    "a provider name must be non-empty and contain no '/'",
                ));
            }
            if p.kind != "openai" {
                return Err(bad(
                    field("kind"),
                    format!("unknown provider kind {:?} (known: \"openai\")", p.kind),
                ));
            }
            crate::upstream::UpstreamUrl::parse(&p.base_url)
                .map_err(|m| bad(field("base_url"), m))?;
        }
        if let Some(d) = &self.default_provider {
            if !self.providers.contains_key(d) {
                return Err(bad("default_provider", format!("no provider named {d:?}")));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for (i, m) in self.models.iter().enumerate() {
            let field = |f: &str| format!("models[{i}].{f}");
            if !self.providers.contains_key(&m.provider) {
                return Err(bad(
                    field("provider"),
                    format!("no provider named {:?}", m.provider),
                ));
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
    pub fn default_provider_name(&self) -> Option<&str> {
        match &self.default_provider {
            Some(d) => Some(d),
            None if self.providers.len() == 1 => self.providers.keys().next().map(|s| s.as_str()),
            None => None,
        }
    }
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
    let line = text[span.start.min(text.len())..]
        .lines()
        .next()
        .unwrap_or("");
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
        assert_eq!(p.base_url, "http://127.0.0.1:9/v1");
        assert_eq!(p.api_key.as_deref(), Some("sk-test"));
        assert_eq!(c.default_provider_name(), Some("openai"));
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
}
