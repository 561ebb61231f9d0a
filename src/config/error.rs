//! `ConfigError`: a configuration problem, naming the dotted TOML path of
//! the field at fault, shared by parsing, validation and the layers above
//! that check what they own (provider kinds, URLs, CA files).
//!
//! Invariant: `field` is empty only when no field is to blame (an
//! unreadable file, a syntax error before any key).

use std::fmt;

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

/// A `ConfigError` for `field`.
pub fn bad(field: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.into(),
        message: message.into(),
    }
}
