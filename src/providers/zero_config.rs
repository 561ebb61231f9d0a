//! The zero-config environment fallback: with no `--config`, a `Config`
//! that listens on 127.0.0.1:8080 and enables each catalogue provider whose
//! SDK variables are set (`OPENAI_API_KEY`, `OLLAMA_HOST`, ...). It lives
//! with the catalogue, above config, so config never imports providers.
//!
//! Invariant: a hosted provider is enabled only with its key, a local
//! server only with one of its URL variables (a key alone cannot tell that
//! a server runs), so what zero-config enables is never keyless by accident.

use super::catalog::{
    CatalogEntry, Family,
    UrlVar::{BaseUrl, OllamaHost, Template},
    CATALOG,
};
use crate::config::{Config, ProviderConfig};
use crate::telemetry::log_warn;

/// The zero-config default: listen on 127.0.0.1:8080 and enable each
/// catalogue provider whose SDK variables are set (see
/// [`provider_from_env`]).
pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Config {
    let mut config = Config::default();
    for entry in CATALOG {
        if let Some(p) = provider_from_env(entry, &var) {
            config.providers.insert(entry.name.into(), p);
        }
    }
    config
}

/// Key variables other tools set for their own purposes (every GitHub
/// Actions job has a GITHUB_TOKEN; the Hugging Face tools keep HF_TOKEN for
/// downloads): set, they say nothing of wanting that provider, so its
/// models would take bare names by surprise. Those providers are
/// configured in the file (which reads the variable as their key).
const NOT_AN_ENABLER: &[&str] = &["GITHUB_TOKEN", "HF_TOKEN", "GOOGLE_APPLICATION_CREDENTIALS"];

/// An entry's zero-config provider, if the environment
/// enables it: a hosted provider by its SDK's key variable (its base URL
/// variable, where one is conventional, overrides the default); a local
/// server only by its base URL variable, with a key when its variable is set.
/// A hosted provider without a default base URL needs its URL variable too:
/// Azure both `AZURE_OPENAI_API_KEY` and `AZURE_OPENAI_ENDPOINT` (and takes
/// `OPENAI_API_VERSION` as its `api_version`), Cloudflare
/// `CLOUDFLARE_ACCOUNT_ID`, Foundry `AZURE_INFERENCE_ENDPOINT`.
fn provider_from_env(
    entry: &CatalogEntry,
    var: &impl Fn(&str) -> Option<String>,
) -> Option<ProviderConfig> {
    if entry.key_var.is_some_and(|k| NOT_AN_ENABLER.contains(&k)) {
        return None;
    }
    let set = |name: &str| var(name).filter(|v| !v.is_empty());
    let key = entry.key_var.and_then(set);
    if key.is_none() && !entry.local {
        return None;
    }
    let Some(base_url) = env_base_url(entry, var) else {
        // A hosted provider without a default URL (Azure, Foundry,
        // Cloudflare): its key alone is a half-done setup worth a word.
        if let (false, Some(k), Some(u)) = (entry.local, entry.key_var, entry.url_vars.first()) {
            log_warn(format_args!(
                "{k} is set but {} is unset or unusable; provider {:?} stays disabled",
                u.var(),
                entry.name
            ));
        }
        return None;
    };
    Some(ProviderConfig {
        kind: Some(entry.name.into()),
        base_url: Some(base_url),
        api_key: key,
        api_version: (entry.family == Family::Azure)
            .then(|| set("OPENAI_API_VERSION"))
            .flatten(),
        ..ProviderConfig::default()
    })
}

/// The zero-config base URL: the first URL variable set, else the default.
fn env_base_url(entry: &CatalogEntry, var: &impl Fn(&str) -> Option<String>) -> Option<String> {
    entry
        .url_vars
        .iter()
        .find_map(|v| match *v {
            BaseUrl(name) => var(name).filter(|u| !u.is_empty()),
            OllamaHost(name) => var(name)
                .filter(|u| !u.is_empty())
                .map(|h| ollama_host_base_url(&h)),
            Template(name, template) => var(name)
                .filter(|v| !v.is_empty())
                .and_then(|v| templated_base_url(name, template, &v)),
        })
        .or_else(|| {
            // A local server is only assumed present when a variable says so.
            (!entry.local)
                .then_some(entry.default_base_url)
                .flatten()
                .map(String::from)
        })
}

/// `template` with `{}` replaced by `value`, which must be one plain path
/// segment (an account id): anything else could move the URL's host or
/// path, so it is refused with a warning and the provider stays disabled.
fn templated_base_url(name: &str, template: &str, value: &str) -> Option<String> {
    let plain = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_');
    if value.bytes().all(plain) {
        return Some(template.replacen("{}", value, 1));
    }
    log_warn(format_args!(
        "{name} must be letters, digits, `-` or `_`; the provider it configures stays disabled"
    ));
    None
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::validate;

    #[test]
    fn defaults_listen_on_loopback_8080() {
        let c = from_env(|_| None);
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
        assert!(c.providers.is_empty());
        validate(&c).unwrap();
    }

    #[test]
    fn openai_enabled_by_key_variable_with_base_url_override() {
        let c = from_env(|k| match k {
            "OPENAI_API_KEY" => Some("sk-test".into()),
            "OPENAI_BASE_URL" => Some("http://127.0.0.1:9/v1".into()),
            _ => None,
        });
        let p = &c.providers["openai"];
        assert_eq!(p.base_url.as_deref(), Some("http://127.0.0.1:9/v1"));
        assert_eq!(p.api_key.as_deref(), Some("sk-test"));
        assert_eq!(c.default_provider_name(), Some("openai"));
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
        for entry in CATALOG.iter().filter(|e| !e.local) {
            let key_var = entry.key_var.unwrap();
            let c = from_env(env(&[(key_var, "k-1")]));
            if NOT_AN_ENABLER.contains(&key_var) {
                assert!(c.providers.is_empty(), "{key_var} enabled {}", entry.name);
                continue;
            }
            if entry.default_base_url.is_none() {
                assert!(c.providers.is_empty(), "{} needs its URL too", entry.name);
                continue;
            }
            validate(&c).unwrap();
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
        let c = from_env(env(&[
            ("GEMINI_API_KEY", "g"),
            ("GROQ_API_KEY", "q"),
            ("PERPLEXITY_API_KEY", "p"),
            ("ANTHROPIC_API_KEY", "a"),
            ("ANTHROPIC_BASE_URL", "http://127.0.0.1:9"),
        ]));
        validate(&c).unwrap();
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
        let c = from_env(env(&[
            ("AZURE_OPENAI_API_KEY", "az"),
            ("AZURE_OPENAI_ENDPOINT", "https://res.openai.azure.com/"),
            ("OPENAI_API_VERSION", "2025-01-01-preview"),
        ]));
        validate(&c).unwrap();
        let p = &c.providers["azure"];
        assert_eq!(p.kind.as_deref(), Some("azure"));
        assert_eq!(p.base_url.as_deref(), Some("https://res.openai.azure.com/"));
        assert_eq!(p.api_version.as_deref(), Some("2025-01-01-preview"));
        let c = from_env(env(&[(
            "AZURE_OPENAI_ENDPOINT",
            "https://r.openai.azure.com",
        )]));
        assert!(c.providers.is_empty());
    }

    #[test]
    fn foundry_needs_key_and_endpoint() {
        let url = "https://res.services.ai.azure.com/openai/v1";
        let c = from_env(env(&[
            ("AZURE_INFERENCE_CREDENTIAL", "f"),
            ("AZURE_INFERENCE_ENDPOINT", url),
        ]));
        validate(&c).unwrap();
        let p = &c.providers["foundry"];
        assert_eq!(p.base_url.as_deref(), Some(url));
        assert_eq!(p.api_key.as_deref(), Some("f"));
        let c = from_env(env(&[("AZURE_INFERENCE_ENDPOINT", url)]));
        assert!(c.providers.is_empty());
    }

    #[test]
    fn cloudflare_needs_key_and_a_plain_account_id() {
        let c = from_env(env(&[
            ("CLOUDFLARE_API_KEY", "cf"),
            ("CLOUDFLARE_ACCOUNT_ID", "0123abc"),
        ]));
        validate(&c).unwrap();
        let p = &c.providers["cloudflare"];
        assert_eq!(
            p.base_url.as_deref(),
            Some("https://api.cloudflare.com/client/v4/accounts/0123abc/ai/v1")
        );
        assert_eq!(p.api_key.as_deref(), Some("cf"));
        for id in ["", "a/b", "x.example.com#", "a?b"] {
            let c = from_env(env(&[
                ("CLOUDFLARE_API_KEY", "cf"),
                ("CLOUDFLARE_ACCOUNT_ID", id),
            ]));
            assert!(c.providers.is_empty(), "{id:?}");
        }
        let c = from_env(env(&[("CLOUDFLARE_ACCOUNT_ID", "0123abc")]));
        assert!(c.providers.is_empty(), "no key, no provider");
    }

    #[test]
    fn local_servers_only_by_their_url_variable() {
        let c = from_env(env(&[("VLLM_API_KEY", "v")]));
        assert!(
            c.providers.is_empty(),
            "a key alone says nothing about a server"
        );
        let c = from_env(env(&[
            ("VLLM_BASE_URL", "http://gpu:8000/v1"),
            ("VLLM_API_KEY", "v"),
            ("OLLAMA_HOST", "0.0.0.0:11500"),
            ("LMSTUDIO_BASE_URL", "http://127.0.0.1:1234/v1"),
            ("LLAMACPP_BASE_URL", "http://127.0.0.1:8080/v1"),
        ]));
        validate(&c).unwrap();
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
        let c = from_env(env(&[
            ("OLLAMA_BASE_URL", "http://box:1/v1"),
            ("OLLAMA_HOST", "other"),
        ]));
        assert_eq!(
            c.providers["ollama"].base_url.as_deref(),
            Some("http://box:1/v1")
        );
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
