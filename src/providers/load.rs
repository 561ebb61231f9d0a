//! Loading the configuration the binary runs on: the `--config` file, or
//! the zero-config environment fallback without one; `api_key_env`
//! resolved; the whole check run. Here, above config, because the fallback
//! and the provider checks read the catalogue.
//!
//! Invariant: what [`load_config`] returns passed [`validate`].

use std::path::Path;

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
