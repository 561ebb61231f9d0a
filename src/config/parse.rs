//! Parsing: TOML text to `Config`, the zero-config environment fallback, and
//! `api_key_env` resolution, with errors that name the key at fault.
//!
//! Invariant: every error is a `ConfigError` whose `field` is the dotted TOML
//! path where one can be found.

use std::fmt;
use std::path::Path;

use super::Config;
use crate::providers::catalog;

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

pub(super) fn bad(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
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
