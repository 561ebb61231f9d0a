//! The provider catalogue: every provider shardgate knows by name, with its
//! family (wire protocol and auth), default base URL and the environment
//! variables its own SDK uses. Config `kind` values and zero-config both
//! come from this table (the latter through `zero_config`).
//!
//! Invariants: names are unique, lowercase and contain no `/` (they double as
//! provider names and `name/model` prefixes in zero-config); every entry
//! without a default base URL names a variable that supplies one.

use crate::config::{ConfigError, ProviderConfig};
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

/// The catalogue entry for a provider's kind and its base URL: the
/// configured one, else the catalogue's default, which a provider with
/// neither a catalogue name nor a `kind` does not get (its key must not go
/// to api.openai.com by accident). The `kind` defaults to the provider's
/// name when that is a catalogue name, else "openai".
pub fn resolve_kind<'a>(
    name: &str,
    p: &'a ProviderConfig,
) -> Result<(&'static CatalogEntry, Option<&'a str>), ConfigError> {
    let kind = match &p.kind {
        Some(k) => k.as_str(),
        None if lookup(name).is_some() => name,
        None => {
            let entry = lookup("openai").expect("openai is in the catalogue");
            return Ok((entry, p.base_url.as_deref()));
        }
    };
    let entry = lookup(kind).ok_or_else(|| ConfigError {
        field: format!("providers.{name}.kind"),
        message: format!("unknown provider kind {kind:?} (known: {})", known_kinds()),
    })?;
    Ok((entry, p.base_url.as_deref().or(entry.default_base_url)))
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
}
