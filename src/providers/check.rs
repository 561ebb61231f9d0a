//! Provider validation: the rules of one `[providers.NAME]` table that need
//! the layers above config (the catalogue for `kind`, `upstream` for the
//! base URL and CA file), and [`validate`], the whole configuration check
//! every caller uses (config's own checks with these plugged in).
//!
//! Invariant: a `Config` that passed [`validate`] can be turned into routes
//! without further checks, and every error names the bad field.

use super::catalog::{resolve_kind, CatalogEntry, Family};
use crate::config::{Config, ConfigError, ProviderConfig};
use crate::upstream::{tls, UpstreamUrl};

/// Checks the whole configuration: config's own rules (addresses,
/// references, ranges) and each provider's (kind, URL, TLS, keys).
pub fn validate(config: &Config) -> Result<(), ConfigError> {
    config.validate_with(check_provider)
}

fn bad(field: String, message: impl Into<String>) -> ConfigError {
    ConfigError {
        field,
        message: message.into(),
    }
}

/// Checks one `[providers.NAME]` table: name, kind, URL, header-safe values,
/// and TLS settings that make sense together (and a readable `ca_file`).
fn check_provider(name: &str, p: &ProviderConfig) -> Result<(), ConfigError> {
    let field = |f: &str| format!("providers.{name}.{f}");
    let (entry, base_url) = resolve_kind(name, p)?;
    let Some(base_url) = base_url else {
        if entry.family == Family::Bedrock {
            return Err(bad(
                field("region"),
                "is required: no region is set here or in the AWS environment \
                 (AWS_REGION, or the profile's region)",
            ));
        }
        if entry.family == Family::Vertex {
            return Err(bad(
                field("region"),
                "is required: no location is set here or in GOOGLE_CLOUD_LOCATION",
            ));
        }
        return Err(bad(
            field("base_url"),
            format!(
                "is required (kind {:?} has no default; a custom provider needs its URL)",
                entry.name
            ),
        ));
    };
    let url = UpstreamUrl::parse(&base_url).map_err(|m| bad(field("base_url"), m))?;
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
    let family_only = [
        (
            "region",
            p.region.is_some(),
            &[Family::Bedrock, Family::Vertex][..],
        ),
        (
            "credentials_refresh_s",
            p.credentials_refresh_s.is_some(),
            &[Family::Bedrock],
        ),
        ("project", p.project.is_some(), &[Family::Vertex]),
        (
            "credentials_file",
            p.credentials_file.is_some(),
            &[Family::Vertex],
        ),
    ];
    for (f, set, families) in family_only {
        if set && !families.contains(&entry.family) {
            let kinds = if families.len() == 2 {
                "kinds \"bedrock\" and \"vertex\""
            } else if families[0] == Family::Bedrock {
                "kind \"bedrock\""
            } else {
                "kind \"vertex\""
            };
            return Err(bad(field(f), format!("only applies to {kinds}")));
        }
    }
    if entry.family == Family::Vertex {
        if p.api_key.is_some() || p.api_key_env.is_some() {
            return Err(bad(
                field("api_key"),
                "does not apply to kind \"vertex\": requests carry the service \
                 account's tokens (credentials_file)",
            ));
        }
        super::google::vertex::settings(name, p)?;
    }
    let signs = entry.family == Family::Bedrock && p.api_key.is_none() && p.api_key_env.is_none();
    if signs && super::bedrock::region(name, p)?.is_none() {
        return Err(bad(
            field("region"),
            "is required to sign requests (no region is set here or in the AWS environment)",
        ));
    }
    if signs {
        super::bedrock::check_environment_credentials(name)
            .map_err(|m| bad(field("api_key"), m))?;
    }
    if p.credentials_refresh_s == Some(0) {
        return Err(bad(
            field("credentials_refresh_s"),
            "must be greater than 0",
        ));
    }
    if let Some(v) = &p.api_version {
        if !matches!(entry.family, Family::Azure | Family::Anthropic) {
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
                tls::load_ca_file(path).map_err(|m| bad(field("ca_file"), m))?;
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
        if v == Some(std::time::Duration::ZERO) {
            return Err(bad(field(f), "must be greater than 0"));
        }
    }
    check_key(name, p, entry, &base_url)
}

/// A hosted provider at its real endpoint (the catalogue's default base
/// URL) needs a key: without one every request would reach the cloud
/// unauthenticated. A custom `base_url` (a mock, a self-hosted proxy that
/// adds credentials itself) may go without. An `api_key_env` counts as a
/// key: `resolve_keys` fails when its variable is unset.
fn check_key(
    name: &str,
    p: &ProviderConfig,
    entry: &CatalogEntry,
    base_url: &str,
) -> Result<(), ConfigError> {
    let (Some(var), Some(default)) = (entry.key_var, entry.default_base_url) else {
        return Ok(());
    };
    let at_default = base_url.trim_end_matches('/') == default.trim_end_matches('/');
    if entry.local || !at_default || p.api_key.is_some() || p.api_key_env.is_some() {
        return Ok(());
    }
    Err(bad(
        format!("providers.{name}.api_key"),
        format!(
            "provider {name:?} has no API key, so its requests would reach {default} \
             without credentials: set the environment variable {var} and \
             `api_key_env = \"{var}\"` (or `api_key`)"
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_defaults_to_a_catalogue_name_and_brings_its_base_url() {
        let c = Config::from_toml(
            "[providers.groq]\napi_key = \"k\"\n[providers.mine]\nkind = \"mistral\"\napi_key = \"k\"\n",
        )
        .unwrap();
        validate(&c).unwrap();
        let (entry, url) = resolve_kind("groq", &c.providers["groq"]).unwrap();
        assert_eq!(entry.name, "groq");
        assert_eq!(url.as_deref(), Some("https://api.groq.com/openai/v1"));
        let (entry, url) = resolve_kind("mine", &c.providers["mine"]).unwrap();
        assert_eq!(entry.name, "mistral");
        assert_eq!(url.as_deref(), Some("https://api.mistral.ai/v1"));
        // A custom name is OpenAI-compatible and needs a base URL.
        let c = Config::from_toml("[providers.mine]\napi_key = \"k\"\n").unwrap();
        assert_eq!(validate(&c).unwrap_err().field, "providers.mine.base_url");
    }

    #[test]
    fn kinds_with_a_per_account_url_need_base_url() {
        for kind in ["cloudflare", "foundry"] {
            let c = Config::from_toml(&format!("[providers.{kind}]\napi_key = \"k\"\n")).unwrap();
            let e = validate(&c).unwrap_err();
            assert_eq!(e.field, format!("providers.{kind}.base_url"), "{e}");
            assert!(e.message.contains(kind), "{e}");
            let c = Config::from_toml(&format!(
                "[providers.{kind}]\nbase_url = \"https://h/v1\"\napi_key = \"k\"\n"
            ))
            .unwrap();
            validate(&c).unwrap();
        }
    }

    #[test]
    fn provider_validation_names_the_field() {
        let err = |toml: &str| validate(&Config::from_toml(toml).unwrap()).unwrap_err();
        let e = err("[providers.a]\nkind = \"sagemaker\"\n");
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

    #[test]
    fn a_cloud_provider_at_its_real_endpoint_needs_a_key() {
        let err = |toml: &str| validate(&Config::from_toml(toml).unwrap()).err();
        for toml in [
            "[providers.openai]\n",
            "[providers.groq]\nbase_url = \"https://api.groq.com/openai/v1/\"\n",
            "[providers.mine]\nkind = \"anthropic\"\n",
        ] {
            let e = err(toml).unwrap_or_else(|| panic!("{toml:?} was accepted"));
            assert!(e.field.ends_with(".api_key"), "{e}");
            let (name, var) = match toml {
                t if t.contains("groq") => ("groq", "GROQ_API_KEY"),
                t if t.contains("openai") => ("openai", "OPENAI_API_KEY"),
                _ => ("mine", "ANTHROPIC_API_KEY"),
            };
            assert!(
                e.message.contains(&format!("{name:?}")) && e.message.contains(var),
                "{e}"
            );
        }
        // A key, a key variable, a custom endpoint or a local server: fine.
        for toml in [
            "[providers.openai]\napi_key = \"sk\"\n",
            "[providers.openai]\napi_key_env = \"MY_KEY\"\n",
            "[providers.openai]\nbase_url = \"http://127.0.0.1:9/v1\"\n",
            "[providers.a]\nbase_url = \"https://api.example.com/v1\"\n",
            "[providers.ollama]\n",
            "[providers.vllm]\n",
            "[providers.azure]\nbase_url = \"https://r.openai.azure.com\"\n",
        ] {
            assert_eq!(err(toml), None, "{toml:?}");
        }
    }
}
