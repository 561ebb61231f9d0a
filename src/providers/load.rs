//! Loading the configuration the binary runs on: the `--config` file, or
//! the zero-config environment fallback without one; `api_key_env`
//! resolved; the whole check run; and what `--check-config` and the start
//! say when no provider came of it. Here, above config, because the
//! fallback and the provider checks read the catalogue.
//!
//! Invariant: what [`load_config`] returns passed [`validate`].

use std::path::Path;
use std::process::ExitCode;

use super::catalog::{UrlVar, CATALOG};
use super::{validate, zero_config};
use crate::config::{Config, ConfigError};

/// Loads `path`, or builds the zero-config default from the environment
/// when `path` is `None`. The result is validated.
pub fn load_config(path: Option<&Path>) -> Result<Config, ConfigError> {
    let mut config = match path {
        Some(path) => Config::read(path)?,
        None => zero_config::from_env(|k| std::env::var(k).ok()),
    };
    config.resolve_keys(|k| std::env::var(k).ok())?;
    validate(&config)?;
    Ok(config)
}

/// When `config` has no provider, why, worded for where it came from: a
/// `--config` file lacks `[providers]` tables; zero-config found none of
/// the variables that enable one (named). `None` when there is one.
pub fn no_providers(config: &Config, path: Option<&Path>) -> Option<String> {
    if !config.providers.is_empty() {
        return None;
    }
    Some(match path {
        Some(path) => format!(
            "no providers configured: no [providers] in {}; add a [providers.NAME] table \
             (see scripts/shardgate.example.toml)",
            path.display()
        ),
        None => {
            let keys: Vec<_> = CATALOG
                .iter()
                .filter(|e| !e.local)
                .filter_map(|e| e.key_var)
                .collect();
            let urls: Vec<_> = CATALOG
                .iter()
                .filter(|e| e.local)
                .filter_map(|e| e.url_vars.first())
                .map(UrlVar::var)
                .collect();
            format!(
                "no providers configured: set a provider's key variable ({}; Azure also \
                 needs AZURE_OPENAI_ENDPOINT, Cloudflare CLOUDFLARE_ACCOUNT_ID, OPENAI_BASE_URL points OpenAI's at a \
                 compatible server), a local server's URL variable ({}), or pass --config FILE",
                keys.join(", "),
                urls.join(", ")
            )
        }
    })
}

/// `--check-config`'s verdict on a configuration that loaded (and so
/// passed [`validate`]): valid, or not usable because it configures no
/// provider (every request would be a 404). Prints it; the exit status.
pub fn report_check(config: &Config, path: Option<&Path>) -> ExitCode {
    match no_providers(config, path) {
        None => {
            println!("shardgate: configuration is valid");
            ExitCode::SUCCESS
        }
        Some(why) => {
            eprintln!("shardgate: invalid configuration: {why}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_providers_is_worded_for_where_the_config_came_from() {
        let none = Config::default();
        let file = no_providers(&none, Some(Path::new("/etc/g.toml"))).unwrap();
        assert!(file.contains("no [providers] in /etc/g.toml"), "{file}");
        assert!(!file.contains("OPENAI_API_KEY"), "{file}");
        let env = no_providers(&none, None).unwrap();
        for var in [
            "OPENAI_API_KEY",
            "ANTHROPIC_API_KEY",
            "GROQ_API_KEY",
            "OLLAMA_BASE_URL",
        ] {
            assert!(env.contains(var), "{var}: {env}");
        }
        assert!(env.contains("--config"), "{env}");
        let some = zero_config::from_env(|k| (k == "OPENAI_API_KEY").then(|| "sk".into()));
        assert_eq!(no_providers(&some, None), None);
    }
}
