//! The provider catalogue: every provider shardgate knows by name, with its
//! family (wire protocol and auth), default base URL and the environment
//! variables its own SDK uses. Config `kind` values and zero-config both
//! come from this table.
//!
//! Invariants: names are unique, lowercase and contain no `/` (they double as
//! provider names and `name/model` prefixes in zero-config); every entry
//! without a default base URL names a variable that supplies one.

use crate::config::ProviderConfig;
use Family::{Anthropic, OpenAi};
use UrlVar::{BaseUrl, OllamaHost};

/// How a provider speaks: request shape, URL layout and auth.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// OpenAI's API under a base URL ending in the version (`/v1`), with
    /// `Authorization: Bearer`. Also every OpenAI-compatible server.
    OpenAi,
    /// Azure OpenAI: per-deployment paths, `api-version` query, `api-key`.
    Azure,
    /// Anthropic's native Messages API: `x-api-key` and `anthropic-version`.
    Anthropic,
}

/// Where a zero-config base URL comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UrlVar {
    /// The variable holds the base URL as it is.
    BaseUrl(&'static str),
    /// Ollama's `OLLAMA_HOST`: `host[:port]` or a URL without the API path.
    OllamaHost(&'static str),
}

#[derive(Debug)]
pub struct CatalogEntry {
    /// The `kind` value and zero-config provider name.
    pub name: &'static str,
    pub family: Family,
    /// `None` where every deployment has its own (Azure).
    pub default_base_url: Option<&'static str>,
    /// The SDK's key variable.
    pub key_var: Option<&'static str>,
    /// Local servers need no key and are enabled in zero-config only when one
    /// of their URL variables is set (a key variable alone cannot tell that a
    /// server is running).
    pub local: bool,
    /// Base URL variables, first set wins.
    pub url_vars: &'static [UrlVar],
}

const fn cloud(
    name: &'static str,
    family: Family,
    base_url: &'static str,
    key_var: &'static str,
    url_vars: &'static [UrlVar],
) -> CatalogEntry {
    CatalogEntry {
        name,
        family,
        default_base_url: Some(base_url),
        key_var: Some(key_var),
        local: false,
        url_vars,
    }
}

const fn local(
    name: &'static str,
    base_url: &'static str,
    key_var: Option<&'static str>,
    url_vars: &'static [UrlVar],
) -> CatalogEntry {
    CatalogEntry {
        name,
        family: Family::OpenAi,
        default_base_url: Some(base_url),
        key_var,
        local: true,
        url_vars,
    }
}

pub static CATALOG: &[CatalogEntry] = &[
    cloud(
        "openai",
        OpenAi,
        "https://api.openai.com/v1",
        "OPENAI_API_KEY",
        &[BaseUrl("OPENAI_BASE_URL")],
    ),
    CatalogEntry {
        name: "azure",
        family: Family::Azure,
        default_base_url: None,
        key_var: Some("AZURE_OPENAI_API_KEY"),
        local: false,
        url_vars: &[BaseUrl("AZURE_OPENAI_ENDPOINT")],
    },
    // The Anthropic SDK's base URL has no `/v1`; the family adds it.
    cloud(
        "anthropic",
        Anthropic,
        "https://api.anthropic.com",
        "ANTHROPIC_API_KEY",
        &[BaseUrl("ANTHROPIC_BASE_URL")],
    ),
    cloud(
        "gemini",
        OpenAi,
        "https://generativelanguage.googleapis.com/v1beta/openai",
        "GEMINI_API_KEY",
        &[],
    ),
    cloud(
        "groq",
        OpenAi,
        "https://api.groq.com/openai/v1",
        "GROQ_API_KEY",
        &[],
    ),
    cloud(
        "mistral",
        OpenAi,
        "https://api.mistral.ai/v1",
        "MISTRAL_API_KEY",
        &[],
    ),
    cloud("xai", OpenAi, "https://api.x.ai/v1", "XAI_API_KEY", &[]),
    cloud(
        "deepseek",
        OpenAi,
        "https://api.deepseek.com/v1",
        "DEEPSEEK_API_KEY",
        &[],
    ),
    cloud(
        "together",
        OpenAi,
        "https://api.together.xyz/v1",
        "TOGETHER_API_KEY",
        &[],
    ),
    cloud(
        "fireworks",
        OpenAi,
        "https://api.fireworks.ai/inference/v1",
        "FIREWORKS_API_KEY",
        &[],
    ),
    cloud(
        "openrouter",
        OpenAi,
        "https://openrouter.ai/api/v1",
        "OPENROUTER_API_KEY",
        &[],
    ),
    cloud(
        "cerebras",
        OpenAi,
        "https://api.cerebras.ai/v1",
        "CEREBRAS_API_KEY",
        &[],
    ),
    // Perplexity serves its API at the root, without a version segment.
    cloud(
        "perplexity",
        OpenAi,
        "https://api.perplexity.ai",
        "PERPLEXITY_API_KEY",
        &[],
    ),
    // vLLM checks a key only when started with `--api-key` / VLLM_API_KEY.
    local(
        "vllm",
        "http://localhost:8000/v1",
        Some("VLLM_API_KEY"),
        &[BaseUrl("VLLM_BASE_URL")],
    ),
    local(
        "ollama",
        "http://localhost:11434/v1",
        None,
        &[BaseUrl("OLLAMA_BASE_URL"), OllamaHost("OLLAMA_HOST")],
    ),
    local(
        "lmstudio",
        "http://localhost:1234/v1",
        None,
        &[BaseUrl("LMSTUDIO_BASE_URL")],
    ),
    local(
        "llamacpp",
        "http://localhost:8080/v1",
        None,
        &[BaseUrl("LLAMACPP_BASE_URL")],
    ),
];

/// The catalogue entry for a `kind` value.
pub fn lookup(kind: &str) -> Option<&'static CatalogEntry> {
    CATALOG.iter().find(|e| e.name == kind)
}

/// Every known kind, quoted, for error messages.
pub fn known_kinds() -> String {
    CATALOG
        .iter()
        .map(|e| format!("{:?}", e.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Ollama's `OLLAMA_HOST` (`0.0.0.0`, `host:port`, `https://host/path`) as
/// an OpenAI-compatible base URL, read the way Ollama's own client does: no
/// scheme means http on port 11434; with a scheme the scheme's port; a
/// bind-all address means this machine.
pub fn ollama_host_base_url(host: &str) -> String {
    let host = host.trim().trim_end_matches('/');
    let (scheme, rest, default_port) = match host.split_once("://") {
        Some((scheme, rest)) => (scheme, rest, ""),
        None => ("http", host, ":11434"),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let authority = match authority.strip_prefix("0.0.0.0") {
        Some(port) => format!("127.0.0.1{port}"),
        None if authority.is_empty() => "127.0.0.1".to_string(),
        None => authority.to_string(),
    };
    // "[::1]" has colons but no port; "[::1]:7" and "box:7" have one.
    let has_port = authority.rsplit_once(':').is_some_and(|(h, p)| {
        !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && !h.ends_with(':')
    });
    let port = if has_port { "" } else { default_port };
    format!("{scheme}://{authority}{port}{path}/v1")
}

impl CatalogEntry {
    /// This entry's zero-config provider, if the environment
    /// enables it: a hosted provider by its SDK's key variable (its base URL
    /// variable, where one is conventional, overrides the default); a local
    /// server only by its base URL variable, with a key when its variable is set.
    /// Azure needs both `AZURE_OPENAI_API_KEY` and `AZURE_OPENAI_ENDPOINT`, and
    /// takes `OPENAI_API_VERSION` as its `api_version`.
    pub fn env_config(&self, var: &impl Fn(&str) -> Option<String>) -> Option<ProviderConfig> {
        let set = |name: &str| var(name).filter(|v| !v.is_empty());
        let key = self.key_var.and_then(set);
        if key.is_none() && !self.local {
            return None;
        }
        let Some(base_url) = self.env_base_url(var) else {
            if let (Family::Azure, Some(k)) = (self.family, self.key_var) {
                crate::telemetry::log_warn(format_args!(
                    "{k} is set but AZURE_OPENAI_ENDPOINT is not; Azure OpenAI stays disabled"
                ));
            }
            return None;
        };
        Some(ProviderConfig {
            kind: Some(self.name.into()),
            base_url: Some(base_url),
            api_key: key,
            api_version: (self.family == Family::Azure)
                .then(|| set("OPENAI_API_VERSION"))
                .flatten(),
            ..ProviderConfig::default()
        })
    }

    /// The zero-config base URL: the first URL variable set, else the default.
    fn env_base_url(&self, var: &impl Fn(&str) -> Option<String>) -> Option<String> {
        self.url_vars
            .iter()
            .find_map(|v| match *v {
                BaseUrl(name) => var(name).filter(|u| !u.is_empty()),
                OllamaHost(name) => var(name)
                    .filter(|u| !u.is_empty())
                    .map(|h| ollama_host_base_url(&h)),
            })
            .or_else(|| {
                // A local server is only assumed present when a variable says so.
                (!self.local)
                    .then_some(self.default_base_url)
                    .flatten()
                    .map(String::from)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_lowercase_and_prefix_safe() {
        let mut seen = std::collections::HashSet::new();
        for e in CATALOG {
            assert!(seen.insert(e.name), "{} twice", e.name);
            assert!(
                e.name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
                "{}",
                e.name
            );
            assert!(
                e.default_base_url.is_some() || !e.url_vars.is_empty(),
                "{} has no way to get a base URL",
                e.name
            );
            if let Some(u) = e.default_base_url {
                crate::upstream::UpstreamUrl::parse(u).unwrap();
            }
        }
    }

    #[test]
    fn ollama_host_forms() {
        for (host, url) in [
            ("127.0.0.1", "http://127.0.0.1:11434/v1"),
            ("0.0.0.0", "http://127.0.0.1:11434/v1"),
            ("", "http://127.0.0.1:11434/v1"),
            ("0.0.0.0:9999", "http://127.0.0.1:9999/v1"),
            ("gpu-box:11500", "http://gpu-box:11500/v1"),
            ("[::1]", "http://[::1]:11434/v1"),
            (
                "https://ollama.example.com/",
                "https://ollama.example.com/v1",
            ),
            ("http://box:7/ollama", "http://box:7/ollama/v1"),
            ("http://[::1]:7", "http://[::1]:7/v1"),
        ] {
            assert_eq!(ollama_host_base_url(host), url, "{host}");
        }
    }
}
