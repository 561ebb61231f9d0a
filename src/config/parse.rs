//! Parsing: TOML text (or a file) to `Config`, and `api_key_env`
//! resolution, with errors that name the key at fault. The zero-config
//! environment fallback is `providers::zero_config`'s: it reads the
//! provider catalogue, which sits above config.
//!
//! Invariant: every error is a `ConfigError` whose `field` is the dotted TOML
//! path where one can be found.

use std::path::Path;

use super::error::bad;
use super::{Config, ConfigError};

impl Config {
    /// Parses TOML text. Unknown keys are errors.
    /// Errors name the key, say where (`line L, column C`) and what was
    /// expected in plain words.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| {
            let mut message = plain_words(e.message());
            let field = match e.span() {
                Some(span) => {
                    let (line, column) = line_column(text, span.start);
                    message.push_str(&format!(" (line {line}, column {column})"));
                    locate_key(text, span)
                }
                None => String::new(),
            };
            bad(field, message)
        })
    }

    /// Reads and parses the file at `path` (not yet validated: the
    /// command line may still override fields, and the layers that own
    /// providers check those; see `providers::load_config`).
    pub fn read(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| bad("", format!("cannot read {}: {e}", path.display())))?;
        Config::from_toml(&text)
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
        if self.admin.token.is_none() {
            self.admin.token = var("SHARDGATE_ADMIN_TOKEN").filter(|t| !t.is_empty());
        }
        if self.state.redis_url.is_none() {
            self.state.redis_url = var("SHARDGATE_REDIS_URL").filter(|u| !u.is_empty());
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

/// The 1-based line and column (in characters) of byte `at` in `text`.
fn line_column(text: &str, at: usize) -> (usize, usize) {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let before = &text[..at];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (
        before.matches('\n').count() + 1,
        before[line_start..].chars().count() + 1,
    )
}

/// A TOML or serde message in the words of the file's reader rather than
/// Rust's: what was expected (`usize`, `f64`, `struct LimitsConfig`) as
/// "a whole number", "a number", "a table"; a multi-line syntax message on
/// one line.
fn plain_words(message: &str) -> String {
    let message = message.trim().replace('\n', "; ");
    let Some(i) = message.rfind("expected ") else {
        return message;
    };
    let (head, wanted) = message.split_at(i + "expected ".len());
    let plain = match wanted {
        "u64" | "usize" | "u128" => "a whole number, 0 or more",
        "u8" => "a whole number from 0 to 255",
        "u16" => "a whole number from 0 to 65535",
        "u32" => "a whole number from 0 to 4294967295",
        "i8" | "i16" | "i32" | "i64" | "isize" | "i128" => "a whole number",
        "f32" | "f64" => "a number",
        "a boolean" => "true or false",
        "a sequence" => "a list ([...])",
        "a map" => "a table",
        w if w.starts_with("struct ") => "a table",
        "a character" => "a single character",
        _ => return message,
    };
    format!("{head}{plain}")
}
